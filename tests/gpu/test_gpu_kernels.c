/* test_gpu_kernels.c: every CUDA kernel of kernels/forward_kernels.cu checked
 * against its plain C reference in harness/forward/forward_math.h (rmsnorm,
 * rope, causal softmax, attention, swiglu, bias add, nll; Falcon's layernorm,
 * gelu, fused-QKV split (on the maps of both Falcon layouts) and parallel
 * residual; embed and residual add
 * against their one-line definitions; the row-major GEMM wrapper and the fp32
 * linear layer against a naive double-accumulated product), on fresh random
 * inputs with odd sizes (QH_TEST_SEED picks another draw), with a mixed
 * absolute/relative tolerance. The fp32 -> fp16 / bf16 conversion is checked
 * bit for bit against f32_to_16_ref (specials, ties, subnormals, overflow and
 * 2^24 scattered bit patterns), and the 16-bit linear layer against a double
 * product of the 16-bit-rounded inputs. Without a GPU (or in a build without
 * nvcc) everything is reported skipped and the exit status is 0. Not here: the
 * whole backend against the CPU backend (test_gpu_forward.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "check.h"
#include "forward.h"
#include "forward_math.h"

#ifdef QH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "forward_kernels.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [-a, a) */
static float unif(float a) { return (float)(((next_u64() >> 11) * (1.0 / 9007199254740992.0)) * 2.0 - 1.0) * a; }
static float *rand_vec(long n, float a) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (long i = 0; i < n; i++) p[i] = unif(a);
    return p;
}

/* Device copy of n bytes of host memory (NULL host: uninitialised). Aborts the
 * test on failure: nothing after it would mean anything. */
static void *dev_alloc_copy(const void *host, size_t n) {
    void *d = NULL;
    if (cudaMalloc(&d, n ? n : 1) != cudaSuccess) {
        fprintf(stderr, "FAIL cudaMalloc(%zu)\n", n);
        exit(1);
    }
    if (host && cudaMemcpy(d, host, n, cudaMemcpyHostToDevice) != cudaSuccess) {
        fprintf(stderr, "FAIL cudaMemcpy to device (%zu bytes)\n", n);
        exit(1);
    }
    return d;
}
static void dev_to_host(void *host, const void *dev, size_t n) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(host, dev, n, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "device to host copy: %s", cudaGetErrorString(e));
}

#include "expect_close.h"

/* ---- kernels ---------------------------------------------------------------- */

static void test_rmsnorm(int T, int D) {
    float *x = rand_vec((long)T * D, 2.0f), *w = rand_vec(D, 1.5f), *want = malloc(sizeof(float) * T * D),
          *got = malloc(sizeof(float) * T * D);
    for (int j = 0; j < D; j++) x[j] = 0.0f; /* row 0 all zero: eps alone keeps it finite */
    rmsnorm_ref(want, x, w, T, D, 1e-5f);
    float *dx = dev_alloc_copy(x, sizeof(float) * T * D), *dw = dev_alloc_copy(w, sizeof(float) * D),
          *dout = dev_alloc_copy(NULL, sizeof(float) * T * D);
    CHECK(launch_rmsnorm(dout, dx, dw, T, D, 1e-5f, 0) == 0, "launch_rmsnorm T=%d D=%d", T, D);
    dev_to_host(got, dout, sizeof(float) * T * D);
    char what[64];
    snprintf(what, sizeof what, "rmsnorm T=%d D=%d", T, D);
    expect_close_f(what, got, want, (long)T * D, 1e-5, 1e-6);
    cudaFree(dx), cudaFree(dw), cudaFree(dout);
    free(x), free(w), free(want), free(got);
}

/* layernorm_ref against launch_layernorm: row 0 constant (variance 0: eps
 * alone keeps it finite, the output is the bias), row 1 offset by 1000 (the
 * two-pass variance must not cancel), the rest random. */
static void test_layernorm(int T, int D) {
    long n = (long)T * D;
    float *x = rand_vec(n, 2.0f), *w = rand_vec(D, 1.5f), *b = rand_vec(D, 1.0f), *want = malloc(sizeof(float) * n),
          *got = malloc(sizeof(float) * n);
    for (int j = 0; j < D; j++) x[j] = 0.375f;
    if (T > 1)
        for (int j = 0; j < D; j++) x[D + j] += 1000.0f;
    layernorm_ref(want, x, w, b, T, D, 1e-5f);
    float *dx = dev_alloc_copy(x, sizeof(float) * n), *dw = dev_alloc_copy(w, sizeof(float) * D),
          *db = dev_alloc_copy(b, sizeof(float) * D), *dout = dev_alloc_copy(NULL, sizeof(float) * n);
    CHECK(launch_layernorm(dout, dx, dw, db, T, D, 1e-5f, 0) == 0, "launch_layernorm T=%d D=%d", T, D);
    dev_to_host(got, dout, sizeof(float) * n);
    char what[64];
    snprintf(what, sizeof what, "layernorm T=%d D=%d", T, D);
    /* mean and variance in double on both sides: only the fp32 output steps
     * may round differently (a contracted multiply-add), ~1 ulp of O(1) values */
    expect_close_f(what, got, want, n, 1e-5, 1e-6);
    snprintf(what, sizeof what, "layernorm T=%d D=%d: a constant row gives the bias", T, D);
    expect_close_f(what, got, b, D, 0.0, 0.0);
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dout);
    free(x), free(w), free(b), free(want), free(got);
}

