/* simd_lowbit_x86.h — the dot products of the low-bit weight types on 256-bit vectors:
 * Q2_K and Q3_K (2-bit code planes, 16-element sub-blocks) and IQ4_NL, IQ4_XS (4-bit
 * indices into ks_iq4_values), against Q8_K / Q8_0 activations, for one weight row and
 * one to four activation rows (vec_dot, vec_dot_4).
 *
 * Owns: those row loops. They take the one ISA-specific step as a constant argument, as
 * simd_x86.h's do (the int16-pairs-times-scales step ks_x86_madd_acc_fn, the 4-byte dot
 * ks_x86_u8i8_fn): vec_dot_avx2.c and vec_dot_avx512.c instantiate them.
 *
 * Float order (simd_x86.h): as llama.cpp's x86 build, whose AVX2 code its Zen 4 build
 * runs too for these types, so both tables take the same steps. The integer sums are
 * exact; what fixes the result is which terms an int32 lane holds (here as there: lane l
 * of a 32-element chunk holds its elements 4l .. 4l + 3) and the float steps after them:
 *
 *   Q2_K   acc += -(dmin da) * mins; acc += (d da) * sumi    8 lanes, per super-block
 *          mins lane l = mn[2l] bsums[2l] + mn[2l+1] bsums[2l+1]
 *   Q3_K   acc += (d da) * sumi
 *   IQ4_XS acc += (d da) * sumi, sumi with each group's scale ls - 32 applied
 *   IQ4_NL acc_even / acc_odd += (da d) * sumi of the even / odd blocks; hsum of their
 *          sum; a last odd block then added as one scalar FMA
 *
 * and the result hsum (ks_x86_hsum_ps) of the 8 lanes. Bounds: Q2_K |sumi| <= 256 * 3 *
 * 127 * 15, Q3_K 256 * 4 * 127 * 32, IQ4 256 * 127 * 127 * 32, all < 2^31; no int16
 * pair saturates (Q3_K 2 * 4 * 127, IQ4 2 * 127 * 127 < 2^15).
 *
 * Only static inline code, for files compiled with at least -mavx2 -mfma -mf16c. */
#ifndef KS_SIMD_LOWBIT_X86_H
#define KS_SIMD_LOWBIT_X86_H

#include "tensor/x86/simd_x86.h"

#include <math.h>

/* ---- Q2_K and Q3_K ------------------------------------------------------------------ */

/* The int16 scales of plane k (0..3) of a half: sub-block 2k in lanes 0..7 (the plane's
 * first 16 bytes), 2k + 1 in lanes 8..15, from the half's 8 scales held as int16 in both
 * 128-bit lanes of s8. */
static inline __m256i ks_x86_plane_scales(__m256i s8, int k) {
    const __m256i idx = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, /* 2k */
                                         2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3); /* 2k + 1 */
    return _mm256_shuffle_epi8(s8, _mm256_add_epi8(idx, _mm256_set1_epi8((char)(4 * k))));
}

/* 16 int8 sub-block scales as int16, the first 8 in both 128-bit lanes of half[0], the
 * last 8 in both of half[1]. */
static inline void ks_x86_halves_of_scales(__m128i sc8, __m256i half[2]) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    half[0] = _mm256_permute2x128_si256(sc16, sc16, 0x00);
    half[1] = _mm256_permute2x128_si256(sc16, sc16, 0x11);
}

/* One Q2_K super-block against nt activation blocks: sumi[j] (scaled code sums) and
 * mins[j] (the mins term), the weight codes decoded once. */
static KS_ALWAYS_INLINE void ks_x86_q2_k_sums(ks_x86_madd_acc_fn madd_acc, const ks_block_q2_k *x,
                                              const ks_block_q8_k *const *y, int nt, __m256i *sumi,
                                              __m256i *mins) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const __m128i packed = _mm_loadu_si128((const __m128i *)x->scales);
    const __m256i mn16 = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    __m256i half[2];
    ks_x86_halves_of_scales(_mm_and_si128(packed, low4), half);
    for (int j = 0; j < nt; j++) {
        mins[j] = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)y[j]->bsums));
        sumi[j] = _mm256_setzero_si256();
    }
    const __m256i low2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; h++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), low2);
            const __m256i sc = ks_x86_plane_scales(half[h], k);
            for (int j = 0; j < nt; j++) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(y[j]->qs + 128 * h + 32 * k));
                sumi[j] = madd_acc(sumi[j], _mm256_maddubs_epi16(q, a), sc);
            }
        }
    }
}

