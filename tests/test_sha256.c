/* test_sha256.c: SHA-256 against the FIPS 180-2 example vectors, block-boundary
 * lengths (expected digests computed once with Python's hashlib), incremental
 * feeding in odd-sized pieces, a real data file whose digest is listed in
 * data/MANIFEST.tsv, and the error path for a missing file.
 * Not here: anything about which data files exist beyond tok512.bin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sha256.h"
#include "util.h"

static const char *data_root(void) {
    const char *d = getenv("QH_DATA");
    return d && *d ? d : "data";
}

static void check_buf(const void *p, size_t n, const char *expect, const char *what) {
    char hex[65];
    sha256_buf(p, n, hex);
    CHECK(strcmp(hex, expect) == 0, "%s: got %s, expected %s", what, hex, expect);
}

int main(void) {
    /* FIPS 180-2 appendix B vectors. */
    check_buf("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    check_buf("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
    const char *v448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_buf(v448, strlen(v448),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448-bit");
    const char *million_a = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    char *ma = qh_malloc(1000000);
    memset(ma, 'a', 1000000);
    check_buf(ma, 1000000, million_a, "one million 'a'");

    /* The same million bytes fed incrementally in uneven pieces (1, 2, 3, ... bytes). */
    {
        Sha256 s;
        sha256_init(&s);
        size_t off = 0, step = 1;
        while (off < 1000000) {
            size_t take = step < 1000000 - off ? step : 1000000 - off;
            sha256_update(&s, ma + off, take);
            off += take;
            step = step % 157 + 1;
        }
        unsigned char d[32];
        sha256_final(&s, d);
        char hex[65];
        for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", d[i]);
        CHECK(strcmp(hex, million_a) == 0, "incremental million 'a': got %s", hex);
    }
    free(ma);

    /* Padding boundaries: bytes (i*7+3) & 255, digests from Python
     * hashlib.sha256(bytes((i*7+3)&255 for i in range(n))).hexdigest(). */
    static const struct { size_t n; const char *hex; } edges[] = {
        {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
        {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
        {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
        {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
        {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
        {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
        {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
    };
    for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
        unsigned char b[128];
        for (size_t i = 0; i < edges[k].n; i++) b[i] = (unsigned char)((i * 7 + 3) & 255);
        char what[32];
        snprintf(what, sizeof what, "%zu bytes", edges[k].n);
        check_buf(b, edges[k].n, edges[k].hex, what);
    }

    /* A real file: tok512.bin, digest as listed in MANIFEST.tsv. */
    {
        char path[4096], hex[65];
        snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", data_root());
        FILE *f = fopen(path, "rb");
        if (!f) {
            SKIP("data/models/stories260K/tok512.bin not present (run make data)");
        } else {
            fclose(f);
            int rc = sha256_file(path, hex);
            CHECK(rc == 0, "sha256_file(%s) returned %d", path, rc);
            CHECK(strcmp(hex, "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312") == 0,
                  "tok512.bin: got %s", hex);
        }
    }

    /* A missing file is an error (-1 with a message), not a digest. */
    {
        char hex[65] = "untouched";
        fprintf(stderr, "(an error message about a missing file is expected next)\n");
        int rc = sha256_file("/nonexistent/qh_no_such_file.bin", hex);
        CHECK(rc == -1, "missing file: returned %d", rc);
    }
    return test_summary();
}
