/* kld_eval.c: the window loop of perplexity with distribution metrics (see
 * kld_eval.h). Per window: the body of both models (final residual streams,
 * (T, D) each), the model's NLL from its own (the perplexity of SPEC 7,
 * exactly as perplexity_eval computes it), then the scored positions in chunks
 * whose two logit blocks (chunk, V) stay within about 64 MB each. */
#include "kld_eval.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const kld_scope_names[2] = {"all", "second-half"};

int kld_scope_parse(const char *s, const char *what, KldScope *out) {
    for (int i = 0; i < 2; i++)
        if (!strcmp(s, kld_scope_names[i])) return *out = (KldScope)i, 0;
    return qh_error("%s: expected all or second-half, got '%s'", what, s);
}

int kld_scope_first(KldScope scope, int seqlen) { return scope == KLD_SCOPE_SECOND_HALF ? seqlen / 2 : 0; }

int perplexity_eval_kld(Forward *f, Forward *ref, const int *ids, size_t n, int seqlen, long max_windows,
                        KldScope scope, PplResult *r, KldStats *k) {
    memset(r, 0, sizeof *r);
    memset(k, 0, sizeof *k);
    const ModelConfig *c = &f->model->cfg;
    int D = c->dim, V = c->vocab_size;
    if (ref->model->cfg.vocab_size != V || ref->model->cfg.dim != D)
        return qh_error("KL divergence: the reference model (dim %d, vocabulary %d) does not match the model (dim %d, "
                        "vocabulary %d)", ref->model->cfg.dim, ref->model->cfg.vocab_size, D, V);
    if (seqlen < 2) return qh_error("seqlen %d is too short (at least 2)", seqlen);
    if (seqlen > f->max_T || seqlen > ref->max_T)
        return qh_error("seqlen %d exceeds the backend window %d", seqlen, f->max_T < ref->max_T ? f->max_T : ref->max_T);
    long nwin = (long)(n / (size_t)seqlen);
    if (max_windows > 0 && nwin > max_windows) nwin = max_windows;
    if (nwin < 1) return qh_error("the dataset has %zu tokens, fewer than one window of %d", n, seqlen);
    int first = kld_scope_first(scope, seqlen), nscored = seqlen - 1 - first;
    size_t chunk = (64u << 20) / ((size_t)V * sizeof(float));
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)nscored) chunk = (size_t)nscored;
    r->ntokens = (long)n;
    r->nwindows = nwin;
    r->seqlen = seqlen;
    r->window_nll = qh_malloc(sizeof(double) * nwin);
    r->nll = qh_malloc(sizeof(double) * nwin * (seqlen - 1));
    float *x = qh_malloc(sizeof(float) * (size_t)seqlen * D);   /* (T, D) the model's final residual stream */
    float *xr = qh_malloc(sizeof(float) * (size_t)seqlen * D);  /* (T, D) the reference's */
    float *lq = qh_malloc(sizeof(float) * chunk * V);           /* (chunk, V) the model's logits */
    float *lp = qh_malloc(sizeof(float) * chunk * V);           /* (chunk, V) the reference's */
    KldValues vals = {0};
    double t0 = qh_now();
    int rc = 0;
    for (long w = 0; w < nwin && rc == 0; w++) {
        const int *tok = ids + (size_t)w * seqlen;
        double *nll = r->nll + w * (seqlen - 1);
        rc = f->ops->body(f, tok, seqlen, x);
        if (rc == 0) rc = f->ops->head_nll(f, x, tok, seqlen, nll);
        if (rc == 0) rc = ref->ops->body(ref, tok, seqlen, xr);
        for (int p = first; rc == 0 && p < seqlen - 1; p += (int)chunk) {
            int m = seqlen - 1 - p < (int)chunk ? seqlen - 1 - p : (int)chunk;
            rc = f->ops->head_logits(f, x + (size_t)p * D, m, lq);
            if (rc == 0) rc = ref->ops->head_logits(ref, xr + (size_t)p * D, m, lp);
            if (rc == 0) kld_add_positions(&vals, lq, lp, tok + p + 1, m, V); /* targets: checked by body's embed */
        }
        if (rc != 0) break;
        r->window_nll[w] = window_mean_nll(nll, seqlen - 1);
        if (qh_progress_enabled()) {
            PplResult tmp;
            perplexity_from_windows(r->window_nll, w + 1, &tmp);
            qh_progress("  window %ld/%ld  ppl %.4f  (%.1f tok/s, with the reference model)", w + 1, nwin, tmp.ppl,
                        (double)(w + 1) * seqlen / (qh_now() - t0));
        }
    }
    r->seconds = qh_now() - t0;
    free(x);
    free(xr);
    free(lq);
    free(lp);
    if (rc != 0) {
        kld_values_free(&vals);
        ppl_result_free(r);
        return -1;
    }
    perplexity_from_windows(r->window_nll, nwin, r);
    kld_stats(&vals, k);
    kld_values_free(&vals);
    return 0;
}
