/* test_c4_shards.c: the c4 datasets on the paper's gzip shards (datasets.c,
 * jsonl.c), checked against the reference's own draws.
 *
 * The test writes two small "shards" with fixed content under a temporary
 * data root (text/c4/c4-validation.00000-of-00008.json.gz: 300 documents, ten
 * of them exactly 64 tokens long under tests/fixtures/tok512.model;
 * text/c4/c4-train.00000-of-01024.json.gz: 400 documents in two gzip members;
 * JSON escapes, surrogate pairs and non-ASCII text throughout). `test_c4_shards
 * --write DIR` writes the same files under DIR for
 * tests/fixtures/c4_reference_draws.py, which ran the SpQR reference's
 * get_loaders / get_c4 / get_c4_new (datautils.py) on them once and kept, in
 * tests/fixtures/c4_reference_draws.json, every window's document, its token
 * count and the window start, and the sha256 of the window ids.
 *
 * - The shards' decompressed bytes are those the fixture was made from.
 * - c4 (evaluation, seqlen 64): the 256 draws and the window ids equal the
 *   reference's, whole-document windows included; the stream names the
 *   validation shard, its sha256 (of the .json.gz), split "validation", not
 *   train data; a result file written from it holds the shard's path, sha256,
 *   origin and the draws.
 * - c4-new: the reference's ids (first 1100 documents, here all 300).
 * - c4 calibration with seeds 0 and 7 (16 windows): draws and ids equal the
 *   reference's on the train shard (two members read as one stream);
 *   jsonl:PATH on the same file gives the same windows.
 * - Without the validation shard, c4 falls back to the train slice, flagged.
 * - A truncated shard, a corrupt byte and a bad JSON line are refused with the
 *   file and the line.
 * Not here: make data (tests/cli/test_data.sh), the CPython random port itself
 * (test_pyrandom.c). */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "datasets.h"
#include "h5io.h"
#include "jsonl.h"
#include "results.h"
#include "sha256.h"
#include "util.h"

static char tmpdir[64];
#include "capture.h"
#define cap_begin() cap_begin_in(tmpdir)

enum { SEQLEN = 64, NVALID = 300, NTRAIN = 400 };

/* ---- the shards' content ----------------------------------------------------------- */

static uint64_t lcg;
static uint32_t rnd(uint32_t n) {
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg >> 33) % n;
}

typedef struct { char *p; size_t n, cap; } Str;
static void put(Str *s, const char *t, size_t n) {
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = 0;
}
static void puts_(Str *s, const char *t) { put(s, t, strlen(t)); }

static const char *const words[] = {
    "the", "cat", "sat", "on", "mat", "little", "girl", "named", "Lily", "went", "to", "park", "and", "saw", "a",
    "big", "dog", "he", "was", "happy", "they", "played", "with", "ball", "sun", "tree", "bird", "sang", "mom",
    "said", "time", "day", "very", "fun", "caf\xc3\xa9", "na\xc3\xafve", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80",
    "1984", "3.14"};
/* written into the JSON as they are: escapes that the reader must decode */
static const char *const escapes[] = {"\\\"quoted\\\"", "back\\\\slash", "line\\nbreak", "tab\\there",
                                      "\\u00e9t\\u00e9", "\\ud83d\\ude00", "a\\/b", "cr\\r\\nlf"};

/* One JSON line (document k of a shard) appended to s. */
static void json_doc(Str *s, int k, int exact, const char *shard) {
    puts_(s, "{\"text\":\"");
    if (exact) { /* "a a ... a": 63 pieces "\u2581a" + BOS = exactly SEQLEN tokens */
        for (int i = 0; i < SEQLEN - 1; i++) puts_(s, i ? " a" : "a");
    } else {
        int nw = rnd(10) < 3 ? 1 + (int)rnd(12) : 15 + (int)rnd(90);
        for (int i = 0; i < nw; i++) {
            if (i) puts_(s, rnd(9) == 0 ? ". " : " ");
            if (rnd(14) == 0) puts_(s, escapes[rnd(sizeof escapes / sizeof escapes[0])]);
            else puts_(s, words[rnd(sizeof words / sizeof words[0])]);
        }
    }
    char tail[160];
    snprintf(tail, sizeof tail, "\",\"timestamp\":\"2019-04-%02dT12:%02d:%02dZ\",\"url\":\"https://example.com/%s/%d\"}\n",
             1 + k % 28, k % 60, (k * 7) % 60, shard, k);
    puts_(s, tail);
}

