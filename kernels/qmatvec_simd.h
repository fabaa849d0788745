/* qmatvec_simd.h: what the SIMD CPU matrix-vector kernels (qmatvec_avx2.c,
 * qmatvec_avx512.c) share, whatever their vector width: the statistics of a
 * row decoded W groups at a time (the second level widened to fp32 once per
 * block of rows; the zero terms of one input summed on the way), the
 * outliers' correction (SPEC 5), and the driver that splits the rows over
 * OpenMP threads and calls a file's row kernels.
 *
 * Included by each kernel file AFTER it defines QV_TARGET (its target
 * attribute, e.g. __attribute__((target("avx2,fma,f16c")))) and the vector
 * width of the statistics: QV_W lanes of types QV_PS (fp32) / QV_SI (int32)
 * and the operations below on them (QV_LOADU, QV_STOREU, QV_VALUES: W values
 * of an fp16 / fp32 array, QV_CODES8 / QV_CODES16: W codes widened, QV_AND,
 * QV_SRL (by an __m128i count), QV_CVT, QV_SUB, QV_MUL, QV_FMA,
 * QV_ZERO, QV_SET1I, QV_HSUM). Every function here is static and compiled
 * with that file's target, so each file gets its own copy for its
 * instruction set, and the binary still runs on a CPU without it (callers
 * check qmatvec_*_supported() first). AVX2 + FMA + F16C is the least any
 * includer's target holds.
 *
 * The row loop is split over OpenMP threads only when m n nb reaches
 * QH_PAR_MIN_WORK, by shape alone (base/util.h: small parallel regions cost
 * milliseconds on a loaded machine), in chunks of 32 rows handed out on
 * demand: on a loaded machine a thread that loses its core holds back one
 * chunk, not half the rows. A row is computed by one thread in a fixed order,
 * so the result does not depend on the schedule. Not here: the row kernels
 * themselves (the including file), the layout (qlayout.h). */
#ifndef QH_QMATVEC_SIMD_H
#define QH_QMATVEC_SIMD_H

#if !defined(QV_TARGET) || !defined(QV_W)
#error "define QV_TARGET (the file's target attribute) and the QV_ vector operations before including qmatvec_simd.h"
#endif

#include <immintrin.h>
#include <stdlib.h>

#include "grid.h"
#include "qmatvec.h"
#include "util.h"

/* The second level of the statistics of one block of qq_groupsize rows,
 * widened to fp32 once per block (a thread's rows come in runs of 32): ss, sz
 * of the scales, zs, zz of the zeros, each (ngroups), NULL when not coded. */
typedef struct {
    int blk;                   /* r / qq_groupsize of the values held, -1 for none */
    float *ss, *sz, *zs, *zz;  /* (ngroups) */
} SecondLevel;

static void second_level_init(const QLayout *L, SecondLevel *c) {
    size_t G = (size_t)L->ngroups;
    c->blk = -1;
    c->ss = L->scale_kind == QL_STAT_CODED ? qh_malloc(G * sizeof(float)) : NULL;
    c->sz = L->scale_kind == QL_STAT_CODED ? qh_malloc(G * sizeof(float)) : NULL;
    c->zs = L->zero_kind == QL_STAT_CODED ? qh_malloc(G * sizeof(float)) : NULL;
    c->zz = L->zero_kind == QL_STAT_CODED ? qh_malloc(G * sizeof(float)) : NULL;
}
static void second_level_free(SecondLevel *c) { free(c->ss), free(c->sz), free(c->zs), free(c->zz); }

/* c holds row r's block afterwards */
QV_TARGET static void second_level_load(const QLayout *L, int r, SecondLevel *c) {
    const int blk = L->qq_groupsize ? r / L->qq_groupsize : 0;
    if (blk == c->blk) return;
    const size_t G = (size_t)L->ngroups, base = (size_t)blk * G;
    const void *src[4] = {L->qs_scale, L->qs_zero, L->qz_scale, L->qz_zero};
    float *dst[4] = {c->ss, c->sz, c->zs, c->zz};
    for (int a = 0; a < 4; a++) {
        if (!dst[a]) continue;
        size_t j = 0;
        for (; j + QV_W <= G; j += QV_W) QV_STOREU(dst[a] + j, QV_VALUES(src[a], base + j, L->val16));
        for (; j < G; j++) dst[a][j] = qlayout_value(src[a], base + j, L->val16);
    }
    c->blk = blk;
}

