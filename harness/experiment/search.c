/* search.c: bisection of one knob to a target perplexity (see search.h).
 * Steps: the full-precision evaluation, both ends of the range, then the
 * midpoint of the setting that reaches the target and the one that misses it,
 * until they are within the tolerance. */
#define _GNU_SOURCE
#include "search.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment_check.h"
#include "h5io.h"
#include "util.h"

double search_next(double good, double bad, double tol, int integer) {
    double gap = fabs(good - bad);
    if (!(gap > tol) || (integer && gap <= 1)) return NAN;
    double mid = (good + bad) / 2;
    return integer ? floor(mid) : mid;
}

typedef struct Step {
    double value;   /* the knob */
    double bits;    /* SPEC 6 average bits */
    double ppl;     /* on the target's dataset */
    int reaches;
    ExpPoint pt;
} Step;

/* A point file's average bits and perplexity on `ds`; -1 after a message. */
static int read_result(const char *file, const char *ds, double *bits, double *ppl) {
    H5File *f;
    if (h5_open_read(file, &f) != 0) return -1;
    char g[600];
    qh_pathf(g, sizeof g, "/eval/%s", ds);
    for (char *c = g + 6; *c; c++)
        if (*c == '/') *c = '|';
    int rc = h5_get_attr_f64(f, g, "ppl", ppl);
    *bits = NAN;
    if (rc == 0 && h5_exists(f, "/quant")) rc = h5_get_attr_f64(f, "/quant", "avg_bits", bits);
    h5_abort(&f);
    if (rc != 0) return qh_error("'%s': no perplexity on %s or no average bits", file, ds);
    return 0;
}

static void set_knob(QuantRunSpec *sp, const char *key, double v) {
    if (!strcmp(key, "groupsize")) sp->params.groupsize = (int)v;
    else if (!strcmp(key, "wbits")) sp->params.wbits = (int)v;
    else sp->params.outlier_threshold = v;
}

static void knob_text(const char *key, double v, char *buf, size_t n) {
    if (!strcmp(key, "outlier_threshold")) snprintf(buf, n, "%s=%g", key, v);
    else snprintf(buf, n, "%s=%.0f", key, v);
}

/* Run the point of setting v as step k; -1 after a message. */
static int run_step(const Experiment *x, SweepRunner *rn, double v, const char *ds, double target, Step *s, int k) {
    memset(s, 0, sizeof *s);
    s->value = v;
    QuantRunSpec spec = x->points[x->search.base].spec;
    set_knob(&spec, x->search.key, v);
    char extra[64] = "", tag[32], file[PATH_MAX];
    if (!strcmp(x->search.key, "outlier_threshold")) knob_text(x->search.key, v, extra, sizeof extra);
    if (experiment_make_point(x, &spec, extra, &s->pt) != 0)
        return qh_error("%s: [search] %s = %g is not a valid setting of %s (above)", x->path, x->search.key, v,
                        x->search.method);
    snprintf(tag, sizeof tag, "[step %d]", k);
    if (sweep_runner_job(rn, &s->pt, tag) != 0) return -1;
    sweep_result_path(x, &s->pt, file, sizeof file);
    if (read_result(file, ds, &s->bits, &s->ppl) != 0) return -1;
    s->reaches = s->ppl <= target;
    return 0;
}

