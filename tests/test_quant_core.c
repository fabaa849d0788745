/* test_quant_core.c: the building blocks of quant/ against hand-worked values:
 * the min-max grid (SPEC 2: both zero rules, half-to-even, constant guard,
 * sym), the second level of the statistics, the leave-one-out range (SPEC 5),
 * bit packing, bits per parameter (SPEC 6), parameter validation messages and
 * the Hessian accumulator (SPEC 1.3). Whole-layer methods are tested in
 * test_quant_methods.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "half.h"
#include "quant.h"
#include "quant_internal.h"
#include "util.h"

#include "quant_fixtures.h" /* urand (its own seed is set in main) */

/* ---- stderr capture, for the validation messages ------------------------------ */
static char captured[4096];
static int saved_fd = -1;
static FILE *cap_file;
static void capture_begin(void) {
    fflush(stderr);
    cap_file = tmpfile();
    saved_fd = dup(fileno(stderr));
    dup2(fileno(cap_file), fileno(stderr));
}
static const char *capture_end(void) {
    fflush(stderr);
    dup2(saved_fd, fileno(stderr));
    close(saved_fd);
    rewind(cap_file);
    size_t k = fread(captured, 1, sizeof captured - 1, cap_file);
    captured[k] = '\0';
    fclose(cap_file);
    return captured;
}

/* Quantize one row x (n values) with RTN, one group, statistics as p says; return W_deq. */
static int rtn_row(const float *x, int n, const QuantParams *p, QuantLayer *q, float *deq) {
    return quantize_layer_ref("rtn", x, 1, n, NULL, p, q, deq);
}

