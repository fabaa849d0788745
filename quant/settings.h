/* settings.h: the two tables every other layer reads instead of naming a
 * quantization setting or a method itself.
 *
 *   quant_settings[]  one row per field of QuantParams: its name (experiment
 *                     key, JSON key, HDF5 attribute; the command-line option
 *                     is the name with '-' for '_'), type, range, the common
 *                     default, which methods use it (by capability), where it
 *                     lives in QuantParams, and its help text. The experiment
 *                     keys of [methods], `quantize`'s options and --help, the
 *                     settings JSON (and so the point ids), the settings
 *                     attributes of a quantized-model file and `sweep --dump`
 *                     are all produced from it.
 *   quant_methods[]   one row per method: its name, capabilities, its own
 *                     defaults over the common ones, and its single-layer
 *                     quantizer (the plain C `_ref`). A CUDA version, where
 *                     one exists, is looked up by name in kernels/quant_cuda.h
 *                     (quant_cuda_supports), so a CPU-only method needs
 *                     nothing there.
 *
 * Adding a method: its own file with its quantizer, and one row of
 * quant_methods[] (methods.c). Adding a setting: a field of QuantParams and
 * one row of quant_settings[] (settings.c). */
#ifndef QH_QUANT_SETTINGS_H
#define QH_QUANT_SETTINGS_H

#include <stddef.h>

#include "quant.h"

/* ---- capabilities: what a method is made of, and so which settings it uses ---- */
#define QUANT_CAP_GRID 1u     /* the uniform grid of SPEC 2 (every method) */
#define QUANT_CAP_QQ 2u       /* second-level (quantized) statistics */
#define QUANT_CAP_OUTLIERS 4u /* SpQR outliers */
#define QUANT_CAP_HESSIAN 8u  /* needs calibration: the GPTQ column sweep over H (SPEC 4) */
#define QUANT_CAP_ACT_SCALE 16u /* needs calibration: per input channel scales searched block by block on the
                                 * calibration activations (AWQ, harness/calib/awq_search.c); its quantize_ref
                                 * alone is the search's ratio 0 (scales 1) */
#define QUANT_CAP_CALIB (QUANT_CAP_HESSIAN | QUANT_CAP_ACT_SCALE) /* the methods that need calibration data */

/* ---- methods ------------------------------------------------------------------- */

/* The single-layer quantizer of a method, quantize_layer_ref's contract (quant.h). */
typedef int (*QuantLayerFn)(const char *method, const float *W, int m, int n, const double *H,
                            const QuantParams *p, QuantLayer *q, float *W_deq);

typedef struct QuantMethod {
    const char *name;                 /* "rtn": the method's name everywhere (CLI, experiment section, results) */
    const char *title;                /* "RTN": in tables and plots */
    unsigned caps;                    /* QUANT_CAP_* */
    void (*defaults)(QuantParams *p); /* the method's own defaults over the common ones (may be NULL) */
    QuantLayerFn quantize_ref;        /* the plain C quantizer */
    const char *summary;              /* one line for --help */
} QuantMethod;

#define QUANT_MAX_METHODS 8 /* capacity of per-method arrays; quant_nmethods() <= this (checked by the tests) */
extern const QuantMethod quant_methods[]; /* terminated by a NULL name; the order is the report's */
int quant_nmethods(void);
/* NULL when unknown. */
const QuantMethod *quant_method_find(const char *name);
/* Index into quant_methods[], -1 when unknown. */
int quant_method_index(const char *name);
/* "rtn, gptq, spqr" (or the methods of `mask`, bit i = quant_methods[i]; ~0u for all) into buf. */
void quant_method_names(unsigned mask, const char *sep, char *buf, size_t n);

/* ---- settings ------------------------------------------------------------------ */

typedef enum { QS_INT, QS_DOUBLE, QS_BOOL, QS_ENUM } QuantSettingType;

/* flags of a setting */
#define QS_ROW 1u        /* QS_INT: the word "row" stands for 0 (one group per row) */
#define QS_INF 2u        /* QS_DOUBLE: "inf" accepted */
#define QS_NEW 8u        /* added after results existed: left out of the settings JSON at its common
                          * default, so that the points of older experiments keep their ids; a file
                          * made before it existed (no /settings attribute of it) holds results
                          * computed as quant_setting_before() says */

typedef struct QuantSetting {
    const char *name;      /* experiment key, JSON key, attribute name; option: '_' -> '-' */
    QuantSettingType type;
    unsigned flags;        /* QS_* */
    double min, max;       /* QS_INT, QS_DOUBLE: the accepted range (a layer may narrow it: quant_params_validate) */
    const char *choices;   /* QS_ENUM: "a|b": the value is the index */
    unsigned needs;        /* the capability (QUANT_CAP_*) of the methods that use it */
    size_t offset;         /* offsetof(QuantParams, field): an int for QS_INT/QS_BOOL/QS_ENUM, a double for QS_DOUBLE */
    double def;            /* the common default (a method's defaults() may change it) */
    const char *meta;      /* value placeholder of the option in --help ("B") */
    const char *help;
} QuantSetting;

#define QUANT_MAX_SETTINGS 32 /* capacity of per-setting arrays; quant_nsettings() <= this (checked by the tests) */
extern const QuantSetting quant_settings[]; /* terminated by a NULL name; the order is the experiment file's */
int quant_nsettings(void);
const QuantSetting *quant_setting_find(const char *name);

/* A QS_NEW setting: the value that results made before it existed were
 * computed with (stats_dtype: fp16, the weights decoded from fp16 values);
 * another setting: its common default. */
double quant_setting_before(const QuantSetting *s);

/* Does method `m` use setting `s`? */
int quant_setting_used_by(const QuantSetting *s, const QuantMethod *m);
/* Bit i set when quant_methods[i] uses s. */
unsigned quant_setting_methods(const QuantSetting *s);

/* The value of s in p as a double (bool 0/1, enum index), and setting it. */
double quant_setting_get(const QuantParams *p, const QuantSetting *s);
void quant_setting_set(QuantParams *p, const QuantSetting *s, double v);

/* Is v a value of s: integral for QS_INT / QS_BOOL / QS_ENUM, in the row's
 * range (+inf too for QS_INF), never NaN? The one range check of a setting:
 * parsing, command-line options and a file's /settings all use it. */
int quant_setting_valid(const QuantSetting *s, double v);
/* Parse text as a value of s ("row" for QS_ROW, "inf" for QS_INF, true/false,
 * an enum name): 0 with *v set, or -1 with `why` filled ("expected an integer
 * in 1..8"). Checks the type and the table's range only. */
int quant_setting_parse(const QuantSetting *s, const char *text, double *v, char *why, size_t n);
/* The canonical text of value v of s: "4", "0.2", "inf", "true", "act_order". */
void quant_setting_format(const QuantSetting *s, double v, char *buf, size_t n);
/* What s accepts, for messages and help: "an integer in 1..8", "one of identity | act_order". */
void quant_setting_expected(const QuantSetting *s, char *buf, size_t n);
/* "default 4", or per method "default rtn 0, gptq 0, spqr 16" over the methods that use s. */
void quant_setting_default_text(const QuantSetting *s, char *buf, size_t n);

#endif