/* The decompressed bytes of the validation (which 0) or train (1) shard. */
static Str shard_text(int which) {
    Str s = {0};
    lcg = which ? 20240101u : 19650218u;
    int n = which ? NTRAIN : NVALID;
    for (int k = 0; k < n; k++) json_doc(&s, k, !which && k % 30 == 7, which ? "train" : "validation");
    return s;
}

/* Write bytes as gzip, in `members` gzip members (1 or 2). */
static int write_gz(const char *path, const char *p, size_t n, int members) {
    size_t cut = members == 2 ? n / 2 : n;
    for (int m = 0; m < members; m++) {
        gzFile g = gzopen(path, m ? "ab9" : "wb9");
        if (!g) return -1;
        const char *a = m ? p + cut : p;
        size_t len = m ? n - cut : cut;
        if (len && gzwrite(g, a, (unsigned)len) != (int)len) return -1;
        if (gzclose(g) != Z_OK) return -1;
    }
    return 0;
}

static void join(char *out, size_t n, const char *root, const char *rel) { snprintf(out, n, "%s/%s", root, rel); }

static int write_shards(const char *root) {
    char p[700];
    snprintf(p, sizeof p, "%s/text", root);
    mkdir(root, 0755);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/text/c4", root);
    mkdir(p, 0755);
    Str v = shard_text(0), t = shard_text(1);
    join(p, sizeof p, root, DATASET_C4_VALID);
    int rc = write_gz(p, v.p, v.n, 1);
    join(p, sizeof p, root, DATASET_C4_TRAIN);
    rc |= write_gz(p, t.p, t.n, 2);
    free(v.p);
    free(t.p);
    return rc;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static json_t *fx;

static void ids_sha(const int *ids, size_t n, char hex[65]) {
    /* int32 little-endian, as numpy's astype('<i4').tobytes() */
    unsigned char *b = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)((uint32_t)ids[i] >> (8 * k));
    sha256_buf(b, n * 4, hex);
    free(b);
}

/* draws (n, 3) against the fixture's list; returns mismatches, first one printed */
static int compare_draws(const char *what, const int64_t *draws, int n, json_t *want) {
    int bad = 0;
    if ((int)json_array_size(want) != n) {
        fprintf(stderr, "%s: %d draws, the reference made %zu\n", what, n, json_array_size(want));
        return n ? n : 1;
    }
    for (int i = 0; i < n; i++) {
        json_t *w = json_array_get(want, (size_t)i);
        int64_t e[3];
        for (int k = 0; k < 3; k++) e[k] = json_integer_value(json_array_get(w, (size_t)k));
        if (memcmp(e, draws + 3 * i, sizeof e)) {
            if (!bad)
                fprintf(stderr, "%s: window %d: harness drew document %lld (%lld tokens) start %lld, reference %lld (%lld) %lld\n",
                        what, i, (long long)draws[3 * i], (long long)draws[3 * i + 1], (long long)draws[3 * i + 2],
                        (long long)e[0], (long long)e[1], (long long)e[2]);
            bad++;
        }
    }
    return bad;
}

/* ---- checks ------------------------------------------------------------------------------ */

static void test_content(void) {
    for (int which = 0; which < 2; which++) {
        Str s = shard_text(which);
        char hex[65];
        sha256_buf(s.p, s.n, hex);
        json_t *f = json_object_get(fx, which ? "train" : "validation");
        const char *want = json_string_value(json_object_get(f, "text_sha256"));
        CHECK(want && !strcmp(hex, want), "%s shard content differs from the one the fixture was made from (%s vs %s)",
              which ? "train" : "validation", hex, want ? want : "?");
        free(s.p);
    }
}

