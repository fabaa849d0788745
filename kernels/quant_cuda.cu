/* quant_cuda.cu: quantize_layer_cuda, the CUDA path of quantize_layer_ref
 * (quant.h) with the same signature and results: host orchestration of one
 * layer (see quant_cuda.h for what runs where):
 *   1. checks as quantize_layer_ref; column order on the host (quant_order);
 *   2. SPEC 4.2-4.4 on the device: H' built on the host by prepare.c
 *      (quant_build_hprime: permutation, damping, dead columns; O(n^2)),
 *      uploaded, then Cholesky (cusolverDnDpotrf), inverse from the factor
 *      (cusolverDnDpotri), Cholesky again (Dpotrf), all fp64 and all with the
 *      lower column-major triangle, which read row-major is the upper factor
 *      U of H'^-1; the damping-retry policy of quant_factor_U (x10, at most 12
 *      retries) with a failure being a positive cuSOLVER info or a factor
 *      diagonal that is not a positive finite number (linalg.c's test); U is
 *      cast to fp32 as on the CPU;
 *   3. the sweep: per block of `blocksize` columns (cut where a group would
 *      straddle the block end, engine.c's rule) one fused kernel
 *      (quant_kernels.cu) then one cublasSgemm for the lazy update (fp32,
 *      CUBLAS_DEFAULT_MATH: no TF32);
 *   4. codes and statistics downloaded in the engine's layouts and packed into
 *      a QuantLayer on the host by layer.c's quant_layer_pack (the CPU path's
 *      own packing, through quant_engine.h), W_deq = quant_layer_dequantize(q),
 *      the CPU decoder.
 * The device Hessian accumulator is in quant_hessian.cu.
 *
 * Ownership: a QuantCuda context owns a stream and the two library handles;
 * each call makes one device allocation carved into named tensors (sizes
 * first, then pointers, as forward_cuda.cu) and frees it before returning.
 *
 * Not here: the kernels (quant_kernels.cu), the CPU algorithms (quant/). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

extern "C" {
#include "quant_engine.h"
#include "settings.h"
#include "util.h"
}
#include "cuda_check.h"
#include "quant_cuda.h"

struct QuantCuda {
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    int smem_optin; /* bytes of dynamic shared memory a block may opt in to */
};

/* ---- context ---------------------------------------------------------------------- */

static int ctx_init(QuantCuda *c) {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&c->blas));
    CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    CUBLAS_CHECK(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)); /* fp32 GEMMs, no TF32 */
    CUSOLVER_CHECK(cusolverDnCreate(&c->solver));
    CUSOLVER_CHECK(cusolverDnSetStream(c->solver, c->stream));
    return 0;
}

extern "C" void quant_cuda_destroy(QuantCuda **cp) {
    if (!cp || !*cp) return;
    QuantCuda *c = *cp;
    if (c->solver) cusolverDnDestroy(c->solver);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
    *cp = NULL;
}

extern "C" int quant_cuda_create(QuantCuda **out) {
    *out = NULL;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return qh_error("quantize_layer_cuda: no CUDA device is visible");
    }
    QuantCuda *c = (QuantCuda *)qh_calloc(1, sizeof *c);
    if (ctx_init(c) != 0) {
        quant_cuda_destroy(&c);
        return -1;
    }
    *out = c;
    return 0;
}

/* ---- one layer ------------------------------------------------------------------------ */

/* SPEC 4.5 block end, engine.c's rule (static there): a block is cut where a
 * group would start inside it and reach past its end, so that every group is
 * fitted on fully updated weights. */
static int sweep_block_end(int bs, int B, int g, int n) {
    int be = bs + B < n ? bs + B : n;
    for (int gs = (bs / g + 1) * g; gs < be; gs += g) {
        int ge = gs + g < n ? gs + g : n;
        if (ge > be) return gs;
    }
    return be;
}

enum { DOT_BLOCKS = 512, FACTOR_MAX_RETRIES = 12 };

/* Everything one call owns: host scratch (engine layouts) and the device
 * allocation carved into named tensors. Zero-initialised; job_free releases
 * whatever was allocated. */
