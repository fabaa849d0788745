/* forward_math.c: plain C references of the forward-pass operations (see
 * forward_math.h). The CPU backend uses these directly for everything but the
 * matrix products, which go through BLAS. */
#include "forward_math.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void rmsnorm_ref(float *out, const float *x, const float *w, int T, int D, float eps) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (long)t * D;
        float *o = out + (long)t * D;
        float ss = 0.0f;
        for (int j = 0; j < D; j++) ss += xr[j] * xr[j];
        ss = 1.0f / sqrtf(ss / D + eps);
        for (int j = 0; j < D; j++) o[j] = w[j] * (ss * xr[j]);
    }
}

void rope_ref(float *q, float *k, int T, int D, int KV, int hs, int pos0, float theta) {
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        int pos = pos0 + t;
        for (int i = 0; i < D; i += 2) {
            int hd = i % hs;
            float freq = 1.0f / powf(theta, hd / (float)hs);
            float val = pos * freq;
            float fcr = cosf(val), fci = sinf(val);
            float *qv = q + (long)t * D + i;
            float a = qv[0], b = qv[1];
            qv[0] = a * fcr - b * fci;
            qv[1] = a * fci + b * fcr;
            if (i < KV) {
                float *kv = k + (long)t * KV + i;
                a = kv[0];
                b = kv[1];
                kv[0] = a * fcr - b * fci;
                kv[1] = a * fci + b * fcr;
            }
        }
    }
}

/* exp for x <= 88 in a form the compiler vectorizes: x = k ln2 + r with
 * |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by a degree-6 Taylor
 * polynomial (truncation < 2e-8 relative), 2^k by exponent bits. Within
 * 2 ulp of expf; inputs below -87 give 2^-126-scale values instead of
 * denormals (harmless in a softmax, whose inputs are <= 0). */
static inline float expf_poly(float x) {
    x = x < -87.0f ? -87.0f : x;
    float k = rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693145751953125f; /* ln2 high part (exact product) */
    r = r - k * 1.42860682030941723212e-6f;  /* ln2 low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

void softmax_simd(float *s, int n) {
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++) mx = s[i] > mx ? s[i] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) {
        s[i] = expf_poly(s[i] - mx);
        sum += s[i];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int i = 0; i < n; i++) s[i] *= inv;
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

void attention_ref(float *out, const float *q, const float *k, const float *v, int T, int H, int Hkv, int hs) {
    int D = H * hs, KV = Hkv * hs, rep = H / Hkv;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
    {
        float att[T > 0 ? T : 1];
#pragma omp for collapse(2) schedule(dynamic)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *qh = q + (long)t * D + h * hs;
                int kh = h / rep;
                for (int s = 0; s <= t; s++) {
                    const float *kr = k + (long)s * KV + kh * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += qh[i] * kr[i];
                    att[s] = dot * scale;
                }
                softmax_inplace(att, t + 1);
                float *o = out + (long)t * D + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int s = 0; s <= t; s++) {
                    const float *vr = v + (long)s * KV + kh * hs;
                    for (int i = 0; i < hs; i++) o[i] += att[s] * vr[i];
                }
            }
    }
}

void swiglu_ref(float *hb, const float *hb2, int T, int F) {
    long n = (long)T * F;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        float x = hb[i];
        hb[i] = x * (1.0f / (1.0f + expf(-x))) * hb2[i];
    }
}

void nll_ref(double *nll, const float *logits, const int *target, int T, int V) {
#pragma omp parallel for schedule(static) if (T > 4)
    for (int t = 0; t < T; t++) {
        const float *l = logits + (long)t * V;
        float mx = l[0];
        for (int i = 1; i < V; i++) mx = l[i] > mx ? l[i] : mx;
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += (double)expf(l[i] - mx);
        nll[t] = (double)mx + log(sum) - (double)l[target[t]];
    }
}
