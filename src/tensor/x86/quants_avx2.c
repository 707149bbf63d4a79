/* quants_avx2.c — AVX2 activation quantizers: float rows into the Q8_0, Q8_1 and Q8_K
 * blocks the integer dot products consume.
 *
 * Owns: quantize_row_<type>_act_avx2 and ks_quants_avx2_register().
 * Does not own: the reference quantizers these reproduce (ks_quantize_row_q8_0_act_ref,
 * ks_quantize_row_q8_1_act_ref in ref/vec_dot_ref.c; ks_quantize_row_q8_k_ref in
 * ref/quants_k_ref.c), the file quantizers (ref/quants_ref.c).
 *
 * The output is ref's, byte for byte: kvserve's dot products must see exactly the
 * activations llama.cpp's do. Step by step:
 *   - |x|max: max is exact in any order. _mm256_max_ps(|x|, m) returns m when |x| is
 *     NaN, just as fmaxf(m, NaN) = m, and ref's "|x| > amax" skips NaN too;
 *   - the scale and its inverse: the same scalar float expressions as ref;
 *   - the codes: the same one float multiply per element, then Q8_0/Q8_1 round with
 *     cvtps2dq (the MXCSR mode, nearest-even by default, as lrintf), Q8_K with ref's
 *     magic-number rounding (the same float add and bit masks, so inf and NaN inputs
 *     give the same codes); then ref's clamp to -128..127, before any sum.
 *
 * n (elements) is a multiple of the block size, 32 or KS_QK_K = 256. */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

#include <math.h>

/* Largest of the 8 lanes (no lane is NaN). */
static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline __m256 abs_ps(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline __m256i clamp_i8(__m256i v) {
    return _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)), _mm256_set1_epi32(-128));
}

/* 32 int32 codes (c[0] = elements 0..7, ...), each in -128..127, stored as int8.
 * The two packs interleave 128-bit lanes: dword j of the result holds codes
 * 4 * {0, 8, 16, 24, 4, 12, 20, 28}[j] .. + 3, which the permute puts back in order. */
static inline void store_codes(const __m256i c[4], int8_t *qs) {
    const __m256i p =
        _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256((__m256i *)qs, _mm256_permutevar8x32_epi32(p, order));
}

/* One 32-element block as ref's act_int8_codes(): d = |x|max / 127, codes
 * x * (127 / |x|max) rounded to nearest even. Returns d; *sum = sum of the codes. */
static inline float act_block(const float *x, int8_t *qs, int *sum) {
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        m = _mm256_max_ps(abs_ps(v[k]), m);
    }
    const float amax = hmax_ps(m);
    const float d = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i c[4];
    for (int k = 0; k < 4; k++)
        c[k] = clamp_i8(_mm256_cvtps_epi32(_mm256_mul_ps(v[k], id)));
    store_codes(c, qs);
    *sum = ks_x86_hsum_epi32(
        _mm256_add_epi32(_mm256_add_epi32(c[0], c[1]), _mm256_add_epi32(c[2], c[3])));
    return d;
}

static void quantize_row_q8_0_act_avx2(const float *x, void *y, int64_t n) {
    ks_block_q8_0 *b = y;
    int sum;
    for (int64_t ib = 0; ib < n / KS_QK8_0; ib++, x += KS_QK8_0)
        b[ib].d = ks_fp32_to_fp16(act_block(x, b[ib].qs, &sum));
}

/* s = fp16(d * sum(codes)) with the unrounded d, as ref. */
static void quantize_row_q8_1_act_avx2(const float *x, void *y, int64_t n) {
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
static inline __m256i nearest_epi32(__m256 v) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.0f)));
    return _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                            _mm256_set1_epi32(0x00400000));
}

/* Q8_K as ks_quantize_row_q8_k_ref: the first element of largest magnitude, ext, maps
 * to -127 (iscale = -127 / ext), d = 1 / iscale, bsums[k] = sum of codes 16k .. 16k+15. */
static void quantize_row_q8_k_avx2(const float *x, void *y, int64_t n) {
    ks_block_q8_k *b = y;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int e = 0; e < KS_QK_K; e += 8)
            m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + e)), m);
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&b[ib], 0, sizeof b[ib]);
            continue;
        }
        int first = 0; /* amax is some |x[e]|: the scan stops */
        while (fabsf(x[first]) != amax)
            first++;
        const float iscale = -127.f / x[first];
        const __m256 vs = _mm256_set1_ps(iscale);
        for (int e = 0; e < KS_QK_K; e += 32) {
            __m256i c[4];
            for (int k = 0; k < 4; k++)
                c[k] = clamp_i8(nearest_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + e + 8 * k))));
            store_codes(c, b[ib].qs + e);
            b[ib].bsums[e / 16] = (int16_t)ks_x86_hsum_epi32(_mm256_add_epi32(c[0], c[1]));
            b[ib].bsums[e / 16 + 1] = (int16_t)ks_x86_hsum_epi32(_mm256_add_epi32(c[2], c[3]));
        }
        b[ib].d = 1.0f / iscale;
    }
}

void ks_quants_avx2_register(ks_kernels *k) {
    k->quantize_act[KS_TYPE_Q8_0] = quantize_row_q8_0_act_avx2;
    k->quantize_act[KS_TYPE_Q8_1] = quantize_row_q8_1_act_avx2;
    k->quantize_act[KS_TYPE_Q8_K] = quantize_row_q8_k_avx2;
}
