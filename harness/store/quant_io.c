/* quant_io.c: quantized-model files (see quant_io.h). Each sub-layer is a
 * group /layers/<l>/<name> holding exactly the tensors of the stored format
 * (quant_layer_stored_tensors): bit-packed codes as uint8 byte streams,
 * values (statistics, outliers) as float32 in the reference mode or as fp16
 * bit patterns (uint16) in the deployment mode, as the layer's `stats_dtype`
 * attribute says (the file's: /settings/stats_dtype), outlier columns and the
 * permutation as uint16, outlier row pointers as int32; plus attributes for
 * the shape and the diagnostics. A reader refuses values stored in another
 * type than the attribute says. <name> and the linears of a block are the
 * model family's (arch.h: "wq" .. "w2" for LLaMA, "query_key_value" ..
 * "dense_4h_to_h" for Falcon). */
#include "quant_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "half.h"
#include "model_hash.h"
#include "model_open.h"
#include "results.h"
#include "settings.h"
#include "stream_eval.h"
#include "util.h"

static void layer_group(char *buf, size_t n, const char *g, int l, const char *name) {
    snprintf(buf, n, "%s/layers/%d/%s", strcmp(g, "/") ? g : "", l, name);
}

/* Write `count` codes of `bits` bits, packed; adds the bytes to *bytes. */
static int put_packed(H5File *f, const char *grp, const char *name, const uint8_t *codes, int64_t count, int bits,
                      int64_t *bytes) {
    size_t nb = quant_packed_bytes((size_t)count, bits);
    uint8_t *buf = qh_malloc(nb);
    quant_pack_codes(codes, (size_t)count, bits, buf);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    int rc = h5_write(f, p, H5T_QH_U8, buf, (int64_t)nb, 0);
    rc |= h5_attr_i64(f, p, "bits", bits);
    rc |= h5_attr_i64(f, p, "count", count);
    free(buf);
    *bytes += (int64_t)nb;
    return rc;
}

static int put_u16(H5File *f, const char *grp, const char *name, const uint16_t *v, int64_t d0, int64_t d1,
                   int64_t *bytes) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    *bytes += 2 * d0 * (d1 > 0 ? d1 : 1);
    return h5_write(f, p, H5T_QH_U16, v, d0, d1);
}

/* The HDF5 type that values of precision d are stored in. */
static H5QhType values_type(QuantStatsDtype d) { return d == QH_STATS_FP16 ? H5T_QH_U16 : H5T_QH_F32; }

/* The dataset of a first-level statistic kept as values: scale_f32 / scale_f16, zero_f32 / zero_f16. */
static const char *stat_dataset(int zero, QuantStatsDtype d) {
    static const char *names[2][2] = {{"scale_f32", "scale_f16"}, {"zero_f32", "zero_f16"}};
    return names[zero != 0][d == QH_STATS_FP16];
}

/* AWQ's per input channel scales (QuantLayer.in_scale): in_scale_f32 / in_scale_f16. */
static const char *in_scale_dataset(QuantStatsDtype d) { return d == QH_STATS_FP16 ? "in_scale_f16" : "in_scale_f32"; }

/* Write d0 x d1 values (d1 = 0: rank 1) in precision d: float32, or fp16 bit
 * patterns (the values are fp16 numbers already: exact); adds the bytes. */
static int put_values(H5File *f, const char *grp, const char *name, const float *v, int64_t d0, int64_t d1,
                      QuantStatsDtype d, int64_t *bytes) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    int64_t count = d0 * (d1 > 0 ? d1 : 1);
    *bytes += count * (quant_stats_dtype_bits(d) / 8);
    if (d != QH_STATS_FP16) return h5_write(f, p, H5T_QH_F32, v, d0, d1);
    uint16_t *h = qh_malloc(sizeof(uint16_t) * (size_t)(count > 0 ? count : 1));
    for (int64_t i = 0; i < count; i++) h[i] = qh_f32_to_f16(v[i]);
    int rc = h5_write(f, p, H5T_QH_U16, h, d0, d1);
    free(h);
    return rc;
}

