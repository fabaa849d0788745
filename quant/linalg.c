/* linalg.c: the only file of quant/ that talks to GSL. Computes U, the upper
 * Cholesky factor of A^-1, for SPEC 4.4 (Cholesky, inverse, Cholesky again).
 * Damping, retries and permutation are in prepare.c. */
#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include "quant_internal.h"
#include "util.h"

/* The one check macro for GSL. Every GSL call here is a factorization or an
 * inversion, where GSL_EDOM means "not positive definite": the expected
 * numerical failure, handled by the caller with more damping, so the
 * enclosing function returns 1. Any other failure prints the call, file and
 * line and returns -1. */
#define GSL_CHECK(call)                                                                             \
    do {                                                                                            \
        int gsl_status_ = (call);                                                                   \
        if (gsl_status_ == GSL_EDOM) return 1;                                                      \
        if (gsl_status_ != GSL_SUCCESS) {                                                           \
            qh_error("GSL call %s failed at %s:%d: %s", #call, __FILE__, __LINE__,                   \
                     gsl_strerror(gsl_status_));                                                    \
            return -1;                                                                              \
        }                                                                                           \
    } while (0)

/* 1 when a Cholesky factor (lower, in A) has a diagonal entry that is not a
 * positive finite number: numerically singular, treated as indefinite. */
static int bad_factor(const gsl_matrix *L) {
    for (size_t i = 0; i < L->size1; i++) {
        double d = gsl_matrix_get(L, i, i);
        if (!(d > 0) || !isfinite(d)) return 1;
    }
    return 0;
}

static int upper_chol_of_inverse(gsl_matrix *A) {
    GSL_CHECK(gsl_linalg_cholesky_decomp1(A)); /* A = L L^T, L in the lower triangle */
    if (bad_factor(A)) return 1;
    GSL_CHECK(gsl_linalg_cholesky_invert(A)); /* A = A^-1, full symmetric */
    GSL_CHECK(gsl_linalg_cholesky_decomp1(A)); /* A^-1 = L2 L2^T; U = L2^T */
    if (bad_factor(A)) return 1;
    return 0;
}

int linalg_upper_chol_of_inverse(double *A, int n) {
    /* GSL's default error handler aborts; here failures come back as status codes. */
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    gsl_matrix_view v = gsl_matrix_view_array(A, (size_t)n, (size_t)n); /* row-major, like A */
    int rc = upper_chol_of_inverse(&v.matrix);
    gsl_set_error_handler(old);
    if (rc != 0) return rc;
    /* U[i][j] = L2[j][i] for j >= i; zero below the diagonal */
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            A[(size_t)i * n + j] = A[(size_t)j * n + i];
            A[(size_t)j * n + i] = 0.0;
        }
    }
    return 0;
}