static void test_grid(void) {
    QuantParams p;
    quant_params_default(&p, "rtn");
    float s, z;

    /* x = {-1, 0, 0.5, 2} at 2 bits, asymmetric, fractional zero:
     * maxq = 3, scale = (2 - (-1)) / 3 = 1, zero = -(-1) / 1 = 1,
     * q = rint(x + 1) = {0, 1, rint(1.5) = 2 (tie -> even), 3},
     * x_hat = 1 * (q - 1) = {-1, 0, 1, 2}. */
    p.wbits = 2;
    QGrid g = qgrid_weights(&p);
    qgrid_fit(&g, -1.0f, 2.0f, &s, &z);
    CHECK(s == 1.0f && z == 1.0f, "scale %g zero %g, expected 1 1", s, z);
    {
        const float x[4] = {-1, 0, 0.5f, 2}, qe[4] = {0, 1, 2, 3}, xe[4] = {-1, 0, 1, 2};
        for (int i = 0; i < 4; i++) {
            float q = qgrid_code(x[i], s, z, g.maxq);
            CHECK(q == qe[i], "code of %g = %g, expected %g", x[i], q, qe[i]);
            CHECK(qgrid_decode(q, s, z) == xe[i], "x_hat of %g", x[i]);
        }
        QuantLayer ql;
        float deq[4];
        CHECK(rtn_row(x, 4, &p, &ql, deq) == 0, "rtn on one row");
        for (int i = 0; i < 4; i++) {
            CHECK(ql.codes[i] == qe[i], "layer code %d = %d, expected %g", i, ql.codes[i], qe[i]);
            CHECK(deq[i] == xe[i], "layer x_hat %d = %g, expected %g", i, deq[i], xe[i]);
        }
        CHECK(ql.stats_dtype == QH_STATS_FP32 && ql.scale_fp[0] == 1.0f && ql.zero_fp[0] == 1.0f, "stored stats");
        quant_layer_free(&ql);
    }

    /* half-to-even ties (rintf, not roundf): scale 1, zero 0, maxq 7:
     * 2.5 -> 2 (roundf: 3), 3.5 -> 4, 0.5 -> 0, 6.5 -> 6 */
    {
        const float x[4] = {2.5f, 3.5f, 0.5f, 6.5f}, qe[4] = {2, 4, 0, 6};
        for (int i = 0; i < 4; i++) CHECK(qgrid_code(x[i], 1.0f, 0.0f, 7.0f) == qe[i], "tie %g", x[i]);
        /* clamping: below 0 and above maxq */
        CHECK(qgrid_code(-3.0f, 1.0f, 0.0f, 7.0f) == 0.0f, "clamp low");
        CHECK(qgrid_code(9.2f, 1.0f, 0.0f, 7.0f) == 7.0f, "clamp high");
    }

    /* constant group {0.3, 0.3, 0.3} at 3 bits: xmin == xmax -> [-1, 1],
     * scale = 2/7, zero = 1/(2/7) = 3.5, q = rint(0.3 * 3.5 + 3.5) = rint(4.55) = 5,
     * x_hat = 2/7 * (5 - 3.5) = 3/7 */
    {
        p.wbits = 3;
        g = qgrid_weights(&p);
        qgrid_fit(&g, 0.3f, 0.3f, &s, &z);
        CHECK_CLOSE(s, 2.0 / 7.0, 1e-6, 0, "constant scale");
        CHECK_CLOSE(z, 3.5, 1e-6, 0, "constant zero");
        const float x[3] = {0.3f, 0.3f, 0.3f};
        QuantLayer ql;
        float deq[3];
        CHECK(rtn_row(x, 3, &p, &ql, deq) == 0, "rtn constant row");
        for (int i = 0; i < 3; i++) {
            CHECK(ql.codes[i] == 5, "constant code %d", ql.codes[i]);
            CHECK(deq[i] == s * (5.0f - z), "constant x_hat %.9g, expected 2/7 (5 - 3.5) in fp32", deq[i]); /* fp32 stats */
        }
        quant_layer_free(&ql);
    }

    /* sym, x = {-1, 0, 0.5, 2} at 2 bits: xmax = max(|-1|, 2) = 2, xmin = -2,
     * scale = 4/3, zero = (3 + 1)/2 = 2, q = rint(0.75 x + 2):
     * -1 -> rint(1.25) = 1, 0 -> 2, 0.5 -> rint(2.375) = 2, 2 -> rint(3.5) = 4 -> 3;
     * x_hat = 4/3 (q - 2) = {-4/3, 0, 0, 4/3} */
    {
        p.wbits = 2;
        p.sym = 1;
        g = qgrid_weights(&p);
        qgrid_fit(&g, -1.0f, 2.0f, &s, &z);
        CHECK_CLOSE(s, 4.0 / 3.0, 1e-7, 0, "sym scale");
        CHECK(z == 2.0f, "sym zero %g", z);
        const float x[4] = {-1, 0, 0.5f, 2}, qe[4] = {1, 2, 2, 3}, xe[4] = {-4.f / 3, 0, 0, 4.f / 3};
        QuantLayer ql;
        float deq[4];
        CHECK(rtn_row(x, 4, &p, &ql, deq) == 0, "rtn sym");
        for (int i = 0; i < 4; i++) {
            CHECK(ql.codes[i] == qe[i], "sym code %d = %d, expected %g", i, ql.codes[i], qe[i]);
            CHECK_CLOSE(deq[i], xe[i], 1e-3, 0, "sym x_hat");
        }
        quant_layer_free(&ql);
        /* constant c = 0.3 stays inside the symmetric range [-0.3, 0.3] */
        qgrid_fit(&g, 0.3f, 0.3f, &s, &z);
        CHECK_CLOSE(s, 0.2, 1e-6, 0, "sym constant scale");
        p.sym = 0;
    }

    /* round_zero, x = {-0.5, 0, 1, 2.5} at 2 bits: scale = 3/3 = 1,
     * zero = rint(0.5) = 0 (tie -> even), q = rint(x) = {-0 -> 0, 0, 1, rint(2.5) = 2},
     * x_hat = {0, 0, 1, 2}. Fractional zero 0.5 instead: q = rint(x + 0.5) =
     * {0, rint(0.5) = 0, rint(1.5) = 2, 3}, x_hat = {-0.5, -0.5, 1.5, 2.5}. */
    {
        const float x[4] = {-0.5f, 0, 1, 2.5f};
        const float qr[4] = {0, 0, 1, 2}, xr[4] = {0, 0, 1, 2}, qf[4] = {0, 0, 2, 3}, xf[4] = {-0.5f, -0.5f, 1.5f, 2.5f};
        QuantLayer ql;
        float deq[4];
        p.round_zero = 1;
        CHECK(rtn_row(x, 4, &p, &ql, deq) == 0, "rtn round_zero");
        for (int i = 0; i < 4; i++) CHECK(ql.codes[i] == qr[i] && deq[i] == xr[i], "round_zero %d: %d %g", i, ql.codes[i], deq[i]);
        CHECK(ql.zero_fp[0] == 0.0f, "round_zero stored zero");
        quant_layer_free(&ql);
        p.round_zero = 0;
        CHECK(rtn_row(x, 4, &p, &ql, deq) == 0, "rtn fractional zero");
        for (int i = 0; i < 4; i++) CHECK(ql.codes[i] == qf[i] && deq[i] == xf[i], "fractional %d: %d %g", i, ql.codes[i], deq[i]);
        CHECK(ql.zero_fp[0] == 0.5f, "fractional stored zero");
        quant_layer_free(&ql);
    }

    /* gptq_zero_rule, x = {0.5, 1.2, 3} at 2 bits: the range is widened to
     * [0, 3]: scale 1, zero rint(0) = 0, q = {rint(0.5) = 0, 1, 3}, x_hat = {0, 1, 3};
     * the zero is stored as a 2-bit integer code. SpQR's rule instead: [0.5, 3],
     * scale 2.5/3, zero -0.6 (fractional), x = 0.5 and 3 exact.
     * x = {-3, -1}: widened to [-3, 0], scale 1, zero 3, q = {0, 2}. */
    {
        const float x[3] = {0.5f, 1.2f, 3};
        QuantLayer ql;
        float deq[3];
        p.gptq_zero_rule = 1;
        CHECK(rtn_row(x, 3, &p, &ql, deq) == 0, "rtn gptq rule");
        CHECK(ql.codes[0] == 0 && ql.codes[1] == 1 && ql.codes[2] == 3, "gptq rule codes");
        CHECK(deq[0] == 0 && deq[1] == 1 && deq[2] == 3, "gptq rule x_hat %g %g %g", deq[0], deq[1], deq[2]);
        CHECK(ql.zero_codes && !ql.zero_fp && ql.zero_codes[0] == 0 && ql.zero_code_bits == 2, "integer zero code");
        quant_layer_free(&ql);
        const float y[2] = {-3, -1};
        CHECK(rtn_row(y, 2, &p, &ql, deq) == 0, "rtn gptq rule negative");
        CHECK(ql.zero_codes[0] == 3 && ql.codes[0] == 0 && ql.codes[1] == 2, "negative: zero %d", ql.zero_codes[0]);
        CHECK(deq[0] == -3 && deq[1] == -1, "negative x_hat");
        quant_layer_free(&ql);
        p.gptq_zero_rule = 0;
        CHECK(rtn_row(x, 3, &p, &ql, deq) == 0, "rtn spqr rule");
        CHECK_CLOSE(ql.zero_fp[0], -0.6, 1e-6, 0, "fractional zero -0.6");
        CHECK_CLOSE(deq[0], 0.5, 1e-6, 0, "min exact (fp32 statistics)");
        CHECK_CLOSE(deq[2], 3.0, 1e-6, 0, "max exact (fp32 statistics)");
        quant_layer_free(&ql);
        /* the deployment mode: the zero rounded to fp16 (-0.6 -> -0.60009765625), x_hat decoded from it */
        p.stats_dtype = QH_STATS_FP16;
        CHECK(rtn_row(x, 3, &p, &ql, deq) == 0, "rtn spqr rule, fp16 statistics");
        CHECK(ql.stats_dtype == QH_STATS_FP16 && ql.zero_fp[0] == qh_f16_to_f32(qh_f32_to_f16(-0.6f)) &&
                  ql.zero_fp[0] != -0.6f,
              "fp16 zero %.9g", ql.zero_fp[0]);
        CHECK(deq[0] == ql.scale_fp[0] * ((float)ql.codes[0] - ql.zero_fp[0]) && deq[0] != 0.5f,
              "x_hat decoded from the fp16 statistics: %.9g", deq[0]);
        quant_layer_free(&ql);
        p.stats_dtype = QH_STATS_FP32;
    }
}

