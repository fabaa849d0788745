/* speed_run.c: measuring, storing and printing the speed table (speed_run.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "experiment.h"
#include "h5io.h"
#include "model_open.h"
#include "provenance.h"
#include "quant_io.h"
#include "quant_packed.h"
#include "results.h"
#include "speed_run.h"
#include "util.h"

/* The start token of every run: 1, BOS of the LLaMA tokenizers (speed does
 * not read text; any id measures the same work). */
#define SPEED_START_TOKEN 1

/* Generation (and matrix-vector times) of model m, its linears through pm
 * when it holds any, into v; kind[i]: the first linear of shape i
 * (speed_layer_shapes). where (may be NULL) <- where the backend's packed
 * linears must live (ForwardOps.packed_where), device (may be NULL) <- its name. */
static int measure(const SpeedRunSpec *rs, const SpeedTable *t, const int *kind, const Model *m,
                   const PackedModel *pm, SpeedVariant *v, int *where, char *device, size_t device_size) {
    Forward *f = NULL;
    int chunk = m->cfg.seq_len < 256 ? m->cfg.seq_len : 256; /* prefill chunk: decode needs no more */
    int rc = forward_create(rs->device, m, chunk, &f);
    if (rc == 0 && where) *where = f->ops->packed_where;
    if (rc == 0 && device) snprintf(device, device_size, "%s", f->ops->name);
    if (rc == 0 && pm) rc = quant_packed_apply(pm, f);
    if (rc == 0) rc = speed_generation(f, &t->spec, SPEED_START_TOKEN < m->cfg.vocab_size ? SPEED_START_TOKEN : 0, &v->t);
    for (int i = 0; i < LIN_COUNT; i++) v->matvec_us[i] = v->matvec_bytes[i] = NAN;
    for (int i = 0; rc == 0 && rs->matvec && i < t->nshapes; i++) {
        int k = kind[i];
        const PackedLinear *p = pm && pm->lin ? pm->lin[k] : NULL; /* layer 0 */
        if (p && p->where != PACKED_HOST) continue; /* a device kernel: kernels/bench times it */
        rc = speed_matvec_us(p, m->w.blocks[0].lin[k], t->shape_out[i], t->shape_in[i], t->spec.repeats,
                             &v->matvec_us[i]);
        v->matvec_bytes[i] = p ? (double)p->bytes : 4.0 * t->shape_out[i] * t->shape_in[i];
    }
    forward_destroy(&f);
    return rc;
}

int speed_run(const SpeedRunSpec *rs, SpeedTable *t) {
    memset(t, 0, sizeof *t);
    Model m;
    if (model_open(rs->model_path, NULL, &m, NULL) != 0) return -1;
    snprintf(t->model, sizeof t->model, "%s", rs->model_path);
    t->spec.setups = rs->setups;
    t->spec.gen = rs->gen;
    t->spec.repeats = rs->repeats;
    t->threads = omp_get_max_threads();
    int rc = speed_resolve_prefix(&m.cfg, rs->gen, rs->prefix, "speed: --prefix", &t->spec.prefix, t->note,
                                  sizeof t->note);
    int kind[LIN_COUNT], where = PACKED_HOST; /* where: the packed linears' memory, the backend's */
    t->nshapes = speed_layer_shapes(&m.cfg, t->shape_out, t->shape_in, kind);
    t->var = qh_calloc((size_t)rs->nfiles + 1, sizeof *t->var);
    if (rc == 0) {
        SpeedVariant *v = &t->var[t->nvar++];
        snprintf(v->name, sizeof v->name, "full precision");
        snprintf(v->method, sizeof v->method, "fp32");
        snprintf(v->kernel, sizeof v->kernel, "dense");
        v->avg_bits = 32;
        qh_progress("speed: full precision");
        rc = measure(rs, t, kind, &m, NULL, v, &where, t->device, sizeof t->device);
    }
    for (int i = 0; i < rs->nfiles && rc == 0; i++) {
        Model qm;
        QuantModelInfo info;
        SpeedVariant *v = &t->var[t->nvar];
        qh_progress("speed: %s", rs->files[i]);
        if (quant_model_load(rs->files[i], rs->model_path, NULL, -1, 0, &qm, NULL, &info) != 0) {
            rc = -1;
            break;
        }
        if (qm.cfg.dim != m.cfg.dim || qm.cfg.n_layers != m.cfg.n_layers || qm.cfg.hidden_dim != m.cfg.hidden_dim)
            rc = qh_error("speed: '%s' is not a quantization of '%s'", rs->files[i], rs->model_path);
        PackedModel pm = {0};
        if (rc == 0) rc = quant_packed_build(rs->files[i], &qm, NULL, rs->kernels, where, &pm);
        if (rc == 0) {
            snprintf(v->name, sizeof v->name, "%s", rs->labels ? rs->labels[i] : rs->files[i]);
            snprintf(v->method, sizeof v->method, "%s w%d", info.method, info.params.wbits);
            snprintf(v->kernel, sizeof v->kernel, "%s", pm.kernel);
            v->avg_bits = info.avg_bits;
            v->outlier_fraction = info.outlier_fraction;
            rc = measure(rs, t, kind, &qm, &pm, v, NULL, NULL, 0);
            if (rc == 0) t->nvar++;
        }
        quant_packed_free(&pm);
        model_free(&qm);
    }
    model_free(&m);
    if (rc != 0) speed_table_free(t);
    return rc;
}

