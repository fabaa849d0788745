/* quant_packed.c: building the packed linears of a quantized-model file
 * (quant_packed.h) and plugging them into a Forward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "quant_io.h"
#include "quant_packed.h"
#include "util.h"

#include "packed_quant.h" /* the kernels' constructor, packed_quant_create */

int quant_kernels_check(const char *s, const char *what) {
    size_t n = s ? strlen(s) : 0;
    for (const char *c = QUANT_KERNELS_CHOICES; n && *c; c += strcspn(c, "|"), c += *c == '|')
        if (strcspn(c, "|") == n && !strncmp(c, s, n)) return 0;
    return qh_error("%s: expected one of %s, got '%s'", what, QUANT_KERNELS_CHOICES, s ? s : "");
}

void quant_packed_free(PackedModel *pm) {
    if (pm->lin)
        for (int i = 0; i < pm->n_layers * LIN_COUNT; i++)
            if (pm->lin[i]) pm->lin[i]->ops->destroy(pm->lin[i]);
    free(pm->lin);
    memset(pm, 0, sizeof *pm);
    snprintf(pm->kernel, sizeof pm->kernel, "decoded");
}

/* Every linear of f through create(kernel); -1 (nothing kept) at the first that fails. */
static int build_all(H5File *f, const char *path, const Model *m, PackedCreateFn create, const char *kernel,
                     PackedModel *pm) {
    const ModelConfig *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < model_n_linears(c); k++) {
            const char *nm = model_linear_name(c, (LinearKind)k);
            QuantLayer q;
            int rotate_half = 0;
            if (quant_io_row_order(f, c, l, (LinearKind)k, &rotate_half) != 0) return -1;
            if (rotate_half)
                return qh_error("'%s': layer %d %s is stored in its checkpoint's rotate-half row order (row_order), "
                                "which the packed kernels do not reorder; use --kernels decoded",
                                path, l, nm);
            if (quant_io_read_layer_named(f, "/", l, nm, &q) != 0) return -1;
            PackedLinear *p = NULL;
            int rc = create(&q, kernel, &p);
            quant_layer_free(&q);
            if (rc != 0) return qh_error("'%s': layer %d %s cannot be packed for kernel '%s' (above)", path, l, nm, kernel);
            pm->lin[l * LIN_COUNT + k] = p;
            pm->bytes += p->bytes;
        }
    return 0;
}

int quant_packed_build(const char *path, const Model *m, PackedCreateFn create, const char *kernels, int where,
                       PackedModel *pm) {
    memset(pm, 0, sizeof *pm);
    snprintf(pm->kernel, sizeof pm->kernel, "decoded");
    if (quant_kernels_check(kernels, "--kernels") != 0) return -1;
    if (!strcmp(kernels, "decoded")) return 0;
    const char *kernel = !strcmp(kernels, "auto") && where == PACKED_DEVICE ? "cuda" : kernels;
    if (!create) create = packed_quant_create;
    H5File *f;
    if (h5_open_read(path, &f) != 0) return -1;
    pm->n_layers = m->cfg.n_layers;
    pm->lin = qh_calloc((size_t)pm->n_layers * LIN_COUNT, sizeof *pm->lin);
    int rc = build_all(f, path, m, create, kernel, pm);
    h5_commit(&f);
    if (rc != 0) {
        quant_packed_free(pm);
        if (strcmp(kernels, "auto") != 0) return -1;
        qh_warn("--kernels auto: '%s' runs on its decoded fp32 weights instead (the kernels cannot take the layer "
                "named above)", path);
        return 0;
    }
    snprintf(pm->kernel, sizeof pm->kernel, "%s", pm->lin[0] ? pm->lin[0]->ops->name : kernel);
    return 0;
}

int quant_packed_apply(const PackedModel *pm, Forward *f) {
    if (!pm->lin) return 0;
    for (int l = 0; l < pm->n_layers; l++)
        for (int k = 0; k < LIN_COUNT; k++)
            if (pm->lin[l * LIN_COUNT + k] && forward_set_packed(f, l, (LinearKind)k, pm->lin[l * LIN_COUNT + k]) != 0)
                return -1;
    return 0;
}
