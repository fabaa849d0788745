/* qmatvec.h: the CPU matrix-vector kernels over the kernel-ready layout
 * (qlayout.h): Y (nb, m) = Xp (nb, n_pad) W_hat^T, Xp the input already
 * permuted and zero-padded by qlayout_permute, W_hat exactly
 * quant_layer_dequantize of the layer the layout was built from (permuted
 * columns). qmatvec_ref (qmatvec_ref.c) is the scalar reference, the weights
 * decoded one by one as the decoder does and summed in double;
 * qmatvec_avx2 (qmatvec_avx2.c) the AVX2 + FMA kernel and qmatvec_avx512
 * (qmatvec_avx512.c) the AVX-512 one: fp32 accumulation, any nb (in chunks of
 * up to 8), OpenMP over rows above QH_PAR_MIN_WORK (qmatvec_simd.h, what
 * both share).
 * Not here: the layout (qlayout.c), the PackedLinear wrapper (packed_quant.c),
 * the CUDA kernel (qmatvec.cu). */
#ifndef QH_QMATVEC_H
#define QH_QMATVEC_H

#include "qlayout.h"

void qmatvec_ref(const QLayout *L, const float *Xp, int nb, float *Y);

/* 1 when this CPU runs the AVX2 kernel (AVX2, FMA and F16C), else 0. */
int qmatvec_avx2_supported(void);
/* Only when qmatvec_avx2_supported(). */
void qmatvec_avx2(const QLayout *L, const float *Xp, int nb, float *Y);

/* 1 when this CPU runs the AVX-512 kernel (AVX-512 F, DQ, BW and VL, and what the
 * AVX2 kernel needs), else 0. */
int qmatvec_avx512_supported(void);
/* Only when qmatvec_avx512_supported(). */
void qmatvec_avx512(const QLayout *L, const float *Xp, int nb, float *Y);

#endif
