/* test_gpu_pipeline.c: the whole pipeline on the GPU against the CPU on
 * stories260K (issue 5's agreement criteria): full-precision perplexity on
 * each dataset within 1e-4 relative (fp32 GEMMs); with QH_CUDA_MATH=fp16 /
 * bf16 (16-bit weights and GEMM inputs) within 3u (u = 2^-11 / 2^-8, the
 * type's largest relative rounding error), and visibly 16-bit: fp16 differs
 * from fp32, bf16 from fp16, bf16 further off than fp16; GPTQ and SpQR at 4
 * and 3 bits quantized by sequential calibration on each backend, in the
 * reference mode (fp32 values), and SpQR 3-bit in the deployment mode (fp16
 * values): every sub-layer's codes, outlier mask and statistics identical
 * (fp32 values up to 2^-16 relative: cuBLAS vs OpenBLAS summation noise) and
 * perplexity within 1e-3 relative, unless a rounding tie intervenes. A tie is
 * shown, not assumed: up to and including the first sub-layer (in quantization
 * order) where the runs differ, the Hessians agree within 1e-5 relative
 * (Frobenius), and the CPU quantizer given the GPU run's Hessians
 * rebuilds the GPU's model exactly (every code, outlier and statistic), with
 * the GPU's perplexity within 1e-3 on the CPU. The decision that flipped
 * then changes that sub-layer's decoded weights (and, for a code or a
 * first-level statistic, its later columns) and, through the next blocks'
 * inputs, every later sub-layer, so the perplexity of such a run
 * is reported, not bounded (code and outlier mismatch fractions are still
 * required < 1e-2). The CUDA run with its calibration activations in
 * device memory and in host memory (QH_CUDA_ACTS=host) gives the same
 * codes. AWQ asked for on the GPU runs on the CPU and gives the CPU's model
 * bit for bit, which evaluates on the GPU within 1e-4 of the CPU. Skips
 * without a GPU or without data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "datasets.h"
#include "forward.h"
#include "gpu_stories.h"
#include "perplexity.h"

static double ppl_on(QhDevice dev, const Model *m, const TokenStream *ts, int seqlen, long maxw) {
    Forward *f;
    if (forward_create(dev, m, seqlen, &f) != 0) return NAN;
    PplResult r;
    double p = perplexity_eval(f, ts->ids, ts->n, seqlen, maxw, &r) == 0 ? r.ppl : NAN;
    ppl_result_free(&r);
    forward_destroy(&f);
    return p;
}

/* outlier mask (m, n) in original column order from the CSR */
static void outlier_mask(const QuantLayer *q, unsigned char *mask) {
    memset(mask, 0, (size_t)q->m * q->n);
    if (!q->outlier_rowptr) return;
    for (int r = 0; r < q->m; r++)
        for (int64_t k = q->outlier_rowptr[r]; k < q->outlier_rowptr[r + 1]; k++) mask[(size_t)r * q->n + q->outlier_col[k]] = 1;
}

/* Every sub-layer's Hessian of one quantization run (QuantRunSpec.hessian_done). */
typedef struct {
    int count;  /* L * LIN_COUNT */
    double **H; /* (count) index layer * LIN_COUNT + kind, each (n, n) */
    int *n;     /* (count) */
} KeptHessians;

static void kept_hessians_init(KeptHessians *kh, int n_layers) {
    kh->count = n_layers * LIN_COUNT;
    kh->H = calloc((size_t)kh->count, sizeof(double *));
    kh->n = calloc((size_t)kh->count, sizeof(int));
}

static int keep_hessian(void *user, int layer, LinearKind kind, const double *H, int n) {
    KeptHessians *kh = user;
    int i = layer * LIN_COUNT + kind;
    if (i < 0 || i >= kh->count) return -1;
    free(kh->H[i]);
    kh->H[i] = malloc(sizeof(double) * (size_t)n * n);
    memcpy(kh->H[i], H, sizeof(double) * (size_t)n * n);
    kh->n[i] = n;
    return 0;
}

static void kept_hessians_free(KeptHessians *kh) {
    for (int i = 0; i < kh->count; i++) free(kh->H[i]);
    free(kh->H);
    free(kh->n);
    memset(kh, 0, sizeof *kh);
}

