/* test_qmatvec.c: the kernel-ready layout and the CPU matrix-vector kernels of
 * issue 18 (kernels/qlayout.h, qmatvec.h, packed_quant.h).
 *
 * Expectations, independent of the kernels: the dense product of the weights
 * quant_layer_dequantize decodes (in double), for
 *   - qmatvec_ref: summed in double from the same fp32 weights, so within
 *     2^-23 |y| + 2 n 2^-53 sum |w x| of the dense product (rounding only);
 *   - qmatvec_avx2, qmatvec_avx512 and every PackedLinear: fp32 accumulation,
 *     weights decoded with one fma (s q - s z), or with one input
 *     s sum q x - s z sum x per group, so within 2 (n + 4) 2^-24 sum (|w| + |s z|) |x| (the gamma_n
 *     bound of a recursive fp32 sum plus the decode's roundings, |s q| <=
 *     |w| + |s z|);
 * on random layers of odd sizes (ragged last groups, n not a multiple of 8,
 * rows without outliers, one row with many, act_order) for RTN, GPTQ (also
 * its integer zero) and SpQR, wbits 2 / 3 / 4 / 8, beta1 8..128 and per row,
 * beta2 7..128, coded and plain statistics, both stats_dtype modes, nb 1..8 and
 * 11 (two chunks); on synthetic layers with long rows (n = 9000, the AVX-512
 * kernel's two-row path, an odd row count); and on the linears of stories260K quantized here with SpQR,
 * GPTQ and RTN (the model's weights, a synthetic correlated Hessian). A
 * corrupted code makes the comparison fail (the check can fail). A layer
 * large enough for OpenMP gives the same bits on one thread and on several
 * (both SIMD kernels). packed_quant_create's "auto" picks avx512, else avx2,
 * else ref, by what the CPU has; a kernel the CPU lacks is skipped (counted).
 * Bad input:
 * wbits 5, groupsize 12, n > 65536, a code out of range, an fp16-mode value
 * that is not fp16, an unknown kernel, each refused with the field named.
 * Not here: timings (bench/bench_qmatvec.c), the CUDA kernel
 * (tests/gpu/test_gpu_qmatvec.c). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "half.h"
#include "model.h"
#include "packed_quant.h"
#include "qlayout_synth.h"
#include "qmatvec.h"
#include "quant.h"
#include "quant_fixtures.h"
#include "stories_fixture.h"
#include "util.h"

#define NBMAX 11
static const double U32 = 5.9604644775390625e-08; /* 2^-24 */
static const double U64 = 1.1102230246251565e-16; /* 2^-53 */
static char tmpdir[64];

/* W (m, n) normal(0, sd), 1% of the weights x 8 (outliers for SpQR to find) */
static float *random_W(int m, int n) {
    float *W = qh_malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) {
        W[i] = (float)(0.05 * nrand());
        if (urand() < 0.01) W[i] *= 8;
    }
    return W;
}

/* The kernels under test, in the order of packed_quant_create's names
 * (ref, avx2, avx512); each skipped (counted) on a CPU without it. */
static int always(void) { return 1; }
static const struct {
    const char *name, *skip; /* skip: why, on a CPU without it */
    int (*supported)(void);
    void (*run)(const QLayout *, const float *, int, float *);
} kernels[] = {{"qmatvec_ref", "", always, qmatvec_ref},
               {"qmatvec_avx2", "qmatvec_avx2: this CPU has no AVX2 + FMA + F16C", qmatvec_avx2_supported, qmatvec_avx2},
               {"qmatvec_avx512", "qmatvec_avx512: this CPU has no AVX-512 F + DQ + BW + VL", qmatvec_avx512_supported,
                qmatvec_avx512}};
#define NKERNELS 3

/* The comparison of one layer: every kernel, nb 1..8 and 11, against the
 * dense product. Returns the number of failed comparisons (also counted by
 * CHECK unless quiet: the negative control expects failures). */
