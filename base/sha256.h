/* sha256.h: SHA-256 (FIPS 180-4) of an in-memory buffer and of a file, as a
 * lowercase hex string. Used to check data files against MANIFEST.tsv.
 * Not here: HMAC, other hash functions, or any manifest parsing. */
#ifndef QH_SHA256_H
#define QH_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Incremental interface (the two calls below are built on it). */
typedef struct Sha256 {
    uint32_t h[8];
    uint64_t nbytes;          /* total bytes fed so far */
    unsigned char block[64];  /* pending partial block */
    size_t fill;              /* bytes used in block */
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t len);
/* Writes the 32-byte digest; the state must be re-initialized before reuse. */
void sha256_final(Sha256 *s, unsigned char digest[32]);

/* hex: 64 lowercase hex digits plus a NUL. */
void sha256_buf(const void *data, size_t len, char hex[65]);
/* Returns 0, or -1 with a message naming the file if it cannot be opened or read. */
int sha256_file(const char *path, char hex[65]);

#endif
