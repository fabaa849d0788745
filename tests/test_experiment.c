/* test_experiment.c: experiment files (experiment.c) and the sweep's locks
 * (sweep.c), without running any model.
 *
 * - The product of lists, taken per method: RTN is not multiplied by keys it
 *   does not use (outlier_threshold, percdamp, calibration keys), whether they
 *   are set in [methods] or in [spqr]; per-method sections override [methods];
 *   [exclude] rules drop exactly the matching points; repeated values are
 *   de-duplicated; an indented line continues a list.
 * - Stable ids: 12 hex digits; the same settings give the same ids whatever
 *   the file name, key order, spacing, comments or the [output] / [run] /
 *   [slurm] sections; any change of a setting that shapes a result (wbits,
 *   group size, threshold, calibration, evaluation, model path) changes it;
 *   an RTN point's id ignores the calibration (RTN uses none); the
 *   full-precision id depends on the model and evaluation only.
 * - ${VAR} and ${VAR:-default} expansion.
 * - Every class of error names FILE:LINE: SECTION.KEY (stderr captured): an
 *   unknown key, a bad number, an out-of-range number, an empty list, an empty
 *   list item, an unknown method, an unknown dataset, a key set twice, a key
 *   of another method, an unset environment variable, an unknown section, a
 *   syntax error, a missing required key, and a missing model checkpoint.
 * - Syntax errors come first and alone (an unclosed [section] would make the
 *   keys below it look misplaced), every one in line order.
 * - Point lookup: by id, by prefix; a prefix shorter than EXP_ID_MIN_PREFIX is
 *   refused as such, an absent id as absent, an ambiguous prefix names the ids.
 * - The checks before a run (what `sweep --check` and the sweep's start run):
 *   the model's configuration from a llama2.c header or a config.json; a group
 *   size wider than the model's layers at its line, and what quantize_model
 *   refuses besides (over 65536 columns); [run] device = cuda without a GPU at
 *   its line; missing data files (built-in datasets under an empty [run] data,
 *   file:PATH for evaluation and for one method's calibration) each at its
 *   line and key, the `make data` hint only for the built-in one.
 * - Locks: acquire / held / release; a lock of a dead process on this host is
 *   stale and taken over; a lock of another host is respected.
 * Not here: running sweeps, kill and resume, reports, plots (tests/cli/test_sweep.sh). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "experiment.h"
#include "experiment_check.h"
#include "search.h"
#include "slurm.h"
#include "sweep.h"
#include "util.h"

static char errbuf[8192];

/* stderr captures go to a private folder (capture.h) */
static char cap_dir[] = "/tmp/qh_test_exp_XXXXXX";
static int cap_dir_made;
static void capture_begin(void) {
    if (!cap_dir_made) cap_dir_made = mkdtemp(cap_dir) != NULL;
    cap_begin_in(cap_dir_made ? cap_dir : "/tmp");
}

/* stderr from capture_begin to here -> errbuf */
static void capture_to_errbuf(void) {
    char *e = cap_end();
    snprintf(errbuf, sizeof errbuf, "%s", e);
    free(e);
}

/* Parse text as file `name`; returns the status, stderr captured in errbuf. */
static int parse_capture(const char *name, const char *text, Experiment *x) {
    capture_begin();
    int rc = experiment_parse(name, text, x);
    capture_to_errbuf();
    return rc;
}

static const char *BASE = "[model]\n"
                          "path = data/models/stories260K/stories260K.bin\n"
                          "[calibration]\n"
                          "nsamples = 4\n"
                          "seqlen = 64\n"
                          "[eval]\n"
                          "datasets = tinystories\n"
                          "max_windows = 2\n";

static int count_method(const Experiment *x, const char *m) {
    int n = 0;
    for (int i = 0; i < x->npoints; i++) n += !strcmp(x->points[i].spec.method, m);
    return n;
}

