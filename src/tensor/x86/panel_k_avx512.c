/* panel_k_avx512.c — Q4_K and Q5_K weights in 16-row panels (kernels.h,
 * ks_panel_kernels) on 512-bit VNNI: the decode dot products of one to four tokens.
 *
 * Owns: the Q4_K and Q5_K panel repackers and GEMVs for AVX-512 VNNI and
 * ks_panel_k_avx512_register() (the activations' terms and a panel row to floats are the
 * reference's, panel_ref.c, which also gives the layouts).
 *
 * Per super-block of a panel (16 rows x 256 codes, 2304 bytes): the 16 rows' 6-bit scales
 * and mins are decoded side by side from their three scale words (one 512-bit vector
 * each), and each 64-byte code chunk gives two vectors of four codes per row (its low and
 * high nibbles; Q4_K's high ones stay in place, 16 x code: dot32_nibbles). Per sub-block
 * and token, eight vpdpbusd with four activation bytes broadcast leave the 16 rows'
 * exact sub-block sums in the lanes; one vpmulld by the rows' scales adds them into the
 * super-block's int32 sum; four vpdpwssd of the rows' min pairs with the token's
 * sub-block sums give the min term; then two conversions and two FMAs serve all 16 rows.
 * The row-major 4-row kernel (dot4_k_avx512.c) spends a maddubs and a vpdpwssd per 32
 * codes of each row and token plus its scale shuffles and float steps per row. Every
 * step is the reference's (panel_ref.c) for each lane, so results match it bit for bit
 * for any number of tokens per call. Two panels are walked side by side as two streams,
 * as the Q8_0 GEMV does (panel_q8_0_avx512.c).
 *
 * Q5_K is the same with a fifth bit a code: each sub-block's chunks are followed by eight
 * 64-bit words, one a code vector, whose bits are the 64 bytes' fifth bits, so one masked
 * byte add puts them in (AVX-512BW). On the Zen 4 VM against the row kernels, alternated
 * (medians): one thread hot in L2 35 against 20 GB/s for one token, 91 against 40 GB/s x
 * tokens for four; Qwen3-0.6B Q5_K_M decode 77.3 -> 94.3 t/s (one thread 40.3 -> 54.5),
 * pp512 212 -> 372. The "amx" set keeps Q5_K in panels (its tiles have none for it).
 *
 * A super-block's bytes are asked for an eighth per sub-block (ks_panel_ask_ahead,
 * panel_ask_x86.h, where the caller gives the next panels): asked for all at its
 * start (36 lines a stream), the requests queued behind each other; spread, they do not.
 * Every line is asked for. Asking for the first line of each 128-byte pair only, as the
 * Q8_0 GEMV does (panel_q8_0_avx512.c), was measured on the Zen 4 VM on two days, each
 * token of a decode run against the next (this and the Q6_K GEMV, Q4_K_M files, two
 * threads, kvserve bench -p 0 -n 256 -r 3): where the core was free and decode near the
 * memory roof, pairs won by 5-7%; where decode sat at half the roof, the core's arithmetic
 * short (the hot kernel's rate halved in the same minutes), every line won by 8-42%. On
 * the second day every line was ahead over all runs (geometric means): Qwen3-0.6B +13.8%
 * (seven runs; on the first, pairs ahead by a median 1.3% over thirteen), the 30B-A3B
 * shape +6.3% (six; on the first, pairs +2 to +21% over four). Q8_0, with far less
 * arithmetic a byte, keeps pairs; the Q2_K, Q3_K and IQ4_XS GEMVs, measured the same way
 * on the second day, ask for every line too (every line +12.5%, +8.1% and +10%).
 *
 * Registered for the AVX-512 set only. Without tiles, prefill goes through this kernel
 * four tokens at a time instead of the 4-row kernel (KS_KERNELS=avx512 on the development
 * VM, Qwen3-0.6B Q4_K_M against rows, alternated: pp512 171-182 -> 282-310 t/s, four
 * sequences' decode 163-165 -> 182-196, one 62.5-66.3 -> 65.9-69.9; the 30B-A3B shape's
 * pp512 345-392 -> 545-575, one sequence on par). The "amx" set keeps Q4_K in rows
 * (kernels.c): its tiles take prefill from rows, and there the 30B-A3B shape's decode gained
 * nothing (one sequence 0 to -3%, four on par) while Qwen3-0.6B's did (+4%, four +10-22%). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define SCALES_AT (2 * ROWS * sizeof(ks_fp16))
#define CODES_AT (SCALES_AT + ROWS * KS_K_SCALE_BYTES)
#define Q5_SUB_BYTES (4 * 64 + 64) /* a Q5_K sub-block: four chunks of low nibbles, eight mask words */

