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

#include "arch.h"
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

/* An integer key under either of two names (Falcon's old RefinedWeb configs: n_head, n_layer, ...). */
static int cfg_int2(const json_t *root, const char *what, const char *key, const char *old, int required, long def,
                    long lo, long hi, int *out) {
    if (!json_object_get(root, key) && old && json_object_get(root, old))
        return cfg_int(root, what, old, required, def, lo, hi, out);
    return cfg_int(root, what, key, required, def, lo, hi, out);
}

/* rope_scaling: null, or {"rope_type" (or "type"): "llama3", factor, low_freq_factor,
 * high_freq_factor, original_max_position_embeddings} (Llama-3.1 / 3.2); any other type is refused. */
static int parse_rope_scaling(const json_t *root, const char *what, ModelConfig *c) {
    json_t *rs = json_object_get(root, "rope_scaling");
    if (!rs || json_is_null(rs)) return 0;
    json_t *ty = json_is_object(rs) ? json_object_get(rs, "rope_type") : NULL;
    if (!ty && json_is_object(rs)) ty = json_object_get(rs, "type");
    if (!ty || !json_is_string(ty) || strcmp(json_string_value(ty), "llama3"))
        return qh_error("'%s': key 'rope_scaling' (%s%s%s) is not supported: only null (plain RoPE with rope_theta) "
                        "or rope_type 'llama3'", what, ty && json_is_string(ty) ? "type '" : st_json_kind(rs),
                        ty && json_is_string(ty) ? json_string_value(ty) : "", ty && json_is_string(ty) ? "'" : "");
    if (arch_of(c)->family != ARCH_LLAMA)
        return qh_error("'%s': key 'rope_scaling': rope_type 'llama3' is supported for LLaMA models only", what);
    char key[96];
    double f = 0, lo = 0, hi = 0;
    int orig = 0;
#define RS_NUM(k, out)                                                                                            \
    (snprintf(key, sizeof key, "rope_scaling.%s", k),                                                            \
     json_object_get(rs, k) && json_is_number(json_object_get(rs, k))                                            \
         ? (*(out) = json_number_value(json_object_get(rs, k)), 0)                                               \
         : qh_error("'%s': key '%s' is %s (expected a number)", what, key,                                      \
                    json_object_get(rs, k) ? st_json_kind(json_object_get(rs, k)) : "missing"))
    if (RS_NUM("factor", &f) || RS_NUM("low_freq_factor", &lo) || RS_NUM("high_freq_factor", &hi)) return -1;
#undef RS_NUM
    if (cfg_int(rs, what, "original_max_position_embeddings", 1, 0, 1, 1 << 22, &orig)) return -1;
    if (!(f >= 1.0 && f < 1e6) || !(lo > 0 && lo < hi && hi < 1e6))
        return qh_error("'%s': key 'rope_scaling': factor %g, low_freq_factor %g, high_freq_factor %g "
                        "(expected factor >= 1 and 0 < low_freq_factor < high_freq_factor)", what, f, lo, hi);
    c->rope_scaling = ROPE_SCALING_LLAMA3;
    c->rope_factor = (float)f;
    c->rope_low_freq_factor = (float)lo;
    c->rope_high_freq_factor = (float)hi;
    c->rope_original_max_pos = orig;
    return 0;
}

/* A Falcon config.json (model_type falcon, RefinedWebModel or RefinedWeb) -> *c.
 * Keys as transformers' FalconConfig reads them (with the old RefinedWeb names
 * n_embed, n_head, n_head_kv, n_layer accepted); what changes the forward pass
 * and is not implemented is refused by name: alibi, parallel_attn false,
 * rope_scaling, an activation other than exact GELU. */
