/* main.c: the qharness command-line entry point: dispatches to the
 * subcommands of cli.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **, int, char **);
    const char *help;
} Command;

static const Command commands[] = {
    {"eval", cmd_eval, "perplexity of a model on datasets (SPEC 7 protocol), results to HDF5"},
    {"quantize", cmd_quantize, "quantize a model with rtn, gptq or spqr, layer by layer"},
    {"generate", cmd_generate, "greedy decoding from BOS"},
    {"speed", cmd_speed, "tokens per second, full precision and quantized (the paper's speed table)"},
    {"tokenize", cmd_tokenize, "encode a text file into token ids"},
    {"synth", cmd_synth, "write a random-weight model of any LLaMA shape"},
    {"sweep", cmd_sweep, "run the points of an experiment file (experiments/NAME.ini), resumable"},
    {"report", cmd_report, "the table of an experiment's results (table.md, table.csv)"},
    {"plot", cmd_plot, "gnuplot images of an experiment's results (bits vs perplexity, outliers)"},
    {"export", cmd_export, "write a loaded model as a Hugging Face directory (safetensors)"},
    {"check-jsonl", cmd_check_jsonl, "check a C4 JSON Lines file (plain or gzip), line by line"},
    {NULL, NULL, NULL},
};

static void usage(void) {
    printf("usage: qharness <command> [options]   (qharness <command> --help)\n\ncommands:\n");
    for (const Command *c = commands; c->name; c++) printf("  %-11s %s\n", c->name, c->help);
}

/* OpenMP threads that wait at a barrier sleep instead of spinning (passive),
 * so that a waiting thread leaves its core to whoever needs it: the team's
 * straggler, or other processes of a shared machine (spinning made a loaded
 * stories260K quantization several times slower, bench/loaded_quant.sh;
 * alone it is as fast). libgomp reads OMP_WAIT_POLICY once, when it is loaded
 * (before main), so when the variable is unset qharness sets it and executes
 * itself again, once: the variable then set stops a second time. A value set
 * by the user (active, passive) is kept. Only the commands that compute
 * (eval, quantize, sweep, generate) pay for the second start (~0.1 s: the
 * CUDA libraries are loaded again). */
static void passive_wait_policy(int argc, char **argv) {
    static const char *const compute[] = {"eval", "quantize", "sweep", "generate", NULL};
    int computes = 0; /* the other commands start no parallel work: not worth a second start */
    for (int i = 0; argc > 1 && compute[i]; i++) computes |= !strcmp(argv[1], compute[i]);
    if (!computes || getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure: run on, as before */
}

int main(int argc, char **argv) {
    passive_wait_policy(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (const Command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->fn(argc - 2, argv + 2, argc, argv) == 0 ? 0 : 1;
    fprintf(stderr, "qharness: error: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
}
