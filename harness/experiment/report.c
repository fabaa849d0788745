/* report.c: an experiment's results folder read back, its table (Markdown and
 * CSV) and the data files + gnuplot runs of its plots (see report.h). */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "h5io.h"
#include "model.h"
#include "settings.h"
#include "speed_run.h"
#include "util.h"
#include "zeroshot.h"

extern char **environ;

/* Methods in the order of quant_methods[] (settings.h); an unknown one last. */
#define NMETHODS quant_nmethods()
static int method_rank(const char *m) {
    int i = quant_method_index(m);
    return i < 0 ? NMETHODS : i;
}
static const char *method_title(int rank) { return quant_methods[rank].title; }
static int has_outliers(const char *m) {
    const QuantMethod *qm = quant_method_find(m);
    return qm && (qm->caps & QUANT_CAP_OUTLIERS);
}

/* A growing string. */
typedef struct Buf {
    char *s;
    size_t n, cap;
} Buf;
static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && (size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = qh_realloc(b->s, b->cap);
        if (b->n == 0) b->s[0] = 0;
    }
}


/* ---- loading ---------------------------------------------------------------------------------- */

static void eval_group(char *g, size_t n, const char *ds) {
    qh_pathf(g, n, "/eval/%s", ds);
    for (char *c = g + 6; *c; c++)
        if (*c == '/') *c = '|';
}

/* ppl[d]: NAN when dataset d was not evaluated; bad[d] = 1 when it was and
 * its perplexity is not finite (a failed evaluation, sweep.c). */
static void read_ppl(H5File *f, const Report *r, double *ppl, unsigned char *bad) {
    for (int d = 0; d < r->ndatasets; d++) {
        char g[600];
        eval_group(g, sizeof g, r->datasets[d]);
        ppl[d] = NAN;
        bad[d] = 0;
        if (h5_exists(f, g) && h5_get_attr_f64(f, g, "ppl", &ppl[d]) == 0) bad[d] = !isfinite(ppl[d]);
    }
}

/* Where the text of group g came from, "ORIGIN, sha256 0123456789abcdef" (allocated), from the
 * attributes written by results.c / quant_io.c (the split or source file for files written before
 * the origin was recorded); NULL when g or its digest is absent or empty (no calibration). */
static char *source_text(H5File *f, const char *g, const char *origin, const char *fallback, const char *sha_attr) {
    char *o = NULL, *sha = NULL, *out = NULL;
    if (!h5_exists(f, g) || !h5_has_attr(f, g, sha_attr) || h5_get_attr_str(f, g, sha_attr, &sha) != 0) return NULL;
    if (*sha) {
        if (h5_has_attr(f, g, origin)) h5_get_attr_str(f, g, origin, &o);
        if ((!o || !*o) && h5_has_attr(f, g, fallback)) {
            free(o);
            o = NULL;
            h5_get_attr_str(f, g, fallback, &o);
        }
        size_t n = (o ? strlen(o) : 0) + 64;
        out = qh_malloc(n);
        snprintf(out, n, "%s, sha256 %.16s", o && *o ? o : "(not recorded)", sha);
    }
    free(o);
    free(sha);
    return out;
}

static char **read_sources(H5File *f, const Report *r) {
    char **src = qh_calloc((size_t)r->ndatasets + 1, sizeof(char *));
    for (int d = 0; d < r->ndatasets; d++) {
        char g[600];
        eval_group(g, sizeof g, r->datasets[d]);
        src[d] = source_text(f, g, "dataset_origin", "dataset_split", "dataset_sha256");
    }
    return src;
}

static void free_sources(char **src, int n) {
    for (int d = 0; src && d < n; d++) free(src[d]);
    free(src);
}

/* The root "status" of a result file: 1 when it records a failed run (its
 * reason, or the status, in *why: owned), 0 for "ok" or files without one. */
static int read_failed(H5File *f, char **why) {
    char *st = NULL;
    *why = NULL;
    if (!h5_has_attr(f, "/", "status") || h5_get_attr_str(f, "/", "status", &st) != 0 || !strcmp(st, "ok")) {
        free(st);
        return 0;
    }
    if (!h5_has_attr(f, "/", "failure") || h5_get_attr_str(f, "/", "failure", why) != 0) *why = qh_strdup(st);
    free(st);
    return 1;
}

/* mean KLD and top-token agreement of each dataset (NAN where not measured) */
static void read_kld(H5File *f, const Report *r, double *kld, double *top) {
    for (int d = 0; d < r->ndatasets; d++) {
        char g[640];
        eval_group(g, sizeof g, r->datasets[d]);
        strcat(g, "/kld");
        kld[d] = top[d] = NAN;
        if (!h5_exists(f, g)) continue;
        h5_get_attr_f64(f, g, "kld_mean", &kld[d]);
        h5_get_attr_f64(f, g, "same_top", &top[d]);
    }
}

/* zs[t]: each [eval] zeroshot task's accuracies (NAN where the file has none). */
static ReportZs *read_zs(H5File *f, const Report *r) {
    ReportZs *zs = qh_malloc(sizeof(ReportZs) * (size_t)(r->nzs ? r->nzs : 1));
    for (int t = 0; t < r->nzs; t++) {
        char g[600];
        qh_pathf(g, sizeof g, "/eval/zeroshot/%s", r->zs_tasks[t]);
        ReportZs *z = &zs[t];
        z->acc = z->acc_stderr = z->acc_norm = z->acc_norm_stderr = z->n = NAN;
        if (!h5_exists(f, g)) continue;
        int64_t n = 0;
        h5_get_attr_f64(f, g, "acc", &z->acc);
        h5_get_attr_f64(f, g, "acc_stderr", &z->acc_stderr);
        h5_get_attr_f64(f, g, "acc_norm", &z->acc_norm);
        h5_get_attr_f64(f, g, "acc_norm_stderr", &z->acc_norm_stderr);
        if (h5_get_attr_i64(f, g, "n", &n) == 0) z->n = (double)n;
    }
    return zs;
}

