/* settings.c: the table of quantization settings (settings.h) and the
 * functions that read, write, parse and print a setting through it. The
 * rows are in the order experiment files, `sweep --dump` and --help list them. */
#include "settings.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define I QS_INT
#define D QS_DOUBLE
#define B QS_BOOL
#define E QS_ENUM
#define GRID QUANT_CAP_GRID
#define QQ QUANT_CAP_QQ
#define OUT QUANT_CAP_OUTLIERS
#define HES QUANT_CAP_HESSIAN
#define ACT QUANT_CAP_ACT_SCALE
#define AT(f) offsetof(QuantParams, f)
const QuantSetting quant_settings[] = {
    /* name, type, flags, min, max, choices, used with, field, common default, meta, help */
    {"wbits", I, 0, 1, 8, NULL, GRID, AT(wbits), 4, "B", "bits per weight"},
    {"groupsize", I, QS_ROW, 0, 65536, NULL, GRID, AT(groupsize), 0, "G",
     "beta1: input columns per group of statistics (row or 0: one group per row)"},
    {"qq_scale_bits", I, 0, 0, 8, NULL, QQ, AT(qq_scale_bits), 0, "B", "bits of the quantized scales (0 = unquantized)"},
    {"qq_zero_bits", I, 0, 0, 8, NULL, QQ, AT(qq_zero_bits), 0, "B", "bits of the quantized zeros (0 = unquantized)"},
    {"qq_groupsize", I, 0, 0, 65536, NULL, QQ, AT(qq_groupsize), 0, "G",
     "beta2: rows per second-level group of statistics"},
    {"outlier_threshold", D, QS_INF, 0, INFINITY, NULL, OUT, AT(outlier_threshold), INFINITY, "T",
     "tau, relative to the layer's outlier scale (inf = no outliers)"},
    {"simplified_outliers", B, 0, 0, 1, NULL, OUT, AT(simplified_outliers), 0, NULL,
     "skip the leave-one-out criterion when fitting statistics"},
    {"percdamp", D, 0, 0, 1e6, NULL, HES, AT(percdamp), 0.01, "P", "damping, a fraction of mean(diag H)"},
    {"perm", E, 0, 0, 1, "identity|act_order", HES, AT(perm), QH_PERM_IDENTITY, "identity|act_order", "column order"},
    {"true_sequential", B, 0, 0, 1, NULL, HES, AT(true_sequential), 0, NULL,
     "Hessians of [q,k,v] -> [o] -> [gate,up] -> [down] in turn"},
    {"sym", B, 0, 0, 1, NULL, GRID, AT(sym), 0, NULL, "symmetric grid"},
    {"round_zero", B, 0, 0, 1, NULL, GRID, AT(round_zero), 0, NULL, "round the zero point to an integer"},
    {"gptq_zero_rule", B, 0, 0, 1, NULL, GRID, AT(gptq_zero_rule), 0, NULL,
     "GPTQ's original rule (rounded zero, range contains 0)"},
    {"blocksize", I, 0, 1, 65536, NULL, HES, AT(blocksize), 128, "N", "GPTQ lazy-batch block of columns"},
    {"stats_dtype", E, QS_NEW, 0, 1, "fp32|fp16", GRID, AT(stats_dtype), QH_STATS_FP32, "fp32|fp16",
     "statistics and outliers: fp32 = the reference's weights (default), fp16 = deployment, decoded from 16 bits"},
    {"awq_grid", I, QS_NEW, 1, 1000, NULL, ACT, AT(awq_grid), 20, "G",
     "AWQ: the scale search tries the exponents 0, 1/G, .., (G-1)/G of the mean |x| (1: exponent 0 only, plain RTN)"},
    {"awq_clip", E, QS_NEW, 0, 1, "off|on", ACT, AT(awq_clip), 1, "off|on",
     "AWQ: the clipping search after the scales (every linear but q / k; the reference's auto_clip)"},
    {"awq_windows", I, QS_NEW, 0, 1000000, NULL, ACT, AT(awq_windows), 0, "N",
     "AWQ: calibration windows the searches run on, the first N (0: all)"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, 0, NULL, NULL},
};
#undef I
#undef D
#undef B
#undef E
#undef GRID
#undef QQ
#undef OUT
#undef HES
#undef ACT
#undef AT

/* The QS_NEW rows: how the harness behaved before each existed. */
static const struct {
    const char *name;
    double before;
} new_settings[] = {
    {"stats_dtype", QH_STATS_FP16}, /* the weights were decoded from fp16 statistics and outliers */
};

double quant_setting_before(const QuantSetting *s) {
    if (s->flags & QS_NEW)
        for (size_t i = 0; i < sizeof new_settings / sizeof new_settings[0]; i++)
            if (!strcmp(new_settings[i].name, s->name)) return new_settings[i].before;
    return s->def;
}

int quant_nsettings(void) {
    int n = 0;
    while (quant_settings[n].name) n++;
    return n;
}

