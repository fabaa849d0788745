/* model.c: llama2.c legacy (v0) checkpoint reading and writing, shape checks,
 * synthetic random-weight models, and empty owned models that readers of other
 * formats fill (model_alloc; hf_model.c). The v0 layout is: 7 int32 (dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
 * means an unshared classifier), then fp32 tensors in this order:
 * tok_emb (V,D), rms_att (L,D), wq (L,D,D), wk (L,KV,D), wv (L,KV,D),
 * wo (L,D,D), rms_ffn (L,D), w1 (L,F,D), w2 (L,D,F), w3 (L,F,D), rms_final (D),
 * freq_cis_real (S,hs/2), freq_cis_imag (S,hs/2) (unused), [wcls (V,D)]. */
#define _GNU_SOURCE
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch.h"
#include "util.h"

const char *const linear_names[LIN_COUNT] = {"wq", "wk", "wv", "wo", "w1", "w3", "w2"};

void model_linear_shape(const ModelConfig *c, LinearKind k, int *out, int *in) {
    const ArchLinear *l = &arch_of(c)->lin[k];
    *out = arch_dim(c, l->out);
    *in = arch_dim(c, l->in);
}

int model_n_linears(const ModelConfig *c) { return arch_of(c)->n_lin; }
const char *model_linear_name(const ModelConfig *c, LinearKind k) { return arch_of(c)->lin[k].name; }
int model_linear_rotary(const ModelConfig *c, LinearKind k) { return arch_of(c)->lin[k].rotary_rows; }
int model_ckpt_rows_permuted(const ModelConfig *c, LinearKind k) {
    return c->qk_rotate_half && model_linear_rotary(c, k);
}

void model_rope_inv_freq(const ModelConfig *c, float *inv_freq) {
    int hs = model_head_size(c);
    for (int i = 0; i < hs / 2; i++) {
        float f = 1.0f / powf(c->rope_theta, (2 * i) / (float)hs); /* rope_ref's expression */
        if (c->rope_scaling == ROPE_SCALING_LLAMA3) {
            double old = c->rope_original_max_pos, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f, low_wavelen = old / lo, high_wavelen = old / hi, fd = f;
            if (wavelen > low_wavelen) fd = f / c->rope_factor; /* low frequencies: scaled */
            else if (wavelen >= high_wavelen) {                  /* the band between: interpolated */
                double smooth = (old / wavelen - lo) / (hi - lo);
                fd = (1.0 - smooth) * f / c->rope_factor + smooth * f;
            }
            f = (float)fd;
        }
        inv_freq[i] = f;
    }
}

int64_t model_linear_params(const ModelConfig *c) {
    int64_t total = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        total += (int64_t)o * i;
    }
    return total * c->n_layers;
}

int model_config_validate(const ModelConfig *c, const char *what) {
    if (c->arch < 0 || c->arch >= ARCH_ID_COUNT) return qh_error("%s: unknown architecture id %d", what, c->arch);
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab_size <= 0 || c->seq_len <= 0)
        return qh_error("%s: header has a non-positive size (dim %d, hidden_dim %d, n_layers %d, "
                        "n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d)",
                        what, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                        c->vocab_size, c->seq_len);
    if (c->dim % c->n_heads != 0)
        return qh_error("%s: dim %d is not a multiple of n_heads %d", what, c->dim, c->n_heads);
    if ((c->dim / c->n_heads) % 2 != 0)
        return qh_error("%s: head size %d must be even for rotary embeddings", what, c->dim / c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return qh_error("%s: n_heads %d is not a multiple of n_kv_heads %d", what, c->n_heads,
                        c->n_kv_heads);
    if (c->dim > (1 << 20) || c->hidden_dim > (1 << 22) || c->n_layers > 4096 || c->vocab_size > (1 << 24) ||
        c->seq_len > (1 << 22))
        return qh_error("%s: implausible sizes in header (dim %d, hidden %d, layers %d, vocab %d, seq_len %d)",
                        what, c->dim, c->hidden_dim, c->n_layers, c->vocab_size, c->seq_len);
    return 0;
}

