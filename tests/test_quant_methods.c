/* test_quant_methods.c: whole-layer RTN, GPTQ and SpQR (SPEC 3-5) against
 * independent expectations: a textbook GPTQ written here in double (no
 * blocks), exact invariants between the methods (GPTQ with H = I == RTN,
 * SpQR without outliers and with unquantized statistics == GPTQ, blocksize
 * independence, decode == W_deq in both storage modes), W_deq is the
 * reference's written-back weights (the sweep's own) with fp32 values and
 * the fp16-decoded ones in the deployment mode (tests/reference_sweep.h), the
 * OBS identity of the proxy loss, ragged groups, dead columns, constant
 * groups, an indefinite H, and the expected ordering of proxy losses. The
 * building blocks are in test_quant_core.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "half.h"
#include "quant.h"
#include "util.h"

/* ---- random data ---------------------------------------------------------------- */
#include "quant_fixtures.h"
#include "reference_sweep.h"

static float *random_W(int m, int n, double sd) { /* (m, n) */
    float *W = qh_malloc(sizeof(float) * m * n);
    for (int i = 0; i < m * n; i++) W[i] = (float)(sd * nrand());
    return W;
}


static double *identity_H(int n) {
    double *H = qh_calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++) H[i * n + i] = 1;
    return H;
}

/* ---- textbook GPTQ in double (SPEC 4, identity order, no blocks) -------------------- */

/* lower Cholesky in place; 0 on success */
static int chol_lower(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0)) return -1;
        A[j * n + j] = sqrt(d);
        for (int i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / A[j * n + j];
        }
        for (int i = 0; i < j; i++) A[i * n + j] = 0;
    }
    return 0;
}

/* U (n, n) = upper Cholesky factor of (H + damp I, dead -> 1)^-1, all in double */
static void ref_U(const double *H, int n, double percdamp, double *U, int *dead) {
    double *A = qh_malloc(sizeof(double) * n * n), *Ainv = qh_calloc((size_t)n * n, sizeof(double));
    double mean = 0;
    for (int i = 0; i < n; i++) mean += H[i * n + i] / n;
    memcpy(A, H, sizeof(double) * n * n);
    for (int i = 0; i < n; i++) {
        dead[i] = H[i * n + i] == 0;
        A[i * n + i] += percdamp * mean;
        if (dead[i]) A[i * n + i] = 1;
    }
    if (chol_lower(A, n) != 0) abort();
    for (int c = 0; c < n; c++) { /* solve L L^T x = e_c */
        double *x = qh_calloc(n, sizeof(double));
        for (int i = 0; i < n; i++) {
            double s = i == c;
            for (int k = 0; k < i; k++) s -= A[i * n + k] * x[k];
            x[i] = s / A[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--) {
            double s = x[i];
            for (int k = i + 1; k < n; k++) s -= A[k * n + i] * x[k];
            x[i] = s / A[i * n + i];
        }
        for (int i = 0; i < n; i++) Ainv[i * n + c] = x[i];
        free(x);
    }
    if (chol_lower(Ainv, n) != 0) abort();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) U[i * n + j] = j >= i ? Ainv[j * n + i] : 0;
    free(A), free(Ainv);
}

/* min-max grid in double, SpQR rule (fractional zero), SPEC 2 */
static void ref_fit(double lo, double hi, int maxq, double *s, double *z) {
    if (lo == hi) lo = -1, hi = 1;
    *s = (hi - lo) / maxq;
    *z = -lo / *s;
}
static double ref_code(double x, double s, double z, int maxq) {
    double q = rint(x / s + z);
    return q < 0 ? 0 : (q > maxq ? maxq : q);
}

/* GPTQ as the paper writes it: for c = 0..n-1, fit the group at its start on
 * the current weights, quantize, err = (w - w_hat) / U[c][c], update every
 * later column at once. W (m, n) copied; codes, what (m, n); scale (m, ngroups). */
