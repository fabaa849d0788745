/* sweep.h: running an experiment's points (experiment.h): the full-precision
 * evaluation once per experiment (<out>/fp/<fp_id>.h5), then every point quantized,
 * evaluated and written as its own file <out>/points/<id>.h5, atomically
 * (h5io.h: temporary file, then rename), so that a killed run leaves only
 * complete files and a rerun skips what is done. A lock file per point
 * (<id>.lock, holding pid, host, the process start time and the Slurm job)
 * keeps concurrent runs (--jobs, two sweeps at once, Slurm array tasks on
 * several nodes) off each other's points; a lock whose run is gone is stale
 * and taken over. Also writes <out>/sweep.json (the experiment and its point
 * list, read by the report). Slurm scripts and submission: slurm.h.
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

/* One process's way through jobs chosen as it goes (search.h): the model
 * loaded once, each job locked, skipped when its file exists ("done
 * earlier"), its line printed as sweep_run prints it. new: NULL after a
 * message when the result folders cannot be made. */
typedef struct SweepRunner SweepRunner;
SweepRunner *sweep_runner_new(const Experiment *x, const SweepOptions *o);
/* Point p (NULL: the full-precision evaluation), shown as `tag`: 0 when its
 * result file exists afterwards, -1 when it failed or another run holds it. */
int sweep_runner_job(SweepRunner *r, const ExpPoint *p, const char *tag);
void sweep_runner_free(SweepRunner *r);
/* The result file of point p: <out>/points/<id>.h5; of NULL <out>/fp/<fp_id>.h5. */
void sweep_result_path(const Experiment *x, const ExpPoint *p, char *buf, size_t n);

/* Write <out>/sweep.json (atomically, only when its content changes). */
int sweep_write_manifest(const Experiment *x);

/* Create <out>/points, <out>/fp and <out>/slurm and write the manifest (what a
 * Slurm submission needs before its tasks start elsewhere). */
int sweep_prepare_dirs(const Experiment *x);

/* The result file and lock of one job of a results folder: the full-precision
 * evaluation (is_fp; fp/<id>.h5, fp/<id>.lock) or a point (points/<id>.h5, .lock). */
void sweep_job_files(const char *out_dir, const char *id, int is_fp, char *file, size_t fn, char *lock, size_t ln);

/* 1 when `file` is a finished result of job `id` (it exists, reads as HDF5 and
 * its point_id / fp_id attribute is `id`; a point file also records every
 * QS_NEW setting whose value before it existed is not its default, else it was
 * computed otherwise: settings.h), else 0; `warn`: say why a file that exists
 * does not count. */
int sweep_result_done(const char *file, int is_fp, const char *id, int warn);

/* The lock protocol, safe on a shared file system (NFS): the lock's content
 * ("pid P host H start T[ slurm JOBID ARRAY_TASK]") is written to a claim file
 * of its own, then hard-linked to the lock's name (link is atomic on NFS; a
 * claim with two links means the link was made even when its reply was lost).
 * acquire: 0 = acquired, 1 = held by a live run (its "pid P on H[, slurm job
 * A_T]" in holder), -1 = error (message printed). A stale lock is removed and
 * taken: one of this host whose process is gone, or one of another host whose
 * Slurm job is this process's own (a requeued task) or no longer running. */
int sweep_lock_acquire(const char *path, char *holder, size_t n);
void sweep_lock_release(const char *path);
/* Who holds the lock at `path`, without taking it: 0 = no lock, 1 = a live
 * run, 2 = a stale lock; the holder (live or gone) in `holder`. */
int sweep_lock_state(const char *path, char *holder, size_t n);

#endif
