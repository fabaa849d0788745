/* test_gpu_decode.c: incremental decode of the CUDA backend (decode_reset /
 * decode, launch_attention_cached, packed linears in device memory) against
 * the CPU backend and against the CUDA backend's own full-window last_logits.
 * Skips without a GPU.
 *
 * 1. For a synthetic GQA model (H 6, Hkv 2), stories260K (QH_DATA) and the
 *    Falcon-40B fixture (grouped fused QKV, biases): a prefill, then one
 *    token at a time, chunked prefill (max_T 8) too;
 *    - fp32 mode: every step's logits within 1e-4 of the row's largest
 *      logit of the CPU backend's decode (the CUDA backend's fp32 matches
 *      the CPU to ~1e-6 relative, test_gpu_forward; 1e-4 leaves margin for
 *      the other summation order of the attention kernel);
 *    - fp16 / bf16 modes: every step within 3e-3 / 2e-2 (about 6u of the
 *      type, u = 2^-11 / 2^-8) of the same mode's last_logits on the whole
 *      sequence: both read the same 16-bit weights, the full window's
 *      attention runs its GEMMs in TF32 (u 2^-11), the decode's kernel in
 *      fp32, so they part by the attention rounding only.
 * 2. Greedy generation on stories260K, 100 steps, CUDA fp32 with the cache
 *    equal to the CPU with the cache, token for token (the first differing
 *    step and its two top logits are printed if they part).
 * 3. A device PackedLinear double (copies X to the host, multiplies in
 *    double, copies Y back, on the backend's stream) set for every linear:
 *    decode logits within 1e-4 of the dense CUDA decode; a host PackedLinear
 *    refused by name; a cache longer than the context refused.
 * Not here: the CPU decode against full windows (tests/test_decode.c), the
 * quantized kernels (kernels/). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_compare.h"
#include "forward.h"
#include "model.h"
#include "model_open.h"
#include "stories_fixture.h"
#include "util.h"

#ifdef QH_HAVE_CUDA
#include <cuda_runtime.h>

int forward_cuda_create(const Model *m, int max_T, Forward **out);

static uint64_t rng_state = 0xdec0de5ull;
static uint64_t rng_next(void) { return splitmix64_next(&rng_state); }

/* Decode tokens (T) on `dec` (prefill np, then steps) and compare each step
 * with `ref`: its decode (ref_decode 1) or its last_logits of the sequence so far. */
static double decode_against(Forward *dec, Forward *ref, int ref_decode, const int *tokens, int T, int np, int *fails) {
    int V = dec->model->cfg.vocab_size;
    float *a = qh_malloc(sizeof(float) * V), *b = qh_malloc(sizeof(float) * V);
    double worst = 0;
    if (dec->ops->decode_reset(dec, T) != 0 || (ref_decode && ref->ops->decode_reset(ref, T) != 0)) (*fails)++;
    for (int pos = np; pos <= T && !*fails; pos++) {
        int n = pos == np ? np : 1;
        int rc = dec->ops->decode(dec, tokens + pos - n, n, a);
        if (rc == 0) rc = ref_decode ? ref->ops->decode(ref, tokens + pos - n, n, b) : ref->ops->last_logits(ref, tokens, pos, b);
        if (rc != 0) {
            (*fails)++;
            break;
        }
        double d = logits_row_dev(a, b, V);
        if (d > worst) worst = d;
    }
    free(a);
    free(b);
    return worst;
}

static void check_model(const char *what, const Model *m, int T) {
    int *tok = qh_malloc(sizeof(int) * T);
    for (int i = 0; i < T; i++) tok[i] = (int)(rng_next() % (uint64_t)m->cfg.vocab_size);
    static const char *modes[] = {"fp32", "fp16", "bf16"};
    static const double tol[] = {1e-4, 3e-3, 2e-2};
    for (int md = 0; md < 3; md++) {
        setenv("QH_CUDA_MATH", modes[md], 1);
        for (int chunked = 0; chunked < 2; chunked++) {
            Forward *g = NULL, *ref = NULL;
            int fails = 0;
            if (forward_cuda_create(m, chunked ? 8 : T, &g) != 0 ||
                (md == 0 ? forward_cpu_create(m, T, &ref) : forward_cuda_create(m, T, &ref)) != 0) {
                CHECK(0, "%s %s: backends not created", what, modes[md]);
                forward_destroy(&g);
                forward_destroy(&ref);
                continue;
            }
            int np = chunked ? T - 4 : T / 3 + 1;
            double w = decode_against(g, ref, md == 0, tok, T, np, &fails);
            CHECK(fails == 0 && w <= tol[md], "%s %s%s: decode off %s by %.3g of the row scale (bound %.3g)%s", what,
                  modes[md], chunked ? " chunked" : "", md == 0 ? "the CPU decode" : "the same mode's last_logits", w,
                  tol[md], fails ? ", a call failed" : "");
            printf("%-28s %s%-8s prefill %3d: worst %.3g (bound %.3g)\n", what, modes[md], chunked ? " chunked" : "", np, w,
                   tol[md]);
            forward_destroy(&g);
            forward_destroy(&ref);
        }
    }
    unsetenv("QH_CUDA_MATH");
    free(tok);
}