static char *cat(const char *a, const char *b) {
    char *s = qh_malloc(strlen(a) + strlen(b) + 1);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

/* Parse BASE + extra; returns the experiment (caller frees) and asserts success. */
static int parse_ok(const char *extra, Experiment *x) {
    char *t = cat(BASE, extra);
    int rc = parse_capture("t.ini", t, x);
    free(t);
    CHECK(rc == 0, "parse failed: %s", errbuf);
    return rc;
}

static void test_product(void) {
    Experiment x;
    /* outlier_threshold in [spqr], percdamp in [methods]: neither multiplies rtn */
    if (parse_ok("[methods]\nrun = rtn, gptq, spqr\nwbits = 2, 3, 4\npercdamp = 0.01, 0.1\n"
                 "[spqr]\noutlier_threshold = 0.1, 0.2\n",
                 &x) == 0) {
        CHECK(count_method(&x, "rtn") == 3, "rtn points %d, expected 3", count_method(&x, "rtn"));
        CHECK(count_method(&x, "gptq") == 6, "gptq points %d, expected 3 x 2", count_method(&x, "gptq"));
        CHECK(count_method(&x, "spqr") == 12, "spqr points %d, expected 3 x 2 x 2", count_method(&x, "spqr"));
        CHECK(x.npoints == 21 && x.nexcluded == 0 && x.nduplicates == 0, "npoints %d", x.npoints);
        /* every (wbits, tau) pair of spqr once per percdamp value */
        int seen[5][3] = {{0}};
        for (int i = 0; i < x.npoints; i++) {
            const ExpPoint *p = &x.points[i];
            if (strcmp(p->spec.method, "spqr")) continue;
            int t = p->spec.params.outlier_threshold == 0.1 ? 1 : p->spec.params.outlier_threshold == 0.2 ? 2 : 0;
            seen[p->spec.params.wbits][t]++;
            CHECK(p->spec.nsamples == 4 && p->spec.seqlen == 64 && !strcmp(p->spec.calib, "c4"), "calibration settings");
        }
        for (int b = 2; b <= 4; b++)
            for (int t = 1; t <= 2; t++) CHECK(seen[b][t] == 2, "spqr w%d tau index %d seen %d times", b, t, seen[b][t]);
        for (int i = 0; i < x.npoints; i++)
            if (!strcmp(x.points[i].spec.method, "rtn")) {
                CHECK(!strcmp(x.points[i].spec.calib, "none") && x.points[i].spec.nsamples == 0, "rtn uses no calibration");
                CHECK(x.points[i].spec.params.percdamp == 0.01, "rtn keeps the default percdamp");
            }
        /* labels name what varies within a method */
        int lab = 0;
        for (int i = 0; i < x.npoints; i++) lab += strstr(x.points[i].label, "outlier_threshold=0.1") != NULL;
        CHECK(lab == 6, "labels with outlier_threshold=0.1: %d", lab);
        experiment_free(&x);
    }
    /* the same key in [methods] for everyone, overridden in [spqr]; defaults otherwise */
    if (parse_ok("[methods]\nrun = gptq, spqr\nwbits = 3\ngroupsize = 32\n[spqr]\ngroupsize = 8, 16\n", &x) == 0) {
        CHECK(x.npoints == 3, "npoints %d, expected 1 + 2", x.npoints);
        for (int i = 0; i < x.npoints; i++) {
            const ExpPoint *p = &x.points[i];
            if (!strcmp(p->spec.method, "gptq")) CHECK(p->spec.params.groupsize == 32, "gptq groupsize from [methods]");
            else {
                CHECK(p->spec.params.groupsize == 8 || p->spec.params.groupsize == 16, "spqr groupsize from [spqr]");
                CHECK(p->spec.params.qq_scale_bits == 3 && p->spec.params.percdamp == 1.0, "spqr defaults kept");
            }
        }
        experiment_free(&x);
    }
    /* exclusions */
    if (parse_ok("[methods]\nrun = rtn, gptq, spqr\nwbits = 2, 3, 4\n[spqr]\noutlier_threshold = 0.1, 0.2\n"
                 "[exclude]\nno_spqr2 = method=spqr, wbits=2\nno_low_tau4 = wbits = 4, outlier_threshold=0.1\n",
                 &x) == 0) {
        /* 3 + 3 + 6 = 12, minus spqr w2 (2 points) and spqr w4 tau 0.1 (1 point) */
        CHECK(x.npoints == 9 && x.nexcluded == 3, "npoints %d excluded %d, expected 9 and 3", x.npoints, x.nexcluded);
        for (int i = 0; i < x.npoints; i++) {
            const ExpPoint *p = &x.points[i];
            CHECK(!(!strcmp(p->spec.method, "spqr") && p->spec.params.wbits == 2), "spqr w2 excluded");
            CHECK(!(p->spec.params.wbits == 4 && p->spec.params.outlier_threshold == 0.1), "w4 tau 0.1 excluded");
        }
        CHECK(count_method(&x, "rtn") == 3 && count_method(&x, "gptq") == 3, "rtn / gptq untouched by the rules");
        experiment_free(&x);
    }
    /* duplicates, a list continued on an indented line, inf */
    if (parse_ok("[methods]\nrun = spqr, spqr\nwbits = 3,\n    4, 3\n[spqr]\noutlier_threshold = inf\n", &x) == 0) {
        CHECK(x.npoints == 2 && x.nduplicates == 4, "npoints %d duplicates %d, expected 2 and 4", x.npoints,
              x.nduplicates);
        CHECK(x.npoints > 0 && isinf(x.points[0].spec.params.outlier_threshold), "inf threshold");
        experiment_free(&x);
    }
}

/* The set of ids of a parse, sorted into one string. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }
static void id_set(const Experiment *x, char *out, size_t n) {
    const char *ids[256];
    int k = x->npoints < 256 ? x->npoints : 256;
    for (int i = 0; i < k; i++) ids[i] = x->points[i].id;
    qsort(ids, (size_t)k, sizeof ids[0], cmp_str);
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        strncat(out, ids[i], n - strlen(out) - 1);
        strncat(out, " ", n - strlen(out) - 1);
    }
}

static int ids_of(const char *name, const char *text, char *out, size_t n, char *fp) {
    Experiment x;
    int rc = parse_capture(name, text, &x);
    CHECK(rc == 0, "parse of a variant failed: %s", errbuf);
    if (rc == 0) {
        id_set(&x, out, n);
        if (fp) strcpy(fp, x.fp_id);
    }
    experiment_free(&x);
    return rc;
}

static void test_ids(void) {
    const char *ref = "[model]\npath = data/models/stories260K/stories260K.bin\n"
                      "[calibration]\nnsamples = 4\nseqlen = 64\n"
                      "[methods]\nrun = rtn, spqr\nwbits = 3, 4\n[spqr]\noutlier_threshold = 0.2\n"
                      "[eval]\ndatasets = tinystories, ptb\nmax_windows = 2\n";
    char a[4096], b[4096], fa[16], fb[16];
    if (ids_of("a.ini", ref, a, sizeof a, fa) != 0) return;
    CHECK(strlen(a) == 4 * 13, "four ids of 12 digits: '%s'", a);
    for (const char *c = a; *c; c++) CHECK((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || *c == ' ', "hex id");
    /* same settings, different file name, order, spacing, comments, output / run / slurm sections */
    const char *same = "; the same experiment written differently\n"
                       "[eval]\nmax_windows=2\ndatasets=tinystories,ptb\n"
                       "[spqr]\noutlier_threshold = 0.20\n"
                       "[methods]\nwbits = 3 , 4\nrun = rtn,spqr\n"
                       "[calibration]\nseqlen = 64\nnsamples = 4\nseed = 0\n"
                       "[output]\ndir = /tmp/elsewhere\n[run]\ndevice = cpu\n[slurm]\ncpus = 2\n"
                       "# last\n[model]\npath = data/models/stories260K/stories260K.bin\n";
    if (ids_of("other_name.ini", same, b, sizeof b, fb) == 0) {
        CHECK(!strcmp(a, b), "same settings, different ids:\n  %s\n  %s", a, b);
        CHECK(!strcmp(fa, fb), "same fp id expected");
    }
    /* each change gives new ids (for the points it touches) */
    struct {
        const char *from, *to;
        int changed; /* how many of the 4 ids must change */
        int fp_changes;
    } edits[] = {
        {"wbits = 3, 4", "wbits = 3, 5", 2, 0},                 /* rtn w4, spqr w4 -> w5 */
        {"outlier_threshold = 0.2", "outlier_threshold = 0.25", 2, 0},
        {"nsamples = 4", "nsamples = 8", 2, 0},                  /* spqr only: rtn uses no calibration */
        {"seqlen = 64", "seqlen = 32", 2, 0},
        {"max_windows = 2", "max_windows = 3", 4, 1},
        {"datasets = tinystories, ptb", "datasets = tinystories", 4, 1},
        {"stories260K.bin", "stories260K_copy.bin", 4, 1},
        {"[spqr]\n", "[spqr]\ngroupsize = 8\n", 2, 0},
        {"[spqr]\n", "[spqr]\nperm = act_order\n", 2, 0},
        {"[spqr]\n", "[spqr]\nsimplified_outliers = true\n", 2, 0},
        {"[spqr]\n", "[methods]\nblocksize = 64\n[spqr]\n", 2, 0}, /* rtn has no blocksize */
        /* stats_dtype (QS_NEW): its default keeps the ids published before it existed */
        {"[spqr]\n", "[spqr]\nstats_dtype = fp32\n", 0, 0},
        {"[spqr]\n", "[spqr]\nstats_dtype = fp16\n", 2, 0},
        {"[spqr]\n", "[methods]\nstats_dtype = fp16\n[spqr]\n", 4, 0}, /* rtn stores statistics too */
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        const char *at = strstr(ref, edits[e].from);
        CHECK(at != NULL, "edit %zu: '%s' not in the reference", e, edits[e].from);
        if (!at) continue;
        char text[4096];
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - ref), ref, edits[e].to, at + strlen(edits[e].from));
        if (ids_of("a.ini", text, b, sizeof b, fb) != 0) continue;
        int kept = 0; /* ids of b present in a */
        for (char *s = b; *s; s += 13) {
            char id[13];
            memcpy(id, s, 12);
            id[12] = 0;
            kept += strstr(a, id) != NULL;
        }
        int nb = (int)(strlen(b) / 13);
        CHECK(nb - kept == edits[e].changed, "edit '%s' -> '%s': %d of %d ids changed, expected %d", edits[e].from,
              edits[e].to, nb - kept, nb, edits[e].changed);
        CHECK((strcmp(fa, fb) != 0) == edits[e].fp_changes, "edit '%s': fp id %s", edits[e].from,
              edits[e].fp_changes ? "should change" : "should not change");
    }
    /* the id is the sha256 prefix of the point's canonical JSON */
    Experiment x;
    if (parse_capture("a.ini", ref, &x) == 0) {
        char id[13];
        experiment_id_of(x.points[0].json, id);
        CHECK(!strcmp(id, x.points[0].id), "id = sha256(json)[:12]");
        CHECK(strstr(x.points[0].json, "\"max_windows\":2") != NULL, "json holds the eval settings: %s", x.points[0].json);
        char why[512] = "";
        CHECK(experiment_find_point(&x, x.points[1].id, why, sizeof why) == 1, "find by id");
        char pre[8];
        memcpy(pre, x.points[1].id, 7);
        pre[7] = 0;
        CHECK(experiment_find_point(&x, pre, why, sizeof why) == 1, "find by prefix");
        /* a prefix shorter than EXP_ID_MIN_PREFIX is refused as such, not as "no point" */
        memcpy(pre, x.points[1].id, 2);
        pre[2] = 0;
        CHECK(experiment_find_point(&x, pre, why, sizeof why) == -1, "short prefix refused");
        char expect[64];
        snprintf(expect, sizeof expect, "expected %d to 12 hex digits", EXP_ID_MIN_PREFIX);
        CHECK(strstr(why, expect) && !strstr(why, "no point"), "short prefix: '%s'", why);
        CHECK(experiment_find_point(&x, "ffffffffffff", why, sizeof why) == -1 && strstr(why, "no point"),
              "absent id: '%s'", why);
        CHECK(experiment_find_point(&x, "zzzz", why, sizeof why) == -1 && strstr(why, "hex digits"), "not hex: '%s'", why);
        CHECK(experiment_find_point(&x, "0000000000000", why, sizeof why) == -1 && strstr(why, "hex digits"),
              "13 digits: '%s'", why);
        /* a prefix of several points names them (1024 points: ids sharing 4 digits are all but certain,
         * and the ids of this text never change) */
        Experiment many;
        char text[2048];
        int n = snprintf(text, sizeof text, "[model]\npath = m.bin\n[methods]\nrun = rtn\nwbits = 1, 2, 3, 4, 5, 6, 7, 8\n"
                                            "sym = false, true\ngroupsize = 1");
        for (int g = 2; g <= 64; g++) /* 16 values a line, the next lines indented (a continued list) */
            n += snprintf(text + n, sizeof text - (size_t)n, g % 16 == 1 ? ",\n    %d" : ", %d", g);
        snprintf(text + n, sizeof text - (size_t)n, "\n");
        int prc = parse_capture("a.ini", text, &many);
        CHECK(prc == 0, "1024 points: %s", errbuf);
        if (prc == 0) {
            int amb = -1; /* two points whose ids share 4 digits */
            for (int i = 0; i < many.npoints && amb < 0; i++)
                for (int k = i + 1; k < many.npoints && amb < 0; k++)
                    if (!strncmp(many.points[i].id, many.points[k].id, 4)) amb = i;
            if (amb >= 0) {
                memcpy(pre, many.points[amb].id, 4);
                pre[4] = 0;
                CHECK(experiment_find_point(&many, pre, why, sizeof why) == -1 && strstr(why, "matches") &&
                          strstr(why, many.points[amb].id),
                      "ambiguous prefix '%s': '%s'", pre, why);
            }
            CHECK(amb >= 0 && many.npoints == 1024, "%d points, none sharing 4 digits", many.npoints);
        }
        experiment_free(&many);
    }
    experiment_free(&x);
}

