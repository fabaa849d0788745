/* hf_regex.c: tokenizer.json regular expressions on PCRE2 (see hf_regex.h):
 * the Oniguruma -> PCRE2 rewrite, compilation (JIT when the library has it)
 * and the find_iter segmentation. The only file that includes pcre2.h. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include "hf_regex.h"

#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_unicode.h"
#include "util.h"

/* Oniguruma's \s (Unicode White_Space), as members of a character class. */
#define WS_MEMBERS "\\t-\\r\\x{85}\\p{Z}"

typedef struct {
    char *p;
    size_t n, cap;
} Out;

static void put(Out *o, const char *s, size_t n) {
    if (o->n + n + 1 > o->cap) {
        o->cap = 2 * (o->n + n + 1);
        o->p = qh_realloc(o->p, o->cap);
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}
static void puts_(Out *o, const char *s) { put(o, s, strlen(s)); }

static int refuse(char *err, size_t errn, size_t at, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errn, "at byte %zu: %s", at, what);
    return -1;
}

/* Rewrite an Oniguruma (Ruby syntax) pattern for PCRE2; see hf_regex.h. */
static int translate(const char *pat, size_t len, Out *o, char *err, size_t errn) {
    int in_class = 0;   /* inside [...] */
    size_t class_start = 0;
    for (size_t i = 0; i < len;) {
        char c = pat[i];
        if (c == '\\') {
            if (i + 1 >= len) return refuse(err, errn, i, "the pattern ends with a lone backslash");
            char e = pat[i + 1];
            if (e == 's') {
                puts_(o, in_class ? WS_MEMBERS : "[" WS_MEMBERS "]");
                i += 2;
            } else if (e == 'S') {
                if (in_class) return refuse(err, errn, i, "\\S inside a character class is not supported");
                puts_(o, "[^" WS_MEMBERS "]");
                i += 2;
            } else if (e == 'u') {
                size_t k = 0;
                while (k < 4 && i + 2 + k < len && strchr("0123456789abcdefABCDEF", pat[i + 2 + k]) && pat[i + 2 + k]) k++;
                if (k != 4) return refuse(err, errn, i, "\\u must be followed by 4 hex digits");
                puts_(o, "\\x{");
                put(o, pat + i + 2, 4);
                puts_(o, "}");
                i += 6;
            } else if (strchr("wWbBhHvVRXNKGgk", e) && e) {
                return refuse(err, errn, i, "\\%c is not supported (its meaning differs between Oniguruma and PCRE2)", e);
            } else if (e == 'p' || e == 'P') {
                /* \p{Name}, \p{^Name}, \pL: the same in both engines */
                put(o, pat + i, 2);
                i += 2;
            } else {
                put(o, pat + i, 2); /* \d \D \n \t \x.. \. \\ \[ ... and backreferences */
                i += 2;
            }
            continue;
        }
        if (in_class) {
            if (c == '[') {
                if (i + 1 < len && pat[i + 1] == ':')
                    return refuse(err, errn, i, "POSIX classes ([:name:]) are not supported");
                return refuse(err, errn, i, "nested character classes are not supported");
            }
            if (c == '&' && i + 1 < len && pat[i + 1] == '&')
                return refuse(err, errn, i, "class intersection (&&) is not supported");
            if (c == ']' && i > class_start) in_class = 0;
            put(o, &c, 1);
            i++;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            put(o, &c, 1);
            i++;
            if (i < len && pat[i] == '^') put(o, pat + i++, 1);
            class_start = i; /* a ']' right here is a literal */
            continue;
        }
        if (c == '(' && i + 1 < len && pat[i + 1] == '?') {
            /* groups: (?: (?= (?! (?<= (?<! (?> (?<name> and flag groups of i only */
            size_t j = i + 2;
            char g = j < len ? pat[j] : '\0';
            if (g == ':' || g == '=' || g == '!' || g == '>' || g == '<' || g == '#') {
                put(o, pat + i, 2);
                i += 2;
                continue;
            }
            while (j < len && (pat[j] == 'i' || pat[j] == '-')) j++;
            if (j < len && (pat[j] == ':' || pat[j] == ')') && j > i + 2) {
                put(o, pat + i, j - i);
                i = j;
                continue;
            }
            return refuse(err, errn, i, "the group '(?%c' is not supported (only the flag i is)", g ? g : ' ');
        }
        put(o, &c, 1);
        i++;
    }
    if (in_class) return refuse(err, errn, len, "unterminated character class");
    return 0;
}

