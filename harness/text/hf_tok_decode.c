/* hf_tok_decode.c: decode(ids) of a tokenizer.json (see hf_tok.h): ids to
 * token strings (added tokens by their text, the vocabulary otherwise), then
 * the decoder chain, each decoder turning the list of strings into a new list,
 * as the library's decode_chain does; the final list is joined. Also the
 * lookups by id and by token string. */
#include <stdlib.h>
#include <string.h>

#include "hf_tok_internal.h"
#include "hf_unicode.h"
#include "util.h"

typedef struct Str {
    char *p; /* owned, NUL-terminated */
    size_t n;
} Str;

typedef struct StrList {
    Str *v;
    size_t n, cap;
} StrList;

static void sl_push(StrList *l, const char *p, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = qh_realloc(l->v, l->cap * sizeof(Str));
    }
    char *c = qh_malloc(n + 1);
    memcpy(c, p, n);
    c[n] = '\0';
    l->v[l->n++] = (Str){c, n};
}

static void sl_free(StrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].p);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* A growing byte buffer. */
typedef struct {
    char *p;
    size_t n, cap;
} Bytes;
static void by_put(Bytes *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1) + 64;
        b->p = qh_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

const char *hf_tok_id_to_token(const HfTok *h, int id, size_t *len) {
    if (id < 0 || id >= h->n_ids) return NULL;
    int a = h->added_of_id[id];
    if (a >= 0) {
        const HfAdded *t = &h->added[a];
        if (len) *len = t->normalized ? t->norm_len : t->len;
        return t->normalized ? t->norm : t->content;
    }
    return bpe_token(&h->model, id, len);
}

int hf_tok_token_to_id(const HfTok *h, const char *s, size_t len) {
    for (int i = 0; i < h->n_added; i++)
        if (h->added[i].len == len && !memcmp(h->added[i].content, s, len)) return h->added[i].id;
    return bpe_lookup(&h->model, s, len);
}

int hf_tok_n_ids(const HfTok *h) { return h->n_ids; }
const int *hf_tok_prefix(const HfTok *h, int *n) { return *n = h->n_prefix, h->prefix; }
const int *hf_tok_suffix(const HfTok *h, int *n) { return *n = h->n_suffix, h->suffix; }
int hf_tok_is_special(const HfTok *h, int id) {
    return id >= 0 && id < h->n_ids && h->added_of_id[id] >= 0 && h->added[h->added_of_id[id]].special;
}

/* ---------------------------------------------------------------- decoders */

/* ByteLevel: every token whose characters all are byte characters becomes
 * those bytes, any other token stays as it is; all joined into one, then
 * (unless raw) made valid UTF-8. */
static void dec_byte_level(const HfTok *h, StrList *l, int raw) {
    Bytes b = {0};
    by_put(&b, "", 0);
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].p;
        size_t n = l->v[i].n, k, j = 0, start = b.n;
        int all = 1;
        while (j < n && all) {
            uint32_t cp = u8_decode(s + j, n - j, &k);
            if (cp < 512 && h->char_byte[cp] >= 0) {
                char c = (char)h->char_byte[cp];
                by_put(&b, &c, 1);
            } else {
                all = 0;
            }
            j += k;
        }
        if (!all) {
            b.n = start;
            by_put(&b, s, n);
        }
    }
    sl_free(l);
    if (raw) {
        sl_push(l, b.p, b.n);
    } else {
        size_t fl;
        char *fixed = u8_repair(b.p, b.n, &fl);
        sl_push(l, fixed, fl);
        free(fixed);
    }
    free(b.p);
}

/* Metaspace: the replacement character becomes a space, except in the first
 * token (unless the prepend scheme is "never"), where it is removed. */
static void dec_metaspace(const HfDec *d, StrList *l, int raw) {
    for (size_t i = 0; i < l->n; i++) {
        Bytes b = {0};
        by_put(&b, "", 0);
        const char *s = l->v[i].p;
        size_t n = l->v[i].n, k;
        int first = i == 0 && !raw;
        for (size_t j = 0; j < n; j += k) {
            uint32_t cp = u8_decode(s + j, n - j, &k);
            if (cp != d->ch) by_put(&b, s + j, k);
            else if (!(first && d->prepend != PREPEND_NEVER)) by_put(&b, " ", 1);
        }
        free(l->v[i].p);
        l->v[i] = (Str){b.p, b.n};
    }
}

static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int x = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (x < 0) return -1;
        v = 16 * v + x;
    }
    return v;
}

/* ByteFallback: runs of <0xXX> tokens become their bytes when those are valid
 * UTF-8, else one U+FFFD per byte token (raw: the bytes as they are). */
static void dec_byte_fallback(StrList *l, int raw) {
    StrList o = {0};
    Bytes run = {0};
    by_put(&run, "", 0);
    size_t nrun = 0;
    for (size_t i = 0; i <= l->n; i++) {
        int v = i < l->n ? byte_token(l->v[i].p, l->v[i].n) : -1;
        if (v >= 0) {
            char c = (char)v;
            by_put(&run, &c, 1);
            nrun++;
            continue;
        }
        if (nrun) {
            if (raw || u8_valid(run.p, run.n)) sl_push(&o, run.p, run.n);
            else
                for (size_t k = 0; k < nrun; k++) sl_push(&o, "\xEF\xBF\xBD", 3);
            run.n = 0;
            nrun = 0;
        }
        if (i < l->n) sl_push(&o, l->v[i].p, l->v[i].n);
    }
    free(run.p);
    sl_free(l);
    *l = o;
}

