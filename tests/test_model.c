/* test_model.c: the llama2.c v0 checkpoint reader/writer and the synthetic
 * models of model.c.
 *
 * - data/models/stories260K/stories260K.bin: its header (dim 64, hidden 172,
 *   5 layers, 8 heads, 4 kv heads, vocab 512, seq_len 512, shared classifier)
 *   and every tensor pointer against byte offsets computed here from the v0
 *   layout, with the tensor bytes compared to the file read with stdio.
 * - model_save_llama2c + model_load_llama2c round trips, bit-identical in
 *   every tensor, for stories260K and for synthetic models (shared and
 *   unshared classifier, GQA, odd sizes); model_synth determinism.
 * - model_set_linear replaces exactly one matrix (copied), and a saved model
 *   carries the replacement in the right slot of the file.
 * - Bad files return -1 with a message naming the file, a zeroed Model, and
 *   the file left byte-identical: truncations (inside the header too),
 *   trailing bytes, headers that disagree with the size, zero/negative sizes,
 *   dim not a multiple of heads, odd head size, heads not a multiple of kv
 *   heads, empty, missing, a directory.
 * Not here: running the model (test_forward.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "util.h"

static const char *data_root(void) {
    const char *d = getenv("QH_DATA");
    return d && *d ? d : "data";
}

/* ---- stderr capture ------------------------------------------------------------ */
#include "capture.h"
#define cap_begin(d) cap_begin_in(d)

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Compare every tensor of two models bit for bit; returns the number of differing tensors. */
static int compare_models(const Model *a, const Model *b, const char *what) {
    const ModelConfig *c = &a->cfg;
    int diff = 0;
    size_t D = c->dim, V = c->vocab_size;
    if (memcmp(&a->cfg, &b->cfg, sizeof a->cfg) != 0) {
        fprintf(stderr, "%s: configs differ\n", what);
        return 1000;
    }
    diff += memcmp(a->w.tok_emb, b->w.tok_emb, V * D * 4) != 0;
    diff += memcmp(a->w.wcls, b->w.wcls, V * D * 4) != 0;
    diff += memcmp(a->w.rms_final, b->w.rms_final, D * 4) != 0;
    for (int l = 0; l < c->n_layers; l++) {
        diff += memcmp(a->w.blocks[l].rms_att, b->w.blocks[l].rms_att, D * 4) != 0;
        diff += memcmp(a->w.blocks[l].rms_ffn, b->w.blocks[l].rms_ffn, D * 4) != 0;
        for (int k = 0; k < LIN_COUNT; k++) {
            int o, i;
            model_linear_shape(c, (LinearKind)k, &o, &i);
            if (memcmp(a->w.blocks[l].lin[k], b->w.blocks[l].lin[k], (size_t)o * i * 4) != 0) {
                fprintf(stderr, "%s: layer %d %s differs\n", what, l, linear_names[k]);
                diff++;
            }
        }
    }
    return diff;
}

/* ---- stories260K --------------------------------------------------------------- */