static void test_env(void) {
    Experiment x;
    setenv("QH_TEST_EXP_MODEL", "/some/where/model.bin", 1);
    unsetenv("QH_TEST_EXP_UNSET");
    const char *t = "[model]\npath = ${QH_TEST_EXP_MODEL}\ntokenizer = ${QH_TEST_EXP_UNSET:-/tok/default.bin}\n"
                    "[methods]\nrun = rtn\n";
    int rc = parse_capture("env.ini", t, &x);
    CHECK(rc == 0, "env parse: %s", errbuf);
    if (rc == 0) {
        CHECK(!strcmp(x.model_path, "/some/where/model.bin"), "expanded path '%s'", x.model_path);
        CHECK(!strcmp(x.tokenizer, "/tok/default.bin"), "default of an unset variable '%s'", x.tokenizer);
        CHECK(!strcmp(x.out_dir, "results/env"), "default output dir '%s'", x.out_dir);
    }
    experiment_free(&x);
}

/* The text must fail, and stderr must contain every one of the patterns. */
static void expect_error(const char *what, const char *text, const char *p1, const char *p2) {
    Experiment x;
    int rc = parse_capture("bad.ini", text, &x);
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(strstr(errbuf, p1) != NULL, "%s: stderr lacks '%s': %s", what, p1, errbuf);
    if (p2) CHECK(strstr(errbuf, p2) != NULL, "%s: stderr lacks '%s': %s", what, p2, errbuf);
    experiment_free(&x);
}

