/* half.c: fp16 and bf16 <-> fp32 conversions (see half.h), on the bit
 * patterns (rintf, round-to-nearest-even, for the fp16 subnormals). */
#include "half.h"

#include <math.h>
#include <string.h>

uint16_t qh_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (absx < 0x38800000u) {                                    /* subnormal or zero */
        /* value = absx as float; half subnormal unit is 2^-24 */
        float a;
        memcpy(&a, &absx, 4);
        float scaled = a * 16777216.0f; /* 2^24, exact */
        uint32_t m = (uint32_t)rintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((absx >> 23) - 127 + 15);
    uint32_t mant = absx & 0x7fffffu;
    uint32_t h = (e << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* carry may bump exponent: correct */
    return (uint16_t)(sign | h);
}

float qh_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float out;
    if (e == 0) {
        out = ldexpf((float)m, -24);
        uint32_t x;
        memcpy(&x, &out, 4);
        x |= sign;
        memcpy(&out, &x, 4);
        return out;
    }
    uint32_t x = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e - 15 + 127) << 23) | (m << 13));
    memcpy(&out, &x, 4);
    return out;
}

float qh_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t qh_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* NaN: keep it a (quiet) NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest, ties to even; a carry may reach inf, which is right */
    return (uint16_t)(x >> 16);
}