typedef struct Job {
    /* inputs (borrowed) */
    QuantCuda *c;
    const char *method;
    const QuantMethod *mi;
    const float *W;  /* (m, n) host */
    const double *H; /* (n, n) host or NULL */
    const QuantParams *p;
    int m, n, g, ngroups, qq_groups, B, nblocks;
    int scale_coded, zero_second, zero_int, use_U, may_have_out;
    /* host (owned) */
    int *order;       /* (n) permuted position -> original column; moves into q */
    int *inv;         /* (n) original column -> permuted position */
    uint8_t *dead;    /* (n) */
    double *A;        /* (n, n) H' for the factorization, or for the RTN proxy loss */
    float *Hp;        /* (n, n) fp32 H' (RTN proxy loss) */
    QuantEngine e;    /* host copies of the sweep outputs, engine layouts */
    float *Wt_host;   /* (n, m) the sweep's weights (outlier values), when outliers are possible */
    double *loss_row; /* (m) */
    double *term;     /* (n) */
    double *partial;  /* (DOT_BLOCKS) */
    cudaEvent_t *ev;  /* (2 nblocks + 1) */
    int nev;
    /* device (owned: mem and work) */
    char *mem;
    double *work;
    int lwork;
    float *W_d;           /* (m, n) W as given */
    float *Wt_d;          /* (n, m) permuted, transposed; swept in place */
    float *U_d;           /* (n, n) */
    double *A_d;          /* (n, n) H', then its factor */
    int *order_d;         /* (n) */
    uint8_t *dead_d;      /* (n) */
    uint8_t *codes_d;     /* (n, m) */
    uint8_t *out_d;       /* (n, m) */
    float *scale_d, *zero_d;            /* (G, m) */
    uint8_t *scodes_d, *zcodes_d;       /* (G, m) */
    float *qss_d, *qsz_d, *qzs_d, *qzz_d; /* (G, Q) */
    float *err_d;         /* (B, m) */
    double *loss_d;       /* (m) */
    double *term_d;       /* (n) */
    double *partial_d;    /* (DOT_BLOCKS) */
    unsigned long long *cycles_d; /* (2) */
    int *info_d;          /* (1) */
    float *Hp_d;          /* (n, n) RTN proxy loss */
    float *diff_d, *T_d;  /* (n, m) RTN proxy loss */
} Job;

static void *carve(char *base, size_t *off, size_t bytes) {
    void *p = base ? base + *off : NULL;
    *off += (bytes + 255) & ~(size_t)255;
    return p;
}

/* Run twice: base NULL adds up the sizes, then assigns the pointers. */
static size_t job_carve(Job *j, char *base) {
    const size_t m = j->m, n = j->n, G = j->ngroups, Q = j->qq_groups;
    const int rtn_loss = !j->use_U && j->H;
    size_t off = 0;
    j->W_d = (float *)carve(base, &off, m * n * sizeof(float));
    j->Wt_d = (float *)carve(base, &off, n * m * sizeof(float));
    j->U_d = j->use_U ? (float *)carve(base, &off, n * n * sizeof(float)) : NULL;
    j->A_d = j->use_U ? (double *)carve(base, &off, n * n * sizeof(double)) : NULL;
    j->order_d = (int *)carve(base, &off, n * sizeof(int));
    j->dead_d = (uint8_t *)carve(base, &off, n);
    j->codes_d = (uint8_t *)carve(base, &off, n * m);
    j->out_d = j->may_have_out ? (uint8_t *)carve(base, &off, n * m) : NULL;
    j->scale_d = (float *)carve(base, &off, G * m * sizeof(float));
    j->zero_d = (float *)carve(base, &off, G * m * sizeof(float));
    j->scodes_d = j->scale_coded ? (uint8_t *)carve(base, &off, G * m) : NULL;
    j->zcodes_d = (j->zero_second || j->zero_int) ? (uint8_t *)carve(base, &off, G * m) : NULL;
    j->qss_d = j->scale_coded ? (float *)carve(base, &off, G * Q * sizeof(float)) : NULL;
    j->qsz_d = j->scale_coded ? (float *)carve(base, &off, G * Q * sizeof(float)) : NULL;
    j->qzs_d = j->zero_second ? (float *)carve(base, &off, G * Q * sizeof(float)) : NULL;
    j->qzz_d = j->zero_second ? (float *)carve(base, &off, G * Q * sizeof(float)) : NULL;
    j->err_d = j->use_U ? (float *)carve(base, &off, (size_t)j->B * m * sizeof(float)) : NULL;
    j->loss_d = (double *)carve(base, &off, m * sizeof(double));
    j->term_d = (double *)carve(base, &off, n * sizeof(double));
    j->partial_d = (double *)carve(base, &off, DOT_BLOCKS * sizeof(double));
    j->cycles_d = (unsigned long long *)carve(base, &off, 2 * sizeof(unsigned long long));
    j->info_d = (int *)carve(base, &off, sizeof(int));
    j->Hp_d = rtn_loss ? (float *)carve(base, &off, n * n * sizeof(float)) : NULL;
    j->diff_d = rtn_loss ? (float *)carve(base, &off, n * m * sizeof(float)) : NULL;
    j->T_d = rtn_loss ? (float *)carve(base, &off, n * m * sizeof(float)) : NULL;
    return off;
}

