/* forward_kernels.cu: the CUDA kernels of the forward pass of every family
 * (LLaMA; Falcon's LayerNorm, GELU, fused-QKV split and parallel residual)
 * and their host launchers (declared, with shapes and contracts, in
 * forward_kernels.h), plus the row-major GEMM wrappers over cuBLAS (fp32
 * tensors for attention, fp32 or fp16 / bf16 operands for the linear layers).
 * Each kernel is a reimplementation of the plain C reference of the same name
 * in harness/forward/forward_math.c (rmsnorm_ref, rope_ref, attention_ref,
 * swiglu_ref, add_bias_ref, nll_ref, softmax_inplace, layernorm_ref,
 * gelu_ref, qkv_split_ref, parallel_residual_ref): same formulas (the
 * per-element steps are forward_math.h's QH_HD functions, shared with the
 * references), same fp32 intrinsics (no fast math), double accumulation where
 * the reference uses double; only the order of the reductions differs. The fp32 -> 16-bit
 * conversion's reference, f32_to_16_ref, is here too (host code: the
 * qh_f32_to_f16 / qh_f32_to_bf16 of base/half.c, no CUDA intrinsic). tests/gpu/test_gpu_kernels.c holds the
 * validators. Not here: the backend state, weights or any host copies
 * (kernels/forward_cuda.cu). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_check.h"
#include "forward_kernels.h"
#include "forward_math.h"

extern "C" {
#include "util.h"
#include "half.h"
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

extern "C" cudaDataType_t qh_cuda_math_operand_type(QhCudaMath m) {
    return m == QH_MATH_FP16 ? CUDA_R_16F : m == QH_MATH_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

extern "C" size_t qh_cuda_math_operand_size(QhCudaMath m) {
    return qh_cuda_math_operand_type(m) == CUDA_R_32F ? sizeof(float) : sizeof(uint16_t);
}

/* ---- the GEMM wrappers -----------------------------------------------------
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
 * only place that reasons about the layout; every caller thinks row-major.
 * A and B are of type `ab` (fp32, fp16 or bf16), C is fp32, alpha and beta
 * fp32 (every compute type used here is a 32F one). */
static int gemm_rm_typed(cublasHandle_t h, cublasComputeType_t ct, cudaDataType_t ab, int transA, int transB, int M,
                         int N, int K, float alpha, const void *A, int lda, long long strideA, const void *B, int ldb,
                         long long strideB, float beta, float *C, int ldc, long long strideC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return 0;
    if (K <= 0) return qh_error("gemm_rm: inner dimension K = %d must be positive", K);
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1) {
        CUBLAS_CHECK(cublasGemmEx(h, opB, opA, N, M, K, &alpha, B, ab, ldb, A, ab, lda, &beta, C, CUDA_R_32F, ldc, ct,
                                  CUBLAS_GEMM_DEFAULT));
    } else {
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opB, opA, N, M, K, &alpha, B, ab, ldb, strideB, A, ab, lda,
                                                strideA, &beta, C, CUDA_R_32F, ldc, strideC, batch, ct,
                                                CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

extern "C" int gemm_rm(cublasHandle_t h, QhCudaMath math, int transA, int transB, int M, int N, int K, float alpha,
                       const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB,
                       float beta, float *C, int ldc, long long strideC, int batch) {
    /* fp32 tensors: exact fp32, or TF32 tensor cores in every other mode */
    cublasComputeType_t ct = math == QH_MATH_FP32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    return gemm_rm_typed(h, ct, CUDA_R_32F, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C,
                         ldc, strideC, batch);
}

extern "C" int linear_forward(cublasHandle_t h, QhCudaMath math, float *Y, const void *X, const void *W, int T,
                              int in, int out) {
    /* Y (T, out) = X (T, in) * W^T, W stored (out, in); the operands' type
     * follows the mode, fp32 accumulation always (the 16-bit products are
     * exact in fp32) */
    static const cublasComputeType_t cts[] = {CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_32F,
                                              CUBLAS_COMPUTE_32F};
    return gemm_rm_typed(h, cts[math], qh_cuda_math_operand_type(math), 0, 1, T, out, in, 1.0f, X, in, 0, W, in, 0,
                         0.0f, Y, out, 0, 1);
}

/* ---- reductions ------------------------------------------------------------ */

struct ReduceSum {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct ReduceMax {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/* Butterfly over the 32 lanes of a warp; every lane gets the result. */
template <typename T, typename Op> static __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide, for blockDim.x a multiple of 32 (<= 1024): each warp reduces,
 * warp results go through `sh` (32 values), every thread reduces those and
 * gets the result; `identity` stands in for the warps the block lacks. */
template <typename T, typename Op> static __device__ T block_reduce(T v, T *sh, T identity, Op op) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : identity;
    return warp_reduce(v, op);
}

static __device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, ReduceSum()); }
static __device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, ReduceMax()); }
static __device__ float block_sum(float v, float *sh) { return block_reduce(v, sh, 0.0f, ReduceSum()); }
static __device__ double block_sum_d(double v, double *sh) { return block_reduce(v, sh, 0.0, ReduceSum()); }
static __device__ float block_max(float v, float *sh) { return block_reduce(v, sh, -FLT_MAX, ReduceMax()); }

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

