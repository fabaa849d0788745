/* quant_cuda.h: the CUDA path of the single-layer quantization core
 * (kernels/quant_cuda.cu, quant_kernels.cu, quant_hessian.cu): RTN, GPTQ and
 * SpQR of one linear layer with the same signature and the same results as
 * quantize_layer_ref (quant/quant.h), and a device Hessian accumulator with
 * the semantics of hessian_add_window. Every public entry takes HOST
 * pointers and returns 0, or -1 after a message.
 *
 * What runs where (quantize_layer_cuda):
 *   host   checks, column order (quant_order), H' = damped / permuted H with
 *          dead columns (quant_build_hprime), the damping-retry policy of
 *          SPEC 4.4, the packing into a QuantLayer, W_deq = the CPU decoder
 *          quant_layer_dequantize(q) (so W_deq equals it bit for bit);
 *   device permutation of W, Cholesky / inverse / Cholesky of H' (cuSOLVER
 *          Dpotrf, Dpotri, Dpotrf: fp64, as the CPU path's GSL), U cast to
 *          fp32, the outlier scale (fp64 sums), the column sweep (one fused
 *          kernel per block of `blocksize` columns: group statistics with the
 *          two-level SpQR fit and the leave-one-out criterion, quantization,
 *          outliers, error feedback inside the block; fp32 like the CPU), the
 *          lazy block update (one cublasSgemm per block, fp32, no TF32), the
 *          RTN proxy loss (cublasSgemm fp32, dot product in fp64).
 *
 * Not here: the algorithms' definitions (SPEC 2-5; the scalar grid is shared
 * with the CPU through quant/grid.h), model-level calibration, file I/O,
 * the forward pass (forward_cuda.cu).
 *
 * The internal section at the end (nvcc only) is the seam between
 * quant_cuda.cu (orchestration) and quant_kernels.cu (kernels). */
#ifndef QH_QUANT_CUDA_H
#define QH_QUANT_CUDA_H

#ifdef __cplusplus
#include <math.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#endif

#include "quant.h"

/* Wall-clock seconds of the phases of one quantize_layer_cuda_ctx call. The
 * four QuantLayer fields (seconds_factor, _sweep, _loo, _pack) are filled as
 * in quantize_layer_ref; this struct splits them further. */
typedef struct QuantCudaTimes {
    double upload;         /* W host -> device and its permutation on the device (part of seconds_factor) */
    double factor;         /* H' build on the host + Cholesky / inverse / Cholesky on the device, all tries */
    double outlier_scale;  /* SPEC 5 outlier scale (part of seconds_sweep, as on the CPU) */
    double sweep;          /* the whole sweep: kernels + GEMMs (+ RTN proxy loss) */
    double sweep_kernels;  /* the fused per-block kernels alone (cudaEvent sum) */
    double sweep_gemm;     /* the lazy block updates alone (cudaEvent sum) */
    double fit_est;        /* group statistics / leave-one-out inside the fused kernels: sweep_kernels times the
                            * fraction of the kernels' SM cycles spent fitting (an estimate: the fit is fused) */
    double pack_download;  /* device -> host copies of codes, statistics, outliers */
    double pack_host;      /* building the QuantLayer on the host */
    double dequant;        /* quant_layer_dequantize into W_deq */
    double gemm_flops;     /* flops of the lazy block updates (2 m K (n - be) summed) */
} QuantCudaTimes;

/* A device context: CUDA stream, cuBLAS and cuSOLVER handles (owned). One per
 * thread; reuse it across layers to avoid the handle set-up per call. */
typedef struct QuantCuda QuantCuda;
/* 0, or -1 after a message (no GPU, handle creation failed). */
int quant_cuda_create(QuantCuda **out);
/* Frees the context and nulls the pointer (safe on NULL). */
void quant_cuda_destroy(QuantCuda **c);

/* As quantize_layer_ref (quant.h): W (m, n), H (n, n) or NULL for rtn,
 * W_deq (m, n) or NULL, all host memory; q filled on the host (decodable by
 * quant_layer_dequantize, freed by quant_layer_free). A temporary context is
 * created and destroyed inside. */
int quantize_layer_cuda(const char *method, const float *W, int m, int n, const double *H, const QuantParams *p,
                        QuantLayer *q, float *W_deq);
/* Whether `method` has a CUDA quantizer here: the methods whose CPU quantizer
 * (quant_methods[], settings.h) is the shared engine quantize_layer_ref, of
 * which quantize_layer_cuda_ctx is the twin. Others run on the CPU. */
int quant_cuda_supports(const char *method);
/* The same with a caller-owned context; times may be NULL. */
int quantize_layer_cuda_ctx(QuantCuda *c, const char *method, const float *W, int m, int n, const double *H,
                            const QuantParams *p, QuantLayer *q, float *W_deq, QuantCudaTimes *times);

/* Device Hessian accumulator (SPEC 1.3) with hessian_add_window's semantics
 * and precision (quant.h): after N windows H = (2/N) sum over their tokens
 * of x x^T; each window's X^T X by cublasSsyrk in fp32 (as the CPU's
 * cblas_ssyrk), the running mean over windows in fp64 on the device. */
