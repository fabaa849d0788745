/* layer.c: one linear layer end to end: quantize_layer_ref (checks, order,
 * U, the sweep, packing into a QuantLayer, decoding W_deq), the decoder
 * quant_layer_dequantize and quant_layer_free.
 *
 * Design decision: the weights the model uses are always decoded from the
 * stored representation by quant_layer_dequantize, so W_deq equals a reload
 * of the file bit for bit. What that representation holds is the choice of
 * p->stats_dtype (SPEC 1): in the reference mode (fp32, the default) the
 * first-level statistics, the second-level statistics and the outliers are
 * kept exactly as the sweep used them, and decoding them repeats the sweep's
 * own fp32 arithmetic (grid.h), so W_deq is bit for bit the sweep's weights,
 * those the SpQR reference writes back; in the deployment mode (fp16) each is
 * rounded to fp16 here, as a deployed file holds it, and the decoded weights
 * differ slightly (relative ~5e-4) from what the error feedback accounted for;
 * the codes are the sweep's in both modes.
 *
 * Not here: the algorithms (engine.c, prepare.c, stats.c, outliers.c) and
 * the bit accounting (bits.c). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "quant_internal.h"
#include "util.h"

void quant_layer_free(QuantLayer *q) {
    free(q->perm);
    free(q->codes);
    free(q->scale_fp);
    free(q->zero_fp);
    free(q->scale_codes);
    free(q->zero_codes);
    free(q->qq_scale_scale);
    free(q->qq_scale_zero);
    free(q->qq_zero_scale);
    free(q->qq_zero_zero);
    free(q->outlier_rowptr);
    free(q->outlier_col);
    free(q->outlier_val);
    free(q->in_scale);
    memset(q, 0, sizeof *q);
}

static int check_finite_f(const float *x, size_t count, const char *what) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) return qh_error("%s[%zu] = %g; expected finite values", what, i, (double)x[i]);
    return 0;
}

static int check_finite_d(const double *x, size_t count, const char *what) {
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) return qh_error("%s[%zu] = %g; expected finite values", what, i, x[i]);
    return 0;
}

/* 1/2 tr(dW H' dW^T), dW (n, m) transposed, H' (n, n): the proxy loss of
 * weights that had no error feedback (RTN); for GPTQ it equals SPEC 4.6's
 * sum (U H' U^T = I). One fp32 ssymm (m n^2, as costly as a GPTQ sweep's block
 * updates), the final dot product in double. */
static double trace_loss(const float *dWt, const float *Hp, int m, int n) {
    float *T = qh_malloc((size_t)n * m * sizeof *T); /* (n, m) = H' dW^T */
    int nt = qh_blas_begin(2.0 * n * n * m);
    cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, n, m, 1.0f, Hp, n, dWt, m, 0.0f, T, m);
    qh_blas_end(nt);
    double s = 0;
    for (size_t i = 0; i < (size_t)n * m; i++) s += (double)dWt[i] * T[i];
    free(T);
    return 0.5 * s;
}

/* transpose a (rows, cols) row-major byte matrix into (cols, rows) */
static void transpose_u8(const uint8_t *a, int rows, int cols, uint8_t *out) {
#pragma omp parallel for schedule(static) if (1.0 * rows * cols >= QH_PAR_MIN_WORK)
    for (int r0 = 0; r0 < rows; r0 += 64)
        for (int c0 = 0; c0 < cols; c0 += 64)
            for (int r = r0; r < r0 + 64 && r < rows; r++)
                for (int c = c0; c < c0 + 64 && c < cols; c++) out[(size_t)c * rows + r] = a[(size_t)r * cols + c];
}

/* A value as the layer keeps it: as is (fp32), or rounded to the nearest fp16 (deployment mode). */
static float keep_value(float x, QuantStatsDtype d) { return d == QH_STATS_FP16 ? qh_f16_to_f32(qh_f32_to_f16(x)) : x; }

/* (rows, cols) fp32 -> (cols, rows) values in precision d */
static float *transpose_values(const float *a, int rows, int cols, QuantStatsDtype d) {
    float *out = qh_malloc((size_t)rows * cols * sizeof *out);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[(size_t)c * rows + r] = keep_value(a[(size_t)r * cols + c], d);
    return out;
}

static uint8_t *transpose_codes(const uint8_t *a, int rows, int cols) {
    uint8_t *out = qh_malloc((size_t)rows * cols);
    transpose_u8(a, rows, cols, out);
    return out;
}

