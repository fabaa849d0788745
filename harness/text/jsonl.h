/* jsonl.h: documents of a JSON Lines file in the C4 layout (one JSON object
 * per line with a string "text"), plain or gzip-compressed (read through zlib
 * as it is, never unpacked to disk; concatenated gzip members are one
 * stream). The whole file is checked when it is opened: a truncated or
 * corrupt gzip stream and a line that is not such an object are refused with
 * the file and the line. Document i is the i-th non-empty line, as the
 * references' `load_dataset("json")` numbers them.
 * Not here: tokenization or sampling (datasets.c). */
#ifndef QH_JSONL_H
#define QH_JSONL_H

#include <stddef.h>
#include <stdint.h>

typedef struct JsonlDocs {
    char *buf;          /* the documents' texts, decoded in place (owned) */
    size_t *off;        /* (n) start of document i in buf */
    size_t *len;        /* (n) its length in bytes (UTF-8, may contain NUL) */
    int64_t n;          /* documents */
    int64_t lines;      /* lines of the file (blank ones included) */
    int64_t file_bytes; /* size of the file as stored */
    int gzip;           /* 1 when the file was gzip-compressed */
    char sha256[65];    /* of the file as stored (the compressed bytes) */
} JsonlDocs;

/* Read and check `path`. 0, or -1 with a message naming the file and the line
 * (and nothing to free). */
int jsonl_open(const char *path, JsonlDocs *d);
static inline const char *jsonl_text(const JsonlDocs *d, int64_t i) { return d->buf + d->off[i]; }
void jsonl_close(JsonlDocs *d);

#endif
