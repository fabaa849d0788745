/* test_gpu_zeroshot.c: zero-shot multiple choice (zeroshot.h) on the CUDA
 * backend against the CPU one, on stories260K and the item files of
 * tests/fixtures/zeroshot (the five tasks, those of test_zeroshot.c): every
 * request's log-likelihood agrees within 1e-4 relative (fp32 GEMMs, as
 * test_gpu_kld's body / head bound), in a window holding every request whole
 * and in a short one that cuts the longer requests on the left; every item's
 * predictions (acc and acc_norm) are the same wherever the CPU's best choice
 * leads the next by more than that tolerance, and then acc, acc_norm and their
 * standard errors are equal. Skips without a GPU or data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "gpu_stories.h"
#include "model_open.h"
#include "zeroshot.h"


/* Does choice `best` of ll (n) lead every other by more than tol (relative)? Then a 1e-4 difference between
 * backends cannot change the argmax. */
static int clear_lead(const double *ll, const long *chars, int n, int best, double tol) {
    for (int c = 0; c < n; c++) {
        if (c == best) continue;
        double a = chars ? ll[best] / chars[best] : ll[best], b = chars ? ll[c] / chars[c] : ll[c];
        if (a - b <= tol * fabs(a)) return 0;
    }
    return 1;
}

static void compare(Forward *fc, Forward *fg, const Tokenizer *t, const ZsData *d, int L) {
    ZsResult rc, rg;
    int okc = zs_evaluate(fc, t, d, L, &rc) == 0, okg = zs_evaluate(fg, t, d, L, &rg) == 0;
    CHECK(okc && okg, "%s, window %d: evaluate on the cpu (%d) and cuda (%d)", d->task->name, L, okc, okg);
    if (!okc || !okg) {
        if (okc) zs_result_free(&rc);
        if (okg) zs_result_free(&rg);
        return;
    }
    const double tol = 1e-4;
    double worst = 0;
    int same = 1;
    long k = 0;
    for (long i = 0; i < d->n; i++) {
        const ZsItem *it = &d->items[i];
        for (int c = 0; c < it->nchoices; c++)
            worst = fmax(worst, fabs(rg.ll[k + c] - rc.ll[k + c]) / fmax(fabs(rc.ll[k + c]), 1e-30));
        if (clear_lead(rc.ll + k, NULL, it->nchoices, rc.pred[i], 2 * tol))
            CHECK(rg.pred[i] == rc.pred[i], "%s line %ld: acc's choice cuda %d, cpu %d", d->task->name, it->line,
                  rg.pred[i], rc.pred[i]);
        else same = 0;
        if (clear_lead(rc.ll + k, it->chars, it->nchoices, rc.pred_norm[i], 2 * tol))
            CHECK(rg.pred_norm[i] == rc.pred_norm[i], "%s line %ld: acc_norm's choice cuda %d, cpu %d", d->task->name,
                  it->line, rg.pred_norm[i], rc.pred_norm[i]);
        else same = 0;
        k += it->nchoices;
    }
    printf("%-14s window %3d: %ld requests (%ld cut), max rel. difference cuda vs cpu %.3g; acc %.4f / %.4f\n",
           d->task->name, L, rc.nrequests, rc.truncated, worst, rc.acc, rg.acc);
    CHECK(worst <= tol, "%s, window %d: log-likelihoods cuda vs cpu within %g relative (max %.3g)", d->task->name, L, tol,
          worst);
    CHECK(rg.truncated == rc.truncated && rg.nrequests == rc.nrequests, "%s: the same requests and cuts", d->task->name);
    if (same) {
        CHECK(rg.acc == rc.acc && rg.acc_stderr == rc.acc_stderr, "%s: acc cuda %g, cpu %g", d->task->name, rg.acc,
              rc.acc);
        CHECK((isnan(rg.acc_norm) && isnan(rc.acc_norm)) || rg.acc_norm == rc.acc_norm, "%s: acc_norm cuda %g, cpu %g",
              d->task->name, rg.acc_norm, rc.acc_norm);
    }
    zs_result_free(&rc);
    zs_result_free(&rg);
}

int main(void) {
    Model m;
    Tokenizer tok;
    if (gpu_stories_open(&m, &tok, "GPU zero-shot tests") != 0) return test_summary();
    Forward *fc, *fg;
    if (forward_create(QH_DEVICE_CPU, &m, 256, &fc) != 0 || forward_create(QH_DEVICE_CUDA, &m, 256, &fg) != 0) {
        CHECK(0, "create the cpu and cuda backends");
        return test_summary();
    }
    for (int i = 0; i < zs_ntasks; i++) {
        ZsData d;
        if (zs_data_load(&zs_tasks[i], "tests/fixtures/zeroshot", 0, &d) != 0) {
            CHECK(0, "load %s from tests/fixtures/zeroshot", zs_tasks[i].name);
            continue;
        }
        compare(fc, fg, &tok, &d, 256);
        compare(fc, fg, &tok, &d, 24); /* piqa's longest continuation has 22 tokens */
        zs_data_free(&d);
    }
    forward_destroy(&fc);
    forward_destroy(&fg);
    tokenizer_free(&tok);
    model_free(&m);
    return test_summary();
}