/* qlayout_stat_one for groups j..j+W-1 of row r, codes their codes: the same
 * operations in the same order (SPEC 2: ss * (code - sz)), so the same values;
 * ss, sz: the row's block's second level (SecondLevel). */
QV_TARGET static inline QV_PS statW(const QLayout *L, int kind, const void *val, QV_SI codes, const float *ss,
                                    const float *sz, int r, int j) {
    if (kind == QL_STAT_VALUE) return QV_VALUES(val, (size_t)r * L->ngroups + j, L->val16);
    QV_PS c = QV_CVT(codes);
    if (kind == QL_STAT_INT) return c;
    return QV_MUL(QV_LOADU(ss + j), QV_SUB(c, QV_LOADU(sz + j)));
}

/* qlayout_row_stats, W groups at a time (the tail by qlayout_stat): s[j] and
 * -s[j] z[j] (nsz) for the kernel, z[j] for the outliers' correction (with xs
 * only when row r has outliers: not written is not read). With xs
 * (the sums of the input per group, one input) it returns the row's zero
 * terms sum_j nsz[j] xs[j] instead of storing nsz (the per-group sums trick,
 * SPEC 2 regrouped: sum_c s (q_c - z) x_c = s sum_c q_c x_c - s z sum_c x_c;
 * summed as -sum_j (s[j] z[j]) xs[j], the same value: a negation is exact),
 * else 0. SK, ZK, CB: the layout's scale_kind, zero_kind, code_bytes, constant
 * in the specializations below (-1: read from L). */
QV_TARGET static inline __attribute__((always_inline)) float row_stats_body(const QLayout *L, int r, SecondLevel *c2,
                                                                             float *s, float *z, float *nsz,
                                                                             const float *xs, int SK, int ZK, int CB) {
    if (SK < 0) SK = L->scale_kind, ZK = L->zero_kind, CB = L->code_bytes;
    const int zneed = !xs || (L->out_rowptr && L->out_rowptr[r + 1] > L->out_rowptr[r]); /* z: outliers only */
    const int G = L->ngroups, GW = G / QV_W * QV_W;
    const QV_SI smask = QV_SET1I((1 << L->scale_bits) - 1);
    const __m128i zshift = _mm_cvtsi32_si128(CB == 1 ? L->scale_bits : 8);
    if (SK == QL_STAT_CODED || ZK == QL_STAT_CODED) second_level_load(L, r, c2);
    QV_PS zt = QV_ZERO();
    for (int j = 0; j < GW; j += QV_W) {
        const size_t i = (size_t)r * G + j;
        /* 4 steps ahead: with long rows the kernel's input evicts these from L1 between rows */
        const int jp = j + 4 * QV_W;
        if (SK == QL_STAT_CODED)
            _mm_prefetch((const char *)(c2->ss + jp), _MM_HINT_T0), _mm_prefetch((const char *)(c2->sz + jp), _MM_HINT_T0);
        if (ZK == QL_STAT_CODED)
            _mm_prefetch((const char *)(c2->zs + jp), _MM_HINT_T0), _mm_prefetch((const char *)(c2->zz + jp), _MM_HINT_T0);
        if (xs) _mm_prefetch((const char *)(xs + jp), _MM_HINT_T0);
        _mm_prefetch((const char *)(s + jp), _MM_HINT_T0);
        QV_SI w = CB == 0   ? QV_SET1I(0)
                  : CB == 1 ? QV_CODES8((const uint8_t *)L->stat_codes + i)
                            : QV_CODES16((const uint16_t *)L->stat_codes + i);
        QV_PS sv = statW(L, SK, L->scale_val, QV_AND(w, smask), c2->ss, c2->sz, r, j);
        QV_PS zv = statW(L, ZK, L->zero_val, QV_SRL(w, zshift), c2->zs, c2->zz, r, j);
        QV_STOREU(s + j, sv);
        if (zneed) QV_STOREU(z + j, zv);
        if (xs)
            zt = QV_FMA(QV_MUL(sv, zv), QV_LOADU(xs + j), zt);
        else
            QV_STOREU(nsz + j, QV_SUB(QV_ZERO(), QV_MUL(sv, zv)));
    }
    float zs = 0.0f;
    for (int j = GW; j < G; j++) {
        qlayout_stat(L, r, j, s + j, z + j);
        nsz[j] = -s[j] * z[j];
        if (xs) zs += nsz[j] * xs[j];
    }
    return xs ? zs - QV_HSUM(zt) : 0.0f;
}

/* row_stats_body for L's kinds: SpQR's (both coded, one byte) and plain
 * values (RTN / GPTQ in fp16 / fp32) specialized, any other read from L */