void speed_table_free(SpeedTable *t) {
    free(t->var);
    memset(t, 0, sizeof *t);
}

/* ---- the HDF5 file ------------------------------------------------------------ */

int speed_table_write(const char *path, const SpeedTable *t, int argc, char **argv) {
    H5File *f;
    if (h5_create(path, &f) != 0) return -1;
    Provenance prov;
    provenance_collect(&prov, argc, argv);
    int n = t->nvar, S = SPEED_NSETUPS, R = t->spec.repeats, rc = 0;
    rc |= results_write_header(f, "/", &prov, NULL, "{}");
    rc |= h5_attr_str(f, "/", "kind", "speed");
    rc |= h5_attr_str(f, "/", "model_path", t->model);
    rc |= h5_attr_str(f, "/", "device", t->device);
    rc |= h5_attr_str(f, "/", "prefix_note", t->note);
    rc |= h5_attr_i64(f, "/", "threads", t->threads);
    rc |= h5_attr_i64(f, "/", "setups", t->spec.setups);
    rc |= h5_attr_i64(f, "/", "gen", t->spec.gen);
    rc |= h5_attr_i64(f, "/", "prefix", t->spec.prefix);
    rc |= h5_attr_i64(f, "/", "repeats", R);
    double *tok = qh_malloc(sizeof(double) * (size_t)n * S), *runs = qh_malloc(sizeof(double) * (size_t)n * S * R);
    double *mv = qh_malloc(sizeof(double) * (size_t)n * (t->nshapes ? t->nshapes : 1) * 2), *bits = qh_malloc(sizeof(double) * n * 2);
    int64_t shapes[2 * LIN_COUNT];
    for (int i = 0; i < t->nshapes; i++) shapes[2 * i] = t->shape_out[i], shapes[2 * i + 1] = t->shape_in[i];
    for (int v = 0; v < n; v++) {
        const SpeedVariant *x = &t->var[v];
        for (int s = 0; s < S; s++) {
            tok[v * S + s] = x->t.tok_s[s];
            for (int r = 0; r < R; r++) runs[((size_t)v * S + s) * R + r] = x->t.runs[s][r];
        }
        for (int i = 0; i < t->nshapes; i++) {
            mv[(size_t)v * t->nshapes + i] = x->matvec_us[i];
            mv[(size_t)n * t->nshapes + (size_t)v * t->nshapes + i] = x->matvec_bytes[i];
        }
        bits[v] = x->avg_bits;
        bits[n + v] = x->outlier_fraction;
        char g[64];
        snprintf(g, sizeof g, "/variants/%d", v);
        rc |= h5_group(f, g);
        rc |= h5_attr_str(f, g, "name", x->name);
        rc |= h5_attr_str(f, g, "method", x->method);
        rc |= h5_attr_str(f, g, "kernel", x->kernel);
    }
    rc |= h5_write(f, "/tok_s", H5T_QH_F64, tok, n, S);                       /* (nvar, setups): medians */
    rc |= h5_write(f, "/tok_s_runs", H5T_QH_F64, runs, (int64_t)n * S, R);    /* (nvar * setups, repeats) */
    rc |= h5_write(f, "/avg_bits", H5T_QH_F64, bits, n, 0);
    rc |= h5_write(f, "/outlier_fraction", H5T_QH_F64, bits + n, n, 0);
    if (t->nshapes) {
        rc |= h5_write(f, "/shapes", H5T_QH_I64, shapes, t->nshapes, 2);      /* (nshapes, 2): out, in */
        rc |= h5_write(f, "/matvec_us", H5T_QH_F64, mv, n, t->nshapes);       /* (nvar, nshapes) */
        rc |= h5_write(f, "/matvec_bytes", H5T_QH_F64, mv + (size_t)n * t->nshapes, n, t->nshapes);
    }
    free(tok), free(runs), free(mv), free(bits);
    if (rc != 0) {
        h5_abort(&f);
        return qh_error("'%s': writing the speed table failed", path);
    }
    return h5_commit(&f);
}

