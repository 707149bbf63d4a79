/* simd_x86.h — the code the x86 kernel files share.
 *
 * Owns: horizontal sums in named orders, fp16 scale loads, the unpacking of packed block
 * fields (4-bit codes, the 5th bit of Q5_0/Q5_1, Q4_K/Q5_K 6-bit scales and mins), and
 * the integer dot products themselves on 256-bit vectors (32-element blocks, K-quants),
 * which take their one ISA-specific step, the multiply of bytes or of int16 pairs, as a
 * constant function argument: maddubs/madd from vec_dot_avx2.c, VNNI from
 * vec_dot_avx512.c. Both tables thus run the same arithmetic.
 * Does not own: the block layouts (quants.h), the table entries and the float-row kernels
 * (vec_dot_avx2.c, vec_dot_avx512.c), the activation quantizers (quants_avx2.c).
 *
 * Divisions: sums and loads; field unpacking; 32-element blocks; K-quant super-blocks;
 * K-quant row loops.
 *
 * Only static inline code: this header is included by files compiled with at least
 * -mavx2 -mfma -mf16c (kernels_x86.h lists them) and must not emit ISA code into any
 * other translation unit.
 *
 * Integer exactness. The kernels multiply weight codes by Q8 activation codes with
 * _mm256_maddubs_epi16 (unsigned 8 bit x signed 8 bit, adjacent pairs summed into a
 * saturating int16), or with VNNI's vpdpbusd (the same products, four summed into an
 * int32, no saturation). Every activation quantizer kvserve has (Q8_0, Q8_1, Q8_K) maps
 * the block's largest magnitude to 127, so activation codes lie in -127..127: then a pair
 * of products stays below 2 * 128 * 127 = 32512 < 2^15 for any unsigned operand up to
 * 128, and nothing saturates. Each kernel's comment bounds its own sums.
 *
 * Float order. The integer sums are exact, so a kernel's result depends only on how it
 * rounds the float steps after them. The x86 kernels take those steps exactly as
 * llama.cpp's x86 build does (its AVX2 build for the AVX2 table, its Zen 4 build for the
 * AVX-512 one): the same float lanes, products, FMAs and horizontal sums in the same
 * order, so kvserve's dot products equal its bit for bit and logits follow its reference
 * runs even where two candidates differ in the last bits. The reductions below are named
 * for that order; tests/kernels/test_vec_dot.c checks the results against its library. */
#ifndef KS_SIMD_X86_H
#define KS_SIMD_X86_H

#include "core/ks_core.h"
#include "tensor/fp16.h"
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/types.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- sums and loads ----------------------------------------------------------------- */

/* Sum of the 8 float lanes: s = low half + high half, then (s0 + s2) + (s1 + s3). */
static inline float ks_x86_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sum of the 4 float lanes: (s0 + s2) + (s1 + s3). */
static inline float ks_x86_hsum_ps128(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#ifdef __AVX512F__
/* ks_x86_hsum_ps of four 8-lane rows at once, the 256-bit halves of a[0] (rows 0, 1) and
 * a[1] (rows 2, 3): each row takes the same adds in the same order (v_i + v_i+4, then
 * lanes 0, 1 plus lanes 2, 3, then lane 0 plus lane 1), the four side by side in the
 * 128-bit lanes of one vector; the sums in lanes 0, 4, 8 and 12. */
static inline __m512 ks_x86_hsum_ps_rows4(__m512 a0, __m512 a1) {
    const __m512 lo = _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 hi = _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
    __m512 x = _mm512_add_ps(lo, hi);
    x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(3, 3, 1, 1)));
}

/* ks_x86_hsum_ps128 of the four 128-bit lanes of m (rows 0..3) at once, in the same
 * order; the sums in lanes 0, 4, 8 and 12. */
static inline __m512 ks_x86_hsum_ps128_rows4(__m512 m) {
    m = _mm512_add_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(3, 3, 1, 1)));
}

/* Sum of the 16 lanes in the order of GCC's _mm512_reduce_add_ps, which llama.cpp's
 * build used (spelled out: other compilers reduce in other orders): halves of 256, of
 * 128, then (s0 + s2) + (s1 + s3). */
