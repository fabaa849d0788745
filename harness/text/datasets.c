/* datasets.c: SPEC section 7 text construction and window sampling (see
 * datasets.h). The only file that knows where each dataset lives under the
 * data root and how the references join and sample it. */
#define _GNU_SOURCE
#include "datasets.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonl.h"
#include "pyrandom.h"
#include "sha256.h"
#include "tokfile.h"
#include "util.h"

const char *const dataset_names[] = {"wikitext2", "ptb", "ptb-new", "c4", "c4-new", "tinystories", "file:PATH", NULL};

#define F_WIKI_TEST "text/wikitext-2-raw/wiki.test.raw"
#define F_WIKI_TRAIN "text/wikitext-2-raw/wiki.train.raw"
#define F_PTB_VALID "text/ptb/ptb.valid.txt"
#define F_PTB_TEST "text/ptb/ptb.test.txt"
#define F_PTB_TRAIN "text/ptb/ptb.train.txt"
#define F_TINY "text/tinystories/tinystories_sample.txt"

void token_stream_free(TokenStream *s) {
    if (!s) return;
    QH_FREE(s->ids);
    QH_FREE(s->draws);
    s->ndraws = 0;
}

/* ---- text joining rules ----------------------------------------------------- */

/* Growing string buffer. */
typedef struct { char *p; size_t n, cap; } Buf;
static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = qh_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

char *join_wikitext2(const char *raw, size_t len) {
    /* HF wikitext rows: every line with its '\n' kept; a whitespace-only line is "". */
    Buf b = {0};
    buf_put(&b, "", 0);
    size_t i = 0;
    int first = 1;
    while (i < len) {
        size_t j = i;
        while (j < len && raw[j] != '\n') j++;
        size_t end = j < len ? j + 1 : j; /* include the newline */
        int blank = 1;
        for (size_t k = i; k < end; k++)
            if (!isspace((unsigned char)raw[k])) blank = 0;
        if (!first) buf_put(&b, "\n\n", 2);
        if (!blank) buf_put(&b, raw + i, end - i);
        first = 0;
        i = end;
    }
    return b.p;
}

char *join_lines_stripped(const char *raw, size_t len, const char *sep) {
    Buf b = {0};
    buf_put(&b, "", 0);
    size_t i = 0, seplen = strlen(sep);
    int first = 1;
    while (i < len) {
        size_t j = i;
        while (j < len && raw[j] != '\n') j++;
        size_t s = i, e = j;
        while (s < e && isspace((unsigned char)raw[s])) s++;
        while (e > s && isspace((unsigned char)raw[e - 1])) e--;
        if (!first) buf_put(&b, sep, seplen);
        buf_put(&b, raw + s, e - s);
        first = 0;
        i = j < len ? j + 1 : j;
    }
    return b.p;
}

/* ---- helpers -------------------------------------------------------------------- */

