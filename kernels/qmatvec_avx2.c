/* qmatvec_avx2.c: the AVX2 + FMA quantized matrix-vector kernel (qmatvec.h)
 * over the kernel-ready layout (qlayout.h). Per row: the statistics decoded
 * once, 8 groups at a time (row_stats: the operations of qlayout_stat, so the
 * same values; s and -s z per group; the second level widened to fp32 once
 * per block of qq_groupsize rows), then per tile one 256-bit load of 8
 * code words; vector k of the tile is (words >> k wbits) & mask, converted to
 * fp32. With several inputs (nb 2..8, or groups that do not align with the
 * tiles) it is decoded as w = s code - s z (one fma, SPEC 2) and multiplied
 * with 8 consecutive permuted inputs of each (fp32 accumulators, several
 * chains when nb is small). With one input (a token's decode) and aligned
 * groups, codes times inputs are summed per group and scaled once per group,
 * the zero terms being one dot product with the per-group sums of the input
 * (row1_body): per vector a mask in place, a convert and an fma (the codes
 * left at their bit position, the input pre-scaled by the matching power of
 * 2: code_vec_scaled). Outliers (SPEC 5) add (value - w under it) x after the
 * dense part, from the CSR (two register chains with one input).
 *
 * Compiled for AVX2 + FMA + F16C with a target attribute whatever the build's
 * flags, so the binary still runs on a CPU without them: callers check
 * qmatvec_avx2_supported() first (__builtin_cpu_supports). The row loop is
 * split over OpenMP threads only when m n nb reaches QH_PAR_MIN_WORK, by shape
 * alone (base/util.h: small parallel regions cost milliseconds on a loaded
 * machine), in chunks of 32 rows handed out on demand: on a loaded machine a
 * thread that loses its core holds back one chunk, not half the rows. A row is computed by one thread in a fixed order, so the
 * result does not depend on the schedule. Specialized per (wbits, nb) by an
 * always-inlined body, so that the shifts and the unrolling are constant. */
#include <immintrin.h>
#include <stdlib.h>

#include "grid.h"
#include "qmatvec.h"
#include "util.h"

#define QV_TARGET __attribute__((target("avx2,fma,f16c")))

int qmatvec_avx2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/* 8 values [i, i + 8) of an fp16 / fp32 array (qlayout_value, 8 at a time; exact) */
QV_TARGET static inline __m256 values8(const void *a, size_t i, int val16) {
    return val16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)a + i)))
                 : _mm256_loadu_ps((const float *)a + i);
}

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
        for (; j + 8 <= G; j += 8) _mm256_storeu_ps(dst[a] + j, values8(src[a], base + j, L->val16));
        for (; j < G; j++) dst[a][j] = qlayout_value(src[a], base + j, L->val16);
    }
    c->blk = blk;
}

/* qlayout_stat_one for groups j..j+7 of row r, codes the 8 codes: the same
 * operations in the same order (SPEC 2: ss * (code - sz)), so the same values;
 * ss, sz: the row's block's second level (SecondLevel). */
QV_TARGET static inline __m256 stat8(const QLayout *L, int kind, const void *val, __m256i codes, const float *ss,
                                     const float *sz, int r, int j) {
    if (kind == QL_STAT_VALUE) return values8(val, (size_t)r * L->ngroups + j, L->val16);
    __m256 c = _mm256_cvtepi32_ps(codes);
    if (kind == QL_STAT_INT) return c;
    return _mm256_mul_ps(_mm256_loadu_ps(ss + j), _mm256_sub_ps(c, _mm256_loadu_ps(sz + j)));
}

/* qlayout_row_stats, 8 groups at a time (the tail by qlayout_stat): s[j] and
 * -s[j] z[j] (nsz) for the kernel, z[j] for the outliers' correction. */
