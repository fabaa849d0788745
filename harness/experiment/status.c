/* status.c: `sweep --status` (see status.h): a results folder's jobs, each
 * judged from its result file, the Slurm queue, its lock and its Slurm log. */
#define _GNU_SOURCE
#include "status.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slurm.h"
#include "sweep.h"
#include "util.h"

#define STATUS_LOG_LINES 4 /* lines of a failed task's log shown */

/* One line of slurm/submissions.tsv (slurm.h). */
typedef struct Submission {
    char array[32], report[32], when[32];
    char **ids; /* (nids) the job of each task: ids[k] for task k (owned) */
    int nids;
} Submission;

static void free_submissions(Submission *s, int n) {
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < s[i].nids; k++) free(s[i].ids[k]);
        free(s[i].ids);
    }
    free(s);
}

static int read_submissions(const char *dir, Submission **out) {
    char path[PATH_MAX], *text = NULL;
    size_t len;
    int n = 0, cap = 0;
    *out = NULL;
    qh_pathf(path, sizeof path, "%s/slurm/submissions.tsv", dir);
    if (access(path, F_OK) != 0 || qh_read_file(path, &text, &len) != 0) return 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *f[5] = {line};
        for (int k = 1; k < 5 && f[k - 1]; k++)
            if ((f[k] = strchr(f[k - 1], '\t'))) *f[k]++ = 0;
        if (!f[4]) continue;
        if (n == cap) *out = qh_realloc(*out, (size_t)(cap = cap * 2 + 4) * sizeof **out);
        Submission *s = &(*out)[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->array, sizeof s->array, "%s", f[0]);
        snprintf(s->report, sizeof s->report, "%s", f[1]);
        snprintf(s->when, sizeof s->when, "%s", f[2]);
        char *save = NULL;
        for (char *w = strtok_r(f[4], " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            s->ids = qh_realloc(s->ids, (size_t)(s->nids + 1) * sizeof *s->ids);
            s->ids[s->nids++] = qh_strdup(w);
        }
    }
    free(text);
    return n;
}

static const SlurmTask *find_task(const SlurmTask *q, int nq, const char *id) {
    for (int i = 0; i < nq; i++)
        if (!strcmp(q[i].id, id)) return &q[i];
    return NULL;
}

/* The last `want` non-empty lines of a file, each printed with a prefix. */
static void print_tail(FILE *out, const char *path, int want) {
    char *s = NULL;
    size_t len;
    if (qh_read_file(path, &s, &len) != 0) return;
    int seen = 0;
    char *start = s + len;
    while (start > s && seen < want) { /* walk back over `want` non-empty lines */
        char *e = start;
        while (e > s && e[-1] == '\n') e--;
        if (e == s) break;
        char *b = e;
        while (b > s && b[-1] != '\n') b--;
        start = b;
        seen++;
    }
    for (char *line = start, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (*line) fprintf(out, "             | %s\n", line);
    }
    free(s);
}

