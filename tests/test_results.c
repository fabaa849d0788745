/* test_results.c: the perplexity bookkeeping (perplexity.c), the HDF5 layer
 * (h5io.c) and the result-file schema (results.c).
 *
 * - perplexity_from_windows in closed form: window NLLs {1,2,3} give
 *   ppl = e^2 and ppl_stderr = e^2 * sqrt(var / n) with var = 1, n = 3.
 * - perplexity_eval on a random synthetic model: window count (max_windows,
 *   the remainder dropped), per-token NLLs equal to the backend's window_nll
 *   on each non-overlapping window, ppl by the SPEC 7 formula recomputed here.
 * - h5io: every element type at rank 1 and 2 (small, and chunked + deflated)
 *   round trips exactly; attributes (string, f64 incl. NaN/inf, i64 extremes,
 *   overwrite, type change); groups, exists, delete; atomic writes: an
 *   aborted new file leaves no file (nor temp file), an aborted rewrite or
 *   update leaves the existing file byte-identical; a committed update shows.
 * - results_write_header / results_write_eval read back (ppl attribute,
 *   nll dataset of shape (nwindows, seqlen - 1)), and the file passes
 *   `h5dump -H` when h5dump is installed.
 * Not here: the forward pass numerics (test_forward.c). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "h5io.h"
#include "model.h"
#include "perplexity.h"
#include "provenance.h"
#include "results.h"
#include "util.h"

static char tmpdir[64];

static uint64_t rs = 99;
static uint64_t rnext(void) {
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* quiet stderr around calls expected to fail */
static int saved_fd = -1;
static void mute(void) {
    fflush(stderr);
    saved_fd = dup(2);
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 2);
    close(fd);
}
static void unmute(void) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static int file_equals(const char *p, const char *data, size_t len) {
    char *b;
    size_t n;
    if (qh_read_file(p, &b, &n) != 0) return 0;
    int eq = n == len && !memcmp(b, data, n);
    free(b);
    return eq;
}

/* ---- perplexity ------------------------------------------------------------------ */

static void test_ppl_closed_form(void) {
    double w[3] = {1, 2, 3};
    PplResult r;
    memset(&r, 0, sizeof r);
    perplexity_from_windows(w, 3, &r);
    CHECK_CLOSE(r.mean_nll, 2.0, 1e-15, 0, "mean_nll of {1,2,3}");
    CHECK_CLOSE(r.ppl, exp(2.0), 1e-15, 0, "ppl of {1,2,3}");
    CHECK_CLOSE(r.ppl_stderr, exp(2.0) * sqrt(1.0 / 3.0), 1e-14, 0, "ppl_stderr of {1,2,3}");
    /* equal windows: zero stderr */
    double c[4] = {0.5, 0.5, 0.5, 0.5};
    perplexity_from_windows(c, 4, &r);
    CHECK(r.ppl_stderr == 0.0, "stderr of equal windows %g", r.ppl_stderr);
    CHECK_CLOSE(r.ppl, exp(0.5), 1e-15, 0, "ppl of equal windows");
    /* one window: the mean is defined, the standard error is not */
    perplexity_from_windows(w + 1, 1, &r);
    CHECK_CLOSE(r.ppl, exp(2.0), 1e-15, 0, "ppl of one window");
    CHECK(isnan(r.ppl_stderr), "stderr of one window is %g, expected NaN", r.ppl_stderr);
}

static Model g_model;

