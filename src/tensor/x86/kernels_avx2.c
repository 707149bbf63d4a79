/* kernels_avx2.c — AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only
 * reached when the CPU has them (kernels.c). The row conversions live here; the dot
 * products and activation quantizers in the files kernels_x86.h lists. */
#include "tensor/kernels.h"
#include "tensor/x86/kernels_x86.h"

#include <immintrin.h>

static void fp16_to_fp32_row_avx2(const ks_fp16 *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++)
        y[i] = ks_fp16_to_fp32(x[i]);
}

static void fp32_to_fp16_row_avx2(const float *x, ks_fp16 *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = ks_fp32_to_fp16(x[i]);
}

static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f32_avx2(const float *x, const float *y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    }
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

void ks_kernels_register_avx2(ks_kernels *k) {
    k->fp16_to_fp32_row = fp16_to_fp32_row_avx2;
    k->fp32_to_fp16_row = fp32_to_fp16_row_avx2;
    k->dot_f32 = dot_f32_avx2;
    ks_vec_dot_avx2_register(k);
    ks_quants_avx2_register(k);
    ks_attn_avx2_register(k);
}
