/* pyrandom.h: a bit-exact port of the part of CPython's `random` module that
 * the evaluation protocol needs (SPEC section 7): random.seed(int) for
 * non-negative seeds up to 2^64-1, getrandbits(k) for 1 <= k <= 64,
 * _randbelow, randint and random(). Same MT19937 state and the same draws, so
 * window offsets equal those of the Python reference code.
 * Not here: seeding from str/bytes/None, shuffle, choice, sample, gauss, or
 * getstate/setstate compatibility with pickled Python states. */
#ifndef QH_PYRANDOM_H
#define QH_PYRANDOM_H

#include <stdint.h>

typedef struct {
    uint32_t mt[624];
    int index;  /* next word of mt to temper; 624 means "regenerate first" */
} PyRandom;

/* random.seed(seed): init_by_array over the 32-bit words of seed, least
 * significant word first, at least one word (seed 0 gives the key [0]). */
void pyrandom_seed(PyRandom *r, uint64_t seed);
/* One tempered 32-bit MT19937 output (CPython's genrand_uint32). */
uint32_t pyrandom_genrand32(PyRandom *r);
/* random.getrandbits(k), 1 <= k <= 64 (asserted): k <= 32 keeps the top k bits
 * of one output; larger k fills 32-bit words from the least significant end,
 * the last (most significant) word taking the top bits of its output. */
uint64_t pyrandom_getrandbits(PyRandom *r, int k);
/* random._randbelow(n), n >= 1 (asserted): getrandbits(n.bit_length())
 * repeated until the draw is below n. */
uint64_t pyrandom_randbelow(PyRandom *r, uint64_t n);
/* random.randint(a, b) = a + _randbelow(b - a + 1); a <= b (asserted). The
 * full int64 range (width 2^64, which needs 65-bit draws) is handled too. */
int64_t pyrandom_randint(PyRandom *r, int64_t a, int64_t b);
/* random.random(): 53-bit float in [0, 1) from two outputs. */
double pyrandom_random(PyRandom *r);

#endif
