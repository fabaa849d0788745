/* cmd_export.c: `qharness export --format hf`: write any model the harness can
 * load (a llama2.c checkpoint, a Hugging Face directory) as a Hugging Face
 * directory: config.json, model.safetensors (or shards and an index) in fp32,
 * bf16 or fp16, and the llama2.c tokenizer as tokenizer.bin when one is found,
 * so that `qharness eval --model DIR` runs as it did on the original. Written
 * into DIR.tmp.<pid> and renamed. The format itself is hf_model.c's business. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hf_model.h"
#include "util.h"

int cmd_export(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *format = NULL, *out = NULL, *dtype = "fp32";
    long shard_bytes = 0;
    int no_tok = 0;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M", "model to export: llama2.c checkpoint or Hugging Face directory"},
        {"format", OPT_STR, &format, "hf", "output format (only hf: a Hugging Face directory)"},
        {"out", OPT_STR, &out, "DIR", "output directory (must not exist)"},
        {"dtype", OPT_STR, &dtype, "fp32|bf16|fp16", "tensor type in model.safetensors (fp32 is exact)"},
        {"max-shard-bytes", OPT_INT, &shard_bytes, "N",
         "split into shards of at most N data bytes plus model.safetensors.index.json (0: one file)"},
        {"tokenizer", OPT_STR, &tok, "T", "llama2.c tokenizer to copy as DIR/tokenizer.bin (default: beside the model)"},
        {"no-tokenizer", OPT_FLAG, &no_tok, NULL, "copy no tokenizer"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("export", "Write a model as a Hugging Face directory (config.json + safetensors).", specs,
                        argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!format) return qh_error("export: --format is required (hf)");
    if (strcmp(format, "hf")) return qh_error("export: --format '%s' is not supported (expected hf)", format);
    if (!out) return qh_error("export: --out is required");
    if (shard_bytes < 0) return qh_error("export: --max-shard-bytes must be >= 0, got %ld", shard_bytes);
    HfSaveOptions o = {.max_shard_bytes = (uint64_t)shard_bytes};
    if (!strcmp(dtype, "fp32")) o.dtype = ST_F32;
    else if (!strcmp(dtype, "bf16")) o.dtype = ST_BF16;
    else if (!strcmp(dtype, "fp16")) o.dtype = ST_F16;
    else return qh_error("export: --dtype '%s' is not supported (expected fp32, bf16 or fp16)", dtype);
    if (no_tok && tok) return qh_error("export: --tokenizer and --no-tokenizer exclude each other");
    CliIo io = {0}; /* a new folder, in a writable one, before anything is loaded */
    cli_io_input(&io, "--model", model);
    cli_io_input(&io, "--tokenizer", tok);
    cli_io_output_dir(&io, "--out", out);
    if (cli_io_check_free("export", &io) != 0) return -1;

    Model m;
    if (model_open(model, NULL, &m, NULL) != 0) return -1;
    char buf[4096];
    if (!no_tok && !tok) {
        if (tokenizer_find(model, m.cfg.vocab_size, buf, sizeof buf) == 0) tok = buf;
        else qh_warn("export: no tokenizer copied (eval of '%s' will need --tokenizer)", out);
    }
    if (tok) { /* check that it belongs to this model before copying it */
        Tokenizer t;
        if (tokenizer_load(&t, tok, m.cfg.vocab_size) != 0) {
            model_free(&m);
            return -1;
        }
        tokenizer_free(&t);
        o.tokenizer = tok;
    }
    rc = hf_model_save(&m, out, &o);
    if (rc == 0)
        fprintf(stderr, "wrote %s: %s, %d layers, dim %d, vocab %d, %s classifier%s%s\n", out, dtype, m.cfg.n_layers,
                m.cfg.dim, m.cfg.vocab_size, m.cfg.shared_classifier ? "tied" : "untied",
                o.tokenizer ? ", tokenizer from " : "", o.tokenizer ? o.tokenizer : "");
    model_free(&m);
    (void)full_argc;
    (void)full_argv;
    return rc;
}
