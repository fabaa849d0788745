/* forward_cpu.c: the CPU backend of forward.h. One window at a time, batched
 * over positions: linear layers are (T, in) x (in, out) products through
 * OpenBLAS sgemm; attention is computed row by row over the causal part only
 * (attention_simd, OpenMP over heads x positions); the element-wise operations are the references of
 * forward_math.c, parallelised with OpenMP. Also holds the backend-independent
 * pieces of forward.h (device selection, generic window loop, FLOP count). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
} CpuForward;

/* Y (T, out) = X (T, in) W^T, W (out, in) row-major. */
static void linear(float *Y, const float *X, const float *W, int T, int in, int out) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, X, in, W, in, 0.0f, Y, out);
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

static int cpu_block(Forward *f, int layer, float *x, int T, LinearInputHook hook, void *user) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    const BlockWeights *b = &f->model->w.blocks[layer];
    int D = c->dim, F = c->hidden_dim, KV = model_kv_dim(c), hs = model_head_size(c);
    if (T > f->max_T) return qh_error("window of %d tokens exceeds the backend's %d", T, f->max_T);

    /* attention */
    rmsnorm_ref(s->xb, x, b->rms_att, T, D, c->norm_eps);
    if (hook) {
        hook(user, layer, LIN_Q, s->xb, T);
        hook(user, layer, LIN_K, s->xb, T);
        hook(user, layer, LIN_V, s->xb, T);
    }
    linear(s->q, s->xb, b->lin[LIN_Q], T, D, D);
    linear(s->k, s->xb, b->lin[LIN_K], T, D, KV);
    linear(s->v, s->xb, b->lin[LIN_V], T, D, KV);
    if (b->bias[LIN_Q]) add_bias_ref(s->q, b->bias[LIN_Q], T, D); /* Qwen2: before the rotation */
    if (b->bias[LIN_K]) add_bias_ref(s->k, b->bias[LIN_K], T, KV);
    if (b->bias[LIN_V]) add_bias_ref(s->v, b->bias[LIN_V], T, KV);
    rope_ref(s->q, s->k, T, D, KV, hs, 0, c->rope_theta);
    attention_simd(s->att, s->q, s->k, s->v, T, c->n_heads, c->n_kv_heads, hs);
    if (hook) hook(user, layer, LIN_O, s->att, T);
    linear(s->xb, s->att, b->lin[LIN_O], T, D, D);
    long n = (long)T * D;
    for (long i = 0; i < n; i++) x[i] += s->xb[i];

    /* SwiGLU feed-forward */
    rmsnorm_ref(s->xb, x, b->rms_ffn, T, D, c->norm_eps);
    if (hook) {
        hook(user, layer, LIN_GATE, s->xb, T);
        hook(user, layer, LIN_UP, s->xb, T);
    }
    linear(s->hb, s->xb, b->lin[LIN_GATE], T, D, F);
    linear(s->hb2, s->xb, b->lin[LIN_UP], T, D, F);
    swiglu_ref(s->hb, s->hb2, T, F);
    if (hook) hook(user, layer, LIN_DOWN, s->hb, T);
    linear(s->xb, s->hb, b->lin[LIN_DOWN], T, F, D);
    for (long i = 0; i < n; i++) x[i] += s->xb[i];
    return 0;
}

static int cpu_head_nll(Forward *f, const float *x, const int *tokens, int T, double *nll) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    int D = c->dim, V = c->vocab_size;
    if (T - 1 > f->max_T) return qh_error("window of %d tokens exceeds the backend's %d", T, f->max_T);
    rmsnorm_ref(s->xb, x, f->model->w.rms_final, T - 1, D, c->norm_eps);
    for (int t0 = 0; t0 < T - 1; t0 += s->logit_chunk) {
        int tc = T - 1 - t0 < s->logit_chunk ? T - 1 - t0 : s->logit_chunk;
        linear(s->logits, s->xb + (long)t0 * D, f->model->w.wcls, tc, D, V);
        nll_ref(nll + t0, s->logits, tokens + t0 + 1, tc, V);
    }
    return 0;
}

static int cpu_last_logits(Forward *f, const int *tokens, int T, float *logits) {
    CpuForward *s = (CpuForward *)f;
    const ModelConfig *c = &f->model->cfg;
    if (T < 1 || T > f->max_T) return qh_error("window of %d tokens is outside the backend's 1..%d", T, f->max_T);
    if (f->ops->embed(f, tokens, T, s->xtmp) != 0) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (f->ops->block(f, l, s->xtmp, T, NULL, NULL) != 0) return -1;
    rmsnorm_ref(s->xb, s->xtmp + (long)(T - 1) * c->dim, f->model->w.rms_final, 1, c->dim, c->norm_eps);
    linear(logits, s->xb, f->model->w.wcls, 1, c->dim, c->vocab_size);
    return 0;
}

static int cpu_weights_changed(Forward *f, int layer) { return 0; /* weights are read in place */ }

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
    .weights_changed = cpu_weights_changed,
    .acts_create = forward_host_acts_create,
    .acts_embed = forward_host_acts_embed,
    .acts_copy = forward_host_acts_copy,
    .acts_block = forward_host_acts_block,
    .acts_sqdiff = forward_host_acts_sqdiff,
};

/* Positions whose logits are computed at once: at most ~64 MB of logits. */
static size_t logit_chunk(size_t V, size_t T) {
    size_t chunk = (64u << 20) / (V * sizeof(float));
    if (chunk < 1) chunk = 1;
    return chunk > T ? T : chunk;
}

size_t forward_cpu_scratch_bytes(const ModelConfig *c, int max_T) {
    size_t T = (size_t)max_T, D = c->dim, KV = model_kv_dim(c), F = c->hidden_dim, V = c->vocab_size;
    /* xb q att xtmp (T, D); k v (T, KV); hb hb2 (T, F); logits (chunk, V) */
    return sizeof(float) * (4 * T * D + 2 * T * KV + 2 * T * F + logit_chunk(V, T) * V);
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
    *out = &s->base;
    return 0;
}

/* ---- backend-independent parts of forward.h ---------------------------- */

int forward_generic_window_nll(Forward *f, const int *tokens, int T, double *nll) {
    const ModelConfig *c = &f->model->cfg;
    float *x = qh_malloc((size_t)T * c->dim * sizeof(float)); /* (T, D) */
    int rc = f->ops->embed(f, tokens, T, x);
    for (int l = 0; rc == 0 && l < c->n_layers; l++) rc = f->ops->block(f, l, x, T, NULL, NULL);
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
int forward_cuda_create(const Model *m, int max_T, Forward **out);
int qh_cuda_available(void) { return cuda_device_count() > 0; }
#else
int qh_cuda_available(void) { return 0; }
#endif

int forward_create(QhDevice dev, const Model *m, int max_T, Forward **out) {
    /* auto: the GPU when there is one, except for a model read block by block (CPU work) */
    if (dev == QH_DEVICE_AUTO) dev = qh_cuda_available() && !m->src.load ? QH_DEVICE_CUDA : QH_DEVICE_CPU;
    if (dev == QH_DEVICE_CUDA) {
#ifdef QH_HAVE_CUDA
        if (!qh_cuda_available()) return qh_error("--device cuda: no CUDA GPU is visible on this machine");
        return forward_cuda_create(m, max_T, out);
#else
        return qh_error("--device cuda: this build has no CUDA support (nvcc was not found at build time)");
#endif
    }
    return forward_cpu_create(m, max_T, out);
}

void forward_destroy(Forward **f) {
    if (*f) (*f)->ops->destroy(*f);
    *f = NULL;
}
