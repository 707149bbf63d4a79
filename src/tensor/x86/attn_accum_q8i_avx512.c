/* attn_accum_q8i_avx512.c — attention's value sums over Q8_0 V rows in integer products
 * on AVX-512 VNNI (kernels.h: attn_accum_q8i).
 *
 * Owns: the weights' rounding to int16, the sums' tiles and their order,
 * ks_attn_accum_q8i_avx512_register().
 *
 * Per group of 32 keys and block b (32 elements) of the rows, each query row r:
 *
 *   w_j = p_rj d_jb                 its weights times the keys' scales (floats)
 *   W = max_j |w_j|, q_j = round(32767 w_j / W)      int16, saturating
 *   X = sum over key pairs of dpwssd(codes of keys j, j+1 interleaved, q_j q_{j+1})
 *                                   16 int32 lanes per 16 elements: exact sums
 *   acc += float(X) (W / 32767)     one FMA per 16 elements
 *
 * A weight is off by at most W / 65534 (half a step of 15 bits below the group's
 * largest), far below what the codes' own rounding (a 255th of a block's range) moves
 * the values. Where the float kernel (attn_accum[KS_TYPE_Q8_0]) widens every code to a
 * float, multiplies it by its d and takes one FMA per row and 16 elements (10 vector
 * float operations per key and 16 elements for 8 rows), a pair of keys is here two byte
 * interleaves, two widenings and one vpdpwssd per row, which does 32 products: one
 * thread, in L1, 32 keys x 128: 8 rows 47 -> 60 GMAC/s, 2 rows 26 -> 43. The codes'
 * interleave puts elements 0-7 and 16-23 of a block in one accumulator, 8-15 and 24-31
 * in the other; two 128-bit shuffles put them back in order.
 *
 * Each row's steps depend on its own weights only, so a row sums the same in any tile,
 * and keys it does not see (weight 0) move nothing: a prefill group's rows sum as they do
 * alone in decode. */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/vnni_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define GROUP 32                                  /* keys per group */
#define MAX_BLOCKS (KS_ATTN_TILE_DIM / KS_QK8_0) /* blocks of a row */
#define TILE_ROWS 8

/* The weights of a row tile for one group, rounded: q[r][b][j], scale[r][b] = W / 32767. */
typedef struct weights {
    _Alignas(64) int16_t q[TILE_ROWS][MAX_BLOCKS][GROUP];
    float scale[TILE_ROWS][MAX_BLOCKS];
} weights;

/* d of block b of keys [16h, 16h + 16) of a group (keys past gn: 0), rows ldb bytes
 * apart from v. */
static KS_ALWAYS_INLINE __m512 group_d(const char *v, int64_t ldb, int gn, int b, int h) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int left = gn - 16 * h;
    const __mmask16 m = (__mmask16)(left >= 16 ? 0xffffu : left <= 0 ? 0u : (1u << left) - 1);
    /* 4 bytes at each block's start: its d and first two codes, inside the row */
    const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m,
                                                    _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)ldb)),
                                                    v + 16 * h * ldb + b * (int64_t)sizeof(ks_block_q8_0), 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
}

/* Rounds the weights of nr rows (p rows ld_p apart, keys past gn: 0) for nb blocks. */
static KS_ALWAYS_INLINE void round_weights(int nr, int nb, const float *p, int64_t ld_p, int gn,
                                           const __m512 d[MAX_BLOCKS][2], weights *w) {
    const __mmask16 m0 = (__mmask16)(gn >= 16 ? 0xffffu : (1u << gn) - 1);
    const __mmask16 m1 = (__mmask16)(gn >= 32 ? 0xffffu : gn <= 16 ? 0u : (1u << (gn - 16)) - 1);
    for (int r = 0; r < nr; r++) {
        const __m512 p0 = _mm512_maskz_loadu_ps(m0, p + r * ld_p), p1 = _mm512_maskz_loadu_ps(m1, p + r * ld_p + 16);
        for (int b = 0; b < nb; b++) {
            const __m512 w0 = _mm512_mul_ps(p0, d[b][0]), w1 = _mm512_mul_ps(p1, d[b][1]);
            const float wmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(w0), _mm512_abs_ps(w1)));
            const __m512 inv = _mm512_set1_ps(wmax > 0.0f ? 32767.0f / wmax : 0.0f);
            _mm256_store_si256((__m256i *)w->q[r][b], _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(w0, inv))));
            _mm256_store_si256((__m256i *)(w->q[r][b] + 16),
                               _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(w1, inv))));
            w->scale[r][b] = wmax / 32767.0f;
        }
    }
}

/* The 32 codes of the Q8_0 block at x. */
static inline __m256i block_codes(const char *x) {
    return _mm256_loadu_si256((const __m256i *)((const ks_block_q8_0 *)x)->qs);
}

/* a[r] += the products of keys j and j + 1 (x and y: their codes of block b) with their
 * rounded weights, for rows [0, nr). */
static KS_ALWAYS_INLINE void key_pair(int nr, int b, __m512i a[TILE_ROWS][2], __m256i x, __m256i y, int j,
                                      const weights *w) {
    const __m512i lo = _mm512_cvtepi8_epi16(_mm256_unpacklo_epi8(x, y)); /* elements 0-7, 16-23 */
    const __m512i hi = _mm512_cvtepi8_epi16(_mm256_unpackhi_epi8(x, y)); /* 8-15, 24-31 */
#pragma GCC unroll 8
    for (int r = 0; r < nr; r++) {
        int32_t q2;
        memcpy(&q2, &w->q[r][b][j], sizeof q2);
        const __m512i qb = _mm512_set1_epi32(q2);
        a[r][0] = ks_dpwssd512(a[r][0], lo, qb);
        a[r][1] = ks_dpwssd512(a[r][1], hi, qb);
    }
}

