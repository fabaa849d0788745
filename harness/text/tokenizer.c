/* tokenizer.c: llama2.c tokenizer.bin loading, run.c-compatible encoding and
 * decoding (see tokenizer.h for the contract).
 *
 * The fast encoder keeps the symbols in a doubly linked list (array indices)
 * and every adjacent pair whose concatenation is a mergeable piece in a binary
 * max-heap keyed by (score descending, left symbol's original position
 * ascending). Entries are invalidated lazily: an entry records the ids of its
 * two symbols, and is acted on only if those two symbols are still alive,
 * still adjacent and still carry those ids, in which case it describes exactly
 * the pair run.c would see at that place. After each merge the two new pairs
 * around the merged symbol are pushed, so every current pair always has a
 * valid entry and the heap's best valid entry is run.c's choice: highest
 * score, and the leftmost such pair since merging preserves order.
 *
 * When no mergeable piece has a space after a non-space byte (true of both
 * shipped vocabularies; checked at load), no merge can join a symbol ending
 * in a non-space byte to a following symbol starting with a space, so the
 * text is cut there into words that are merged one at a time with a small
 * heap (same merges, same relative order: about 4x faster on WikiText-2).
 * Otherwise the whole text is one heap.
 *
 * A tokenizer.json is handed to hf_tok.h whole; this file only wraps it in
 * the common interface (its per-token bytes in vocab[] for tokenizer_decode).
 *
 * Not here: SentencePiece .model parsing, tokenizer.json parsing, dataset joins. */
#include "tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_tok.h"
#include "sha256.h"
#include "util.h"

/* run.c starts its best-score search at -1e10: pairs scoring <= that never merge. */
#define MERGE_FLOOR (-1e10f)

