/* slurm.h: running an experiment's sweep on a Slurm cluster: the job-array
 * script (one task per point, task 0 the full-precision evaluation) and the
 * report job's script, the resource request taken from the experiment's
 * [slurm] section, checked against the cluster's nodes (sinfo) before
 * anything is submitted, submission with sbatch (the array, then a report job
 * that depends on it), and the queue's view of a job (squeue) for the locks of
 * sweep.c and the status of status.h. Slurm's commands are run as child
 * processes; nothing here links against Slurm.
 *
 * Files, under <out>/slurm/: sweep.sbatch and report.sbatch (the scripts),
 * <array job>_<task>.log (each task's output, appended to when a task is
 * requeued), report_<job>.log, and submissions.tsv, one line per submission:
 * "ARRAY<TAB>REPORT<TAB>TIME<TAB>TASKS<TAB>JOB0 JOB1 ..." where TASKS is the
 * --array list submitted and JOBk the id of task k's job (fp_id for task 0).
 *
 * Not here: running a point (sweep.h), the table (report.h). */
#ifndef QH_SLURM_H
#define QH_SLURM_H

#include <stddef.h>

#include "experiment.h"

/* A Slurm duration ("M", "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S", or
 * "infinite" / "UNLIMITED" = -1) in minutes, seconds rounded up: 0 or -1 when
 * it is not one. */
int slurm_parse_time(const char *s, long *minutes);
/* A Slurm memory size ("4000" = MB, or with a K, M, G or T suffix) in MB: 0 or -1. */
int slurm_parse_mem(const char *s, long *mb);
/* The extra options of [slurm] extra: "--opt[=v]" items separated by ';'.
 * 0, or -1 with `why` filled. */
int slurm_check_extra(const char *s, char *why, size_t n);

/* Write <out>/slurm/sweep.sbatch (or `path`) and <out>/slurm/report.sbatch;
 * `qh` is the qharness binary the tasks run. cpus = 0 in [slurm] becomes this
 * machine's CPUs, at most 8. The written array script's path goes to `written`. */
int slurm_write_scripts(const Experiment *x, const char *path, const char *qh, char *written, size_t n);

/* `qharness sweep FILE --slurm --submit`: check that Slurm's commands are
 * there and that some node of the partition can run a task as [slurm] asks
 * (cpus, memory, GPUs, constraint, time limit; each misfit named with its
 * FILE:LINE: slurm.KEY and the cluster's limit), that no earlier submission
 * of this results folder is still queued, then write the scripts (cpus = 0
 * fitted to the partition's largest node, at most 8), let `sbatch
 * --test-only` judge them, and submit the array (only the tasks whose results
 * are missing) and the report job (--dependency=afterok on the array). Prints
 * the job ids. 0, or -1 after a message, with nothing submitted unless the
 * message says so. */
int slurm_submit(const Experiment *x, const char *path, const char *qh);

/* The queue's view of job `jobid` ("123", or "123_4" for an array task):
 * 1 = in the queue, its state (RUNNING, PENDING, ...) in `state`; 0 = not in
 * the queue (finished, cancelled, or unknown); -1 = squeue is unavailable or
 * failed. */
int slurm_job_state(const char *jobid, char *state, size_t n);

/* One line of squeue for the tasks of some jobs. */
typedef struct SlurmTask {
    char id[64];      /* "123_4" (array task) or "125" */
    char state[32];   /* RUNNING, PENDING, ... */
    char reason[128]; /* why it is pending ("None" when running) */
    char nodes[128];  /* where it runs */
    char elapsed[32]; /* time used */
} SlurmTask;

/* The queued tasks of the comma-separated job ids `jobs` (array tasks one by
 * one): *out (owned) with *n entries. 0, or -1 when squeue is unavailable or
 * failed (nothing allocated). */
int slurm_queue(const char *jobs, SlurmTask **out, int *n);

#endif
