/* vec_dot_int_neon.h — the integer dot products of the NEON tables (Q8_0, Q4_0 and Q5_0
 * against Q8_0 activations; Q4_1 and Q5_1 against Q8_1; Q4_K, Q5_K and Q6_K against Q8_K;
 * and the low-bit Q2_K, Q3_K, IQ4_XS against Q8_K, IQ4_NL against Q8_0),
 * each as vec_dot and as vec_dot_4 (one weight row against four activation rows, each
 * block decoded once for all four, each row's steps those of vec_dot: equal bit for bit),
 * written once over a 16-byte signed dot step that the including file supplies:
 *
 *   vec_dot_neon.c     the step from widening multiplies (SMULL, SADALP): any ARMv8-A
 *   vec_dot_dotprod.c  the step as one SDOT (vdotq_s32): CPUs with DotProd
 *
 * Before including this header (once per file), define
 *
 *   static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b);
 *       acc plus the 16 products a[i] * b[i], spread over the four int32 lanes (which
 *       product lands in which lane is the step's business: the kernels only ever use
 *       the lanes' total, scaled as a whole)
 *   #define NEON_FN(name)   name##_<isa>, the suffix of the kernels' names
 *
 * Owns: the kernels and the unpacking of Q4_K/Q5_K scales into bytes.
 * Does not own: the layouts (quants.h), the specification (ref/vec_dot_ref.c), the
 * registration (the including files).
 * Only static inline code: included by files compiled with the ARM kernel flags.
 *
 * Integer part, exact. Every weight code fits an int8 (Q4_0 and Q6_K are recentred:
 * q - 8, q - 32), every activation code is an int8 (|a| <= 128), so a product is at most
 * 2^14 in magnitude and the dot step never saturates. A block's four lanes, already
 * multiplied by the integer sub-block scales for the K-quants, stay far inside int32:
 *
 *   Q8_0, Q4_0, Q5_0, Q4_1, Q5_1   8 products per lane             <= 2^17
 *   Q4_K, Q5_K   64 elements per lane x scale 63 x code 31 x 128    < 2^24
 *   Q6_K         64 elements per lane x |scale| 128 x 32 x 128      = 2^25
 *   Q2_K, Q3_K   64 elements per lane x scale 15 or 32 x code 3 or 4 x 128   < 2^21
 *   IQ4_XS       64 elements per lane x |scale| 32 x |value| 127 x 128       < 2^25
 *   mins         Q8_K's per-16 sums (|s| <= 2^11) in pairs, x mn 63, 8 terms < 2^21
 *
 * Float part. Each block's four int32 lanes are converted to float and added, times
 * the block's float scale, into four float lanes (one FMA each); the 32-element kernels
 * run two such accumulators, on alternate blocks. The lanes are added only at the end:
 * ref instead adds one float per block (32-element types) or keeps eight element-mod-8
 * lanes (K-quants), so results differ from ref's by float rounding (the tests' budgets,
 * 1e-6 of the terms' magnitude on mixed-sign data), not in the integer sums. The
 * Q4_K/Q5_K mins term and the Q4_1/Q5_1 offset term are ref's scalar expressions,
 * accumulated as ref does, and join the lanes at the end. Scales are converted from fp16 by FCVTL, exact
 * as ks_fp16_to_fp32(). */
#ifndef KS_VEC_DOT_INT_NEON_H
#define KS_VEC_DOT_INT_NEON_H

#include "core/ks_core.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"
#include "tensor/types.h"

