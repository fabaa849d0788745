/* prepare.c: from the raw Hessian to what the sweep needs, SPEC 4.1-4.4:
 * the column order (identity / act_order), the damped Hessian H' with dead
 * columns handled, and U = upper Cholesky factor of H'^-1 with the damping
 * retry. The factorization itself is in linalg.c (GSL); the sweep in engine.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant_internal.h"
#include "util.h"

typedef struct {
    double key;
    int idx;
} KeyIdx;

/* diag descending, original index ascending on ties: a stable order (SPEC 4.1) */
static int cmp_desc_stable(const void *a, const void *b) {
    const KeyIdx *x = a, *y = b;
    if (x->key > y->key) return -1;
    if (x->key < y->key) return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

void quant_order(const double *H, int n, QuantPerm perm, int *order) {
    if (perm != QH_PERM_ACT_ORDER || !H) {
        for (int i = 0; i < n; i++) order[i] = i;
        return;
    }
    KeyIdx *k = qh_malloc((size_t)n * sizeof *k);
    for (int i = 0; i < n; i++) {
        k[i].key = H[(size_t)i * n + i];
        k[i].idx = i;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_desc_stable);
    for (int i = 0; i < n; i++) order[i] = k[i].idx;
    free(k);
}

double quant_mean_diag(const double *H, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += H[(size_t)i * n + i];
    return s / n;
}

int quant_build_hprime(const double *H, int n, const int *order, double damp_abs, double *A, uint8_t *dead) {
    int ndead = 0;
#pragma omp parallel for schedule(static) reduction(+ : ndead) if (1.0 * n * n >= QH_PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const double *Hrow = H + (size_t)order[i] * n;
        double *Arow = A + (size_t)i * n;
        for (int j = 0; j < n; j++) Arow[j] = Hrow[order[j]]; /* SPEC 4.1: both axes */
        int is_dead = Arow[i] == 0.0;
        Arow[i] += damp_abs;      /* SPEC 4.2: damping on the raw diagonal */
        if (is_dead) Arow[i] = 1; /* SPEC 4.3: then the dead columns */
        if (dead) dead[i] = (uint8_t)is_dead;
        ndead += is_dead;
    }
    return ndead;
}

int quant_factor_U(const double *H, int n, const int *order, double percdamp, float *U, uint8_t *dead,
                   double *damp_abs, int *retries) {
    enum { MAX_RETRIES = 12 };
    double mean = quant_mean_diag(H, n);
    /* the scale for raised damping when percdamp or mean(diag) is 0 */
    double unit = mean > 0 ? mean : 1.0;
    double damp = percdamp * mean;
    double *A = qh_malloc((size_t)n * n * sizeof *A); /* (n, n) */
    int rc = 1;
    *retries = 0;
    for (;;) {
        quant_build_hprime(H, n, order, damp, A, dead);
        rc = linalg_upper_chol_of_inverse(A, n);
        if (rc != 1 || *retries == MAX_RETRIES) break;
        /* SPEC 4.4: a factorization failed -> raise the damping and retry */
        (*retries)++;
        damp = damp > 0 ? damp * 10 : 0.01 * unit;
    }
    if (rc == 1)
        qh_error("H is not positive definite even with damping %g (%d retries, mean diag %g); "
                 "check the Hessian for NaN or a negative diagonal",
                 damp, *retries, mean);
    if (rc == 0) {
        if (*retries) qh_warn("H not positive definite: damping raised to %g x mean(diag H) after %d retries",
                              mean > 0 ? damp / mean : damp, *retries);
        for (size_t i = 0; i < (size_t)n * n; i++) U[i] = (float)A[i];
    }
    *damp_abs = damp;
    free(A);
    return rc == 0 ? 0 : -1;
}
