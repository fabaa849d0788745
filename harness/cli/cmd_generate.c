/* cmd_generate.c: `qharness generate`: greedy (temperature 0) decoding from BOS,
 * as llama2.c's run.c does it: `steps` positions, each printing the decoded
 * next token, stopping early at BOS; non-printable single bytes are skipped.
 * With a tokenizer.json: from the token its post-processor puts first (or its
 * first special token), stopping at any special token, each token printed as
 * its bytes (tokenizer_start_token, tokenizer_is_stop). Incremental decode
 * with the KV cache (forward_greedy); --no-kv-cache runs the whole sequence
 * again at every step (the same tokens, test_decode). --quantized F.h5: the
 * file's model, its linears through the packed kernels (--kernels, the
 * linears of every block; quant_packed.h) or decoded to fp32 (decoded). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "quant_io.h"
#include "quant_packed.h"
#include "util.h"

static void safe_print(const char *piece) {
    if (!piece || !piece[0]) return;
    if (piece[1] == '\0') {
        unsigned char b = (unsigned char)piece[0];
        if (!(isprint(b) || isspace(b))) return;
    }
    fputs(piece, stdout);
}

typedef struct GenPrint {
    Tokenizer *t;
    int prev; /* the token before the one printed next */
} GenPrint;

/* forward_greedy's callback: stop at a stop token or one without text, else print it. */
static int print_token(void *user, int step, int next, const float *logits) {
    GenPrint *g = user;
    if (tokenizer_is_stop(g->t, next)) return 1;
    if (next >= g->t->vocab_size) { /* an embedding row beyond the tokenizer's ids: nothing to print */
        qh_warn("generate: token %d has no text (the tokenizer has %d ids)", next, g->t->vocab_size);
        return 1;
    }
    const char *piece = tokenizer_decode(g->t, g->prev, next);
    if (g->t->hf) fputs(piece, stdout); /* bytes of the text, maybe part of a character: all printed */
    else safe_print(piece);
    fflush(stdout);
    g->prev = next;
    return 0;
}

int cmd_generate(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *device = "cpu", *quantized = NULL, *kernels = NULL;
    long steps = 256;
    int no_cache = 0, force = 0;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M", "llama2.c checkpoint or Hugging Face directory (with --quantized: default the file's)"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer.bin, .model or tokenizer.json (default: found beside / in the model)"},
        {"steps", OPT_INT, &steps, "N", "positions to run (llama2.c -n)"},
        {"device", OPT_STR, &device, "cpu|cuda|auto", "where to run the forward pass"},
        {"quantized", OPT_STR, &quantized, "F.h5", "a quantized model saved by `qharness quantize --save`"},
        {"kernels", OPT_STR, &kernels, QUANT_KERNELS_CHOICES,
         "--quantized: the matrix-vector kernel of every linear, or decoded (fp32 weights); auto (the default) "
         "falls back to decoded, with a message, when the kernels cannot take the file"},
        {"force", OPT_FLAG, &force, NULL, "--quantized: accept a --model other than the one the file was made from"},
        {"no-kv-cache", OPT_FLAG, &no_cache, NULL, "run the whole sequence at every step (no KV cache)"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("generate", "Greedy decoding from BOS, printed as text.", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    QhDevice dev;
    if (qh_device_parse(device, &dev) != 0) return -1;
    if (!quantized && (kernels || force)) return qh_error("generate: --%s applies to --quantized only", kernels ? "kernels" : "force");
    if (!kernels) kernels = "auto";
    if (quant_kernels_check(kernels, "generate: --kernels") != 0) return -1;
    if (!quantized && !model) return qh_error("generate: --model (or --quantized) is required");
    Model m;
    Tokenizer t;
    QuantModelInfo qinfo;
    if (quantized ? quant_model_load(quantized, model, tok, -1, force, &m, &t, &qinfo) : model_open(model, tok, &m, &t))
        return -1;
    Forward *f = NULL;
    PackedModel pm = {0};
    int start = tokenizer_start_token(&t);
    if (steps < 1 || steps > m.cfg.seq_len)
        rc = qh_error("generate: --steps must be in 1..%d (the model's seq_len), got %ld", m.cfg.seq_len, steps);
    else if (start < 0 || start >= m.cfg.vocab_size)
        rc = qh_error("generate: the tokenizer '%s' has no token to start from (no BOS, no special token)",
                      t.path ? t.path : "");
    else /* the no-cache path runs windows of up to `steps` tokens; decode needs no more than a chunk */
        rc = forward_create(dev, &m, no_cache ? (int)steps : ((int)steps < 256 ? (int)steps : 256), &f);
    if (rc == 0 && quantized) {
        rc = quant_packed_build(quantized, &m, NULL, kernels, f->ops->packed_where, &pm);
        if (rc == 0) rc = quant_packed_apply(&pm, f);
        if (rc == 0) qh_progress("generate: '%s' through %s", quantized, pm.kernel);
    }
    if (rc == 0) {
        int *tokens = qh_malloc(sizeof(int) * ((size_t)steps + 1));
        GenPrint g = {&t, start};
        rc = forward_greedy(f, &start, 1, (int)steps, !no_cache, tokens, print_token, &g) < 0 ? -1 : 0;
        printf("\n");
        free(tokens);
    }
    forward_destroy(&f);
    quant_packed_free(&pm);
    tokenizer_free(&t);
    model_free(&m);
    return rc;
}