/* Second level (SPEC 2): rows with ranges [0, 1], [0, 2], [0, 4], [0, 8] give first-level scales
 * {1/3, 2/3, 4/3, 8/3} at wbits 2. Coded at 2 bits in one group of 4 rows:
 * lo = 1/3, hi = 8/3, s2 = (7/3)/3 = 7/9, z2 = -(1/3)/(7/9) = -3/7,
 * codes = rint(s / s2 + z2) = {rint(0) = 0, rint(3/7) = 0, rint(9/7) = 1, rint(3) = 3},
 * decoded scales s2 (code - z2) = {1/3, 1/3, 10/9, 8/3}. */
static void test_second_level(void) {
    QuantParams p;
    quant_params_default(&p, "rtn");
    p.wbits = 2;
    p.groupsize = 4;
    p.qq_scale_bits = 2;
    p.qq_groupsize = 4;
    const float W[16] = {0, 0.2f, 0.4f, 1,     /* range 1 -> scale 1/3 */
                         0, 0.6f, 1.3f, 2,     /* range 2 -> 2/3 */
                         0, 1, 3, 4,           /* 4/3 */
                         0, 8, 2, 5};          /* 8/3 */
    /* the sweep's fp32 arithmetic: first-level scales (xmax - xmin) / 3, second level from their range */
    const float sc[4] = {1.0f / 3, 2.0f / 3, 4.0f / 3, 8.0f / 3};
    const float s2 = (sc[3] - sc[0]) / 3.0f, z2 = -sc[0] / s2;
    for (int mode = 0; mode < 2; mode++) { /* reference (fp32), then deployment (fp16) */
        p.stats_dtype = mode ? QH_STATS_FP16 : QH_STATS_FP32;
        const char *mn = quant_stats_dtype_name(p.stats_dtype);
        QuantLayer q;
        float deq[16];
        CHECK(quantize_layer_ref("rtn", W, 4, 4, NULL, &p, &q, deq) == 0, "rtn with coded scales (%s)", mn);
        const int ce[4] = {0, 0, 1, 3};
        for (int r = 0; r < 4; r++)
            CHECK(q.scale_codes[r] == ce[r], "scale code %d = %d, expected %d", r, q.scale_codes[r], ce[r]);
        CHECK(q.qq_groups == 1 && q.scale_code_bits == 2 && !q.scale_fp && q.zero_fp, "layout");
        CHECK_CLOSE(s2, 7.0 / 9.0, 1e-6, 0, "s2 = 7/9");
        CHECK_CLOSE(z2, -3.0 / 7.0, 1e-6, 0, "z2 = -3/7");
        /* kept as the sweep used them (fp32), or rounded to fp16 */
        float ks2 = mode ? qh_f16_to_f32(qh_f32_to_f16(s2)) : s2, kz2 = mode ? qh_f16_to_f32(qh_f32_to_f16(z2)) : z2;
        CHECK(q.qq_scale_scale[0] == ks2 && q.qq_scale_zero[0] == kz2, "%s second level kept: %.9g %.9g, expected %.9g %.9g",
              mn, q.qq_scale_scale[0], q.qq_scale_zero[0], ks2, kz2);
        if (mode) CHECK(ks2 != s2 && kz2 != z2, "7/9 and -3/7 are not fp16 numbers (else this cannot tell the modes apart)");
        /* row 1 (values {0, 0.6, 1.3, 2}) is quantized with the decoded scale 1/3 and
         * zero 0: q = rint(3 x) clamped = {0, rint(1.8) = 2, rint(3.9) = 4 -> 3, 6 -> 3},
         * x_hat = {0, 2/3, 1, 1}; decoded with the kept second level */
        const int q1[4] = {0, 2, 3, 3};
        const double x1[4] = {0, 2.0 / 3, 1, 1};
        float s_dec = ks2 * (0.0f - kz2);
        for (int c = 0; c < 4; c++) {
            CHECK(q.codes[4 + c] == q1[c], "row 1 code %d = %d", c, q.codes[4 + c]);
            CHECK_CLOSE(deq[4 + c], x1[c], mode ? 2e-3 : 1e-6, 1e-6, mode ? "row 1 x_hat (fp16)" : "row 1 x_hat (fp32)");
            float z = q.zero_fp[1];
            CHECK(deq[4 + c] == s_dec * ((float)q1[c] - z), "row 1 decoded from the %s second level", mn);
        }
        /* row 2 decoded scale 10/9: x_hat = 10/9 (q - zero), zero = 0 */
        CHECK_CLOSE(deq[8 + 3], 10.0 / 9.0 * q.codes[8 + 3], mode ? 2e-3 : 1e-6, 0, "row 2 decoded scale 10/9");
        quant_layer_free(&q);
    }
}

