/* test_settings.c: the tables of quant/settings.h against independent
 * expectations: every row of quant_settings[] reads and writes its own
 * QuantParams field and nothing else, parses and prints its values both ways,
 * and the methods that use it are the ones SPEC 2-5 say; quant_methods[]
 * gives the defaults SPEC 5 and the paper state; the experiment keys,
 * quantize's options and the settings JSON are made from the same rows; a
 * quantized-model file's /settings attributes are read back exactly and a
 * value outside its row's range is refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "experiment.h"
#include "h5io.h"
#include "quant_io.h"
#include "settings.h"
#include "tokenizer.h"
#include "util.h"

/* bit i of the mask for quant_methods[i] named in a space-separated list */
static unsigned mask_of(const char *names) {
    unsigned m = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        int i = quant_method_index(t);
        if (i < 0) return ~0u;
        m |= 1u << i;
    }
    return m;
}

static void test_rows(void) {
    CHECK(quant_nsettings() <= QUANT_MAX_SETTINGS, "%d settings, capacity %d", quant_nsettings(), QUANT_MAX_SETTINGS);
    CHECK(quant_nmethods() <= QUANT_MAX_METHODS, "%d methods, capacity %d", quant_nmethods(), QUANT_MAX_METHODS);
    /* each row writes its field only: set a distinct value through the row, compare the raw bytes */
    for (const QuantSetting *s = quant_settings; s->name; s++) {
        QuantParams a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        double v = s->type == QS_DOUBLE ? 0.375 : 1;
        quant_setting_set(&b, s, v);
        size_t width = s->type == QS_DOUBLE ? sizeof(double) : sizeof(int);
        CHECK(s->offset + width <= sizeof(QuantParams), "%s: field inside QuantParams", s->name);
        int other = 0;
        for (size_t i = 0; i < sizeof a; i++)
            if (((unsigned char *)&a)[i] != ((unsigned char *)&b)[i] && (i < s->offset || i >= s->offset + width))
                other = 1;
        CHECK(!other, "%s: setting it changes no other field", s->name);
        CHECK(quant_setting_get(&b, s) == v, "%s: get returns what set stored", s->name);
        for (const QuantSetting *t = s + 1; t->name; t++)
            CHECK(t->offset != s->offset, "%s and %s: distinct fields", s->name, t->name);
        CHECK(quant_setting_find(s->name) == s, "%s: found by name", s->name);
        /* the common default prints and parses back to itself */
        char text[64], why[256];
        double back = NAN;
        quant_setting_format(s, s->def, text, sizeof text);
        CHECK(quant_setting_parse(s, text, &back, why, sizeof why) == 0 && (back == s->def), "%s: default '%s' round trip (%s)",
              s->name, text, why);
        CHECK(s->help && *s->help, "%s: has help", s->name);
    }
    /* fields that SPEC names, by hand: the table must reach each of them */
    QuantParams p;
    memset(&p, 0, sizeof p);
    quant_setting_set(&p, quant_setting_find("wbits"), 3);
    quant_setting_set(&p, quant_setting_find("outlier_threshold"), 0.1);
    quant_setting_set(&p, quant_setting_find("perm"), 1);
    quant_setting_set(&p, quant_setting_find("true_sequential"), 1);
    CHECK(p.wbits == 3 && p.outlier_threshold == 0.1 && p.perm == QH_PERM_ACT_ORDER && p.true_sequential == 1,
          "rows reach wbits, outlier_threshold, perm, true_sequential");
}

static void test_parse(void) {
    const QuantSetting *g = quant_setting_find("groupsize"), *t = quant_setting_find("outlier_threshold"),
                       *w = quant_setting_find("wbits"), *perm = quant_setting_find("perm");
    double v;
    char why[256], text[64];
    CHECK(quant_setting_parse(g, "row", &v, why, sizeof why) == 0 && v == 0, "groupsize row = 0");
    CHECK(quant_setting_parse(t, "inf", &v, why, sizeof why) == 0 && isinf(v), "tau inf");
    quant_setting_format(t, INFINITY, text, sizeof text);
    CHECK(!strcmp(text, "inf"), "tau prints inf");
    CHECK(quant_setting_valid(w, 3) && !quant_setting_valid(w, 3.5) && !quant_setting_valid(w, 9) &&
              !quant_setting_valid(w, NAN) && !quant_setting_valid(w, INFINITY),
          "wbits: 3 valid; 3.5, 9, nan, inf not");
    CHECK(quant_setting_valid(t, INFINITY) && quant_setting_valid(t, 0.2) && !quant_setting_valid(t, -0.1) &&
              !quant_setting_valid(t, NAN) && !quant_setting_valid(t, -INFINITY),
          "tau: inf and 0.2 valid; -0.1, nan, -inf not");
    CHECK(!quant_setting_valid(perm, 2) && quant_setting_valid(perm, 1), "perm: 1 valid, 2 not");
    CHECK(quant_setting_parse(w, "9", &v, why, sizeof why) != 0 && strstr(why, "1..8"), "wbits 9 refused: %s", why);
    CHECK(quant_setting_parse(w, "3x", &v, why, sizeof why) != 0, "wbits 3x refused");
    CHECK(quant_setting_parse(w, "row", &v, why, sizeof why) != 0, "wbits does not take row");
    CHECK(quant_setting_parse(perm, "act_order", &v, why, sizeof why) == 0 && v == 1, "perm act_order = 1");
    CHECK(quant_setting_parse(perm, "random", &v, why, sizeof why) != 0 && strstr(why, "identity | act_order"),
          "perm random refused: %s", why);
    quant_setting_format(perm, 1, text, sizeof text);
    CHECK(!strcmp(text, "act_order"), "perm 1 prints act_order");
}