static void test_errors(void) {
    const char *M = "[model]\npath = m.bin\n"; /* lines 1-2 */
    char t[2048];
#define E(what, body, p1, p2)                          \
    do {                                               \
        snprintf(t, sizeof t, "%s%s", M, body);        \
        expect_error(what, t, p1, p2);                 \
    } while (0)
    E("unknown key", "[methods]\nrun = rtn\nwbitz = 3\n", "bad.ini:5: methods.wbitz: unknown key", NULL);
    E("bad number", "[methods]\nrun = rtn\nwbits = 3, four\n", "bad.ini:5: methods.wbits: 'four' is not a number",
      "integer in 1..8");
    E("bad double", "[methods]\nrun = spqr\n[spqr]\noutlier_threshold = 0.2x\n",
      "bad.ini:6: spqr.outlier_threshold: '0.2x' is not a number", NULL);
    E("out of range", "[methods]\nrun = rtn\nwbits = 9\n", "bad.ini:5: methods.wbits: 9 is out of range", NULL);
    E("empty list", "[methods]\nrun = rtn\nwbits =\n", "bad.ini:5: methods.wbits: empty list", NULL);
    E("empty item", "[methods]\nrun = rtn\nwbits = 3,,4\n", "bad.ini:5: methods.wbits: empty item", NULL);
    E("unknown method", "[methods]\nrun = rtn, hqq\n", "bad.ini:4: methods.run: unknown method 'hqq'", NULL);
    E("unknown dataset", "[methods]\nrun = rtn\n[eval]\ndatasets = wikitext2, wikitext3\n",
      "bad.ini:6: eval.datasets: unknown dataset 'wikitext3'", NULL);
    E("unknown calibration dataset", "[methods]\nrun = gptq\n[calibration]\ndataset = pile\n",
      "bad.ini:6: calibration.dataset: unknown calibration dataset 'pile'", NULL);
    E("set twice", "[methods]\nrun = rtn\nwbits = 3\nwbits = 4\n", "bad.ini:6: methods.wbits: set twice (first at line 5)",
      NULL);
    E("key of another method", "[methods]\nrun = rtn\n[rtn]\noutlier_threshold = 0.2\n",
      "bad.ini:6: rtn.outlier_threshold: rtn does not use outlier_threshold", "spqr");
    E("unset variable", "[methods]\nrun = rtn\n[output]\ndir = ${QH_TEST_EXP_NOT_SET}/x\n",
      "bad.ini:6: output.dir: environment variable QH_TEST_EXP_NOT_SET is not set", NULL);
    E("unknown section", "[method]\nrun = rtn\n", "bad.ini:4: method.run: [method] is not a known section", NULL);
    E("syntax", "[methods]\nrun = rtn\nthis line has no equals sign\n", "bad.ini:5: syntax error", NULL);
    E("missing run", "[eval]\nseqlen = 64\n", "bad.ini: methods.run: missing", NULL);
    E("bad exclude", "[methods]\nrun = rtn\n[exclude]\nr = method=rtn, colour=blue\n",
      "bad.ini:6: exclude.r: 'colour' is not a swept key", NULL);
    E("seqlen 1", "[methods]\nrun = rtn\n[eval]\nseqlen = 1\n", "bad.ini:6: eval.seqlen:", NULL);
    E("invalid combination", "[methods]\nrun = spqr\n[spqr]\nsym = true\n", "qq_zero_bits", "spqr.sym (line 6)");
    expect_error("missing model path", "[methods]\nrun = rtn\n", "bad.ini: model.path: missing", NULL);
#undef E
    /* a missing checkpoint: the file and line of model.path, and the variable it came from */
    setenv("QH_TEST_EXP_CKPT", "/nonexistent/llama-7b.bin", 1);
    Experiment x;
    int rc = parse_capture("m.ini", "[methods]\nrun = rtn\n[model]\npath = ${QH_TEST_EXP_CKPT}\n", &x);
    CHECK(rc == 0, "parse: %s", errbuf);
    if (rc == 0) {
        capture_begin();
        rc = experiment_check_model(&x);
        capture_to_errbuf();
        CHECK(rc != 0, "a missing checkpoint was accepted");
        CHECK(strstr(errbuf, "m.ini:4: model.path: checkpoint '/nonexistent/llama-7b.bin' not found") != NULL,
              "missing model message: %s", errbuf);
        CHECK(strstr(errbuf, "QH_TEST_EXP_CKPT") != NULL, "the variable is named: %s", errbuf);
    }
    experiment_free(&x);
}

/* Syntax errors come first and alone: an unclosed "[spqr" puts the keys below it
 * in [gptq], and "gptq does not use qq_scale_bits" must not be reported before
 * (or instead of) the real cause. Every syntax error is reported, in line order. */
