/* kld_eval.h: perplexity (SPEC 7) of a model together with its distribution
 * metrics against a reference (kld.h), window by window: each window runs
 * through the model under test and through the reference (the full-precision
 * model: two Forward backends over the same vocabulary), and the logits of
 * both at the scored positions are compared chunk by chunk, so that no
 * logits are kept beyond one chunk of positions and nothing goes to disk.
 * Not here: the metrics' arithmetic (kld.h), the dataset loop (eval_run.h). */
#ifndef QH_KLD_EVAL_H
#define QH_KLD_EVAL_H

#include "forward.h"
#include "kld.h"
#include "perplexity.h"

/* Which positions of a window the metrics are taken over: KLD_SCOPE_ALL every
 * target 1..seqlen-1 (the perplexity protocol's); KLD_SCOPE_SECOND_HALF
 * llama.cpp's, the targets seqlen/2 + 1 .. seqlen - 1 (positions seqlen/2 ..
 * seqlen - 2 predicting them). The perplexity itself is always SPEC 7's. */
typedef enum { KLD_SCOPE_ALL = 0, KLD_SCOPE_SECOND_HALF = 1 } KldScope;
extern const char *const kld_scope_names[2]; /* "all", "second-half" */
/* "all" | "second-half" -> scope; -1 with a message naming `what` otherwise. */
int kld_scope_parse(const char *s, const char *what, KldScope *out);
/* First scored position of a window of seqlen under scope, and their count. */
int kld_scope_first(KldScope scope, int seqlen);

/* Evaluate ids (n) in windows of seqlen like perplexity_eval(f, ...) (r equal
 * to it bit for bit), and the metrics of f against ref over the positions of
 * `scope` (k). f and ref must have the same vocabulary and hold windows of
 * seqlen. */
int perplexity_eval_kld(Forward *f, Forward *ref, const int *ids, size_t n, int seqlen, long max_windows,
                        KldScope scope, PplResult *r, KldStats *k);

#endif
