/* eval_run.c: the dataset loop shared by the subcommands (see eval_run.h). */
#include "eval_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem_plan.h"
#include "stream_eval.h"
#include "util.h"

int eval_default_seqlen(const ModelConfig *c) { return c->seq_len < 2048 ? c->seq_len : 2048; }

/* The table printed as datasets finish; with the metrics, two more columns. */
static void table_header(int kld) {
    printf("%-12s %10s %9s %9s %8s %7s", "dataset", "ppl", "stderr", "tokens", "windows", "seqlen");
    if (kld) printf(" %10s %9s", "KLD", "same top");
    printf("  %s\n", "note");
}

/* The table's note on where a stream's text came from ("train data: C4 en train shard 00000, first 1000 ..."). */
static const char *stream_note(const TokenStream *ts, char *buf, size_t n) {
    if (ts->origin[0]) snprintf(buf, n, "%s%s", ts->is_train_data ? "train data: " : "", ts->origin);
    else snprintf(buf, n, "%s", ts->is_train_data ? "train data" : "");
    return buf;
}

int eval_outcome_check(const EvalOutcome *o, char *what, size_t n) {
    int bad = 0;
    if (what && n) what[0] = 0;
    for (int i = 0; i < o->n; i++) {
        const PplResult *r = &o->ppl[i];
        if (isfinite(r->ppl)) continue;
        bad++;
        long w = 0; /* the first window whose mean NLL is not finite */
        while (w < r->nwindows && isfinite(r->window_nll[w])) w++;
        const char *v = isnan(r->ppl) ? "nan" : r->ppl > 0 ? "inf" : "-inf"; /* printf may write "-nan" */
        qh_error("evaluation on %s failed: perplexity %s (window %ld of %ld has a non-finite mean NLL: a NaN or "
                 "infinite weight or activation in the forward pass)", o->streams[i].name, v, w + 1, r->nwindows);
        if (what && n) {
            size_t l = strlen(what);
            snprintf(what + l, n - l, "%s%s ppl %s", l ? "; " : "", o->streams[i].name, v);
        }
    }
    return bad ? -1 : 0;
}

static void table_row(const EvalOutcome *o, int i) {
    const PplResult *r = &o->ppl[i];
    printf("%-12s %10.4f %9.4f %9ld %8ld %7d", o->streams[i].name, r->ppl, r->ppl_stderr, r->ntokens, r->nwindows,
           r->seqlen);
    if (o->kld && o->kld[i].n) printf(" %10.6f %8.3f%%", o->kld[i].kld_mean, 100 * o->kld[i].same_top);
    else if (o->kld) printf(" %10s %9s", "-", "-");
    char note[200];
    printf("  %s\n", stream_note(&o->streams[i], note, sizeof note));
    fflush(stdout);
}

/* The zero-shot table, one line per task as it finishes (acc_norm "-" where the task has none). */
static void zs_header(void) {
    printf("\n%-14s %7s %8s %8s %9s %8s %9s\n", "task", "items", "acc", "stderr", "acc_norm", "stderr", "seconds");
}

static void zs_row(const ZsResult *r) {
    printf("%-14s %7ld %8.4f %8.4f", r->task->name, r->n, r->acc, r->acc_stderr);
    if (isnan(r->acc_norm)) printf(" %9s %8s", "-", "-");
    else printf(" %9.4f %8.4f", r->acc_norm, r->acc_norm_stderr);
    printf(" %9.2f\n", r->seconds);
    fflush(stdout);
}

/* Read every task's file before any compute: a bad item fails first. */
static int zs_load_all(const EvalSpec *s, ZsData **data, int *n) {
    *data = NULL;
    *n = 0;
    if (zs_task_list_check(s->zeroshot, "zero-shot tasks") != 0) return -1;
    char *list = qh_strdup(s->zeroshot), *save = NULL;
    int cap = 1, rc = 0;
    for (char *c = list; *c; c++) cap += *c == ',';
    *data = qh_calloc((size_t)cap, sizeof(ZsData));
    for (char *name = strtok_r(list, ",", &save); name && rc == 0; name = strtok_r(NULL, ",", &save)) {
        rc = zs_data_load(zs_task_find(name), s->zeroshot_data, s->zeroshot_limit, &(*data)[*n]);
        if (rc == 0) (*n)++;
    }
    free(list);
    return rc;
}

static void zs_free_all(ZsData *data, int n) {
    for (int i = 0; i < n; i++) zs_data_free(&data[i]);
    free(data);
}

