/* test_families.c: every model family the harness reads, against what the
 * Hugging Face `transformers` library computes on the same checkpoint.
 *
 * tests/fixtures/families/<name>_{f32,bf16}/ are tiny random-weight
 * checkpoints made by transformers 4.43.4 itself (make_family_checkpoints.py):
 * LLaMA with multi-head and grouped-query attention, Mistral, Qwen2 (q/k/v
 * biases, tied head), Llama-3 "llama3" rope scaling (tied head), Falcon-7B's
 * layout (multi-query fused QKV, one LayerNorm, parallel attention and MLP,
 * GELU) and Falcon-40B's (new_decoder_architecture: grouped fused QKV, ln_attn
 * and ln_mlp, untied head); fp32 and bf16 safetensors, llama_gqa_bf16 sharded.
 * Their expected.json holds transformers' per-window mean NLL (computed in
 * float64 from the checkpoint's own values) on fixed ids, logits_w0.f32 the
 * logits of every position of window 0 (fp32 folders).
 *
 * For each folder, through the CPU backend:
 * - the perplexity of the evaluation protocol (perplexity_eval) equals
 *   transformers' to 1e-5 relative, and every window's mean NLL to 1e-5;
 * - the logits of every position t of window 0 (last_logits of the prefix
 *   0..t: the model is causal) equal transformers' to 1e-4 (absolute, the
 *   logits are O(1));
 * - the config is the family's (the checks below name what each folder must
 *   have been read as), so that a folder silently read as another family fails.
 * Not here: quantization of these checkpoints (test_family_quant.c), the CLI
 * (tests/cli/test_families.sh), the CUDA backend (tests/gpu/test_gpu_families.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "check.h"
#include "family_fixtures.h"
#include "forward.h"
#include "hf_model.h"
#include "perplexity.h"
#include "util.h"

/* What each folder must have been read as. */
static void check_config(const char *name, const ModelConfig *c) {
    const ArchDesc *a = arch_of(c);
    if (!strncmp(name, "falcon7b", 8))
        CHECK(a->family == ARCH_FALCON && a->n_norms == 1 && c->n_kv_heads == 1 && c->shared_classifier,
              "%s: read as %s, %d norms, %d kv heads, tied %d (expected falcon, 1 norm, 1 kv head, tied)", name,
              a->name, a->n_norms, c->n_kv_heads, c->shared_classifier);
    else if (!strncmp(name, "falcon40b", 9))
        CHECK(a->family == ARCH_FALCON && a->n_norms == 2 && c->n_kv_heads == 2 && !c->shared_classifier,
              "%s: read as %s, %d norms, %d kv heads, tied %d (expected falcon, 2 norms, 2 kv heads, untied)", name,
              a->name, a->n_norms, c->n_kv_heads, c->shared_classifier);
    else if (!strncmp(name, "qwen2", 5))
        CHECK(a->family == ARCH_LLAMA && c->qkv_bias && c->shared_classifier, "%s: qkv_bias %d tied %d", name,
              c->qkv_bias, c->shared_classifier);
    else if (!strncmp(name, "llama3_rope", 11))
        CHECK(a->family == ARCH_LLAMA && c->rope_scaling == ROPE_SCALING_LLAMA3 && c->rope_factor == 8.0f &&
                  c->shared_classifier && c->rope_theta == 500000.0f,
              "%s: rope scaling %d factor %g theta %g tied %d", name, c->rope_scaling, c->rope_factor, c->rope_theta,
              c->shared_classifier);
    else if (!strncmp(name, "mistral", 7))
        CHECK(a->family == ARCH_LLAMA && c->sliding_window == 64 && c->n_kv_heads == 1, "%s: sliding_window %d",
              name, c->sliding_window);
    else
        CHECK(a->family == ARCH_LLAMA && !c->qkv_bias && !c->shared_classifier && c->rope_scaling == ROPE_SCALING_NONE,
              "%s: read as %s", name, a->name);
}

static void test_folder(const char *name) {
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
    check_config(name, &m.cfg);
    Forward *f = NULL;
    CHECK(forward_cpu_create(&m, fx.seqlen, &f) == 0, "%s: forward", name);
    PplResult r;
    if (f && perplexity_eval(f, fx.ids, fx.n_ids, fx.seqlen, 0, &r) == 0) {
        double rel = fabs(r.ppl - fx.ppl) / fx.ppl, worst = 0;
        CHECK(r.nwindows == fx.nwin, "%s: %ld windows, transformers %ld", name, r.nwindows, fx.nwin);
        for (long w = 0; w < r.nwindows && w < fx.nwin; w++) worst = fmax(worst, fabs(r.window_nll[w] - fx.window_nll[w]));
        CHECK(rel < 1e-5, "%s: ppl %.9g, transformers %.9g (rel %.3g)", name, r.ppl, fx.ppl, rel);
        CHECK(worst < 1e-5, "%s: a window's mean NLL differs by %.3g", name, worst);
        fprintf(stderr, "%-16s ppl %.6f  transformers %.6f  rel %.2e  worst window %.2e\n", name, r.ppl, fx.ppl, rel, worst);
        ppl_result_free(&r);
    } else {
        CHECK(0, "%s: perplexity_eval", name);
    }
    if (f && fx.logits) {
        int V = m.cfg.vocab_size;
        float *lg = qh_malloc(sizeof(float) * (size_t)V);
        double worst = 0;
        for (int t = 0; t < fx.seqlen; t++) {
            if (f->ops->last_logits(f, fx.ids, t + 1, lg) != 0) {
                CHECK(0, "%s: last_logits %d", name, t);
                break;
            }
            for (int v = 0; v < V; v++) worst = fmax(worst, fabs((double)lg[v] - fx.logits[(size_t)t * V + v]));
        }
        CHECK(worst < 1e-4, "%s: logits of window 0 differ by %.3g", name, worst);
        fprintf(stderr, "%-16s logits of the %d positions of window 0: worst %.2e\n", name, fx.seqlen, worst);
        free(lg);
    }
    forward_destroy(&f);
    model_free(&m);
    family_fixture_free(&fx);
}

int main(void) {
    for (int i = 0; family_fixture_names[i]; i++) test_folder(family_fixture_names[i]);
    return test_summary();
}