/* Entries of two (len) arrays that differ (either may be NULL: then all differ unless both are). */
static long long count_diff(const void *a, const void *b, size_t len, size_t elem) {
    if (!a || !b) return a == b ? 0 : (long long)len;
    long long d = 0;
    for (size_t i = 0; i < len; i++) d += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
    return d;
}

/* The same for two (len) arrays of values (statistics, outliers): equal when
 * within 2^-16 relative (and, for a zero-point, 2^-16 absolute): two fp16
 * numbers (deployment mode) are then equal only when identical, as before;
 * two fp32 values (reference mode) may differ by the fp32 summation noise of
 * cuBLAS vs OpenBLAS, which 16-bit rounding used to hide, never by a flipped
 * decision (a range or a second-level code that moved on a tie moves a value
 * by far more). */
static long long count_diff_values(const float *a, const float *b, size_t len, int zero_like) {
    if (!a || !b) return a == b ? 0 : (long long)len;
    const double t = 0x1p-16;
    long long d = 0;
    for (size_t i = 0; i < len; i++)
        d += !(fabs((double)a[i] - b[i]) <= t * (fabs(a[i]) + fabs(b[i])) + (zero_like ? t : 0.0));
    return d;
}

/* What differs between two quantized layers of the same shape: codes,
 * outlier-mask entries, and statistics (first-level scale / zero codes or
 * values, the second-level statistics, the outliers' values where the masks
 * agree, the column order); *which (may be NULL) names the first statistics
 * array that differs. Returns the sum. */
static long long layer_mismatch(const QuantLayer *x, const QuantLayer *y, long long *codes, long long *outl,
                                long long *stats, const char **which) {
    size_t n = (size_t)x->m * x->n, st = (size_t)x->m * x->ngroups, qq = (size_t)x->qq_groups * x->ngroups;
    unsigned char *mx = malloc(n), *my = malloc(n);
    outlier_mask(x, mx);
    outlier_mask(y, my);
    *codes = *outl = 0;
    for (size_t k = 0; k < n; k++) {
        *codes += x->codes[k] != y->codes[k];
        *outl += mx[k] != my[k];
    }
    free(mx);
    free(my);
    const struct { const char *name; const void *a, *b; size_t len, elem; } arr[] = {
        {"scale_codes", x->scale_codes, y->scale_codes, st, 1},
        {"zero_codes", x->zero_codes, y->zero_codes, st, 1},
        {"perm", x->perm, y->perm, (size_t)x->n, sizeof(int)},
    };
    const struct { const char *name; const float *a, *b; size_t len; int zero_like; } val[] = {
        {"scale_fp", x->scale_fp, y->scale_fp, st, 0},
        {"zero_fp", x->zero_fp, y->zero_fp, st, 1},
        {"qq_scale_scale", x->qq_scale_scale, y->qq_scale_scale, qq, 0},
        {"qq_scale_zero", x->qq_scale_zero, y->qq_scale_zero, qq, 1},
        {"qq_zero_scale", x->qq_zero_scale, y->qq_zero_scale, qq, 0},
        {"qq_zero_zero", x->qq_zero_zero, y->qq_zero_zero, qq, 1},
        {"outlier_val", x->outlier_val, y->outlier_val, *outl == 0 ? (size_t)x->n_outliers : 0, 0},
    };
    *stats = x->stats_dtype != y->stats_dtype;
    if (which) *which = *stats ? "stats_dtype" : "-";
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) {
        long long d = count_diff(arr[i].a, arr[i].b, arr[i].len, arr[i].elem);
        if (d > 0 && *stats == 0 && which) *which = arr[i].name;
        *stats += d;
    }
    for (size_t i = 0; i < sizeof val / sizeof val[0]; i++) {
        long long d = count_diff_values(val[i].a, val[i].b, val[i].len, val[i].zero_like);
        if (d > 0 && *stats == 0 && which) *which = val[i].name;
        *stats += d;
    }
    return *codes + *outl + *stats;
}