static void test_stories(const char *tmp) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", data_root());
    char *file;
    size_t flen;
    if (qh_read_file(path, &file, &flen) != 0) {
        SKIP("stories260K.bin not found (run make data)");
        return;
    }
    Model m;
    CHECK(model_load_llama2c(&m, path) == 0, "load %s", path);
    const ModelConfig *c = &m.cfg;
    CHECK(c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 && c->n_kv_heads == 4 &&
              c->vocab_size == 512 && c->seq_len == 512 && c->shared_classifier == 1,
          "stories260K config: dim %d hidden %d layers %d heads %d kv %d vocab %d seq %d shared %d", c->dim,
          c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, c->shared_classifier);
    CHECK(c->rope_theta == 10000.0f && c->norm_eps == 1e-5f, "theta %g eps %g", c->rope_theta, c->norm_eps);
    CHECK(model_head_size(c) == 8 && model_kv_dim(c) == 32, "hs %d kv %d", model_head_size(c), model_kv_dim(c));
    CHECK(flen == 1056540 && m.map_size == flen, "file %zu bytes, map %zu", flen, m.map_size);
    CHECK(m.w.wcls == m.w.tok_emb, "shared classifier must alias the embedding");
    CHECK(model_linear_params(c) == 5LL * (64 * 64 * 2 + 32 * 64 * 2 + 172 * 64 * 3), "linear params %lld",
          (long long)model_linear_params(c));
    int o, i;
    model_linear_shape(c, LIN_K, &o, &i);
    CHECK(o == 32 && i == 64, "wk shape %dx%d", o, i);
    model_linear_shape(c, LIN_DOWN, &o, &i);
    CHECK(o == 64 && i == 172, "w2 shape %dx%d", o, i);
    model_linear_shape(c, LIN_UP, &o, &i);
    CHECK(o == 172 && i == 64, "w3 shape %dx%d", o, i);

    /* every pointer at the byte offset of the v0 layout, bytes equal to the file */
    {
        const size_t D = 64, F = 172, L = 5, V = 512, KV = 32, S = 512, hs = 8;
        size_t off = 28;
        const char *base = (const char *)m.map;
        int bad = 0;
#define AT(ptr, n)                                                                                     \
    do {                                                                                               \
        if ((const char *)(ptr) != base + off || memcmp((ptr), file + off, (n) * 4) != 0) bad++;       \
    } while (0)
        AT(m.w.tok_emb, V * D);
        off += V * D * 4;
        for (size_t l = 0; l < L; l++, off += D * 4) AT(m.w.blocks[l].rms_att, D);
        for (size_t l = 0; l < L; l++, off += D * D * 4) AT(m.w.blocks[l].lin[LIN_Q], D * D);
        for (size_t l = 0; l < L; l++, off += KV * D * 4) AT(m.w.blocks[l].lin[LIN_K], KV * D);
        for (size_t l = 0; l < L; l++, off += KV * D * 4) AT(m.w.blocks[l].lin[LIN_V], KV * D);
        for (size_t l = 0; l < L; l++, off += D * D * 4) AT(m.w.blocks[l].lin[LIN_O], D * D);
        for (size_t l = 0; l < L; l++, off += D * 4) AT(m.w.blocks[l].rms_ffn, D);
        for (size_t l = 0; l < L; l++, off += F * D * 4) AT(m.w.blocks[l].lin[LIN_GATE], F * D);
        for (size_t l = 0; l < L; l++, off += D * F * 4) AT(m.w.blocks[l].lin[LIN_DOWN], D * F);
        for (size_t l = 0; l < L; l++, off += F * D * 4) AT(m.w.blocks[l].lin[LIN_UP], F * D);
        AT(m.w.rms_final, D);
        off += D * 4;
        off += S * hs * 4; /* freq_cis_real, freq_cis_imag */
#undef AT
        CHECK(bad == 0, "%d stories260K tensors are not where the v0 layout puts them", bad);
        CHECK(off == flen, "layout accounts for %zu of %zu bytes", off, flen);
        /* the trained model's norm weights are not all 1 and the matrices not all 0 */
        CHECK(m.w.blocks[0].rms_att[0] != 1.0f && m.w.blocks[4].lin[LIN_DOWN][100] != 0.0f, "weights look empty");
    }

    /* save + reload: bit-identical tensors */
    char out[1024];
    snprintf(out, sizeof out, "%s/stories_copy.bin", tmp);
    CHECK(model_save_llama2c(&m, out) == 0, "save %s", out);
    Model r;
    CHECK(model_load_llama2c(&r, out) == 0, "reload %s", out);
    CHECK(compare_models(&m, &r, "stories round trip") == 0, "stories260K round trip differs");
    CHECK(r.map_size == flen, "re-saved size %zu, original %zu", r.map_size, flen);
    {
        /* everything but the (unused) freq_cis tables is byte-identical to the
         * original; the tables are recomputed: report how far they are */
        size_t fc0 = flen - 512 * 8 * 4, same_head = !memcmp(r.map, file, fc0);
        CHECK(same_head, "re-saved file differs from the original before the freq_cis tables");
        const float *a = (const float *)(file + fc0), *b = (const float *)((const char *)r.map + fc0);
        double worst = 0;
        for (int k = 0; k < 512 * 8; k++) worst = fabs(a[k] - b[k]) > worst ? fabs(a[k] - b[k]) : worst;
        CHECK(worst < 1e-3, "freq_cis tables differ by %g", worst);
        printf("stories260K re-saved: freq_cis tables %s (max difference %.3g)\n",
               memcmp(a, b, 512 * 8 * 4) ? "recomputed, not byte-identical" : "byte-identical", worst);
    }
    model_free(&r);
    /* no temp file left beside the output */
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", out, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0, "temp file %s left behind", tmpname);

    /* model_set_linear: exactly one matrix changes, it is copied, and a save carries it */
    {
        const float *before[5][LIN_COUNT];
        for (int l = 0; l < 5; l++)
            for (int k = 0; k < LIN_COUNT; k++) before[l][k] = m.w.blocks[l].lin[k];
        size_t n = 172 * 64;
        float *W = malloc(n * 4);
        for (size_t k = 0; k < n; k++) W[k] = (float)k * 0.001f - 3.0f;
        model_set_linear(&m, 2, LIN_UP, W);
        int others = 0;
        for (int l = 0; l < 5; l++)
            for (int k = 0; k < LIN_COUNT; k++)
                if (!(l == 2 && k == LIN_UP)) others += m.w.blocks[l].lin[k] != before[l][k];
        CHECK(others == 0, "model_set_linear moved %d other matrices", others);
        CHECK(m.w.blocks[2].lin[LIN_UP] != W && m.w.blocks[2].lin[LIN_UP] != before[2][LIN_UP],
              "replacement is not a model-owned copy");
        CHECK(!memcmp(m.w.blocks[2].lin[LIN_UP], W, n * 4), "replacement content differs");
        CHECK(!memcmp(before[2][LIN_UP], file + ((const char *)before[2][LIN_UP] - (const char *)m.map), n * 4),
              "the mapped original changed");
        const float *slot = m.w.blocks[2].lin[LIN_UP];
        W[7] = 42.0f;
        CHECK(m.w.blocks[2].lin[LIN_UP][7] != 42.0f, "model shares the caller's buffer");
        model_set_linear(&m, 2, LIN_UP, W); /* same slot reused */
        CHECK(m.w.blocks[2].lin[LIN_UP] == slot && slot[7] == 42.0f, "second set_linear of the same slot");
        snprintf(out, sizeof out, "%s/stories_w3.bin", tmp);
        CHECK(model_save_llama2c(&m, out) == 0, "save modified");
        CHECK(model_load_llama2c(&r, out) == 0, "reload modified");
        CHECK(!memcmp(r.w.blocks[2].lin[LIN_UP], W, n * 4), "saved w3 of layer 2 is not the replacement");
        CHECK(!memcmp(r.w.blocks[2].lin[LIN_GATE], before[2][LIN_GATE], n * 4) &&
                  !memcmp(r.w.blocks[2].lin[LIN_DOWN], before[2][LIN_DOWN], n * 4),
              "w1/w2 of layer 2 changed on save");
        /* set it back: the models agree again */
        model_set_linear(&m, 2, LIN_UP, before[2][LIN_UP]);
        model_set_linear(&r, 2, LIN_UP, before[2][LIN_UP]);
        Model o2;
        model_load_llama2c(&o2, path);
        CHECK(compare_models(&o2, &r, "restored") == 0, "only w3 of layer 2 should have differed");
        model_free(&o2);
        model_free(&r);
        free(W);
    }
    model_free(&m);
    CHECK(m.map == NULL && m.w.blocks == NULL, "model_free leaves a zeroed struct");
    model_free(&m); /* harmless twice */
    free(file);
}

