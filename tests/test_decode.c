/* test_decode.c: incremental decode with a KV cache (forward.h decode_reset /
 * decode, the CPU backend), greedy generation with and without the cache,
 * and packed linears (forward_set_packed) through a test double.
 *
 * 1. Decode against the full window: a prefill, then one token at a time,
 *    the logits after every step against last_logits of the whole sequence
 *    so far, on a synthetic GQA model (H 6, Hkv 2, odd sizes), on
 *    stories260K (data/), and on the transformers checkpoints of
 *    tests/fixtures/families (Falcon-7B multi-query, Falcon-40B grouped
 *    fused QKV with biases, Qwen2's q/k/v biases): prefill in one call, and
 *    with a backend of max_T 8, so that the prefill runs in chunks.
 *    Tolerance: |a - b| <= 2e-5 * max|logit of the row|. Both paths run the
 *    same fp32 operations; the matrix products differ only in the number of
 *    rows sgemm gets (1 vs T), which may change OpenBLAS's kernel and so the
 *    order of a dot product's sums, ~1e-7 relative per product; over 5
 *    blocks the measured worst is ~1e-6 of the row's largest logit. A
 *    wrong position in the rotary (pos0), a cache row off by one, or keys
 *    missing from the cache move logits by 1e-2 or more.
 * 2. Greedy generation: forward_greedy with the cache equals it without
 *    (last_logits of the whole sequence every step), token for token, 120
 *    steps on stories260K from BOS and 40 on the synthetic model; the
 *    attention of a prefill of n > 1 tokens equals attention_simd bit for
 *    bit (the same operations in the same order).
 * 3. Packed linears: a PackedLinear double (a dense fp32 matrix, its own
 *    loop in double) set for every linear gives the logits of the dense
 *    model (2e-5); set for one linear with the matrix doubled, the logits
 *    of a model with that weight doubled (model_set_linear), so the packed
 *    linear is what runs, in block, last_logits and decode.
 * 4. Refused by name: a packed linear of another shape, one in device
 *    memory, a layer or linear out of range; decode before decode_reset, past
 *    the cache, with a token outside the vocabulary; a cache longer than the
 *    model's context.
 * Not here: the CUDA backend (tests/gpu/test_gpu_decode.c), the quantized
 * kernels (kernels/). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "decode_compare.h"
#include "forward.h"
#include "forward_math.h"
#include "model.h"
#include "model_open.h"
#include "stories_fixture.h"
#include "util.h"

static uint64_t rng_state = 0x5eed1234ull;
static uint64_t rng_next(void) { return splitmix64_next(&rng_state); }

#define DECODE_RTOL 2e-5

/* call must fail with a message containing want (stderr captured in cap_dir) */
static char cap_dir[64] = "/tmp/qh_test_decode_XXXXXX";
#define CAPTURE_CHECK_FAIL(call, want, what) CAPTURE_CHECK_FAIL_IN(cap_dir, call, want, what)

/* Decode tokens (T) as a prefill of np, then single steps, on a backend of
 * window max_T; every step's logits against last_logits (window T backend). */
static void check_decode(const char *what, const Model *m, const int *tokens, int T, int np, int max_T) {
    int V = m->cfg.vocab_size;
    Forward *full = NULL, *f = NULL;
    if (forward_cpu_create(m, T, &full) != 0 || forward_cpu_create(m, max_T, &f) != 0) {
        CHECK(0, "%s: backends not created", what);
        forward_destroy(&full);
        forward_destroy(&f);
        return;
    }
    float *a = qh_malloc(sizeof(float) * V), *b = qh_malloc(sizeof(float) * V);
    double worst = 0;
    int bad = 0, steps = 0;
    CHECK(f->ops->decode_reset(f, T) == 0, "%s: decode_reset(%d)", what, T);
    for (int pos = np; pos <= T; pos++) {
        int n = pos == np ? np : 1;
        if (f->ops->decode(f, tokens + pos - n, n, a) != 0 || full->ops->last_logits(full, tokens, pos, b) != 0) {
            bad++;
            break;
        }
        double d = logits_row_dev(a, b, V);
        if (d > worst) worst = d;
        if (d > DECODE_RTOL) bad++;
        steps++;
    }
    CHECK(bad == 0 && steps == T - np + 1, "%s: %d of %d decode steps off last_logits (worst %.3g of the row scale)",
          what, bad, T - np + 1, worst);
    CHECK(f->dec_pos == T, "%s: dec_pos %d after %d tokens", what, f->dec_pos, T);
    printf("%-40s prefill %3d, max_T %3d, %3d steps: worst %.3g\n", what, np, max_T, steps, worst);
    free(a);
    free(b);
    forward_destroy(&full);
    forward_destroy(&f);
}

