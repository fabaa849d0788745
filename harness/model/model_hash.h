/* model_hash.h: the content hash that ties a quantized-model file (and every
 * result file) to the model it was made from: SHA-256 over the model's
 * configuration and every tensor a quantized file does NOT replace (the token
 * embedding, the norms' weights and biases, the classifier, the linears'
 * biases), as the fp32 values the harness holds, in the family's order
 * (arch.h).
 *
 * Why those tensors: they are exactly what `eval --quantized` takes from the
 * base model (the linear layers come from the file; for Falcon also the
 * LayerNorm biases and the linears' biases), so equal hashes mean the
 * evaluated model is the one that was quantized, wherever its file lives and
 * in whichever format (a llama2.c checkpoint and its fp32 Hugging Face export
 * hash alike). A model that differs only in its linear layers hashes alike
 * and evaluates alike with a given quantized file. Hashing the linear layers
 * too would make `eval --quantized` read the whole checkpoint (27 GB for a
 * 7B llama2.c file) only to throw it away.
 *
 * Cost: the hashed tensors are 2 V D + (2 L + 1) D values for LLaMA (stories260K: 66K
 * values; LLaMA-7B: 262M values, 1.05 GB); they are hashed in 16 MiB chunks in
 * parallel (SHA-256 of each chunk, then SHA-256 of the configuration text and
 * the chunk digests in order), so the digest does not depend on the thread
 * count. Not here: where the hash is stored or compared (results.c, quant_io.c). */
#ifndef QH_MODEL_HASH_H
#define QH_MODEL_HASH_H

#include "model.h"

/* The digest as 64 lowercase hex digits plus a NUL. */
void model_content_sha256(const Model *m, char hex[65]);

#endif
