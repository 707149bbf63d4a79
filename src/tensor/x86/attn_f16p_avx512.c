/* attn_f16p_avx512.c — the attention scores of F16 keys in panels against float queries
 * on AVX-512 (kernels.h: attn_scores_f16p).
 *
 * Owns: the panel score tiles, their walk over rows and keys, their summation order,
 * ks_attn_f16p_avx512_register().
 *
 * A panel (attn_kv.h: kv_f16_panel_put) holds element e of 16 keys in 32 bytes: widened,
 * key i in lane i of one vector. Per query row r and element e, one FMA with q_r[e]
 * broadcast from memory (its {1to16} operand) adds the element's products of all 16 keys,
 * each in its own lane: two chains per lane (even and odd elements, so that a tile of
 * one or two rows still keeps four or more FMAs in flight), added and scaled at the end.
 * No sums across lanes, no shuffles: a tile of 8 rows converts each of the panel's
 * vectors once for 8 FMAs and runs at the FMA peak.
 *
 * Against the scores of keys in rows that this replaces for F16 (attn_scores_avx512.c:
 * two keys to an accumulator, a transposing sum per tile), one thread, 32-key blocks of
 * 4 KV heads of 128 in L2: 8 rows 40.6 -> 57 GMAC/s, 2 rows 37.7 -> 45.
 *
 * Tiles: 8 or 4 query rows x one panel, 2 or 1 rows x two panels (where the keys go
 * on), the accumulators in registers; a key tail is a masked store of the lanes past it
 * (the panel's lanes past nk hold whatever the pool held: their chains are not read).
 *
 * On Intel cores before Golden Cove (kernels.c) an FMA with a folded broadcast issues
 * about once a cycle, half the FMA ports' rate, so there a row's query element is
 * broadcast once for two panels (attn_scores_f16p_shared: tiles of 4 rows x two panels,
 * the same chains, the same bits). Ice Lake Xeon VM, one thread, 64 keys x 128 in L1: 8 rows ~35 -> ~40
 * GMAC/s, 2 rows 27 -> 33-35; bench_attention --shape qwen3-30b-a3b -d 4096 -p 512, 2
 * threads, alternated: 14.3-15.5 -> 12.2-14.3 s; decode, bound by its K/V stream there,
 * on par. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/fp16.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>

/* c + w[0] b, w's broadcast the FMA's memory operand (as in attn_avx512.c) */
static inline __m512 fma_bcast(const float *w, __m512 b, __m512 c) {
    __asm__("vfmadd231ps %[w]%{1to16%}, %[b], %[c]" : [c] "+v"(c) : [b] "v"(b), [w] "m"(*w));
    return c;
}

/* Element e of the panel at k, widened. */
static inline __m512 panel_elem(const ks_fp16 *k, int64_t e) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + e * KV_PANEL_KEYS)));
}

/* Scores of nr rows qr[r] against the np panels (16 keys each, gs halves apart) from k,
 * n elements; the first nk_valid keys stored at s + r * ld_s; pf: the panels to ask the
 * cache for as the elements go by (NULL: none). A row's query element is broadcast into
 * each FMA (folded) or once for the np panels' FMAs (shared: Intel cores, see the file
 * comment). nr, np, shared constants where inlined. */
static KS_ALWAYS_INLINE void tile(int nr, int np, bool shared, const float *const *qr, const ks_fp16 *k, int64_t gs,
                                  int64_t n, int nk_valid, float scale, float *s, int64_t ld_s, const ks_fp16 *pf) {
    __m512 a0[8], a1[8];
#pragma GCC unroll 8
    for (int a = 0; a < nr * np; a++) {
        a0[a] = _mm512_setzero_ps();
        a1[a] = _mm512_setzero_ps();
    }
    int64_t e = 0;
#pragma GCC unroll 2
    for (; e + 2 <= n; e += 2) {
        __m512 k0[2], k1[2];
#pragma GCC unroll 2
        for (int p = 0; p < np; p++) {
            if (pf) /* elements e and e + 1 of a panel: one line */
                __builtin_prefetch(pf + p * gs + e * KV_PANEL_KEYS, 0, 2);
            k0[p] = panel_elem(k + p * gs, e);
            k1[p] = panel_elem(k + p * gs, e + 1);
        }
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++) {
            const __m512 q0 = _mm512_set1_ps(qr[r][e]), q1 = _mm512_set1_ps(qr[r][e + 1]);
#pragma GCC unroll 2
            for (int p = 0; p < np; p++) {
                a0[r * np + p] = shared ? _mm512_fmadd_ps(q0, k0[p], a0[r * np + p])
                                        : fma_bcast(qr[r] + e, k0[p], a0[r * np + p]);
                a1[r * np + p] = shared ? _mm512_fmadd_ps(q1, k1[p], a1[r * np + p])
                                        : fma_bcast(qr[r] + e + 1, k1[p], a1[r * np + p]);
            }
        }
    }
    if (e < n) /* an odd last element: chain 0's */