QV_TARGET static float row_stats_spqr(const QLayout *L, int r, SecondLevel *c2, float *s, float *z, float *nsz,
                                      const float *xs) {
    return row_stats_body(L, r, c2, s, z, nsz, xs, QL_STAT_CODED, QL_STAT_CODED, 1);
}
QV_TARGET static float row_stats_values(const QLayout *L, int r, SecondLevel *c2, float *s, float *z, float *nsz,
                                        const float *xs) {
    return row_stats_body(L, r, c2, s, z, nsz, xs, QL_STAT_VALUE, QL_STAT_VALUE, 0);
}
QV_TARGET static float row_stats_any(const QLayout *L, int r, SecondLevel *c2, float *s, float *z, float *nsz,
                                     const float *xs) {
    return row_stats_body(L, r, c2, s, z, nsz, xs, -1, -1, -1);
}
typedef float (*RowStatsFn)(const QLayout *, int, SecondLevel *, float *, float *, float *, const float *);
static RowStatsFn row_stats_fn(const QLayout *L) {
    if (L->scale_kind == QL_STAT_CODED && L->zero_kind == QL_STAT_CODED && L->code_bytes == 1) return row_stats_spqr;
    if (L->scale_kind == QL_STAT_VALUE && L->zero_kind == QL_STAT_VALUE && L->code_bytes == 0) return row_stats_values;
    return row_stats_any;
}

/* Outlier k of a row whose codes are at words (SPEC 5): its permuted column
 * *c and (value - the dense weight under it), with the operations of
 * qlayout_code / qlayout_out_val / qgrid_decode, the divisions by constants
 * (WB fixed) and the group from vec_group. */
QV_TARGET static inline __attribute__((always_inline)) float outlier_delta(const QLayout *L, const uint32_t *words,
                                                                            uint32_t k, const float *s,
                                                                            const float *z, int *c, const int WB) {
    const int K = 32 / WB, cc = L->out_col[k], v = cc >> 3, t = v / K, j = L->vec_group[v];
    const unsigned code = (words[t * 8 + (cc & 7)] >> ((v - t * K) * WB)) & ((1u << WB) - 1);
    const float val = L->val16 ? _cvtsh_ss(((const uint16_t *)L->out_val)[k]) : ((const float *)L->out_val)[k];
    *c = cc;
    return val - qgrid_decode((float)code, s[j], z[j]);
}

/* Row r's outliers: out[b] += delta Xp[b, c]; one input in two register chains. */
QV_TARGET static inline __attribute__((always_inline)) void outliers_body(const QLayout *L, int r, const float *Xp,
                                                                           int nb, const float *s, const float *z,
                                                                           float *out, const int WB) {
    const size_t ld = (size_t)L->n_pad;
    const uint32_t *words = L->words + (size_t)r * L->ntiles * 8;
    const uint32_t k0 = L->out_rowptr[r], k1 = L->out_rowptr[r + 1];
    int c, c2;
    if (nb == 1) {
        float a0 = 0.0f, a1 = 0.0f;
        uint32_t k = k0;
        for (; k + 1 < k1; k += 2) {
            float d = outlier_delta(L, words, k, s, z, &c, WB), d2 = outlier_delta(L, words, k + 1, s, z, &c2, WB);
            a0 += d * Xp[c], a1 += d2 * Xp[c2];
        }
        if (k < k1) a0 += outlier_delta(L, words, k, s, z, &c, WB) * Xp[c];
        out[0] += a0 + a1;
        return;
    }
    for (uint32_t k = k0; k < k1; k++) {
        float d = outlier_delta(L, words, k, s, z, &c, WB);
        for (int b = 0; b < nb; b++) out[b] += d * Xp[b * ld + c];
    }
}

typedef void (*OutFn)(const QLayout *, int, const float *, int, const float *, const float *, float *);
#define OUT_FN(WB)                                                                                          \
    QV_TARGET static void outliers_##WB(const QLayout *L, int r, const float *Xp, int nb, const float *s,   \
                                        const float *z, float *out) {                                       \
        outliers_body(L, r, Xp, nb, s, z, out, WB);                                                         \
    }
OUT_FN(2)
OUT_FN(3)
OUT_FN(4)
OUT_FN(8)
static const OutFn out_fns[4] = {outliers_2, outliers_3, outliers_4, outliers_8};

