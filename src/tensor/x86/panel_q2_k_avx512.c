/* panel_q2_k_avx512.c — Q2_K weights in 16-row panels (kernels.h, ks_panel_kernels) on
 * 512-bit VNNI: the decode dot products of one to four tokens.
 *
 * Owns: the Q2_K panel GEMV for AVX-512 VNNI and ks_panel_q2_k_avx512_register() (the
 * repacker, the activations' terms and a panel row to floats are the reference's,
 * panel_ref.c, which also gives the layout).
 *
 * Per group of 16 codes of a panel super-block: its 64-byte chunk of 2-bit fields gives
 * four vectors of four codes a row (a shift and an and each); per token, four vpdpbusd
 * with four activation bytes broadcast leave the 16 rows' exact sums in the lanes, and one
 * vpdpwssd by the rows' 4-bit scales (widened from one 16-byte load) adds them into the
 * super-block's int32 sum: the sums fit in int16 (ks_panel_group16). Against a
 * vpmulld and an add, alternated on the Zen 4 VM (bench_kernels --type q2_k, one thread,
 * hot in L2; the runs where the machine was fast): one token 19.8-20.9 -> 21.7-21.8 GB/s,
 * four 33.5 -> 36.1-36.2; decode of a Qwen3-0.6B Q2_K file token against token (kvserve
 * bench -p 0 -n 256 -r 3, two threads): +5.9% and +5.3%. The mins term takes the rows'
 * mins in int16 pairs of groups against the token's Q8_K sums in pairs: eight vpdpwssd a
 * super-block. Then two
 * conversions and two FMAs serve all 16 rows. Every step is the reference's for each
 * lane, so results match it bit for bit for any number of tokens a call. The walk is the
 * Q6_K GEMV's (panel_q6_k_avx512.c).
 *
 * Registered for the AVX-512 set (and so the "amx" one, whose tiles have no Q2_K). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>

#define ROWS KS_PANEL_ROWS
#define GROUPS (KS_QK_K / 16)
#define SB_BYTES (ROWS * sizeof(ks_block_q2_k)) /* 1344 */
#define CODES_AT (GROUPS * ROWS)
#define D_AT (CODES_AT + GROUPS * 64)
#define DMIN_AT (D_AT + ROWS * sizeof(ks_fp16))

/* The 16 rows' bytes 16 g .. 16 g + 15 of the scales (group g) as int32 lanes. */
static KS_ALWAYS_INLINE __m512i group_bytes(const uint8_t *blk, int g) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 16 * g)));
}

static KS_ALWAYS_INLINE void gemv_nt(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                     size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                     const int np, int64_t n, float *const y[2], size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low2 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi32(15);
    const float *da[KS_VEC_DOT_ROWS];
    const int32_t *pairs[KS_VEC_DOT_ROWS];
    __m512 acc[2][KS_VEC_DOT_ROWS], accm[2][KS_VEC_DOT_ROWS];
    for (int t = 0; t < nt; t++) {
        da[t] = (const float *)(pk + (size_t)t * pk_stride);
        pairs[t] = (const int32_t *)(da[t] + nsb);
        for (int j = 0; j < np; j++)
            acc[j][t] = accm[j][t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nsb; b++) {
        for (int j = 0; j < np; j++) {
            const uint8_t *blk = (const uint8_t *)panels[j] + (size_t)b * SB_BYTES;
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            for (int g = 0; g < GROUPS; g++) {
                const size_t at = (size_t)b * SB_BYTES + (size_t)g * (SB_BYTES / GROUPS) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + SB_BYTES / GROUPS, ask);
                const __m512i sc = _mm512_and_si512(group_bytes(blk, g), m4);
                const __m512i low = _mm512_loadu_si512(blk + CODES_AT + (size_t)g * 64);
                __m512i v[4];
                for (int k = 0; k < 4; k++)
                    v[k] = _mm512_and_si512(_mm512_srli_epi16(low, 2 * k), low2);
                ks_panel_group16(a, a_stride, b, g, v, sc, NULL, (size_t)(b * GROUPS + g), nt, sumi, true);
            }
            /* the rows' mins of groups 2i and 2i + 1 as an int16 pair per lane */
            __m512i mp[8];
            for (int i = 0; i < 8; i++)
                mp[i] = _mm512_or_si512(_mm512_srli_epi32(group_bytes(blk, 2 * i), 4),
                                        _mm512_slli_epi32(_mm512_srli_epi32(group_bytes(blk, 2 * i + 1), 4), 16));
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + D_AT)));
            const __m512 dmw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + DMIN_AT)));
            __m512i summ[KS_VEC_DOT_ROWS];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const int32_t *sp = pairs[t] + (size_t)b * 8;
                __m512i m0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[0], _mm512_set1_epi32(sp[0]));
                __m512i m1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[1], _mm512_set1_epi32(sp[1]));
                for (int i = 2; i < 8; i += 2) {
                    m0 = _mm512_dpwssd_epi32(m0, mp[i], _mm512_set1_epi32(sp[i]));
                    m1 = _mm512_dpwssd_epi32(m1, mp[i + 1], _mm512_set1_epi32(sp[i + 1]));
                }
                summ[t] = _mm512_add_epi32(m0, m1);
            }
            ks_panel_close_superblock_mins(acc[j], accm[j], dw, dmw, da, b, sumi, summ, nt);
        }
    }
    ks_panel_store_mins(y, ldy, acc, accm, np, nt);
}

KS_PANEL_GEMV_ENTRY(q2_k_gemv, gemv_nt)

void ks_panel_q2_k_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q2_K];
    ks_panel_ref(KS_TYPE_Q2_K, p);
    p->gemv = q2_k_gemv;
}