static char *data_path(const char *root, const char *rel) {
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = qh_malloc(n);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

static const char *const HINT_MANIFEST = "run `make data`, or see datasets/manifest.tsv";
static const char *const HINT_TRAIN = "a train split is not part of datasets/manifest.tsv: calibrate on c4 or file:PATH";

/* "jsonl:" / "tokens:" (calibration only), or NULL */
static const char *calib_file_prefix(const char *name) {
    if (!strncmp(name, "jsonl:", 6)) return "jsonl:";
    if (!strncmp(name, "tokens:", 7)) return "tokens:";
    return NULL;
}

char *dataset_file(const char *name, const char *root, int calib, const char **hint) {
    const char *rel = NULL, *h = HINT_MANIFEST, *pre = calib ? calib_file_prefix(name) : NULL;
    if ((!strncmp(name, "file:", 5) && name[5]) || (pre && name[strlen(pre)])) {
        if (hint) *hint = "";
        return qh_strdup(name + (pre ? strlen(pre) : 5));
    }
    if (!strcmp(name, "c4") || (!calib && !strcmp(name, "c4-new"))) {
        /* the paper's shard when `make data` could fetch it; an existing one
         * that cannot be read is an error, not a reason to fall back */
        char *shard = data_path(root, calib ? DATASET_C4_TRAIN : DATASET_C4_VALID);
        struct stat st;
        if (stat(shard, &st) == 0) {
            if (hint) *hint = h;
            return shard;
        }
        free(shard);
        rel = DATASET_C4_SLICE;
    } else if (calib && !strcmp(name, "wikitext2")) rel = F_WIKI_TRAIN, h = HINT_TRAIN;
    else if (calib && !strcmp(name, "ptb")) rel = F_PTB_TRAIN, h = HINT_TRAIN;
    else if (!calib && !strcmp(name, "wikitext2")) rel = F_WIKI_TEST;
    else if (!calib && !strcmp(name, "ptb")) rel = F_PTB_VALID;
    else if (!calib && !strcmp(name, "ptb-new")) rel = F_PTB_TEST;
    else if (!calib && !strcmp(name, "tinystories")) rel = F_TINY;
    if (!rel) {
        if (calib)
            qh_error("unknown calibration dataset '%s' (expected c4, wikitext2, ptb, file:PATH, jsonl:PATH or tokens:PATH)",
                     name);
        else qh_error("unknown dataset '%s' (expected wikitext2, ptb, ptb-new, c4, c4-new, tinystories or file:PATH)", name);
        return NULL;
    }
    if (hint) *hint = h;
    return data_path(root, rel);
}

/* 0 when `path` can be read; else -1 with "file 'PATH' is missing (HINT)" (or "cannot be
 * read (REASON)") in why; the hint in parentheses only when there is one. */
static int readable(const char *path, const char *hint, char *why, size_t n) {
    struct stat st;
    char what[160];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, n, "'%s' is a folder (expected a text file)", path);
        return -1;
    }
    if (access(path, R_OK) == 0) {
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* a FIFO or device would block or never end */
            snprintf(why, n, "'%s' is not a regular file (expected a text file)", path);
            return -1;
        }
        if (stat(path, &st) == 0 && st.st_size == 0) {
            snprintf(why, n, "file '%s' is empty (expected text)", path);
            return -1;
        }
        return 0;
    }
    if (errno == ENOENT) snprintf(what, sizeof what, "is missing");
    else snprintf(what, sizeof what, "cannot be read (%s)", strerror(errno));
    snprintf(why, n, "file '%s' %s%s%s%s", path, what, *hint ? " (" : "", hint, *hint ? ")" : "");
    return -1;
}

int dataset_file_check(const char *name, const char *root, int calib, char *why, size_t n) {
    const char *hint;
    char *path = dataset_file(name, root, calib, &hint);
    if (!path) {
        snprintf(why, n, "unknown dataset '%s'", name);
        return -1;
    }
    int rc = readable(path, hint, why, n);
    free(path);
    return rc;
}

/* Read a dataset file; fills source and sha256 of the stream. */
static int read_source(const char *path, const char *dsname, const char *hint, TokenStream *s, char **text,
                       size_t *len) {
    char why[1024];
    if (readable(path, hint, why, sizeof why) != 0) return qh_error("dataset '%s': %s", dsname, why);
    if (qh_read_file(path, text, len) != 0) return -1;
    snprintf(s->source, sizeof s->source, "%s", path);
    sha256_buf(*text, *len, s->sha256);
    return 0;
}

/* Record which tokenizer file the stream's ids come from (none: tok NULL). */
static void set_tokenizer(TokenStream *s, const Tokenizer *tok) {
    snprintf(s->tokenizer_path, sizeof s->tokenizer_path, "%s", tok && tok->path ? tok->path : "");
    snprintf(s->tokenizer_sha256, sizeof s->tokenizer_sha256, "%s", tok ? tok->sha256 : "");
    snprintf(s->tokenizer_kind, sizeof s->tokenizer_kind, "%s", tok ? tokenizer_kind_name(tok) : "");
}

