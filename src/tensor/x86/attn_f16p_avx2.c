/* attn_f16p_avx2.c — the attention scores of F16 keys in panels against float queries
 * on AVX2 + FMA + F16C (kernels.h: attn_scores_f16p): the AVX2 form of
 * attn_f16p_avx512.c, the same arithmetic in each lane (two chains of FMAs per score,
 * even and odd elements, added and scaled at the end), so the same scores bit for bit.
 *
 * Owns: the panel score tiles of this set, their walk, ks_attn_f16p_avx2_register().
 *
 * A panel element (16 keys' halves) widens to two vectors of 8 keys. A tile is 3, 2 or 1
 * query rows x the panel's 16 keys x the two chains: 12 accumulators for 3 rows, with
 * the element's two vectors and a broadcast query element in the other 4 of the 16
 * registers; each widened element serves 6 FMAs. (With keys in rows, attn_tiles.h, this
 * set scored the 30B-A3B shape's decode at 16K at 30.7 GMAC/s on one Zen 4 thread.) */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/fp16.h"

#include <immintrin.h>
#include <stdint.h>

/* Half h (keys 8h .. 8h + 7) of element e of the panel at k, widened. */
static inline __m256 panel_half(const ks_fp16 *k, int64_t e, int h) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + e * KV_PANEL_KEYS + 8 * h)));
}

/* Element e's products into chain c of a tile of nr rows. */
static KS_ALWAYS_INLINE void step(int nr, const float *const *qr, const ks_fp16 *k, int64_t e, __m256 a[3][2]) {
    const __m256 lo = panel_half(k, e, 0), hi = panel_half(k, e, 1);
#pragma GCC unroll 3
    for (int r = 0; r < nr; r++) {
        const __m256 qv = _mm256_broadcast_ss(qr[r] + e);
        a[r][0] = _mm256_fmadd_ps(qv, lo, a[r][0]);
        a[r][1] = _mm256_fmadd_ps(qv, hi, a[r][1]);
    }
}

/* Scores of nr rows qr[r] against the panel's 16 keys at k, n elements; the first
 * nk_valid stored at s + r * ld_s; pf: a panel to ask the cache for as the elements go by
 * (NULL: none). nr a constant where inlined. */
static KS_ALWAYS_INLINE void tile(int nr, const float *const *qr, const ks_fp16 *k, int64_t n, int nk_valid,
                                  float scale, float *s, int64_t ld_s, const ks_fp16 *pf) {
    __m256 a0[3][2], a1[3][2];
#pragma GCC unroll 3
    for (int r = 0; r < nr; r++)
        a0[r][0] = a0[r][1] = a1[r][0] = a1[r][1] = _mm256_setzero_ps();
    int64_t e = 0;
    for (; e + 2 <= n; e += 2) {
        if (pf) /* elements e and e + 1: one line */
            __builtin_prefetch(pf + e * KV_PANEL_KEYS, 0, 2);
        step(nr, qr, k, e, a0);
        step(nr, qr, k, e + 1, a1);
    }
    if (e < n) /* an odd last element: chain 0's */
        step(nr, qr, k, e, a0);
    const __m256 sc = _mm256_set1_ps(scale);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int h = 0; h < 2; h++) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nk_valid - 8 * h), lane);
#pragma GCC unroll 3
        for (int r = 0; r < nr; r++)
            _mm256_maskstore_ps(s + r * ld_s + 8 * h, m, _mm256_mul_ps(_mm256_add_ps(a0[r][h], a1[r][h]), sc));
    }
}

/* nr rows (a constant where inlined) from qr against all nk keys, a panel at a time. */
static KS_ALWAYS_INLINE void tile_rows(int nr, const float *const *qr, const ks_fp16 *k, int64_t ld_k, int nk,
                                       int64_t n, float scale, float *s, int64_t ld_s, const ks_fp16 *pf) {
    for (int j = 0; j < nk; j += KV_PANEL_KEYS)
        tile(nr, qr, k + j * ld_k, n, KS_MIN(nk - j, KV_PANEL_KEYS), scale, s + j, ld_s, pf ? pf + j * ld_k : NULL);
}

static void attn_scores_f16p(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk, int64_t n,
                             float scale, float *s, int64_t ld_s, const void *pf) {
    for (int r0 = 0, nr; r0 < nq; r0 += nr) {
        const int left = nq - r0;
        nr = left >= 3 ? 3 : left;
        const float *qr[3];
        for (int r = 0; r < nr; r++)
            qr[r] = q + (r0 + r) * ld_q;
        float *sr = s + r0 * ld_s;
        const ks_fp16 *p = r0 == 0 ? pf : NULL; /* the first row tile's pass asks for pf */
        if (nr == 3)
            tile_rows(3, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
        else if (nr == 2)
            tile_rows(2, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
        else
            tile_rows(1, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
    }
}

void ks_attn_f16p_avx2_register(ks_kernels *k) { k->attn_scores_f16p = attn_scores_f16p; }
