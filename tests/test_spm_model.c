/* test_spm_model.c: reading SentencePiece model files (spm_model.c).
 * tests/fixtures/tok512.model is stories260K's 512-piece vocabulary written as
 * a SentencePiece BPE ModelProto by the Python protobuf library (made once with
 * tests/fixtures/make_tok512_model.py); its conversion must equal
 * the llama2.c tok512.bin piece for piece, and encoding must give the ids
 * SentencePiece 0.2 itself printed for the same model (pasted below). Broken
 * files are refused with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"
#include "util.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

static void expect_ids(const Tokenizer *t, const char *text, const int *want, size_t nwant) {
    int *ids;
    size_t n;
    CHECK(tokenizer_encode(t, text, strlen(text), 1, 0, &ids, &n) == 0, "encode '%s'", text);
    int ok = n == nwant;
    for (size_t i = 0; ok && i < n; i++) ok = ids[i] == want[i];
    CHECK(ok, "'%s': %zu ids, SentencePiece gave %zu (or they differ)", text, n, nwant);
    free(ids);
}

int main(void) {
    const char *model = "tests/fixtures/tok512.model";
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/models/stories260K/tok512.bin", root());
    Tokenizer s, b;
    if (access(model, R_OK) != 0) {
        SKIP("tests/fixtures/tok512.model not found (run from the repository root)");
        return test_summary();
    }
    CHECK(tokenizer_load(&s, model, 512) == 0, "load %s", model);
    if (access(bin, R_OK) == 0 && tokenizer_load(&b, bin, 512) == 0) {
        int same = s.vocab_size == b.vocab_size && s.max_token_length == b.max_token_length;
        for (int i = 0; same && i < s.vocab_size; i++)
            same = !strcmp(s.vocab[i], b.vocab[i]) && s.scores[i] == b.scores[i];
        CHECK(same, "the converted .model differs from tok512.bin");
        tokenizer_free(&b);
    } else {
        SKIP("tok512.bin not found (make data)");
    }
    /* ids printed by sentencepiece 0.2 (Python) for the same model, with a BOS in front */
    static const int ids1[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    expect_ids(&s, "Once upon a time, there was a little girl named Lily.", ids1, sizeof ids1 / sizeof *ids1);
    static const int ids2[] = {1,   410, 457, 412, 431, 485, 410, 233, 154, 168, 233, 159, 175, 410,
                               243, 162, 155, 131, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419,
                               13,  13,  416, 411, 424, 278, 271, 406, 410, 475, 479, 472, 484};
    expect_ids(&s, "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80  two  spaces\n\nnew lines 1234", ids2,
               sizeof ids2 / sizeof *ids2);
    static const int ids3[] = {1};
    expect_ids(&s, "", ids3, 1);
    CHECK(!strcmp(tokenizer_decode(&s, 1, 403), "Once"), "decode after BOS strips the space");
    tokenizer_free(&s);

    /* broken files */
    char dir[] = "/tmp/qh_test_spm_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char *data;
    size_t len;
    CHECK(qh_read_file(model, &data, &len) == 0, "read model");
    char p[256];
    fprintf(stderr, "(the errors below are expected)\n");
    size_t cuts[] = {1, 100, len / 2, len - 3};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/cut%d.model", dir, i);
        CHECK(qh_write_file_atomic(p, data, cuts[i]) == 0, "write %s", p);
        CHECK(tokenizer_load(&s, p, 512) == -1, "a model cut at %zu bytes is refused", cuts[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/notspm.model", dir);
    CHECK(qh_write_file_atomic(p, "this is not a protobuf\n", 23) == 0, "write");
    CHECK(tokenizer_load(&s, p, 0) == -1, "a text file is refused");
    unlink(p);
    snprintf(p, sizeof p, "%s/missing.model", dir);
    CHECK(tokenizer_load(&s, p, 0) == -1, "a missing file is refused");
    CHECK(tokenizer_load(&s, model, 1000) == -1, "a vocabulary size that disagrees is refused");
    free(data);
    rmdir(dir);
    return test_summary();
}
