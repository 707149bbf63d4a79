/* attn_q8p_dotprod.c — the attention scores of Q8_0 keys in panels against Q8_0 queries
 * with SDOT (kernels.h: attn_scores_q8p), for CPUs with the ARMv8.2-A dot-product
 * extension: the NEON form of x86/attn_q8p_avx512.c, registered with the other SDOT
 * kernels (vec_dot_dotprod.c) only where ks_cpu_detect()->dotprod.
 *
 * Owns: the panel score tiles, their summation order, ks_attn_q8p_dotprod_register().
 *
 * A 128-bit vector holds the same four elements of 4 keys of a panel (attn_kv.h:
 * kv_q8_panel), key i in lane i; SDOT's lane form multiplies them by one group of four
 * of the query's codes. Per query row r, block b and keys key0 .. key0 + 7:
 *
 *   X = sum over the block's 8 groups g of sdot_lane(k_g, q_r, g)   2 x 4 int32 lanes,
 *                                        lane i the exact dot product of key key0 + i's
 *                                        and the query's codes (signed products)
 *   F += (float(X) dq_rb) dk_b           an FMA (from 0: the first block's exact product)
 *
 * and the 8 scores are scale times F's lanes: no sums across lanes, where the form over
 * keys in rows that this replaced added 4 lanes per score. Every score takes these steps whatever tile
 * it falls in. Tiles: 4, 2 or 1 query rows x 8 keys (4 rows' int and float sums take 16
 * of the 32 registers; the walk over them attn_q8p_walk.h's).
 *
 * Tested against the reference under qemu (tests/kernels/cross_arm); its speed has not
 * been measured on an ARM CPU. */
#include "tensor/arm/kernels_arm.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#define TILE_ROWS 4

/* Group g of block b for the tile's rows: keys key0 .. key0 + 3 into a[r][0], the next
 * four into a[r][1], against the query's codes 4g .. 4g + 3 (lane g % 4 of q[r][g / 4]). */
#define SDOT_GROUP(g)                                                                          \
    do {                                                                                       \
        const int8x16_t k0 = vld1q_s8(p[b].qs[g][key0]), k1 = vld1q_s8(p[b].qs[g][key0 + 4]); \
        for (int r = 0; r < nr; r++) {                                                         \
            a[r][0] = vdotq_laneq_s32(a[r][0], k0, q[r][(g) / 4], (g) % 4);                   \
            a[r][1] = vdotq_laneq_s32(a[r][1], k1, q[r][(g) / 4], (g) % 4);                   \
        }                                                                                      \
    } while (0)

/* Scores of nr (<= 4) query rows qr[r] of nb blocks against keys key0 .. key0 + 7 (key0
 * 0 or 8) of the panels p, the first nk_valid (1..8) stored to s + r * ld_s; pf: panels
 * to ask the cache for. */
static KS_ALWAYS_INLINE void tile(int nr, int nb, const kv_q8_query *const *qr, const kv_q8_panel *p, int key0,
                                  int nk_valid, float scale, float *s, int64_t ld_s, const kv_q8_panel *pf) {
    float32x4_t f[TILE_ROWS][2];
    for (int r = 0; r < nr; r++)
        f[r][0] = f[r][1] = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++) {
        if (pf)
            kv_prefetch_lines(pf, (int64_t)sizeof(kv_q8_panel) * b, (int64_t)sizeof(kv_q8_panel) * (b + 1));
        int32x4_t a[TILE_ROWS][2];
        int8x16_t q[TILE_ROWS][2];
        for (int r = 0; r < nr; r++) {
            a[r][0] = a[r][1] = vdupq_n_s32(0);
            q[r][0] = vld1q_s8(qr[r][b].qs);
            q[r][1] = vld1q_s8(qr[r][b].qs + 16);
        }
        SDOT_GROUP(0);
        SDOT_GROUP(1);
        SDOT_GROUP(2);
        SDOT_GROUP(3);
        SDOT_GROUP(4);
        SDOT_GROUP(5);
        SDOT_GROUP(6);
        SDOT_GROUP(7);
        const float32x4_t d0 = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p[b].d + key0)));
        const float32x4_t d1 = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p[b].d + key0 + 4)));
        for (int r = 0; r < nr; r++) {
            const float dq = qr[r][b].d;
            f[r][0] = vfmaq_f32(f[r][0], vmulq_n_f32(vcvtq_f32_s32(a[r][0]), dq), d0);
            f[r][1] = vfmaq_f32(f[r][1], vmulq_n_f32(vcvtq_f32_s32(a[r][1]), dq), d1);
        }
    }
    for (int r = 0; r < nr; r++) {
        float out[8];
        vst1q_f32(out, vmulq_n_f32(f[r][0], scale));
        vst1q_f32(out + 4, vmulq_n_f32(f[r][1], scale));
        memcpy(s + r * ld_s, out, (size_t)KS_MIN(nk_valid, 8) * sizeof(float));
    }
}

#define Q8P_ROWS TILE_ROWS
#define Q8P_KEYS 8
#include "tensor/attn_q8p_walk.h"

void ks_attn_q8p_dotprod_register(ks_kernels *k) { k->attn_scores_q8p = attn_scores_q8p_walk; }
