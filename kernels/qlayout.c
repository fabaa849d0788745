/* qlayout.c: building the kernel-ready layout of a quantized layer from a
 * QuantLayer (the checks that refuse what the layout cannot take, by field),
 * decoding a row's statistics, and permuting the input once per call. The
 * layout itself is described in qlayout.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grid.h"
#include "half.h"
#include "qlayout.h"
#include "util.h"

void qlayout_arrays(QLayout *L, void **ptr[QLAYOUT_NARRAYS], size_t bytes[QLAYOUT_NARRAYS]) {
    const size_t vb = L->val16 ? 2 : 4, cnt = (size_t)L->m * L->ngroups, qcnt = (size_t)L->qq_groups * L->ngroups;
    void **p[QLAYOUT_NARRAYS] = {(void **)&L->words, (void **)&L->perm, &L->stat_codes, &L->scale_val,
                                 &L->zero_val, &L->qs_scale, &L->qs_zero, &L->qz_scale, &L->qz_zero,
                                 (void **)&L->out_rowptr, (void **)&L->out_col, &L->out_val,
                                 (void **)&L->vec_group};
    size_t b[QLAYOUT_NARRAYS] = {(size_t)L->m * L->ntiles * 8 * sizeof(uint32_t), (size_t)L->n * sizeof(int32_t),
                                 cnt * L->code_bytes, cnt * vb, cnt * vb, qcnt * vb, qcnt * vb, qcnt * vb, qcnt * vb,
                                 (size_t)(L->m + 1) * sizeof(uint32_t), (size_t)L->nnz * sizeof(uint16_t),
                                 (size_t)L->nnz * vb, (size_t)L->ntiles * L->K * sizeof(uint16_t)};
    for (int i = 0; i < QLAYOUT_NARRAYS; i++) {
        ptr[i] = p[i];
        bytes[i] = *p[i] ? b[i] : 0;
    }
}

void qlayout_free(QLayout *L) {
    void **ptr[QLAYOUT_NARRAYS];
    size_t bytes[QLAYOUT_NARRAYS];
    qlayout_arrays(L, ptr, bytes);
    for (int i = 0; i < QLAYOUT_NARRAYS; i++) free(*ptr[i]);
    memset(L, 0, sizeof *L);
}

/* count values of a QuantLayer float array into the layout's precision: fp16
 * (each must be an fp16 number already: the file's deployment form) or fp32. */
static void *copy_values(const float *src, size_t count, int val16, const char *field, int *bad) {
    if (!val16) {
        float *d = qh_malloc(count * sizeof *d + 1);
        for (size_t i = 0; i < count; i++) {
            if (!isfinite(src[i]) && !*bad) {
                *bad = 1;
                qh_error("qlayout: %s[%zu] = %g; expected finite values", field, i, (double)src[i]);
            }
            d[i] = src[i];
        }
        return d;
    }
    uint16_t *h = qh_malloc(count * sizeof *h + 1);
    for (size_t i = 0; i < count; i++) {
        h[i] = qh_f32_to_f16(src[i]);
        if ((qh_f16_to_f32(h[i]) != src[i] || !isfinite(src[i])) && !*bad) {
            *bad = 1;
            qh_error("qlayout: %s[%zu] = %.9g is not a finite fp16 number, though stats_dtype is fp16", field, i,
                     (double)src[i]);
        }
    }
    return h;
}

/* The kind of a statistic from the QuantLayer's arrays, or -1 after a message. */
static int stat_kind(const QuantLayer *q, const char *name, const float *val, const uint8_t *codes, int bits,
                     const float *ss, const float *sz) {
    if (val && !codes) return QL_STAT_VALUE;
    if (!codes || val)
        return qh_error("qlayout: %s: expected either %s_fp or %s_codes, got %s", name, name, name,
                        val ? "both" : "neither");
    if (bits < 1 || bits > 8) return qh_error("qlayout: %s_code_bits = %d; expected 1..8", name, bits);
    if (!ss != !sz)
        return qh_error("qlayout: the second level of the %ss has only one of its scale and zero", name);
    if (ss && (q->qq_groupsize < 1 || q->qq_groups != (q->m + q->qq_groupsize - 1) / q->qq_groupsize))
        return qh_error("qlayout: qq_groupsize = %d, qq_groups = %d for m = %d; expected qq_groups = ceil(m / "
                        "qq_groupsize) >= 1", q->qq_groupsize, q->qq_groups, q->m);
    return ss ? QL_STAT_CODED : QL_STAT_INT;
}

