/* calibrate.c: sequential layer-by-layer quantization of a model (SPEC 1; see
 * calibrate.h). Hessians are shared between sub-layers that read the same
 * input (LLaMA's q/k/v and gate/up, Falcon-7B's query_key_value and
 * dense_h_to_4h), as the references do; which input each reads and the
 * true-sequential groups come from the family's descriptor (arch.h). */
#include "calibrate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "awq_search.h"
#include "util.h"
#ifdef QH_HAVE_CUDA
#include "quant_cuda.h"
#endif

/* One Hessian slot per input a linear can read (ArchInput). */
#define NSLOTS IN_COUNT

typedef struct HookState {
    const ArchDesc *arch;   /* the model's family: which input each linear reads */
    HessianAcc acc[NSLOTS]; /* host Hessians (accumulated here, or downloaded from the GPU) */
    int want[NSLOTS];       /* collect this slot in the current pass */
    double seconds;         /* time spent accumulating */
    int failed;             /* a GPU accumulation failed */
#ifdef QH_HAVE_CUDA
    int on_gpu;             /* accumulate on the GPU (cublasSsyrk per window, double running mean) */
    HessianAccCuda gacc[NSLOTS];
#endif
} HookState;

/* Does the hook collect this call? One call per distinct input (the first
 * sub-layer of each slot), and only for slots of the current pass. */
static int hook_wants(const HookState *h, LinearKind k) {
    int s = h->arch->lin[k].input;
    if (!h->want[s]) return 0;
    for (int j = 0; j < (int)k; j++)
        if ((int)h->arch->lin[j].input == s) return 0; /* an earlier linear reads the same input */
    return 1;
}

static void hessian_hook(void *user, int layer, LinearKind k, const float *X, int T) {
    HookState *h = user;
    int s = h->arch->lin[k].input;
    if (!hook_wants(h, k)) return;
    double t0 = qh_now();
#ifdef QH_HAVE_CUDA
    if (h->on_gpu) {
        if (hessian_add_window_cuda(&h->gacc[s], X, T) != 0) h->failed = 1;
        h->seconds += qh_now() - t0;
        return;
    }
#endif
    hessian_add_window(&h->acc[s], X, T);
    h->seconds += qh_now() - t0;
}

#ifdef QH_HAVE_CUDA
/* The same hook when X is a device pointer of the CUDA forward backend. */
static void hessian_hook_dev(void *user, int layer, LinearKind k, const float *dX, int T) {
    HookState *h = user;
    int s = h->arch->lin[k].input;
    if (!hook_wants(h, k)) return;
    double t0 = qh_now();
    if (hessian_add_window_cuda_dev(&h->gacc[s], dX, T) != 0) h->failed = 1;
    h->seconds += qh_now() - t0;
}
#endif

/* Run block `layer` on window s of activation buffer buf in place, collecting
 * the wanted Hessians: on the GPU straight from the backend's device
 * activations when they live there (acts_on_device). */
static int block_with_hessians(Forward *f, int layer, int buf, long s, int acts_on_device, HookState *hs) {
#ifdef QH_HAVE_CUDA
    if (acts_on_device) return f->ops->acts_block(f, layer, buf, s, hessian_hook_dev, hs);
#endif
    return f->ops->acts_block(f, layer, buf, s, hessian_hook, hs);
}

/* Start collecting slot s (input width n) in the next pass. */
static int hook_slot_begin(HookState *h, int s, int n) {
    hessian_init(&h->acc[s], n);
    h->want[s] = 1;
#ifdef QH_HAVE_CUDA
    if (h->on_gpu) return hessian_cuda_init(&h->gacc[s], n);
#endif
    return 0;
}