static void test_ppl_eval(void) {
    ModelConfig c = {.dim = 24, .hidden_dim = 41, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 53,
                     .seq_len = 32, .shared_classifier = 1};
    CHECK(model_synth(&g_model, &c, 3) == 0, "synth");
    Forward *f;
    const int SL = 16;
    CHECK(forward_cpu_create(&g_model, SL, &f) == 0, "forward");
    size_t n = 5 * SL + 7;
    int *ids = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) ids[i] = (int)(rnext() % 53);
    long maxw[3] = {3, 0, 10}, expect[3] = {3, 5, 5};
    for (int k = 0; k < 3; k++) {
        PplResult r;
        int rc = perplexity_eval(f, ids, n, SL, maxw[k], &r);
        CHECK(rc == 0, "perplexity_eval max_windows %ld", maxw[k]);
        if (rc) continue;
        CHECK(r.nwindows == expect[k] && r.ntokens == (long)n && r.seqlen == SL,
              "max_windows %ld: %ld windows, %ld tokens, seqlen %d", maxw[k], r.nwindows, r.ntokens, r.seqlen);
        /* each window on its own, non-overlapping, targets 1..seqlen-1 */
        double sum_scaled = 0;
        int bad = 0;
        double *nll = malloc(sizeof(double) * SL);
        for (long w = 0; w < r.nwindows; w++) {
            f->ops->window_nll(f, ids + w * SL, SL, nll);
            double s = 0;
            for (int t = 0; t < SL - 1; t++) {
                s += nll[t];
                bad += nll[t] != r.nll[w * (SL - 1) + t];
            }
            CHECK_CLOSE(r.window_nll[w], s / (SL - 1), 1e-14, 0, "window mean NLL");
            sum_scaled += s / (SL - 1) * SL; /* the reference: mean loss * seqlen */
        }
        CHECK(bad == 0, "%d per-token NLLs differ from window_nll on the windows", bad);
        double ppl = exp(sum_scaled / (r.nwindows * SL));
        CHECK_CLOSE(r.ppl, ppl, 1e-12, 0, "ppl = exp(sum(mean*seqlen) / (nwin*seqlen))");
        double m = log(ppl), var = 0;
        for (long w = 0; w < r.nwindows; w++) var += (r.window_nll[w] - m) * (r.window_nll[w] - m);
        var /= r.nwindows - 1;
        CHECK_CLOSE(r.ppl_stderr, ppl * sqrt(var / r.nwindows), 1e-10, 0, "ppl_stderr by the delta method");
        /* random tokens on a random model: ppl within a factor of a few of V */
        CHECK(r.ppl > 10 && r.ppl < 500, "ppl %g of a random model over 53 tokens", r.ppl);
        CHECK(r.seconds >= 0, "seconds %g", r.seconds);
        free(nll);
        ppl_result_free(&r);
        CHECK(r.nll == NULL && r.window_nll == NULL, "ppl_result_free nulls");
    }
    PplResult r;
    mute();
    int e1 = perplexity_eval(f, ids, n, 1, 0, &r);
    int e2 = perplexity_eval(f, ids, n, SL + 1, 0, &r);
    int e3 = perplexity_eval(f, ids, SL - 1, SL, 0, &r);
    unmute();
    CHECK(e1 == -1 && e2 == -1 && e3 == -1, "bad seqlen / short stream accepted: %d %d %d", e1, e2, e3);
    free(ids);
    forward_destroy(&f);
}

/* ---- h5io ------------------------------------------------------------------------ */

