/* experiment.c: experiment files (see experiment.h): the table of keys, the
 * libinih parse with line numbers, value parsing and validation, ${VAR}
 * expansion, the per-method product of lists, [exclude] rules, canonical JSON
 * and stable ids, the dump and the help text. Runs nothing and looks at no
 * file but the experiment's: the checks of a run are experiment_check.c. */
#define _GNU_SOURCE
#include "experiment.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets.h"
#include "hf_model.h"
#include "sha256.h"
#include "settings.h"
#include "quant_packed.h"
#include "slurm.h"
#include "speed.h"
#include "tokenizer.h"
#include "util.h"
#include "zeroshot.h"


static const char *const fixed_section_names[] = {"experiment", "model", "calibration", "methods"};
static const char *const late_section_names[] = {"eval", "run", "output", "slurm", "report", "paper",
                                                    "search", "exclude", "speed"}; /* from ES_EVAL */

const char *exp_section_name(ExpSection s) {
    if (s < ES_METHOD0) return fixed_section_names[s];
    if (s < ES_EVAL) return (int)(s - ES_METHOD0) < quant_nmethods() ? quant_methods[s - ES_METHOD0].name : NULL;
    return s < ES_COUNT ? late_section_names[s - ES_EVAL] : NULL;
}

/* ---- validators of single values ------------------------------------------------ */

static int check_calib(const char *v, char *why, size_t n) {
    if (!strcmp(v, "c4") || !strcmp(v, "wikitext2") || !strcmp(v, "ptb")) return 0;
    if ((!strncmp(v, "file:", 5) && v[5]) || (!strncmp(v, "jsonl:", 6) && v[6]) || (!strncmp(v, "tokens:", 7) && v[7]))
        return 0;
    snprintf(why, n, "unknown calibration dataset '%s' (expected c4, wikitext2, ptb, file:PATH, jsonl:PATH or tokens:PATH)",
             v);
    return -1;
}

static int check_eval_dataset(const char *v, char *why, size_t n) {
    if (!strncmp(v, "file:", 5) && v[5]) return 0;
    for (int i = 0; dataset_names[i]; i++)
        if (strcmp(dataset_names[i], "file:PATH") && !strcmp(dataset_names[i], v)) return 0;
    char list[256] = "";
    for (int i = 0; dataset_names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, dataset_names[i], sizeof list - strlen(list) - 1);
    }
    snprintf(why, n, "unknown dataset '%s' (expected one of %s)", v, list);
    return -1;
}

static int check_zeroshot_task(const char *v, char *why, size_t n) {
    if (zs_task_get(v)) return 0;
    char list[200];
    zs_task_names(list, sizeof list);
    snprintf(why, n, "unknown zero-shot task '%s' (expected one of %s)", v, list);
    return -1;
}

static int check_seqlen(const char *v, char *why, size_t n) {
    if (strcmp(v, "1") != 0) return 0;
    snprintf(why, n, "a window of 1 token has no target (expected 0 = the model's, or >= 2)");
    return -1;
}

/* [run] max_memory: "auto", or a whole number of MB in 1..2^30 (empty: no budget). */
static int check_max_memory(const char *v, char *why, size_t n) {
    long mb;
    if (!*v || !strcmp(v, "auto")) return 0;
    if (qh_parse_long(v, &mb) == 0 && mb >= 1 && mb <= (1L << 30)) return 0;
    snprintf(why, n, "'%s' is not a budget (expected a whole number of MB in 1..%ld, or auto)", v, 1L << 30);
    return -1;
}

static int check_nonempty(const char *v, char *why, size_t n) {
    if (*v) return 0;
    snprintf(why, n, "empty value");
    return -1;
}

static int check_target(const char *v, char *why, size_t n) {
    AccTarget t;
    return acc_target_parse(v, &t, why, n);
}

static int check_no_quote(const char *v, char *why, size_t n) {
    if (!strchr(v, '\'') && !strchr(v, '\n')) return 0;
    snprintf(why, n, "a quote or newline cannot be passed to Slurm safely");
    return -1;
}

static int check_slurm_time(const char *v, char *why, size_t n) {
    long m;
    if (slurm_parse_time(v, &m) == 0) return 0;
    snprintf(why, n, "'%s' is not a Slurm time (expected minutes, H:M:S or D-H:M:S)", v);
    return -1;
}

static int check_slurm_mem(const char *v, char *why, size_t n) {
    long mb;
    if (!*v || slurm_parse_mem(v, &mb) == 0) return 0;
    snprintf(why, n, "'%s' is not a Slurm memory size (expected MB, or a number with K, M, G or T)", v);
    return -1;
}

static int check_speed_setup(const char *v, char *why, size_t n) {
    for (int s = 0; s < SPEED_NSETUPS; s++)
        if (!strcmp(v, speed_setup_names[s])) return 0;
    snprintf(why, n, "unknown setup '%s' (expected scratch, prefix)", v);
    return -1;
}

static int check_slurm_word(const char *v, char *why, size_t n) {
    for (const char *c = v; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.')) {
            snprintf(why, n, "'%s' is not a name (letters, digits, '_', '-', '.')", v);
            return -1;
        }
    return 0;
}

/* ---- the table -------------------------------------------------------------------- */

/* The calibration keys apply to the methods that need a Hessian (a marker,
 * replaced by that mask in exp_key_table). */
#define EXP_CALIB_METHODS 0x80000000u