/* gelu_ref against launch_gelu, over [-12, 12] (erf saturates at both ends)
 * and a few fixed points of the definition. */
static void test_gelu(long n) {
    float *h = rand_vec(n, 12.0f), *got = malloc(sizeof(float) * n);
    h[0] = 0.0f, h[1] = 1.0f, h[2] = -1.0f, h[3] = 30.0f, h[4] = -30.0f;
    float *dh = dev_alloc_copy(h, sizeof(float) * n);
    gelu_ref(h, n);
    CHECK(launch_gelu(dh, n, 0) == 0, "launch_gelu");
    dev_to_host(got, dh, sizeof(float) * n);
    /* erff: CUDA's is within 2 ulp of the correctly rounded value, glibc's 1;
     * where erf is near -1 (h << 0) 1 + erf cancels, so the difference is
     * absolute, up to |h| / 2 * 2 ulp(1) ~ 7e-7 at |h| = 12 (the tanh
     * approximation of GELU is 1e-3 away) */
    expect_close_f("gelu", got, h, n, 4e-7, 1e-6);
    CHECK(got[0] == 0.0f && got[3] == 30.0f && got[4] == 0.0f, "gelu(0) = 0, gelu(30) = 30, gelu(-30) = 0: %g %g %g",
          got[0], got[3], got[4]);
    CHECK(fabs(got[1] - 0.8413447461f) < 1e-6 && fabs(got[2] + 0.1586552539f) < 1e-6,
          "gelu(1) = Phi(1) = 0.841345, gelu(-1) = -0.158655: %.9g %.9g", got[1], got[2]);
    cudaFree(dh);
    free(h), free(got);
}

/* launch_qkv_split against qkv_split_ref on the map of a Falcon config with H
 * query and Hkv kv heads of size hs (Hkv = 1: Falcon-7B's multi-query layout),
 * exact (a gather). The map is a permutation of 0..QKV-1 (every fused column
 * goes somewhere once). */
static void test_qkv_split(int T, int H, int Hkv, int hs) {
    ModelConfig c = {.arch = ARCH_ID_FALCON_NDA, .dim = H * hs, .n_heads = H, .n_kv_heads = Hkv};
    int D = c.dim, KV = Hkv * hs, QKV = D + 2 * KV;
    int *map = malloc(sizeof(int) * QKV), *seen = calloc((size_t)QKV, sizeof(int));
    arch_qkv_split_map(&c, map);
    int perm = 1;
    for (int r = 0; r < QKV; r++) {
        if (map[r] < 0 || map[r] >= QKV || seen[map[r]]) perm = 0;
        else seen[map[r]] = 1;
    }
    CHECK(perm, "qkv split map H=%d Hkv=%d hs=%d is a permutation", H, Hkv, hs);
    float *qkv = rand_vec((long)T * QKV, 1.0f), *q = malloc(sizeof(float) * T * D), *k = malloc(sizeof(float) * T * KV),
          *v = malloc(sizeof(float) * T * KV), *g = malloc(sizeof(float) * T * D);
    qkv_split_ref(q, k, v, qkv, map, T, D, KV);
    float *dqkv = dev_alloc_copy(qkv, sizeof(float) * T * QKV), *dq = dev_alloc_copy(NULL, sizeof(float) * T * D),
          *dk = dev_alloc_copy(NULL, sizeof(float) * T * KV), *dv = dev_alloc_copy(NULL, sizeof(float) * T * KV);
    int *dmap = dev_alloc_copy(map, sizeof(int) * QKV);
    CHECK(launch_qkv_split(dq, dk, dv, dqkv, dmap, T, D, KV, 0) == 0, "launch_qkv_split");
    char what[96];
    dev_to_host(g, dq, sizeof(float) * T * D);
    snprintf(what, sizeof what, "qkv split q T=%d H=%d Hkv=%d hs=%d (exact)", T, H, Hkv, hs);
    expect_close_f(what, g, q, (long)T * D, 0.0, 0.0);
    dev_to_host(g, dk, sizeof(float) * T * KV);
    snprintf(what, sizeof what, "qkv split k T=%d H=%d Hkv=%d hs=%d (exact)", T, H, Hkv, hs);
    expect_close_f(what, g, k, (long)T * KV, 0.0, 0.0);
    dev_to_host(g, dv, sizeof(float) * T * KV);
    snprintf(what, sizeof what, "qkv split v T=%d H=%d Hkv=%d hs=%d (exact)", T, H, Hkv, hs);
    expect_close_f(what, g, v, (long)T * KV, 0.0, 0.0);
    cudaFree(dqkv), cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dmap);
    free(map), free(seen), free(qkv), free(q), free(k), free(v), free(g);
}

