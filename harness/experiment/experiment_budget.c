/* experiment_budget.c: [run] max_memory / max_device_memory checked before
 * any point runs, and printed by `sweep --plan` (experiment_check.h): the
 * memory plan (block_run.h, mem_plan.h) of the full-precision evaluation and
 * of every point, as the run will make it, refused by FILE:LINE: run.KEY
 * naming the job when it cannot fit. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_run.h"
#include "datasets.h"
#include "experiment_check.h"
#include "quant_io.h"
#include "tokenizer.h"
#include "util.h"

long experiment_eval_windows(const Experiment *x, const ModelConfig *c) {
    if (x->max_windows > 0) return x->max_windows; /* at most that many: the datasets need not be built */
    Tokenizer tok;
    if (experiment_tokenizer(x, c, &tok) != 0) return -1;
    int seqlen = experiment_eval_seqlen(x, c);
    long most = 0;
    char *names = qh_strdup(x->eval_datasets), *save = NULL;
    for (char *d = strtok_r(names, ",", &save); d && most >= 0; d = strtok_r(NULL, ",", &save)) {
        TokenStream ts;
        memset(&ts, 0, sizeof ts);
        if (dataset_eval(d, x->data_root, &tok, seqlen, &ts) != 0) {
            most = -1;
            break;
        }
        long w = (long)(ts.n / (size_t)seqlen);
        if (w > most) most = w;
        token_stream_free(&ts);
    }
    free(names);
    tokenizer_free(&tok);
    return most;
}

/* "FILE:LINE: run.max_memory" (or "FILE: run.max_memory" when the key is unset). */
static void key_where(const Experiment *x, const char *key, char *buf, size_t n) {
    int line = 0;
    experiment_value(x, ES_RUN, key, &line);
    if (line) snprintf(buf, n, "%s:%d: run.%s", x->path, line, key);
    else snprintf(buf, n, "%s: run.%s", x->path, key);
}

/* One job's plans: p the point (NULL: full precision). With auto, the
 * whole-model plan decides (as sweep.c's job_mode) against `avail`. */
static int job_check(const Experiment *x, const ModelConfig *c, const ExpPoint *p, int on_gpu, long windows,
                     size_t avail, FILE *plans) {
    int T = eval_default_seqlen(c), eT = experiment_eval_seqlen(x, c);
    QuantRunSpec spec = {0};
    if (p) {
        spec = p->spec;
        if (spec.seqlen == 0) spec.seqlen = T;
        spec.max_device_memory = x->max_device_memory;
    }
    size_t host = x->max_memory;
    char note[256];
    if (x->max_memory_auto) {
        MemPlan whole;
        int rc = p ? block_run_quant_plan(c, &spec, 0, on_gpu, NULL, &whole)
                   : block_run_eval_plan(c, x->device, eT, 1, 0, x->max_device_memory, 0, on_gpu, NULL, &whole);
        if (rc != 0) whole.stream_device = 1, whole.host = 0;
        int stream;
        block_run_auto(&whole, avail, &stream, note, sizeof note);
        if (plans) fprintf(plans, "  %s\n", note);
        if (!stream) return 0;
        host = avail ? avail : whole.host;
    } else if (plans) {
        fprintf(plans, "  streamed (max_memory %zu MB)\n", host >> 20);
    }
    MemPlan plan;
    int rc = p ? block_run_quant_plan(c, &spec, host, on_gpu, plans, &plan)
               : block_run_eval_plan(c, x->device, eT, windows, host, x->max_device_memory, 0, on_gpu, plans, &plan);
    if (rc == 0 && p) /* and the point's evaluation, each block decoded from its file */
        rc = block_run_eval_plan(c, x->device, eT, windows, host, x->max_device_memory,
                                 quant_io_decode_bytes_planned(c, &spec.params), on_gpu, plans, &plan);
    if (rc == 0) return 0;
    char where[PATH_MAX + 64], dev[PATH_MAX + 64] = "";
    key_where(x, "max_memory", where, sizeof where);
    if (on_gpu && x->max_device_memory) { /* either budget may be the one short (the message above says which) */
        int dl = 0;
        experiment_value(x, ES_RUN, "max_device_memory", &dl);
        snprintf(dev, sizeof dev, " / run.max_device_memory (line %d)", dl);
        strncat(where, dev, sizeof where - strlen(where) - 1);
    }
    if (p) return qh_error("%s: point %s (%s) cannot run block by block within it (above; expected a larger budget)",
                           where, p->id, p->label);
    return qh_error("%s: the full-precision evaluation cannot run block by block within it (above; expected a larger "
                    "budget)", where);
}

int experiment_check_budgets(const Experiment *x, const ModelConfig *c, int on_gpu, long windows, FILE *plans) {
    if (!x->max_memory && !x->max_memory_auto) {
        if (plans) fprintf(plans, "%s: no [run] max_memory: every job holds the whole model in memory\n", x->path);
        return 0;
    }
    size_t avail = x->max_memory_auto ? block_run_host_available() : 0;
    if (plans && x->max_memory_auto) fprintf(plans, "host memory available: %zu MB\n", avail >> 20);
    if (plans) fprintf(plans, "[fp]    full precision  %s\n", x->fp_id);
    if (job_check(x, c, NULL, on_gpu, windows, avail, plans) != 0) return -1;
    for (int i = 0; i < x->npoints; i++) {
        if (plans) fprintf(plans, "[%d/%d] %s  %s\n", i + 1, x->npoints, x->points[i].label, x->points[i].id);
        if (job_check(x, c, &x->points[i], on_gpu, windows, avail, plans) != 0) return -1;
    }
    return 0;
}
