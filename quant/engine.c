/* engine.c: the column sweep shared by RTN, GPTQ and SpQR (SPEC 3, 4.5, 5),
 * plain C reference (quant_engine_ref; a CUDA version with the same signature
 * may come later). RTN = this sweep without error feedback (U == NULL) on the
 * original weights; GPTQ = with U, no outliers, unquantized statistics;
 * SpQR = with U, second-level statistics, leave-one-out and outliers.
 *
 * Not here: permutation, damping and U (prepare.c), the statistics
 * (stats.c), the group ranges and leave-one-out (outliers.c), the packing
 * into a QuantLayer (layer.c).
 *
 * Parallelism: every step of the sweep is per row except the second-level
 * statistics, which couple qq_groupsize consecutive rows, so rows are split
 * into chunks aligned to qq_groupsize and each chunk is swept independently
 * (OpenMP); the lazy block update is one sgemm (BLAS threads) per block.
 * Results do not depend on the chunking. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "quant_internal.h"
#include "util.h"

/* SPEC 4.5: blocks of `blocksize` columns, except that a block is cut short
 * where a group would start inside it and reach past its end: the group's
 * statistics are fitted on fully updated weights (SPEC 4.5 "current
 * (already error-compensated) weights", SPEC 9: not GPTQ's stale ones), so
 * the pending block update must reach the whole group first. When the group
 * size divides the block size (16, 32, 64, 128 with 128) no block is cut. */
static int block_end(int bs, int B, int g, int n) {
    int be = bs + B < n ? bs + B : n;
    for (int gs = (bs / g + 1) * g; gs < be; gs += g) {
        int ge = gs + g < n ? gs + g : n;
        if (ge > be) return gs;
    }
    return be;
}

