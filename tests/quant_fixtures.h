/* quant_fixtures.h: random test data shared by the quantization tests (CPU
 * and GPU): a seeded xorshift64* generator, normal draws, and Hessians with
 * correlated columns built through hessian_add_window. Header-only; each test
 * binary gets its own generator state. Not here: assertions (check.h). */
#ifndef QH_QUANT_FIXTURES_H
#define QH_QUANT_FIXTURES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

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

#endif