#include <arm_neon.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* An fp16 bit pattern as a float, by the hardware conversion (exact). */
static inline float half_to_float(ks_fp16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* The four lanes of s as floats, times d, added into acc. */
static inline float32x4_t scaled_add(float32x4_t acc, int32x4_t s, float d) {
    return vfmaq_n_f32(acc, vcvtq_f32_s32(s), d);
}

/* Q4_K/Q5_K's packed 6-bit scales and mins (diagram at ks_block_q4_k) as bytes sc[0..7],
 * mn[0..7], four at a time. With a, b, c the little-endian words of bytes 0..3, 4..7,
 * 8..11: sc[0..3] and mn[0..3] are the low 6 bits of a's and b's bytes; sc[4..7] and
 * mn[4..7] take their low 4 bits from c's low and high nibbles and bits 5:4 from bits
 * 7:6 of a's and b's bytes ((w >> 2) & 0x30 per byte: what shifts in from the next byte
 * falls outside the mask). */
static inline void k_scales(const uint8_t *scales, uint8_t *sc, uint8_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, scales, 4);
    memcpy(&b, scales + 4, 4);
    memcpy(&c, scales + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    memcpy(mn, &mn_lo, 4);
    memcpy(mn + 4, &mn_hi, 4);
}

/* sum_j mn[j] * (sum of the Q8_K codes of sub-block j): the bsums, 16-element sums,
 * added in pairs to the 8 sub-blocks of 32, times the mins. */
static inline int32_t k_mins(const int16_t *bsums, const uint8_t *mn) {
    const int16x8_t sub = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    const int32x4_t p = vmlal_high_s16(vmull_s16(vget_low_s16(sub), vget_low_s16(m)), sub, m);
    return vaddvq_s32(p);
}

/* ---- 32-element blocks -------------------------------------------------------------- */

/* Bit 4 of the 32 codes of a 5-bit block (qh, layout at ks_block_q5_0) as 0x10 bytes:
 * elements 0..15 in lo, 16..31 in hi. Byte k of qh holds elements 8k..8k+7. */
static inline void five_bit_high(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t pick_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const uint8_t pick_hi[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint32_t h;
    memcpy(&h, qh, 4);
    const uint8x16_t bytes = vreinterpretq_u8_u32(vdupq_n_u32(h));
    const uint8x16_t b = vld1q_u8(bit), x10 = vdupq_n_u8(0x10);
    *lo = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(pick_lo)), b), x10);
    *hi = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(pick_hi)), b), x10);
}

/* The 32 codes of a 4-bit (qh NULL) or 5-bit block as bytes (elements 0..15 in lo,
 * 16..31 in hi), minus zero. */
static inline void block_codes(const uint8_t *qs, const uint8_t *qh, int zero, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(qs);
    uint8x16_t l = vandq_u8(v, vdupq_n_u8(0x0f)), h = vshrq_n_u8(v, 4);
    if (qh) {
        uint8x16_t bl, bh;
        five_bit_high(qh, &bl, &bh);
        l = vorrq_u8(l, bl);
        h = vorrq_u8(h, bh);
    }
    const int8x16_t z = vdupq_n_s8((int8_t)zero);
    *lo = vsubq_s8(vreinterpretq_s8_u8(l), z);
    *hi = vsubq_s8(vreinterpretq_s8_u8(h), z);
}

/* The 32 codes of block ib of a 32-element row of type t as int8 (elements 0..15 in lo,
 * 16..31 in hi), recentred for the symmetric types (Q4_0: q - 8, Q5_0: q - 16), and the
 * block's d and (offset types) m. */
static inline void block32_codes(ks_type t, const void *w, int64_t ib, int8x16_t *lo, int8x16_t *hi, ks_fp16 *d,
                                 ks_fp16 *m) {
    switch (t) {
    case KS_TYPE_Q8_0: {
        const ks_block_q8_0 *x = (const ks_block_q8_0 *)w + ib;
        *lo = vld1q_s8(x->qs);
        *hi = vld1q_s8(x->qs + 16);
        *d = x->d;
        return;
    }
    case KS_TYPE_Q4_0: {
        const ks_block_q4_0 *x = (const ks_block_q4_0 *)w + ib;
        block_codes(x->qs, NULL, 8, lo, hi);
        *d = x->d;
        return;
    }
    case KS_TYPE_Q5_0: {
        const ks_block_q5_0 *x = (const ks_block_q5_0 *)w + ib;
        block_codes(x->qs, x->qh, 16, lo, hi);
        *d = x->d;
        return;
    }
    case KS_TYPE_Q4_1: {
        const ks_block_q4_1 *x = (const ks_block_q4_1 *)w + ib;
        block_codes(x->qs, NULL, 0, lo, hi);
        *d = x->d;
        *m = x->m;
        return;
    }
    default: {
        const ks_block_q5_1 *x = (const ks_block_q5_1 *)w + ib;
        block_codes(x->qs, x->qh, 0, lo, hi);
        *d = x->d;
        *m = x->m;
        return;
    }
    }
}