/* Number of floats in a v0 checkpoint body for config c. */
static int64_t v0_floats(const ModelConfig *c) {
    int64_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size, S = c->seq_len;
    int64_t hs = D / c->n_heads, KV = model_kv_dim(c);
    int64_t n = V * D + L * D * 2 + L * (D * D * 2 + KV * D * 2) + L * F * D * 3 + D + S * hs;
    if (!c->shared_classifier) n += V * D;
    return n;
}

/* Point m->w into the float array `p` laid out as v0 (with_freq 0: the same
 * order without the unused freq_cis tables). */
static void v0_assign(Model *m, const float *p, int with_freq) {
    const ModelConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size, S = c->seq_len;
    int64_t hs = D / c->n_heads, KV = model_kv_dim(c);
    m->w.blocks = qh_calloc((size_t)L, sizeof(BlockWeights));
    m->w.tok_emb = p;
    p += V * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].rms_att = p + l * D;
    p += L * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_Q] = p + l * D * D;
    p += L * D * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_K] = p + l * KV * D;
    p += L * KV * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_V] = p + l * KV * D;
    p += L * KV * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_O] = p + l * D * D;
    p += L * D * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].rms_ffn = p + l * D;
    p += L * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_GATE] = p + l * F * D;
    p += L * F * D;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_DOWN] = p + l * D * F;
    p += L * D * F;
    for (int64_t l = 0; l < L; l++) m->w.blocks[l].lin[LIN_UP] = p + l * F * D;
    p += L * F * D;
    m->w.rms_final = p;
    p += D;
    if (with_freq) p += S * hs; /* freq_cis_real and freq_cis_imag: S * hs/2 each, recomputed at run time */
    m->w.wcls = c->shared_classifier ? m->w.tok_emb : p;
}

/* Floats of the q/k/v biases (0 without them), kept after the v0 layout. */
static int64_t bias_floats(const ModelConfig *c) {
    return c->qkv_bias ? (int64_t)c->n_layers * (c->dim + 2 * (int64_t)model_kv_dim(c)) : 0;
}

/* Point the q/k/v biases of every block into p (bias_floats(c) floats): per block q (D), k (KV), v (KV). */
static void bias_assign(Model *m, const float *p) {
    const ModelConfig *c = &m->cfg;
    if (!c->qkv_bias) return;
    int64_t D = c->dim, KV = model_kv_dim(c);
    for (int l = 0; l < c->n_layers; l++, p += D + 2 * KV) {
        m->w.blocks[l].bias[LIN_Q] = p;
        m->w.blocks[l].bias[LIN_K] = p + D;
        m->w.blocks[l].bias[LIN_V] = p + D + KV;
    }
}