int search_run(const Experiment *x, const SweepOptions *o) {
    double t0 = qh_now();
    const char *ds = x->search.target.dataset, *key = x->search.key;
    int integer = strcmp(key, "outlier_threshold") != 0;
    printf("search %s: bisect %s %s over %g..%g (tolerance %g), results in %s\n", x->name, x->search.method, key,
           x->search.lo, x->search.hi, x->search.tolerance, x->out_dir);
    /* both ends must fit the model's sub-layers before anything runs */
    ModelConfig c;
    ExpPoint ends_pt[2];
    int bad_end = experiment_model_config(x, &c);
    for (int i = 0; i < 2; i++) {
        QuantRunSpec spec = x->points[x->search.base].spec;
        set_knob(&spec, key, i ? x->search.hi : x->search.lo);
        if (experiment_make_point(x, &spec, NULL, &ends_pt[i]) != 0) bad_end = -1;
    }
    if (bad_end == 0) {
        Experiment y = *x;
        y.points = ends_pt;
        y.npoints = 2;
        bad_end = experiment_check_shapes(&y, &c);
    }
    for (int i = 0; i < 2; i++) experiment_point_free(&ends_pt[i]);
    if (bad_end != 0) return qh_error("%s: [search] lo..hi does not fit the model (above)", x->path);
    SweepRunner *rn = sweep_runner_new(x, o);
    if (!rn) return -1;
    int cap = 64, n = 0, rc = 0;
    Step *steps = qh_calloc((size_t)cap, sizeof(Step));
    /* the target */
    double target = x->search.target.value, fp = NAN;
    rc = sweep_runner_job(rn, NULL, "[fp]");
    char file[PATH_MAX];
    sweep_result_path(x, NULL, file, sizeof file);
    double unused;
    if (rc == 0) rc = read_result(file, ds, &unused, &fp);
    if (rc == 0 && x->search.target.relative) target = fp * (1 + x->search.target.value);
    if (rc == 0)
        printf("target: %s ppl <= %.6g%s\n", ds, target,
               x->search.target.relative ? " (full precision + the relative target)" : "");
    /* both ends, then bisection */
    double ends[2] = {x->search.lo, x->search.hi};
    for (int i = 0; i < 2 && rc == 0; i++) rc = run_step(x, rn, ends[i], ds, target, &steps[n], n + 1), n += rc == 0;
    const Step *good = NULL, *bad = NULL;
    if (rc == 0) {
        if (steps[0].reaches != steps[1].reaches) {
            good = steps[0].reaches ? &steps[0] : &steps[1];
            bad = steps[0].reaches ? &steps[1] : &steps[0];
        }
        double v;
        while (good && !isnan(v = search_next(good->value, bad->value, x->search.tolerance, integer))) {
            if (n == cap) break; /* 64 halvings of any range reach any tolerance */
            if ((rc = run_step(x, rn, v, ds, target, &steps[n], n + 1)) != 0) break;
            n++;
            if (steps[n - 1].reaches) good = &steps[n - 1];
            else bad = &steps[n - 1];
        }
    }
    sweep_runner_free(rn);
    if (rc != 0 && n < cap) experiment_point_free(&steps[n].pt); /* the step that failed */
    /* outcome, steps: stdout and <out>/search.md */
    char *md = NULL;
    size_t mdn = 0;
    FILE *m = open_memstream(&md, &mdn);
    fprintf(m, "# search %s\n\nBisection of %s's %s over %g..%g to reach %s perplexity <= %.6g", x->name,
            x->search.method, key, x->search.lo, x->search.hi, ds, target);
    if (x->search.target.relative) fprintf(m, " (full precision %.6g + %g%%)", fp, 100 * x->search.target.value);
    fprintf(m, ", tolerance %g. The other settings: point %s (%s).\n\n", x->search.tolerance,
            x->points[x->search.base].id, x->points[x->search.base].label);
    fprintf(m, "| step | %s | avg bits | %s ppl | reaches the target | id |\n|---:|---:|---:|---:|---|---|\n", key, ds);
    for (int i = 0; i < n; i++)
        fprintf(m, "| %d | %g | %.4f | %.4f | %s | %s |\n", i + 1, steps[i].value, steps[i].bits, steps[i].ppl,
                steps[i].reaches ? "yes" : "no", steps[i].pt.id);
    if (rc != 0) {
        fprintf(m, "\nStopped: step %d failed (see the error above); rerun to resume.\n", n + 1);
    } else if (good) {
        fprintf(m, "\nResult: %s = %g reaches the target at %.4f bits (ppl %.4f); %s = %g misses it (ppl %.4f, %.4f "
                   "bits). They are within the tolerance: the boundary lies between them.\n",
                key, good->value, good->bits, good->ppl, key, bad->value, bad->ppl, bad->bits);
    } else if (steps[0].reaches) {
        const Step *c = steps[0].bits <= steps[1].bits ? &steps[0] : &steps[1];
        fprintf(m, "\nResult: both ends reach the target; the cheaper one, %s = %g, at %.4f bits (ppl %.4f). Fewer "
                   "bits may reach it outside the range searched (widen lo..hi to look).\n",
                key, c->value, c->bits, c->ppl);
    } else {
        const Step *c = steps[0].ppl <= steps[1].ppl ? &steps[0] : &steps[1];
        fprintf(m, "\nResult: not reached in the range searched: the best end, %s = %g, gives ppl %.4f > %.6g (at "
                   "%.4f bits). Nothing is extrapolated.\n",
                key, c->value, c->ppl, target, c->bits);
    }
    fclose(m);
    printf("\n%s", md);
    /* the steps are the experiment's points now: report and plot show them */
    Experiment y = *x;
    ExpPoint *pts = qh_calloc((size_t)n + 1, sizeof(ExpPoint));
    for (int i = 0; i < n; i++) pts[i] = steps[i].pt;
    y.points = pts;
    y.npoints = n;
    if (n && sweep_write_manifest(&y) != 0) rc = -1;
    char path[PATH_MAX];
    qh_pathf(path, sizeof path, "%s/search.md", x->out_dir);
    if (qh_write_file_atomic(path, md, mdn) != 0) rc = -1;
    printf("search %s: %d steps (%.1f s); written: %s\n", x->name, n, qh_now() - t0, path);
    free(md);
    free(pts);
    for (int i = 0; i < n; i++) experiment_point_free(&steps[i].pt);
    free(steps);
    return rc;
}
