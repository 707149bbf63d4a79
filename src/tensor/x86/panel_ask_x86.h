/* panel_ask_x86.h — how each of a panel GEMV's two streams of panels asks the cache for
 * its bytes ahead of use (panel_*_avx512.c, panel_*_avx2.c; panel_x86.h includes it).
 *
 * Only static inline code, for files compiled with at least SSE. */
#ifndef KS_PANEL_ASK_X86_H
#define KS_PANEL_ASK_X86_H

#include "core/ks_core.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How far ahead of its reads a stream asks for its bytes, into L2, where the caller asks
 * for it (kernels.h: ks_kernels.panel_ask_min_tokens): with three or four tokens a call's
 * arithmetic leaves the hardware prefetchers behind (decode of Qwen3-0.6B Q8_0, 2
 * threads, 4 tokens, against the row kernels in alternated runs: T1 4096 B +17%, T0 2048
 * B +8%).
 *
 * With one or two tokens a panel is read faster than memory serves it, and on Zen 4 the
 * stream prefetchers keep up with two sequential streams a thread by themselves: asking
 * as well only costs instructions. Two threads over a 255 MB Q6_K matrix (the 30B-A3B
 * shape's output) or matrices of 768 rows (its experts), against a plain read of the same
 * bytes in alternated runs on the Zen 4 VM: Q8_0 0.88 -> 1.01 of the read (small
 * matrices 0.81 -> 0.99), Q4_K 0.94 -> 1.00, Q6_K small 0.91 -> 0.95 (asking 1 KiB ahead
 * into L1 -> not asking); one thread hot in L2, Q4_K 41 -> 63 GB/s; the 30B-A3B shape's
 * Q4_K_M decode 84-90% -> 88-96% of the bandwidth read around each rep. */
#define KS_PANEL_AHEAD 4096

/* Asks for bytes [lo, hi) of a stream that reads panel p (pb bytes), then next, where
 * the caller asks for it (ask): each cache line that starts in the range, so that calls
 * over consecutive ranges ask for every line once. */
static KS_ALWAYS_INLINE void ks_panel_ask_ahead(const uint8_t *p, const uint8_t *next, size_t pb, size_t lo, size_t hi,
                                       bool ask) {
    if (!ask)
        return;
    if (hi <= pb) {
        const uintptr_t end = (uintptr_t)(p + hi);
        for (uintptr_t at = ((uintptr_t)(p + lo) + 63) & ~(uintptr_t)63; at < end; at += 64)
            _mm_prefetch((const char *)at, _MM_HINT_T1);
        return;
    }
    for (size_t o = lo; o < hi; o += 64) {
        const uint8_t *at = o < pb ? p + o : next ? next + (o - pb) : NULL;
        if (!at)
            return;
        _mm_prefetch((const char *)at, _MM_HINT_T1);
    }
}

#endif
