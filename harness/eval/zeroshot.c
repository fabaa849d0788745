/* zeroshot.c: reading a task's JSON Lines file into items, lm-eval's request
 * encoding and log-likelihood, the per-item predictions and the task's
 * metrics (see zeroshot.h for the rules and where each comes from). */
#include "zeroshot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"

const char *zs_data_dir(const char *dir) {
    if (dir && *dir) return dir;
    const char *e = getenv("ZEROSHOT_DATA");
    return e && *e ? e : NULL;
}

static void item_free(ZsItem *it) {
    for (int i = 0; i < it->nchoices; i++) {
        free(it->context[i]);
        free(it->cont[i]);
    }
    free(it->context);
    free(it->cont);
    free(it->chars);
    memset(it, 0, sizeof *it);
}

void zs_data_free(ZsData *d) {
    for (long i = 0; i < d->n; i++) item_free(&d->items[i]);
    free(d->items);
    free(d->path);
    memset(d, 0, sizeof *d);
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int zs_data_parse(const ZsTask *t, const char *text, size_t len, const char *path, long limit, ZsData *d) {
    memset(d, 0, sizeof *d);
    d->task = t;
    d->path = qh_strdup(path);
    sha256_buf(text, len, d->sha256);
    long cap = 0, line = 0;
    int rc = 0;
    for (size_t p = 0; p < len && rc == 0;) {
        const char *nl = memchr(text + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - text) : len;
        line++;
        if (!blank(text + p, e - p)) {
            json_error_t err;
            json_t *row = json_loadb(text + p, e - p, 0, &err);
            if (!row) rc = qh_error("%s:%ld: not a JSON object: %s (column %d)", path, line, err.text, err.column);
            else if (!json_is_object(row)) rc = qh_error("%s:%ld: not a JSON object (a %s row is an object with %s)",
                                                         path, line, t->name, t->fields);
            ZsItem it = {0};
            if (rc == 0) rc = t->build(row, path, line, &it);
            json_decref(row);
            if (rc == 0) {
                d->nlines++;
                it.line = line;
                if (limit <= 0 || d->n < limit) {
                    if (d->n == cap) d->items = qh_realloc(d->items, sizeof(ZsItem) * (size_t)(cap = cap ? 2 * cap : 64));
                    d->items[d->n++] = it;
                } else {
                    item_free(&it);
                }
            }
        }
        p = e + 1;
    }
    if (rc == 0 && d->n == 0) rc = qh_error("%s: no items (the %s file holds one JSON object per line: %s)", path, t->name, t->fields);
    if (rc != 0) zs_data_free(d);
    return rc;
}

int zs_data_load(const ZsTask *t, const char *dir, long limit, ZsData *d) {
    memset(d, 0, sizeof *d);
    const char *root = zs_data_dir(dir);
    if (!root)
        return qh_error("zero-shot task %s: no data folder: set ZEROSHOT_DATA (or --zeroshot-data DIR) to a folder "
                        "holding %s (README: \"Zero-shot tasks\")", t->name, t->file);
    char path[4096];
    qh_pathf(path, sizeof path, "%s/%s", root, t->file);
    char *text;
    size_t len;
    struct stat st;
    int fd = qh_open_regular(path, "zero-shot task file", &st);
    if (fd < 0) return -1;
    close(fd);
    if (qh_read_file(path, &text, &len) != 0) return -1;
    int rc = zs_data_parse(t, text, len, path, limit, d);
    free(text);
    return rc;
}

int zs_encode_pair(const Tokenizer *tok, const char *context, const char *cont, int max_len, ZsTokens *out) {
    memset(out, 0, sizeof *out);
    size_t lc = strlen(context), lk = strlen(cont);
    if (lc == 0) return qh_error("zero-shot request with an empty context");
    /* _encode_pair: the context's trailing whitespace goes to the front of the continuation */
    size_t keep = zs_rstrip_len(context, lc);
    if (keep == 0) return qh_error("zero-shot request whose context is only whitespace");
    char *whole = qh_malloc(lc + lk + 1);
    memcpy(whole, context, lc);
    memcpy(whole + lc, cont, lk + 1);
    int *ctx = NULL, *all = NULL;
    size_t nc = 0, na = 0;
    int rc = tokenizer_encode(tok, context, keep, 1, 0, &ctx, &nc);
    if (rc == 0) rc = tokenizer_encode(tok, whole, lc + lk, 1, 0, &all, &na);
    free(whole);
    free(ctx);
    if (rc != 0) return free(all), -1;
    if (na <= nc) {
        free(all);
        return qh_error("zero-shot request: the continuation '%s' adds no tokens to its context's %zu", cont, nc);
    }
    if ((long)(na - nc) > max_len) {
        free(all);
        return qh_error("zero-shot request: the continuation has %zu tokens, more than the window %d", na - nc, max_len);
    }
    out->ids = all; /* ctx tokens = encode(context); continuation = encode(context + cont)[len(ctx):] */
    out->n = (int)na;
    out->ncont = (int)(na - nc);
    return 0;
}

int zs_loglik(Forward *f, const ZsTokens *r, int max_len, double *ll) {
    if (max_len > f->max_T) return qh_error("zero-shot window %d exceeds the backend window %d", max_len, f->max_T);
    if (r->ncont < 1 || r->ncont > max_len || r->ncont >= r->n)
        return qh_error("zero-shot request of %d tokens with a continuation of %d", r->n, r->ncont);
    /* lm-eval runs (ctx + cont)[-(L + 1):][:-1], whose last ncont positions predict the continuation. The
     * last token changes no earlier position (causal attention), so it is run too when the backend's window
     * holds it: then the numbers are window_nll's of the sequence bit for bit (body + head_nll). */
    const int *s = r->ids;
    int n = r->n;
    if (n > max_len + 1) s += n - (max_len + 1), n = max_len + 1;
    int T = n <= f->max_T ? n : n - 1, D = f->model->cfg.dim;
    float *x = qh_malloc(sizeof(float) * (size_t)T * D);     /* (T, D) the final residual stream */
    double *nll = qh_malloc(sizeof(double) * (size_t)n);    /* (n - 1) -ln p(s[t + 1] | s[..t]) */
    int rc = f->ops->body(f, s, T, x);
    /* head_nll of the n tokens reads x[0 .. n - 2] and the targets s[1 .. n - 1] */
    if (rc == 0) rc = f->ops->head_nll(f, x, s, n, nll);
    double sum = 0;
    for (int t = n - 1 - r->ncont; rc == 0 && t < n - 1; t++) sum -= nll[t];
    free(x);
    free(nll);
    *ll = sum;
    return rc;
}

int zs_pred(const double *ll, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (ll[i] > ll[b]) b = i;
    return b;
}

int zs_pred_norm(const double *ll, const long *chars, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (ll[i] / (double)chars[i] > ll[b] / (double)chars[b]) b = i;
    return b;
}

void zs_mean_stderr(const double *x, long n, double *mean, double *se) {
    double s = 0, ss = 0;
    for (long i = 0; i < n; i++) s += x[i];
    double m = n > 0 ? s / (double)n : NAN;
    for (long i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *se = n > 1 ? sqrt(ss / (double)(n - 1)) / sqrt((double)n) : NAN;
}

void zs_result_free(ZsResult *r) {
    free(r->path);
    free(r->ll);
    free(r->pred);
    free(r->pred_norm);
    free(r->gold);
    free(r->line);
    memset(r, 0, sizeof *r);
}

int zs_evaluate(Forward *f, const Tokenizer *tok, const ZsData *d, int max_len, ZsResult *r) {
    memset(r, 0, sizeof *r);
    if (max_len < 2 || max_len > f->max_T)
        return qh_error("zero-shot window %d: must be 2 .. the backend window %d", max_len, f->max_T);
    long nreq = 0;
    for (long i = 0; i < d->n; i++) nreq += d->items[i].nchoices;
    ZsTokens *req = qh_calloc((size_t)nreq, sizeof(ZsTokens));
    int rc = 0;
    long k = 0;
    for (long i = 0; i < d->n && rc == 0; i++)
        for (int c = 0; c < d->items[i].nchoices && rc == 0; c++, k++) {
            rc = zs_encode_pair(tok, d->items[i].context[c], d->items[i].cont[c], max_len, &req[k]);
            if (rc != 0) qh_error("%s:%ld: choice %d of the %s item", d->path, d->items[i].line, c, d->task->name);
            else if (req[k].n > max_len + 1) r->truncated++;
        }
    r->task = d->task;
    r->path = qh_strdup(d->path);
    memcpy(r->sha256, d->sha256, sizeof r->sha256);
    r->n = d->n;
    r->nrequests = nreq;
    r->max_len = max_len;
    r->ll = qh_calloc((size_t)nreq, sizeof(double));
    r->pred = qh_calloc((size_t)d->n, sizeof(int));
    r->pred_norm = qh_calloc((size_t)d->n, sizeof(int));
    r->gold = qh_calloc((size_t)d->n, sizeof(int));
    r->line = qh_calloc((size_t)d->n, sizeof(long));
    double *acc = qh_calloc((size_t)d->n, sizeof(double)), *accn = qh_calloc((size_t)d->n, sizeof(double));
    double t0 = qh_now(), sum_acc = 0, sum_accn = 0; /* running sums: the progress line */
    k = 0;
    for (long i = 0; i < d->n && rc == 0; i++) {
        const ZsItem *it = &d->items[i];
        double *ll = r->ll + k;
        for (int c = 0; c < it->nchoices && rc == 0; c++, k++) {
            rc = zs_loglik(f, &req[k], max_len, &ll[c]);
            if (rc == 0 && !isfinite(ll[c])) /* never an argmax over NaN: a failed evaluation */
                rc = qh_error("%s:%ld: choice %d of the %s item: log-likelihood %s (a NaN or infinite weight or "
                              "activation in the forward pass)", d->path, it->line, c, d->task->name,
                              isnan(ll[c]) ? "nan" : "inf");
        }
        if (rc != 0) break;
        r->pred[i] = zs_pred(ll, it->nchoices);
        r->pred_norm[i] = zs_pred_norm(ll, it->chars, it->nchoices);
        r->gold[i] = it->gold;
        r->line[i] = it->line;
        acc[i] = r->pred[i] == it->gold;
        accn[i] = r->pred_norm[i] == it->gold;
        sum_acc += acc[i];
        sum_accn += accn[i];
        if (qh_progress_enabled()) {
            char norm[32] = "";
            if (d->task->has_acc_norm) snprintf(norm, sizeof norm, "  acc_norm %.4f", sum_accn / (i + 1));
            qh_progress("  %s item %ld/%ld  acc %.4f%s  (%.1f items/s)", d->task->name, i + 1, d->n,
                        sum_acc / (i + 1), norm, (double)(i + 1) / (qh_now() - t0));
        }
    }
    r->seconds = qh_now() - t0;
    for (long j = 0; j < nreq; j++) free(req[j].ids);
    free(req);
    if (rc == 0) {
        zs_mean_stderr(acc, d->n, &r->acc, &r->acc_stderr);
        zs_mean_stderr(accn, d->n, &r->acc_norm, &r->acc_norm_stderr);
        if (!d->task->has_acc_norm) r->acc_norm = r->acc_norm_stderr = NAN;
    }
    free(acc);
    free(accn);
    if (rc != 0) zs_result_free(r);
    return rc;
}

static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *zs_result_json(const ZsResult *r) {
    json_t *o = json_object();
    json_object_set_new(o, "task", json_string(r->task->name));
    json_object_set_new(o, "n", json_integer(r->n));
    json_object_set_new(o, "acc", real_or_null(r->acc));
    json_object_set_new(o, "acc_stderr", real_or_null(r->acc_stderr));
    json_object_set_new(o, "acc_norm", real_or_null(r->acc_norm));
    json_object_set_new(o, "acc_norm_stderr", real_or_null(r->acc_norm_stderr));
    json_object_set_new(o, "requests", json_integer(r->nrequests));
    json_object_set_new(o, "truncated", json_integer(r->truncated));
    json_object_set_new(o, "max_len", json_integer(r->max_len));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "file", json_string(r->path));
    json_object_set_new(o, "sha256", json_string(r->sha256));
    return o;
}
