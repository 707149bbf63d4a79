/* attn_q8p_avx512.c — the attention scores of Q8_0 keys in panels against Q8_0 queries
 * on AVX-512 VNNI (kernels.h: attn_scores_q8p).
 *
 * Owns: the panel score tiles, their summation order, ks_attn_q8p_avx512_register().
 *
 * A panel (attn_kv.h: kv_q8_panel) holds the same four elements of 16 keys in a 512-bit
 * vector, key i in lane i. Per query row r and block b:
 *
 *   X = c_rb + sum over the block's 8 groups g of dpbusd(k_g + 128, q_r[4g .. 4g + 3])
 *                     16 int32 lanes, lane i the exact dot product of key i's and the
 *                     query's codes: the keys go in shifted to unsigned (k ^ 0x80, as
 *                     vpdpbusd multiplies unsigned by signed bytes) and c_rb (-128 times
 *                     the sum of the query's codes, kv_q8_query) takes the shift out
 *   F += (float(X) dq_rb) dk_b        an FMA (from 0: the first block's exact product)
 *
 * and the 16 scores are scale times F's lanes: no sums across lanes. Every score takes
 * these steps whatever tile it falls in, so a query scores the same in a prefill tile and
 * alone in decode; the sums are exact up to the float steps.
 *
 * Against the scores of keys in rows that this replaced (per row, key and block pair a
 * vpdpbusd, a conversion, two multiplies, and a 16-lane sum per score), one thread, in
 * L1, 32 keys x 128: 8 rows 46 -> 170 GMAC/s, 2 rows 39 -> 140.
 *
 * Tiles: 8, 4, 2 or 1 query rows x 16 keys (one panel; the walk over them attn_q8p_walk.h's),
 * the rows' codes broadcast from memory; the loops unrolled by pragma, the accumulators
 * in registers. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Scores of nr (<= 8) query rows qr[r] of nb blocks against the 16 keys of the panels p
 * (key0 0), the first nk_valid (1..16) stored to s + r * ld_s; pf: panels to ask for. */
static KS_ALWAYS_INLINE void tile(int nr, int nb, const kv_q8_query *const *qr, const kv_q8_panel *p, int key0,
                                  int nk_valid, float scale, float *s, int64_t ld_s, const kv_q8_panel *pf) {
    (void)key0; /* a tile is the whole panel */
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 f[8];
    for (int r = 0; r < nr; r++)
        f[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
        if (pf)
            kv_prefetch_lines(pf, (int64_t)sizeof(kv_q8_panel) * b, (int64_t)sizeof(kv_q8_panel) * (b + 1));
        __m512i acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_set1_epi32(qr[r][b].c);
#pragma GCC unroll 8
        for (int g = 0; g < KS_QK8_0 / 4; g++) {
            const __m512i ku = _mm512_xor_si512(_mm512_loadu_si512(p[b].qs[g]), flip);
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++) {
                int32_t q4;
                memcpy(&q4, qr[r][b].qs + 4 * g, sizeof q4);
                acc[r] = _mm512_dpbusd_epi32(acc[r], ku, _mm512_set1_epi32(q4));
            }
        }
        const __m512 dk = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p[b].d));
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++) {
            const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_set1_ps(qr[r][b].d));
            f[r] = _mm512_fmadd_ps(x, dk, f[r]);
        }
    }
    const __mmask16 m = (__mmask16)(nk_valid >= 16 ? 0xffffu : (1u << nk_valid) - 1);
#pragma GCC unroll 8
    for (int r = 0; r < nr; r++)
        _mm512_mask_storeu_ps(s + r * ld_s, m, _mm512_mul_ps(f[r], _mm512_set1_ps(scale)));
}

#define Q8P_ROWS 8
#define Q8P_KEYS 16
#include "tensor/attn_q8p_walk.h"

void ks_attn_q8p_avx512_register(ks_kernels *k) { k->attn_scores_q8p = attn_scores_q8p_walk; }
