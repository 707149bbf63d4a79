/* panel_q8_0_avx512.c — Q8_0 and IQ4_NL weights (the 32-element blocks) in 16-row panels
 * (kernels.h, ks_panel_kernels) on 512-bit VNNI: the decode dot products of one to four
 * tokens, and Q8_0's repacking (IQ4_NL's is the reference's, its bytes copied as they are).
 *
 * Owns: the Q8_0 panel repacker, the Q8_0 and IQ4_NL panel GEMVs for AVX-512 VNNI, and
 * ks_panel_q8_0_avx512_register() (the rest of the entries are the reference's: the
 * activations' scales and corrections, once per token and matrix, and a panel row to
 * floats, for embedding lookups).
 *
 * Per block of a panel (16 rows x 32 codes, 544 bytes) and token, eight vpdpbusd of the
 * block's eight 64-byte code vectors (unsigned: code + 128) with four activation bytes
 * broadcast leave the 16 rows' exact sums in the 16 lanes, offset by 128 * sum(a), which
 * the accumulator starts from -128 * sum(a) to take out; then one conversion, one
 * product of the rows' scales with the token's and one FMA serve all 16 rows. Row-major
 * kernels spend that float work per 8 lanes of one row, and their horizontal sums; here a
 * block costs about 12 operations a token against the 4-row kernel's 24 (dot4_q8_0_avx512.c).
 * Two partial sums of four vpdpbusd each halve the chain the block waits on; integer sums
 * are exact in any grouping, so the result is the layout's one chain per row and token
 * (kernels.h), the reference's bit for bit, for any number of tokens per call.
 *
 * A call walks two panels block by block side by side, the caller's two streams of a
 * matrix, each asking for its own bytes ahead with many tokens (ks_panel_ask_lines): one
 * sequential stream read at a time keeps too few of memory's requests in flight (decode,
 * 2 threads, Qwen3-0.6B Q8_0 four tokens: 129 t/s with one panel a call and its next
 * asked for, 146 with two).
 * Q8_0 asks for the first line of each 128-byte pair only (ks_panel_ask_lines), half the
 * requests for the same bytes, the L2 bringing each partner line: decode on the Zen 4 VM,
 * each token's time against the next's asking for every line (kvserve bench -p 0 -n 256
 * -r 3, 384 pairs a run), Qwen3-0.6B Q8_0 on one thread +14-27%, on two +4-6%; the
 * 30B-A3B shape's Q8_0 +24-27% and +4-12%. Asking for the second line of each pair instead:
 * Qwen3-0.6B Q8_0 -3 to -5% on two threads, Q4_K_M -13 to -17%. Measured again on
 * another day, when the core's arithmetic was short at times (see panel_k_avx512.c),
 * pairs stayed ahead for Q8_0 (geometric means: Qwen3-0.6B +1.4% over six runs, the 30B-A3B
 * shape +5.6% over five), and IQ4_NL's blocks, with a table lookup a code, keep every line
 * (every line +4.6% over five runs). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define BLOCK_BYTES (ROWS * sizeof(ks_block_q8_0))
#define CODES_AT (ROWS * sizeof(ks_fp16))

/* Each row's block: its scale to the panel's 16, its 32 codes + 128 as 8 dwords, dword
 * g to lane r of code vector g. */
static void q8_0_put(uint8_t *pb, int r, const void *block) {
    const ks_block_q8_0 *x = block;
    memcpy(pb + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    uint32_t q[8];
    _mm256_storeu_si256((__m256i *)q, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs),
                                                       _mm256_set1_epi8((char)0x80)));
    for (int g = 0; g < 8; g++)
        memcpy(pb + CODES_AT + ((size_t)g * ROWS + (size_t)r) * 4, &q[g], 4);
}

static void q8_0_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK8_0, sizeof(ks_block_q8_0), q8_0_put, scratch);
}

/* IQ4_NL's panel block (panel_ref.c): 16 rows' d, then four 64-byte chunks of nibble
 * pairs, byte 4 r + i of chunk h the row's codes 4h + i (low) and 4h + 16 + i (high). */
