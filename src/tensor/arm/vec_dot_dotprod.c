/* vec_dot_dotprod.c — the integer dot products of vec_dot_int_neon.h (Q8_0, Q4_0, Q5_0,
 * Q4_1, Q5_1, Q2_K .. Q6_K, IQ4_NL, IQ4_XS) with SDOT, for CPUs with the ARMv8.2-A dot-product extension. kernels.c
 * registers them over the "neon" table's widening-multiply versions only when
 * ks_cpu_detect()->dotprod; anywhere else SDOT is an undefined instruction.
 *
 * Owns: vec_dot_*_dotprod and ks_kernels_register_neon_dotprod(). */
#include "tensor/arm/kernels_arm.h"

#include <arm_neon.h>

/* acc plus the 16 products a[i] * b[i]: SDOT adds each group of four into its lane. */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, a, b);
}

#define NEON_FN(name) name##_dotprod
#include "tensor/arm/vec_dot_int_neon.h"

void ks_kernels_register_neon_dotprod(ks_kernels *k) {
    ks_attn_q8p_dotprod_register(k); /* attention's Q8_0 keys in panels against Q8_0 queries */
    k->vec_dot[KS_TYPE_Q8_0] = vec_dot_q8_0_q8_0_dotprod;
    k->vec_dot[KS_TYPE_Q4_0] = vec_dot_q4_0_q8_0_dotprod;
    k->vec_dot[KS_TYPE_Q5_0] = vec_dot_q5_0_q8_0_dotprod;
    k->vec_dot[KS_TYPE_Q4_1] = vec_dot_q4_1_q8_1_dotprod;
    k->vec_dot[KS_TYPE_Q5_1] = vec_dot_q5_1_q8_1_dotprod;
    k->vec_dot[KS_TYPE_Q4_K] = vec_dot_q4_k_q8_k_dotprod;
    k->vec_dot[KS_TYPE_Q5_K] = vec_dot_q5_k_q8_k_dotprod;
    k->vec_dot[KS_TYPE_Q6_K] = vec_dot_q6_k_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_Q8_0] = vec_dot_4_q8_0_q8_0_dotprod;
    k->vec_dot_4[KS_TYPE_Q4_0] = vec_dot_4_q4_0_q8_0_dotprod;
    k->vec_dot_4[KS_TYPE_Q5_0] = vec_dot_4_q5_0_q8_0_dotprod;
    k->vec_dot_4[KS_TYPE_Q4_1] = vec_dot_4_q4_1_q8_1_dotprod;
    k->vec_dot_4[KS_TYPE_Q5_1] = vec_dot_4_q5_1_q8_1_dotprod;
    k->vec_dot_4[KS_TYPE_Q4_K] = vec_dot_4_q4_k_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_Q5_K] = vec_dot_4_q5_k_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_Q6_K] = vec_dot_4_q6_k_q8_k_dotprod;
    k->vec_dot[KS_TYPE_Q2_K] = vec_dot_q2_k_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_Q2_K] = vec_dot_4_q2_k_q8_k_dotprod;
    k->vec_dot[KS_TYPE_Q3_K] = vec_dot_q3_k_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_Q3_K] = vec_dot_4_q3_k_q8_k_dotprod;
    k->vec_dot[KS_TYPE_IQ4_NL] = vec_dot_iq4_nl_q8_0_dotprod;
    k->vec_dot_4[KS_TYPE_IQ4_NL] = vec_dot_4_iq4_nl_q8_0_dotprod;
    k->vec_dot[KS_TYPE_IQ4_XS] = vec_dot_iq4_xs_q8_k_dotprod;
    k->vec_dot_4[KS_TYPE_IQ4_XS] = vec_dot_4_iq4_xs_q8_k_dotprod;
}