/* CSR of the outliers, column index in original order, increasing per row;
 * values: the sweep's kept weight (exact, or rounded to fp16 in the deployment
 * mode). outlier_t, Wt: (n, m). */
static void build_outliers(QuantLayer *q, const uint8_t *outlier_t, const float *Wt, const int *inv) {
    int m = q->m, n = q->n;
    q->outlier_rowptr = qh_calloc((size_t)m + 1, sizeof(int64_t));
    int64_t *cnt = q->outlier_rowptr + 1;
    for (int c = 0; c < n; c++)
        for (int r = 0; r < m; r++) cnt[r] += outlier_t[(size_t)c * m + r];
    for (int r = 0; r < m; r++) q->outlier_rowptr[r + 1] += q->outlier_rowptr[r];
    int64_t nnz = q->outlier_rowptr[m];
    q->n_outliers = nnz;
    q->outlier_col = qh_malloc((size_t)nnz * sizeof(uint16_t));
    q->outlier_val = qh_malloc((size_t)nnz * sizeof(float));
    int64_t *fill = qh_malloc((size_t)m * sizeof(int64_t));
    memcpy(fill, q->outlier_rowptr, (size_t)m * sizeof(int64_t));
    for (int oc = 0; oc < n; oc++) { /* original column order -> sorted within each row */
        int c = inv[oc];
        const uint8_t *o = outlier_t + (size_t)c * m;
        for (int r = 0; r < m; r++)
            if (o[r]) {
                q->outlier_col[fill[r]] = (uint16_t)oc;
                q->outlier_val[fill[r]] = keep_value(Wt[(size_t)c * m + r], q->stats_dtype);
                fill[r]++;
            }
    }
    free(fill);
}

void quant_layer_pack(QuantLayer *q, const char *method, const QuantParams *p, int m, int n, int *order,
                      const int *inv, const QuantEngine *e, const float *Wt) {
    const int g = quant_group_width(p, n), ngroups = (n + g - 1) / g;
    const int scale_coded = p->qq_scale_bits > 0, zero_second = quant_zero_has_second_level(p);
    const int zero_int = quant_zero_is_integer_code(p);
    const int qq_groups = (scale_coded || zero_second) ? (m + p->qq_groupsize - 1) / p->qq_groupsize : 0;
    /* pack: (ngroups, m) / (n, m) engine layouts -> (m, ...) QuantLayer layouts */
    snprintf(q->method, sizeof q->method, "%s", method);
    const QuantStatsDtype d = p->stats_dtype;
    q->m = m, q->n = n, q->ngroups = ngroups, q->wbits = p->wbits, q->groupsize = g;
    q->stats_dtype = d;
    q->perm = order;
    q->codes = transpose_codes(e->codes_t, n, m);
    if (scale_coded) {
        q->scale_codes = transpose_codes(e->scale_codes, ngroups, m);
        q->scale_code_bits = p->qq_scale_bits;
        q->qq_scale_scale = transpose_values(e->qq_ss, ngroups, qq_groups, d);
        q->qq_scale_zero = transpose_values(e->qq_sz, ngroups, qq_groups, d);
    } else {
        q->scale_fp = transpose_values(e->scale, ngroups, m, d);
    }
    if (zero_second || zero_int) {
        q->zero_codes = transpose_codes(e->zero_codes, ngroups, m);
        q->zero_code_bits = zero_second ? p->qq_zero_bits : p->wbits;
        if (zero_second) {
            q->qq_zero_scale = transpose_values(e->qq_zs, ngroups, qq_groups, d);
            q->qq_zero_zero = transpose_values(e->qq_zz, ngroups, qq_groups, d);
        }
    } else {
        q->zero_fp = transpose_values(e->zero, ngroups, m, d);
    }
    q->qq_groups = qq_groups;
    q->qq_groupsize = qq_groups ? p->qq_groupsize : 0;
    if (e->outlier_t) build_outliers(q, e->outlier_t, Wt, inv);
}

