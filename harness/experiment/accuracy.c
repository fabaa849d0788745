/* accuracy.c: Pareto fronts, interpolation at equal accuracy, targets and
 * published values (see accuracy.h). Interpolation: between front points
 * (b0, p0) and (b1, p1), p0 > p1, ln p is linear in b:
 *   ln p(b) = ln p0 + (b - b0) / (b1 - b0) * (ln p1 - ln p0),
 * so the bits at which p(b) = t are b0 + (ln t - ln p0) / (ln p1 - ln p0) * (b1 - b0). */
#include "accuracy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"
#include "util.h"

const char *const acc_status_names[3] = {"interpolated", "at the fewest bits measured", "not reached"};

static int cmp_bits(const void *a, const void *b) {
    const BitsPpl *x = a, *y = b;
    if (x->bits != y->bits) return x->bits < y->bits ? -1 : 1;
    return (x->ppl > y->ppl) - (x->ppl < y->ppl);
}

int acc_front(BitsPpl *pts, int n) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(pts[i].ppl) && isfinite(pts[i].bits)) pts[k++] = pts[i];
    qsort(pts, (size_t)k, sizeof(BitsPpl), cmp_bits);
    int m = 0;
    for (int i = 0; i < k; i++)
        if (m == 0 || pts[i].ppl < pts[m - 1].ppl) pts[m++] = pts[i];
    return m;
}

double acc_bits_at_ppl(const BitsPpl *f, int n, double target, AccStatus *st) {
    for (int i = 0; i < n; i++) {
        if (!(f[i].ppl <= target)) continue;
        if (i == 0) {
            *st = ACC_AT_FEWEST;
            return f[0].bits;
        }
        *st = ACC_INTERPOLATED;
        if (f[i].ppl == target) return f[i].bits;
        double l0 = log(f[i - 1].ppl), l1 = log(f[i].ppl);
        return f[i - 1].bits + (log(target) - l0) / (l1 - l0) * (f[i].bits - f[i - 1].bits);
    }
    *st = ACC_NOT_REACHED;
    return NAN;
}

double acc_ppl_at_bits(const BitsPpl *f, int n, double bits) {
    if (n < 1 || !(bits >= f[0].bits) || !(bits <= f[n - 1].bits)) return NAN;
    for (int i = 0; i < n; i++) {
        if (bits == f[i].bits) return f[i].ppl;
        if (i + 1 < n && bits < f[i + 1].bits) {
            double u = (bits - f[i].bits) / (f[i + 1].bits - f[i].bits);
            return exp(log(f[i].ppl) + u * (log(f[i + 1].ppl) - log(f[i].ppl)));
        }
    }
    return NAN;
}

/* "+X%" -> X / 100; 0 or -1 */
static int parse_rel(const char *s, double *out) {
    size_t l = strlen(s);
    if (l < 3 || s[0] != '+' || s[l - 1] != '%') return -1;
    char num[64];
    if (l - 2 >= sizeof num) return -1;
    memcpy(num, s + 1, l - 2);
    num[l - 2] = 0;
    double v;
    if (qh_parse_double(num, &v) != 0 || !isfinite(v) || v < 0) return -1;
    *out = v / 100;
    return 0;
}

int acc_target_parse(const char *s, AccTarget *t, char *why, size_t n) {
    memset(t, 0, sizeof *t);
    const char *colon = strrchr(s, ':'), *val = s;
    if (colon) {
        size_t dl = (size_t)(colon - s);
        if (dl == 0 || dl >= sizeof t->dataset) {
            snprintf(why, n, "'%s': expected DATASET:VALUE with a dataset name before the colon", s);
            return -1;
        }
        memcpy(t->dataset, s, dl);
        t->dataset[dl] = 0;
        val = colon + 1;
    }
    if (parse_rel(val, &t->value) == 0) {
        t->relative = 1;
        return 0;
    }
    if (qh_parse_double(val, &t->value) != 0 || !isfinite(t->value) || t->value <= 0) {
        snprintf(why, n, "'%s' is not a target (expected +X%% above full precision, e.g. +1%%, or DATASET:PPL, e.g. "
                 "wikitext2:5.88)", s);
        return -1;
    }
    if (!colon) {
        snprintf(why, n, "'%s': an absolute perplexity needs its dataset (e.g. wikitext2:%s)", s, s);
        return -1;
    }
    return 0;
}

void acc_target_text(const AccTarget *t, char *buf, size_t n) {
    if (t->relative) snprintf(buf, n, "%s%s+%g%%", t->dataset, *t->dataset ? ":" : "", 100 * t->value);
    else snprintf(buf, n, "%s:%g", t->dataset, t->value);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) s[--l] = 0;
    return s;
}

static int positive(const char *key, const char *v, double *out, char *why, size_t n) {
    if (qh_parse_double(v, out) != 0 || !isfinite(*out) || *out <= 0) {
        snprintf(why, n, "%s = '%s' is not a positive number", key, v);
        return -1;
    }
    return 0;
}