/* The lines of the row pf (NULL: none) that start in bytes [lo, hi), asked for as a row
 * loop walks the same bytes of its own row (kernels.h: the pf of vec_dot_4). Always
 * inlined: GCC takes a function whose only effect is a prefetch for one without
 * effects, and drops the calls. */
static KS_ALWAYS_INLINE void prefetch_share(const void *pf, size_t lo, size_t hi) {
    if (pf)
        for (size_t o = (lo + 63) & ~(size_t)63; o < hi; o += 64)
            __builtin_prefetch((const uint8_t *)pf + o, 0, 3);
}

/* A row of 32-element blocks of type t against nt activation rows (Q8_0, or Q8_1 for
 * the offset types Q4_1 and Q5_1), row j at a + j * a_stride bytes; t and nt constants
 * once inlined. Per row: two float accumulators, even and odd blocks, each block's lanes
 * times dw * da; for the offset types also mw * sa into a scalar in row order, as ref
 * adds it. Each block is decoded once for all nt rows. */
static inline void blocks32(ks_type t, const void *w, const void *a, size_t a_stride, int64_t n, int nt,
                            float *out, const void *pf) {
    const bool offset = t == KS_TYPE_Q4_1 || t == KS_TYPE_Q5_1;
    const size_t wsz = ks_type_traits_of(t)->type_size;
    const size_t asz = offset ? sizeof(ks_block_q8_1) : sizeof(ks_block_q8_0);
    float32x4_t acc[KS_VEC_DOT_ROWS][2];
    float summs[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++) {
        acc[j][0] = acc[j][1] = vdupq_n_f32(0.0f);
        summs[j] = 0.0f;
    }
    for (int64_t ib = 0; ib < n / 32; ib++) {
        prefetch_share(pf, (size_t)ib * wsz, (size_t)(ib + 1) * wsz);
        int8x16_t lo, hi;
        ks_fp16 dw, mw = 0;
        block32_codes(t, w, ib, &lo, &hi, &dw, &mw);
        for (int j = 0; j < nt; j++) {
            const uint8_t *yb = (const uint8_t *)a + (size_t)j * a_stride + (size_t)ib * asz;
            ks_fp16 da, sa;
            memcpy(&da, yb, 2);
            memcpy(&sa, yb + 2, 2);
            const int8_t *yq = (const int8_t *)(yb + (offset ? offsetof(ks_block_q8_1, qs) : offsetof(ks_block_q8_0, qs)));
            const int32x4_t s = dot16(dot16(vdupq_n_s32(0), lo, vld1q_s8(yq)), hi, vld1q_s8(yq + 16));
            acc[j][ib & 1] = scaled_add(acc[j][ib & 1], s, half_to_float(dw) * half_to_float(da));
            if (offset)
                summs[j] += half_to_float(mw) * half_to_float(sa);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_f32(vaddq_f32(acc[j][0], acc[j][1])) + (offset ? summs[j] : 0.0f);
}

/* vec_dot and vec_dot_4 of a 32-element type */
#define NEON_BLOCKS32(name, type)                                                                 \
    static inline float NEON_FN(vec_dot_##name)(const void *w, const void *a, int64_t n) {       \
        float s;                                                                                  \
        blocks32(type, w, a, 0, n, 1, &s, NULL);                                                  \
        return s;                                                                                 \
    }                                                                                             \
    static inline void NEON_FN(vec_dot_4_##name)(const void *w, const void *a, size_t a_stride,   \
                                                 int64_t n, float *s, const void *pf) {           \
        blocks32(type, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);                                \
    }
NEON_BLOCKS32(q8_0_q8_0, KS_TYPE_Q8_0)
NEON_BLOCKS32(q4_0_q8_0, KS_TYPE_Q4_0)
NEON_BLOCKS32(q5_0_q8_0, KS_TYPE_Q5_0)
NEON_BLOCKS32(q4_1_q8_1, KS_TYPE_Q4_1)
NEON_BLOCKS32(q5_1_q8_1, KS_TYPE_Q5_1)

/* ---- K-quants ----------------------------------------------------------------------- *
 *
 * Per super-block: isum = sum over sub-blocks of scale * (lanes of its code products),
 * then acc += (d * da) * isum in four float lanes; Q4_K/Q5_K also
 * mins_acc -= (dmin * da) * mins, as ref. */

/* Q4_K and Q5_K share everything but the codes' fifth bit: qh is NULL for Q4_K. One
 * super-block's isum. Group g of qs (32 bytes) holds sub-block 2g in its low nibbles and
 * 2g+1 in its high ones; for Q5_K, bit 2g of qh[l] is bit 4 of sub-block 2g's element l,
 * bit 2g+1 that of sub-block 2g+1 (quants.h), so each group takes bits 0 and 1 of qh
 * and shifts qh down by two for the next. isum[j]: against activation row j's codes
 * q8[j], the codes decoded once for all nt rows. */
static inline void k_block_4_5(const uint8_t *qs, const uint8_t *qh, const int8_t *const *q8, int nt,
                               const uint8_t *sc, int32x4_t *isum) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    uint8x16_t h0 = vdupq_n_u8(0), h1 = vdupq_n_u8(0);
    if (qh) {
        h0 = vld1q_u8(qh);
        h1 = vld1q_u8(qh + 16);
    }
    for (int j = 0; j < nt; j++)
        isum[j] = vdupq_n_s32(0);
    for (int g = 0; g < 4; g++, qs += 32) {
        const uint8x16_t v0 = vld1q_u8(qs), v1 = vld1q_u8(qs + 16);
        uint8x16_t lo0 = vandq_u8(v0, m4), lo1 = vandq_u8(v1, m4);
        uint8x16_t hi0 = vshrq_n_u8(v0, 4), hi1 = vshrq_n_u8(v1, 4);
        if (qh) {
            const uint8x16_t b0 = vdupq_n_u8(1), b1 = vdupq_n_u8(2);
            lo0 = vorrq_u8(lo0, vshlq_n_u8(vandq_u8(h0, b0), 4));
            lo1 = vorrq_u8(lo1, vshlq_n_u8(vandq_u8(h1, b0), 4));
            hi0 = vorrq_u8(hi0, vshlq_n_u8(vandq_u8(h0, b1), 3));
            hi1 = vorrq_u8(hi1, vshlq_n_u8(vandq_u8(h1, b1), 3));
            h0 = vshrq_n_u8(h0, 2);
            h1 = vshrq_n_u8(h1, 2);
        }
        for (int j = 0; j < nt; j++) {
            const int8_t *y = q8[j] + 64 * g;
            int32x4_t plo = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(lo0), vld1q_s8(y));
            plo = dot16(plo, vreinterpretq_s8_u8(lo1), vld1q_s8(y + 16));
            int32x4_t phi = dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(hi0), vld1q_s8(y + 32));
            phi = dot16(phi, vreinterpretq_s8_u8(hi1), vld1q_s8(y + 48));
            isum[j] = vmlaq_n_s32(isum[j], plo, sc[2 * g]);
            isum[j] = vmlaq_n_s32(isum[j], phi, sc[2 * g + 1]);
        }
    }
}

