/* hf_model.c: Hugging Face LLaMA-family directories <-> Model (see hf_model.h):
 * config.json parsing and writing (jansson), the tensor-name map, validation of
 * the tensor set against the config, the rotary row permutation of wq / wk,
 * sharded checkpoints, and the atomic directory writer. The safetensors bytes
 * themselves are safetensors.c's business; the forward pass never sees an HF
 * layout.
 *
 * Name map (HF -> harness, per layer N; D hidden_size, F intermediate_size,
 * KV = num_key_value_heads * head_dim, V vocab_size):
 *   model.embed_tokens.weight                 (V, D)  tok_emb
 *   model.layers.N.input_layernorm.weight     (D)     rms_att
 *   model.layers.N.self_attn.q_proj.weight    (D, D)  wq   rows permuted (rotary)
 *   model.layers.N.self_attn.k_proj.weight    (KV, D) wk   rows permuted (rotary)
 *   model.layers.N.self_attn.v_proj.weight    (KV, D) wv
 *   model.layers.N.self_attn.o_proj.weight    (D, D)  wo
 *   model.layers.N.post_attention_layernorm.weight (D) rms_ffn
 *   model.layers.N.mlp.gate_proj.weight       (F, D)  w1 (LIN_GATE)
 *   model.layers.N.mlp.up_proj.weight         (F, D)  w3 (LIN_UP)
 *   model.layers.N.mlp.down_proj.weight       (D, F)  w2 (LIN_DOWN)
 *   model.norm.weight                         (D)     rms_final
 *   lm_head.weight                            (V, D)  wcls (absent when tied)
 *   model.layers.N.self_attn.rotary_emb.inv_freq (head_dim/2): old exports; checked, ignored.
 * Qwen2ForCausalLM adds, and only it may hold (cfg.qkv_bias):
 *   model.layers.N.self_attn.q_proj.bias      (D)     bias[LIN_Q]  permuted like wq's rows
 *   model.layers.N.self_attn.k_proj.bias      (KV)    bias[LIN_K]  permuted like wk's rows
 *   model.layers.N.self_attn.v_proj.bias      (KV)    bias[LIN_V]
 *
 * Rotary convention. HF LLaMA applies RoPE to a head x (hs) as
 *   out[i]        = x[i] cos(t w_i) - x[i + hs/2] sin(t w_i)
 *   out[i + hs/2] = x[i + hs/2] cos(t w_i) + x[i] sin(t w_i),   w_i = theta^(-2i/hs), i < hs/2
 * ("rotate half"); rope_ref (forward_math.c) rotates the interleaved pairs
 * (2i, 2i+1) by the same angle t w_i. Reordering the outputs of q_proj and
 * k_proj so that HF component i lands at 2i and i + hs/2 at 2i+1 makes the two
 * identical; the attention scores q.k are sums over the head's components and
 * do not change under the same permutation of q and k. So at load
 *   wq_harness[h*hs + 2i + p][:] = q_proj[h*hs + p*hs/2 + i][:]   (p in {0, 1})
 * (the same for wk with the kv heads), and the inverse at save: the inverse of
 * the permutation meta -> HF of transformers' convert_llama_weights_to_hf.py. */
#define _GNU_SOURCE
#include "hf_model.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- config.json ------------------------------------------------------------- */

/* the default evaluation / calibration window of the harness (eval_default_seqlen) */
#define HF_MAX_DEFAULT_WINDOW 2048