/* SPEC 5 leave-one-out on one row {0, 0.1, 0.2, 5} at 2 bits, d = 1:
 * base: grid [0, 5], scale 5/3: errors 0, 0.1, 0.2, 0 -> base = 0.05.
 * j = 3 out: grid [0, 0.2], scale 0.2/3: 0.1 -> 2/3 * 0.2 = 0.1333, loo = 0.0011, reduction 0.0489.
 * j = 0 out: grid [0.1, 5]: 0.2 -> 0.1 (error 0.1), loo = 0.01, reduction 0.04.
 * j = 1 out: grid [0, 5]: 0.2 -> 0, loo = 0.04, reduction 0.01.
 * j = 2 out: grid [0, 5]: 0.1 -> 0, loo = 0.01, reduction 0.04.
 * tau_abs 0.045: only 5 is flagged -> replaced by mean(0, 0.1, 0.2) = 0.1 -> range [0, 0.2].
 * tau_abs 0.035: 0, 0.2 and 5 flagged -> mean of the rest = 0.1 -> range [0.1, 0.1]. */
static void test_leave_one_out(void) {
    QuantParams p;
    quant_params_default(&p, "spqr");
    p.wbits = 2;
    QGrid g = qgrid_weights(&p);
    const float Wt[4] = {0, 0.1f, 0.2f, 5}; /* (n = 4, m = 1) */
    const float d[4] = {1, 1, 1, 1};
    float xmin, xmax;
    LooScratch s;
    loo_scratch_init(&s, 1, 4);
    group_range(Wt, 1, 0, 4, 0, 1, &g, d, 0.045, &s, &xmin, &xmax);
    CHECK(xmin == 0.0f && fabsf(xmax - 0.2f) < 1e-7f, "tau 0.045: range [%g, %g], expected [0, 0.2]", xmin, xmax);
    CHECK_CLOSE(s.base[0], 0.05, 1e-5, 0, "base error");
    group_range(Wt, 1, 0, 4, 0, 1, &g, d, 0.035, &s, &xmin, &xmax);
    CHECK(fabsf(xmin - 0.1f) < 1e-7f && xmin == xmax, "tau 0.035: range [%g, %g], expected [0.1, 0.1]", xmin, xmax);
    group_range(Wt, 1, 0, 4, 0, 1, &g, d, INFINITY, &s, &xmin, &xmax);
    CHECK(xmin == 0.0f && xmax == 5.0f, "tau inf: plain range");
    group_range(Wt, 1, 0, 4, 0, 1, &g, NULL, 0.0, &s, &xmin, &xmax);
    CHECK(xmin == 0.0f && xmax == 5.0f, "no criterion: plain range");
    /* d scales the errors: d = 10 divides every squared error by 100 -> nothing passes 0.035 */
    const float d10[4] = {10, 10, 10, 10};
    group_range(Wt, 1, 0, 4, 0, 1, &g, d10, 0.035, &s, &xmin, &xmax);
    CHECK(xmin == 0.0f && xmax == 5.0f, "weighted by 1/d^2");
    /* a group one column wide: no criterion possible, the value itself */
    group_range(Wt + 3, 1, 0, 1, 0, 1, &g, d, 0.0, &s, &xmin, &xmax);
    CHECK(isfinite(xmin) && isfinite(xmax), "width-1 group finite");
    loo_scratch_free(&s);
}