/* launch_parallel_residual against parallel_residual_ref: the same two fp32 adds, exact */
static void test_parallel_residual(long n) {
    float *x = rand_vec(n, 3.0f), *a = rand_vec(n, 3.0f), *m = rand_vec(n, 3.0f), *got = malloc(sizeof(float) * n);
    float *dx = dev_alloc_copy(x, sizeof(float) * n), *da = dev_alloc_copy(a, sizeof(float) * n),
          *dm = dev_alloc_copy(m, sizeof(float) * n);
    parallel_residual_ref(x, a, m, n);
    CHECK(launch_parallel_residual(dx, da, dm, n, 0) == 0, "launch_parallel_residual");
    dev_to_host(got, dx, sizeof(float) * n);
    expect_close_f("parallel residual (exact)", got, x, n, 0.0, 0.0);
    cudaFree(dx), cudaFree(da), cudaFree(dm);
    free(x), free(a), free(m), free(got);
}

static void test_rope(int T, int H, int Hkv, int hs, int pos0) {
    int D = H * hs, KV = Hkv * hs;
    float *q = rand_vec((long)T * D, 1.0f), *k = rand_vec((long)T * KV, 1.0f);
    float *dq = dev_alloc_copy(q, sizeof(float) * T * D), *dk = dev_alloc_copy(k, sizeof(float) * T * KV);
    float *gq = malloc(sizeof(float) * T * D), *gk = malloc(sizeof(float) * T * KV);
    rope_ref(q, k, T, D, KV, hs, pos0, 10000.0f);
    CHECK(launch_rope(dq, dk, T, D, KV, hs, pos0, 10000.0f, 0) == 0, "launch_rope");
    dev_to_host(gq, dq, sizeof(float) * T * D);
    dev_to_host(gk, dk, sizeof(float) * T * KV);
    char what[96];
    /* sin/cos of the identical fp32 angle: 1-2 ulp apart between libm and CUDA */
    snprintf(what, sizeof what, "rope q T=%d H=%d Hkv=%d hs=%d pos0=%d", T, H, Hkv, hs, pos0);
    expect_close_f(what, gq, q, (long)T * D, 1e-5, 1e-6);
    snprintf(what, sizeof what, "rope k T=%d H=%d Hkv=%d hs=%d pos0=%d", T, H, Hkv, hs, pos0);
    expect_close_f(what, gk, k, (long)T * KV, 1e-5, 1e-6);
    cudaFree(dq), cudaFree(dk);
    free(q), free(k), free(gq), free(gk);
}

/* nb stacked blocks of nr rows (positions r0 .. r0+nr-1) of ncols columns;
 * whole matrices when nr = ncols, r0 = 0. */
static void test_causal_softmax_rows(int nb, int nr, int r0, int ncols) {
    long rows = (long)nb * nr, n = rows * ncols;
    float *s = rand_vec(n, 6.0f), *got = malloc(sizeof(float) * n);
    float *ds = dev_alloc_copy(s, sizeof(float) * n);
    for (long r = 0; r < rows; r++) {
        int t = r0 + (int)(r % nr);
        softmax_inplace(s + r * ncols, t + 1);
        memset(s + r * ncols + t + 1, 0, sizeof(float) * (size_t)(ncols - t - 1));
    }
    CHECK(launch_causal_softmax(ds, rows, nr, r0, ncols, 0) == 0, "launch_causal_softmax");
    dev_to_host(got, ds, sizeof(float) * n);
    char what[96];
    snprintf(what, sizeof what, "causal softmax nb=%d rows %d..%d of %d columns", nb, r0, r0 + nr - 1, ncols);
    expect_close_f(what, got, s, n, 1e-4, 1e-7);
    cudaFree(ds);
    free(s), free(got);
}
static void test_causal_softmax(int nb, int T) { test_causal_softmax_rows(nb, T, 0, T); }

static void test_attention_rb(cublasHandle_t h, QhCudaMath math, int T, int H, int Hkv, int hs, int head_batch,
                              int row_blocks) {
    int D = H * hs, KV = Hkv * hs;
    float *q = rand_vec((long)T * D, 1.5f), *k = rand_vec((long)T * KV, 1.5f), *v = rand_vec((long)T * KV, 1.0f);
    float *want = malloc(sizeof(float) * T * D), *got = malloc(sizeof(float) * T * D);
    attention_ref(want, q, k, v, T, H, Hkv, hs);
    float *dq = dev_alloc_copy(q, sizeof(float) * T * D), *dk = dev_alloc_copy(k, sizeof(float) * T * KV),
          *dv = dev_alloc_copy(v, sizeof(float) * T * KV), *dout = dev_alloc_copy(NULL, sizeof(float) * T * D),
          *ds = dev_alloc_copy(NULL, sizeof(float) * head_batch * T * T);
    CHECK(attention_forward(h, math, dout, dq, dk, dv, ds, T, H, Hkv, hs, head_batch, row_blocks, 0) == 0,
          "attention_forward");
    dev_to_host(got, dout, sizeof(float) * T * D);
    char what[96];
    snprintf(what, sizeof what, "attention %s T=%d H=%d Hkv=%d hs=%d batch=%d row blocks %d", qh_cuda_math_name(math),
             T, H, Hkv, hs, head_batch, row_blocks);
    /* a layout or indexing bug is off by O(0.1); rounding by ~1e-7 (fp32) or ~1e-3 (tf32) */
    if (math == QH_MATH_FP32) expect_close_f(what, got, want, (long)T * D, 1e-4, 1e-5);
    else expect_close_f(what, got, want, (long)T * D, 2e-2, 1e-2);
    cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dout), cudaFree(ds);
    free(q), free(k), free(v), free(want), free(got);
}
/* every case with whole score matrices and with ATTENTION_ROW_BLOCKS row blocks */
static void test_attention(cublasHandle_t h, QhCudaMath math, int T, int H, int Hkv, int hs, int head_batch) {
    test_attention_rb(h, math, T, H, Hkv, hs, head_batch, 1);
    test_attention_rb(h, math, T, H, Hkv, hs, head_batch, ATTENTION_ROW_BLOCKS);
}