/* Activation row j's super-block ib (row j at a + j * a_stride bytes). */
static inline const ks_block_q8_k *k_act(const void *a, size_t a_stride, int j, int64_t ib) {
    return (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
}

/* A Q4_K or Q5_K row (t, a constant once inlined) against nt Q8_K rows; each super-block
 * decoded once for all of them. */
static inline void k_row_4_5(ks_type t, const void *w, const void *a, size_t a_stride, int64_t n, int nt,
                             float *out, const void *pf) {
    const size_t wsz = t == KS_TYPE_Q5_K ? sizeof(ks_block_q5_k) : sizeof(ks_block_q4_k);
    float32x4_t acc[KS_VEC_DOT_ROWS];
    float mins_acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++) {
        acc[j] = vdupq_n_f32(0.0f);
        mins_acc[j] = 0.0f;
    }
    uint8_t sc[8], mn[8];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        prefetch_share(pf, (size_t)ib * wsz, (size_t)(ib + 1) * wsz);
        const ks_block_q4_k *x4 = (const ks_block_q4_k *)w + ib;
        const ks_block_q5_k *x5 = (const ks_block_q5_k *)w + ib;
        const bool q5 = t == KS_TYPE_Q5_K;
        k_scales(q5 ? x5->scales : x4->scales, sc, mn);
        const int8_t *q8[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            q8[j] = k_act(a, a_stride, j, ib)->qs;
        int32x4_t isum[KS_VEC_DOT_ROWS];
        k_block_4_5(q5 ? x5->qs : x4->qs, q5 ? x5->qh : NULL, q8, nt, sc, isum);
        const ks_fp16 d = q5 ? x5->d : x4->d, dmin = q5 ? x5->dmin : x4->dmin;
        for (int j = 0; j < nt; j++) {
            const ks_block_q8_k *y = k_act(a, a_stride, j, ib);
            acc[j] = scaled_add(acc[j], isum[j], half_to_float(d) * y->d);
            mins_acc[j] -= half_to_float(dmin) * y->d * (float)k_mins(y->bsums, mn);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = mins_acc[j] + vaddvq_f32(acc[j]);
}

/* Q6_K: each half (128 elements) is four quarters of 32, k = 0..3, element l of quarter
 * k taking its low 4 bits from ql[l] (k = 0, 2) or ql[l + 32] (k = 1, 3), low nibble for
 * k < 2, high for k >= 2, and its top 2 bits from bits 2k+1:2k of qh[l] (quants.h).
 * Every 16 codes share one int8 scale, so each 16-byte vector meets one scale. isum[j]
 * gains the half's lanes against activation row j's codes q8[j] of that half. */
static inline void q6_k_half(const uint8_t *ql, const uint8_t *qh, const int8_t *const *q8, int nt,
                             const int8_t *scales, int32x4_t *isum) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(0x30);
    const int8x16_t m32 = vdupq_n_s8(32);
    for (int i = 0; i < 2; i++) { /* elements 16i .. 16i+15 of every quarter */
        const uint8x16_t l0 = vld1q_u8(ql + 16 * i), l1 = vld1q_u8(ql + 32 + 16 * i);
        const uint8x16_t h = vld1q_u8(qh + 16 * i);
        uint8x16_t q[4];
        q[0] = vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(h, 4), m2));
        q[1] = vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(h, 2), m2));
        q[2] = vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h, m2));
        q[3] = vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(h, 2), m2));
        for (int k = 0; k < 4; k++) {
            const int8x16_t c = vsubq_s8(vreinterpretq_s8_u8(q[k]), m32);
            for (int j = 0; j < nt; j++) {
                const int32x4_t p = dot16(vdupq_n_s32(0), c, vld1q_s8(q8[j] + 32 * k + 16 * i));
                isum[j] = vmlaq_n_s32(isum[j], p, scales[2 * k + i]);
            }
        }
    }
}

