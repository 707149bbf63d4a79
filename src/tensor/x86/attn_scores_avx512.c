/* attn_scores_avx512.c — the attention scores (kernels.h: attn_scores, F32, F16 and Q8_0 K rows)
 * of the AVX-512 set, two keys to an accumulator. They replace attn_tiles.h's, which sum
 * each score in an accumulator of its own, 16 lanes wide.
 *
 * Owns: the score tiles, their summation order, ks_attn_scores_avx512_register().
 *
 * An accumulator's lanes 0-7 hold one key's products, lanes 8-15 the next key's: lane e
 * of a half sums q[i] * k[i] over the elements i = e (mod 8), one FMA per 8 elements in
 * element order (a tail of fewer than 8 elements adds zeros in the lanes past it), and the
 * half's 8 lanes are then added ((e0 + e2) + (e1 + e3)) + ((e4 + e6) + (e5 + e7)) and
 * multiplied by the scale. That is every score's arithmetic, whatever tile it falls in, so
 * a query scores the same in a prefill tile and alone in decode.
 *
 * Why: with 16 lanes per score, every score ends in a horizontal sum of its own, and a
 * tile of 4 query rows widens each K row once per 4 rows. Two keys to an accumulator
 * halve those sums (the transposing sum below reduces 8 or 16 accumulators at once), and
 * tiles of 8 rows widen each K row once for a decode token's 8 query rows per KV head
 * (Qwen3-30B-A3B): bench_attention --shape qwen3-30b-a3b -d 16384 -p 0, 2 threads,
 * 99-103 -> 93-95 ms. With 2 rows (Qwen3-0.6B) a key pair costs an insert more than a
 * 16-element row did, within the noise of the same measure (73-75 ms either way).
 *
 * Tiles: NR query rows x NP key pairs, NR * NP accumulators: 8 x 2 and 4 x 4, 2 x 4 and
 * 1 x 4 (padded to 8 accumulators); 2 x 8 spills its 16 key row pointers (2 rows: 74 ->
 * 78 ms); rows come in whole tiles (8, then 4, 2, 1), a key tail points at the last key
 * again and drops those results. The pf rows (the next unit of the walk) are asked for a
 * share of each line-run at every step, not all the run's lines at its first step: the
 * requests then go out at the pace the arithmetic takes (bench_attention --shape
 * qwen3-30b-a3b -d 16384 -p 0, 2 threads, alternated over five pairs: median 96.6 -> 92.7
 * ms; Qwen3-0.6B's 77.4 -> 76.7). A whole tile stores each row's scores with one 128- or
 * 256-bit store from the reduced vectors (one thread, 8 rows of the 30B-A3B shape over
 * 32-key blocks in L2: 53 -> 57-59 GMAC/s against a store per score through a buffer).
 *
 * Tiles of one or two rows (a decode token of Qwen3-0.6B has 2 per KV head) keep a key's
 * 8 lanes in a 256-bit accumulator of their own (tile_step8) and pair them up only for
 * the sum: the same lanes doing the same operations, so the same scores bit for bit, but
 * no insert per key pair and no broadcast per row at every step, which with two rows were
 * a third of the step (bench_attention -t 1 -p 0, alternated: depth 128 0.65-0.77 ->
 * 0.56-0.61 ms, 16384 84-91 -> 79-84 ms; with 2 threads the K/V rate's share of the read
 * bandwidth around each run ~80-85% -> 83-90%). Eight rows the same way (8 x 2 keys)
 * measured 20% slower than the pairs: the sums come twice as often. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/fp16.h"

#include <immintrin.h>
#include <stdint.h>

/* The 8 elements of K row k0 from element i in lanes 0-7, of row k1 in lanes 8-15, as
 * floats (rows of a kind, attn_kv.h; Q8_0: times d, the d of k0's block in lanes 0-7 and
 * of k1's in 8-15); lanes past cnt (m) are 0. */