/* An integer key in [lo, hi]; absent or null -> def when not required. */
static int cfg_int(const json_t *root, const char *what, const char *key, int required, long def, long lo, long hi,
                   int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return qh_error("'%s': key '%s' is %s (expected an integer)", what, key, v ? "null" : "missing");
        *out = (int)def;
        return 0;
    }
    if (!json_is_integer(v)) return qh_error("'%s': key '%s': expected an integer, got %s", what, key, st_json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return qh_error("'%s': key '%s' = %lld is out of range (expected %ld..%ld)", what, key, (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

/* A number key (integer or real) in (lo, hi]; absent or null -> def when not required. */
static int cfg_num(const json_t *root, const char *what, const char *key, int required, double def, double lo,
                   double hi, double *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return qh_error("'%s': key '%s' is %s (expected a number)", what, key, v ? "null" : "missing");
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return qh_error("'%s': key '%s': expected a number, got %s", what, key, st_json_kind(v));
    double x = json_number_value(v);
    if (!(x > lo && x <= hi)) return qh_error("'%s': key '%s' = %g is out of range (expected > %g and <= %g)", what, key, x, lo, hi);
    *out = x;
    return 0;
}

/* A boolean key; absent or null -> def. */
static int cfg_bool(const json_t *root, const char *what, const char *key, int def, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return qh_error("'%s': key '%s': expected true or false, got %s", what, key, st_json_kind(v));
    *out = json_is_true(v);
    return 0;
}

int hf_config_parse(const char *text, size_t len, const char *what, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return qh_error("'%s': not valid JSON: %s (line %d, column %d)", what, je.text, je.line, je.column);
    int rc = -1;
    if (!json_is_object(root)) {
        qh_error("'%s': expected a JSON object, got %s", what, st_json_kind(root));
        goto done;
    }
    /* architecture first: a refusal by name beats a complaint about a key */
    json_t *arch = json_object_get(root, "architectures");
    if (!arch) {
        qh_error("'%s': key 'architectures' is missing (expected [\"LlamaForCausalLM\"] or [\"MistralForCausalLM\"])",
                 what);
        goto done;
    }
    if (!json_is_array(arch) || json_array_size(arch) != 1 || !json_is_string(json_array_get(arch, 0))) {
        qh_error("'%s': key 'architectures': expected an array of one string, got %s%s", what, st_json_kind(arch),
                 json_is_array(arch) ? " of another length or type" : "");
        goto done;
    }
    const char *an = json_string_value(json_array_get(arch, 0));
    int qwen2 = !strcmp(an, "Qwen2ForCausalLM");
    if (!qwen2 && strcmp(an, "MistralForCausalLM") && strcmp(an, "LlamaForCausalLM")) {
        qh_error("'%s': architecture '%s' is not supported (expected LlamaForCausalLM, MistralForCausalLM or "
                 "Qwen2ForCausalLM)", what, an);
        goto done;
    }
    c->qkv_bias = qwen2; /* Qwen2's q/k/v projections always carry biases; its o_proj and MLP none */
    c->qk_rotate_half = 1; /* held interleaved: convert_slot / hf_model_save permute the rows */
    json_t *mt = json_object_get(root, "model_type");
    if (mt && !json_is_string(mt)) {
        qh_error("'%s': key 'model_type': expected a string, got %s", what, st_json_kind(mt));
        goto done;
    }
    /* sizes; limits as model_config_validate's, named by their HF keys here */
    int head_dim = 0;
    if (cfg_int(root, what, "hidden_size", 1, 0, 1, 1 << 20, &c->dim) ||
        cfg_int(root, what, "intermediate_size", 1, 0, 1, 1 << 22, &c->hidden_dim) ||
        cfg_int(root, what, "num_hidden_layers", 1, 0, 1, 4096, &c->n_layers) ||
        cfg_int(root, what, "num_attention_heads", 1, 0, 1, c->dim, &c->n_heads) ||
        cfg_int(root, what, "num_key_value_heads", 0, c->n_heads, 1, c->n_heads, &c->n_kv_heads) ||
        cfg_int(root, what, "vocab_size", 1, 0, 1, 1 << 24, &c->vocab_size) ||
        cfg_int(root, what, "max_position_embeddings", 1, 0, 2, 1 << 22, &c->seq_len))
        goto done;
    if (c->dim % c->n_heads != 0) {
        qh_error("'%s': hidden_size %d is not a multiple of num_attention_heads %d", what, c->dim, c->n_heads);
        goto done;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        qh_error("'%s': num_attention_heads %d is not a multiple of num_key_value_heads %d", what, c->n_heads,
                 c->n_kv_heads);
        goto done;
    }
    if (cfg_int(root, what, "head_dim", 0, c->dim / c->n_heads, 1, 1 << 20, &head_dim)) goto done;
    if (head_dim != c->dim / c->n_heads) {
        qh_error("'%s': key 'head_dim' = %d differs from hidden_size / num_attention_heads = %d (not supported)", what,
                 head_dim, c->dim / c->n_heads);
        goto done;
    }
    if (head_dim % 2 != 0) {
        qh_error("'%s': head_dim %d is odd (rotary embeddings need an even head size)", what, head_dim);
        goto done;
    }
    double theta, eps;
    if (cfg_num(root, what, "rope_theta", 0, 10000.0, 0.0, 1e12, &theta) ||
        cfg_num(root, what, "rms_norm_eps", 1, 0.0, 0.0, 0.1, &eps))
        goto done;
    c->rope_theta = (float)theta;
    c->norm_eps = (float)eps;
    int tied, abias, mbias;
    if (cfg_bool(root, what, "tie_word_embeddings", 0, &tied) || cfg_bool(root, what, "attention_bias", 0, &abias) ||
        cfg_bool(root, what, "mlp_bias", 0, &mbias))
        goto done;
    if (abias || mbias) { /* LLaMA's attention_bias also puts a bias on o_proj */
        qh_error("'%s': key '%s' is true: biases on %s are not supported (only Qwen2's q/k/v biases)", what,
                 abias ? "attention_bias" : "mlp_bias", abias ? "every attention projection" : "the MLP");
        goto done;
    }
    c->shared_classifier = tied;
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "silu"))) {
        qh_error("'%s': key 'hidden_act': expected \"silu\" (SwiGLU), got %s%s%s", what,
                 json_is_string(act) ? "\"" : st_json_kind(act), json_is_string(act) ? json_string_value(act) : "",
                 json_is_string(act) ? "\"" : "");
        goto done;
    }
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        json_t *ty = json_is_object(rs) ? json_object_get(rs, "rope_type") : NULL;
        if (!ty && json_is_object(rs)) ty = json_object_get(rs, "type");
        qh_error("'%s': key 'rope_scaling' (%s%s%s) is not supported: only null (plain RoPE with rope_theta)", what,
                 ty && json_is_string(ty) ? "type '" : st_json_kind(rs), ty && json_is_string(ty) ? json_string_value(ty) : "",
                 ty && json_is_string(ty) ? "'" : "");
        goto done;
    }
    /* Mistral's sliding-window attention equals full causal attention on windows no longer than it */
    json_t *sw = json_object_get(root, "sliding_window");
    int use_sw = 1; /* Qwen2 states whether the window is used; Mistral's is used when given */
    if (qwen2 && cfg_bool(root, what, "use_sliding_window", 0, &use_sw)) goto done;
    if (use_sw && sw && !json_is_null(sw)) {
        int win = c->seq_len < HF_MAX_DEFAULT_WINDOW ? c->seq_len : HF_MAX_DEFAULT_WINDOW, w;
        if (cfg_int(root, what, "sliding_window", 1, 0, 1, INT32_MAX, &w)) goto done;
        if (w < win) {
            qh_error("'%s': key 'sliding_window' = %d is shorter than the evaluation window %d "
                     "(min(max_position_embeddings, %d)): sliding-window attention is not implemented",
                     what, w, win, HF_MAX_DEFAULT_WINDOW);
            goto done;
        }
    }
    rc = model_config_validate(c, what);
