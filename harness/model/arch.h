/* arch.h: model families as data. One ArchDesc per block layout names the
 * block's linear sub-layers (their report / file name, their Hugging Face
 * tensor name, their shape in terms of the config, which tensor each reads,
 * their true-sequential group, bias or not, rotary row order), its norms
 * (RMSNorm, or LayerNorm with a bias), its activation, sequential or parallel
 * residual, and how the q/k/v projections are laid out (separate, or one fused
 * matrix split into grouped heads). Calibration (Hessian slots, groups), the
 * quantized-model file, HF loading and export, reports and both forward
 * backends read these tables; none keeps its own list of a block's parts.
 * Adding a family: a descriptor here, its forward block (CPU and CUDA, each
 * checked against a _ref), and tests. Not here: config parsing (hf_model.c)
 * and the forward math itself (forward_math.h). */
#ifndef QH_ARCH_H
#define QH_ARCH_H

#include "model.h"

/* Which tensor a linear reads. Linears reading the same tensor share one
 * Hessian (SPEC 1.3: H is a function of the input only). */
typedef enum {
    IN_ATT_NORM = 0, /* the normalized block input attention reads */
    IN_ATT_OUT,      /* the attention output (before the output projection) */
    IN_MLP_NORM,     /* the normalized input the MLP reads (sequential blocks: after the attention residual) */
    IN_MLP_ACT,      /* the MLP's activation output (before the down projection) */
    IN_COUNT
} ArchInput;

/* A width of the config: D, Hkv*hs, F, or the fused q/k/v width (H + 2 Hkv) hs. */
typedef enum { DIM_D = 0, DIM_KV, DIM_F, DIM_QKV } ArchDim;

typedef enum {
    BIAS_NONE = 0,
    BIAS_QKV_CFG, /* present when cfg.qkv_bias (Qwen2's q/k/v) */
    BIAS_CFG,     /* present when cfg.linear_bias (Falcon's "bias": true) */
} ArchBias;

typedef enum { NORM_RMS = 0, NORM_LAYER } ArchNorm; /* LayerNorm: weight and bias */
typedef enum { ACT_SWIGLU = 0, ACT_GELU } ArchAct;  /* silu(gate) * up; exact (erf) GELU */
typedef enum { QKV_SEPARATE = 0, QKV_FUSED } ArchQkv;
typedef enum { ARCH_LLAMA = 0, ARCH_FALCON } ArchFamily; /* which forward block runs it */

typedef struct ArchLinear {
    const char *name;  /* in reports, quantized files and messages ("wq", "query_key_value") */
    const char *hf;    /* Hugging Face module inside layer N; ".weight" / ".bias" appended */
    ArchDim out, in;   /* W is (out, in), y = W x */
    ArchInput input;
    int group;         /* true-sequential group, 0.. in order */
    ArchBias bias;
    int rotary_rows;   /* 1: a rotate-half checkpoint orders its rows otherwise than the harness holds
                          them (LLaMA wq / wk, see hf_qk_hf_row); Falcon's fused QKV is held as stored */
} ArchLinear;

#define ARCH_MAX_NORMS 2

typedef struct ArchDesc {
    ArchId id;
    ArchFamily family;
    const char *name;          /* "llama", "falcon", "falcon-nda" */
    /* Hugging Face names */
    const char *embed, *final_norm, *head; /* tensors without ".weight" / ".bias" */
    const char *layer_prefix;  /* "model.layers." + N + "." */
    const char *inv_freq;      /* per-layer rotary buffer old exports hold (ignored), or NULL */
    const char *norm_hf[ARCH_MAX_NORMS]; /* block norms; [0] before attention, [1] before the MLP */
    int n_norms;               /* 1: the MLP reads norm 0's output too (Falcon-7B) */
    ArchNorm norm;
    ArchAct act;
    int parallel;              /* 1: x += attn(norm(x)) + mlp(norm'(x)); 0: attention, then the MLP */
    ArchQkv qkv;
    int n_lin;                 /* linears per block (<= LIN_COUNT), in the reference code's order */
    ArchLinear lin[LIN_COUNT];
    int n_groups;              /* true-sequential groups */
} ArchDesc;

const ArchDesc *arch_get(ArchId id);
static inline const ArchDesc *arch_of(const ModelConfig *c) { return arch_get((ArchId)c->arch); }
/* The width d of config c. */
int arch_dim(const ModelConfig *c, ArchDim d);
/* The fused-QKV split (QKV_FUSED): map (D + 2 KV) gives, for each row of the
 * harness's q (D) | k (KV) | v (KV) in the interleaved rotary order of
 * rope_ref, the row of the fused projection's output it is. The fused rows
 * are kv groups g < Hkv of (H/Hkv) query heads, then one key head, then one
 * value head, hs rows each ("grouped" layout: Falcon-40B's
 * new_decoder_architecture; Falcon-7B's multi-query layout is the case
 * Hkv = 1, and the old per-head [q k v] layout the case Hkv = H, see
 * transformers' FalconAttention._split_heads), each head in HF's rotate-half
 * component order. */
void arch_qkv_split_map(const ModelConfig *c, int *map);

#endif