/* Write sub-layer (l, k) of run under g; adds its bytes to *total. */
static int write_layer(H5File *f, const char *g, const QuantRun *run, int l, int k, int64_t *total) {
    const QuantLayer *q = &run->layers[l * LIN_COUNT + k];
    const SubLayerReport *r = &run->reports[l * LIN_COUNT + k];
    const ArchLinear *al = &arch_get((ArchId)run->arch)->lin[k];
    char grp[256];
    layer_group(grp, sizeof grp, g, l, al->name);
    if (h5_group(f, grp) != 0) return -1;
    int64_t bytes = 0;
    int rc = 0;
    int64_t stats = (int64_t)q->m * q->ngroups;
    const QuantStatsDtype d = q->stats_dtype;
    rc |= put_packed(f, grp, "codes", q->codes, (int64_t)q->m * q->n, q->wbits, &bytes);
    if (q->scale_fp) rc |= put_values(f, grp, stat_dataset(0, d), q->scale_fp, q->m, q->ngroups, d, &bytes);
    if (q->scale_codes) rc |= put_packed(f, grp, "scale_codes", q->scale_codes, stats, q->scale_code_bits, &bytes);
    if (q->qq_scale_scale) rc |= put_values(f, grp, "qq_scale_scale", q->qq_scale_scale, q->qq_groups, q->ngroups, d, &bytes);
    if (q->qq_scale_zero) rc |= put_values(f, grp, "qq_scale_zero", q->qq_scale_zero, q->qq_groups, q->ngroups, d, &bytes);
    if (q->zero_fp) rc |= put_values(f, grp, stat_dataset(1, d), q->zero_fp, q->m, q->ngroups, d, &bytes);
    if (q->zero_codes) rc |= put_packed(f, grp, "zero_codes", q->zero_codes, stats, q->zero_code_bits, &bytes);
    if (q->qq_zero_scale) rc |= put_values(f, grp, "qq_zero_scale", q->qq_zero_scale, q->qq_groups, q->ngroups, d, &bytes);
    if (q->qq_zero_zero) rc |= put_values(f, grp, "qq_zero_zero", q->qq_zero_zero, q->qq_groups, q->ngroups, d, &bytes);
    if (q->outlier_rowptr) {
        int32_t *rp = qh_malloc(sizeof(int32_t) * (size_t)(q->m + 1));
        for (int i = 0; i <= q->m; i++) rp[i] = (int32_t)q->outlier_rowptr[i];
        char p[512];
        snprintf(p, sizeof p, "%s/outlier_rowptr", grp);
        rc |= h5_write(f, p, H5T_QH_I32, rp, q->m + 1, 0);
        bytes += 4 * (int64_t)(q->m + 1);
        free(rp);
        rc |= put_u16(f, grp, "outlier_col", q->outlier_col, q->n_outliers, 0, &bytes);
        rc |= put_values(f, grp, "outlier_val", q->outlier_val, q->n_outliers, 0, d, &bytes);
    }
    if (q->params.perm == QH_PERM_ACT_ORDER) {
        uint16_t *pm = qh_malloc(sizeof(uint16_t) * (size_t)q->n);
        for (int i = 0; i < q->n; i++) pm[i] = (uint16_t)q->perm[i];
        rc |= put_u16(f, grp, "perm", pm, q->n, 0, &bytes);
        free(pm);
    }
    if (q->in_scale) rc |= put_values(f, grp, in_scale_dataset(d), q->in_scale, q->n, 0, d, &bytes);
    rc |= h5_attr_str(f, grp, "method", q->method);
    rc |= h5_attr_str(f, grp, "stats_dtype", quant_stats_dtype_name(d));
    rc |= h5_attr_str(f, grp, "row_order", quant_io_row_order_name(run->qk_rotate_half && al->rotary_rows));
    rc |= h5_attr_i64(f, grp, "m", q->m);
    rc |= h5_attr_i64(f, grp, "n", q->n);
    rc |= h5_attr_i64(f, grp, "ngroups", q->ngroups);
    rc |= h5_attr_i64(f, grp, "groupsize", q->groupsize);
    rc |= h5_attr_i64(f, grp, "wbits", q->wbits);
    rc |= h5_attr_i64(f, grp, "scale_code_bits", q->scale_code_bits);
    rc |= h5_attr_i64(f, grp, "zero_code_bits", q->zero_code_bits);
    rc |= h5_attr_i64(f, grp, "qq_groupsize", q->qq_groupsize);
    rc |= h5_attr_i64(f, grp, "qq_groups", q->qq_groups);
    rc |= h5_attr_i64(f, grp, "n_outliers", q->n_outliers);
    rc |= h5_attr_i64(f, grp, "stored_bytes", bytes);
    rc |= h5_attr_f64(f, grp, "proxy_loss", q->proxy_loss);
    rc |= h5_attr_f64(f, grp, "outlier_scale", q->outlier_scale);
    rc |= h5_attr_f64(f, grp, "tau_abs", q->tau_abs);
    rc |= h5_attr_f64(f, grp, "damp_used", q->damp_used);
    rc |= h5_attr_i64(f, grp, "damp_retries", q->damp_retries);
    rc |= h5_attr_i64(f, grp, "n_dead", q->n_dead);
    rc |= h5_attr_f64(f, grp, "formula_bits", r->formula_bits);
    rc |= h5_attr_f64(f, grp, "seconds", r->seconds);
    if (rc) return -1;
    if (bytes * 8 != quant_layer_stored_bits(q))
        return qh_error("internal: layer %d %s wrote %lld bytes, the format says %lld bits", l,
                        al->name, (long long)bytes, (long long)quant_layer_stored_bits(q));
    *total += bytes;
    return 0;
}

int quant_io_write_block(H5File *f, const char *g, const QuantRun *run, int l, int64_t *total) {
    for (int k = 0; k < arch_get((ArchId)run->arch)->n_lin; k++)
        if (write_layer(f, g, run, l, k, total) != 0) return -1;
    return 0;
}

int quant_io_write(H5File *f, const char *g, const QuantRun *run, int64_t *total) {
    *total = 0;
    for (int l = 0; l < run->n_layers; l++)
        if (quant_io_write_block(f, g, run, l, total) != 0) return -1;
    return 0;
}

