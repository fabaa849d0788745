/* experiment_check.c: everything a run of an experiment can be refused for
 * before it starts (experiment_check.h), beyond the keys of the file
 * (experiment.c): the model file and its shape against every point's settings,
 * the tokenizer, the data files, the device; the output folder can really be
 * written (not only "exists": /proc and /sys pass access() as root), and every
 * evaluation dataset holds at least one window of the evaluation seqlen (the
 * datasets are built, i.e. tokenized, as the run builds them). */
#define _GNU_SOURCE
#include "experiment_check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets.h"
#include "eval_run.h"
#include "hf_model.h"
#include "procedural.h"
#include "settings.h"
#include "slurm.h"
#include "speed.h"
#include "tokenizer.h"
#include "util.h"
#include "zeroshot.h"

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

int experiment_tokenizer(const Experiment *x, const ModelConfig *c, Tokenizer *tok) {
    char tp[PATH_MAX];
    const char *tok_path = x->tokenizer;
    if (!*tok_path) {
        if (tokenizer_find(x->model_path, c->vocab_size, tp, sizeof tp) != 0)
            return qh_error("%s: no tokenizer found beside '%s'", x->path, x->model_path);
        tok_path = tp;
    }
    return tokenizer_load(tok, tok_path, c->vocab_size);
}

int experiment_eval_seqlen(const Experiment *x, const ModelConfig *c) {
    return x->eval_seqlen > 0 ? x->eval_seqlen : eval_default_seqlen(c);
}

int experiment_check_windows(const Experiment *x, const ModelConfig *c) {
    Tokenizer tok;
    if (experiment_tokenizer(x, c, &tok) != 0) return -1;
    int seqlen = experiment_eval_seqlen(x, c);
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


int experiment_check_model(const Experiment *x) {
    const ExpEntry *e = experiment_entry(x, ES_MODEL, "path");
    int line = e ? e->line : 0;
    struct stat sb;
    char hint[512] = "";
    /* name the variable when the path came from the environment */
    const char *raw = NULL;
    if (e) {
        /* find the raw text on that line of the file */
        const char *p = x->text;
        for (int l = 1; p && l < line; l++) {
            p = strchr(p, '\n');
            if (p) p++;
        }
        raw = p;
    }
    if (raw) {
        const char *d = strstr(raw, "${");
        const char *nl = strchr(raw, '\n');
        if (d && (!nl || d < nl)) {
            const char *end = strpbrk(d, ":}");
            if (end) snprintf(hint, sizeof hint, " (from $%.*s: point it at the checkpoint)", (int)(end - d - 2), d + 2);
        }
    }
    if (procedural_is_spec(x->model_path)) { /* generated (procedural.h): no file, the tokenizer must be named */
        ModelConfig c;
        uint64_t seed;
        if (procedural_parse(x->model_path, &c, &seed) != 0)
            return qh_error("%s:%d: model.path: '%s' is not a procedural model (above)", x->path, line, x->model_path);
        if (!*x->tokenizer)
            return qh_error("%s:%d: model.path: the procedural model '%s' has no tokenizer beside it: set [model] "
                            "tokenizer", x->path, line, x->model_path);
    } else if (stat(x->model_path, &sb) != 0)
        return qh_error("%s:%d: model.path: checkpoint '%s' not found: %s%s", x->path, line, x->model_path,
                        strerror(errno), hint);
    int is_dir = procedural_is_spec(x->model_path) ? 0 : S_ISDIR(sb.st_mode);
    if (!strcmp(x->model_format, "llama2c") && is_dir)
        return qh_error("%s:%d: model.path: '%s' is a directory, but model.format is llama2c (expected a .bin file)",
                        x->path, line, x->model_path);
    if (!strcmp(x->model_format, "hf") && !is_dir)
        return qh_error("%s:%d: model.path: '%s' is a file, but model.format is hf (expected a directory with "
                        "config.json)",
                        x->path, line, x->model_path);
    if (*x->tokenizer && access(x->tokenizer, R_OK) != 0) {
        int tl = 0;
        experiment_value(x, ES_MODEL, "tokenizer", &tl);
        return qh_error("%s:%d: model.tokenizer: '%s' cannot be read: %s", x->path, tl, x->tokenizer, strerror(errno));
    }
    return 0;
}

/* Messages already printed (by a short tag), so that a value shared by many
 * points is reported once. seen_add: 1 when the tag was there already. */
typedef struct Seen {
    char tag[EXP_MAX_VALUES][PATH_MAX + 64];
    int n;
} Seen;
static int seen_add(Seen *s, const char *tag) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->tag[i], tag)) return 1;
    if (s->n < EXP_MAX_VALUES) snprintf(s->tag[s->n++], sizeof s->tag[0], "%s", tag);
    return 0;
}