/* Row r's low nibbles (qs, as Q4_K and Q5_K blocks hold them) into the chunks of a panel
 * super-block's sub-blocks, sub_bytes apart (the reference's bytes, panel_ref.c), a
 * sub-block at a time: its 32 codes as bytes, codes m and m + 16 paired in one byte, four
 * dwords to the four chunks. */
static void put_nibbles(uint8_t *sb, int r, const uint8_t *qs, size_t sub_bytes) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int g = 0; g < 4; g++) { /* sub-blocks 2g (low nibbles) and 2g + 1 (high) */
        const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
        for (int hi = 0; hi < 2; hi++) {
            const __m256i c = _mm256_and_si256(hi ? _mm256_srli_epi16(q, 4) : q, low4);
            uint32_t pairs[4];
            _mm_storeu_si128((__m128i *)pairs, _mm_or_si128(_mm256_castsi256_si128(c),
                                                            _mm_slli_epi16(_mm256_extracti128_si256(c, 1), 4)));
            const int j = 2 * g + hi;
            for (int h = 0; h < 4; h++)
                memcpy(sb + CODES_AT + (size_t)j * sub_bytes + (size_t)h * 64 + (size_t)r * 4, &pairs[h], 4);
        }
    }
}

static void q4_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q4_k *x = block;
    ks_panel_k_put_scales(sb, r, x->d, x->dmin, x->scales);
    put_nibbles(sb, r, x->qs, 4 * 64);
}

static void q4_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q4_k), q4_k_put, scratch);
}

/* Q5_K: the low nibbles as Q4_K's put lays them (a sub-block every 320 bytes), then each
 * code vector's fifth bits as a 64-bit word: bit 4 r + i of word 2h (low nibbles of chunk
 * h) or 2h + 1 (high nibbles) is bit j of qh[4h + i] (or qh[4h + 16 + i]), j the sub-block. */
static void q5_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q5_k *x = block;
    ks_panel_k_put_scales(sb, r, x->d, x->dmin, x->scales);
    put_nibbles(sb, r, x->qs, Q5_SUB_BYTES);
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 8; k++) {
            /* code vector k: codes 4 (k / 2) + 16 (k % 2) + i of sub-block j, i < 4 */
            uint64_t word;
            uint8_t *at = sb + CODES_AT + (size_t)j * Q5_SUB_BYTES + 256 + (size_t)k * 8;
            memcpy(&word, at, 8);
            for (int i = 0; i < 4; i++)
                word |= (uint64_t)((x->qh[4 * (k / 2) + 16 * (k % 2) + i] >> j) & 1) << (4 * r + i);
            memcpy(at, &word, 8);
        }
}

static void q5_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q5_k), q5_k_put, scratch);
}

/* vpshufb controls: byte k of each dword, zero-extended (k = 0..3); bytes 2i and 2i + 1
 * of each dword as two int16 (i = 0, 1) */
static inline __m512i byte_of_dword(int k) {
    const int c = (int)(0x80808000u | (unsigned)k);
    return _mm512_setr_epi32(c, c + 4, c + 8, c + 12, c, c + 4, c + 8, c + 12, c, c + 4, c + 8, c + 12, c, c + 4,
                             c + 8, c + 12);
}
static inline __m512i words_of_dword(int i) {
    const int c = (int)(0x80008000u | (unsigned)(2 * i) | (unsigned)(2 * i + 1) << 16);
    return _mm512_setr_epi32(c, c + 0x40004, c + 0x80008, c + 0xc000c, c, c + 0x40004, c + 0x80008, c + 0xc000c, c,
                             c + 0x40004, c + 0x80008, c + 0xc000c, c, c + 0x40004, c + 0x80008, c + 0xc000c);
}