static inline float ks_x86_hsum512(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 p = _mm_add_ps(q, _mm_shuffle_ps(q, q, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(p) + _mm_cvtss_f32(_mm_movehdup_ps(p));
}

/* Lanes 0, 4, 8 and 12 of v: the four sums of the two above. */
static inline __m128 ks_x86_rows4_sums(__m512 v) {
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, v));
}
#endif

/* Sum of the 8 float lanes by pairs: s = low half + high half, then (s0 + s1) + (s2 + s3)
 * (the order two horizontal adds give). */
static inline float ks_x86_hsum_ps_pairs(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(_mm_hadd_ps(t, t));
}

/* Sum of 4 accumulators of 8 lanes: (a0 + a2) + (a1 + a3), lane by lane. */
static inline __m256 ks_x86_add4_ps(const __m256 a[4]) {
    return _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
}

/* Sum of the 8 int32 lanes (exact as long as the sum fits). */
static inline int ks_x86_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* One fp16 value as a float (exact). */
static inline float ks_x86_fp16(ks_fp16 h) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

/* The fp16 at p + k * stride (k = 0..7), e.g. the scales of 8 consecutive blocks, as 8
 * floats (exact). Blocks are only 2-byte aligned, hence the byte stride; the halves are
 * inserted one by one (a vector load of 8 just-stored halves would stall on store
 * forwarding). */
static inline __m256 ks_x86_fp16x8(const void *p, size_t stride) {
    const uint8_t *b = p;
    uint16_t h[8];
    for (int k = 0; k < 8; k++)
        memcpy(&h[k], b + (size_t)k * stride, sizeof h[k]);
    return _mm256_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3],
                                          (short)h[4], (short)h[5], (short)h[6], (short)h[7]));
}

/* Float lane j of v in all 8 lanes. */
static inline __m256 ks_x86_lane(__m256 v, int j) {
    return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j));
}

/* ---- field unpacking ---------------------------------------------------------------- */

/* The 32 codes of a 4-bit 32-element block (layout at ks_block_q4_0), byte i = q[i] in
 * 0..15: the low nibbles of the 16 bytes are elements 0..15, the high ones 16..31. */
static inline __m256i ks_x86_nibbles32(const uint8_t *qs) {
    const __m128i v = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* Byte i = 0xff where bit i of the little-endian 32-bit word at qh is set, else 0 (the
 * fifth bits of a Q5_0/Q5_1 block): each byte receives the qh byte holding its bit, then
 * keeps only that bit and compares. */
static inline __m256i ks_x86_bit_bytes(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, sizeof bits);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* in-lane */
                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

/* Sums of 4 adjacent products u[i] * s[i] as 8 int32 lanes; u unsigned (at most 128),
 * s signed in -127..127 (see the header comment). */
static inline __m256i ks_x86_dot_u8i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Q4_K/Q5_K packed scales (diagram at ks_block_q4_k) as 16 bytes: sc[0..7] in bytes
 * 0..7, mn[0..7] in bytes 8..15. Read as three little-endian words u0 = bytes 0..3,
 * u1 = 4..7, u2 = 8..11, byte k of
 *   sc[0..3] = u0 & 63               sc[4..7] = (u2 & 15) | (top 2 bits of u0) << 4
 *   mn[0..3] = u1 & 63               mn[4..7] = (u2 >> 4) | (top 2 bits of u1) << 4
 * all four bytes of a word at once. */
static inline __m128i ks_x86_k_scales_mins(const uint8_t *scales) {
    uint32_t u0, u1, u2;
    memcpy(&u0, scales, 4);
    memcpy(&u1, scales + 4, 4);
    memcpy(&u2, scales + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
    const uint32_t mn_lo = u1 & 0x3f3f3f3fu;
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

/* The Q4_K/Q5_K mins term of one super-block, before its float scale: 4 int32 lanes,
 * lane k = mn[2k] * S[2k] + mn[2k+1] * S[2k+1], S[j] = bsums[2j] + bsums[2j+1] the Q8_K
 * sum of sub-block j (|S| <= 4064: no int16 wraps). mn from ks_x86_k_scales_mins()
 * (bytes 8..15), widened to int16. */
static inline __m128i ks_x86_k_mins(__m128i scales_mins, const int16_t *bsums) {
    const __m128i mn = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scales_mins, scales_mins));
    const __m128i sums = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums),
                                        _mm_loadu_si128((const __m128i *)(bsums + 8)));
    return _mm_madd_epi16(mn, sums);
}

