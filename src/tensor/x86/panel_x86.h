/* panel_x86.h — what the AVX-512 panel GEMVs share (panel_*_avx512.c): how each of a
 * call's two streams of panels asks the cache for its bytes ahead of use (panel_ask_x86.h),
 * the activation broadcasts and the VNNI dot steps.
 *
 * Only static inline code, for files compiled with AVX-512. */
#ifndef KS_PANEL_X86_H
#define KS_PANEL_X86_H

#include "core/ks_core.h"
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/x86/panel_ask_x86.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Four activation bytes at p in every dword: one broadcast load (through a general
 * register it would take a shuffle port as well). */
static KS_ALWAYS_INLINE __m512i ks_panel_bcast4(const void *p) {
    return _mm512_broadcastd_epi32(_mm_loadu_si32(p));
}

/* The exact sums of 32 codes per row: init + the eight code vectors v[k] (four codes of
 * each of the 16 rows) times activation bytes q[4k .. 4k + 3], as two chains of four
 * vpdpbusd side by side (one chain would wait on each product's latency). */
static KS_ALWAYS_INLINE __m512i ks_panel_dot32(const __m512i v[8], const uint8_t *q, __m512i init) {
    __m512i s0 = _mm512_dpbusd_epi32(init, v[0], ks_panel_bcast4(q + 4 * 0));
    __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[1], ks_panel_bcast4(q + 4 * 1));
    s0 = _mm512_dpbusd_epi32(s0, v[2], ks_panel_bcast4(q + 4 * 2));
    s1 = _mm512_dpbusd_epi32(s1, v[3], ks_panel_bcast4(q + 4 * 3));
    s0 = _mm512_dpbusd_epi32(s0, v[4], ks_panel_bcast4(q + 4 * 4));
    s1 = _mm512_dpbusd_epi32(s1, v[5], ks_panel_bcast4(q + 4 * 5));
    s0 = _mm512_dpbusd_epi32(s0, v[6], ks_panel_bcast4(q + 4 * 6));
    s1 = _mm512_dpbusd_epi32(s1, v[7], ks_panel_bcast4(q + 4 * 7));
    return _mm512_add_epi32(s0, s1);
}

/* The exact sums of 16 codes per row: init + the four code vectors v[k] times activation
 * bytes q[4k .. 4k + 3], one chain of vpdpbusd (the layouts with a scale per 16 codes). */
static KS_ALWAYS_INLINE __m512i ks_panel_dot16(const __m512i v[4], const uint8_t *q, __m512i init) {
    __m512i s = _mm512_dpbusd_epi32(init, v[0], ks_panel_bcast4(q + 4 * 0));
    s = _mm512_dpbusd_epi32(s, v[1], ks_panel_bcast4(q + 4 * 1));
    s = _mm512_dpbusd_epi32(s, v[2], ks_panel_bcast4(q + 4 * 2));
    return _mm512_dpbusd_epi32(s, v[3], ks_panel_bcast4(q + 4 * 3));
}

/* One group of 16 codes against the call's nt tokens: sumi[t] += sc * (the group's 16
 * rows' sums from corr[t][i], or 0 where corr is NULL), the token's activation bytes at
 * a + t * a_stride, super-block b, codes 16 g .. 16 g + 15. short_sums: the layout's group
 * sums fit in int16 (Q3_K's and Q2_K's: at most 16 x 4 x 128 in magnitude) and sc holds
 * each row's scale in its dword's low int16, 0 in its high one, so the product and the
 * add are one vpdpwssd (the sum's high int16, its sign, meets the 0); else a vpmulld and
 * an add (short_sums a constant where inlined). */
static KS_ALWAYS_INLINE void ks_panel_group16(const uint8_t *a, size_t a_stride, int64_t b, int g, const __m512i v[4],
                                              __m512i sc, const int32_t *const *corr, size_t i, int nt,
                                              __m512i *sumi, const bool short_sums) {
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        const uint8_t *q = a + (size_t)t * a_stride + (size_t)b * sizeof(ks_block_q8_k) + offsetof(ks_block_q8_k, qs) +
                           (size_t)g * 16;
        const __m512i s = ks_panel_dot16(v, q, corr ? _mm512_set1_epi32(corr[t][i]) : _mm512_setzero_si512());
        sumi[t] = short_sums ? _mm512_dpwssd_epi32(sumi[t], s, sc)
                             : _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(sc, s));
    }
}

