/* test_kld.c: the distribution metrics against the full-precision model
 * (harness/eval/kld.h, kld_eval.h):
 *   - closed forms: two-token distributions (KLD of two Bernoullis), identical
 *     logits (every statistic exactly 0, agreement 100%), ties (first index),
 *     the uncertainty sd / sqrt(n - 1), the interpolated percentiles, dp and
 *     its RMS, the correlation and ln ppl ratio on made-up per-token values;
 *   - stories260K against itself through perplexity_eval_kld: exactly 0 and
 *     100%, and the perplexity equal to perplexity_eval's bit for bit;
 *   - stories260K RTN 4-bit against full precision: mean KLD and top-1
 *     agreement recomputed here in double from logits of an independent path
 *     (last_logits of every prefix, one forward pass per position), to 1e-6;
 *     the second-half scope counts llama.cpp's positions.
 * The stories260K parts need data/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "datasets.h"
#include "kld_eval.h"
#include "stories_fixture.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

/* KL(p || q) of two Bernoullis given by logits (0, a) and (0, b): p1 = sigmoid(a). */
static double bernoulli_kl(double a, double b) {
    double p = 1 / (1 + exp(-a)), q = 1 / (1 + exp(-b));
    return p * log(p / q) + (1 - p) * log((1 - p) / (1 - q));
}

static void test_closed_forms(void) {
    /* two tokens: rows (0, a) full precision, (0, b) quantized */
    const double a[4] = {1.5, -2.0, 0.25, 3.0}, b[4] = {0.5, -2.5, -0.75, 3.0};
    float lp[8], lq[8];
    int y[4] = {1, 0, 1, 1};
    for (int t = 0; t < 4; t++) {
        lp[2 * t] = 0, lp[2 * t + 1] = (float)a[t];
        lq[2 * t] = 0, lq[2 * t + 1] = (float)b[t];
    }
    KldValues v = {0};
    kld_add_positions(&v, lq, lp, y, 4, 2);
    CHECK(v.n == 4, "4 positions, got %ld", v.n);
    for (int t = 0; t < 4; t++) {
        CHECK_CLOSE(v.kld[t], bernoulli_kl(a[t], b[t]), 1e-12, 1e-15, "Bernoulli KL");
        double p1 = 1 / (1 + exp(-a[t])), q1 = 1 / (1 + exp(-b[t]));
        double py = y[t] ? p1 : 1 - p1, qy = y[t] ? q1 : 1 - q1;
        CHECK_CLOSE(v.dp[t], qy - py, 1e-12, 1e-15, "dp = q_y - p_y");
        CHECK_CLOSE(v.nll_q[t], -log(qy), 1e-12, 1e-15, "nll_q");
        CHECK_CLOSE(v.nll_p[t], -log(py), 1e-12, 1e-15, "nll_p");
    }
    /* top tokens: a 1.5 vs b 0.5 both token 1; -2 vs -2.5 both 0; 0.25 vs -0.75 differ; 3 vs 3 agree */
    CHECK(v.same_top == 3, "3 of 4 top tokens agree, got %ld", v.same_top);
    KldStats s;
    kld_stats(&v, &s);
    double m = 0, ss = 0;
    for (int t = 0; t < 4; t++) m += bernoulli_kl(a[t], b[t]) / 4;
    for (int t = 0; t < 4; t++) ss += (bernoulli_kl(a[t], b[t]) - m) * (bernoulli_kl(a[t], b[t]) - m);
    CHECK_CLOSE(s.kld_mean, m, 1e-12, 0, "mean KLD");
    CHECK_CLOSE(s.kld_unc, sqrt(ss / 4 / 3), 1e-10, 0, "uncertainty sd/sqrt(n-1), sd with divisor n");
    CHECK_CLOSE(s.same_top, 0.75, 0, 0, "same top 3/4");
    CHECK_CLOSE(s.same_top_unc, sqrt(0.75 * 0.25 / 3), 1e-12, 0, "sqrt(f(1-f)/(n-1))");
    CHECK(s.kld_max >= s.kld_pct[0] && s.kld_min <= s.kld_pct[KLD_NPCT - 1], "max/min bound the percentiles");
    kld_values_free(&v);

    /* ties: the first index of the maximum on both sides */
    float t1[3] = {2, 2, 1}, t2[3] = {1, 2, 2};
    int y0 = 0;
    kld_add_positions(&v, t2, t1, &y0, 1, 3);
    CHECK(v.same_top == 0, "tie (2, 2, 1) -> 0 vs (1, 2, 2) -> 1: no agreement");
    kld_add_positions(&v, t1, t1, &y0, 1, 3);
    CHECK(v.same_top == 1 && v.kld[1] == 0, "identical rows with a tie agree, KLD 0");
    kld_values_free(&v);

    /* percentiles: 0..100 -> f * 100; interpolated between ranks */
    double r[101];
    for (int i = 0; i <= 100; i++) r[i] = i;
    CHECK_CLOSE(kld_percentile(r, 101, 0.999), 99.9, 1e-12, 0, "99.9%");
    CHECK_CLOSE(kld_percentile(r, 101, 0.5), 50, 0, 0, "median");
    CHECK_CLOSE(kld_percentile(r, 101, 0.001), 0.1, 1e-9, 0, "0.1%");
    double four[4] = {1, 2, 4, 8};
    CHECK_CLOSE(kld_percentile(four, 4, 0.5), 3, 0, 0, "even count: the median is the mean of the middle two");
    CHECK_CLOSE(kld_percentile(four, 4, 0.9), 4 + 0.7 * 4, 1e-12, 0, "0.9 -> rank 2.7");
    CHECK(kld_percentile(four, 4, 0) == 1 && kld_percentile(four, 4, 1) == 8, "ends");

    /* made-up per-token values: RMS dp, ln ppl ratio, correlation */
    KldValues u = {0};
    double dp[5] = {0.1, -0.2, 0.05, 0, 0.3}, nq[5] = {1, 2, 3, 4, 5}, np[5] = {1.5, 2.5, 2.5, 4.5, 6};
    u.n = u.cap = 5;
    u.kld = (double[5]){0.01, 0.02, 0.03, 0.04, 0.05};
    u.dp = dp, u.nll_q = nq, u.nll_p = np;
    kld_stats(&u, &s);
    double msq = (0.01 + 0.04 + 0.0025 + 0 + 0.09) / 5;
    CHECK_CLOSE(s.dp_rms, sqrt(msq), 1e-12, 0, "RMS dp");
    CHECK_CLOSE(s.ln_ppl_ratio, (15.0 - 17.0) / 5, 1e-12, 0, "ln ppl ratio = mean(nll_q - nll_p)");
    CHECK_CLOSE(s.ppl_q, exp(3.0), 1e-12, 0, "PPL(Q)");
    /* Pearson of (1..5) and (1.5 2.5 2.5 4.5 6): means 3 and 3.4 */
    double cab = 0, caa = 0, cbb = 0;
    for (int i = 0; i < 5; i++) cab += (nq[i] - 3) * (np[i] - 3.4), caa += (nq[i] - 3) * (nq[i] - 3),
                                cbb += (np[i] - 3.4) * (np[i] - 3.4);
    CHECK_CLOSE(s.ln_ppl_cor, cab / sqrt(caa * cbb), 1e-12, 0, "correlation");
    double d[5], dm = 0, dss = 0;
    for (int i = 0; i < 5; i++) d[i] = nq[i] - np[i], dm += d[i] / 5;
    for (int i = 0; i < 5; i++) dss += (d[i] - dm) * (d[i] - dm);
    CHECK_CLOSE(s.ln_ppl_ratio_unc, sqrt(dss / 5 / 4), 1e-12, 0,
                "ratio uncertainty = sqrt(u_q^2 + u_p^2 - 2 cov), the uncertainty of mean(nll_q - nll_p)");
    KldValues one = {0};
    kld_add_positions(&one, lq, lp, y, 1, 2);
    kld_stats(&one, &s);
    CHECK(isnan(s.kld_unc) && isnan(s.same_top_unc), "one position: no uncertainty (NaN)");
    kld_values_free(&one);
}

