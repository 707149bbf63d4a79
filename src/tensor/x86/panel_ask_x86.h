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

/* How far ahead of its reads a stream asks for its bytes, into L2, whenever the caller
 * gives the next panels (the first tokens' call of each panel pair does): with three or
 * four tokens a call's arithmetic leaves the hardware prefetchers behind (decode of
 * Qwen3-0.6B Q8_0, 2 threads, 4 tokens, against the row kernels in alternated runs: T1
 * 4096 B +17%, T0 2048 B +8%), and one token's decode needs the requests too: on Intel
 * cores one core's stream prefetchers leave it far below its share of the bandwidth (an
 * Ice Lake Xeon VM, the 30B-A3B shape's 4 layers Q4_K_M, 2 threads: tg64 37-43 -> 47-51
 * t/s), and on a Zen 4 VM a single token's decode, 2 threads, medians of alternated runs
 * (kvserve bench -p 0 -n 64 -r 5): Qwen3-0.6B Q4_K_M 54.1 -> 61.9 t/s, Q8_0 40.7 -> 47.5,
 * the 30B-A3B shape's 4 layers Q4_K_M 63.0 -> 78.1, Q8_0 50.0 -> 53.7; 2 KiB ahead fell
 * back to 54, 8 KiB was as good as 4 (an earlier build asked 1 KiB ahead into L1, and
 * there left one or two tokens to the hardware). */
#define KS_PANEL_AHEAD 4096

/* Whether a line is asked for: every line, or (pairs) the first of each aligned 128-byte
 * pair only, whose partner the L2's adjacent-line prefetcher brings with it. */
static KS_ALWAYS_INLINE bool ks_panel_ask_line(uintptr_t at, bool pairs) { return !pairs || !(at & 64); }

/* Asks for bytes [lo, hi) of a stream that reads panel p (pb bytes), then next, where
 * the caller asks for it (ask): each cache line that starts in the range (pairs: the
 * first of each pair among them), so that calls over consecutive ranges ask for every
 * line (pair) once. */
static KS_ALWAYS_INLINE void ks_panel_ask_lines(const uint8_t *p, const uint8_t *next, size_t pb, size_t lo, size_t hi,
                                                bool ask, bool pairs) {
    if (!ask)
        return;
    if (hi <= pb) {
        const uintptr_t end = (uintptr_t)(p + hi);
        for (uintptr_t at = ((uintptr_t)(p + lo) + 63) & ~(uintptr_t)63; at < end; at += 64)
            if (ks_panel_ask_line(at, pairs))
                _mm_prefetch((const char *)at, _MM_HINT_T1);
        return;
    }
    for (size_t o = lo; o < hi; o += 64) {
        const uint8_t *at = o < pb ? p + o : next ? next + (o - pb) : NULL;
        if (!at)
            return;
        if (ks_panel_ask_line((uintptr_t)at, pairs))
            _mm_prefetch((const char *)at, _MM_HINT_T1);
    }
}

/* Every line of [lo, hi) (see ks_panel_ask_lines). */
static KS_ALWAYS_INLINE void ks_panel_ask_ahead(const uint8_t *p, const uint8_t *next, size_t pb, size_t lo, size_t hi,
                                                bool ask) {
    ks_panel_ask_lines(p, next, pb, lo, hi, ask, false);
}

#endif