/* ---------------------------------------------------------------- loading */

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t rd_i32(const unsigned char *p) {
    uint32_t u = rd_u32(p);
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float rd_f32(const unsigned char *p) {
    uint32_t u = rd_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int tokenizer_lookup(const Tokenizer *t, const char *piece, size_t len) {
    if (t->hf) return hf_tok_token_to_id(t->hf, piece, len);
    size_t i = (size_t)hash_bytes(piece, len) & t->table_mask;
    for (;;) {
        int id = t->table[i];
        if (id < 0) return -1;
        if ((size_t)t->piece_len[id] == len && memcmp(t->vocab[id], piece, len) == 0) return id;
        i = (i + 1) & t->table_mask;
    }
}

static void build_table(Tokenizer *t) {
    size_t cap = 16;
    while (cap < 2 * (size_t)t->vocab_size) cap <<= 1;
    t->table = qh_malloc(cap * sizeof(int));
    for (size_t i = 0; i < cap; i++) t->table[i] = -1;
    t->table_mask = cap - 1;
    for (int id = 0; id < t->vocab_size; id++) {
        size_t len = (size_t)t->piece_len[id];
        size_t i = (size_t)hash_bytes(t->vocab[id], len) & t->table_mask;
        for (;;) {
            int other = t->table[i];
            if (other < 0) { t->table[i] = id; break; }
            /* a duplicate piece keeps its lowest id */
            if ((size_t)t->piece_len[other] == len && memcmp(t->vocab[other], t->vocab[id], len) == 0) break;
            i = (i + 1) & t->table_mask;
        }
    }
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->vocab);
    free(t->scores);
    free(t->piece_len);
    free(t->arena);
    free(t->table);
    if (t->hf) hf_tok_free(t->hf);
    free(t->path);
    memset(t, 0, sizeof *t);
}

void tokenizer_set_source(Tokenizer *t, const char *path, const void *file, size_t size) {
    free(t->path);
    t->path = qh_strdup(path);
    sha256_buf(file, size, t->sha256);
}

const char *tokenizer_kind_name(const Tokenizer *t) {
    switch (t->kind) {
    case TOKENIZER_SPM: return "SentencePiece model";
    case TOKENIZER_HF_JSON: return "tokenizer.json (BPE)";
    default: return "llama2.c tokenizer.bin";
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

int tokenizer_load(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (ends_with(path, ".model")) return tokenizer_load_spm(t, path, vocab_size);
    if (ends_with(path, ".json")) return tokenizer_load_hf(t, path, vocab_size);
    char *buf;
    size_t size;
    if (qh_read_file(path, &buf, &size) != 0)
        return qh_error("%s: cannot read tokenizer file", path);
    int rc = tokenizer_load_buffer(t, buf, size, vocab_size, path);
    if (rc == 0) tokenizer_set_source(t, path, buf, size);
    free(buf);
    return rc;
}

int tokenizer_load_hf(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    char *buf;
    size_t size;
    if (qh_read_file(path, &buf, &size) != 0) return qh_error("%s: cannot read tokenizer file", path);
    int rc = tokenizer_load_hf_buffer(t, buf, size, vocab_size, path);
    if (rc == 0) tokenizer_set_source(t, path, buf, size);
    free(buf);
    return rc;
}

int tokenizer_load_hf_buffer(Tokenizer *t, const char *buf, size_t size, int vocab_size, const char *path) {
    memset(t, 0, sizeof *t);
    HfTok *h;
    if (hf_tok_load(&h, buf, size, path, vocab_size) != 0) return -1;
    t->kind = TOKENIZER_HF_JSON;
    t->hf = h;
    int n = hf_tok_n_ids(h);
    /* vocab[i]: the bytes token i decodes to on its own (streaming output) */
    char **pieces = qh_malloc(sizeof(char *) * (size_t)n);
    size_t *lens = qh_malloc(sizeof(size_t) * (size_t)n), total = 0;
    for (int i = 0; i < n; i++) {
        if (hf_tok_id_to_token(h, i, NULL) == NULL || hf_tok_token_bytes(h, i, &pieces[i], &lens[i]) != 0) {
            pieces[i] = NULL; /* an id without a token (a gap before an added token) */
            lens[i] = 0;
        }
        total += lens[i] + 1;
    }
    t->vocab_size = n;
    t->vocab = qh_malloc(sizeof(char *) * (size_t)n);
    t->piece_len = qh_malloc(sizeof(int) * (size_t)n);
    t->arena = qh_malloc(total);
    char *dst = t->arena;
    for (int i = 0; i < n; i++) {
        memcpy(dst, pieces[i] ? pieces[i] : "", lens[i]);
        dst[lens[i]] = '\0';
        t->vocab[i] = dst;
        t->piece_len[i] = (int)lens[i];
        if ((int)lens[i] > t->max_piece_len) t->max_piece_len = (int)lens[i];
        dst += lens[i] + 1;
        free(pieces[i]);
    }
    t->max_token_length = t->max_piece_len;
    free(pieces);
    free(lens);
    return 0;
}

int tokenizer_load_buffer(Tokenizer *t, const char *buf, size_t size, int vocab_size, const char *path) {
    memset(t, 0, sizeof *t);
    const unsigned char *p = (const unsigned char *)buf;
    int rc = -1;
    if (size < 4) {
        qh_error("%s: file is %zu bytes, expected at least 4 (int32 max_token_length header)", path, size);
        goto out;
    }
    int32_t mtl = rd_i32(p);
    if (mtl <= 0) {
        qh_error("%s: max_token_length is %d, expected a positive int32 (is this a llama2.c tokenizer.bin?)",
                 path, (int)mtl);
        goto out;
    }
    /* Pass 1: validate and count. */
    size_t off = 4, text_bytes = 0;
    int count = 0;
    while (vocab_size > 0 ? count < vocab_size : off < size) {
        if (size - off < 8) {
            qh_error("%s: token %d: file ends at byte %zu, expected 8 more bytes (float32 score, int32 length) "
                     "at offset %zu%s", path, count, size, off,
                     vocab_size > 0 ? " (fewer tokens than the vocab_size asked for)" : "");
            goto out;
        }
        float score = rd_f32(p + off);
        int32_t len = rd_i32(p + off + 4);
        if (isnan(score)) {
            qh_error("%s: token %d: score is NaN (offset %zu)", path, count, off);
            goto out;
        }
        if (len < 0 || len > mtl) {
            qh_error("%s: token %d: length %d at offset %zu, expected 0..%d (max_token_length)",
                     path, count, (int)len, off + 4, (int)mtl);
            goto out;
        }
        off += 8;
        if (size - off < (size_t)len) {
            qh_error("%s: token %d: file ends at byte %zu, expected %d bytes of piece text at offset %zu",
                     path, count, size, (int)len, off);
            goto out;
        }
        if (memchr(p + off, 0, (size_t)len)) {
            qh_error("%s: token %d: piece contains a NUL byte (offset %zu); llama2.c pieces are C strings",
                     path, count, off);
            goto out;
        }
        off += (size_t)len;
        text_bytes += (size_t)len + 1;
        if (count == INT_MAX) {
            qh_error("%s: more than INT_MAX tokens", path);
            goto out;
        }
        count++;
    }
    if (off != size) {
        qh_error("%s: %zu trailing bytes after token %d (offset %zu); expected the file to end after "
                 "vocab_size = %d tokens", path, size - off, count - 1, off, vocab_size);
        goto out;
    }
    if (count < TOKENIZER_BYTE0 + 256) {
        qh_error("%s: %d tokens, expected at least 259 (<unk>, <s>, </s> and the 256 <0xXX> byte tokens)",
                 path, count);
        goto out;
    }
    /* Pass 2: fill. */
    t->vocab_size = count;
    t->max_token_length = (int)mtl;
    t->vocab = qh_malloc((size_t)count * sizeof(char *));
    t->scores = qh_malloc((size_t)count * sizeof(float));
    t->piece_len = qh_malloc((size_t)count * sizeof(int));
    t->arena = qh_malloc(text_bytes);
    char *dst = t->arena;
    off = 4;
    for (int i = 0; i < count; i++) {
        t->scores[i] = rd_f32(p + off);
        int32_t len = rd_i32(p + off + 4);
        off += 8;
        memcpy(dst, p + off, (size_t)len);
        dst[len] = '\0';
        t->vocab[i] = dst;
        t->piece_len[i] = (int)len;
        if (len > t->max_piece_len) t->max_piece_len = (int)len;
        dst += len + 1;
        off += (size_t)len;
    }
    for (int b = 0; b < 256; b++) {
        t->byte_pieces[2 * b] = (unsigned char)b;
        t->byte_pieces[2 * b + 1] = 0;
    }
    build_table(t);
    /* Do all mergeable pieces keep their spaces in a leading run? (Both shipped
     * vocabularies do.) Lets the fast encoder work word by word. */
    t->space_prefix_only = 1;
    for (int i = 0; i < count && t->space_prefix_only; i++) {
        if (!(t->scores[i] > MERGE_FLOOR)) continue;
        const char *q = t->vocab[i];
        int j = 0;
        while (j < t->piece_len[i] && q[j] == ' ') j++;
        if (memchr(q + j, ' ', (size_t)(t->piece_len[i] - j))) t->space_prefix_only = 0;
    }
    rc = 0;
out:
    if (rc != 0) tokenizer_free(t);
    return rc;
}

/* ---------------------------------------------------------------- decoding */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token) {
    if (token < 0 || token >= t->vocab_size) {
        qh_error("tokenizer_decode: token id %d outside the vocabulary 0..%d", token, t->vocab_size - 1);
        return NULL;
    }
    if (t->hf) return t->vocab[token];
    const char *piece = t->vocab[token];
    if (prev_token == TOKENIZER_BOS && piece[0] == ' ') piece++;
    if (piece[0] == '<' && piece[1] == '0' && piece[2] == 'x') {
        int hi = hexval(piece[3]), lo = hi >= 0 ? hexval(piece[4]) : -1;
        if (hi >= 0 && lo >= 0 && piece[5] == '>' && piece[6] == '\0')
            return (const char *)t->byte_pieces + 2 * (hi * 16 + lo);
    }
    return piece;
}

/* ------------------------------------------------- initial segmentation */

static int check_args(const char *who, const char *text, size_t len, int **ids, size_t *n) {
    if (!ids || !n) return qh_error("%s: NULL output pointer", who);
    *ids = NULL;
    *n = 0;
    if (!text && len > 0) return qh_error("%s: NULL text with length %zu", who, len);
    if (len > (size_t)INT_MAX / 4) return qh_error("%s: text of %zu bytes is too long (limit %d)", who, len, INT_MAX / 4);
    return 0;
}

/* The part of run.c encode() before the merges, for the fast encoder (the
 * reference writes it out again): BOS, dummy prefix, codepoint lookup with
 * byte fallback. Fills sym (capacity len + 2), returns the count or -1. */
static int segment(const Tokenizer *t, const char *text, size_t len, int bos, int *sym) {
    int m = 0;
    if (bos) sym[m++] = TOKENIZER_BOS;
    if (len == 0) return m;
    int dummy = tokenizer_lookup(t, " ", 1);
    if (dummy < 0) return qh_error("tokenizer_encode: the vocabulary has no \" \" piece for the dummy prefix");
    sym[m++] = dummy;
    char cp[4];
    size_t cl = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c & 0xC0) != 0x80) cl = 0; /* a lead (or ASCII) byte starts a new codepoint */
        cp[cl++] = (char)c;
        unsigned char next = i + 1 < len ? (unsigned char)text[i + 1] : 0;
        if ((next & 0xC0) == 0x80 && cl < 4) continue; /* keep collecting continuation bytes */
        int id = tokenizer_lookup(t, cp, cl);
        if (id >= 0) {
            sym[m++] = id;
        } else {
            for (size_t k = 0; k < cl; k++) sym[m++] = (unsigned char)cp[k] + TOKENIZER_BYTE0;
        }
        cl = 0;
    }
    return m;
}

