/* outliers.c: SpQR's outlier machinery that is not the sweep itself (SPEC 5):
 * the per-layer outlier scale, and the per-row range of a group used to fit
 * its statistics, optionally after the leave-one-out criterion has replaced
 * the likely outliers. The column-wise outlier decision during the sweep is
 * in engine.c; the grid in grid.h. */
#include <math.h>
#include <stdlib.h>

#include "quant_internal.h"
#include "util.h"

double spqr_outlier_scale(const float *Wt, int m, int n, const float *U) {
    if (m < 2) return NAN; /* unbiased variance undefined */
    double *term = qh_malloc((size_t)n * sizeof(double)); /* (n), summed in order: deterministic */
#pragma omp parallel for schedule(static) if (4.0 * m * n >= QH_PAR_MIN_WORK)
    for (int j = 0; j < n; j++) {
        const float *w = Wt + (size_t)j * m; /* column j, (m) */
        double mean = 0, ss = 0;
        for (int r = 0; r < m; r++) mean += w[r];
        mean /= m;
        for (int r = 0; r < m; r++) {
            double d = w[r] - mean;
            ss += d * d;
        }
        double ujj = U[(size_t)j * n + j];
        term[j] = ss / (m - 1) / (ujj * ujj);
    }
    double total = 0;
    for (int j = 0; j < n; j++) total += term[j];
    free(term);
    return total / n;
}

void loo_scratch_init(LooScratch *s, int rows, int width) {
    s->rows = rows;
    s->width = width;
    float **f[] = {&s->min1, &s->min2, &s->max1, &s->max2, &s->base, &s->acc, &s->s, &s->z, &s->sum};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = qh_malloc((size_t)rows * sizeof(float));
    s->imin = qh_malloc((size_t)rows * sizeof(int));
    s->imax = qh_malloc((size_t)rows * sizeof(int));
    s->cnt = qh_malloc((size_t)rows * sizeof(int));
    s->flag = qh_malloc((size_t)rows * width);
}

void loo_scratch_free(LooScratch *s) {
    float **f[] = {&s->min1, &s->min2, &s->max1, &s->max2, &s->base, &s->acc, &s->s, &s->z, &s->sum};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) QH_FREE(*f[i]);
    QH_FREE(s->imin);
    QH_FREE(s->imax);
    QH_FREE(s->cnt);
    QH_FREE(s->flag);
}

/* acc[i] += sum over the columns k of [c0, c1) except `skip` of
 * ((Q(w_k) - w_k) / d_k)^2 with the per-row grid (s, z); i = row - r0.
 * Vectorized over rows. */
static void add_weighted_error(const float *Wt, int m, int c0, int c1, int skip, int r0, int nr, const float *s,
                               const float *z, float maxq, const float *d, float *acc) {
    for (int k = c0; k < c1; k++) {
        if (k == skip) continue;
        const float *w = Wt + (size_t)k * m + r0;
        float dk = d[k - c0];
        for (int i = 0; i < nr; i++) {
            float e = (qgrid_decode(qgrid_code(w[i], s[i], z[i], maxq), s[i], z[i]) - w[i]) / dk;
            acc[i] += e * e;
        }
    }
}

