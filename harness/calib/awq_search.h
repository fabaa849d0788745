/* awq_search.h: private to harness/calib: AWQ's block-level search (awq_search.c)
 * and the seam it shares with calibrate.c (quantizing one sub-layer into the
 * run and the model). */
#ifndef QH_AWQ_SEARCH_H
#define QH_AWQ_SEARCH_H

#include "calibrate.h"

/* What AWQ adds to a sub-layer's quantization: the per input channel scales
 * s (n) and the clipping search's input sample X (ntok, n) (NULL, 0: none). */
typedef struct AwqLayerInput {
    const float *scale; /* (n) */
    const float *X;     /* (ntok, n) */
    int ntok;
} AwqLayerInput;

/* Quantize sub-layer (l, k) of m into run->layers / run->reports (Hessian H
 * may be NULL; awq NULL for every method but AWQ) and put its decoded weights
 * into the model (calibrate.c). */
int calib_quantize_sublayer(Model *m, Forward *f, const LayerQuantizer *lq, const QuantRunSpec *spec, int l,
                            LinearKind k, const double *H, const AwqLayerInput *awq, QuantRun *run);

/* The calibration activation buffers of the block (forward.h acts_*): the
 * block's inputs (kept), a scratch buffer, and the one that receives the
 * full-precision block's outputs. */
typedef struct AwqBuffers {
    int in, scratch, fp;
} AwqBuffers;

/* Quantize block l with AWQ (see awq_search.c): fills b->fp with the
 * full-precision block's outputs of every window, then searches and
 * quantizes the block's linears group by group; run->awq_ratio records the
 * exponents chosen. 0, or -1 after a message. */
int awq_quantize_block(Model *m, Forward *f, const LayerQuantizer *lq, const QuantRunSpec *spec, int l,
                       const AwqBuffers *b, QuantRun *run);

#endif
