/* params.c: the method table (rtn, gptq, spqr), default parameters and their
 * validation. Holds no algorithm; bits per parameter are in bits.c. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant_internal.h"
#include "util.h"

/* What each method is made of: GPTQ = the engine with no outliers and fp16
 * statistics; RTN = the quantizer (two-level statistics allowed) applied to the
 * original weights; SpQR = the engine with everything. */
static const QuantMethodInfo methods[] = {
    {"rtn", 0, 0, 1},
    {"gptq", 1, 0, 0},
    {"spqr", 1, 1, 1},
};

const QuantMethodInfo *quant_method_info(const char *method) {
    if (!method) return NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, method) == 0) return &methods[i];
    return NULL;
}

void quant_params_default(QuantParams *p, const char *method) {
    memset(p, 0, sizeof *p);
    p->wbits = 4;
    p->groupsize = 0;
    p->qq_scale_bits = 0;
    p->qq_zero_bits = 0;
    p->qq_groupsize = 0;
    p->outlier_threshold = INFINITY;
    p->simplified_outliers = 0;
    p->percdamp = 0.01; /* SPEC 4.2, paper default */
    p->perm = QH_PERM_IDENTITY;
    p->sym = 0;
    p->round_zero = 0;
    p->gptq_zero_rule = 0; /* SPEC 2: SpQR's rule by default for every method */
    p->blocksize = 128;    /* SPEC 4.5 */
    if (method && strcmp(method, "spqr") == 0) {
        /* the paper's near-lossless setting (SPEC 5), identity order */
        p->groupsize = 16;
        p->qq_scale_bits = 3;
        p->qq_zero_bits = 3;
        p->qq_groupsize = 16;
        p->outlier_threshold = 0.2;
        p->percdamp = 1.0;
    }
}

int quant_params_validate(const QuantParams *p, const char *method, int m, int n) {
    const QuantMethodInfo *mi = quant_method_info(method);
    if (!mi) return qh_error("method '%s' unknown; expected rtn, gptq or spqr", method ? method : "(null)");
    if (m < 1) return qh_error("%s: layer rows m = %d; expected m >= 1", method, m);
    if (n < 1 || n > 65536)
        return qh_error("%s: layer columns n = %d; expected 1 <= n <= 65536 (16-bit column indices)", method, n);
    if (p->wbits < 1 || p->wbits > 8) return qh_error("%s: wbits = %d; expected 1..8", method, p->wbits);
    if (p->groupsize < 0 || p->groupsize > n)
        return qh_error("%s: groupsize = %d; expected 0 (one group per row) or 1..%d (n)", method, p->groupsize, n);
    if (p->qq_scale_bits < 0 || p->qq_scale_bits > 8)
        return qh_error("%s: qq_scale_bits = %d; expected 0 (fp16 scales) or 1..8", method, p->qq_scale_bits);
    if (p->qq_zero_bits < 0 || p->qq_zero_bits > 8)
        return qh_error("%s: qq_zero_bits = %d; expected 0 (fp16 zeros) or 1..8", method, p->qq_zero_bits);
    int qq = p->qq_scale_bits > 0 || p->qq_zero_bits > 0;
    if (qq && (p->qq_groupsize < 1 || p->qq_groupsize > m))
        return qh_error("%s: qq_groupsize = %d with qq_scale_bits %d / qq_zero_bits %d; expected 1..%d (m rows)",
                        method, p->qq_groupsize, p->qq_scale_bits, p->qq_zero_bits, m);
    if (!qq && p->qq_groupsize < 0)
        return qh_error("%s: qq_groupsize = %d; expected >= 0", method, p->qq_groupsize);
    if (isnan(p->outlier_threshold) || p->outlier_threshold < 0)
        return qh_error("%s: outlier_threshold = %g; expected >= 0 (inf = no outliers)", method,
                        p->outlier_threshold);
    if (!isfinite(p->percdamp) || p->percdamp < 0)
        return qh_error("%s: percdamp = %g; expected a finite value >= 0", method, p->percdamp);
    if (p->perm != QH_PERM_IDENTITY && p->perm != QH_PERM_ACT_ORDER)
        return qh_error("%s: perm = %d; expected 0 (identity) or 1 (act_order)", method, (int)p->perm);
    if (p->blocksize < 1) return qh_error("%s: blocksize = %d; expected >= 1", method, p->blocksize);
    if (!mi->allows_outliers && !isinf(p->outlier_threshold))
        return qh_error("%s: outlier_threshold = %g; %s has no outliers, expected inf (use spqr)", method,
                        p->outlier_threshold, method);
    if (!mi->allows_qq && qq)
        return qh_error("%s: qq_scale_bits %d / qq_zero_bits %d; %s keeps fp16 statistics, expected 0 (use spqr)",
                        method, p->qq_scale_bits, p->qq_zero_bits, method);
    if (p->sym && p->qq_zero_bits > 0)
        return qh_error("%s: qq_zero_bits = %d with sym; every symmetric zero is (maxq+1)/2, expected 0", method,
                        p->qq_zero_bits);
    if ((p->round_zero || p->gptq_zero_rule) && p->qq_zero_bits > 0)
        return qh_error("%s: qq_zero_bits = %d with round_zero / gptq_zero_rule; an integer zero is stored as is "
                        "(SPEC 6: it costs wbits), expected 0",
                        method, p->qq_zero_bits);
    return 0;
}
