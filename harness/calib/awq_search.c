/* awq_search.c: AWQ's block-level search (Lin et al. 2023; the reference is
 * llm-awq's auto_scale.py / auto_clip.py), run by quantize_model for a method
 * with QUANT_CAP_ACT_SCALE. Per block, in the family's true-sequential groups
 * of linears that read one input (LLaMA: q/k/v after the attention norm, o,
 * gate/up after the MLP norm, down):
 *
 *   1. one pass over the search windows (the first awq_windows calibration
 *      windows, 0: all) with the block as it stands (earlier groups already
 *      quantized) gathers mean |x| per input channel of the group's input,
 *      and every step-th token of it (at most AWQ_CLIP_TOKENS) for clipping;
 *   2. for ratio = i / awq_grid, i < awq_grid: s = max(mean|x|^ratio, 1e-4),
 *      divided by sqrt(max s * min s); the group's linears are replaced by
 *      Q(W diag(s)) diag(s)^-1 (awq_quantize_layer without clipping) and the
 *      loss is the squared error of the block's output against the
 *      full-precision block's on the same inputs, summed over the search
 *      windows; the first smallest is kept (ratio 0 is s = 1: plain RTN);
 *   3. each linear of the group is quantized with the kept s and, unless it
 *      is q or k (the fused QKV too), the clipping search on the sampled
 *      inputs (awq_quantize_layer), stored, and its decoded weights put into
 *      the model before the next group.
 *
 * Where this differs from the reference, and why: the loss is the block's
 * output (the reference inspects the attention module for q/k/v, the MLP for
 * gate/up and the linear itself for o and down, each with the rest of the
 * block in full precision): the harness's forward backends run whole blocks,
 * and the block output is what the issue asks to lower (for down it is the
 * same loss). The groups are searched in turn on the block with the earlier
 * groups quantized, and the block inputs come from the quantized prefix
 * (SPEC 1's sequential calibration, as for GPTQ and SpQR); the reference
 * searches every group on the full-precision model. The scale is stored with
 * the layer (QuantLayer.in_scale) instead of being folded into the previous
 * operation, so o is scaled only where the reference can fold it (v and o of
 * the same shape, i.e. no grouped-query attention), as the reference does.
 *
 * Runs on the CPU only: the activations are read on the host (calibrate.c
 * creates the CPU backend for AWQ whatever the device). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "awq_search.h"
#include "util.h"

/* What the capture pass gathers from one linear's input. */
typedef struct Capture {
    int kind;       /* the linear whose input is read */
    int n;          /* its width */
    double *absum;  /* (n) sum of |x| over the tokens */
    long seen;      /* tokens seen */
    long step;      /* every step-th token is kept for clipping */
    float *X;       /* (AWQ_CLIP_TOKENS, n) the kept tokens */
    int nX;
} Capture;

static void capture_hook(void *user, int layer, LinearKind k, const float *X, int T) {
    Capture *c = user;
    if ((int)k != c->kind) return;
    for (int t = 0; t < T; t++, c->seen++) {
        const float *x = X + (size_t)t * c->n; /* (n) */
        for (int i = 0; i < c->n; i++) c->absum[i] += fabsf(x[i]);
        if (c->seen % c->step == 0 && c->nX < AWQ_CLIP_TOKENS)
            memcpy(c->X + (size_t)c->nX++ * c->n, x, sizeof(float) * (size_t)c->n);
    }
}

/* Sum over the first K windows of the squared difference of block l's output
 * (on buffer in) against the full-precision outputs in b->fp. */
static int block_loss(Forward *f, int l, const AwqBuffers *b, long K, double *loss) {
    double num = 0.0, den = 0.0;
    int rc = 0;
    for (long s = 0; s < K && rc == 0; s++) {
        rc = f->ops->acts_copy(f, b->scratch, b->in, s);
        if (rc == 0) rc = f->ops->acts_block(f, l, b->scratch, s, NULL, NULL);
        if (rc == 0) rc = f->ops->acts_sqdiff(f, b->scratch, b->fp, s, &num, &den);
    }
    *loss = num;
    return rc;
}

/* AWQ's scales for one exponent: s (n) = max(xm^ratio, 1e-4) / sqrt(max s min s). */
static void awq_scales(const float *xm, int n, double ratio, float *s) {
    float lo = INFINITY, hi = 0.0f;
    for (int c = 0; c < n; c++) {
        float v = powf(xm[c], (float)ratio);
        s[c] = v < 1e-4f ? 1e-4f : v;
        lo = s[c] < lo ? s[c] : lo;
        hi = s[c] > hi ? s[c] : hi;
    }
    float norm = sqrtf(hi * lo);
    for (int c = 0; c < n; c++) s[c] /= norm;
}

/* Does the reference clip this linear? Not q and k (their product goes
 * through the attention scores), nor a fused q/k/v. */
static int clip_allowed(const ArchDesc *a, LinearKind k) {
    if (a->lin[k].input != IN_ATT_NORM) return 1;
    return a->qkv == QKV_SEPARATE && k == LIN_V;
}

/* One linear of a group: its shape (model_linear_shape) and where its weights
 * start in the group's weights laid one after another. */
typedef struct GroupLinear {
    LinearKind k;
    int out, in;
    size_t off; /* elements before it */
} GroupLinear;

/* gl[i] of the group's linears ks[0..nk); the total number of weights. */
static size_t group_linears(const ModelConfig *c, const int *ks, int nk, GroupLinear *gl) {
    size_t off = 0;
    for (int i = 0; i < nk; i++) {
        gl[i].k = (LinearKind)ks[i];
        model_linear_shape(c, gl[i].k, &gl[i].out, &gl[i].in);
        gl[i].off = off;
        off += (size_t)gl[i].out * gl[i].in;
    }
    return off;
}

