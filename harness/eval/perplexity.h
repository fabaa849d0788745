/* perplexity.h: the GPTQ/SpQR perplexity protocol (SPEC 7) over any forward
 * backend: non-overlapping windows of seqlen tokens, each evaluated on its own,
 * ppl = exp(mean over windows of the window's mean cross-entropy), in double. */
#ifndef QH_PERPLEXITY_H
#define QH_PERPLEXITY_H

#include <stddef.h>

#include "forward.h"

typedef struct PplResult {
    double ppl;          /* exp(mean_nll) */
    double ppl_stderr;   /* ppl * stderr of the mean over windows (delta method) */
    double mean_nll;     /* mean over windows of the per-window mean NLL (nats) */
    long ntokens;        /* tokens in the dataset stream */
    long nwindows;       /* windows evaluated */
    int seqlen;
    double *window_nll;  /* (nwindows) mean NLL of each window, owned */
    double *nll;         /* (nwindows, seqlen - 1) per-token NLL, owned */
    double seconds;      /* wall time of the forward passes */
    double upload_seconds; /* block-streamed GPU evaluation (stream_eval.h): the part of seconds spent uploading
                              blocks to the device; 0 otherwise */
    long windows_per_pass; /* block-by-block evaluation: the windows whose activations were kept at once (0 otherwise) */
    int acts_on_device;    /* ... 1 when they were kept on the device */
} PplResult;

/* Evaluate ids (n) in windows of seqlen; max_windows > 0 caps the count. */
int perplexity_eval(Forward *f, const int *ids, size_t n, int seqlen, long max_windows, PplResult *r);
/* The closed form used by perplexity_eval, exposed for tests: window_nll (nwin) -> r->ppl, ppl_stderr, mean_nll */
void perplexity_from_windows(const double *window_nll, long nwin, PplResult *r);
void ppl_result_free(PplResult *r);
/* Mean of one window's per-token NLL: nll (n) in double. */
double window_mean_nll(const double *nll, int n);

#endif
