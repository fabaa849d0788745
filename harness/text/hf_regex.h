/* hf_regex.h: the regular expressions of tokenizer.json files (Split
 * pre-tokenizers, Replace normalizers and decoders), which the `tokenizers`
 * library runs with Oniguruma (Ruby syntax), run here with PCRE2 (UTF,
 * Unicode properties, JIT where available). Where the two engines differ on
 * the syntax these files use, the pattern is rewritten so that PCRE2 matches
 * what Oniguruma matches: `\s` is Unicode White_Space (U+0009-000D, U+0085 and
 * category Z; PCRE2's own \s also takes U+180E), `\S` its complement, `\uHHHH`
 * a codepoint, `^` / `$` line anchors. Constructs whose meaning differs and
 * that no known file uses (`\w`, `\b`, `\h`, `\R`, POSIX or nested classes,
 * inline flags other than i, ...) are refused with the position, never
 * passed through.
 * A literal (a "String" pattern) is matched byte for byte, without PCRE2.
 * Matching follows Oniguruma's find_iter: leftmost matches, non-overlapping,
 * an empty match right after the previous match skipped by one character. */
#ifndef QH_HF_REGEX_H
#define QH_HF_REGEX_H

#include <stddef.h>

typedef struct HfRegex {
    void *code;        /* pcre2_code (8-bit), NULL for a literal */
    char *literal;     /* the literal pattern (owned), when code is NULL */
    size_t literal_len;
} HfRegex;

/* Compile `pattern` (valid UTF-8, len bytes). 0, or -1 with the reason in
 * err[0..errn) (no message printed: the caller names the file and JSON path). */
int hf_regex_compile(HfRegex *r, const char *pattern, size_t len, int literal, char *err, size_t errn);
void hf_regex_free(HfRegex *r);

/* One (start, end, is_match) segment of a subject: matches and the gaps
 * between them, in order, covering the subject (the library's find_matches). */
typedef struct HfSpan {
    size_t start, end;
    int is_match;
} HfSpan;

/* Per-caller matching state (PCRE2 match data and JIT stack): one per thread
 * of work, reused across calls. */
typedef struct HfMatchScratch HfMatchScratch;
HfMatchScratch *hf_match_scratch_new(void);
void hf_match_scratch_free(HfMatchScratch *sc);

/* The segments of s[0..n) (valid UTF-8): *spans grown with qh_realloc
 * (capacity *cap), *nspans set. An empty subject gives one empty gap.
 * 0, or -1 after a message (a match error such as PCRE2's match limit). */
int hf_regex_spans(const HfRegex *r, HfMatchScratch *sc, const char *s, size_t n, HfSpan **spans, size_t *nspans,
                   size_t *cap);

#endif
