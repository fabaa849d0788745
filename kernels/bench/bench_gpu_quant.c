/* bench_gpu_quant.c: per-phase seconds of the CUDA quantization path
 * (kernels/quant_cuda.h) for GPTQ (4-bit, groups of 128) and SpQR (the
 * paper's near-lossless setting: 4-bit, groups of 16, 3-bit statistics in
 * groups of 16 rows, tau 0.2, percdamp 1) on two LLaMA-7B shapes, 4096 x 4096
 * (q/k/v/o) and 11008 x 4096 (gate/up), with H accumulated on the device
 * (hessian_add_window_cuda) from 65,536 random correlated tokens (32 windows
 * of 2048; AR(1) across the input features, per-feature scales). Phases:
 * upload + permutation, factorization (H' on the host + cuSOLVER), outlier
 * scale, the sweep (fused kernels and lazy-update GEMMs, and the estimated
 * share of the kernels spent fitting statistics / leave-one-out), download,
 * packing on the host, decoding W_deq. The cuBLAS sgemm rate (fp32, no TF32)
 * measured in the same run is printed first, for the 4096^3 shape and for
 * the shape of one lazy update (m x 3968 x 128). The CPU reference time is
 * not measured (minutes per layer). Without a GPU it prints "skipped: no GPU"
 * and exits 0.
 * Usage: bench_gpu_quant [--quick] [--tokens N] [--reps R]
 *        (--quick: 8192 tokens, the 4096 x 4096 layer only)
 * Not here: correctness (tests/gpu/test_gpu_quant.c), CPU timings
 * (bench/bench_quant_cpu.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "quant.h"
#include "util.h"

#ifdef QH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "quant_cuda.h"

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unit_open(uint64_t r) { return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0); } /* (0, 1) */
/* a standard normal from two counters (Box-Muller) */
static double gauss(uint64_t seed, uint64_t i) {
    double u = unit_open(mix64(seed * 0x9E3779B97F4A7C15ull + 2 * i));
    double v = unit_open(mix64(seed * 0x9E3779B97F4A7C15ull + 2 * i + 1));
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* X (T, n): token t of window w is an AR(1) chain over the features (rho 0.9)
 * times the feature's scale colscale (n) */
static void fill_window(float *X, int T, int n, const float *colscale, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        double prev = gauss(seed, (uint64_t)t * (n + 1));
        for (int j = 0; j < n; j++) {
            prev = 0.9 * prev + 0.4358898943540674 * gauss(seed, (uint64_t)t * (n + 1) + 1 + j);
            X[(size_t)t * n + j] = (float)(prev * colscale[j]);
        }
    }
}

/* W (m, n) normal(0, 0.02), 0.5% of the weights x 8 */
static void fill_weights(float *W, int m, int n, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)m * n; i++) {
        double x = 0.02 * gauss(seed, (uint64_t)i);
        if (unit_open(mix64(seed ^ (0xABCDull + (uint64_t)i))) < 0.005) x *= 8;
        W[i] = (float)x;
    }
}

/* best-of-reps GFLOP/s of C (M, N) = A (M, K) B (K, N), column-major, fp32 */
static double sgemm_gflops(int M, int N, int K, int reps) {
    float *A = NULL, *B = NULL, *C = NULL;
    cublasHandle_t h = NULL;
    double best = 1e30;
    int ok = cudaMalloc((void **)&A, sizeof(float) * (size_t)M * K) == cudaSuccess &&
             cudaMalloc((void **)&B, sizeof(float) * (size_t)K * N) == cudaSuccess &&
             cudaMalloc((void **)&C, sizeof(float) * (size_t)M * N) == cudaSuccess &&
             cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
    if (ok) {
        cudaEvent_t e0, e1;
        cublasSetMathMode(h, CUBLAS_DEFAULT_MATH); /* fp32, no TF32: what the sweep uses */
        cudaMemset(A, 0, sizeof(float) * (size_t)M * K);
        cudaMemset(B, 0, sizeof(float) * (size_t)K * N);
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        const float one = 1.0f, zero = 0.0f;
        for (int r = 0; r <= reps; r++) { /* the first is a warm-up */
            cudaEventRecord(e0, 0);
            ok &= cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &one, A, M, B, K, &zero, C, M) ==
                  CUBLAS_STATUS_SUCCESS;
            cudaEventRecord(e1, 0);
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            if (r > 0 && ms * 1e-3 < best) best = ms * 1e-3;
        }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    if (h) cublasDestroy(h);
    cudaFree(A), cudaFree(B), cudaFree(C);
    return ok && best < 1e30 ? 2.0 * M * N * (double)K / best / 1e9 : NAN;
}

static void print_row(const char *layer, const char *method, const QuantCudaTimes *t, const QuantLayer *q,
                      double total) {
    printf("%-10s %-5s %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %7.3f %8.3f  %6.0f  %.4f%%\n",
           layer, method, t->upload, t->factor, t->outlier_scale, t->sweep, t->sweep_kernels, t->fit_est,
           t->sweep_gemm, t->pack_download, t->pack_host, t->dequant, total - (t->upload + t->factor +
           t->outlier_scale + t->sweep + t->pack_download + t->pack_host + t->dequant), total,
           t->sweep_gemm > 0 ? t->gemm_flops / t->sweep_gemm / 1e9 : 0.0,
           100.0 * (double)q->n_outliers / ((double)q->m * q->n));
}