static double ref_gptq(const float *W0, int m, int n, const double *H, int wbits, int gs, double percdamp, int *codes,
                       double *what, double *scale, double *zero) {
    int maxq = (1 << wbits) - 1, ng = (n + gs - 1) / gs;
    double *W = qh_malloc(sizeof(double) * m * n), *U = qh_malloc(sizeof(double) * n * n);
    int *dead = qh_malloc(sizeof(int) * n);
    for (int i = 0; i < m * n; i++) W[i] = W0[i];
    ref_U(H, n, percdamp, U, dead);
    for (int c = 0; c < n; c++)
        if (dead[c])
            for (int r = 0; r < m; r++) W[r * n + c] = 0;
    double loss = 0;
    for (int c = 0; c < n; c++) {
        int gi = c / gs;
        if (c % gs == 0)
            for (int r = 0; r < m; r++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int k = c; k < c + gs && k < n; k++) {
                    lo = fmin(lo, W[r * n + k]);
                    hi = fmax(hi, W[r * n + k]);
                }
                ref_fit(lo, hi, maxq, &scale[r * ng + gi], &zero[r * ng + gi]);
            }
        for (int r = 0; r < m; r++) {
            double s = scale[r * ng + gi], z = zero[r * ng + gi], w = W[r * n + c];
            double q = ref_code(w, s, z, maxq), wh = s * (q - z), err = (w - wh) / U[c * n + c];
            codes[r * n + c] = (int)q;
            what[r * n + c] = wh;
            loss += err * err / 2;
            for (int j = c + 1; j < n; j++) W[r * n + j] -= err * U[c * n + j];
        }
    }
    free(W), free(U), free(dead);
    return loss;
}

/* compare quantize_layer_ref("gptq") with ref_gptq; returns codes that differ */
static int compare_with_textbook(const char *what_case, const float *W, int m, int n, const double *H, int wbits,
                                 int gs, int blocksize, double percdamp, int allow_flips) {
    int ng = (n + gs - 1) / gs;
    int *codes = qh_malloc(sizeof(int) * m * n);
    double *wh = qh_malloc(sizeof(double) * m * n), *sc = qh_malloc(sizeof(double) * m * ng),
           *ze = qh_malloc(sizeof(double) * m * ng);
    double loss = ref_gptq(W, m, n, H, wbits, gs, percdamp, codes, wh, sc, ze);
    QuantParams p;
    quant_params_default(&p, "gptq");
    p.wbits = wbits;
    p.groupsize = gs == n ? 0 : gs;
    p.blocksize = blocksize;
    p.percdamp = percdamp;
    QuantLayer q;
    float *deq = qh_malloc(sizeof(float) * m * n);
    CHECK(quantize_layer_ref("gptq", W, m, n, H, &p, &q, deq) == 0, "%s: gptq runs", what_case);
    int diff = 0, bad = 0;
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            int i = r * n + c, gi = c / gs;
            diff += q.codes[i] != codes[i];
            bad += abs(q.codes[i] - codes[i]) > 1;
            if (q.codes[i] != codes[i]) continue;
            /* fp16 statistics: relative 2^-11 on the scale, absolute 2^-11 |z| on the zero */
            double s = sc[r * ng + gi], z = ze[r * ng + gi];
            double tol = 1e-3 * (fabs(wh[i]) + s * (fabs(z) + 1)) + 1e-6;
            bad += fabs(deq[i] - wh[i]) > tol;
        }
    if (allow_flips)
        CHECK(diff <= allow_flips && bad == 0, "%s: %d codes differ (allowed %d), %d bad", what_case, diff, allow_flips, bad);
    else
        CHECK(diff == 0 && bad == 0, "%s: %d codes differ, %d weights off", what_case, diff, bad);
    CHECK_CLOSE(q.proxy_loss, loss, allow_flips ? 1e-2 : 1e-4, 1e-12, "proxy loss vs textbook");
    quant_layer_free(&q);
    free(codes), free(wh), free(sc), free(ze), free(deq);
    return diff;
}

static void test_textbook(void) {
    /* 2 x 2, groups of 1 column at 2 bits: every group is constant, so the grid is
     * [-1, 1] in steps of 2/3 and column 1 is quantized after the feedback from
     * column 0 through U[0][1] (H' = [[2.02, 1], [1, 2.02]] with percdamp 0.01). */
    const float W2[4] = {0.37f, -0.55f, 0.81f, 0.12f};
    const double H2[4] = {2, 1, 1, 2};
    compare_with_textbook("2x2", W2, 2, 2, H2, 2, 1, 128, 0.01, 0);
    /* 4 x 4, groups of 2 at 3 bits, a diagonally dominant H chosen by hand */
    const float W4[16] = {0.31f, -1.20f, 0.77f, 0.05f, -0.42f, 0.93f, 1.61f, -0.88f,
                          1.05f, 0.14f, -0.66f, 0.29f, -1.37f, 0.58f, 0.21f, 0.99f};
    const double H4[16] = {4, 2, 1, 0.5, 2, 3.5, 1, 0, 1, 1, 3, 0.5, 0.5, 0, 0.5, 1.5};
    compare_with_textbook("4x4", W4, 4, 4, H4, 3, 2, 128, 0.01, 0);
    compare_with_textbook("4x4 blocksize 1", W4, 4, 4, H4, 3, 2, 1, 0.01, 0);
    /* a random 24 x 40 layer, groups of 8, blocks of 7 (groups straddle blocks),
     * correlated H: fp32 vs double may flip a rare rounding (0 flips observed) */
    float *W = random_W(24, 40, 1.0);
    double *H = correlated_H(40, 2, 200, 0.8, NULL, 0);
    compare_with_textbook("24x40 g8 b7", W, 24, 40, H, 3, 8, 7, 0.01, 10);
    compare_with_textbook("24x40 per row", W, 24, 40, H, 4, 40, 128, 0.01, 10);
    free(W), free(H);
}

