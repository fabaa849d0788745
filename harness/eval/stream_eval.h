/* stream_eval.h: perplexity (SPEC 7) evaluated block by block under a memory
 * budget: the windows' activations are kept (in chunks that fit the budget)
 * and the model is walked one transformer block at a time, each block's
 * weight pages released from the read-only mmap after use, so that the
 * resident model is about one block, not all of it. CPU backend; llama2.c
 * checkpoints (mmapped) or Hugging Face directories opened streamed
 * (hf_model_open_streamed). Results equal perplexity_eval's bit for bit. Not
 * here: quantization under a budget (calibrate.c, block_done). */
#ifndef QH_STREAM_EVAL_H
#define QH_STREAM_EVAL_H

#include <stddef.h>

#include "forward.h"
#include "perplexity.h"

/* Bytes that must stay resident besides the activations: one block's weights,
 * the embedding and head, the CPU backend's scratch for windows of seqlen, one
 * window read back for the head. */
size_t stream_eval_fixed_bytes(const ModelConfig *c, int seqlen);

/* -1 with a message when m cannot be evaluated block by block (not
 * model_is_streamable, or replaced weights), seqlen < 2, or max_memory (bytes)
 * cannot hold the fixed part, decode_bytes (a loader's work_bytes) and one
 * window of seqlen. */
int stream_eval_check(const Model *m, int seqlen, size_t max_memory, size_t decode_bytes);

/* Where block l's weights come from, when not from the file as loaded (e.g.
 * decoded from a saved quantized model): load() replaces all seven linears
 * (model_set_linear; a streamed model has no others to fall back on); the walk
 * releases them again with model_release_block. work_bytes (NULL: none) sets
 * *bytes to the host memory load() holds at its peak besides the block's fp32
 * linears (e.g. one layer's codes and its decoded copy), for the memory plan
 * and the windows per pass; -1 with a message when it cannot tell. */
typedef struct StreamLoader {
    int (*load)(void *user, Model *m, int layer);
    void *user;
    int (*work_bytes)(void *user, const ModelConfig *c, size_t *bytes);
} StreamLoader;

/* The loader's work_bytes, 0 without a loader or without the entry. */
int stream_loader_work_bytes(const StreamLoader *l, const ModelConfig *c, size_t *bytes);

/* Evaluate like perplexity_eval, walking blocks one at a time. max_memory
 * (bytes) bounds fixed + activations; -1 with a message when even one window
 * does not fit. m must be streamable (model_is_streamable) with no replaced
 * weights; loader may be NULL (then each block is model_load_block'ed). */
int perplexity_eval_streamed(Model *m, const int *ids, size_t n, int seqlen, long max_windows, size_t max_memory,
                             const StreamLoader *loader, PplResult *r);

/* The same on a backend of `dev` (forward_create_opts, stream 1: one block on
 * the device at a time, within max_device bytes when > 0). The windows'
 * activations are the backend's (acts_*): all of them on the device when they
 * fit there, else chunks of the windows max_memory holds besides the fixed
 * part and the loader's work_bytes (on the device when a chunk fits there,
 * else in host memory; never all windows on the host first). Each block is
 * loaded once per chunk and handed to the backend (weights_changed).
 * r->seconds is the whole walk; r->upload_seconds the part spent uploading
 * blocks (0 on the CPU); r->windows_per_pass and r->acts_on_device where the
 * windows were kept. */
int perplexity_eval_streamed_dev(QhDevice dev, size_t max_device, Model *m, const int *ids, size_t n, int seqlen,
                                 long max_windows, size_t max_memory, const StreamLoader *loader, PplResult *r);

/* Peak resident set size of this process so far, and the current one (bytes;
 * the current one from /proc/self/statm, 0 where it is unavailable). */
size_t qh_peak_rss_bytes(void);
size_t qh_current_rss_bytes(void);

#endif
