/* attn_q8p_avx2.c — the attention scores of Q8_0 keys in panels against Q8_0 queries on
 * AVX2 (kernels.h: attn_scores_q8p), the AVX2 form of attn_q8p_avx512.c.
 *
 * Owns: the panel score tiles, their summation order, ks_attn_q8p_avx2_register().
 *
 * A 256-bit vector holds the same four elements of 8 keys of a panel (attn_kv.h:
 * kv_q8_panel), key i in lane i. Per query row r, block b and half of the panel (keys
 * key0 .. key0 + 7):
 *
 *   X = sum over the block's 8 groups g of madd(maddubs(|k_g|, q_r[4g .. 4g + 3] signed
 *       as k_g), 1)          8 int32 lanes, lane i the exact dot product of key key0 + i's
 *                            and the query's codes (the int16 pairs are at most 2 * 127
 *                            * 127: a Q8_0 code is never -128)
 *   F += (float(X) dq_rb) dk_b        an FMA (from 0: the first block's exact product)
 *
 * and the 8 scores are scale times F's lanes: no sums across lanes, where the form over
 * keys in rows that this replaced reduced 8 lanes per score: one thread, in L1, 32 keys
 * x 128, 8 rows 25 -> 50 GMAC/s, 2 rows 30 -> 48. Every score takes these steps whatever tile it falls
 * in. Tiles: 4, 2 or 1 query rows x 8 keys (16 registers hold 4 rows' int and float sums
 * beside the operands; the walk over them attn_q8p_walk.h's). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define TILE_ROWS 4

/* Scores of nr (<= 4) query rows qr[r] of nb blocks against keys key0 .. key0 + 7 (key0
 * 0 or 8) of the panels p, the first nk_valid (1..8) stored to s + r * ld_s; pf: panels
 * to ask the cache for. */
static KS_ALWAYS_INLINE void tile(int nr, int nb, const kv_q8_query *const *qr, const kv_q8_panel *p, int key0,
                                  int nk_valid, float scale, float *s, int64_t ld_s, const kv_q8_panel *pf) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[TILE_ROWS];
    for (int r = 0; r < nr; r++)
        f[r] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
        if (pf)
            kv_prefetch_lines(pf, (int64_t)sizeof(kv_q8_panel) * b, (int64_t)sizeof(kv_q8_panel) * (b + 1));
        __m256i acc[TILE_ROWS];
        for (int r = 0; r < nr; r++)
            acc[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < KS_QK8_0 / 4; g++) {
            const __m256i k = _mm256_loadu_si256((const __m256i *)p[b].qs[g][key0]);
            const __m256i ka = _mm256_sign_epi8(k, k);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) {
                int32_t q4;
                memcpy(&q4, qr[r][b].qs + 4 * g, sizeof q4);
                const __m256i qs = _mm256_sign_epi8(_mm256_set1_epi32(q4), k);
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ka, qs), ones));
            }
        }
        const __m256 dk = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p[b].d + key0)));
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r]), _mm256_set1_ps(qr[r][b].d));
            f[r] = _mm256_fmadd_ps(x, dk, f[r]);
        }
    }
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk_valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++)
        _mm256_maskstore_ps(s + r * ld_s, m, _mm256_mul_ps(f[r], _mm256_set1_ps(scale)));
}

#define Q8P_ROWS TILE_ROWS
#define Q8P_KEYS 8
#include "tensor/attn_q8p_walk.h"

void ks_attn_q8p_avx2_register(ks_kernels *k) { k->attn_scores_q8p = attn_scores_q8p_walk; }
