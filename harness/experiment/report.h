/* report.h: reading an experiment's results folder (written by sweep.h:
 * sweep.json, fp/<fp_id>.h5, points/<id>.h5) back into memory, the paper-shaped table
 * (table.md, table.csv) and the data files of the plots (plots/NAME.dat), drawn
 * by the gnuplot scripts in plots/NAME.gp (gnuplot is run as a child process; its
 * exit status and the images it writes are checked).
 *
 * Not here: running points (sweep.h), HDF5 itself (h5io.h). */
#ifndef QH_REPORT_H
#define QH_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "experiment.h"

/* One zero-shot task's numbers in a result file (/eval/zeroshot/<task>, results.h): NAN where absent. */
typedef struct ReportZs {
    double acc, acc_stderr, acc_norm, acc_norm_stderr; /* acc_norm NAN for a task without it (winogrande) */
    double n;                                          /* items scored */
} ReportZs;

typedef struct ReportPoint {
    char id[13];
    char method[8];
    char *label;              /* owned */
    json_t *settings;         /* the point's canonical settings (owned reference) */
    double avg_bits;          /* SPEC 6 formula */
    double stored_bits;       /* bits per parameter of the stored format */
    double outlier_fraction;  /* outliers / quantized parameters */
    double *ppl;              /* (ndatasets) NAN when the dataset is missing */
    unsigned char *bad;       /* (ndatasets) 1: evaluated, perplexity not finite (a failed evaluation) */
    int failed;               /* the file's status is "failed" */
    char *failure;            /* why (owned), NULL unless failed */
    double *kld;              /* (ndatasets) mean KL divergence against full precision, NAN when not measured */
    double *same_top;         /* (ndatasets) top-token agreement (0..1), NAN when not measured */
    ReportZs *zs;             /* (Report.nzs) the zero-shot tasks' accuracies, NAN where not measured */
    int n_layers;             /* L */
    double *layer_outliers;   /* (L, n_lin) outlier fraction per sub-layer, columns the family's linears */
    int n_lin;                /* linears per block (7 for LLaMA, 4 for Falcon) */
    char **lin_names;         /* (n_lin) their names, from the dataset's "columns" attribute (owned) */
    double seconds;           /* quantize + evaluate */
    char **src;               /* (ndatasets) where each dataset's text came from: "origin, sha256 ..." (owned;
                               * NULL entries where the dataset is missing) */
    char *calib_src;          /* the same for the calibration windows (owned; NULL without calibration) */
} ReportPoint;

typedef struct Report {
    char *dir;                /* the results folder (owned) */
    char *name;               /* experiment name (owned) */
    char *description;        /* (owned) */
    int ndatasets;
    char **datasets;          /* (ndatasets) owned */
    double *fp_ppl;           /* (ndatasets) NAN when fp/<fp_id>.h5 is missing */
    unsigned char *fp_bad;    /* (ndatasets) as ReportPoint.bad */
    int have_fp;
    char **fp_src;            /* (ndatasets) sources of the full-precision evaluation (owned, NULL entries) */
    int fp_failed;            /* the full-precision file records a failed evaluation */
    char *fp_failure;         /* why (owned), or NULL */
    ReportPoint *points;      /* (npoints) owned, in the experiment's order */
    int npoints;
    int nexpected;            /* points listed in sweep.json (0 when it is missing) */
    int nmissing;             /* listed but without a file */
    char *missing;            /* "id label; ..." (owned) */
    int nstale;               /* files of points that are not in sweep.json (ignored) */
    int nfailed;              /* points whose file records a failed evaluation (kept in the table, listed) */
    char *failed;             /* "id (label): why; ..." (owned) */
    int kld_dataset;          /* the first dataset with a KL divergence in some point, -1 for none */
    int nzs;
    char **zs_tasks;          /* (nzs) the [eval] zeroshot tasks, from the manifest (owned) */
    ReportZs *fp_zs;          /* (nzs) full precision's */
    json_t *manifest;         /* sweep.json, or NULL */
    Experiment *x;            /* the experiment the results came from (sweep.json's text, or the .ini given),
                                 parsed with unset ${VAR} kept: its [report] targets and [paper] values; NULL when
                                 it cannot be parsed (owned) */
    int no_folder;            /* report_load_ini on an experiment not swept yet: nothing is written */
} Report;

int report_load(const char *dir, Report *r);
/* The report of an experiment file: its results folder ([output] dir) when it
 * exists, else no measured values at all (the published ones still shown). */
int report_load_ini(const char *ini, Report *r);
void report_free(Report *r);

/* Write <dir>/table.md and <dir>/table.csv (atomically); print the Markdown
 * table on stdout when `print`. Below the table, where each column's text and
 * the calibration windows came from (origin and sha256 from the result
 * files); a column whose cells come from different sources (the C4 validation
 * shard in some, the train slice in others) marks every cell with a letter
 * [a], [b] explained there, and calibration sources that differ between points
 * get a "calib" column of letters A, B. table.md also holds the bits at equal
 * accuracy and, when the experiment has a [paper] section, the published
 * values beside the measured ones (report_compare.c). */
int report_write_tables(const Report *r, int print);

/* Write <dir>/plots/NAME.dat and draw each plot with gnuplot, once per format
 * ("png,svg,pdf"; NULL: png and svg, plus pdf when gnuplot has pdfcairo),
 * using the scripts in scripts_dir (NULL: $QH_PLOTS, else plots/ in the
 * working folder, else beside the binary). Every image is checked: gnuplot's
 * exit status 0, and a file of a plausible size that starts like its format.
 * Fills `made` with the count of images written. */
int report_plot(const Report *r, const char *scripts_dir, const char *formats, int *made);

/* report_compare.c: the two comparison sections of table.md, in Markdown. */
/* Bits at equal accuracy: for each target (full precision +1% and [report]
 * targets) and method, the fewest average bits reaching it along the method's
 * Pareto front (accuracy.h), with every dataset's perplexity at those bits. */
void report_equal_accuracy(const Report *r, FILE *md);
/* [paper]: each published value, what we measured for it and the difference. */
void report_published(const Report *r, FILE *md);
/* The points of `method` whose settings match p's conditions (indices into
 * r->points, at most max); the count. */
int report_paper_matches(const Report *r, const PaperValue *p, int *idx, int max);

#endif
