/* quants_iq4_ref.c — reference codecs for the non-linear 4-bit types IQ4_NL (one fp16
 * scale per 32 elements) and IQ4_XS (6-bit scales per 32 against one fp16 scale per
 * 256): codes index ks_iq4_values (quants.h), a table denser near zero than Q4_0's
 * evenly spaced levels, where most weights are.
 *
 * Quantizing a group of 32 is a search over scales (no importance matrix, as
 * llama-quantize without one): the group's element of largest magnitude, with its sign,
 * is mapped to the table's ends and to 15 step sizes around them; for each, every
 * element takes the nearest table value, the scale is refit to those codes by weighted
 * least squares (w = x^2: large weights matter most to a dot product), and the fit of
 * least error is kept. IQ4_XS then quantizes the groups' scales against the largest and
 * rounds every element again with the scale it will be decoded with.
 *
 * Divisions: nearest table value; the group search; IQ4_NL; IQ4_XS. */
#include "tensor/ref/quants_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"

#include <math.h>
#include <string.h>

#define GROUP 32           /* elements per scale */
#define ZERO_GROUP_EPS 1e-15f
#define STEPS 7            /* step sizes tried on each side of the plain mapping */

/* Index of the table value nearest v (the lower one on a tie). */
static int nearest_index(float v) {
    if (v <= ks_iq4_values[0])
        return 0;
    if (v >= ks_iq4_values[15])
        return 15;
    int lo = 0, hi = 15; /* values[lo] < v < values[hi] */
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < ks_iq4_values[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - ks_iq4_values[lo] <= ks_iq4_values[hi] - v ? lo : hi;
}

/* Best scale for one group of 32 and its codes in q; 0 (codes of the value nearest 0)
 * for an all-zero group. */
static float search_group(const float *x, uint8_t *q) {
    float amax = 0.0f, ext = 0.0f;
    for (int i = 0; i < GROUP; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            ext = x[i];
        }
    if (amax < ZERO_GROUP_EPS) {
        memset(q, 8, GROUP); /* ks_iq4_values[8] = 1, the smallest */
        return 0.0f;
    }
    float best_scale = ext / ks_iq4_values[0], best_err = INFINITY;
    uint8_t cand[GROUP];
    for (int t = -STEPS; t <= STEPS; t++) {
        /* the extreme element to values[0] (t = 0), or a little past or short of it */
        const float inv = ((float)ks_iq4_values[0] + 0.1f * (float)t * (float)ks_iq4_values[0] / 16.0f) / ext;
        float sxv = 0.0f, svv = 0.0f;
        for (int i = 0; i < GROUP; i++) {
            cand[i] = (uint8_t)nearest_index(inv * x[i]);
            const float w = x[i] * x[i], v = ks_iq4_values[cand[i]];
            sxv += w * x[i] * v;
            svv += w * v * v;
        }
        if (!(svv > 0.0f))
            continue;
        const float scale = sxv / svv;
        float err = 0.0f;
        for (int i = 0; i < GROUP; i++) {
            const float diff = scale * (float)ks_iq4_values[cand[i]] - x[i];
            err += x[i] * x[i] * diff * diff;
        }
        if (err < best_err) {
            best_err = err;
            best_scale = scale;
            memcpy(q, cand, GROUP);
        }
    }
    return best_scale;
}

/* Codes of a group against the scale it is stored with (nothing to do for 0). */
static void round_group(const float *x, float scale, uint8_t *q) {
    if (scale == 0.0f)
        return;
    const float inv = 1.0f / scale;
    for (int i = 0; i < GROUP; i++)
        q[i] = (uint8_t)nearest_index(inv * x[i]);
}

/* 32 codes as 16 bytes: q[j] low nibble, q[j + 16] high nibble (quants.h). */
static void pack_group(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < GROUP / 2; j++)
        qs[j] = (uint8_t)(q[j] | q[j + GROUP / 2] << 4);
}

static void decode_group(const uint8_t *qs, float scale, float *y) {
    for (int j = 0; j < GROUP / 2; j++) {
        y[j] = scale * (float)ks_iq4_values[qs[j] & 0x0f];
        y[j + GROUP / 2] = scale * (float)ks_iq4_values[qs[j] >> 4];
    }
}

/* ---- IQ4_NL ------------------------------------------------------------------------- */

void ks_dequantize_row_iq4_nl_ref(const void *x, float *y, int64_t n) {
    const ks_block_iq4_nl *b = x;
    for (int64_t ib = 0; ib < n / GROUP; ib++)
        decode_group(b[ib].qs, ks_fp16_to_fp32(b[ib].d), y + GROUP * ib);
}

void ks_quantize_row_iq4_nl_ref(const float *x, void *y, int64_t n) {
    ks_block_iq4_nl *b = y;
    uint8_t q[GROUP];
    for (int64_t ib = 0; ib < n / GROUP; ib++, x += GROUP) {
        b[ib].d = ks_fp32_to_fp16(search_group(x, q));
        round_group(x, ks_fp16_to_fp32(b[ib].d), q);
        pack_group(q, b[ib].qs);
    }
}

/* ---- IQ4_XS ------------------------------------------------------------------------- */

#define XS_GROUPS (KS_QK_K / GROUP) /* 8 */

void ks_dequantize_row_iq4_xs_ref(const void *x, float *y, int64_t n) {
    const ks_block_iq4_xs *b = x;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        const float d = ks_fp16_to_fp32(b[ib].d);
        for (int j = 0; j < XS_GROUPS; j++)
            decode_group(b[ib].qs + j * GROUP / 2, d * (float)(ks_iq4_xs_scale(&b[ib], j) - 32), y + GROUP * j);
    }
}

/* Per super-block: search_group() per group of 32 -> s_j; the one of largest magnitude
 * maps to -32: d = s_ext / -32, ls_j = round(s_j / d) in -32..31, stored + 32; every
 * group re-rounded with d * ls_j. */
void ks_quantize_row_iq4_xs_ref(const float *x, void *y, int64_t n) {
    ks_block_iq4_xs *b = y;
    uint8_t q[KS_QK_K];
    float s[XS_GROUPS];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float max_abs = 0.0f, ext = 0.0f;
        for (int j = 0; j < XS_GROUPS; j++) {
            s[j] = search_group(x + GROUP * j, q + GROUP * j);
            if (fabsf(s[j]) > max_abs) {
                max_abs = fabsf(s[j]);
                ext = s[j];
            }
        }
        memset(&b[ib], 0, sizeof b[ib]);
        if (max_abs < ZERO_GROUP_EPS) {
            for (int j = 0; j < XS_GROUPS; j++)
                pack_group(q + GROUP * j, b[ib].qs + j * GROUP / 2);
            continue; /* d = 0 */
        }
        const float iscale = -32.0f / ext;
        b[ib].d = ks_fp32_to_fp16(1.0f / iscale);
        const float d = ks_fp16_to_fp32(b[ib].d);
        uint16_t h = 0;
        for (int j = 0; j < XS_GROUPS; j++) {
            const float r = nearbyintf(iscale * s[j]);
            const int l = r < -32.0f ? -32 : r > 31.0f ? 31 : (int)r;
            const int ls = l + 32;
            b[ib].scales_l[j / 2] |= (uint8_t)((ls & 0x0f) << (4 * (j % 2)));
            h |= (uint16_t)((ls >> 4) << (2 * j));
            round_group(x + GROUP * j, d * (float)l, q + GROUP * j);
            pack_group(q + GROUP * j, b[ib].qs + j * GROUP / 2);
        }
        b[ib].scales_h = h;
    }
}
