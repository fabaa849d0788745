/* experiment.h: experiment files (experiments/NAME.ini): one table of known
 * keys (exp_keys[]) drives parsing (libinih), validation, defaults, the help
 * text of `qharness sweep --help` and the dump of the resolved settings
 * (`qharness sweep FILE --dump`). A key of a sweepable kind may hold a list
 * (`wbits = 3, 4`); an experiment's points are the product of its lists, taken
 * per method so that a method is never swept over a key it does not use, minus
 * the points that an [exclude] rule matches. Each point has a stable id: a
 * prefix of the sha256 of its canonical settings JSON.
 *
 * Not here: running the points (sweep.h), reading results back (report.h).
 *
 * File format (see experiments/README.md):
 *   [experiment] description        [model] path format tokenizer
 *   [calibration] dataset nsamples seqlen seed
 *   [methods] run = rtn, gptq, spqr + any method key, shared by every method
 *   [rtn] [gptq] [spqr] method keys (and calibration keys) for that method only
 *   [eval] datasets seqlen max_windows kld kld_scope kld_datasets
 *          zeroshot zeroshot_limit zeroshot_data      [run] device data max_memory max_device_memory
 *   [output] dir save_models              [slurm] partition account qos time cpus gpus gpu_option
 *                                          gpu_type mem constraint extra
 *   [report] targets (bits at equal accuracy, accuracy.h)
 *   [search] method key lo hi target tolerance (bisection of one knob, search.h)
 *   [exclude] NAME = key=value, key=value (drop the points matching all of them)
 *   [paper] NAME = method=..., dataset=..., ppl=... | bits=..., settings, source=... (published values)
 *   [speed] setups repeats tokens prefix kernels matvec (the speed table of every saved model, speed_run.h)
 * String values expand ${VAR} and ${VAR:-default} from the environment. */
#ifndef QH_EXPERIMENT_H
#define QH_EXPERIMENT_H

#include <stddef.h>

#include "accuracy.h"
#include "calibrate.h"
#include "kld_eval.h"

/* ---- the table of keys ------------------------------------------------------- */

typedef enum { EK_STR, EK_INT, EK_DOUBLE, EK_BOOL, EK_ENUM } ExpKeyType;

/* Sections. The method sections ([rtn] [gptq] [spqr] ...) follow ES_METHODS,
 * one per row of quant_methods[] (settings.h), in its order: section
 * ES_METHOD0 + i is quant_methods[i]; QUANT_MAX_METHODS slots are reserved. */
typedef enum {
    ES_EXPERIMENT = 0, ES_MODEL, ES_CALIBRATION, ES_METHODS, ES_METHOD0,
    ES_EVAL = ES_METHOD0 + QUANT_MAX_METHODS, ES_RUN, ES_OUTPUT, ES_SLURM, ES_REPORT, ES_PAPER, ES_SEARCH, ES_EXCLUDE, ES_SPEED,
    ES_COUNT
} ExpSection;
/* The section's name in files ("model", "spqr"), NULL for an unused method slot. */
const char *exp_section_name(ExpSection s);

/* flags of a key */
#define EXP_SWEEP 1u    /* may hold a list, swept as an axis of the product */
#define EXP_LIST 2u     /* holds a list that is one value (eval datasets, methods) */
#define EXP_INF 4u      /* EK_DOUBLE: "inf" accepted */
#define EXP_REQUIRED 8u /* no default: the file must set it */
#define EXP_ROW 16u     /* EK_INT: the word "row" stands for 0 (one group per row) */

typedef struct ExpKey {
    ExpSection section;  /* ES_METHODS for method keys (also accepted in a method's own section) */
    const char *name;
    ExpKeyType type;
    unsigned flags;      /* EXP_* */
    const char *def;     /* default as text; "" for a string means unset; NULL for method keys = method default */
    double min, max;     /* numeric range (EK_INT, EK_DOUBLE) */
    const char *choices; /* EK_ENUM: "a|b|c" */
    unsigned methods;    /* method and calibration keys: the methods that use the key (bit i: quant_methods[i]) */
    /* extra check of one value (after type and range): 0, or -1 with `why` filled */
    int (*check)(const char *value, char *why, size_t whylen);
    const char *help;
} ExpKey;

