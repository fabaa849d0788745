/* test_hf.c: Hugging Face directories (hf_model.c) and the safetensors
 * container (safetensors.c).
 *
 * - Rotary convention (LLaMA, and Qwen2 with its q/k/v biases added before
 *   the rotation): a checkpoint written here directly in the HF layout
 *   (st_write, no permutation; config.json by hand) loads so that the
 *   harness's q and k after rope_ref equal HF's rotate-half RoPE applied to
 *   the HF projections (formula of transformers' apply_rotary_pos_emb, written
 *   out below), component for component and in the attention scores; every
 *   other tensor is bit-identical to what was written.
 * - Round trip: stories260K -> HF directory (fp32) -> load: config and every
 *   tensor bit-identical; the CPU forward gives bit-identical window NLLs and
 *   last-position logits, and the same tinystories perplexity; the same
 *   through a sharded export (model-0000k-of-0000n + index). Synthetic GQA
 *   models with an untied head (lm_head.weight written) and odd head counts.
 * - bf16 / fp16 exports: every weight is exactly the nearest bf16 (checked
 *   independently of the writer: low 16 bits zero, no bf16 neighbour closer)
 *   or fp16 value; the tinystories mean NLL moves by no more than the bound
 *   explained at test_reduced_precision.
 * - Malformed checkpoints are refused (-1, a message naming the file and the
 *   key / tensor, an empty Model, no crash): header length beyond the file,
 *   overlapping and out-of-range offsets, dtype/shape mismatch, unsupported
 *   dtype, shape not matching the config, unknown / out-of-range / duplicated
 *   names, a missing tensor, a missing shard, index and shard disagreeing,
 *   config.json with wrong types, missing keys, an unknown architecture,
 *   Qwen2 without its biases, rope_scaling other than llama3 (or llama3 without its
 *   factors), a short Mistral (or Qwen2) sliding
 *   window, a bias tensor in a LLaMA checkpoint.
 * - Export refuses an existing output folder and leaves nothing on failure.
 * - Fuzz (bounded, deterministic; QH_TEST_SEED changes the seed): bit flips,
 *   truncations, insertions, deletions and number changes of a valid
 *   safetensors file (raw, and header-only with the length fixed up) and of a
 *   valid config.json; every call returns 0 or -1, within a time limit.
 * Not here: the CLI (tests/cli/test_export.sh). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "datasets.h"
#include "forward.h"
#include "forward_math.h"
#include "half.h"
#include "hf_model.h"
#include "model.h"
#include "perplexity.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "util.h"

static const char *data_root(void) {
    const char *d = getenv("QH_DATA");
    return d && *d ? d : "data";
}

static char tmp[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_tree(const char *p) { nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}
static int write_str(const char *path, const char *s) { return write_bytes(path, s, strlen(s)); }

/* mkdir dir; dir/config.json <- config and dir/model.safetensors <- st (st_len), each unless NULL */
static void write_hf_dir(const char *dir, const char *config, const unsigned char *st, size_t st_len) {
    char p[600];
    mkdir(dir, 0755);
    if (config) {
        snprintf(p, sizeof p, "%s/config.json", dir);
        write_str(p, config);
    }
    if (st) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        write_bytes(p, st, st_len);
    }
}

/* ---- stderr capture ------------------------------------------------------------ */
#include "capture.h"
#include "fuzz.h"
#define cap_begin() cap_begin_in(tmp)

/* ---- model helpers -------------------------------------------------------------- */

/* Every tensor of a model as (pointer, floats), in a fixed order; returns the count. */
static int model_tensors(const Model *m, const float **p, int64_t *n, int cap) {
    const ModelConfig *c = &m->cfg;
    int k = 0;
    p[k] = m->w.tok_emb, n[k++] = (int64_t)c->vocab_size * c->dim;
    for (int l = 0; l < c->n_layers; l++) {
        const BlockWeights *b = &m->w.blocks[l];
        p[k] = b->rms_att, n[k++] = c->dim;
        p[k] = b->rms_ffn, n[k++] = c->dim;
        for (int j = 0; j < LIN_COUNT; j++) {
            int o, i;
            model_linear_shape(c, (LinearKind)j, &o, &i);
            p[k] = b->lin[j], n[k++] = (int64_t)o * i;
            if (b->bias[j]) p[k] = b->bias[j], n[k++] = o;
        }
    }
    p[k] = m->w.rms_final, n[k++] = c->dim;
    if (!c->shared_classifier) p[k] = m->w.wcls, n[k++] = (int64_t)c->vocab_size * c->dim;
    if (k > cap) abort();
    return k;
}

static int same_config(const ModelConfig *a, const ModelConfig *b) {
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->vocab_size == b->vocab_size &&
           a->seq_len == b->seq_len && a->shared_classifier == b->shared_classifier && a->rope_theta == b->rope_theta &&
           a->norm_eps == b->norm_eps && a->qkv_bias == b->qkv_bias;
}

/* Number of tensors that differ bit for bit. */
static int compare_models(const Model *a, const Model *b, const char *what) {
    if (!same_config(&a->cfg, &b->cfg)) {
        CHECK(0, "%s: configs differ", what);
        return 1;
    }
    const float *pa[4096], *pb[4096];
    int64_t na[4096], nb[4096];
    int k = model_tensors(a, pa, na, 4096);
    model_tensors(b, pb, nb, 4096);
    int diff = 0;
    for (int i = 0; i < k; i++) diff += memcmp(pa[i], pb[i], (size_t)na[i] * 4) != 0;
    CHECK(b->cfg.shared_classifier ? b->w.wcls == b->w.tok_emb : b->w.wcls != b->w.tok_emb,
          "%s: classifier sharing not as the config says", what);
    return diff;
}

static int load_dir(Model *m, const char *dir) {
    cap_begin();
    int rc = hf_model_load(m, dir);
    char *e = cap_end();
    if (rc != 0) fprintf(stderr, "%s", e);
    free(e);
    return rc;
}

/* ---- rotary convention ------------------------------------------------------------ */

/* HF LLaMA RoPE (transformers apply_rotary_pos_emb with rotate_half) on x (T, nh*hs):
 * inv_freq[i] = 1 / theta^(2i/hs); emb = cat(freqs, freqs); out = x cos + rotate_half(x) sin,
 * rotate_half(x) = cat(-x[hs/2:], x[:hs/2]). */
static void hf_rope(float *x, int T, int nh, int hs, float theta) {
    int half = hs / 2;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)t * nh * hs + h * hs;
            for (int i = 0; i < half; i++) {
                double inv = 1.0 / pow(theta, 2.0 * i / hs), a = t * inv;
                double c = cos(a), s = sin(a), x1 = v[i], x2 = v[i + half];
                v[i] = (float)(x1 * c - x2 * s);
                v[i + half] = (float)(x2 * c + x1 * s);
            }
        }
}

static void matmul_rows(float *y, const float *W, const float *x, int T, int out, int in) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[(size_t)t * in + i];
            y[(size_t)t * out + o] = (float)s;
        }
}