static void test_syntax_first(void) {
    const char *t = "[model]\npath = m.bin\n"
                    "[methods]\nrun = gptq, spqr\n"
                    "[gptq]\nperm = act_order\n"
                    "[spqr\n"                        /* line 7 */
                    "qq_scale_bits = 3\nperm = act_order\noutlier_threshold = 0.2\n";
    Experiment x;
    int rc = parse_capture("bad.ini", t, &x);
    CHECK(rc != 0, "unclosed section accepted");
    CHECK(!strncmp(errbuf, "qharness: error: bad.ini:7: syntax error", 40), "syntax error first: %s", errbuf);
    CHECK(!strstr(errbuf, "does not use") && !strstr(errbuf, "set twice"), "consequences reported: %s", errbuf);
    experiment_free(&x);
    /* several: each one, in order, and nothing else */
    rc = parse_capture("bad.ini", "[model]\npath = m.bin\n[methods\nrun = rtn\nno equals here\n[eval\n", &x);
    const char *l3 = strstr(errbuf, "bad.ini:3: syntax error"), *l5 = strstr(errbuf, "bad.ini:5: syntax error"),
               *l6 = strstr(errbuf, "bad.ini:6: syntax error");
    CHECK(rc != 0 && l3 && l5 && l6 && l3 < l5 && l5 < l6, "three syntax errors in order: %s", errbuf);
    int lines = 0;
    for (const char *c = errbuf; *c; c++) lines += *c == '\n';
    CHECK(lines == 3, "%d lines on stderr, expected the 3 syntax errors: %s", lines, errbuf);
    experiment_free(&x);
    /* an over-long line (5) before a syntax error (6): in line order too */
    char *lt = qh_malloc(6000);
    int n = snprintf(lt, 6000, "[model]\npath = m.bin\n[methods]\nrun = rtn\n; ");
    memset(lt + n, 'x', 5000);
    snprintf(lt + n + 5000, 6000 - (size_t)n - 5000, "\nno equals here\n");
    rc = parse_capture("bad.ini", lt, &x);
    const char *a = strstr(errbuf, "bad.ini:5: line longer"), *b = strstr(errbuf, "bad.ini:6: syntax error");
    CHECK(rc != 0 && a && b && a < b, "long line then syntax error, in order: %s", errbuf);
    experiment_free(&x);
    free(lt);
}

/* The checks a run makes before it starts (experiment_check_run and its parts). */
static void test_run_checks(void) {
    char dir[] = "/tmp/qh_test_runchk_XXXXXX", path[512], text[2048];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    Experiment x;
    int rc;
    /* a llama2.c model of D 64: its header gives the shape */
    ModelConfig mc = {.dim = 64, .hidden_dim = 96, .n_layers = 1, .n_heads = 4, .n_kv_heads = 4, .vocab_size = 32,
                      .seq_len = 16};
    Model m;
    char model[300], hf[300];
    snprintf(model, sizeof model, "%s/m.bin", dir);
    CHECK(model_synth(&m, &mc, 1) == 0 && model_save_llama2c(&m, model) == 0, "synthetic model written");
    model_free(&m);
    /* a Hugging Face directory: config.json is all that is read */
    snprintf(hf, sizeof hf, "%s/hf", dir);
    mkdir(hf, 0755);
    snprintf(path, sizeof path, "%s/config.json", hf);
    FILE *f = fopen(path, "w");
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 8, \"intermediate_size\": 12, "
          "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"vocab_size\": 10, "
          "\"max_position_embeddings\": 16, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
          "\"tie_word_embeddings\": false, \"hidden_act\": \"silu\"}",
          f);
    fclose(f);
    const char *models[2] = {model, hf};
    int dims[2] = {64, 8}, hidden[2] = {96, 12};
    for (int i = 0; i < 2; i++) {
        snprintf(text, sizeof text, "[model]\npath = %s\n[methods]\nrun = rtn\n", models[i]);
        if (parse_capture("t.ini", text, &x) != 0) {
            CHECK(0, "parse: %s", errbuf);
            continue;
        }
        ModelConfig c;
        capture_begin();
        rc = experiment_model_config(&x, &c);
        capture_to_errbuf();
        CHECK(rc == 0 && c.dim == dims[i] && c.hidden_dim == hidden[i], "%s: config rc %d dim %d hidden %d: %s",
              models[i], rc, c.dim, c.hidden_dim, errbuf);
        experiment_free(&x);
    }

    /* shapes: groupsize 128 against 64 columns, reported at its line by --check (experiment_check_run) */
    snprintf(text, sizeof text,
             "[model]\npath = %s\n[methods]\nrun = rtn, spqr\n[spqr]\ngroupsize = 16, 128\n[eval]\ndatasets = "
             "file:%s\n",
             model, model);
    if (parse_capture("t.ini", text, &x) == 0) {
        capture_begin();
        rc = experiment_check_run(&x, 1);
        capture_to_errbuf();
        CHECK(rc != 0 && strstr(errbuf, "t.ini:6: spqr.groupsize: 128 does not fit the model"), "groupsize 128: %s",
              errbuf);
        /* what quantize_model checks too: 16-bit column indices (n <= 65536), whatever the group size */
        ModelConfig wide = mc;
        wide.hidden_dim = 70000;
        capture_begin();
        rc = experiment_check_shapes(&x, &wide);
        capture_to_errbuf();
        CHECK(rc != 0 && strstr(errbuf, "does not fit sub-layer w2 (64 x 70000)") && strstr(errbuf, "t.ini: point "),
              "70000 columns: %s", errbuf);
    } else {
        CHECK(0, "parse: %s", errbuf);
    }
    experiment_free(&x);

    /* device: cuda is refused at its line where no GPU is visible (accepted where one is) */
    snprintf(text, sizeof text, "[model]\npath = %s\n[methods]\nrun = rtn\n[run]\ndevice = cuda\n", model);
    if (parse_capture("t.ini", text, &x) == 0) {
        capture_begin();
        rc = experiment_check_device(&x);
        capture_to_errbuf();
        if (qh_cuda_available()) CHECK(rc == 0, "a GPU is visible, device = cuda refused: %s", errbuf);
        else CHECK(rc != 0 && strstr(errbuf, "t.ini:6: run.device: cuda"), "device = cuda without a GPU: %s", errbuf);
    }
    experiment_free(&x);

    /* data: [run] data an empty folder, a missing file:PATH, a missing calibration file of [gptq] */
    char empty[300], present[300];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    mkdir(empty, 0755);
    snprintf(present, sizeof present, "%s/text.txt", dir);
    f = fopen(present, "w");
    fputs("some text\n", f);
    fclose(f);
    snprintf(text, sizeof text,
             "[model]\npath = %s\n[methods]\nrun = rtn, gptq\n[gptq]\ndataset = file:%s/nocalib.txt\n"
             "[eval]\ndatasets = wikitext2, file:%s/noeval.txt, file:%s\n[run]\ndata = %s\n",
             model, dir, dir, present, empty);
    if (parse_capture("t.ini", text, &x) == 0) {
        capture_begin();
        rc = experiment_check_data(&x);
        capture_to_errbuf();
        CHECK(rc != 0, "missing data accepted");
        char want[4][512];
        snprintf(want[0], sizeof want[0], "t.ini:8: eval.datasets: dataset 'wikitext2': file '%s/text/wikitext-2-raw/wiki.test.raw' is missing (run `make data`", empty);
        snprintf(want[1], sizeof want[1], "[run] data at t.ini:10");
        snprintf(want[2], sizeof want[2], "t.ini:8: eval.datasets: dataset 'file:%s/noeval.txt': file '%s/noeval.txt' is missing\n", dir, dir);
        snprintf(want[3], sizeof want[3], "t.ini:6: gptq.dataset: dataset 'file:%s/nocalib.txt': file '%s/nocalib.txt' is missing\n", dir, dir);
        for (int i = 0; i < 4; i++) CHECK(strstr(errbuf, want[i]) != NULL, "lacks '%s': %s", want[i], errbuf);
        /* `make data` only for the built-in dataset, nothing about the present file */
        int hints = 0;
        for (const char *c = errbuf; (c = strstr(c, "make data")); c++) hints++;
        CHECK(hints == 1 && !strstr(errbuf, "text.txt"), "%d make-data hints: %s", hints, errbuf);
        /* the run's start refuses it too, the model being fine */
        capture_begin();
        rc = experiment_check_run(&x, 0);
        capture_to_errbuf();
        CHECK(rc != 0 && strstr(errbuf, want[3]), "check_run: %s", errbuf);
    } else {
        CHECK(0, "parse: %s", errbuf);
    }
    experiment_free(&x);
    /* every file present: accepted */
    snprintf(text, sizeof text, "[model]\npath = %s\n[methods]\nrun = rtn, gptq\n[gptq]\ndataset = file:%s\n"
                                "[eval]\ndatasets = file:%s\n", model, present, present);
    if (parse_capture("t.ini", text, &x) == 0) {
        /* but no tokenizer beside the model: refused, naming what was looked for */
        capture_begin();
        rc = experiment_check_run(&x, 1);
        capture_to_errbuf();
        CHECK(rc != 0 && strstr(errbuf, "t.ini:2: model.path: no tokenizer found beside") &&
                  strstr(errbuf, "tried tok32.bin"), "missing tokenizer: %s", errbuf);
        char tp[300];
        snprintf(tp, sizeof tp, "%s/tok32.bin", dir);
        FILE *tf = fopen(tp, "w");
        if (tf) fclose(tf);
        capture_begin();
        rc = experiment_check_run(&x, 1);
        capture_to_errbuf();
        CHECK(rc == 0, "all present refused: %s", errbuf);
    }
    experiment_free(&x);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

