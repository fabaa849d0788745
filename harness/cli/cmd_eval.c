/* cmd_eval.c: `qharness eval`: perplexity of a llama2.c model on one or more
 * datasets by the SPEC 7 protocol, printed as a table or as JSON, stored in
 * HDF5 (--out). `--quantized F.h5` evaluates a saved quantized model (under
 * --max-memory / --max-device-memory block by block, each block decoded from
 * the file when the walk reaches it: quant_io_block_loader); `--kld`
 * adds the distribution metrics (kld.h) against the full-precision weights of
 * --model (the model against itself without --quantized); `--zeroshot`
 * zero-shot multiple-choice accuracy as lm-eval scores it (zeroshot.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "datasets.h"
#include "eval_run.h"
#include "forward.h"
#include "provenance.h"
#include "quant_io.h"
#include "results.h"
#include "util.h"

int cmd_eval(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *dataset = NULL, *out = NULL, *device = "auto", *data = NULL,
         *quantized = NULL, *stats_dtype = NULL, *kld_scope = "all", *zeroshot = NULL, *zs_data = NULL;
    long seqlen = 0, max_windows = 0, max_memory_mb = 0, max_device_mb = 0, zs_limit = 0;
    int json = 0, verify = 0, force = 0, kld = 0;
    double verify_rtol = 1e-4;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M", "llama2.c checkpoint or Hugging Face directory"},
        {"quantized", OPT_STR, &quantized, "F.h5", "a quantized model saved by `qharness quantize --save`"},
        {"stats-dtype", OPT_STR, &stats_dtype, "fp32|fp16",
         "refuse a --quantized file unless it holds fp32 (reference) / fp16 (deployment) values"},
        {"force", OPT_FLAG, &force, NULL, "--quantized: accept a --model other than the one the file was made from"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin, .model or tokenizer.json (default: found beside / in the model)"},
        {"dataset", OPT_STR, &dataset, "D[,D...]",
         "wikitext2 ptb ptb-new c4 c4-new tinystories file:PATH (default wikitext2, none with --zeroshot)"},
        {"seqlen", OPT_INT, &seqlen, "N", "window length (0: the model's, at most 2048)"},
        {"max-windows", OPT_INT, &max_windows, "K", "evaluate at most K windows (0: all)"},
        {"max-memory", OPT_INT, &max_memory_mb, "MB", "evaluate block by block within this host budget"},
        {"max-device-memory", OPT_INT, &max_device_mb, "MB",
         "GPU budget: one block on the device at a time when the model does not fit it"},
        {"out", OPT_STR, &out, "F.h5", "write the results to this HDF5 file"},
        {"json", OPT_FLAG, &json, NULL, "print one JSON object on stdout"},
        {"device", OPT_STR, &device, "cpu|cuda|auto", "where to run the forward pass"},
        {"verify", OPT_FLAG, &verify, NULL, "run on the GPU and on the CPU and compare (fails beyond --verify-rtol)"},
        {"verify-rtol", OPT_DOUBLE, &verify_rtol, "R", "relative perplexity tolerance of --verify"},
        {"kld", OPT_FLAG, &kld, NULL,
         "also KL divergence, top-token agreement and the change in the right token's probability against the "
         "full-precision model (--model's weights; the model itself without --quantized), llama.cpp's definitions"},
        {"kld-scope", OPT_STR, &kld_scope, "all|second-half",
         "positions of those metrics: every target (default) or llama.cpp's second half of each window"},
        {"zeroshot", OPT_STR, &zeroshot, "T[,T...]",
         "zero-shot accuracy as lm-eval scores it: arc_easy arc_challenge piqa hellaswag winogrande"},
        {"zeroshot-limit", OPT_INT, &zs_limit, "N", "the first N items of each zero-shot task (0: all)"},
        {"zeroshot-data", OPT_STR, &zs_data, "DIR", "the folder of the tasks' JSON Lines files (default $ZEROSHOT_DATA)"},
        {"data", OPT_STR, &data, "DIR", "data root (default $QH_DATA or data)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("eval", "Perplexity by the GPTQ/SpQR protocol (non-overlapping windows, BOS once), and zero-shot "
                        "multiple-choice accuracy as lm-eval scores it.", specs,
                        argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (max_windows < 0) return qh_error("eval: --max-windows must be >= 0, got %ld", max_windows);
    if (max_memory_mb < 0 || max_memory_mb > (1L << 30))
        return qh_error("eval: --max-memory must be a size in MB >= 0, got %ld", max_memory_mb);
    if (max_device_mb < 0 || max_device_mb > (1L << 30))
        return qh_error("eval: --max-device-memory must be a size in MB >= 0, got %ld", max_device_mb);
    if (force && !quantized) return qh_error("eval: --force applies to --quantized only");
    if (seqlen < 0 || seqlen == 1) return qh_error("eval: --seqlen must be 0 or >= 2, got %ld", seqlen);
    QhDevice dev;
    if (qh_device_parse(device, &dev) != 0) return -1;
    if (max_device_mb && dev == QH_DEVICE_CPU) return qh_error("eval: --max-device-memory applies to --device cuda or auto");
    QuantStatsDtype want;
    if (stats_dtype && !quantized) return qh_error("eval: --stats-dtype applies to a --quantized file");
    if (stats_dtype && quant_stats_dtype_parse(stats_dtype, &want) != 0)
        return qh_error("eval: --stats-dtype expects fp32 (reference mode) or fp16 (deployment mode), got '%s'",
                        stats_dtype);
    KldScope scope;
    if (kld_scope_parse(kld_scope, "eval: --kld-scope", &scope) != 0) return -1;
    if (strcmp(kld_scope, "all") != 0 && !kld) return qh_error("eval: --kld-scope applies to --kld, which is not given");
    if (zs_limit < 0) return qh_error("eval: --zeroshot-limit must be >= 0, got %ld", zs_limit);
    if ((zs_limit || zs_data) && !zeroshot)
        return qh_error("eval: --zeroshot-limit and --zeroshot-data apply to --zeroshot, which is not given");
    if (zeroshot && zs_task_list_check(zeroshot, "eval: --zeroshot") != 0) return -1;
    if (!dataset && !zeroshot) dataset = "wikitext2";

    CliIo io = {0}; /* --out must not replace what is read, and must be writable, before any work */
    cli_io_input(&io, "--model", model);
    cli_io_input(&io, "--tokenizer", tok);
    cli_io_input(&io, "--quantized", quantized);
    if (dataset) rc = cli_io_datasets(&io, "--dataset", dataset, cli_data_root(data), 0);
    if (zeroshot && zs_data_dir(zs_data)) { /* the task files are inputs too */
        char *l = qh_strdup(zeroshot), *save = NULL;
        for (char *n = strtok_r(l, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
            char p[4096];
            qh_pathf(p, sizeof p, "%s/%s", zs_data_dir(zs_data), zs_task_find(n)->file);
            cli_io_input(&io, "the zero-shot task file", p);
        }
        free(l);
    }
    cli_io_output(&io, "--out", out);
    Model m;
    Tokenizer t;
    QuantModelInfo qinfo = {0};
    if (rc == 0) rc = cli_io_check("eval", &io);
    int by_block = max_memory_mb > 0 || max_device_mb > 0;
    H5File *qf = NULL; /* a budget: the quantized blocks are decoded from the file one at a time */
    if (rc == 0 && quantized && by_block)
        rc = quant_model_open_streamed(quantized, model, tok, stats_dtype ? (int)want : -1, force, &m, &t, &qinfo, &qf);
    else if (rc == 0 && quantized)
        rc = quant_model_load(quantized, model, tok, stats_dtype ? (int)want : -1, force, &m, &t, &qinfo);
    else if (rc == 0) rc = model_open_for(model, tok, &m, &t, by_block);
    if (rc == 0) rc = cli_io_check_loaded("eval", &io, &m, &t, tok); /* e.g. the model a --quantized file names */
    cli_io_free(&io);
    if (rc != 0) {
        if (qf) {
            h5_commit(&qf);
            tokenizer_free(&t);
            model_free(&m);
        }
        return -1;
    }
    StreamLoader loader = qf ? quant_io_block_loader(qf) : (StreamLoader){0};
    Provenance prov;
    provenance_collect(&prov, full_argc, full_argv);
    Model fp = {0}; /* --kld: the weights as loaded (the quantized ones replace them in m) */
    if (kld && model_view_loaded(&m, &fp) != 0) {
        if (qf) h5_commit(&qf);
        tokenizer_free(&t);
        model_free(&m);
        return -1;
    }
    EvalSpec es = {.datasets = dataset, .seqlen = (int)seqlen, .max_windows = max_windows, .device = dev,
                   .data_root = cli_data_root(data), .quiet = json,
                   .verify = verify, .verify_rtol = verify_rtol, .max_memory = (size_t)max_memory_mb << 20,
                   .loader = qf ? &loader : NULL,
                   .max_device_memory = (size_t)max_device_mb << 20,
                   .kld_ref = kld ? &fp : NULL, .kld_scope = scope,
                   .zeroshot = zeroshot, .zeroshot_data = zs_data, .zeroshot_limit = zs_limit};
    EvalOutcome eo;
    rc = eval_run(&m, &t, &es, &eo);
    if (qf) h5_commit(&qf);
    if (rc == 0) rc = eval_outcome_check(&eo, NULL, 0); /* a NaN perplexity is a failure: no result written */
    model_free(&fp);
    if (rc == 0 && out) {
        H5File *f;
        rc = h5_create(out, &f);
        if (rc == 0) {
            rc = results_write_header(f, "/", &prov, &m, "{}");
            if (quantized) rc |= h5_attr_str(f, "/", "quantized_model", quantized);
            if (quantized) rc |= h5_attr_str(f, "/", "stats_dtype", quant_stats_dtype_name(qinfo.params.stats_dtype));
            if (rc == 0) rc = results_write_outcome(f, "/", &eo);
            if (rc == 0) rc = h5_commit(&f);
            else h5_abort(&f);
        }
    }
    if (rc == 0 && json) {
        json_t *o = eval_outcome_json(&eo);
        if (quantized) json_object_set_new(o, "quantized_model", json_string(quantized));
        if (quantized) json_object_set_new(o, "stats_dtype", json_string(quant_stats_dtype_name(qinfo.params.stats_dtype)));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    }
    eval_outcome_free(&eo);
    tokenizer_free(&t);
    model_free(&m);
    return rc;
}
