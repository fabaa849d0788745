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
 * Bad input, each refused (-1) with a message naming the file, the key or
 * tensor and what was expected (captured and matched): an unknown model_type,
 * Falcon's alibi, a fused QKV whose size does not match the head counts, a
 * missing LayerNorm bias; and a Mistral window longer than its sliding_window
 * (forward_create).
 * Not here: quantization of these checkpoints (test_family_quant.c), the CLI
 * (tests/cli/test_families.sh), the CUDA backend (tests/gpu/test_gpu_families.c). */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "capture.h"
#include "check.h"
#include "family_fixtures.h"
#include "forward.h"
#include "hf_model.h"
#include "perplexity.h"
#include "safetensors.h"
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

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) { return remove(p); }

/* A copy of fixture `name` in dir whose config.json has `from` replaced by `to`; drop: a tensor left out. */
static int bad_copy(const char *name, const char *dir, const char *from, const char *to, const char *drop) {
    char src[600], p[700], *cfg;
    size_t n;
    snprintf(src, sizeof src, "%s/%s", family_fixture_root(), name);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", src);
    if (qh_read_file(p, &cfg, &n) != 0) return -1;
    char *at = strstr(cfg, from);
    if (!at) {
        free(cfg);
        return qh_error("'%s' lacks '%s'", p, from);
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "wb");
    fprintf(f, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    fclose(f);
    free(cfg);
    /* the tensors, rewritten (fp32) without `drop` */
    StFile st;
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    if (st_open(&st, p) != 0) return -1;
    StOut *outs = qh_calloc((size_t)st.n_tensors, sizeof *outs);
    float **bufs = qh_calloc((size_t)st.n_tensors, sizeof *bufs);
    int k = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensor *t = &st.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        bufs[k] = qh_malloc(sizeof(float) * (size_t)t->numel);
        st_to_f32(t, bufs[k]);
        outs[k] = (StOut){t->name, bufs[k], t->ndim, {t->shape[0], t->ndim == 2 ? t->shape[1] : 0}, NULL};
        k++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int rc = st_write(p, outs, k, ST_F32);
    for (int i = 0; i < k; i++) free(bufs[i]);
    free(bufs);
    free(outs);
    st_close(&st);
    return rc;
}

static void test_bad_inputs(void) {
    static const struct {
        const char *what, *name, *from, *to, *drop, *expect;
    } cases[] = {
        {"unknown model_type", "falcon7b_f32", "\"model_type\": \"falcon\"", "\"model_type\": \"gpt_neox\"", NULL,
         "config.json': key 'model_type' = 'gpt_neox' is not supported (expected llama, mistral, qwen2, falcon"},
        {"alibi", "falcon7b_f32", "\"alibi\": false", "\"alibi\": true", NULL,
         "config.json': key 'alibi' is true: ALiBi attention is not supported"},
        {"fused QKV size", "falcon40b_f32", "\"num_kv_heads\": 2", "\"num_kv_heads\": 1", NULL,
         "model.safetensors': tensor 'transformer.h.0.self_attention.query_key_value.weight' has shape [64, 32], but "
         "the config implies [48, 32] ((num_attention_heads 4 + 2 x 1 kv heads) x head size 8 rows)"},
        {"missing LayerNorm bias", "falcon40b_f32", "\"alibi\": false", "\"alibi\": false", "transformer.h.1.ln_mlp.bias",
         "tensor 'transformer.h.1.ln_mlp.bias' is missing"},
        {"parallel_attn false", "falcon7b_f32", "\"parallel_attn\": true", "\"parallel_attn\": false", NULL,
         "key 'parallel_attn' is false"},
    };
    char dir[] = "/tmp/qh_famXXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char d[300];
        snprintf(d, sizeof d, "%s/c%zu", dir, i);
        if (bad_copy(cases[i].name, d, cases[i].from, cases[i].to, cases[i].drop) != 0) {
            CHECK(0, "%s: making the bad copy", cases[i].what);
            continue;
        }
        Model m;
        cap_begin_in(dir);
        int rc = hf_model_load(&m, d);
        char *err = cap_end();
        CHECK(rc != 0 && m.heap == NULL, "%s: accepted", cases[i].what);
        CHECK(err && strstr(err, cases[i].expect) && strstr(err, d), "%s: message '%s' lacks '%s' or the folder",
              cases[i].what, err ? err : "", cases[i].expect);
        free(err);
        if (rc == 0) model_free(&m);
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    /* a window beyond Mistral's sliding_window */
    Model m;
    char d[600];
    snprintf(d, sizeof d, "%s/mistral_f32", family_fixture_root());
    if (hf_model_load(&m, d) == 0) {
        Forward *f = NULL;
        cap_begin_in("/tmp");
        int rc = forward_create(QH_DEVICE_CPU, &m, 96, &f);
        char *err = cap_end();
        CHECK(rc != 0 && err && strstr(err, "exceeds the model's sliding_window of 64"), "window 96 > sliding_window: %s",
              err ? err : "");
        free(err);
        forward_destroy(&f);
        CHECK(forward_create(QH_DEVICE_CPU, &m, 64, &f) == 0, "a window of sliding_window tokens is refused");
        forward_destroy(&f);
        model_free(&m);
    }
}

int main(void) {
    test_bad_inputs();
    for (int i = 0; family_fixture_names[i]; i++) test_folder(family_fixture_names[i]);
    return test_summary();
}
