/* perplexity.c: the window loop of the evaluation protocol (see perplexity.h).
 * Targets of a window are its positions 1..seqlen-1; the reference multiplies
 * each window's mean loss by seqlen and divides the sum by nwin*seqlen, which is
 * the mean of the window means used here. */
#include "perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void perplexity_from_windows(const double *w, long nwin, PplResult *r) {
    double sum = 0.0;
    for (long i = 0; i < nwin; i++) sum += w[i];
    double mean = nwin > 0 ? sum / (double)nwin : NAN;
    double var = 0.0;
    for (long i = 0; i < nwin; i++) var += (w[i] - mean) * (w[i] - mean);
    double se = nwin > 1 ? sqrt(var / (double)(nwin - 1) / (double)nwin) : NAN;
    r->mean_nll = mean;
    r->ppl = exp(mean);
    r->ppl_stderr = r->ppl * se;
}

int perplexity_eval(Forward *f, const int *ids, size_t n, int seqlen, long max_windows, PplResult *r) {
    memset(r, 0, sizeof *r);
    if (seqlen < 2) return qh_error("seqlen %d is too short (at least 2)", seqlen);
    if (seqlen > f->max_T) return qh_error("seqlen %d exceeds the backend window %d", seqlen, f->max_T);
    long nwin = (long)(n / (size_t)seqlen);
    if (max_windows > 0 && nwin > max_windows) nwin = max_windows;
    if (nwin < 1) return qh_error("the dataset has %zu tokens, fewer than one window of %d", n, seqlen);
    r->ntokens = (long)n;
    r->nwindows = nwin;
    r->seqlen = seqlen;
    r->window_nll = qh_malloc(sizeof(double) * nwin);
    r->nll = qh_malloc(sizeof(double) * nwin * (seqlen - 1));
    double t0 = qh_now();
    for (long w = 0; w < nwin; w++) {
        double *nll = r->nll + w * (seqlen - 1);
        if (f->ops->window_nll(f, ids + (size_t)w * seqlen, seqlen, nll) != 0) {
            ppl_result_free(r);
            return -1;
        }
        r->window_nll[w] = window_mean_nll(nll, seqlen - 1);
        if (qh_progress_enabled()) {
            PplResult tmp;
            perplexity_from_windows(r->window_nll, w + 1, &tmp);
            qh_progress("  window %ld/%ld  ppl %.4f  (%.1f tok/s)", w + 1, nwin, tmp.ppl,
                        (double)(w + 1) * seqlen / (qh_now() - t0));
        }
    }
    r->seconds = qh_now() - t0;
    perplexity_from_windows(r->window_nll, nwin, r);
    return 0;
}

double window_mean_nll(const double *nll, int n) {
    double s = 0.0;
    for (int t = 0; t < n; t++) s += nll[t];
    return s / n;
}

void ppl_result_free(PplResult *r) {
    if (!r) return;
    QH_FREE(r->window_nll);
    QH_FREE(r->nll);
}