/* ---- exact invariants --------------------------------------------------------------- */

static int run(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p, QuantLayer *q,
               float *deq) {
    int rc = quantize_layer_ref(method, W, m, n, H, p, q, deq);
    CHECK(rc == 0, "%s %dx%d runs", method, m, n);
    return rc;
}

/* GPTQ with H = I (no damping effect on the order, no outliers) == RTN, bit for
 * bit: U is diagonal, so no error feedback reaches any other column. */
static void test_gptq_identity_is_rtn(void) {
    const int m = 37, n = 100;
    float *W = random_W(m, n, 0.05);
    double *H = identity_H(n);
    float *a = qh_malloc(sizeof(float) * m * n), *b = qh_malloc(sizeof(float) * m * n);
    const int groups[3] = {0, 16, 7};
    for (int k = 0; k < 3; k++) {
        QuantParams p;
        quant_params_default(&p, "gptq");
        p.wbits = 3;
        p.groupsize = groups[k];
        QuantLayer qg, qr;
        run("gptq", W, m, n, H, &p, &qg, a);
        run("rtn", W, m, n, NULL, &p, &qr, b);
        CHECK(memcmp(a, b, sizeof(float) * m * n) == 0, "H = I, groupsize %d: W_deq equal bit for bit", groups[k]);
        CHECK(memcmp(qg.codes, qr.codes, (size_t)m * n) == 0, "codes equal");
        CHECK(memcmp(qg.scale_fp, qr.scale_fp, sizeof(float) * (size_t)m * qg.ngroups) == 0, "scales equal");
        CHECK(isnan(qr.proxy_loss), "rtn without H has no proxy loss");
        quant_layer_free(&qg);
        quant_layer_free(&qr);
    }
    free(W), free(H), free(a), free(b);
}

/* SpQR with tau = inf and unquantized statistics is GPTQ with the same groups. */
static void test_spqr_without_extras_is_gptq(void) {
    const int m = 48, n = 96;
    float *W = random_W(m, n, 0.1);
    double *H = correlated_H(n, 2, 256, 0.7, NULL, 0);
    float *a = qh_malloc(sizeof(float) * m * n), *b = qh_malloc(sizeof(float) * m * n);
    for (int perm = 0; perm < 2; perm++) {
        QuantParams p;
        quant_params_default(&p, "spqr");
        p.outlier_threshold = INFINITY;
        p.qq_scale_bits = p.qq_zero_bits = 0;
        p.perm = perm;
        QuantLayer qs, qg;
        run("spqr", W, m, n, H, &p, &qs, a);
        run("gptq", W, m, n, H, &p, &qg, b);
        CHECK(memcmp(a, b, sizeof(float) * m * n) == 0, "perm %d: spqr(inf, unquantized stats) == gptq bit for bit", perm);
        CHECK(qs.proxy_loss == qg.proxy_loss, "same proxy loss");
        CHECK(qs.n_outliers == 0 && qs.outlier_rowptr == NULL, "no outlier storage");
        quant_layer_free(&qs);
        quant_layer_free(&qg);
    }
    free(W), free(H), free(a), free(b);
}

/* blocksize 128 vs 1 vs 7: the same algorithm up to fp32 summation order:
 * at most one quantization step per weight, nearly equal proxy loss. */
static void test_blocksize(void) {
    const int m = 64, n = 200;
    float *W = random_W(m, n, 0.1);
    double *H = correlated_H(n, 2, 300, 0.8, NULL, 0);
    const int groups[2] = {16, 0};
    for (int k = 0; k < 2; k++) {
        const int bsz[3] = {128, 1, 7};
        QuantLayer q[3];
        float *deq[3];
        for (int b = 0; b < 3; b++) {
            QuantParams p;
            quant_params_default(&p, "gptq");
            p.groupsize = groups[k];
            p.blocksize = bsz[b];
            deq[b] = qh_malloc(sizeof(float) * m * n);
            run("gptq", W, m, n, H, &p, &q[b], deq[b]);
        }
        for (int b = 1; b < 3; b++) {
            int far = 0, differ = 0;
            for (int r = 0; r < m; r++)
                for (int c = 0; c < n; c++) {
                    int gi = c / q[0].groupsize;
                    double s0 = q[0].scale_fp[r * q[0].ngroups + gi];
                    double sb = q[b].scale_fp[r * q[b].ngroups + gi];
                    double step = s0 > sb ? s0 : sb;
                    far += fabs((double)deq[b][r * n + c] - deq[0][r * n + c]) > 1.001 * step + 1e-7;
                    far += abs(q[b].codes[r * n + c] - q[0].codes[r * n + c]) > 1;
                    differ += q[b].codes[r * n + c] != q[0].codes[r * n + c];
                }
            CHECK(far == 0, "groupsize %d, blocksize %d vs 128: %d weights more than one step apart", groups[k],
                  bsz[b], far);
            CHECK(differ <= m * n / 100, "groupsize %d, blocksize %d: %d codes differ", groups[k], bsz[b], differ);
            CHECK_CLOSE(q[b].proxy_loss, q[0].proxy_loss, 1e-3, 0, "proxy loss independent of blocksize");
        }
        for (int b = 0; b < 3; b++) {
            quant_layer_free(&q[b]);
            free(deq[b]);
        }
    }
    free(W), free(H);
}

