/* sweep.h: running an experiment's points (experiment.h): the full-precision
 * evaluation once per experiment (<out>/fp/<fp_id>.h5), then every point quantized,
 * evaluated and written as its own file <out>/points/<id>.h5, atomically
 * (h5io.h: temporary file, then rename), so that a killed run leaves only
 * complete files and a rerun skips what is done. A lock file per point
 * (<id>.lock, created with O_EXCL, holding pid, host and the process start
 * time) keeps concurrent runs (--jobs, two sweeps at once, Slurm array tasks)
 * off each other's points; a lock whose process is gone is stale and taken
 * over. Also writes <out>/sweep.json (the experiment and its point list, read
 * by the report) and Slurm job-array scripts.
 *
 * Not here: parsing the experiment (experiment.h), the table and plots (report.h). */
#ifndef QH_SWEEP_H
#define QH_SWEEP_H

#include <stddef.h>

#include "experiment.h"

typedef struct SweepOptions {
    const char *only;  /* run just this point id (or prefix), or "fp"; NULL: everything */
    int jobs;          /* worker processes (1: this one) */
    int argc;          /* the command line, for provenance */
    char **argv;
} SweepOptions;

/* Run the experiment's unfinished points (o->only: after checking that it
 * names a point, before anything is written). Ends with one summary line for
 * the whole run, all its workers together. 0 when every job this run tried
 * succeeded (points left to other live runs do not count as failures), -1
 * when one failed or a worker ended abnormally. Checks of the settings against
 * the model, the data and the device are the caller's (experiment_check_run). */
int sweep_run(const Experiment *x, const SweepOptions *o);

/* Write <out>/sweep.json (atomically, only when its content changes). */
int sweep_write_manifest(const Experiment *x);

/* Write a Slurm job-array script (one task per point, task 0 the
 * full-precision evaluation) to `path` (default <out>/slurm/sweep.sbatch when
 * NULL); `qh` is the qharness binary the tasks run. */
int sweep_write_slurm(const Experiment *x, const char *path, const char *qh, char *written, size_t n);

/* The lock protocol. acquire: 0 = acquired, 1 = held by a live process (its
 * "pid P on host H" in holder), -1 = error (message printed). A lock left by a
 * process that no longer exists on this host is removed and taken. */
int sweep_lock_acquire(const char *path, char *holder, size_t n);
void sweep_lock_release(const char *path);

#endif
