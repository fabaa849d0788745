/* cmd_check_jsonl.c: `qharness check-jsonl`: read a C4-layout JSON Lines file
 * (plain or gzip) whole and check every line (jsonl.h); `make data` runs it on
 * each C4 shard before installing it. */
#include <stdio.h>

#include "cli.h"
#include "jsonl.h"
#include "util.h"

int cmd_check_jsonl(int argc, char **argv, int full_argc, char **full_argv) {
    char *file = NULL;
    const OptSpec specs[] = {
        {"file", OPT_STR, &file, "F", "JSON Lines file, plain or .gz: one object with a string \"text\" per line"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = opts_parse("check-jsonl",
                        "Check a C4-layout JSON Lines file: the whole gzip stream (truncation, corruption) and every "
                        "line; the first bad one is named with its line number.",
                        specs, argc, argv);
    if (rc) return rc > 0 ? 0 : -1;
    if (!file) return qh_error("check-jsonl: --file is required");
    JsonlDocs d;
    if (jsonl_open(file, &d) != 0) return -1;
    printf("%s: %lld documents in %lld lines, %s, %lld bytes, sha256 %s\n", file, (long long)d.n, (long long)d.lines,
           d.gzip ? "gzip" : "plain", (long long)d.file_bytes, d.sha256);
    jsonl_close(&d);
    return 0;
}