/* ---- synthetic models ---------------------------------------------------------- */

static void test_synth(const char *tmp) {
    ModelConfig cs[2] = {
        {.dim = 36, .hidden_dim = 97, .n_layers = 3, .n_heads = 6, .n_kv_heads = 2, .vocab_size = 71, .seq_len = 40,
         .shared_classifier = 0},
        {.dim = 24, .hidden_dim = 50, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2, .vocab_size = 300, .seq_len = 9,
         .shared_classifier = 1},
    };
    for (int ci = 0; ci < 2; ci++) {
        Model a, b, r;
        CHECK(model_synth(&a, &cs[ci], 5) == 0, "synth %d", ci);
        CHECK(model_synth(&b, &cs[ci], 5) == 0, "synth %d again", ci);
        CHECK(compare_models(&a, &b, "synth determinism") == 0, "same seed gives different weights");
        model_free(&b);
        model_synth(&b, &cs[ci], 6);
        CHECK(memcmp(a.w.blocks[0].lin[LIN_Q], b.w.blocks[0].lin[LIN_Q], 36 * 4) != 0, "seeds 5 and 6 agree");
        model_free(&b);
        CHECK((a.w.wcls == a.w.tok_emb) == (cs[ci].shared_classifier == 1), "wcls aliasing");
        CHECK(a.cfg.rope_theta == 10000.0f && a.cfg.norm_eps == 1e-5f, "synth defaults theta/eps");
        /* weights ~ N(0, 1/in): the sample variance of w1 is near 1/dim */
        {
            int o, in;
            model_linear_shape(&a.cfg, LIN_GATE, &o, &in);
            double s2 = 0;
            for (int k = 0; k < o * in; k++) s2 += (double)a.w.blocks[0].lin[LIN_GATE][k] * a.w.blocks[0].lin[LIN_GATE][k];
            s2 /= (double)o * in;
            CHECK(fabs(s2 * in - 1.0) < 0.1, "synth w1 variance * in = %g, expected ~1", s2 * in);
        }
        char p[1024];
        snprintf(p, sizeof p, "%s/synth%d.bin", tmp, ci);
        CHECK(model_save_llama2c(&a, p) == 0, "save synth %d", ci);
        CHECK(model_load_llama2c(&r, p) == 0, "load synth %d", ci);
        CHECK(compare_models(&a, &r, "synth round trip") == 0, "synth %d round trip differs", ci);
        CHECK(r.cfg.shared_classifier == cs[ci].shared_classifier, "classifier flag lost");
        /* independent size: 7 ints + the v0 float count */
        const ModelConfig *c = &cs[ci];
        long D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size, S = c->seq_len, hs = D / c->n_heads,
             KV = c->n_kv_heads * hs;
        long floats = V * D + 2 * L * D + L * (2 * D * D + 2 * KV * D) + 3 * L * F * D + D + S * hs +
                      (c->shared_classifier ? 0 : V * D);
        CHECK((long)r.map_size == 28 + 4 * floats, "synth file %zu bytes, expected %ld", r.map_size, 28 + 4 * floats);
        /* header: negative vocab for the unshared classifier */
        int32_t hdr[7];
        memcpy(hdr, r.map, 28);
        CHECK(hdr[5] == (c->shared_classifier ? c->vocab_size : -c->vocab_size), "header vocab field %d", hdr[5]);
        model_free(&r);
        model_free(&a);
    }
    /* invalid synth configurations are refused */
    Model m;
    ModelConfig bad = cs[0];
    bad.n_kv_heads = 4; /* 6 % 4 */
    CHECK(model_synth(&m, &bad, 1) == -1, "synth with heads %% kv != 0 accepted");
    bad = cs[0];
    bad.dim = 35;
    CHECK(model_synth(&m, &bad, 1) == -1, "synth with dim %% heads != 0 accepted");
    bad = cs[0];
    bad.n_layers = 0;
    CHECK(model_synth(&m, &bad, 1) == -1, "synth with 0 layers accepted");
}