int model_load_llama2c(Model *m, const char *path) {
    memset(m, 0, sizeof *m);
    struct stat st;
    int fd = qh_open_regular(path, "model", &st);
    if (fd < 0) return -1;
    size_t size = (size_t)st.st_size;
    int32_t hdr[7];
    if (size < sizeof hdr || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
        close(fd);
        return qh_error("model '%s': file is %zu bytes, shorter than the 28-byte llama2.c header", path, size);
    }
    ModelConfig *c = &m->cfg;
    c->dim = hdr[0];
    c->hidden_dim = hdr[1];
    c->n_layers = hdr[2];
    c->n_heads = hdr[3];
    c->n_kv_heads = hdr[4];
    c->shared_classifier = hdr[5] > 0;
    c->vocab_size = hdr[5] == INT32_MIN ? 0 : hdr[5] < 0 ? -hdr[5] : hdr[5]; /* 0 is refused below */
    c->seq_len = hdr[6];
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    if (model_config_validate(c, path) != 0) {
        close(fd);
        return -1;
    }
    int64_t expect = (int64_t)sizeof hdr + 4 * v0_floats(c);
    if ((int64_t)size != expect) {
        close(fd);
        return qh_error("model '%s': the header (dim %d, hidden %d, layers %d, heads %d, kv heads %d, "
                        "vocab %d%s, seq_len %d) implies %lld bytes but the file has %zu (%s)",
                        path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                        c->vocab_size, c->shared_classifier ? " shared" : " unshared", c->seq_len,
                        (long long)expect, size, (int64_t)size < expect ? "truncated" : "trailing bytes");
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return qh_error("cannot mmap model '%s': %s", path, strerror(errno));
    m->map = map;
    m->map_size = size;
    m->path = qh_strdup(path);
    v0_assign(m, (const float *)((const char *)map + sizeof hdr), 1);
    return 0;
}

/* Any family's tensors carved from p in a fixed order (with_lin 0: no block
 * linears, they are streamed); returns the floats used. p NULL: only counts.
 * m->w.blocks must be allocated when p is not NULL. */
static int64_t carve_generic(Model *m, float *p, int with_lin) {
    const ModelConfig *c = &m->cfg;
    const ArchDesc *a = arch_of(c);
    int64_t D = c->dim, V = c->vocab_size, n = 0;
    int layer_norm = a->norm == NORM_LAYER;
#define TAKE(dst, cnt) do { if (p) (dst) = p + n; n += (cnt); } while (0)
    TAKE(m->w.tok_emb, V * D);
    if (!c->shared_classifier) TAKE(m->w.wcls, V * D);
    else if (p) m->w.wcls = m->w.tok_emb;
    TAKE(m->w.rms_final, D);
    if (layer_norm) TAKE(m->w.norm_final_bias, D);
    for (int l = 0; l < c->n_layers; l++) {
        BlockWeights *b = p ? &m->w.blocks[l] : NULL;
        TAKE(b->rms_att, D);
        if (layer_norm) TAKE(b->norm_att_bias, D);
        if (a->n_norms > 1) {
            TAKE(b->rms_ffn, D);
            if (layer_norm) TAKE(b->norm_ffn_bias, D);
        }
        for (int k = 0; k < a->n_lin; k++) {
            int o, i;
            model_linear_shape(c, (LinearKind)k, &o, &i);
            if (with_lin) TAKE(b->lin[k], (int64_t)o * i);
            int has = a->lin[k].bias == BIAS_CFG ? c->linear_bias : a->lin[k].bias == BIAS_QKV_CFG ? c->qkv_bias : 0;
            if (has) TAKE(b->bias[k], o);
        }
    }
#undef TAKE
    return n;
}

/* model_alloc / model_alloc_streamed for a family other than LLaMA. */
static int alloc_generic(Model *m, const char *path, int with_lin) {
    int64_t n = carve_generic(m, NULL, with_lin);
    m->heap = qh_malloc((size_t)n * sizeof(float));
    m->w.blocks = qh_calloc((size_t)m->cfg.n_layers, sizeof(BlockWeights));
    carve_generic(m, m->heap, with_lin);
    m->block_layer = -1;
    m->path = qh_strdup(path);
    return 0;
}

int model_alloc(Model *m, const ModelConfig *c, const char *path) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    if (model_config_validate(&m->cfg, path) != 0) return -1;
    if (c->arch != ARCH_ID_LLAMA) return alloc_generic(m, path, 1);
    int64_t n = v0_floats(&m->cfg) - (int64_t)c->seq_len * (c->dim / c->n_heads);
    m->heap = qh_malloc((size_t)(n + bias_floats(c)) * sizeof(float));
    v0_assign(m, m->heap, 0);
    bias_assign(m, m->heap + n);
    m->path = qh_strdup(path);
    return 0;
}

int model_alloc_streamed(Model *m, const ModelConfig *c, const char *path) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    if (model_config_validate(&m->cfg, path) != 0) return -1;
    if (c->arch != ARCH_ID_LLAMA) return alloc_generic(m, path, 0);
    int64_t D = c->dim, L = c->n_layers, V = c->vocab_size;
    int64_t n = V * D * (c->shared_classifier ? 1 : 2) + D + L * 2 * D;
    m->heap = qh_malloc((size_t)(n + bias_floats(c)) * sizeof(float));
    float *p = m->heap;
    m->w.blocks = qh_calloc((size_t)L, sizeof(BlockWeights));
    m->w.tok_emb = p;
    p += V * D;
    m->w.wcls = c->shared_classifier ? m->w.tok_emb : p;
    if (!c->shared_classifier) p += V * D;
    m->w.rms_final = p;
    p += D;
    for (int64_t l = 0; l < L; l++, p += 2 * D) {
        m->w.blocks[l].rms_att = p;
        m->w.blocks[l].rms_ffn = p + D;
    }
    bias_assign(m, p);
    m->block_layer = -1;
    m->path = qh_strdup(path);
    return 0;
}

