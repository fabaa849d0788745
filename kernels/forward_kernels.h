/* forward_kernels.h: C-callable launchers of the CUDA kernels of the forward
 * pass of every family (kernels/forward_kernels.cu): rmsnorm, rotary
 * embeddings, causal grouped-query attention, SwiGLU, residual add, bias add,
 * embedding gather, per-position NLL, the fp32 -> fp16 / bf16 conversion;
 * Falcon's LayerNorm, GELU, fused-QKV split and parallel residual; and the
 * row-major GEMM wrappers over cuBLAS that the linear layers and attention
 * share. Each kernel reimplements the plain C reference of the same name in
 * harness/forward/forward_math.h (the spec; the conversion's reference, f32_to_16_ref,
 * is declared here) and is tested against it in tests/gpu/test_gpu_kernels.c.
 *
 * Not here: the backend that strings these into a model (kernels/forward_cuda.cu),
 * any host-side memory management, or quantized weight formats.
 *
 * Conventions: every pointer below is a DEVICE pointer unless said otherwise;
 * all tensors are row-major with one row per position. Letters: T positions,
 * D = dim, KV = kv dim = Hkv * hs, hs = head size, H = heads, Hkv = kv heads,
 * F = hidden dim, V = vocab. Every launcher enqueues on `stream`, checks the
 * launch (CUDA_CHECK_LAUNCH) and returns 0, or -1 with a message on stderr.
 * Nothing is synchronised. */
#ifndef QH_FORWARD_KERNELS_H
#define QH_FORWARD_KERNELS_H

/* Blocks of query rows the CUDA backend asks attention_forward for on long
 * windows (T >= ATTENTION_ROW_BLOCKS_MIN_T); shorter ones use 1, where the
 * extra launches cost more than the skipped upper triangle saves (measured on
 * the H100 with bench_gpu_forward and test_gpu_forward: 1-2% faster at 7B /
 * 2048, within the run-to-run spread; 2x slower on stories260K at 512; the
 * 1024 threshold itself was not measured, kernels/bench/RESULTS.md). */
#define ATTENTION_ROW_BLOCKS 8
#define ATTENTION_ROW_BLOCKS_MIN_T 1024

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Arithmetic of the GEMMs, chosen by QH_CUDA_MATH (forward_cuda.cu):
 *   QH_MATH_FP32  fp32 operands, CUBLAS_COMPUTE_32F: exact fp32 (the default);
 *   QH_MATH_TF32  fp32 operands, CUBLAS_COMPUTE_32F_FAST_TF32: tensor cores,
 *                 inputs rounded to tf32 inside cuBLAS, fp32 accumulation;
 *   QH_MATH_FP16 / QH_MATH_BF16  the linear layers' operands (weights and the
 *                 converted input activations) STORED in fp16 / bf16
 *                 (CUDA_R_16F / CUDA_R_16BF), output fp32, CUBLAS_COMPUTE_32F
 *                 (fp32 accumulation). Attention's two batched GEMMs keep fp32
 *                 tensors and use CUBLAS_COMPUTE_32F_FAST_TF32 in these modes
 *                 (~4% of the FLOPs of LLaMA-7B at 2048 tokens). Everything else
 *                 (norms, rope, softmax, residual, NLL, the embedding table) is
 *                 fp32 in every mode. */
typedef enum { QH_MATH_FP32 = 0, QH_MATH_TF32 = 1, QH_MATH_FP16 = 2, QH_MATH_BF16 = 3 } QhCudaMath;

/* "fp32" | "tf32" | "fp16" | "bf16" -> QhCudaMath; NULL or "" gives fp32; -1 with a message otherwise. */
int qh_cuda_math_parse(const char *s, QhCudaMath *out);
const char *qh_cuda_math_name(QhCudaMath m);
/* The storage type of the linear layers' operands (weights and inputs) in mode
 * m: CUDA_R_32F (fp32, tf32), CUDA_R_16F (fp16) or CUDA_R_16BF (bf16), and
 * its size in bytes (4 or 2). */
