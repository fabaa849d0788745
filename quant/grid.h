/* grid.h: the uniform min-max quantizer of SPEC 2 as inline scalar functions:
 * fit a grid (scale, zero) from a range, code a value, decode a code. Every
 * method, the second level of the statistics and the leave-one-out criterion
 * use these, so that all paths round identically (the GPTQ(H = I) == RTN
 * invariant depends on it).
 *
 * Not here: loops over tensors, statistics layout, the second level itself
 * (stats.c), the leave-one-out criterion (outliers.c).
 *
 * All arithmetic is fp32, as in the reference engines. Rounding is rintf
 * (half-to-even under the default rounding mode; nothing in qharness changes
 * the mode). The functions are QH_HD: `__host__ __device__` when compiled by
 * nvcc, so that the CUDA kernels (kernels/quant_kernels.cu) call this very
 * code (on the device rintf is also half-to-even, division IEEE unless
 * -prec-div=false / --use_fast_math, which qharness does not use); plain C
 * sees empty macros. */
#ifndef QH_GRID_H
#define QH_GRID_H

#include <stdint.h>

#include <math.h>

#include "quant.h"

#ifdef __CUDACC__
#define QH_HD __host__ __device__
#else
#define QH_HD
#endif

typedef struct QGrid {
    float maxq;     /* 2^bits - 1 */
    int sym;        /* symmetric grid, zero = (maxq + 1) / 2 */
    int round_zero; /* zero rounded to an integer */
    int widen;      /* GPTQ's rule: the range is widened to contain 0 */
} QGrid;

/* The grid of the first level (the weights) for parameters p. gptq_zero_rule
 * implies a rounded zero (SPEC 2: "rounded zero, range widened to contain 0"). */
static inline QH_HD QGrid qgrid_weights(const QuantParams *p) {
    QGrid g;
    g.maxq = (float)((1 << p->wbits) - 1);
    g.sym = p->sym != 0;
    g.widen = p->gptq_zero_rule != 0;
    g.round_zero = p->round_zero != 0 || p->gptq_zero_rule != 0;
    return g;
}

/* The grid of the second level (SPEC 2): asymmetric min-max, fractional zero. */
static inline QH_HD QGrid qgrid_second_level(int bits) {
    QGrid g;
    g.maxq = (float)((1 << bits) - 1);
    g.sym = 0;
    g.widen = 0;
    g.round_zero = 0;
    return g;
}

/* SPEC 2: range -> (scale, zero). Order of the range adjustments, as in both
 * reference implementations: widen to contain 0 (GPTQ rule), then symmetric,
 * then the constant guard (xmin == xmax -> [-1, +1]). For the asymmetric grid
 * without widening the order does not matter; for the symmetric one this keeps
 * a constant group c inside its range [-|c|, |c|]. Unlike the references'
 * "xmin = -xmax only where xmin < 0", SPEC 2's symmetric range is always
 * [-xmax, xmax]. */
static inline QH_HD void qgrid_fit(const QGrid *g, float xmin, float xmax, float *scale, float *zero) {
    if (g->widen) {
        xmin = xmin < 0.0f ? xmin : 0.0f;
        xmax = xmax > 0.0f ? xmax : 0.0f;
    }
    if (g->sym) {
        float a = fabsf(xmin);
        xmax = a > xmax ? a : xmax;
        xmin = -xmax;
    }
    if (xmin == xmax) { /* SPEC 2 constant-group guard */
        xmin = -1.0f;
        xmax = +1.0f;
    }
    float s = (xmax - xmin) / g->maxq;
    float z;
    if (g->sym)
        z = (g->maxq + 1.0f) * 0.5f;
    else {
        z = -xmin / s;
        if (g->round_zero) z = rintf(z);
    }
    *scale = s;
    *zero = z;
}

/* SPEC 2: q = clamp(round(x / scale + zero), 0, maxq), returned as a float
 * holding an integer. A NaN (scale 0) lands on 0. */
static inline QH_HD float qgrid_code(float x, float scale, float zero, float maxq) {
    float q = rintf(x / scale + zero);
    q = q > 0.0f ? q : 0.0f;
    q = q < maxq ? q : maxq;
    return q;
}

/* SPEC 2: x_hat = scale * (q - zero). */
static inline QH_HD float qgrid_decode(float q, float scale, float zero) { return scale * (q - zero); }


/* SPEC 2 second level: code x[r0..r1) (one group of beta2 consecutive rows'
 * statistics) with the asymmetric min-max grid at `bits`; x is replaced by the
 * decoded values (fp32), the codes written, the second-level scale and zero
 * returned (kept fp32 while quantizing). Shared by stats.c and the CUDA sweep. */
static inline QH_HD void qgrid_second_level_code(float *x, int r0, int r1, int bits, uint8_t *codes, float *ss,
                                                 float *sz) {
    QGrid g2 = qgrid_second_level(bits);
    float lo = x[r0], hi = x[r0];
    for (int r = r0 + 1; r < r1; r++) {
        lo = x[r] < lo ? x[r] : lo;
        hi = x[r] > hi ? x[r] : hi;
    }
    float s2, z2;
    qgrid_fit(&g2, lo, hi, &s2, &z2);
    for (int r = r0; r < r1; r++) {
        float c = qgrid_code(x[r], s2, z2, g2.maxq);
        codes[r] = (uint8_t)c;
        x[r] = qgrid_decode(c, s2, z2);
    }
    *ss = s2;
    *sz = z2;
}

#endif
