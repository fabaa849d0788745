/* gpu_compare.h: the CUDA backend against the CPU backend through forward.h,
 * for any model of any family (shared by test_gpu_forward.c, synthetic LLaMA
 * models and stories260K, and test_gpu_families.c, the transformers-made
 * checkpoints and synthetic Falcon models): window NLL and perplexity over
 * several windows, embed, block with the linear-input hook (same calls, same
 * order, same inputs), head_nll, last_logits, head_logits, weights_changed after a layer
 * is replaced, the biases mattering, and the whole set in the tf32 / fp16 /
 * bf16 modes with bounds derived from the type's rounding error
 * (compare_all_modes). Header-only, for test binaries built with CUDA (the
 * includer declares forward_cuda_create and includes check.h first). Not
 * here: the kernels one by one (test_gpu_kernels.c), error paths. */
#ifndef QH_GPU_COMPARE_H
#define QH_GPU_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "expect_close.h"
#include "forward.h"
#include "model.h"

int forward_cuda_create(const Model *m, int max_T, Forward **out);

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void rand_tokens(int *tok, int T, int V, uint64_t seed) {
    for (int t = 0; t < T; t++) tok[t] = (int)(splitmix(&seed) % (uint64_t)V);
}

/* Perplexity of `nw` windows of T tokens (the harness's definition: exp of the
 * mean NLL over all predicted positions), from one backend. */
static int window_ppl(Forward *f, const int *tokens, int nw, int T, double *nll_all, double *ppl) {
    double sum = 0;
    for (int w = 0; w < nw; w++) {
        double *nll = nll_all + (long)w * (T - 1);
        if (f->ops->window_nll(f, tokens + (long)w * T, T, nll) != 0) return -1;
        for (int t = 0; t < T - 1; t++) sum += nll[t];
    }
    *ppl = exp(sum / ((double)nw * (T - 1)));
    return 0;
}

/* Window NLL and perplexity of the CUDA backend against the CPU backend.
 * err, when not NULL, receives the per-position differences cuda - cpu
 * (nw * (T - 1)). */
static void compare_windows(const char *what, Forward *cpu, Forward *gpu, int nw, int T, uint64_t seed,
                            double ppl_rtol, double nll_tol, double *err) {
    int V = cpu->model->cfg.vocab_size;
    long n = (long)nw * (T - 1);
    int *tok = malloc(sizeof(int) * (size_t)nw * T);
    for (int w = 0; w < nw; w++) rand_tokens(tok + (long)w * T, T, V, seed + (uint64_t)w);
    double *nc = malloc(sizeof(double) * (size_t)n), *ng = malloc(sizeof(double) * (size_t)n);
    double pc = 0, pg = 0;
    int rc_c = window_ppl(cpu, tok, nw, T, nc, &pc), rc_g = window_ppl(gpu, tok, nw, T, ng, &pg);
    CHECK(rc_c == 0 && rc_g == 0, "%s: window_nll failed (cpu %d, cuda %d)", what, rc_c, rc_g);
    if (rc_c == 0 && rc_g == 0) {
        char w2[160];
        snprintf(w2, sizeof w2, "%s: per-position nll (%d windows of %d)", what, nw, T);
        expect_close_d(w2, ng, nc, n, nll_tol, nll_tol);
        CHECK(fabs(pg - pc) <= ppl_rtol * pc, "%s: perplexity cuda %.9g vs cpu %.9g (rel %.3g > %.3g)", what, pg, pc,
              fabs(pg - pc) / pc, ppl_rtol);
        printf("  %-44s ppl cpu %.6f cuda %.6f rel diff %.2e\n", what, pc, pg, fabs(pg - pc) / pc);
    }
    if (err)
        for (long i = 0; i < n; i++) err[i] = rc_c == 0 && rc_g == 0 ? ng[i] - nc[i] : NAN;
    free(tok), free(nc), free(ng);
}

/* The hook's calls, recorded: (layer, kind, T) and a copy of X (T, in). */
typedef struct HookCall {
    int layer, kind, T, in;
    float *X;
} HookCall;
typedef struct HookLog {
    const ModelConfig *cfg;
    HookCall calls[512];
    int n;
} HookLog;

