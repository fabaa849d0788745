/* quant_packed.h: a quantized-model file's linears as packed linears
 * (harness/forward/packed_linear.h) for the forward backends: every block's
 * linears read from the file as QuantLayers and handed to a constructor
 * (kernels/packed_quant.h's packed_quant_create, plugged in by the caller,
 * so that tests can hand in a double), then set in a Forward. This is what
 * `--kernels` of generate and speed selects: a kernel by name, "auto", or
 * "decoded" (no packed linears: the decoded fp32 weights quant_model_load
 * put in the model). Not here: the kernels (kernels/), the file format
 * (quant_io.h). */
#ifndef QH_QUANT_PACKED_H
#define QH_QUANT_PACKED_H

#include <stddef.h>

#include "forward.h"
#include "packed_linear.h"
#include "quant.h"

/* kernels/packed_quant.h's constructor: -1 with a message naming the
 * QuantLayer field when the kernel cannot take q. */
typedef int (*PackedCreateFn)(const QuantLayer *q, const char *kernel, PackedLinear **out);

typedef struct PackedModel {
    int n_layers;
    PackedLinear **lin; /* (L * LIN_COUNT) owned, NULL where none; all NULL when decoded */
    char kernel[32];    /* the kernel that built them, or "decoded" (asked, or auto's fallback) */
    size_t bytes;       /* the packed weights' bytes (PackedLinear.bytes summed) */
} PackedModel;

/* The --kernels choices, comma-free: "ref|avx2|avx512|cuda|auto|decoded". */
#define QUANT_KERNELS_CHOICES "ref|avx2|avx512|cuda|auto|decoded"
/* 0 when s is one of them, else -1 with a message naming `what` (the option or key). */
int quant_kernels_check(const char *s, const char *what);

/* Build pm for the quantized-model file `path`, whose model m is (as
 * quant_model_load opened it: shapes and stats already checked). kernels
 * "decoded": nothing built. "auto": the device's kernel ("cuda" where
 * where == PACKED_DEVICE, else create's "auto"); a layer the kernel cannot
 * take (the constructor's message names the field) then makes the whole
 * model fall back to its decoded weights, with a warning naming the layer,
 * pm->kernel "decoded". An explicit kernel never falls back: -1. A wq / wk
 * stored in its checkpoint's rotate-half row order is refused by name (the
 * kernels compute rows in stored order). */
/* create NULL: kernels/packed_quant.h's packed_quant_create. */
int quant_packed_build(const char *path, const Model *m, PackedCreateFn create, const char *kernels, int where,
                       PackedModel *pm);
/* forward_set_packed for every linear pm holds; 0 or -1. */
int quant_packed_apply(const PackedModel *pm, Forward *f);
void quant_packed_free(PackedModel *pm);

#endif