cudaDataType_t qh_cuda_math_operand_type(QhCudaMath m);
size_t qh_cuda_math_operand_size(QhCudaMath m);

/* Row-major batched GEMM on fp32 tensors: for b in 0..batch-1,
 *   C[b] (M, N) = alpha * op(A[b]) (M, K) * op(B[b]) (K, N) + beta * C[b]
 * where op(A) = A (M, K) when transA == 0, else A^T with A stored (K, M); same
 * for B. lda/ldb/ldc are row strides (elements), strideA/B/C the distance
 * between consecutive batch entries (elements; ignored when batch == 1).
 * Compute type: CUBLAS_COMPUTE_32F for QH_MATH_FP32, CUBLAS_COMPUTE_32F_FAST_TF32
 * for every other mode (the fp16 / bf16 modes concern the linear layers only).
 * The handle's stream is whatever the caller set on it. */
int gemm_rm(cublasHandle_t h, QhCudaMath math, int transA, int transB, int M, int N, int K, float alpha,
            const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB, float beta,
            float *C, int ldc, long long strideC, int batch);

/* Linear layer, the harness's weight convention: Y (T, out) = X (T, in) W^T,
 * W (out, in) row-major (y = W x per row). X and W are in the operand type of
 * `math` (qh_cuda_math_operand_type: float for fp32 / tf32, 16-bit for fp16 /
 * bf16, e.g. converted by launch_f32_to_16); Y is always fp32. */
int linear_forward(cublasHandle_t h, QhCudaMath math, float *Y, const void *X, const void *W, int T, int in,
                   int out);

/* dst (n) <- src (n) rounded to nearest even into `type` (CUDA_R_16F or
 * CUDA_R_16BF; -1 otherwise): __float2half_rn / __float2bfloat16_rn, except
 * that every NaN becomes the one canonical NaN 0x7fff. fp16 overflows to +-inf
 * from 65520 on. dst holds n 16-bit values. */
int launch_f32_to_16(void *dst, const float *src, long n, cudaDataType_t type, cudaStream_t stream);
/* Plain C reference of launch_f32_to_16 (HOST pointers, integer arithmetic
 * only): dst (n) <- the bits of src (n) in `type`, round to nearest even,
 * subnormals kept, NaN -> 0x7fff; `type` must be CUDA_R_16F or CUDA_R_16BF. */
void f32_to_16_ref(uint16_t *dst, const float *src, long n, cudaDataType_t type);

/* out (T, D) = x (T, D) * w (D) / sqrt(mean(x^2) + eps), per row. out != x. */
int launch_rmsnorm(float *out, const float *x, const float *w, int T, int D, float eps, cudaStream_t stream);

/* In place, llama2.c pairing: pairs (2i, 2i+1) of q (T, D) rotated by
 * (pos0 + t) * theta^(-(2i mod hs)/hs); the pairs of k (T, KV) with 2i < KV by
 * the same angle. The hs/2 frequencies are computed on the host with rope_ref's
 * own fp32 expression (bit-identical to it); head size at most 512. */
int launch_rope(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta, cudaStream_t stream);
/* The same with the hs/2 frequencies given (HOST pointer inv_freq, rope_freq_ref's). */
int launch_rope_freq(float *q, float *k, int T, int D, int KV, int hs, int pos0, const float *inv_freq,
                     cudaStream_t stream);

/* In place: s (rows, ncols), stacked blocks of nr rows of causal score
 * matrices whose first row is query position r0; row r is position
 * t = r0 + r % nr (t < ncols): s[r][0..t] <- softmax(s[r][0..t]),
 * s[r][t+1..ncols-1] <- 0. Whole matrices: nr = ncols = T, r0 = 0. */
int launch_causal_softmax(float *s, long rows, int nr, int r0, int ncols, cudaStream_t stream);

/* How many (T, T) score matrices attention_forward works on at once when its
 * scratch may hold `budget_bytes` (at least 1, at most Hkv). */
int attention_head_batch(int T, int Hkv, size_t budget_bytes);

