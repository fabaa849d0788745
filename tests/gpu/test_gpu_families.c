/* test_gpu_families.c: the CUDA backend on every model family the harness
 * reads, against transformers and against the CPU backend.
 *
 * Every checkpoint of tests/fixtures/families (made by transformers 4.43.4:
 * LLaMA MHA / GQA, Mistral, Qwen2 with q/k/v biases, Llama-3 rope scaling,
 * Falcon-7B's multi-query layout, Falcon-40B's new_decoder_architecture; fp32
 * and bf16, see test_families.c), in the fp32 mode:
 * - perplexity_eval through the CUDA backend gives transformers' perplexity
 *   (expected.json) to 1e-5 relative and every window's mean NLL to 1e-5, as
 *   the CPU backend does (test_families.c), and the CPU backend's own to 1e-5;
 * - the logits of every position of window 0 (last_logits of each prefix)
 *   equal transformers' to 1e-4 (fp32 folders, logits_w0.f32);
 * then compare_all_modes (gpu_compare.h): the CPU backend against the CUDA one
 * on random windows, piece by piece with the hook (one call per linear of the
 * family, same order, same inputs), weights_changed after the first linear
 * (Falcon's fused query_key_value, LLaMA's wq) and the MLP's output linear are
 * replaced, and the tf32 / fp16 / bf16 modes within their bounds.
 * The checkpoints' Falcon linears have no biases ("bias": false, as the
 * released Falcon models); synthetic Falcon models of odd sizes in both
 * layouts (6 heads over 1 and 2 kv heads, dim 72, MLP 173) carry a bias on
 * every linear, which must change the result, and go through
 * compare_all_modes too, where the 16-bit modes must differ from fp32 and from
 * each other as 16-bit rounding does.
 * Without a GPU (or in a build without nvcc) everything is reported skipped
 * and the exit status is 0. Not here: the kernels one by one
 * (test_gpu_kernels.c), synthetic LLaMA models and stories260K
 * (test_gpu_forward.c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "check.h"
#include "family_fixtures.h"
#include "forward.h"
#include "hf_model.h"
#include "model.h"
#include "perplexity.h"

#ifdef QH_HAVE_CUDA
#include "gpu_compare.h"

/* transformers' numbers (expected.json, logits_w0.f32) from the CUDA backend,
 * and the CPU backend's perplexity on the same ids. */
static void check_against_transformers(const char *name, const Model *m, const FamilyFixture *fx) {
    Forward *cpu = NULL, *gpu = NULL;
    unsetenv("QH_CUDA_MATH");
    CHECK(forward_cpu_create(m, fx->seqlen, &cpu) == 0, "%s: cpu backend", name);
    CHECK(forward_create(QH_DEVICE_CUDA, m, fx->seqlen, &gpu) == 0, "%s: cuda backend", name);
    if (!cpu || !gpu) {
        forward_destroy(&gpu);
        forward_destroy(&cpu);
        return;
    }
    PplResult rg, rc;
    int okg = perplexity_eval(gpu, fx->ids, fx->n_ids, fx->seqlen, 0, &rg) == 0;
    int okc = perplexity_eval(cpu, fx->ids, fx->n_ids, fx->seqlen, 0, &rc) == 0;
    CHECK(okg && okc, "%s: perplexity_eval (cuda %d, cpu %d)", name, okg, okc);
    if (okg && okc) {
        double rel = fabs(rg.ppl - fx->ppl) / fx->ppl, relc = fabs(rg.ppl - rc.ppl) / rc.ppl, worst = 0;
        CHECK(rg.nwindows == fx->nwin, "%s: %ld windows, transformers %ld", name, rg.nwindows, fx->nwin);
        for (long w = 0; w < rg.nwindows && w < fx->nwin; w++)
            worst = fmax(worst, fabs(rg.window_nll[w] - fx->window_nll[w]));
        CHECK(rel < 1e-5, "%s: cuda ppl %.9g, transformers %.9g (rel %.3g)", name, rg.ppl, fx->ppl, rel);
        CHECK(worst < 1e-5, "%s: a window's mean NLL differs from transformers' by %.3g", name, worst);
        CHECK(relc < 1e-5, "%s: cuda ppl %.9g, cpu %.9g (rel %.3g)", name, rg.ppl, rc.ppl, relc);
        printf("%-16s cuda ppl %.6f  transformers %.6f  rel %.2e  worst window %.2e  cpu rel %.2e\n", name, rg.ppl,
               fx->ppl, rel, worst, relc);
    }
    if (okg) ppl_result_free(&rg);
    if (okc) ppl_result_free(&rc);
    if (fx->logits) {
        int V = m->cfg.vocab_size;
        float *lg = malloc(sizeof(float) * (size_t)V);
        double worst = 0;
        int ok = 1;
        for (int t = 0; t < fx->seqlen && ok; t++) {
            ok = gpu->ops->last_logits(gpu, fx->ids, t + 1, lg) == 0;
            for (int v = 0; ok && v < V; v++) worst = fmax(worst, fabs((double)lg[v] - fx->logits[(size_t)t * V + v]));
        }
        CHECK(ok, "%s: last_logits", name);
        CHECK(worst < 1e-4, "%s: cuda logits of window 0 differ from transformers' by %.3g", name, worst);
        printf("%-16s cuda logits of the %d positions of window 0: worst %.2e\n", name, fx->seqlen, worst);
        free(lg);
    }
    forward_destroy(&gpu);
    forward_destroy(&cpu);
}