int sweep_status(const char *dir, FILE *out) {
    char mpath[PATH_MAX];
    qh_pathf(mpath, sizeof mpath, "%s/sweep.json", dir);
    json_error_t je;
    json_t *m = json_load_file(mpath, 0, &je);
    if (!m)
        return qh_error("sweep --status: '%s' cannot be read (%s): expected a results folder written by `qharness sweep`",
                        mpath, je.text);
    const char *name = json_string_value(json_object_get(m, "experiment")),
               *fp_id = json_string_value(json_object_get(m, "fp_id"));
    json_t *pts = json_object_get(m, "points");
    if (!fp_id || !json_is_array(pts)) {
        json_decref(m);
        return qh_error("sweep --status: '%s' lacks fp_id or points", mpath);
    }
    int npoints = (int)json_array_size(pts);

    Submission *sub;
    int nsub = read_submissions(dir, &sub);
    SlurmTask *q = NULL;
    int nq = 0, have_queue = 0;
    if (nsub > 0) {
        size_t cap = 64;
        char *jobs = qh_malloc(cap);
        jobs[0] = 0;
        for (int i = 0; i < nsub; i++) {
            if (strlen(jobs) + 80 > cap) jobs = qh_realloc(jobs, cap *= 2);
            size_t l = strlen(jobs);
            snprintf(jobs + l, cap - l, "%s%s%s%s", l ? "," : "", sub[i].array, strcmp(sub[i].report, "-") ? "," : "",
                     strcmp(sub[i].report, "-") ? sub[i].report : "");
        }
        have_queue = slurm_queue(jobs, &q, &nq) == 0;
        free(jobs);
    }
    fprintf(out, "%s: experiment %s, %d points + the full-precision evaluation", dir, name ? name : "?", npoints);
    if (nsub > 0)
        fprintf(out, "; %d Slurm submission%s, the last %s (array job %s, report job %s)%s", nsub, nsub > 1 ? "s" : "",
                sub[nsub - 1].when, sub[nsub - 1].array, sub[nsub - 1].report,
                have_queue ? "" : " (squeue unavailable: queue states unknown)");
    fprintf(out, "\n");

    enum { DONE, RUNNING, PENDING, FAILED, MISSING, NSTATES };
    static const char *const names[NSTATES] = {"done", "running", "pending", "failed", "missing"};
    int count[NSTATES] = {0};
    for (int k = 0; k <= npoints; k++) {
        json_t *p = k ? json_array_get(pts, (size_t)k - 1) : NULL;
        const char *id = p ? json_string_value(json_object_get(p, "id")) : fp_id;
        const char *label = p ? json_string_value(json_object_get(p, "label")) : "full precision";
        if (!id) continue;
        char file[PATH_MAX], lock[PATH_MAX], holder[256], detail[PATH_MAX + 256] = "", log[PATH_MAX] = "";
        sweep_job_files(dir, id, k == 0, file, sizeof file, lock, sizeof lock);
        int st = MISSING;
        if (sweep_result_done(file, k == 0, id, 0)) {
            st = DONE;
        } else {
            /* the newest submission that has this job: its task in the queue, or its log */
            for (int s = nsub - 1; s >= 0 && st == MISSING && !*log; s--)
                for (int t = 0; t < sub[s].nids; t++) {
                    if (strcmp(sub[s].ids[t], id) != 0) continue;
                    char tid[64], lp[PATH_MAX];
                    snprintf(tid, sizeof tid, "%s_%d", sub[s].array, t);
                    const SlurmTask *qt = find_task(q, nq, tid);
                    qh_pathf(lp, sizeof lp, "%s/slurm/%s.log", dir, tid);
                    if (qt && !strcmp(qt->state, "RUNNING")) {
                        st = RUNNING;
                        snprintf(detail, sizeof detail, "slurm job %s on %s for %s", tid, qt->nodes, qt->elapsed);
                    } else if (qt) {
                        st = PENDING;
                        snprintf(detail, sizeof detail, "slurm job %s %s (reason: %s)", tid, qt->state, qt->reason);
                    } else if (access(lp, R_OK) == 0) {
                        snprintf(log, sizeof log, "%s", lp);
                        snprintf(detail, sizeof detail, "slurm job %s ended without a result; the end of %s:", tid, lp);
                    }
                    break;
                }
            int ls = st == MISSING ? sweep_lock_state(lock, holder, sizeof holder) : 0;
            if (ls == 1) {
                st = RUNNING;
                snprintf(detail, sizeof detail, "%s", holder);
            } else if (*log) {
                st = FAILED;
            } else if (ls == 2) {
                st = FAILED;
                snprintf(detail, sizeof detail, "its run stopped (%s) and left its lock", holder);
            }
        }
        count[st]++;
        if (*detail) fprintf(out, "  %-8s %-12s  %-28s %s\n", names[st], k ? id : "fp", label ? label : "", detail);
        else fprintf(out, "  %-8s %-12s  %s\n", names[st], k ? id : "fp", label ? label : "");
        if (*log) print_tail(out, log, STATUS_LOG_LINES);
    }
    if (nsub > 0) {
        const char *r = sub[nsub - 1].report;
        const SlurmTask *qt = find_task(q, nq, r);
        char table[PATH_MAX];
        qh_pathf(table, sizeof table, "%s/table.md", dir);
        if (!strcmp(r, "-")) fprintf(out, "report job: none was submitted\n");
        else if (qt) fprintf(out, "report job %s: %s (reason: %s)\n", r, qt->state, qt->reason);
        else if (have_queue)
            fprintf(out, "report job %s: not queued any more (its log, if it ran: %s/slurm/report_%s.log; table.md %s)\n",
                    r, dir, r, access(table, F_OK) == 0 ? "present" : "absent");
    }
    fprintf(out, "%d done, %d running, %d pending, %d failed, %d missing\n", count[DONE], count[RUNNING], count[PENDING],
            count[FAILED], count[MISSING]);
    free(q);
    free_submissions(sub, nsub);
    json_decref(m);
    return 0;
}
