/* cmd_generate.c: `qharness generate`: greedy (temperature 0) decoding from BOS,
 * as llama2.c's run.c does it: `steps` positions, each printing the decoded
 * next token, stopping early at BOS; non-printable single bytes are skipped.
 * With a tokenizer.json: from the token its post-processor puts first (or its
 * first special token), stopping at any special token, each token printed as
 * its bytes (tokenizer_start_token, tokenizer_is_stop). */
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
        {"model", OPT_STR, &model, "M", "llama2.c checkpoint or Hugging Face directory"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin, .model or tokenizer.json (default: found beside / in the model)"},
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
    int start = tokenizer_start_token(&t);
    if (start < 0 || start >= m.cfg.vocab_size) {
        qh_error("generate: the tokenizer '%s' has no token to start from (no BOS, no special token)", t.path ? t.path : "");
        forward_destroy(&f);
        tokenizer_free(&t);
        model_free(&m);
        return -1;
    }
    int *tokens = qh_malloc(sizeof(int) * (size_t)steps);
    float *logits = qh_malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    tokens[0] = start; /* BOS */
    for (int pos = 0; pos < steps; pos++) {
        if (f->ops->last_logits(f, tokens, pos + 1, logits) != 0) {
            rc = -1;
            break;
        }
        int next = 0;
        for (int i = 1; i < m.cfg.vocab_size; i++)
            if (logits[i] > logits[next]) next = i;
        if (tokenizer_is_stop(&t, next)) break;
        if (next >= t.vocab_size) { /* an embedding row beyond the tokenizer's ids: nothing to print */
            qh_warn("generate: token %d has no text (the tokenizer has %d ids)", next, t.vocab_size);
            break;
        }
        const char *piece = tokenizer_decode(&t, tokens[pos], next);
        if (t.hf) fputs(piece, stdout); /* bytes of the text, maybe part of a character: all printed */
        else safe_print(piece);
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
