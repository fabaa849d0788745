/* zeroshot.h: zero-shot multiple-choice accuracy scored as the LM Evaluation
 * Harness (lm-eval, EleutherAI) scores its `multiple_choice` tasks, for the
 * five tasks of the SpQR paper's zero-shot table: arc_easy, arc_challenge,
 * piqa, hellaswag, winogrande.
 *
 * An item (one JSON line of the task's file, the Hugging Face dataset's row)
 * becomes one request (context, continuation) per choice (zeroshot_tasks.c
 * says how, per task, following lm-eval's task files). Per request, as
 * lm-eval's causal-LM path does (lm_eval/api/model.py _encode_pair,
 * models/huggingface.py _loglikelihood_tokens):
 *   - trailing whitespace of the context moves to the front of the continuation;
 *   - ctx = encode(context), whole = encode(context + continuation), both with
 *     what the tokenizer adds to a text (a BOS for llama2.c / SentencePiece
 *     files, a tokenizer.json's post-processor: lm-eval's default
 *     add_special_tokens for a Hugging Face tokenizer); the continuation's
 *     tokens are whole[len(ctx):] (not checked to extend ctx, as lm-eval);
 *   - the sequence ctx + cont, cut to its last L + 1 tokens (L: the window,
 *     the model's length), is run without its last token, and
 *     ll = sum over the continuation's tokens of ln p(token | everything before).
 * Per item (lm-eval api/task.py process_results, first index on ties like
 * np.argmax): acc = [argmax_i ll_i == gold], acc_norm = [argmax_i ll_i /
 * chars_i == gold] with chars_i the length of choice i in characters (Unicode
 * code points, as Python's len, of the choice without the leading " ");
 * over the n items (api/metrics.py mean_stderr): the mean and its standard
 * error sqrt(sum (x - mean)^2 / (n - 1)) / sqrt(n).
 *
 * Not here: the tasks' prompts and fields (zeroshot_tasks.c), the dataset
 * loop (eval_run.h), storing (results.h). */
#ifndef QH_ZEROSHOT_H
#define QH_ZEROSHOT_H

#include <jansson.h>

#include "forward.h"
#include "tokenizer.h"

typedef struct ZsItem ZsItem;

/* One row of the task table (zeroshot_tasks.c). */
typedef struct ZsTask {
    const char *name;     /* "arc_easy": the --zeroshot / [eval] zeroshot name */
    const char *file;     /* "arc_easy.jsonl" in the ZEROSHOT_DATA folder */
    const char *fields;   /* the fields read, for messages and the documentation */
    const char *prompt;   /* how the context and the choices are built (documentation) */
    const char *mirrors;  /* the lm-eval file(s) it follows */
    int has_acc_norm;     /* 1: acc_norm is one of lm-eval's metrics of the task (not winogrande's) */
    /* Build item `it` from a JSON row: 0, or -1 with a message naming the file, the line and the field. */
    int (*build)(const json_t *row, const char *file, long line, ZsItem *it);
} ZsTask;

extern const ZsTask zs_tasks[];
extern const int zs_ntasks;

/* The row of `name`; NULL (and no message) when no task has that name. THE
 * lookup of the table: every use of a task name goes through it. */
const ZsTask *zs_task_get(const char *name);
/* The task names, ", "-separated, into buf (n bytes; cut short if it must be). */
void zs_task_names(char *buf, size_t n);
/* The row of `name`; NULL with a message listing the tasks otherwise. */
const ZsTask *zs_task_find(const char *name);
/* Check a comma-separated list of task names (no empty name, no repeats): 0,
 * or -1 with a message prefixed by `what`. */
int zs_task_list_check(const char *list, const char *what);

struct ZsItem {
    long line;        /* 1-based line of the file */
    int nchoices;
    int gold;         /* 0 .. nchoices - 1 */
    char **context;   /* (nchoices) each request's context (the same text for every choice but winogrande's; owned) */
    char **cont;      /* (nchoices) each request's continuation (" " + choice; winogrande: " " + the shared rest) */
    long *chars;      /* (nchoices) each choice's length in characters (acc_norm's divisor) */
};

