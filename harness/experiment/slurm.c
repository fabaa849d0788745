/* slurm.c: sweeps on a Slurm cluster (see slurm.h): the [slurm] request,
 * the array and report scripts, the cluster's nodes (sinfo) against the
 * request, submission (sbatch), the queue (squeue). Slurm's commands run as
 * child processes with their output captured. */
#define _GNU_SOURCE
#include "slurm.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sweep.h"
#include "util.h"

#define SLURM_FIT_MAX_CPUS 8 /* cpus = 0 fits the node, up to this many */

/* Is `want` one of the items of the comma-separated `list`? */
static int in_csv(const char *list, const char *want) {
    size_t l = strlen(want);
    for (const char *c = list; l && (c = strstr(c, want)); c += l)
        if ((c == list || c[-1] == ',') && (c[l] == 0 || c[l] == ',')) return 1;
    return 0;
}

/* ---- values of [slurm] ---------------------------------------------------------------- */

/* "N" or "N:M..." parts of a duration: up to `max` numbers separated by ':'. */
static int parse_colons(const char *s, long *v, int max) {
    int k = 0;
    const char *c = s;
    while (k < max) {
        if (!isdigit((unsigned char)*c)) return -1;
        char *end;
        errno = 0;
        v[k++] = strtol(c, &end, 10);
        if (errno || end - c > 6) return -1;
        c = end;
        if (!*c) return k;
        if (*c != ':') return -1;
        c++;
    }
    return -1;
}

int slurm_parse_time(const char *s, long *minutes) {
    if (!strcasecmp(s, "infinite") || !strcasecmp(s, "unlimited")) {
        *minutes = -1;
        return 0;
    }
    long days = 0, v[3] = {0, 0, 0}, h = 0, m = 0, sec = 0;
    const char *dash = strchr(s, '-');
    int k;
    if (dash) { /* D-H, D-H:M, D-H:M:S */
        char d[16];
        if (dash == s || (size_t)(dash - s) >= sizeof d) return -1;
        memcpy(d, s, (size_t)(dash - s));
        d[dash - s] = 0;
        if (qh_parse_long(d, &days) != 0 || days < 0 || (k = parse_colons(dash + 1, v, 3)) < 1) return -1;
        h = v[0], m = k > 1 ? v[1] : 0, sec = k > 2 ? v[2] : 0;
    } else { /* M, M:S, H:M:S */
        if ((k = parse_colons(s, v, 3)) < 1) return -1;
        if (k == 1) m = v[0];
        else if (k == 2) m = v[0], sec = v[1];
        else h = v[0], m = v[1], sec = v[2];
    }
    *minutes = ((days * 24 + h) * 60 + m) + (sec + 59) / 60;
    return 0;
}

int slurm_parse_mem(const char *s, long *mb) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return -1;
    long v = strtol(s, &end, 10);
    if (errno || v < 0) return -1;
    double f = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': f = 1.0 / 1024, end++; break;
    case 'M': end++; break;
    case 'G': f = 1024, end++; break;
    case 'T': f = 1024.0 * 1024, end++; break;
    default: return -1;
    }
    if (*end) return -1;
    *mb = (long)((double)v * f + 0.999);
    return 0;
}

int slurm_check_extra(const char *s, char *why, size_t n) {
    if (strchr(s, '\'') || strchr(s, '\n')) {
        snprintf(why, n, "a quote or newline cannot be passed to Slurm safely");
        return -1;
    }
    char *copy = qh_strdup(s), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ";", &save); t && rc == 0; t = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*t)) t++;
        if (*t && *t != '-') {
            snprintf(why, n, "'%s' is not an sbatch option (expected --name[=value] items separated by ';')", t);
            rc = -1;
        }
    }
    free(copy);
    return rc;
}

/* ---- the request ------------------------------------------------------------------------- */

typedef struct Request {
    const char *partition, *account, *qos, *time, *mem, *constraint, *gpu_type, *extra;
    int gpus_flag;  /* 1: --gpus, 0: --gres */
    long cpus;      /* 0: fit */
    long gpus;
} Request;

