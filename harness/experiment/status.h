/* status.h: `qharness sweep --status results/NAME`: what became of each job
 * of a results folder (the full-precision evaluation and every point listed
 * in its sweep.json): done (its file is complete), running or pending (in the
 * Slurm queue, with the job id, node and time; or held by a live local run),
 * failed (a Slurm task that left a log but no result, with the log's last
 * lines; or a run whose lock was left behind), or missing (never tried). Also
 * the state of the last submission's report job. Reads only: nothing is
 * started, taken or removed.
 *
 * Not here: the locks and result files themselves (sweep.h), the queue and the
 * submission record (slurm.h). */
#ifndef QH_STATUS_H
#define QH_STATUS_H

#include <stdio.h>

/* Print the status of results folder `dir` to `out`; 0, or -1 after a
 * message when `dir` holds no sweep.json. */
int sweep_status(const char *dir, FILE *out);

#endif
