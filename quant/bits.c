/* bits.c: bits per parameter, SPEC 6: the paper's formula from the
 * parameters, and the exact size of a QuantLayer in the stored format (the
 * list of packed tensors that a writer emits). Holds no packing code (pack.c)
 * and no file I/O. */
#include <math.h>

#include "quant_internal.h"

double quant_bits_formula_n(const QuantParams *p, int n, double outlier_fraction) {
    int rounded = p->round_zero || p->gptq_zero_rule;
    double sbits = p->qq_scale_bits > 0 ? p->qq_scale_bits : 16;
    double zbits = rounded ? p->wbits : (p->qq_zero_bits > 0 ? p->qq_zero_bits : 16);
    /* each second-level coded statistic costs a 16-bit scale and a 16-bit zero per
     * (beta2 rows x group): 32 bits, "64" in the paper when both are coded */
    int second = (p->qq_scale_bits > 0) + (quant_zero_has_second_level(p) ? 1 : 0);
    double beta1 = p->groupsize > 0 ? (double)p->groupsize : (n > 0 ? (double)n : INFINITY);
    double avg = p->wbits + (sbits + zbits) / beta1 + 32.0 * outlier_fraction;
    if (second) avg += 32.0 * second / (beta1 * p->qq_groupsize);
    return avg;
}

double quant_bits_formula(const QuantParams *p, double outlier_fraction) {
    return quant_bits_formula_n(p, 0, outlier_fraction);
}

double quant_bits_formula_layer(const QuantParams *p, const char *method, int m, int n, double outlier_fraction) {
    double b = quant_bits_formula_n(p, n, outlier_fraction);
    const QuantMethod *mi = quant_method_find(method);
    if (mi && (mi->caps & QUANT_CAP_ACT_SCALE) && m > 0) b += (double)quant_stats_dtype_bits(p->stats_dtype) / m;
    return b;
}

static void add(QuantStoredTensor *t, int *k, const char *name, int64_t count, int bits) {
    t[*k].name = name;
    t[*k].count = count;
    t[*k].bits = bits;
    t[*k].bytes = (int64_t)quant_packed_bytes((size_t)count, bits);
    (*k)++;
}

int quant_layer_stored_tensors(const QuantLayer *q, QuantStoredTensor t[QUANT_MAX_STORED_TENSORS]) {
    int k = 0;
    int64_t stats = (int64_t)q->m * q->ngroups, second = (int64_t)q->qq_groups * q->ngroups;
    const int fp16 = q->stats_dtype == QH_STATS_FP16, v = quant_stats_dtype_bits(q->stats_dtype);
    add(t, &k, "codes", (int64_t)q->m * q->n, q->wbits);
    if (q->scale_fp) add(t, &k, fp16 ? "scale_f16" : "scale_f32", stats, v);
    if (q->scale_codes) add(t, &k, "scale_codes", stats, q->scale_code_bits);
    if (q->qq_scale_scale) add(t, &k, "qq_scale_scale", second, v);
    if (q->qq_scale_zero) add(t, &k, "qq_scale_zero", second, v);
    if (q->zero_fp) add(t, &k, fp16 ? "zero_f16" : "zero_f32", stats, v);
    if (q->zero_codes) add(t, &k, "zero_codes", stats, q->zero_code_bits);
    if (q->qq_zero_scale) add(t, &k, "qq_zero_scale", second, v);
    if (q->qq_zero_zero) add(t, &k, "qq_zero_zero", second, v);
    if (q->outlier_rowptr) {
        add(t, &k, "outlier_rowptr", (int64_t)q->m + 1, 32);
        add(t, &k, "outlier_col", q->n_outliers, 16);
        add(t, &k, "outlier_val", q->n_outliers, v);
    }
    if (q->params.perm == QH_PERM_ACT_ORDER) add(t, &k, "perm", q->n, 16);
    if (q->in_scale) add(t, &k, fp16 ? "in_scale_f16" : "in_scale_f32", q->n, v);
    return k;
}

int64_t quant_layer_stored_bits(const QuantLayer *q) {
    QuantStoredTensor t[QUANT_MAX_STORED_TENSORS];
    int k = quant_layer_stored_tensors(q, t);
    int64_t bytes = 0;
    for (int i = 0; i < k; i++) bytes += t[i].bytes;
    return 8 * bytes;
}