static const char *hf_names[9] = {"input_layernorm.weight", "post_attention_layernorm.weight",
                                  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                  "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                  "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
static const int hf_lin[9] = {-1, -2, LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN};

/* Write model `src`'s tensors under HF names WITHOUT any permutation (as if they
 * were an HF checkpoint) to dir/model.safetensors, with a hand-written config. */
static int write_raw_hf(const Model *src, const char *dir, float theta) {
    const ModelConfig *c = &src->cfg;
    mkdir(dir, 0755);
    StOut o[256];
    static char names[256][96];
    int n = 0;
    snprintf(names[n], 96, "model.embed_tokens.weight");
    o[n] = (StOut){names[n], src->w.tok_emb, 2, {c->vocab_size, c->dim}, NULL};
    n++;
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < 9; j++) {
            snprintf(names[n], 96, "model.layers.%d.%s", l, hf_names[j]);
            const BlockWeights *b = &src->w.blocks[l];
            if (hf_lin[j] < 0) {
                o[n] = (StOut){names[n], hf_lin[j] == -1 ? b->rms_att : b->rms_ffn, 1, {c->dim, 0}, NULL};
            } else {
                int r, i;
                model_linear_shape(c, (LinearKind)hf_lin[j], &r, &i);
                o[n] = (StOut){names[n], b->lin[hf_lin[j]], 2, {r, i}, NULL};
            }
            n++;
        }
    for (int l = 0; l < c->n_layers && c->qkv_bias; l++) /* Qwen2: q/k/v biases, HF order too */
        for (int k = LIN_Q; k <= LIN_V; k++) {
            int r, i;
            model_linear_shape(c, (LinearKind)k, &r, &i);
            snprintf(names[n], 96, "model.layers.%d.self_attn.%c_proj.bias", l, "qkv"[k]);
            o[n] = (StOut){names[n], src->w.blocks[l].bias[k], 1, {r, 0}, NULL};
            n++;
        }
    snprintf(names[n], 96, "model.norm.weight");
    o[n] = (StOut){names[n], src->w.rms_final, 1, {c->dim, 0}, NULL};
    n++;
    if (!c->shared_classifier) {
        snprintf(names[n], 96, "lm_head.weight");
        o[n] = (StOut){names[n], src->w.wcls, 2, {c->vocab_size, c->dim}, NULL};
        n++;
    }
    char p[512], cfg[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (st_write(p, o, n, ST_F32) != 0) return -1;
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, "
             "\"vocab_size\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-06, \"rope_theta\": %.1f, "
             "\"tie_word_embeddings\": %s}",
             c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM", c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, theta,
             c->shared_classifier ? "true" : "false");
    snprintf(p, sizeof p, "%s/config.json", dir);
    return write_str(p, cfg);
}

static void test_rope_convention(void) {
    struct { ModelConfig c; float theta; } cases[] = {
        {{.dim = 32, .hidden_dim = 40, .n_layers = 1, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 11, .seq_len = 24}, 10000.0f},
        {{.dim = 36, .hidden_dim = 20, .n_layers = 2, .n_heads = 3, .n_kv_heads = 1, .vocab_size = 7, .seq_len = 24}, 500000.0f},
        {{.dim = 16, .hidden_dim = 24, .n_layers = 1, .n_heads = 8, .n_kv_heads = 8, .vocab_size = 5, .seq_len = 24}, 10000.0f},
        /* Qwen2: q/k/v biases (added before the rotation), GQA */
        {{.dim = 24, .hidden_dim = 28, .n_layers = 2, .n_heads = 6, .n_kv_heads = 2, .vocab_size = 9, .seq_len = 24,
          .qkv_bias = 1}, 1000000.0f},
    };
    for (int ci = 0; ci < 4; ci++) {
        const ModelConfig *c = &cases[ci].c;
        float theta = cases[ci].theta;
        Model src, m;
        if (model_synth(&src, c, 40 + ci) != 0) {
            CHECK(0, "synth case %d", ci);
            continue;
        }
        char dir[512];
        snprintf(dir, sizeof dir, "%s/rawhf%d", tmp, ci);
        CHECK(write_raw_hf(&src, dir, theta) == 0, "write raw HF %d", ci);
        if (load_dir(&m, dir) != 0) {
            CHECK(0, "load raw HF case %d", ci);
            model_free(&src);
            continue;
        }
        CHECK(m.cfg.rope_theta == theta && m.cfg.norm_eps == 1e-6f && m.cfg.shared_classifier == 0 &&
                  m.cfg.qkv_bias == c->qkv_bias,
              "case %d: config theta %g eps %g qkv_bias %d", ci, m.cfg.rope_theta, m.cfg.norm_eps, m.cfg.qkv_bias);
        if (c->qkv_bias) /* v's bias is not rotary: bit-identical */
            for (int l = 0; l < c->n_layers; l++)
                CHECK(memcmp(m.w.blocks[l].bias[LIN_V], src.w.blocks[l].bias[LIN_V], (size_t)model_kv_dim(c) * 4) == 0,
                      "case %d layer %d: v bias differs", ci, l);
        /* everything but q/k bit-identical */
        int diff = 0;
        for (int l = 0; l < c->n_layers; l++) {
            for (int j = 0; j < LIN_COUNT; j++) {
                if (j == LIN_Q || j == LIN_K) continue;
                int o, i;
                model_linear_shape(c, (LinearKind)j, &o, &i);
                diff += memcmp(m.w.blocks[l].lin[j], src.w.blocks[l].lin[j], (size_t)o * i * 4) != 0;
            }
            diff += memcmp(m.w.blocks[l].rms_att, src.w.blocks[l].rms_att, (size_t)c->dim * 4) != 0;
            diff += memcmp(m.w.blocks[l].rms_ffn, src.w.blocks[l].rms_ffn, (size_t)c->dim * 4) != 0;
        }
        diff += memcmp(m.w.tok_emb, src.w.tok_emb, (size_t)c->vocab_size * c->dim * 4) != 0;
        diff += memcmp(m.w.wcls, src.w.wcls, (size_t)c->vocab_size * c->dim * 4) != 0;
        CHECK(diff == 0, "case %d: %d non-rotary tensors differ", ci, diff);
        /* q, k after RoPE: harness (permuted rows, rope_ref) vs HF (raw rows, rotate half) */
        int D = c->dim, KV = model_kv_dim(c), hs = model_head_size(c), T = 20, rep = c->n_heads / c->n_kv_heads;
        float *x = qh_malloc(sizeof(float) * T * D), *qh = qh_malloc(sizeof(float) * T * D),
              *kh = qh_malloc(sizeof(float) * T * KV), *qm = qh_malloc(sizeof(float) * T * D),
              *km = qh_malloc(sizeof(float) * T * KV);
        uint64_t s = 77 + ci;
        for (int i = 0; i < T * D; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        }
        double worst = 0, worst_score = 0;
        for (int l = 0; l < c->n_layers; l++) {
            matmul_rows(qh, src.w.blocks[l].lin[LIN_Q], x, T, D, D);
            matmul_rows(kh, src.w.blocks[l].lin[LIN_K], x, T, KV, D);
            if (c->qkv_bias) { /* HF Qwen2: q_proj(x) = W x + b, then rotate half */
                add_bias_ref(qh, src.w.blocks[l].bias[LIN_Q], T, D);
                add_bias_ref(kh, src.w.blocks[l].bias[LIN_K], T, KV);
            }
            hf_rope(qh, T, c->n_heads, hs, theta);
            hf_rope(kh, T, c->n_kv_heads, hs, theta);
            matmul_rows(qm, m.w.blocks[l].lin[LIN_Q], x, T, D, D);
            matmul_rows(km, m.w.blocks[l].lin[LIN_K], x, T, KV, D);
            if (c->qkv_bias) { /* the loaded (permuted) biases */
                add_bias_ref(qm, m.w.blocks[l].bias[LIN_Q], T, D);
                add_bias_ref(km, m.w.blocks[l].bias[LIN_K], T, KV);
            }
            rope_ref(qm, km, T, D, KV, hs, 0, m.cfg.rope_theta);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < D; r++) {
                    double d = fabs(qm[t * D + r] - qh[t * D + hf_qk_hf_row(r, hs)]);
                    if (d > worst) worst = d;
                    if (r < KV) {
                        d = fabs(km[t * KV + r] - kh[t * KV + hf_qk_hf_row(r, hs)]);
                        if (d > worst) worst = d;
                    }
                }
            /* attention scores q_t . k_s per head: invariant to the permutation */
            for (int h = 0; h < c->n_heads; h++)
                for (int t = 0; t < T; t++)
                    for (int u = 0; u <= t; u++) {
                        double a = 0, b = 0;
                        for (int i = 0; i < hs; i++) {
                            a += (double)qm[t * D + h * hs + i] * km[u * KV + (h / rep) * hs + i];
                            b += (double)qh[t * D + h * hs + i] * kh[u * KV + (h / rep) * hs + i];
                        }
                        if (fabs(a - b) > worst_score) worst_score = fabs(a - b);
                    }
        }
        /* |q| ~ 1: float RoPE vs double RoPE differs by a few ulp of positions * freq */
        CHECK(worst < 1e-4, "case %d (hs %d, theta %g): q/k after RoPE differ by %.3g from HF rotate-half", ci, hs,
              theta, worst);
        CHECK(worst_score < 1e-4, "case %d: attention scores differ by %.3g", ci, worst_score);
        printf("rope convention case %d (D %d, heads %d/%d, hs %d, theta %g): max |q,k diff| %.2g, max |score diff| %.2g\n",
               ci, D, c->n_heads, c->n_kv_heads, hs, theta, worst, worst_score);
        free(x), free(qh), free(kh), free(qm), free(km);
        model_free(&m);
        model_free(&src);
    }
}

