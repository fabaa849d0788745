/* fuzz.h: the mutation fuzzer the parser tests share (test_hf.c for
 * safetensors / config.json, test_tokenizer_hf.c for tokenizer.json): a
 * seeded splitmix64 generator and one random mutation of a byte buffer (bit
 * flips, truncation, insertion of a dictionary token or random bytes,
 * deletion, a digit run replaced by another number, a chunk copied over
 * another place). Header-only. Not here: what is fuzzed or checked. */
#ifndef QH_FUZZ_H
#define QH_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct Fuzz {
    uint64_t state;
    const char *const *dict; /* tokens the insertions draw from (borrowed) */
    size_t ndict;
} Fuzz;

static inline void fuzz_init(Fuzz *f, uint64_t seed, const char *const *dict, size_t ndict) {
    f->state = seed;
    f->dict = dict;
    f->ndict = ndict;
}

static inline uint64_t fuzz_rand(Fuzz *f) {
    uint64_t z = (f->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline size_t fuzz_range(Fuzz *f, size_t n) { return n ? (size_t)(fuzz_rand(f) % n) : 0; }

/* One random mutation of buf[0..*n) (capacity cap); [lo, hi): the byte range most mutations target. */
static inline void fuzz_mutate(Fuzz *f, unsigned char *buf, size_t *n, size_t cap, size_t lo, size_t hi) {
    static const char *const numbers[] = {"0", "1", "-1", "2", "3", "7", "8", "16", "4294967296", "9223372036854775807",
                                          "9223372036854775808", "-9223372036854775808", "1e3", "2.5", "65", "127",
                                          "1e-300", "100000000", "99999999999999999999999"};
    if (hi > *n) hi = *n;
    if (lo >= hi) lo = 0, hi = *n;
    size_t span = hi - lo;
    switch (fuzz_rand(f) % 6) {
    case 0: /* bit flips */
        for (int k = 1 + (int)fuzz_range(f, 3); k-- > 0 && *n;)
            buf[lo + fuzz_range(f, span)] ^= (unsigned char)(1u << fuzz_range(f, 8));
        break;
    case 1: /* truncation */
        *n = fuzz_range(f, *n + 1);
        break;
    case 2: { /* insertion: dictionary token or random bytes */
        unsigned char ins[32];
        size_t k;
        if (fuzz_rand(f) % 2 && f->ndict) {
            const char *d = f->dict[fuzz_range(f, f->ndict)];
            k = strlen(d) < sizeof ins ? strlen(d) : sizeof ins;
            memcpy(ins, d, k);
        } else {
            k = 1 + fuzz_range(f, 8);
            for (size_t i = 0; i < k; i++) ins[i] = (unsigned char)fuzz_rand(f);
        }
        if (*n + k > cap) break;
        size_t at = lo + fuzz_range(f, span + 1);
        memmove(buf + at + k, buf + at, *n - at);
        memcpy(buf + at, ins, k);
        *n += k;
        break;
    }
    case 3: { /* deletion */
        if (!span) break;
        size_t at = lo + fuzz_range(f, span), k = 1 + fuzz_range(f, 16);
        if (at + k > *n) k = *n - at;
        memmove(buf + at, buf + at + k, *n - at - k);
        *n -= k;
        break;
    }
    case 4: { /* number change: a digit run in the target range replaced */
        if (!span) break;
        size_t at = lo + fuzz_range(f, span), end = at;
        while (at < hi && !(buf[at] >= '0' && buf[at] <= '9')) at++;
        if (at >= hi) break;
        end = at;
        while (end < *n && buf[end] >= '0' && buf[end] <= '9') end++;
        char num[32];
        if (fuzz_rand(f) % 3) snprintf(num, sizeof num, "%s", numbers[fuzz_range(f, sizeof numbers / sizeof numbers[0])]);
        else snprintf(num, sizeof num, "%llu", (unsigned long long)(fuzz_rand(f) >> fuzz_range(f, 64)));
        size_t k = strlen(num), old = end - at;
        if (*n - old + k > cap) break;
        memmove(buf + at + k, buf + end, *n - end);
        memcpy(buf + at, num, k);
        *n = *n - old + k;
        break;
    }
    default: { /* copy a chunk over another place */
        if (span < 2) break;
        size_t a = lo + fuzz_range(f, span), b = lo + fuzz_range(f, span), k = 1 + fuzz_range(f, 24);
        if (a + k > *n) k = *n - a;
        if (b + k > *n) k = *n - b;
        memmove(buf + b, buf + a, k);
        break;
    }
    }
}

#endif
