/* report_compare.c: the comparison sections of an experiment's table.md (see
 * report.h): bits at equal accuracy, in the shape of the SpQR authors' answer
 * to their reviewers (method, average bits, then each dataset's perplexity at
 * those bits), and the published values of [paper] beside ours. The
 * arithmetic is accuracy.h's; this file only gathers the points and writes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "settings.h"

/* the methods in the report's order (quant_methods[]) */
#define NM quant_nmethods()
#define METHOD(m) (quant_methods[m].name)
#define TITLE(m) (quant_methods[m].title)

static int dataset_index(const Report *r, const char *ds) {
    for (int d = 0; d < r->ndatasets; d++)
        if (!strcmp(r->datasets[d], ds)) return d;
    return -1;
}

/* The Pareto front of `method` on dataset d into f (room for r->npoints); its size. */
static int method_front(const Report *r, const char *method, int d, BitsPpl *f) {
    int n = 0;
    for (int i = 0; i < r->npoints; i++)
        if (!strcmp(r->points[i].method, method)) f[n++] = (BitsPpl){r->points[i].avg_bits, r->points[i].ppl[d]};
    return acc_front(f, n);
}

static void fmt(char *b, size_t n, double v) {
    if (!isfinite(v)) snprintf(b, n, "-");
    else if (v < 1000) snprintf(b, n, "%.3f", v);
    else snprintf(b, n, "%.1f", v);
}

/* One target on dataset d (perplexity t): a row per method that has points. */
static void target_rows(const Report *r, int d, double t, const char *what, FILE *md) {
    BitsPpl *f = malloc(sizeof(BitsPpl) * (size_t)(r->npoints + 1)), *g = malloc(sizeof(BitsPpl) * (size_t)(r->npoints + 1));
    int first = 1;
    for (int m = 0; m < NM; m++) {
        int has = 0;
        for (int i = 0; i < r->npoints; i++) has |= !strcmp(r->points[i].method, METHOD(m));
        if (!has) continue;
        int n = method_front(r, METHOD(m), d, f);
        AccStatus st;
        double b = acc_bits_at_ppl(f, n, t, &st);
        char tt[160] = "", bits[96];
        if (first) snprintf(tt, sizeof tt, "%s <= %.4g (%s)", r->datasets[d], t, what);
        first = 0;
        if (st == ACC_NOT_REACHED) {
            double best = n ? f[n - 1].ppl : NAN;
            if (n) snprintf(bits, sizeof bits, "not reached (best %.4g at %.3f bits)", best, f[n - 1].bits);
            else snprintf(bits, sizeof bits, "not reached (no point)");
        } else if (st == ACC_AT_FEWEST) {
            snprintf(bits, sizeof bits, "<= %.3f (fewest measured)", b);
        } else {
            snprintf(bits, sizeof bits, "%.3f", b);
        }
        fprintf(md, "| %s | %s | %s", tt, TITLE(m), bits);
        for (int e = 0; e < r->ndatasets; e++) {
            char c[32];
            int k = method_front(r, METHOD(m), e, g);
            fmt(c, sizeof c, st == ACC_NOT_REACHED ? NAN : acc_ppl_at_bits(g, k, b));
            fprintf(md, " | %s", c);
        }
        fprintf(md, " |\n");
    }
    free(f);
    free(g);
}

void report_equal_accuracy(const Report *r, FILE *md) {
    fprintf(md, "\n## Bits at equal accuracy\n\nThe fewest average bits (SPEC 6) at which each method reaches the "
                "target perplexity, along its Pareto front: ln ppl linear in bits between neighbouring measured "
                "points, never extrapolated (\"not reached\" when no point reaches it; \"fewest measured\" when "
                "its fewest-bits point already does, so fewer bits might do). The dataset columns: each "
                "perplexity at those bits, interpolated the same way (- outside the measured range).\n\n");
    fprintf(md, "| target | method | avg bits");
    for (int d = 0; d < r->ndatasets; d++) fprintf(md, " | %s", r->datasets[d]);
    fprintf(md, " |\n|---|---|---:");
    for (int d = 0; d < r->ndatasets; d++) fprintf(md, "|---:");
    fprintf(md, "|\n");
    AccTarget def = {.dataset = "", .relative = 1, .value = 0.01};
    const AccTarget *ts = r->x ? r->x->targets : &def;
    int nt = r->x ? r->x->ntargets : 1, rows = 0;
    char missing[512] = "";
    for (int i = 0; i < nt; i++) {
        const AccTarget *t = &ts[i];
        for (int d = 0; d < r->ndatasets; d++) {
            if (*t->dataset && strcmp(t->dataset, r->datasets[d])) continue;
            char what[64];
            acc_target_text(t, what, sizeof what);
            if (t->relative) {
                if (!isfinite(r->fp_ppl[d])) {
                    if (strlen(missing) + strlen(what) + 4 < sizeof missing)
                        snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s %s",
                                 *missing ? ", " : "", r->datasets[d], what);
                    continue;
                }
                snprintf(what, sizeof what, "full precision %.4g +%g%%", r->fp_ppl[d], 100 * t->value);
                target_rows(r, d, r->fp_ppl[d] * (1 + t->value), what, md);
            } else {
                snprintf(what, sizeof what, "target");
                target_rows(r, d, t->value, what, md);
            }
            rows++;
        }
    }
    if (*missing) fprintf(md, "\nNo full-precision evaluation: relative targets not known (%s).\n", missing);
    else if (!rows) fprintf(md, "\nNo target applies to the evaluated datasets.\n");
}