int speed_table_read(const char *path, SpeedTable *t) {
    memset(t, 0, sizeof *t);
    H5File *f;
    if (h5_open_read(path, &f) != 0) return -1;
    char *kind = NULL, *s = NULL;
    int64_t v64;
    int rc = h5_get_attr_str(f, "/", "kind", &kind);
    if (rc == 0 && strcmp(kind, "speed") != 0) rc = qh_error("'%s' is a '%s' file, not a speed table", path, kind);
    free(kind);
#define GET_STR(name, dst)                                                 \
    if (rc == 0 && (rc = h5_get_attr_str(f, "/", name, &s)) == 0) {        \
        snprintf(dst, sizeof dst, "%s", s);                                \
        free(s);                                                           \
    }
#define GET_INT(name, dst) \
    if (rc == 0 && (rc = h5_get_attr_i64(f, "/", name, &v64)) == 0) dst = (int)v64;
    GET_STR("model_path", t->model);
    GET_STR("device", t->device);
    GET_STR("prefix_note", t->note);
    GET_INT("threads", t->threads);
    GET_INT("setups", t->spec.setups);
    GET_INT("gen", t->spec.gen);
    GET_INT("prefix", t->spec.prefix);
    GET_INT("repeats", t->spec.repeats);
    double *tok = NULL, *runs = NULL, *mv = NULL, *mb = NULL, *bits = NULL, *of = NULL;
    int64_t *shapes = NULL, d0 = 0, d1 = 0, e0, e1;
    if (rc == 0 && (t->spec.repeats < 1 || t->spec.repeats > SPEED_MAX_REPEATS))
        rc = qh_error("'%s': repeats %d is outside 1..%d", path, t->spec.repeats, SPEED_MAX_REPEATS);
    if (rc == 0) rc = h5_read(f, "/tok_s", H5T_QH_F64, (void **)&tok, &d0, &d1);
    if (rc == 0 && d1 != SPEED_NSETUPS) rc = qh_error("'%s': /tok_s has %lld columns, expected %d", path, (long long)d1, SPEED_NSETUPS);
    if (rc == 0) rc = h5_read(f, "/tok_s_runs", H5T_QH_F64, (void **)&runs, &e0, &e1);
    if (rc == 0 && (e0 != d0 * SPEED_NSETUPS || e1 != t->spec.repeats))
        rc = qh_error("'%s': /tok_s_runs is %lld x %lld, expected %lld x %d", path, (long long)e0, (long long)e1,
                      (long long)d0 * SPEED_NSETUPS, t->spec.repeats);
    if (rc == 0) rc = h5_read(f, "/avg_bits", H5T_QH_F64, (void **)&bits, &e0, &e1);
    if (rc == 0 && e0 != d0) rc = qh_error("'%s': /avg_bits has %lld values, expected %lld", path, (long long)e0, (long long)d0);
    if (rc == 0) rc = h5_read(f, "/outlier_fraction", H5T_QH_F64, (void **)&of, &e0, &e1);
    if (rc == 0 && e0 != d0) rc = qh_error("'%s': /outlier_fraction has %lld values, expected %lld", path, (long long)e0, (long long)d0);
    if (rc == 0 && h5_exists(f, "/shapes")) {
        rc = h5_read(f, "/shapes", H5T_QH_I64, (void **)&shapes, &e0, &e1);
        if (rc == 0 && (e0 < 1 || e0 > LIN_COUNT || e1 != 2)) rc = qh_error("'%s': /shapes is %lld x %lld", path, (long long)e0, (long long)e1);
        if (rc == 0) t->nshapes = (int)e0;
        if (rc == 0) rc = h5_read(f, "/matvec_us", H5T_QH_F64, (void **)&mv, &e0, &e1);
        if (rc == 0 && (e0 != d0 || e1 != t->nshapes)) rc = qh_error("'%s': /matvec_us is %lld x %lld", path, (long long)e0, (long long)e1);
        if (rc == 0) rc = h5_read(f, "/matvec_bytes", H5T_QH_F64, (void **)&mb, &e0, &e1);
        if (rc == 0 && (e0 != d0 || e1 != t->nshapes)) rc = qh_error("'%s': /matvec_bytes is %lld x %lld", path, (long long)e0, (long long)e1);
        for (int i = 0; rc == 0 && i < t->nshapes; i++) t->shape_out[i] = (int)shapes[2 * i], t->shape_in[i] = (int)shapes[2 * i + 1];
    }
    if (rc == 0) {
        t->nvar = (int)d0;
        t->var = qh_calloc((size_t)d0 + 1, sizeof *t->var);
    }
    for (int v = 0; rc == 0 && v < t->nvar; v++) {
        SpeedVariant *x = &t->var[v];
        char g[64];
        snprintf(g, sizeof g, "/variants/%d", v);
        if ((rc = h5_get_attr_str(f, g, "name", &s)) == 0) snprintf(x->name, sizeof x->name, "%s", s), free(s);
        if (rc == 0 && (rc = h5_get_attr_str(f, g, "method", &s)) == 0) snprintf(x->method, sizeof x->method, "%s", s), free(s);
        if (rc == 0 && (rc = h5_get_attr_str(f, g, "kernel", &s)) == 0) snprintf(x->kernel, sizeof x->kernel, "%s", s), free(s);
        for (int su = 0; su < SPEED_NSETUPS; su++) {
            x->t.tok_s[su] = tok[v * SPEED_NSETUPS + su];
            for (int r = 0; r < t->spec.repeats; r++) x->t.runs[su][r] = runs[((size_t)v * SPEED_NSETUPS + su) * t->spec.repeats + r];
        }
        x->avg_bits = bits[v];
        x->outlier_fraction = of[v];
        for (int i = 0; i < LIN_COUNT; i++) x->matvec_us[i] = x->matvec_bytes[i] = NAN;
        for (int i = 0; i < t->nshapes; i++) x->matvec_us[i] = mv[(size_t)v * t->nshapes + i], x->matvec_bytes[i] = mb[(size_t)v * t->nshapes + i];
    }
#undef GET_STR
#undef GET_INT
    free(tok), free(runs), free(mv), free(mb), free(bits), free(of), free(shapes);
    h5_commit(&f);
    if (rc != 0) speed_table_free(t);
    return rc;
}