/* dequantize(q) == W_deq bit for bit, every method and storage variant */
static void test_decode_equals_wdeq(void) {
    const int m = 40, n = 72;
    float *W = random_W(m, n, 0.2);
    W[3 * n + 5] = 4.0f; /* outliers */
    W[17 * n + 60] = -3.5f;
    double *H = correlated_H(n, 2, 200, 0.6, NULL, 0);
    float *a = qh_malloc(sizeof(float) * m * n), *b = qh_malloc(sizeof(float) * m * n);
    struct {
        const char *method;
        int groupsize, qs, qz, qqg, perm, gptq_rule, simplified;
        double tau;
    } cases[] = {
        {"rtn", 0, 0, 0, 0, 0, 0, 0, INFINITY},  {"rtn", 16, 3, 3, 16, 0, 0, 0, INFINITY},
        {"gptq", 0, 0, 0, 0, 1, 0, 0, INFINITY}, {"gptq", 32, 0, 0, 0, 0, 1, 0, INFINITY},
        {"spqr", 16, 3, 3, 16, 0, 0, 0, 0.2},    {"spqr", 16, 3, 3, 16, 1, 0, 1, 0.2},
        {"spqr", 8, 2, 0, 8, 1, 1, 0, 0.1},      {"spqr", 16, 3, 3, 7, 0, 0, 0, INFINITY},
    };
    float *ws = qh_malloc(sizeof(float) * m * n), *w16 = qh_malloc(sizeof(float) * m * n);
    for (size_t kk = 0; kk < 2 * sizeof cases / sizeof cases[0]; kk++) {
        const size_t k = kk / 2;
        const int fp16 = (int)(kk % 2); /* each case in the reference mode, then in the deployment mode */
        QuantParams p;
        quant_params_default(&p, cases[k].method);
        p.stats_dtype = fp16 ? QH_STATS_FP16 : QH_STATS_FP32;
        p.groupsize = cases[k].groupsize;
        p.qq_scale_bits = cases[k].qs;
        p.qq_zero_bits = cases[k].qz;
        p.qq_groupsize = cases[k].qqg;
        p.perm = cases[k].perm;
        p.gptq_zero_rule = cases[k].gptq_rule;
        p.simplified_outliers = cases[k].simplified;
        p.outlier_threshold = cases[k].tau;
        QuantLayer q;
        if (run(cases[k].method, W, m, n, H, &p, &q, a) != 0) continue;
        memset(b, 0xff, sizeof(float) * m * n);
        quant_layer_dequantize(&q, b);
        CHECK(memcmp(a, b, sizeof(float) * m * n) == 0, "case %zu (%s, %s): decode == W_deq", k, cases[k].method,
              quant_stats_dtype_name(p.stats_dtype));
        /* SPEC 1: W_deq is the reference's written-back weights (the sweep's own) with fp32 values, the
         * fp16-decoded ones in the deployment mode; and the two differ (else this could not fail) */
        CHECK(reference_sweep(cases[k].method, W, m, n, H, &p, ws, w16) == 0, "case %zu: reference sweep", k);
        CHECK(memcmp(a, fp16 ? w16 : ws, sizeof(float) * m * n) == 0,
              "case %zu (%s, %s): W_deq == the %s bit for bit", k, cases[k].method, quant_stats_dtype_name(p.stats_dtype),
              fp16 ? "sweep's codes decoded with fp16 values" : "sweep's own weights (the reference's write-back)");
        CHECK(memcmp(ws, w16, sizeof(float) * m * n) != 0, "case %zu: fp16 values change the decoded weights", k);
        int finite = 1;
        for (int i = 0; i < m * n; i++) finite &= isfinite(a[i]);
        CHECK(finite, "case %zu finite", k);
        if (q.params.perm == QH_PERM_ACT_ORDER) { /* stable sort of diag(H) descending */
            int ok = 1;
            for (int i = 1; i < n; i++) {
                double d0 = H[q.perm[i - 1] * n + q.perm[i - 1]], d1 = H[q.perm[i] * n + q.perm[i]];
                ok &= d0 > d1 || (d0 == d1 && q.perm[i - 1] < q.perm[i]);
            }
            CHECK(ok, "case %zu: act_order permutation", k);
        }
        quant_layer_free(&q);
    }
    free(W), free(H), free(a), free(b), free(ws), free(w16);
}

