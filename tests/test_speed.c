/* test_speed.c: the speed table's measurement and storage (harness/eval/
 * speed.h, harness/experiment/speed_run.h) against independent expectations.
 *
 * 1. speed_setups_parse and speed_resolve_prefix: the paper's 1024-token
 *    prefix for a long model, the context less the generated tokens for a
 *    short one (with the note), a prefix or a generation longer than the
 *    context refused by name.
 * 2. speed_layer_shapes: LLaMA-7B's three shapes, a GQA model's four, Falcon-
 *    7B's four, in the family's order.
 * 3. speed_generation on a Forward double that records its calls: one
 *    warm-up run and `repeats` timed runs per setup, decode_reset(prefix +
 *    gen), the prefix decoded in one call (the same ids every run), then gen
 *    single steps from the start token each feeding the argmax of the step
 *    before; every run's tokens/s positive and the figure their median
 *    (recomputed here); a setup not asked is NAN.
 * 4. speed_matvec_us of the dense path: a positive time; a device
 *    PackedLinear refused by name.
 * 5. The table's HDF5 round trip (every field back exactly), the printed
 *    ratio to full precision, a file of another kind refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "forward.h"
#include "h5io.h"
#include "speed.h"
#include "speed_run.h"
#include "util.h"

static char dir[] = "/tmp/qh_speed_XXXXXX";

#define CAPTURE_CHECK_FAIL(call, want, what) CAPTURE_CHECK_FAIL_IN(dir, call, want, what)

static ModelConfig llama_cfg(int dim, int hidden, int heads, int kv_heads, int seq_len) {
    return (ModelConfig){.arch = ARCH_ID_LLAMA, .dim = dim, .hidden_dim = hidden, .n_layers = 2, .n_heads = heads,
                         .n_kv_heads = kv_heads, .vocab_size = 32000, .seq_len = seq_len};
}

/* ---- 1 --------------------------------------------------------------------------- */

static void test_parse(void) {
    unsigned s = 99;
    CHECK(speed_setups_parse("scratch", "x", &s) == 0 && s == 1u << SPEED_SCRATCH, "scratch: %u", s);
    CHECK(speed_setups_parse("prefix, scratch", "x", &s) == 0 && s == 3u, "both: %u", s);
    CAPTURE_CHECK_FAIL(speed_setups_parse("scratch,warm", "speed: --setups", &s),
                       "speed: --setups: unknown setup 'warm' (expected scratch, prefix)", "an unknown setup");
    CAPTURE_CHECK_FAIL(speed_setups_parse(" , ", "speed: --setups", &s), "speed: --setups: no setup named",
                       "an empty list");

    ModelConfig c7 = llama_cfg(4096, 11008, 32, 32, 2048), c260 = llama_cfg(64, 172, 8, 4, 512);
    int p = -7;
    char note[256];
    CHECK(speed_resolve_prefix(&c7, 100, -1, "x", &p, note, sizeof note) == 0 && p == 1024 && !note[0],
          "a 2048-token model: the paper's 1024 (got %d, note '%s')", p, note);
    CHECK(speed_resolve_prefix(&c260, 100, -1, "x", &p, note, sizeof note) == 0 && p == 412 &&
              strstr(note, "context 512 less 100 generated"),
          "a 512-token model: 412, said (got %d, note '%s')", p, note);
    CHECK(speed_resolve_prefix(&c260, 100, 412, "x", &p, note, sizeof note) == 0 && p == 412 && !note[0],
          "a prefix that just fits: %d", p);
    CHECK(speed_resolve_prefix(&c260, 100, 0, "x", &p, note, sizeof note) == 0 && p == 0, "prefix 0: %d", p);
    CAPTURE_CHECK_FAIL(speed_resolve_prefix(&c260, 100, 413, "speed: --prefix", &p, note, sizeof note),
                       "speed: --prefix: a prefix of 413 tokens and 100 generated exceed the model's context of 512 "
                       "(seq_len); at most 412",
                       "a prefix one token too long");
    CAPTURE_CHECK_FAIL(speed_resolve_prefix(&c260, 512, -1, "speed: --prefix", &p, note, sizeof note),
                       "512 generated tokens do not fit the model's context of 512", "a generation as long as the context");
}