QV_TARGET static void row_stats(const QLayout *L, int r, SecondLevel *c2, float *s, float *z, float *nsz) {
    const int G = L->ngroups, G8 = G & ~7;
    const __m256i smask = _mm256_set1_epi32((1 << L->scale_bits) - 1);
    const __m128i zshift = _mm_cvtsi32_si128(L->code_bytes == 1 ? L->scale_bits : 8);
    if (L->scale_kind == QL_STAT_CODED || L->zero_kind == QL_STAT_CODED) second_level_load(L, r, c2);
    for (int j = 0; j < G8; j += 8) {
        const size_t i = (size_t)r * G + j;
        __m256i w = L->code_bytes == 0   ? _mm256_setzero_si256()
                    : L->code_bytes == 1 ? _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)((const uint8_t *)L->stat_codes + i)))
                                         : _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)L->stat_codes + i)));
        __m256 sv = stat8(L, L->scale_kind, L->scale_val, _mm256_and_si256(w, smask), c2->ss, c2->sz, r, j);
        __m256 zv = stat8(L, L->zero_kind, L->zero_val, _mm256_srl_epi32(w, zshift), c2->zs, c2->zz, r, j);
        _mm256_storeu_ps(s + j, sv);
        _mm256_storeu_ps(z + j, zv);
        _mm256_storeu_ps(nsz + j, _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(sv, zv)));
    }
    for (int j = G8; j < G; j++) {
        qlayout_stat(L, r, j, s + j, z + j);
        nsz[j] = -s[j] * z[j];
    }
}

QV_TARGET static inline float hsum(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* Row r: out[b] = sum over the permuted columns of W_hat[r, c] Xp[b, c], b < NB.
 * s, nsz: (ngroups) the row's scale and -scale * zero. */
QV_TARGET static inline __attribute__((always_inline)) void row_body(const QLayout *L, int r, const float *Xp,
                                                                      const float *s, const float *nsz, float *out,
                                                                      const int WB, const int NB) {
    enum { MAXU = 4 };
    const int K = 32 / WB, U = NB >= 4 ? 1 : NB >= 2 ? 2 : 4; /* independent fma chains per input */
    const size_t ld = (size_t)L->n_pad;
    const __m256i mask = _mm256_set1_epi32((1 << WB) - 1);
    const uint32_t *words = L->words + (size_t)r * L->ntiles * 8;
    const uint16_t *vg = L->vec_group;
    __m256 acc[8][MAXU];
    for (int b = 0; b < NB; b++)
        for (int u = 0; u < U; u++) acc[b][u] = _mm256_setzero_ps();
    for (int t = 0; t < L->ntiles; t++) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)(words + (size_t)t * 8));
        const int v0 = t * K;
#pragma GCC unroll 16
        for (int k = 0; k < K; k++) {
            __m256 cf = _mm256_cvtepi32_ps(_mm256_and_si256(wv, mask));
            wv = _mm256_srli_epi32(wv, WB); /* WB constant: the immediate form, one uop */
            const int v = v0 + k, j = vg[v];
            __m256 w = _mm256_fmadd_ps(cf, _mm256_broadcast_ss(s + j), _mm256_broadcast_ss(nsz + j));
            const float *x = Xp + (size_t)v * 8;
            for (int b = 0; b < NB; b++)
                acc[b][k % U] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + b * ld), acc[b][k % U]);
        }
    }
    for (int b = 0; b < NB; b++) {
        __m256 a = acc[b][0];
        for (int u = 1; u < U; u++) a = _mm256_add_ps(a, acc[b][u]);
        out[b] = hsum(a);
    }
}

typedef void (*RowFn)(const QLayout *, int, const float *, const float *, const float *, float *);

#define ROW_FN(WB, NB)                                                                                     \
    QV_TARGET static void row_##WB##_##NB(const QLayout *L, int r, const float *Xp, const float *s,        \
                                          const float *nsz, float *out) {                                  \
        row_body(L, r, Xp, s, nsz, out, WB, NB);                                                           \
    }
#define ROW_FNS(WB) ROW_FN(WB, 1) ROW_FN(WB, 2) ROW_FN(WB, 3) ROW_FN(WB, 4) ROW_FN(WB, 5) ROW_FN(WB, 6) \
    ROW_FN(WB, 7) ROW_FN(WB, 8)
ROW_FNS(2)
ROW_FNS(3)
ROW_FNS(4)
ROW_FNS(8)
#define ROW_TABLE(WB) {row_##WB##_1, row_##WB##_2, row_##WB##_3, row_##WB##_4, row_##WB##_5, row_##WB##_6, \
                       row_##WB##_7, row_##WB##_8}
static const RowFn row_fns[4][8] = {ROW_TABLE(2), ROW_TABLE(3), ROW_TABLE(4), ROW_TABLE(8)};

