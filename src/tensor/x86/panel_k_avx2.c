/* panel_k_avx2.c — Q4_K weights in 16-row panels (kernels.h, ks_panel_kernels) on AVX2
 * without VNNI: the dot products of one to four tokens a call, which serve decode and,
 * four tokens at a time, prefill.
 *
 * Owns: the AVX2 Q4_K panel GEMV and ks_panel_k_avx2_register() (the layout, the
 * repacking, the activations' terms and a panel row to floats are the reference's,
 * panel_ref.c, shared with AVX-512).
 *
 * Per super-block (16 rows x 256 codes, 2304 bytes) and half panel (8 rows, one 256-bit
 * vector of their four-byte groups): the 8 rows' 6-bit scales and mins are decoded side
 * by side from their three scale words; each 64-byte code chunk gives, for the half, two
 * vectors of four codes per row (low and high nibbles, 0..15). Per sub-block and token,
 * eight vpmaddubsw with four activation bytes broadcast give each row's products in pairs
 * of int16 (at most 2 * 15 * 127 each), added in int16 (eight pairs: at most 30480, no
 * wrap); one vpmaddwd by the row's scale, in both of the row's int16 lanes, leaves the
 * row's scaled sub-block sum in its int32 lane. The mins term is four vpmaddwd of the
 * rows' min pairs with the token's sub-block sum pairs; then two conversions and two FMAs
 * serve 8 rows. The row kernels spend a vpmaddubsw, a vpmaddwd and an add per 32 codes of
 * each row and token, plus their float steps and horizontal sums per row. Each lane takes
 * the reference's steps (sumi and summ exact, acc and accm one FMA a super-block), so the
 * results are its bits for any number of tokens per call.
 *
 * Integer adds go through opaque vpaddw/vpaddd: GCC would reassociate the chains into
 * trees over a sub-block's products and spill them (panel_q8_0_avx2.c). As many tokens,
 * halves and panels go through one pass over a super-block as 16 registers hold (one
 * token: both halves of two panels, each line read once; four tokens: one half of one
 * panel a pass, the half's bytes then read from L1). */
#include "tensor/x86/kernels_x86.h"

#include "core/ks_core.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/x86/panel_ask_x86.h"

#include <immintrin.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define SB_BYTES (ROWS * sizeof(ks_block_q4_k)) /* 2304 */
#define SCALES_AT (2 * ROWS * sizeof(ks_fp16))  /* 64 */
#define CODES_AT (SCALES_AT + ROWS * KS_K_SCALE_BYTES)

static KS_ALWAYS_INLINE __m256i add16(__m256i c, __m256i p) {
    __asm__("vpaddw %[p], %[c], %[c]" : [c] "+x"(c) : [p] "x"(p));
    return c;
}

static KS_ALWAYS_INLINE __m256i add32(__m256i c, __m256i p) {
    __asm__("vpaddd %[p], %[c], %[c]" : [c] "+x"(c) : [p] "x"(p));
    return c;
}

/* Four activation bytes at p in every dword. */
static KS_ALWAYS_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

/* The 6-bit scales (sc) and mins (mn) of half h's 8 rows of a super-block, each row's in
 * its dword: [0] holds sub-blocks 0..3, [1] 4..7, a byte each (ks_x86_k_scales_mins, on
 * 8 rows at once). */
typedef struct half_scales {
    __m256i sc[2], mn[2];
} half_scales;

static KS_ALWAYS_INLINE half_scales half_scales_of(const uint8_t *sb, int h) {
    const uint8_t *s = sb + SCALES_AT + 32 * (size_t)h; /* word k of row r at (16 k + r) * 4 */
    const __m256i u0 = _mm256_loadu_si256((const __m256i *)s);
    const __m256i u1 = _mm256_loadu_si256((const __m256i *)(s + 64));
    const __m256i u2 = _mm256_loadu_si256((const __m256i *)(s + 128));
    const __m256i m3f = _mm256_set1_epi8(0x3f), m0f = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    half_scales hs;
    hs.sc[0] = _mm256_and_si256(u0, m3f);
    hs.sc[1] = _mm256_or_si256(_mm256_and_si256(u2, m0f), _mm256_and_si256(_mm256_srli_epi32(u0, 2), m30));
    hs.mn[0] = _mm256_and_si256(u1, m3f);
    hs.mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m0f),
                               _mm256_and_si256(_mm256_srli_epi32(u1, 2), m30));
    return hs;
}

