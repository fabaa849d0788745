/* forward_acts.c: the host implementation of the calibration-activation
 * entries of forward.h (acts_*): nbuf buffers of N windows (T, D) in host
 * memory, each window moved through the backend's embed / block entries.
 * The CPU backend uses it as is; the CUDA backend when its device memory
 * cannot hold the buffers. The squared-difference sum is sqdiff_ref's. */
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "forward_math.h"
#include "util.h"

static float *window(Forward *f, int buf, long s) {
    const HostActs *a = f->host_acts;
    return a->buf[buf] + (size_t)s * a->T * f->model->cfg.dim;
}

static int check(Forward *f, int buf, long s, const char *what) {
    const HostActs *a = f->host_acts;
    if (!a) return qh_error("%s: no calibration activations (acts_create first)", what);
    if (buf < 0 || buf >= a->nbuf || s < 0 || s >= a->N)
        return qh_error("%s: buffer %d window %ld outside %d x %ld", what, buf, s, a->nbuf, a->N);
    return 0;
}

int forward_host_acts_create(Forward *f, int nbuf, long N, int T) {
    forward_host_acts_destroy(f);
    if (nbuf < 1 || N < 1 || T < 1 || T > f->max_T)
        return qh_error("calibration activations: %d buffers of %ld windows of %d tokens (backend holds %d)", nbuf, N,
                        T, f->max_T);
    HostActs *a = qh_calloc(1, sizeof *a);
    a->nbuf = nbuf;
    a->N = N;
    a->T = T;
    a->buf = qh_calloc((size_t)nbuf, sizeof(float *));
    for (int b = 0; b < nbuf; b++) a->buf[b] = qh_malloc(sizeof(float) * (size_t)N * T * f->model->cfg.dim);
    f->host_acts = a;
    return 0;
}

void forward_host_acts_destroy(Forward *f) {
    HostActs *a = f->host_acts;
    if (!a) return;
    for (int b = 0; b < a->nbuf; b++) free(a->buf[b]);
    free(a->buf);
    free(a);
    f->host_acts = NULL;
}

int forward_host_acts_embed(Forward *f, int buf, long s, const int *tokens) {
    if (check(f, buf, s, "acts_embed")) return -1;
    return f->ops->embed(f, tokens, f->host_acts->T, window(f, buf, s));
}

int forward_host_acts_copy(Forward *f, int dst, int src, long s) {
    if (check(f, dst, s, "acts_copy") || check(f, src, s, "acts_copy")) return -1;
    size_t n = (size_t)f->host_acts->T * f->model->cfg.dim, chunk = 1 << 18;
    float *d = window(f, dst, s);
    const float *x = window(f, src, s);
#pragma omp parallel for schedule(static) /* a window is tens of MB on large models */
    for (size_t i = 0; i < n; i += chunk) memcpy(d + i, x + i, sizeof(float) * (n - i < chunk ? n - i : chunk));
    return 0;
}

int forward_host_acts_block(Forward *f, int layer, int buf, long s, LinearInputHook hook, void *user) {
    if (check(f, buf, s, "acts_block")) return -1;
    return f->ops->block(f, layer, window(f, buf, s), f->host_acts->T, hook, user);
}

int forward_host_acts_sqdiff(Forward *f, int a, int b, long s, double *num, double *den) {
    if (check(f, a, s, "acts_sqdiff") || check(f, b, s, "acts_sqdiff")) return -1;
    sqdiff_ref(window(f, a, s), window(f, b, s), (long)f->host_acts->T * f->model->cfg.dim, num, den);
    return 0;
}
