/* jsonl.c: reading and checking C4-layout JSON Lines files, plain or gzip
 * (see jsonl.h). One pass over the file: sha256 of the stored bytes, zlib
 * inflate into memory; then every line parsed with jansson and its "text"
 * decoded over the line's own bytes (a decoded string is never longer than
 * its JSON line), so the documents cost no second copy. */
#include "jsonl.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sha256.h"
#include "util.h"

enum { CHUNK = 1 << 20 };

void jsonl_close(JsonlDocs *d) {
    if (!d) return;
    free(d->buf);
    free(d->off);
    free(d->len);
    memset(d, 0, sizeof *d);
}

static long long count_newlines(const char *p, size_t n) {
    long long k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++) k++;
    return k;
}

/* Make room for at least `want` more bytes in buf (cap grows by doubling). */
static void reserve(char **buf, size_t *cap, size_t used, size_t want) {
    if (used + want <= *cap) return;
    size_t c = *cap ? *cap : CHUNK;
    while (c < used + want) c *= 2;
    *buf = qh_realloc(*buf, c);
    *cap = c;
}

/* The file's bytes, decompressed when they are gzip: *out (allocated, *n bytes, one spare byte). */
static int read_all(const char *path, JsonlDocs *d, char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return qh_error("cannot open '%s': %s", path, strerror(errno));
    unsigned char *in = qh_malloc(CHUNK);
    char *o = NULL;
    size_t on = 0, ocap = 0;
    Sha256 sh;
    sha256_init(&sh);
    z_stream z;
    memset(&z, 0, sizeof z);
    int kind = -1, in_member = 0, rc = 0; /* kind: -1 not known yet, 0 plain, 1 gzip */
    /* a gzip file ends with its (last member's) size mod 2^32: room for that much at once */
    unsigned char tail[4];
    if (fseek(f, -4, SEEK_END) == 0 && fread(tail, 1, 4, f) == 4) {
        size_t isize = (size_t)tail[0] | (size_t)tail[1] << 8 | (size_t)tail[2] << 16 | (size_t)tail[3] << 24;
        if (isize < ((size_t)1 << 32) - CHUNK) reserve(&o, &ocap, 0, isize + CHUNK + 1);
    }
    rewind(f);
    for (;;) {
        size_t got = fread(in, 1, CHUNK, f);
        if (got == 0) {
            if (ferror(f)) rc = qh_error("cannot read '%s': %s", path, strerror(errno));
            break;
        }
        sha256_update(&sh, in, got);
        d->file_bytes += (int64_t)got;
        if (kind < 0) {
            kind = got >= 2 && in[0] == 0x1f && in[1] == 0x8b;
            if (kind && inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
                rc = qh_error("'%s': zlib could not start", path);
                kind = 0;
                break;
            }
        }
        if (!kind) {
            reserve(&o, &ocap, on, got + 1);
            memcpy(o + on, in, got);
            on += got;
            continue;
        }
        z.next_in = in;
        z.avail_in = (uInt)got;
        while (z.avail_in > 0 && rc == 0) {
            if (!in_member) { /* the next member of a multi-member file */
                inflateReset(&z);
                in_member = 1;
            }
            reserve(&o, &ocap, on, CHUNK + 1);
            z.next_out = (unsigned char *)o + on;
            size_t room = ocap - on - 1, on0 = on, in0 = z.avail_in;
            if (room > ((size_t)1 << 30)) room = (size_t)1 << 30; /* avail_out is 32-bit */
            z.avail_out = (uInt)room;
            int r = inflate(&z, Z_NO_FLUSH);
            on += room - z.avail_out;
            if (r == Z_STREAM_END) in_member = 0;
            else if ((r != Z_OK && r != Z_BUF_ERROR) || (r == Z_BUF_ERROR && on == on0 && z.avail_in == in0))
                rc = qh_error("'%s': corrupt gzip data in line %lld (%s): the file is damaged; fetch it again (make data)",
                              path, count_newlines(o, on) + 1, z.msg ? z.msg : "zlib error");
        }
        if (rc) break;
    }
    if (rc == 0 && kind == 1 && in_member)
        rc = qh_error("'%s': the gzip stream is truncated: it ends inside line %lld (after %lld complete lines); "
                      "fetch the file again (make data)", path, count_newlines(o, on) + 1, count_newlines(o, on));
    if (kind == 1) inflateEnd(&z);
    fclose(f);
    free(in);
    if (rc) {
        free(o);
        return -1;
    }
    if (!o) o = qh_malloc(1);
    o[on] = '\0';
    unsigned char dg[32];
    sha256_final(&sh, dg);
    for (int i = 0; i < 32; i++) snprintf(d->sha256 + 2 * i, 3, "%02x", dg[i]);
    d->gzip = kind == 1;
    *out = o;
    *n = on;
    return 0;
}

int jsonl_open(const char *path, JsonlDocs *d) {
    memset(d, 0, sizeof *d);
    char *buf = NULL;
    size_t n = 0;
    if (read_all(path, d, &buf, &n) != 0) return -1;
    int64_t cap = 1024;
    d->buf = buf;
    d->off = qh_malloc(sizeof(size_t) * (size_t)cap);
    d->len = qh_malloc(sizeof(size_t) * (size_t)cap);
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t j = nl ? (size_t)(nl - buf) : n;
        d->lines++;
        if (j > i) {
            json_error_t err;
            json_t *o = json_loadb(buf + i, j - i, JSON_ALLOW_NUL, &err);
            json_t *t = json_is_object(o) ? json_object_get(o, "text") : NULL;
            if (!t || !json_is_string(t)) {
                qh_error("%s:%lld: expected a JSON object with a string \"text\"%s%s", path, (long long)d->lines,
                         o ? "" : ": ", o ? "" : err.text);
                json_decref(o);
                jsonl_close(d);
                return -1;
            }
            if (d->n == cap) {
                cap *= 2;
                d->off = qh_realloc(d->off, sizeof(size_t) * (size_t)cap);
                d->len = qh_realloc(d->len, sizeof(size_t) * (size_t)cap);
            }
            size_t tl = json_string_length(t); /* < j - i: the line holds {"text": "..."} around it */
            memcpy(buf + i, json_string_value(t), tl);
            buf[i + tl] = '\0';
            d->off[d->n] = i;
            d->len[d->n] = tl;
            d->n++;
            json_decref(o);
        }
        i = j + 1;
    }
    return 0;
}