/* After the pass: make every collected Hessian available on the host. */
static int hook_slots_finish(HookState *h) {
    if (h->failed) return qh_error("accumulating a Hessian on the GPU failed");
#ifdef QH_HAVE_CUDA
    for (int s = 0; s < NSLOTS && h->on_gpu; s++) {
        if (!h->want[s]) continue;
        double t0 = qh_now();
        if (hessian_cuda_download(&h->gacc[s], h->acc[s].H) != 0) return -1;
        h->acc[s].nwindows = h->gacc[s].nwindows;
        h->seconds += qh_now() - t0;
    }
#endif
    return 0;
}

static void hook_slots_free(HookState *h) {
    for (int s = 0; s < NSLOTS; s++) {
        h->want[s] = 0;
        hessian_free(&h->acc[s]);
#ifdef QH_HAVE_CUDA
        if (h->on_gpu) hessian_cuda_free(&h->gacc[s]);
#endif
    }
}

/* The layer quantizer of the backend: the method's own (quant_methods[]) on
 * the CPU; on the GPU its CUDA twin (same signature, same results up to
 * rounding ties) when kernels/ has one (quant_cuda_supports), else the CPU one. */
struct LayerQuantizer {
    int on_gpu;
#ifdef QH_HAVE_CUDA
    QuantCuda *ctx;
#endif
};

static int layer_quantize(const LayerQuantizer *lq, const char *method, const float *W, int m, int n, const double *H,
                          const AwqLayerInput *awq, const QuantParams *p, QuantLayer *q, float *W_deq) {
    if (awq) return awq_quantize_layer(W, m, n, awq->scale, awq->X, awq->ntok, p, q, W_deq); /* CPU only */
#ifdef QH_HAVE_CUDA
    if (lq && lq->on_gpu && quant_cuda_supports(method))
        return quantize_layer_cuda_ctx(lq->ctx, method, W, m, n, H, p, q, W_deq, NULL);
#endif
    const QuantMethod *qm = quant_method_find(method);
    if (!qm) return qh_error("quantize: unknown method '%s'", method ? method : "(null)");
    return qm->quantize_ref(method, W, m, n, H, p, q, W_deq);
}

int quant_params_fit_model(const QuantParams *p, const char *method, const ModelConfig *c, LinearKind *bad_kind) {
    for (int k = 0; k < model_n_linears(c); k++) {
        int rows, cols;
        model_linear_shape(c, (LinearKind)k, &rows, &cols);
        if (quant_params_validate(p, method, rows, cols) != 0) {
            if (bad_kind) *bad_kind = (LinearKind)k;
            return -1;
        }
    }
    return 0;
}

/* quantize_linear, with AWQ's scales and clipping inputs when awq is not NULL
 * (both are per input column: the row order does not change them). */
static int quantize_linear_awq(const LayerQuantizer *lq, const ModelConfig *c, LinearKind k, const char *method,
                               const float *W, const double *H, const AwqLayerInput *awq, const QuantParams *p,
                               QuantLayer *q, float *W_deq) {
    int rows, cols;
    model_linear_shape(c, k, &rows, &cols);
    if (!model_ckpt_rows_permuted(c, k)) return layer_quantize(lq, method, W, rows, cols, H, awq, p, q, W_deq);
    int hs = model_head_size(c);
    float *Wc = qh_malloc(sizeof(float) * (size_t)rows * cols * 2); /* (rows, cols) twice: W, then W_deq, */
    float *Dc = Wc + (size_t)rows * cols;                           /* in the checkpoint's row order */
    model_rows_reorder(Wc, W, rows, cols, hs, 1);
    int rc = layer_quantize(lq, method, Wc, rows, cols, H, awq, p, q, Dc);
    if (rc == 0) model_rows_reorder(W_deq, Dc, rows, cols, hs, 0);
    free(Wc);
    return rc;
}

int quantize_linear(const LayerQuantizer *lq, const ModelConfig *c, LinearKind k, const char *method, const float *W,
                    const double *H, const QuantParams *p, QuantLayer *q, float *W_deq) {
    return quantize_linear_awq(lq, c, k, method, W, H, NULL, p, q, W_deq);
}