/* (d * da, -(dmin * da)) in lanes 0 and 1, for a Q4_K/Q5_K super-block whose fp16 d and
 * dmin lead at dd and its Q8_K activations' scale da: the same float products as ref. */
static inline __m128 ks_x86_k_d_dmin(const ks_fp16 *dd, float da) {
    uint32_t both;
    memcpy(&both, dd, 4);
    const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)both)), _mm_set1_ps(da));
    return _mm_xor_ps(d, _mm_setr_ps(0.0f, -0.0f, 0.0f, 0.0f));
}

/* ---- 32-element blocks -------------------------------------------------------------- *
 *
 * Per block of weight type t against its Q8_0 (or, for the offset types, Q8_1) block:
 *
 *   Q4_0, Q5_0, Q8_0   sumi = sum (q - zero) * a       acc += (dw * da) * sumi
 *   Q4_1, Q5_1         sumi = sum q * a                acc += (dw * da) * sumi + mw * sa
 *
 * The codes become one 32-byte vector: signed (q - zero) for the symmetric types, whose
 * product takes the sign trick (|q| times a with q's sign), unsigned q (<= 31) for the
 * offset types. Floats: one accumulator of 8 lanes, one FMA per block in row order; the
 * offset terms mw * sa added into a scalar in row order; the result hsum(acc) + that
 * scalar. (llama.cpp fuses that add with the product, which changes nothing: a product
 * of two fp16 values has at most 22 significant bits and is exact in float, so the
 * products of 8 blocks are taken at once.) The scales of 8 blocks are converted
 * together; so are their products dw * da, exact for the same reason.
 *
 * ks_x86_dot_blocks() serves one activation row (vec_dot) or several (vec_dot_4): each
 * weight block is decoded once, then met with every row, each with its own float chain.
 * The ISA brings the product of 32 unsigned by 32 signed bytes: maddubs + madd on AVX2,
 * one vpdpbusd with AVX-512 VNNI. 256-bit vectors serve both: these kernels are bound by
 * their one chain of FMAs, and 512-bit ones would only add shuffles (and on Intel cores
 * take a vector port out of service while they run). */

static inline size_t ks_x86_block_bytes(ks_type t) {
    switch (t) {
    case KS_TYPE_Q4_0: return sizeof(ks_block_q4_0);
    case KS_TYPE_Q4_1: return sizeof(ks_block_q4_1);
    case KS_TYPE_Q5_0: return sizeof(ks_block_q5_0);
    case KS_TYPE_Q5_1: return sizeof(ks_block_q5_1);
    default: return sizeof(ks_block_q8_0);
    }
}

/* Q4_1 and Q5_1 decode to d * q + m; their activations are Q8_1, which carry s. */
static inline bool ks_x86_has_offset(ks_type t) {
    return t == KS_TYPE_Q4_1 || t == KS_TYPE_Q5_1;
}

/* The weight side of one block: the unsigned operand and, for the symmetric types, the
 * signed codes whose signs the activations take (q = -128 of a Q8_0 weight gives
 * |q| = 128, fine unsigned). */
typedef struct ks_x86_codes {
    __m256i u, sign;
} ks_x86_codes;

static inline ks_x86_codes ks_x86_decode_block(ks_type t, const void *w, int64_t ib) {
    __m256i q;
    switch (t) {
    case KS_TYPE_Q4_0:
        q = _mm256_sub_epi8(ks_x86_nibbles32(((const ks_block_q4_0 *)w + ib)->qs),
                            _mm256_set1_epi8(8));
        break;
    case KS_TYPE_Q5_0: { /* q - 16 = the nibble, or the nibble - 16 (| 0xf0) if bit 4 is 0 */
        const ks_block_q5_0 *b = (const ks_block_q5_0 *)w + ib;
        const __m256i high =
            _mm256_andnot_si256(ks_x86_bit_bytes(b->qh), _mm256_set1_epi8((char)0xf0));
        q = _mm256_or_si256(ks_x86_nibbles32(b->qs), high);
        break;
    }
    case KS_TYPE_Q4_1:
        return (ks_x86_codes){ks_x86_nibbles32(((const ks_block_q4_1 *)w + ib)->qs),
                              _mm256_setzero_si256()};
    case KS_TYPE_Q5_1: {
        const ks_block_q5_1 *b = (const ks_block_q5_1 *)w + ib;
        const __m256i high = _mm256_and_si256(ks_x86_bit_bytes(b->qh), _mm256_set1_epi8(0x10));
        return (ks_x86_codes){_mm256_or_si256(ks_x86_nibbles32(b->qs), high),
                              _mm256_setzero_si256()};
    }
    default: q = _mm256_loadu_si256((const __m256i *)((const ks_block_q8_0 *)w + ib)->qs); break;
    }
    return (ks_x86_codes){_mm256_sign_epi8(q, q), q};
}