static void test_fixture(const char *name) {
    FamilyFixture fx;
    if (family_fixture_load(name, &fx) != 0) {
        CHECK(0, "%s: fixture unreadable", name);
        return;
    }
    Model m;
    if (hf_model_load(&m, fx.dir) != 0) {
        CHECK(0, "%s: hf_model_load failed", name);
        family_fixture_free(&fx);
        return;
    }
    printf("%s: %s, dim %d, %d heads over %d kv heads, MLP %d\n", name, arch_of(&m.cfg)->name, m.cfg.dim,
           m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.hidden_dim);
    check_against_transformers(name, &m, &fx);
    /* the first linear of layer 0 and the MLP's output linear of layer 1 (fp32), then that of layer 0 (bf16) */
    LinearKind mlp_out = arch_of(&m.cfg)->family == ARCH_FALCON ? LIN_4H_TO_H : LIN_DOWN;
    CompareSpec cs = {.T = fx.seqlen, .max_T = fx.seqlen, .changed_layer = {0, 1, 0},
                      .changed_kind = {(LinearKind)0, mlp_out, mlp_out}, .bias_matters = m.cfg.qkv_bias};
    compare_all_modes(name, &m, &cs);
    model_free(&m);
    family_fixture_free(&fx);
}

/* N(0, sd^2) by Box-Muller from splitmix */
static float normal(uint64_t *s, double sd) {
    double u1 = ((splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0), u2 = (splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
static void fill(const float *p, long n, double mean, double sd, uint64_t *s) {
    float *w = (float *)p;
    for (long i = 0; i < n; i++) w[i] = (float)mean + normal(s, sd);
}

/* A Falcon model of odd sizes with random weights (model_alloc carves every
 * tensor of the layout), normal with standard deviations: linears 1/sqrt(in),
 * their biases 0.5 (large enough to matter), norm weights 1 +- 0.1, norm
 * biases 0.1. */
static int falcon_synth(Model *m, ArchId arch, int Hkv, int shared, uint64_t seed) {
    ModelConfig c = {.arch = arch, .dim = 72, .hidden_dim = 173, .n_layers = 2, .n_heads = 6, .n_kv_heads = Hkv,
                     .vocab_size = 517, .seq_len = 64, .shared_classifier = shared, .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f, .qk_rotate_half = 1, .linear_bias = 1};
    if (model_alloc(m, &c, "synth falcon") != 0) return -1;
    uint64_t s = seed;
    int D = c.dim;
    fill(m->w.tok_emb, (long)c.vocab_size * D, 0.0, 1.0 / sqrt((double)D), &s);
    if (!shared) fill(m->w.wcls, (long)c.vocab_size * D, 0.0, 1.0 / sqrt((double)D), &s);
    fill(m->w.rms_final, D, 1.0, 0.1, &s);
    fill(m->w.norm_final_bias, D, 0.0, 0.1, &s);
    for (int l = 0; l < c.n_layers; l++) {
        BlockWeights *b = &m->w.blocks[l];
        fill(b->rms_att, D, 1.0, 0.1, &s);
        fill(b->norm_att_bias, D, 0.0, 0.1, &s);
        if (b->rms_ffn) {
            fill(b->rms_ffn, D, 1.0, 0.1, &s);
            fill(b->norm_ffn_bias, D, 0.0, 0.1, &s);
        }
        for (int k = 0; k < model_n_linears(&c); k++) {
            int o, i;
            model_linear_shape(&c, (LinearKind)k, &o, &i);
            fill(b->lin[k], (long)o * i, 0.0, 1.0 / sqrt((double)i), &s);
            fill(b->bias[k], o, 0.0, 0.5, &s);
        }
    }
    return 0;
}

static void test_falcon_synth(const char *what, ArchId arch, int Hkv, int shared) {
    Model m;
    if (falcon_synth(&m, arch, Hkv, shared, 4321 + (uint64_t)Hkv) != 0) {
        CHECK(0, "%s: falcon_synth", what);
        return;
    }
    const ArchDesc *a = arch_of(&m.cfg);
    CHECK(a->family == ARCH_FALCON && m.w.blocks[0].bias[LIN_QKV] && m.w.blocks[1].bias[LIN_4H_TO_H] &&
              (a->n_norms == 2) == (m.w.blocks[0].rms_ffn != NULL),
          "%s: a Falcon model with biases and %d norms", what, a->n_norms);
    printf("%s: %s, dim %d hidden %d layers %d heads %d kv heads %d vocab %d%s, biases on every linear\n", what,
           a->name, m.cfg.dim, m.cfg.hidden_dim, m.cfg.n_layers, m.cfg.n_heads, Hkv, m.cfg.vocab_size,
           shared ? ", tied head" : "");
    CompareSpec cs = {.T = 37, .max_T = 64, .changed_layer = {0, 1, 1},
                      .changed_kind = {LIN_QKV, LIN_H_TO_4H, LIN_4H_TO_H}, .bias_matters = 1, .check_16bit = 1};
    compare_all_modes(what, &m, &cs);
    model_free(&m);
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): CUDA backend family tests not run");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    for (int i = 0; family_fixture_names[i]; i++) test_fixture(family_fixture_names[i]);
    test_falcon_synth("synth Falcon-7B layout (multi-query)", ARCH_ID_FALCON, 1, 1);
    test_falcon_synth("synth Falcon-40B layout (2 kv heads)", ARCH_ID_FALCON_NDA, 2, 0);
    test_falcon_synth("synth Falcon-40B layout (3 kv heads)", ARCH_ID_FALCON_NDA, 3, 1);
#endif
    return test_summary();
}