/* ---- round trips --------------------------------------------------------------------- */

static int export_dir(const Model *m, const char *dir, StDtype dt, uint64_t shard) {
    HfSaveOptions o = {.dtype = dt, .max_shard_bytes = shard};
    cap_begin();
    int rc = hf_model_save(m, dir, &o);
    char *e = cap_end();
    if (rc != 0) fprintf(stderr, "%s", e);
    free(e);
    return rc;
}

static int count_entries(const char *dir, const char *prefix) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -1 '%s' 2>/dev/null | grep -c '^%s'", dir, prefix);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

/* mean NLL of the tinystories stream (windows of 128) under model m */
static double tiny_mean_nll(const Model *m, const TokenStream *ts) {
    Forward *f;
    if (forward_cpu_create(m, 128, &f) != 0) return NAN;
    PplResult r;
    double v = perplexity_eval(f, ts->ids, ts->n, 128, 0, &r) == 0 ? r.mean_nll : NAN;
    ppl_result_free(&r);
    forward_destroy(&f);
    return v;
}

static Model s260; /* stories260K, loaded once */
static Tokenizer tok;
static TokenStream story;
static int have_s260;

static void test_roundtrip_stories(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/s260_fp32", tmp);
    CHECK(export_dir(&s260, dir, ST_F32, 0) == 0, "export fp32");
    CHECK(count_entries(tmp, "s260_fp32.tmp") == 0, "temporary folder left behind");
    Model m;
    if (load_dir(&m, dir) != 0) {
        CHECK(0, "load %s", dir);
        return;
    }
    CHECK(same_config(&m.cfg, &s260.cfg), "config differs after the round trip");
    int diff = compare_models(&s260, &m, "fp32");
    CHECK(diff == 0, "fp32 round trip: %d tensors differ", diff);
    CHECK(m.map == NULL && m.heap != NULL && !strcmp(m.path, dir), "storage: map %p heap %p path %s", m.map,
          (void *)m.heap, m.path);
    /* the forward pass: window NLLs and logits bit for bit */
    Forward *fa, *fb;
    int T = s260.cfg.seq_len;
    CHECK(forward_cpu_create(&s260, T, &fa) == 0 && forward_cpu_create(&m, T, &fb) == 0, "forward create");
    int *ids = qh_malloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) ids[t] = story.ids[t % story.n];
    double *na = qh_malloc(sizeof(double) * T), *nb = qh_malloc(sizeof(double) * T);
    float *la = qh_malloc(sizeof(float) * s260.cfg.vocab_size), *lb = qh_malloc(sizeof(float) * s260.cfg.vocab_size);
    int windows[] = {T, 128, 37};
    double worst = 0, worst_logit = 0;
    for (int w = 0; w < 3; w++) {
        int n = windows[w];
        CHECK(fa->ops->window_nll(fa, ids, n, na) == 0 && fb->ops->window_nll(fb, ids, n, nb) == 0, "window_nll");
        for (int t = 0; t < n - 1; t++) worst = fmax(worst, fabs(na[t] - nb[t]));
        CHECK(!memcmp(na, nb, sizeof(double) * (n - 1)), "window NLL (T=%d) not bit-identical (max diff %.3g)", n, worst);
        CHECK(fa->ops->last_logits(fa, ids, n, la) == 0 && fb->ops->last_logits(fb, ids, n, lb) == 0, "last_logits");
        for (int v = 0; v < s260.cfg.vocab_size; v++) worst_logit = fmax(worst_logit, fabs(la[v] - lb[v]));
        CHECK(!memcmp(la, lb, sizeof(float) * s260.cfg.vocab_size), "logits (T=%d) not bit-identical (max %.3g)", n,
              worst_logit);
    }
    printf("stories260K fp32 round trip: all %d tensors bit-identical; window NLL max diff %.3g, logits max diff %.3g\n",
           5 * 9 + 2, worst, worst_logit);
    forward_destroy(&fa);
    forward_destroy(&fb);
    free(ids), free(na), free(nb), free(la), free(lb);
    double a = tiny_mean_nll(&s260, &story), b = tiny_mean_nll(&m, &story);
    CHECK(a == b && isfinite(a), "tinystories mean NLL %.17g (llama2.c) vs %.17g (HF)", a, b);
    printf("tinystories (seqlen 128): ppl %.10f llama2.c, %.10f HF fp32\n", exp(a), exp(b));
    model_free(&m);

    /* sharded: several shards and an index, same tensors */
    snprintf(dir, sizeof dir, "%s/s260_sharded", tmp);
    CHECK(export_dir(&s260, dir, ST_F32, 200000) == 0, "export sharded");
    int nsh = count_entries(dir, "model-0");
    CHECK(nsh >= 4 && count_entries(dir, "model.safetensors.index.json") == 1 && count_entries(dir, "model.safetensors$") == 0,
          "sharded export: %d shards", nsh);
    if (load_dir(&m, dir) == 0) {
        CHECK(compare_models(&s260, &m, "sharded") == 0, "sharded round trip differs");
        model_free(&m);
    } else {
        CHECK(0, "load sharded");
    }
    /* re-export of an HF-loaded model is byte-identical */
    snprintf(dir, sizeof dir, "%s/s260_fp32", tmp);
    if (load_dir(&m, dir) == 0) {
        char d2[512], p1[600], p2[600];
        snprintf(d2, sizeof d2, "%s/s260_again", tmp);
        CHECK(export_dir(&m, d2, ST_F32, 0) == 0, "re-export");
        snprintf(p1, sizeof p1, "%s/model.safetensors", dir);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
        char *x, *y;
        size_t nx, ny;
        CHECK(qh_read_file(p1, &x, &nx) == 0 && qh_read_file(p2, &y, &ny) == 0 && nx == ny && !memcmp(x, y, nx),
              "re-exported model.safetensors differs");
        free(x), free(y);
        model_free(&m);
    }
}