done:
    json_decref(root);
    if (rc != 0) memset(c, 0, sizeof *c);
    return rc;
}

/* The shortest decimal that reads back as f (so 1e-5f is written 1e-05). */
static json_t *json_float_short(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static char *config_json(const ModelConfig *c, StDtype dtype) {
    static const char *const torch_names[ST_DTYPE_COUNT] = {"float32", "float16", "bfloat16"};
    json_t *o = json_object(), *arch = json_array();
    json_array_append_new(arch, json_string(c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string(c->qkv_bias ? "qwen2" : "llama"));
    json_object_set_new(o, "hidden_size", json_integer(c->dim));
    json_object_set_new(o, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(model_head_size(c)));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->seq_len));
    json_object_set_new(o, "rms_norm_eps", json_float_short(c->norm_eps));
    json_object_set_new(o, "rope_theta", json_float_short(c->rope_theta));
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->shared_classifier));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    if (c->qkv_bias) {
        json_object_set_new(o, "use_sliding_window", json_false());
    } else {
        json_object_set_new(o, "attention_bias", json_false());
        json_object_set_new(o, "mlp_bias", json_false());
    }
    json_object_set_new(o, "bos_token_id", json_integer(1)); /* llama2.c / LLaMA sentencepiece ids */
    json_object_set_new(o, "eos_token_id", json_integer(2));
    json_object_set_new(o, "torch_dtype", json_string(torch_names[dtype]));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

/* ---- tensor names ------------------------------------------------------------------ */

enum { SLOT_EMBED = 0, SLOT_NORM, SLOT_HEAD, SLOT_LAYER0, PER_LAYER = 12, FIRST_BIAS = 9 };
enum { SLOT_UNKNOWN = -1, SLOT_IGNORE = -2 };

/* per-layer tensors in slot order: 0 rms_att, 1 rms_ffn, 2..8 the linear layers by LinearKind,
 * 9..11 the q/k/v biases (Qwen2 only: cfg.qkv_bias) */
static const char *const layer_suffix[PER_LAYER] = {
    "input_layernorm.weight", "post_attention_layernorm.weight",
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",
};
/* LinearKind of per-layer slot j >= 2 (order of layer_suffix) */
static const LinearKind layer_lin[PER_LAYER] = {0, 0, LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN,
                                                LIN_Q, LIN_K, LIN_V};

