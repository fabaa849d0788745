/* test_awq.c: AWQ (quant/awq.c, harness/calib/awq_search.c).
 * - One layer: the codes of W with scales s are RTN's codes of W diag(s), and
 *   the decoded weights are those divided column by column by s (computed
 *   here from quantize_layer_ref("rtn")); s = 1 is RTN bit for bit; the
 *   clipping search does not raise the layer's output error on its tokens
 *   (per group it cannot; across groups not on this sample); bad
 *   scales and inputs are refused by name.
 * - stories260K, 3 bits in groups of 32: per block, the output error of the
 *   AWQ block against the full-precision block, on the full-precision model's
 *   block inputs of held-out TinyStories windows, is no worse than that of
 *   the block quantized by plain RTN on the same grid (printed per block),
 *   and strictly better in total; ratio 0 alone (awq_grid 1, clipping off)
 *   is plain RTN exactly (codes, statistics, decoded weights, scales 1);
 * - the scale vectors survive save / load bit for bit and give the same
 *   perplexity; a file whose scale vector is missing, of the wrong length,
 *   non-finite or not positive, or present in a layer of another method, is
 *   refused with the dataset named; the AWQ settings refuse values out of
 *   range by name.
 * Needs data/ (stories260K, c4, tinystories) for all but the layer tests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "cpu_ppl.h"
#include "datasets.h"
#include "h5io.h"
#include "half.h"
#include "perplexity.h"
#include "quant_io.h"
#include "stories_fixture.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

static unsigned long long rng_state = 12345;
static double urand(void) { /* xorshift64*, in [0, 1) */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static QuantParams awq_params(int wbits, int groupsize) {
    QuantParams p;
    quant_params_default(&p, "awq");
    p.wbits = wbits;
    p.groupsize = groupsize;
    return p;
}

/* sum over tokens of ||X (A - W)^T||^2: the layer's output error. X (T, n), A, W (m, n). */
static double out_err(const float *X, int T, const float *A, const float *W, int m, int n) {
    double e = 0.0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < m; r++) {
            double d = 0.0;
            for (int c = 0; c < n; c++) d += (double)X[(size_t)t * n + c] * ((double)A[(size_t)r * n + c] - W[(size_t)r * n + c]);
            e += d * d;
        }
    return e;
}

