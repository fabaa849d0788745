/* bench_gpu_forward.c: throughput of the CUDA backend's window_nll on a
 * LLaMA-7B-shaped model (dim 4096, hidden 11008, 32 heads, 32 kv heads, vocab
 * 32000) at seqlen 2048, in the GEMM modes of QH_CUDA_MATH (fp32, tf32, bf16,
 * fp16: in the last two the linear weights and inputs are stored in 16 bits),
 * each next to the cuBLAS 4096x4096x4096 cublasGemmEx rate of the same
 * precision measured in the same run (fp32 / tf32: fp32 operands with
 * CUBLAS_COMPUTE_32F / _FAST_TF32; bf16 / fp16: 16-bit A and B, fp32 C,
 * CUBLAS_COMPUTE_32F, as the model's linear layers), and the model FLOP
 * utilisation against that rate. The model has few layers (default 4) so that
 * it is created fast: the weights are random, one host copy per matrix shared
 * by every layer (host memory ~1.5 GB; each layer still gets its own device
 * copy). The window is timed with 1 and with N layers; the difference gives
 * the time per layer, which is extrapolated to the 32 layers of LLaMA-7B.
 * Model FLOPs are forward_flops() (forward.h). Prints a table, one row per
 * mode; without a GPU it prints "skipped: no GPU" and exits 0.
 * Usage: bench_gpu_forward [--quick] [--layers N] [--seqlen T] [--reps R] [--target-layers L]
 *                          [--modes fp32,tf32,bf16,fp16]
 *        (--quick: 2 layers, 3 windows; --modes: which modes, in that order)
 * Not here: correctness (tests/gpu/), CPU timings (bench/). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "model.h"
#include "util.h"

#ifdef QH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "forward_kernels.h"

int forward_cuda_create(const Model *m, int max_T, Forward **out);

#define MAX_MODES 4

typedef struct BenchOpts {
    QhCudaMath modes[MAX_MODES]; /* the modes measured, in order */
    int n_modes;
    int layers;        /* layers of the model actually built */
    int seqlen;        /* T */
    int reps;          /* timed windows per measurement (median) */
    int target_layers; /* extrapolate to this many layers */
} BenchOpts;

