/* sweep.c: runs an experiment's points (see sweep.h): locks (NFS-safe, judged
 * by process or by Slurm job), skipping finished points, one atomic HDF5 file
 * per point and one for the full-precision evaluation, progress lines, worker
 * processes and the manifest. The numbers themselves come from calibrate.h and
 * eval_run.h; Slurm scripts and submission are slurm.h's. */
#define _GNU_SOURCE
#include "speed_run.h"
#include "sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block_run.h"
#include "eval_run.h"
#include "experiment_check.h"
#include "model_open.h"
#include "provenance.h"
#include "quant_io.h"
#include "results.h"
#include "slurm.h"
#include "stream_eval.h"
#include "util.h"

/* ---- small file helpers ------------------------------------------------------------ */

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *c = buf + 1; *c; c++) {
        if (*c != '/') continue;
        *c = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return qh_error("cannot create folder '%s': %s", buf, strerror(errno));
        *c = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return qh_error("cannot create folder '%s': %s", buf, strerror(errno));
    return 0;
}

static void path_join(char *out, size_t n, const char *a, const char *b) { qh_pathf(out, n, "%s/%s", a, b); }

/* ---- locks ----------------------------------------------------------------------------- */

/* Start time of a process in clock ticks since boot (/proc/PID/stat field 22), 0 if unknown. */
static unsigned long long proc_start_time(long pid) {
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *c = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!c) return 0;
    c++;
    unsigned long long v = 0;
    for (int field = 3; field <= 22 && c; field++) {
        while (*c == ' ') c++;
        if (field == 22) v = strtoull(c, NULL, 10);
        c = strchr(c, ' ');
    }
    return v;
}

static void host_name(char *h, size_t n) {
    if (gethostname(h, n - 1) != 0) snprintf(h, n, "unknown");
    h[n - 1] = 0;
}

static int read_small(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t r = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[r] = 0;
    return 0;
}

/* Write `text` to `path` (created or truncated); -1 on failure. */
static int write_small(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int bad = fputs(text, f) == EOF;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* Claim files PATH.claim.HOST.PID of runs that are gone (killed while taking
 * the lock) are removed by the next run that holds it: this host's by their
 * process, any host's once older than a minute (a claim lives for a moment). */
static void remove_dead_claims(const char *path, const char *host) {
    char pat[PATH_MAX], mine[300];
    qh_pathf(pat, sizeof pat, "%s.claim.*", path);
    snprintf(mine, sizeof mine, ".claim.%s.", host);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *f = g.gl_pathv[i], *c = f + strlen(path);
            long pid = strtol(strrchr(f, '.') + 1, NULL, 10);
            struct stat sb;
            int here = !strncmp(c, mine, strlen(mine));
            if ((here && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) ||
                (stat(f, &sb) == 0 && difftime(time(NULL), sb.st_mtime) > 60))
                unlink(f);
        }
    globfree(&g);
}

/* This process's Slurm job, "JOBID ARRAYJOB_TASK" (or "JOBID JOBID"), "" outside Slurm. */
static void my_slurm_job(char *buf, size_t n) {
    const char *j = getenv("SLURM_JOB_ID"), *a = getenv("SLURM_ARRAY_JOB_ID"), *t = getenv("SLURM_ARRAY_TASK_ID");
    buf[0] = 0;
    if (!j || !*j || strspn(j, "0123456789") != strlen(j)) return;
    if (a && t && *a && *t) snprintf(buf, n, "%s %s_%s", j, a, t);
    else snprintf(buf, n, "%s %s", j, j);
}

/* Is the lock with content `content` (and mtime) held by a live run? 1 yes
 * (who, in holder), 0 stale (whose it was, in holder). A lock of this host is
 * judged by its process; one of another host by its Slurm job, when it names
 * one: stale when that job is this process's own (an earlier run of a
 * requeued task) or no longer running (squeue); without a Slurm job it cannot
 * be checked from here and is respected. */
static int lock_live(const char *content, time_t mtime, const char *host, char *holder, size_t hn) {
    long pid = 0;
    char lhost[256] = "", job[32] = "", task[64] = "", mine[128], state[64];
    unsigned long long start = 0;
    int parsed = sscanf(content, "pid %ld host %255s start %llu slurm %31s %63s", &pid, lhost, &start, job, task) >= 3;
    char slurm[160] = "";
    if (*job) snprintf(slurm, sizeof slurm, ", slurm job %s", *task ? task : job);
    if (!parsed) {
        snprintf(holder, hn, "a run starting now");
        return difftime(time(NULL), mtime) <= 30; /* else debris of an older or foreign writer */
    }
    snprintf(holder, hn, "pid %ld on %s%s", pid, lhost, slurm);
    if (!strcmp(lhost, host)) {
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
        unsigned long long now = proc_start_time(pid);
        return !(start && now && now != start); /* the pid was reused by another process */
    }
    if (!*job) return 1; /* another machine's run: cannot be checked from here */
    my_slurm_job(mine, sizeof mine);
    if (*mine && !strncmp(mine, job, strlen(job)) && mine[strlen(job)] == ' ') return 0; /* requeued: my earlier run */
    int q = slurm_job_state(job, state, sizeof state);
    if (q < 0) return 1; /* squeue unavailable: cannot tell */
    return q == 1 && strcmp(state, "PENDING") != 0 && strcmp(state, "REQUEUED") != 0;
}

