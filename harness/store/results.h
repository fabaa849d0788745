/* results.h: the schema of qharness result files (documented in
 * results/README.md): provenance and model attributes at the root, one group
 * per evaluated dataset. Written through h5io.h. */
#ifndef QH_RESULTS_H
#define QH_RESULTS_H

#include "datasets.h"
#include "eval_run.h"
#include "h5io.h"
#include "kld.h"
#include "model.h"
#include "perplexity.h"
#include "provenance.h"
#include "zeroshot.h"

#define QH_SCHEMA_VERSION 1

/* Root attributes: schema_version, provenance, model path/config/content hash (model_hash.h), settings (JSON text). */
int results_write_header(H5File *f, const char *group, const Provenance *p, const Model *m, const char *settings_json);
/* <group>/eval/<dataset>: attributes ppl, ppl_stderr, ..., datasets window_nll, nll. */
int results_write_eval(H5File *f, const char *group, const TokenStream *ts, const PplResult *r, const char *device);
/* <group>/eval/<dataset>/kld: the distribution metrics against the full-precision
 * model (kld.h) as attributes, `scope` the positions they cover ("all",
 * "second-half"); after results_write_eval of the same dataset. */
int results_write_kld(H5File *f, const char *group, const TokenStream *ts, const KldStats *k, const char *scope);
/* <group>/eval/zeroshot/<task>: attributes acc, acc_stderr, acc_norm,
 * acc_norm_stderr (NaN where the task has none), n, requests, truncated,
 * max_len, seconds, device, file, sha256, lm_eval (the task file followed),
 * prompt; datasets loglik (requests), and per item gold, pred, pred_norm,
 * line (n). */
int results_write_zeroshot(H5File *f, const char *group, const ZsResult *r, const char *device);
/* Everything an evaluation measured, under <group>: each dataset
 * (results_write_eval), its KLD when measured (results_write_kld, the
 * outcome's scope) and each zero-shot task (results_write_zeroshot). */
int results_write_outcome(H5File *f, const char *group, const EvalOutcome *eo);
/* The attribute name of a percentile: "kld_p99.9", "dp_p50" (prefix, level as a fraction). */
void results_pct_name(char *buf, size_t n, const char *prefix, double level);

#endif