static void test_eval(const Tokenizer *tok, const char *root) {
    TokenStream s;
    char shard[700], hex[65];
    join(shard, sizeof shard, root, DATASET_C4_VALID);
    int rc = dataset_eval("c4", root, tok, SEQLEN, &s);
    CHECK(rc == 0, "c4 on the validation shard");
    if (rc) return;
    json_t *e = json_object_get(fx, "eval_c4");
    int bad = compare_draws("c4 eval", s.draws, s.ndraws, json_object_get(e, "draws"));
    CHECK(bad == 0, "c4 eval: %d of 256 draws differ from the reference's", bad);
    int whole = 0;
    for (int i = 0; i < s.ndraws; i++) whole += s.draws[3 * i + 2] == -1;
    CHECK(whole > 0, "no whole-document window drawn: the exact-length rule is not exercised");
    ids_sha(s.ids, s.n, hex);
    CHECK(s.n == (size_t)256 * SEQLEN && !strcmp(hex, json_string_value(json_object_get(e, "windows_sha256"))),
          "c4 eval: window ids (%zu) differ from the reference's", s.n);
    printf("c4 eval on the validation shard: 256 draws equal the reference's (%d whole documents), %ld documents tokenized\n",
           whole, s.ndocs_tokenized);
    char fsha[65];
    sha256_file(shard, fsha);
    CHECK(!strcmp(s.source, shard), "source '%s', expected the shard '%s'", s.source, shard);
    CHECK(!strcmp(s.sha256, fsha), "sha256 %s is not the shard file's %s", s.sha256, fsha);
    CHECK(!strcmp(s.split, "validation") && s.is_train_data == 0, "split '%s', train flag %d", s.split, s.is_train_data);
    CHECK(strstr(s.origin, "validation shard 00000 (300 documents)") != NULL, "origin '%s'", s.origin);
    CHECK(s.ndocs == NVALID, "ndocs %lld", (long long)s.ndocs);

    /* the result file names the shard and its sha256, and keeps the draws */
    char h5[600];
    snprintf(h5, sizeof h5, "%s/r.h5", tmpdir);
    double wn[2] = {1.0, 2.0}, nll[2 * (SEQLEN - 1)] = {0};
    PplResult r = {.ppl = 4.48, .ppl_stderr = 1, .mean_nll = 1.5, .ntokens = (long)s.n, .nwindows = 2, .seqlen = SEQLEN,
                   .window_nll = wn, .nll = nll};
    H5File *f;
    rc = h5_create(h5, &f);
    if (rc == 0) rc = results_write_eval(f, "/", &s, &r, "cpu");
    if (rc == 0) rc = h5_commit(&f);
    CHECK(rc == 0, "result file written");
    if (rc == 0 && h5_open_read(h5, &f) == 0) {
        char *src = NULL, *sha = NULL, *org = NULL;
        int64_t tr = -1, d0 = 0, d1 = 0;
        void *dr = NULL;
        h5_get_attr_str(f, "/eval/c4", "dataset_source", &src);
        h5_get_attr_str(f, "/eval/c4", "dataset_sha256", &sha);
        h5_get_attr_str(f, "/eval/c4", "dataset_origin", &org);
        h5_get_attr_i64(f, "/eval/c4", "dataset_is_train_data", &tr);
        int rd = h5_read(f, "/eval/c4/draws", H5T_QH_I64, &dr, &d0, &d1);
        CHECK(src && !strcmp(src, shard), "result file dataset_source '%s'", src ? src : "(none)");
        CHECK(sha && !strcmp(sha, fsha), "result file dataset_sha256 '%s'", sha ? sha : "(none)");
        CHECK(org && strstr(org, "validation shard 00000"), "result file dataset_origin '%s'", org ? org : "(none)");
        CHECK(tr == 0, "result file dataset_is_train_data %lld", (long long)tr);
        CHECK(rd == 0 && d0 == 256 && d1 == 3 && !memcmp(dr, s.draws, sizeof(int64_t) * 768), "result file draws (%lld, %lld)",
              (long long)d0, (long long)d1);
        free(src);
        free(sha);
        free(org);
        free(dr);
        h5_abort(&f);
    }
    token_stream_free(&s);

    rc = dataset_eval("c4-new", root, tok, SEQLEN, &s);
    CHECK(rc == 0, "c4-new on the validation shard");
    if (rc == 0) {
        json_t *n = json_object_get(fx, "eval_c4_new");
        ids_sha(s.ids, s.n, hex);
        CHECK((json_int_t)s.n == json_integer_value(json_object_get(n, "ntokens")) &&
                  !strcmp(hex, json_string_value(json_object_get(n, "ids_sha256"))),
              "c4-new: %zu ids differ from the reference's %lld", s.n,
              (long long)json_integer_value(json_object_get(n, "ntokens")));
        CHECK(s.is_train_data == 0 && !strcmp(s.source, shard), "c4-new source '%s'", s.source);
        token_stream_free(&s);
    }
}

