/* forward.h: the seam between the harness and whatever runs the model. A
 * backend ("cpu" here, "cuda" in kernels/) implements ForwardOps over host
 * pointers; the perplexity loop, greedy generation and sequential calibration
 * only ever talk to this interface. The math each backend must reproduce is in
 * forward_math.h (plain C references). */
#ifndef QH_FORWARD_H
#define QH_FORWARD_H

#include <stddef.h>

#include "model.h"
#include "packed_linear.h"

/* Called during a block with the input of each linear sub-layer: X (T, in)
 * row-major, one row per position. For q/k/v (and gate/up) the input is the
 * same tensor: the hook is called once per sub-layer anyway, with `k` naming it. */
typedef void (*LinearInputHook)(void *user, int layer, LinearKind k, const float *X, int T);

typedef struct Forward Forward;

typedef struct ForwardOps {
    const char *name;
    void (*destroy)(Forward *f);
    /* x (T, D) <- token embeddings of tokens (T) */
    int (*embed)(Forward *f, const int *tokens, int T, float *x);
    /* x (T, D) <- block `layer` applied to x, in place; hook may be NULL */
    int (*block)(Forward *f, int layer, float *x, int T, LinearInputHook hook, void *user);
    /* nll (T-1) <- -log p(tokens[t+1] | x[t]) after the final norm and the head */
    int (*head_nll)(Forward *f, const float *x, const int *tokens, int T, double *nll);
    /* the whole window: nll (T-1) of tokens (T) */
    int (*window_nll)(Forward *f, const int *tokens, int T, double *nll);
    /* logits (V) of the last position of tokens (T) */
    int (*last_logits)(Forward *f, const int *tokens, int T, float *logits);
    /* x (T, D) <- the residual stream after the last block of tokens (T): embed,
     * then every block; head_nll(x) then equals window_nll bit for bit */
    int (*body)(Forward *f, const int *tokens, int T, float *x);
    /* logits (n, V) <- the head applied to the final norm of x (n, D), n <= max_T */
    int (*head_logits)(Forward *f, const float *x, int n, float *logits);
    /* the model's weights of `layer` changed (e.g. replaced by quantized ones) */
    int (*weights_changed)(Forward *f, int layer);

    /* Calibration activations (calibrate.c): nbuf buffers of N windows of T
     * positions, (N, T, D) each, kept where the backend computes, so that the
     * sequential pass moves no activations between host and device.
     * acts_create returns 0 when they are in host memory (the hook of
     * acts_block then receives host pointers), 1 when in device memory
     * (device pointers, valid during the call, the backend's work on them
     * complete), -1 with a message; the backend's destroy frees them. The
     * CPU backend uses the host implementation below; CUDA keeps them on the
     * GPU and falls back to the host one when they do not fit. flags
     * (ActsFlags): ACTS_QUANTIZE when a quantizer runs on the device beside
     * them (the device then keeps forward_quant_device_reserve free for it);
     * ACTS_DEVICE_ONLY: on the device or nowhere, 0 with nothing made (f->acts
     * empty) when they are not put there (always so on the CPU backend), so
     * that the caller can ask again for fewer windows. */
    int (*acts_create)(Forward *f, int nbuf, long N, int T, int flags);
    /* buffer buf, window s <- the embeddings of tokens (T) */
    int (*acts_embed)(Forward *f, int buf, long s, const int *tokens);
    /* buffer dst, window s <- buffer src, window s */
    int (*acts_copy)(Forward *f, int dst, int src, long s);
    /* block `layer` applied to buffer buf, window s, in place; hook may be NULL */
    int (*acts_block)(Forward *f, int layer, int buf, long s, LinearInputHook hook, void *user);
    /* *num += sum (a - b)^2, *den += sum b^2 over window s of buffers a and b (double) */
    int (*acts_sqdiff)(Forward *f, int a, int b, long s, double *num, double *den);

    /* Incremental decode with a KV cache (forward_decode.c has the shared
     * checks and the greedy loop). decode_reset: a cache for max_len
     * positions (1..cfg.seq_len), the position back to 0. decode: append
     * tokens (n >= 1) at position f->dec_pos (prefill n > 1, then n = 1
     * steps; n may exceed max_T, it is run in chunks of max_T), their keys and
     * values added to the cache; logits (V) <- those of the last one. Equal to
     * last_logits of the whole sequence so far up to the order of the fp32
     * sums (the same math; matrix products of other row counts). */
    int (*decode_reset)(Forward *f, int max_len);
    int (*decode)(Forward *f, const int *tokens, int n, float *logits);
    /* Where the backend's packed linears must live (PackedWhere): host for
     * the CPU backend, device for CUDA (forward_set_packed refuses others). */
    int packed_where;
    /* x (T, D) host <- buffer buf, window s (block-by-block evaluation's head, stream_eval.c) */
    int (*acts_read)(Forward *f, int buf, long s, float *x);
} ForwardOps;

