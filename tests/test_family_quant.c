/* test_family_quant.c: quantizing the tiny Falcon checkpoints of
 * tests/fixtures/families (Falcon-7B's multi-query layout, Falcon-40B's
 * new_decoder_architecture) with RTN, GPTQ and SpQR, true-sequential in the
 * reference's Falcon groups, calibrated on file:text.txt (the stories260K
 * tokenizer):
 * - the quantized file (quant_model_save) decodes bit for bit to the weights
 *   held in memory after quantize_model (quant_model_load on the HF folder),
 *   and its perplexity is the same, bit for bit;
 * - avg_bits is the SPEC 6 formula in closed form: RTN / GPTQ at 3 bits,
 *   groups of 16 with fp16 statistics: 3 + 32/16 = 5; SpQR with 3-bit
 *   statistics in groups of 16 of 16 rows: 3 + 6/16 + 2*32/256 + 32 * outliers;
 * - per block, the linears and names are Falcon's four (query_key_value, dense,
 *   dense_h_to_4h, dense_4h_to_h), the fused QKV one (H + 2 Hkv) hs x D matrix;
 * - GPTQ with H = I equals RTN on the fused QKV matrix (no error feedback
 *   through an identity Hessian), bit for bit.
 * Needs data/models/stories260K/tok512.bin (make data); skipped without it. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "calibrate.h"
#include "check.h"
#include "cpu_ppl.h"
#include "family_fixtures.h"
#include "forward.h"
#include "hf_model.h"
#include "perplexity.h"
#include "provenance.h"
#include "quant_io.h"
#include "tokenizer.h"
#include "util.h"

static const char *root(void) {
    const char *d = getenv("QH_DATA");
    return d && *d ? d : "data";
}

static void test_method(const char *name, const char *method, const Tokenizer *t) {
    FamilyFixture fx;
    Model m;
    if (family_fixture_load(name, &fx) != 0 || hf_model_load(&m, fx.dir) != 0) {
        CHECK(0, "%s: load", name);
        return;
    }
    char calib[600];
    snprintf(calib, sizeof calib, "file:%s/text.txt", family_fixture_root());
    QuantRunSpec s = {.method = method, .calib = calib, .nsamples = 4, .seqlen = 32, .seed = 0,
                      .data_root = root(), .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, method);
    s.params.true_sequential = 1;
    s.params.wbits = 3;
    s.params.groupsize = 16;
    QuantRun run;
    if (quantize_model(&m, t, &s, &run) != 0) {
        CHECK(0, "%s %s: quantize_model", name, method);
        model_free(&m);
        family_fixture_free(&fx);
        return;
    }
    const ArchDesc *a = arch_of(&m.cfg);
    CHECK(a->family == ARCH_FALCON && a->n_lin == 4 && !strcmp(a->lin[LIN_QKV].name, "query_key_value") &&
              !strcmp(a->lin[LIN_4H_TO_H].name, "dense_4h_to_h"),
          "%s: not read as Falcon", name);
    int qr, qc;
    model_linear_shape(&m.cfg, LIN_QKV, &qr, &qc);
    CHECK(qr == m.cfg.dim + 2 * model_kv_dim(&m.cfg) && qc == m.cfg.dim && run.reports[LIN_QKV].m == qr,
          "%s: fused QKV %d x %d quantized as %d rows", name, qr, qc, run.reports[LIN_QKV].m);
    double expect = !strcmp(method, "spqr") ? 3 + 6.0 / 16 + 64.0 / 256 + 32 * run.outlier_fraction : 5.0;
    CHECK(fabs(run.avg_bits - expect) < 1e-12, "%s %s: avg_bits %.15g, formula %.15g", name, method, run.avg_bits,
          expect);
    double ppl_mem = cpu_ppl(&m, fx.ids, fx.n_ids, fx.seqlen, 0);

    char dir[] = "/tmp/qh_famqXXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/q.h5", dir);
    Provenance prov;
    char *argv0[] = {"test_family_quant"};
    provenance_collect(&prov, 1, argv0);
    CHECK(quant_model_save(path, &m, &s, &run, &prov, "{}") == 0, "%s %s: save", name, method);
    Model m2;
    QuantModelInfo info;
    if (quant_model_load(path, fx.dir, NULL, -1, 0, &m2, NULL, &info) == 0) {
        long diff = 0;
        for (int l = 0; l < m.cfg.n_layers; l++)
            for (int k = 0; k < a->n_lin; k++) {
                int r, c;
                model_linear_shape(&m.cfg, (LinearKind)k, &r, &c);
                diff += memcmp(m.w.blocks[l].lin[k], m2.w.blocks[l].lin[k], sizeof(float) * (size_t)r * c) != 0;
            }
        CHECK(diff == 0, "%s %s: %ld sub-layers of the file differ from the in-memory ones", name, method, diff);
        double ppl_file = cpu_ppl(&m2, fx.ids, fx.n_ids, fx.seqlen, 0);
        CHECK(ppl_file == ppl_mem && isfinite(ppl_mem), "%s %s: ppl from the file %.17g, in memory %.17g", name, method,
              ppl_file, ppl_mem);
        fprintf(stderr, "%-14s %-4s 3-bit: avg bits %.4f, ppl %.4f (fp %.4f)\n", name, method, run.avg_bits, ppl_mem,
                fx.ppl);
        model_free(&m2);
    } else {
        CHECK(0, "%s %s: quant_model_load", name, method);
    }
    unlink(path);
    rmdir(dir);
    quant_run_free(&run);
    model_free(&m);
    family_fixture_free(&fx);
}

/* GPTQ with H = I is RTN on the fused QKV matrix. */
static void test_gptq_identity(const char *name) {
    FamilyFixture fx;
    Model m;
    if (family_fixture_load(name, &fx) != 0 || hf_model_load(&m, fx.dir) != 0) {
        CHECK(0, "%s: load", name);
        return;
    }
    int r, c;
    model_linear_shape(&m.cfg, LIN_QKV, &r, &c);
    double *H = qh_calloc((size_t)c * c, sizeof(double)); /* (c, c) identity */
    for (int i = 0; i < c; i++) H[(size_t)i * c + i] = 1.0;
    QuantParams p;
    quant_params_default(&p, "gptq");
    p.wbits = 3;
    p.groupsize = 16;
    QuantLayer qg, qr;
    float *wg = qh_malloc(sizeof(float) * (size_t)r * c), *wr = qh_malloc(sizeof(float) * (size_t)r * c);
    CHECK(quantize_linear(NULL, &m.cfg, LIN_QKV, "gptq", m.w.blocks[0].lin[LIN_QKV], H, &p, &qg, wg) == 0 &&
              quantize_linear(NULL, &m.cfg, LIN_QKV, "rtn", m.w.blocks[0].lin[LIN_QKV], NULL, &p, &qr, wr) == 0,
          "%s: quantize_linear", name);
    CHECK(memcmp(wg, wr, sizeof(float) * (size_t)r * c) == 0, "%s: GPTQ with H = I differs from RTN on the %d x %d "
          "fused QKV", name, r, c);
    quant_layer_free(&qg);
    quant_layer_free(&qr);
    free(wg);
    free(wr);
    free(H);
    model_free(&m);
    family_fixture_free(&fx);
}

int main(void) {
    char tp[1024];
    snprintf(tp, sizeof tp, "%s/models/stories260K/tok512.bin", root());
    Tokenizer t;
    if (access(tp, R_OK) != 0 || tokenizer_load(&t, tp, 512) != 0) {
        SKIP("data/models/stories260K/tok512.bin not found (make data)");
        return test_summary();
    }
    static const char *const names[] = {"falcon7b_f32", "falcon40b_f32"};
    static const char *const methods[] = {"rtn", "gptq", "spqr"};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 3; j++) test_method(names[i], methods[j], &t);
        test_gptq_identity(names[i]);
    }
    tokenizer_free(&t);
    return test_summary();
}