static int compare_layer(const char *what, const QuantLayer *q, const QLayout *L, int quiet) {
    const int m = q->m, n = q->n;
    float *W = qh_malloc(sizeof(float) * (size_t)m * n); /* (m, n) decoded, original order */
    quant_layer_dequantize(q, W);
    float *X = qh_malloc(sizeof(float) * (size_t)NBMAX * n); /* (NBMAX, n) */
    for (size_t i = 0; i < (size_t)NBMAX * n; i++) X[i] = (float)nrand();
    double *Yd = qh_malloc(sizeof(double) * (size_t)NBMAX * m), *mag = qh_malloc(sizeof(double) * (size_t)NBMAX * m);
    double *magf = qh_malloc(sizeof(double) * (size_t)NBMAX * m);
    float *s = qh_malloc(sizeof(float) * q->ngroups), *z = qh_malloc(sizeof(float) * q->ngroups);
    int *inv = qh_malloc(sizeof(int) * n); /* original column -> permuted */
    for (int c = 0; c < n; c++) inv[L->perm ? L->perm[c] : c] = c;
    for (int r = 0; r < m; r++) {
        qlayout_row_stats(L, r, s, z);
        for (int b = 0; b < NBMAX; b++) {
            double y = 0, a = 0, af = 0;
            for (int c = 0; c < n; c++) {
                double w = W[(size_t)r * n + c], x = X[(size_t)b * n + c];
                int j = inv[c] / q->groupsize;
                y += w * x;
                a += fabs(w * x);
                af += (fabs(w) + fabs((double)s[j] * z[j])) * fabs(x);
            }
            Yd[(size_t)b * m + r] = y, mag[(size_t)b * m + r] = a, magf[(size_t)b * m + r] = af;
        }
    }
    float *Xp = qh_malloc(sizeof(float) * (size_t)NBMAX * L->n_pad), *Y = qh_malloc(sizeof(float) * (size_t)NBMAX * m);
    qlayout_permute(L, X, NBMAX, Xp);
    int fails = 0;
    const int nbs[] = {1, 2, 3, 4, 5, 6, 7, 8, 11};
    for (int kk = 0; kk < NKERNELS; kk++) {
        if (!kernels[kk].supported()) {
            if (!quiet) SKIP(kernels[kk].skip);
            continue;
        }
        for (size_t t = 0; t < sizeof nbs / sizeof nbs[0]; t++) {
            int nb = nbs[t];
            kernels[kk].run(L, Xp, nb, Y);
            double worst = 0;
            int bad = 0, br = 0;
            for (int i = 0; i < nb * m; i++) {
                double tol = kk == 0 ? 0x1p-23 * fabs(Yd[i]) + 2.0 * n * U64 * mag[i] + 1e-30
                                     : 2.0 * (n + 4) * U32 * magf[i] + 1e-30;
                double e = fabs(Y[i] - Yd[i]) / tol;
                if (!(e <= 1.0)) bad++, br = i;
                if (e > worst || isnan(e)) worst = e;
            }
            if (bad) fails++;
            if (!quiet)
                CHECK(bad == 0, "%s, %s, nb %d: %d of %d outputs off (e.g. [%d] %.9g vs %.9g); worst error / bound %.3g",
                      what, kernels[kk].name, nb, bad, nb * m, br, (double)Y[br], Yd[br], worst);
        }
    }
    /* the same through packed_quant_create, X in the original order */
    const char *names[] = {"ref", "avx2", "avx512", "auto"};
    for (int kk = 0; kk < 4 && !quiet; kk++) {
        if (kk > 0 && kk < NKERNELS && !kernels[kk].supported()) continue;
        PackedLinear *p = NULL;
        CHECK(packed_quant_create(q, names[kk], &p) == 0, "%s: packed_quant_create(%s)", what, names[kk]);
        if (!p) continue;
        CHECK(p->m == m && p->n == n && p->where == PACKED_HOST && p->bytes == L->bytes,
              "%s: %s: PackedLinear m %d n %d where %d bytes %zu", what, names[kk], p->m, p->n, p->where, p->bytes);
        CHECK(p->ops->matmul(p, X, 3, Y, NULL) == 0, "%s: %s matmul", what, names[kk]);
        int bad = 0;
        for (int i = 0; i < 3 * m; i++)
            if (!(fabs(Y[i] - Yd[i]) <= 2.0 * (n + 4) * U32 * magf[i] + 1e-30)) bad++;
        CHECK(bad == 0, "%s: PackedLinear %s (%s), nb 3: %d outputs off the dense product", what, names[kk],
              p->ops->name, bad);
        if (kk == 3) {
            const char *best = qmatvec_avx512_supported() ? "quant-avx512" : qmatvec_avx2_supported() ? "quant-avx2" : "quant-ref";
            CHECK(!strcmp(p->ops->name, best), "%s: auto picked %s on this CPU; expected %s", what, p->ops->name, best);
        }
        p->ops->destroy(p);
    }
    free(W), free(X), free(Yd), free(mag), free(magf), free(s), free(z), free(inv), free(Xp), free(Y);
    return fails;
}

