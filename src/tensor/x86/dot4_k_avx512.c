/* dot4_k_avx512.c — Q4_K, Q5_K and Q6_K weight rows against four Q8_K activation rows
 * packed for 512-bit vectors: the 4-row kernels of decode steps with several sequences
 * (and of prefill on CPUs without AMX), as dot4_q8_0_avx512.c is for Q8_0.
 *
 * Owns: the packed layout, its packer, the kernels, ks_dot4_k_avx512_register().
 *
 * vec_dot_4 (simd_x86.h, ks_x86_dot_q4_k/q5_k) decodes each super-block's codes and scales once
 * and then spends four 256-bit operations per row on every 64 elements (two maddubs, two
 * vpdpwssd), plus a mins term and the float steps per row: at four rows it is bound by
 * them. Packed, the two rows of a pair sit in the halves of 512-bit vectors and the
 * weights' codes and scales, decoded once, fill both halves, so each operation serves two
 * rows.
 *
 * Packed layout of 4 rows of n elements, nsb = n / 256 super-blocks:
 *   codes  [nsb][2 pairs][8 chunks][64 bytes]: chunk 2g + h of pair p holds row 2p's
 *          codes [64g + 32h, 64g + 32h + 32) then row 2p+1's
 *   sums   [nsb][2 pairs][16 int16]: row 2p's 8 sub-block sums S_j = bsums[2j] +
 *          bsums[2j+1] (int16, as the vector kernel adds them), then row 2p+1's
 *   d      [nsb][4 floats]: the rows' scales
 *
 * Q6_K packs the same codes, its own sums and the same d (see dot4_q6_k_run):
 *   bsums  [nsb][2 pairs][32 int16]: row 2p's 16 Q8_K bsums, then row 2p+1's
 *
 * Exactness, and agreement with vec_dot (ks_x86_dot_q4_k/q5_k with q45_k_sums, vpdpwssd)
 * bit for bit: each half of a 512-bit integer vector takes the operations vec_dot takes on
 * its 256-bit one for that row (Q5_K's fifth bits included), so the int32 lanes (sumi) and
 * the mins term (4 lanes) are the same; the float steps per super-block are vec_dot's, d *
 * da and dmin * da rounded once, then acc += (d da) sumi (8 lanes) in super-block order,
 * and for the mins
 *   Q4_K  acc_m += -(dmin da) mins (4 lanes); the row ends as hsum(acc) + hsum(acc_m)
 *   Q5_K  summs += -(dmin da) (the 4 lanes' exact integer sum), one scalar FMA; the row
 *         ends as hsum(acc) + summs
 * and for Q6_K (ks_x86_dot_q6_k_rows, ks_x86_q6_k_sums): sumi starts at -32 times the
 * madd of the bsums with the 16 scales, takes each chunk's maddubs and vpdpwssd with its
 * two scales, and acc += (d da) sumi, d da one float product; the row ends as hsum(acc). */
#include "core/ks_core.h"
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAIRS (KS_VEC_DOT_ROWS / 2)
#define CHUNKS 8          /* of 32 codes a row, per super-block */
#define CHUNK_BYTES 64    /* one chunk of both rows of a pair */
#define SUMS_BYTES 32     /* 8 int16 sums of both rows of a pair */

static size_t codes_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * PAIRS * CHUNKS * CHUNK_BYTES; }
static size_t sums_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * PAIRS * SUMS_BYTES; }

#define BSUMS_BYTES 64 /* Q6_K: 16 int16 bsums of both rows of a pair */
static size_t bsums_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * PAIRS * BSUMS_BYTES; }

static size_t dot4_q4_k_bytes(int64_t n) {
    return codes_bytes(n) + sums_bytes(n) + (size_t)(n / KS_QK_K) * KS_VEC_DOT_ROWS * sizeof(float);
}

/* The four rows packed: codes, then per row of a pair either its 8 sub-block sums S_j
 * (Q4_K, Q5_K; sums_bytes) or its 16 Q8_K bsums (all_bsums, Q6_K; bsums_bytes), then d. */