/* Streamed model: block l's loaded linears are gone from the block buffer
 * (replacements, owned, stay in lin[]). */
static void forget_streamed(Model *m, int l) {
    for (int k = 0; k < model_n_linears(&m->cfg); k++) {
        if (!(m->owned && m->owned[l * LIN_COUNT + k])) m->w.blocks[l].lin[k] = NULL;
        if (m->orig) m->orig[l * LIN_COUNT + k] = NULL;
    }
}

int model_is_streamable(const Model *m) { return m->map != NULL || m->src.load != NULL; }

int model_load_block(Model *m, int layer) {
    if (!m->src.load) return 0;
    const ModelConfig *c = &m->cfg;
    if (!m->block_buf) {
        int64_t n = model_linear_params(c) / c->n_layers;
        m->block_buf = qh_malloc((size_t)n * sizeof(float));
    }
    float *dst[LIN_COUNT] = {0}, *p = m->block_buf;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        dst[k] = p;
        p += (size_t)o * i;
    }
    if (m->block_layer >= 0 && m->block_layer != layer) forget_streamed(m, m->block_layer); /* its buffer is reused */
    m->block_layer = -1;
    if (m->src.load(m->src.user, c, layer, dst) != 0) return -1;
    m->block_layer = layer;
    for (int k = 0; k < model_n_linears(c); k++) {
        if (m->owned && m->owned[layer * LIN_COUNT + k]) { /* replaced: keep the replacement, note the original */
            m->orig[layer * LIN_COUNT + k] = dst[k];
            continue;
        }
        m->w.blocks[layer].lin[k] = dst[k];
        if (m->orig) m->orig[layer * LIN_COUNT + k] = dst[k];
    }
    return 0;
}

void model_free(Model *m) {
    if (!m) return;
    if (m->src.close) m->src.close(m->src.user);
    free(m->block_buf);
    if (m->owned) {
        for (int i = 0; i < m->cfg.n_layers * LIN_COUNT; i++) free(m->owned[i]);
        QH_FREE(m->owned);
        free(m->orig);
    }
    if (m->map) munmap(m->map, m->map_size);
    free(m->heap);
    free(m->w.blocks);
    free(m->path);
    memset(m, 0, sizeof *m);
}

void model_restore_block(Model *m, int layer) {
    for (int k = 0; k < model_n_linears(&m->cfg) && m->owned; k++)
        if (m->owned[layer * LIN_COUNT + k]) {
            QH_FREE(m->owned[layer * LIN_COUNT + k]);
            m->w.blocks[layer].lin[k] = m->orig[layer * LIN_COUNT + k];
        }
}

void model_release_block(Model *m, int layer) {
    model_restore_block(m, layer);
    for (int k = 0; k < model_n_linears(&m->cfg) && m->map; k++) {
        int o, i;
        model_linear_shape(&m->cfg, (LinearKind)k, &o, &i);
        qh_drop_pages(m->w.blocks[layer].lin[k], sizeof(float) * (size_t)o * i);
    }
    if (m->src.load) { /* streamed: the block buffer will be reused */
        forget_streamed(m, layer);
        if (m->block_layer == layer) m->block_layer = -1;
    }
}

int model_has_replaced(const Model *m) {
    if (!m->owned) return 0;
    for (int i = 0; i < m->cfg.n_layers * LIN_COUNT; i++)
        if (m->owned[i]) return 1;
    return 0;
}