static void record_hook(void *user, int layer, LinearKind k, const float *X, int T) {
    HookLog *h = user;
    if (h->n >= (int)(sizeof h->calls / sizeof h->calls[0])) return;
    int out, in;
    model_linear_shape(h->cfg, k, &out, &in);
    HookCall *c = &h->calls[h->n++];
    c->layer = layer, c->kind = (int)k, c->T = T, c->in = in;
    c->X = malloc(sizeof(float) * (size_t)T * in);
    memcpy(c->X, X, sizeof(float) * (size_t)T * in);
}
static void hook_log_free(HookLog *h) {
    for (int i = 0; i < h->n; i++) free(h->calls[i].X);
    h->n = 0;
}

/* embed + every block with the hook, on one backend: x (T, D) at the end. */
static int run_blocks_hooked(Forward *f, const int *tok, int T, float *x, HookLog *log) {
    if (f->ops->embed(f, tok, T, x) != 0) return -1;
    for (int l = 0; l < f->model->cfg.n_layers; l++)
        if (f->ops->block(f, l, x, T, record_hook, log) != 0) return -1;
    return 0;
}

/* Bounds of compare_pieces: activations (the hook inputs, x after the blocks)
 * |d| <= act_rtol |want| + act_atol; head_nll and last_logits |d| <= tol (1 + |want|). */
typedef struct PieceTol {
    double act_rtol, act_atol, head_nll, logits;
} PieceTol;
static const PieceTol fp32_tol = {1e-4, 1e-5, 1e-5, 1e-4};

/* embed, block (with the hook: one call per linear of the family, in the
 * same order), head_nll, last_logits and head_logits, one by one. */
static void compare_pieces(const char *what, Forward *cpu, Forward *gpu, int T, uint64_t seed, const PieceTol *tol) {
    const ModelConfig *c = &cpu->model->cfg;
    int D = c->dim, V = c->vocab_size, nlin = model_n_linears(c);
    char w2[160];
    int *tok = malloc(sizeof(int) * T);
    rand_tokens(tok, T, V, seed);
    float *xc = malloc(sizeof(float) * (size_t)T * D), *xg = malloc(sizeof(float) * (size_t)T * D);

    /* embed: a copy, so exact */
    CHECK(cpu->ops->embed(cpu, tok, T, xc) == 0 && gpu->ops->embed(gpu, tok, T, xg) == 0, "%s: embed", what);
    snprintf(w2, sizeof w2, "%s: embed (exact)", what);
    expect_close_f(w2, xg, xc, (long)T * D, 0, 0);

    /* the blocks with the hook */
    HookLog *hc = calloc(1, sizeof *hc), *hg = calloc(1, sizeof *hg);
    hc->cfg = hg->cfg = c;
    CHECK(run_blocks_hooked(cpu, tok, T, xc, hc) == 0, "%s: cpu blocks", what);
    CHECK(run_blocks_hooked(gpu, tok, T, xg, hg) == 0, "%s: cuda blocks", what);
    CHECK(hc->n == nlin * c->n_layers && hg->n == hc->n, "%s: hook calls cpu %d, cuda %d, expected %d", what, hc->n,
          hg->n, nlin * c->n_layers);
    int same_order = 1;
    for (int i = 0; i < hc->n && i < hg->n; i++) {
        HookCall *a = &hc->calls[i], *b = &hg->calls[i];
        if (a->layer != b->layer || a->kind != b->kind || a->T != b->T) {
            same_order = 0;
            continue;
        }
        snprintf(w2, sizeof w2, "%s: hook input layer %d %s", what, a->layer, model_linear_name(c, a->kind));
        expect_close_f(w2, b->X, a->X, (long)a->T * a->in, tol->act_rtol, tol->act_atol);
    }
    CHECK(same_order, "%s: the hook calls come in the same (layer, kind, T) order", what);
    snprintf(w2, sizeof w2, "%s: x after all blocks", what);
    expect_close_f(w2, xg, xc, (long)T * D, tol->act_rtol, tol->act_atol);
    hook_log_free(hc), hook_log_free(hg);
    free(hc), free(hg);

    /* head_nll on the same (CPU) residual stream */
    double *nc = malloc(sizeof(double) * T), *ng = malloc(sizeof(double) * T);
    CHECK(cpu->ops->head_nll(cpu, xc, tok, T, nc) == 0 && gpu->ops->head_nll(gpu, xc, tok, T, ng) == 0,
          "%s: head_nll", what);
    snprintf(w2, sizeof w2, "%s: head_nll", what);
    expect_close_d(w2, ng, nc, T - 1, tol->head_nll, tol->head_nll);

    /* last_logits */
    float *lc = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    CHECK(cpu->ops->last_logits(cpu, tok, T, lc) == 0 && gpu->ops->last_logits(gpu, tok, T, lg) == 0,
          "%s: last_logits", what);
    snprintf(w2, sizeof w2, "%s: last_logits", what);
    expect_close_f(w2, lg, lc, V, tol->logits, tol->logits);
    CHECK(cpu->ops->last_logits(cpu, tok, 1, lc) == 0 && gpu->ops->last_logits(gpu, tok, 1, lg) == 0,
          "%s: last_logits of one token", what);
    snprintf(w2, sizeof w2, "%s: last_logits T=1", what);
    expect_close_f(w2, lg, lc, V, tol->logits, tol->logits);

    /* head_logits of every position of the same (CPU) residual stream: the family's final norm (Falcon's
     * LayerNorm with its bias, not RMSNorm) */
    float *hc2 = malloc(sizeof(float) * (size_t)T * V), *hg2 = malloc(sizeof(float) * (size_t)T * V);
    CHECK(cpu->ops->head_logits(cpu, xc, T, hc2) == 0 && gpu->ops->head_logits(gpu, xc, T, hg2) == 0,
          "%s: head_logits", what);
    snprintf(w2, sizeof w2, "%s: head_logits", what);
    expect_close_f(w2, hg2, hc2, (long)T * V, tol->logits, tol->logits);
    free(hc2), free(hg2);
    free(nc), free(ng), free(lc), free(lg), free(xc), free(xg), free(tok);
}