/* acc rows [0, nr) (ld_acc apart), elements of block b, += the group's gn keys (rows
 * ldb bytes apart from v) under the rounded weights; pf: rows to ask the cache for. */
static KS_ALWAYS_INLINE void tile(int nr, int b, float *acc, int64_t ld_acc, const char *v, int64_t ldb, int gn,
                                  const weights *w, const char *pf) {
    __m512i a[TILE_ROWS][2];
    for (int r = 0; r < nr; r++)
        a[r][0] = a[r][1] = _mm512_setzero_si512();
    const int64_t off = b * (int64_t)sizeof(ks_block_q8_0);
    /* whole pairs in a plain loop, then an odd last key: breaking out of a fully unrolled
     * loop had GCC spill the accumulators to the stack. Integer sums: the same bits however
     * the loop runs. */
    int j = 0;
    for (; j + 2 <= gn; j += 2) {
        if (pf) {
            kv_prefetch_lines(pf + j * ldb, off, off + (int64_t)sizeof(ks_block_q8_0));
            kv_prefetch_lines(pf + (j + 1) * ldb, off, off + (int64_t)sizeof(ks_block_q8_0));
        }
        key_pair(nr, b, a, block_codes(v + j * ldb + off), block_codes(v + (j + 1) * ldb + off), j, w);
    }
    if (j < gn) {
        if (pf)
            kv_prefetch_lines(pf + j * ldb, off, off + (int64_t)sizeof(ks_block_q8_0));
        key_pair(nr, b, a, block_codes(v + j * ldb + off), _mm256_setzero_si256(), j, w);
    }
#pragma GCC unroll 8
    for (int r = 0; r < nr; r++) {
        const __m512 s = _mm512_set1_ps(w->scale[r][b]);
        float *o = acc + r * ld_acc + b * KS_QK8_0;
        const __m512i e0 = _mm512_shuffle_i64x2(a[r][0], a[r][1], _MM_SHUFFLE(1, 0, 1, 0)); /* 0-15 */
        const __m512i e1 = _mm512_shuffle_i64x2(a[r][0], a[r][1], _MM_SHUFFLE(3, 2, 3, 2)); /* 16-31 */
        _mm512_storeu_ps(o, _mm512_fmadd_ps(_mm512_cvtepi32_ps(e0), s, _mm512_loadu_ps(o)));
        _mm512_storeu_ps(o + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(e1), s, _mm512_loadu_ps(o + 16)));
    }
}

/* A row tile of nr rows (a constant where inlined) over one group. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nb, float *acc, int64_t ld_acc, const float *p, int64_t ld_p,
                                       const char *v, int64_t ldb, int gn, const __m512 d[MAX_BLOCKS][2],
                                       weights *w, const char *pf) {
    round_weights(nr, nb, p, ld_p, gn, d, w);
    for (int b = 0; b < nb; b++)
        tile(nr, b, acc, ld_acc, v, ldb, gn, w, pf);
}

static KS_ALWAYS_INLINE void accum(int nb, float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                                   const void *v, int64_t ld_v, int nk, const void *pf) {
    const int64_t ldb = kv_off(KV_Q8, ld_v);
    weights w;
    for (int g = 0; g < nk; g += GROUP) {
        const int gn = KS_MIN(GROUP, nk - g);
        const char *vg = (const char *)v + g * ldb, *pfg = pf ? (const char *)pf + g * ldb : NULL;
        __m512 d[MAX_BLOCKS][2];
        for (int b = 0; b < nb; b++) {
            d[b][0] = group_d(vg, ldb, gn, b, 0);
            d[b][1] = group_d(vg, ldb, gn, b, 1);
        }
        /* tiles of 8 rows, then 4, 2, 1; pf's rows asked for by the first one's pass */
        for (int r0 = 0, nr; r0 < nq; r0 += nr) {
            nr = nq - r0 >= 8 ? 8 : nq - r0 >= 4 ? 4 : nq - r0 >= 2 ? 2 : 1;
            float *ar = acc + r0 * ld_acc;
            const float *pr = p + r0 * ld_p + g;
            const char *f = r0 == 0 ? pfg : NULL;
            if (nr == 8)
                tile_rows(8, nb, ar, ld_acc, pr, ld_p, vg, ldb, gn, d, &w, f);
            else if (nr == 4)
                tile_rows(4, nb, ar, ld_acc, pr, ld_p, vg, ldb, gn, d, &w, f);
            else if (nr == 2)
                tile_rows(2, nb, ar, ld_acc, pr, ld_p, vg, ldb, gn, d, &w, f);
            else
                tile_rows(1, nb, ar, ld_acc, pr, ld_p, vg, ldb, gn, d, &w, f);
        }
    }
}

static void attn_accum_q8i_avx512(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p, const void *v,
                                  int64_t ld_v, int nk, int64_t n, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3), 64 and 256 unrolled */
    case 64: accum(2, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, pf); break;
    case 128: accum(4, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, pf); break;
    case 256: accum(8, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, pf); break;
    default: accum((int)(n / KS_QK8_0), acc, ld_acc, nq, p, ld_p, v, ld_v, nk, pf); break;
    }
}

void ks_attn_accum_q8i_avx512_register(ks_kernels *k) { k->attn_accum_q8i = attn_accum_q8i_avx512; }