/* The random weights: one buffer per sub-layer shape, shared by all layers. */
typedef struct BenchWeights {
    float *lin[LIN_COUNT]; /* (out, in) each */
    float *norm;           /* (D) */
    float *emb;            /* (V, D), also the classifier */
} BenchWeights;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* p (n) ~ U(-a, a), a counter-based generator so that the loop parallelises. */
static void fill_uniform(float *p, long n, float a, uint64_t seed) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        uint64_t r = mix64(seed * 0x9E3779B97F4A7C15ull + (uint64_t)i);
        p[i] = a * (float)((double)(r >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

/* Model m of config c whose every layer points at the buffers of bw. */
static int bench_model(Model *m, BenchWeights *bw, const ModelConfig *c) {
    memset(m, 0, sizeof *m);
    memset(bw, 0, sizeof *bw);
    m->cfg = *c;
    if (model_config_validate(c, "bench model") != 0) return -1;
    long D = c->dim, V = c->vocab_size;
    for (int k = 0; k < LIN_COUNT; k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        bw->lin[k] = qh_malloc(sizeof(float) * (size_t)o * i);
        fill_uniform(bw->lin[k], (long)o * i, sqrtf(3.0f / i), 100 + k); /* variance 1/in */
    }
    bw->norm = qh_malloc(sizeof(float) * D);
    for (long j = 0; j < D; j++) bw->norm[j] = 1.0f;
    bw->emb = qh_malloc(sizeof(float) * (size_t)(V * D));
    fill_uniform(bw->emb, V * D, sqrtf(3.0f / D), 7);
    m->w.tok_emb = bw->emb;
    m->w.wcls = bw->emb;
    m->w.rms_final = bw->norm;
    m->w.blocks = qh_calloc((size_t)c->n_layers, sizeof(BlockWeights));
    for (int l = 0; l < c->n_layers; l++) {
        m->w.blocks[l].rms_att = bw->norm;
        m->w.blocks[l].rms_ffn = bw->norm;
        for (int k = 0; k < LIN_COUNT; k++) m->w.blocks[l].lin[k] = bw->lin[k];
    }
    m->path = "synthetic LLaMA-7B shape";
    return 0;
}

static void bench_model_free(Model *m, BenchWeights *bw) {
    for (int k = 0; k < LIN_COUNT; k++) free(bw->lin[k]);
    free(bw->norm);
    free(bw->emb);
    free(m->w.blocks);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of one window_nll of tokens (T) with the first `layers`
 * layers of m, in math mode `math`; mean NLL of the last window in *mean_nll. */
static int time_windows(const Model *m, int layers, const char *math, const int *tokens, const BenchOpts *o,
                        double *median_s, double *mean_nll) {
    Model view = *m; /* shares the weights; fewer layers */
    view.cfg.n_layers = layers;
    setenv("QH_CUDA_MATH", math, 1);
    Forward *f = NULL;
    double t0 = qh_now();
    if (forward_cuda_create(&view, o->seqlen, &f) != 0) return -1;
    double t_create = qh_now() - t0;
    double *nll = qh_malloc(sizeof(double) * (size_t)o->seqlen);
    double *times = qh_malloc(sizeof(double) * (size_t)o->reps);
    int rc = f->ops->window_nll(f, tokens, o->seqlen, nll); /* warm-up: cuBLAS heuristics, module load */
    for (int r = 0; rc == 0 && r < o->reps; r++) {
        double s = qh_now();
        rc = f->ops->window_nll(f, tokens, o->seqlen, nll); /* synchronous: copies the nll back */
        times[r] = qh_now() - s;
    }
    if (rc == 0) {
        qsort(times, (size_t)o->reps, sizeof(double), cmp_double);
        *median_s = times[o->reps / 2];
        double sum = 0;
        for (int t = 0; t < o->seqlen - 1; t++) sum += nll[t];
        *mean_nll = sum / (o->seqlen - 1);
        fprintf(stderr, "  %s %2d layers: created in %.2f s, window median %.4f s (min %.4f, max %.4f), mean nll %.4f\n",
                math, layers, t_create, *median_s, times[0], times[o->reps - 1], *mean_nll);
    }
    free(nll);
    free(times);
    forward_destroy(&f);
    return rc;
}

/* TFLOP/s of cublasGemmEx C (n, n) = A (n, n) B (n, n) in the precision of
 * `math`: A and B in its operand type (converted on the device from fp32 for
 * the 16-bit modes), C fp32, compute type as linear_forward uses it. */
static int gemm_rate(int n, QhCudaMath math, double *tflops) {
    float *dF = NULL, *dC = NULL;
    void *dA = NULL, *dB = NULL;
    size_t nn = (size_t)n * n, fbytes = sizeof(float) * nn, obytes = qh_cuda_math_operand_size(math) * nn;
    cudaDataType_t ot = qh_cuda_math_operand_type(math);
    float *h = qh_malloc(fbytes);
    fill_uniform(h, (long)nn, 1.0f, 99);
    cublasHandle_t handle = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    const float one = 1.0f, zero = 0.0f;
    cublasComputeType_t ct = math == QH_MATH_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const int warm = 3, iters = 10;
    float ms = 0;
    int rc = -1;
    if (cudaMalloc((void **)&dF, fbytes) != cudaSuccess || cudaMalloc(&dA, obytes) != cudaSuccess ||
        cudaMalloc(&dB, obytes) != cudaSuccess || cudaMalloc((void **)&dC, fbytes) != cudaSuccess) {
        qh_error("bench: cudaMalloc of the GEMM operands failed");
        goto done;
    }
    if (cudaMemcpy(dF, h, fbytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        qh_error("bench: uploading the GEMM operands failed");
        goto done;
    }
    if (ot == CUDA_R_32F) {
        if (cudaMemcpy(dA, dF, fbytes, cudaMemcpyDeviceToDevice) != cudaSuccess ||
            cudaMemcpy(dB, dF, fbytes, cudaMemcpyDeviceToDevice) != cudaSuccess) {
            qh_error("bench: copying the GEMM operands failed");
            goto done;
        }
    } else if (launch_f32_to_16(dA, dF, (long)nn, ot, 0) != 0 || launch_f32_to_16(dB, dF, (long)nn, ot, 0) != 0) {
        goto done;
    }
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        qh_error("bench: cublasCreate failed");
        goto done;
    }
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < warm + iters; i++) {
        if (i == warm) cudaEventRecord(e0, 0);
        if (cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, dA, ot, n, dB, ot, n, &zero, dC, CUDA_R_32F,
                         n, ct, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
            qh_error("bench: cublasGemmEx (%s) failed", qh_cuda_math_name(math));
            goto done;
        }
    }
    cudaEventRecord(e1, 0);
    if (cudaEventSynchronize(e1) != cudaSuccess) {
        qh_error("bench: GEMM timing failed");
        goto done;
    }
    cudaEventElapsedTime(&ms, e0, e1);
    *tflops = 2.0 * n * (double)n * n * iters / (ms * 1e-3) / 1e12;
    rc = 0;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (handle) cublasDestroy(handle);
    cudaFree(dF), cudaFree(dA), cudaFree(dB), cudaFree(dC);
    free(h);
    return rc;
}

/* "fp32,bf16" -> o->modes; -1 with a message on an unknown or repeated mode. */
static int parse_modes(const char *list, BenchOpts *o) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    o->n_modes = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        QhCudaMath m;
        if (qh_cuda_math_parse(tok, &m) != 0) return -1;
        for (int i = 0; i < o->n_modes; i++)
            if (o->modes[i] == m) return qh_error("bench_gpu_forward: --modes lists %s twice", tok);
        o->modes[o->n_modes++] = m; /* at most 4 distinct modes exist */
    }
    if (o->n_modes == 0) return qh_error("bench_gpu_forward: --modes needs at least one of fp32,tf32,bf16,fp16");
    return 0;
}

