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
 * (the group's activation sum), leave the 16 rows' exact sums of (q - 4) a in the lanes,
 * and one vpmulld by the rows' scales (decoded for all 16 rows from their three scale
 * words, loaded once a super-block) adds them into the super-block's int32 sum; then one
 * conversion and one FMA serve all 16 rows. Every step is the reference's for each lane,
 * so results match it bit for bit for any number of tokens a call. The walk (two panels
 * side by side, a sixteenth of a super-block asked for ahead per group) is the Q6_K
 * GEMV's (panel_q6_k_avx512.c).
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

static KS_ALWAYS_INLINE void gemv_nt(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                     size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                     const int np, int64_t n, float *const y[2], size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low2 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
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
            /* the rows' scale words: bytes 0..3, 4..7, 8..11 of each row's scales */
            const __m512i w[3] = {_mm512_loadu_si512(blk), _mm512_loadu_si512(blk + 64), _mm512_loadu_si512(blk + 128)};
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            for (int g = 0; g < GROUPS; g++) {
                const size_t at = (size_t)b * SB_BYTES + (size_t)g * (SB_BYTES / GROUPS) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + SB_BYTES / GROUPS, ask);
                /* the 16 rows' sc_g - 32 (ks_q3_k_scale): the low four bits from byte g % 8
                 * (low nibble for g < 8, high above), bits 4-5 from byte 8 + g % 4 */
                const int lo_shift = 8 * (g % 4) + (g >= 8 ? 4 : 0), hi_shift = 8 * (g % 4) + 2 * (g / 4);
                const __m512i sc = _mm512_sub_epi32(
                    _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w[(g % 8) / 4], lo_shift), m4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w[2], hi_shift), m2), 4)),
                    bias);
                const uint8_t *grp = blk + GROUPS_AT + (size_t)g * GROUP_BYTES;
                const __m512i low = _mm512_loadu_si512(grp);
                __m512i v[4];
                for (int k = 0; k < 4; k++) {
                    v[k] = _mm512_and_si512(_mm512_srli_epi16(low, 2 * k), low2);
                    v[k] = _mm512_mask_add_epi8(v[k], mask_at(grp + 64 + 8 * k), v[k], four);
                }
                ks_panel_group16(a, a_stride, b, g, v, sc, corr, (size_t)(b * GROUPS + g), nt, sumi);
            }
            ks_panel_close_superblock(acc[j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + D_AT))), da, b,
                                      sumi, nt);
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
