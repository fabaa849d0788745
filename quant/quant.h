/* quant.h: the public API of the single-layer quantization core: parameters
 * (defaults and validation), the compressed form of one linear layer
 * (QuantLayer), quantizing a layer with RTN, GPTQ or SpQR (SPEC 2-5), decoding
 * it, bits per parameter (SPEC 6), bit packing of codes, and the Hessian
 * accumulator (SPEC 1.3).
 *
 * Not here: the model-level sequential calibration, file I/O (HDF5), the CLI,
 * CUDA kernels. Internal seams between the files of quant/ are in
 * quant_internal.h; the scalar min-max grid is in grid.h.
 *
 * Letters used in shape comments: m = rows of W (outputs), n = columns of W
 * (inputs), g = groupsize (beta1), ngroups = ceil(n / g), qq_groups =
 * ceil(m / qq_groupsize) (beta2), nnz = number of outliers. */
#ifndef QH_QUANT_H
#define QH_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ---- parameters ---------------------------------------------------------- */

typedef enum { QH_PERM_IDENTITY = 0, QH_PERM_ACT_ORDER = 1 } QuantPerm;

/* The precision in which a QuantLayer keeps (and a file stores) its
 * floating-point values: the first-level statistics that are not coded, the
 * second-level statistics and the outlier values (SPEC 1, 5).
 * QH_STATS_FP32, the reference mode and the default: the values the sweep
 * quantized with, so the decoded weights are the sweep's own (those the SpQR
 * reference writes back into the model). QH_STATS_FP16, the deployment mode:
 * every such value rounded to fp16, as a deployed SpQR file holds it, and the
 * weights decoded from that form. */
typedef enum { QH_STATS_FP32 = 0, QH_STATS_FP16 = 1 } QuantStatsDtype;
/* "fp32" | "fp16" (NULL for a value out of range). */
const char *quant_stats_dtype_name(QuantStatsDtype d);
/* "fp32" | "fp16" -> *d; 0, or -1 (no message) for anything else. */
int quant_stats_dtype_parse(const char *s, QuantStatsDtype *d);
/* Bits of one stored value: 32 or 16. */
int quant_stats_dtype_bits(QuantStatsDtype d);

typedef struct QuantParams {
    int wbits;                /* 1..8 */
    int groupsize;            /* beta1; 0 = one group per row (whole input dim) */
    int qq_scale_bits;        /* 0 = scales not quantized (kept as values, stats_dtype); else 1..8 */
    int qq_zero_bits;         /* 0 = zeros not quantized (values, stats_dtype) */
    int qq_groupsize;         /* beta2, rows per second-level group; required (>0) iff qq bits > 0 */
    double outlier_threshold; /* tau; INFINITY = no outliers; must be >= 0 */
    int simplified_outliers;  /* 1: skip the leave-one-out criterion (SPEC 5) */
    double percdamp;          /* SPEC 4.2 */
    QuantPerm perm;           /* SPEC 4.1 */
    int sym, round_zero;      /* SPEC 2 */
    int gptq_zero_rule;       /* GPTQ's original rule (rounded zero, range contains 0); off by default */
    int blocksize;            /* SPEC 4.5, 128 */
    int true_sequential;      /* SPEC 1.3: Hessians of the block's groups in turn (model-level calibration;
                               * the layer quantizer ignores it) */
    QuantStatsDtype stats_dtype; /* reference (fp32, default) or deployment (fp16) values; see above */
    int awq_grid;             /* AWQ: exponents tried by the scale search, 0, 1/awq_grid, ..; 1..1000 */
    int awq_clip;             /* AWQ: the clipping search on (1) or off */
    int awq_windows;          /* AWQ: calibration windows the searches use (the first ones; 0 = all) */
} QuantParams;

/* Defaults of a method of quant_methods[] (settings.h): the common defaults of
 * quant_settings[], then the method's own (an unknown name gets the common
 * defaults; quant_params_validate rejects it). Common: wbits 4, per-row
 * groups, unquantized statistics, no outliers, percdamp 0.01, identity order,
 * SpQR's zero rule, blocksize 128, reference mode (fp32 values). "spqr": the
 * paper's near-lossless setting except
 * the order (identity): wbits 4, groupsize 16, qq 3/3/16, tau 0.2, percdamp 1.0. */
void quant_params_default(QuantParams *p, const char *method);

/* 0 if p is usable for `method` on a (m, n) layer; else -1 after a message
 * (qh_error) naming the parameter and the accepted range. */
int quant_params_validate(const QuantParams *p, const char *method, int m, int n);

/* ---- the compressed layer ------------------------------------------------- */

