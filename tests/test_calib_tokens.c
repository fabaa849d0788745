/* test_calib_tokens.c: calibration from token files, `tokens:PATH` (tokfile.c,
 * datasets.c dataset_calib, calibrate.c).
 *
 * - tokfile_read on files written here byte by byte: .npy int64 (N, T),
 *   int32 (T,), format version 2, raw int32; refused with the file and what
 *   was expected: no magic, float and big-endian dtypes, Fortran order, 3-D,
 *   data shorter than the shape, a raw file of odd length, an int64 value
 *   outside int32 (its element index named).
 * - dataset_calib: the first nsamples rows of an (N, T) file, a stream cut
 *   into consecutive windows; a row length other than seqlen, too few rows and
 *   too few ids refused.
 * - Hessians: stories260K quantized with GPTQ on c4 (text path, 4 windows of 64
 *   tokens), then on tokens:W.npy holding exactly those windows' ids, (4, 64)
 *   int64, and on the same ids as one int32 stream: every sub-layer's Hessian
 *   is bit-for-bit the text path's, and so are the quantized weights' proxy
 *   losses.
 * - An id outside the model's vocabulary (600 of 512) is refused before any
 *   work, naming the file, the id and its element.
 * Needs data/ for the Hessian part (stories260K and the C4 slice). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "check.h"
#include "datasets.h"
#include "tokfile.h"
#include "util.h"

static char tmpdir[64];
#include "capture.h"
#define cap_begin() cap_begin_in(tmpdir)

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

/* A .npy file: header dict text padded to a multiple of 64 bytes, then data. */
static void write_npy(const char *path, int version, const char *descr, const char *fortran, const char *shape,
                      const void *data, size_t bytes) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
    size_t pre = version == 1 ? 10 : 12, hl = (size_t)n + 1;
    while ((pre + hl) % 64) hl++;
    FILE *f = fopen(path, "wb");
    fwrite("\x93NUMPY", 1, 6, f);
    fputc(version, f);
    fputc(0, f);
    for (int k = 0; k < (version == 1 ? 2 : 4); k++) fputc((int)((hl >> (8 * k)) & 0xff), f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t k = (size_t)n; k + 1 < hl; k++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static char *tpath(const char *name) {
    static char p[8][700];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void expect_read_error(const char *path, const char *what, const char *pat) {
    TokenFile t;
    cap_begin();
    int rc = tokfile_read(path, &t);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, path) && strstr(err, pat), "%s: rc %d, message '%s' (expected '%s')", what, rc, err, pat);
    free(err);
    if (rc == 0) tokfile_free(&t);
}

static void test_read(void) {
    int64_t a[6] = {1, 2, 3, 4, 5, 511};
    int32_t b[5] = {7, 8, 9, 10, 11};
    TokenFile t;
    write_npy(tpath("a.npy"), 1, "<i8", "False", "(2, 3)", a, sizeof a);
    CHECK(tokfile_read(tpath("a.npy"), &t) == 0 && t.ndim == 2 && t.rows == 2 && t.cols == 3 && t.ids[5] == 511 &&
              t.ids[0] == 1 && !strcmp(t.format, "npy <i8 (2, 3)"),
          "int64 (2, 3): ndim %d rows %lld cols %lld format '%s'", t.ndim, (long long)t.rows, (long long)t.cols, t.format);
    tokfile_free(&t);
    write_npy(tpath("b.npy"), 2, "<i4", "False", "(5,)", b, sizeof b);
    CHECK(tokfile_read(tpath("b.npy"), &t) == 0 && t.ndim == 1 && t.cols == 5 && t.ids[4] == 11,
          "int32 (5,), format version 2");
    tokfile_free(&t);
    write_bytes(tpath("b.i32"), b, sizeof b);
    CHECK(tokfile_read(tpath("b.i32"), &t) == 0 && t.ndim == 1 && t.cols == 5 && t.ids[2] == 9 &&
              !strcmp(t.format, "raw int32 (5,)"),
          "raw int32");
    tokfile_free(&t);

    write_bytes(tpath("nomagic.npy"), b, sizeof b);
    expect_read_error(tpath("nomagic.npy"), "no magic", "NUMPY");
    write_npy(tpath("f4.npy"), 1, "<f4", "False", "(5,)", b, sizeof b);
    expect_read_error(tpath("f4.npy"), "float dtype", "'<f4'");
    write_npy(tpath("be.npy"), 1, ">i8", "False", "(2, 3)", a, sizeof a);
    expect_read_error(tpath("be.npy"), "big-endian dtype", "little-endian");
    write_npy(tpath("fo.npy"), 1, "<i8", "True", "(2, 3)", a, sizeof a);
    expect_read_error(tpath("fo.npy"), "Fortran order", "Fortran");
    write_npy(tpath("3d.npy"), 1, "<i8", "False", "(1, 2, 3)", a, sizeof a);
    expect_read_error(tpath("3d.npy"), "3-D", "(N, T)");
    write_npy(tpath("short.npy"), 1, "<i8", "False", "(2, 4)", a, sizeof a);
    expect_read_error(tpath("short.npy"), "data shorter than the shape", "need 64");
    write_bytes(tpath("odd.bin"), b, 7);
    expect_read_error(tpath("odd.bin"), "raw file of 7 bytes", "int32");
    int64_t big[3] = {5, 6, (int64_t)1 << 40};
    write_npy(tpath("big.npy"), 1, "<i8", "False", "(3,)", big, sizeof big);
    expect_read_error(tpath("big.npy"), "value beyond int32", "element 2");
}

