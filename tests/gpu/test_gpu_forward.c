/* test_gpu_forward.c: the CUDA backend (kernels/forward_cuda.cu) against the
 * CPU backend (forward_cpu_create) through forward.h only: window NLL and
 * perplexity over several windows (within 1e-4 relative in fp32 mode, loosely
 * in tf32 mode), embed, block with the linear-input hook (same calls, same
 * order, same inputs), head_nll, last_logits, weights_changed after a layer is
 * replaced, and the error paths (window too long, bad token, bad layer, bad
 * QH_CUDA_MATH). The fp16 / bf16 modes (16-bit weights and GEMM inputs) go
 * through the same comparisons with bounds derived from the type's rounding
 * error, and must differ from each other and from fp32 the way 16-bit
 * rounding does (bf16 several times further off than fp16). On synthetic
 * models of odd sizes (model_synth; one with Qwen2's q/k/v biases; one with
 * a window of 1100 tokens for the row-blocked attention) and on
 * stories260K ($QH_DATA/models/stories260K/stories260K.bin, QH_DATA defaults
 * to "data"; skipped when missing). Without a GPU (or in a build without nvcc)
 * everything is reported skipped and the exit status is 0. Not here: the
 * kernels one by one (test_gpu_kernels.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "model.h"

#ifdef QH_HAVE_CUDA
int forward_cuda_create(const Model *m, int max_T, Forward **out);

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void rand_tokens(int *tok, int T, int V, uint64_t seed) {
    for (int t = 0; t < T; t++) tok[t] = (int)(splitmix(&seed) % (uint64_t)V);
}

#include "expect_close.h"

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

/* embed, block (with the hook), head_nll and last_logits, one by one. */
static void compare_pieces(const char *what, Forward *cpu, Forward *gpu, int T, uint64_t seed, const PieceTol *tol) {
    const ModelConfig *c = &cpu->model->cfg;
    int D = c->dim, V = c->vocab_size;
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
    CHECK(hc->n == LIN_COUNT * c->n_layers && hg->n == hc->n, "%s: hook calls cpu %d, cuda %d, expected %d", what,
          hc->n, hg->n, LIN_COUNT * c->n_layers);
    int same_order = 1;
    for (int i = 0; i < hc->n && i < hg->n; i++) {
        HookCall *a = &hc->calls[i], *b = &hg->calls[i];
        if (a->layer != b->layer || a->kind != b->kind || a->T != b->T) {
            same_order = 0;
            continue;
        }
        snprintf(w2, sizeof w2, "%s: hook input layer %d %s", what, a->layer, linear_names[a->kind]);
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
    snprintf(w2, sizeof w2, "%s: nll after replacing layer %d %s", what, layer, linear_names[k]);
    expect_close_d(w2, ng, nc, T - 1, nll_tol, nll_tol);
    int moved = 0;
    for (int t = 0; t < T - 1; t++) moved |= fabs(ng[t] - before[t]) > 1e-3;
    CHECK(moved, "%s: the replaced layer changes the nll", what);
    free(tok), free(before), free(stale), free(nc), free(ng);
}

static void check_errors(Forward *gpu) {
    int T = gpu->max_T + 1, V = gpu->model->cfg.vocab_size;
    int *tok = calloc((size_t)T, sizeof(int));
    double *nll = malloc(sizeof(double) * T);
    float *x = calloc((size_t)T * gpu->model->cfg.dim, sizeof(float));
    fprintf(stderr, "(the errors below are expected)\n");
    CHECK(gpu->ops->window_nll(gpu, tok, T, nll) == -1, "a window longer than max_T is refused");
    CHECK(gpu->ops->window_nll(gpu, tok, 1, nll) == -1, "a window of one token has no nll");
    tok[3] = V;
    CHECK(gpu->ops->window_nll(gpu, tok, 8, nll) == -1, "token id V is refused");
    tok[3] = -1;
    CHECK(gpu->ops->embed(gpu, tok, 8, x) == -1, "token id -1 is refused");
    tok[3] = 0;
    CHECK(gpu->ops->block(gpu, gpu->model->cfg.n_layers, x, 8, NULL, NULL) == -1, "layer L is refused");
    CHECK(gpu->ops->weights_changed(gpu, -1) == -1, "weights_changed(-1) is refused");
    CHECK(gpu->ops->window_nll(gpu, tok, 8, nll) == 0, "the backend still works after refusals");
    free(tok), free(nll), free(x);
}

/* The q/k/v biases matter: the same weights without them (bias pointers NULL)
 * give a window NLL far from the one with them, so the comparisons above
 * would see a backend that dropped them. */
static void check_bias_matters(const char *what, const Model *m, Forward *gpu) {
    int L = m->cfg.n_layers, T = 37;
    Model nb = *m; /* shares every weight; not freed */
    nb.cfg.qkv_bias = 0;
    nb.w.blocks = malloc(sizeof(BlockWeights) * (size_t)L);
    for (int l = 0; l < L; l++) {
        nb.w.blocks[l] = m->w.blocks[l];
        for (int k = 0; k < LIN_COUNT; k++) nb.w.blocks[l].bias[k] = NULL;
    }
    int *tok = malloc(sizeof(int) * T);
    rand_tokens(tok, T, m->cfg.vocab_size, 31);
    double *a = malloc(sizeof(double) * T), *b = malloc(sizeof(double) * T);
    Forward *g2 = NULL;
    CHECK(forward_cuda_create(&nb, 64, &g2) == 0, "%s: cuda backend without the biases", what);
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

/* ---- the models ------------------------------------------------------------------ */

static void test_synth(const char *what, int H, int Hkv, int shared, int qkv_bias) {
    ModelConfig c = {.dim = 72, .hidden_dim = 173, .n_layers = 2, .n_heads = H, .n_kv_heads = Hkv,
                     .vocab_size = 517, .seq_len = 64, .shared_classifier = shared, .qkv_bias = qkv_bias};
    Model m;
    if (model_synth(&m, &c, 1234 + (uint64_t)Hkv) != 0) {
        CHECK(0, "%s: model_synth", what);
        return;
    }
    printf("%s: dim %d hidden %d layers %d heads %d kv heads %d vocab %d%s%s\n", what, c.dim, c.hidden_dim,
           c.n_layers, H, Hkv, c.vocab_size, shared ? " shared classifier" : "", qkv_bias ? " q/k/v biases" : "");
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cpu_create(&m, 64, &cpu) == 0, "cpu backend");
    CHECK(forward_create(QH_DEVICE_CUDA, &m, 64, &gpu) == 0, "cuda backend through forward_create");
    if (cpu && gpu) {
        CHECK(!strcmp(gpu->ops->name, "cuda"), "backend name '%s'", gpu->ops->name);
        compare_windows(what, cpu, gpu, 3, 37, 11, 1e-4, 1e-4, NULL);
        compare_windows(what, cpu, gpu, 1, 64, 12, 1e-4, 1e-4, NULL);
        compare_windows(what, cpu, gpu, 2, 2, 13, 1e-4, 1e-4, NULL);
        if (qkv_bias) check_bias_matters(what, &m, gpu);
        compare_pieces(what, cpu, gpu, 37, 21, &fp32_tol);
        check_weights_changed(what, &m, cpu, gpu, 1, LIN_UP, 37, 1e-4);
        check_weights_changed(what, &m, cpu, gpu, 0, LIN_K, 37, 1e-4);
        check_errors(gpu);
    }
    forward_destroy(&gpu);

    /* tf32: same results to about 1e-3 */
    setenv("QH_CUDA_MATH", "tf32", 1);
    CHECK(forward_cuda_create(&m, 64, &gpu) == 0, "cuda backend in tf32 mode");
    if (cpu && gpu) {
        char w2[96];
        snprintf(w2, sizeof w2, "%s tf32", what);
        compare_windows(w2, cpu, gpu, 3, 37, 11, 1e-2, 2e-2, NULL);
    }
    forward_destroy(&gpu);
    /* fp16 / bf16: weights and GEMM inputs stored in 16 bits, fp32 accumulation.
     * The bounds follow from u, the largest relative rounding error of one
     * input (round to nearest: 2^-11 for fp16's 11 significant bits, 2^-8 for
     * bf16's 8): every linear output is off by ~u relative, and these errors
     * add up through the blocks and the head. A CPU emulation of the path (the
     * same roundings, fp32 elsewhere) on these models gave at most, in units
     * of u: perplexity 0.35u, per-position nll |d| / (1 + |nll|) 1.1u (2.1u
     * over 1280 positions), head_nll 0.35u, activations |d| / (1 + |x|) 10u.
     * The bounds below are 3u, 8u, 8u and 32u: 3-20x those, room for the TF32
     * attention of these modes and for other draws, and still far below what
     * a wrong layout, a dropped bias or a mixed-up type does (O(0.1..1)). */
    static const char *half[2] = {"fp16", "bf16"};
    static const double half_u[2] = {1.0 / 2048, 1.0 / 256};
    long n_err = 3L * 36;
    double *err[2] = {malloc(sizeof(double) * (size_t)n_err), malloc(sizeof(double) * (size_t)n_err)};
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        double u = half_u[i];
        setenv("QH_CUDA_MATH", half[i], 1);
        CHECK(forward_cuda_create(&m, 64, &gpu) == 0, "cuda backend in %s mode", half[i]);
        if (cpu && gpu) {
            char w2[96];
            PieceTol t = {32 * u, 32 * u, 8 * u, 32 * u};
            snprintf(w2, sizeof w2, "%s %s", what, half[i]);
            compare_windows(w2, cpu, gpu, 3, 37, 11, 3 * u, 8 * u, err[i]);
            /* 2 positions: their perplexity is no average, only the nll bound
             * carries (8u (1 + |nll|), |nll| ~ log V ~ 6) */
            compare_windows(w2, cpu, gpu, 2, 2, 13, 64 * u, 8 * u, NULL);
            compare_pieces(w2, cpu, gpu, 37, 21, &t);
            /* the re-conversion to 16 bits (after the windows above: it changes the model) */
            if (i == 1) check_weights_changed(w2, &m, cpu, gpu, 1, LIN_DOWN, 37, 8 * u);
        } else
            ok = 0;
        forward_destroy(&gpu);
    }
    if (ok) check_16bit_taken(what, err[0], err[1], n_err);
    free(err[0]), free(err[1]);
    setenv("QH_CUDA_MATH", "fp8", 1);
    fprintf(stderr, "(the error below is expected)\n");
    CHECK(forward_cuda_create(&m, 64, &gpu) == -1 && gpu == NULL, "QH_CUDA_MATH=fp8 is refused");
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cuda_create(&m, 1, &gpu) == -1, "max_T 1 is refused");
    forward_destroy(&cpu);
    model_free(&m);
}

