/* qmatvec_cuda.h: the CUDA quantized matrix-vector kernel's entry for C
 * (qmatvec.cu): the kernel-ready layout copied to the device and wrapped as
 * a PackedLinear with device pointers (PACKED_DEVICE). In a build without
 * nvcc it refuses with a message. Not here: the layout (qlayout.h), the host
 * kernels (qmatvec.h). */
#ifndef QH_QMATVEC_CUDA_H
#define QH_QMATVEC_CUDA_H

#include "packed_linear.h"
#include "qlayout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 and *out, or -1 after a message (no CUDA in this build, no device, out of
 * device memory). L is copied, not kept. */
#if defined(QH_HAVE_CUDA) || defined(__CUDACC__)
int qmatvec_cuda_create(const QLayout *L, PackedLinear **out);
#else
#include "util.h"
static inline int qmatvec_cuda_create(const QLayout *L, PackedLinear **out) {
    (void)L, (void)out;
    return qh_error("packed_quant_create: kernel cuda: this build has no CUDA (nvcc was not found)");
}
#endif

#ifdef __cplusplus
}
#endif

#endif
