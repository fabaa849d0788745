/* forward_kernels.cu: the CUDA kernels of the LLaMA forward pass and their
 * host launchers (declared, with shapes and contracts, in forward_kernels.h),
 * plus the one row-major GEMM wrapper over cuBLAS. Each kernel is a
 * reimplementation of the plain C reference of the same name in
 * harness/forward_math.c (rmsnorm_ref, rope_ref, attention_ref, swiglu_ref,
 * nll_ref, softmax_inplace): same formulas, same fp32 intrinsics (no fast
 * math), double accumulation where the reference uses double; only the order
 * of the float reductions differs. tests/gpu/test_gpu_kernels.c holds the
 * validators. Not here: the backend state, weights or any host copies
 * (kernels/forward_cuda.cu). */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "cuda_check.h"
#include "forward_kernels.h"
#include "forward_math.h"

extern "C" {
#include "util.h"
}

/* ---- math mode ------------------------------------------------------------ */

extern "C" int qh_cuda_math_parse(const char *s, QhCudaMath *out) {
    if (!s || !*s || !strcmp(s, "fp32")) *out = QH_MATH_FP32;
    else if (!strcmp(s, "tf32")) *out = QH_MATH_TF32;
    else if (!strcmp(s, "fp16")) *out = QH_MATH_FP16;
    else if (!strcmp(s, "bf16")) *out = QH_MATH_BF16;
    else return qh_error("QH_CUDA_MATH: expected fp32, tf32, fp16 or bf16, got '%s'", s);
    return 0;
}

extern "C" const char *qh_cuda_math_name(QhCudaMath m) {
    static const char *names[] = {"fp32", "tf32", "fp16", "bf16"};
    return names[m];
}

/* ---- the GEMM wrapper ------------------------------------------------------
 * cuBLAS is column-major; every tensor here is row-major. A row-major matrix
 * X (r, c) with row stride ld occupies memory exactly as the column-major
 * matrix X^T (c, r) with leading dimension ld. So instead of the row-major
 *     C (M, N) = op(A) (M, K) * op(B) (K, N)
 * we ask cuBLAS for the column-major product of the transposes,
 *     C^T (N, M) = op(B)^T (N, K) * op(A)^T (K, M),
 * i.e. swap the operands (B first), swap M and N, and keep each operand's own
 * transpose flag: B's memory seen column-major is already B^T (transB = 0 ->
 * CUBLAS_OP_N), and a transposed row-major operand becomes CUBLAS_OP_T. The
 * result lands in C's memory as row-major C with row stride ldc. This is the
 * only place that reasons about the layout; every caller thinks row-major. */
extern "C" int gemm_rm(cublasHandle_t h, QhCudaMath math, int transA, int transB, int M, int N, int K, float alpha,
                       const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB,
                       float beta, float *C, int ldc, long long strideC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
    if (K <= 0) return qh_error("gemm_rm: inner dimension K = %d must be positive", K);
    /* fp32 storage and accumulation in every mode; the tensor-core modes round
     * the GEMM inputs to tf32 / fp16 / bf16 inside cuBLAS */
    static const cublasComputeType_t cts[] = {CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32,
                                              CUBLAS_COMPUTE_32F_FAST_16F, CUBLAS_COMPUTE_32F_FAST_16BF};
    cublasComputeType_t ct = cts[math];
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1) {
        CUBLAS_CHECK(cublasGemmEx(h, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                                  CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT));
    } else {
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, strideB, A,
                                                CUDA_R_32F, lda, strideA, &beta, C, CUDA_R_32F, ldc, strideC, batch,
                                                ct, CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

extern "C" int linear_forward(cublasHandle_t h, QhCudaMath math, float *Y, const float *X, const float *W, int T,
                              int in, int out) {
    /* Y (T, out) = X (T, in) * W^T, W stored (out, in) */
    return gemm_rm(h, math, 0, 1, T, out, in, 1.0f, X, in, 0, W, in, 0, 0.0f, Y, out, 0, 1);
}

/* ---- reductions ------------------------------------------------------------ */

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide reductions for blockDim.x a multiple of 32 (<= 1024); every
 * thread gets the result. `sh` holds 32 values. */
static __device__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
static __device__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(v);
}
static __device__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -FLT_MAX;
    return warp_max(v);
}

/* Grid for an element-wise kernel over n items with grid-stride loops. */
static unsigned elementwise_grid(long n, int threads) {
    long b = (n + threads - 1) / threads;
    if (b > (1L << 20)) b = 1L << 20;
    return (unsigned)(b < 1 ? 1 : b);
}

