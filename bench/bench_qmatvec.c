/* bench_qmatvec.c: the CPU quantized matrix-vector kernels (issue 18:
 * kernels/qmatvec_avx2.c and qmatvec_avx512.c, over the layout of
 * kernels/qlayout.h), each on LLaMA-7B layer shapes (4096 x 4096,
 * 11008 x 4096, 4096 x 11008), against two baselines measured in the same run:
 *   - the copy bandwidth: a memcpy split over the same OpenMP threads, bytes
 *     read + written per second (a buffer of COPY_MB, twice the LLC or more);
 *     the kernel's figure is its packed bytes (L.bytes: codes, statistics,
 *     outliers, permutation) per second, as a fraction of it (target >= 70%);
 *   - OpenBLAS fp32 sgemv (cblas_sgemv, y = W x) on the same shape: the
 *     kernel's speed-up (target >= 3x for SpQR 3-bit).
 * Formats (kernels/qlayout_synth.h, shared with the GPU benchmark): SpQR
 * 3-bit, beta1 = beta2 = 16, 3-bit statistics, fp16 second level, with 0% and
 * 1% outliers; RTN 4-bit g128 and GPTQ 4-bit g128 with act_order (its
 * permutation), fp16 statistics; synthetic (the time does not depend on the
 * values). Every timing is the median over REPS passes; a pass calls the
 * kernel once on each of as many copies of the layer as make WORKSET_MB, so
 * the weights come from memory, not the cache, as in a real decode. nb = 1 (a
 * token) and nb = 8 (time per input). "in cache": nb = 1 on ONE copy called
 * again and again, so the layer stays in the cache (a 4096 x 4096 SpQR layer is
 * 8 MB: here L2 is 2 MB per core, so it is the L3 of 260 MB): what the kernel's
 * instructions allow without the memory's limit, in weights per second and
 * in the GB/s of packed bytes it would need from memory. The avx512 rows are
 * left out (said so) on a CPU without AVX-512.
 * Usage: bench_qmatvec [--quick] (quick: one shape, fewer passes).
 * Not here: correctness (tests/test_qmatvec.c), the GPU (kernels/bench/). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "qmatvec.h"
#include "qlayout_synth.h"
#include "quant.h"
#include "util.h"

#define WORKSET_MB 768.0
#define COPY_MB 512.0

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}

/* GB/s of a copy (bytes read + written), the buffer split over the threads */
static double copy_bandwidth(int reps) {
    size_t bytes = (size_t)(COPY_MB * 1048576.0);
    char *a = qh_malloc(bytes), *b = qh_malloc(bytes);
    memset(a, 1, bytes), memset(b, 2, bytes);
    double *t = qh_malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        double t0 = qh_now();
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            size_t chunk = (bytes / nt + 4095) & ~(size_t)4095, lo = id * chunk;
            size_t hi = lo + chunk < bytes ? lo + chunk : bytes;
            if (lo < hi) memcpy(b + lo, a + lo, hi - lo);
        }
        t[r] = qh_now() - t0;
    }
    double bw = 2.0 * bytes / qh_median(t, reps) / 1e9;
    free(a), free(b), free(t);
    return bw;
}

/* median seconds of one sgemv y = W x, W (m, n) fp32, over copies of WORKSET_MB */
static double time_sgemv(int m, int n, int reps) {
    size_t wb = (size_t)m * n * sizeof(float);
    int copies = (int)(WORKSET_MB * 1048576.0 / wb) + 1;
    float **W = qh_malloc(sizeof(float *) * copies), *x = qh_malloc(sizeof(float) * n), *y = qh_malloc(sizeof(float) * m);
    for (int c = 0; c < copies; c++) {
        W[c] = qh_malloc(wb);
        for (size_t i = 0; i < (size_t)m * n; i++) W[c][i] = (float)((int)(rnd() % 2001) - 1000) * 1e-4f;
    }
    for (int i = 0; i < n; i++) x[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    double *t = qh_malloc(sizeof(double) * reps);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up pass */
        double t0 = qh_now();
        for (int c = 0; c < copies; c++) cblas_sgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0f, W[c], n, x, 1, 0.0f, y, 1);
        if (r >= 0) t[r] = (qh_now() - t0) / copies;
    }
    double med = qh_median(t, reps);
    for (int c = 0; c < copies; c++) free(W[c]);
    free(W), free(x), free(y), free(t);
    return med;
}

/* a deep copy of L's arrays */
static void clone_layout(const QLayout *src, QLayout *dst) {
    *dst = *src;
    void **sp[QLAYOUT_NARRAYS], **dp[QLAYOUT_NARRAYS];
    size_t sb[QLAYOUT_NARRAYS], db[QLAYOUT_NARRAYS];
    qlayout_arrays((QLayout *)src, sp, sb);
    qlayout_arrays(dst, dp, db);
    for (int i = 0; i < QLAYOUT_NARRAYS; i++)
        if (*sp[i]) {
            *dp[i] = qh_malloc(sb[i] + 1);
            memcpy(*dp[i], *sp[i], sb[i]);
        }
}

