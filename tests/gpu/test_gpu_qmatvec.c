/* test_gpu_qmatvec.c: the CUDA quantized matrix-vector kernel (kernels/
 * qmatvec.cu, packed_quant_create(q, "cuda")) against the scalar reference
 * (qmatvec_ref through packed_quant_create(q, "ref")), both reading the same
 * kernel-ready layout. Y (nb, m) = X (nb, n) W_hat^T on device pointers, nb
 * 1..8 and 11 (two launches), for random layers of odd sizes quantized here
 * (RTN / GPTQ / SpQR, wbits 2 / 3 / 4 / 8, groups 8..128 and per row, beta2 7
 * and 16, act_order, a row of 1550 groups (too many for shared memory), both stats_dtype modes, with and without outliers, one
 * row holding more outliers than a warp has lanes, rows without any) and on
 * stories260K's first block quantized with SpQR 3-bit 16/16 and GPTQ 4-bit
 * g128 (skipped without data/). Bound: the reference sums in double, the
 * kernel in fp32 with the weights decoded as s (q - z), so within
 * 2 (n + 4) 2^-24 sum (|w| + |s z|) |x| (the gamma_n bound of a recursive fp32
 * sum plus the decode's roundings). Negative control, as tests/test_qmatvec.c's:
 * one code of the layout changed (row 2 of the hand-placed outlier layer, a row
 * without outliers) and uploaded makes the same comparison fail on that row's
 * outputs, and on no other row's. Also: nb 0 refused by name. Without a GPU (or in a build without nvcc) everything is skipped,
 * exit 0. Not here: the CPU kernels (tests/test_qmatvec.c), timings
 * (kernels/bench/bench_gpu_qmatvec.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "forward.h"
#include "half.h"
#include "model.h"
#include "packed_quant.h"
#include "qlayout.h"
#include "qmatvec_cuda.h"
#include "quant.h"
#include "quant_fixtures.h"
#include "stories_fixture.h"
#include "util.h"

#ifdef QH_HAVE_CUDA
#include <cuda_runtime_api.h>

#define NBMAX 11
static const double U32 = 5.9604644775390625e-08; /* 2^-24 */

/* Number of outputs of Yg (nb, m) off Yr by more than the bound. */
static int count_off(const float *Yg, const float *Yr, const double *bound, int count) {
    int bad = 0;
    for (int i = 0; i < count; i++)
        if (!(fabs((double)Yg[i] - Yr[i]) <= bound[i])) bad++;
    return bad;
}

/* The device kernel against the reference on q, nb 1..8 and 11. bad NULL:
 * the device reads q's layout (packed_quant_create(q, "cuda")) and every
 * output must be within its bound (CHECKed). bad given (a layout of q with
 * something changed, the negative control): the device reads bad, nothing is
 * CHECKed here and off_by_row[r] (m) counts the outputs of row r off the
 * reference, over every nb. */