static void test_layer(void) {
    enum { M = 12, N = 48, T = 40 };
    float W[M * N], s[N], X[T * N], D[M * N], R[M * N];
    for (int i = 0; i < M * N; i++) W[i] = (float)(urand() * 2 - 1);
    for (int c = 0; c < N; c++) s[c] = (float)(0.25 + 3.0 * urand());
    for (int t = 0; t < T; t++)
        for (int c = 0; c < N; c++) X[t * N + c] = (float)((urand() * 2 - 1) * (c % 5 == 0 ? 8.0 : 1.0));
    for (int mode = 0; mode < 2; mode++) {
        QuantParams p = awq_params(3, 16);
        p.stats_dtype = mode ? QH_STATS_FP16 : QH_STATS_FP32;
        const char *dn = quant_stats_dtype_name(p.stats_dtype);
        float sk[N]; /* s as the layer keeps it */
        for (int c = 0; c < N; c++) sk[c] = mode ? qh_f16_to_f32(qh_f32_to_f16(s[c])) : s[c];
        float Wk[M * N];
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++) Wk[r * N + c] = W[r * N + c] * sk[c];
        QuantLayer qa, qr;
        CHECK(awq_quantize_layer(W, M, N, s, NULL, 0, &p, &qa, D) == 0, "awq layer (%s)", dn);
        CHECK(quantize_layer_ref("rtn", Wk, M, N, NULL, &p, &qr, R) == 0, "rtn of W diag(s) (%s)", dn);
        int same_codes = !memcmp(qa.codes, qr.codes, (size_t)M * N), same = 1, dec_same = 1;
        for (int c = 0; c < N; c++) same &= qa.in_scale && qa.in_scale[c] == sk[c];
        for (int i = 0; i < M * N; i++) same &= D[i] == R[i] / sk[i % N];
        float D2[M * N];
        quant_layer_dequantize(&qa, D2);
        for (int i = 0; i < M * N; i++) dec_same &= D2[i] == D[i];
        CHECK(same_codes && same && dec_same, "%s: codes %d, scales and W_deq = Q(W diag s) / s %d, decode %d", dn,
              same_codes, same, dec_same);
        quant_layer_free(&qa);
        quant_layer_free(&qr);
        /* s = 1 (NULL): RTN bit for bit */
        CHECK(awq_quantize_layer(W, M, N, NULL, NULL, 0, &p, &qa, D) == 0 &&
                  quantize_layer_ref("rtn", W, M, N, NULL, &p, &qr, R) == 0,
              "awq / rtn with s = 1");
        CHECK(!memcmp(qa.codes, qr.codes, (size_t)M * N) && !memcmp(D, R, sizeof D), "%s: s = 1 is RTN bit for bit", dn);
        quant_layer_free(&qa);
        quant_layer_free(&qr);
        /* clipping on these tokens: each (row, group) keeps its smallest error and shrink 1 is in the
         * grid, so the row's error rises only through cross-group terms; not seen on this sample */
        CHECK(awq_quantize_layer(W, M, N, s, X, T, &p, &qa, D) == 0, "awq with clipping");
        double e_clip = out_err(X, T, D, W, M, N);
        CHECK(awq_quantize_layer(W, M, N, s, NULL, 0, &p, &qr, R) == 0, "awq without clipping");
        double e_plain = out_err(X, T, R, W, M, N);
        CHECK(e_clip <= e_plain * (1 + 1e-9), "%s: clipping raised the output error: %g > %g", dn, e_clip, e_plain);
        printf("layer %dx%d, %s: output error %.6g clipped, %.6g unclipped\n", M, N, dn, e_clip, e_plain);
        quant_layer_free(&qa);
        quant_layer_free(&qr);
    }
    /* bad scales and inputs, by name */
    QuantParams p = awq_params(3, 16);
    QuantLayer q;
    float bad[N];
    memcpy(bad, s, sizeof bad);
    const float vals[3] = {0.0f, -1.0f, NAN};
    for (int i = 0; i < 3; i++) {
        bad[7] = vals[i];
        cap_begin_in("/tmp");
        int rc = awq_quantize_layer(W, M, N, bad, NULL, 0, &p, &q, D);
        char *msg = cap_end();
        CHECK(rc != 0 && strstr(msg, "s[7]"), "scale %g refused: '%s'", (double)vals[i], msg);
        free(msg);
    }
    float Xb[T * N];
    memcpy(Xb, X, sizeof Xb);
    Xb[3 * N + 5] = INFINITY;
    cap_begin_in("/tmp");
    int rc = awq_quantize_layer(W, M, N, s, Xb, T, &p, &q, D);
    char *msg = cap_end();
    CHECK(rc != 0 && strstr(msg, "X[3][5]"), "non-finite clipping input refused: '%s'", msg);
    free(msg);
}

/* ---- stories260K ---- */

static QuantRunSpec awq_spec(int grid, int clip) {
    QuantRunSpec s = {.method = "awq", .calib = "c4", .nsamples = 16, .seqlen = 128, .seed = 0, .data_root = root(),
                      .device = QH_DEVICE_CPU};
    s.params = awq_params(3, 32);
    s.params.awq_grid = grid;
    s.params.awq_clip = clip;
    return s;
}

/* Replace every linear of m by plain RTN of its weights with p's grid (the
 * model's own weights are the originals). */
static int rtn_model(Model *m, const QuantParams *p) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < model_n_linears(&m->cfg); k++) {
            int rows, cols;
            model_linear_shape(&m->cfg, (LinearKind)k, &rows, &cols);
            float *D = qh_malloc(sizeof(float) * (size_t)rows * cols);
            QuantLayer q;
            int rc = quantize_layer_ref("rtn", m->w.blocks[l].lin[k], rows, cols, NULL, p, &q, D);
            quant_layer_free(&q);
            if (rc == 0) model_set_linear(m, l, (LinearKind)k, D);
            free(D);
            if (rc != 0) return -1;
        }
    return 0;
}

/* Per block l: err[l] = sum ||B_q(x) - B_fp(x)||^2 and ref[l] = sum ||B_fp(x)||^2
 * over nw windows of T tokens of ids, x the full-precision model's input of
 * block l. */
static int block_errors(const Model *fp, const Model *q, const int *ids, int nw, int T, double *err, double *ref) {
    Forward *ff = NULL, *fq = NULL;
    int L = fp->cfg.n_layers, D = fp->cfg.dim, rc = 0;
    if (forward_cpu_create(fp, T, &ff) != 0 || forward_cpu_create(q, T, &fq) != 0) rc = -1;
    float *x = qh_malloc(sizeof(float) * (size_t)T * D * 2), *y = x + (size_t)T * D; /* (T, D) each */
    for (int l = 0; l < L; l++) err[l] = ref[l] = 0.0;
    for (int w = 0; w < nw && rc == 0; w++) {
        rc = ff->ops->embed(ff, ids + (size_t)w * T, T, x);
        for (int l = 0; l < L && rc == 0; l++) {
            memcpy(y, x, sizeof(float) * (size_t)T * D);
            rc = fq->ops->block(fq, l, y, T, NULL, NULL);
            if (rc == 0) rc = ff->ops->block(ff, l, x, T, NULL, NULL);
            for (size_t i = 0; rc == 0 && i < (size_t)T * D; i++) {
                double d = (double)y[i] - x[i];
                err[l] += d * d, ref[l] += (double)x[i] * x[i];
            }
        }
    }
    free(x);
    forward_destroy(&ff);
    forward_destroy(&fq);
    return rc;
}