static int encode_all(const Tokenizer *tok, const char *text, size_t len, TokenStream *s) {
    int *ids;
    size_t n;
    if (tokenizer_encode(tok, text, len, 1, 0, &ids, &n) != 0) return -1;
    s->ids = ids;
    s->n = n;
    return 0;
}

/* ---- C4 documents ------------------------------------------------------------------ */

/* Which C4 text `path` is: the validation or train shard, the slice, or a jsonl:PATH file. */
typedef enum { C4_VALID, C4_TRAIN, C4_SLICE, C4_FILE } C4Kind;

static C4Kind c4_kind(const char *root, const char *path) {
    static const struct { const char *rel; C4Kind k; } known[] = {
        {DATASET_C4_VALID, C4_VALID}, {DATASET_C4_TRAIN, C4_TRAIN}, {DATASET_C4_SLICE, C4_SLICE}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char *p = data_path(root, known[i].rel);
        int same = !strcmp(p, path);
        free(p);
        if (same) return known[i].k;
    }
    return C4_FILE;
}

/* Open the documents of `path` (dataset `name`) and fill the stream's provenance. */
static int c4_open(const char *name, const char *root, const char *path, const char *hint, int calib, JsonlDocs *d,
                   TokenStream *s) {
    char why[1024];
    if (readable(path, hint, why, sizeof why) != 0) return qh_error("dataset '%s': %s", name, why);
    if (jsonl_open(path, d) != 0) return -1;
    snprintf(s->source, sizeof s->source, "%s", path);
    memcpy(s->sha256, d->sha256, sizeof s->sha256);
    s->ndocs = d->n;
    long long n = (long long)d->n;
    switch (c4_kind(root, path)) {
    case C4_VALID:
        s->is_train_data = 0;
        snprintf(s->split, sizeof s->split, "validation");
        snprintf(s->origin, sizeof s->origin, "C4 en validation shard 00000 (%lld documents)", n);
        break;
    case C4_TRAIN:
        s->is_train_data = 1;
        snprintf(s->split, sizeof s->split, "train");
        snprintf(s->origin, sizeof s->origin, "C4 en train shard 00000 (%lld documents)", n);
        break;
    case C4_SLICE:
        s->is_train_data = 1;
        snprintf(s->split, sizeof s->split, calib ? "train-slice" : "train-slice (C4 validation not available offline)");
        snprintf(s->origin, sizeof s->origin, "C4 en train shard 00000, first %lld documents (the offline slice)", n);
        break;
    case C4_FILE:
        s->is_train_data = 1;
        snprintf(s->split, sizeof s->split, "file");
        snprintf(s->origin, sizeof s->origin, "JSON Lines documents (%lld)", n);
        break;
    }
    return 0;
}

/* Sample `count` windows of seqlen tokens from C4 documents (SPEC 7), as the
 * references' get_c4 does (SpQR datautils.py get_c4, eval and train branches):
 * pick document randint(0, ndocs - 1), tokenized alone with a BOS, until one
 * is long enough (>= seqlen for eval, > seqlen for calibration), then the
 * window start randint(0, ntokens - seqlen - 1); a document of exactly seqlen
 * tokens (eval only) is taken whole with no draw. draws (count, 3): document,
 * its tokens, window start (-1: whole). */