/* Mean KLD and top-1 agreement of model q against p over every target of nwin
 * windows of T, in double, from last_logits of each prefix. */
static void reference_stats(const Model *q, const Model *p, const int *ids, int nwin, int T, double *mean, double *top) {
    Forward *fq, *fp;
    forward_cpu_create(q, T, &fq);
    forward_cpu_create(p, T, &fp);
    int V = q->cfg.vocab_size;
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
    double sum = 0;
    long same = 0, n = 0;
    for (int w = 0; w < nwin; w++)
        for (int t = 1; t < T; t++) {
            const int *tok = ids + (size_t)w * T;
            fq->ops->last_logits(fq, tok, t, a); /* predicts token t from 0..t-1 */
            fp->ops->last_logits(fp, tok, t, b);
            double lq = -INFINITY, lp = -INFINITY;
            int iq = 0, ip = 0;
            for (int v = 0; v < V; v++) {
                if (a[v] > a[iq]) iq = v;
                if (b[v] > b[ip]) ip = v;
            }
            double zq = 0, zp = 0;
            for (int v = 0; v < V; v++) zq += exp((double)a[v] - a[iq]), zp += exp((double)b[v] - b[ip]);
            lq = a[iq] + log(zq);
            lp = b[ip] + log(zp);
            double kl = 0;
            for (int v = 0; v < V; v++) {
                double pv = exp((double)b[v] - lp);
                kl += pv * (((double)b[v] - lp) - ((double)a[v] - lq));
            }
            sum += kl;
            same += iq == ip;
            n++;
        }
    *mean = sum / n;
    *top = (double)same / n;
    free(a);
    free(b);
    forward_destroy(&fq);
    forward_destroy(&fp);
}

