/* test_quant_file_checks.c: a quantized-model file is checked before it is
 * decoded, and against the model it is loaded with:
 * - layer attributes edited into impossible values are refused by
 *   quant_model_load with a message naming the attribute (qq_groupsize 0
 *   crashed decoding with SIGFPE; groupsize 2^31 - 1 overflowed an int);
 *   the ASan/UBSan build runs this test clean;
 * - the file records model_sha256; loading it with another model of the same
 *   shape is refused (message names both), accepted with force, and the
 *   model it was made from is accepted;
 * - model_content_sha256 equals a digest computed here independently (SHA-256
 *   of each 16 MiB chunk of the hashed tensors, then of the configuration text
 *   and the chunk digests), for a model whose embedding spans several chunks,
 *   whatever the thread count; it changes with one value of a norm, and not
 *   with the linear layers.
 * Needs data/ (stories260K); skipped without it. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "capture.h"
#include "check.h"
#include "h5io.h"
#include "model_hash.h"
#include "quant_io.h"
#include "sha256.h"

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

static int copy_file(const char *from, const char *to) {
    char *d;
    size_t n;
    if (qh_read_file(from, &d, &n) != 0) return -1;
    int rc = qh_write_file_atomic(to, d, n);
    free(d);
    return rc;
}

/* A copy of `good` with attribute `name` of group `grp` set to v. */
static int corrupt(const char *good, const char *path, const char *grp, const char *name, int64_t v) {
    H5File *f;
    if (copy_file(good, path) != 0 || h5_open_rw(path, &f) != 0) return -1;
    if (h5_attr_i64(f, grp, name, v) != 0) {
        h5_abort(&f);
        return -1;
    }
    return h5_commit(&f);
}

/* quant_model_load of path with base: returns its status, stderr in *msg (owned). */
static int load_msg(const char *dir, const char *path, const char *base, int force, char **msg) {
    Model m;
    QuantModelInfo info;
    cap_begin_in(dir);
    int rc = quant_model_load(path, base, NULL, -1, force, &m, NULL, &info);
    *msg = cap_end();
    if (rc == 0) model_free(&m);
    return rc;
}

static void test_attributes(const char *dir, const char *good, const char *base) {
    static const struct {
        const char *name;
        int64_t v;
        const char *grp, *want;
    } cases[] = {
        {"qq_groupsize", 0, "/layers/0/wq", "qq_groupsize = 0"},
        {"groupsize", 2147483647, "/layers/1/w2", "groupsize = 2147483647, expected 1..172"},
        {"groupsize", 0, "/layers/0/wk", "groupsize = 0"},
        {"groupsize", -16, "/layers/0/wv", "groupsize = -16"},
        {"m", (int64_t)1 << 40, "/layers/2/wo", "m = 1099511627776, expected 1.."},
        {"n", 0, "/layers/0/w1", "n = 0"},
        {"ngroups", 3, "/layers/0/w3", "ngroups = 3, expected ceil(n / groupsize) = 4"},
        {"wbits", 9, "/layers/4/wq", "wbits = 9"},
        {"qq_groups", 5, "/layers/0/wq", "qq_groups = 5, expected ceil(m / qq_groupsize) = 4"},
        {"qq_groupsize", 65, "/layers/0/wq", "qq_groupsize = 65, expected 0 (none) or 1..64"},
        {"n_outliers", -1, "/layers/0/wq", "n_outliers = -1"},
        {"scale_code_bits", 40, "/layers/0/wq", "scale_code_bits = 40"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/bad.h5", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (corrupt(good, path, cases[i].grp, cases[i].name, cases[i].v) != 0) {
            CHECK(0, "could not write the edited copy for %s", cases[i].name);
            continue;
        }
        char *msg;
        int rc = load_msg(dir, path, base, 0, &msg);
        CHECK(rc != 0, "%s %s = %lld was accepted", cases[i].grp, cases[i].name, (long long)cases[i].v);
        CHECK(strstr(msg, cases[i].want) && strstr(msg, cases[i].grp) && strstr(msg, path),
              "%s = %lld: message lacks '%s', the group and the file: %s", cases[i].name, (long long)cases[i].v,
              cases[i].want, msg);
        free(msg);
    }
    /* qq_groupsize 0 together with qq_groups 0: the second-level arrays are still there */
    if (corrupt(good, path, "/layers/0/wq", "qq_groupsize", 0) == 0) {
        H5File *f;
        if (h5_open_rw(path, &f) == 0) {
            h5_attr_i64(f, "/layers/0/wq", "qq_groups", 0);
            h5_commit(&f);
        }
        char *msg;
        CHECK(load_msg(dir, path, base, 0, &msg) != 0 && strstr(msg, "qq_scale_scale"),
              "qq_groupsize = qq_groups = 0 with second-level arrays: %s", msg);
        free(msg);
    }
    unlink(path);
}

