/* mem_plan.c: the memory plan of block-by-block work (see mem_plan.h). The
 * host side counts what stream_eval.c (evaluation) and calibrate.c with
 * block_done (quantization) allocate; the device side what the CUDA backend
 * carves (forward_cuda.cu: weights, scratch for one window, calibration
 * activations, the quantizer's reserve: forward_quant_device_reserve, when
 * quantizing). */
#include "mem_plan.h"

#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "stream_eval.h"
#include "util.h"

#define MIB(x) ((double)(x) / 1048576.0)
#define GIB ((size_t)1 << 30)

static void add(MemPlan *p, const char *name, size_t host, size_t device) {
    p->part[p->n++] = (MemPart){name, host, device};
    p->host += host;
    p->device += device;
}

/* The CUDA backend's scratch for windows of T (carve_activations): residual,
 * normed input, q, attention output, k, v, two MLP tensors, the 16-bit input,
 * attention scores (at most 1 GiB) and logits (at most 512 MiB). */
static size_t device_scratch(const ModelConfig *c, size_t T, size_t wsize) {
    size_t D = c->dim, KV = (size_t)model_kv_dim(c), F = c->hidden_dim, V = c->vocab_size, H = c->n_kv_heads;
    size_t scores = H * T * T * 4 < GIB ? H * T * T * 4 : GIB, logits = T * V * 4 < (GIB >> 1) ? T * V * 4 : GIB >> 1;
    return T * (4 * (4 * D + 2 * KV + 2 * F) + (D > F ? D : F) * wsize + 8 + 4) + scores + logits;
}

int mem_plan_device_wsize(void) {
    const char *m = getenv("QH_CUDA_MATH");
    return m && (!strcmp(m, "fp16") || !strcmp(m, "bf16")) ? 2 : 4;
}