static void test_h5_types(void) {
    char p[256];
    snprintf(p, sizeof p, "%s/types.h5", tmpdir);
    H5File *f;
    CHECK(h5_create(p, &f) == 0, "h5_create");
    CHECK(access(p, F_OK) != 0, "the final file exists before commit");
    size_t sz[6] = {4, 8, 4, 8, 1, 2};
    H5QhType ty[6] = {H5T_QH_F32, H5T_QH_F64, H5T_QH_I32, H5T_QH_I64, H5T_QH_U8, H5T_QH_U16};
    /* shapes: (7), (3, 5), (70001) and (3, 5003): the last two chunked + deflated */
    int64_t shapes[4][2] = {{7, 0}, {3, 5}, {70001, 0}, {3, 5003}};
    void *bufs[6][4];
    for (int t = 0; t < 6; t++)
        for (int s = 0; s < 4; s++) {
            int64_t cnt = shapes[s][0] * (shapes[s][1] ? shapes[s][1] : 1);
            unsigned char *b = malloc((size_t)cnt * sz[t]);
            for (int64_t i = 0; i < cnt; i++) {
                uint64_t r = rnext();
                switch (ty[t]) {
                case H5T_QH_F32: ((float *)b)[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 200 - 100); break;
                case H5T_QH_F64: ((double *)b)[i] = (double)(r >> 11) / 9007199254740992.0 * 1e6 - 5e5; break;
                case H5T_QH_I32: ((int32_t *)b)[i] = (int32_t)(uint32_t)r; break;
                case H5T_QH_I64: ((int64_t *)b)[i] = (int64_t)r; break;
                case H5T_QH_U8: ((uint8_t *)b)[i] = (uint8_t)r; break;
                default: ((uint16_t *)b)[i] = (uint16_t)r; break;
                }
            }
            if (s == 0) { /* extremes */
                if (ty[t] == H5T_QH_F64) ((double *)b)[0] = NAN, ((double *)b)[1] = -INFINITY, ((double *)b)[2] = 5e-324;
                if (ty[t] == H5T_QH_F32) ((float *)b)[0] = -0.0f, ((float *)b)[1] = 1e-45f;
                if (ty[t] == H5T_QH_I64) ((int64_t *)b)[0] = INT64_MIN, ((int64_t *)b)[1] = INT64_MAX;
                if (ty[t] == H5T_QH_I32) ((int32_t *)b)[0] = INT32_MIN;
                if (ty[t] == H5T_QH_U16) ((uint16_t *)b)[0] = 65535;
                if (ty[t] == H5T_QH_U8) ((uint8_t *)b)[0] = 255;
            }
            bufs[t][s] = b;
            char name[64];
            snprintf(name, sizeof name, "/data/t%d/s%d", t, s);
            CHECK(h5_write(f, name, ty[t], b, shapes[s][0], shapes[s][1]) == 0, "write %s", name);
        }
    CHECK(h5_write(f, "/empty", H5T_QH_F32, NULL, 0, 0) == 0, "write an empty dataset");
    /* writing over an existing dataset is an error, not a silent replacement */
    mute();
    int dup = h5_write(f, "/data/t0/s0", H5T_QH_F32, bufs[0][0], 7, 0);
    unmute();
    CHECK(dup == -1, "second write of the same dataset returned %d", dup);
    CHECK(h5_commit(&f) == 0 && f == NULL, "commit");
    CHECK(access(p, F_OK) == 0, "committed file missing");
    CHECK(count_entries(tmpdir) == 1, "temp files left: %d entries in %s", count_entries(tmpdir), tmpdir);

    CHECK(h5_open_read(p, &f) == 0, "open_read");
    for (int t = 0; t < 6; t++)
        for (int s = 0; s < 4; s++) {
            char name[64];
            snprintf(name, sizeof name, "/data/t%d/s%d", t, s);
            void *got = NULL;
            int64_t d0 = -1, d1 = -1;
            int rc = h5_read(f, name, ty[t], &got, &d0, &d1);
            int64_t cnt = shapes[s][0] * (shapes[s][1] ? shapes[s][1] : 1);
            CHECK(rc == 0 && d0 == shapes[s][0] && d1 == shapes[s][1], "%s: rc %d shape (%lld, %lld)", name, rc,
                  (long long)d0, (long long)d1);
            /* bitwise, so NaN and -0 count */
            CHECK(rc == 0 && !memcmp(got, bufs[t][s], (size_t)cnt * sz[t]), "%s: values differ", name);
            free(got);
        }
    /* type conversion on read: u16 read as i64, f32 as f64 */
    {
        void *got;
        int64_t d0, d1;
        CHECK(h5_read(f, "/data/t5/s1", H5T_QH_I64, &got, &d0, &d1) == 0, "u16 as i64");
        int bad = 0;
        for (int i = 0; i < 15; i++) bad += ((int64_t *)got)[i] != ((uint16_t *)bufs[5][1])[i];
        CHECK(bad == 0, "u16 -> i64 conversion");
        free(got);
        CHECK(h5_read(f, "/data/t0/s1", H5T_QH_F64, &got, &d0, &d1) == 0, "f32 as f64");
        bad = 0;
        for (int i = 0; i < 15; i++) bad += ((double *)got)[i] != (double)((float *)bufs[0][1])[i];
        CHECK(bad == 0, "f32 -> f64 conversion");
        free(got);
        CHECK(h5_read(f, "/empty", H5T_QH_F32, &got, &d0, &d1) == 0 && d0 == 0 && d1 == 0, "empty dataset");
        free(got);
    }
    CHECK(h5_exists(f, "/data/t3/s2") == 1 && h5_exists(f, "/data") == 1 && h5_exists(f, "/") == 1, "exists");
    CHECK(h5_exists(f, "/data/t9/s0") == 0 && h5_exists(f, "/nope/deeper/still") == 0, "exists of missing paths");
    CHECK(!strcmp(h5_path(f), p), "h5_path %s", h5_path(f));
    mute();
    void *got;
    int64_t d0, d1;
    int miss = h5_read(f, "/data/none", H5T_QH_F32, &got, &d0, &d1);
    int ro = h5_write(f, "/new", H5T_QH_F32, bufs[0][0], 7, 0);
    unmute();
    CHECK(miss == -1, "reading a missing dataset returned %d", miss);
    CHECK(ro == -1, "writing through a read-only handle returned %d", ro);
    h5_abort(&f); /* read-only: closes, deletes nothing */
    CHECK(access(p, F_OK) == 0, "h5_abort on a read-only handle deleted the file");
    for (int t = 0; t < 6; t++)
        for (int s = 0; s < 4; s++) free(bufs[t][s]);
    unlink(p);
}