static void test_pack(void) {
    /* codes {1, 2, 3} at 2 bits, LSB first: 01 | 10 << 2 | 11 << 4 = 0b111001 = 0x39 */
    const uint8_t c2[3] = {1, 2, 3};
    uint8_t b[8] = {0};
    quant_pack_codes(c2, 3, 2, b);
    CHECK(b[0] == 0x39, "2-bit pack: 0x%02x", b[0]);
    /* {5, 3, 7} at 3 bits: 101 | 011 << 3 | 111 << 6 = 0b1 1101 1101 -> bytes 0xdd, 0x01 */
    const uint8_t c3[3] = {5, 3, 7};
    quant_pack_codes(c3, 3, 3, b);
    CHECK(b[0] == 0xdd && b[1] == 0x01, "3-bit pack: 0x%02x 0x%02x", b[0], b[1]);
    CHECK(quant_packed_bytes(10, 3) == 4 && quant_packed_bytes(8, 1) == 1 && quant_packed_bytes(9, 1) == 2 &&
              quant_packed_bytes(3, 16) == 6,
          "packed sizes");
    int bad = 0;
    for (int k = 1; k <= 8; k++)
        for (int count = 1; count <= 37; count += 3) {
            uint8_t codes[37], back[37], buf[64];
            for (int i = 0; i < count; i++) codes[i] = (uint8_t)(urand() * (1 << k));
            memset(buf, 0xaa, sizeof buf);
            quant_pack_codes(codes, count, k, buf);
            quant_unpack_codes(buf, count, k, back);
            bad += memcmp(codes, back, count) != 0;
            size_t nb = quant_packed_bytes(count, k);
            int used = (count * k) % 8;
            if (used) bad += (buf[nb - 1] >> used) != 0; /* unused high bits are 0 */
            bad += buf[nb] != 0xaa;                       /* nothing written past the end */
        }
    CHECK(bad == 0, "pack/unpack round trips, %d bad", bad);
}

