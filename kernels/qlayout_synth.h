/* qlayout_synth.h: synthetic quantized layers in the formats the kernel
 * benchmarks time (issue 18): random codes, statistics and outliers in the
 * deployment form (fp16 values), as a QuantLayer that qlayout_build /
 * packed_quant_create take. A kernel's time does not depend on the values, so
 * LLaMA-7B / 65B shapes need no quantization. Used by bench/bench_qmatvec.c
 * and kernels/bench/bench_gpu_qmatvec.c, so both time the same formats. Not
 * here: real quantized layers (quant/), correctness (tests/test_qmatvec.c). */
#ifndef QH_QLAYOUT_SYNTH_H
#define QH_QLAYOUT_SYNTH_H

#include <stdint.h>

#include "quant.h"

typedef struct {
    const char *name;
    int wbits, groupsize;
    int spqr;        /* 1: 3-bit statistics with a second level of 16 rows (SPEC 2), else fp16 values */
    int act_order;   /* 1: a random permutation */
    double outliers; /* fraction of the weights, spread evenly over the rows */
} QSynthFormat;

/* The benchmarks' formats: SpQR 3-bit 16/16 with 3-bit statistics, 0% and 1%
 * outliers; RTN 4-bit g128; GPTQ 4-bit g128 with act_order. */
extern const QSynthFormat qsynth_formats[];
extern const int qsynth_nformats;

/* q (m, n) of format f, from seed; free with quant_layer_free. */
void qsynth_layer(const QSynthFormat *f, int m, int n, uint64_t seed, QuantLayer *q);

#endif