static void check_layer(const char *what, const QuantLayer *q) {
    QLayout L;
    int rc = qlayout_build(q, &L);
    CHECK(rc == 0, "%s: qlayout_build", what);
    if (rc != 0) return;
    compare_layer(what, q, &L, 0);
    qlayout_free(&L);
}

typedef struct {
    const char *method;
    int m, n, wbits, groupsize, qq_bits_s, qq_bits_z, beta2;
    double tau;
    int act_order, gptq_zero;
} Case;

static int quantize_case(const Case *c, QuantStatsDtype d, const float *W, const double *H, QuantLayer *q) {
    QuantParams p;
    quant_params_default(&p, c->method);
    p.wbits = c->wbits, p.groupsize = c->groupsize;
    p.qq_scale_bits = c->qq_bits_s, p.qq_zero_bits = c->qq_bits_z, p.qq_groupsize = c->beta2;
    p.outlier_threshold = c->tau;
    p.perm = c->act_order ? QH_PERM_ACT_ORDER : QH_PERM_IDENTITY;
    p.gptq_zero_rule = c->gptq_zero;
    p.stats_dtype = d;
    return quantize_layer_ref(c->method, W, c->m, c->n, strcmp(c->method, "rtn") ? H : NULL, &p, q, NULL);
}

static void test_random_layers(void) {
    const Case cases[] = {
        {"rtn", 37, 203, 2, 16, 0, 0, 0, INFINITY, 0, 0},
        {"rtn", 37, 203, 3, 16, 0, 0, 0, INFINITY, 0, 0},
        {"rtn", 37, 203, 4, 16, 0, 0, 0, INFINITY, 0, 0},
        {"rtn", 37, 203, 8, 16, 0, 0, 0, INFINITY, 0, 0},
        {"rtn", 29, 301, 4, 0, 0, 0, 0, INFINITY, 0, 0},     /* one group per row, n not a multiple of 8 */
        {"rtn", 16, 264, 4, 128, 0, 0, 0, INFINITY, 0, 0},   /* g128, last group 8 wide */
        {"gptq", 45, 264, 4, 128, 0, 0, 0, INFINITY, 1, 1},  /* act_order, integer zeros */
        {"gptq", 45, 171, 3, 0, 0, 0, 0, INFINITY, 1, 0},    /* per row, act_order */
        {"gptq", 33, 200, 2, 24, 0, 0, 0, INFINITY, 0, 0},   /* groups of 24 */
        {"rtn", 23, 203, 2, 64, 0, 0, 0, INFINITY, 0, 0},    /* 2 tiles of 128 hold 4 groups each */
        {"rtn", 23, 203, 2, 32, 0, 0, 0, INFINITY, 0, 0},    /* 8 groups per tile, 2 AVX-512 pairs each */
        {"rtn", 23, 203, 3, 80, 0, 0, 0, INFINITY, 0, 0},    /* a group per tile of 80 */
        {"spqr", 61, 200, 3, 16, 3, 3, 16, 0.2, 0, 0},       /* the paper's 3-bit 16 / 16 */
        {"spqr", 61, 200, 3, 16, 3, 3, 16, 0.2, 1, 0},       /* ... with act_order */
        {"spqr", 40, 131, 2, 8, 3, 3, 8, 0.2, 0, 0},
        {"spqr", 130, 96, 4, 32, 3, 3, 128, 0.2, 0, 0},
        {"spqr", 50, 203, 3, 64, 3, 3, 7, 0.2, 1, 0},        /* beta2 7: ragged second-level groups */
        {"spqr", 48, 300, 3, 128, 8, 8, 32, 0.2, 0, 0},      /* 8-bit statistics: 16-bit code words */
        {"spqr", 48, 160, 4, 16, 3, 0, 16, 0.2, 0, 0},       /* coded scales, plain zeros */
        {"spqr", 48, 160, 8, 16, 3, 3, 16, INFINITY, 0, 0},  /* 8-bit weights, no outliers */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        float *W = random_W(c->m, c->n);
        double *H = correlated_H(c->n, 2, 64, 0.5, NULL, 0);
        for (int d = 0; d < 2; d++) {
            QuantLayer q;
            char what[160];
            snprintf(what, sizeof what, "%s %dx%d w%d g%d qq %d/%d/%d tau %g%s%s %s", c->method, c->m, c->n, c->wbits,
                     c->groupsize, c->qq_bits_s, c->qq_bits_z, c->beta2, c->tau, c->act_order ? " act_order" : "",
                     c->gptq_zero ? " int-zero" : "", d ? "fp16" : "fp32");
            int rc = quantize_case(c, d ? QH_STATS_FP16 : QH_STATS_FP32, W, H, &q);
            CHECK(rc == 0, "%s: quantize", what);
            if (rc != 0) continue;
            if (isfinite(c->tau)) printf("  %-60s %lld outliers\n", what, (long long)q.n_outliers);
            check_layer(what, &q);
            quant_layer_free(&q);
        }
        free(W), free(H);
    }
}