void group_range(const float *Wt, int m, int c0, int c1, int r0, int r1, const QGrid *grid, const float *d,
                 double tau_abs, LooScratch *s, float *xmin, float *xmax) {
    int nr = r1 - r0, width = c1 - c0;
    if (!d) { /* plain min-max over the group */
        for (int i = 0; i < nr; i++) xmin[r0 + i] = xmax[r0 + i] = Wt[(size_t)c0 * m + r0 + i];
        for (int k = c0 + 1; k < c1; k++) {
            const float *w = Wt + (size_t)k * m + r0;
            for (int i = 0; i < nr; i++) {
                xmin[r0 + i] = w[i] < xmin[r0 + i] ? w[i] : xmin[r0 + i];
                xmax[r0 + i] = w[i] > xmax[r0 + i] ? w[i] : xmax[r0 + i];
            }
        }
        return;
    }
    /* SPEC 5 leave-one-out. The range of a row without weight j is (min1, max1)
     * unless j holds the minimum (maximum), then min2 (max2): each Q_j is fitted
     * in O(1), and loo[r, j] costs O(width): O(m * width^2) per group. */
    for (int i = 0; i < nr; i++) {
        s->min1[i] = s->min2[i] = INFINITY;
        s->max1[i] = -INFINITY;
        s->max2[i] = -INFINITY;
        s->imin[i] = s->imax[i] = -1;
    }
    for (int k = c0; k < c1; k++) {
        const float *w = Wt + (size_t)k * m + r0;
        for (int i = 0; i < nr; i++) {
            float v = w[i];
            if (v < s->min1[i]) {
                s->min2[i] = s->min1[i];
                s->min1[i] = v;
                s->imin[i] = k;
            } else if (v < s->min2[i])
                s->min2[i] = v;
            if (v > s->max1[i]) {
                s->max2[i] = s->max1[i];
                s->max1[i] = v;
                s->imax[i] = k;
            } else if (v > s->max2[i])
                s->max2[i] = v;
        }
    }
    /* base[r] = sum_k ((Q(w_rk) - w_rk) / d_k)^2, Q fitted on the whole row of the group */
    for (int i = 0; i < nr; i++) {
        qgrid_fit(grid, s->min1[i], s->max1[i], &s->s[i], &s->z[i]);
        s->base[i] = 0;
    }
    add_weighted_error(Wt, m, c0, c1, -1, r0, nr, s->s, s->z, grid->maxq, d, s->base);
    /* loo[r, j] = sum_{k != j} ((Q_j(w_rk) - w_rk) / d_k)^2; reduction = base - loo */
    for (int j = c0; j < c1; j++) {
        for (int i = 0; i < nr; i++) {
            float lo = s->imin[i] == j ? s->min2[i] : s->min1[i];
            float hi = s->imax[i] == j ? s->max2[i] : s->max1[i];
            if (width == 1) lo = hi = 0; /* nothing left to fit; loo is the empty sum */
            qgrid_fit(grid, lo, hi, &s->s[i], &s->z[i]);
            s->acc[i] = 0;
        }
        add_weighted_error(Wt, m, c0, c1, j, r0, nr, s->s, s->z, grid->maxq, d, s->acc);
        uint8_t *flag = s->flag + (size_t)(j - c0) * s->rows;
        for (int i = 0; i < nr; i++) flag[i] = (double)(s->base[i] - s->acc[i]) > tau_abs;
    }
    /* replace the likely outliers by the mean of the row's other weights (0 when
     * every weight of the row is flagged, as the reference's clamp_min(1)), then
     * take the range */
    for (int i = 0; i < nr; i++) {
        s->sum[i] = 0;
        s->cnt[i] = 0;
    }
    for (int k = c0; k < c1; k++) {
        const float *w = Wt + (size_t)k * m + r0;
        const uint8_t *flag = s->flag + (size_t)(k - c0) * s->rows;
        for (int i = 0; i < nr; i++) {
            s->sum[i] += flag[i] ? 0.0f : w[i];
            s->cnt[i] += !flag[i];
        }
    }
    for (int i = 0; i < nr; i++) {
        float mean = s->sum[i] / (float)(s->cnt[i] > 0 ? s->cnt[i] : 1);
        s->acc[i] = mean; /* reuse */
        xmin[r0 + i] = INFINITY;
        xmax[r0 + i] = -INFINITY;
    }
    for (int k = c0; k < c1; k++) {
        const float *w = Wt + (size_t)k * m + r0;
        const uint8_t *flag = s->flag + (size_t)(k - c0) * s->rows;
        for (int i = 0; i < nr; i++) {
            float v = flag[i] ? s->acc[i] : w[i];
            xmin[r0 + i] = v < xmin[r0 + i] ? v : xmin[r0 + i];
            xmax[r0 + i] = v > xmax[r0 + i] ? v : xmax[r0 + i];
        }
    }
}
