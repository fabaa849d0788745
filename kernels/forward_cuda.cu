/* forward_cuda.cu: the CUDA backend of forward.h ("cuda"), for every family
 * of arch.h: the LLaMA block and the Falcon block (parallel attention and
 * MLP on LayerNorm'ed input, one fused query_key_value split into grouped
 * heads, GELU), each the same steps as its CPU twin in forward_cpu.c. One
 * window at a time, batched over positions, everything on one stream:
 *   - all weights of the model are uploaded once into one device allocation
 *     (weights_changed(layer) re-uploads one layer's tensors);
 *   - the activations for max_T positions are one device allocation carved
 *     into named tensors (sizes computed first, as llm.c does);
 *   - linear layers are cuBLAS GEMMs (linear_forward, kernels/forward_kernels.cu),
 *     their biases (Qwen2's q/k/v, Falcon's "bias": true) added after them
 *     (launch_add_bias); attention is
 *     strided-batched GEMMs around a fused causal scaled softmax kernel, the
 *     element-wise steps are the kernels of forward_kernels.cu.
 * GEMM arithmetic is chosen at creation by the environment variable
 * QH_CUDA_MATH (QhCudaMath, forward_kernels.h): "fp32" (the default:
 * CUBLAS_COMPUTE_32F, exact fp32, matches the CPU backend to ~1e-6 relative),
 * "tf32" (CUBLAS_COMPUTE_32F_FAST_TF32: tensor cores, 10-bit mantissa inputs,
 * fp32 accumulation; faster, ~1e-3), or "fp16" / "bf16": the linear weights of
 * every block and the output head are STORED on the device in that type (half
 * the memory), converted once from the host's fp32 at upload (through an fp32
 * staging buffer the size of the largest block matrix and launch_f32_to_16,
 * round to nearest even), and each linear layer's fp32 input is converted into
 * a 16-bit scratch (x16) before its GEMM (once for q/k/v, once for gate/up);
 * cublasGemmEx on 16-bit A/B with fp32 output and accumulation. In those modes
 * attention's GEMMs use TF32 on fp32 tensors; the embedding table, norms, the
 * linear biases, every activation and what the hooks see stay fp32.
 * The ForwardOps entries take HOST pointers: embed/block/head_nll copy in and
 * out around the device work (the hook, when given, receives host copies of
 * each linear input (T, in), called exactly as the CPU backend calls it);
 * window_nll, last_logits and body run entirely on the device and copy back only the
 * result (body: the final residual stream (T, D)); head_logits copies (n, D) in and the
 * logits (n, V) out. The calibration activations of calibrate.c (acts_*) stay in device
 * memory when they fit: the sequential pass then moves no activations between
 * host and device (the Hessian hook gets device pointers); otherwise in host
 * memory, page-locked (cudaHostRegister) where the system allows it.
 * Incremental decode (decode_reset / decode): a KV cache per layer, (dec_len,
 * KV) rows for keys and for values, in device memory; the same block
 * functions run on the new positions only, their keys and values copied into
 * the cache and attention over it (launch_attention_cached), then the head on
 * the last position; logits (V) copied back. Packed linears (forward_set_packed,
 * device memory) replace the GEMM of their sub-layer in every path (lin_device),
 * reading the fp32 input.
 * Block streaming (issue 16): a model read block by block (m->src.load), one
 * created with forward_cuda_create_opts(stream 1), or one whose weights do not
 * fit the device (or --max-device-memory) keeps only the embedding, head and
 * ONE block slot on the device: every DevBlock points into the slot, and the
 * slot is filled from the host's block (model_load_block'ed or in memory) when
 * a block other than the one it holds is asked for (block_resident), or when
 * weights_changed names a block. Callers that walk the model block-major
 * (stream_eval.c, calibrate.c) thus upload each block once per pass; the
 * upload time is counted apart (forward_cuda_stream_stats). (Decode walks the
 * blocks position-major: streamed, it uploads every block at every step.)
 * Not here: the kernels themselves (forward_kernels.cu, the packed
 * matrix-vector kernels), quantized weight formats or multi-GPU. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "forward_kernels.h"

extern "C" {
#include "arch.h"
#include "forward.h"
#include "util.h"
}

/* Budgets of the two scratch tensors whose size grows with T^2 or T*V. */
#define ATTENTION_SCORES_BUDGET ((size_t)1 << 30) /* bytes of (head_batch, T, T) scores */
#define LOGITS_BUDGET ((size_t)512 << 20)         /* bytes of (logit_chunk, V) logits */

typedef struct DevBlock {
    float *rms_att;         /* (D) the weight of the norm before attention (BlockWeights.rms_att) */
    float *rms_ffn;         /* (D) the norm before the MLP; NULL where the model has none (Falcon-7B) */
    float *norm_att_bias, *norm_ffn_bias; /* (D) their LayerNorm biases; NULL for RMSNorm */
    void *lin[LIN_COUNT];   /* in the operand type of the math mode (fp32, fp16 or bf16), shapes of
                               model_linear_shape: LLaMA wq (D, D), wk (KV, D), wv (KV, D), wo (D, D),
                               w1 (F, D), w3 (F, D), w2 (D, F); Falcon query_key_value (D + 2 KV, D),
                               dense (D, D), dense_h_to_4h (F, D), dense_4h_to_h (D, F) */
    float *bias[LIN_COUNT]; /* (out) fp32, NULL where the model has none */
} DevBlock;

