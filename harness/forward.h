/* forward.h: the seam between the harness and whatever runs the model. A
 * backend ("cpu" here, "cuda" in kernels/) implements ForwardOps over host
 * pointers; the perplexity loop, greedy generation and sequential calibration
 * only ever talk to this interface. The math each backend must reproduce is in
 * forward_math.h (plain C references). */
#ifndef QH_FORWARD_H
#define QH_FORWARD_H

#include <stddef.h>

#include "model.h"

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
    /* the model's weights of `layer` changed (e.g. replaced by quantized ones) */
    int (*weights_changed)(Forward *f, int layer);
    /* Optional (NULL on the CPU): like block, but the hook receives the
     * backend's DEVICE pointers (valid during the call, the backend's work on
     * them complete), so that a consumer on the same device (the GPU Hessian
     * of calibrate.c) needs no host copies. */
    int (*block_dev_hook)(Forward *f, int layer, float *x, int T, LinearInputHook hook, void *user);
} ForwardOps;

/* Every backend's state begins with this. */
struct Forward {
    const ForwardOps *ops;
    const Model *model; /* borrowed */
    int max_T;          /* longest window the scratch holds */
};

typedef enum { QH_DEVICE_CPU = 0, QH_DEVICE_CUDA = 1, QH_DEVICE_AUTO = 2 } QhDevice;
/* "cpu" | "cuda" | "auto" -> QhDevice; -1 with a message otherwise. */
int qh_device_parse(const char *s, QhDevice *out);
/* Is a CUDA device usable at run time (compiled in and a GPU present)? */
int qh_cuda_available(void);

/* Create a backend for `dev` (auto: cuda when available, else cpu). Asking for
 * cuda without a GPU is an error, never a silent fallback. */
int forward_create(QhDevice dev, const Model *m, int max_T, Forward **out);
void forward_destroy(Forward **f);

/* The CPU backend (BLAS + OpenMP). */
int forward_cpu_create(const Model *m, int max_T, Forward **out);
/* Bytes of scratch forward_cpu_create allocates for windows of max_T. */
size_t forward_cpu_scratch_bytes(const ModelConfig *c, int max_T);

/* Generic implementations in terms of embed/block/head_nll, usable by any backend. */
int forward_generic_window_nll(Forward *f, const int *tokens, int T, double *nll);

/* Model FLOPs of one window of T tokens (2 per multiply-add): linear layers and
 * head 2*T*params, attention scores and values 2*2*T*(T+1)/2*hs per head per layer. */
double forward_flops(const ModelConfig *c, int T);

#endif