int model_view_loaded(const Model *m, Model *view) {
    memset(view, 0, sizeof *view);
    if (m->src.load) return qh_error("'%s' is read block by block: it has no resident weights to view", m->path);
    view->cfg = m->cfg;
    view->w = m->w;
    view->w.blocks = qh_malloc(sizeof(BlockWeights) * (size_t)m->cfg.n_layers);
    memcpy(view->w.blocks, m->w.blocks, sizeof(BlockWeights) * (size_t)m->cfg.n_layers);
    for (int l = 0; l < m->cfg.n_layers && m->orig; l++)
        for (int k = 0; k < LIN_COUNT; k++) view->w.blocks[l].lin[k] = m->orig[l * LIN_COUNT + k];
    view->block_layer = -1;
    return 0;
}

void model_set_linear(Model *m, int layer, LinearKind k, const float *W) {
    int o, i;
    model_linear_shape(&m->cfg, k, &o, &i);
    if (!m->owned) {
        m->owned = qh_calloc((size_t)m->cfg.n_layers * LIN_COUNT, sizeof(float *));
        m->orig = qh_calloc((size_t)m->cfg.n_layers * LIN_COUNT, sizeof(float *));
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int j = 0; j < LIN_COUNT; j++) m->orig[l * LIN_COUNT + j] = m->w.blocks[l].lin[j];
    }
    float **slot = &m->owned[layer * LIN_COUNT + k];
    if (!*slot) *slot = qh_malloc((size_t)o * i * sizeof(float));
    if (*slot != W) memcpy(*slot, W, (size_t)o * i * sizeof(float));
    m->w.blocks[layer].lin[k] = *slot;
}

void model_rows_reorder(float *dst, const float *src, int rows, int cols, int hs, int to_ckpt) {
    for (int r = 0; r < rows; r++) {
        size_t c = (size_t)hf_qk_hf_row(r, hs) * cols, h = (size_t)r * cols;
        memcpy(dst + (to_ckpt ? c : h), src + (to_ckpt ? h : c), sizeof(float) * (size_t)cols);
    }
}

static int write_floats(FILE *f, const float *p, int64_t n) {
    return fwrite(p, sizeof(float), (size_t)n, f) == (size_t)n ? 0 : -1;
}

