/* attn_q8_avx2.c — the attention scores of Q8_0 keys against Q8_0 queries on AVX2
 * (kernels.h: attn_scores_q8q), the AVX2 form of attn_q8_avx512.c: int8 products summed
 * in int32 lanes, as llama.cpp scores its Q8_0 K cache against queries rounded to Q8_0.
 *
 * Owns: the score tiles, their summation order, ks_attn_q8_avx2_register().
 *
 * A 256-bit vector holds one block of a row. Per query row r, key j and block b:
 *
 *   X = madd(maddubs(|k_j|, q_r signed as k_j), 1)   8 int32 lanes, lane e the sum of the
 *                                         4 products of elements 4e..4e+3 (exact: the
 *                                         int16 pairs are at most 2 * 127 * 127, as a
 *                                         Q8_0 code is never -128)
 *   F += float(X) (dq_r dk_j)             the block's scales' product (exact) in every
 *                                         lane; the first block a multiply, then FMAs
 *
 * and the score is scale times the sum of F's 8 lanes by one fixed tree ((e0 + e1) +
 * (e2 + e3)) + ((e4 + e5) + (e6 + e7)). Every score takes these steps whatever tile it
 * falls in, so a query scores the same in a prefill tile and alone in decode.
 *
 * Against keys widened to floats (attn_tiles.h), a block of a row is 6 instructions
 * where the widened keys take 4 FMAs and, per key, 3 instructions a vector shared by the
 * tile's 2 rows (bench_attention -d 16384 -p 0 --kv q8_0, KS_KERNELS=avx2, 2 threads:
 * Qwen3-0.6B 115 -> 71-77 ms). Tiles: NR query rows x NK keys, NR * NK <= 8
 * accumulators (4 x 2, 2 x 4, 1 x 8, the rows' walk attn_q8_rows.h's); a key tail points
 * at the last key again and drops those results. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>

typedef __m256 q8_dvec;
#define Q8_MAX_BLOCKS (KS_ATTN_TILE_DIM / KS_QK8_0)
#define Q8_ACC 8

/* d of a block, as floats in all 8 lanes */
static KS_ALWAYS_INLINE __m256 q8_block_d(const ks_block_q8_0 *b) { return _mm256_cvtph_ps(_mm_set1_epi16((short)b->d)); }

/* Four accumulators' lane sums, each by the file comment's tree, times scale. */
static KS_ALWAYS_INLINE __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d, float scale) {
    const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)), _mm_set1_ps(scale));
}

/* s[r * ld_s + j], r < nr, j < nk_valid, for a tile of nr rows x nk keys of nb blocks
 * (nr, nk, nb constants where inlined); qd[r][b]: row r's block d; pf as attn_q8_avx512.c. */
static KS_ALWAYS_INLINE void tile(int nr, int nk, int nb, const ks_block_q8_0 *const *qr,
                                  const __m256 (*qd)[Q8_MAX_BLOCKS], const char *k, int64_t ld_bytes, int nk_valid,
                                  float scale, float *s, int64_t ld_s, const char *pf) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[8];
    for (int a = 0; a < 8; a++)
        acc[a] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 8
        for (int j = 0; j < nk; j++) {
            const ks_block_q8_0 *kb = kv_q8_key_block(k, ld_bytes, j, nk_valid, b, pf);
            const __m256i kq = _mm256_loadu_si256((const __m256i *)kb->qs);
            const __m256i ka = _mm256_sign_epi8(kq, kq);
            const __m256 dk = q8_block_d(kb);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) {
                const __m256i qs = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)qr[r][b].qs), kq);
                const __m256 x = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ka, qs), ones));
                const __m256 dd = _mm256_mul_ps(dk, qd[r][b]);
                acc[r * nk + j] = b == 0 ? _mm256_mul_ps(x, dd) : _mm256_fmadd_ps(x, dd, acc[r * nk + j]);
            }
        }
    }
    float out[8];
    _mm_storeu_ps(out, sum4(acc[0], acc[1], acc[2], acc[3], scale));
    _mm_storeu_ps(out + 4, sum4(acc[4], acc[5], acc[6], acc[7], scale));
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nk_valid; j++)
            s[r * ld_s + j] = out[r * nk + j];
}

#include "tensor/attn_q8_rows.h"

void ks_attn_q8_avx2_register(ks_kernels *k) { k->attn_scores_q8q = attn_scores_q8q_rows; }
