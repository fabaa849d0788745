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
    int is_train_data;   /* 1 when the text is from a training split */
    long ndocs_tokenized;/* c4: documents tokenized while sampling */
} TokenStream;

/* Names accepted by dataset_eval: wikitext2 ptb ptb-new c4 c4-new tinystories file:PATH */
extern const char *const dataset_names[];

/* Build the evaluation stream of `name` for windows of `seqlen` tokens
 * (c4: 256 sampled windows, seed 0). data_root holds the files of datasets/manifest.tsv. */
int dataset_eval(const char *name, const char *data_root, const Tokenizer *tok, int seqlen, TokenStream *out);

/* Calibration windows (SPEC 7, last bullets): nsamples windows of seqlen tokens
 * drawn with random.seed(seed); windows (nsamples, seqlen) allocated. */
int dataset_calib(const char *name, const char *data_root, const Tokenizer *tok, int nsamples, int seqlen,
                  uint64_t seed, int **windows, TokenStream *info);

/* The file dataset `name` is read from: for evaluation (calib 0: wikitext2 ptb
 * ptb-new c4 c4-new tinystories) or calibration (calib 1: c4 wikitext2 ptb,
 * the latter two from train splits that datasets/manifest.tsv does not hold)
 * under data_root; PATH itself for file:PATH. Allocated; *hint (may be NULL)
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