typedef struct QuantLayer {      /* the compressed form of one linear layer W (m, n); owns every array */
    char method[8];              /* "rtn", "gptq" or "spqr" */
    int m, n, ngroups, wbits, groupsize; /* groups of groupsize along the permuted input dim; last may be narrower;
                                          * groupsize is the effective width (n when params.groupsize == 0) */
    int *perm;                   /* (n) permuted position -> original column */
    uint8_t *codes;              /* (m, n) dense code per weight, permuted column order */
    QuantStatsDtype stats_dtype; /* the precision of every float array below (scale_fp .. outlier_val):
                                  * fp32, or fp16 (each value then exactly an fp16 number, stored as fp16) */
    /* first-level statistics per (row, group); either values or codes (+ second level) */
    float *scale_fp, *zero_fp;   /* (m, ngroups) when not coded, else NULL */
    uint8_t *scale_codes, *zero_codes; /* (m, ngroups) when coded, else NULL */
    int scale_code_bits;         /* bits of a scale code (qq_scale_bits), 0 when fp16 */
    int zero_code_bits;          /* bits of a zero code: qq_zero_bits (second level), or wbits when the zero is
                                  * the integer code itself (gptq_zero_rule), 0 when fp16 */
    int qq_groupsize;            /* rows per second-level group (0 when no statistic is second-level coded) */
    int qq_groups;               /* ceil(m / qq_groupsize), 0 when unused */
    /* second level: a coded statistic x of (row r, group j) decodes as
     * ss[r / qq_groupsize, j] * (code - sz[r / qq_groupsize, j]) (fp32 arithmetic) */
    float *qq_scale_scale, *qq_scale_zero; /* (qq_groups, ngroups), when scales are coded, else NULL */
    float *qq_zero_scale, *qq_zero_zero;   /* (qq_groups, ngroups), when zeros have a second level, else NULL */
    /* outliers, CSR over rows, column index in ORIGINAL column order, increasing within a row */
    int64_t *outlier_rowptr;     /* (m + 1) */
    uint16_t *outlier_col;       /* (nnz) */
    float *outlier_val;          /* (nnz) the kept weight (exact in fp32 mode) */
    int64_t n_outliers;          /* nnz */
    /* AWQ (awq.c): per input channel scales s (n), ORIGINAL column order, in the
     * precision of stats_dtype, all finite and > 0: the codes quantize W diag(s)
     * and decoding divides column c by s[c] (the scale folded into the layer
     * instead of the previous operation); NULL for every other method */
    float *in_scale;
    /* diagnostics */
    double proxy_loss;           /* SPEC 4.6: sum (w - w_hat)^2 / U[c,c]^2 / 2 over the sweep; for rtn with H:
                                  * 1/2 tr(dW H' dW^T) with H' the damped H (equal for GPTQ in exact arithmetic);
                                  * NAN for rtn without H */
    double outlier_scale;        /* SPEC 5, NAN when not computed */
    double tau_abs;              /* SPEC 5, INFINITY when no outliers */
    double damp_used;            /* final relative damping: the damping added divided by mean(diag H) */
    double damp_abs;             /* final damping added to the diagonal */
    int damp_retries;            /* factorizations that failed and were retried with 10x the damping */
    int n_dead;                  /* columns with H[i,i] == 0 */
    double seconds_factor;       /* permutation, damping, Cholesky / inverse / Cholesky */
    double seconds_sweep;        /* the column sweep, statistics fitting included */
    double seconds_loo;          /* statistics fitting alone (leave-one-out included), part of seconds_sweep */
    double seconds_pack;         /* building this struct and decoding W_deq */
    QuantParams params;          /* what made it */
} QuantLayer;

/* Free every array and zero the struct (safe on a zeroed or freed struct). */
void quant_layer_free(QuantLayer *q);

/* Quantize W (m, n) row-major given H (n, n) row-major (double, symmetric, the
 * 2/N sum of x x^T; may be NULL for rtn) with method "rtn", "gptq" or "spqr".
 * Fills q (any previous content is ignored, not freed) and writes the weights
 * decoded from q into W_deq (m, n), original column order (W_deq may be NULL):
 * with p->stats_dtype fp32 (reference mode) these are bit for bit the sweep's
 * own weights (each column as quantized with the fp32 statistics, outliers at
 * their exact value); with fp16 they are decoded from the 16-bit form.
 * Returns 0, or -1 after a message (bad parameters, non-finite input, a
 * Hessian that stays indefinite after all damping retries). */
int quantize_layer_ref(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p,
                       QuantLayer *q, float *W_deq);

/* ---- AWQ, the layer's part (awq.c; the block-level search is harness/calib/awq_search.c) ---- */

/* The clipping search of the AWQ reference (auto_clip): per (row, group) the
 * largest |w| is shrunk by 1 - i / AWQ_CLIP_GRID, i < AWQ_CLIP_STEPS, and the
 * one whose quantized group output over the sampled tokens is closest to the
 * original is kept; at most AWQ_CLIP_TOKENS tokens are used. */
#define AWQ_CLIP_GRID 20
#define AWQ_CLIP_STEPS 10 /* max_shrink 0.5 of the reference: shrink factors 1, 0.95, .., 0.55 */
#define AWQ_CLIP_TOKENS 512