/* ---- 2 --------------------------------------------------------------------------- */

/* qh_median (base/util.c), what the speed figures report: the middle value,
 * the mean of the two middle ones for an even count, the input untouched */
static void test_median(void) {
    const double odd[] = {3, 1, 2}, one[] = {7.5};
    double even[] = {4, -1, 3, 2};
    double copy[4];
    memcpy(copy, even, sizeof even);
    CHECK(qh_median(odd, 3) == 2, "median of 3, 1, 2: %g", qh_median(odd, 3));
    CHECK(qh_median(even, 4) == 2.5, "median of 4, -1, 3, 2: %g", qh_median(even, 4));
    CHECK(qh_median(one, 1) == 7.5, "median of one value: %g", qh_median(one, 1));
    CHECK(!memcmp(copy, even, sizeof even), "qh_median left its input as it was");
}

static void test_shapes(void) {
    int out[LIN_COUNT], in[LIN_COUNT], kind[LIN_COUNT];
    ModelConfig c7 = llama_cfg(4096, 11008, 32, 32, 2048);
    int n = speed_layer_shapes(&c7, out, in, kind);
    CHECK(n == 3 && out[0] == 4096 && in[0] == 4096 && kind[0] == LIN_Q && out[1] == 11008 && in[1] == 4096 &&
              kind[1] == LIN_GATE && out[2] == 4096 && in[2] == 11008 && kind[2] == LIN_DOWN,
          "LLaMA-7B: %d shapes (%dx%d k%d, %dx%d k%d, %dx%d k%d)", n, out[0], in[0], kind[0], out[1], in[1], kind[1],
          out[2], in[2], kind[2]);
    ModelConfig g = llama_cfg(4096, 14336, 32, 8, 8192); /* Llama-3-8B's block */
    n = speed_layer_shapes(&g, out, in, kind);
    CHECK(n == 4 && out[1] == 1024 && in[1] == 4096 && kind[1] == LIN_K && out[2] == 14336 && out[3] == 4096 &&
              in[3] == 14336,
          "GQA: %d shapes (second %dx%d)", n, out[1], in[1]);
    ModelConfig f = {.arch = ARCH_ID_FALCON, .dim = 4544, .hidden_dim = 18176, .n_layers = 2, .n_heads = 71,
                     .n_kv_heads = 1, .vocab_size = 65024, .seq_len = 2048};
    n = speed_layer_shapes(&f, out, in, kind);
    CHECK(n == 4 && out[0] == 4544 + 2 * 64 && in[0] == 4544 && out[1] == 4544 && in[1] == 4544 && out[2] == 18176 &&
              out[3] == 4544 && in[3] == 18176,
          "Falcon-7B: %d shapes (%dx%d, %dx%d, %dx%d, %dx%d)", n, out[0], in[0], out[1], in[1], out[2], in[2], out[3],
          in[3]);
}

/* ---- 3: a Forward double that records what speed_generation asks -------------------- */

#define REC_MAX 4096
typedef struct Rec {
    Forward base;
    int resets, reset_len[64];
    int calls, call_n[REC_MAX], call_tok[REC_MAX], call_pos[REC_MAX];
    unsigned long prefix_hash[64];
    int nprefix;
    int bad_feed; /* a step fed something other than the previous step's argmax */
    int last_argmax;
} Rec;

static int rec_argmax_at(int pos) { return (pos * 7 + 3) % 16; } /* the logits' peak after position pos */