static KS_ALWAYS_INLINE void pack_k(bool all_bsums, const void *const rows[KS_VEC_DOT_ROWS], int64_t n,
                                    void *packed) {
    const int64_t nsb = n / KS_QK_K;
    const int per_row = all_bsums ? 16 : 8;
    uint8_t *codes = packed;
    int16_t *sums = (int16_t *)(codes + codes_bytes(n));
    float *ds = (float *)((uint8_t *)sums + (all_bsums ? bsums_bytes(n) : sums_bytes(n)));
    for (int64_t b = 0; b < nsb; b++) {
        for (int r = 0; r < KS_VEC_DOT_ROWS; r++) {
            const ks_block_q8_k *y = rows[r] ? (const ks_block_q8_k *)rows[r] + b : NULL;
            uint8_t *c = codes + ((size_t)b * PAIRS + (size_t)(r / 2)) * CHUNKS * CHUNK_BYTES + (size_t)(r % 2) * 32;
            for (int k = 0; k < CHUNKS; k++) {
                if (y)
                    memcpy(c + (size_t)k * CHUNK_BYTES, y->qs + 32 * k, 32);
                else
                    memset(c + (size_t)k * CHUNK_BYTES, 0, 32);
            }
            int16_t *sr = sums + ((size_t)b * PAIRS + (size_t)(r / 2)) * 2 * (size_t)per_row + (size_t)(r % 2) * (size_t)per_row;
            for (int j = 0; j < per_row; j++)
                sr[j] = !y ? 0 : all_bsums ? y->bsums[j] : (int16_t)(y->bsums[2 * j] + y->bsums[2 * j + 1]);
            ds[(size_t)b * KS_VEC_DOT_ROWS + (size_t)r] = y ? y->d : 0.0f;
        }
    }
}

static void dot4_q4_k_pack(const void *const rows[KS_VEC_DOT_ROWS], int64_t n, void *packed) {
    pack_k(false, rows, n, packed);
}

/* Q4_K (q5 false) or Q5_K rows: both blocks start with d, dmin and the 12 packed scales;
 * the codes (and Q5_K's fifth bits) at the offsets given. */
static KS_ALWAYS_INLINE void dot4_q45_k(bool q5, size_t block_bytes, size_t qs_at, size_t qh_at, const void *w,
                                        const void *packed, int64_t n, float *s, const void *pf) {
    const int64_t nsb = n / KS_QK_K;
    const uint8_t *codes = packed;
    const int16_t *sums = (const int16_t *)(codes + codes_bytes(n));
    const float *ds = (const float *)((const uint8_t *)sums + sums_bytes(n));
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    /* lanes of (d da_2p, d da_2p+1, -(dmin da_2p), -(dmin da_2p+1)) for the accumulators */
    const __m512i d_lanes = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m256i m_lanes = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc[PAIRS];
    __m256 acc_m[PAIRS];
    __m128 summs[PAIRS]; /* Q5_K: lanes 0, 1 the pair's rows */
    for (int p = 0; p < PAIRS; p++) {
        acc[p] = _mm512_setzero_ps();
        acc_m[p] = _mm256_setzero_ps();
        summs[p] = _mm_setzero_ps();
    }
    for (int64_t b = 0; b < nsb; b++) {
        const uint8_t *blk = (const uint8_t *)w + (size_t)b * block_bytes;
        ks_x86_prefetch_share(&pf, 1, (size_t)b * block_bytes, (size_t)(b + 1) * block_bytes);
        const __m128i scmn = ks_x86_k_scales_mins(blk + offsetof(ks_block_q4_k, scales));
        const __m512i sc16 = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(scmn));
        const __m256i mn16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_unpackhi_epi64(scmn, scmn)));
        __m512i sumi[PAIRS] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        const uint8_t *c = codes + (size_t)b * PAIRS * CHUNKS * CHUNK_BYTES;
        __m512i hbits = q5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + qh_at)))
                           : _mm512_setzero_si512();
        for (int g = 0; g < KS_QK_K / 64; g++) { /* sub-blocks 2g (low nibbles), 2g+1 (high) */
            const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + qs_at + 32 * g)));
            __m512i lo = _mm512_and_si512(q, low4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
            if (q5) { /* bit 2g of qh[l] is bit 4 of lo[l], bit 2g+1 that of hi[l] */
                const __m512i one = _mm512_set1_epi8(1);
                lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(hbits, one), 4));
                hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hbits, 1), one), 4));
                hbits = _mm512_srli_epi16(hbits, 2);
            }
            const __m512i slo = _mm512_shuffle_epi8(sc16, _mm512_set1_epi16((short)((4 * g + 1) << 8 | 4 * g)));
            const __m512i shi = _mm512_shuffle_epi8(sc16, _mm512_set1_epi16((short)((4 * g + 3) << 8 | (4 * g + 2))));
            for (int p = 0; p < PAIRS; p++) {
                const uint8_t *cp = c + ((size_t)p * CHUNKS + 2 * (size_t)g) * CHUNK_BYTES;
                const __m512i plo = _mm512_maddubs_epi16(lo, _mm512_loadu_si512(cp));
                const __m512i phi = _mm512_maddubs_epi16(hi, _mm512_loadu_si512(cp + CHUNK_BYTES));
                sumi[p] = _mm512_dpwssd_epi32(sumi[p], plo, slo);
                sumi[p] = _mm512_dpwssd_epi32(sumi[p], phi, shi);
            }
        }
        uint32_t both;
        memcpy(&both, blk, 4);
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)both)); /* d, dmin, 0, 0 */
        const __m128 dd = _mm_unpacklo_ps(dm, dm);                      /* d, d, dmin, dmin */
        for (int p = 0; p < PAIRS; p++) {
            const float *da = ds + (size_t)b * KS_VEC_DOT_ROWS + 2 * (size_t)p;
            __m128 f = _mm_mul_ps(dd, _mm_setr_ps(da[0], da[1], da[0], da[1]));
            f = _mm_xor_ps(f, _mm_setr_ps(0.0f, 0.0f, -0.0f, -0.0f));
            const __m512 f16 = _mm512_castps128_ps512(f);
            acc[p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(d_lanes, f16), _mm512_cvtepi32_ps(sumi[p]), acc[p]);
            const __m256i mins = _mm256_madd_epi16(
                mn16, _mm256_loadu_si256((const __m256i *)(sums + ((size_t)b * PAIRS + (size_t)p) * (SUMS_BYTES / 2))));
            if (q5) { /* each row's 4 lanes to one integer, lanes 0 and 1 */
                __m256i m = _mm256_add_epi32(mins, _mm256_unpackhi_epi64(mins, mins));
                m = _mm256_add_epi32(m, _mm256_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
                const __m128i m2 = _mm_unpacklo_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
                summs[p] = _mm_fmadd_ps(_mm_movehl_ps(f, f), _mm_cvtepi32_ps(m2), summs[p]);
            } else {
                acc_m[p] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(f), m_lanes),
                                           _mm256_cvtepi32_ps(mins), acc_m[p]);
            }
        }
    }
    /* the four rows' sums side by side (vec_dot's trees, simd_x86.h), then their mins
     * terms added as vec_dot adds them */
    const __m128 rows = ks_x86_rows4_sums(ks_x86_hsum_ps_rows4(acc[0], acc[1]));
    __m128 mins;
    if (q5)
        mins = _mm_movelh_ps(summs[0], summs[1]);
    else
        mins = ks_x86_rows4_sums(
            ks_x86_hsum_ps128_rows4(_mm512_insertf32x8(_mm512_castps256_ps512(acc_m[0]), acc_m[1], 1)));
    _mm_storeu_ps(s, _mm_add_ps(rows, mins));
}

