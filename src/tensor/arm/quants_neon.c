/* quants_neon.c — NEON activation quantizers: float rows into the Q8_0, Q8_1 and Q8_K
 * blocks the integer dot products consume. Any ARMv8-A CPU.
 *
 * Owns: quantize_row_<type>_act_neon and ks_quants_neon_register().
 * Does not own: the reference quantizers these reproduce (ks_quantize_row_q8_0_act_ref,
 * ks_quantize_row_q8_1_act_ref in ref/vec_dot_ref.c; ks_quantize_row_q8_k_ref in
 * ref/quants_k_ref.c).
 *
 * The output is ref's, byte for byte (the dot products must see the activations
 * llama.cpp's do), step by step:
 *   - the largest magnitude: exact in any order. Q8_0/Q8_1 take it as ref's fmaxf()
 *     does, which on aarch64 is FMAXNM: vmaxnmq_f32 is the same instruction (a quiet
 *     NaN loses to any number). Q8_K takes it as ref's "|x| > amax" does, by compare
 *     and select (NaN never wins), then the first element of that magnitude;
 *   - the scale and its inverse: ref's scalar float expressions;
 *   - the codes: ref's one float multiply per element, then Q8_0/Q8_1 round with
 *     FCVTNS (nearest, ties to even; NaN to 0 and saturating, as glibc's lrintf, FRINTX
 *     + FCVTZS), Q8_K with ref's magic-number rounding (the same float add and bit
 *     masks, a separate add: the build is ISO C11, in which GCC does not fuse a multiply
 *     into an add); then the clamp to -128..127, here the saturating narrows SQXTN
 *     int32 -> int16 -> int8;
 *   - the sums (Q8_1's s, Q8_K's bsums) from the clamped codes (SADDLV).
 *
 * n (elements) is a multiple of the block size, 32 or KS_QK_K = 256. */
#include "tensor/arm/kernels_arm.h"
#include "tensor/quants.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* Sixteen int32 codes, four vectors in element order, clamped to -128..127 as int8. */
static inline int8x16_t narrow_codes(const int32x4_t *c) {
    const int16x8_t h0 = vcombine_s16(vqmovn_s32(c[0]), vqmovn_s32(c[1]));
    const int16x8_t h1 = vcombine_s16(vqmovn_s32(c[2]), vqmovn_s32(c[3]));
    return vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1));
}

/* One 32-element block as ref's act_int8_codes(): d = |x|max / 127, codes
 * x * (127 / |x|max) rounded to nearest even. Returns d; *sum = sum of the codes. */
static inline float act_block(const float *x, int8_t *qs, int *sum) {
    float32x4_t v[8], m = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; k++) {
        v[k] = vld1q_f32(x + 4 * k);
        m = vmaxnmq_f32(m, vabsq_f32(v[k]));
    }
    const float amax = vmaxnmvq_f32(m);
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int h = 0; h < 2; h++) {
        int32x4_t c[4];
        for (int k = 0; k < 4; k++)
            c[k] = vcvtnq_s32_f32(vmulq_n_f32(v[4 * h + k], id));
        const int8x16_t q = narrow_codes(c);
        vst1q_s8(qs + 16 * h, q);
        s += vaddlvq_s8(q);
    }
    *sum = s;
    return d;
}

static void quantize_row_q8_0_act_neon(const float *x, void *y, int64_t n) {
    ks_block_q8_0 *b = y;
    int sum;
    for (int64_t ib = 0; ib < n / KS_QK8_0; ib++, x += KS_QK8_0)
        b[ib].d = ks_fp32_to_fp16(act_block(x, b[ib].qs, &sum));
}

/* s = fp16(d * sum(codes)) with the unrounded d, as ref. */
static void quantize_row_q8_1_act_neon(const float *x, void *y, int64_t n) {
    ks_block_q8_1 *b = y;
    int sum;
    for (int64_t ib = 0; ib < n / KS_QK8_1; ib++, x += KS_QK8_1) {
        const float d = act_block(x, b[ib].qs, &sum);
        b[ib].d = ks_fp32_to_fp16(d);
        b[ib].s = ks_fp32_to_fp16(d * (float)sum);
    }
}

/* ref's nearest(): v + 1.5 * 2^23 rounds v to an integer (nearest even) in the low
 * mantissa bits, offset by 2^22. */
static inline int32x4_t nearest_s32(float32x4_t v) {
    const int32x4_t bits = vreinterpretq_s32_f32(vaddq_f32(v, vdupq_n_f32(12582912.0f)));
    return vsubq_s32(vandq_s32(bits, vdupq_n_s32(0x007fffff)), vdupq_n_s32(0x00400000));
}

/* Index of the first element of x[0..KS_QK_K) whose magnitude is amax, which one is:
 * the first group of four holding it, then the element. */
static inline int first_of_magnitude(const float *x, float amax) {
    const float32x4_t m = vdupq_n_f32(amax);
    int e = 0;
    while (e + 4 < KS_QK_K && vmaxvq_u32(vceqq_f32(vabsq_f32(vld1q_f32(x + e)), m)) == 0)
        e += 4;
    while (e + 1 < KS_QK_K && fabsf(x[e]) != amax)
        e++;
    return e;
}

/* Q8_K as ks_quantize_row_q8_k_ref: the first element of largest magnitude, ext, maps
 * to -127 (iscale = -127 / ext), d = 1 / iscale, bsums[k] = sum of codes 16k .. 16k+15. */
static void quantize_row_q8_k_neon(const float *x, void *y, int64_t n) {
    ks_block_q8_k *b = y;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int e = 0; e < KS_QK_K; e += 4) {
            const float32x4_t a = vabsq_f32(vld1q_f32(x + e));
            m = vbslq_f32(vcgtq_f32(a, m), a, m);
        }
        const float amax = vmaxvq_f32(m); /* no lane is NaN */
        if (amax == 0.0f) {
            memset(&b[ib], 0, sizeof b[ib]);
            continue;
        }
        const float iscale = -127.f / x[first_of_magnitude(x, amax)];
        for (int e = 0; e < KS_QK_K; e += 16) {
            int32x4_t c[4];
            for (int k = 0; k < 4; k++)
                c[k] = nearest_s32(vmulq_n_f32(vld1q_f32(x + e + 4 * k), iscale));
            const int8x16_t q = narrow_codes(c);
            vst1q_s8(b[ib].qs + e, q);
            b[ib].bsums[e / 16] = vaddlvq_s8(q);
        }
        b[ib].d = 1.0f / iscale;
    }
}

void ks_quants_neon_register(ks_kernels *k) {
    k->quantize_act[KS_TYPE_Q8_0] = quantize_row_q8_0_act_neon;
    k->quantize_act[KS_TYPE_Q8_1] = quantize_row_q8_1_act_neon;
    k->quantize_act[KS_TYPE_Q8_K] = quantize_row_q8_k_neon;
}
