/* datasets.h: the evaluation and calibration texts of SPEC section 7, turned
 * into token streams exactly as the GPTQ/SpQR references build them. Knows the
 * file names under the data root, the joining rules and the CPython-random
 * sampling; does not run the model. */
#ifndef QH_DATASETS_H
#define QH_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct TokenStream {
    char name[64];       /* dataset name as asked: wikitext2, ptb, c4, file:..., ... */
    int *ids;            /* (n) token ids, owned */
    size_t n;
    char source[512];    /* file it was built from */
    char sha256[65];     /* of that file */
    char split[96];      /* "test", "validation", "train-slice (C4 validation not available offline)", ... */
    char rule[160];      /* how the text was joined / sampled */
    char origin[160];    /* where the text came from, in words: "C4 en validation shard 00000 (45576
                          * documents)", "C4 en train shard 00000, first 1000 documents (offline slice)", ... */
    int is_train_data;   /* 1 when the text is from a training split */
    long ndocs_tokenized;/* c4: documents tokenized while sampling */
    int64_t ndocs;       /* documents of the source (c4, c4-new, jsonl:), else 0 */
    int64_t *draws;      /* (ndraws, 3) sampled windows: document index, its tokens, window start (-1: the
                          * whole document); owned, NULL when the windows were not sampled from documents */
    int ndraws;
    char tokenizer_path[512];   /* the tokenizer file the ids come from ("" for one built in memory) */
    char tokenizer_sha256[65];  /* its sha256 */
    char tokenizer_kind[32];    /* tokenizer_kind_name */
} TokenStream;

/* Names accepted by dataset_eval: wikitext2 ptb ptb-new c4 c4-new tinystories file:PATH */
extern const char *const dataset_names[];

/* Where C4 text lives under the data root (datasets/manifest.tsv): the
 * paper's shards, when `make data` could fetch them, and the 1000-document
 * train slice that is always there. */
#define DATASET_C4_VALID "text/c4/c4-validation.00000-of-00008.json.gz"
#define DATASET_C4_TRAIN "text/c4/c4-train.00000-of-01024.json.gz"
#define DATASET_C4_SLICE "text/c4/c4_train_00000_first1000.jsonl"

/* Build the evaluation stream of `name` for windows of `seqlen` tokens
 * (c4: 256 sampled windows, seed 0). data_root holds the files of datasets/manifest.tsv.
 * c4 and c4-new read the validation shard when it is there, else the train
 * slice (flagged is_train_data); `origin` says which. */
int dataset_eval(const char *name, const char *data_root, const Tokenizer *tok, int seqlen, TokenStream *out);

/* Calibration windows (SPEC 7, last bullets): nsamples windows of seqlen tokens
 * drawn with random.seed(seed); windows (nsamples, seqlen) allocated.
 * c4: the train shard when it is there, else the train slice; jsonl:PATH:
 * documents sampled like c4; tokens:PATH: ids as given (tokfile.h): the first
 * nsamples rows of an (N, seqlen) array, or an id stream cut into consecutive
 * windows from its start (the seed is not used). info keeps no ids, only the
 * provenance and the draws (token_stream_free frees them). */
int dataset_calib(const char *name, const char *data_root, const Tokenizer *tok, int nsamples, int seqlen,
                  uint64_t seed, int **windows, TokenStream *info);

/* Every id of the calibration windows (nsamples, seqlen) in 0..vocab_size-1,
 * else -1 with a message naming the source file and the first offending id
 * (for tokens:PATH with its element index in the file). */
int dataset_calib_check_vocab(const TokenStream *info, const int *windows, int nsamples, int seqlen, int vocab_size);

/* The file dataset `name` is read from: for evaluation (calib 0: wikitext2 ptb
 * ptb-new c4 c4-new tinystories) or calibration (calib 1: c4 wikitext2 ptb,
 * the latter two from train splits that datasets/manifest.tsv does not hold,
 * jsonl:PATH and tokens:PATH) under data_root; PATH itself for file:PATH.
 * For c4 the shard of the paper when it is under data_root, else the slice.
 * Allocated; *hint (may be NULL)
 * gets what to do when it is missing ("run `make data`..." for the files of
 * the manifest, "" for file:PATH). NULL after a message for an unknown name. */
char *dataset_file(const char *name, const char *data_root, int calib, const char **hint);
/* 0 when dataset_file's file can be read; else -1 with `why` naming the file,
 * the reason and the hint (no message printed, except for an unknown name). */
int dataset_file_check(const char *name, const char *data_root, int calib, char *why, size_t n);

void token_stream_free(TokenStream *s);

/* The raw joining rules, exposed for tests: each returns an allocated string. */
char *join_wikitext2(const char *raw, size_t len);       /* rows = lines (blank -> ""), "\n\n".join */
char *join_lines_stripped(const char *raw, size_t len, const char *sep); /* strip each line, join */

#endif