/* A Q6_K row against nt Q8_K rows; per row acc += (d * da) * (first half + second half). */
static inline void q6_k_row(const void *w, const void *a, size_t a_stride, int64_t n, int nt, float *out,
                            const void *pf) {
    const ks_block_q6_k *x = w;
    float32x4_t acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[j] = vdupq_n_f32(0.0f);
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        prefetch_share(pf, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        const int8_t *q8[KS_VEC_DOT_ROWS], *q8b[KS_VEC_DOT_ROWS];
        int32x4_t first[KS_VEC_DOT_ROWS], second[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++) {
            q8[j] = k_act(a, a_stride, j, ib)->qs;
            q8b[j] = q8[j] + 128;
            first[j] = second[j] = vdupq_n_s32(0);
        }
        q6_k_half(x[ib].ql, x[ib].qh, q8, nt, x[ib].scales, first);
        q6_k_half(x[ib].ql + 64, x[ib].qh + 32, q8b, nt, x[ib].scales + 8, second);
        for (int j = 0; j < nt; j++)
            acc[j] = scaled_add(acc[j], vaddq_s32(first[j], second[j]),
                                half_to_float(x[ib].d) * k_act(a, a_stride, j, ib)->d);
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_f32(acc[j]);
}

/* vec_dot and vec_dot_4 of a K-quant type, over its row function */
#define NEON_K_ROWS(name, call)                                                                   \
    static inline float NEON_FN(vec_dot_##name)(const void *w, const void *a, int64_t n) {       \
        float s;                                                                                  \
        call(w, a, 0, n, 1, &s, NULL);                                                            \
        return s;                                                                                 \
    }                                                                                             \
    static inline void NEON_FN(vec_dot_4_##name)(const void *w, const void *a, size_t a_stride,   \
                                                 int64_t n, float *s, const void *pf) {           \
        call(w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);                                          \
    }
#define K_ROW_Q4_K(w, a, st, n, nt, s, pf) k_row_4_5(KS_TYPE_Q4_K, w, a, st, n, nt, s, pf)
#define K_ROW_Q5_K(w, a, st, n, nt, s, pf) k_row_4_5(KS_TYPE_Q5_K, w, a, st, n, nt, s, pf)
NEON_K_ROWS(q4_k_q8_k, K_ROW_Q4_K)
NEON_K_ROWS(q5_k_q8_k, K_ROW_Q5_K)
NEON_K_ROWS(q6_k_q8_k, q6_k_row)

/* ---- the low-bit types -------------------------------------------------------------- *
 *
 * Q2_K and Q3_K: each half (128 elements) holds four planes of 2-bit codes in its 32
 * bytes, plane k the bits 2k+1:2k of each byte, byte l being element 32k + l of the half;
 * a 16-byte vector of a plane is one 16-element sub-block, 8h + 2k + (l >= 16). Q3_K's
 * third bit of element e is bit e / 32 of hmask[e % 32], set meaning "not 4 below".
 * IQ4_NL and IQ4_XS: per 32 elements, 16 bytes of two nibbles each (Q4_0's order), the
 * table values by one TBL. isum as the K-quants'; Q2_K's mins term as Q4_K's. */

/* One Q2_K (hmask NULL) or Q3_K super-block's isum[j] against activation rows q8[j];
 * sc[s] the sub-block scales (Q3_K's minus 32). */
static inline void low2_block(const uint8_t *qs, const uint8_t *hmask, const int8_t *const *q8, int nt,
                              const int *sc, int32x4_t *isum) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    for (int j = 0; j < nt; j++)
        isum[j] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 2; i++) { /* bytes 16i .. 16i + 15 of the half */
            const uint8x16_t bits = vld1q_u8(qs + 32 * h + 16 * i);
            const uint8x16_t hm = hmask ? vld1q_u8(hmask + 16 * i) : vdupq_n_u8(0);
            for (int k = 0; k < 4; k++) {
                int8x16_t c = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(bits, vdupq_n_s8((int8_t)(-2 * k))), m3));
                if (hmask) /* minus 4 where bit 4h + k is clear */
                    c = vsubq_s8(c, vreinterpretq_s8_u8(vandq_u8(
                                        vceqq_u8(vandq_u8(hm, vdupq_n_u8((uint8_t)(1u << (4 * h + k)))), vdupq_n_u8(0)),
                                        vdupq_n_u8(4))));
                const int s = 8 * h + 2 * k + i;
                for (int j = 0; j < nt; j++) {
                    const int32x4_t p = dot16(vdupq_n_s32(0), c, vld1q_s8(q8[j] + 128 * h + 32 * k + 16 * i));
                    isum[j] = vmlaq_n_s32(isum[j], p, sc[s]);
                }
            }
        }
}