/* Q4_K's sub-block sums with its high nibbles left in place: v[0..3] the low nibbles
 * (codes 0..15), v[4..7] the high ones masked to 16 x code, whose vpdpbusd sums are 16
 * times the sums (at most 240 x 128 a product: no int32 bound near), divided back exactly
 * by one shift. Against shifting each chunk down first (ks_panel_dot32), three operations
 * fewer a sub-block for one token: bench_kernels --type q4_k, one thread hot in L2, one
 * token 21.7-22.2 -> 25.8-26.5 GB/s in alternated runs (four tokens on par); decode of
 * Q4_K_M files token against token (two threads, kvserve bench -p 0 -n 256 -r 3):
 * Qwen3-0.6B +2.0% and +1.4%, the 30B-A3B shape +0.5% and +0.4%. */
static KS_ALWAYS_INLINE __m512i dot32_nibbles(const __m512i v[8], const uint8_t *q) {
    __m512i lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[0], ks_panel_bcast4(q));
    __m512i hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[4], ks_panel_bcast4(q + 16));
    for (int h = 1; h < 4; h++) {
        lo = _mm512_dpbusd_epi32(lo, v[h], ks_panel_bcast4(q + 4 * h));
        hi = _mm512_dpbusd_epi32(hi, v[h + 4], ks_panel_bcast4(q + 16 + 4 * h));
    }
    return _mm512_add_epi32(lo, _mm512_srai_epi32(hi, 4));
}

/* A Q5_K code vector's fifth bits: the 64-bit word at p as a byte mask. */
static KS_ALWAYS_INLINE __mmask64 mask_at(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return _cvtu64_mask64(w);
}