/* ---- bad files ------------------------------------------------------------------ */

static void expect_reject(const char *dir, const char *name, const void *bytes, size_t n, const char *why) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (write_bytes(p, bytes, n) != 0) {
        CHECK(0, "cannot write %s", p);
        return;
    }
    Model m;
    memset(&m, 0x5a, sizeof m);
    cap_begin(dir);
    int rc = model_load_llama2c(&m, p);
    char *err = cap_end();
    CHECK(rc == -1, "%s (%s): load returned %d", why, name, rc);
    CHECK(strstr(err, "error") && strstr(err, p), "%s: message does not name the file: '%s'", why, err);
    CHECK(m.map == NULL && m.w.blocks == NULL && m.path == NULL && m.heap == NULL, "%s: Model not left empty", why);
    model_free(&m); /* harmless on the failed load */
    char *after;
    size_t alen;
    CHECK(qh_read_file(p, &after, &alen) == 0 && alen == n && (n == 0 || !memcmp(after, bytes, n)),
          "%s: file modified by the failed load", why);
    free(after);
    free(err);
    unlink(p);
}

static void test_bad_files(const char *tmp) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", data_root());
    char *file;
    size_t n;
    if (qh_read_file(path, &file, &n) != 0) {
        SKIP("stories260K.bin not found");
        return;
    }
    /* truncations: empty, inside the header, right after it, inside the body, one short */
    size_t cuts[] = {0, 1, 4, 27, 28, 29, 32, 1000, n / 2, n - 4, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        char why[64];
        snprintf(why, sizeof why, "truncated at %zu", cuts[k]);
        expect_reject(tmp, "trunc.bin", file, cuts[k], why);
    }
    /* trailing bytes */
    char *big = malloc(n + 4096);
    memcpy(big, file, n);
    memset(big + n, 0, 4096);
    expect_reject(tmp, "plus1.bin", big, n + 1, "one trailing byte");
    expect_reject(tmp, "plus4.bin", big, n + 4, "one trailing float");
    expect_reject(tmp, "plus4096.bin", big, n + 4096, "4096 trailing bytes");
    free(big);
    /* header edits */
    struct {
        int field;
        int32_t value;
        const char *why;
    } edits[] = {
        {2, 4, "n_layers 4 disagrees with the size"},
        {2, 6, "n_layers 6 disagrees with the size"},
        {1, 171, "hidden_dim 171 disagrees with the size"},
        {6, 511, "seq_len 511 disagrees with the size"},
        {5, -512, "vocab -512 (unshared) disagrees with the size"},
        {0, 0, "dim 0"},
        {0, -64, "dim -64"},
        {1, 0, "hidden_dim 0"},
        {2, 0, "n_layers 0"},
        {2, -5, "n_layers -5"},
        {3, 0, "n_heads 0"},
        {3, -8, "n_heads -8"},
        {4, 0, "n_kv_heads 0"},
        {4, -4, "n_kv_heads -4"},
        {5, 0, "vocab 0"},
        {6, 0, "seq_len 0"},
        {6, -512, "seq_len -512"},
        {3, 7, "dim 64 not a multiple of 7 heads"},
        {3, 64, "head size 1 (odd)"},
        {4, 3, "8 heads not a multiple of 3 kv heads"},
        {4, 16, "16 kv heads for 8 heads"},
        {0, INT32_MAX, "dim 2^31-1"},
        {5, INT32_MIN, "vocab INT32_MIN"},
    };
    char *ed = malloc(n);
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        memcpy(ed, file, n);
        memcpy(ed + 4 * edits[k].field, &edits[k].value, 4);
        expect_reject(tmp, "edited.bin", ed, n, edits[k].why);
    }
    free(ed);
    /* a consistent header of another shape but the wrong body length: the
     * 7 ints of a synth shape followed by stories' body */
    {
        int32_t hdr[7] = {32, 172, 5, 8, 4, 512, 512};
        char *x = malloc(n);
        memcpy(x, file, n);
        memcpy(x, hdr, 28);
        expect_reject(tmp, "reshaped.bin", x, n, "dim 32 header on a dim 64 body");
        free(x);
    }
    /* missing file and a directory */
    Model m;
    char p[1024];
    snprintf(p, sizeof p, "%s/does_not_exist.bin", tmp);
    cap_begin(tmp);
    int rc = model_load_llama2c(&m, p);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, p) && m.map == NULL, "missing file: rc %d, message '%s'", rc, err);
    CHECK(access(p, F_OK) != 0, "loading a missing file created it");
    free(err);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/adir", tmp);
    mkdir(sub, 0700);
    cap_begin(tmp);
    rc = model_load_llama2c(&m, sub);
    free(cap_end());
    CHECK(rc == -1, "a directory loaded as a model");
    rmdir(sub);
    /* model_save to an unwritable place fails cleanly */
    snprintf(p, sizeof p, "%s/no/such/dir/m.bin", tmp);
    Model s;
    ModelConfig c = {.dim = 8, .hidden_dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .vocab_size = 5,
                     .seq_len = 4, .shared_classifier = 1};
    model_synth(&s, &c, 1);
    cap_begin(tmp);
    rc = model_save_llama2c(&s, p);
    free(cap_end());
    CHECK(rc == -1, "save into a missing directory returned %d", rc);
    model_free(&s);
    /* model_config_validate directly */
    ModelConfig v = {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4, .vocab_size = 512,
                     .seq_len = 512, .shared_classifier = 1};
    CHECK(model_config_validate(&v, "ok") == 0, "valid config rejected");
    free(file);
}