static int load_point(Report *r, const char *file, ReportPoint *p) {
    memset(p, 0, sizeof *p);
    H5File *f;
    if (h5_open_read(file, &f) != 0) return -1;
    char *id = NULL, *method = NULL, *label = NULL, *settings = NULL;
    int rc = 0;
    rc |= h5_get_attr_str(f, "/", "point_id", &id);
    rc |= h5_get_attr_str(f, "/", "method", &method);
    rc |= h5_get_attr_str(f, "/", "label", &label);
    rc |= h5_get_attr_str(f, "/", "settings_json", &settings);
    rc |= h5_get_attr_f64(f, "/quant", "avg_bits", &p->avg_bits);
    rc |= h5_get_attr_f64(f, "/quant", "stored_bits", &p->stored_bits);
    rc |= h5_get_attr_f64(f, "/quant", "outlier_fraction", &p->outlier_fraction);
    double tq = 0, te = 0;
    h5_get_attr_f64(f, "/", "seconds_quantize", &tq);
    h5_get_attr_f64(f, "/", "seconds_eval", &te);
    p->seconds = tq + te;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (rc == 0 && (strlen(base) != strlen(id) + 3 || strncmp(base, id, strlen(id)) != 0 || strcmp(base + strlen(id), ".h5"))) {
        /* the sweep names each file by its point; another name is a copy or a rename */
        qh_error("'%s' holds point %s (its point_id), not the point its name says: a copied or renamed file would "
                 "put one point in the table twice (remove it, or rerun the sweep)", file, id);
        rc = -2;
    }
    if (rc == 0) {
        snprintf(p->id, sizeof p->id, "%s", id);
        snprintf(p->method, sizeof p->method, "%s", method);
        p->label = qh_strdup(label);
        p->settings = json_loads(settings, 0, NULL);
        p->ppl = qh_malloc(sizeof(double) * (size_t)(r->ndatasets ? r->ndatasets : 1));
        p->bad = qh_calloc((size_t)(r->ndatasets ? r->ndatasets : 1), 1);
        read_ppl(f, r, p->ppl, p->bad);
        p->failed = read_failed(f, &p->failure);
        p->src = read_sources(f, r);
        p->calib_src = source_text(f, "/quant", "calib_origin", "calib_source", "calib_sha256");
        p->kld = qh_malloc(sizeof(double) * (size_t)(r->ndatasets ? r->ndatasets : 1));
        p->same_top = qh_malloc(sizeof(double) * (size_t)(r->ndatasets ? r->ndatasets : 1));
        read_kld(f, r, p->kld, p->same_top);
        p->zs = read_zs(f, r);
        void *data;
        int64_t d0, d1;
        if (h5_exists(f, "/quant/layer_outlier_fraction") &&
            h5_read(f, "/quant/layer_outlier_fraction", H5T_QH_F64, &data, &d0, &d1) == 0) {
            char *cols = NULL; /* the family's linear names, "wq,wk,..." */
            int ncols = 0;
            if (h5_get_attr_str(f, "/quant/layer_outlier_fraction", "columns", &cols) == 0) {
                ncols = 1;
                for (const char *q = cols; *q; q++) ncols += *q == ',';
            }
            if (cols && d1 == ncols && d1 <= LIN_COUNT) {
                p->layer_outliers = data;
                p->n_layers = (int)d0;
                p->n_lin = (int)d1;
                p->lin_names = qh_calloc((size_t)ncols, sizeof(char *));
                char *save = NULL, *tok = strtok_r(cols, ",", &save);
                for (int k = 0; k < ncols && tok; k++, tok = strtok_r(NULL, ",", &save)) p->lin_names[k] = qh_strdup(tok);
            } else {
                free(data);
            }
            free(cols);
        }
    } else if (rc != -2) {
        qh_warn("'%s' lacks the attributes of a sweep point: ignored", file);
    }
    free(id);
    free(method);
    free(label);
    free(settings);
    h5_abort(&f);
    return rc == -2 ? -2 : rc ? -1 : 0;
}

static void point_free(ReportPoint *p, int ndatasets) {
    free_sources(p->src, ndatasets);
    free(p->calib_src);
    free(p->label);
    json_decref(p->settings);
    free(p->ppl);
    free(p->bad);
    free(p->failure);
    free(p->kld);
    free(p->same_top);
    free(p->zs);
    free(p->layer_outliers);
    for (int k = 0; p->lin_names && k < p->n_lin; k++) free(p->lin_names[k]);
    free(p->lin_names);
    memset(p, 0, sizeof *p);
}

/* Position of id in the manifest's point list, or -1. */
static int manifest_index(const Report *r, const char *id) {
    json_t *pts = r->manifest ? json_object_get(r->manifest, "points") : NULL;
    size_t i;
    json_t *v;
    json_array_foreach(pts, i, v) {
        const char *s = json_string_value(json_object_get(v, "id"));
        if (s && !strcmp(s, id)) return (int)i;
    }
    return -1;
}

static double setting_num(const ReportPoint *p, const char *key) {
    json_t *q = json_object_get(p->settings, "quant");
    json_t *v = json_object_get(q, key);
    if (json_is_number(v)) return json_number_value(v);
    if (json_is_string(v) && !strcmp(json_string_value(v), "inf")) return INFINITY;
    return NAN;
}
static int cmp_points(const void *a, const void *b, void *report) {
    const ReportPoint *x = a, *y = b;
    int ia = manifest_index(report, x->id), ib = manifest_index(report, y->id);
    if (ia != ib) return ia < ib ? -1 : 1;
    int ma = method_rank(x->method), mb = method_rank(y->method);
    if (ma != mb) return ma - mb;
    if (x->avg_bits != y->avg_bits) return x->avg_bits < y->avg_bits ? -1 : 1;
    return strcmp(x->id, y->id);
}

int report_load(const char *dir, Report *r) {
    memset(r, 0, sizeof *r);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return qh_error("'%s' is not a results folder (run qharness sweep experiments/NAME.ini first)", dir);
    r->dir = qh_strdup(dir);
    size_t l = strlen(r->dir);
    while (l > 1 && r->dir[l - 1] == '/') r->dir[--l] = 0;
    char path[PATH_MAX];
    qh_pathf(path, sizeof path, "%s/sweep.json", r->dir);
    json_error_t err;
    if (access(path, R_OK) == 0) {
        r->manifest = json_load_file(path, 0, &err);
        if (!r->manifest) return qh_error("%s:%d: not valid JSON: %s", path, err.line, err.text);
    } else {
        qh_warn("'%s' is missing: reporting every point file found", path);
    }
    const char *base = strrchr(r->dir, '/');
    const char *name = r->manifest ? json_string_value(json_object_get(r->manifest, "experiment")) : NULL;
    r->name = qh_strdup(name ? name : base ? base + 1 : r->dir);
    const char *desc = r->manifest ? json_string_value(json_object_get(r->manifest, "description")) : NULL;
    r->description = qh_strdup(desc ? desc : "");
    /* the evaluation datasets: from the manifest, else from the first point file */
    json_t *eval = NULL, *owned = NULL;
    glob_t g;
    char pat[PATH_MAX];
    qh_pathf(pat, sizeof pat, "%s/points/*.h5", r->dir);
    int found = glob(pat, 0, NULL, &g) == 0;
    if (r->manifest) {
        eval = json_object_get(json_object_get(r->manifest, "fp_settings"), "eval");
    } else if (found && g.gl_pathc > 0) {
        H5File *f;
        char *s = NULL;
        if (h5_open_read(g.gl_pathv[0], &f) == 0) {
            if (h5_get_attr_str(f, "/", "settings_json", &s) == 0) owned = json_loads(s, 0, NULL);
            free(s);
            h5_abort(&f);
        }
        eval = json_object_get(owned, "eval");
    }
    json_t *ds = json_object_get(eval, "datasets");
    r->ndatasets = (int)json_array_size(ds);
    r->datasets = qh_calloc((size_t)r->ndatasets + 1, sizeof(char *));
    for (int d = 0; d < r->ndatasets; d++) r->datasets[d] = qh_strdup(json_string_value(json_array_get(ds, (size_t)d)));
    json_t *zt = json_object_get(eval, "zeroshot"); /* [eval] zeroshot, in the ids only when on */
    r->nzs = (int)json_array_size(zt);
    r->zs_tasks = qh_calloc((size_t)r->nzs + 1, sizeof(char *));
    for (int t = 0; t < r->nzs; t++) {
        const char *s = json_string_value(json_array_get(zt, (size_t)t));
        r->zs_tasks[t] = qh_strdup(s ? s : "?");
    }
    json_decref(owned);
    /* the points present */
    int cap = 0, misnamed = 0;
    for (size_t i = 0; found && i < g.gl_pathc; i++) {
        ReportPoint p;
        int lr = load_point(r, g.gl_pathv[i], &p);
        misnamed += lr == -2;
        if (lr != 0) continue;
        if (r->manifest && manifest_index(r, p.id) < 0) {
            r->nstale++;
            point_free(&p, r->ndatasets);
            continue;
        }
        if (r->npoints == cap) r->points = qh_realloc(r->points, sizeof(ReportPoint) * (size_t)(cap = cap * 2 + 8));
        r->points[r->npoints++] = p;
    }
    if (found) globfree(&g);
    if (misnamed) return qh_error("'%s': %d point file%s not named by %s point: no table written", r->dir, misnamed,
                                  misnamed == 1 ? " is" : "s are", misnamed == 1 ? "its" : "their");
    qsort_r(r->points, (size_t)r->npoints, sizeof(ReportPoint), cmp_points, r); /* the manifest's order */
    /* the full-precision evaluation */
    r->fp_ppl = qh_malloc(sizeof(double) * (size_t)(r->ndatasets ? r->ndatasets : 1));
    r->fp_bad = qh_calloc((size_t)(r->ndatasets ? r->ndatasets : 1), 1);
    for (int d = 0; d < r->ndatasets; d++) r->fp_ppl[d] = NAN;
    const char *want = r->manifest ? json_string_value(json_object_get(r->manifest, "fp_id")) : NULL;
    if (want) qh_pathf(path, sizeof path, "%s/fp/%s.h5", r->dir, want);
    if (want && access(path, R_OK) == 0) {
        H5File *f;
        if (h5_open_read(path, &f) == 0) {
            char *fid = NULL;
            if (h5_get_attr_str(f, "/", "fp_id", &fid) == 0 && !strcmp(want, fid)) {
                read_ppl(f, r, r->fp_ppl, r->fp_bad);
                r->fp_src = read_sources(f, r);
                free(r->fp_zs);
                r->fp_zs = read_zs(f, r);
                r->have_fp = 1;
                r->fp_failed = read_failed(f, &r->fp_failure);
            } else {
                qh_warn("'%s' holds another fp_id than its name: ignored", path);
            }
            free(fid);
            h5_abort(&f);
        }
    }
    /* what is missing */
    Buf miss = {0};
    json_t *pts = r->manifest ? json_object_get(r->manifest, "points") : NULL;
    size_t i;
    json_t *v;
    r->nexpected = (int)json_array_size(pts);
    json_array_foreach(pts, i, v) {
        const char *id = json_string_value(json_object_get(v, "id"));
        int found = 0;
        for (int k = 0; k < r->npoints && id; k++) found |= !strcmp(r->points[k].id, id);
        if (!found) {
            r->nmissing++;
            bprintf(&miss, "%s%s (%s)", miss.n ? "; " : "", id ? id : "?",
                    json_string_value(json_object_get(v, "label")) ? json_string_value(json_object_get(v, "label")) : "");
        }
    }
    r->missing = miss.s ? miss.s : qh_strdup("");
    /* what failed: kept in the table, listed as failed */
    Buf fl = {0};
    for (int k = 0; k < r->npoints; k++)
        if (r->points[k].failed) {
            r->nfailed++;
            bprintf(&fl, "%s%s (%s): %s", fl.n ? "; " : "", r->points[k].id, r->points[k].label, r->points[k].failure);
        }
    r->failed = fl.s ? fl.s : qh_strdup("");
    /* the experiment itself, for its [report] targets and [paper] values */
    const char *ini = r->manifest ? json_string_value(json_object_get(r->manifest, "experiment_ini")) : NULL;
    const char *ipath = r->manifest ? json_string_value(json_object_get(r->manifest, "experiment_file")) : NULL;
    if (ini) {
        r->x = qh_calloc(1, sizeof(Experiment));
        if (experiment_parse_flags(ipath ? ipath : r->name, ini, EXP_PARSE_KEEP_UNSET, r->x) != 0) {
            qh_warn("%s: the experiment recorded in sweep.json cannot be parsed (above): its targets and published "
                    "values are not shown", path);
            experiment_free(r->x);
            QH_FREE(r->x);
        }
    }
    r->kld_dataset = -1;
    for (int d = 0; d < r->ndatasets && r->kld_dataset < 0; d++)
        for (int i = 0; i < r->npoints; i++)
            if (!isnan(r->points[i].kld[d])) r->kld_dataset = d;
    if (r->npoints == 0) qh_warn("no finished point under '%s/points'", r->dir);
    return 0;
}