/* The float step that closes a super-block for one panel: acc[t] += (d * da_t) * sumi[t]
 * for the nt tokens, dw the 16 rows' d (one FMA serves all 16 rows). */
static KS_ALWAYS_INLINE void ks_panel_close_superblock(__m512 *acc, __m512 dw, const float *const *da, int64_t b,
                                                       const __m512i *sumi, int nt) {
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(da[t][b])), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
}

/* The same for the layouts with mins (Q4_K, Q5_K, Q2_K): acc[t] += (d * da_t) * sumi[t],
 * accm[t] += (dmin * da_t) * summ[t], dmw the rows' dmin; the result is acc - accm. */
static KS_ALWAYS_INLINE void ks_panel_close_superblock_mins(__m512 *acc, __m512 *accm, __m512 dw, __m512 dmw,
                                                            const float *const *da, int64_t b, const __m512i *sumi,
                                                            const __m512i *summ, int nt) {
    for (int t = 0; t < nt; t++) {
        const __m512 dt = _mm512_set1_ps(da[t][b]);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dt), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
        accm[t] = _mm512_fmadd_ps(_mm512_mul_ps(dmw, dt), _mm512_cvtepi32_ps(summ[t]), accm[t]);
    }
}

/* The results of np panels x nt tokens for the layouts with mins: acc - accm. */
static KS_ALWAYS_INLINE void ks_panel_store_mins(float *const y[2], size_t ldy, const __m512 acc[][KS_VEC_DOT_ROWS],
                                                 const __m512 accm[][KS_VEC_DOT_ROWS], int np, int nt) {
    for (int j = 0; j < np; j++)
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(y[j] + (size_t)t * ldy, _mm512_sub_ps(acc[j][t], accm[j][t]));
}

/* The results of np panels x nt tokens: y[j][t * ldy + row] = acc[j][t]. */
static KS_ALWAYS_INLINE void ks_panel_store(float *const y[2], size_t ldy, const __m512 acc[][KS_VEC_DOT_ROWS], int np,
                                           int nt) {
    for (int j = 0; j < np; j++)
        for (int t = 0; t < nt; t++)
            _mm512_storeu_ps(y[j] + (size_t)t * ldy, acc[j][t]);
}

/* The body of a panel GEMV entry (kernels.h, ks_panel_kernels.gemv, its arguments in
 * scope by their names there): calls GEMV_NT(panels, next, a, a_stride, pk, pk_stride, nt,
 * np, n, y, ldy), an always-inline function, with nt (1..4) and np (1 or 2) constants. */
#define KS_PANEL_GEMV_DISPATCH(GEMV_NT)                                                       \
    do {                                                                                      \
        const int np_ = panels[1] ? 2 : 1;                                                    \
        switch (nt * 2 + np_ - 3) {                                                           \
        case 0: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 1, 1, n, y, ldy); break;    \
        case 1: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 1, 2, n, y, ldy); break;    \
        case 2: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 2, 1, n, y, ldy); break;    \
        case 3: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 2, 2, n, y, ldy); break;    \
        case 4: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 3, 1, n, y, ldy); break;    \
        case 5: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 3, 2, n, y, ldy); break;    \
        case 6: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 4, 1, n, y, ldy); break;    \
        default: GEMV_NT(panels, next, a, a_stride, pk, pk_stride, 4, 2, n, y, ldy); break;   \
        }                                                                                     \
    } while (0)

/* Defines the panel GEMV entry `name` (kernels.h, ks_panel_kernels.gemv) over GEMV_NT. */
#define KS_PANEL_GEMV_ENTRY(name, GEMV_NT)                                                               \
    static void name(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride, \
                     const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) { \
        KS_PANEL_GEMV_DISPATCH(GEMV_NT);                                                                 \
    }

#endif