static void test_h5_attrs(void) {
    char p[256];
    snprintf(p, sizeof p, "%s/attrs.h5", tmpdir);
    H5File *f;
    h5_create(p, &f);
    char big[10000];
    for (int i = 0; i < 9999; i++) big[i] = (char)('a' + i % 26);
    big[9999] = '\0';
    double one = 1.0;
    CHECK(h5_write(f, "/g/ds", H5T_QH_F64, &one, 1, 0) == 0, "dataset for attributes");
    int rc = 0;
    rc |= h5_attr_str(f, "/", "s", "hello, h5");
    rc |= h5_attr_str(f, "/", "big", big);
    rc |= h5_attr_str(f, "/", "utf8", "caf\xc3\xa9 \xe2\x88\x9a");
    rc |= h5_attr_f64(f, "/", "pi", M_PI);
    rc |= h5_attr_f64(f, "/", "nan", NAN);
    rc |= h5_attr_f64(f, "/", "ninf", -INFINITY);
    rc |= h5_attr_i64(f, "/", "min", INT64_MIN);
    rc |= h5_attr_i64(f, "/", "max", INT64_MAX);
    rc |= h5_attr_i64(f, "/g/h/k", "made", 7); /* creates the group */
    rc |= h5_attr_f64(f, "/g/ds", "on_dataset", 2.5);
    rc |= h5_attr_i64(f, "/", "over", 1);
    rc |= h5_attr_i64(f, "/", "over", 2);     /* overwrite */
    rc |= h5_attr_i64(f, "/", "retype", 3);
    rc |= h5_attr_str(f, "/", "retype", "now a string");
    CHECK(rc == 0, "writing attributes");
    CHECK(h5_group(f, "/x/y/z") == 0 && h5_group(f, "/x/y/z") == 0, "h5_group twice");
    CHECK(h5_commit(&f) == 0, "commit");
    CHECK(h5_open_read(p, &f) == 0, "reopen");
    char *s = NULL;
    double d = 0;
    int64_t v = 0;
    CHECK(h5_get_attr_str(f, "/", "s", &s) == 0 && !strcmp(s, "hello, h5"), "string attr '%s'", s ? s : "");
    free(s);
    CHECK(h5_get_attr_str(f, "/", "big", &s) == 0 && !strcmp(s, big), "10 KB string attr");
    free(s);
    CHECK(h5_get_attr_str(f, "/", "utf8", &s) == 0 && !strcmp(s, "caf\xc3\xa9 \xe2\x88\x9a"), "utf-8 attr");
    free(s);
    CHECK(h5_get_attr_f64(f, "/", "pi", &d) == 0 && d == M_PI, "pi %.17g", d);
    CHECK(h5_get_attr_f64(f, "/", "nan", &d) == 0 && isnan(d), "nan attr %g", d);
    CHECK(h5_get_attr_f64(f, "/", "ninf", &d) == 0 && d == -INFINITY, "-inf attr %g", d);
    CHECK(h5_get_attr_i64(f, "/", "min", &v) == 0 && v == INT64_MIN, "INT64_MIN %lld", (long long)v);
    CHECK(h5_get_attr_i64(f, "/", "max", &v) == 0 && v == INT64_MAX, "INT64_MAX %lld", (long long)v);
    CHECK(h5_get_attr_i64(f, "/g/h/k", "made", &v) == 0 && v == 7, "attr on a created group");
    CHECK(h5_get_attr_f64(f, "/g/ds", "on_dataset", &d) == 0 && d == 2.5, "attr on a dataset");
    CHECK(h5_get_attr_i64(f, "/", "over", &v) == 0 && v == 2, "overwritten attr %lld", (long long)v);
    CHECK(h5_get_attr_str(f, "/", "retype", &s) == 0 && !strcmp(s, "now a string"), "retyped attr");
    free(s);
    CHECK(h5_exists(f, "/x/y/z") == 1, "group /x/y/z");
    mute();
    int m1 = h5_get_attr_str(f, "/", "missing", &s);
    int m2 = h5_get_attr_f64(f, "/nowhere", "pi", &d);
    int m3 = h5_get_attr_str(f, "/", "pi", &s); /* not a string */
    unmute();
    CHECK(m1 == -1 && m2 == -1 && m3 == -1, "missing / mistyped attributes: %d %d %d", m1, m2, m3);
    h5_abort(&f);

    /* h5_open_rw: an aborted update leaves the file byte-identical; a committed one shows */
    char *orig;
    size_t olen;
    qh_read_file(p, &orig, &olen);
    CHECK(h5_open_rw(p, &f) == 0, "open_rw");
    h5_attr_i64(f, "/", "over", 99);
    h5_delete(f, "/g");
    h5_abort(&f);
    CHECK(file_equals(p, orig, olen), "aborted update changed the file");
    CHECK(count_entries(tmpdir) == 1, "aborted update left %d entries", count_entries(tmpdir));
    CHECK(h5_open_rw(p, &f) == 0, "open_rw again");
    CHECK(h5_attr_i64(f, "/", "over", 99) == 0 && h5_delete(f, "/g") == 0 && h5_delete(f, "/g") == 0,
          "update (delete twice is fine)");
    CHECK(h5_commit(&f) == 0, "commit update");
    h5_open_read(p, &f);
    CHECK(h5_get_attr_i64(f, "/", "over", &v) == 0 && v == 99, "committed update: over = %lld", (long long)v);
    CHECK(h5_exists(f, "/g/ds") == 0 && h5_exists(f, "/x/y/z") == 1, "committed delete");
    h5_abort(&f);
    free(orig);
    unlink(p);
}

