/* tokenizer_find.c: which tokenizer file goes with a model (tokenizer.h):
 * tok<V>.bin, tokenizer.bin or tokenizer.model beside a checkpoint file or
 * inside a model directory. Not here: reading it (tokenizer.c, spm_model.c). */
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
    snprintf(buf, n, "%s/tok%d.bin", dir, vocab_size);
    if (access(buf, R_OK) != 0) snprintf(buf, n, "%s/tokenizer.bin", dir);
    if (access(buf, R_OK) != 0) snprintf(buf, n, "%s/tokenizer.model", dir); /* SentencePiece (HF directories) */
    free(copy);
    return access(buf, R_OK) == 0 ? 0 : -1;
}
