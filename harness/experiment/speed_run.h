/* speed_run.h: the paper's speed table: the full-precision model and
 * quantized-model files measured in one run (speed.h: tokens per second of
 * both setups, matrix-vector times per layer shape), kept in an HDF5 file
 * (results/NAME/speed.h5 for a sweep's [speed] section, `qharness speed
 * --out`), printed as markdown tables with the ratio to full precision.
 * Used by `qharness speed`, the sweep and `qharness report`. Not here: the
 * measurement itself (harness/eval/speed.h), the kernels (kernels/). */
#ifndef QH_SPEED_RUN_H
#define QH_SPEED_RUN_H

#include <stdio.h>

#include "forward.h"
#include "model.h"
#include "speed.h"

typedef struct SpeedRunSpec {
    const char *model_path;          /* the full-precision model (its tokenizer gives the start token when found) */
    const char *const *files;        /* (nfiles) quantized-model files (quantize --save) */
    const char *const *labels;       /* (nfiles) their names in the table, or NULL: the file names */
    int nfiles;
    const char *kernels;             /* --kernels for every file: ref|avx2|avx512|cuda|auto|decoded */
    QhDevice device;
    unsigned setups;
    int gen;                         /* tokens generated per run */
    long prefix;                     /* the prefix setup's prompt; < 0: the paper's 1024 or the model's context */
    int repeats;
    int matvec;                      /* also the matrix-vector time per layer shape (host kernels) */
} SpeedRunSpec;

typedef struct SpeedVariant {
    char name[256];                  /* "full precision" or the file's label */
    char method[32];                 /* "fp32", or the file's method and bits ("spqr w3") */
    char kernel[48];                 /* "dense" or the packed kernel's name or "decoded" */
    double avg_bits;                 /* 32 for full precision */
    double outlier_fraction;         /* 0 for full precision */
    SpeedTimes t;
    double matvec_us[LIN_COUNT];     /* per shape; NAN when not measured */
    double matvec_bytes[LIN_COUNT];  /* bytes of the weights the product reads */
} SpeedVariant;

typedef struct SpeedTable {
    char model[512];
    char device[64];                 /* "cpu" | "cuda" (the backend's name) */
    int threads;
    SpeedSpec spec;                  /* setups, gen, prefix (resolved), repeats */
    char note[256];                  /* speed_resolve_prefix's note, or "" */
    int nshapes;
    int shape_out[LIN_COUNT], shape_in[LIN_COUNT];
    int nvar;
    SpeedVariant *var;               /* (nvar) owned; [0] is full precision */
} SpeedTable;

/* Measure rs into t (full precision first, then each file in order). -1
 * with a message (a file that cannot be opened, an explicit --kernels the
 * file cannot take, a prefix longer than the context, ...). */
int speed_run(const SpeedRunSpec *rs, SpeedTable *t);
/* Atomically write / read back t (HDF5: kind "speed"). */
int speed_table_write(const char *path, const SpeedTable *t, int argc, char **argv);
int speed_table_read(const char *path, SpeedTable *t);
/* The two tables: tokens per second (and x full precision) per setup, and
 * the matrix-vector times per shape; markdown. */
void speed_table_print(const SpeedTable *t, FILE *out);
void speed_table_free(SpeedTable *t);

/* The [speed] section of a sweep (experiment.h): after its points, the
 * full-precision model and every point's saved model (<out_dir>/models/ID.h5,
 * labelled as the point) measured into <out_dir>/speed.h5 (report prints it); a
 * speed.h5 already there is kept (delete it to measure again). 0, or -1
 * with a message (a point's saved model missing: the sweep ran without
 * save_models). */
struct Experiment;
int experiment_speed(const struct Experiment *x, int argc, char **argv);

#endif
