/* attn_q8_avx512.c — the attention scores of Q8_0 keys against Q8_0 queries on AVX-512
 * VNNI (kernels.h: attn_scores_q8q): int8 products four to an int32 lane, as llama.cpp
 * scores its Q8_0 K cache against queries rounded to Q8_0.
 *
 * Owns: the score tiles, their summation order, ks_attn_q8_avx512_register().
 *
 * A 512-bit vector holds two blocks of a row (64 elements, a "block pair"). Per query row
 * r, key j and block pair:
 *
 *   X = dpbusd(c_r, k_j + 128, q_r)       16 int32 lanes, 8 per block: lane e sums the 4
 *                                         products of elements 4e..4e+3 (exact); vpdpbusd
 *                                         multiplies unsigned by signed bytes, so the keys
 *                                         go in shifted by 128 (k ^ 0x80) and c_r, the
 *                                         lanes' -128 sum(q), takes the shift back out
 *   F += float(X) (dq_r dk_j)             lanes 0-7 times the first block's scales'
 *                                         product, 8-15 the second's (exact products of
 *                                         two halves); the first pair a multiply, then FMAs
 *
 * and the score is scale times the sum of F's 16 lanes, reduced by one fixed tree
 * (reduce16). Every score takes these steps whatever tile it falls in, so a query scores
 * the same in a prefill tile and alone in decode. The sums are exact up to the float
 * steps: within a few ulp of the reference's block-order sum (ref/attn_ref.c).
 *
 * Against the F32 arithmetic of Q8_0 rows widened to floats (attn_scores[KS_TYPE_Q8_0]),
 * a block pair of a row is a vpdpbusd, a conversion, a multiply and an FMA where the
 * widened keys take 4 FMAs and, per key, their widening shared by the tile's rows: one
 * thread, hot, 32 keys x 128: 8 rows 37 -> 48 GMAC/s, 2 rows 21 -> 38 (F16 keys: 41).
 *
 * Tiles: NR query rows x NK keys, NR * NK <= 16 accumulators (8 x 2, 4 x 4, 2 x 8, 1 x 16);
 * each row's c, q and dq are set up once per call in a tile of 8 rows. A key tail points
 * at the last key again and drops those results. The tile's loops are unrolled by
 * pragma: GCC kept the block pairs' loop rolled, with the accumulators in memory (34.7
 * GMAC/s with 8 rows). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <immintrin.h>
#include <stdint.h>

/* Block pairs of a row of at most KS_ATTN_TILE_DIM elements. */
#define MAX_PAIRS (KS_ATTN_TILE_DIM / 64)

/* A query row made ready for the tiles: per block pair its codes, c (the lanes' -128
 * sum of codes) and its blocks' d in lanes 0-7 and 8-15. */
typedef struct q8_row {
    __m512i q[MAX_PAIRS], c[MAX_PAIRS];
    __m512 d[MAX_PAIRS];
} q8_row;

/* Codes of blocks b and b + 1 of a row (b + 1 absent when `two` is false: zeros). */
static KS_ALWAYS_INLINE __m512i load_pair(const ks_block_q8_0 *row, int b, bool two) {
    const __m256i lo = _mm256_loadu_si256((const __m256i *)row[b].qs);
    const __m256i hi = two ? _mm256_loadu_si256((const __m256i *)row[b + 1].qs) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* d of blocks b and b + 1 (absent: 0) in lanes 0-7 and 8-15. */
static KS_ALWAYS_INLINE __m512 load_pair_d(const ks_block_q8_0 *row, int b, bool two) {
    const __m128i lo = _mm_set1_epi16((short)row[b].d);
    const __m128i hi = two ? _mm_set1_epi16((short)row[b + 1].d) : _mm_setzero_si128();
    return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
}

static void prep_row(const ks_block_q8_0 *row, int nb, q8_row *out) {
    const __m512i k128 = _mm512_set1_epi8((char)0x80);
    for (int p = 0; 2 * p < nb; p++) {
        const bool two = 2 * p + 1 < nb;
        out->q[p] = load_pair(row, 2 * p, two);
        out->c[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, out->q[p]));
        out->d[p] = load_pair_d(row, 2 * p, two);
    }
}

/* The sums of 16 vectors' lanes, in order: out lane a = the sum of acc[a]'s 16 lanes, by
 * the same tree for every a (within each 128-bit lane (e0 + e2) + (e1 + e3), then lanes
 * (L0 + L1) + (L2 + L3)). */