static const ExpKey fixed_keys[] = {
    /* section, name, type, flags, default, min, max, choices, methods, check, help */
    {ES_EXPERIMENT, "description", EK_STR, 0, "", 0, 0, NULL, 0, NULL, "one line printed above the report's table"},
    {ES_MODEL, "path", EK_STR, EXP_REQUIRED, NULL, 0, 0, NULL, 0, check_nonempty,
     "the checkpoint (llama2.c .bin, or a Hugging Face directory); e.g. ${LLAMA7B_PATH}"},
    {ES_MODEL, "format", EK_ENUM, 0, "auto", 0, 0, "auto|llama2c|hf", 0, NULL,
     "checkpoint format: auto (a file is llama2.c, a directory Hugging Face)"},
    {ES_MODEL, "tokenizer", EK_STR, 0, "", 0, 0, NULL, 0, NULL, "tokenizer.bin, tokenizer.model or tokenizer.json (default: the one found beside / in the model, as --model finds it)"},
    {ES_CALIBRATION, "dataset", EK_STR, EXP_SWEEP, "c4", 0, 0, NULL, EXP_CALIB_METHODS, check_calib,
     "calibration: c4 | wikitext2 | ptb | file:PATH (text) | jsonl:PATH (documents, sampled like c4) | tokens:PATH "
     "(ids as given: .npy (N, seqlen) or (T,), raw int32) (rtn uses none)"},
    {ES_CALIBRATION, "nsamples", EK_INT, EXP_SWEEP, "128", 1, 1000000, NULL, EXP_CALIB_METHODS, NULL, "calibration windows"},
    {ES_CALIBRATION, "seqlen", EK_INT, EXP_SWEEP, "0", 0, 1 << 20, NULL, EXP_CALIB_METHODS, check_seqlen,
     "calibration window length in tokens (0: the model's seq_len, at most 2048)"},
    {ES_CALIBRATION, "seed", EK_INT, EXP_SWEEP, "0", 0, (double)INT32_MAX, NULL, EXP_CALIB_METHODS, NULL,
     "sampling seed (CPython random.seed)"},
    {ES_METHODS, "run", EK_ENUM, EXP_LIST | EXP_REQUIRED, NULL, 0, 0, NULL /* the method names */, 0, NULL,
     "the methods to run, in this order"},
    /* the [methods] keys of quant_settings[] go here (exp_key_table) */
    {ES_EVAL, "datasets", EK_STR, EXP_LIST, "wikitext2, ptb, c4", 0, 0, NULL, 0, check_eval_dataset,
     "evaluation datasets (SPEC 7): wikitext2 ptb ptb-new c4 c4-new tinystories file:PATH"},
    {ES_EVAL, "seqlen", EK_INT, 0, "0", 0, 1 << 20, NULL, 0, check_seqlen,
     "evaluation window (0: the model's seq_len, at most 2048)"},
    {ES_EVAL, "max_windows", EK_INT, 0, "0", 0, 1e12, NULL, 0, NULL, "at most this many windows per dataset (0: all)"},
    {ES_EVAL, "kld", EK_BOOL, 0, "false", 0, 0, NULL, 0, NULL,
     "also KL divergence, top-token agreement and dp against the full-precision model (llama.cpp's statistics; "
     "runs the full-precision model alongside each point's evaluation)"},
    {ES_EVAL, "kld_scope", EK_ENUM, 0, "all", 0, 0, "all|second-half", 0, NULL,
     "positions of those metrics: every target, or llama.cpp's second half of each window"},
    {ES_EVAL, "kld_datasets", EK_STR, EXP_LIST, "", 0, 0, NULL, 0, check_eval_dataset,
     "with kld: only these of the datasets (default: every one; each costs a second forward pass)"},
    {ES_EVAL, "zeroshot", EK_STR, EXP_LIST, "", 0, 0, NULL, 0, check_zeroshot_task,
     "zero-shot tasks scored as lm-eval scores them, for every point and full precision: arc_easy arc_challenge piqa "
     "hellaswag winogrande (their files in zeroshot_data)"},
    {ES_EVAL, "zeroshot_limit", EK_INT, 0, "0", 0, 1e9, NULL, 0, NULL, "the first N items of each zero-shot task (0: all)"},
    {ES_EVAL, "zeroshot_data", EK_STR, 0, "", 0, 0, NULL, 0, NULL,
     "the folder of the zero-shot tasks' JSON Lines files (default: $ZEROSHOT_DATA)"},
    {ES_RUN, "device", EK_ENUM, 0, "auto", 0, 0, "auto|cpu|cuda", 0, NULL, "where forward passes run"},
    {ES_RUN, "data", EK_STR, 0, "", 0, 0, NULL, 0, NULL, "data root (default: $QH_DATA, else data)"},
    {ES_RUN, "max_memory", EK_STR, 0, "", 0, 0, NULL, 0, check_max_memory,
     "host budget in MB: every point and the full-precision row run block by block within it (the checkpoint read "
     "one block at a time, each quantized block written to the point's model file as it finishes, the evaluation "
     "decoding the blocks from that file); auto: block by block exactly when the memory plan says the model does not "
     "fit this host (MemAvailable) or the GPU whole; empty: the whole model in memory. Not part of point ids"},
    {ES_RUN, "max_device_memory", EK_INT, 0, "0", 0, 1 << 30, NULL, 0, NULL,
     "GPU budget in MB for the block-by-block runs (0: what the GPU has free); needs max_memory"},
    {ES_OUTPUT, "dir", EK_STR, 0, "", 0, 0, NULL, 0, NULL, "results folder (default: results/<experiment name>)"},
    {ES_OUTPUT, "save_models", EK_BOOL, 0, "false", 0, 0, NULL, 0, NULL,
     "also save each quantized model (models/<id>.h5)"},
    {ES_SLURM, "partition", EK_STR, 0, "", 0, 0, NULL, 0, check_no_quote, "#SBATCH --partition (empty: the default)"},
    {ES_SLURM, "account", EK_STR, 0, "", 0, 0, NULL, 0, check_no_quote, "#SBATCH --account"},
    {ES_SLURM, "qos", EK_STR, 0, "", 0, 0, NULL, 0, check_no_quote, "#SBATCH --qos"},
    {ES_SLURM, "time", EK_STR, 0, "12:00:00", 0, 0, NULL, 0, check_slurm_time,
     "#SBATCH --time of one array task (M, H:M:S, D-H:M:S)"},
    {ES_SLURM, "cpus", EK_INT, 0, "0", 0, 4096, NULL, 0, NULL,
     "#SBATCH --cpus-per-task (0: fit the node, at most 8: the partition's largest with --submit, else this machine)"},
    {ES_SLURM, "gpus", EK_INT, 0, "0", 0, 64, NULL, 0, NULL, "GPUs per task (0: none)"},
    {ES_SLURM, "gpu_option", EK_ENUM, 0, "gres", 0, 0, "gres|gpus", 0, NULL,
     "how GPUs are asked for: --gres=gpu[:TYPE]:N or --gpus=[TYPE:]N"},
    {ES_SLURM, "gpu_type", EK_STR, 0, "", 0, 0, NULL, 0, check_slurm_word, "GPU type for gres/gpus, e.g. a100 (empty: any)"},
    {ES_SLURM, "mem", EK_STR, 0, "", 0, 0, NULL, 0, check_slurm_mem, "#SBATCH --mem per task (MB, or e.g. 64G; empty: the default)"},
    {ES_SLURM, "constraint", EK_STR, 0, "", 0, 0, NULL, 0, check_no_quote, "#SBATCH --constraint (node features)"},
    {ES_SLURM, "extra", EK_STR, 0, "", 0, 0, NULL, 0, slurm_check_extra,
     "more #SBATCH options, separated by ';' (e.g. --mail-type=END,FAIL; --exclusive)"},
    {ES_REPORT, "targets", EK_STR, EXP_LIST, "+1%", 0, 0, NULL, 0, check_target,
     "perplexity targets of the bits-at-equal-accuracy table besides full precision +1%: +X% (every dataset) or "
     "DATASET:PPL, e.g. wikitext2:5.88"},
    {ES_SPEED, "setups", EK_STR, EXP_LIST, "scratch, prefix", 0, 0, NULL, 0, check_speed_setup,
     "a [speed] section makes `sweep` time generation of the full-precision model and every point's saved model "
     "(needs [output] save_models): scratch (tokens from the start token), prefix (after a prompt)"},
    {ES_SPEED, "repeats", EK_INT, 0, "5", 1, SPEED_MAX_REPEATS, NULL, 0, NULL, "runs per setup; the median is reported"},
    {ES_SPEED, "tokens", EK_INT, 0, "100", 1, 1000000, NULL, 0, NULL, "tokens generated (and timed) per run"},
    {ES_SPEED, "prefix", EK_INT, 0, "-1", -1, 1e7, NULL, 0, NULL,
     "the prefix setup's prompt (-1: the paper's 1024, or the model's context less tokens when shorter)"},
    {ES_SPEED, "kernels", EK_ENUM, 0, "auto", 0, 0, QUANT_KERNELS_CHOICES, 0, NULL,
     "the matrix-vector kernel of the quantized linears (auto falls back to decoded for a file the kernels cannot "
     "take, with a message)"},
    {ES_SPEED, "matvec", EK_BOOL, 0, "true", 0, 0, NULL, 0, NULL, "also the matrix-vector time per layer shape"},
    {ES_SEARCH, "method", EK_ENUM, 0, "", 0, 0, NULL /* the method names */, 0, NULL,
     "a [search] section makes `sweep` bisect one knob of this method instead of running the product"},
    {ES_SEARCH, "key", EK_ENUM, 0, "", 0, 0, "groupsize|outlier_threshold|wbits", 0, NULL,
     "the knob searched (the method's other keys must have one value each)"},
    {ES_SEARCH, "lo", EK_DOUBLE, 0, "", 0, 1e12, NULL, 0, NULL, "one end of the range searched"},
    {ES_SEARCH, "hi", EK_DOUBLE, 0, "", 0, 1e12, NULL, 0, NULL, "the other end"},
    {ES_SEARCH, "target", EK_STR, 0, "+1%", 0, 0, NULL, 0, check_target,
     "the perplexity to reach: +X% above full precision or DATASET:PPL (dataset default: the first of [eval])"},
    {ES_SEARCH, "tolerance", EK_DOUBLE, 0, "1", 0, 1e12, NULL, 0, NULL,
     "stop when the setting that reaches the target and the one that misses it are this close (knob units)"},
    {0, NULL, 0, 0, NULL, 0, 0, NULL, 0, NULL, NULL},
};

static ExpKey exp_keys[EXP_MAX_KEYS + 1];

/* The row of quant_settings[] a [methods] key is made from (NULL for run). */
static const QuantSetting *key_setting(const ExpKey *k) {
    return k->section == ES_METHODS ? quant_setting_find(k->name) : NULL;
}
static char method_choices[256];

/* Build exp_keys: the fixed rows, with the keys of quant_settings[] after
 * methods.run; method masks from the methods' capabilities. Idempotent. */
const ExpKey *exp_key_table(void) {
    if (exp_keys[0].name) return exp_keys;
    unsigned calib_mask = 0;
    for (int m = 0; quant_methods[m].name; m++)
        if (quant_methods[m].caps & QUANT_CAP_CALIB) calib_mask |= 1u << m;
    quant_method_names(~0u, "|", method_choices, sizeof method_choices);
    int n = 0;
    for (const ExpKey *k = fixed_keys; k->name; k++) {
        if (n >= EXP_MAX_KEYS) break; /* too_many: refused below */
        exp_keys[n] = *k;
        if (exp_keys[n].methods == EXP_CALIB_METHODS) exp_keys[n].methods = calib_mask;
        int is_run = k->section == ES_METHODS && !strcmp(k->name, "run");
        if (is_run || (k->section == ES_SEARCH && !strcmp(k->name, "method"))) exp_keys[n].choices = method_choices;
        n++;
        if (!is_run) continue;
        for (const QuantSetting *q = quant_settings; q->name; q++) {
            if (n >= EXP_MAX_KEYS) break;
            static const ExpKeyType type_of[] = {[QS_INT] = EK_INT, [QS_DOUBLE] = EK_DOUBLE, [QS_BOOL] = EK_BOOL,
                                                 [QS_ENUM] = EK_ENUM};
            exp_keys[n] = (ExpKey){.section = ES_METHODS, .name = q->name, .type = type_of[q->type],
                                   .flags = EXP_SWEEP | ((q->flags & QS_ROW) ? EXP_ROW : 0) |
                                            ((q->flags & QS_INF) ? EXP_INF : 0),
                                   .def = NULL, .min = q->min, .max = q->max, .choices = q->choices,
                                   .methods = quant_setting_methods(q), .help = q->help};
            if (q->type == QS_BOOL) exp_keys[n].min = exp_keys[n].max = 0;
            n++;
        }
    }
    if (n >= EXP_MAX_KEYS) { /* a programming error: the table outgrew its array */
        fprintf(stderr, "qharness: internal: more experiment keys than EXP_MAX_KEYS (%d)\n", EXP_MAX_KEYS);
        abort();
    }
    return exp_keys;
}

int exp_nkeys(void) {
    exp_key_table();
    int n = 0;
    while (exp_keys[n].name) n++;
    return n;
}

static int key_index(ExpSection s, const char *name) {
    for (int i = 0; exp_keys[i].name; i++)
        if (exp_keys[i].section == s && !strcmp(exp_keys[i].name, name)) return i;
    return -1;
}

static int is_method_section(ExpSection s) { return s >= ES_METHOD0 && (int)(s - ES_METHOD0) < quant_nmethods(); }
static int is_method_slot(ExpSection s) { return s >= ES_METHOD0 && s < ES_EVAL; }
static unsigned all_methods(void) { return (1u << quant_nmethods()) - 1; }
static unsigned method_bit(int m) { return 1u << m; }
static int method_index(const char *name) { return quant_method_index(name); }
/* Keys that a per-method section [m] accepts: sweepable method and calibration keys that m uses. */
static int method_key_index(int m, const char *name) {
    for (int i = 0; exp_keys[i].name; i++) {
        const ExpKey *k = &exp_keys[i];
        if ((k->section == ES_METHODS || k->section == ES_CALIBRATION) && (k->flags & EXP_SWEEP) &&
            (k->methods & method_bit(m)) && !strcmp(k->name, name))
            return i;
    }
    return -1;
}

static void methods_text(unsigned mask, char *buf, size_t n) { quant_method_names(mask, ", ", buf, n); }