static void random_tokens(int *t, int T, int V) {
    for (int i = 0; i < T; i++) t[i] = (int)(rng_next() % (uint64_t)V);
}

static void check_model(const char *what, const Model *m, int T) {
    int *tok = qh_malloc(sizeof(int) * T);
    random_tokens(tok, T, m->cfg.vocab_size);
    char name[160];
    snprintf(name, sizeof name, "%s (one prefill)", what);
    check_decode(name, m, tok, T, T / 3 + 1, T);
    snprintf(name, sizeof name, "%s (chunked prefill)", what);
    check_decode(name, m, tok, T, T - 5, 8);
    snprintf(name, sizeof name, "%s (from 1 token)", what);
    check_decode(name, m, tok, T, 1, 4);
    free(tok);
}

/* ---- greedy with and without the cache ------------------------------------- */

static void check_greedy(const char *what, const Model *m, int start, int steps) {
    Forward *f = NULL;
    if (forward_cpu_create(m, steps + 1, &f) != 0) {
        CHECK(0, "%s: backend", what);
        return;
    }
    int *a = qh_malloc(sizeof(int) * (steps + 1)), *b = qh_malloc(sizeof(int) * (steps + 1));
    int na = forward_greedy(f, &start, 1, steps, 1, a, NULL, NULL);
    int nb = forward_greedy(f, &start, 1, steps, 0, b, NULL, NULL);
    int first = -1;
    for (int i = 0; i <= steps && first < 0; i++)
        if (a[i] != b[i]) first = i;
    CHECK(na == steps && nb == steps, "%s: %d / %d tokens generated of %d", what, na, nb, steps);
    CHECK(first < 0, "%s: greedy with the KV cache parts from the no-cache path at token %d (%d vs %d)", what, first,
          first >= 0 ? a[first] : 0, first >= 0 ? b[first] : 0);
    /* not a constant sequence (the check would be empty) */
    int distinct = 0;
    for (int i = 1; i <= steps; i++) distinct += a[i] != a[1];
    CHECK(distinct > 0, "%s: greedy repeats one token", what);
    printf("%-40s greedy %d steps: equal with and without the cache\n", what, steps);
    free(a);
    free(b);
    forward_destroy(&f);
}

static void check_prefill_attention_bitwise(void) {
    int T = 37, H = 6, Hkv = 2, hs = 8, D = H * hs, KV = Hkv * hs, pos0 = 0;
    float *q = qh_malloc(sizeof(float) * T * D), *k = qh_malloc(sizeof(float) * T * KV),
          *v = qh_malloc(sizeof(float) * T * KV), *o1 = qh_malloc(sizeof(float) * T * D),
          *o2 = qh_malloc(sizeof(float) * T * D), *kc = qh_malloc(sizeof(float) * KV * 50),
          *vc = qh_malloc(sizeof(float) * KV * 50);
    for (int i = 0; i < T * D; i++) q[i] = (float)((int)(rng_next() % 2001) - 1000) / 500.0f;
    for (int i = 0; i < T * KV; i++) k[i] = (float)((int)(rng_next() % 2001) - 1000) / 500.0f;
    for (int i = 0; i < T * KV; i++) v[i] = (float)((int)(rng_next() % 2001) - 1000) / 500.0f;
    attention_simd(o1, q, k, v, T, H, Hkv, hs);
    kv_cache_store(kc, vc, 50, k, v, T, pos0, KV);
    attention_cached_simd(o2, q, kc, vc, 50, T, pos0, H, Hkv, hs);
    CHECK(memcmp(o1, o2, sizeof(float) * T * D) == 0, "attention_cached_simd of a whole window != attention_simd");
    /* the last 9 rows through the cache at pos0 28 equal rows 28.. of the window */
    kv_cache_store(kc, vc, 50, k + 28 * KV, v + 28 * KV, 9, 28, KV);
    attention_cached_simd(o2, q + 28 * D, kc, vc, 50, 9, 28, H, Hkv, hs);
    CHECK(memcmp(o1 + 28 * D, o2, sizeof(float) * 9 * D) == 0, "attention_cached_simd at pos0 28 != attention_simd rows 28..");
    free(q), free(k), free(v), free(o1), free(o2), free(kc), free(vc);
}

/* ---- a PackedLinear double: a dense fp32 matrix, its own product in double ---- */

typedef struct DensePacked {
    PackedLinear base;
    float *W; /* (m, n) owned */
    int calls;
} DensePacked;

static int dense_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    DensePacked *d = (DensePacked *)p;
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < p->m; r++) {
            double acc = 0;
            for (int c = 0; c < p->n; c++) acc += (double)d->W[(size_t)r * p->n + c] * X[(size_t)b * p->n + c];
            Y[(size_t)b * p->m + r] = (float)acc;
        }
    ((DensePacked *)p)->calls++;
    return 0;
}
static void dense_destroy(PackedLinear *p) {
    free(((DensePacked *)p)->W);
    free(p);
}
static const PackedLinearOps dense_ops = {"dense-double", dense_matmul, dense_destroy};

