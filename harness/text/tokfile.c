/* tokfile.c: reading token-id arrays from .npy and raw int32 files (see
 * tokfile.h). The .npy header is the Python dict literal that numpy.save
 * writes ({'descr': '<i8', 'fortran_order': False, 'shape': (N, T), }); only
 * its three keys are read. */
#include "tokfile.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

void tokfile_free(TokenFile *t) {
    if (t) QH_FREE(t->ids);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static uint64_t le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The value text after 'key': in the header dict (NULL when absent). */
static const char *dict_value(const char *hdr, const char *key) {
    char k[40];
    snprintf(k, sizeof k, "'%s'", key);
    const char *p = strstr(hdr, k);
    if (!p) return NULL;
    p += strlen(k);
    while (isspace((unsigned char)*p)) p++;
    if (*p != ':') return NULL;
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* The ids as int, from `count` little-endian integers of `width` bytes. */
static int convert(const char *path, const unsigned char *data, int64_t count, int width, int **out) {
    int *ids = qh_malloc(sizeof(int) * (size_t)(count ? count : 1));
    for (int64_t i = 0; i < count; i++) {
        int64_t v = (int64_t)le(data + (size_t)i * width, width);
        if (width == 4) v = (int32_t)(uint32_t)v;
        if (v < INT_MIN || v > INT_MAX) {
            free(ids);
            return qh_error("'%s': element %lld is %lld, outside the int32 range of token ids", path, (long long)i,
                            (long long)v);
        }
        ids[i] = (int)v;
    }
    *out = ids;
    return 0;
}

static int read_npy(const char *path, const unsigned char *b, size_t n, TokenFile *t) {
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return qh_error("'%s': not a .npy file (no \\x93NUMPY magic)", path);
    int major = b[6];
    size_t hl, start;
    if (major == 1) hl = (size_t)le(b + 8, 2), start = 10;
    else if ((major == 2 || major == 3) && n >= 12) hl = (size_t)le(b + 8, 4), start = 12;
    else return qh_error("'%s': .npy format version %d.%d is not supported (expected 1, 2 or 3)", path, major, b[7]);
    if (start + hl > n) return qh_error("'%s': .npy header of %zu bytes runs past the end of the file", path, hl);
    char *hdr = qh_malloc(hl + 1);
    memcpy(hdr, b + start, hl);
    hdr[hl] = '\0';
    int rc = -1, width = 0;
    const char *d = dict_value(hdr, "descr"), *fo = dict_value(hdr, "fortran_order"), *sh = dict_value(hdr, "shape");
    int64_t dims[2] = {0, 0};
    int nd = 0;
    if (!d || !fo || !sh) {
        qh_error("'%s': .npy header lacks descr, fortran_order or shape: %s", path, hdr);
        goto out;
    }
    if (!strncmp(d, "'<i8'", 5)) width = 8;
    else if (!strncmp(d, "'<i4'", 5)) width = 4;
    else {
        const char *e = strchr(d + 1, '\'');
        qh_error("'%s': .npy dtype %.*s is not supported (expected little-endian int32 '<i4' or int64 '<i8')", path,
                 e ? (int)(e - d + 1) : 8, d);
        goto out;
    }
    if (strncmp(fo, "False", 5) != 0) {
        qh_error("'%s': .npy array is in Fortran order (expected C order: numpy.ascontiguousarray before saving)", path);
        goto out;
    }
    if (*sh != '(') {
        qh_error("'%s': .npy shape is not a tuple", path);
        goto out;
    }
    for (const char *p = sh + 1;;) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (*p == ')') break;
        char *e;
        long long v = strtoll(p, &e, 10);
        if (e == p || v < 0 || nd == 2) {
            qh_error("'%s': .npy shape %.*s is not supported (expected (N, T) windows or (T,) one stream)", path,
                     (int)(strchr(sh, ')') ? strchr(sh, ')') - sh + 1 : 16), sh);
            goto out;
        }
        dims[nd++] = v;
        p = e;
    }
    if (nd == 0) {
        qh_error("'%s': .npy array is a scalar (expected (N, T) windows or (T,) one stream)", path);
        goto out;
    }
    int64_t count = nd == 2 ? dims[0] * dims[1] : dims[0];
    size_t data = start + hl;
    if (n - data != (size_t)count * (size_t)width) {
        qh_error("'%s': .npy data is %zu bytes, the header's shape and dtype need %lld", path, n - data,
                 (long long)count * width);
        goto out;
    }
    if (convert(path, b + data, count, width, &t->ids) != 0) goto out;
    t->ndim = nd;
    t->rows = nd == 2 ? dims[0] : 1;
    t->cols = nd == 2 ? dims[1] : dims[0];
    if (nd == 2) snprintf(t->format, sizeof t->format, "npy <i%d (%lld, %lld)", width, (long long)dims[0], (long long)dims[1]);
    else snprintf(t->format, sizeof t->format, "npy <i%d (%lld,)", width, (long long)dims[0]);
    rc = 0;
out:
    free(hdr);
    return rc;
}

int tokfile_read(const char *path, TokenFile *t) {
    memset(t, 0, sizeof *t);
    char *b;
    size_t n;
    if (qh_read_file(path, &b, &n) != 0) return -1;
    int rc;
    if (ends_with(path, ".npy")) {
        rc = read_npy(path, (const unsigned char *)b, n, t);
    } else if (n % 4 != 0) {
        rc = qh_error("'%s': %zu bytes is not a whole number of int32 token ids (a raw token file is little-endian "
                      "int32; name a NumPy file *.npy)", path, n);
    } else {
        rc = convert(path, (const unsigned char *)b, (int64_t)(n / 4), 4, &t->ids);
        t->ndim = 1;
        t->rows = 1;
        t->cols = (int64_t)(n / 4);
        snprintf(t->format, sizeof t->format, "raw int32 (%lld,)", (long long)t->cols);
    }
    if (rc == 0) sha256_buf(b, n, t->sha256);
    free(b);
    if (rc != 0) tokfile_free(t);
    return rc;
}