static void test_bits(void) {
    QuantParams p;
    quant_params_default(&p, "spqr"); /* wbits 4, 16 x 16, 3-bit stats */
    CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4.625, 0, 1e-12, "SPEC 6 worked example");
    CHECK_CLOSE(quant_bits_formula(&p, 0.01), 4.625 + 0.32, 0, 1e-12, "with 1% outliers");
    CHECK_CLOSE(quant_bits_formula(&p, 0.0037), 4.625 + 32 * 0.0037, 0, 1e-12, "with r = 0.0037");
    /* 3-bit weights, groups of 8, 3-bit stats, beta2 16: 3 + 6/8 + 64/128 = 4.25 */
    p.wbits = 3;
    p.groupsize = 8;
    CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4.25, 0, 1e-12, "wbits 3, beta1 8");
    quant_params_default(&p, "gptq");
    int gs[3] = {16, 64, 128};
    for (int i = 0; i < 3; i++) {
        p.groupsize = gs[i];
        CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4 + 32.0 / gs[i], 0, 1e-12, "fp16 row stats: wbits + 32/g");
    }
    p.groupsize = 0;
    CHECK_CLOSE(quant_bits_formula_n(&p, 4096, 0.0), 4 + 32.0 / 4096, 0, 1e-12, "per row: 32/n");
    CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4.0, 0, 1e-12, "per row, n unknown");
    /* GPTQ rule: integer zero at wbits: 4 + (16 + 4)/128 */
    p.groupsize = 128;
    p.gptq_zero_rule = 1;
    CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4 + 20.0 / 128, 0, 1e-12, "gptq rule");
    /* round_zero with coded scales: 4 + (3 + 4)/16 + 32/256 (SPEC 6: "the 64 becomes 32") */
    quant_params_default(&p, "spqr");
    p.round_zero = 1;
    p.qq_zero_bits = 0;
    CHECK_CLOSE(quant_bits_formula(&p, 0.0), 4 + 7.0 / 16 + 32.0 / 256, 0, 1e-12, "round_zero");
}

/* The stored format of a spqr layer m = 32, n = 48 (16 x 16 groups, 3-bit stats):
 * codes 32*48*4 bits = 768 bytes; scale codes 32*3 x 3 bits = 36 bytes; its
 * second level 2 qq groups x 3 groups x 2 values of vb bytes = 12 vb; zeros
 * alike 36 + 12 vb; row pointers 33 x 4 = 132 bytes; 2 + vb bytes per outlier
 * (column, value); identity order stores no permutation. vb = 4 in the
 * reference mode (fp32 values), 2 in the deployment mode (fp16). */
static void test_stored_bits(void) {
    const int m = 32, n = 48;
    float *W = qh_malloc(sizeof(float) * m * n), *deq = qh_malloc(sizeof(float) * m * n);
    double *H = qh_calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < m * n; i++) W[i] = (float)(urand() - 0.5);
    W[5] = 30; /* an outlier */
    for (int i = 0; i < n; i++) H[i * n + i] = 1 + urand();
    QuantParams p;
    QuantLayer q;
    for (int mode = 0; mode < 2; mode++) { /* reference: 4-byte values; deployment: 2-byte */
        const int vb = mode ? 2 : 4;
        quant_params_default(&p, "spqr");
        p.stats_dtype = mode ? QH_STATS_FP16 : QH_STATS_FP32;
        CHECK(quantize_layer_ref("spqr", W, m, n, H, &p, &q, deq) == 0, "spqr 32 x 48");
        CHECK(q.n_outliers >= 1, "planted outlier found (%lld)", (long long)q.n_outliers);
        int64_t expect = 8 * (768 + 36 + 12 * vb + 36 + 12 * vb + 132 + (2 + vb) * q.n_outliers);
        CHECK(quant_layer_stored_bits(&q) == expect, "%s stored bits %lld, expected %lld",
              quant_stats_dtype_name(p.stats_dtype), (long long)quant_layer_stored_bits(&q), (long long)expect);
        quant_layer_free(&q);
        /* gptq, groups of 16, act_order: codes 768 + scale/zero 2 x 32*3*vb + perm 48*2 */
        quant_params_default(&p, "gptq");
        p.groupsize = 16;
        p.perm = QH_PERM_ACT_ORDER;
        p.stats_dtype = mode ? QH_STATS_FP16 : QH_STATS_FP32;
        CHECK(quantize_layer_ref("gptq", W, m, n, H, &p, &q, deq) == 0, "gptq 32 x 48");
        CHECK(quant_layer_stored_bits(&q) == 8 * (768 + 2 * 96 * vb + 96), "gptq %s stored bits %lld",
              quant_stats_dtype_name(p.stats_dtype), (long long)quant_layer_stored_bits(&q));
        quant_layer_free(&q);
    }
    free(W), free(deq), free(H);
}

