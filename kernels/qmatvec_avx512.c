/* qmatvec_avx512.c: the AVX-512 quantized matrix-vector kernel (qmatvec.h)
 * over the same kernel-ready layout as the AVX2 one (qlayout.h), exact in the
 * same sense: fp32 products of the exact codes and the fp32 inputs, fp32
 * accumulation (no quantization of the input).
 *
 * A tile's 8 code words are loaded once into both halves of a 512-bit
 * register (a broadcast load); a variable shift by (k wbits, (k + 1) wbits)
 * per half then brings vectors k and k + 1 of the tile (K is even for every
 * wbits) to the low bits, that is the 16 CONSECUTIVE permuted columns
 * tile * 8K + 8k .. + 15, so the input is read in its plain permuted order and
 * a group of 16 columns (SpQR's beta1 = 16) is exactly one such pair. The code
 * becomes fp32 by a table lookup (vpermps: the table {0, 1, .., 15} masked to
 * wbits, indexed by the low 4 bits, so no mask and no convert; a permute runs
 * on another port than the shift and the fma) for wbits <= 4; by a mask and a
 * convert for 8 bits.
 *
 * With one input and groups that hold whole pairs (the decode of a token):
 * codes times inputs are summed per group and scaled once per group, the zero
 * terms one dot product with the input's sums per group (SPEC 2 regrouped, as
 * the AVX2 kernel's row1_body): per 16 weights a shift, a permute and an fma
 * (with groups of 16 columns a multiply and the group's fma instead of the
 * fma); bench/RESULTS.md has the measured gain over the AVX2 kernel. Otherwise (several inputs, or groups of 8, 24, .. columns, or groups that
 * straddle tiles without holding whole ones) the weights are decoded, w = s
 * code - s z (one fma, SPEC 2), and multiplied with each input.
 *
 * Outliers (SPEC 5) with one input: 16 at a time, their codes, statistics and
 * inputs gathered (outliers16_body). The statistics (16 groups at a time),
 * the outliers of several inputs and the OpenMP row loop are qmatvec_simd.h's,
 * shared with the AVX2 kernel. Compiled with a
 * target attribute whatever the build's flags, so the binary still runs on a
 * CPU without AVX-512: callers check qmatvec_avx512_supported() first.
 * Specialized per (wbits, nb) by an always-inlined body. */
#include <immintrin.h>

#define QV_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))

/* the statistics' vector operations (qmatvec_simd.h), 16 lanes */
#define QV_W 16
#define QV_PS __m512
#define QV_SI __m512i
#define QV_LOADU _mm512_loadu_ps
#define QV_STOREU _mm512_storeu_ps
#define QV_VALUES(a, i, val16) ((val16) ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)(a) + (i)))) \
                                        : _mm512_loadu_ps((const float *)(a) + (i)))
#define QV_CODES8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define QV_CODES16(p) _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p)))
#define QV_AND _mm512_and_si512
#define QV_SRL _mm512_srl_epi32
#define QV_CVT _mm512_cvtepi32_ps
#define QV_SUB _mm512_sub_ps
#define QV_MUL _mm512_mul_ps
#define QV_FMA _mm512_fmadd_ps
#define QV_ZERO _mm512_setzero_ps
#define QV_SET1I _mm512_set1_epi32
#define QV_HSUM _mm512_reduce_add_ps
#include "qmatvec_simd.h"