/* A file's row kernels: row r's out[b] = sum over the permuted columns of the
 * dense part W_hat[r, c] Xp[b, c], b < nb (the outliers are added after).
 * RowFn: nb inputs at Xp (ld n_pad), s and nsz = -s z per group;
 * Row1Fn: one input x (scaled per vector when the file says so, see
 * qv_chunk), s per group, without the zero terms (row_stats sums them). */
typedef void (*RowFn)(const QLayout *, int, const float *, const float *, const float *, float *);
typedef float (*Row1Fn)(const QLayout *, int, const float *, const float *);
/* Row1Fn for rows r and r + 1 at once (one load of the input for both): s0,
 * s1 their scales; out2[i] = what Row1Fn gives for row r + i, bit for bit. */
typedef void (*Row1x2Fn)(const QLayout *, int, const float *, const float *, const float *, float *);

/* Y (nb, m) for nb <= 8 inputs Xp (nb, n_pad): fn for every row, or with one
 * input fn1 when not NULL (fn1x2, when not NULL, for the rows 2q, 2q + 1: the
 * pairs are fixed by the index, so the result does not depend on the
 * threads), then fo (e.g. out_fns[]) for the outliers. With x_scaled, fn1
 * reads the input with column c of vector k of its tile times 2^-(k wbits),
 * k < K - 1 (the codes are then converted in place, not shifted down; the
 * scale is a power of 2, so the products are exact). */
QV_TARGET static void qv_chunk(const QLayout *L, const float *Xp, int nb, float *Y, RowFn fn, Row1Fn fn1,
                               Row1x2Fn fn1x2, int x_scaled, OutFn fo) {
    const int m = L->m, G = L->ngroups, g = L->groupsize;
    const RowStatsFn fs = row_stats_fn(L);
    if (nb != 1 || !fn1) fn1 = NULL, fn1x2 = NULL;
    const size_t gpad = (size_t)L->ntiles * L->K + 16; /* >= G + 16: a group is >= 8 columns; kernels may read s past G */
    float *xs = NULL, *xsc = NULL; /* fn1: (G) the sums of the input per group; (n_pad) the input scaled */
    if (fn1) {
        xs = qh_calloc((size_t)G, sizeof *xs);
        for (int j = 0; j < G; j++)
            for (int c = j * g; c < L->n && c < (j + 1) * g; c++) xs[j] += Xp[c];
        if (x_scaled) {
            xsc = qh_malloc((size_t)L->n_pad * sizeof *xsc);
            for (int c = 0; c < L->n_pad; c++) {
                const int k = (c >> 3) % L->K;
                xsc[c] = k == L->K - 1 ? Xp[c] : Xp[c] * (1.0f / (float)(1u << (k * L->wbits))); /* exact: a power of 2 */
            }
        }
    }
    const float *x1 = xsc ? xsc : Xp;
#pragma omp parallel if (1.0 * m * L->n * nb >= QH_PAR_MIN_WORK)
    {
        float *s[2], *z[2], *nsz[2], out[2][8], zt[2];
        for (int i = 0; i < 2; i++)
            s[i] = qh_calloc(gpad, sizeof(float)), z[i] = qh_calloc(gpad, sizeof(float)),
            nsz[i] = qh_calloc(gpad, sizeof(float));
        SecondLevel c2;
        second_level_init(L, &c2);
#pragma omp for schedule(dynamic, 16)
        for (int q = 0; q < (m + 1) / 2; q++) { /* rows 2q, 2q + 1 */
            const int r0 = 2 * q, nr = r0 + 1 < m ? 2 : 1;
            for (int i = 0; i < nr; i++) zt[i] = fs(L, r0 + i, &c2, s[i], z[i], nsz[i], xs);
            if (fn1x2 && nr == 2) {
                float o2[2];
                fn1x2(L, r0, x1, s[0], s[1], o2);
                out[0][0] = o2[0] + zt[0], out[1][0] = o2[1] + zt[1];
            } else
                for (int i = 0; i < nr; i++) {
                    if (fn1)
                        out[i][0] = fn1(L, r0 + i, x1, s[i]) + zt[i];
                    else
                        fn(L, r0 + i, Xp, s[i], nsz[i], out[i]);
                }
            for (int i = 0; i < nr; i++) {
                if (L->out_rowptr) fo(L, r0 + i, Xp, nb, s[i], z[i], out[i]);
                for (int b = 0; b < nb; b++) Y[(size_t)b * m + r0 + i] = out[i][b];
            }
        }
        for (int i = 0; i < 2; i++) free(s[i]), free(z[i]), free(nsz[i]);
        second_level_free(&c2);
    }
    free(xs), free(xsc);
}

#endif