/* Q4_K (five false) or Q5_K panels. */
static KS_ALWAYS_INLINE void gemv_k(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                    size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt, const int np,
                                    int64_t n, float *const y[2], size_t ldy, const bool five) {
    const size_t sb_bytes = five ? ROWS * sizeof(ks_block_q5_k) : ROWS * sizeof(ks_block_q4_k);
    const size_t sub_bytes = five ? Q5_SUB_BYTES : 4 * 64;
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * sb_bytes;
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const __m512i low4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), hi2 = _mm512_set1_epi8(0x30);
    const __m512i b16 = _mm512_set1_epi8(16); /* Q5_K: the fifth bit */
    const __m512i high4 = _mm512_set1_epi8((char)0xf0); /* Q4_K: the high nibbles in place */
    const __m512i pick[4] = {byte_of_dword(0), byte_of_dword(1), byte_of_dword(2), byte_of_dword(3)};
    const float *da[KS_VEC_DOT_ROWS];
    const int32_t *sp[KS_VEC_DOT_ROWS];
    __m512 acc[2][KS_VEC_DOT_ROWS], accm[2][KS_VEC_DOT_ROWS];
    for (int t = 0; t < nt; t++) {
        da[t] = (const float *)(pk + (size_t)t * pk_stride);
        sp[t] = (const int32_t *)(da[t] + nsb);
        for (int j = 0; j < np; j++) {
            acc[j][t] = _mm512_setzero_ps();
            accm[j][t] = _mm512_setzero_ps();
        }
    }
    for (int64_t b = 0; b < nsb; b++) {
        for (int j = 0; j < np; j++) {
            const uint8_t *blk = (const uint8_t *)panels[j] + (size_t)b * sb_bytes;
            /* the rows' scales and mins, as ks_k_scale_min() takes them from the bytes */
            const __m512i u0 = _mm512_loadu_si512(blk + SCALES_AT), u1 = _mm512_loadu_si512(blk + SCALES_AT + 64),
                          u2 = _mm512_loadu_si512(blk + SCALES_AT + 128);
            const __m512i sc_lo = _mm512_and_si512(u0, m6), mn_lo = _mm512_and_si512(u1, m6);
            const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, low4),
                                                  _mm512_and_si512(_mm512_srli_epi32(u0, 2), hi2));
            const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low4),
                                                  _mm512_and_si512(_mm512_srli_epi32(u1, 2), hi2));
            __m512i sumi[KS_VEC_DOT_ROWS];
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_setzero_si512();
            for (int sb = 0; sb < 8; sb++) {
                /* an eighth of the super-block's bytes asked for per sub-block: spread out,
                 * the requests do not queue behind each other */
                const size_t at = (size_t)b * sb_bytes + (size_t)sb * (sb_bytes / 8) + ahead;
                ks_panel_ask_ahead(panels[j], ask ? next[j] : NULL, pb, at, at + sb_bytes / 8, ask);
                const __m512i sc = _mm512_shuffle_epi8(sb < 4 ? sc_lo : sc_hi, pick[sb % 4]);
                __m512i v[8];
                const uint8_t *sub = blk + CODES_AT + (size_t)sb * sub_bytes;
                for (int h = 0; h < 4; h++) {
                    const __m512i c = _mm512_loadu_si512(sub + (size_t)h * 64);
                    v[h] = _mm512_and_si512(c, low4);
                    v[h + 4] = five ? _mm512_and_si512(_mm512_srli_epi16(c, 4), low4) : _mm512_and_si512(c, high4);
                    if (five) {
                        v[h] = _mm512_mask_add_epi8(v[h], mask_at(sub + 256 + 16 * h), v[h], b16);
                        v[h + 4] = _mm512_mask_add_epi8(v[h + 4], mask_at(sub + 256 + 16 * h + 8), v[h + 4], b16);
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const uint8_t *q = a + (size_t)t * a_stride + (size_t)b * sizeof(ks_block_q8_k) +
                                       offsetof(ks_block_q8_k, qs) + (size_t)sb * 32;
                    const __m512i isum = five ? ks_panel_dot32(v, q, _mm512_setzero_si512()) : dot32_nibbles(v, q);
                    sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(sc, isum));
                }
            }
            const __m512i mp0 = _mm512_shuffle_epi8(mn_lo, words_of_dword(0));
            const __m512i mp1 = _mm512_shuffle_epi8(mn_lo, words_of_dword(1));
            const __m512i mp2 = _mm512_shuffle_epi8(mn_hi, words_of_dword(0));
            const __m512i mp3 = _mm512_shuffle_epi8(mn_hi, words_of_dword(1));
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            const __m512 dmw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + ROWS * sizeof(ks_fp16))));
            __m512i summ[KS_VEC_DOT_ROWS];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const int32_t *s = sp[t] + (size_t)b * 4;
                __m512i m0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp0, _mm512_set1_epi32(s[0]));
                __m512i m1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp1, _mm512_set1_epi32(s[1]));
                m0 = _mm512_dpwssd_epi32(m0, mp2, _mm512_set1_epi32(s[2]));
                m1 = _mm512_dpwssd_epi32(m1, mp3, _mm512_set1_epi32(s[3]));
                summ[t] = _mm512_add_epi32(m0, m1);
            }
            ks_panel_close_superblock_mins(acc[j], accm[j], dw, dmw, da, b, sumi, summ, nt);
        }
    }
    ks_panel_store_mins(y, ldy, acc, accm, np, nt);
}

static KS_ALWAYS_INLINE void gemv_q4_k(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                       size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt, const int np,
                                       int64_t n, float *const y[2], size_t ldy) {
    gemv_k(panels, next, a, a_stride, pk, pk_stride, nt, np, n, y, ldy, false);
}

static KS_ALWAYS_INLINE void gemv_q5_k(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                       size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt, const int np,
                                       int64_t n, float *const y[2], size_t ldy) {
    gemv_k(panels, next, a, a_stride, pk, pk_stride, nt, np, n, y, ldy, true);
}

KS_PANEL_GEMV_ENTRY(q4_k_gemv, gemv_q4_k)

KS_PANEL_GEMV_ENTRY(q5_k_gemv, gemv_q5_k)

void ks_panel_k_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q4_K];
    ks_panel_ref(KS_TYPE_Q4_K, p);
    p->repack = q4_k_repack;
    p->gemv = q4_k_gemv;
    p = &k->panel[KS_TYPE_Q5_K];
    ks_panel_ref(KS_TYPE_Q5_K, p);
    p->repack = q5_k_repack;
    p->gemv = q5_k_gemv;
}