static void test_locks(void) {
    char dir[] = "/tmp/qh_test_lock_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char lock[256], holder[256];
    snprintf(lock, sizeof lock, "%s/p.lock", dir);
    CHECK(sweep_lock_acquire(lock, holder, sizeof holder) == 0, "fresh lock acquired");
    CHECK(access(lock, F_OK) == 0, "lock file exists");
    CHECK(sweep_lock_acquire(lock, holder, sizeof holder) == 1, "a held lock is refused");
    CHECK(strstr(holder, "pid") != NULL, "holder named: '%s'", holder);
    sweep_lock_release(lock);
    CHECK(access(lock, F_OK) != 0, "released");
    /* a dead process's lock on this host is stale */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char host[256];
    gethostname(host, sizeof host);
    FILE *f = fopen(lock, "w");
    fprintf(f, "pid %ld host %s start 12345\n", (long)child, host);
    fclose(f);
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    int r = sweep_lock_acquire(lock, holder, sizeof holder);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    CHECK(r == 0, "stale lock of dead pid %ld taken over (got %d)", (long)child, r);
    sweep_lock_release(lock);
    /* the lock is written complete through a claim file, which does not stay;
     * the claim of a run killed while taking the lock is removed by the next holder */
    char claim[600], mine[600], shost[256];
    snprintf(shost, sizeof shost, "%.*s", (int)strcspn(host, "./"), host);
    snprintf(claim, sizeof claim, "%s.claim.%s.%ld", lock, shost, (long)child);
    f = fopen(claim, "w");
    fclose(f);
    snprintf(mine, sizeof mine, "%s.claim.%s.%ld", lock, shost, (long)getpid());
    CHECK(sweep_lock_acquire(lock, holder, sizeof holder) == 0, "lock acquired beside a dead run's claim");
    CHECK(access(mine, F_OK) != 0, "our claim file is gone once the lock is taken");
    CHECK(access(claim, F_OK) != 0, "the dead run's claim file is removed");
    char content[512] = "";
    f = fopen(lock, "r");
    CHECK(f && fgets(content, sizeof content, f) && !strncmp(content, "pid ", 4), "lock holds its owner: '%s'", content);
    if (f) fclose(f);
    sweep_lock_release(lock);
    /* a live process with another start time (pid reused) is stale too; another host's lock is kept */
    f = fopen(lock, "w");
    fprintf(f, "pid %ld host some-other-host start 1\n", (long)getppid());
    fclose(f);
    CHECK(sweep_lock_acquire(lock, holder, sizeof holder) == 1, "another host's lock respected");
    CHECK(strstr(holder, "some-other-host") != NULL, "holder '%s'", holder);
    sweep_lock_release(lock); /* not ours: must stay */
    CHECK(access(lock, F_OK) == 0, "release leaves another run's lock");
    CHECK(sweep_lock_state(lock, holder, sizeof holder) == 1 && strstr(holder, "some-other-host"),
          "lock state: another host's run counts as live ('%s')", holder);
    /* another host's lock naming a Slurm job: respected while squeue cannot be
     * asked; taken over when that job is this process's own (a requeued task
     * now on another node), and the new lock names the job */
    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", dir, 1); /* no squeue there */
    f = fopen(lock, "w");
    fprintf(f, "pid 1 host some-other-host start 1 slurm 4242 4240_2\n");
    fclose(f);
    CHECK(sweep_lock_acquire(lock, holder, sizeof holder) == 1, "another host's Slurm job: kept without squeue");
    CHECK(strstr(holder, "slurm job 4240_2") != NULL, "holder names the task: '%s'", holder);
    setenv("SLURM_JOB_ID", "4242", 1);
    setenv("SLURM_ARRAY_JOB_ID", "4240", 1);
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    fflush(stderr);
    saved = dup(2);
    devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    r = sweep_lock_acquire(lock, holder, sizeof holder);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    CHECK(r == 0, "the lock of this task's own Slurm job taken over (got %d)", r);
    content[0] = 0;
    f = fopen(lock, "r");
    CHECK(f && fgets(content, sizeof content, f) && strstr(content, " slurm 4242 4240_2\n"),
          "the new lock names the Slurm job: '%s'", content);
    if (f) fclose(f);
    sweep_lock_release(lock);
    CHECK(sweep_lock_state(lock, holder, sizeof holder) == 0, "lock state: no lock");
    unsetenv("SLURM_JOB_ID");
    unsetenv("SLURM_ARRAY_JOB_ID");
    unsetenv("SLURM_ARRAY_TASK_ID");
    if (path) setenv("PATH", path, 1);
    free(path);
    unlink(lock);
    rmdir(dir);
}

