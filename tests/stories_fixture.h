/* stories_fixture.h: opening stories260K, the small llama2.c model most tests
 * run on (QH_DATA/models/stories260K/stories260K.bin and its tok512.bin;
 * QH_DATA defaults to data/, filled by make data), and a data set tokenized
 * by its tokenizer. Header-only. Not here: what the tests check on it, the
 * data sets themselves (datasets.h). */
#ifndef QH_STORIES_FIXTURE_H
#define QH_STORIES_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "datasets.h"
#include "model_open.h"

static inline const char *stories_data_root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

/* the model file's path (reloading it, passing it on) into buf of n bytes */
static inline void stories_model_path(char *buf, size_t n) {
    snprintf(buf, n, "%s/models/stories260K/stories260K.bin", stories_data_root());
}

/* the tokenizer file's path into buf of n bytes */
static inline void stories_tokenizer_path(char *buf, size_t n) {
    snprintf(buf, n, "%s/models/stories260K/tok512.bin", stories_data_root());
}

/* The model into m and, when t is not NULL, its 512-token tokenizer into t.
 * 0: opened; 1: the model file is not there (nothing said: the caller skips);
 * -1: there but not opened (a message said why; nothing left to free). */
static inline int stories_open(Model *m, Tokenizer *t) {
    char mp[1024], tp[1024];
    stories_model_path(mp, sizeof mp);
    stories_tokenizer_path(tp, sizeof tp);
    if (access(mp, R_OK) != 0) return 1;
    return model_open(mp, t ? tp : NULL, m, t) == 0 ? 0 : -1;
}

/* stories_open with the outcome recorded in check.h's counts:
 * 0 opened; otherwise a SKIP (the file is not there) or a failed CHECK
 * (there but not opened) was recorded and the caller returns. */
static inline int stories_open_checked(Model *m, Tokenizer *t) {
    int rc = stories_open(m, t);
    if (rc == 1)
        SKIP("stories260K not in data/ (make data)");
    else if (rc != 0)
        CHECK(0, "open stories260K");
    return rc;
}

/* The evaluation stream of data set `name` (datasets.h) in windows of seqlen,
 * tokenized by stories260K's tokenizer, into ts; ts->n is 0 when the
 * tokenizer or the data set is not there. token_stream_free(ts) either way. */
static inline void stories_dataset(const char *name, int seqlen, TokenStream *ts) {
    memset(ts, 0, sizeof *ts);
    char tp[1024];
    stories_tokenizer_path(tp, sizeof tp);
    Tokenizer t;
    if (access(tp, R_OK) == 0 && tokenizer_load(&t, tp, 512) == 0) {
        if (dataset_eval(name, stories_data_root(), &t, seqlen, ts) != 0) ts->n = 0;
        tokenizer_free(&t);
    }
}

#endif
