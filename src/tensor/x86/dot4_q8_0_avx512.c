/* dot4_q8_0_avx512.c — Q8_0 weight rows against four Q8_0 activation rows packed for
 * 512-bit VNNI: the 4-row kernel of decode steps with several sequences (and of short
 * prompts), where each weight row meets the same four activation rows.
 *
 * Owns: the packed layout, its packer and kernel, ks_dot4_q8_0_avx512_register().
 *
 * The rows' own layout (34-byte blocks, signed codes) costs vec_dot_4 five vector
 * operations per row and block: the sign trick, the dot product, the conversion, a lane
 * broadcast of the scale and the FMA, each on 8 lanes. Packed once per matrix
 * multiplication (a few KiB), two rows share every 512-bit operation, and the sign trick
 * moves to the weights with its correction computed at packing: per block, one
 * permutation and one operation on the weights serve all four rows, then three
 * operations serve each pair.
 *
 * Packed layout of 4 rows of n elements, nb = n / 32 blocks:
 *   codes   [nb][2 pairs][64 bytes]: pair p of block b holds the codes of rows 2p and
 *           2p + 1 in alternate 4-byte groups (row 2p's group g at byte 8g, row 2p+1's at
 *           8g + 4), as they are (signed)
 *   corr    [nb][2 pairs][16 int32]: lane 2g + r: -128 * the sum of row 2p + r's group g
 *   scales  [2 pairs][nb][2 floats]: rows 2p's and 2p+1's d of block b
 *
 * Exactness, and agreement with vec_dot (vec_dot_avx512.c) bit for bit: with the weight
 * codes w in the same alternate groups as unsigned bytes w + 128, vpdpbusd of them and
 * the codes c started from corr gives each lane sum((w + 128) * c) - 128 * sum(c) =
 * sum(c * w) over its group, exactly: the same int32 that vec_dot's sign trick gives in
 * lane g of its own 8. Lane 2g + r then takes vec_dot's float steps for row 2p + r:
 * d = fp32(d_w) * fp32(d_a) rounded once, acc = fma(d, float(sum), acc) block after
 * block; at the end the row's 8 lanes are gathered in order and summed as vec_dot sums
 * them (plus its + 0.0f). */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

#include <immintrin.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAIRS (KS_VEC_DOT_ROWS / 2)
#define PAIR_BYTES 64 /* one block of a pair of rows */

/* codes and corr have the same size: a pair of blocks of 64 bytes, or 16 int32 */
static size_t packed_codes_bytes(int64_t n) { return (size_t)(n / KS_QK8_0) * PAIRS * PAIR_BYTES; }

static size_t dot4_q8_0_bytes(int64_t n) {
    return 2 * packed_codes_bytes(n) + (size_t)(n / KS_QK8_0) * PAIRS * 2 * sizeof(float);
}

/* The 32 codes of a row's block, or 0s for a missing row. */
static inline __m256i row_codes(const ks_block_q8_0 *b) {
    return b ? _mm256_loadu_si256((const __m256i *)b->qs) : _mm256_setzero_si256();
}

static void dot4_q8_0_pack(const void *const rows[KS_VEC_DOT_ROWS], int64_t n, void *packed) {
    const int64_t nb = n / KS_QK8_0;
    uint8_t *codes = packed, *corr = codes + packed_codes_bytes(n);
    float *scales = (float *)(corr + packed_codes_bytes(n));
    /* dword k of the result: row 2p's dword k / 2 (even k), row 2p+1's (odd k) */
    const __m512i interleave = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ones = _mm512_set1_epi8(1);
    for (int p = 0; p < PAIRS; p++) {
        const ks_block_q8_0 *r0 = rows[2 * p], *r1 = rows[2 * p + 1];
        for (int64_t b = 0; b < nb; b++) {
            const __m512i lo = _mm512_castsi256_si512(row_codes(r0 ? r0 + b : NULL));
            const __m512i hi = _mm512_castsi256_si512(row_codes(r1 ? r1 + b : NULL));
            const __m512i c = _mm512_permutex2var_epi32(lo, interleave, hi);
            const size_t at = ((size_t)b * PAIRS + (size_t)p) * PAIR_BYTES;
            _mm512_storeu_si512(codes + at, c);
            /* -128 * each group's sum: 1 * c summed by 4, shifted, negated */
            const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, c);
            _mm512_storeu_si512(corr + at, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 7)));
            float *s = scales + ((size_t)p * (size_t)nb + (size_t)b) * 2;
            s[0] = r0 ? ks_x86_fp16(r0[b].d) : 0.0f;
            s[1] = r1 ? ks_x86_fp16(r1[b].d) : 0.0f;
        }
    }
}