int qmatvec_avx512_supported(void) {
    __builtin_cpu_init();
    return qmatvec_avx2_supported() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

/* Vectors k and k + 1 of a tile whose 8 words are in both halves of w2, as
 * fp32: lanes 0..7 the codes of vector k, lanes 8..15 those of vector k + 1
 * (exact: small integers). */
QV_TARGET static inline __attribute__((always_inline)) __m512 code_pair(__m512i w2, int k, const int WB) {
    const int a = k * WB, b = (k + 1) * WB;
    const __m512i i = _mm512_srlv_epi32(w2, _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a));
    if (WB == 8) return _mm512_cvtepi32_ps(_mm512_and_si512(i, _mm512_set1_epi32(255)));
    const int M = (1 << WB) - 1; /* the lookup reads bits 0..3 of i; the codes of WB < 4 bits are masked in the table */
    const __m512 table = _mm512_set_ps((float)(15 & M), (float)(14 & M), (float)(13 & M), (float)(12 & M),
                                       (float)(11 & M), (float)(10 & M), (float)(9 & M), (float)(8 & M),
                                       (float)(7 & M), (float)(6 & M), (float)(5 & M), (float)(4 & M),
                                       (float)(3 & M), (float)(2 & M), (float)(1 & M), 0.0f);
    return _mm512_permutexvar_ps(i, table);
}

/* a tile's 8 code words in both halves */
QV_TARGET static inline __m512i tile_words(const uint32_t *words, int t) {
    return _mm512_broadcast_i32x8(_mm256_loadu_si256((const __m256i *)(words + (size_t)t * 8)));
}

/* Row r: out[b] = sum over the permuted columns of W_hat[r, c] Xp[b, c], b < NB.
 * s, nsz: (ngroups) the row's scale and -scale * zero. SPLIT: the two halves
 * of a pair may lie in different groups (groupsize not a multiple of 16). */
QV_TARGET static inline __attribute__((always_inline)) void row_body(const QLayout *L, int r, const float *Xp,
                                                                      const float *s, const float *nsz, float *out,
                                                                      const int WB, const int NB, const int SPLIT) {
    enum { MAXU = 4 };
    const int K = 32 / WB, U = NB >= 4 ? 1 : NB >= 2 ? 2 : 4; /* independent fma chains per input */
    const size_t ld = (size_t)L->n_pad;
    const uint32_t *words = L->words + (size_t)r * L->ntiles * 8;
    const uint16_t *vg = L->vec_group;
    __m512 acc[8][MAXU];
    for (int b = 0; b < NB; b++)
        for (int u = 0; u < U; u++) acc[b][u] = _mm512_setzero_ps();
    for (int t = 0; t < L->ntiles; t++) {
        const __m512i w2 = tile_words(words, t);
        const int v0 = t * K;
#pragma GCC unroll 8
        for (int k = 0; k < K; k += 2) {
            const int v = v0 + k, j = vg[v], u = (k / 2) % U;
            __m512 sv = _mm512_set1_ps(s[j]), nv = _mm512_set1_ps(nsz[j]);
            if (SPLIT) {
                const int j1 = vg[v + 1];
                sv = _mm512_mask_broadcastss_ps(sv, 0xFF00, _mm_load_ss(s + j1));
                nv = _mm512_mask_broadcastss_ps(nv, 0xFF00, _mm_load_ss(nsz + j1));
            }
            const __m512 w = _mm512_fmadd_ps(code_pair(w2, k, WB), sv, nv);
            const float *x = Xp + (size_t)v * 8;
            for (int b = 0; b < NB; b++) acc[b][u] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + b * ld), acc[b][u]);
        }
    }
    for (int b = 0; b < NB; b++) {
        __m512 a = acc[b][0];
        for (int u = 1; u < U; u++) a = _mm512_add_ps(a, acc[b][u]);
        out[b] = _mm512_reduce_add_ps(a);
    }
}

#define ROW_FN(WB, NB, SP)                                                                                   \
    QV_TARGET static void row_##WB##_##NB##_##SP(const QLayout *L, int r, const float *Xp, const float *s,   \
                                                 const float *nsz, float *out) {                             \
        row_body(L, r, Xp, s, nsz, out, WB, NB, SP);                                                         \
    }
#define ROW_FNS_SP(WB, SP) ROW_FN(WB, 1, SP) ROW_FN(WB, 2, SP) ROW_FN(WB, 3, SP) ROW_FN(WB, 4, SP) \
    ROW_FN(WB, 5, SP) ROW_FN(WB, 6, SP) ROW_FN(WB, 7, SP) ROW_FN(WB, 8, SP)