/* An ISA's product of 32 unsigned bytes u by 32 signed bytes s: sums of 4 adjacent
 * products, 8 int32 lanes. Passed as a constant, inlined. */
typedef __m256i (*ks_x86_u8i8_fn)(__m256i u, __m256i s);

/* The share [lo, hi) (bytes) of the rows pf[i], i < nw, that a row loop asks the cache
 * for while it computes the same share of its own rows (kernels.h: the pf of
 * vec_dot_2w): the lines that start in it, so that consecutive shares ask for each line
 * once. pf NULL, or an entry NULL: nothing. Always inlined: GCC takes a function whose
 * only effect is a prefetch for one without effects, and drops the calls. */
static KS_ALWAYS_INLINE void ks_x86_prefetch_share(const void *const *pf, int nw, size_t lo, size_t hi) {
    if (!pf)
        return;
    for (int i = 0; i < nw; i++)
        if (pf[i])
            for (size_t o = (lo + 63) & ~(size_t)63; o < hi; o += 64)
                __builtin_prefetch((const uint8_t *)pf[i] + o, 0, 3);
}

/* Weight rows and activation rows met together by one call: nw weight rows w[i] (nw 1,
 * or 2 for vec_dot_2w) against nt activation rows (row j at a + j * a_stride bytes;
 * nt 1, or KS_VEC_DOT_ROWS for vec_dot_4), nw * nt <= KS_VEC_DOT_ROWS; out[i * nt + j]
 * the dot of weight row i with activation row j; pf as ks_x86_prefetch_share() (NULL
 * for vec_dot). Every pair takes the float steps of a
 * lone vec_dot, so each result equals vec_dot's bit for bit: the rows only share the
 * decoding of the weights (a weight row met by nt activation rows) or run their chains
 * side by side (nw weight rows, whose one chain each would otherwise wait on itself). */
#define KS_X86_MAX_PAIRS KS_VEC_DOT_ROWS

/* 32-element blocks of type t. Every 32-element type starts with its fp16 scale d; the
 * offset types follow it with the fp16 offset m, as Q8_1 follows d with the fp16 sum s. */
