/* kernels_avx512.c — AVX-512 (F, BW, VL, DQ, VNNI) kernels. Compiled with those
 * flags; only reached when the CPU and OS support them (kernels.c). */
#include "tensor/kernels.h"
#include "tensor/x86/kernels_x86.h"

#include <immintrin.h>

static void bf16_to_fp32_row_avx512(const ks_bf16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    for (; i < n; i++)
        y[i] = ks_bf16_to_fp32(x[i]);
}

static float dot_f32_avx512(const float *x, const float *y, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    if (i + 16 <= n) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        i += 16;
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

void ks_kernels_register_avx512(ks_kernels *k) {
    k->bf16_to_fp32_row = bf16_to_fp32_row_avx512;
    k->dot_f32 = dot_f32_avx512;
    ks_vec_dot_avx512_register(k);
    ks_dot4_q8_0_avx512_register(k);
    ks_dot4_k_avx512_register(k);
    ks_panel_q8_0_avx512_register(k);
    ks_panel_k_avx512_register(k);
    ks_panel_q6_k_avx512_register(k);
    ks_panel_iq4_xs_avx512_register(k);
    ks_panel_q3_k_avx512_register(k);
    ks_panel_q2_k_avx512_register(k);
    ks_attn_avx512_register(k);
}
