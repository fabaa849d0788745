/* test_block_run.c: block_run.h's decisions without running a model:
 * - `max_memory = auto` (block_run_auto): streams exactly when the
 *   whole-model plan's host total exceeds the available memory or the plan
 *   keeps one block on the device at a time; unknown memory (0) never
 *   streams by itself; the reason names both numbers;
 * - block_run_quant_plan / block_run_eval_plan hand their arguments to
 *   mem_plan_make unchanged: on the LLaMA-65B shape (procedural.h) the
 *   totals equal mem_plan_make's for the same spec; with the shipped budgets
 *   of experiments/llama65b_table1.ini (96000 / 72000 MB) SpQR with 128 x 2048
 *   calibration fits with one block on the device, and 4000 MB of host is
 *   refused (below two blocks of 3088 MB);
 * - block_run_host_available: /proc/meminfo's MemAvailable, above 0 here. */
#include <stdio.h>
#include <string.h>

#include "block_run.h"
#include "check.h"
#include "procedural.h"
#include "quant_io.h"
#include "util.h"

#define MB ((size_t)1 << 20)

int main(void) {
    MemPlan w = {0};
    char why[256];
    int s = -1;
    w.host = 100 * MB;
    block_run_auto(&w, 50 * MB, &s, why, sizeof why);
    CHECK(s == 1, "100 MB whole, 50 MB available: streamed");
    CHECK(strstr(why, "100 MB") && strstr(why, "50 MB"), "the reason names both: %s", why);
    block_run_auto(&w, 200 * MB, &s, why, sizeof why);
    CHECK(s == 0, "100 MB whole, 200 MB available: whole model (%s)", why);
    block_run_auto(&w, 100 * MB, &s, why, sizeof why);
    CHECK(s == 0, "exactly the available memory: fits");
    block_run_auto(&w, 0, &s, why, sizeof why);
    CHECK(s == 0, "available memory unknown: whole model");
    w.stream_device = 1;
    block_run_auto(&w, 200 * MB, &s, why, sizeof why);
    CHECK(s == 1 && strstr(why, "device"), "fits the host but not the device whole: streamed (%s)", why);

    ModelConfig c;
    uint64_t seed;
    CHECK(procedural_parse("procedural:llama-65b", &c, &seed) == 0, "65B shape");
    QuantRunSpec spec = {.method = "spqr", .calib = "c4", .nsamples = 128, .seqlen = 2048, .device = QH_DEVICE_CUDA,
                         .max_device_memory = 72000 * MB};
    MemPlan p, q;
    CHECK(block_run_quant_plan(&c, &spec, 96000 * MB, 1, NULL, &p) == 0, "SpQR 65B within 96000 / 72000 MB");
    MemPlanSpec ps = {.c = &c, .quantize = 1, .hessians = 1, .seqlen = 2048, .windows = 128, .on_device = 1,
                      .device_wsize = mem_plan_device_wsize(), .max_host = 96000 * MB, .max_device = 72000 * MB};
    CHECK(mem_plan_make(&ps, &q) == 0 && p.host == q.host && p.device == q.device && p.n == q.n,
          "the same totals as mem_plan_make: host %zu / %zu, device %zu / %zu", p.host, q.host, p.device, q.device);
    CHECK(p.stream_device && p.acts_on_device, "one block on the device, the activations there too");
    CHECK(p.host <= 96000 * MB && p.device <= 72000 * MB, "within the budgets: %zu MB host, %zu MB device",
          p.host / MB, p.device / MB);
    CHECK(block_run_quant_plan(&c, &spec, 4000 * MB, 1, NULL, &p) != 0, "4000 MB of host refused");
    CHECK(block_run_eval_plan(&c, QH_DEVICE_CUDA, 2048, 166, 96000 * MB, 72000 * MB, 0, 1, NULL, &p) == 0,
          "WikiText-2 evaluation (166 windows of 2048) within the budgets");
    ps = (MemPlanSpec){.c = &c, .seqlen = 2048, .windows = 166, .on_device = 1,
                       .device_wsize = mem_plan_device_wsize(), .max_host = 96000 * MB, .max_device = 72000 * MB};
    CHECK(mem_plan_make(&ps, &q) == 0 && p.host == q.host && p.device == q.device, "the evaluation plan as mem_plan_make's");
    /* a sweep point's evaluation planned before its file exists: the decoding bound from the settings */
    QuantParams sp, gp;
    quant_params_default(&sp, "spqr"), quant_params_default(&gp, "gptq");
    sp.wbits = 3, sp.groupsize = 16, sp.qq_scale_bits = sp.qq_zero_bits = 3, sp.qq_groupsize = 16, sp.outlier_threshold = 0.2;
    gp.wbits = 4, gp.groupsize = 128;
    size_t ds = quant_io_decode_bytes_planned(&c, &sp), dg = quant_io_decode_bytes_planned(&c, &gp);
    const size_t lw = (size_t)22016 * 8192; /* the largest linear of the 65B shape (gate / up / down) */
    CHECK(dg >= 2 * 4 * lw && dg < 2 * 4 * lw + 3 * lw, "GPTQ 4-bit g128: two fp32 copies of the largest linear plus its "
          "codes and statistics (%zu MB)", dg / MB);
    CHECK(ds >= dg + 8 * lw, "SpQR: every weight counted as a possible outlier (8 bytes each): %zu MB vs %zu MB", ds / MB,
          dg / MB);
    CHECK(block_run_eval_plan(&c, QH_DEVICE_CUDA, 2048, 166, 96000 * MB, 72000 * MB, ds, 1, NULL, &p) == 0 &&
              p.host <= 96000 * MB,
          "SpQR's evaluation from its file within 96000 MB of host: %zu MB", p.host / MB);
    ps.decode_bytes = ds;
    CHECK(mem_plan_make(&ps, &q) == 0 && p.host == q.host, "with decode_bytes as mem_plan_make's");
    CHECK(block_run_eval_plan(&c, QH_DEVICE_CUDA, 2048, 166, 4000 * MB, 72000 * MB, ds, 1, NULL, &p) != 0,
          "and refused within 4000 MB");
    CHECK(block_run_host_available() > 0, "MemAvailable read: %zu MB", block_run_host_available() / MB);
    return test_summary();
}