static void test_roundtrip_synth(void) {
    ModelConfig cs[] = {
        {.dim = 48, .hidden_dim = 100, .n_layers = 3, .n_heads = 6, .n_kv_heads = 3, .vocab_size = 67, .seq_len = 32},
        {.dim = 36, .hidden_dim = 97, .n_layers = 2, .n_heads = 6, .n_kv_heads = 2, .vocab_size = 71, .seq_len = 40,
         .shared_classifier = 1},
        {.dim = 40, .hidden_dim = 53, .n_layers = 11, .n_heads = 4, .n_kv_heads = 1, .vocab_size = 9, .seq_len = 16},
        /* Qwen2ForCausalLM: q/k/v biases, tied head, theta 1e6 */
        {.dim = 24, .hidden_dim = 40, .n_layers = 2, .n_heads = 6, .n_kv_heads = 2, .vocab_size = 13, .seq_len = 16,
         .shared_classifier = 1, .rope_theta = 1e6f, .qkv_bias = 1},
    };
    for (int ci = 0; ci < 4; ci++) {
        Model a, b;
        CHECK(model_synth(&a, &cs[ci], 5 + ci) == 0, "synth %d", ci);
        char dir[512], st[600];
        snprintf(dir, sizeof dir, "%s/synth%d", tmp, ci);
        CHECK(export_dir(&a, dir, ST_F32, 0) == 0, "export synth %d", ci);
        snprintf(st, sizeof st, "%s/model.safetensors", dir);
        StFile f;
        if (st_open(&f, st) == 0) {
            CHECK((st_find(&f, "lm_head.weight") != NULL) == !cs[ci].shared_classifier,
                  "synth %d: lm_head.weight %s", ci, cs[ci].shared_classifier ? "written for a tied model" : "missing");
            CHECK(f.n_tensors == 2 + (cs[ci].qkv_bias ? 12 : 9) * cs[ci].n_layers + !cs[ci].shared_classifier,
                  "synth %d: %d tensors", ci, f.n_tensors);
            st_close(&f);
        }
        if (load_dir(&b, dir) == 0) {
            CHECK(compare_models(&a, &b, "synth") == 0, "synth %d round trip differs", ci);
            model_free(&b);
        } else {
            CHECK(0, "load synth %d", ci);
        }
        model_free(&a);
    }
}

/* Is h the bf16 nearest to w (ties to even)? Independent of qh_f32_to_bf16. */
static int is_nearest_bf16(float w, float h) {
    uint32_t hb;
    memcpy(&hb, &h, 4);
    if (hb & 0xffffu) return 0;
    if (isnan(w)) return isnan(h);
    uint32_t up = hb + 0x10000u, dn = hb - 0x10000u;
    float fu, fd;
    memcpy(&fu, &up, 4);
    memcpy(&fd, &dn, 4);
    double e = fabs((double)h - w), eu = fabs((double)fu - w), ed = fabs((double)fd - w);
    if (eu < e || ed < e) return 0;
    if ((eu == e || ed == e) && (hb >> 16) & 1u) return 0; /* a tie must go to the even one */
    return 1;
}

/* Relative noise U(-u, u) on every weight: the magnitude of bf16 rounding (u = 2^-8). */
static void noisy_copy(Model *dst, const Model *src, double u, uint64_t seed) {
    model_alloc(dst, &src->cfg, "noisy");
    const float *ps[4096], *pd[4096];
    int64_t ns[4096], nd[4096];
    int k = model_tensors(src, ps, ns, 4096);
    model_tensors(dst, pd, nd, 4096);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 3;
    for (int i = 0; i < k; i++)
        for (int64_t j = 0; j < ns[i]; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double r = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
            ((float *)pd[i])[j] = (float)(ps[i][j] * (1 + u * r));
        }
}

/* bf16 keeps 8 significant bits: round to nearest moves each weight by at most
 * u = 2^-8 = 0.39% of itself, unbiased. The resulting change of the mean NLL
 * is a sum of many small independent terms; its expected size for this model
 * is measured here by evaluating 4 copies with independent relative noise
 * U(-u, u) (as large as the rounding's worst case and a larger variance than
 * round-to-nearest's). Bound used: |dNLL(bf16)| <= 3 * max over the 4 copies
 * of |dNLL(noise)|, and in any case <= 0.005 nats (0.5% of ppl). fp16 (11
 * significant bits, u = 2^-11; tiny weights lose some as fp16 subnormals) must
 * stay within the same bound. */
static void test_reduced_precision(void) {
    double base = tiny_mean_nll(&s260, &story), noise_max = 0;
    for (int s = 0; s < 4; s++) {
        Model nm;
        noisy_copy(&nm, &s260, 1.0 / 256, 100 + s);
        double d = fabs(tiny_mean_nll(&nm, &story) - base);
        noise_max = fmax(noise_max, d);
        model_free(&nm);
    }
    double bound = fmin(3 * noise_max, 0.005);
    StDtype dts[2] = {ST_BF16, ST_F16};
    for (int k = 0; k < 2; k++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/s260_%s", tmp, st_dtype_name(dts[k]));
        CHECK(export_dir(&s260, dir, dts[k], 0) == 0, "export %s", st_dtype_name(dts[k]));
        Model m;
        if (load_dir(&m, dir) != 0) {
            CHECK(0, "load %s", dir);
            continue;
        }
        const float *pa[4096], *pb[4096];
        int64_t na[4096], nb[4096];
        int nt = model_tensors(&s260, pa, na, 4096), bad = 0;
        model_tensors(&m, pb, nb, 4096);
        /* q/k rows were permuted and back: the element order matches the original */
        for (int i = 0; i < nt; i++)
            for (int64_t j = 0; j < na[i]; j++) {
                float w = pa[i][j], h = pb[i][j];
                bad += dts[k] == ST_BF16 ? !is_nearest_bf16(w, h) : h != qh_f16_to_f32(qh_f32_to_f16(w));
            }
        CHECK(bad == 0, "%s: %d weights are not the nearest %s value", st_dtype_name(dts[k]), bad,
              st_dtype_name(dts[k]));
        double d = tiny_mean_nll(&m, &story) - base;
        CHECK(fabs(d) <= bound, "%s: mean NLL moved by %.3g, bound %.3g", st_dtype_name(dts[k]), d, bound);
        printf("%s export: ppl %.6f vs %.6f fp32 (%+.4f%%), |dNLL| %.2e; bound %.2e (noise control max %.2e)\n",
               st_dtype_name(dts[k]), exp(base + d), exp(base), 100 * (exp(d) - 1), fabs(d), bound, noise_max);
        model_free(&m);
    }
}

/* ---- malformed checkpoints --------------------------------------------------------------- */

/* The tiny model every malformed case starts from: 2 layers, D 8, F 12, heads 2/1 (hs 4), V 10, S 16, untied. */
static const ModelConfig tiny_cfg = {.dim = 8, .hidden_dim = 12, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                                     .vocab_size = 10, .seq_len = 16, .shared_classifier = 0};
static const char *tiny_config_json =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"intermediate_size\": 12, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 10, "
    "\"max_position_embeddings\": 16, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"rope_scaling\": null, "
    "\"tie_word_embeddings\": false, \"hidden_act\": \"silu\", \"torch_dtype\": \"float32\"}";

typedef struct Entry {
    char name[96];
    char dtype[8];
    int ndim;
    long long shape[3];
    long long begin, end;
} Entry;

