/* hf_json_scan.h: a strict, allocation-free JSON scanner for the two large
 * values of a tokenizer.json, model.vocab (an object of 150k string -> integer
 * entries) and model.merges (an array of 150k-300k strings or string pairs),
 * which jansson takes ~0.2 s to build as a tree; the rest of the file is still
 * read by jansson. The scanner finds those two values (hf_json_model_spans),
 * then reads them token by token with the same rules jansson applies: strings
 * of valid UTF-8 without raw control characters, escapes including \uXXXX
 * surrogate pairs, no \u0000, integers without leading zeros; errors give the
 * line and column as jansson's do. Not here: what the values mean (hf_tok_load.c). */
#ifndef QH_HF_JSON_SCAN_H
#define QH_HF_JSON_SCAN_H

#include <stddef.h>

typedef struct HfJsonSpan {
    size_t start, end; /* byte range of a value in the file */
} HfJsonSpan;

/* Find the values of "vocab" and "merges" inside the top-level "model"
 * object of buf[0..len). 1 when both are found exactly once, the vocab an
 * object and the merges an array, and the whole text is well-formed JSON as
 * far as the scan goes; else 0 (the caller then leaves everything to jansson,
 * whose messages explain what is wrong). */
int hf_json_model_spans(const char *buf, size_t len, HfJsonSpan *vocab, HfJsonSpan *merges);

/* A reader over one value of buf. */
typedef struct HfJsonReader {
    const char *buf; /* the whole file (for line and column) */
    size_t pos, end;
    char err[200];   /* the last error: "LINE:COL: not valid JSON: what" */
} HfJsonReader;

/* Skip whitespace; return the next byte (0 at the end of the span). */
char hf_json_peek(HfJsonReader *r);
/* Expect byte c (after whitespace): 0, or -1 with r->err. */
int hf_json_expect(HfJsonReader *r, char c);
/* A string at pos (after whitespace), decoded into dst (capacity dstn;
 * strings longer are an error; dst NULL: only checked, any length): 0 and
 * *len, or -1 with r->err. */
int hf_json_string(HfJsonReader *r, char *dst, size_t dstn, size_t *len);
/* An integer at pos: 0 and *v; 1 when the value is some other JSON value
 * (skipped, its text in [*vs, *ve)); -1 with r->err on malformed JSON. */
int hf_json_integer(HfJsonReader *r, long long *v, size_t *vs, size_t *ve);
/* Skip one value at pos: 0 or -1 with r->err. */
int hf_json_skip(HfJsonReader *r);

#endif