/* Replace one matrix of `layer`: only after weights_changed does the CUDA
 * backend see it; then it matches the CPU backend again, within nll_tol. */
static void check_weights_changed(const char *what, Model *m, Forward *cpu, Forward *gpu, int layer, LinearKind k,
                                  int T, double nll_tol) {
    int V = m->cfg.vocab_size, out, in;
    model_linear_shape(&m->cfg, k, &out, &in);
    int *tok = malloc(sizeof(int) * T);
    rand_tokens(tok, T, V, 77);
    double *before = malloc(sizeof(double) * T), *stale = malloc(sizeof(double) * T),
           *nc = malloc(sizeof(double) * T), *ng = malloc(sizeof(double) * T);
    CHECK(gpu->ops->window_nll(gpu, tok, T, before) == 0, "%s: window before", what);
    float *W = malloc(sizeof(float) * (size_t)out * in);
    const float *old = m->w.blocks[layer].lin[k];
    for (long i = 0; i < (long)out * in; i++) W[i] = -0.7f * old[i] + 0.01f * (float)((i * 7919) % 13 - 6);
    model_set_linear(m, layer, k, W);
    free(W);
    CHECK(gpu->ops->window_nll(gpu, tok, T, stale) == 0, "%s: window with stale weights", what);
    int same = 1; /* the same device computation twice: equal up to rounding noise, if any */
    for (int t = 0; t < T - 1; t++) same &= fabs(stale[t] - before[t]) <= 1e-9 * (1 + fabs(before[t]));
    CHECK(same, "%s: without weights_changed the device keeps its copy", what);
    CHECK(gpu->ops->weights_changed(gpu, layer) == 0 && cpu->ops->weights_changed(cpu, layer) == 0,
          "%s: weights_changed", what);
    CHECK(cpu->ops->window_nll(cpu, tok, T, nc) == 0 && gpu->ops->window_nll(gpu, tok, T, ng) == 0,
          "%s: window after", what);
    char w2[160];
    snprintf(w2, sizeof w2, "%s: nll after replacing layer %d %s", what, layer, model_linear_name(&m->cfg, k));
    expect_close_d(w2, ng, nc, T - 1, nll_tol, nll_tol);
    int moved = 0;
    for (int t = 0; t < T - 1; t++) moved |= fabs(ng[t] - before[t]) > 1e-3;
    CHECK(moved, "%s: the replaced layer changes the nll", what);
    free(tok), free(before), free(stale), free(nc), free(ng);
}

/* The linear biases matter (Qwen2's q/k/v, Falcon's on every linear): the
 * same weights without them (bias pointers NULL) give a window NLL far from
 * the one with them, so the comparisons above would see a backend that
 * dropped them. */
