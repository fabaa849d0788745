/* cli.h: the subcommands of build/qharness and the small helpers they share
 * (the data root, checking a command's output paths against its inputs before
 * any work). Each subcommand lives in its own cmd_*.c file. Opening a model
 * with its tokenizer is model_open.h's, below the command line. */
#ifndef QH_CLI_H
#define QH_CLI_H

#include "model.h"
#include "model_open.h"
#include "options.h"
#include "tokenizer.h"

int cmd_eval(int argc, char **argv, int full_argc, char **full_argv);
int cmd_tokenize(int argc, char **argv, int full_argc, char **full_argv);
int cmd_generate(int argc, char **argv, int full_argc, char **full_argv);
int cmd_speed(int argc, char **argv, int full_argc, char **full_argv);
int cmd_synth(int argc, char **argv, int full_argc, char **full_argv);
int cmd_quantize(int argc, char **argv, int full_argc, char **full_argv);
int cmd_sweep(int argc, char **argv, int full_argc, char **full_argv);
int cmd_report(int argc, char **argv, int full_argc, char **full_argv);
int cmd_plot(int argc, char **argv, int full_argc, char **full_argv);
int cmd_export(int argc, char **argv, int full_argc, char **full_argv);
int cmd_check_jsonl(int argc, char **argv, int full_argc, char **full_argv);

/* Data root: the --data option, else $QH_DATA, else "data". */
const char *cli_data_root(const char *opt);

/* The files a command reads and writes, checked by cli_io_check before any
 * work so that no output replaces an input or another output, and no output
 * fails only at the end (missing or read-only folder). */
typedef enum { CLI_IN, CLI_OUT_FILE, CLI_OUT_DIR } CliIoKind;
typedef struct CliIoPath {
    char *what;     /* how messages name it: "--out", "the tokenizer found for the model" (owned) */
    char *path;     /* as given (owned) */
    CliIoKind kind;
} CliIoPath;
typedef struct CliIo {
    CliIoPath *v;   /* (n) owned */
    int n;
} CliIo;

/* Add an input file or folder; a NULL path is ignored (option not given). */
void cli_io_input(CliIo *io, const char *what, const char *path);
/* Add the files of a comma-separated dataset list as inputs: file:PATH, and
 * the named datasets' files under data_root (dataset_file; calib 1 for a
 * calibration list, where "none" names no file). -1 after a message for an
 * unknown name. */
int cli_io_datasets(CliIo *io, const char *what, const char *list, const char *data_root, int calib);
/* Add an output file (written whole, replacing what is there); NULL ignored. */
void cli_io_output(CliIo *io, const char *what, const char *path);
/* Add an output folder, created by the command (it must not exist yet). */
void cli_io_output_dir(CliIo *io, const char *what, const char *path);
/* Check every output, in this order: not the same file as any input or any
 * other output (canonical names: realpath of the folder + the last component,
 * and device/inode when both exist, so hard and symbolic links count), not a
 * checkpoint file's name (config.json, *.safetensors, their index, tokenizer*)
 * inside a Hugging Face checkpoint folder (one with a config.json), an
 * output file not an existing folder, an output folder not existing yet, and
 * the folder it goes into existing and writable. 0, or -1 with a message that
 * starts with cmd and names the option and the path. */
int cli_io_check(const char *cmd, const CliIo *io);
/* Once the model is open (model_open*, quant_model_load): add what was
 * actually opened, the model (m->path, e.g. the one a quantized-model file
 * names) and, when tok_opt is NULL (no --tokenizer), the tokenizer found for
 * it, and check again. On failure the model and the tokenizer (t, may be
 * NULL) are freed. */
int cli_io_check_loaded(const char *cmd, CliIo *io, Model *m, Tokenizer *t, const char *tok_opt);
void cli_io_free(CliIo *io);
/* cli_io_check, then cli_io_free: for commands that check before loading anything. */
int cli_io_check_free(const char *cmd, CliIo *io);

#endif
