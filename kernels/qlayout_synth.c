/* qlayout_synth.c: synthetic quantized layers for the kernel benchmarks
 * (qlayout_synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "qlayout_synth.h"
#include "util.h"

const QSynthFormat qsynth_formats[] = {
    {"spqr w3 16/16 3-bit stats, 0% outl", 3, 16, 1, 0, 0.0},
    {"spqr w3 16/16 3-bit stats, 1% outl", 3, 16, 1, 0, 0.01},
    {"rtn w4 g128 fp16 stats", 4, 128, 0, 0, 0.0},
    {"gptq w4 g128 act_order fp16 stats", 4, 128, 0, 1, 0.0},
};
const int qsynth_nformats = (int)(sizeof qsynth_formats / sizeof qsynth_formats[0]);

static uint32_t rnd(uint64_t *s) { /* xorshift64 */
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}
static float rnd_f16(uint64_t *s, float lo, float hi) { /* an fp16 number in [lo, hi) */
    return qh_f16_to_f32(qh_f32_to_f16(lo + (hi - lo) * (float)(rnd(s) % 65536) / 65536.0f));
}

void qsynth_layer(const QSynthFormat *f, int m, int n, uint64_t seed, QuantLayer *q) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull | 1;
    memset(q, 0, sizeof *q);
    snprintf(q->method, sizeof q->method, "%s", f->spqr ? "spqr" : "gptq");
    q->m = m, q->n = n, q->wbits = f->wbits, q->groupsize = f->groupsize;
    q->ngroups = (n + f->groupsize - 1) / f->groupsize;
    q->stats_dtype = QH_STATS_FP16;
    q->perm = qh_malloc(sizeof(int) * n);
    for (int c = 0; c < n; c++) q->perm[c] = c;
    if (f->act_order)
        for (int c = n - 1; c > 0; c--) {
            int k = (int)(rnd(&st) % (uint32_t)(c + 1)), t = q->perm[c];
            q->perm[c] = q->perm[k], q->perm[k] = t;
        }
    size_t cnt = (size_t)m * n, gcnt = (size_t)m * q->ngroups;
    q->codes = qh_malloc(cnt);
    for (size_t i = 0; i < cnt; i++) q->codes[i] = (uint8_t)(rnd(&st) & ((1u << f->wbits) - 1));
    if (f->spqr) {
        q->scale_code_bits = q->zero_code_bits = 3;
        q->qq_groupsize = 16, q->qq_groups = (m + 15) / 16;
        q->scale_codes = qh_malloc(gcnt), q->zero_codes = qh_malloc(gcnt);
        for (size_t i = 0; i < gcnt; i++)
            q->scale_codes[i] = (uint8_t)(rnd(&st) & 7), q->zero_codes[i] = (uint8_t)(rnd(&st) & 7);
        size_t qc = (size_t)q->qq_groups * q->ngroups;
        float **a[4] = {&q->qq_scale_scale, &q->qq_scale_zero, &q->qq_zero_scale, &q->qq_zero_zero};
        for (int k = 0; k < 4; k++) {
            *a[k] = qh_malloc(sizeof(float) * qc);
            for (size_t i = 0; i < qc; i++) (*a[k])[i] = k % 2 ? rnd_f16(&st, 0, 7) : rnd_f16(&st, 1e-3f, 1e-2f);
        }
    } else {
        q->scale_fp = qh_malloc(sizeof(float) * gcnt), q->zero_fp = qh_malloc(sizeof(float) * gcnt);
        for (size_t i = 0; i < gcnt; i++) q->scale_fp[i] = rnd_f16(&st, 1e-3f, 1e-2f), q->zero_fp[i] = rnd_f16(&st, 0, 15);
    }
    if (f->outliers > 0) {
        int per = (int)(f->outliers * n + 0.5); /* per row, distinct increasing columns: one in each of per spans */
        if (per < 1) per = 1;
        int step = n / per;
        q->outlier_rowptr = qh_malloc(sizeof(int64_t) * (m + 1));
        q->outlier_col = qh_malloc(sizeof(uint16_t) * (size_t)m * per);
        q->outlier_val = qh_malloc(sizeof(float) * (size_t)m * per);
        for (int r = 0; r <= m; r++) q->outlier_rowptr[r] = (int64_t)r * per;
        for (int r = 0; r < m; r++)
            for (int k = 0; k < per; k++) {
                q->outlier_col[(size_t)r * per + k] = (uint16_t)(k * step + (int)(rnd(&st) % (uint32_t)step));
                q->outlier_val[(size_t)r * per + k] = rnd_f16(&st, -0.5f, 0.5f);
            }
        q->n_outliers = (int64_t)m * per;
    }
}
