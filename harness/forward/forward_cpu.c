/* forward_cpu.c: the CPU backend of forward.h, for every family of arch.h
 * (the LLaMA block and the Falcon block). One window at a time, batched
 * over positions: linear layers are (T, in) x (in, out) products through
 * OpenBLAS sgemm; attention is computed row by row over the causal part only
 * (attention_simd, OpenMP over heads x positions); the element-wise operations are the references of
 * forward_math.c, parallelised with OpenMP. Incremental decode keeps a KV
 * cache per layer, transposed (kv_cache_store), and runs the same block
 * functions on the new positions only (attention_cached_simd over the
 * cache). A packed linear set by forward_set_packed (host memory) replaces
 * the sgemm of its sub-layer in every path: block, window, last_logits and
 * decode (cpu_linear). Also holds the backend-independent pieces of
 * forward.h (device selection, generic window loop, FLOP count). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "forward.h"
#include "forward_math.h"
#include "util.h"

typedef struct CpuForward {
    Forward base;
    /* scratch, sized for max_T */
    float *xb;     /* (T, D) normed input */
    float *q;      /* (T, D) */
    float *k, *v;  /* (T, KV) */
    float *att;    /* (T, D) attention output */
    float *hb;     /* (T, F) */
    float *hb2;    /* (T, F) */
    float *logits; /* (Tc, V) a chunk of positions */
    float *xtmp;   /* (T, D) used by window_nll */
    int logit_chunk;
    float *inv_freq; /* (hs/2) rotary frequencies (model_rope_inv_freq) */
    /* fused-QKV families (Falcon) only, else NULL */
    float *qkv;      /* (T, D + 2 KV) the fused projection's output */
    float *xb2;      /* (T, D) the MLP's normed input when it has its own norm (ln_mlp) */
    int *qkv_map;    /* (D + 2 KV) arch_qkv_split_map */
    /* decode: the KV cache, (L, KV, dec_len) each, layer l's keys (values)
     * of position s at [l][c][s] (kv_cache_store); NULL before decode_reset */
    float *kc, *vc;
} CpuForward;

/* Y (T, out) = X (T, in) W^T, W (out, in) row-major. */
static void linear(float *Y, const float *X, const float *W, int T, int in, int out) {
    int nt = qh_blas_begin(2.0 * T * in * out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, X, in, W, in, 0.0f, Y, out);
    qh_blas_end(nt);
}

/* Y (T, out) <- linear k of block `layer` applied to X (T, in), without its
 * bias: the packed linear when one is set (forward_set_packed), else sgemm
 * with BlockWeights.lin[k]. */
static int cpu_linear(Forward *f, int layer, LinearKind k, float *Y, const float *X, int T) {
    const PackedLinear *p = forward_packed(f, layer, k);
    if (p) return p->ops->matmul(p, X, T, Y, NULL);
    int out, in;
    model_linear_shape(&f->model->cfg, k, &out, &in);
    linear(Y, X, f->model->w.blocks[layer].lin[k], T, in, out);
    return 0;
}

/* Where a block is run: positions pos0 .. pos0 + T - 1 of a sequence, and
 * whether their keys and values go to the KV cache and attention reads the
 * cache (decode) or the window alone (pos0 0). */
typedef struct BlockAt {
    int pos0, cache;
} BlockAt;

/* s->att (T, D) <- attention of s->q (T, D) over s->k, s->v (T, KV), after
 * the rotary at positions at.pos0 ..: over the window alone, or over layer's
 * cache once the new keys and values are stored in it. */
static void cpu_attend(CpuForward *s, int layer, int T, BlockAt at) {
    const ModelConfig *c = &s->base.model->cfg;
    int D = c->dim, KV = model_kv_dim(c), hs = model_head_size(c);
    rope_freq_ref(s->q, s->k, T, D, KV, hs, at.pos0, s->inv_freq);
    if (!at.cache) {
        attention_simd(s->att, s->q, s->k, s->v, T, c->n_heads, c->n_kv_heads, hs);
        return;
    }
    long ld = s->base.dec_len;
    float *kc = s->kc + (size_t)layer * KV * ld, *vc = s->vc + (size_t)layer * KV * ld; /* (KV, ld) */
    kv_cache_store(kc, vc, ld, s->k, s->v, T, at.pos0, KV);
    attention_cached_simd(s->att, s->q, kc, vc, ld, T, at.pos0, c->n_heads, c->n_kv_heads, hs);
}

