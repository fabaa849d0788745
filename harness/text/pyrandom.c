/* pyrandom.c: MT19937 with CPython's seeding (init_genrand(19650218) followed
 * by init_by_array over the seed's 32-bit words) and CPython's derivations of
 * getrandbits, _randbelow, randint and random() from the 32-bit stream.
 * Not here: any generator other than CPython's Mersenne Twister. */
#include "pyrandom.h"

#include <assert.h>

enum { MT_N = 624, MT_M = 397 };
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER 0x80000000u
#define MT_LOWER 0x7fffffffu

static void init_genrand(PyRandom *r, uint32_t s) {
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->index = MT_N;
}

static void init_by_array(PyRandom *r, const uint32_t *key, int klen) {
    init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > klen ? MT_N : klen; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++; j++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
        if (j >= klen) j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) { r->mt[0] = r->mt[MT_N - 1]; i = 1; }
    }
    r->mt[0] = 0x80000000u; /* guarantees a non-zero initial state */
    r->index = MT_N;
}

void pyrandom_seed(PyRandom *r, uint64_t seed) {
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(r, key, key[1] ? 2 : 1);
}

static void regenerate(PyRandom *r) {
    uint32_t *mt = r->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & MT_UPPER) | (mt[(i + 1) % MT_N] & MT_LOWER);
        mt[i] = mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    }
    r->index = 0;
}

uint32_t pyrandom_genrand32(PyRandom *r) {
    if (r->index >= MT_N) regenerate(r);
    uint32_t y = r->mt[r->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t pyrandom_getrandbits(PyRandom *r, int k) {
    assert(k >= 1 && k <= 64);
    if (k <= 32) return pyrandom_genrand32(r) >> (32 - k);
    uint64_t lo = pyrandom_genrand32(r);              /* first word: all 32 bits */
    uint64_t hi = pyrandom_genrand32(r) >> (64 - k);  /* last word: top k-32 bits */
    return lo | (hi << 32);
}

static int bit_length(uint64_t n) {
    int b = 0;
    while (n) { b++; n >>= 1; }
    return b;
}

uint64_t pyrandom_randbelow(PyRandom *r, uint64_t n) {
    assert(n >= 1);
    int k = bit_length(n);
    uint64_t v;
    do v = pyrandom_getrandbits(r, k);
    while (v >= n);
    return v;
}

int64_t pyrandom_randint(PyRandom *r, int64_t a, int64_t b) {
    assert(a <= b);
    uint64_t width = (uint64_t)b - (uint64_t)a + 1u; /* wraps to 0 only for width 2^64 */
    uint64_t off;
    if (width) {
        off = pyrandom_randbelow(r, width);
    } else {
        /* n = 2^64: bit_length 65, so getrandbits(65) = two full words plus the
         * top bit of a third; rejected unless that 65th bit is 0. */
        uint64_t lo, top;
        do {
            lo = pyrandom_genrand32(r);
            lo |= (uint64_t)pyrandom_genrand32(r) << 32;
            top = pyrandom_genrand32(r) >> 31;
        } while (top);
        off = lo;
    }
    return (int64_t)((uint64_t)a + off);
}

double pyrandom_random(PyRandom *r) {
    uint32_t a = pyrandom_genrand32(r) >> 5, b = pyrandom_genrand32(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}
