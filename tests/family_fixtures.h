/* family_fixtures.h: reading the checkpoints of tests/fixtures/families/
 * (made by make_family_checkpoints.py with transformers) and what
 * transformers computed on them: expected.json (seqlen, ids, window_nll[],
 * ppl) and logits_w0.f32 ((seqlen, V) float32, fp32 folders only). Shared by
 * the tests that compare the harness with transformers (CPU, quantized, GPU).
 * QH_FAMILY_FIXTURES overrides the folder (default tests/fixtures/families). */
#ifndef QH_FAMILY_FIXTURES_H
#define QH_FAMILY_FIXTURES_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const family_fixture_names[] = {
    "llama_mha_f32", "llama_mha_bf16", "llama_gqa_f32",   "llama_gqa_bf16", "mistral_f32",    "mistral_bf16",
    "qwen2_f32",     "qwen2_bf16",     "llama3_rope_f32", "llama3_rope_bf16", "falcon7b_f32", "falcon7b_bf16",
    "falcon40b_f32", "falcon40b_bf16", NULL};

typedef struct FamilyFixture {
    char dir[512];
    int seqlen;
    int *ids;          /* (n_ids) */
    size_t n_ids;
    double *window_nll; /* (nwin) */
    long nwin;
    double ppl;
    float *logits;     /* (seqlen, V) of window 0, or NULL */
} FamilyFixture;

static inline const char *family_fixture_root(void) {
    const char *d = getenv("QH_FAMILY_FIXTURES");
    return d && *d ? d : "tests/fixtures/families";
}

static inline void family_fixture_free(FamilyFixture *fx) {
    free(fx->ids);
    free(fx->window_nll);
    free(fx->logits);
    memset(fx, 0, sizeof *fx);
}

/* 0, or -1 with a message. */
static inline int family_fixture_load(const char *name, FamilyFixture *fx) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "%s/%s", family_fixture_root(), name);
    char p[600];
    snprintf(p, sizeof p, "%s/expected.json", fx->dir);
    json_error_t je;
    json_t *e = json_load_file(p, 0, &je);
    if (!e) return qh_error("'%s': %s", p, je.text);
    json_t *ids = json_object_get(e, "ids"), *wn = json_object_get(e, "window_nll");
    if (!json_is_array(ids) || !json_is_array(wn) || !json_is_integer(json_object_get(e, "seqlen")) ||
        !json_is_number(json_object_get(e, "ppl"))) {
        json_decref(e);
        return qh_error("'%s': expected seqlen, ids, window_nll, ppl", p);
    }
    fx->seqlen = (int)json_integer_value(json_object_get(e, "seqlen"));
    fx->ppl = json_number_value(json_object_get(e, "ppl"));
    fx->n_ids = json_array_size(ids);
    fx->ids = qh_malloc(sizeof(int) * fx->n_ids);
    for (size_t i = 0; i < fx->n_ids; i++) fx->ids[i] = (int)json_integer_value(json_array_get(ids, i));
    fx->nwin = (long)json_array_size(wn);
    fx->window_nll = qh_malloc(sizeof(double) * (size_t)fx->nwin);
    for (long i = 0; i < fx->nwin; i++) fx->window_nll[i] = json_number_value(json_array_get(wn, (size_t)i));
    json_decref(e);
    snprintf(p, sizeof p, "%s/logits_w0.f32", fx->dir);
    char *raw;
    size_t len;
    FILE *f = fopen(p, "rb");
    if (f) {
        fclose(f);
        if (qh_read_file(p, &raw, &len) != 0) return -1;
        fx->logits = (float *)raw; /* little-endian float32, as this machine's */
    }
    return 0;
}

#endif