typedef struct CudaForward {
    Forward base;
    QhCudaMath math;
    cudaDataType_t wtype; /* qh_cuda_math_operand_type(math): the linear weights' and inputs' type */
    size_t wsize;         /* its size in bytes: 4, or 2 in the 16-bit modes */
    cudaStream_t stream;
    cublasHandle_t blas;
    /* weights, one device allocation (owned) */
    char *wmem;
    size_t wbytes;
    float *tok_emb;   /* (V, D) fp32 */
    float *rms_final; /* (D) */
    float *norm_final_bias; /* (D) the final LayerNorm's bias; NULL for RMSNorm */
    int *qkv_map;     /* (D + 2 KV) arch_qkv_split_map, fused-QKV families only (else NULL) */
    void *wcls;       /* (V, D) in wtype; aliases tok_emb when the classifier is shared and wtype is fp32 */
    DevBlock *blocks; /* (L) host array of device pointers into wmem (owned array) */
    float *stage;     /* (stage_n) fp32 staging of the 16-bit conversions; NULL in the fp32 / tf32 modes */
    size_t stage_n;
    /* activations for max_T positions, one device allocation (owned) */
    char *amem;
    size_t abytes;
    int *tokens;     /* (T) */
    float *x;        /* (T, D) residual stream */
    float *xb;       /* (T, D) normed input, then a linear output */
    float *q;        /* (T, D) */
    float *k, *v;    /* (T, KV) */
    float *att;      /* (T, D) attention output */
    float *hb;       /* (T, F) */
    float *hb2;      /* (T, F) SwiGLU's up projection; NULL for GELU families */
    float *qkv;      /* (T, D + 2 KV) the fused projection's output; NULL unless fused */
    float *xb2;      /* (T, D) the MLP's normed input when it has its own norm (ln_mlp); else NULL */
    void *x16;       /* (T, max(D, F)) 16-bit: the current linear input converted; NULL in the fp32 / tf32 modes */
    float *scores;   /* (head_batch, T, T) */
    float *logits;   /* (logit_chunk, V) */
    double *nll;     /* (T) */
    int head_batch, logit_chunk;
    float inv_freq[512]; /* (hs/2) rotary frequencies (model_rope_inv_freq), host */
    float *hook_buf; /* (T, max(D, F)) pinned host staging for hook inputs, allocated on first use (owned) */
    int hook_on_device; /* set during acts_block on device activations: the hook gets device pointers */
    /* calibration activations (acts_*) in device memory, or NULL (then base.host_acts may hold them) */
    float *acts;     /* (base.acts: nbuf, N, T, D) (owned) */
    double *sq;      /* (2) acts_sqdiff's accumulator (owned with acts) */
    /* decode: the KV cache, (L, dec_len, KV) each, row s of layer l position s's key (value); NULL before
     * decode_reset (owned); where the block being run is: positions at_pos0 .., through the cache or not */
    float *kc, *vc;
    int at_pos0, at_cache;
    int acts_pinned; /* base.host_acts is page-locked (cudaHostRegister) */
    /* block streaming: all of blocks[] point into one slot, holding slot_layer (-1: none) */
    int streamed, slot_layer;
    size_t max_device;     /* --max-device-memory in bytes (0: whatever the GPU has free) */
    double upload_seconds; /* time spent filling the slot (stream synchronised around it) */
    long uploads;          /* blocks uploaded into the slot */
} CudaForward;

/* ---- carving one allocation into named tensors ----------------------------
 * Each function below is run twice: with base NULL it only adds up the
 * (256-byte aligned) sizes; with the allocation it assigns the pointers. What
 * is carved depends on the model only, never on a pointer the first pass left
 * NULL. */

static void *carve(char *base, size_t *off, size_t bytes) {
    void *p = base ? base + *off : NULL;
    *off += (bytes + 255) & ~(size_t)255;
    return p;
}

/* The largest matrix of a block, in elements: the size of the staging buffer. */
static size_t largest_linear(const ModelConfig *c) {
    size_t n = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        if ((size_t)o * i > n) n = (size_t)o * i;
    }
    return n;
}

/* A (D) norm vector the host model has (host != NULL), else NULL. */
static float *carve_norm(char *base, size_t *off, const float *host, size_t D) {
    return host ? (float *)carve(base, off, D * sizeof(float)) : NULL;
}

static size_t carve_weights(CudaForward *s, char *base) {
    const Model *m = s->base.model;
    const ModelConfig *c = &m->cfg;
    size_t D = c->dim, V = c->vocab_size, off = 0;
    int shared = c->shared_classifier || m->w.wcls == m->w.tok_emb;
    s->tok_emb = (float *)carve(base, &off, V * D * sizeof(float));
    /* a shared head needs its own copy when it is stored in 16 bits */
    s->wcls = shared && s->wsize == sizeof(float) ? s->tok_emb : carve(base, &off, V * D * s->wsize);
    s->rms_final = (float *)carve(base, &off, D * sizeof(float));
    s->norm_final_bias = carve_norm(base, &off, m->w.norm_final_bias, D);
    s->qkv_map = arch_of(c)->qkv == QKV_FUSED
                     ? (int *)carve(base, &off, (size_t)arch_dim(c, DIM_QKV) * sizeof(int))
                     : NULL;
    /* streamed: one slot, carved for block 0's shape (every block has its norms and biases alike) */
    for (int l = 0; l < (s->streamed ? 1 : c->n_layers); l++) {
        DevBlock *b = &s->blocks[l];
        const BlockWeights *w = &m->w.blocks[l];
        b->rms_att = (float *)carve(base, &off, D * sizeof(float));
        b->rms_ffn = carve_norm(base, &off, w->rms_ffn, D);
        b->norm_att_bias = carve_norm(base, &off, w->norm_att_bias, D);
        b->norm_ffn_bias = carve_norm(base, &off, w->norm_ffn_bias, D);
        for (int k = 0; k < model_n_linears(c); k++) {
            int o, i;
            model_linear_shape(c, (LinearKind)k, &o, &i);
            b->lin[k] = carve(base, &off, (size_t)o * i * s->wsize);
            b->bias[k] = w->bias[k] ? (float *)carve(base, &off, (size_t)o * sizeof(float)) : NULL;
        }
    }
    for (int l = 1; s->streamed && l < c->n_layers; l++) s->blocks[l] = s->blocks[0];
    s->stage_n = s->wsize == sizeof(float) ? 0 : largest_linear(c);
    s->stage = s->stage_n ? (float *)carve(base, &off, s->stage_n * sizeof(float)) : NULL;
    return off;
}