int quant_io_write_report(H5File *f, const char *g, const QuantRun *run) {
    const ArchDesc *a = arch_get((ArchId)run->arch);
    int L = run->n_layers, nl = a->n_lin, n = L * nl;
    const char *base = strcmp(g, "/") ? g : "";
    double *v = qh_malloc(sizeof(double) * (size_t)n);
    char p[512], columns[512] = "";
    for (int k = 0; k < nl; k++)
        snprintf(columns + strlen(columns), sizeof columns - strlen(columns), "%s%s", k ? "," : "", a->lin[k].name);
    int rc = 0;
    static const char *names[6] = {"proxy_loss", "n_outliers", "outlier_fraction", "formula_bits", "stored_bits", "seconds"};
    for (int which = 0; which < 6 && rc == 0; which++) {
        for (int i = 0; i < n; i++) { /* (L, n_lin) */
            const SubLayerReport *r = &run->reports[(i / nl) * LIN_COUNT + i % nl];
            double x[6] = {r->proxy_loss, (double)r->n_outliers, r->outlier_fraction, r->formula_bits,
                           sublayer_stored_bits(r), r->seconds};
            v[i] = x[which];
        }
        snprintf(p, sizeof p, "%s/quant/layer_%s", base, names[which]);
        rc = h5_write(f, p, H5T_QH_F64, v, L, nl);
        if (rc == 0) rc = h5_attr_str(f, p, "columns", columns);
    }
    free(v);
    snprintf(p, sizeof p, "%s/quant/block_rel_err", base);
    if (rc == 0) rc = h5_write(f, p, H5T_QH_F64, run->block_rel_err, L, 0);
    if (rc == 0 && run->awq_ratio) { /* (L, n_lin) the exponents AWQ's search chose */
        v = qh_malloc(sizeof(double) * (size_t)n);
        for (int i = 0; i < n; i++) v[i] = run->awq_ratio[(i / nl) * LIN_COUNT + i % nl];
        snprintf(p, sizeof p, "%s/quant/awq_ratio", base);
        rc = h5_write(f, p, H5T_QH_F64, v, L, nl);
        if (rc == 0) rc = h5_attr_str(f, p, "columns", columns);
        free(v);
    }
    snprintf(p, sizeof p, "%s/quant", base);
    if (rc == 0) {
        rc |= h5_attr_f64(f, p, "avg_bits", run->avg_bits);
        rc |= h5_attr_f64(f, p, "stored_bits", run->stored_bits);
        rc |= h5_attr_str(f, p, "stats_dtype", quant_stats_dtype_name(run->stats_dtype));
        rc |= h5_attr_f64(f, p, "outlier_fraction", run->outlier_fraction);
        rc |= h5_attr_f64(f, p, "total_proxy_loss", run->total_proxy_loss);
        rc |= h5_attr_i64(f, p, "quantized_params", run->params);
        rc |= h5_attr_f64(f, p, "seconds_total", run->t_total);
        rc |= h5_attr_f64(f, p, "seconds_calib_forward", run->t_calib_forward);
        rc |= h5_attr_f64(f, p, "seconds_hessian", run->t_hessian);
        rc |= h5_attr_f64(f, p, "seconds_factor", run->t_factor);
        rc |= h5_attr_f64(f, p, "seconds_sweep", run->t_sweep);
        rc |= h5_attr_f64(f, p, "seconds_loo", run->t_loo);
        rc |= h5_attr_f64(f, p, "seconds_pack", run->t_pack);
        rc |= h5_attr_str(f, p, "device", run->device ? run->device : "");
        rc |= h5_attr_str(f, p, "calib_source", run->calib_info.source);
        rc |= h5_attr_str(f, p, "calib_sha256", run->calib_info.sha256);
        rc |= h5_attr_str(f, p, "calib_rule", run->calib_info.rule);
        rc |= h5_attr_i64(f, p, "calib_tokens", (int64_t)run->calib_info.n);
        rc |= h5_attr_str(f, p, "calib_split", run->calib_info.split);
        rc |= h5_attr_str(f, p, "calib_origin", run->calib_info.origin);
        rc |= h5_attr_i64(f, p, "calib_is_train_data", run->calib_info.is_train_data);
        if (run->calib_info.ndraws > 0) { /* which documents and offsets the windows came from */
            snprintf(p, sizeof p, "%s/quant/calib_draws", base);
            rc |= h5_write(f, p, H5T_QH_I64, run->calib_info.draws, run->calib_info.ndraws, 3);
            if (rc == 0) rc = h5_attr_str(f, p, "columns", "document,document_tokens,window_start");
        }
    }
    return rc ? -1 : 0;
}

/* The settings of the file, one attribute of /settings per row of
 * quant_settings[] (settings.h): integers, booleans and enums as int64,
 * numbers as float64 (inf for no outliers). */
int quant_io_write_settings(H5File *f, const QuantParams *p) {
    int rc = h5_group(f, "/settings");
    for (const QuantSetting *q = quant_settings; q->name && rc == 0; q++) {
        double v = quant_setting_get(p, q);
        rc = q->type == QS_DOUBLE ? h5_attr_f64(f, "/settings", q->name, v) : h5_attr_i64(f, "/settings", q->name, (int64_t)v);
    }
    return rc;
}

int quant_io_setting_value(H5File *f, const QuantSetting *q, double *v) {
    if (!h5_exists(f, "/settings") || !h5_has_attr(f, "/settings", q->name)) {
        if (!(q->flags & QS_NEW)) return 1;
        *v = quant_setting_before(q); /* the file was made before the setting existed */
        return 0;
    }
    int64_t i;
    if (q->type == QS_DOUBLE) {
        if (h5_get_attr_f64(f, "/settings", q->name, v) != 0) return -1;
    } else {
        if (h5_get_attr_i64(f, "/settings", q->name, &i) != 0) return -1;
        *v = (double)i;
    }
    if (quant_setting_valid(q, *v)) return 0;
    char text[64], exp[128];
    quant_setting_format(q, *v, text, sizeof text);
    quant_setting_expected(q, exp, sizeof exp);
    return qh_error("'%s': attribute /settings/%s = %s; expected %s", h5_path(f), q->name, text, exp);
}

/* Read /settings back into p (over the method's defaults), each value checked
 * against its row (quant_io_setting_value: a QS_NEW setting the file does not
 * record is the value it was made with before the setting existed);
 * *have = 0 when the file has no /settings (older files). */
static int read_settings(H5File *f, const char *method, QuantParams *p, int *have) {
    quant_params_default(p, method);
    *have = h5_exists(f, "/settings");
    for (const QuantSetting *q = quant_settings; q->name; q++) {
        double v;
        int rc = quant_io_setting_value(f, q, &v);
        if (rc < 0) return -1;
        if (rc == 0) quant_setting_set(p, q, v);
    }
    return 0;
}

int quant_model_file_begin(const char *path, const Model *m, const QuantRunSpec *spec, const Provenance *prov,
                           const char *settings_json, H5File **out) {
    H5File *f;
    if (h5_create(path, &f) != 0) return -1;
    int rc = results_write_header(f, "/", prov, m, settings_json);
    rc |= h5_attr_str(f, "/", "kind", "quantized_model");
    rc |= h5_attr_str(f, "/", "method", spec->method);
    if (rc == 0) rc = quant_io_write_settings(f, &spec->params);
    if (rc != 0) {
        h5_abort(&f);
        return qh_error("'%s' was not written", path);
    }
    *out = f;
    return 0;
}

