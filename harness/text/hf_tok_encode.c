/* hf_tok_encode.c: encode(text, add_special_tokens) of a tokenizer.json, in
 * the library's order (see hf_tok.h):
 *   1. added tokens with normalized == false are found in the raw text
 *      (leftmost-longest; single_word, lstrip, rstrip as the library applies them);
 *   2. every other piece is normalized, and added tokens with normalized ==
 *      true are found in the result;
 *   3. every remaining piece goes through the pre-tokenizers, one after the
 *      other, each splitting (and some transforming) the pieces the previous
 *      one left; empty pieces are dropped;
 *   4. each final piece is one BPE word (bpe_model.h);
 *   5. the post-processors' special tokens go around the result.
 * The library runs each stage over the whole list of pieces; every stage
 * treats each piece on its own, so here each piece is taken depth first
 * through the stages, which gives the same ids in the same order without
 * building the lists. Position-dependent behaviour (Metaspace's "first"
 * prepend scheme) uses whether the piece starts at the very beginning of the
 * text, as the library's offsets_original().0 == 0 does (pieces that start
 * after characters a normalizer prepended are taken as not at the beginning). */
#include <stdlib.h>
#include <string.h>

#include "hf_tok_internal.h"
#include "hf_unicode.h"
#include "util.h"

/* ---------------------------------------------------------------- normalizers */

int hf_tok_normalize(const HfTok *h, HfMatchScratch *sc, const char *s, size_t n, char **out, size_t *out_len) {
    char *cur = qh_malloc(n + 1);
    memcpy(cur, s, n);
    cur[n] = '\0';
    size_t len = n;
    HfSpan *spans = NULL;
    size_t ns = 0, scap = 0;
    for (int i = 0; i < h->n_norms; i++) {
        const HfNorm *nm = &h->norms[i];
        char *next = NULL;
        size_t nlen = 0;
        if (nm->kind == NORM_NFC) {
            int ascii = 1;
            for (size_t k = 0; k < len && ascii; k++) ascii = (unsigned char)cur[k] < 0x80;
            if (ascii) continue; /* ASCII is its own NFC */
            if (u8_nfc(cur, len, &next, &nlen) != 0) {
                free(cur);
                free(spans);
                return -1;
            }
        } else if (nm->kind == NORM_PREPEND) {
            if (len == 0) continue;
            next = qh_malloc(nm->str_len + len + 1);
            memcpy(next, nm->str, nm->str_len);
            memcpy(next + nm->str_len, cur, len + 1);
            nlen = nm->str_len + len;
        } else { /* NORM_REPLACE */
            if (hf_regex_spans(&nm->re, sc, cur, len, &spans, &ns, &scap) != 0) {
                free(cur);
                free(spans);
                return -1;
            }
            size_t total = 0;
            for (size_t k = 0; k < ns; k++) total += spans[k].is_match ? nm->str_len : spans[k].end - spans[k].start;
            next = qh_malloc(total + 1);
            for (size_t k = 0; k < ns; k++) {
                if (spans[k].is_match) memcpy(next + nlen, nm->str, nm->str_len), nlen += nm->str_len;
                else memcpy(next + nlen, cur + spans[k].start, spans[k].end - spans[k].start), nlen += spans[k].end - spans[k].start;
            }
            next[nlen] = '\0';
        }
        free(cur);
        cur = next;
        len = nlen;
    }
    free(spans);
    *out = cur;
    *out_len = len;
    return 0;
}

/* ---------------------------------------------------------------- state */

typedef struct Piece {
    size_t start, end;
} Piece;

/* Per pre-tokenizer level: segments, resulting pieces and transform buffers. */
typedef struct Level {
    HfSpan *spans;
    size_t nspans, scap;
    Piece *pieces;
    size_t npieces, pcap;
    char *a, *b; /* a: the piece transformed (prefix, replacement); b: one sub-piece mapped */
    size_t acap, bcap;
} Level;

typedef struct Enc {
    const HfTok *h;
    HfMatchScratch *sc;
    BpeWork bw;
    Level *lv;          /* (n_pretoks) */
    int *out;
    size_t n, cap;
} Enc;

static void emit(Enc *e, const int *ids, size_t k) {
    if (k == 0) return;
    if (e->n + k > e->cap) {
        e->cap = 2 * (e->n + k) + 1024;
        e->out = qh_realloc(e->out, e->cap * sizeof(int));
    }
    memcpy(e->out + e->n, ids, k * sizeof(int));
    e->n += k;
}