static void check_bias_matters(const char *what, const Model *m, Forward *gpu) {
    int L = m->cfg.n_layers, T = 37 < gpu->max_T ? 37 : gpu->max_T;
    Model nb = *m; /* shares every weight; not freed */
    nb.cfg.qkv_bias = 0;
    nb.cfg.linear_bias = 0;
    nb.w.blocks = malloc(sizeof(BlockWeights) * (size_t)L);
    for (int l = 0; l < L; l++) {
        nb.w.blocks[l] = m->w.blocks[l];
        for (int k = 0; k < LIN_COUNT; k++) nb.w.blocks[l].bias[k] = NULL;
    }
    int *tok = malloc(sizeof(int) * T);
    rand_tokens(tok, T, m->cfg.vocab_size, 31);
    double *a = malloc(sizeof(double) * T), *b = malloc(sizeof(double) * T);
    Forward *g2 = NULL;
    CHECK(forward_cuda_create(&nb, T, &g2) == 0, "%s: cuda backend without the biases", what);
    if (g2 && gpu->ops->window_nll(gpu, tok, T, a) == 0 && g2->ops->window_nll(g2, tok, T, b) == 0) {
        double d = 0;
        for (int t = 0; t < T - 1; t++) d = fmax(d, fabs(a[t] - b[t]));
        CHECK(d > 0.05, "%s: the biases change the nll (max %.3g)", what, d);
    } else
        CHECK(0, "%s: window_nll with and without the biases", what);
    forward_destroy(&g2);
    free(nb.w.blocks), free(tok), free(a), free(b);
}

/* The 16-bit path is really taken: with err16 / errbf the per-position nll
 * differences from the CPU (fp32) of the fp16 / bf16 modes on the same
 * windows, fp16 differs from fp32, bf16 from fp16, and bf16 is several times
 * further off than fp16 (its unit roundoff is 8x fp16's: rms ratio expected
 * ~5-8 with fp16's TF32 attention error added; required > 2). The old path
 * (cuBLAS's _FAST_16F / _16BF on fp32 tensors) gave fp16 == bf16. */
static void check_16bit_taken(const char *what, const double *err16, const double *errbf, long n) {
    double s16 = 0, sbf = 0, m16 = 0, dmax = 0;
    for (long i = 0; i < n; i++) {
        s16 += err16[i] * err16[i], sbf += errbf[i] * errbf[i];
        m16 = fmax(m16, fabs(err16[i]));
        dmax = fmax(dmax, fabs(errbf[i] - err16[i]));
    }
    double r16 = sqrt(s16 / n), rbf = sqrt(sbf / n);
    printf("  %-44s nll rms off fp32: fp16 %.2e bf16 %.2e (ratio %.1f); max |bf16 - fp16| %.2e\n", what, r16, rbf,
           r16 > 0 ? rbf / r16 : INFINITY, dmax);
    CHECK(m16 > 1e-5, "%s: fp16 differs from fp32 (max %.3g)", what, m16);
    CHECK(dmax > 1e-4, "%s: bf16 differs from fp16 (max %.3g)", what, dmax);
    CHECK(rbf > 2 * r16, "%s: bf16 is further off fp32 than fp16 (rms %.3g vs %.3g)", what, rbf, r16);
}

/* What compare_all_modes runs on a model: windows of T positions (T <= max_T),
 * the layers replaced (weights_changed: [0] and [1] in fp32, [2] in bf16),
 * and which of the checks apply. */
typedef struct CompareSpec {
    int T, max_T;
    int changed_layer[3];
    LinearKind changed_kind[3];
    int bias_matters;   /* the model has linear biases: check that they matter */
    int check_16bit;    /* check_16bit_taken (models whose weights are not already 16-bit values) */
    void (*fp32_extra)(Forward *gpu); /* more checks on the fp32 backend at the end of its turn, or NULL */
} CompareSpec;

