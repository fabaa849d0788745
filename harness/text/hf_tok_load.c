/* hf_tok_load.c: reads a tokenizer.json (jansson) into an HfTok (see
 * hf_tok.h and hf_tok_internal.h). Every key of every object is either
 * understood or refused: the message names the file, the JSON path
 * (`pre_tokenizer.pretokenizers[0].pattern.Regex`) and the value. Ids are
 * checked the way the library assigns them: the vocabulary holds ids
 * 0..N-1 exactly once, and an added token gets the id of its text in the
 * vocabulary, else the next free id after N, in file order; a file whose
 * added_tokens say otherwise is refused rather than silently renumbered. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_json_scan.h"
#include "hf_tok_internal.h"
#include "hf_unicode.h"
#include "util.h"

/* ---------------------------------------------------------------- messages */

typedef struct {
    const char *file;
} Ctx;

/* "FILE: PATH = VALUE: message" (VALUE: the JSON text, NULL when missing); -1. */
static int vbad_text(const Ctx *c, const char *jpath, const char *val, size_t vlen, const char *fmt, va_list ap) {
    char msg[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    qh_error("%s: %s%s%.*s%s: %s", c->file, jpath, val ? " = " : " is missing", val ? (int)(vlen > 150 ? 150 : vlen) : 0,
             val ? val : "", val && vlen > 150 ? "..." : "", msg);
    return -1;
}

static int bad_text(const Ctx *c, const char *jpath, const char *val, size_t vlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vbad_text(c, jpath, val, vlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int bad(const Ctx *c, const char *jpath, const json_t *v, const char *fmt, ...) {
    char *val = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    va_list ap;
    va_start(ap, fmt);
    vbad_text(c, jpath, val, val ? strlen(val) : 0, fmt, ap);
    va_end(ap);
    free(val);
    return -1;
}

static void join(char *out, size_t n, const char *base, const char *key) {
    snprintf(out, n, "%s%s%s", base, *base ? "." : "", key);
}
static void joini(char *out, size_t n, const char *base, size_t i) { snprintf(out, n, "%s[%zu]", base, i); }

/* Refuse keys of obj outside allowed (NULL-terminated). */
static int check_keys(const Ctx *c, const char *jpath, json_t *obj, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, key);
        if (!ok) {
            char p[512], list[300] = "";
            join(p, sizeof p, jpath, key);
            for (const char *const *a = allowed; *a; a++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
            return bad(c, p, v, "unknown key (expected only: %s)", list);
        }
    }
    return 0;
}

static int want_object(const Ctx *c, const char *jpath, json_t *v) {
    return json_is_object(v) ? 0 : bad(c, jpath, v, "expected an object");
}

/* Optional bool: absent or null -> dflt. */
static int get_bool(const Ctx *c, const char *jpath, json_t *obj, const char *key, int dflt, int *out) {
    json_t *v = json_object_get(obj, key);
    char p[512];
    join(p, sizeof p, jpath, key);
    if (!v || json_is_null(v)) {
        if (dflt < 0) return bad(c, p, v, "expected true or false");
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v)) return bad(c, p, v, "expected true or false");
    *out = json_is_true(v);
    return 0;
}

/* Required string (allow_null: null gives NULL). */
static int get_str(const Ctx *c, const char *jpath, json_t *obj, const char *key, int allow_null, const char **s,
                   size_t *len) {
    json_t *v = json_object_get(obj, key);
    char p[512];
    join(p, sizeof p, jpath, key);
    if (allow_null && (!v || json_is_null(v))) {
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (!json_is_string(v)) return bad(c, p, v, "expected a string");
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* Required integer in [lo, hi]. */
static int get_int(const Ctx *c, const char *jpath, json_t *obj, const char *key, long long lo, long long hi,
                   long long *out) {
    json_t *v = json_object_get(obj, key);
    char p[512];
    join(p, sizeof p, jpath, key);
    if (!json_is_integer(v)) return bad(c, p, v, "expected an integer");
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(c, p, v, "expected an integer in %lld..%lld", lo, hi);
    *out = x;
    return 0;
}

static const char *type_of(json_t *obj) { return json_string_value(json_object_get(obj, "type")); }

/* A value that must be null (or absent): truncation, padding. */
static int want_null(const Ctx *c, const char *key, json_t *root, const char *why) {
    json_t *v = json_object_get(root, key);
    return !v || json_is_null(v) ? 0 : bad(c, key, v, "%s", why);
}

/* One character (a JSON string of exactly one codepoint). */
static int get_char(const Ctx *c, const char *jpath, json_t *obj, const char *key, uint32_t *cp, char *utf8,
                    size_t *ulen) {
    const char *s = NULL;
    size_t n = 0, k;
    char p[512];
    join(p, sizeof p, jpath, key);
    if (get_str(c, jpath, obj, key, 0, &s, &n) != 0) return -1;
    if (n == 0 || u8_char_len(s, n) != n) return bad(c, p, json_object_get(obj, key), "expected exactly one character");
    *cp = u8_decode(s, n, &k);
    if (utf8) memcpy(utf8, s, n), utf8[n] = '\0';
    if (ulen) *ulen = n;
    return 0;
}

/* A Split / Replace pattern: {"String": s} or {"Regex": r}. */
static int get_pattern(const Ctx *c, const char *jpath, json_t *obj, HfRegex *re) {
    char p[512], q[560], err[400];
    join(p, sizeof p, jpath, "pattern");
    json_t *pat = json_object_get(obj, "pattern");
    if (!json_is_object(pat) || json_object_size(pat) != 1)
        return bad(c, p, pat, "expected {\"String\": ...} or {\"Regex\": ...}");
    json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    json_t *v = s ? s : r;
    join(q, sizeof q, p, s ? "String" : "Regex");
    if (!v) return bad(c, p, pat, "expected {\"String\": ...} or {\"Regex\": ...}");
    if (!json_is_string(v)) return bad(c, q, v, "expected a string");
    if (hf_regex_compile(re, json_string_value(v), json_string_length(v), s != NULL, err, sizeof err) != 0)
        return bad(c, q, v, "%s", err);
    return 0;
}

static int get_behavior(const Ctx *c, const char *jpath, json_t *obj, int required, HfSplitBehavior *b) {
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    json_t *v = json_object_get(obj, "behavior");
    char p[512];
    join(p, sizeof p, jpath, "behavior");
    if (!v && !required) {
        *b = SPLIT_ISOLATED;
        return 0;
    }
    for (int i = 0; i < 5; i++)
        if (json_is_string(v) && !strcmp(json_string_value(v), names[i])) {
            *b = (HfSplitBehavior)i;
            return 0;
        }
    return bad(c, p, v, "expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

/* Metaspace's settings (pre-tokenizer and decoder alike). */
static int get_metaspace(const Ctx *c, const char *jpath, json_t *o, uint32_t *cp, char *rep, size_t *rep_len,
                         HfPrependScheme *scheme, int *split) {
    static const char *const keys[] = {"type", "replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep", NULL};
    if (check_keys(c, jpath, o, keys) || get_char(c, jpath, o, "replacement", cp, rep, rep_len)) return -1;
    json_t *ps = json_object_get(o, "prepend_scheme");
    char p[512];
    join(p, sizeof p, jpath, "prepend_scheme");
    *scheme = PREPEND_ALWAYS;
    if (ps) {
        const char *s = json_string_value(ps);
        if (s && !strcmp(s, "always")) *scheme = PREPEND_ALWAYS;
        else if (s && !strcmp(s, "first")) *scheme = PREPEND_FIRST;
        else if (s && !strcmp(s, "never")) *scheme = PREPEND_NEVER;
        else return bad(c, p, ps, "expected \"always\", \"first\" or \"never\"");
    }
    json_t *aps = json_object_get(o, "add_prefix_space");
    if (aps && !json_is_null(aps)) {
        join(p, sizeof p, jpath, "add_prefix_space");
        if (!json_is_boolean(aps)) return bad(c, p, aps, "expected true, false or null");
        if (json_is_false(aps)) {
            if (*scheme != PREPEND_NEVER) /* prepend_scheme defaults to "always" */
                return bad(c, p, aps, "contradicts prepend_scheme (false requires \"never\")");
            *scheme = PREPEND_NEVER;
        }
    }
    json_t *sr = json_object_get(o, "str_rep");
    if (sr && !json_is_null(sr) && !json_is_string(sr)) {
        join(p, sizeof p, jpath, "str_rep");
        return bad(c, p, sr, "expected a string");
    }
    int unused;
    return get_bool(c, jpath, o, "split", 1, split ? split : &unused); /* the decoder does not split, but checks it */
}

/* ---------------------------------------------------------------- model */

/* model.merges[i] = VALUE refused (the path is formatted only here: 280k merges). */
static int bad_merge(const Ctx *c, size_t i, const char *val, size_t vlen, const char *msg) {
    char p[64];
    snprintf(p, sizeof p, "model.merges[%zu]", i);
    return bad_text(c, p, val, vlen, "%s", msg);
}

static int bad_merge_json(const Ctx *c, size_t i, const json_t *e, const char *msg) {
    char *val = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT);
    int rc = bad_merge(c, i, val, val ? strlen(val) : 0, msg);
    free(val);
    return rc;
}

/* The message for a merge whose token (bpe_add_merge's `missing`) is not in the vocabulary. */
static void missing_token(char *msg, size_t n, int missing, const char *a, size_t al, const char *b, size_t bl) {
    if (missing == 0) snprintf(msg, n, "the token \"%.*s\" is not in model.vocab", (int)(al > 200 ? 200 : al), a);
    else if (missing == 1) snprintf(msg, n, "the token \"%.*s\" is not in model.vocab", (int)(bl > 200 ? 200 : bl), b);
    else
        snprintf(msg, n, "the merged token \"%.*s%.*s\" is not in model.vocab", (int)(al > 100 ? 100 : al), a,
                 (int)(bl > 100 ? 100 : bl), b);
}

/* One vocabulary entry, from either reader: key -> id (is_int 0: not an integer). */
static int vocab_entry(const Ctx *c, HfTok *h, size_t N, const char *key, size_t klen, int is_int, long long id,
                       const char *val, size_t vlen) {
    if (is_int && id >= 0 && (size_t)id < N && bpe_set_token(&h->model, (int)id, key, klen) == 0) return 0;
    char p[300]; /* the path is only written out for an error */
    snprintf(p, sizeof p, "model.vocab[\"%.200s\"]", key);
    if (!is_int) return bad_text(c, p, val, vlen, "expected an integer id");
    if (id < 0 || (size_t)id >= N)
        return bad_text(c, p, val, vlen, "id out of range: the vocabulary has %zu entries, so ids 0..%zu", N, N - 1);
    return bad_text(c, p, val, vlen, "duplicated id: token \"%.200s\" has it too", bpe_token(&h->model, (int)id, NULL));
}

/* "a b" -> the two tokens; 0, or -1 when it is not two tokens and one space. */
static int split_legacy(const char *s, size_t n, const char **a, size_t *al, const char **b, size_t *bl) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) return -1;
    *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = n - *al - 1;
    return 0;
}

/* The vocabulary and merges from the jansson tree. */
static int read_vocab_merges_json(const Ctx *c, json_t *vocab, json_t *merges, HfTok *h) {
    size_t N = json_object_size(vocab);
    if (N == 0) return bad(c, "model.vocab", vocab, "the vocabulary is empty");
    if (N > (size_t)INT32_MAX / 2) return bad(c, "model.vocab", NULL, "%zu entries is too many", N);
    bpe_init(&h->model, (int)N, json_array_size(merges));
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        int is_int = json_is_integer(v);
        long long id = is_int ? json_integer_value(v) : -1;
        if (is_int && id >= 0 && (size_t)id < N && bpe_set_token(&h->model, (int)id, key, strlen(key)) == 0) continue;
        char *val = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        vocab_entry(c, h, N, key, strlen(key), is_int, id, val, val ? strlen(val) : 0);
        free(val);
        return -1;
    }
    int bad_id;
    if (bpe_finish_vocab(&h->model, &bad_id) != 0) /* unreachable: N distinct keys, N distinct ids in 0..N-1 */
        return bad(c, "model.vocab", NULL, "no token has id %d", bad_id);
    size_t nm = json_array_size(merges), bufn = 2 * h->model.max_len + 2;
    char *buf = qh_malloc(bufn);
    int legacy = nm > 0 && json_is_string(json_array_get(merges, 0));
    uint32_t rank = 0;
    int rc = 0;
    for (size_t i = 0; i < nm && rc == 0; i++) {
        json_t *e = json_array_get(merges, i);
        const char *a, *b;
        size_t al, bl;
        if (legacy) {
            if (!json_is_string(e)) {
                rc = bad_merge_json(c, i, e, "expected a string \"a b\" like model.merges[0]");
                break;
            }
            const char *s = json_string_value(e);
            size_t n = json_string_length(e);
            if (n >= 8 && !strncmp(s, "#version", 8)) continue; /* the library skips these lines */
            if (memchr(s, '\0', n) || split_legacy(s, n, &a, &al, &b, &bl)) {
                rc = bad_merge_json(c, i, e, "expected two tokens separated by one space");
                break;
            }
        } else {
            json_t *ja = json_array_get(e, 0), *jb = json_array_get(e, 1);
            if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(ja) || !json_is_string(jb)) {
                rc = bad_merge_json(c, i, e, "expected a pair [\"a\", \"b\"] like model.merges[0]");
                break;
            }
            a = json_string_value(ja), al = json_string_length(ja), b = json_string_value(jb), bl = json_string_length(jb);
        }
        int missing;
        if (bpe_add_merge(&h->model, a, al, b, bl, rank++, buf, bufn, &missing) != 0) {
            char msg[300];
            missing_token(msg, sizeof msg, missing, a, al, b, bl);
            rc = bad_merge_json(c, i, e, msg);
        }
    }
    free(buf);
    return rc;
}