int paper_parse(const char *name, const char *value, PaperValue *p, char *why, size_t n,
                int (*check_dataset)(const char *v, char *why, size_t n)) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->at = NAN;
    p->value = NAN;
    char *buf = qh_strdup(value);
    int rc = -1, have_ppl = 0, have_bits = 0;
    double at_bits = NAN, at_ppl = NAN;
    /* source= takes the rest of the line, commas included */
    char *src = strstr(buf, "source=");
    while (src && src != buf && src[-1] != ',' && src[-1] != ' ' && src[-1] != '\t') src = strstr(src + 1, "source=");
    if (!src) {
        snprintf(why, n, "no source= (expected the publication, last: ..., source=GPTQ README, LLaMA table)");
        goto out;
    }
    snprintf(p->source, sizeof p->source, "%s", trim(src + 7));
    if (!p->source[0]) {
        snprintf(why, n, "empty source=");
        goto out;
    }
    *src = 0;
    char *save = NULL;
    for (char *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
        char *item = trim(it);
        if (!*item) continue;
        char *eq = strchr(item, '=');
        if (!eq) {
            snprintf(why, n, "'%s' is not key=value", item);
            goto out;
        }
        *eq = 0;
        char *k = trim(item), *v = trim(eq + 1);
        if (!*v) {
            snprintf(why, n, "%s has no value", k);
            goto out;
        }
        if (!strcmp(k, "method")) {
            if (strcmp(v, "fp16") && (!quant_method_find(v) || strlen(v) >= sizeof p->method)) {
                char names[256];
                quant_method_names(~0u, ", ", names, sizeof names);
                snprintf(why, n, "method = '%s' (expected fp16 (full precision) or a method: %s)", v, names);
                goto out;
            }
            snprintf(p->method, sizeof p->method, "%s", v);
        } else if (!strcmp(k, "dataset")) {
            if (check_dataset && check_dataset(v, why, n) != 0) goto out;
            snprintf(p->dataset, sizeof p->dataset, "%s", v);
        } else if (!strcmp(k, "ppl")) {
            if (positive(k, v, &p->value, why, n) != 0) goto out;
            have_ppl = 1;
        } else if (!strcmp(k, "bits")) {
            if (positive(k, v, &p->value, why, n) != 0) goto out;
            have_bits = 1;
        } else if (!strcmp(k, "at_bits")) {
            if (positive(k, v, &at_bits, why, n) != 0) goto out;
        } else if (!strcmp(k, "at_ppl")) {
            if (positive(k, v, &at_ppl, why, n) != 0) goto out;
        } else {
            if (p->nconds == PAPER_MAX_CONDS) {
                snprintf(why, n, "more than %d settings", PAPER_MAX_CONDS);
                goto out;
            }
            snprintf(p->cond_key[p->nconds], sizeof p->cond_key[0], "%s", k);
            snprintf(p->cond_val[p->nconds], sizeof p->cond_val[0], "%s", v);
            p->cond_num[p->nconds] = NAN;
            p->nconds++;
        }
    }
    if (!p->method[0] || !p->dataset[0]) {
        snprintf(why, n, "method= and dataset= are required");
        goto out;
    }
    if (have_ppl == have_bits) {
        snprintf(why, n, "exactly one of ppl= (a published perplexity) or bits= (published average bits) expected");
        goto out;
    }
    if (have_bits) {
        p->kind = PAPER_BITS;
        if (!isfinite(at_ppl) || p->nconds || isfinite(at_bits)) {
            snprintf(why, n, "bits= needs at_ppl= (the perplexity reached) and no settings or at_bits=");
            goto out;
        }
        p->at = at_ppl;
    } else {
        p->kind = PAPER_PPL;
        if (isfinite(at_ppl)) {
            snprintf(why, n, "at_ppl= goes with bits=, not ppl=");
            goto out;
        }
        if (isfinite(at_bits) && p->nconds) {
            snprintf(why, n, "at_bits= and point settings (%s=...) exclude each other", p->cond_key[0]);
            goto out;
        }
        if (!strcmp(p->method, "fp16") && (p->nconds || isfinite(at_bits))) {
            snprintf(why, n, "method = fp16 (the full-precision evaluation) takes no settings");
            goto out;
        }
        if (strcmp(p->method, "fp16") && !p->nconds && !isfinite(at_bits)) {
            snprintf(why, n, "a quantized perplexity needs its settings (e.g. wbits=4, groupsize=row) or at_bits=");
            goto out;
        }
        p->at = at_bits;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

void paper_setting_text(const PaperValue *p, char *buf, size_t n) {
    buf[0] = 0;
    if (p->kind == PAPER_BITS) {
        snprintf(buf, n, "bits to reach ppl %g", p->at);
        return;
    }
    if (isfinite(p->at)) {
        snprintf(buf, n, "at %g bits", p->at);
        return;
    }
    for (int i = 0; i < p->nconds; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s=%s", i ? " " : "", p->cond_key[i], p->cond_val[i]);
    }
    if (!buf[0]) snprintf(buf, n, "-");
}
