/* params.c: default parameters (from the tables of settings.c and methods.c)
 * and their validation. Holds no algorithm; bits per parameter are in bits.c. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant_internal.h"
#include "settings.h"
#include "util.h"

const char *quant_stats_dtype_name(QuantStatsDtype d) {
    return d == QH_STATS_FP32 ? "fp32" : d == QH_STATS_FP16 ? "fp16" : NULL;
}

int quant_stats_dtype_parse(const char *s, QuantStatsDtype *d) {
    if (s && !strcmp(s, "fp32")) return *d = QH_STATS_FP32, 0;
    if (s && !strcmp(s, "fp16")) return *d = QH_STATS_FP16, 0;
    return -1;
}

int quant_stats_dtype_bits(QuantStatsDtype d) { return d == QH_STATS_FP16 ? 16 : 32; }

void quant_params_default(QuantParams *p, const char *method) {
    memset(p, 0, sizeof *p);
    for (const QuantSetting *s = quant_settings; s->name; s++) quant_setting_set(p, s, s->def);
    const QuantMethod *m = quant_method_find(method);
    if (m && m->defaults) m->defaults(p);
}

int quant_params_validate(const QuantParams *p, const char *method, int m, int n) {
    const QuantMethod *mi = quant_method_find(method);
    if (!mi) {
        char names[128];
        quant_method_names(~0u, ", ", names, sizeof names);
        return qh_error("method '%s' unknown; expected one of %s", method ? method : "(null)", names);
    }
    if (m < 1) return qh_error("%s: layer rows m = %d; expected m >= 1", method, m);
    if (n < 1 || n > 65536)
        return qh_error("%s: layer columns n = %d; expected 1 <= n <= 65536 (16-bit column indices)", method, n);
    if (p->wbits < 1 || p->wbits > 8) return qh_error("%s: wbits = %d; expected 1..8", method, p->wbits);
    if (p->groupsize < 0 || p->groupsize > n)
        return qh_error("%s: groupsize = %d; expected 0 (one group per row) or 1..%d (n)", method, p->groupsize, n);
    if (p->qq_scale_bits < 0 || p->qq_scale_bits > 8)
        return qh_error("%s: qq_scale_bits = %d; expected 0 (unquantized scales) or 1..8", method, p->qq_scale_bits);
    if (p->qq_zero_bits < 0 || p->qq_zero_bits > 8)
        return qh_error("%s: qq_zero_bits = %d; expected 0 (unquantized zeros) or 1..8", method, p->qq_zero_bits);
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
    if (!quant_stats_dtype_name(p->stats_dtype))
        return qh_error("%s: stats_dtype = %d; expected %d (fp32, reference) or %d (fp16, deployment)", method,
                        (int)p->stats_dtype, (int)QH_STATS_FP32, (int)QH_STATS_FP16);
    if (p->blocksize < 1) return qh_error("%s: blocksize = %d; expected >= 1", method, p->blocksize);
    if (!(mi->caps & QUANT_CAP_OUTLIERS) && !isinf(p->outlier_threshold))
        return qh_error("%s: outlier_threshold = %g; %s has no outliers, expected inf (use spqr)", method,
                        p->outlier_threshold, method);
    if (!(mi->caps & QUANT_CAP_QQ) && qq)
        return qh_error("%s: qq_scale_bits %d / qq_zero_bits %d; %s keeps unquantized statistics, expected 0 (use spqr)",
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
