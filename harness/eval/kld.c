/* kld.c: the per-position distribution metrics and their statistics (see
 * kld.h). One position costs two exponentials per vocabulary entry: with
 * e_v = exp(x_v - max x), S_p = sum e_v, x the full-precision logits and z the
 * quantized ones,
 *   KLD = sum_v p_v (ln p_v - ln q_v) = (1/S_p) sum_v e_v (x_v - z_v) - (lse(x) - lse(z)),
 * lse the log-sum-exp, since sum_v p_v = 1; identical logits give exactly 0. */
#include "kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const double kld_pct_levels[KLD_NPCT] = {0.999, 0.99, 0.95, 0.90, 0.50, 0.10, 0.05, 0.01, 0.001};
const double kld_dpct_levels[KLD_NDPCT] = {0.999, 0.99, 0.95, 0.90, 0.75, 0.50, 0.25, 0.10, 0.05, 0.01, 0.001};

static void grow(KldValues *v, long need) {
    if (need <= v->cap) return;
    long cap = v->cap ? v->cap : 1024;
    while (cap < need) cap *= 2;
    v->kld = qh_realloc(v->kld, sizeof(double) * (size_t)cap);
    v->dp = qh_realloc(v->dp, sizeof(double) * (size_t)cap);
    v->nll_q = qh_realloc(v->nll_q, sizeof(double) * (size_t)cap);
    v->nll_p = qh_realloc(v->nll_p, sizeof(double) * (size_t)cap);
    v->cap = cap;
}

void kld_add_positions(KldValues *v, const float *logits_q, const float *logits_p, const int *targets, int n, int V) {
    grow(v, v->n + n);
    long same = 0, base = v->n;
#pragma omp parallel for schedule(static) reduction(+ : same)
    for (int t = 0; t < n; t++) {
        const float *z = logits_q + (size_t)t * V, *x = logits_p + (size_t)t * V; /* (V) each */
        int az = 0, ax = 0;
        for (int i = 1; i < V; i++) {
            if (z[i] > z[az]) az = i;
            if (x[i] > x[ax]) ax = i;
        }
        double mz = z[az], mx = x[ax], sz = 0.0, sx = 0.0, cross = 0.0;
        for (int i = 0; i < V; i++) {
            double ex = exp((double)x[i] - mx);
            sx += ex;
            sz += exp((double)z[i] - mz);
            cross += ex * ((double)x[i] - (double)z[i]);
        }
        double lse_x = mx + log(sx), lse_z = mz + log(sz);
        int y = targets[t];
        double lp = (double)x[y] - lse_x, lq = (double)z[y] - lse_z; /* ln p_y, ln q_y */
        v->kld[base + t] = cross / sx - (lse_x - lse_z);
        v->dp[base + t] = exp(lq) - exp(lp);
        v->nll_q[base + t] = -lq;
        v->nll_p[base + t] = -lp;
        same += az == ax;
    }
    v->n += n;
    v->same_top += same;
}

void kld_values_free(KldValues *v) {
    free(v->kld);
    free(v->dp);
    free(v->nll_q);
    free(v->nll_p);
    memset(v, 0, sizeof *v);
}

/* NaN sorts last, so that the order is total. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

double kld_percentile(const double *s, long n, double f) {
    if (n < 1) return NAN;
    if (f <= 0) return s[0];
    if (f >= 1) return s[n - 1];
    double r = f * (double)(n - 1);
    long i = (long)r;
    double w = r - (double)i;
    if (i + 1 >= n) return s[n - 1];
    return w == 0 ? s[i] : (1 - w) * s[i] + w * s[i + 1];
}

/* Mean of a (n) and the uncertainty of that mean: sqrt(sum (a - mean)^2 / n / (n - 1)). */
static void mean_unc(const double *a, long n, double *mean, double *unc) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += a[i];
    double m = n > 0 ? s / (double)n : NAN, ss = 0.0;
    for (long i = 0; i < n; i++) ss += (a[i] - m) * (a[i] - m);
    *mean = m;
    *unc = n > 1 ? sqrt(ss / (double)n / (double)(n - 1)) : NAN;
}

/* Sorted copy's extremes and percentiles. */
static void spread(const double *a, long n, const double *levels, int nl, double *pct, double *mx, double *mn) {
    double *s = qh_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    memcpy(s, a, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    for (int i = 0; i < nl; i++) pct[i] = kld_percentile(s, n, levels[i]);
    *mx = n > 0 ? s[n - 1] : NAN;
    *mn = n > 0 ? s[0] : NAN;
    free(s);
}

void kld_stats(const KldValues *v, KldStats *s) {
    memset(s, 0, sizeof *s);
    long n = v->n;
    s->n = n;
    mean_unc(v->kld, n, &s->kld_mean, &s->kld_unc);
    spread(v->kld, n, kld_pct_levels, KLD_NPCT, s->kld_pct, &s->kld_max, &s->kld_min);
    s->same_top = n > 0 ? (double)v->same_top / (double)n : NAN;
    s->same_top_unc = n > 1 ? sqrt(s->same_top * (1 - s->same_top) / (double)(n - 1)) : NAN;
    mean_unc(v->dp, n, &s->dp_mean, &s->dp_unc);
    spread(v->dp, n, kld_dpct_levels, KLD_NDPCT, s->dp_pct, &s->dp_max, &s->dp_min);
    double *w = qh_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)); /* (n) scratch */
    for (long i = 0; i < n; i++) w[i] = v->dp[i] * v->dp[i];
    double msq, msq_unc;
    mean_unc(w, n, &msq, &msq_unc);
    s->dp_rms = sqrt(msq);
    s->dp_rms_unc = msq_unc == 0 ? 0.0 : 0.5 / s->dp_rms * msq_unc; /* delta method; 0 when every dp is 0 */
    double lq, lq_unc, lp, lp_unc;
    mean_unc(v->nll_q, n, &lq, &lq_unc);
    mean_unc(v->nll_p, n, &lp, &lp_unc);
    s->ppl_q = exp(lq);
    s->ppl_q_unc = s->ppl_q * lq_unc;
    s->ppl_base = exp(lp);
    s->ppl_base_unc = s->ppl_base * lp_unc;
    for (long i = 0; i < n; i++) w[i] = v->nll_q[i] - v->nll_p[i];
    mean_unc(w, n, &s->ln_ppl_ratio, &s->ln_ppl_ratio_unc);
    double cqq = 0.0, cpp = 0.0, cqp = 0.0; /* about the means */
    for (long i = 0; i < n; i++) {
        double a = v->nll_q[i] - lq, b = v->nll_p[i] - lp;
        cqq += a * a;
        cpp += b * b;
        cqp += a * b;
    }
    s->ln_ppl_cor = n > 1 ? cqp / sqrt(cqq * cpp) : NAN;
    free(w);
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *pct_json(const double *levels, const double *vals, int n) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%g", 100 * levels[i]);
        json_object_set_new(o, k, num(vals[i]));
    }
    return o;
}