/* ||A - B||_F / ||B||_F of two (n, n) matrices */
static double rel_frobenius(const double *A, const double *B, int n) {
    double d = 0, b = 0;
    for (size_t i = 0; i < (size_t)n * n; i++) d += (A[i] - B[i]) * (A[i] - B[i]), b += B[i] * B[i];
    return sqrt(d / b);
}

/* AWQ asked for on the GPU: its search runs on the CPU backend (said with a
 * warning), so the quantized model is the CPU run's bit for bit; evaluated on
 * the GPU, its perplexity is the CPU's within 1e-4 (fp32 GEMMs). */
static void test_awq_on_cuda(const char *mp, const Tokenizer *t, const TokenStream *ts) {
    Model a, b;
    if (model_load_llama2c(&a, mp) != 0 || model_load_llama2c(&b, mp) != 0) return;
    QuantRunSpec s = {.method = "awq", .calib = "c4", .nsamples = 16, .seqlen = 128, .data_root = stories_data_root()};
    quant_params_default(&s.params, "awq");
    s.params.wbits = 3;
    s.params.groupsize = 32;
    QuantRun rc_, rg;
    s.device = QH_DEVICE_CPU;
    int ok = quantize_model(&a, t, &s, &rc_) == 0;
    s.device = QH_DEVICE_CUDA;
    ok = ok && quantize_model(&b, t, &s, &rg) == 0;
    CHECK(ok, "awq on cpu and asked on cuda");
    long long differ = 0;
    for (int l = 0; ok && l < a.cfg.n_layers; l++)
        for (int k = 0; k < LIN_COUNT; k++) {
            int rows, cols;
            model_linear_shape(&a.cfg, (LinearKind)k, &rows, &cols);
            differ += memcmp(a.w.blocks[l].lin[k], b.w.blocks[l].lin[k], sizeof(float) * (size_t)rows * cols) != 0;
        }
    CHECK(ok && differ == 0 && !strcmp(rg.device, "cpu"), "awq asked on cuda: %lld sub-layers differ, ran on %s",
          differ, ok ? rg.device : "-");
    double pc = ppl_on(QH_DEVICE_CPU, &a, ts, 512, 0), pg = ppl_on(QH_DEVICE_CUDA, &a, ts, 512, 0);
    printf("awq 3-bit g32 wikitext2: cpu %.6f cuda %.6f\n", pc, pg);
    CHECK(fabs(pg - pc) <= 1e-4 * pc, "awq model: cuda ppl %.8f vs cpu %.8f", pg, pc);
    if (ok) quant_run_free(&rc_), quant_run_free(&rg);
    model_free(&a);
    model_free(&b);
}

