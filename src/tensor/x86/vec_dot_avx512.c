/* vec_dot_avx512.c — AVX-512 dot products of one weight row with one activation row, for
 * every weight type kvserve computes with: F, BW, VL, DQ, VNNI (vpdpbusd, vpdpwssd) and
 * BF16 (vdpbf16ps). The contract is ks_vec_dot_fn's (kernels.h); the scalar kernels in
 * ref/vec_dot_ref.c are the specification.
 *
 * Owns: vec_dot_<weight>_<activation>_avx512 and ks_vec_dot_avx512_register().
 * Does not own: the activation quantizers (quants_avx2.c serves this table too).
 *
 * 512-bit vectors where they pay; the float steps follow llama.cpp's Zen 4 build
 * (simd_x86.h, "Float order"), so the results equal its bit for bit:
 *   - F32, F16: four accumulators of 16 lanes, row tails one element at a time;
 *   - BF16: vdpbf16ps multiplies pairs of bf16 exactly and adds them into float lanes.
 *     It reads bf16 subnormals as zero and flushes subnormal results, which only
 *     values below 2^-126 (1.2e-38) could notice: no trained weight or activation;
 *   - 32-element blocks: the AVX2 kernels (simd_x86.h) with vpdpbusd on 256-bit vectors
 *     (unsigned x signed bytes, four products into one int32, no saturation);
 *   - K-quants: two 32-element runs per vector, code pairs with vpmaddubsw (no
 *     saturation: see simd_x86.h), sub-block scales with vpdpwssd; the 16 int32 lanes
 *     fold exactly into the AVX2 kernels' 8 before the float steps.
 *
 * Divisions: float types; 32-element blocks; K-quants; registration. */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* Two 256-bit halves as one vector. */
static inline __m512i join256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

static inline __m256i load256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Int32 lanes 0..7 = a, 8..15 = b. */
static inline __m512i split_idx(int a, int b) {
    return join256(_mm256_set1_epi32(a), _mm256_set1_epi32(b));
}

/* ---- float types -------------------------------------------------------------------- */

/* Sum of the 16 lanes in the order of GCC's _mm512_reduce_add_ps, which llama.cpp's
 * build used (spelled out: other compilers reduce in other orders): halves of 256, of
 * 128, then (s0 + s2) + (s1 + s3). */