/* A Q2_K or Q3_K row (t, a constant once inlined) against nt Q8_K rows. */
static inline void low2_row(ks_type t, const void *w, const void *a, size_t a_stride, int64_t n, int nt, float *out,
                            const void *pf) {
    const bool q3 = t == KS_TYPE_Q3_K;
    const size_t wsz = q3 ? sizeof(ks_block_q3_k) : sizeof(ks_block_q2_k);
    float32x4_t acc[KS_VEC_DOT_ROWS];
    float mins_acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++) {
        acc[j] = vdupq_n_f32(0.0f);
        mins_acc[j] = 0.0f;
    }
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        prefetch_share(pf, (size_t)ib * wsz, (size_t)(ib + 1) * wsz);
        const ks_block_q2_k *x2 = (const ks_block_q2_k *)w + ib;
        const ks_block_q3_k *x3 = (const ks_block_q3_k *)w + ib;
        int sc[16];
        for (int s = 0; s < 16; s++)
            sc[s] = q3 ? ks_q3_k_scale(x3->scales, s) - 32 : x2->scales[s] & 0x0f;
        const int8_t *q8[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            q8[j] = k_act(a, a_stride, j, ib)->qs;
        int32x4_t isum[KS_VEC_DOT_ROWS];
        low2_block(q3 ? x3->qs : x2->qs, q3 ? x3->hmask : NULL, q8, nt, sc, isum);
        for (int j = 0; j < nt; j++) {
            const ks_block_q8_k *y = k_act(a, a_stride, j, ib);
            acc[j] = scaled_add(acc[j], isum[j], half_to_float(q3 ? x3->d : x2->d) * y->d);
            if (!q3) {
                int32_t mins = 0;
                for (int s = 0; s < 16; s++)
                    mins += y->bsums[s] * (x2->scales[s] >> 4);
                mins_acc[j] -= half_to_float(x2->dmin) * y->d * (float)mins;
            }
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = mins_acc[j] + vaddvq_f32(acc[j]);
}

/* The table values of 32 codes from 16 bytes: elements 0..15 in lo, 16..31 in hi. */
static inline void iq4_values(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
    const int8x16_t table = vld1q_s8(ks_iq4_values);
    const uint8x16_t q = vld1q_u8(qs);
    *lo = vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0f)));
    *hi = vqtbl1q_s8(table, vshrq_n_u8(q, 4));
}