int quant_model_file_end(H5File **pf, const QuantRun *run, int64_t bytes) {
    H5File *f = *pf;
    int rc = 0;
    rc |= h5_attr_f64(f, "/", "avg_bits", run->avg_bits);
    rc |= h5_attr_f64(f, "/", "stored_bits", run->stored_bits);
    rc |= h5_attr_f64(f, "/", "outlier_fraction", run->outlier_fraction);
    rc |= h5_attr_i64(f, "/", "quantized_params", run->params);
    if (rc == 0) rc = quant_io_write_report(f, "/", run);
    if (rc == 0) rc = h5_attr_i64(f, "/", "stored_bytes", bytes);
    if (rc != 0) {
        char *path = qh_strdup(h5_path(f));
        h5_abort(pf);
        qh_error("'%s' was not written", path);
        free(path);
        return -1;
    }
    return h5_commit(pf);
}

int quant_model_save(const char *path, const Model *m, const QuantRunSpec *spec, const QuantRun *run,
                     const Provenance *prov, const char *settings_json) {
    H5File *f;
    int64_t bytes = 0;
    if (quant_model_file_begin(path, m, spec, prov, settings_json, &f) != 0) return -1;
    if (quant_io_write(f, "/", run, &bytes) != 0) {
        h5_abort(&f);
        return qh_error("'%s' was not written", path);
    }
    return quant_model_file_end(&f, run, bytes);
}

static int get_u16(H5File *f, const char *grp, const char *name, uint16_t **out, int64_t want) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    int64_t d0, d1;
    void *data;
    if (h5_read(f, p, H5T_QH_U16, &data, &d0, &d1) != 0) return -1;
    if (d0 * (d1 > 0 ? d1 : 1) != want) {
        free(data);
        return qh_error("'%s': %s has %lld elements, expected %lld", h5_path(f), p, (long long)(d0 * (d1 > 0 ? d1 : 1)),
                        (long long)want);
    }
    *out = data;
    return 0;
}

/* Read `want` values of precision d into *out (float): refused unless stored
 * in d's type (a float32 dataset is not read as fp16 bit patterns, nor the
 * other way round). */
static int get_values(H5File *f, const char *grp, const char *name, float **out, int64_t want, QuantStatsDtype d) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    H5QhType t, expect = values_type(d);
    if (h5_dataset_type(f, p, &t) != 0) return -1;
    if (t != expect)
        return qh_error("'%s': %s is stored as %s, but the layer's stats_dtype %s is stored as %s", h5_path(f), p,
                        h5_type_name(t), quant_stats_dtype_name(d), h5_type_name(expect));
    int64_t d0, d1;
    void *data;
    if (h5_read(f, p, expect, &data, &d0, &d1) != 0) return -1;
    int64_t count = d0 * (d1 > 0 ? d1 : 1);
    if (count != want) {
        free(data);
        return qh_error("'%s': %s has %lld elements, expected %lld", h5_path(f), p, (long long)count, (long long)want);
    }
    if (d == QH_STATS_FP16) {
        float *v = qh_malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
        for (int64_t i = 0; i < count; i++) v[i] = qh_f16_to_f32(((const uint16_t *)data)[i]);
        free(data);
        data = v;
    }
    *out = data;
    return 0;
}

/* The stats_dtype attribute of obj (a layer group or "/"); files written
 * before the attribute existed hold fp16 values. */
static int read_stats_dtype(H5File *f, const char *obj, QuantStatsDtype *d) {
    *d = QH_STATS_FP16;
    if (!h5_has_attr(f, obj, "stats_dtype")) return 0;
    char *v = NULL;
    if (h5_get_attr_str(f, obj, "stats_dtype", &v) != 0) return -1;
    int rc = quant_stats_dtype_parse(v, d) == 0
                 ? 0
                 : qh_error("'%s': %s has stats_dtype '%s', expected fp32 (reference) or fp16 (deployment)", h5_path(f),
                            obj, v);
    free(v);
    return rc;
}

static int get_packed(H5File *f, const char *grp, const char *name, uint8_t **out, int64_t count, int bits) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", grp, name);
    int64_t d0, d1;
    void *data;
    if (bits < 1 || bits > 8) return qh_error("'%s': %s has %d bits per code, expected 1..8", h5_path(f), p, bits);
    if (h5_read(f, p, H5T_QH_U8, &data, &d0, &d1) != 0) return -1;
    if ((size_t)d0 != quant_packed_bytes((size_t)count, bits) || d1 != 0) {
        free(data);
        return qh_error("'%s': %s has %lld bytes, expected %zu", h5_path(f), p, (long long)d0,
                        quant_packed_bytes((size_t)count, bits));
    }
    *out = qh_malloc((size_t)count);
    quant_unpack_codes(data, (size_t)count, bits, *out);
    free(data);
    return 0;
}

/* The shape attributes of a layer group (m n ngroups groupsize wbits
 * scale_code_bits zero_code_bits qq_groupsize qq_groups n_outliers, in v[])
 * against each other, in 64-bit arithmetic before anything is cast, sized or
 * divided by: -1 with a message naming the attribute and what was expected. */
