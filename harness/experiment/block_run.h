/* block_run.h: quantization and evaluation block by block under memory
 * budgets (issue 16), one implementation for `qharness quantize --max-memory /
 * --max-device-memory` and for sweeps with [run] max_memory /
 * max_device_memory: the memory plan (mem_plan.h) made and printed before the
 * work and refused with its parts when it cannot fit; each quantized block
 * written to the quantized-model file as it finishes (calibrate.h block_done),
 * never the whole quantized model in memory; the evaluation reading the blocks
 * back from that file one at a time (quant_io_block_loader); and the decision
 * of `max_memory = auto` (stream exactly when the plan says the model does not
 * fit the host, or the device, whole). Not here: the estimates (mem_plan.c),
 * the walks themselves (calibrate.c, stream_eval.c). */
#ifndef QH_BLOCK_RUN_H
#define QH_BLOCK_RUN_H

#include <stdio.h>

#include "calibrate.h"
#include "eval_run.h"
#include "mem_plan.h"
#include "provenance.h"

/* Does a quantization by `s` run its forward passes on the GPU (device cuda,
 * or auto with a GPU visible)? */
int block_run_on_gpu(QhDevice device);

/* The memory plan of quantizing a model of shape c by s block by block within
 * max_host bytes (0: the whole model resident on the host) and
 * s->max_device_memory on the device: 0 with *p filled (printed on `out`
 * unless NULL), -1 with a message naming the parts when it cannot fit.
 * on_gpu < 0: whether the work runs on a GPU, and its free memory, are asked
 * of the CUDA runtime (block_run_on_gpu(s->device)); 0 / 1: given, the free
 * memory unknown (the budgets alone), for checks made where no CUDA state may
 * be held (a process that forks workers afterwards). */
int block_run_quant_plan(const ModelConfig *c, const QuantRunSpec *s, size_t max_host, int on_gpu, FILE *out,
                         MemPlan *p);

/* The memory plan of evaluating windows of seqlen (at most `windows` per
 * dataset) of a model of shape c on `device`, within max_host / max_device
 * bytes (0: none): as block_run_quant_plan. decode_bytes: the host memory of
 * decoding one block of a saved quantized model (0 for the model as loaded;
 * before the file exists, quant_io_decode_bytes_planned). */
int block_run_eval_plan(const ModelConfig *c, QhDevice device, int seqlen, long windows, size_t max_host,
                        size_t max_device, size_t decode_bytes, int on_gpu, FILE *out, MemPlan *p);

/* Host memory this process may still take: MemAvailable of /proc/meminfo
 * (bytes; 0 when unknown). A cgroup's limit (Slurm's --mem) is not read: give
 * max_memory in MB there. */
size_t block_run_host_available(void);

/* `max_memory = auto` for a job whose whole-model plan is `whole` (made with
 * max_host 0): *stream 1 when the plan's host total exceeds `host_avail`
 * (bytes, 0: unknown, taken as enough) or the plan keeps one block on the
 * device at a time; `why` gets the reason in words either way. */
void block_run_auto(const MemPlan *whole, size_t host_avail, int *stream, char *why, size_t n);

/* Quantize m by spec block by block into the quantized-model file `path`
 * (quant_model_file_begin, each block written by block_done as it finishes,
 * then quant_model_file_end): the file is complete or absent. m must be
 * streamable (model_is_streamable); afterwards it holds its weights as loaded
 * again (every quantized block released). The plan is the caller's
 * (block_run_quant_plan). */
int block_run_quantize(Model *m, const Tokenizer *t, const QuantRunSpec *spec, const char *path,
                       const Provenance *prov, const char *settings_json, QuantRun *run);

/* Evaluate the quantized model of file `path` (written for m by
 * block_run_quantize or `quantize --save`) block by block: eval_run with es
 * (its max_memory / max_device_memory the budgets, es->loader set here), each
 * block decoded from the file when the walk reaches it. */
int block_run_eval_file(const Model *m, const Tokenizer *t, const char *path, const EvalSpec *es, EvalOutcome *eo);

#endif