/* Per-layer index of a slot (-1 for the embedding, final norm and head). */
static int slot_j(int slot) { return slot >= SLOT_LAYER0 ? (slot - SLOT_LAYER0) % PER_LAYER : -1; }
/* Does the model of config c hold this slot (no head when tied, no biases without qkv_bias)? */
static int slot_used(const ModelConfig *c, int slot) {
    if (slot == SLOT_HEAD) return !c->shared_classifier;
    return slot_j(slot) < FIRST_BIAS || c->qkv_bias;
}
/* Are the slot's rows (elements of a bias) in the rotary order (q_proj, k_proj)? */
static int slot_rotary(int slot) {
    int j = slot_j(slot);
    return j == 2 || j == 3 || j == FIRST_BIAS || j == FIRST_BIAS + 1;
}
static const char *const fixed_names[SLOT_LAYER0] = {"model.embed_tokens.weight", "model.norm.weight",
                                                      "lm_head.weight"};
#define INV_FREQ_SUFFIX "self_attn.rotary_emb.inv_freq"

/* name -> slot (SLOT_UNKNOWN, SLOT_IGNORE for inv_freq); *layer set for layer
 * tensors. Bias names are known only with_bias. */
static int slot_of(const char *name, int L, int with_bias, int *layer) {
    *layer = -1;
    for (int i = 0; i < SLOT_LAYER0; i++)
        if (!strcmp(name, fixed_names[i])) return i;
    static const char pre[] = "model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return SLOT_UNKNOWN;
    const char *p = name + sizeof pre - 1;
    /* a decimal layer index: no sign, no leading zero, < L */
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return SLOT_UNKNOWN;
    long l = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        l = l * 10 + (*p - '0');
        if (l >= L) return SLOT_UNKNOWN;
    }
    if (*p++ != '.') return SLOT_UNKNOWN;
    *layer = (int)l;
    for (int j = 0; j < (with_bias ? PER_LAYER : FIRST_BIAS); j++)
        if (!strcmp(p, layer_suffix[j])) return SLOT_LAYER0 + (int)l * PER_LAYER + j;
    if (!strcmp(p, INV_FREQ_SUFFIX)) return SLOT_IGNORE;
    return SLOT_UNKNOWN;
}

static void slot_name(int slot, char *buf, size_t n) {
    if (slot < SLOT_LAYER0) snprintf(buf, n, "%s", fixed_names[slot]);
    else snprintf(buf, n, "model.layers.%d.%s", (slot - SLOT_LAYER0) / PER_LAYER, layer_suffix[slot_j(slot)]);
}

/* Expected shape of a slot: (rows, cols), or (rows) when *ndim is 1. */
static void slot_shape(const ModelConfig *c, int slot, int *ndim, int64_t shape[2]) {
    *ndim = 2;
    if (slot == SLOT_EMBED || slot == SLOT_HEAD) {
        shape[0] = c->vocab_size;
        shape[1] = c->dim;
        return;
    }
    int j = slot == SLOT_NORM ? 0 : slot_j(slot);
    if (j < 2) {
        *ndim = 1;
        shape[0] = c->dim;
        shape[1] = 0;
        return;
    }
    int o, i;
    model_linear_shape(c, layer_lin[j], &o, &i);
    shape[0] = o;
    shape[1] = i;
    if (j >= FIRST_BIAS) { /* a bias: (out) */
        *ndim = 1;
        shape[1] = 0;
    }
}

/* Destination of a slot inside a model_alloc'ed Model (heap memory: writable). */
static float *slot_dst(Model *m, int slot) {
    if (slot == SLOT_EMBED) return (float *)m->w.tok_emb;
    if (slot == SLOT_NORM) return (float *)m->w.rms_final;
    if (slot == SLOT_HEAD) return (float *)m->w.wcls;
    int l = (slot - SLOT_LAYER0) / PER_LAYER, j = slot_j(slot);
    BlockWeights *b = &m->w.blocks[l];
    if (j == 0) return (float *)b->rms_att;
    if (j == 1) return (float *)b->rms_ffn;
    if (j >= FIRST_BIAS) return (float *)b->bias[layer_lin[j]];
    return (float *)b->lin[layer_lin[j]];
}

static const float *slot_src(const Model *m, int slot) { return slot_dst((Model *)m, slot); }

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t p = 0;
    p += (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && p < n - 24; d++)
        p += (size_t)snprintf(buf + p, n - p, "%s%lld", d ? ", " : "", (long long)shape[d]);
    snprintf(buf + p, n - p, "]");
}

