/* safetensors.h: the safetensors container (huggingface/safetensors): an
 * 8-byte little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {str: str}?, NAME: {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * (offsets relative to the first byte after the header), then the raw
 * little-endian tensor bytes. The reader validates the whole header against the
 * buffer before anything uses it (length within the file, a JSON object, every
 * tensor's dtype, shape and offsets, offsets in range, non-overlapping, sized
 * exactly numel * dtype size) and converts F32, F16 and BF16 tensors to fp32
 * exactly. The writer converts fp32 tensors to one of those dtypes.
 * Not here: which tensors a model needs, their names or shapes (hf_model.c). */
#ifndef QH_SAFETENSORS_H
#define QH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32 = 0, ST_F16, ST_BF16, ST_DTYPE_COUNT } StDtype;
#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1000u * 1000u) /* the reference reader's limit */

typedef struct StTensor {
    char *name; /* owned */
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;             /* product of shape (1 for a scalar) */
    uint64_t begin, end;       /* byte range within the data section */
    const unsigned char *data; /* borrowed: numel * size bytes inside the buffer; not aligned */
} StTensor;

typedef struct StFile {
    char *what;          /* name used in messages: the path (owned) */
    void *map;           /* read-only mmap of the file (owned), NULL when parsed from a caller's buffer */
    size_t map_size;
    StTensor *tensors;   /* (n_tensors) owned, in header order */
    int n_tensors;
} StFile;

size_t st_dtype_size(StDtype d);
const char *st_dtype_name(StDtype d); /* "F32", "F16", "BF16" */
/* "F32" | "F16" | "BF16" -> StDtype; -1 (no message) otherwise. */
int st_dtype_parse(const char *s, StDtype *out);

/* Validate and index the safetensors bytes buf[0..size) (borrowed; must outlive
 * f). 0, or -1 with a message naming `what` and the offending tensor / key; on
 * failure f is left empty (st_close is harmless). */
int st_parse(StFile *f, const void *buf, size_t size, const char *what);
/* Map `path` read-only and st_parse it. */
int st_open(StFile *f, const char *path);
void st_close(StFile *f);

const StTensor *st_find(const StFile *f, const char *name);
/* dst (numel) <- the tensor as fp32 (bf16 and fp16 converted exactly). */
void st_to_f32(const StTensor *t, float *dst);
/* The same for elements [first, first + n) of t (in range: the caller's business). */
void st_to_f32_range(const StTensor *t, int64_t first, int64_t n, float *dst);

/* One tensor to write: fp32 rows, shape (rows, cols) or (cols) when ndim is 1.
 * row_perm, when not NULL, reorders rows: output row r is input row row_perm[r]
 * (of a 1-D tensor: its elements). */
typedef struct StOut {
    const char *name;
    const float *data; /* borrowed */
    int ndim;          /* 1 or 2 */
    int64_t shape[2];
    const int32_t *row_perm; /* (rows) or NULL */
} StOut;

/* Write tensors t[0..n) to `path` in dtype (converted from fp32), header padded
 * with spaces to a multiple of 8, metadata {"format": "pt"}. Not atomic: the
 * caller writes into a temporary folder. 0 or -1 with a message. */
int st_write(const char *path, const StOut *t, int n, StDtype dtype);
/* Bytes st_write would produce for these tensors' data (excluding the header). */
uint64_t st_data_bytes(const StOut *t, int n, StDtype dtype);

/* "an object", "a string", ...: the JSON type of v, for error messages (also used by hf_model.c). */
#include <jansson.h>
const char *st_json_kind(const json_t *v);

#endif