/* Vector k of a tile's words wv as fp32, NOT shifted down: the code times
 * 2^(k WB) (exact: at most 31 bits, the last vector shifted down instead so
 * that the sign bit stays clear); x_scaled (qmatvec_chunk) carries 2^-(k WB),
 * so each product equals code x exactly, one uop (the shift) fewer. */
QV_TARGET static inline __attribute__((always_inline)) __m256 code_vec_scaled(__m256i wv, int k, const int WB) {
    const int K = 32 / WB;
    if (k == K - 1) return _mm256_cvtepi32_ps(_mm256_srli_epi32(wv, (K - 1) * WB));
    return _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32((int)(((1u << WB) - 1) << (k * WB)))));
}

/* One input, groups aligned with the tiles (the decode of a token): SPEC 2
 * summed per group, sum_c s (q_c - z) x_c = s sum_c q_c x_c - s z sum_c x_c,
 * so a vector costs one and, shift, convert and fma, a group one fma, and the
 * zero terms are one dot product of nsz with xs (ngroups: the sums of x per
 * group, once per call); x is the input scaled per vector for
 * code_vec_scaled (qmatvec_chunk). GV: vectors per group when a tile holds K / GV whole
 * groups; 0 when a group holds whole tiles (groupsize a multiple of the tile,
 * or one group per row). s is read up to the vectors of the padded tile
 * (zeros past ngroups). */
QV_TARGET static inline __attribute__((always_inline)) float row1_body(const QLayout *L, int r, const float *x,
                                                                        const float *s, const float *nsz,
                                                                        const float *xs, const int WB, const int GV) {
    const int K = 32 / WB;
    const uint32_t *words = L->words + (size_t)r * L->ntiles * 8;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    if (GV) {
        for (int t = 0; t < L->ntiles; t++) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(words + (size_t)t * 8));
            const float *xt = x + (size_t)t * K * 8;
            __m256 p = _mm256_setzero_ps();
#pragma GCC unroll 16
            for (int k = 0; k < K; k++) {
                __m256 cf = code_vec_scaled(wv, k, WB);
                p = k % GV == 0 ? _mm256_mul_ps(cf, _mm256_loadu_ps(xt + k * 8))
                                : _mm256_fmadd_ps(cf, _mm256_loadu_ps(xt + k * 8), p);
                if (k % GV == GV - 1) {
                    const int u = (k / GV) % 4;
                    acc[u] = _mm256_fmadd_ps(_mm256_broadcast_ss(s + t * (K / GV) + k / GV), p, acc[u]);
                }
            }
        }
    } else {
        const int tpg = L->ngroups == 1 ? L->ntiles : L->groupsize / (8 * K); /* tiles per group */
        for (int j = 0, t0 = 0; t0 < L->ntiles; j++, t0 += tpg) {
            const int t1 = t0 + tpg < L->ntiles ? t0 + tpg : L->ntiles;
            __m256 p[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int t = t0; t < t1; t++) {
                __m256i wv = _mm256_loadu_si256((const __m256i *)(words + (size_t)t * 8));
                const float *xt = x + (size_t)t * K * 8;
#pragma GCC unroll 16
                for (int k = 0; k < K; k++) {
                    __m256 cf = code_vec_scaled(wv, k, WB);
                    p[k % 4] = _mm256_fmadd_ps(cf, _mm256_loadu_ps(xt + k * 8), p[k % 4]);
                }
            }
            __m256 ps = _mm256_add_ps(_mm256_add_ps(p[0], p[1]), _mm256_add_ps(p[2], p[3]));
            acc[j % 4] = _mm256_fmadd_ps(_mm256_broadcast_ss(s + j), ps, acc[j % 4]);
        }
    }
    const int G = L->ngroups, G8 = G & ~7;
    __m256 zt = _mm256_setzero_ps();
    for (int j = 0; j < G8; j += 8) zt = _mm256_fmadd_ps(_mm256_loadu_ps(nsz + j), _mm256_loadu_ps(xs + j), zt);
    float zs = 0.0f;
    for (int j = G8; j < G; j++) zs += nsz[j] * xs[j];
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(_mm256_add_ps(acc[2], acc[3]), zt))) + zs;
}