int report_load_ini(const char *ini, Report *r) {
    memset(r, 0, sizeof *r);
    Experiment *x = qh_calloc(1, sizeof *x);
    char *text;
    size_t len;
    if (qh_read_file(ini, &text, &len) != 0) {
        free(x);
        return qh_error("experiment file '%s' cannot be read", ini);
    }
    int rc = experiment_parse_flags(ini, text, EXP_PARSE_KEEP_UNSET, x);
    free(text);
    if (rc != 0) {
        experiment_free(x);
        free(x);
        return -1;
    }
    struct stat sb;
    if (stat(x->out_dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (report_load(x->out_dir, r) != 0) {
            experiment_free(x);
            free(x);
            return -1;
        }
        if (r->x) experiment_free(r->x);
        free(r->x);
        r->x = x; /* the file as it is now */
        return 0;
    }
    /* not swept yet: the published values alone */
    r->x = x;
    r->no_folder = 1;
    r->dir = qh_strdup(x->out_dir);
    r->name = qh_strdup(x->name);
    r->description = qh_strdup(experiment_value(x, ES_EXPERIMENT, "description", NULL));
    char *d = qh_strdup(x->eval_datasets), *save = NULL;
    r->datasets = qh_calloc(strlen(d) + 2, sizeof(char *));
    for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) r->datasets[r->ndatasets++] = qh_strdup(t);
    free(d);
    r->fp_ppl = qh_malloc(sizeof(double) * (size_t)(r->ndatasets ? r->ndatasets : 1));
    for (int i = 0; i < r->ndatasets; i++) r->fp_ppl[i] = NAN;
    r->missing = qh_strdup("");
    r->kld_dataset = -1;
    r->nexpected = x->npoints;
    return 0;
}

void report_free(Report *r) {
    for (int i = 0; i < r->npoints; i++) point_free(&r->points[i], r->ndatasets);
    free_sources(r->fp_src, r->ndatasets);
    free(r->points);
    for (int d = 0; d < r->ndatasets; d++) free(r->datasets[d]);
    free(r->datasets);
    free(r->fp_ppl);
    free(r->fp_bad);
    free(r->fp_failure);
    for (int t = 0; t < r->nzs; t++) free(r->zs_tasks[t]);
    free(r->zs_tasks);
    free(r->fp_zs);
    free(r->missing);
    free(r->failed);
    free(r->dir);
    free(r->name);
    free(r->description);
    json_decref(r->manifest);
    if (r->x) experiment_free(r->x);
    free(r->x);
    memset(r, 0, sizeof *r);
}

/* ---- tables ------------------------------------------------------------------------------------- */

/* A setting of a point as text ("inf", "true", "16", "c4"). */
static void setting_text(const ReportPoint *p, const char *key, char *buf, size_t n) {
    json_t *v = json_object_get(json_object_get(p->settings, "quant"), key);
    const QuantSetting *q = quant_setting_find(key);
    if (!v && q && (q->flags & QS_NEW)) quant_setting_format(q, q->def, buf, n); /* left out at its default */
    else if (json_is_integer(v)) snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, n, "%g", json_real_value(v));
    else if (json_is_string(v)) snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_boolean(v)) snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    else snprintf(buf, n, "-");
}

/* The settings keys that differ between two points of the same method (shown as columns). */
static int varying_keys(const Report *r, const char **keys, int max) {
    int n = 0;
    json_t *first = r->npoints ? json_object_get(r->points[0].settings, "quant") : NULL;
    /* the first point's keys, then the QS_NEW settings it leaves out at their default */
    const char *cand[128];
    int nc = 0;
    const char *k;
    json_t *v;
    json_object_foreach(first, k, v) if (nc < 128) cand[nc++] = k;
    for (const QuantSetting *q = quant_settings; first && q->name && nc < 128; q++)
        if ((q->flags & QS_NEW) && !json_object_get(first, q->name)) cand[nc++] = q->name;
    for (int c = 0; c < nc; c++) {
        k = cand[c];
        if (!strcmp(k, "method") || !strcmp(k, "wbits") || !strcmp(k, "groupsize")) continue;
        int varies = 0;
        for (int i = 0; i < r->npoints && !varies; i++)
            for (int j = i + 1; j < r->npoints && !varies; j++) {
                if (strcmp(r->points[i].method, r->points[j].method)) continue;
                char a[128], b[128];
                setting_text(&r->points[i], k, a, sizeof a);
                setting_text(&r->points[j], k, b, sizeof b);
                varies = strcmp(a, b) != 0;
            }
        if (varies && n < max) keys[n++] = k;
    }
    return n;
}

