/* model.h: the model as the harness holds it, whatever its family (arch.h
 * describes each family's block as data): its shape
 * (ModelConfig), its weights (ModelWeights, pointers into one read-only mmap of
 * a llama2.c checkpoint, into an owned buffer (synthetic models, models
 * converted from other formats) or into owned memory once layers are
 * replaced), and the reader/writer of the llama2.c legacy (v0) checkpoint
 * format. This is the one file that knows that layout (Hugging Face
 * directories: hf_model.h). It does not run the model (forward.h) nor
 * quantize it (quant/). */
#ifndef QH_MODEL_H
#define QH_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* The block layouts of arch.h (ModelConfig.arch). 0 is LLaMA: llama2.c
 * checkpoints and zero-initialized configs are LLaMA models. */
typedef enum { ARCH_ID_LLAMA = 0, ARCH_ID_FALCON, ARCH_ID_FALCON_NDA, ARCH_ID_COUNT } ArchId;

/* Rotary frequency scaling (ModelConfig.rope_scaling). */
typedef enum { ROPE_SCALING_NONE = 0, ROPE_SCALING_LLAMA3 } RopeScaling;

typedef struct ModelConfig {
    int arch;       /* ArchId: the block layout (arch.h) */
    int dim;        /* D: residual width */
    int hidden_dim; /* F: MLP inner width (SwiGLU's, or Falcon's ffn_hidden_size) */
    int n_layers;   /* L */
    int n_heads;    /* H: query heads; head size hs = D / H */
    int n_kv_heads; /* Hkv: key/value heads (grouped-query attention) */
    int vocab_size; /* V */
    int seq_len;    /* maximum context the model was trained for */
    int shared_classifier; /* 1: the output head is the token embedding */
    float rope_theta;      /* 10000 for llama2.c checkpoints */
    float norm_eps;        /* 1e-5; RMSNorm's or LayerNorm's by the family */
    int qkv_bias;          /* 1: q, k and v projections add a bias (Qwen2); 0 for llama2.c checkpoints */
    int qk_rotate_half;    /* 1: the checkpoint orders the rows of wq / wk for the "rotate half" rotary
                              convention (Hugging Face); the harness holds them interleaved (llama2.c),
                              see hf_qk_hf_row. 0 for llama2.c checkpoints. */
    int linear_bias;       /* 1: every linear adds a bias (Falcon's "bias": true); 0 otherwise */
    int sliding_window;    /* Mistral's attention window in tokens (0: none); windows longer than it are
                              refused (forward_create), sliding-window attention is not implemented */
    /* rope_scaling (HF): ROPE_SCALING_LLAMA3 with factor, low / high frequency factors and the
     * original context (Llama-3.1 / 3.2), see model_rope_inv_freq */
    int rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos;
} ModelConfig;

/* A linear sub-layer of a block: an index into its family's descriptor
 * (arch.h), 0 .. model_n_linears(c) - 1, in the order of the reference code.
 * LLaMA's seven: LIN_Q .. LIN_DOWN; Falcon's four: LIN_QKV .. LIN_4H_TO_H.
 * LIN_COUNT is the most any family has (the stride of per-layer arrays). */
typedef enum {
    LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT,
    LIN_QKV = 0, LIN_DENSE = 1, LIN_H_TO_4H = 2, LIN_4H_TO_H = 3
} LinearKind;
/* LLaMA's names, "wq","wk","wv","wo","w1","w3","w2", for llama2.c-format code
 * and tests; everything else asks model_linear_name. */
extern const char *const linear_names[LIN_COUNT];