/* Quantize W (m, n) with AWQ given its per input channel scales s (n, > 0,
 * finite; NULL: all 1) and, for the clipping search, X (ntok, n) a sample of
 * the layer's inputs (NULL / ntok 0: no clipping): s is kept in the precision
 * of p->stats_dtype, W diag(s) clipped (auto_clip, in the scaled domain with
 * the inputs X diag(s)^-1) and quantized by RTN with p's grid and groups; q
 * holds the codes, statistics and s (in_scale), W_deq (may be NULL) the
 * decoded weights, Q(W diag(s)) diag(s)^-1. With s = 1 and no X, q's codes
 * and W_deq are exactly RTN's. 0, or -1 after a message. */
int awq_quantize_layer(const float *W, int m, int n, const float *s, const float *X, int ntok, const QuantParams *p,
                       QuantLayer *q, float *W_deq);
/* The first c with s[c] not finite or not > 0 (what QuantLayer.in_scale may
 * not hold), -1 when all n are valid. */
int awq_scale_invalid(const float *s, int n);
/* The quantize_ref of quant_methods[]'s "awq": awq_quantize_layer with s = 1
 * and no clipping (the search's ratio 0: plain RTN stored in AWQ's layout);
 * H is not used. The calibrated method runs the block-level search instead. */
int awq_quantize_ref(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p,
                     QuantLayer *q, float *W_deq);

/* Decode q back to dense W_out (m, n) in original column order. Equal bit for
 * bit to the W_deq written by quantize_layer_ref. */
void quant_layer_dequantize(const QuantLayer *q, float *W_out);

/* ---- bits per parameter (SPEC 6) ---------------------------------------------- */

/* The paper's formula: wbits + (sbits + zbits) / beta1 + 32 * (number of
 * second-level coded statistics) / (beta1 * beta2) + 32 * outlier_fraction,
 * 16 bits for an fp16 statistic, wbits for an integer zero (round_zero or
 * gptq_zero_rule). groupsize 0 (per row) is counted as beta1 = infinity here
 * (statistics cost 0; use quant_bits_formula_n for the exact per-row cost). */
double quant_bits_formula(const QuantParams *p, double outlier_fraction);
/* Same, with groupsize 0 counted as beta1 = n. */
double quant_bits_formula_n(const QuantParams *p, int n, double outlier_fraction);
/* The formula of one (m, n) layer of `method`: quant_bits_formula_n plus, for
 * a method with per input channel scales (QUANT_CAP_ACT_SCALE, AWQ), one
 * stats_dtype value per column: 32 / m or 16 / m bits per parameter. */
double quant_bits_formula_layer(const QuantParams *p, const char *method, int m, int n, double outlier_fraction);

/* The stored format: one entry per tensor written, each a packed stream of
 * `count` elements of `bits` bits, rounded up to whole bytes. Tensors:
 * codes (m*n x wbits); scale / zero as values (m*ngroups x v) or codes
 * (m*ngroups x code bits) plus the second level (2 x qq_groups*ngroups x v);
 * outliers when the method can have them (spqr, finite tau): row pointers
 * (m+1 x 32, uint32), columns (nnz x 16), values (nnz x v); v = 32 bits in
 * the reference mode (fp32), 16 in the deployment mode (fp16);
 * the permutation (n x 16) when it is act_order; AWQ's per input channel
 * scales (n x v) when the layer has them. */
typedef struct QuantStoredTensor {
    const char *name;
    int64_t count;
    int bits;
    int64_t bytes;
} QuantStoredTensor;
#define QUANT_MAX_STORED_TENSORS 16
/* Fills t[0..k) and returns k. */
int quant_layer_stored_tensors(const QuantLayer *q, QuantStoredTensor t[QUANT_MAX_STORED_TENSORS]);
/* 8 x the sum of the bytes above. */
int64_t quant_layer_stored_bits(const QuantLayer *q);

/* ---- bit packing (pack.c) ---------------------------------------------------- */

/* Bytes taken by `count` codes of `bits` bits (1..16), packed without gaps. */
size_t quant_packed_bytes(size_t count, int bits);
/* Pack codes[i] < 2^bits (bits 1..8), LSB first: code i occupies bits
 * [i*bits, (i+1)*bits) of the stream, bit b of the stream is bit (b % 8) of
 * byte b / 8. out has quant_packed_bytes(count, bits) bytes; unused high bits
 * of the last byte are 0. */
void quant_pack_codes(const uint8_t *codes, size_t count, int bits, uint8_t *out);
void quant_unpack_codes(const uint8_t *in, size_t count, int bits, uint8_t *codes);

/* ---- Hessian accumulator (SPEC 1.3) ----------------------------------------- */

/* Running mean over windows: after N calls, H = (2/N) sum over the tokens of
 * all windows of x x^T: each window's sum in fp32 (relative error ~1e-6 for
 * 2048-token windows), the mean over windows in double. */
typedef struct {
    int n;
    long nwindows;
    double *H; /* (n, n) row-major, full symmetric */
    float *scratch; /* (n, n) one window's X^T X, owned */
} HessianAcc;
void hessian_init(HessianAcc *h, int n);
void hessian_free(HessianAcc *h);
/* X (ntok, n) row-major: the tokens of one window. A window with ntok == 0
 * still counts as a window. */
void hessian_add_window(HessianAcc *h, const float *X, int ntok);

#endif