void quant_run_free(QuantRun *r) {
    if (!r) return;
    if (r->layers)
        for (int i = 0; i < r->n_layers * LIN_COUNT; i++) quant_layer_free(&r->layers[i]);
    QH_FREE(r->layers);
    QH_FREE(r->reports);
    QH_FREE(r->block_rel_err);
    QH_FREE(r->awq_ratio);
    token_stream_free(&r->calib_info);
}

int calib_quantize_sublayer(Model *m, Forward *f, const LayerQuantizer *lq, const QuantRunSpec *spec, int l,
                            LinearKind k, const double *H, const AwqLayerInput *awq, QuantRun *run) {
    int rows, cols;
    model_linear_shape(&m->cfg, k, &rows, &cols);
    QuantLayer *q = &run->layers[l * LIN_COUNT + k];
    SubLayerReport *rep = &run->reports[l * LIN_COUNT + k];
    float *Wdeq = qh_malloc(sizeof(float) * (size_t)rows * cols); /* (rows, cols) */
    double t0 = qh_now();
    if (quantize_linear_awq(lq, &m->cfg, k, spec->method, m->w.blocks[l].lin[k], H, awq, &spec->params, q, Wdeq) != 0) {
        free(Wdeq);
        return qh_error("quantizing layer %d %s (%d x %d) failed", l, model_linear_name(&m->cfg, k), rows, cols);
    }
    double secs = qh_now() - t0;
    /* The write-back (SPEC 1, "the weight is replaced by its dequantized value
     * exactly as the SpQR reference computes it"). The reference, SpQR commit
     * 543d10e, quantizes each column with the quantizer's fp32 statistics
     * (spqr_engine.py:204-209; the second level is decoded in fp32,
     * quant_groups.py:109-110 and 120-121), keeps each outlier at its exact
     * fp32 value (spqr_engine.py:232-234), keeps those weights in the sweep
     * (spqr_engine.py:249) and writes them back into the model
     * (main.py:263-265); the next true-sequential group's Hessian and the
     * next block's inputs are computed from them. With stats_dtype fp32 (the
     * default, reference mode) Wdeq is bit for bit that sweep's weights
     * (quant/layer.c decodes the fp32 form with the sweep's arithmetic); with
     * fp16 (deployment mode) it is decoded from the 16-bit form a deployed
     * file holds, which on a small model sends calibration down a different
     * path (stories260K SpQR w3: wikitext2 ppl 169.75 against 163.02). */
    model_set_linear(m, l, k, Wdeq);
    free(Wdeq);
    if (f->ops->weights_changed(f, l) != 0) return -1;
    rep->layer = l;
    rep->kind = k;
    rep->m = rows;
    rep->n = cols;
    rep->proxy_loss = q->proxy_loss;
    rep->n_outliers = q->n_outliers;
    rep->outlier_fraction = (double)q->n_outliers / ((double)rows * cols);
    rep->formula_bits = quant_bits_formula_layer(&spec->params, spec->method, rows, cols, rep->outlier_fraction);
    rep->stored_bits_total = quant_layer_stored_bits(q);
    rep->damp_used = q->damp_used;
    rep->damp_retries = q->damp_retries;
    rep->n_dead = q->n_dead;
    rep->seconds = secs;
    run->t_factor += q->seconds_factor;
    run->t_sweep += q->seconds_sweep - q->seconds_loo;
    run->t_loo += q->seconds_loo;
    run->t_pack += q->seconds_pack;
    qh_progress("  layer %d %-3s %5d x %-5d  proxy loss %-11.5g outliers %-7lld %.2fs%s", l, model_linear_name(&m->cfg, k), rows,
                cols, q->proxy_loss, (long long)q->n_outliers, secs, q->damp_retries ? "  (damping raised)" : "");
    return 0;
}

