/* test_tokenizer_hf.c: tokenizer.json files (hf_tok.h through tokenizer.h)
 * against the Hugging Face `tokenizers` library 0.23.3:
 *   - data/fixtures/bpe_cases.jsonl: every hard string, exact ids, under the
 *     Llama-3.2 and Qwen3 files (data/tokenizers/{llama3,qwen3}/tokenizer.json);
 *   - the SPEC wikitext2 string of the validation rows: exact ids against
 *     data/fixtures/wikitext2_valid_{llama3,qwen3}_ids.i32;
 *   - tests/fixtures/bpe_reference.tsv (make_bpe_reference.py): 397 more
 *     texts (320 C4 slices cut at arbitrary byte offsets, invalid UTF-8
 *     included, and our own hard strings): ids, decode with and without
 *     special tokens, and decode(encode(s)) == s wherever the library says so;
 *   - tests/fixtures/bpe_synth_{a,b,c}.json with bpe_synth_reference.tsv:
 *     small files of our own for the components the two real files do not
 *     use (Prepend, Replace, Metaspace, Digits, Punctuation, Split behaviors,
 *     byte fallback, unknown tokens, lstrip / rstrip / single_word, the
 *     decoder chains, EOS templates), exact ids and decodes;
 *   - bad files: each refused with the file and the JSON path, never a crash,
 *     plus a mutation fuzz of a small file (QH_FUZZ_N inputs, default 1500;
 *     run under `make asan` with more).
 * Skips (with a reason) what needs data/ when `make data` has not been run. */
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "datasets.h"
#include "fuzz.h"
#include "hf_tok.h"
#include "hf_unicode.h"
#include "sha256.h"
#include "tokenizer.h"
#include "util.h"

static char tmp[400];

static const char *root(void) { return getenv("QH_DATA") ? getenv("QH_DATA") : "data"; }

static char *data_file(const char *rel, size_t *len) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root(), rel);
    char *buf;
    return qh_read_file(p, &buf, len) == 0 ? buf : NULL;
}

static int load_real(Tokenizer *t, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizers/%s/tokenizer.json", root(), name);
    if (access(p, R_OK) != 0) return -1;
    double t0 = qh_now();
    int rc = tokenizer_load(t, p, 0);
    printf("%s: loaded in %.3f s (%d ids)\n", name, qh_now() - t0, rc == 0 ? t->vocab_size : -1);
    return rc;
}

static int same_ids(const int *a, size_t na, const int *b, size_t nb, const char *what) {
    if (na == nb && (na == 0 || memcmp(a, b, na * sizeof(int)) == 0)) return 1;
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    fprintf(stderr, "%s: %zu ids, expected %zu; first difference at %zu:", what, na, nb, k);
    for (size_t i = k; i < na && i < k + 6; i++) fprintf(stderr, " %d", a[i]);
    fprintf(stderr, " vs");
    for (size_t i = k; i < nb && i < k + 6; i++) fprintf(stderr, " %d", b[i]);
    fprintf(stderr, "\n");
    return 0;
}

/* first 16 hex digits of sha256 */
static void sha16(const void *p, size_t n, char out[17]) {
    char hex[65];
    sha256_buf(p, n, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

static char *unhex(const char *h, size_t *n) {
    size_t k = strlen(h) / 2;
    char *o = qh_malloc(k + 1);
    for (size_t i = 0; i < k; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        o[i] = (char)v;
    }
    o[k] = '\0';
    *n = k;
    return o;
}

/* Split a line at tabs (in place); returns the field count. */
static int fields(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *c = line; *c && n < max; c++)
        if (*c == '\t') *c = '\0', f[n++] = c + 1;
    return n;
}

/* ---- the two real files ------------------------------------------------------------ */

typedef struct {
    char **text;
    size_t *len;
    json_t **ids[2]; /* llama3, qwen3 arrays */
    int n;
    json_t **objs;
} Cases;

static int load_cases(Cases *c) {
    memset(c, 0, sizeof *c);
    size_t len;
    char *raw = data_file("fixtures/bpe_cases.jsonl", &len);
    if (!raw) return -1;
    char *save = NULL;
    for (char *line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o) continue;
        c->text = qh_realloc(c->text, sizeof(char *) * (size_t)(c->n + 1));
        c->len = qh_realloc(c->len, sizeof(size_t) * (size_t)(c->n + 1));
        c->objs = qh_realloc(c->objs, sizeof(json_t *) * (size_t)(c->n + 1));
        c->text[c->n] = (char *)json_string_value(json_object_get(o, "text"));
        c->len[c->n] = json_string_length(json_object_get(o, "text"));
        c->objs[c->n] = o;
        c->n++;
    }
    free(raw);
    return 0;
}

static void free_cases(Cases *c) {
    for (int i = 0; i < c->n; i++) json_decref(c->objs[i]);
    free(c->text);
    free(c->len);
    free(c->objs);
}

