/* cpu_ppl.h: the perplexity of a model on the CPU backend, the figure the
 * quantization tests compare between models (test_awq.c, test_quant_model.c,
 * test_family_quant.c). Header-only. Not here: the protocol itself
 * (harness/eval/perplexity.c), the GPU (tests/gpu/). */
#ifndef QH_CPU_PPL_H
#define QH_CPU_PPL_H

#include <math.h>
#include <stddef.h>

#include "forward.h"
#include "perplexity.h"

/* ids (n) in windows of seqlen, at most max_windows of them (0: all); NAN
 * when the backend or the evaluation failed (a message said why). */
static inline double cpu_ppl(const Model *m, const int *ids, size_t n, int seqlen, long max_windows) {
    Forward *f;
    if (forward_cpu_create(m, seqlen, &f) != 0) return NAN;
    PplResult r;
    double p = perplexity_eval(f, ids, n, seqlen, max_windows, &r) == 0 ? r.ppl : NAN;
    ppl_result_free(&r);
    forward_destroy(&f);
    return p;
}

#endif
