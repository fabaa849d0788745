/* test_forward.c: the CPU forward backend (forward_cpu.c) and the plain C
 * kernels of forward_math.c against independent references written here.
 *
 * 1. Each _ref kernel on a hand-computed tiny case (rmsnorm, rope, softmax,
 *    attention, swiglu, nll) with closed-form expectations.
 * 2. softmax_simd against softmax_inplace and a double softmax on random rows
 *    of many lengths, including very negative entries; its polynomial exp
 *    against exp() to 2 ulp through rows {0, x}.
 * 3. A naive forward pass written here, one position at a time with a KV
 *    cache like llama2.c run.c, every accumulation in double, compared with
 *    the batched BLAS backend (embed, block, head_nll, window_nll,
 *    last_logits) on random synthetic models of odd sizes: GQA with a shared
 *    classifier, n_kv_heads == n_heads with an unshared classifier, and q/k/v
 *    biases (Qwen2) with theta 1e6.
 * 4. The LinearInputHook: 7 calls per block in reference order, q/k/v inputs
 *    equal to rmsnorm of the block input, and the o/down inputs of the right
 *    width (checked through x_out = x_in + Wo X_o + W2 X_down).
 * 5. forward_flops against a hand count; error paths (token out of range,
 *    window longer than the scratch).
 *
 * Tolerance rationale for 3: the backend is fp32 throughout (as run.c); the
 * reference is double. Each fp32 dot product of length K <= 97 has a relative
 * rounding error of order sqrt(K) * 2^-24 ~ 1e-6 of the row norm; over 3
 * blocks with residual adds (and fp32 rope angles pos * freq up to 40 rad)
 * the measured worst deviation is a few 1e-7 relative to the row's largest
 * logit. 1e-5 relative (to max(|value|, row scale)) leaves a 10-30x margin
 * while a wrong op (missing rope, wrong kv head, off-by-one causal mask,
 * wrong norm weight) moves logits by 1e-2 or more.
 * Not here: the CUDA backend (tests/gpu), perplexity bookkeeping
 * (test_results.c), the checkpoint format (test_model.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_compare.h"
#include "forward.h"
#include "forward_math.h"
#include "model.h"
#include "util.h"

/* ---- small deterministic generator ---------------------------------------- */
static uint64_t rng_state = 0x1234567ull;
static uint64_t rng_next(void) { return splitmix64_next(&rng_state); }
static double rng_unif(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static int rng_int(int n) { return (int)(rng_next() % (uint64_t)n); }

/* ---- 1. hand-computed kernel cases ------------------------------------------- */

static void test_kernels_by_hand(void) {
    /* rmsnorm of {3,4} with w = {1,2}: mean square 12.5 */
    {
        float x[2] = {3, 4}, w[2] = {1, 2}, out[2];
        rmsnorm_ref(out, x, w, 1, 2, 0.0f);
        CHECK_CLOSE(out[0], 3.0 / sqrt(12.5), 1e-6, 0, "rmsnorm {3,4}[0]");
        CHECK_CLOSE(out[1], 8.0 / sqrt(12.5), 1e-6, 0, "rmsnorm {3,4}[1]");
        rmsnorm_ref(out, x, w, 1, 2, 1e-5f);
        CHECK_CLOSE(out[0], 3.0 / sqrt(12.5 + 1e-5), 1e-6, 0, "rmsnorm eps [0]");
        CHECK_CLOSE(out[1], 8.0 / sqrt(12.5 + 1e-5), 1e-6, 0, "rmsnorm eps [1]");
        /* two rows are normalised independently */
        float x2[4] = {3, 4, 0.5f, -0.5f}, o2[4];
        rmsnorm_ref(o2, x2, w, 2, 2, 0.0f);
        CHECK_CLOSE(o2[2], 1.0, 1e-6, 0, "rmsnorm row 2 [0]");
        CHECK_CLOSE(o2[3], -2.0, 1e-6, 0, "rmsnorm row 2 [1]");
    }
    /* rope: D = 8 (two heads of hs 4), KV = 4 (one kv head) */
    {
        float q[8], k[4], q0[8], k0[4];
        for (int i = 0; i < 8; i++) q0[i] = (float)(0.25 * (i + 1) * (i % 2 ? -1 : 1));
        for (int i = 0; i < 4; i++) k0[i] = (float)(0.5 - 0.3 * i);
        memcpy(q, q0, sizeof q);
        memcpy(k, k0, sizeof k);
        rope_ref(q, k, 1, 8, 4, 4, 0, 10000.0f);
        int same = 1;
        for (int i = 0; i < 8; i++) same &= q[i] == q0[i];
        for (int i = 0; i < 4; i++) same &= k[i] == k0[i];
        CHECK(same, "rope at position 0 is not the identity");
        /* position 1: pair 0 of every head turns by exactly 1 radian, pair 1 by 10000^-0.5 */
        float qa[8] = {1, 0, 1, 0, 0, 1, 0, 2}, ka[4] = {1, 0, 0, 1};
        rope_ref(qa, ka, 1, 8, 4, 4, 1, 10000.0f);
        CHECK_CLOSE(qa[0], cos(1.0), 1e-6, 1e-7, "rope pos1 q pair0 x");
        CHECK_CLOSE(qa[1], sin(1.0), 1e-6, 1e-7, "rope pos1 q pair0 y");
        CHECK_CLOSE(qa[2], cos(0.01), 1e-6, 1e-7, "rope pos1 q pair1 x");
        CHECK_CLOSE(qa[3], sin(0.01), 1e-6, 1e-7, "rope pos1 q pair1 y");
        CHECK_CLOSE(qa[4], -sin(1.0), 1e-6, 1e-7, "rope pos1 head1 pair0 x");
        CHECK_CLOSE(qa[5], cos(1.0), 1e-6, 1e-7, "rope pos1 head1 pair0 y");
        CHECK_CLOSE(qa[6], -2 * sin(0.01), 1e-5, 1e-7, "rope pos1 head1 pair1 x");
        CHECK_CLOSE(qa[7], 2 * cos(0.01), 1e-6, 1e-7, "rope pos1 head1 pair1 y");
        CHECK_CLOSE(ka[0], cos(1.0), 1e-6, 1e-7, "rope pos1 k pair0 x");
        CHECK_CLOSE(ka[1], sin(1.0), 1e-6, 1e-7, "rope pos1 k pair0 y");
        CHECK_CLOSE(ka[2], -sin(0.01), 1e-5, 1e-7, "rope pos1 k pair1 x");
        CHECK_CLOSE(ka[3], cos(0.01), 1e-6, 1e-7, "rope pos1 k pair1 y");
        /* T = 2 rows from pos0 = 3: row t turns pair 0 by (3 + t) radians */
        float qb[16] = {0}, kb[8] = {0};
        qb[0] = 1;
        qb[8] = 1;
        kb[0] = 1;
        kb[4] = 1;
        rope_ref(qb, kb, 2, 8, 4, 4, 3, 10000.0f);
        CHECK_CLOSE(qb[1], sin(3.0), 1e-6, 1e-6, "rope pos 3 row 0");
        CHECK_CLOSE(qb[9], sin(4.0), 1e-6, 1e-6, "rope pos 4 row 1");
        CHECK_CLOSE(kb[5], sin(4.0), 1e-6, 1e-6, "rope k pos 4 row 1");
        /* a rotation keeps each pair's length */
        float qc[8], kc[4];
        memcpy(qc, q0, sizeof qc);
        memcpy(kc, k0, sizeof kc);
        rope_ref(qc, kc, 1, 8, 4, 4, 17, 10000.0f);
        for (int i = 0; i < 8; i += 2)
            CHECK_CLOSE(hypot(qc[i], qc[i + 1]), hypot(q0[i], q0[i + 1]), 1e-6, 0, "rope keeps pair length");
    }
    /* softmax {0, ln 3} = {1/4, 3/4}; a constant row is uniform */
    {
        float s[2] = {0.0f, (float)log(3.0)};
        softmax_inplace(s, 2);
        CHECK_CLOSE(s[0], 0.25, 1e-6, 0, "softmax {0, ln3}[0]");
        CHECK_CLOSE(s[1], 0.75, 1e-6, 0, "softmax {0, ln3}[1]");
        float t[2] = {0.0f, (float)log(3.0)};
        softmax_simd(t, 2);
        CHECK_CLOSE(t[0], 0.25, 1e-6, 0, "softmax_simd {0, ln3}[0]");
        CHECK_CLOSE(t[1], 0.75, 1e-6, 0, "softmax_simd {0, ln3}[1]");
        float u[5] = {-7, -7, -7, -7, -7};
        softmax_simd(u, 5);
        for (int i = 0; i < 5; i++) CHECK_CLOSE(u[i], 0.2, 1e-6, 0, "softmax_simd constant row");
        float one[1] = {123.0f};
        softmax_simd(one, 1);
        CHECK(one[0] == 1.0f, "softmax_simd of one entry = %g", one[0]);
        /* shift invariance with large entries (overflow without the max shift) */
        float big[2] = {1000.0f, 1000.0f + (float)log(3.0)};
        softmax_inplace(big, 2);
        CHECK_CLOSE(big[1], 0.75, 1e-4, 0, "softmax of large entries");
    }
    /* nll: uniform logits give log V whatever the target; {0, ln3} target 1 -> -log 0.75 */
    {
        enum { V = 37 };
        float l[2 * V];
        for (int i = 0; i < 2 * V; i++) l[i] = i < V ? 2.5f : -40.0f;
        int tg[2] = {0, 36};
        double nll[2];
        nll_ref(nll, l, tg, 2, V);
        CHECK_CLOSE(nll[0], log((double)V), 1e-12, 0, "nll uniform row 0");
        CHECK_CLOSE(nll[1], log((double)V), 1e-12, 0, "nll uniform row 1");
        float l2[2] = {0.0f, (float)log(3.0)};
        int t1 = 1, t0 = 0;
        nll_ref(nll, l2, &t1, 1, 2);
        CHECK_CLOSE(nll[0], -log(0.75), 1e-6, 0, "nll {0,ln3} target 1");
        nll_ref(nll, l2, &t0, 1, 2);
        CHECK_CLOSE(nll[0], -log(0.25), 1e-6, 0, "nll {0,ln3} target 0");
    }
    /* swiglu: silu(0) * anything = 0; swiglu(x, 1) = x * sigmoid(x) */
    {
        float hb[6] = {0, 0, 1, -2, 3.5f, -0.25f}, hb2[6] = {5, -3, 1, 1, 1, 1};
        swiglu_ref(hb, hb2, 2, 3);
        CHECK(hb[0] == 0.0f && hb[1] == 0.0f, "swiglu(0, .) = %g %g", hb[0], hb[1]);
        double xs[4] = {1, -2, 3.5, -0.25};
        for (int i = 0; i < 4; i++)
            CHECK_CLOSE(hb[2 + i], xs[i] / (1.0 + exp(-xs[i])), 1e-6, 0, "swiglu(x, 1) = x sigmoid(x)");
        float g[1] = {2}, u[1] = {-1.5f};
        swiglu_ref(g, u, 1, 1);
        CHECK_CLOSE(g[0], -1.5 * 2 / (1 + exp(-2.0)), 1e-6, 0, "swiglu(2, -1.5)");
    }
    /* attention: T = 2, two query heads sharing one kv head (GQA), hs = 2 */
    {
        float q[8] = {1, 0, 0, 1, /* t=1 */ 2, 1, -1, 3};
        float k[4] = {0.5f, -1, /* t=1 */ 1, 2};
        float v[4] = {3, 4, /* t=1 */ -1, 7};
        float out[8];
        attention_ref(out, q, k, v, 2, 2, 1, 2);
        /* position 0 sees only itself: out = v0 for both heads */
        CHECK(out[0] == 3 && out[1] == 4 && out[2] == 3 && out[3] == 4, "attention t=0 = v0: %g %g %g %g", out[0],
              out[1], out[2], out[3]);
        for (int h = 0; h < 2; h++) {
            double s0 = (q[4 + 2 * h] * 0.5 + q[5 + 2 * h] * -1.0) / sqrt(2.0);
            double s1 = (q[4 + 2 * h] * 1.0 + q[5 + 2 * h] * 2.0) / sqrt(2.0);
            double p1 = 1.0 / (1.0 + exp(s0 - s1)), p0 = 1 - p1;
            CHECK_CLOSE(out[4 + 2 * h], p0 * 3 + p1 * -1, 1e-6, 1e-6, "attention t=1 dim 0");
            CHECK_CLOSE(out[5 + 2 * h], p0 * 4 + p1 * 7, 1e-6, 1e-6, "attention t=1 dim 1");
        }
    }
}

/* attention_ref on random q, k, v against a double causal GQA attention:
 * H 6 query heads over Hkv 2 kv heads (head h reads kv head h / 3), hs 6, T 13 */
static void test_attention_ref(void) {
    enum { T = 13, H = 6, HKV = 2, HS = 6, D = H * HS, KV = HKV * HS };
    float q[T * D], k[T * KV], v[T * KV], out[T * D];
    for (int i = 0; i < T * D; i++) q[i] = (float)(2 * rng_unif() - 1);
    for (int i = 0; i < T * KV; i++) k[i] = (float)(2 * rng_unif() - 1), v[i] = (float)(2 * rng_unif() - 1);
    attention_ref(out, q, k, v, T, H, HKV, HS);
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            int kh = h / (H / HKV);
            double sc[T], mx = -INFINITY, sum = 0;
            for (int s = 0; s <= t; s++) {
                double d = 0;
                for (int i = 0; i < HS; i++) d += (double)q[t * D + h * HS + i] * k[s * KV + kh * HS + i];
                sc[s] = d / sqrt((double)HS);
                mx = sc[s] > mx ? sc[s] : mx;
            }
            for (int s = 0; s <= t; s++) sum += sc[s] = exp(sc[s] - mx);
            for (int i = 0; i < HS; i++) {
                double o = 0;
                for (int s = 0; s <= t; s++) o += sc[s] / sum * v[s * KV + kh * HS + i];
                bad += !(fabs(out[t * D + h * HS + i] - o) <= 1e-5 * (fabs(o) + 0.1));
            }
        }
    CHECK(bad == 0, "attention_ref (H 6, Hkv 2): %d outputs off the double reference", bad);
}