static void test_cases(const Tokenizer *t, const char *name, const Cases *c) {
    int bad = 0;
    for (int i = 0; i < c->n; i++) {
        json_t *want = json_object_get(c->objs[i], name);
        size_t nw = json_array_size(want);
        int *w = qh_malloc(sizeof(int) * (nw + 1));
        for (size_t k = 0; k < nw; k++) w[k] = (int)json_integer_value(json_array_get(want, k));
        int *ids;
        size_t n;
        char what[96];
        snprintf(what, sizeof what, "%s bpe_cases.jsonl line %d", name, i + 1);
        if (tokenizer_encode(t, c->text[i], c->len[i], 1, 0, &ids, &n) != 0) ids = NULL, n = 0;
        bad += !same_ids(ids, n, w, nw, what);
        free(ids);
        free(w);
    }
    CHECK(bad == 0 && c->n == 26, "%s: %d of %d bpe_cases.jsonl strings differ from the library", name, bad, c->n);
}

static void test_wikitext_valid(const Tokenizer *t, const char *name) {
    size_t len, flen;
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/wikitext2_valid_%s_ids.i32", name);
    char *raw = data_file("text/wikitext-2-raw/wiki.valid.raw", &len), *fx = data_file(rel, &flen);
    if (!raw || !fx) {
        SKIP("wiki.valid.raw or the validation-split id fixture is missing (make data)");
        free(raw);
        free(fx);
        return;
    }
    char *text = join_wikitext2(raw, len);
    int *ids;
    size_t n;
    double t0 = qh_now();
    int rc = tokenizer_encode(t, text, strlen(text), 1, 0, &ids, &n);
    double dt = qh_now() - t0;
    size_t nf = flen / 4;
    int *want = qh_malloc(flen + 4);
    for (size_t i = 0; i < nf; i++) { /* int32 little-endian */
        const unsigned char *p = (const unsigned char *)fx + 4 * i;
        want[i] = (int)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    }
    char what[96];
    snprintf(what, sizeof what, "%s wikitext2 validation", name);
    CHECK(rc == 0 && same_ids(ids, n, want, nf, what), "%s: the SPEC wikitext2 validation string gives the fixture's %zu ids",
          name, nf);
    printf("%s: wikitext2 validation (%zu bytes) encoded in %.3f s: %zu ids\n", name, strlen(text), dt, n);
    /* and back: the library's decode gives the text again (no special token inside) */
    char *dec;
    size_t dl;
    int skip_bos = !strcmp(name, "llama3");
    if (rc == 0) {
        CHECK(tokenizer_decode_text(t, ids + skip_bos, n - (size_t)skip_bos, &dec, &dl) == 0 && dl == strlen(text) &&
                  !memcmp(dec, text, dl),
              "%s: decode(encode(wikitext2 validation)) is the text", name);
        free(dec);
    }
    free(want);
    free(ids);
    free(text);
    free(raw);
    free(fx);
}

/* The eval streams: wikitext2 (test split) with the tokenizer's own BOS rule. */
static void test_dataset_stream(const Tokenizer *t, const char *name, int bos) {
    TokenStream s;
    if (dataset_eval("wikitext2", root(), t, 512, &s) != 0) {
        SKIP("dataset wikitext2 not available (make data)");
        return;
    }
    CHECK(s.n > 1000 && (bos < 0 ? s.ids[0] != 128000 : s.ids[0] == bos), "%s: wikitext2 stream starts with %d (%s)",
          name, s.ids[0], bos < 0 ? "no BOS" : "its BOS");
    CHECK(strlen(s.tokenizer_sha256) == 64 && !strcmp(s.tokenizer_sha256, t->sha256) &&
              strstr(s.tokenizer_path, "tokenizer.json") != NULL,
          "%s: the stream records the tokenizer file and its sha256 (%s, %s)", name, s.tokenizer_path, s.tokenizer_sha256);
    int max = 0;
    for (size_t i = 0; i < s.n; i++)
        if (s.ids[i] > max) max = s.ids[i];
    CHECK(max < t->vocab_size, "%s: every id below the tokenizer's %d", name, t->vocab_size);
    token_stream_free(&s);
}

