/* quant_kernels.cu: the CUDA kernels of the quantization path and their
 * launchers (declared in the internal section of quant_cuda.h):
 *   - the fused column-sweep kernel of one block of columns (SPEC 4.5, 5):
 *     group statistics at group starts on the current weights (plain min-max,
 *     or SpQR's leave-one-out range, then the first level and the second
 *     level of SPEC 2), quantization, column-wise outliers, error feedback
 *     inside the block. One thread block per group of rows (aligned to the
 *     second-level groups), one thread per row, sequential over columns; the
 *     block's U sub-block in shared memory;
 *   - the permutation / transposition of W, U from the cuSOLVER factor, the
 *     per-column terms of the SpQR outlier scale, fp64 dot-product partials,
 *     the fp64 running mean of the Hessian accumulator.
 * The scalar quantizer is quant/grid.h's (QH_HD), the very code the CPU runs.
 * Floating-point contraction: nvcc fuses a - b*c into one FMA, as gcc does on
 * the CPU build (-std=gnu11 -march=native: -ffp-contract=fast) for the same
 * expressions; divisions are IEEE (no fast math).
 *
 * Not here: the host orchestration, cuBLAS / cuSOLVER calls, packing
 * (quant_cuda.cu); the Hessian accumulator (quant_hessian.cu); the CPU
 * reference (quant/engine.c, outliers.c, stats.c), which every kernel here
 * follows line by line and cites. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "quant_cuda.h"

/* ---- permutation / transposition ----------------------------------------------- */

#define TILE 32

/* out (n, m) [c][r] = W (m, n) [r][order[c]] (0 when dead[c]) - sub[c][r]:
 * 32 x 32 tiles through shared memory, reads along the (permuted) columns,
 * writes along the rows. */
__global__ static void permute_transpose_kernel(const float *W, int m, int n, const int *order, const uint8_t *dead,
                                                const float *sub, float *out) {
    __shared__ float tile[TILE][TILE + 1]; /* [c - c0][r - r0] */
    const int c0 = blockIdx.x * TILE, r0 = blockIdx.y * TILE;
    for (int i = threadIdx.y; i < TILE; i += blockDim.y) { /* read: row r0 + i, columns c0 + threadIdx.x */
        int r = r0 + i, c = c0 + threadIdx.x;
        if (r < m && c < n) {
            float v = (dead && dead[c]) ? 0.0f : W[(size_t)r * n + order[c]]; /* SPEC 4.1, 4.3 */
            tile[threadIdx.x][i] = v;
        }
    }
    __syncthreads();
    for (int i = threadIdx.y; i < TILE; i += blockDim.y) { /* write: column c0 + i, rows r0 + threadIdx.x */
        int c = c0 + i, r = r0 + threadIdx.x;
        if (r < m && c < n) {
            float v = tile[i][threadIdx.x];
            if (sub) v -= sub[(size_t)c * m + r];
            out[(size_t)c * m + r] = v;
        }
    }
}

int qk_permute_transpose(const float *W, int m, int n, const int *order, const uint8_t *dead, const float *sub,
                         float *out, cudaStream_t stream) {
    dim3 block(TILE, 8), grid((n + TILE - 1) / TILE, (m + TILE - 1) / TILE);
    permute_transpose_kernel<<<grid, block, 0, stream>>>(W, m, n, order, dead, sub, out);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- U from the factor ----------------------------------------------------------- */

/* A (n, n) column-major holds L (lower) with L L^T = H'^-1; read row-major, its
 * upper triangle is L^T = U (SPEC 4.4: upper Cholesky factor of H'^-1). */
__global__ static void upper_from_factor_kernel(const double *A, int n, float *U) {
    size_t total = (size_t)n * n;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / n, j = k % n;
        U[k] = j >= i ? (float)A[k] : 0.0f;
    }
}

