/* methods.c: the table of quantization methods (settings.h). RTN, GPTQ and
 * SpQR are three configurations of one engine (quantize_layer_ref, layer.c):
 * GPTQ = the engine with the Hessian, no outliers and fp16 statistics; RTN =
 * the grid (two-level statistics allowed) on the original weights; SpQR = the
 * engine with everything. A method's row says what it is made of, its
 * defaults, and its quantizer. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "settings.h"

/* SpQR: the paper's near-lossless setting (SPEC 5), identity order. */
static void spqr_defaults(QuantParams *p) {
    p->groupsize = 16;
    p->qq_scale_bits = 3;
    p->qq_zero_bits = 3;
    p->qq_groupsize = 16;
    p->outlier_threshold = 0.2;
    p->percdamp = 1.0;
}

/* AWQ: the paper's group size of 128 columns and the reference's integer zero
 * point (asymmetric min-max with a rounded zero; for a group whose range
 * contains 0, GPTQ's rule is exactly the reference's grid). */
static void awq_defaults(QuantParams *p) {
    p->groupsize = 128;
    p->gptq_zero_rule = 1;
}

const QuantMethod quant_methods[] = {
    /* name, title, capabilities, own defaults, quantizer, summary */
    {"rtn", "RTN", QUANT_CAP_GRID | QUANT_CAP_QQ, NULL, quantize_layer_ref, "round to nearest (SPEC 3)"},
    {"gptq", "GPTQ", QUANT_CAP_GRID | QUANT_CAP_HESSIAN, NULL, quantize_layer_ref, "GPTQ column sweep over H (SPEC 4)"},
    {"spqr", "SpQR", QUANT_CAP_GRID | QUANT_CAP_QQ | QUANT_CAP_OUTLIERS | QUANT_CAP_HESSIAN, spqr_defaults,
     quantize_layer_ref, "GPTQ + small groups + quantized statistics + outliers (SPEC 5)"},
    {"awq", "AWQ", QUANT_CAP_GRID | QUANT_CAP_ACT_SCALE, awq_defaults, awq_quantize_ref,
     "activation-aware per input channel scales searched per block, clipping, then grouped RTN (Lin et al. 2023)"},
    {NULL, NULL, 0, NULL, NULL, NULL},
};

int quant_nmethods(void) {
    int n = 0;
    while (quant_methods[n].name) n++;
    return n;
}

int quant_method_index(const char *name) {
    for (int i = 0; name && quant_methods[i].name; i++)
        if (!strcmp(quant_methods[i].name, name)) return i;
    return -1;
}

const QuantMethod *quant_method_find(const char *name) {
    int i = quant_method_index(name);
    return i < 0 ? NULL : &quant_methods[i];
}

void quant_method_names(unsigned mask, const char *sep, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; quant_methods[i].name; i++) {
        if (!(mask & (1u << i))) continue;
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", l ? sep : "", quant_methods[i].name);
    }
}