/* ---- loading ------------------------------------------------------------------------ */

typedef struct Source {
    const StTensor *t; /* borrowed from shard `file` */
    const char *file;
} Source;

/* Tensor t (validated) -> dst in fp32; q/k rows from rotate-half to interleaved
 * order (harness row r is HF row hf_qk_hf_row(r)), converted row by row: no
 * copy of the tensor is made. */
static void convert_slot(const ModelConfig *c, int slot, const StTensor *t, float *dst) {
    if (!slot_rotary(slot)) {
        st_to_f32(t, dst);
        return;
    }
    int hs = model_head_size(c);
    int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 20))
    for (int64_t r = 0; r < rows; r++) st_to_f32_range(t, (int64_t)hf_qk_hf_row((int)r, hs) * cols, cols, dst + r * cols);
}

/* convert_slot, then drop the tensor's pages of the mmapped file: the fp32
 * copy is what stays resident (and what a --max-memory budget counts). */
static void convert_slot_release(const ModelConfig *c, int slot, const StTensor *t, float *dst) {
    convert_slot(c, slot, t, dst);
    qh_drop_pages(t->data, (size_t)t->numel * st_dtype_size(t->dtype));
}

/* ---- streamed: one block's linears at a time (BlockSource of model.h) ----------------- */

typedef struct HfStream {
    StFile *shards; /* (n_shards) owned, mmapped */
    int n_shards;
    Source *src;    /* (n_slots) owned; tensors borrowed from shards */
} HfStream;

static int hf_stream_load(void *user, const ModelConfig *c, int layer, float *const dst[LIN_COUNT]) {
    HfStream *h = user;
    for (int j = 2; j < FIRST_BIAS; j++) {
        int slot = SLOT_LAYER0 + layer * PER_LAYER + j;
        convert_slot_release(c, slot, h->src[slot].t, dst[layer_lin[j]]);
    }
    return 0;
}

static void hf_stream_close(void *user) {
    HfStream *h = user;
    for (int s = 0; s < h->n_shards; s++) st_close(&h->shards[s]);
    free(h->shards);
    free(h->src);
    free(h);
}

/* Check every tensor of the shards against the config (and against the index's
 * weight_map when sharded: shard_names[s] is shard s's name in it), then
 * allocate *m and convert. `what` names the checkpoint in messages (the one
 * safetensors file, or the directory when sharded); `path` becomes m->path.
 * streamed: only the embedding, head, norms and biases are converted; the
 * model takes over `shards` (on success) and reads the block linears from
 * them on demand (model_load_block). */