int hf_regex_compile(HfRegex *r, const char *pattern, size_t len, int literal, char *err, size_t errn) {
    memset(r, 0, sizeof *r);
    if (literal) {
        if (len == 0) {
            snprintf(err, errn, "an empty string pattern");
            return -1;
        }
        r->literal = qh_malloc(len + 1);
        memcpy(r->literal, pattern, len);
        r->literal[len] = '\0';
        r->literal_len = len;
        return 0;
    }
    Out o = {0};
    put(&o, "", 0);
    if (translate(pattern, len, &o, err, errn) != 0) {
        free(o.p);
        return -1;
    }
    int ec;
    PCRE2_SIZE eo;
    /* MULTILINE: Ruby's ^ and $ are line anchors */
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)o.p, o.n, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo, NULL);
    if (!code) {
        char msg[160];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        snprintf(err, errn, "invalid regular expression (PCRE2: %s, at byte %zu of the rewritten pattern '%s')", msg,
                 (size_t)eo, o.p);
        free(o.p);
        return -1;
    }
    free(o.p);
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* without JIT support the interpreter runs */
    r->code = code;
    return 0;
}

void hf_regex_free(HfRegex *r) {
    if (!r) return;
    if (r->code) pcre2_code_free((pcre2_code *)r->code);
    free(r->literal);
    memset(r, 0, sizeof *r);
}

static void push_span(HfSpan **spans, size_t *n, size_t *cap, size_t s, size_t e, int m) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *spans = qh_realloc(*spans, *cap * sizeof **spans);
    }
    (*spans)[(*n)++] = (HfSpan){s, e, m};
}

/* Next match of r in s[0..n) at or after `from`: 1 with [*ms, *me), 0 none, -1 error. */
static int find_at(const HfRegex *r, pcre2_match_data *md, pcre2_match_context *mc, const char *s, size_t n,
                   size_t from, size_t *ms, size_t *me) {
    if (!r->code) {
        if (n - from < r->literal_len) return 0;
        const char *hit = memmem(s + from, n - from, r->literal, r->literal_len);
        if (!hit) return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + r->literal_len;
        return 1;
    }
    int rc = pcre2_match((const pcre2_code *)r->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        char msg[160];
        pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
        return qh_error("regular expression match failed (PCRE2: %s) on a text piece of %zu bytes", msg, n);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

struct HfMatchScratch {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
};

HfMatchScratch *hf_match_scratch_new(void) {
    HfMatchScratch *sc = qh_calloc(1, sizeof *sc);
    sc->md = pcre2_match_data_create(1, NULL); /* the whole match is all we read */
    sc->mc = pcre2_match_context_create(NULL);
    sc->js = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    if (!sc->md || !sc->mc) {
        qh_error("PCRE2: out of memory for match data");
        abort();
    }
    if (sc->js) pcre2_jit_stack_assign(sc->mc, NULL, sc->js);
    return sc;
}

void hf_match_scratch_free(HfMatchScratch *sc) {
    if (!sc) return;
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->mc);
    if (sc->js) pcre2_jit_stack_free(sc->js);
    free(sc);
}

int hf_regex_spans(const HfRegex *r, HfMatchScratch *sc, const char *s, size_t n, HfSpan **spans, size_t *nspans,
                   size_t *cap) {
    *nspans = 0;
    if (n == 0) {
        push_span(spans, nspans, cap, 0, 0, 0);
        return 0;
    }
    size_t prev = 0, from = 0, ms = 0, me = 0;
    long last_match_end = -1;
    while (from <= n) {
        int f = find_at(r, sc->md, sc->mc, s, n, from, &ms, &me);
        if (f < 0) return -1;
        if (f == 0) break;
        if (ms == me) {
            /* an empty match: the next search starts one character later, and
             * one right at the end of the previous match is not taken */
            from = me < n ? me + u8_char_len(s + me, n - me) : n + 1;
            if ((long)me == last_match_end) continue;
        } else {
            from = me;
        }
        last_match_end = (long)me;
        if (prev != ms) push_span(spans, nspans, cap, prev, ms, 0);
        push_span(spans, nspans, cap, ms, me, 1);
        prev = me;
    }
    if (prev != n) push_span(spans, nspans, cap, prev, n, 0);
    return 0;
}
