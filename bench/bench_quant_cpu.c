/* bench_quant_cpu.c: CPU quantization time per phase (calibration forwards,
 * Hessians, factorization, column sweep, leave-one-out, packing):
 *  1. stories260K, SpQR (paper setting) and GPTQ, 128 calibration windows of
 *     512 tokens (target: SpQR under 30 s on 2 cores);
 *  2. a synthetic dim-1024 model, same phases;
 *  3. one LLaMA-7B-shaped 4096 x 4096 layer, Hessian from 65,536 tokens
 *     (32 windows of 2048), GPTQ and SpQR: seconds next to the time its GEMM
 *     work takes at the sgemm rate measured in the same run (target: within 2x).
 * Usage: bench_quant_cpu [--quick]  (quick: smaller part 3, for smoke tests) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "calibrate.h"
#include "model.h"
#include "quant.h"
#include "tokenizer.h"
#include "util.h"

static void print_phases(const char *what, const QuantRun *r) {
    printf("%-34s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", what, r->t_total, r->t_calib_forward, r->t_hessian,
           r->t_factor, r->t_sweep, r->t_loo, r->t_pack);
}

static int model_phases(const char *what, Model *m, const Tokenizer *t, const char *method, int nsamples, int seqlen,
                        const char *calib) {
    QuantRunSpec s = {.method = method, .calib = calib, .nsamples = nsamples, .seqlen = seqlen, .seed = 0,
                      .data_root = getenv("QH_DATA") ? getenv("QH_DATA") : "data", .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, method);
    QuantRun r;
    if (quantize_model(m, t, &s, &r) != 0) return -1;
    print_phases(what, &r);
    quant_run_free(&r);
    return 0;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    const char *root = getenv("QH_DATA") ? getenv("QH_DATA") : "data";
    char path[1024], tpath[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", root);
    snprintf(tpath, sizeof tpath, "%s/models/stories260K/tok512.bin", root);
    double sg = bench_sgemm_gflops(2048, 4096, 4096, 3);
    printf("sgemm rate (2048 x 4096 x 4096, same run): %.2f GFLOP/s\n\n", sg);
    printf("%-34s %8s %8s %8s %8s %8s %8s %8s\n", "seconds", "total", "calibfwd", "hessian", "factor", "sweep", "loo",
           "pack");
    Model m;
    Tokenizer t;
    if (model_load_llama2c(&m, path) != 0 || tokenizer_load(&t, tpath, 512) != 0) return 1;
    if (model_phases("stories260K spqr 128x512", &m, &t, "spqr", 128, 512, "c4") != 0) return 1;
    model_free(&m);
    model_load_llama2c(&m, path);
    if (model_phases("stories260K gptq 128x512", &m, &t, "gptq", 128, 512, "c4") != 0) return 1;
    model_free(&m);

    ModelConfig c = {.dim = 1024, .hidden_dim = 2752, .n_layers = 2, .n_heads = 16, .n_kv_heads = 16,
                     .vocab_size = 512, .seq_len = 512, .shared_classifier = 1};
    if (model_synth(&m, &c, 3) != 0) return 1;
    if (model_phases(quick ? "synth dim1024 L2 spqr 8x512" : "synth dim1024 L2 spqr 32x512", &m, &t, "spqr",
                     quick ? 8 : 32, 512, "c4") != 0)
        return 1;
    model_free(&m);
    tokenizer_free(&t);

    /* 3. one 4096 x 4096 layer */
    int n = quick ? 1024 : 4096, T = 2048, W = quick ? 4 : 32;
    printf("\none %d x %d layer, Hessian from %d tokens\n", n, n, T * W);
    float *X = qh_malloc(sizeof(float) * (size_t)T * n); /* (T, n) one window */
    float *Wt = qh_malloc(sizeof(float) * (size_t)n * n);  /* (n, n) weights */
    float *Wq = qh_malloc(sizeof(float) * (size_t)n * n);
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        Wt[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5) * 0.05f;
    }
    HessianAcc h;
    hessian_init(&h, n);
    double t0 = qh_now();
    for (int w = 0; w < W; w++) {
        for (size_t i = 0; i < (size_t)T * n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            /* correlated features: a shared component per token plus noise */
            X[i] = (float)((double)(s >> 40) / (double)(1ull << 24) - 0.5) + 0.3f * (float)((i / n) % 7);
        }
        hessian_add_window(&h, X, T);
    }
    double t_h = qh_now() - t0;
    double gemm_h = (double)T * W * n * (double)n; /* syrk: n(n+1)/2 dot products of length T*W, 2 flops each */
    const char *methods[2] = {"gptq", "spqr"};
    printf("%-8s %9s %9s %9s %9s %9s %11s %9s\n", "method", "hessian", "factor", "sweep", "loo", "total",
           "gemm-time", "ratio");
    for (int k = 0; k < 2; k++) {
        QuantParams p;
        quant_params_default(&p, methods[k]);
        if (k == 0) p.groupsize = 128;
        QuantLayer q;
        t0 = qh_now();
        if (quantize_layer_ref(methods[k], Wt, n, n, h.H, &p, &q, Wq) != 0) return 1;
        double tq = qh_now() - t0;
        /* GEMM work: Hessian + Cholesky/inverse/Cholesky (~n^3) + lazy block updates (~m n^2) */
        double gemm = gemm_h + (double)n * n * n + (double)n * n * (double)n;
        double gemm_time = gemm / (sg * 1e9);
        double total = t_h + tq;
        printf("%-8s %9.2f %9.2f %9.2f %9.2f %9.2f %11.2f %9.2f\n", methods[k], t_h, q.seconds_factor,
               q.seconds_sweep - q.seconds_loo, q.seconds_loo, total, gemm_time, total / gemm_time);
        quant_layer_free(&q);
    }
    printf("(ratio = total / gemm-time; target <= 2)\n");
    hessian_free(&h);
    free(X);
    free(Wt);
    free(Wq);
    return 0;
}
