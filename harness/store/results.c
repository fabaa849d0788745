/* results.c: writes the result-file schema of results.h / results/README.md. */
#include "results.h"

#include <stdio.h>
#include <string.h>

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

int results_write_eval(H5File *f, const char *group, const TokenStream *ts, const PplResult *r, const char *device) {
    char g[512];
    snprintf(g, sizeof g, "%s/eval/%s", group && strcmp(group, "/") ? group : "", ts->name);
    /* dataset names like "file:x/y" must not create nested groups */
    for (char *c = g + strlen(g) - strlen(ts->name); *c; c++)
        if (*c == '/') *c = '|';
    if (h5_exists(f, g) && h5_delete(f, g) != 0) return -1;
    if (h5_group(f, g) != 0) return -1;
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
