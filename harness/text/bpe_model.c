/* bpe_model.c: BPE vocabulary, merges and word merging (see bpe_model.h).
 *
 * Word merging follows the library's Word::merge_all: every adjacent pair
 * that has a merge goes into a heap ordered by (rank, position), smallest
 * first; a popped entry is acted on only if its left symbol is still alive,
 * still has a right neighbour, and that pair still merges into the entry's
 * token; after a merge the pairs with the new left and right neighbours are
 * pushed. (A stale entry can only pass that test for the very pair it was
 * pushed for: a symbol starts where it always started and only grows, so the
 * same merged token at the same position means the same two symbols.) */
#include "bpe_model.h"

#include <stdlib.h>
#include <string.h>

#include "hf_unicode.h"
#include "util.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

void bpe_init(BpeModel *m, int n, size_t nmerges) {
    memset(m, 0, sizeof *m);
    m->n = n;
    m->off = qh_malloc(sizeof(size_t) * (size_t)(n > 0 ? n : 1));
    m->len = qh_calloc((size_t)(n > 0 ? n : 1), sizeof(uint32_t));
    for (int i = 0; i < n; i++) m->off[i] = SIZE_MAX;
    m->mmask = pow2_at_least(2 * nmerges + 1) - 1;
    m->mkey = qh_malloc(sizeof(uint64_t) * (m->mmask + 1));
    m->mrank = qh_malloc(sizeof(uint32_t) * (m->mmask + 1));
    m->mnew = qh_malloc(sizeof(uint32_t) * (m->mmask + 1));
    memset(m->mkey, 0xff, sizeof(uint64_t) * (m->mmask + 1));
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
}

void bpe_free(BpeModel *m) {
    if (!m) return;
    free(m->arena);
    free(m->off);
    free(m->len);
    free(m->tab);
    free(m->mkey);
    free(m->mrank);
    free(m->mnew);
    memset(m, 0, sizeof *m);
}

int bpe_set_token(BpeModel *m, int id, const char *s, size_t len) {
    if (id < 0 || id >= m->n || m->off[id] != SIZE_MAX || len > UINT32_MAX) return -1;
    if (m->arena_len + len + 1 > m->arena_cap) {
        m->arena_cap = 2 * (m->arena_len + len + 1) + 4096;
        m->arena = qh_realloc(m->arena, m->arena_cap);
    }
    memcpy(m->arena + m->arena_len, s, len);
    m->arena[m->arena_len + len] = '\0';
    m->off[id] = m->arena_len;
    m->len[id] = (uint32_t)len;
    m->arena_len += len + 1;
    return 0;
}

/* A string-hash slot: the hash's high 32 bits (a fingerprint, so that most
 * probes never touch the strings) and id + 1; 0 is empty. */
static inline uint64_t slot_of(uint64_t h, int id) { return (h & 0xffffffff00000000ull) | (uint64_t)(uint32_t)(id + 1); }

int bpe_lookup(const BpeModel *m, const char *s, size_t len) {
    if (!m->tab) return -1;
    uint64_t h = hash_bytes(s, len), fp = h & 0xffffffff00000000ull;
    size_t i = (size_t)h & m->tab_mask;
    for (;;) {
        uint64_t e = m->tab[i];
        if (!e) return -1;
        int id = (int)(uint32_t)e - 1;
        if ((e & 0xffffffff00000000ull) == fp && m->len[id] == len && memcmp(m->arena + m->off[id], s, len) == 0) return id;
        i = (i + 1) & m->tab_mask;
    }
}

const char *bpe_token(const BpeModel *m, int id, size_t *len) {
    if (id < 0 || id >= m->n || m->off[id] == SIZE_MAX) return NULL;
    if (len) *len = m->len[id];
    return m->arena + m->off[id];
}