/* The vocabulary and merges read straight from the file text (hf_json_scan.h). */
static int read_vocab_merges_fast(const Ctx *c, const char *text, HfJsonSpan vs, HfJsonSpan ms, HfTok *h) {
    HfJsonReader r = {text, vs.start, vs.end, ""};
    size_t cap = vs.end - vs.start + 1, used = 0, n = 0, ncap = 4096;
    char *keys = qh_malloc(cap);        /* decoded keys, NUL-separated */
    size_t *koff = qh_malloc(sizeof(size_t) * ncap), *klen = qh_malloc(sizeof(size_t) * ncap);
    long long *ids = qh_malloc(sizeof(long long) * ncap);
    size_t *vstart = qh_malloc(sizeof(size_t) * ncap), *vend = qh_malloc(sizeof(size_t) * ncap);
    char *isint = qh_malloc(ncap);
    int rc = hf_json_expect(&r, '{');
    if (rc == 0 && hf_json_peek(&r) != '}') {
        for (;;) {
            if (n == ncap) {
                ncap *= 2;
                koff = qh_realloc(koff, sizeof(size_t) * ncap), klen = qh_realloc(klen, sizeof(size_t) * ncap);
                ids = qh_realloc(ids, sizeof(long long) * ncap);
                vstart = qh_realloc(vstart, sizeof(size_t) * ncap), vend = qh_realloc(vend, sizeof(size_t) * ncap);
                isint = qh_realloc(isint, ncap);
            }
            size_t kl;
            if ((rc = hf_json_string(&r, keys + used, cap - used - 1, &kl)) || (rc = hf_json_expect(&r, ':'))) break;
            int got = hf_json_integer(&r, &ids[n], &vstart[n], &vend[n]);
            if ((rc = got < 0 ? -1 : 0)) break;
            isint[n] = got == 0;
            keys[used + kl] = '\0';
            koff[n] = used, klen[n] = kl;
            used += kl + 1;
            n++;
            char d = hf_json_peek(&r);
            r.pos++;
            if (d == '}') break;
            if (d != ',') {
                rc = -1;
                snprintf(r.err, sizeof r.err, " not valid JSON: expected ',' or '}' after entry %zu", n);
                break;
            }
        }
    } else if (rc == 0) {
        r.pos++;
    }
    if (rc) {
        rc = qh_error("%s:%s (in model.vocab)", c->file, r.err);
    } else if (n == 0) {
        rc = bad_text(c, "model.vocab", "{}", 2, "the vocabulary is empty");
    } else if (n > (size_t)INT32_MAX / 2) {
        rc = bad_text(c, "model.vocab", "{...}", 5, "%zu entries is too many", n);
    } else {
        bpe_init(&h->model, (int)n, 1024);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = vocab_entry(c, h, n, keys + koff[i], klen[i], isint[i], ids[i], text + vstart[i], vend[i] - vstart[i]);
        int dup;
        if (rc == 0 && bpe_finish_vocab(&h->model, &dup) != 0) { /* n ids in 0..n-1, all distinct: a repeated key */
            rc = qh_error("%s: model.vocab: not valid JSON: the key \"%.200s\" appears twice", c->file,
                          bpe_token(&h->model, dup, NULL));
        }
    }
    free(keys), free(koff), free(klen), free(ids), free(vstart), free(vend), free(isint);
    if (rc) return -1;

    /* merges: all "a b" strings, or all ["a", "b"] pairs */
    size_t bufn = 2 * h->model.max_len + 2, sn = 4 * h->model.max_len + 16;
    char *buf = qh_malloc(bufn), *sa = qh_malloc(sn), *sb = qh_malloc(sn);
    r = (HfJsonReader){text, ms.start, ms.end, ""};
    rc = hf_json_expect(&r, '[');
    int legacy = hf_json_peek(&r) == '"', done = hf_json_peek(&r) == ']';
    if (done) r.pos++;
    uint32_t rank = 0;
    for (size_t i = 0; rc == 0 && !done; i++) {
        size_t e0 = (hf_json_peek(&r), r.pos), al, bl;
        const char *a = sa, *b = sb;
        int shape = 0; /* 0 ok, 1 the wrong shape for this merge list */
        if (legacy) {
            if (hf_json_peek(&r) != '"') shape = 1;
            else if (hf_json_string(&r, sa, sn, &al) != 0) shape = 2; /* a string no token can be: too long or bad */
            else if (al >= 8 && sa[0] == '#' && !strncmp(sa, "#version", 8)) a = NULL;
            else if (split_legacy(sa, al, &a, &al, &b, &bl)) shape = 3;
        } else {
            if (hf_json_expect(&r, '[') || hf_json_string(&r, sa, sn, &al) || hf_json_expect(&r, ',') ||
                hf_json_string(&r, sb, sn, &bl) || hf_json_expect(&r, ']'))
                shape = 1;
        }
        if (shape) {
            r.pos = e0; /* the whole element, for the message */
            if (hf_json_skip(&r) != 0) {
                rc = qh_error("%s:%s (in model.merges)", c->file, r.err);
                break;
            }
            rc = bad_merge(c, i, text + e0, r.pos - e0,
                           shape == 3  ? "expected two tokens separated by one space"
                           : legacy    ? "expected a string \"a b\" like model.merges[0]"
                                       : "expected a pair [\"a\", \"b\"] like model.merges[0]");
            break;
        }
        if (a) {
            int missing;
            if (bpe_add_merge(&h->model, a, al, b, bl, rank, buf, bufn, &missing) != 0) {
                char msg[300];
                missing_token(msg, sizeof msg, missing, a, al, b, bl);
                rc = bad_merge(c, i, text + e0, r.pos - e0, msg);
                break;
            }
            rank++;
        }
        char d = hf_json_peek(&r);
        r.pos++;
        if (d == ']') break;
        if (d != ',') rc = qh_error("%s: model.merges: not valid JSON: expected ',' or ']' after element %zu", c->file, i);
    }
    free(buf), free(sa), free(sb);
    return rc ? -1 : 0;
}

