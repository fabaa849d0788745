/* results.c: writes the result-file schema of results.h / results/README.md. */
#include "results.h"

#include <stdio.h>
#include <string.h>

#include "kld_eval.h"
#include "model_hash.h"
#include "util.h"

int results_write_header(H5File *f, const char *group, const Provenance *p, const Model *m, const char *settings) {
    const char *g = group && *group ? group : "/";
    if (strcmp(g, "/") && h5_group(f, g) != 0) return -1;
    int rc = 0;
    rc |= h5_attr_i64(f, g, "schema_version", QH_SCHEMA_VERSION);
    rc |= h5_attr_str(f, g, "qharness_version", p->version);
    rc |= h5_attr_str(f, g, "command_line", p->cmdline);
    rc |= h5_attr_str(f, g, "git_commit", p->git_commit);
    rc |= h5_attr_str(f, g, "compiler", p->compiler);
    rc |= h5_attr_str(f, g, "blas", p->blas);
    rc |= h5_attr_str(f, g, "cuda", p->cuda);
    rc |= h5_attr_str(f, g, "host", p->host);
    rc |= h5_attr_i64(f, g, "omp_threads", p->omp_threads);
    rc |= h5_attr_i64(f, g, "blas_threads", p->blas_threads);
    rc |= h5_attr_str(f, g, "created_utc", p->time_utc);
    rc |= h5_attr_str(f, g, "settings_json", settings ? settings : "{}");
    if (m) {
        const ModelConfig *c = &m->cfg;
        char sha[65];
        model_content_sha256(m, sha);
        rc |= h5_attr_str(f, g, "model_path", m->path ? m->path : "");
        rc |= h5_attr_str(f, g, "model_sha256", sha);
        rc |= h5_attr_i64(f, g, "model_dim", c->dim);
        rc |= h5_attr_i64(f, g, "model_hidden_dim", c->hidden_dim);
        rc |= h5_attr_i64(f, g, "model_n_layers", c->n_layers);
        rc |= h5_attr_i64(f, g, "model_n_heads", c->n_heads);
        rc |= h5_attr_i64(f, g, "model_n_kv_heads", c->n_kv_heads);
        rc |= h5_attr_i64(f, g, "model_vocab_size", c->vocab_size);
        rc |= h5_attr_i64(f, g, "model_seq_len", c->seq_len);
    }
    return rc ? -1 : 0;
}

/* g as a new empty group: a previous one of that name (an earlier run's) is deleted first */
static int fresh_group(H5File *f, const char *g) {
    if (h5_exists(f, g) && h5_delete(f, g) != 0) return -1;
    return h5_group(f, g);
}

/* <group>/eval/<dataset>; dataset names like "file:x/y" must not create nested groups */
static void eval_group(char *g, size_t n, const char *group, const char *name) {
    snprintf(g, n, "%s/eval/%s", group && strcmp(group, "/") ? group : "", name);
    for (char *c = g + strlen(g) - strlen(name); *c; c++)
        if (*c == '/') *c = '|';
}

int results_write_eval(H5File *f, const char *group, const TokenStream *ts, const PplResult *r, const char *device) {
    char g[512];
    eval_group(g, sizeof g, group, ts->name);
    if (fresh_group(f, g) != 0) return -1;
    int rc = 0;
    rc |= h5_attr_f64(f, g, "ppl", r->ppl);
    rc |= h5_attr_f64(f, g, "ppl_stderr", r->ppl_stderr);
    rc |= h5_attr_f64(f, g, "mean_nll", r->mean_nll);
    rc |= h5_attr_i64(f, g, "ntokens", r->ntokens);
    rc |= h5_attr_i64(f, g, "nwindows", r->nwindows);
    rc |= h5_attr_i64(f, g, "seqlen", r->seqlen);
    rc |= h5_attr_i64(f, g, "scored_tokens", r->nwindows * (r->seqlen - 1));
    rc |= h5_attr_f64(f, g, "seconds", r->seconds);
    rc |= h5_attr_str(f, g, "device", device);
    rc |= h5_attr_str(f, g, "dataset", ts->name);
    rc |= h5_attr_str(f, g, "dataset_source", ts->source);
    rc |= h5_attr_str(f, g, "dataset_sha256", ts->sha256);
    rc |= h5_attr_str(f, g, "dataset_split", ts->split);
    rc |= h5_attr_str(f, g, "dataset_rule", ts->rule);
    rc |= h5_attr_i64(f, g, "dataset_is_train_data", ts->is_train_data);
    rc |= h5_attr_str(f, g, "dataset_origin", ts->origin);
    rc |= h5_attr_str(f, g, "tokenizer_path", ts->tokenizer_path);
    rc |= h5_attr_str(f, g, "tokenizer_sha256", ts->tokenizer_sha256);
    rc |= h5_attr_str(f, g, "tokenizer_kind", ts->tokenizer_kind);
    char p[600];
    snprintf(p, sizeof p, "%s/window_nll", g);
    rc |= h5_write(f, p, H5T_QH_F64, r->window_nll, r->nwindows, 0);
    snprintf(p, sizeof p, "%s/nll", g);
    rc |= h5_write(f, p, H5T_QH_F64, r->nll, r->nwindows, r->seqlen - 1);
    if (ts->ndraws > 0) { /* c4: which documents and offsets the windows came from */
        snprintf(p, sizeof p, "%s/draws", g);
        rc |= h5_write(f, p, H5T_QH_I64, ts->draws, ts->ndraws, 3);
        if (rc == 0) rc = h5_attr_str(f, p, "columns", "document,document_tokens,window_start");
    }
    return rc ? -1 : 0;
}