static int parse_opts(int argc, char **argv, BenchOpts *o) {
    *o = (BenchOpts){.modes = {QH_MATH_FP32, QH_MATH_TF32, QH_MATH_BF16, QH_MATH_FP16}, .n_modes = 4, .layers = 4,
                     .seqlen = 2048, .reps = 5, .target_layers = 32};
    for (int i = 1; i < argc; i++) {
        long v;
        if (!strcmp(argv[i], "--quick")) { /* run_bench.sh's QH_BENCH_ARGS=--quick */
            o->layers = 2;
            o->reps = 3;
            continue;
        }
        if (!strcmp(argv[i], "--modes")) {
            if (i + 1 >= argc) return qh_error("bench_gpu_forward: --modes needs a list (fp32,tf32,bf16,fp16)");
            if (parse_modes(argv[++i], o) != 0) return -1;
            continue;
        }
        int *dst = !strcmp(argv[i], "--layers")          ? &o->layers
                   : !strcmp(argv[i], "--seqlen")        ? &o->seqlen
                   : !strcmp(argv[i], "--reps")          ? &o->reps
                   : !strcmp(argv[i], "--target-layers") ? &o->target_layers
                                                         : NULL;
        if (!dst)
            return qh_error("bench_gpu_forward: unknown option '%s' (--quick --layers --seqlen --reps --target-layers "
                            "--modes)",
                            argv[i]);
        if (i + 1 >= argc || qh_parse_long(argv[i + 1], &v) != 0 || v < 1 || v > 1000000)
            return qh_error("bench_gpu_forward: %s needs a positive integer", argv[i]);
        *dst = (int)v;
        i++;
    }
    if (o->seqlen < 2) return qh_error("bench_gpu_forward: --seqlen must be at least 2");
    return 0;
}

