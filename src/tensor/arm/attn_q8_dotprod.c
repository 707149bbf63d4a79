/* attn_q8_dotprod.c — the attention scores of Q8_0 keys against Q8_0 queries with SDOT
 * (kernels.h: attn_scores_q8q), for CPUs with the ARMv8.2-A dot-product extension: the
 * NEON form of x86/attn_q8_avx512.c. kernels.c registers it with the other SDOT kernels
 * only where ks_cpu_detect()->dotprod; elsewhere Q8_0 keys are widened to floats
 * (attn_tiles.h) and scored against float queries.
 *
 * Owns: the score tiles, their summation order, ks_attn_q8_dotprod_register().
 *
 * Per query row r, key j and block b (two 16-byte halves):
 *
 *   X = sdot(sdot(0, k_lo, q_lo), k_hi, q_hi)   4 int32 lanes, exact (signed products,
 *                                               four to a lane per SDOT)
 *   F += float(X) (dq_r dk_j)                   the block's scales' product (exact) in
 *                                               every lane; the first block a multiply
 *
 * and the score is scale times (F0 + F1) + (F2 + F3). Every score takes these steps
 * whatever tile it falls in, so a query scores the same in a prefill tile and alone in
 * decode. Tiles: NR query rows x NK keys, NR * NK <= 16 accumulators (4 x 4, 2 x 8,
 * 1 x 16); a key tail points at the last key again and drops those results.
 *
 * Tested against the reference under qemu (tests/kernels/cross_arm); its speed has not
 * been measured on an ARM CPU. */
#include "tensor/arm/kernels_arm.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <arm_neon.h>
#include <stdint.h>

#define MAX_BLOCKS (KS_ATTN_TILE_DIM / KS_QK8_0)

/* d of a block in all 4 lanes */
static KS_ALWAYS_INLINE float32x4_t block_d(const ks_block_q8_0 *b) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(b->d)));
}

/* s[r * ld_s + j], r < nr, j < nk_valid, for a tile of nr rows x nk keys of nb blocks
 * (nr, nk, nb constants where inlined); qd[r][b]: row r's block d. */
static KS_ALWAYS_INLINE void tile(int nr, int nk, int nb, const ks_block_q8_0 *const *qr,
                                  const float32x4_t (*qd)[MAX_BLOCKS], const char *k, int64_t ld_bytes,
                                  int nk_valid, float scale, float *s, int64_t ld_s, const char *pf) {
    float32x4_t acc[16];
    for (int a = 0; a < 16; a++)
        acc[a] = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 16
        for (int j = 0; j < nk; j++) {
            const int64_t jj = j < nk_valid ? j : nk_valid - 1;
            const ks_block_q8_0 *kb = (const ks_block_q8_0 *)(k + jj * ld_bytes) + b;
            if (pf)
                kv_prefetch_lines(pf + jj * ld_bytes, (int64_t)sizeof(ks_block_q8_0) * b,
                                  (int64_t)sizeof(ks_block_q8_0) * (b + 1));
            const int8x16_t klo = vld1q_s8(kb->qs), khi = vld1q_s8(kb->qs + 16);
            const float32x4_t dk = block_d(kb);
#pragma GCC unroll 4
            for (int r = 0; r < nr; r++) {
                const int8_t *q = qr[r][b].qs;
                const int32x4_t xi = vdotq_s32(vdotq_s32(vdupq_n_s32(0), klo, vld1q_s8(q)), khi, vld1q_s8(q + 16));
                const float32x4_t x = vcvtq_f32_s32(xi), dd = vmulq_f32(dk, qd[r][b]);
                acc[r * nk + j] = b == 0 ? vmulq_f32(x, dd) : vfmaq_f32(acc[r * nk + j], x, dd);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nk_valid; j++) {
            const float32x4_t a = acc[r * nk + j];
            const float32x2_t p = vpadd_f32(vget_low_f32(a), vget_high_f32(a)); /* e0 + e1, e2 + e3 */
            s[r * ld_s + j] = scale * (vget_lane_f32(p, 0) + vget_lane_f32(p, 1));
        }
}

/* All nk keys for nr (a constant where inlined) rows. */
static KS_ALWAYS_INLINE void tile_rows(int nr, int nkt, int nb, const ks_block_q8_0 *const *qr,
                                       const float32x4_t (*qd)[MAX_BLOCKS], const void *k, int64_t ld_bytes,
                                       int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    for (int j = 0; j < nk; j += nkt)
        tile(nr, nkt, nb, qr, qd, (const char *)k + j * ld_bytes, ld_bytes, KS_MIN(nk - j, nkt), scale, s + j, ld_s,
             pf ? (const char *)pf + j * ld_bytes : NULL);
}

/* All nq rows against all nk keys, rows of nb blocks (a constant where inlined). */
static KS_ALWAYS_INLINE void scores(int nb, const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                    int nk, float scale, float *s, int64_t ld_s, const void *pf) {
    const int64_t ld_bytes = kv_off(KV_Q8, ld_k), ldq_bytes = kv_off(KV_Q8, ld_q);
    const ks_block_q8_0 *qr[4];
    float32x4_t qd[4][MAX_BLOCKS];
    /* pf's rows are asked for by the first row tile's pass over the keys */
    for (int r0 = 0; r0 < nq; r0 += 4) {
        const int nr = KS_MIN(4, nq - r0);
        for (int r = 0; r < nr; r++) {
            qr[r] = (const ks_block_q8_0 *)((const char *)q + (r0 + r) * ldq_bytes);
            for (int b = 0; b < nb; b++)
                qd[r][b] = block_d(&qr[r][b]);
        }
        float *sr = s + r0 * ld_s;
        const void *p = r0 == 0 ? pf : NULL;
        if (nr == 4) {
            tile_rows(4, 4, nb, qr, (const float32x4_t(*)[MAX_BLOCKS])qd, k, ld_bytes, nk, scale, sr, ld_s, p);
        } else if (nr >= 2) {
            tile_rows(2, 8, nb, qr, (const float32x4_t(*)[MAX_BLOCKS])qd, k, ld_bytes, nk, scale, sr, ld_s, p);
            if (nr == 3)
                tile_rows(1, 16, nb, qr + 2, (const float32x4_t(*)[MAX_BLOCKS])(qd + 2), k, ld_bytes, nk, scale,
                          sr + 2 * ld_s, ld_s, NULL);
        } else {
            tile_rows(1, 16, nb, qr, (const float32x4_t(*)[MAX_BLOCKS])qd, k, ld_bytes, nk, scale, sr, ld_s, p);
        }
    }
}

static void attn_scores_q8q_dotprod(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                    int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    switch (n) { /* heads of 128 (Qwen3) and 64 unrolled */
    case 64: scores(2, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    case 128: scores(4, q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    default: scores((int)(n / KS_QK8_0), q, ld_q, nq, k, ld_k, nk, scale, s, ld_s, pf); break;
    }
}

void ks_attn_q8_dotprod_register(ks_kernels *k) { k->attn_scores_q8q = attn_scores_q8q_dotprod; }