static void test_swiglu(int T, int F) {
    long n = (long)T * F;
    float *a = rand_vec(n, 8.0f), *b = rand_vec(n, 2.0f), *got = malloc(sizeof(float) * n);
    float *da = dev_alloc_copy(a, sizeof(float) * n), *db = dev_alloc_copy(b, sizeof(float) * n);
    swiglu_ref(a, b, T, F);
    CHECK(launch_swiglu(da, db, n, 0) == 0, "launch_swiglu");
    dev_to_host(got, da, sizeof(float) * n);
    expect_close_f("swiglu", got, a, n, 2e-6, 1e-7);
    cudaFree(da), cudaFree(db);
    free(a), free(b), free(got);
}

static void test_residual_and_embed(int T, int D, int V) {
    long n = (long)T * D;
    float *x = rand_vec(n, 3.0f), *y = rand_vec(n, 3.0f), *got = malloc(sizeof(float) * n),
          *want = malloc(sizeof(float) * n);
    float *dx = dev_alloc_copy(x, sizeof(float) * n), *dy = dev_alloc_copy(y, sizeof(float) * n);
    for (long i = 0; i < n; i++) want[i] = x[i] + y[i];
    CHECK(launch_residual_add(dx, dy, n, 0) == 0, "launch_residual_add");
    dev_to_host(got, dx, sizeof(float) * n);
    expect_close_f("residual add (exact)", got, want, n, 0.0, 0.0);

    float *emb = rand_vec((long)V * D, 1.0f);
    int *tok = malloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) tok[t] = t == 0 ? 0 : t == 1 ? V - 1 : (int)(next_u64() % (uint64_t)V);
    for (int t = 0; t < T; t++) memcpy(want + (long)t * D, emb + (long)tok[t] * D, sizeof(float) * D);
    float *demb = dev_alloc_copy(emb, sizeof(float) * V * D);
    int *dtok = dev_alloc_copy(tok, sizeof(int) * T);
    CHECK(launch_embed(dx, demb, dtok, T, D, 0) == 0, "launch_embed");
    dev_to_host(got, dx, sizeof(float) * n);
    expect_close_f("embed (exact)", got, want, n, 0.0, 0.0);
    cudaFree(dx), cudaFree(dy), cudaFree(demb), cudaFree(dtok);
    free(x), free(y), free(got), free(want), free(emb), free(tok);
}

static void test_nll(int T, int V) {
    long n = (long)T * V;
    float *l = rand_vec(n, 12.0f);
    int *tgt = malloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) tgt[t] = t == 0 ? 0 : t == 1 ? V - 1 : (int)(next_u64() % (uint64_t)V);
    l[5] = 40.0f; /* one dominant logit in row 0 */
    double *want = malloc(sizeof(double) * T), *got = malloc(sizeof(double) * T);
    nll_ref(want, l, tgt, T, V);
    float *dl = dev_alloc_copy(l, sizeof(float) * n);
    int *dt = dev_alloc_copy(tgt, sizeof(int) * T);
    double *dn = dev_alloc_copy(NULL, sizeof(double) * T);
    CHECK(launch_nll(dn, dl, dt, T, V, 0) == 0, "launch_nll");
    dev_to_host(got, dn, sizeof(double) * T);
    expect_close_d("nll", got, want, T, 1e-6, 1e-6);
    cudaFree(dl), cudaFree(dt), cudaFree(dn);
    free(l), free(tgt), free(want), free(got);
}

/* Naive reference of gemm_rm, double accumulation. */
static void gemm_naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int p = 0; p < K; p++) {
                double a = ta ? A[(long)p * lda + i] : A[(long)i * lda + p];
                double b = tb ? B[(long)j * ldb + p] : B[(long)p * ldb + j];
                s += a * b;
            }
            C[(long)i * ldc + j] = (float)(alpha * s + beta * C[(long)i * ldc + j]);
        }
}