static void compare_layout(const char *what, const QuantLayer *q, const QLayout *bad, int *off_by_row) {
    const int m = q->m, n = q->n;
    PackedLinear *ref = NULL, *gpu = NULL;
    if (packed_quant_create(q, "ref", &ref) != 0 ||
        (bad ? qmatvec_cuda_create(bad, &gpu) : packed_quant_create(q, "cuda", &gpu)) != 0) {
        CHECK(0, "%s: packed_quant_create ref / cuda", what);
        if (ref) ref->ops->destroy(ref);
        return;
    }
    CHECK(gpu->where == PACKED_DEVICE && gpu->m == m && gpu->n == n && gpu->bytes == ref->bytes,
          "%s: the cuda PackedLinear: where %d, %d x %d, %zu bytes (ref %zu)", what, gpu->where, gpu->m, gpu->n,
          gpu->bytes, ref->bytes);
    /* the bound per output: sum over columns of (|w| + |s z|) |x|, from the layout's statistics */
    QLayout L;
    if (qlayout_build(q, &L) != 0) {
        CHECK(0, "%s: qlayout_build", what);
        return;
    }
    float *W = qh_malloc(sizeof(float) * (size_t)m * n); /* (m, n) decoded, original order */
    quant_layer_dequantize(q, W);
    float *X = qh_malloc(sizeof(float) * (size_t)NBMAX * n); /* (NBMAX, n) */
    for (size_t i = 0; i < (size_t)NBMAX * n; i++) X[i] = (float)nrand();
    double *bound = qh_malloc(sizeof(double) * (size_t)NBMAX * m);
    float *s = qh_malloc(sizeof(float) * L.ngroups), *z = qh_malloc(sizeof(float) * L.ngroups);
    int *inv = qh_malloc(sizeof(int) * n); /* original column -> permuted */
    for (int c = 0; c < n; c++) inv[L.perm ? L.perm[c] : c] = c;
    for (int r = 0; r < m; r++) {
        qlayout_row_stats(&L, r, s, z);
        for (int b = 0; b < NBMAX; b++) {
            double a = 0;
            for (int c = 0; c < n; c++) {
                int j = inv[c] / L.groupsize;
                a += (fabs(W[(size_t)r * n + c]) + fabs((double)s[j] * z[j])) * fabs(X[(size_t)b * n + c]);
            }
            bound[(size_t)b * m + r] = 2.0 * (n + 4) * U32 * a + 1e-30;
        }
    }
    float *Yr = qh_malloc(sizeof(float) * (size_t)NBMAX * m), *Yg = qh_malloc(sizeof(float) * (size_t)NBMAX * m);
    float *dX = NULL, *dY = NULL;
    if (cudaMalloc((void **)&dX, sizeof(float) * (size_t)NBMAX * n) != cudaSuccess ||
        cudaMalloc((void **)&dY, sizeof(float) * (size_t)NBMAX * m) != cudaSuccess) {
        CHECK(0, "%s: cudaMalloc", what);
        goto done;
    }
    cudaMemcpy(dX, X, sizeof(float) * (size_t)NBMAX * n, cudaMemcpyHostToDevice);
    const int nbs[] = {1, 2, 3, 4, 5, 6, 7, 8, 11};
    for (size_t t = 0; t < sizeof nbs / sizeof nbs[0]; t++) {
        int nb = nbs[t];
        CHECK(ref->ops->matmul(ref, X, nb, Yr, NULL) == 0, "%s: ref matmul nb %d", what, nb);
        cudaMemset(dY, 0xff, sizeof(float) * (size_t)nb * m); /* NaN: an output never written fails */
        int rc = gpu->ops->matmul(gpu, dX, nb, dY, NULL);
        cudaError_t e = cudaDeviceSynchronize();
        CHECK(rc == 0 && e == cudaSuccess, "%s: cuda matmul nb %d: rc %d, %s", what, nb, rc, cudaGetErrorString(e));
        cudaMemcpy(Yg, dY, sizeof(float) * (size_t)nb * m, cudaMemcpyDeviceToHost);
        if (bad) {
            for (int i = 0; i < nb * m; i++) off_by_row[i % m] += count_off(Yg + i, Yr + i, bound + i, 1);
            continue;
        }
        int noff = count_off(Yg, Yr, bound, nb * m);
        double worst = 0;
        for (int i = 0; i < nb * m; i++) {
            double ratio = fabs((double)Yg[i] - Yr[i]) / bound[i];
            if (!(ratio <= worst)) worst = ratio;
        }
        CHECK(noff == 0, "%s, nb %d: %d of %d outputs off the reference; worst error / bound %.3g", what, nb, noff,
              nb * m, worst);
    }
done:
    cudaFree(dX), cudaFree(dY);
    ref->ops->destroy(ref), gpu->ops->destroy(gpu);
    qlayout_free(&L);
    free(W), free(X), free(bound), free(s), free(z), free(inv), free(Yr), free(Yg);
}

static void compare(const char *what, const QuantLayer *q) { compare_layout(what, q, NULL, NULL); }

typedef struct {
    const char *method;
    int m, n, wbits, groupsize, qq_bits, beta2;
    double tau;
    int act_order;
} Case;

static int quantize_case(const Case *c, QuantStatsDtype d, const float *W, QuantLayer *q) {
    QuantParams p;
    quant_params_default(&p, c->method);
    p.wbits = c->wbits, p.groupsize = c->groupsize;
    p.qq_scale_bits = p.qq_zero_bits = c->qq_bits, p.qq_groupsize = c->beta2;
    p.outlier_threshold = c->tau;
    p.perm = c->act_order ? QH_PERM_ACT_ORDER : QH_PERM_IDENTITY;
    p.stats_dtype = d;
    double *H = strcmp(c->method, "rtn") ? correlated_H(c->n, 2, 64, 0.5, NULL, 0) : NULL;
    int rc = quantize_layer_ref(c->method, W, c->m, c->n, H, &p, q, NULL);
    free(H);
    return rc;
}

static float *random_W(int m, int n) { /* normal(0, 0.05), 1% x 8 */
    float *W = qh_malloc(sizeof(float) * (size_t)m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) W[i] = (float)(0.05 * nrand() * (urand() < 0.01 ? 8 : 1));
    return W;
}

