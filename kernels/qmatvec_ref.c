/* qmatvec_ref.c: the scalar reference of the quantized matrix-vector product
 * (qmatvec.h): each row of W_hat decoded weight by weight exactly as
 * quant_layer_dequantize decodes it (SPEC 2: s * (code - z), the second level
 * of the statistics included; an outlier replaces the weight under it, SPEC
 * 5), then multiplied with every input in double. Slow and plain on purpose:
 * the kernels are tested against it, it against the dense product. */
#include <stdlib.h>

#include "grid.h"
#include "qmatvec.h"
#include "util.h"

void qmatvec_ref(const QLayout *L, const float *Xp, int nb, float *Y) {
    const int m = L->m, n = L->n, g = L->groupsize;
    float *s = qh_malloc((size_t)L->ngroups * sizeof *s), *z = qh_malloc((size_t)L->ngroups * sizeof *z);
    float *w = qh_malloc((size_t)n * sizeof *w); /* (n) row r of W_hat, permuted order */
    for (int r = 0; r < m; r++) {
        qlayout_row_stats(L, r, s, z);
        for (int c = 0; c < n; c++) w[c] = qgrid_decode((float)qlayout_code(L, r, c), s[c / g], z[c / g]);
        if (L->out_rowptr)
            for (uint32_t k = L->out_rowptr[r]; k < L->out_rowptr[r + 1]; k++) w[L->out_col[k]] = qlayout_out_val(L, k);
        for (int b = 0; b < nb; b++) {
            const float *x = Xp + (size_t)b * L->n_pad;
            double acc = 0;
            for (int c = 0; c < n; c++) acc += (double)w[c] * x[c];
            Y[(size_t)b * m + r] = (float)acc;
        }
    }
    free(s), free(z), free(w);
}
