/* test_datasets.c: SPEC section 7 text construction and window sampling
 * (datasets.c), with the stories260K tokenizer data/models/stories260K/tok512.bin.
 *
 * - join_wikitext2 / join_lines_stripped on small hand-made inputs.
 * - Every evaluation stream at seqlen 512: token counts and window counts
 *   measured once (wikitext2 815070 / 1591, ptb 239493 / 467, ptb-new
 *   262372 / 512, c4 131072 / 256, c4-new 131072, tinystories 1809), and
 *   each re-derived here: the joined text rebuilt by an independent loop over
 *   the raw file and encoded with BOS; the 256 c4 windows replayed with
 *   CPython's random (pyrandom.h) over documents parsed here with jansson;
 *   c4-new as the first documents joined with " "; tinystories story by
 *   story (one BOS per story).
 * - Calibration windows: c4 (deterministic, seed-dependent, replayed with
 *   the "more than seqlen tokens" rule), file:PATH (replayed offsets).
 * - A hand-made C4 slice: a document of exactly seqlen tokens is taken whole
 *   by eval and never by calibration; c4-new joins only the first 1100.
 * - sha256 and provenance fields (wikitext2 = the MANIFEST value).
 * - Errors with a message: unknown dataset, empty data root, calibration on
 *   wikitext2/ptb (train split absent), malformed C4 JSONL, short texts.
 * Not here: the tokenizer itself (test_tokenizer.c), MT19937 (test_pyrandom.c). */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "datasets.h"
#include "pyrandom.h"
#include "util.h"

static const char *root;
static char tmpdir[64];

/* ---- stderr capture ----------------------------------------------------------- */
#include "capture.h"
#define cap_begin() cap_begin_in(tmpdir)

static char *path_of(const char *rel) {
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

static int ids_equal(const int *a, const int *b, size_t n) { return n == 0 || !memcmp(a, b, n * sizeof(int)); }

/* ---- joining rules by hand ----------------------------------------------------- */

static void check_str(char *got, const char *expect, const char *what) {
    CHECK(got && !strcmp(got, expect), "%s: got \"%s\"", what, got ? got : "(null)");
    free(got);
}

static void test_joins(void) {
    /* rows "a\n", "" (whitespace-only line), "b\n" joined with "\n\n" */
    check_str(join_wikitext2("a\n \nb\n", 6), "a\n\n\n\n\nb\n", "wikitext2 a/blank/b");
    check_str(join_wikitext2("", 0), "", "wikitext2 empty");
    check_str(join_wikitext2("a", 1), "a", "wikitext2 no final newline");
    check_str(join_wikitext2("a\n\nb", 4), "a\n\n\n\n\nb", "wikitext2 empty line, no final newline");
    check_str(join_wikitext2(" = T = \n\t \n x\n", 14), " = T = \n\n\n\n\n x\n", "wikitext2 keeps leading spaces");
    check_str(join_wikitext2("\n", 1), "", "wikitext2 one blank row");
    check_str(join_lines_stripped("  x y \n\n z\n", 11, "\n\n"), "x y\n\n\n\nz", "stripped, \\n\\n");
    check_str(join_lines_stripped("  x y \n\n z\n", 11, " "), "x y  z", "stripped, space");
    check_str(join_lines_stripped("a\r\nb\r\n", 6, "|"), "a|b", "stripped CRLF");
    check_str(join_lines_stripped("", 0, "|"), "", "stripped empty");
    check_str(join_lines_stripped("only", 4, "|"), "only", "stripped one line");
}

/* ---- independent rebuilds of the texts ------------------------------------------- */

/* wikitext2: every line keeps its '\n'; whitespace-only lines become ""; "\n\n" between rows */
static char *my_wikitext_join(const char *raw, size_t len, size_t *nlines, size_t *nonblank_bytes) {
    char *out = malloc(len * 3 + 8);
    size_t o = 0, start = 0;
    *nlines = 0;
    *nonblank_bytes = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && raw[end] != '\n') end++;
        if (end < len) end++;
        int blank = 1;
        for (size_t k = start; k < end; k++) blank &= isspace((unsigned char)raw[k]) != 0;
        if (*nlines) {
            out[o++] = '\n';
            out[o++] = '\n';
        }
        if (!blank) {
            memcpy(out + o, raw + start, end - start);
            o += end - start;
            *nonblank_bytes += end - start;
        }
        (*nlines)++;
        start = end;
    }
    out[o] = '\0';
    return out;
}