static int c4_sample(const Tokenizer *tok, const JsonlDocs *d, int count, int seqlen, uint64_t seed,
                     int strictly_longer, int *out, int64_t *draws, long *ntokenized) {
    if (d->n == 0) return qh_error("c4: no documents to sample from");
    PyRandom r;
    pyrandom_seed(&r, seed);
    int **cache = qh_calloc((size_t)d->n, sizeof(int *));
    size_t *clen = qh_calloc((size_t)d->n, sizeof(size_t));
    int rc = 0;
    long tokenized = 0;
    for (int s = 0; s < count && rc == 0; s++) {
        int64_t doc = -1;
        for (long tries = 0;; tries++) {
            if (tries > 100000L) {
                rc = qh_error("c4: no document of %s %d tokens found after 100000 draws", strictly_longer ? "more than" : "at least",
                              seqlen);
                break;
            }
            int64_t i = pyrandom_randint(&r, 0, d->n - 1);
            if (!cache[i]) {
                if (tokenizer_encode(tok, jsonl_text(d, i), d->len[i], 1, 0, &cache[i], &clen[i]) != 0) {
                    rc = -1;
                    break;
                }
                tokenized++;
            }
            if (strictly_longer ? clen[i] > (size_t)seqlen : clen[i] >= (size_t)seqlen) {
                doc = i;
                break;
            }
        }
        if (rc) break;
        int64_t off = -1;
        if (clen[doc] > (size_t)seqlen) off = pyrandom_randint(&r, 0, (int64_t)clen[doc] - seqlen - 1);
        memcpy(out + (size_t)s * seqlen, cache[doc] + (off < 0 ? 0 : off), sizeof(int) * (size_t)seqlen);
        draws[3 * s] = doc;
        draws[3 * s + 1] = (int64_t)clen[doc];
        draws[3 * s + 2] = off;
    }
    for (int64_t i = 0; i < d->n; i++) free(cache[i]);
    free(cache);
    free(clen);
    *ntokenized = tokenized;
    return rc;
}

/* ---- evaluation streams ---------------------------------------------------------- */

int dataset_eval(const char *name, const char *root, const Tokenizer *tok, int seqlen, TokenStream *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    set_tokenizer(s, tok);
    char *raw = NULL, *text = NULL;
    size_t len = 0;
    int rc = -1;
    const char *hint;
    char *path = dataset_file(name, root, 0, &hint);
    int is_c4 = !strcmp(name, "c4") || !strcmp(name, "c4-new"); /* documents, read by c4_open */
    if (!path || (!is_c4 && read_source(path, name, hint, s, &raw, &len) != 0)) goto done;
    if (!strcmp(name, "wikitext2")) {
        text = join_wikitext2(raw, len);
        snprintf(s->split, sizeof s->split, "test");
        snprintf(s->rule, sizeof s->rule, "rows = lines (blank -> \"\"), joined with \"\\n\\n\", BOS + encode");
        rc = encode_all(tok, text, strlen(text), s);
    } else if (!strcmp(name, "ptb") || !strcmp(name, "ptb-new")) {
        int isnew = !strcmp(name, "ptb-new");
        text = join_lines_stripped(raw, len, isnew ? " " : "\n\n");
        snprintf(s->split, sizeof s->split, isnew ? "test" : "validation");
        snprintf(s->rule, sizeof s->rule, "lines stripped, joined with \"%s\", BOS + encode", isnew ? " " : "\\n\\n");
        rc = encode_all(tok, text, strlen(text), s);
    } else if (is_c4) {
        JsonlDocs d;
        if (c4_open(name, root, path, hint, 0, &d, s) != 0) goto done;
        if (!strcmp(name, "c4")) {
            snprintf(s->rule, sizeof s->rule,
                     "random.seed(0); 256 windows: documents of >= seqlen tokens (exactly seqlen: whole), randint offset");
            s->n = (size_t)256 * seqlen;
            s->ids = qh_malloc(sizeof(int) * s->n);
            s->draws = qh_malloc(sizeof(int64_t) * 3 * 256);
            s->ndraws = 256;
            rc = c4_sample(tok, &d, 256, seqlen, 0, 0, s->ids, s->draws, &s->ndocs_tokenized);
        } else {
            int64_t take = d.n < 1100 ? d.n : 1100;
            snprintf(s->rule, sizeof s->rule, "first %lld documents joined with \" \", BOS + encode, cut to 256*seqlen",
                     (long long)take);
            Buf b = {0};
            buf_put(&b, "", 0);
            for (int64_t i = 0; i < take; i++) {
                if (i) buf_put(&b, " ", 1);
                buf_put(&b, jsonl_text(&d, i), d.len[i]);
            }
            rc = encode_all(tok, b.p, b.n, s);
            free(b.p);
            if (rc == 0 && s->n > (size_t)256 * seqlen) s->n = (size_t)256 * seqlen;
        }
        jsonl_close(&d);
    } else if (!strcmp(name, "tinystories")) {
        snprintf(s->split, sizeof s->split, "sample");
        snprintf(s->rule, sizeof s->rule, "split on <|endoftext|>, each story stripped, BOS + encode each, concatenated");
        const char *sepstr = "<|endoftext|>";
        size_t seplen = strlen(sepstr), cap = 0;
        const char *p = raw, *end = raw + len;
        rc = 0;
        while (p <= end && rc == 0) {
            const char *q = memmem(p, (size_t)(end - p), sepstr, seplen);
            const char *stop = q ? q : end;
            const char *a = p, *z = stop;
            while (a < z && isspace((unsigned char)*a)) a++;
            while (z > a && isspace((unsigned char)z[-1])) z--;
            if (z > a) {
                int *ids;
                size_t n;
                if (tokenizer_encode(tok, a, (size_t)(z - a), 1, 0, &ids, &n) != 0) {
                    rc = -1;
                    break;
                }
                if (s->n + n > cap) {
                    cap = (s->n + n) * 2;
                    s->ids = qh_realloc(s->ids, cap * sizeof(int));
                }
                memcpy(s->ids + s->n, ids, n * sizeof(int));
                s->n += n;
                free(ids);
            }
            if (!q) break;
            p = q + seplen;
        }
    } else { /* file:PATH (dataset_file knows no other name) */
        snprintf(s->split, sizeof s->split, "file");
        snprintf(s->rule, sizeof s->rule, "whole file, BOS + encode");
        rc = encode_all(tok, raw, len, s);
    }
done:
    free(path);
    free(raw);
    free(text);
    if (rc != 0) token_stream_free(s);
    return rc;
}

