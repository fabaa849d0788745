/* forward_math.c: plain C references of the forward-pass operations (see
 * forward_math.h). The CPU backend uses these directly for everything but the
 * matrix products, which go through BLAS. */
#include "forward_math.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void rmsnorm_ref(float *out, const float *x, const float *w, int T, int D, float eps) {
#pragma omp parallel for schedule(static) if (4.0 * T * D >= QH_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (long)t * D;
        float *o = out + (long)t * D;
        float ss = 0.0f;
        for (int j = 0; j < D; j++) ss += xr[j] * xr[j];
        ss = 1.0f / sqrtf(ss / D + eps);
        for (int j = 0; j < D; j++) o[j] = w[j] * (ss * xr[j]);
    }
}

void rope_freq_ref(float *q, float *k, int T, int D, int KV, int hs, int pos0, const float *inv_freq) {
#pragma omp parallel for schedule(static) if (20.0 * T * D >= QH_PAR_MIN_WORK) /* cosf, sinf per pair */
    for (int t = 0; t < T; t++) {
        int pos = pos0 + t;
        for (int i = 0; i < D; i += 2) {
            float val = pos * inv_freq[(i % hs) / 2];
            float fcr = cosf(val), fci = sinf(val);
            rope_rotate_pair(q + (long)t * D + i, fcr, fci);
            if (i < KV) rope_rotate_pair(k + (long)t * KV + i, fcr, fci);
        }
    }
}

void rope_ref(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta) {
    float *inv_freq = qh_malloc(sizeof(float) * (size_t)(hs / 2)); /* (hs/2) */
    for (int i = 0; i < hs / 2; i++) inv_freq[i] = 1.0f / powf(theta, (2 * i) / (float)hs);
    rope_freq_ref(q, k, T, D, KV, hs, pos0, inv_freq);
    free(inv_freq);
}

void layernorm_ref(float *out, const float *x, const float *w, const float *b, int T, int D, float eps) {
#pragma omp parallel for schedule(static) if (8.0 * T * D >= QH_PAR_MIN_WORK)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (long)t * D;
        float *o = out + (long)t * D;
        double mean = 0.0, var = 0.0;
        for (int j = 0; j < D; j++) mean += xr[j];
        mean /= D;
        for (int j = 0; j < D; j++) var += (xr[j] - mean) * (xr[j] - mean);
        float mu = (float)mean, rstd = layernorm_rstd(var, D, eps);
        for (int j = 0; j < D; j++) o[j] = layernorm_apply(xr[j], mu, rstd, w[j], b[j]);
    }
}

void gelu_ref(float *h, long n) {
#pragma omp parallel for schedule(static) if (20.0 * n >= QH_PAR_MIN_WORK) /* erff */
    for (long i = 0; i < n; i++) h[i] = gelu_one(h[i]);
}

void qkv_split_ref(float *q, float *k, float *v, const float *qkv, const int *map, int T, int D, int KV) {
    int QKV = D + 2 * KV;
#pragma omp parallel for schedule(static) if (1.0 * T * QKV >= QH_PAR_MIN_WORK)
    for (int t = 0; t < T; t++)
        for (int r = 0; r < QKV; r++) qkv_split_one(q, k, v, qkv + (long)t * QKV, map, t, r, D, KV);
}

void parallel_residual_ref(float *x, const float *attn, const float *mlp, long n) {
#pragma omp parallel for schedule(static) if (2.0 * n >= QH_PAR_MIN_WORK)
    for (long i = 0; i < n; i++) x[i] += attn[i] + mlp[i];
}

/* exp of 8 floats at once (GCC vector extensions, so it vectorizes on any
 * SIMD target): x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
 * exp(r) by a degree-6 Taylor polynomial (truncation < 2e-8 relative), 2^k by
 * exponent bits (a vector cast between same-size vector types is a bit cast).
 * Within 3 ulp of expf for x in [-87, 88] (measured over every float in [-87, -17]); inputs below -87 give e^-87
 * (harmless in a softmax, whose inputs are <= 0). */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f exp8(v8f x) {
    const v8f lo = {-87, -87, -87, -87, -87, -87, -87, -87};
    v8i below = x < lo; /* lanes of all ones where x < -87 */
    x = (v8f)((below & (v8i)lo) | (~below & (v8i)x));
    v8f kf = x * 1.44269504088896341f;
    for (int i = 0; i < 8; i++) kf[i] = __builtin_rintf(kf[i]);
    v8f r = x - kf * 0.693145751953125f; /* ln2 high part: the product is exact */
    r = r - kf * 1.42860682030941723212e-6f;
    v8f p = r * (1.0f / 720.0f) + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v8i k = __builtin_convertvector(kf, v8i);
    v8i bits = (k + 127) << 23;
    return p * (v8f)bits;
}

void softmax_simd(float *s, int n) {
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++) mx = s[i] > mx ? s[i] : mx;
    v8f vsum = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f x;
        memcpy(&x, s + i, sizeof x);
        v8f e = exp8(x - mx);
        memcpy(s + i, &e, sizeof e);
        vsum += e;
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; j++) sum += vsum[j];
    if (i < n) { /* tail: pad with -inf-like values that exp8 maps to ~0, not added */
        v8f x = {0};
        for (int j = 0; j < n - i; j++) x[j] = s[i + j] - mx;
        v8f e = exp8(x);
        for (int j = 0; j < n - i; j++) {
            s[i + j] = e[j];
            sum += e[j];
        }
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] *= inv;
}