static void test_gemm(cublasHandle_t h, int ta, int tb, int batch) {
    int M = 37, N = 29, K = 45;
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; /* padded rows */
    long sa = (long)(ta ? K : M) * lda, sb = (long)(tb ? N : K) * ldb, sc = (long)M * ldc;
    float *A = rand_vec(sa * batch, 1.0f), *B = rand_vec(sb * batch, 1.0f), *C = rand_vec(sc * batch, 1.0f);
    float *got = malloc(sizeof(float) * sc * batch);
    float *dA = dev_alloc_copy(A, sizeof(float) * sa * batch), *dB = dev_alloc_copy(B, sizeof(float) * sb * batch),
          *dC = dev_alloc_copy(C, sizeof(float) * sc * batch);
    for (int b = 0; b < batch; b++)
        gemm_naive(ta, tb, M, N, K, 0.7f, A + b * sa, lda, B + b * sb, ldb, 0.3f, C + b * sc, ldc);
    CHECK(gemm_rm(h, QH_MATH_FP32, ta, tb, M, N, K, 0.7f, dA, lda, sa, dB, ldb, sb, 0.3f, dC, ldc, sc, batch) == 0,
          "gemm_rm");
    dev_to_host(got, dC, sizeof(float) * sc * batch);
    char what[64];
    snprintf(what, sizeof what, "gemm_rm transA=%d transB=%d batch=%d", ta, tb, batch);
    expect_close_f(what, got, C, sc * batch, 1e-5, 1e-5);
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
    free(A), free(B), free(C), free(got);
}

static void test_linear(cublasHandle_t h, int T, int in, int out) {
    float *X = rand_vec((long)T * in, 1.0f), *W = rand_vec((long)out * in, 1.0f), *want = calloc((size_t)T * out, 4),
          *got = malloc(sizeof(float) * T * out);
    gemm_naive(0, 1, T, out, in, 1.0f, X, in, W, in, 0.0f, want, out);
    float *dX = dev_alloc_copy(X, sizeof(float) * T * in), *dW = dev_alloc_copy(W, sizeof(float) * out * in),
          *dY = dev_alloc_copy(NULL, sizeof(float) * T * out);
    CHECK(linear_forward(h, QH_MATH_FP32, dY, dX, dW, T, in, out) == 0, "linear_forward");
    dev_to_host(got, dY, sizeof(float) * T * out);
    expect_close_f("linear_forward", got, want, (long)T * out, 1e-5, 1e-5);
    cudaFree(dX), cudaFree(dW), cudaFree(dY);
    free(X), free(W), free(want), free(got);
}

static void test_add_bias(int T, int n) {
    long tn = (long)T * n;
    float *y = rand_vec(tn, 3.0f), *b = rand_vec(n, 1.0f), *got = malloc(sizeof(float) * tn);
    float *dy = dev_alloc_copy(y, sizeof(float) * tn), *db = dev_alloc_copy(b, sizeof(float) * n);
    add_bias_ref(y, b, T, n);
    CHECK(launch_add_bias(dy, db, T, n, 0) == 0, "launch_add_bias");
    dev_to_host(got, dy, sizeof(float) * tn);
    char what[64];
    snprintf(what, sizeof what, "add_bias T=%d n=%d (exact)", T, n);
    expect_close_f(what, got, y, tn, 0.0, 0.0); /* one fp32 add per element on both sides */
    cudaFree(dy), cudaFree(db);
    free(y), free(b), free(got);
}

/* launch_sqdiff against sqdiff_ref: double sums in another order, so close to
 * double rounding (n * 2^-53 relative), not bit for bit. */
static void test_sqdiff(long n) {
    float *a = rand_vec(n, 2.0f), *b = rand_vec(n, 1.5f);
    float *da = dev_alloc_copy(a, sizeof(float) * n), *db = dev_alloc_copy(b, sizeof(float) * n);
    double zero[2] = {0.0, 0.0}, got[2], num = 0.0, den = 0.0;
    double *dout = dev_alloc_copy(zero, sizeof zero);
    sqdiff_ref(a, b, n, &num, &den);
    CHECK(launch_sqdiff(da, db, n, dout, 0) == 0, "launch_sqdiff");
    dev_to_host(got, dout, sizeof got);
    char what[64];
    snprintf(what, sizeof what, "sqdiff n=%ld num", n);
    CHECK_CLOSE(got[0], num, 1e-12, 0.0, what);
    snprintf(what, sizeof what, "sqdiff n=%ld den", n);
    CHECK_CLOSE(got[1], den, 1e-12, 0.0, what);
    cudaFree(da), cudaFree(db), cudaFree(dout);
    free(a), free(b);
}

/* ---- 16-bit conversion and the 16-bit linear layer -------------------------- */

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The value of a 16-bit pattern of `type` (CUDA_R_16F or CUDA_R_16BF). */
static float value_16(uint16_t h, cudaDataType_t type) {
    if (type == CUDA_R_16BF) return f32_from_bits((uint32_t)h << 16);
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(1024 + m), e - 25);
    return h & 0x8000 ? -v : v;
}