/* The keys: the fixed rows of experiment.c with the [methods] keys made from
 * quant_settings[] (settings.h); NULL-name terminated. */
const ExpKey *exp_key_table(void);
int exp_nkeys(void);
/* Does `method` (a name of quant_methods[]) use the method or calibration key `key`
 * (e.g. "percdamp")? 1 yes, 0 no, -1 not a method/calibration key or not a
 * method; applies_to (may be NULL) gets the methods that use it ("gptq, spqr"). */
int exp_method_uses(const char *method, const char *key, char *applies_to, size_t n);
/* Index of (section, key) in exp_key_table(), -1 when there is none. */
int exp_key_index(ExpSection s, const char *name);
/* Is `key` a key of [calibration] (dataset, nsamples, seqlen, seed)? */
int exp_is_calibration_key(const char *key);

/* ---- a parsed experiment ------------------------------------------------------ */

/* One key = value line (or a list continued on indented lines) of the file. */
typedef struct ExpEntry {
    int key;          /* index into exp_keys (-1 for [exclude] rules) */
    ExpSection section;
    int line;         /* line of the key in the file */
    int n;            /* number of values */
    char **text;      /* (n) values as written, ${VAR} expanded; owned */
    double *num;      /* (n) numeric value: int, double, bool 0/1, enum index; NAN for strings */
    char *rule_name;  /* [exclude] entries: the rule's name; owned */
} ExpEntry;

#define EXP_MAX_VALUES 256 /* values of one key (a list) */
#define EXP_MAX_KEYS 128 /* at least the number of rows of exp_keys (checked) */
/* The most points the product of an experiment's lists may make (summed over
 * its methods, before exclusions): every point is a quantization run, so a
 * larger product is a mistake or several experiments (refused naming the lists). */
#define EXP_MAX_POINTS 10000

typedef struct ExpPoint {
    char id[13];          /* 12 hex digits of sha256(json) */
    QuantRunSpec spec;    /* method: static string; calib, data_root: borrowed from the Experiment */
    char *label;          /* "spqr w3 g16 outlier_threshold=0.1": method, bits, group, varying keys; owned */
    char *json;           /* canonical settings JSON (sorted keys, compact); owned */
    int from[EXP_MAX_KEYS]; /* per key index: 1 + the index of the entry its value came from (0: default) */
} ExpPoint;

typedef struct Experiment {
    char *path;           /* the .ini file as given (owned) */
    char *name;           /* its stem: experiments/foo.ini -> foo (owned) */
    char *text;           /* the raw file (owned), kept as provenance */
    ExpEntry *entries;    /* (nentries) owned */
    int nentries;
    /* resolved settings that are not swept (borrowed from entries or defaults) */
    const char *model_path, *model_format, *tokenizer;  /* tokenizer "" = beside the model */
    const char *eval_datasets;  /* "wikitext2,ptb" (owned copy, joined with commas) */
    int eval_seqlen;            /* 0: the model's seq_len, at most 2048 */
    long max_windows;           /* 0: all */
    int kld;                    /* each point also gets the distribution metrics against full precision */
    KldScope kld_scope;
    const char *kld_datasets;   /* [eval] kld_datasets joined with commas (owned), NULL: every dataset */
    const char *zeroshot;       /* [eval] zeroshot tasks joined with commas (owned), NULL: none (zeroshot.h) */
    long zeroshot_limit;        /* 0: every item */
    const char *zeroshot_data;  /* [eval] zeroshot_data, NULL: $ZEROSHOT_DATA */
    const char *device_name;    /* auto | cpu | cuda */
    QhDevice device;
    const char *data_root;      /* [run] data, else $QH_DATA, else "data" */
    size_t max_memory;          /* [run] max_memory in bytes (0: none, or auto): block by block (block_run.h) */
    int max_memory_auto;        /* [run] max_memory = auto: block by block when the model does not fit whole */
    size_t max_device_memory;   /* [run] max_device_memory in bytes (0: what the GPU has free) */
    char *out_dir;              /* [output] dir, default results/<name> (owned) */
    int save_models;
    char fp_id[13];             /* id of the full-precision evaluation (model + eval settings) */
    char *fp_json;              /* its canonical JSON (owned) */
    /* the points, after the product, the exclusions and de-duplication */
    ExpPoint *points;           /* (npoints) owned */
    int npoints;
    int nexcluded, nduplicates;
    /* [report] targets, the default +1% first (owned) */
    AccTarget *targets;
    int ntargets;
    /* [paper] published values, in file order (owned) */
    PaperValue *paper;
    int npaper;
    /* [search]: a bisection of one knob instead of the product (search.h) */
    struct {
        int on;             /* the section sets a key */
        const char *method; /* static string: rtn | gptq | spqr */
        const char *key;    /* groupsize | outlier_threshold | wbits */
        double lo, hi, tolerance;
        AccTarget target;   /* its dataset resolved (the first [eval] dataset when not named) */
        int base;           /* index of the method's one point (the settings the knob is varied from) */
    } search;
    /* [speed]: after the points, the speed table of the full-precision model
     * and every point's saved model (needs save_models), speed_run.h */
    struct {
        int on;             /* the section sets a key */
        unsigned setups;    /* bit per SpeedSetup */
        int repeats, tokens, matvec;
        long prefix;        /* -1: the paper's 1024, or the model's context less tokens */
        const char *kernels;
    } speed;
} Experiment;

