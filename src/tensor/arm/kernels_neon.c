/* kernels_neon.c — NEON kernels for aarch64, any ARMv8-A CPU: the row conversions and
 * dot_f32 live here, the dot products and activation quantizers in the files
 * kernels_arm.h lists. Only reached on aarch64 builds. */
#include "tensor/arm/kernels_arm.h"

#include <arm_neon.h>

static float dot_f32_neon(const float *x, const float *y, int64_t n) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

static void fp16_to_fp32_row_neon(const ks_fp16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++)
        y[i] = ks_fp16_to_fp32(x[i]);
}

void ks_kernels_register_neon(ks_kernels *k) {
    k->dot_f32 = dot_f32_neon;
    k->fp16_to_fp32_row = fp16_to_fp32_row_neon;
    ks_vec_dot_neon_register(k);
    ks_quants_neon_register(k);
    ks_attn_neon_register(k);
}
