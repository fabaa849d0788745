/* test_mem_plan.c: the memory plan of block-by-block work (mem_plan.h) on the
 * paper's largest shape, LLaMA-65B (dim 8192, hidden 22016, 80 blocks, vocab
 * 32000), against byte counts worked out by hand from the shapes:
 *  - one block: 4 x 8192^2 + 3 x 8192 x 22016 = 809,500,672 linear weights;
 *    fp32 with its two norms 3,238,068,224 bytes, bf16 on the device
 *    1,619,066,880 bytes (norms fp32);
 *  - WikiText-2 in bf16 on a 40 GB budget: the whole model (80 blocks,
 *    ~121 GiB) does not fit, so one block at a time; 166 windows of 2048
 *    (166 x 2048 x 8192 x 4 = 11,140,071,424 bytes) on the device;
 *  - a budget below one block's weights is refused naming them;
 *  - the host side of a CPU evaluation under --max-memory: windows per pass
 *    = (budget - fixed) / (2048 x 8192 x 4), fixed from stream_eval.h;
 *  - quantization (128 x 2048 calibration, three buffers of 24 GiB together):
 *    on an 80 GB device the activations stay there; under 40 GB they go to the
 *    host, whose budget must then hold them;
 *  - the quantizer's device reserve (forward_quant_device_reserve, 2 GiB +
 *    24 x 22016^2 bytes) is planned for quantization only, and its output on
 *    the host (a block's codes, a layer's fp32 copy) for every method;
 *  - a quantized model's decoding (decode_bytes) is a host part of its own
 *    that the windows per pass and the smallest budget account for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "forward.h"
#include "mem_plan.h"
#include "procedural.h"
#include "stream_eval.h"

static char cap_dir[] = "/tmp/qh_test_plan_XXXXXX";
static char *err;

static int plan(const MemPlanSpec *s, MemPlan *p) {
    cap_begin_in(cap_dir);
    int rc = mem_plan_make(s, p);
    free(err);
    err = cap_end();
    return rc;
}

static size_t part_device(const MemPlan *p, const char *prefix) {
    for (int i = 0; i < p->n; i++)
        if (!strncmp(p->part[i].name, prefix, strlen(prefix))) return p->part[i].device;
    return (size_t)-1;
}

int main(void) {
    if (!mkdtemp(cap_dir)) return 1;
    ModelConfig c;
    uint64_t seed;
    CHECK(procedural_parse("procedural:llama-65b", &c, &seed) == 0, "65B shape");
    const size_t GB = (size_t)1 << 30, MBy = (size_t)1 << 20, window = 2048UL * 8192 * 4;
    MemPlan p;

    /* evaluation on the GPU, bf16, 40 GB */
    MemPlanSpec e = {.c = &c, .seqlen = 2048, .windows = 166, .on_device = 1, .device_wsize = 2,
                     .max_device = 40 * GB};
    CHECK(plan(&e, &p) == 0, "65B bf16 evaluation fits 40 GB: %s", err);
    CHECK(p.block_bytes == 3238068224ULL, "one block in fp32: %zu bytes (3,238,068,224 expected)", p.block_bytes);
    CHECK(p.stream_device && p.acts_on_device, "one block at a time (%d), windows on the device (%d)",
          p.stream_device, p.acts_on_device);
    CHECK(part_device(&p, "block weights") == 1619066880ULL, "device block bf16: %zu (1,619,066,880 expected)",
          part_device(&p, "block weights"));
    CHECK(part_device(&p, "window activations") == 166 * window, "166 windows: %zu bytes",
          part_device(&p, "window activations"));
    CHECK(part_device(&p, "embedding / head") == 32000ULL * 8192 * 4 + 32000ULL * 8192 * 2,
          "embedding fp32 + head bf16: %zu", part_device(&p, "embedding / head"));
    CHECK(p.device < 40 * GB && p.device > 13 * GB, "device total %.2f GiB (between 13 and 40)",
          (double)p.device / GB);

    /* the same with no budget on an 80 GB card: the 121 GiB of bf16 weights do not fit either */
    e.max_device = 0;
    e.device_free = 79 * GB;
    CHECK(plan(&e, &p) == 0 && p.stream_device, "80 GB card: streamed (%s)", err);
    /* a 7B-shaped model fits whole */
    ModelConfig c7;
    CHECK(procedural_parse("procedural:llama-7b", &c7, &seed) == 0, "7B shape");
    e.c = &c7;
    CHECK(plan(&e, &p) == 0 && !p.stream_device && p.acts_on_device, "7B on 80 GB: whole model resident");
    e.c = &c;

    /* a device budget below one block: refused with the block's bytes */
    e.device_free = 0;
    e.max_device = 1000 * MBy;
    CHECK(plan(&e, &p) != 0 && strstr(err, "one block (1544.1 MB") && strstr(err, "--max-device-memory"),
          "1000 MB refused naming the block: %s", err);

    /* CPU evaluation under 8 GB: windows per pass from the fixed part */
    MemPlanSpec h = {.c = &c, .seqlen = 2048, .windows = 166, .max_host = 8 * GB};
    CHECK(plan(&h, &p) == 0, "8 GB host: %s", err);
    size_t fixed = stream_eval_fixed_bytes(&c, 2048);
    CHECK(p.chunk == (long)((8 * GB - fixed) / window) && p.chunk > 0 && p.chunk < 166,
          "windows per pass %ld, (budget - %zu) / window = %ld", p.chunk, fixed, (long)((8 * GB - fixed) / window));
    CHECK(p.host <= 8 * GB && p.host + window > 8 * GB, "host plan %zu within 8 GiB, full to one window",
          p.host);
    h.max_host = 5 * GB;
    CHECK(plan(&h, &p) != 0 && strstr(err, "one block (3088.1 MB"), "5 GB refused naming the block: %s", err);

    /* quantization: 3 x 128 x 2048 x 8192 x 4 = 24 GiB of activations */
    MemPlanSpec q = {.c = &c, .quantize = 1, .hessians = 1, .seqlen = 2048, .windows = 128, .on_device = 1,
                     .device_wsize = 4, .device_free = 79 * GB, .max_host = 64 * GB};
    CHECK(plan(&q, &p) == 0 && p.stream_device && p.acts_on_device, "80 GB card: activations on it (%s)", err);
    CHECK(part_device(&p, "calibration activations") == 3 * 128 * window, "24 GiB of activations: %zu",
          part_device(&p, "calibration activations"));
    /* the quantizer's output on the host, any method: the block's codes and statistics (1.5 x 809,500,672), the
     * largest layer's fp32 copy and packed codes (5 x 22016 x 8192), malloc's 2 x 32 MiB: 2,183,135,232 bytes */
    size_t hq = (size_t)-1;
    for (int i = 0; i < p.n; i++)
        if (!strcmp(p.part[i].name, "Hessians / quantizer")) hq = p.part[i].host;
    CHECK(hq == 2183135232ULL, "the quantizer's host part %zu (2,183,135,232 expected)", hq);
    q.max_device = 40 * GB;
    CHECK(plan(&q, &p) == 0 && !p.acts_on_device && p.device < 40 * GB, "40 GB: activations on the host (%s)", err);
    q.max_host = 20 * GB; /* they do not fit a 20 GB host budget then */
    CHECK(plan(&q, &p) != 0 && strstr(err, "calibration activations (24576.0 MB)"),
          "20 GB host refused naming the activations: %s", err);

    /* the quantizer's device reserve, one figure: 2 GiB + 24 x 22016^2 = 13,780,385,792 bytes for 65B, in the
     * quantization plan, not in the evaluation's */
    CHECK(forward_quant_device_reserve(&c) == 13780385792ULL, "reserve %zu (13,780,385,792 expected)",
          forward_quant_device_reserve(&c));
    q.max_device = 0, q.max_host = 64 * GB;
    CHECK(plan(&q, &p) == 0 && part_device(&p, "Hessians") == 13780385792ULL, "quantization reserves it: %zu",
          part_device(&p, "Hessians"));
    e.max_device = 40 * GB;
    CHECK(plan(&e, &p) == 0 && part_device(&p, "Hessians") == (size_t)-1, "evaluation has no quantizer part");
    CHECK(p.device == part_device(&p, "block weights") + part_device(&p, "embedding") +
                          part_device(&p, "window activations") + part_device(&p, "forward scratch"),
          "evaluation's device total is its four parts: %zu", p.device);

    /* a saved quantized model's decoding (decode_bytes) on the host: its own part, fewer windows per pass, and
     * named when the budget cannot hold it */
    h.max_host = 8 * GB;
    h.decode_bytes = 300 * MBy;
    CHECK(plan(&h, &p) == 0, "8 GB host with 300 MB of decoding: %s", err);
    size_t hpart = (size_t)-1;
    for (int i = 0; i < p.n; i++)
        if (!strcmp(p.part[i].name, "block decoding (one layer)")) hpart = p.part[i].host;
    CHECK(hpart == 300 * MBy, "the decoding part: %zu bytes", hpart);
    CHECK(p.chunk == (long)((8 * GB - fixed - 300 * MBy) / window), "windows per pass %ld, (budget - fixed - 300 MB) "
          "/ window = %ld", p.chunk, (long)((8 * GB - fixed - 300 * MBy) / window));
    h.max_host = fixed + 300 * MBy + window - 1;
    CHECK(plan(&h, &p) != 0 && strstr(err, "the block's decoding (300.0 MB)"), "one byte short refused: %s", err);
    h.max_host = fixed + 300 * MBy + window;
    CHECK(plan(&h, &p) == 0 && p.chunk == 1, "exactly fixed + decoding + one window: one window per pass (%s)", err);
    free(err);
    rmdir(cap_dir);
    return test_summary();
}