/* bpe_reference.tsv: texts rebuilt from their names, then ids and decodes by hash. */
static void test_reference(const Tokenizer *tl, const Tokenizer *tq, const Cases *cases) {
    size_t len, c4len;
    char *tsv;
    if (qh_read_file("tests/fixtures/bpe_reference.tsv", &tsv, &len) != 0) {
        SKIP("tests/fixtures/bpe_reference.tsv not found (run from the repository root)");
        return;
    }
    char *c4raw = data_file("text/c4/c4_train_00000_first1000.jsonl", &c4len);
    json_t *docs = json_array();
    if (c4raw) {
        char *save = NULL;
        for (char *line = strtok_r(c4raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        {
            json_t *o = json_loads(line, 0, NULL);
            json_array_append_new(docs, o ? o : json_null());
        }
    }
    const Tokenizer *ts[2] = {tl, tq};
    int nlines = 0, nbad_ids[2] = {0, 0}, nbad_dec[2] = {0, 0}, nrt[2] = {0, 0}, nbad_rt[2] = {0, 0}, nc4 = 0, ninvalid = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[12];
        if (fields(line, f, 12) != 11) {
            CHECK(0, "bpe_reference.tsv: a line without 11 fields");
            continue;
        }
        char *text = NULL;
        size_t tl_ = 0;
        if (!strncmp(f[0], "case:", 5)) {
            int k = atoi(f[0] + 5);
            if (k < 0 || k >= cases->n) continue;
            text = qh_malloc(cases->len[k] + 1);
            memcpy(text, cases->text[k], cases->len[k] + 1);
            tl_ = cases->len[k];
        } else if (!strncmp(f[0], "c4:", 3)) {
            int d;
            size_t st, ln;
            if (sscanf(f[0] + 3, "%d:%zu:%zu", &d, &st, &ln) != 3) continue;
            json_t *doc = json_object_get(json_array_get(docs, (size_t)d), "text");
            if (!doc || st + ln > json_string_length(doc)) continue;
            text = qh_malloc(ln + 1);
            memcpy(text, json_string_value(doc) + st, ln);
            text[ln] = '\0';
            tl_ = ln;
            nc4++;
            ninvalid += !u8_valid(text, ln);
        } else if (!strncmp(f[0], "hex:", 4)) {
            text = unhex(f[0] + 4, &tl_);
        } else {
            continue;
        }
        nlines++;
        size_t fixed_len;
        char *fixed = u8_repair(text, tl_, &fixed_len); /* what the library was given */
        for (int k = 0; k < 2; k++) {
            char **g = f + 1 + 5 * k;
            int *ids;
            size_t n;
            char h[17], dk[17], ds[17];
            int rc = tokenizer_encode(ts[k], text, tl_, 1, 0, &ids, &n);
            if (rc == 0) sha16(ids, n * sizeof(int), h); /* int32 little-endian on this host */
            if (rc != 0 || (size_t)atol(g[0]) != n || strcmp(h, g[1]) != 0) {
                if (nbad_ids[k]++ < 5) {
                    fprintf(stderr, "FAIL bpe_reference %s %s: %zu ids, expected %s:", k ? "qwen3" : "llama3", f[0], n, g[0]);
                    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
                    fprintf(stderr, "\n");
                }
                free(ids);
                continue;
            }
            char *keep, *dec;
            size_t kl, dl;
            hf_tok_decode(ts[k]->hf, ids, n, 0, &keep, &kl);
            hf_tok_decode(ts[k]->hf, ids, n, 1, &dec, &dl);
            sha16(keep, kl, dk);
            sha16(dec, dl, ds);
            if (strcmp(dk, g[2]) || strcmp(ds, g[3])) {
                if (nbad_dec[k]++ < 5) fprintf(stderr, "FAIL bpe_reference %s %s: decode differs\n", k ? "qwen3" : "llama3", f[0]);
            }
            if (g[4][0] == '1') {
                nrt[k]++;
                nbad_rt[k] += !(dl == fixed_len && !memcmp(dec, fixed, dl));
            }
            free(keep);
            free(dec);
            free(ids);
        }
        free(fixed);
        free(text);
    }
    CHECK(nlines >= 390 && nc4 >= 300, "bpe_reference.tsv: %d texts rebuilt (%d C4 slices; data/ holds C4?)", nlines, nc4);
    CHECK(ninvalid >= 50, "%d of the C4 slices are invalid UTF-8 (the cuts at arbitrary bytes)", ninvalid);
    for (int k = 0; k < 2; k++) {
        const char *nm = k ? "qwen3" : "llama3";
        CHECK(nbad_ids[k] == 0, "%s: %d of %d reference texts give other ids than the library", nm, nbad_ids[k], nlines);
        CHECK(nbad_dec[k] == 0, "%s: %d of %d decodes differ from the library's", nm, nbad_dec[k], nlines);
        CHECK(nrt[k] > 350 && nbad_rt[k] == 0, "%s: decode(encode(s)) == s for %d of the %d texts where the library says so",
              nm, nrt[k] - nbad_rt[k], nrt[k]);
    }
    json_decref(docs);
    free(c4raw);
    free(tsv);
}

static void test_generation_helpers(const Tokenizer *tl, const Tokenizer *tq) {
    CHECK(tl->kind == TOKENIZER_HF_JSON && !strcmp(tokenizer_kind_name(tl), "tokenizer.json (BPE)"), "kind");
    CHECK(tl->vocab_size == 128257 && tq->vocab_size == 151669, "ids: llama3 %d (128000 + 257 added, <|image|> last), qwen3 %d (151643 + 26)",
          tl->vocab_size, tq->vocab_size);
    CHECK(tokenizer_start_token(tl) == 128000 && tokenizer_start_token(tq) == 151643,
          "generate starts from <|begin_of_text|> / <|endoftext|>: %d %d", tokenizer_start_token(tl),
          tokenizer_start_token(tq));
    CHECK(tokenizer_is_stop(tl, 128001) && tokenizer_is_stop(tq, 151645) && !tokenizer_is_stop(tl, 9906),
          "special tokens stop generation, ordinary ones do not");
    CHECK(tokenizer_lookup(tl, "\xc4\xa0the", 5) == 279 && tokenizer_lookup(tl, "<|eot_id|>", 10) == 128009 &&
              tokenizer_lookup(tq, "nope-not-a-token", 16) == -1,
          "lookup by token string: 'Ġthe' %d, <|eot_id|> %d", tokenizer_lookup(tl, "\xc4\xa0the", 5),
          tokenizer_lookup(tl, "<|eot_id|>", 10));
    /* per-token bytes (generate's streaming output) concatenate to the text, even
     * where a token holds part of a UTF-8 character */
    const char *s = " caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80\xf0\x9f\x91\x8d!";
    const Tokenizer *ts[2] = {tl, tq};
    for (int k = 0; k < 2; k++) {
        int *ids;
        size_t n;
        tokenizer_encode(ts[k], s, strlen(s), 0, 0, &ids, &n);
        char out[256] = "";
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            const char *p = tokenizer_decode(ts[k], i ? ids[i - 1] : -1, ids[i]);
            size_t pl = strlen(p);
            if (o + pl < sizeof out) memcpy(out + o, p, pl), o += pl;
        }
        out[o] = '\0';
        CHECK(!strcmp(out, s), "%s: per-token bytes concatenate to the text (%zu ids)", k ? "qwen3" : "llama3", n);
        free(ids);
    }
    int *ids;
    size_t n;
    CHECK(tokenizer_encode(tl, "x", 1, 1, 1, &ids, &n) == -1, "eos with a tokenizer.json is refused");
    CHECK(tokenizer_encode(tl, "", 0, 1, 0, &ids, &n) == 0 && n == 1 && ids[0] == 128000, "empty text: just the BOS");
    free(ids);
    CHECK(tokenizer_encode(tq, "", 0, 1, 0, &ids, &n) == 0 && n == 0, "empty text, qwen3: nothing");
    free(ids);
    char *d;
    size_t dl;
    int bad_id = 200000;
    CHECK(tokenizer_decode_text(tq, &bad_id, 1, &d, &dl) == -1, "decode of an id outside the file is refused");
}