static KS_ALWAYS_INLINE void ks_x86_dot_blocks_rows(ks_type t, ks_x86_u8i8_fn dot, const void *const *w, int nw,
                                                    const void *a, size_t a_stride, int64_t n, int nt, float *out,
                                                    const void *const *pf) {
    const int64_t nb = n / KS_QK8_0;
    const bool offset = ks_x86_has_offset(t);
    const size_t wsz = ks_x86_block_bytes(t);
    const size_t asz = offset ? sizeof(ks_block_q8_1) : sizeof(ks_block_q8_0);
    const size_t aqs = offset ? offsetof(ks_block_q8_1, qs) : offsetof(ks_block_q8_0, qs);
    const uint8_t *ab[KS_VEC_DOT_ROWS];
    __m256 acc[KS_X86_MAX_PAIRS];
    float summs[KS_X86_MAX_PAIRS];
    for (int j = 0; j < nt; j++)
        ab[j] = (const uint8_t *)a + (size_t)j * a_stride;
    for (int p = 0; p < nw * nt; p++) {
        acc[p] = _mm256_setzero_ps();
        summs[p] = 0.0f;
    }
    int64_t ib = 0;
    for (; ib + 8 <= nb; ib += 8) {
        ks_x86_prefetch_share(pf, nw, (size_t)ib * wsz, (size_t)(ib + 8) * wsz);
        __m256 d[KS_X86_MAX_PAIRS], ms[KS_X86_MAX_PAIRS];
        for (int i = 0; i < nw; i++) {
            const uint8_t *w8 = (const uint8_t *)w[i] + (size_t)ib * wsz;
            const __m256 dw = ks_x86_fp16x8(w8, wsz);
            const __m256 mw = offset ? ks_x86_fp16x8(w8 + 2, wsz) : _mm256_setzero_ps();
            for (int j = 0; j < nt; j++) {
                const uint8_t *a8 = ab[j] + (size_t)ib * asz;
                d[i * nt + j] = _mm256_mul_ps(dw, ks_x86_fp16x8(a8, asz));
                if (offset)
                    ms[i * nt + j] = _mm256_mul_ps(mw, ks_x86_fp16x8(a8 + 2, asz));
            }
        }
        for (int k = 0; k < 8; k++)
            for (int i = 0; i < nw; i++) {
                const ks_x86_codes c = ks_x86_decode_block(t, w[i], ib + k);
                for (int j = 0; j < nt; j++) {
                    const int p = i * nt + j;
                    __m256i v = _mm256_loadu_si256((const __m256i *)(ab[j] + (size_t)(ib + k) * asz + aqs));
                    if (!offset)
                        v = _mm256_sign_epi8(v, c.sign);
                    acc[p] = _mm256_fmadd_ps(ks_x86_lane(d[p], k), _mm256_cvtepi32_ps(dot(c.u, v)), acc[p]);
                    if (offset)
                        summs[p] += _mm256_cvtss_f32(ks_x86_lane(ms[p], k));
                }
            }
    }
    ks_x86_prefetch_share(pf, nw, (size_t)ib * wsz, (size_t)nb * wsz);
    for (; ib < nb; ib++)
        for (int i = 0; i < nw; i++) {
            const uint8_t *w1 = (const uint8_t *)w[i] + (size_t)ib * wsz;
            const ks_x86_codes c = ks_x86_decode_block(t, w[i], ib);
            ks_fp16 dw, mw;
            memcpy(&dw, w1, 2);
            memcpy(&mw, w1 + 2, 2);
            for (int j = 0; j < nt; j++) {
                const int p = i * nt + j;
                const uint8_t *a1 = ab[j] + (size_t)ib * asz;
                ks_fp16 da, sa;
                memcpy(&da, a1, 2);
                memcpy(&sa, a1 + 2, 2);
                __m256i v = _mm256_loadu_si256((const __m256i *)(a1 + aqs));
                if (!offset)
                    v = _mm256_sign_epi8(v, c.sign);
                const __m256 dd = _mm256_set1_ps(ks_x86_fp16(dw) * ks_x86_fp16(da));
                acc[p] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(dot(c.u, v)), acc[p]);
                if (offset)
                    summs[p] += ks_x86_fp16(mw) * ks_x86_fp16(sa);
            }
        }
    for (int p = 0; p < nw * nt; p++)
        out[p] = ks_x86_hsum_ps(acc[p]) + summs[p];
}

/* One weight row against nt activation rows: out[j] (vec_dot, vec_dot_4); pf the row
 * to ask for as it goes (NULL: none). */
static inline void ks_x86_dot_blocks(ks_type t, ks_x86_u8i8_fn dot, const void *w, const void *a,
                                     size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    ks_x86_dot_blocks_rows(t, dot, &w, 1, a, a_stride, n, nt, out, pf ? &pf : NULL);
}

/* ---- the K-quant super-blocks ------------------------------------------------------ *
 *
 * Per super-block of 256 (the scheme of vec_dot_ref.c, lanes regrouped):
 *
 *   sumi  = sum_e scale(e) * q[e] * a[e]          8 int32 lanes, exact
 *   acc  += (d * da) * sumi                       8 float lanes
 *   Q4_K: mins = sum_j mn[j] * S[j]               4 int32 lanes (ks_x86_k_mins)
 *         acc_m += -(dmin * da) * mins            4 float lanes
 *         result: hsum(acc) + hsum(acc_m)
 *   Q5_K: summs += -(dmin * da) * (float)mins     one exact integer, one scalar FMA
 *         result: hsum(acc) + summs
 *   Q6_K: as Q4_K without the mins (its offset 32 is folded into sumi)
 *
 * Products of 32 codes: _mm256_maddubs_epi16 (code pairs into int16), then the ISA's
 * step multiplies the pairs by the sub-block's scale into int32 lanes. */