static void test_windows(void) {
    int64_t a[4 * 8];
    for (int i = 0; i < 32; i++) a[i] = 100 + i;
    write_npy(tpath("w.npy"), 1, "<i8", "False", "(4, 8)", a, sizeof a);
    char name[800];
    snprintf(name, sizeof name, "tokens:%s", tpath("w.npy"));
    int *w = NULL;
    TokenStream info;
    int rc = dataset_calib(name, "/nonexistent", NULL, 3, 8, 99, &w, &info);
    int ok = rc == 0;
    for (int i = 0; ok && i < 24; i++) ok = w[i] == 100 + i;
    CHECK(ok, "(4, 8) file, 3 samples: the first 3 rows as given");
    CHECK(rc == 0 && info.is_train_data && !strcmp(info.source, tpath("w.npy")) && strstr(info.origin, "npy <i8 (4, 8)") &&
              strstr(info.rule, "first 3 of the file's 4 windows"),
          "provenance: source '%s' origin '%s' rule '%s'", info.source, info.origin, info.rule);
    free(w);
    if (rc == 0) token_stream_free(&info);
    /* the stream form: consecutive windows from the start */
    cap_begin();
    rc = dataset_calib(name, "/nonexistent", NULL, 2, 4, 0, &w, &info);
    free(cap_end());
    CHECK(rc == -1, "an (N, 8) file with seqlen 4 is refused, not cut");
    write_npy(tpath("s.npy"), 1, "<i8", "False", "(32,)", a, sizeof a);
    snprintf(name, sizeof name, "tokens:%s", tpath("s.npy"));
    rc = dataset_calib(name, "/nonexistent", NULL, 3, 10, 0, &w, &info);
    ok = rc == 0;
    for (int i = 0; ok && i < 30; i++) ok = w[i] == 100 + i;
    CHECK(ok, "(32,) stream, 3 windows of 10: consecutive from the start");
    free(w);
    if (rc == 0) token_stream_free(&info);

    struct { const char *file; int ns, sl; const char *pat; } bad[] = {
        {"w.npy", 2, 6, "windows of 8 tokens"}, {"w.npy", 5, 8, "holds 4 windows"}, {"s.npy", 4, 10, "fewer than nsamples x seqlen"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(name, sizeof name, "tokens:%s", tpath(bad[k].file));
        cap_begin();
        rc = dataset_calib(name, "/nonexistent", NULL, bad[k].ns, bad[k].sl, 0, &w, &info);
        char *err = cap_end();
        CHECK(rc == -1 && strstr(err, bad[k].pat) && strstr(err, tpath(bad[k].file)), "%s %d x %d: rc %d '%s'", bad[k].file,
              bad[k].ns, bad[k].sl, rc, err);
        free(err);
    }
    cap_begin();
    rc = dataset_calib("tokens:/nonexistent/x.npy", "/nonexistent", NULL, 1, 8, 0, &w, &info);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, "/nonexistent/x.npy") && strstr(err, "missing"), "missing tokens file: '%s'", err);
    free(err);
}

/* ---- Hessians: tokens: against the text path ------------------------------------------------ */

typedef struct { double *h; size_t n, cap; int calls; } Hs;

