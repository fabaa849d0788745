/* cmd_tokenize.c: `qharness tokenize`: encode a text file with any tokenizer
 * (llama2.c tokenizer.bin, SentencePiece tokenizer.model, Hugging Face
 * tokenizer.json); ids written as little-endian uint16 (vocab <= 65536) or
 * int32, or printed. With --jsonl each line of the file is a JSON object
 * whose "text" is encoded on its own, one line of ids per object. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void print_ids(const int *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%d%s", ids[i], i + 1 == n ? "" : " ");
    printf("\n");
}

/* --jsonl: each line's "text", encoded and printed on a line of its own. */
static int tokenize_jsonl(const Tokenizer *t, const char *path, const char *buf, size_t len, int bos) {
    size_t i = 0;
    int line = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        line++;
        if (j > i) {
            json_error_t err;
            json_t *o = json_loadb(buf + i, j - i, 0, &err);
            json_t *text = json_object_get(o, "text");
            if (!json_is_string(text)) {
                json_decref(o);
                return qh_error("%s:%d: expected a JSON object with a string \"text\"%s%s", path, line, o ? "" : ": ",
                                o ? "" : err.text);
            }
            int *ids;
            size_t n;
            int rc = tokenizer_encode(t, json_string_value(text), json_string_length(text), bos, 0, &ids, &n);
            json_decref(o);
            if (rc != 0) return -1;
            print_ids(ids, n);
            free(ids);
        }
        i = j + 1;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv, int full_argc, char **full_argv) {
    char *tok = NULL, *text = NULL, *out = NULL, *dtype = "auto";
    long vocab = 0;
    int bos = 0, jsonl = 0;
    const OptSpec specs[] = {
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin (llama2.c), tokenizer.model (SentencePiece) or tokenizer.json"},
        {"vocab-size", OPT_INT, &vocab, "V",
         "the model's vocabulary: tokens in a .bin/.model (0: all), ids below V for a .json (0: no limit)"},
        {"text", OPT_STR, &text, "FILE", "text to encode"},
        {"jsonl", OPT_FLAG, &jsonl, NULL, "FILE holds JSON lines: encode each \"text\" alone, print one line of ids each"},
        {"bos", OPT_FLAG, &bos, NULL,
         "add what the tokenizer adds to a text: BOS (id 1) for .bin/.model, the post-processor's tokens for a .json"},
        {"out", OPT_STR, &out, "F", "write the ids here (else print them)"},
        {"dtype", OPT_STR, &dtype, "auto|uint16|int32", "id type in --out (auto: int32 when an id can exceed 65535)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("tokenize", "Encode a text file into token ids.", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!tok) return qh_error("tokenize: --tokenizer is required");
    if (!text) return qh_error("tokenize: --text is required");
    if (strcmp(dtype, "auto") && strcmp(dtype, "uint16") && strcmp(dtype, "int32"))
        return qh_error("tokenize: --dtype expects auto, uint16 or int32, got '%s'", dtype);
    if (jsonl && out) return qh_error("tokenize: --jsonl prints one line of ids per text; it does not take --out");
    if (vocab < 0 || vocab > INT32_MAX) return qh_error("tokenize: --vocab-size must be in 0..%d, got %ld", INT32_MAX, vocab);
    CliIo io = {0}; /* --out must not replace what is read, and must be writable */
    cli_io_input(&io, "--tokenizer", tok);
    cli_io_input(&io, "--text", text);
    cli_io_output(&io, "--out", out);
    if (cli_io_check_free("tokenize", &io) != 0) return -1;
    Tokenizer t;
    if (tokenizer_load(&t, tok, (int)vocab) != 0) return -1;
    char *buf;
    size_t len;
    if (qh_read_file(text, &buf, &len) != 0) {
        tokenizer_free(&t);
        return -1;
    }
    if (jsonl) {
        rc = tokenize_jsonl(&t, text, buf, len, bos);
        free(buf);
        tokenizer_free(&t);
        return rc;
    }
    int *ids;
    size_t n;
    rc = tokenizer_encode(&t, buf, len, bos, 0, &ids, &n);
    free(buf);
    if (rc == 0) {
        int u16 = !strcmp(dtype, "uint16") || (!strcmp(dtype, "auto") && t.vocab_size <= 65536);
        if (u16 && t.vocab_size > 65536) {
            rc = qh_error("tokenize: vocabulary of %d does not fit uint16 (use --dtype int32 or auto)", t.vocab_size);
        } else if (out) {
            size_t esz = u16 ? 2 : 4;
            unsigned char *bytes = qh_malloc(n * esz);
            for (size_t i = 0; i < n; i++) {
                uint32_t v = (uint32_t)ids[i];
                for (size_t b = 0; b < esz; b++) bytes[i * esz + b] = (unsigned char)(v >> (8 * b));
            }
            rc = qh_write_file_atomic(out, bytes, n * esz);
            free(bytes);
            if (rc == 0) fprintf(stderr, "%zu ids (%s) written to %s\n", n, u16 ? "uint16" : "int32", out);
        } else {
            print_ids(ids, n);
        }
        free(ids);
    }
    tokenizer_free(&t);
    return rc;
}
