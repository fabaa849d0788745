/* quant_hessian.cu: the device Hessian accumulator of quant_cuda.h, SPEC 1.3
 * with hessian_add_window's semantics and precision (quant/hessian.c): a
 * running mean over windows, H = keep * H + alpha * X^T X with keep =
 * k / (k + 1) and alpha = 2 / (k + 1) after k windows, so that after N
 * windows H = (2/N) sum x x^T. Each window's X^T X is one cublasSsyrk in
 * fp32 (the CPU: cblas_ssyrk), the running mean is fp64 (a small kernel of
 * quant_kernels.cu). Layout: H is row-major (n, n) symmetric; the row-major
 * upper triangle the CPU keeps is the column-major lower triangle cuBLAS
 * sees, so Ssyrk runs with CUBLAS_FILL_MODE_LOWER on X read column-major as
 * X^T (n, ntok); hessian_cuda_download mirrors it into a full matrix.
 * Not here: the quantization itself (quant_cuda.cu), the CPU accumulator. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "util.h"
}
#include "cuda_check.h"
#include "quant_cuda.h"

static int hess_init(HessianAccCuda *h, int n) {
    cublasHandle_t blas = NULL;
    CUBLAS_CHECK(cublasCreate(&blas));
    h->blas = blas;
    CUBLAS_CHECK(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH)); /* fp32, no TF32 */
    CUDA_CHECK(cudaMalloc((void **)&h->dH, (size_t)n * n * sizeof(double)));
    CUDA_CHECK(cudaMemset(h->dH, 0, (size_t)n * n * sizeof(double)));
    CUDA_CHECK(cudaMalloc((void **)&h->dG, (size_t)n * n * sizeof(float)));
    return 0;
}

extern "C" int hessian_cuda_init(HessianAccCuda *h, int n) {
    memset(h, 0, sizeof *h);
    if (n < 1) return qh_error("hessian_cuda_init: n = %d; expected n >= 1", n);
    h->n = n;
    if (hess_init(h, n) != 0) {
        hessian_cuda_free(h);
        return -1;
    }
    return 0;
}

extern "C" void hessian_cuda_free(HessianAccCuda *h) {
    if (h->dH) cudaFree(h->dH);
    if (h->dG) cudaFree(h->dG);
    if (h->dX) cudaFree(h->dX);
    if (h->blas) cublasDestroy((cublasHandle_t)h->blas);
    memset(h, 0, sizeof *h);
}

extern "C" int hessian_add_window_cuda_dev(HessianAccCuda *h, const float *dX, int ntok) {
    const int n = h->n;
    cublasHandle_t blas = (cublasHandle_t)h->blas;
    const double k = (double)h->nwindows;
    const double keep = k / (k + 1.0), alpha = 2.0 / (k + 1.0);
    if (ntok > 0) {
        /* row-major X (ntok, n) is column-major X^T (n, ntok), ld n: G = X^T X, lower column-major */
        const float one = 1.0f, zero = 0.0f;
        CUBLAS_CHECK(cublasSsyrk(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, ntok, &one, dX, n, &zero, h->dG, n));
    }
    /* the fold runs on the legacy default stream, as the handle does */
    if (qk_hessian_fold(h->dH, ntok > 0 ? h->dG : NULL, n, keep, alpha, 0) != 0) return -1;
    CUDA_CHECK(cudaDeviceSynchronize());
    h->nwindows++;
    return 0;
}

extern "C" int hessian_add_window_cuda(HessianAccCuda *h, const float *X, int ntok) {
    const int n = h->n;
    if (ntok > h->cap) { /* grow the staging buffer */
        if (h->dX) CUDA_CHECK(cudaFree(h->dX));
        h->dX = NULL, h->cap = 0;
        CUDA_CHECK(cudaMalloc((void **)&h->dX, (size_t)ntok * n * sizeof(float)));
        h->cap = ntok;
    }
    if (ntok > 0) CUDA_CHECK(cudaMemcpy(h->dX, X, (size_t)ntok * n * sizeof(float), cudaMemcpyHostToDevice));
    return hessian_add_window_cuda_dev(h, h->dX, ntok);
}

extern "C" int hessian_cuda_download(const HessianAccCuda *h, double *H) {
    const int n = h->n;
    CUDA_CHECK(cudaMemcpy(H, h->dH, (size_t)n * n * sizeof(double), cudaMemcpyDeviceToHost));
    /* the maintained triangle is row-major upper (j >= i); mirror it */
#pragma omp parallel for schedule(dynamic)
    for (int i0 = 0; i0 < n; i0 += 64)
        for (int j0 = 0; j0 <= i0; j0 += 64)
            for (int i = i0; i < i0 + 64 && i < n; i++)
                for (int jj = j0; jj < j0 + 64 && jj < i; jj++) H[(size_t)i * n + jj] = H[(size_t)jj * n + i];
    return 0;
}
