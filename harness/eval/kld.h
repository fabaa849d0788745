/* kld.h: how far a quantized model's next-token distributions are from its
 * full-precision original's, position by position, with the statistics of
 * llama.cpp's `perplexity --kl-divergence` (tools/perplexity/perplexity.cpp):
 *
 *   per scored position t (p: full precision, q: quantized, y = the right token):
 *     KLD(t)  = sum_v p_v (ln p_v - ln q_v)          over the whole vocabulary
 *     top(t)  = [argmax_v q_v == argmax_v p_v]       (first index of the maximum)
 *     dp(t)   = q_y - p_y                            the change in the right token's probability
 *     nll_q(t) = -ln q_y,  nll_p(t) = -ln p_y
 *   over the n scored positions:
 *     mean KLD with its uncertainty sd / sqrt(n - 1) (sd with divisor n), the
 *     maximum, percentiles 99.9 99 95 90 50 10 5 1 0.1 and the minimum (linear
 *     interpolation at rank f (n - 1) of the sorted values); the share of
 *     positions whose top token agrees, with sqrt(f (1 - f) / (n - 1));
 *     mean dp and RMS dp with their uncertainties (the RMS one by the delta
 *     method, 0.5 / rms x that of mean dp^2) and the dp percentiles 99.9 99 95
 *     90 75 50 25 10 5 1 0.1; PPL(Q) = exp(mean nll_q) and PPL(base) with
 *     theirs; ln(PPL(Q)/PPL(base)) = mean(nll_q - nll_p) with the uncertainty
 *     of that mean; and the correlation of the per-token ln-probabilities of
 *     the two models (llama.cpp's "Cor(ln(PPL(Q)), ln(PPL(base)))").
 *
 * Where this differs from llama.cpp, on purpose: the base distribution is used
 * exactly, in double (llama.cpp stores it as 16-bit log-probabilities and
 * drops the terms with ln p_v <= -16); sums are taken about the mean in two
 * passes rather than from running sums of squares; uncertainties are NaN for
 * fewer than 2 positions (llama.cpp prints 0 below 11), and the RMS one is 0
 * when every dp is 0. Which positions are scored is the caller's (kld_eval.h):
 * every target of every window (the perplexity protocol's), or llama.cpp's
 * second half of each window.
 *
 * Not here: running the models (kld_eval.h), storing (results.h). */
#ifndef QH_KLD_H
#define QH_KLD_H

#include <jansson.h>
#include <stdio.h>

/* The per-position values of the positions scored so far (arrays owned). */
typedef struct KldValues {
    long n, cap;
    double *kld;   /* (n) */
    double *dp;    /* (n) q_y - p_y */
    double *nll_q; /* (n) -ln q_y */
    double *nll_p; /* (n) -ln p_y */
    long same_top; /* positions whose top token agrees */
} KldValues;

#define KLD_NPCT 9  /* KLD percentiles: 99.9 99 95 90 50 10 5 1 0.1 */
#define KLD_NDPCT 11 /* dp percentiles: 99.9 99 95 90 75 50 25 10 5 1 0.1 */
extern const double kld_pct_levels[KLD_NPCT];   /* as fractions, 0.999 ... 0.001 */
extern const double kld_dpct_levels[KLD_NDPCT];

typedef struct KldStats {
    long n;                          /* scored positions */
    double kld_mean, kld_unc;
    double kld_max, kld_min, kld_pct[KLD_NPCT];
    double same_top, same_top_unc;   /* fractions (0..1) */
    double dp_mean, dp_unc, dp_rms, dp_rms_unc;
    double dp_max, dp_min, dp_pct[KLD_NDPCT];
    double ppl_q, ppl_q_unc, ppl_base, ppl_base_unc;
    double ln_ppl_ratio, ln_ppl_ratio_unc;
    double ln_ppl_cor;               /* correlation of nll_q and nll_p over the positions (-1..1) */
} KldStats;

/* Append n positions: logits_q, logits_p (n, V) of the quantized and the
 * full-precision model at the same positions, targets (n) the right tokens
 * (0 <= y < V, checked by the caller). Arithmetic in double. */
void kld_add_positions(KldValues *v, const float *logits_q, const float *logits_p, const int *targets, int n, int V);
/* The statistics of the header over everything added (v is not changed). */
void kld_stats(const KldValues *v, KldStats *s);
void kld_values_free(KldValues *v);

/* Linear-interpolation percentile of sorted (n): rank f (n - 1); f <= 0 gives
 * the minimum, f >= 1 the maximum. Exposed for tests. */
double kld_percentile(const double *sorted, long n, double f);

/* The statistics as a JSON object (keys as in results/README.md; NaN as null). */
json_t *kld_stats_json(const KldStats *s);
/* llama.cpp's three blocks (perplexity, KL divergence, token probability),
 * each line prefixed with `indent`. */
void kld_stats_print(FILE *out, const KldStats *s, const char *indent);

#endif