static DensePacked *dense_packed(const float *W, int m, int n, float mul, int where) {
    DensePacked *d = qh_calloc(1, sizeof *d);
    d->base = (PackedLinear){&dense_ops, m, n, where, sizeof(float) * (size_t)m * n};
    d->W = qh_malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) d->W[i] = W[i] * mul;
    return d;
}

static void check_packed(const Model *m0) {
    const ModelConfig *c = &m0->cfg;
    int L = c->n_layers, nl = model_n_linears(c), T = 24, V = c->vocab_size;
    int *tok = qh_malloc(sizeof(int) * T);
    random_tokens(tok, T, V);
    Forward *dense = NULL, *f = NULL;
    forward_cpu_create(m0, T, &dense);
    forward_cpu_create(m0, T, &f);
    DensePacked **pk = qh_calloc((size_t)L * LIN_COUNT, sizeof *pk);
    int set_ok = 1;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < nl; k++) {
            int out, in;
            model_linear_shape(c, (LinearKind)k, &out, &in);
            pk[l * LIN_COUNT + k] = dense_packed(m0->w.blocks[l].lin[k], out, in, 1.0f, PACKED_HOST);
            set_ok &= forward_set_packed(f, l, (LinearKind)k, &pk[l * LIN_COUNT + k]->base) == 0;
        }
    CHECK(set_ok, "forward_set_packed refused a matching host linear");
    float *a = qh_malloc(sizeof(float) * V), *b = qh_malloc(sizeof(float) * V);
    dense->ops->last_logits(dense, tok, T, b);
    f->ops->last_logits(f, tok, T, a);
    double d1 = logits_row_dev(a, b, V);
    f->ops->decode_reset(f, T);
    f->ops->decode(f, tok, T - 1, a);
    f->ops->decode(f, tok + T - 1, 1, a);
    double d2 = logits_row_dev(a, b, V);
    CHECK(d1 <= DECODE_RTOL && d2 <= DECODE_RTOL, "packed double vs dense: last_logits %.3g, decode %.3g", d1, d2);
    CHECK(pk[0]->calls == 3 && pk[(L - 1) * LIN_COUNT + nl - 1]->calls == 3, "packed linears called %d / %d times (3 expected)",
          pk[0]->calls, pk[(L - 1) * LIN_COUNT + nl - 1]->calls);

    /* one linear doubled: the model with that weight doubled */
    for (int l = 0; l < L; l++)
        for (int k = 0; k < nl; k++) forward_set_packed(f, l, (LinearKind)k, NULL);
    int lay = L - 1, kk = nl - 1, out, in;
    model_linear_shape(c, (LinearKind)kk, &out, &in);
    DensePacked *twice = dense_packed(m0->w.blocks[lay].lin[kk], out, in, 2.0f, PACKED_HOST);
    CHECK(forward_set_packed(f, lay, (LinearKind)kk, &twice->base) == 0, "set one packed linear");
    Model m2;
    model_synth(&m2, c, 77); /* the same config, then m0's weights with the one doubled */
    for (int l = 0; l < L; l++)
        for (int k = 0; k < nl; k++) model_set_linear(&m2, l, (LinearKind)k, m0->w.blocks[l].lin[k]);
    model_set_linear(&m2, lay, (LinearKind)kk, twice->W);
    memcpy((float *)m2.w.tok_emb, m0->w.tok_emb, sizeof(float) * (size_t)V * c->dim);
    for (int l = 0; l < L; l++) {
        memcpy((float *)m2.w.blocks[l].rms_att, m0->w.blocks[l].rms_att, sizeof(float) * c->dim);
        memcpy((float *)m2.w.blocks[l].rms_ffn, m0->w.blocks[l].rms_ffn, sizeof(float) * c->dim);
    }
    memcpy((float *)m2.w.rms_final, m0->w.rms_final, sizeof(float) * c->dim);
    if (m2.w.wcls != m2.w.tok_emb) memcpy((float *)m2.w.wcls, m0->w.wcls, sizeof(float) * (size_t)V * c->dim);
    Forward *f2 = NULL;
    forward_cpu_create(&m2, T, &f2);
    f2->ops->last_logits(f2, tok, T, b);
    f->ops->last_logits(f, tok, T, a);
    double d3 = logits_row_dev(a, b, V);
    dense->ops->last_logits(dense, tok, T, a);
    double d4 = logits_row_dev(a, b, V);
    CHECK(d3 <= DECODE_RTOL, "one packed linear doubled vs the model with it doubled: %.3g", d3);
    CHECK(d4 > 1e-3, "doubling a linear moves the logits by only %.3g (the check above would be empty)", d4);
    printf("packed double: all linears %.3g / %.3g, one doubled %.3g (dense vs doubled %.3g)\n", d1, d2, d3, d4);

    /* refusals */
    int o0, i0;
    model_linear_shape(c, (LinearKind)0, &o0, &i0);
    DensePacked *wrong = dense_packed(m0->w.blocks[0].lin[0], o0, i0, 1.0f, PACKED_HOST);
    wrong->base.m = o0 + 1;
    CAPTURE_CHECK_FAIL(forward_set_packed(f, 0, (LinearKind)0, &wrong->base), "layer 0 wq: the packed linear (dense-double) is 49 x 48, the model's is 48 x 48",
                       "a packed linear of another shape");
    wrong->base.m = o0;
    wrong->base.where = PACKED_DEVICE;
    CAPTURE_CHECK_FAIL(forward_set_packed(f, 0, (LinearKind)0, &wrong->base),
                       "the cpu backend takes packed linears in host memory, 'dense-double' is in device memory",
                       "a device packed linear for the CPU backend");
    wrong->base.where = PACKED_HOST;
    CAPTURE_CHECK_FAIL(forward_set_packed(f, L, (LinearKind)0, &wrong->base), "layer 3 is outside 0..2", "layer out of range");
    CAPTURE_CHECK_FAIL(forward_set_packed(f, 0, (LinearKind)nl, &wrong->base), "linear 7 is outside the 7 of a llama block",
                       "linear out of range");
    dense_destroy(&wrong->base);

    forward_destroy(&f2);
    model_free(&m2);
    forward_destroy(&f);
    forward_destroy(&dense);
    for (int i = 0; i < L * LIN_COUNT; i++)
        if (pk[i]) dense_destroy(&pk[i]->base);
    dense_destroy(&twice->base);
    free(pk);
    free(a);
    free(b);
    free(tok);
}