/* ---------------------------------------------------------- fast encoder */

typedef struct {
    float score;
    int left, right; /* symbol indices (original positions) */
    int lid, rid;    /* their ids when pushed */
    int merged;      /* id of the concatenation */
} PairEntry;

typedef struct {
    PairEntry *e;
    size_t n, cap;
} PairHeap;

/* a ranks above b: higher score, then smaller left position */
static inline int ranks_above(const PairEntry *a, const PairEntry *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static void heap_push(PairHeap *h, PairEntry x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1024;
        h->e = qh_realloc(h->e, h->cap * sizeof(PairEntry));
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ranks_above(&x, &h->e[parent])) break;
        h->e[i] = h->e[parent];
        i = parent;
    }
    h->e[i] = x;
}

static PairEntry heap_pop(PairHeap *h) {
    PairEntry top = h->e[0], last = h->e[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ranks_above(&h->e[c + 1], &h->e[c])) c++;
        if (!ranks_above(&h->e[c], &last)) break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (n) h->e[i] = last;
    return top;
}

/* Push the pair (a, b) of adjacent symbols if their concatenation merges. */
static void consider_pair(const Tokenizer *t, PairHeap *h, const int *sym, int a, int b, char *buf) {
    int la = t->piece_len[sym[a]], lb = t->piece_len[sym[b]];
    if (la + lb > t->max_piece_len) return; /* longer than any piece */
    memcpy(buf, t->vocab[sym[a]], (size_t)la);
    memcpy(buf + la, t->vocab[sym[b]], (size_t)lb);
    int id = tokenizer_lookup(t, buf, (size_t)(la + lb));
    if (id < 0 || !(t->scores[id] > MERGE_FLOOR)) return;
    PairEntry x = {t->scores[id], a, b, sym[a], sym[b], id};
    heap_push(h, x);
}

