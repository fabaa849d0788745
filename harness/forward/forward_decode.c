/* forward_decode.c: the backend-independent parts of incremental decode and
 * packed linears (forward.h): the checks every backend's decode_reset /
 * decode share, forward_set_packed (shape and memory-space checks, the
 * table in the Forward), and greedy generation with or without the KV cache
 * (the loop `qharness generate` and the tests use; `qharness speed` times
 * its own, which feeds the start token after the prefix). */
#include <stdlib.h>

#include "arch.h"
#include "forward.h"
#include "util.h"

static const char *where_name(int w) { return w == PACKED_DEVICE ? "device" : "host"; }

int forward_set_packed(Forward *f, int layer, LinearKind k, const PackedLinear *p) {
    const ModelConfig *c = &f->model->cfg;
    if (layer < 0 || layer >= c->n_layers)
        return qh_error("forward_set_packed: layer %d is outside 0..%d", layer, c->n_layers - 1);
    if ((int)k < 0 || (int)k >= model_n_linears(c))
        return qh_error("forward_set_packed: linear %d is outside the %d of a %s block", (int)k, model_n_linears(c),
                        arch_of(c)->name);
    if (p) {
        int out, in;
        model_linear_shape(c, k, &out, &in);
        if (p->m != out || p->n != in)
            return qh_error("forward_set_packed: layer %d %s: the packed linear (%s) is %d x %d, the model's is %d x %d",
                            layer, model_linear_name(c, k), p->ops->name, p->m, p->n, out, in);
        if (p->where != f->ops->packed_where)
            return qh_error("forward_set_packed: layer %d %s: the %s backend takes packed linears in %s memory, "
                            "'%s' is in %s memory", layer, model_linear_name(c, k), f->ops->name,
                            where_name(f->ops->packed_where), p->ops->name, where_name(p->where));
    }
    if (!f->packed) {
        if (!p) return 0;
        f->packed = qh_calloc((size_t)c->n_layers * LIN_COUNT, sizeof *f->packed);
    }
    f->packed[layer * LIN_COUNT + k] = p;
    return 0;
}

int forward_decode_reset_check(const Forward *f, int max_len) {
    const ModelConfig *c = &f->model->cfg;
    if (max_len < 1 || max_len > c->seq_len)
        return qh_error("%s backend: a KV cache of %d positions is outside the model's context 1..%d (seq_len)",
                        f->ops->name, max_len, c->seq_len);
    return 0;
}

int forward_decode_check(const Forward *f, const int *tokens, int n) {
    const ModelConfig *c = &f->model->cfg;
    if (f->dec_len < 1) return qh_error("%s backend: decode before decode_reset (no KV cache)", f->ops->name);
    if (n < 1) return qh_error("%s backend: decode of %d tokens (at least 1)", f->ops->name, n);
    if ((long)f->dec_pos + n > f->dec_len)
        return qh_error("%s backend: decoding %d tokens at position %d overflows the KV cache of %d positions",
                        f->ops->name, n, f->dec_pos, f->dec_len);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return qh_error("token id %d at position %d is outside the vocabulary (0..%d)", tokens[t], f->dec_pos + t,
                            c->vocab_size - 1);
    return 0;
}

int forward_argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int forward_greedy(Forward *f, const int *prompt, int np, int steps, int use_cache, int *tokens,
                   GreedyTokenFn on_token, void *user) {
    const ModelConfig *c = &f->model->cfg;
    if (np < 1 || steps < 0) return qh_error("greedy generation: %d prompt tokens and %d steps", np, steps);
    if ((long)np + steps - 1 > c->seq_len)
        return qh_error("greedy generation: %d prompt tokens and %d steps exceed the model's context of %d (seq_len)",
                        np, steps, c->seq_len);
    if (!use_cache && np + steps - 1 > f->max_T)
        return qh_error("greedy generation without the KV cache: %d positions exceed the backend's window of %d",
                        np + steps - 1, f->max_T);
    float *logits = qh_malloc(sizeof(float) * (size_t)c->vocab_size); /* (V) */
    for (int i = 0; i < np; i++) tokens[i] = prompt[i];
    int rc = use_cache ? f->ops->decode_reset(f, np + steps - 1 > 0 ? np + steps - 1 : 1) : 0;
    int n = 0;
    for (; rc == 0 && n < steps; n++) {
        int len = np + n; /* tokens so far */
        if (use_cache) rc = n == 0 ? f->ops->decode(f, tokens, np, logits) : f->ops->decode(f, tokens + len - 1, 1, logits);
        else rc = f->ops->last_logits(f, tokens, len, logits);
        if (rc != 0) break;
        tokens[len] = forward_argmax(logits, c->vocab_size);
        if (on_token && on_token(user, n, tokens[len], logits)) {
            n++;
            break;
        }
    }
    free(logits);
    return rc == 0 ? n : -1;
}