int qk_upper_from_factor(const double *A, int n, float *U, cudaStream_t stream) {
    size_t total = (size_t)n * n;
    int blocks = (int)((total + 255) / 256 < 65535 ? (total + 255) / 256 : 65535);
    upper_from_factor_kernel<<<blocks, 256, 0, stream>>>(A, n, U);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- SpQR outlier scale (SPEC 5) --------------------------------------------------- */

/* fp64 sum of v over the 256 threads of the block, fixed tree (deterministic);
 * every thread gets the total. */
__device__ static double block_sum_256(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double t = sh[0];
    __syncthreads();
    return t;
}

/* one block of 256 threads per column j: term[j] = var_rows(W[:, j]) / U[j, j]^2
 * (outliers.c spqr_outlier_scale; the mean over j is summed on the host in order) */
__global__ static void outlier_terms_kernel(const float *Wt, int m, int n, const float *U, double *term) {
    __shared__ double sh[256];
    const int j = blockIdx.x;
    const float *w = Wt + (size_t)j * m; /* (m) column j */
    double s = 0;
    for (int r = threadIdx.x; r < m; r += 256) s += w[r];
    double mean = block_sum_256(s, sh) / m;
    double ss = 0;
    for (int r = threadIdx.x; r < m; r += 256) {
        double d = w[r] - mean;
        ss += d * d;
    }
    ss = block_sum_256(ss, sh);
    if (threadIdx.x == 0) {
        double ujj = U[(size_t)j * n + j];
        term[j] = ss / (m - 1) / (ujj * ujj);
    }
}

int qk_outlier_terms(const float *Wt, int m, int n, const float *U, double *term, cudaStream_t stream) {
    outlier_terms_kernel<<<n, 256, 0, stream>>>(Wt, m, n, U, term);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- dot product partials (RTN proxy loss) ------------------------------------------ */

__global__ static void dot_partials_kernel(const float *x, const float *y, size_t count, double *partial) {
    __shared__ double sh[256];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)256 + threadIdx.x; i < count; i += (size_t)gridDim.x * 256)
        s += (double)x[i] * y[i];
    s = block_sum_256(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

int qk_dot_partials(const float *x, const float *y, size_t count, double *partial, int nblocks, cudaStream_t stream) {
    dot_partials_kernel<<<nblocks, 256, 0, stream>>>(x, y, count, partial);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- Hessian running mean ---------------------------------------------------------- */

/* element k of the column-major (n, n) arrays is (row k % n, column k / n);
 * the lower column-major triangle (row >= column) is the maintained one */
__global__ static void hessian_fold_kernel(double *H, const float *G, int n, double keep, double alpha) {
    size_t total = (size_t)n * n;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        if (k % n < k / n) continue;
        H[k] = G ? keep * H[k] + alpha * (double)G[k] : H[k] * keep;
    }
}

int qk_hessian_fold(double *H, const float *G, int n, double keep, double alpha, cudaStream_t stream) {
    size_t total = (size_t)n * n;
    int blocks = (int)((total + 255) / 256 < 65535 ? (total + 255) / 256 : 65535);
    hessian_fold_kernel<<<blocks, 256, 0, stream>>>(H, G, n, keep, alpha);
    CUDA_CHECK_LAUNCH();
    return 0;
}

/* ---- the fused sweep ---------------------------------------------------------------- */

/* Plain min-max of row r over the group columns [c0, c1) (outliers.c
 * group_range with d == NULL). */
__device__ static void range_plain(const float *Wt, int m, int c0, int c1, int r, float *xmin, float *xmax) {
    float lo = Wt[(size_t)c0 * m + r], hi = lo;
    for (int k = c0 + 1; k < c1; k++) {
        float v = Wt[(size_t)k * m + r];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *xmin = lo;
    *xmax = hi;
}

/* sum over the columns k of [c0, c1) except `skip` of ((Q(w_rk) - w_rk) / d_k)^2
 * with the grid (s, z), d_k = U[k][k] (outliers.c add_weighted_error, one row) */
__device__ static float weighted_error(const float *Wt, int m, int n, const float *U, int c0, int c1, int skip, int r,
                                       float s, float z, float maxq) {
    float acc = 0.0f;
    for (int k = c0; k < c1; k++) {
        if (k == skip) continue;
        float w = Wt[(size_t)k * m + r];
        float dk = U[(size_t)k * n + k];
        float e = (qgrid_decode(qgrid_code(w, s, z, maxq), s, z) - w) / dk;
        acc += e * e;
    }
    return acc;
}

/* SPEC 5 leave-one-out range of row r over the group columns [c0, c1)
 * (outliers.c group_range with d = diag U): base = error of the grid fitted on
 * the whole row; loo_j = error without w_j under the grid fitted without it
 * (range from the two smallest / largest, O(1) per j); weights with
 * base - loo_j > tau_abs are replaced by the mean of the row's other
 * weights, then the range is taken. One pass over j accumulates what the
 * CPU's two later passes compute (sum and count of the kept weights, their
 * range, whether any was replaced), in the same order, so the sums agree bit
 * for bit; the min / max can differ from the CPU's only in the sign of a
 * zero (when the mean equals a kept weight of the other sign of zero), which
 * changes no code and no decoded weight. */
__device__ static void range_loo(const float *Wt, int m, int n, const float *U, int c0, int c1, int r,
                                 const QGrid *grid, double tau_abs, float *xmin, float *xmax) {
    const int width = c1 - c0;
    float min1 = INFINITY, min2 = INFINITY, max1 = -INFINITY, max2 = -INFINITY;
    int imin = -1, imax = -1;
    for (int k = c0; k < c1; k++) {
        float v = Wt[(size_t)k * m + r];
        if (v < min1) {
            min2 = min1;
            min1 = v;
            imin = k;
        } else if (v < min2)
            min2 = v;
        if (v > max1) {
            max2 = max1;
            max1 = v;
            imax = k;
        } else if (v > max2)
            max2 = v;
    }
    float s, z;
    qgrid_fit(grid, min1, max1, &s, &z);
    const float base = weighted_error(Wt, m, n, U, c0, c1, -1, r, s, z, grid->maxq);
    float sum = 0.0f, klo = INFINITY, khi = -INFINITY;
    int cnt = 0, any = 0;
    for (int j = c0; j < c1; j++) {
        float lo = imin == j ? min2 : min1;
        float hi = imax == j ? max2 : max1;
        if (width == 1) lo = hi = 0; /* nothing left to fit; loo is the empty sum */
        qgrid_fit(grid, lo, hi, &s, &z);
        float acc = weighted_error(Wt, m, n, U, c0, c1, j, r, s, z, grid->maxq);
        int flag = (double)(base - acc) > tau_abs; /* reduction = base - loo */
        float w = Wt[(size_t)j * m + r];
        if (flag) {
            any = 1;
        } else {
            sum += w;
            cnt++;
            klo = w < klo ? w : klo;
            khi = w > khi ? w : khi;
        }
    }
    /* the mean of the kept weights (0 when every weight is flagged, as the
     * reference's clamp_min(1)) stands in for the flagged ones */
    float mean = sum / (float)(cnt > 0 ? cnt : 1);
    if (any) {
        klo = mean < klo ? mean : klo;
        khi = mean > khi ? mean : khi;
    }
    *xmin = klo;
    *xmax = khi;
}

/* The statistics of group gi (columns [c0, ge)) for the rows [r0, r1) of this
 * thread block (engine.c group start: group_range + stats_fit_rows). Every
 * thread fits its rows; after a barrier each second-level group (aligned to
 * r0) is coded by one thread. Ends with a barrier. */
__device__ static void fit_group(const SweepDev &a, int gi, int c0, int ge, int r0, int r1) {
    const int m = a.m;
    const QGrid grid = a.grid;
    float *s = a.scale + (size_t)gi * m, *z = a.zero + (size_t)gi * m; /* (m) */
    for (int r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
        float lo, hi;
        if (a.use_loo) /* SpQR Alg. 1: outlier-aware fit (SPEC 5) */
            range_loo(a.Wt, m, a.n, a.U, c0, ge, r, &grid, a.tau_abs, &lo, &hi);
        else
            range_plain(a.Wt, m, c0, ge, r, &lo, &hi);
        qgrid_fit(&grid, lo, hi, &s[r], &z[r]); /* SPEC 2 first level */
        if (a.zero_int) a.zero_codes[(size_t)gi * m + r] = (uint8_t)z[r]; /* in [0, maxq] by the rule */
    }
    if (a.scale_bits2 || a.zero_bits2) {
        __syncthreads(); /* the first level of all rows of the block is written */
        const int b2 = a.qq_groupsize;
        for (int q0 = r0 + threadIdx.x * b2; q0 < r1; q0 += blockDim.x * b2) {
            int q1 = q0 + b2 < m ? q0 + b2 : m; /* the last second-level group may be smaller */
            size_t k = (size_t)gi * a.qq_groups + q0 / b2;
            if (a.scale_bits2)
                qgrid_second_level_code(s, q0, q1, a.scale_bits2, a.scale_codes + (size_t)gi * m, &a.qq_ss[k], &a.qq_sz[k]);
            if (a.zero_bits2)
                qgrid_second_level_code(z, q0, q1, a.zero_bits2, a.zero_codes + (size_t)gi * m, &a.qq_zs[k], &a.qq_zz[k]);
        }
    }
    __syncthreads(); /* statistics visible to every thread before quantizing */
}

/* w[j * m] -= ev * u[j - off] for j in [j0, j1): the in-block error feedback
 * of one row (w = Wt + r, u = row c of U from column off on). Eight loads are
 * issued before the eight stores (the compiler cannot prove the strided
 * addresses distinct, so the plain loop would serialize load -> store);
 * every element gets the same single fused multiply-add as in the plain
 * loop, so the result is identical. */
__device__ static void row_update(float *w, size_t m, int j0, int j1, float ev, const float *u, int off) {
    int j = j0;
    for (; j + 8 <= j1; j += 8) {
        float v[8];
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = w[(size_t)(j + k) * m];
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] -= ev * u[j + k - off];
#pragma unroll
        for (int k = 0; k < 8; k++) w[(size_t)(j + k) * m] = v[k];
    }
    for (; j < j1; j++) w[(size_t)j * m] -= ev * u[j - off];
}

/* SPEC 4.5 / 5: the columns [bs, be) of the sweep for the rows of this thread
 * block (engine.c quant_engine_ref, one block iteration). Dynamic shared
 * memory: U[bs:be, bs:be] row-major when u_smem. */
__global__ static void sweep_block_kernel(SweepDev a, int bs, int be, int u_smem) {
    extern __shared__ float sU[]; /* (Bk, Bk) */
    const long long t_kernel = clock64();
    long long fit_cycles = 0;
    const int m = a.m, n = a.n, g = a.g, Bk = be - bs;
    const int r0 = blockIdx.x * a.rows_per_cta, r1 = r0 + a.rows_per_cta < m ? r0 + a.rows_per_cta : m;
    const float maxq = a.grid.maxq;
    if (a.U && u_smem) {
        for (int i = threadIdx.x; i < Bk * Bk; i += blockDim.x)
            sU[i] = a.U[(size_t)(bs + i / Bk) * n + bs + i % Bk];
        __syncthreads();
    }
    for (int c0 = bs, c1; c0 < be; c0 = c1) {
        c1 = (c0 / g + 1) * g < be ? (c0 / g + 1) * g : be;
        const int gi = c0 / g;
        if (c0 % g == 0) {
            /* SPEC 4.5 / 5 (SpQR Alg. 1): fit on the current weights; the host's block
             * cut guarantees the group's columns have every update from columns < c0 */
            long long t0 = clock64();
            fit_group(a, gi, c0, c0 + g < n ? c0 + g : n, r0, r1);
            fit_cycles += clock64() - t0;
        }
        /* SPEC 4.5: quantize columns c0..c1-1, error feedback inside the block */
        for (int r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
            const float s = a.scale[(size_t)gi * m + r], z = a.zero[(size_t)gi * m + r];
            double loss = 0;
            for (int c = c0; c < c1; c++) {
                float *wc = a.Wt + (size_t)c * m + r;
                const float wv = *wc;
                float q = qgrid_code(wv, s, z, maxq);
                float wh = qgrid_decode(q, s, z);
                if (!a.U) { /* SPEC 3: RTN, the quantizer on the original weights */
                    a.codes_t[(size_t)c * m + r] = (uint8_t)q;
                    *wc = wh;
                    continue;
                }
                /* row c of U from column bs on: urow[j - bs] = U[c][j] */
                const float *urow = u_smem ? sU + (size_t)(c - bs) * Bk : a.U + (size_t)c * n + bs;
                const float dcc = urow[c - bs];
                float ev = (wv - wh) / dcc; /* err = (W[:, c] - w_hat) / U[c, c]; GPTQ Alg. 1 */
                if (a.has_out) {
                    /* SPEC 5 (SpQR Alg. 1): err^2 > tau_abs -> outlier: keeps its value, zero
                     * error, dense code = quantize(0) (ignored on decode) */
                    int o = ev * ev > a.tau_f;
                    a.outlier_t[(size_t)c * m + r] = (uint8_t)o;
                    if (o) {
                        q = qgrid_code(0.0f, s, z, maxq);
                        wh = wv;
                        ev = 0.0f;
                    }
                }
                a.codes_t[(size_t)c * m + r] = (uint8_t)q;
                *wc = wh;
                a.Err[(size_t)(c - bs) * m + r] = ev;
                loss += (double)ev * ev; /* SPEC 4.6 */
                /* W[:, c+1 : block_end] -= err (outer) U[c, c+1 : block_end] */
                row_update(a.Wt + r, m, c + 1, be, ev, urow, bs);
            }
            if (a.U) a.loss_row[r] += 0.5 * loss;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0 && a.cycles) {
        atomicAdd(&a.cycles[0], (unsigned long long)fit_cycles);
        atomicAdd(&a.cycles[1], (unsigned long long)(clock64() - t_kernel));
    }
}

int qk_sweep_set_smem(int bytes) {
    CUDA_CHECK(cudaFuncSetAttribute(sweep_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return 0;
}

int qk_sweep_block(const SweepDev *a, int bs, int be, int u_smem, cudaStream_t stream) {
    const int rows = a->rows_per_cta;
    int threads = (rows + 31) / 32 * 32;
    threads = threads < 256 ? threads : 256;
    const int blocks = (a->m + rows - 1) / rows;
    const size_t smem = (a->U && u_smem) ? (size_t)(be - bs) * (be - bs) * sizeof(float) : 0;
    sweep_block_kernel<<<blocks, threads, smem, stream>>>(*a, bs, be, u_smem);
    CUDA_CHECK_LAUNCH();
    return 0;
}