/* ---- 2. softmax_simd ----------------------------------------------------------- */

static void test_softmax_simd(void) {
    /* Three criteria per row, entries far below the max (e^-87 and less,
     * which the polynomial exp clamps at 2^-126 scale instead of
     * underflowing) excused by 1e-36 absolute:
     * (a) shape, independent of the normalisation: p_i / p_max against the
     *     exact exp of the float difference x_i - max, to 5e-7 relative
     *     (a few ulp of exp and one division);
     * (b) normalisation: sum p_i = 1 to 1e-6 * max(1, sqrt(n / 64));
     * (c) softmax_simd vs softmax_inplace entry by entry to 1e-6 relative for
     *     n <= 512, and 1e-6 * n / 512 beyond: both divide by a fp32 sum whose
     *     rounding grows with n (softmax_inplace's sequential one reaches
     *     ~1.5e-6 at n = 2048). */
    int lens[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 129, 255, 257, 511, 513, 1000, 2048};
    double worst_pair = 0, worst_ratio = 0, worst_sum = 0;
    int bad_pair = 0, bad_ratio = 0, bad_sum = 0;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int n = lens[li];
        double tol_pair = 1e-6 * (n > 512 ? n / 512.0 : 1.0), tol_sum = 1e-6 * (n > 64 ? sqrt(n / 64.0) : 1.0);
        for (int kind = 0; kind < 4; kind++) {
            float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
            for (int i = 0; i < n; i++) {
                double u = rng_unif();
                switch (kind) {
                case 0: a[i] = (float)(4 * u - 2); break;                             /* typical scores */
                case 1: a[i] = (float)(40 * u - 20); break;                           /* peaked */
                case 2: a[i] = (float)(i % 3 == 0 ? -1e4 * u - 90 : 3 * u); break;    /* very negative entries */
                default: a[i] = (float)(i == n / 2 ? 0.0 : -80 - 30 * u); break;     /* one survivor */
                }
            }
            memcpy(b, a, sizeof(float) * n);
            memcpy(x, a, sizeof(float) * n);
            int im = 0;
            for (int i = 1; i < n; i++) im = x[i] > x[im] ? i : im;
            softmax_simd(a, n);
            softmax_inplace(b, n);
            double total = 0;
            for (int i = 0; i < n; i++) {
                total += a[i];
                double ratio = exp((double)(x[i] - x[im])); /* x[i] - max is what both compute */
                double got = (double)a[i] / a[im], dr = fabs(got - ratio) * a[im];
                if (dr > 1e-36 && fabs(got - ratio) / ratio > worst_ratio) worst_ratio = fabs(got - ratio) / ratio;
                if (!(dr <= 5e-7 * ratio * a[im] + 1e-36) || !(a[i] >= 0)) {
                    if (bad_ratio++ < 5)
                        fprintf(stderr, "softmax_simd n=%d kind %d i=%d: p_i/p_max %.9g, exp %.9g\n", n, kind, i, got,
                                ratio);
                }
                double dp = fabs(a[i] - (double)b[i]);
                if (dp > 1e-36 && dp / b[i] > worst_pair) worst_pair = dp / b[i];
                if (!(dp <= tol_pair * b[i] + 1e-36)) {
                    if (bad_pair++ < 5)
                        fprintf(stderr, "softmax n=%d kind %d i=%d: simd %.9g inplace %.9g\n", n, kind, i, a[i], b[i]);
                }
            }
            if (fabs(total - 1) > worst_sum) worst_sum = fabs(total - 1);
            bad_sum += !(fabs(total - 1) <= tol_sum);
            free(a);
            free(b);
            free(x);
        }
    }
    CHECK(bad_ratio == 0, "softmax_simd: %d entries with p_i/p_max off exp(x_i - max) by > 5e-7 (worst %.3g)", bad_ratio,
          worst_ratio);
    CHECK(bad_sum == 0, "softmax_simd: %d rows whose sum is off 1 (worst %.3g)", bad_sum, worst_sum);
    CHECK(bad_pair == 0, "softmax_simd: %d entries off softmax_inplace (worst %.3g)", bad_pair, worst_pair);
    printf("softmax_simd: worst relative difference %.3g vs softmax_inplace, %.3g in p_i/p_max, %.3g in the sum\n",
           worst_pair, worst_ratio, worst_sum);

    /* The polynomial exp itself: for x < -17, 1 + e^x rounds to 1 in float, so
     * softmax_simd({0, x})[1] is exactly expf_poly(x). Every float x in
     * [-87, -17] (19.3 M of them, ~1 s): compared with expf bit patterns.
     * forward_math.h documents "within 2 ulp of expf"; the measured worst is
     * 3 ulp (1155 values beyond 2), so 3 is asserted and the count printed. */
    int worst_ulp = 0;
    long over2 = 0, row0_bad = 0;
    float worst_x = 0;
    for (float x = -87.0f; x <= -17.0f; x = nextafterf(x, 0.0f)) {
        float r[2] = {0.0f, x};
        softmax_simd(r, 2);
        row0_bad += r[0] != 1.0f;
        float e = expf(x);
        int32_t ia, ib;
        memcpy(&ia, &r[1], 4);
        memcpy(&ib, &e, 4);
        int d = ia > ib ? ia - ib : ib - ia;
        if (d > worst_ulp) {
            worst_ulp = d;
            worst_x = x;
        }
        over2 += d > 2;
    }
    CHECK(row0_bad == 0, "softmax_simd({0, x})[0] != 1 for %ld x", row0_bad);
    CHECK(worst_ulp <= 3, "polynomial exp: %d ulp from expf at x = %.9g", worst_ulp, worst_x);
    printf("softmax_simd exp: worst %d ulp from expf over [-87, -17] (at %.9g), %ld values beyond 2 ulp\n",
           worst_ulp, worst_x, over2);
    /* far below: tiny but finite and non-negative (clamped), never NaN */
    float r[3] = {0.0f, -200.0f, -1e30f};
    softmax_simd(r, 3);
    CHECK(r[0] == 1.0f && r[1] >= 0 && r[1] < 2e-38f && r[2] >= 0 && r[2] < 2e-38f,
          "softmax_simd with very negative entries: %g %g %g", r[0], r[1], r[2]);
}

