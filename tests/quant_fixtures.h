/* quant_fixtures.h: random test data shared by the quantization tests (CPU
 * and GPU): a seeded xorshift64* generator, normal draws, and Hessians with
 * correlated columns built through hessian_add_window, and a hand-placed
 * outlier pattern for the quantized matvec kernels. Header-only; each test
 * binary gets its own generator state. Not here: assertions (check.h). */
#ifndef QH_QUANT_FIXTURES_H
#define QH_QUANT_FIXTURES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "half.h"
#include "quant.h"
#include "util.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static inline double urand(void) { /* xorshift64*, uniform in [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double nrand(void) { /* standard normal, Box-Muller */
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* H (n, n) from nwin windows of ntok tokens with correlated columns: an AR(1)
 * chain across columns (rho) times per-column scales in [0.5, 3]; columns in
 * `dead` (may be NULL) are always 0. Built with hessian_add_window; the caller
 * owns (and frees) the result. */
static inline double *correlated_H(int n, int nwin, int ntok, double rho, const int *dead, int ndead) {
    HessianAcc h;
    hessian_init(&h, n);
    double *colscale = qh_malloc(sizeof(double) * n);
    for (int j = 0; j < n; j++) colscale[j] = 0.5 + 2.5 * urand();
    float *X = qh_malloc(sizeof(float) * ntok * n); /* (ntok, n) */
    for (int w = 0; w < nwin; w++) {
        for (int t = 0; t < ntok; t++) {
            double prev = nrand();
            for (int j = 0; j < n; j++) {
                prev = rho * prev + sqrt(1 - rho * rho) * nrand();
                X[t * n + j] = (float)(prev * colscale[j]);
            }
            for (int k = 0; k < ndead; k++) X[t * n + dead[k]] = 0;
        }
        hessian_add_window(&h, X, ntok);
    }
    free(X);
    free(colscale);
    double *H = h.H;
    h.H = NULL;
    hessian_free(&h); /* the accumulator's scratch */
    return H;
}

/* Replaces the outliers of a SpQR layer q (m, n) by a hand-placed pattern:
 * row 0 holds one at every second column ((n + 1) / 2 of them, more than a
 * GPU warp's 32 lanes), row m - 1 one at the last column, every other row
 * none; values 0.7 N(0, 1), rounded through fp16 when fp16 is set. */
static inline void place_outlier_rows(QuantLayer *q, int fp16) {
    int m = q->m, n = q->n, k0 = (n + 1) / 2;
    free(q->outlier_rowptr), free(q->outlier_col), free(q->outlier_val);
    q->outlier_rowptr = qh_calloc((size_t)m + 1, sizeof(int64_t));
    q->outlier_col = qh_malloc(sizeof(uint16_t) * (k0 + 1));
    q->outlier_val = qh_malloc(sizeof(float) * (k0 + 1));
    for (int k = 0; k <= k0; k++) {
        q->outlier_col[k] = (uint16_t)(k < k0 ? 2 * k : n - 1);
        float v = (float)(0.7 * nrand());
        q->outlier_val[k] = fp16 ? qh_f16_to_f32(qh_f32_to_f16(v)) : v;
    }
    for (int r = 1; r <= m; r++) q->outlier_rowptr[r] = r < m ? k0 : k0 + 1;
    q->n_outliers = k0 + 1;
}

#endif
