/* hf_json_scan.c: the strict JSON scanner for model.vocab and model.merges
 * (see hf_json_scan.h). Recursion depth of hf_json_skip is bounded. */
#include "hf_json_scan.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hf_unicode.h"

#define MAX_DEPTH 2048 /* jansson's own limit */

static int fail(HfJsonReader *r, size_t at, const char *fmt, ...) {
    int line = 1, col = 1;
    for (size_t i = 0; i < at; i++) {
        if (r->buf[i] == '\n') line++, col = 1;
        else col++;
    }
    char what[150];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(r->err, sizeof r->err, "%d:%d: not valid JSON: %s", line, col, what);
    return -1;
}

static void ws(HfJsonReader *r) {
    while (r->pos < r->end) {
        char c = r->buf[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

char hf_json_peek(HfJsonReader *r) {
    ws(r);
    return r->pos < r->end ? r->buf[r->pos] : '\0';
}

int hf_json_expect(HfJsonReader *r, char c) {
    if (hf_json_peek(r) != c) return fail(r, r->pos, "expected '%c'", c);
    r->pos++;
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int hex4(HfJsonReader *r, size_t at, unsigned *v) {
    if (r->end - at < 4) return fail(r, at, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(r->buf[at + (size_t)i]);
        if (h < 0) return fail(r, at, "invalid \\u escape");
        *v = *v * 16 + (unsigned)h;
    }
    return 0;
}

int hf_json_string(HfJsonReader *r, char *dst, size_t dstn, size_t *len) {
    char tmp[4]; /* without dst: characters are checked, not kept */
    if (hf_json_peek(r) != '"') return fail(r, r->pos, "expected a string");
    size_t i = r->pos + 1, o = 0;
    const char *b = r->buf;
    for (;;) {
        if (i >= r->end) return fail(r, i, "unterminated string");
        unsigned char c = (unsigned char)b[i];
        if (c == '"') break;
        if (c < 0x20) return fail(r, i, "control character 0x%02x in a string", c);
        if (dst && o + 4 > dstn) return fail(r, i, "string too long");
        char *out = dst ? dst + o : tmp;
        if (c == '\\') {
            if (i + 1 >= r->end) return fail(r, i, "unterminated string");
            char e = b[i + 1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                out[0] = map[simple - "\"\\/bfnrt"];
                o++;
                i += 2;
                continue;
            }
            if (e != 'u') return fail(r, i, "invalid escape '\\%c'", e);
            unsigned v;
            if (hex4(r, i + 2, &v)) return -1;
            size_t used = 6;
            if (v >= 0xD800 && v <= 0xDBFF) { /* a high surrogate needs its low half */
                unsigned lo;
                if (i + 12 > r->end || b[i + 6] != '\\' || b[i + 7] != 'u' || hex4(r, i + 8, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return fail(r, i, "invalid Unicode surrogate pair");
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                used = 12;
            } else if (v >= 0xDC00 && v <= 0xDFFF) {
                return fail(r, i, "invalid Unicode surrogate pair");
            }
            if (v == 0) return fail(r, i, "\\u0000 is not allowed");
            o += u8_encode(v, out);
            i += used;
            continue;
        }
        if (c < 0x80) {
            out[0] = (char)c;
            o++;
            i++;
            continue;
        }
        /* a UTF-8 sequence: copied if valid */
        size_t k = u8_char_len(b + i, r->end - i);
        if (!u8_valid(b + i, k) || (k == 1)) return fail(r, i, "invalid UTF-8 in a string");
        memcpy(out, b + i, k);
        o += k;
        i += k;
    }
    r->pos = i + 1;
    *len = o;
    return 0;
}

/* A JSON number at pos: its end, and whether it is an integer. -1 if malformed. */
static int number(HfJsonReader *r, size_t *end, int *is_int) {
    size_t i = r->pos;
    const char *b = r->buf;
    *is_int = 1;
    if (i < r->end && b[i] == '-') i++;
    if (i >= r->end || b[i] < '0' || b[i] > '9') return fail(r, r->pos, "invalid number");
    if (b[i] == '0') {
        i++;
    } else {
        while (i < r->end && b[i] >= '0' && b[i] <= '9') i++;
    }
    if (i < r->end && b[i] == '.') {
        *is_int = 0;
        i++;
        if (i >= r->end || b[i] < '0' || b[i] > '9') return fail(r, r->pos, "invalid number");
        while (i < r->end && b[i] >= '0' && b[i] <= '9') i++;
    }
    if (i < r->end && (b[i] == 'e' || b[i] == 'E')) {
        *is_int = 0;
        i++;
        if (i < r->end && (b[i] == '+' || b[i] == '-')) i++;
        if (i >= r->end || b[i] < '0' || b[i] > '9') return fail(r, r->pos, "invalid number");
        while (i < r->end && b[i] >= '0' && b[i] <= '9') i++;
    }
    *end = i;
    return 0;
}

static int skip_depth(HfJsonReader *r, int depth);

int hf_json_integer(HfJsonReader *r, long long *v, size_t *vs, size_t *ve) {
    char c = hf_json_peek(r);
    *vs = r->pos;
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t end;
        int is_int;
        if (number(r, &end, &is_int)) return -1;
        if (is_int) {
            long long x = 0;
            int neg = r->buf[r->pos] == '-';
            for (size_t i = r->pos + (size_t)neg; i < end; i++) {
                int d = r->buf[i] - '0';
                if (x > (LLONG_MAX - d) / 10) return fail(r, r->pos, "integer too big");
                x = 10 * x + d;
            }
            *v = neg ? -x : x;
            r->pos = end;
            *ve = end;
            return 0;
        }
        r->pos = end;
        *ve = end;
        return 1;
    }
    if (skip_depth(r, 0)) return -1;
    *ve = r->pos;
    return 1;
}

static int literal(HfJsonReader *r, const char *word) {
    size_t n = strlen(word);
    if (r->end - r->pos < n || memcmp(r->buf + r->pos, word, n)) return fail(r, r->pos, "invalid token");
    r->pos += n;
    return 0;
}

static int skip_depth(HfJsonReader *r, int depth) {
    if (depth > MAX_DEPTH) return fail(r, r->pos, "nesting too deep");
    char c = hf_json_peek(r);
    switch (c) {
    case '"': {
        size_t len;
        return hf_json_string(r, NULL, 0, &len);
    }
    case '{':
    case '[': {
        char close = c == '{' ? '}' : ']';
        r->pos++;
        if (hf_json_peek(r) == close) {
            r->pos++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                size_t len;
                if (hf_json_string(r, NULL, 0, &len) || hf_json_expect(r, ':')) return -1;
            }
            if (skip_depth(r, depth + 1)) return -1;
            char d = hf_json_peek(r);
            r->pos++;
            if (d == close) return 0;
            if (d != ',') return fail(r, r->pos - 1, "expected ',' or '%c'", close);
        }
    }
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    default: {
        size_t end;
        int is_int;
        if (number(r, &end, &is_int)) return -1;
        r->pos = end;
        return 0;
    }
    }
}

int hf_json_skip(HfJsonReader *r) { return skip_depth(r, 0); }

int hf_json_model_spans(const char *buf, size_t len, HfJsonSpan *vocab, HfJsonSpan *merges) {
    HfJsonReader r = {buf, 0, len, ""};
    char key[64];
    size_t kl;
    int found_v = 0, found_m = 0;
    if (hf_json_expect(&r, '{')) return 0;
    if (hf_json_peek(&r) == '}') return 0;
    for (;;) {
        /* a key longer than 60 bytes cannot be one we look for: read it as a skip */
        HfJsonReader k = r;
        int is_model = hf_json_string(&k, key, sizeof key, &kl) == 0 && kl == 5 && !memcmp(key, "model", 5);
        if (is_model) r = k;
        else if (hf_json_skip(&r)) return 0;
        if (hf_json_expect(&r, ':')) return 0;
        if (is_model && hf_json_peek(&r) == '{') {
            r.pos++;
            if (hf_json_peek(&r) != '}') {
                for (;;) {
                    HfJsonReader k2 = r;
                    int which = 0; /* 1 vocab, 2 merges */
                    if (hf_json_string(&k2, key, sizeof key, &kl) == 0) {
                        if (kl == 5 && !memcmp(key, "vocab", 5)) which = 1;
                        else if (kl == 6 && !memcmp(key, "merges", 6)) which = 2;
                        r = k2;
                    } else if (hf_json_skip(&r)) {
                        return 0;
                    }
                    if (hf_json_expect(&r, ':')) return 0;
                    char c = hf_json_peek(&r);
                    size_t start = r.pos;
                    if (hf_json_skip(&r)) return 0;
                    if (which == 1) {
                        if (found_v++ || c != '{') return 0;
                        *vocab = (HfJsonSpan){start, r.pos};
                    } else if (which == 2) {
                        if (found_m++ || c != '[') return 0;
                        *merges = (HfJsonSpan){start, r.pos};
                    }
                    char d = hf_json_peek(&r);
                    r.pos++;
                    if (d == '}') break;
                    if (d != ',') return 0;
                }
            } else {
                r.pos++;
            }
        } else if (hf_json_skip(&r)) {
            return 0;
        }
        char d = hf_json_peek(&r);
        r.pos++;
        if (d == '}') break;
        if (d != ',') return 0;
    }
    if (hf_json_peek(&r) != '\0') return 0; /* trailing text: jansson explains */
    return found_v == 1 && found_m == 1;
}
