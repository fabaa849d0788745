/* cli_common.c: helpers shared by the subcommands (see cli.h): the data
 * root and the up-front check of a command's output paths against its inputs
 * (CliIo). Opening a model with its tokenizer: model_open.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "datasets.h"
#include "hf_model.h"
#include "util.h"

const char *cli_data_root(const char *opt) {
    if (opt && *opt) return opt;
    const char *e = getenv("QH_DATA");
    return e && *e ? e : "data";
}

/* ---- output paths against inputs (CliIo) --------------------------------------------- */

static void io_add(CliIo *io, const char *what, const char *path, CliIoKind kind) {
    if (!path) return;
    io->v = qh_realloc(io->v, sizeof *io->v * (size_t)(io->n + 1));
    io->v[io->n++] = (CliIoPath){qh_strdup(what), qh_strdup(path), kind};
}

void cli_io_input(CliIo *io, const char *what, const char *path) { io_add(io, what, path, CLI_IN); }
void cli_io_output(CliIo *io, const char *what, const char *path) { io_add(io, what, path, CLI_OUT_FILE); }
void cli_io_output_dir(CliIo *io, const char *what, const char *path) { io_add(io, what, path, CLI_OUT_DIR); }

int cli_io_datasets(CliIo *io, const char *what, const char *list, const char *data_root, int calib) {
    if (!list || (calib && !strcmp(list, "none"))) return 0;
    char *copy = qh_strdup(list), *save = NULL;
    int rc = 0;
    for (char *name = strtok_r(copy, ",", &save); name && rc == 0; name = strtok_r(NULL, ",", &save)) {
        char *file = dataset_file(name, data_root, calib, NULL);
        if (file) cli_io_input(io, what, file);
        else rc = -1;
        free(file);
    }
    free(copy);
    return rc;
}

void cli_io_free(CliIo *io) {
    for (int i = 0; i < io->n; i++) {
        free(io->v[i].what);
        free(io->v[i].path);
    }
    QH_FREE(io->v);
    io->n = 0;
}

/* The folder part of path (dirname), owned. */
static char *folder_of(const char *path) {
    char *c = qh_strdup(path);
    char *d = qh_strdup(dirname(c));
    free(c);
    return d;
}

/* The canonical name of path: realpath of its folder + its last component (a
 * final symbolic link is not followed; ".", ".." and "/" are resolved whole).
 * NULL when that does not resolve (no such folder). Owned. */
static char *canonical(const char *path) {
    char *c = qh_strdup(path), *dir = folder_of(path), *out = NULL;
    const char *base = basename(c);
    if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/")) {
        out = realpath(path, NULL);
    } else {
        char *rdir = realpath(dir, NULL);
        if (rdir) {
            size_t n = strlen(rdir) + strlen(base) + 2;
            out = qh_malloc(n);
            snprintf(out, n, "%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", base);
            free(rdir);
        }
    }
    free(dir);
    free(c);
    return out;
}

/* Do a and b name the same file or folder? Both existing: the same device and
 * inode (hard links, symbolic links); else the same canonical name. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ca = canonical(a), *cb = canonical(b);
    int same = ca && cb && !strcmp(ca, cb);
    free(ca);
    free(cb);
    return same;
}

/* One output: its own path and the folder it goes into. */
static int check_output_path(const char *cmd, const CliIoPath *o) {
    if (!*o->path) return qh_error("%s: %s is empty (expected a path)", cmd, o->what);
    if (o->kind == CLI_OUT_FILE && o->path[strlen(o->path) - 1] == '/')
        return qh_error("%s: %s '%s' ends with '/' (expected a file name)", cmd, o->what, o->path);
    struct stat st;
    if (o->kind == CLI_OUT_FILE && stat(o->path, &st) == 0 && S_ISDIR(st.st_mode))
        return qh_error("%s: %s '%s' is a folder (expected a file name)", cmd, o->what, o->path);
    if (o->kind == CLI_OUT_DIR && lstat(o->path, &st) == 0)
        return qh_error("%s: %s '%s' already exists: remove it or choose another output folder", cmd, o->what, o->path);
    char *dir = folder_of(o->path);
    int rc = 0;
    if (stat(dir, &st) != 0)
        rc = qh_error("%s: %s '%s': its folder '%s' %s", cmd, o->what, o->path, dir,
                      errno == ENOENT ? "does not exist" : strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = qh_error("%s: %s '%s': '%s' is not a folder", cmd, o->what, o->path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        rc = qh_error("%s: %s '%s': its folder '%s' is not writable (%s)", cmd, o->what, o->path, dir, strerror(errno));
    free(dir);
    return rc;
}

/* Is `name` one of the files a Hugging Face checkpoint folder is read from
 * (hf_model.h: config.json, the safetensors and their index, the tokenizer)? */
static int checkpoint_file_name(const char *name) {
    size_t n = strlen(name);
    return !strcmp(name, "config.json") || !strncmp(name, "tokenizer", 9) ||
           (n > 12 && !strcmp(name + n - 12, ".safetensors")) ||
           (n > 23 && !strcmp(name + n - 23, ".safetensors.index.json"));
}

/* Does output path o go into a Hugging Face checkpoint folder (one with a
 * config.json) under a checkpoint file's name? */
static int replaces_checkpoint_file(const char *o) {
    char *c = qh_strdup(o), *dir = folder_of(o);
    int hit = checkpoint_file_name(basename(c)) && hf_is_model_dir(dir);
    free(c);
    free(dir);
    return hit;
}

int cli_io_check(const char *cmd, const CliIo *io) {
    for (int i = 0; i < io->n; i++) {
        const CliIoPath *o = &io->v[i];
        if (o->kind == CLI_IN) continue;
        for (int j = 0; j < io->n; j++) {
            const CliIoPath *x = &io->v[j];
            if (j == i || (x->kind != CLI_IN && j > i) || !same_file(o->path, x->path)) continue;
            if (x->kind == CLI_IN)
                return qh_error("%s: %s '%s' is the same file as %s '%s' (an output must not replace an input)", cmd,
                                o->what, o->path, x->what, x->path);
            return qh_error("%s: %s '%s' and %s '%s' are the same file (give each output its own path)", cmd, x->what,
                            x->path, o->what, o->path);
        }
        if (o->kind == CLI_OUT_FILE && replaces_checkpoint_file(o->path))
            return qh_error("%s: %s '%s' would replace a file of a Hugging Face checkpoint folder (config.json, "
                            "*.safetensors, their index and tokenizer* are the model's; choose another name or folder)",
                            cmd, o->what, o->path);
        if (check_output_path(cmd, o) != 0) return -1;
    }
    return 0;
}

int cli_io_check_free(const char *cmd, CliIo *io) {
    int rc = cli_io_check(cmd, io);
    cli_io_free(io);
    return rc;
}

int cli_io_check_loaded(const char *cmd, CliIo *io, Model *m, Tokenizer *t, const char *tok_opt) {
    char buf[4096];
    cli_io_input(io, "the model", m->path);
    if (m->path && t && !tok_opt && tokenizer_find(m->path, m->cfg.vocab_size, buf, sizeof buf) == 0)
        cli_io_input(io, "the tokenizer found for the model", buf);
    if (cli_io_check(cmd, io) == 0) return 0;
    if (t) tokenizer_free(t);
    model_free(m);
    return -1;
}