static int falcon_config_parse(const json_t *root, const char *what, const char *mt, ModelConfig *c) {
    json_t *arch = json_object_get(root, "architectures");
    if (arch && !json_is_null(arch)) {
        const char *an = json_is_array(arch) && json_array_size(arch) == 1 && json_is_string(json_array_get(arch, 0))
                             ? json_string_value(json_array_get(arch, 0)) : NULL;
        if (!an || (strcmp(an, "FalconForCausalLM") && strcmp(an, "RWForCausalLM")))
            return qh_error("'%s': key 'architectures': expected [\"FalconForCausalLM\"] or [\"RWForCausalLM\"] "
                            "for model_type '%s'", what, mt);
    }
    int alibi = 0, parallel = 0, bias = 0, nda = 0, mq = 0, tied = 0, n_ln = 0;
    /* RefinedWeb (Falcon-40B's original name) is the new decoder architecture */
    if (cfg_bool(root, what, "alibi", 0, &alibi) || cfg_bool(root, what, "parallel_attn", 1, &parallel) ||
        cfg_bool(root, what, "bias", 0, &bias) ||
        cfg_bool(root, what, "new_decoder_architecture", !strcmp(mt, "RefinedWeb"), &nda) ||
        cfg_bool(root, what, "multi_query", 1, &mq) || cfg_bool(root, what, "tie_word_embeddings", 1, &tied))
        return -1;
    if (alibi)
        return qh_error("'%s': key 'alibi' is true: ALiBi attention is not supported (expected false: rotary "
                        "embeddings)", what);
    if (!parallel)
        return qh_error("'%s': key 'parallel_attn' is false: Falcon with sequential attention and MLP is not "
                        "supported (expected true)", what);
    json_t *act = json_object_get(root, "activation");
    if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), "gelu")))
        return qh_error("'%s': key 'activation': expected \"gelu\" (exact GELU), got %s%s%s", what,
                        json_is_string(act) ? "\"" : st_json_kind(act), json_is_string(act) ? json_string_value(act) : "",
                        json_is_string(act) ? "\"" : "");
    double theta = 0, eps = 0;
    if (cfg_int2(root, what, "hidden_size", "n_embed", 1, 0, 1, 1 << 20, &c->dim) ||
        cfg_int2(root, what, "num_hidden_layers", "n_layer", 1, 0, 1, 4096, &c->n_layers) ||
        cfg_int2(root, what, "num_attention_heads", "n_head", 1, 0, 1, c->dim, &c->n_heads) ||
        cfg_int(root, what, "vocab_size", 1, 0, 1, 1 << 24, &c->vocab_size) ||
        cfg_int(root, what, "max_position_embeddings", 0, 2048, 2, 1 << 22, &c->seq_len) ||
        cfg_int(root, what, "ffn_hidden_size", 0, 4L * c->dim, 1, 1 << 22, &c->hidden_dim) ||
        cfg_num(root, what, "rope_theta", 0, 10000.0, 0.0, 1e12, &theta) ||
        cfg_num(root, what, "layer_norm_epsilon", 0, 1e-5, 0.0, 0.1, &eps))
        return -1;
    if (c->dim % c->n_heads != 0)
        return qh_error("'%s': hidden_size %d is not a multiple of num_attention_heads %d", what, c->dim, c->n_heads);
    /* kv heads as FalconAttention: num_kv_heads with the new architecture, else 1 (multi-query) or all */
    if (nda) {
        if (cfg_int2(root, what, "num_kv_heads", "n_head_kv", 0, c->n_heads, 1, c->n_heads, &c->n_kv_heads)) return -1;
        if (c->n_heads % c->n_kv_heads != 0)
            return qh_error("'%s': num_attention_heads %d is not a multiple of num_kv_heads %d", what, c->n_heads,
                            c->n_kv_heads);
        if (cfg_int(root, what, "num_ln_in_parallel_attn", 0, 2, 1, 2, &n_ln)) return -1;
    } else {
        c->n_kv_heads = mq ? 1 : c->n_heads;
    }
    c->arch = nda && n_ln == 2 ? ARCH_ID_FALCON_NDA : ARCH_ID_FALCON;
    c->rope_theta = (float)theta;
    c->norm_eps = (float)eps;
    c->linear_bias = bias;
    c->shared_classifier = tied;
    c->qk_rotate_half = 1; /* HF's rotary convention; the fused QKV is held as stored (arch_qkv_split_map) */
    if (parse_rope_scaling(root, what, c) != 0) return -1;
    if ((c->dim / c->n_heads) % 2 != 0)
        return qh_error("'%s': head size %d is odd (rotary embeddings need an even head size)", what,
                        c->dim / c->n_heads);
    return model_config_validate(c, what);
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
    /* the family by model_type (absent: decided by 'architectures' below, as before model_type was read) */
    json_t *mtv = json_object_get(root, "model_type");
    if (mtv && !json_is_string(mtv)) {
        qh_error("'%s': key 'model_type': expected a string, got %s", what, st_json_kind(mtv));
        goto done;
    }
    const char *mt = mtv ? json_string_value(mtv) : NULL;
    if (mt && (!strcmp(mt, "falcon") || !strcmp(mt, "RefinedWebModel") || !strcmp(mt, "RefinedWeb"))) {
        rc = falcon_config_parse(root, what, mt, c);
        goto done;
    }
    if (mt && strcmp(mt, "llama") && strcmp(mt, "mistral") && strcmp(mt, "qwen2")) {
        qh_error("'%s': key 'model_type' = '%s' is not supported (expected llama, mistral, qwen2, falcon, "
                 "RefinedWebModel or RefinedWeb)", what, mt);
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
    if (parse_rope_scaling(root, what, c) != 0) goto done;
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
        c->sliding_window = w; /* longer windows are refused at forward_create */
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

static const char *const torch_names[ST_DTYPE_COUNT] = {"float32", "float16", "bfloat16"};

/* A Falcon config.json that transformers' FalconConfig reads back as this
 * block: one norm with one kv head is Falcon-7B's multi-query layout, with
 * every head the old per-head [q k v] layout (both split as the grouped one,
 * arch_qkv_split_map), otherwise the new decoder architecture with
 * num_ln_in_parallel_attn 1 or 2. */
static char *falcon_config_json(const ModelConfig *c, StDtype dtype) {
    json_t *o = json_object(), *arch = json_array();
    int two = c->arch == ARCH_ID_FALCON_NDA, nda = two || (c->n_kv_heads != 1 && c->n_kv_heads != c->n_heads);
    json_array_append_new(arch, json_string("FalconForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("falcon"));
    json_object_set_new(o, "hidden_size", json_integer(c->dim));
    json_object_set_new(o, "ffn_hidden_size", json_integer(c->hidden_dim));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_kv_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "new_decoder_architecture", json_boolean(nda));
    json_object_set_new(o, "multi_query", json_boolean(!nda && c->n_kv_heads == 1));
    if (nda) json_object_set_new(o, "num_ln_in_parallel_attn", json_integer(two ? 2 : 1));
    json_object_set_new(o, "parallel_attn", json_true());
    json_object_set_new(o, "alibi", json_false());
    json_object_set_new(o, "bias", json_boolean(c->linear_bias));
    json_object_set_new(o, "activation", json_string("gelu"));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->seq_len));
    json_object_set_new(o, "layer_norm_epsilon", json_float_short(c->norm_eps));
    json_object_set_new(o, "rope_theta", json_float_short(c->rope_theta));
    json_object_set_new(o, "rope_scaling", json_null());
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->shared_classifier));
    json_object_set_new(o, "torch_dtype", json_string(torch_names[dtype]));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