void eval_outcome_free(EvalOutcome *o) {
    for (int i = 0; i < o->n; i++) {
        token_stream_free(&o->streams[i]);
        ppl_result_free(&o->ppl[i]);
    }
    QH_FREE(o->streams);
    QH_FREE(o->ppl);
    QH_FREE(o->verify_ppl);
    QH_FREE(o->kld);
    for (int i = 0; i < o->nzs; i++) zs_result_free(&o->zs[i]);
    QH_FREE(o->zs);
    o->n = 0;
    o->nzs = 0;
}

/* The device an evaluation runs on (auto: cuda when usable). */
static QhDevice eval_device(const EvalSpec *s) {
    return s->device == QH_DEVICE_AUTO ? (qh_cuda_available() ? QH_DEVICE_CUDA : QH_DEVICE_CPU) : s->device;
}

/* The plan of a block-by-block evaluation on `dev` (mem_plan.h) over the
 * most windows any stream gives; -1 when it cannot fit. */
static int eval_plan(const Model *m, const EvalSpec *s, const EvalOutcome *out, int seqlen, MemPlanSpec *ps,
                     MemPlan *p) {
    long most = 0;
    for (int i = 0; i < out->n; i++) {
        long w = (long)(out->streams[i].n / (size_t)seqlen);
        if (s->max_windows > 0 && w > s->max_windows) w = s->max_windows;
        if (w > most) most = w;
    }
    size_t decode = 0; /* a saved quantized model decoded block by block */
    if (stream_loader_work_bytes(s->loader, &m->cfg, &decode) != 0) return -1;
    QhDevice dev = eval_device(s);
    *ps = (MemPlanSpec){.c = &m->cfg, .seqlen = seqlen, .windows = most, .on_device = dev == QH_DEVICE_CUDA,
                        .device_wsize = mem_plan_device_wsize(), .max_host = s->max_memory,
                        .max_device = s->max_device_memory, .device_free = qh_cuda_free_bytes(),
                        .decode_bytes = decode};
    return mem_plan_make(ps, p);
}

/* Block by block (stream_eval.h) after `plan`, printed on stderr first:
 * --max-memory, --max-device-memory, a model read block by block, or one the
 * GPU cannot hold whole. */
static int eval_run_streamed(const Model *m, const EvalSpec *s, int seqlen, const MemPlanSpec *ps,
                             const MemPlan *plan, EvalOutcome *out) {
    if (s->verify) return qh_error("--verify compares two whole-model evaluations: drop --max-memory / --max-device-memory");
    if (s->kld_ref)
        return qh_error("--max-memory evaluates one model block by block: the KL divergence against the full-precision "
                        "model (--kld) needs both resident (drop --max-memory or --kld)");
    QhDevice dev = eval_device(s);
    if (dev == QH_DEVICE_CUDA && !qh_cuda_available())
        return qh_error("--device cuda: no CUDA GPU is visible on this machine");
    out->device = dev == QH_DEVICE_CUDA ? "cuda" : "cpu";
    size_t host = s->max_memory ? s->max_memory : (size_t)1 << 62; /* no host budget: every window at once */
    mem_plan_print(stderr, ps, plan);
    if (stream_eval_check(m, seqlen, host, ps->decode_bytes) != 0) return -1; /* before the table header */
    if (!s->quiet) table_header(0);
    for (int i = 0; i < out->n; i++) {
        if (perplexity_eval_streamed_dev(dev, s->max_device_memory, (Model *)m, out->streams[i].ids,
                                         out->streams[i].n, seqlen, s->max_windows, host, s->loader,
                                         &out->ppl[i]) != 0)
            return -1;
        if (!s->quiet) table_row(out, i);
    }
    return 0;
}