int experiment_check_shapes(const Experiment *x, const ModelConfig *c) {
    int minr = INT_MAX, minc = INT_MAX, kr = 0, kc = 0, bad = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int r, cols;
        model_linear_shape(c, (LinearKind)k, &r, &cols);
        if (r < minr) minr = r, kr = k;
        if (cols < minc) minc = cols, kc = k;
    }
    int kg = exp_key_index(ES_METHODS, "groupsize"), kq = exp_key_index(ES_METHODS, "qq_groupsize");
    Seen *seen = qh_calloc(1, sizeof *seen);
    for (int i = 0; i < x->npoints; i++) {
        const ExpPoint *p = &x->points[i];
        const QuantParams *q = &p->spec.params;
        int which[2] = {kg, kq}, val[2] = {q->groupsize, q->qq_groupsize};
        int lim[2] = {minc, minr}, lk[2] = {kc, kr};
        int on[2] = {1, q->qq_scale_bits > 0 || q->qq_zero_bits > 0};
        int misfit = 0;
        for (int j = 0; j < 2; j++) {
            if (!on[j] || val[j] <= lim[j]) continue;
            char tag[64];
            snprintf(tag, sizeof tag, "%d/%d/%d", j, p->from[which[j]], val[j]);
            bad = misfit = 1;
            if (seen_add(seen, tag)) continue;
            const ExpEntry *e = p->from[which[j]] ? &x->entries[p->from[which[j]] - 1] : NULL;
            int rows, cols;
            model_linear_shape(c, (LinearKind)lk[j], &rows, &cols);
            if (e)
                qh_error("%s:%d: %s.%s: %d does not fit the model: sub-layer %s is %d x %d (expected at most %d)", x->path,
                         e->line, exp_section_name(e->section), exp_key_table()[which[j]].name, val[j],
                         model_linear_name(c, (LinearKind)lk[j]), rows, cols, lim[j]);
            else
                qh_error("%s: %s default %s = %d does not fit the model: sub-layer %s is %d x %d (set it in [%s])",
                         x->path, p->spec.method, exp_key_table()[which[j]].name, val[j],
                         model_linear_name(c, (LinearKind)lk[j]), rows, cols,
                         p->spec.method);
        }
        /* then exactly what quantize_model checks before any work (calibrate.c) */
        LinearKind k;
        if (!misfit && quant_params_fit_model(q, p->spec.method, c, &k) != 0) {
            int rows, cols;
            model_linear_shape(c, k, &rows, &cols);
            char origin[2048];
            experiment_point_origin(x, p, origin, sizeof origin);
            qh_error("%s: point %s (%s) does not fit sub-layer %s (%d x %d) of the model (above); its settings: %s",
                     x->path, p->id, p->label, model_linear_name(c, k), rows, cols, origin);
            bad = 1;
        }
    }
    free(seen);
    return bad ? -1 : 0;
}

int experiment_model_config(const Experiment *x, ModelConfig *c) {
    int line;
    experiment_value(x, ES_MODEL, "path", &line);
    int rc;
    memset(c, 0, sizeof *c);
    struct stat sb;
    if (stat(x->model_path, &sb) == 0 && S_ISDIR(sb.st_mode) && !hf_is_model_dir(x->model_path))
        return qh_error("%s:%d: model.path: '%s' is a directory without a config.json (expected a llama2.c .bin file or "
                        "a Hugging Face directory)",
                        x->path, line, x->model_path);
    if (procedural_is_spec(x->model_path)) { /* the shape from the spec */
        uint64_t seed;
        rc = procedural_parse(x->model_path, c, &seed);
    } else if (hf_is_model_dir(x->model_path)) { /* config.json only */
        char cfg[PATH_MAX], *text;
        size_t len;
        qh_pathf(cfg, sizeof cfg, "%s/config.json", x->model_path);
        rc = qh_read_file(cfg, &text, &len);
        if (rc == 0) {
            rc = hf_config_parse(text, len, cfg, c);
            free(text);
        }
    } else { /* the header is validated against the file size; the weights are mapped, not read */
        Model m;
        rc = model_load_llama2c(&m, x->model_path);
        if (rc == 0) {
            *c = m.cfg;
            model_free(&m);
        }
    }
    if (rc != 0) return qh_error("%s:%d: model.path: the configuration of '%s' cannot be read (see above)", x->path, line,
                                 x->model_path);
    return 0;
}