static int cpu_embed(Forward *f, const int *tokens, int T, float *x) {
    const ModelConfig *c = &f->model->cfg;
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return qh_error("token id %d at position %d is outside the vocabulary (0..%d)", tokens[t], t,
                            c->vocab_size - 1);
        memcpy(x + (long)t * c->dim, f->model->w.tok_emb + (long)tokens[t] * c->dim, sizeof(float) * c->dim);
    }
    return 0;
}

/* The Falcon block (arch.h, ARCH_FALCON), transformers' FalconDecoderLayer
 * with parallel_attn: attention and MLP both read the normed block input
 * (Falcon-7B: one input_layernorm; Falcon-40B: ln_attn and ln_mlp), and
 * x <- x + (mlp + attn). Attention: the fused query_key_value output split
 * into heads (qkv_split_ref), rotary, causal grouped-query attention, dense;
 * MLP: dense_4h_to_h(gelu(dense_h_to_4h(.))). Biases when cfg.linear_bias. */
static int cpu_block_falcon(Forward *f, int layer, float *x, int T, BlockAt at, LinearInputHook hook, void *user) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    const BlockWeights *b = &f->model->w.blocks[layer];
    int D = c->dim, F = c->hidden_dim, KV = model_kv_dim(c), QKV = D + 2 * KV;
    layernorm_ref(s->xb, x, b->rms_att, b->norm_att_bias, T, D, c->norm_eps);
    const float *xm = s->xb; /* (T, D) what the MLP reads */
    if (arch_of(c)->n_norms > 1) {
        layernorm_ref(s->xb2, x, b->rms_ffn, b->norm_ffn_bias, T, D, c->norm_eps);
        xm = s->xb2;
    }
    /* attention */
    if (hook) hook(user, layer, LIN_QKV, s->xb, T);
    if (cpu_linear(f, layer, LIN_QKV, s->qkv, s->xb, T)) return -1;
    if (b->bias[LIN_QKV]) add_bias_ref(s->qkv, b->bias[LIN_QKV], T, QKV);
    qkv_split_ref(s->q, s->k, s->v, s->qkv, s->qkv_map, T, D, KV);
    cpu_attend(s, layer, T, at);
    if (hook) hook(user, layer, LIN_DENSE, s->att, T);
    float *ao = s->q; /* (T, D) the attention branch's output (q is spent) */
    if (cpu_linear(f, layer, LIN_DENSE, ao, s->att, T)) return -1;
    if (b->bias[LIN_DENSE]) add_bias_ref(ao, b->bias[LIN_DENSE], T, D);
    /* MLP */
    if (hook) hook(user, layer, LIN_H_TO_4H, xm, T);
    if (cpu_linear(f, layer, LIN_H_TO_4H, s->hb, xm, T)) return -1;
    if (b->bias[LIN_H_TO_4H]) add_bias_ref(s->hb, b->bias[LIN_H_TO_4H], T, F);
    gelu_ref(s->hb, (long)T * F);
    if (hook) hook(user, layer, LIN_4H_TO_H, s->hb, T);
    float *mo = s->att; /* (T, D) the MLP's output (att is spent) */
    if (cpu_linear(f, layer, LIN_4H_TO_H, mo, s->hb, T)) return -1;
    if (b->bias[LIN_4H_TO_H]) add_bias_ref(mo, b->bias[LIN_4H_TO_H], T, D);
    parallel_residual_ref(x, ao, mo, (long)T * D);
    return 0;
}

/* The final norm of the family: out (T, D) <- norm(x) with the model's weights. */
static void final_norm(const Forward *f, float *out, const float *x, int T) {
    const Model *m = f->model;
    if (arch_of(&m->cfg)->norm == NORM_LAYER)
        layernorm_ref(out, x, m->w.rms_final, m->w.norm_final_bias, T, m->cfg.dim, m->cfg.norm_eps);
    else
        rmsnorm_ref(out, x, m->w.rms_final, T, m->cfg.dim, m->cfg.norm_eps);
}

/* x (T, D) <- block `layer` applied to x, positions at.pos0 .. (the LLaMA
 * block; Falcon's above). */
