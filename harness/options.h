/* options.h: one table per subcommand drives command-line parsing, validation
 * of numbers, defaults and the generated --help text (ggml/Redis style). */
#ifndef QH_OPTIONS_H
#define QH_OPTIONS_H

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
void opts_help(const char *cmd, const char *summary, const OptSpec *specs);

#endif