/* Bytes b0 and b1 of each dword of v as the dword's two int16 (zero-extended). */
static KS_ALWAYS_INLINE __m256i byte_pair(__m256i v, int b0, int b1) {
    const char z = (char)0x80;
    const __m256i idx = _mm256_setr_epi8((char)b0, z, (char)b1, z, (char)(4 + b0), z, (char)(4 + b1), z,
                                         (char)(8 + b0), z, (char)(8 + b1), z, (char)(12 + b0), z, (char)(12 + b1), z,
                                         (char)b0, z, (char)b1, z, (char)(4 + b0), z, (char)(4 + b1), z,
                                         (char)(8 + b0), z, (char)(8 + b1), z, (char)(12 + b0), z, (char)(12 + b1), z);
    return _mm256_shuffle_epi8(v, idx);
}

/* Halves h0 .. h0 + nh - 1 of np panels side by side against nt tokens (the Q8_K rows
 * a + t * a_stride, their pack_act terms pk + t * pk_stride). */
static KS_ALWAYS_INLINE void gemv_halves(const uint8_t *const *panels, const void *const *next, bool ask, const int h0,
                                         const int nh, const uint8_t *a, size_t a_stride, const uint8_t *pk,
                                         size_t pk_stride, const int nt, const int np, int64_t n, float *const *y,
                                         size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    const size_t pb = (size_t)nsb * SB_BYTES;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[2][2][KS_VEC_DOT_ROWS], accm[2][2][KS_VEC_DOT_ROWS];
    for (int j = 0; j < np; j++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++)
                acc[j][h][t] = accm[j][h][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nsb; b++) {
        const ks_block_q8_k *x[KS_VEC_DOT_ROWS];
        for (int t = 0; t < nt; t++)
            x[t] = (const ks_block_q8_k *)(a + (size_t)t * a_stride) + b;
        __m256i sumi[2][2][KS_VEC_DOT_ROWS];
        for (int j = 0; j < np; j++)
            for (int h = 0; h < nh; h++)
                for (int t = 0; t < nt; t++)
                    sumi[j][h][t] = _mm256_setzero_si256();
        for (int s = 0; s < 8; s++) { /* sub-block s: chunks 4s .. 4s + 3 */
            for (int j = 0; j < np; j++) {
                const uint8_t *sb = panels[j] + (size_t)b * SB_BYTES;
                if (ask && h0 == 0)
                    ks_panel_ask_ahead(panels[j], next[j], pb,
                                       (size_t)b * SB_BYTES + (size_t)s * (SB_BYTES / 8) + KS_PANEL_AHEAD,
                                       (size_t)b * SB_BYTES + (size_t)(s + 1) * (SB_BYTES / 8) + KS_PANEL_AHEAD, true);
                for (int h = 0; h < nh; h++) {
                    __m256i p16[KS_VEC_DOT_ROWS];
                    for (int c = 0; c < 4; c++) {
                        const __m256i q = _mm256_loadu_si256(
                            (const __m256i *)(sb + CODES_AT + (size_t)(4 * s + c) * 64 + 32 * (size_t)(h0 + h)));
                        const __m256i lo = _mm256_and_si256(q, low4);
                        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
#pragma GCC unroll 4
                        for (int t = 0; t < nt; t++) {
                            const int8_t *qa = x[t]->qs + 32 * s + 4 * c;
                            const __m256i plo = _mm256_maddubs_epi16(lo, bcast4(qa));
                            const __m256i phi = _mm256_maddubs_epi16(hi, bcast4(qa + 16));
                            p16[t] = c == 0 ? add16(plo, phi) : add16(add16(p16[t], plo), phi);
                        }
                    }
                    const half_scales hs = half_scales_of(sb, h0 + h);
                    const __m256i sc = byte_pair(hs.sc[s / 4], s % 4, s % 4);
#pragma GCC unroll 4
                    for (int t = 0; t < nt; t++)
                        sumi[j][h][t] = add32(sumi[j][h][t], _mm256_madd_epi16(p16[t], sc));
                }
            }
        }
        for (int j = 0; j < np; j++) {
            const uint8_t *sb = panels[j] + (size_t)b * SB_BYTES;
            for (int h = 0; h < nh; h++) {
                const half_scales hs = half_scales_of(sb, h0 + h);
                const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sb + 16 * (size_t)(h0 + h))));
                const __m256 dmw =
                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(sb + 32 + 16 * (size_t)(h0 + h))));
                for (int t = 0; t < nt; t++) {
                    const float *da = (const float *)(pk + (size_t)t * pk_stride);
                    const int32_t *sp = (const int32_t *)(da + nsb) + 4 * b;
                    __m256i summ = _mm256_madd_epi16(byte_pair(hs.mn[0], 0, 1), _mm256_set1_epi32(sp[0]));
                    summ = add32(summ, _mm256_madd_epi16(byte_pair(hs.mn[0], 2, 3), _mm256_set1_epi32(sp[1])));
                    summ = add32(summ, _mm256_madd_epi16(byte_pair(hs.mn[1], 0, 1), _mm256_set1_epi32(sp[2])));
                    summ = add32(summ, _mm256_madd_epi16(byte_pair(hs.mn[1], 2, 3), _mm256_set1_epi32(sp[3])));
                    const __m256 dt = _mm256_set1_ps(da[b]);
                    acc[j][h][t] =
                        _mm256_fmadd_ps(_mm256_mul_ps(dw, dt), _mm256_cvtepi32_ps(sumi[j][h][t]), acc[j][h][t]);
                    accm[j][h][t] = _mm256_fmadd_ps(_mm256_mul_ps(dmw, dt), _mm256_cvtepi32_ps(summ), accm[j][h][t]);
                }
            }
        }
    }
    for (int j = 0; j < np; j++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < nt; t++)
                _mm256_storeu_ps(y[j] + (size_t)t * ldy + 8 * (size_t)(h0 + h),
                                 _mm256_sub_ps(acc[j][h][t], accm[j][h][t]));
}