#define ROW_FNS(WB) ROW_FNS_SP(WB, 0) ROW_FNS_SP(WB, 1)
ROW_FNS(2)
ROW_FNS(3)
ROW_FNS(4)
ROW_FNS(8)
#define ROW_TABLE_SP(WB, SP) {row_##WB##_1_##SP, row_##WB##_2_##SP, row_##WB##_3_##SP, row_##WB##_4_##SP, \
                              row_##WB##_5_##SP, row_##WB##_6_##SP, row_##WB##_7_##SP, row_##WB##_8_##SP}
#define ROW_TABLE(WB) {ROW_TABLE_SP(WB, 0), ROW_TABLE_SP(WB, 1)}
static const RowFn row_fns[4][2][8] = {ROW_TABLE(2), ROW_TABLE(3), ROW_TABLE(4), ROW_TABLE(8)};

/* One input, groups holding whole pairs (SPEC 2 summed per group, see the
 * top), R = 1 or 2 rows from r on, each summed exactly as alone (the same
 * operations in the same order: only the loads of the input are shared, so
 * that a long row's input is read from L2 once per two rows): out[i]
 * for row r + i, s[i] its scales. x the permuted input as is; GP: pairs per
 * group when a tile holds K / 2 / GP whole groups; 0 when a group holds whole
 * tiles (groupsize a multiple of the tile, or one group per row). */
QV_TARGET static inline __attribute__((always_inline)) void row1_body(const QLayout *L, int r, const float *x,
                                                                       const float *const *s, float *out, const int WB,
                                                                       const int GP, const int R) {
    const int K = 32 / WB, P = K / 2; /* pairs per tile */
    const uint32_t *words[2];
    __m512 acc[2][4];
    for (int i = 0; i < R; i++) {
        words[i] = L->words + (size_t)(r + i) * L->ntiles * 8;
        for (int u = 0; u < 4; u++) acc[i][u] = _mm512_setzero_ps();
    }
    if (GP) {
        for (int t = 0; t < L->ntiles; t++) {
            __m512i w2[2];
            __m512 p[2];
            for (int i = 0; i < R; i++) w2[i] = tile_words(words[i], t), p[i] = _mm512_setzero_ps();
            const float *xt = x + (size_t)t * K * 8;
#pragma GCC unroll 8
            for (int k = 0; k < P; k++) {
                const __m512 xv = _mm512_loadu_ps(xt + k * 16);
                for (int i = 0; i < R; i++) {
                    const __m512 cf = code_pair(w2[i], 2 * k, WB);
                    p[i] = k % GP == 0 ? _mm512_mul_ps(cf, xv) : _mm512_fmadd_ps(cf, xv, p[i]);
                    if (k % GP == GP - 1) {
                        const int u = (k / GP) % 4;
                        acc[i][u] = _mm512_fmadd_ps(_mm512_set1_ps(s[i][t * (P / GP) + k / GP]), p[i], acc[i][u]);
                    }
                }
            }
        }
    } else {
        const int tpg = L->ngroups == 1 ? L->ntiles : L->groupsize / (8 * K); /* tiles per group */
        for (int j = 0, t0 = 0; t0 < L->ntiles; j++, t0 += tpg) {
            const int t1 = t0 + tpg < L->ntiles ? t0 + tpg : L->ntiles;
            __m512 p[2][4];
            for (int i = 0; i < R; i++)
                for (int u = 0; u < 4; u++) p[i][u] = _mm512_setzero_ps();
            for (int t = t0; t < t1; t++) {
                __m512i w2[2];
                for (int i = 0; i < R; i++) w2[i] = tile_words(words[i], t);
                const float *xt = x + (size_t)t * K * 8;
#pragma GCC unroll 8
                for (int k = 0; k < P; k++) {
                    const __m512 xv = _mm512_loadu_ps(xt + k * 16);
                    for (int i = 0; i < R; i++) p[i][k % 4] = _mm512_fmadd_ps(code_pair(w2[i], 2 * k, WB), xv, p[i][k % 4]);
                }
            }
            for (int i = 0; i < R; i++) {
                const __m512 ps = _mm512_add_ps(_mm512_add_ps(p[i][0], p[i][1]), _mm512_add_ps(p[i][2], p[i][3]));
                acc[i][j % 4] = _mm512_fmadd_ps(_mm512_set1_ps(s[i][j]), ps, acc[i][j % 4]);
            }
        }
    }
    for (int i = 0; i < R; i++)
        out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3])));
}

