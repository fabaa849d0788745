/* cmd_sweep.c: `qharness sweep FILE`: run the points of an experiment file
 * (experiment.h, sweep.h); --dump prints the resolved settings and the point
 * ids, --plan the memory plan of every job under [run] max_memory, --check makes every check a run makes before it starts (the model and
 * its shape against every point, the data files, the device) and runs
 * nothing, --slurm writes a Slurm job-array script instead of running
 * (--submit: and submits it with a report job, slurm.h), --point ID runs one
 * point (what each array task does), --jobs N runs N worker processes; a
 * [search] section runs its bisection instead (search.h);
 * `sweep --status results/NAME` says what became of each point (status.h). `qharness sweep --help` lists the options and every key an
 * experiment file may hold. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "experiment.h"
#include "experiment_check.h"
#include "search.h"
#include "slurm.h"
#include "status.h"
#include "sweep.h"
#include "util.h"

#define QH_STR_(x) #x
#define QH_STR(x) QH_STR_(x)

static const char *summary =
    "Run every point of an experiment file (experiments/NAME.ini): quantize, evaluate, one result file per\n"
    "point under the output folder; finished points are skipped, interrupted ones redone.";

int cmd_sweep(int argc, char **argv, int full_argc, char **full_argv) {
    char *point = NULL, *slurm_out = NULL, *status = NULL;
    long jobs = 1;
    int dump = 0, slurm = 0, check = 0, submit = 0, plan = 0;
    const OptSpec specs[] = {
        {"dump", OPT_FLAG, &dump, NULL, "print the resolved settings and the point ids, run nothing"},
        {"plan", OPT_FLAG, &plan, NULL,
         "print the memory plan of the full-precision row and of every point under [run] max_memory / "
         "max_device_memory (refused as the run would refuse it), run nothing"},
        {"check", OPT_FLAG, &check, NULL,
         "validate the file against the model's shape, the data files and the device, run nothing"},
        {"point", OPT_STR, &point, "ID",
         "run only this point (id or a unique prefix of >= " QH_STR(EXP_ID_MIN_PREFIX) " digits; fp = full precision)"},
        {"jobs", OPT_INT, &jobs, "N", "worker processes sharing the points (locks keep them apart)"},
        {"slurm", OPT_FLAG, &slurm, NULL, "write a Slurm job-array script (one task per point), run nothing"},
        {"slurm-out", OPT_STR, &slurm_out, "F", "where --slurm writes (default <output dir>/slurm/sweep.sbatch)"},
        {"submit", OPT_FLAG, &submit, NULL,
         "with --slurm: check the [slurm] request against the cluster, submit the array (missing points only) and a "
         "report job that runs after it"},
        {"status", OPT_STR, &status, "DIR",
         "say which points of results folder DIR are done, running, pending, failed or missing (no FILE.ini)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    const char *file = NULL;
    if (argc > 0 && strncmp(argv[0], "-", 1) != 0) {
        file = argv[0];
        argc--;
        argv++;
    }
    int rc = opts_parse("sweep FILE.ini", summary, specs, argc, argv);
    if (rc > 0) {
        experiment_help(stdout);
        return 0;
    }
    if (rc < 0) return -1;
    if (status) {
        if (file || slurm || submit || dump || check || point || plan)
            return qh_error("sweep --status DIR takes a results folder and no other option (got %s)",
                            file ? file : "another option");
        return sweep_status(status, stdout);
    }
    if (submit && !slurm) return qh_error("sweep: --submit goes with --slurm (qharness sweep FILE.ini --slurm --submit)");
    if (!file) return qh_error("sweep: an experiment file is required: qharness sweep experiments/NAME.ini");
    if (jobs < 1 || jobs > 256) return qh_error("sweep: --jobs must be in 1..256, got %ld", jobs);
    Experiment x;
    if (experiment_load(file, &x) != 0) {
        experiment_free(&x);
        return -1;
    }
    if (dump) {
        experiment_dump(&x, stdout);
        experiment_free(&x);
        return 0;
    }
    if (plan) { /* the model's shape (no weights read), the datasets' windows, each job's plan */
        if (slurm || check || point) {
            experiment_free(&x);
            return qh_error("sweep: --plan prints the plans and runs nothing: --slurm, --check and --point do not apply");
        }
        ModelConfig c;
        rc = experiment_check_model(&x);
        if (rc == 0) rc = experiment_model_config(&x, &c);
        long windows = rc == 0 ? experiment_eval_windows(&x, &c) : -1;
        if (rc == 0 && windows < 0) rc = -1;
        if (rc == 0) {
            printf("%s: %d points, model %s (%d blocks of dim %d), evaluation: at most %ld windows per dataset\n", file,
                   x.npoints, x.model_path, c.n_layers, c.dim, windows);
            fflush(stdout);
            rc = experiment_check_budgets(&x, &c, experiment_on_gpu(&x, 1), windows, stdout);
        }
        experiment_free(&x);
        return rc;
    }
    /* everything that would stop the run, reported before it starts (the device
     * only where the points run: Slurm tasks run elsewhere) */
    if (x.search.on && (slurm || point || jobs > 1)) {
        experiment_free(&x);
        return qh_error("%s: a [search] runs its steps one after the other, each chosen by the last: --slurm, --point "
                        "and --jobs do not apply", file);
    }
    rc = experiment_check_run(&x, !slurm || check);
    if (rc == 0 && (check || slurm)) { /* the windows fit the datasets: costs a tokenization, so only here */
        ModelConfig c;
        rc = experiment_model_config(&x, &c);
        if (rc == 0) rc = experiment_check_windows(&x, &c);
    }
    if (rc == 0 && check)
        printf("%s: valid, %d points, model found, its shape fits every point, data files present, every "
               "evaluation dataset holds a window\n", file, x.npoints);
    if (rc == 0 && !check && submit) {
        rc = slurm_submit(&x, slurm_out, full_argv[0]);
    } else if (rc == 0 && !check && slurm) {
        char written[4096];
        rc = slurm_write_scripts(&x, slurm_out, full_argv[0], written, sizeof written);
        if (rc == 0)
            printf("wrote %s (%d array tasks: the full-precision evaluation and %d points)\n"
                   "submit: sbatch %s   (or: qharness sweep %s --slurm --submit)\nthen:   qharness report %s\n",
                   written, x.npoints + 1, x.npoints, written, file, x.out_dir);
    } else if (rc == 0 && !check) {
        SweepOptions o = {.only = point, .jobs = (int)jobs, .argc = full_argc, .argv = full_argv};
        rc = x.search.on ? search_run(&x, &o) : sweep_run(&x, &o);
        if (rc == 0 && !point) printf("next: qharness report %s\n", x.out_dir);
    }
    experiment_free(&x);
    return rc;
}
