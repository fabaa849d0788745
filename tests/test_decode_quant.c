/* test_decode_quant.c: generation from quantized-model files through packed
 * linears (quant_packed.h) against the decoded-weight fp32 path, on
 * stories260K quantized here (RTN 4-bit, GPTQ 4-bit, SpQR 3-bit without and
 * with outliers, saved and loaded back as `generate --quantized` does).
 *
 * 1. Greedy generation from BOS for 200 steps, in lockstep: the packed path
 *    (the kernels of kernels/packed_quant.h, "ref" and "auto", and a double
 *    here that multiplies the decoded weights in double) and the decoded fp32 path each decode the same token and pick
 *    their argmax. The test prints either "equal for 200 steps" or the first
 *    step where they part with the two tokens and both paths' logits of
 *    both; parting is accepted only at a rounding tie: each path's two
 *    logits within 1e-4 of the row's largest |logit| (the kernels' fp32 sums
 *    in another order move a logit by ~1e-6 of that scale), so a wrong
 *    product (a lost outlier, a wrong group statistic: ~1e-2) fails.
 *    Before parting, every step's logits of the two paths are within 1e-4 of
 *    the row scale.
 * 2. --kernels choices: "decoded" builds nothing; "auto" falls back to the
 *    decoded weights, with a warning naming the file, when the constructor
 *    refuses a layer (a double that refuses by naming a QuantLayer field), and
 *    an explicit kernel then fails with the constructor's message; an
 *    unknown choice is refused by name; a wq stored in its checkpoint's
 *    rotate-half row order (a Hugging Face LLaMA fixture) is refused by name.
 * Not here: the kernels against their _ref (kernels/ tests), the KV cache
 * itself (test_decode.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "forward.h"
#include "model_open.h"
#include "provenance.h"
#include "quant_io.h"
#include "quant_packed.h"
#include "stories_fixture.h"
#include "tokenizer.h"
#include "util.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }
static char dir[] = "/tmp/qh_decq_XXXXXX";

#define CAPTURE_CHECK_FAIL(call, want, what) CAPTURE_CHECK_FAIL_IN(dir, call, want, what)

/* ---- a constructor double: the decoded weights, multiplied in double ---------- */

typedef struct Deq {
    PackedLinear base;
    float *W; /* (m, n) owned */
} Deq;
static int deq_matmul(const PackedLinear *p, const float *X, int nb, float *Y, void *stream) {
    const Deq *d = (const Deq *)p;
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < p->m; r++) {
            double acc = 0;
            for (int c = 0; c < p->n; c++) acc += (double)d->W[(size_t)r * p->n + c] * X[(size_t)b * p->n + c];
            Y[(size_t)b * p->m + r] = (float)acc;
        }
    return 0;
}
static void deq_destroy(PackedLinear *p) {
    free(((Deq *)p)->W);
    free(p);
}
static const PackedLinearOps deq_ops = {"dequant-double", deq_matmul, deq_destroy};
static int deq_create(const QuantLayer *q, const char *kernel, PackedLinear **out) {
    Deq *d = qh_calloc(1, sizeof *d);
    d->base = (PackedLinear){&deq_ops, q->m, q->n, PACKED_HOST, sizeof(float) * (size_t)q->m * q->n};
    d->W = qh_malloc(sizeof(float) * (size_t)q->m * q->n);
    quant_layer_dequantize(q, d->W);
    *out = &d->base;
    return 0;
}
/* refuses every layer, naming a field, as the kernels do for a layout they cannot take */
static int refusing_create(const QuantLayer *q, const char *kernel, PackedLinear **out) {
    return qh_error("QuantLayer.wbits = %d: kernel '%s' of this test takes none", q->wbits, kernel);
}

/* ---- 1. lockstep greedy ---------------------------------------------------------- */

static double row_scale(const float *l, int V) {
    double s = 0;
    for (int i = 0; i < V; i++) s = fabs(l[i]) > s ? fabs(l[i]) : s;
    return s > 0 ? s : 1;
}

