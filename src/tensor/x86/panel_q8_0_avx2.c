/* panel_q8_0_avx2.c — Q8_0 weights in 16-row panels (kernels.h, ks_panel_kernels) on AVX2
 * without VNNI: the dot products of one to four tokens a call, which serve decode and,
 * four tokens at a time, prefill.
 *
 * Owns: the AVX2 Q8_0 panel GEMV, its activation packing, and
 * ks_panel_q8_0_avx2_register() (the repacking and a panel row to floats are the
 * reference's: the layout is the one panel_ref.c defines, shared with AVX-512).
 *
 * AVX2 has no unsigned-by-signed byte product that cannot saturate: vpmaddubsw adds two
 * byte products into an int16, and a panel's codes + 128 (up to 255) times activations up
 * to 127 overflow it. Instead each panel code vector's bytes are widened to int16 once per
 * block (vpmovzxbw, shared by the call's tokens), and vpmaddwd multiplies them by the
 * token's activations, kept as int16 by pack_act after the reference's terms: the
 * products of two codes of a row go into one int32, exactly, 16 multiply-adds an
 * instruction, the rate of the vpmaddubsw + vpmaddwd pair the row kernels spend on 32.
 * A widened quarter of a code vector holds four codes of four rows, so a row's block sum
 * ends in two int32 lanes, which one vphaddd per 8 rows and token folds; lanes then hold
 * rows 0, 1, 4, 5, 2, 3, 6, 7 of the half panel, the rows' scales are taken in that order
 * and the results put back in order when stored. Per block and token the float work is
 * one conversion, one product of the rows' scales with the token's and one FMA per 8
 * rows, where the row kernels spend a conversion, a broadcast and an FMA per row.
 *
 * Each result is the layout's chain (kernels.h): isum exact, acc = fma(fp32(d) * da,
 * float(isum), acc) over the blocks in order: the reference's bits for any number of
 * tokens per call. With 16 vector registers, a call goes half panel by half panel (8
 * rows: 4 tokens' 8 integer and 4 float accumulators), the token's activations read
 * once per half from L1. */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_ask_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define BLOCK_BYTES (ROWS * sizeof(ks_block_q8_0))
#define CODES_AT (ROWS * sizeof(ks_fp16))

/* pk: the reference's terms ([nb] float da, [nb] int32 -128 * the block's code sum), then
 * the n activation codes as int16, 8-byte aligned (pk is, and 8 nb bytes precede them) */
static size_t q8_0_act_bytes(int64_t n) {
    return (size_t)(n / KS_QK8_0) * (sizeof(float) + sizeof(int32_t)) + (size_t)n * sizeof(int16_t);
}

static ks_panel_kernels ref_q8_0;

static void q8_0_pack_act(const void *row, int64_t n, void *pk) {
    ref_q8_0.pack_act(row, n, pk);
    const ks_block_q8_0 *a = row;
    int16_t *a16 = (int16_t *)((uint8_t *)pk + (size_t)(n / KS_QK8_0) * (sizeof(float) + sizeof(int32_t)));
    for (int64_t b = 0; b < n / KS_QK8_0; b++)
        for (int h = 0; h < 2; h++)
            _mm256_storeu_si256((__m256i *)(a16 + b * KS_QK8_0 + 16 * h),
                                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a[b].qs + 16 * h))));
}

/* c + p in int32 lanes, as one vpaddd into c: GCC reassociates a chain of intrinsic adds
 * into a tree over all of a block's products, which keeps 32 of them alive at once and
 * spills them to the stack (the kernel ran at a third of its speed). */
static KS_ALWAYS_INLINE __m256i acc_add(__m256i c, __m256i p) {
    __asm__("vpaddd %[p], %[c], %[c]" : [c] "+x"(c) : [p] "x"(p));
    return c;
}

/* Lanes of a half panel's block sums after vphaddd: rows 0, 1, 4, 5, 2, 3, 6, 7 (its own
 * inverse, so the same index puts them back). */
static inline __m256i half_order(void) { return _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7); }

/* Halves h0 .. h0 + nh - 1 (half h: rows 8h .. 8h + 7) of np panels side by side against
 * nt tokens, asking for each stream's bytes ahead where ask (the pass over half 0 asks
 * for the whole panels'). */
