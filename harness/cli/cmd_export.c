/* cmd_export.c: `qharness export --format hf`: write any model the harness can
 * load (a llama2.c checkpoint, a Hugging Face directory, of any family), or a
 * quantized model (--quantized F.h5: its decoded weights, quant_model_load),
 * as a Hugging Face directory: config.json, model.safetensors (or shards and
 * an index) in fp32, bf16 or fp16, and the tokenizer when one is found
 * (tokenizer.bin, tokenizer.model or tokenizer.json, named by its kind), so
 * that `qharness eval --model DIR` runs as it did on the original (bit for bit
 * in fp32, for a quantized model too) and transformers loads it. Written into DIR.tmp.<pid> and renamed. The format
 * itself (tensor names, Falcon's fused query_key_value and LLaMA's rotary row
 * order as in the family's checkpoints) is hf_model.c's business. */
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "cli.h"
#include "hf_model.h"
#include "quant_io.h"
#include "util.h"

int cmd_export(int argc, char **argv, int full_argc, char **full_argv) {
    char *model = NULL, *tok = NULL, *format = NULL, *out = NULL, *dtype = "fp32", *quantized = NULL;
    long shard_bytes = 0;
    int no_tok = 0, force = 0;
    const OptSpec specs[] = {
        {"model", OPT_STR, &model, "M",
         "model to export: llama2.c checkpoint or Hugging Face directory (with --quantized: the base model, "
         "default the one the file names)"},
        {"quantized", OPT_STR, &quantized, "F.h5",
         "export this quantized model (`qharness quantize --save`): its decoded (dequantized) weights"},
        {"force", OPT_FLAG, &force, NULL, "--quantized: accept a --model other than the one the file was made from"},
        {"format", OPT_STR, &format, "hf", "output format (only hf: a Hugging Face directory)"},
        {"out", OPT_STR, &out, "DIR", "output directory (must not exist)"},
        {"dtype", OPT_STR, &dtype, "fp32|bf16|fp16", "tensor type in model.safetensors (fp32 is exact)"},
        {"max-shard-bytes", OPT_INT, &shard_bytes, "N",
         "split into shards of at most N data bytes plus model.safetensors.index.json (0: one file)"},
        {"tokenizer", OPT_STR, &tok, "T", "tokenizer to copy as DIR/tokenizer.bin, .model or .json by its kind (default: beside the model)"},
        {"no-tokenizer", OPT_FLAG, &no_tok, NULL, "copy no tokenizer"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("export", "Write a model as a Hugging Face directory (config.json + safetensors).", specs,
                        argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!model && !quantized) return qh_error("export: --model (or --quantized) is required");
    if (force && !quantized) return qh_error("export: --force applies to --quantized only");
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
    cli_io_input(&io, "--quantized", quantized);
    cli_io_output_dir(&io, "--out", out);
    if (cli_io_check("export", &io) != 0) {
        cli_io_free(&io);
        return -1;
    }

    Model m;
    QuantModelInfo qinfo = {0};
    rc = quantized ? quant_model_load(quantized, model, NULL, -1, force, &m, NULL, &qinfo) : model_open(model, NULL, &m, NULL);
    /* again with what was opened: the base model a --quantized file names, the tokenizer found */
    if (rc == 0) rc = cli_io_check_loaded("export", &io, &m, NULL, tok);
    cli_io_free(&io);
    if (rc != 0) return -1;
    char buf[4096];
    if (!no_tok && !tok) {
        if (tokenizer_find(m.path, m.cfg.vocab_size, buf, sizeof buf) == 0) tok = buf;
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
    if (rc == 0 && quantized)
        fprintf(stderr, "wrote %s: the decoded weights of %s (%s, %.4g bits per parameter) on %s\n", out, quantized,
                qinfo.method, qinfo.avg_bits, m.path);
    if (rc == 0)
        fprintf(stderr, "wrote %s: %s, %s, %d layers, dim %d, vocab %d, %s classifier%s%s\n", out,
                arch_of(&m.cfg)->name, dtype, m.cfg.n_layers, m.cfg.dim, m.cfg.vocab_size,
                m.cfg.shared_classifier ? "tied" : "untied", o.tokenizer ? ", tokenizer from " : "",
                o.tokenizer ? o.tokenizer : "");
    model_free(&m);
    (void)full_argc;
    (void)full_argv;
    return rc;
}