int sweep_lock_state(const char *path, char *holder, size_t hn) {
    char content[512], host[256];
    struct stat sb;
    if (read_small(path, content, sizeof content) != 0 || stat(path, &sb) != 0) return 0;
    host_name(host, sizeof host);
    return lock_live(content, sb.st_mtime, host, holder, hn) ? 1 : 2;
}

/* sweep_lock_acquire's attempts, with its claim file named `claim`. */
static int sweep_lock_try(const char *path, const char *claim, const char *me, const char *host, char *holder,
                          size_t hn) {
    for (int attempt = 0; attempt < 5; attempt++) {
        if (write_small(claim, me) != 0) return qh_error("cannot write lock claim '%s': %s", claim, strerror(errno));
        struct stat cs;
        if (link(claim, path) == 0) return 0;
        int e = errno;
        if (stat(claim, &cs) == 0 && cs.st_nlink == 2) return 0; /* NFS: the link was made, its reply lost */
        errno = e;
        if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP) { /* no hard links here: create in place */
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd >= 0) {
                int bad = write(fd, me, strlen(me)) != (ssize_t)strlen(me);
                bad |= close(fd) != 0;
                if (!bad) return 0;
                unlink(path);
                return qh_error("cannot write lock '%s'", path);
            }
        }
        if (errno != EEXIST) return qh_error("cannot create lock '%s': %s", path, strerror(errno));
        char content[512];
        struct stat sb;
        if (read_small(path, content, sizeof content) != 0 || stat(path, &sb) != 0) continue; /* released meanwhile */
        if (lock_live(content, sb.st_mtime, host, holder, hn)) return 1;
        char was[256];
        snprintf(was, sizeof was, "%s", holder);
        /* move the stale lock aside, and make sure it was the one judged stale */
        char aside[PATH_MAX], again[512];
        qh_pathf(aside, sizeof aside, "%s.stale.%s.%ld", path, host, (long)getpid());
        if (rename(path, aside) != 0) continue;
        if (read_small(aside, again, sizeof again) == 0 && !strcmp(again, content)) {
            unlink(aside);
            qh_warn("removed the stale lock '%s' (%s: its run is gone)", path, was);
            continue;
        }
        /* another run took the lock in between: put its lock back */
        if (link(aside, path) != 0) qh_warn("lock '%s' changed hands while being checked", path);
        unlink(aside);
        snprintf(holder, hn, "another run");
        return 1;
    }
    snprintf(holder, hn, "contended");
    return 1;
}

/* The lock appears complete or not at all: its content is written to a claim
 * file first, which is then hard-linked to PATH (link fails if PATH exists),
 * so a run killed at any moment never leaves an empty lock behind that would
 * read as "a run starting now". */
int sweep_lock_acquire(const char *path, char *holder, size_t hn) {
    char me[512], host[256], claim[PATH_MAX], job[128], slurm[160] = "";
    host_name(host, sizeof host);
    my_slurm_job(job, sizeof job);
    if (*job) snprintf(slurm, sizeof slurm, " slurm %s", job);
    snprintf(me, sizeof me, "pid %ld host %s start %llu%s\n", (long)getpid(), host, proc_start_time((long)getpid()),
             slurm);
    char shost[256];
    snprintf(shost, sizeof shost, "%.*s", (int)strcspn(host, "./"), host);
    qh_pathf(claim, sizeof claim, "%s.claim.%s.%ld", path, shost, (long)getpid());
    int rc = sweep_lock_try(path, claim, me, host, holder, hn);
    unlink(claim);
    if (rc == 0) remove_dead_claims(path, shost);
    return rc;
}

void sweep_lock_release(const char *path) {
    char content[512], host[256], me[512];
    host_name(host, sizeof host);
    snprintf(me, sizeof me, "pid %ld host %s ", (long)getpid(), host);
    /* only remove our own lock */
    if (read_small(path, content, sizeof content) == 0 && !strncmp(content, me, strlen(me))) unlink(path);
}

/* Remove the temporary files of an output whose lock we hold (debris of a killed run). */
static void remove_debris(const char *file) {
    char pat[PATH_MAX];
    qh_pathf(pat, sizeof pat, "%s.tmp.*", file);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            if (unlink(g.gl_pathv[i]) == 0) qh_warn("removed '%s', left by an interrupted run", g.gl_pathv[i]);
        }
    }
    globfree(&g);
}

/* ---- finished? --------------------------------------------------------------------------- */