/* launch_f32_to_16 against f32_to_16_ref, bit for bit. */
static void test_f32_to_16(cudaDataType_t type) {
    const char *name = type == CUDA_R_16BF ? "bf16" : "fp16";
    static const uint32_t special[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, /* +-0, +-1 */
        0x7f800000u, 0xff800000u,                           /* +-inf */
        0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fbfffffu, 0x7fffffffu, /* NaNs, quiet and signalling */
        0x7f7fffffu, 0xff7fffffu, 0x00800000u, 0x80800000u, /* +-FLT_MAX, +-FLT_MIN */
        0x00000001u, 0x80000001u, 0x007fffffu, 0x00400000u, 0x00008000u, 0x00018000u, /* fp32 subnormals */
        0x477fe000u, 0x477fefffu, 0x477ff000u, 0xc77ff000u, 0x47800000u, 0x477ff001u, /* fp16 max, ties to inf */
        0x38800000u, 0x387fffffu, 0x387fe000u, 0x38000000u, /* fp16 min normal, largest subnormals */
        0x33800000u, 0x33000000u, 0x33000001u, 0xb3000001u, 0x32ffffffu, 0x33c00000u, 0x33a00000u, /* 2^-24, 2^-25 */
        0x3f801000u, 0x3f803000u, 0x3f801001u, 0x3f800fffu, /* fp16 ties at 1 + 2^-11 (down), 1 + 3 2^-11 (up) */
        0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, /* bf16 ties at 1 + 2^-8, 1 + 3 2^-8 */
        0x7f7f8000u, 0x7f7f7fffu, 0x7f7fffffu,              /* bf16 rounding to inf */
    };
    int ns = (int)(sizeof special / sizeof special[0]);
    long nr = 1L << 24, n = ns + nr;
    float *src = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < ns; i++) src[i] = f32_from_bits(special[i]);
    for (long i = 0; i < nr; i++) {
        uint32_t u = (uint32_t)next_u64();
        switch (i & 3) { /* a quarter anywhere, the rest at the rounding boundaries */
        case 1: u = (u & 0xffff0000u) | 0x8000u | ((u >> 7) & 1u); break;  /* bf16 tie or just above */
        case 2: { /* fp16 tie or just above, exponents 2^-15 .. 2^16 (subnormal top to overflow) */
            uint32_t e = 112u + (u >> 3) % 32u;
            u = (u & 0x807fe000u) | (e << 23) | 0x1000u | ((u >> 9) & 1u);
            break;
        }
        case 3: u = (u & 0x8fffffffu) | 0x30000000u; break;                /* fp16's range, subnormals too */
        default: break;
        }
        src[ns + i] = f32_from_bits(u);
    }
    uint16_t *want = malloc(sizeof(uint16_t) * (size_t)n), *got = malloc(sizeof(uint16_t) * (size_t)n);
    f32_to_16_ref(want, src, n, type);
    float *dsrc = dev_alloc_copy(src, sizeof(float) * (size_t)n);
    uint16_t *ddst = dev_alloc_copy(NULL, sizeof(uint16_t) * (size_t)n);
    CHECK(launch_f32_to_16(ddst, dsrc, n, type, 0) == 0, "launch_f32_to_16 %s", name);
    dev_to_host(got, ddst, sizeof(uint16_t) * (size_t)n);
    long bad = 0, first = -1;
    for (long i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (first < 0) first = i;
            bad++;
        }
    uint32_t first_bits = 0;
    if (first >= 0) memcpy(&first_bits, &src[first], sizeof first_bits);
    CHECK(bad == 0, "f32_to_16 %s: %ld of %ld differ, first [%ld] %08x -> got %04x want %04x", name, bad, n, first,
          first_bits, first >= 0 ? got[first] : 0u, first >= 0 ? want[first] : 0u);
    /* a few fixed points of the reference itself */
    uint16_t r[6];
    float pts[6] = {1.0f, -2.0f, 65504.0f, 65520.0f, 5.9604645e-8f, NAN};
    f32_to_16_ref(r, pts, 6, type);
    if (type == CUDA_R_16F)
        CHECK(r[0] == 0x3c00 && r[1] == 0xc000 && r[2] == 0x7bff && r[3] == 0x7c00 && r[4] == 0x0001 && r[5] == 0x7fff,
              "f32_to_16_ref fp16 fixed points %04x %04x %04x %04x %04x %04x", r[0], r[1], r[2], r[3], r[4], r[5]);
    else
        CHECK(r[0] == 0x3f80 && r[1] == 0xc000 && r[2] == 0x4780 && r[3] == 0x4780 && r[4] == 0x3380 && r[5] == 0x7fff,
              "f32_to_16_ref bf16 fixed points %04x %04x %04x %04x %04x %04x", r[0], r[1], r[2], r[3], r[4], r[5]);
    CHECK(launch_f32_to_16(ddst, dsrc, 1, CUDA_R_32F, 0) == -1, "launch_f32_to_16 refuses CUDA_R_32F");
    cudaFree(dsrc), cudaFree(ddst);
    free(src), free(want), free(got);
}

/* linear_forward in a 16-bit mode: X and W converted on the device, the result
 * against a double product of the same 16-bit values (the ones
 * f32_to_16_ref gives). The GEMM's products of 16-bit values are exact in
 * fp32, so the only error left is fp32 accumulation: |err| <= 1e-4 |x_t| |w_o|
 * (a wrong layout or an operand left in fp32 is off by O(|x||w|/sqrt(in))).
 * The 16-bit rounding itself is far larger than that for bf16 (~2^-9 per
 * input): checked to be visible against the unrounded product, so that a GEMM
 * that read fp32 would fail. */
