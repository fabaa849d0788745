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

/* Load the llama2.c model at model_path and its tokenizer: tok_path, or else
 * tok<V>.bin / tokenizer.bin beside the model. */
int cli_open_model(const char *model_path, const char *tok_path, Model *m, Tokenizer *t);
/* Data root: the --data option, else $QH_DATA, else "data". */
const char *cli_data_root(const char *opt);

#endif
