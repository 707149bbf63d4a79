/* kernels_ref.c — scalar reference kernels: plain C, obvious loops. The quantized dot
 * products and activation quantizers live in vec_dot_ref.c; this file fills the table. */
#include "tensor/ref/kernels_ref.h"

#include "tensor/ref/quants_ref.h"
#include "tensor/ref/vec_dot_ref.h"

static void fp16_to_fp32_row_ref(const ks_fp16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_fp16_to_fp32(x[i]);
}

static void fp32_to_fp16_row_ref(const float *x, ks_fp16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_fp32_to_fp16(x[i]);
}

static void bf16_to_fp32_row_ref(const ks_bf16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_bf16_to_fp32(x[i]);
}

/* Accumulates in double: the reference is the exact-ish answer, not a fast one. */
static float dot_f32_ref(const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    return (float)s;
}

void ks_kernels_ref_fill(ks_kernels *k) {
    k->fp16_to_fp32_row = fp16_to_fp32_row_ref;
    k->fp32_to_fp16_row = fp32_to_fp16_row_ref;
    k->bf16_to_fp32_row = bf16_to_fp32_row_ref;
    k->dot_f32 = dot_f32_ref;
    ks_elementwise_ref_fill(k);
    ks_attn_ref_fill(k);

    k->vec_dot[KS_TYPE_F32] = ks_vec_dot_f32_f32_ref;
    k->vec_dot[KS_TYPE_F16] = ks_vec_dot_f16_f16_ref;
    k->vec_dot[KS_TYPE_BF16] = ks_vec_dot_bf16_bf16_ref;
    k->vec_dot[KS_TYPE_Q4_0] = ks_vec_dot_q4_0_q8_0_ref;
    k->vec_dot[KS_TYPE_Q4_1] = ks_vec_dot_q4_1_q8_1_ref;
    k->vec_dot[KS_TYPE_Q5_0] = ks_vec_dot_q5_0_q8_0_ref;
    k->vec_dot[KS_TYPE_Q5_1] = ks_vec_dot_q5_1_q8_1_ref;
    k->vec_dot[KS_TYPE_Q8_0] = ks_vec_dot_q8_0_q8_0_ref;
    k->vec_dot[KS_TYPE_Q4_K] = ks_vec_dot_q4_k_q8_k_ref;
    k->vec_dot[KS_TYPE_Q5_K] = ks_vec_dot_q5_k_q8_k_ref;
    k->vec_dot[KS_TYPE_Q6_K] = ks_vec_dot_q6_k_q8_k_ref;
    k->vec_dot[KS_TYPE_Q2_K] = ks_vec_dot_q2_k_q8_k_ref;
    k->vec_dot[KS_TYPE_Q3_K] = ks_vec_dot_q3_k_q8_k_ref;
    k->vec_dot[KS_TYPE_IQ4_NL] = ks_vec_dot_iq4_nl_q8_0_ref;
    k->vec_dot[KS_TYPE_IQ4_XS] = ks_vec_dot_iq4_xs_q8_k_ref;

    /* F16 and BF16 round to nearest even like llama.cpp's conversions; Q8_K's x86
     * quantizer is its reference one, which ks_quantize_row_q8_k_ref reproduces. */
    k->quantize_act[KS_TYPE_F32] = ks_quantize_row_f32_ref;
    k->quantize_act[KS_TYPE_F16] = ks_quantize_row_f16_ref;
    k->quantize_act[KS_TYPE_BF16] = ks_quantize_row_bf16_ref;
    k->quantize_act[KS_TYPE_Q8_0] = ks_quantize_row_q8_0_act_ref;
    k->quantize_act[KS_TYPE_Q8_1] = ks_quantize_row_q8_1_act_ref;
    k->quantize_act[KS_TYPE_Q8_K] = ks_quantize_row_q8_k_ref;
}
