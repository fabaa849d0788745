/* awq.c: the part of AWQ (activation-aware weight quantization, Lin et al.
 * 2023) that concerns one linear layer (quant.h): given the per input channel
 * scales s chosen by the block-level search (harness/calib/awq_search.c),
 * quantize W diag(s) with grouped RTN after the clipping search, and keep s
 * in the QuantLayer so that decoding divides column c by s[c]. This is the
 * same as folding s into the previous operation (the reference multiplies the
 * norm / the previous linear by 1/s), but leaves the base model untouched.
 *
 * The clipping search follows the reference's auto_clip: in the scaled domain
 * (weights W diag(s), inputs X diag(s)^-1), per (row, group), the range
 * [-max|w|, max|w|] shrunk by 1 - i / 20 for i < 10, the weights clamped to it
 * and quantized with the grid of grid.h; the error is the mean over the
 * sampled tokens of the squared difference of the group's partial output
 * sum_c x_c w_c against the unclipped weights'. The first best shrink is kept.
 *
 * Not here: the search of s (needs the forward pass), file I/O. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "quant_internal.h"
#include "util.h"

/* Row r's group [c0, c1) of Ws (m, n), clamped in place to the best shrink of
 * its largest |w| for the tokens Xs (ntok, n). wq (c1 - c0) scratch. */
static void clip_group(float *Ws, int n, int r, int c0, int c1, const float *Xs, int ntok, const QGrid *grid,
                       float *wq) {
    float *w = Ws + (size_t)r * n + c0; /* (c1 - c0) */
    int g = c1 - c0;
    float amax = 0.0f;
    for (int c = 0; c < g; c++) amax = fabsf(w[c]) > amax ? fabsf(w[c]) : amax;
    if (amax == 0.0f) return;
    double best = INFINITY;
    float best_max = amax;
    for (int i = 0; i < AWQ_CLIP_STEPS; i++) {
        float mx = amax * (1.0f - (float)i / AWQ_CLIP_GRID);
        float lo = INFINITY, hi = -INFINITY;
        for (int c = 0; c < g; c++) {
            float v = w[c] < -mx ? -mx : (w[c] > mx ? mx : w[c]);
            wq[c] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float sc, z;
        qgrid_fit(grid, lo, hi, &sc, &z);
        for (int c = 0; c < g; c++) wq[c] = qgrid_decode(qgrid_code(wq[c], sc, z, grid->maxq), sc, z) - w[c];
        double err = 0.0; /* sum over tokens of (x . (w_q - w))^2, the group's output error */
        for (int t = 0; t < ntok; t++) {
            const float *x = Xs + (size_t)t * n + c0;
            double d = 0.0;
            for (int c = 0; c < g; c++) d += (double)x[c] * wq[c];
            err += d * d;
        }
        if (err < best) best = err, best_max = mx;
    }
    if (best_max < amax)
        for (int c = 0; c < g; c++) w[c] = w[c] < -best_max ? -best_max : (w[c] > best_max ? best_max : w[c]);
}

int awq_scale_invalid(const float *s, int n) {
    for (int c = 0; c < n; c++)
        if (!isfinite(s[c]) || !(s[c] > 0.0f)) return c;
    return -1;
}

int awq_quantize_layer(const float *W, int m, int n, const float *s, const float *X, int ntok, const QuantParams *p,
                       QuantLayer *q, float *W_deq) {
    memset(q, 0, sizeof *q);
    if (quant_layer_check_inputs("awq_quantize_layer", "awq", W, m, n, NULL, p) != 0) return -1;
    if (ntok < 0 || (ntok > 0 && !X)) return qh_error("awq: %d clipping tokens given without their inputs X", ntok);
    double t0 = qh_now();
    float *sk = qh_malloc(sizeof(float) * (size_t)n); /* (n) s as the layer keeps it */
    for (int c = 0; c < n; c++) {
        float v = s ? s[c] : 1.0f;
        sk[c] = p->stats_dtype == QH_STATS_FP16 ? qh_f16_to_f32(qh_f32_to_f16(v)) : v;
    }
    int bad = awq_scale_invalid(sk, n);
    if (bad >= 0) {
        free(sk);
        return qh_error("awq: input channel scale s[%d] = %g (%s); expected a finite value > 0", bad,
                        s ? (double)s[bad] : 1.0, quant_stats_dtype_name(p->stats_dtype));
    }
    float *Ws = qh_malloc(sizeof(float) * (size_t)m * n); /* (m, n) W diag(s) */
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) Ws[(size_t)r * n + c] = W[(size_t)r * n + c] * sk[c];
    if (X && ntok > 0) {
        int step = ntok > AWQ_CLIP_TOKENS ? ntok / AWQ_CLIP_TOKENS : 1, nt = 0; /* every step-th token, as the reference */
        float *Xs = qh_malloc(sizeof(float) * (size_t)AWQ_CLIP_TOKENS * n); /* (nt, n) X diag(s)^-1 */
        for (int t = 0; t < ntok && nt < AWQ_CLIP_TOKENS; t += step, nt++)
            for (int c = 0; c < n; c++) {
                float x = X[(size_t)t * n + c];
                if (!isfinite(x)) {
                    free(sk), free(Ws), free(Xs);
                    return qh_error("awq: clipping input X[%d][%d] = %g; expected finite values", t, c, (double)x);
                }
                Xs[(size_t)nt * n + c] = x / sk[c];
            }
        const QGrid grid = qgrid_weights(p);
        const int g = quant_group_width(p, n);
#pragma omp parallel if (10.0 * m * n * nt >= QH_PAR_MIN_WORK)
        {
            float *wq = qh_malloc(sizeof(float) * (size_t)g);
#pragma omp for schedule(dynamic, 4)
            for (int r = 0; r < m; r++)
                for (int c0 = 0; c0 < n; c0 += g) clip_group(Ws, n, r, c0, c0 + g < n ? c0 + g : n, Xs, nt, &grid, wq);
            free(wq);
        }
        free(Xs);
    }
    int rc = quantize_layer_ref("rtn", Ws, m, n, NULL, p, q, NULL);
    free(Ws);
    if (rc != 0) {
        free(sk);
        return -1;
    }
    snprintf(q->method, sizeof q->method, "awq");
    q->in_scale = sk;
    q->params = *p;
    if (W_deq) quant_layer_dequantize(q, W_deq);
    q->seconds_sweep = qh_now() - t0;
    return 0;
}

int awq_quantize_ref(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p,
                     QuantLayer *q, float *W_deq) {
    return awq_quantize_layer(W, m, n, NULL, NULL, 0, p, q, W_deq);
}
