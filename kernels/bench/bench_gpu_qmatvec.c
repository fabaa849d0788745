/* bench_gpu_qmatvec.c: the CUDA quantized matrix-vector kernel (issue 18:
 * kernels/qmatvec.cu over the layout of kernels/qlayout.h, as the PackedLinear
 * that packed_quant_create(q, "cuda") makes: the input's permutation
 * included) on LLaMA-7B (4096 x 4096, 11008 x 4096, 4096 x 11008) and
 * LLaMA-65B (8192 x 8192, 22016 x 8192, 8192 x 22016) layer shapes, against
 * two baselines measured in the same run on the same card:
 *   - the device copy bandwidth (cudaMemcpy device to device of COPY_MB,
 *     bytes read + written per second); the kernel's figure is its packed
 *     bytes (codes, statistics, outliers, permutation) per second, as a
 *     fraction of it (target >= 70%);
 *   - cuBLAS fp16 GEMV on the same shape: cublasGemmEx y (m) = W (m, n) x,
 *     W and x fp16, y fp32, CUBLAS_COMPUTE_32F; the kernel's speed-up
 *     (target >= 3.5x for SpQR 3-bit and for RTN / GPTQ 4-bit g128; with 1%
 *     outliers at most 15% slower than without).
 * Formats: kernels/qlayout_synth.h (the CPU benchmark's). Each timing is the
 * median over REPS passes (cudaEvents); a pass calls the kernel once on each
 * of as many device copies of the layer as fill WORKSET_MB (several times a
 * card's L2), so the weights come from memory as in a real decode. nb = 1
 * (a token) and nb = 8 (time per input). Without a GPU it prints "skipped:
 * no GPU" and exits 0.
 * Usage: bench_gpu_qmatvec [--quick] (the 7B shapes only, 3 passes).
 * Not here: correctness (tests/gpu/test_gpu_qmatvec.c), the CPU
 * (bench/bench_qmatvec.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "util.h"

#ifdef QH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "qlayout.h"
#include "qlayout_synth.h"
#include "qmatvec_cuda.h"

#define WORKSET_MB 1024.0
#define COPY_MB 1024.0

/* seconds between two recorded events */
static double elapsed(cudaEvent_t e0, cudaEvent_t e1) {
    float ms = 0;
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    return ms * 1e-3;
}

/* GB/s of a device-to-device copy, bytes read + written; < 0 on failure */
static double copy_bandwidth(int reps, cudaEvent_t e0, cudaEvent_t e1) {
    size_t bytes = (size_t)(COPY_MB * 1048576.0);
    void *a = NULL, *b = NULL;
    double bw = -1, *t = qh_malloc(sizeof(double) * reps);
    if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&b, bytes) == cudaSuccess) {
        cudaMemset(a, 1, bytes);
        for (int r = -1; r < reps; r++) {
            cudaEventRecord(e0, 0);
            cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
            cudaEventRecord(e1, 0);
            double s = elapsed(e0, e1);
            if (r >= 0) t[r] = s;
        }
        bw = 2.0 * bytes / qh_median(t, reps) / 1e9;
    }
    cudaFree(a), cudaFree(b), free(t);
    return bw;
}

/* median seconds of one fp16 GEMV y = W x on (m, n), over copies filling WORKSET_MB; < 0 on failure */
static double time_gemv(cublasHandle_t h, int m, int n, int reps, cudaEvent_t e0, cudaEvent_t e1) {
    size_t wb = (size_t)m * n * 2;
    int copies = (int)(WORKSET_MB * 1048576.0 / wb) + 1;
    void **W = qh_calloc((size_t)copies, sizeof(void *)), *x = NULL;
    float *y = NULL;
    double med = -1, *t = qh_malloc(sizeof(double) * reps);
    const float one = 1.0f, zero = 0.0f;
    int ok = cudaMalloc(&x, (size_t)n * 2) == cudaSuccess && cudaMalloc((void **)&y, (size_t)m * 4) == cudaSuccess;
    for (int c = 0; ok && c < copies; c++) ok = cudaMalloc(&W[c], wb) == cudaSuccess && cudaMemset(W[c], 0x3c, wb) == cudaSuccess;
    if (ok) cudaMemset(x, 0x3c, (size_t)n * 2); /* fp16 0x3c3c = 1.06: finite values */
    for (int r = -1; ok && r < reps; r++) {
        cudaEventRecord(e0, 0);
        for (int c = 0; ok && c < copies; c++) /* row-major W (m, n) = column-major (n, m): y = W^T-op */
            ok = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, 1, n, &one, W[c], CUDA_R_16F, n, x, CUDA_R_16F, n, &zero,
                              y, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS;
        cudaEventRecord(e1, 0);
        double s = elapsed(e0, e1) / copies;
        if (r >= 0) t[r] = s;
    }
    if (ok) med = qh_median(t, reps);
    else qh_error("bench: the cuBLAS fp16 GEMV on %d x %d failed", m, n);
    for (int c = 0; c < copies; c++) cudaFree(W[c]);
    cudaFree(x), cudaFree(y), free(W), free(t);
    return med;
}