#define NL_BLOCK_BYTES (ROWS * sizeof(ks_block_iq4_nl))

/* np panels (1 or 2) side by side against nt tokens; nl: IQ4_NL's blocks, whose eight code
 * vectors are the chunks' nibbles through the table + 128 (one vpshufb each), else
 * Q8_0's, loaded as they are. */
static KS_ALWAYS_INLINE void gemv_blocks(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                         size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                         const int np, int64_t n, float *const y[2], size_t ldy, const bool nl) {
    const size_t block_bytes = nl ? NL_BLOCK_BYTES : BLOCK_BYTES;
    const int64_t nb = n / KS_QK8_0;
    const size_t pb = (size_t)nb * block_bytes;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i table = _mm512_broadcast_i32x4(
        _mm_xor_si128(_mm_loadu_si128((const __m128i *)ks_iq4_values), _mm_set1_epi8((char)0x80)));
    const bool ask = next != NULL; /* kernels.h: the caller's choice */
    const size_t ahead = KS_PANEL_AHEAD;
    const float *da[KS_VEC_DOT_ROWS];
    const int32_t *corr[KS_VEC_DOT_ROWS];
    __m512 acc[2][KS_VEC_DOT_ROWS];
    for (int t = 0; t < nt; t++) {
        da[t] = (const float *)(pk + (size_t)t * pk_stride);
        corr[t] = (const int32_t *)(da[t] + nb);
        for (int j = 0; j < np; j++)
            acc[j][t] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        for (int j = 0; j < np; j++) {
            const uint8_t *blk = (const uint8_t *)panels[j] + (size_t)b * block_bytes;
            ks_panel_ask_lines(panels[j], ask ? next[j] : NULL, pb, (size_t)b * block_bytes + ahead,
                               (size_t)(b + 1) * block_bytes + ahead, ask, !nl);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
            __m512i w[8];
            if (nl) {
                for (int h = 0; h < 4; h++) {
                    const __m512i c = _mm512_loadu_si512(blk + CODES_AT + 64 * (size_t)h);
                    w[h] = _mm512_shuffle_epi8(table, _mm512_and_si512(c, low4));
                    w[h + 4] = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(c, 4), low4));
                }
            } else {
                for (int g = 0; g < 8; g++)
                    w[g] = _mm512_loadu_si512(blk + CODES_AT + 64 * (size_t)g);
            }
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const uint8_t *q =
                    a + (size_t)t * a_stride + (size_t)b * sizeof(ks_block_q8_0) + offsetof(ks_block_q8_0, qs);
                const __m512i isum = ks_panel_dot32(w, q, _mm512_set1_epi32(corr[t][b]));
                const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(da[t][b]));
                acc[j][t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum), acc[j][t]);
            }
        }
    }
    for (int j = 0; j < np; j++)
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(y[j] + (size_t)t * ldy, acc[j][t]);
}

static KS_ALWAYS_INLINE void gemv_q8_0(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                       size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt, const int np,
                                       int64_t n, float *const y[2], size_t ldy) {
    gemv_blocks(panels, next, a, a_stride, pk, pk_stride, nt, np, n, y, ldy, false);
}

static KS_ALWAYS_INLINE void gemv_iq4_nl(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                         size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt,
                                         const int np, int64_t n, float *const y[2], size_t ldy) {
    gemv_blocks(panels, next, a, a_stride, pk, pk_stride, nt, np, n, y, ldy, true);
}

KS_PANEL_GEMV_ENTRY(q8_0_gemv, gemv_q8_0)

KS_PANEL_GEMV_ENTRY(iq4_nl_gemv, gemv_iq4_nl)

void ks_panel_q8_0_avx512_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q8_0];
    ks_panel_ref(KS_TYPE_Q8_0, p);
    p->repack = q8_0_repack;
    p->gemv = q8_0_gemv;
    p = &k->panel[KS_TYPE_IQ4_NL];
    ks_panel_ref(KS_TYPE_IQ4_NL, p);
    p->gemv = iq4_nl_gemv;
}