/* What a key expects, for messages and help: "an integer in 1..8", "one of identity | act_order". */
static void expected_text(const ExpKey *k, char *buf, size_t n) {
    switch (k->type) {
    case EK_INT:
        snprintf(buf, n, "%san integer in %.0f..%.0f", (k->flags & EXP_ROW) ? "row or " : "", k->min, k->max);
        break;
    case EK_DOUBLE:
        if (k->flags & EXP_INF) snprintf(buf, n, "a number >= %g, or inf", k->min);
        else snprintf(buf, n, "a number in %g..%g", k->min, k->max);
        break;
    case EK_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case EK_ENUM: {
        snprintf(buf, n, "one of ");
        for (const char *c = k->choices; *c; c++) {
            size_t l = strlen(buf);
            if (l + 4 >= n) break;
            if (*c == '|') strcat(buf, " | ");
            else buf[l] = *c, buf[l + 1] = 0;
        }
        break;
    }
    default:
        snprintf(buf, n, "text");
    }
}

/* ---- parse state -------------------------------------------------------------------- */

typedef struct ParseState {
    Experiment *x;
    const char *path;
    const char *p;        /* next unread character of the text */
    int line;             /* lines handed to inih so far = line of the current key */
    int cont;             /* the current line starts with whitespace (a continuation) */
    int long_line;        /* first line longer than inih's buffer, 0 if none */
    int nerr;
    char bad_section[64]; /* last unknown section reported */
    int cap;
    unsigned flags;       /* EXP_PARSE_* */
    unsigned char bad[ES_COUNT][EXP_MAX_KEYS]; /* (section, key) had an error: no "missing" message too */
} ParseState;

static void perr(ParseState *st, int line, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void perr(ParseState *st, int line, const char *sec, const char *key, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char where[512];
    if (line > 0) snprintf(where, sizeof where, "%s:%d", st->path, line);
    else snprintf(where, sizeof where, "%s", st->path);
    if (key) qh_error("%s: %s.%s: %s", where, sec, key, msg);
    else qh_error("%s: %s", where, msg);
    st->nerr++;
}

/* inih reader: one line at a time from memory, counting lines. */
static char *reader(char *buf, int n, void *user) {
    ParseState *st = user;
    if (!*st->p) return NULL;
    const char *e = strchr(st->p, '\n');
    size_t len = e ? (size_t)(e - st->p) + 1 : strlen(st->p);
    st->line++;
    st->cont = (*st->p == ' ' || *st->p == '\t');
    if (len > (size_t)n - 1) {
        if (!st->long_line) st->long_line = st->line;
        len = (size_t)n - 1;
        memcpy(buf, st->p, len);
        buf[len] = 0;
        st->p = e ? e + 1 : st->p + strlen(st->p);
        return buf;
    }
    memcpy(buf, st->p, len);
    buf[len] = 0;
    st->p += len;
    return buf;
}

/* Is the line after the current one an indented continuation (not blank, not a comment)? */
static int next_line_continues(const ParseState *st) {
    const char *c = st->p;
    if (*c != ' ' && *c != '\t') return 0;
    while (*c == ' ' || *c == '\t') c++;
    return *c && *c != '\n' && *c != '\r' && *c != ';' && *c != '#';
}

/* ${VAR} and ${VAR:-default}. 0, or -1 with `why`. *out owned. keep_unset:
 * an unset variable without default stays as written. */
static int expand_env(const char *in, char **out, char *why, size_t wn, int keep_unset) {
    size_t cap = strlen(in) + 64, n = 0;
    char *o = qh_malloc(cap);
    for (const char *c = in; *c;) {
        if (c[0] == '$' && c[1] == '{') {
            const char *end = strchr(c + 2, '}');
            if (!end) {
                snprintf(why, wn, "'${' without a closing '}' in '%s'", in);
                free(o);
                return -1;
            }
            char var[256];
            size_t vl = (size_t)(end - c - 2);
            if (vl >= sizeof var) vl = sizeof var - 1;
            memcpy(var, c + 2, vl);
            var[vl] = 0;
            const char *def = NULL;
            char *colon = strstr(var, ":-");
            if (colon) {
                *colon = 0;
                def = colon + 2;
            }
            const char *val = getenv(var);
            if (!val || !*val) val = def;
            char kept[300];
            if (!val && keep_unset) {
                snprintf(kept, sizeof kept, "${%s}", var);
                val = kept;
            }
            if (!val) {
                snprintf(why, wn, "environment variable %s is not set (export %s=..., or write ${%s:-default})", var,
                         var, var);
                free(o);
                return -1;
            }
            size_t l = strlen(val);
            if (n + l + 1 > cap) o = qh_realloc(o, cap = 2 * (n + l + 1));
            memcpy(o + n, val, l);
            n += l;
            c = end + 1;
        } else {
            if (n + 2 > cap) o = qh_realloc(o, cap *= 2);
            o[n++] = *c++;
        }
    }
    o[n] = 0;
    *out = o;
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) s[--l] = 0;
    return s;
}

static int parse_bool(const char *v, double *out) {
    static const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, t[i])) return *out = 1, 0;
        if (!strcasecmp(v, f[i])) return *out = 0, 0;
    }
    return -1;
}

static int parse_enum(const char *choices, const char *v, double *out) {
    int idx = 0;
    size_t vl = strlen(v);
    for (const char *c = choices; *c; idx++) {
        const char *e = strchr(c, '|');
        size_t l = e ? (size_t)(e - c) : strlen(c);
        if (l == vl && !strncmp(c, v, l)) return *out = idx, 0;
        c += l + (e ? 1 : 0);
    }
    return -1;
}

/* Parse one value of key k: 0, or -1 with `why`. */
static int parse_value(const ExpKey *k, const char *v, double *num, char *why, size_t wn) {
    char exp[160];
    expected_text(k, exp, sizeof exp);
    *num = NAN;
    switch (k->type) {
    case EK_INT: {
        long l;
        if ((k->flags & EXP_ROW) && !strcmp(v, "row")) {
            *num = 0;
            break;
        }
        if (qh_parse_long(v, &l) != 0) {
            snprintf(why, wn, "'%s' is not a number (expected %s)", v, exp);
            return -1;
        }
        if ((double)l < k->min || (double)l > k->max) {
            snprintf(why, wn, "%ld is out of range (expected %s)", l, exp);
            return -1;
        }
        *num = (double)l;
        break;
    }
    case EK_DOUBLE: {
        double d;
        if (qh_parse_double(v, &d) != 0) {
            snprintf(why, wn, "'%s' is not a number (expected %s)", v, exp);
            return -1;
        }
        if (isinf(d) && !(k->flags & EXP_INF)) {
            snprintf(why, wn, "'%s' is not finite (expected %s)", v, exp);
            return -1;
        }
        if (d < k->min || d > k->max) {
            snprintf(why, wn, "%g is out of range (expected %s)", d, exp);
            return -1;
        }
        *num = d;
        break;
    }
    case EK_BOOL:
        if (parse_bool(v, num) != 0) {
            snprintf(why, wn, "'%s' is not a boolean (expected %s)", v, exp);
            return -1;
        }
        break;
    case EK_ENUM:
        if (parse_enum(k->choices, v, num) != 0) {
            if (k->section == ES_METHODS && !strcmp(k->name, "run"))
                snprintf(why, wn, "unknown method '%s' (expected %s)", v, exp);
            else snprintf(why, wn, "'%s' is not valid (expected %s)", v, exp);
            return -1;
        }
        break;
    case EK_STR:
        break;
    }
    if (k->check && k->check(v, why, wn) != 0) return -1;
    return 0;
}

/* Split a value into items: on commas for list keys, else one item. Returns the
 * count, or -1 with `why` (empty list, empty item). items[] point into buf. */
static int split_items(char *buf, int is_list, char **items, int max, char *why, size_t wn) {
    char *v = trim(buf);
    if (!is_list) {
        items[0] = v;
        return 1;
    }
    if (!*v) {
        snprintf(why, wn, "empty list (expected one value or several separated by commas)");
        return -1;
    }
    int n = 0;
    for (char *s = v;;) {
        char *c = strchr(s, ',');
        if (c) *c = 0;
        char *it = trim(s);
        if (!*it) {
            snprintf(why, wn, "empty item in the list (two commas, or a comma at an end)");
            return -1;
        }
        if (n == max) {
            snprintf(why, wn, "more than %d values", max);
            return -1;
        }
        items[n++] = it;
        if (!c) break;
        s = c + 1;
    }
    return n;
}

static ExpEntry *find_entry(Experiment *x, ExpSection s, int key, const char *rule) {
    for (int i = 0; i < x->nentries; i++) {
        ExpEntry *e = &x->entries[i];
        if (e->section != s) continue;
        if (rule ? (e->rule_name && !strcmp(e->rule_name, rule)) : e->key == key) return e;
    }
    return NULL;
}

static ExpEntry *new_entry(ParseState *st, ExpSection s, int key, int line) {
    Experiment *x = st->x;
    if (x->nentries == st->cap) x->entries = qh_realloc(x->entries, sizeof(ExpEntry) * (size_t)(st->cap = st->cap * 2 + 16));
    ExpEntry *e = &x->entries[x->nentries++];
    memset(e, 0, sizeof *e);
    e->section = s;
    e->key = key;
    e->line = line;
    return e;
}

static void entry_add(ExpEntry *e, const char *text, double num) {
    e->text = qh_realloc(e->text, sizeof(char *) * (size_t)(e->n + 1));
    e->num = qh_realloc(e->num, sizeof(double) * (size_t)(e->n + 1));
    e->text[e->n] = qh_strdup(text);
    e->num[e->n] = num;
    e->n++;
}

/* An [exclude] rule: "key=value, key=value". Conditions stored as entries'
 * text "key=value" with num = the parsed value; ckey in rule_keys. */
