/* safetensors.c: reading (validated) and writing the safetensors container
 * (see safetensors.h). The header is checked completely, against the size of
 * the buffer, before any tensor pointer is handed out; jansson parses the JSON
 * (duplicate keys refused). Not here: model names and shapes (hf_model.c). */
#define _GNU_SOURCE
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads tensor bytes in place: little-endian hosts only"
#endif

static const char *const dtype_names[ST_DTYPE_COUNT] = {"F32", "F16", "BF16"};
static const size_t dtype_sizes[ST_DTYPE_COUNT] = {4, 2, 2};

size_t st_dtype_size(StDtype d) { return dtype_sizes[d]; }
const char *st_dtype_name(StDtype d) { return dtype_names[d]; }

int st_dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(s, dtype_names[i])) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

void st_close(StFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->map) munmap(f->map, f->map_size);
    free(f->what);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* One tensor entry {"dtype", "shape", "data_offsets"} of the header -> t. */
static int parse_entry(StTensor *t, const char *name, json_t *v, uint64_t data_size, const char *what) {
    if (!json_is_object(v))
        return qh_error("'%s': tensor '%s': expected an object {dtype, shape, data_offsets}, got %s", what, name,
                        st_json_kind(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return qh_error("'%s': tensor '%s': unknown key '%s' (expected dtype, shape, data_offsets)", what, name, k);
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return qh_error("'%s': tensor '%s': missing key '%s'", what, name,
                        !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!json_is_string(dt))
        return qh_error("'%s': tensor '%s': dtype: expected a string, got %s", what, name, st_json_kind(dt));
    if (st_dtype_parse(json_string_value(dt), &t->dtype) != 0)
        return qh_error("'%s': tensor '%s': dtype '%s' is not supported (expected F32, F16 or BF16)", what, name,
                        json_string_value(dt));
    if (!json_is_array(sh) || json_array_size(sh) > ST_MAX_DIMS)
        return qh_error("'%s': tensor '%s': shape: expected an array of at most %d integers, got %s", what, name,
                        ST_MAX_DIMS, st_json_kind(sh));
    t->ndim = (int)json_array_size(sh);
    t->numel = 1;
    const int64_t limit = INT64_MAX / 8; /* numel * dtype size must fit in int64 */
    for (int d = 0; d < t->ndim; d++) {
        json_t *e = json_array_get(sh, (size_t)d);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return qh_error("'%s': tensor '%s': shape[%d]: expected a non-negative integer", what, name, d);
        int64_t n = json_integer_value(e);
        if (n > 0 && t->numel > limit / n)
            return qh_error("'%s': tensor '%s': shape has more than %lld elements", what, name, (long long)limit);
        t->shape[d] = n;
        t->numel *= n;
    }
    if (!json_is_array(off) || json_array_size(off) != 2)
        return qh_error("'%s': tensor '%s': data_offsets: expected [begin, end], got %s", what, name, st_json_kind(off));
    json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return qh_error("'%s': tensor '%s': data_offsets: expected two non-negative integers", what, name);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if (t->begin > t->end || t->end > data_size)
        return qh_error("'%s': tensor '%s': data_offsets [%llu, %llu] out of range (the data section holds %llu bytes)",
                        what, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)data_size);
    uint64_t need = (uint64_t)t->numel * dtype_sizes[t->dtype];
    if (t->end - t->begin != need) {
        char shp[160] = "";
        size_t p = 0;
        for (int d = 0; d < t->ndim && p < sizeof shp - 24; d++)
            p += (size_t)snprintf(shp + p, sizeof shp - p, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        return qh_error("'%s': tensor '%s': data_offsets [%llu, %llu] span %llu bytes, but dtype %s and shape [%s] "
                        "need %llu",
                        what, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        (unsigned long long)(t->end - t->begin), dtype_names[t->dtype], shp, (unsigned long long)need);
    }
    return 0;
}

static int cmp_by_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

int st_parse(StFile *f, const void *buf, size_t size, const char *what) {
    memset(f, 0, sizeof *f);
    const unsigned char *bytes = buf;
    if (size < 8) return qh_error("'%s': %zu bytes, shorter than the 8-byte safetensors header length", what, size);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    if (hlen > size - 8)
        return qh_error("'%s': header length %llu exceeds the file (%zu bytes after the 8-byte length)", what,
                        (unsigned long long)hlen, size - 8);
    if (hlen > ST_MAX_HEADER)
        return qh_error("'%s': header length %llu exceeds the limit of %u bytes", what, (unsigned long long)hlen,
                        ST_MAX_HEADER);
    if (hlen < 2 || bytes[8] != '{')
        return qh_error("'%s': the header does not start with '{' (not a safetensors file?)", what);
    json_error_t je;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return qh_error("'%s': the header is not valid JSON: %s (header byte %d)", what, je.text, je.position);
    int rc = 0;
    StTensor **order = NULL;
    if (!json_is_object(root)) {
        rc = qh_error("'%s': the header is %s, expected a JSON object", what, st_json_kind(root));
        goto done;
    }
    uint64_t data_size = size - 8 - hlen;
    f->tensors = qh_calloc(json_object_size(root), sizeof(StTensor));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                rc = qh_error("'%s': __metadata__: expected an object of strings, got %s", what, st_json_kind(val));
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = qh_error("'%s': __metadata__ key '%s': expected a string, got %s", what, mk, st_json_kind(mv));
                    goto done;
                }
            }
            continue;
        }
        StTensor *t = &f->tensors[f->n_tensors];
        if (parse_entry(t, key, val, data_size, what) != 0) {
            rc = -1;
            goto done;
        }
        t->name = qh_strdup(key);
        t->data = bytes + 8 + hlen + t->begin;
        f->n_tensors++;
    }
    /* non-overlapping: sorted by begin, each range starts at or after the end of the previous one */
    order = qh_malloc((size_t)f->n_tensors * sizeof *order);
    for (int i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof *order, cmp_by_begin);
    for (int i = 1; i < f->n_tensors; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rc = qh_error("'%s': tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", what, order[i - 1]->name,
                          (unsigned long long)order[i - 1]->begin, (unsigned long long)order[i - 1]->end,
                          order[i]->name, (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
            goto done;
        }
    f->what = qh_strdup(what);
done:
    free(order);
    json_decref(root);
    if (rc != 0) st_close(f);
    return rc;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    struct stat st;
    int fd = qh_open_regular(path, "safetensors file", &st);
    if (fd < 0) return -1;
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return qh_error("'%s': %zu bytes, shorter than the 8-byte safetensors header length", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return qh_error("cannot mmap '%s': %s", path, strerror(errno));
    if (st_parse(f, map, size, path) != 0) {
        munmap(map, size);
        return -1;
    }
    f->map = map;
    f->map_size = size;
    return 0;
}

void st_to_f32_range(const StTensor *t, int64_t first, int64_t n, float *dst) {
    const unsigned char *p = t->data + (size_t)first * dtype_sizes[t->dtype];
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, (size_t)n * 4); break;
    case ST_F16:
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) dst[i] = qh_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    default: /* ST_BF16 */
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) dst[i] = qh_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    }
}