/* ---- calibration windows ----------------------------------------------------------- */

/* tokens:PATH: the ids as given (see datasets.h) into w (nsamples, seqlen). */
static int calib_tokens(const char *path, int nsamples, int seqlen, int *w, TokenStream *s) {
    TokenFile tf;
    if (tokfile_read(path, &tf) != 0) return -1;
    int rc = 0;
    size_t need = (size_t)nsamples * seqlen;
    snprintf(s->source, sizeof s->source, "%s", path);
    memcpy(s->sha256, tf.sha256, sizeof s->sha256);
    snprintf(s->split, sizeof s->split, "file");
    snprintf(s->origin, sizeof s->origin, "token ids from a file: %s", tf.format);
    if (tf.ndim == 2) {
        if (tf.cols != seqlen)
            rc = qh_error("'%s' holds windows of %lld tokens (%s), but the calibration seqlen is %d: set it to %lld "
                          "(a window is used as given, never cut or padded)",
                          path, (long long)tf.cols, tf.format, seqlen, (long long)tf.cols);
        else if (tf.rows < nsamples)
            rc = qh_error("'%s' holds %lld windows (%s), fewer than the %d calibration samples asked for", path,
                          (long long)tf.rows, tf.format, nsamples);
        else
            snprintf(s->rule, sizeof s->rule, "the first %d of the file's %lld windows, as given (no sampling, seed unused)",
                     nsamples, (long long)tf.rows);
    } else {
        if ((size_t)tf.cols < need)
            rc = qh_error("'%s' holds %lld token ids (%s), fewer than nsamples x seqlen = %d x %d = %zu", path,
                          (long long)tf.cols, tf.format, nsamples, seqlen, need);
        else
            snprintf(s->rule, sizeof s->rule,
                     "the id stream cut into consecutive windows of seqlen from its start (no sampling, seed unused)");
    }
    if (rc == 0) memcpy(w, tf.ids, sizeof(int) * need);
    tokfile_free(&tf);
    return rc;
}