/* Is there a segment boundary before symbol i (0 < i < m)? Only when the
 * vocabulary allows it (t->space_prefix_only): then no mergeable piece has a
 * space after a non-space byte, so no merge can ever join a symbol ending in
 * a non-space byte with a following symbol that starts with a space, and the
 * two sides are merged independently (same merges, same relative order). */
static int boundary_before(const Tokenizer *t, const int *sym, int i) {
    const char *a = t->vocab[sym[i - 1]], *b = t->vocab[sym[i]];
    int la = t->piece_len[sym[i - 1]];
    return b[0] == ' ' && la > 0 && a[la - 1] != ' ';
}

/* Merge symbols s..e-1 (a segment nothing outside of which can merge with). */
static void merge_segment(const Tokenizer *t, PairHeap *h, int *sym, int *prev, int *next, int s, int e,
                          char *buf) {
    for (int i = s; i < e; i++) {
        prev[i] = i > s ? i - 1 : -1;
        next[i] = i + 1 < e ? i + 1 : -1;
    }
    h->n = 0;
    for (int i = s; i + 1 < e; i++) consider_pair(t, h, sym, i, i + 1, buf);
    while (h->n) {
        PairEntry x = heap_pop(h);
        int a = x.left, b = x.right;
        if (sym[a] != x.lid || sym[b] != x.rid || next[a] != b) continue; /* stale */
        sym[a] = x.merged;
        sym[b] = -1; /* dead: no id matches */
        next[a] = next[b];
        if (next[a] >= 0) prev[next[a]] = a;
        next[b] = prev[b] = -1;
        if (prev[a] >= 0) consider_pair(t, h, sym, prev[a], a, buf);
        if (next[a] >= 0) consider_pair(t, h, sym, a, next[a], buf);
    }
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                     int **ids, size_t *n) {
    if (check_args("tokenizer_encode", text, len, ids, n)) return -1;
    if (t->hf) {
        if (eos) return qh_error("%s: a tokenizer.json defines no end-of-sequence id to append", t->path ? t->path : "tokenizer");
        return hf_tok_encode(t->hf, text, len, bos, ids, n);
    }
    int *sym = qh_malloc((len + 3) * sizeof(int));
    int m = segment(t, text, len, bos, sym);
    if (m < 0) {
        free(sym);
        return -1;
    }
    int *prev = qh_malloc(((size_t)m + 1) * sizeof(int));
    int *next = qh_malloc(((size_t)m + 1) * sizeof(int));
    int *out = qh_malloc(((size_t)m + 1) * sizeof(int));
    char *buf = qh_malloc(2 * (size_t)t->max_piece_len + 1);
    PairHeap h = {0};
    size_t k = 0;
    for (int s = 0; s < m;) {
        int e = s + 1;
        if (t->space_prefix_only)
            while (e < m && !boundary_before(t, sym, e)) e++;
        else
            e = m;
        merge_segment(t, &h, sym, prev, next, s, e, buf);
        for (int i = s; i >= 0; i = next[i]) out[k++] = sym[i]; /* the head s never dies */
        s = e;
    }
    if (eos) out[k++] = TOKENIZER_EOS;
    free(h.e);
    free(buf);
    free(prev);
    free(next);
    free(sym);
    *ids = out;
    *n = k;
    return 0;
}