/* ---- the small files of our own --------------------------------------------------------- */

static void test_synth(void) {
    char *tsv;
    size_t len;
    if (qh_read_file("tests/fixtures/bpe_synth_reference.tsv", &tsv, &len) != 0) {
        SKIP("tests/fixtures/bpe_synth_reference.tsv not found (run from the repository root)");
        return;
    }
    Tokenizer t = {0};
    char cur[256] = "";
    int lines = 0, bad_ids = 0, bad_dec = 0, loaded = 0;
    char *save = NULL;
    for (char *line = strtok_r(tsv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[6];
        if (fields(line, f, 6) != 5) continue;
        if (strcmp(f[0], cur) != 0) {
            if (*cur) tokenizer_free(&t);
            snprintf(cur, sizeof cur, "%s", f[0]);
            char p[600];
            snprintf(p, sizeof p, "tests/fixtures/%s", f[0]);
            CHECK(tokenizer_load(&t, p, 0) == 0, "load %s", p);
            loaded++;
        }
        size_t tl_;
        char *text = unhex(f[1], &tl_);
        int want[4096];
        size_t nw = 0;
        for (char *c = f[2]; *c && nw < 4096;) {
            char *e;
            want[nw++] = (int)strtol(c, &e, 10);
            c = *e ? e + 1 : e;
        }
        int *ids;
        size_t n;
        char what[128];
        snprintf(what, sizeof what, "%s text %s", f[0], strlen(f[1]) > 40 ? "(long)" : f[1]);
        lines++;
        if (!t.hf || tokenizer_encode(&t, text, tl_, 1, 0, &ids, &n) != 0) {
            bad_ids++;
            free(text);
            continue;
        }
        if (!same_ids(ids, n, want, nw, what)) bad_ids++;
        char *keep, *dec;
        size_t kl, dl, xl;
        hf_tok_decode(t.hf, want, nw, 0, &keep, &kl);
        hf_tok_decode(t.hf, want, nw, 1, &dec, &dl);
        char *xd = !strcmp(f[4], "=") ? unhex(f[1], &xl) : unhex(f[4], &xl);
        size_t xkl = 0;
        char *xk = !strcmp(f[3], "=") ? NULL : unhex(f[3], &xkl);
        int ok = dl == xl && !memcmp(dec, xd, dl) &&
                 (xk ? kl == xkl && !memcmp(keep, xk, kl) : (kl == dl && !memcmp(keep, dec, dl)));
        if (!ok && bad_dec++ < 5) fprintf(stderr, "FAIL %s: decode '%s' / '%s'\n", what, dec, keep);
        free(xd);
        free(xk);
        free(keep);
        free(dec);
        free(ids);
        free(text);
    }
    if (*cur) tokenizer_free(&t);
    CHECK(loaded == 3 && lines >= 200, "synth: %d files, %d texts", loaded, lines);
    CHECK(bad_ids == 0, "synth: %d of %d texts give other ids than the library", bad_ids, lines);
    CHECK(bad_dec == 0, "synth: %d of %d decodes differ from the library's", bad_dec, lines);
    free(tsv);
}

/* ---- bad files ------------------------------------------------------------------------ */

/* A small valid tokenizer.json; the bad-input cases edit it. */
static const char *base_json =
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"
    " \"added_tokens\": [{\"id\": 6, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
    " \"normalized\": false, \"special\": true}],\n"
    " \"normalizer\": {\"type\": \"NFC\"},\n"
    " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
    "\"\\\\p{L}+|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"Digits\", \"individual_digits\": true}]},\n"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [6],"
    " \"tokens\": [\"<s>\"]}}},\n"
    " \"decoder\": {\"type\": \"Fuse\"},\n"
    " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null,"
    " \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": false,\n"
    "  \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \" \": 3, \"1\": 4, \"aba\": 5},\n"
    "  \"merges\": [\"a b\", \"ab a\"]}}\n";

/* src with `from` replaced by `to` (must occur); allocated. */
static char *edit_in(const char *src, const char *from, const char *to) {
    const char *at = strstr(src, from);
    if (!at) {
        fprintf(stderr, "test bug: '%s' not in the base file\n", from);
        abort();
    }
    size_t n = strlen(src) - strlen(from) + strlen(to);
    char *o = qh_malloc(n + 1);
    size_t k = (size_t)(at - src);
    memcpy(o, src, k);
    strcpy(o + k, to);
    strcat(o, at + strlen(from));
    return o;
}
static char *edit(const char *from, const char *to) { return edit_in(base_json, from, to); }

/* Loading `json` (as the file "bad/tokenizer.json") must fail and the message name the file and `path_part`. */
static void refused(const char *what, char *json, int max_ids, const char *path_part) {
    Tokenizer t;
    cap_begin_in(tmp);
    int rc = tokenizer_load_hf_buffer(&t, json, strlen(json), max_ids, "bad/tokenizer.json");
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, "bad/tokenizer.json") && strstr(err, path_part), "%s: rc %d, message '%s' should name %s",
          what, rc, err, path_part);
    if (rc == 0) tokenizer_free(&t);
    free(err);
    free(json);
}

