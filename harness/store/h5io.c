/* h5io.c: HDF5 access for the whole harness (see h5io.h). The one file that
 * includes hdf5.h. Every HDF5 call goes through H5_CHECK, which prints the call,
 * file and line and makes the function return -1. */
#define _GNU_SOURCE
#include "h5io.h"

#include <errno.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define H5_CHECK(call)                                                                    \
    do {                                                                                  \
        if ((call) < 0) {                                                                 \
            return qh_error("HDF5 call failed: %s (%s:%d)", #call, __FILE__, __LINE__);  \
        }                                                                                 \
    } while (0)

struct H5File {
    hid_t id;
    char *path;    /* final path */
    char *tmp;     /* temp path being written, NULL when read-only */
};

static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

int h5_create(const char *path, H5File **out) {
    quiet();
    H5File *f = qh_calloc(1, sizeof *f);
    f->path = qh_strdup(path);
    f->tmp = qh_tmp_path(path);
    errno = 0; /* H5Fcreate leaves open(2)'s errno when that is what failed */
    f->id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f->id < 0) {
        qh_error("cannot create HDF5 file '%s' (written first as '%s'): %s", path, f->tmp,
                 errno ? strerror(errno) : "the HDF5 library refused to create it");
        free(f->path);
        free(f->tmp);
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

int h5_open_read(const char *path, H5File **out) {
    quiet();
    if (access(path, R_OK) != 0) return qh_error("cannot open '%s': %s", path, strerror(errno));
    /* a fixed-size metadata cache (H5_READ_MDC_BYTES): the library's default grows with every object read (up to
     * 32 MiB of metadata, many times that in memory), so that a block-by-block walk over a quantized model's file
     * would hold more of it after each block */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5_CHECK(fapl);
    H5AC_cache_config_t mdc = {.version = H5AC__CURR_CACHE_CONFIG_VERSION};
    if (H5Pget_mdc_config(fapl, &mdc) < 0) {
        H5Pclose(fapl);
        return qh_error("HDF5: cannot read the metadata cache configuration to open '%s'", path);
    }
    mdc.set_initial_size = 1;
    mdc.initial_size = mdc.min_size = mdc.max_size = H5_READ_MDC_BYTES;
    mdc.incr_mode = H5C_incr__off;
    mdc.flash_incr_mode = H5C_flash_incr__off;
    mdc.decr_mode = H5C_decr__off;
    herr_t set = H5Pset_mdc_config(fapl, &mdc);
    hid_t id = set < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (set < 0) return qh_error("HDF5: cannot set a %d KiB metadata cache to open '%s'", H5_READ_MDC_BYTES >> 10, path);
    if (id < 0) return qh_error("'%s' is not a readable HDF5 file", path);
    H5File *f = qh_calloc(1, sizeof *f);
    f->id = id;
    f->path = qh_strdup(path);
    *out = f;
    return 0;
}

size_t h5_read_buffer_bytes(size_t largest) {
    size_t rdcc = (size_t)1 << 20, nslots = 0; /* the library's default chunk cache, unless it says otherwise */
    int nelmts = 0;
    double w0 = 0;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) {
        H5Pget_cache(fapl, &nelmts, &nslots, &rdcc, &w0);
        H5Pclose(fapl);
    }
    /* the metadata cache's objects are larger in memory than as stored: planned as 16 times the cache's size
     * (tests/cli/test_stream.sh checks the plan against the peak RSS of a walk over a quantized model's file) */
    size_t chunk = (size_t)H5_CHUNK_ELEMENTS * 4;
    if (chunk > largest) chunk = largest;
    if (rdcc > largest) rdcc = largest;
    return rdcc + 2 * chunk + 16 * (size_t)H5_READ_MDC_BYTES;
}

static int copy_file(const char *from, const char *to) {
    char *data;
    size_t len;
    if (qh_read_file(from, &data, &len) != 0) return -1;
    FILE *o = fopen(to, "wb");
    int ok = o && fwrite(data, 1, len, o) == len;
    if (o) ok = (fclose(o) == 0) && ok;
    free(data);
    return ok ? 0 : qh_error("cannot write '%s'", to);
}

int h5_open_rw(const char *path, H5File **out) {
    quiet();
    H5File *f = qh_calloc(1, sizeof *f);
    f->path = qh_strdup(path);
    f->tmp = qh_tmp_path(path);
    if (copy_file(path, f->tmp) != 0 || (f->id = H5Fopen(f->tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) {
        unlink(f->tmp);
        qh_error("cannot open '%s' for update", path);
        free(f->path);
        free(f->tmp);
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

int h5_commit(H5File **pf) {
    H5File *f = *pf;
    *pf = NULL;
    int rc = 0;
    if (H5Fclose(f->id) < 0) rc = qh_error("closing HDF5 file '%s' failed", f->tmp ? f->tmp : f->path);
    if (f->tmp) {
        if (rc == 0 && rename(f->tmp, f->path) != 0) rc = qh_error("cannot rename to '%s': %s", f->path, strerror(errno));
        if (rc != 0) unlink(f->tmp);
    }
    free(f->path);
    free(f->tmp);
    free(f);
    return rc;
}

void h5_abort(H5File **pf) {
    H5File *f = *pf;
    if (!f) return;
    *pf = NULL;
    H5Fclose(f->id);
    if (f->tmp) unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    free(f);
}

const char *h5_path(const H5File *f) { return f->path; }

int h5_exists(H5File *f, const char *path) {
    if (!strcmp(path, "/")) return 1;
    /* check each prefix so that missing parents are not an error */
    char *p = qh_strdup(path);
    int ok = 1;
    for (char *s = p + 1; ok; s++) {
        char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            ok = H5Lexists(f->id, p, H5P_DEFAULT) > 0;
            *s = c;
            if (c == '\0') break;
        }
    }
    free(p);
    return ok;
}

int h5_group(H5File *f, const char *path) {
    char *p = qh_strdup(path);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (H5Lexists(f->id, p, H5P_DEFAULT) <= 0) {
                hid_t g = H5Gcreate2(f->id, p, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
                if (g < 0) {
                    qh_error("cannot create HDF5 group '%s' in '%s'", p, f->path);
                    free(p);
                    return -1;
                }
                H5Gclose(g);
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    free(p);
    return 0;
}

int h5_delete(H5File *f, const char *path) {
    if (!h5_exists(f, path)) return 0;
    H5_CHECK(H5Ldelete(f->id, path, H5P_DEFAULT));
    return 0;
}

static hid_t mem_type(H5QhType t) {
    switch (t) {
    case H5T_QH_F32: return H5T_NATIVE_FLOAT;
    case H5T_QH_F64: return H5T_NATIVE_DOUBLE;
    case H5T_QH_I32: return H5T_NATIVE_INT32;
    case H5T_QH_I64: return H5T_NATIVE_INT64;
    case H5T_QH_U8: return H5T_NATIVE_UINT8;
    default: return H5T_NATIVE_UINT16;
    }
}
static hid_t file_type(H5QhType t) {
    switch (t) {
    case H5T_QH_F32: return H5T_IEEE_F32LE;
    case H5T_QH_F64: return H5T_IEEE_F64LE;
    case H5T_QH_I32: return H5T_STD_I32LE;
    case H5T_QH_I64: return H5T_STD_I64LE;
    case H5T_QH_U8: return H5T_STD_U8LE;
    default: return H5T_STD_U16LE;
    }
}

/* Create the parent groups of a dataset/attribute path. */
static int parents(H5File *f, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *g = qh_strdup(path);
    g[slash - path] = '\0';
    int rc = h5_group(f, g);
    free(g);
    return rc;
}

int h5_write(H5File *f, const char *path, H5QhType t, const void *data, int64_t d0, int64_t d1) {
    if (parents(f, path) != 0) return -1;
    int rank = d1 > 0 ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)d0, (hsize_t)d1};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    H5_CHECK(space);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int64_t n = d0 * (d1 > 0 ? d1 : 1);
    if (n >= 4096 && d0 > 0) {
        hsize_t chunk[2] = {(hsize_t)d0, (hsize_t)(d1 > 0 ? d1 : 0)};
        /* chunks of at most H5_CHUNK_ELEMENTS */
        if (rank == 1 && chunk[0] > H5_CHUNK_ELEMENTS) chunk[0] = H5_CHUNK_ELEMENTS;
        if (rank == 2) {
            hsize_t rows = H5_CHUNK_ELEMENTS / (hsize_t)d1;
            if (rows < 1) rows = 1;
            if (chunk[0] > rows) chunk[0] = rows;
        }
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t ds = H5Dcreate2(f->id, path, file_type(t), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0) return qh_error("cannot create dataset '%s' in '%s'", path, f->path);
    herr_t st = n > 0 ? H5Dwrite(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    H5Dclose(ds);
    if (st < 0) return qh_error("cannot write dataset '%s' in '%s'", path, f->path);
    return 0;
}

static size_t type_size(H5QhType t) {
    switch (t) {
    case H5T_QH_F32: case H5T_QH_I32: return 4;
    case H5T_QH_F64: case H5T_QH_I64: return 8;
    case H5T_QH_U8: return 1;
    default: return 2;
    }
}

int h5_read(H5File *f, const char *path, H5QhType t, void **data, int64_t *d0, int64_t *d1) {
    if (!h5_exists(f, path)) return qh_error("'%s': dataset '%s' is missing", f->path, path);
    hid_t ds = H5Dopen2(f->id, path, H5P_DEFAULT);
    if (ds < 0) return qh_error("'%s': cannot open dataset '%s'", f->path, path);
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {0, 0};
    if (rank < 1 || rank > 2) {
        H5Sclose(space);
        H5Dclose(ds);
        return qh_error("'%s': dataset '%s' has rank %d, expected 1 or 2", f->path, path, rank);
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    int64_t n = (int64_t)dims[0] * (rank == 2 ? (int64_t)dims[1] : 1);
    void *buf = qh_malloc((size_t)n * type_size(t));
    herr_t st = n > 0 ? H5Dread(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    H5Dclose(ds);
    if (st < 0) {
        free(buf);
        return qh_error("'%s': cannot read dataset '%s'", f->path, path);
    }
    *data = buf;
    *d0 = (int64_t)dims[0];
    *d1 = rank == 2 ? (int64_t)dims[1] : 0;
    return 0;
}

const char *h5_type_name(H5QhType t) {
    static const char *names[] = {"float32", "float64", "int32", "int64", "uint8", "uint16"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

int h5_dataset_type(H5File *f, const char *path, H5QhType *t) {
    if (!h5_exists(f, path)) return qh_error("'%s': dataset '%s' is missing", f->path, path);
    hid_t ds = H5Dopen2(f->id, path, H5P_DEFAULT);
    if (ds < 0) return qh_error("'%s': cannot open dataset '%s'", f->path, path);
    hid_t ty = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(ty) : H5T_SGN_ERROR;
    H5Tclose(ty);
    H5Dclose(ds);
    int rc = 0;
    if (cls == H5T_FLOAT && sz == 4) *t = H5T_QH_F32;
    else if (cls == H5T_FLOAT && sz == 8) *t = H5T_QH_F64;
    else if (cls == H5T_INTEGER && sign == H5T_SGN_2 && sz == 4) *t = H5T_QH_I32;
    else if (cls == H5T_INTEGER && sign == H5T_SGN_2 && sz == 8) *t = H5T_QH_I64;
    else if (cls == H5T_INTEGER && sign == H5T_SGN_NONE && sz == 1) *t = H5T_QH_U8;
    else if (cls == H5T_INTEGER && sign == H5T_SGN_NONE && sz == 2) *t = H5T_QH_U16;
    else rc = qh_error("'%s': dataset '%s' has a type the harness does not write (class %d, %zu bytes)", f->path, path,
                       (int)cls, sz);
    return rc;
}

static int attr_prepare(H5File *f, const char *obj, const char *name) {
    if (strcmp(obj, "/") != 0 && !h5_exists(f, obj) && h5_group(f, obj) != 0) return -1;
    if (H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT) > 0) H5_CHECK(H5Adelete_by_name(f->id, obj, name, H5P_DEFAULT));
    return 0;
}

int h5_attr_str(H5File *f, const char *obj, const char *name, const char *value) {
    if (attr_prepare(f, obj, name) != 0) return -1;
    H5_CHECK(H5LTset_attribute_string(f->id, obj, name, value));
    return 0;
}
int h5_attr_f64(H5File *f, const char *obj, const char *name, double value) {
    if (attr_prepare(f, obj, name) != 0) return -1;
    H5_CHECK(H5LTset_attribute_double(f->id, obj, name, &value, 1));
    return 0;
}
int h5_attr_i64(H5File *f, const char *obj, const char *name, int64_t value) {
    if (attr_prepare(f, obj, name) != 0) return -1;
    long long v = value;
    H5_CHECK(H5LTset_attribute_long_long(f->id, obj, name, &v, 1));
    return 0;
}

static int attr_check(H5File *f, const char *obj, const char *name) {
    if (!h5_has_attr(f, obj, name))
        return qh_error("'%s': attribute '%s' of '%s' is missing", f->path, name, obj);
    return 0;
}

int h5_has_attr(H5File *f, const char *obj, const char *name) {
    return h5_exists(f, obj) && H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT) > 0;
}

int h5_get_attr_str(H5File *f, const char *obj, const char *name, char **value) {
    if (attr_check(f, obj, name) != 0) return -1;
    hsize_t dims;
    H5T_class_t cls;
    size_t sz;
    H5_CHECK(H5LTget_attribute_info(f->id, obj, name, &dims, &cls, &sz));
    if (cls != H5T_STRING) return qh_error("'%s': attribute '%s' of '%s' is not a string", f->path, name, obj);
    char *buf = qh_malloc(sz + 1);
    if (H5LTget_attribute_string(f->id, obj, name, buf) < 0) {
        free(buf);
        return qh_error("'%s': cannot read attribute '%s'", f->path, name);
    }
    buf[sz] = '\0';
    *value = buf;
    return 0;
}
int h5_get_attr_f64(H5File *f, const char *obj, const char *name, double *value) {
    if (attr_check(f, obj, name) != 0) return -1;
    H5_CHECK(H5LTget_attribute_double(f->id, obj, name, value));
    return 0;
}
int h5_get_attr_i64(H5File *f, const char *obj, const char *name, int64_t *value) {
    if (attr_check(f, obj, name) != 0) return -1;
    long long v;
    H5_CHECK(H5LTget_attribute_long_long(f->id, obj, name, &v));
    *value = v;
    return 0;
}