json_t *kld_stats_json(const KldStats *s) {
    json_t *o = json_object();
    json_object_set_new(o, "positions", json_integer(s->n));
    json_object_set_new(o, "kld_mean", num(s->kld_mean));
    json_object_set_new(o, "kld_unc", num(s->kld_unc));
    json_object_set_new(o, "kld_max", num(s->kld_max));
    json_object_set_new(o, "kld_min", num(s->kld_min));
    json_object_set_new(o, "kld_percentiles", pct_json(kld_pct_levels, s->kld_pct, KLD_NPCT));
    json_object_set_new(o, "same_top", num(s->same_top));
    json_object_set_new(o, "same_top_unc", num(s->same_top_unc));
    json_object_set_new(o, "dp_mean", num(s->dp_mean));
    json_object_set_new(o, "dp_unc", num(s->dp_unc));
    json_object_set_new(o, "dp_rms", num(s->dp_rms));
    json_object_set_new(o, "dp_rms_unc", num(s->dp_rms_unc));
    json_object_set_new(o, "dp_max", num(s->dp_max));
    json_object_set_new(o, "dp_min", num(s->dp_min));
    json_object_set_new(o, "dp_percentiles", pct_json(kld_dpct_levels, s->dp_pct, KLD_NDPCT));
    json_object_set_new(o, "ppl_q", num(s->ppl_q));
    json_object_set_new(o, "ppl_q_unc", num(s->ppl_q_unc));
    json_object_set_new(o, "ppl_base", num(s->ppl_base));
    json_object_set_new(o, "ppl_base_unc", num(s->ppl_base_unc));
    json_object_set_new(o, "ln_ppl_ratio", num(s->ln_ppl_ratio));
    json_object_set_new(o, "ln_ppl_ratio_unc", num(s->ln_ppl_ratio_unc));
    json_object_set_new(o, "ln_ppl_cor", num(s->ln_ppl_cor));
    return o;
}

void kld_stats_print(FILE *out, const KldStats *s, const char *in) {
    fprintf(out, "%s%-30s %ld\n", in, "positions", s->n);
    fprintf(out, "%s%-30s %.6f +- %.6f\n", in, "PPL(Q)", s->ppl_q, s->ppl_q_unc);
    fprintf(out, "%s%-30s %.6f +- %.6f\n", in, "PPL(base)", s->ppl_base, s->ppl_base_unc);
    fprintf(out, "%s%-30s %.6f +- %.6f\n", in, "ln(PPL(Q)/PPL(base))", s->ln_ppl_ratio, s->ln_ppl_ratio_unc);
    fprintf(out, "%s%-30s %.2f%%\n", in, "correlation of ln p", 100 * s->ln_ppl_cor);
    fprintf(out, "%s%-30s %.6f +- %.6f\n", in, "KLD mean", s->kld_mean, s->kld_unc);
    fprintf(out, "%s%-30s %.6f", in, "KLD max, 99.9% ... 90%", s->kld_max);
    for (int i = 0; i < 4; i++) fprintf(out, "  %.6f", s->kld_pct[i]);
    fprintf(out, "\n%s%-30s", in, "KLD median, 10% ... 0.1%, min");
    for (int i = 4; i < KLD_NPCT; i++) fprintf(out, "  %.6f", s->kld_pct[i]);
    fprintf(out, "  %.6f\n", s->kld_min);
    fprintf(out, "%s%-30s %.3f +- %.3f %%\n", in, "same top token", 100 * s->same_top, 100 * s->same_top_unc);
    fprintf(out, "%s%-30s %.3f +- %.3f %%\n", in, "dp mean", 100 * s->dp_mean, 100 * s->dp_unc);
    fprintf(out, "%s%-30s %.3f +- %.3f %%\n", in, "dp RMS", 100 * s->dp_rms, 100 * s->dp_rms_unc);
    fprintf(out, "%s%-30s %.3f%%", in, "dp max, 99.9% ... 75%", 100 * s->dp_max);
    for (int i = 0; i < 5; i++) fprintf(out, "  %.3f%%", 100 * s->dp_pct[i]);
    fprintf(out, "\n%s%-30s", in, "dp median, 25% ... 0.1%, min");
    for (int i = 5; i < KLD_NDPCT; i++) fprintf(out, "  %.3f%%", 100 * s->dp_pct[i]);
    fprintf(out, "  %.3f%%\n", 100 * s->dp_min);
}