static void dot4_q4_k_run(const void *w, const void *packed, int64_t n, float *s, const void *pf) {
    dot4_q45_k(false, sizeof(ks_block_q4_k), offsetof(ks_block_q4_k, qs), 0, w, packed, n, s, pf);
}

static void dot4_q5_k_run(const void *w, const void *packed, int64_t n, float *s, const void *pf) {
    dot4_q45_k(true, sizeof(ks_block_q5_k), offsetof(ks_block_q5_k, qs), offsetof(ks_block_q5_k, qh), w, packed, n, s,
               pf);
}

/* ---- Q6_K ------------------------------------------------------------------------------ */

static size_t dot4_q6_k_bytes(int64_t n) {
    return codes_bytes(n) + bsums_bytes(n) + (size_t)(n / KS_QK_K) * KS_VEC_DOT_ROWS * sizeof(float);
}

static void dot4_q6_k_pack(const void *const rows[KS_VEC_DOT_ROWS], int64_t n, void *packed) {
    pack_k(true, rows, n, packed);
}

/* vpternlog's table of (a & c) | b (a, b, c: 0xf0, 0xcc, 0xaa), for codes (a, c = low4)
 * with their bits 4 and 5 (b); a constant expression, as the instruction's immediate */
enum { A_AND_C_OR_B = (0xf0 & 0xaa) | 0xcc };

/* Each half of a 512-bit vector takes ks_x86_q6_k_sums's operations for its row: the
 * codes, decoded once, fill both halves (bitwise selects instead of and + or, the same
 * bytes), the scales of chunk c are sc[2c] in the low 128 bits of a half, sc[2c + 1] in
 * the high (one word permutation of the 16 scales held in both halves). */