static int validate_msg(const QuantParams *p, const char *method, int m, int n, const char *want) {
    capture_begin();
    int rc = quant_params_validate(p, method, m, n);
    const char *msg = capture_end();
    int ok = rc == -1 && strstr(msg, want) != NULL;
    if (!ok) fprintf(stderr, "  (rc %d, message: %s)\n", rc, msg);
    return ok;
}

static void test_validation(void) {
    QuantParams p;
    quant_params_default(&p, "spqr");
    CHECK(quant_params_validate(&p, "spqr", 64, 64) == 0, "spqr defaults valid");
    quant_params_default(&p, "gptq");
    CHECK(quant_params_validate(&p, "gptq", 64, 64) == 0, "gptq defaults valid");
    quant_params_default(&p, "rtn");
    CHECK(quant_params_validate(&p, "rtn", 64, 64) == 0, "rtn defaults valid");

    quant_params_default(&p, "spqr");
    p.wbits = 0;
    CHECK(validate_msg(&p, "spqr", 64, 64, "wbits = 0; expected 1..8"), "wbits 0");
    p.wbits = 9;
    CHECK(validate_msg(&p, "spqr", 64, 64, "wbits = 9; expected 1..8"), "wbits 9");
    p.wbits = 4;
    p.groupsize = 65;
    CHECK(validate_msg(&p, "spqr", 64, 64, "groupsize = 65; expected 0 (one group per row) or 1..64"), "groupsize > n");
    p.groupsize = -1;
    CHECK(validate_msg(&p, "spqr", 64, 64, "groupsize = -1"), "groupsize < 0");
    p.groupsize = 0;
    CHECK(quant_params_validate(&p, "spqr", 64, 64) == 0, "groupsize 0 = per row allowed");
    p.groupsize = 16;
    p.outlier_threshold = -1;
    CHECK(validate_msg(&p, "spqr", 64, 64, "outlier_threshold = -1; expected >= 0"), "negative threshold");
    p.outlier_threshold = NAN;
    CHECK(validate_msg(&p, "spqr", 64, 64, "outlier_threshold = nan"), "NaN threshold");
    p.outlier_threshold = 0.2;
    p.qq_groupsize = 0;
    CHECK(validate_msg(&p, "spqr", 64, 64, "qq_groupsize = 0 with qq_scale_bits 3"), "qq bits without group size");
    p.qq_groupsize = 65;
    CHECK(validate_msg(&p, "spqr", 64, 64, "expected 1..64 (m rows)"), "qq_groupsize > m");
    p.qq_groupsize = 16;
    p.qq_scale_bits = 9;
    CHECK(validate_msg(&p, "spqr", 64, 64, "qq_scale_bits = 9"), "qq bits 9");
    p.qq_scale_bits = 3;
    CHECK(validate_msg(&p, "fancy", 64, 64, "method 'fancy' unknown; expected one of rtn, gptq, spqr, awq"), "unknown method");
    CHECK(validate_msg(&p, NULL, 64, 64, "method '(null)' unknown"), "no method");
    p.blocksize = 0;
    CHECK(validate_msg(&p, "spqr", 64, 64, "blocksize = 0"), "blocksize 0");
    p.blocksize = 128;
    p.percdamp = -0.1;
    CHECK(validate_msg(&p, "spqr", 64, 64, "percdamp = -0.1"), "negative percdamp");
    p.percdamp = 1;
    p.sym = 1;
    CHECK(validate_msg(&p, "spqr", 64, 64, "with sym"), "sym with coded zeros");
    p.sym = 0;
    p.round_zero = 1;
    CHECK(validate_msg(&p, "spqr", 64, 64, "with round_zero"), "round_zero with coded zeros");
    CHECK(validate_msg(&p, "spqr", 64, 70000, "n = 70000"), "n too large for 16-bit columns");
    quant_params_default(&p, "gptq");
    p.outlier_threshold = 0.2;
    CHECK(validate_msg(&p, "gptq", 64, 64, "gptq has no outliers"), "gptq with outliers");
    p.outlier_threshold = INFINITY;
    p.qq_scale_bits = 3;
    p.qq_groupsize = 16;
    CHECK(validate_msg(&p, "gptq", 64, 64, "gptq keeps unquantized statistics"), "gptq with coded stats");
    quant_params_default(&p, "gptq");
    CHECK(p.stats_dtype == QH_STATS_FP32, "the default is the reference mode (fp32 values)");
    p.stats_dtype = (QuantStatsDtype)2;
    CHECK(validate_msg(&p, "gptq", 64, 64, "stats_dtype = 2; expected 0 (fp32, reference) or 1 (fp16, deployment)"),
          "stats_dtype out of range");
    QuantStatsDtype d = QH_STATS_FP32;
    CHECK(quant_stats_dtype_parse("fp16", &d) == 0 && d == QH_STATS_FP16 && quant_stats_dtype_parse("fp32", &d) == 0 &&
              d == QH_STATS_FP32 && quant_stats_dtype_parse("bf16", &d) == -1 && quant_stats_dtype_parse(NULL, &d) == -1,
          "stats_dtype names parse");
    CHECK(!strcmp(quant_stats_dtype_name(QH_STATS_FP16), "fp16") && !strcmp(quant_stats_dtype_name(QH_STATS_FP32), "fp32") &&
              quant_stats_dtype_name((QuantStatsDtype)7) == NULL && quant_stats_dtype_bits(QH_STATS_FP16) == 16 &&
              quant_stats_dtype_bits(QH_STATS_FP32) == 32,
          "stats_dtype names and bits");

    /* quantize_layer_ref: missing H, act_order without H, non-finite input */
    quant_params_default(&p, "gptq");
    float W[4] = {1, 2, 3, NAN};
    double H[4] = {1, 0, 0, 1};
    QuantLayer q;
    capture_begin();
    int rc = quantize_layer_ref("gptq", W, 2, 2, NULL, &p, &q, NULL);
    const char *msg = capture_end();
    CHECK(rc == -1 && strstr(msg, "Hessian H missing"), "gptq without H: %s", msg);
    capture_begin();
    rc = quantize_layer_ref("gptq", W, 2, 2, H, &p, &q, NULL);
    msg = capture_end();
    CHECK(rc == -1 && strstr(msg, "W[3] = nan"), "NaN weight: %s", msg);
    W[3] = 4;
    quant_params_default(&p, "rtn");
    p.perm = QH_PERM_ACT_ORDER;
    capture_begin();
    rc = quantize_layer_ref("rtn", W, 2, 2, NULL, &p, &q, NULL);
    msg = capture_end();
    CHECK(rc == -1 && strstr(msg, "act_order needs the Hessian"), "rtn act_order without H: %s", msg);
    H[1] = INFINITY;
    quant_params_default(&p, "gptq");
    capture_begin();
    rc = quantize_layer_ref("gptq", W, 2, 2, H, &p, &q, NULL);
    msg = capture_end();
    CHECK(rc == -1 && strstr(msg, "H[1] = inf"), "infinite H: %s", msg);
}