static void lockstep(const char *what, const char *path, const Model *m, PackedCreateFn create, const char *kernel) {
    int V = m->cfg.vocab_size, steps = 200;
    PackedModel pm;
    Forward *fd = NULL, *fk = NULL;
    if (quant_packed_build(path, m, create, kernel, PACKED_HOST, &pm) != 0) {
        CHECK(0, "%s: packed linears not built", what);
        return;
    }
    CHECK(pm.lin && pm.lin[0], "%s: kernel '%s' built nothing (%s)", what, kernel, pm.kernel);
    forward_cpu_create(m, 64, &fd);
    forward_cpu_create(m, 64, &fk);
    int ok = quant_packed_apply(&pm, fk) == 0 && fd->ops->decode_reset(fd, steps) == 0 &&
             fk->ops->decode_reset(fk, steps) == 0;
    CHECK(ok, "%s: set-up", what);
    float *ld = qh_malloc(sizeof(float) * V), *lk = qh_malloc(sizeof(float) * V);
    int tok = 1, part = -1, far = 0;
    double worst = 0;
    for (int s = 0; ok && s < steps; s++) {
        if (fd->ops->decode(fd, &tok, 1, ld) != 0 || fk->ops->decode(fk, &tok, 1, lk) != 0) {
            CHECK(0, "%s: decode failed at step %d", what, s);
            break;
        }
        double sc = row_scale(ld, V), dev = 0;
        for (int i = 0; i < V; i++) dev = fmax(dev, fabs((double)ld[i] - lk[i]) / sc);
        worst = fmax(worst, dev);
        if (dev > 1e-4) far++;
        int td = forward_argmax(ld, V), tk = forward_argmax(lk, V);
        if (td != tk) {
            part = s;
            double gd = fabs((double)ld[td] - ld[tk]) / sc, gk = fabs((double)lk[td] - lk[tk]) / row_scale(lk, V);
            printf("%-34s %-16s part at step %d: decoded picks %d (logits %.7g vs %.7g for %d), kernel picks %d "
                   "(logits %.7g vs %.7g for %d)\n", what, pm.kernel, s, td, ld[td], ld[tk], tk, tk, lk[tk], lk[td], td);
            CHECK(gd <= 1e-4 && gk <= 1e-4, "%s: the paths part at step %d without a tie (gaps %.3g / %.3g of the row scale)",
                  what, s, gd, gk);
            break;
        }
        tok = td;
    }
    if (part < 0 && ok) printf("%-34s %-16s equal for %d steps (worst logit difference %.3g of the row scale)\n", what,
                               pm.kernel, steps, worst);
    CHECK(far == 0, "%s: %d steps with logits off the decoded path by more than 1e-4 (worst %.3g)", what, far, worst);
    free(ld);
    free(lk);
    forward_destroy(&fd);
    forward_destroy(&fk);
    quant_packed_free(&pm);
}

/* Quantize stories260K with `method` and write it to dir/name.h5 (path). */
static int make_file(const char *method, int wbits, int groupsize, double tau, const char *name, char *path, size_t n) {
    Model m;
    Tokenizer tok;
    if (stories_open(&m, &tok) != 0) return -1;
    QuantRunSpec s = {.method = method, .calib = strcmp(method, "rtn") ? "c4" : "none", .nsamples = 16, .seqlen = 256,
                      .data_root = root(), .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, method);
    s.params.wbits = wbits;
    s.params.groupsize = groupsize;
    if (!strcmp(method, "spqr")) s.params.outlier_threshold = tau;
    QuantRun run;
    Provenance prov;
    char *argv0[] = {"test_decode_quant"};
    provenance_collect(&prov, 1, argv0);
    qh_pathf(path, n, "%s/%s.h5", dir, name);
    int rc = quantize_model(&m, &tok, &s, &run);
    if (rc == 0) {
        rc = quant_model_save(path, &m, &s, &run, &prov, "{}");
        quant_run_free(&run);
    }
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}