static char *reserve(char **buf, size_t *cap, size_t n) {
    if (n + 1 > *cap) {
        *cap = 2 * n + 64;
        *buf = qh_realloc(*buf, *cap);
    }
    return *buf;
}

static void push_span(Level *L, size_t s, size_t e, int m) {
    if (L->nspans == L->scap) {
        L->scap = L->scap ? 2 * L->scap : 64;
        L->spans = qh_realloc(L->spans, L->scap * sizeof(HfSpan));
    }
    L->spans[L->nspans++] = (HfSpan){s, e, m};
}

static void push_piece(Level *L, size_t s, size_t e) {
    if (L->npieces == L->pcap) {
        L->pcap = L->pcap ? 2 * L->pcap : 64;
        L->pieces = qh_realloc(L->pieces, L->pcap * sizeof(Piece));
    }
    L->pieces[L->npieces++] = (Piece){s, e};
}

/* ---------------------------------------------------------------- splitting */

/* The library's find_matches for a character predicate: each matching character
 * is a match of its own, the runs between them gaps. */
static void pred_spans(Level *L, const char *s, size_t n, int (*pred)(uint32_t, const void *), const void *arg) {
    L->nspans = 0;
    if (n == 0) {
        push_span(L, 0, 0, 0);
        return;
    }
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        size_t k;
        uint32_t cp = u8_decode(s + i, n - i, &k);
        if (pred(cp, arg)) {
            if (last < i) push_span(L, last, i, 0);
            push_span(L, i, i + k, 1);
            last = i + k;
        }
        i += k;
    }
    if (last < n) push_span(L, last, n, 0);
}

/* NormalizedString::split: segments -> pieces by the delimiter behavior. */
static void apply_behavior(Level *L, HfSplitBehavior b, int invert) {
    L->npieces = 0;
    size_t ns = L->nspans;
    HfSpan *sp = L->spans;
    if (invert)
        for (size_t i = 0; i < ns; i++) sp[i].is_match = !sp[i].is_match;
    int prev_match = 0;
    switch (b) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < ns; i++) push_piece(L, sp[i].start, sp[i].end);
        break;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < ns; i++)
            if (!sp[i].is_match) push_piece(L, sp[i].start, sp[i].end);
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < ns; i++) {
            if (sp[i].is_match == prev_match && L->npieces) L->pieces[L->npieces - 1].end = sp[i].end;
            else push_piece(L, sp[i].start, sp[i].end);
            prev_match = sp[i].is_match;
        }
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < ns; i++) {
            if (sp[i].is_match && !prev_match && L->npieces) L->pieces[L->npieces - 1].end = sp[i].end;
            else push_piece(L, sp[i].start, sp[i].end);
            prev_match = sp[i].is_match;
        }
        break;
    case SPLIT_MERGED_NEXT:
        /* built right to left, then reversed */
        for (size_t i = ns; i-- > 0;) {
            if (sp[i].is_match && !prev_match && L->npieces) L->pieces[L->npieces - 1].start = sp[i].start;
            else push_piece(L, sp[i].start, sp[i].end);
            prev_match = sp[i].is_match;
        }
        for (size_t i = 0, j = L->npieces; i + 1 < j; i++, j--) {
            Piece t = L->pieces[i];
            L->pieces[i] = L->pieces[j - 1];
            L->pieces[j - 1] = t;
        }
        break;
    }
}

static int is_numeric_pred(uint32_t cp, const void *arg) { return (void)arg, uc_is_numeric(cp); }
static int is_punct_pred(uint32_t cp, const void *arg) { return (void)arg, uc_is_punctuation(cp); }
static int is_char_pred(uint32_t cp, const void *arg) { return cp == *(const uint32_t *)arg; }

/* ---------------------------------------------------------------- pre-tokenizers */

static int pretok(Enc *e, int level, const char *s, size_t n, int at_origin);

/* Send every piece of level L (over the subject s) on to the next level. */
static int descend(Enc *e, int level, const char *s, int at_origin) {
    Level *L = &e->lv[level];
    for (size_t i = 0; i < L->npieces; i++) {
        Piece p = L->pieces[i];
        if (pretok(e, level + 1, s + p.start, p.end - p.start, at_origin && p.start == 0) != 0) return -1;
    }
    return 0;
}