/* Causal grouped-query attention, out (T, D) from q (T, D), k (T, KV), v (T, KV)
 * (q and k already rotated): query head h uses kv head h / (H / Hkv), scores
 * scaled by 1/sqrt(hs). Done as cuBLAS strided-batched GEMMs S = Q K^T,
 * a causal softmax kernel, O = P V, `head_batch` heads at a time, in
 * scores (head_batch, T, T) scratch, by `row_blocks` blocks of query rows
 * (at most T): the rows [r0, r1) need the keys [0, r1) only, so with n
 * blocks the GEMMs and the score traffic cover (n+1)/2n of the full square
 * (the causal mask makes the rest zeros). `stream` must be the handle's stream. */
int attention_forward(cublasHandle_t h, QhCudaMath math, float *out, const float *q, const float *k,
                      const float *v, float *scores, int T, int H, int Hkv, int hs, int head_batch, int row_blocks,
                      cudaStream_t stream);

/* Attention of n query rows q (n, D) at positions pos0 .. pos0 + n - 1 over
 * the KV cache kc, vc (at least pos0 + n, KV) row-major (row s: position s's
 * key / value, q and k already rotated), row t attending to positions
 * 0 .. pos0 + t: the operations of attention_cached_simd (forward_math.h)
 * with the scores of a row in shared memory, so at most
 * ATTENTION_CACHED_MAX_SHMEM / 4 - 32 positions (refused above, by name). */
#define ATTENTION_CACHED_MAX_SHMEM ((size_t)160 * 1024) /* below sm_80's 163 KiB per block */
int launch_attention_cached(float *out, const float *q, const float *kc, const float *vc, int n, int pos0, int H,
                            int Hkv, int hs, cudaStream_t stream);

/* hb (n) <- silu(hb) * hb2 (n), n = T * F */
int launch_swiglu(float *hb, const float *hb2, long n, cudaStream_t stream);

/* y (T, n) += b (n) on every row: a linear layer's bias (add_bias_ref). */
int launch_add_bias(float *y, const float *b, int T, int n, cudaStream_t stream);

/* out2[0] += sum (a - b)^2, out2[1] += sum b^2 over n elements, in double
 * (sqdiff_ref); out2 is a device pointer the caller zeroes and reads. */
int launch_sqdiff(const float *a, const float *b, long n, double *out2, cudaStream_t stream);

/* x (n) += y (n) */
int launch_residual_add(float *x, const float *y, long n, cudaStream_t stream);

/* out (T, D) = (x - mean(x)) / sqrt(var(x) + eps) * w (D) + b (D), per row,
 * the biased variance, mean and variance summed in double (layernorm_ref).
 * out != x. */
int launch_layernorm(float *out, const float *x, const float *w, const float *b, int T, int D, float eps,
                     cudaStream_t stream);

/* h (n) <- h (1 + erf(h / sqrt 2)) / 2, the exact GELU (gelu_ref) */
int launch_gelu(float *h, long n, cudaStream_t stream);

/* The fused q/k/v projection's output qkv (T, D + 2 KV) split into q (T, D),
 * k (T, KV), v (T, KV): row r of q | k | v is column map[r] of qkv
 * (qkv_split_ref; map (D + 2 KV) is a DEVICE copy of arch_qkv_split_map's). */
int launch_qkv_split(float *q, float *k, float *v, const float *qkv, const int *map, int T, int D, int KV,
                     cudaStream_t stream);

/* x (n) += attn (n) + mlp (n), the two branches added first (parallel_residual_ref) */
int launch_parallel_residual(float *x, const float *attn, const float *mlp, long n, cudaStream_t stream);

/* x (T, D) <- emb (V, D) rows tokens (T); the ids must already be in 0..V-1. */
int launch_embed(float *x, const float *emb, const int *tokens, int T, int D, cudaStream_t stream);

/* nll (T) <- logsumexp(logits[t]) - logits[t][target[t]], logits (T, V),
 * target (T) in 0..V-1; sum of exponentials accumulated in double. */
int launch_nll(double *nll, const float *logits, const int *target, int T, int V, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