/* ---- rmsnorm (rmsnorm_ref) ------------------------------------------------- */

/* One block per row t. out (T, D), x (T, D), w (D). */
static __global__ void rmsnorm_kernel(float *out, const float *x, const float *w, int D, float eps) {
    __shared__ float sh[32];
    long t = blockIdx.x;
    const float *xr = x + t * D;
    float *o = out + t * D;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < D; j += blockDim.x) ss += xr[j] * xr[j];
    ss = block_sum(ss, sh);
    ss = 1.0f / sqrtf(ss / D + eps);
    for (int j = threadIdx.x; j < D; j += blockDim.x) o[j] = w[j] * (ss * xr[j]);
}

extern "C" int launch_rmsnorm(float *out, const float *x, const float *w, int T, int D, float eps,
                              cudaStream_t stream) {
    if (T <= 0 || D <= 0) return 0;
    int threads = D >= 1024 ? 256 : 128;
    rmsnorm_kernel<<<T, threads, 0, stream>>>(out, x, w, D, eps);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- rotary embeddings (rope_ref) ------------------------------------------ */

/* The frequencies of the hs/2 pairs of a head, theta^(-hd/hs) for hd = 0, 2, ..,
 * computed on the host by the same libm powf expression as rope_ref (so that
 * they are bit-identical to the reference's) and passed by value. */
#define QH_ROPE_MAX_PAIRS 256 /* head size up to 512 */
typedef struct RopeFreqs {
    float f[QH_ROPE_MAX_PAIRS];
} RopeFreqs;

/* One thread per pair (t, i = 2p). q (T, D), k (T, KV). */
static __global__ void rope_kernel(float *q, float *k, int T, int D, int KV, int hs, int pos0, const RopeFreqs fr) {
    long npairs = (long)T * (D / 2);
    for (long p = blockIdx.x * (long)blockDim.x + threadIdx.x; p < npairs; p += (long)gridDim.x * blockDim.x) {
        int t = (int)(p / (D / 2));
        int i = 2 * (int)(p % (D / 2));
        int pos = pos0 + t;
        int hd = i % hs;
        float freq = fr.f[hd / 2];
        float val = pos * freq;
        float fcr = cosf(val), fci = sinf(val);
        rope_rotate_pair(q + (long)t * D + i, fcr, fci);
        if (i < KV) rope_rotate_pair(k + (long)t * KV + i, fcr, fci);
    }
}

extern "C" int launch_rope(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta,
                           cudaStream_t stream) {
    long npairs = (long)T * (D / 2);
    if (npairs <= 0) return 0;
    if (hs <= 0 || hs % 2 != 0 || hs / 2 > QH_ROPE_MAX_PAIRS)
        return qh_error("launch_rope: head size %d must be even and at most %d", hs, 2 * QH_ROPE_MAX_PAIRS);
    RopeFreqs fr;
    for (int hd = 0; hd < hs; hd += 2) fr.f[hd / 2] = 1.0f / powf(theta, hd / (float)hs);
    rope_kernel<<<elementwise_grid(npairs, 256), 256, 0, stream>>>(q, k, T, D, KV, hs, pos0, fr);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- causal softmax (softmax_inplace on the row prefix) -------------------- */

/* One warp per row r of s (rows, T); the row's position is t = r % T. */
static __global__ void causal_softmax_kernel(float *s, int rows, int T) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    long r = (long)blockIdx.x * warps + (threadIdx.x >> 5);
    if (r >= rows) return;
    int n = (int)(r % T) + 1;
    float *row = s + r * T;
    float mx = -FLT_MAX;
    for (int i = lane; i < n; i += 32) mx = fmaxf(mx, row[i]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int i = lane; i < n; i += 32) {
        float e = expf(row[i] - mx);
        row[i] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    for (int i = lane; i < n; i += 32) row[i] /= sum;
    for (int i = n + lane; i < T; i += 32) row[i] = 0.0f;
}

extern "C" int launch_causal_softmax(float *s, int rows, int T, cudaStream_t stream) {
    if (rows <= 0 || T <= 0) return 0;
    const int threads = 256, per_block = threads / 32;
    causal_softmax_kernel<<<(rows + per_block - 1) / per_block, threads, 0, stream>>>(s, rows, T);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- attention (attention_ref) --------------------------------------------- */

extern "C" int attention_head_batch(int T, int Hkv, size_t budget_bytes) {
    size_t per = (size_t)T * (size_t)T * sizeof(float);
    size_t nb = per ? budget_bytes / per : (size_t)Hkv;
    if (nb < 1) nb = 1;
    if (nb > (size_t)Hkv) nb = (size_t)Hkv;
    return (int)nb;
}

/* Query head h = kh * rep + r shares kv head kh. For a fixed r, the heads of
 * kv heads kh0 .. kh0+nb-1 sit at a constant stride (rep * hs columns of q and
 * out, hs columns of k and v), so one strided-batched GEMM covers them:
 *   S[b] (T, T)  = scale * Q_h (T, hs) K_kh^T (hs, T)     q ld D, k ld KV
 *   S[b]         = causal softmax of each row
 *   O_h (T, hs)  = S[b] (T, T) V_kh (T, hs)               v ld KV, out ld D */
extern "C" int attention_forward(cublasHandle_t h, QhCudaMath math, float *out, const float *q, const float *k,
                                 const float *v, float *scores, int T, int H, int Hkv, int hs, int head_batch,
                                 cudaStream_t stream) {
    if (T <= 0) return 0;
    if (H % Hkv != 0 || head_batch < 1)
        return qh_error("attention_forward: %d heads over %d kv heads (batch %d) is not a valid grouping", H, Hkv,
                        head_batch);
    int D = H * hs, KV = Hkv * hs, rep = H / Hkv;
    float scale = 1.0f / sqrtf((float)hs);
    long long TT = (long long)T * T;
    for (int r = 0; r < rep; r++)
        for (int kh0 = 0; kh0 < Hkv; kh0 += head_batch) {
            int nb = Hkv - kh0 < head_batch ? Hkv - kh0 : head_batch;
            const float *q0 = q + (long)(kh0 * rep + r) * hs; /* (T, hs) ld D */
            const float *k0 = k + (long)kh0 * hs;             /* (T, hs) ld KV */
            const float *v0 = v + (long)kh0 * hs;             /* (T, hs) ld KV */
            float *o0 = out + (long)(kh0 * rep + r) * hs;     /* (T, hs) ld D */
            if (gemm_rm(h, math, 0, 1, T, T, hs, scale, q0, D, (long long)rep * hs, k0, KV, hs, 0.0f, scores, T, TT,
                        nb) != 0)
                return -1;
            if (launch_causal_softmax(scores, nb * T, T, stream) != 0) return -1;
            if (gemm_rm(h, math, 0, 0, T, hs, T, 1.0f, scores, T, TT, v0, KV, hs, 0.0f, o0, D, (long long)rep * hs,
                        nb) != 0)
                return -1;
        }
    return 0;
}

/* ---- SwiGLU (swiglu_ref), residual, embedding ------------------------------ */

static __global__ void swiglu_kernel(float *hb, const float *hb2, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float x = hb[i];
        hb[i] = x * (1.0f / (1.0f + expf(-x))) * hb2[i];
    }
}

extern "C" int launch_swiglu(float *hb, const float *hb2, long n, cudaStream_t stream) {
    if (n <= 0) return 0;
    swiglu_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(hb, hb2, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

static __global__ void residual_add_kernel(float *x, const float *y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" int launch_residual_add(float *x, const float *y, long n, cudaStream_t stream) {
    if (n <= 0) return 0;
    residual_add_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* x (T, D) <- emb (V, D)[tokens[t]] */
static __global__ void embed_kernel(float *x, const float *emb, const int *tokens, int T, int D) {
    long n = (long)T * D;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long t = i / D, j = i % D;
        x[i] = emb[(long)tokens[t] * D + j];
    }
}

extern "C" int launch_embed(float *x, const float *emb, const int *tokens, int T, int D, cudaStream_t stream) {
    long n = (long)T * D;
    if (n <= 0) return 0;
    embed_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(x, emb, tokens, T, D);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- per-position NLL (nll_ref) -------------------------------------------- */

/* One block per row t. nll (T), logits (T, V), target (T). */
static __global__ void nll_kernel(double *nll, const float *logits, const int *target, int V) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    long t = blockIdx.x;
    const float *l = logits + t * V;
    float mx = -FLT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, l[i]);
    mx = block_max(mx, shf);
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += (double)expf(l[i] - mx);
    sum = block_sum_d(sum, shd);
    if (threadIdx.x == 0) nll[t] = (double)mx + log(sum) - (double)l[target[t]];
}

extern "C" int launch_nll(double *nll, const float *logits, const int *target, int T, int V, cudaStream_t stream) {
    if (T <= 0 || V <= 0) return 0;
    nll_kernel<<<T, 256, 0, stream>>>(nll, logits, target, V);
    CUDA_CHECK_LAUNCH();
    return 0;
}