/* An ISA's acc + (int16 pairs p times int16 scales s, each pair summed into an int32):
 * madd + add on AVX2, vpdpwssd with AVX-512 VNNI. Passed as a constant, inlined. */
typedef __m256i (*ks_x86_madd_acc_fn)(__m256i acc, __m256i p, __m256i s);

/* The int16 broadcast of scale j (0..7) from 8 int16 scales held in both 128-bit lanes. */
static inline __m256i ks_x86_scale_of(__m256i scales16, int j) {
    return _mm256_shuffle_epi8(scales16, _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j)));
}

/* One Q4_K (qh NULL) or Q5_K super-block against nt activation blocks y[j]: sumi[j]
 * and mins[j] of the scheme above, the weight codes decoded once. Bounds: q <= 31, |a| <= 127,
 * sc <= 63: an int16 pair <= 7874, |sumi| <= 256 * 31 * 127 * 63 < 2^26. */
static inline void ks_x86_q45_k_sums(ks_x86_madd_acc_fn madd_acc, const uint8_t *scales,
                                     const uint8_t *qh, const uint8_t *qs,
                                     const ks_block_q8_k *const *y, int nt, __m256i *sumi,
                                     __m128i *mins) {
    const __m128i scmn = ks_x86_k_scales_mins(scales);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(scmn));
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int j = 0; j < nt; j++)
        sumi[j] = _mm256_setzero_si256();
    for (int g = 0; g < KS_QK_K / 64; g++) { /* sub-blocks 2g (low nibbles), 2g+1 (high) */
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
        __m256i lo = _mm256_and_si256(q, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if (qh) { /* bit 2g of qh[l] is bit 4 of lo[l], bit 2g+1 that of hi[l] */
            const __m256i one = _mm256_set1_epi8(1);
            lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one), 4));
            hi = _mm256_or_si256(
                hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), one), 4));
            hbits = _mm256_srli_epi16(hbits, 2);
        }
        const __m256i slo = ks_x86_scale_of(sc16, 2 * g), shi = ks_x86_scale_of(sc16, 2 * g + 1);
        for (int j = 0; j < nt; j++) {
            const int8_t *a = y[j]->qs + 64 * g;
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
            const __m256i phi =
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
            sumi[j] = madd_acc(sumi[j], plo, slo);
            sumi[j] = madd_acc(sumi[j], phi, shi);
        }
    }
    for (int j = 0; j < nt; j++)
        mins[j] = ks_x86_k_mins(scmn, y[j]->bsums);
}

/* Q6_K (layout at ks_block_q6_k): codes q in 0..63 stand for q - 32, so
 *   sumi = sum_e sc(e) q[e] a[e] - 32 * sum_k sc[k] bsums[k]
 * where the second sum is one madd of Q8_K's per-16 sums with the 16 scales. Chunk c
 * (0..7) of 32 elements spans sub-blocks 2c and 2c+1, whose int8 scales are the two
 * int16 halves of dword c of the widened scales. Bounds: an int16 pair <= 2*63*127 =
 * 16002; |sumi| <= 256 * 63 * 127 * 128 < 2^29. nt activation rows as ks_x86_dot_blocks(). */
/* One Q6_K super-block against nt activation blocks y[j]: sumi[j] of the scheme above,
 * the weight codes decoded once. */
static inline void ks_x86_q6_k_sums(ks_x86_madd_acc_fn madd_acc, const ks_block_q6_k *x,
                                    const ks_block_q8_k *const *y, int nt, __m256i *sumi) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    /* dword c broadcast, then its low int16 to the low 128-bit lane, high to the high */
    const __m256i halves = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, /* lo */
                                            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    for (int j = 0; j < nt; j++) {
        const __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[j]->bsums), sc16);
        sumi[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
    }
    for (int h = 0; h < 2; h++) { /* halves of 128 elements */
        const uint8_t *ql = x->ql + 64 * h;
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)ql);
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
        q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
        for (int k = 0; k < 4; k++) {
            const int c = 4 * h + k;
            const __m256i sc = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(c)), halves);
            for (int j = 0; j < nt; j++) {
                const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(y[j]->qs + 32 * c)));
                sumi[j] = madd_acc(sumi[j], p, sc);
            }
        }
    }
}