void sweep_job_files(const char *out_dir, const char *id, int is_fp, char *file, size_t fn, char *lock, size_t ln) {
    const char *sub = is_fp ? "fp" : "points";
    qh_pathf(file, fn, "%s/%s/%s.h5", out_dir, sub, id);
    qh_pathf(lock, ln, "%s/%s/%s.lock", out_dir, sub, id);
}

int sweep_result_done(const char *file, int is_fp, const char *id, int warn) {
    const char *attr = is_fp ? "fp_id" : "point_id";
    if (access(file, F_OK) != 0) return 0;
    H5File *f;
    if (h5_open_read(file, &f) != 0) {
        if (warn) qh_warn("'%s' cannot be read: it will be recomputed", file);
        return 0;
    }
    char *v = NULL, *status = NULL, *why = NULL;
    int ok = h5_get_attr_str(f, "/", attr, &v) == 0 && v && !strcmp(v, id);
    int failed = ok && h5_has_attr(f, "/", "status") && h5_get_attr_str(f, "/", "status", &status) == 0 &&
                 strcmp(status, "ok") != 0;
    if (failed && h5_has_attr(f, "/", "failure")) h5_get_attr_str(f, "/", "failure", &why);
    free(v);
    if (!ok && warn) qh_warn("'%s' belongs to other settings (%s differs): it will be recomputed", file, attr);
    /* A point file made before a QS_NEW setting existed has the point's id (the setting is left out of the id
     * at its default, and so the point has the default) but no /settings attribute of it: it was computed as
     * quant_setting_before() says, and counts as done only when that is the default (stats_dtype: such files
     * hold weights decoded from fp16 values, not the reference's). */
    for (const QuantSetting *q = quant_settings; ok && !is_fp && q->name; q++) {
        if (!(q->flags & QS_NEW) || (h5_exists(f, "/settings") && h5_has_attr(f, "/settings", q->name)) ||
            quant_setting_before(q) == q->def)
            continue;
        char a[64], b[64];
        quant_setting_format(q, quant_setting_before(q), a, sizeof a);
        quant_setting_format(q, q->def, b, sizeof b);
        if (warn)
            qh_warn("'%s' was computed with %s = %s (made before the setting existed), this point has %s: it will be "
                    "recomputed", file, q->name, a, b);
        ok = 0;
    }
    h5_abort(&f);
    if (failed && warn) qh_warn("'%s' records a failed run (%s): it will be recomputed", file, why ? why : status);
    free(status);
    free(why);
    return ok && !failed;
}

/* ---- manifest ------------------------------------------------------------------------------ */

int sweep_write_manifest(const Experiment *x) {
    if (mkdir_p(x->out_dir) != 0) return -1;
    json_t *o = json_object(), *pts = json_array();
    json_object_set_new(o, "experiment", json_string(x->name));
    json_object_set_new(o, "experiment_file", json_string(x->path));
    json_object_set_new(o, "experiment_ini", json_string(x->text));
    json_object_set_new(o, "description", json_string(experiment_value(x, ES_EXPERIMENT, "description", NULL)));
    json_object_set_new(o, "fp_id", json_string(x->fp_id));
    json_object_set_new(o, "fp_settings", json_loads(x->fp_json, 0, NULL));
    for (int i = 0; i < x->npoints; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "id", json_string(x->points[i].id));
        json_object_set_new(p, "label", json_string(x->points[i].label));
        json_object_set_new(p, "settings", json_loads(x->points[i].json, 0, NULL));
        json_array_append_new(pts, p);
    }
    json_object_set_new(o, "points", pts);
    char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    char path[PATH_MAX];
    path_join(path, sizeof path, x->out_dir, "sweep.json");
    char *old = NULL;
    size_t len;
    int same = 0;
    if (access(path, R_OK) == 0 && qh_read_file(path, &old, &len) == 0) {
        same = !strcmp(old, s);
        json_t *prev = same ? NULL : json_loads(old, 0, NULL);
        const char *pn = json_string_value(json_object_get(prev, "experiment")),
                   *pf = json_string_value(json_object_get(prev, "experiment_file"));
        if (pn && strcmp(pn, x->name) != 0)
            qh_warn("'%s' described experiment '%s' (%s); it now describes '%s'. The other experiment's point and "
                    "full-precision files stay (files are named by their settings), but `qharness report %s` shows "
                    "this one until '%s' is swept again", path, pn, pf ? pf : "?", x->name, x->out_dir, pn);
        json_decref(prev);
    }
    free(old);
    int rc = same ? 0 : qh_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

/* ---- running ---------------------------------------------------------------------------------- */

/* <out>/points and <out>/fp, the folders of the point and full-precision files. */
static int make_result_dirs(const Experiment *x) {
    char d[PATH_MAX];
    path_join(d, sizeof d, x->out_dir, "points");
    if (mkdir_p(d) != 0) return -1;
    path_join(d, sizeof d, x->out_dir, "fp");
    return mkdir_p(d);
}

int sweep_prepare_dirs(const Experiment *x) {
    char d[PATH_MAX];
    path_join(d, sizeof d, x->out_dir, "slurm");
    if (mkdir_p(d) != 0 || make_result_dirs(x) != 0) return -1;
    return sweep_write_manifest(x);
}