/* model: the small keys from the jansson tree; vocab and merges from it, or,
 * when fast is not NULL, from the file text at fast[0] and fast[1] (the tree
 * then holds {} and [] there). */
static int load_model(const Ctx *c, json_t *root, const char *text, const HfJsonSpan *fast, HfTok *h) {
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                                       "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges", NULL};
    json_t *m = json_object_get(root, "model");
    if (want_object(c, "model", m)) return -1;
    json_t *type = json_object_get(m, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "BPE") != 0)
        return bad(c, "model.type", type, "unknown model type (only BPE is supported)");
    if (check_keys(c, "model", m, keys)) return -1;
    json_t *d = json_object_get(m, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0.0))
        return bad(c, "model.dropout", d, "BPE dropout draws random merges: not supported (expected null)");
    static const char *const empty_only[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(m, empty_only[i]);
        char p[128];
        snprintf(p, sizeof p, "model.%s", empty_only[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return bad(c, p, v, "not supported (expected null or \"\")");
    }
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) return bad(c, "model.vocab", vocab, "expected an object (token -> id)");
    if (!json_is_array(merges)) return bad(c, "model.merges", merges, "expected an array");
    if (fast ? read_vocab_merges_fast(c, text, fast[0], fast[1], h) : read_vocab_merges_json(c, vocab, merges, h)) return -1;
    int fuse = 0, fallback = 0, ignore = 0;
    if (get_bool(c, "model", m, "fuse_unk", 0, &fuse) || get_bool(c, "model", m, "byte_fallback", 0, &fallback) ||
        get_bool(c, "model", m, "ignore_merges", 0, &ignore))
        return -1;
    h->model.fuse_unk = fuse;
    h->model.byte_fallback = fallback;
    h->model.ignore_merges = ignore;
    const char *unk = NULL;
    size_t unk_len = 0;
    if (get_str(c, "model", m, "unk_token", 1, &unk, &unk_len)) return -1;
    if (unk && (h->model.unk_id = bpe_lookup(&h->model, unk, unk_len)) < 0)
        return bad(c, "model.unk_token", json_object_get(m, "unk_token"), "not a token of model.vocab");
    return 0;
}