static int keep_hessian(void *user, int layer, LinearKind kind, const double *H, int n) {
    Hs *s = user;
    size_t add = (size_t)n * n;
    if (s->n + add > s->cap) {
        s->cap = (s->n + add) * 2;
        s->h = realloc(s->h, s->cap * sizeof(double));
    }
    memcpy(s->h + s->n, H, add * sizeof(double));
    s->n += add;
    s->calls++;
    return 0;
}

static int run(Model *m, const Tokenizer *t, const char *calib, Hs *hs, double *proxy) {
    QuantRunSpec s = {.method = "gptq", .calib = calib, .nsamples = 4, .seqlen = 64, .seed = 0, .data_root = root(),
                      .device = QH_DEVICE_CPU, .hessian_done = keep_hessian, .hessian_user = hs};
    quant_params_default(&s.params, "gptq");
    s.params.wbits = 3;
    QuantRun r;
    int rc = quantize_model(m, t, &s, &r);
    if (rc == 0) {
        *proxy = r.total_proxy_loss;
        quant_run_free(&r);
    }
    return rc;
}

static void test_hessians(void) {
    char mp[1024], tp[1024];
    snprintf(mp, sizeof mp, "%s/models/stories260K/stories260K.bin", root());
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root());
    Tokenizer tok;
    Model m;
    if (access(mp, R_OK) != 0 || tokenizer_load(&tok, tp, 512) != 0) {
        SKIP("stories260K not under the data root (make data)");
        return;
    }
    /* the text path's windows, as ids */
    int *w;
    TokenStream info;
    if (dataset_calib("c4", root(), &tok, 4, 64, 0, &w, &info) != 0) {
        CHECK(0, "c4 calibration windows");
        tokenizer_free(&tok);
        return;
    }
    token_stream_free(&info);
    int64_t w64[4 * 64];
    for (int i = 0; i < 256; i++) w64[i] = w[i];
    write_npy(tpath("calib.npy"), 1, "<i8", "False", "(4, 64)", w64, sizeof w64);
    write_npy(tpath("stream.npy"), 1, "<i4", "False", "(256,)", w, sizeof(int) * 256);
    char n2[800], n1[800];
    snprintf(n2, sizeof n2, "tokens:%s", tpath("calib.npy"));
    snprintf(n1, sizeof n1, "tokens:%s", tpath("stream.npy"));
    const char *names[3] = {"c4", n2, n1};
    Hs hs[3] = {{0}};
    double proxy[3] = {0};
    for (int k = 0; k < 3; k++) {
        if (model_load_llama2c(&m, mp) != 0) break;
        CHECK(run(&m, &tok, names[k], &hs[k], &proxy[k]) == 0, "quantize with calibration %s", names[k]);
        model_free(&m);
    }
    for (int k = 1; k < 3; k++) {
        CHECK(hs[k].calls == hs[0].calls && hs[k].calls > 0 && hs[k].n == hs[0].n &&
                  !memcmp(hs[k].h, hs[0].h, hs[0].n * sizeof(double)),
              "%s: %d Hessians (%zu values) not bit-equal to the text path's %d (%zu)", names[k], hs[k].calls, hs[k].n,
              hs[0].calls, hs[0].n);
        CHECK(proxy[k] == proxy[0], "%s: total proxy loss %.17g, text path %.17g", names[k], proxy[k], proxy[0]);
    }
    printf("tokens: calibration: %d Hessians (%zu values) bit-equal to the text path's; proxy loss %.6g\n", hs[0].calls,
           hs[0].n, proxy[0]);
    /* an id outside the vocabulary: refused before any work, naming the file, the id and its element */
    w64[64 + 37] = 600;
    write_npy(tpath("oov.npy"), 1, "<i8", "False", "(4, 64)", w64, sizeof w64);
    snprintf(n2, sizeof n2, "tokens:%s", tpath("oov.npy"));
    if (model_load_llama2c(&m, mp) == 0) {
        Hs none = {0};
        double p;
        cap_begin();
        int rc = run(&m, &tok, n2, &none, &p);
        char *err = cap_end();
        CHECK(rc != 0 && none.calls == 0 && strstr(err, tpath("oov.npy")) && strstr(err, "token id 600") &&
                  strstr(err, "element 101") && strstr(err, "vocabulary of 512"),
              "out-of-vocabulary id: rc %d, %d Hessians, message '%s'", rc, none.calls, err);
        free(err);
        free(none.h);
        model_free(&m);
    }
    for (int k = 0; k < 3; k++) free(hs[k].h);
    free(w);
    tokenizer_free(&tok);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qh_tok_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_read();
    test_windows();
    test_hessians();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
