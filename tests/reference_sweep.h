/* reference_sweep.h: the per-layer computation of the SpQR reference
 * (spqr_engine.py SPQRUtil.quantize, SpQR commit 543d10e) assembled here from
 * quant/'s building blocks, for the tests of what the harness writes back into
 * the model (SPEC 1): the column order (spqr_engine.py:80, 97, 104), damping,
 * dead columns and U (106-114), the outlier threshold (129-130), the column
 * sweep (138-260; quant_engine_ref), then
 *   - the weights the reference returns and main.py:263 writes back: the
 *     sweep's own, column c as quantized with the fp32 statistics, outliers at
 *     their exact value (spqr_engine.py:204-249), permutation undone (262-264);
 *   - the weights a deployed 16-bit file decodes to: the same codes with every
 *     statistic value (first level when not coded, second level) and every
 *     outlier value rounded to fp16, decoded by the loop below (not by
 *     quant/layer.c).
 * Header-only; needs quant_internal.h. Not here: assertions (check.h). */
#ifndef QH_REFERENCE_SWEEP_H
#define QH_REFERENCE_SWEEP_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "half.h"
#include "quant_internal.h"
#include "settings.h"
#include "util.h"

static inline float ref_f16(float x) { return qh_f16_to_f32(qh_f32_to_f16(x)); }

/* W (m, n), H (n, n) as quantize_layer_ref takes them (p->stats_dtype is
 * ignored: both results are made). Fills W_sweep and W_fp16 (m, n), original
 * column order. Returns 0, or -1 when U cannot be factored. */
static inline int reference_sweep(const char *method, const float *W, int m, int n, const double *H,
                                  const QuantParams *p, float *W_sweep, float *W_fp16) {
    const QuantMethod *mi = quant_method_find(method);
    const int g = quant_group_width(p, n), ng = (n + g - 1) / g;
    const int scoded = p->qq_scale_bits > 0, zsecond = quant_zero_has_second_level(p), zint = quant_zero_is_integer_code(p);
    const int qq = (scoded || zsecond) ? (m + p->qq_groupsize - 1) / p->qq_groupsize : 0;
    int *order = qh_malloc(sizeof(int) * (size_t)n); /* (n) permuted position -> original column */
    quant_order(H, n, p->perm, order);
    float *Wt = qh_malloc(sizeof(float) * (size_t)n * m); /* (n, m) permuted, transposed */
    for (int c = 0; c < n; c++)
        for (int r = 0; r < m; r++) Wt[(size_t)c * m + r] = W[(size_t)r * n + order[c]];
    float *U = NULL; /* (n, n) */
    uint8_t *dead = qh_calloc((size_t)n, 1);
    if (mi->caps & QUANT_CAP_HESSIAN) {
        double damp;
        int retries;
        U = qh_malloc(sizeof(float) * (size_t)n * n);
        if (quant_factor_U(H, n, order, p->percdamp, U, dead, &damp, &retries) != 0) {
            free(order), free(Wt), free(U), free(dead);
            return -1;
        }
        for (int c = 0; c < n; c++)
            if (dead[c])
                for (int r = 0; r < m; r++) Wt[(size_t)c * m + r] = 0.0f;
    }
    double tau_abs = INFINITY;
    if ((mi->caps & QUANT_CAP_OUTLIERS) && isfinite(p->outlier_threshold)) {
        double os = spqr_outlier_scale(Wt, m, n, U);
        if (isfinite(os)) tau_abs = p->outlier_threshold * os;
    }
    QuantEngine e = {
        .m = m, .n = n, .p = p, .Wt = Wt, .U = U, .tau_abs = tau_abs,
        .use_loo = isfinite(tau_abs) && !p->simplified_outliers,
        .codes_t = qh_malloc((size_t)n * m),
        .outlier_t = isfinite(tau_abs) ? qh_calloc((size_t)n * m, 1) : NULL,
        .scale = qh_malloc(sizeof(float) * (size_t)ng * m),
        .zero = qh_malloc(sizeof(float) * (size_t)ng * m),
        .scale_codes = scoded ? qh_malloc((size_t)ng * m) : NULL,
        .zero_codes = (zsecond || zint) ? qh_malloc((size_t)ng * m) : NULL,
        .qq_ss = scoded ? qh_malloc(sizeof(float) * (size_t)ng * qq) : NULL,
        .qq_sz = scoded ? qh_malloc(sizeof(float) * (size_t)ng * qq) : NULL,
        .qq_zs = zsecond ? qh_malloc(sizeof(float) * (size_t)ng * qq) : NULL,
        .qq_zz = zsecond ? qh_malloc(sizeof(float) * (size_t)ng * qq) : NULL,
    };
    quant_engine_ref(&e);
    for (int c = 0; c < n; c++) {
        const int gi = c / g;
        for (int r = 0; r < m; r++) {
            const size_t i = (size_t)c * m + r, k = (size_t)gi * qq + (size_t)(qq ? r / p->qq_groupsize : 0);
            W_sweep[(size_t)r * n + order[c]] = Wt[i];
            float s = scoded ? ref_f16(e.qq_ss[k]) * ((float)e.scale_codes[(size_t)gi * m + r] - ref_f16(e.qq_sz[k]))
                             : ref_f16(e.scale[(size_t)gi * m + r]);
            float z = zsecond ? ref_f16(e.qq_zs[k]) * ((float)e.zero_codes[(size_t)gi * m + r] - ref_f16(e.qq_zz[k]))
                      : zint  ? (float)e.zero_codes[(size_t)gi * m + r]
                              : ref_f16(e.zero[(size_t)gi * m + r]);
            W_fp16[(size_t)r * n + order[c]] =
                e.outlier_t && e.outlier_t[i] ? ref_f16(Wt[i]) : s * ((float)e.codes_t[i] - z);
        }
    }
    free(order), free(Wt), free(U), free(dead);
    free(e.codes_t), free(e.outlier_t), free(e.scale), free(e.zero), free(e.scale_codes), free(e.zero_codes);
    free(e.qq_ss), free(e.qq_sz), free(e.qq_zs), free(e.qq_zz);
    return 0;
}

#endif