/* ---------------------------------------------------------------- normalizer */

static int add_norm(const Ctx *c, const char *jpath, json_t *o, HfTok *h) {
    if (want_object(c, jpath, o)) return -1;
    const char *t = type_of(o);
    char p[512];
    join(p, sizeof p, jpath, "type");
    if (!t) return bad(c, p, json_object_get(o, "type"), "expected a normalizer type");
    if (!strcmp(t, "Sequence")) {
        static const char *const keys[] = {"type", "normalizers", NULL};
        if (check_keys(c, jpath, o, keys)) return -1;
        json_t *a = json_object_get(o, "normalizers");
        join(p, sizeof p, jpath, "normalizers");
        if (!json_is_array(a)) return bad(c, p, a, "expected an array");
        for (size_t i = 0; i < json_array_size(a); i++) {
            char q[560];
            joini(q, sizeof q, p, i);
            if (add_norm(c, q, json_array_get(a, i), h)) return -1;
        }
        return 0;
    }
    HfNorm n = {0};
    if (!strcmp(t, "NFC")) {
        static const char *const keys[] = {"type", NULL};
        if (check_keys(c, jpath, o, keys)) return -1;
        n.kind = NORM_NFC;
    } else if (!strcmp(t, "Prepend")) {
        static const char *const keys[] = {"type", "prepend", NULL};
        const char *s = NULL;
        if (check_keys(c, jpath, o, keys) || get_str(c, jpath, o, "prepend", 0, &s, &n.str_len)) return -1;
        n.kind = NORM_PREPEND;
        n.str = qh_malloc(n.str_len + 1);
        memcpy(n.str, s, n.str_len + 1);
    } else if (!strcmp(t, "Replace")) {
        static const char *const keys[] = {"type", "pattern", "content", NULL};
        const char *s = NULL;
        if (check_keys(c, jpath, o, keys) || get_str(c, jpath, o, "content", 0, &s, &n.str_len)) return -1;
        if (get_pattern(c, jpath, o, &n.re)) return -1;
        n.kind = NORM_REPLACE;
        n.str = qh_malloc(n.str_len + 1);
        memcpy(n.str, s, n.str_len + 1);
    } else {
        return bad(c, p, json_object_get(o, "type"), "unknown normalizer (supported: NFC, Prepend, Replace, Sequence)");
    }
    h->norms = qh_realloc(h->norms, sizeof(HfNorm) * (size_t)(h->n_norms + 1));
    h->norms[h->n_norms++] = n;
    return 0;
}

/* ---------------------------------------------------------------- pre-tokenizer */