static char *config_json(const ModelConfig *c, StDtype dtype) {
    if (arch_of(c)->family == ARCH_FALCON) return falcon_config_json(c, dtype);
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
    if (c->rope_scaling == ROPE_SCALING_LLAMA3) {
        json_t *rs = json_object();
        json_object_set_new(rs, "rope_type", json_string("llama3"));
        json_object_set_new(rs, "factor", json_float_short(c->rope_factor));
        json_object_set_new(rs, "low_freq_factor", json_float_short(c->rope_low_freq_factor));
        json_object_set_new(rs, "high_freq_factor", json_float_short(c->rope_high_freq_factor));
        json_object_set_new(rs, "original_max_position_embeddings", json_integer(c->rope_original_max_pos));
        json_object_set_new(o, "rope_scaling", rs);
    } else {
        json_object_set_new(o, "rope_scaling", json_null());
    }
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

/* Tensor slots, named and shaped by the family's descriptor (arch.h): the
 * embedding, the final norm's weight and bias, the head; then PER_LAYER
 * slots per layer j: the block norms' weights (J_NORM + i), their LayerNorm
 * biases (J_NORM_BIAS + i), the linears' weights (J_LIN + k, k a LinearKind)
 * and biases (J_BIAS + k). slot_used says which of them a config holds. */
enum { SLOT_EMBED = 0, SLOT_NORM, SLOT_NORM_BIAS, SLOT_HEAD, SLOT_LAYER0 };
enum { J_NORM = 0, J_NORM_BIAS = ARCH_MAX_NORMS, J_LIN = 2 * ARCH_MAX_NORMS, J_BIAS = J_LIN + LIN_COUNT,
       PER_LAYER = J_BIAS + LIN_COUNT };
enum { SLOT_UNKNOWN = -1, SLOT_IGNORE = -2 };

/* Per-layer index of a slot (-1 for the embedding, final norm and head). */
static int slot_j(int slot) { return slot >= SLOT_LAYER0 ? (slot - SLOT_LAYER0) % PER_LAYER : -1; }
static int j_is_lin(int j) { return j >= J_LIN && j < J_BIAS; }
static int j_is_bias(int j) { return j >= J_BIAS; }
/* Does linear k of config c carry a bias? */
static int lin_has_bias(const ModelConfig *c, int k) {
    ArchBias b = arch_of(c)->lin[k].bias;
    return b == BIAS_CFG ? c->linear_bias : b == BIAS_QKV_CFG ? c->qkv_bias : 0;
}
/* Does the model of config c hold this slot (no head when tied, no biases it has not)? */
static int slot_used(const ModelConfig *c, int slot) {
    const ArchDesc *a = arch_of(c);
    if (slot == SLOT_HEAD) return !c->shared_classifier;
    if (slot == SLOT_NORM_BIAS) return a->norm == NORM_LAYER;
    if (slot < SLOT_LAYER0) return 1;
    int j = slot_j(slot);
    if (j < J_NORM_BIAS) return j - J_NORM < a->n_norms;
    if (j < J_LIN) return j - J_NORM_BIAS < a->n_norms && a->norm == NORM_LAYER;
    if (j_is_lin(j)) return j - J_LIN < a->n_lin;
    return j - J_BIAS < a->n_lin && lin_has_bias(c, j - J_BIAS);
}
/* The linear of a weight or bias slot, -1 for others. */
static int slot_lin(int slot) {
    int j = slot_j(slot);
    return j_is_lin(j) ? j - J_LIN : j_is_bias(j) ? j - J_BIAS : -1;
}
/* Are the slot's rows (elements of a bias) in the rotary order (LLaMA's q_proj, k_proj)? */
static int slot_rotary(const ModelConfig *c, int slot) {
    int k = slot_lin(slot);
    return k >= 0 && model_linear_rotary(c, (LinearKind)k);
}

static void slot_name(const ModelConfig *c, int slot, char *buf, size_t n) {
    const ArchDesc *a = arch_of(c);
    switch (slot) {
    case SLOT_EMBED: snprintf(buf, n, "%s.weight", a->embed); return;
    case SLOT_NORM: snprintf(buf, n, "%s.weight", a->final_norm); return;
    case SLOT_NORM_BIAS: snprintf(buf, n, "%s.bias", a->final_norm); return;
    case SLOT_HEAD: snprintf(buf, n, "%s.weight", a->head); return;
    }
    int l = (slot - SLOT_LAYER0) / PER_LAYER, j = slot_j(slot);
    const char *mod = j < J_NORM_BIAS ? a->norm_hf[j - J_NORM] : j < J_LIN ? a->norm_hf[j - J_NORM_BIAS]
                                                                           : a->lin[slot_lin(slot)].hf;
    int bias = (j >= J_NORM_BIAS && j < J_LIN) || j_is_bias(j);
    snprintf(buf, n, "%s%d.%s.%s", a->layer_prefix, l, mod ? mod : "?", bias ? "bias" : "weight");
}

/* name -> slot (SLOT_UNKNOWN, SLOT_IGNORE for the rotary inv_freq buffer); *layer
 * set for layer tensors. Names of slots the config does not hold are unknown,
 * except the head's (ignored with a warning when tied). */
static int slot_of(const char *name, const ModelConfig *c, int *layer) {
    const ArchDesc *a = arch_of(c);
    int L = c->n_layers;
    char nm[256];
    *layer = -1;
    for (int i = 0; i < SLOT_LAYER0; i++) {
        slot_name(c, i, nm, sizeof nm);
        if (!strcmp(name, nm)) return i == SLOT_HEAD || slot_used(c, i) ? i : SLOT_UNKNOWN;
    }
    size_t pl = strlen(a->layer_prefix);
    if (strncmp(name, a->layer_prefix, pl)) return SLOT_UNKNOWN;
    const char *p = name + pl;
    /* a decimal layer index: no sign, no leading zero, < L */
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return SLOT_UNKNOWN;
    long l = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        l = l * 10 + (*p - '0');
        if (l >= L) return SLOT_UNKNOWN;
    }
    if (*p++ != '.') return SLOT_UNKNOWN;
    *layer = (int)l;
    for (int j = 0; j < PER_LAYER; j++) {
        int slot = SLOT_LAYER0 + (int)l * PER_LAYER + j;
        if (!slot_used(c, slot)) continue;
        slot_name(c, slot, nm, sizeof nm);
        if (!strcmp(name, nm)) return slot;
    }
    if (a->inv_freq && !strcmp(p, a->inv_freq)) return SLOT_IGNORE;
    return SLOT_UNKNOWN;
}