int bpe_finish_vocab(BpeModel *m, int *bad) {
    for (int i = 0; i < m->n; i++)
        if (m->off[i] == SIZE_MAX) {
            *bad = i;
            return -1;
        }
    size_t cap = pow2_at_least(2 * (size_t)m->n + 1);
    m->tab = qh_calloc(cap, sizeof(uint64_t));
    m->tab_mask = cap - 1;
    m->max_len = 0;
    for (int id = 0; id < m->n; id++) {
        const char *s = m->arena + m->off[id];
        size_t len = m->len[id];
        if (len > m->max_len) m->max_len = len;
        uint64_t h = hash_bytes(s, len);
        size_t i = (size_t)h & m->tab_mask;
        for (;;) {
            uint64_t e = m->tab[i];
            if (!e) break;
            int other = (int)(uint32_t)e - 1;
            if (m->len[other] == len && memcmp(m->arena + m->off[other], s, len) == 0) {
                *bad = id;
                return -2;
            }
            i = (i + 1) & m->tab_mask;
        }
        m->tab[i] = slot_of(h, id);
    }
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        m->byte_id[b] = bpe_lookup(m, name, 6);
    }
    return 0;
}

/* rank and merged id of the pair (a, b): 1, or 0 when the pair does not merge */
static inline int merge_of(const BpeModel *m, int a, int b, uint32_t *rank, uint32_t *nid) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = (size_t)hash_pair(key) & m->mmask;
    for (;;) {
        uint64_t k = m->mkey[i];
        if (k == key) {
            *rank = m->mrank[i];
            *nid = m->mnew[i];
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        i = (i + 1) & m->mmask;
    }
}

/* Double the merge hash. */
static void grow_merges(BpeModel *m) {
    size_t oldn = m->mmask + 1, n = 2 * oldn;
    uint64_t *key = m->mkey;
    uint32_t *rank = m->mrank, *nw = m->mnew;
    m->mkey = qh_malloc(sizeof(uint64_t) * n);
    m->mrank = qh_malloc(sizeof(uint32_t) * n);
    m->mnew = qh_malloc(sizeof(uint32_t) * n);
    memset(m->mkey, 0xff, sizeof(uint64_t) * n);
    m->mmask = n - 1;
    for (size_t j = 0; j < oldn; j++) {
        if (key[j] == UINT64_MAX) continue;
        size_t i = (size_t)hash_pair(key[j]) & m->mmask;
        while (m->mkey[i] != UINT64_MAX) i = (i + 1) & m->mmask;
        m->mkey[i] = key[j], m->mrank[i] = rank[j], m->mnew[i] = nw[j];
    }
    free(key), free(rank), free(nw);
}

int bpe_add_merge(BpeModel *m, const char *a, size_t alen, const char *b, size_t blen, uint32_t rank, char *buf,
                  size_t bufn, int *missing) {
    int ia = bpe_lookup(m, a, alen), ib = bpe_lookup(m, b, blen);
    if (ia < 0 || ib < 0) {
        *missing = ia < 0 ? 0 : 1;
        return -1;
    }
    int inew = -1;
    if (alen + blen <= bufn) {
        memcpy(buf, a, alen);
        memcpy(buf + alen, b, blen);
        inew = bpe_lookup(m, buf, alen + blen);
    }
    if (inew < 0) {
        *missing = 2;
        return -1;
    }
    if (2 * (m->nmerges + 1) > m->mmask) grow_merges(m);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t i = (size_t)hash_pair(key) & m->mmask;
    while (m->mkey[i] != UINT64_MAX && m->mkey[i] != key) i = (i + 1) & m->mmask;
    if (m->mkey[i] == UINT64_MAX) m->nmerges++;
    m->mkey[i] = key; /* a repeated pair: the last one wins, as in the library's hash map */
    m->mrank[i] = rank;
    m->mnew[i] = (uint32_t)inew;
    return 0;
}

/* ------------------------------------------------------------ encoding */

typedef struct BpeHeapEntry {
    uint32_t rank;
    int pos;
    int new_id;
} BpeHeapEntry;