#pragma GCC unroll 2
        for (int p = 0; p < np; p++) {
            const __m512 kv = panel_elem(k + p * gs, e);
#pragma GCC unroll 8
            for (int r = 0; r < nr; r++)
                a0[r * np + p] = fma_bcast(qr[r] + e, kv, a0[r * np + p]);
        }
    const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 2
    for (int p = 0; p < np; p++) {
        const int left = nk_valid - KV_PANEL_KEYS * p;
        const __mmask16 m = (__mmask16)(left >= 16 ? 0xffffu : (1u << KS_MAX(left, 0)) - 1);
#pragma GCC unroll 8
        for (int r = 0; r < nr; r++)
            _mm512_mask_storeu_ps(s + r * ld_s + KV_PANEL_KEYS * p, m,
                                  _mm512_mul_ps(_mm512_add_ps(a0[r * np + p], a1[r * np + p]), sc));
    }
}

/* nr rows (a constant where inlined) from qr against all nk keys: panels one or two at a
 * time (two where a tile of nr rows has room for both: nr <= 2, or 4 with shared
 * broadcasts), keys j .. at k + j * ld_k halves. */
static KS_ALWAYS_INLINE void tile_rows(int nr, bool shared, const float *const *qr, const ks_fp16 *k, int64_t ld_k,
                                       int nk, int64_t n, float scale, float *s, int64_t ld_s, const ks_fp16 *pf) {
    const int64_t gs = KV_PANEL_KEYS * ld_k;
    const bool pairs = nr <= 2 || (shared && nr <= 4);
    for (int j = 0; j < nk;) {
        const ks_fp16 *pj = pf ? pf + j * ld_k : NULL;
        if (pairs && nk - j > KV_PANEL_KEYS) {
            tile(nr, 2, shared, qr, k + j * ld_k, gs, n, KS_MIN(nk - j, 2 * KV_PANEL_KEYS), scale, s + j, ld_s, pj);
            j += 2 * KV_PANEL_KEYS;
        } else {
            tile(nr, 1, shared, qr, k + j * ld_k, gs, n, KS_MIN(nk - j, KV_PANEL_KEYS), scale, s + j, ld_s, pj);
            j += KV_PANEL_KEYS;
        }
    }
}

/* All nq rows in tiles of at most max_rows (8 folded, 4 shared: a constant where inlined). */
static KS_ALWAYS_INLINE void scores_f16p(int max_rows, bool shared, const float *q, int64_t ld_q, int nq,
                                         const void *k, int64_t ld_k, int nk, int64_t n, float scale, float *s,
                                         int64_t ld_s, const void *pf) {
    for (int r0 = 0, nr; r0 < nq; r0 += nr) {
        const int left = nq - r0;
        nr = left >= 8 && max_rows >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const float *qr[8];
        for (int r = 0; r < nr; r++)
            qr[r] = q + (r0 + r) * ld_q;
        float *sr = s + r0 * ld_s;
        const ks_fp16 *p = r0 == 0 ? pf : NULL; /* the first row tile's pass asks for pf */
        if (nr == 8)
            tile_rows(8, shared, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
        else if (nr == 4)
            tile_rows(4, shared, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
        else if (nr == 2)
            tile_rows(2, shared, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
        else
            tile_rows(1, shared, qr, k, ld_k, nk, n, scale, sr, ld_s, p);
    }
}

static void attn_scores_f16p(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk, int64_t n,
                             float scale, float *s, int64_t ld_s, const void *pf) {
    scores_f16p(8, false, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

static void attn_scores_f16p_shared(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                    int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores_f16p(4, true, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

void ks_attn_f16p_avx512_register(ks_kernels *k) { k->attn_scores_f16p = attn_scores_f16p; }

void ks_attn_f16p_shared_avx512_register(ks_kernels *k) { k->attn_scores_f16p = attn_scores_f16p_shared; }