static size_t carve_activations(CudaForward *s, char *base) {
    const ModelConfig *c = &s->base.model->cfg;
    size_t T = s->base.max_T, D = c->dim, KV = model_kv_dim(c), F = c->hidden_dim, V = c->vocab_size, off = 0;
    s->tokens = (int *)carve(base, &off, T * sizeof(int));
    s->x = (float *)carve(base, &off, T * D * sizeof(float));
    s->xb = (float *)carve(base, &off, T * D * sizeof(float));
    s->q = (float *)carve(base, &off, T * D * sizeof(float));
    s->k = (float *)carve(base, &off, T * KV * sizeof(float));
    s->v = (float *)carve(base, &off, T * KV * sizeof(float));
    s->att = (float *)carve(base, &off, T * D * sizeof(float));
    s->hb = (float *)carve(base, &off, T * F * sizeof(float));
    /* by the family alone (the sizing pass must carve what the second pass does) */
    const ArchDesc *a = arch_of(c);
    int fused = a->qkv == QKV_FUSED;
    s->hb2 = a->act == ACT_SWIGLU ? (float *)carve(base, &off, T * F * sizeof(float)) : NULL;
    s->qkv = fused ? (float *)carve(base, &off, T * (D + 2 * KV) * sizeof(float)) : NULL;
    s->xb2 = fused && a->n_norms > 1 ? (float *)carve(base, &off, T * D * sizeof(float)) : NULL;
    s->x16 = s->wsize == sizeof(float) ? NULL : carve(base, &off, T * (D > F ? D : F) * s->wsize);
    s->scores = (float *)carve(base, &off, (size_t)s->head_batch * T * T * sizeof(float));
    s->logits = (float *)carve(base, &off, (size_t)s->logit_chunk * V * sizeof(float));
    s->nll = (double *)carve(base, &off, T * sizeof(double));
    return off;
}

/* ---- uploads ---------------------------------------------------------------- */

/* On the backend's stream, so that the kernels after it see the data (a plain
 * cudaMemcpy from pageable memory may return before its DMA lands, and runs on
 * the legacy stream, which a non-blocking stream does not wait for). */
static int upload(CudaForward *s, float *dst, const float *src, size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    return 0;
}

/* A linear weight (n) from the host's fp32: a plain copy in the fp32 / tf32
 * modes; in the 16-bit modes through s->stage, at most stage_n elements at a
 * time, each chunk converted into dst by launch_f32_to_16 (stream order keeps
 * the next chunk's copy behind the previous chunk's conversion). */
static int upload_linear(CudaForward *s, void *dst, const float *src, size_t n) {
    if (s->wsize == sizeof(float)) return upload(s, (float *)dst, src, n);
    for (size_t i = 0; i < n; i += s->stage_n) {
        size_t c = n - i < s->stage_n ? n - i : s->stage_n;
        if (upload(s, s->stage, src + i, c) ||
            launch_f32_to_16((char *)dst + i * s->wsize, s->stage, (long)c, s->wtype, s->stream))
            return -1;
    }
    return 0;
}

static int upload_layer(CudaForward *s, int layer) {
    const Model *m = s->base.model;
    const ModelConfig *c = &m->cfg;
    const BlockWeights *w = &m->w.blocks[layer];
    DevBlock *b = &s->blocks[layer];
    for (int k = 0; k < model_n_linears(c); k++)
        if (!w->lin[k])
            return qh_error("cuda backend: block %d's %s is not in host memory (model_load_block first)", layer,
                            model_linear_name(c, (LinearKind)k));
    if (upload(s, b->rms_att, w->rms_att, c->dim) || (b->rms_ffn && upload(s, b->rms_ffn, w->rms_ffn, c->dim)) ||
        (b->norm_att_bias && upload(s, b->norm_att_bias, w->norm_att_bias, c->dim)) ||
        (b->norm_ffn_bias && upload(s, b->norm_ffn_bias, w->norm_ffn_bias, c->dim)))
        return qh_error("cuda backend: uploading layer %d's norms failed", layer);
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        const char *nm = model_linear_name(c, (LinearKind)k);
        model_linear_shape(c, (LinearKind)k, &o, &i);
        if (upload_linear(s, b->lin[k], w->lin[k], (size_t)o * i) != 0)
            return qh_error("cuda backend: uploading layer %d %s (%d x %d) failed", layer, nm, o, i);
        if (b->bias[k] && upload(s, b->bias[k], w->bias[k], (size_t)o) != 0)
            return qh_error("cuda backend: uploading layer %d %s bias (%d) failed", layer, nm, o);
    }
    return 0;
}