static void test_h5_atomic(void) {
    char p[256];
    snprintf(p, sizeof p, "%s/atomic.h5", tmpdir);
    int before = count_entries(tmpdir);
    H5File *f;
    float x[100];
    for (int i = 0; i < 100; i++) x[i] = (float)i;
    /* a new file, written then aborted: nothing at all remains */
    CHECK(h5_create(p, &f) == 0, "create");
    h5_write(f, "/x", H5T_QH_F32, x, 100, 0);
    h5_attr_str(f, "/", "a", "b");
    h5_abort(&f);
    CHECK(f == NULL, "h5_abort nulls the handle");
    CHECK(access(p, F_OK) != 0, "aborted file exists");
    CHECK(count_entries(tmpdir) == before, "aborted write left %d new entries", count_entries(tmpdir) - before);
    h5_abort(&f); /* NULL: harmless */
    /* an existing file survives an aborted rewrite byte for byte */
    h5_create(p, &f);
    h5_write(f, "/x", H5T_QH_F32, x, 100, 0);
    h5_attr_str(f, "/", "version", "first");
    CHECK(h5_commit(&f) == 0, "commit first");
    char *orig;
    size_t olen;
    qh_read_file(p, &orig, &olen);
    CHECK(h5_create(p, &f) == 0, "create over an existing file");
    CHECK(file_equals(p, orig, olen), "h5_create touched the existing file before commit");
    h5_write(f, "/y", H5T_QH_F32, x, 50, 0);
    h5_attr_str(f, "/", "version", "second");
    h5_abort(&f);
    CHECK(file_equals(p, orig, olen), "aborted rewrite changed the existing file");
    CHECK(count_entries(tmpdir) == before + 1, "aborted rewrite left temp files");
    /* committed rewrite replaces it */
    h5_create(p, &f);
    h5_attr_str(f, "/", "version", "third");
    CHECK(h5_commit(&f) == 0, "commit rewrite");
    h5_open_read(p, &f);
    char *s = NULL;
    CHECK(h5_get_attr_str(f, "/", "version", &s) == 0 && !strcmp(s, "third") && !h5_exists(f, "/x"),
          "rewrite: version '%s'", s ? s : "");
    free(s);
    h5_abort(&f);
    free(orig);
    unlink(p);
    /* errors: missing file, not an HDF5 file, unwritable place */
    char q[300];
    snprintf(q, sizeof q, "%s/plain.txt", tmpdir);
    FILE *t = fopen(q, "w");
    fputs("not hdf5\n", t);
    fclose(t);
    snprintf(p, sizeof p, "%s/none.h5", tmpdir);
    char r[300];
    snprintf(r, sizeof r, "%s/no/dir/x.h5", tmpdir);
    mute();
    int e1 = h5_open_read(p, &f), e2 = h5_open_read(q, &f), e3 = h5_create(r, &f), e4 = h5_open_rw(p, &f);
    unmute();
    CHECK(e1 == -1 && e2 == -1 && e3 == -1 && e4 == -1, "error paths: %d %d %d %d", e1, e2, e3, e4);
    CHECK(count_entries(tmpdir) == before + 1, "error paths left files behind");
    unlink(q);
}