static int rec_reset(Forward *f, int max_len) {
    Rec *r = (Rec *)f;
    if (r->resets < 64) r->reset_len[r->resets] = max_len;
    r->resets++;
    f->dec_len = max_len;
    f->dec_pos = 0;
    r->last_argmax = -1;
    return 0;
}
static int rec_decode(Forward *f, const int *tokens, int n, float *logits) {
    Rec *r = (Rec *)f;
    if (forward_decode_check(f, tokens, n) != 0) return -1;
    if (r->calls < REC_MAX) {
        r->call_n[r->calls] = n;
        r->call_tok[r->calls] = tokens[0];
        r->call_pos[r->calls] = f->dec_pos;
    }
    r->calls++;
    if (n > 1 && r->nprefix < 64) {
        unsigned long h = 1469598103934665603ul;
        for (int i = 0; i < n; i++) h = (h ^ (unsigned long)tokens[i]) * 1099511628211ul;
        r->prefix_hash[r->nprefix++] = h;
    }
    if (n == 1 && r->last_argmax >= 0 && tokens[0] != r->last_argmax) r->bad_feed++;
    f->dec_pos += n;
    for (int i = 0; i < 16; i++) logits[i] = (float)-i;
    int peak = rec_argmax_at(f->dec_pos);
    logits[peak] = 100;
    r->last_argmax = n == 1 ? peak : -1; /* the first step after the prefix is the start token */
    return 0;
}
static void rec_destroy(Forward *f) { (void)f; }
static const ForwardOps rec_ops = {.name = "recorder", .destroy = rec_destroy, .decode_reset = rec_reset,
                                   .decode = rec_decode};

static double median_of(const double *v, int n) {
    double s[SPEED_MAX_REPEATS];
    memcpy(s, v, sizeof(double) * n);
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1], s[j - 1] = t;
        }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void test_generation(void) {
    Model m;
    memset(&m, 0, sizeof m);
    m.cfg = llama_cfg(64, 172, 8, 4, 512);
    m.cfg.vocab_size = 16;
    for (int both = 0; both < 2; both++) {
        Rec *r = qh_calloc(1, sizeof *r);
        r->base.ops = &rec_ops;
        r->base.model = &m;
        SpeedSpec s = {.setups = both ? 3u : 1u << SPEED_PREFIX, .gen = 5, .prefix = 40, .repeats = both ? 4 : 3};
        SpeedTimes t;
        int rc = speed_generation(&r->base, &s, 1, &t);
        CHECK(rc == 0, "speed_generation on the recorder");
        int runs = (s.repeats + 1) * (both ? 2 : 1); /* a warm-up run each setup */
        CHECK(r->resets == runs, "%d decode_reset calls, expected %d", r->resets, runs);
        int calls_prefix = 1 + s.gen, calls_scratch = s.gen;
        int want_calls = (s.repeats + 1) * (calls_prefix + (both ? calls_scratch : 0));
        CHECK(r->calls == want_calls && r->bad_feed == 0, "%d decode calls (expected %d), %d steps not fed the argmax",
              r->calls, want_calls, r->bad_feed);
        /* the call sequence: scratch runs first (when asked), then prefix runs */
        int c = 0, ri = 0, ok = 1;
        for (int su = 0; su < SPEED_NSETUPS; su++) {
            if (!(s.setups & (1u << su))) continue;
            int np = su == SPEED_PREFIX ? s.prefix : 0;
            for (int run = 0; run <= s.repeats; run++, ri++) {
                ok &= r->reset_len[ri] == np + s.gen;
                if (np) ok &= r->call_n[c] == np && r->call_pos[c] == 0, c++;
                for (int i = 0; i < s.gen; i++, c++)
                    ok &= r->call_n[c] == 1 && r->call_pos[c] == np + i &&
                          r->call_tok[c] == (i == 0 ? 1 : rec_argmax_at(np + i));
            }
        }
        CHECK(ok, "the call sequence: reset(prefix + gen), the prefix at once, then gen steps from the start token");
        int same = r->nprefix == s.repeats + 1;
        for (int i = 1; i < r->nprefix; i++) same &= r->prefix_hash[i] == r->prefix_hash[0];
        CHECK(same, "the same prefix ids in every run (%d prefills)", r->nprefix);
        for (int su = 0; su < SPEED_NSETUPS; su++) {
            if (!(s.setups & (1u << su))) {
                CHECK(isnan(t.tok_s[su]), "setup %s not asked: %g", speed_setup_names[su], t.tok_s[su]);
                continue;
            }
            int pos = 1;
            for (int i = 0; i < s.repeats; i++) pos &= t.runs[su][i] > 0 && isfinite(t.runs[su][i]);
            CHECK(pos, "setup %s: every run's tokens/s positive", speed_setup_names[su]);
            CHECK(t.tok_s[su] == median_of(t.runs[su], s.repeats), "setup %s: %g is not the median of its runs (%g)",
                  speed_setup_names[su], t.tok_s[su], median_of(t.runs[su], s.repeats));
        }
        free(r);
    }
    /* repeats outside 1..SPEED_MAX_REPEATS refused by name */
    Rec *r = qh_calloc(1, sizeof *r);
    r->base.ops = &rec_ops;
    r->base.model = &m;
    SpeedSpec s = {.setups = 1u << SPEED_SCRATCH, .gen = 5, .prefix = 0, .repeats = 0};
    SpeedTimes t;
    CAPTURE_CHECK_FAIL(speed_generation(&r->base, &s, 1, &t), "speed: 0 repeats", "0 repeats");
    free(r);
}

