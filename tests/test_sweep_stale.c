/* test_sweep_stale.c: a point file made before a setting flagged QS_NEW
 * existed (stats_dtype) has the point's id (the setting is left out of the id
 * at its default) but no /settings attribute of it, so it was computed as
 * quant_setting_before() says (stats_dtype fp16: weights decoded from fp16
 * values); the sweep recomputes it instead of reporting it done, with a
 * warning naming the file and the setting; the recomputed file records the
 * setting (/settings/stats_dtype = fp32) and a second run leaves it alone.
 * One RTN point on stories260K (no calibration, one evaluation window).
 * Not here: ids themselves (test_experiment.c), kill and resume, locks
 * (tests/cli/test_sweep.sh). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "experiment.h"
#include "h5io.h"
#include "quant.h"
#include "sweep.h"
#include "util.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

/* /settings/stats_dtype (-1 when absent) and created_ns (-1) of a point file. */
static void file_state(const char *path, int64_t *dtype, int64_t *created) {
    H5File *f;
    *dtype = *created = -1;
    if (h5_open_read(path, &f) != 0) return;
    if (h5_exists(f, "/settings") && h5_has_attr(f, "/settings", "stats_dtype"))
        h5_get_attr_i64(f, "/settings", "stats_dtype", dtype);
    h5_get_attr_i64(f, "/", "created_ns", created);
    h5_abort(&f);
}

int main(void) {
    char model[1024];
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.bin", root());
    if (access(model, R_OK) != 0) {
        SKIP("stories260K not found under QH_DATA");
        return test_summary();
    }
    char dir[] = "/tmp/qh_stale_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary();
    }
    char text[2048];
    snprintf(text, sizeof text,
             "[model]\npath = %s\n[methods]\nrun = rtn\nwbits = 4\n"
             "[eval]\ndatasets = tinystories\nseqlen = 64\nmax_windows = 1\n[output]\ndir = %s/out\n",
             model, dir);
    Experiment x;
    cap_begin_in(dir);
    int prc = experiment_parse("stale.ini", text, &x);
    free(cap_end());
    CHECK(prc == 0 && x.npoints == 1, "tiny experiment parses to one point");
    if (prc != 0 || x.npoints != 1) return test_summary();
    const ExpPoint *p = &x.points[0];
    /* the file an earlier version wrote: the same id and settings JSON (stats_dtype at its default is not in
     * it), no /settings */
    CHECK(!strstr(p->json, "stats_dtype") && p->spec.params.stats_dtype == QH_STATS_FP32,
          "the point is in the reference mode and its JSON does not name stats_dtype: %s", p->json);
    char pdir[600], path[700];
    snprintf(pdir, sizeof pdir, "%s/out/points", dir);
    snprintf(path, sizeof path, "%s/%s.h5", pdir, p->id);
    mkdir(x.out_dir, 0755);
    mkdir(pdir, 0755);
    H5File *f;
    int ok = h5_create(path, &f) == 0;
    if (ok) {
        ok = h5_attr_str(f, "/", "point_id", p->id) == 0 && h5_attr_str(f, "/", "settings_json", p->json) == 0;
        ok = h5_commit(&f) == 0 && ok;
    }
    CHECK(ok, "stale point file written");
    char *argv0[] = {"test_sweep_stale"};
    SweepOptions o = {.only = NULL, .jobs = 1, .argc = 1, .argv = argv0};
    cap_begin_in(dir);
    int rc = sweep_run(&x, &o);
    char *err = cap_end();
    CHECK(rc == 0, "sweep exit status (%s)", err);
    CHECK(strstr(err, path) && strstr(err, "computed with stats_dtype = fp16") && strstr(err, "recomputed"),
          "the stale file is named and recomputed: '%s'", err);
    free(err);
    int64_t d1, d2, c1, c2;
    file_state(path, &d1, &c1);
    CHECK(d1 == QH_STATS_FP32, "the recomputed file records /settings/stats_dtype = fp32 (%lld)", (long long)d1);
    CHECK(c1 > 0, "the recomputed file is a finished point (created_ns %lld)", (long long)c1);
    /* a second run finds it done */
    cap_begin_in(dir);
    rc = sweep_run(&x, &o);
    err = cap_end();
    file_state(path, &d2, &c2);
    CHECK(rc == 0 && c2 == c1 && d2 == d1 && !strstr(err, "recomputed"), "second run: done earlier, not recomputed (%s)",
          err);
    free(err);
    experiment_free(&x);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", dir);
    return test_summary();
}