static void test_stories260K(void) {
    Model m, fp;
    Tokenizer tok;
    TokenStream ts;
    if (stories_open(&m, &tok) != 0) {
        SKIP("stories260K not in data/ (make data)");
        return;
    }
    const int T = 96, NW = 3;
    CHECK(dataset_eval("tinystories", root(), &tok, T, &ts) == 0 && ts.n >= (size_t)(T * NW), "tinystories stream");
    if (ts.n < (size_t)(T * NW)) return;

    /* against itself: exactly 0, and the perplexity of perplexity_eval bit for bit */
    CHECK(model_view_loaded(&m, &fp) == 0, "view of the model as loaded");
    Forward *f, *g;
    forward_cpu_create(&m, T, &f);
    forward_cpu_create(&fp, T, &g);
    PplResult r0, r1;
    KldStats s;
    CHECK(perplexity_eval(f, ts.ids, ts.n, T, NW, &r0) == 0, "plain perplexity");
    CHECK(perplexity_eval_kld(f, g, ts.ids, ts.n, T, NW, KLD_SCOPE_ALL, &r1, &s) == 0, "with KLD");
    CHECK(r0.ppl == r1.ppl && !memcmp(r0.nll, r1.nll, sizeof(double) * NW * (T - 1)), "same ppl and NLLs bit for bit");
    CHECK(s.n == (long)NW * (T - 1), "every target scored: %ld", s.n);
    const double zeros[] = {s.kld_mean, s.kld_unc, s.kld_max, s.kld_min, s.dp_mean, s.dp_unc, s.dp_rms, s.dp_rms_unc,
                            s.dp_max, s.dp_min, s.ln_ppl_ratio, s.ln_ppl_ratio_unc, s.same_top_unc};
    int nz = 0;
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0]; i++) nz += zeros[i] != 0;
    for (int i = 0; i < KLD_NPCT; i++) nz += s.kld_pct[i] != 0;
    for (int i = 0; i < KLD_NDPCT; i++) nz += s.dp_pct[i] != 0;
    CHECK(nz == 0, "the model against itself: %d statistics are not exactly 0", nz);
    CHECK(s.same_top == 1 && s.ln_ppl_cor == 1, "100%% agreement (%.17g) and correlation 1 (%.17g)", s.same_top,
          s.ln_ppl_cor);
    CHECK(s.ppl_q == s.ppl_base, "PPL(Q) == PPL(base)");
    ppl_result_free(&r0);
    ppl_result_free(&r1);
    forward_destroy(&f);
    forward_destroy(&g);
    model_free(&fp);

    /* RTN 4-bit (per row) against full precision */
    QuantRunSpec spec = {.method = "rtn", .calib = "none", .seqlen = T, .data_root = root(), .device = QH_DEVICE_CPU};
    quant_params_default(&spec.params, "rtn");
    spec.params.wbits = 4;
    QuantRun run;
    CHECK(quantize_model(&m, &tok, &spec, &run) == 0, "rtn 4-bit");
    quant_run_free(&run);
    CHECK(model_view_loaded(&m, &fp) == 0 && model_has_replaced(&m), "view of the full-precision weights");
    forward_cpu_create(&m, T, &f);
    forward_cpu_create(&fp, T, &g);
    CHECK(perplexity_eval_kld(f, g, ts.ids, ts.n, T, NW, KLD_SCOPE_ALL, &r1, &s) == 0, "rtn 4-bit with KLD");
    double mean, top;
    reference_stats(&m, &fp, ts.ids, NW, T, &mean, &top);
    printf("stories260K rtn w4, tinystories %d x %d: mean KLD %.9f (independent %.9f), top-1 %.6f (independent %.6f)\n",
           NW, T, s.kld_mean, mean, s.same_top, top);
    CHECK(mean > 1e-4, "4-bit RTN moves the distributions (mean KLD %g)", mean);
    CHECK(fabs(s.kld_mean - mean) <= 1e-6, "mean KLD %.9g vs independent %.9g", s.kld_mean, mean);
    CHECK(fabs(s.same_top - top) <= 1e-6, "top-1 agreement %.9g vs independent %.9g", s.same_top, top);
    CHECK(s.same_top < 1 && s.kld_min >= -1e-12, "some top tokens change; KLD >= 0 (min %g)", s.kld_min);
    ppl_result_free(&r1);
    /* llama.cpp's positions: the second half of each window */
    CHECK(perplexity_eval_kld(f, g, ts.ids, ts.n, T, NW, KLD_SCOPE_SECOND_HALF, &r1, &s) == 0, "second half");
    CHECK(s.n == (long)NW * (T - 1 - T / 2), "second half: %ld positions, expected %d", s.n, NW * (T - 1 - T / 2));
    ppl_result_free(&r1);
    forward_destroy(&f);
    forward_destroy(&g);
    model_free(&fp);
    token_stream_free(&ts);
    tokenizer_free(&tok);
    model_free(&m);
}

int main(void) {
    test_closed_forms();
    test_stories260K();
    return test_summary();
}
