/* quant_engine.h: what quant/ shares with a second implementation of its
 * single-layer quantizer (kernels/quant_cuda.cu, the CUDA path), so that both
 * order, damp, check and pack identically by calling the same code: the
 * group rules, the Hessian preparation of SPEC 4.1-4.4, the column sweep's
 * inputs and outputs (QuantEngine) and their packing into a QuantLayer, and
 * the input checks of quantize_layer_ref.
 *
 * Layout of the sweep: the working weights are kept transposed, Wt (n, m)
 * row-major, so that column c of W is the contiguous Wt + c*m; per-group
 * statistics likewise are (ngroups, m). quant_layer_pack converts to the
 * (m, ...) layouts of QuantLayer.
 *
 * Not here: the CPU sweep itself, the GSL wrapper, the group statistics and
 * the leave-one-out criterion (quant_internal.h, private to quant/); the
 * scalar grid (grid.h); the method and settings tables (settings.h). */
#ifndef QH_QUANT_ENGINE_H
#define QH_QUANT_ENGINE_H

#include <stdint.h>

#include "quant.h"

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

/* ---- engine.c: the column sweep's inputs and outputs (SPEC 4.5 / 5) ------------ */
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