int main(void) {
    Model m;
    Tokenizer t;
    if (gpu_stories_open(&m, &t, "GPU pipeline tests") != 0) return test_summary();
    char mp[1024];
    stories_model_path(mp, sizeof mp);
    const char *sets[] = {"wikitext2", "ptb", "c4", "tinystories"};
    TokenStream ts[4];
    for (int i = 0; i < 4; i++) CHECK(dataset_eval(sets[i], stories_data_root(), &t, 512, &ts[i]) == 0, "dataset %s", sets[i]);
    printf("%-28s %14s %14s %10s\n", "full precision (seqlen 512)", "cpu ppl", "cuda ppl", "rel diff");
    double pc[4], pg[4];
    for (int i = 0; i < 4; i++) {
        pc[i] = ppl_on(QH_DEVICE_CPU, &m, &ts[i], 512, 0), pg[i] = ppl_on(QH_DEVICE_CUDA, &m, &ts[i], 512, 0);
        printf("%-28s %14.6f %14.6f %10.2e\n", sets[i], pc[i], pg[i], fabs(pg[i] - pc[i]) / pc[i]);
        CHECK(fabs(pg[i] - pc[i]) <= 1e-4 * pc[i], "%s: cuda ppl %.8f vs cpu %.8f", sets[i], pg[i], pc[i]);
    }
    /* the same with the linear layers' weights and inputs in fp16 / bf16
     * (QH_CUDA_MATH), fp32 accumulation. Bound 3u, u the largest relative
     * rounding error of one input (2^-11 fp16, 2^-8 bf16): a CPU emulation of
     * the path (the same roundings, fp32 elsewhere) gave at most 0.27u (fp16)
     * and 0.48u (bf16) on these four datasets; cuBLAS's old _FAST_16F gave
     * 0.27u too. 3u leaves room for the TF32 attention of these modes. */
    static const char *half[2] = {"fp16", "bf16"};
    static const double half_u[2] = {1.0 / 2048, 1.0 / 256};
    double ph[2][4];
    for (int h = 0; h < 2; h++) {
        setenv("QH_CUDA_MATH", half[h], 1);
        for (int i = 0; i < 4; i++) {
            ph[h][i] = ppl_on(QH_DEVICE_CUDA, &m, &ts[i], 512, 0);
            printf("%-12s %-15s %14.6f %14.6f %10.2e\n", sets[i], half[h], pc[i], ph[h][i],
                   fabs(ph[h][i] - pc[i]) / pc[i]);
            CHECK(fabs(ph[h][i] - pc[i]) <= 3 * half_u[h] * pc[i], "%s %s: cuda ppl %.8f vs cpu %.8f", sets[i],
                  half[h], ph[h][i], pc[i]);
        }
    }
    /* the 16-bit path is really taken: fp16 != fp32, bf16 != fp16, and bf16
     * (unit roundoff 8x fp16's) further from fp32 than fp16 over the four
     * datasets (the emulation: 17x; required 2x). cuBLAS's old _FAST_16F /
     * _16BF on fp32 tensors gave fp16 == bf16. */
    double s16 = 0, sbf = 0;
    for (int i = 0; i < 4; i++) {
        double d16 = fabs(ph[0][i] - pg[i]) / pg[i], dbf = fabs(ph[1][i] - pg[i]) / pg[i];
        double dhb = fabs(ph[1][i] - ph[0][i]) / ph[0][i];
        s16 += d16, sbf += dbf;
        CHECK(d16 > 1e-7, "%s: fp16 ppl %.9g differs from fp32 %.9g", sets[i], ph[0][i], pg[i]);
        CHECK(dhb > 1e-5, "%s: bf16 ppl %.9g differs from fp16 %.9g", sets[i], ph[1][i], ph[0][i]);
    }
    printf("mean relative distance from the fp32 ppl: fp16 %.2e, bf16 %.2e\n", s16 / 4, sbf / 4);
    CHECK(sbf > 2 * s16, "bf16 further from fp32 than fp16 (%.3g vs %.3g)", sbf / 4, s16 / 4);
    unsetenv("QH_CUDA_MATH");
    /* the reference mode (fp32 values, the default) for every method and width, the deployment mode
     * (fp16 values) for SpQR at 3 bits */
    static const struct { const char *method; int bits; QuantStatsDtype dtype; } runs[] = {
        {"gptq", 4, QH_STATS_FP32}, {"gptq", 3, QH_STATS_FP32}, {"spqr", 4, QH_STATS_FP32},
        {"spqr", 3, QH_STATS_FP32}, {"spqr", 3, QH_STATS_FP16},
    };
    printf("\n%-15s %12s %12s %12s %12s %10s\n", "method", "code mism.", "outl. mism.", "cpu ppl", "cuda ppl", "rel diff");
    for (size_t ri = 0; ri < sizeof runs / sizeof runs[0]; ri++) {
        const char *method = runs[ri].method;
        Model a, b;
        model_load_llama2c(&a, mp);
        model_load_llama2c(&b, mp);
        QuantRunSpec s = {.method = method, .calib = "c4", .nsamples = 128, .seqlen = 512, .seed = 0,
                          .data_root = stories_data_root(), .device = QH_DEVICE_CPU};
        quant_params_default(&s.params, method);
        s.params.wbits = runs[ri].bits;
        s.params.stats_dtype = runs[ri].dtype;
        QuantRun rc_, rg;
        KeptHessians hc, hg;
        kept_hessians_init(&hc, m.cfg.n_layers);
        kept_hessians_init(&hg, m.cfg.n_layers);
        s.hessian_done = keep_hessian;
        s.hessian_user = &hc;
        int ok_c = quantize_model(&a, &t, &s, &rc_) == 0;
        CHECK(ok_c, "cpu %s", method);
        s.device = QH_DEVICE_CUDA;
        s.hessian_user = &hg;
        int ok_g = quantize_model(&b, &t, &s, &rg) == 0;
        CHECK(ok_g, "cuda %s", method);
        s.hessian_done = NULL;
        if (!ok_c || !ok_g) { /* nothing to compare */
            quant_run_free(&rc_);
            quant_run_free(&rg);
            kept_hessians_free(&hc);
            kept_hessians_free(&hg);
            model_free(&a);
            model_free(&b);
            continue;
        }
        if (ri == 0) { /* the host-memory fallback of the activations: the same codes exactly */
            Model c;
            QuantRun rh;
            model_load_llama2c(&c, mp);
            setenv("QH_CUDA_ACTS", "host", 1);
            int ok_h = quantize_model(&c, &t, &s, &rh) == 0;
            CHECK(ok_h, "cuda, activations in host memory");
            unsetenv("QH_CUDA_ACTS");
            if (!ok_h) rh.n_layers = 0; /* nothing to compare */
            long long diff = 0;
            double worst = 0;
            for (int i = 0; i < rh.n_layers * LIN_COUNT; i++)
                diff += memcmp(rg.layers[i].codes, rh.layers[i].codes, (size_t)rg.layers[i].m * rg.layers[i].n) != 0;
            for (int l = 0; l < rh.n_layers; l++) {
                double e = fabs(rg.block_rel_err[l] - rh.block_rel_err[l]) / rh.block_rel_err[l];
                if (e > worst) worst = e;
            }
            printf("activations on the device vs in host memory: %lld sub-layers with different codes, block "
                   "relative error differs by %.2e (relative); seconds %.2f vs %.2f\n", diff, worst, rg.t_total,
                   rh.t_total);
            CHECK(rg.calib_acts && !strcmp(rg.calib_acts, "device"), "stories260K's activations kept in %s, "
                  "not in device memory", rg.calib_acts ? rg.calib_acts : "(none)");
            CHECK(rh.calib_acts && !strcmp(rh.calib_acts, "host"), "QH_CUDA_ACTS=host: activations kept in %s",
                  rh.calib_acts ? rh.calib_acts : "(none)");
            CHECK(diff == 0, "device vs host activations: %lld sub-layers differ", diff);
            CHECK(worst < 1e-9, "block relative errors differ by %g", worst);
            quant_run_free(&rh);
            model_free(&c);
        }
        long long nw = 0, cm = 0, om = 0;
        int first = -1; /* the first sub-layer, in quantization order, where the runs differ */
        for (int i = 0; i < rc_.n_layers * LIN_COUNT; i++) {
            long long c1, o1, s1;
            if (layer_mismatch(&rc_.layers[i], &rg.layers[i], &c1, &o1, &s1, NULL) > 0 && first < 0) first = i;
            cm += c1, om += o1;
            nw += (long long)rc_.layers[i].m * rc_.layers[i].n;
        }
        double pc = ppl_on(QH_DEVICE_CPU, &a, &ts[0], 512, 200), pg = ppl_on(QH_DEVICE_CUDA, &b, &ts[0], 512, 200);
        char name[32];
        snprintf(name, sizeof name, "%s w%d %s", method, runs[ri].bits, quant_stats_dtype_name(runs[ri].dtype));
        printf("%-15s %12.2e %12.2e %12.5f %12.5f %10.2e\n", name, (double)cm / nw, (double)om / nw, pc, pg,
               fabs(pg - pc) / pc);
        CHECK((double)cm / nw < 1e-2, "%s: code mismatch fraction %g", name, (double)cm / nw);
        CHECK((double)om / nw < 1e-2, "%s: outlier mask mismatch fraction %g", name, (double)om / nw);
        /* Hessians of every sub-layer up to the first difference (after it, the inputs differ by design) */
        int upto = first < 0 ? rc_.n_layers * LIN_COUNT : first + 1;
        double hmax = 0;
        for (int i = 0; i < upto; i++) {
            double d = hc.H[i] && hg.H[i] && hc.n[i] == hg.n[i] ? rel_frobenius(hg.H[i], hc.H[i], hc.n[i]) : INFINITY;
            if (!(d <= hmax)) hmax = d; /* NaN stays NaN and fails below */
        }
        printf("           Hessians of the first %d sub-layers: largest relative difference %.2e\n", upto, hmax);
        CHECK(hmax < 1e-5, "%s: Hessians differ by %.3g (relative)", name, hmax);
        /* replay: the CPU quantizer fed the GPU run's Hessians, sub-layer by
         * sub-layer, must rebuild the GPU's model exactly, and its CPU
         * perplexity must match the GPU's (the quantizers and the evaluation
         * agree; only the Hessians' float noise can separate the two runs) */
        Model r;
        long long xc = 0, xo = 0, xs = 0, rdiff_first = -1;
        double pr = NAN;
        if (model_load_llama2c(&r, mp) == 0) {
            for (int i = 0; i < r.cfg.n_layers * LIN_COUNT; i++) {
                int l = i / LIN_COUNT, k = i % LIN_COUNT;
                const QuantLayer *y = &rg.layers[i];
                QuantLayer q = {0};
                float *wdeq = malloc(sizeof(float) * (size_t)y->m * y->n); /* (m, n) */
                long long c1 = y->m * (long long)y->n, o1 = 0, s1 = 0;
                if (hg.H[i] && quantize_linear(NULL, &r.cfg, (LinearKind)k, method, r.w.blocks[l].lin[k],
                                               hg.H[i], &s.params, &q, wdeq) == 0) {
                    layer_mismatch(&q, y, &c1, &o1, &s1, NULL);
                    model_set_linear(&r, l, (LinearKind)k, wdeq);
                }
                if (c1 + o1 + s1 > 0 && rdiff_first < 0) rdiff_first = i;
                xc += c1, xo += o1, xs += s1;
                quant_layer_free(&q);
                free(wdeq);
            }
            pr = ppl_on(QH_DEVICE_CPU, &r, &ts[0], 512, 200);
            model_free(&r);
        }
        printf("           CPU quantizer with the GPU's Hessians: %lld codes, %lld outliers, %lld statistics differ "
               "from the GPU's; cpu ppl %.5f, rel diff from cuda %.2e\n", xc, xo, xs, pr, fabs(pg - pr) / pg);
        CHECK(xc == 0 && xo == 0 && xs == 0, "%s: the CPU quantizer given the GPU's Hessians differs first at "
              "sub-layer %lld (%lld codes, %lld outliers, %lld statistics in all)", name, rdiff_first, xc, xo, xs);
        CHECK(fabs(pg - pr) <= 1e-3 * pg, "%s: ppl of the replayed model %.6f (cpu) vs %.6f (cuda)", name, pr, pg);
        if (first < 0) {
            CHECK(fabs(pg - pc) <= 1e-3 * pc, "%s: wikitext2 ppl cuda %.6f vs cpu %.6f", name, pg, pc);
        } else {
            int l = first / LIN_COUNT, k = first % LIN_COUNT;
            long long own_c, own_o, own_s;
            const char *which;
            layer_mismatch(&rc_.layers[first], &rg.layers[first], &own_c, &own_o, &own_s, &which);
            printf("           first difference at layer %d %s: %lld codes, %lld outliers, %lld statistics (first in "
                   "%s), with Hessians %.2e apart (relative, Frobenius): a rounding tie, inherited by every later "
                   "sub-layer\n",
                   l, linear_names[k], own_c, own_o, own_s, which,
                   hc.H[first] && hg.H[first] ? rel_frobenius(hg.H[first], hc.H[first], hc.n[first]) : INFINITY);
        }
        kept_hessians_free(&hc);
        kept_hessians_free(&hg);
        printf("           seconds cpu %.2f (hessian %.2f, factor %.2f, sweep %.2f)  cuda %.2f (hessian %.2f, factor %.2f, sweep %.2f)\n",
               rc_.t_total, rc_.t_hessian, rc_.t_factor, rc_.t_sweep, rg.t_total, rg.t_hessian, rg.t_factor,
               rg.t_sweep);
        quant_run_free(&rc_);
        quant_run_free(&rg);
        model_free(&a);
        model_free(&b);
    }
    test_awq_on_cuda(mp, &t, &ts[0]);
    for (int i = 0; i < 4; i++) token_stream_free(&ts[i]);
    tokenizer_free(&t);
    model_free(&m);
    return test_summary();
}