static void dot4_q8_0_run(const void *w, const void *packed, int64_t n, float *s, const void *pf) {
    const int64_t nb = n / KS_QK8_0;
    const ks_block_q8_0 *x = w;
    const uint8_t *codes = packed, *corr = codes + packed_codes_bytes(n);
    const float *scales = (const float *)(corr + packed_codes_bytes(n));
    /* each weight dword twice, to meet both rows of a pair */
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i c128 = _mm512_set1_epi8((char)0x80);
    __m512 acc[PAIRS] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    /* d of 8 blocks of each pair, lanes (2k, 2k + 1) = block k's (row 2p, row 2p + 1) */
    alignas(64) float d[PAIRS][16];
    for (int64_t ib = 0; ib < nb; ib += 8) {
        const int kn = nb - ib < 8 ? (int)(nb - ib) : 8;
        ks_x86_prefetch_share(&pf, 1, (size_t)ib * sizeof *x, (size_t)(ib + kn) * sizeof *x);
        if (kn == 8) {
            const __m512 dw = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(ks_x86_fp16x8(x + ib, sizeof *x)));
            for (int p = 0; p < PAIRS; p++)
                _mm512_store_ps(d[p], _mm512_mul_ps(dw, _mm512_loadu_ps(scales + ((size_t)p * (size_t)nb + (size_t)ib) * 2)));
        } else {
            for (int k = 0; k < kn; k++) {
                const float dw = ks_x86_fp16(x[ib + k].d);
                for (int p = 0; p < PAIRS; p++)
                    for (int r = 0; r < 2; r++)
                        d[p][2 * k + r] = dw * scales[((size_t)p * (size_t)nb + (size_t)(ib + k)) * 2 + (size_t)r];
            }
        }
        for (int k = 0; k < kn; k++) {
            const int64_t b = ib + k;
            /* the weights as unsigned bytes w + 128, each dword twice */
            const __m512i wu = _mm512_xor_si512(
                _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[b].qs))),
                c128);
            for (int p = 0; p < PAIRS; p++) {
                const size_t at = ((size_t)b * PAIRS + (size_t)p) * PAIR_BYTES;
                const __m512i a = _mm512_loadu_si512(codes + at);
                const __m512 sum = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_loadu_si512(corr + at), wu, a));
                double dd;
                memcpy(&dd, &d[p][2 * k], sizeof dd);
                acc[p] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(dd)), sum, acc[p]);
            }
        }
    }
    /* row 2p's lanes (even) into the low half, in order; row 2p+1's (odd) into the high;
     * the four rows summed side by side as vec_dot sums each (simd_x86.h) */
    const __m512i split = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m128 rows = ks_x86_rows4_sums(
        ks_x86_hsum_ps_rows4(_mm512_permutexvar_ps(split, acc[0]), _mm512_permutexvar_ps(split, acc[1])));
    /* vec_dot adds its (zero) offset sum: + 0.0f turns a -0.0 into +0.0 */
    _mm_storeu_ps(s, _mm_add_ps(rows, _mm_setzero_ps()));
}

void ks_dot4_q8_0_avx512_register(ks_kernels *k) {
    k->vec_dot_4_packed[KS_TYPE_Q8_0] = (ks_dot4_packed){dot4_q8_0_bytes, dot4_q8_0_pack, dot4_q8_0_run};
}
