/* hessian.c: the Hessian accumulator of SPEC 1.3: H = (2/N) sum x x^T over
 * the tokens of N windows, kept as a running mean over windows (as the
 * references do: H *= k/(k+1); H += 2/(k+1) X^T X), in double, with BLAS
 * dsyrk. Not here: what is done with H (prepare.c). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "util.h"

void hessian_init(HessianAcc *h, int n) {
    h->n = n;
    h->nwindows = 0;
    h->H = qh_calloc((size_t)n * n, sizeof(double));
}

void hessian_free(HessianAcc *h) {
    QH_FREE(h->H);
    h->n = 0;
    h->nwindows = 0;
}

void hessian_add_window(HessianAcc *h, const float *X, int ntok) {
    enum { TILE = 256 }; /* tokens converted to double at a time */
    const int n = h->n;
    const double k = (double)h->nwindows;
    const double keep = k / (k + 1.0), alpha = 2.0 / (k + 1.0);
    h->nwindows++;
    /* upper triangle: H = keep * H + alpha * X^T X, tile by tile */
    double *Xd = qh_malloc((size_t)TILE * n * sizeof(double)); /* (TILE, n) */
    double beta = keep;
    for (int t0 = 0; t0 < ntok; t0 += TILE) {
        int nt = ntok - t0 < TILE ? ntok - t0 : TILE;
        for (size_t i = 0; i < (size_t)nt * n; i++) Xd[i] = X[(size_t)t0 * n + i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, nt, alpha, Xd, n, beta, h->H, n);
        beta = 1.0;
    }
    free(Xd);
    if (ntok <= 0) /* no tokens: only the running-mean rescale */
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) h->H[(size_t)i * n + j] *= keep;
    /* mirror the upper triangle into the lower one, in 64 x 64 tiles */
#pragma omp parallel for schedule(dynamic)
    for (int i0 = 0; i0 < n; i0 += 64)
        for (int j0 = 0; j0 <= i0; j0 += 64)
            for (int i = i0; i < i0 + 64 && i < n; i++)
                for (int j = j0; j < j0 + 64 && j < i; j++) h->H[(size_t)i * n + j] = h->H[(size_t)j * n + i];
}