static int cpu_block_at(Forward *f, int layer, float *x, int T, BlockAt at, LinearInputHook hook, void *user) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    const BlockWeights *b = &f->model->w.blocks[layer];
    int D = c->dim, F = c->hidden_dim, KV = model_kv_dim(c);
    if (T > f->max_T) return qh_error("window of %d tokens exceeds the backend's %d", T, f->max_T);
    if (s->qkv_map) return cpu_block_falcon(f, layer, x, T, at, hook, user);

    /* attention */
    rmsnorm_ref(s->xb, x, b->rms_att, T, D, c->norm_eps);
    if (hook) {
        hook(user, layer, LIN_Q, s->xb, T);
        hook(user, layer, LIN_K, s->xb, T);
        hook(user, layer, LIN_V, s->xb, T);
    }
    if (cpu_linear(f, layer, LIN_Q, s->q, s->xb, T) || cpu_linear(f, layer, LIN_K, s->k, s->xb, T) ||
        cpu_linear(f, layer, LIN_V, s->v, s->xb, T))
        return -1;
    if (b->bias[LIN_Q]) add_bias_ref(s->q, b->bias[LIN_Q], T, D); /* Qwen2: before the rotation */
    if (b->bias[LIN_K]) add_bias_ref(s->k, b->bias[LIN_K], T, KV);
    if (b->bias[LIN_V]) add_bias_ref(s->v, b->bias[LIN_V], T, KV);
    cpu_attend(s, layer, T, at);
    if (hook) hook(user, layer, LIN_O, s->att, T);
    if (cpu_linear(f, layer, LIN_O, s->xb, s->att, T)) return -1;
    long n = (long)T * D;
    for (long i = 0; i < n; i++) x[i] += s->xb[i];

    /* SwiGLU feed-forward */
    rmsnorm_ref(s->xb, x, b->rms_ffn, T, D, c->norm_eps);
    if (hook) {
        hook(user, layer, LIN_GATE, s->xb, T);
        hook(user, layer, LIN_UP, s->xb, T);
    }
    if (cpu_linear(f, layer, LIN_GATE, s->hb, s->xb, T) || cpu_linear(f, layer, LIN_UP, s->hb2, s->xb, T)) return -1;
    swiglu_ref(s->hb, s->hb2, T, F);
    if (hook) hook(user, layer, LIN_DOWN, s->hb, T);
    if (cpu_linear(f, layer, LIN_DOWN, s->xb, s->hb, T)) return -1;
    for (long i = 0; i < n; i++) x[i] += s->xb[i];
    return 0;
}

static int cpu_block(Forward *f, int layer, float *x, int T, LinearInputHook hook, void *user) {
    return cpu_block_at(f, layer, x, T, (BlockAt){0, 0}, hook, user);
}

static int cpu_head_nll(Forward *f, const float *x, const int *tokens, int T, double *nll) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    int D = c->dim, V = c->vocab_size;
    if (T - 1 > f->max_T) return qh_error("window of %d tokens exceeds the backend's %d", T, f->max_T);
    final_norm(f, s->xb, x, T - 1);
    for (int t0 = 0; t0 < T - 1; t0 += s->logit_chunk) {
        int tc = T - 1 - t0 < s->logit_chunk ? T - 1 - t0 : s->logit_chunk;
        linear(s->logits, s->xb + (long)t0 * D, f->model->w.wcls, tc, D, V);
        nll_ref(nll + t0, s->logits, tokens + t0 + 1, tc, V);
    }
    return 0;
}

/* logits (n, V) <- the head (final norm, output matrix) of x (n, D): head_logits,
 * and the last position's logits of last_logits and decode. */
static int cpu_head_logits(Forward *f, const float *x, int n, float *logits) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (n < 1 || n > f->max_T) return qh_error("%d positions are outside the backend's 1..%d", n, f->max_T);
    final_norm(f, s->xb, x, n);
    linear(logits, s->xb, f->model->w.wcls, n, c->dim, c->vocab_size);
    return 0;
}

static int cpu_last_logits(Forward *f, const int *tokens, int T, float *logits) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (T < 1 || T > f->max_T) return qh_error("window of %d tokens is outside the backend's 1..%d", T, f->max_T);
    if (f->ops->embed(f, tokens, T, s->xtmp) != 0) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (f->ops->block(f, l, s->xtmp, T, NULL, NULL) != 0) return -1;
    return cpu_head_logits(f, s->xtmp + (long)(T - 1) * c->dim, 1, logits);
}

static int cpu_weights_changed(Forward *f, int layer) { return 0; /* weights are read in place */ }

static int cpu_decode_reset(Forward *f, int max_len) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (forward_decode_reset_check(f, max_len) != 0) return -1;
    size_t n = (size_t)c->n_layers * model_kv_dim(c) * max_len; /* (L, KV, max_len) */
    free(s->kc);
    s->kc = qh_malloc(2 * n * sizeof(float));
    s->vc = s->kc + n;
    f->dec_len = max_len;
    f->dec_pos = 0;
    return 0;
}

