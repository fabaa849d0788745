/* quant_internal.h: private to quant/ (and its tests): the seams between the
 * files of quant/ that no other implementation of the quantizer needs: the
 * one GSL wrapper, group statistics (SPEC 2 second level), group ranges with
 * the leave-one-out criterion (SPEC 5), and the CPU column sweep (SPEC 4.5,
 * 5). What the CUDA path shares with quant/ (group rules, Hessian
 * preparation, the sweep's output layouts, packing, input checks) is public,
 * in quant_engine.h, included here; the layouts are described there. */
#ifndef QH_QUANT_INTERNAL_H
#define QH_QUANT_INTERNAL_H

#include <stdint.h>

#include "grid.h"
#include "quant.h"
#include "quant_engine.h"
#include "settings.h"

/* ---- linalg.c: the only file that talks to GSL -------------------------------- */
/* A (n, n) row-major symmetric: on success A holds U, the upper Cholesky
 * factor of A^-1 (A^-1 = U^T U), lower triangle zeroed; returns 0. Returns 1
 * when A (or its inverse, numerically) is not positive definite (A is then
 * garbage), -1 after a message on any other failure. */
int linalg_upper_chol_of_inverse(double *A, int n);

/* ---- stats.c: SPEC 2, first and second level ------------------------------------ */
/* Output arrays for the statistics of one group, all indexed by row (m) or
 * second-level group (qq_groups). */
typedef struct GroupStats {
    float *scale, *zero;               /* (m) what the sweep quantizes with (second level applied, fp32) */
    uint8_t *scale_codes, *zero_codes; /* (m) or NULL */
    float *qq_ss, *qq_sz, *qq_zs, *qq_zz; /* (qq_groups) fp32 second-level scale/zero of scales/zeros, or NULL */
} GroupStats;
/* From the per-row ranges xmin/xmax (indexed by row) of rows [r0, r1), fit
 * the first-level grid, then code the scales (and zeros) in second-level
 * groups of qq_groupsize consecutive rows; r0 must be a multiple of
 * qq_groupsize and r1 a multiple of it or m. */
void stats_fit_rows(const QuantParams *p, int m, int r0, int r1, const float *xmin, const float *xmax,
                    GroupStats *gs);

/* ---- outliers.c: SPEC 5 ---------------------------------------------------------- */
/* mean over columns j of var_rows(W[:, j]) / U[j, j]^2 (unbiased variance);
 * Wt (n, m), U (n, n). NAN when m < 2. */
double spqr_outlier_scale(const float *Wt, int m, int n, const float *U);
/* Scratch for the leave-one-out criterion of one row chunk. */
typedef struct LooScratch {
    int rows, width; /* capacity: chunk rows, group columns */
    float *min1, *min2, *max1, *max2, *base, *acc, *s, *z, *sum; /* (rows) */
    int *imin, *imax, *cnt;                                      /* (rows) */
    uint8_t *flag;                                               /* (width, rows) */
} LooScratch;
void loo_scratch_init(LooScratch *s, int rows, int width);
void loo_scratch_free(LooScratch *s);
/* Per-row range over the group columns [c0, c1) of Wt (n, m) for rows
 * [r0, r1): plain min / max (d == NULL), or, with d = diag(U) over the
 * group's columns (c1 - c0), the range after replacing the weights whose
 * leave-one-out reduction exceeds tau_abs by the mean of the row's other
 * weights (SPEC 5). xmin / xmax indexed by row. */
void group_range(const float *Wt, int m, int c0, int c1, int r0, int r1, const QGrid *grid, const float *d,
                 double tau_abs, LooScratch *s, float *xmin, float *xmax);

/* ---- engine.c: SPEC 4.5 / 5, shared by RTN, GPTQ and SpQR ----------------------- */
/* (QuantEngine, its inputs and outputs: quant_engine.h) */
/* Run the column sweep. Returns 0 (no failure mode beyond allocation). */
int quant_engine_ref(QuantEngine *e);

#endif