/* Weights of one block. Every matrix is (out, in) row-major, y = W x. */
typedef struct BlockWeights {
    const float *rms_att; /* (D) the weight of the norm before attention (arch norm_hf[0]: LLaMA's
                             input_layernorm RMSNorm, Falcon's input_layernorm / ln_attn LayerNorm) */
    const float *rms_ffn; /* (D) the norm before the MLP (norm_hf[1]); NULL for Falcon-7B's one norm */
    const float *norm_att_bias, *norm_ffn_bias; /* (D) their LayerNorm biases; NULL for RMSNorm */
    const float *lin[LIN_COUNT];
    /* shapes (model_linear_shape): LLaMA wq (D, D), wk (Hkv*hs, D), wv (Hkv*hs, D), wo (D, D),
     *         w1 = gate (F, D), w3 = up (F, D), w2 = down (D, F);
     * Falcon query_key_value ((H + 2 Hkv) hs, D), dense (D, D), dense_h_to_4h (F, D), dense_4h_to_h (D, F) */
    const float *bias[LIN_COUNT]; /* (out) added after the product, y = W x + b; NULL where the layer has
                                     none: LLaMA q (D), k, v (Hkv*hs) when cfg.qkv_bias; every Falcon
                                     linear when cfg.linear_bias. Biases are kept in full precision
                                     (never quantized). */
} BlockWeights;

typedef struct ModelWeights {
    const float *tok_emb;   /* (V, D) */
    BlockWeights *blocks;   /* (L) owned array of pointer sets */
    const float *rms_final; /* (D) the final norm's weight */
    const float *norm_final_bias; /* (D) its LayerNorm bias, NULL for RMSNorm */
    const float *wcls;      /* (V, D); == tok_emb when shared */
} ModelWeights;

/* Block-by-block reading of a checkpoint whose linear layers are not all held
 * in memory (a Hugging Face checkpoint opened for --max-memory work, see
 * hf_model_open_streamed): load() writes block `layer`'s seven matrices, in
 * fp32, to dst[k] (shapes of model_linear_shape); -1 with a message. */
typedef struct BlockSource {
    int (*load)(void *user, const ModelConfig *c, int layer, float *const dst[LIN_COUNT]);
    void (*close)(void *user); /* at model_free */
    void *user;
} BlockSource;

typedef struct Model {
    ModelConfig cfg;
    ModelWeights w;
    /* storage */
    void *map;          /* read-only mmap of the checkpoint, or NULL */
    size_t map_size;
    float *heap;        /* owned weight buffer (synthetic or converted model, model_alloc), or NULL */
    float **owned;      /* (L * LIN_COUNT) replaced matrices owned by the model, NULL if not replaced */
    const float **orig; /* (L * LIN_COUNT) the linear layers as loaded (set with owned) */
    char *path;         /* where it was loaded from (owned) */
    BlockSource src;    /* src.load != NULL: block linears come from here, one block at a time */
    float *block_buf;   /* the one resident block's linears when streamed (owned), or NULL */
    int block_layer;    /* the block whose linears block_buf holds, -1 for none (streamed models) */
} Model;

static inline int model_head_size(const ModelConfig *c) { return c->dim / c->n_heads; }
static inline int model_kv_dim(const ModelConfig *c) { return c->n_kv_heads * (c->dim / c->n_heads); }

/* The rotary row permutation of wq / wk, within each head of size hs (even):
 *   harness (interleaved) row  h*hs + 2*i + p  ==  HF (rotate-half) row  h*hs + p*hs/2 + i
 * for i in [0, hs/2), p in {0, 1}. Returns the HF row of harness row r. */
static inline int hf_qk_hf_row(int r, int hs) {
    int h = r / hs, j = r % hs;
    return h * hs + (j % 2) * (hs / 2) + j / 2;
}

/* Is LLaMA linear k one of the two whose rows the rotary layout orders (wq, wk)? */
static inline int model_is_qk(LinearKind k) { return k == LIN_Q || k == LIN_K; }
/* Linears per block of the model's family, and linear k's name (arch.h). */
int model_n_linears(const ModelConfig *c);
const char *model_linear_name(const ModelConfig *c, LinearKind k);
/* Is linear k one whose rows a rotate-half checkpoint orders otherwise (arch.h rotary_rows)? */
int model_linear_rotary(const ModelConfig *c, LinearKind k);
/* Does the checkpoint order the rows of linear k otherwise than the harness
 * holds them (wq / wk of a rotate-half checkpoint)? Quantization works in the
 * checkpoint's own row order, so that row groups (SpQR's second level) are
 * the checkpoint's consecutive rows, as in the reference code. */
