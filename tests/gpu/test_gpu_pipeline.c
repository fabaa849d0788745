/* test_gpu_pipeline.c: the whole pipeline on the GPU against the CPU on
 * stories260K (issue 5's agreement criteria): full-precision perplexity on
 * each dataset within 1e-4 relative (fp32 GEMMs); with QH_CUDA_MATH=fp16 /
 * bf16 (16-bit weights and GEMM inputs) within 3u (u = 2^-11 / 2^-8, the
 * type's largest relative rounding error), and visibly 16-bit: fp16 differs
 * from fp32, bf16 from fp16, bf16 further off than fp16; GPTQ and SpQR at 4
 * and 3 bits quantized by sequential calibration on each backend: codes
 * identical except at rounding ties (mismatch fraction reported, required
 * < 1e-2 since a tie early in the sequence changes later blocks' inputs),
 * outlier masks likewise, perplexity within 1e-3 relative; the CUDA run
 * with its calibration activations in device memory and in host memory
 * (QH_CUDA_ACTS=host) gives the same codes. Skips without a GPU or without
 * data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "datasets.h"
#include "forward.h"
#include "perplexity.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

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

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible");
        return test_summary();
    }
    char mp[1024], tp[1024];
    snprintf(mp, sizeof mp, "%s/models/stories260K/stories260K.bin", root());
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root());
    Model m;
    Tokenizer t;
    if (access(mp, R_OK) != 0 || model_load_llama2c(&m, mp) != 0 || tokenizer_load(&t, tp, 512) != 0) {
        SKIP("stories260K not found under QH_DATA");
        return test_summary();
    }
    const char *sets[] = {"wikitext2", "ptb", "c4", "tinystories"};
    TokenStream ts[4];
    for (int i = 0; i < 4; i++) CHECK(dataset_eval(sets[i], root(), &t, 512, &ts[i]) == 0, "dataset %s", sets[i]);
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
    const char *methods[] = {"gptq", "spqr"};
    int bits[] = {4, 3};
    printf("\n%-10s %12s %12s %12s %12s %10s\n", "method", "code mism.", "outl. mism.", "cpu ppl", "cuda ppl", "rel diff");
    for (int mi = 0; mi < 2; mi++)
        for (int bi = 0; bi < 2; bi++) {
            Model a, b;
            model_load_llama2c(&a, mp);
            model_load_llama2c(&b, mp);
            QuantRunSpec s = {.method = methods[mi], .calib = "c4", .nsamples = 128, .seqlen = 512, .seed = 0,
                              .data_root = root(), .device = QH_DEVICE_CPU};
            quant_params_default(&s.params, methods[mi]);
            s.params.wbits = bits[bi];
            QuantRun rc_, rg;
            CHECK(quantize_model(&a, &t, &s, &rc_) == 0, "cpu %s", methods[mi]);
            s.device = QH_DEVICE_CUDA;
            CHECK(quantize_model(&b, &t, &s, &rg) == 0, "cuda %s", methods[mi]);
            if (mi == 0 && bi == 0) { /* the host-memory fallback of the activations: the same codes exactly */
                Model c;
                QuantRun rh;
                model_load_llama2c(&c, mp);
                setenv("QH_CUDA_ACTS", "host", 1);
                CHECK(quantize_model(&c, &t, &s, &rh) == 0, "cuda, activations in host memory");
                unsetenv("QH_CUDA_ACTS");
                long long diff = 0;
                double worst = 0;
                for (int i = 0; i < rg.n_layers * LIN_COUNT; i++)
                    diff += memcmp(rg.layers[i].codes, rh.layers[i].codes, (size_t)rg.layers[i].m * rg.layers[i].n) != 0;
                for (int l = 0; l < rg.n_layers; l++) {
                    double e = fabs(rg.block_rel_err[l] - rh.block_rel_err[l]) / rh.block_rel_err[l];
                    if (e > worst) worst = e;
                }
                printf("activations on the device vs in host memory: %lld sub-layers with different codes, block "
                       "relative error differs by %.2e (relative); seconds %.2f vs %.2f\n", diff, worst, rg.t_total,
                       rh.t_total);
                CHECK(diff == 0, "device vs host activations: %lld sub-layers differ", diff);
                CHECK(worst < 1e-9, "block relative errors differ by %g", worst);
                quant_run_free(&rh);
                model_free(&c);
            }
            long long nw = 0, cm = 0, om = 0;
            for (int i = 0; i < rc_.n_layers * LIN_COUNT; i++) {
                const QuantLayer *x = &rc_.layers[i], *y = &rg.layers[i];
                size_t n = (size_t)x->m * x->n;
                unsigned char *mx = malloc(n), *my = malloc(n);
                outlier_mask(x, mx);
                outlier_mask(y, my);
                for (size_t k = 0; k < n; k++) {
                    cm += x->codes[k] != y->codes[k];
                    om += mx[k] != my[k];
                }
                nw += (long long)n;
                free(mx);
                free(my);
            }
            double pc = ppl_on(QH_DEVICE_CPU, &a, &ts[0], 512, 200), pg = ppl_on(QH_DEVICE_CUDA, &b, &ts[0], 512, 200);
            char name[32];
            snprintf(name, sizeof name, "%s w%d", methods[mi], bits[bi]);
            printf("%-10s %12.2e %12.2e %12.5f %12.5f %10.2e\n", name, (double)cm / nw, (double)om / nw, pc, pg,
                   fabs(pg - pc) / pc);
            CHECK((double)cm / nw < 1e-2, "%s: code mismatch fraction %g", name, (double)cm / nw);
            CHECK((double)om / nw < 1e-2, "%s: outlier mask mismatch fraction %g", name, (double)om / nw);
            CHECK(fabs(pg - pc) <= 1e-3 * pc, "%s: wikitext2 ppl cuda %.6f vs cpu %.6f", name, pg, pc);
            printf("           seconds cpu %.2f (hessian %.2f, factor %.2f, sweep %.2f)  cuda %.2f (hessian %.2f, factor %.2f, sweep %.2f)\n",
                   rc_.t_total, rc_.t_hessian, rc_.t_factor, rc_.t_sweep, rg.t_total, rg.t_hessian, rg.t_factor,
                   rg.t_sweep);
            quant_run_free(&rc_);
            quant_run_free(&rg);
            model_free(&a);
            model_free(&b);
        }
    for (int i = 0; i < 4; i++) token_stream_free(&ts[i]);
    tokenizer_free(&t);
    model_free(&m);
    return test_summary();
}