typedef void (*KernelFn)(const QLayout *, const float *, int, float *);

/* median seconds of one call (permutation + kernel fn) with nb inputs; over
 * copies of WORKSET_MB (the weights come from memory), or with in_cache one
 * copy called again and again (the weights stay in L2 / L3: the kernel's own
 * ceiling) */
static double time_kernel(const QLayout *L0, KernelFn fn, int nb, int reps, int in_cache) {
    int copies = in_cache ? 1 : (int)(WORKSET_MB * 1048576.0 / (double)L0->bytes) + 1;
    int calls = in_cache ? 20 : copies; /* calls per pass */
    QLayout *L = qh_malloc(sizeof(QLayout) * copies);
    for (int c = 0; c < copies; c++) clone_layout(L0, &L[c]);
    float *X = qh_malloc(sizeof(float) * (size_t)nb * L0->n), *Xp = qh_malloc(sizeof(float) * (size_t)nb * L0->n_pad);
    float *Y = qh_malloc(sizeof(float) * (size_t)nb * L0->m);
    for (size_t i = 0; i < (size_t)nb * L0->n; i++) X[i] = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    double *t = qh_malloc(sizeof(double) * reps);
    for (int r = -1; r < reps; r++) {
        double t0 = qh_now();
        for (int c = 0; c < calls; c++) {
            qlayout_permute(&L[c % copies], X, nb, Xp);
            fn(&L[c % copies], Xp, nb, Y);
        }
        if (r >= 0) t[r] = (qh_now() - t0) / calls;
    }
    double med = qh_median(t, reps);
    for (int c = 0; c < copies; c++) qlayout_free(&L[c]);
    free(L), free(X), free(Xp), free(Y), free(t);
    return med;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int reps = quick ? 3 : 5;
    if (!qmatvec_avx2_supported()) {
        printf("skipped: this CPU has no AVX2 + FMA\n");
        return 0;
    }
    const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    const struct {
        const char *name;
        KernelFn fn;
        int ok;
    } kernels[] = {{"avx2", qmatvec_avx2, 1}, {"avx512", qmatvec_avx512, qmatvec_avx512_supported()}};
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    double bw = copy_bandwidth(reps);
    printf("bench_qmatvec: %d OpenMP threads, load average %.2f %.2f %.2f, medians of %d passes over %.0f MB\n",
           omp_get_max_threads(), load[0], load[1], load[2], reps, WORKSET_MB);
    printf("copy bandwidth (read + write, %.0f MB buffer): %.2f GB/s\n", COPY_MB, bw);
    if (!kernels[1].ok) printf("avx512: not run, this CPU has no AVX-512 F + DQ + BW + VL\n");
    printf("in cache: one copy of the layer called again and again (L2 / L3); GB/s: its packed bytes per second\n\n");
    printf("%-11s %-36s %6s %9s %-6s %8s %7s %8s %8s %10s | %9s %8s %7s %8s\n", "shape", "format", "bits/w", "sgemv ms",
           "kernel", "ms nb=1", "GB/s", "of copy", "x sgemv", "ms/8 nb=8", "cache ms", "Gw/s", "GB/s", "of copy");
    for (int s = 0; s < (quick ? 1 : 3); s++) {
        int m = shapes[s][0], n = shapes[s][1];
        double tg = time_sgemv(m, n, reps);
        printf("%dx%d sgemv fp32: %.3f ms, %.2f GB/s (%.0f%% of copy)\n", m, n, tg * 1e3, 4.0 * m * n / tg / 1e9,
               100.0 * 4.0 * m * n / tg / 1e9 / bw);
        for (int f = 0; f < qsynth_nformats; f++) {
            QuantLayer q;
            QLayout L;
            qsynth_layer(&qsynth_formats[f], m, n, 1 + (uint64_t)f, &q);
            if (qlayout_build(&q, &L) != 0) return 1;
            quant_layer_free(&q);
            for (int k = 0; k < 2; k++) {
                if (!kernels[k].ok) continue;
                double t1 = time_kernel(&L, kernels[k].fn, 1, reps, 0), t8 = time_kernel(&L, kernels[k].fn, 8, reps, 0);
                double tc = time_kernel(&L, kernels[k].fn, 1, reps, 1);
                double gbs = L.bytes / t1 / 1e9, gbc = L.bytes / tc / 1e9;
                char shape[32];
                snprintf(shape, sizeof shape, "%dx%d", m, n);
                printf("%-11s %-36s %6.2f %9.3f %-6s %8.3f %7.2f %7.0f%% %8.2f %10.3f | %9.3f %8.2f %7.2f %7.0f%%\n", shape,
                       qsynth_formats[f].name, 8.0 * L.bytes / ((double)m * n), tg * 1e3, kernels[k].name, t1 * 1e3,
                       gbs, 100.0 * gbs / bw, tg / t1, t8 * 1e3 / 8, tc * 1e3, (double)m * n / tc / 1e9, gbc,
                       100.0 * gbc / bw);
                fflush(stdout);
            }
            qlayout_free(&L);
        }
    }
    return 0;
}