static int check_shape(const QuantLayer *q) {
    if (q->m < 1 || q->n < 1) return qh_error("qlayout: m = %d, n = %d; expected a layer of at least 1 x 1", q->m, q->n);
    if (q->n > 65536)
        return qh_error("qlayout: n = %d; the layout keeps outlier columns in 16 bits, so n must be at most 65536", q->n);
    if (q->wbits != 2 && q->wbits != 3 && q->wbits != 4 && q->wbits != 8)
        return qh_error("qlayout: wbits = %d; the kernels take 2, 3, 4 or 8 bits per weight", q->wbits);
    if (q->groupsize < 1 || q->ngroups != (q->n + q->groupsize - 1) / q->groupsize)
        return qh_error("qlayout: groupsize = %d, ngroups = %d for n = %d; expected ngroups = ceil(n / groupsize)",
                        q->groupsize, q->ngroups, q->n);
    if (q->ngroups > 1 && q->groupsize % 8 != 0)
        return qh_error("qlayout: groupsize = %d is not a multiple of 8, the kernels' vector of columns (one group "
                        "per row, or groups of 8, 16, 24, ...)", q->groupsize);
    if (!q->codes) return qh_error("qlayout: codes missing");
    if (q->stats_dtype != QH_STATS_FP32 && q->stats_dtype != QH_STATS_FP16)
        return qh_error("qlayout: stats_dtype = %d; expected fp32 or fp16", (int)q->stats_dtype);
    return 0;
}

/* codes (m, n) permuted order -> words (m, ntiles, 8); 0 or -1 on a code >= 2^wbits */
static int pack_words(const QuantLayer *q, QLayout *L) {
    const int m = L->m, n = L->n, K = L->K, wb = L->wbits;
    L->words = qh_calloc((size_t)m * L->ntiles * 8, sizeof(uint32_t));
    for (int r = 0; r < m; r++) {
        const uint8_t *code = q->codes + (size_t)r * n;
        uint32_t *row = L->words + (size_t)r * L->ntiles * 8;
        for (int c = 0; c < n; c++) {
            if (code[c] >> wb)
                return qh_error("qlayout: codes[%d, %d] = %d; expected < 2^wbits = %d", r, c, code[c], 1 << wb);
            int v = c >> 3, t = v / K, k = v - t * K;
            row[t * 8 + (c & 7)] |= (uint32_t)code[c] << (k * wb);
        }
    }
    return 0;
}

static int pack_stat_codes(const QuantLayer *q, QLayout *L) {
    size_t cnt = (size_t)L->m * L->ngroups;
    const uint8_t *sc = L->scale_kind != QL_STAT_VALUE ? q->scale_codes : NULL;
    const uint8_t *zc = L->zero_kind != QL_STAT_VALUE ? q->zero_codes : NULL;
    if (!sc && !zc) return 0;
    L->code_bytes = L->scale_bits + L->zero_bits <= 8 ? 1 : 2;
    int zshift = L->code_bytes == 1 ? L->scale_bits : 8;
    L->stat_codes = qh_malloc(cnt * L->code_bytes);
    for (size_t i = 0; i < cnt; i++) {
        unsigned s = sc ? sc[i] : 0, z = zc ? zc[i] : 0;
        if (s >> L->scale_bits && sc)
            return qh_error("qlayout: scale_codes[%zu] = %u; expected < 2^scale_code_bits = %d", i, s, 1 << L->scale_bits);
        if (z >> L->zero_bits && zc)
            return qh_error("qlayout: zero_codes[%zu] = %u; expected < 2^zero_code_bits = %d", i, z, 1 << L->zero_bits);
        unsigned w = s | z << zshift;
        if (L->code_bytes == 1)
            ((uint8_t *)L->stat_codes)[i] = (uint8_t)w;
        else
            ((uint16_t *)L->stat_codes)[i] = (uint16_t)w;
    }
    return 0;
}