static int hf_build(Model *m, const ModelConfig *c, StFile *shards, int n_shards, const json_t *weight_map,
                    char **shard_names, const char *index_path, const char *what, const char *path, int streamed) {
    int L = c->n_layers, n_slots = SLOT_LAYER0 + L * PER_LAYER, rc = -1;
    Source *src = qh_calloc((size_t)n_slots, sizeof *src);
    char nm[256], s1[96], s2[96];
    for (int s = 0; s < n_shards; s++) {
        const StFile *f = &shards[s];
        for (int i = 0; i < f->n_tensors; i++) {
            const StTensor *t = &f->tensors[i];
            int layer, slot = slot_of(t->name, L, c->qkv_bias, &layer);
            if (slot == SLOT_UNKNOWN) {
                qh_error("'%s': unknown tensor '%s' (expected model.embed_tokens.weight, model.norm.weight, "
                         "lm_head.weight and model.layers.N.* of a %s block, N < %d)", f->what, t->name,
                         c->qkv_bias ? "Qwen2" : "LLaMA", L);
                goto done;
            }
            if (weight_map) {
                json_t *e = json_object_get(weight_map, t->name);
                if (!e) {
                    qh_error("'%s': tensor '%s' is not listed in the weight_map of '%s'", f->what, t->name, index_path);
                    goto done;
                }
                if (strcmp(json_string_value(e), shard_names[s])) {
                    qh_error("'%s': tensor '%s' is in shard '%s', but '%s' lists it in '%s'", f->what, t->name,
                             shard_names[s], index_path, json_string_value(e));
                    goto done;
                }
            }
            int ndim;
            int64_t shape[2];
            if (slot == SLOT_IGNORE) { /* rotary inv_freq buffer: recomputed from rope_theta */
                ndim = 1;
                shape[0] = model_head_size(c) / 2;
            } else {
                slot_shape(c, slot, &ndim, shape);
            }
            if (t->ndim != ndim || t->shape[0] != shape[0] || (ndim == 2 && t->shape[1] != shape[1])) {
                fmt_shape(s1, sizeof s1, t->ndim, t->shape);
                fmt_shape(s2, sizeof s2, ndim, shape);
                qh_error("'%s': tensor '%s' has shape %s, but the config implies %s", f->what, t->name, s1, s2);
                goto done;
            }
            if (slot == SLOT_IGNORE) continue;
            if (src[slot].t) {
                qh_error("'%s': tensor '%s' is given twice (also in '%s')", f->what, t->name, src[slot].file);
                goto done;
            }
            src[slot].t = t;
            src[slot].file = f->what;
        }
    }
    for (int slot = 0; slot < n_slots; slot++) {
        if (src[slot].t || !slot_used(c, slot)) continue;
        slot_name(slot, nm, sizeof nm);
        if (weight_map && json_object_get(weight_map, nm))
            qh_error("'%s': tensor '%s' is listed in '%s' for shard '%s', which does not hold it", what, nm, index_path,
                     json_string_value(json_object_get(weight_map, nm)));
        else
            qh_error("'%s': tensor '%s' is missing%s", what, nm,
                     slot == SLOT_HEAD ? " (tie_word_embeddings is false)" : "");
        goto done;
    }
    if (weight_map) { /* every weight_map entry was found in its shard */
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)weight_map, k, v) {
            int layer, slot = slot_of(k, L, c->qkv_bias, &layer), found = 0;
            for (int s = 0; s < n_shards && !found; s++)
                if (!strcmp(json_string_value(v), shard_names[s])) found = st_find(&shards[s], k) != NULL;
            if (!found) {
                qh_error("'%s': the weight_map lists tensor '%s' in shard '%s', which does not hold it%s", index_path,
                         k, json_string_value(v), slot == SLOT_UNKNOWN ? " (nor is it a LLaMA tensor)" : "");
                goto done;
            }
        }
    }
    if (c->shared_classifier && src[SLOT_HEAD].t)
        qh_warn("'%s': lm_head.weight is ignored: tie_word_embeddings is true (the head is the embedding)", what);
    /* all checked: allocate and convert */
    if ((streamed ? model_alloc_streamed(m, c, path) : model_alloc(m, c, path)) != 0) goto done;
    for (int slot = 0; slot < n_slots; slot++) {
        if (!slot_used(c, slot)) continue;
        int j = slot_j(slot);
        if (!streamed) convert_slot(c, slot, src[slot].t, slot_dst(m, slot));
        else if (j < 2 || j >= FIRST_BIAS) convert_slot_release(c, slot, src[slot].t, slot_dst(m, slot));
        /* else a block linear: converted when model_load_block asks */
    }
    if (streamed) { /* the model takes over the shards and the tensor map */
        HfStream *h = qh_calloc(1, sizeof *h);
        h->shards = shards;
        h->n_shards = n_shards;
        h->src = src;
        src = NULL;
        m->src = (BlockSource){hf_stream_load, hf_stream_close, h};
    }
    rc = 0;
done:
    free(src);
    return rc;
}

int hf_model_load_mem(Model *m, const char *config, size_t config_len, const void *st, size_t st_len,
                      const char *what) {
    memset(m, 0, sizeof *m);
    ModelConfig c;
    if (hf_config_parse(config, config_len, what, &c) != 0) return -1;
    StFile f;
    if (st_parse(&f, st, st_len, what) != 0) return -1;
    int rc = hf_build(m, &c, &f, 1, NULL, NULL, NULL, what, what, 0);
    st_close(&f);
    if (rc != 0) model_free(m);
    return rc;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = qh_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int hf_is_model_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    char *cfg = path_join(path, "config.json");
    int ok = stat(cfg, &st) == 0 && S_ISREG(st.st_mode);
    free(cfg);
    return ok;
}