/* Outliers placed by hand in a SpQR layer: row 0 holds one at every second
 * column (more than a GPU warp's 32 lanes), row m-1 one at the last column,
 * every other row none. */
static void test_outlier_patterns(void) {
    const Case c = {"spqr", 41, 203, 3, 16, 3, 3, 16, INFINITY, 1, 0};
    float *W = random_W(c.m, c.n);
    double *H = correlated_H(c.n, 2, 64, 0.5, NULL, 0);
    for (int d = 0; d < 2; d++) {
        QuantLayer q;
        if (quantize_case(&c, d ? QH_STATS_FP16 : QH_STATS_FP32, W, H, &q) != 0) {
            CHECK(0, "quantize for the outlier patterns");
            continue;
        }
        place_outlier_rows(&q, d);
        check_layer(d ? "hand-placed outliers (a full row, empty rows) fp16" : "hand-placed outliers fp32", &q);

        /* negative control: one code changed in the layout -> the comparison must fail */
        QLayout L;
        if (qlayout_build(&q, &L) == 0) {
            L.words[(2 * L.ntiles + 1) * 8 + 3] ^= 1u; /* row 2 (no outliers), tile 1, lane 3, vector 0 */
            int fails = compare_layer("corrupted", &q, &L, 1);
            CHECK(fails > 0, "a corrupted code went unnoticed by the comparison (%d failing comparisons)", fails);
            qlayout_free(&L);
        }
        quant_layer_free(&q);
    }
    free(W), free(H);
}

/* stories260K's linears (first and last block) quantized with SpQR 3-bit 16/16, GPTQ
 * 4-bit g128 act_order and RTN 4-bit g128, both modes. */