/* The new positions in chunks of max_T through embed and every block (keys
 * and values into the cache), then the head on the last one. */
static int cpu_decode(Forward *f, const int *tokens, int n, float *logits) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (forward_decode_check(f, tokens, n) != 0) return -1;
    int T = 0;
    for (int c0 = 0; c0 < n; c0 += T) {
        T = n - c0 < f->max_T ? n - c0 : f->max_T;
        if (f->ops->embed(f, tokens + c0, T, s->xtmp) != 0) return -1;
        for (int l = 0; l < c->n_layers; l++)
            if (cpu_block_at(f, l, s->xtmp, T, (BlockAt){f->dec_pos, 1}, NULL, NULL) != 0) return -1;
        f->dec_pos += T;
    }
    return cpu_head_logits(f, s->xtmp + (long)(T - 1) * c->dim, 1, logits);
}

static void cpu_destroy(Forward *f) {
    CpuForward *s = (CpuForward *)f;
    forward_host_acts_destroy(f);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->hb);
    free(s->hb2);
    free(s->logits);
    free(s->xtmp);
    free(s->inv_freq);
    free(s->qkv);
    free(s->xb2);
    free(s->qkv_map);
    free(s->kc);
    free(s);
}

static const ForwardOps cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .embed = cpu_embed,
    .block = cpu_block,
    .head_nll = cpu_head_nll,
    .window_nll = forward_generic_window_nll,
    .last_logits = cpu_last_logits,
    .body = forward_generic_body,
    .head_logits = cpu_head_logits,
    .weights_changed = cpu_weights_changed,
    .acts_create = forward_host_acts_create,
    .acts_embed = forward_host_acts_embed,
    .acts_copy = forward_host_acts_copy,
    .acts_block = forward_host_acts_block,
    .acts_sqdiff = forward_host_acts_sqdiff,
    .decode_reset = cpu_decode_reset,
    .decode = cpu_decode,
    .packed_where = PACKED_HOST,
    .acts_read = forward_host_acts_read,
};

/* Positions whose logits are computed at once: at most ~64 MB of logits. */
static size_t logit_chunk(size_t V, size_t T) {
    size_t chunk = (64u << 20) / (V * sizeof(float));
    if (chunk < 1) chunk = 1;
    return chunk > T ? T : chunk;
}

size_t forward_cpu_scratch_bytes(const ModelConfig *c, int max_T) {
    size_t T = (size_t)max_T, D = c->dim, KV = model_kv_dim(c), F = c->hidden_dim, V = c->vocab_size;
    /* xb q att xtmp (T, D); k v (T, KV); hb hb2 (T, F); logits (chunk, V); fused QKV: qkv (T, D + 2 KV), xb2 (T, D) */
    size_t fused = arch_of(c)->qkv == QKV_FUSED ? T * (D + 2 * KV) + T * D : 0;
    return sizeof(float) * (4 * T * D + 2 * T * KV + 2 * T * F + logit_chunk(V, T) * V + fused);
}

int forward_cpu_create(const Model *m, int max_T, Forward **out) {
    const ModelConfig *c = &m->cfg;
    if (max_T < 2) return qh_error("window length %d is too short (at least 2 tokens)", max_T);
    CpuForward *s = qh_calloc(1, sizeof *s);
    s->base.ops = &cpu_ops;
    s->base.model = m;
    s->base.max_T = max_T;
    size_t T = (size_t)max_T, D = c->dim, KV = model_kv_dim(c), F = c->hidden_dim, V = c->vocab_size;
    s->xb = qh_malloc(T * D * sizeof(float));
    s->q = qh_malloc(T * D * sizeof(float));
    s->k = qh_malloc(T * KV * sizeof(float));
    s->v = qh_malloc(T * KV * sizeof(float));
    s->att = qh_malloc(T * D * sizeof(float));
    s->hb = qh_malloc(T * F * sizeof(float));
    s->hb2 = qh_malloc(T * F * sizeof(float));
    size_t chunk = logit_chunk(V, T);
    s->logit_chunk = (int)chunk;
    s->logits = qh_malloc(chunk * V * sizeof(float));
    s->xtmp = qh_malloc(T * D * sizeof(float));
    s->inv_freq = qh_malloc(sizeof(float) * (size_t)(model_head_size(c) / 2));
    model_rope_inv_freq(c, s->inv_freq);
    if (arch_of(c)->qkv == QKV_FUSED) {
        s->qkv = qh_malloc(T * (D + 2 * KV) * sizeof(float));
        s->xb2 = qh_malloc(T * D * sizeof(float));
        s->qkv_map = qh_malloc((D + 2 * KV) * sizeof(int));
        arch_qkv_split_map(c, s->qkv_map);
    }
    *out = &s->base;
    return 0;
}