static void parse_exclude(ParseState *st, const char *name, const char *value) {
    int line = st->line;
    if (find_entry(st->x, ES_EXCLUDE, -1, name)) {
        perr(st, line, "exclude", name, "rule defined twice");
        return;
    }
    char *buf = qh_strdup(value), *items[EXP_MAX_VALUES], why[512];
    int n = split_items(buf, 1, items, EXP_MAX_VALUES, why, sizeof why);
    if (n < 0) {
        perr(st, line, "exclude", name, "%s", why);
        free(buf);
        return;
    }
    ExpEntry *e = new_entry(st, ES_EXCLUDE, -1, line);
    e->rule_name = qh_strdup(name);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        if (!eq) {
            perr(st, line, "exclude", name, "'%s' is not a condition (expected key=value, e.g. method=rtn)", items[i]);
            continue;
        }
        *eq = 0;
        char *k = trim(items[i]), *v = trim(eq + 1);
        double num = NAN;
        if (!strcmp(k, "method")) {
            int m = method_index(v);
            if (m < 0) {
                char ms[128];
                quant_method_names(~0u, " | ", ms, sizeof ms);
                perr(st, line, "exclude", name, "unknown method '%s' (expected %s)", v, ms);
                continue;
            }
            num = m;
        } else {
            int ki = key_index(ES_METHODS, k);
            if (ki < 0) ki = key_index(ES_CALIBRATION, k);
            if (ki < 0 || !(exp_keys[ki].flags & EXP_SWEEP)) {
                perr(st, line, "exclude", name, "'%s' is not a swept key (expected method or a method / calibration key)", k);
                continue;
            }
            if (parse_value(&exp_keys[ki], v, &num, why, sizeof why) != 0) {
                perr(st, line, "exclude", name, "%s: %s", k, why);
                continue;
            }
        }
        char cond[512];
        snprintf(cond, sizeof cond, "%s=%s", k, v);
        entry_add(e, cond, num);
    }
    free(buf);
}

/* A [paper] entry: one published number (accuracy.h paper_parse), its setting
 * keys checked against the table like [exclude]'s. */
static void parse_paper(ParseState *st, const char *name, const char *value) {
    int line = st->line;
    Experiment *x = st->x;
    for (int i = 0; i < x->npaper; i++)
        if (!strcmp(x->paper[i].name, name)) {
            perr(st, line, "paper", name, "%s (first at line %d; keep each entry on one line)",
                 st->cont ? "a continuation line" : "defined twice", x->paper[i].line);
            return;
        }
    PaperValue p;
    char why[1024];
    if (paper_parse(name, value, &p, why, sizeof why, check_eval_dataset) != 0) {
        perr(st, line, "paper", name, "%s", why);
        return;
    }
    p.line = line;
    int m = method_index(p.method);
    for (int i = 0; i < p.nconds; i++) {
        int ki = key_index(ES_METHODS, p.cond_key[i]);
        if (ki < 0 || !(exp_keys[ki].flags & EXP_SWEEP)) {
            perr(st, line, "paper", name, "'%s' is not a method key (expected e.g. wbits, groupsize, outlier_threshold)",
                 p.cond_key[i]);
            return;
        }
        if (m >= 0 && !(exp_keys[ki].methods & method_bit(m))) {
            perr(st, line, "paper", name, "%s does not use %s", p.method, p.cond_key[i]);
            return;
        }
        double num;
        if (parse_value(&exp_keys[ki], p.cond_val[i], &num, why, sizeof why) != 0) {
            perr(st, line, "paper", name, "%s: %s", p.cond_key[i], why);
            return;
        }
        p.cond_num[i] = num;
    }
    x->paper = qh_realloc(x->paper, sizeof(PaperValue) * (size_t)(x->npaper + 1));
    x->paper[x->npaper++] = p;
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
    ParseState *st = user;
    int line = st->line;
    int s = -1;
    for (int i = 0; i < ES_COUNT; i++)
        if (exp_section_name((ExpSection)i) && !strcmp(section, exp_section_name((ExpSection)i))) s = i;
    if (!*section) { /* before the first [section]: inih passes "" */
        perr(st, line, "(no section)", name, "a key before the first [section] (expected it under one: [model], "
             "[methods], ...; see qharness sweep --help)");
        return 1;
    }
    if (s < 0) {
        if (strcmp(st->bad_section, section) != 0) {
            snprintf(st->bad_section, sizeof st->bad_section, "%s", section);
            char known[256] = "";
            for (int i = 0; i < ES_COUNT; i++)
                if (exp_section_name((ExpSection)i)) {
                    size_t l = strlen(known);
                    snprintf(known + l, sizeof known - l, "%s%s", l ? ", " : "", exp_section_name((ExpSection)i));
                }
            perr(st, line, section, name, "[%s] is not a known section (expected %s)", section, known);
        }
        return 1;
    }
    if (s == ES_EXCLUDE) {
        parse_exclude(st, name, value);
        return 1;
    }
    if (s == ES_PAPER) {
        parse_paper(st, name, value);
        return 1;
    }
    int ki;
    if (is_method_section((ExpSection)s)) {
        int m = s - ES_METHOD0;
        ki = method_key_index(m, name);
        if (ki < 0) {
            int other = key_index(ES_METHODS, name);
            if (other < 0) other = key_index(ES_CALIBRATION, name);
            if (other >= 0 && exp_keys[other].methods) {
                char ms[64];
                methods_text(exp_keys[other].methods, ms, sizeof ms);
                perr(st, line, section, name, "%s does not use %s (it applies to: %s)", quant_methods[m].name, name, ms);
            } else {
                perr(st, line, section, name, "unknown key (see qharness sweep --help for the keys of [%s])", section);
            }
            return 1;
        }
    } else {
        ki = key_index((ExpSection)s, name);
        if (ki < 0) {
            char known[512] = "";
            for (int i = 0; exp_keys[i].name; i++)
                if (exp_keys[i].section == (ExpSection)s) {
                    if (known[0]) strncat(known, ", ", sizeof known - strlen(known) - 1);
                    strncat(known, exp_keys[i].name, sizeof known - strlen(known) - 1);
                }
            perr(st, line, section, name, "unknown key (known in [%s]: %s)", section, known);
            return 1;
        }
    }
    const ExpKey *k = &exp_keys[ki];
    ExpEntry *e = find_entry(st->x, (ExpSection)s, ki, NULL);
    int append = 0;
    if (e) {
        if (st->cont && (k->flags & (EXP_SWEEP | EXP_LIST))) {
            append = 1; /* an indented line continues the list */
        } else {
            perr(st, line, section, name, "set twice (first at line %d)", e->line);
            return 1;
        }
    }
    char why[1024], *expanded;
    st->bad[s][ki] = 1; /* until the value is stored */
    if (expand_env(value, &expanded, why, sizeof why, (st->flags & EXP_PARSE_KEEP_UNSET) != 0) != 0) {
        perr(st, line, section, name, "%s; %s.%s is %s", why, section, name, k->help);
        return 1;
    }
    char *items[EXP_MAX_VALUES];
    int is_list = (k->flags & (EXP_SWEEP | EXP_LIST)) != 0;
    if (is_list && next_line_continues(st)) { /* "wbits = 2, 3," then an indented "4": the comma joins them */
        char *v = trim(expanded);
        size_t l = strlen(v);
        if (l && v[l - 1] == ',') v[l - 1] = 0;
        memmove(expanded, v, strlen(v) + 1);
    }
    int n = split_items(expanded, is_list, items, EXP_MAX_VALUES, why, sizeof why);
    if (n < 0) {
        perr(st, line, section, name, "%s", why);
        free(expanded);
        return 1;
    }
    double nums[EXP_MAX_VALUES];
    for (int i = 0; i < n; i++) {
        if (parse_value(k, items[i], &nums[i], why, sizeof why) != 0) {
            perr(st, line, section, name, "%s", why);
            free(expanded);
            return 1;
        }
    }
    if (!append) e = new_entry(st, (ExpSection)s, ki, line);
    for (int i = 0; i < n; i++) entry_add(e, items[i], nums[i]);
    free(expanded);
    st->bad[s][ki] = 0;
    return 1;
}

static int ignore_key(void *user, const char *section, const char *name, const char *value) { return 1; }

/* Syntax errors (and over-long lines) before anything else, every one in line
 * order: a broken line such as an unclosed "[spqr" would otherwise make the
 * keys below it look misplaced (they land in the section above), and those
 * consequences would be reported before their cause. inih reports the first
 * bad line of a pass, so the text is passed again from the line after each
 * one. 0, or -1 after a message per error. */
static int syntax_errors(ParseState *st) {
    ParseState s = {.path = st->path, .p = st->x->text};
    int nerr = 0, long_said = 0;
    for (;;) {
        int base = s.line, rc = ini_parse_stream(reader, &s, ignore_key, NULL);
        if (rc == 0) break;
        if (rc < 0) {
            perr(st, 0, NULL, NULL, "cannot parse (inih error %d)", rc);
            return -1;
        }
        int bad = base + rc;
        if (s.long_line && !long_said && s.long_line < bad) { /* keep the line order */
            perr(st, s.long_line, NULL, NULL, "line longer than %d characters", INI_MAX_LINE - 2);
            nerr++;
            long_said = 1;
        }
        perr(st, bad, NULL, NULL, "syntax error (expected '[section]', 'key = value' or a comment)");
        nerr++;
        /* again from the line after the bad one */
        s.line = bad;
        s.p = st->x->text;
        for (int l = 0; l < bad && *s.p; l++) {
            const char *e = strchr(s.p, '\n');
            s.p = e ? e + 1 : s.p + strlen(s.p);
        }
        if (!*s.p) break;
    }
    if (s.long_line && !long_said) {
        perr(st, s.long_line, NULL, NULL, "line longer than %d characters", INI_MAX_LINE - 2);
        nerr++;
    }
    return nerr ? -1 : 0;
}

/* ---- resolving -------------------------------------------------------------------- */

const ExpEntry *experiment_entry(const Experiment *x, ExpSection s, const char *key) {
    int ki = key_index(s, key);
    if (ki < 0 && is_method_section(s)) ki = method_key_index(s - ES_METHOD0, key);
    if (ki < 0) return NULL;
    for (int i = 0; i < x->nentries; i++)
        if (x->entries[i].section == s && x->entries[i].key == ki) return &x->entries[i];
    return NULL;
}

const char *experiment_value(const Experiment *x, ExpSection s, const char *key, int *line) {
    const ExpEntry *e = experiment_entry(x, s, key);
    if (line) *line = e ? e->line : 0;
    if (e) return e->text[0];
    int ki = key_index(s, key);
    return ki >= 0 && exp_keys[ki].def ? exp_keys[ki].def : "";
}

/* Set key ki of a point's spec from value (text, num). */
static void spec_set(QuantRunSpec *sp, const ExpKey *k, const char *text, double num) {
    const char *n = k->name;
    if (k->section == ES_CALIBRATION) {
        if (!strcmp(n, "dataset")) sp->calib = text;
        else if (!strcmp(n, "nsamples")) sp->nsamples = (int)num;
        else if (!strcmp(n, "seqlen")) sp->seqlen = (int)num;
        else if (!strcmp(n, "seed")) sp->seed = (uint64_t)num;
        return;
    }
    const QuantSetting *q = key_setting(k);
    if (q) quant_setting_set(&sp->params, q, num);
}

