/* stats.c: the statistics of one group of columns, SPEC 2: the first-level
 * grid per row from its range, then the second level: the m scales (and
 * zeros) of the group coded in groups of qq_groupsize consecutive rows with
 * the asymmetric min-max grid at qq_scale_bits (qq_zero_bits), fractional
 * zero, second-level statistics in fp32 while quantizing (kept so by layer.c
 * in the reference mode, rounded to fp16 in the deployment mode). Ranges (and
 * the leave-one-out criterion) are in outliers.c. */
#include "quant_internal.h"

void stats_fit_rows(const QuantParams *p, int m, int r0, int r1, const float *xmin, const float *xmax,
                    GroupStats *gs) {
    QGrid g = qgrid_weights(p);
    for (int r = r0; r < r1; r++) qgrid_fit(&g, xmin[r], xmax[r], &gs->scale[r], &gs->zero[r]);
    if (quant_zero_is_integer_code(p))
        for (int r = r0; r < r1; r++) gs->zero_codes[r] = (uint8_t)gs->zero[r]; /* in [0, maxq] by the rule */
    int b2 = p->qq_groupsize;
    if (p->qq_scale_bits > 0)
        for (int a = r0; a < r1; a += b2) {
            int b = a + b2 < m ? a + b2 : m; /* the last second-level group may be smaller */
            qgrid_second_level_code(gs->scale, a, b, p->qq_scale_bits, gs->scale_codes, &gs->qq_ss[a / b2],
                         &gs->qq_sz[a / b2]);
        }
    if (quant_zero_has_second_level(p))
        for (int a = r0; a < r1; a += b2) {
            int b = a + b2 < m ? a + b2 : m;
            qgrid_second_level_code(gs->zero, a, b, p->qq_zero_bits, gs->zero_codes, &gs->qq_zs[a / b2], &gs->qq_zz[a / b2]);
        }
}