static void check_refusals(const Model *m) {
    Forward *f = NULL;
    forward_cpu_create(m, 8, &f);
    float *lg = qh_malloc(sizeof(float) * m->cfg.vocab_size);
    int tok[4] = {1, 2, 3, 4};
    CAPTURE_CHECK_FAIL(f->ops->decode(f, tok, 1, lg), "decode before decode_reset", "decode before reset");
    CAPTURE_CHECK_FAIL(f->ops->decode_reset(f, m->cfg.seq_len + 1), "a KV cache of 65 positions is outside the model's context 1..64",
                       "cache longer than the context");
    CAPTURE_CHECK_FAIL(f->ops->decode_reset(f, 0), "outside the model's context", "cache of 0 positions");
    f->ops->decode_reset(f, 5);
    CHECK(f->ops->decode(f, tok, 4, lg) == 0, "decode 4 of 5");
    CAPTURE_CHECK_FAIL(f->ops->decode(f, tok, 2, lg), "decoding 2 tokens at position 4 overflows the KV cache of 5 positions",
                       "decode past the cache");
    int badtok = m->cfg.vocab_size;
    CAPTURE_CHECK_FAIL(f->ops->decode(f, &badtok, 1, lg), "token id 97 at position 4 is outside the vocabulary",
                       "token out of range");
    CAPTURE_CHECK_FAIL(f->ops->decode(f, tok, 0, lg), "decode of 0 tokens", "decode of nothing");
    free(lg);
    forward_destroy(&f);
}

int main(void) {
    if (!mkdtemp(cap_dir)) return 1;
    /* synthetic GQA: H 6, Hkv 2 (hs 8), odd hidden and vocab, unshared head */
    ModelConfig c = decode_gqa_config();
    Model syn;
    if (model_synth(&syn, &c, 11) != 0) return 1;
    check_model("synthetic GQA", &syn, 60);
    check_greedy("synthetic GQA", &syn, 3, 40);
    check_prefill_attention_bitwise();
    check_packed(&syn);
    check_refusals(&syn);
    model_free(&syn);

    Model st;
    if (stories_open(&st, NULL) == 0) {
        check_model("stories260K", &st, 200);
        check_greedy("stories260K", &st, 1, 120);
        model_free(&st);
    } else
        SKIP("stories260K not found (make data)");

    static const char *const fam[] = {"falcon7b_f32", "falcon40b_f32", "qwen2_f32", NULL};
    for (int i = 0; fam[i]; i++) {
        char dir[512];
        qh_pathf(dir, sizeof dir, "tests/fixtures/families/%s", fam[i]);
        Model fm;
        if (model_open(dir, NULL, &fm, NULL) != 0) {
            CHECK(0, "%s: not opened", dir);
            continue;
        }
        int T = fm.cfg.seq_len < 40 ? fm.cfg.seq_len : 40;
        check_model(fam[i], &fm, T);
        model_free(&fm);
    }
    rmdir(cap_dir);
    return test_summary();
}
