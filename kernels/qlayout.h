/* qlayout.h: the kernel-ready layout of one quantized linear layer (issue 18),
 * derived from a QuantLayer (quant/quant.h, what a stored quantized file loads
 * into) and read by the matrix-vector kernels (qmatvec_ref.c, qmatvec_avx2.c,
 * qmatvec_avx512.c, qmatvec.cu). The HDF5 file stays the archive; this is
 * built at load.
 *
 * Weights W_hat (m, n) are exactly quant_layer_dequantize(q): for row r and
 * permuted column c (original column perm[c]) in group j = c / groupsize,
 *     W_hat[r, perm[c]] = s(r, j) * (code[r, c] - z(r, j))        (SPEC 2)
 * except at an outlier, where W_hat[r, col] = its value (SPEC 5).
 *
 * Codes: a row of n permuted columns is cut in vectors of 8 columns and tiles
 * of K = 32 / wbits vectors (tile = 8 K columns: 80 for 3 bits, 64 for 4, 128
 * for 2, 32 for 8). A tile is 8 32-bit words; word l of tile t holds the codes
 * of columns t*8K + k*8 + l for k = 0..K-1 at bits [k*wbits, (k+1)*wbits). One
 * 256-bit load, a shift by k*wbits and a mask give the 8 codes of vector k,
 * which meet 8 consecutive (permuted) inputs; a GPU warp reads 4 tiles in one
 * 128-byte transaction. Columns past n (the last tile) hold code 0.
 *
 * Statistics per (row, group), in their stored form: a scale is a value (fp16
 * or fp32, the layer's stats_dtype) or a code of scale_bits with a second
 * level (ss, sz per (row / qq_groupsize, group)); a zero likewise, or an
 * integer code (GPTQ's rule) without a second level. Both codes of (r, j) share
 * one byte (scale | zero << scale_bits) when their bits sum to at most 8, else
 * a 16-bit word (scale | zero << 8). Second-level and outlier values are fp16
 * in the deployment mode (stats_dtype fp16, where every such value is an fp16
 * number), fp32 in the reference mode, so the decoded weights are the file's.
 *
 * Outliers: CSR over rows (uint32 row pointers), the PERMUTED column (uint16:
 * the kernels read the permuted input) and the value; a kernel adds
 * (value - the dense decoded weight under it) * x, so outliers cost one fma
 * each, in the same pass.
 *
 * The permutation (act_order) is applied to x once per call (qlayout_permute),
 * never per weight.
 *
 * Accepted: wbits 2, 3, 4 or 8; groupsize a multiple of 8 (any beta1 8..128)
 * or one group per row; n <= 65536 (16-bit columns); any beta2; both
 * stats_dtype modes; RTN, GPTQ and SpQR alike. Anything else is refused by
 * qlayout_build naming the QuantLayer field and why.
 *
 * Not here: the kernels (qmatvec_*.c, qmatvec.cu), the PackedLinear wrapper
 * (packed_quant.c). */
#ifndef QH_QLAYOUT_H
#define QH_QLAYOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#include "grid.h" /* QH_HD, qgrid_decode */
#include "half.h"
#include "quant.h"

typedef enum {
    QL_STAT_VALUE = 0, /* a value per (row, group), fp16 / fp32 */
    QL_STAT_CODED = 1, /* a code per (row, group) + second-level scale and zero per (qq group, group) */
    QL_STAT_INT = 2    /* the integer code itself (GPTQ's zero rule), no second level */
} QLStatKind;

typedef struct QLayout {
    int m, n;             /* W (m, n): out, in */
    int wbits;            /* 2, 3, 4 or 8 */
    int groupsize;        /* columns per group (n for one group per row), a multiple of 8 when ngroups > 1 */
    int ngroups;          /* ceil(n / groupsize) */
    int K;                /* vectors (codes) per 32-bit word: 32 / wbits */
    int tile;             /* columns per tile: 8 K */
    int ntiles;           /* ceil(n / tile) */
    int n_pad;            /* ntiles * tile: the permuted input's padded length */
    uint32_t *words;      /* (m, ntiles, 8) the codes, see above */
    int32_t *perm;        /* (n) permuted position -> original column; NULL for the identity */
    int val16;            /* 1: every value below (stat values, second level, outliers) is fp16, else fp32 */
    int scale_kind, zero_kind;   /* QLStatKind */
    int scale_bits, zero_bits;   /* code bits (0 for a value) */
    int code_bytes;              /* 0 (no codes), 1 or 2: bytes of the codes of one (row, group) */
    void *stat_codes;            /* (m, ngroups) uint8 or uint16: scale | zero << (scale_bits or 8) */
    void *scale_val, *zero_val;  /* (m, ngroups) fp16 / fp32, when the kind is QL_STAT_VALUE, else NULL */
    int qq_groupsize, qq_groups; /* rows per second-level group; 0 when none */
    void *qs_scale, *qs_zero;    /* (qq_groups, ngroups) second level of the scales, or NULL */
    void *qz_scale, *qz_zero;    /* (qq_groups, ngroups) second level of the zeros, or NULL */
    int64_t nnz;                 /* outliers */
    uint32_t *out_rowptr;        /* (m + 1), NULL when the layer has no outlier arrays */
    uint16_t *out_col;           /* (nnz) permuted column, increasing within a row */
    void *out_val;               /* (nnz) fp16 / fp32 value */
    uint16_t *vec_group;         /* (ntiles * K) the group of each vector of 8 columns, padding included (derived) */
    size_t bytes;                /* what a kernel reads: every array above but vec_group */
} QLayout;