static char *my_strip_join(const char *raw, size_t len, const char *sep) {
    char *out = malloc(len * 3 + 8);
    size_t o = 0, start = 0, sl = strlen(sep);
    int first = 1;
    while (start < len) {
        size_t end = start;
        while (end < len && raw[end] != '\n') end++;
        size_t a = start, z = end;
        while (a < z && isspace((unsigned char)raw[a])) a++;
        while (z > a && isspace((unsigned char)raw[z - 1])) z--;
        if (!first) {
            memcpy(out + o, sep, sl);
            o += sl;
        }
        first = 0;
        memcpy(out + o, raw + a, z - a);
        o += z - a;
        start = end < len ? end + 1 : end;
    }
    out[o] = '\0';
    return out;
}

/* C4 documents parsed here */
typedef struct {
    char **text;
    size_t *len;
    int n;
} Docs;
static int load_docs_from(Docs *d, const char *p) {
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    d->n = 0;
    d->text = malloc(sizeof(char *) * 4096);
    d->len = malloc(sizeof(size_t) * 4096);
    char *line = NULL;
    size_t cap = 0;
    ssize_t r;
    while ((r = getline(&line, &cap, f)) > 0 && d->n < 4096) {
        if (r <= 1) continue;
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        json_t *t = json_object_get(o, "text");
        d->len[d->n] = json_string_length(t);
        d->text[d->n] = malloc(d->len[d->n] + 1);
        memcpy(d->text[d->n], json_string_value(t), d->len[d->n] + 1);
        d->n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}
static int load_docs(Docs *d) {
    char *p = path_of("text/c4/c4_train_00000_first1000.jsonl");
    int rc = load_docs_from(d, p);
    free(p);
    return rc;
}
static void free_docs(Docs *d) {
    for (int i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->len);
}

/* SPEC 7 C4 sampling replayed: out (count, seqlen); returns documents tokenized */
static long replay_c4(const Tokenizer *tok, const Docs *d, int count, int seqlen, uint64_t seed, int strictly, int *out,
                      int *first_doc) {
    PyRandom r;
    pyrandom_seed(&r, seed);
    int **cache = calloc(d->n, sizeof(int *));
    size_t *cl = calloc(d->n, sizeof(size_t));
    long ntok = 0;
    for (int s = 0; s < count; s++) {
        int i;
        for (;;) {
            i = (int)pyrandom_randint(&r, 0, d->n - 1);
            if (!cache[i]) {
                tokenizer_encode(tok, d->text[i], d->len[i], 1, 0, &cache[i], &cl[i]);
                ntok++;
            }
            if (strictly ? cl[i] > (size_t)seqlen : cl[i] >= (size_t)seqlen) break;
        }
        if (s == 0 && first_doc) *first_doc = i;
        size_t off = cl[i] == (size_t)seqlen ? 0 : (size_t)pyrandom_randint(&r, 0, (int64_t)cl[i] - seqlen - 1);
        memcpy(out + (size_t)s * seqlen, cache[i] + off, sizeof(int) * seqlen);
    }
    for (int i = 0; i < d->n; i++) free(cache[i]);
    free(cache);
    free(cl);
    return ntok;
}

/* is needle (n) a contiguous run inside hay (h)? */
static int contains(const int *hay, size_t h, const int *needle, size_t n) {
    for (size_t i = 0; i + n <= h; i++)
        if (!memcmp(hay + i, needle, n * sizeof(int))) return 1;
    return 0;
}

/* ---- evaluation streams ---------------------------------------------------------- */

static void test_eval_streams(const Tokenizer *tok) {
    const int SL = 512;
    TokenStream s;
    /* wikitext2 */
    {
        int rc = dataset_eval("wikitext2", root, tok, SL, &s);
        CHECK(rc == 0, "wikitext2");
        CHECK(s.n == 815070 && s.n / SL == 1591, "wikitext2: %zu tokens, %zu windows", s.n, s.n / SL);
        CHECK(s.n > 0 && s.ids[0] == 1, "wikitext2 starts with BOS");
        CHECK(!strcmp(s.sha256, "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"), "wikitext2 sha %s",
              s.sha256);
        /* the same digest as the project's datasets/manifest.tsv lists for the file
         * (columns: name, file, sha256, ...); run from the repository root */
        char *mp = qh_strdup("datasets/manifest.tsv"), *man;
        size_t ml;
        if (qh_read_file(mp, &man, &ml) == 0) {
            const char *line = strstr(man, "text/wikitext-2-raw/wiki.test.raw\t");
            char digest[65] = "";
            if (line) sscanf(line, "%*s %64s", digest);
            CHECK(line && !strcmp(digest, s.sha256), "MANIFEST digest '%s' != stream sha %s", digest, s.sha256);
            free(man);
        } else {
            SKIP("no datasets/manifest.tsv (not run from the repository root)");
        }
        free(mp);
        CHECK(strstr(s.source, "wiki.test.raw") && !strcmp(s.split, "test") && s.is_train_data == 0 &&
                  !strcmp(s.name, "wikitext2"),
              "wikitext2 provenance: source %s split %s train %d", s.source, s.split, s.is_train_data);
        /* rebuild: own join of the raw lines, BOS + encode */
        char *p = path_of("text/wikitext-2-raw/wiki.test.raw"), *raw;
        size_t len, nl, nb;
        qh_read_file(p, &raw, &len);
        char *mine = my_wikitext_join(raw, len, &nl, &nb);
        char *theirs = join_wikitext2(raw, len);
        CHECK(nl == 4358, "wiki.test.raw has %zu lines, MANIFEST says 4358", nl);
        CHECK(strlen(mine) == nb + 2 * (nl - 1), "joined length %zu != nonblank bytes %zu + 2*(lines-1)", strlen(mine),
              nb);
        CHECK(!strcmp(mine, theirs), "join_wikitext2 differs from the rebuild on wiki.test.raw");
        int *ids;
        size_t n;
        tokenizer_encode(tok, mine, strlen(mine), 1, 0, &ids, &n);
        CHECK(n == s.n && ids_equal(ids, s.ids, n), "wikitext2 ids differ from BOS + encode(rebuild) (%zu vs %zu)", n,
              s.n);
        free(ids);
        free(mine);
        free(theirs);
        free(raw);
        free(p);
        token_stream_free(&s);
        CHECK(s.ids == NULL, "token_stream_free nulls ids");
    }
    /* ptb (validation, "\n\n") and ptb-new (test, " ") */
    {
        const char *names[2] = {"ptb", "ptb-new"}, *files[2] = {"text/ptb/ptb.valid.txt", "text/ptb/ptb.test.txt"};
        const char *seps[2] = {"\n\n", " "}, *splits[2] = {"validation", "test"};
        size_t counts[2] = {239493, 262372}, wins[2] = {467, 512};
        for (int k = 0; k < 2; k++) {
            int rc = dataset_eval(names[k], root, tok, SL, &s);
            CHECK(rc == 0, "%s", names[k]);
            CHECK(s.n == counts[k] && s.n / SL == wins[k], "%s: %zu tokens, %zu windows", names[k], s.n, s.n / SL);
            CHECK(!strcmp(s.split, splits[k]) && strstr(s.source, files[k] + 9), "%s split %s source %s", names[k],
                  s.split, s.source);
            char *p = path_of(files[k]), *raw;
            size_t len;
            qh_read_file(p, &raw, &len);
            char *mine = my_strip_join(raw, len, seps[k]);
            int *ids;
            size_t n;
            tokenizer_encode(tok, mine, strlen(mine), 1, 0, &ids, &n);
            CHECK(n == s.n && ids_equal(ids, s.ids, n), "%s ids differ from BOS + encode(rebuild)", names[k]);
            free(ids);
            free(mine);
            free(raw);
            free(p);
            token_stream_free(&s);
        }
    }
    /* c4: 256 sampled windows, replayed */
    Docs d;
    if (load_docs(&d) != 0) {
        SKIP("no C4 slice");
        return;
    }
    CHECK(d.n == 1000, "C4 slice has %d documents", d.n);
    {
        int rc = dataset_eval("c4", root, tok, SL, &s);
        CHECK(rc == 0, "c4");
        CHECK(s.n == (size_t)256 * SL, "c4: %zu tokens, expected 256 * seqlen", s.n);
        CHECK(s.is_train_data == 1, "c4 is marked as train data");
        TokenStream s2;
        dataset_eval("c4", root, tok, SL, &s2);
        CHECK(s2.n == s.n && ids_equal(s.ids, s2.ids, s.n), "c4 sample not reproducible");
        token_stream_free(&s2);
        int *mine = malloc(sizeof(int) * 256 * SL), first = -1;
        long ntok = replay_c4(tok, &d, 256, SL, 0, 0, mine, &first);
        CHECK(ids_equal(mine, s.ids, (size_t)256 * SL), "c4 windows differ from the replay of random.seed(0)");
        CHECK(ntok == s.ndocs_tokenized, "c4: %ld documents tokenized, replay %ld", s.ndocs_tokenized, ntok);
        /* the first draw of random.seed(0) is randint(0, 999); its window lies inside that document */
        PyRandom r;
        pyrandom_seed(&r, 0);
        int d0 = (int)pyrandom_randint(&r, 0, 999);
        int *di;
        size_t dn;
        tokenizer_encode(tok, d.text[first], d.len[first], 1, 0, &di, &dn);
        CHECK(contains(di, dn, s.ids, SL), "c4 window 0 is not inside document %d", first);
        CHECK(first == d0 && dn >= (size_t)SL, "c4: first window from document %d, but randint(0, 999) after "
              "random.seed(0) is %d (%zu tokens)", first, d0, dn);
        printf("c4: first draw document %d, first window from document %d (%zu tokens), %ld documents tokenized\n", d0,
               first, dn, ntok);
        free(di);
        /* every window is a run of some document with at least seqlen tokens: spot-check window 255 */
        int found = 0;
        for (int i = 0; i < d.n && !found; i++) {
            tokenizer_encode(tok, d.text[i], d.len[i], 1, 0, &di, &dn);
            found = dn >= (size_t)SL && contains(di, dn, s.ids + 255 * SL, SL);
            free(di);
        }
        CHECK(found, "c4 window 255 is in no document");
        free(mine);
        token_stream_free(&s);
    }
    /* c4-new: first min(1100, ndocs) documents joined with " ", BOS + encode, cut */
    {
        int rc = dataset_eval("c4-new", root, tok, SL, &s);
        CHECK(rc == 0, "c4-new");
        CHECK(s.n == (size_t)256 * SL, "c4-new: %zu tokens", s.n);
        size_t tot = 0;
        for (int i = 0; i < d.n; i++) tot += d.len[i] + 1;
        char *j = malloc(tot + 1);
        size_t o = 0;
        for (int i = 0; i < d.n; i++) {
            if (i) j[o++] = ' ';
            memcpy(j + o, d.text[i], d.len[i]);
            o += d.len[i];
        }
        int *ids;
        size_t n;
        tokenizer_encode(tok, j, o, 1, 0, &ids, &n);
        CHECK(n >= s.n && ids_equal(ids, s.ids, s.n), "c4-new is not the prefix of the joined documents (%zu ids)", n);
        free(ids);
        free(j);
        token_stream_free(&s);
    }
    /* tinystories: story by story, BOS each */
    {
        int rc = dataset_eval("tinystories", root, tok, 128, &s);
        CHECK(rc == 0, "tinystories");
        CHECK(s.n == 1809, "tinystories: %zu tokens", s.n);
        size_t bos = 0;
        for (size_t i = 0; i < s.n; i++) bos += s.ids[i] == 1;
        CHECK(bos == 5 && s.ids[0] == 1, "tinystories: %zu BOS, expected one per story (5)", bos);
        char *p = path_of("text/tinystories/tinystories_sample.txt"), *raw;
        size_t len;
        qh_read_file(p, &raw, &len);
        size_t total = 0, pos = 0;
        int stories = 0, match = 1;
        const char *sep = "<|endoftext|>";
        char *cur = raw;
        for (;;) {
            char *q = strstr(cur, sep);
            char *e = q ? q : raw + len;
            char *a = cur;
            while (a < e && isspace((unsigned char)*a)) a++;
            while (e > a && isspace((unsigned char)e[-1])) e--;
            if (e > a) {
                int *ids;
                size_t n;
                tokenizer_encode(tok, a, (size_t)(e - a), 1, 0, &ids, &n);
                match &= pos + n <= s.n && ids_equal(ids, s.ids + pos, n);
                pos += n;
                total += n;
                stories++;
                free(ids);
            }
            if (!q) break;
            cur = q + strlen(sep);
        }
        CHECK(stories == 5 && total == s.n && match, "tinystories rebuild: %d stories, %zu tokens, match %d", stories,
              total, match);
        free(raw);
        free(p);
        token_stream_free(&s);
    }
    /* calibration on c4 */
    {
        int *w1 = NULL, *w2 = NULL, *w3 = NULL;
        TokenStream info;
        int rc = dataset_calib("c4", root, tok, 4, 64, 0, &w1, &info);
        CHECK(rc == 0, "calib c4");
        CHECK(info.n == 256 && info.is_train_data == 1 && info.ids == NULL, "calib info: n %zu train %d", info.n,
              info.is_train_data);
        CHECK(!strcmp(info.sha256, "cdd5b754119131d2934e3e799a059a9d64f53a6aac9e7e2ef79b43120bb01a32"),
              "calib c4 sha %s", info.sha256);
        dataset_calib("c4", root, tok, 4, 64, 0, &w2, &info);
        CHECK(w1 && w2 && ids_equal(w1, w2, 256), "calib c4 seed 0 not deterministic");
        dataset_calib("c4", root, tok, 4, 64, 1, &w3, &info);
        int same = 0;
        for (int k = 0; k < 4; k++) same += w3 && ids_equal(w1 + 64 * k, w3 + 64 * k, 64);
        CHECK(same == 0, "seeds 0 and 1 share %d windows", same);
        int range_bad = 0;
        for (int k = 0; k < 256; k++) range_bad += w1[k] < 0 || w1[k] >= 512 || w3[k] < 0 || w3[k] >= 512;
        CHECK(range_bad == 0, "%d calibration ids outside 0..511", range_bad);
        int *mine = malloc(sizeof(int) * 256);
        replay_c4(tok, &d, 4, 64, 0, 1, mine, NULL);
        CHECK(ids_equal(mine, w1, 256), "calib c4 seed 0 differs from the replay (documents of > seqlen tokens)");
        replay_c4(tok, &d, 4, 64, 1, 1, mine, NULL);
        CHECK(ids_equal(mine, w3, 256), "calib c4 seed 1 differs from the replay");
        free(mine);
        free(w1);
        free(w2);
        free(w3);
        /* a longer window and another seed */
        int *w = NULL;
        rc = dataset_calib("c4", root, tok, 16, 512, 7, &w, &info);
        mine = malloc(sizeof(int) * 16 * 512);
        replay_c4(tok, &d, 16, 512, 7, 1, mine, NULL);
        CHECK(rc == 0 && ids_equal(mine, w, 16 * 512), "calib c4 16 x 512 seed 7 differs from the replay");
        free(mine);
        free(w);
    }
    free_docs(&d);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

static void test_files_and_errors(const Tokenizer *tok) {
    char p[512];
    TokenStream s;
    /* file:PATH evaluation and calibration */
    snprintf(p, sizeof p, "file:%s/story.txt", tmpdir);
    const char *story = "Once upon a time there was a little girl named Lily. She liked to play in the park with "
                        "her dog. One day the dog ran away and Lily was sad, but her mom helped her find it.";
    write_text(p + 5, story);
    CHECK(dataset_eval(p, root, tok, 16, &s) == 0, "file: eval");
    int *ids;
    size_t n;
    tokenizer_encode(tok, story, strlen(story), 1, 0, &ids, &n);
    CHECK(s.n == n && ids_equal(ids, s.ids, n), "file: stream is not BOS + encode(file)");
    CHECK(!strcmp(s.split, "file") && s.is_train_data == 0, "file: split %s", s.split);
    token_stream_free(&s);
    int *w = NULL;
    TokenStream info;
    CHECK(dataset_calib(p, root, tok, 5, 8, 3, &w, &info) == 0, "file: calib");
    PyRandom r;
    pyrandom_seed(&r, 3);
    int bad = 0;
    for (int k = 0; k < 5; k++) {
        int64_t off = pyrandom_randint(&r, 0, (int64_t)n - 8 - 1);
        bad += !ids_equal(w + 8 * k, ids + off, 8);
    }
    CHECK(bad == 0, "file: calib windows are not [i, i+8) with i = randint(0, n - 9): %d differ", bad);
    free(w);
    /* too short for seqlen + 1 */
    char *err;
    cap_begin();
    int rc = dataset_calib(p, root, tok, 2, (int)n, 0, &w, &info);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "fewer than"), "calib on a text of seqlen tokens: rc %d '%s'", rc, err);
    free(err);
    free(ids);

    /* unknown names */
    cap_begin();
    rc = dataset_eval("wikitext3", root, tok, 128, &s);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "wikitext3") && s.ids == NULL, "unknown dataset: rc %d '%s'", rc, err);
    free(err);
    cap_begin();
    rc = dataset_calib("tinystories", root, tok, 2, 16, 0, &w, &info);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "tinystories"), "unknown calibration dataset: rc %d '%s'", rc, err);
    free(err);
    /* train splits that are not in the manifest */
    const char *nocal[2] = {"wikitext2", "ptb"};
    for (int k = 0; k < 2; k++) {
        cap_begin();
        rc = dataset_calib(nocal[k], root, tok, 2, 16, 0, &w, &info);
        err = cap_end();
        CHECK(rc == -1 && strstr(err, "train"), "calib %s: rc %d '%s'", nocal[k], rc, err);
        free(err);
    }
    cap_begin();
    rc = dataset_calib("c4", root, tok, 0, 16, 0, &w, &info);
    rc += dataset_calib("c4", root, tok, 2, 1, 0, &w, &info);
    free(cap_end());
    CHECK(rc == -2, "calib with nsamples 0 / seqlen 1 accepted");
    /* missing file */
    cap_begin();
    rc = dataset_eval("file:/nonexistent/x.txt", root, tok, 16, &s);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "/nonexistent/x.txt"), "file:/nonexistent: rc %d '%s'", rc, err);
    free(err);
    /* empty data root: every dataset fails with a message naming the missing file */
    char empty[512];
    snprintf(empty, sizeof empty, "%s/emptyroot", tmpdir);
    mkdir(empty, 0700);
    const char *all[6] = {"wikitext2", "ptb", "ptb-new", "c4", "c4-new", "tinystories"};
    for (int k = 0; k < 6; k++) {
        cap_begin();
        rc = dataset_eval(all[k], empty, tok, 64, &s);
        err = cap_end();
        CHECK(rc == -1 && strstr(err, "missing") && strstr(err, empty), "%s with an empty root: rc %d '%s'", all[k], rc,
              err);
        free(err);
    }
    cap_begin();
    rc = dataset_calib("c4", empty, tok, 2, 16, 0, &w, &info);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "missing"), "calib c4 with an empty root: rc %d '%s'", rc, err);
    free(err);
    /* a malformed C4 JSONL: error names file:line */
    char bad_root[512], dir[600], file[700];
    snprintf(bad_root, sizeof bad_root, "%s/badroot", tmpdir);
    snprintf(dir, sizeof dir, "%s/text", bad_root);
    mkdir(bad_root, 0700);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/text/c4", bad_root);
    mkdir(dir, 0700);
    snprintf(file, sizeof file, "%s/c4_train_00000_first1000.jsonl", dir);
    write_text(file, "{\"text\": \"fine\"}\n{\"text\": 3}\n");
    cap_begin();
    rc = dataset_eval("c4", bad_root, tok, 4, &s);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, ":2:"), "malformed JSONL line 2: rc %d '%s'", rc, err);
    free(err);
    write_text(file, "{\"text\": \"fine\"}\nnot json\n");
    cap_begin();
    rc = dataset_eval("c4-new", bad_root, tok, 4, &s);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, ":2:"), "non-JSON line 2: rc %d '%s'", rc, err);
    free(err);
    /* documents all shorter than seqlen: the sampler gives up with a message */
    write_text(file, "{\"text\": \"a b\"}\n{\"text\": \"c\"}\n");
    cap_begin();
    rc = dataset_eval("c4", bad_root, tok, 64, &s);
    err = cap_end();
    CHECK(rc == -1 && strstr(err, "no document"), "c4 without long documents: rc %d '%s'", rc, err);
    free(err);
    /* the names list */
    int seen = 0;
    for (int k = 0; dataset_names[k]; k++)
        for (int j = 0; j < 6; j++) seen += !strcmp(dataset_names[k], all[j]);
    CHECK(seen == 6, "dataset_names lists %d of the 6 datasets", seen);
}

