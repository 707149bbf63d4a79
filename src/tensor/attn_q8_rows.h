/* attn_q8_rows.h — the walk of attn_scores_q8q (kernels.h) over query rows and keys,
 * written once for the tables whose score tiles hold one Q8_0 block per vector
 * (x86/attn_q8_avx2.c, arm/attn_q8_dotprod.c). The including file defines
 *
 *   Q8_MAX_BLOCKS             most blocks of a row (KS_ATTN_TILE_DIM / 32)
 *   q8_dvec                   a vector of floats holding one block's d in every lane
 *   q8_block_d(b)             that vector for block b
 *   Q8_ACC                    accumulators of a tile (8 or 16)
 *   tile(nr, nk, nb, qr, qd, k, ld_bytes, nk_valid, scale, s, ld_s, pf)
 *                             the scores of nr rows (qr[r], their blocks' d qd[r][b]) x
 *                             nk keys (ld_bytes apart, the last nk - nk_valid pointing
 *                             at the last valid one) of nb blocks; nr * nk <= Q8_ACC
 *
 * then includes this file, which defines attn_scores_q8q_rows(), the kernel entry.
 * Rows go in tiles of 4 (4 x Q8_ACC / 4 keys), a tail of 2 or 3 as 2 x Q8_ACC / 2 (and
 * one more row alone), one row as 1 x Q8_ACC; each row's blocks' d are widened once per
 * row tile. Heads of 64 and 128 elements have the blocks' loop unrolled. */
#ifndef KS_ATTN_Q8_ROWS_H
#define KS_ATTN_Q8_ROWS_H

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <stdint.h>

/* All nk keys for nr (a constant where inlined) rows. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nkt, int nb, const ks_block_q8_0 *const *qr,
                                       const q8_dvec (*qd)[Q8_MAX_BLOCKS], const void *k, int64_t ld_bytes, int nk,
                                       float scale, float *s, int64_t ld_s, const void *pf) {
    for (int j = 0; j < nk; j += nkt)
        tile(nr, nkt, nb, qr, qd, (const char *)k + j * ld_bytes, ld_bytes, KS_MIN(nk - j, nkt), scale, s + j, ld_s,
             pf ? (const char *)pf + j * ld_bytes : NULL);
}

/* All nq rows against all nk keys, rows of nb blocks (a constant where inlined). */
static KS_ALWAYS_INLINE void scores(int nb, const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    const int64_t ld_bytes = kv_off(KV_Q8, ld_k), ldq_bytes = kv_off(KV_Q8, ld_q);
    const ks_block_q8_0 *qr[4];
    q8_dvec qd[4][Q8_MAX_BLOCKS];
    /* pf's rows are asked for by the first row tile's pass over the keys */
    for (int r0 = 0; r0 < nq; r0 += 4) {
        const int nr = KS_MIN(4, nq - r0);
        for (int r = 0; r < nr; r++) {
            qr[r] = (const ks_block_q8_0 *)((const char *)q + (r0 + r) * ldq_bytes);
            for (int b = 0; b < nb; b++)
                qd[r][b] = q8_block_d(&qr[r][b]);
        }
        const q8_dvec(*qdc)[Q8_MAX_BLOCKS] = (const q8_dvec(*)[Q8_MAX_BLOCKS])qd;
        float *sr = s + r0 * ld_s;
        const void *p = r0 == 0 ? pf : NULL;
        if (nr == 4) {
            tile_rows(4, Q8_ACC / 4, nb, qr, qdc, k, ld_bytes, nk, scale, sr, ld_s, p);
        } else if (nr >= 2) {
            tile_rows(2, Q8_ACC / 2, nb, qr, qdc, k, ld_bytes, nk, scale, sr, ld_s, p);
            if (nr == 3)
                tile_rows(1, Q8_ACC, nb, qr + 2, qdc + 2, k, ld_bytes, nk, scale, sr + 2 * ld_s, ld_s, NULL);
        } else {
            tile_rows(1, Q8_ACC, nb, qr, qdc, k, ld_bytes, nk, scale, sr, ld_s, p);
        }
    }
}

static void attn_scores_q8q_rows(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                 int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3) and 64 unrolled */
    case 64: scores(2, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 128: scores(4, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    default: scores((int)(n / KS_QK8_0), q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    }
}

#endif
