/* vec_dot_avx512.c — AVX-512 dot products of one weight row with one activation row, for
 * every weight type kvserve computes with but BF16 (vec_dot_bf16_avx512bf16.c): F, BW, VL,
 * DQ, VNNI (vpdpbusd, vpdpwssd). The contract is ks_vec_dot_fn's (kernels.h); the scalar kernels in
 * ref/vec_dot_ref.c are the specification.
 *
 * Owns: vec_dot_<weight>_<activation>_avx512, the 4-row (vec_dot_4_*) and two-weight-row
 * (vec_dot_2w_*: one row's float chain next to another's, for decode) forms of each, and
 * ks_vec_dot_avx512_register().
 * Does not own: the activation quantizers (quants_avx2.c serves this table too).
 *
 * 512-bit vectors where they pay; the float steps follow llama.cpp's Zen 4 build
 * (simd_x86.h, "Float order"), so the results equal its bit for bit:
 *   - F32, F16: four accumulators of 16 lanes, row tails one element at a time;
 *   - 32-element blocks: the AVX2 kernels (simd_x86.h) with vpdpbusd on 256-bit vectors
 *     (unsigned x signed bytes, four products into one int32, no saturation);
 *   - K-quants: the AVX2 kernels with vpdpwssd applying the sub-block scales.
 *
 * Divisions: float types; 32-element blocks; K-quants; the low-bit types (Q2_K, Q3_K,
 * IQ4_NL, IQ4_XS: simd_lowbit_x86.h); registration. */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_lowbit_x86.h"
#include "tensor/x86/simd_x86.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- float types -------------------------------------------------------------------- */

/* 16 elements of an F32 or F16 row from element i. */
static inline __m512 load16(ks_type t, const void *p, int64_t i) {
    if (t == KS_TYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const ks_fp16 *)p + i)));
    return _mm512_loadu_ps((const float *)p + i);
}

static inline float load1(ks_type t, const void *p, int64_t i) {
    if (t == KS_TYPE_F16)
        return ks_fp16_to_fp32(((const ks_fp16 *)p)[i]);
    return ((const float *)p)[i];
}

/* Four accumulators of 16 lanes over the first n - n % 64 elements, summed lane by lane
 * (a0 + a2) + (a1 + a3), then across the lanes; the tail one element at a time, F16
 * in double, F32 into the float sum as llama.cpp's Zen 4 build does it: its compiler
 * vectorized that loop, so the products of whole groups of 8 elements are rounded and
 * then added in order, and only the last n % 8 use an FMA each. */
static inline float dot_float(ks_type t, const void *w, const void *a, int64_t n) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    const int64_t np = n - n % 64;
    for (int64_t i = 0; i < np; i += 64)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm512_fmadd_ps(load16(t, w, i + 16 * k), load16(t, a, i + 16 * k), acc[k]);
    const float vec =
        ks_x86_hsum512(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
    if (t == KS_TYPE_F32) { /* the tail as llama.cpp's compiler vectorized it */
        const int64_t fused = n - (n - np) % 8;
        float sum = vec;
        for (int64_t i = np; i < n; i++) {
            /* a statement of its own: no compiler may fuse it into the add */
            const float p = load1(t, w, i) * load1(t, a, i);
            sum = i < fused ? sum + p : fmaf(load1(t, w, i), load1(t, a, i), sum);
        }
        return sum;
    }
    double sum = vec;
    for (int64_t i = np; i < n; i++)
        sum += (double)(load1(t, w, i) * load1(t, a, i));
    return (float)sum;
}

static float vec_dot_f32_f32_avx512(const void *w, const void *a, int64_t n) {
    return dot_float(KS_TYPE_F32, w, a, n);
}

static float vec_dot_f16_f16_avx512(const void *w, const void *a, int64_t n) {
    return dot_float(KS_TYPE_F16, w, a, n);
}

/* ---- 32-element blocks -------------------------------------------------------------- *
 *
 * ks_x86_dot_blocks() (simd_x86.h) with VNNI: four products into an int32 at once, no
 * saturation at all. */

static inline __m256i dot_u8i8_vnni(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

static float vec_dot_q4_0_q8_0_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q4_0, dot_u8i8_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q4_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q4_1_q8_1_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q4_1, dot_u8i8_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_1_q8_1_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q4_1, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_0_q8_0_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_0, dot_u8i8_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q5_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_1_q8_1_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_1, dot_u8i8_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_1_q8_1_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q5_1, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q8_0_q8_0_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q8_0, dot_u8i8_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q8_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q8_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

/* vec_dot_2w of the 32-element types: the same per row, two rows' chains side by side */
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q4_0_q8_0_avx512, KS_TYPE_Q4_0, dot_u8i8_vnni)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q4_1_q8_1_avx512, KS_TYPE_Q4_1, dot_u8i8_vnni)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q5_0_q8_0_avx512, KS_TYPE_Q5_0, dot_u8i8_vnni)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q5_1_q8_1_avx512, KS_TYPE_Q5_1, dot_u8i8_vnni)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q8_0_q8_0_avx512, KS_TYPE_Q8_0, dot_u8i8_vnni)

