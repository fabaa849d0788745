/* mem_plan.h: where a block-by-block evaluation or quantization keeps what
 * (issue 16): the estimate by part (block weights, embedding / head,
 * activations of the windows, forward scratch, Hessians and the quantizer's
 * working copies, the decoding of a saved quantized block, libraries) on the
 * host and on the device, against --max-memory (host) and --max-device-memory
 * (device), printed before the work starts and refused with its parts when it
 * cannot fit. A budget too small for one block names the block's bytes. The
 * figures are computed from the shapes (ModelConfig; a quantized file's layer
 * shapes for its decoding): byte counts of the tensors each side allocates,
 * not measurements. Not here: the work itself (stream_eval.c, calibrate.c). */
#ifndef QH_MEM_PLAN_H
#define QH_MEM_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"

enum { PLAN_MAX_PARTS = 8 };

typedef struct MemPlanSpec {
    const ModelConfig *c;
    int quantize;     /* 0: evaluation, 1: quantization */
    int hessians;     /* quantization with calibration (Hessians, three activation buffers) */
    int seqlen;       /* window length */
    long windows;     /* evaluation windows, or calibration samples */
    int on_device;    /* the work runs on the GPU */
    int device_wsize; /* bytes per linear weight on the device (4, or 2 in the 16-bit modes) */
    size_t max_host;  /* bytes; 0: no host budget (the whole model resident on the host) */
    size_t max_device; /* bytes; 0: no device budget given */
    size_t device_free; /* bytes free on the GPU (0: unknown) */
    size_t decode_bytes; /* evaluation of a saved quantized model: host bytes its loader holds while decoding a
                          * block (StreamLoader work_bytes; 0: blocks read as they are) */
} MemPlanSpec;

typedef struct MemPart {
    const char *name;
    size_t host, device;
} MemPart;

typedef struct MemPlan {
    MemPart part[PLAN_MAX_PARTS];
    int n;
    size_t host, device;     /* totals */
    size_t block_bytes;      /* one block's linears and norms in fp32 (host) */
    size_t model_bytes;      /* every weight in fp32 */
    int stream_device;       /* one block on the device at a time (the whole model does not fit it) */
    int acts_on_device;      /* the windows' activations on the device */
    long chunk;              /* windows per pass on the host (evaluation; all when on the device) */
} MemPlan;

/* Bytes of a linear weight on the GPU: 2 when QH_CUDA_MATH is fp16 or bf16
 * (forward_cuda.cu stores them so), else 4. */
int mem_plan_device_wsize(void);

/* Compute the plan; -1 with a message (the parts named, and the block's bytes
 * when the budget cannot hold one block) when it cannot fit. */
int mem_plan_make(const MemPlanSpec *s, MemPlan *p);

/* The plan as a table: one line per part, host and device MB, and the totals
 * against the budgets. */
void mem_plan_print(FILE *out, const MemPlanSpec *s, const MemPlan *p);

#endif
