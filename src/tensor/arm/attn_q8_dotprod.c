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
 * 1 x 16, the rows' walk attn_q8_rows.h's); a key tail points at the last key again and
 * drops those results.
 *
 * Tested against the reference under qemu (tests/kernels/cross_arm); its speed has not
 * been measured on an ARM CPU. */
#include "tensor/arm/kernels_arm.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <arm_neon.h>
#include <stdint.h>

typedef float32x4_t q8_dvec;
#define Q8_MAX_BLOCKS (KS_ATTN_TILE_DIM / KS_QK8_0)
#define Q8_ACC 16

/* d of a block in all 4 lanes */
static KS_ALWAYS_INLINE float32x4_t q8_block_d(const ks_block_q8_0 *b) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(b->d)));
}

/* s[r * ld_s + j], r < nr, j < nk_valid, for a tile of nr rows x nk keys of nb blocks
 * (nr, nk, nb constants where inlined); qd[r][b]: row r's block d. */
static KS_ALWAYS_INLINE void tile(int nr, int nk, int nb, const ks_block_q8_0 *const *qr,
                                  const float32x4_t (*qd)[Q8_MAX_BLOCKS], const char *k, int64_t ld_bytes,
                                  int nk_valid, float scale, float *s, int64_t ld_s, const char *pf) {
    float32x4_t acc[16];
    for (int a = 0; a < 16; a++)
        acc[a] = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 16
        for (int j = 0; j < nk; j++) {
            const ks_block_q8_0 *kb = kv_q8_key_block(k, ld_bytes, j, nk_valid, b, pf);
            const int8x16_t klo = vld1q_s8(kb->qs), khi = vld1q_s8(kb->qs + 16);
            const float32x4_t dk = q8_block_d(kb);
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

#include "tensor/attn_q8_rows.h"

void ks_attn_q8_dotprod_register(ks_kernels *k) { k->attn_scores_q8q = attn_scores_q8q_rows; }