/* ---- 3. naive forward pass, position by position with a KV cache ------------- */

typedef struct {
    const Model *m;
    double *kc, *vc; /* (L, S, KV) caches */
    /* trace of the last step (optional uses): per layer */
    double *x_in;    /* (L+1, S, D): input of layer l at each position; row L = final residual */
    double *xb_att;  /* (L, S, D) rmsnorm before attention */
    double *att;     /* (L, S, D) attention output (input of wo) */
    double *xb_ffn;  /* (L, S, D) rmsnorm before the FFN */
    double *hb;      /* (L, S, F) swiglu output (input of w2) */
} Naive;

static void naive_init(Naive *n, const Model *m) {
    const ModelConfig *c = &m->cfg;
    size_t L = c->n_layers, S = c->seq_len, D = c->dim, KV = model_kv_dim(c), F = c->hidden_dim;
    n->m = m;
    n->kc = calloc(L * S * KV, sizeof(double));
    n->vc = calloc(L * S * KV, sizeof(double));
    n->x_in = calloc((L + 1) * S * D, sizeof(double));
    n->xb_att = calloc(L * S * D, sizeof(double));
    n->att = calloc(L * S * D, sizeof(double));
    n->xb_ffn = calloc(L * S * D, sizeof(double));
    n->hb = calloc(L * S * F, sizeof(double));
}
static void naive_free(Naive *n) {
    free(n->kc);
    free(n->vc);
    free(n->x_in);
    free(n->xb_att);
    free(n->att);
    free(n->xb_ffn);
    free(n->hb);
}

