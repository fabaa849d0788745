/* experiment_check.c: checks of an experiment against the machine it runs on,
 * beyond its keys and the model's shape (experiment.c): the output folder can
 * really be written (not only "exists": /proc and /sys pass access() as root),
 * and every evaluation dataset holds at least one window of the evaluation
 * seqlen (the datasets are built, i.e. tokenized, as the run builds them).
 * Not here: parsing, the model and data-file checks (experiment.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets.h"
#include "experiment.h"
#include "tokenizer.h"
#include "util.h"

/* "FILE:LINE: output.dir" or, for the default, "FILE: output.dir (default results/NAME)". */
static void dir_origin(const Experiment *x, char *buf, size_t n) {
    int line = 0;
    experiment_value(x, ES_OUTPUT, "dir", &line);
    if (line) snprintf(buf, n, "%s:%d: output.dir", x->path, line);
    else snprintf(buf, n, "%s: output.dir (default %s)", x->path, x->out_dir);
}

int experiment_check_output(const Experiment *x) {
    char where[PATH_MAX + 64], probe[PATH_MAX + 64], dir[PATH_MAX];
    dir_origin(x, where, sizeof where);
    if (strlen(x->out_dir) + 40 >= sizeof dir) return qh_error("%s: '%s' is too long a path", where, x->out_dir);
    /* the deepest folder that exists: the sweep creates the rest below it */
    snprintf(dir, sizeof dir, "%s", x->out_dir);
    struct stat st;
    for (;;) {
        if (stat(dir, &st) == 0) break;
        if (errno != ENOENT) return qh_error("%s: '%s': %s", where, dir, strerror(errno));
        char *s = strrchr(dir, '/');
        while (s && s > dir && s[1] == 0) { /* trailing slashes */
            *s = 0;
            s = strrchr(dir, '/');
        }
        if (!s) {
            snprintf(dir, sizeof dir, ".");
        } else if (s == dir) {
            dir[1] = 0;
        } else {
            *s = 0;
        }
    }
    if (!S_ISDIR(st.st_mode))
        return qh_error("%s: '%s' cannot hold the results: '%s' is not a folder", where, x->out_dir, dir);
    /* a file really created there (and removed): pseudo file systems refuse it */
    snprintf(probe, sizeof probe, "%s/.qharness_write_check.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return qh_error("%s: results cannot be written under '%s': creating a file in '%s' fails (%s)", where,
                        x->out_dir, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

int experiment_check_windows(const Experiment *x, const ModelConfig *c) {
    char tp[PATH_MAX];
    const char *tok_path = x->tokenizer;
    if (!*tok_path) {
        if (tokenizer_find(x->model_path, c->vocab_size, tp, sizeof tp) != 0)
            return qh_error("%s: no tokenizer found beside '%s'", x->path, x->model_path);
        tok_path = tp;
    }
    Tokenizer tok;
    if (tokenizer_load(&tok, tok_path, c->vocab_size) != 0) return -1;
    int seqlen = x->eval_seqlen > 0 ? x->eval_seqlen : (c->seq_len < 2048 ? c->seq_len : 2048);
    int sl_line = 0, ds_line = 0;
    experiment_value(x, ES_EVAL, "seqlen", &sl_line);
    experiment_value(x, ES_EVAL, "datasets", &ds_line);
    char sl_where[64] = "";
    if (sl_line) snprintf(sl_where, sizeof sl_where, ":%d", sl_line);
    else snprintf(sl_where, sizeof sl_where, " (default: the model's seq_len, at most 2048)");
    int bad = 0;
    char *names = qh_strdup(x->eval_datasets), *save = NULL;
    for (char *d = strtok_r(names, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
        TokenStream ts;
        memset(&ts, 0, sizeof ts);
        if (dataset_eval(d, x->data_root, &tok, seqlen, &ts) != 0) {
            bad = 1;
            qh_error("%s:%d: eval.datasets: '%s' cannot be built for windows of %d tokens (see above)", x->path,
                     ds_line, d, seqlen);
        } else if (ts.n < (size_t)seqlen) {
            bad = 1;
            qh_error("%s%s: eval.seqlen: a window of %d tokens is longer than dataset '%s' (%zu tokens): no window to "
                     "evaluate (expected at most %zu)", x->path, sl_where, seqlen, d, ts.n, ts.n);
        }
        token_stream_free(&ts);
    }
    free(names);
    tokenizer_free(&tok);
    return bad ? -1 : 0;
}
