/* arch.c: the descriptors of the model families (see arch.h) and the widths
 * and fused-QKV split they imply for a config.
 *
 * LLaMA (also Mistral, Qwen2, Llama-3.x; llama2.c checkpoints): RMSNorm before
 * attention and before the MLP, separate q/k/v (Qwen2 adds q/k/v biases),
 * SwiGLU, sequential residual. True-sequential groups as the SpQR reference's
 * get_sequential_groups (modelutils.py, used by main.py's quantize_spqr):
 * [k, v, q] -> [o] -> [up, gate] -> [down]; within a group the harness
 * quantizes in its own order (q, k, v), which changes nothing: the members of
 * a group share one Hessian computed before any of them is replaced.
 *
 * Falcon (model_type falcon, RefinedWebModel, RefinedWeb): LayerNorm with
 * bias, one fused query_key_value projection, GELU MLP dense_h_to_4h /
 * dense_4h_to_h, attention and MLP in parallel on the block input. The
 * reference's groups for Falcon (same function): [self_attention.query_key_value]
 * -> [self_attention.dense] -> [mlp.dense_h_to_4h] -> [mlp.dense_4h_to_h]; the
 * fused QKV is one matrix there and here. Two descriptors, by the norms:
 * Falcon-7B (and new_decoder_architecture models with num_ln_in_parallel_attn
 * 1) have one input_layernorm that both branches read; Falcon-40B / 180B
 * (new_decoder_architecture) have ln_attn and ln_mlp. */
#include "arch.h"

#include <assert.h>

#include "util.h"