static void d_rmsnorm(double *o, const double *x, const float *w, int D, double eps) {
    double ss = 0;
    for (int j = 0; j < D; j++) ss += x[j] * x[j];
    double s = 1.0 / sqrt(ss / D + eps);
    for (int j = 0; j < D; j++) o[j] = w[j] * x[j] * s;
}
static void d_matvec(double *y, const float *W, const double *x, int out, int in) {
    for (int i = 0; i < out; i++) {
        double a = 0;
        for (int j = 0; j < in; j++) a += (double)W[(size_t)i * in + j] * x[j];
        y[i] = a;
    }
}

/* run.c forward(): token at pos; logits (V) out */
static void naive_step(Naive *n, int token, int pos, double *logits) {
    const Model *m = n->m;
    const ModelConfig *c = &m->cfg;
    int D = c->dim, F = c->hidden_dim, L = c->n_layers, H = c->n_heads, S = c->seq_len;
    int hs = D / H, KV = model_kv_dim(c), rep = H / c->n_kv_heads;
    double *x = malloc(sizeof(double) * D), *xb = malloc(sizeof(double) * D), *q = malloc(sizeof(double) * D);
    double *ao = malloc(sizeof(double) * D), *tmp = malloc(sizeof(double) * D);
    double *h1 = malloc(sizeof(double) * F), *h3 = malloc(sizeof(double) * F), *att = malloc(sizeof(double) * (pos + 1));
    for (int j = 0; j < D; j++) x[j] = m->w.tok_emb[(size_t)token * D + j];
    for (int l = 0; l < L; l++) {
        const BlockWeights *b = &m->w.blocks[l];
        memcpy(n->x_in + ((size_t)l * S + pos) * D, x, sizeof(double) * D);
        d_rmsnorm(xb, x, b->rms_att, D, c->norm_eps);
        memcpy(n->xb_att + ((size_t)l * S + pos) * D, xb, sizeof(double) * D);
        double *kr = n->kc + ((size_t)l * S + pos) * KV, *vr = n->vc + ((size_t)l * S + pos) * KV;
        d_matvec(q, b->lin[LIN_Q], xb, D, D);
        d_matvec(kr, b->lin[LIN_K], xb, KV, D);
        d_matvec(vr, b->lin[LIN_V], xb, KV, D);
        if (c->qkv_bias) /* Qwen2: y = W x + b, before the rotation */
            for (int i = 0; i < D; i++) {
                q[i] += b->bias[LIN_Q][i];
                if (i < KV) kr[i] += b->bias[LIN_K][i], vr[i] += b->bias[LIN_V][i];
            }
        /* RoPE, run.c convention: pair (i, i+1), frequency theta^(-(i mod hs)/hs) */
        for (int i = 0; i < D; i += 2) {
            double fr = pow((double)c->rope_theta, -(double)(i % hs) / hs), ang = pos * fr;
            double cr = cos(ang), ci = sin(ang);
            double a0 = q[i], a1 = q[i + 1];
            q[i] = a0 * cr - a1 * ci;
            q[i + 1] = a0 * ci + a1 * cr;
            if (i < KV) {
                a0 = kr[i];
                a1 = kr[i + 1];
                kr[i] = a0 * cr - a1 * ci;
                kr[i + 1] = a0 * ci + a1 * cr;
            }
        }
        for (int h = 0; h < H; h++) {
            int kh = h / rep;
            double mx = -INFINITY, sum = 0;
            for (int t = 0; t <= pos; t++) {
                const double *kt = n->kc + ((size_t)l * S + t) * KV + kh * hs;
                double d = 0;
                for (int i = 0; i < hs; i++) d += q[h * hs + i] * kt[i];
                att[t] = d / sqrt((double)hs);
                mx = att[t] > mx ? att[t] : mx;
            }
            for (int t = 0; t <= pos; t++) sum += att[t] = exp(att[t] - mx);
            for (int i = 0; i < hs; i++) {
                double o = 0;
                for (int t = 0; t <= pos; t++) o += att[t] / sum * n->vc[((size_t)l * S + t) * KV + kh * hs + i];
                ao[h * hs + i] = o;
            }
        }
        memcpy(n->att + ((size_t)l * S + pos) * D, ao, sizeof(double) * D);
        d_matvec(tmp, b->lin[LIN_O], ao, D, D);
        for (int j = 0; j < D; j++) x[j] += tmp[j];
        d_rmsnorm(xb, x, b->rms_ffn, D, c->norm_eps);
        memcpy(n->xb_ffn + ((size_t)l * S + pos) * D, xb, sizeof(double) * D);
        d_matvec(h1, b->lin[LIN_GATE], xb, F, D);
        d_matvec(h3, b->lin[LIN_UP], xb, F, D);
        for (int i = 0; i < F; i++) h1[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
        memcpy(n->hb + ((size_t)l * S + pos) * F, h1, sizeof(double) * F);
        d_matvec(tmp, b->lin[LIN_DOWN], h1, D, F);
        for (int j = 0; j < D; j++) x[j] += tmp[j];
    }
    memcpy(n->x_in + ((size_t)L * S + pos) * D, x, sizeof(double) * D);
    d_rmsnorm(xb, x, m->w.rms_final, D, c->norm_eps);
    d_matvec(logits, m->w.wcls, xb, c->vocab_size, D);
    free(x); free(xb); free(q); free(ao); free(tmp); free(h1); free(h3); free(att);
}

/* Naive window: nll (T-1) and logits of every position (T, V) */
static void naive_window(Naive *n, const int *tok, int T, double *nll, double *logits) {
    int V = n->m->cfg.vocab_size;
    for (int t = 0; t < T; t++) {
        double *lg = logits + (size_t)t * V;
        naive_step(n, tok[t], t, lg);
        if (t + 1 < T) {
            double mx = lg[0], s = 0;
            for (int i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
            for (int i = 0; i < V; i++) s += exp(lg[i] - mx);
            nll[t] = mx + log(s) - lg[tok[t + 1]];
        }
    }
}

static double row_scale(const double *r, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s = fabs(r[i]) > s ? fabs(r[i]) : s;
    return s;
}

/* compare float row against a double row: |a-b| <= rtol * max(|b|, scale) */
static int close_rows(const float *a, const double *b, int n, double rtol, double scale, double *worst) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]), lim = fabs(b[i]) > scale ? fabs(b[i]) : scale;
        if (d / lim > *worst) *worst = d / lim;
        if (!(d <= rtol * lim)) bad++;
    }
    return bad;
}