int eval_run(const Model *m, const Tokenizer *t, const EvalSpec *s, EvalOutcome *out) {
    memset(out, 0, sizeof *out);
    out->base_rss = qh_current_rss_bytes();
    int seqlen = s->seqlen > 0 ? s->seqlen : eval_default_seqlen(&m->cfg);
    if (seqlen > m->cfg.seq_len)
        qh_warn("seqlen %d exceeds the model's trained context %d: rotary positions beyond it are extrapolated",
                seqlen, m->cfg.seq_len);
    char *list = qh_strdup(s->datasets ? s->datasets : "");
    int cap = 1;
    for (char *c = list; *c; c++) cap += *c == ',';
    out->streams = qh_calloc((size_t)cap, sizeof(TokenStream));
    out->ppl = qh_calloc((size_t)cap, sizeof(PplResult));
    /* build every stream and read every zero-shot file first: a bad dataset name or item fails before any compute */
    int rc = 0;
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name && rc == 0; name = strtok_r(NULL, ",", &save)) {
        if (!*name) continue;
        rc = dataset_eval(name, s->data_root, t, seqlen, &out->streams[out->n]);
        if (rc == 0) out->n++;
    }
    free(list);
    if (rc == 0 && out->n == 0 && !s->zeroshot) rc = qh_error("no dataset given");
    /* block by block: a budget given, a model read block by block, or one the GPU cannot hold whole (the plan's
     * stream_device; a model with replaced weights stays on the whole-model path, where the CUDA backend streams
     * by itself) */
    int budget = s->max_memory > 0 || s->max_device_memory > 0 || m->src.load;
    int gpu_may_stream = eval_device(s) == QH_DEVICE_CUDA && model_is_streamable(m) && !model_has_replaced(m);
    MemPlanSpec ps;
    MemPlan plan;
    if (rc == 0 && (budget || gpu_may_stream)) rc = eval_plan(m, s, out, seqlen, &ps, &plan);
    int streamed = rc == 0 && (budget || (gpu_may_stream && plan.stream_device));
    ZsData *zd = NULL;
    int nzd = 0;
    if (rc == 0 && s->zeroshot && streamed)
        rc = qh_error("the zero-shot tasks need the whole model resident, but this evaluation runs block by block "
                      "(--max-memory / --max-device-memory, a model read block by block, or one the GPU cannot "
                      "hold): drop the budget or --zeroshot");
    if (rc == 0 && s->zeroshot) rc = zs_load_all(s, &zd, &nzd);
    if (rc == 0 && streamed) {
        rc = eval_run_streamed(m, s, seqlen, &ps, &plan, out);
        out->peak_rss = qh_peak_rss_bytes();
        if (rc != 0) eval_outcome_free(out);
        return rc;
    }
    Forward *f = NULL, *ref = NULL;
    if (rc == 0 && s->verify && !qh_cuda_available())
        rc = qh_error("--verify compares the CUDA backend with the CPU one, but no CUDA GPU is usable here");
    if (rc == 0) rc = forward_create(s->verify ? QH_DEVICE_CUDA : s->device, m, seqlen, &f);
    if (rc == 0 && s->kld_ref) { /* the reference on the same backend as the model */
        rc = forward_create(!strcmp(f->ops->name, "cuda") ? QH_DEVICE_CUDA : QH_DEVICE_CPU, s->kld_ref, seqlen, &ref);
        out->kld = qh_calloc((size_t)out->n, sizeof(KldStats));
        out->kld_scope = s->kld_scope;
    }
    if (rc == 0) {
        out->device = f->ops->name;
        if (!s->quiet && out->n) table_header(ref != NULL);
    }
    for (int i = 0; rc == 0 && i < out->n; i++) {
        const TokenStream *ts = &out->streams[i];
        qh_progress("eval %s (%zu tokens, seqlen %d%s)", ts->name, ts->n, seqlen, ref ? ", with KL divergence" : "");
        if (ref && (!s->kld_datasets || qh_in_list(s->kld_datasets, ts->name)))
            rc = perplexity_eval_kld(f, ref, ts->ids, ts->n, seqlen, s->max_windows, s->kld_scope, &out->ppl[i],
                                     &out->kld[i]);
        else rc = perplexity_eval(f, ts->ids, ts->n, seqlen, s->max_windows, &out->ppl[i]);
        if (rc == 0 && !s->quiet) table_row(out, i);
    }
    if (rc == 0 && nzd > 0) { /* the zero-shot tasks in windows of seqlen (lm-eval's max_length) */
        out->zs = qh_calloc((size_t)nzd, sizeof(ZsResult));
        if (!s->quiet) zs_header();
        for (int i = 0; rc == 0 && i < nzd; i++) {
            qh_progress("zero-shot %s (%ld items, window %d)", zd[i].task->name, zd[i].n, seqlen);
            rc = zs_evaluate(f, t, &zd[i], seqlen, &out->zs[i]);
            if (rc == 0) out->nzs++;
            if (rc == 0 && !s->quiet) zs_row(&out->zs[i]);
        }
    }
    zs_free_all(zd, nzd);
    if (rc == 0 && ref && !s->quiet)
        for (int i = 0; i < out->n; i++) {
            if (!out->kld[i].n) continue;
            printf("\n%s, positions: %s\n", out->streams[i].name, kld_scope_names[s->kld_scope]);
            kld_stats_print(stdout, &out->kld[i], "  ");
        }
    forward_destroy(&ref);
    forward_destroy(&f);
    out->peak_rss = qh_peak_rss_bytes();
    if (rc == 0 && s->verify) {
        /* the same windows through the CPU backend */
        out->verify_ppl = qh_calloc((size_t)out->n, sizeof(double));
        rc = forward_create(QH_DEVICE_CPU, m, seqlen, &f);
        for (int i = 0; rc == 0 && i < out->n; i++) {
            PplResult r;
            rc = perplexity_eval(f, out->streams[i].ids, out->streams[i].n, seqlen, s->max_windows, &r);
            if (rc != 0) break;
            out->verify_ppl[i] = r.ppl;
            double rel = fabs(out->ppl[i].ppl - r.ppl) / r.ppl;
            if (rel > out->verify_max_rel) out->verify_max_rel = rel;
            if (!s->quiet) printf("verify %-12s cuda %.6f  cpu %.6f  relative difference %.3g\n", out->streams[i].name,
                                  out->ppl[i].ppl, r.ppl, rel);
            ppl_result_free(&r);
        }
        forward_destroy(&f);
        if (rc == 0 && out->verify_max_rel > s->verify_rtol)
            rc = qh_error("--verify: CUDA and CPU perplexities differ by %.3g relative (tolerance %.3g)",
                          out->verify_max_rel, s->verify_rtol);
    }
    if (rc != 0) eval_outcome_free(out);
    return rc;
}