static void test_linear_16(cublasHandle_t h, QhCudaMath math, int T, int in, int out) {
    cudaDataType_t type = qh_cuda_math_operand_type(math);
    long nx = (long)T * in, nw = (long)out * in;
    float *X = rand_vec(nx, 1.0f), *W = rand_vec(nw, 1.0f), *got = malloc(sizeof(float) * T * out);
    uint16_t *X16 = malloc(sizeof(uint16_t) * nx), *W16 = malloc(sizeof(uint16_t) * nw);
    f32_to_16_ref(X16, X, nx, type);
    f32_to_16_ref(W16, W, nw, type);
    float *dX = dev_alloc_copy(X, sizeof(float) * nx), *dW = dev_alloc_copy(W, sizeof(float) * nw),
          *dY = dev_alloc_copy(NULL, sizeof(float) * T * out);
    void *dX16 = dev_alloc_copy(NULL, sizeof(uint16_t) * nx), *dW16 = dev_alloc_copy(NULL, sizeof(uint16_t) * nw);
    CHECK(qh_cuda_math_operand_size(math) == 2, "%s operands are 2 bytes", qh_cuda_math_name(math));
    CHECK(launch_f32_to_16(dX16, dX, nx, type, 0) == 0 && launch_f32_to_16(dW16, dW, nw, type, 0) == 0,
          "launch_f32_to_16 of the operands");
    CHECK(linear_forward(h, math, dY, dX16, dW16, T, in, out) == 0, "linear_forward %s", qh_cuda_math_name(math));
    dev_to_host(got, dY, sizeof(float) * T * out);
    double worst = 0, worst_unrounded = 0;
    long bad = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0, s32 = 0, nx2 = 0, nw2 = 0;
            for (int i = 0; i < in; i++) {
                double a = value_16(X16[(long)t * in + i], type), b = value_16(W16[(long)o * in + i], type);
                s += a * b;
                s32 += (double)X[(long)t * in + i] * W[(long)o * in + i];
                nx2 += a * a, nw2 += b * b;
            }
            double scale = sqrt(nx2 * nw2), g = got[(long)t * out + o];
            double e = fabs(g - s) / scale, eu = fabs(g - s32) / scale;
            if (!(e <= 1e-4)) bad++;
            if (e > worst || e != e) worst = e;
            if (eu > worst_unrounded) worst_unrounded = eu;
        }
    CHECK(bad == 0, "linear_forward %s T=%d in=%d out=%d: %ld of %d off by more than 1e-4 |x||w| (worst %.3g)",
          qh_cuda_math_name(math), T, in, out, bad, T * out, worst);
    if (math == QH_MATH_BF16 && T * out >= 100)
        CHECK(worst_unrounded > 4 * worst, "linear_forward bf16: the rounding is visible (error %.3g against the fp32 "
              "inputs, %.3g against the bf16 ones)", worst_unrounded, worst);
    printf("  linear_forward %s T=%d in=%d out=%d: max err / |x||w| %.2e (rounded inputs), %.2e (fp32 inputs)\n",
           qh_cuda_math_name(math), T, in, out, worst, worst_unrounded);
    cudaFree(dX), cudaFree(dW), cudaFree(dY), cudaFree(dX16), cudaFree(dW16);
    free(X), free(W), free(got), free(X16), free(W16);
}

static void test_math_parse(void) {
    QhCudaMath m = QH_MATH_TF32;
    CHECK(qh_cuda_math_parse(NULL, &m) == 0 && m == QH_MATH_FP32, "unset -> fp32");
    CHECK(qh_cuda_math_parse("tf32", &m) == 0 && m == QH_MATH_TF32, "tf32");
    CHECK(qh_cuda_math_parse("fp32", &m) == 0 && m == QH_MATH_FP32, "fp32");
    CHECK(qh_cuda_math_parse("fp16", &m) == 0 && m == QH_MATH_FP16, "fp16");
    CHECK(qh_cuda_math_parse("bf16", &m) == 0 && m == QH_MATH_BF16, "bf16");
    CHECK(qh_cuda_math_parse("fp8", &m) == -1, "fp8 is rejected");
    CHECK(qh_cuda_math_operand_type(QH_MATH_FP32) == CUDA_R_32F &&
              qh_cuda_math_operand_type(QH_MATH_TF32) == CUDA_R_32F &&
              qh_cuda_math_operand_type(QH_MATH_FP16) == CUDA_R_16F &&
              qh_cuda_math_operand_type(QH_MATH_BF16) == CUDA_R_16BF,
          "operand types");
    CHECK(qh_cuda_math_operand_size(QH_MATH_FP32) == 4 && qh_cuda_math_operand_size(QH_MATH_BF16) == 2,
          "operand sizes");
    CHECK(attention_head_batch(2048, 32, (size_t)1 << 30) == 32, "head batch fits");
    CHECK(attention_head_batch(4096, 32, (size_t)1 << 30) == 16, "head batch halves");
    CHECK(attention_head_batch(65536, 8, 1) == 1, "head batch at least 1");
}