static KS_ALWAYS_INLINE __m512 reduce16(const __m512 *acc) {
    __m512 t1[8], t2[4];
    for (int a = 0; a < 8; a++)
        t1[a] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * a], acc[2 * a + 1]),
                              _mm512_unpackhi_ps(acc[2 * a], acc[2 * a + 1]));
    for (int a = 0; a < 4; a++) { /* per 128-bit lane: the lane's sums of acc[4a .. 4a + 3] */
        const __m512d x = _mm512_castps_pd(t1[2 * a]), y = _mm512_castps_pd(t1[2 * a + 1]);
        t2[a] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    const __m512 v01 = _mm512_add_ps(_mm512_shuffle_f32x4(t2[0], t2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(t2[0], t2[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 v23 = _mm512_add_ps(_mm512_shuffle_f32x4(t2[2], t2[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_f32x4(t2[2], t2[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(v01, v23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* s[r * ld_s + j], r < nr, j < nk_valid, for a tile of nr rows x nk keys (nr, nk constants
 * where inlined); keys ld_bytes apart, rows made ready in qr; pf: the next rows to ask for
 * (their lines are asked for as the tile's own blocks go by). */
static KS_ALWAYS_INLINE void tile(int nr, int nk, const q8_row *qr, const char *k, int64_t ld_bytes,
                                  int nk_valid, int nb, float scale, float *s, int64_t ld_s, const char *pf) {
    /* (nb a constant too for the common lengths: the pairs' loop unrolled, the
     * accumulators stay in registers) */
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[16];
    for (int a = 0; a < 16; a++)
        acc[a] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int p = 0; 2 * p < nb; p++) {
        const bool two = 2 * p + 1 < nb;
#pragma GCC unroll 16
        for (int j = 0; j < nk; j++) {
            const int64_t jj = j < nk_valid ? j : nk_valid - 1;
            const ks_block_q8_0 *row = (const ks_block_q8_0 *)(k + jj * ld_bytes);
            if (pf)
                kv_prefetch_lines(pf + jj * ld_bytes, (int64_t)sizeof(ks_block_q8_0) * 2 * p,
                                  (int64_t)sizeof(ks_block_q8_0) * KS_MIN(2 * p + 2, nb));
            const __m512i ku = _mm512_xor_si512(load_pair(row, 2 * p, two), flip);
            const __m512 dk = load_pair_d(row, 2 * p, two);
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++) {
                const __m512 x = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(qr[r].c[p], ku, qr[r].q[p]));
                const __m512 dd = _mm512_mul_ps(dk, qr[r].d[p]);
                acc[r * nk + j] = p == 0 ? _mm512_mul_ps(x, dd) : _mm512_fmadd_ps(x, dd, acc[r * nk + j]);
            }
        }
    }
    float out[16];
    _mm512_storeu_ps(out, _mm512_mul_ps(reduce16(acc), _mm512_set1_ps(scale)));
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nk_valid; j++)
            s[r * ld_s + j] = out[r * nk + j];
}

/* All nk keys for nr (a constant where inlined) rows made ready in qr. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nkt, const q8_row *qr, const void *k, int64_t ld_bytes, int nk,
                                       int nb, float scale, float *s, int64_t ld_s, const void *pf) {
    for (int j = 0; j < nk; j += nkt)
        tile(nr, nkt, qr, (const char *)k + j * ld_bytes, ld_bytes, KS_MIN(nk - j, nkt), nb, scale, s + j, ld_s,
             pf ? (const char *)pf + j * ld_bytes : NULL);
}

/* All nq rows against all nk keys, rows of nb blocks (a constant where inlined). */
static KS_ALWAYS_INLINE void scores(int nb, const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    const int64_t ld_bytes = kv_off(KV_Q8, ld_k), ldq_bytes = kv_off(KV_Q8, ld_q);
    q8_row qr[8];
    /* pf's rows are asked for by the first row tile's pass over the keys */
    for (int r0 = 0; r0 < nq; r0 += 8) {
        const int nr = KS_MIN(8, nq - r0);
        for (int r = 0; r < nr; r++)
            prep_row((const ks_block_q8_0 *)((const char *)q + (r0 + r) * ldq_bytes), nb, &qr[r]);
        float *sr = s + r0 * ld_s;
        const void *p = r0 == 0 ? pf : NULL;
        if (nr == 8)
            tile_rows(8, 2, qr, k, ld_bytes, nk, nb, scale, sr, ld_s, p);
        else if (nr >= 4) {
            tile_rows(4, 4, qr, k, ld_bytes, nk, nb, scale, sr, ld_s, p);
            for (int r = 4; r < nr; r++)
                tile_rows(1, 16, qr + r, k, ld_bytes, nk, nb, scale, sr + r * ld_s, ld_s, NULL);
        } else if (nr >= 2) {
            tile_rows(2, 8, qr, k, ld_bytes, nk, nb, scale, sr, ld_s, p);
            if (nr == 3)
                tile_rows(1, 16, qr + 2, k, ld_bytes, nk, nb, scale, sr + 2 * ld_s, ld_s, NULL);
        } else {
            tile_rows(1, 16, qr, k, ld_bytes, nk, nb, scale, sr, ld_s, p);
        }
    }
}

static void attn_scores_q8q_avx512(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                   int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3), 64 and 256 unrolled */
    case 64: scores(2, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 128: scores(4, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 256: scores(8, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    default: scores((int)(n / KS_QK8_0), q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    }
}

void ks_attn_q8_avx512_register(ks_kernels *k) { k->attn_scores_q8q = attn_scores_q8q_avx512; }
