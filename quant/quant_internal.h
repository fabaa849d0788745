/* quant_internal.h: the seams between the files of quant/ (not for use
 * outside quant/ and its tests): Hessian preparation (SPEC
 * 4.1-4.4), the one GSL wrapper, group statistics (SPEC 2 second level),
 * group ranges with the leave-one-out criterion (SPEC 5), and the shared
 * column-sweep engine (SPEC 4.5, 5).
 *
 * Layout used inside quant/: the working weights are kept transposed,
 * Wt (n, m) row-major, so that column c of W is the contiguous Wt + c*m;
 * per-group statistics likewise are (ngroups, m). layer.c converts to
 * the (m, ...) layouts of QuantLayer. */
#ifndef QH_QUANT_INTERNAL_H
#define QH_QUANT_INTERNAL_H

#include <stdint.h>

#include "grid.h"
#include "quant.h"
#include "settings.h"

/* ---- params.c ---------------------------------------------------------------- */
/* The group width used for groupsize p (0 -> n). */
static inline int quant_group_width(const QuantParams *p, int n) { return p->groupsize > 0 ? p->groupsize : n; }
/* Whether the zeros are coded at the second level / stored as integer codes. */
static inline int quant_zero_has_second_level(const QuantParams *p) {
    return p->qq_zero_bits > 0 && !p->round_zero && !p->gptq_zero_rule;
}
static inline int quant_zero_is_integer_code(const QuantParams *p) { return p->gptq_zero_rule != 0; }

/* ---- prepare.c: SPEC 4.1-4.4 ---------------------------------------------------- */
/* order (n): permuted position -> original column. act_order: stable sort by
 * diag(H) descending (H may not be NULL then). */
void quant_order(const double *H, int n, QuantPerm perm, int *order);
/* A (n, n) = H permuted by order on both axes, damp_abs added to the diagonal,
 * then dead columns (raw permuted H[i,i] == 0) get A[i,i] = 1. dead (n) gets
 * 1 for those (may be NULL). Returns the number of dead columns. */
int quant_build_hprime(const double *H, int n, const int *order, double damp_abs, double *A, uint8_t *dead);
/* mean(diag H), dead columns counting 0 (SPEC 4.2). */
double quant_mean_diag(const double *H, int n);
/* U (n, n) float row-major = upper Cholesky factor of H'^-1 (SPEC 4.4), with
 * H' = quant_build_hprime(..., percdamp * mean diag). If a factorization fails,
 * the damping is multiplied by 10 and retried (at most 12 times). Reports the
 * final absolute damping and the number of retries; dead (n) as above.
 * Returns 0, or -1 after a message. */
int quant_factor_U(const double *H, int n, const int *order, double percdamp, float *U, uint8_t *dead,
                   double *damp_abs, int *retries);

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
typedef struct QuantEngine {
    /* inputs (borrowed) */
    int m, n;
    const QuantParams *p;
    float *Wt;          /* (n, m) permuted W, transposed; updated in place; on return column c holds the
                         * sweep's w_hat (an outlier keeps its exact value) */
    const float *U;     /* (n, n) upper Cholesky factor of H'^-1, or NULL: no error feedback (RTN) */
    double tau_abs;     /* SPEC 5 absolute threshold; INFINITY = no outliers */
    int use_loo;        /* leave-one-out criterion when fitting (SpQR, finite tau, not simplified) */
    /* outputs (caller-allocated) */
    uint8_t *codes_t;   /* (n, m) */
    uint8_t *outlier_t; /* (n, m) 1 = outlier; may be NULL when tau_abs is infinite */
    float *scale, *zero;               /* (ngroups, m) sweep statistics */
    uint8_t *scale_codes, *zero_codes; /* (ngroups, m) or NULL */
    float *qq_ss, *qq_sz, *qq_zs, *qq_zz; /* (ngroups, qq_groups) or NULL */
    double proxy_loss;  /* sum err^2 / 2 (0 without U) */
    double seconds_fit; /* wall time spent fitting group statistics */
} QuantEngine;
/* Run the column sweep. Returns 0 (no failure mode beyond allocation). */
int quant_engine_ref(QuantEngine *e);

/* ---- layer.c: the sweep's outputs -> QuantLayer ---------------------------------- */
/* Fill the arrays of q (zeroed by the caller) from a finished sweep in the
 * engine layouts: method, sizes, the permutation order (n; ownership passes
 * to q), the codes and statistics of e ((n, m), (ngroups, m), (ngroups,
 * qq_groups)) and, when e->outlier_t is not NULL, the outlier CSR with the
 * values of Wt (n, m) (the sweep's weights) and original columns through inv
 * (n). The diagnostics (proxy loss, damping, timings, params) are the
 * caller's. Shared by quantize_layer_ref and kernels/quant_cuda.cu. */
void quant_layer_pack(QuantLayer *q, const char *method, const QuantParams *p, int m, int n, int *order,
                      const int *inv, const QuantEngine *e, const float *Wt);

/* The input checks of quantize_layer_ref, shared with its CUDA twin (layer.c):
 * parameters, presence of W and H, finite values; -1 after a message. */
int quant_layer_check_inputs(const char *who, const char *method, const float *W, int m, int n, const double *H,
                             const QuantParams *p);

#endif
