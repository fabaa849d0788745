/* model_hash.c: the content hash of model_hash.h: the configuration text,
 * then the tensors a quantized file does not replace, each cut into 16 MiB
 * chunks hashed in parallel. */
#include "model_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

#define CHUNK_BYTES ((size_t)16 << 20)

typedef struct Segment {
    const float *p;
    size_t n; /* values */
} Segment;

/* The hashed tensors in their fixed order, each only where the family has it:
 * tok_emb (V, D); per block the norm weights rms_att (D), rms_ffn (D), their
 * LayerNorm biases (D), then the linears' biases (out) in the family's linear
 * order; rms_final (D), norm_final_bias (D); wcls (V, D) (hashed again when
 * it is the embedding: the content, not how it is stored). Returns the count
 * written to seg (at most 4 + (4 + LIN_COUNT) L). */
static int segments(const Model *m, Segment *seg) {
    const ModelConfig *c = &m->cfg;
    const size_t D = (size_t)c->dim;
    int n = 0;
#define ADD(p, len) \
    do { \
        if (p) seg[n++] = (Segment){(p), (len)}; \
    } while (0)
    ADD(m->w.tok_emb, (size_t)c->vocab_size * D);
    for (int l = 0; l < c->n_layers; l++) {
        const BlockWeights *b = &m->w.blocks[l];
        ADD(b->rms_att, D);
        ADD(b->rms_ffn, D);
        ADD(b->norm_att_bias, D);
        ADD(b->norm_ffn_bias, D);
        for (int k = 0; k < model_n_linears(c); k++)
            if (b->bias[k]) {
                int rows, cols;
                model_linear_shape(c, (LinearKind)k, &rows, &cols);
                ADD(b->bias[k], (size_t)rows);
            }
    }
    ADD(m->w.rms_final, D);
    ADD(m->w.norm_final_bias, D);
    ADD(m->w.wcls, (size_t)c->vocab_size * D);
#undef ADD
    return n;
}

void model_content_sha256(const Model *m, char hex[65]) {
    const ModelConfig *c = &m->cfg;
    Segment *seg = qh_malloc(sizeof(Segment) * (size_t)(4 + (4 + LIN_COUNT) * c->n_layers));
    int nseg = segments(m, seg);
    /* chunk k of the whole list: (segment, first byte) */
    size_t nchunks = 0;
    for (int s = 0; s < nseg; s++) nchunks += (seg[s].n * sizeof(float) + CHUNK_BYTES - 1) / CHUNK_BYTES;
    int *cseg = qh_malloc(sizeof(int) * (nchunks + 1));          /* (nchunks) */
    size_t *coff = qh_malloc(sizeof(size_t) * (nchunks + 1));    /* (nchunks) byte offset in its segment */
    unsigned char *dig = qh_malloc(32 * (nchunks + 1));          /* (nchunks, 32) */
    size_t k = 0;
    for (int s = 0; s < nseg; s++)
        for (size_t off = 0; off < seg[s].n * sizeof(float); off += CHUNK_BYTES) {
            cseg[k] = s;
            coff[k++] = off;
        }
#pragma omp parallel for schedule(dynamic) if (nchunks > 1)
    for (size_t i = 0; i < nchunks; i++) {
        const Segment *sg = &seg[cseg[i]];
        size_t bytes = sg->n * sizeof(float) - coff[i];
        if (bytes > CHUNK_BYTES) bytes = CHUNK_BYTES;
        Sha256 h;
        sha256_init(&h);
        sha256_update(&h, (const unsigned char *)sg->p + coff[i], bytes); /* little-endian fp32 as held */
        sha256_final(&h, dig + 32 * i);
    }
    char cfg[512];
    int len = snprintf(cfg, sizeof cfg,
                       "qharness model content v1: arch=%d dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
                       "n_kv_heads=%d vocab_size=%d seq_len=%d rope_theta=%.9g rope_scaling=%d rope_factor=%.9g "
                       "rope_low_freq_factor=%.9g rope_high_freq_factor=%.9g rope_original_max_pos=%d norm_eps=%.9g "
                       "qkv_bias=%d linear_bias=%d chunk_bytes=%zu\n",
                       c->arch, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                       c->seq_len, (double)c->rope_theta, c->rope_scaling, (double)c->rope_factor,
                       (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_original_max_pos,
                       (double)c->norm_eps, c->qkv_bias, c->linear_bias, CHUNK_BYTES);
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, cfg, (size_t)len);
    sha256_update(&h, dig, 32 * nchunks);
    unsigned char d[32];
    sha256_final(&h, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    free(seg);
    free(cseg);
    free(coff);
    free(dig);
}
