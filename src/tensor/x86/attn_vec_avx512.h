/* attn_vec_avx512.h — the vector of 16 floats and tiles of 16 accumulators that
 * tensor/attn_tiles.h is written over, for the AVX-512 files that include it
 * (attn_avx512.c, attn_bcast_avx512.c).
 *
 * exp (attn_tiles.h) takes its 2^n from vscalefps, which also takes care of results that
 * underflow.
 *
 * A file that defines ATTN_FOLD_BCAST before including this gets value sums whose weight
 * broadcasts are folded into the FMAs ({1to16}); without it each row's weight is
 * broadcast once and shared by the row's FMAs. The two sum the same products in the same
 * order, bit for bit; which is faster depends on the core (attn_bcast_avx512.c).
 *
 * Only static inline code, for files compiled with AVX-512. */
#ifndef KS_ATTN_VEC_AVX512_H
#define KS_ATTN_VEC_AVX512_H

#include "core/ks_core.h"
#include "tensor/fp16.h"

#include <immintrin.h>
#include <stdint.h>

typedef __m512 attn_vec;
typedef __mmask16 attn_mask;
#define ATTN_LANES 16
#define ATTN_TILE 16
#define ATTN_OWN_SCORES /* attn_scores_avx512.c */
#define ATTN_ACC_ROWS 8

static inline attn_mask vmask(int64_t cnt) { return (attn_mask)((1u << cnt) - 1); }
static inline attn_vec vzero(void) { return _mm512_setzero_ps(); }
static inline attn_vec vset1(float x) { return _mm512_set1_ps(x); }
static inline attn_vec vloadm(const float *p, attn_mask m) { return _mm512_maskz_loadu_ps(m, p); }
static inline attn_vec vloadm_or(const float *p, attn_mask m, attn_vec v) {
    return _mm512_mask_loadu_ps(v, m, p);
}
static inline attn_vec vloadm_h(const ks_fp16 *p, attn_mask m, int64_t cnt) {
    (void)cnt;
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
static inline attn_vec vloadm_q8(const int8_t *p, attn_mask m, int64_t cnt) {
    (void)cnt;
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}
static inline attn_vec vset1_h(ks_fp16 d) { return _mm512_cvtph_ps(_mm256_set1_epi16((short)d)); }
static inline void vstorem(float *p, attn_mask m, attn_vec v) { _mm512_mask_storeu_ps(p, m, v); }
static inline attn_vec vkeep(attn_mask m, attn_vec v) { return _mm512_maskz_mov_ps(m, v); }
static inline attn_vec vfma(attn_vec a, attn_vec b, attn_vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline attn_vec vadd(attn_vec a, attn_vec b) { return _mm512_add_ps(a, b); }
static inline attn_vec vsub(attn_vec a, attn_vec b) { return _mm512_sub_ps(a, b); }
static inline attn_vec vmax(attn_vec a, attn_vec b) { return _mm512_max_ps(a, b); }
static inline float vhsum(attn_vec v) { return _mm512_reduce_add_ps(v); }
static inline float vhmax(attn_vec v) { return _mm512_reduce_max_ps(v); }

/* e^-104 rounds to 0 (half the smallest denormal is e^-103.97): inputs are clamped there,
 * and those below give 0 */
#define ATTN_EXP_MIN -104.0f
static inline attn_vec vround(attn_vec x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline attn_vec vmul(attn_vec a, attn_vec b) { return _mm512_mul_ps(a, b); }
static inline attn_vec vfnma(attn_vec a, attn_vec b, attn_vec c) { return _mm512_fnmadd_ps(a, b, c); }
/* p 2^n, underflowing as the product would; 0 where the unclamped input x was below
 * ATTN_EXP_MIN (-inf among them) */
static inline attn_vec vldexp(attn_vec p, attn_vec n, attn_vec x) {
    return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(ATTN_EXP_MIN), _CMP_GE_OQ), p, n);
}

#ifdef ATTN_FOLD_BCAST
/* c + w[0] b with w's broadcast folded into the FMA as its memory operand ({1to16}). As a
 * vbroadcastss of its own, shared by the row's FMAs, the broadcasts of a decode token's 8
 * rows took issue slots the FMAs needed (in L1, one thread on a Zen 4: 49 -> 57 GMAC/s, the
 * FMA peak). The compilers keep one broadcast for both FMAs of a row when written as
 * intrinsics, hence the instruction itself. */
#define ATTN_FMA_BCAST
static inline attn_vec vfma_bcast(const float *w, attn_vec b, attn_vec c) {
    __asm__("vfmadd231ps %[w]%{1to16%}, %[b], %[c]" : [c] "+v"(c) : [b] "v"(b), [w] "m"(*w));
    return c;
}
#endif

#endif