static int run(const BenchOpts *o) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return qh_error("bench: cudaGetDeviceProperties failed");
    ModelConfig c = {.dim = 4096, .hidden_dim = 11008, .n_layers = o->layers, .n_heads = 32, .n_kv_heads = 32,
                     .vocab_size = 32000, .seq_len = o->seqlen, .shared_classifier = 1, .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f};
    Model m;
    BenchWeights bw;
    double t0 = qh_now();
    if (bench_model(&m, &bw, &c) != 0) return -1;
    fprintf(stderr, "bench_gpu_forward: random weights in %.2f s\n", qh_now() - t0);
    int *tokens = qh_malloc(sizeof(int) * (size_t)o->seqlen);
    for (int t = 0; t < o->seqlen; t++) tokens[t] = (int)(mix64(1000 + (uint64_t)t) % (uint64_t)c.vocab_size);

    int nm = o->n_modes;
    double gemm[MAX_MODES] = {0}, t1[MAX_MODES] = {0}, tL[MAX_MODES] = {0}, nll1[MAX_MODES] = {0},
           nllL[MAX_MODES] = {0};
    int rc = 0;
    for (int mi = 0; rc == 0 && mi < nm; mi++) {
        const char *name = qh_cuda_math_name(o->modes[mi]);
        rc = gemm_rate(4096, o->modes[mi], &gemm[mi]);
        if (rc == 0) rc = time_windows(&m, 1, name, tokens, o, &t1[mi], &nll1[mi]);
        if (rc == 0 && o->layers > 1) rc = time_windows(&m, o->layers, name, tokens, o, &tL[mi], &nllL[mi]);
    }
    unsetenv("QH_CUDA_MATH");
    if (rc == 0) {
        ModelConfig ct = c, cL = c;
        ct.n_layers = o->target_layers;
        int L = o->layers;
        printf("bench_gpu_forward: %s (%d SMs), LLaMA-7B shape (dim %d, hidden %d, %d heads, %d kv heads, vocab %d), "
               "seqlen %d, random weights\n",
               prop.name, prop.multiProcessorCount, c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, c.vocab_size,
               o->seqlen);
        printf("timed with 1 and %d layers (median of %d windows each); per layer = difference / %d; "
               "extrapolated to %d layers; gemm = cublasGemmEx 4096^3 in the mode's precision (16-bit modes: 16-bit "
               "A, B, fp32 C and accumulation)\n",
               L, o->reps, L > 1 ? L - 1 : 1, o->target_layers);
        printf("%-5s %12s %10s %10s %12s %12s %10s %12s %11s\n", "mode", "gemm TFLOP/s", "s/layer", "s/head", "s/window",
               "tokens/s", "TFLOP/s", "MFU vs gemm", "mean nll");
        for (int mi = 0; mi < nm; mi++) {
            double per_layer = L > 1 ? (tL[mi] - t1[mi]) / (L - 1) : t1[mi];
            double head = L > 1 ? t1[mi] - per_layer : 0.0;
            double tw = head + per_layer * o->target_layers;
            double fl = forward_flops(&ct, o->seqlen);
            printf("%-5s %12.1f %10.5f %10.5f %12.4f %12.0f %10.1f %11.1f%% %11.4f\n", qh_cuda_math_name(o->modes[mi]),
                   gemm[mi], per_layer, head, tw, o->seqlen / tw, fl / tw / 1e12, 100.0 * fl / tw / 1e12 / gemm[mi],
                   L > 1 ? nllL[mi] : nll1[mi]);
        }
        if (L > 1) {
            cL.n_layers = L;
            for (int mi = 0; mi < nm; mi++)
                printf("measured %-4s %2d layers: %.4f s/window, %.0f tokens/s, %.1f TFLOP/s (%.1f%% of its gemm)\n",
                       qh_cuda_math_name(o->modes[mi]), L, tL[mi], o->seqlen / tL[mi],
                       forward_flops(&cL, o->seqlen) / tL[mi] / 1e12,
                       100.0 * forward_flops(&cL, o->seqlen) / tL[mi] / 1e12 / gemm[mi]);
        }
    }
    free(tokens);
    bench_model_free(&m, &bw);
    return rc;
}
#endif /* QH_HAVE_CUDA */

int main(int argc, char **argv) {
    if (!qh_cuda_available()) {
        printf("skipped: no GPU\n");
        return 0;
    }
#ifdef QH_HAVE_CUDA
    BenchOpts o;
    if (parse_opts(argc, argv, &o) != 0) return 2;
    return run(&o) == 0 ? 0 : 1;
#else
    return 0;
#endif
}