static KS_ALWAYS_INLINE void gemv_halves(const uint8_t *const *panels, const void *const *next, bool ask, const int h0,
                                         const int nh, const float *const *da, const int32_t *const *corr,
                                         const int16_t *const *a16, const int nt, const int np, int64_t n,
                                         float *const *y, size_t ldy) {
    const int64_t nb = n / KS_QK8_0;
    const size_t pb = (size_t)nb * BLOCK_BYTES;
    const __m256i order = half_order();
    __m256 acc[2][2][KS_VEC_DOT_ROWS];
    for (int j = 0; j < np; j++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++)
                acc[j][h][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i s[2][2][KS_VEC_DOT_ROWS][2];
        for (int j = 0; j < np; j++) {
            if (ask && h0 == 0)
                ks_panel_ask_ahead(panels[j], next[j], pb, (size_t)b * BLOCK_BYTES + KS_PANEL_AHEAD,
                                   (size_t)(b + 1) * BLOCK_BYTES + KS_PANEL_AHEAD, true);
            for (int h = 0; h < nh; h++)
                for (int t = 0; t < nt; t++)
                    s[j][h][t][0] = s[j][h][t][1] = _mm256_setzero_si256();
        }
        for (int g = 0; g < 8; g++)
            for (int j = 0; j < np; j++)
                for (int h = 0; h < nh; h++) {
                    /* codes 4g .. 4g + 3 of rows 8h .. 8h + 3 and 8h + 4 .. 8h + 7, as int16 */
                    const uint8_t *v =
                        panels[j] + (size_t)b * BLOCK_BYTES + CODES_AT + 64 * (size_t)g + 32 * (size_t)(h0 + h);
                    const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)v));
                    const __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(v + 16)));
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++) {
                        long long four;
                        memcpy(&four, a16[t] + b * KS_QK8_0 + 4 * g, sizeof four);
                        const __m256i x = _mm256_set1_epi64x(four);
                        s[j][h][t][0] = acc_add(s[j][h][t][0], _mm256_madd_epi16(w0, x));
                        s[j][h][t][1] = acc_add(s[j][h][t][1], _mm256_madd_epi16(w1, x));
                    }
                }
        for (int j = 0; j < np; j++)
            for (int h = 0; h < nh; h++) {
                const uint8_t *d = panels[j] + (size_t)b * BLOCK_BYTES + 8 * sizeof(ks_fp16) * (size_t)(h0 + h);
                const __m256 dw = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)d)), order);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const __m256i isum = _mm256_add_epi32(_mm256_hadd_epi32(s[j][h][t][0], s[j][h][t][1]),
                                                          _mm256_set1_epi32(corr[t][b]));
                    acc[j][h][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(da[t][b])),
                                                   _mm256_cvtepi32_ps(isum), acc[j][h][t]);
                }
            }
    }
    for (int j = 0; j < np; j++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++)
                _mm256_storeu_ps(y[j] + (size_t)t * ldy + 8 * (size_t)(h0 + h),
                                 _mm256_permutevar8x32_ps(acc[j][h][t], order));
}

/* As much of the call in one pass as its accumulators leave registers for (16: one token
 * of two panels, both halves, reads each line once, as decode wants), the rest in more. */
static KS_ALWAYS_INLINE void gemv_q8_0(const void *const panels[2], const void *const next[2], const uint8_t *pk,
                                       size_t pk_stride, const int nt, const int np, int64_t n, float *const y[2],
                                       size_t ldy) {
    const int64_t nb = n / KS_QK8_0;
    const float *da[KS_VEC_DOT_ROWS];
    const int32_t *corr[KS_VEC_DOT_ROWS];
    const int16_t *a16[KS_VEC_DOT_ROWS];
    for (int t = 0; t < nt; t++) {
        da[t] = (const float *)(pk + (size_t)t * pk_stride);
        corr[t] = (const int32_t *)(da[t] + nb);
        a16[t] = (const int16_t *)(corr[t] + nb);
    }
    const uint8_t *const p[2] = {panels[0], panels[1]};
    const void *const nx[2] = {next ? next[0] : NULL, next ? next[1] : NULL};
    const bool ask = next != NULL;
    if (np * nt * 2 <= KS_VEC_DOT_ROWS) {
        gemv_halves(p, nx, ask, 0, 2, da, corr, a16, nt, np, n, y, ldy);
    } else if (np * nt <= KS_VEC_DOT_ROWS) {
        for (int h = 0; h < 2; h++)
            gemv_halves(p, nx, ask, h, 1, da, corr, a16, nt, np, n, y, ldy);
    } else {
        for (int j = 0; j < np; j++)
            for (int h = 0; h < 2; h++)
                gemv_halves(p + j, nx + j, ask, h, 1, da, corr, a16, nt, 1, n, y + j, ldy);
    }
}

static void q8_0_gemv(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride,
                      const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) {
    (void)a; /* the activations are read from pk, as int16 */
    (void)a_stride;
    const int two = panels[1] != NULL;
    switch (nt) { /* nt and np constants in each call */
    case 1:
        two ? gemv_q8_0(panels, next, pk, pk_stride, 1, 2, n, y, ldy)
            : gemv_q8_0(panels, next, pk, pk_stride, 1, 1, n, y, ldy);
        break;
    case 2:
        two ? gemv_q8_0(panels, next, pk, pk_stride, 2, 2, n, y, ldy)
            : gemv_q8_0(panels, next, pk, pk_stride, 2, 1, n, y, ldy);
        break;
    case 3:
        two ? gemv_q8_0(panels, next, pk, pk_stride, 3, 2, n, y, ldy)
            : gemv_q8_0(panels, next, pk, pk_stride, 3, 1, n, y, ldy);
        break;
    default:
        two ? gemv_q8_0(panels, next, pk, pk_stride, 4, 2, n, y, ldy)
            : gemv_q8_0(panels, next, pk, pk_stride, 4, 1, n, y, ldy);
        break;
    }
}

void ks_panel_q8_0_avx2_register(ks_kernels *k) {
    ks_panel_ref(KS_TYPE_Q8_0, &ref_q8_0);
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q8_0];
    *p = ref_q8_0;
    p->act_bytes = q8_0_act_bytes;
    p->pack_act = q8_0_pack_act;
    p->gemv = q8_0_gemv;
}