int dataset_calib(const char *name, const char *root, const Tokenizer *tok, int nsamples, int seqlen, uint64_t seed,
                  int **windows, TokenStream *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    set_tokenizer(s, tok);
    if (nsamples <= 0 || seqlen < 2) return qh_error("calibration: need nsamples >= 1 and seqlen >= 2 (got %d, %d)", nsamples, seqlen);
    char *raw = NULL, *text = NULL;
    size_t len = 0;
    int rc = -1;
    int *w = qh_malloc(sizeof(int) * (size_t)nsamples * seqlen);
    s->is_train_data = 1;
    const char *hint;
    char *path = dataset_file(name, root, 1, &hint);
    char why[1024];
    if (!path) goto done;
    if (readable(path, hint, why, sizeof why) != 0) {
        qh_error("dataset '%s': %s", name, why);
        goto done;
    }
    if (!strcmp(name, "c4") || !strncmp(name, "jsonl:", 6)) {
        JsonlDocs d;
        if (c4_open(name, root, path, hint, 1, &d, s) != 0) goto done;
        snprintf(s->rule, sizeof s->rule, "random.seed(%llu); documents of > seqlen tokens, randint offset",
                 (unsigned long long)seed);
        s->draws = qh_malloc(sizeof(int64_t) * 3 * (size_t)nsamples);
        s->ndraws = nsamples;
        rc = c4_sample(tok, &d, nsamples, seqlen, seed, 1, w, s->draws, &s->ndocs_tokenized);
        jsonl_close(&d);
    } else if (!strncmp(name, "tokens:", 7)) {
        set_tokenizer(s, NULL); /* the ids are the file's, no tokenizer made them */
        rc = calib_tokens(path, nsamples, seqlen, w, s);
    } else {
        /* one token stream of a train split (or a file) */
        if (read_source(path, name, hint, s, &raw, &len) != 0) goto done;
        if (!strcmp(name, "wikitext2")) text = join_wikitext2(raw, len);
        else if (!strcmp(name, "ptb")) text = join_lines_stripped(raw, len, "\n\n");
        snprintf(s->split, sizeof s->split, strncmp(name, "file:", 5) ? "train" : "file");
        snprintf(s->rule, sizeof s->rule, "random.seed(%llu); i = randint(0, ntokens - seqlen - 1), window [i, i+seqlen)",
                 (unsigned long long)seed);
        if (encode_all(tok, text ? text : raw, text ? strlen(text) : len, s) != 0) goto done;
        if (s->n < (size_t)seqlen + 1) {
            qh_error("calibration text '%s' has %zu tokens, fewer than seqlen + 1 = %d", path, s->n, seqlen + 1);
            goto done;
        }
        PyRandom r;
        pyrandom_seed(&r, seed);
        for (int i = 0; i < nsamples; i++) {
            int64_t off = pyrandom_randint(&r, 0, (int64_t)s->n - seqlen - 1);
            memcpy(w + (size_t)i * seqlen, s->ids + off, sizeof(int) * (size_t)seqlen);
        }
        rc = 0;
    }
done:
    free(path);
    free(raw);
    free(text);
    QH_FREE(s->ids); /* the windows are returned, not the stream */
    if (rc != 0) {
        token_stream_free(s);
        free(w);
        return -1;
    }
    s->n = (size_t)nsamples * seqlen;
    *windows = w;
    return 0;
}

int dataset_calib_check_vocab(const TokenStream *info, const int *w, int nsamples, int seqlen, int vocab_size) {
    size_t n = (size_t)nsamples * seqlen;
    for (size_t i = 0; i < n; i++) {
        if (w[i] >= 0 && w[i] < vocab_size) continue;
        int win = (int)(i / (size_t)seqlen), pos = (int)(i % (size_t)seqlen);
        if (!strncmp(info->name, "tokens:", 7)) /* windows are the file's first elements, in order */
            return qh_error("calibration '%s': token id %d (element %zu of '%s': window %d, position %d) is outside the "
                            "model's vocabulary of %d ids (0..%d): the file was tokenized for another model",
                            info->name, w[i], i, info->source, win, pos, vocab_size, vocab_size - 1);
        return qh_error("calibration '%s' ('%s'): token id %d (window %d, position %d) is outside the model's vocabulary "
                        "of %d ids (0..%d): the tokenizer does not belong to the model",
                        info->name, info->source, w[i], win, pos, vocab_size, vocab_size - 1);
    }
    return 0;
}
