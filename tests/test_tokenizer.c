/* test_tokenizer.c: the llama2.c tokenizer against independent expectations:
 * - ids of a few strings, computed once with a ten-line Python transcription
 *   of llama2.c run.c encode() (naive merge loop) and pasted below;
 * - the full SPEC section 7 WikiText-2 test string (rows joined with "\n\n")
 *   against data/fixtures/wikitext2_test_llama2_ids.u16, made by SentencePiece
 *   from tokenizer.model (341,469 ids);
 * - the fast encoder against the O(n^2) reference encoder on random bytes
 *   (invalid UTF-8 and NUL included), random mixed UTF-8, repeated-character
 *   runs, the first 20 KB of wiki.test.raw and the TinyStories sample, with
 *   tok512 (vocab 512) and the LLaMA-2 tokenizer (vocab 32000), with the
 *   word-by-word shortcut on and off, and with a small synthetic vocabulary
 *   that has equal scores and spaces inside pieces;
 * - decode(encode(x)) == x for valid UTF-8;
 * - load errors: missing, truncated, trailing bytes, bad lengths.
 * Also prints (no assertion) the time and token count of encoding the whole
 * wiki.test.raw with each tokenizer.
 * Not here: dataset loading/joining for evaluation (the join below is only a
 * local copy of the SPEC rule to reach the fixture). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"
#include "util.h"

static const char *data_root(void) {
    const char *d = getenv("QH_DATA");
    return d && *d ? d : "data";
}

static void data_path(char *out, size_t cap, const char *rel) { snprintf(out, cap, "%s/%s", data_root(), rel); }

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* xorshift64*: the tests' own deterministic random source (state passed in). */
static uint64_t rnd_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static size_t rnd_below(uint64_t *s, size_t n) { return (size_t)(rnd_next(s) % n); }

/* ---------------------------------------------------------------- helpers */

static int same_ids(const int *a, size_t na, const int *b, size_t nb, size_t *first_diff) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    *first_diff = i;
    return na == nb && i == na;
}

/* Fast and reference encoders agree on text (bos/eos as given). Returns 1 if equal. */
static int agree(const Tokenizer *t, const char *text, size_t len, int bos, int eos, const char *what) {
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, d = 0;
    int ra = tokenizer_encode(t, text, len, bos, eos, &a, &na);
    int rb = tokenizer_encode_ref(t, text, len, bos, eos, &b, &nb);
    int ok = ra == 0 && rb == 0 && same_ids(a, na, b, nb, &d);
    if (!ok)
        fprintf(stderr, "  %s: fast %zu ids, ref %zu ids, first difference at %zu (fast %d, ref %d)\n", what, na,
                nb, d, d < na ? a[d] : -1, d < nb ? b[d] : -1);
    free(a);
    free(b);
    return ok;
}

/* decode(encode(text with BOS)) == text. Returns 1 if equal. */
static int roundtrip(const Tokenizer *t, const char *text, size_t len, const char *what) {
    int *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(t, text, len, 1, 0, &ids, &n) != 0) return 0;
    char *out = qh_malloc(len + 1);
    size_t k = 0;
    int ok = 1;
    for (size_t i = 1; i < n && ok; i++) {
        const char *p = tokenizer_decode(t, ids[i - 1], ids[i]);
        size_t pl = p ? strlen(p) : 0;
        if (!p || k + pl > len) { ok = 0; break; }
        memcpy(out + k, p, pl);
        k += pl;
    }
    ok = ok && ids[0] == TOKENIZER_BOS && k == len && memcmp(out, text, len) == 0;
    if (!ok) fprintf(stderr, "  %s: round trip differs (%zu of %zu bytes back)\n", what, k, len);
    free(out);
    free(ids);
    return ok;
}

