/* cmd_generate.c: `qharness generate`: greedy (temperature 0) decoding from BOS,
 * as llama2.c's run.c does it: `steps` positions, each printing the decoded
 * next token, stopping early at BOS; non-printable single bytes are skipped. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "util.h"

static void safe_print(const char *piece) {
    if (!piece || !piece[0]) return;
    if (piece[1] == '\0') {
        unsigned char b = (unsigned char)piece[0];
        if (!(isprint(b) || isspace(b))) return;
    }
    fputs(piece, stdout);
}

int cmd_generate(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *device = "cpu";
    long steps = 256;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M", "llama2.c checkpoint"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin (default: beside the model)"},
        {"steps", OPT_INT, &steps, "N", "positions to run (llama2.c -n)"},
        {"device", OPT_STR, &device, "cpu|cuda|auto", "where to run the forward pass"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("generate", "Greedy decoding from BOS, printed as text.", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    QhDevice dev;
    if (qh_device_parse(device, &dev) != 0) return -1;
    Model m;
    Tokenizer t;
    if (model_open(model, tok, &m, &t) != 0) return -1;
    if (steps < 1 || steps > m.cfg.seq_len) {
        qh_error("generate: --steps must be in 1..%d (the model's seq_len), got %ld", m.cfg.seq_len, steps);
        tokenizer_free(&t);
        model_free(&m);
        return -1;
    }
    Forward *f;
    if (forward_create(dev, &m, (int)steps, &f) != 0) {
        tokenizer_free(&t);
        model_free(&m);
        return -1;
    }
    int *tokens = qh_malloc(sizeof(int) * (size_t)steps);
    float *logits = qh_malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    tokens[0] = 1; /* BOS */
    for (int pos = 0; pos < steps; pos++) {
        if (f->ops->last_logits(f, tokens, pos + 1, logits) != 0) {
            rc = -1;
            break;
        }
        int next = 0;
        for (int i = 1; i < m.cfg.vocab_size; i++)
            if (logits[i] > logits[next]) next = i;
        if (next == 1) break;
        safe_print(tokenizer_decode(&t, tokens[pos], next));
        fflush(stdout);
        if (pos + 1 < steps) tokens[pos + 1] = next;
    }
    printf("\n");
    free(tokens);
    free(logits);
    forward_destroy(&f);
    tokenizer_free(&t);
    model_free(&m);
    return rc;
}