static KS_ALWAYS_INLINE __m512 load_key_pair(int kind, const void *k0, const void *k1, int64_t i, bool whole,
                                             __mmask8 m, __m512 d) {
    if (kind == KV_Q8) {
        const int8_t *a = kv_q8_block(k0, i)->qs + i % KS_QK8_0, *b = kv_q8_block(k1, i)->qs + i % KS_QK8_0;
        const __m128i lo = whole ? _mm_loadl_epi64((const __m128i *)a) : _mm_maskz_loadu_epi8(m, a);
        const __m128i hi = whole ? _mm_loadl_epi64((const __m128i *)b) : _mm_maskz_loadu_epi8(m, b);
        return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_unpacklo_epi64(lo, hi))), d);
    }
    if (kind == KV_F16) {
        const ks_fp16 *a = (const ks_fp16 *)k0 + i, *b = (const ks_fp16 *)k1 + i;
        const __m128i lo = whole ? _mm_loadu_si128((const __m128i *)a) : _mm_maskz_loadu_epi16(m, a);
        const __m128i hi = whole ? _mm_loadu_si128((const __m128i *)b) : _mm_maskz_loadu_epi16(m, b);
        return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
    }
    const float *a = (const float *)k0 + i, *b = (const float *)k1 + i;
    const __m256 lo = whole ? _mm256_loadu_ps(a) : _mm256_maskz_loadu_ps(m, a);
    const __m256 hi = whole ? _mm256_loadu_ps(b) : _mm256_maskz_loadu_ps(m, b);
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* One step of 8 elements from i (whole, or the tail's m lanes) of a tile. */
static KS_ALWAYS_INLINE void tile_step(int kind, int nr, int np, const float *const *qp, const void *const *kp,
                                       int64_t i, bool whole, __mmask8 m, const __m512 *d, __m512 *acc) {
    __m512 kv[8];
    for (int p = 0; p < np; p++)
        kv[p] = load_key_pair(kind, kp[2 * p], kp[2 * p + 1], i, whole, m, d[p]);
    for (int r = 0; r < nr; r++) {
        const __m256 q8 = whole ? _mm256_loadu_ps(qp[r] + i) : _mm256_maskz_loadu_ps(m, qp[r] + i);
        const __m512 qv = _mm512_broadcast_f32x8(q8);
        for (int p = 0; p < np; p++)
            acc[r * np + p] = _mm512_fmadd_ps(qv, kv[p], acc[r * np + p]);
    }
}

/* The 8 elements of K row k from element i as floats (Q8_0: times d, its block's d);
 * lanes past cnt (m) are 0. */
static KS_ALWAYS_INLINE __m256 load_key8(int kind, const void *k, int64_t i, bool whole, __mmask8 m, __m256 d) {
    if (kind == KV_Q8) {
        const int8_t *a = kv_q8_block(k, i)->qs + i % KS_QK8_0;
        const __m128i q = whole ? _mm_loadl_epi64((const __m128i *)a) : _mm_maskz_loadu_epi8(m, a);
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
    if (kind == KV_F16) {
        const ks_fp16 *a = (const ks_fp16 *)k + i;
        return _mm256_cvtph_ps(whole ? _mm_loadu_si128((const __m128i *)a) : _mm_maskz_loadu_epi16(m, a));
    }
    const float *a = (const float *)k + i;
    return whole ? _mm256_loadu_ps(a) : _mm256_maskz_loadu_ps(m, a);
}

/* tile_step for tiles of one or two rows, with 8-lane accumulators, one per key (acc[r *
 * nk + j]): each lane does what the same lane of tile_step's key pair does, bit for bit,
 * without the insert that packs two keys' halves in one register and the broadcast of the
 * query (with two rows those were a third of a step's instructions). */
static KS_ALWAYS_INLINE void tile_step8(int kind, int nr, int nk, const float *const *qp, const void *const *kp,
                                        int64_t i, bool whole, __mmask8 m, const __m256 *d, __m256 *acc) {
    __m256 qv[2];
    for (int r = 0; r < nr; r++)
        qv[r] = whole ? _mm256_loadu_ps(qp[r] + i) : _mm256_maskz_loadu_ps(m, qp[r] + i);
    for (int j = 0; j < nk; j++) {
        const __m256 kv = load_key8(kind, kp[j], i, whole, m, d[j]);
        for (int r = 0; r < nr; r++)
            acc[r * nk + j] = _mm256_fmadd_ps(qv[r], kv, acc[r * nk + j]);
    }
}

/* The scores of na (8 or 16) accumulators, times scale, in na / 8 vectors: lanes 2c and
 * 2c + 1 of vector v the scores of accumulator 8v + c's lanes 0-7 and 8-15, each by the
 * tree of the file comment. */
static KS_ALWAYS_INLINE void reduce_pairs(int na, const __m512 *acc, float scale, __m512 *out) {
    __m512 t1[8], t2[4];
    /* per 128-bit lane: [a0 + a2, b0 + b2, a1 + a3, b1 + b3] */
    for (int a = 0; a < na / 2; a++)
        t1[a] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * a], acc[2 * a + 1]),
                              _mm512_unpackhi_ps(acc[2 * a], acc[2 * a + 1]));
    /* per 128-bit lane L: the sums of L's four lanes of accumulators 4a .. 4a + 3 */
    for (int a = 0; a < na / 4; a++) {
        const __m512d x = _mm512_castps_pd(t1[2 * a]), y = _mm512_castps_pd(t1[2 * a + 1]);
        t2[a] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    /* 128-bit lanes 0 + 1 (the first key's half), 2 + 3 (the second's): lanes
     * [4a .. 4a+3 first keys, their second keys, the same of 4a+4 .. 4a+7] */
    const __m512i order = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    for (int a = 0; a < na / 4; a += 2) {
        const __m512 lo = _mm512_shuffle_f32x4(t2[a], t2[a + 1], _MM_SHUFFLE(2, 0, 2, 0));
        const __m512 hi = _mm512_shuffle_f32x4(t2[a], t2[a + 1], _MM_SHUFFLE(3, 1, 3, 1));
        const __m512 s = _mm512_mul_ps(_mm512_add_ps(lo, hi), _mm512_set1_ps(scale));
        out[a / 2] = _mm512_permutexvar_ps(order, s); /* into accumulator order */
    }
}