static void test_stories260K(void) {
    Model mdl;
    if (stories_open(&mdl, NULL) != 0) {
        SKIP("stories260K not found under QH_DATA (make data)");
        return;
    }
    const Case cs[] = {{"spqr", 0, 0, 3, 16, 3, 3, 16, 0.2, 0, 0},
                       {"gptq", 0, 0, 4, 128, 0, 0, 0, INFINITY, 1, 0},
                       {"rtn", 0, 0, 4, 128, 0, 0, 0, INFINITY, 0, 0}};
    int layers = 0;
    for (int l = 0; l < mdl.cfg.n_layers; l += mdl.cfg.n_layers > 1 ? mdl.cfg.n_layers - 1 : 1) /* first, last block */
        for (int k = 0; k < model_n_linears(&mdl.cfg); k++) {
            int out, in;
            model_linear_shape(&mdl.cfg, (LinearKind)k, &out, &in);
            double *H = correlated_H(in, 2, 64, 0.5, NULL, 0);
            for (size_t i = 0; i < 3; i++) {
                Case c = cs[i];
                c.m = out, c.n = in;
                if (c.beta2 > out) c.beta2 = out;
                if (c.groupsize > in) c.groupsize = 0; /* 64-wide inputs: one group per row */
                for (int d = 0; d < 2; d++) {
                    QuantLayer q;
                    char what[160];
                    snprintf(what, sizeof what, "stories260K layer %d %s %s %s", l,
                             model_linear_name(&mdl.cfg, (LinearKind)k), c.method, d ? "fp16" : "fp32");
                    int rc = quantize_case(&c, d ? QH_STATS_FP16 : QH_STATS_FP32, mdl.w.blocks[l].lin[k], H, &q);
                    CHECK(rc == 0, "%s: quantize", what);
                    if (rc != 0) continue;
                    check_layer(what, &q);
                    quant_layer_free(&q);
                    layers++;
                }
            }
            free(H);
        }
    printf("  stories260K: %d quantized linears checked\n", layers);
    model_free(&mdl);
}

/* Synthetic layers with long rows (kernels/qlayout_synth.h: SpQR 3-bit 16/16
 * with 1% outliers, RTN 4-bit g128), n = 9000: the AVX-512 kernel then takes
 * two rows at a time with one input (an input of more than 32 KB); m = 33 is
 * odd, so the last row goes alone. Against the dense product as above. */
static void test_long_rows(void) {
    const int fmts[2] = {1, 2};
    for (int f = 0; f < 2; f++) {
        QuantLayer q;
        char what[96];
        qsynth_layer(&qsynth_formats[fmts[f]], 33, 9000, 11 + (uint64_t)f, &q);
        snprintf(what, sizeof what, "synthetic 33 x 9000 %s", qsynth_formats[fmts[f]].name);
        check_layer(what, &q);
        quant_layer_free(&q);
    }
}

/* A layer large enough for the OpenMP split (m n >= QH_PAR_MIN_WORK; a
 * synthetic SpQR 3-bit 16/16 layer with 1% outliers, kernels/qlayout_synth.h):
 * the rows handed out on demand give the same bits as one thread, nb 1 and 3. */
static void test_threads_same_bits(void) {
    for (int kk = 1; kk < NKERNELS; kk++)
        if (!kernels[kk].supported()) SKIP(kernels[kk].skip);
    const int m = 4096, n = 4096;
    QuantLayer q;
    QLayout L;
    qsynth_layer(&qsynth_formats[1], m, n, 7, &q);
    int rc = qlayout_build(&q, &L);
    quant_layer_free(&q);
    CHECK(rc == 0, "qlayout_build of the synthetic 4096 x 4096 layer");
    if (rc != 0) return;
    float *Xp = qh_calloc((size_t)3 * L.n_pad, sizeof *Xp), *Y1 = qh_malloc(sizeof(float) * 3 * m),
          *Yt = qh_malloc(sizeof(float) * 3 * m);
    for (int b = 0; b < 3; b++)
        for (int c = 0; c < n; c++) Xp[(size_t)b * L.n_pad + c] = (float)nrand();
    int threads = omp_get_max_threads();
    for (int kk = 1; kk < NKERNELS; kk++)
        for (int nb = 1; nb <= 3 && kernels[kk].supported(); nb += 2) {
            omp_set_num_threads(1);
            kernels[kk].run(&L, Xp, nb, Y1);
            omp_set_num_threads(threads > 1 ? threads : 2);
            kernels[kk].run(&L, Xp, nb, Yt);
            CHECK(memcmp(Y1, Yt, sizeof(float) * (size_t)nb * m) == 0,
                  "%s, 4096 x 4096, nb %d: %d threads give other bits than one", kernels[kk].name, nb,
                  threads > 1 ? threads : 2);
        }
    omp_set_num_threads(threads);
    free(Xp), free(Y1), free(Yt);
    qlayout_free(&L);
}