int model_save_llama2c(const Model *m, const char *path) {
    const ModelConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size, S = c->seq_len;
    int64_t hs = D / c->n_heads, KV = model_kv_dim(c);
    if (c->arch != ARCH_ID_LLAMA || c->rope_scaling != ROPE_SCALING_NONE)
        return qh_error("cannot write '%s': the llama2.c format holds LLaMA blocks with plain RoPE only (this model "
                        "is %s%s: export it as a Hugging Face directory instead)", path, arch_of(c)->name,
                        c->rope_scaling ? " with rope_scaling" : "");
    if (c->qkv_bias)
        return qh_error("cannot write '%s': the llama2.c format has no q/k/v biases (this model has them: "
                        "export it as a Hugging Face directory instead)", path);
    if (m->src.load)
        return qh_error("cannot write '%s': the model is read block by block (--max-memory), not held in memory",
                        path);
    size_t plen = strlen(path) + 32;
    char *tmp = qh_malloc(plen);
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        qh_error("cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int32_t hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                      c->shared_classifier ? c->vocab_size : -c->vocab_size, c->seq_len};
    int bad = fwrite(hdr, sizeof hdr, 1, f) != 1;
    bad |= write_floats(f, m->w.tok_emb, V * D);
    for (int64_t l = 0; l < L; l++) bad |= write_floats(f, m->w.blocks[l].rms_att, D);
    static const LinearKind order1[] = {LIN_Q, LIN_K, LIN_V, LIN_O};
    for (int k = 0; k < 4; k++)
        for (int64_t l = 0; l < L; l++)
            bad |= write_floats(f, m->w.blocks[l].lin[order1[k]], (order1[k] == LIN_K || order1[k] == LIN_V) ? KV * D : D * D);
    for (int64_t l = 0; l < L; l++) bad |= write_floats(f, m->w.blocks[l].rms_ffn, D);
    static const LinearKind order2[] = {LIN_GATE, LIN_DOWN, LIN_UP};
    for (int k = 0; k < 3; k++)
        for (int64_t l = 0; l < L; l++) bad |= write_floats(f, m->w.blocks[l].lin[order2[k]], F * D);
    bad |= write_floats(f, m->w.rms_final, D);
    /* freq_cis tables, as llama2.c export writes them (cos, then sin) */
    float *fc = qh_malloc((size_t)(S * hs) * sizeof(float));
    for (int64_t t = 0; t < S; t++)
        for (int64_t j = 0; j < hs / 2; j++) {
            double freq = 1.0 / pow(c->rope_theta, (double)(2 * j) / (double)hs);
            fc[t * (hs / 2) + j] = (float)cos(t * freq);
            fc[S * (hs / 2) + t * (hs / 2) + j] = (float)sin(t * freq);
        }
    bad |= write_floats(f, fc, S * hs);
    free(fc);
    if (!c->shared_classifier) bad |= write_floats(f, m->w.wcls, V * D);
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        qh_error("cannot write model '%s': %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

/* splitmix64 + Box-Muller: a small self-contained generator for synthetic weights */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif01(uint64_t *s) { return ((splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static void fill_normal(float *p, int64_t n, double sd, uint64_t *s) {
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = unif01(s), u2 = unif01(s);
        double r = sqrt(-2.0 * log(u1));
        p[i] = (float)(sd * r * cos(2 * M_PI * u2));
        if (i + 1 < n) p[i + 1] = (float)(sd * r * sin(2 * M_PI * u2));
    }
}

int model_synth(Model *m, const ModelConfig *cin, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cin;
    if (m->cfg.rope_theta == 0) m->cfg.rope_theta = 10000.0f;
    if (m->cfg.norm_eps == 0) m->cfg.norm_eps = 1e-5f;
    if (model_config_validate(&m->cfg, "synth") != 0) return -1;
    if (m->cfg.arch != ARCH_ID_LLAMA) return qh_error("synth: only LLaMA-architecture models are made");
    int64_t n = v0_floats(&m->cfg);
    m->heap = qh_malloc((size_t)(n + bias_floats(&m->cfg)) * sizeof(float));
    v0_assign(m, m->heap, 1);
    bias_assign(m, m->heap + n);
    const ModelConfig *c = &m->cfg;
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    int64_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    fill_normal((float *)m->w.tok_emb, V * D, 1.0 / sqrt((double)D), &s);
    for (int64_t l = 0; l < L; l++) {
        BlockWeights *b = &m->w.blocks[l];
        for (int k = 0; k < LIN_COUNT; k++) {
            int o, i;
            model_linear_shape(c, (LinearKind)k, &o, &i);
            fill_normal((float *)b->lin[k], (int64_t)o * i, 1.0 / sqrt((double)i), &s);
        }
        for (int k = 0; k < LIN_COUNT; k++) /* biases large enough to matter (Qwen2's are O(1)) */
            if (b->bias[k]) {
                int o, i;
                model_linear_shape(c, (LinearKind)k, &o, &i);
                fill_normal((float *)b->bias[k], o, 0.5, &s);
            }
        float *ra = (float *)b->rms_att, *rf = (float *)b->rms_ffn;
        for (int64_t j = 0; j < D; j++) {
            ra[j] = (float)(1.0 + 0.1 * (unif01(&s) - 0.5));
            rf[j] = (float)(1.0 + 0.1 * (unif01(&s) - 0.5));
        }
    }
    float *rn = (float *)m->w.rms_final;
    for (int64_t j = 0; j < D; j++) rn[j] = 1.0f;
    /* freq tables: zeroed (unused at run time) */
    float *fc = (float *)m->w.rms_final + D;
    memset(fc, 0, (size_t)(c->seq_len * (D / c->n_heads)) * sizeof(float));
    if (!c->shared_classifier) fill_normal((float *)m->w.wcls, V * D, 1.0 / sqrt((double)D), &s);
    (void)F;
    m->path = qh_strdup("synth");
    return 0;
}