/* ---- LayerNorm (layernorm_ref) --------------------------------------------- */

/* One block per row t. out (T, D), x (T, D), w (D), b (D). Two passes over the
 * row, as the reference: the mean, then the squared deviations from it, both
 * summed in double. */
static __global__ void layernorm_kernel(float *out, const float *x, const float *w, const float *b, int D, float eps) {
    __shared__ double sh[32];
    long t = blockIdx.x;
    const float *xr = x + t * D;
    float *o = out + t * D;
    double s = 0.0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) s += xr[j];
    double mean = block_sum_d(s, sh) / D;
    double ssd = 0.0;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        double d = xr[j] - mean;
        ssd += d * d;
    }
    ssd = block_sum_d(ssd, sh);
    float mu = (float)mean, rstd = layernorm_rstd(ssd, D, eps);
    for (int j = threadIdx.x; j < D; j += blockDim.x) o[j] = layernorm_apply(xr[j], mu, rstd, w[j], b[j]);
}

extern "C" int launch_layernorm(float *out, const float *x, const float *w, const float *b, int T, int D, float eps,
                                cudaStream_t stream) {
    if (T <= 0 || D <= 0) return 0;
    int threads = D >= 1024 ? 256 : 128;
    layernorm_kernel<<<T, threads, 0, stream>>>(out, x, w, b, D, eps);
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

extern "C" int launch_rope_freq(float *q, float *k, int T, int D, int KV, int hs, int pos0, const float *inv_freq,
                                cudaStream_t stream) {
    long npairs = (long)T * (D / 2);
    if (npairs <= 0) return 0;
    if (hs <= 0 || hs % 2 != 0 || hs / 2 > QH_ROPE_MAX_PAIRS)
        return qh_error("launch_rope: head size %d must be even and at most %d", hs, 2 * QH_ROPE_MAX_PAIRS);
    RopeFreqs fr;
    for (int i = 0; i < hs / 2; i++) fr.f[i] = inv_freq[i];
    rope_kernel<<<elementwise_grid(npairs, 256), 256, 0, stream>>>(q, k, T, D, KV, hs, pos0, fr);
    CUDA_CHECK_LAUNCH();
    return 0;
}

extern "C" int launch_rope(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta,
                           cudaStream_t stream) {
    if (hs <= 0 || hs % 2 != 0 || hs / 2 > QH_ROPE_MAX_PAIRS)
        return qh_error("launch_rope: head size %d must be even and at most %d", hs, 2 * QH_ROPE_MAX_PAIRS);
    float f[QH_ROPE_MAX_PAIRS];
    for (int hd = 0; hd < hs; hd += 2) f[hd / 2] = 1.0f / powf(theta, hd / (float)hs);
    return launch_rope_freq(q, k, T, D, KV, hs, pos0, f, stream);
}

/* ---- causal softmax (softmax_inplace on the row prefix) -------------------- */

/* Rows of up to 1024 * CAUSAL_SOFTMAX_REG_PER columns: one block per row r of
 * s (rows, ncols), the row held in registers. Thread j owns columns
 * j, j + blockDim.x, ..., j + (PER-1) blockDim.x, so each of its PER loads is
 * coalesced across the block and all are in flight at once. The causal prefix
 * (n = t + 1 columns, t = r0 + r % nr) is read once; the whole row is written
 * once (zeros after the prefix: 0 / sum). The previous one-warp-per-row,
 * three-pass kernel waited on a load per iteration and took 36% of a 16-bit
 * 7B layer (kernels/bench/RESULTS.md). The launch bound keeps PER = 16 at
 * <= 64 registers, so 1024 threads fit one SM's register file. */
#define CAUSAL_SOFTMAX_REG_PER 16
template <int PER>
static __global__ void __launch_bounds__(1024) causal_softmax_reg_kernel(float *s, int nr, int r0, int ncols) {
    __shared__ float sh[32];
    long r = blockIdx.x;
    int n = r0 + (int)(r % nr) + 1, nt = blockDim.x, j = threadIdx.x;
    float *row = s + r * ncols;
    float x[PER], mx = -FLT_MAX;
#pragma unroll
    for (int k = 0; k < PER; k++) {
        int i = j + k * nt;
        x[k] = i < n ? row[i] : -FLT_MAX;
        mx = fmaxf(mx, x[k]);
    }
    mx = block_max(mx, sh);
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < PER; k++) {
        x[k] = j + k * nt < n ? expf(x[k] - mx) : 0.0f;
        sum += x[k];
    }
    sum = block_sum(sum, sh);
#pragma unroll
    for (int k = 0; k < PER; k++) {
        int i = j + k * nt;
        if (i < ncols) row[i] = x[k] / sum;
    }
}

