/* forward_math.h: the plain C reference of every operation of the forward
 * pass of each family (LLaMA; Falcon's LayerNorm, GELU, fused-QKV split and
 * parallel residual) over a window of T positions (the `_ref` twins the CUDA
 * kernels are tested against), and the per-element steps both share (the
 * QH_HD inline functions: compiled for the host here and for the device in
 * kernels/forward_kernels.cu, so the formula exists once). Shapes: D = dim,
 * KV = kv dim, hs = head size, H = heads, Hkv = kv heads, F = hidden, V =
 * vocab. All tensors row-major, one row per position. These follow llama2.c's
 * run.c numerics (fp32, same formulas). */
#ifndef QH_FORWARD_MATH_H
#define QH_FORWARD_MATH_H

#include <math.h>

#ifndef QH_HD
#ifdef __CUDACC__
#define QH_HD __host__ __device__
#else
#define QH_HD
#endif
#endif

/* Rotate one pair (a, b) = (v[0], v[1]) by the angle whose cosine and sine are
 * fcr, fci: the rotary step shared by rope_ref and the CUDA rope kernel. */
static inline QH_HD void rope_rotate_pair(float *v, float fcr, float fci) {
    float a = v[0], b = v[1];
    v[0] = a * fcr - b * fci;
    v[1] = a * fci + b * fcr;
}

/* LayerNorm's scale of a row, 1 / sqrt(var + eps), in fp32 from ssd, the sum
 * over the D values of (x - mean)^2 accumulated in double (var = ssd / D, the
 * biased variance): layernorm_ref and the CUDA layernorm kernel. */
static inline QH_HD float layernorm_rstd(double ssd, int D, float eps) { return (float)(1.0 / sqrt(ssd / D + eps)); }
/* One output of LayerNorm: (x - mu) * rstd * w + b, mu the row mean in fp32. */
static inline QH_HD float layernorm_apply(float x, float mu, float rstd, float w, float b) {
    return (x - mu) * rstd * w + b;
}

/* The exact (erf) GELU of one value, h (1 + erf(h / sqrt 2)) / 2: gelu_ref and the CUDA gelu kernel. */
static inline QH_HD float gelu_one(float h) { return 0.5f * h * (1.0f + erff(h * 0.70710678118654752f)); }

/* One element of the fused-QKV split: row r (< D + 2 KV) of q | k | v at
 * position t is column map[r] of src, the fused projection's output row
 * (D + 2 KV) of position t: qkv_split_ref and the CUDA split kernel. */
static inline QH_HD void qkv_split_one(float *q, float *k, float *v, const float *src, const int *map, long t, int r,
                                       int D, int KV) {
    float x = src[map[r]];
    if (r < D) q[t * D + r] = x;
    else if (r < D + KV) k[t * KV + (r - D)] = x;
    else v[t * KV + (r - D - KV)] = x;
}

/* out (T, D) = x * w / sqrt(mean(x^2) + eps), per row */
void rmsnorm_ref(float *out, const float *x, const float *w, int T, int D, float eps);
/* Rotary embeddings, llama2.c convention: consecutive pairs (2i, 2i+1) of each
 * head rotated by pos * theta^(-(2i mod hs)/hs); q (T, D), k (T, KV); positions pos0.. */
void rope_ref(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta);
/* The same with the frequencies given: pair i of a head rotated by
 * pos * inv_freq[i], inv_freq (hs/2) (model_rope_inv_freq: plain, or with
 * Llama-3 scaling). rope_ref is this with theta^(-2i/hs). */
void rope_freq_ref(float *q, float *k, int T, int D, int KV, int hs, int pos0, const float *inv_freq);
/* out (T, D) = (x - mean(x)) / sqrt(var(x) + eps) * w + b per row, the
 * biased variance (torch.nn.LayerNorm); mean and variance accumulated in
 * double. out != x. */
void layernorm_ref(float *out, const float *x, const float *w, const float *b, int T, int D, float eps);
/* h (n) <- gelu(h) = h * (1 + erf(h / sqrt 2)) / 2, the exact GELU (Falcon's "gelu") */
void gelu_ref(float *h, long n);
/* The fused q/k/v projection's output qkv (T, QKV) split into q (T, D),
 * k (T, KV), v (T, KV): row r of q | k | v is column map[r] of qkv
 * (arch_qkv_split_map, QKV = D + 2 KV). */
void qkv_split_ref(float *q, float *k, float *v, const float *qkv, const int *map, int T, int D, int KV);
/* x (n) += attn (n) + mlp (n): the parallel residual of Falcon's block, the
 * two branch outputs added first. */
void parallel_residual_ref(float *x, const float *attn, const float *mlp, long n);
/* Causal grouped-query attention: out (T, D) from q (T, D), k (T, KV), v (T, KV);
 * head h uses kv head h / (H / Hkv); scores scaled by 1/sqrt(hs). */
void attention_ref(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs);
/* The same with softmax_simd: the CPU backend's attention. */
void attention_simd(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs);
/* The KV cache of one layer, transposed: kc, vc (KV, ld), column s the key
 * (value) of position s. kv_cache_store writes k, v (n, KV) as columns
 * pos0 .. pos0 + n - 1; attention_cached_simd is attention_simd of the n
 * query rows q (n, D) at positions pos0 .. pos0 + n - 1 over the cache's
 * first pos0 + n positions: with pos0 0 and the window's k and v stored, the
 * same operations in the same order as attention_simd (bit for bit). */
void kv_cache_store(float *kc, float *vc, long ld, const float *k, const float *v, int n, int pos0, int KV);
void attention_cached_simd(float *out, const float *q, const float *kc, const float *vc, long ld, int n, int pos0,
                           int H, int Hkv, int hs);
/* hb (T, F) <- silu(hb) * hb2 */
void swiglu_ref(float *hb, const float *hb2, int T, int F);
/* *num += sum_i (a[i] - b[i])^2, *den += sum_i b[i]^2, i < n, accumulated in
 * double (the relative error of a block's output against its full-precision
 * output, calibrate.c). */
void sqdiff_ref(const float *a, const float *b, long n, double *num, double *den);
/* y (T, n) += b (n) on every row: a linear layer's bias (Qwen2's q/k/v). */
void add_bias_ref(float *y, const float *b, int T, int n);
/* nll (T) <- logsumexp(logits[t]) - logits[t][target[t]], in double */
void nll_ref(double *nll, const float *logits, const int *target, int T, int V);
/* Row softmax of a causal score row in place: s (n) */
void softmax_inplace(float *s, int n);
/* The same softmax with a vectorizable polynomial exp (within 3 ulp of expf):
 * the CPU backend's version, tested against softmax_inplace. */
void softmax_simd(float *s, int n);

#endif