/* slurm.h's readers of [slurm] values, against Slurm's documented formats. */
static void test_slurm_values(void) {
    const struct {
        const char *s;
        long minutes; /* -2: refused */
    } times[] = {{"30", 30},        {"1:30", 2},          {"12:00:00", 720}, {"2-00:00:00", 2880}, {"1-12", 2160},
                 {"1-0:30", 1470},  {"0-0:0:1", 1},       {"infinite", -1},  {"UNLIMITED", -1},    {"12h", -2},
                 {"", -2},          {"1:2:3:4", -2},      {"-5", -2},        {"1-", -2},           {"1:", -2}};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        long m = -3;
        int rc = slurm_parse_time(times[i].s, &m);
        if (times[i].minutes == -2) CHECK(rc != 0, "time '%s' refused (got %ld)", times[i].s, m);
        else CHECK(rc == 0 && m == times[i].minutes, "time '%s' = %ld min (got %d, %ld)", times[i].s, times[i].minutes, rc, m);
    }
    const struct {
        const char *s;
        long mb; /* -1: refused */
    } mems[] = {{"4000", 4000}, {"64G", 65536}, {"64g", 65536}, {"1T", 1048576}, {"512K", 1}, {"2M", 2},
                {"lots", -1},   {"4 G", -1},    {"", -1},       {"4GB", -1},     {"-1", -1}};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        long mb = -3;
        int rc = slurm_parse_mem(mems[i].s, &mb);
        if (mems[i].mb == -1) CHECK(rc != 0, "memory '%s' refused (got %ld)", mems[i].s, mb);
        else CHECK(rc == 0 && mb == mems[i].mb, "memory '%s' = %ld MB (got %d, %ld)", mems[i].s, mems[i].mb, rc, mb);
    }
    char why[256];
    CHECK(slurm_check_extra("--mail-type=END,FAIL; --exclusive;", why, sizeof why) == 0, "extra options accepted");
    CHECK(slurm_check_extra("--exclusive; nodes=2", why, sizeof why) != 0 && strstr(why, "'nodes=2'"),
          "extra: an item that is no option named: %s", why);
}

/* [eval] kld, [report] targets, [paper], [search], the lenient parse, and
 * experiment_make_point / search_next. */