const QuantSetting *quant_setting_find(const char *name) {
    for (const QuantSetting *s = quant_settings; name && s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

int quant_setting_used_by(const QuantSetting *s, const QuantMethod *m) { return (s->needs & m->caps) != 0; }

unsigned quant_setting_methods(const QuantSetting *s) {
    unsigned mask = 0;
    for (int i = 0; quant_methods[i].name; i++)
        if (quant_setting_used_by(s, &quant_methods[i])) mask |= 1u << i;
    return mask;
}

double quant_setting_get(const QuantParams *p, const QuantSetting *s) {
    const char *base = (const char *)p + s->offset;
    if (s->type == QS_DOUBLE) return *(const double *)base;
    return *(const int *)base;
}

void quant_setting_set(QuantParams *p, const QuantSetting *s, double v) {
    char *base = (char *)p + s->offset;
    if (s->type == QS_DOUBLE) *(double *)base = v;
    else *(int *)base = (int)v;
}

void quant_setting_expected(const QuantSetting *s, char *buf, size_t n) {
    switch (s->type) {
    case QS_INT:
        snprintf(buf, n, "%san integer in %.0f..%.0f", (s->flags & QS_ROW) ? "row or " : "", s->min, s->max);
        break;
    case QS_DOUBLE:
        if (s->flags & QS_INF) snprintf(buf, n, "a number >= %g, or inf", s->min);
        else snprintf(buf, n, "a number in %g..%g", s->min, s->max);
        break;
    case QS_BOOL:
        snprintf(buf, n, "true or false");
        break;
    case QS_ENUM: {
        snprintf(buf, n, "one of ");
        for (const char *c = s->choices; *c; c++) {
            size_t l = strlen(buf);
            if (l + 4 >= n) break;
            if (*c == '|') strcat(buf, " | ");
            else buf[l] = *c, buf[l + 1] = 0;
        }
        break;
    }
    }
}

/* Index of `text` among the '|'-separated choices, -1 when absent. */
static int choice_index(const char *choices, const char *text) {
    size_t tl = strlen(text);
    int i = 0;
    for (const char *c = choices; *c; i++) {
        const char *e = strchr(c, '|');
        size_t l = e ? (size_t)(e - c) : strlen(c);
        if (l == tl && !strncmp(c, text, l)) return i;
        if (!e) break;
        c = e + 1;
    }
    return -1;
}

int quant_setting_valid(const QuantSetting *s, double v) {
    if (isnan(v)) return 0;
    if (s->type == QS_DOUBLE) return v >= s->min && (v <= s->max || ((s->flags & QS_INF) && isinf(v) && v > 0));
    return v == floor(v) && v >= s->min && v <= s->max;
}

int quant_setting_parse(const QuantSetting *s, const char *text, double *v, char *why, size_t n) {
    char exp[128];
    quant_setting_expected(s, exp, sizeof exp);
    char *end = NULL;
    switch (s->type) {
    case QS_INT: {
        if ((s->flags & QS_ROW) && !strcmp(text, "row")) {
            *v = 0;
            return 0;
        }
        long long x = strtoll(text, &end, 10);
        if (!*text || *end || !quant_setting_valid(s, (double)x)) break;
        *v = (double)x;
        return 0;
    }
    case QS_DOUBLE: {
        if ((s->flags & QS_INF) && (!strcasecmp(text, "inf") || !strcasecmp(text, "infinity"))) {
            *v = INFINITY;
            return 0;
        }
        double x = strtod(text, &end);
        if (!*text || *end || !isfinite(x) || !quant_setting_valid(s, x)) break;
        *v = x;
        return 0;
    }
    case QS_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1")) *v = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "0")) *v = 0;
        else break;
        return 0;
    case QS_ENUM: {
        int i = choice_index(s->choices, text);
        if (i < 0) break;
        *v = i;
        return 0;
    }
    }
    snprintf(why, n, "'%s': expected %s", text, exp);
    return -1;
}

void quant_setting_format(const QuantSetting *s, double v, char *buf, size_t n) {
    switch (s->type) {
    case QS_BOOL:
        snprintf(buf, n, "%s", v ? "true" : "false");
        break;
    case QS_ENUM: {
        int want = (int)v, i = 0;
        buf[0] = 0;
        for (const char *c = s->choices; *c; i++) {
            const char *e = strchr(c, '|');
            size_t l = e ? (size_t)(e - c) : strlen(c);
            if (i == want) {
                snprintf(buf, n, "%.*s", (int)l, c);
                break;
            }
            if (!e) break;
            c = e + 1;
        }
        break;
    }
    case QS_DOUBLE:
        if (isinf(v)) snprintf(buf, n, "inf");
        else snprintf(buf, n, "%g", v);
        break;
    default:
        snprintf(buf, n, "%.0f", v);
    }
}

void quant_setting_default_text(const QuantSetting *s, char *buf, size_t n) {
    char vals[QUANT_MAX_METHODS][64];
    const char *names[QUANT_MAX_METHODS];
    int k = 0, same = 1;
    for (int i = 0; quant_methods[i].name && k < QUANT_MAX_METHODS; i++) {
        if (!quant_setting_used_by(s, &quant_methods[i])) continue;
        QuantParams p;
        quant_params_default(&p, quant_methods[i].name);
        quant_setting_format(s, quant_setting_get(&p, s), vals[k], sizeof vals[k]);
        names[k] = quant_methods[i].name;
        if (k && strcmp(vals[k], vals[0])) same = 0;
        k++;
    }
    if (k == 0) {
        buf[0] = 0;
        return;
    }
    if (same) {
        snprintf(buf, n, "default %s", vals[0]);
        return;
    }
    buf[0] = 0;
    for (int i = 0; i < k; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s %s", i ? ", " : "default ", names[i], vals[i]);
    }
}