/* "nan", "inf" or "-inf" (printf may write "-nan"). */
static const char *nonfinite_text(double v) { return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

/* A perplexity cell: "-" when not evaluated, "FAILED (nan)" when evaluated
 * without a finite result (bad). */
static void fmt_ppl(char *buf, size_t n, double v, int bad) {
    if (bad) snprintf(buf, n, "FAILED (%s)", nonfinite_text(v));
    else if (isnan(v)) snprintf(buf, n, "-");
    else if (v < 1000) snprintf(buf, n, "%.3f", v);
    else snprintf(buf, n, "%.1f", v);
}

/* Index of s among u[0..*n) (appended when new); -1 for NULL. */
static int source_index(const char **u, int *n, const char *s) {
    if (!s) return -1;
    for (int k = 0; k < *n; k++)
        if (!strcmp(u[k], s)) return k;
    u[*n] = s;
    return (*n)++;
}

/* The distinct sources of each dataset column and of the calibration, and each cell's. Cell c: 0 the
 * full-precision row, 1 + i point i. */
typedef struct Sources {
    int nc;
    const char **du; /* (ndatasets, nc) distinct sources of column d, dn[d] of them */
    int *dn;
    int *dm;         /* (ndatasets, nc) index of cell c's source in du[d], -1 none */
    const char **cu; /* (nc) distinct calibration sources, cn of them */
    int cn;
    int *cm;         /* (nc) */
} Sources;

static void sources_collect(const Report *r, Sources *s) {
    int nd = r->ndatasets, nc = r->npoints + 1;
    s->nc = nc;
    s->du = qh_calloc((size_t)(nd ? nd : 1) * nc, sizeof(char *));
    s->dn = qh_calloc((size_t)nd + 1, sizeof(int));
    s->dm = qh_calloc((size_t)(nd ? nd : 1) * nc, sizeof(int));
    s->cu = qh_calloc((size_t)nc, sizeof(char *));
    s->cm = qh_calloc((size_t)nc, sizeof(int));
    s->cn = 0;
    for (int d = 0; d < nd; d++)
        for (int c = 0; c < nc; c++) {
            const ReportPoint *p = c ? &r->points[c - 1] : NULL;
            const char *src = !c ? (r->have_fp && r->fp_src ? r->fp_src[d] : NULL)
                                 : (!isnan(p->ppl[d]) && p->src ? p->src[d] : NULL);
            s->dm[d * nc + c] = source_index(s->du + (size_t)d * nc, &s->dn[d], src);
        }
    s->cm[0] = -1;
    for (int c = 1; c < nc; c++) s->cm[c] = source_index(s->cu, &s->cn, r->points[c - 1].calib_src);
}

static void sources_free(Sources *s) {
    free(s->du);
    free(s->dn);
    free(s->dm);
    free(s->cu);
    free(s->cm);
}

/* " [a]" after cell c of column d when the column mixes sources, else "". */
static const char *source_mark(const Sources *s, int d, int c, char *buf, size_t n) {
    int k = s->dm[d * s->nc + c];
    if (s->dn[d] > 1 && k >= 0) snprintf(buf, n, " [%c]", 'a' + k % 26);
    else buf[0] = 0;
    return buf;
}

/* The notes under the table: every column's sources, then the calibration's with the methods using each. */
static void sources_notes(const Report *r, const Sources *s, Buf *md) {
    bprintf(md, "\nWhere the text came from (the result files' dataset_origin / calib_origin and sha256):\n\n");
    for (int d = 0; d < r->ndatasets; d++)
        for (int k = 0; k < s->dn[d]; k++) {
            char tag[8] = "";
            if (s->dn[d] > 1) snprintf(tag, sizeof tag, " [%c]", 'a' + k % 26);
            bprintf(md, "- %s%s: %s\n", r->datasets[d], tag, s->du[(size_t)d * s->nc + k]);
        }
    for (int k = 0; k < s->cn; k++) {
        char who[64] = "", tag[8] = "";
        for (int m = 0; m <= NMETHODS; m++)
            for (int c = 1; c < s->nc; c++)
                if (s->cm[c] == k && method_rank(r->points[c - 1].method) == m) {
                    size_t l = strlen(who);
                    snprintf(who + l, sizeof who - l, "%s%s", l ? ", " : "", r->points[c - 1].method);
                    break;
                }
        if (s->cn > 1) snprintf(tag, sizeof tag, " %c", 'A' + k % 26);
        bprintf(md, "- calibration%s (%s): %s\n", tag, who, s->cu[k]);
    }
    for (int d = 0; d < r->ndatasets; d++)
        if (s->dn[d] > 1)
            bprintf(md, "\n**%s mixes %d sources**: cells marked with different letters were evaluated on different "
                        "text and are not comparable.\n", r->datasets[d], s->dn[d]);
}

/* Whether a zero-shot task has lm-eval's acc_norm (zeroshot_tasks.c's table; an unknown name: shown if measured). */
static int zs_has_norm(const char *task) {
    const ZsTask *z = zs_task_get(task);
    return z ? z->has_acc_norm : 1;
}

/* A zero-shot cell of table.md: "acc / acc_norm" in percent ("acc" alone for a task without acc_norm), "-" when
 * not measured. */
static void zs_cell(Buf *b, const ReportZs *z, const char *task) {
    if (!z || isnan(z->acc)) bprintf(b, " | -");
    else if (zs_has_norm(task) && !isnan(z->acc_norm)) bprintf(b, " | %.1f / %.1f", 100 * z->acc, 100 * z->acc_norm);
    else bprintf(b, " | %.1f", 100 * z->acc);
}

/* The zero-shot columns of table.csv: acc, acc_stderr, acc_norm, acc_norm_stderr, n per task (empty where NAN). */
static void zs_csv(Buf *b, const ReportZs *z, int nzs) {
    for (int t = 0; t < nzs; t++) {
        const double v[5] = {z ? z[t].acc : NAN, z ? z[t].acc_stderr : NAN, z ? z[t].acc_norm : NAN,
                             z ? z[t].acc_norm_stderr : NAN, z ? z[t].n : NAN};
        for (int k = 0; k < 5; k++) {
            if (isnan(v[k])) bprintf(b, ",");
            else if (k == 4) bprintf(b, ",%.0f", v[k]);
            else bprintf(b, ",%.6f", v[k]);
        }
    }
}

/* A CSV field, quoted. */
static void csv_quoted(Buf *b, const char *s) {
    bprintf(b, ",\"");
    for (; s && *s; s++) {
        if (*s == '"') bprintf(b, "\"\"");
        else bprintf(b, "%c", *s);
    }
    bprintf(b, "\"");
}

int report_write_tables(const Report *r, int print) {
    const char *vk[32];
    int nv = varying_keys(r, vk, 32);
    Sources src;
    sources_collect(r, &src);
    char mk[8];
    Buf md = {0}, csv = {0};
    /* Markdown */
    bprintf(&md, "# %s\n\n", r->name);
    if (*r->description) bprintf(&md, "%s\n\n", r->description);
    json_t *fs = r->manifest ? json_object_get(r->manifest, "fp_settings") : NULL;
    if (fs) {
        json_t *m = json_object_get(fs, "model"), *e = json_object_get(fs, "eval");
        long long sl = json_integer_value(json_object_get(e, "seqlen")), mw = json_integer_value(json_object_get(e, "max_windows"));
        char sls[32], mws[48];
        if (sl) snprintf(sls, sizeof sls, "%lld-token", sl);
        else snprintf(sls, sizeof sls, "model-context-length");
        if (mw) snprintf(mws, sizeof mws, "at most %lld", mw);
        else snprintf(mws, sizeof mws, "all");
        bprintf(&md, "Model `%s`; perplexity (SPEC 7) with %s windows, %s windows per dataset. ",
                json_string_value(json_object_get(m, "path")), sls, mws);
    }
    bprintf(&md, "Avg bits: SPEC 6 formula over the quantized linear layers; stored bits: the harness's own "
                 "compressed format. Each perplexity cell: ppl (difference from full precision).");
    int kd = r->kld_dataset;
    if (kd >= 0)
        bprintf(&md, " KLD: mean KL divergence from the full-precision model's next-token distribution on %s, and "
                     "top-1: how often both models' most likely token agrees (llama.cpp's definitions).",
                r->datasets[kd]);
    if (r->nzs)
        bprintf(&md, " Zero-shot cells: accuracy in %% as lm-eval scores it, acc / acc_norm (acc alone where the task "
                     "has no acc_norm); standard errors and item counts in table.csv.");
    bprintf(&md, "\n\n| method | wbits | groupsize");
    for (int k = 0; k < nv; k++) bprintf(&md, " | %s", vk[k]);
    if (src.cn > 1) bprintf(&md, " | calib");
    bprintf(&md, " | avg bits | stored bits | outliers %%");
    for (int d = 0; d < r->ndatasets; d++) bprintf(&md, " | %s", r->datasets[d]);
    if (kd >= 0) bprintf(&md, " | KLD %s | top-1 %%", r->datasets[kd]);
    for (int t = 0; t < r->nzs; t++) bprintf(&md, " | %s %s", r->zs_tasks[t], zs_has_norm(r->zs_tasks[t]) ? "acc / norm" : "acc");
    bprintf(&md, " | id |\n|---|---:|---:");
    for (int k = 0; k < nv; k++) bprintf(&md, "|---:");
    if (src.cn > 1) bprintf(&md, "|---");
    bprintf(&md, "|---:|---:|---:");
    for (int d = 0; d < r->ndatasets; d++) bprintf(&md, "|---:");
    if (kd >= 0) bprintf(&md, "|---:|---:");
    for (int t = 0; t < r->nzs; t++) bprintf(&md, "|---:");
    bprintf(&md, "|---|\n");
    if (r->have_fp) {
        bprintf(&md, "| full precision | - | -");
        for (int k = 0; k < nv; k++) bprintf(&md, " | -");
        if (src.cn > 1) bprintf(&md, " | -");
        bprintf(&md, " | - | - | -");
        for (int d = 0; d < r->ndatasets; d++) {
            char a[32];
            fmt_ppl(a, sizeof a, r->fp_ppl[d], r->fp_bad[d]);
            bprintf(&md, " | %s%s", a, source_mark(&src, d, 0, mk, sizeof mk));
        }
        if (kd >= 0) bprintf(&md, " | 0 | 100");
        for (int t = 0; t < r->nzs; t++) zs_cell(&md, &r->fp_zs[t], r->zs_tasks[t]);
        bprintf(&md, " | fp |\n");
    }
    for (int i = 0; i < r->npoints; i++) {
        const ReportPoint *p = &r->points[i];
        char gs[32];
        setting_text(p, "groupsize", gs, sizeof gs);
        if (!strcmp(gs, "0")) snprintf(gs, sizeof gs, "row");
        bprintf(&md, "| %s | %.0f | %s", method_rank(p->method) < NMETHODS ? method_title(method_rank(p->method)) : p->method,
                setting_num(p, "wbits"), gs);
        for (int k = 0; k < nv; k++) {
            char t[128];
            setting_text(p, vk[k], t, sizeof t);
            bprintf(&md, " | %s", t);
        }
        if (src.cn > 1) bprintf(&md, src.cm[i + 1] >= 0 ? " | %c" : " | -", 'A' + src.cm[i + 1] % 26);
        bprintf(&md, " | %.3f | %.3f | %.3f", p->avg_bits, p->stored_bits, 100.0 * p->outlier_fraction);
        for (int d = 0; d < r->ndatasets; d++) {
            char a[32];
            fmt_ppl(a, sizeof a, p->ppl[d], p->bad[d]);
            if (r->have_fp && isfinite(p->ppl[d]) && isfinite(r->fp_ppl[d]))
                bprintf(&md, " | %s (%+.3f)%s", a, p->ppl[d] - r->fp_ppl[d], source_mark(&src, d, i + 1, mk, sizeof mk));
            else bprintf(&md, " | %s%s", a, source_mark(&src, d, i + 1, mk, sizeof mk));
        }
        if (kd >= 0 && isnan(p->kld[kd])) bprintf(&md, " | - | -");
        else if (kd >= 0) bprintf(&md, " | %.4f | %.1f", p->kld[kd], 100 * p->same_top[kd]);
        for (int t = 0; t < r->nzs; t++) zs_cell(&md, &p->zs[t], r->zs_tasks[t]);
        bprintf(&md, " | %s |\n", p->id);
    }
    bprintf(&md, "\n%d point%s", r->npoints, r->npoints == 1 ? "" : "s");
    if (r->nexpected) bprintf(&md, " of %d", r->nexpected);
    if (!r->have_fp) bprintf(&md, "; full-precision evaluation missing");
    if (r->fp_failed) bprintf(&md, "; full-precision evaluation FAILED: %s", r->fp_failure);
    if (r->nfailed) bprintf(&md, "; %d FAILED: %s", r->nfailed, r->failed);
    if (r->nmissing) bprintf(&md, "; missing: %s", r->missing);
    if (r->nstale) bprintf(&md, "; %d point file%s of other settings ignored", r->nstale, r->nstale == 1 ? "" : "s");
    bprintf(&md, ".\n");
    sources_notes(r, &src, &md);
    /* CSV: every setting, then the numbers */
    const char *ak[64];
    int na = 0;
    json_t *q0 = r->npoints ? json_object_get(r->points[0].settings, "quant") : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(q0, k, v) if (na < 64 && strcmp(k, "method")) ak[na++] = k;
    bprintf(&csv, "experiment,id,method,label");
    for (int j = 0; j < na; j++) bprintf(&csv, ",%s", ak[j]);
    bprintf(&csv, ",avg_bits,stored_bits,outlier_fraction");
    for (int d = 0; d < r->ndatasets; d++) bprintf(&csv, ",ppl_%s,delta_%s", r->datasets[d], r->datasets[d]);
    if (kd >= 0)
        for (int d = 0; d < r->ndatasets; d++) bprintf(&csv, ",kld_%s,same_top_%s", r->datasets[d], r->datasets[d]);
    for (int t = 0; t < r->nzs; t++)
        bprintf(&csv, ",%s_acc,%s_acc_stderr,%s_acc_norm,%s_acc_norm_stderr,%s_n", r->zs_tasks[t], r->zs_tasks[t],
                r->zs_tasks[t], r->zs_tasks[t], r->zs_tasks[t]);
    bprintf(&csv, ",seconds");
    for (int d = 0; d < r->ndatasets; d++) bprintf(&csv, ",source_%s", r->datasets[d]);
    bprintf(&csv, ",calib_source\n");
    if (r->have_fp) {
        bprintf(&csv, "%s,fp,fp,full precision", r->name);
        for (int j = 0; j < na; j++) bprintf(&csv, ",");
        bprintf(&csv, ",,,");
        for (int d = 0; d < r->ndatasets; d++) {
            if (r->fp_bad[d]) bprintf(&csv, ",%s,", nonfinite_text(r->fp_ppl[d])); /* a failed evaluation */
            else bprintf(&csv, ",%.6f,%s", r->fp_ppl[d], isfinite(r->fp_ppl[d]) ? "0" : "");
        }
        if (kd >= 0)
            for (int d = 0; d < r->ndatasets; d++) bprintf(&csv, ",0,1");
        zs_csv(&csv, r->fp_zs, r->nzs);
        bprintf(&csv, ",");
        for (int d = 0; d < r->ndatasets; d++) csv_quoted(&csv, r->fp_src ? r->fp_src[d] : NULL);
        bprintf(&csv, ",\n");
    }
    for (int i = 0; i < r->npoints; i++) {
        const ReportPoint *p = &r->points[i];
        bprintf(&csv, "%s,%s,%s,\"%s\"", r->name, p->id, p->method, p->label);
        for (int j = 0; j < na; j++) {
            char t[128];
            setting_text(p, ak[j], t, sizeof t);
            bprintf(&csv, ",%s", strchr(t, ',') ? "\"?\"" : t);
        }
        bprintf(&csv, ",%.6f,%.6f,%.8f", p->avg_bits, p->stored_bits, p->outlier_fraction);
        for (int d = 0; d < r->ndatasets; d++) {
            if (isnan(p->ppl[d]) && !p->bad[d]) bprintf(&csv, ",,");
            else if (p->bad[d]) bprintf(&csv, ",%s,", nonfinite_text(p->ppl[d])); /* a failed evaluation */
            else if (r->have_fp && isfinite(r->fp_ppl[d])) bprintf(&csv, ",%.6f,%.6f", p->ppl[d], p->ppl[d] - r->fp_ppl[d]);
            else bprintf(&csv, ",%.6f,", p->ppl[d]);
        }
        for (int d = 0; kd >= 0 && d < r->ndatasets; d++) {
            if (isnan(p->kld[d])) bprintf(&csv, ",,");
            else bprintf(&csv, ",%.8f,%.6f", p->kld[d], p->same_top[d]);
        }
        zs_csv(&csv, p->zs, r->nzs);
        bprintf(&csv, ",%.3f", p->seconds);
        for (int d = 0; d < r->ndatasets; d++) csv_quoted(&csv, isnan(p->ppl[d]) || !p->src ? NULL : p->src[d]);
        csv_quoted(&csv, p->calib_src);
        bprintf(&csv, "\n");
    }
    /* the comparisons: bits at equal accuracy, published values */
    char *cs = NULL;
    size_t cn = 0;
    FILE *mem = open_memstream(&cs, &cn);
    if (r->npoints) report_equal_accuracy(r, mem);
    if (r->x && r->x->npaper) report_published(r, mem);
    int rc = 0;
    char path[PATH_MAX];
    qh_pathf(path, sizeof path, "%s/speed.h5", r->dir);
    if (!r->no_folder && access(path, F_OK) == 0) { /* the sweep's [speed] table */
        SpeedTable st;
        rc = speed_table_read(path, &st);
        if (rc == 0) {
            fprintf(mem, "\n## Speed (speed.h5)\n\n");
            speed_table_print(&st, mem);
            speed_table_free(&st);
        }
    }
    fclose(mem);
    bprintf(&md, "%s", cs);
    free(cs);
    if (!r->no_folder && rc == 0) {
        qh_pathf(path, sizeof path, "%s/table.md", r->dir);
        rc = qh_write_file_atomic(path, md.s, md.n);
        qh_pathf(path, sizeof path, "%s/table.csv", r->dir);
        if (rc == 0) rc = qh_write_file_atomic(path, csv.s, csv.n);
    }
    if (rc == 0 && print) {
        fwrite(md.s, 1, md.n, stdout);
        if (r->no_folder) printf("\n(no results folder '%s' yet: nothing written)\n", r->dir);
        else printf("\nwritten: %s/table.md, %s/table.csv\n", r->dir, r->dir);
    }
    free(md.s);
    free(csv.s);
    sources_free(&src);
    return rc;
}

/* ---- plots --------------------------------------------------------------------------------------- */

static int write_text(const char *path, const Buf *b) { return qh_write_file_atomic(path, b->s ? b->s : "", b->n); }

/* Which gnuplot terminals exist: bit 0 pngcairo, 1 png, 2 svg, 3 pdfcairo. -1 when gnuplot cannot be run. */
static int gnuplot_terminals(void) {
    FILE *p = popen("gnuplot -e 'set terminal' 2>&1", "r");
    if (!p) return -1;
    char line[512];
    int t = 0, any = 0;
    while (fgets(line, sizeof line, p)) {
        char name[64];
        if (sscanf(line, " %63s", name) != 1) continue;
        any = 1;
        if (!strcmp(name, "pngcairo")) t |= 1;
        if (!strcmp(name, "png")) t |= 2;
        if (!strcmp(name, "svg")) t |= 4;
        if (!strcmp(name, "pdfcairo")) t |= 8;
    }
    int st = pclose(p);
    if (!any || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
    return t;
}

static int find_scripts(const char *opt, char *out, size_t n) {
    char probe[PATH_MAX];
    const char *env = getenv("QH_PLOTS");
    const char *cands[3] = {opt, env && *env ? env : NULL, "plots"};
    for (int i = 0; i < 3; i++) {
        if (!cands[i]) continue;
        qh_pathf(probe, sizeof probe, "%s/bits_ppl.gp", cands[i]);
        if (access(probe, R_OK) == 0) return qh_pathf(out, n, "%s", cands[i]), 0;
        if (i == 0) return qh_error("plot: no bits_ppl.gp in --scripts folder '%s'", opt);
    }
    /* beside the binary: <bin>/../plots (build/qharness -> plots/) */
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = 0;
        char *s = strrchr(exe, '/');
        if (s) *s = 0;
        qh_pathf(probe, sizeof probe, "%s/../plots/bits_ppl.gp", exe);
        if (access(probe, R_OK) == 0) return qh_pathf(out, n, "%s/../plots", exe), 0;
    }
    return qh_error("plot: the gnuplot scripts (plots/*.gp) were not found: run from the repository root, set "
                    "$QH_PLOTS or pass --scripts DIR");
}

/* Run gnuplot -e VARS SCRIPT; 0 when it exits 0. */
static int run_gnuplot(const char *vars, const char *script) {
    char *argv[] = {"gnuplot", "-e", (char *)vars, (char *)script, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (e != 0) return qh_error("plot: cannot run gnuplot: %s", strerror(e));
    int st;
    if (waitpid(pid, &st, 0) < 0) return qh_error("plot: waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return qh_error("plot: gnuplot %s failed (exit status %d)", script, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}

/* An image is real: large enough and starts like its format. */
static int check_image(const char *path, const char *fmt) {
    struct stat sb;
    if (stat(path, &sb) != 0) return qh_error("plot: gnuplot exited 0 but wrote no '%s'", path);
    long min = !strcmp(fmt, "svg") ? 2000 : 4000;
    if (sb.st_size < min) return qh_error("plot: '%s' has only %lld bytes (expected >= %ld)", path, (long long)sb.st_size, min);
    char head[512] = "";
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f) fclose(f);
    head[n] = 0;
    int ok = !strcmp(fmt, "png") ? n >= 8 && !memcmp(head, "\x89PNG\r\n\x1a\n", 8)
             : !strcmp(fmt, "pdf") ? n >= 5 && !memcmp(head, "%PDF-", 5)
                                   : strstr(head, "<svg") != NULL || strstr(head, "<?xml") != NULL;
    if (!ok) return qh_error("plot: '%s' does not look like a %s file", path, fmt);
    return 0;
}

/* No quote in what goes between gnuplot's single quotes. */
static int quote_safe(const char *s) { return !strchr(s, '\'') && !strchr(s, '\n'); }

typedef struct PlotCtx {
    const Report *r;
    char scripts[PATH_MAX];
    char outdir[PATH_MAX];
    int nfmt;
    const char *fmt[3];   /* png svg pdf */
    const char *term[3];  /* gnuplot terminal of each */
    int made;
} PlotCtx;

/* Draw `script` into <outdir>/<stem>.<fmt> for every format. */
static int draw(PlotCtx *c, const char *script, const char *stem, const char *vars) {
    for (int i = 0; i < c->nfmt; i++) {
        char out[PATH_MAX], sp[PATH_MAX];
        qh_pathf(out, sizeof out, "%s/%s.%s", c->outdir, stem, c->fmt[i]);
        qh_pathf(sp, sizeof sp, "%s/%s", c->scripts, script);
        if (!quote_safe(out)) return qh_error("plot: the path '%s' holds a quote", out);
        Buf v = {0};
        bprintf(&v, "scriptdir='%s'; term='%s'; outfile='%s'; %s", c->scripts, c->term[i], out, vars);
        unlink(out);
        int rc = run_gnuplot(v.s, sp);
        free(v.s);
        if (rc == 0) rc = check_image(out, c->fmt[i]);
        if (rc != 0) return -1;
        c->made++;
        printf("  %s\n", out);
    }
    return 0;
}

typedef struct XY {
    double x, y, z;
    const ReportPoint *p;
} XY;
static int cmp_x(const void *a, const void *b) {
    const XY *u = a, *v = b;
    if (u->x != v->x) return u->x < v->x ? -1 : 1;
    return u->y < v->y ? -1 : u->y > v->y;
}

/* avg bits vs perplexity, one file + plot per dataset */
static int plot_bits(PlotCtx *c) {
    const Report *r = c->r;
    for (int d = 0; d < r->ndatasets; d++) {
        const char *ds = r->datasets[d];
        Buf data = {0}, pf = {0};
        int blocks = 0;
        char series[64] = ""; /* per block: 1 + the method's rank (5 + it for fp16 points), so a series keeps its
                               * colour in every plot */
        XY *all = qh_malloc(sizeof(XY) * (size_t)(r->npoints + 1));
        int nall = 0;
        bprintf(&data, "# %s: avg bits (SPEC 6) vs %s perplexity; one block per method and storage mode\n", r->name,
                ds);
        /* a method's deployment-mode points (stats_dtype fp16) are a series of their own, numbered after the
         * methods' (colour 5 + rank): joined to the reference-mode points, one line would zigzag */
        for (int mv = 0; mv < 2 * (NMETHODS + 1); mv++) {
            const int m = mv % (NMETHODS + 1), fp16 = mv / (NMETHODS + 1);
            XY *xy = qh_malloc(sizeof(XY) * (size_t)(r->npoints + 1));
            int n = 0;
            for (int i = 0; i < r->npoints; i++) {
                const ReportPoint *p = &r->points[i];
                char dt[16];
                setting_text(p, "stats_dtype", dt, sizeof dt);
                if (method_rank(p->method) != m || (strcmp(dt, "fp16") == 0) != fp16 || !isfinite(p->ppl[d])) continue;
                xy[n++] = (XY){p->avg_bits, p->ppl[d], p->stored_bits, p};
                all[nall++] = xy[n - 1];
            }
            if (n) {
                qsort(xy, (size_t)n, sizeof(XY), cmp_x);
                if (blocks++) bprintf(&data, "\n\n");
                snprintf(series + strlen(series), sizeof series - strlen(series), "%s%d", blocks > 1 ? " " : "",
                         m + 1 + (fp16 ? NMETHODS + 1 : 0));
                bprintf(&data, "\"%s%s\" \"ppl\" \"stored_bits\" \"id\"\n", m < NMETHODS ? method_title(m) : "other",
                        fp16 ? ", fp16 statistics" : "");
                for (int i = 0; i < n; i++) bprintf(&data, "%.6f %.6f %.6f %s\n", xy[i].x, xy[i].y, xy[i].z, xy[i].p->id);
            }
            free(xy);
        }
        /* Pareto front: no other point has fewer-or-equal bits and lower-or-equal ppl, one strictly */
        qsort(all, (size_t)nall, sizeof(XY), cmp_x);
        bprintf(&pf, "# %s: Pareto front of avg bits vs %s perplexity (lower is better on both)\n", r->name, ds);
        bprintf(&pf, "\"Pareto front\" \"ppl\"\n");
        double best = INFINITY;
        for (int i = 0; i < nall; i++)
            if (all[i].y < best) {
                best = all[i].y;
                bprintf(&pf, "%.6f %.6f %s\n", all[i].x, all[i].y, all[i].p->id);
            }
        free(all);
        char df[PATH_MAX], pfile[PATH_MAX];
        qh_pathf(df, sizeof df, "%s/bits_%s.dat", c->outdir, ds);
        qh_pathf(pfile, sizeof pfile, "%s/pareto_%s.dat", c->outdir, ds);
        for (char *s = df + strlen(c->outdir) + 1; *s; s++)
            if (*s == ':' || *s == '|') *s = '_';
        for (char *s = pfile + strlen(c->outdir) + 1; *s; s++)
            if (*s == ':' || *s == '|') *s = '_';
        int rc = write_text(df, &data);
        if (rc == 0) rc = write_text(pfile, &pf);
        free(data.s);
        free(pf.s);
        if (rc != 0) return -1;
        if (!blocks) {
            printf("  (no perplexity on %s: plot skipped)\n", ds);
            continue;
        }
        if (!quote_safe(ds) || !quote_safe(df) || !quote_safe(r->name)) return qh_error("plot: a name holds a quote");
        /* a log scale when the perplexities span more than 3x */
        int hasfp = r->have_fp && isfinite(r->fp_ppl[d]);
        double lo = hasfp ? r->fp_ppl[d] : INFINITY, hi = hasfp ? r->fp_ppl[d] : 0;
        for (int i = 0; i < r->npoints; i++)
            if (isfinite(r->points[i].ppl[d])) {
                if (r->points[i].ppl[d] < lo) lo = r->points[i].ppl[d];
                if (r->points[i].ppl[d] > hi) hi = r->points[i].ppl[d];
            }
        Buf v = {0};
        bprintf(&v,
                "datafile='%s'; paretofile='%s'; nblocks=%d; series='%s'; dataset='%s'; experiment='%s'; hasfp=%d; "
                "fp=%.9g; logy=%d",
                df, pfile, blocks, series, ds, r->name, hasfp, hasfp ? r->fp_ppl[d] : 0.0, lo > 0 && hi > 3 * lo);
        char stem[300];
        const char *b = strrchr(df, '/');
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(b + 1) - 4), b + 1);
        rc = draw(c, "bits_ppl.gp", stem, v.s);
        free(v.s);
        if (rc != 0) return -1;
    }
    return 0;
}

/* avg bits vs mean KL divergence, one file + plot per dataset that has it */
static int plot_kld(PlotCtx *c) {
    const Report *r = c->r;
    for (int d = 0; d < r->ndatasets; d++) {
        const char *ds = r->datasets[d];
        Buf data = {0};
        int blocks = 0;
        double lo = INFINITY, hi = 0;
        char series[64] = "";
        bprintf(&data, "# %s: avg bits (SPEC 6) vs mean KL divergence from full precision on %s; one block per method\n",
                r->name, ds);
        for (int m = 0; m <= NMETHODS; m++) {
            XY *xy = qh_malloc(sizeof(XY) * (size_t)(r->npoints + 1));
            int n = 0;
            for (int i = 0; i < r->npoints; i++) {
                const ReportPoint *p = &r->points[i];
                if (method_rank(p->method) != m || isnan(p->kld[d])) continue;
                xy[n++] = (XY){p->avg_bits, p->kld[d], p->same_top[d], p};
                if (p->kld[d] > 0 && p->kld[d] < lo) lo = p->kld[d];
                if (p->kld[d] > hi) hi = p->kld[d];
            }
            if (n) {
                qsort(xy, (size_t)n, sizeof(XY), cmp_x);
                if (blocks++) bprintf(&data, "\n\n");
                snprintf(series + strlen(series), sizeof series - strlen(series), "%s%d", blocks > 1 ? " " : "", m + 1);
                bprintf(&data, "\"%s\" \"kld\" \"same_top\" \"id\"\n", m < NMETHODS ? method_title(m) : "other");
                for (int i = 0; i < n; i++) bprintf(&data, "%.6f %.9g %.6f %s\n", xy[i].x, xy[i].y, xy[i].z, xy[i].p->id);
            }
            free(xy);
        }
        if (!blocks) {
            free(data.s);
            continue;
        }
        char df[PATH_MAX];
        qh_pathf(df, sizeof df, "%s/bits_kld_%s.dat", c->outdir, ds);
        for (char *s = df + strlen(c->outdir) + 1; *s; s++)
            if (*s == ':' || *s == '|' || *s == '/') *s = '_';
        int rc = write_text(df, &data);
        free(data.s);
        if (rc != 0) return -1;
        if (!quote_safe(ds) || !quote_safe(df) || !quote_safe(r->name)) return qh_error("plot: a name holds a quote");
        Buf v = {0};
        bprintf(&v, "datafile='%s'; nblocks=%d; series='%s'; dataset='%s'; experiment='%s'; logy=%d", df, blocks, series,
                ds, r->name, hi > 10 * lo);
        char stem[300];
        const char *b = strrchr(df, '/');
        snprintf(stem, sizeof stem, "%.*s", (int)(strlen(b + 1) - 4), b + 1);
        rc = draw(c, "bits_kld.gp", stem, v.s);
        free(v.s);
        if (rc != 0) return -1;
    }
    return 0;
}

/* The label of a point without its outlier_threshold (the series of the threshold plot). */
static void series_of(const ReportPoint *p, char *buf, size_t n) {
    snprintf(buf, n, "%s", p->label);
    char *t = strstr(buf, " outlier_threshold=");
    if (t) {
        char *e = strchr(t + 1, ' ');
        if (e) memmove(t, e, strlen(e) + 1);
        else *t = 0;
    }
}

/* outlier threshold vs outlier fraction (points of a method with outliers and a finite threshold) */
static int plot_thresholds(PlotCtx *c) {
    const Report *r = c->r;
    int n = r->npoints, blocks = 0;
    double tlo = INFINITY, thi = 0;
    char *done = qh_calloc((size_t)n + 1, 1);
    Buf data = {0};
    bprintf(&data, "# %s: outlier threshold tau vs outlier fraction (%%); one block per setting\n", r->name);
    for (int i = 0; i < n; i++) {
        const ReportPoint *p = &r->points[i];
        double tau = setting_num(p, "outlier_threshold");
        if (done[i] || !has_outliers(p->method) || !isfinite(tau)) continue;
        char s[512];
        series_of(p, s, sizeof s);
        XY *xy = qh_malloc(sizeof(XY) * (size_t)n);
        int k = 0;
        for (int j = i; j < n; j++) {
            const ReportPoint *q = &r->points[j];
            double tq = setting_num(q, "outlier_threshold");
            char s2[512];
            series_of(q, s2, sizeof s2);
            if (done[j] || !has_outliers(q->method) || !isfinite(tq) || strcmp(s, s2)) continue;
            done[j] = 1;
            xy[k++] = (XY){tq, 100.0 * q->outlier_fraction, q->avg_bits, q};
            if (tq < tlo) tlo = tq;
            if (tq > thi) thi = tq;
        }
        qsort(xy, (size_t)k, sizeof(XY), cmp_x);
        if (blocks++) bprintf(&data, "\n\n");
        bprintf(&data, "\"%s\" \"outlier_percent\" \"avg_bits\"\n", s);
        for (int j = 0; j < k; j++) bprintf(&data, "%.6g %.6f %.6f %s\n", xy[j].x, xy[j].y, xy[j].z, xy[j].p->id);
        free(xy);
    }
    free(done);
    char df[PATH_MAX];
    qh_pathf(df, sizeof df, "%s/outliers_threshold.dat", c->outdir);
    int rc = write_text(df, &data);
    free(data.s);
    if (rc != 0) return -1;
    if (!blocks) {
        printf("  (no SpQR point with a finite outlier threshold: threshold plot skipped)\n");
        return 0;
    }
    Buf v = {0};
    /* the x range: the thresholds with a margin (log scale), also when there is only one */
    bprintf(&v, "datafile='%s'; nblocks=%d; experiment='%s'; xlo=%.9g; xhi=%.9g", df, blocks, r->name, tlo / 1.5,
            thi * 1.5);
    rc = draw(c, "outliers.gp", "outliers_threshold", v.s);
    free(v.s);
    return rc;
}

/* per-layer outlier fraction of every point that has outliers */
static int plot_layers(PlotCtx *c) {
    const Report *r = c->r;
    Buf data = {0};
    int blocks = 0, L = 0;
    bprintf(&data, "# %s: outlier fraction (%%) per sub-layer; x = block + (k + 0.5) / n for the n linears of the "
            "family (LLaMA: wq wk wv wo w1 w3 w2)\n", r->name);
    for (int i = 0; i < r->npoints; i++) {
        const ReportPoint *p = &r->points[i];
        if (!p->layer_outliers || !(p->outlier_fraction > 0)) continue;
        if (blocks++) bprintf(&data, "\n\n");
        bprintf(&data, "\"%s\" \"outlier_percent\" \"sublayer\"\n", p->label);
        for (int l = 0; l < p->n_layers; l++)
            for (int k = 0; k < p->n_lin; k++)
                bprintf(&data, "%.4f %.6f %d.%s\n", l + (k + 0.5) / p->n_lin, 100.0 * p->layer_outliers[l * p->n_lin + k],
                        l, p->lin_names[k] ? p->lin_names[k] : "?");
        if (p->n_layers > L) L = p->n_layers;
    }
    char df[PATH_MAX];
    qh_pathf(df, sizeof df, "%s/outliers_layers.dat", c->outdir);
    int rc = write_text(df, &data);
    free(data.s);
    if (rc != 0) return -1;
    if (!blocks) {
        printf("  (no point with outliers: per-layer plot skipped)\n");
        return 0;
    }
    Buf v = {0};
    bprintf(&v, "datafile='%s'; nblocks=%d; nlayers=%d; experiment='%s'", df, blocks, L, r->name);
    rc = draw(c, "layers.gp", "outliers_layers", v.s);
    free(v.s);
    return rc;
}

int report_plot(const Report *r, const char *scripts_dir, const char *formats, int *made) {
    *made = 0;
    PlotCtx c;
    memset(&c, 0, sizeof c);
    c.r = r;
    int terms = gnuplot_terminals();
    if (terms < 0) return qh_error("plot: gnuplot cannot be run (install gnuplot-nox: make deps)");
    if (find_scripts(scripts_dir, c.scripts, sizeof c.scripts) != 0) return -1;
    char want[64];
    snprintf(want, sizeof want, "%s", formats ? formats : (terms & 8) ? "png,svg,pdf" : "png,svg");
    char *save = NULL;
    for (char *f = strtok_r(want, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        if (c.nfmt == 3) return qh_error("plot: too many formats in '%s'", formats);
        if (!strcmp(f, "png")) {
            if (!(terms & 3)) return qh_error("plot: this gnuplot has no png terminal");
            c.fmt[c.nfmt] = "png";
            c.term[c.nfmt++] = (terms & 1) ? "pngcairo" : "png";
        } else if (!strcmp(f, "svg")) {
            if (!(terms & 4)) return qh_error("plot: this gnuplot has no svg terminal");
            c.fmt[c.nfmt] = "svg";
            c.term[c.nfmt++] = "svg";
        } else if (!strcmp(f, "pdf")) {
            if (!(terms & 8)) return qh_error("plot: this gnuplot has no pdfcairo terminal (install gnuplot-nox)");
            c.fmt[c.nfmt] = "pdf";
            c.term[c.nfmt++] = "pdfcairo";
        } else {
            return qh_error("plot: unknown format '%s' (expected png, svg or pdf)", f);
        }
    }
    qh_pathf(c.outdir, sizeof c.outdir, "%s/plots", r->dir);
    if (mkdir(c.outdir, 0755) != 0 && errno != EEXIST) return qh_error("cannot create '%s': %s", c.outdir, strerror(errno));
    if (!quote_safe(c.outdir) || !quote_safe(c.scripts)) return qh_error("plot: a path holds a quote");
    if (r->npoints == 0) return qh_error("plot: no finished point in '%s' (run the sweep first)", r->dir);
    int rc = plot_bits(&c);
    if (rc == 0) rc = plot_kld(&c);
    if (rc == 0) rc = plot_thresholds(&c);
    if (rc == 0) rc = plot_layers(&c);
    *made = c.made;
    return rc;
}