/* Q2_K: one weight row against nt activation rows (out[j]); pf the row to ask for. */
static KS_ALWAYS_INLINE void ks_x86_dot_q2_k(ks_x86_madd_acc_fn madd_acc, const void *w, const void *a,
                                             size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    __m256 acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_q2_k *x = (const ks_block_q2_k *)w + ib;
        const ks_block_q8_k *y[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            y[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
        ks_x86_prefetch_share(pf ? &pf : NULL, 1, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        __m256i sumi[KS_VEC_DOT_ROWS], mins[KS_VEC_DOT_ROWS];
        ks_x86_q2_k_sums(madd_acc, x, y, nt, sumi, mins);
        for (int j = 0; j < nt; j++) {
            const float d = y[j]->d * ks_x86_fp16(x->d), dmin = -y[j]->d * ks_x86_fp16(x->dmin);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(mins[j]), acc[j]);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = ks_x86_hsum_ps(acc[j]);
}

/* Q3_K's 16 scales (ks_q3_k_scale) - 32 as int8, sub-block k in byte k. */
static inline __m128i ks_x86_q3_k_scales(const uint8_t *scales) {
    uint32_t u0, u1, u2;
    memcpy(&u0, scales, 4);
    memcpy(&u1, scales + 4, 4);
    memcpy(&u2, scales + 8, 4);
    const uint32_t low4 = 0x0f0f0f0fu, two = 0x03030303u;
    const __m128i s = _mm_setr_epi32((int)((u0 & low4) | ((u2 & two) << 4)),
                                     (int)((u1 & low4) | (((u2 >> 2) & two) << 4)),
                                     (int)(((u0 >> 4) & low4) | (((u2 >> 4) & two) << 4)),
                                     (int)(((u1 >> 4) & low4) | (((u2 >> 6) & two) << 4)));
    return _mm_sub_epi8(s, _mm_set1_epi8(32));
}

/* One Q3_K super-block against nt activation blocks: sumi[j] of codes q - 4, taken as
 * (low 2 bits) . a - (4 where the high bit is clear) . a, the weight codes decoded once. */
static KS_ALWAYS_INLINE void ks_x86_q3_k_sums(ks_x86_madd_acc_fn madd_acc, const ks_block_q3_k *x,
                                              const ks_block_q8_k *const *y, int nt, __m256i *sumi) {
    __m256i half[2];
    ks_x86_halves_of_scales(ks_x86_q3_k_scales(x->scales), half);
    const __m256i hbits = _mm256_loadu_si256((const __m256i *)x->hmask);
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int j = 0; j < nt; j++)
        sumi[j] = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * h));
        for (int k = 0; k < 4; k++) {
            const __m256i plane = _mm256_set1_epi8((char)(1 << (4 * h + k)));
            const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), three);
            const __m256i clear =
                _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, plane), _mm256_setzero_si256()), four);
            const __m256i sc = ks_x86_plane_scales(half[h], k);
            for (int j = 0; j < nt; j++) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)(y[j]->qs + 128 * h + 32 * k));
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), _mm256_maddubs_epi16(clear, a));
                sumi[j] = madd_acc(sumi[j], p, sc);
            }
        }
    }
}

