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
 * alone in decode; the sums are exact up to the float steps, as attn_scores_q8q's.
 *
 * Against attn_scores_q8q over rows (attn_q8_avx512.c: per row, key and block pair a
 * vpdpbusd, a conversion, two multiplies, and a 16-lane sum per score), one thread, in L1,
 * 32 keys x 128: 8 rows 46 -> 170 GMAC/s, 2 rows 39 -> 140.
 *
 * Tiles: 8, 4, 2 or 1 query rows x 16 keys (one panel), the rows' codes broadcast from
 * memory; the loops unrolled by pragma, the accumulators in registers. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Scores of nr (<= 8) query rows qr[r] of nb blocks against the 16 keys of the panels p,
 * the first nk_valid (1..16) stored to s + r * ld_s; pf: panels to ask the cache for. */
static KS_ALWAYS_INLINE void tile(int nr, int nb, const kv_q8_query *const *qr, const kv_q8_panel *p, int nk_valid,
                                  float scale, float *s, int64_t ld_s, const kv_q8_panel *pf) {
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

/* nr (a constant where inlined) rows at qr against all nk keys, panels gs bytes apart. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nb, const kv_q8_query *const *qr, const char *k, int64_t gs,
                                       int nk, float scale, float *s, int64_t ld_s, const char *pf) {
    for (int j = 0; j < nk; j += KV_PANEL_KEYS)
        tile(nr, nb, qr, (const kv_q8_panel *)(k + j / KV_PANEL_KEYS * gs), KS_MIN(nk - j, KV_PANEL_KEYS), scale,
             s + j, ld_s, pf ? (const kv_q8_panel *)(pf + j / KV_PANEL_KEYS * gs) : NULL);
}

/* All nq rows against all nk keys, rows of nb blocks (a constant where inlined). */
static KS_ALWAYS_INLINE void scores(int nb, const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    const int64_t gs = kv_off(KV_Q8, KV_PANEL_KEYS * ld_k);
    const kv_q8_query *qb = q;
    /* tiles of 8 rows, then 4, 2, 1; pf's panels asked for by the first one's pass */
    for (int r0 = 0, nr; r0 < nq; r0 += nr) {
        nr = nq - r0 >= 8 ? 8 : nq - r0 >= 4 ? 4 : nq - r0 >= 2 ? 2 : 1;
        const kv_q8_query *qr[8];
        for (int r = 0; r < nr; r++)
            qr[r] = qb + (r0 + r) * (ld_q / KS_QK8_0);
        float *sr = s + r0 * ld_s;
        const char *p = r0 == 0 ? pf : NULL;
        if (nr == 8)
            tile_rows(8, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else if (nr == 4)
            tile_rows(4, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else if (nr == 2)
            tile_rows(2, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else
            tile_rows(1, nb, qr, k, gs, nk, scale, sr, ld_s, p);
    }
}

static void attn_scores_q8p_avx512(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                   int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3), 64 and 256 unrolled */
    case 64: scores(2, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 128: scores(4, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 256: scores(8, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    default: scores((int)(n / KS_QK8_0), q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    }
}

void ks_attn_q8p_avx512_register(ks_kernels *k) { k->attn_scores_q8p = attn_scores_q8p_avx512; }