static int weights_equal(const Model *a, const Model *b) {
    for (int l = 0; l < a->cfg.n_layers; l++)
        for (int k = 0; k < model_n_linears(&a->cfg); k++) {
            int rows, cols;
            model_linear_shape(&a->cfg, (LinearKind)k, &rows, &cols);
            if (memcmp(a->w.blocks[l].lin[k], b->w.blocks[l].lin[k], sizeof(float) * (size_t)rows * cols)) return 0;
        }
    return 1;
}

static void test_blocks(const int *ids, size_t n, Model *awq_out, QuantRun *run_out) {
    Model fp, aq, rq;
    Tokenizer t;
    if (stories_open(&fp, &t) != 0 || stories_open(&aq, NULL) != 0 || stories_open(&rq, NULL) != 0) {
        SKIP("stories260K not found under QH_DATA");
        return;
    }
    QuantRunSpec s = awq_spec(20, 1);
    QuantRun run;
    CHECK(quantize_model(&aq, &t, &s, &run) == 0, "awq 3-bit g32 of stories260K");
    CHECK(rtn_model(&rq, &s.params) == 0, "plain RTN on AWQ's grid");
    const int L = fp.cfg.n_layers, T = 128, nw = 8;
    double ea[64], ra[64], er[64], rr[64], ta = 0, tr = 0;
    CHECK(n >= (size_t)nw * T, "%zu held-out tokens", n);
    CHECK(block_errors(&fp, &aq, ids, nw, T, ea, ra) == 0 && block_errors(&fp, &rq, ids, nw, T, er, rr) == 0,
          "block errors");
    int worse = 0;
    printf("block  rel. output error: awq      rtn      (awq / rtn)   ratios q/k/v, o, gate/up, down\n");
    for (int l = 0; l < L; l++) {
        double a = sqrt(ea[l] / ra[l]), r = sqrt(er[l] / rr[l]);
        printf("%5d  %24.6f %8.6f (%.3f)       %.2f %.2f %.2f %.2f\n", l, a, r, a / r, run.awq_ratio[l * LIN_COUNT + LIN_Q],
               run.awq_ratio[l * LIN_COUNT + LIN_O], run.awq_ratio[l * LIN_COUNT + LIN_GATE],
               run.awq_ratio[l * LIN_COUNT + LIN_DOWN]);
        worse += !(ea[l] <= er[l]);
        ta += ea[l], tr += er[l];
    }
    CHECK(worse == 0, "%d blocks where AWQ's output error is above plain RTN's", worse);
    CHECK(ta < tr, "total squared block output error: awq %g, rtn %g", ta, tr);
    /* AWQ's bits: RTN's plus one 32-bit scale per input column of each layer */
    double want = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < model_n_linears(&fp.cfg); k++) {
            int rows, cols;
            model_linear_shape(&fp.cfg, (LinearKind)k, &rows, &cols);
            want += (double)rows * cols * (quant_bits_formula_n(&s.params, cols, 0) + 32.0 / rows);
        }
    CHECK_CLOSE(run.avg_bits, want / (double)run.params, 1e-12, 0, "avg bits with the scale vectors");
    double p_fp = cpu_ppl(&fp, ids, n, 128, 8), p_awq = cpu_ppl(&aq, ids, n, 128, 8),
           p_rtn = cpu_ppl(&rq, ids, n, 128, 8);
    printf("tinystories ppl (8 windows of 128): fp %.4f, awq %.4f, rtn %.4f\n", p_fp, p_awq, p_rtn);
    CHECK(p_awq < p_rtn, "awq perplexity %g not below rtn's %g", p_awq, p_rtn);
    *awq_out = aq;
    *run_out = run;
    model_free(&fp);
    model_free(&rq);
    tokenizer_free(&t);
}

/* Both NULL, or both set and equal over n bytes. */
static int same_arr(const void *a, const void *b, size_t n) { return (!a && !b) || (a && b && !memcmp(a, b, n)); }

