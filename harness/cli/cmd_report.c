/* cmd_report.c: `qharness report DIR|FILE.ini` (the paper-shaped table of an
 * experiment's results: DIR/table.md and DIR/table.csv) and `qharness plot
 * DIR` (data files under DIR/plots and the gnuplot images drawn from them).
 * Both read what `qharness sweep` wrote (report.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"
#include "util.h"

/* The results folder: the first argument when it is not an option. */
static const char *take_dir(int *argc, char ***argv) {
    if (*argc > 0 && strncmp((*argv)[0], "-", 1) != 0) {
        const char *d = (*argv)[0];
        (*argc)--;
        (*argv)++;
        return d;
    }
    return NULL;
}

int cmd_report(int argc, char **argv, int full_argc, char **full_argv) {
    int quiet = 0;
    const OptSpec specs[] = {
        {"quiet", OPT_FLAG, &quiet, NULL, "write the files without printing the table"},
        {NULL, 0, NULL, NULL, NULL},
    };
    const char *dir = take_dir(&argc, &argv);
    int rc = opts_parse("report DIR|FILE.ini", "Print and write DIR/table.md and DIR/table.csv from a sweep's results "
                        "(DIR = results/NAME): the table, bits at equal accuracy, and the published values of the "
                        "experiment's [paper] section beside the measured ones. Given an experiment file, its "
                        "results folder (the published values alone when it was not swept yet).", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!dir) return qh_error("report: a results folder is required: qharness report results/NAME");
    Report r;
    size_t dl = strlen(dir);
    int ini = dl > 4 && !strcmp(dir + dl - 4, ".ini");
    if ((ini ? report_load_ini(dir, &r) : report_load(dir, &r)) != 0) {
        report_free(&r);
        return -1;
    }
    rc = report_write_tables(&r, !quiet);
    report_free(&r);
    return rc;
}

int cmd_plot(int argc, char **argv, int full_argc, char **full_argv) {
    char *formats = NULL, *scripts = NULL;
    const OptSpec specs[] = {
        {"formats", OPT_STR, &formats, "png,svg,pdf", "image formats (default png,svg and pdf when gnuplot has pdfcairo)"},
        {"scripts", OPT_STR, &scripts, "DIR", "folder of the gnuplot scripts (default $QH_PLOTS, else plots/)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    const char *dir = take_dir(&argc, &argv);
    int rc = opts_parse("plot DIR", "Draw DIR/plots/*: avg bits vs perplexity per dataset (Pareto front, full "
                        "precision), outlier threshold vs outlier fraction, per-layer outlier fraction.",
                        specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!dir) return qh_error("plot: a results folder is required: qharness plot results/NAME");
    Report r;
    if (report_load(dir, &r) != 0) {
        report_free(&r);
        return -1;
    }
    int made = 0;
    printf("plots of %s:\n", r.name);
    rc = report_plot(&r, scripts, formats, &made);
    if (rc == 0) printf("%d images written under %s/plots\n", made, r.dir);
    report_free(&r);
    return rc;
}