/* What became of one job (j = 0: full precision, j >= 1: point j - 1) in this
 * run, as seen by one worker. Workers' views are merged by taking the largest:
 * a job one worker found held by another (ELSEWHERE), or finished by it
 * meanwhile (DONE), is what that other one made of it; RUNNING left behind
 * means the worker died during the job, and counts as failed. */
typedef enum { JOB_UNTOUCHED = 0, JOB_ELSEWHERE, JOB_DONE, JOB_RUNNING, JOB_FAILED, JOB_COMPUTED } JobStatus;

typedef struct Worker {
    const Experiment *x;
    const SweepOptions *o;
    Tokenizer tok;
    Model model;          /* loaded once per worker; each job restores its original linears */
    int loaded;
    int loaded_streamed;  /* the model was opened for block-by-block work (model_open_for) */
    ModelConfig cfg;      /* the model's shape, read without loading it (for [run] max_memory = auto) */
    int have_cfg;
    size_t base_rss;      /* resident memory when the worker started (libraries loaded, no model) */
    const unsigned char *rows; /* (nrows, njobs) every worker's outcomes of this run (shared mapping) */
    int nrows;
    size_t njobs;
} Worker;

/* Did a worker of this run already fail job j? (A failure leaves no result
 * file, so without this each worker would run the job again.) */
static int failed_this_run(const Worker *w, int j) {
    for (int r = 0; r < w->nrows; r++)
        if (w->rows[(size_t)r * w->njobs + (size_t)j] == JOB_FAILED) return 1;
    return 0;
}

/* The model as loaded, with its tokenizer: read the first time only (a
 * Hugging Face checkpoint is converted once per worker, not once per point);
 * a job's quantized linears are dropped by close_model. The settings were
 * checked against its shape before the run (experiment_check_run). streamed:
 * opened for block-by-block work (a Hugging Face directory read one block at
 * a time, never converted whole). */
static Model *open_model(Worker *w, int streamed) {
    const char *tp = *w->x->tokenizer ? w->x->tokenizer : NULL;
    if (w->loaded && w->loaded_streamed != streamed) { /* [run] max_memory = auto chose the other way for this job */
        tokenizer_free(&w->tok);
        model_free(&w->model);
        w->loaded = 0;
    }
    if (!w->loaded && model_open_for(w->x->model_path, tp, &w->model, &w->tok, streamed) != 0) return NULL;
    w->loaded = 1;
    w->loaded_streamed = streamed;
    return &w->model;
}
static void close_model(Worker *w) {
    for (int l = 0; l < w->model.cfg.n_layers; l++) model_restore_block(&w->model, l);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Root attributes shared by fp/<fp_id>.h5 and the point files. */
static int write_common(H5File *f, const Experiment *x, const char *kind) {
    int rc = 0;
    rc |= h5_attr_str(f, "/", "kind", kind);
    rc |= h5_attr_str(f, "/", "experiment", x->name);
    rc |= h5_attr_str(f, "/", "experiment_file", x->path);
    rc |= h5_attr_str(f, "/", "experiment_ini", x->text);
    rc |= h5_attr_str(f, "/", "fp_id", x->fp_id);
    rc |= h5_attr_i64(f, "/", "created_ns", now_ns());
    return rc ? -1 : 0;
}

/* The root "status" of a result: "ok", or "failed" with the reason in
 * "failure" (a non-finite perplexity: the numbers are kept, the job counts as
 * failed, the report lists it as such and the next run computes it again). */
static int write_status(H5File *f, const char *failure) {
    int rc = h5_attr_str(f, "/", "status", *failure ? "failed" : "ok");
    if (*failure) rc |= h5_attr_str(f, "/", "failure", failure);
    return rc ? -1 : 0;
}

/* The progress line's numbers: each dataset's perplexity, then each zero-shot task's acc and its time. */
static void ppl_summary(const EvalOutcome *eo, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < eo->n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s %.4g", i ? "  " : "", eo->streams[i].name, eo->ppl[i].ppl);
    }
    for (int i = 0; i < eo->nzs; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s acc %.4f (%.1f s)", l ? "  " : "", eo->zs[i].task->name, eo->zs[i].acc,
                 eo->zs[i].seconds);
    }
}

/* How one job runs under [run] max_memory (block_run.h): block by block
 * within max_host bytes, or the whole model in memory; `note` says which on
 * the job's line (empty without a budget). */
typedef struct JobMode {
    int streamed;
    size_t max_host;
    char note[256];
} JobMode;

/* The job's mode: p the point (NULL: the full-precision evaluation). auto
 * takes the whole-model plan of the job (quantization for a point, one window
 * of evaluation for full precision: the whole-model path evaluates window by
 * window) against the host's available memory and the device. -1 after a
 * message. */