/* The value of key k in a spec, as a number (strings: NAN) and as text. */
static double spec_get(const QuantRunSpec *sp, const ExpKey *k, char *text, size_t tn) {
    const char *n = k->name;
    const QuantSetting *q = key_setting(k);
    if (q) {
        double v = quant_setting_get(&sp->params, q);
        quant_setting_format(q, v, text, tn);
        return v;
    }
    double v = NAN;
    if (k->section == ES_CALIBRATION) {
        if (!strcmp(n, "dataset")) {
            snprintf(text, tn, "%s", sp->calib ? sp->calib : "");
            return NAN;
        }
        if (!strcmp(n, "nsamples")) v = sp->nsamples;
        else if (!strcmp(n, "seqlen")) v = sp->seqlen;
        else if (!strcmp(n, "seed")) v = (double)sp->seed;
    }
    snprintf(text, tn, "%.0f", v);
    return v;
}

/* The entry giving the values of key ki for method m: [m], then the key's own section. */
static const ExpEntry *method_entry(const Experiment *x, int m, int ki) {
    for (int i = 0; i < x->nentries; i++)
        if (x->entries[i].section == (ExpSection)(ES_METHOD0 + m) && x->entries[i].key == ki) return &x->entries[i];
    for (int i = 0; i < x->nentries; i++)
        if (x->entries[i].section == exp_keys[ki].section && x->entries[i].key == ki) return &x->entries[i];
    return NULL;
}

static int key_applies(const ExpKey *k, int m) {
    return (k->section == ES_METHODS || k->section == ES_CALIBRATION) && (k->flags & EXP_SWEEP) &&
           (k->methods & method_bit(m));
}

int exp_key_index(ExpSection s, const char *name) {
    exp_key_table();
    return key_index(s, name);
}

int exp_is_calibration_key(const char *key) {
    exp_key_table();
    return key_index(ES_CALIBRATION, key) >= 0;
}

int exp_method_uses(const char *method, const char *key, char *applies_to, size_t n) {
    exp_key_table();
    int m = method_index(method), ki = key_index(ES_METHODS, key);
    if (ki < 0) ki = key_index(ES_CALIBRATION, key);
    if (m < 0 || ki < 0 || !exp_keys[ki].methods) return -1;
    if (applies_to) methods_text(exp_keys[ki].methods, applies_to, n);
    return (exp_keys[ki].methods & method_bit(m)) != 0;
}

void experiment_id_of(const char *s, char id[13]) {
    char hex[65];
    sha256_buf(s, strlen(s), hex);
    memcpy(id, hex, 12);
    id[12] = 0;
}

static json_t *model_json(const Experiment *x) {
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(x->model_path));
    json_object_set_new(o, "format", json_string(x->model_format));
    json_object_set_new(o, "tokenizer", json_string(x->tokenizer));
    return o;
}

/* The evaluation settings; with_kld: the points' (the KL divergence named when
 * on, so that ids of experiments without it stay as they were), else the
 * full-precision evaluation's (which has none). */
static json_t *eval_json(const Experiment *x, int with_kld) {
    json_t *o = json_object(), *a = json_array();
    const ExpEntry *e = experiment_entry(x, ES_EVAL, "datasets");
    if (e) {
        for (int i = 0; i < e->n; i++) json_array_append_new(a, json_string(e->text[i]));
    } else {
        char *d = qh_strdup(x->eval_datasets), *save = NULL;
        for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) json_array_append_new(a, json_string(t));
        free(d);
    }
    json_object_set_new(o, "datasets", a);
    json_object_set_new(o, "seqlen", json_integer(x->eval_seqlen));
    json_object_set_new(o, "max_windows", json_integer(x->max_windows));
    if (x->zeroshot) { /* points and full precision alike; named only when on, so that other ids stay */
        json_t *za = json_array();
        char *l = qh_strdup(x->zeroshot), *save = NULL;
        for (char *t = strtok_r(l, ",", &save); t; t = strtok_r(NULL, ",", &save)) json_array_append_new(za, json_string(t));
        free(l);
        json_object_set_new(o, "zeroshot", za);
        json_object_set_new(o, "zeroshot_limit", json_integer(x->zeroshot_limit));
    }
    if (with_kld && x->kld) {
        json_object_set_new(o, "kld", json_string(kld_scope_names[x->kld_scope]));
        const ExpEntry *k = experiment_entry(x, ES_EVAL, "kld_datasets");
        if (k) {
            json_t *ka = json_array();
            for (int i = 0; i < k->n; i++) json_array_append_new(ka, json_string(k->text[i]));
            json_object_set_new(o, "kld_datasets", ka);
        }
    }
    return o;
}

static char *dumps(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static int rule_matches(const ExpEntry *r, int m, const QuantRunSpec *sp) {
    for (int i = 0; i < r->n; i++) {
        const char *cond = r->text[i];
        const char *eq = strchr(cond, '=');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - cond), cond);
        if (!strcmp(key, "method")) {
            if ((int)r->num[i] != m) return 0;
            continue;
        }
        int ki = key_index(ES_METHODS, key);
        if (ki < 0) ki = key_index(ES_CALIBRATION, key);
        if (ki < 0 || !key_applies(&exp_keys[ki], m)) return 0; /* the point has no such setting */
        char text[512];
        double v = spec_get(sp, &exp_keys[ki], text, sizeof text);
        if (exp_keys[ki].type == EK_STR) {
            if (strcmp(text, eq + 1) != 0) return 0;
        } else if (!(v == r->num[i])) {
            return 0;
        }
    }
    return r->n > 0;
}

/* The size of the product of the lists, over every method, before anything is
 * expanded: -1 after a message naming each method's lists when it exceeds
 * EXP_MAX_POINTS. */
static int check_product_size(const Experiment *x, ParseState *st, const ExpEntry *run) {
    int nk = exp_nkeys();
    double total = 0;
    char what[1024] = "";
    for (int r = 0; run && r < run->n; r++) {
        int m = (int)run->num[r];
        double prod = 1;
        char f[512] = "";
        for (int ki = 0; ki < nk; ki++) {
            const ExpEntry *e = key_applies(&exp_keys[ki], m) ? method_entry(x, m, ki) : NULL;
            if (!e || e->n < 2) continue;
            prod *= e->n;
            size_t l = strlen(f);
            snprintf(f + l, sizeof f - l, "%s%d %s (line %d)", l ? " x " : "", e->n, exp_keys[ki].name, e->line);
        }
        total += prod;
        size_t l = strlen(what);
        snprintf(what + l, sizeof what - l, "%s%s: %.0f%s%s", l ? "; " : "", quant_methods[m].name, prod, *f ? " = " : "", f);
    }
    if (total <= EXP_MAX_POINTS) return 0;
    perr(st, run->line, "methods", "run", "the lists make %.0f points (%s), more than %d: split the experiment into "
         "several files or shorten the lists", total, what, EXP_MAX_POINTS);
    return -1;
}

/* Open-addressing set of point ids (their first 12 hex digits are the hash):
 * index + 1 of the point in x->points, 0 for an empty slot. */
static int *id_set_find(int *tab, size_t cap, const ExpPoint *pts, const char *id) {
    size_t h = (size_t)strtoull(id, NULL, 16) & (cap - 1);
    while (tab[h] && strcmp(pts[tab[h] - 1].id, id) != 0) h = (h + 1) & (cap - 1);
    return &tab[h];
}

/* pt->json and pt->id from pt->spec: the canonical settings and their hash. */
static void point_identity(const Experiment *x, ExpPoint *pt) {
    json_t *o = json_object();
    json_object_set_new(o, "model", model_json(x));
    json_object_set_new(o, "eval", eval_json(x, 1));
    json_object_set_new(o, "quant", quant_spec_json(&pt->spec));
    pt->json = dumps(o);
    experiment_id_of(pt->json, pt->id);
}

static void base_label(const QuantRunSpec *sp, char *lab, size_t n) {
    const QuantParams *q = &sp->params;
    if (q->groupsize) snprintf(lab, n, "%s w%d g%d", sp->method, q->wbits, q->groupsize);
    else snprintf(lab, n, "%s w%d row", sp->method, q->wbits);
}

int experiment_make_point(const Experiment *x, const QuantRunSpec *spec, const char *extra, ExpPoint *pt) {
    memset(pt, 0, sizeof *pt);
    pt->spec = *spec;
    if (quant_params_validate(&spec->params, spec->method, INT_MAX / 2, 65536) != 0) return -1;
    point_identity(x, pt);
    char lab[512];
    base_label(spec, lab, sizeof lab);
    if (extra && *extra) snprintf(lab + strlen(lab), sizeof lab - strlen(lab), " %s", extra);
    pt->label = qh_strdup(lab);
    return 0;
}

void experiment_point_free(ExpPoint *pt) {
    free(pt->label);
    free(pt->json);
    memset(pt, 0, sizeof *pt);
}

/* The product of the lists for every method, minus exclusions and duplicates
 * (found through a hash set of ids: linear in the points). */