static KS_ALWAYS_INLINE void ks_x86_dot_q3_k(ks_x86_madd_acc_fn madd_acc, const void *w, const void *a,
                                             size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    __m256 acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_q3_k *x = (const ks_block_q3_k *)w + ib;
        const ks_block_q8_k *y[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            y[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
        ks_x86_prefetch_share(pf ? &pf : NULL, 1, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        __m256i sumi[KS_VEC_DOT_ROWS];
        ks_x86_q3_k_sums(madd_acc, x, y, nt, sumi);
        for (int j = 0; j < nt; j++) {
            const float d = y[j]->d * ks_x86_fp16(x->d);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = ks_x86_hsum_ps(acc[j]);
}

/* ---- IQ4_NL and IQ4_XS -------------------------------------------------------------- */

/* A group's 32 table values (signed) from its 16 code bytes (element i in byte i). */
static inline __m256i ks_x86_iq4_values32(const uint8_t *qs) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ks_iq4_values));
    return _mm256_shuffle_epi8(table, ks_x86_nibbles32(qs));
}

/* IQ4_NL (dot_type Q8_0): one weight row against nt activation rows. */
static KS_ALWAYS_INLINE void ks_x86_dot_iq4_nl(ks_x86_u8i8_fn dot, const void *w, const void *a, size_t a_stride,
                                               int64_t n, int nt, float *out, const void *pf) {
    const ks_block_iq4_nl *x = w;
    const int64_t nb = n / KS_QK4_NL;
    __m256 acc[2][KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[0][j] = acc[1][j] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        ks_x86_prefetch_share(pf ? &pf : NULL, 1, (size_t)ib * sizeof *x, (size_t)(ib + 2) * sizeof *x);
        for (int e = 0; e < 2; e++) {
            const __m256i v = ks_x86_iq4_values32(x[ib + e].qs);
            const __m256i u = _mm256_sign_epi8(v, v);
            const float dw = ks_x86_fp16(x[ib + e].d);
            for (int j = 0; j < nt; j++) {
                const ks_block_q8_0 *y = (const ks_block_q8_0 *)((const uint8_t *)a + (size_t)j * a_stride) + ib + e;
                const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), v);
                acc[e][j] = _mm256_fmadd_ps(_mm256_set1_ps(ks_x86_fp16(y->d) * dw), _mm256_cvtepi32_ps(dot(u, s)),
                                            acc[e][j]);
            }
        }
    }
    for (int j = 0; j < nt; j++) {
        float sum = ks_x86_hsum_ps(_mm256_add_ps(acc[0][j], acc[1][j]));
        if (ib < nb) { /* the last of an odd count */
            const ks_block_q8_0 *y = (const ks_block_q8_0 *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
            const __m256i v = ks_x86_iq4_values32(x[ib].qs);
            const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), v);
            const int sumi = ks_x86_hsum_epi32(dot(_mm256_sign_epi8(v, v), s));
            sum = fmaf(ks_x86_fp16(y->d) * ks_x86_fp16(x[ib].d), (float)sumi, sum);
        }
        out[j] = sum;
    }
}

/* IQ4_XS (dot_type Q8_K): one weight row against nt activation rows. */
static KS_ALWAYS_INLINE void ks_x86_dot_iq4_xs(ks_x86_madd_acc_fn madd_acc, const void *w, const void *a,
                                               size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    __m256 acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++)
        acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_iq4_xs *x = (const ks_block_iq4_xs *)w + ib;
        const ks_block_q8_k *y[KS_VEC_DOT_ROWS];
        __m256i sumi[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++) {
            y[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
            sumi[j] = _mm256_setzero_si256();
        }
        ks_x86_prefetch_share(pf ? &pf : NULL, 1, (size_t)ib * sizeof *x, (size_t)(ib + 1) * sizeof *x);
        for (int g = 0; g < KS_QK_K / 32; g++) {
            const __m256i v = ks_x86_iq4_values32(x->qs + 16 * g);
            const __m256i u = _mm256_sign_epi8(v, v);
            const __m256i ls = _mm256_set1_epi16((short)(ks_iq4_xs_scale(x, g) - 32));
            for (int j = 0; j < nt; j++) {
                const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(y[j]->qs + 32 * g)), v);
                sumi[j] = madd_acc(sumi[j], _mm256_maddubs_epi16(u, s), ls);
            }
        }
        for (int j = 0; j < nt; j++) {
            const float d = ks_x86_fp16(x->d) * y[j]->d;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = ks_x86_hsum_ps(acc[j]);
}

/* The kernel-table entries (vec_dot, vec_dot_4) of one row loop above for an ISA file,
 * named vec_dot[_4]_<weight>_<activation>_<isa>; step the ISA's integer step. */
#define KS_X86_LOWBIT_KERNELS(isa, wt, at, loop, step)                                              \
    static float vec_dot_##wt##_##at##_##isa(const void *w, const void *a, int64_t n) {            \
        float s;                                                                                    \
        loop(step, w, a, 0, n, 1, &s, NULL);                                                        \
        return s;                                                                                   \
    }                                                                                               \
    static void vec_dot_4_##wt##_##at##_##isa(const void *w, const void *a, size_t a_stride,       \
                                              int64_t n, float *s, const void *pf) {                \
        loop(step, w, a, a_stride, n, KS_VEC_DOT_ROWS, s, pf);                                      \
    }

#endif