/* awq_grid 1 with clipping off: the search's ratio 0 only, s = 1: RTN exactly. */
static void test_ratio0(void) {
    Model aq, rq;
    Tokenizer t;
    if (stories_open(&aq, &t) != 0 || stories_open(&rq, NULL) != 0) {
        SKIP("stories260K not found under QH_DATA");
        return;
    }
    QuantRunSpec s = awq_spec(1, 0);
    QuantRun run;
    CHECK(quantize_model(&aq, &t, &s, &run) == 0, "awq grid 1, no clipping");
    int scales_one = 1, layers_same = 1;
    for (int l = 0; l < aq.cfg.n_layers; l++)
        for (int k = 0; k < model_n_linears(&aq.cfg); k++) {
            const QuantLayer *q = &run.layers[l * LIN_COUNT + k];
            for (int c = 0; c < q->n; c++) scales_one &= q->in_scale && q->in_scale[c] == 1.0f;
            scales_one &= run.awq_ratio[l * LIN_COUNT + k] == 0.0;
            QuantLayer r;
            quantize_layer_ref("rtn", rq.w.blocks[l].lin[k], q->m, q->n, NULL, &s.params, &r, NULL);
            int gs = s.params.groupsize > 0 ? s.params.groupsize : q->n, ng = (q->n + gs - 1) / gs;
            size_t nst = (size_t)q->m * ng;
            layers_same &= !memcmp(q->codes, r.codes, (size_t)q->m * q->n) &&
                           same_arr(q->scale_fp, r.scale_fp, sizeof(float) * nst) &&
                           same_arr(q->zero_fp, r.zero_fp, sizeof(float) * nst) &&
                           same_arr(q->scale_codes, r.scale_codes, nst) && same_arr(q->zero_codes, r.zero_codes, nst);
            quant_layer_free(&r);
        }
    CHECK(scales_one, "ratio 0: every scale is 1 and every ratio recorded 0");
    CHECK(layers_same, "ratio 0: codes and statistics equal plain RTN's");
    CHECK(rtn_model(&rq, &s.params) == 0 && weights_equal(&aq, &rq), "ratio 0: decoded weights equal plain RTN's");
    quant_run_free(&run);
    model_free(&aq);
    model_free(&rq);
    tokenizer_free(&t);
}

/* A copy of good with dataset p replaced by n float32 values v (n 0: deleted). */
static int edit(const char *good, const char *path, const char *p, const float *v, int64_t n) {
    char *d;
    size_t nb;
    H5File *f;
    if (qh_read_file(good, &d, &nb) != 0) return -1;
    int rc = qh_write_file_atomic(path, d, nb);
    free(d);
    if (rc != 0 || h5_open_rw(path, &f) != 0) return -1;
    rc = h5_delete(f, p);
    if (rc == 0 && n > 0) rc = h5_write(f, p, H5T_QH_F32, v, n, 0);
    if (rc != 0) {
        h5_abort(&f);
        return -1;
    }
    return h5_commit(&f);
}