static int check_shape_attrs(H5File *f, const char *grp, const int64_t v[10]) {
    const int64_t m = v[0], n = v[1], ngroups = v[2], gs = v[3], qq_gs = v[7], qq_groups = v[8], nnz = v[9];
    const int64_t dim_max = (int64_t)1 << 24; /* rows / columns of one linear layer (LLaMA-65B: 22016) */
#define BAD(...) qh_error("'%s': %s: " __VA_ARGS__)
    if (m < 1 || m > dim_max) return BAD("m = %lld, expected 1..%lld", h5_path(f), grp, (long long)m, (long long)dim_max);
    if (n < 1 || n > dim_max) return BAD("n = %lld, expected 1..%lld", h5_path(f), grp, (long long)n, (long long)dim_max);
    if (gs < 1 || gs > n) return BAD("groupsize = %lld, expected 1..%lld (n)", h5_path(f), grp, (long long)gs, (long long)n);
    if (ngroups != (n + gs - 1) / gs)
        return BAD("ngroups = %lld, expected ceil(n / groupsize) = %lld", h5_path(f), grp, (long long)ngroups,
                   (long long)((n + gs - 1) / gs));
    if (v[4] < 1 || v[4] > 8) return BAD("wbits = %lld, expected 1..8", h5_path(f), grp, (long long)v[4]);
    for (int i = 5; i <= 6; i++)
        if (v[i] < 0 || v[i] > 8)
            return BAD("%s = %lld, expected 0..8", h5_path(f), grp, i == 5 ? "scale_code_bits" : "zero_code_bits",
                       (long long)v[i]);
    if (qq_gs == 0 && qq_groups != 0)
        return BAD("qq_groupsize = 0 (no second-level statistics) but qq_groups = %lld, expected 0", h5_path(f), grp,
                   (long long)qq_groups);
    if (qq_gs < 0 || qq_gs > m)
        return BAD("qq_groupsize = %lld, expected 0 (none) or 1..%lld (m)", h5_path(f), grp, (long long)qq_gs, (long long)m);
    if (qq_gs > 0 && qq_groups != (m + qq_gs - 1) / qq_gs)
        return BAD("qq_groups = %lld, expected ceil(m / qq_groupsize) = %lld", h5_path(f), grp, (long long)qq_groups,
                   (long long)((m + qq_gs - 1) / qq_gs));
    if (nnz < 0 || nnz > m * n)
        return BAD("n_outliers = %lld, expected 0..%lld (m n)", h5_path(f), grp, (long long)nnz, (long long)(m * n));
#undef BAD
    return 0;
}

/* The shape attributes of layer group grp into v[] (check_shape_attrs' order), checked. */
static int read_shape_attrs(H5File *f, const char *grp, int64_t v[10]) {
    if (!h5_exists(f, grp)) return qh_error("'%s': layer group %s is missing", h5_path(f), grp);
    static const char *names[10] = {"m", "n", "ngroups", "groupsize", "wbits", "scale_code_bits", "zero_code_bits",
                                    "qq_groupsize", "qq_groups", "n_outliers"};
    for (int i = 0; i < 10; i++)
        if (h5_get_attr_i64(f, grp, names[i], &v[i]) != 0) return -1;
    return check_shape_attrs(f, grp, v);
}

int quant_io_read_layer(H5File *f, const char *g, int l, LinearKind k, QuantLayer *q) {
    return quant_io_read_layer_named(f, g, l, linear_names[k], q);
}