/* ----------------------------------------------------- reference encoder */

/* A sorted copy of the vocabulary for string lookups (as run.c's sorted_vocab),
 * ordered by (bytes, id) so that a duplicated piece resolves to its lowest id. */
typedef struct {
    const char *str;
    int id;
} SortedPiece;

typedef struct {
    SortedPiece *v;
    int n;
} SortedVocab;

static int cmp_sorted_piece(const void *pa, const void *pb) {
    const SortedPiece *a = pa, *b = pb;
    int c = strcmp(a->str, b->str);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* Lowest id whose piece equals the C string key, or -1. */
static int sorted_lookup_str(const SortedVocab *sv, const char *key) {
    int lo = 0, hi = sv->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(sv->v[mid].str, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < sv->n && strcmp(sv->v[lo].str, key) == 0 ? sv->v[lo].id : -1;
}

int tokenizer_encode_ref(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int **ids, size_t *n) {
    if (check_args("tokenizer_encode_ref", text, len, ids, n)) return -1;
    if (t->hf) return qh_error("tokenizer_encode_ref: run.c's algorithm does not apply to a tokenizer.json");
    SortedVocab sv = {qh_malloc((size_t)t->vocab_size * sizeof(SortedPiece)), t->vocab_size};
    for (int i = 0; i < t->vocab_size; i++) sv.v[i] = (SortedPiece){t->vocab[i], i};
    qsort(sv.v, (size_t)sv.n, sizeof(SortedPiece), cmp_sorted_piece);
    size_t cap = 2 * (size_t)t->max_piece_len + 1;
    char *buf = qh_malloc(cap > 8 ? cap : 8);
    int *tokens = qh_malloc((len + 3) * sizeof(int));
    int nt = 0;
    /* run.c, written out again (not shared with the fast encoder): BOS, dummy
     * prefix, then codepoints collected in a NUL-terminated buffer while the
     * next byte is a continuation byte and fewer than 4 bytes are held. */
    if (bos) tokens[nt++] = TOKENIZER_BOS;
    if (len > 0) {
        int dummy = sorted_lookup_str(&sv, " ");
        if (dummy == -1) {
            free(tokens);
            free(buf);
            free(sv.v);
            return qh_error("tokenizer_encode_ref: the vocabulary has no \" \" piece for the dummy prefix");
        }
        tokens[nt++] = dummy;
    }
    size_t str_len = 0;
    int has_nul = 0;
    for (const char *c = text, *end = text + len; c < end; c++) {
        if ((*c & 0xC0) != 0x80) { str_len = 0; has_nul = 0; }
        buf[str_len++] = *c;
        buf[str_len] = '\0';
        if (*c == '\0') has_nul = 1; /* run.c never sees NUL; no piece matches it */
        char following = c + 1 < end ? c[1] : '\0';
        if ((following & 0xC0) == 0x80 && str_len < 4) continue;
        int id = has_nul ? -1 : sorted_lookup_str(&sv, buf);
        if (id != -1) {
            tokens[nt++] = id;
        } else {
            for (size_t i = 0; i < str_len; i++) tokens[nt++] = (unsigned char)buf[i] + 3;
        }
        str_len = 0;
        has_nul = 0;
    }
    /* pid[i] = run.c's str_lookup of vocab[tokens[i]] ++ vocab[tokens[i+1]], kept
     * for every adjacent pair so that each round does not redo all lookups:
     * after a merge at k only the pairs (k-1, k) and (k, k+1) are new, the
     * pairs right of them shift left by one. The round itself is run.c's. */
    int *pid = qh_malloc((size_t)(nt > 1 ? nt - 1 : 1) * sizeof(int));
    for (int i = 0; i < nt - 1; i++) {
        snprintf(buf, cap, "%s%s", t->vocab[tokens[i]], t->vocab[tokens[i + 1]]);
        pid[i] = sorted_lookup_str(&sv, buf);
    }
    for (;;) {
        /* run.c: scan all pairs, keep the first strictly best score above -1e10 */
        float best_score = MERGE_FLOOR;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i < nt - 1; i++) {
            int id = pid[i];
            if (id != -1 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        /* merge tokens[best_idx], tokens[best_idx+1] and shift the rest left */
        int k = best_idx;
        tokens[k] = best_id;
        for (int i = k + 1; i < nt - 1; i++) tokens[i] = tokens[i + 1];
        for (int i = k + 1; i < nt - 2; i++) pid[i] = pid[i + 1];
        nt--;
        if (k > 0) {
            snprintf(buf, cap, "%s%s", t->vocab[tokens[k - 1]], t->vocab[tokens[k]]);
            pid[k - 1] = sorted_lookup_str(&sv, buf);
        }
        if (k < nt - 1) {
            snprintf(buf, cap, "%s%s", t->vocab[tokens[k]], t->vocab[tokens[k + 1]]);
            pid[k] = sorted_lookup_str(&sv, buf);
        }
    }
    free(pid);
    if (eos) tokens[nt++] = TOKENIZER_EOS;
    free(buf);
    free(sv.v);
    *ids = tokens;
    *n = (size_t)nt;
    return 0;
}

/* ------------------------------------------------ whole texts, generation */

int tokenizer_decode_text(const Tokenizer *t, const int *ids, size_t n, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (t->hf) return hf_tok_decode(t->hf, ids, n, 0, out, len);
    size_t cap = 64, k = 0;
    char *o = qh_malloc(cap);
    for (size_t i = 0; i < n; i++) {
        const char *p = tokenizer_decode(t, i ? ids[i - 1] : TOKENIZER_BOS, ids[i]);
        if (!p) {
            free(o);
            return -1;
        }
        size_t pl = strlen(p);
        if (k + pl + 1 > cap) o = qh_realloc(o, cap = 2 * (k + pl + 1));
        memcpy(o + k, p, pl);
        k += pl;
    }
    o[k] = '\0';
    *out = o;
    *len = k;
    return 0;
}

int tokenizer_start_token(const Tokenizer *t) {
    if (!t->hf) return TOKENIZER_BOS;
    int np;
    const int *pre = hf_tok_prefix(t->hf, &np);
    if (np > 0) return pre[0];
    for (int i = 0; i < t->vocab_size; i++)
        if (hf_tok_is_special(t->hf, i)) return i;
    return -1;
}

int tokenizer_is_stop(const Tokenizer *t, int token) {
    return t->hf ? hf_tok_is_special(t->hf, token) : token == TOKENIZER_BOS;
}