static void test_bad_files(void) {
    Tokenizer t;
    char *ok = edit("", "");
    CHECK(tokenizer_load_hf_buffer(&t, ok, strlen(ok), 0, "good.json") == 0, "the base file loads");
    int *ids;
    size_t n;
    if (t.hf) {
        CHECK(tokenizer_encode(&t, "aba b1", 6, 1, 0, &ids, &n) == 0 && n == 5 && ids[0] == 6 && ids[1] == 5 && ids[2] == 3 &&
                  ids[3] == 1 && ids[4] == 4,
              "base file: <s> aba ' ' b 1 (n %zu)", n);
        free(ids);
        tokenizer_free(&t);
    }
    free(ok);
    /* truncated and invalid JSON */
    size_t cut = strlen(base_json) / 2;
    char *trunc = qh_malloc(cut + 1);
    memcpy(trunc, base_json, cut);
    trunc[cut] = '\0';
    refused("truncated JSON", trunc, 0, "not valid JSON");
    refused("invalid JSON", edit("\"a\": 0", "\"a\": 0,,"), 0, "not valid JSON");
    refused("unknown model type", edit("\"type\": \"BPE\"", "\"type\": \"WordPiece\""), 0, "model.type");
    refused("unknown pre-tokenizer", edit("{\"type\": \"Digits\", \"individual_digits\": true}", "{\"type\": \"Whitespace\"}"), 0,
            "pre_tokenizer.pretokenizers[1].type");
    refused("unknown normalizer", edit("{\"type\": \"NFC\"}", "{\"type\": \"NFKC\"}"), 0, "normalizer.type");
    refused("unknown decoder", edit("{\"type\": \"Fuse\"}", "{\"type\": \"WordPiece\"}"), 0, "decoder.type");
    refused("unknown post-processor", edit("\"TemplateProcessing\"", "\"RobertaProcessing\""), 0, "post_processor.type");
    refused("unknown key", edit("\"invert\": false", "\"invert\": false, \"flavour\": 1"), 0,
            "pre_tokenizer.pretokenizers[0].flavour");
    refused("merge naming a token not in the vocabulary", edit("\"ab a\"", "\"ab c\""), 0, "model.merges[1]");
    refused("merge whose result is not in the vocabulary", edit("\"aba\": 5", "\"abx\": 5"), 0, "model.merges[1]");
    refused("merge without a space", edit("\"ab a\"", "\"aba\""), 0, "model.merges[1]");
    refused("merges of both forms", edit("\"ab a\"", "[\"ab\", \"a\"]"), 0, "model.merges[1]");
    refused("invalid regex", edit("\\\\p{L}+|\\\\s+", "[a-"), 0, "pre_tokenizer.pretokenizers[0].pattern.Regex");
    refused("regex construct that differs between engines", edit("\\\\p{L}+|\\\\s+", "\\\\w+"), 0,
            "pre_tokenizer.pretokenizers[0].pattern.Regex");
    refused("vocabulary id out of range", edit("\"aba\": 5", "\"aba\": 9"), 0, "model.vocab[\"aba\"]");
    refused("negative vocabulary id", edit("\"aba\": 5", "\"aba\": -1"), 0, "model.vocab[\"aba\"]");
    refused("duplicated vocabulary id", edit("\"aba\": 5", "\"aba\": 2"), 0, "model.vocab[\"a");
    refused("duplicated vocabulary key", edit("\"aba\": 5", "\"ab\": 5"), 0, "not valid JSON");
    refused("vocabulary that does not fit the model's embedding table", edit("", ""), 6, "added_tokens[0].id");
    {
        char *no_bos = edit("\"ids\": [6]", "\"ids\": [5]");
        char *no_added = edit_in(no_bos, "\"added_tokens\": [{", "\"added_tokens\": [], \"x\": [{");
        free(no_bos);
        char *fixed = edit_in(no_added, "\"x\": [{\"id\": 6, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, "
                                        "\"rstrip\": false, \"normalized\": false, \"special\": true}],", "");
        free(no_added);
        no_added = fixed;
        refused("vocabulary id beyond the embedding table", no_added, 5, "model.vocab[\"aba\"]");
    }
    refused("added token whose id is not the library's", edit("\"id\": 6,", "\"id\": 7,"), 0, "added_tokens[0].id");
    refused("template naming an unknown special token", edit("{\"SpecialToken\": {\"id\": \"<s>\"", "{\"SpecialToken\": {\"id\": \"<t>\""),
            0, "post_processor.single[0].SpecialToken.id");
    refused("truncation", edit("\"truncation\": null", "\"truncation\": {\"max_length\": 512}"), 0, "truncation");
    refused("dropout", edit("\"dropout\": null", "\"dropout\": 0.1"), 0, "model.dropout");
    refused("version", edit("\"1.0\"", "\"2.0\""), 0, "version");
    refused("not an object", qh_strdup("[1, 2]"), 0, "top level");
    refused("Metaspace with two characters", edit("{\"type\": \"Fuse\"}", "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}"), 0,
            "decoder.replacement");
    /* a missing file */
    cap_begin_in(tmp);
    int rc = tokenizer_load(&t, "/nonexistent/tokenizer.json", 0);
    char *err = cap_end();
    CHECK(rc == -1 && strstr(err, "/nonexistent/tokenizer.json"), "a missing file is refused by name: %s", err);
    free(err);
}