/* acts_create's flags. */
typedef enum { ACTS_QUANTIZE = 1, ACTS_DEVICE_ONLY = 2 } ActsFlags;

/* Device bytes a quantizer on the GPU needs besides the block's weights and
 * the calibration activations, for the linears of c: its double-precision
 * Hessian, fp32 working copies and workspaces, 24 wide^2 bytes with wide the
 * widest linear input (dim or hidden_dim), plus 2 GiB for the libraries'
 * workspaces. The one figure both the CUDA backend (acts_create with
 * ACTS_QUANTIZE) and the memory plan (mem_plan.c) use. */
size_t forward_quant_device_reserve(const ModelConfig *c);

/* The calibration activations a backend holds: nbuf buffers of N windows of
 * T positions, one (nbuf, N, T, D) array wherever it lives; nbuf 0 for none. */
typedef struct ActsShape {
    int nbuf, T;
    long N;
} ActsShape;

/* Every backend's state begins with this. */
struct Forward {
    const ForwardOps *ops;
    const Model *model; /* borrowed */
    int max_T;          /* longest window the scratch holds */
    ActsShape acts;     /* set by acts_create (either implementation) */
    float *host_acts;   /* (nbuf, N, T, D) in host memory (the host implementation), or NULL */
    int dec_len, dec_pos; /* decode: positions the KV cache holds (0 before decode_reset), positions decoded */
    /* (L * LIN_COUNT) borrowed packed linears that replace BlockWeights.lin[k]
     * in every path of the backend (full window, block, decode), NULL entries
     * where the dense weight is used; NULL when none was set (forward_set_packed) */
    const PackedLinear **packed;
};

typedef enum { QH_DEVICE_CPU = 0, QH_DEVICE_CUDA = 1, QH_DEVICE_AUTO = 2 } QhDevice;
/* "cpu" | "cuda" | "auto" -> QhDevice; -1 with a message otherwise. */
int qh_device_parse(const char *s, QhDevice *out);
/* Is a CUDA device usable at run time (compiled in and a GPU present)? */
int qh_cuda_available(void);
/* Bytes free on the GPU now (0 without one). */
size_t qh_cuda_free_bytes(void);

/* Create a backend for `dev` (auto: cuda when available, else cpu). Asking for
 * cuda without a GPU is an error, never a silent fallback. */
int forward_create(QhDevice dev, const Model *m, int max_T, Forward **out);
/* forward_create with the device side of a memory plan (issue 16): stream 1
 * keeps one block's weights on the device at a time (the CUDA backend does so
 * by itself for a model read block by block, or one that does not fit);
 * max_device_bytes > 0 bounds what the backend allocates on the device
 * (weights, scratch, calibration activations); both ignored by the CPU. */
int forward_create_opts(QhDevice dev, const Model *m, int max_T, int stream, size_t max_device_bytes, Forward **out);
/* Does f keep one block at a time on the device? Then the seconds spent
 * uploading blocks and their count. 0 (outputs untouched) for the CPU backend. */
int forward_stream_stats(const Forward *f, double *upload_seconds, long *uploads);
void forward_destroy(Forward **f);