static void job_free(Job *j) {
    if (j->mem) cudaFree(j->mem);
    if (j->work) cudaFree(j->work);
    for (int i = 0; i < j->nev; i++) cudaEventDestroy(j->ev[i]);
    free(j->ev);
    free(j->order), free(j->inv), free(j->dead), free(j->A), free(j->Hp);
    free(j->e.codes_t), free(j->e.outlier_t), free(j->e.scale), free(j->e.zero);
    free(j->e.scale_codes), free(j->e.zero_codes);
    free(j->e.qq_ss), free(j->e.qq_sz), free(j->e.qq_zs), free(j->e.qq_zz);
    free(j->Wt_host), free(j->loss_row), free(j->term), free(j->partial);
    memset(j, 0, sizeof *j);
}

/* 1 when some diagonal entry of the (n, n) factor in A_d is not a positive
 * finite number (linalg.c bad_factor), 0 when all are, -1 on a CUDA error. */
static int bad_factor_d(Job *j, double *diag) {
    const size_t n = j->n;
    CUDA_CHECK(cudaMemcpy2DAsync(diag, sizeof(double), j->A_d, (n + 1) * sizeof(double), sizeof(double), n,
                                 cudaMemcpyDeviceToHost, j->c->stream));
    CUDA_CHECK(cudaStreamSynchronize(j->c->stream));
    for (size_t i = 0; i < n; i++)
        if (!(diag[i] > 0) || !isfinite(diag[i])) return 1;
    return 0;
}

/* cuSOLVER info after a call: 0 fine, 1 not positive definite (info > 0),
 * -1 after a message on a bad argument. */
static int solver_info(Job *j, const char *what) {
    int info = 0;
    CUDA_CHECK(cudaMemcpyAsync(&info, j->info_d, sizeof(int), cudaMemcpyDeviceToHost, j->c->stream));
    CUDA_CHECK(cudaStreamSynchronize(j->c->stream));
    if (info < 0) return qh_error("%s: argument %d invalid", what, -info);
    return info > 0 ? 1 : 0;
}

/* SPEC 4.4 on the device: A_d <- H' (host A, uploaded); Cholesky, inverse,
 * Cholesky, lower triangle column-major. 0 done, 1 not positive definite,
 * -1 error. diag (n) host scratch. */
