/* cli.h: the subcommands of build/qharness and the small helpers they share
 * (opening a model with its tokenizer, the data root). Each subcommand lives in
 * its own cmd_*.c file. */
#ifndef QH_CLI_H
#define QH_CLI_H

#include "model.h"
#include "options.h"
#include "tokenizer.h"

int cmd_eval(int argc, char **argv, int full_argc, char **full_argv);
int cmd_tokenize(int argc, char **argv, int full_argc, char **full_argv);
int cmd_generate(int argc, char **argv, int full_argc, char **full_argv);
int cmd_synth(int argc, char **argv, int full_argc, char **full_argv);
int cmd_quantize(int argc, char **argv, int full_argc, char **full_argv);
int cmd_sweep(int argc, char **argv, int full_argc, char **full_argv);
int cmd_report(int argc, char **argv, int full_argc, char **full_argv);
int cmd_plot(int argc, char **argv, int full_argc, char **full_argv);
int cmd_export(int argc, char **argv, int full_argc, char **full_argv);

/* Load the model at model_path (a llama2.c checkpoint file, or a Hugging Face
 * directory holding config.json, hf_model.h) and its tokenizer: tok_path, or
 * else tok<V>.bin / tokenizer.bin beside the file / inside the directory. t may
 * be NULL (no tokenizer wanted). */
int cli_open_model(const char *model_path, const char *tok_path, Model *m, Tokenizer *t);
/* The same; with block_by_block a Hugging Face directory is opened streamed
 * (hf_model_open_streamed: one block's linears resident at a time) for work
 * under --max-memory (a llama2.c file is mmapped either way). */
int cli_open_model_for(const char *model_path, const char *tok_path, Model *m, Tokenizer *t, int block_by_block);
/* The tokenizer cli_open_model would pick for a model of vocab_size: its path
 * in buf[0..n); -1 (no message) when there is none. */
int cli_find_tokenizer(const char *model_path, int vocab_size, char *buf, size_t n);
/* Data root: the --data option, else $QH_DATA, else "data". */
const char *cli_data_root(const char *opt);

#endif