/* Who uses what: SPEC 2-5 (the grid for all; second-level statistics for
 * rtn and spqr; outliers for spqr; the Hessian's settings for gptq and spqr;
 * the scale search's for awq). */
static void test_methods(void) {
    static const struct {
        const char *setting, *methods;
    } uses[] = {
        {"wbits", "rtn gptq spqr awq"},          {"groupsize", "rtn gptq spqr awq"}, {"qq_scale_bits", "rtn spqr"},
        {"qq_zero_bits", "rtn spqr"},            {"qq_groupsize", "rtn spqr"},       {"outlier_threshold", "spqr"},
        {"simplified_outliers", "spqr"},         {"percdamp", "gptq spqr"},          {"perm", "gptq spqr"},
        {"true_sequential", "gptq spqr"},        {"sym", "rtn gptq spqr awq"},       {"round_zero", "rtn gptq spqr awq"},
        {"gptq_zero_rule", "rtn gptq spqr awq"}, {"blocksize", "gptq spqr"},     {"stats_dtype", "rtn gptq spqr awq"},
        {"awq_grid", "awq"},                     {"awq_clip", "awq"},                {"awq_windows", "awq"},
    };
    int n = (int)(sizeof uses / sizeof uses[0]);
    CHECK(quant_nsettings() == n, "%d settings, %d expected here (a new row needs its line in this test)",
          quant_nsettings(), n);
    for (int i = 0; i < n; i++) {
        const QuantSetting *s = quant_setting_find(uses[i].setting);
        CHECK(s != NULL, "%s is a setting", uses[i].setting);
        if (s) CHECK(quant_setting_methods(s) == mask_of(uses[i].methods), "%s used by %s", uses[i].setting, uses[i].methods);
        char applies[64];
        CHECK(exp_method_uses("gptq", uses[i].setting, applies, sizeof applies) == (strstr(uses[i].methods, "gptq") != NULL),
              "experiment keys agree: gptq and %s", uses[i].setting);
    }
    /* QS_NEW rows say how results made before them were computed: a valid value of the row; stats_dtype's
     * is fp16 (the weights were decoded from fp16 values), its default fp32 (the reference's weights) */
    for (const QuantSetting *s = quant_settings; s->name; s++) {
        double b = quant_setting_before(s), back;
        char text[64], why[128];
        quant_setting_format(s, b, text, sizeof text);
        CHECK(quant_setting_parse(s, text, &back, why, sizeof why) == 0 && (back == b || isinf(b)),
              "%s: before = %s is a value of the row", s->name, text);
        if (!(s->flags & QS_NEW)) CHECK(b == s->def, "%s (not new): before = its default", s->name);
    }
    const QuantSetting *sd = quant_setting_find("stats_dtype");
    CHECK(sd && (sd->flags & QS_NEW) && sd->def == QH_STATS_FP32 && quant_setting_before(sd) == QH_STATS_FP16,
          "stats_dtype: new, default fp32, before fp16");
    for (int i = 0; quant_methods[i].name; i++) {
        const QuantMethod *m = &quant_methods[i];
        CHECK(m->quantize_ref != NULL && m->title && (m->caps & QUANT_CAP_GRID), "%s: quantizer, title, grid", m->name);
        CHECK(quant_method_find(m->name) == m && quant_method_index(m->name) == i, "%s: found by name", m->name);
    }
    CHECK(quant_method_find("fancy") == NULL && quant_method_index("fancy") == -1, "unknown method");
    char names[64];
    quant_method_names(~0u, ", ", names, sizeof names);
    CHECK(!strcmp(names, "rtn, gptq, spqr, awq"), "method order rtn, gptq, spqr, awq: %s", names);
    /* defaults: SPEC 4.2 (percdamp 0.01), 4.5 (blocksize 128); SPEC 5 / the paper's near-lossless SpQR */
    QuantParams g, s;
    quant_params_default(&g, "gptq");
    quant_params_default(&s, "spqr");
    CHECK(g.wbits == 4 && g.groupsize == 0 && g.qq_scale_bits == 0 && isinf(g.outlier_threshold) && g.percdamp == 0.01 &&
              g.perm == QH_PERM_IDENTITY && g.blocksize == 128 && !g.true_sequential && !g.sym,
          "gptq defaults");
    CHECK(s.wbits == 4 && s.groupsize == 16 && s.qq_scale_bits == 3 && s.qq_zero_bits == 3 && s.qq_groupsize == 16 &&
              s.outlier_threshold == 0.2 && s.percdamp == 1.0 && s.blocksize == 128,
          "spqr defaults");
    char def[128];
    quant_setting_default_text(quant_setting_find("percdamp"), def, sizeof def);
    CHECK(!strcmp(def, "default gptq 0.01, spqr 1"), "percdamp default text: %s", def);
    quant_setting_default_text(quant_setting_find("wbits"), def, sizeof def);
    CHECK(!strcmp(def, "default 4"), "wbits default text: %s", def);
}