/* A shard name from the index: a plain file name in the directory. */
static int shard_name_ok(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* hf_model_load and hf_model_open_streamed. */
static int hf_open(Model *m, const char *dir, int streamed) {
    memset(m, 0, sizeof *m);
    char *cfg_path = path_join(dir, "config.json"), *single = path_join(dir, "model.safetensors"),
         *index_path = path_join(dir, "model.safetensors.index.json");
    char *text = NULL, **names = NULL;
    StFile *shards = NULL;
    json_t *index = NULL;
    int n_shards = 0, rc = -1;
    size_t len;
    ModelConfig c;
    if (qh_read_file(cfg_path, &text, &len) != 0) goto done; /* message printed */
    if (hf_config_parse(text, len, cfg_path, &c) != 0) goto done;
    if (access(single, F_OK) == 0) {
        shards = qh_calloc(1, sizeof *shards);
        if (st_open(&shards[0], single) != 0) goto done;
        n_shards = 1;
        rc = hf_build(m, &c, shards, 1, NULL, NULL, NULL, single, dir, streamed);
        goto done;
    }
    if (access(index_path, F_OK) != 0) {
        qh_error("'%s' holds neither model.safetensors nor model.safetensors.index.json", dir);
        goto done;
    }
    json_error_t je;
    index = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!index) {
        qh_error("'%s': not valid JSON: %s (line %d, column %d)", index_path, je.text, je.line, je.column);
        goto done;
    }
    json_t *wm = json_is_object(index) ? json_object_get(index, "weight_map") : NULL;
    if (!wm || !json_is_object(wm)) {
        qh_error("'%s': key 'weight_map' is missing or not an object", index_path);
        goto done;
    }
    /* the distinct shard files, in order of first mention */
    names = qh_calloc(json_object_size(wm) + 1, sizeof *names);
    const char *k;
    json_t *v;
    json_object_foreach(wm, k, v) {
        if (!json_is_string(v) || !shard_name_ok(json_string_value(v))) {
            qh_error("'%s': weight_map['%s']: expected a file name in '%s', got %s", index_path, k, dir,
                     json_is_string(v) ? json_string_value(v) : st_json_kind(v));
            goto done;
        }
        int seen = 0;
        for (int s = 0; s < n_shards && !seen; s++) seen = !strcmp(names[s], json_string_value(v));
        if (!seen) names[n_shards++] = qh_strdup(json_string_value(v));
    }
    if (n_shards == 0) {
        qh_error("'%s': the weight_map is empty", index_path);
        goto done;
    }
    shards = qh_calloc((size_t)n_shards, sizeof *shards);
    for (int s = 0; s < n_shards; s++) {
        char *p = path_join(dir, names[s]);
        if (access(p, F_OK) != 0) {
            qh_error("'%s': shard '%s' listed in '%s' is missing", dir, names[s], index_path);
            free(p);
            goto done;
        }
        int bad = st_open(&shards[s], p);
        free(p);
        if (bad) goto done;
    }
    rc = hf_build(m, &c, shards, n_shards, wm, names, index_path, dir, dir, streamed);
done:
    if (streamed && rc == 0) shards = NULL; /* the model's now */
    for (int s = 0; shards && s < n_shards; s++) st_close(&shards[s]);
    free(shards);
    for (int s = 0; names && s < n_shards; s++) free(names[s]);
    free(names);
    json_decref(index);
    free(text);
    free(cfg_path);
    free(single);
    free(index_path);
    if (rc != 0) model_free(m);
    return rc;
}

int hf_model_load(Model *m, const char *dir) { return hf_open(m, dir, 0); }
int hf_model_open_streamed(Model *m, const char *dir) { return hf_open(m, dir, 1); }

/* ---- saving --------------------------------------------------------------------------- */

static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return qh_error("cannot create '%s': %s", path, strerror(errno));
    size_t n = strlen(s);
    int bad = fwrite(s, 1, n, f) != n || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    return bad ? qh_error("cannot write '%s': %s", path, strerror(errno)) : 0;
}

static int copy_file(const char *from, const char *to) {
    char *data;
    size_t n;
    if (qh_read_file(from, &data, &n) != 0) return qh_error("cannot read '%s': %s", from, strerror(errno));
    FILE *f = fopen(to, "wb");
    int bad = !f || fwrite(data, 1, n, f) != n;
    if (f) bad |= fclose(f) != 0;
    free(data);
    return bad ? qh_error("cannot write '%s': %s", to, strerror(errno)) : 0;
}

/* Remove the temporary folder we created and everything in it. */
static void remove_tmp_dir(const char *tmp) {
    DIR *d = opendir(tmp);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char *p = path_join(tmp, e->d_name);
                unlink(p);
                free(p);
            }
        closedir(d);
    }
    rmdir(tmp);
}

