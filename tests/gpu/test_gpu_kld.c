/* test_gpu_kld.c: the distribution metrics (kld_eval.h) on the CUDA backend
 * against the CPU one, on stories260K quantized to 4 bits by RTN: the new
 * entries body (final residual stream) and head_logits agree with the CPU's
 * within 1e-4 relative (fp32 GEMMs), the perplexity of perplexity_eval_kld
 * equals perplexity_eval's on the GPU bit for bit, and mean KLD, top-token
 * agreement, RMS dp and the ln ppl ratio agree with the CPU's within 1e-4
 * (relative, or absolute for the agreement). The model against itself on the
 * GPU: every statistic exactly 0, agreement 100%. Skips without a GPU or data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "datasets.h"
#include "gpu_stories.h"
#include "kld_eval.h"

static double max_rel(const float *a, const float *b, size_t n) {
    double w = 0, scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]) / (scale > 0 ? scale : 1));
    return w;
}

static int kld_on(QhDevice dev, const Model *m, const Model *ref, const TokenStream *ts, int T, long nw, PplResult *r,
                  KldStats *s) {
    Forward *f, *g;
    if (forward_create(dev, m, T, &f) != 0) return -1;
    if (forward_create(dev, ref, T, &g) != 0) {
        forward_destroy(&f);
        return -1;
    }
    int rc = perplexity_eval_kld(f, g, ts->ids, ts->n, T, nw, KLD_SCOPE_ALL, r, s);
    forward_destroy(&f);
    forward_destroy(&g);
    return rc;
}

int main(void) {
    Model m, fp;
    Tokenizer tok;
    TokenStream ts;
    if (gpu_stories_open(&m, &tok, "GPU KL divergence tests") != 0) return test_summary();
    const int T = 256, NW = 4;
    if (dataset_eval("wikitext2", stories_data_root(), &tok, T, &ts) != 0) return 1;

    /* against itself on the GPU */
    model_view_loaded(&m, &fp);
    PplResult r;
    KldStats s;
    CHECK(kld_on(QH_DEVICE_CUDA, &m, &fp, &ts, T, NW, &r, &s) == 0, "cuda: the model against itself");
    CHECK(s.kld_mean == 0 && s.kld_max == 0 && s.kld_min == 0 && s.dp_rms == 0 && s.same_top == 1 &&
              s.ln_ppl_ratio == 0,
          "cuda, against itself: KLD mean %g max %g, RMS dp %g, agreement %g", s.kld_mean, s.kld_max, s.dp_rms,
          s.same_top);
    ppl_result_free(&r);
    model_free(&fp);

    QuantRunSpec spec = {.method = "rtn", .calib = "none", .seqlen = T, .data_root = stories_data_root(), .device = QH_DEVICE_CPU};
    quant_params_default(&spec.params, "rtn");
    spec.params.wbits = 4;
    QuantRun run;
    CHECK(quantize_model(&m, &tok, &spec, &run) == 0, "rtn 4-bit");
    quant_run_free(&run);
    model_view_loaded(&m, &fp);

    /* body and head_logits against the CPU's */
    Forward *fc, *fg;
    forward_create(QH_DEVICE_CPU, &m, T, &fc);
    forward_create(QH_DEVICE_CUDA, &m, T, &fg);
    int D = m.cfg.dim, V = m.cfg.vocab_size;
    float *xc = malloc(sizeof(float) * T * D), *xg = malloc(sizeof(float) * T * D);
    float *lc = malloc(sizeof(float) * T * V), *lg = malloc(sizeof(float) * T * V);
    CHECK(fc->ops->body(fc, ts.ids, T, xc) == 0 && fg->ops->body(fg, ts.ids, T, xg) == 0, "body on both");
    double e = max_rel(xg, xc, (size_t)T * D);
    CHECK(e < 1e-4, "body: cuda vs cpu %.3g", e);
    CHECK(fc->ops->head_logits(fc, xc, T - 3, lc) == 0 && fg->ops->head_logits(fg, xc, T - 3, lg) == 0, "head_logits");
    e = max_rel(lg, lc, (size_t)(T - 3) * V);
    CHECK(e < 1e-4, "head_logits: cuda vs cpu %.3g", e);
    PplResult r0;
    CHECK(perplexity_eval(fg, ts.ids, ts.n, T, NW, &r0) == 0, "cuda perplexity");
    forward_destroy(&fc);
    forward_destroy(&fg);

    KldStats sc, sg;
    PplResult rc, rg;
    CHECK(kld_on(QH_DEVICE_CPU, &m, &fp, &ts, T, NW, &rc, &sc) == 0, "cpu KLD");
    CHECK(kld_on(QH_DEVICE_CUDA, &m, &fp, &ts, T, NW, &rg, &sg) == 0, "cuda KLD");
    CHECK(rg.ppl == r0.ppl, "cuda: perplexity with KLD %.17g == without %.17g", rg.ppl, r0.ppl);
    printf("rtn w4 wikitext2 %d x %d: mean KLD cpu %.9f cuda %.9f; agreement %.6f / %.6f; RMS dp %.6f / %.6f\n", NW, T,
           sc.kld_mean, sg.kld_mean, sc.same_top, sg.same_top, sc.dp_rms, sg.dp_rms);
    CHECK_CLOSE(sg.kld_mean, sc.kld_mean, 1e-4, 0, "mean KLD cuda vs cpu");
    CHECK_CLOSE(sg.same_top, sc.same_top, 0, 1e-4 + 2.0 / sc.n, "agreement cuda vs cpu (up to two near-ties may flip)");
    CHECK_CLOSE(sg.dp_rms, sc.dp_rms, 1e-4, 0, "RMS dp cuda vs cpu");
    CHECK_CLOSE(sg.ln_ppl_ratio, sc.ln_ppl_ratio, 1e-4, 1e-7, "ln ppl ratio cuda vs cpu");
    ppl_result_free(&r0);
    ppl_result_free(&rc);
    ppl_result_free(&rg);
    free(xc);
    free(xg);
    free(lc);
    free(lg);
    model_free(&fp);
    token_stream_free(&ts);
    tokenizer_free(&tok);
    model_free(&m);
    return test_summary();
}
