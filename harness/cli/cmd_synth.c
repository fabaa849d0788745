/* cmd_synth.c: `qharness synth`: write a random-weight LLaMA-shaped model in
 * the llama2.c format, for tests and benchmarks. */
#include <stdio.h>

#include "cli.h"
#include "util.h"

int cmd_synth(int argc, char **argv, int full_argc, char **full_argv) {
    long dim = 64, hidden = 172, layers = 2, heads = 8, kv_heads = 4, vocab = 512, seq_len = 256, seed = 0;
    int unshared = 0;
    char *out = NULL;
    const OptSpec specs[] = {
        {"dim", OPT_INT, &dim, "D", "model width"},
        {"hidden", OPT_INT, &hidden, "F", "SwiGLU hidden width"},
        {"layers", OPT_INT, &layers, "L", "transformer blocks"},
        {"heads", OPT_INT, &heads, "H", "attention heads"},
        {"kv-heads", OPT_INT, &kv_heads, "K", "key/value heads"},
        {"vocab", OPT_INT, &vocab, "V", "vocabulary size"},
        {"seq-len", OPT_INT, &seq_len, "S", "maximum sequence length"},
        {"seed", OPT_INT, &seed, "N", "random seed"},
        {"unshared", OPT_FLAG, &unshared, NULL, "separate output head (default: shared with the embedding)"},
        {"out", OPT_STR, &out, "F", "output checkpoint path"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("synth", "Write a random-weight model of any LLaMA shape (llama2.c format).", specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!out) return qh_error("synth: --out is required");
    if (seed < 0) return qh_error("synth: --seed must be >= 0");
    CliIo io = {0}; /* a writable folder before the weights are drawn */
    cli_io_output(&io, "--out", out);
    if (cli_io_check_free("synth", &io) != 0) return -1;
    ModelConfig c = {.dim = (int)dim, .hidden_dim = (int)hidden, .n_layers = (int)layers, .n_heads = (int)heads,
                     .n_kv_heads = (int)kv_heads, .vocab_size = (int)vocab, .seq_len = (int)seq_len,
                     .shared_classifier = !unshared};
    Model m;
    if (model_synth(&m, &c, (uint64_t)seed) != 0) return -1;
    rc = model_save_llama2c(&m, out);
    if (rc == 0)
        fprintf(stderr, "wrote %s: dim %ld hidden %ld layers %ld heads %ld/%ld vocab %ld seq_len %ld (%.1f M linear params)\n",
                out, dim, hidden, layers, heads, kv_heads, vocab, seq_len, model_linear_params(&c) / 1e6);
    model_free(&m);
    return rc;
}