/* NLLs got (n) against the double reference want: how many differ by more than
 * rtol relative; *worst <- the largest relative difference. */
static int nll_beyond(const double *got, const double *want, int n, double rtol, double *worst) {
    int bad = 0;
    *worst = 0;
    for (int t = 0; t < n; t++) {
        double d = fabs(got[t] - want[t]) / fabs(want[t]);
        *worst = d > *worst ? d : *worst;
        bad += !(d <= rtol);
    }
    return bad;
}

/* hook recorder */
typedef struct {
    const ModelConfig *c;
    int calls, order_bad, T_bad;
    int seq[64];
    int T_expect;
    float *X[LIN_COUNT]; /* copies of the last block's inputs (T, in) */
} HookRec;

static void hook_fn(void *user, int layer, LinearKind k, const float *X, int T) {
    HookRec *h = user;
    int o, in;
    model_linear_shape(h->c, k, &o, &in);
    if (h->calls < 64) h->seq[h->calls] = layer * LIN_COUNT + (int)k;
    h->calls++;
    if (T != h->T_expect) h->T_bad++;
    free(h->X[k]);
    h->X[k] = malloc(sizeof(float) * (size_t)T * in);
    memcpy(h->X[k], X, sizeof(float) * (size_t)T * in); /* reads exactly (T, in) */
}