/* A window long enough for the backend's row-blocked attention (T >= 1024:
 * ATTENTION_ROW_BLOCKS blocks of query rows against up to 1100 keys, the
 * softmax's 128-thread paths up to 16 columns a thread), whole model against
 * the CPU. */
static void test_long_window(void) {
    ModelConfig c = {.dim = 48, .hidden_dim = 97, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 301, .seq_len = 1100, .shared_classifier = 0};
    Model m;
    if (model_synth(&m, &c, 77) != 0) {
        CHECK(0, "long window: model_synth");
        return;
    }
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cpu_create(&m, c.seq_len, &cpu) == 0 && forward_cuda_create(&m, c.seq_len, &gpu) == 0,
          "long window: backends");
    if (cpu && gpu) compare_windows("long window T=1100", cpu, gpu, 1, 1100, 31, 1e-4, 1e-4, NULL);
    forward_destroy(&gpu);
    forward_destroy(&cpu);
    model_free(&m);
}

static void test_stories260k(void) {
    const char *root = getenv("QH_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", root && *root ? root : "data");
    if (access(path, R_OK) != 0) {
        SKIP("stories260K.bin not found (set QH_DATA): real-model comparison not run");
        return;
    }
    Model m;
    if (model_load_llama2c(&m, path) != 0) {
        CHECK(0, "loading %s", path);
        return;
    }
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    int T = 256;
    CHECK(forward_cpu_create(&m, T, &cpu) == 0, "cpu backend");
    CHECK(forward_cuda_create(&m, T, &gpu) == 0, "cuda backend");
    if (cpu && gpu) {
        compare_windows("stories260K", cpu, gpu, 4, T, 101, 1e-4, 1e-4, NULL);
        compare_windows("stories260K", cpu, gpu, 2, 131, 105, 1e-4, 1e-4, NULL);
        compare_pieces("stories260K", cpu, gpu, 67, 107, &fp32_tol);
    }
    forward_destroy(&gpu);
    forward_destroy(&cpu);
    model_free(&m);
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): CUDA backend tests not run");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    test_synth("synth GQA 6/2", 6, 2, 0, 0);
    test_synth("synth GQA 6/3 shared", 6, 3, 1, 0);
    test_synth("synth MHA 6/6", 6, 6, 0, 0);
    test_synth("synth GQA 6/2 q/k/v biases", 6, 2, 0, 1);
    test_long_window();
    test_stories260k();
#endif
    return test_summary();
}
