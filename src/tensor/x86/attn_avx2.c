/* attn_avx2.c — the streaming-attention kernels on AVX2 + FMA (tensor/attn_tiles.h holds
 * them, written once; this file gives them a vector of 8 floats and tiles of 8
 * accumulators, which with 16 registers leave room for the operands).
 *
 * exp (attn_tiles.h) builds its 2^n in the exponent field, which needs n >= -126: inputs
 * below ln(FLT_MIN) = -87.34 give 0 (e^x < 1.2e-38 there; a softmax weight that small is
 * lost in any sum that holds the maximum's weight 1). */
#include "tensor/quants.h"
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

#include <immintrin.h>
#include <string.h>

typedef __m256 attn_vec;
typedef __m256i attn_mask;
#define ATTN_LANES 8
#define ATTN_TILE 8
#define ATTN_ROWS 2
#define ATTN_ACC_ROWS 4

static inline attn_mask vmask(int64_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline attn_vec vzero(void) { return _mm256_setzero_ps(); }
static inline attn_vec vset1(float x) { return _mm256_set1_ps(x); }
static inline attn_vec vloadm(const float *p, attn_mask m) { return _mm256_maskload_ps(p, m); }
static inline attn_vec vloadm_or(const float *p, attn_mask m, attn_vec v) {
    return _mm256_blendv_ps(v, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
static inline attn_vec vloadm_h(const ks_fp16 *p, attn_mask m, int64_t cnt) {
    (void)m;
    if (cnt == 8)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    ks_fp16 h[8] = {0}; /* a tail: copied, as halves have no masked load here */
    memcpy(h, p, (size_t)cnt * sizeof *h);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}
static inline attn_vec vloadm_q8(const int8_t *p, attn_mask m, int64_t cnt) {
    (void)m;
    int64_t w = 0; /* a tail: copied, as bytes have no masked load here */
    memcpy(&w, p, (size_t)cnt);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(w)));
}
static inline attn_vec vset1_h(ks_fp16 d) { return _mm256_cvtph_ps(_mm_set1_epi16((short)d)); }
static inline void vstorem(float *p, attn_mask m, attn_vec v) { _mm256_maskstore_ps(p, m, v); }
static inline attn_vec vkeep(attn_mask m, attn_vec v) { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
static inline attn_vec vfma(attn_vec a, attn_vec b, attn_vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline attn_vec vadd(attn_vec a, attn_vec b) { return _mm256_add_ps(a, b); }
static inline attn_vec vsub(attn_vec a, attn_vec b) { return _mm256_sub_ps(a, b); }
static inline attn_vec vmax(attn_vec a, attn_vec b) { return _mm256_max_ps(a, b); }
static inline float vhsum(attn_vec v) { return ks_x86_hsum_ps(v); }

static inline float vhmax(attn_vec v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

static inline void vhsum4(attn_vec a, attn_vec b, attn_vec c, attn_vec d, float scale, float *out) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    _mm_storeu_ps(out, _mm_mul_ps(sum, _mm_set1_ps(scale)));
}

/* ln(FLT_MIN): below it 2^n has no exponent field; vldexp gives 0 there */
#define ATTN_EXP_MIN -87.3365447f
static inline attn_vec vround(attn_vec x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline attn_vec vmul(attn_vec a, attn_vec b) { return _mm256_mul_ps(a, b); }
static inline attn_vec vfnma(attn_vec a, attn_vec b, attn_vec c) { return _mm256_fnmadd_ps(a, b, c); }
/* p 2^n, n integer in -126..0 (n + 127 is the exponent field); 0 where the unclamped
 * input x was below ATTN_EXP_MIN */
static inline attn_vec vldexp(attn_vec p, attn_vec n, attn_vec x) {
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 below = _mm256_cmp_ps(x, _mm256_set1_ps(ATTN_EXP_MIN), _CMP_LT_OQ);
    return _mm256_andnot_ps(below, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

#include "tensor/attn_tiles.h"

void ks_attn_avx2_register(ks_kernels *k) {
    attn_register(k);
    ks_attn_q8p_avx2_register(k);  /* Q8_0 keys in panels against Q8_0 queries */
    ks_attn_f16p_avx2_register(k); /* F16 keys in panels against float queries */
}