json_t *eval_one_json(const TokenStream *ts, const PplResult *r, const char *device) {
    json_t *o = json_object();
    json_object_set_new(o, "dataset", json_string(ts->name));
    json_object_set_new(o, "ppl", json_real(r->ppl));
    json_object_set_new(o, "ppl_stderr", isfinite(r->ppl_stderr) ? json_real(r->ppl_stderr) : json_null()); /* NaN for 1 window */
    json_object_set_new(o, "mean_nll", json_real(r->mean_nll));
    json_object_set_new(o, "ntokens", json_integer(r->ntokens));
    json_object_set_new(o, "nwindows", json_integer(r->nwindows));
    json_object_set_new(o, "seqlen", json_integer(r->seqlen));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    if (r->upload_seconds > 0) json_object_set_new(o, "upload_seconds", json_real(r->upload_seconds));
    json_object_set_new(o, "device", json_string(device ? device : ""));
    json_object_set_new(o, "dataset_sha256", json_string(ts->sha256));
    json_object_set_new(o, "split", json_string(ts->split));
    json_object_set_new(o, "is_train_data", json_boolean(ts->is_train_data));
    json_object_set_new(o, "dataset_source", json_string(ts->source));
    json_object_set_new(o, "origin", json_string(ts->origin));
    json_object_set_new(o, "tokenizer", json_string(ts->tokenizer_path));
    json_object_set_new(o, "tokenizer_sha256", json_string(ts->tokenizer_sha256));
    return o;
}

json_t *eval_outcome_json(const EvalOutcome *o) {
    json_t *arr = json_array();
    for (int i = 0; i < o->n; i++) {
        json_t *one = eval_one_json(&o->streams[i], &o->ppl[i], o->device);
        if (o->verify_ppl) json_object_set_new(one, "verify_cpu_ppl", json_real(o->verify_ppl[i]));
        if (o->kld && o->kld[i].n) {
            json_object_set_new(one, "kld", kld_stats_json(&o->kld[i]));
            json_object_set_new(one, "kld_scope", json_string(kld_scope_names[o->kld_scope]));
        }
        json_array_append_new(arr, one);
    }
    json_t *root = json_object();
    json_object_set_new(root, "results", arr);
    json_object_set_new(root, "peak_rss_mb", json_real((double)o->peak_rss / (1 << 20)));
    json_object_set_new(root, "base_rss_mb", json_real((double)o->base_rss / (1 << 20)));
    if (o->verify_ppl) json_object_set_new(root, "verify_max_rel", json_real(o->verify_max_rel));
    if (o->nzs > 0) {
        json_t *z = json_array();
        for (int i = 0; i < o->nzs; i++) json_array_append_new(z, zs_result_json(&o->zs[i]));
        json_object_set_new(root, "zeroshot", z);
    }
    return root;
}