/* SPEC 4.6 proxy loss == 1/2 tr(dW H' dW^T) with dW = W - W_hat (the OBS
 * identity: U H' U^T = I). In the reference mode W_hat is the sweep's own
 * (fp32 statistics), so the identity holds to fp32 rounding; decoded from
 * fp16 statistics it holds only to their rounding, hence two tolerances. */
static double trace_half(const float *W, const float *deq, const double *H, int m, int n, double damp) {
    double tr = 0;
    for (int r = 0; r < m; r++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double h = H[i * n + j] + (i == j ? damp : 0);
                tr += (W[r * n + i] - (double)deq[r * n + i]) * h * (W[r * n + j] - (double)deq[r * n + j]);
            }
    return tr / 2;
}

static void test_proxy_identity(void) {
    const int m = 32, n = 64;
    float *W = random_W(m, n, 0.1);
    double *H = correlated_H(n, 2, 200, 0.8, NULL, 0);
    float *deq = qh_malloc(sizeof(float) * m * n);
    double mean = 0;
    for (int i = 0; i < n; i++) mean += H[i * n + i] / n;
    for (int fp16 = 0; fp16 < 2; fp16++) {
        QuantParams p;
        quant_params_default(&p, "gptq");
        p.percdamp = 0.1;
        p.wbits = 3;
        p.groupsize = 16;
        p.stats_dtype = fp16 ? QH_STATS_FP16 : QH_STATS_FP32;
        const double tol = fp16 ? 2e-2 : 1e-5; /* measured: 4.8e-4 with fp16 values, 5e-8 with fp32 */
        QuantLayer q;
        run("gptq", W, m, n, H, &p, &q, deq);
        double tr = trace_half(W, deq, H, m, n, p.percdamp * mean);
        printf("gptq proxy loss %.9g vs 1/2 tr(dW H' dW^T) %.9g (%s values): relative %.2e\n", q.proxy_loss, tr,
               quant_stats_dtype_name(p.stats_dtype), fabs(q.proxy_loss - tr) / tr);
        CHECK_CLOSE(q.proxy_loss, tr, tol, 0, "gptq proxy loss = 1/2 tr(dW H' dW^T)");
        /* RTN's proxy loss is that trace by definition */
        QuantLayer qr;
        run("rtn", W, m, n, H, &p, &qr, deq);
        CHECK_CLOSE(qr.proxy_loss, trace_half(W, deq, H, m, n, p.percdamp * mean), tol, 0,
                    "rtn proxy loss = 1/2 tr(dW H' dW^T)");
        quant_layer_free(&q);
        quant_layer_free(&qr);
    }
    free(W), free(H), free(deq);
}

/* ---- ragged groups, dead columns, constant groups, indefinite H ---------------- */

/* n = 172 with groups of 16: 11 groups, the last 12 wide; m = 172 rows with
 * beta2 = 16: 11 second-level groups, the last 12 rows. RTN makes the
 * statistics checkable from the original weights. */