static int factor_once(Job *j, double *diag) {
    const int n = j->n;
    cudaStream_t s = j->c->stream;
    cusolverDnHandle_t h = j->c->solver;
    const cublasFillMode_t lo = CUBLAS_FILL_MODE_LOWER;
    int rc;
    CUDA_CHECK(cudaMemcpyAsync(j->A_d, j->A, (size_t)n * n * sizeof(double), cudaMemcpyHostToDevice, s));
    CUSOLVER_CHECK(cusolverDnDpotrf(h, lo, n, j->A_d, n, j->work, j->lwork, j->info_d)); /* H' = L L^T */
    if ((rc = solver_info(j, "cusolverDnDpotrf")) != 0) return rc;
    if ((rc = bad_factor_d(j, diag)) != 0) return rc;
    CUSOLVER_CHECK(cusolverDnDpotri(h, lo, n, j->A_d, n, j->work, j->lwork, j->info_d)); /* H'^-1, lower */
    if ((rc = solver_info(j, "cusolverDnDpotri")) != 0) return rc;
    CUSOLVER_CHECK(cusolverDnDpotrf(h, lo, n, j->A_d, n, j->work, j->lwork, j->info_d)); /* H'^-1 = L2 L2^T */
    if ((rc = solver_info(j, "cusolverDnDpotrf")) != 0) return rc;
    return bad_factor_d(j, diag);
}

/* quant_factor_U's policy (prepare.c) with the factorization on the device:
 * U_d = upper Cholesky factor of H'^-1 (fp32), dead (n) filled. */
static int factor_U(Job *j, double *damp_abs, int *retries) {
    const int n = j->n;
    int lw1 = 0, lw2 = 0;
    CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(j->c->solver, CUBLAS_FILL_MODE_LOWER, n, j->A_d, n, &lw1));
    CUSOLVER_CHECK(cusolverDnDpotri_bufferSize(j->c->solver, CUBLAS_FILL_MODE_LOWER, n, j->A_d, n, &lw2));
    j->lwork = lw1 > lw2 ? lw1 : lw2;
    CUDA_CHECK(cudaMalloc((void **)&j->work, (size_t)(j->lwork > 0 ? j->lwork : 1) * sizeof(double)));
    j->A = (double *)qh_malloc((size_t)n * n * sizeof(double));
    double *diag = (double *)qh_malloc((size_t)n * sizeof(double));
    const double mean = quant_mean_diag(j->H, n);
    const double unit = mean > 0 ? mean : 1.0; /* the scale for raised damping when percdamp or mean is 0 */
    double damp = j->p->percdamp * mean;
    int rc;
    *retries = 0;
    for (;;) {
        quant_build_hprime(j->H, n, j->order, damp, j->A, j->dead); /* SPEC 4.1-4.3 */
        rc = factor_once(j, diag);
        if (rc != 1 || *retries == FACTOR_MAX_RETRIES) break;
        /* SPEC 4.4: a factorization failed -> raise the damping and retry */
        (*retries)++;
        damp = damp > 0 ? damp * 10 : 0.01 * unit;
    }
    free(diag);
    *damp_abs = damp;
    if (rc == 1)
        return qh_error("H is not positive definite even with damping %g (%d retries, mean diag %g); "
                        "check the Hessian for NaN or a negative diagonal",
                        damp, *retries, mean);
    if (rc != 0) return -1;
    if (*retries)
        qh_warn("H not positive definite: damping raised to %g x mean(diag H) after %d retries",
                mean > 0 ? damp / mean : damp, *retries);
    if (qk_upper_from_factor(j->A_d, n, j->U_d, j->c->stream) != 0) return -1;
    return 0;
}

/* RTN with H: 1/2 tr(dW H' dW^T) (layer.c trace_loss): H' fp32, one fp32 GEMM,
 * the dot product in fp64 (partials summed on the host in order). */
