/* qmatvec_avx2.c: the AVX2 + FMA quantized matrix-vector kernel (qmatvec.h)
 * over the kernel-ready layout (qlayout.h). Per row: the statistics decoded
 * once (qlayout_row_stats, s and -s z per group), then per tile one 256-bit
 * load of 8 code words; vector k of the tile is (words >> k wbits) & mask,
 * converted to fp32 and decoded as w = s code - s z (one fma, SPEC 2), then
 * multiplied with 8 consecutive permuted inputs of each of up to 8 vectors
 * (fp32 accumulators, several chains when nb is small). Outliers (SPEC 5)
 * add (value - w under it) x after the dense part, from the CSR.
 *
 * Compiled for AVX2 + FMA with a target attribute whatever the build's flags,
 * so the binary still runs on a CPU without them: callers check
 * qmatvec_avx2_supported() first (__builtin_cpu_supports). The row loop is
 * split over OpenMP threads only when m n nb reaches QH_PAR_MIN_WORK, by shape
 * alone (base/util.h: small parallel regions cost milliseconds on a loaded
 * machine). Specialized per (wbits, nb) by an always-inlined body, so that the
 * shifts and the unrolling are constant. */
#include <immintrin.h>
#include <stdlib.h>

#include "grid.h"
#include "qmatvec.h"
#include "util.h"

#define QV_TARGET __attribute__((target("avx2,fma")))

int qmatvec_avx2_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
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
    const __m128i shift = _mm_cvtsi32_si128(WB);
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
            wv = _mm256_srl_epi32(wv, shift);
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

/* nb <= 8 inputs */
static void qmatvec_chunk(const QLayout *L, const float *Xp, int nb, float *Y) {
    const int m = L->m, G = L->ngroups, g = L->groupsize;
    const RowFn fn = row_fns[L->wbits == 8 ? 3 : L->wbits - 2][nb - 1];
    const size_t ld = (size_t)L->n_pad;
#pragma omp parallel if (1.0 * m * L->n * nb >= QH_PAR_MIN_WORK)
    {
        float *s = qh_malloc((size_t)G * sizeof *s), *z = qh_malloc((size_t)G * sizeof *z);
        float *nsz = qh_malloc((size_t)G * sizeof *nsz);
        float out[8];
#pragma omp for schedule(static)
        for (int r = 0; r < m; r++) {
            qlayout_row_stats(L, r, s, z);
            for (int j = 0; j < G; j++) nsz[j] = -s[j] * z[j];
            fn(L, r, Xp, s, nsz, out);
            if (L->out_rowptr)
                for (uint32_t k = L->out_rowptr[r]; k < L->out_rowptr[r + 1]; k++) {
                    int c = L->out_col[k], j = c / g;
                    float d = qlayout_out_val(L, k) - qgrid_decode((float)qlayout_code(L, r, c), s[j], z[j]);
                    for (int b = 0; b < nb; b++) out[b] += d * Xp[b * ld + c];
                }
            for (int b = 0; b < nb; b++) Y[(size_t)b * m + r] = out[b];
        }
        free(s), free(z), free(nsz);
    }
}

void qmatvec_avx2(const QLayout *L, const float *Xp, int nb, float *Y) {
    for (int b0 = 0; b0 < nb; b0 += 8) {
        int c = nb - b0 < 8 ? nb - b0 : 8;
        qmatvec_chunk(L, Xp + (size_t)b0 * L->n_pad, c, Y + (size_t)b0 * L->m);
    }
}
