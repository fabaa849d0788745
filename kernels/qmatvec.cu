/* qmatvec.cu: the CUDA fused decode-and-multiply over the kernel-ready layout
 * (qlayout.h) and its PackedLinear (device pointers): Y (nb, m) = X (nb, n)
 * W_hat^T, W_hat = quant_layer_dequantize(q), fp32 accumulation, the outliers
 * (SPEC 5) applied in the same kernel, nb up to 8 per launch (more in chunks).
 *
 * One warp per row. Per step the warp reads 4 tiles of the row's codes (32
 * words, one 128-byte transaction), QV_UNROLL steps loaded before they are
 * used; lane l holds word l % 8 of tile l / 8, its K codes meeting columns
 * t*8K + k*8 + l % 8 (the layout's order). A code is
 * decoded as s * (code - z) with the statistics of its group (SPEC 2),
 * decoded in the kernel from their stored bits by the same QH_HD functions as
 * the CPU (qlayout_stat: first level codes + second level), once per row by
 * the warp's lanes into shared memory (in place when the row has more than
 * 1536 groups), read when a lane's group changes. After the dense part the lanes share the
 * row's outliers: each adds (value - the dense weight under it) x. A warp
 * shuffle sums the lanes. The input is permuted and zero-padded once per call
 * into a stream-ordered scratch (qlayout's permutation on the device).
 *
 * Not here: the layout's construction and checks (qlayout.c, on the host),
 * the CPU kernels (qmatvec_ref.c, qmatvec_avx2.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "qmatvec_cuda.h"

#define QV_WARPS 4  /* rows (warps) per block */
#define QV_UNROLL 4 /* steps of 4 tiles whose words a lane loads before using them */
#define QV_SMEM_MAX (48 * 1024) /* the default dynamic shared memory of a block: rows of up to 1536 groups */

/* Xp[b, c] = X[b, perm[c]] (perm NULL: the identity), 0 for n <= c < n_pad. */
__global__ void qv_permute(const float *X, const int32_t *perm, int n, int n_pad, int nb, float *Xp) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)nb * n_pad) return;
    int b = (int)(i / n_pad), c = (int)(i % n_pad);
    Xp[i] = c < n ? X[(long)b * n + (perm ? perm[c] : c)] : 0.0f;
}

/* stats_smem: the row's statistics decoded by the warp's lanes into shared
 * memory first (2 ngroups floats per warp, qlayout_stat), then read per group
 * change; 0 (a row with too many groups for QV_SMEM_MAX): decoded in place. */
template <int NB>
__global__ void __launch_bounds__(QV_WARPS * 32) qv_kernel(QLayout L, const float *__restrict__ Xp, float *Y,
                                                           int stats_smem) {
    extern __shared__ float qv_shared[];
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * QV_WARPS + (threadIdx.x >> 5);
    if (r >= L.m) return;
    float *ss = NULL, *zs = NULL; /* (ngroups) the row's scales and zeros */
    if (stats_smem) {
        ss = qv_shared + (size_t)(threadIdx.x >> 5) * 2 * L.ngroups, zs = ss + L.ngroups;
        for (int j = lane; j < L.ngroups; j += 32) qlayout_stat(&L, r, j, ss + j, zs + j);
        __syncwarp();
    }
    const int K = L.K, wb = L.wbits, g = L.groupsize;
    const uint32_t mask = (1u << wb) - 1;
    const size_t ld = (size_t)L.n_pad;
    const uint32_t *words = L.words + (size_t)r * L.ntiles * 8;
    float acc[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) acc[b] = 0.0f;
    int jc = -1;
    float s = 0.0f, z = 0.0f;
    /* QV_UNROLL steps of 4 tiles per iteration, their words loaded first: more
     * bytes in flight per warp (a step alone is one 128-byte load) */
    for (int t0 = lane >> 3; t0 < L.ntiles; t0 += 4 * QV_UNROLL) {
        uint32_t wu[QV_UNROLL];
#pragma unroll
        for (int u = 0; u < QV_UNROLL; u++) {
            const int t = t0 + 4 * u;
            wu[u] = t < L.ntiles ? __ldg(words + (size_t)t * 8 + (lane & 7)) : 0u;
        }
#pragma unroll
        for (int u = 0; u < QV_UNROLL; u++) {
            const int t = t0 + 4 * u;
            if (t >= L.ntiles) break;
            uint32_t w = wu[u];
            int c = t * 8 * K + (lane & 7);
            int j = c / g, jend = (j + 1) * g; /* the group of c and where it ends; c grows by 8 <= g */
            for (int k = 0; k < K; k++, c += 8, w >>= wb) {
                if (c >= L.n) break; /* the last tile's padding */
                if (c >= jend) j++, jend += g;
                if (j != jc) {
                    if (ss)
                        s = ss[j], z = zs[j];
                    else
                        qlayout_stat(&L, r, j, &s, &z);
                    jc = j;
                }
                float wt = qgrid_decode((float)(w & mask), s, z);
#pragma unroll
                for (int b = 0; b < NB; b++) acc[b] = fmaf(wt, __ldg(Xp + b * ld + c), acc[b]);
            }
        }
    }
    if (L.out_rowptr)
        for (uint32_t k = L.out_rowptr[r] + lane; k < L.out_rowptr[r + 1]; k += 32) {
            int c = L.out_col[k];
            float sj, zj;
            if (ss)
                sj = ss[c / g], zj = zs[c / g];
            else
                qlayout_stat(&L, r, c / g, &sj, &zj);
            float d = qlayout_out_val(&L, k) - qgrid_decode((float)qlayout_code(&L, r, c), sj, zj);
#pragma unroll
            for (int b = 0; b < NB; b++) acc[b] = fmaf(d, Xp[b * ld + c], acc[b]);
        }
#pragma unroll
    for (int b = 0; b < NB; b++) {
        float a = acc[b];
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        if (lane == 0) Y[(size_t)b * L.m + r] = a;
    }
}