static void dot4_q6_k_run(const void *w, const void *packed, int64_t n, float *s, const void *pf) {
    const int64_t nsb = n / KS_QK_K;
    const uint8_t *codes = packed;
    const int16_t *bsums = (const int16_t *)(codes + codes_bytes(n));
    const float *ds = (const float *)((const uint8_t *)bsums + bsums_bytes(n));
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
    /* lanes of the d da of rows 2p, 2p + 1 (of 4 products: pair p at 2p) */
    const __m512i d_lanes[PAIRS] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                    _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)};
    __m512 acc[PAIRS] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t b = 0; b < nsb; b++) {
        const ks_block_q6_k *x = (const ks_block_q6_k *)w + b;
        ks_x86_prefetch_share(&pf, 1, (size_t)b * sizeof *x, (size_t)(b + 1) * sizeof *x);
        /* the 16 scales as int16, in both 256-bit halves */
        const __m512i sc16 = _mm512_cvtepi8_epi16(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x->scales)));
        __m512i sumi[PAIRS];
        for (int p = 0; p < PAIRS; p++) {
            const __m512i corr = _mm512_madd_epi16(
                _mm512_loadu_si512(bsums + ((size_t)b * PAIRS + (size_t)p) * (BSUMS_BYTES / 2)), sc16);
            sumi[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(corr, 5));
        }
        const uint8_t *cb = codes + (size_t)b * PAIRS * CHUNKS * CHUNK_BYTES;
        for (int h = 0; h < 2; h++) { /* halves of 128 elements */
            const __m512i ql0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->ql + 64 * h)));
            const __m512i ql1 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32)));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
            __m512i q[4];
            q[0] = _mm512_ternarylogic_epi32(ql0, _mm512_and_si512(_mm512_slli_epi16(qh, 4), bits45), low4, A_AND_C_OR_B);
            q[1] = _mm512_ternarylogic_epi32(ql1, _mm512_and_si512(_mm512_slli_epi16(qh, 2), bits45), low4, A_AND_C_OR_B);
            q[2] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql0, 4), _mm512_and_si512(qh, bits45), low4,
                                             A_AND_C_OR_B);
            q[3] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(ql1, 4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), bits45),
                                             low4, A_AND_C_OR_B);
            for (int k = 0; k < 4; k++) {
                const int c = 4 * h + k;
                /* words 0-7 of each half: scale 2c; words 8-15: scale 2c + 1 */
                const __m512i idx = _mm512_set_epi16(2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                                                     2 * c + 1, 2 * c + 1, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c,
                                                     2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                                                     2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c, 2 * c, 2 * c,
                                                     2 * c, 2 * c, 2 * c, 2 * c, 2 * c);
                const __m512i sc = _mm512_permutexvar_epi16(idx, sc16);
                for (int p = 0; p < PAIRS; p++) {
                    const __m512i a = _mm512_loadu_si512(cb + ((size_t)p * CHUNKS + (size_t)c) * CHUNK_BYTES);
                    sumi[p] = _mm512_dpwssd_epi32(sumi[p], _mm512_maddubs_epi16(q[k], a), sc);
                }
            }
        }
        /* d da of the four rows, each one float product as vec_dot's */
        const __m512 d4 = _mm512_castps128_ps512(
            _mm_mul_ps(_mm_set1_ps(ks_x86_fp16(x->d)), _mm_loadu_ps(ds + (size_t)b * KS_VEC_DOT_ROWS)));
        for (int p = 0; p < PAIRS; p++)
            acc[p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(d_lanes[p], d4), _mm512_cvtepi32_ps(sumi[p]), acc[p]);
    }
    _mm_storeu_ps(s, ks_x86_rows4_sums(ks_x86_hsum_ps_rows4(acc[0], acc[1])));
}

void ks_dot4_k_avx512_register(ks_kernels *k) {
    k->vec_dot_4_packed[KS_TYPE_Q4_K] = (ks_dot4_packed){dot4_q4_k_bytes, dot4_q4_k_pack, dot4_q4_k_run};
    /* the same packed rows: Q5_K's mins use the same sums */
    k->vec_dot_4_packed[KS_TYPE_Q5_K] = (ks_dot4_packed){dot4_q4_k_bytes, dot4_q4_k_pack, dot4_q5_k_run};
    k->vec_dot_4_packed[KS_TYPE_Q6_K] = (ks_dot4_packed){dot4_q6_k_bytes, dot4_q6_k_pack, dot4_q6_k_run};
}