/* A hand-made C4 slice under a temporary data root: documents of exactly
 * seqlen tokens (eval takes them whole, calibration must skip them: SPEC 7),
 * and more than 1100 short documents (c4-new joins only the first 1100). */
static void test_c4_rules(const Tokenizer *tok) {
    char dir[600], file[700];
    snprintf(dir, sizeof dir, "%s/c4root/text/c4", tmpdir);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    if (system(cmd) != 0) {
        CHECK(0, "mkdir %s", dir);
        return;
    }
    snprintf(file, sizeof file, "%s/c4_train_00000_first1000.jsonl", dir);
    char root2[600];
    snprintf(root2, sizeof root2, "%s/c4root", tmpdir);
    const char *exact = "Tom had a red ball. He liked to play with it every day in the sun.";
    const char *longer = "Once upon a time there was a big dog named Max. Max liked to run and jump in the park "
                         "with his friends. One day Max found a stick and he was very happy.";
    int *ids;
    size_t ne, nl;
    tokenizer_encode(tok, exact, strlen(exact), 1, 0, &ids, &ne);
    free(ids);
    tokenizer_encode(tok, longer, strlen(longer), 1, 0, &ids, &nl);
    free(ids);
    CHECK(nl > ne + 1 && ne > 4, "hand-made documents: %zu and %zu tokens", ne, nl);
    FILE *f = fopen(file, "w");
    fprintf(f, "{\"text\": \"%s\", \"url\": \"a\"}\n{\"text\": \"%s\"}\n", exact, longer);
    fclose(f);
    Docs d;
    load_docs_from(&d, file);
    int SL = (int)ne;
    TokenStream s;
    CHECK(dataset_eval("c4", root2, tok, SL, &s) == 0, "c4 on the hand-made slice");
    int *mine = malloc(sizeof(int) * 256 * (size_t)SL);
    replay_c4(tok, &d, 256, SL, 0, 0, mine, NULL);
    CHECK(s.n == (size_t)256 * SL && ids_equal(mine, s.ids, s.n), "c4 (>= seqlen rule) differs from the replay");
    int whole = 0;
    tokenizer_encode(tok, exact, strlen(exact), 1, 0, &ids, &ne);
    for (int w = 0; w < 256; w++) whole += ids_equal(s.ids + (size_t)w * SL, ids, ne);
    CHECK(whole > 50, "eval took the exactly-seqlen document whole in only %d of 256 windows", whole);
    token_stream_free(&s);
    int *cw = NULL;
    TokenStream info;
    CHECK(dataset_calib("c4", root2, tok, 64, SL, 0, &cw, &info) == 0, "calib on the hand-made slice");
    replay_c4(tok, &d, 64, SL, 0, 1, mine, NULL);
    CHECK(cw && ids_equal(mine, cw, (size_t)64 * SL), "calib c4 (> seqlen rule) differs from the replay");
    int taken = 0;
    for (int w = 0; cw && w < 64; w++) taken += ids_equal(cw + (size_t)w * SL, ids, ne);
    CHECK(taken == 0, "calibration took the exactly-seqlen document %d times (needs > seqlen tokens)", taken);
    free(cw);
    free(ids);
    free(mine);
    free_docs(&d);
    /* c4-new: 1200 short documents, only the first 1100 joined */
    f = fopen(file, "w");
    for (int i = 0; i < 1200; i++) fprintf(f, "{\"text\": \"d%d\"}\n", i);
    fclose(f);
    CHECK(dataset_eval("c4-new", root2, tok, 64, &s) == 0, "c4-new on 1200 documents");
    char *j = malloc(1200 * 8);
    size_t o = 0;
    for (int i = 0; i < 1100; i++) o += (size_t)sprintf(j + o, i ? " d%d" : "d%d", i);
    tokenizer_encode(tok, j, o, 1, 0, &ids, &ne);
    CHECK(ne < (size_t)256 * 64 && s.n == ne && ids_equal(ids, s.ids, ne),
          "c4-new is not BOS + encode of the first 1100 documents joined with \" \" (%zu vs %zu ids)", s.n, ne);
    free(ids);
    free(j);
    token_stream_free(&s);
}

int main(void) {
    const char *e = getenv("QH_DATA");
    root = e && *e ? e : "data";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qh_test_datasets_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_joins();
    Tokenizer tok;
    char *tp = path_of("models/stories260K/tok512.bin");
    if (tokenizer_load(&tok, tp, 512) != 0) {
        SKIP("tok512.bin not available (run make data)");
    } else {
        test_eval_streams(&tok);
        test_files_and_errors(&tok);
        test_c4_rules(&tok);
        tokenizer_free(&tok);
    }
    free(tp);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