static void run_all(void) {
    const char *seed = getenv("QH_TEST_SEED"); /* default: a fixed seed, so that failures reproduce */
    if (seed && *seed) rng_state = strtoull(seed, NULL, 0);
    printf("test_gpu_kernels: random inputs from seed %llu (QH_TEST_SEED)\n", (unsigned long long)rng_state);
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        CHECK(0, "cublasCreate failed");
        return;
    }
    test_math_parse();
    test_rmsnorm(37, 72);
    test_rmsnorm(5, 1031);
    test_rmsnorm(1, 4096);
    test_rope(37, 6, 2, 12, 0);
    test_rope(37, 6, 3, 12, 0);
    test_rope(37, 6, 6, 12, 0);
    test_rope(19, 4, 2, 18, 1000); /* large angles */
    test_rope(3, 2, 1, 128, 2045);
    test_causal_softmax(3, 37);
    test_causal_softmax(1, 1);
    test_causal_softmax(2, 300);
    test_causal_softmax_rows(3, 5, 32, 37);   /* the last row block of a window of 37 */
    test_causal_softmax_rows(2, 37, 263, 300);
    /* every register-resident width (128 threads: 1, 2, 4, 8, 16 columns a
     * thread; 1024 threads: 4, 8 and 16), then the looping kernel beyond */
    test_causal_softmax(2, 200);
    test_causal_softmax_rows(2, 9, 991, 1000);
    test_causal_softmax_rows(1, 5, 2042, 2047);
    test_causal_softmax_rows(2, 7, 2041, 2048);
    test_causal_softmax_rows(1, 3, 2046, 2049);
    test_causal_softmax_rows(2, 5, 4091, 4096);
    test_causal_softmax_rows(1, 3, 5000, 5003);
    test_causal_softmax_rows(1, 2, 16382, 16384);
    test_causal_softmax_rows(1, 2, 16383, 16385);
    CHECK(launch_causal_softmax(NULL, 4, 5, 33, 37, 0) == -1, "rows beyond the columns are refused");
    for (int T = 7; T <= 9; T++) test_attention(h, QH_MATH_FP32, T, 4, 2, 8, 2); /* fewer, as many, more rows than blocks */
    test_attention(h, QH_MATH_FP32, 301, 4, 2, 16, 1); /* uneven row blocks */
    test_attention_rb(h, QH_MATH_FP32, 37, 6, 2, 12, 2, 37); /* one row per block */
    CHECK(attention_forward(h, QH_MATH_FP32, NULL, NULL, NULL, NULL, NULL, 37, 6, 2, 12, 2, 0, 0) == -1,
          "0 row blocks refused");
    for (int hb = 1; hb <= 3; hb++) test_attention(h, QH_MATH_FP32, 37, 6, 3, 12, hb);
    test_attention(h, QH_MATH_FP32, 37, 6, 2, 12, 2);
    test_attention(h, QH_MATH_FP32, 37, 6, 2, 12, 1);
    test_attention(h, QH_MATH_FP32, 37, 6, 6, 12, 4);
    test_attention(h, QH_MATH_FP32, 1, 6, 2, 12, 2);
    test_attention(h, QH_MATH_FP32, 129, 4, 1, 32, 1);
    test_attention(h, QH_MATH_TF32, 37, 6, 2, 12, 2);
    test_attention(h, QH_MATH_BF16, 37, 6, 2, 12, 2); /* tf32 in the 16-bit modes */
    test_swiglu(37, 173);
    test_layernorm(37, 72);
    test_layernorm(5, 1031);
    test_layernorm(2, 8192);
    test_gelu(37 * 173);
    test_gelu(5);
    test_qkv_split(37, 6, 1, 12);  /* Falcon-7B: multi-query */
    test_qkv_split(37, 6, 2, 12);  /* Falcon-40B: grouped */
    test_qkv_split(5, 4, 4, 8);    /* one query head per group */
    test_qkv_split(3, 8, 2, 128);
    test_parallel_residual(37 * 72);
    test_parallel_residual(3000001);
    test_add_bias(37, 173);
    test_add_bias(1, 72);
    test_add_bias(5, 1031);
    test_residual_and_embed(37, 72, 517);
    test_sqdiff(1);
    test_sqdiff(37 * 173);
    test_sqdiff(3000001); /* more blocks than the grid: grid-stride loop and atomics */
    test_nll(37, 517);
    test_nll(3, 32000);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            test_gemm(h, ta, tb, 1);
            test_gemm(h, ta, tb, 3);
        }
    test_linear(h, 37, 72, 173);
    test_linear(h, 1, 173, 72);
    test_linear(h, 2, 72, 173);
    test_f32_to_16(CUDA_R_16F);
    test_f32_to_16(CUDA_R_16BF);
    for (int m = QH_MATH_FP16; m <= QH_MATH_BF16; m++) {
        test_linear_16(h, (QhCudaMath)m, 37, 72, 173);
        test_linear_16(h, (QhCudaMath)m, 1, 173, 72);
        test_linear_16(h, (QhCudaMath)m, 5, 1031, 517);
        test_linear_16(h, (QhCudaMath)m, 64, 256, 128);
    }
    cublasDestroy(h);
    cudaError_t e = cudaDeviceSynchronize();
    CHECK(e == cudaSuccess, "device error at the end: %s", cudaGetErrorString(e));
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): GPU kernel tests not run");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    run_all();
#endif
    return test_summary();
}