/* Build L from q (q is not kept; L owns its arrays). 0, or -1 after a message
 * naming the QuantLayer field and why the layout cannot take it (e.g. wbits 5,
 * groupsize 12, a code out of range, an fp16-mode value that is not fp16). */
int qlayout_build(const QuantLayer *q, QLayout *L);
void qlayout_free(QLayout *L);

/* Every array of L: ptr[i] the address of its pointer field (a NULL field is
 * listed with bytes 0), bytes[i] its size; vec_group (derived, host kernels
 * only) is the last, QLAYOUT_NARRAYS - 1. The one list that the byte count,
 * freeing, copies (benchmarks) and the device upload (qmatvec.cu) walk. */
#define QLAYOUT_NARRAYS 13
void qlayout_arrays(QLayout *L, void **ptr[QLAYOUT_NARRAYS], size_t bytes[QLAYOUT_NARRAYS]);

/* The statistics of row r: s[j] and z[j] for j < ngroups, decoded as
 * quant_layer_dequantize decodes them (qlayout_stat). Shared by the CPU kernels. */
void qlayout_row_stats(const QLayout *L, int r, float *s, float *z);

/* X (nb, n) original order -> Xp (nb, n_pad): Xp[b, c] = X[b, perm[c]], 0 past n. */
void qlayout_permute(const QLayout *L, const float *X, int nb, float *Xp);

/* ---- element access, host and device (QH_HD: the CUDA kernel calls these
 * very functions on a QLayout whose arrays are device copies) ---- */

/* Value i of an fp16 / fp32 array. */
static inline QH_HD float qlayout_value(const void *a, size_t i, int val16) {
#ifdef __CUDA_ARCH__
    return val16 ? __half2float(__ushort_as_half(((const uint16_t *)a)[i])) : ((const float *)a)[i];
#else
    return val16 ? qh_f16_to_f32(((const uint16_t *)a)[i]) : ((const float *)a)[i];
#endif
}

/* A statistic of (row r, group j) of one kind, as layer.c's stat_value: the
 * value, the integer code, or the code decoded with the second level of
 * (r / qq_groupsize, j) (SPEC 2). */
static inline QH_HD float qlayout_stat_one(const QLayout *L, int kind, const void *val, unsigned code,
                                           const void *ss, const void *sz, int r, int j) {
    if (kind == QL_STAT_VALUE) return qlayout_value(val, (size_t)r * L->ngroups + j, L->val16);
    if (kind == QL_STAT_INT) return (float)code;
    size_t k = (size_t)(r / L->qq_groupsize) * L->ngroups + j;
    return qgrid_decode((float)code, qlayout_value(ss, k, L->val16), qlayout_value(sz, k, L->val16));
}

/* Scale and zero of (row r, group j). */
static inline QH_HD void qlayout_stat(const QLayout *L, int r, int j, float *s, float *z) {
    size_t i = (size_t)r * L->ngroups + j;
    unsigned w = L->code_bytes == 0   ? 0u
                 : L->code_bytes == 1 ? (unsigned)((const uint8_t *)L->stat_codes)[i]
                                      : (unsigned)((const uint16_t *)L->stat_codes)[i];
    unsigned smask = (1u << L->scale_bits) - 1, zshift = L->code_bytes == 1 ? (unsigned)L->scale_bits : 8u;
    *s = qlayout_stat_one(L, L->scale_kind, L->scale_val, w & smask, L->qs_scale, L->qs_zero, r, j);
    *z = qlayout_stat_one(L, L->zero_kind, L->zero_val, w >> zshift, L->qz_scale, L->qz_zero, r, j);
}

/* The code of (row r, permuted column c). */
static inline QH_HD int qlayout_code(const QLayout *L, int r, int c) {
    int v = c >> 3, t = v / L->K, k = v - t * L->K;
    uint32_t w = L->words[((size_t)r * L->ntiles + t) * 8 + (c & 7)];
    return (int)((w >> (k * L->wbits)) & ((1u << L->wbits) - 1));
}

/* Outlier k's value as fp32. */
static inline QH_HD float qlayout_out_val(const QLayout *L, int64_t k) {
    return qlayout_value(L->out_val, (size_t)k, L->val16);
}

#ifdef __cplusplus
}
#endif

#endif
