/* panel_q3_k_avx512.c — Q3_K weights in 16-row panels (kernels.h, ks_panel_kernels) on
 * 512-bit VNNI: the decode dot products of one to four tokens.
 *
 * Owns: the Q3_K panel GEMV for AVX-512 VNNI and ks_panel_q3_k_avx512_register() (the
 * repacker, the activations' terms and a panel row to floats are the reference's,
 * panel_ref.c, which also gives the layout).
 *
 * Per group of 16 codes of a panel super-block: its 64-byte chunk of 2-bit fields gives
 * four vectors of four codes a row (a shift and an and each), and its four 64-bit words
 * put in the third bits (one masked byte add each, AVX-512BW), for unsigned codes 0..7;
 * per token, four vpdpbusd with four activation bytes broadcast, from the token's -4 *
 * (the group's activation sum), leave the 16 rows' exact sums of (q - 4) a in the lanes.
 * Those fit in int16 (16 x 4 x 128 at most), so one vpdpwssd by the rows' scales adds
 * them into the super-block's int32 sum (ks_panel_group16): the scales are decoded
 * once a super-block, all 16 groups of the 16 rows as bytes from their three scale words
 * (decode_scales), and one vpshufb a group puts each row's into the high byte of its
 * dword's low int16, 256 x the scale, leaving the high int16 0 for the sum's sign; the
 * super-block's sums, 256 x the reference's (at most 2^30), meet d / 256. Then one
 * conversion and one FMA serve all 16 rows. Every product is the reference's for each
 * lane, so results match it bit for bit for any number of tokens a call. Against decoding
 * each group's scales from the words as int32 lanes (seven operations a group) and a
 * vpmulld and an add per token, alternated on the Zen 4 VM (bench_kernels --type q3_k, one
 * thread, hot in L2, runs whose row kernel read the same): one token 24.0 -> 29.4 GB/s,
 * four 53 -> 60; decode of a Qwen3-0.6B Q3_K_M file token against token (kvserve bench
 * -p 0 -n 256 -r 3, two threads): +4.0% and +5.1%. The walk (two panels side by side, a
 * sixteenth of a super-block asked for ahead per group) is the Q6_K GEMV's
 * (panel_q6_k_avx512.c).
 *
 * Registered for the AVX-512 set (and so the "amx" one, whose tiles have no Q3_K). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define GROUPS (KS_QK_K / 16)
#define SB_BYTES (ROWS * sizeof(ks_block_q3_k)) /* 1760 */
#define GROUPS_AT (3 * ROWS * 4)
#define GROUP_BYTES (64 + 32)
#define D_AT (GROUPS_AT + GROUPS * GROUP_BYTES)

/* The 64-bit word at p as a byte mask. */
static KS_ALWAYS_INLINE __mmask64 mask_at(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return _cvtu64_mask64(w);
}

/* The 16 rows' sc_g - 32 for the super-block's 16 groups as bytes, decoded side by side
 * from the three scale words (ks_q3_k_scale: the low four bits from byte g % 8, low nibble
 * for g < 8, high above; bits 4-5 from byte 8 + g % 4, bits 2 (g / 4) on): vector q holds
 * group 4q + k in byte k of row r's dword. */
static KS_ALWAYS_INLINE void decode_scales(const __m512i w[3], __m512i s[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30), bias = _mm512_set1_epi8(32);
    const __m512i lo[4] = {_mm512_and_si512(w[0], low4), _mm512_and_si512(w[1], low4),
                           _mm512_and_si512(_mm512_srli_epi16(w[0], 4), low4),
                           _mm512_and_si512(_mm512_srli_epi16(w[1], 4), low4)};
    const __m512i hi[4] = {_mm512_and_si512(_mm512_slli_epi16(w[2], 4), bits45),
                           _mm512_and_si512(_mm512_slli_epi16(w[2], 2), bits45), _mm512_and_si512(w[2], bits45),
                           _mm512_and_si512(_mm512_srli_epi16(w[2], 2), bits45)};
    for (int q = 0; q < 4; q++)
        s[q] = _mm512_sub_epi8(_mm512_or_si512(lo[q], hi[q]), bias);
}

/* vpshufb control: byte k of each dword into its byte 1, the others 0 (a signed byte
 * becomes 256 x itself in the dword's low int16, 0 in its high one). */
static inline __m512i byte_to_word_high(int k) {
    const int c = (int)(0x80800080u | (unsigned)k << 8);
    return _mm512_setr_epi32(c, c + 0x400, c + 0x800, c + 0xc00, c, c + 0x400, c + 0x800, c + 0xc00, c, c + 0x400,
                             c + 0x800, c + 0xc00, c, c + 0x400, c + 0x800, c + 0xc00);
}

static KS_ALWAYS_INLINE void gemv_nt(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                     size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                     const int np, int64_t n, float *const y[2], size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low2 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i pick[4] = {byte_to_word_high(0), byte_to_word_high(1), byte_to_word_high(2), byte_to_word_high(3)};
    const float *da[KS_VEC_DOT_ROWS];
    const int32_t *corr[KS_VEC_DOT_ROWS];
    __m512 acc[2][KS_VEC_DOT_ROWS];
    for (int t = 0; t < nt; t++) {
        da[t] = (const float *)(pk + (size_t)t * pk_stride);
        corr[t] = (const int32_t *)(da[t] + nsb);
        for (int j = 0; j < np; j++)
            acc[j][t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nsb; b++) {
        for (int j = 0; j < np; j++) {
            const uint8_t *blk = (const uint8_t *)panels[j] + (size_t)b * SB_BYTES;
            /* the rows' scale words: bytes 0..3, 4..7, 8..11 of each row's scales */
            const __m512i w[3] = {_mm512_loadu_si512(blk), _mm512_loadu_si512(blk + 64), _mm512_loadu_si512(blk + 128)};
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            __m512i s8[4];
            decode_scales(w, s8);
            for (int g = 0; g < GROUPS; g++) {
                const size_t at = (size_t)b * SB_BYTES + (size_t)g * (SB_BYTES / GROUPS) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + SB_BYTES / GROUPS, ask);
                const uint8_t *grp = blk + GROUPS_AT + (size_t)g * GROUP_BYTES;
                const __m512i low = _mm512_loadu_si512(grp);
                __m512i v[4];
                for (int k = 0; k < 4; k++) {
                    v[k] = _mm512_and_si512(_mm512_srli_epi16(low, 2 * k), low2);
                    v[k] = _mm512_mask_add_epi8(v[k], mask_at(grp + 64 + 8 * k), v[k], four);
                }
                ks_panel_group16(a, a_stride, b, g, v, _mm512_shuffle_epi8(s8[g / 4], pick[g % 4]), corr,
                                 (size_t)(b * GROUPS + g), nt, sumi, true);
            }
            /* the sums are 256 x the reference's; with d / 256 (exact, as is every scaling
             * by a power of two here) each product is the reference's, bit for bit */
            const __m512 dw = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + D_AT))),
                                            _mm512_set1_ps(1.0f / 256.0f));
            ks_panel_close_superblock(acc[j], dw, da, b, sumi, nt);
        }
    }
    ks_panel_store(y, ldy, acc, np, nt);
}

KS_PANEL_GEMV_ENTRY(q3_k_gemv, gemv_nt)

void ks_panel_q3_k_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q3_K];
    ks_panel_ref(KS_TYPE_Q3_K, p);
    p->gemv = q3_k_gemv;
}