static void test_ragged(void) {
    const int m = 172, n = 172;
    float *W = random_W(m, n, 0.1);
    float *deq = qh_malloc(sizeof(float) * m * n), *b = qh_malloc(sizeof(float) * m * n);
    QuantParams p;
    quant_params_default(&p, "spqr");
    p.outlier_threshold = INFINITY;
    QuantLayer q;
    run("rtn", W, m, n, NULL, &p, &q, deq);
    CHECK(q.ngroups == 11 && q.qq_groups == 11 && q.groupsize == 16, "ngroups %d qq_groups %d", q.ngroups,
          q.qq_groups);
    /* first level of the last group, rows 160..171: min-max over columns 160..171 */
    float sc[12], lo = INFINITY, hi = -INFINITY;
    for (int r = 160; r < 172; r++) {
        float a = INFINITY, z = -INFINITY;
        for (int c = 160; c < 172; c++) {
            a = fminf(a, W[r * n + c]);
            z = fmaxf(z, W[r * n + c]);
        }
        sc[r - 160] = (z - a) / 15.0f;
        lo = fminf(lo, sc[r - 160]);
        hi = fmaxf(hi, sc[r - 160]);
    }
    /* second level over those 12 scales only, 3 bits */
    float s2 = (hi - lo) / 7.0f, z2 = -lo / s2;
    CHECK(q.qq_scale_scale[10 * 11 + 10] == s2, "last second-level scale %.9g, expected %.9g (fp32, as fitted)",
          q.qq_scale_scale[10 * 11 + 10], s2);
    CHECK(q.qq_scale_zero[10 * 11 + 10] == z2, "last second-level zero %.9g, expected %.9g", q.qq_scale_zero[10 * 11 + 10],
          z2);
    int bad = 0;
    for (int r = 160; r < 172; r++) {
        float code = rintf(sc[r - 160] / s2 + z2);
        code = code < 0 ? 0 : (code > 7 ? 7 : code);
        bad += q.scale_codes[r * 11 + 10] != (uint8_t)code;
    }
    CHECK(bad == 0, "last group's scale codes: %d wrong", bad);
    /* the row's weights are within half a decoded step of the original (no clipping
     * beyond the second-level error) */
    double worst = 0;
    for (int r = 0; r < m; r++)
        for (int c = 160; c < 172; c++) worst = fmax(worst, fabs(deq[r * n + c] - W[r * n + c]));
    CHECK(worst < 0.2, "ragged group error %g", worst);
    quant_layer_dequantize(&q, b);
    CHECK(memcmp(deq, b, sizeof(float) * m * n) == 0, "ragged decode");
    quant_layer_free(&q);
    /* SpQR with everything on the ragged layer */
    double *H = correlated_H(n, 2, 300, 0.7, NULL, 0);
    quant_params_default(&p, "spqr");
    p.perm = QH_PERM_ACT_ORDER;
    run("spqr", W, m, n, H, &p, &q, deq);
    int finite = 1;
    for (int i = 0; i < m * n; i++) finite &= isfinite(deq[i]);
    CHECK(finite && isfinite(q.proxy_loss), "ragged spqr finite");
    quant_layer_dequantize(&q, b);
    CHECK(memcmp(deq, b, sizeof(float) * m * n) == 0, "ragged spqr decode");
    quant_layer_free(&q);
    free(W), free(H), free(deq), free(b);
}

/* Dead columns (H[i,i] == 0, SPEC 4.3): W[:, i] = 0 is quantized like any
 * weight, so W_deq[:, i] = quantize(0) with its group's grid: |.| <= scale / 2
 * with SpQR's fractional zero, exactly 0 with GPTQ's integer zero. */
static void test_dead_columns(void) {
    const int m = 32, n = 48;
    const int dead[2] = {5, 17};
    float *W = random_W(m, n, 0.1);
    double *H = correlated_H(n, 2, 200, 0.5, dead, 2);
    CHECK(H[5 * n + 5] == 0 && H[17 * n + 3] == 0, "dead rows/cols in H");
    float *deq = qh_malloc(sizeof(float) * m * n);
    const char *methods[2] = {"gptq", "spqr"};
    for (int k = 0; k < 2; k++) {
        for (int rule = 0; rule < 2; rule++) {
            QuantParams p;
            quant_params_default(&p, methods[k]);
            p.groupsize = 16;
            p.gptq_zero_rule = rule;
            if (rule) p.qq_zero_bits = 0;
            QuantLayer q;
            run(methods[k], W, m, n, H, &p, &q, deq);
            CHECK(q.n_dead == 2, "%s: %d dead columns", methods[k], q.n_dead);
            int finite = 1, far = 0, nonzero = 0;
            for (int i = 0; i < m * n; i++) finite &= isfinite(deq[i]);
            for (int d = 0; d < 2; d++)
                for (int r = 0; r < m; r++) {
                    float v = deq[r * n + dead[d]];
                    int gi = dead[d] / 16;
                    float s = q.scale_fp ? q.scale_fp[r * q.ngroups + gi]
                                         : q.qq_scale_scale[(r / 16) * q.ngroups + gi] *
                                               (q.scale_codes[r * q.ngroups + gi] - q.qq_scale_zero[(r / 16) * q.ngroups + gi]);
                    far += fabsf(v) > 0.5f * s * 1.01f;
                    nonzero += v != 0.0f;
                }
            CHECK(finite, "%s rule %d: no NaN", methods[k], rule);
            CHECK(far == 0, "%s rule %d: dead weights within half a step of 0 (%d far)", methods[k], rule, far);
            if (rule) CHECK(nonzero == 0, "%s gptq rule: dead weights exactly 0 (%d nonzero)", methods[k], nonzero);
            quant_layer_free(&q);
        }
    }
    free(W), free(H), free(deq);
}