static int rtn_proxy_loss(Job *j, double damp_abs, double *loss) {
    const int m = j->m, n = j->n;
    cudaStream_t s = j->c->stream;
    j->A = (double *)qh_malloc((size_t)n * n * sizeof(double));
    j->Hp = (float *)qh_malloc((size_t)n * n * sizeof(float));
    quant_build_hprime(j->H, n, j->order, damp_abs, j->A, NULL);
    for (size_t i = 0; i < (size_t)n * n; i++) j->Hp[i] = (float)j->A[i];
    CUDA_CHECK(cudaMemcpyAsync(j->Hp_d, j->Hp, (size_t)n * n * sizeof(float), cudaMemcpyHostToDevice, s));
    /* diff (n, m) = permuted W - w_hat */
    if (qk_permute_transpose(j->W_d, m, n, j->order_d, NULL, j->Wt_d, j->diff_d, s) != 0) return -1;
    /* T (n, m) = H' diff, row-major; column-major that is T^T (m, n) = diff^T (m, n) H' (n, n) */
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(j->c->blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, n, &one, j->diff_d, m, j->Hp_d, n, &zero,
                             j->T_d, m));
    if (qk_dot_partials(j->diff_d, j->T_d, (size_t)n * m, j->partial_d, DOT_BLOCKS, s) != 0) return -1;
    j->partial = (double *)qh_malloc(DOT_BLOCKS * sizeof(double));
    CUDA_CHECK(cudaMemcpyAsync(j->partial, j->partial_d, DOT_BLOCKS * sizeof(double), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    double t = 0;
    for (int i = 0; i < DOT_BLOCKS; i++) t += j->partial[i];
    *loss = 0.5 * t;
    return 0;
}

/* SPEC 5 outlier scale: the per-column terms on the device, their mean on
 * the host in column order. NAN when m < 2. */
static int outlier_scale(Job *j, double *scale) {
    const int m = j->m, n = j->n;
    if (m < 2) {
        *scale = NAN;
        return 0;
    }
    if (qk_outlier_terms(j->Wt_d, m, n, j->U_d, j->term_d, j->c->stream) != 0) return -1;
    j->term = (double *)qh_malloc((size_t)n * sizeof(double));
    CUDA_CHECK(cudaMemcpyAsync(j->term, j->term_d, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost, j->c->stream));
    CUDA_CHECK(cudaStreamSynchronize(j->c->stream));
    double total = 0;
    for (int i = 0; i < n; i++) total += j->term[i];
    *scale = total / n;
    return 0;
}

/* SPEC 4.5 / 5: the sweep, block by block: fused kernel, then the lazy update
 * W[:, be:] -= Err_block @ U[block, be:] as one sgemm. */
static int sweep(Job *j, double tau_abs, int has_out, QuantCudaTimes *t) {
    const int m = j->m, n = j->n;
    cudaStream_t s = j->c->stream;
    const QuantParams *p = j->p;
    SweepDev a;
    memset(&a, 0, sizeof a);
    a.m = m, a.n = n, a.g = j->g, a.ngroups = j->ngroups, a.qq_groups = j->qq_groups;
    a.qq_groupsize = j->qq_groups ? p->qq_groupsize : 0;
    a.grid = qgrid_weights(p);
    a.scale_bits2 = j->scale_coded ? p->qq_scale_bits : 0;
    a.zero_bits2 = j->zero_second ? p->qq_zero_bits : 0;
    a.zero_int = j->zero_int;
    /* rows per thread block: the smallest multiple of the second-level group
     * that is >= 32 (one warp), so that second-level groups never straddle blocks */
    const int unit = j->qq_groups ? p->qq_groupsize : 1;
    a.rows_per_cta = unit >= 32 ? unit : (32 + unit - 1) / unit * unit;
    a.Wt = j->Wt_d, a.U = j->U_d;
    a.codes_t = j->codes_d, a.outlier_t = has_out ? j->out_d : NULL;
    a.scale = j->scale_d, a.zero = j->zero_d, a.scale_codes = j->scodes_d, a.zero_codes = j->zcodes_d;
    a.qq_ss = j->qss_d, a.qq_sz = j->qsz_d, a.qq_zs = j->qzs_d, a.qq_zz = j->qzz_d;
    a.Err = j->err_d, a.loss_row = j->loss_d, a.cycles = j->cycles_d;
    a.tau_abs = tau_abs;
    a.tau_f = (float)tau_abs; /* compared in fp32, as the reference engine */
    a.has_out = has_out;
    a.use_loo = has_out && !p->simplified_outliers;

    CUDA_CHECK(cudaMemsetAsync(j->loss_d, 0, (size_t)m * sizeof(double), s));
    CUDA_CHECK(cudaMemsetAsync(j->cycles_d, 0, 2 * sizeof(unsigned long long), s));
    if (j->out_d) CUDA_CHECK(cudaMemsetAsync(j->out_d, 0, (size_t)n * m, s));

    /* U's block in shared memory when it fits the opt-in limit */
    const size_t ubytes = (size_t)j->B * j->B * sizeof(float);
    const int u_smem = j->use_U && ubytes <= (size_t)j->c->smem_optin;
    if (u_smem && qk_sweep_set_smem((int)ubytes) != 0) return -1;

    j->nev = 2 * j->nblocks + 1;
    j->ev = (cudaEvent_t *)qh_calloc((size_t)j->nev, sizeof(cudaEvent_t));
    for (int i = 0; i < j->nev; i++) CUDA_CHECK(cudaEventCreate(&j->ev[i]));
    const float minus1 = -1.0f, one = 1.0f;
    int k = 0;
    CUDA_CHECK(cudaEventRecord(j->ev[0], s));
    for (int bs = 0, be; bs < n; bs = be, k++) {
        be = sweep_block_end(bs, j->B, j->g, n);
        if (qk_sweep_block(&a, bs, be, u_smem, s) != 0) return -1;
        CUDA_CHECK(cudaEventRecord(j->ev[2 * k + 1], s));
        if (j->use_U && be < n) {
            /* GPTQ Alg. 1 lazy batch update. Row-major Wt[be:, :] (n-be, m) -= U[bs:be, be:]^T Err (K, m);
             * column-major (cuBLAS) the same memory is Wt' (m, n-be) -= Err' (m, K) x U'^T, with Err'
             * = Err read column-major (ld m) and U' = U[bs:be, be:] read column-major ((n-be, K), ld n). */
            CUBLAS_CHECK(cublasSgemm(j->c->blas, CUBLAS_OP_N, CUBLAS_OP_T, m, n - be, be - bs, &minus1, j->err_d, m,
                                     j->U_d + (size_t)bs * n + be, n, &one, j->Wt_d + (size_t)be * m, m));
            t->gemm_flops += 2.0 * m * (double)(be - bs) * (n - be);
        }
        CUDA_CHECK(cudaEventRecord(j->ev[2 * k + 2], s));
    }
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (k = 0; k < j->nblocks; k++) {
        float ms_k = 0, ms_g = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms_k, j->ev[2 * k], j->ev[2 * k + 1]));
        CUDA_CHECK(cudaEventElapsedTime(&ms_g, j->ev[2 * k + 1], j->ev[2 * k + 2]));
        t->sweep_kernels += 1e-3 * ms_k;
        t->sweep_gemm += 1e-3 * ms_g;
    }
    unsigned long long cyc[2] = {0, 0};
    CUDA_CHECK(cudaMemcpy(cyc, j->cycles_d, sizeof cyc, cudaMemcpyDeviceToHost));
    t->fit_est = cyc[1] ? t->sweep_kernels * (double)cyc[0] / (double)cyc[1] : 0;
    return 0;
}

