/* check.h: the tiny assertion layer every test binary uses. Each CHECK counts
 * as one passed or failed check; test_summary() prints the closing line
 * "N passed, N failed[, N skipped]" and returns the process exit status. */
#ifndef QH_CHECK_H
#define QH_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed, check_failed, check_skipped;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            check_passed++;                                                     \
        } else {                                                                \
            check_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol, what)                                      \
    do {                                                                         \
        double ca_ = (double)(a), cb_ = (double)(b);                             \
        CHECK(fabs(ca_ - cb_) <= (atol) + (rtol) * fabs(cb_),                    \
              "%s: got %.9g, expected %.9g", (what), ca_, cb_);                  \
    } while (0)

#define SKIP(why)                                                               \
    do {                                                                        \
        check_skipped++;                                                        \
        fprintf(stderr, "SKIP %s:%d: %s\n", __FILE__, __LINE__, (why));         \
    } while (0)

static inline int test_summary(void) {
    if (check_skipped)
        printf("%d passed, %d failed, %d skipped\n", check_passed, check_failed, check_skipped);
    else
        printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
