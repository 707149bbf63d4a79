/* vec_dot_avx2.c — AVX2 + FMA + F16C dot products of one weight row with one activation
 * row, for every weight type kvserve computes with. The contract is ks_vec_dot_fn's
 * (kernels.h); the scalar kernels in ref/vec_dot_ref.c are the specification.
 *
 * Owns: vec_dot_<weight>_<activation>_avx2, their 4-row (vec_dot_4_*) and two-weight-row
 * (vec_dot_2w_*) forms, and ks_vec_dot_avx2_register().
 * Does not own: the activation quantizers (quants_avx2.c), the AVX-512 kernels.
 *
 * The integer kernels live in simd_x86.h and simd_lowbit_x86.h, shared with the AVX-512
 * table; this file brings
 * their AVX2 multiply steps and the float-row kernels.
 *
 * Arithmetic against ref. Each block's (super-block's) integer sum of code products is
 * exact, as in ref, but held as 8 int32 partial lanes; the float steps after it follow
 * llama.cpp's AVX2 build (simd_x86.h, "Float order"), not ref's portable order: results
 * equal ref's to float rounding and llama.cpp's x86 results bit for bit.
 *
 * Integer bounds (the header of simd_x86.h explains why activation codes are within
 * -127..127) are given per kernel.
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

/* 8 elements of a float row of type t (F32, F16 or BF16) from element i, as floats. */
static inline __m256 load8(ks_type t, const void *p, int64_t i) {
    switch (t) {
    case KS_TYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const ks_fp16 *)p + i)));
    case KS_TYPE_BF16: { /* a bf16 is the top half of a float */
        const __m128i h = _mm_loadu_si128((const __m128i *)((const ks_bf16 *)p + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    default: return _mm256_loadu_ps((const float *)p + i);
    }
}

static inline float load1(ks_type t, const void *p, int64_t i) {
    switch (t) {
    case KS_TYPE_F16: return ks_fp16_to_fp32(((const ks_fp16 *)p)[i]);
    case KS_TYPE_BF16: return ks_bf16_to_fp32(((const ks_bf16 *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* Four accumulators of 8 lanes over the first n - n % 32 elements, summed lane by lane
 * (a0 + a2) + (a1 + a3), then across the lanes; the tail one element at a time, F16 and BF16
 * in double, F32 into the float sum as llama.cpp's AVX2 build does it: its compiler
 * vectorized that loop, so the products of whole groups of 4 elements are rounded and
 * then added in order, and only the last n % 4 use an FMA each. */
static inline float dot_float(ks_type t, const void *w, const void *a, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    const int64_t np = n - n % 32;
    for (int64_t i = 0; i < np; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load8(t, w, i + 8 * k), load8(t, a, i + 8 * k), acc[k]);
    const __m256 all = ks_x86_add4_ps(acc);
    if (t == KS_TYPE_F32) { /* the tail as llama.cpp's compiler vectorized it */
        const int64_t fused = n - (n - np) % 4;
        float sum = ks_x86_hsum_ps_pairs(all);
        for (int64_t i = np; i < n; i++) {
            /* a statement of its own: no compiler may fuse it into the add */
            const float p = load1(t, w, i) * load1(t, a, i);
            sum = i < fused ? sum + p : fmaf(load1(t, w, i), load1(t, a, i), sum);
        }
        return sum;
    }
    double sum = t == KS_TYPE_BF16 ? ks_x86_hsum_ps(all) : ks_x86_hsum_ps_pairs(all);
    for (int64_t i = np; i < n; i++)
        sum += (double)(load1(t, w, i) * load1(t, a, i));
    return (float)sum;
}

static float vec_dot_f32_f32_avx2(const void *w, const void *a, int64_t n) {
    return dot_float(KS_TYPE_F32, w, a, n);
}

static float vec_dot_f16_f16_avx2(const void *w, const void *a, int64_t n) {
    return dot_float(KS_TYPE_F16, w, a, n);
}

static float vec_dot_bf16_bf16_avx2(const void *w, const void *a, int64_t n) {
    return dot_float(KS_TYPE_BF16, w, a, n);
}

/* ---- 32-element blocks -------------------------------------------------------------- *
 *
 * ks_x86_dot_blocks() (simd_x86.h) with maddubs + madd: |q - zero| <= 128 (Q8_0 weight
 * codes may be -128) and q <= 31 against activation codes in -127..127, so no int16
 * pair saturates. */

static float vec_dot_q4_0_q8_0_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q4_0, ks_x86_dot_u8i8, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_0_q8_0_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q4_0, ks_x86_dot_u8i8, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q4_1_q8_1_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q4_1, ks_x86_dot_u8i8, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_1_q8_1_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q4_1, ks_x86_dot_u8i8, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_0_q8_0_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_0, ks_x86_dot_u8i8, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_0_q8_0_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q5_0, ks_x86_dot_u8i8, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_1_q8_1_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_1, ks_x86_dot_u8i8, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_1_q8_1_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q5_1, ks_x86_dot_u8i8, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q8_0_q8_0_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q8_0, ks_x86_dot_u8i8, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q8_0_q8_0_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_blocks(KS_TYPE_Q8_0, ks_x86_dot_u8i8, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q4_0_q8_0_avx2, KS_TYPE_Q4_0, ks_x86_dot_u8i8)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q4_1_q8_1_avx2, KS_TYPE_Q4_1, ks_x86_dot_u8i8)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q5_0_q8_0_avx2, KS_TYPE_Q5_0, ks_x86_dot_u8i8)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q5_1_q8_1_avx2, KS_TYPE_Q5_1, ks_x86_dot_u8i8)
KS_X86_VEC_DOT_2W_BLOCKS(vec_dot_2w_q8_0_q8_0_avx2, KS_TYPE_Q8_0, ks_x86_dot_u8i8)

/* ---- K-quants ----------------------------------------------------------------------- *
 *
 * The super-block kernels of simd_x86.h with madd + add applying the sub-block scales:
 * the int16 pairs (<= 2 * 63 * 127) times scales (<= 128 in magnitude) fit int32. */

/* int16 pairs times int16 scales, added into int32 lanes: madd, then add, the add one
 * opaque vpaddd into acc: GCC reassociates a chain of intrinsic adds into a tree over
 * all of a super-block's products, which keeps them alive at once and spills them to
 * the stack (Q4_K on a Zen 3 VM, bench_kernels hot in L2: vec_dot 11.1 -> 17.2 GB/s,
 * vec_dot_4 14.7 -> 27.1 GB/s x tokens; Q5_K vec_dot_4 20.7 -> 28.0). */
static inline __m256i madd_acc(__m256i acc, __m256i p, __m256i s) {
    const __m256i m = _mm256_madd_epi16(p, s);
    __asm__("vpaddd %[m], %[c], %[c]" : [c] "+x"(acc) : [m] "x"(m));
    return acc;
}

static inline void q45_k_sums(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                              const ks_block_q8_k *const *y, int nt, __m256i *sumi, __m128i *mins) {
    ks_x86_q45_k_sums(madd_acc, scales, qh, qs, y, nt, sumi, mins);
}

static float vec_dot_q4_k_q8_k_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q4_k(q45_k_sums, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q4_k_q8_k_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_q4_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q5_k_q8_k_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q5_k(q45_k_sums, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q5_k_q8_k_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_q5_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

static float vec_dot_q6_k_q8_k_avx2(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q6_k(madd_acc, w, a, 0, n, 1, &s, NULL);
    return s;
}

static void vec_dot_4_q6_k_q8_k_avx2(const void *w, const void *a, size_t a_stride, int64_t n,
                                     float *s, const void *pf) {
    ks_x86_dot_q6_k(madd_acc, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);
}

KS_X86_VEC_DOT_2W_K45(vec_dot_2w_q4_k_q8_k_avx2, KS_TYPE_Q4_K, q45_k_sums)
KS_X86_VEC_DOT_2W_K45(vec_dot_2w_q5_k_q8_k_avx2, KS_TYPE_Q5_K, q45_k_sums)
KS_X86_VEC_DOT_2W_Q6_K(vec_dot_2w_q6_k_q8_k_avx2, madd_acc)

/* ---- the low-bit types (simd_lowbit_x86.h) ------------------------------------------ */

KS_X86_LOWBIT_KERNELS(avx2, q2_k, q8_k, ks_x86_dot_q2_k, madd_acc)
KS_X86_LOWBIT_KERNELS(avx2, q3_k, q8_k, ks_x86_dot_q3_k, madd_acc)
KS_X86_LOWBIT_KERNELS(avx2, iq4_nl, q8_0, ks_x86_dot_iq4_nl, ks_x86_dot_u8i8)
KS_X86_LOWBIT_KERNELS(avx2, iq4_xs, q8_k, ks_x86_dot_iq4_xs, madd_acc)

/* ---- registration ------------------------------------------------------------------- */

void ks_vec_dot_avx2_register(ks_kernels *k) {
    k->vec_dot[KS_TYPE_F32] = vec_dot_f32_f32_avx2;
    k->vec_dot[KS_TYPE_F16] = vec_dot_f16_f16_avx2;
    k->vec_dot[KS_TYPE_BF16] = vec_dot_bf16_bf16_avx2;
    k->vec_dot[KS_TYPE_Q4_0] = vec_dot_q4_0_q8_0_avx2;
    k->vec_dot[KS_TYPE_Q4_1] = vec_dot_q4_1_q8_1_avx2;
    k->vec_dot[KS_TYPE_Q5_0] = vec_dot_q5_0_q8_0_avx2;
    k->vec_dot[KS_TYPE_Q5_1] = vec_dot_q5_1_q8_1_avx2;
    k->vec_dot[KS_TYPE_Q8_0] = vec_dot_q8_0_q8_0_avx2;
    k->vec_dot[KS_TYPE_Q4_K] = vec_dot_q4_k_q8_k_avx2;
    k->vec_dot[KS_TYPE_Q5_K] = vec_dot_q5_k_q8_k_avx2;
    k->vec_dot[KS_TYPE_Q6_K] = vec_dot_q6_k_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_Q4_0] = vec_dot_4_q4_0_q8_0_avx2;
    k->vec_dot_4[KS_TYPE_Q4_1] = vec_dot_4_q4_1_q8_1_avx2;
    k->vec_dot_4[KS_TYPE_Q5_0] = vec_dot_4_q5_0_q8_0_avx2;
    k->vec_dot_4[KS_TYPE_Q5_1] = vec_dot_4_q5_1_q8_1_avx2;
    k->vec_dot_4[KS_TYPE_Q8_0] = vec_dot_4_q8_0_q8_0_avx2;
    k->vec_dot_4[KS_TYPE_Q4_K] = vec_dot_4_q4_k_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_Q5_K] = vec_dot_4_q5_k_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_Q6_K] = vec_dot_4_q6_k_q8_k_avx2;
    KS_X86_REGISTER_VEC_DOT_2W(k, avx2);
    k->vec_dot[KS_TYPE_Q2_K] = vec_dot_q2_k_q8_k_avx2;
    k->vec_dot[KS_TYPE_Q3_K] = vec_dot_q3_k_q8_k_avx2;
    k->vec_dot[KS_TYPE_IQ4_NL] = vec_dot_iq4_nl_q8_0_avx2;
    k->vec_dot[KS_TYPE_IQ4_XS] = vec_dot_iq4_xs_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_Q2_K] = vec_dot_4_q2_k_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_Q3_K] = vec_dot_4_q3_k_q8_k_avx2;
    k->vec_dot_4[KS_TYPE_IQ4_NL] = vec_dot_4_iq4_nl_q8_0_avx2;
    k->vec_dot_4[KS_TYPE_IQ4_XS] = vec_dot_4_iq4_xs_q8_k_avx2;
}
