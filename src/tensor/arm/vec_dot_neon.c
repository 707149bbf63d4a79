/* vec_dot_neon.c — NEON dot products for any ARMv8-A CPU: F32, F16 and BF16 rows, and
 * the integer kernels of vec_dot_int_neon.h (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, Q4_K, Q5_K,
 * Q6_K) over a dot step made of widening multiplies. On CPUs with DotProd,
 * vec_dot_dotprod.c's SDOT versions replace the integer ones (kernels.c); the float ones
 * stay.
 *
 * Owns: vec_dot_*_neon and ks_vec_dot_neon_register().
 * Does not own: the activation quantizers (quants_neon.c).
 *
 * Must run on CPUs without DotProd although compiled with +dotprod (kernels_arm.h): no
 * SDOT intrinsic here, and no scalar int8 loop the compiler could vectorize into one. */
#include "tensor/arm/kernels_arm.h"

#include <arm_neon.h>
#include <stdbool.h>

/* acc plus the 16 products a[i] * b[i]: SMULL / SMULL2 form them as int16 (|p| <= 2^14,
 * exact), SADALP adds adjacent pairs into the int32 lanes. */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

#define NEON_FN(name) name##_neon
#include "tensor/arm/vec_dot_int_neon.h"

/* ---- float types -------------------------------------------------------------------- *
 *
 * Sixteen float lanes (four accumulators), products fused into them; a tail of fewer
 * than 16 elements goes four at a time into the first accumulator, then one at a time
 * into the final sum. ref rounds each product and sums in double: the two agree to
 * float rounding of the lanes (each lane adds at most n / 16 + 3 terms). */

/* Sum of four accumulators' sixteen lanes. */
static inline float hsum4(const float32x4_t *acc) {
    return vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
}

static float vec_dot_f32_f32_neon(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                          vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++)
            acc[k] = vfmaq_f32(acc[k], vld1q_f32(x + i + 4 * k), vld1q_f32(y + i + 4 * k));
    for (; i + 4 <= n; i += 4)
        acc[0] = vfmaq_f32(acc[0], vld1q_f32(x + i), vld1q_f32(y + i));
    float sum = hsum4(acc);
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

/* Four or eight 16-bit floats widened to floats, exactly: halves by FCVTL (F16), BF16
 * by a 16-bit shift left (USHLL). bf16 is a constant where inlined. */
static inline float32x4_t widen4(bool bf16, uint16x4_t v) {
    return bf16 ? vreinterpretq_f32_u32(vshll_n_u16(v, 16)) : vcvt_f32_f16(vreinterpret_f16_u16(v));
}

static inline float32x4_t widen_high(bool bf16, uint16x8_t v) {
    return bf16 ? vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)) : vcvt_high_f32_f16(vreinterpretq_f16_u16(v));
}

/* F16 and BF16 rows: widened, then as F32. */
static inline float dot_16bit(bool bf16, const uint16_t *x, const uint16_t *y, int64_t n) {
    float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                          vdupq_n_f32(0.0f)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 2; k++) {
            const uint16x8_t hx = vld1q_u16(x + i + 8 * k), hy = vld1q_u16(y + i + 8 * k);
            acc[2 * k] = vfmaq_f32(acc[2 * k], widen4(bf16, vget_low_u16(hx)), widen4(bf16, vget_low_u16(hy)));
            acc[2 * k + 1] = vfmaq_f32(acc[2 * k + 1], widen_high(bf16, hx), widen_high(bf16, hy));
        }
    for (; i + 4 <= n; i += 4)
        acc[0] = vfmaq_f32(acc[0], widen4(bf16, vld1_u16(x + i)), widen4(bf16, vld1_u16(y + i)));
    float sum = hsum4(acc);
    for (; i < n; i++)
        sum += bf16 ? ks_bf16_to_fp32(x[i]) * ks_bf16_to_fp32(y[i]) : ks_fp16_to_fp32(x[i]) * ks_fp16_to_fp32(y[i]);
    return sum;
}

static float vec_dot_f16_f16_neon(const void *w, const void *a, int64_t n) {
    return dot_16bit(false, w, a, n);
}

static float vec_dot_bf16_bf16_neon(const void *w, const void *a, int64_t n) {
    return dot_16bit(true, w, a, n);
}

void ks_vec_dot_neon_register(ks_kernels *k) {
    k->vec_dot[KS_TYPE_F32] = vec_dot_f32_f32_neon;
    k->vec_dot[KS_TYPE_F16] = vec_dot_f16_f16_neon;
    k->vec_dot[KS_TYPE_BF16] = vec_dot_bf16_bf16_neon;
    k->vec_dot[KS_TYPE_Q8_0] = vec_dot_q8_0_q8_0_neon;
    k->vec_dot[KS_TYPE_Q4_0] = vec_dot_q4_0_q8_0_neon;
    k->vec_dot[KS_TYPE_Q5_0] = vec_dot_q5_0_q8_0_neon;
    k->vec_dot[KS_TYPE_Q4_1] = vec_dot_q4_1_q8_1_neon;
    k->vec_dot[KS_TYPE_Q5_1] = vec_dot_q5_1_q8_1_neon;
    k->vec_dot[KS_TYPE_Q4_K] = vec_dot_q4_k_q8_k_neon;
    k->vec_dot[KS_TYPE_Q5_K] = vec_dot_q5_k_q8_k_neon;
    k->vec_dot[KS_TYPE_Q6_K] = vec_dot_q6_k_q8_k_neon;
    k->vec_dot_4[KS_TYPE_Q8_0] = vec_dot_4_q8_0_q8_0_neon;
    k->vec_dot_4[KS_TYPE_Q4_0] = vec_dot_4_q4_0_q8_0_neon;
    k->vec_dot_4[KS_TYPE_Q5_0] = vec_dot_4_q5_0_q8_0_neon;
    k->vec_dot_4[KS_TYPE_Q4_1] = vec_dot_4_q4_1_q8_1_neon;
    k->vec_dot_4[KS_TYPE_Q5_1] = vec_dot_4_q5_1_q8_1_neon;
    k->vec_dot_4[KS_TYPE_Q4_K] = vec_dot_4_q4_k_q8_k_neon;
    k->vec_dot_4[KS_TYPE_Q5_K] = vec_dot_4_q5_k_q8_k_neon;
    k->vec_dot_4[KS_TYPE_Q6_K] = vec_dot_4_q6_k_q8_k_neon;
    k->vec_dot[KS_TYPE_Q2_K] = vec_dot_q2_k_q8_k_neon;
    k->vec_dot_4[KS_TYPE_Q2_K] = vec_dot_4_q2_k_q8_k_neon;
    k->vec_dot[KS_TYPE_Q3_K] = vec_dot_q3_k_q8_k_neon;
    k->vec_dot_4[KS_TYPE_Q3_K] = vec_dot_4_q3_k_q8_k_neon;
    k->vec_dot[KS_TYPE_IQ4_NL] = vec_dot_iq4_nl_q8_0_neon;
    k->vec_dot_4[KS_TYPE_IQ4_NL] = vec_dot_4_iq4_nl_q8_0_neon;
    k->vec_dot[KS_TYPE_IQ4_XS] = vec_dot_iq4_xs_q8_k_neon;
    k->vec_dot_4[KS_TYPE_IQ4_XS] = vec_dot_4_iq4_xs_q8_k_neon;
}