static int build_outliers(const QuantLayer *q, QLayout *L, const int32_t *inv) {
    const int m = L->m, n = L->n;
    int64_t nnz = q->outlier_rowptr[m];
    if (q->outlier_rowptr[0] != 0 || nnz != q->n_outliers || nnz < 0 || nnz > UINT32_MAX)
        return qh_error("qlayout: outlier_rowptr[0] = %lld, outlier_rowptr[m] = %lld, n_outliers = %lld; expected 0, "
                        "n_outliers, n_outliers < 2^32", (long long)q->outlier_rowptr[0], (long long)nnz,
                        (long long)q->n_outliers);
    if (nnz && (!q->outlier_col || !q->outlier_val))
        return qh_error("qlayout: %lld outliers but outlier_col or outlier_val missing", (long long)nnz);
    L->nnz = nnz;
    L->out_rowptr = qh_malloc((size_t)(m + 1) * sizeof(uint32_t));
    L->out_col = qh_malloc((size_t)nnz * sizeof(uint16_t) + 1);
    int bad = 0;
    L->out_val = copy_values(q->outlier_val ? q->outlier_val : (const float[1]){0}, (size_t)nnz, L->val16,
                             "outlier_val", &bad);
    if (bad) return -1;
    /* per row: the permuted column; sorted (insertion: rows hold few outliers) */
    uint8_t *seen = qh_calloc((size_t)n, 1);
    for (int r = 0; r < m; r++) {
        int64_t a = q->outlier_rowptr[r], b = q->outlier_rowptr[r + 1];
        if (b < a || b > nnz) {
            free(seen);
            return qh_error("qlayout: outlier_rowptr[%d..%d] = %lld, %lld; expected non-decreasing up to n_outliers",
                            r, r + 1, (long long)a, (long long)b);
        }
        L->out_rowptr[r] = (uint32_t)a;
        for (int64_t k = a; k < b; k++) {
            int oc = q->outlier_col[k];
            if (oc >= n || seen[oc]) {
                for (int64_t k2 = a; k2 < k; k2++) seen[q->outlier_col[k2]] = 0;
                free(seen);
                return qh_error("qlayout: outlier_col[%lld] = %d in row %d; expected < n = %d, once per row",
                                (long long)k, oc, r, n);
            }
            seen[oc] = 1;
            uint16_t pc = (uint16_t)inv[oc];
            float v = qlayout_value(L->out_val, (size_t)k, L->val16);
            int64_t i = k;
            for (; i > a && L->out_col[i - 1] > pc; i--) { /* keep (col, value) pairs sorted by permuted column */
                L->out_col[i] = L->out_col[i - 1];
                if (L->val16)
                    ((uint16_t *)L->out_val)[i] = ((uint16_t *)L->out_val)[i - 1];
                else
                    ((float *)L->out_val)[i] = ((float *)L->out_val)[i - 1];
            }
            L->out_col[i] = pc;
            if (L->val16)
                ((uint16_t *)L->out_val)[i] = qh_f32_to_f16(v);
            else
                ((float *)L->out_val)[i] = v;
        }
        for (int64_t k = a; k < b; k++) seen[q->outlier_col[k]] = 0;
    }
    L->out_rowptr[m] = (uint32_t)nnz;
    free(seen);
    return 0;
}