static int expand_points(Experiment *x, ParseState *st) {
    const ExpEntry *run = experiment_entry(x, ES_METHODS, "run");
    int nk = exp_nkeys(), cap = 0, rc = 0;
    if (check_product_size(x, st, run) != 0) return -1;
    size_t set_cap = 16;
    while (set_cap < 2 * (size_t)EXP_MAX_POINTS) set_cap *= 2;
    int *id_set = qh_calloc(set_cap, sizeof(int)); /* (set_cap) */
    for (int r = 0; run && r < run->n; r++) {
        int m = (int)run->num[r];
        int axes[EXP_MAX_KEYS], na = 0;
        const ExpEntry *ae[EXP_MAX_KEYS];
        for (int ki = 0; ki < nk; ki++) {
            if (!key_applies(&exp_keys[ki], m)) continue;
            const ExpEntry *e = method_entry(x, m, ki);
            if (!e && exp_keys[ki].section == ES_METHODS) continue; /* method default */
            axes[na] = ki;
            ae[na] = e; /* NULL: a calibration default */
            na++;
        }
        int idx[EXP_MAX_KEYS] = {0};
        for (;;) {
            ExpPoint pt;
            memset(&pt, 0, sizeof pt);
            QuantRunSpec *sp = &pt.spec;
            sp->method = quant_methods[m].name;
            quant_params_default(&sp->params, sp->method);
            sp->data_root = x->data_root;
            sp->device = x->device;
            if (!(quant_methods[m].caps & QUANT_CAP_CALIB)) { /* RTN needs no calibration (SPEC 3) */
                sp->calib = "none";
            } else { /* calibration defaults, then the axes */
                for (int ki = 0; ki < nk; ki++)
                    if (exp_keys[ki].section == ES_CALIBRATION) {
                        double num;
                        char why[256];
                        parse_value(&exp_keys[ki], exp_keys[ki].def, &num, why, sizeof why);
                        spec_set(sp, &exp_keys[ki], exp_keys[ki].def, num);
                    }
            }
            for (int a = 0; a < na; a++) {
                if (!ae[a]) continue;
                spec_set(sp, &exp_keys[axes[a]], ae[a]->text[idx[a]], ae[a]->num[idx[a]]);
                pt.from[axes[a]] = 1 + (int)(ae[a] - x->entries);
            }
            /* exclusions */
            int excluded = 0;
            for (int i = 0; i < x->nentries && !excluded; i++)
                if (x->entries[i].section == ES_EXCLUDE && rule_matches(&x->entries[i], m, sp)) excluded = 1;
            if (excluded) {
                x->nexcluded++;
            } else if (quant_params_validate(&sp->params, sp->method, INT_MAX / 2, 65536) != 0) {
                char where[256] = "";
                for (int a = 0; a < na; a++)
                    if (ae[a]) {
                        char t[48];
                        snprintf(t, sizeof t, " %s.%s (line %d)", exp_section_name(ae[a]->section),
                                 exp_keys[axes[a]].name, ae[a]->line);
                        if (strlen(where) + strlen(t) < sizeof where) strcat(where, t);
                    }
                perr(st, 0, NULL, NULL, "a %s point is not valid with the values of%s%s", sp->method,
                     where[0] ? where : " the method defaults", " (see the message above)");
                rc = -1;
            } else {
                point_identity(x, &pt);
                int *slot = id_set_find(id_set, set_cap, x->points, pt.id);
                if (*slot) {
                    x->nduplicates++;
                    free(pt.json);
                } else {
                    if (x->npoints == cap) x->points = qh_realloc(x->points, sizeof(ExpPoint) * (size_t)(cap = cap * 2 + 8));
                    x->points[x->npoints++] = pt;
                    *slot = x->npoints;
                }
            }
            /* odometer: the last axis turns fastest */
            int a = na - 1;
            for (; a >= 0; a--) {
                int n = ae[a] ? ae[a]->n : 1;
                if (++idx[a] < n) break;
                idx[a] = 0;
            }
            if (a < 0) break;
        }
    }
    free(id_set);
    /* labels: method, bits, group, then every swept key whose value varies between points */
    int varies[EXP_MAX_KEYS] = {0};
    for (int ki = 0; ki < nk; ki++) {
        if (!(exp_keys[ki].flags & EXP_SWEEP)) continue;
        /* varies when two points of the same method differ */
        char first[QUANT_MAX_METHODS][256], t[256];
        int have[QUANT_MAX_METHODS] = {0};
        for (int i = 0; i < x->npoints; i++) {
            int m = method_index(x->points[i].spec.method);
            if (!key_applies(&exp_keys[ki], m)) continue;
            spec_get(&x->points[i].spec, &exp_keys[ki], t, sizeof t);
            if (!have[m]) snprintf(first[m], sizeof first[m], "%s", t), have[m] = 1;
            else if (strcmp(first[m], t)) varies[ki] = 1;
        }
    }
    for (int i = 0; i < x->npoints; i++) {
        ExpPoint *p = &x->points[i];
        char lab[512];
        int m = method_index(p->spec.method);
        base_label(&p->spec, lab, sizeof lab);
        for (int ki = 0; ki < nk; ki++) {
            if (!varies[ki] || !key_applies(&exp_keys[ki], m) || !strcmp(exp_keys[ki].name, "wbits") ||
                !strcmp(exp_keys[ki].name, "groupsize"))
                continue;
            char t[256];
            spec_get(&p->spec, &exp_keys[ki], t, sizeof t);
            size_t l = strlen(lab);
            snprintf(lab + l, sizeof lab - l, " %s=%s", exp_keys[ki].name, t);
        }
        p->label = qh_strdup(lab);
    }
    return rc;
}

/* [report] targets (the default +1% first, listed ones after it, duplicates
 * dropped), each dataset named checked against [eval] datasets. */
static void resolve_targets(Experiment *x, ParseState *st) {
    const ExpEntry *e = experiment_entry(x, ES_REPORT, "targets");
    int n = 1 + (e ? e->n : 0);
    x->targets = qh_calloc((size_t)n, sizeof(AccTarget));
    char why[512];
    acc_target_parse("+1%", &x->targets[x->ntargets++], why, sizeof why);
    for (int i = 0; e && i < e->n; i++) {
        AccTarget t;
        acc_target_parse(e->text[i], &t, why, sizeof why); /* checked when read */
        if (*t.dataset && !qh_in_list(x->eval_datasets, t.dataset)) {
            perr(st, e->line, "report", "targets", "'%s': %s is not one of the [eval] datasets (%s)", e->text[i],
                 t.dataset, x->eval_datasets);
            continue;
        }
        int dup = 0;
        for (int j = 0; j < x->ntargets; j++)
            dup |= !strcmp(x->targets[j].dataset, t.dataset) && x->targets[j].relative == t.relative &&
                   x->targets[j].value == t.value;
        if (!dup) x->targets[x->ntargets++] = t;
    }
}

/* [speed]: on when the section sets a key; it needs the saved models. */
static void resolve_speed(Experiment *x, ParseState *st) {
    int line = 0;
    for (int i = 0; i < x->nentries; i++)
        if (x->entries[i].section == ES_SPEED && !line) line = x->entries[i].line;
    if (!line) return;
    x->speed.on = 1;
    const ExpEntry *e = experiment_entry(x, ES_SPEED, "setups");
    x->speed.setups = e ? 0 : (1u << SPEED_NSETUPS) - 1;
    for (int i = 0; e && i < e->n; i++)
        for (int s = 0; s < SPEED_NSETUPS; s++)
            if (!strcmp(e->text[i], speed_setup_names[s])) x->speed.setups |= 1u << s;
    double v = 0;
    qh_parse_double(experiment_value(x, ES_SPEED, "repeats", NULL), &v), x->speed.repeats = (int)v;
    qh_parse_double(experiment_value(x, ES_SPEED, "tokens", NULL), &v), x->speed.tokens = (int)v;
    qh_parse_double(experiment_value(x, ES_SPEED, "prefix", NULL), &v), x->speed.prefix = (long)v;
    parse_bool(experiment_value(x, ES_SPEED, "matvec", NULL), &v), x->speed.matvec = (int)v;
    x->speed.kernels = experiment_value(x, ES_SPEED, "kernels", NULL);
    if (!x->save_models)
        perr(st, line, "speed", "setups",
             "a [speed] section times every point's saved model: it needs [output] save_models = true");
}

/* [search]: every key or none; the method in [methods] run with exactly one
 * point (the knob aside); lo, hi and tolerance fit the knob. */
static void resolve_search(Experiment *x, ParseState *st) {
    int any = 0, line = 0;
    for (int i = 0; i < x->nentries; i++)
        if (x->entries[i].section == ES_SEARCH) any = 1, line = line ? line : x->entries[i].line;
    if (!any) return;
    static const char *need[] = {"method", "key", "lo", "hi"};
    int bad = 0;
    for (int i = 0; i < 4; i++)
        if (!experiment_entry(x, ES_SEARCH, need[i])) {
            perr(st, line, "search", need[i], "missing: a [search] needs method, key, lo and hi");
            bad = 1;
        }
    if (bad) return;
    x->search.on = 1;
    int lm, lk, ll, lh;
    const char *method = experiment_value(x, ES_SEARCH, "method", &lm), *key = experiment_value(x, ES_SEARCH, "key", &lk);
    int m = method_index(method);
    x->search.method = quant_methods[m].name;
    x->search.key = !strcmp(key, "groupsize") ? "groupsize" : !strcmp(key, "wbits") ? "wbits" : "outlier_threshold";
    qh_parse_double(experiment_value(x, ES_SEARCH, "lo", &ll), &x->search.lo);
    qh_parse_double(experiment_value(x, ES_SEARCH, "hi", &lh), &x->search.hi);
    qh_parse_double(experiment_value(x, ES_SEARCH, "tolerance", NULL), &x->search.tolerance);
    char why[512];
    int lt;
    acc_target_parse(experiment_value(x, ES_SEARCH, "target", &lt), &x->search.target, why, sizeof why);
    if (!*x->search.target.dataset) {
        snprintf(x->search.target.dataset, sizeof x->search.target.dataset, "%s", x->eval_datasets);
        char *c = strchr(x->search.target.dataset, ',');
        if (c) *c = 0;
    } else if (!qh_in_list(x->eval_datasets, x->search.target.dataset)) {
        perr(st, lt, "search", "target", "%s is not one of the [eval] datasets (%s)", x->search.target.dataset,
             x->eval_datasets);
    }
    int ki = key_index(ES_METHODS, x->search.key);
    if (!(exp_keys[ki].methods & method_bit(m)))
        perr(st, lk, "search", "key", "%s does not use %s", method, x->search.key);
    int integer = strcmp(x->search.key, "outlier_threshold") != 0;
    double lim_lo = integer ? (ki >= 0 && exp_keys[ki].flags & EXP_ROW ? 1 : exp_keys[ki].min) : 0,
           lim_hi = exp_keys[ki].max;
    double ends[2] = {x->search.lo, x->search.hi};
    int lines[2] = {ll, lh};
    for (int i = 0; i < 2; i++)
        if ((integer && ends[i] != floor(ends[i])) || ends[i] < lim_lo || ends[i] > lim_hi)
            perr(st, lines[i], "search", i ? "hi" : "lo", "%g does not fit %s (expected %s in %g..%g)", ends[i],
                 x->search.key, integer ? "an integer" : "a number", lim_lo, lim_hi);
    if (x->search.lo == x->search.hi) perr(st, lh, "search", "hi", "equals lo (%g): nothing to search", x->search.lo);
    if (!(x->search.tolerance > 0)) perr(st, 0, "search", "tolerance", "expected a number > 0");
    /* the search's target is also a target of the report's equal-accuracy table */
    int dup = 0;
    for (int j = 0; j < x->ntargets; j++)
        dup |= !strcmp(x->targets[j].dataset, x->search.target.dataset) &&
               x->targets[j].relative == x->search.target.relative && x->targets[j].value == x->search.target.value;
    if (!dup) {
        x->targets = qh_realloc(x->targets, sizeof(AccTarget) * (size_t)(x->ntargets + 1));
        x->targets[x->ntargets++] = x->search.target;
    }
    /* the method's one point */
    int count = 0;
    for (int i = 0; i < x->npoints; i++)
        if (!strcmp(x->points[i].spec.method, x->search.method)) x->search.base = i, count++;
    const ExpEntry *run = experiment_entry(x, ES_METHODS, "run");
    if (count == 0)
        perr(st, lm, "search", "method", "%s is not in [methods] run (or every %s point is excluded)", method, method);
    else if (count > 1)
        perr(st, lm, "search", "method", "%s has %d points: a search varies %s alone (give %s's other keys one value "
             "each; the searched key's own value is replaced)", method, count, x->search.key, method);
    (void)run;
}