static int job_mode(Worker *w, const ExpPoint *p, JobMode *jm) {
    const Experiment *x = w->x;
    memset(jm, 0, sizeof *jm);
    if (!x->max_memory && !x->max_memory_auto) return 0;
    if (x->max_memory) {
        jm->streamed = 1;
        jm->max_host = x->max_memory;
        snprintf(jm->note, sizeof jm->note, "streamed (max_memory %zu MB)", x->max_memory >> 20);
        return 0;
    }
    if (!w->have_cfg && experiment_model_config(x, &w->cfg) != 0) return -1;
    w->have_cfg = 1;
    MemPlan whole;
    int rc;
    if (p) {
        QuantRunSpec spec = p->spec;
        if (spec.seqlen == 0) spec.seqlen = eval_default_seqlen(&w->cfg);
        spec.max_device_memory = x->max_device_memory;
        rc = block_run_quant_plan(&w->cfg, &spec, 0, -1, NULL, &whole);
    } else {
        int T = experiment_eval_seqlen(x, &w->cfg);
        rc = block_run_eval_plan(&w->cfg, x->device, T, 1, 0, x->max_device_memory, 0, -1, NULL, &whole);
    }
    size_t avail = block_run_host_available();
    if (rc != 0) { /* the whole model cannot be planned on the device at all: block by block */
        whole.stream_device = 1;
        whole.host = 0;
    }
    block_run_auto(&whole, avail, &jm->streamed, jm->note, sizeof jm->note);
    jm->max_host = avail ? avail : whole.host;
    return 0;
}

/* The root attributes that say how a job ran: [run] max_memory as written
 * ("" none, "auto" or MB), streamed 0/1, the host and device budgets used
 * (MB), and the worker's resident memory: when it started (base_rss_mb) and
 * its peak so far (peak_rss_mb, getrusage: over every job this worker ran). */
static int write_budget(H5File *f, const Worker *w, const JobMode *jm) {
    const Experiment *x = w->x;
    int rc = h5_attr_str(f, "/", "max_memory", experiment_value(x, ES_RUN, "max_memory", NULL));
    rc |= h5_attr_f64(f, "/", "base_rss_mb", (double)w->base_rss / 1048576.0);
    rc |= h5_attr_f64(f, "/", "peak_rss_mb", (double)qh_peak_rss_bytes() / 1048576.0);
    rc |= h5_attr_i64(f, "/", "streamed", jm->streamed);
    rc |= h5_attr_i64(f, "/", "max_memory_mb", jm->streamed ? (int64_t)(jm->max_host >> 20) : 0);
    rc |= h5_attr_i64(f, "/", "max_device_memory_mb", (int64_t)(x->max_device_memory >> 20));
    return rc ? -1 : 0;
}

static int run_fp(Worker *w, const char *file, char *line, size_t ln) {
    const Experiment *x = w->x;
    JobMode jm;
    if (job_mode(w, NULL, &jm) != 0) return -1;
    Model *m = open_model(w, jm.streamed);
    if (!m) return -1;
    double t0 = qh_now();
    EvalSpec es = {.datasets = x->eval_datasets, .seqlen = x->eval_seqlen, .max_windows = x->max_windows,
                   .device = x->device, .data_root = x->data_root, .quiet = 1, .zeroshot = x->zeroshot,
                   .zeroshot_data = x->zeroshot_data, .zeroshot_limit = x->zeroshot_limit,
                   .max_memory = jm.streamed ? jm.max_host : 0,
                   .max_device_memory = jm.streamed ? x->max_device_memory : 0};
    EvalOutcome eo;
    char failure[512] = "";
    int rc = eval_run(m, &w->tok, &es, &eo);
    int nonfinite = rc == 0 && eval_outcome_check(&eo, failure, sizeof failure) != 0;
    if (rc == 0) {
        Provenance prov;
        provenance_collect(&prov, w->o->argc, w->o->argv);
        H5File *f;
        rc = h5_create(file, &f);
        if (rc == 0) {
            rc = results_write_header(f, "/", &prov, m, x->fp_json);
            if (rc == 0) rc = write_common(f, x, "full_precision");
            if (rc == 0) rc = write_budget(f, w, &jm);
            if (rc == 0) rc = write_status(f, failure);
            if (rc == 0) rc = results_write_outcome(f, "/", &eo);
            if (rc == 0) rc = h5_commit(&f);
            else h5_abort(&f);
        }
        char s[512];
        ppl_summary(&eo, s, sizeof s);
        snprintf(line, ln, "%s  (%.1f s)%s%s", s, qh_now() - t0, *jm.note ? "  " : "", jm.note);
        eval_outcome_free(&eo);
    }
    return nonfinite ? -1 : rc;
}

