/* cmd_tokenize.c: `qharness tokenize`: encode a text file with a llama2.c
 * tokenizer; ids written as little-endian uint16 (vocab <= 65536) or int32. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

int cmd_tokenize(int argc, char **argv, int full_argc, char **full_argv) {
    char *tok = NULL, *text = NULL, *out = NULL, *dtype = "auto";
    long vocab = 0;
    int bos = 0;
    const OptSpec specs[] = {
        {"tokenizer", OPT_STR, &tok, "T", "llama2.c tokenizer.bin"},
        {"vocab-size", OPT_INT, &vocab, "V", "tokens in the file (0: read to the end)"},
        {"text", OPT_STR, &text, "FILE", "text to encode"},
        {"bos", OPT_FLAG, &bos, NULL, "prepend BOS (id 1)"},
        {"out", OPT_STR, &out, "F", "write the ids here (else print them)"},
        {"dtype", OPT_STR, &dtype, "auto|uint16|int32", "id type in --out"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("tokenize", "Encode a text file into token ids.", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!tok) return qh_error("tokenize: --tokenizer is required");
    if (!text) return qh_error("tokenize: --text is required");
    if (strcmp(dtype, "auto") && strcmp(dtype, "uint16") && strcmp(dtype, "int32"))
        return qh_error("tokenize: --dtype expects auto, uint16 or int32, got '%s'", dtype);
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
    int *ids;
    size_t n;
    rc = tokenizer_encode(&t, buf, len, bos, 0, &ids, &n);
    free(buf);
    if (rc == 0) {
        int u16 = !strcmp(dtype, "uint16") || (!strcmp(dtype, "auto") && t.vocab_size <= 65536);
        if (u16 && t.vocab_size > 65536) {
            rc = qh_error("tokenize: vocabulary of %d does not fit uint16", t.vocab_size);
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
            for (size_t i = 0; i < n; i++) printf("%d%c", ids[i], i + 1 == n ? '\n' : ' ');
        }
        free(ids);
    }
    tokenizer_free(&t);
    return rc;
}