static void check_choices(const char *path, const Model *m) {
    PackedModel pm;
    CHECK(quant_packed_build(path, m, deq_create, "decoded", PACKED_HOST, &pm) == 0 && !pm.lin &&
              !strcmp(pm.kernel, "decoded"),
          "--kernels decoded builds nothing");
    quant_packed_free(&pm);
    cap_begin_in(dir);
    int rc = quant_packed_build(path, m, refusing_create, "auto", PACKED_HOST, &pm);
    char *msg = cap_end();
    CHECK(rc == 0 && !pm.lin && !strcmp(pm.kernel, "decoded") && strstr(msg, "QuantLayer.wbits = 4") &&
              strstr(msg, "layer 0 wq cannot be packed for kernel 'auto'") &&
              strstr(msg, "--kernels auto: '") && strstr(msg, "runs on its decoded fp32 weights instead"),
          "auto falls back with a message naming the field: rc %d, kernel %s, '%s'", rc, pm.kernel, msg);
    free(msg);
    quant_packed_free(&pm);
    CAPTURE_CHECK_FAIL(quant_packed_build(path, m, refusing_create, "ref", PACKED_HOST, &pm),
                       "QuantLayer.wbits = 4: kernel 'ref' of this test takes none", "an explicit kernel never falls back");
    CHECK(!pm.lin, "nothing kept after a refusal");
    CAPTURE_CHECK_FAIL(quant_packed_build(path, m, deq_create, "fast", PACKED_HOST, &pm),
                       "--kernels: expected one of ref|avx2|avx512|cuda|auto|decoded, got 'fast'", "an unknown kernel");
}

static void check_rotate_half(void) {
    Model m;
    if (model_open("tests/fixtures/families/llama_gqa_f32", NULL, &m, NULL) != 0) {
        CHECK(0, "llama_gqa_f32 fixture not opened");
        return;
    }
    QuantRunSpec s = {.method = "rtn", .calib = "none", .seqlen = 16, .data_root = root(), .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, "rtn");
    QuantRun run;
    Provenance prov;
    char *argv0[] = {"test_decode_quant"}, path[600];
    provenance_collect(&prov, 1, argv0);
    qh_pathf(path, sizeof path, "%s/gqa_rtn.h5", dir);
    int ok = quantize_model(&m, NULL, &s, &run) == 0 && quant_model_save(path, &m, &s, &run, &prov, "{}") == 0;
    CHECK(ok, "rtn of the llama_gqa_f32 fixture saved");
    if (ok) {
        quant_run_free(&run);
        PackedModel pm;
        CAPTURE_CHECK_FAIL(quant_packed_build(path, &m, deq_create, "ref", PACKED_HOST, &pm),
                           "layer 0 wq is stored in its checkpoint's rotate-half row order (row_order)",
                           "a rotate-half wq refused");
        unlink(path);
    }
    model_free(&m);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    char probe[512];
    stories_model_path(probe, sizeof probe);
    if (access(probe, R_OK) != 0) {
        SKIP("stories260K not found (make data)");
        rmdir(dir);
        return test_summary();
    }
    static const struct {
        const char *what, *method, *name;
        int wbits, groupsize;
        double tau;
    } files[] = {
        {"stories260K rtn 4-bit", "rtn", "rtn4", 4, 0, INFINITY},
        {"stories260K gptq 4-bit", "gptq", "gptq4", 4, 0, INFINITY},
        {"stories260K spqr 3-bit no outliers", "spqr", "spqr3", 3, 16, INFINITY},
        {"stories260K spqr 3-bit outliers", "spqr", "spqr3o", 3, 16, 0.2},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[600];
        if (make_file(files[i].method, files[i].wbits, files[i].groupsize, files[i].tau, files[i].name, path,
                      sizeof path) != 0) {
            CHECK(0, "%s: not quantized", files[i].what);
            continue;
        }
        Model m;
        QuantModelInfo info;
        if (quant_model_load(path, NULL, NULL, -1, 0, &m, NULL, &info) != 0) {
            CHECK(0, "%s: not loaded", files[i].what);
            continue;
        }
        if (files[i].tau < 1e9) CHECK(info.outlier_fraction > 0, "%s: no outliers kept", files[i].what);
        lockstep(files[i].what, path, &m, NULL, "ref");
        lockstep(files[i].what, path, &m, NULL, "auto");
        lockstep(files[i].what, path, &m, deq_create, "ref"); /* the plumbing with a decoded-weight double */
        if (i == 0) check_choices(path, &m);
        model_free(&m);
        unlink(path);
    }
    check_rotate_half();
    rmdir(dir);
    return test_summary();
}