/* As much of the call in one pass as 16 registers hold, the rest in more. */
static KS_ALWAYS_INLINE void gemv_q4_k(const void *const panels[2], const void *const next[2], const uint8_t *a,
                                       size_t a_stride, const uint8_t *pk, size_t pk_stride, const int nt, const int np,
                                       int64_t n, float *const y[2], size_t ldy) {
    const uint8_t *const p[2] = {panels[0], panels[1]};
    const void *const nx[2] = {next ? next[0] : NULL, next ? next[1] : NULL};
    const bool ask = next != NULL;
    if (np * nt * 2 <= KS_VEC_DOT_ROWS) {
        gemv_halves(p, nx, ask, 0, 2, a, a_stride, pk, pk_stride, nt, np, n, y, ldy);
    } else if (np * nt <= KS_VEC_DOT_ROWS) {
        for (int h = 0; h < 2; h++)
            gemv_halves(p, nx, ask, h, 1, a, a_stride, pk, pk_stride, nt, np, n, y, ldy);
    } else {
        for (int j = 0; j < np; j++)
            for (int h = 0; h < 2; h++)
                gemv_halves(p + j, nx + j, ask, h, 1, a, a_stride, pk, pk_stride, nt, 1, n, y + j, ldy);
    }
}

static void q4_k_gemv(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride,
                      const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) {
    const int two = panels[1] != NULL;
    switch (nt) {
    case 1:
        two ? gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 1, 2, n, y, ldy)
            : gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 1, 1, n, y, ldy);
        break;
    case 2:
        two ? gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 2, 2, n, y, ldy)
            : gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 2, 1, n, y, ldy);
        break;
    case 3:
        two ? gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 3, 2, n, y, ldy)
            : gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 3, 1, n, y, ldy);
        break;
    default:
        two ? gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 4, 2, n, y, ldy)
            : gemv_q4_k(panels, next, a, a_stride, pk, pk_stride, 4, 1, n, y, ldy);
        break;
    }
}

void ks_panel_k_avx2_register(ks_kernels *k) {
    ks_panel_kernels *p = &k->panel[KS_TYPE_Q4_K];
    ks_panel_ref(KS_TYPE_Q4_K, p);
    p->gemv = q4_k_gemv;
}