/* The d of the Q8_0 block holding element i of each of a tile's 2 np keys: in pairs for
 * tile_step (d), or one 8-lane vector per key for tile_step8 (narrow, d8). */
static KS_ALWAYS_INLINE void q8_block_d(bool narrow, int np, const void *const *kp, int64_t i, __m512 *d,
                                        __m256 *d8) {
    for (int p = 0; p < np; p++) {
        const __m128i h0 = _mm_set1_epi16((short)kv_q8_block(kp[2 * p], i)->d);
        const __m128i h1 = _mm_set1_epi16((short)kv_q8_block(kp[2 * p + 1], i)->d);
        if (narrow) {
            d8[2 * p] = _mm256_cvtph_ps(h0);
            d8[2 * p + 1] = _mm256_cvtph_ps(h1);
        } else {
            d[p] = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(h0), h1, 1));
        }
    }
}

/* s[r * ld_s + j] for r < nr, j < nk_valid of a tile of nr rows x 2 np keys (kind, nr, np
 * constants where inlined). */
static KS_ALWAYS_INLINE void score_tile(int kind, int nr, int np, const float *q, int64_t ld_q, const void *k, int64_t ld_k, int nk_valid, int64_t n, float scale, float *s,
                                        int64_t ld_s, const void *pf) {
    const int64_t eb = kind == KV_F16 ? 2 : 4, ld_bytes = kv_off(kind, ld_k);
    const float *qp[8];
    const void *kp[16];
    for (int r = 0; r < nr; r++)
        qp[r] = q + r * ld_q;
    for (int j = 0; j < 2 * np; j++)
        kp[j] = (const char *)k + (j < nk_valid ? j : nk_valid - 1) * ld_bytes;
    __m512 d[8];   /* Q8_0: the keys' d of the step's block, in pairs (tile_step) */
    __m256 d8[16]; /* or one per key (tile_step8) */
    for (int p = 0; p < 8; p++)
        d[p] = _mm512_setzero_ps();
    for (int j = 0; j < 16; j++)
        d8[j] = _mm256_setzero_ps();
    const bool narrow = nr <= 2; /* tile_step8 */
    __m512 acc[16];
    __m256 acc8[16];
    for (int a = 0; a < nr * np; a++)
        acc[a] = _mm512_setzero_ps();
    for (int a = 0; a < 2 * nr * np && narrow; a++)
        acc8[a] = _mm256_setzero_ps();
    /* the steps that cover a line of each key, and the keys whose line a step asks for */
    const int64_t steps_per_line = 64 / (8 * eb), pf_per_step = (2 * np + steps_per_line - 1) / steps_per_line;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (kind == KV_Q8 && i % KS_QK8_0 == 0)
            q8_block_d(narrow, np, kp, i, d, d8);
        if (pf && kind == KV_Q8) { /* the lines of each pf row the step's elements start */
            for (int j = 0; j < nk_valid; j++)
                kv_prefetch_lines((const char *)pf + j * ld_bytes, kv_off(kind, i), kv_off(kind, i + 8));
        } else if (pf) { /* a share of the pf rows' lines of this run of steps, every step */
            const int64_t s0 = (i / 8) % steps_per_line * pf_per_step, line = i & ~(64 / eb - 1);
            for (int64_t j = s0; j < s0 + pf_per_step && j < nk_valid; j++)
                _mm_prefetch((const char *)pf + (j * ld_k + line) * eb, _MM_HINT_T1); /* to L2, as attn_tiles.h */
        }
        if (narrow)
            tile_step8(kind, nr, 2 * np, qp, kp, i, true, 0xff, d8, acc8);
        else
            tile_step(kind, nr, np, qp, kp, i, true, 0xff, d, acc);
    }
    if (i < n) { /* (not Q8_0, whole blocks) */
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        if (narrow)
            tile_step8(kind, nr, 2 * np, qp, kp, i, false, m, d8, acc8);
        else
            tile_step(kind, nr, np, qp, kp, i, false, m, d, acc);
    }
    for (int a = 0; a < nr * np && narrow; a++) /* key pairs, as tile_step's */
        acc[a] = _mm512_insertf32x8(_mm512_castps256_ps512(acc8[2 * a]), acc8[2 * a + 1], 1);
    const int na = nr * np < 8 ? 8 : nr * np;
    for (int a = nr * np; a < na; a++)
        acc[a] = _mm512_setzero_ps();
    __m512 out[2];
    reduce_pairs(na, acc, scale, out);
    if (nk_valid == 2 * np && np == 2) { /* a row's 4 scores: a 128-bit lane */
        for (int r = 0; r < nr; r++)
            _mm_storeu_ps(s + r * ld_s, r % 4 == 0   ? _mm512_castps512_ps128(out[r / 4])
                                        : r % 4 == 1 ? _mm512_extractf32x4_ps(out[r / 4], 1)
                                        : r % 4 == 2 ? _mm512_extractf32x4_ps(out[r / 4], 2)
                                                     : _mm512_extractf32x4_ps(out[r / 4], 3));
        return;
    }
    if (nk_valid == 2 * np && np == 4) { /* a row's 8 scores: a 256-bit half */
        for (int r = 0; r < nr; r++)
            _mm256_storeu_ps(s + r * ld_s, r % 2 == 0 ? _mm512_castps512_ps256(out[r / 2])
                                                      : _mm512_extractf32x8_ps(out[r / 2], 1));
        return;
    }
    float o[32];
    for (int v = 0; v < na / 8; v++)
        _mm512_storeu_ps(o + 16 * v, out[v]);
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < 2 * np && j < nk_valid; j++)
            s[r * ld_s + j] = o[2 * (r * np + j / 2) + j % 2];
}