/* The digest of model_hash.h computed here from its definition. */
static void expected_hash(const Model *m, char hex[65]) {
    const ModelConfig *c = &m->cfg;
    const size_t chunk = (size_t)16 << 20;
    Sha256 all;
    char cfg[512];
    int len = snprintf(cfg, sizeof cfg,
                       "qharness model content v1: arch=%d dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
                       "n_kv_heads=%d vocab_size=%d seq_len=%d rope_theta=%.9g rope_scaling=%d rope_factor=%.9g "
                       "rope_low_freq_factor=%.9g rope_high_freq_factor=%.9g rope_original_max_pos=%d norm_eps=%.9g "
                       "qkv_bias=%d linear_bias=%d chunk_bytes=%zu\n",
                       c->arch, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
                       c->seq_len, (double)c->rope_theta, c->rope_scaling, (double)c->rope_factor,
                       (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_original_max_pos,
                       (double)c->norm_eps, c->qkv_bias, c->linear_bias, chunk);
    sha256_init(&all);
    sha256_update(&all, cfg, (size_t)len);
    const float *seg[64];
    size_t segn[64];
    int ns = 0;
    seg[ns] = m->w.tok_emb, segn[ns++] = (size_t)c->vocab_size * c->dim;
    for (int l = 0; l < c->n_layers; l++) {
        seg[ns] = m->w.blocks[l].rms_att, segn[ns++] = (size_t)c->dim;
        seg[ns] = m->w.blocks[l].rms_ffn, segn[ns++] = (size_t)c->dim;
    }
    seg[ns] = m->w.rms_final, segn[ns++] = (size_t)c->dim;
    seg[ns] = m->w.wcls, segn[ns++] = (size_t)c->vocab_size * c->dim;
    for (int s = 0; s < ns; s++)
        for (size_t off = 0; off < segn[s] * 4; off += chunk) {
            size_t b = segn[s] * 4 - off < chunk ? segn[s] * 4 - off : chunk;
            Sha256 h;
            unsigned char d[32];
            sha256_init(&h);
            sha256_update(&h, (const char *)seg[s] + off, b);
            sha256_final(&h, d);
            sha256_update(&all, d, 32);
        }
    unsigned char d[32];
    sha256_final(&all, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static void test_hash_definition(void) {
    /* an embedding of 8192 x 640 fp32 = 20 MiB: two chunks, the head two more */
    ModelConfig c = {.dim = 640, .hidden_dim = 64, .n_layers = 2, .n_heads = 10, .n_kv_heads = 10,
                     .vocab_size = 8192, .seq_len = 32, .shared_classifier = 0, .rope_theta = 10000.0f,
                     .norm_eps = 1e-5f};
    Model m;
    if (model_synth(&m, &c, 7) != 0) {
        CHECK(0, "model_synth");
        return;
    }
    char want[65], h1[65], h2[65], h3[65];
    expected_hash(&m, want);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    model_content_sha256(&m, h1);
    omp_set_num_threads(nt > 1 ? nt : 2);
    model_content_sha256(&m, h2);
    omp_set_num_threads(nt);
    CHECK(!strcmp(h1, want), "one thread: %s, computed here %s", h1, want);
    CHECK(!strcmp(h2, want), "%d threads: %s, computed here %s", nt > 1 ? nt : 2, h2, want);
    /* a linear layer does not take part; a norm value does */
    float *lin = (float *)m.w.blocks[1].lin[LIN_DOWN];
    lin[0] += 1.0f;
    model_content_sha256(&m, h3);
    CHECK(!strcmp(h3, want), "a changed linear weight changed the hash");
    float *rms = (float *)m.w.blocks[1].rms_ffn;
    rms[3] = nextafterf(rms[3], 2.0f);
    model_content_sha256(&m, h3);
    CHECK(strcmp(h3, want) != 0, "one ulp in a norm weight left the hash unchanged");
    model_free(&m);
}

int main(void) {
    test_hash_definition();
    char base[1024];
    snprintf(base, sizeof base, "%s/models/stories260K/stories260K.bin", root());
    Model m;
    if (access(base, R_OK) != 0 || model_load_llama2c(&m, base) != 0) {
        SKIP("stories260K not found under QH_DATA");
        return test_summary();
    }
    char dir[] = "/tmp/qh_qfileXXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    /* RTN with second-level statistics (no calibration): every stored array kind but outliers */
    QuantRunSpec s = {.method = "rtn", .calib = "none", .seqlen = 128, .data_root = root(), .device = QH_DEVICE_CPU};
    quant_params_default(&s.params, "rtn");
    s.params.wbits = 3;
    s.params.groupsize = 16;
    s.params.qq_scale_bits = 3;
    s.params.qq_zero_bits = 3;
    s.params.qq_groupsize = 16;
    QuantRun run;
    Provenance prov;
    char *argv0[] = {"test_quant_file_checks"};
    provenance_collect(&prov, 1, argv0);
    char good[512], synth[512];
    snprintf(good, sizeof good, "%s/q.h5", dir);
    snprintf(synth, sizeof synth, "%s/synth.bin", dir);
    int ok = quantize_model(&m, NULL, &s, &run) == 0;
    CHECK(ok, "rtn quantization of stories260K");
    ok = ok && quant_model_save(good, &m, &s, &run, &prov, "{}") == 0;
    CHECK(ok, "save %s", good);
    if (ok) quant_run_free(&run);
    char want_hash[65];
    model_content_sha256(&m, want_hash);
    ModelConfig cfg = m.cfg;
    model_free(&m);
    if (!ok) return test_summary();

    char *msg;
    CHECK(load_msg(dir, good, base, 0, &msg) == 0, "the file with the model it was made from: %s", msg);
    free(msg);
    {
        H5File *f;
        char *v = NULL;
        CHECK(h5_open_read(good, &f) == 0 && h5_get_attr_str(f, "/", "model_sha256", &v) == 0 && v &&
                  !strcmp(v, want_hash), "model_sha256 attribute '%s', expected %s", v ? v : "", want_hash);
        free(v);
        if (f) h5_abort(&f);
    }
    test_attributes(dir, good, base);

    /* another model of the same shape */
    Model other;
    CHECK(model_synth(&other, &cfg, 3) == 0 && model_save_llama2c(&other, synth) == 0, "synth model");
    model_free(&other);
    CHECK(load_msg(dir, good, synth, 0, &msg) != 0 && strstr(msg, "quantized from another model") &&
              strstr(msg, synth) && strstr(msg, base) && strstr(msg, "--force"),
          "another model of the same shape: %s", msg);
    free(msg);
    CHECK(load_msg(dir, good, synth, 1, &msg) == 0 && strstr(msg, "warning") && strstr(msg, "another model"),
          "force: loaded with a warning: %s", msg);
    free(msg);
    unlink(good);
    unlink(synth);
    rmdir(dir);
    return test_summary();
}
