/* decode_compare.h: what the decode tests share (tests/test_decode.c on the
 * CPU, tests/gpu/test_gpu_decode.c on CUDA, tests/test_forward.c's random
 * inputs): a seeded splitmix64 step, the deviation of one row of logits
 * from a reference row, and the small synthetic GQA model both decode
 * tests run first. Header-only. Not here: the backends or the
 * tolerances (each test states its own). */
#ifndef QH_DECODE_COMPARE_H
#define QH_DECODE_COMPARE_H

#include <math.h>
#include <stdint.h>

#include "model.h"

/* splitmix64: advances *state, returns the next 64 random bits */
static inline uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* max |a - b| / max |b| over a row of V logits (b the reference; 1 for an all-zero b) */
static inline double logits_row_dev(const float *a, const float *b, int V) {
    double mx = 0, scale = 0;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > mx) mx = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return mx / (scale > 0 ? scale : 1);
}

/* A synthetic GQA config (for model_synth): H 6, Hkv 2 (head size 8), 3
 * layers, odd hidden (100) and vocabulary (97), unshared classifier,
 * context 64. */
static inline ModelConfig decode_gqa_config(void) {
    ModelConfig c = {0};
    c.dim = 48, c.hidden_dim = 100, c.n_layers = 3, c.n_heads = 6, c.n_kv_heads = 2, c.vocab_size = 97;
    c.seq_len = 64, c.shared_classifier = 0, c.rope_theta = 10000.0f, c.norm_eps = 1e-5f;
    return c;
}

#endif