static int run_point(Worker *w, const ExpPoint *p, const char *file, char *line, size_t ln) {
    const Experiment *x = w->x;
    JobMode jm;
    if (job_mode(w, p, &jm) != 0) return -1;
    Model *m = open_model(w, jm.streamed);
    if (!m) return -1;
    double t0 = qh_now();
    QuantRunSpec spec = p->spec;
    if (spec.seqlen == 0) spec.seqlen = eval_default_seqlen(&m->cfg); /* rtn: only sizes the forward pass */
    Provenance prov;
    provenance_collect(&prov, w->o->argc, w->o->argv);
    /* the quantized-model file: models/<id>.h5, or (block by block without save_models) a temporary one beside the
     * point's file, removed after its evaluation (and, left by a killed run, by remove_debris) */
    char mp[PATH_MAX] = "";
    int rc = 0, tmp_model = 0;
    if (x->save_models) {
        char dir[PATH_MAX];
        path_join(dir, sizeof dir, x->out_dir, "models");
        qh_pathf(mp, sizeof mp, "%s/%s.h5", dir, p->id);
        rc = mkdir_p(dir);
    } else if (jm.streamed) {
        qh_pathf(mp, sizeof mp, "%s.tmp.model.%ld", file, (long)getpid());
        tmp_model = 1;
    }
    QuantRun run;
    spec.max_device_memory = x->max_device_memory; /* (0 without a budget; auto's whole-model plan fits it) */
    if (rc == 0 && jm.streamed) { /* the plan first (refused with its parts), then each block to the file */
        MemPlan plan;
        rc = block_run_quant_plan(&m->cfg, &spec, jm.max_host, -1, stderr, &plan);
        if (rc == 0) { /* and its evaluation from the file, one window at least, before the quantization's hours */
            int eT = experiment_eval_seqlen(x, &m->cfg);
            rc = block_run_eval_plan(&m->cfg, x->device, eT, 1, jm.max_host, x->max_device_memory,
                                     quant_io_decode_bytes_planned(&m->cfg, &spec.params), -1, NULL, &plan);
        }
        if (rc == 0) rc = block_run_quantize(m, &w->tok, &spec, mp, &prov, p->json, &run);
    } else if (rc == 0) {
        rc = quantize_model(m, &w->tok, &spec, &run);
    }
    if (rc != 0) {
        char origin[2048];
        experiment_point_origin(x, p, origin, sizeof origin);
        qh_error("point %s (%s) failed; its settings: %s", p->id, p->label, origin);
        close_model(w);
        return -1;
    }
    double tq = qh_now() - t0;
    if (x->save_models && !jm.streamed) rc = quant_model_save(mp, m, &spec, &run, &prov, p->json);
    Model fp = {0}; /* [eval] kld: the weights as loaded, alongside */
    if (rc == 0 && x->kld) rc = model_view_loaded(m, &fp);
    EvalSpec es = {.datasets = x->eval_datasets, .seqlen = x->eval_seqlen, .max_windows = x->max_windows,
                   .device = x->device, .data_root = x->data_root, .quiet = 1,
                   .kld_ref = x->kld ? &fp : NULL, .kld_scope = x->kld_scope, .kld_datasets = x->kld_datasets,
                   .zeroshot = x->zeroshot, .zeroshot_data = x->zeroshot_data, .zeroshot_limit = x->zeroshot_limit,
                   .max_memory = jm.streamed ? jm.max_host : 0,
                   .max_device_memory = jm.streamed ? x->max_device_memory : 0};
    EvalOutcome eo = {0};
    char failure[512] = "";
    if (rc == 0 && jm.streamed) rc = block_run_eval_file(m, &w->tok, mp, &es, &eo); /* decoded block by block */
    else if (rc == 0) rc = eval_run(m, &w->tok, &es, &eo);
    if (tmp_model) unlink(mp);
    int nonfinite = rc == 0 && eval_outcome_check(&eo, failure, sizeof failure) != 0;
    model_free(&fp);
    double te = qh_now() - t0 - tq;
    if (rc == 0) {
        H5File *f;
        rc = h5_create(file, &f);
        if (rc == 0) {
            rc = results_write_header(f, "/", &prov, m, p->json);
            if (rc == 0) rc = quant_io_write_settings(f, &spec.params);
            if (rc == 0) rc = write_common(f, x, "sweep_point");
            if (rc == 0) rc = write_budget(f, w, &jm);
            if (rc == 0) rc = write_status(f, failure);
            if (rc == 0) {
                rc |= h5_attr_str(f, "/", "point_id", p->id);
                rc |= h5_attr_str(f, "/", "label", p->label);
                rc |= h5_attr_str(f, "/", "method", spec.method);
                rc |= h5_attr_i64(f, "/", "calib_seqlen", spec.seqlen);
                rc |= h5_attr_f64(f, "/", "seconds_quantize", tq);
                rc |= h5_attr_f64(f, "/", "seconds_eval", te);
            }
            if (rc == 0) rc = quant_io_write_report(f, "/", &run);
            if (rc == 0) rc = results_write_outcome(f, "/", &eo);
            if (rc == 0) rc = h5_commit(&f);
            else h5_abort(&f);
        }
        char s[512];
        ppl_summary(&eo, s, sizeof s);
        for (int i = 0; eo.kld && i < eo.n; i++)
            if (eo.kld[i].n) {
                snprintf(s + strlen(s), sizeof s - strlen(s), "  KLD(%s) %.4g", eo.streams[i].name, eo.kld[i].kld_mean);
                break;
            }
        snprintf(line, ln, "%.3f bits  %s  (%.1f s)%s%s", run.avg_bits, s, qh_now() - t0, *jm.note ? "  " : "",
                 jm.note);
    }
    eval_outcome_free(&eo);
    quant_run_free(&run);
    close_model(w);
    return nonfinite ? -1 : rc;
}