static void check_greedy(const Model *m, int steps) {
    Forward *g = NULL, *c = NULL;
    if (forward_cuda_create(m, 64, &g) != 0 || forward_cpu_create(m, 64, &c) != 0) {
        CHECK(0, "greedy: backends");
        forward_destroy(&g);
        forward_destroy(&c);
        return;
    }
    int start = 1, *a = qh_malloc(sizeof(int) * (steps + 1)), *b = qh_malloc(sizeof(int) * (steps + 1));
    int na = forward_greedy(g, &start, 1, steps, 1, a, NULL, NULL), nb = forward_greedy(c, &start, 1, steps, 1, b, NULL, NULL);
    int first = -1;
    for (int i = 0; i <= steps && first < 0; i++)
        if (a[i] != b[i]) first = i;
    CHECK(na == steps && nb == steps && first < 0, "greedy CUDA vs CPU with the cache: %d / %d steps, first difference at %d",
          na, nb, first);
    printf("greedy stories260K %d steps: CUDA and CPU %s\n", steps, first < 0 ? "equal" : "part");
    free(a);
    free(b);
    forward_destroy(&g);
    forward_destroy(&c);
}

/* ---- a device PackedLinear double ------------------------------------------ */

typedef struct DevDense {
    PackedLinear base;
    const float *W; /* (m, n) host, borrowed */
} DevDense;

static int devdense_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    const DevDense *d = (const DevDense *)p;
    cudaStream_t st = (cudaStream_t)stream;
    float *x = qh_malloc(sizeof(float) * (size_t)nb * p->n), *y = qh_malloc(sizeof(float) * (size_t)nb * p->m);
    int rc = cudaMemcpyAsync(x, X, sizeof(float) * (size_t)nb * p->n, cudaMemcpyDeviceToHost, st) != cudaSuccess ||
             cudaStreamSynchronize(st) != cudaSuccess;
    for (int b = 0; b < nb && !rc; b++)
        for (int r = 0; r < p->m; r++) {
            double acc = 0;
            for (int c = 0; c < p->n; c++) acc += (double)d->W[(size_t)r * p->n + c] * x[(size_t)b * p->n + c];
            y[(size_t)b * p->m + r] = (float)acc;
        }
    if (!rc)
        rc = cudaMemcpyAsync(Y, y, sizeof(float) * (size_t)nb * p->m, cudaMemcpyHostToDevice, st) != cudaSuccess ||
             cudaStreamSynchronize(st) != cudaSuccess;
    free(x);
    free(y);
    return rc ? qh_error("devdense: a copy failed") : 0;
}
static void devdense_destroy(PackedLinear *p) { free(p); }
static const PackedLinearOps devdense_ops = {"dense-device-double", devdense_matmul, devdense_destroy};

static void check_packed(const Model *m) {
    const ModelConfig *c = &m->cfg;
    int L = c->n_layers, nl = model_n_linears(c), T = 30, fails = 0;
    int *tok = qh_malloc(sizeof(int) * T);
    for (int i = 0; i < T; i++) tok[i] = (int)(rng_next() % (uint64_t)c->vocab_size);
    Forward *g = NULL, *dense = NULL;
    forward_cuda_create(m, T, &g);
    forward_cuda_create(m, T, &dense);
    DevDense *pk = qh_calloc((size_t)L * LIN_COUNT, sizeof *pk);
    int ok = 1;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < nl; k++) {
            DevDense *d = &pk[l * LIN_COUNT + k];
            int out, in;
            model_linear_shape(c, (LinearKind)k, &out, &in);
            d->base = (PackedLinear){&devdense_ops, out, in, PACKED_DEVICE, 0};
            d->W = m->w.blocks[l].lin[k];
            ok &= forward_set_packed(g, l, (LinearKind)k, &d->base) == 0;
        }
    CHECK(ok, "forward_set_packed refused a device linear on the CUDA backend");
    double w = decode_against(g, dense, 1, tok, T, 9, &fails);
    CHECK(fails == 0 && w <= 1e-4, "device packed double vs dense CUDA decode: %.3g", w);
    printf("device packed double: decode off the dense CUDA decode by %.3g\n", w);
    PackedLinear host = pk[0].base;
    host.where = PACKED_HOST;
    CHECK(forward_set_packed(g, 0, (LinearKind)0, &host) == -1, "a host packed linear is refused by the CUDA backend");
    CHECK(g->ops->decode_reset(g, c->seq_len + 1) == -1, "a cache longer than the context is refused");
    forward_destroy(&g);
    forward_destroy(&dense);
    free(pk);
    free(tok);
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): CUDA decode tests not run");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    ModelConfig c = decode_gqa_config();
    Model syn;
    if (model_synth(&syn, &c, 11) == 0) {
        check_model("synthetic GQA", &syn, 60);
        check_packed(&syn);
        model_free(&syn);
    } else
        CHECK(0, "model_synth");
    Model st;
    if (stories_open(&st, NULL) == 0) {
        check_model("stories260K", &st, 300);
        check_greedy(&st, 100);
        model_free(&st);
    } else
        SKIP("stories260K not found (set QH_DATA)");
    Model fm;
    if (model_open("tests/fixtures/families/falcon40b_f32", NULL, &fm, NULL) == 0) {
        check_model("falcon40b_f32", &fm, fm.cfg.seq_len < 40 ? fm.cfg.seq_len : 40);
        model_free(&fm);
    } else
        CHECK(0, "falcon40b_f32 fixture not opened");
#endif
    return test_summary();
}