/* constant groups: the guard gives [-1, 1]; every method stays finite */
static void test_constant_groups(void) {
    const int m = 8, n = 32;
    float *W = random_W(m, n, 0.1);
    for (int c = 0; c < 16; c++) W[2 * n + c] = 0.3f; /* row 2, group 0 constant */
    for (int r = 0; r < m; r++)
        for (int c = 16; c < 32; c++) W[r * n + c] = 0.0f; /* group 1 all zero */
    double *H = correlated_H(n, 1, 100, 0.5, NULL, 0);
    float *deq = qh_malloc(sizeof(float) * m * n);
    QuantParams p;
    quant_params_default(&p, "rtn");
    p.wbits = 3;
    p.groupsize = 16;
    QuantLayer q;
    run("rtn", W, m, n, NULL, &p, &q, deq);
    /* 3 bits, [-1, 1]: scale 2/7, zero 3.5, code rint(0.3 * 3.5 + 3.5) = 5, x_hat = 3/7 */
    CHECK_CLOSE(q.scale_fp[2 * 2 + 0], 2.0 / 7, 1e-6, 0, "constant group scale");
    CHECK(q.codes[2 * n + 7] == 5, "constant group code %d", q.codes[2 * n + 7]);
    CHECK_CLOSE(deq[2 * n + 7], 3.0 / 7, 1e-3, 0, "constant group x_hat");
    /* all-zero group: the same grid; in fp32 the zero 1 / (2/7) is 3.4999998, not the
     * tie 3.5, so 0 codes to 3 and decodes to 2/7 * (3 - 3.5) = -1/7 */
    float s7 = 2.0f / 7.0f, z7 = 1.0f / s7;
    CHECK(z7 < 3.5f && q.codes[5 * n + 20] == 3, "zero group code %d (zero %.9g)", q.codes[5 * n + 20], z7);
    CHECK_CLOSE(deq[5 * n + 20], -1.0 / 7, 1e-3, 0, "zero group x_hat");
    quant_layer_free(&q);
    const char *methods[2] = {"gptq", "spqr"};
    for (int k = 0; k < 2; k++) {
        quant_params_default(&p, methods[k]);
        p.groupsize = 16;
        if (p.qq_groupsize) p.qq_groupsize = m; /* beta2 <= m rows */
        run(methods[k], W, m, n, H, &p, &q, deq);
        int finite = 1;
        for (int i = 0; i < m * n; i++) finite &= isfinite(deq[i]);
        CHECK(finite && isfinite(q.proxy_loss), "%s constant groups finite", methods[k]);
        quant_layer_free(&q);
    }
    free(W), free(H), free(deq);
}

/* H = I - 3 u u^T with u = 1/4 (1, ..., 1) (n = 16, |u| = 1): eigenvalue -2 along u,
 * mean diag 1 - 3/16 = 0.8125. Damping 0.01 x mean, x10 per retry: 0.0081,
 * 0.081, 0.81, 8.1 -> positive definite at the third retry (relative 10).
 * A rank-1 H = v v^T with percdamp 0 fails once, then gets 0.01 x mean. */
static void test_indefinite(void) {
    const int n = 16, m = 8;
    double *H = qh_malloc(sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) H[i * n + j] = (i == j) - 3.0 / 16;
    float *W = random_W(m, n, 0.5);
    float *deq = qh_malloc(sizeof(float) * m * n);
    QuantParams p;
    quant_params_default(&p, "gptq");
    QuantLayer q;
    run("gptq", W, m, n, H, &p, &q, deq);
    CHECK(q.damp_retries == 3, "retries %d, expected 3", q.damp_retries);
    CHECK_CLOSE(q.damp_used, 10.0, 1e-9, 0, "relative damping");
    int finite = 1;
    for (int i = 0; i < m * n; i++) finite &= isfinite(deq[i]);
    CHECK(finite && isfinite(q.proxy_loss), "indefinite H: finite output");
    quant_layer_free(&q);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) H[i * n + j] = (1 + 0.1 * i) * (1 + 0.1 * j);
    p.percdamp = 0;
    run("spqr", W, m, n, H, &p, &q, deq);
    CHECK(q.damp_retries == 1 && fabs(q.damp_used - 0.01) < 1e-12, "rank-1 H: retries %d, damping %g",
          q.damp_retries, q.damp_used);
    finite = 1;
    for (int i = 0; i < m * n; i++) finite &= isfinite(deq[i]);
    CHECK(finite, "rank-1 H: finite output");
    quant_layer_free(&q);
    free(H), free(W), free(deq);
}

/* ---- what the methods are for ------------------------------------------------------ */