/* ---- printing ------------------------------------------------------------------- */

void speed_table_print(const SpeedTable *t, FILE *out) {
    const SpeedSpec *s = &t->spec;
    fprintf(out, "Generation speed on %s (%d threads), batch size 1: %d tokens generated per run (only they are "
                 "timed), medians of %d runs; scratch: from the start token; prefix: after a %d-token prefix%s%s%s\n\n",
            t->device, t->threads, s->gen, s->repeats, s->prefix, t->note[0] ? " (" : "", t->note, t->note[0] ? ")" : "");
    fprintf(out, "| model | method | kernel | avg bits |");
    for (int su = 0; su < SPEED_NSETUPS; su++)
        if (s->setups & (1u << su)) fprintf(out, " %s tok/s | x fp |", speed_setup_names[su]);
    fprintf(out, "\n|---|---|---|---:|");
    for (int su = 0; su < SPEED_NSETUPS; su++)
        if (s->setups & (1u << su)) fprintf(out, "---:|---:|");
    fprintf(out, "\n");
    for (int v = 0; v < t->nvar; v++) {
        const SpeedVariant *x = &t->var[v];
        fprintf(out, "| %s | %s | %s | %.2f |", x->name, x->method, x->kernel, x->avg_bits);
        for (int su = 0; su < SPEED_NSETUPS; su++)
            if (s->setups & (1u << su)) fprintf(out, " %.1f | %.2f |", x->t.tok_s[su], x->t.tok_s[su] / t->var[0].t.tok_s[su]);
        fprintf(out, "\n");
    }
    int any = 0;
    for (int v = 0; v < t->nvar; v++)
        for (int i = 0; i < t->nshapes; i++) any |= !isnan(t->var[v].matvec_us[i]);
    if (!any) return;
    fprintf(out, "\nMatrix-vector product per layer shape (one vector, the kernel above): median microseconds "
                 "(GB/s of the weights read; x fp)\n\n| shape (out x in) |");
    for (int v = 0; v < t->nvar; v++) fprintf(out, " %s |", t->var[v].name);
    fprintf(out, "\n|---|");
    for (int v = 0; v < t->nvar; v++) fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int i = 0; i < t->nshapes; i++) {
        fprintf(out, "| %d x %d |", t->shape_out[i], t->shape_in[i]);
        for (int v = 0; v < t->nvar; v++) {
            double us = t->var[v].matvec_us[i];
            if (isnan(us)) fprintf(out, " - |");
            else
                fprintf(out, " %.2f (%.1f; %.2f) |", us, t->var[v].matvec_bytes[i] / us * 1e-3,
                        t->var[0].matvec_us[i] / us);
        }
        fprintf(out, "\n");
    }
}