static void request_of(const Experiment *x, Request *r) {
    r->partition = experiment_value(x, ES_SLURM, "partition", NULL);
    r->account = experiment_value(x, ES_SLURM, "account", NULL);
    r->qos = experiment_value(x, ES_SLURM, "qos", NULL);
    r->time = experiment_value(x, ES_SLURM, "time", NULL);
    r->mem = experiment_value(x, ES_SLURM, "mem", NULL);
    r->constraint = experiment_value(x, ES_SLURM, "constraint", NULL);
    r->gpu_type = experiment_value(x, ES_SLURM, "gpu_type", NULL);
    r->extra = experiment_value(x, ES_SLURM, "extra", NULL);
    r->gpus_flag = !strcmp(experiment_value(x, ES_SLURM, "gpu_option", NULL), "gpus");
    /* validated by the experiment's table: plain integers in range */
    r->cpus = strtol(experiment_value(x, ES_SLURM, "cpus", NULL), NULL, 10);
    r->gpus = strtol(experiment_value(x, ES_SLURM, "gpus", NULL), NULL, 10);
}

/* "FILE:LINE: slurm.KEY = VALUE", or "FILE: slurm.KEY = VALUE (the default)". */
static const char *where(const Experiment *x, const char *key, char *buf, size_t n) {
    int line;
    const char *v = experiment_value(x, ES_SLURM, key, &line);
    if (line) snprintf(buf, n, "%s:%d: slurm.%s = %s", x->path, line, key, v);
    else snprintf(buf, n, "%s: slurm.%s = %s (the default)", x->path, key, v);
    return buf;
}

/* ---- scripts --------------------------------------------------------------------------------- */

typedef struct Text {
    char *s;
    size_t n, cap;
} Text;

static void tprintf(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(Text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->n;
        int k = vsnprintf(t->s + t->n, room, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < room) {
            t->n += (size_t)k;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(k > 0 ? k : 256);
        t->s = qh_realloc(t->s, t->cap);
    }
}

/* The #SBATCH lines both scripts share: where the job may run and who pays. */
static void common_lines(Text *t, const Request *r) {
    if (*r->partition) tprintf(t, "#SBATCH --partition=%s\n", r->partition);
    if (*r->account) tprintf(t, "#SBATCH --account=%s\n", r->account);
    if (*r->qos) tprintf(t, "#SBATCH --qos=%s\n", r->qos);
}

/* Absolute form of a folder for the scripts (they run elsewhere, from `cwd`). */
static void absolute(char *out, size_t n, const char *cwd, const char *p) {
    if (p[0] == '/') qh_pathf(out, n, "%s", p);
    else qh_pathf(out, n, "%s/%s", cwd, p);
}

static int no_quote(const char *what, const char *s) {
    if (strchr(s, '\'') || strchr(s, '\n'))
        return qh_error("%s '%s' holds a quote or newline: cannot write a safe Slurm script", what, s);
    return 0;
}

static long local_fit_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n < SLURM_FIT_MAX_CPUS ? n : SLURM_FIT_MAX_CPUS;
}