int experiment_parse(const char *path, const char *text, Experiment *x) { return experiment_parse_flags(path, text, 0, x); }

/* [run] max_memory / max_device_memory (block_run.h), and what cannot run
 * block by block refused by its key: the KL divergence (the full-precision
 * model's logits alongside each point's) and the zero-shot tasks (the whole
 * model resident). auto may stream, so it is refused with them too. */
static void resolve_budgets(Experiment *x, ParseState *st) {
    int ml = 0, dl = 0;
    const char *mm = experiment_value(x, ES_RUN, "max_memory", &ml);
    long mb = 0, dmb = 0;
    x->max_memory_auto = !strcmp(mm, "auto");
    if (*mm && !x->max_memory_auto && qh_parse_long(mm, &mb) == 0) x->max_memory = (size_t)mb << 20;
    qh_parse_long(experiment_value(x, ES_RUN, "max_device_memory", &dl), &dmb);
    x->max_device_memory = (size_t)(dmb > 0 ? dmb : 0) << 20;
    int budget = x->max_memory > 0 || x->max_memory_auto;
    if (x->max_device_memory && !budget)
        perr(st, dl, "run", "max_device_memory", "needs run.max_memory (MB or auto): the device budget applies to "
             "block-by-block runs");
    if (x->max_device_memory && x->device == QH_DEVICE_CPU) {
        int devl = 0;
        experiment_value(x, ES_RUN, "device", &devl);
        perr(st, dl, "run", "max_device_memory", "applies to a GPU, but run.device is cpu%s", devl ? "" : " (default auto)");
    }
    if (!budget) return;
    if (x->kld) {
        int kl = 0;
        experiment_value(x, ES_EVAL, "kld", &kl);
        perr(st, kl, "eval", "kld", "cannot run with run.max_memory (line %d): the KL divergence needs the "
             "full-precision model's logits alongside each point's, but under a budget the model is read one block "
             "at a time (drop kld or max_memory)", ml);
    }
    if (x->zeroshot) {
        int zl = 0;
        experiment_value(x, ES_EVAL, "zeroshot", &zl);
        perr(st, zl, "eval", "zeroshot", "cannot run with run.max_memory (line %d): the zero-shot tasks need the "
             "whole model resident (drop zeroshot or max_memory)", ml);
    }
}

int experiment_parse_flags(const char *path, const char *text, unsigned flags, Experiment *x) {
    memset(x, 0, sizeof *x);
    exp_key_table(); /* also checks EXP_MAX_KEYS */
    x->path = qh_strdup(path);
    x->text = qh_strdup(text);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    x->name = qh_strdup(base);
    char *dot = strrchr(x->name, '.');
    if (dot && dot != x->name) *dot = 0;
    ParseState st = {.x = x, .path = path, .p = x->text, .flags = flags};
    if (syntax_errors(&st) != 0) return -1; /* the keys of a file that does not parse are not judged */
    int rc = ini_parse_stream(reader, &st, on_key, &st);
    if (rc != 0) perr(&st, rc > 0 ? rc : 0, NULL, NULL, "cannot parse (inih status %d)", rc);
    /* required keys */
    for (int i = 0; exp_keys[i].name; i++)
        if ((exp_keys[i].flags & EXP_REQUIRED) && !find_entry(x, exp_keys[i].section, i, NULL) &&
            !st.bad[exp_keys[i].section][i])
            perr(&st, 0, exp_section_name(exp_keys[i].section), exp_keys[i].name, "missing (%s)", exp_keys[i].help);
    /* per-method sections of methods not run */
    const ExpEntry *run = experiment_entry(x, ES_METHODS, "run");
    for (int i = 0; run && i < x->nentries; i++) {
        const ExpEntry *e = &x->entries[i];
        if (!is_method_section(e->section)) continue;
        int used = 0;
        for (int r = 0; r < run->n; r++) used |= (int)run->num[r] == (int)e->section - (int)ES_METHOD0;
        if (!used)
            qh_warn("%s:%d: %s.%s: %s is not in methods.run: ignored", path, e->line, exp_section_name(e->section),
                    exp_keys[e->key].name, exp_section_name(e->section));
    }
    if (st.nerr) return -1;
    /* resolved non-swept settings */
    x->model_path = experiment_value(x, ES_MODEL, "path", NULL);
    x->model_format = experiment_value(x, ES_MODEL, "format", NULL);
    x->tokenizer = experiment_value(x, ES_MODEL, "tokenizer", NULL);
    const ExpEntry *ds = experiment_entry(x, ES_EVAL, "datasets");
    if (ds) {
        size_t len = 1;
        for (int i = 0; i < ds->n; i++) len += strlen(ds->text[i]) + 1;
        char *j = qh_calloc(len, 1);
        for (int i = 0; i < ds->n; i++) {
            if (i) strcat(j, ",");
            strcat(j, ds->text[i]);
        }
        x->eval_datasets = j;
    } else {
        x->eval_datasets = qh_strdup("wikitext2,ptb,c4");
    }
    long v;
    qh_parse_long(experiment_value(x, ES_EVAL, "seqlen", NULL), &v);
    x->eval_seqlen = (int)v;
    qh_parse_long(experiment_value(x, ES_EVAL, "max_windows", NULL), &x->max_windows);
    double kb = 0;
    parse_bool(experiment_value(x, ES_EVAL, "kld", NULL), &kb);
    x->kld = (int)kb;
    kld_scope_parse(experiment_value(x, ES_EVAL, "kld_scope", NULL), "eval.kld_scope", &x->kld_scope);
    const ExpEntry *kd = experiment_entry(x, ES_EVAL, "kld_datasets");
    if (kd) {
        size_t len = 1;
        for (int i = 0; i < kd->n; i++) len += strlen(kd->text[i]) + 1;
        char *j = qh_calloc(len, 1);
        for (int i = 0; i < kd->n; i++) {
            if (i) strcat(j, ",");
            strcat(j, kd->text[i]);
            if (!qh_in_list(x->eval_datasets, kd->text[i]))
                perr(&st, kd->line, "eval", "kld_datasets", "%s is not one of the [eval] datasets (%s)", kd->text[i],
                     x->eval_datasets);
        }
        x->kld_datasets = j;
        if (!x->kld) qh_warn("%s:%d: eval.kld_datasets: kld is not on: ignored", path, kd->line);
    }
    const ExpEntry *zt = experiment_entry(x, ES_EVAL, "zeroshot");
    if (zt && zt->n > 0) {
        size_t len = 1;
        for (int i = 0; i < zt->n; i++) len += strlen(zt->text[i]) + 1;
        char *j = qh_calloc(len, 1);
        for (int i = 0; i < zt->n; i++) {
            for (int k = 0; k < i; k++)
                if (!strcmp(zt->text[k], zt->text[i]))
                    perr(&st, zt->line, "eval", "zeroshot", "%s is named twice", zt->text[i]);
            if (i) strcat(j, ",");
            strcat(j, zt->text[i]);
        }
        x->zeroshot = j;
    }
    qh_parse_long(experiment_value(x, ES_EVAL, "zeroshot_limit", NULL), &x->zeroshot_limit);
    const char *zdir = experiment_value(x, ES_EVAL, "zeroshot_data", NULL);
    x->zeroshot_data = zdir && *zdir ? zdir : NULL;
    if (!x->zeroshot && (experiment_entry(x, ES_EVAL, "zeroshot_limit") || experiment_entry(x, ES_EVAL, "zeroshot_data")))
        qh_warn("%s: eval.zeroshot_limit / zeroshot_data without eval.zeroshot: ignored", path);
    x->device_name = experiment_value(x, ES_RUN, "device", NULL);
    qh_device_parse(x->device_name, &x->device);
    resolve_budgets(x, &st);
    const char *data = experiment_value(x, ES_RUN, "data", NULL);
    const char *env = getenv("QH_DATA");
    x->data_root = *data ? data : (env && *env ? env : "data");
    const char *dir = experiment_value(x, ES_OUTPUT, "dir", NULL);
    if (*dir) {
        x->out_dir = qh_strdup(dir);
    } else {
        size_t n = strlen(x->name) + 16;
        x->out_dir = qh_malloc(n);
        snprintf(x->out_dir, n, "results/%s", x->name);
    }
    double b = 0;
    parse_bool(experiment_value(x, ES_OUTPUT, "save_models", NULL), &b);
    x->save_models = (int)b;
    json_t *o = json_object();
    json_object_set_new(o, "model", model_json(x));
    json_object_set_new(o, "eval", eval_json(x, 0));
    x->fp_json = dumps(o);
    experiment_id_of(x->fp_json, x->fp_id);
    if (expand_points(x, &st) != 0) return -1;
    if (x->npoints == 0) {
        perr(&st, run ? run->line : 0, "methods", "run", "no point left to run (%d excluded by [exclude])", x->nexcluded);
        return -1;
    }
    resolve_targets(x, &st);
    resolve_search(x, &st);
    resolve_speed(x, &st);
    return st.nerr ? -1 : 0;
}