/* Does point p's setting `key` equal the condition (text and parsed number)? */
static int setting_matches(const ReportPoint *p, const char *key, const char *text, double num) {
    json_t *v = json_object_get(json_object_get(p->settings, "quant"), key);
    if (json_is_boolean(v)) return json_is_true(v) == (num != 0);
    if (json_is_number(v)) return json_number_value(v) == num;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "inf")) return isinf(num) || !strcmp(text, "inf");
        return !strcmp(s, text);
    }
    return 0;
}

int report_paper_matches(const Report *r, const PaperValue *p, int *idx, int max) {
    int n = 0;
    for (int i = 0; i < r->npoints && n < max; i++) {
        const ReportPoint *q = &r->points[i];
        if (strcmp(q->method, p->method)) continue;
        int ok = 1;
        for (int c = 0; c < p->nconds && ok; c++) ok = setting_matches(q, p->cond_key[c], p->cond_val[c], p->cond_num[c]);
        if (ok) idx[n++] = i;
    }
    return n;
}

static void diff_cells(double measured, double published, const char *unit, char *m, size_t mn, char *d, size_t dn) {
    if (!isfinite(measured)) {
        snprintf(m, mn, "-");
        snprintf(d, dn, "-");
        return;
    }
    snprintf(m, mn, "%.3f%s", measured, unit);
    snprintf(d, dn, "%+.3f (%+.1f%%)", measured - published, 100 * (measured - published) / published);
}

void report_published(const Report *r, FILE *md) {
    const Experiment *x = r->x;
    fprintf(md, "\n## Published values\n\nEach number of the experiment's [paper] section beside ours: a "
                "perplexity at the point with the same settings (or interpolated along our Pareto front at the "
                "published average bits), or the average bits our method needs to reach the published perplexity. "
                "Difference: measured - published (relative). - : not measured yet%s.\n\n",
            r->no_folder ? " (no results folder)" : "");
    fprintf(md, "| method | setting | dataset | published | measured | difference | source |\n"
                "|---|---|---|---:|---:|---:|---|\n");
    BitsPpl *f = malloc(sizeof(BitsPpl) * (size_t)(r->npoints + 1));
    int *idx = malloc(sizeof(int) * (size_t)(r->npoints + 1));
    for (int i = 0; i < x->npaper; i++) {
        const PaperValue *p = &x->paper[i];
        int d = dataset_index(r, p->dataset);
        char set[256], pub[32], mc[96] = "-", dc[64] = "-";
        paper_setting_text(p, set, sizeof set);
        const char *title = p->method;
        for (int m = 0; m < NM; m++)
            if (!strcmp(METHOD(m), p->method)) title = TITLE(m);
        if (!strcmp(p->method, "fp16")) title = "full precision";
        snprintf(pub, sizeof pub, p->kind == PAPER_BITS ? "%.2f bits" : "%.2f", p->value);
        if (d < 0) {
            snprintf(mc, sizeof mc, "- (%s not evaluated)", p->dataset);
        } else if (!strcmp(p->method, "fp16")) {
            diff_cells(r->fp_ppl[d], p->value, "", mc, sizeof mc, dc, sizeof dc);
        } else if (p->kind == PAPER_BITS) {
            AccStatus st;
            double b = acc_bits_at_ppl(f, method_front(r, p->method, d, f), p->at, &st);
            if (st == ACC_NOT_REACHED && r->npoints) snprintf(mc, sizeof mc, "not reached");
            else if (st == ACC_AT_FEWEST) snprintf(mc, sizeof mc, "<= %.3f bits", b);
            else diff_cells(b, p->value, " bits", mc, sizeof mc, dc, sizeof dc);
        } else if (isfinite(p->at)) {
            diff_cells(acc_ppl_at_bits(f, method_front(r, p->method, d, f), p->at), p->value, "", mc, sizeof mc, dc,
                       sizeof dc);
        } else {
            int n = report_paper_matches(r, p, idx, r->npoints + 1);
            for (int k = 1; k < n; k++) { /* several points with these settings: one row each */
                char m2[96], d2[64];
                diff_cells(r->points[idx[k]].ppl[d], p->value, "", m2, sizeof m2, d2, sizeof d2);
                fprintf(md, "| %s | %s (%s) | %s | %s | %s | %s | %s |\n", title, set, r->points[idx[k]].id, p->dataset,
                        pub, m2, d2, p->source);
            }
            if (n) {
                diff_cells(r->points[idx[0]].ppl[d], p->value, "", mc, sizeof mc, dc, sizeof dc);
                if (n > 1) snprintf(set + strlen(set), sizeof set - strlen(set), " (%s)", r->points[idx[0]].id);
            }
        }
        fprintf(md, "| %s | %s | %s | %s | %s | %s | %s |\n", title, set, p->dataset, pub, mc, dc, p->source);
    }
    free(f);
    free(idx);
}
