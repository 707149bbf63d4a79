/* panel_q6_k_avx512.c — Q6_K weights in 16-row panels (kernels.h, ks_panel_kernels) on
 * 512-bit VNNI: the decode dot products of one to four tokens.
 *
 * Owns: the Q6_K panel repacker and GEMV for AVX-512 VNNI and
 * ks_panel_q6_k_avx512_register() (the activations' terms and a panel row to floats are
 * the reference's, panel_ref.c, which also gives the layout).
 *
 * Per group of 16 codes of a panel super-block: its two 64-byte low chunks and its high
 * chunk widen to four vectors of four 6-bit codes a row (a shift, an and and a ternary logic
 * op each, the high bits moved onto bits 4-5); per token, four vpdpbusd with four
 * activation bytes broadcast, from the token's -32 * (the group's activation sum), leave
 * the 16 rows' exact group sums in the lanes, and one vpmulld by the rows' scales
 * (sign-extended from one 16-byte load) adds them into the super-block's int32 sum; then
 * one conversion and one FMA serve all 16 rows. The row kernel (vec_dot_avx512.c) spends
 * its shuffles, scale multiplies and horizontal sums per row. Every step is the
 * reference's for each lane, so results match it bit for bit for any number of tokens a
 * call. Two panels are walked side by side as two streams, each asking for its bytes
 * ahead a group at a time, every line, as the Q4_K GEMV does (panel_k_avx512.c, which
 * gives the measurements against asking for pairs of lines).
 *
 * On the Zen 4 VM, one thread (bench_kernels, 2048 columns, hot in L2): one token 53 GB/s
 * against the row kernel's 29, four 115 GB/s x tokens against the packed 4-row kernel's
 * 59. Streaming from memory is what decode does, and there the layout's order counted:
 * with the high chunks after all the low ones, the requests made front to back reached
 * them late, and one thread streamed the 151936 x 2048 output matrix at 23-24 GB/s
 * against the rows' 26; in read order, 26 either. Decode of Q4_K_M files (where Q6_K holds
 * the output matrix and half the layers' V and down projections), alternated against the
 * rows, medians of 9-12 reps: the 30B-A3B shape on one thread 52.5 -> 62.7 t/s, on two
 * 73.8 -> 76.8; Qwen3-0.6B on one 61.6 -> 63.5; pp512 +4-6%.
 *
 * Registered for the AVX-512 set only; the "amx" set keeps Q6_K in rows, whose tiles
 * take its prefill (kernels.c). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define GROUPS (KS_QK_K / 16)
#define SB_BYTES (ROWS * sizeof(ks_block_q6_k))
#define GROUPS_AT (ROWS * GROUPS)
#define GROUP_BYTES (3 * 64)
#define D_AT (GROUPS_AT + GROUPS * GROUP_BYTES)

/* Each row's block into the panel's bytes (the reference's, panel_ref.c), four codes at a
 * time: codes 4c .. 4c + 3 of a row are four consecutive bytes of its ql (one nibble each)
 * and of its qh (two bits each), so a dword of each, shifted and masked, gives them. The
 * reference goes code by code; on a 3.3 GB model's Q6_K matrices that cost seconds of
 * loading. */
static void q6_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q6_k *x = block;
    memcpy(sb + D_AT + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    for (int g = 0; g < GROUPS; g++) {
        sb[(size_t)g * ROWS + (size_t)r] = (uint8_t)x->scales[g];
        uint32_t low[4], high = 0;
        for (int j = 0; j < 4; j++) {
            /* code e0 = 16 g + 4 j: half h, quarter q of the half, m its place in the quarter */
            const int e0 = 16 * g + 4 * j, h = e0 / 128, q = (e0 % 128) / 32, m = e0 % 32;
            uint32_t ql, qh;
            memcpy(&ql, x->ql + 64 * h + 32 * (q % 2) + m, 4);
            memcpy(&qh, x->qh + 32 * h + m, 4);
            low[j] = (ql >> (4 * (q / 2))) & 0x0f0f0f0fu;
            high |= ((qh >> (2 * q)) & 0x03030303u) << (2 * j);
        }
        uint8_t *grp = sb + GROUPS_AT + (size_t)g * GROUP_BYTES + (size_t)r * 4;
        const uint32_t l0 = low[0] | low[1] << 4, l1 = low[2] | low[3] << 4;
        memcpy(grp, &l0, 4);
        memcpy(grp + 64, &l1, 4);
        memcpy(grp + 128, &high, 4);
    }
}

static void q6_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q6_k), q6_k_put, scratch);
}

/* (a & c) | b, bitwise */
#define AND_OR 0xEC

static KS_ALWAYS_INLINE void gemv_nt(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                     size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                     const int np, int64_t n, float *const y[2], size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low4 = _mm512_set1_epi8(0x0f), bits45 = _mm512_set1_epi8(0x30);
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
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            for (int g = 0; g < GROUPS; g++) {
                /* a sixteenth of the super-block's bytes asked for per group */
                const size_t at = (size_t)b * SB_BYTES + (size_t)g * (SB_BYTES / GROUPS) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + SB_BYTES / GROUPS, ask);
                const uint8_t *grp = blk + GROUPS_AT + (size_t)g * GROUP_BYTES;
                const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 16 * g)));
                const __m512i l0 = _mm512_loadu_si512(grp), l1 = _mm512_loadu_si512(grp + 64);
                const __m512i h = _mm512_loadu_si512(grp + 128);
                /* code 4 j + i of each row: its low bits from nibble j % 2 of low chunk j / 2,
                 * its high bits from bits 2j, 2j + 1 of the high chunk, moved to bits 4-5 */
                const __m512i v[4] = {
                    _mm512_ternarylogic_epi32(l0, _mm512_and_si512(_mm512_slli_epi16(h, 4), bits45), low4, AND_OR),
                    _mm512_ternarylogic_epi32(_mm512_srli_epi16(l0, 4),
                                              _mm512_and_si512(_mm512_slli_epi16(h, 2), bits45), low4, AND_OR),
                    _mm512_ternarylogic_epi32(l1, _mm512_and_si512(h, bits45), low4, AND_OR),
                    _mm512_ternarylogic_epi32(_mm512_srli_epi16(l1, 4),
                                              _mm512_and_si512(_mm512_srli_epi16(h, 2), bits45), low4, AND_OR)};
                ks_panel_group16(a, a_stride, b, g, v, sc, corr, (size_t)(b * GROUPS + g), nt, sumi, false);
            }
            ks_panel_close_superblock(acc[j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + D_AT))), da, b,
                                      sumi, nt);
        }
    }
    ks_panel_store(y, ldy, acc, np, nt);
}

KS_PANEL_GEMV_ENTRY(q6_k_gemv, gemv_nt)

void ks_panel_q6_k_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q6_K];
    ks_panel_ref(KS_TYPE_Q6_K, p);
    p->repack = q6_k_repack;
    p->gemv = q6_k_gemv;
}
