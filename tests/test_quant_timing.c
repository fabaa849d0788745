/* test_quant_timing.c: wall time of RTN, GPTQ and SpQR on one random layer
 * (1024 x 1024; 4096 x 4096 too when QH_QUANT_BIG=1), printed per phase.
 * Timings are printed, never asserted; the checks are only that each run
 * succeeds with finite output and the usual proxy-loss ordering. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "quant.h"
#include "util.h"

static uint64_t rng_state = 0x452821e638d01377ull;
static double urand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void) {
    double u = urand(), v = urand();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static void bench(int m, int n) {
    float *W = qh_malloc(sizeof(float) * (size_t)m * n), *deq = qh_malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) W[i] = (float)(0.02 * nrand() * (urand() < 0.005 ? 6 : 1));
    /* H from 2 windows of 2048 tokens with correlated, unevenly scaled columns */
    const int ntok = 2048;
    HessianAcc h;
    hessian_init(&h, n);
    float *X = qh_malloc(sizeof(float) * (size_t)ntok * n); /* (ntok, n) */
    double *cs = qh_malloc(sizeof(double) * n);
    for (int j = 0; j < n; j++) cs[j] = 0.5 + 2.5 * urand();
    double t0 = qh_now();
    for (int w = 0; w < 2; w++) {
        for (int t = 0; t < ntok; t++) {
            double prev = nrand();
            for (int j = 0; j < n; j++) {
                prev = 0.8 * prev + 0.6 * nrand();
                X[(size_t)t * n + j] = (float)(prev * cs[j]);
            }
        }
        hessian_add_window(&h, X, ntok);
    }
    printf("%d x %d, %d threads: hessian_add_window %.3f s per 2048-token window\n", m, n, omp_get_max_threads(),
           (qh_now() - t0) / 2);
    const char *methods[3] = {"rtn", "gptq", "spqr"};
    double loss[3];
    for (int k = 0; k < 3; k++) {
        QuantParams p;
        quant_params_default(&p, methods[k]);
        if (k < 2) p.groupsize = 128;
        QuantLayer q;
        double t = qh_now();
        int rc = quantize_layer_ref(methods[k], W, m, n, h.H, &p, &q, deq);
        double total = qh_now() - t;
        CHECK(rc == 0, "%s %dx%d", methods[k], m, n);
        if (rc) continue;
        int finite = 1;
        for (size_t i = 0; i < (size_t)m * n; i++) finite &= isfinite(deq[i]);
        CHECK(finite, "%s finite", methods[k]);
        loss[k] = q.proxy_loss;
        printf("  %-4s total %7.3f s: factor %.3f, sweep %.3f (statistics %.3f), pack %.3f; proxy %.6g, "
               "outliers %lld, bits %.4f (formula) %.4f (stored)\n",
               methods[k], total, q.seconds_factor, q.seconds_sweep, q.seconds_loo, q.seconds_pack, q.proxy_loss,
               (long long)q.n_outliers, quant_bits_formula_n(&p, n, (double)q.n_outliers / ((double)m * n)),
               (double)quant_layer_stored_bits(&q) / ((double)m * n));
        quant_layer_free(&q);
    }
    CHECK(loss[1] < loss[0], "gptq proxy %g < rtn %g", loss[1], loss[0]);
    free(W), free(deq), free(X), free(cs);
    hessian_free(&h);
}

int main(void) {
    bench(1024, 1024);
    const char *big = getenv("QH_QUANT_BIG");
    if (big && strcmp(big, "1") == 0)
        bench(4096, 4096);
    else
        SKIP("4096 x 4096 timing: set QH_QUANT_BIG=1");
    return test_summary();
}