int quant_io_read_layer_named(H5File *f, const char *g, int l, const char *name, QuantLayer *q) {
    memset(q, 0, sizeof *q);
    char grp[256];
    layer_group(grp, sizeof grp, g, l, name);
    int64_t v[10];
    if (read_shape_attrs(f, grp, v) != 0) return -1;
    q->m = (int)v[0];
    q->n = (int)v[1];
    q->ngroups = (int)v[2];
    q->groupsize = (int)v[3];
    q->wbits = (int)v[4];
    q->scale_code_bits = (int)v[5];
    q->zero_code_bits = (int)v[6];
    q->qq_groupsize = (int)v[7];
    q->qq_groups = (int)v[8];
    q->n_outliers = v[9];
    char *method = NULL;
    if (h5_get_attr_str(f, grp, "method", &method) != 0) return -1;
    snprintf(q->method, sizeof q->method, "%s", method);
    free(method);
    int64_t stats = (int64_t)q->m * q->ngroups, second = (int64_t)q->qq_groups * q->ngroups;
    int rc = get_packed(f, grp, "codes", &q->codes, (int64_t)q->m * q->n, q->wbits);
    char p[512];
#define HAS(name) (snprintf(p, sizeof p, "%s/%s", grp, name), h5_exists(f, p))
    QuantStatsDtype d;
    if (rc == 0) rc = read_stats_dtype(f, grp, &d);
    q->stats_dtype = d;
    for (int z = 0; z < 2 && rc == 0; z++) /* the other precision's first-level dataset means another mode */
        if (HAS(stat_dataset(z, d == QH_STATS_FP16 ? QH_STATS_FP32 : QH_STATS_FP16)))
            rc = qh_error("'%s': %s holds %s, but the layer's stats_dtype is %s", h5_path(f), grp,
                          stat_dataset(z, d == QH_STATS_FP16 ? QH_STATS_FP32 : QH_STATS_FP16), quant_stats_dtype_name(d));
    if (rc == 0 && HAS(stat_dataset(0, d))) rc = get_values(f, grp, stat_dataset(0, d), &q->scale_fp, stats, d);
    if (rc == 0 && HAS("scale_codes")) rc = get_packed(f, grp, "scale_codes", &q->scale_codes, stats, q->scale_code_bits);
    if (rc == 0 && HAS("qq_scale_scale")) rc = get_values(f, grp, "qq_scale_scale", &q->qq_scale_scale, second, d);
    if (rc == 0 && HAS("qq_scale_zero")) rc = get_values(f, grp, "qq_scale_zero", &q->qq_scale_zero, second, d);
    if (rc == 0 && HAS(stat_dataset(1, d))) rc = get_values(f, grp, stat_dataset(1, d), &q->zero_fp, stats, d);
    if (rc == 0 && HAS("zero_codes")) rc = get_packed(f, grp, "zero_codes", &q->zero_codes, stats, q->zero_code_bits);
    if (rc == 0 && HAS("qq_zero_scale")) rc = get_values(f, grp, "qq_zero_scale", &q->qq_zero_scale, second, d);
    if (rc == 0 && HAS("qq_zero_zero")) rc = get_values(f, grp, "qq_zero_zero", &q->qq_zero_zero, second, d);
    /* decoding divides row indices by qq_groupsize wherever second-level statistics exist */
    if (rc == 0 && (q->qq_scale_scale || q->qq_scale_zero || q->qq_zero_scale || q->qq_zero_zero) && q->qq_groupsize < 1)
        rc = qh_error("'%s': %s has second-level statistics (qq_*) but qq_groupsize = 0, expected 1..%d", h5_path(f),
                      grp, q->m);
    if (rc == 0 && (!q->qq_scale_scale != !q->qq_scale_zero || !q->qq_zero_scale != !q->qq_zero_zero))
        rc = qh_error("'%s': %s has one of a pair of second-level statistics (qq_scale_scale / qq_scale_zero, "
                      "qq_zero_scale / qq_zero_zero) without the other", h5_path(f), grp);
    if (rc == 0 && !(q->scale_fp || (q->scale_codes && q->qq_scale_scale && q->qq_scale_zero)))
        rc = qh_error("'%s': %s has no usable scale statistics", h5_path(f), grp);
    if (rc == 0 && !(q->zero_fp || q->zero_codes))
        rc = qh_error("'%s': %s has no zero statistics", h5_path(f), grp);
    if (rc == 0 && HAS("outlier_rowptr")) {
        void *rp = NULL;
        int64_t d0 = 0, d1 = 0;
        snprintf(p, sizeof p, "%s/outlier_rowptr", grp);
        rc = h5_read(f, p, H5T_QH_I32, &rp, &d0, &d1);
        if (rc == 0 && d0 != q->m + 1) rc = qh_error("'%s': %s has %lld entries, expected %d", h5_path(f), p, (long long)d0, q->m + 1);
        if (rc == 0) {
            q->outlier_rowptr = qh_malloc(sizeof(int64_t) * (size_t)(q->m + 1));
            const int32_t *r32 = rp;
            for (int i = 0; i <= q->m; i++) q->outlier_rowptr[i] = r32[i];
            for (int i = 0; i < q->m && rc == 0; i++)
                if (r32[i] > r32[i + 1] || r32[0] != 0 || r32[q->m] != q->n_outliers)
                    rc = qh_error("'%s': %s is not a valid CSR row pointer", h5_path(f), p);
        }
        free(rp);
        if (rc == 0) rc = get_u16(f, grp, "outlier_col", &q->outlier_col, q->n_outliers);
        if (rc == 0) rc = get_values(f, grp, "outlier_val", &q->outlier_val, q->n_outliers, d);
        for (int64_t i = 0; rc == 0 && i < q->n_outliers; i++)
            if (q->outlier_col[i] >= q->n) rc = qh_error("'%s': %s/outlier_col has column %d >= %d", h5_path(f), grp, q->outlier_col[i], q->n);
    }
    q->perm = qh_malloc(sizeof(int) * (size_t)q->n);
    if (rc == 0 && HAS("perm")) {
        uint16_t *pm;
        rc = get_u16(f, grp, "perm", &pm, q->n);
        if (rc == 0) {
            char *seen = qh_calloc((size_t)q->n, 1);
            for (int i = 0; i < q->n && rc == 0; i++) {
                if (pm[i] >= q->n || seen[pm[i]]) rc = qh_error("'%s': %s/perm is not a permutation", h5_path(f), grp);
                else seen[pm[i]] = 1;
                q->perm[i] = pm[i];
            }
            free(seen);
            free(pm);
            q->params.perm = QH_PERM_ACT_ORDER;
        }
    } else {
        for (int i = 0; i < q->n; i++) q->perm[i] = i;
    }
    /* AWQ's scales: present exactly when the method has them, n finite values > 0 */
    const QuantMethod *qm = quant_method_find(q->method);
    int want_scale = qm && (qm->caps & QUANT_CAP_ACT_SCALE);
    const QuantStatsDtype other = d == QH_STATS_FP16 ? QH_STATS_FP32 : QH_STATS_FP16;
    if (rc == 0 && HAS(in_scale_dataset(other)))
        rc = qh_error("'%s': %s holds %s, but the layer's stats_dtype is %s", h5_path(f), grp, in_scale_dataset(other),
                      quant_stats_dtype_name(d));
    if (rc == 0 && want_scale && !HAS(in_scale_dataset(d)))
        rc = qh_error("'%s': %s (method %s) has no %s: its per input channel scales are missing", h5_path(f), grp,
                      q->method, in_scale_dataset(d));
    if (rc == 0 && !want_scale && HAS(in_scale_dataset(d)))
        rc = qh_error("'%s': %s holds %s, but method %s has no per input channel scales", h5_path(f), grp,
                      in_scale_dataset(d), q->method);
    if (rc == 0 && want_scale) rc = get_values(f, grp, in_scale_dataset(d), &q->in_scale, q->n, d);
    int bad = rc == 0 && q->in_scale ? awq_scale_invalid(q->in_scale, q->n) : -1;
    if (bad >= 0)
        rc = qh_error("'%s': %s/%s[%d] = %g; expected a finite value > 0", h5_path(f), grp, in_scale_dataset(d), bad,
                      (double)q->in_scale[bad]);
#undef HAS
    if (rc == 0) {
        double d;
        if (h5_get_attr_f64(f, grp, "proxy_loss", &d) == 0) q->proxy_loss = d;
    }
    if (rc != 0) quant_layer_free(q);
    return rc;
}

const char *quant_io_row_order_name(int rotate_half) { return rotate_half ? "rotate_half" : "interleaved"; }

/* The "row_order" of layer (l, k): *rotate_half 1 when its rows are stored in
 * the rotate-half order of a Hugging Face checkpoint (wq / wk only); files
 * written before the attribute existed hold the harness's order. */
