/* packed_quant.c: packed_quant_create (packed_quant.h): a QuantLayer into
 * the kernel-ready layout, wrapped as a PackedLinear whose matmul permutes
 * the inputs once (qlayout_permute) and runs the scalar reference, the AVX2
 * or the AVX-512 kernel on the host, or hands the layout to the CUDA kernel
 * (qmatvec.cu, device pointers). */
#include <stdlib.h>
#include <string.h>

#include "packed_quant.h"
#include "qmatvec.h"
#include "qmatvec_cuda.h"
#include "util.h"

typedef void (*HostKernel)(const QLayout *L, const float *Xp, int nb, float *Y);

typedef struct {
    PackedLinear base;
    QLayout L;
    HostKernel run;
} PackedQuantHost;

static int host_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    const PackedQuantHost *h = (const PackedQuantHost *)p;
    if (nb < 1 || !X || !Y) return qh_error("%s: matmul with nb = %d, X %p, Y %p; expected nb >= 1 and both arrays",
                                            p->ops->name, nb, (const void *)X, (void *)Y);
    float *Xp = qh_malloc((size_t)nb * h->L.n_pad * sizeof *Xp); /* (nb, n_pad) permuted, zero-padded */
    qlayout_permute(&h->L, X, nb, Xp);
    h->run(&h->L, Xp, nb, Y);
    free(Xp);
    return 0;
}

static void host_destroy(PackedLinear *p) {
    if (!p) return;
    qlayout_free(&((PackedQuantHost *)p)->L);
    free(p);
}

static const PackedLinearOps ref_ops = {"quant-ref", host_matmul, host_destroy};
static const PackedLinearOps avx2_ops = {"quant-avx2", host_matmul, host_destroy};
static const PackedLinearOps avx512_ops = {"quant-avx512", host_matmul, host_destroy};

int packed_quant_create(const QuantLayer *q, const char *kernel, PackedLinear **out) {
    *out = NULL;
    if (!kernel) kernel = "auto";
    const PackedLinearOps *ops;
    if (!strcmp(kernel, "ref"))
        ops = &ref_ops;
    else if (!strcmp(kernel, "avx2")) {
        if (!qmatvec_avx2_supported())
            return qh_error("packed_quant_create: kernel avx2: this CPU lacks AVX2, FMA or F16C (use ref or auto)");
        ops = &avx2_ops;
    } else if (!strcmp(kernel, "avx512")) {
        if (!qmatvec_avx512_supported())
            return qh_error("packed_quant_create: kernel avx512: this CPU lacks AVX-512 F, DQ, BW or VL, AVX2, FMA or F16C "
                            "(use avx2, ref or auto)");
        ops = &avx512_ops;
    } else if (!strcmp(kernel, "auto"))
        ops = qmatvec_avx512_supported() ? &avx512_ops : qmatvec_avx2_supported() ? &avx2_ops : &ref_ops;
    else if (!strcmp(kernel, "cuda")) {
        QLayout L;
        if (qlayout_build(q, &L) != 0) return -1;
        int rc = qmatvec_cuda_create(&L, out); /* copies L to the device */
        qlayout_free(&L);
        return rc;
    } else
        return qh_error("packed_quant_create: kernel '%s'; expected ref, avx2, avx512, cuda or auto", kernel);
    PackedQuantHost *h = qh_calloc(1, sizeof *h);
    if (qlayout_build(q, &h->L) != 0) {
        free(h);
        return -1;
    }
    h->run = ops == &avx512_ops ? qmatvec_avx512 : ops == &avx2_ops ? qmatvec_avx2 : qmatvec_ref;
    h->base.ops = ops;
    h->base.m = h->L.m, h->base.n = h->L.n, h->base.where = PACKED_HOST, h->base.bytes = h->L.bytes;
    *out = &h->base;
    return 0;
}