static int tiny_entries(Entry *e) {
    const ModelConfig *c = &tiny_cfg;
    int n = 0;
    long long off = 0;
#define ADD(nm, d0, d1)                                                                 \
    do {                                                                                \
        snprintf(e[n].name, sizeof e[n].name, "%s", nm);                                \
        strcpy(e[n].dtype, "F32");                                                      \
        e[n].ndim = (d1) ? 2 : 1;                                                       \
        e[n].shape[0] = d0, e[n].shape[1] = d1;                                         \
        e[n].begin = off, e[n].end = off + 4LL * (d0) * ((d1) ? (d1) : 1);              \
        off = e[n].end;                                                                 \
        n++;                                                                            \
    } while (0)
    ADD("model.embed_tokens.weight", c->vocab_size, c->dim);
    for (int l = 0; l < c->n_layers; l++) {
        char nm[96];
        int kv = model_kv_dim(c);
        int shp[9][2] = {{c->dim, 0}, {c->dim, 0}, {c->dim, c->dim}, {kv, c->dim}, {kv, c->dim},
                         {c->dim, c->dim}, {c->hidden_dim, c->dim}, {c->hidden_dim, c->dim}, {c->dim, c->hidden_dim}};
        for (int j = 0; j < 9; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, hf_names[j]);
            ADD(nm, shp[j][0], shp[j][1]);
        }
    }
    ADD("model.norm.weight", c->dim, 0);
    ADD("lm_head.weight", c->vocab_size, c->dim);
#undef ADD
    return n;
}

/* Header JSON + data (data_bytes of a deterministic pattern) -> malloc'ed file bytes. */
static unsigned char *build_st(const Entry *e, int n, long long data_bytes, size_t *len) {
    size_t cap = 256 + (size_t)n * 256, p = 0;
    char *h = qh_malloc(cap);
    p += (size_t)snprintf(h + p, cap - p, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        p += (size_t)snprintf(h + p, cap - p, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", e[i].name, e[i].dtype);
        for (int d = 0; d < e[i].ndim; d++) p += (size_t)snprintf(h + p, cap - p, "%s%lld", d ? "," : "", e[i].shape[d]);
        p += (size_t)snprintf(h + p, cap - p, "],\"data_offsets\":[%lld,%lld]}", e[i].begin, e[i].end);
    }
    p += (size_t)snprintf(h + p, cap - p, "}");
    *len = 8 + p + (size_t)data_bytes;
    unsigned char *b = qh_malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)p >> (8 * i));
    memcpy(b + 8, h, p);
    for (long long i = 0; i < data_bytes; i++) { /* small floats: 0.01 * k, as bytes */
        float v = 0.01f * (float)((i / 4) % 97) - 0.3f;
        b[8 + p + i] = ((unsigned char *)&v)[i % 4];
    }
    free(h);
    return b;
}

static long long entries_end(const Entry *e, int n) {
    long long m = 0;
    for (int i = 0; i < n; i++) m = e[i].end > m ? e[i].end : m;
    return m;
}

/* Write config + safetensors into a fresh folder, load, expect refusal naming `file_key` ("config.json" or
 * "model.safetensors") and containing `pat`. */
static void expect_refused(const char *why, const char *config, const unsigned char *st, size_t st_len,
                           const char *file_key, const char *pat) {
    static int k;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad%03d", tmp, k++);
    write_hf_dir(dir, config, st, st_len);
    Model m;
    memset(&m, 0x5a, sizeof m);
    cap_begin();
    int rc = hf_model_load(&m, dir);
    char *err = cap_end();
    CHECK(rc == -1, "%s: load returned %d", why, rc);
    char named[600];
    snprintf(named, sizeof named, "%s/%s", dir, file_key);
    CHECK(strstr(err, "error") && (strstr(err, named) || (!strcmp(file_key, "") && strstr(err, dir))),
          "%s: message does not name %s: '%s'", why, named, err);
    CHECK(strstr(err, pat) != NULL, "%s: message lacks '%s': '%s'", why, pat, err);
    CHECK(m.heap == NULL && m.map == NULL && m.w.blocks == NULL && m.path == NULL, "%s: Model not left empty", why);
    model_free(&m);
    if (getenv("QH_TEST_VERBOSE")) printf("  %-44s -> %s", why, err);
    free(err);
}

static void test_malformed_safetensors(void) {
    Entry e0[64], e[64];
    int n = tiny_entries(e0);
    long long dsz = entries_end(e0, n);
    size_t len;
    unsigned char *b;
    /* the valid file loads */
    {
        b = build_st(e0, n, dsz, &len);
        char dir[512];
        snprintf(dir, sizeof dir, "%s/tiny_ok", tmp);
        write_hf_dir(dir, tiny_config_json, b, len);
        Model m;
        CHECK(load_dir(&m, dir) == 0, "the valid tiny checkpoint loads");
        model_free(&m);
        /* header length beyond the file */
        unsigned char *c = qh_malloc(len);
        memcpy(c, b, len);
        uint64_t big = len; /* > len - 8 */
        for (int i = 0; i < 8; i++) c[i] = (unsigned char)(big >> (8 * i));
        expect_refused("header length beyond the file", tiny_config_json, c, len, "model.safetensors", "exceeds the file");
        for (int i = 0; i < 8; i++) c[i] = 0xff;
        expect_refused("header length 2^64-1", tiny_config_json, c, len, "model.safetensors", "exceeds the file");
        expect_refused("file of 5 bytes", tiny_config_json, b, 5, "model.safetensors", "shorter than the 8-byte");
        expect_refused("data section truncated", tiny_config_json, b, len - 3, "model.safetensors", "out of range");
        free(c);
        free(b);
    }
#define CASE(why, pat, mutate)                                                        \
    do {                                                                              \
        memcpy(e, e0, sizeof e0);                                                     \
        int ne = n;                                                                   \
        long long ds = dsz;                                                           \
        mutate;                                                                       \
        b = build_st(e, ne, ds, &len);                                                \
        expect_refused(why, tiny_config_json, b, len, "model.safetensors", pat);      \
        free(b);                                                                      \
    } while (0)
    CASE("overlapping offsets", "overlap", { e[3].begin -= 4; e[3].end -= 4; });
    CASE("out-of-range offsets", "out of range", { e[n - 1].begin += 64; e[n - 1].end += 64; });
    CASE("begin > end", "out of range", { long long t = e[2].begin; e[2].begin = e[2].end; e[2].end = t; });
    CASE("dtype/shape mismatch (F16 over F32 bytes)", "need", { strcpy(e[4].dtype, "F16"); });
    CASE("shape larger than the span", "need", { e[0].shape[0] += 1; });
    CASE("unsupported dtype F64", "not supported", { strcpy(e[1].dtype, "F64"); });
    CASE("unsupported dtype I8", "not supported", { strcpy(e[1].dtype, "I8"); });
    CASE("shape not matching the config", "config implies", { e[4].shape[0] = 8; e[4].shape[1] = 4; });
    CASE("1-D where 2-D expected", "config implies", { e[0].ndim = 1; e[0].shape[0] = 80; });
    CASE("unknown tensor (a q bias)", "unknown tensor", { strcpy(e[3].name, "model.layers.0.self_attn.q_proj.bias"); });
    CASE("layer index out of range", "unknown tensor", { strcpy(e[3].name, "model.layers.2.self_attn.q_proj.weight"); });
    CASE("layer index with a leading zero", "unknown tensor", { strcpy(e[3].name, "model.layers.00.self_attn.q_proj.weight"); });
    CASE("layer index negative", "unknown tensor", { strcpy(e[3].name, "model.layers.-1.self_attn.q_proj.weight"); });
    CASE("duplicated tensor name", "duplicate", { strcpy(e[3].name, e[2].name); });
    CASE("missing tensor", "is missing", { memmove(&e[5], &e[6], sizeof(Entry) * (size_t)(n - 6)); ne--; });
    CASE("missing lm_head (untied)", "lm_head.weight' is missing", { ne--; });
    CASE("negative offset", "non-negative", { e[2].begin = -4; });
    /* old exports carry the rotary inv_freq buffer: accepted (shape checked) and ignored */
    {
        memcpy(e, e0, sizeof e0);
        Entry *x = &e[n];
        snprintf(x->name, sizeof x->name, "model.layers.1.self_attn.rotary_emb.inv_freq");
        strcpy(x->dtype, "F32");
        x->ndim = 1, x->shape[0] = 2, x->begin = dsz, x->end = dsz + 8;
        b = build_st(e, n + 1, dsz + 8, &len);
        Model m;
        cap_begin();
        int rc = hf_model_load_mem(&m, tiny_config_json, strlen(tiny_config_json), b, len, "inv_freq");
        char *err = cap_end();
        CHECK(rc == 0, "a checkpoint with rotary_emb.inv_freq: rc %d '%s'", rc, err);
        free(err);
        model_free(&m);
        free(b);
        x->shape[0] = 3, x->end = dsz + 12;
        b = build_st(e, n + 1, dsz + 12, &len);
        expect_refused("inv_freq of the wrong size", tiny_config_json, b, len, "model.safetensors", "config implies [2]");
        free(b);
    }
    /* hand-written headers */
    static const char *headers[][2] = {
        {"[1,2,3]", "does not start with '{'"},
        {"{\"a\":", "not valid JSON"},
        {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32],\"extra\":1}}", "unknown key"},
        {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8]}}", "missing key 'data_offsets'"},
        {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8.0],\"data_offsets\":[0,32]}}", "shape[0]"},
        {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32.0]}}", "non-negative integers"},
        {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0]}}", "[begin, end]"},
        {"{\"model.norm.weight\":{\"dtype\":32,\"shape\":[8],\"data_offsets\":[0,32]}}", "dtype: expected a string"},
        {"{\"__metadata__\":{\"format\":1}}", "__metadata__"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,32]}}", "elements"},
        {" {}", "does not start with '{'"},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        size_t hl = strlen(headers[i][0]);
        len = 8 + hl + 64;
        b = qh_calloc(len, 1);
        for (int j = 0; j < 8; j++) b[j] = (unsigned char)((uint64_t)hl >> (8 * j));
        memcpy(b + 8, headers[i][0], hl);
        char why[64];
        snprintf(why, sizeof why, "header #%zu", i);
        expect_refused(why, tiny_config_json, b, len, "model.safetensors", headers[i][1]);
        free(b);
    }