int quant_layer_check_inputs(const char *who, const char *method, const float *W, int m, int n, const double *H,
                             const QuantParams *p) {
    if (!p) return qh_error("%s: parameters missing", who);
    if (quant_params_validate(p, method, m, n) != 0) return -1;
    const QuantMethod *mi = quant_method_find(method);
    if (!W) return qh_error("%s: weights W missing", method);
    if ((mi->caps & QUANT_CAP_HESSIAN) && !H) return qh_error("%s: Hessian H missing (required for %s)", method, method);
    if (!H && p->perm == QH_PERM_ACT_ORDER)
        return qh_error("%s: perm act_order needs the Hessian H; expected identity without H", method);
    if (check_finite_f(W, (size_t)m * n, "W") != 0) return -1;
    if (H && check_finite_d(H, (size_t)n * n, "H") != 0) return -1;
    return 0;
}

int quantize_layer_ref(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p,
                       QuantLayer *q, float *W_deq) {
    memset(q, 0, sizeof *q);
    if (quant_layer_check_inputs("quantize_layer_ref", method, W, m, n, H, p) != 0) return -1;
    const QuantMethod *mi = quant_method_find(method);

    const int g = quant_group_width(p, n), ngroups = (n + g - 1) / g;
    const int scale_coded = p->qq_scale_bits > 0, zero_second = quant_zero_has_second_level(p);
    const int zero_int = quant_zero_is_integer_code(p);
    const int qq_groups = (scale_coded || zero_second) ? (m + p->qq_groupsize - 1) / p->qq_groupsize : 0;
    const int use_U = (mi->caps & QUANT_CAP_HESSIAN);

    double t0 = qh_now();
    int *order = qh_malloc((size_t)n * sizeof(int)); /* (n) permuted position -> original column */
    quant_order(H, n, p->perm, order);
    int *inv = qh_malloc((size_t)n * sizeof(int)); /* (n) original column -> permuted position */
    for (int i = 0; i < n; i++) inv[order[i]] = i;

    float *Wt = qh_malloc((size_t)n * m * sizeof(float)); /* (n, m) permuted W, transposed */
#pragma omp parallel for schedule(static) if (1.0 * n * m >= QH_PAR_MIN_WORK)
    for (int c = 0; c < n; c++)
        for (int r = 0; r < m; r++) Wt[(size_t)c * m + r] = W[(size_t)r * n + order[c]];

    float *U = NULL; /* (n, n) */
    uint8_t *dead = qh_calloc((size_t)n, 1);
    double damp_abs = 0;
    int retries = 0;
    if (use_U) {
        U = qh_malloc((size_t)n * n * sizeof(float));
        if (quant_factor_U(H, n, order, p->percdamp, U, dead, &damp_abs, &retries) != 0) {
            free(order), free(inv), free(Wt), free(U), free(dead);
            return -1;
        }
        for (int c = 0; c < n; c++)
            if (dead[c]) /* SPEC 4.3: W[:, i] = 0 */
                for (int r = 0; r < m; r++) Wt[(size_t)c * m + r] = 0.0f;
    } else if (H) {
        damp_abs = p->percdamp * quant_mean_diag(H, n);
    }
    double t1 = qh_now();

    /* SPEC 5: outlier scale and absolute threshold */
    double outlier_scale = NAN, tau_abs = INFINITY;
    if ((mi->caps & QUANT_CAP_OUTLIERS) && isfinite(p->outlier_threshold)) {
        outlier_scale = spqr_outlier_scale(Wt, m, n, U);
        if (isfinite(outlier_scale))
            tau_abs = p->outlier_threshold * outlier_scale;
        else
            qh_warn("%s: outlier scale undefined (m = %d rows); outliers disabled for this layer", method, m);
    }
    int has_out = isfinite(tau_abs);

    QuantEngine e = {
        .m = m, .n = n, .p = p, .Wt = Wt, .U = U, .tau_abs = tau_abs,
        .use_loo = has_out && !p->simplified_outliers,
        .codes_t = qh_malloc((size_t)n * m),
        .outlier_t = has_out ? qh_calloc((size_t)n * m, 1) : NULL,
        .scale = qh_malloc((size_t)ngroups * m * sizeof(float)),
        .zero = qh_malloc((size_t)ngroups * m * sizeof(float)),
        .scale_codes = scale_coded ? qh_malloc((size_t)ngroups * m) : NULL,
        .zero_codes = (zero_second || zero_int) ? qh_malloc((size_t)ngroups * m) : NULL,
        .qq_ss = scale_coded ? qh_malloc((size_t)ngroups * qq_groups * sizeof(float)) : NULL,
        .qq_sz = scale_coded ? qh_malloc((size_t)ngroups * qq_groups * sizeof(float)) : NULL,
        .qq_zs = zero_second ? qh_malloc((size_t)ngroups * qq_groups * sizeof(float)) : NULL,
        .qq_zz = zero_second ? qh_malloc((size_t)ngroups * qq_groups * sizeof(float)) : NULL,
    };
    quant_engine_ref(&e);
    double proxy = e.proxy_loss;
    if (!use_U) {
        proxy = NAN;
        if (H) { /* RTN: the same objective, 1/2 tr(dW H' dW^T) */
            double *Hd = qh_malloc((size_t)n * n * sizeof(double)); /* (n, n) H' */
            quant_build_hprime(H, n, order, damp_abs, Hd, NULL);
            float *Hp = qh_malloc((size_t)n * n * sizeof(float));
            for (size_t i = 0; i < (size_t)n * n; i++) Hp[i] = (float)Hd[i];
            free(Hd);
            float *dWt = qh_malloc((size_t)n * m * sizeof(float)); /* (n, m) */
#pragma omp parallel for schedule(static) if (1.0 * n * m >= QH_PAR_MIN_WORK)
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) dWt[(size_t)c * m + r] = W[(size_t)r * n + order[c]] - Wt[(size_t)c * m + r];
            proxy = trace_loss(dWt, Hp, m, n);
            free(Hp);
            free(dWt);
        }
    }
    double t2 = qh_now();

    quant_layer_pack(q, method, p, m, n, order, inv, &e, Wt);
    q->proxy_loss = proxy;
    q->outlier_scale = outlier_scale;
    q->tau_abs = tau_abs;
    double mean = H ? quant_mean_diag(H, n) : 0;
    q->damp_abs = damp_abs;
    q->damp_used = mean > 0 ? damp_abs / mean : (H ? damp_abs : 0);
    q->damp_retries = retries;
    for (int c = 0; c < n; c++) q->n_dead += dead[c];
    q->params = *p;

    free(inv), free(Wt), free(U), free(dead);
    free(e.codes_t), free(e.outlier_t), free(e.scale), free(e.zero), free(e.scale_codes), free(e.zero_codes);
    free(e.qq_ss), free(e.qq_sz), free(e.qq_zs), free(e.qq_zz);

    if (W_deq) quant_layer_dequantize(q, W_deq);
    double t3 = qh_now();
    q->seconds_factor = t1 - t0;
    q->seconds_sweep = t2 - t1;
    q->seconds_loo = e.seconds_fit;
    q->seconds_pack = t3 - t2;
    return 0;
}

