/* cmd_quantize.c: `qharness quantize`: quantize a model with rtn, gptq or
 * spqr by sequential calibration (calibrate.h), report per-layer proxy loss,
 * outliers and bits, optionally evaluate the result, save the compressed model
 * (--save) and the run's results (--out). Method defaults come from
 * quant_params_default(); only the options given override them, and an option
 * the method does not use is refused, as the experiment files refuse the key
 * (exp_method_uses). */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_run.h"
#include "calibrate.h"
#include "cli.h"
#include "eval_run.h"
#include "experiment.h"
#include "provenance.h"
#include "quant_io.h"
#include "results.h"
#include "settings.h"
#include "stream_eval.h"
#include "util.h"

/* --max-memory / --max-device-memory: the plan of block-by-block
 * quantization (block_run.h), printed on stderr before any work, refused with
 * its parts above either budget. */
static int budget_check(const Model *m, const QuantRunSpec *s, size_t budget) {
    if (budget && !model_is_streamable(m))
        return qh_error("quantize: --max-memory needs a checkpoint read block by block (a llama2.c file or a "
                        "Hugging Face directory)");
    MemPlan p;
    return block_run_quant_plan(&m->cfg, s, budget, -1, stderr, &p);
}

/* Refuse every given option that `method` does not use. An option's key is its
 * experiment-file name: the option name with '-' as '_' (--calib is the
 * calibration dataset, --per-row a groupsize). A method that the experiment
 * files run without calibration (rtn) may still take --calib here: it then
 * runs the calibration forward passes to report proxy losses (calibrate.c),
 * so the other calibration options apply to it unless --calib is none. */
static int check_method_options(const char *method, const char *calib, const OptSpec *specs,
                                const unsigned char *given) {
    for (int i = 0; specs[i].name; i++) {
        if (!given[i]) continue;
        const char *name = specs[i].name;
        char key[64], applies[64];
        snprintf(key, sizeof key, "%s", !strcmp(name, "calib") ? "dataset" : !strcmp(name, "per-row") ? "groupsize" : name);
        for (char *c = key; *c; c++)
            if (*c == '-') *c = '_';
        if (exp_method_uses(method, key, applies, sizeof applies) != 0) continue; /* used, or not a method setting */
        if (exp_is_calibration_key(key)) {
            if (!strcmp(key, "dataset") || strcmp(calib, "none") != 0) continue;
            return qh_error("quantize: %s with --calib none does not use --%s (it applies to the calibration run "
                            "that --calib D asks for)", method, name);
        }
        return qh_error("quantize: %s does not use --%s (it applies to: %s)", method, name, applies);
    }
    return 0;
}

/* The options made from quant_settings[] (settings.h): one per setting,
 * named after it ('_' -> '-'), holding what was given (unset: the method's
 * default applies, so --help prints no sentinel). --per-row stands for the
 * "row" value of a QS_ROW setting. */
typedef struct SettingOpts {
    int n;
    char name[QUANT_MAX_SETTINGS][40];
    char help[QUANT_MAX_SETTINGS][256];
    long ival[QUANT_MAX_SETTINGS];
    double dval[QUANT_MAX_SETTINGS];
    int flag[QUANT_MAX_SETTINGS];
    char *sval[QUANT_MAX_SETTINGS];
    int per_row;
    int spec_row[QUANT_MAX_SETTINGS]; /* index of the setting's row in the option table */
    int per_row_row;                  /* index of --per-row there, -1 if none */
} SettingOpts;

/* Append the setting options to specs (at *k), filling so. */
static void setting_options(SettingOpts *so, OptSpec *specs, int *k) {
    so->per_row_row = -1;
    so->n = 0;
    for (const QuantSetting *q = quant_settings; q->name; q++, so->n++) {
        int i = so->n;
        snprintf(so->name[i], sizeof so->name[i], "%s", q->name);
        for (char *c = so->name[i]; *c; c++)
            if (*c == '_') *c = '-';
        char def[160] = "";
        if (q->type != QS_BOOL) quant_setting_default_text(q, def, sizeof def); /* a flag is off unless given */
        snprintf(so->help[i], sizeof so->help[i], "%s%s%s%s", q->help, def[0] ? " (" : "", def, def[0] ? ")" : "");
        so->ival[i] = OPT_UNSET_INT;
        so->dval[i] = NAN;
        so->flag[i] = 0;
        so->sval[i] = NULL;
        OptSpec o = {so->name[i], OPT_INT, &so->ival[i], q->meta, so->help[i]};
        if (q->type == QS_DOUBLE) o.type = OPT_DOUBLE, o.dst = &so->dval[i];
        else if (q->type == QS_BOOL) o.type = OPT_FLAG, o.dst = &so->flag[i], o.meta = NULL;
        else if (q->type == QS_ENUM) o.type = OPT_STR, o.dst = &so->sval[i];
        so->spec_row[i] = *k;
        specs[(*k)++] = o;
        if (q->flags & QS_ROW) {
            so->per_row_row = *k;
            specs[(*k)++] = (OptSpec){"per-row", OPT_FLAG, &so->per_row, NULL,
                                      "one group per row (the whole input dimension)"};
        }
    }
}

