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
 * cannot hold the fixed part and one window of seqlen. */
int stream_eval_check(const Model *m, int seqlen, size_t max_memory);

/* Where block l's weights come from, when not from the file as loaded (e.g.
 * decoded from a saved quantized model): load() replaces all seven linears
 * (model_set_linear; a streamed model has no others to fall back on); the walk
 * releases them again with model_release_block. */
typedef struct StreamLoader {
    int (*load)(void *user, Model *m, int layer);
    void *user;
} StreamLoader;

/* Evaluate like perplexity_eval, walking blocks one at a time. max_memory
 * (bytes) bounds fixed + activations; -1 with a message when even one window
 * does not fit. m must be streamable (model_is_streamable) with no replaced
 * weights; loader may be NULL (then each block is model_load_block'ed). */
int perplexity_eval_streamed(Model *m, const int *ids, size_t n, int seqlen, long max_windows, size_t max_memory,
                             const StreamLoader *loader, PplResult *r);

/* The same on a backend of `dev` (forward_create_opts, stream 1: one block on
 * the device at a time, within max_device bytes when > 0). The windows'
 * activations are the backend's (acts_*): all of them on the device when they
 * fit there, else in host chunks within max_memory. Each block is loaded once
 * per chunk and handed to the backend (weights_changed). r->seconds is the
 * whole walk; r->upload_seconds the part spent uploading blocks (0 on the
 * CPU). */
int perplexity_eval_streamed_dev(QhDevice dev, size_t max_device, Model *m, const int *ids, size_t n, int seqlen,
                                 long max_windows, size_t max_memory, const StreamLoader *loader, PplResult *r);

/* Peak resident set size of this process so far, and the current one (bytes;
 * the current one from /proc/self/statm, 0 where it is unavailable). */
size_t qh_peak_rss_bytes(void);
size_t qh_current_rss_bytes(void);

#endif