/* ---- fuzz ------------------------------------------------------------------------------ */

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL test_tokenizer_hf.c: fuzz did not finish within the watchdog limit (hang?)\n";
    if (write(cap_saved_fd >= 0 ? cap_saved_fd : 2, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(2);
}

static void test_fuzz(void) {
    static const char *const dict[] = {"{", "}", "[", "]", "\"", ",", ":", "null", "true", "false", "-1", "0", "7",
                                       "4294967296", "\"BPE\"", "\"Split\"", "\"Regex\"", "\"String\"", "\\\\", "\\u0000",
                                       "(?", "[^", "\\\\p{", "\"Sequence\"", "\"type\"", "\"Metaspace\"", "\"ByteLevel\"",
                                       "\"Replace\"", "\"Strip\"", "\"ids\"", "\xff", " ", "\"a b\"", "\"ab\""};
    /* the seeds: the base file and the three small files of our own (every component) */
    const char *seeds[4] = {base_json, NULL, NULL, NULL};
    size_t lens[4] = {strlen(base_json), 0, 0, 0}, cap = lens[0];
    char *own[3] = {NULL, NULL, NULL};
    int nseeds = 1;
    for (int k = 0; k < 3; k++) {
        char p[64];
        snprintf(p, sizeof p, "tests/fixtures/bpe_synth_%c.json", 'a' + k);
        if (qh_read_file(p, &own[k], &lens[nseeds]) != 0) continue;
        seeds[nseeds] = own[k];
        if (lens[nseeds] > cap) cap = lens[nseeds];
        nseeds++;
    }
    cap += 8192;
    long nfuzz = 1500;
    if (getenv("QH_FUZZ_N")) qh_parse_long(getenv("QH_FUZZ_N"), &nfuzz);
    unsigned char *buf = qh_malloc(cap);
    Fuzz fz;
    fuzz_init(&fz, 777, dict, sizeof dict / sizeof dict[0]);
    int accepted = 0, bad_rc = 0, encoded = 0;
    const char *texts[] = {"aba b1 <s>", "hello world 123 \xc3\xa9\xe2\x96\x81 foo<x> <r>  |x", "\xff\xfe broken \xe4\xbd", ""};
    signal(SIGALRM, on_alarm);
    alarm(300);
    double t0 = qh_now();
    cap_begin_in(tmp);
    for (long it = 0; it < nfuzz; it++) {
        int which = (int)(it % nseeds);
        size_t n = lens[which];
        memcpy(buf, seeds[which], n);
        /* half the time only the part before "model" (normalizer, pre-tokenizers,
         * post-processor, decoder): the mutations then reach encoding more often */
        const char *model = strstr(seeds[which], "\"model\"");
        size_t hi = it % 4 < 2 && model ? (size_t)(model - seeds[which]) : n;
        for (int k = 1 + (int)fuzz_range(&fz, 3); k-- > 0;) fuzz_mutate(&fz, buf, &n, cap, 0, hi);
        Tokenizer t;
        int rc = tokenizer_load_hf_buffer(&t, (const char *)buf, n, (int)fuzz_range(&fz, 2) ? 0 : 600, "fuzz.json");
        bad_rc += rc != 0 && rc != -1;
        if (rc == 0) {
            accepted++;
            for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
                int *ids;
                size_t m;
                if (tokenizer_encode(&t, texts[k], strlen(texts[k]), 1, 0, &ids, &m) == 0) {
                    encoded++;
                    char *d;
                    size_t dl;
                    if (tokenizer_decode_text(&t, ids, m, &d, &dl) == 0) free(d);
                    free(ids);
                }
            }
            tokenizer_free(&t);
        }
    }
    char *err = cap_end();
    alarm(0);
    double dt = qh_now() - t0;
    CHECK(bad_rc == 0, "fuzz: %d loads returned something other than 0 or -1", bad_rc);
    CHECK(accepted > 0 && accepted < nfuzz, "fuzz: %d of %ld mutated files accepted (some, not all)", accepted, nfuzz);
    printf("fuzz: %ld mutated tokenizer.json files (%d accepted, %d texts encoded and decoded with them) in %.2f s\n", nfuzz,
           accepted, encoded, dt);
    free(err);
    free(buf);
    for (int k = 0; k < 3; k++) free(own[k]);
}