int model_ckpt_rows_permuted(const ModelConfig *c, LinearKind k);
/* The rotary frequencies inv_freq (hs/2) of head component pairs i:
 * theta^(-2i/hs) in fp32 with rope_ref's own expression, then, for
 * ROPE_SCALING_LLAMA3, transformers' _compute_llama3_parameters: wavelengths
 * 2 pi / f longer than original / low_freq_factor divided by the factor,
 * shorter than original / high_freq_factor kept, smoothly interpolated between. */
void model_rope_inv_freq(const ModelConfig *c, float *inv_freq);
/* Rows of W (rows, cols) between the two orders: to_ckpt: dst row
 * hf_qk_hf_row(r) = src row r; else the inverse. dst != src. */
void model_rows_reorder(float *dst, const float *src, int rows, int cols, int hs, int to_ckpt);
/* Output and input width of one linear sub-layer. */
void model_linear_shape(const ModelConfig *c, LinearKind k, int *out, int *in);
/* Parameters in the linear layers of the blocks (what the paper quantizes). */
int64_t model_linear_params(const ModelConfig *c);

/* Check a configuration for consistency; -1 with a message naming `what`. */
int model_config_validate(const ModelConfig *c, const char *what);

/* Load a llama2.c checkpoint through one read-only mmap; the header and the
 * file size are validated against each other. */
int model_load_llama2c(Model *m, const char *path);
void model_free(Model *m);

/* An empty model of config c for readers of other formats (hf_model.c): one
 * owned, uninitialized fp32 buffer (m->heap) carved into every tensor (the
 * q/k/v biases too when c->qkv_bias), m->w pointing into it (wcls == tok_emb
 * when shared), m->path = path. -1 with a message naming `path` when c is
 * inconsistent. */
int model_alloc(Model *m, const ModelConfig *c, const char *path);

/* A model whose block linears will be streamed: the embedding, head, norms
 * and biases in one owned buffer (uninitialized, to be filled by the caller),
 * every lin[] NULL until model_load_block. The caller then sets m->src (closed
 * at model_free). -1 with a message naming `path` when c is inconsistent. */
int model_alloc_streamed(Model *m, const ModelConfig *c, const char *path);

/* Make block `layer`'s linears resident: a no-op unless the model is streamed
 * (then they are read into the one block buffer, replacing the block held
 * there, whose lin[] must have been released). */
int model_load_block(Model *m, int layer);
/* Can the model be worked on block by block within a budget (a read-only mmap
 * of a llama2.c checkpoint, or a streamed model)? */
int model_is_streamable(const Model *m);

/* Free block `layer`'s replaced matrices: its linears point back to the
 * loaded ones (the model as loaded again, without reading anything). */
void model_restore_block(Model *m, int layer);
/* Block-by-block work under a memory budget: model_restore_block, and drop the resident
 * pages of its loaded weights from a read-only mmap (re-read from the file if
 * touched again); a streamed model's block is forgotten (lin[] NULL). */
void model_release_block(Model *m, int layer);
/* Does any block hold replaced (owned) matrices? */
int model_has_replaced(const Model *m);

/* A view of m as loaded: the same tensors (borrowed), except that every
 * replaced linear is the one loaded (m->orig). The view owns only its block
 * array: model_free(view) frees that and nothing else; m must outlive it and
 * keep its loaded weights resident (not for streamed models: -1 with a
 * message). With nothing replaced, the view computes exactly what m does. */
int model_view_loaded(const Model *m, Model *view);

/* Replace sub-layer (layer, kind) by `W` (copied into model-owned memory). */
void model_set_linear(Model *m, int layer, LinearKind k, const float *W);

/* Write the model in llama2.c v0 format, atomically (temp file + rename). */
int model_save_llama2c(const Model *m, const char *path);

/* A random-weight model of any LLaMA shape (for tests and benchmarks):
 * weights ~ N(0, 1/in) from a seeded generator, norms 1 (+ small noise). */
int model_synth(Model *m, const ModelConfig *c, uint64_t seed);

#endif
