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

/* The candidate names, in the order they are tried (bin: "tok<V>.bin"). */
static const char **find_order(const char *model_path, const char *bin, const char *order[4], int *is_dir) {
    struct stat st;
    *is_dir = stat(model_path, &st) == 0 && S_ISDIR(st.st_mode);
    /* a Hugging Face folder: tokenizer.json first, as AutoTokenizer picks it */
    const char *dir_order[] = {"tokenizer.json", bin, "tokenizer.bin", "tokenizer.model"};
    const char *file_order[] = {bin, "tokenizer.bin", "tokenizer.model", "tokenizer.json"};
    for (int i = 0; i < 4; i++) order[i] = *is_dir ? dir_order[i] : file_order[i];
    return order;
}

int tokenizer_find(const char *model_path, int vocab_size, char *buf, size_t n) {
    char bin[64];
    snprintf(bin, sizeof bin, "tok%d.bin", vocab_size);
    const char *order[4];
    int is_dir;
    find_order(model_path, bin, order, &is_dir);
    char *copy = qh_strdup(model_path);
    const char *dir = is_dir ? copy : dirname(copy); /* beside a file, inside a directory */
    int found = -1;
    for (int i = 0; i < 4 && found < 0; i++) {
        snprintf(buf, n, "%s/%s", dir, order[i]);
        if (access(buf, R_OK) == 0) found = 0;
    }
    free(copy);
    return found;
}

void tokenizer_find_tried(const char *model_path, int vocab_size, char *buf, size_t n) {
    char bin[64];
    snprintf(bin, sizeof bin, "tok%d.bin", vocab_size);
    const char *order[4];
    int is_dir;
    find_order(model_path, bin, order, &is_dir);
    snprintf(buf, n, "%s, %s, %s and %s", order[0], order[1], order[2], order[3]);
}
