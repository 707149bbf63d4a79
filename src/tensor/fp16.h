/* fp16.h — scalar IEEE half and bfloat16 conversions (the reference; ISA files convert
 * whole rows with F16C / AVX-512 BF16). static inline: shared with ISA files.
 *
 *   half:     s eeeee mmmmmmmmmm          bias 15
 *   bfloat16: s eeeeeeee mmmmmmm          the top 16 bits of an IEEE float32
 */
#ifndef KS_FP16_H
#define KS_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t ks_fp16;
typedef uint16_t ks_bf16;

static inline uint32_t ks_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float ks_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Exact: every half is representable as a float. */
static inline float ks_fp16_to_fp32(ks_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {                       /* inf / NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {                   /* normal */
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {                   /* zero */
        bits = sign;
    } else {                                 /* subnormal: renormalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    return ks_f32_from_bits(bits);
}

/* Round to nearest even, overflow to inf, NaN stays NaN (quiet). */
static inline ks_fp16 ks_fp32_to_fp16(float f) {
    uint32_t x = ks_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u)                  /* NaN */
        return (ks_fp16)(sign | 0x7e00);
    if (absx >= 0x477ff000u)                 /* >= 65520 rounds to inf */
        return (ks_fp16)(sign | 0x7c00);
    if (absx < 0x38800000u) {                /* below the smallest normal half (2^-14) */
        if (absx < 0x33000000u)              /* below half of the smallest subnormal */
            return (ks_fp16)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;            /* so that the result counts 2^-24 units */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++;
        return (ks_fp16)(sign | q);
    }
    uint32_t h = ((absx >> 13) - (112u << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (ks_fp16)(sign | h);
}

static inline float ks_bf16_to_fp32(ks_bf16 b) { return ks_f32_from_bits((uint32_t)b << 16); }

/* Round to nearest even; NaN stays NaN (quiet). */
static inline ks_bf16 ks_fp32_to_bf16(float f) {
    uint32_t x = ks_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (ks_bf16)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (ks_bf16)(x >> 16);
}

#endif