/* All nk keys for nr rows (tiles of 2 np keys). */
static KS_ALWAYS_INLINE void score_rows(int kind, int nr, int np, const float *q, int64_t ld_q, const void *k, int64_t ld_k, int nk, int64_t n, float scale, float *s,
                                        int64_t ld_s, const void *pf) {
    for (int j = 0; j < nk; j += 2 * np)
        score_tile(kind, nr, np, q, ld_q, kv_at(kind, k, j * ld_k), ld_k, KS_MIN(nk - j, 2 * np), n,
                   scale, s + j, ld_s, pf ? kv_at(kind, pf, j * ld_k) : NULL);
}

static KS_ALWAYS_INLINE void scores(int kind, const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    /* pf's rows are asked for by the first row tile's pass over the keys */
    int r = 0;
    for (; r + 8 <= nq; r += 8)
        score_rows(kind, 8, 2, q + r * ld_q, ld_q, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
    if (nq - r >= 4) {
        score_rows(kind, 4, 4, q + r * ld_q, ld_q, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
        r += 4;
    }
    if (nq - r >= 2) {
        score_rows(kind, 2, 4, q + r * ld_q, ld_q, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
        r += 2;
    }
    if (r < nq)
        score_rows(kind, 1, 4, q + r * ld_q, ld_q, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
}

static void attn_scores_f32_avx512(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                   int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_F32, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

static void attn_scores_f16_avx512(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                   int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_F16, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

static void attn_scores_q8_0_avx512(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                    int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_Q8, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

void ks_attn_scores_avx512_register(ks_kernels *k) {
    k->attn_scores[KS_TYPE_F32] = attn_scores_f32_avx512;
    k->attn_scores[KS_TYPE_F16] = attn_scores_f16_avx512;
    k->attn_scores[KS_TYPE_Q8_0] = attn_scores_q8_0_avx512;
}
