/* bpe_model.h: the BPE model of a tokenizer.json ("model": {"type": "BPE"}):
 * the vocabulary (token string <-> id), the ranked merges, and the merging of
 * one pre-tokenized word into ids exactly as the `tokenizers` library's
 * BPE::tokenize does: one symbol per character (its vocabulary id; else its
 * <0xXX> byte tokens with byte_fallback; else the unknown token, fused or
 * not; else the character is dropped), then repeatedly the adjacent pair of
 * lowest merge rank, leftmost first, through a binary heap over a linked
 * list of symbols (O(n log n) per word). `ignore_merges`: a word that is
 * itself in the vocabulary is that one token.
 * Both tables are open-addressing hashes, so a 150k-token vocabulary and its
 * merges load in tens of milliseconds. A per-call word cache (BpeWork) makes
 * repeated words cost one lookup.
 * Not here: JSON reading (hf_tok_load.c), normalization, pre-tokenization. */
#ifndef QH_BPE_MODEL_H
#define QH_BPE_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct BpeModel {
    int n;                /* vocabulary entries: ids 0..n-1, each exactly once */
    char *arena;          /* token strings, each NUL-terminated (owned) */
    size_t arena_len, arena_cap;
    size_t *off;          /* (n) offset of token id in arena, SIZE_MAX while unset */
    uint32_t *len;        /* (n) its byte length */
    uint64_t *tab;        /* string hash: fingerprint << 32 | id + 1, 0 = empty (owned) */
    size_t tab_mask;
    uint64_t *mkey;       /* merge hash: key (left id << 32 | right id), UINT64_MAX = empty */
    uint32_t *mrank;      /* rank of the merge (its index in the file; a repeated pair keeps the last) */
    uint32_t *mnew;       /* id of the merged token */
    size_t mmask, nmerges;  /* the merge hash grows as merges are added */
    size_t max_len;       /* longest token string */
    int unk_id;           /* the unknown token's id, or -1 (no unk_token: unknown characters are dropped) */
    int fuse_unk;         /* consecutive unknown characters become one unknown token */
    int byte_fallback;    /* unknown characters become their <0xXX> tokens when all exist */
    int ignore_merges;    /* a word found whole in the vocabulary is not merged */
    int byte_id[256];     /* id of "<0xXX>" or -1 */
} BpeModel;

/* An empty model for n tokens (ids 0..n-1), the merge hash sized for about
 * nmerges merges (it grows when more come). */
void bpe_init(BpeModel *m, int n, size_t nmerges);
void bpe_free(BpeModel *m);
/* Token `id` is s[0..len). -1 if id is outside 0..n-1 or already set (no message). */
int bpe_set_token(BpeModel *m, int id, const char *s, size_t len);
/* After every id is set: build the string hash and the byte-fallback table.
 * -1 if some id in 0..n-1 was never set (*bad gets it), -2 if two ids have
 * the same string (*bad gets the later id). */
int bpe_finish_vocab(BpeModel *m, int *bad);
/* Token string -> id, or -1. */
int bpe_lookup(const BpeModel *m, const char *s, size_t len);
/* Token id -> string (NUL-terminated), *len its length; NULL outside 0..n-1. */
const char *bpe_token(const BpeModel *m, int id, size_t *len);
/* Add merge of rank `rank` of the tokens a and b (buf: scratch of bufn
 * bytes for their concatenation). 0, or -1 with *missing saying which string
 * is not in the vocabulary: 0 a, 1 b, 2 a and b joined. */
int bpe_add_merge(BpeModel *m, const char *a, size_t alen, const char *b, size_t blen, uint32_t rank, char *buf,
                  size_t bufn, int *missing);

/* Scratch for encoding: symbol lists, the heap, the word cache. One per thread. */
typedef struct BpeWork {
    int *c, *prev, *next, *slen; /* symbols: id, links, byte length (0 = merged away) */
    size_t scap;
    struct BpeHeapEntry *heap;
    size_t hn, hcap;
    /* word cache: word bytes -> ids in pool */
    char *kbytes;
    size_t klen, kcap;
    size_t *ckoff, *cklen, *cidoff, *cidn; /* per cache entry */
    uint32_t *ctab;                         /* hash: entry + 1 */
    size_t cn, ccap, cmask;
    int *pool;
    size_t pn, pcap;
} BpeWork;

void bpe_work_init(BpeWork *w);
void bpe_work_free(BpeWork *w);

/* Append the ids of one word (valid UTF-8, n > 0) to out (grown with
 * qh_realloc, count *nout, capacity *cap). */
void bpe_encode_word(const BpeModel *m, BpeWork *w, const char *s, size_t n, int **out, size_t *nout, size_t *cap);

#endif