static const double RTOL = 1e-5;

static void test_model_against_naive(const ModelConfig *cfg, uint64_t seed, const char *label) {
    Model m;
    int rc = model_synth(&m, cfg, seed);
    CHECK(rc == 0, "%s: model_synth failed", label);
    if (rc) return;
    const ModelConfig *c = &m.cfg;
    int D = c->dim, V = c->vocab_size, S = c->seq_len, L = c->n_layers, F = c->hidden_dim;
    Forward *f = NULL;
    CHECK(forward_cpu_create(&m, S, &f) == 0, "%s: forward_cpu_create", label);
    if (!f) return;
    CHECK(!strcmp(f->ops->name, "cpu"), "%s: backend name %s", label, f->ops->name);
    int *tok = malloc(sizeof(int) * S);
    for (int t = 0; t < S; t++) tok[t] = rng_int(V);
    tok[0] = 1;

    Naive nv;
    naive_init(&nv, &m);
    double *nll_ref = malloc(sizeof(double) * S), *lg_ref = malloc(sizeof(double) * (size_t)S * V);
    naive_window(&nv, tok, S, nll_ref, lg_ref);

    /* window_nll over the full seq_len and over a shorter odd window */
    int Ts[2] = {S, 17};
    for (int ti = 0; ti < 2; ti++) {
        int T = Ts[ti];
        double *nll = malloc(sizeof(double) * T);
        rc = f->ops->window_nll(f, tok, T, nll);
        CHECK(rc == 0, "%s: window_nll T=%d", label, T);
        double worst;
        /* the naive NLLs of a prefix are those of the full run: causal */
        int bad = nll_beyond(nll, nll_ref, T - 1, RTOL, &worst);
        CHECK(bad == 0, "%s: window_nll T=%d: %d of %d NLLs beyond %g relative (worst %.3g)", label, T, bad, T - 1,
              RTOL, worst);
        printf("%s: window_nll T=%d worst relative difference %.3g\n", label, T, worst);
        free(nll);
    }
    /* sanity: the model is not degenerate, NLLs differ between positions */
    CHECK(fabs(nll_ref[3] - nll_ref[4]) > 1e-3, "%s: reference NLLs suspiciously equal", label);

    /* last_logits at several lengths */
    float *lg = malloc(sizeof(float) * V);
    int Tl[3] = {1, 23, S};
    for (int i = 0; i < 3; i++) {
        int T = Tl[i];
        rc = f->ops->last_logits(f, tok, T, lg);
        CHECK(rc == 0, "%s: last_logits T=%d", label, T);
        const double *ref = lg_ref + (size_t)(T - 1) * V;
        double worst = 0;
        int bad = close_rows(lg, ref, V, RTOL, row_scale(ref, V), &worst);
        CHECK(bad == 0, "%s: last_logits T=%d: %d of %d logits beyond %g (worst %.3g)", label, T, bad, V, RTOL, worst);
        printf("%s: last_logits T=%d worst relative difference %.3g\n", label, T, worst);
    }

    /* embed, then block by block, against the naive residual stream */
    {
        int T = S;
        float *x = malloc(sizeof(float) * (size_t)T * D);
        CHECK(f->ops->embed(f, tok, T, x) == 0, "%s: embed", label);
        int exact = 1;
        for (int t = 0; t < T; t++)
            exact &= !memcmp(x + (size_t)t * D, m.w.tok_emb + (size_t)tok[t] * D, sizeof(float) * D);
        CHECK(exact, "%s: embed rows are not the embedding rows", label);
        HookRec hr = {.c = c, .T_expect = T};
        for (int l = 0; l < L; l++) {
            float *xin = malloc(sizeof(float) * (size_t)T * D);
            memcpy(xin, x, sizeof(float) * (size_t)T * D);
            int calls0 = hr.calls;
            rc = f->ops->block(f, l, x, T, hook_fn, &hr);
            CHECK(rc == 0, "%s: block %d", label, l);
            CHECK(hr.calls - calls0 == LIN_COUNT, "%s: block %d: hook called %d times, expected 7", label, l,
                  hr.calls - calls0);
            double worst = 0;
            int bad = 0;
            for (int t = 0; t < T; t++) {
                const double *ref = nv.x_in + ((size_t)(l + 1) * S + t) * D;
                bad += close_rows(x + (size_t)t * D, ref, D, RTOL, row_scale(ref, D), &worst);
            }
            CHECK(bad == 0, "%s: residual after block %d: %d values beyond %g (worst %.3g)", label, l, bad, RTOL, worst);

            /* hook inputs of this block */
            /* q, k, v: rmsnorm(block input) of the exact float input, to 1e-6 */
            double *xn = malloc(sizeof(double) * D), *xd = malloc(sizeof(double) * D);
            int qkv_bad = 0;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < D; j++) xd[j] = xin[(size_t)t * D + j];
                d_rmsnorm(xn, xd, m.w.blocks[l].rms_att, D, c->norm_eps);
                for (int k = LIN_Q; k <= LIN_V; k++)
                    for (int j = 0; j < D; j++)
                        qkv_bad += !(fabs(hr.X[k][(size_t)t * D + j] - xn[j]) <= 1e-6 * (fabs(xn[j]) + 1e-3));
            }
            CHECK(qkv_bad == 0, "%s: block %d: %d q/k/v hook inputs differ from rmsnorm(x)", label, l, qkv_bad);
            /* o input = attention output, gate/up = ffn norm, down = swiglu (F wide): against the naive trace */
            double w_o = 0, w_g = 0, w_d = 0;
            int b_o = 0, b_g = 0, b_d = 0;
            for (int t = 0; t < T; t++) {
                const double *ro = nv.att + ((size_t)l * S + t) * D, *rg = nv.xb_ffn + ((size_t)l * S + t) * D;
                const double *rd = nv.hb + ((size_t)l * S + t) * F;
                b_o += close_rows(hr.X[LIN_O] + (size_t)t * D, ro, D, RTOL, row_scale(ro, D), &w_o);
                b_g += close_rows(hr.X[LIN_GATE] + (size_t)t * D, rg, D, RTOL, row_scale(rg, D), &w_g);
                b_g += close_rows(hr.X[LIN_UP] + (size_t)t * D, rg, D, RTOL, row_scale(rg, D), &w_g);
                b_d += close_rows(hr.X[LIN_DOWN] + (size_t)t * F, rd, F, RTOL, row_scale(rd, F), &w_d);
            }
            CHECK(b_o == 0, "%s: block %d: wo hook input off attention output (worst %.3g)", label, l, w_o);
            CHECK(b_g == 0, "%s: block %d: w1/w3 hook input off rmsnorm (worst %.3g)", label, l, w_g);
            CHECK(b_d == 0, "%s: block %d: w2 hook input off swiglu (worst %.3g)", label, l, w_d);
            /* widths: x_out = x_in + Wo X_o (D wide) + W2 X_down (F wide), from the hook's own data */
            double *a = malloc(sizeof(double) * F), *y = malloc(sizeof(double) * D), *z = malloc(sizeof(double) * D);
            double worst_id = 0;
            int bad_id = 0;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < D; j++) a[j] = hr.X[LIN_O][(size_t)t * D + j];
                d_matvec(y, m.w.blocks[l].lin[LIN_O], a, D, D);
                for (int j = 0; j < F; j++) a[j] = hr.X[LIN_DOWN][(size_t)t * F + j];
                d_matvec(z, m.w.blocks[l].lin[LIN_DOWN], a, D, F);
                double ref[512];
                for (int j = 0; j < D; j++) ref[j] = xin[(size_t)t * D + j] + y[j] + z[j];
                bad_id += close_rows(x + (size_t)t * D, ref, D, 1e-6, row_scale(ref, D), &worst_id);
            }
            CHECK(bad_id == 0, "%s: block %d: x_out != x_in + Wo X_o + W2 X_down (worst %.3g)", label, l, worst_id);
            free(a); free(y); free(z); free(xn); free(xd); free(xin);
        }
        /* 7 calls per block, in the reference order, layer after layer */
        int order_ok = hr.calls == L * LIN_COUNT && hr.T_bad == 0;
        for (int i = 0; order_ok && i < hr.calls && i < 64; i++) order_ok = hr.seq[i] == i;
        CHECK(order_ok, "%s: hook order/count wrong: %d calls, %d with a wrong T", label, hr.calls, hr.T_bad);
        for (int k = 0; k < LIN_COUNT; k++) free(hr.X[k]);

        /* head_nll on the backend's own final residual */
        double *nll = malloc(sizeof(double) * T);
        CHECK(f->ops->head_nll(f, x, tok, T, nll) == 0, "%s: head_nll", label);
        double worst;
        int bad = nll_beyond(nll, nll_ref, T - 1, RTOL, &worst);
        CHECK(bad == 0, "%s: head_nll: %d NLLs beyond %g (worst %.3g)", label, bad, RTOL, worst);
        /* head_nll on the naive residual (as float) is within fp32 rounding too */
        for (int i = 0; i < T * D; i++) x[i] = (float)nv.x_in[(size_t)L * S * D + i];
        CHECK(f->ops->head_nll(f, x, tok, T, nll) == 0, "%s: head_nll", label);
        bad = 0;
        for (int t = 0; t < T - 1; t++) bad += !(fabs(nll[t] - nll_ref[t]) <= 1e-6 * fabs(nll_ref[t]));
        CHECK(bad == 0, "%s: head_nll on the reference residual: %d NLLs beyond 1e-6", label, bad);
        free(nll);
        free(x);
    }

    /* weights replaced after creation: the backend reads the new matrix */
    {
        int o, in;
        model_linear_shape(c, LIN_DOWN, &o, &in);
        float *W = malloc(sizeof(float) * (size_t)o * in);
        for (int i = 0; i < o * in; i++) W[i] = (float)((rng_unif() - 0.5) * 0.6);
        model_set_linear(&m, L - 1, LIN_DOWN, W);
        CHECK(f->ops->weights_changed(f, L - 1) == 0, "%s: weights_changed", label);
        int T = 19;
        double *nll = malloc(sizeof(double) * T), *nr = malloc(sizeof(double) * T);
        double *lgr = malloc(sizeof(double) * (size_t)T * V);
        CHECK(f->ops->window_nll(f, tok, T, nll) == 0, "%s: window_nll after set_linear", label);
        naive_window(&nv, tok, T, nr, lgr);
        int bad = 0, moved = 0;
        for (int t = 0; t < T - 1; t++) {
            bad += !(fabs(nll[t] - nr[t]) <= RTOL * fabs(nr[t]));
            moved += fabs(nr[t] - nll_ref[t]) > 1e-3;
        }
        CHECK(bad == 0, "%s: after model_set_linear: %d NLLs beyond %g", label, bad, RTOL);
        CHECK(moved > 0, "%s: replacing w2 did not change the reference NLLs", label);
        free(W); free(nll); free(nr); free(lgr);
    }

    /* errors: token outside the vocabulary, window longer than the scratch */
    {
        double *nll = malloc(sizeof(double) * (S + 1));
        int saved = tok[5];
        tok[5] = V;
        CHECK(f->ops->window_nll(f, tok, 10, nll) == -1, "%s: token id V accepted", label);
        tok[5] = -1;
        CHECK(f->ops->window_nll(f, tok, 10, nll) == -1, "%s: token id -1 accepted", label);
        tok[5] = saved;
        int *big = calloc((size_t)S + 1, sizeof(int));
        CHECK(f->ops->window_nll(f, big, S + 1, nll) == -1, "%s: window of max_T+1 accepted", label);
        float *xb = calloc((size_t)(S + 1) * D, sizeof(float));
        CHECK(f->ops->block(f, 0, xb, S + 1, NULL, NULL) == -1, "%s: block of max_T+1 accepted", label);
        free(xb);
        /* last_logits embeds into max_T-row scratch: longer windows must be refused,
         * not written past it (heap overflow before the fix in cpu_last_logits) */
        int *big2 = calloc((size_t)S + 8, sizeof(int));
        float *lg2 = malloc(sizeof(float) * V);
        CHECK(f->ops->last_logits(f, big2, S + 8, lg2) == -1, "%s: last_logits of max_T+8 accepted", label);
        CHECK(f->ops->last_logits(f, big2, 0, lg2) == -1, "%s: last_logits of 0 tokens accepted", label);
        float *xh = calloc((size_t)(S + 8) * D, sizeof(float));
        double *nh = malloc(sizeof(double) * (S + 8));
        CHECK(f->ops->head_nll(f, xh, big2, S + 8, nh) == -1, "%s: head_nll of max_T+8 accepted", label);
        free(xh);
        free(nh);
        free(big2);
        free(lg2);
        free(big);
        free(nll);
    }

    free(lg);
    free(nll_ref);
    free(lg_ref);
    free(tok);
    naive_free(&nv);
    forward_destroy(&f);
    CHECK(f == NULL, "forward_destroy nulls the pointer");
    model_free(&m);
}