int hf_model_save(const Model *m, const char *dir_in, const HfSaveOptions *o) {
    const ModelConfig *c = &m->cfg;
    if (m->src.load)
        return qh_error("cannot export '%s': it is read block by block (--max-memory), not held in memory",
                        m->path ? m->path : "the model");
    if (model_config_validate(c, m->path ? m->path : "model") != 0) return -1;
    char *dir = qh_strdup(dir_in);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = '\0';
    struct stat st;
    if (stat(dir, &st) == 0) {
        qh_error("'%s' already exists: remove it or choose another output folder", dir);
        free(dir);
        return -1;
    }
    size_t tl = strlen(dir) + 32;
    char *tmp = qh_malloc(tl);
    snprintf(tmp, tl, "%s.tmp.%ld", dir, (long)getpid());
    if (mkdir(tmp, 0755) != 0) {
        qh_error("cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(dir);
        return -1;
    }
    int L = c->n_layers, D = c->dim, KV = model_kv_dim(c), hs = model_head_size(c), rc = -1;
    /* HF row r of q_proj / k_proj is harness row perm[r] (the inverse of hf_qk_hf_row) */
    int32_t *perm_q = qh_malloc((size_t)D * sizeof(int32_t)), *perm_k = qh_malloc((size_t)KV * sizeof(int32_t));
    for (int r = 0; r < D; r++) perm_q[hf_qk_hf_row(r, hs)] = r;
    for (int r = 0; r < KV; r++) perm_k[hf_qk_hf_row(r, hs)] = r;
    int n_slots = SLOT_LAYER0 + L * PER_LAYER, n = 0;
    StOut *outs = qh_calloc((size_t)n_slots, sizeof *outs);
    char **names = qh_calloc((size_t)n_slots, sizeof *names);
    /* file order: embedding, the blocks, final norm, head */
    int order_n = 0, *order = qh_malloc((size_t)n_slots * sizeof(int));
    order[order_n++] = SLOT_EMBED;
    for (int s = SLOT_LAYER0; s < n_slots; s++)
        if (slot_used(c, s)) order[order_n++] = s;
    order[order_n++] = SLOT_NORM;
    if (!c->shared_classifier) order[order_n++] = SLOT_HEAD;
    for (int i = 0; i < order_n; i++) {
        int slot = order[i];
        char nm[256];
        slot_name(slot, nm, sizeof nm);
        names[n] = qh_strdup(nm);
        StOut *t = &outs[n++];
        t->name = names[n - 1];
        slot_shape(c, slot, &t->ndim, t->shape);
        t->data = slot_src(m, slot);
        int j = slot_j(slot);
        if (slot_rotary(slot)) t->row_perm = j == 2 || j == FIRST_BIAS ? perm_q : perm_k; /* q_proj, k_proj */
    }
    free(order);
    uint64_t total = st_data_bytes(outs, n, o->dtype);
    char *p = NULL, *cfg = NULL;
    if (o->max_shard_bytes == 0 || total <= o->max_shard_bytes) {
        p = path_join(tmp, "model.safetensors");
        if (st_write(p, outs, n, o->dtype) != 0) goto done;
    } else {
        /* greedy shards: a new one when the next tensor would overflow a non-empty shard */
        int *start = qh_malloc((size_t)(n + 1) * sizeof(int)), ns = 0;
        uint64_t cur = 0;
        for (int i = 0; i < n; i++) {
            uint64_t b = st_data_bytes(&outs[i], 1, o->dtype);
            if (i == 0 || (cur > 0 && cur + b > o->max_shard_bytes)) {
                start[ns++] = i;
                cur = 0;
            }
            cur += b;
        }
        start[ns] = n;
        json_t *idx = json_object(), *meta = json_object(), *wm = json_object();
        json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
        json_object_set_new(idx, "metadata", meta);
        int bad = 0;
        for (int s = 0; s < ns && !bad; s++) {
            char sn[64];
            snprintf(sn, sizeof sn, "model-%05d-of-%05d.safetensors", s + 1, ns);
            free(p);
            p = path_join(tmp, sn);
            bad = st_write(p, outs + start[s], start[s + 1] - start[s], o->dtype) != 0;
            for (int i = start[s]; i < start[s + 1]; i++) json_object_set_new(wm, outs[i].name, json_string(sn));
        }
        json_object_set_new(idx, "weight_map", wm);
        free(start);
        if (!bad) {
            char *s = json_dumps(idx, JSON_INDENT(2));
            free(p);
            p = path_join(tmp, "model.safetensors.index.json");
            bad = write_text(p, s) != 0;
            free(s);
        }
        json_decref(idx);
        if (bad) goto done;
    }
    free(p);
    p = path_join(tmp, "config.json");
    cfg = config_json(c, o->dtype);
    if (write_text(p, cfg) != 0) goto done;
    if (o->tokenizer) {
        free(p);
        p = path_join(tmp, "tokenizer.bin");
        if (copy_file(o->tokenizer, p) != 0) goto done;
    }
    if (rename(tmp, dir) != 0) {
        qh_error("cannot rename '%s' to '%s': %s", tmp, dir, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) remove_tmp_dir(tmp);
    free(cfg);
    free(p);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(outs);
    free(perm_q);
    free(perm_k);
    free(tmp);
    free(dir);
    return rc;
}