typedef struct HessianAccCuda {
    int n;
    long nwindows;
    double *dH;        /* (n, n) device running mean; only the upper row-major triangle is maintained */
    float *dG;         /* (n, n) device, one window's X^T X (same triangle) */
    float *dX;         /* (cap, n) device staging of a window */
    int cap;           /* tokens dX holds */
    void *blas;        /* cublasHandle_t (owned) */
} HessianAccCuda;
/* 0, or -1 after a message. */
int hessian_cuda_init(HessianAccCuda *h, int n);
void hessian_cuda_free(HessianAccCuda *h);
/* X (ntok, n) row-major host: the tokens of one window (ntok == 0 still counts). */
int hessian_add_window_cuda(HessianAccCuda *h, const float *X, int ntok);
/* The same with X (ntok, n) already on the device (e.g. a forward backend's activations). */
int hessian_add_window_cuda_dev(HessianAccCuda *h, const float *dX, int ntok);
/* H (n, n) host, full symmetric row-major. */
int hessian_cuda_download(const HessianAccCuda *h, double *H);

#ifdef __cplusplus
}
#endif

/* ---- internal: quant_cuda.cu <-> quant_kernels.cu (nvcc only) ----------------- */
#ifdef __CUDACC__
#include <cuda_runtime.h>

#include "grid.h"

/* Everything the fused sweep kernel reads or writes, device pointers. The
 * layouts are the CPU engine's (quant_engine.h): column c of W is the
 * contiguous Wt + c*m. Letters: m rows, n columns, g group width, G =
 * ngroups, Q = qq_groups (0 when no statistic has a second level). */
typedef struct SweepDev {
    int m, n, g, ngroups, qq_groups, qq_groupsize;
    QGrid grid;          /* first-level grid of the weights */
    int scale_bits2;     /* second-level bits of the scales, 0 = fp32 / fp16 scales */
    int zero_bits2;      /* second-level bits of the zeros, 0 = none */
    int zero_int;        /* gptq_zero_rule: the zero is an integer code */
    int rows_per_cta;    /* rows of W per thread block, a multiple of qq_groupsize when Q > 0 */
    float *Wt;           /* (n, m) permuted W; updated in place, column c ends as the sweep's w_hat */
    const float *U;      /* (n, n) row-major upper Cholesky factor of H'^-1, or NULL (RTN: no feedback) */
    uint8_t *codes_t;    /* (n, m) */
    uint8_t *outlier_t;  /* (n, m) or NULL */
    float *scale, *zero; /* (G, m) the sweep's statistics (second level applied) */
    uint8_t *scale_codes, *zero_codes; /* (G, m) or NULL */
    float *qq_ss, *qq_sz, *qq_zs, *qq_zz; /* (G, Q) or NULL */
    float *Err;          /* (B, m) err of the current block's columns (U != NULL) */
    double *loss_row;    /* (m) 1/2 sum over the sweep of err^2, per row */
    unsigned long long *cycles; /* (2) SM cycles: [0] fitting, [1] whole kernels (thread 0 of each block) */
    double tau_abs;      /* SPEC 5 absolute threshold; INFINITY = none */
    float tau_f;         /* the same in fp32, for err^2 > tau (the CPU compares in fp32) */
    int has_out;         /* outliers during the sweep (U != NULL, finite tau) */
    int use_loo;         /* leave-one-out criterion when fitting */
} SweepDev;

/* Launchers: each returns 0 or -1 after a message (CUDA_CHECK, last error
 * checked after the launch). All on `stream`. */
/* out (n, m) = W (m, n) with columns permuted: out[c][r] = W[r][order[c]]
 * (0 where dead[c], when dead != NULL), minus sub[c][r] when sub != NULL. */
int qk_permute_transpose(const float *W, int m, int n, const int *order, const uint8_t *dead, const float *sub,
                         float *out, cudaStream_t stream);
/* U (n, n) row-major fp32 = the upper triangle of A (n, n) (the lower
 * column-major Cholesky factor of H'^-1, i.e. L^T row-major), lower zeroed. */
int qk_upper_from_factor(const double *A, int n, float *U, cudaStream_t stream);
/* term (n): var_rows(Wt[j]) / U[j][j]^2 (unbiased, fp64), Wt (n, m). */
int qk_outlier_terms(const float *Wt, int m, int n, const float *U, double *term, cudaStream_t stream);
/* partial (nblocks) fp64 partial sums of x[i] * y[i], i < count; nblocks <= 1024. */
int qk_dot_partials(const float *x, const float *y, size_t count, double *partial, int nblocks, cudaStream_t stream);
/* One fused sweep kernel over the columns [bs, be) (SPEC 4.5 block). u_smem:
 * stage U[bs:be, bs:be] in shared memory ((be-bs)^2 floats; the caller has
 * raised the kernel's dynamic shared memory limit to that). */
int qk_sweep_block(const SweepDev *a, int bs, int be, int u_smem, cudaStream_t stream);
/* Raise the fused kernel's dynamic shared-memory limit to `bytes`. */
int qk_sweep_set_smem(int bytes);
/* SPEC 1.3 running mean on the upper row-major (= lower column-major)
 * triangle of the (n, n) H: H = keep * H + alpha * G (G fp32), or H *= keep
 * when G is NULL (a window without tokens). */
int qk_hessian_fold(double *H, const float *G, int n, double keep, double alpha, cudaStream_t stream);
#endif

#endif