static int encode_is(const Tokenizer *t, const char *text, int bos, int eos, const int *want, size_t nwant,
                     const char *what) {
    int *ids = NULL;
    size_t n = 0, d = 0;
    if (tokenizer_encode(t, text, strlen(text), bos, eos, &ids, &n) != 0) return 0;
    int ok = same_ids(ids, n, want, nwant, &d);
    if (!ok) {
        fprintf(stderr, "  %s: got", what);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    free(ids);
    return ok;
}

/* Random text built from fragments that stress the segmentation and merges. */
static size_t mixed_text(uint64_t *s, char *buf, size_t cap, int valid_only) {
    static const char *frags[] = {
        "the", " the", "and", " ", "  ", "    ", "\n", "\n\n", "a", "aaaa", "ababab", "Once upon a time",
        ", ", ". ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xe4\xb8\xad\xe6\x96\x87", "\xd0\x9f\xd1\x80",
        "@-@", " = = ", "1", "9", "\t", "xyz", "Q", "<0x41>", "<s>", "\xce\xb1\xce\xb2",
        /* invalid UTF-8 below this line */
        "\x80", "\xbf\xbf", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xff", "\xc3\xa9\xa9\xa9\xa9", "\xf8\x88\x80\x80\x80",
    };
    size_t nvalid = 29, nall = sizeof frags / sizeof frags[0];
    size_t len = 0, target = rnd_below(s, cap / 8);
    while (len < target) {
        const char *f = frags[rnd_below(s, valid_only ? nvalid : nall)];
        size_t fl = strlen(f);
        if (len + fl > cap) break;
        memcpy(buf + len, f, fl);
        len += fl;
    }
    return len;
}

/* Write a llama2.c tokenizer.bin: the 3 specials, 256 byte tokens, then extra pieces. */
static int write_tokenizer_file(const char *path, const char *const *pieces, const float *scores, int n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t mtl = 6;
    for (int i = 0; i < n; i++) if ((int32_t)strlen(pieces[i]) > mtl) mtl = (int32_t)strlen(pieces[i]);
    fwrite(&mtl, 4, 1, f);
    for (int i = 0; i < 259 + n; i++) {
        char tmp[16];
        const char *p;
        float sc = 0.0f;
        if (i == 0) p = "<unk>";
        else if (i == 1) p = "\n<s>\n";
        else if (i == 2) p = "\n</s>\n";
        else if (i < 259) { snprintf(tmp, sizeof tmp, "<0x%02X>", i - 3); p = tmp; }
        else { p = pieces[i - 259]; sc = scores[i - 259]; }
        int32_t l = (int32_t)strlen(p);
        fwrite(&sc, 4, 1, f);
        fwrite(&l, 4, 1, f);
        fwrite(p, 1, (size_t)l, f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int make_temp(char *path, size_t cap) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/qh_test_tok_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* ------------------------------------------------------------------ tests */

static void test_load_errors(const char *tok512) {
    Tokenizer t;
    fprintf(stderr, "(error messages about bad tokenizer files are expected below)\n");
    CHECK(tokenizer_load(&t, "/nonexistent/qh_tokenizer.bin", 0) == -1, "missing file must fail");
    CHECK(t.vocab == NULL && t.vocab_size == 0, "failed load leaves an empty tokenizer");
    tokenizer_free(&t); /* harmless on an empty one */

    char *buf;
    size_t size;
    if (qh_read_file(tok512, &buf, &size) != 0) {
        CHECK(0, "cannot read %s", tok512);
        return;
    }
    CHECK(size == 6227, "tok512.bin is %zu bytes, MANIFEST says 6227", size);
    char tmp[4096];
    if (make_temp(tmp, sizeof tmp) != 0) {
        CHECK(0, "mkstemp failed: %s", strerror(errno));
        free(buf);
        return;
    }
    /* Truncations: inside the header, inside a token's score/length, inside a piece, last byte. */
    size_t cuts[] = {0, 2, 4 + 5, 4 + 8 + 2, size / 2, size - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        CHECK(write_bytes(tmp, buf, cuts[c]) == 0, "write temp");
        CHECK(tokenizer_load(&t, tmp, 0) == -1, "truncated to %zu bytes must fail (read to EOF)", cuts[c]);
        CHECK(tokenizer_load(&t, tmp, 512) == -1, "truncated to %zu bytes must fail (vocab_size 512)", cuts[c]);
    }
    /* The intact file: EOF mode and exact count work; wrong counts fail. */
    CHECK(write_bytes(tmp, buf, size) == 0, "write temp");
    CHECK(tokenizer_load(&t, tmp, 512) == 0 && t.vocab_size == 512, "exact vocab_size 512 loads");
    tokenizer_free(&t);
    CHECK(tokenizer_load(&t, tmp, 511) == -1, "vocab_size 511 must fail (trailing bytes)");
    CHECK(tokenizer_load(&t, tmp, 513) == -1, "vocab_size 513 must fail (file ends early)");
    CHECK(tokenizer_load(&t, tmp, 200) == -1, "vocab_size 200 must fail (trailing bytes)");
    /* Trailing garbage after a whole vocabulary, read to EOF: a partial token. */
    char *longer = qh_malloc(size + 3);
    memcpy(longer, buf, size);
    memcpy(longer + size, "abc", 3);
    CHECK(write_bytes(tmp, longer, size + 3) == 0, "write temp");
    CHECK(tokenizer_load(&t, tmp, 0) == -1, "3 trailing bytes must fail");
    CHECK(tokenizer_load(&t, tmp, 512) == -1, "3 trailing bytes must fail with vocab_size 512");
    free(longer);
    /* Token 0's length field set to 100 > max_token_length 7. */
    char *bad = qh_malloc(size);
    memcpy(bad, buf, size);
    int32_t big = 100;
    memcpy(bad + 8, &big, 4);
    CHECK(write_bytes(tmp, bad, size) == 0, "write temp");
    CHECK(tokenizer_load(&t, tmp, 0) == -1, "length > max_token_length must fail");
    /* Negative max_token_length. */
    memcpy(bad, buf, size);
    int32_t neg = -7;
    memcpy(bad, &neg, 4);
    CHECK(write_bytes(tmp, bad, size) == 0, "write temp");
    CHECK(tokenizer_load(&t, tmp, 0) == -1, "negative max_token_length must fail");
    free(bad);
    /* Too few tokens for the byte fallback: the first 100 tokens only. */
    size_t off = 4;
    for (int i = 0; i < 100; i++) {
        int32_t l;
        memcpy(&l, buf + off + 4, 4);
        off += 8 + (size_t)l;
    }
    CHECK(write_bytes(tmp, buf, off) == 0, "write temp");
    CHECK(tokenizer_load(&t, tmp, 0) == -1, "a 100-token vocabulary must fail");
    fprintf(stderr, "(end of expected error messages)\n");
    unlink(tmp);
    free(buf);
}

static void test_known_ids(const Tokenizer *t512, const Tokenizer *tl2) {
    /* Expected ids obtained once with a throwaway Python 3 transcription of
     * run.c encode() (read tokenizer.bin with struct; dict piece -> first id;
     * dummy " "; codepoint grouping on the next byte being 10xxxxxx with < 4
     * held; byte fallback b + 3; loop: scan all pairs, first strictly best
     * score > -1e10, merge, repeat), run on the two tokenizer files.
     * Piece strings are shown for reading. */
    const char *hello = "Hello, world! \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n";
    if (t512) {
        /* <s> " Once" " upon" " a" " time" */
        static const int once[] = {1, 403, 407, 261, 378};
        CHECK(encode_is(t512, "Once upon a time", 1, 0, once, 5, "tok512 once"), "tok512: \"Once upon a time\"");
        static const int once_eos[] = {403, 407, 261, 378, 2};
        CHECK(encode_is(t512, "Once upon a time", 0, 1, once_eos, 5, "tok512 once eos"),
              "tok512: \"Once upon a time\" without BOS, with EOS");
        /* " He" "ll" "o" "," " w" "or" "ld" "!" " " "é" "t" "é" " " "€" " " <0xF0><0x9F><0x98><0x80> <0x0A> */
        static const int h512[] = {1, 346, 306, 414, 432, 263, 304, 341, 443, 410, 485,
                                   413, 485, 410, 503, 410, 243, 162, 155, 131, 13};
        CHECK(encode_is(t512, hello, 1, 0, h512, 21, "tok512 hello"), "tok512: hello string");
        /* Grouping quirks of run.c: a 4-byte codepoint not in the vocabulary,
         * "é" followed by a stray continuation byte (grouped into one unknown
         * 3-byte string, so 3 byte tokens), "“" plus two stray continuation
         * bytes (4 bytes held, then 1), a run of 5 stray continuation bytes. */
        static const int q1[] = {1, 261, 243, 162, 143, 144, 268};
        CHECK(encode_is(t512, "a\xf0\x9f\x8c\x8d b", 1, 0, q1, 7, "tok512 q1"), "tok512: 4-byte codepoint");
        static const int q2[] = {1, 280, 412, 431, 198, 172, 172, 444, 410, 485};
        CHECK(encode_is(t512, "caf\xc3\xa9\xa9x \xc3\xa9", 1, 0, q2, 10, "tok512 q2"), "tok512: stray continuation");
        static const int q3[] = {1, 410, 229, 131, 159, 131, 131, 422, 465};
        CHECK(encode_is(t512, "\xe2\x80\x9c\x80\x80y\xe2\x80\x9c", 1, 0, q3, 9, "tok512 q3"), "tok512: 4-byte group cap");
        static const int q4[] = {1, 410, 131, 131, 131, 131, 131, 412};
        CHECK(encode_is(t512, "\x80\x80\x80\x80\x80" "a", 1, 0, q4, 8, "tok512 q4"), "tok512: leading continuation bytes");
        static const int bos_only[] = {1};
        CHECK(encode_is(t512, "", 1, 0, bos_only, 1, "tok512 empty"), "tok512: empty text gives BOS only");
        int *ids = (int *)1;
        size_t n = 99;
        CHECK(tokenizer_encode(t512, NULL, 0, 0, 0, &ids, &n) == 0 && n == 0, "empty text, no BOS/EOS: 0 ids");
        free(ids);
        CHECK(tokenizer_encode(t512, NULL, 5, 0, 0, &ids, &n) == -1, "NULL text with length 5 must fail");

        /* decode */
        const char *p = tokenizer_decode(t512, 1, 403);
        CHECK(p && strcmp(p, "Once") == 0, "decode after BOS drops the space: got \"%s\"", p ? p : "(null)");
        p = tokenizer_decode(t512, 403, 407);
        CHECK(p && strcmp(p, " upon") == 0, "decode keeps the space otherwise: got \"%s\"", p ? p : "(null)");
        p = tokenizer_decode(t512, 5, 13);
        CHECK(p && strcmp(p, "\n") == 0, "<0x0A> decodes to a newline");
        p = tokenizer_decode(t512, 5, 3 + 0xF0);
        CHECK(p && (unsigned char)p[0] == 0xF0 && p[1] == 0, "<0xF0> decodes to the raw byte");
        p = tokenizer_decode(t512, 5, 3);
        CHECK(p && p[0] == 0, "<0x00> decodes to an empty C string");
        CHECK(tokenizer_decode(t512, 1, 512) == NULL, "decode of id 512 (out of range) fails");
        CHECK(tokenizer_decode(t512, 1, -1) == NULL, "decode of id -1 fails");
        CHECK(tokenizer_lookup(t512, " Once", 5) == 403 && tokenizer_lookup(t512, "<0x41>", 6) == 68 &&
                  tokenizer_lookup(t512, "Oncx", 4) == -1,
              "lookup of known and unknown pieces");
    }
    if (tl2) {
        /* <s> " Once" " upon" " a" " time" */
        static const int once[] = {1, 9038, 2501, 263, 931};
        CHECK(encode_is(tl2, "Once upon a time", 1, 0, once, 5, "llama2 once"), "llama2: \"Once upon a time\"");
        /* " Hello" "," " world" "!" " été" " €" " " <0xF0><0x9F><0x98><0x80> <0x0A> */
        static const int hl2[] = {1, 15043, 29892, 3186, 29991, 4370, 25540, 29871, 243, 162, 155, 131, 13};
        CHECK(encode_is(tl2, hello, 1, 0, hl2, 13, "llama2 hello"), "llama2: hello string");
        /* The same grouping cases; here the 4-byte codepoint is a piece (31494). */
        static const int q1[] = {1, 263, 31494, 289};
        CHECK(encode_is(tl2, "a\xf0\x9f\x8c\x8d b", 1, 0, q1, 4, "llama2 q1"), "llama2: 4-byte codepoint piece");
        static const int q2[] = {1, 274, 2142, 198, 172, 172, 29916, 904};
        CHECK(encode_is(tl2, "caf\xc3\xa9\xa9x \xc3\xa9", 1, 0, q2, 8, "llama2 q2"), "llama2: stray continuation");
        static const int q3[] = {1, 29871, 229, 131, 159, 131, 131, 29891, 30015};
        CHECK(encode_is(tl2, "\xe2\x80\x9c\x80\x80y\xe2\x80\x9c", 1, 0, q3, 9, "llama2 q3"), "llama2: 4-byte group cap");
        static const int q4[] = {1, 29871, 131, 131, 131, 131, 131, 29874};
        CHECK(encode_is(tl2, "\x80\x80\x80\x80\x80" "a", 1, 0, q4, 8, "llama2 q4"), "llama2: leading continuation bytes");
    }
}

static void test_agreement(const Tokenizer *t, const char *name, const char *wiki, size_t wiki_len,
                           const char *tiny, size_t tiny_len) {
    char what[128];
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)t->vocab_size;
    char buf[2048];
    int bad = 0, runs = 0;
    /* The reference sorts the vocabulary on every call (~10 ms for 32000
     * pieces): fewer random texts for the big vocabulary. */
    int scale = t->vocab_size > 1000 ? 3 : 1;
    /* Random bytes, any value including NUL and invalid UTF-8. */
    for (int k = 0; k < 150 / scale; k++) {
        size_t len = rnd_below(&s, 300);
        for (size_t i = 0; i < len; i++) buf[i] = (char)rnd_next(&s);
        snprintf(what, sizeof what, "%s random bytes #%d", name, k);
        bad += !agree(t, buf, len, k & 1, (k >> 1) & 1, what);
        runs++;
    }
    /* Random ASCII from a small alphabet: long repeated runs and many ties. */
    for (int k = 0; k < 100 / scale; k++) {
        size_t len = rnd_below(&s, 400);
        for (size_t i = 0; i < len; i++) buf[i] = " aeht\n"[rnd_below(&s, k % 5 + 2)];
        snprintf(what, sizeof what, "%s small alphabet #%d", name, k);
        bad += !agree(t, buf, len, 1, 0, what);
        runs++;
    }
    /* Mixed fragments: words, space runs, multi-byte UTF-8, broken sequences. */
    for (int k = 0; k < 200 / scale; k++) {
        size_t len = mixed_text(&s, buf, sizeof buf, 0);
        snprintf(what, sizeof what, "%s mixed #%d", name, k);
        bad += !agree(t, buf, len, k & 1, 0, what);
        runs++;
    }
    CHECK(bad == 0, "%s: fast and reference encoders differ on %d of %d random texts", name, bad, runs);
    if (wiki) {
        snprintf(what, sizeof what, "%s wiki.test.raw first %zu bytes", name, wiki_len);
        CHECK(agree(t, wiki, wiki_len, 1, 0, what), "%s", what);
    }
    if (tiny) {
        snprintf(what, sizeof what, "%s tinystories_sample.txt", name);
        CHECK(agree(t, tiny, tiny_len, 1, 1, what), "%s", what);
    }
    /* The same with the word-by-word shortcut switched off (the path taken for
     * vocabularies with spaces inside pieces): a whole-text heap. */
    Tokenizer plain = *t;
    plain.space_prefix_only = 0;
    bad = 0;
    runs = 0;
    for (int k = 0; k < 100 / scale; k++, runs++) {
        size_t len = mixed_text(&s, buf, sizeof buf, 0);
        snprintf(what, sizeof what, "%s (no shortcut) mixed #%d", name, k);
        bad += !agree(&plain, buf, len, 1, 0, what);
    }
    CHECK(bad == 0, "%s without the word shortcut: %d of %d random texts differ", name, bad, runs);
    if (wiki) {
        snprintf(what, sizeof what, "%s (no shortcut) wiki.test.raw first %zu bytes", name, wiki_len);
        CHECK(agree(&plain, wiki, wiki_len, 1, 0, what), "%s", what);
    }
}

static void test_roundtrip(const Tokenizer *t, const char *name, const char *wiki, size_t wiki_len,
                           const char *tiny, size_t tiny_len) {
    char what[128], buf[2048];
    uint64_t s = 12345;
    int bad = 0;
    for (int k = 0; k < 200; k++) {
        size_t len = mixed_text(&s, buf, sizeof buf, 1);
        snprintf(what, sizeof what, "%s valid UTF-8 #%d", name, k);
        bad += !roundtrip(t, buf, len, what);
    }
    CHECK(bad == 0, "%s: decode(encode(x)) != x for %d of 200 random valid UTF-8 texts", name, bad);
    if (wiki) {
        /* cut back to a codepoint boundary */
        while (wiki_len > 0 && ((unsigned char)wiki[wiki_len] & 0xC0) == 0x80) wiki_len--;
        snprintf(what, sizeof what, "%s wiki.test.raw first %zu bytes", name, wiki_len);
        CHECK(roundtrip(t, wiki, wiki_len, what), "%s round trip", what);
    }
    if (tiny) {
        snprintf(what, sizeof what, "%s tinystories_sample.txt", name);
        CHECK(roundtrip(t, tiny, tiny_len, what), "%s round trip", what);
    }
}

/* A tiny vocabulary with equal scores and spaces inside pieces (so the word
 * shortcut is off), compared fast vs reference, plus one hand-derived case. */
static void test_synthetic(void) {
    static const char *const pieces[] = {" ", "a", "b", "ab", "ba", "aa", "a b", "b a", "aba", "abab", " a", "bb", "b b b"};
    static const float scores[] = {0, 0, 0, -1, -1, -1, -1, -2, -1, -0.5f, -3, -1e10f, 5};
    enum { NP = sizeof pieces / sizeof pieces[0] };
    char tmp[4096];
    if (make_temp(tmp, sizeof tmp) != 0 || write_tokenizer_file(tmp, pieces, scores, NP) != 0) {
        CHECK(0, "cannot write a synthetic tokenizer file");
        return;
    }
    Tokenizer t;
    int rc = tokenizer_load(&t, tmp, 259 + NP);
    unlink(tmp);
    CHECK(rc == 0, "synthetic tokenizer loads");
    if (rc) return;
    CHECK(t.space_prefix_only == 0, "synthetic vocabulary has spaces inside pieces");
    /* By hand, run.c rules, "abab" -> " " a b a b. Pairs: " a" (-3) at 0, "ab" (-1)
     * at 1, "ba" (-1) at 2, "ab" (-1) at 3: the leftmost -1 wins -> " " ab a b.
     * Pairs: "aba" (-1) at 1, "ab" (-1) at 2: leftmost -> " " aba b. Pair
     * "abab" (-0.5) -> " " abab; " abab" is not a piece: done. */
    static const int want_abab[] = {259 + 0, 259 + 9};
    CHECK(encode_is(&t, "abab", 0, 0, want_abab, 2, "synthetic abab"), "synthetic: \"abab\" by hand");
    static const int want_bb[] = {259 + 0, 259 + 2, 259 + 2};
    CHECK(encode_is(&t, "bb", 0, 0, want_bb, 3, "synthetic bb"), "synthetic: \"bb\" (score -1e10 never merges)");
    uint64_t s = 777;
    char buf[512];
    int bad = 0;
    for (int k = 0; k < 300; k++) {
        size_t len = rnd_below(&s, 200);
        for (size_t i = 0; i < len; i++) buf[i] = " ab"[rnd_below(&s, 3)];
        bad += !agree(&t, buf, len, k & 1, 0, "synthetic random");
    }
    CHECK(bad == 0, "synthetic vocabulary: fast and reference differ on %d of 300 texts", bad);
    tokenizer_free(&t);
}

/* SPEC section 7 wikitext2 string: the file's lines (with their "\n"), a
 * whitespace-only line becoming "", joined with "\n\n"; BOS then the ids. */
static void test_spec_fixture(const Tokenizer *tl2, const char *raw, size_t raw_len) {
    char fx[4096];
    data_path(fx, sizeof fx, "fixtures/wikitext2_test_llama2_ids.u16");
    if (!file_exists(fx)) {
        SKIP("fixtures/wikitext2_test_llama2_ids.u16 not present");
        return;
    }
    char *f;
    size_t flen;
    if (qh_read_file(fx, &f, &flen) != 0) {
        CHECK(0, "cannot read %s", fx);
        return;
    }
    char *joined = qh_malloc(2 * raw_len + 16);
    size_t k = 0, nlines = 0;
    for (size_t i = 0; i < raw_len;) {
        size_t j = i;
        while (j < raw_len && raw[j] != '\n') j++;
        size_t end = j < raw_len ? j + 1 : j; /* keep the newline */
        int blank = 1;
        for (size_t q = i; q < end; q++)
            if (!strchr(" \t\n\r\v\f", raw[q])) { blank = 0; break; }
        if (nlines++) { joined[k++] = '\n'; joined[k++] = '\n'; }
        if (!blank) { memcpy(joined + k, raw + i, end - i); k += end - i; }
        i = end;
    }
    CHECK(nlines == 4358, "wiki.test.raw has %zu lines, MANIFEST says 4358", nlines);
    int *ids = NULL;
    size_t n = 0, d = 0;
    double t0 = qh_now();
    int rc = tokenizer_encode(tl2, joined, k, 1, 0, &ids, &n);
    double dt = qh_now() - t0;
    size_t nf = flen / 2;
    int *want = qh_malloc(nf * sizeof(int));
    for (size_t i = 0; i < nf; i++) want[i] = (unsigned char)f[2 * i] | (unsigned char)f[2 * i + 1] << 8;
    CHECK(nf == 341469, "fixture holds %zu ids, SPEC says 341469", nf);
    CHECK(rc == 0 && same_ids(ids, n, want, nf, &d),
          "SPEC wikitext2 string: %zu ids vs fixture %zu, first difference at %zu", n, nf, d);
    printf("SPEC wikitext2 string (%zu bytes, llama2): %zu tokens incl. BOS in %.3f s (fixture: %zu)\n", k, n, dt, nf);
    free(want);
    free(ids);
    free(joined);
    free(f);
}

int main(void) {
    char p512[4096], pl2[4096], pwiki[4096], ptiny[4096];
    data_path(p512, sizeof p512, "models/stories260K/tok512.bin");
    data_path(pl2, sizeof pl2, "tokenizers/llama2/tokenizer.bin");
    data_path(pwiki, sizeof pwiki, "text/wikitext-2-raw/wiki.test.raw");
    data_path(ptiny, sizeof ptiny, "text/tinystories/tinystories_sample.txt");

    test_synthetic();

    Tokenizer t512, tl2;
    int have512 = file_exists(p512) && tokenizer_load(&t512, p512, 512) == 0;
    int havel2 = file_exists(pl2) && tokenizer_load(&tl2, pl2, 32000) == 0;
    if (!file_exists(p512)) SKIP("tok512.bin not present (run make data)");
    else CHECK(have512, "tok512.bin loads with vocab_size 512");
    if (!file_exists(pl2)) SKIP("llama2 tokenizer.bin not present (run make data)");
    else CHECK(havel2, "llama2 tokenizer.bin loads with vocab_size 32000");
    if (have512) {
        CHECK(t512.vocab_size == 512 && t512.max_token_length == 7, "tok512: %d tokens, max length %d",
              t512.vocab_size, t512.max_token_length);
        CHECK(strcmp(t512.vocab[1], "\n<s>\n") == 0 && strcmp(t512.vocab[3 + 0x41], "<0x41>") == 0 &&
                  strcmp(t512.vocab[403], " Once") == 0,
              "tok512: pieces 1, 68 and 403");
        CHECK(t512.space_prefix_only == 1, "tok512 keeps spaces in a leading run");
        test_load_errors(p512);
        Tokenizer again;
        CHECK(tokenizer_load(&again, p512, 0) == 0 && again.vocab_size == 512, "tok512 loads reading to EOF");
        tokenizer_free(&again);
    }
    if (havel2) {
        CHECK(tl2.vocab_size == 32000 && tl2.max_token_length == 27, "llama2: %d tokens, max length %d",
              tl2.vocab_size, tl2.max_token_length);
        CHECK(strcmp(tl2.vocab[29871], " ") == 0 && tl2.scores[259] == -1e9f, "llama2: piece 29871, score 259");
    }
    test_known_ids(have512 ? &t512 : NULL, havel2 ? &tl2 : NULL);

    char *wiki = NULL, *tiny = NULL;
    size_t wiki_len = 0, tiny_len = 0;
    if (!file_exists(pwiki) || qh_read_file(pwiki, &wiki, &wiki_len) != 0) {
        SKIP("wiki.test.raw not present");
        wiki = NULL;
    }
    if (!file_exists(ptiny) || qh_read_file(ptiny, &tiny, &tiny_len) != 0) {
        SKIP("tinystories_sample.txt not present");
        tiny = NULL;
    }
    size_t w20 = wiki_len < 20000 ? wiki_len : 20000;
    if (have512) {
        test_agreement(&t512, "tok512", wiki, w20, tiny, tiny_len);
        test_roundtrip(&t512, "tok512", wiki, w20, tiny, tiny_len);
    }
    if (havel2) {
        test_agreement(&tl2, "llama2", wiki, w20, tiny, tiny_len);
        test_roundtrip(&tl2, "llama2", wiki, w20, tiny, tiny_len);
        if (wiki) test_spec_fixture(&tl2, wiki, wiki_len);
    }

    /* Timing sanity (printed, not asserted): the whole raw file, with BOS. */
    if (wiki) {
        const Tokenizer *ts[2] = {have512 ? &t512 : NULL, havel2 ? &tl2 : NULL};
        const char *names[2] = {"tok512", "llama2"};
        for (int i = 0; i < 2; i++) {
            if (!ts[i]) continue;
            int *ids = NULL;
            size_t n = 0;
            double t0 = qh_now();
            int rc = tokenizer_encode(ts[i], wiki, wiki_len, 1, 0, &ids, &n);
            double dt = qh_now() - t0;
            CHECK(rc == 0, "encoding wiki.test.raw with %s", names[i]);
            printf("wiki.test.raw (%zu bytes, raw file) with %s: %zu tokens incl. BOS in %.3f s\n", wiki_len,
                   names[i], n, dt);
            free(ids);
        }
    }
    free(wiki);
    free(tiny);
    if (have512) tokenizer_free(&t512);
    if (havel2) tokenizer_free(&tl2);
    return test_summary();
}