static void test_calib(const Tokenizer *tok, const char *root) {
    char shard[700], jl[760], hex[65], copy[700];
    join(shard, sizeof shard, root, DATASET_C4_TRAIN);
    /* the same bytes under another name: jsonl:PATH, a file of the user's */
    snprintf(copy, sizeof copy, "%s/mine.json.gz", tmpdir);
    char *gz;
    size_t gn;
    if (qh_read_file(shard, &gz, &gn) == 0) {
        qh_write_file_atomic(copy, gz, gn);
        free(gz);
    }
    snprintf(jl, sizeof jl, "jsonl:%s", copy);
    json_t *runs = json_object_get(fx, "calib_c4");
    CHECK(json_array_size(runs) >= 2, "fixture has %zu calibration runs", json_array_size(runs));
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) {
        int seed = (int)json_integer_value(json_object_get(run, "seed"));
        int ns = (int)json_integer_value(json_object_get(run, "nsamples"));
        int *w = NULL, *w2 = NULL;
        TokenStream info, info2;
        int rc = dataset_calib("c4", root, tok, ns, SEQLEN, (uint64_t)seed, &w, &info);
        CHECK(rc == 0, "c4 calibration seed %d", seed);
        if (rc) continue;
        char what[64];
        snprintf(what, sizeof what, "c4 calibration seed %d", seed);
        int bad = compare_draws(what, info.draws, info.ndraws, json_object_get(run, "draws"));
        CHECK(bad == 0, "%s: %d of %d draws differ from the reference's", what, bad, ns);
        ids_sha(w, (size_t)ns * SEQLEN, hex);
        CHECK(!strcmp(hex, json_string_value(json_object_get(run, "windows_sha256"))), "%s: window ids differ", what);
        CHECK(!strcmp(info.source, shard) && !strcmp(info.split, "train") && info.ndocs == NTRAIN &&
                  strstr(info.origin, "train shard 00000 (400 documents)"),
              "%s: source '%s' split '%s' origin '%s'", what, info.source, info.split, info.origin);
        printf("%s on the train shard: %d draws equal the reference's\n", what, ns);
        rc = dataset_calib(jl, root, tok, ns, SEQLEN, (uint64_t)seed, &w2, &info2);
        CHECK(rc == 0 && !memcmp(w, w2, sizeof(int) * (size_t)ns * SEQLEN) && !strcmp(info2.split, "file") &&
                  strstr(info2.origin, "JSON Lines documents (400)") && !strcmp(info2.source, copy),
              "%s seed %d: not the c4 windows, or not named as the user's file", jl, seed);
        free(w);
        free(w2);
        token_stream_free(&info);
        if (rc == 0) token_stream_free(&info2);
    }
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void expect_refused(const Tokenizer *tok, const char *root, const char *what, const char *p1, const char *p2,
                           const char *p3) {
    TokenStream s;
    cap_begin();
    int rc = dataset_eval("c4", root, tok, SEQLEN, &s);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, p1) && strstr(err, p2) && strstr(err, p3), "%s: rc %d, message '%s'", what, rc, err);
    free(err);
    if (rc == 0) token_stream_free(&s);
}