static int add_pretok(const Ctx *c, const char *jpath, json_t *o, HfTok *h) {
    if (want_object(c, jpath, o)) return -1;
    const char *t = type_of(o);
    char p[512];
    join(p, sizeof p, jpath, "type");
    if (!t) return bad(c, p, json_object_get(o, "type"), "expected a pre-tokenizer type");
    if (!strcmp(t, "Sequence")) {
        static const char *const keys[] = {"type", "pretokenizers", NULL};
        if (check_keys(c, jpath, o, keys)) return -1;
        json_t *a = json_object_get(o, "pretokenizers");
        join(p, sizeof p, jpath, "pretokenizers");
        if (!json_is_array(a)) return bad(c, p, a, "expected an array");
        for (size_t i = 0; i < json_array_size(a); i++) {
            char q[560];
            joini(q, sizeof q, p, i);
            if (add_pretok(c, q, json_array_get(a, i), h)) return -1;
        }
        return 0;
    }
    HfPreTok pt = {0};
    int rc = 0;
    if (!strcmp(t, "Split")) {
        static const char *const keys[] = {"type", "pattern", "behavior", "invert", NULL};
        pt.kind = PT_SPLIT;
        rc = check_keys(c, jpath, o, keys) || get_behavior(c, jpath, o, 1, &pt.behavior) ||
             get_bool(c, jpath, o, "invert", -1, &pt.invert) || get_pattern(c, jpath, o, &pt.re);
    } else if (!strcmp(t, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int trim;
        pt.kind = PT_BYTE_LEVEL;
        rc = check_keys(c, jpath, o, keys) || get_bool(c, jpath, o, "add_prefix_space", -1, &pt.add_prefix_space) ||
             get_bool(c, jpath, o, "trim_offsets", -1, &trim) || get_bool(c, jpath, o, "use_regex", 1, &pt.use_regex);
        if (rc == 0 && pt.use_regex && !h->have_gpt2) {
            static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            char err[200];
            if (hf_regex_compile(&h->gpt2, gpt2, strlen(gpt2), 0, err, sizeof err) != 0)
                return qh_error("%s: the ByteLevel pattern does not compile: %s", c->file, err); /* a build problem */
            h->have_gpt2 = 1;
        }
    } else if (!strcmp(t, "Digits")) {
        static const char *const keys[] = {"type", "individual_digits", NULL};
        pt.kind = PT_DIGITS;
        rc = check_keys(c, jpath, o, keys) || get_bool(c, jpath, o, "individual_digits", -1, &pt.individual_digits);
    } else if (!strcmp(t, "Punctuation")) {
        static const char *const keys[] = {"type", "behavior", NULL};
        pt.kind = PT_PUNCTUATION;
        rc = check_keys(c, jpath, o, keys) || get_behavior(c, jpath, o, 0, &pt.behavior);
    } else if (!strcmp(t, "Metaspace")) {
        uint32_t cp;
        pt.kind = PT_METASPACE;
        rc = get_metaspace(c, jpath, o, &cp, pt.rep, &pt.rep_len, &pt.prepend, &pt.split);
    } else {
        return bad(c, p, json_object_get(o, "type"),
                   "unknown pre-tokenizer (supported: Split, ByteLevel, Digits, Punctuation, Metaspace, Sequence)");
    }
    if (rc == 0 && h->n_pretoks >= HF_MAX_PRETOKS)
        rc = bad(c, p, json_object_get(o, "type"), "more than %d pre-tokenizers in all: not supported", HF_MAX_PRETOKS);
    if (rc) {
        hf_regex_free(&pt.re);
        return -1;
    }
    h->pretoks = qh_realloc(h->pretoks, sizeof(HfPreTok) * (size_t)(h->n_pretoks + 1));
    h->pretoks[h->n_pretoks++] = pt;
    return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int cmp_added_first_byte(const void *a, const void *b, void *arg) {
    const HfTok *h = arg;
    const HfAdded *x = &h->added[*(const int *)a], *y = &h->added[*(const int *)b];
    unsigned char cx = (unsigned char)(x->normalized ? x->norm[0] : x->content[0]);
    unsigned char cy = (unsigned char)(y->normalized ? y->norm[0] : y->content[0]);
    if (cx != cy) return cx < cy ? -1 : 1;
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static void build_set(HfTok *h, HfAddedSet *s, int normalized) {
    s->idx = qh_malloc(sizeof(int) * (size_t)(h->n_added + 1));
    s->n = 0;
    for (int i = 0; i < h->n_added; i++)
        if (h->added[i].normalized == normalized && (normalized ? h->added[i].norm_len : h->added[i].len) > 0)
            s->idx[s->n++] = i;
    qsort_r(s->idx, (size_t)s->n, sizeof(int), cmp_added_first_byte, h);
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < s->n && b < 256) {
            const HfAdded *a = &h->added[s->idx[k]];
            if ((unsigned char)(normalized ? a->norm[0] : a->content[0]) >= b) break;
            k++;
        }
        s->start[b] = b < 256 ? k : s->n;
    }
}

static int load_added(const Ctx *c, json_t *root, HfTok *h) {
    static const char *const keys[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special", NULL};
    json_t *a = json_object_get(root, "added_tokens");
    int N = h->model.n;
    h->n_ids = N;
    if (a && !json_is_null(a)) {
        if (!json_is_array(a)) return bad(c, "added_tokens", a, "expected an array");
        size_t na = json_array_size(a);
        h->added = qh_calloc(na + 1, sizeof(HfAdded));
        long long next_id = N;
        HfMatchScratch *sc = hf_match_scratch_new();
        int rc = 0;
        for (size_t i = 0; i < na && rc == 0; i++) {
            json_t *o = json_array_get(a, i);
            char p[64], q[96];
            joini(p, sizeof p, "added_tokens", i);
            HfAdded *t = &h->added[h->n_added];
            const char *s = NULL;
            long long id;
            if ((rc = want_object(c, p, o) || check_keys(c, p, o, keys) || get_str(c, p, o, "content", 0, &s, &t->len) ||
                      get_int(c, p, o, "id", 0, INT32_MAX / 2, &id) ||
                      get_bool(c, p, o, "single_word", -1, &t->single_word) || get_bool(c, p, o, "lstrip", -1, &t->lstrip) ||
                      get_bool(c, p, o, "rstrip", -1, &t->rstrip) || get_bool(c, p, o, "normalized", -1, &t->normalized) ||
                      get_bool(c, p, o, "special", -1, &t->special)))
                break;
            join(q, sizeof q, p, "content");
            if (t->len == 0) {
                rc = bad(c, q, json_object_get(o, "content"), "an empty added token");
                break;
            }
            for (int k = 0; k < h->n_added; k++)
                if (h->added[k].len == t->len && !memcmp(h->added[k].content, s, t->len)) {
                    rc = bad(c, q, json_object_get(o, "content"), "the same text as added_tokens[%d]", k);
                    break;
                }
            if (rc) break;
            /* the library's id: the text's vocabulary id, else the next one after the vocabulary */
            int vid = bpe_lookup(&h->model, s, t->len);
            long long expect = vid >= 0 ? vid : next_id++;
            if (id != expect) {
                join(q, sizeof q, p, "id");
                rc = bad(c, q, json_object_get(o, "id"),
                         "the tokenizers library gives this token id %lld (%s), not the id written here", expect,
                         vid >= 0 ? "its id in model.vocab" : "the next id after the vocabulary and the added tokens before it");
                break;
            }
            t->id = (int)id;
            t->content = qh_malloc(t->len + 1);
            memcpy(t->content, s, t->len + 1);
            if (t->normalized && h->has_normalizer) {
                if (hf_tok_normalize(h, sc, t->content, t->len, &t->norm, &t->norm_len) != 0) {
                    rc = bad(c, q, json_object_get(o, "content"), "cannot be normalized");
                    break;
                }
            } else {
                t->norm = qh_malloc(t->len + 1);
                memcpy(t->norm, s, t->len + 1);
                t->norm_len = t->len;
            }
            h->n_added++;
            if (t->id + 1 > h->n_ids) h->n_ids = t->id + 1;
        }
        hf_match_scratch_free(sc);
        if (rc) return -1;
    }
    h->added_of_id = qh_malloc(sizeof(int) * (size_t)h->n_ids);
    for (int i = 0; i < h->n_ids; i++) h->added_of_id[i] = -1;
    for (int i = 0; i < h->n_added; i++) h->added_of_id[h->added[i].id] = i;
    build_set(h, &h->raw_set, 0);
    build_set(h, &h->norm_set, 1);
    return 0;
}

/* ---------------------------------------------------------------- post-processor */

/* One template ("single" or "pair"): validated; for "single" its items are built. */
static int load_template(const Ctx *c, const char *jpath, json_t *tpl, json_t *specials, int is_single, HfTok *h,
                         HfTemplate *out) {
    if (!json_is_array(tpl)) return bad(c, jpath, tpl, "expected an array of pieces");
    int nseq = 0;
    for (size_t i = 0; i < json_array_size(tpl); i++) {
        json_t *piece = json_array_get(tpl, i);
        char p[560], q[600];
        joini(p, sizeof p, jpath, i);
        json_t *st = json_object_get(piece, "SpecialToken"), *sq = json_object_get(piece, "Sequence");
        if (!json_is_object(piece) || json_object_size(piece) != 1 || (!st && !sq))
            return bad(c, p, piece, "expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
        json_t *body = st ? st : sq;
        join(q, sizeof q, p, st ? "SpecialToken" : "Sequence");
        static const char *const keys[] = {"id", "type_id", NULL};
        long long type_id;
        if (want_object(c, q, body) || check_keys(c, q, body, keys) || get_int(c, q, body, "type_id", 0, INT32_MAX, &type_id))
            return -1;
        json_t *id = json_object_get(body, "id");
        char r[640];
        join(r, sizeof r, q, "id");
        if (!json_is_string(id)) return bad(c, r, id, "expected a string");
        HfTplItem item = {NULL, -1};
        if (sq) {
            const char *s = json_string_value(id);
            if (strcmp(s, "A") && strcmp(s, "B")) return bad(c, r, id, "expected \"A\" or \"B\"");
            if (is_single && strcmp(s, "A")) return bad(c, r, id, "the single-sequence template can only hold A");
            nseq += !strcmp(s, "A");
        } else {
            json_t *sp = json_object_get(specials, json_string_value(id));
            if (!sp) return bad(c, r, id, "not one of the template's special_tokens");
            json_t *ids = json_object_get(sp, "ids");
            item.n = (int)json_array_size(ids);
            item.ids = qh_malloc(sizeof(int) * (size_t)(item.n + 1));
            for (int k = 0; k < item.n; k++) item.ids[k] = (int)json_integer_value(json_array_get(ids, (size_t)k));
        }
        if (is_single) {
            out->items = qh_realloc(out->items, sizeof(HfTplItem) * (size_t)(out->n + 1));
            out->items[out->n++] = item;
        } else {
            free(item.ids);
        }
    }
    if (is_single && nseq != 1) return bad(c, jpath, tpl, "expected the sequence A exactly once");
    (void)h;
    return 0;
}

static int add_post(const Ctx *c, const char *jpath, json_t *o, HfTok *h) {
    if (want_object(c, jpath, o)) return -1;
    const char *t = type_of(o);
    char p[512];
    join(p, sizeof p, jpath, "type");
    if (!t) return bad(c, p, json_object_get(o, "type"), "expected a post-processor type");
    if (!strcmp(t, "Sequence")) {
        static const char *const keys[] = {"type", "processors", NULL};
        if (check_keys(c, jpath, o, keys)) return -1;
        json_t *a = json_object_get(o, "processors");
        join(p, sizeof p, jpath, "processors");
        if (!json_is_array(a)) return bad(c, p, a, "expected an array");
        for (size_t i = 0; i < json_array_size(a); i++) {
            char q[560];
            joini(q, sizeof q, p, i);
            if (add_post(c, q, json_array_get(a, i), h)) return -1;
        }
        return 0;
    }
    if (!strcmp(t, "ByteLevel")) { /* offsets only: no effect on ids */
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int x;
        return check_keys(c, jpath, o, keys) || get_bool(c, jpath, o, "add_prefix_space", -1, &x) ||
                       get_bool(c, jpath, o, "trim_offsets", -1, &x) || get_bool(c, jpath, o, "use_regex", 1, &x)
                   ? -1
                   : 0;
    }
    if (strcmp(t, "TemplateProcessing") != 0)
        return bad(c, p, json_object_get(o, "type"),
                   "unknown post-processor (supported: TemplateProcessing, ByteLevel, Sequence)");
    static const char *const keys[] = {"type", "single", "pair", "special_tokens", NULL};
    if (check_keys(c, jpath, o, keys)) return -1;
    json_t *sp = json_object_get(o, "special_tokens");
    join(p, sizeof p, jpath, "special_tokens");
    if (!json_is_object(sp)) return bad(c, p, sp, "expected an object");
    const char *name;
    json_t *v;
    json_object_foreach(sp, name, v) {
        static const char *const tkeys[] = {"id", "ids", "tokens", NULL};
        char q[800], r[840];
        snprintf(q, sizeof q, "%s[\"%.200s\"]", p, name);
        if (want_object(c, q, v) || check_keys(c, q, v, tkeys)) return -1;
        json_t *ids = json_object_get(v, "ids"), *toks = json_object_get(v, "tokens"), *id = json_object_get(v, "id");
        join(r, sizeof r, q, "id");
        if (!json_is_string(id)) return bad(c, r, id, "expected a string");
        join(r, sizeof r, q, "ids");
        if (!json_is_array(ids)) return bad(c, r, ids, "expected an array of token ids");
        for (size_t k = 0; k < json_array_size(ids); k++) {
            json_t *x = json_array_get(ids, k);
            char s[880];
            joini(s, sizeof s, r, k);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= h->n_ids)
                return bad(c, s, x, "expected a token id of this file (0..%d)", h->n_ids - 1);
        }
        join(r, sizeof r, q, "tokens");
        if (!json_is_array(toks) || json_array_size(toks) != json_array_size(ids))
            return bad(c, r, toks, "expected an array of strings as long as ids");
    }
    HfTemplate tpl = {0};
    char q[560];
    join(q, sizeof q, jpath, "single");
    int rc = load_template(c, q, json_object_get(o, "single"), sp, 1, h, &tpl);
    join(q, sizeof q, jpath, "pair");
    if (rc == 0) rc = load_template(c, q, json_object_get(o, "pair"), sp, 0, h, NULL);
    if (rc) {
        for (int i = 0; i < tpl.n; i++) free(tpl.items[i].ids);
        free(tpl.items);
        return -1;
    }
    h->tpls = qh_realloc(h->tpls, sizeof(HfTemplate) * (size_t)(h->n_tpls + 1));
    h->tpls[h->n_tpls++] = tpl;
    return 0;
}

/* What the templates, applied in order, put before and after a text. */
static void compose_templates(HfTok *h) {
    for (int t = 0; t < h->n_tpls; t++) {
        const HfTemplate *tp = &h->tpls[t];
        int np = 0, ns = 0, seen = 0;
        for (int i = 0; i < tp->n; i++) {
            if (tp->items[i].n < 0) seen = 1;
            else if (seen) ns += tp->items[i].n;
            else np += tp->items[i].n;
        }
        int *pre = qh_malloc(sizeof(int) * (size_t)(np + h->n_prefix + 1));
        int *suf = qh_malloc(sizeof(int) * (size_t)(ns + h->n_suffix + 1));
        int kp = 0, ks = 0;
        seen = 0;
        for (int i = 0; i < tp->n; i++) {
            const HfTplItem *it = &tp->items[i];
            if (it->n < 0) {
                seen = 1;
                if (h->n_prefix) memcpy(pre + kp, h->prefix, sizeof(int) * (size_t)h->n_prefix);
                kp += h->n_prefix;
                if (h->n_suffix) memcpy(suf, h->suffix, sizeof(int) * (size_t)h->n_suffix);
                ks = h->n_suffix;
            } else if (seen) {
                if (it->n) memcpy(suf + ks, it->ids, sizeof(int) * (size_t)it->n);
                ks += it->n;
            } else {
                if (it->n) memcpy(pre + kp, it->ids, sizeof(int) * (size_t)it->n);
                kp += it->n;
            }
        }
        free(h->prefix);
        free(h->suffix);
        h->prefix = pre, h->n_prefix = kp;
        h->suffix = suf, h->n_suffix = ks;
    }
}

/* ---------------------------------------------------------------- decoder */

static int add_dec(const Ctx *c, const char *jpath, json_t *o, HfTok *h) {
    if (want_object(c, jpath, o)) return -1;
    const char *t = type_of(o);
    char p[512];
    join(p, sizeof p, jpath, "type");
    if (!t) return bad(c, p, json_object_get(o, "type"), "expected a decoder type");
    if (!strcmp(t, "Sequence")) {
        static const char *const keys[] = {"type", "decoders", NULL};
        if (check_keys(c, jpath, o, keys)) return -1;
        json_t *a = json_object_get(o, "decoders");
        join(p, sizeof p, jpath, "decoders");
        if (!json_is_array(a)) return bad(c, p, a, "expected an array");
        for (size_t i = 0; i < json_array_size(a); i++) {
            char q[560];
            joini(q, sizeof q, p, i);
            if (add_dec(c, q, json_array_get(a, i), h)) return -1;
        }
        return 0;
    }
    HfDec d = {0};
    int rc = 0;
    if (!strcmp(t, "ByteLevel")) {
        static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
        int x;
        d.kind = DEC_BYTE_LEVEL;
        rc = check_keys(c, jpath, o, keys) || get_bool(c, jpath, o, "add_prefix_space", -1, &x) ||
             get_bool(c, jpath, o, "trim_offsets", -1, &x) || get_bool(c, jpath, o, "use_regex", 1, &x);
    } else if (!strcmp(t, "Metaspace")) {
        d.kind = DEC_METASPACE;
        int split;
        rc = get_metaspace(c, jpath, o, &d.ch, NULL, NULL, &d.prepend, &split);
    } else if (!strcmp(t, "ByteFallback") || !strcmp(t, "Fuse")) {
        static const char *const keys[] = {"type", NULL};
        d.kind = t[0] == 'F' ? DEC_FUSE : DEC_BYTE_FALLBACK;
        rc = check_keys(c, jpath, o, keys);
    } else if (!strcmp(t, "Strip")) {
        static const char *const keys[] = {"type", "content", "start", "stop", NULL};
        long long a = 0, b = 0;
        d.kind = DEC_STRIP;
        rc = check_keys(c, jpath, o, keys) || get_char(c, jpath, o, "content", &d.ch, NULL, NULL) ||
             get_int(c, jpath, o, "start", 0, 1 << 20, &a) || get_int(c, jpath, o, "stop", 0, 1 << 20, &b);
        d.start = (long)a, d.stop = (long)b;
    } else if (!strcmp(t, "Replace")) {
        static const char *const keys[] = {"type", "pattern", "content", NULL};
        const char *s = NULL;
        d.kind = DEC_REPLACE;
        rc = check_keys(c, jpath, o, keys) || get_str(c, jpath, o, "content", 0, &s, &d.content_len) ||
             get_pattern(c, jpath, o, &d.re);
        if (rc == 0) {
            d.content = qh_malloc(d.content_len + 1);
            memcpy(d.content, s, d.content_len + 1);
        }
    } else {
        return bad(c, p, json_object_get(o, "type"),
                   "unknown decoder (supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence)");
    }
    if (rc) {
        hf_regex_free(&d.re);
        return -1;
    }
    h->decs = qh_realloc(h->decs, sizeof(HfDec) * (size_t)(h->n_decs + 1));
    h->decs[h->n_decs++] = d;
    return 0;
}

/* ---------------------------------------------------------------- the file */

void hf_tok_byte_table(HfTok *h) {
    for (int i = 0; i < 512; i++) h->char_byte[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = self ? (uint32_t)b : 256u + (uint32_t)extra++;
        size_t k = u8_encode(cp, h->byte_char[b]);
        h->byte_char[b][k] = '\0';
        h->char_byte[cp] = (int16_t)b;
    }
}

void hf_tok_free(HfTok *h) {
    if (!h) return;
    free(h->path);
    bpe_free(&h->model);
    for (int i = 0; i < h->n_added; i++) {
        free(h->added[i].content);
        free(h->added[i].norm);
    }
    free(h->added);
    free(h->raw_set.idx);
    free(h->norm_set.idx);
    free(h->added_of_id);
    for (int i = 0; i < h->n_norms; i++) {
        free(h->norms[i].str);
        hf_regex_free(&h->norms[i].re);
    }
    free(h->norms);
    for (int i = 0; i < h->n_pretoks; i++) hf_regex_free(&h->pretoks[i].re);
    free(h->pretoks);
    hf_regex_free(&h->gpt2);
    for (int t = 0; t < h->n_tpls; t++) {
        for (int i = 0; i < h->tpls[t].n; i++) free(h->tpls[t].items[i].ids);
        free(h->tpls[t].items);
    }
    free(h->tpls);
    free(h->prefix);
    free(h->suffix);
    for (int i = 0; i < h->n_decs; i++) {
        hf_regex_free(&h->decs[i].re);
        free(h->decs[i].content);
    }
    free(h->decs);
    free(h);
}

int hf_tok_load(HfTok **out, const char *buf, size_t len, const char *path, int max_ids) {
    *out = NULL;
    Ctx c = {path};
    json_error_t e;
    /* model.vocab and model.merges are most of the file: when they can be
     * found, jansson reads a copy with {} and [] in their place, followed by
     * as many newlines as they spanned (so that its line numbers stay right),
     * and the scanner reads them */
    HfJsonSpan fast[2];
    int have_fast = hf_json_model_spans(buf, len, &fast[0], &fast[1]);
    char *copy = NULL;
    size_t clen = len;
    if (have_fast) {
        int first = fast[1].start < fast[0].start; /* the span that comes first in the file */
        HfJsonSpan sp[2] = {fast[first], fast[!first]};
        copy = qh_malloc(len + 1);
        size_t o = 0, from = 0;
        for (int k = 0; k < 2; k++) {
            memcpy(copy + o, buf + from, sp[k].start - from);
            o += sp[k].start - from;
            int is_merges = sp[k].start == fast[1].start;
            copy[o++] = is_merges ? '[' : '{';
            copy[o++] = is_merges ? ']' : '}';
            for (size_t i = sp[k].start; i < sp[k].end; i++)
                if (buf[i] == '\n') copy[o++] = '\n';
            from = sp[k].end;
        }
        memcpy(copy + o, buf + from, len - from);
        clen = o + len - from;
    }
    json_t *root = json_loadb(copy ? copy : buf, clen, JSON_REJECT_DUPLICATES, &e);
    free(copy);
    if (!root) return qh_error("%s:%d:%d: not valid JSON: %s", path, e.line, e.column, e.text);
    HfTok *h = qh_calloc(1, sizeof *h);
    h->path = qh_strdup(path);
    hf_tok_byte_table(h);
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "post_processor", "decoder", "model", NULL};
    int rc = want_object(&c, "(the top level)", root) || check_keys(&c, "", root, keys);
    json_t *ver = json_object_get(root, "version");
    if (rc == 0 && ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "1.0")))
        rc = bad(&c, "version", ver, "expected \"1.0\"");
    if (rc == 0)
        rc = want_null(&c, "truncation", root, "truncation would cut every text: not supported (expected null)") ||
             want_null(&c, "padding", root, "padding is not supported (expected null)");
    if (rc == 0) rc = load_model(&c, root, buf, have_fast ? fast : NULL, h);
    json_t *v;
    if (rc == 0 && (v = json_object_get(root, "normalizer")) && !json_is_null(v)) {
        h->has_normalizer = 1;
        rc = add_norm(&c, "normalizer", v, h);
    }
    if (rc == 0) rc = load_added(&c, root, h);
    if (rc == 0 && (v = json_object_get(root, "pre_tokenizer")) && !json_is_null(v)) rc = add_pretok(&c, "pre_tokenizer", v, h);
    if (rc == 0 && (v = json_object_get(root, "post_processor")) && !json_is_null(v)) rc = add_post(&c, "post_processor", v, h);
    if (rc == 0) compose_templates(h);
    if (rc == 0 && (v = json_object_get(root, "decoder")) && !json_is_null(v)) {
        h->has_decoder = 1;
        rc = add_dec(&c, "decoder", v, h);
    }
    if (rc == 0 && max_ids > 0 && h->n_ids > max_ids) {
        int top = h->n_ids - 1, a = h->added_of_id[top];
        char p[300];
        json_t *at;
        if (a >= 0) { /* the added token of that id (h->added is in file order) */
            snprintf(p, sizeof p, "added_tokens[%d].id", a);
            at = json_incref(json_object_get(json_array_get(json_object_get(root, "added_tokens"), (size_t)a), "id"));
        } else {
            snprintf(p, sizeof p, "model.vocab[\"%.200s\"]", bpe_token(&h->model, top, NULL));
            at = json_integer(top);
        }
        rc = bad(&c, p, at, "token id %d does not fit the model's embedding table of %d rows (the tokenizer has %d ids)",
                 top, max_ids, h->n_ids);
        json_decref(at);
    }
    json_decref(root);
    if (rc) {
        hf_tok_free(h);
        return -1;
    }
    *out = h;
    return 0;
}