void sweep_result_path(const Experiment *x, const ExpPoint *p, char *buf, size_t n) {
    char lock[PATH_MAX];
    sweep_job_files(x->out_dir, p ? p->id : x->fp_id, !p, buf, n, lock, sizeof lock);
}

/* One job: point p (NULL: the full-precision evaluation), shown as `tag`; j its
 * index in the run's status rows (0: fp, >= 1 point j - 1; -1: none); its
 * outcome in *st. */
static void run_job_as(Worker *w, const ExpPoint *p, int j, const char *tag, unsigned char *st) {
    const Experiment *x = w->x;
    char file[PATH_MAX], lock[PATH_MAX], holder[256], line[1024] = "";
    const char *label = p ? p->label : "full precision";
    const char *id = p ? p->id : x->fp_id;
    sweep_job_files(x->out_dir, id, !p, file, sizeof file, lock, sizeof lock);
    if (sweep_result_done(file, !p, id, 1)) {
        *st = JOB_DONE;
        printf("%-7s %-40s done earlier  %s\n", tag, label, id);
        fflush(stdout);
        return;
    }
    int r = sweep_lock_acquire(lock, holder, sizeof holder);
    if (r < 0) {
        *st = JOB_FAILED;
        return;
    }
    if (r > 0) {
        *st = JOB_ELSEWHERE;
        printf("%-7s %-40s in progress elsewhere (%s)  %s\n", tag, label, holder, id);
        fflush(stdout);
        return;
    }
    if (sweep_result_done(file, !p, id, 1)) { /* finished by another run between the check and the lock */
        sweep_lock_release(lock);
        *st = JOB_DONE;
        printf("%-7s %-40s done earlier  %s\n", tag, label, id);
        fflush(stdout);
        return;
    }
    if (j >= 0 && failed_this_run(w, j)) { /* its failure was set before its lock was released */
        sweep_lock_release(lock);
        *st = JOB_FAILED;
        printf("%-7s %-40s FAILED in another worker of this run (not retried)  %s\n", tag, label, id);
        fflush(stdout);
        return;
    }
    remove_debris(file);
    qh_progress("%s %s: running (%s)", tag, label, id);
    *st = JOB_RUNNING;
    int rc = p ? run_point(w, p, file, line, sizeof line) : run_fp(w, file, line, sizeof line);
    *st = rc != 0 ? JOB_FAILED : JOB_COMPUTED; /* before the lock goes: the next holder reads it */
    sweep_lock_release(lock);
    if (rc != 0) {
        printf("%-7s %-40s FAILED (see the error above)  %s\n", tag, label, id);
    } else {
        printf("%-7s %-40s %s  %s\n", tag, label, line, id);
    }
    fflush(stdout);
}

static void run_job(Worker *w, int j, unsigned char *st) {
    char tag[64];
    if (j > 0) snprintf(tag, sizeof tag, "[%d/%d]", j, w->x->npoints);
    else snprintf(tag, sizeof tag, "[fp]");
    run_job_as(w, j > 0 ? &w->x->points[j - 1] : NULL, j, tag, st);
}

struct SweepRunner {
    Worker w;
};

SweepRunner *sweep_runner_new(const Experiment *x, const SweepOptions *o) {
    if (make_result_dirs(x) != 0) return NULL;
    SweepRunner *r = qh_calloc(1, sizeof *r);
    r->w.x = x;
    r->w.o = o;
    r->w.base_rss = qh_current_rss_bytes();
    setvbuf(stdout, NULL, _IOLBF, 0);
    return r;
}

int sweep_runner_job(SweepRunner *r, const ExpPoint *p, const char *tag) {
    unsigned char st = JOB_UNTOUCHED;
    run_job_as(&r->w, p, -1, tag, &st);
    return st == JOB_DONE || st == JOB_COMPUTED ? 0 : -1;
}

void sweep_runner_free(SweepRunner *r) {
    if (!r) return;
    if (r->w.loaded) {
        tokenizer_free(&r->w.tok);
        model_free(&r->w.model);
    }
    free(r);
}

/* One worker: the jobs in order (only == -1: all, else that one job), each
 * outcome in row `me` of rows (nrows, x->npoints + 1). */
static void worker_main(const Experiment *x, const SweepOptions *o, int only, unsigned char *rows, int nrows, int me) {
    Worker w;
    memset(&w, 0, sizeof w);
    w.x = x;
    w.o = o;
    w.base_rss = qh_current_rss_bytes();
    w.rows = rows;
    w.nrows = nrows;
    w.njobs = (size_t)x->npoints + 1;
    unsigned char *status = rows + (size_t)me * w.njobs;
    for (int j = 0; j <= x->npoints; j++)
        if (only < 0 || only == j) run_job(&w, j, &status[j]);
    if (w.loaded) {
        tokenizer_free(&w.tok);
        model_free(&w.model);
    }
}

