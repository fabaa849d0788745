/* half.h: the 16-bit float conversions of the whole project, both directions
 * for IEEE half (fp16) and bfloat16 (bf16), one definition each: the quantized
 * statistics (quant/), model files (safetensors.c), the CUDA path's host
 * references (kernels/) and the tests all call these.
 * Not here: the CUDA device conversions (cuda_fp16.h intrinsics). */
#ifndef QH_HALF_H
#define QH_HALF_H

#include <stdint.h>

/* float <-> IEEE half, round-to-nearest-even. */
uint16_t qh_f32_to_f16(float f);
float qh_f16_to_f32(uint16_t h);

/* bf16 <-> fp32: widening is exact; narrowing rounds to nearest even (NaN stays NaN). */
float qh_bf16_to_f32(uint16_t h);
uint16_t qh_f32_to_bf16(float f);

#endif