/* ---- backend-independent parts of forward.h ---------------------------- */

int forward_generic_body(Forward *f, const int *tokens, int T, float *x) {
    int rc = f->ops->embed(f, tokens, T, x);
    for (int l = 0; rc == 0 && l < f->model->cfg.n_layers; l++) rc = f->ops->block(f, l, x, T, NULL, NULL);
    return rc;
}

int forward_generic_window_nll(Forward *f, const int *tokens, int T, double *nll) {
    const ModelConfig *c = &f->model->cfg;
    float *x = qh_malloc((size_t)T * c->dim * sizeof(float)); /* (T, D) */
    int rc = forward_generic_body(f, tokens, T, x);
    if (rc == 0) rc = f->ops->head_nll(f, x, tokens, T, nll);
    free(x);
    return rc;
}

double forward_flops(const ModelConfig *c, int T) {
    double lin = (double)model_linear_params(c) + (double)c->vocab_size * c->dim;
    double attn = 2.0 * 2.0 * ((double)T * (T + 1) / 2.0) * model_head_size(c) * c->n_heads * c->n_layers;
    return 2.0 * T * lin + attn;
}

int qh_device_parse(const char *s, QhDevice *out) {
    if (!strcmp(s, "cpu")) *out = QH_DEVICE_CPU;
    else if (!strcmp(s, "cuda")) *out = QH_DEVICE_CUDA;
    else if (!strcmp(s, "auto")) *out = QH_DEVICE_AUTO;
    else return qh_error("--device: expected cpu, cuda or auto, got '%s'", s);
    return 0;
}

#ifdef QH_HAVE_CUDA
int cuda_device_count(void);
int forward_cuda_create_opts(const Model *m, int max_T, int stream, size_t max_device_bytes, Forward **out);
int forward_cuda_stream_stats(const Forward *f, double *upload_seconds, long *uploads);
int qh_cuda_available(void) { return cuda_device_count() > 0; }
size_t cuda_free_bytes(void);
size_t qh_cuda_free_bytes(void) { return cuda_free_bytes(); }
#else
int qh_cuda_available(void) { return 0; }
size_t qh_cuda_free_bytes(void) { return 0; }
#endif

int forward_create(QhDevice dev, const Model *m, int max_T, Forward **out) {
    return forward_create_opts(dev, m, max_T, 0, 0, out);
}

int forward_stream_stats(const Forward *f, double *upload_seconds, long *uploads) {
#ifdef QH_HAVE_CUDA
    return forward_cuda_stream_stats(f, upload_seconds, uploads);
#else
    return 0;
#endif
}

int forward_create_opts(QhDevice dev, const Model *m, int max_T, int stream, size_t max_device_bytes, Forward **out) {
    if (m->cfg.sliding_window > 0 && max_T > m->cfg.sliding_window)
        return qh_error("window of %d tokens exceeds the model's sliding_window of %d (config.json of '%s'): "
                        "sliding-window attention is not implemented; use --seqlen %d or less",
                        max_T, m->cfg.sliding_window, m->path ? m->path : "the model", m->cfg.sliding_window);
    /* auto: the GPU when there is one (a model read block by block is streamed onto it one block at a time) */
    if (dev == QH_DEVICE_AUTO) dev = qh_cuda_available() ? QH_DEVICE_CUDA : QH_DEVICE_CPU;
    if (dev == QH_DEVICE_CUDA) {
#ifdef QH_HAVE_CUDA
        if (!qh_cuda_available()) return qh_error("--device cuda: no CUDA GPU is visible on this machine");
        return forward_cuda_create_opts(m, max_T, stream, max_device_bytes, out);
#else
        return qh_error("--device cuda: this build has no CUDA support (nvcc was not found at build time)");
#endif
    }
    return forward_cpu_create(m, max_T, out);
}

void forward_destroy(Forward **f) {
    if (*f) free((*f)->packed);
    if (*f) (*f)->ops->destroy(*f);
    *f = NULL;
}
