/* bench_common.h: helpers shared by the benchmarks: the sgemm rate measured
 * in the same run (the baseline every timing is reported against) and a
 * best-of-N timer. Header-only; benchmarks are separate programs. */
#ifndef QH_BENCH_COMMON_H
#define QH_BENCH_COMMON_H

#include <cblas.h>
#include <stdlib.h>

#include "util.h"

/* GFLOP/s of C (M, N) = A (M, K) B^T (B (N, K)), the shape of our linear
 * layers, best of `reps` after one warm-up. */
static inline double bench_sgemm_gflops(int M, int N, int K, int reps) {
    float *A = qh_malloc(sizeof(float) * (size_t)M * K), *B = qh_malloc(sizeof(float) * (size_t)N * K),
          *C = qh_malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = qh_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        double dt = qh_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * M * N * (double)K / best / 1e9;
}

#endif