/* ---- a sweep's [speed] section ------------------------------------------------- */

int experiment_speed(const Experiment *x, int argc, char **argv) {
    char out[PATH_MAX];
    qh_pathf(out, sizeof out, "%s/speed.h5", x->out_dir);
    if (access(out, F_OK) == 0) {
        printf("speed %s: %s done earlier (delete it to measure again)\n", x->name, out);
        return 0;
    }
    char **paths = qh_calloc((size_t)x->npoints + 1, sizeof *paths);
    const char **files = qh_calloc((size_t)x->npoints + 1, sizeof *files), **labels = qh_calloc((size_t)x->npoints + 1, sizeof *labels);
    int rc = 0;
    for (int i = 0; i < x->npoints && rc == 0; i++) {
        paths[i] = qh_malloc(PATH_MAX);
        qh_pathf(paths[i], PATH_MAX, "%s/models/%s.h5", x->out_dir, x->points[i].id);
        if (access(paths[i], F_OK) != 0)
            rc = qh_error("%s: [speed]: point %s (%s) has no saved model '%s' (its result was computed without "
                          "[output] save_models: delete the point's result to compute it again)",
                          x->path, x->points[i].id, x->points[i].label, paths[i]);
        files[i] = paths[i];
        labels[i] = x->points[i].label;
    }
    SpeedRunSpec rs = {.model_path = x->model_path, .files = files, .labels = labels, .nfiles = x->npoints,
                       .kernels = x->speed.kernels, .device = x->device, .setups = x->speed.setups,
                       .gen = x->speed.tokens, .prefix = x->speed.prefix, .repeats = x->speed.repeats,
                       .matvec = x->speed.matvec};
    SpeedTable t;
    double t0 = qh_now();
    if (rc == 0) rc = speed_run(&rs, &t);
    if (rc == 0) {
        rc = speed_table_write(out, &t, argc, argv);
        printf("speed %s: %d models measured (%.1f s), %s (`report` prints the table)\n", x->name, t.nvar,
               qh_now() - t0, out);
        speed_table_free(&t);
    }
    for (int i = 0; i < x->npoints; i++) free(paths[i]);
    free(paths);
    free(files);
    free(labels);
    return rc;
}