/* ByteLevel: each byte of s[0..n) as its character (into L->b). */
static const char *byte_map(Enc *e, Level *L, const char *s, size_t n, size_t *mlen) {
    char *o = reserve(&L->b, &L->bcap, 2 * n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = e->h->byte_char[(unsigned char)s[i]];
        o[k++] = c[0];
        if (c[1]) o[k++] = c[1];
    }
    *mlen = k;
    return o;
}

static int pretok(Enc *e, int level, const char *s, size_t n, int at_origin) {
    if (n == 0) return 0; /* empty pieces are dropped */
    const HfTok *h = e->h;
    if (level == h->n_pretoks) {
        bpe_encode_word(&h->model, &e->bw, s, n, &e->out, &e->n, &e->cap);
        return 0;
    }
    const HfPreTok *pt = &h->pretoks[level];
    Level *L = &e->lv[level];
    switch (pt->kind) {
    case PT_SPLIT:
        if (hf_regex_spans(&pt->re, e->sc, s, n, &L->spans, &L->nspans, &L->scap) != 0) return -1;
        apply_behavior(L, pt->behavior, pt->invert);
        return descend(e, level, s, at_origin);
    case PT_DIGITS:
        pred_spans(L, s, n, is_numeric_pred, NULL);
        apply_behavior(L, pt->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0);
        return descend(e, level, s, at_origin);
    case PT_PUNCTUATION:
        pred_spans(L, s, n, is_punct_pred, NULL);
        apply_behavior(L, pt->behavior, 0);
        return descend(e, level, s, at_origin);
    case PT_BYTE_LEVEL: {
        const char *t = s;
        size_t tn = n;
        if (pt->add_prefix_space && s[0] != ' ') {
            char *a = reserve(&L->a, &L->acap, n + 1);
            a[0] = ' ';
            memcpy(a + 1, s, n);
            t = a, tn = n + 1;
        }
        if (pt->use_regex) {
            if (hf_regex_spans(&h->gpt2, e->sc, t, tn, &L->spans, &L->nspans, &L->scap) != 0) return -1;
            apply_behavior(L, SPLIT_ISOLATED, 0);
        } else {
            L->npieces = 0;
            push_piece(L, 0, tn);
        }
        for (size_t i = 0; i < L->npieces; i++) {
            Piece p = L->pieces[i];
            size_t ml;
            const char *m = byte_map(e, L, t + p.start, p.end - p.start, &ml);
            if (pretok(e, level + 1, m, ml, at_origin && p.start == 0) != 0) return -1;
        }
        return 0;
    }
    case PT_METASPACE: {
        /* spaces -> the replacement, then the prepend scheme, then split before each replacement */
        size_t nsp = 0;
        for (size_t i = 0; i < n; i++) nsp += s[i] == ' ';
        char *a = reserve(&L->a, &L->acap, pt->rep_len * (nsp + 1) + n);
        size_t k = 0;
        int starts = n >= pt->rep_len && !memcmp(s, pt->rep, pt->rep_len);
        if (s[0] == ' ') starts = 1;
        if (!starts && (pt->prepend == PREPEND_ALWAYS || (pt->prepend == PREPEND_FIRST && at_origin))) {
            memcpy(a, pt->rep, pt->rep_len);
            k = pt->rep_len;
        }
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') memcpy(a + k, pt->rep, pt->rep_len), k += pt->rep_len;
            else a[k++] = s[i];
        }
        if (pt->split) {
            size_t cl;
            uint32_t cp = u8_decode(pt->rep, pt->rep_len, &cl);
            pred_spans(L, a, k, is_char_pred, &cp);
            apply_behavior(L, SPLIT_MERGED_NEXT, 0);
        } else {
            L->npieces = 0;
            push_piece(L, 0, k);
        }
        return descend(e, level, a, at_origin);
    }
    }
    return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int ends_with_word(const char *s, size_t n) {
    if (n == 0) return 0;
    size_t i = n - 1, k;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return uc_is_word(u8_decode(s + i, n - i, &k));
}

static int starts_with_word(const char *s, size_t n) {
    size_t k;
    return n > 0 && uc_is_word(u8_decode(s, n, &k));
}

/* Start of the run of White_Space characters that ends s[0..n). */
static size_t trailing_space_start(const char *s, size_t n) {
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1, k;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
        if (!uc_is_white_space(u8_decode(s + j, i - j, &k))) break;
        i = j;
    }
    return i;
}

