/* tokfile.h: arrays of token ids read from a file, for calibration on ids
 * that were tokenized elsewhere (`tokens:PATH`, e.g. the SpQR authors'
 * RedPajama / RefinedWeb samples converted by tools/pth_to_npy.py): a NumPy
 * .npy file (format versions 1-3, little-endian int32 '<i4' or int64 '<i8',
 * C order, shape (N, T) = N windows of T tokens, or (T,) = one stream) or,
 * for any other file name, raw little-endian int32 (one stream). Anything
 * else is refused with the file and what was expected.
 * Not here: checking ids against a vocabulary (the caller knows the model). */
#ifndef QH_TOKFILE_H
#define QH_TOKFILE_H

#include <stdint.h>

typedef struct TokenFile {
    int *ids;          /* (rows, cols) row-major, owned */
    int64_t rows, cols;/* 2-D: (N, T); 1-D and raw: rows 1, cols = all ids */
    int ndim;          /* 2, or 1 for a (T,) array and a raw file */
    char format[96];   /* "npy <i8 (128, 2048)", "raw int32 (4096,)" */
    char sha256[65];   /* of the file */
} TokenFile;

/* 0, or -1 with a message naming the file (nothing to free). Values outside
 * the int32 range are refused with their element index. */
int tokfile_read(const char *path, TokenFile *t);
void tokfile_free(TokenFile *t);

#endif
