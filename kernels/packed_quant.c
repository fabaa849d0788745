/* packed_quant.c: packed_quant_create (packed_quant.h): a QuantLayer into
 * the kernel-ready layout, wrapped as a PackedLinear whose matmul permutes
 * the inputs once (qlayout_permute) and runs the scalar reference or the AVX2
 * kernel on the host, or hands the layout to the CUDA kernel (qmatvec.cu,
 * device pointers). */
#include <stdlib.h>
#include <string.h>

#include "packed_quant.h"
#include "qmatvec.h"
#include "qmatvec_cuda.h"
#include "util.h"

typedef struct {
    PackedLinear base;
    QLayout L;
    int avx2;
} PackedQuantHost;

static int host_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    const PackedQuantHost *h = (const PackedQuantHost *)p;
    if (nb < 1 || !X || !Y) return qh_error("%s: matmul with nb = %d, X %p, Y %p; expected nb >= 1 and both arrays",
                                            p->ops->name, nb, (const void *)X, (void *)Y);
    float *Xp = qh_malloc((size_t)nb * h->L.n_pad * sizeof *Xp); /* (nb, n_pad) permuted, zero-padded */
    qlayout_permute(&h->L, X, nb, Xp);
    if (h->avx2)
        qmatvec_avx2(&h->L, Xp, nb, Y);
    else
        qmatvec_ref(&h->L, Xp, nb, Y);
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

int packed_quant_create(const QuantLayer *q, const char *kernel, PackedLinear **out) {
    *out = NULL;
    if (!kernel) kernel = "auto";
    int avx2;
    if (!strcmp(kernel, "ref"))
        avx2 = 0;
    else if (!strcmp(kernel, "avx2")) {
        if (!qmatvec_avx2_supported())
            return qh_error("packed_quant_create: kernel avx2: this CPU lacks AVX2 or FMA (use ref or auto)");
        avx2 = 1;
    } else if (!strcmp(kernel, "auto"))
        avx2 = qmatvec_avx2_supported();
    else if (!strcmp(kernel, "cuda")) {
        QLayout L;
        if (qlayout_build(q, &L) != 0) return -1;
        int rc = qmatvec_cuda_create(&L, out); /* copies L to the device */
        qlayout_free(&L);
        return rc;
    } else
        return qh_error("packed_quant_create: kernel '%s'; expected ref, avx2, cuda or auto", kernel);
    PackedQuantHost *h = qh_calloc(1, sizeof *h);
    if (qlayout_build(q, &h->L) != 0) {
        free(h);
        return -1;
    }
    h->avx2 = avx2;
    h->base.ops = avx2 ? &avx2_ops : &ref_ops;
    h->base.m = h->L.m, h->base.n = h->L.n, h->base.where = PACKED_HOST, h->base.bytes = h->L.bytes;
    *out = &h->base;
    return 0;
}
