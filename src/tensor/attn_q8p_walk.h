/* attn_q8p_walk.h — the walk of attn_scores_q8p (kernels.h) over query rows and keys in
 * panels (attn_kv.h: kv_q8_panel), written once for the tables that score them
 * (x86/attn_q8p_avx512.c, x86/attn_q8p_avx2.c). The including file defines
 *
 *   Q8P_ROWS     most query rows of a tile (8 or 4)
 *   Q8P_KEYS     keys of a tile: a panel's 16, or 8 (half of one)
 *   tile(nr, nb, qr, p, key0, nk_valid, scale, s, ld_s, pf)
 *                the scores of nr rows (qr[r], kv_q8_query blocks) against keys key0 ..
 *                key0 + Q8P_KEYS - 1 of the panels p (nb blocks), the first nk_valid
 *                stored to s + r * ld_s; pf: panels to ask the cache for (NULL: none)
 *
 * then includes this file, which defines attn_scores_q8p_walk(), the kernel entry. Rows
 * go in tiles of Q8P_ROWS, then of 4, 2 and 1 for the rest; pf's panels are asked for by
 * the first row tile's pass over the keys. Heads of 64, 128 and 256 elements have the
 * blocks' loop unrolled. */
#ifndef KS_ATTN_Q8P_WALK_H
#define KS_ATTN_Q8P_WALK_H

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <stdint.h>

/* nr (a constant where inlined) rows at qr against all nk keys, panels gs bytes apart. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nb, const kv_q8_query *const *qr, const char *k, int64_t gs,
                                       int nk, float scale, float *s, int64_t ld_s, const char *pf) {
    for (int j = 0; j < nk; j += Q8P_KEYS) {
        const int g = j / KV_PANEL_KEYS, key0 = j % KV_PANEL_KEYS;
        tile(nr, nb, qr, (const kv_q8_panel *)(k + g * gs), key0, KS_MIN(nk - j, Q8P_KEYS), scale, s + j, ld_s,
             pf && key0 == 0 ? (const kv_q8_panel *)(pf + g * gs) : NULL);
    }
}

/* All nq rows against all nk keys, rows of nb blocks (a constant where inlined). */
static KS_ALWAYS_INLINE void scores(int nb, const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    const int64_t gs = kv_off(KV_Q8, KV_PANEL_KEYS * ld_k);
    const kv_q8_query *qb = q;
    for (int r0 = 0, nr; r0 < nq; r0 += nr) {
        const int left = nq - r0;
        nr = left >= Q8P_ROWS ? Q8P_ROWS : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const kv_q8_query *qr[Q8P_ROWS];
        for (int r = 0; r < nr; r++)
            qr[r] = qb + (r0 + r) * (ld_q / KS_QK8_0);
        float *sr = s + r0 * ld_s;
        const char *p = r0 == 0 ? pf : NULL;
        if (nr == Q8P_ROWS)
            tile_rows(Q8P_ROWS, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else if (Q8P_ROWS > 4 && nr == 4)
            tile_rows(4, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else if (nr == 2)
            tile_rows(2, nb, qr, k, gs, nk, scale, sr, ld_s, p);
        else
            tile_rows(1, nb, qr, k, gs, nk, scale, sr, ld_s, p);
    }
}

static void attn_scores_q8p_walk(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk, int64_t n,
                                 float scale, float *s, int64_t ld_s, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3), 64 and 256 unrolled */
    case 64: scores(2, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 128: scores(4, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 256: scores(8, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    default: scores((int)(n / KS_QK8_0), q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    }
}

#endif