/* Structured fuzz: the settings of the small files of our own changed at
 * random (booleans flipped, behaviors, schemes, patterns and contents drawn
 * from lists, numbers changed, pipeline steps swapped; the model and the
 * added tokens kept), so that most files load and the encoders and decoders
 * run on odd combinations of components. */
static json_t *new_setting(Fuzz *fz, const char *key, const json_t *old) {
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    static const char *const schemes[] = {"always", "first", "never"};
    static const char *const regexes[] = {"\\s+", "\\p{L}+|\\p{N}", "(?i:'s|'t)|[^\\s\\p{L}]+", "a*", "$|^", "(?=x)",
                                          "\\S+(?!\\S)", "\\d", ".", "[\\s\\x{85}]", "x?"};
    static const char *const texts[] = {"", " ", "\xe2\x96\x81", "ab", "<s>", "\xc3\xa9", "--", "\n"};
    static const char *const reps[] = {"\xe2\x96\x81", "_", " ", "\xc3\xa9"};
#define PICK(a) a[fuzz_range(fz, sizeof a / sizeof a[0])]
    if (json_is_boolean(old)) return json_boolean(!json_is_true(old));
    if (json_is_integer(old)) return json_integer((json_int_t)fuzz_range(fz, 4));
    if (!key || !json_is_string(old)) return NULL;
    if (!strcmp(key, "behavior")) return json_string(PICK(behaviors));
    if (!strcmp(key, "prepend_scheme")) return json_string(PICK(schemes));
    if (!strcmp(key, "Regex")) return json_string(PICK(regexes));
    if (!strcmp(key, "String") || !strcmp(key, "content") || !strcmp(key, "prepend")) return json_string(PICK(texts));
    if (!strcmp(key, "replacement")) return json_string(PICK(reps));
#undef PICK
    return NULL;
}

static int fixed_key(const char *k) {
    return !strcmp(k, "type") || !strcmp(k, "id") || !strcmp(k, "type_id") || !strcmp(k, "ids") || !strcmp(k, "tokens") ||
           !strcmp(k, "version") || !strcmp(k, "model") || !strcmp(k, "added_tokens") || !strcmp(k, "special_tokens");
}

static void mutate_settings(Fuzz *fz, json_t *v) {
    if (json_is_object(v)) {
        const char *keys[64];
        int nk = 0;
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) if (nk < 64) keys[nk++] = k;
        for (int i = 0; i < nk; i++) {
            if (fixed_key(keys[i])) continue;
            x = json_object_get(v, keys[i]);
            json_t *nv;
            if (json_is_object(x) || json_is_array(x)) mutate_settings(fz, x);
            else if (fuzz_range(fz, 3) == 0 && (nv = new_setting(fz, keys[i], x))) json_object_set_new(v, keys[i], nv);
        }
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n > 1 && fuzz_range(fz, 3) == 0) { /* two steps swapped */
            size_t a = fuzz_range(fz, n), b = fuzz_range(fz, n);
            json_t *x = json_incref(json_array_get(v, a)), *y = json_incref(json_array_get(v, b));
            json_array_set_new(v, a, y);
            json_array_set_new(v, b, x);
        }
        for (size_t i = 0; i < json_array_size(v); i++) mutate_settings(fz, json_array_get(v, i));
    }
}

static void test_fuzz_settings(void) {
    const char *texts[] = {"Hello wiki world 123 -- x--y", "  a|b <s> </s> <mask> foo <x> <r>  \xe2\x96\x81z",
                           "\xe4\xbd\xa0\xe5\xa5\xbd caf\xc3\xa9 e\xcc\x81 \xf0\x9f\x98\x80", "\xff\xfe\x80 broken", ""};
    json_t *seeds[3];
    int ns = 0;
    for (int k = 0; k < 3; k++) {
        char p[64];
        snprintf(p, sizeof p, "tests/fixtures/bpe_synth_%c.json", 'a' + k);
        json_t *j = json_load_file(p, 0, NULL);
        if (j) seeds[ns++] = j;
    }
    if (!ns) {
        SKIP("tests/fixtures/bpe_synth_*.json not found");
        return;
    }
    long n = 1500;
    if (getenv("QH_FUZZ_N")) qh_parse_long(getenv("QH_FUZZ_N"), &n);
    n /= 3;
    Fuzz fz;
    fuzz_init(&fz, 99, NULL, 0);
    int accepted = 0, bad_rc = 0, encoded = 0;
    double t0 = qh_now();
    cap_begin_in(tmp);
    for (long it = 0; it < n; it++) {
        json_t *j = json_deep_copy(seeds[it % ns]);
        mutate_settings(&fz, j);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        Tokenizer t;
        int rc = tokenizer_load_hf_buffer(&t, text, strlen(text), 0, "fuzz-settings.json");
        free(text);
        bad_rc += rc != 0 && rc != -1;
        if (rc != 0) continue;
        accepted++;
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
            int *ids;
            size_t m;
            if (tokenizer_encode(&t, texts[k], strlen(texts[k]), 1, 0, &ids, &m) != 0) continue;
            encoded++;
            char *d;
            size_t dl;
            if (tokenizer_decode_text(&t, ids, m, &d, &dl) == 0) free(d);
            for (size_t i = 0; i < m; i++) tokenizer_decode(&t, i ? ids[i - 1] : -1, ids[i]);
            free(ids);
        }
        tokenizer_free(&t);
    }
    char *err = cap_end();
    CHECK(bad_rc == 0, "settings fuzz: %d loads returned something other than 0 or -1", bad_rc);
    CHECK(accepted > n / 4, "settings fuzz: %d of %ld changed files load (most should)", accepted, n);
    printf("fuzz: %ld tokenizer.json files with changed settings (%d accepted, %d texts encoded and decoded) in %.2f s\n",
           n, accepted, encoded, qh_now() - t0);
    free(err);
    for (int k = 0; k < ns; k++) json_decref(seeds[k]);
}