/* ---- 5. FLOPs ------------------------------------------------------------------- */

static void test_flops(void) {
    /* D 8, F 12, L 1, H 2, Hkv 1 (hs 4, KV 4), V 10, T 3, by hand:
     * per token: wq 8*8 + wk 4*8 + wv 4*8 + wo 8*8 + w1,w3,w2 3*12*8 + head 10*8 = 560 MACs;
     * attention: position t has t+1 keys, each 4 MACs for the score and 4 for the value,
     * per head: (1+2+3) * 8 = 48 MACs, 2 heads: 96. Total 3*560 + 96 = 1776 MACs = 3552 flops. */
    ModelConfig c = {.dim = 8, .hidden_dim = 12, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .vocab_size = 10,
                     .seq_len = 16, .shared_classifier = 1};
    CHECK_CLOSE(forward_flops(&c, 3), 3552.0, 0, 0, "forward_flops(D8 F12 L1 H2/1 V10, T=3)");
    CHECK(model_linear_params(&c) == 64 + 32 + 32 + 64 + 3 * 96, "model_linear_params %lld",
          (long long)model_linear_params(&c));
    /* a second config by counting loops: L 3, D 12, F 20, H 3 (hs 4), Hkv 3, V 7, T 5 */
    ModelConfig d = {.dim = 12, .hidden_dim = 20, .n_layers = 3, .n_heads = 3, .n_kv_heads = 3, .vocab_size = 7,
                     .seq_len = 8, .shared_classifier = 0};
    double macs = 0;
    for (int t = 0; t < 5; t++) {
        for (int l = 0; l < 3; l++) {
            macs += 12 * 12 * 2 + 12 * 12 * 2 + 3 * 20 * 12; /* q,k,v,o; gate, up, down */
            for (int h = 0; h < 3; h++) macs += (t + 1) * 4 * 2;
        }
        macs += 7 * 12;
    }
    CHECK_CLOSE(forward_flops(&d, 5), 2 * macs, 0, 0, "forward_flops by loop count");
}

