/* bench_tokenizer.c: load + encode of the SPEC wikitext2 test string (test
 * rows joined with "\n\n", 1.29 MB) with the Llama-3.2 and Qwen3
 * tokenizer.json files of data/, best of 3, next to the Hugging Face
 * `tokenizers` library timed on the same file and string in the same run
 * (bench/hf_tokenizers_time.py through python3; skipped, and said so,
 * where Python or the library is absent). The ratio is library time / ours
 * (target: at least 2x), in wall-clock time and in process CPU time (the
 * latter steadier on a shared machine; both sides run one thread); the
 * library's ids are compared with ours too.
 * Usage: bench_tokenizer [--reps N] (QH_DATA: the data root, default data/) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datasets.h"
#include "tokenizer.h"
#include "util.h"

typedef struct {
    double load, encode;         /* wall-clock seconds, best of the repetitions */
    double load_cpu, encode_cpu; /* process CPU seconds, best of the repetitions */
    size_t n;
} Timing;

static double cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

static int time_ours(const char *path, const char *text, size_t len, int reps, Timing *best, int **ids_out) {
    best->load = best->encode = best->load_cpu = best->encode_cpu = 1e30;
    for (int r = 0; r < reps; r++) {
        Tokenizer t;
        double c0 = cpu_now(), t0 = qh_now();
        if (tokenizer_load(&t, path, 0) != 0) return -1;
        double c1 = cpu_now(), t1 = qh_now();
        int *ids;
        size_t n;
        if (tokenizer_encode(&t, text, len, 1, 0, &ids, &n) != 0) {
            tokenizer_free(&t);
            return -1;
        }
        double c2 = cpu_now(), t2 = qh_now();
        tokenizer_free(&t);
        if (t1 - t0 < best->load) best->load = t1 - t0;
        if (t2 - t1 < best->encode) best->encode = t2 - t1;
        if (c1 - c0 < best->load_cpu) best->load_cpu = c1 - c0;
        if (c2 - c1 < best->encode_cpu) best->encode_cpu = c2 - c1;
        best->n = n;
        if (r == reps - 1) *ids_out = ids;
        else free(ids);
    }
    return 0;
}

static void print_row(const char *file, const char *who, const Timing *t) {
    printf("%-8s %-8s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9zu\n", file, who, t->load, t->encode, t->load + t->encode,
           t->load_cpu, t->encode_cpu, t->load_cpu + t->encode_cpu, t->n);
}

/* The library, through python3: 0 with its timing and ids, 1 when unavailable (said why). */
static int time_library(const char *json, const char *text_file, const char *tmpdir, int reps, Timing *t, int **ids,
                        size_t *n) {
    const char *script = "bench/hf_tokenizers_time.py";
    if (access(script, R_OK) != 0) {
        printf("  library: skipped (%s not found: run from the repository root)\n", script);
        return 1;
    }
    char out[600], cmd[2400];
    snprintf(out, sizeof out, "%s/hf_ids.i32", tmpdir);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s' '%s' %d 2>/dev/null", script, json, text_file, out, reps);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  library: skipped (cannot run python3)\n");
        return 1;
    }
    int got = fscanf(p, "%lf %lf %zu %lf %lf", &t->load, &t->encode, &t->n, &t->load_cpu, &t->encode_cpu);
    int st = pclose(p);
    if (got != 5 || st != 0) {
        printf("  library: skipped (python3 or its `tokenizers` package is not available here%s)\n",
               WIFEXITED(st) && WEXITSTATUS(st) == 3 ? ": pip install tokenizers" : "");
        return 1;
    }
    char *buf;
    size_t len;
    if (qh_read_file(out, &buf, &len) != 0) return 1;
    *n = len / 4;
    *ids = qh_malloc(len + 4);
    memcpy(*ids, buf, len); /* int32 little-endian, as this host */
    free(buf);
    unlink(out);
    return 0;
}

int main(int argc, char **argv) {
    int reps = 3;
    if (argc > 2 && !strcmp(argv[1], "--reps")) reps = atoi(argv[2]) > 0 ? atoi(argv[2]) : 3;
    const char *root = getenv("QH_DATA") ? getenv("QH_DATA") : "data";
    char p[1024];
    snprintf(p, sizeof p, "%s/text/wikitext-2-raw/wiki.test.raw", root);
    char *raw;
    size_t rawlen;
    if (qh_read_file(p, &raw, &rawlen) != 0) {
        printf("skipped: %s missing (make data)\n", p);
        return 0;
    }
    char *text = join_wikitext2(raw, rawlen);
    size_t len = strlen(text);
    free(raw);
    char tmpdir[] = "/tmp/qh_bench_tok_XXXXXX";
    if (!mkdtemp(tmpdir)) return 1;
    char text_file[600];
    snprintf(text_file, sizeof text_file, "%s/wikitext2_test.txt", tmpdir);
    if (qh_write_file_atomic(text_file, text, len) != 0) return 1;
    printf("load + encode of the SPEC wikitext2 test string (%zu bytes), best of %d; library = Hugging Face tokenizers\n",
           len, reps);
    printf("%-8s %-8s %9s %9s %9s %9s %9s %9s %9s\n", "file", "who", "load s", "encode s", "total s", "load cpu",
           "enc cpu", "total cpu", "ids");
    const char *names[] = {"llama3", "qwen3"};
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/tokenizers/%s/tokenizer.json", root, names[k]);
        if (access(p, R_OK) != 0) {
            printf("%-8s skipped: %s missing (make data)\n", names[k], p);
            continue;
        }
        Timing ours = {0}, lib = {0};
        int *ids = NULL, *lids = NULL;
        size_t ln = 0;
        if (time_ours(p, text, len, reps, &ours, &ids) != 0) {
            rc = 1;
            continue;
        }
        print_row(names[k], "qharness", &ours);
        if (time_library(p, text_file, tmpdir, reps, &lib, &lids, &ln) == 0) {
            print_row(names[k], "library", &lib);
            int same = ln == ours.n && !memcmp(ids, lids, ln * sizeof(int));
            printf("%-8s library / qharness: wall load %.1fx, encode %.1fx, total %.1fx; CPU load %.1fx, encode %.1fx, "
                   "total %.1fx (target >= 2x); ids %s\n",
                   names[k], lib.load / ours.load, lib.encode / ours.encode,
                   (lib.load + lib.encode) / (ours.load + ours.encode), lib.load_cpu / ours.load_cpu,
                   lib.encode_cpu / ours.encode_cpu, (lib.load_cpu + lib.encode_cpu) / (ours.load_cpu + ours.encode_cpu),
                   same ? "identical" : "DIFFERENT");
            if (!same) rc = 1;
            free(lids);
        }
        free(ids);
    }
    unlink(text_file);
    rmdir(tmpdir);
    free(text);
    return rc;
}