/* The CUDA backend of m against the CPU backend in every math mode:
 * fp32 (windows within 1e-4, compare_pieces with fp32_tol, weights_changed),
 * tf32 (about 1e-3), and fp16 / bf16 (16-bit weights and GEMM inputs, fp32
 * accumulation) with bounds from u, the largest relative rounding error of
 * one input (round to nearest: 2^-11 for fp16's 11 significant bits, 2^-8 for
 * bf16's 8): every linear output is off by ~u relative, and these errors add
 * up through the blocks and the head. A CPU emulation of the path (the same
 * roundings, fp32 elsewhere) on the synthetic LLaMA models of
 * test_gpu_forward.c gave at most, in units of u: perplexity 0.35u,
 * per-position nll |d| / (1 + |nll|) 1.1u (2.1u over 1280 positions),
 * head_nll 0.35u, activations |d| / (1 + |x|) 10u. The bounds below are 3u,
 * 8u, 8u and 32u: 3-20x those, room for the TF32 attention of these modes and
 * for other draws, and still far below what a wrong layout, a dropped bias or
 * a mixed-up type does (O(0.1..1)). QH_CUDA_MATH is unset at the end. */
static void compare_all_modes(const char *what, Model *m, const CompareSpec *cs) {
    Forward *cpu = NULL, *gpu = NULL;
    int T = cs->T;
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cpu_create(m, cs->max_T, &cpu) == 0, "%s: cpu backend", what);
    CHECK(forward_create(QH_DEVICE_CUDA, m, cs->max_T, &gpu) == 0, "%s: cuda backend through forward_create", what);
    if (cpu && gpu) {
        CHECK(!strcmp(gpu->ops->name, "cuda"), "backend name '%s'", gpu->ops->name);
        compare_windows(what, cpu, gpu, 3, T, 11, 1e-4, 1e-4, NULL);
        compare_windows(what, cpu, gpu, 1, cs->max_T, 12, 1e-4, 1e-4, NULL);
        compare_windows(what, cpu, gpu, 2, 2, 13, 1e-4, 1e-4, NULL);
        if (cs->bias_matters) check_bias_matters(what, m, gpu);
        compare_pieces(what, cpu, gpu, T, 21, &fp32_tol);
        for (int i = 0; i < 2; i++)
            check_weights_changed(what, m, cpu, gpu, cs->changed_layer[i], cs->changed_kind[i], T, 1e-4);
        if (cs->fp32_extra) cs->fp32_extra(gpu);
    }
    forward_destroy(&gpu);

    /* tf32: same results to about 1e-3 */
    setenv("QH_CUDA_MATH", "tf32", 1);
    CHECK(forward_cuda_create(m, cs->max_T, &gpu) == 0, "%s: cuda backend in tf32 mode", what);
    if (cpu && gpu) {
        char w2[128];
        snprintf(w2, sizeof w2, "%s tf32", what);
        compare_windows(w2, cpu, gpu, 3, T, 11, 1e-2, 2e-2, NULL);
    }
    forward_destroy(&gpu);

    static const char *half[2] = {"fp16", "bf16"};
    static const double half_u[2] = {1.0 / 2048, 1.0 / 256};
    long n_err = 3L * (T - 1);
    double *err[2] = {malloc(sizeof(double) * (size_t)n_err), malloc(sizeof(double) * (size_t)n_err)};
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        double u = half_u[i];
        setenv("QH_CUDA_MATH", half[i], 1);
        CHECK(forward_cuda_create(m, cs->max_T, &gpu) == 0, "%s: cuda backend in %s mode", what, half[i]);
        if (cpu && gpu) {
            char w2[128];
            PieceTol t = {32 * u, 32 * u, 8 * u, 32 * u};
            snprintf(w2, sizeof w2, "%s %s", what, half[i]);
            compare_windows(w2, cpu, gpu, 3, T, 11, 3 * u, 8 * u, err[i]);
            /* 2 positions: their perplexity is no average, only the nll bound
             * carries (8u (1 + |nll|), |nll| ~ log V ~ 6) */
            compare_windows(w2, cpu, gpu, 2, 2, 13, 64 * u, 8 * u, NULL);
            compare_pieces(w2, cpu, gpu, T, 21, &t);
            /* the re-conversion to 16 bits (after the windows above: it changes the model) */
            if (i == 1)
                check_weights_changed(w2, m, cpu, gpu, cs->changed_layer[2], cs->changed_kind[2], T, 8 * u);
        } else
            ok = 0;
        forward_destroy(&gpu);
    }
    if (ok && cs->check_16bit) check_16bit_taken(what, err[0], err[1], n_err);
    free(err[0]), free(err[1]);
    unsetenv("QH_CUDA_MATH");
    forward_destroy(&cpu);
}

#endif