static inline float hsum512(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
    const __m128 q = _mm_add_ps(_mm256_extractf128_ps(h, 1), _mm256_castps256_ps128(h));
    const __m128 p = _mm_add_ps(q, _mm_shuffle_ps(q, q, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(p) + _mm_cvtss_f32(_mm_movehdup_ps(p));
}

/* 16 elements of an F32 or F16 row from element i. */
static inline __m512 load16(ks_type t, const void *p, int64_t i) {
    if (t == KS_TYPE_F16)
        return _mm512_cvtph_ps(load256((const ks_fp16 *)p + i));
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
        hsum512(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
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

/* 32 bf16 from element i as vdpbf16ps's operand. */
static inline __m512bh load32_bf16(const ks_bf16 *p, int64_t i) {
    return (__m512bh)_mm512_loadu_si512(p + i);
}

/* Two accumulators over the first n - n % 64 elements, each summed across its lanes and
 * the two added in double; the tail one element at a time in double. */
static float vec_dot_bf16_bf16_avx512(const void *w, const void *a, int64_t n) {
    const ks_bf16 *x = w, *y = a;
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
    const int64_t np = n - n % 64;
    for (int64_t i = 0; i < np; i += 64) {
        c0 = _mm512_dpbf16_ps(c0, load32_bf16(x, i), load32_bf16(y, i));
        c1 = _mm512_dpbf16_ps(c1, load32_bf16(x, i + 32), load32_bf16(y, i + 32));
    }
    double sum = (double)hsum512(c0) + (double)hsum512(c1);
    for (int64_t i = np; i < n; i++)
        sum += (double)(ks_bf16_to_fp32(x[i]) * ks_bf16_to_fp32(y[i]));
    return (float)sum;
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
    ks_x86_dot_blocks(KS_TYPE_Q4_0, dot_u8i8_vnni, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q4_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_blocks(KS_TYPE_Q4_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

static float vec_dot_q4_1_q8_1_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q4_1, dot_u8i8_vnni, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q4_1_q8_1_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_blocks(KS_TYPE_Q4_1, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

static float vec_dot_q5_0_q8_0_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_0, dot_u8i8_vnni, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q5_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_blocks(KS_TYPE_Q5_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

static float vec_dot_q5_1_q8_1_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q5_1, dot_u8i8_vnni, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q5_1_q8_1_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_blocks(KS_TYPE_Q5_1, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

static float vec_dot_q8_0_q8_0_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_blocks(KS_TYPE_Q8_0, dot_u8i8_vnni, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q8_0_q8_0_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_blocks(KS_TYPE_Q8_0, dot_u8i8_vnni, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

/* ---- K-quants ----------------------------------------------------------------------- *
 *
 * The per-super-block scheme of vec_dot_avx2.c with 16 int32 lanes: code pairs times
 * activation pairs with vpmaddubsw, then vpdpwssd multiplies each int16 pair sum by the
 * scale of its sub-block and adds it into the int32 sums. The scales are laid out for
 * vpdpwssd once per super-block: one per dword, as the same int16 twice, then
 * permuted to the sub-blocks a vector holds. */

/* Each dword's low int16 also in its high half (v's dwords hold values in -2^15..2^15). */
static inline __m512i int16_twice(__m512i v) {
    return _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xffff)),
                           _mm512_slli_epi32(v, 16));
}

/* The 16 int32 lanes folded into 8: lane l + lane l + 8 (exact). */
static inline __m256i fold256(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* One Q4_K (qh NULL) or Q5_K super-block against nt activation blocks y[j]: the int32
 * code sums (8 lanes, as the AVX2 kernel's) and the mins term, the weight codes decoded
 * once. 64 bytes of qs hold sub-blocks 4h, 4h+1 (low, high nibbles of the first 32) and
 * 4h+2, 4h+3 (of the next 32): the low nibbles pair with activations 128h + [0, 32) and
 * [64, 96), the high ones with [32, 64) and [96, 128). Bit j of qh[l] is bit 4 of
 * element l of sub-block j. Bounds as vec_dot_avx2.c. */
static inline void q45_k_sums(const uint8_t *scales, const uint8_t *qh, const uint8_t *qs,
                              const ks_block_q8_k *const *y, int nt, __m256i *sumi, __m128i *mins) {
    const __m128i scmn = ks_x86_k_scales_mins(scales);
    const __m512i sc = int16_twice(_mm512_cvtepu8_epi32(scmn)); /* dwords 0..7: sc[j] */
    const __m512i hb = qh ? _mm512_broadcast_i64x4(load256(qh)) : _mm512_setzero_si512();
    const __m512i low4 = _mm512_set1_epi8(0x0f), sixteen = _mm512_set1_epi8(16);
    __m512i acc[KS_VEC_DOT_ROWS];
    for (int r = 0; r < nt; r++)
        acc[r] = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
        const int j = 4 * h; /* first sub-block */
        const __m512i q = _mm512_loadu_si512(qs + 64 * h);
        __m512i lo = _mm512_and_si512(q, low4);                       /* j, j + 2 */
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4); /* j + 1, j + 3 */
        if (qh) {
            const __m512i bit_lo =
                join256(_mm256_set1_epi8((char)(1 << j)), _mm256_set1_epi8((char)(4 << j)));
            const __m512i bit_hi =
                join256(_mm256_set1_epi8((char)(2 << j)), _mm256_set1_epi8((char)(8 << j)));
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(hb, bit_lo), lo, sixteen);
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(hb, bit_hi), hi, sixteen);
        }
        const __m512i slo = _mm512_permutexvar_epi32(split_idx(j, j + 2), sc);
        const __m512i shi = _mm512_permutexvar_epi32(split_idx(j + 1, j + 3), sc);
        for (int r = 0; r < nt; r++) {
            const int8_t *a = y[r]->qs + 128 * h;
            const __m512i alo = join256(load256(a), load256(a + 64));
            const __m512i ahi = join256(load256(a + 32), load256(a + 96));
            acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(lo, alo), slo);
            acc[r] = _mm512_dpwssd_epi32(acc[r], _mm512_maddubs_epi16(hi, ahi), shi);
        }
    }
    for (int r = 0; r < nt; r++) {
        sumi[r] = fold256(acc[r]);
        mins[r] = ks_x86_k_mins(scmn, y[r]->bsums);
    }
}

static float vec_dot_q4_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q4_k(q45_k_sums, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q4_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_q4_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

static float vec_dot_q5_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    ks_x86_dot_q5_k(q45_k_sums, w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q5_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    ks_x86_dot_q5_k(q45_k_sums, w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

/* Q6_K: sumi = sum_e sc(e) q[e] a[e] - 32 * sum_k sc[k] bsums[k], as vec_dot_avx2.c.
 * Half h (128 elements): its 64 ql bytes in one vector give elements [0, 64) from the
 * low nibbles and [64, 128) from the high ones, each run of 64 contiguous in the
 * activations; the 32 qh bytes, in both vector halves, give their bits 5:4 from bit
 * pairs (0, 2) and (4, 6), shifted per half by vpsllvw / vpsrlvw. Each vector spans 4
 * sub-blocks of 16, scales sc[8h + 4r .. 8h + 4r + 3] for run r. nt activation rows as
 * dot_blocks(). */
static inline void dot_q6_k(const void *w, const void *a, size_t a_stride, int64_t n, int nt,
                            float *out) {
    const ks_block_q6_k *x = w;
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
    const __m512i shl_01 = join256(_mm256_set1_epi16(4), _mm256_set1_epi16(2)); /* q0 | q1 */
    const __m512i shr_23 = join256(_mm256_set1_epi16(0), _mm256_set1_epi16(2)); /* q2 | q3 */
    const __m512i quarters = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const ks_block_q8_k *rows[KS_VEC_DOT_ROWS];
    __m256 acc[KS_VEC_DOT_ROWS];
    for (int j = 0; j < nt; j++) {
        rows[j] = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)j * a_stride);
        acc[j] = _mm256_setzero_ps();
    }
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[ib].scales);
        const __m512i sc = int16_twice(_mm512_cvtepi8_epi32(sc8)); /* dwords 0..15: sc[k] */
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512i sumi[KS_VEC_DOT_ROWS];
        for (int j = 0; j < nt; j++) {
            const __m256i corr = _mm256_madd_epi16(load256(rows[j][ib].bsums), sc16);
            sumi[j] = _mm512_zextsi256_si512(
                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)));
        }
        for (int h = 0; h < 2; h++) {
            const __m512i ql = _mm512_loadu_si512(x[ib].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(load256(x[ib].qh + 32 * h));
            const __m512i q01 =
                _mm512_or_si512(_mm512_and_si512(ql, low4),
                                _mm512_and_si512(_mm512_sllv_epi16(qh, shl_01), bits45));
            const __m512i q23 =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                _mm512_and_si512(_mm512_srlv_epi16(qh, shr_23), bits45));
            const __m512i sc01 =
                _mm512_permutexvar_epi32(_mm512_add_epi32(quarters, _mm512_set1_epi32(8 * h)), sc);
            const __m512i sc23 = _mm512_permutexvar_epi32(
                _mm512_add_epi32(quarters, _mm512_set1_epi32(8 * h + 4)), sc);
            for (int j = 0; j < nt; j++) {
                const int8_t *ya = rows[j][ib].qs + 128 * h;
                sumi[j] = _mm512_dpwssd_epi32(
                    sumi[j], _mm512_maddubs_epi16(q01, _mm512_loadu_si512(ya)), sc01);
                sumi[j] = _mm512_dpwssd_epi32(
                    sumi[j], _mm512_maddubs_epi16(q23, _mm512_loadu_si512(ya + 64)), sc23);
            }
        }
        for (int j = 0; j < nt; j++) {
            const float d = ks_x86_fp16(x[ib].d) * rows[j][ib].d;
            acc[j] =
                _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold256(sumi[j])), acc[j]);
        }
    }
    for (int j = 0; j < nt; j++)
        out[j] = ks_x86_hsum_ps(acc[j]);
}

static float vec_dot_q6_k_q8_k_avx512(const void *w, const void *a, int64_t n) {
    float s;
    dot_q6_k(w, a, 0, n, 1, &s);
    return s;
}

static void vec_dot_4_q6_k_q8_k_avx512(const void *w, const void *a, size_t a_stride, int64_t n,
                                       float *s) {
    dot_q6_k(w, a, a_stride, n, KS_VEC_DOT_ROWS, s);
}

/* ---- registration ------------------------------------------------------------------- */

void ks_vec_dot_avx512_register(ks_kernels *k) {
    k->vec_dot[KS_TYPE_F32] = vec_dot_f32_f32_avx512;
    k->vec_dot[KS_TYPE_F16] = vec_dot_f16_f16_avx512;
    k->vec_dot[KS_TYPE_BF16] = vec_dot_bf16_bf16_avx512;
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
    k->vec_dot_4[KS_TYPE_Q4_K] = vec_dot_4_q4_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q5_K] = vec_dot_4_q5_k_q8_k_avx512;
    k->vec_dot_4[KS_TYPE_Q6_K] = vec_dot_4_q6_k_q8_k_avx512;
}