#define ROW1_FN(WB, GP)                                                                                    \
    QV_TARGET static float row1_##WB##_##GP(const QLayout *L, int r, const float *x, const float *s) {     \
        float out;                                                                                         \
        row1_body(L, r, x, &s, &out, WB, GP, 1);                                                           \
        return out;                                                                                        \
    }                                                                                                      \
    QV_TARGET static void row1x2_##WB##_##GP(const QLayout *L, int r, const float *x, const float *s0,     \
                                             const float *s1, float *out2) {                               \
        const float *s[2] = {s0, s1};                                                                      \
        row1_body(L, r, x, s, out2, WB, GP, 2);                                                            \
    }
#define ROW1_FNS(WB) ROW1_FN(WB, 0) ROW1_FN(WB, 1) ROW1_FN(WB, 2) ROW1_FN(WB, 4)
ROW1_FNS(2)
ROW1_FNS(3)
ROW1_FNS(4)
ROW1_FNS(8)
#define ROW1_TABLE(WB) {row1_##WB##_0, row1_##WB##_1, row1_##WB##_2, row1_##WB##_4}
#define ROW1X2_TABLE(WB) {row1x2_##WB##_0, row1x2_##WB##_1, row1x2_##WB##_2, row1x2_##WB##_4}
static const Row1Fn row1_fns[4][4] = {ROW1_TABLE(2), ROW1_TABLE(3), ROW1_TABLE(4), ROW1_TABLE(8)};
static const Row1x2Fn row1x2_fns[4][4] = {ROW1X2_TABLE(2), ROW1X2_TABLE(3), ROW1X2_TABLE(4), ROW1X2_TABLE(8)};

/* The index of the one-input kernel for L's grouping in row1_fns /
 * row1x2_fns, or -1 when a group does not hold whole pairs of a tile (e.g.
 * groups of 24, or 3 bits with groups of 128: the general kernel then). */
static int row1_index(const QLayout *L) {
    const int gp = L->groupsize / 16;
    if (L->ngroups == 1 || L->groupsize % L->tile == 0) return 0;
    if (L->groupsize % 16 != 0 || (L->K / 2) % gp != 0) return -1;
    return gp == 1 ? 1 : gp == 2 ? 2 : gp == 4 ? 3 : -1;
}

/* Row r's outliers with one input, 16 at a time (SPEC 5): out[0] += sum of
 * (value - the dense weight under it) x[c], each delta computed as
 * outlier_delta computes it (qmatvec_simd.h): the code gathered from its word
 * (tile c / 8K, lane c % 8, vector c / 8 % K), the group j = c / groupsize (a
 * correctly rounded fp32 quotient of integers below 2^24, then truncated: the
 * rounding cannot reach the next integer), s[j], z[j] and x[c] gathered.
 * Several inputs: the shared scalar loop. */