void bpe_work_init(BpeWork *w) { memset(w, 0, sizeof *w); }

void bpe_work_free(BpeWork *w) {
    if (!w) return;
    free(w->c);
    free(w->prev);
    free(w->next);
    free(w->slen);
    free(w->heap);
    free(w->kbytes);
    free(w->ckoff);
    free(w->cklen);
    free(w->cidoff);
    free(w->cidn);
    free(w->ctab);
    free(w->pool);
    memset(w, 0, sizeof *w);
}

static inline int heap_less(const BpeHeapEntry *a, const BpeHeapEntry *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(BpeWork *w, BpeHeapEntry x) {
    if (w->hn == w->hcap) {
        w->hcap = w->hcap ? 2 * w->hcap : 256;
        w->heap = qh_realloc(w->heap, w->hcap * sizeof *w->heap);
    }
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&x, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = x;
}

static BpeHeapEntry heap_pop(BpeWork *w) {
    BpeHeapEntry top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!heap_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void push_pair(const BpeModel *m, BpeWork *w, int pos) {
    uint32_t rank, nid;
    int nx = w->next[pos];
    if (nx >= 0 && merge_of(m, w->c[pos], w->c[nx], &rank, &nid)) heap_push(w, (BpeHeapEntry){rank, pos, (int)nid});
}

static void add_symbol(BpeWork *w, int *ns, int id, int blen) {
    int i = (*ns)++;
    w->c[i] = id;
    w->slen[i] = blen;
    w->prev[i] = i - 1;
    w->next[i] = -1;
    if (i > 0) w->next[i - 1] = i;
}

static void append_ids(int **out, size_t *nout, size_t *cap, const int *ids, size_t k) {
    if (k == 0) return;
    if (*nout + k > *cap) {
        *cap = 2 * (*nout + k) + 1024;
        *out = qh_realloc(*out, *cap * sizeof(int));
    }
    memcpy(*out + *nout, ids, k * sizeof(int));
    *nout += k;
}

/* The library's merge_word + merge_all for s[0..n); ids appended to the pool. */
static void merge_word(const BpeModel *m, BpeWork *w, const char *s, size_t n) {
    if (n + 1 > w->scap) {
        w->scap = 2 * n + 64;
        w->c = qh_realloc(w->c, w->scap * sizeof(int));
        w->prev = qh_realloc(w->prev, w->scap * sizeof(int));
        w->next = qh_realloc(w->next, w->scap * sizeof(int));
        w->slen = qh_realloc(w->slen, w->scap * sizeof(int));
    }
    int ns = 0;
    int unk = -1, unk_len = 0; /* a pending unknown token */
    for (size_t i = 0; i < n;) {
        size_t k = u8_char_len(s + i, n - i);
        int id = bpe_lookup(m, s + i, k);
        if (id >= 0) {
            if (unk >= 0) add_symbol(w, &ns, unk, unk_len), unk = -1;
            add_symbol(w, &ns, id, (int)k);
        } else {
            int all = m->byte_fallback;
            for (size_t j = 0; all && j < k; j++) all = m->byte_id[(unsigned char)s[i + j]] >= 0;
            if (all) {
                /* as the library: a pending unknown token is not flushed before byte tokens */
                for (size_t j = 0; j < k; j++) add_symbol(w, &ns, m->byte_id[(unsigned char)s[i + j]], 1);
            } else if (m->unk_id >= 0) {
                if (unk >= 0 && m->fuse_unk) {
                    unk_len += (int)k;
                } else {
                    if (unk >= 0) add_symbol(w, &ns, unk, unk_len);
                    unk = m->unk_id;
                    unk_len = (int)k;
                }
            } /* else: dropped, as the library does without an unk_token */
        }
        i += k;
    }
    if (unk >= 0) add_symbol(w, &ns, unk, unk_len);
    w->hn = 0;
    for (int i = 0; i + 1 < ns; i++) push_pair(m, w, i);
    while (w->hn) {
        BpeHeapEntry top = heap_pop(w);
        int p = top.pos;
        if (w->slen[p] == 0 || w->next[p] < 0) continue;
        int r = w->next[p];
        uint32_t rank, nid;
        if (!merge_of(m, w->c[p], w->c[r], &rank, &nid) || (int)nid != top.new_id) continue;
        w->c[p] = top.new_id;
        w->slen[p] += w->slen[r];
        w->next[p] = w->next[r];
        w->slen[r] = 0;
        if (w->next[r] >= 0) w->prev[w->next[r]] = p;
        if (w->prev[p] >= 0) push_pair(m, w, w->prev[p]);
        push_pair(m, w, p);
    }
    for (int i = 0; i < ns; i++)
        if (w->slen[i] != 0) append_ids(&w->pool, &w->pn, &w->pcap, &w->c[i], 1);
}

/* ---- the word cache --------------------------------------------------- */

static void cache_grow(BpeWork *w) {
    size_t cap = w->cmask ? 2 * (w->cmask + 1) : 4096;
    free(w->ctab);
    w->ctab = qh_calloc(cap, sizeof(uint32_t));
    w->cmask = cap - 1;
    for (size_t e = 0; e < w->cn; e++) {
        size_t i = (size_t)hash_bytes(w->kbytes + w->ckoff[e], w->cklen[e]) & w->cmask;
        while (w->ctab[i]) i = (i + 1) & w->cmask;
        w->ctab[i] = (uint32_t)e + 1;
    }
}

void bpe_encode_word(const BpeModel *m, BpeWork *w, const char *s, size_t n, int **out, size_t *nout, size_t *cap) {
    if (m->ignore_merges) {
        int id = bpe_lookup(m, s, n);
        if (id >= 0) {
            append_ids(out, nout, cap, &id, 1);
            return;
        }
    }
    if (n > 256) { /* long words are merged every time, as the library's cache does */
        size_t p0 = w->pn;
        merge_word(m, w, s, n);
        append_ids(out, nout, cap, w->pool + p0, w->pn - p0);
        w->pn = p0;
        return;
    }
    if (2 * (w->cn + 1) > w->cmask) cache_grow(w);
    uint64_t h = hash_bytes(s, n);
    size_t i = (size_t)h & w->cmask;
    for (;;) {
        uint32_t e = w->ctab[i];
        if (!e) break;
        e--;
        if (w->cklen[e] == n && memcmp(w->kbytes + w->ckoff[e], s, n) == 0) {
            append_ids(out, nout, cap, w->pool + w->cidoff[e], w->cidn[e]);
            return;
        }
        i = (i + 1) & w->cmask;
    }
    size_t p0 = w->pn;
    merge_word(m, w, s, n);
    if (w->cn == w->ccap) {
        w->ccap = w->ccap ? 2 * w->ccap : 1024;
        w->ckoff = qh_realloc(w->ckoff, w->ccap * sizeof(size_t));
        w->cklen = qh_realloc(w->cklen, w->ccap * sizeof(size_t));
        w->cidoff = qh_realloc(w->cidoff, w->ccap * sizeof(size_t));
        w->cidn = qh_realloc(w->cidn, w->ccap * sizeof(size_t));
    }
    if (w->klen + n > w->kcap) {
        w->kcap = 2 * (w->klen + n) + 4096;
        w->kbytes = qh_realloc(w->kbytes, w->kcap);
    }
    memcpy(w->kbytes + w->klen, s, n);
    size_t e = w->cn++;
    w->ckoff[e] = w->klen;
    w->cklen[e] = n;
    w->cidoff[e] = p0;
    w->cidn[e] = w->pn - p0;
    w->klen += n;
    w->ctab[i] = (uint32_t)e + 1;
    append_ids(out, nout, cap, w->pool + p0, w->pn - p0);
}