/* Parse and validate `path`, expand the points. Every error is printed as
 * "FILE:LINE: SECTION.KEY: what is wrong (what was expected)"; returns -1 when
 * there was at least one. Syntax errors are reported first and alone (the keys
 * of a file that does not parse are not judged). Does not look at the model
 * file (experiment_check_run does, experiment_check.h). */
int experiment_load(const char *path, Experiment *x);
/* Same from text in memory; `path` is only used in messages and for the name. */
int experiment_parse(const char *path, const char *text, Experiment *x);
/* The same, with flags: EXP_PARSE_KEEP_UNSET leaves ${VAR} of an unset
 * variable as written instead of failing (for reading the report's and the
 * paper's sections of a file whose model is not on this machine). */
#define EXP_PARSE_KEEP_UNSET 1u
int experiment_parse_flags(const char *path, const char *text, unsigned flags, Experiment *x);
/* Build point pt (id, label, json) of `spec` as expand_points would (spec's
 * strings borrowed); 0, or -1 after a message when quant_params_validate
 * refuses it. pt->label is method, bits, group and `extra` (may be NULL). */
int experiment_make_point(const Experiment *x, const QuantRunSpec *spec, const char *extra, ExpPoint *pt);
void experiment_point_free(ExpPoint *pt);
void experiment_free(Experiment *x);

/* The resolved value of a non-method key as text (default when unset), and
 * the line it came from (0 = default). */
const char *experiment_value(const Experiment *x, ExpSection s, const char *key, int *line);
/* The entry of (section, key) or NULL. */
const ExpEntry *experiment_entry(const Experiment *x, ExpSection s, const char *key);

/* Where a point's settings came from: "FILE:LINE: SECTION.KEY = VALUE; ..." (or "method defaults"). */
void experiment_point_origin(const Experiment *x, const ExpPoint *p, char *buf, size_t n);

/* The index of a point by id, or by a unique prefix of at least
 * EXP_ID_MIN_PREFIX hex digits; -1 with `why` filled (not an id, no such
 * point, or a prefix of several) otherwise. */
#define EXP_ID_MIN_PREFIX 4
int experiment_find_point(const Experiment *x, const char *id, char *why, size_t n);

/* Print every section with its resolved values and where each came from, then the points. */
void experiment_dump(const Experiment *x, FILE *out);
/* Print the table of keys (for --help). */
void experiment_help(FILE *out);

/* sha256 of s as 12 hex digits (the id format). */
void experiment_id_of(const char *s, char id[13]);

#endif