int mem_plan_make(const MemPlanSpec *s, MemPlan *p) {
    memset(p, 0, sizeof *p);
    const ModelConfig *c = s->c;
    size_t D = c->dim, F = c->hidden_dim, V = c->vocab_size, L = c->n_layers, T = s->seqlen;
    size_t lin = (size_t)(model_linear_params(c) / c->n_layers), largest = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        if ((size_t)o * i > largest) largest = (size_t)o * i;
    }
    size_t block = sizeof(float) * (lin + 2 * D), head = 4 * V * D * (c->shared_classifier ? 1 : 2);
    size_t window = sizeof(float) * T * D, nbuf = s->quantize ? (s->hessians ? 3 : 0) : 1;
    p->block_bytes = block;
    p->model_bytes = L * block + head;
    int streamed_host = s->max_host > 0;

    /* ---- device ---- */
    size_t avail = s->max_device;
    if (s->device_free && (!avail || s->device_free < avail)) avail = s->device_free;
    size_t d_block = s->device_wsize * lin + 4 * 2 * D, d_head = 4 * V * D;
    if (s->device_wsize != 4 || !c->shared_classifier) d_head += V * D * s->device_wsize;
    size_t d_scratch = s->on_device ? device_scratch(c, T, s->device_wsize) : 0;
    size_t d_quant = s->on_device && s->quantize ? forward_quant_device_reserve(c) : 0;
    size_t d_acts = s->on_device ? nbuf * (size_t)s->windows * window : 0;
    p->stream_device = s->on_device && (streamed_host || (avail && L * d_block + d_head + d_scratch + d_quant > avail));
    size_t d_weights = s->on_device ? (p->stream_device ? d_block : L * d_block) : 0;
    if (!s->on_device) d_head = 0;
    size_t d_fixed = d_weights + d_head + d_scratch + d_quant;
    if (s->on_device && avail && d_fixed > avail) {
        char extra[96] = "";
        if (d_quant) snprintf(extra, sizeof extra, ", the quantizer's Hessians / working copies (%.1f MB)", MIB(d_quant));
        return qh_error("--max-device-memory: %.0f MB %son the device cannot hold one block (%.1f MB of weights) with "
                        "the embedding / head (%.1f MB) and the forward scratch (%.1f MB)%s: %.1f MB at least",
                        MIB(avail), s->max_device && avail == s->max_device ? "" : "free ", MIB(d_block), MIB(d_head),
                        MIB(d_scratch), extra, MIB(d_block + d_head + d_scratch + d_quant));
    }
    p->acts_on_device = s->on_device && nbuf && (!avail || d_fixed + d_acts <= avail);
    if (!p->acts_on_device) d_acts = 0;

    /* ---- host ---- */
    size_t h_weights = streamed_host ? (s->quantize ? 2 * block : block) : L * block;
    size_t h_scratch = forward_cpu_scratch_bytes(c, s->seqlen) + window; /* + one window read back */
    size_t h_quant = s->quantize && s->hessians && !s->on_device ? 12 * (3 * D * D + F * F) + 16 * largest : 0;
    /* every method, on either side: the block's QuantLayers until the block is written (a code byte per weight,
     * statistics at most half a byte per weight: fp32 scale and zero per group of 16), the largest layer's
     * dequantized copy before it replaces the weight and its packed codes as written, and what malloc may keep
     * of those freed copies */
    if (s->quantize) h_quant += lin * 3 / 2 + 5 * largest + qh_malloc_retained_bytes(4 * largest);
    size_t h_libs = s->quantize ? (size_t)32 << 20 : 0; /* calibration text, HDF5, BLAS (measured ~15-20 MB) */
    size_t h_decode = s->decode_bytes;
    size_t h_fixed = h_weights + head + h_scratch + h_decode + h_quant + h_libs, h_acts = 0;
    p->chunk = s->windows;
    if (nbuf && !p->acts_on_device) {
        if (!s->quantize && streamed_host && s->max_host > h_fixed) { /* evaluation: host chunks within the budget */
            long fit = (long)((s->max_host - h_fixed) / window);
            if (fit < p->chunk) p->chunk = fit;
        }
        h_acts = nbuf * (size_t)p->chunk * window;
    }
    size_t h_min = h_fixed + (nbuf && !p->acts_on_device ? (s->quantize ? nbuf * (size_t)s->windows : 1) * window : 0);
    if (streamed_host && s->max_host < h_min) {
        char extra[160] = "";
        if (h_quant || h_libs)
            snprintf(extra, sizeof extra, ", Hessians / working copies (%.1f MB), libraries (%.1f MB)", MIB(h_quant),
                     MIB(h_libs));
        if (h_decode)
            snprintf(extra, sizeof extra, ", the block's decoding (%.1f MB)", MIB(h_decode));
        return qh_error("--max-memory %.0f MB cannot hold one block (%.1f MB: its linears and norms in fp32%s) with the "
                        "embedding / head (%.1f MB), the forward scratch (%.1f MB)%s and %s (%.1f MB): %.1f MB at least",
                        MIB(s->max_host), MIB(block), s->quantize ? ", twice: as loaded and as quantized" : "",
                        MIB(head), MIB(h_scratch), extra,
                        s->quantize ? "the calibration activations" : "one window of activations",
                        MIB(h_min - h_fixed), MIB(h_min));
    }

    add(p, p->stream_device || streamed_host ? "block weights (one block)" : "block weights (all blocks)", h_weights,
        d_weights);
    add(p, "embedding / head", head, d_head);
    add(p, s->quantize ? "calibration activations" : "window activations", h_acts, d_acts);
    add(p, "forward scratch", h_scratch, d_scratch);
    if (h_decode) add(p, "block decoding (one layer)", h_decode, 0);
    if (s->quantize) add(p, "Hessians / quantizer", h_quant, d_quant);
    if (h_libs) add(p, "libraries, calibration text", h_libs, 0);
    char tail[64] = ""; /* the part that only some plans have */
    if (s->quantize) snprintf(tail, sizeof tail, ", Hessians and libraries %.1f", MIB(h_quant + h_libs));
    else if (h_decode) snprintf(tail, sizeof tail, ", block decoding %.1f", MIB(h_decode));
    if (streamed_host && p->host > s->max_host)
        return qh_error("--max-memory %.0f MB is below the plan's %.0f MB on the host: block weights %.1f, embedding / "
                        "head %.1f, activations %.1f, scratch %.1f%s MB",
                        MIB(s->max_host), MIB(p->host), MIB(h_weights), MIB(head), MIB(h_acts), MIB(h_scratch), tail);
    return 0;
}

void mem_plan_print(FILE *out, const MemPlanSpec *s, const MemPlan *p) {
    if (s->quantize && !s->hessians)
        fprintf(out, "memory plan (quantization without calibration, computed from the shapes):\n");
    else
        fprintf(out, "memory plan (%s, %ld %s of %d, computed from the shapes):\n",
                s->quantize ? "quantization" : "evaluation", s->windows, s->quantize ? "calibration windows" : "windows",
                s->seqlen);
    fprintf(out, "  %-30s %12s %12s\n", "part", "host MB", "device MB");
    for (int i = 0; i < p->n; i++) {
        char dev[32] = "-"; /* a CPU run has no device column */
        if (s->on_device) snprintf(dev, sizeof dev, "%.1f", MIB(p->part[i].device));
        fprintf(out, "  %-30s %12.1f %12s\n", p->part[i].name, MIB(p->part[i].host), dev);
    }
    fprintf(out, "  total: host %.1f MB (budget %s), device %.1f MB (budget %s); the model is %.1f MB in fp32, one block "
                 "%.1f MB\n",
            MIB(p->host), s->max_host ? "given" : "none", MIB(p->device), s->max_device ? "given" : "none",
            MIB(p->model_bytes), MIB(p->block_bytes));
    if (s->on_device)
        fprintf(out, "  device: %s, activations %s\n", p->stream_device ? "one block at a time" : "every block resident",
                p->acts_on_device ? "on the device" : "in host memory");
    if (!s->quantize && !p->acts_on_device) fprintf(out, "  host: %ld windows per pass\n", p->chunk);
}