static void test_file(const Model *aq, const QuantRun *run, const int *ids, size_t n) {
    char dir[] = "/tmp/qh_awqXXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], bad[256], base[1024];
    snprintf(path, sizeof path, "%s/q.h5", dir);
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    snprintf(base, sizeof base, "%s/models/stories260K/stories260K.bin", root());
    QuantRunSpec s = awq_spec(20, 1);
    Provenance prov;
    char *argv0[] = {"test_awq"};
    provenance_collect(&prov, 1, argv0);
    CHECK(quant_model_save(path, aq, &s, run, &prov, "{}") == 0, "save %s", path);
    Model m2;
    QuantModelInfo info;
    CHECK(quant_model_load(path, base, NULL, -1, 0, &m2, NULL, &info) == 0, "load %s", path);
    CHECK(weights_equal(aq, &m2), "the reloaded AWQ model decodes to the in-memory weights bit for bit");
    double p1 = cpu_ppl(aq, ids, n, 128, 8), p2 = cpu_ppl(&m2, ids, n, 128, 8);
    CHECK(p1 == p2, "perplexity after reload %.17g, in memory %.17g", p2, p1);
    CHECK(!strcmp(info.method, "awq"), "method attribute '%s'", info.method);
    model_free(&m2);
    {
        H5File *f;
        QuantLayer q;
        CHECK(h5_open_read(path, &f) == 0 && quant_io_read_layer(f, "", 2, LIN_UP, &q) == 0,
              "read layer 2 w3");
        const QuantLayer *o = &run->layers[2 * LIN_COUNT + LIN_UP];
        CHECK(q.in_scale && !memcmp(q.in_scale, o->in_scale, sizeof(float) * (size_t)o->n),
              "layer 2 w3's scale vector round-trips");
        quant_layer_free(&q);
        h5_abort(&f);
    }
    /* bad scale vectors */
    float v[200];
    for (int i = 0; i < 200; i++) v[i] = 1.0f;
    const char *ds = "/layers/1/wq/in_scale_f32";
    struct {
        const char *what;
        int n;
        int at;
        float val;
        const char *want;
    } cases[] = {
        {"missing", 0, -1, 0, "has no in_scale_f32"},
        {"wrong length", 63, -1, 0, "has 63 elements, expected 64"},
        {"NaN", 64, 5, NAN, "in_scale_f32[5] = nan"},
        {"infinite", 64, 9, INFINITY, "in_scale_f32[9] = inf"},
        {"zero", 64, 0, 0.0f, "in_scale_f32[0] = 0"},
        {"negative", 64, 63, -2.0f, "in_scale_f32[63] = -2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].at >= 0) v[cases[i].at] = cases[i].val;
        int ok = edit(path, bad, ds, v, cases[i].n) == 0;
        if (cases[i].at >= 0) v[cases[i].at] = 1.0f;
        Model m3;
        cap_begin_in(dir);
        int rc = ok ? quant_model_load(bad, base, NULL, -1, 0, &m3, NULL, &info) : 0;
        char *msg = cap_end();
        CHECK(ok && rc != 0 && strstr(msg, cases[i].want) && strstr(msg, "bad.h5"), "scale vector %s: rc %d, '%s'",
              cases[i].what, rc, msg);
        free(msg);
        if (ok && rc == 0) model_free(&m3);
        unlink(bad);
    }
    /* a scale vector where the method has none: the layer relabelled rtn */
    {
        char *d;
        size_t nb;
        H5File *f = NULL;
        int ok = qh_read_file(path, &d, &nb) == 0 && qh_write_file_atomic(bad, d, nb) == 0 && h5_open_rw(bad, &f) == 0 &&
                 h5_attr_str(f, "/layers/0/w2", "method", "rtn") == 0 && h5_commit(&f) == 0;
        free(d);
        Model m3;
        cap_begin_in(dir);
        int rc = ok ? quant_model_load(bad, base, NULL, -1, 0, &m3, NULL, &info) : 0;
        char *msg = cap_end();
        CHECK(ok && rc != 0 && strstr(msg, "method rtn has no per input channel scales"), "rtn layer with scales: '%s'",
              msg);
        free(msg);
        if (ok && rc == 0) model_free(&m3);
        unlink(bad);
    }
    unlink(path);
    rmdir(dir);
}

static void test_settings(void) {
    struct {
        const char *name, *text, *want;
    } cases[] = {
        {"awq_grid", "0", "1..1000"},     {"awq_grid", "1001", "1..1000"}, {"awq_grid", "2.5", "1..1000"},
        {"awq_clip", "maybe", "off | on"}, {"awq_clip", "2", "off | on"},   {"awq_windows", "-1", "0..1000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const QuantSetting *q = quant_setting_find(cases[i].name);
        double v;
        char why[256] = "";
        CHECK(q && quant_setting_parse(q, cases[i].text, &v, why, sizeof why) != 0 && strstr(why, cases[i].want),
              "%s = %s refused: '%s'", cases[i].name, cases[i].text, why);
    }
    const QuantSetting *g = quant_setting_find("awq_grid");
    CHECK(g && quant_setting_used_by(g, quant_method_find("awq")) && !quant_setting_used_by(g, quant_method_find("gptq")),
          "awq_grid is AWQ's only");
    QuantParams p;
    quant_params_default(&p, "awq");
    CHECK(p.awq_grid == 20 && p.awq_clip == 1 && p.groupsize == 128 && p.awq_windows == 0,
          "AWQ's defaults: the reference's grid of 20, clipping, groups of 128");
}

int main(void) {
    test_layer();
    test_settings();
    test_ratio0();
    TokenStream ts;
    stories_dataset("tinystories", 128, &ts);
    if (ts.n >= 8 * 128) {
        Model aq;
        QuantRun run = {0};
        memset(&aq, 0, sizeof aq);
        test_blocks(ts.ids, 8 * 128, &aq, &run);
        if (run.layers) {
            test_file(&aq, &run, ts.ids, 8 * 128);
            quant_run_free(&run);
            model_free(&aq);
        }
    } else {
        SKIP("tinystories sample not found");
    }
    token_stream_free(&ts);
    return test_summary();
}