static void test_metrics_sections(void) {
    const char *ref = "[model]\npath = data/models/stories260K/stories260K.bin\n"
                      "[methods]\nrun = rtn, gptq\nwbits = 3, 4\n[eval]\ndatasets = tinystories, ptb\n";
    char a[4096], b[4096], fa[16], fb[16];
    if (ids_of("a.ini", ref, a, sizeof a, fa) != 0) return;
    char *off = cat(ref, "kld = false\nkld_scope = all\n[report]\ntargets = +5%\n"
                         "[paper]\nx = method=rtn, wbits=4, dataset=ptb, ppl=9, source=s, t\n");
    ids_of("b.ini", off, b, sizeof b, fb);
    CHECK(!strcmp(a, b) && !strcmp(fa, fb), "kld off, [report] and [paper] leave the ids as they were");
    free(off);
    char *on = cat(ref, "kld = true\n");
    ids_of("c.ini", on, b, sizeof b, fb);
    CHECK(strcmp(a, b) != 0 && !strcmp(fa, fb), "kld on: new point ids, the same full-precision id");
    free(on);
    char c[4096];
    on = cat(ref, "kld = true\nkld_datasets = ptb\n");
    ids_of("d.ini", on, c, sizeof c, fb);
    CHECK(strcmp(c, b) != 0 && strcmp(c, a) != 0, "kld_datasets is part of the ids");
    free(on);
    on = cat(ref, "kld = true\nkld_datasets = c4\n");
    expect_error("kld_datasets outside [eval] datasets", on, "bad.ini:9: eval.kld_datasets: c4 is not one of the [eval] datasets", NULL);
    free(on);
    /* [eval] zeroshot: part of every id (full precision's too) when on; its folder is not */
    char z1[4096], z2[4096], fz1[16], fz2[16];
    on = cat(ref, "zeroshot = piqa, winogrande\nzeroshot_data = tests/fixtures/zeroshot\n");
    ids_of("z1.ini", on, z1, sizeof z1, fz1);
    free(on);
    on = cat(ref, "zeroshot = piqa, winogrande\nzeroshot_data = /elsewhere\n");
    ids_of("z2.ini", on, z2, sizeof z2, fz2);
    free(on);
    CHECK(strcmp(z1, a) != 0 && strcmp(fz1, fa) != 0, "zeroshot on: new point and full-precision ids");
    CHECK(!strcmp(z1, z2) && !strcmp(fz1, fz2), "zeroshot_data is not part of the ids");
    on = cat(ref, "zeroshot = piqa, winogrande\nzeroshot_limit = 10\n");
    ids_of("z3.ini", on, z2, sizeof z2, fz2);
    free(on);
    CHECK(strcmp(z1, z2) != 0, "zeroshot_limit is part of the ids");
    on = cat(ref, "zeroshot = piqa, boolq\n");
    expect_error("an unknown zero-shot task", on,
                 "bad.ini:8: eval.zeroshot: unknown zero-shot task 'boolq' (expected one of arc_easy, arc_challenge, piqa, "
                 "hellaswag, winogrande)", NULL);
    free(on);
    on = cat(ref, "zeroshot = piqa, piqa\n");
    expect_error("a zero-shot task named twice", on, "bad.ini:8: eval.zeroshot: piqa is named twice", NULL);
    free(on);
    on = cat(ref, "zeroshot_limit = -1\n");
    expect_error("a negative zeroshot_limit", on, "bad.ini:8: eval.zeroshot_limit: -1 is out of range", NULL);
    free(on);

    Experiment x;
    char *t = cat(ref, "[report]\ntargets = +5%, ptb:12.5, +1%\n"
                       "[paper]\ng = method=gptq, wbits=4, groupsize=row, dataset=ptb, ppl=9.5, source=a, b\n"
                       "e = method=gptq, dataset=tinystories, bits=3.5, at_ppl=4, source=c\n");
    int rc = parse_capture("m.ini", t, &x);
    free(t);
    CHECK(rc == 0, "targets and paper: %s", errbuf);
    if (rc == 0) {
        CHECK(x.ntargets == 3 && x.targets[0].relative && x.targets[0].value == 0.01 && x.targets[1].value == 0.05 &&
                  !strcmp(x.targets[2].dataset, "ptb") && x.targets[2].value == 12.5,
              "targets: +1%% first, the listed +1%% dropped as a duplicate (%d)", x.ntargets);
        CHECK(x.npaper == 2 && x.paper[0].line == 11 && x.paper[0].cond_num[1] == 0 && !strcmp(x.paper[0].source, "a, b") &&
                  x.paper[1].kind == PAPER_BITS, "paper entries (line %d)", x.npaper ? x.paper[0].line : 0);
    }
    experiment_free(&x);

    /* unset variables kept as written when asked (report of a file whose model is elsewhere) */
    unsetenv("QH_TEST_EXP_NOPE");
    const char *env = "[model]\npath = ${QH_TEST_EXP_NOPE}\n[methods]\nrun = rtn\n";
    capture_begin();
    rc = experiment_parse_flags("e.ini", env, EXP_PARSE_KEEP_UNSET, &x);
    capture_to_errbuf();
    CHECK(rc == 0 && !strcmp(x.model_path, "${QH_TEST_EXP_NOPE}"), "kept: '%s' %s", rc == 0 ? x.model_path : "", errbuf);
    experiment_free(&x);
    expect_error("unset variable, strict", env, "bad.ini:2: model.path: environment variable QH_TEST_EXP_NOPE is not set", NULL);

    /* a search: its base point, a point made from it */
    t = cat("[model]\npath = data/models/stories260K/stories260K.bin\n[methods]\nrun = rtn, gptq\nwbits = 3\n"
            "[eval]\ndatasets = tinystories, ptb\n",
            "[search]\nmethod = gptq\nkey = groupsize\nlo = 64\nhi = 4\ntarget = +2%\n");
    rc = parse_capture("s.ini", t, &x);
    free(t);
    CHECK(rc == 0, "search: %s", errbuf);
    if (rc == 0) {
        CHECK(x.search.on && !strcmp(x.search.method, "gptq") && x.search.lo == 64 && x.search.hi == 4 &&
                  !strcmp(x.search.target.dataset, "tinystories") && x.search.tolerance == 1 &&
                  !strcmp(x.points[x.search.base].spec.method, "gptq"),
              "search resolved: target on the first [eval] dataset");
        QuantRunSpec sp = x.points[x.search.base].spec;
        sp.params.groupsize = 23;
        ExpPoint pt;
        CHECK(experiment_make_point(&x, &sp, NULL, &pt) == 0 && !strcmp(pt.label, "gptq w3 g23") && strlen(pt.id) == 12,
              "a step's point");
        experiment_point_free(&pt);
        sp.params.wbits = 9;
        capture_begin();
        CHECK(experiment_make_point(&x, &sp, NULL, &pt) != 0, "an invalid step is refused");
        capture_to_errbuf();
    }
    experiment_free(&x);
    expect_error("search groupsize not an integer",
                 "[model]\npath = m\n[methods]\nrun = gptq\n[search]\nmethod = gptq\nkey = groupsize\nlo = 4.5\nhi = 8\n",
                 "bad.ini:8: search.lo: 4.5 does not fit groupsize (expected an integer", NULL);
    expect_error("search of a key the method does not use",
                 "[model]\npath = m\n[methods]\nrun = gptq\n[search]\nmethod = gptq\nkey = outlier_threshold\nlo = 0.1\n"
                 "hi = 1\n",
                 "search.key: gptq does not use outlier_threshold", NULL);
    expect_error("paper dataset unknown", "[model]\npath = m\n[methods]\nrun = rtn\n[paper]\nx = method=fp16, dataset=wiki, "
                 "ppl=5, source=s\n", "bad.ini:6: paper.x: unknown dataset 'wiki'", NULL);
    expect_error("paper defined twice", "[model]\npath = m\n[methods]\nrun = rtn\n[paper]\nx = method=fp16, "
                 "dataset=ptb, ppl=5, source=s\nx = method=fp16, dataset=ptb, ppl=6, source=s\n",
                 "bad.ini:7: paper.x: defined twice (first at line 6", NULL);

    /* the next bisection step */
    CHECK(search_next(4, 64, 1, 1) == 34 && search_next(64, 4, 1, 1) == 34, "midpoint of 4 and 64");
    CHECK(isnan(search_next(6, 7, 1, 1)) && isnan(search_next(6, 7, 0.1, 1)), "adjacent integers: done");
    CHECK(search_next(6, 8, 1, 1) == 7 && isnan(search_next(6, 8, 2, 1)), "tolerance 2 stops at a gap of 2");
    CHECK(search_next(0.1, 0.2, 0.01, 0) == 0.15000000000000002 || fabs(search_next(0.1, 0.2, 0.01, 0) - 0.15) < 1e-15,
          "continuous midpoint");
    CHECK(isnan(search_next(0.1, 0.105, 0.01, 0)), "within the tolerance");
}

int main(void) {
    test_product();
    test_metrics_sections();
    test_ids();
    test_env();
    test_errors();
    test_syntax_first();
    test_run_checks();
    test_locks();
    test_slurm_values();
    if (cap_dir_made) rmdir(cap_dir);
    return test_summary();
}