int quant_io_row_order(H5File *f, const ModelConfig *c, int l, LinearKind k, int *rotate_half) {
    char grp[256];
    layer_group(grp, sizeof grp, "/", l, model_linear_name(c, k));
    *rotate_half = 0;
    if (!h5_has_attr(f, grp, "row_order")) return 0;
    char *v = NULL;
    if (h5_get_attr_str(f, grp, "row_order", &v) != 0) return -1;
    int rc = 0;
    if (!strcmp(v, quant_io_row_order_name(1)) && model_linear_rotary(c, k)) *rotate_half = 1;
    else if (strcmp(v, quant_io_row_order_name(0)) != 0)
        rc = qh_error("'%s': %s has row_order '%s', expected '%s'%s", h5_path(f), grp, v, quant_io_row_order_name(0),
                      model_linear_rotary(c, k) ? " or 'rotate_half'" : " (only wq and wk may be stored rotate-half)");
    free(v);
    return rc;
}

int quant_io_stats_dtype(H5File *f, QuantStatsDtype *d) {
    double v;
    if (quant_io_setting_value(f, quant_setting_find("stats_dtype"), &v) != 0) return -1; /* QS_NEW: never 1 */
    *d = (QuantStatsDtype)v;
    return 0;
}

int quant_io_load_block(H5File *f, Model *m, int l) {
    QuantStatsDtype file_d = QH_STATS_FP32;
    int rc = quant_io_stats_dtype(f, &file_d);
    for (int k = 0; k < model_n_linears(&m->cfg) && rc == 0; k++) {
        QuantLayer q;
        int rows, cols;
        model_linear_shape(&m->cfg, (LinearKind)k, &rows, &cols);
        rc = quant_io_read_layer_named(f, "/", l, model_linear_name(&m->cfg, k), &q);
        if (rc == 0 && (q.m != rows || q.n != cols))
            rc = qh_error("'%s': layer %d %s is %d x %d, the model's is %d x %d", h5_path(f), l,
                          model_linear_name(&m->cfg, k), q.m, q.n, rows, cols);
        if (rc == 0 && q.stats_dtype != file_d)
            rc = qh_error("'%s': layer %d %s holds %s values, the file says %s (/settings/stats_dtype)", h5_path(f), l,
                          model_linear_name(&m->cfg, k), quant_stats_dtype_name(q.stats_dtype),
                          quant_stats_dtype_name(file_d));
        int rotate_half = 0;
        if (rc == 0) rc = quant_io_row_order(f, &m->cfg, l, (LinearKind)k, &rotate_half);
        if (rc == 0) {
            float *W = qh_malloc(sizeof(float) * (size_t)rows * cols * (rotate_half ? 2 : 1)); /* (rows, cols) x1|2 */
            quant_layer_dequantize(&q, W);
            if (rotate_half) model_rows_reorder(W + (size_t)rows * cols, W, rows, cols, model_head_size(&m->cfg), 0);
            model_set_linear(m, l, (LinearKind)k, W + (rotate_half ? (size_t)rows * cols : 0));
            free(W);
        }
        quant_layer_free(&q);
    }
    return rc;
}

/* The base model against the content hash the file recorded (model_hash.h):
 * -1 with a message on a mismatch unless `force` (then a warning). */
static int check_base_model(H5File *f, const char *path, const char *base, const Model *m, int force) {
    if (!h5_has_attr(f, "/", "model_sha256")) {
        qh_warn("'%s' records no model_sha256 (written before the hash existed): cannot check that '%s' is the model "
                "it was made from", path, m->path);
        return 0;
    }
    char *want = NULL, have[65];
    if (h5_get_attr_str(f, "/", "model_sha256", &want) != 0) return -1;
    model_content_sha256(m, have);
    int rc = 0;
    if (strcmp(want, have) != 0) {
        if (force)
            qh_warn("--force: '%s' was made from another model than '%s' (model_sha256 %.12s..., this one %.12s...)",
                    path, m->path, want, have);
        else
            rc = qh_error("'%s' was quantized from another model (model_path '%s', model_sha256 %.12s...), not from "
                          "'%s' (model_sha256 %.12s...): the embedding, norms or head differ (pass --force to "
                          "evaluate this combination anyway)", path, base, want, m->path, have);
    }
    free(want);
    return rc;
}

static int block_loader_load(void *user, Model *m, int layer) { return quant_io_load_block((H5File *)user, m, layer); }

/* One layer's decoding at its peak: every array quant_io_read_layer makes,
 * with the transient ones (packed codes, fp16 values, the int64 permutation
 * and row pointers as read) as if all were alive at once, and the decoded fp32
 * copy (twice for rows stored rotate-half): an upper bound. *largest grows to
 * the layer's largest dataset as stored (what HDF5 buffers). */
static size_t layer_decode_bound(size_t m, size_t n, size_t ngroups, int wbits, size_t qq_groups, size_t nnz,
                                 int rotate_half, size_t *largest) {
    size_t stats = m * ngroups, packed = quant_packed_bytes(m * n, wbits);
    size_t d[4] = {packed, 4 * stats, 8 * (m + 1), 4 * nnz};
    for (int i = 0; i < 4; i++)
        if (d[i] > *largest) *largest = d[i];
    return m * n + packed                       /* codes, unpacked and as read */
           + 2 * stats * 6                      /* scale and zero: fp32 + fp16 or packed */
           + 4 * qq_groups * ngroups * 6        /* second-level statistics */
           + (m + 1) * 16 + nnz * 8             /* outliers: row pointers, columns, values */
           + n * (4 + 8 + 1 + 6)                /* permutation as read and checked, AWQ scales */
           + sizeof(float) * m * n * (rotate_half ? 2 : 1);
}

/* most (one layer's decoding) + HDF5's buffers + what malloc may keep: the
 * decoded copies and the block's linears are freed and made again for every block */
static size_t decode_total(const ModelConfig *c, size_t most, size_t largest) {
    size_t wmax = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        if (sizeof(float) * (size_t)o * i > wmax) wmax = sizeof(float) * (size_t)o * i;
    }
    return most + h5_read_buffer_bytes(largest) + qh_malloc_retained_bytes(wmax);
}