#ifdef QH_HAVE_CUDA
/* Is a CUDA GPU visible? Asked in a child process, so that this one holds no
 * CUDA state when it forks the sweep's workers (a CUDA context does not
 * survive fork). 1 yes, 0 no, -1 after a message. */
static int cuda_probe(void) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return qh_error("cannot start a process to look for a CUDA GPU: %s", strerror(errno));
    if (pid == 0) _exit(qh_cuda_available() ? 0 : 3);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return qh_error("waiting for the CUDA probe: %s", strerror(errno));
    if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3)) return WEXITSTATUS(st) == 0;
    return qh_error("the CUDA probe process ended abnormally (status 0x%x)", st);
}
#endif

int experiment_on_gpu(const Experiment *x, int here) {
    if (x->device != QH_DEVICE_AUTO) return x->device == QH_DEVICE_CUDA;
    if (!here) {
        long g = 0;
        qh_parse_long(experiment_value(x, ES_SLURM, "gpus", NULL), &g);
        return g > 0;
    }
#ifdef QH_HAVE_CUDA
    return cuda_probe() == 1;
#else
    return 0;
#endif
}

int experiment_check_device(const Experiment *x) {
    if (x->device != QH_DEVICE_CUDA) return 0;
    int line;
    experiment_value(x, ES_RUN, "device", &line);
#ifdef QH_HAVE_CUDA
    int present = cuda_probe();
    if (present < 0) return -1;
    if (!present)
        return qh_error("%s:%d: run.device: cuda, but no CUDA GPU is visible on this machine (expected auto or cpu "
                        "here, or a machine with a GPU)",
                        x->path, line);
    return 0;
#else
    return qh_error("%s:%d: run.device: cuda, but this build has no CUDA support (nvcc was not found at build time; "
                    "expected auto or cpu)",
                    x->path, line);
#endif
}

/* One dataset of the file: -1 after a message naming the key's line (or its
 * default) and, for datasets under the data root, where the root came from. */
static int check_dataset(const Experiment *x, const char *name, int calib, const ExpEntry *e, const char *method,
                         Seen *seen) {
    char tag[PATH_MAX + 64], why[2048];
    snprintf(tag, sizeof tag, "%d/%ld/%s", calib, e ? (long)(e - x->entries) : -1L, name);
    if (dataset_file_check(name, x->data_root, calib, why, sizeof why) == 0) return 0;
    if (seen_add(seen, tag)) return -1;
    char where[512], root[512] = "";
    const char *key = calib ? "calibration.dataset" : "eval.datasets";
    if (e && calib) snprintf(where, sizeof where, "%s:%d: %s.dataset", x->path, e->line, exp_section_name(e->section));
    else if (e) snprintf(where, sizeof where, "%s:%d: %s", x->path, e->line, key);
    else if (calib) snprintf(where, sizeof where, "%s: %s (default %s, for %s)", x->path, key, name, method);
    else snprintf(where, sizeof where, "%s: %s (default %s)", x->path, key, x->eval_datasets);
    if (strncmp(name, "file:", 5) != 0) {
        int rl;
        experiment_value(x, ES_RUN, "data", &rl);
        const char *env = getenv("QH_DATA");
        if (rl) snprintf(root, sizeof root, "; the data root '%s' is [run] data at %s:%d", x->data_root, x->path, rl);
        else if (env && *env) snprintf(root, sizeof root, "; the data root '%s' is $QH_DATA", x->data_root);
        else snprintf(root, sizeof root, "; the data root is '%s', the default (set [run] data or $QH_DATA for another)",
                      x->data_root);
    }
    return qh_error("%s: dataset '%s': %s%s", where, name, why, root);
}