static int set_weights(Model *m, Forward *f, int l, LinearKind k, const float *W) {
    model_set_linear(m, l, k, W);
    return f->ops->weights_changed(f, l);
}

int awq_quantize_block(Model *m, Forward *f, const LayerQuantizer *lq, const QuantRunSpec *spec, int l,
                       const AwqBuffers *b, QuantRun *run) {
    const ModelConfig *c = &m->cfg;
    const ArchDesc *a = arch_of(c);
    const QuantParams *p = &spec->params;
    long N = spec->nsamples, T = spec->seqlen;
    long K = p->awq_windows > 0 && p->awq_windows < N ? p->awq_windows : N;
    int rc = 0;
    for (long s = 0; s < N && rc == 0; s++) { /* the full-precision block's outputs */
        rc = f->ops->acts_copy(f, b->fp, b->in, s);
        if (rc == 0) rc = f->ops->acts_block(f, l, b->fp, s, NULL, NULL);
    }
    for (int g = 0; g < a->n_groups && rc == 0; g++) {
        int ks[LIN_COUNT], nk = 0;
        for (int k = 0; k < a->n_lin; k++)
            if (a->lin[k].group == g) ks[nk++] = k;
        if (nk == 0) continue;
        GroupLinear gl[LIN_COUNT];
        size_t total = group_linears(c, ks, nk, gl);
        int n = gl[0].in;
        for (int i = 1; i < nk; i++)
            if (a->lin[ks[i]].input != a->lin[ks[0]].input)
                return qh_error("awq: the linears of group %d of family %s read different inputs", g, a->name);
        int scaled = !(a->lin[ks[0]].input == IN_ATT_OUT && model_kv_dim(c) != c->dim); /* o under GQA: not scaled (its scales cannot be folded into v) */
        int clip = 0;
        for (int i = 0; i < nk; i++) clip |= p->awq_clip && clip_allowed(a, (LinearKind)ks[i]);
        Capture cap = {.kind = ks[0], .n = n, .step = K * T > AWQ_CLIP_TOKENS ? K * T / AWQ_CLIP_TOKENS : 1};
        cap.absum = qh_calloc((size_t)n, sizeof(double));
        cap.X = qh_malloc(sizeof(float) * (size_t)AWQ_CLIP_TOKENS * n);
        float *xm = qh_malloc(sizeof(float) * (size_t)n * 3); /* (n) mean |x|, (n) candidate s, (n) best s */
        float *s_try = xm + n, *s_best = xm + 2 * n;
        for (int i = 0; i < n; i++) s_best[i] = 1.0f;
        double best_ratio = 0.0, best = INFINITY, loss0 = NAN;
        if (scaled || clip) /* 1. the group's input on the search windows */
            for (long s = 0; s < K && rc == 0; s++) {
                rc = f->ops->acts_copy(f, b->scratch, b->in, s);
                if (rc == 0) rc = f->ops->acts_block(f, l, b->scratch, s, capture_hook, &cap);
            }
        for (int i = 0; i < n; i++) xm[i] = cap.seen > 0 ? (float)(cap.absum[i] / (double)cap.seen) : 1.0f;
        float *Worig = NULL, *Wdeq = NULL;
        if (scaled && rc == 0) { /* 2. the grid of exponents */
            Worig = qh_malloc(sizeof(float) * total); /* the group's weights, one after another */
            Wdeq = qh_malloc(sizeof(float) * total);
            for (int i = 0; i < nk; i++)
                memcpy(Worig + gl[i].off, m->w.blocks[l].lin[gl[i].k], sizeof(float) * (size_t)gl[i].out * gl[i].in);
            for (int r = 0; r < p->awq_grid && rc == 0; r++) {
                double ratio = (double)r / p->awq_grid, loss = NAN;
                awq_scales(xm, n, ratio, s_try);
                for (int i = 0; i < nk && rc == 0; i++) {
                    QuantLayer q;
                    rc = awq_quantize_layer(Worig + gl[i].off, gl[i].out, gl[i].in, s_try, NULL, 0, p, &q,
                                            Wdeq + gl[i].off);
                    quant_layer_free(&q);
                    if (rc == 0) rc = set_weights(m, f, l, gl[i].k, Wdeq + gl[i].off);
                }
                if (rc == 0) rc = block_loss(f, l, b, K, &loss);
                if (r == 0) loss0 = loss;
                if (rc == 0 && loss < best) {
                    best = loss, best_ratio = ratio;
                    memcpy(s_best, s_try, sizeof(float) * (size_t)n);
                }
            }
            /* the weights as they were, for the final quantization */
            for (int i = 0; i < nk && rc == 0; i++) rc = set_weights(m, f, l, gl[i].k, Worig + gl[i].off);
        }
        for (int i = 0; i < nk && rc == 0; i++) { /* 3. quantize with the kept scales (and clipping) */
            LinearKind k = (LinearKind)ks[i];
            int cl = p->awq_clip && clip_allowed(a, k);
            AwqLayerInput in = {.scale = s_best, .X = cl ? cap.X : NULL, .ntok = cl ? cap.nX : 0};
            rc = calib_quantize_sublayer(m, f, lq, spec, l, k, NULL, &in, run);
            if (run->awq_ratio) run->awq_ratio[l * LIN_COUNT + k] = best_ratio;
        }
        if (scaled && rc == 0)
            qh_progress("block %d group %d (%s..): ratio %.3f, block output squared error %.6g (ratio 0: %.6g)", l, g,
                        a->lin[ks[0]].name, best_ratio, best, loss0);
        free(Worig);
        free(Wdeq);
        free(xm);
        free(cap.absum);
        free(cap.X);
    }
    return rc;
}