/* Expected shape of a slot: (rows, cols), or (rows) when *ndim is 1. */
static void slot_shape(const ModelConfig *c, int slot, int *ndim, int64_t shape[2]) {
    *ndim = 2;
    shape[1] = 0;
    if (slot == SLOT_EMBED || slot == SLOT_HEAD) {
        shape[0] = c->vocab_size;
        shape[1] = c->dim;
        return;
    }
    int k = slot_lin(slot);
    if (k < 0) { /* a norm's weight or bias */
        *ndim = 1;
        shape[0] = c->dim;
        return;
    }
    int o, i;
    model_linear_shape(c, (LinearKind)k, &o, &i);
    shape[0] = o;
    if (j_is_bias(slot_j(slot))) *ndim = 1; /* a bias: (out) */
    else shape[1] = i;
}

/* Destination of a slot inside a model_alloc'ed Model (heap memory: writable). */
static float *slot_dst(Model *m, int slot) {
    switch (slot) {
    case SLOT_EMBED: return (float *)m->w.tok_emb;
    case SLOT_NORM: return (float *)m->w.rms_final;
    case SLOT_NORM_BIAS: return (float *)m->w.norm_final_bias;
    case SLOT_HEAD: return (float *)m->w.wcls;
    }
    int l = (slot - SLOT_LAYER0) / PER_LAYER, j = slot_j(slot);
    BlockWeights *b = &m->w.blocks[l];
    if (j == J_NORM) return (float *)b->rms_att;
    if (j == J_NORM + 1) return (float *)b->rms_ffn;
    if (j == J_NORM_BIAS) return (float *)b->norm_att_bias;
    if (j == J_NORM_BIAS + 1) return (float *)b->norm_ffn_bias;
    if (j_is_bias(j)) return (float *)b->bias[j - J_BIAS];
    return (float *)b->lin[j - J_LIN];
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
    if (!slot_rotary(c, slot)) {
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

/* Is tensor t still inside its shard on disk? The shards were checked against
 * their sizes when opened; one cut since (a copy still running, a full disk)
 * would kill the process with SIGBUS when the pages past the new end are read,
 * so the block's tensors are checked again just before they are. */
static int hf_stream_check(const HfStream *h, const StTensor *t, int layer) {
    for (int s = 0; s < h->n_shards; s++) {
        const StFile *f = &h->shards[s];
        const unsigned char *base = f->map;
        if (!base || t->data < base || t->data >= base + f->map_size) continue;
        size_t end = (size_t)(t->data - base) + (size_t)t->numel * st_dtype_size(t->dtype);
        struct stat st;
        if (stat(f->what, &st) != 0)
            return qh_error("'%s': cannot read tensor '%s' of block %d: %s", f->what, t->name, layer, strerror(errno));
        if ((size_t)st.st_size < end)
            return qh_error("'%s': tensor '%s' of block %d ends at byte %zu, but the file now holds %lld bytes: it was "
                            "truncated after it was opened",
                            f->what, t->name, layer, end, (long long)st.st_size);
        return 0;
    }
    return 0;
}

static int hf_stream_load(void *user, const ModelConfig *c, int layer, float *const dst[LIN_COUNT]) {
    HfStream *h = user;
    for (int k = 0; k < model_n_linears(c); k++)
        if (hf_stream_check(h, h->src[SLOT_LAYER0 + layer * PER_LAYER + J_LIN + k].t, layer) != 0) return -1;
    for (int k = 0; k < model_n_linears(c); k++) {
        int slot = SLOT_LAYER0 + layer * PER_LAYER + J_LIN + k;
        convert_slot_release(c, slot, h->src[slot].t, dst[k]);
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
            int layer, slot = slot_of(t->name, c, &layer);
            if (slot == SLOT_UNKNOWN) {
                const ArchDesc *a = arch_of(c);
                qh_error("'%s': unknown tensor '%s' (expected %s.weight, %s.weight, %s.weight and %sN.* of a %s "
                         "block, N < %d)", f->what, t->name, a->embed, a->final_norm, a->head, a->layer_prefix,
                         a->family == ARCH_FALCON ? (c->linear_bias ? "Falcon (bias: true)" : "Falcon")
                                                  : c->qkv_bias ? "Qwen2" : "LLaMA", L);
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
                int k = slot_lin(slot);
                if (k >= 0 && arch_of(c)->lin[k].out == DIM_QKV) /* say where the fused size comes from */
                    qh_error("'%s': tensor '%s' has shape %s, but the config implies %s ((num_attention_heads %d + "
                             "2 x %d kv heads) x head size %d rows)", f->what, t->name, s1, s2, c->n_heads,
                             c->n_kv_heads, model_head_size(c));
                else
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
        slot_name(c, slot, nm, sizeof nm);
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
            int layer, slot = slot_of(k, c, &layer), found = 0;
            for (int s = 0; s < n_shards && !found; s++)
                if (!strcmp(json_string_value(v), shard_names[s])) found = st_find(&shards[s], k) != NULL;
            if (!found) {
                qh_error("'%s': the weight_map lists tensor '%s' in shard '%s', which does not hold it%s", index_path,
                         k, json_string_value(v), slot == SLOT_UNKNOWN ? " (nor is it a tensor of this model)" : "");
                goto done;
            }
        }
    }
    if (c->shared_classifier && src[SLOT_HEAD].t)
        qh_warn("'%s': %s.weight is ignored: tie_word_embeddings is true (the head is the embedding)", what,
                arch_of(c)->head);
    /* all checked: allocate and convert */
    if ((streamed ? model_alloc_streamed(m, c, path) : model_alloc(m, c, path)) != 0) goto done;
    for (int slot = 0; slot < n_slots; slot++) {
        if (!slot_used(c, slot)) continue;
        if (!streamed) convert_slot(c, slot, src[slot].t, slot_dst(m, slot));
        else if (!j_is_lin(slot_j(slot))) convert_slot_release(c, slot, src[slot].t, slot_dst(m, slot));
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
    if (slot_used(c, SLOT_NORM_BIAS)) order[order_n++] = SLOT_NORM_BIAS;
    if (!c->shared_classifier) order[order_n++] = SLOT_HEAD;
    for (int i = 0; i < order_n; i++) {
        int slot = order[i];
        char nm[256];
        slot_name(c, slot, nm, sizeof nm);
        names[n] = qh_strdup(nm);
        StOut *t = &outs[n++];
        t->name = names[n - 1];
        slot_shape(c, slot, &t->ndim, t->shape);
        t->data = slot_src(m, slot);
        if (slot_rotary(c, slot)) /* q_proj (D rows), k_proj (KV rows) */
            t->row_perm = arch_of(c)->lin[slot_lin(slot)].out == DIM_D ? perm_q : perm_k;
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
    if (o->tokenizer) { /* named by its kind, as tokenizer_load tells them apart */
        size_t tl = strlen(o->tokenizer);
        const char *name = tl > 5 && !strcmp(o->tokenizer + tl - 5, ".json")    ? "tokenizer.json"
                           : tl > 6 && !strcmp(o->tokenizer + tl - 6, ".model") ? "tokenizer.model"
                                                                                  : "tokenizer.bin";
        free(p);
        p = path_join(tmp, name);
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
