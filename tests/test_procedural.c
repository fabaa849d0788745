/* test_procedural.c: the procedural block source (procedural.h): the spec
 * parser (shapes, overrides, bad keys refused by name), the LLaMA-65B shape of
 * the paper, determinism (the same block twice, in any order, with 1 or 2
 * threads: the same bits), the streamed and the whole model holding the same
 * values, the generator's moments (variance 1/in, one weight in 256 four times
 * larger) and model_open taking the spec as --model does. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "model_open.h"
#include "procedural.h"
#include "util.h"

#define SPEC "procedural:custom,dim=64,hidden=160,layers=3,heads=4,vocab=96,seq_len=32,seed=5"

static float *block_copy(const ModelConfig *c, uint64_t seed, int layer, size_t *n_out) {
    size_t n = (size_t)(model_linear_params(c) / c->n_layers), off = 0;
    float *buf = qh_malloc(n * sizeof(float)), *dst[LIN_COUNT] = {0};
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        dst[k] = buf + off;
        off += (size_t)o * i;
    }
    procedural_block_linears(c, seed, layer, dst);
    *n_out = n;
    return buf;
}

/* stderr of a failing call, captured (capture.h) */
static char cap_dir[] = "/tmp/qh_test_proc_XXXXXX";
static char *last_err;
static int parse_err(const char *spec, ModelConfig *c, uint64_t *seed) {
    cap_begin_in(cap_dir);
    int rc = procedural_parse(spec, c, seed);
    free(last_err);
    last_err = cap_end();
    return rc;
}

int main(void) {
    if (!mkdtemp(cap_dir)) return 1;
    ModelConfig c;
    uint64_t seed;
    /* the paper's largest shape, and its bytes (computed: 7 linears of 8192 x 8192 / 8192 x 22016) */
    CHECK(procedural_parse("procedural:llama-65b", &c, &seed) == 0, "llama-65b parses");
    CHECK(c.dim == 8192 && c.hidden_dim == 22016 && c.n_layers == 80 && c.n_heads == 64 && c.n_kv_heads == 64 &&
              c.vocab_size == 32000 && !c.shared_classifier && seed == 0,
          "llama-65b: dim %d hidden %d layers %d heads %d/%d vocab %d", c.dim, c.hidden_dim, c.n_layers, c.n_heads,
          c.n_kv_heads, c.vocab_size);
    CHECK(model_linear_params(&c) / c.n_layers == 4LL * 8192 * 8192 + 3LL * 8192 * 22016,
          "65B block: %lld linear parameters", (long long)(model_linear_params(&c) / c.n_layers));
    CHECK(procedural_parse("procedural:llama-7b,layers=2,heads=16", &c, &seed) == 0 && c.n_layers == 2 &&
              c.n_heads == 16 && c.n_kv_heads == 16 && c.dim == 4096,
          "overrides: heads without kv_heads keeps multi-head attention");
    /* bad specs refused, naming what is wrong */
    const char *bad[] = {"procedural:llama-99b", "procedural:custom", "procedural:tiny,dim=x", "procedural:tiny,foo=1",
                         "procedural:tiny,shared=2", "procedural:tiny,dim", "procedural:tiny,heads=7", "model.bin"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(parse_err(bad[i], &c, &seed) != 0 && strstr(last_err, bad[i]), "'%s' refused, named: %s", bad[i],
              last_err);
    CHECK(parse_err("procedural:tiny,foo=1", &c, &seed) != 0 && strstr(last_err, "'foo'"), "unknown key named: %s",
          last_err);
    CHECK(parse_err("procedural:llama-99b", &c, &seed) != 0 && strstr(last_err, "llama-65b"),
          "the known shapes listed: %s", last_err);

    /* determinism: block 1 twice (after block 2), with 1 and 2 threads */
    CHECK(procedural_parse(SPEC, &c, &seed) == 0, "parse %s", SPEC);
    size_t n;
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    float *a = block_copy(&c, seed, 1, &n);
    omp_set_num_threads(2);
    free(block_copy(&c, seed, 2, &n));
    float *b = block_copy(&c, seed, 1, &n);
    omp_set_num_threads(nt);
    CHECK(!memcmp(a, b, n * sizeof(float)), "block 1 identical with 1 and 2 threads, after block 2");
    float *other = block_copy(&c, seed + 1, 1, &n), *b2 = block_copy(&c, seed, 2, &n);
    CHECK(memcmp(a, other, n * sizeof(float)) != 0, "another seed, other weights");
    CHECK(memcmp(a, b2, n * sizeof(float)) != 0, "another block, other weights");
    free(other);
    free(b2);

    /* moments of wq (64 x 64, in = 64): plain weights uniform with variance 1/in; 1 in 256 times 4 */
    {
        const float *wq = a;
        int64_t m = 64 * 64, big = 0;
        double bound = sqrt(3.0 / 64), ss = 0;
        for (int64_t i = 0; i < m; i++) {
            if (fabs(wq[i]) > bound * 1.0000001) big++;
            else ss += (double)wq[i] * wq[i];
        }
        /* outliers above the bound: 3/4 of the 1/256 (|4v| > a when |v| > a/4); 12 expected of 4096 */
        CHECK(big >= 3 && big <= 30, "%lld weights beyond the uniform bound (about 12 expected)", (long long)big);
        double var = ss / (double)(m - big);
        CHECK(fabs(var * 64 - 1.0) < 0.1, "variance x in = %.3f (1 expected)", var * 64);
    }

    /* the streamed model loads what the whole one holds; the rest equal too */
    Model whole, st;
    CHECK(procedural_open(&whole, SPEC, 0) == 0, "whole model");
    CHECK(procedural_open(&st, SPEC, 1) == 0, "streamed model");
    CHECK(model_is_streamable(&st) && st.src.load != NULL, "streamed: block source set");
    CHECK(!memcmp(whole.w.tok_emb, st.w.tok_emb, sizeof(float) * 96 * 64), "embedding equal");
    for (int l = 0; l < c.n_layers; l++) {
        CHECK(model_load_block(&st, l) == 0, "load block %d", l);
        int same = !memcmp(whole.w.blocks[l].rms_att, st.w.blocks[l].rms_att, 64 * sizeof(float));
        for (int k = 0; k < model_n_linears(&c); k++) {
            int o, i;
            model_linear_shape(&c, (LinearKind)k, &o, &i);
            same &= !memcmp(whole.w.blocks[l].lin[k], st.w.blocks[l].lin[k], sizeof(float) * o * i);
        }
        CHECK(same, "block %d: streamed == whole", l);
        model_release_block(&st, l);
    }
    CHECK(!memcmp(whole.w.blocks[1].lin[LIN_Q], a, sizeof(float) * 64 * 64), "model block 1 wq == block_linears'");
    model_free(&whole);
    model_free(&st);
    free(a);
    free(b);

    /* model_open: the spec wherever --model is; a tokenizer must be named */
    Model mo;
    CHECK(model_open_for(SPEC, NULL, &mo, NULL, 1) == 0 && mo.cfg.n_layers == 3 && !strcmp(mo.path, SPEC),
          "model_open_for takes the spec");
    model_free(&mo);
    Tokenizer t;
    cap_begin_in(cap_dir);
    int rc = model_open_for(SPEC, NULL, &mo, &t, 0);
    free(last_err);
    last_err = cap_end();
    CHECK(rc != 0 && strstr(last_err, "--tokenizer"), "no tokenizer beside a procedural model: %s", last_err);
    free(last_err);
    rmdir(cap_dir);
    return test_summary();
}
