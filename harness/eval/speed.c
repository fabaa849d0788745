/* speed.c: tokens per second of incremental decode and matrix-vector times
 * (speed.h). */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "speed.h"
#include "util.h"

const char *const speed_setup_names[SPEED_NSETUPS] = {"scratch", "prefix"};

int speed_setups_parse(const char *list, const char *what, unsigned *setups) {
    *setups = 0;
    char *dup = qh_strdup(list ? list : ""), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(dup, ", ", &save); tok && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
        int s = 0;
        while (s < SPEED_NSETUPS && strcmp(tok, speed_setup_names[s]) != 0) s++;
        if (s == SPEED_NSETUPS) rc = qh_error("%s: unknown setup '%s' (expected scratch, prefix)", what, tok);
        else *setups |= 1u << s;
    }
    free(dup);
    if (rc == 0 && !*setups) rc = qh_error("%s: no setup named (expected scratch, prefix or both)", what);
    return rc;
}

int speed_resolve_prefix(const ModelConfig *c, int gen, long want, const char *what, int *prefix, char *note,
                         size_t n) {
    note[0] = '\0';
    if (gen < 1 || gen >= c->seq_len)
        return qh_error("%s: %d generated tokens do not fit the model's context of %d (seq_len)", what, gen, c->seq_len);
    if (want >= 0) {
        if (want + gen > c->seq_len)
            return qh_error("%s: a prefix of %ld tokens and %d generated exceed the model's context of %d (seq_len); "
                            "at most %d", what, want, gen, c->seq_len, c->seq_len - gen);
        *prefix = (int)want;
        return 0;
    }
    *prefix = SPEED_PAPER_PREFIX;
    if (SPEED_PAPER_PREFIX + gen > c->seq_len) {
        *prefix = c->seq_len - gen;
        snprintf(note, n, "the model's context %d less %d generated: the paper's %d does not fit", c->seq_len, gen,
                 SPEED_PAPER_PREFIX);
    }
    return 0;
}

int speed_generation(Forward *f, const SpeedSpec *s, int start_token, SpeedTimes *out) {
    const ModelConfig *c = &f->model->cfg;
    int V = c->vocab_size;
    if (s->repeats < 1 || s->repeats > SPEED_MAX_REPEATS)
        return qh_error("speed: %d repeats (1..%d)", s->repeats, SPEED_MAX_REPEATS);
    int *prompt = qh_malloc(sizeof(int) * ((size_t)s->prefix + 1)); /* (prefix) */
    uint64_t st = 0x5bd1e995u;
    for (int i = 0; i < s->prefix; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int)((st >> 33) % (uint64_t)V);
    }
    float *logits = qh_malloc(sizeof(float) * (size_t)V);
    int rc = 0;
    for (int su = 0; su < SPEED_NSETUPS; su++) {
        out->tok_s[su] = NAN;
        if (!(s->setups & (1u << su))) continue;
        int np = su == SPEED_PREFIX ? s->prefix : 0;
        for (int r = -1; r < s->repeats && rc == 0; r++) { /* r = -1: a warm-up run, not kept */
            rc = f->ops->decode_reset(f, np + s->gen);
            if (rc == 0 && np > 0) rc = f->ops->decode(f, prompt, np, logits);
            int tok = start_token;
            double t0 = qh_now();
            for (int i = 0; i < s->gen && rc == 0; i++) {
                rc = f->ops->decode(f, &tok, 1, logits);
                tok = forward_argmax(logits, V);
            }
            if (r >= 0) out->runs[su][r] = s->gen / (qh_now() - t0);
        }
        if (rc != 0) break;
        out->tok_s[su] = qh_median(out->runs[su], s->repeats);
    }
    free(prompt);
    free(logits);
    return rc;
}

int speed_layer_shapes(const ModelConfig *c, int *out, int *in, int *kind) {
    int n = 0;
    for (int k = 0; k < model_n_linears(c); k++) {
        int o, i, j = 0;
        model_linear_shape(c, (LinearKind)k, &o, &i);
        while (j < n && !(out[j] == o && in[j] == i)) j++;
        if (j < n) continue;
        out[n] = o, in[n] = i, kind[n] = k;
        n++;
    }
    return n;
}

/* y (out) <- W x (in): through p when given, else W (out, in) fp32 by BLAS. */
static int one_matvec(const PackedLinear *p, const float *W, const float *x, float *y, int out, int in) {
    if (p) return p->ops->matmul(p, x, 1, y, NULL);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
    return 0;
}

int speed_matvec_us(const PackedLinear *p, const float *W, int out, int in, int repeats, double *us) {
    if (p && p->where != PACKED_HOST)
        return qh_error("speed: the matrix-vector time of '%s' (device memory) is kernels/bench's", p->ops->name);
    if (repeats < 1) repeats = 1;
    float *x = qh_malloc(sizeof(float) * (size_t)in), *y = qh_malloc(sizeof(float) * (size_t)out);
    for (int i = 0; i < in; i++) x[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    /* each timed sample repeats the product until it takes ~2 ms (small shapes) */
    int nt = p ? 0 : qh_blas_begin(2.0 * out * in); /* the CPU backend's thread choice for this product */
    double t0 = qh_now();
    int inner = 0, rc = 0;
    do {
        rc = one_matvec(p, W, x, y, out, in);
        inner++;
    } while (rc == 0 && qh_now() - t0 < 2e-3 && inner < 100000);
    double *v = qh_malloc(sizeof(double) * (size_t)repeats);
    for (int r = 0; r < repeats && rc == 0; r++) {
        t0 = qh_now();
        for (int i = 0; i < inner && rc == 0; i++) {
            rc = one_matvec(p, W, x, y, out, in);
        }
        v[r] = (qh_now() - t0) / inner * 1e6;
    }
    if (!p) qh_blas_end(nt);
    if (rc == 0) *us = qh_median(v, repeats);
    free(v);
    free(x);
    free(y);
    return rc;
}