static void test_proxy_ordering(void) {
    const int m = 64, n = 128;
    float *W = random_W(m, n, 0.1);
    double *H = correlated_H(n, 4, 256, 0.9, NULL, 0);
    float *deq = qh_malloc(sizeof(float) * m * n);
    const int groups[2] = {0, 32};
    for (int k = 0; k < 2; k++) {
        QuantParams p;
        quant_params_default(&p, "gptq");
        p.wbits = 3;
        p.groupsize = groups[k];
        QuantLayer qg, qr;
        run("gptq", W, m, n, H, &p, &qg, deq);
        run("rtn", W, m, n, H, &p, &qr, deq);
        CHECK(qg.proxy_loss < 0.8 * qr.proxy_loss, "groupsize %d: gptq %g < rtn %g", groups[k], qg.proxy_loss,
              qr.proxy_loss);
        quant_layer_free(&qg);
        quant_layer_free(&qr);
    }
    /* heavy-tailed weights: 1% of them x 8 */
    for (int i = 0; i < m * n; i++)
        if (urand() < 0.01) W[i] *= 8;
    QuantParams p;
    quant_params_default(&p, "spqr");
    QuantLayer qo, qi, qsimp;
    run("spqr", W, m, n, H, &p, &qo, deq);
    p.simplified_outliers = 1;
    run("spqr", W, m, n, H, &p, &qsimp, deq);
    p.simplified_outliers = 0;
    p.outlier_threshold = INFINITY;
    run("spqr", W, m, n, H, &p, &qi, deq);
    double frac = (double)qo.n_outliers / (m * n);
    CHECK(qo.n_outliers > 0 && frac < 0.05, "outliers found: %lld (%.3f%%)", (long long)qo.n_outliers, 100 * frac);
    CHECK(qo.proxy_loss < qi.proxy_loss, "spqr tau 0.2: %g < tau inf: %g", qo.proxy_loss, qi.proxy_loss);
    CHECK(qsimp.proxy_loss < qi.proxy_loss, "simplified outliers: %g < %g", qsimp.proxy_loss, qi.proxy_loss);
    /* outlier storage: CSR consistent, columns increasing, values decode to W_deq */
    int ok = qo.outlier_rowptr[0] == 0 && qo.outlier_rowptr[m] == qo.n_outliers;
    for (int r = 0; r < m; r++)
        for (int64_t k = qo.outlier_rowptr[r]; k < qo.outlier_rowptr[r + 1]; k++) {
            ok &= k == qo.outlier_rowptr[r] || qo.outlier_col[k] > qo.outlier_col[k - 1];
            ok &= qo.outlier_col[k] < n;
        }
    CHECK(ok, "outlier CSR well formed");
    float *deq2 = qh_malloc(sizeof(float) * m * n);
    quant_layer_free(&qi);
    quantize_layer_ref("spqr", W, m, n, H, &qo.params, &qi, deq2);
    int same = 1;
    for (int r = 0; r < m; r++)
        for (int64_t k = qo.outlier_rowptr[r]; k < qo.outlier_rowptr[r + 1]; k++)
            same &= deq2[r * n + qo.outlier_col[k]] == qo.outlier_val[k];
    CHECK(same, "outlier values decode as stored");
    CHECK(qo.n_outliers == qi.n_outliers && qo.proxy_loss == qi.proxy_loss, "deterministic");
    /* SPEC 5 outlier scale: mean_j var_rows(W[:, j]) / U[j, j]^2, U from the textbook routine */
    double *U = qh_malloc(sizeof(double) * n * n);
    int *dead = qh_malloc(sizeof(int) * n);
    ref_U(H, n, qo.params.percdamp, U, dead);
    double scale = 0;
    for (int j = 0; j < n; j++) {
        double mu = 0, ss = 0;
        for (int r = 0; r < m; r++) mu += W[r * n + j] / (double)m;
        for (int r = 0; r < m; r++) ss += (W[r * n + j] - mu) * (W[r * n + j] - mu);
        scale += ss / (m - 1) / (U[j * n + j] * U[j * n + j]) / n;
    }
    CHECK_CLOSE(qo.outlier_scale, scale, 1e-5, 0, "outlier scale");
    CHECK_CLOSE(qo.tau_abs, 0.2 * scale, 1e-5, 0, "tau_abs");
    free(U), free(dead), free(deq2);
    quant_layer_free(&qo);
    quant_layer_free(&qi);
    quant_layer_free(&qsimp);
    free(W), free(H), free(deq);
}

int main(void) {
    test_textbook();
    test_gptq_identity_is_rtn();
    test_spqr_without_extras_is_gptq();
    test_blocksize();
    test_decode_equals_wdeq();
    test_proxy_identity();
    test_ragged();
    test_dead_columns();
    test_constant_groups();
    test_indefinite();
    test_proxy_ordering();
    return test_summary();
}