/* The one summary line of a run (all its workers): -1 when a job failed. */
static int summarize(const Experiment *x, const unsigned char *status, int only, int workers, double t0) {
    int n[JOB_COMPUTED + 1] = {0};
    for (int j = 0; j <= x->npoints; j++) n[status[j]]++;
    int failed = n[JOB_FAILED] + n[JOB_RUNNING], total = only < 0 ? x->npoints + 1 : 1;
    char how[64] = "";
    if (workers > 1) snprintf(how, sizeof how, "%d workers, ", workers);
    printf("sweep %s: %d of %d jobs computed, %d done earlier, %d in progress elsewhere, %d failed (%s%.1f s)\n",
           x->name, n[JOB_COMPUTED], total, n[JOB_DONE], n[JOB_ELSEWHERE], failed, how, qh_now() - t0);
    fflush(stdout);
    if (n[JOB_RUNNING]) qh_error("%d job(s) ended with their worker (see above)", n[JOB_RUNNING]);
    return failed ? -1 : 0;
}

int sweep_run(const Experiment *x, const SweepOptions *o) {
    double t0 = qh_now();
    int only = -1; /* -1: all jobs; else the one job index */
    if (o->only) {
        char why[512];
        if (!strcmp(o->only, "fp")) only = 0;
        else if ((only = experiment_find_point(x, o->only, why, sizeof why)) < 0)
            return qh_error("%s: --point '%s': %s; `qharness sweep %s --dump` lists the ids (fp = full precision)",
                            x->path, o->only, why, x->path);
        else only++;
    }
    printf("sweep %s: %d points (%d excluded, %d duplicates), results in %s\n", x->name, x->npoints, x->nexcluded,
           x->nduplicates, x->out_dir);
    if (make_result_dirs(x) != 0 || sweep_write_manifest(x) != 0) return -1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int jobs = o->jobs < 1 ? 1 : o->jobs;
    size_t njobs = (size_t)x->npoints + 1;
    if (jobs == 1) {
        unsigned char *status = qh_calloc(njobs, 1);
        worker_main(x, o, only, status, 1, 0);
        int rc = summarize(x, status, only, 1, t0);
        free(status);
        if (rc == 0 && only < 0 && x->speed.on) rc = experiment_speed(x, o->argc, o->argv);
        return rc;
    }
    /* workers: the locks divide the jobs between them; each writes its outcomes
     * to its own row of a shared mapping, merged here once all have ended.
     * Fork before any OpenMP use. */
    unsigned char *rows = mmap(NULL, (size_t)jobs * njobs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (rows == MAP_FAILED) return qh_error("cannot map the workers' shared status: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    int nproc = (int)sysconf(_SC_NPROCESSORS_ONLN), threads = nproc / jobs > 0 ? nproc / jobs : 1;
    pid_t *pids = qh_calloc((size_t)jobs, sizeof(pid_t));
    pid_t parent = getpid();
    int started = 0, bad = 0;
    for (; started < jobs; started++) {
        pid_t pid = fork();
        if (pid < 0) {
            qh_error("fork of worker %d of %d failed: %s", started + 1, jobs, strerror(errno));
            bad = 1;
            break;
        }
        if (pid == 0) {
            /* a worker ends with the run that started it (killed or not): SIGTERM
             * when the parent dies, and at once if it died before this line */
            if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(1);
            if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(threads);
            worker_main(x, o, only, rows, jobs, started);
            fflush(stdout);
            _exit(0);
        }
        pids[started] = pid;
    }
    for (int i = 0; i < started; i++) {
        int st;
        pid_t r;
        while ((r = waitpid(pids[i], &st, 0)) < 0 && errno == EINTR) {
        }
        if (r < 0) bad = qh_error("waiting for worker %d (pid %ld): %s", i + 1, (long)pids[i], strerror(errno));
        else if (WIFSIGNALED(st)) bad = qh_error("worker %d (pid %ld) was killed by signal %d", i + 1, (long)pids[i], WTERMSIG(st));
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = qh_error("worker %d (pid %ld) exited with status %d", i + 1, (long)pids[i], WEXITSTATUS(st));
    }
    free(pids);
    unsigned char *merged = qh_calloc(njobs, 1);
    for (int i = 0; i < started; i++)
        for (size_t j = 0; j < njobs; j++)
            if (rows[(size_t)i * njobs + j] > merged[j]) merged[j] = rows[(size_t)i * njobs + j];
    munmap(rows, (size_t)jobs * njobs);
    int rc = summarize(x, merged, only, started, t0);
    free(merged);
    if (rc == 0 && !bad && only < 0 && x->speed.on) rc = experiment_speed(x, o->argc, o->argv);
    return rc != 0 || bad ? -1 : 0;
}