typedef struct {
    PackedLinear base;
    QLayout L; /* its arrays on the device */
} PackedQuantCuda;

static int launch(const QLayout *L, const float *Xp, int nb, float *Y, cudaStream_t st) {
    dim3 grid((L->m + QV_WARPS - 1) / QV_WARPS), block(QV_WARPS * 32);
    const size_t smem = (size_t)QV_WARPS * 2 * L->ngroups * sizeof(float);
    const int in_smem = smem <= QV_SMEM_MAX;
    const size_t sb = in_smem ? smem : 0;
    switch (nb) {
    case 1: qv_kernel<1><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 2: qv_kernel<2><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 3: qv_kernel<3><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 4: qv_kernel<4><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 5: qv_kernel<5><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 6: qv_kernel<6><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    case 7: qv_kernel<7><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    default: qv_kernel<8><<<grid, block, sb, st>>>(*L, Xp, Y, in_smem); break;
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}

static int cuda_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    const PackedQuantCuda *h = (const PackedQuantCuda *)p;
    const QLayout *L = &h->L;
    if (nb < 1 || !X || !Y) {
        fprintf(stderr, "qharness: %s: matmul with nb = %d; expected nb >= 1 and both arrays\n", p->ops->name, nb);
        return -1;
    }
    cudaStream_t st = (cudaStream_t)stream;
    float *Xp = NULL; /* (nb, n_pad) */
    size_t count = (size_t)nb * L->n_pad;
    CUDA_CHECK(cudaMallocAsync((void **)&Xp, count * sizeof(float), st));
    qv_permute<<<(unsigned)((count + 255) / 256), 256, 0, st>>>(X, L->perm, L->n, L->n_pad, nb, Xp);
    int rc = cudaGetLastError() == cudaSuccess ? 0 : -1;
    for (int b0 = 0; rc == 0 && b0 < nb; b0 += 8) {
        int c = nb - b0 < 8 ? nb - b0 : 8;
        rc = launch(L, Xp + (size_t)b0 * L->n_pad, c, Y + (size_t)b0 * L->m, st);
    }
    CUDA_CHECK(cudaFreeAsync(Xp, st));
    if (rc != 0) fprintf(stderr, "qharness: %s: kernel launch failed\n", p->ops->name);
    return rc;
}

static void free_device(QLayout *L) {
    void **ptr[QLAYOUT_NARRAYS];
    size_t bytes[QLAYOUT_NARRAYS];
    qlayout_arrays(L, ptr, bytes);
    for (int i = 0; i < QLAYOUT_NARRAYS; i++) cudaFree(*ptr[i]);
    memset(L, 0, sizeof *L);
}

static void cuda_destroy(PackedLinear *p) {
    if (!p) return;
    free_device(&((PackedQuantCuda *)p)->L);
    free(p);
}

static const PackedLinearOps cuda_ops = {"quant-cuda", cuda_matmul, cuda_destroy};

/* *dst = a device copy of bytes at src (NULL stays NULL) */
static int upload(void **dst, const void *src, size_t bytes) {
    *dst = NULL;
    if (!src) return 0;
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 1)); /* an empty array (no outliers) stays non-NULL */
    *dst = d;
    if (bytes) CUDA_CHECK(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice));
    return 0;
}

extern "C" int qmatvec_cuda_create(const QLayout *L, PackedLinear **out) {
    *out = NULL;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        cudaGetLastError();
        fprintf(stderr, "qharness: packed_quant_create: kernel cuda: no CUDA device\n");
        return -1;
    }
    PackedQuantCuda *h = (PackedQuantCuda *)calloc(1, sizeof *h);
    if (!h) return -1;
    QLayout *D = &h->L;
    *D = *L; /* sizes and kinds; every array replaced below */
    void **hp[QLAYOUT_NARRAYS], **dp[QLAYOUT_NARRAYS];
    size_t hb[QLAYOUT_NARRAYS], db[QLAYOUT_NARRAYS];
    qlayout_arrays((QLayout *)L, hp, hb);
    qlayout_arrays(D, dp, db);
    int rc = 0;
    for (int i = 0; i < QLAYOUT_NARRAYS - 1; i++) /* all but vec_group: the warp computes c / groupsize */
        rc |= upload(dp[i], *hp[i], hb[i]);
    *dp[QLAYOUT_NARRAYS - 1] = NULL;
    if (rc != 0) { /* every array is a device pointer or NULL (upload sets *dst first) */
        free_device(D);
        free(h);
        return -1;
    }
    h->base.ops = &cuda_ops;
    h->base.m = L->m, h->base.n = L->n, h->base.where = PACKED_DEVICE, h->base.bytes = L->bytes;
    *out = &h->base;
    return 0;
}