/* ---- K-quants ----------------------------------------------------------------------- *
 *
 * The AVX2 super-block code (simd_x86.h) on 256-bit vectors, with VNNI's vpdpwssd
 * multiplying the int16 pair sums by their sub-block scales and adding them in one
 * step. (512-bit vectors measured slower: the work per super-block is mostly shuffles
 * to line scales and activations up with the codes, which wider vectors add to.) */

static inline __m256i madd_acc_vnni(__m256i acc, __m256i p, __m256i s) {
    return _mm256_dpwssd_epi32(acc, p, s);
}

static inline void q45_k_sums(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                              const ks_block_q8_k *const *y, int nt, __m256i *sumi, __m128i *mins) {
    ks_x86_q45_k_sums(madd_acc_vnni, scales, qh, qs, y, nt, sumi, mins);
}

static float vec_dot_q4_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q4_k(q45_k_sums, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_q4_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q5_k(q45_k_sums, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_q5_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q6_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q6_k(madd_acc_vnni, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q6_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s, const void *pf) {
    ks_x86_dot_q6_k(madd_acc_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

KS_X86_VEC_DOT_2W_K45(vec_dot_2w_q4_k_q8_k_avx512, KS_TYPE_Q4_K, q45_k_sums)
KS_X86_VEC_DOT_2W_K45(vec_dot_2w_q5_k_q8_k_avx512, KS_TYPE_Q5_K, q45_k_sums)
KS_X86_VEC_DOT_2W_Q6_K(vec_dot_2w_q6_k_q8_k_avx512, madd_acc_vnni)

/* ---- the low-bit types (simd_lowbit_x86.h) ------------------------------------------ */

KS_X86_LOWBIT_KERNELS(avx512, q2_k, q8_k, ks_x86_dot_q2_k, madd_acc_vnni)
KS_X86_LOWBIT_KERNELS(avx512, q3_k, q8_k, ks_x86_dot_q3_k, madd_acc_vnni)
KS_X86_LOWBIT_KERNELS(avx512, iq4_nl, q8_0, ks_x86_dot_iq4_nl, dot_u8i8_vnni)
KS_X86_LOWBIT_KERNELS(avx512, iq4_xs, q8_k, ks_x86_dot_iq4_xs, madd_acc_vnni)

/* ---- registration ------------------------------------------------------------------- */

void ks_vec_dot_avx512_register(ks_kernels *k) {
    k->vec_dot[KS_TYPE_F32] = vec_dot_f32_f32_avx512;
    k->vec_dot[KS_TYPE_F16] = vec_dot_f16_f16_avx512;
    k->vec_dot[KS_TYPE_Q4_0] = vec_dot_q4_0_q8_0_avx512;
    k->vec_dot[KS_TYPE_Q4_1] = vec_dot_q4_1_q8_1_avx512;
    k->vec_dot[KS_TYPE_Q5_0] = vec_dot_q5_0_q8_0_avx512;
    k->vec_dot[KS_TYPE_Q5_1] = vec_dot_q5_1_q8_1_avx512;
    k->vec_dot[KS_TYPE_Q8_0] = vec_dot_q8_0_q8_0_avx512;
    k->vec_dot[KS_TYPE_Q4_K] = vec_dot_q4_k_q8_k_avx512;
    k->vec_dot[KS_TYPE_Q5_K] = vec_dot_q5_k_q8_k_avx512;
    k->vec_dot[KS_TYPE_Q6_K] = vec_dot_q6_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q4_0] = vec_dot_4_q4_0_q8_0_avx512;
    k->vec_dot_4[KS_TYPE_Q4_1] = vec_dot_4_q4_1_q8_1_avx512;
    k->vec_dot_4[KS_TYPE_Q5_0] = vec_dot_4_q5_0_q8_0_avx512;
    k->vec_dot_4[KS_TYPE_Q5_1] = vec_dot_4_q5_1_q8_1_avx512;
    k->vec_dot_4[KS_TYPE_Q8_0] = vec_dot_4_q8_0_q8_0_avx512;
    KS_X86_REGISTER_VEC_DOT_2W(k, avx512);
    k->vec_dot_4[KS_TYPE_Q4_K] = vec_dot_4_q4_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q5_K] = vec_dot_4_q5_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q6_K] = vec_dot_4_q6_k_q8_k_avx512;
    k->vec_dot[KS_TYPE_Q2_K] = vec_dot_q2_k_q8_k_avx512;
    k->vec_dot[KS_TYPE_Q3_K] = vec_dot_q3_k_q8_k_avx512;
    k->vec_dot[KS_TYPE_IQ4_NL] = vec_dot_iq4_nl_q8_0_avx512;
    k->vec_dot[KS_TYPE_IQ4_XS] = vec_dot_iq4_xs_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q2_K] = vec_dot_4_q2_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q3_K] = vec_dot_4_q3_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_IQ4_NL] = vec_dot_4_iq4_nl_q8_0_avx512;
    k->vec_dot_4[KS_TYPE_IQ4_XS] = vec_dot_4_iq4_xs_q8_k_avx512;
}