/* Copy the given setting options into p (over the method's defaults), each
 * checked against its row's range. */
static int apply_setting_options(const SettingOpts *so, const unsigned char *given, QuantParams *p) {
    int i = 0;
    for (const QuantSetting *q = quant_settings; q->name; q++, i++) {
        int row_given = (q->flags & QS_ROW) && so->per_row_row >= 0 && given[so->per_row_row];
        if (row_given && given[so->spec_row[i]])
            return qh_error("quantize: --per-row and --%s exclude each other", so->name[i]);
        if (row_given) {
            quant_setting_set(p, q, 0);
            continue;
        }
        if (!given[so->spec_row[i]]) continue;
        char exp[128];
        quant_setting_expected(q, exp, sizeof exp);
        double v = 0;
        switch (q->type) {
        case QS_INT:
            if ((q->flags & QS_ROW) && so->ival[i] < 1)
                return qh_error("quantize: --%s must be >= 1, got %ld (use --per-row for one group per row)",
                                so->name[i], so->ival[i]);
            if (!quant_setting_valid(q, (double)so->ival[i]))
                return qh_error("quantize: --%s %ld is out of range (expected %s)", so->name[i], so->ival[i], exp);
            v = (double)so->ival[i];
            break;
        case QS_DOUBLE:
            v = so->dval[i];
            break; /* the range is quant_params_validate's */
        case QS_BOOL:
            v = 1;
            break;
        case QS_ENUM: {
            char why[256];
            if (quant_setting_parse(q, so->sval[i], &v, why, sizeof why) != 0)
                return qh_error("quantize: --%s %s", so->name[i], why);
            break;
        }
        }
        quant_setting_set(p, q, v);
    }
    return 0;
}

