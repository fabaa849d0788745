/* block_run.c: quantization and evaluation block by block under memory
 * budgets, shared by `quantize` and sweeps (see block_run.h). */
#include "block_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant_io.h"
#include "util.h"

int block_run_on_gpu(QhDevice device) {
    return device == QH_DEVICE_CUDA || (device == QH_DEVICE_AUTO && qh_cuda_available());
}

/* On the host the calibration activations (inputs, outputs, full-precision
 * outputs) unless the GPU holds them, one block's weights as loaded and as
 * quantized, the Hessians of its four distinct inputs and the engine's working
 * copies (on the CPU), the forward scratch, embedding and head; on the GPU
 * what the CUDA backend carves (mem_plan.c). */
int block_run_quant_plan(const ModelConfig *c, const QuantRunSpec *s, size_t max_host, int on_gpu, FILE *out,
                         MemPlan *p) {
    const QuantMethod *qm = quant_method_find(s->method);
    int calib = (qm && (qm->caps & QUANT_CAP_CALIB)) || (s->calib && strcmp(s->calib, "none") != 0);
    int gpu = on_gpu < 0 ? block_run_on_gpu(s->device) : on_gpu;
    MemPlanSpec ps = {.c = c, .quantize = 1, .hessians = calib, .seqlen = s->seqlen, .windows = s->nsamples,
                      .on_device = gpu, .device_wsize = mem_plan_device_wsize(), .max_host = max_host,
                      .max_device = s->max_device_memory,
                      .device_free = gpu && on_gpu < 0 ? qh_cuda_free_bytes() : 0};
    if (mem_plan_make(&ps, p) != 0) return -1;
    if (out) mem_plan_print(out, &ps, p);
    return 0;
}

int block_run_eval_plan(const ModelConfig *c, QhDevice device, int seqlen, long windows, size_t max_host,
                        size_t max_device, size_t decode_bytes, int on_gpu, FILE *out, MemPlan *p) {
    int gpu = on_gpu < 0 ? block_run_on_gpu(device) : on_gpu;
    MemPlanSpec ps = {.c = c, .seqlen = seqlen, .windows = windows, .on_device = gpu, .decode_bytes = decode_bytes,
                      .device_wsize = mem_plan_device_wsize(), .max_host = max_host, .max_device = max_device,
                      .device_free = gpu && on_gpu < 0 ? qh_cuda_free_bytes() : 0};
    if (mem_plan_make(&ps, p) != 0) return -1;
    if (out) mem_plan_print(out, &ps, p);
    return 0;
}

size_t block_run_host_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (size_t)kb << 10;
}

void block_run_auto(const MemPlan *whole, size_t host_avail, int *stream, char *why, size_t n) {
    double mb = 1048576.0;
    if (host_avail && whole->host > host_avail) {
        *stream = 1;
        snprintf(why, n, "streamed (auto: the whole-model plan needs %.0f MB of host memory, %.0f MB available)",
                 whole->host / mb, host_avail / mb);
    } else if (whole->stream_device) {
        *stream = 1;
        snprintf(why, n, "streamed (auto: the model does not fit the device whole)");
    } else {
        *stream = 0;
        snprintf(why, n, "whole model (auto: the plan needs %.0f MB of host memory, %s)", whole->host / mb,
                 host_avail ? "within what is available" : "available memory unknown");
    }
}

/* Each finished block goes to the open quantized-model file. */
typedef struct BlockWriter {
    H5File *f;
    int64_t bytes;
} BlockWriter;

static int write_block(void *user, const struct QuantRun *run, int layer) {
    BlockWriter *w = user;
    return quant_io_write_block(w->f, "/", run, layer, &w->bytes);
}

int block_run_quantize(Model *m, const Tokenizer *t, const QuantRunSpec *spec, const char *path,
                       const Provenance *prov, const char *settings_json, QuantRun *run) {
    if (!model_is_streamable(m))
        return qh_error("quantizing block by block needs a checkpoint read block by block (a llama2.c file, a Hugging "
                        "Face directory or a procedural model), not '%s'", m->path ? m->path : "(in memory)");
    BlockWriter bw = {0};
    if (quant_model_file_begin(path, m, spec, prov, settings_json, &bw.f) != 0) return -1;
    QuantRunSpec s = *spec;
    s.block_done = write_block;
    s.block_user = &bw;
    int rc = quantize_model(m, t, &s, run);
    if (rc == 0) {
        rc = quant_model_file_end(&bw.f, run, bw.bytes);
        if (rc != 0) quant_run_free(run);
    } else {
        h5_abort(&bw.f);
    }
    return rc;
}

int block_run_eval_file(const Model *m, const Tokenizer *t, const char *path, const EvalSpec *es, EvalOutcome *eo) {
    memset(eo, 0, sizeof *eo);
    H5File *qf;
    if (h5_open_read(path, &qf) != 0) return -1;
    StreamLoader loader = quant_io_block_loader(qf);
    EvalSpec s = *es;
    s.loader = &loader;
    int rc = eval_run(m, t, &s, eo);
    h5_commit(&qf);
    return rc;
}
