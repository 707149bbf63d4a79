/* panel_x86.h — what the x86 panel GEMVs share (panel_*_avx512.c): how each of a call's
 * two streams of panels asks the cache for its bytes ahead of use.
 *
 * Only static inline code, for files compiled with AVX-512. */
#ifndef KS_PANEL_X86_H
#define KS_PANEL_X86_H

#include "core/ks_core.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How far ahead of its reads a stream asks for its bytes, and into which cache: with
 * one or two tokens a block is read faster than memory serves it, and a short distance
 * into L1 keeps up best; with three or four the arithmetic leaves room for a longer one
 * into L2 (decode of Qwen3-0.6B Q8_0, 2 threads, against the row kernels in alternated
 * runs: 1 token T0 1024 B on par, T1 4096 B -5%; 4 tokens T1 4096 B +17%, T0 2048 B +8%). */
#define KS_PANEL_AHEAD_FEW 1024
#define KS_PANEL_AHEAD_MANY 4096

/* Asks for bytes [lo, hi) of a stream that reads panel p (pb bytes), then next. */
static KS_ALWAYS_INLINE void ks_panel_ask_ahead(const uint8_t *p, const uint8_t *next, size_t pb, size_t lo, size_t hi,
                                       bool many) {
    for (size_t o = lo; o < hi; o += 64) {
        const uint8_t *at = o < pb ? p + o : next ? next + (o - pb) : NULL;
        if (!at)
            return;
        if (many)
            _mm_prefetch((const char *)at, _MM_HINT_T1);
        else
            _mm_prefetch((const char *)at, _MM_HINT_T0);
    }
}

/* Four activation bytes at p in every dword: one broadcast load (through a general
 * register it would take a shuffle port as well). */
static KS_ALWAYS_INLINE __m512i ks_panel_bcast4(const void *p) {
    return _mm512_broadcastd_epi32(_mm_loadu_si32(p));
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

#endif
