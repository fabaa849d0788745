/* tokenizer_find.c: which tokenizer file goes with a model (tokenizer.h):
 * inside a model directory tokenizer.json first (as AutoTokenizer picks it),
 * then tok<V>.bin, tokenizer.bin, tokenizer.model; beside a checkpoint file
 * tok<V>.bin, tokenizer.bin, tokenizer.model, tokenizer.json. Not here:
 * reading it (tokenizer.c, spm_model.c, hf_tok_load.c). */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer.h"
#include "util.h"

int tokenizer_find(const char *model_path, int vocab_size, char *buf, size_t n) {
    struct stat st;
    int is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    char *copy = qh_strdup(model_path);
    const char *dir = is_dir ? copy : dirname(copy); /* beside a file, inside a directory */
    char bin[64];
    snprintf(bin, sizeof bin, "tok%d.bin", vocab_size);
    /* a Hugging Face folder: tokenizer.json first, as AutoTokenizer picks it */
    const char *order_dir[] = {"tokenizer.json", bin, "tokenizer.bin", "tokenizer.model"};
    const char *order_file[] = {bin, "tokenizer.bin", "tokenizer.model", "tokenizer.json"};
    const char **order = is_dir ? order_dir : order_file;
    int found = -1;
    for (int i = 0; i < 4 && found < 0; i++) {
        snprintf(buf, n, "%s/%s", dir, order[i]);
        if (access(buf, R_OK) == 0) found = 0;
    }
    free(copy);
    return found;
}