/* Q6_K rows (nw x nt as ks_x86_dot_blocks_rows()), per pair: acc += (d * da) * sumi (8
 * lanes); out = hsum(acc). */
static KS_ALWAYS_INLINE void ks_x86_dot_q6_k_rows(ks_x86_madd_acc_fn madd_acc, const void *const *w, int nw,
                                                  const void *a, size_t a_stride, int64_t n, int nt, float *out,
                                                  const void *const *pf) {
    __m256 acc[KS_X86_MAX_PAIRS];
    for (int p = 0; p < nw * nt; p++)
        acc[p] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_q8_k *y[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            y[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
        ks_x86_prefetch_share(pf, nw, (size_t)ib * sizeof(ks_block_q6_k), (size_t)(ib + 1) * sizeof(ks_block_q6_k));
        for (int i = 0; i < nw; i++) {
            const ks_block_q6_k *x = (const ks_block_q6_k *)w[i] + ib;
            __m256i sumi[KS_VEC_DOT_ROWS];
            ks_x86_q6_k_sums(madd_acc, x, y, nt, sumi);
            for (int j = 0; j < nt; j++) {
                const float d = ks_x86_fp16(x->d) * y[j]->d;
                acc[i * nt + j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[i * nt + j]);
            }
        }
    }
    for (int p = 0; p < nw * nt; p++)
        out[p] = ks_x86_hsum_ps(acc[p]);
}

static inline void ks_x86_dot_q6_k(ks_x86_madd_acc_fn madd_acc, const void *w, const void *a,
                                   size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    ks_x86_dot_q6_k_rows(madd_acc, &w, 1, a, a_stride, n, nt, out, pf ? &pf : NULL);
}

/* ---- the K-quant row loops ---------------------------------------------------------- */

/* An ISA's integer work on one Q4_K (qh NULL) or Q5_K super-block against nt activation
 * blocks y[j]: the 8 int32 lanes of code sums and the 4 lanes of the mins term
 * (ks_x86_k_mins) for each. The row loops below take it as a constant argument, which
 * the compiler inlines. */
typedef void (*ks_x86_k_sums_fn)(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                                 const ks_block_q8_k *const *y, int nt, __m256i *sumi,
                                 __m128i *mins);

/* Q4_K (t) or Q5_K rows (nw x nt as ks_x86_dot_blocks_rows()), per pair: acc += d' * sumi
 * (8 lanes); Q4_K: acc_m += -dmin' * mins (4 lanes), out = hsum(acc) + hsum(acc_m);
 * Q5_K: the mins term summed to one exact integer, into the scalar lane 0 of acc_m with
 * one FMA per super-block, out = hsum(acc) + that scalar. */
static KS_ALWAYS_INLINE void ks_x86_dot_q45_k_rows(ks_type t, ks_x86_k_sums_fn sums, const void *const *w, int nw,
                                                   const void *a, size_t a_stride, int64_t n, int nt, float *out,
                                                   const void *const *pf) {
    const bool q5 = t == KS_TYPE_Q5_K;
    const size_t wsz = q5 ? sizeof(ks_block_q5_k) : sizeof(ks_block_q4_k);
    __m256 acc[KS_X86_MAX_PAIRS];
    __m128 acc_m[KS_X86_MAX_PAIRS];
    for (int p = 0; p < nw * nt; p++) {
        acc[p] = _mm256_setzero_ps();
        acc_m[p] = _mm_setzero_ps();
    }
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const ks_block_q8_k *y[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++)
            y[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride) + ib;
        ks_x86_prefetch_share(pf, nw, (size_t)ib * wsz, (size_t)(ib + 1) * wsz);
        for (int i = 0; i < nw; i++) {
            __m256i sumi[KS_VEC_DOT_ROWS];
            __m128i mins[KS_VEC_DOT_ROWS];
            const ks_fp16 *dd;
            if (q5) {
                const ks_block_q5_k *x = (const ks_block_q5_k *)w[i] + ib;
                sums(x->scales, x->qh, x->qs, y, nt, sumi, mins);
                dd = &x->d;
            } else {
                const ks_block_q4_k *x = (const ks_block_q4_k *)w[i] + ib;
                sums(x->scales, NULL, x->qs, y, nt, sumi, mins);
                dd = &x->d;
            }
            for (int j = 0; j < nt; j++) {
                const int p = i * nt + j;
                const __m128 d = ks_x86_k_d_dmin(dd, y[j]->d);
                acc[p] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[p]);
                if (q5) {
                    __m128i m = _mm_add_epi32(mins[j], _mm_unpackhi_epi64(mins[j], mins[j]));
                    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
                    acc_m[p] = _mm_fmadd_ss(_mm_movehdup_ps(d), _mm_cvtepi32_ps(m), acc_m[p]);
                } else {
                    acc_m[p] = _mm_fmadd_ps(_mm_shuffle_ps(d, d, _MM_SHUFFLE(1, 1, 1, 1)), _mm_cvtepi32_ps(mins[j]),
                                            acc_m[p]);
                }
            }
        }
    }
    for (int p = 0; p < nw * nt; p++)
        out[p] = ks_x86_hsum_ps(acc[p]) + (q5 ? _mm_cvtss_f32(acc_m[p]) : ks_x86_hsum_ps128(acc_m[p]));
}