/* The CPU backend (BLAS + OpenMP). */
int forward_cpu_create(const Model *m, int max_T, Forward **out);
/* Bytes of scratch forward_cpu_create allocates for windows of max_T. */
size_t forward_cpu_scratch_bytes(const ModelConfig *c, int max_T);

/* Shared by the acts_* implementations (forward_acts.c): -1 with a message
 * when the shape asked of acts_create is not possible for this backend, or
 * when (buf, s) is outside f->acts (`what` names the entry); the offset in
 * floats of window s of buffer buf in the (nbuf, N, T, D) array. */
int forward_acts_shape_check(const Forward *f, int nbuf, long N, int T);
int forward_acts_index_check(const Forward *f, int buf, long s, const char *what);
size_t forward_acts_offset(const Forward *f, int buf, long s);

/* The host implementation of the acts_* entries, in terms of embed/block
 * (forward_acts.c): usable by any backend (the CUDA one when its device
 * memory is short). forward_host_acts_create returns 0 or -1; with
 * ACTS_DEVICE_ONLY in flags it makes nothing (0, f->acts empty). */
int forward_host_acts_create(Forward *f, int nbuf, long N, int T, int flags);
void forward_host_acts_destroy(Forward *f);
int forward_host_acts_embed(Forward *f, int buf, long s, const int *tokens);
int forward_host_acts_copy(Forward *f, int dst, int src, long s);
int forward_host_acts_block(Forward *f, int layer, int buf, long s, LinearInputHook hook, void *user);
int forward_host_acts_sqdiff(Forward *f, int a, int b, long s, double *num, double *den);
int forward_host_acts_read(Forward *f, int buf, long s, float *x);

/* Use p (borrowed, NULL: back to the dense weight) for linear k of block
 * `layer` in every later call. -1 with a message naming the layer and linear
 * when p's shape is not the model's, or when it lives where the backend does
 * not compute (a device PackedLinear for the CPU backend, a host one for CUDA). */
int forward_set_packed(Forward *f, int layer, LinearKind k, const PackedLinear *p);
/* The packed linear of (layer, k), or NULL. */
static inline const PackedLinear *forward_packed(const Forward *f, int layer, int k) {
    return f->packed ? f->packed[layer * LIN_COUNT + k] : NULL;
}
/* Shared checks of decode_reset / decode (-1 with a message): max_len in
 * 1..seq_len; a cache set, n >= 1, dec_pos + n <= dec_len, token ids in the
 * vocabulary. */
int forward_decode_reset_check(const Forward *f, int max_len);
int forward_decode_check(const Forward *f, const int *tokens, int n);

/* Greedy (argmax, the first of equal maxima) generation from prompt (np >=
 * 1): tokens (np + steps) <- the prompt then up to `steps` tokens, each the
 * argmax of the logits after the ones before it. use_cache 1: decode_reset
 * (np + steps positions) then decode (the prompt at once, then one token a
 * step); 0: last_logits of the whole sequence at every step (max_T must hold
 * np + steps - 1 tokens). on_token (may be NULL) sees each new token and its
 * step's logits (V), and stops the generation by returning non-zero. Returns
 * the number of tokens generated (<= steps), or -1. */
typedef int (*GreedyTokenFn)(void *user, int step, int token, const float *logits);
int forward_greedy(Forward *f, const int *prompt, int np, int steps, int use_cache, int *tokens,
                   GreedyTokenFn on_token, void *user);
/* The index of the largest of logits (V), the first of equal ones. */
int forward_argmax(const float *logits, int V);

/* Generic implementations in terms of embed/block/head_nll, usable by any backend. */
int forward_generic_window_nll(Forward *f, const int *tokens, int T, double *nll);
int forward_generic_body(Forward *f, const int *tokens, int T, float *x);

/* Model FLOPs of one window of T tokens (2 per multiply-add): linear layers and
 * head 2*T*params, attention scores and values 2*2*T*(T+1)/2*hs per head per layer. */
double forward_flops(const ModelConfig *c, int T);

#endif
