/* packed_quant.h: a quantized layer (QuantLayer, as a stored SpQR / GPTQ /
 * RTN file loads) as a PackedLinear (harness/forward/packed_linear.h): the
 * kernel-ready layout (qlayout.h) read by one of the matrix-vector kernels.
 * Y (nb, m) = X (nb, n) W_hat^T, W_hat = quant_layer_dequantize(q), fp32
 * accumulation, X in the original column order (the permutation is applied
 * inside, once per call). Not here: the kernels themselves (qmatvec*.c,
 * qmatvec.cu), the decode loop that calls them (harness/forward). */
#ifndef QH_PACKED_QUANT_H
#define QH_PACKED_QUANT_H

#include "packed_linear.h"
#include "quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* kernel: "ref" (scalar C), "avx2", "avx512", "cuda" (device), "auto"
 * (avx512 when the CPU has it, else avx2 when it has that, else ref); -1 with
 * a message naming the QuantLayer field and why when the layout cannot take q
 * (or the kernel is unknown / not available here). "ref", "avx2" and "avx512"
 * take host pointers (PACKED_HOST), "cuda" device ones (PACKED_DEVICE). q is
 * not kept. */
int packed_quant_create(const QuantLayer *q, const char *kernel, PackedLinear **out);

#ifdef __cplusplus
}
#endif

#endif
