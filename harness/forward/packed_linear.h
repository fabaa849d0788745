/* packed_linear.h: a linear sub-layer whose weights only a kernel reads (a
 * quantized model in a kernel-ready layout: SpQR / GPTQ / RTN codes in their
 * stored bits, kernels/), as the forward backends see it. A backend calls it
 * where it would multiply by BlockWeights.lin[k]; a bias, where the family has
 * one, is still added by the backend. Implementations live in higher layers
 * (kernels/: a plain C _ref, AVX2, CUDA) and are plugged into a backend by the
 * caller (forward_set_packed), so this layer never names them. */
#ifndef QH_PACKED_LINEAR_H
#define QH_PACKED_LINEAR_H

#include <stddef.h>

typedef struct PackedLinear PackedLinear;

/* Where matmul's X and Y live. */
typedef enum { PACKED_HOST = 0, PACKED_DEVICE = 1 } PackedWhere;

typedef struct PackedLinearOps {
    const char *name; /* the kernel, e.g. "quant-ref", "quant-avx2", "quant-avx512", "quant-cuda" */
    /* Y (nb, m) <- X (nb, n) W^T for nb >= 1 input vectors, accumulated in fp32.
     * PACKED_HOST: host pointers, done on return. PACKED_DEVICE: device
     * pointers, the work enqueued on `stream` (a cudaStream_t; NULL: the
     * default stream). 0, or -1 with a message. */
    int (*matmul)(const PackedLinear *p, const float *X, int nb, float *Y, void *stream);
    void (*destroy)(PackedLinear *p);
} PackedLinearOps;

/* Every implementation's state begins with this. */
struct PackedLinear {
    const PackedLinearOps *ops;
    int m, n;     /* W is (m, n): out, in */
    int where;    /* PackedWhere */
    size_t bytes; /* what the packed weights occupy where they live (for bandwidth figures) */
};

#endif
