/* procedural.c: models generated on demand from (seed, layer, tensor) (see
 * procedural.h): the spec parser, the counter-based generator, and the two
 * ways to open one (whole, or block by block through a BlockSource). */
#include "procedural.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const ProceduralShape procedural_shapes[] = {
    /* name        dim    hidden  L   H   Hkv  V      S     shared */
    {"tiny", 64, 172, 5, 8, 4, 512, 512, 1}, /* stories260K's shape */
    {"llama-7b", 4096, 11008, 32, 32, 32, 32000, 2048, 0},
    {"llama-13b", 5120, 13824, 40, 40, 40, 32000, 2048, 0},
    {"llama-30b", 6656, 17920, 60, 52, 52, 32000, 2048, 0},
    {"llama-65b", 8192, 22016, 80, 64, 64, 32000, 2048, 0},
    {"custom", 0, 0, 0, 0, 0, 32000, 2048, 0},
    {NULL, 0, 0, 0, 0, 0, 0, 0, 0},
};

int procedural_is_spec(const char *path) {
    return path && !strncmp(path, PROCEDURAL_PREFIX, strlen(PROCEDURAL_PREFIX));
}

/* ---- the spec ----------------------------------------------------------------------- */

int procedural_parse(const char *spec, ModelConfig *c, uint64_t *seed) {
    if (!procedural_is_spec(spec)) return qh_error("'%s' is not a procedural model (expected %sSHAPE[,key=value...])",
                                                   spec ? spec : "(null)", PROCEDURAL_PREFIX);
    char *copy = qh_strdup(spec + strlen(PROCEDURAL_PREFIX)), *save = NULL;
    char *shape = strtok_r(copy, ",", &save);
    const ProceduralShape *p = NULL;
    for (const ProceduralShape *q = procedural_shapes; shape && q->name; q++)
        if (!strcmp(q->name, shape)) p = q;
    if (!p) {
        char names[256] = "";
        for (const ProceduralShape *q = procedural_shapes; q->name; q++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", q == procedural_shapes ? "" : ", ",
                     q->name);
        int rc = qh_error("model '%s': unknown procedural shape '%s' (expected one of %s)", spec, shape ? shape : "",
                          names);
        free(copy);
        return rc;
    }
    memset(c, 0, sizeof *c);
    c->arch = ARCH_ID_LLAMA;
    c->dim = p->dim, c->hidden_dim = p->hidden, c->n_layers = p->layers, c->n_heads = p->heads;
    c->n_kv_heads = p->kv_heads, c->vocab_size = p->vocab, c->seq_len = p->seq_len, c->shared_classifier = p->shared;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-6f;
    *seed = 0;
    int rc = 0, kv_given = 0;
    for (char *kv = strtok_r(NULL, ",", &save); kv && rc == 0; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = qh_error("model '%s': '%s' is not key=value", spec, kv);
            break;
        }
        *eq = 0;
        const char *val = eq + 1;
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (!*val || *end || errno || v < 0 || v > INT_MAX) {
            rc = qh_error("model '%s': %s = '%s' is not an integer in 0..%d", spec, kv, val, INT_MAX);
            break;
        }
        if (!strcmp(kv, "dim")) c->dim = (int)v;
        else if (!strcmp(kv, "hidden")) c->hidden_dim = (int)v;
        else if (!strcmp(kv, "layers")) c->n_layers = (int)v;
        else if (!strcmp(kv, "heads")) c->n_heads = (int)v;
        else if (!strcmp(kv, "kv_heads")) c->n_kv_heads = (int)v, kv_given = 1;
        else if (!strcmp(kv, "vocab")) c->vocab_size = (int)v;
        else if (!strcmp(kv, "seq_len")) c->seq_len = (int)v;
        else if (!strcmp(kv, "seed")) *seed = (uint64_t)v;
        else if (!strcmp(kv, "shared") && v <= 1) c->shared_classifier = (int)v;
        else if (!strcmp(kv, "shared")) rc = qh_error("model '%s': shared = %lld, expected 0 or 1", spec, v);
        else rc = qh_error("model '%s': unknown key '%s' (expected dim, hidden, layers, heads, kv_heads, vocab, "
                           "seq_len, seed or shared)", spec, kv);
    }
    /* a shape's heads changed without kv_heads: plain multi-head attention, as the LLaMA-1 shapes */
    if (rc == 0 && !kv_given && p->kv_heads == p->heads) c->n_kv_heads = c->n_heads;
    free(copy);
    if (rc == 0) rc = model_config_validate(c, spec);
    return rc;
}

