/* cmd_speed.c: `qharness speed`: the paper's speed table for one model and
 * the quantized-model files given, measured in one run: tokens per second of
 * greedy incremental decode at batch size 1 in the paper's two setups (100
 * tokens from scratch; 100 tokens after a 1024-token prefix, or the model's
 * context less 100 when shorter, said), medians of repeated runs, the
 * full-precision baseline first; and the matrix-vector time per layer shape
 * (speed_run.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "quant_packed.h"
#include "speed_run.h"
#include "util.h"

int cmd_speed(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *quantized = NULL, *kernels = "auto", *device = "cpu", *setups = "scratch,prefix", *out = NULL;
    long gen = 100, prefix = OPT_UNSET_INT, repeats = 5;
    int no_matvec = 0;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M", "the full-precision model (llama2.c checkpoint or Hugging Face directory)"},
        {"quantized", OPT_STR, &quantized, "F.h5[,F.h5...]", "quantized models of it (quantize --save), in table order"},
        {"kernels", OPT_STR, &kernels, QUANT_KERNELS_CHOICES,
         "the matrix-vector kernel of the quantized linears, or decoded (fp32 weights); auto falls back to decoded, "
         "with a message, for a file the kernels cannot take"},
        {"device", OPT_STR, &device, "cpu|cuda|auto", "where to run"},
        {"setups", OPT_STR, &setups, "scratch,prefix", "scratch: tokens from the start token; prefix: after a prompt"},
        {"tokens", OPT_INT, &gen, "N", "tokens generated (and timed) per run"},
        {"prefix", OPT_INT, &prefix, "N", "the prefix setup's prompt (default 1024, or the model's context less --tokens)"},
        {"repeats", OPT_INT, &repeats, "N", "runs per setup; the median is reported"},
        {"no-matvec", OPT_FLAG, &no_matvec, NULL, "leave out the matrix-vector times per layer shape"},
        {"out", OPT_STR, &out, "F.h5", "also write the table to an HDF5 file"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("speed", "Tokens per second at batch size 1, full precision and quantized (the paper's speed table).",
                        specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!model) return qh_error("speed: --model is required");
    QhDevice dev;
    unsigned su;
    if (qh_device_parse(device, &dev) != 0 || quant_kernels_check(kernels, "speed: --kernels") != 0 ||
        speed_setups_parse(setups, "speed: --setups", &su) != 0)
        return -1;
    if (gen < 1 || gen > 1000000) return qh_error("speed: --tokens must be at least 1, got %ld", gen);
    if (repeats < 1 || repeats > SPEED_MAX_REPEATS)
        return qh_error("speed: --repeats must be in 1..%d, got %ld", SPEED_MAX_REPEATS, repeats);
    if (prefix != OPT_UNSET_INT && prefix < 0) return qh_error("speed: --prefix must be at least 0, got %ld", prefix);
    char *list = quantized ? qh_strdup(quantized) : NULL, *save = NULL;
    const char **files = qh_calloc(64, sizeof *files);
    int nf = 0;
    for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && rc == 0; t = strtok_r(NULL, ",", &save))
        if (nf == 64) rc = qh_error("speed: more than 64 --quantized files");
        else files[nf++] = t;
    SpeedRunSpec rs = {.model_path = model, .files = files, .nfiles = nf, .kernels = kernels, .device = dev,
                       .setups = su, .gen = (int)gen, .prefix = prefix == OPT_UNSET_INT ? -1 : prefix,
                       .repeats = (int)repeats, .matvec = !no_matvec};
    SpeedTable t;
    if (rc == 0) rc = speed_run(&rs, &t);
    if (rc == 0) {
        speed_table_print(&t, stdout);
        if (out) rc = speed_table_write(out, &t, full_argc, full_argv);
        speed_table_free(&t);
    }
    free(files);
    free(list);
    return rc;
}