/* ---- 4 --------------------------------------------------------------------------- */

static int dev_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) { return 0; }
static void dev_destroy(PackedLinear *p) { (void)p; }
static const PackedLinearOps dev_ops = {"device-double", dev_matmul, dev_destroy};

static void test_matvec(void) {
    int out = 96, in = 80;
    float *W = qh_malloc(sizeof(float) * out * in);
    for (int i = 0; i < out * in; i++) W[i] = (float)(i % 13) - 6;
    double us = -1;
    CHECK(speed_matvec_us(NULL, W, out, in, 3, &us) == 0 && us > 0 && isfinite(us), "the dense product: %g us", us);
    PackedLinear dev = {&dev_ops, out, in, PACKED_DEVICE, 100};
    CAPTURE_CHECK_FAIL(speed_matvec_us(&dev, NULL, out, in, 3, &us), "'device-double' (device memory)",
                       "a device PackedLinear");
    free(W);
}

/* ---- 5 --------------------------------------------------------------------------- */

static void fill_table(SpeedTable *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->model, sizeof t->model, "m.bin");
    snprintf(t->device, sizeof t->device, "cpu");
    snprintf(t->note, sizeof t->note, "a note");
    t->threads = 2;
    t->spec = (SpeedSpec){.setups = 3, .gen = 100, .prefix = 412, .repeats = 3};
    t->nshapes = 2;
    t->shape_out[0] = 64, t->shape_in[0] = 64, t->shape_out[1] = 172, t->shape_in[1] = 64;
    t->nvar = 2;
    t->var = qh_calloc(2, sizeof *t->var);
    const char *names[2] = {"full precision", "spqr w3 tau 0.2"}, *kern[2] = {"dense", "quant-avx2"};
    for (int v = 0; v < 2; v++) {
        SpeedVariant *x = &t->var[v];
        snprintf(x->name, sizeof x->name, "%s", names[v]);
        snprintf(x->method, sizeof x->method, v ? "spqr w3" : "fp32");
        snprintf(x->kernel, sizeof x->kernel, "%s", kern[v]);
        x->avg_bits = v ? 3.625 : 32;
        x->outlier_fraction = v ? 0.0123 : 0;
        for (int s = 0; s < SPEED_NSETUPS; s++) {
            for (int r = 0; r < 3; r++) x->t.runs[s][r] = 100.0 * (v ? 2.5 : 1) * (s ? 0.5 : 1) + r - 1;
            x->t.tok_s[s] = 100.0 * (v ? 2.5 : 1) * (s ? 0.5 : 1);
        }
        for (int i = 0; i < LIN_COUNT; i++) x->matvec_us[i] = x->matvec_bytes[i] = NAN;
        x->matvec_us[0] = v ? 2 : 4, x->matvec_bytes[0] = v ? 2000 : 16384;
        x->matvec_us[1] = v ? 5 : 10, x->matvec_bytes[1] = v ? 5000 : 44032;
    }
}

