/* h5io.h: the harness's only door to HDF5. A thin layer over groups, typed
 * n-dimensional datasets and scalar/string attributes, with files written
 * atomically: h5_create() writes to "<path>.tmp.<host>.<pid>" and h5_commit() renames
 * it into place, so a killed process never leaves a half-written result.
 * What goes into the files (the schema) is decided by results.c and
 * quant_io.c, not here. */
#ifndef QH_H5IO_H
#define QH_H5IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct H5File H5File;
typedef enum { H5T_QH_F32, H5T_QH_F64, H5T_QH_I32, H5T_QH_I64, H5T_QH_U8, H5T_QH_U16 } H5QhType;

int h5_create(const char *path, H5File **out);      /* new file (written to a temp path) */
int h5_open_read(const char *path, H5File **out);   /* existing file, read-only */
int h5_open_rw(const char *path, H5File **out);     /* existing file, edited on a temp copy */
int h5_commit(H5File **f);                          /* close and rename into place */
void h5_abort(H5File **f);                          /* close and delete the temp file */

/* h5_write stores a dataset of 4096 elements or more in deflated chunks of
 * at most H5_CHUNK_ELEMENTS elements; h5_open_read gives the file a metadata
 * cache of a fixed H5_READ_MDC_BYTES (of metadata as stored). */
enum { H5_CHUNK_ELEMENTS = 1 << 20, H5_READ_MDC_BYTES = 256 << 10 };
/* Host bytes the HDF5 library may hold besides the caller's arrays while
 * datasets of at most `largest` bytes of a file opened by h5_open_read are
 * read one at a time (an upper bound for the memory plan): the dataset's
 * chunk cache (the library's default size, at most the dataset), one chunk
 * (at most H5_CHUNK_ELEMENTS 4-byte elements, at most the dataset) as read
 * and as inflated, and the metadata cache's objects in memory. */
size_t h5_read_buffer_bytes(size_t largest);

/* Groups: "a/b/c" creates the missing parents. */
int h5_group(H5File *f, const char *path);
int h5_exists(H5File *f, const char *path);
/* Remove a link (e.g. a group of an unfinished point). */
int h5_delete(H5File *f, const char *path);

/* Datasets: rank 1 or 2 (dims[1] = 0 for rank 1); chunked + deflate when large. */
int h5_write(H5File *f, const char *path, H5QhType t, const void *data, int64_t d0, int64_t d1);
/* Read: *d0, *d1 filled; data allocated with qh_malloc. The stored values are
 * converted to t whatever their type (see h5_dataset_type to refuse that). */
int h5_read(H5File *f, const char *path, H5QhType t, void **data, int64_t *d0, int64_t *d1);
/* The type a dataset is stored in; -1 after a message when missing or not one of H5QhType. */
int h5_dataset_type(H5File *f, const char *path, H5QhType *t);
/* "float32", "float64", "int32", "int64", "uint8", "uint16". */
const char *h5_type_name(H5QhType t);

/* Attributes on an object (group or dataset path; "/" = root). */
int h5_attr_str(H5File *f, const char *obj, const char *name, const char *value);
int h5_attr_f64(H5File *f, const char *obj, const char *name, double value);
int h5_attr_i64(H5File *f, const char *obj, const char *name, int64_t value);
int h5_has_attr(H5File *f, const char *obj, const char *name); /* 1 if present */
int h5_get_attr_str(H5File *f, const char *obj, const char *name, char **value);
int h5_get_attr_f64(H5File *f, const char *obj, const char *name, double *value);
int h5_get_attr_i64(H5File *f, const char *obj, const char *name, int64_t *value);

const char *h5_path(const H5File *f); /* the final path */

#endif