/* Write both scripts with r->cpus >= 1. */
static int write_scripts(const Experiment *x, const Request *r, const char *path, const char *qh, char *written,
                         size_t wn) {
    char def[PATH_MAX], dir[PATH_MAX], cwd[PATH_MAX], ini[PATH_MAX], exe[PATH_MAX], out[PATH_MAX], rpath[PATH_MAX];
    qh_pathf(dir, sizeof dir, "%s/slurm", x->out_dir);
    if (!path) {
        qh_pathf(def, sizeof def, "%s/sweep.sbatch", dir);
        path = def;
    }
    qh_pathf(rpath, sizeof rpath, "%s/report.sbatch", dir);
    if (sweep_prepare_dirs(x) != 0) return -1;
    if (!getcwd(cwd, sizeof cwd)) return qh_error("getcwd failed: %s", strerror(errno));
    if (!realpath(x->path, ini)) return qh_error("'%s': %s", x->path, strerror(errno));
    if (!realpath(qh, exe)) snprintf(exe, sizeof exe, "%s", qh);
    absolute(out, sizeof out, cwd, x->out_dir);
    char logs[PATH_MAX];
    qh_pathf(logs, sizeof logs, "%s/slurm", out);
    if (no_quote("the working folder", cwd) || no_quote("the experiment file", ini) || no_quote("the binary", exe) ||
        no_quote("the output folder", out))
        return -1;

    Text t = {qh_malloc(4096), 0, 4096};
    tprintf(&t, "#!/bin/bash\n");
    tprintf(&t, "# Generated by `qharness sweep %s --slurm`: one array task per point of experiment %s,\n", x->path,
            x->name);
    tprintf(&t, "# task 0 the full-precision evaluation. Each task writes its own file under %s/\n", x->out_dir);
    tprintf(&t, "# (points/<id>.h5, atomically; finished points are skipped, a requeued task resumes),\n");
    tprintf(&t, "# then report.sbatch (or `qharness report %s`) makes the table.\n", x->out_dir);
    tprintf(&t, "#SBATCH --job-name=qh-%s\n", x->name);
    tprintf(&t, "#SBATCH --array=0-%d\n", x->npoints);
    tprintf(&t, "#SBATCH --output=%s/%%A_%%a.log\n", logs);
    tprintf(&t, "#SBATCH --open-mode=append\n");
    tprintf(&t, "#SBATCH --requeue\n");
    tprintf(&t, "#SBATCH --cpus-per-task=%ld\n", r->cpus);
    tprintf(&t, "#SBATCH --time=%s\n", r->time);
    common_lines(&t, r);
    if (*r->mem) tprintf(&t, "#SBATCH --mem=%s\n", r->mem);
    if (*r->constraint) tprintf(&t, "#SBATCH --constraint=%s\n", r->constraint);
    if (r->gpus > 0) {
        const char *sep = *r->gpu_type ? ":" : "";
        if (r->gpus_flag) tprintf(&t, "#SBATCH --gpus=%s%s%ld\n", r->gpu_type, sep, r->gpus);
        else tprintf(&t, "#SBATCH --gres=gpu:%s%s%ld\n", r->gpu_type, sep, r->gpus);
    }
    char *extra = qh_strdup(r->extra), *save = NULL;
    for (char *e = strtok_r(extra, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*e)) e++;
        size_t l = strlen(e);
        while (l && isspace((unsigned char)e[l - 1])) e[--l] = 0;
        if (*e) tprintf(&t, "#SBATCH %s\n", e);
    }
    free(extra);
    tprintf(&t, "set -euo pipefail\n");
    tprintf(&t, "points=(fp");
    for (int i = 0; i < x->npoints; i++) tprintf(&t, " %s", x->points[i].id);
    tprintf(&t, ")\n");
    tprintf(&t, "id=${points[$SLURM_ARRAY_TASK_ID]}\n");
    tprintf(&t, "echo \"qharness: task ${SLURM_ARRAY_JOB_ID:-?}_$SLURM_ARRAY_TASK_ID (job ${SLURM_JOB_ID:-?}, restart "
                "${SLURM_RESTART_COUNT:-0}) runs point $id on $(hostname) at $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)\"\n");
    tprintf(&t, "cd '%s'\n", cwd);
    tprintf(&t, "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n");
    tprintf(&t, "exec '%s' sweep '%s' --point \"$id\"\n", exe, ini);
    int rc = qh_write_file_atomic(path, t.s, t.n);
    if (rc == 0) chmod(path, 0755);

    /* the report job: one CPU, as long as an array task may take, at most an hour */
    long tmin = 60, m;
    if (slurm_parse_time(r->time, &m) == 0 && m > 0 && m < tmin) tmin = m;
    t.n = 0;
    tprintf(&t, "#!/bin/bash\n");
    tprintf(&t, "# Generated by `qharness sweep %s --slurm`: the table and plots of experiment %s,\n", x->path, x->name);
    tprintf(&t, "# submitted by --submit to run once every task of its array job has succeeded.\n");
    tprintf(&t, "#SBATCH --job-name=qh-%s-report\n", x->name);
    tprintf(&t, "#SBATCH --output=%s/report_%%j.log\n", logs);
    tprintf(&t, "#SBATCH --cpus-per-task=1\n");
    tprintf(&t, "#SBATCH --time=%ld\n", tmin);
    common_lines(&t, r);
    tprintf(&t, "set -euo pipefail\n");
    tprintf(&t, "cd '%s'\n", cwd);
    tprintf(&t, "'%s' report '%s'\n", exe, out);
    tprintf(&t, "'%s' plot '%s'\n", exe, out);
    if (rc == 0) rc = qh_write_file_atomic(rpath, t.s, t.n);
    if (rc == 0) chmod(rpath, 0755);
    free(t.s);
    if (rc == 0) snprintf(written, wn, "%s", path);
    return rc;
}

int slurm_write_scripts(const Experiment *x, const char *path, const char *qh, char *written, size_t n) {
    Request r;
    request_of(x, &r);
    if (r.cpus == 0) r.cpus = local_fit_cpus();
    return write_scripts(x, &r, path, qh, written, n);
}

/* ---- running Slurm's commands --------------------------------------------------------------- */

/* Read and remove a capture file. */
static char *slurp(int fd, const char *path) {
    char *s = NULL;
    size_t len;
    close(fd);
    if (qh_read_file(path, &s, &len) != 0) s = qh_strdup("");
    unlink(path);
    return s;
}

/* Run argv (argv[0] looked up in PATH), stdin from /dev/null; its stdout and
 * stderr in *out and *err (owned; either may be NULL to discard). Returns its
 * exit status, 127 when it could not be started, -1 when no child was made. */