void results_pct_name(char *buf, size_t n, const char *prefix, double level) {
    snprintf(buf, n, "%s_p%g", prefix, 100 * level);
}

int results_write_kld(H5File *f, const char *group, const TokenStream *ts, const KldStats *k, const char *scope) {
    char g[560], e[512], name[64];
    eval_group(e, sizeof e, group, ts->name);
    snprintf(g, sizeof g, "%s/kld", e);
    if (!h5_exists(f, e)) return qh_error("results: /eval/%s must be written before its KL divergence", ts->name);
    if (fresh_group(f, g) != 0) return -1;
    int rc = 0;
    rc |= h5_attr_str(f, g, "scope", scope);
    rc |= h5_attr_i64(f, g, "positions", k->n);
    const struct {
        const char *name;
        double v;
    } a[] = {
        {"kld_mean", k->kld_mean}, {"kld_unc", k->kld_unc}, {"kld_max", k->kld_max}, {"kld_min", k->kld_min},
        {"same_top", k->same_top}, {"same_top_unc", k->same_top_unc}, {"dp_mean", k->dp_mean}, {"dp_unc", k->dp_unc},
        {"dp_rms", k->dp_rms}, {"dp_rms_unc", k->dp_rms_unc}, {"dp_max", k->dp_max}, {"dp_min", k->dp_min},
        {"ppl_q", k->ppl_q}, {"ppl_q_unc", k->ppl_q_unc}, {"ppl_base", k->ppl_base}, {"ppl_base_unc", k->ppl_base_unc},
        {"ln_ppl_ratio", k->ln_ppl_ratio}, {"ln_ppl_ratio_unc", k->ln_ppl_ratio_unc}, {"ln_ppl_cor", k->ln_ppl_cor},
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) rc |= h5_attr_f64(f, g, a[i].name, a[i].v);
    for (int i = 0; i < KLD_NPCT; i++) {
        results_pct_name(name, sizeof name, "kld", kld_pct_levels[i]);
        rc |= h5_attr_f64(f, g, name, k->kld_pct[i]);
    }
    for (int i = 0; i < KLD_NDPCT; i++) {
        results_pct_name(name, sizeof name, "dp", kld_dpct_levels[i]);
        rc |= h5_attr_f64(f, g, name, k->dp_pct[i]);
    }
    return rc ? -1 : 0;
}

int results_write_zeroshot(H5File *f, const char *group, const ZsResult *r, const char *device) {
    char g[512], p[600];
    snprintf(g, sizeof g, "%s/eval/zeroshot/%s", group && strcmp(group, "/") ? group : "", r->task->name);
    if (fresh_group(f, g) != 0) return -1;
    int rc = 0;
    rc |= h5_attr_f64(f, g, "acc", r->acc);
    rc |= h5_attr_f64(f, g, "acc_stderr", r->acc_stderr);
    rc |= h5_attr_f64(f, g, "acc_norm", r->acc_norm);
    rc |= h5_attr_f64(f, g, "acc_norm_stderr", r->acc_norm_stderr);
    rc |= h5_attr_i64(f, g, "n", r->n);
    rc |= h5_attr_i64(f, g, "requests", r->nrequests);
    rc |= h5_attr_i64(f, g, "truncated", r->truncated);
    rc |= h5_attr_i64(f, g, "max_len", r->max_len);
    rc |= h5_attr_f64(f, g, "seconds", r->seconds);
    rc |= h5_attr_str(f, g, "device", device ? device : "");
    rc |= h5_attr_str(f, g, "file", r->path);
    rc |= h5_attr_str(f, g, "sha256", r->sha256);
    rc |= h5_attr_str(f, g, "lm_eval", r->task->mirrors);
    rc |= h5_attr_str(f, g, "prompt", r->task->prompt);
    snprintf(p, sizeof p, "%s/loglik", g);
    rc |= h5_write(f, p, H5T_QH_F64, r->ll, r->nrequests, 0);
    int64_t *v = qh_malloc(sizeof(int64_t) * (size_t)(r->n ? r->n : 1));
    const struct {
        const char *name;
        const int *src;
    } cols[] = {{"gold", r->gold}, {"pred", r->pred}, {"pred_norm", r->pred_norm}};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        for (long i = 0; i < r->n; i++) v[i] = cols[c].src[i];
        snprintf(p, sizeof p, "%s/%s", g, cols[c].name);
        rc |= h5_write(f, p, H5T_QH_I64, v, r->n, 0);
    }
    for (long i = 0; i < r->n; i++) v[i] = r->line[i];
    snprintf(p, sizeof p, "%s/line", g);
    rc |= h5_write(f, p, H5T_QH_I64, v, r->n, 0);
    free(v);
    return rc ? -1 : 0;
}

int results_write_outcome(H5File *f, const char *group, const EvalOutcome *eo) {
    int rc = 0;
    for (int i = 0; rc == 0 && i < eo->n; i++) {
        rc = results_write_eval(f, group, &eo->streams[i], &eo->ppl[i], eo->device);
        if (rc == 0 && eo->kld && eo->kld[i].n)
            rc = results_write_kld(f, group, &eo->streams[i], &eo->kld[i], kld_scope_names[eo->kld_scope]);
    }
    for (int i = 0; rc == 0 && i < eo->nzs; i++) rc = results_write_zeroshot(f, group, &eo->zs[i], eo->device);
    return rc;
}