int quant_io_decode_bytes(H5File *f, const ModelConfig *c, size_t *bytes) {
    *bytes = 0;
    size_t most = 0, largest = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < model_n_linears(c); k++) {
            char grp[256];
            layer_group(grp, sizeof grp, "/", l, model_linear_name(c, (LinearKind)k));
            int64_t v[10]; /* m n ngroups groupsize wbits ... qq_groups n_outliers, checked */
            int rotate_half = 0;
            if (read_shape_attrs(f, grp, v) != 0 || quant_io_row_order(f, c, l, (LinearKind)k, &rotate_half) != 0)
                return -1;
            size_t b = layer_decode_bound((size_t)v[0], (size_t)v[1], (size_t)v[2], (int)v[4], (size_t)v[8],
                                          (size_t)v[9], rotate_half, &largest);
            if (b > most) most = b;
        }
    *bytes = decode_total(c, most, largest);
    return 0;
}

size_t quant_io_decode_bytes_planned(const ModelConfig *c, const QuantParams *p) {
    size_t most = 0, largest = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        size_t m = (size_t)o, n = (size_t)i;
        size_t ngroups = p->groupsize > 0 ? (n + (size_t)p->groupsize - 1) / (size_t)p->groupsize : 1;
        size_t qq = p->qq_groupsize > 0 ? (m + (size_t)p->qq_groupsize - 1) / (size_t)p->qq_groupsize : 0;
        size_t nnz = isfinite(p->outlier_threshold) ? m * n : 0; /* no bound below every weight before the run */
        size_t b = layer_decode_bound(m, n, ngroups, p->wbits, qq, nnz, 1, &largest);
        if (b > most) most = b;
    }
    return decode_total(c, most, largest);
}

static int block_loader_work(void *user, const ModelConfig *c, size_t *bytes) {
    return quant_io_decode_bytes((H5File *)user, c, bytes);
}

StreamLoader quant_io_block_loader(H5File *f) { return (StreamLoader){block_loader_load, f, block_loader_work}; }

/* quant_model_load (keep NULL: every block decoded, the file closed) and
 * quant_model_open_streamed (the base model opened block by block, no block
 * decoded, the file left open in *keep). */
static int quant_model_open(const char *path, const char *model_path, const char *tok_path, int expect_stats_dtype,
                            int force, Model *m, Tokenizer *t, QuantModelInfo *info, H5File **keep) {
    memset(info, 0, sizeof *info);
    if (keep) *keep = NULL;
    H5File *f;
    if (h5_open_read(path, &f) != 0) return -1;
    char *kind = NULL, *base = NULL, *method = NULL;
    int rc = h5_get_attr_str(f, "/", "kind", &kind);
    if (rc == 0 && strcmp(kind, "quantized_model") != 0) rc = qh_error("'%s' is a '%s' file, not a quantized model", path, kind);
    if (rc == 0) rc = h5_get_attr_str(f, "/", "model_path", &base);
    if (rc == 0) rc = h5_get_attr_str(f, "/", "method", &method);
    if (rc == 0) {
        snprintf(info->method, sizeof info->method, "%s", method);
        h5_get_attr_f64(f, "/", "avg_bits", &info->avg_bits);
        h5_get_attr_f64(f, "/", "stored_bits", &info->stored_bits);
        h5_get_attr_f64(f, "/", "outlier_fraction", &info->outlier_fraction);
        h5_get_attr_i64(f, "/", "stored_bytes", &info->bytes_written);
        if (!quant_method_find(method)) {
            char names[128];
            quant_method_names(~0u, ", ", names, sizeof names);
            rc = qh_error("'%s': method '%s' unknown (expected one of %s)", path, method, names);
        }
    }
    if (rc == 0) rc = read_settings(f, method, &info->params, &info->have_params);
    if (rc == 0 && expect_stats_dtype >= 0 && info->params.stats_dtype != (QuantStatsDtype)expect_stats_dtype)
        rc = qh_error("'%s' holds %s values (%s mode), not %s (%s mode): it was quantized with --stats-dtype %s",
                      path, quant_stats_dtype_name(info->params.stats_dtype),
                      info->params.stats_dtype == QH_STATS_FP16 ? "deployment" : "reference",
                      quant_stats_dtype_name((QuantStatsDtype)expect_stats_dtype),
                      expect_stats_dtype == QH_STATS_FP16 ? "deployment" : "reference",
                      quant_stats_dtype_name(info->params.stats_dtype));
    if (rc == 0) rc = model_open_for(model_path ? model_path : base, tok_path, m, t, keep != NULL);
    if (rc == 0) {
        int64_t L;
        rc = h5_get_attr_i64(f, "/", "model_n_layers", &L);
        if (rc == 0 && L != m->cfg.n_layers)
            rc = qh_error("'%s' quantizes a %lld-layer model, but '%s' has %d layers", path, (long long)L, m->path,
                          m->cfg.n_layers);
        for (int l = 0; l < m->cfg.n_layers && rc == 0 && !keep; l++) rc = quant_io_load_block(f, m, l);
        if (rc == 0) rc = check_base_model(f, path, base, m, force); /* after the shapes: their message says more */
        if (rc != 0) {
            if (t) tokenizer_free(t);
            model_free(m);
        }
    }
    free(kind);
    free(base);
    free(method);
    if (rc == 0 && keep) *keep = f;
    else h5_commit(&f);
    return rc;
}

int quant_model_load(const char *path, const char *model_path, const char *tok_path, int expect_stats_dtype, int force,
                     Model *m, Tokenizer *t, QuantModelInfo *info) {
    return quant_model_open(path, model_path, tok_path, expect_stats_dtype, force, m, t, info, NULL);
}

int quant_model_open_streamed(const char *path, const char *model_path, const char *tok_path, int expect_stats_dtype,
                              int force, Model *m, Tokenizer *t, QuantModelInfo *info, H5File **f) {
    return quant_model_open(path, model_path, tok_path, expect_stats_dtype, force, m, t, info, f);
}
