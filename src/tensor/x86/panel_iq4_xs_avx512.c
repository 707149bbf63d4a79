/* panel_iq4_xs_avx512.c — IQ4_XS weights in 16-row panels (kernels.h, ks_panel_kernels) on
 * 512-bit VNNI: the decode dot products of one to four tokens.
 *
 * Owns: the IQ4_XS panel GEMV for AVX-512 VNNI and ks_panel_iq4_xs_avx512_register() (the
 * repacker, the activations' terms and a panel row to floats are the reference's,
 * panel_ref.c, which also gives the layout).
 *
 * Per super-block of a panel (16 rows x 256 codes, 2176 bytes): the 16 rows' sub-block
 * scales come from their scale words side by side (one 512-bit vector of scales_l, one
 * 256-bit of scales_h, widened), and each 64-byte code chunk gives two vectors of four
 * codes per row, its nibbles, which one vpshufb each turns into table values + 128
 * (unsigned, as vpdpbusd takes them). Per sub-block and token, eight vpdpbusd with four
 * activation bytes broadcast, from the token's -128 * S_j, leave the 16 rows' exact
 * sub-block sums in the lanes; one vpmulld by the rows' scales adds them into the
 * super-block's int32 sum; then one conversion and one FMA serve all 16 rows. Every step is
 * the reference's for each lane, so results match it bit for bit for any number of tokens
 * per call. The walk (two panels side by side as two streams, an eighth of a super-block
 * asked for ahead per sub-block) is the Q4_K GEMV's (panel_k_avx512.c).
 *
 * Registered for the AVX-512 set (and so the "amx" one, whose tiles have no IQ4_XS). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>

#define ROWS KS_PANEL_ROWS
#define SB_BYTES (ROWS * sizeof(ks_block_iq4_xs)) /* 2176 */
#define SH_AT (ROWS * sizeof(ks_fp16))
#define SL_AT (SH_AT + ROWS * sizeof(uint16_t))
#define CODES_AT (SL_AT + ROWS * sizeof(uint32_t))

static KS_ALWAYS_INLINE void gemv_iq4_xs(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                         size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                         const int np, int64_t n, float *const y[2], size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    /* ks_iq4_values + 128 in every 128-bit lane */
    const __m512i table = _mm512_broadcast_i32x4(
        _mm_xor_si128(_mm_loadu_si128((const __m128i *)ks_iq4_values), _mm_set1_epi8((char)0x80)));
    const __m512i m4 = _mm512_set1_epi32(15), m2 = _mm512_set1_epi32(3), bias = _mm512_set1_epi32(32);
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
            const __m512i sl = _mm512_loadu_si512(blk + SL_AT);
            const __m512i sh = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(blk + SH_AT)));
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            for (int sb = 0; sb < 8; sb++) {
                const size_t at = (size_t)b * SB_BYTES + (size_t)sb * (SB_BYTES / 8) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + SB_BYTES / 8, ask);
                /* the 16 rows' ls - 32 of sub-block sb (ks_iq4_xs_scale) */
                const __m512i ls = _mm512_sub_epi32(
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(sl, 4 * sb), m4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(sh, 2 * sb), m2), 4)),
                    bias);
                __m512i v[8];
                const uint8_t *sub = blk + CODES_AT + (size_t)sb * 256;
                for (int h = 0; h < 4; h++) {
                    const __m512i c = _mm512_loadu_si512(sub + (size_t)h * 64);
                    v[h] = _mm512_shuffle_epi8(table, _mm512_and_si512(c, low4));
                    v[h + 4] = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4));
                }
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const uint8_t *q = a + (size_t)t * a_stride + (size_t)b * sizeof(ks_block_q8_k) +
                                       offsetof(ks_block_q8_k, qs) + (size_t)sb * 32;
                    const __m512i isum = ks_panel_dot32(v, q, _mm512_set1_epi32(corr[t][b * 8 + sb]));
                    sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(ls, isum));
                }
            }
            ks_panel_close_superblock(acc[j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)), da, b,
                                      sumi, nt);
        }
    }
    ks_panel_store(y, ldy, acc, np, nt);
}

KS_PANEL_GEMV_ENTRY(iq4_xs_gemv, gemv_iq4_xs)

void ks_panel_iq4_xs_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_IQ4_XS];
    ks_panel_ref(KS_TYPE_IQ4_XS, p);
    p->gemv = iq4_xs_gemv;
}