#undef CASE
}

/* Replace the first occurrence of `from` in the tiny config by `to`. */
static char *cfg_with(const char *from, const char *to) {
    const char *p = strstr(tiny_config_json, from);
    if (!p) {
        fprintf(stderr, "test bug: '%s' not in the tiny config\n", from);
        abort();
    }
    size_t n = strlen(tiny_config_json) - strlen(from) + strlen(to) + 1, a = (size_t)(p - tiny_config_json);
    char *s = qh_malloc(n);
    memcpy(s, tiny_config_json, a);
    strcpy(s + a, to);
    strcat(s, p + strlen(from));
    return s;
}

static void test_malformed_config(void) {
    Entry e[64];
    int n = tiny_entries(e);
    size_t len;
    unsigned char *b = build_st(e, n, entries_end(e, n), &len);
    static const char *cases[][4] = {
        /* why, replace, with, expected in message */
        {"hidden_size a string", "\"hidden_size\": 8", "\"hidden_size\": \"8\"", "'hidden_size': expected an integer"},
        {"num_hidden_layers a real", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 2.0", "'num_hidden_layers': expected an integer"},
        {"rms_norm_eps a string", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": \"1e-5\"", "'rms_norm_eps': expected a number"},
        {"rms_norm_eps missing", "\"rms_norm_eps\": 1e-05, ", "", "'rms_norm_eps' is missing"},
        {"rope_theta null is the default, but an array is not", "\"rope_theta\": 10000.0", "\"rope_theta\": [1]", "'rope_theta': expected a number"},
        {"tie_word_embeddings an integer", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0", "'tie_word_embeddings': expected true or false"},
        {"architectures a string", "[\"LlamaForCausalLM\"]", "\"LlamaForCausalLM\"", "'architectures': expected an array"},
        {"architectures empty", "[\"LlamaForCausalLM\"]", "[]", "'architectures'"},
        {"architectures missing", "\"architectures\": [\"LlamaForCausalLM\"], ", "", "'architectures' is missing"},
        {"vocab_size missing", "\"vocab_size\": 10, ", "", "'vocab_size' is missing"},
        {"vocab_size null", "\"vocab_size\": 10", "\"vocab_size\": null", "'vocab_size' is null"},
        {"hidden_size negative", "\"hidden_size\": 8", "\"hidden_size\": -8", "'hidden_size' = -8 is out of range"},
        {"hidden_size huge", "\"hidden_size\": 8", "\"hidden_size\": 9223372036854775807", "'hidden_size'"},
        {"rms_norm_eps zero", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0", "'rms_norm_eps' = 0 is out of range"},
        {"unknown architecture", "LlamaForCausalLM", "GPT2LMHeadModel", "'GPT2LMHeadModel' is not supported"},
        {"Qwen2 without its q/k/v biases", "LlamaForCausalLM", "Qwen2ForCausalLM", "'model.layers.0.self_attn.q_proj.bias' is missing"},
        {"Qwen2 with a short sliding window in use", "LlamaForCausalLM\"]", "Qwen2ForCausalLM\"], \"use_sliding_window\": true, \"sliding_window\": 8", "'sliding_window' = 8 is shorter"},
        {"rope_scaling dynamic", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 8.0}", "'rope_scaling' (type 'dynamic') is not supported"},
        {"rope_scaling llama3 without its factors", "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "'rope_scaling.low_freq_factor' is missing"},
        {"rope_scaling linear", "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "'rope_scaling' (type 'linear')"},
        {"rope_scaling a number", "\"rope_scaling\": null", "\"rope_scaling\": 2", "'rope_scaling'"},
        {"Mistral sliding_window shorter than the window", "LlamaForCausalLM\"]", "MistralForCausalLM\"], \"sliding_window\": 8", "'sliding_window' = 8 is shorter than the evaluation window 16"},
        {"sliding_window a string", "\"rope_scaling\": null", "\"sliding_window\": \"4096\"", "'sliding_window': expected an integer"},
        {"head_dim mismatch", "\"rope_scaling\": null", "\"head_dim\": 8", "'head_dim' = 8 differs"},
        {"kv heads not dividing heads", "\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3", "'num_key_value_heads' = 3 is out of range"},
        {"hidden_size not a multiple of heads", "\"num_attention_heads\": 2", "\"num_attention_heads\": 3", "not a multiple of num_attention_heads"},
        {"hidden_act gelu", "\"silu\"", "\"gelu\"", "'hidden_act': expected \"silu\""},
        {"attention_bias true", "\"rope_scaling\": null", "\"attention_bias\": true", "'attention_bias' is true"},
        {"duplicate key", "\"vocab_size\": 10", "\"vocab_size\": 10, \"vocab_size\": 10", "duplicate"},
        {"not JSON", "{", "{{", "not valid JSON"},
        {"JSON cut short", "\"torch_dtype\": \"float32\"}", "\"torch_dtype\": \"float32\"", "not valid JSON"},
        {"vocab_size disagreeing with the tensors", "\"vocab_size\": 10", "\"vocab_size\": 11", "config implies"},
        {"untied config without lm_head mismatch: tied", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *cfg = cfg_with(cases[i][1], cases[i][2]);
        if (!*cases[i][3]) { /* tied config with an lm_head present: loads, the head ignored (warning) */
            char dir[512];
            snprintf(dir, sizeof dir, "%s/tied_extra_head", tmp);
            write_hf_dir(dir, cfg, b, len);
            Model m;
            cap_begin();
            int rc = hf_model_load(&m, dir);
            char *err = cap_end();
            CHECK(rc == 0 && m.w.wcls == m.w.tok_emb && strstr(err, "lm_head.weight is ignored"),
                  "tied config with lm_head: rc %d, '%s'", rc, err);
            free(err);
            model_free(&m);
        } else {
            expect_refused(cases[i][0], cfg, b, len, strstr(cases[i][3], "config implies") || strstr(cases[i][3], "bias' is missing") ? "model.safetensors" : "config.json",
                           cases[i][3]);
        }
        free(cfg);
    }
    /* accepted variants: Mistral without a window or with a long one, defaults for optional keys */
    static const char *ok[][2] = {
        {"LlamaForCausalLM\"]", "MistralForCausalLM\"], \"sliding_window\": null"},
        {"LlamaForCausalLM\"]", "MistralForCausalLM\"], \"sliding_window\": 4096"},
        {"\"rope_theta\": 10000.0, \"rope_scaling\": null, ", ""},
        {"\"num_key_value_heads\": 1", "\"num_key_value_heads\": 1, \"head_dim\": 4, \"attention_bias\": false"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *cfg = cfg_with(ok[i][0], ok[i][1]);
        Model m;
        cap_begin();
        int rc = hf_model_load_mem(&m, cfg, strlen(cfg), b, len, "ok-variant");
        char *err = cap_end();
        CHECK(rc == 0 && m.cfg.rope_theta == 10000.0f && m.cfg.n_kv_heads == 1, "accepted variant %zu: rc %d '%s'",
              i, rc, err);
        free(err);
        model_free(&m);
        free(cfg);
    }
    expect_refused("config a JSON array", "[1, 2]", b, len, "config.json", "expected a JSON object, got an array");
    /* no config.json, no weights */
    expect_refused("no config.json", NULL, b, len, "config.json", "cannot open");
    expect_refused("no weights", tiny_config_json, NULL, 0, "", "neither model.safetensors nor");
    free(b);
}

/* idx with the string after `"key": ` replaced by "val" (val NULL: the key renamed to key + "X"). */
static char *index_edit(const char *idx, const char *key, const char *val) {
    char pat[160];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *at = strstr(idx, pat);
    if (!at) return NULL;
    char *s = qh_malloc(strlen(idx) + 256);
    size_t pre = (size_t)(at - idx);
    memcpy(s, idx, pre);
    if (val) {
        const char *v = at + strlen(pat), *q = strchr(v, '"');
        sprintf(s + pre, "%s%s%s", pat, val, q);
    } else {
        sprintf(s + pre, "\"%sX\": \"%s", key, at + strlen(pat));
    }
    return s;
}

static void test_shards(void) {
    Model a;
    CHECK(model_synth(&a, &tiny_cfg, 9) == 0, "synth tiny");
    char dir[512], p[700];
    snprintf(dir, sizeof dir, "%s/tiny_sharded", tmp);
    CHECK(export_dir(&a, dir, ST_F32, 700) == 0, "export tiny sharded");
    int nsh = count_entries(dir, "model-0");
    CHECK(nsh >= 3, "tiny sharded: %d shards", nsh);
    Model m;
    if (load_dir(&m, dir) == 0) {
        CHECK(compare_models(&a, &m, "tiny sharded") == 0, "tiny sharded round trip");
        model_free(&m);
    }
    char *idx;
    size_t n;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(qh_read_file(p, &idx, &n) == 0, "read the index");
    char shard1[64], shard2[64];
    snprintf(shard1, sizeof shard1, "model-00001-of-%05d.safetensors", nsh);
    snprintf(shard2, sizeof shard2, "model-00002-of-%05d.safetensors", nsh);
    /* copies of the folder with one thing changed; model.norm.weight is not in shard 1 (700-byte shards) */
    struct { const char *why, *pat; int kind; const char *key, *val; } cases[] = {
        {"missing shard", "is missing", 1, NULL, NULL},
        {"index lists a tensor in the wrong shard", "lists it in", 0, "model.norm.weight", shard1},
        {"index lacks a tensor", "is not listed in the weight_map", 0, "model.norm.weight", NULL},
        {"index: a path as shard name", "expected a file name", 0, "model.norm.weight", "../x.safetensors"},
        {"index: a shard that does not exist", "is missing", 0, "model.norm.weight", "model-9.safetensors"},
        {"tensor in two shards", "lists it in 'extra.safetensors'", 2, "model.norm.weight", "extra.safetensors"},
        {"index without weight_map", "weight_map", 3, "\"weight_map\"", "\"weight_mop\""},
        {"index not JSON", "not valid JSON", 3, "{", "{{"},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char d2[600], cmd[1400];
        snprintf(d2, sizeof d2, "%s/tiny_sharded_bad%zu", tmp, ci);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", dir, d2);
        if (system(cmd) != 0) {
            CHECK(0, "cp");
            continue;
        }
        char *s = NULL;
        if (cases[ci].kind == 1) {
            snprintf(p, sizeof p, "%s/%s", d2, shard2);
            unlink(p);
        } else if (cases[ci].kind == 3) {
            const char *at = strstr(idx, cases[ci].key);
            s = qh_malloc(strlen(idx) + 64);
            memcpy(s, idx, (size_t)(at - idx));
            sprintf(s + (at - idx), "%s%s", cases[ci].val, at + strlen(cases[ci].key));
        } else {
            s = index_edit(idx, cases[ci].key, cases[ci].val);
            CHECK(s != NULL, "test bug: %s", cases[ci].key);
            if (!s) continue;
        }
        if (cases[ci].kind == 2) { /* a second shard holding model.norm.weight too */
            StOut o = {"model.norm.weight", a.w.rms_final, 1, {tiny_cfg.dim, 0}, NULL};
            snprintf(p, sizeof p, "%s/extra.safetensors", d2);
            st_write(p, &o, 1, ST_F32);
        }
        if (s) {
            snprintf(p, sizeof p, "%s/model.safetensors.index.json", d2);
            write_str(p, s);
            free(s);
        }
        Model mm;
        memset(&mm, 0x5a, sizeof mm);
        cap_begin();
        int rc = hf_model_load(&mm, d2);
        char *err = cap_end();
        CHECK(rc == -1 && strstr(err, "error") && strstr(err, d2) && strstr(err, cases[ci].pat),
              "%s: rc %d, message '%s' (expected '%s')", cases[ci].why, rc, err, cases[ci].pat);
        CHECK(mm.heap == NULL && mm.w.blocks == NULL, "%s: Model not empty", cases[ci].why);
        if (getenv("QH_TEST_VERBOSE")) printf("  %-44s -> %s", cases[ci].why, err);
        free(err);
    }
    free(idx);
    model_free(&a);
}

static void test_save_refusals(void) {
    Model a;
    CHECK(model_synth(&a, &tiny_cfg, 2) == 0, "synth");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/exists", tmp);
    mkdir(dir, 0755);
    HfSaveOptions o = {.dtype = ST_BF16};
    cap_begin();
    int rc = hf_model_save(&a, dir, &o);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, "already exists") && count_entries(tmp, "exists.tmp") == 0,
          "export onto an existing folder: rc %d '%s'", rc, err);
    free(err);
    snprintf(dir, sizeof dir, "%s/no/such/parent/out", tmp);
    cap_begin();
    rc = hf_model_save(&a, dir, &o);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "error"), "export under a missing parent: rc %d '%s'", rc, err);
    free(err);
    o.tokenizer = "/nonexistent/tok.bin";
    snprintf(dir, sizeof dir, "%s/badtok", tmp);
    cap_begin();
    rc = hf_model_save(&a, dir, &o);
    err = cap_end();
    CHECK(rc == -1 && count_entries(tmp, "badtok") == 0, "a failed export leaves nothing: rc %d, %d entries", rc,
          count_entries(tmp, "badtok"));
    free(err);
    model_free(&a);
}

/* ---- fuzz -------------------------------------------------------------------------------------- */

static const char *const dict[] = {"{", "}", "[", "]", "\"", ",", ":", "-1", "0", "1e999", "-0", "1.5",
                                   "18446744073709551615", "9223372036854775807", "null", "true", "\"F64\"",
                                   "\"BF16\"", "\"F16\"", "\\u0000", "\\", "\"shape\"", "\"data_offsets\"",
                                   "\"dtype\"", "model.layers.1.", "\"__metadata__\"", "\xff", " "};

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL test_hf.c: fuzz did not finish within the watchdog limit (hang?)\n";
    if (write(cap_saved_fd >= 0 ? cap_saved_fd : 2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(2);
}

static void test_fuzz(void) {
    Model a;
    CHECK(model_synth(&a, &tiny_cfg, 11) == 0, "synth tiny");
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/fuzz_seed", tmp);
    CHECK(export_dir(&a, dir, ST_BF16, 0) == 0, "export fuzz seed");
    model_free(&a);
    char *cfg, *st;
    size_t cfg_len, st_len;
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK(qh_read_file(p, &cfg, &cfg_len) == 0, "read %s", p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(qh_read_file(p, &st, &st_len) == 0, "read %s", p);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)(unsigned char)st[i] << (8 * i);
    const char *seed_env = getenv("QH_TEST_SEED");
    long seed = 12345;
    if (seed_env) qh_parse_long(seed_env, &seed);
    Fuzz fz;
    fuzz_init(&fz, (uint64_t)seed, dict, sizeof dict / sizeof dict[0]);
    const int N_RAW = 3000, N_HDR = 3000, N_CFG = 4000;
    size_t cap = st_len + 4096;
    unsigned char *buf = qh_malloc(cap);
    int bad_rc = 0, accepted[3] = {0, 0, 0};
    printf("fuzz: seed %ld; parser messages go to %s/stderr.txt\n", seed, tmp);
    fflush(stdout);
    signal(SIGALRM, on_alarm);
    alarm(120);
    double t0 = qh_now();
    cap_begin();
    /* 1. raw file bytes: the 8-byte length, the header and the data all mutable; st_parse */
    for (int it = 0; it < N_RAW; it++) {
        size_t n = st_len;
        memcpy(buf, st, n);
        for (int k = 1 + (int)fuzz_range(&fz, 3); k-- > 0;)
            fuzz_mutate(&fz, buf, &n, cap, 0, fuzz_range(&fz, 8) ? 8 + hlen : n);
        StFile f;
        int rc = st_parse(&f, buf, n, "fuzz.safetensors");
        bad_rc += rc != 0 && rc != -1;
        if (rc == 0) {
            accepted[0]++;
            float tmpf[64];
            for (int i = 0; i < f.n_tensors; i++) /* touch the bytes of every accepted tensor */
                for (int64_t j = 0; j < f.tensors[i].numel; j += 64) {
                    StTensor t = f.tensors[i];
                    t.numel = t.numel - j < 64 ? t.numel - j : 64;
                    t.data += j * (int64_t)st_dtype_size(t.dtype);
                    st_to_f32(&t, tmpf);
                }
        }
        st_close(&f);
    }
    /* 2. the header text only, the length fixed up, the data kept: the whole load */
    for (int it = 0; it < N_HDR; it++) {
        size_t n = hlen;
        memcpy(buf, st + 8, n);
        for (int k = 1 + (int)fuzz_range(&fz, 3); k-- > 0;) fuzz_mutate(&fz, buf, &n, cap - 8 - (st_len - 8 - hlen), 0, n);
        unsigned char *whole = qh_malloc(8 + n + (st_len - 8 - hlen));
        for (int i = 0; i < 8; i++) whole[i] = (unsigned char)((uint64_t)n >> (8 * i));
        memcpy(whole + 8, buf, n);
        memcpy(whole + 8 + n, st + 8 + hlen, st_len - 8 - hlen);
        Model m;
        int rc = hf_model_load_mem(&m, cfg, cfg_len, whole, 8 + n + (st_len - 8 - hlen), "fuzz");
        bad_rc += rc != 0 && rc != -1;
        accepted[1] += rc == 0;
        model_free(&m);
        free(whole);
    }
    /* 3. config.json text: hf_config_parse, and every 4th the whole load */
    for (int it = 0; it < N_CFG; it++) {
        size_t n = cfg_len;
        memcpy(buf, cfg, n);
        for (int k = 1 + (int)fuzz_range(&fz, 3); k-- > 0;) fuzz_mutate(&fz, buf, &n, cap, 0, n);
        ModelConfig c;
        int rc = hf_config_parse((const char *)buf, n, "fuzz/config.json", &c);
        bad_rc += rc != 0 && rc != -1;
        accepted[2] += rc == 0;
        if (it % 4 == 0) {
            Model m;
            rc = hf_model_load_mem(&m, (const char *)buf, n, st, st_len, "fuzz");
            bad_rc += rc != 0 && rc != -1;
            model_free(&m);
        }
    }
    char *err = cap_end();
    double dt = qh_now() - t0;
    alarm(0);
    CHECK(bad_rc == 0, "fuzz: %d calls returned something other than 0 or -1", bad_rc);
    CHECK(dt < 20.0, "fuzz took %.1f s (limit 20 s)", dt);
    printf("fuzz: %d raw safetensors (%d accepted), %d header (%d loaded), %d config.json (%d accepted) in %.2f s\n",
           N_RAW, accepted[0], N_HDR, accepted[1], N_CFG, accepted[2], dt);
    free(err);
    free(buf);
    free(cfg);
    free(st);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/qh_test_hf_XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    double t0 = qh_now();
    test_rope_convention();
    char mp[512], tp[512];
    snprintf(mp, sizeof mp, "%s/models/stories260K/stories260K.bin", data_root());
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", data_root());
    cap_begin();
    have_s260 = model_load_llama2c(&s260, mp) == 0 && tokenizer_load(&tok, tp, 512) == 0 &&
                dataset_eval("tinystories", data_root(), &tok, 128, &story) == 0;
    char *e = cap_end();
    free(e);
    if (have_s260) {
        test_roundtrip_stories();
        test_reduced_precision();
    } else {
        SKIP("stories260K / tok512 / tinystories not found under $QH_DATA (run make data)");
    }
    test_roundtrip_synth();
    test_malformed_safetensors();
    test_malformed_config();
    test_shards();
    test_save_refusals();
    test_fuzz();
    if (have_s260) {
        model_free(&s260);
        tokenizer_free(&tok);
        token_stream_free(&story);
    }
    rm_tree(tmp);
    printf("test_hf: %.1f s\n", qh_now() - t0);
    return test_summary();
}
