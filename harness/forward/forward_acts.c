/* forward_acts.c: the host implementation of the calibration-activation
 * entries of forward.h (acts_*): nbuf buffers of N windows (T, D) in host
 * memory, each window moved through the backend's embed / block entries.
 * The CPU backend uses it as is; the CUDA backend when its device memory
 * cannot hold the buffers. The squared-difference sum is sqdiff_ref's. Also
 * the shape and index checks every implementation shares, and the device
 * reserve of a quantizer beside the activations. */
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "forward_math.h"
#include "util.h"

int forward_acts_shape_check(const Forward *f, int nbuf, long N, int T) {
    if (nbuf < 1 || N < 1 || T < 1 || T > f->max_T)
        return qh_error("%s backend: calibration activations of %d buffers of %ld windows of %d tokens (it holds "
                        "windows of up to %d)", f->ops->name, nbuf, N, T, f->max_T);
    return 0;
}

int forward_acts_index_check(const Forward *f, int buf, long s, const char *what) {
    if (f->acts.nbuf == 0) return qh_error("%s: no calibration activations (acts_create first)", what);
    if (buf < 0 || buf >= f->acts.nbuf || s < 0 || s >= f->acts.N)
        return qh_error("%s: buffer %d window %ld outside %d x %ld", what, buf, s, f->acts.nbuf, f->acts.N);
    return 0;
}

size_t forward_acts_offset(const Forward *f, int buf, long s) {
    return ((size_t)buf * f->acts.N + (size_t)s) * f->acts.T * f->model->cfg.dim;
}

static float *window(Forward *f, int buf, long s) { return f->host_acts + forward_acts_offset(f, buf, s); }

size_t forward_quant_device_reserve(const ModelConfig *c) {
    size_t wide = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    return ((size_t)2 << 30) + 24 * wide * wide;
}

int forward_host_acts_create(Forward *f, int nbuf, long N, int T, int flags) {
    forward_host_acts_destroy(f);
    if (forward_acts_shape_check(f, nbuf, N, T) != 0) return -1;
    if (flags & ACTS_DEVICE_ONLY) return 0; /* host memory: nowhere */
    f->host_acts = qh_malloc(sizeof(float) * (size_t)nbuf * N * T * f->model->cfg.dim);
    f->acts = (ActsShape){nbuf, T, N};
    return 0;
}

void forward_host_acts_destroy(Forward *f) {
    if (!f->host_acts) return;
    QH_FREE(f->host_acts);
    f->acts = (ActsShape){0, 0, 0};
}

int forward_host_acts_embed(Forward *f, int buf, long s, const int *tokens) {
    if (forward_acts_index_check(f, buf, s, "acts_embed")) return -1;
    return f->ops->embed(f, tokens, f->acts.T, window(f, buf, s));
}

int forward_host_acts_copy(Forward *f, int dst, int src, long s) {
    if (forward_acts_index_check(f, dst, s, "acts_copy") || forward_acts_index_check(f, src, s, "acts_copy")) return -1;
    size_t n = (size_t)f->acts.T * f->model->cfg.dim, chunk = 1 << 18;
    float *d = window(f, dst, s);
    const float *x = window(f, src, s);
#pragma omp parallel for schedule(static) if (n >= QH_PAR_MIN_WORK) /* a window is tens of MB on large models */
    for (size_t i = 0; i < n; i += chunk) memcpy(d + i, x + i, sizeof(float) * (n - i < chunk ? n - i : chunk));
    return 0;
}

int forward_host_acts_block(Forward *f, int layer, int buf, long s, LinearInputHook hook, void *user) {
    if (forward_acts_index_check(f, buf, s, "acts_block")) return -1;
    return f->ops->block(f, layer, window(f, buf, s), f->acts.T, hook, user);
}

int forward_host_acts_read(Forward *f, int buf, long s, float *x) {
    if (forward_acts_index_check(f, buf, s, "acts_read")) return -1;
    memcpy(x, window(f, buf, s), sizeof(float) * (size_t)f->acts.T * f->model->cfg.dim);
    return 0;
}

int forward_host_acts_sqdiff(Forward *f, int a, int b, long s, double *num, double *den) {
    if (forward_acts_index_check(f, a, s, "acts_sqdiff") || forward_acts_index_check(f, b, s, "acts_sqdiff")) return -1;
    sqdiff_ref(window(f, a, s), window(f, b, s), (long)f->acts.T * f->model->cfg.dim, num, den);
    return 0;
}