/* Random texts from hard fragments (special tokens, partial UTF-8, combining
 * marks, whitespace runs, digits) through both real files: byte-level BPE
 * loses nothing, so decode(encode(s)) without the BOS is the repaired text
 * for Llama-3 and its NFC for Qwen3 (QH_FUZZ_N / 5 texts, at least 200). */
static void test_random_texts(const Tokenizer *tl, const Tokenizer *tq) {
    static const char *const frag[] = {"<|begin_of_text|>", "<|endoftext|>", "<|im_start|>", "<|eot_id|>", "<|", "|>",
                                       " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "\xc2\xa0", "\xc2\x85", "e\xcc\x81",
                                       "\xe2\x84\xab", "\xe1\x84\x80\xe1\x85\xa1", "\xe4\xbd\xa0\xe5\xa5\xbd",
                                       "\xf0\x9f\x98\x80", "\xf0\x9f", "\xe4\xbd", "\xff", "\x80", "'s", "'LL", "123",
                                       "4567", "\xd9\xa3", "the", " the", "Hello", "don't", ".", "...", "!?", "_", "\x00",
                                       "\xe2\x80\x8b", "\xef\xbb\xbf", "A", "z", "\xf0\x9d\x90\x80", "\xed\xa0\x80"};
    long n = 1500;
    if (getenv("QH_FUZZ_N")) qh_parse_long(getenv("QH_FUZZ_N"), &n);
    n = n / 5 > 200 ? n / 5 : 200;
    Fuzz fz;
    fuzz_init(&fz, 4242, NULL, 0);
    int bad[2] = {0, 0};
    char text[2048];
    for (long it = 0; it < n; it++) {
        size_t len = 0;
        for (int k = 1 + (int)fuzz_range(&fz, 60); k-- > 0;) {
            const char *f = frag[fuzz_range(&fz, sizeof frag / sizeof frag[0])];
            size_t fl = !strcmp(f, "\x00") ? 1 : strlen(f);
            if (len + fl < sizeof text) memcpy(text + len, f, fl), len += fl;
        }
        size_t rl, nl;
        char *fixed = u8_repair(text, len, &rl), *nfc = NULL;
        if (u8_nfc(fixed, rl, &nfc, &nl) != 0) nfc = NULL;
        const Tokenizer *ts[2] = {tl, tq};
        for (int k = 0; k < 2; k++) {
            int *ids;
            size_t m;
            char *dec;
            size_t dl;
            int skip = k == 0; /* Llama-3's BOS */
            int ok = tokenizer_encode(ts[k], text, len, 1, 0, &ids, &m) == 0 &&
                     tokenizer_decode_text(ts[k], ids + skip, m - (size_t)skip, &dec, &dl) == 0;
            const char *want = k == 0 ? fixed : nfc;
            size_t wl = k == 0 ? rl : nl;
            if (ok) {
                ok = want && dl == wl && !memcmp(dec, want, dl);
                free(dec);
                free(ids);
            }
            if (!ok && bad[k]++ < 3) fprintf(stderr, "FAIL %s: random text %ld does not come back\n", k ? "qwen3" : "llama3", it);
        }
        free(fixed);
        free(nfc);
    }
    CHECK(bad[0] == 0, "llama3: decode(encode(s)) == repaired s for %ld random texts (%d differ)", n, bad[0]);
    CHECK(bad[1] == 0, "qwen3: decode(encode(s)) == NFC(repaired s) for %ld random texts (%d differ)", n, bad[1]);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/qh_test_tokhf_XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_bad_files();
    test_synth();
    test_fuzz();
    test_fuzz_settings();
    Tokenizer tl, tq;
    int have_l = load_real(&tl, "llama3") == 0, have_q = load_real(&tq, "qwen3") == 0;
    Cases cases;
    int have_cases = load_cases(&cases) == 0;
    if (!have_l || !have_q || !have_cases) {
        SKIP("data/tokenizers/{llama3,qwen3}/tokenizer.json or data/fixtures/bpe_cases.jsonl missing (make data)");
    } else {
        test_generation_helpers(&tl, &tq);
        test_cases(&tl, "llama3", &cases);
        test_cases(&tq, "qwen3", &cases);
        test_wikitext_valid(&tl, "llama3");
        test_wikitext_valid(&tq, "qwen3");
        test_reference(&tl, &tq, &cases);
        test_random_texts(&tl, &tq);
        test_dataset_stream(&tl, "llama3", 128000);
        test_dataset_stream(&tq, "qwen3", -1);
    }
    if (have_cases) free_cases(&cases);
    if (have_l) tokenizer_free(&tl);
    if (have_q) tokenizer_free(&tq);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return test_summary();
}
