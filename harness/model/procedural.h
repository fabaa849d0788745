/* procedural.h: models whose weights are generated on demand from (seed,
 * layer, tensor), for benchmarks and tests of block-by-block work: a
 * LLaMA-65B-shaped model can be evaluated or quantized block by block on a
 * machine whose disk could not hold its checkpoint. The model spec
 *
 *   procedural:SHAPE[,key=value...]
 *
 * is accepted wherever --model takes a path (model_open.h). SHAPE is one of
 * procedural_shapes[] (llama-7b, llama-13b, llama-30b, llama-65b: the LLaMA-1
 * shapes of the paper's Table 1; tiny: stories260K's shape) or "custom"
 * (then dim, hidden, layers and heads must be given); the keys override it:
 * dim hidden layers heads kv_heads vocab seq_len seed shared (0/1).
 *
 * Every value is a pure function of (seed, tensor id, element index): a
 * counter-based hash (splitmix64's finalizer), so the weights do not depend on
 * the thread count nor on the order blocks are asked for, and a block's
 * linears are made without touching the rest of the model. Linears (out, in):
 * uniform with variance 1/in, one weight in 256 four times larger (outliers
 * for SpQR to find); embedding and head likewise with variance 1/D; block norms
 * 1 + U(-0.05, 0.05), the final norm 1. LLaMA family only. Not here: opening
 * by path (model_open.c). */
#ifndef QH_PROCEDURAL_H
#define QH_PROCEDURAL_H

#include <stdint.h>

#include "model.h"

#define PROCEDURAL_PREFIX "procedural:"

typedef struct ProceduralShape {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared;
} ProceduralShape;
extern const ProceduralShape procedural_shapes[]; /* ends with a NULL name */

/* Does `path` name a procedural model (starts with PROCEDURAL_PREFIX)? */
int procedural_is_spec(const char *path);

/* spec -> *c (validated) and *seed; -1 with a message naming the spec and
 * the key or shape (unknown, not an integer, out of range). */
int procedural_parse(const char *spec, ModelConfig *c, uint64_t *seed);

/* Open the procedural model `spec`: streamed 0: every weight generated now
 * into one owned buffer (model_alloc); streamed 1: the embedding, head and
 * norms now, each block's linears when model_load_block asks (m->src).
 * m->path = spec. Both give the same values. */
int procedural_open(Model *m, const char *spec, int streamed);

/* Block `layer`'s linears of the model (c, seed) into dst[k] (shapes of
 * model_linear_shape), what the streamed source's load does. */
void procedural_block_linears(const ModelConfig *c, uint64_t seed, int layer, float *const dst[LIN_COUNT]);

#endif