/* SPEC 1.3: after N windows, H = (2/N) sum over all tokens of x x^T. */
static void test_hessian(void) {
    const int n = 7, nw = 4;
    const int ntok[4] = {5, 300, 0, 17}; /* 300 > the 256-token tile; an empty window counts */
    HessianAcc h;
    hessian_init(&h, n);
    double naive[49] = {0};
    for (int w = 0; w < nw; w++) {
        float *X = qh_malloc(sizeof(float) * (ntok[w] ? ntok[w] : 1) * n);
        for (int t = 0; t < ntok[w] * n; t++) X[t] = (float)(urand() * 2 - 1 + (t % n == 2 ? 3 : 0));
        for (int t = 0; t < ntok[w]; t++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) naive[i * n + j] += (double)X[t * n + i] * X[t * n + j];
        hessian_add_window(&h, X, ntok[w]);
        free(X);
    }
    CHECK(h.nwindows == nw, "windows counted: %ld", h.nwindows);
    double maxerr = 0;
    int sym = 1;
    for (int i = 0; i < n * n; i++) {
        double e = fabs(h.H[i] - 2.0 / nw * naive[i]) / (fabs(2.0 / nw * naive[i]) + 1e-300);
        maxerr = e > maxerr ? e : maxerr;
        sym &= h.H[i] == h.H[(i % n) * n + i / n];
    }
    /* each window is summed in fp32 (300 terms: a few ulp of float), the mean in double */
    CHECK(maxerr < 2e-6, "H = 2/N sum x x^T: max relative error %g", maxerr);
    CHECK(sym, "H symmetric bit for bit");
    hessian_free(&h);
    CHECK(h.H == NULL, "freed");
}

int main(void) {
    rng_state = 0x9e3779b97f4a7c15ull;
    test_grid();
    test_second_level();
    test_leave_one_out();
    test_pack();
    test_bits();
    test_stored_bits();
    test_validation();
    test_hessian();
    return test_summary();
}