QV_TARGET static inline __attribute__((always_inline)) void outliers16_body(const QLayout *L, int r, const float *Xp,
                                                                             int nb, const float *s, const float *z,
                                                                             float *out, const int WB) {
    if (nb != 1) {
        outliers_body(L, r, Xp, nb, s, z, out, WB);
        return;
    }
    const int K = 32 / WB;
    const uint32_t *words = L->words + (size_t)r * L->ntiles * 8;
    const uint32_t k0 = L->out_rowptr[r], k1 = L->out_rowptr[r + 1];
    const __m512 gs = _mm512_set1_ps((float)L->groupsize);
    __m512 acc = _mm512_setzero_ps();
    for (uint32_t k = k0; k < k1; k += 16) {
        const __mmask16 mk = k1 - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k1 - k)) - 1);
        const __m512i cc = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, L->out_col + k));
        const __m512i v = _mm512_srli_epi32(cc, 3); /* the vector of 8 columns */
        /* t = v / K: a shift, or for K = 10 (v * 52429) >> 19, exact for v < 43691 (n <= 65536: v < 8192) */
        const __m512i t = K == 10 ? _mm512_srli_epi32(_mm512_mullo_epi32(v, _mm512_set1_epi32(52429)), 19)
                                  : _mm512_srli_epi32(v, K == 16 ? 4 : K == 8 ? 3 : 2);
        const __m512i kv = _mm512_sub_epi32(v, _mm512_mullo_epi32(t, _mm512_set1_epi32(K)));
        const __m512i widx = _mm512_add_epi32(_mm512_slli_epi32(t, 3), _mm512_and_si512(cc, _mm512_set1_epi32(7)));
        const __m512i wv = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, widx, words, 4);
        const __m512i code = _mm512_and_si512(_mm512_srlv_epi32(wv, _mm512_mullo_epi32(kv, _mm512_set1_epi32(WB))),
                                              _mm512_set1_epi32((1 << WB) - 1));
        const __m512i j = L->ngroups == 1 ? _mm512_setzero_si512()
                                          : _mm512_cvttps_epi32(_mm512_div_ps(_mm512_cvtepi32_ps(cc), gs));
        const __m512 sj = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, j, s, 4);
        const __m512 zj = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, j, z, 4);
        const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, cc, Xp, 4);
        const __m512 val = L->val16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const uint16_t *)L->out_val + k))
                                    : _mm512_maskz_loadu_ps(mk, (const float *)L->out_val + k);
        const __m512 dense = _mm512_mul_ps(sj, _mm512_sub_ps(_mm512_cvtepi32_ps(code), zj)); /* qgrid_decode */
        acc = _mm512_fmadd_ps(_mm512_sub_ps(val, dense), x, acc);
    }
    out[0] += _mm512_reduce_add_ps(acc);
}

#define OUT16_FN(WB)                                                                                         \
    QV_TARGET static void outliers16_##WB(const QLayout *L, int r, const float *Xp, int nb, const float *s,  \
                                          const float *z, float *out) {                                      \
        outliers16_body(L, r, Xp, nb, s, z, out, WB);                                                        \
    }
OUT16_FN(2)
OUT16_FN(3)
OUT16_FN(4)
OUT16_FN(8)
static const OutFn out16_fns[4] = {outliers16_2, outliers16_3, outliers16_4, outliers16_8};

void qmatvec_avx512(const QLayout *L, const float *Xp, int nb, float *Y) {
    const int wi = L->wbits == 8 ? 3 : L->wbits - 2, split = L->ngroups > 1 && L->groupsize % 16 != 0;
    const int i1 = row1_index(L);
    /* two rows at a time only when the input (fp32) does not fit L1 with the
     * statistics (48 KB per core here): it then halves the input's refills, but
     * costs registers when the input stays in L1. Either way the same result,
     * bit for bit (row1_body). */
    const int two = (size_t)L->n_pad * sizeof(float) > 32768;
    for (int b0 = 0; b0 < nb; b0 += 8) {
        int c = nb - b0 < 8 ? nb - b0 : 8;
        qv_chunk(L, Xp + (size_t)b0 * L->n_pad, c, Y + (size_t)b0 * L->m, row_fns[wi][split][c - 1],
                 i1 < 0 ? NULL : row1_fns[wi][i1], i1 < 0 || !two ? NULL : row1x2_fns[wi][i1], 0,
                 out16_fns[wi]);
    }
}