/* median seconds of one matmul with nb inputs over device copies of L filling WORKSET_MB; < 0 on failure */
static double time_kernel(const QLayout *L, int nb, int reps, cudaEvent_t e0, cudaEvent_t e1) {
    int copies = (int)(WORKSET_MB * 1048576.0 / (double)L->bytes) + 1;
    PackedLinear **P = qh_calloc((size_t)copies, sizeof *P);
    float *X = NULL, *Y = NULL;
    double med = -1, *t = qh_malloc(sizeof(double) * reps);
    int ok = cudaMalloc((void **)&X, sizeof(float) * (size_t)nb * L->n) == cudaSuccess &&
             cudaMalloc((void **)&Y, sizeof(float) * (size_t)nb * L->m) == cudaSuccess;
    if (ok) cudaMemset(X, 0, sizeof(float) * (size_t)nb * L->n);
    for (int c = 0; ok && c < copies; c++) ok = qmatvec_cuda_create(L, &P[c]) == 0;
    for (int r = -1; ok && r < reps; r++) {
        cudaEventRecord(e0, 0);
        for (int c = 0; ok && c < copies; c++) ok = P[c]->ops->matmul(P[c], X, nb, Y, NULL) == 0;
        cudaEventRecord(e1, 0);
        double s = elapsed(e0, e1) / copies;
        if (r >= 0) t[r] = s;
    }
    if (ok && cudaDeviceSynchronize() == cudaSuccess) med = qh_median(t, reps);
    else qh_error("bench: the quantized kernel on %d x %d, nb %d, failed", L->m, L->n, nb);
    for (int c = 0; c < copies; c++)
        if (P[c]) P[c]->ops->destroy(P[c]);
    cudaFree(X), cudaFree(Y), free(P), free(t);
    return med;
}

static int run(int quick) {
    const int reps = quick ? 3 : 7;
    const int shapes[6][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {8192, 8192}, {22016, 8192}, {8192, 22016}};
    const int nshapes = quick ? 3 : 6;
    cublasHandle_t h = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return qh_error("bench: cublasCreate failed");
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    double bw = copy_bandwidth(reps, e0, e1);
    if (bw <= 0) return qh_error("bench: the device copy failed");
    printf("bench_gpu_qmatvec: %s, medians of %d passes over %.0f MB of weights\n", prop.name, reps, WORKSET_MB);
    printf("device copy bandwidth (read + write, %.0f MB): %.1f GB/s\n\n", COPY_MB, bw);
    printf("%-13s %-36s %6s %10s %9s %8s %8s %8s %11s\n", "shape", "format", "bits/w", "fp16 us", "us nb=1", "GB/s",
           "of copy", "x fp16", "us/8 nb=8");
    int rc = 0;
    for (int s = 0; s < nshapes && rc == 0; s++) {
        int m = shapes[s][0], n = shapes[s][1];
        double tg = time_gemv(h, m, n, reps, e0, e1);
        if (tg < 0) {
            rc = -1;
            break;
        }
        printf("%dx%d cuBLAS fp16 GEMV: %.1f us, %.1f GB/s (%.0f%% of copy)\n", m, n, tg * 1e6, 2.0 * m * n / tg / 1e9,
               100.0 * 2.0 * m * n / tg / 1e9 / bw);
        for (int f = 0; f < qsynth_nformats && rc == 0; f++) {
            QuantLayer q;
            QLayout L;
            qsynth_layer(&qsynth_formats[f], m, n, 1 + (uint64_t)f, &q);
            rc = qlayout_build(&q, &L);
            quant_layer_free(&q);
            if (rc != 0) break;
            double t1 = time_kernel(&L, 1, reps, e0, e1), t8 = time_kernel(&L, 8, reps, e0, e1);
            if (t1 < 0 || t8 < 0) rc = -1;
            else {
                char shape[32];
                snprintf(shape, sizeof shape, "%dx%d", m, n);
                double gbs = L.bytes / t1 / 1e9;
                printf("%-13s %-36s %6.2f %10.1f %9.1f %8.1f %7.0f%% %8.2f %11.1f\n", shape, qsynth_formats[f].name,
                       8.0 * L.bytes / ((double)m * n), tg * 1e6, t1 * 1e6, gbs, 100.0 * gbs / bw, tg / t1,
                       t8 * 1e6 / 8);
                fflush(stdout);
            }
            qlayout_free(&L);
        }
    }
    cudaEventDestroy(e0), cudaEventDestroy(e1), cublasDestroy(h);
    return rc;
}
#endif

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 2 || (argc == 2 && !quick)) {
        fprintf(stderr, "usage: bench_gpu_qmatvec [--quick]\n");
        return 2;
    }
    if (!qh_cuda_available()) {
        printf("skipped: no GPU\n");
        return 0;
    }
#ifdef QH_HAVE_CUDA
    return run(quick) == 0 ? 0 : 1;
#else
    return 0;
#endif
}