int main(int argc, char **argv) {
    int quick = 0, reps = 1;
    long tokens = 65536;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1, tokens = 8192;
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            if (qh_parse_long(argv[++i], &tokens) != 0 || tokens < 1) {
                fprintf(stderr, "bench_gpu_quant: --tokens '%s'; expected a positive integer\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            long r;
            if (qh_parse_long(argv[++i], &r) != 0 || r < 1 || r > 100) {
                fprintf(stderr, "bench_gpu_quant: --reps '%s'; expected 1..100\n", argv[i]);
                return 2;
            }
            reps = (int)r;
        } else {
            fprintf(stderr, "usage: bench_gpu_quant [--quick] [--tokens N] [--reps R]\n");
            return 2;
        }
    }
    if (!qh_cuda_available()) {
        printf("skipped: no GPU\n");
        return 0;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    printf("cuBLAS sgemm fp32 4096x4096x4096: %.0f GFLOP/s; 4096x3968x128 (a lazy update): %.0f GFLOP/s; "
           "11008x3968x128: %.0f GFLOP/s\n",
           sgemm_gflops(4096, 4096, 4096, 5), sgemm_gflops(4096, 3968, 128, 20), sgemm_gflops(11008, 3968, 128, 20));

    const int n = 4096, T = 2048;
    const int nlayers = quick ? 1 : 2;
    const int ms[2] = {4096, 11008};
    const char *names[2] = {"4096x4096", "11008x4096"};
    QuantCuda *ctx = NULL;
    if (quant_cuda_create(&ctx) != 0) return 1;

    /* warm-up: context, handles, kernels on a small layer */
    {
        float *W = qh_malloc(sizeof(float) * 256 * 256);
        double *H = qh_calloc((size_t)256 * 256, sizeof(double));
        fill_weights(W, 256, 256, 7);
        for (int i = 0; i < 256; i++) H[i * 256 + i] = 1;
        QuantParams p;
        quant_params_default(&p, "spqr");
        QuantLayer q;
        if (quantize_layer_cuda_ctx(ctx, "spqr", W, 256, 256, H, &p, &q, NULL, NULL) == 0) quant_layer_free(&q);
        free(W), free(H);
    }

    /* H from `tokens` tokens, on the device */
    float *colscale = qh_malloc(sizeof(float) * n);
    for (int j = 0; j < n; j++) colscale[j] = (float)(0.5 + 2.5 * unit_open(mix64(0x5EEDull + (uint64_t)j)));
    float *X = qh_malloc(sizeof(float) * (size_t)T * n);
    HessianAccCuda hc;
    if (hessian_cuda_init(&hc, n) != 0) return 1;
    double th = 0, tgen = 0;
    for (long t0 = 0, w = 0; t0 < tokens; t0 += T, w++) {
        int nt = tokens - t0 < T ? (int)(tokens - t0) : T;
        double a = qh_now();
        fill_window(X, nt, n, colscale, 1000 + (uint64_t)w);
        double b = qh_now();
        if (hessian_add_window_cuda(&hc, X, nt) != 0) return 1;
        th += qh_now() - b;
        tgen += b - a;
    }
    double *H = qh_malloc(sizeof(double) * (size_t)n * n);
    if (hessian_cuda_download(&hc, H) != 0) return 1;
    printf("hessian: %ld tokens in %ld windows, n %d: %.3f s on the device (upload + ssyrk + fp64 mean, %.0f GFLOP/s "
           "counting n^2 per token), %.3f s generating X on the host\n",
           tokens, hc.nwindows, n, th, (double)tokens * n * n / th / 1e9, tgen);
    hessian_cuda_free(&hc);
    free(X), free(colscale);

    printf("\nseconds per phase (best total of %d); kernels / fit / gemm are parts of sweep; fit = estimated share of "
           "the fused kernels spent fitting statistics (leave-one-out included)\n",
           reps);
    printf("%-10s %-5s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s %8s  %6s  %s\n", "layer", "meth", "upload", "factor",
           "oscale", "sweep", "kernels", "fit", "gemm", "download", "pack", "dequant", "other", "total", "GF/s",
           "outliers");
    for (int L = 0; L < nlayers; L++) {
        const int m = ms[L];
        float *W = qh_malloc(sizeof(float) * (size_t)m * n), *deq = qh_malloc(sizeof(float) * (size_t)m * n);
        fill_weights(W, m, n, 42 + (uint64_t)L);
        for (int k = 0; k < 2; k++) {
            const char *method = k == 0 ? "gptq" : "spqr";
            QuantParams p;
            quant_params_default(&p, method);
            if (k == 0) p.groupsize = 128;
            QuantCudaTimes best;
            QuantLayer qbest;
            memset(&best, 0, sizeof best);
            double tbest = 1e30;
            memset(&qbest, 0, sizeof qbest);
            for (int r = 0; r < reps; r++) {
                QuantCudaTimes t;
                QuantLayer q;
                double a = qh_now();
                if (quantize_layer_cuda_ctx(ctx, method, W, m, n, H, &p, &q, deq, &t) != 0) return 1;
                double total = qh_now() - a;
                if (total < tbest) {
                    tbest = total, best = t;
                    quant_layer_free(&qbest);
                    qbest = q;
                } else {
                    quant_layer_free(&q);
                }
            }
            print_row(names[L], method, &best, &qbest, tbest);
            fflush(stdout);
            quant_layer_free(&qbest);
        }
        free(W), free(deq);
    }
    free(H);
    quant_cuda_destroy(&ctx);
    return 0;
}

#else /* built without nvcc */
int main(void) {
    printf("skipped: no GPU\n");
    return 0;
}
#endif