/* One weight row against nt activation rows: out[j] (vec_dot, vec_dot_4); pf the row
 * to ask for as it goes (NULL: none). */
static inline void ks_x86_dot_q4_k(ks_x86_k_sums_fn sums, const void *w, const void *a,
                                   size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    ks_x86_dot_q45_k_rows(KS_TYPE_Q4_K, sums, &w, 1, a, a_stride, n, nt, out, pf ? &pf : NULL);
}

static inline void ks_x86_dot_q5_k(ks_x86_k_sums_fn sums, const void *w, const void *a,
                                   size_t a_stride, int64_t n, int nt, float *out, const void *pf) {
    ks_x86_dot_q45_k_rows(KS_TYPE_Q5_K, sums, &w, 1, a, a_stride, n, nt, out, pf ? &pf : NULL);
}

/* ---- vec_dot_2w wrappers ------------------------------------------------------------ */

/* The kernel-table form (kernels.h: ks_vec_dot_2w_fn) of a row loop above with two weight
 * rows and one or two activation rows, each count its own specialized call: loop is one of
 * the row loops, the arguments before its weight rows (the type and an ISA's dot step:
 * ks_x86_u8i8_fn, ks_x86_k_sums_fn or ks_x86_madd_acc_fn) follow it. */
#define KS_X86_VEC_DOT_2W(name, loop, ...)                                                          \
    static void name(const void *w0, const void *w1, const void *a, size_t a_stride, int nt,       \
                     int64_t n, float *s, const void *const pf[2]) {                                \
        const void *const w[2] = {w0, w1};                                                          \
        if (nt == 2)                                                                                \
            loop(__VA_ARGS__, w, 2, a, a_stride, n, 2, s, pf);                                      \
        else                                                                                        \
            loop(__VA_ARGS__, w, 2, a, 0, n, 1, s, pf);                                             \
    }
#define KS_X86_VEC_DOT_2W_BLOCKS(name, type, dot) KS_X86_VEC_DOT_2W(name, ks_x86_dot_blocks_rows, type, dot)
#define KS_X86_VEC_DOT_2W_K45(name, type, sums) KS_X86_VEC_DOT_2W(name, ks_x86_dot_q45_k_rows, type, sums)
#define KS_X86_VEC_DOT_2W_Q6_K(name, madd) KS_X86_VEC_DOT_2W(name, ks_x86_dot_q6_k_rows, madd)

/* Registers an ISA file's two-row kernels, named vec_dot_2w_<weight>_<activation>_<isa>. */
#define KS_X86_REGISTER_VEC_DOT_2W(k, isa)                                                          \
    do {                                                                                            \
        (k)->vec_dot_2w[KS_TYPE_Q4_0] = vec_dot_2w_q4_0_q8_0_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q4_1] = vec_dot_2w_q4_1_q8_1_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q5_0] = vec_dot_2w_q5_0_q8_0_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q5_1] = vec_dot_2w_q5_1_q8_1_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q8_0] = vec_dot_2w_q8_0_q8_0_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q4_K] = vec_dot_2w_q4_k_q8_k_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q5_K] = vec_dot_2w_q5_k_q8_k_##isa;                                 \
        (k)->vec_dot_2w[KS_TYPE_Q6_K] = vec_dot_2w_q6_k_q8_k_##isa;                                 \
    } while (0)

#endif