/* Length of the run of White_Space characters that starts s[0..n). */
static size_t leading_space_len(const char *s, size_t n) {
    size_t i = 0, k;
    while (i < n && uc_is_white_space(u8_decode(s + i, n - i, &k))) i += k;
    return i;
}

typedef int (*SegmentFn)(Enc *e, const char *s, size_t n, int at_origin);

/* The library's find_matches over s[0..n) with one set of added tokens:
 * text segments go to fn, matched tokens are emitted. */
static int split_added(Enc *e, const HfAddedSet *set, const char *s, size_t n, int at_origin, SegmentFn fn) {
    const HfTok *h = e->h;
    size_t start_offset = 0, pos = 0;
    if (set->n > 0) {
        while (pos < n) {
            unsigned char b = (unsigned char)s[pos];
            int best = -1;
            size_t best_len = 0;
            for (int k = set->start[b]; k < set->start[b + 1]; k++) {
                const HfAdded *a = &h->added[set->idx[k]];
                const char *pat = a->normalized ? a->norm : a->content;
                size_t pl = a->normalized ? a->norm_len : a->len;
                if (pl > best_len && pl <= n - pos && !memcmp(s + pos, pat, pl)) best = set->idx[k], best_len = pl;
            }
            if (best < 0) {
                pos++;
                continue;
            }
            const HfAdded *a = &h->added[best];
            size_t start = pos, stop = pos + best_len;
            pos = stop; /* the next match is searched after this one, taken or not */
            if (a->single_word) {
                int start_space = start == 0 || !ends_with_word(s, start);
                int stop_space = stop == n || !starts_with_word(s + stop, n - stop);
                if (!start_space || !stop_space) continue;
            }
            if (a->lstrip) {
                size_t ns = trailing_space_start(s, start);
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) stop += leading_space_len(s + stop, n - stop);
            if (start_offset < start && fn(e, s + start_offset, start - start_offset, at_origin && start_offset == 0) != 0)
                return -1;
            emit(e, &a->id, 1);
            start_offset = stop;
        }
    }
    if (start_offset < n) return fn(e, s + start_offset, n - start_offset, at_origin && start_offset == 0);
    return 0;
}

static int normalized_segment(Enc *e, const char *s, size_t n, int at_origin) {
    return pretok(e, 0, s, n, at_origin);
}

static int raw_segment(Enc *e, const char *s, size_t n, int at_origin) {
    const HfTok *h = e->h;
    if (!h->has_normalizer) return split_added(e, &h->norm_set, s, n, at_origin, normalized_segment);
    char *ns;
    size_t nn;
    if (hf_tok_normalize(h, e->sc, s, n, &ns, &nn) != 0) return -1;
    int rc = split_added(e, &h->norm_set, ns, nn, at_origin, normalized_segment);
    free(ns);
    return rc;
}

/* ---------------------------------------------------------------- encode */

int hf_tok_encode(const HfTok *h, const char *text, size_t len, int add_special, int **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len > 0) return qh_error("%s: encode: NULL text with length %zu", h->path, len);
    char *fixed = NULL;
    if (len > 0 && !u8_valid(text, len)) {
        fixed = u8_repair(text, len, &len);
        text = fixed;
    }
    Enc e = {h, hf_match_scratch_new(), {0}, qh_calloc((size_t)h->n_pretoks + 1, sizeof(Level)), NULL, 0, 0};
    bpe_work_init(&e.bw);
    if (add_special) emit(&e, h->prefix, (size_t)h->n_prefix);
    int rc = len > 0 ? split_added(&e, &h->raw_set, text, len, 1, raw_segment) : 0;
    if (add_special) emit(&e, h->suffix, (size_t)h->n_suffix);
    for (int i = 0; i <= h->n_pretoks; i++) {
        free(e.lv[i].spans);
        free(e.lv[i].pieces);
        free(e.lv[i].a);
        free(e.lv[i].b);
    }
    free(e.lv);
    bpe_work_free(&e.bw);
    hf_match_scratch_free(e.sc);
    free(fixed);
    if (rc != 0) {
        free(e.out);
        return -1;
    }
    if (!e.out) e.out = qh_malloc(sizeof(int));
    *ids = e.out;
    *n = e.n;
    return 0;
}