static const ArchDesc descs[ARCH_ID_COUNT] = {
    [ARCH_ID_LLAMA] =
        {
            .id = ARCH_ID_LLAMA,
            .family = ARCH_LLAMA,
            .name = "llama",
            .embed = "model.embed_tokens",
            .final_norm = "model.norm",
            .head = "lm_head",
            .layer_prefix = "model.layers.",
            .inv_freq = "self_attn.rotary_emb.inv_freq",
            .norm_hf = {"input_layernorm", "post_attention_layernorm"},
            .n_norms = 2,
            .norm = NORM_RMS,
            .act = ACT_SWIGLU,
            .parallel = 0,
            .qkv = QKV_SEPARATE,
            .n_lin = 7,
            .lin =
                {
                    [LIN_Q] = {"wq", "self_attn.q_proj", DIM_D, DIM_D, IN_ATT_NORM, 0, BIAS_QKV_CFG, 1},
                    [LIN_K] = {"wk", "self_attn.k_proj", DIM_KV, DIM_D, IN_ATT_NORM, 0, BIAS_QKV_CFG, 1},
                    [LIN_V] = {"wv", "self_attn.v_proj", DIM_KV, DIM_D, IN_ATT_NORM, 0, BIAS_QKV_CFG, 0},
                    [LIN_O] = {"wo", "self_attn.o_proj", DIM_D, DIM_D, IN_ATT_OUT, 1, BIAS_NONE, 0},
                    [LIN_GATE] = {"w1", "mlp.gate_proj", DIM_F, DIM_D, IN_MLP_NORM, 2, BIAS_NONE, 0},
                    [LIN_UP] = {"w3", "mlp.up_proj", DIM_F, DIM_D, IN_MLP_NORM, 2, BIAS_NONE, 0},
                    [LIN_DOWN] = {"w2", "mlp.down_proj", DIM_D, DIM_F, IN_MLP_ACT, 3, BIAS_NONE, 0},
                },
            .n_groups = 4,
        },
    [ARCH_ID_FALCON] =
        {
            .id = ARCH_ID_FALCON,
            .family = ARCH_FALCON,
            .name = "falcon",
            .embed = "transformer.word_embeddings",
            .final_norm = "transformer.ln_f",
            .head = "lm_head",
            .layer_prefix = "transformer.h.",
            .inv_freq = "self_attention.rotary_emb.inv_freq",
            .norm_hf = {"input_layernorm", NULL},
            .n_norms = 1,
            .norm = NORM_LAYER,
            .act = ACT_GELU,
            .parallel = 1,
            .qkv = QKV_FUSED,
            .n_lin = 4,
            .lin =
                {
                    [LIN_QKV] = {"query_key_value", "self_attention.query_key_value", DIM_QKV, DIM_D, IN_ATT_NORM, 0,
                                 BIAS_CFG, 0},
                    [LIN_DENSE] = {"dense", "self_attention.dense", DIM_D, DIM_D, IN_ATT_OUT, 1, BIAS_CFG, 0},
                    /* reads the one input_layernorm's output, as the query_key_value does */
                    [LIN_H_TO_4H] = {"dense_h_to_4h", "mlp.dense_h_to_4h", DIM_F, DIM_D, IN_ATT_NORM, 2, BIAS_CFG, 0},
                    [LIN_4H_TO_H] = {"dense_4h_to_h", "mlp.dense_4h_to_h", DIM_D, DIM_F, IN_MLP_ACT, 3, BIAS_CFG, 0},
                },
            .n_groups = 4,
        },
    [ARCH_ID_FALCON_NDA] =
        {
            .id = ARCH_ID_FALCON_NDA,
            .family = ARCH_FALCON,
            .name = "falcon-nda",
            .embed = "transformer.word_embeddings",
            .final_norm = "transformer.ln_f",
            .head = "lm_head",
            .layer_prefix = "transformer.h.",
            .inv_freq = "self_attention.rotary_emb.inv_freq",
            .norm_hf = {"ln_attn", "ln_mlp"},
            .n_norms = 2,
            .norm = NORM_LAYER,
            .act = ACT_GELU,
            .parallel = 1,
            .qkv = QKV_FUSED,
            .n_lin = 4,
            .lin =
                {
                    [LIN_QKV] = {"query_key_value", "self_attention.query_key_value", DIM_QKV, DIM_D, IN_ATT_NORM, 0,
                                 BIAS_CFG, 0},
                    [LIN_DENSE] = {"dense", "self_attention.dense", DIM_D, DIM_D, IN_ATT_OUT, 1, BIAS_CFG, 0},
                    [LIN_H_TO_4H] = {"dense_h_to_4h", "mlp.dense_h_to_4h", DIM_F, DIM_D, IN_MLP_NORM, 2, BIAS_CFG, 0},
                    [LIN_4H_TO_H] = {"dense_4h_to_h", "mlp.dense_4h_to_h", DIM_D, DIM_F, IN_MLP_ACT, 3, BIAS_CFG, 0},
                },
            .n_groups = 4,
        },
};

const ArchDesc *arch_get(ArchId id) {
    assert(id >= 0 && id < ARCH_ID_COUNT);
    return &descs[id];
}

int arch_dim(const ModelConfig *c, ArchDim d) {
    switch (d) {
    case DIM_D: return c->dim;
    case DIM_KV: return model_kv_dim(c);
    case DIM_F: return c->hidden_dim;
    case DIM_QKV: return c->dim + 2 * model_kv_dim(c);
    }
    return 0;
}

void arch_qkv_split_map(const ModelConfig *c, int *map) {
    int H = c->n_heads, Hkv = c->n_kv_heads, hs = model_head_size(c), r = H / Hkv, D = c->dim, KV = model_kv_dim(c);
    /* fused row of component e of query head h, key / value head g */
    for (int row = 0; row < D; row++) { /* harness q row (interleaved) -> HF q row (rotate-half) -> fused row */
        int hf = hf_qk_hf_row(row, hs), h = hf / hs, e = hf % hs;
        map[row] = ((h / r) * (r + 2) + h % r) * hs + e;
    }
    for (int row = 0; row < KV; row++) {
        int hf = hf_qk_hf_row(row, hs), g = hf / hs, e = hf % hs;
        map[D + row] = (g * (r + 2) + r) * hs + e;
        map[D + KV + row] = (row / hs * (r + 2) + r + 1) * hs + row % hs; /* v: no rotary order */
    }
}