int cmd_quantize(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *method = NULL, *calib = "c4", *evals = NULL, *save = NULL, *out = NULL,
         *device = "auto", *data = NULL;
    long nsamples = 128, seed = 0, seqlen = 0, eval_seqlen = 0, max_windows = 0, max_memory_mb = 0, max_device_mb = 0;
    int json = 0;
    char method_meta[128];
    quant_method_names(~0u, "|", method_meta, sizeof method_meta);
    const OptSpec head[] = {
        {"model", OPT_STR, &model, "M", "llama2.c checkpoint or Hugging Face directory"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin, .model or tokenizer.json (default: found beside / in the model)"},
        {"method", OPT_STR, &method, method_meta, "quantization method"},
    };
    const OptSpec tail[] = {
        {"calib", OPT_STR, &calib, "D",
         "calibration data: c4 | wikitext2 | ptb | file:PATH | jsonl:PATH | tokens:PATH (.npy or raw int32 ids) | none (rtn only)"},
        {"nsamples", OPT_INT, &nsamples, "N", "calibration windows"},
        {"seed", OPT_INT, &seed, "S", "calibration sampling seed (CPython random.seed)"},
        {"seqlen", OPT_INT, &seqlen, "N", "calibration window length (0: the model's, at most 2048)"},
        {"eval", OPT_STR, &evals, "D1,D2", "evaluate the quantized model on these datasets"},
        {"eval-seqlen", OPT_INT, &eval_seqlen, "N", "evaluation window (0: the model's, at most 2048)"},
        {"max-windows", OPT_INT, &max_windows, "K", "evaluate at most K windows per dataset (0: all)"},
        {"save", OPT_STR, &save, "F.h5", "save the compressed model"},
        {"max-memory", OPT_INT, &max_memory_mb, "MB",
         "work block by block within this host budget (needs --save: blocks go to the file)"},
        {"max-device-memory", OPT_INT, &max_device_mb, "MB",
         "GPU budget: one block on the device at a time when the model does not fit it"},
        {"out", OPT_STR, &out, "F.h5", "write settings, per-layer report and evaluations"},
        {"json", OPT_FLAG, &json, NULL, "print one JSON object on stdout"},
        {"device", OPT_STR, &device, "cpu|cuda|auto", "where to run forward passes"},
        {"data", OPT_STR, &data, "DIR", "data root (default $QH_DATA or data)"},
    };
    enum { NHEAD = sizeof head / sizeof head[0], NTAIL = sizeof tail / sizeof tail[0] };
    OptSpec specs[NHEAD + 2 * QUANT_MAX_SETTINGS + NTAIL + 1];
    SettingOpts so;
    int k = 0;
    for (int i = 0; i < NHEAD; i++) specs[k++] = head[i];
    setting_options(&so, specs, &k);
    for (int i = 0; i < NTAIL; i++) specs[k++] = tail[i];
    specs[k] = (OptSpec){NULL, 0, NULL, NULL, NULL};
    unsigned char given[sizeof specs / sizeof specs[0]];
    int rc = opts_parse_given("quantize",
                              "Quantize a model layer by layer (SPEC 1-6) and report bits and proxy losses.", specs,
                              argc, argv, given);
    if (rc) return rc > 0 ? 0 : -1;
    if (!method) return qh_error("quantize: --method is required (%s)", method_meta);
    const QuantMethod *qm = quant_method_find(method);
    if (!qm) return qh_error("quantize: unknown method '%s' (expected %s)", method, method_meta);
    if (check_method_options(method, calib, specs, given) != 0) return -1;
    QuantRunSpec spec = {.method = qm->name, .calib = calib, .seed = (uint64_t)seed, .data_root = cli_data_root(data)};
    QuantParams *p = &spec.params;
    quant_params_default(p, method);
    if (apply_setting_options(&so, given, p) != 0) return -1;
    if (nsamples < 1 || nsamples > 1000000) return qh_error("quantize: --nsamples must be in 1..1000000, got %ld", nsamples);
    if (seed < 0) return qh_error("quantize: --seed must be >= 0, got %ld", seed);
    if (seqlen < 0 || seqlen == 1 || eval_seqlen < 0 || eval_seqlen == 1 || max_windows < 0)
        return qh_error("quantize: --seqlen / --eval-seqlen must be 0 or >= 2 and --max-windows >= 0");
    if (qh_device_parse(device, &spec.device) != 0) return -1;
    if (!strcmp(calib, "none") && (qm->caps & QUANT_CAP_CALIB))
        return qh_error("quantize: --calib none is only possible with a method that needs no calibration (%s needs "
                        "calibration data)", method);
    spec.nsamples = (int)nsamples;
    if (quant_params_validate(p, method, INT_MAX / 2, 65536) != 0) return -1; /* shape-free checks first */
    if (max_memory_mb < 0 || max_memory_mb > (1L << 30))
        return qh_error("quantize: --max-memory must be a size in MB >= 0, got %ld", max_memory_mb);
    size_t budget = (size_t)max_memory_mb << 20;
    if (budget && !save)
        return qh_error("quantize: --max-memory needs --save F.h5 (each block goes to the file when done)");
    if (max_device_mb < 0 || max_device_mb > (1L << 30))
        return qh_error("quantize: --max-device-memory must be a size in MB >= 0, got %ld", max_device_mb);
    if (max_device_mb && spec.device == QH_DEVICE_CPU)
        return qh_error("quantize: --max-device-memory applies to --device cuda or auto");
    spec.max_device_memory = (size_t)max_device_mb << 20;

    CliIo io = {0}; /* --save / --out must not replace what is read, and must be writable, before any work */
    cli_io_input(&io, "--model", model);
    cli_io_input(&io, "--tokenizer", tok);
    int bad = cli_io_datasets(&io, "--calib", calib, spec.data_root, 1) != 0 ||
              cli_io_datasets(&io, "--eval", evals, spec.data_root, 0) != 0;
    cli_io_output(&io, "--save", save);
    cli_io_output(&io, "--out", out);
    Model m;
    Tokenizer t;
    rc = bad ? -1 : cli_io_check("quantize", &io);
    if (rc == 0) rc = model_open_for(model, tok, &m, &t, budget > 0 || max_device_mb > 0);
    if (rc == 0) rc = cli_io_check_loaded("quantize", &io, &m, &t, tok);
    cli_io_free(&io);
    if (rc != 0) return -1;
    spec.seqlen = seqlen > 0 ? (int)seqlen : eval_default_seqlen(&m.cfg);
    size_t base_rss = qh_current_rss_bytes(); /* for the memory report: libraries loaded, model mapped */
    Provenance prov;
    provenance_collect(&prov, full_argc, full_argv);
    json_t *settings = quant_spec_json(&spec);
    char *settings_text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
    QuantRun run;
    EvalOutcome eo = {0};
    if (budget || spec.max_device_memory) rc = budget_check(&m, &spec, budget);
    if (rc != 0) {
        json_decref(settings);
        free(settings_text);
        tokenizer_free(&t);
        model_free(&m);
        return -1;
    }
    /* under a budget the blocks go to the --save file as they finish */
    if (budget) rc = block_run_quantize(&m, &t, &spec, save, &prov, settings_text, &run);
    else rc = quantize_model(&m, &t, &spec, &run);
    if (rc == 0 && !json) {
        printf("%s %d-bit: avg bits %.4f (formula), %.4f stored (%s values), outliers %.4f%%, total proxy loss %.6g, "
               "%.2f s\n",
               method, p->wbits, run.avg_bits, run.stored_bits, quant_stats_dtype_name(run.stats_dtype),
               100.0 * run.outlier_fraction, run.total_proxy_loss, run.t_total);
        printf("%-5s %-4s %6s %6s %13s %9s %8s\n", "layer", "name", "rows", "cols", "proxy_loss", "outliers", "bits");
        for (int i = 0; i < run.n_layers * LIN_COUNT; i++) {
            if (i % LIN_COUNT >= model_n_linears(&m.cfg)) continue;
            const SubLayerReport *r = &run.reports[i];
            printf("%-5d %-4s %6d %6d %13.6g %9lld %8.4f\n", r->layer, model_linear_name(&m.cfg, r->kind), r->m, r->n,
                   r->proxy_loss,
                   (long long)r->n_outliers, r->formula_bits);
        }
        fflush(stdout);
    }
    if (rc == 0 && save && !budget) rc = quant_model_save(save, &m, &spec, &run, &prov, settings_text);
    if (rc == 0 && evals) {
        EvalSpec es = {.datasets = evals, .seqlen = (int)eval_seqlen, .max_windows = max_windows,
                       .device = spec.device, .data_root = spec.data_root, .quiet = json,
                       .max_memory = budget, .max_device_memory = spec.max_device_memory};
        /* under a budget the quantized blocks are read back from the file one at a time */
        if (budget) rc = block_run_eval_file(&m, &t, save, &es, &eo);
        else rc = eval_run(&m, &t, &es, &eo);
        if (rc == 0) rc = eval_outcome_check(&eo, NULL, 0); /* a NaN perplexity is a failure: no --out written */
    }
    if (rc == 0 && out) {
        H5File *f;
        rc = h5_create(out, &f);
        if (rc == 0) {
            rc = results_write_header(f, "/", &prov, &m, settings_text);
            if (rc == 0) rc = quant_io_write_report(f, "/", &run);
            if (rc == 0) rc = results_write_outcome(f, "/", &eo);
            if (rc == 0) rc = h5_commit(&f);
            else h5_abort(&f);
        }
    }
    if (rc == 0 && json) {
        json_t *o = quant_run_json(&run);
        json_object_set_new(o, "method", json_string(method));
        json_object_set(o, "settings", settings);
        json_t *ev = json_object();
        for (int i = 0; i < eo.n; i++)
            json_object_set_new(ev, eo.streams[i].name, eval_one_json(&eo.streams[i], &eo.ppl[i], eo.device));
        json_object_set_new(o, "eval", ev);
        if (save) json_object_set_new(o, "saved", json_string(save));
        json_object_set_new(o, "base_rss_mb", json_real((double)base_rss / (1 << 20)));
        json_object_set_new(o, "peak_rss_mb", json_real((double)qh_peak_rss_bytes() / (1 << 20)));
        if (budget) json_object_set_new(o, "max_memory_mb", json_integer((json_int_t)(budget >> 20)));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    }
    if (rc == 0) quant_run_free(&run);
    eval_outcome_free(&eo);
    json_decref(settings);
    free(settings_text);
    tokenizer_free(&t);
    model_free(&m);
    return rc;
}