/* A task's items, read and checked whole. */
typedef struct ZsData {
    const ZsTask *task;
    char *path;          /* the file (owned) */
    char sha256[65];     /* of its bytes */
    long nlines;         /* non-blank lines of the file (its items) */
    long n;              /* items kept (the first n, with a limit) */
    ZsItem *items;       /* (n) */
} ZsData;

/* The folder of the task files: `dir` when not NULL, else $ZEROSHOT_DATA;
 * NULL when neither is set. */
const char *zs_data_dir(const char *dir);
/* Read dir/<task file>: every non-blank line must be a JSON object with the
 * task's fields (blank lines are skipped, lines are counted from 1); limit > 0
 * keeps the first `limit` items (the rest is still read and checked). 0, or
 * -1 with a message naming the file, the line and the field. */
int zs_data_load(const ZsTask *t, const char *dir, long limit, ZsData *d);
/* The same from text in memory (`path` names it in messages; sha256 of text). */
int zs_data_parse(const ZsTask *t, const char *text, size_t len, const char *path, long limit, ZsData *d);
void zs_data_free(ZsData *d);

/* One request as tokens: ids (n) = ctx + continuation, the last ncont of them
 * the continuation's. */
typedef struct ZsTokens {
    int *ids;
    int n, ncont;
} ZsTokens;

/* lm-eval's _encode_pair (see the header comment): 0, or -1 with a message
 * (empty context; a continuation with no tokens of its own; one longer than
 * max_len, which lm-eval asserts against). */
int zs_encode_pair(const Tokenizer *tok, const char *context, const char *cont, int max_len, ZsTokens *out);
/* ll <- the log-likelihood of the last r->ncont tokens of r->ids given the
 * ones before, the sequence cut to its last max_len + 1 tokens first (max_len
 * <= f->max_T); in double, from body + head_nll (equal to window_nll's of the
 * sequence bit for bit when the backend's window holds it whole). */
int zs_loglik(Forward *f, const ZsTokens *r, int max_len, double *ll);

/* Per-item metrics from the log-likelihoods ll (nchoices) of one item. */
int zs_pred(const double *ll, int n);                              /* argmax, first on ties */
int zs_pred_norm(const double *ll, const long *chars, int n);      /* argmax of ll / chars */
/* mean of x (n) and its standard error sqrt(sum (x - mean)^2 / (n - 1) / n) (NaN for n < 2) */
void zs_mean_stderr(const double *x, long n, double *mean, double *stderr);

typedef struct ZsResult {
    const ZsTask *task;
    char *path;            /* the task file (owned) */
    char sha256[65];
    long n;                /* items scored */
    long nrequests;        /* sum of their choices */
    double acc, acc_stderr;
    double acc_norm, acc_norm_stderr; /* NaN where the task has no acc_norm (winogrande) */
    double seconds;        /* wall time of the forward passes */
    int max_len;           /* the window L requests were cut to */
    long truncated;        /* requests cut to it */
    double *ll;            /* (nrequests) every request's log-likelihood, items in order (owned) */
    int *pred;             /* (n) argmax ll per item (owned) */
    int *pred_norm;        /* (n) argmax ll / chars per item (owned) */
    int *gold;             /* (n) (owned) */
    long *line;            /* (n) each item's line in the file (owned) */
} ZsResult;

/* Encode every request of d (before any compute, so that a bad item fails
 * first), then score them through f, items in order, with per-item progress
 * on a terminal. max_len <= f->max_T. */
int zs_evaluate(Forward *f, const Tokenizer *tok, const ZsData *d, int max_len, ZsResult *r);
void zs_result_free(ZsResult *r);
/* {"task", "n", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr" (null
 * where NaN), "requests", "truncated", "max_len", "seconds", "file", "sha256"} */
json_t *zs_result_json(const ZsResult *r);

/* Exposed for tests (zeroshot_tasks.c): lm-eval's hellaswag preprocess() of
 * text (a new string), and the length of s[0..n) without its trailing
 * whitespace as Python's rstrip() removes it. */
char *zs_hellaswag_preprocess(const char *text);
size_t zs_rstrip_len(const char *s, size_t n);

#endif