static void test_random(void) {
    const Case cases[] = {
        {"rtn", 37, 203, 2, 16, 0, 0, INFINITY, 0},     {"rtn", 37, 203, 8, 16, 0, 0, INFINITY, 0},
        {"rtn", 29, 301, 4, 0, 0, 0, INFINITY, 0},      {"gptq", 45, 264, 4, 128, 0, 0, INFINITY, 1},
        {"gptq", 33, 200, 2, 24, 0, 0, INFINITY, 0},    {"spqr", 61, 200, 3, 16, 3, 16, 0.2, 1},
        {"spqr", 40, 131, 2, 8, 3, 8, 0.2, 0},          {"spqr", 50, 203, 3, 64, 3, 7, 0.2, 1},
        {"spqr", 48, 300, 3, 128, 8, 32, 0.2, 0},       {"spqr", 130, 96, 4, 32, 3, 128, 0.2, 0},
        {"rtn", 5, 12400, 4, 8, 0, 0, INFINITY, 0}, /* 1550 groups: statistics decoded in place, not in shared memory */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        float *W = random_W(c->m, c->n);
        for (int d = 0; d < 2; d++) {
            QuantLayer q;
            char what[128];
            snprintf(what, sizeof what, "%s %dx%d w%d g%d qq %d/%d%s %s", c->method, c->m, c->n, c->wbits,
                     c->groupsize, c->qq_bits, c->beta2, c->act_order ? " act_order" : "", d ? "fp16" : "fp32");
            if (quantize_case(c, d ? QH_STATS_FP16 : QH_STATS_FP32, W, &q) != 0) {
                CHECK(0, "%s: quantize", what);
                continue;
            }
            compare(what, &q);
            quant_layer_free(&q);
        }
        free(W);
    }
}

/* row 0 with an outlier at every second column (more than 32 lanes), the last
 * row with one at the last column, the others none */
static void test_outlier_rows(void) {
    const Case c = {"spqr", 41, 203, 3, 16, 3, 16, INFINITY, 1};
    float *W = random_W(c.m, c.n);
    QuantLayer q;
    if (quantize_case(&c, QH_STATS_FP16, W, &q) != 0) {
        CHECK(0, "quantize for the outlier rows");
        free(W);
        return;
    }
    place_outlier_rows(&q, 1);
    compare("hand-placed outliers (a full row, empty rows)", &q);

    /* negative control: one code changed in the layout -> the comparison must fail, on that row only */
    QLayout L;
    if (qlayout_build(&q, &L) == 0) {
        L.words[(2 * (size_t)L.ntiles + 1) * 8 + 3] ^= 1u; /* row 2 (no outliers), tile 1, lane 3, vector 0 */
        int *off = qh_calloc((size_t)q.m, sizeof(int)), other = 0;
        compare_layout("corrupted layout", &q, &L, off);
        for (int r = 0; r < q.m; r++) other += r != 2 ? off[r] : 0;
        CHECK(off[2] > 0 && other == 0,
              "a corrupted code of row 2: %d of its outputs off the reference (expected > 0), %d of other rows' "
              "(expected 0)",
              off[2], other);
        free(off);
        qlayout_free(&L);
    } else
        CHECK(0, "qlayout_build for the negative control");
    quant_layer_free(&q);
    free(W);
}

static void test_stories260K(void) {
    Model mdl;
    if (stories_open(&mdl, NULL) != 0) {
        SKIP("stories260K not found under QH_DATA (make data)");
        return;
    }
    for (int k = 0; k < model_n_linears(&mdl.cfg); k++) {
        int out, in;
        model_linear_shape(&mdl.cfg, (LinearKind)k, &out, &in);
        Case cs[2] = {{"spqr", out, in, 3, 16, 3, 16, 0.2, 0}, {"gptq", out, in, 4, 128, 0, 0, INFINITY, 1}};
        for (int i = 0; i < 2; i++) {
            if (cs[i].beta2 > out) cs[i].beta2 = out;
            if (cs[i].groupsize > in) cs[i].groupsize = 0;
            QuantLayer q;
            char what[128];
            snprintf(what, sizeof what, "stories260K block 0 %s %s", model_linear_name(&mdl.cfg, (LinearKind)k),
                     cs[i].method);
            if (quantize_case(&cs[i], QH_STATS_FP16, mdl.w.blocks[0].lin[k], &q) != 0) {
                CHECK(0, "%s: quantize", what);
                continue;
            }
            compare(what, &q);
            quant_layer_free(&q);
        }
    }
    model_free(&mdl);
}

static void test_refusal(void) {
    const Case c = {"rtn", 8, 64, 4, 16, 0, 0, INFINITY, 0};
    float *W = random_W(8, 64);
    QuantLayer q;
    PackedLinear *p = NULL;
    if (quantize_case(&c, QH_STATS_FP32, W, &q) == 0 && packed_quant_create(&q, "cuda", &p) == 0) {
        float *dX = NULL, *dY = NULL;
        cudaMalloc((void **)&dX, 64 * sizeof(float)), cudaMalloc((void **)&dY, 8 * sizeof(float));
        fprintf(stderr, "(the error below is expected)\n");
        CHECK(p->ops->matmul(p, dX, 0, dY, NULL) == -1, "nb 0 refused");
        cudaFree(dX), cudaFree(dY);
        p->ops->destroy(p);
        quant_layer_free(&q);
    } else
        CHECK(0, "the 8 x 64 RTN layer on the device");
    free(W);
}
#endif /* QH_HAVE_CUDA */

int main(void) {
    if (!qh_cuda_available()) {
        SKIP("no CUDA GPU visible (or a build without nvcc): the CUDA quantized matvec not checked");
        return test_summary();
    }
#ifdef QH_HAVE_CUDA
    test_random();
    test_outlier_rows();
    test_stories260K();
    test_refusal();
#endif
    return test_summary();
}
