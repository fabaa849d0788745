/* eval_run.h: evaluate a model on a comma-separated list of datasets with one
 * forward backend: used by `eval`, `quantize --eval` and sweeps. */
#ifndef QH_EVAL_RUN_H
#define QH_EVAL_RUN_H

#include <jansson.h>

#include "datasets.h"
#include "forward.h"
#include "kld_eval.h"
#include "perplexity.h"
#include "zeroshot.h"

typedef struct EvalSpec {
    const char *datasets;  /* "wikitext2,ptb,..." */
    int seqlen;            /* 0: the model's seq_len, at most 2048 */
    long max_windows;      /* 0: all */
    QhDevice device;
    const char *data_root;
    int quiet;             /* 1: no table on stdout */
    int verify;            /* 1: run on the GPU and on the CPU, compare per dataset */
    double verify_rtol;    /* relative perplexity tolerance of the comparison (fp32: 1e-4) */
    size_t max_memory;     /* > 0: evaluate block by block within this many bytes (CPU, llama2.c mmap) */
    const struct StreamLoader *loader; /* with max_memory: where blocks come from (NULL: the file as loaded) */
    size_t max_device_memory; /* > 0: bytes the GPU backend may hold; with a model larger than that (or than the
                                 GPU, or read block by block) the evaluation runs block by block (stream_eval.h) */
    const Model *kld_ref;  /* non-NULL: also the distribution metrics (kld.h) against this model (the full-precision
                              one), run alongside on the same device, window by window; not with max_memory */
    KldScope kld_scope;    /* the positions they are taken over */
    const char *kld_datasets; /* with kld_ref: only these ("wikitext2,c4"); NULL: every dataset */
    const char *zeroshot;  /* non-NULL: also these zero-shot tasks ("arc_easy,piqa", zeroshot.h), after the datasets,
                              on the same backend; datasets may then be NULL or "" (no perplexity) */
    const char *zeroshot_data; /* their folder (NULL: $ZEROSHOT_DATA) */
    long zeroshot_limit;   /* > 0: the first this many items of each task */
} EvalSpec;

typedef struct EvalOutcome {
    int n;
    TokenStream *streams; /* (n) */
    PplResult *ppl;       /* (n) */
    const char *device;   /* backend name that ran */
    double *verify_ppl;   /* (n) the CPU's perplexity when verifying, else NULL */
    KldStats *kld;        /* (n) the metrics against EvalSpec.kld_ref, else NULL; .n == 0 for a dataset
                             not in kld_datasets */
    KldScope kld_scope;
    double verify_max_rel;/* max over datasets of |ppl_gpu - ppl_cpu| / ppl_cpu */
    int nzs;
    ZsResult *zs;         /* (nzs) the zero-shot tasks, in the order given */
    size_t peak_rss;      /* peak resident set size of the process after the evaluation (bytes) */
    size_t base_rss;      /* resident set size when the evaluation started (libraries, model header...) */
} EvalOutcome;

int eval_run(const Model *m, const Tokenizer *t, const EvalSpec *s, EvalOutcome *out);
void eval_outcome_free(EvalOutcome *o);
/* A non-finite perplexity (NaN or infinite: a NaN or infinite weight or
 * activation in the forward pass) is a failed evaluation, never a number:
 * 0 when every dataset's ppl is finite, else -1 after one message naming each
 * failed dataset; `what` (may be NULL) gets "wikitext2 ppl nan; ..." for the
 * records of a failure. */
int eval_outcome_check(const EvalOutcome *o, char *what, size_t n);
/* The same shape whatever the number of datasets: {"results": [one object per
 * dataset, eval_one_json (+ "verify_cpu_ppl" when verifying, + "kld":
 * kld_stats_json and "kld_scope" with the metrics)], "peak_rss_mb",
 * "base_rss_mb" (+ "verify_max_rel" when verifying, + "zeroshot": [zs_result_json
 * of each task] with tasks)}. */
json_t *eval_outcome_json(const EvalOutcome *o);
json_t *eval_one_json(const TokenStream *ts, const PplResult *r, const char *device);
/* The default window: the model's seq_len capped at 2048. */
int eval_default_seqlen(const ModelConfig *c);

#endif
