/* hf_model.h: Hugging Face LLaMA-family checkpoint directories, read into and
 * written from the harness's Model (model.h):
 *   DIR/config.json                       LlamaForCausalLM, MistralForCausalLM or
 *                                         Qwen2ForCausalLM (q/k/v biases)
 *   DIR/model.safetensors                 one file, or
 *   DIR/model.safetensors.index.json      {"weight_map": {tensor: shard file}}
 *                                         with the shards beside it,
 * tensors in F32, F16 or BF16 (converted to owned fp32 exactly). Everything is
 * validated (config keys and types, every safetensors header, tensor names and
 * shapes against the config, no tensor missing or given twice) before any
 * weight memory is allocated. HF checkpoints use the "rotate half" rotary
 * convention; the harness's forward pass the interleaved one of llama2.c: the
 * rows of wq and wk are permuted at load and back at save (hf_qk_hf_row,
 * model.h), and cfg.qk_rotate_half records it.
 * hf_model_open_streamed keeps the shards mapped and converts a block's
 * linears only when asked (model_load_block). Not here: the HF tokenizer files (tokenizer.json / tokenizer.model), rope
 * scaling and biases other than Qwen2's q/k/v ones (refused by name). */
#ifndef QH_HF_MODEL_H
#define QH_HF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "safetensors.h"

/* config.json text[0..len) -> *c. -1 with a message naming `what` and the key
 * (missing, wrong type, out of range, unsupported architecture or rope_scaling). */
int hf_config_parse(const char *text, size_t len, const char *what, ModelConfig *c);

/* Is `path` a directory holding a config.json? */
int hf_is_model_dir(const char *path);

/* Load the Hugging Face directory `dir` into *m (owned fp32 weights, m->map
 * NULL, m->path = dir). -1 with a message naming the file and the key / tensor;
 * *m is then empty. */
int hf_model_load(Model *m, const char *dir);

/* The same, for block-by-block work within a memory budget: everything is
 * validated as by hf_model_load, but only the embedding, head, norms and biases
 * are converted now; each block's linears are converted from the mmapped
 * shards when model_load_block asks for them (and those file pages dropped),
 * so that about one block is resident. */
int hf_model_open_streamed(Model *m, const char *dir);

/* The same from memory: config.json text and the bytes of one safetensors
 * file; `what` names them in messages. For tests and the fuzz target. */
int hf_model_load_mem(Model *m, const char *config, size_t config_len, const void *st, size_t st_len,
                      const char *what);

typedef struct HfSaveOptions {
    StDtype dtype;            /* ST_F32, ST_F16 or ST_BF16 */
    uint64_t max_shard_bytes; /* 0: one model.safetensors; else shards of at most this many data
                                 bytes (a tensor is never split; one larger tensor gets a shard of
                                 its own) and model.safetensors.index.json */
    const char *tokenizer;    /* a tokenizer file copied to DIR/tokenizer.json (*.json), DIR/tokenizer.model
                                 (*.model) or DIR/tokenizer.bin (else), or NULL */
} HfSaveOptions;

/* Write *m as the Hugging Face directory `dir` (which must not exist): into
 * DIR.tmp.<pid>, renamed to DIR at the end; on failure nothing is left. */
int hf_model_save(const Model *m, const char *dir, const HfSaveOptions *o);

#endif