void softmax_inplace(float *s, int n) {
    float mx = s[0];
    for (int i = 1; i < n; i++) mx = s[i] > mx ? s[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        s[i] = expf(s[i] - mx);
        sum += s[i];
    }
    for (int i = 0; i < n; i++) s[i] /= sum;
}

/* Causal GQA attention with a given row softmax over keys and values held
 * transposed, kt and vt (KV, ld): column s of row c is position s of
 * component c. The n query rows q (n, D) are positions pos0 .. pos0 + n - 1;
 * row t attends to positions 0 .. pos0 + t. One (head, row) at a time, only
 * the causal part of the row computed; both products run along the
 * positions s (long, contiguous, vectorizable) rather than along the head
 * dimension (as short as 8 in stories260K). */
static void attention_rows_t(float *out, const float *q, const float *kt, const float *vt, long ld, int n, int pos0,
                             int H, int Hkv, int hs, void (*softmax)(float *, int)) {
    int D = H * hs, rep = H / Hkv, S = pos0 + n;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel if (4.0 * H * n * (pos0 + (n + 1.0) / 2) * hs >= QH_PAR_MIN_WORK) /* q k^T and att v */
    {
        float att[S > 0 ? S : 1];
#pragma omp for collapse(2) schedule(dynamic, 8)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < n; t++) {
                const float *qh = q + (size_t)t * D + h * hs;
                const float *kh = kt + (size_t)(h / rep) * hs * ld, *vh = vt + (size_t)(h / rep) * hs * ld;
                int ns = pos0 + t + 1;
                for (int s = 0; s < ns; s++) att[s] = 0.0f;
                for (int i = 0; i < hs; i++) {
                    float qi = qh[i];
                    const float *kr = kh + (size_t)i * ld;
#pragma omp simd
                    for (int s = 0; s < ns; s++) att[s] += qi * kr[s];
                }
                for (int s = 0; s < ns; s++) att[s] *= scale;
                softmax(att, ns);
                float *o = out + (size_t)t * D + h * hs;
                for (int i = 0; i < hs; i++) {
                    const float *vr = vh + (size_t)i * ld;
                    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                    for (int s = 0; s < ns; s++) acc += att[s] * vr[s];
                    o[i] = acc;
                }
            }
    }
}

/* rows (T, KV) -> columns pos0 .. pos0 + T - 1 of t (KV, ld) */
static void transpose_into(float *t, long ld, const float *rows, int T, int KV, int pos0) {
#pragma omp parallel for schedule(static) if (4.0 * T * KV >= QH_PAR_MIN_WORK)
    for (int c = 0; c < KV; c++)
        for (int s = 0; s < T; s++) t[(size_t)c * ld + pos0 + s] = rows[(size_t)s * KV + c];
}

/* The full window: K and V transposed per kv head to (KV, T), then the rows above. */
static void attention_rows(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs,
                           void (*softmax)(float *, int)) {
    int KV = Hkv * hs;
    float *kt = qh_malloc(sizeof(float) * (size_t)T * KV * 2); /* (KV, T) */
    float *vt = kt + (size_t)T * KV;                         /* (KV, T) */
    transpose_into(kt, T, k, T, KV, 0);
    transpose_into(vt, T, v, T, KV, 0);
    attention_rows_t(out, q, kt, vt, T, T, 0, H, Hkv, hs, softmax);
    free(kt);
}

void kv_cache_store(float *kc, float *vc, long ld, const float *k, const float *v, int n, int pos0, int KV) {
    transpose_into(kc, ld, k, n, KV, pos0);
    transpose_into(vc, ld, v, n, KV, pos0);
}

void attention_cached_simd(float *out, const float *q, const float *kc, const float *vc, long ld, int n, int pos0,
                           int H, int Hkv, int hs) {
    attention_rows_t(out, q, kc, vc, ld, n, pos0, H, Hkv, hs, softmax_simd);
}

void attention_ref(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs) {
    attention_rows(out, q, k, v, T, H, Hkv, hs, softmax_inplace);
}

void attention_simd(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs) {
    attention_rows(out, q, k, v, T, H, Hkv, hs, softmax_simd);
}

void swiglu_ref(float *hb, const float *hb2, int T, int F) {
    long n = (long)T * F;
#pragma omp parallel for schedule(static) if (20.0 * n >= QH_PAR_MIN_WORK) /* expf */
    for (long i = 0; i < n; i++) {
        float x = hb[i];
        hb[i] = x * (1.0f / (1.0f + expf(-x))) * hb2[i];
    }
}

void sqdiff_ref(const float *a, const float *b, long n, double *num, double *den) {
    double su = 0.0, sb = 0.0;
#pragma omp parallel for reduction(+ : su, sb) schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        su += d * d;
        sb += (double)b[i] * b[i];
    }
    *num += su;
    *den += sb;
}

void add_bias_ref(float *y, const float *b, int T, int n) {
#pragma omp parallel for schedule(static) if (1.0 * T * n >= QH_PAR_MIN_WORK)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) y[(long)t * n + i] += b[i];
}

void nll_ref(double *nll, const float *logits, const int *target, int T, int V) {
#pragma omp parallel for schedule(static) if (20.0 * T * V >= QH_PAR_MIN_WORK) /* expf */
    for (int t = 0; t < T; t++) {
        const float *l = logits + (long)t * V;
        float mx = l[0];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += (double)expf(l[i] - mx);
        nll[t] = (double)mx + log(sum) - (double)l[target[t]];
    }
}