/* Longer rows: one warp per row, three passes over the prefix in memory. */
static __global__ void causal_softmax_loop_kernel(float *s, long rows, int nr, int r0, int ncols) {
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    long r = (long)blockIdx.x * warps + (threadIdx.x >> 5);
    if (r >= rows) return;
    int n = r0 + (int)(r % nr) + 1, T = ncols;
    float *row = s + r * ncols;
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

extern "C" int launch_causal_softmax(float *s, long rows, int nr, int r0, int ncols, cudaStream_t stream) {
    if (rows <= 0 || ncols <= 0) return 0;
    if (nr < 1 || r0 < 0 || r0 + nr > ncols)
        return qh_error("launch_causal_softmax: rows %d..%d of a causal matrix need %d <= %d columns", r0, r0 + nr - 1,
                        r0 + nr, ncols);
    if (rows > 0x7fffffffL)
        return qh_error("launch_causal_softmax: %ld rows is more than one launch covers (2^31 - 1)", rows);
    /* 128 threads a row up to 2048 columns, 1024 beyond; PER the next power
     * of two of the columns each thread owns */
    int threads = ncols <= 128 * CAUSAL_SOFTMAX_REG_PER ? 128 : 1024, per = (ncols + threads - 1) / threads;
    unsigned grid = (unsigned)rows;
    if (per <= 1) causal_softmax_reg_kernel<1><<<grid, threads, 0, stream>>>(s, nr, r0, ncols);
    else if (per <= 2) causal_softmax_reg_kernel<2><<<grid, threads, 0, stream>>>(s, nr, r0, ncols);
    else if (per <= 4) causal_softmax_reg_kernel<4><<<grid, threads, 0, stream>>>(s, nr, r0, ncols);
    else if (per <= 8) causal_softmax_reg_kernel<8><<<grid, threads, 0, stream>>>(s, nr, r0, ncols);
    else if (per <= CAUSAL_SOFTMAX_REG_PER)
        causal_softmax_reg_kernel<CAUSAL_SOFTMAX_REG_PER><<<grid, threads, 0, stream>>>(s, nr, r0, ncols);
    else {
        const int per_block = 256 / 32;
        causal_softmax_loop_kernel<<<(unsigned)((rows + per_block - 1) / per_block), 256, 0, stream>>>(s, rows, nr, r0,
                                                                                                       ncols);
    }
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
                                 int row_blocks, cudaStream_t stream) {
    if (T <= 0) return 0;
    if (H % Hkv != 0 || head_batch < 1 || row_blocks < 1)
        return qh_error("attention_forward: %d heads over %d kv heads (batch %d, %d row blocks) is not a valid "
                        "grouping", H, Hkv, head_batch, row_blocks);
    int D = H * hs, KV = Hkv * hs, rep = H / Hkv;
    float scale = 1.0f / sqrtf((float)hs);
    int nqb = row_blocks < T ? row_blocks : T;
    for (int r = 0; r < rep; r++)
        for (int kh0 = 0; kh0 < Hkv; kh0 += head_batch) {
            int nb = Hkv - kh0 < head_batch ? Hkv - kh0 : head_batch;
            const float *q0 = q + (long)(kh0 * rep + r) * hs; /* (T, hs) ld D */
            const float *k0 = k + (long)kh0 * hs;             /* (T, hs) ld KV */
            const float *v0 = v + (long)kh0 * hs;             /* (T, hs) ld KV */
            float *o0 = out + (long)(kh0 * rep + r) * hs;     /* (T, hs) ld D */
            for (int qb = 0; qb < nqb; qb++) { /* query rows [r0, r1) against keys [0, r1) */
                int r0 = (int)((long)T * qb / nqb), r1 = (int)((long)T * (qb + 1) / nqb), nr = r1 - r0;
                long long SS = (long long)nr * r1; /* one head's (nr, r1) scores */
                if (nr == 0) continue;
                if (gemm_rm(h, math, 0, 1, nr, r1, hs, scale, q0 + (long)r0 * D, D, (long long)rep * hs, k0, KV, hs,
                            0.0f, scores, r1, SS, nb) != 0)
                    return -1;
                if (launch_causal_softmax(scores, (long)nb * nr, nr, r0, r1, stream) != 0) return -1;
                if (gemm_rm(h, math, 0, 0, nr, hs, r1, 1.0f, scores, r1, SS, v0, KV, hs, 0.0f, o0 + (long)r0 * D, D,
                            (long long)rep * hs, nb) != 0)
                    return -1;
            }
        }
    return 0;
}

/* ---- attention over a KV cache (attention_cached_simd) ----------------------
 * One block per (head h, query row t): the scores of positions 0 .. pos0 + t
 * in shared memory (after 32 floats of reduction scratch), the row's softmax
 * (max, exp, sum), then each output component as the weighted sum of the
 * cached values, thread i for components i, i + blockDim.x, ... */
static __global__ void attention_cached_kernel(float *out, const float *q, const float *kc, const float *vc, int pos0,
                                               int H, int Hkv, int hs, float scale) {
    extern __shared__ float sm[]; /* (32) reduction scratch, then (pos0 + t + 1) scores */
    float *red = sm, *sc = sm + 32;
    int h = blockIdx.x, t = blockIdx.y, D = H * hs, KV = Hkv * hs, g = h / (H / Hkv), ns = pos0 + t + 1;
    const float *qh = q + (size_t)t * D + (size_t)h * hs;
    for (int s = threadIdx.x; s < ns; s += blockDim.x) {
        const float *kr = kc + (size_t)s * KV + (size_t)g * hs;
        float a = 0.0f;
        for (int i = 0; i < hs; i++) a += qh[i] * kr[i];
        sc[s] = a * scale;
    }
    float mx = -FLT_MAX;
    for (int s = threadIdx.x; s < ns; s += blockDim.x) mx = fmaxf(mx, sc[s]);
    mx = block_max(mx, red); /* its __syncthreads also orders the score writes before the reads below */
    float sum = 0.0f;
    for (int s = threadIdx.x; s < ns; s += blockDim.x) {
        float e = expf(sc[s] - mx);
        sc[s] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    __syncthreads(); /* every exponential written */
    float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < hs; i += blockDim.x) {
        const float *vr = vc + (size_t)g * hs + i;
        float acc = 0.0f;
        for (int s = 0; s < ns; s++) acc += sc[s] * vr[(size_t)s * KV];
        out[(size_t)t * D + (size_t)h * hs + i] = acc * inv;
    }
}

extern "C" int launch_attention_cached(float *out, const float *q, const float *kc, const float *vc, int n, int pos0,
                                       int H, int Hkv, int hs, cudaStream_t stream) {
    size_t shmem = (32 + (size_t)pos0 + n) * sizeof(float);
    if (shmem > ATTENTION_CACHED_MAX_SHMEM) {
        fprintf(stderr, "qharness: error: cuda attention over the KV cache: %d positions exceed the kernel's %d\n",
                pos0 + n, (int)(ATTENTION_CACHED_MAX_SHMEM / sizeof(float)) - 32);
        return -1;
    }
    if (shmem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(attention_cached_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)shmem));
    int threads = hs >= 128 ? 128 : 64;
    attention_cached_kernel<<<dim3(H, n), threads, shmem, stream>>>(out, q, kc, vc, pos0, H, Hkv, hs,
                                                                     1.0f / sqrtf((float)hs));
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- SwiGLU (swiglu_ref), GELU, the QKV split, residuals, embedding ----------- */

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

/* GELU (gelu_ref) */
static __global__ void gelu_kernel(float *h, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        h[i] = gelu_one(h[i]);
}

extern "C" int launch_gelu(float *h, long n, cudaStream_t stream) {
    if (n <= 0) return 0;
    gelu_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(h, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* The fused-QKV split (qkv_split_ref): one thread per element (t, r) of
 * q | k | v, r < QKV = D + 2 KV; qkv (T, QKV), map (QKV) on the device. */
static __global__ void qkv_split_kernel(float *q, float *k, float *v, const float *qkv, const int *map, int D, int KV,
                                        long n) {
    int QKV = D + 2 * KV;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long t = i / QKV;
        qkv_split_one(q, k, v, qkv + t * QKV, map, t, (int)(i % QKV), D, KV);
    }
}

extern "C" int launch_qkv_split(float *q, float *k, float *v, const float *qkv, const int *map, int T, int D, int KV,
                                cudaStream_t stream) {
    long n = (long)T * (D + 2 * KV);
    if (n <= 0) return 0;
    qkv_split_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(q, k, v, qkv, map, D, KV, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* x += attn + mlp (parallel_residual_ref: the branches added first) */
static __global__ void parallel_residual_kernel(float *x, const float *attn, const float *mlp, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] += attn[i] + mlp[i];
}

extern "C" int launch_parallel_residual(float *x, const float *attn, const float *mlp, long n, cudaStream_t stream) {
    if (n <= 0) return 0;
    parallel_residual_kernel<<<elementwise_grid(n, 256), 256, 0, stream>>>(x, attn, mlp, n);
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

/* sqdiff_ref: per-thread double sums, one block reduction and one atomicAdd per block */
static __global__ void sqdiff_kernel(const float *a, const float *b, long n, double *out2) {
    __shared__ double sh[32];
    double su = 0.0, sb = 0.0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        double d = (double)a[i] - (double)b[i];
        su += d * d;
        sb += (double)b[i] * (double)b[i];
    }
    su = block_sum_d(su, sh);
    sb = block_sum_d(sb, sh);
    if (threadIdx.x == 0) {
        atomicAdd(&out2[0], su);
        atomicAdd(&out2[1], sb);
    }
}

extern "C" int launch_sqdiff(const float *a, const float *b, long n, double *out2, cudaStream_t stream) {
    if (n <= 0) return 0;
    long blocks = (n + 255) / 256;
    sqdiff_kernel<<<(unsigned)(blocks < 1024 ? blocks : 1024), 256, 0, stream>>>(a, b, n, out2);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* y (T, n) += b (n): one fp32 add per element, as add_bias_ref */
static __global__ void add_bias_kernel(float *y, const float *b, int n, long total) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        y[i] += b[i % n];
}

extern "C" int launch_add_bias(float *y, const float *b, int T, int n, cudaStream_t stream) {
    long total = (long)T * n;
    if (T <= 0 || n <= 0) return 0;
    add_bias_kernel<<<elementwise_grid(total, 256), 256, 0, stream>>>(y, b, n, total);
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

/* ---- fp32 -> fp16 / bf16 (f32_to_16_ref) -------------------------------------- */

#define QH_NAN16 0x7fffu /* the canonical NaN of both types (CUDART_NAN_FP16 / _BF16) */

/* dst (n) <- src (n) in the 16-bit type (BF16 = 0: fp16, 1: bf16), round to
 * nearest even; NaN canonicalized here, so that the result does not depend on
 * what the conversion instruction does with NaN payloads and signs. */
template <int BF16>
static __global__ void f32_to_16_kernel(uint16_t *dst, const float *src, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float f = src[i];
        uint16_t u;
        if (isnan(f)) u = QH_NAN16;
        else if (BF16) u = __bfloat16_as_ushort(__float2bfloat16_rn(f));
        else u = __half_as_ushort(__float2half_rn(f));
        dst[i] = u;
    }
}

extern "C" int launch_f32_to_16(void *dst, const float *src, long n, cudaDataType_t type, cudaStream_t stream) {
    if (type != CUDA_R_16F && type != CUDA_R_16BF)
        return qh_error("launch_f32_to_16: type %d is neither CUDA_R_16F nor CUDA_R_16BF", (int)type);
    if (n <= 0) return 0;
    if (type == CUDA_R_16BF)
        f32_to_16_kernel<1><<<elementwise_grid(n, 256), 256, 0, stream>>>((uint16_t *)dst, src, n);
    else
        f32_to_16_kernel<0><<<elementwise_grid(n, 256), 256, 0, stream>>>((uint16_t *)dst, src, n);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* The reference: the harness's own conversions (round to nearest even,
 * overflow to inf, subnormals kept; qh_f32_to_f16, qh_f32_to_bf16), NaN
 * canonicalized as the kernel does. */
extern "C" void f32_to_16_ref(uint16_t *dst, const float *src, long n, cudaDataType_t type) {
    for (long i = 0; i < n; i++)
        dst[i] = isnan(src[i]) ? QH_NAN16 : type == CUDA_R_16BF ? qh_f32_to_bf16(src[i]) : qh_f32_to_f16(src[i]);
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