int experiment_check_data(const Experiment *x) {
    Seen *seen = qh_calloc(1, sizeof *seen);
    int bad = 0;
    const ExpEntry *ds = experiment_entry(x, ES_EVAL, "datasets");
    char *names = qh_strdup(x->eval_datasets), *save = NULL;
    for (char *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save))
        bad |= check_dataset(x, t, 0, ds, NULL, seen) != 0;
    free(names);
    int kd = exp_key_index(ES_CALIBRATION, "dataset");
    for (int i = 0; i < x->npoints; i++) {
        const ExpPoint *p = &x->points[i];
        if (!p->spec.calib || !strcmp(p->spec.calib, "none")) continue; /* rtn */
        const ExpEntry *e = p->from[kd] ? &x->entries[p->from[kd] - 1] : NULL;
        bad |= check_dataset(x, p->spec.calib, 1, e, p->spec.method, seen) != 0;
    }
    free(seen);
    /* the zero-shot task files: read and checked whole (a bad item named with its file, line and field) */
    char *tasks = x->zeroshot ? qh_strdup(x->zeroshot) : NULL;
    save = NULL;
    for (char *t = tasks ? strtok_r(tasks, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        ZsData d;
        const ZsTask *zt = zs_task_find(t);
        if (zt && zs_data_load(zt, x->zeroshot_data, x->zeroshot_limit, &d) == 0) {
            zs_data_free(&d);
            continue;
        }
        int zl = 0, dl = 0;
        experiment_value(x, ES_EVAL, "zeroshot", &zl);
        experiment_value(x, ES_EVAL, "zeroshot_data", &dl);
        if (dl) qh_error("%s:%d: eval.zeroshot: task %s: its file under eval.zeroshot_data (line %d) cannot be used "
                         "(above)", x->path, zl, t, dl);
        else qh_error("%s:%d: eval.zeroshot: task %s: its file under $ZEROSHOT_DATA cannot be used (above)", x->path, zl, t);
        bad = 1;
    }
    free(tasks);
    return bad ? -1 : 0;
}

/* [speed]: the generated tokens and the prefix fit the model's context (the
 * sweep would otherwise refuse them only after every point was computed). */
static int check_speed(const Experiment *x, const ModelConfig *c) {
    if (!x->speed.on) return 0;
    int gen_long = x->speed.tokens >= c->seq_len, line = 0;
    experiment_value(x, ES_SPEED, gen_long ? "tokens" : "prefix", &line);
    char what[PATH_MAX + 64], note[256];
    if (line) snprintf(what, sizeof what, "%s:%d: speed.%s", x->path, line, gen_long ? "tokens" : "prefix");
    else snprintf(what, sizeof what, "%s: speed.%s", x->path, gen_long ? "tokens" : "prefix");
    int prefix;
    return speed_resolve_prefix(c, x->speed.tokens, x->speed.prefix, what, &prefix, note, sizeof note);
}

int experiment_check_run(const Experiment *x, int here) {
    int bad = 0;
    if (experiment_check_model(x) == 0) {
        ModelConfig c;
        bad |= experiment_model_config(x, &c) != 0 || experiment_check_shapes(x, &c) != 0;
        if (!bad) bad |= check_speed(x, &c) != 0;
        if (!bad && (x->max_memory || x->max_memory_auto))
            bad |= experiment_check_budgets(x, &c, experiment_on_gpu(x, here), 1, NULL) != 0;
        char tp[PATH_MAX];
        if (!bad && !*x->tokenizer && tokenizer_find(x->model_path, c.vocab_size, tp, sizeof tp) != 0) {
            int line = 0;
            experiment_value(x, ES_MODEL, "path", &line);
            char tried[160];
            tokenizer_find_tried(x->model_path, c.vocab_size, tried, sizeof tried);
            bad = qh_error("%s:%d: model.path: no tokenizer found beside '%s' (tried %s): set [model] tokenizer", x->path,
                           line, x->model_path, tried) != 0;
        }
    } else {
        bad = 1;
    }
    if (here) bad |= experiment_check_device(x) != 0;
    bad |= experiment_check_data(x) != 0;
    bad |= experiment_check_output(x) != 0;
    return bad ? -1 : 0;
}