/* A statistic of (row r, group j): its value, or its code decoded with the
 * second level of (r / qq_groupsize, j) (SPEC 2, as stats.c decoded it for
 * the sweep), or the integer code itself. */
static inline float stat_value(const float *val, const uint8_t *codes, const float *ss, const float *sz,
                               const QuantLayer *q, int r, int j) {
    size_t idx = (size_t)r * q->ngroups + j;
    if (val) return val[idx];
    if (!ss) return (float)codes[idx];
    size_t k = (size_t)(r / q->qq_groupsize) * q->ngroups + j;
    return qgrid_decode((float)codes[idx], ss[k], sz[k]);
}

void quant_layer_dequantize(const QuantLayer *q, float *W_out) {
    const int m = q->m, n = q->n, g = q->groupsize;
#pragma omp parallel for schedule(static) if (4.0 * m * n >= QH_PAR_MIN_WORK)
    for (int r = 0; r < m; r++) {
        float *out = W_out + (size_t)r * n;  /* (n) original order */
        const uint8_t *code = q->codes + (size_t)r * n; /* (n) permuted order */
        for (int j = 0; j < q->ngroups; j++) {
            float s = stat_value(q->scale_fp, q->scale_codes, q->qq_scale_scale, q->qq_scale_zero, q, r, j);
            float z = stat_value(q->zero_fp, q->zero_codes, q->qq_zero_scale, q->qq_zero_zero, q, r, j);
            int c1 = (j + 1) * g < n ? (j + 1) * g : n;
            for (int c = j * g; c < c1; c++) out[q->perm[c]] = qgrid_decode((float)code[c], s, z);
        }
        if (q->in_scale) /* AWQ: the codes are of W diag(s) */
            for (int c = 0; c < n; c++) out[c] /= q->in_scale[c];
        if (q->outlier_rowptr)
            for (int64_t k = q->outlier_rowptr[r]; k < q->outlier_rowptr[r + 1]; k++)
                out[q->outlier_col[k]] = q->outlier_val[k];
    }
}
