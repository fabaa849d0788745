/* pack.c: packing k-bit codes (k = 1..8) into a byte stream and back, LSB
 * first (layout in quant.h). Used by the stored format and its bit count.
 * Knows nothing about layers or statistics. */
#include <assert.h>
#include <string.h>

#include "quant.h"

size_t quant_packed_bytes(size_t count, int bits) {
    assert(bits >= 1 && bits <= 32);
    return (count * (size_t)bits + 7) / 8;
}

void quant_pack_codes(const uint8_t *codes, size_t count, int bits, uint8_t *out) {
    assert(bits >= 1 && bits <= 8);
    uint32_t mask = (1u << bits) - 1u;
    uint64_t acc = 0; /* pending bits, LSB = next stream bit */
    int nacc = 0;
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        assert(codes[i] <= mask);
        acc |= (uint64_t)(codes[i] & mask) << nacc;
        nacc += bits;
        while (nacc >= 8) {
            out[o++] = (uint8_t)(acc & 0xffu);
            acc >>= 8;
            nacc -= 8;
        }
    }
    if (nacc > 0) out[o++] = (uint8_t)(acc & 0xffu);
}

void quant_unpack_codes(const uint8_t *in, size_t count, int bits, uint8_t *codes) {
    assert(bits >= 1 && bits <= 8);
    uint32_t mask = (1u << bits) - 1u;
    uint64_t acc = 0;
    int nacc = 0;
    size_t i_in = 0;
    for (size_t i = 0; i < count; i++) {
        while (nacc < bits) {
            acc |= (uint64_t)in[i_in++] << nacc;
            nacc += 8;
        }
        codes[i] = (uint8_t)(acc & mask);
        acc >>= bits;
        nacc -= bits;
    }
}