int main(void) {
    test_kernels_by_hand();
    test_attention_ref();
    test_softmax_simd();
    test_flops();

    /* GQA, shared classifier, odd sizes everywhere (hs = 6) */
    ModelConfig a = {.dim = 36, .hidden_dim = 97, .n_layers = 3, .n_heads = 6, .n_kv_heads = 2, .vocab_size = 71,
                     .seq_len = 40, .shared_classifier = 1};
    test_model_against_naive(&a, 7, "gqa-shared");
    /* n_kv_heads == n_heads, unshared classifier, hs = 10 */
    ModelConfig b = {.dim = 40, .hidden_dim = 53, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .vocab_size = 67,
                     .seq_len = 33, .shared_classifier = 0};
    test_model_against_naive(&b, 11, "mha-unshared");
    /* q/k/v biases (Qwen2), GQA, theta 1e6 as Qwen2 uses */
    ModelConfig qb = {.dim = 30, .hidden_dim = 41, .n_layers = 2, .n_heads = 5, .n_kv_heads = 1, .vocab_size = 59,
                      .seq_len = 36, .shared_classifier = 0, .rope_theta = 1e6f, .qkv_bias = 1};
    test_model_against_naive(&qb, 13, "qkv-bias");

    /* forward_create: cpu, and max_T < 2 rejected */
    {
        Model m;
        model_synth(&m, &a, 1);
        Forward *f = NULL;
        CHECK(forward_cpu_create(&m, 1, &f) == -1 && f == NULL, "max_T 1 accepted");
        CHECK(forward_create(QH_DEVICE_CPU, &m, 8, &f) == 0 && f && !strcmp(f->ops->name, "cpu"),
              "forward_create(cpu)");
        forward_destroy(&f);
        QhDevice dv;
        CHECK(qh_device_parse("cuda", &dv) == 0 && dv == QH_DEVICE_CUDA, "parse cuda");
        CHECK(qh_device_parse("gpu", &dv) == -1, "parse 'gpu' accepted");
        if (!qh_cuda_available()) {
            CHECK(forward_create(QH_DEVICE_CUDA, &m, 8, &f) == -1 && f == NULL, "cuda without a GPU accepted");
            CHECK(forward_create(QH_DEVICE_AUTO, &m, 8, &f) == 0 && !strcmp(f->ops->name, "cpu"),
                  "auto without a GPU is not cpu");
            forward_destroy(&f);
        } else {
            SKIP("a CUDA GPU is present: the no-GPU error path is not exercised");
        }
        model_free(&m);
    }
    return test_summary();
}
