/* test_tokenizer_spm.c: our encoder with the LLaMA-2 vocabulary
 * (tokenizers/llama2/tokenizer.bin) against SentencePiece 0.2 itself, on texts
 * beyond the WikiText-2 fixture: PTB (both SPEC 7 joinings), the first 100 C4
 * documents one by one, and short texts with accents, digits, CJK, emoji, runs
 * of spaces and newlines, tabs, code. The expected ids are in
 * tests/fixtures/spm_llama2_reference.tsv (name, UTF-8 text as hex or "-" for a
 * whole dataset, id count, ids or the sha256 of the little-endian uint16 ids).
 * They were made once with the Python sentencepiece package from a BPE model
 * rebuilt from the same vocabulary (normalizer identity, dummy prefix, byte
 * fallback, split digits), after checking that this model reproduces
 * fixtures/wikitext2_test_llama2_ids.u16 exactly. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "datasets.h"
#include "sha256.h"
#include "tokenizer.h"
#include "util.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

static char *data_file(const char *rel, size_t *len) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root(), rel);
    char *buf;
    return qh_read_file(p, &buf, len) == 0 ? buf : NULL;
}

/* ids of a whole-dataset case, as the Python side built them */
static int *whole_case(const Tokenizer *t, const char *name, size_t *n) {
    size_t len;
    int *ids = NULL;
    if (!strcmp(name, "ptb") || !strcmp(name, "ptb-new")) {
        char *raw = data_file(!strcmp(name, "ptb") ? "text/ptb/ptb.valid.txt" : "text/ptb/ptb.test.txt", &len);
        if (!raw) return NULL;
        char *text = join_lines_stripped(raw, len, !strcmp(name, "ptb") ? "\n\n" : " ");
        if (tokenizer_encode(t, text, strlen(text), 1, 0, &ids, n) != 0) ids = NULL;
        free(text);
        free(raw);
        return ids;
    }
    if (!strcmp(name, "c4-docs-0-99")) {
        char *raw = data_file("text/c4/c4_train_00000_first1000.jsonl", &len);
        if (!raw) return NULL;
        size_t cap = 1 << 16, total = 0;
        ids = qh_malloc(sizeof(int) * cap);
        char *save = NULL;
        int docs = 0;
        for (char *line = strtok_r(raw, "\n", &save); line && docs < 100; line = strtok_r(NULL, "\n", &save), docs++) {
            json_t *o = json_loads(line, 0, NULL);
            const char *txt = json_string_value(json_object_get(o, "text"));
            size_t tl = json_string_length(json_object_get(o, "text"));
            int *d;
            size_t dn;
            if (!txt || tokenizer_encode(t, txt, tl, 1, 0, &d, &dn) != 0) {
                json_decref(o);
                free(ids);
                free(raw);
                return NULL;
            }
            if (total + dn > cap) ids = qh_realloc(ids, sizeof(int) * (cap = (total + dn) * 2));
            memcpy(ids + total, d, sizeof(int) * dn);
            total += dn;
            free(d);
            json_decref(o);
        }
        free(raw);
        *n = total;
        return ids;
    }
    return NULL;
}

static void digest_ids(const int *ids, size_t n, char hex[65]) {
    uint16_t *u = qh_malloc(sizeof(uint16_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) u[i] = (uint16_t)ids[i]; /* little-endian host, as the fixture */
    sha256_buf(u, sizeof(uint16_t) * n, hex);
    free(u);
}

int main(void) {
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/tokenizers/llama2/tokenizer.bin", root());
    Tokenizer t;
    if (access(tp, R_OK) != 0 || tokenizer_load(&t, tp, 32000) != 0) {
        SKIP("tokenizers/llama2/tokenizer.bin not found (make data)");
        return test_summary();
    }
    char *fx;
    size_t fl;
    if (qh_read_file("tests/fixtures/spm_llama2_reference.tsv", &fx, &fl) != 0) {
        SKIP("tests/fixtures/spm_llama2_reference.tsv not found (run from the repository root)");
        tokenizer_free(&t);
        return test_summary();
    }
    char *save = NULL;
    int cases = 0;
    for (char *line = strtok_r(fx, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        char *p = line;
        for (int i = 0; i < 4; i++) {
            f[i] = p;
            p = strchr(p, '\t');
            if (i < 3) {
                if (!p) break;
                *p++ = '\0';
            }
        }
        if (!f[3]) {
            CHECK(0, "malformed fixture line '%s'", line);
            continue;
        }
        long want_n = strtol(f[2], NULL, 10);
        int *ids = NULL;
        size_t n = 0;
        if (!strcmp(f[1], "-")) {
            ids = whole_case(&t, f[0], &n);
            if (!ids) {
                SKIP("dataset text for a whole-text case missing");
                continue;
            }
            char hex[65];
            digest_ids(ids, n, hex);
            CHECK((long)n == want_n && !strcmp(hex, f[3]), "%s: %zu ids (SentencePiece %ld), digest %s vs %s", f[0], n,
                  want_n, hex, f[3]);
        } else {
            size_t tl = strlen(f[1]) / 2;
            char *text = qh_malloc(tl + 1);
            for (size_t i = 0; i < tl; i++) {
                unsigned v;
                sscanf(f[1] + 2 * i, "%2x", &v);
                text[i] = (char)v;
            }
            text[tl] = '\0';
            CHECK(tokenizer_encode(&t, text, tl, 1, 0, &ids, &n) == 0, "%s: encode", f[0]);
            /* expected ids, space-separated */
            int ok = (long)n == want_n;
            char *q = f[3];
            for (size_t i = 0; ok && i < n; i++) {
                char *end;
                long v = strtol(q, &end, 10);
                ok = end != q && v == ids[i];
                q = end;
            }
            CHECK(ok, "%s: ids differ from SentencePiece's (%zu vs %ld ids) for '%s'", f[0], n, want_n, text);
            free(text);
        }
        free(ids);
        cases++;
    }
    CHECK(cases == 13, "%d fixture cases read, expected 13", cases);
    free(fx);
    tokenizer_free(&t);
    return test_summary();
}