/* Device -> host copies of the sweep's outputs into j->e (engine layouts). */
static int download(Job *j, int has_out) {
    const size_t m = j->m, n = j->n, G = j->ngroups, Q = j->qq_groups;
    cudaStream_t s = j->c->stream;
    QuantEngine *e = &j->e;
#define DOWN(dst, src, bytes)                                                                       \
    do {                                                                                            \
        (dst) = (__typeof__(dst))qh_malloc(bytes);                                                  \
        CUDA_CHECK(cudaMemcpyAsync((dst), (src), (bytes), cudaMemcpyDeviceToHost, s));              \
    } while (0)
    DOWN(e->codes_t, j->codes_d, n * m);
    DOWN(e->scale, j->scale_d, G * m * sizeof(float));
    DOWN(e->zero, j->zero_d, G * m * sizeof(float));
    if (j->scodes_d) DOWN(e->scale_codes, j->scodes_d, G * m);
    if (j->zcodes_d) DOWN(e->zero_codes, j->zcodes_d, G * m);
    if (j->qss_d) DOWN(e->qq_ss, j->qss_d, G * Q * sizeof(float));
    if (j->qsz_d) DOWN(e->qq_sz, j->qsz_d, G * Q * sizeof(float));
    if (j->qzs_d) DOWN(e->qq_zs, j->qzs_d, G * Q * sizeof(float));
    if (j->qzz_d) DOWN(e->qq_zz, j->qzz_d, G * Q * sizeof(float));
    if (has_out) {
        DOWN(e->outlier_t, j->out_d, n * m);
        DOWN(j->Wt_host, j->Wt_d, n * m * sizeof(float));
    }
#undef DOWN
    CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

/* The body of quantize_layer_cuda_ctx; everything it allocates hangs off j. */
static int job_run(Job *j, QuantLayer *q, float *W_deq, QuantCudaTimes *t) {
    const int m = j->m, n = j->n;
    const QuantParams *p = j->p;
    cudaStream_t s = j->c->stream;

    double t0 = qh_now();
    j->order = (int *)qh_malloc((size_t)n * sizeof(int));
    quant_order(j->H, n, p->perm, j->order); /* SPEC 4.1 */
    j->inv = (int *)qh_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) j->inv[j->order[i]] = i;
    j->dead = (uint8_t *)qh_calloc((size_t)n, 1);

    size_t bytes = job_carve(j, NULL);
    CUDA_CHECK(cudaMalloc((void **)&j->mem, bytes));
    job_carve(j, j->mem);
    CUDA_CHECK(cudaMemcpyAsync(j->W_d, j->W, (size_t)m * n * sizeof(float), cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(j->order_d, j->order, (size_t)n * sizeof(int), cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    double tu = qh_now();
    t->upload += tu - t0;

    double damp_abs = 0;
    int retries = 0;
    if (j->use_U) {
        if (factor_U(j, &damp_abs, &retries) != 0) return -1;
        CUDA_CHECK(cudaMemcpyAsync(j->dead_d, j->dead, (size_t)n, cudaMemcpyHostToDevice, s));
    } else if (j->H) {
        damp_abs = p->percdamp * quant_mean_diag(j->H, n);
    }
    CUDA_CHECK(cudaStreamSynchronize(s));
    double tf = qh_now();
    t->factor += tf - tu;
    /* SPEC 4.1 permutation, 4.3 W[:, i] = 0 for the dead columns */
    if (qk_permute_transpose(j->W_d, m, n, j->order_d, j->use_U ? j->dead_d : NULL, NULL, j->Wt_d, s) != 0)
        return -1;
    CUDA_CHECK(cudaStreamSynchronize(s));
    double t1 = qh_now();
    t->upload += t1 - tf;

    /* SPEC 5: outlier scale and absolute threshold */
    double oscale = NAN, tau_abs = INFINITY;
    if (j->may_have_out) {
        if (outlier_scale(j, &oscale) != 0) return -1;
        if (isfinite(oscale))
            tau_abs = p->outlier_threshold * oscale;
        else
            qh_warn("%s: outlier scale undefined (m = %d rows); outliers disabled for this layer", j->method, m);
    }
    const int has_out = isfinite(tau_abs);
    double t_os = qh_now();
    t->outlier_scale += t_os - t1;

    if (sweep(j, tau_abs, has_out, t) != 0) return -1;
    double proxy = NAN;
    if (j->use_U) {
        j->loss_row = (double *)qh_malloc((size_t)m * sizeof(double));
        CUDA_CHECK(cudaMemcpy(j->loss_row, j->loss_d, (size_t)m * sizeof(double), cudaMemcpyDeviceToHost));
        proxy = 0;
        for (int r = 0; r < m; r++) proxy += j->loss_row[r];
    } else if (j->H) { /* RTN: the same objective, 1/2 tr(dW H' dW^T) */
        if (rtn_proxy_loss(j, damp_abs, &proxy) != 0) return -1;
    }
    double t2 = qh_now();
    t->sweep += t2 - t_os;

    if (download(j, has_out) != 0) return -1;
    double td = qh_now();
    t->pack_download += td - t2;
    j->e.m = m, j->e.n = n, j->e.p = p;
    quant_layer_pack(q, j->method, p, m, n, j->order, j->inv, &j->e, j->Wt_host);
    j->order = NULL; /* owned by q now */
    q->proxy_loss = proxy;
    q->outlier_scale = oscale;
    q->tau_abs = tau_abs;
    double mean = j->H ? quant_mean_diag(j->H, n) : 0;
    q->damp_abs = damp_abs;
    q->damp_used = mean > 0 ? damp_abs / mean : (j->H ? damp_abs : 0);
    q->damp_retries = retries;
    for (int c = 0; c < n; c++) q->n_dead += j->dead[c];
    q->params = *p;
    double tp = qh_now();
    t->pack_host += tp - td;

    if (W_deq) quant_layer_dequantize(q, W_deq);
    double t3 = qh_now();
    t->dequant += t3 - tp;
    q->seconds_factor = t1 - t0;
    q->seconds_sweep = t2 - t1;
    q->seconds_loo = t->fit_est;
    q->seconds_pack = t3 - t2;
    return 0;
}

extern "C" int quantize_layer_cuda_ctx(QuantCuda *c, const char *method, const float *W, int m, int n,
                                       const double *H, const QuantParams *p, QuantLayer *q, float *W_deq,
                                       QuantCudaTimes *times) {
    memset(q, 0, sizeof *q);
    QuantCudaTimes tloc;
    memset(&tloc, 0, sizeof tloc);
    QuantCudaTimes *t = times ? times : &tloc;
    memset(t, 0, sizeof *t);
    /* the checks of quantize_layer_ref, shared */
    if (quant_layer_check_inputs("quantize_layer_cuda", method, W, m, n, H, p) != 0) return -1;
    const QuantMethod *mi = quant_method_find(method);
    if (!quant_cuda_supports(method)) /* AWQ: its layer quantizer and block search stay on the CPU (awq_search.c) */
        return qh_error("quantize_layer_cuda: method %s has no CUDA version", method);
    if (!c) return qh_error("quantize_layer_cuda: no CUDA context");

    Job j;
    memset(&j, 0, sizeof j);
    j.c = c, j.method = method, j.mi = mi, j.W = W, j.H = H, j.p = p, j.m = m, j.n = n;
    j.g = quant_group_width(p, n);
    j.ngroups = (n + j.g - 1) / j.g;
    j.scale_coded = p->qq_scale_bits > 0;
    j.zero_second = quant_zero_has_second_level(p);
    j.zero_int = quant_zero_is_integer_code(p);
    j.qq_groups = (j.scale_coded || j.zero_second) ? (m + p->qq_groupsize - 1) / p->qq_groupsize : 0;
    j.use_U = (mi->caps & QUANT_CAP_HESSIAN) != 0;
    j.may_have_out = (mi->caps & QUANT_CAP_OUTLIERS) && isfinite(p->outlier_threshold);
    j.B = j.use_U ? (p->blocksize < n ? p->blocksize : n) : n; /* RTN: one block, no feedback */
    for (int bs = 0; bs < n; bs = sweep_block_end(bs, j.B, j.g, n)) j.nblocks++;

    int rc = job_run(&j, q, W_deq, t);
    if (rc != 0) { /* nothing after the packing can fail, so q owns nothing yet */
        cudaStreamSynchronize(c->stream);
        cudaGetLastError(); /* clear a non-sticky error for the next call */
    }
    job_free(&j);
    return rc;
}

extern "C" int quant_cuda_supports(const char *method) {
    const QuantMethod *m = quant_method_find(method);
    return m && m->quantize_ref == quantize_layer_ref;
}

extern "C" int quantize_layer_cuda(const char *method, const float *W, int m, int n, const double *H,
                                   const QuantParams *p, QuantLayer *q, float *W_deq) {
    memset(q, 0, sizeof *q);
    QuantCuda *c = NULL;
    if (quant_cuda_create(&c) != 0) return -1;
    int rc = quantize_layer_cuda_ctx(c, method, W, m, n, H, p, q, W_deq, NULL);
    quant_cuda_destroy(&c);
    return rc;
}