typedef float (*Row1Fn)(const QLayout *, int, const float *, const float *, const float *, const float *);
#define ROW1_FN(WB, GV)                                                                                    \
    QV_TARGET static float row1_##WB##_##GV(const QLayout *L, int r, const float *x, const float *s,       \
                                            const float *nsz, const float *xs) {                           \
        return row1_body(L, r, x, s, nsz, xs, WB, GV);                                                     \
    }
#define ROW1_FNS(WB) ROW1_FN(WB, 0) ROW1_FN(WB, 1) ROW1_FN(WB, 2) ROW1_FN(WB, 4) ROW1_FN(WB, 8)
ROW1_FNS(2)
ROW1_FNS(3)
ROW1_FNS(4)
ROW1_FNS(8)
#define ROW1_TABLE(WB) {row1_##WB##_0, row1_##WB##_1, row1_##WB##_2, row1_##WB##_4, row1_##WB##_8}
static const Row1Fn row1_fns[4][5] = {ROW1_TABLE(2), ROW1_TABLE(3), ROW1_TABLE(4), ROW1_TABLE(8)};

/* The one-input kernel for L's grouping, or NULL when its groups and tiles do
 * not align (e.g. 3 bits, groups of 128: the general kernel then). */
static Row1Fn row1_fn(const QLayout *L) {
    const int wi = L->wbits == 8 ? 3 : L->wbits - 2, gv = L->groupsize / 8;
    if (L->ngroups == 1 || L->groupsize % L->tile == 0) return row1_fns[wi][0];
    if (L->K % gv != 0) return NULL;
    return gv == 1 ? row1_fns[wi][1] : gv == 2 ? row1_fns[wi][2] : gv == 4 ? row1_fns[wi][3] : gv == 8 ? row1_fns[wi][4] : NULL;
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

/* nb <= 8 inputs */
static void qmatvec_chunk(const QLayout *L, const float *Xp, int nb, float *Y) {
    const int m = L->m, G = L->ngroups, g = L->groupsize;
    const int wi = L->wbits == 8 ? 3 : L->wbits - 2;
    const RowFn fn = row_fns[wi][nb - 1];
    const OutFn fo = out_fns[wi];
    const Row1Fn fn1 = nb == 1 ? row1_fn(L) : NULL;
    const size_t gpad = (size_t)L->ntiles * L->K + 8; /* >= G: a group is >= 8 columns */
    float *xs = NULL, *xsc = NULL; /* fn1: (G) the sums of the input per group; (n_pad) the input scaled */
    if (fn1) {
        xs = qh_calloc((size_t)G, sizeof *xs);
        for (int c = 0; c < L->n; c++) xs[c / g] += Xp[c];
        xsc = qh_malloc((size_t)L->n_pad * sizeof *xsc); /* column c of vector k of its tile times 2^-(k wbits) */
        for (int c = 0; c < L->n_pad; c++) {
            const int k = (c >> 3) % L->K;
            xsc[c] = k == L->K - 1 ? Xp[c] : Xp[c] * (1.0f / (float)(1u << (k * L->wbits))); /* exact: a power of 2 */
        }
    }
#pragma omp parallel if (1.0 * m * L->n * nb >= QH_PAR_MIN_WORK)
    {
        float *s = qh_calloc(gpad, sizeof *s), *z = qh_calloc(gpad, sizeof *z), *nsz = qh_calloc(gpad, sizeof *nsz);
        float out[8];
        SecondLevel c2;
        second_level_init(L, &c2);
#pragma omp for schedule(dynamic, 32)
        for (int r = 0; r < m; r++) {
            row_stats(L, r, &c2, s, z, nsz);
            if (fn1)
                out[0] = fn1(L, r, xsc, s, nsz, xs);
            else
                fn(L, r, Xp, s, nsz, out);
            if (L->out_rowptr) fo(L, r, Xp, nb, s, z, out);
            for (int b = 0; b < nb; b++) Y[(size_t)b * m + r] = out[b];
        }
        free(s), free(z), free(nsz);
        second_level_free(&c2);
    }
    free(xs), free(xsc);
}

void qmatvec_avx2(const QLayout *L, const float *Xp, int nb, float *Y) {
    for (int b0 = 0; b0 < nb; b0 += 8) {
        int c = nb - b0 < 8 ? nb - b0 : 8;
        qmatvec_chunk(L, Xp + (size_t)b0 * L->n_pad, c, Y + (size_t)b0 * L->m);
    }
}
