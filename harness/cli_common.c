/* cli_common.c: helpers shared by the subcommands (see cli.h). */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "hf_model.h"
#include "util.h"

const char *cli_data_root(const char *opt) {
    if (opt && *opt) return opt;
    const char *e = getenv("QH_DATA");
    return e && *e ? e : "data";
}

int cli_find_tokenizer(const char *model_path, int vocab_size, char *buf, size_t n) {
    struct stat st;
    int is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    char *copy = qh_strdup(model_path);
    const char *dir = is_dir ? copy : dirname(copy); /* beside a file, inside a directory */
    snprintf(buf, n, "%s/tok%d.bin", dir, vocab_size);
    if (access(buf, R_OK) != 0) snprintf(buf, n, "%s/tokenizer.bin", dir);
    if (access(buf, R_OK) != 0) snprintf(buf, n, "%s/tokenizer.model", dir); /* SentencePiece (HF directories) */
    free(copy);
    return access(buf, R_OK) == 0 ? 0 : -1;
}

int cli_open_model(const char *model_path, const char *tok_path, Model *m, Tokenizer *t) {
    return cli_open_model_for(model_path, tok_path, m, t, 0);
}

int cli_open_model_for(const char *model_path, const char *tok_path, Model *m, Tokenizer *t, int block_by_block) {
    if (!model_path) return qh_error("--model is required");
    struct stat st;
    int is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir && !hf_is_model_dir(model_path))
        return qh_error("model '%s' is a directory without a config.json (not a Hugging Face model)", model_path);
    int rc = !is_dir ? model_load_llama2c(m, model_path)
             : block_by_block ? hf_model_open_streamed(m, model_path) : hf_model_load(m, model_path);
    if (rc != 0) return -1;
    if (!t) return 0;
    char buf[4096];
    if (!tok_path) {
        if (cli_find_tokenizer(model_path, m->cfg.vocab_size, buf, sizeof buf) != 0) {
            int V = m->cfg.vocab_size;
            model_free(m);
            return qh_error("no tokenizer found %s '%s' (tried tok%d.bin, tokenizer.bin and tokenizer.model): pass --tokenizer",
                            is_dir ? "in" : "beside", model_path, V);
        }
        tok_path = buf;
    }
    if (tokenizer_load(t, tok_path, m->cfg.vocab_size) != 0) {
        model_free(m);
        return -1;
    }
    return 0;
}
