/* cmd_quantize.c: `qharness quantize` (in progress). */
#include "cli.h"
#include "util.h"

int cmd_quantize(int argc, char **argv, int full_argc, char **full_argv) { return qh_error("quantize: not implemented yet"); }