/* ---- the generator -------------------------------------------------------------------- */

/* splitmix64's output function: a bijective 64-bit mix. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The key of tensor `id` of layer `layer` (-1: not in a block). */
static uint64_t tensor_key(uint64_t seed, int layer, int id) {
    return mix64(mix64(seed + 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(layer + 1) << 32) ^ (uint64_t)id);
}

/* Tensor ids (per layer): the linears are 0..LIN_COUNT-1. */
enum { ID_NORM_ATT = 16, ID_NORM_FFN, ID_EMB, ID_HEAD };

/* p (n) <- a * (2u - 1) with u in (0, 1) from element i's hash; one element
 * in 256 times 4. sd is the standard deviation of the plain elements. */
static void fill(float *p, int64_t n, double sd, uint64_t key) {
    const float a = (float)(sd * sqrt(3.0)), scale = 1.0f / 16777216.0f;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = mix64(key ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull));
        float u = ((float)(z >> 40) + 0.5f) * scale; /* 24 bits: exact in fp32 */
        float v = a * (2.0f * u - 1.0f);
        p[i] = (z & 0xff) == 0 ? 4.0f * v : v;
    }
}

/* p (n) <- 1 + U(-0.05, 0.05) */
static void fill_norm(float *p, int64_t n, uint64_t key) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = mix64(key ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull));
        p[i] = 1.0f + 0.1f * (((float)(z >> 40) + 0.5f) * (1.0f / 16777216.0f) - 0.5f);
    }
}

void procedural_block_linears(const ModelConfig *c, uint64_t seed, int layer, float *const dst[LIN_COUNT]) {
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        fill(dst[k], (int64_t)o * i, 1.0 / sqrt((double)i), tensor_key(seed, layer, k));
    }
}

/* Everything but the block linears: embedding, head, norms. */
static void fill_rest(Model *m, uint64_t seed) {
    const ModelConfig *c = &m->cfg;
    int64_t D = c->dim, V = c->vocab_size;
    fill((float *)m->w.tok_emb, V * D, 1.0 / sqrt((double)D), tensor_key(seed, -1, ID_EMB));
    if (!c->shared_classifier) fill((float *)m->w.wcls, V * D, 1.0 / sqrt((double)D), tensor_key(seed, -1, ID_HEAD));
    float *rn = (float *)m->w.rms_final;
    for (int64_t j = 0; j < D; j++) rn[j] = 1.0f;
    for (int l = 0; l < c->n_layers; l++) {
        fill_norm((float *)m->w.blocks[l].rms_att, D, tensor_key(seed, l, ID_NORM_ATT));
        fill_norm((float *)m->w.blocks[l].rms_ffn, D, tensor_key(seed, l, ID_NORM_FFN));
    }
}

/* ---- opening ---------------------------------------------------------------------------- */

typedef struct ProcSource {
    uint64_t seed;
} ProcSource;

static int proc_load(void *user, const ModelConfig *c, int layer, float *const dst[LIN_COUNT]) {
    procedural_block_linears(c, ((ProcSource *)user)->seed, layer, dst);
    return 0;
}

static void proc_close(void *user) { free(user); }

int procedural_open(Model *m, const char *spec, int streamed) {
    memset(m, 0, sizeof *m);
    ModelConfig c;
    uint64_t seed;
    if (procedural_parse(spec, &c, &seed) != 0) return -1;
    if ((streamed ? model_alloc_streamed(m, &c, spec) : model_alloc(m, &c, spec)) != 0) return -1;
    fill_rest(m, seed);
    if (!streamed) {
        for (int l = 0; l < c.n_layers; l++) {
            float *dst[LIN_COUNT] = {0};
            for (int k = 0; k < model_n_linears(&c); k++) dst[k] = (float *)m->w.blocks[l].lin[k];
            procedural_block_linears(&c, seed, l, dst);
        }
        return 0;
    }
    ProcSource *s = qh_calloc(1, sizeof *s);
    s->seed = seed;
    m->src = (BlockSource){proc_load, proc_close, s};
    return 0;
}