static void test_table(void) {
    SpeedTable a, b;
    fill_table(&a);
    char path[600], *argv0[] = {"test_speed"};
    qh_pathf(path, sizeof path, "%s/speed.h5", dir);
    CHECK(speed_table_write(path, &a, 1, argv0) == 0, "speed_table_write");
    int rc = speed_table_read(path, &b);
    CHECK(rc == 0, "speed_table_read");
    if (rc == 0) {
        int same = !strcmp(a.model, b.model) && !strcmp(a.device, b.device) && !strcmp(a.note, b.note) &&
                   a.threads == b.threads && a.spec.setups == b.spec.setups && a.spec.gen == b.spec.gen &&
                   a.spec.prefix == b.spec.prefix && a.spec.repeats == b.spec.repeats && a.nshapes == b.nshapes &&
                   a.nvar == b.nvar;
        for (int i = 0; same && i < a.nshapes; i++) same &= a.shape_out[i] == b.shape_out[i] && a.shape_in[i] == b.shape_in[i];
        for (int v = 0; same && v < a.nvar; v++) {
            const SpeedVariant *x = &a.var[v], *y = &b.var[v];
            same &= !strcmp(x->name, y->name) && !strcmp(x->method, y->method) && !strcmp(x->kernel, y->kernel) &&
                    x->avg_bits == y->avg_bits && x->outlier_fraction == y->outlier_fraction;
            for (int s = 0; s < SPEED_NSETUPS; s++) {
                same &= x->t.tok_s[s] == y->t.tok_s[s];
                for (int r = 0; r < 3; r++) same &= x->t.runs[s][r] == y->t.runs[s][r];
            }
            for (int i = 0; i < a.nshapes; i++)
                same &= x->matvec_us[i] == y->matvec_us[i] && x->matvec_bytes[i] == y->matvec_bytes[i];
        }
        CHECK(same, "every field of the table back exactly");
        char *txt = NULL;
        size_t n = 0;
        FILE *mem = open_memstream(&txt, &n);
        speed_table_print(&b, mem);
        fclose(mem);
        /* 250 / 100 = 2.50 scratch, 125 / 50 = 2.50 prefix; matvec 4 / 2 = 2.00 at 1.0 GB/s */
        CHECK(strstr(txt, "| full precision | fp32 | dense | 32.00 | 100.0 | 1.00 | 50.0 | 1.00 |") &&
                  strstr(txt, "| spqr w3 tau 0.2 | spqr w3 | quant-avx2 | 3.62 | 250.0 | 2.50 | 125.0 | 2.50 |") &&
                  strstr(txt, "| 64 x 64 | 4.00 (4.1; 1.00) | 2.00 (1.0; 2.00) |") &&
                  strstr(txt, "after a 412-token prefix (a note)"),
              "the printed table:\n%s", txt);
        free(txt);
        speed_table_free(&b);
    }
    /* only the scratch setup: the prefix columns left out */
    a.spec.setups = 1u << SPEED_SCRATCH;
    char *txt = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&txt, &n);
    speed_table_print(&a, mem);
    fclose(mem);
    CHECK(strstr(txt, "| scratch tok/s | x fp |\n") && !strstr(txt, "prefix tok/s"), "scratch only:\n%s", txt);
    free(txt);
    speed_table_free(&a);
    /* another kind of file */
    H5File *f;
    qh_pathf(path, sizeof path, "%s/other.h5", dir);
    CHECK(h5_create(path, &f) == 0 && h5_attr_str(f, "/", "kind", "point") == 0 && h5_commit(&f) == 0, "other.h5");
    CAPTURE_CHECK_FAIL(speed_table_read(path, &b), "is a 'point' file, not a speed table", "another kind of file");
    unlink(path);
    qh_pathf(path, sizeof path, "%s/speed.h5", dir);
    unlink(path);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    test_parse();
    test_median();
    test_shapes();
    test_generation();
    test_matvec();
    test_table();
    char p[600];
    qh_pathf(p, sizeof p, "%s/stderr.txt", dir);
    unlink(p);
    rmdir(dir);
    return test_summary();
}
