/* options.h: one table per subcommand drives command-line parsing, validation
 * of numbers, defaults and the generated --help text (ggml/Redis style). */
#ifndef QH_OPTIONS_H
#define QH_OPTIONS_H

#include <limits.h>

/* "No default": a destination holding one of these before parsing prints no
 * default in --help, and still holds it afterwards when the option was not
 * given (the command then applies its own default, e.g. a per-method one):
 *   OPT_INT     OPT_UNSET_INT (LONG_MIN; refused as a value on the command line)
 *   OPT_DOUBLE  NaN (test with isnan; NaN is refused as a value)
 *   OPT_STR     NULL
 * Flags print no default either way (off unless given). */
#define OPT_UNSET_INT LONG_MIN

typedef enum { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_FLAG } OptType;

typedef struct OptSpec {
    const char *name;  /* without the leading "--" */
    OptType type;
    void *dst;         /* char **, long *, double * or int * (flag) */
    const char *meta;  /* value placeholder in help, e.g. "N" */
    const char *help;
} OptSpec;

/* Parse argv[0..argc) (argv[0] is the first option). Returns 0, 1 when --help
 * was asked (help already printed), -1 on error (message printed: unknown
 * option, missing value, non-numeric value). Defaults are whatever the
 * destinations held before the call. */
int opts_parse(const char *cmd, const char *summary, const OptSpec *specs, int argc, char **argv);
/* The same; given (one entry per row of specs, before the NULL row) gets 1 for
 * each option that appeared on the command line, 0 for the others. */
int opts_parse_given(const char *cmd, const char *summary, const OptSpec *specs, int argc, char **argv,
                     unsigned char *given);
void opts_help(const char *cmd, const char *summary, const OptSpec *specs);

#endif