/* bad input: the layout refuses, naming the field */
static void expect_refused(const char *what, const QuantLayer *q, const char *kernel, const char *field) {
    PackedLinear *p = NULL;
    cap_begin_in(tmpdir);
    int rc = packed_quant_create(q, kernel, &p);
    char *msg = cap_end();
    CHECK(rc == -1 && p == NULL, "%s: accepted", what);
    CHECK(msg && strstr(msg, field), "%s: the message names '%s': %s", what, field, msg ? msg : "(none)");
    free(msg);
    if (p) p->ops->destroy(p);
}

static void test_bad_input(void) {
    const Case c = {"rtn", 8, 64, 5, 16, 0, 0, 0, INFINITY, 0, 0};
    float *W = random_W(8, 64);
    QuantLayer q;
    CHECK(quantize_case(&c, QH_STATS_FP32, W, NULL, &q) == 0, "quantize wbits 5");
    expect_refused("wbits 5", &q, "auto", "wbits = 5");
    quant_layer_free(&q);
    Case c12 = c;
    c12.wbits = 4, c12.groupsize = 12;
    CHECK(quantize_case(&c12, QH_STATS_FP32, W, NULL, &q) == 0, "quantize groupsize 12");
    expect_refused("groupsize 12", &q, "ref", "groupsize = 12");
    quant_layer_free(&q);
    Case ok = c;
    ok.wbits = 3;
    CHECK(quantize_case(&ok, QH_STATS_FP16, W, NULL, &q) == 0, "quantize 3-bit fp16");
    q.codes[5] = 8;
    expect_refused("a code of 8 at 3 bits", &q, "auto", "codes[0, 5] = 8");
    q.codes[5] = 1;
    float keep = q.scale_fp[2];
    q.scale_fp[2] = keep * (1.0f + 1e-6f);
    expect_refused("an fp16-mode scale that is not fp16", &q, "auto", "scale_fp[2]");
    q.scale_fp[2] = keep;
    q.n = 65537; /* quant refuses such a layer itself; the layout checks too (16-bit columns) */
    expect_refused("n 65537", &q, "auto", "n = 65537");
    q.n = 64;
    expect_refused("unknown kernel", &q, "neon", "kernel 'neon'");
#ifndef QH_HAVE_CUDA
    expect_refused("cuda without CUDA", &q, "cuda", "no CUDA");
#endif
    PackedLinear *p = NULL;
    CHECK(packed_quant_create(&q, "auto", &p) == 0, "the repaired layer is accepted");
    if (p) {
        float x[64] = {0}, y[8];
        cap_begin_in(tmpdir);
        int rc = p->ops->matmul(p, x, 0, y, NULL);
        char *msg = cap_end();
        CHECK(rc == -1 && msg && strstr(msg, "nb = 0"), "matmul with nb 0 refused: %s", msg ? msg : "");
        free(msg);
        p->ops->destroy(p);
    }
    quant_layer_free(&q);
    free(W);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_qmatvec.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    printf("qmatvec: AVX2 kernel %s, AVX-512 kernel %s on this CPU\n",
           qmatvec_avx2_supported() ? "available" : "not available",
           qmatvec_avx512_supported() ? "available" : "not available");
    test_random_layers();
    test_outlier_patterns();
    test_threads_same_bits();
    test_long_rows();
    test_bad_input();
    test_stories260K();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