int experiment_load(const char *path, Experiment *x) {
    memset(x, 0, sizeof *x);
    char *text;
    size_t len;
    if (qh_read_file(path, &text, &len) != 0) return qh_error("experiment file '%s' cannot be read", path);
    if (strlen(text) != len) {
        free(text);
        return qh_error("%s: contains a NUL byte (not a text file)", path);
    }
    int rc = experiment_parse(path, text, x);
    free(text);
    return rc;
}

void experiment_free(Experiment *x) {
    for (int i = 0; i < x->nentries; i++) {
        ExpEntry *e = &x->entries[i];
        for (int j = 0; j < e->n; j++) free(e->text[j]);
        free(e->text);
        free(e->num);
        free(e->rule_name);
    }
    free(x->entries);
    for (int i = 0; i < x->npoints; i++) {
        free(x->points[i].label);
        free(x->points[i].json);
    }
    free(x->points);
    free(x->targets);
    free(x->paper);
    free((char *)x->kld_datasets);
    free((char *)x->zeroshot);
    free((char *)x->eval_datasets);
    free(x->out_dir);
    free(x->fp_json);
    free(x->path);
    free(x->name);
    free(x->text);
    memset(x, 0, sizeof *x);
}


void experiment_point_origin(const Experiment *x, const ExpPoint *p, char *buf, size_t n) {
    buf[0] = 0;
    for (int ki = 0; exp_keys[ki].name; ki++) {
        if (!p->from[ki]) continue;
        const ExpEntry *e = &x->entries[p->from[ki] - 1];
        char t[256];
        spec_get(&p->spec, &exp_keys[ki], t, sizeof t);
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s:%d: %s.%s = %s", l ? "; " : "", x->path, e->line, exp_section_name(e->section),
                 exp_keys[ki].name, t);
    }
    if (!buf[0]) snprintf(buf, n, "%s defaults only", p->spec.method);
}

int experiment_find_point(const Experiment *x, const char *id, char *why, size_t wn) {
    size_t l = strlen(id);
    if (l < EXP_ID_MIN_PREFIX || l > 12 || strspn(id, "0123456789abcdefABCDEF") != l) {
        snprintf(why, wn, "not a point id (expected %d to 12 hex digits: an id, or a unique prefix of one)",
                 EXP_ID_MIN_PREFIX);
        return -1;
    }
    int found = -1, nfound = 0;
    char also[128] = "";
    for (int i = 0; i < x->npoints; i++)
        if (!strncasecmp(x->points[i].id, id, l)) {
            if (nfound++ == 0) found = i;
            else if (strlen(also) + 16 < sizeof also)
                snprintf(also + strlen(also), sizeof also - strlen(also), " %s", x->points[i].id);
        }
    if (nfound == 1) return found;
    if (nfound == 0) snprintf(why, wn, "no point has this id");
    else snprintf(why, wn, "matches %d points (%s%s): expected a unique prefix", nfound, x->points[found].id, also);
    return -1;
}

/* ---- dump and help ------------------------------------------------------------------- */

static void dump_entry_values(FILE *out, const ExpEntry *e) {
    for (int i = 0; i < e->n; i++) fprintf(out, "%s%s", i ? ", " : "", e->text[i]);
}

void experiment_dump(const Experiment *x, FILE *out) {
    fprintf(out, "; %s: resolved settings (after each value: where it came from)\n", x->path);
    fprintf(out, "; experiment %s, results in %s\n", x->name, x->out_dir);
    for (int s = 0; s < ES_COUNT; s++) {
        if (s == ES_EXCLUDE || s == ES_PAPER || is_method_slot((ExpSection)s)) continue;
        if (s == ES_SEARCH && !x->search.on) continue;
        fprintf(out, "\n[%s]\n", exp_section_name((ExpSection)s));
        for (int ki = 0; exp_keys[ki].name; ki++) {
            const ExpKey *k = &exp_keys[ki];
            if (k->section != (ExpSection)s) continue;
            const ExpEntry *e = NULL;
            for (int i = 0; i < x->nentries; i++)
                if (x->entries[i].section == (ExpSection)s && x->entries[i].key == ki) e = &x->entries[i];
            if (s == ES_METHODS && !e && k->def == NULL && ki != key_index(ES_METHODS, "run")) continue;
            fprintf(out, "%-20s = ", k->name);
            if (e) {
                dump_entry_values(out, e);
                fprintf(out, "    ; %s:%d\n", x->path, e->line);
            } else if (s == ES_OUTPUT && !strcmp(k->name, "dir")) {
                fprintf(out, "%s    ; default\n", x->out_dir);
            } else if (s == ES_RUN && !strcmp(k->name, "data")) {
                fprintf(out, "%s    ; default ($QH_DATA or data)\n", x->data_root);
            } else {
                fprintf(out, "%s    ; default\n", k->def ? k->def : "");
            }
        }
    }
    /* per method: every key it uses, with its values and source */
    const ExpEntry *run = experiment_entry(x, ES_METHODS, "run");
    for (int r = 0; run && r < run->n; r++) {
        int m = (int)run->num[r];
        const char *mname = quant_methods[m].name;
        fprintf(out, "\n[%s]    ; the values swept for %s\n", mname, mname);
        QuantRunSpec def;
        memset(&def, 0, sizeof def);
        quant_params_default(&def.params, mname);
        for (int ki = 0; exp_keys[ki].name; ki++) {
            if (!key_applies(&exp_keys[ki], m)) continue;
            const ExpEntry *e = method_entry(x, m, ki);
            fprintf(out, "%-20s = ", exp_keys[ki].name);
            if (e) {
                dump_entry_values(out, e);
                fprintf(out, "    ; %s:%d [%s]\n", x->path, e->line, exp_section_name(e->section));
            } else if (exp_keys[ki].section == ES_CALIBRATION) {
                fprintf(out, "%s    ; default\n", exp_keys[ki].def);
            } else {
                char t[256];
                spec_get(&def, &exp_keys[ki], t, sizeof t);
                fprintf(out, "%s    ; %s default\n", t, mname);
            }
        }
    }
    int nrules = 0;
    for (int i = 0; i < x->nentries; i++) {
        const ExpEntry *e = &x->entries[i];
        if (e->section != ES_EXCLUDE) continue;
        if (nrules++ == 0) fprintf(out, "\n[exclude]\n");
        fprintf(out, "%-20s = ", e->rule_name);
        dump_entry_values(out, e);
        fprintf(out, "    ; %s:%d\n", x->path, e->line);
    }
    for (int i = 0; i < x->npaper; i++) {
        const PaperValue *p = &x->paper[i];
        char set[256];
        paper_setting_text(p, set, sizeof set);
        if (i == 0) fprintf(out, "\n[paper]\n");
        fprintf(out, "%-20s = %s %s %s: %s %g (%s)    ; %s:%d\n", p->name, p->method, p->dataset, set,
                p->kind == PAPER_BITS ? "bits" : "ppl", p->value, p->source, x->path, p->line);
    }
    if (x->search.on) {
        char t[96];
        acc_target_text(&x->search.target, t, sizeof t);
        fprintf(out, "\n; [search]: `sweep` bisects %s %s over %g..%g to reach %s%s (tolerance %g), the other settings "
                     "those of point %s\n",
                x->search.method, x->search.key, x->search.lo, x->search.hi, t,
                x->search.target.relative ? " above full precision" : "", x->search.tolerance,
                x->points[x->search.base].id);
    }
    fprintf(out, "\n; %d points (%d excluded, %d duplicates dropped); full-precision evaluation %s\n", x->npoints,
            x->nexcluded, x->nduplicates, x->fp_id);
    for (int i = 0; i < x->npoints; i++) fprintf(out, "; %s  %s\n", x->points[i].id, x->points[i].label);
}

void experiment_help(FILE *out) {
    exp_key_table();
    char msec[128] = "";
    for (int m = 0; quant_methods[m].name; m++) {
        size_t l = strlen(msec);
        snprintf(msec + l, sizeof msec - l, "%s[%s]", m ? " " : "", quant_methods[m].name);
    }
    fprintf(out, "\nexperiment file keys (INI; ${VAR} and ${VAR:-default} expand from the environment;\n"
                 "a key marked 'list' may hold several values separated by commas, and the points are\n"
                 "the product of those lists; method keys go in [methods] for every method or in\n"
                 "%s for one; [exclude] NAME = key=value, key=value drops matching points;\n"
                 "[paper] NAME = method=M, dataset=D, ppl=P | bits=B, <settings> | at_bits=B | at_ppl=P,\n"
                 "source=TEXT holds one published value, shown by `report` beside the measured one):\n", msec);
    int last = -1;
    for (int ki = 0; exp_keys[ki].name; ki++) {
        const ExpKey *k = &exp_keys[ki];
        if ((int)k->section != last) {
            fprintf(out, "\n  [%s]\n", exp_section_name(k->section));
            last = (int)k->section;
        }
        char exp[160], def[160], ms[64] = "";
        expected_text(k, exp, sizeof exp);
        if (k->flags & EXP_REQUIRED) snprintf(def, sizeof def, "required");
        else if (k->def) snprintf(def, sizeof def, "default %s", *k->def ? k->def : "(empty)");
        else if (key_setting(k)) quant_setting_default_text(key_setting(k), def, sizeof def);
        else def[0] = 0;
        if (k->methods && k->methods != all_methods()) {
            char m[48];
            methods_text(k->methods, m, sizeof m);
            snprintf(ms, sizeof ms, "; for %s", m);
        }
        const char *kind = (k->flags & EXP_SWEEP) ? ", list" : (k->flags & EXP_LIST) ? ", list" : "";
        fprintf(out, "    %-20s %s\n    %-20s (%s%s; %s%s)\n", k->name, k->help, "", exp, kind, def, ms);
    }
}