/* Hand block l to spec->block_done, then drop it from memory (see calibrate.h). */
static int finish_block(Model *m, const QuantRunSpec *spec, QuantRun *run, int l) {
    if (!spec->block_done) return 0;
    if (spec->block_done(spec->block_user, run, l) != 0) return -1;
    for (int k = 0; k < model_n_linears(&m->cfg); k++) quant_layer_free(&run->layers[l * LIN_COUNT + k]);
    model_release_block(m, l);
    return 0;
}

int quantize_model(Model *m, const Tokenizer *tok, const QuantRunSpec *spec, QuantRun *run) {
    memset(run, 0, sizeof *run);
    const ModelConfig *c = &m->cfg;
    int L = c->n_layers, T = spec->seqlen, N = spec->nsamples;
    /* validate every sub-layer shape before any work */
    LinearKind bad;
    if (quant_params_fit_model(&spec->params, spec->method, c, &bad) != 0) {
        int rows, cols;
        model_linear_shape(c, bad, &rows, &cols);
        return qh_error("parameters do not fit sub-layer %s (%d x %d)", model_linear_name(c, bad), rows, cols);
    }
    if (T > c->seq_len) qh_warn("calibration seqlen %d exceeds the model's seq_len %d", T, c->seq_len);
    double t_start = qh_now();
    /* RTN needs no data; with calibration data it is still run through the
     * sequential pipeline so that its proxy losses (with the same Hessians as
     * GPTQ/SpQR would see) can be compared. --calib none skips that. */
    const QuantMethod *method = quant_method_find(spec->method);
    if (!method) return qh_error("quantize: unknown method '%s'", spec->method ? spec->method : "(null)");
    int no_calib = !spec->calib || !strcmp(spec->calib, "none");
    if ((method->caps & QUANT_CAP_CALIB) && no_calib)
        return qh_error("quantize: %s needs calibration data (--calib none is for methods without calibration)",
                        spec->method);
    int is_rtn = !(method->caps & QUANT_CAP_CALIB) && no_calib;
    int is_awq = (method->caps & QUANT_CAP_ACT_SCALE) != 0;
    run->n_layers = L;
    run->qk_rotate_half = c->qk_rotate_half;
    run->arch = c->arch;
    const ArchDesc *arch = arch_of(c);
    int nlin = arch->n_lin;
    run->stats_dtype = spec->params.stats_dtype;
    run->layers = qh_calloc((size_t)L * LIN_COUNT, sizeof(QuantLayer));
    run->reports = qh_calloc((size_t)L * LIN_COUNT, sizeof(SubLayerReport));
    run->block_rel_err = qh_calloc((size_t)L, sizeof(double));
    for (int l = 0; l < L; l++) run->block_rel_err[l] = NAN;
    if (is_awq) {
        run->awq_ratio = qh_calloc((size_t)L * LIN_COUNT, sizeof(double));
        for (int i = 0; i < L * LIN_COUNT; i++) run->awq_ratio[i] = NAN;
    }

    Forward *f = NULL;
    int *windows = NULL;
    /* the three activation buffers (N, T, D), kept by the backend: block inputs,
     * outputs, and the block's outputs with unquantized weights */
    enum { BUF_A = 0, BUF_B = 1, BUF_FP = 2 };
    int in = BUF_A, out = BUF_B, acts_on_device = 0;
    HookState hs;
    memset(&hs, 0, sizeof hs);
    hs.arch = arch;
    LayerQuantizer lq = {0};
    /* AWQ's search reads the activations on the host (awq_search.c): it runs
     * on the CPU backend whatever the device (said, not silent) */
    QhDevice dev = spec->device;
    if (is_awq && dev != QH_DEVICE_CPU) {
        if (dev == QH_DEVICE_CUDA) qh_warn("quantize: awq runs on the CPU (its block search has no CUDA version)");
        dev = QH_DEVICE_CPU;
    }
    int rc = forward_create_opts(dev, m, T, spec->device_stream, spec->max_device_memory, &f);
    if (rc != 0) goto fail;
    run->device = f->ops->name;
#ifdef QH_HAVE_CUDA
    if (!strcmp(f->ops->name, "cuda")) { /* quantize and accumulate Hessians on the GPU too */
        lq.on_gpu = hs.on_gpu = 1;
        if ((rc = quant_cuda_create(&lq.ctx)) != 0) goto fail;
    }
#endif

    if (is_rtn) { /* quantize every layer from the original weights, no Hessian */
        for (int l = 0; l < L && rc == 0; l++) {
            rc = model_load_block(m, l); /* a no-op unless the checkpoint is streamed */
            for (int k = 0; k < nlin && rc == 0; k++) rc = calib_quantize_sublayer(m, f, &lq, spec, l, (LinearKind)k, NULL, NULL, run);
            if (rc == 0) rc = finish_block(m, spec, run, l);
        }
        if (rc != 0) goto fail;
        goto summary;
    }

    /* 1. calibration windows (SPEC 7), 2. their embeddings = inputs of block 0 */
    rc = dataset_calib(spec->calib, spec->data_root, tok, N, T, spec->seed, &windows, &run->calib_info);
    if (rc == 0) rc = dataset_calib_check_vocab(&run->calib_info, windows, N, T, c->vocab_size);
    if (rc != 0) goto fail;
    if ((acts_on_device = f->ops->acts_create(f, 3, N, T, ACTS_QUANTIZE)) < 0) goto fail;
    run->calib_acts = acts_on_device ? "device" : "host";
    double t0 = qh_now();
    for (int s = 0; s < N && rc == 0; s++) rc = f->ops->acts_embed(f, in, s, windows + (size_t)s * T);
    run->t_calib_forward += qh_now() - t0;
    if (rc != 0) goto fail;

    /* 3. block by block, in the descriptor's true-sequential groups (LLaMA: [q,k,v] -> [o] -> [gate,up] ->
     * [down]; Falcon: [query_key_value] -> [dense] -> [dense_h_to_4h] -> [dense_4h_to_h]), or all at once */
    int seq_groups[LIN_COUNT][LIN_COUNT + 1], one_group[1][LIN_COUNT + 1], ngroups = spec->params.true_sequential ? arch->n_groups : 1;
    for (int g = 0; g < arch->n_groups; g++) {
        int n = 0;
        for (int k = 0; k < nlin; k++)
            if (arch->lin[k].group == g) seq_groups[g][n++] = k;
        seq_groups[g][n] = -1;
    }
    for (int k = 0; k <= nlin; k++) one_group[0][k] = k < nlin ? k : -1;
    for (int l = 0; l < L && rc == 0; l++) {
        qh_progress("block %d/%d", l + 1, L);
        if ((rc = model_load_block(m, l)) != 0) break; /* a no-op unless the checkpoint is streamed */
        if (is_awq) { /* its own search fills BUF_FP and quantizes the block (awq_search.c) */
            AwqBuffers b = {.in = in, .scratch = out, .fp = BUF_FP};
            t0 = qh_now();
            rc = awq_quantize_block(m, f, &lq, spec, l, &b, run);
            run->t_calib_forward += qh_now() - t0;
        }
        for (int g = 0; g < ngroups && rc == 0 && !is_awq; g++) {
            const int *grp = spec->params.true_sequential ? seq_groups[g] : one_group[0];
            hook_slots_free(&hs);
            for (int i = 0; grp[i] >= 0 && rc == 0; i++) {
                int rows, cols;
                model_linear_shape(c, (LinearKind)grp[i], &rows, &cols);
                int s = arch->lin[grp[i]].input;
                if (!hs.want[s]) rc = hook_slot_begin(&hs, s, cols);
            }
            /* one pass of the block (earlier groups already quantized) over every window */
            double hs0 = hs.seconds;
            t0 = qh_now();
            for (int s = 0; s < N && rc == 0; s++) {
                int y = g == 0 ? BUF_FP : out;
                rc = f->ops->acts_copy(f, y, in, s);
                if (rc == 0) rc = block_with_hessians(f, l, y, s, acts_on_device, &hs);
            }
            if (rc == 0) rc = hook_slots_finish(&hs);
            double pass = qh_now() - t0;
            run->t_hessian += hs.seconds - hs0;
            run->t_calib_forward += pass - (hs.seconds - hs0);
            for (int i = 0; grp[i] >= 0 && rc == 0; i++) {
                const HessianAcc *h = &hs.acc[arch->lin[grp[i]].input];
                if (spec->hessian_done && spec->hessian_done(spec->hessian_user, l, (LinearKind)grp[i], h->H, h->n) != 0)
                    rc = qh_error("the Hessian callback of layer %d %s failed", l, arch->lin[grp[i]].name);
                if (rc == 0) rc = calib_quantize_sublayer(m, f, &lq, spec, l, (LinearKind)grp[i], h->H, NULL, run);
            }
        }
        if (rc != 0) break;
        /* the quantized block's outputs feed the next block */
        t0 = qh_now();
        double num = 0.0, den = 0.0;
        for (int s = 0; s < N && rc == 0; s++) {
            rc = f->ops->acts_copy(f, out, in, s);
            if (rc == 0) rc = f->ops->acts_block(f, l, out, s, NULL, NULL);
            if (rc == 0) rc = f->ops->acts_sqdiff(f, out, BUF_FP, s, &num, &den);
        }
        run->t_calib_forward += qh_now() - t0;
        run->block_rel_err[l] = den > 0 ? sqrt(num / den) : 0.0;
        if (rc == 0) rc = finish_block(m, spec, run, l);
        qh_progress("block %d: relative output error %.5f", l, run->block_rel_err[l]);
        int tmp = in;
        in = out;
        out = tmp;
    }
    if (rc != 0) goto fail;

summary:;
    double bits = 0.0, sbits = 0.0, nout = 0.0, loss = 0.0;
    int64_t params = 0;
    for (int i = 0; i < L * LIN_COUNT; i++) {
        if (i % LIN_COUNT >= nlin) continue; /* not a linear of this family */
        SubLayerReport *r = &run->reports[i];
        double p = (double)r->m * r->n;
        params += (int64_t)r->m * r->n;
        bits += r->formula_bits * p;
        sbits += (double)r->stored_bits_total;
        nout += (double)r->n_outliers;
        loss += r->proxy_loss;
    }
    run->params = params;
    run->avg_bits = bits / (double)params;
    run->stored_bits = sbits / (double)params;
    run->outlier_fraction = nout / (double)params;
    run->total_proxy_loss = loss;
    run->t_total = qh_now() - t_start;
    run->blocks_streamed = forward_stream_stats(f, &run->t_upload, &run->block_uploads);
    rc = 0;
    goto done;
fail:
    rc = -1;
done:
    hook_slots_free(&hs);
#ifdef QH_HAVE_CUDA
    if (lq.ctx) quant_cuda_destroy(&lq.ctx);
#endif
    free(windows);
    forward_destroy(&f); /* the activation buffers too */
    if (rc != 0) quant_run_free(run);
    return rc;
}

