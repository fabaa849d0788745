/* forward_kernels.h: C-callable launchers of the CUDA kernels of the LLaMA
 * forward pass (kernels/forward_kernels.cu): rmsnorm, rotary embeddings,
 * causal grouped-query attention, SwiGLU, residual add, embedding gather,
 * per-position NLL, and the one row-major GEMM wrapper over cuBLAS that the
 * linear layers and attention share. Each kernel reimplements the plain C
 * reference of the same name in harness/forward_math.h (the spec) and is
 * tested against it in tests/gpu/test_gpu_kernels.c.
 *
 * Not here: the backend that strings these into a model (kernels/forward_cuda.cu),
 * any host-side memory management, or any weight format other than fp32.
 *
 * Conventions: every pointer below is a DEVICE pointer unless said otherwise;
 * all tensors are row-major with one row per position. Letters: T positions,
 * D = dim, KV = kv dim = Hkv * hs, hs = head size, H = heads, Hkv = kv heads,
 * F = hidden dim, V = vocab. Every launcher enqueues on `stream`, checks the
 * launch (CUDA_CHECK_LAUNCH) and returns 0, or -1 with a message on stderr.
 * Nothing is synchronised. */
#ifndef QH_FORWARD_KERNELS_H
#define QH_FORWARD_KERNELS_H

#include <stddef.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Arithmetic of the GEMMs: plain fp32 (CUBLAS_COMPUTE_32F, the exact mode and
 * the default) or TF32 tensor cores with fp32 accumulation
 * (CUBLAS_COMPUTE_32F_FAST_TF32). */
typedef enum { QH_MATH_FP32 = 0, QH_MATH_TF32 = 1, QH_MATH_FP16 = 2, QH_MATH_BF16 = 3 } QhCudaMath;
/* QH_MATH_FP16 / QH_MATH_BF16: CUBLAS_COMPUTE_32F_FAST_16F / _16BF, which
 * ALLOW cuBLAS to round the inputs to fp16 / bf16 for tensor cores (fp32
 * accumulation, tensors stay fp32). Measured on an H200: both modes gave the
 * same perplexities (1.3e-4 from fp32 on stories260K), so cuBLAS picked the
 * same kernels for both there: not a true fp16 / bf16 weight path. */

/* "fp32" | "tf32" | "fp16" | "bf16" -> QhCudaMath; NULL or "" gives fp32; -1 with a message otherwise. */
int qh_cuda_math_parse(const char *s, QhCudaMath *out);
const char *qh_cuda_math_name(QhCudaMath m);

/* Row-major batched GEMM: for b in 0..batch-1,
 *   C[b] (M, N) = alpha * op(A[b]) (M, K) * op(B[b]) (K, N) + beta * C[b]
 * where op(A) = A (M, K) when transA == 0, else A^T with A stored (K, M); same
 * for B. lda/ldb/ldc are row strides (elements), strideA/B/C the distance
 * between consecutive batch entries (elements; ignored when batch == 1).
 * The handle's stream is whatever the caller set on it. */
int gemm_rm(cublasHandle_t h, QhCudaMath math, int transA, int transB, int M, int N, int K, float alpha,
            const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB, float beta,
            float *C, int ldc, long long strideC, int batch);

/* Linear layer, the harness's weight convention: Y (T, out) = X (T, in) W^T,
 * W (out, in) row-major (y = W x per row). */
int linear_forward(cublasHandle_t h, QhCudaMath math, float *Y, const float *X, const float *W, int T, int in,
                   int out);

/* out (T, D) = x (T, D) * w (D) / sqrt(mean(x^2) + eps), per row. out != x. */
int launch_rmsnorm(float *out, const float *x, const float *w, int T, int D, float eps, cudaStream_t stream);

/* In place, llama2.c pairing: pairs (2i, 2i+1) of q (T, D) rotated by
 * (pos0 + t) * theta^(-(2i mod hs)/hs); the pairs of k (T, KV) with 2i < KV by
 * the same angle. The hs/2 frequencies are computed on the host with rope_ref's
 * own fp32 expression (bit-identical to it); head size at most 512. */
int launch_rope(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta, cudaStream_t stream);

/* In place: s (rows, T), row r is position t = r % T of a causal score matrix:
 * s[r][0..t] <- softmax(s[r][0..t]), s[r][t+1..T-1] <- 0. */
int launch_causal_softmax(float *s, int rows, int T, cudaStream_t stream);

/* How many (T, T) score matrices attention_forward works on at once when its
 * scratch may hold `budget_bytes` (at least 1, at most Hkv). */
int attention_head_batch(int T, int Hkv, size_t budget_bytes);

/* Causal grouped-query attention, out (T, D) from q (T, D), k (T, KV), v (T, KV)
 * (q and k already rotated): query head h uses kv head h / (H / Hkv), scores
 * scaled by 1/sqrt(hs). Done as cuBLAS strided-batched GEMMs S = Q K^T,
 * a causal softmax kernel, O = P V, `head_batch` heads at a time, in
 * scores (head_batch, T, T) scratch. `stream` must be the handle's stream. */
int attention_forward(cublasHandle_t h, QhCudaMath math, float *out, const float *q, const float *k,
                      const float *v, float *scores, int T, int H, int Hkv, int hs, int head_batch,
                      cudaStream_t stream);

/* hb (n) <- silu(hb) * hb2 (n), n = T * F */
int launch_swiglu(float *hb, const float *hb2, long n, cudaStream_t stream);

/* x (n) += y (n) */
int launch_residual_add(float *x, const float *y, long n, cudaStream_t stream);

/* x (T, D) <- emb (V, D) rows tokens (T); the ids must already be in 0..V-1. */
int launch_embed(float *x, const float *emb, const int *tokens, int T, int D, cudaStream_t stream);

/* nll (T) <- logsumexp(logits[t]) - logits[t][target[t]], logits (T, V),
 * target (T) in 0..V-1; sum of exponentials accumulated in double. */
int launch_nll(double *nll, const float *logits, const int *target, int T, int V, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