static int upload_all(CudaForward *s) {
    const Model *m = s->base.model;
    const ModelConfig *c = &m->cfg;
    size_t D = c->dim, V = c->vocab_size;
    if (upload(s, s->tok_emb, m->w.tok_emb, V * D) != 0) return -1;
    if (s->wcls != s->tok_emb && upload_linear(s, s->wcls, m->w.wcls, V * D) != 0) return -1;
    if (upload(s, s->rms_final, m->w.rms_final, D) != 0) return -1;
    if (s->norm_final_bias && upload(s, s->norm_final_bias, m->w.norm_final_bias, D) != 0) return -1;
    if (s->qkv_map) { /* from a host copy that lives until the copy is done */
        int n = arch_dim(c, DIM_QKV), *map = (int *)qh_malloc(sizeof(int) * (size_t)n);
        arch_qkv_split_map(c, map);
        cudaError_t e = cudaMemcpyAsync(s->qkv_map, map, sizeof(int) * (size_t)n, cudaMemcpyHostToDevice, s->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(s->stream);
        free(map);
        if (e != cudaSuccess) return qh_error("cuda backend: uploading the QKV split map failed: %s", cudaGetErrorString(e));
    }
    for (int l = 0; l < c->n_layers && !s->streamed; l++)
        if (upload_layer(s, l) != 0) return -1;
    return 0;
}

/* Streamed: fill the slot with block `layer` (timed apart; the stream is
 * drained first so that the time is the upload's alone, and after it so that
 * the host's block may be released). */
static int slot_fill(CudaForward *s, int layer) {
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    double t0 = qh_now();
    s->slot_layer = -1;
    if (upload_layer(s, layer) != 0) return -1;
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    s->upload_seconds += qh_now() - t0;
    s->uploads++;
    s->slot_layer = layer;
    return 0;
}

/* Block `layer`'s weights on the device: always so unless streamed; then
 * uploaded into the slot when it holds another block. */
static int block_resident(CudaForward *s, int layer) {
    if (!s->streamed || s->slot_layer == layer) return 0;
    return slot_fill(s, layer);
}

/* ---- device-side pieces of the forward pass ------------------------------- */

static int check_window(const Forward *f, int T, int min_T) {
    if (T < min_T || T > f->max_T)
        return qh_error("cuda backend: window of %d tokens is outside %d..%d", T, min_T, f->max_T);
    return 0;
}

static int check_layer(const Forward *f, int layer, const char *what) {
    if (layer < 0 || layer >= f->model->cfg.n_layers)
        return qh_error("cuda backend: %s: layer %d is outside 0..%d", what, layer, f->model->cfg.n_layers - 1);
    return 0;
}

static int check_tokens(const Forward *f, const int *tokens, int T) {
    int V = f->model->cfg.vocab_size;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return qh_error("token id %d at position %d is outside the vocabulary (0..%d)", tokens[t], t, V - 1);
    return 0;
}

/* Host tokens (T) -> s->tokens, after checking every id. */
static int upload_tokens(CudaForward *s, const int *tokens, int T) {
    if (check_tokens(&s->base, tokens, T) != 0) return -1;
    CUDA_CHECK(cudaMemcpyAsync(s->tokens, tokens, (size_t)T * sizeof(int), cudaMemcpyHostToDevice, s->stream));
    return 0;
}

/* Give the hook dev (T, cols), once per sub-layer in `kinds`: a host copy, or,
 * with s->hook_on_device, the device pointer itself once the stream is idle. */
static int hook_inputs(CudaForward *s, const float *dev, int T, int cols, LinearInputHook hook, void *user,
                       int layer, const LinearKind *kinds, int nk) {
    if (s->hook_on_device) {
        CUDA_CHECK(cudaStreamSynchronize(s->stream));
        for (int i = 0; i < nk; i++) hook(user, layer, kinds[i], dev, T);
        return 0;
    }
    if (!s->hook_buf) {
        const ModelConfig *c = &s->base.model->cfg;
        size_t w = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
        CUDA_CHECK(cudaMallocHost((void **)&s->hook_buf, (size_t)s->base.max_T * w * sizeof(float)));
    }
    CUDA_CHECK(cudaMemcpyAsync(s->hook_buf, dev, (size_t)T * cols * sizeof(float), cudaMemcpyDeviceToHost,
                               s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    for (int i = 0; i < nk; i++) hook(user, layer, kinds[i], s->hook_buf, T);
    return 0;
}

/* The operand of the linear layers reading X (n fp32 values): X itself in the
 * fp32 / tf32 modes; in the 16-bit modes X converted into s->x16, once for
 * every linear that reads it. */
static int linear_input(CudaForward *s, const float *X, long n, const void **op) {
    if (!s->x16) {
        *op = X;
        return 0;
    }
    if (launch_f32_to_16(s->x16, X, n, s->wtype, s->stream)) return -1;
    *op = s->x16;
    return 0;
}

/* The operand `op` (from linear_input) advanced by `elems` elements. */
static const void *operand_at(const CudaForward *s, const void *op, long elems) {
    return (const char *)op + (size_t)elems * s->wsize;
}

/* out (T, D) <- the family's norm (RMSNorm, or LayerNorm with bias b) of x (T, D), weight w. */
static int norm_device(CudaForward *s, float *out, const float *x, const float *w, const float *b, int T) {
    const ModelConfig *c = &s->base.model->cfg;
    if (arch_of(c)->norm == NORM_LAYER) return launch_layernorm(out, x, w, b, T, c->dim, c->norm_eps, s->stream);
    return launch_rmsnorm(out, x, w, T, c->dim, c->norm_eps, s->stream);
}

/* Y (T, out) <- linear k of block `layer` applied to X (T, in), without its
 * bias: the packed linear when one is set (it reads X, fp32), else the GEMM
 * of the uploaded weight on `op`, X in the operand type (linear_input). */
static int lin_device(CudaForward *s, int layer, LinearKind k, float *Y, const float *X, const void *op, int T) {
    const PackedLinear *p = forward_packed(&s->base, layer, k);
    if (p) return p->ops->matmul(p, X, T, Y, s->stream);
    int out, in;
    model_linear_shape(&s->base.model->cfg, k, &out, &in);
    return linear_forward(s->blas, s->math, Y, op, s->blocks[layer].lin[k], T, in, out);
}

/* Y (T, out) <- linear k of block `layer` applied to X (T, in), fp32, plus its bias when it has one. */
static int linear_bias_device(CudaForward *s, int layer, LinearKind k, float *Y, const float *X, int T) {
    const DevBlock *b = &s->blocks[layer];
    int out, in;
    model_linear_shape(&s->base.model->cfg, k, &out, &in);
    const void *op = NULL;
    if ((!forward_packed(&s->base, layer, k) && linear_input(s, X, (long)T * in, &op)) ||
        lin_device(s, layer, k, Y, X, op, T))
        return -1;
    if (b->bias[k] && launch_add_bias(Y, b->bias[k], T, out, s->stream)) return -1;
    return 0;
}

/* s->att (T, D) <- attention of s->q over s->k, s->v (T rows) after the
 * rotary at positions s->at_pos0 ..: the window alone, or, when decoding
 * (s->at_cache), layer's cache once the new keys and values are copied into
 * rows at_pos0 .. of it (the steps of cpu_attend). */
static int attend_device(CudaForward *s, int layer, int T) {
    const ModelConfig *c = &s->base.model->cfg;
    int D = c->dim, KV = model_kv_dim(c), hs = model_head_size(c);
    cudaStream_t st = s->stream;
    if (launch_rope_freq(s->q, s->k, T, D, KV, hs, s->at_pos0, s->inv_freq, st)) return -1;
    if (!s->at_cache)
        return attention_forward(s->blas, s->math, s->att, s->q, s->k, s->v, s->scores, T, c->n_heads, c->n_kv_heads,
                                 hs, s->head_batch, T >= ATTENTION_ROW_BLOCKS_MIN_T ? ATTENTION_ROW_BLOCKS : 1, st);
    size_t lay = (size_t)layer * s->base.dec_len * KV, row0 = (size_t)s->at_pos0 * KV;
    CUDA_CHECK(cudaMemcpyAsync(s->kc + lay + row0, s->k, (size_t)T * KV * sizeof(float), cudaMemcpyDeviceToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(s->vc + lay + row0, s->v, (size_t)T * KV * sizeof(float), cudaMemcpyDeviceToDevice, st));
    return launch_attention_cached(s->att, s->q, s->kc + lay, s->vc + lay, T, s->at_pos0, c->n_heads, c->n_kv_heads,
                                   hs, st);
}

/* s->x (T, D) <- the Falcon block `layer` applied to s->x: the steps of
 * cpu_block_falcon (forward_cpu.c), hooks in the same order. Attention and
 * MLP both read the normed block input (ln_attn / ln_mlp when the block has
 * two norms), x <- x + (attn + mlp). */
static int block_falcon_device(CudaForward *s, int layer, int T, LinearInputHook hook, void *user) {
    static const LinearKind kq[] = {LIN_QKV}, kd[] = {LIN_DENSE}, kh[] = {LIN_H_TO_4H}, k4[] = {LIN_4H_TO_H};
    const ModelConfig *c = &s->base.model->cfg;
    const DevBlock *b = &s->blocks[layer];
    int D = c->dim, F = c->hidden_dim, KV = model_kv_dim(c);
    cudaStream_t st = s->stream;
    if (norm_device(s, s->xb, s->x, b->rms_att, b->norm_att_bias, T)) return -1;
    const float *xm = s->xb; /* (T, D) what the MLP reads */
    if (s->xb2) {
        if (norm_device(s, s->xb2, s->x, b->rms_ffn, b->norm_ffn_bias, T)) return -1;
        xm = s->xb2;
    }
    /* attention: fused projection, split into heads, rotary, attention, dense */
    if (hook && hook_inputs(s, s->xb, T, D, hook, user, layer, kq, 1)) return -1;
    if (linear_bias_device(s, layer, LIN_QKV, s->qkv, s->xb, T) ||
        launch_qkv_split(s->q, s->k, s->v, s->qkv, s->qkv_map, T, D, KV, st) || attend_device(s, layer, T))
        return -1;
    if (hook && hook_inputs(s, s->att, T, D, hook, user, layer, kd, 1)) return -1;
    float *ao = s->q; /* (T, D) the attention branch's output (q is spent) */
    if (linear_bias_device(s, layer, LIN_DENSE, ao, s->att, T)) return -1;
    /* MLP: dense_4h_to_h(gelu(dense_h_to_4h(xm))) */
    if (hook && hook_inputs(s, xm, T, D, hook, user, layer, kh, 1)) return -1;
    if (linear_bias_device(s, layer, LIN_H_TO_4H, s->hb, xm, T) || launch_gelu(s->hb, (long)T * F, st)) return -1;
    if (hook && hook_inputs(s, s->hb, T, F, hook, user, layer, k4, 1)) return -1;
    float *mo = s->att; /* (T, D) the MLP's output (att is spent) */
    if (linear_bias_device(s, layer, LIN_4H_TO_H, mo, s->hb, T)) return -1;
    return launch_parallel_residual(s->x, ao, mo, (long)T * D, st);
}

/* s->x (T, D) <- block `layer` applied to s->x (the same steps as cpu_block). */
static int block_device(CudaForward *s, int layer, int T, LinearInputHook hook, void *user) {
    static const LinearKind qkv[] = {LIN_Q, LIN_K, LIN_V}, o[] = {LIN_O}, gu[] = {LIN_GATE, LIN_UP},
                            down[] = {LIN_DOWN};
    const ModelConfig *c = &s->base.model->cfg;
    if (block_resident(s, layer) != 0) return -1;
    if (arch_of(c)->family == ARCH_FALCON) return block_falcon_device(s, layer, T, hook, user);
    const DevBlock *b = &s->blocks[layer];
    int D = c->dim, F = c->hidden_dim, KV = model_kv_dim(c);
    cudaStream_t st = s->stream;
    long n = (long)T * D;
    const void *in; /* the current linear input, in the operand type */

    /* attention */
    if (launch_rmsnorm(s->xb, s->x, b->rms_att, T, D, c->norm_eps, st)) return -1;
    if (hook && hook_inputs(s, s->xb, T, D, hook, user, layer, qkv, 3)) return -1;
    if (linear_input(s, s->xb, n, &in) || lin_device(s, layer, LIN_Q, s->q, s->xb, in, T) ||
        lin_device(s, layer, LIN_K, s->k, s->xb, in, T) || lin_device(s, layer, LIN_V, s->v, s->xb, in, T))
        return -1;
    /* Qwen2's biases, before the rotation (as cpu_block) */
    if ((b->bias[LIN_Q] && launch_add_bias(s->q, b->bias[LIN_Q], T, D, st)) ||
        (b->bias[LIN_K] && launch_add_bias(s->k, b->bias[LIN_K], T, KV, st)) ||
        (b->bias[LIN_V] && launch_add_bias(s->v, b->bias[LIN_V], T, KV, st)))
        return -1;
    if (attend_device(s, layer, T)) return -1;
    if (hook && hook_inputs(s, s->att, T, D, hook, user, layer, o, 1)) return -1;
    if (linear_input(s, s->att, n, &in) || lin_device(s, layer, LIN_O, s->xb, s->att, in, T)) return -1;
    if (launch_residual_add(s->x, s->xb, n, st)) return -1;

    /* SwiGLU feed-forward */
    if (launch_rmsnorm(s->xb, s->x, b->rms_ffn, T, D, c->norm_eps, st)) return -1;
    if (hook && hook_inputs(s, s->xb, T, D, hook, user, layer, gu, 2)) return -1;
    if (linear_input(s, s->xb, n, &in) || lin_device(s, layer, LIN_GATE, s->hb, s->xb, in, T) ||
        lin_device(s, layer, LIN_UP, s->hb2, s->xb, in, T))
        return -1;
    if (launch_swiglu(s->hb, s->hb2, (long)T * F, st)) return -1;
    if (hook && hook_inputs(s, s->hb, T, F, hook, user, layer, down, 1)) return -1;
    if (linear_input(s, s->hb, (long)T * F, &in) || lin_device(s, layer, LIN_DOWN, s->xb, s->hb, in, T)) return -1;
    if (launch_residual_add(s->x, s->xb, n, st)) return -1;
    return 0;
}

/* s->nll (T-1) <- NLL of s->tokens[t+1] after the final norm and head of s->x[t]. */
static int head_device(CudaForward *s, int T) {
    const ModelConfig *c = &s->base.model->cfg;
    int D = c->dim, V = c->vocab_size;
    const void *in;
    if (norm_device(s, s->xb, s->x, s->rms_final, s->norm_final_bias, T - 1)) return -1;
    if (linear_input(s, s->xb, (long)(T - 1) * D, &in)) return -1;
    for (int t0 = 0; t0 < T - 1; t0 += s->logit_chunk) {
        int tc = T - 1 - t0 < s->logit_chunk ? T - 1 - t0 : s->logit_chunk;
        if (linear_forward(s->blas, s->math, s->logits, operand_at(s, in, (long)t0 * D), s->wcls, tc, D, V))
            return -1;
        if (launch_nll(s->nll + t0, s->logits, s->tokens + t0 + 1, tc, V, s->stream)) return -1;
    }
    return 0;
}

/* s->x <- embeddings of s->tokens (T) and every block. */
static int body_device(CudaForward *s, int T) {
    const ModelConfig *c = &s->base.model->cfg;
    if (launch_embed(s->x, s->tok_emb, s->tokens, T, c->dim, s->stream)) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (block_device(s, l, T, NULL, NULL)) return -1;
    return 0;
}

/* ---- ForwardOps over host pointers ----------------------------------------- */

static int cuda_embed(Forward *f, const int *tokens, int T, float *x) {
    CudaForward *s = (CudaForward *)f;
    int D = f->model->cfg.dim;
    if (check_window(f, T, 1) || upload_tokens(s, tokens, T)) return -1;
    if (launch_embed(s->x, s->tok_emb, s->tokens, T, D, s->stream)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(x, s->x, (size_t)T * D * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_block(Forward *f, int layer, float *x, int T, LinearInputHook hook, void *user) {
    CudaForward *s = (CudaForward *)f;
    int D = f->model->cfg.dim;
    if (check_layer(f, layer, "block") || check_window(f, T, 1)) return -1;
    size_t bytes = (size_t)T * D * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(s->x, x, bytes, cudaMemcpyHostToDevice, s->stream));
    if (block_device(s, layer, T, hook, user)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(x, s->x, bytes, cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_head_nll(Forward *f, const float *x, const int *tokens, int T, double *nll) {
    CudaForward *s = (CudaForward *)f;
    int D = f->model->cfg.dim;
    if (check_window(f, T, 2) || upload_tokens(s, tokens, T)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(s->x, x, (size_t)(T - 1) * D * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    if (head_device(s, T)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(nll, s->nll, (size_t)(T - 1) * sizeof(double), cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_window_nll(Forward *f, const int *tokens, int T, double *nll) {
    CudaForward *s = (CudaForward *)f;
    if (check_window(f, T, 2) || upload_tokens(s, tokens, T)) return -1;
    if (body_device(s, T) || head_device(s, T)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(nll, s->nll, (size_t)(T - 1) * sizeof(double), cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

/* logits (n, V) host <- the head (final norm, output matrix) of x (n, D) device,
 * n <= max_T, through s->logits in chunks of logit_chunk positions: head_logits,
 * and the last position's logits of last_logits and decode. */
static int head_logits_device(CudaForward *s, const float *x, int n, float *logits) {
    const ModelConfig *c = &s->base.model->cfg;
    int D = c->dim, V = c->vocab_size;
    if (norm_device(s, s->xb, x, s->rms_final, s->norm_final_bias, n)) return -1;
    const void *in;
    if (linear_input(s, s->xb, (long)n * D, &in)) return -1;
    for (int t0 = 0; t0 < n; t0 += s->logit_chunk) {
        int tc = n - t0 < s->logit_chunk ? n - t0 : s->logit_chunk;
        if (linear_forward(s->blas, s->math, s->logits, operand_at(s, in, (long)t0 * D), s->wcls, tc, D, V)) return -1;
        CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)t0 * V, s->logits, (size_t)tc * V * sizeof(float),
                                   cudaMemcpyDeviceToHost, s->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

static int cuda_last_logits(Forward *f, const int *tokens, int T, float *logits) {
    CudaForward *s = (CudaForward *)f;
    int D = f->model->cfg.dim;
    if (check_window(f, T, 1) || upload_tokens(s, tokens, T)) return -1;
    if (body_device(s, T)) return -1;
    return head_logits_device(s, s->x + (long)(T - 1) * D, 1, logits);
}

static int cuda_body(Forward *f, const int *tokens, int T, float *x) {
    CudaForward *s = (CudaForward *)f;
    int D = f->model->cfg.dim;
    if (check_window(f, T, 1) || upload_tokens(s, tokens, T)) return -1;
    if (body_device(s, T)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(x, s->x, (size_t)T * D * sizeof(float), cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

/* logits (n, V) host <- head of x (n, D) host. */
static int cuda_head_logits(Forward *f, const float *x, int n, float *logits) {
    CudaForward *s = (CudaForward *)f;
    if (check_window(f, n, 1)) return -1;
    CUDA_CHECK(cudaMemcpyAsync(s->x, x, (size_t)n * f->model->cfg.dim * sizeof(float), cudaMemcpyHostToDevice,
                               s->stream));
    return head_logits_device(s, s->x, n, logits);
}

static int cuda_weights_changed(Forward *f, int layer) {
    CudaForward *s = (CudaForward *)f;
    if (check_layer(f, layer, "weights_changed")) return -1;
    if (s->streamed) return slot_fill(s, layer); /* the block about to be used */
    /* stream order: work already queued reads the old weights, later work the new */
    if (upload_layer(s, layer) != 0) return -1;
    CUDA_CHECK(cudaStreamSynchronize(s->stream)); /* the model's buffers may be freed once we return */
    return 0;
}

/* ---- calibration activations on the device (forward.h acts_*) ----------------
 * Kept in one device allocation when it fits beside the weights, with room for
 * the quantizer (forward_quant_device_reserve) when one runs (ACTS_QUANTIZE);
 * otherwise the host implementation (forward_acts.c) through the host-pointer
 * entries above, or nothing (ACTS_DEVICE_ONLY). QH_CUDA_ACTS=host forces the
 * host side (to test it). */

static float *acts_window(CudaForward *s, int buf, long w) { return s->acts + forward_acts_offset(&s->base, buf, w); }


static void cuda_acts_destroy(Forward *f) {
    CudaForward *s = (CudaForward *)f;
    if (s->acts_pinned) { /* the host implementation's buffer, page-locked by cuda_acts_create */
        cudaStreamSynchronize(s->stream);
        cudaHostUnregister(f->host_acts);
        s->acts_pinned = 0;
    }
    if (s->acts) {
        cudaStreamSynchronize(s->stream);
        cudaFree(s->acts);
        cudaFree(s->sq);
        s->acts = NULL;
        s->sq = NULL;
        f->acts = (ActsShape){0, 0, 0};
    }
    forward_host_acts_destroy(f);
}

static int cuda_acts_create(Forward *f, int nbuf, long N, int T, int flags) {
    CudaForward *s = (CudaForward *)f;
    cuda_acts_destroy(f);
    const ModelConfig *c = &f->model->cfg;
    if (forward_acts_shape_check(f, nbuf, N, T) != 0) return -1;
    size_t bytes = (size_t)nbuf * N * T * c->dim * sizeof(float);
    size_t reserve = flags & ACTS_QUANTIZE ? forward_quant_device_reserve(c) : 0; /* room for the quantizer */
    size_t free_b = 0, total_b = 0;
    const char *force = getenv("QH_CUDA_ACTS");
    int host = force && !strcmp(force, "host");
    if (!host) {
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        if (s->max_device) { /* the budget less what the backend holds already */
            size_t held = s->wbytes + s->abytes, left = s->max_device > held ? s->max_device - held : 0;
            if (left < free_b) free_b = left;
        }
        host = bytes + reserve > free_b;
        if (!host && (cudaMalloc((void **)&s->acts, bytes) != cudaSuccess ||
                      cudaMalloc((void **)&s->sq, 2 * sizeof(double)) != cudaSuccess)) {
            cudaGetLastError(); /* clear the failed allocation */
            cuda_acts_destroy(f);
            host = 1;
        }
        if (host) {
            char kept[64] = "";
            if (reserve) snprintf(kept, sizeof kept, ", %.2f GiB of it kept for the quantizer", reserve / 1073741824.0);
            qh_progress("activations of %ld windows (%.2f GiB) %s: %.2f GiB free on the GPU%s", N,
                        bytes / 1073741824.0, flags & ACTS_DEVICE_ONLY ? "not on the device" : "kept in host memory",
                        free_b / 1073741824.0, kept);
        }
    }
    if (host) { /* the host implementation; with ACTS_DEVICE_ONLY it makes nothing */
        if (forward_host_acts_create(f, nbuf, N, T, flags) != 0) return -1;
        /* page-locked, so that each window's copies run at full bus speed; left pageable if the system refuses */
        if (f->host_acts && cudaHostRegister(f->host_acts, bytes, cudaHostRegisterDefault) == cudaSuccess)
            s->acts_pinned = 1;
        else cudaGetLastError();
        return 0;
    }
    f->acts = (ActsShape){nbuf, T, N};
    return 1;
}

static int cuda_acts_embed(Forward *f, int buf, long w, const int *tokens) {
    CudaForward *s = (CudaForward *)f;
    if (!s->acts) return forward_host_acts_embed(f, buf, w, tokens);
    if (forward_acts_index_check(f, buf, w, "acts_embed") || upload_tokens(s, tokens, f->acts.T)) return -1;
    return launch_embed(acts_window(s, buf, w), s->tok_emb, s->tokens, f->acts.T, f->model->cfg.dim, s->stream);
}

static int cuda_acts_copy(Forward *f, int dst, int src, long w) {
    CudaForward *s = (CudaForward *)f;
    if (!s->acts) return forward_host_acts_copy(f, dst, src, w);
    if (forward_acts_index_check(f, dst, w, "acts_copy") || forward_acts_index_check(f, src, w, "acts_copy")) return -1;
    CUDA_CHECK(cudaMemcpyAsync(acts_window(s, dst, w), acts_window(s, src, w),
                               (size_t)f->acts.T * f->model->cfg.dim * sizeof(float), cudaMemcpyDeviceToDevice,
                               s->stream));
    return 0;
}

static int cuda_acts_block(Forward *f, int layer, int buf, long w, LinearInputHook hook, void *user) {
    CudaForward *s = (CudaForward *)f;
    if (!s->acts) return forward_host_acts_block(f, layer, buf, w, hook, user);
    if (check_layer(f, layer, "acts_block") || forward_acts_index_check(f, buf, w, "acts_block")) return -1;
    float *x = s->x; /* the block works on the window in place: no copies */
    s->x = acts_window(s, buf, w);
    s->hook_on_device = 1;
    int rc = block_device(s, layer, f->acts.T, hook, user);
    s->hook_on_device = 0;
    s->x = x;
    return rc;
}

static int cuda_acts_sqdiff(Forward *f, int a, int b, long w, double *num, double *den) {
    CudaForward *s = (CudaForward *)f;
    if (!s->acts) return forward_host_acts_sqdiff(f, a, b, w, num, den);
    if (forward_acts_index_check(f, a, w, "acts_sqdiff") || forward_acts_index_check(f, b, w, "acts_sqdiff")) return -1;
    double h[2];
    CUDA_CHECK(cudaMemsetAsync(s->sq, 0, 2 * sizeof(double), s->stream));
    if (launch_sqdiff(acts_window(s, a, w), acts_window(s, b, w), (long)f->acts.T * f->model->cfg.dim, s->sq,
                      s->stream))
        return -1;
    CUDA_CHECK(cudaMemcpyAsync(h, s->sq, sizeof h, cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    *num += h[0];
    *den += h[1];
    return 0;
}

/* ---- incremental decode (forward.h decode_reset / decode) ------------------- */

static int cuda_decode_reset(Forward *f, int max_len) {
    CudaForward *s = (CudaForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (forward_decode_reset_check(f, max_len) != 0) return -1;
    if ((32 + (size_t)max_len) * sizeof(float) > ATTENTION_CACHED_MAX_SHMEM)
        return qh_error("cuda backend: a KV cache of %d positions is above the %d the attention kernel holds",
                        max_len, (int)(ATTENTION_CACHED_MAX_SHMEM / sizeof(float)) - 32);
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (s->kc) cudaFree(s->kc);
    s->kc = s->vc = NULL;
    f->dec_len = f->dec_pos = 0;
    size_t n = (size_t)c->n_layers * max_len * model_kv_dim(c); /* (L, max_len, KV) */
    if (cudaMalloc((void **)&s->kc, 2 * n * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        s->kc = NULL;
        return qh_error("cuda backend: no room on the GPU for a KV cache of %d positions (%.2f GiB)", max_len,
                        2.0 * n * sizeof(float) / 1073741824.0);
    }
    s->vc = s->kc + n;
    f->dec_len = max_len;
    return 0;
}

/* The new positions in chunks of max_T (embed, every block through the
 * cache), then the head on the last one; only its logits come back. */
static int cuda_decode(Forward *f, const int *tokens, int n, float *logits) {
    CudaForward *s = (CudaForward *)f;
    const ModelConfig *c = &f->model->cfg;
    int D = c->dim, T = 0;
    if (forward_decode_check(f, tokens, n) != 0) return -1;
    for (int c0 = 0; c0 < n; c0 += T) {
        T = n - c0 < f->max_T ? n - c0 : f->max_T;
        if (upload_tokens(s, tokens + c0, T) || launch_embed(s->x, s->tok_emb, s->tokens, T, D, s->stream)) return -1;
        s->at_pos0 = f->dec_pos;
        s->at_cache = 1;
        int rc = 0;
        for (int l = 0; l < c->n_layers && rc == 0; l++) rc = block_device(s, l, T, NULL, NULL);
        s->at_pos0 = s->at_cache = 0;
        if (rc) return -1;
        f->dec_pos += T;
    }
    return head_logits_device(s, s->x + (long)(T - 1) * D, 1, logits);
}

static int cuda_acts_read(Forward *f, int buf, long w, float *x) {
    CudaForward *s = (CudaForward *)f;
    if (!s->acts) return forward_host_acts_read(f, buf, w, x);
    if (forward_acts_index_check(f, buf, w, "acts_read")) return -1;
    CUDA_CHECK(cudaMemcpyAsync(x, acts_window(s, buf, w), (size_t)f->acts.T * f->model->cfg.dim * sizeof(float),
                               cudaMemcpyDeviceToHost, s->stream));
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

static void cuda_destroy(Forward *f) {
    CudaForward *s = (CudaForward *)f;
    if (!s) return;
    if (s->stream) cudaStreamSynchronize(s->stream);
    cuda_acts_destroy(f);
    if (s->blas) cublasDestroy(s->blas);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->wmem) cudaFree(s->wmem);
    if (s->amem) cudaFree(s->amem);
    if (s->kc) cudaFree(s->kc);
    if (s->hook_buf) cudaFreeHost(s->hook_buf);
    free(s->blocks);
    free(s);
}

static const ForwardOps cuda_ops = {
    "cuda", cuda_destroy, cuda_embed, cuda_block, cuda_head_nll, cuda_window_nll, cuda_last_logits,
    cuda_body, cuda_head_logits, cuda_weights_changed, cuda_acts_create, cuda_acts_embed, cuda_acts_copy,
    cuda_acts_block, cuda_acts_sqdiff, cuda_decode_reset, cuda_decode, PACKED_DEVICE, cuda_acts_read,
};

/* ---- creation ---------------------------------------------------------------- */

static int cuda_setup(CudaForward *s) {
    const ModelConfig *c = &s->base.model->cfg;
    if (qh_cuda_math_parse(getenv("QH_CUDA_MATH"), &s->math) != 0) return -1;
    s->wtype = qh_cuda_math_operand_type(s->math);
    s->wsize = qh_cuda_math_operand_size(s->math);
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&s->blas));
    CUBLAS_CHECK(cublasSetStream(s->blas, s->stream));

    s->head_batch = attention_head_batch(s->base.max_T, c->n_kv_heads, ATTENTION_SCORES_BUDGET);
    size_t chunk = LOGITS_BUDGET / ((size_t)c->vocab_size * sizeof(float));
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)s->base.max_T) chunk = (size_t)s->base.max_T;
    s->logit_chunk = (int)chunk;

    s->blocks = (DevBlock *)qh_calloc((size_t)c->n_layers, sizeof(DevBlock));
    s->slot_layer = -1;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (s->max_device && s->max_device < free_b) free_b = s->max_device;
    s->abytes = carve_activations(s, NULL);
    s->wbytes = carve_weights(s, NULL);
    if (!s->streamed && s->wbytes + s->abytes > free_b) { /* auto: one block at a time when the whole does not fit */
        qh_progress("cuda backend: %.2f GiB of weights do not fit %.2f GiB: one block on the device at a time",
                    s->wbytes / 1073741824.0, free_b / 1073741824.0);
        s->streamed = 1;
        s->wbytes = carve_weights(s, NULL);
    }
    if (s->wbytes + s->abytes > free_b)
        return qh_error("cuda backend: the model needs %.2f GiB of weights (%s%s) and %.2f GiB of activations "
                        "(window %d), but the GPU has %.2f GiB %s",
                        s->wbytes / 1073741824.0, qh_cuda_math_name(s->math),
                        s->streamed ? ", one block, the embedding and head" : "", s->abytes / 1073741824.0,
                        s->base.max_T, free_b / 1073741824.0, s->max_device ? "within --max-device-memory" : "free");
    CUDA_CHECK(cudaMalloc((void **)&s->wmem, s->wbytes));
    CUDA_CHECK(cudaMalloc((void **)&s->amem, s->abytes));
    carve_weights(s, s->wmem);
    carve_activations(s, s->amem);
    if (upload_all(s) != 0) return qh_error("cuda backend: uploading the weights of %s failed",
                                              s->base.model->path ? s->base.model->path : "the model");
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return 0;
}

extern "C" int forward_cuda_create_opts(const Model *m, int max_T, int stream, size_t max_device_bytes,
                                        Forward **out) {
    *out = NULL;
    if (max_T < 2) return qh_error("window length %d is too short (at least 2 tokens)", max_T);
    if (model_head_size(&m->cfg) / 2 > 512)
        return qh_error("cuda backend: head size %d is above 1024", model_head_size(&m->cfg));
    CudaForward *s = (CudaForward *)qh_calloc(1, sizeof *s);
    s->base.ops = &cuda_ops;
    s->base.model = m;
    s->base.max_T = max_T;
    s->streamed = stream || m->src.load != NULL; /* a model read block by block has no other blocks to upload */
    s->max_device = max_device_bytes;
    model_rope_inv_freq(&m->cfg, s->inv_freq);
    if (cuda_setup(s) != 0) {
        cuda_destroy(&s->base);
        return -1;
    }
    *out = &s->base;
    return 0;
}

extern "C" int forward_cuda_create(const Model *m, int max_T, Forward **out) {
    return forward_cuda_create_opts(m, max_T, 0, 0, out);
}

extern "C" int forward_cuda_stream_stats(const Forward *f, double *upload_seconds, long *uploads) {
    if (!f || strcmp(f->ops->name, "cuda") != 0) return 0;
    const CudaForward *s = (const CudaForward *)f;
    if (upload_seconds) *upload_seconds = s->upload_seconds;
    if (uploads) *uploads = s->uploads;
    return s->streamed;
}
