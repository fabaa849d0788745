/* expect_close.h: array comparisons for tests: one CHECK (check.h) per array,
 * reporting the count of elements off, the first one and the largest error.
 * Header-only. */
#ifndef QH_EXPECT_CLOSE_H
#define QH_EXPECT_CLOSE_H

#include <math.h>

#include "check.h"

/* One CHECK per array: |got - want| <= atol + rtol |want| everywhere. */
static inline void expect_close_f(const char *what, const float *got, const float *want, long n, double rtol, double atol) {
    long bad = 0, first = -1;
    double maxerr = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= atol + rtol * fabs((double)want[i]))) {
            if (first < 0) first = i;
            bad++;
        }
        if (e > maxerr || e != e) maxerr = e;
    }
    CHECK(bad == 0, "%s: %ld of %ld elements off, first [%ld] got %.9g want %.9g; max abs err %.3g", what, bad, n,
          first, first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0, maxerr);
}
static inline void expect_close_d(const char *what, const double *got, const double *want, long n, double rtol,
                           double atol) {
    long bad = 0, first = -1;
    double maxerr = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= atol + rtol * fabs(want[i]))) {
            if (first < 0) first = i;
            bad++;
        }
        if (e > maxerr || e != e) maxerr = e;
    }
    CHECK(bad == 0, "%s: %ld of %ld elements off, first [%ld] got %.12g want %.12g; max abs err %.3g", what, bad,
          n, first, first >= 0 ? got[first] : 0.0, first >= 0 ? want[first] : 0.0, maxerr);
}

#endif