static int build(const QuantLayer *q, QLayout *L) {
    if (check_shape(q) != 0) return -1;
    L->m = q->m, L->n = q->n, L->wbits = q->wbits, L->groupsize = q->groupsize, L->ngroups = q->ngroups;
    L->K = 32 / q->wbits;
    L->tile = 8 * L->K;
    L->ntiles = (q->n + L->tile - 1) / L->tile;
    L->n_pad = L->ntiles * L->tile;
    L->val16 = q->stats_dtype == QH_STATS_FP16;
    const int m = q->m, n = q->n;

    /* permutation: a permutation of 0..n-1, dropped when the identity */
    if (!q->perm) return qh_error("qlayout: perm missing");
    int32_t *inv = qh_malloc((size_t)n * sizeof *inv);
    for (int c = 0; c < n; c++) inv[c] = -1;
    int identity = 1;
    for (int c = 0; c < n; c++) {
        int o = q->perm[c];
        if (o < 0 || o >= n || inv[o] >= 0) {
            free(inv);
            return qh_error("qlayout: perm[%d] = %d; expected a permutation of 0..n-1 (n = %d)", c, o, n);
        }
        inv[o] = c;
        identity &= o == c;
    }
    if (!identity) {
        L->perm = qh_malloc((size_t)n * sizeof(int32_t));
        for (int c = 0; c < n; c++) L->perm[c] = q->perm[c];
    }

    int rc = -1, bad = 0;
    size_t cnt = (size_t)m * q->ngroups, qcnt = (size_t)q->qq_groups * q->ngroups;
    L->scale_kind = stat_kind(q, "scale", q->scale_fp, q->scale_codes, q->scale_code_bits, q->qq_scale_scale,
                              q->qq_scale_zero);
    if (L->scale_kind < 0) goto done;
    L->zero_kind = stat_kind(q, "zero", q->zero_fp, q->zero_codes, q->zero_code_bits, q->qq_zero_scale,
                             q->qq_zero_zero);
    if (L->zero_kind < 0) goto done;
    if (L->scale_kind == QL_STAT_INT) {
        qh_error("qlayout: scale_codes without a second level (qq_scale_scale); a scale is a value or a coded value");
        goto done;
    }
    L->scale_bits = L->scale_kind == QL_STAT_VALUE ? 0 : q->scale_code_bits;
    L->zero_bits = L->zero_kind == QL_STAT_VALUE ? 0 : q->zero_code_bits;
    if (L->scale_kind == QL_STAT_CODED || L->zero_kind == QL_STAT_CODED) {
        L->qq_groupsize = q->qq_groupsize, L->qq_groups = q->qq_groups;
    }
    if (L->scale_kind == QL_STAT_VALUE) L->scale_val = copy_values(q->scale_fp, cnt, L->val16, "scale_fp", &bad);
    if (!bad && L->zero_kind == QL_STAT_VALUE) L->zero_val = copy_values(q->zero_fp, cnt, L->val16, "zero_fp", &bad);
    if (!bad && L->scale_kind == QL_STAT_CODED) {
        L->qs_scale = copy_values(q->qq_scale_scale, qcnt, L->val16, "qq_scale_scale", &bad);
        if (!bad) L->qs_zero = copy_values(q->qq_scale_zero, qcnt, L->val16, "qq_scale_zero", &bad);
    }
    if (!bad && L->zero_kind == QL_STAT_CODED) {
        L->qz_scale = copy_values(q->qq_zero_scale, qcnt, L->val16, "qq_zero_scale", &bad);
        if (!bad) L->qz_zero = copy_values(q->qq_zero_zero, qcnt, L->val16, "qq_zero_zero", &bad);
    }
    if (bad || pack_stat_codes(q, L) != 0 || pack_words(q, L) != 0) goto done;
    if (q->outlier_rowptr && build_outliers(q, L, inv) != 0) goto done;

    L->vec_group = qh_malloc((size_t)L->ntiles * L->K * sizeof(uint16_t));
    for (int v = 0; v < L->ntiles * L->K; v++) {
        int j = v * 8 / L->groupsize;
        L->vec_group[v] = (uint16_t)(j < L->ngroups ? j : L->ngroups - 1); /* padding: the last group's (x is 0) */
    }

    void **ptr[QLAYOUT_NARRAYS];
    size_t bytes[QLAYOUT_NARRAYS];
    qlayout_arrays(L, ptr, bytes);
    for (int i = 0; i < QLAYOUT_NARRAYS - 1; i++) L->bytes += bytes[i];
    rc = 0;
done:
    free(inv);
    return rc;
}

int qlayout_build(const QuantLayer *q, QLayout *L) {
    memset(L, 0, sizeof *L);
    if (!q) return qh_error("qlayout: no layer");
    if (build(q, L) == 0) return 0;
    qlayout_free(L);
    return -1;
}

void qlayout_row_stats(const QLayout *L, int r, float *s, float *z) {
    for (int j = 0; j < L->ngroups; j++) qlayout_stat(L, r, j, s + j, z + j);
}

void qlayout_permute(const QLayout *L, const float *X, int nb, float *Xp) {
    for (int b = 0; b < nb; b++) {
        const float *x = X + (size_t)b * L->n;
        float *xp = Xp + (size_t)b * L->n_pad;
        if (L->perm)
            for (int c = 0; c < L->n; c++) xp[c] = x[L->perm[c]];
        else
            memcpy(xp, x, (size_t)L->n * sizeof *x);
        for (int c = L->n; c < L->n_pad; c++) xp[c] = 0.0f;
    }
}