void st_to_f32(const StTensor *t, float *dst) { st_to_f32_range(t, 0, t->numel, dst); }

static int64_t out_numel(const StOut *t) { return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1]; }

uint64_t st_data_bytes(const StOut *t, int n, StDtype dtype) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += (uint64_t)out_numel(&t[i]) * dtype_sizes[dtype];
    return total;
}

int st_write(const char *path, const StOut *t, int n, StDtype dtype) {
    size_t ds = dtype_sizes[dtype];
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (json_object_get(root, t[i].name)) {
            json_decref(root);
            return qh_error("'%s': tensor name '%s' given twice", path, t[i].name);
        }
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        json_object_set_new(e, "dtype", json_string(dtype_names[dtype]));
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_object_set_new(e, "shape", shape);
        uint64_t bytes = (uint64_t)out_numel(&t[i]) * ds;
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + bytes)));
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(root, t[i].name, e);
        off += bytes;
    }
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(hdr);
        return qh_error("cannot create '%s': %s", path, strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = fwrite(len8, 8, 1, fp) != 1 || fwrite(hdr, 1, hlen, fp) != hlen;
    for (size_t i = hlen; i < padded; i++) bad |= fputc(' ', fp) == EOF;
    free(hdr);
    unsigned char *row = NULL;
    for (int i = 0; i < n && !bad; i++) {
        /* a 1-D tensor is one row, or, with row_perm, shape[0] rows of one element */
        int one_d = t[i].ndim == 1, by_elem = one_d && t[i].row_perm;
        int64_t rows = one_d && !by_elem ? 1 : t[i].shape[0], cols = by_elem ? 1 : one_d ? t[i].shape[0] : t[i].shape[1];
        row = qh_realloc(row, (size_t)cols * ds);
        for (int64_t r = 0; r < rows && !bad; r++) {
            const float *src = t[i].data + (int64_t)(t[i].row_perm ? t[i].row_perm[r] : r) * cols;
            if (dtype == ST_F32) {
                memcpy(row, src, (size_t)cols * 4);
            } else {
                for (int64_t j = 0; j < cols; j++) {
                    uint16_t h = dtype == ST_F16 ? qh_f32_to_f16(src[j]) : qh_f32_to_bf16(src[j]);
                    row[2 * j] = (unsigned char)(h & 0xff);
                    row[2 * j + 1] = (unsigned char)(h >> 8);
                }
            }
            bad |= fwrite(row, ds, (size_t)cols, fp) != (size_t)cols;
        }
    }
    free(row);
    bad |= fflush(fp) != 0;
    bad |= fclose(fp) != 0;
    if (bad) {
        int e = errno;
        unlink(path);
        return qh_error("cannot write '%s': %s", path, strerror(e));
    }
    return 0;
}
