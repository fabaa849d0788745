/* cli_common.c: helpers shared by the subcommands (see cli.h). */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

const char *cli_data_root(const char *opt) {
    if (opt && *opt) return opt;
    const char *e = getenv("QH_DATA");
    return e && *e ? e : "data";
}

int cli_open_model(const char *model_path, const char *tok_path, Model *m, Tokenizer *t) {
    if (!model_path) return qh_error("--model is required");
    if (model_load_llama2c(m, model_path) != 0) return -1;
    if (!t) return 0;
    char buf[4096];
    if (!tok_path) {
        char *copy = qh_strdup(model_path);
        const char *dir = dirname(copy);
        snprintf(buf, sizeof buf, "%s/tok%d.bin", dir, m->cfg.vocab_size);
        if (access(buf, R_OK) != 0) snprintf(buf, sizeof buf, "%s/tokenizer.bin", dir);
        free(copy);
        if (access(buf, R_OK) != 0) {
            model_free(m);
            return qh_error("no tokenizer found beside '%s' (tried tok%d.bin and tokenizer.bin): pass --tokenizer",
                            model_path, m->cfg.vocab_size);
        }
        tok_path = buf;
    }
    if (tokenizer_load(t, tok_path, m->cfg.vocab_size) != 0) {
        model_free(m);
        return -1;
    }
    return 0;
}