json_t *quant_spec_json(const QuantRunSpec *s) {
    const QuantParams *p = &s->params;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(s->method));
    for (const QuantSetting *q = quant_settings; q->name; q++) { /* every setting, used by the method or not */
        double v = quant_setting_get(p, q);
        if ((q->flags & QS_NEW) && v == q->def) continue; /* ids of older points unchanged */
        json_t *j;
        switch (q->type) {
        case QS_INT:
            j = json_integer((json_int_t)v);
            break;
        case QS_BOOL:
            j = json_boolean(v != 0);
            break;
        case QS_ENUM: {
            char t[64];
            quant_setting_format(q, v, t, sizeof t);
            j = json_string(t);
            break;
        }
        default:
            j = isinf(v) ? json_string("inf") : json_real(v);
        }
        json_object_set_new(o, q->name, j);
    }
    json_object_set_new(o, "calib", json_string(s->calib ? s->calib : ""));
    json_object_set_new(o, "nsamples", json_integer(s->nsamples));
    json_object_set_new(o, "calib_seqlen", json_integer(s->seqlen));
    json_object_set_new(o, "seed", json_integer((json_int_t)s->seed));
    return o;
}

json_t *quant_run_json(const QuantRun *r) {
    json_t *o = json_object();
    json_object_set_new(o, "avg_bits", json_real(r->avg_bits));
    json_object_set_new(o, "stored_bits", json_real(r->stored_bits));
    json_object_set_new(o, "stats_dtype", json_string(quant_stats_dtype_name(r->stats_dtype)));
    json_object_set_new(o, "outlier_fraction", json_real(r->outlier_fraction));
    json_object_set_new(o, "total_proxy_loss", json_real(r->total_proxy_loss));
    json_object_set_new(o, "quantized_params", json_integer(r->params));
    json_object_set_new(o, "device", json_string(r->device ? r->device : ""));
    if (r->calib_acts) json_object_set_new(o, "calib_activations", json_string(r->calib_acts));
    json_t *t = json_object();
    json_object_set_new(t, "total", json_real(r->t_total));
    json_object_set_new(t, "calib_forward", json_real(r->t_calib_forward));
    json_object_set_new(t, "hessian", json_real(r->t_hessian));
    json_object_set_new(t, "factor", json_real(r->t_factor));
    json_object_set_new(t, "sweep", json_real(r->t_sweep));
    json_object_set_new(t, "leave_one_out", json_real(r->t_loo));
    json_object_set_new(t, "pack", json_real(r->t_pack));
    if (r->blocks_streamed) { /* within the phases above */
        json_object_set_new(t, "block_upload", json_real(r->t_upload));
        json_object_set_new(o, "block_uploads", json_integer(r->block_uploads));
    }
    json_object_set_new(o, "seconds", t);
    json_t *layers = json_array();
    const ArchDesc *arch = arch_get((ArchId)r->arch);
    for (int i = 0; i < r->n_layers * LIN_COUNT; i++) {
        if (i % LIN_COUNT >= arch->n_lin) continue;
        const SubLayerReport *s = &r->reports[i];
        json_t *l = json_object();
        json_object_set_new(l, "layer", json_integer(s->layer));
        json_object_set_new(l, "name", json_string(arch->lin[s->kind].name));
        json_object_set_new(l, "m", json_integer(s->m));
        json_object_set_new(l, "n", json_integer(s->n));
        json_object_set_new(l, "proxy_loss", isnan(s->proxy_loss) ? json_null() : json_real(s->proxy_loss));
        json_object_set_new(l, "n_outliers", json_integer(s->n_outliers));
        json_object_set_new(l, "formula_bits", json_real(s->formula_bits));
        json_object_set_new(l, "stored_bits", json_real(sublayer_stored_bits(s)));
        json_object_set_new(l, "stored_bytes", json_integer(s->stored_bits_total / 8));
        json_object_set_new(l, "damp_retries", json_integer(s->damp_retries));
        json_object_set_new(l, "seconds", json_real(s->seconds));
        json_array_append_new(layers, l);
    }
    json_object_set_new(o, "layers", layers);
    json_t *be = json_array();
    for (int l = 0; l < r->n_layers; l++)
        json_array_append_new(be, isnan(r->block_rel_err[l]) ? json_null() : json_real(r->block_rel_err[l]));
    json_object_set_new(o, "block_rel_err", be);
    if (r->awq_ratio) { /* per block, the exponent chosen for each linear */
        json_t *ar = json_array();
        for (int l = 0; l < r->n_layers; l++) {
            json_t *row = json_object();
            for (int k = 0; k < arch->n_lin; k++)
                json_object_set_new(row, arch->lin[k].name, json_real(r->awq_ratio[l * LIN_COUNT + k]));
            json_array_append_new(ar, row);
        }
        json_object_set_new(o, "awq_ratio", ar);
    }
    return o;
}