/* ---- results schema ----------------------------------------------------------- */

static void test_results_file(void) {
    Forward *f;
    const int SL = 12;
    forward_cpu_create(&g_model, SL, &f);
    size_t n = 4 * SL + 5;
    int *ids = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) ids[i] = (int)(rnext() % 53);
    PplResult r;
    CHECK(perplexity_eval(f, ids, n, SL, 3, &r) == 0, "eval for results");
    TokenStream ts;
    memset(&ts, 0, sizeof ts);
    snprintf(ts.name, sizeof ts.name, "file:some/dir/t.txt");
    snprintf(ts.source, sizeof ts.source, "some/dir/t.txt");
    snprintf(ts.sha256, sizeof ts.sha256, "%064d", 0);
    snprintf(ts.split, sizeof ts.split, "file");
    snprintf(ts.rule, sizeof ts.rule, "whole file, BOS + encode");
    ts.n = n;
    char p[256];
    snprintf(p, sizeof p, "%s/results.h5", tmpdir);
    H5File *h;
    Provenance prov;
    char *argv[] = {"qharness", "eval", "--dataset", "x"};
    int omp_was = omp_get_max_threads();
    omp_set_num_threads(omp_was + 2); /* a count no default gives, read back below */
    provenance_collect(&prov, 4, argv);
    omp_set_num_threads(omp_was);
    CHECK(!strcmp(prov.cmdline, "qharness eval --dataset x"), "provenance cmdline '%s'", prov.cmdline);
    CHECK(h5_create(p, &h) == 0, "create results");
    CHECK(results_write_header(h, "/", &prov, &g_model, "{\"seqlen\": 12}") == 0, "results_write_header");
    CHECK(results_write_eval(h, "/", &ts, &r, "cpu") == 0, "results_write_eval");
    /* writing the same dataset again replaces its group */
    CHECK(results_write_eval(h, "/", &ts, &r, "cpu") == 0, "results_write_eval twice");
    CHECK(h5_commit(&h) == 0, "commit results");

    CHECK(h5_open_read(p, &h) == 0, "reopen results");
    const char *g = "/eval/file:some|dir|t.txt";
    CHECK(h5_exists(h, g), "group %s (slashes of the dataset name replaced)", g);
    double ppl = 0, se = 0;
    int64_t v;
    CHECK(h5_get_attr_i64(h, "/", "omp_threads", &v) == 0 && v == omp_was + 2, "omp_threads %lld, set %d",
          (long long)v, omp_was + 2);
    CHECK(h5_get_attr_i64(h, "/", "blas_threads", &v) == 0 && v >= 1, "blas_threads %lld", (long long)v);
    CHECK(h5_get_attr_f64(h, g, "ppl", &ppl) == 0 && ppl == r.ppl, "ppl attribute %.17g vs %.17g", ppl, r.ppl);
    CHECK(h5_get_attr_f64(h, g, "ppl_stderr", &se) == 0 && se == r.ppl_stderr, "ppl_stderr attribute");
    CHECK(h5_get_attr_i64(h, g, "nwindows", &v) == 0 && v == 3, "nwindows %lld", (long long)v);
    CHECK(h5_get_attr_i64(h, g, "seqlen", &v) == 0 && v == SL, "seqlen %lld", (long long)v);
    CHECK(h5_get_attr_i64(h, g, "ntokens", &v) == 0 && v == (int64_t)n, "ntokens %lld", (long long)v);
    CHECK(h5_get_attr_i64(h, g, "scored_tokens", &v) == 0 && v == 3 * (SL - 1), "scored_tokens %lld", (long long)v);
    char *s = NULL;
    CHECK(h5_get_attr_str(h, g, "dataset", &s) == 0 && !strcmp(s, ts.name), "dataset attr '%s'", s ? s : "");
    free(s);
    CHECK(h5_get_attr_str(h, g, "device", &s) == 0 && !strcmp(s, "cpu"), "device attr");
    free(s);
    void *nll;
    int64_t d0, d1;
    char dp[300];
    snprintf(dp, sizeof dp, "%s/nll", g);
    CHECK(h5_read(h, dp, H5T_QH_F64, &nll, &d0, &d1) == 0 && d0 == 3 && d1 == SL - 1, "nll shape (%lld, %lld)",
          (long long)d0, (long long)d1);
    CHECK(!memcmp(nll, r.nll, sizeof(double) * 3 * (SL - 1)), "nll values");
    free(nll);
    snprintf(dp, sizeof dp, "%s/window_nll", g);
    CHECK(h5_read(h, dp, H5T_QH_F64, &nll, &d0, &d1) == 0 && d0 == 3 && d1 == 0, "window_nll shape");
    CHECK(!memcmp(nll, r.window_nll, sizeof(double) * 3), "window_nll values");
    free(nll);
    CHECK(h5_get_attr_i64(h, "/", "schema_version", &v) == 0 && v == QH_SCHEMA_VERSION, "schema_version");
    CHECK(h5_get_attr_i64(h, "/", "model_dim", &v) == 0 && v == 24, "model_dim %lld", (long long)v);
    CHECK(h5_get_attr_i64(h, "/", "model_n_kv_heads", &v) == 0 && v == 2, "model_n_kv_heads");
    CHECK(h5_get_attr_str(h, "/", "settings_json", &s) == 0 && !strcmp(s, "{\"seqlen\": 12}"), "settings_json");
    free(s);
    CHECK(h5_get_attr_str(h, "/", "command_line", &s) == 0 && !strcmp(s, prov.cmdline), "command_line");
    free(s);
    h5_abort(&h);

    /* a nested group name and header on a sub-group */
    snprintf(p, sizeof p, "%s/results2.h5", tmpdir);
    h5_create(p, &h);
    snprintf(ts.name, sizeof ts.name, "tinystories");
    CHECK(results_write_header(h, "runs/a", &prov, NULL, NULL) == 0, "header on a group, no model");
    CHECK(results_write_eval(h, "runs/a", &ts, &r, "cpu") == 0, "eval under runs/a");
    h5_commit(&h);
    h5_open_read(p, &h);
    CHECK(h5_get_attr_f64(h, "runs/a/eval/tinystories", "ppl", &ppl) == 0 && ppl == r.ppl, "ppl under runs/a");
    CHECK(h5_get_attr_str(h, "runs/a", "settings_json", &s) == 0 && !strcmp(s, "{}"), "default settings '{}'");
    free(s);
    h5_abort(&h);

    /* h5dump -H parses it and shows the attributes and the nll shape */
    snprintf(p, sizeof p, "%s/results.h5", tmpdir);
    if (system("command -v h5dump >/dev/null 2>&1") == 0) {
        char cmd[400], out[1 << 16];
        snprintf(cmd, sizeof cmd, "h5dump -H '%s' 2>&1", p);
        FILE *pp = popen(cmd, "r");
        size_t len = pp ? fread(out, 1, sizeof out - 1, pp) : 0;
        out[len] = '\0';
        int st = pp ? pclose(pp) : -1;
        CHECK(st == 0, "h5dump -H exit status %d", st);
        CHECK(strstr(out, "ATTRIBUTE \"ppl\"") && strstr(out, "ATTRIBUTE \"schema_version\"") &&
                  strstr(out, "DATASET \"nll\"") && strstr(out, "( 3, 11 )"),
              "h5dump -H output lacks the ppl attribute or nll (3, 11):\n%.2000s", out);
    } else {
        SKIP("h5dump not installed");
    }
    unlink(p);
    snprintf(p, sizeof p, "%s/results2.h5", tmpdir);
    unlink(p);
    ppl_result_free(&r);
    free(ids);
    forward_destroy(&f);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qh_test_results_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_ppl_closed_form();
    test_ppl_eval();
    test_h5_types();
    test_h5_attrs();
    test_h5_atomic();
    test_results_file();
    model_free(&g_model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