static void test_fallback_and_damage(const Tokenizer *tok, const char *root) {
    char shard[700], slice[700];
    join(shard, sizeof shard, root, DATASET_C4_VALID);
    join(slice, sizeof slice, root, DATASET_C4_SLICE);
    Str v = shard_text(0);
    /* the offline slice: used, and flagged, once the validation shard is gone */
    write_file(slice, v.p);
    unlink(shard);
    TokenStream s;
    int rc = dataset_eval("c4", root, tok, SEQLEN, &s);
    CHECK(rc == 0 && !strcmp(s.source, slice) && s.is_train_data == 1 && strstr(s.split, "train-slice") &&
              strstr(s.origin, "offline slice"),
          "fallback: rc %d source '%s' split '%s' origin '%s'", rc, rc ? "" : s.source, rc ? "" : s.split,
          rc ? "" : s.origin);
    if (rc == 0) token_stream_free(&s);

    /* truncated: the first half of the gzip file */
    char tmp[720];
    snprintf(tmp, sizeof tmp, "%s/whole.gz", tmpdir);
    write_gz(tmp, v.p, v.n, 1);
    char *gz;
    size_t gn;
    qh_read_file(tmp, &gz, &gn);
    FILE *f = fopen(shard, "wb");
    fwrite(gz, 1, gn / 2, f);
    fclose(f);
    expect_refused(tok, root, "truncated shard", shard, "truncated", "line");
    /* one byte of the compressed data flipped: zlib's checks refuse it */
    gz[gn / 2] ^= 0x5a;
    f = fopen(shard, "wb");
    fwrite(gz, 1, gn, f);
    fclose(f);
    expect_refused(tok, root, "corrupt byte", shard, "gzip", "line");
    free(gz);
    /* a bad JSON line 7 inside an intact gzip stream */
    Str b = {0};
    const char *p = v.p;
    for (int line = 1; line <= 10; line++) {
        const char *nl = strchr(p, '\n');
        if (line == 7) puts_(&b, "{\"text\": \"cut off\n");
        else put(&b, p, (size_t)(nl - p + 1));
        p = nl + 1;
    }
    write_gz(shard, b.p, b.n, 1);
    char where[720];
    snprintf(where, sizeof where, "%s:7:", shard);
    expect_refused(tok, root, "bad JSON line", where, "JSON", "text");
    unlink(shard);
    free(b.p);
    free(v.p);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        if (write_shards(argv[2]) != 0) {
            fprintf(stderr, "cannot write the shards under %s\n", argv[2]);
            return 1;
        }
        printf("wrote %s/%s and %s/%s\n", argv[2], DATASET_C4_VALID, argv[2], DATASET_C4_TRAIN);
        return 0;
    }
    const char *model = "tests/fixtures/tok512.model", *fixture = "tests/fixtures/c4_reference_draws.json";
    if (access(model, R_OK) != 0 || access(fixture, R_OK) != 0) {
        SKIP("tests/fixtures/tok512.model or c4_reference_draws.json not found (run from the repository root)");
        return test_summary();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qh_c4_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    json_error_t err;
    fx = json_load_file(fixture, 0, &err);
    CHECK(fx != NULL, "%s: %s", fixture, err.text);
    CHECK(json_integer_value(json_object_get(fx, "seqlen")) == SEQLEN, "fixture seqlen");
    Tokenizer tok;
    CHECK(tokenizer_load(&tok, model, 512) == 0, "load %s", model);
    char root[600];
    snprintf(root, sizeof root, "%s/data", tmpdir);
    CHECK(write_shards(root) == 0, "shards written");
    if (fx) {
        test_content();
        test_eval(&tok, root);
        test_calib(&tok, root);
        test_fallback_and_damage(&tok, root);
    }
    tokenizer_free(&tok);
    json_decref(fx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
