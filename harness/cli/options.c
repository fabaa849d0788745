/* options.c: table-driven option parsing and help (see options.h). */
#include "options.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static const OptSpec *find(const OptSpec *s, const char *name, size_t len) {
    for (; s->name; s++)
        if (strlen(s->name) == len && !strncmp(s->name, name, len)) return s;
    return NULL;
}

void opts_help(const char *cmd, const char *summary, const OptSpec *specs) {
    printf("usage: qharness %s [options]\n\n%s\n\noptions:\n", cmd, summary);
    for (const OptSpec *s = specs; s->name; s++) {
        char left[64];
        if (s->type == OPT_FLAG) snprintf(left, sizeof left, "--%s", s->name);
        else snprintf(left, sizeof left, "--%s %s", s->name, s->meta ? s->meta : "X");
        char def[64] = "";
        if (s->type == OPT_INT && s->dst && *(long *)s->dst != OPT_UNSET_INT)
            snprintf(def, sizeof def, " (default %ld)", *(long *)s->dst);
        if (s->type == OPT_DOUBLE && s->dst && !isnan(*(double *)s->dst))
            snprintf(def, sizeof def, " (default %g)", *(double *)s->dst);
        if (s->type == OPT_STR && s->dst && *(char **)s->dst) snprintf(def, sizeof def, " (default %s)", *(char **)s->dst);
        printf("  %-28s %s%s\n", left, s->help, def);
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

int opts_parse(const char *cmd, const char *summary, const OptSpec *specs, int argc, char **argv) {
    return opts_parse_given(cmd, summary, specs, argc, argv, NULL);
}

int opts_parse_given(const char *cmd, const char *summary, const OptSpec *specs, int argc, char **argv,
                     unsigned char *given) {
    if (given)
        for (const OptSpec *s = specs; s->name; s++) given[s - specs] = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            opts_help(cmd, summary, specs);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return qh_error("%s: unexpected argument '%s' (options start with --; see qharness %s --help)", cmd, a, cmd);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const OptSpec *s = find(specs, name, len);
        if (!s) return qh_error("%s: unknown option '%.*s' (see qharness %s --help)", cmd, (int)len + 2, a, cmd);
        if (given) given[s - specs] = 1;
        if (s->type == OPT_FLAG) {
            if (eq) return qh_error("%s: option --%s takes no value", cmd, s->name);
            *(int *)s->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) return qh_error("%s: option --%s needs a value (%s)", cmd, s->name, s->meta ? s->meta : "X");
        if (s->type == OPT_STR) {
            *(const char **)s->dst = val;
        } else if (s->type == OPT_INT) {
            long v;
            if (qh_parse_long(val, &v) != 0)
                return qh_error("%s: option --%s expects an integer, got '%s'", cmd, s->name, val);
            if (v == OPT_UNSET_INT) /* the "not given" sentinel */
                return qh_error("%s: option --%s: %s is out of range", cmd, s->name, val);
            *(long *)s->dst = v;
        } else {
            if (qh_parse_double(val, (double *)s->dst) != 0)
                return qh_error("%s: option --%s expects a number, got '%s'", cmd, s->name, val);
        }
    }
    return 0;
}