int quant_engine_ref(QuantEngine *e) {
    const QuantParams *p = e->p;
    const int m = e->m, n = e->n;
    const int g = quant_group_width(p, n);
    const int B = e->U ? p->blocksize : n;
    const QGrid grid = qgrid_weights(p);
    const int has_out = e->U && isfinite(e->tau_abs);
    const float tau_f = (float)e->tau_abs; /* compared in fp32, as the reference engine */
    const int qq_groups = (p->qq_scale_bits > 0 || quant_zero_has_second_level(p))
                              ? (m + p->qq_groupsize - 1) / p->qq_groupsize
                              : 0;

    /* row chunks: a multiple of qq_groupsize (second-level groups never straddle
     * chunks) and of 16 rows (64-byte lines) where possible */
    int unit = qq_groups ? p->qq_groupsize : 1;
    while (unit < 16) unit *= 2;
    /* a layer of fewer than 512 rows is one chunk: its group sweeps are far too
     * short to pay for a synchronization of the team (QH_PAR_MIN_WORK) */
    int nthr = m < 512 ? 1 : omp_get_max_threads();
    int chunk = (m + nthr - 1) / nthr;
    chunk = (chunk + unit - 1) / unit * unit;
    const int nchunks = (m + chunk - 1) / chunk;

    float *Err = e->U ? qh_malloc((size_t)B * m * sizeof(float)) : NULL; /* (B, m) err of the block's columns */
    float *xmin = qh_malloc((size_t)m * sizeof(float));                  /* (m) */
    float *xmax = qh_malloc((size_t)m * sizeof(float));                  /* (m) */
    float *dgrp = qh_malloc((size_t)g * sizeof(float));                  /* (g) diag(U) of a group */
    LooScratch *scr = NULL;                                              /* (nchunks) */
    if (e->use_loo) {
        scr = qh_calloc((size_t)nchunks, sizeof *scr);
        for (int ch = 0; ch < nchunks; ch++) loo_scratch_init(&scr[ch], chunk, g);
    }

    /* per-chunk partial losses, summed in chunk order: deterministic run to run
     * (an OpenMP reduction combines in no fixed order) */
    double *loss_chunk = qh_calloc((size_t)nchunks, sizeof(double)); /* (nchunks) */
    double tfit = 0;
    for (int bs = 0, be; bs < n; bs = be) {
        be = block_end(bs, B, g, n);
        for (int c0 = bs, c1; c0 < be; c0 = c1) {
            c1 = (c0 / g + 1) * g < be ? (c0 / g + 1) * g : be;
            if (c0 % g == 0) {
                /* SPEC 4.5 / 5 (SpQR Alg. 1: outlier-aware fit of the group's bilevel
                 * statistics): fit on the current weights */
                double t0 = qh_now();
                int gi = c0 / g, ge = c0 + g < n ? c0 + g : n;
                if (e->use_loo)
                    for (int k = c0; k < ge; k++) dgrp[k - c0] = e->U[(size_t)k * n + k];
                GroupStats gs = {
                    .scale = e->scale + (size_t)gi * m,
                    .zero = e->zero + (size_t)gi * m,
                    .scale_codes = e->scale_codes ? e->scale_codes + (size_t)gi * m : NULL,
                    .zero_codes = e->zero_codes ? e->zero_codes + (size_t)gi * m : NULL,
                    .qq_ss = e->qq_ss ? e->qq_ss + (size_t)gi * qq_groups : NULL,
                    .qq_sz = e->qq_sz ? e->qq_sz + (size_t)gi * qq_groups : NULL,
                    .qq_zs = e->qq_zs ? e->qq_zs + (size_t)gi * qq_groups : NULL,
                    .qq_zz = e->qq_zz ? e->qq_zz + (size_t)gi * qq_groups : NULL,
                };
#pragma omp parallel for schedule(static) if (nchunks > 1)
                for (int ch = 0; ch < nchunks; ch++) {
                    int r0 = ch * chunk, r1 = r0 + chunk < m ? r0 + chunk : m;
                    group_range(e->Wt, m, c0, ge, r0, r1, &grid, e->use_loo ? dgrp : NULL, e->tau_abs,
                                scr ? &scr[ch] : NULL, xmin, xmax);
                    stats_fit_rows(p, m, r0, r1, xmin, xmax, &gs);
                }
                tfit += qh_now() - t0;
            }
            /* SPEC 4.5: quantize columns c0..c1-1, error feedback inside the block */
#pragma omp parallel for schedule(static) if (nchunks > 1)
            for (int ch = 0; ch < nchunks; ch++) {
                int r0 = ch * chunk, r1 = r0 + chunk < m ? r0 + chunk : m;
                for (int c = c0; c < c1; c++) {
                    const size_t gi = (size_t)(c / g);
                    const float *s = e->scale + gi * m, *z = e->zero + gi * m; /* (m) */
                    float *w = e->Wt + (size_t)c * m;                          /* (m) column c */
                    uint8_t *code = e->codes_t + (size_t)c * m;                /* (m) */
                    if (!e->U) { /* SPEC 3: RTN, the quantizer on the original weights */
                        for (int r = r0; r < r1; r++) {
                            float q = qgrid_code(w[r], s[r], z[r], grid.maxq);
                            code[r] = (uint8_t)q;
                            w[r] = qgrid_decode(q, s[r], z[r]);
                        }
                        continue;
                    }
                    const float dcc = e->U[(size_t)c * n + c];
                    float *err = Err + (size_t)(c - bs) * m; /* (m) */
                    uint8_t *out = e->outlier_t ? e->outlier_t + (size_t)c * m : NULL;
                    for (int r = r0; r < r1; r++) {
                        float wv = w[r];
                        float q = qgrid_code(wv, s[r], z[r], grid.maxq);
                        float wh = qgrid_decode(q, s[r], z[r]);
                        float ev = (wv - wh) / dcc; /* err = (W[:, c] - w_hat) / U[c, c]; GPTQ Alg. 1 */
                        if (has_out) {
                            /* SPEC 5 (SpQR Alg. 1): err^2 > tau_abs -> outlier: keeps its value, zero
                             * error, dense code = quantize(0) (ignored on decode) */
                            int o = ev * ev > tau_f;
                            out[r] = (uint8_t)o;
                            if (o) {
                                q = qgrid_code(0.0f, s[r], z[r], grid.maxq);
                                wh = wv;
                                ev = 0.0f;
                            }
                        }
                        code[r] = (uint8_t)q;
                        w[r] = wh;
                        err[r] = ev;
                    }
                    double l = 0;
                    for (int r = r0; r < r1; r++) l += (double)err[r] * err[r];
                    loss_chunk[ch] += 0.5 * l; /* SPEC 4.6 */
                    /* W[:, c+1 : block_end] -= err (outer) U[c, c+1 : block_end] */
                    for (int j = c + 1; j < be; j++) {
                        const float u = e->U[(size_t)c * n + j];
                        float *wj = e->Wt + (size_t)j * m;
                        for (int r = r0; r < r1; r++) wj[r] -= err[r] * u;
                    }
                }
            }
        }
        /* SPEC 4.5 lazy batch update (GPTQ Alg. 1, last line of the block loop):
         * W[:, be:] -= Err_block @ U[block, be:].
         * Transposed storage: Wt[be:, :] (n-be, m) -= U[bs:be, be:]^T (n-be, K) x Err (K, m). */
        if (e->U && be < n) {
            int nt = qh_blas_begin(2.0 * (n - be) * m * (be - bs));
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n - be, m, be - bs, -1.0f,
                        e->U + (size_t)bs * n + be, n, Err, m, 1.0f, e->Wt + (size_t)be * m, m);
            qh_blas_end(nt);
        }
    }

    if (scr) {
        for (int ch = 0; ch < nchunks; ch++) loo_scratch_free(&scr[ch]);
        free(scr);
    }
    double loss = 0;
    for (int ch = 0; ch < nchunks; ch++) loss += loss_chunk[ch];
    free(loss_chunk);
    free(Err);
    free(xmin);
    free(xmax);
    free(dgrp);
    e->proxy_loss = loss;
    e->seconds_fit = tfit;
    return 0;
}
