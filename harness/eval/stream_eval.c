/* stream_eval.c: block-by-block perplexity under a memory budget (see
 * stream_eval.h). The per-window arithmetic is the CPU backend's own
 * (embed / block / head_nll), applied in the order block-major instead of
 * window-major, so every NLL is bit-identical to perplexity_eval's. */
#define _GNU_SOURCE
#include "stream_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util.h"

size_t qh_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

size_t qh_current_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

size_t stream_eval_fixed_bytes(const ModelConfig *c, int seqlen) {
    size_t D = c->dim, V = c->vocab_size;
    size_t block = sizeof(float) * ((size_t)(model_linear_params(c) / c->n_layers) + 2 * D); /* linears + norms */
    size_t head = 4 * V * D * (c->shared_classifier ? 1 : 2);
    size_t readback = sizeof(float) * (size_t)seqlen * D; /* one window read back for the head */
    return block + head + forward_cpu_scratch_bytes(c, seqlen) + readback;
}

int stream_loader_work_bytes(const StreamLoader *l, const ModelConfig *c, size_t *bytes) {
    *bytes = 0;
    return l && l->work_bytes ? l->work_bytes(l->user, c, bytes) : 0;
}

int stream_eval_check(const Model *m, int seqlen, size_t max_memory, size_t decode_bytes) {
    if (!model_is_streamable(m) || model_has_replaced(m))
        return qh_error("--max-memory: block-by-block evaluation needs a checkpoint read block by block (a llama2.c "
                        "file or a Hugging Face directory) with its original weights (got %s)",
                        model_is_streamable(m) ? "replaced weights" : "an in-memory model");
    if (seqlen < 2) return qh_error("seqlen %d is too short (at least 2)", seqlen);
    size_t need = stream_eval_fixed_bytes(&m->cfg, seqlen) + decode_bytes + sizeof(float) * (size_t)seqlen * m->cfg.dim;
    if (max_memory < need)
        return qh_error("--max-memory %zu MB is below what block-by-block evaluation needs: %zu MB (one block, the "
                        "embedding and head, the forward scratch%s and one window of activations)",
                        max_memory >> 20, (need + (1u << 20) - 1) >> 20, decode_bytes ? ", the block's decoding" : "");
    return 0;
}

int perplexity_eval_streamed(Model *m, const int *ids, size_t n, int seqlen, long max_windows, size_t max_memory,
                             const StreamLoader *loader, PplResult *r) {
    return perplexity_eval_streamed_dev(QH_DEVICE_CPU, 0, m, ids, n, seqlen, max_windows, max_memory, loader, r);
}

int perplexity_eval_streamed_dev(QhDevice dev, size_t max_device, Model *m, const int *ids, size_t n, int seqlen,
                                 long max_windows, size_t max_memory, const StreamLoader *loader, PplResult *r) {
    memset(r, 0, sizeof *r);
    const ModelConfig *c = &m->cfg;
    size_t decode = 0;
    if (stream_loader_work_bytes(loader, c, &decode) != 0 || stream_eval_check(m, seqlen, max_memory, decode) != 0)
        return -1;
    long nwin = (long)(n / (size_t)seqlen);
    if (max_windows > 0 && nwin > max_windows) nwin = max_windows;
    if (nwin < 1) return qh_error("the dataset has %zu tokens, fewer than one window of %d", n, seqlen);
    size_t fixed = stream_eval_fixed_bytes(c, seqlen) + decode, per_window = sizeof(float) * (size_t)seqlen * c->dim;
    long chunk = (long)((max_memory - fixed) / per_window);
    if (chunk > nwin) chunk = nwin;
    Forward *f;
    if (forward_create_opts(dev, m, seqlen, 1, max_device, &f) != 0) return -1;
    /* every window on the device when it holds them (acts_create 1); else chunks of the windows the host
     * budget holds, wherever the backend keeps them: asked "device or nothing" first only when the chunk is
     * smaller (0: nothing made, the CPU backend always), so that all windows are never made on the host */
    const int smaller = chunk < nwin;
    int on_device = f->ops->acts_create(f, 1, nwin, seqlen, smaller ? ACTS_DEVICE_ONLY : 0);
    if (on_device == 1) chunk = nwin;
    else if (on_device < 0 || (smaller && (on_device = f->ops->acts_create(f, 1, chunk, seqlen, 0)) < 0)) {
        forward_destroy(&f);
        return -1;
    }
    r->windows_per_pass = chunk;
    r->acts_on_device = on_device;
    r->ntokens = (long)n;
    r->nwindows = nwin;
    r->seqlen = seqlen;
    r->window_nll = qh_malloc(sizeof(double) * nwin);
    r->nll = qh_malloc(sizeof(double) * nwin * (seqlen - 1));
    float *x = qh_malloc(per_window); /* (seqlen, D): one window read back for the head */
    double t0 = qh_now();
    int rc = 0;
    for (long w0 = 0; w0 < nwin && rc == 0; w0 += chunk) {
        long nw = nwin - w0 < chunk ? nwin - w0 : chunk;
        for (long w = 0; w < nw && rc == 0; w++) rc = f->ops->acts_embed(f, 0, w, ids + (size_t)(w0 + w) * seqlen);
        for (int l = 0; l < c->n_layers && rc == 0; l++) {
            /* the quantized block decoded (all seven linears replaced), or the checkpoint's */
            if ((rc = loader ? loader->load(loader->user, m, l) : model_load_block(m, l)) != 0) break;
            for (int k = 0; k < model_n_linears(c) && rc == 0; k++)
                if (!m->w.blocks[l].lin[k])
                    rc = qh_error("block %d: the loader left %s without weights (it must replace all %d)", l,
                                  model_linear_name(c, (LinearKind)k), model_n_linears(c));
            if (rc == 0) rc = f->ops->weights_changed(f, l); /* on the device now, before the host lets it go */
            for (long w = 0; w < nw && rc == 0; w++) rc = f->ops->acts_block(f, l, 0, w, NULL, NULL);
            model_release_block(m, l);
            qh_progress("  windows %ld-%ld: block %d/%d", w0 + 1, w0 + nw, l + 1, c->n_layers);
        }
        for (long w = 0; w < nw && rc == 0; w++) {
            double *nll = r->nll + (size_t)(w0 + w) * (seqlen - 1);
            rc = f->ops->acts_read(f, 0, w, x);
            if (rc == 0) rc = f->ops->head_nll(f, x, ids + (size_t)(w0 + w) * seqlen, seqlen, nll);
            r->window_nll[w0 + w] = window_mean_nll(nll, seqlen - 1);
        }
    }
    r->seconds = qh_now() - t0;
    forward_stream_stats(f, &r->upload_seconds, NULL);
    free(x);
    forward_destroy(&f);
    if (rc != 0) {
        ppl_result_free(r);
        return -1;
    }
    perplexity_from_windows(r->window_nll, nwin, r);
    return 0;
}