/* An IQ4_NL row against nt Q8_0 rows: blocks32's scheme (even and odd blocks). */
static inline void iq4_nl_row(const void *w, const void *a, size_t a_stride, int64_t n, int nt, float *out,
                              const void *pf) {
    const ks_block_iq4_nl *x = w;
    float32x4_t acc[KS_VEC_DOT_ROWS][2];
    for (int j = 0; j < nt; j++)
        acc[j][0] = acc[j][1] = vdupq_n_f32(0.0f);
    for (int64_t ib = 0; ib < n / KS_QK4_NL; ib++) {
        prefetch_share(pf, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        int8x16_t lo, hi;
        iq4_values(x[ib].qs, &lo, &hi);
        for (int j = 0; j < nt; j++) {
            const ks_block_q8_0 *y = (const ks_block_q8_0 *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
            const int32x4_t s = dot16(dot16(vdupq_n_s32(0), lo, vld1q_s8(y->qs)), hi, vld1q_s8(y->qs + 16));
            acc[j][ib & 1] = scaled_add(acc[j][ib & 1], s, half_to_float(x[ib].d) * half_to_float(y->d));
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_f32(vaddq_f32(acc[j][0], acc[j][1]));
}

/* An IQ4_XS row against nt Q8_K rows. */
static inline void iq4_xs_row(const void *w, const void *a, size_t a_stride, int64_t n, int nt, float *out,
                              const void *pf) {
    float32x4_t acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[j] = vdupq_n_f32(0.0f);
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_iq4_xs *x = (const ks_block_iq4_xs *)w + ib;
        prefetch_share(pf, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        int32x4_t isum[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            isum[j] = vdupq_n_s32(0);
        for (int g = 0; g < KS_QK_K / 32; g++) {
            int8x16_t lo, hi;
            iq4_values(x->qs + 16 * g, &lo, &hi);
            const int ls = ks_iq4_xs_scale(x, g) - 32;
            for (int j = 0; j < nt; j++) {
                const int8_t *q8 = k_act(a, a_stride, j, ib)->qs + 32 * g;
                const int32x4_t p = dot16(dot16(vdupq_n_s32(0), lo, vld1q_s8(q8)), hi, vld1q_s8(q8 + 16));
                isum[j] = vmlaq_n_s32(isum[j], p, ls);
            }
        }
        for (int j = 0; j < nt; j++)
            acc[j] = scaled_add(acc[j], isum[j], half_to_float(x->d) * k_act(a, a_stride, j, ib)->d);
    }
    for (int j = 0; j < nt; j++)
        out[j] = vaddvq_f32(acc[j]);
}

#define LOW2_ROW_Q2_K(w, a, st, n, nt, s, pf) low2_row(KS_TYPE_Q2_K, w, a, st, n, nt, s, pf)
#define LOW2_ROW_Q3_K(w, a, st, n, nt, s, pf) low2_row(KS_TYPE_Q3_K, w, a, st, n, nt, s, pf)
NEON_K_ROWS(q2_k_q8_k, LOW2_ROW_Q2_K)
NEON_K_ROWS(q3_k_q8_k, LOW2_ROW_Q3_K)
NEON_K_ROWS(iq4_nl_q8_0, iq4_nl_row)
NEON_K_ROWS(iq4_xs_q8_k, iq4_xs_row)

#endif
