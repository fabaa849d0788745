/* hessian.c: the Hessian accumulator of SPEC 1.3: H = (2/N) sum x x^T over
 * the tokens of N windows, kept as a running mean over windows (as the
 * references do: H *= k/(k+1); H += 2/(k+1) X^T X): each window's X^T X by
 * BLAS ssyrk in fp32 (SPEC 1: "fp32 or better"), the running mean in double. Not here: what is done with H (prepare.c). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "util.h"

void hessian_init(HessianAcc *h, int n) {
    h->n = n;
    h->nwindows = 0;
    h->H = qh_calloc((size_t)n * n, sizeof(double));
    h->scratch = NULL;
}

void hessian_free(HessianAcc *h) {
    QH_FREE(h->H);
    QH_FREE(h->scratch);
    h->n = 0;
    h->nwindows = 0;
}

void hessian_add_window(HessianAcc *h, const float *X, int ntok) {
    const int n = h->n;
    const double k = (double)h->nwindows;
    const double keep = k / (k + 1.0), alpha = 2.0 / (k + 1.0);
    h->nwindows++;
    /* this window's X^T X in fp32 (one ssyrk at the sgemm rate: the Hessian is
     * most of a layer's arithmetic), then folded into the double running mean */
    if (!h->scratch) h->scratch = qh_malloc(sizeof(float) * (size_t)n * n);
    float *G = h->scratch; /* (n, n), upper triangle */
    if (ntok > 0) {
        int nt = qh_blas_begin((double)n * n * ntok);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, ntok, 1.0f, X, n, 0.0f, G, n);
        qh_blas_end(nt);
    }
    const int par = 4.0 * n * n >= QH_PAR_MIN_WORK; /* the folds below: a few operations per element */
#pragma omp parallel for schedule(dynamic, 16) if (par)
    for (int i = 0; i < n; i++) {
        double *Hr = h->H + (size_t)i * n;
        const float *Gr = G + (size_t)i * n;
        if (ntok > 0)
            for (int j = i; j < n; j++) Hr[j] = keep * Hr[j] + alpha * (double)Gr[j];
        else
            for (int j = i; j < n; j++) Hr[j] *= keep;
    }
    /* mirror the upper triangle into the lower one, in 64 x 64 tiles */
#pragma omp parallel for schedule(dynamic) if (par)
    for (int i0 = 0; i0 < n; i0 += 64)
        for (int j0 = 0; j0 <= i0; j0 += 64)
            for (int i = i0; i < i0 + 64 && i < n; i++)
                for (int j = j0; j < j0 + 64 && j < i; j++) h->H[(size_t)i * n + j] = h->H[(size_t)j * n + i];
}
