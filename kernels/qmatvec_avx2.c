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
 * qmatvec_avx2_supported() first (__builtin_cpu_supports). Specialized per
 * (wbits, nb) by an always-inlined body, so that the shifts and the unrolling
 * are constant. The statistics, the outliers and the OpenMP row loop are
 * shared with the AVX-512 kernel (qmatvec_simd.h). */
#include <immintrin.h>

#define QV_TARGET __attribute__((target("avx2,fma,f16c")))

QV_TARGET static inline float hsum(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_movehdup_ps(a));
    return _mm_cvtss_f32(a);
}

/* the statistics' vector operations (qmatvec_simd.h), 8 lanes */
#define QV_W 8
#define QV_PS __m256
#define QV_SI __m256i
#define QV_LOADU _mm256_loadu_ps
#define QV_STOREU _mm256_storeu_ps
#define QV_VALUES(a, i, val16) ((val16) ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)(a) + (i)))) \
                                        : _mm256_loadu_ps((const float *)(a) + (i)))
#define QV_CODES8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define QV_CODES16(p) _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define QV_AND _mm256_and_si256
#define QV_SRL _mm256_srl_epi32
#define QV_CVT _mm256_cvtepi32_ps
#define QV_SUB _mm256_sub_ps
#define QV_MUL _mm256_mul_ps
#define QV_FMA _mm256_fmadd_ps
#define QV_ZERO _mm256_setzero_ps
#define QV_SET1I _mm256_set1_epi32
#define QV_HSUM hsum
#include "qmatvec_simd.h"

int qmatvec_avx2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
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
 * that the sign bit stays clear); x_scaled (qv_chunk) carries 2^-(k WB),
 * so each product equals code x exactly, one uop (the shift) fewer. */
QV_TARGET static inline __attribute__((always_inline)) __m256 code_vec_scaled(__m256i wv, int k, const int WB) {
    const int K = 32 / WB;
    if (k == K - 1) return _mm256_cvtepi32_ps(_mm256_srli_epi32(wv, (K - 1) * WB));
    return _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32((int)(((1u << WB) - 1) << (k * WB)))));
}

/* One input, groups aligned with the tiles (the decode of a token): SPEC 2
 * summed per group, sum_c s (q_c - z) x_c = s sum_c q_c x_c - s z sum_c x_c,
 * so a vector costs one and, shift, convert and fma, a group one fma, and the
 * zero terms are one dot product of nsz with the sums of x per group (summed
 * by row_stats, qmatvec_simd.h); x is the input scaled per vector for
 * code_vec_scaled (qv_chunk). GV: vectors per group when a tile holds K / GV whole
 * groups; 0 when a group holds whole tiles (groupsize a multiple of the tile,
 * or one group per row). s is read up to the vectors of the padded tile
 * (zeros past ngroups). */
QV_TARGET static inline __attribute__((always_inline)) float row1_body(const QLayout *L, int r, const float *x,
                                                                        const float *s, const int WB, const int GV) {
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
    return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}

#define ROW1_FN(WB, GV)                                                                                    \
    QV_TARGET static float row1_##WB##_##GV(const QLayout *L, int r, const float *x, const float *s) {     \
        return row1_body(L, r, x, s, WB, GV);                                                              \
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

void qmatvec_avx2(const QLayout *L, const float *Xp, int nb, float *Y) {
    const int wi = L->wbits == 8 ? 3 : L->wbits - 2;
    for (int b0 = 0; b0 < nb; b0 += 8) {
        int c = nb - b0 < 8 ? nb - b0 : 8;
        qv_chunk(L, Xp + (size_t)b0 * L->n_pad, c, Y + (size_t)b0 * L->m, row_fns[wi][c - 1], row1_fn(L), NULL, 1,
                 out_fns[wi]);
    }
}
