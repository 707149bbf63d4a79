/* attn_neon.c — the streaming-attention kernels on NEON, any ARMv8-A CPU
 * (tensor/attn_tiles.h holds them, written once; this file gives them a vector of 4 floats
 * and tiles of 16 accumulators of the 32 registers).
 *
 * NEON has no masked loads and stores: a mask here is the count of lanes, and a partial
 * vector goes through a small array, which only a row's tail (head_dim not a multiple of
 * 4) ever needs.
 *
 * exp (attn_tiles.h) builds its 2^n in the exponent field, which needs n >= -126: inputs
 * below ln(FLT_MIN) = -87.34 give 0, as on AVX2. */
#include "tensor/arm/kernels_arm.h"
#include "tensor/quants.h"

#include <arm_neon.h>
#include <string.h>

typedef float32x4_t attn_vec;
typedef int attn_mask; /* lanes [0, mask) */
#define ATTN_LANES 4
#define ATTN_TILE 16
#define ATTN_ROWS 4
#define ATTN_ACC_ROWS 8

static inline attn_mask vmask(int64_t cnt) { return (attn_mask)cnt; }
static inline attn_vec vzero(void) { return vdupq_n_f32(0.0f); }
static inline attn_vec vset1(float x) { return vdupq_n_f32(x); }
static inline attn_vec vloadm_or(const float *p, attn_mask m, attn_vec v) {
    if (m == 4)
        return vld1q_f32(p);
    float t[4];
    vst1q_f32(t, v);
    memcpy(t, p, (size_t)m * sizeof *t);
    return vld1q_f32(t);
}
static inline attn_vec vloadm(const float *p, attn_mask m) { return vloadm_or(p, m, vzero()); }
static inline attn_vec vloadm_h(const ks_fp16 *p, attn_mask m, int64_t cnt) {
    (void)cnt;
    if (m == 4)
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
    uint16_t t[4] = {0};
    memcpy(t, p, (size_t)m * sizeof *t);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(t)));
}
static inline attn_vec vloadm_q8(const int8_t *p, attn_mask m, int64_t cnt) {
    (void)m;
    int32_t w = 0; /* four bytes (a tail: fewer), no load past them */
    memcpy(&w, p, (size_t)cnt);
    const int16x8_t q16 = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(q16)));
}
static inline attn_vec vset1_h(ks_fp16 d) { return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(d))); }
static inline void vstorem(float *p, attn_mask m, attn_vec v) {
    if (m == 4) {
        vst1q_f32(p, v);
        return;
    }
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)m * sizeof *t);
}
static inline attn_vec vkeep(attn_mask m, attn_vec v) {
    static const uint32_t iota[4] = {0, 1, 2, 3};
    const uint32x4_t keep = vcltq_u32(vld1q_u32(iota), vdupq_n_u32((uint32_t)m));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), keep));
}
static inline attn_vec vfma(attn_vec a, attn_vec b, attn_vec c) { return vfmaq_f32(c, a, b); }
static inline attn_vec vadd(attn_vec a, attn_vec b) { return vaddq_f32(a, b); }
static inline attn_vec vsub(attn_vec a, attn_vec b) { return vsubq_f32(a, b); }
static inline attn_vec vmax(attn_vec a, attn_vec b) { return vmaxq_f32(a, b); }
static inline float vhsum(attn_vec v) { return vaddvq_f32(v); }
static inline float vhmax(attn_vec v) { return vmaxvq_f32(v); }

static inline void vhsum4(attn_vec a, attn_vec b, attn_vec c, attn_vec d, float scale, float *out) {
    /* pairwise: [a0+a1, a2+a3, b0+b1, b2+b3], then [(a0+a1)+(a2+a3), ...] */
    const float32x4_t sum = vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
    vst1q_f32(out, vmulq_n_f32(sum, scale));
}

/* ln(FLT_MIN): below it 2^n has no exponent field; vldexp gives 0 there */
#define ATTN_EXP_MIN -87.3365447f
static inline attn_vec vround(attn_vec x) { return vrndnq_f32(x); }
static inline attn_vec vmul(attn_vec a, attn_vec b) { return vmulq_f32(a, b); }
static inline attn_vec vfnma(attn_vec a, attn_vec b, attn_vec c) { return vfmsq_f32(c, a, b); }
/* p 2^n, n integer in -126..0 (n + 127 is the exponent field); 0 where the unclamped
 * input x was below ATTN_EXP_MIN */
static inline attn_vec vldexp(attn_vec p, attn_vec n, attn_vec x) {
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    const uint32x4_t below = vcltq_f32(x, vdupq_n_f32(ATTN_EXP_MIN));
    const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), below));
}

#include "tensor/attn_tiles.h"

void ks_attn_neon_register(ks_kernels *k) {
    attn_register(k);
}