static int run_cmd(char *const argv[], char **out, char **err) {
    const char *td = getenv("TMPDIR");
    char po[PATH_MAX], pe[PATH_MAX];
    qh_pathf(po, sizeof po, "%s/qh_slurm_out_XXXXXX", td && *td ? td : "/tmp");
    qh_pathf(pe, sizeof pe, "%s/qh_slurm_err_XXXXXX", td && *td ? td : "/tmp");
    int fo = mkstemp(po), fe = fo >= 0 ? mkstemp(pe) : -1;
    if (fo < 0 || fe < 0) {
        if (fo >= 0) close(fo), unlink(po);
        return qh_error("cannot create a temporary file to run %s: %s", argv[0], strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fo), unlink(po), close(fe), unlink(pe);
        return qh_error("cannot run %s: fork failed: %s", argv[0], strerror(errno));
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    char *o = slurp(fo, po), *e = slurp(fe, pe);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    if (w < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Is `prog` an executable file in one of PATH's folders? */
static int in_path(const char *prog) {
    const char *p = getenv("PATH");
    if (!p) return 0;
    char *copy = qh_strdup(p), *save = NULL, f[PATH_MAX];
    int found = 0;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        qh_pathf(f, sizeof f, "%s/%s", *d ? d : ".", prog);
        found = access(f, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* The text with its trailing newlines removed, for messages. */
static char *chomp(char *s) {
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ' ')) s[--l] = 0;
    return s;
}

/* ---- the queue ---------------------------------------------------------------------------------- */

int slurm_job_state(const char *jobid, char *state, size_t n) {
    char *out = NULL, *err = NULL;
    char *argv[] = {"squeue", "-h", "-j", (char *)jobid, "-o", "%T", NULL};
    if (!in_path("squeue")) return -1;
    int rc = run_cmd(argv, &out, &err), res;
    if (rc == 0 && *chomp(out)) {
        snprintf(state, n, "%.*s", (int)strcspn(out, "\n"), out);
        res = 1;
    } else if (rc == 0 || strstr(err, "Invalid job id")) {
        res = 0; /* gone, or finished and kept only as a record */
    } else {
        res = -1;
    }
    free(out);
    free(err);
    return res;
}

/* squeue's lines "%i|%T|%r|%N|%M" appended to *out. */
static void parse_queue(char *o, SlurmTask **out, int *n, int *cap) {
    for (char *line = o, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *f[5] = {line};
        for (int k = 1; k < 5 && f[k - 1]; k++)
            if ((f[k] = strchr(f[k - 1], '|'))) *f[k]++ = 0;
        if (!f[4]) continue;
        if (*n == *cap) *out = qh_realloc(*out, (size_t)(*cap = *cap * 2 + 8) * sizeof **out);
        SlurmTask *t = &(*out)[(*n)++];
        snprintf(t->id, sizeof t->id, "%s", f[0]);
        snprintf(t->state, sizeof t->state, "%s", f[1]);
        snprintf(t->reason, sizeof t->reason, "%s", f[2]);
        snprintf(t->nodes, sizeof t->nodes, "%s", f[3]);
        snprintf(t->elapsed, sizeof t->elapsed, "%s", f[4]);
    }
}

int slurm_queue(const char *jobs, SlurmTask **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!in_path("squeue")) return -1;
    int cap = 0, bad = 0;
    char *o = NULL, *e = NULL;
    char *argv[] = {"squeue", "-h", "-r", "-j", (char *)jobs, "-o", "%i|%T|%r|%N|%M", NULL};
    int rc = run_cmd(argv, &o, &e);
    if (rc == 0) {
        parse_queue(o, out, n, &cap);
    } else if (strstr(e, "Invalid job id")) {
        /* squeue refuses a list when none of its ids is known any more, and
         * some versions when one is not: ask one id at a time */
        char *copy = qh_strdup(jobs), *save = NULL;
        for (char *j = strtok_r(copy, ",", &save); j && !bad; j = strtok_r(NULL, ",", &save)) {
            char *o1 = NULL, *e1 = NULL;
            argv[4] = j;
            int r1 = run_cmd(argv, &o1, &e1);
            if (r1 == 0) parse_queue(o1, out, n, &cap);
            else if (!strstr(e1, "Invalid job id")) bad = 1;
            free(o1);
            free(e1);
        }
        free(copy);
    } else {
        bad = 1;
    }
    free(o);
    free(e);
    if (bad) {
        free(*out);
        *out = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* ---- the cluster's nodes ------------------------------------------------------------------------ */

typedef struct Node {
    char name[128], partition[128], gres[256], features[256];
    int is_default;  /* the partition is the default one */
    long cpus, mem_mb;
    long time_limit; /* the partition's, minutes; -1: none */
} Node;

/* GPUs in a node's Gres ("gpu:a100:4(S:0-1),gpu:2"), of `type` when it is not empty. */
static long gres_gpus(const char *gres, const char *type) {
    long total = 0;
    char item[256];
    const char *c = gres;
    while (*c) {
        size_t k = 0;
        int depth = 0;
        for (; *c && (depth || *c != ','); c++) { /* the item, without "(S:...)" */
            if (*c == '(') depth++;
            else if (*c == ')') depth--;
            else if (!depth && k + 1 < sizeof item) item[k++] = *c;
        }
        item[k] = 0;
        if (*c == ',') c++;
        if (strncmp(item, "gpu", 3) != 0 || (item[3] && item[3] != ':')) continue;
        char *f1 = item[3] ? item + 4 : NULL, *f2 = f1 ? strchr(f1, ':') : NULL;
        if (f2) *f2++ = 0;
        const char *t = f2 ? f1 : "", *count = f2 ? f2 : f1;
        long v = 1;
        if (count && qh_parse_long(count, &v) != 0) { /* "gpu:a100": a type, one GPU */
            t = count;
            v = 1;
        }
        if (!*type || !strcmp(type, t)) total += v;
    }
    return total;
}

/* One line per (node, partition) of `sinfo -N`. */
static int cluster_nodes(Node **out, int *n) {
    char *o = NULL, *e = NULL;
    char *argv[] = {"sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%G|%f|%l", NULL};
    int rc = run_cmd(argv, &o, &e);
    *out = NULL;
    *n = 0;
    if (rc != 0) {
        qh_error("sinfo failed (exit status %d): %s", rc, *chomp(e) ? e : "no message");
        free(o);
        free(e);
        return -1;
    }
    int cap = 0;
    for (char *line = o, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *f[7] = {line};
        int k = 1;
        for (; k < 7 && f[k - 1]; k++)
            if ((f[k] = strchr(f[k - 1], '|'))) *f[k]++ = 0;
        if (!f[6]) continue;
        if (*n == cap) *out = qh_realloc(*out, (size_t)(cap = cap * 2 + 8) * sizeof **out);
        Node *d = &(*out)[(*n)++];
        memset(d, 0, sizeof *d);
        size_t pl = strlen(f[1]);
        d->is_default = pl && f[1][pl - 1] == '*';
        if (d->is_default) f[1][pl - 1] = 0;
        snprintf(d->name, sizeof d->name, "%s", f[0]);
        snprintf(d->partition, sizeof d->partition, "%s", f[1]);
        d->cpus = strtol(f[2], NULL, 10);
        d->mem_mb = strtol(f[3], NULL, 10);
        snprintf(d->gres, sizeof d->gres, "%s", strcmp(f[4], "(null)") ? f[4] : "");
        snprintf(d->features, sizeof d->features, "%s", strcmp(f[5], "(null)") ? f[5] : "");
        if (slurm_parse_time(f[6], &d->time_limit) != 0) d->time_limit = -1;
    }
    free(o);
    free(e);
    if (*n == 0) return qh_error("sinfo lists no nodes: is this machine part of a Slurm cluster?");
    return 0;
}

/* Is the constraint one feature name (not an expression with & | [ ] * ...)? */
static int simple_feature(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.')) return 0;
    return 1;
}

static void minutes_text(long m, char *buf, size_t n) {
    if (m < 0) snprintf(buf, n, "no limit");
    else if (m >= 1440) snprintf(buf, n, "%ld-%02ld:%02ld:00", m / 1440, m / 60 % 24, m % 60);
    else snprintf(buf, n, "%ld:%02ld:00", m / 60, m % 60);
}

/* Check the request against the nodes of its partition; cpus = 0 becomes the
 * largest fitting node's CPUs (at most SLURM_FIT_MAX_CPUS). -1 after a
 * message per misfit. */
static int check_request(const Experiment *x, Request *r, const Node *nodes, int nn) {
    char w[PATH_MAX + 256], names[1024] = "";
    const char *part = r->partition;
    for (int i = 0; i < nn; i++) { /* the partitions (for messages), the default one */
        size_t l = strlen(names);
        if (!in_csv(names, nodes[i].partition))
            snprintf(names + l, sizeof names - l, "%s%s", l ? "," : "", nodes[i].partition);
        if (!*part && nodes[i].is_default) part = nodes[i].partition;
    }
    if (!*part)
        return qh_error("%s: slurm.partition is not set and the cluster has no default partition (sinfo lists: %s)",
                        x->path, names);
    long max_cpus = 0, max_mem = 0, max_gpus = 0, limit = -2, want_mem = 0, want_time = 0;
    int nodes_in = 0, has_feat = 0, all_fit = 0;
    if (*r->mem) slurm_parse_mem(r->mem, &want_mem);
    slurm_parse_time(r->time, &want_time);
    int simple = simple_feature(r->constraint);
    for (int i = 0; i < nn; i++) {
        const Node *d = &nodes[i];
        if (strcmp(d->partition, part) != 0) continue;
        nodes_in++;
        long g = gres_gpus(d->gres, r->gpu_type);
        int feat = !simple || in_csv(d->features, r->constraint);
        max_cpus = d->cpus > max_cpus ? d->cpus : max_cpus;
        max_mem = d->mem_mb > max_mem ? d->mem_mb : max_mem;
        max_gpus = g > max_gpus ? g : max_gpus;
        has_feat |= feat;
        limit = d->time_limit;
        if (d->cpus >= (r->cpus ? r->cpus : 1) && d->mem_mb >= want_mem && g >= r->gpus && feat) all_fit = 1;
    }
    if (!nodes_in)
        return qh_error("%s: the cluster has no partition '%s' (sinfo lists: %s)", where(x, "partition", w, sizeof w),
                        part, names);
    int bad = 0;
    if (r->cpus > max_cpus)
        bad = qh_error("%s: no node of partition '%s' has that many CPUs (the most is %ld, from sinfo); ask for at "
                       "most %ld, or 0 to fit the node",
                       where(x, "cpus", w, sizeof w), part, max_cpus, max_cpus);
    if (want_mem > max_mem)
        bad = qh_error("%s: no node of partition '%s' has that much memory (the most is %ld MB, from sinfo)",
                       where(x, "mem", w, sizeof w), part, max_mem);
    if (r->gpus > max_gpus) {
        char ty[160] = "";
        if (*r->gpu_type) snprintf(ty, sizeof ty, " of type '%s'", r->gpu_type);
        if (max_gpus == 0)
            bad = qh_error("%s: no node of partition '%s' has a GPU%s (their Gres, from sinfo, lists none%s); set gpus = "
                           "0, or a partition with GPUs",
                           where(x, "gpus", w, sizeof w), part, ty, *ty ? " of that type" : "");
        else
            bad = qh_error("%s: no node of partition '%s' has %ld GPUs%s (the most is %ld, from sinfo)",
                           where(x, "gpus", w, sizeof w), part, r->gpus, ty, max_gpus);
    }
    if (simple && !has_feat)
        bad = qh_error("%s: no node of partition '%s' has the feature '%s' (sinfo's list of features)",
                       where(x, "constraint", w, sizeof w), part, r->constraint);
    if (limit >= 0 && want_time > limit) {
        char lt[64];
        minutes_text(limit, lt, sizeof lt);
        bad = qh_error("%s: partition '%s' allows at most %s per job (sinfo's time limit)", where(x, "time", w, sizeof w),
                       part, lt);
    }
    if (!bad && !all_fit)
        bad = qh_error("%s: [slurm] asks for cpus = %ld, mem = %s, gpus = %ld%s%s together: each fits some node of "
                       "partition '%s', but no single node has all of them (sinfo -N -p %s)",
                       x->path, r->cpus, *r->mem ? r->mem : "(default)", r->gpus, *r->constraint ? ", constraint = " : "",
                       r->constraint, part, part);
    if (bad) return -1;
    if (r->cpus == 0) { /* fit: the largest node that has everything else */
        for (int i = 0; i < nn; i++) {
            const Node *d = &nodes[i];
            if (!strcmp(d->partition, part) && d->mem_mb >= want_mem && gres_gpus(d->gres, r->gpu_type) >= r->gpus &&
                (!simple || in_csv(d->features, r->constraint)) && d->cpus > r->cpus)
                r->cpus = d->cpus;
        }
        if (r->cpus > SLURM_FIT_MAX_CPUS) r->cpus = SLURM_FIT_MAX_CPUS;
        printf("[slurm] cpus = 0: %ld CPUs per task (the largest fitting node of partition '%s', at most %d)\n", r->cpus,
               part, SLURM_FIT_MAX_CPUS);
    }
    return 0;
}

/* ---- submissions -------------------------------------------------------------------------------- */

/* The array and report job ids of every earlier submission, comma-separated (owned). */
static void earlier_jobs(const char *tsv, char **arrays, char **reports) {
    char *s = NULL;
    size_t len;
    Text a = {qh_malloc(64), 0, 64}, r = {qh_malloc(64), 0, 64};
    a.s[0] = r.s[0] = 0;
    if (access(tsv, F_OK) == 0 && qh_read_file(tsv, &s, &len) == 0) {
        for (char *line = s, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            char aj[32] = "", rj[32] = "";
            if (sscanf(line, "%31[0-9]\t%31[0-9]", aj, rj) >= 1) tprintf(&a, "%s%s", a.n ? "," : "", aj);
            if (*rj) tprintf(&r, "%s%s", r.n ? "," : "", rj);
        }
    }
    free(s);
    *arrays = a.s;
    *reports = r.s;
}

/* Refuse (-1) while a task of an earlier submission is queued: it would run
 * the same points. Report jobs still waiting for an earlier array that has
 * ended are cancelled (the new submission's report job replaces them). */
static int earlier_queued(const Experiment *x) {
    char tsv[PATH_MAX], *arrays, *reports;
    qh_pathf(tsv, sizeof tsv, "%s/slurm/submissions.tsv", x->out_dir);
    earlier_jobs(tsv, &arrays, &reports);
    Text all = {qh_malloc(64), 0, 64}, t = {qh_malloc(64), 0, 64}, jobs = {qh_malloc(64), 0, 64};
    all.s[0] = t.s[0] = jobs.s[0] = 0;
    tprintf(&all, "%s%s%s", arrays, *arrays && *reports ? "," : "", reports);
    SlurmTask *q = NULL;
    int nq = 0, tasks = 0, rc = 0;
    if (all.n && slurm_queue(all.s, &q, &nq) != 0)
        rc = qh_error("squeue failed: cannot tell whether the earlier submissions of %s are still queued", x->out_dir);
    for (int i = 0; i < nq; i++) {
        char job[64];
        snprintf(job, sizeof job, "%.*s", (int)strcspn(q[i].id, "_"), q[i].id);
        int is_report = in_csv(reports, job);
        tasks += !is_report;
        if (!is_report && tasks <= 8) tprintf(&t, "%s%s %s", t.n ? ", " : "", q[i].id, q[i].state);
        if (!in_csv(jobs.s, job)) tprintf(&jobs, "%s%s", jobs.n ? "," : "", job);
    }
    if (rc == 0 && tasks > 0) {
        for (char *c = jobs.s; *c; c++)
            if (*c == ',') *c = ' ';
        rc = qh_error("%s: an earlier submission is still in the queue (%s%s); wait for it (qharness sweep --status %s), "
                      "or cancel it (scancel %s), then submit again",
                      x->out_dir, t.s, tasks > 8 ? ", ..." : "", x->out_dir, jobs.s);
    } else if (rc == 0 && nq > 0) {
        char *o = NULL, *e = NULL, *argv[] = {"scancel", jobs.s, NULL};
        int src = run_cmd(argv, &o, &e);
        if (src != 0) rc = qh_error("scancel %s (report jobs of an earlier submission) failed: %s", jobs.s, chomp(e));
        else printf("cancelled report job %s of an earlier submission (its array has ended; the new report job "
                    "replaces it)\n", jobs.s);
        free(o);
        free(e);
    }
    free(q);
    free(all.s);
    free(t.s);
    free(jobs.s);
    free(arrays);
    free(reports);
    return rc;
}

/* "0-3,5,7-9" from the task numbers marked in `want` (n of them). */
static void array_list(const unsigned char *want, int n, Text *t) {
    for (int i = 0; i < n;) {
        if (!want[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < n && want[j + 1]) j++;
        if (j > i) tprintf(t, "%s%d-%d", t->n ? "," : "", i, j);
        else tprintf(t, "%s%d", t->n ? "," : "", i);
        i = j + 1;
    }
}

/* sbatch ARGS...: the job id it printed (--parsable: "ID" or "ID;CLUSTER") in id; -1 after a message. */
static int sbatch(char *const argv[], const char *what, char *id, size_t n) {
    char *o = NULL, *e = NULL;
    int rc = run_cmd(argv, &o, &e);
    long v;
    chomp(o);
    o[strcspn(o, ";")] = 0;
    if (rc == 0 && qh_parse_long(o, &v) == 0) {
        snprintf(id, n, "%ld", v);
        free(o);
        free(e);
        return 0;
    }
    qh_error("sbatch refused %s (exit status %d): %s", what, rc, *chomp(e) ? e : o);
    free(o);
    free(e);
    return -1;
}

int slurm_submit(const Experiment *x, const char *path, const char *qh) {
    const char *need[] = {"sbatch", "squeue", "sinfo", "scancel"};
    for (int i = 0; i < 4; i++)
        if (!in_path(need[i]))
            return qh_error("sweep --submit: %s is not in PATH (%s): run it where Slurm's commands are (a login node), "
                            "or write the script with --slurm and submit it there",
                            need[i], getenv("PATH") ? getenv("PATH") : "unset");
    Request r;
    request_of(x, &r);
    Node *nodes;
    int nn;
    if (cluster_nodes(&nodes, &nn) != 0) return -1;
    int rc = check_request(x, &r, nodes, nn);
    free(nodes);
    if (rc != 0) return -1;

    /* the tasks whose results are missing */
    int ntasks = x->npoints + 1, nwant = 0;
    unsigned char *want = qh_calloc((size_t)ntasks, 1);
    for (int j = 0; j < ntasks; j++) {
        char file[PATH_MAX], lock[PATH_MAX];
        const char *id = j ? x->points[j - 1].id : x->fp_id;
        sweep_job_files(x->out_dir, id, j == 0, file, sizeof file, lock, sizeof lock);
        want[j] = !sweep_result_done(file, j == 0, id, 1);
        nwant += want[j];
    }
    char written[PATH_MAX], rpath[PATH_MAX];
    if ((nwant > 0 && earlier_queued(x) != 0) || write_scripts(x, &r, path, qh, written, sizeof written) != 0) {
        free(want);
        return -1;
    }
    if (nwant == 0) {
        free(want);
        printf("all %d tasks of %s are done (full precision and %d points): nothing submitted\nnext: qharness report %s\n",
               ntasks, x->name, x->npoints, x->out_dir);
        return 0;
    }
    qh_pathf(rpath, sizeof rpath, "%s/slurm/report.sbatch", x->out_dir);
    Text list = {qh_malloc(64), 0, 64};
    list.s[0] = 0;
    array_list(want, ntasks, &list);
    char *arr = qh_malloc(list.n + 16), dep[128], aid[64], rid[64];
    snprintf(arr, list.n + 16, "--array=%s", list.s);
    char *test[] = {"sbatch", "--test-only", arr, written, NULL};
    char *submit[] = {"sbatch", "--parsable", arr, written, NULL};
    char *o = NULL, *e = NULL;
    rc = run_cmd(test, &o, &e);
    if (rc != 0) qh_error("sbatch --test-only refused %s (exit status %d): %s", written, rc, chomp(e));
    free(o);
    free(e);
    if (rc == 0) rc = sbatch(submit, written, aid, sizeof aid);
    free(arr);
    if (rc != 0) {
        qh_error("nothing was submitted");
        free(list.s);
        free(want);
        return -1;
    }
    printf("submitted array job %s: %d task%s (--array=%s; %d of %d done earlier, not resubmitted)\n", aid, nwant,
           nwant > 1 ? "s" : "", list.s, ntasks - nwant, ntasks);
    fflush(stdout);
    snprintf(dep, sizeof dep, "--dependency=afterok:%s", aid);
    char *t3[] = {"sbatch", "--parsable", dep, "--kill-on-invalid-dep=yes", rpath, NULL};
    int rrc = sbatch(t3, rpath, rid, sizeof rid);
    if (rrc != 0) snprintf(rid, sizeof rid, "-");

    /* the record, for --status and the next --submit */
    char tsv[PATH_MAX], *old = NULL, stamp[64];
    qh_pathf(tsv, sizeof tsv, "%s/slurm/submissions.tsv", x->out_dir);
    size_t len;
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    Text rec = {qh_malloc(256), 0, 256};
    if (access(tsv, F_OK) == 0 && qh_read_file(tsv, &old, &len) == 0) tprintf(&rec, "%s", old);
    free(old);
    tprintf(&rec, "%s\t%s\t%s\t%s\t%s", aid, rid, stamp, list.s, x->fp_id);
    for (int i = 0; i < x->npoints; i++) tprintf(&rec, " %s", x->points[i].id);
    tprintf(&rec, "\n");
    int wrc = qh_write_file_atomic(tsv, rec.s, rec.n);
    free(rec.s);
    free(list.s);
    free(want);
    if (rrc != 0)
        return qh_error("array job %s is submitted, but not its report job: run `qharness report %s` once it is done",
                        aid, x->out_dir);
    printf("submitted report job %s: `qharness report` and `plot` once every task of %s has succeeded\n", rid, aid);
    printf("follow: squeue -j %s,%s   or   qharness sweep --status %s\n", aid, rid, x->out_dir);
    return wrc;
}