static void dec_fuse(StrList *l) {
    Bytes b = {0};
    by_put(&b, "", 0);
    for (size_t i = 0; i < l->n; i++) by_put(&b, l->v[i].p, l->v[i].n);
    sl_free(l);
    sl_push(l, b.p, b.n);
    free(b.p);
}

/* Strip: up to `start` leading and `stop` trailing `content` characters of each token. */
static void dec_strip(const HfDec *d, StrList *l) {
    for (size_t i = 0; i < l->n; i++) {
        const char *s = l->v[i].p;
        size_t n = l->v[i].n, k;
        size_t a = 0;
        for (long c = 0; c < d->start && a < n; c++) {
            if (u8_decode(s + a, n - a, &k) != d->ch) break;
            a += k;
        }
        size_t z = n;
        for (long c = 0; c < d->stop && z > a; c++) {
            size_t j = z - 1;
            while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
            if (u8_decode(s + j, z - j, &k) != d->ch) break;
            z = j;
        }
        memmove(l->v[i].p, s + a, z - a);
        l->v[i].n = z - a;
        l->v[i].p[z - a] = '\0';
    }
}

static int dec_replace(const HfDec *d, HfMatchScratch *sc, StrList *l) {
    HfSpan *sp = NULL;
    size_t ns = 0, cap = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (!u8_valid(l->v[i].p, l->v[i].n)) continue; /* raw bytes (streaming): left as they are */
        if (hf_regex_spans(&d->re, sc, l->v[i].p, l->v[i].n, &sp, &ns, &cap) != 0) {
            free(sp);
            return -1;
        }
        Bytes b = {0};
        by_put(&b, "", 0);
        for (size_t k = 0; k < ns; k++) {
            if (sp[k].is_match) by_put(&b, d->content, d->content_len);
            else by_put(&b, l->v[i].p + sp[k].start, sp[k].end - sp[k].start);
        }
        free(l->v[i].p);
        l->v[i] = (Str){b.p, b.n};
    }
    free(sp);
    return 0;
}

static int run_decoders(const HfTok *h, StrList *l, int raw) {
    HfMatchScratch *sc = NULL;
    int rc = 0;
    for (int i = 0; i < h->n_decs && rc == 0; i++) {
        const HfDec *d = &h->decs[i];
        switch (d->kind) {
        case DEC_BYTE_LEVEL: dec_byte_level(h, l, raw); break;
        case DEC_METASPACE: dec_metaspace(d, l, raw); break;
        case DEC_BYTE_FALLBACK: dec_byte_fallback(l, raw); break;
        case DEC_FUSE: dec_fuse(l); break;
        case DEC_STRIP: dec_strip(d, l); break;
        case DEC_REPLACE:
            if (!sc) sc = hf_match_scratch_new();
            rc = dec_replace(d, sc, l);
            break;
        }
    }
    hf_match_scratch_free(sc);
    return rc;
}

static void join_list(const StrList *l, const char *sep, char **out, size_t *out_len) {
    Bytes b = {0};
    by_put(&b, "", 0);
    for (size_t i = 0; i < l->n; i++) {
        if (i) by_put(&b, sep, strlen(sep));
        by_put(&b, l->v[i].p, l->v[i].n);
    }
    *out = b.p;
    *out_len = b.n;
}

int hf_tok_decode(const HfTok *h, const int *ids, size_t n, int skip_special, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    StrList l = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = hf_tok_id_to_token(h, ids[i], &len);
        if (!t) {
            sl_free(&l);
            return qh_error("%s: decode: id %d at position %zu is not a token of this file (ids 0..%d)", h->path, ids[i],
                            i, h->n_ids - 1);
        }
        if (skip_special && hf_tok_is_special(h, ids[i])) continue;
        sl_push(&l, t, len);
    }
    int rc = 0;
    if (h->has_decoder) rc = run_decoders(h, &l, 0);
    if (rc == 0) join_list(&l, h->has_decoder ? "" : " ", out, out_len);
    sl_free(&l);
    return rc;
}

int hf_tok_token_bytes(const HfTok *h, int id, char **out, size_t *out_len) {
    size_t len;
    const char *t = hf_tok_id_to_token(h, id, &len);
    *out = NULL;
    *out_len = 0;
    if (!t) return qh_error("%s: id %d is not a token of this file (ids 0..%d)", h->path, id, h->n_ids - 1);
    if (h->n_decs == 1 && h->decs[0].kind == DEC_BYTE_LEVEL) { /* the common chain, without the lists */
        char *o = qh_malloc(len + 1);
        size_t k = 0, j = 0, cl;
        for (; j < len; j += cl) {
            uint32_t cp = u8_decode(t + j, len - j, &cl);
            if (cp >= 512 || h->char_byte[cp] < 0) break;
            o[k++] = (char)h->char_byte[cp];
        }
        if (j < len) memcpy(o, t, k = len); /* not all byte characters: the token as it is */
        o[k] = '\0';
        *out = o;
        *out_len = k;
        return 0;
    }
    StrList l = {0};
    sl_push(&l, t, len);
    int rc = h->has_decoder ? run_decoders(h, &l, 1) : 0;
    if (rc == 0) join_list(&l, "", out, out_len);
    sl_free(&l);
    return rc;
}