/* model_restore_block: replaced linears dropped, the loaded ones back (the
 * same memory, the same values), other blocks untouched. */
static void test_restore(void) {
    ModelConfig c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .vocab_size = 11,
                     .seq_len = 8, .shared_classifier = 1};
    Model m;
    if (model_synth(&m, &c, 7) != 0) {
        CHECK(0, "model_synth");
        return;
    }
    int o, i;
    model_linear_shape(&c, LIN_UP, &o, &i);
    const float *orig0 = m.w.blocks[0].lin[LIN_UP], *orig1 = m.w.blocks[1].lin[LIN_UP];
    float *before = malloc(sizeof(float) * (size_t)o * i), *zeros = calloc((size_t)o * i, sizeof(float));
    memcpy(before, orig0, sizeof(float) * (size_t)o * i);
    model_set_linear(&m, 0, LIN_UP, zeros);
    model_set_linear(&m, 1, LIN_UP, zeros);
    CHECK(model_has_replaced(&m) && m.w.blocks[0].lin[LIN_UP] != orig0 && m.w.blocks[0].lin[LIN_UP][0] == 0.0f,
          "a replaced linear is the new matrix");
    model_restore_block(&m, 0);
    CHECK(m.w.blocks[0].lin[LIN_UP] == orig0 && !memcmp(orig0, before, sizeof(float) * (size_t)o * i),
          "block 0 restored: the loaded matrix, unchanged");
    CHECK(m.w.blocks[1].lin[LIN_UP] != orig1 && model_has_replaced(&m), "block 1 still replaced");
    model_restore_block(&m, 1);
    CHECK(m.w.blocks[1].lin[LIN_UP] == orig1 && !model_has_replaced(&m), "every block restored");
    model_set_linear(&m, 0, LIN_UP, zeros); /* replaceable again after a restore */
    CHECK(m.w.blocks[0].lin[LIN_UP] != orig0 && m.w.blocks[0].lin[LIN_UP][5] == 0.0f, "replaced again");
    free(before);
    free(zeros);
    model_free(&m);
}

int main(void) {
    char tmpl[] = "/tmp/qh_test_model_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) {
        perror("mkdtemp");
        return 1;
    }
    test_stories(tmp);
    test_synth(tmp);
    test_bad_files(tmp);
    test_restore();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return test_summary();
}