/* The settings JSON (and so the point ids): one key per setting, plus the method and calibration. */
static void test_json(void) {
    QuantRunSpec sp;
    memset(&sp, 0, sizeof sp);
    sp.method = "spqr";
    quant_params_default(&sp.params, "spqr");
    sp.params.perm = QH_PERM_ACT_ORDER;
    json_t *o = quant_spec_json(&sp);
    int shown = 0; /* a QS_NEW row at its default is left out (older ids kept) */
    for (const QuantSetting *s = quant_settings; s->name; s++) {
        int omit = (s->flags & QS_NEW) && quant_setting_get(&sp.params, s) == s->def;
        shown += !omit;
        CHECK((json_object_get(o, s->name) != NULL) == !omit, "JSON has %s unless new and at its default", s->name);
    }
    CHECK((int)json_object_size(o) == shown + 5, "JSON keys: %zu", json_object_size(o));
    CHECK(!strcmp(json_string_value(json_object_get(o, "perm")), "act_order"), "perm as text");
    CHECK(json_integer_value(json_object_get(o, "wbits")) == 4, "wbits as integer");
    CHECK(json_real_value(json_object_get(o, "outlier_threshold")) == 0.2, "tau as number");
    CHECK(json_is_false(json_object_get(o, "sym")), "sym as boolean");
    json_decref(o);
    sp.params.outlier_threshold = INFINITY;
    o = quant_spec_json(&sp);
    CHECK(!strcmp(json_string_value(json_object_get(o, "outlier_threshold")) ?: "", "inf"), "tau inf as \"inf\"");
    json_decref(o);
}

/* /settings of a quantized-model file: written from the table, read back exactly, a bad value refused. */
static void test_file(const char *data) {
    char model[512], path[] = "/tmp/qh_settings_XXXXXX";
    snprintf(model, sizeof model, "%s/models/stories260K/stories260K.bin", data);
    if (access(model, R_OK) != 0) {
        SKIP("no stories260K in the data folder (make data)");
        return;
    }
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    char file[600];
    snprintf(file, sizeof file, "%s.h5", path);
    char cmd[2048];
    const char *build = getenv("QH_BUILD") ? getenv("QH_BUILD") : "build";
    snprintf(cmd, sizeof cmd,
             "%s/qharness quantize --model %s --method rtn --wbits 3 --groupsize 16 --qq-scale-bits 3 --qq-zero-bits 3 "
             "--qq-groupsize 16 --calib none --save %s >/dev/null 2>&1",
             build, model, file);
    int rc = system(cmd);
    CHECK(rc == 0, "quantize --save (%s)", cmd);
    if (rc != 0) return;
    Model m;
    Tokenizer t;
    QuantModelInfo info;
    rc = quant_model_load(file, model, NULL, -1, 0, &m, &t, &info);
    CHECK(rc == 0, "the file loads");
    if (rc == 0) {
        QuantParams want;
        quant_params_default(&want, "rtn");
        want.wbits = 3, want.groupsize = 16, want.qq_scale_bits = 3, want.qq_zero_bits = 3, want.qq_groupsize = 16;
        CHECK(info.have_params && !strcmp(info.method, "rtn"), "settings present, method rtn");
        for (const QuantSetting *s = quant_settings; s->name; s++)
            CHECK(quant_setting_get(&info.params, s) == quant_setting_get(&want, s) ||
                      (isinf(quant_setting_get(&want, s)) && isinf(quant_setting_get(&info.params, s))),
                  "/settings/%s read back", s->name);
        tokenizer_free(&t);
        model_free(&m);
    }
    H5File *f;
    CHECK(h5_open_rw(file, &f) == 0 && h5_attr_i64(f, "/settings", "wbits", 9) == 0 && h5_commit(&f) == 0,
          "set /settings/wbits = 9");
    cap_begin_in("/tmp");
    rc = quant_model_load(file, model, NULL, -1, 0, &m, &t, &info);
    char *err = cap_end();
    CHECK(rc != 0 && strstr(err, "/settings/wbits = 9") && strstr(err, "1..8"),
          "a value outside the row's range is refused by name: %s", err);
    free(err);
    if (rc == 0) tokenizer_free(&t), model_free(&m);
    unlink(file);
}

int main(void) {
    const char *data = getenv("QH_DATA") ? getenv("QH_DATA") : "data";
    test_rows();
    test_parse();
    test_methods();
    test_json();
    test_file(data);
    return test_summary();
}
