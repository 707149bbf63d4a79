/* panel_ref.c — the scalar reference of the panel layout (kernels.h, ks_panel_kernels)
 * of Q8_0: repacking 16 rows into a panel, a panel row back to floats, the activations'
 * per-block terms, and the panel dot products, written as the layout's definition
 * reads. ISA tables register their own kernels; the tests
 * hold them to these bit for bit (the arithmetic is one chain per row and token, which
 * leaves no freedom), and these to vec_dot within its error budget.
 *
 * Not in the ref table: a table with panel kernels has its weights repacked at load, and
 * every table inherits ref's entries. */
#include "tensor/ref/kernels_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"

#include <math.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define BLOCK_BYTES (ROWS * sizeof(ks_block_q8_0)) /* 544: 16 scales, then 512 codes */
#define CODES_AT (ROWS * sizeof(ks_fp16))

/* Panel block b overwrites bytes [544 b, 544 (b + 1)), which held other blocks of the
 * rows (row 0's 16 b .. 16 b + 15 first), so the rows are first copied out whole. */
static void q8_0_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    const int64_t nb = n / KS_QK8_0;
    uint8_t tmp[BLOCK_BYTES];
    uint8_t *src = rows, *in = scratch;
    memcpy(in, src, (size_t)ROWS * row_bytes);
    for (int64_t b = 0; b < nb; b++) {
        for (int r = 0; r < ROWS; r++) {
            const ks_block_q8_0 *blk = (const ks_block_q8_0 *)(in + (size_t)r * row_bytes) + b;
            memcpy(tmp + (size_t)r * sizeof(ks_fp16), &blk->d, sizeof(ks_fp16));
            for (int k = 0; k < KS_QK8_0; k++)
                tmp[CODES_AT + (size_t)((k / 4) * ROWS + r) * 4 + (size_t)(k % 4)] = (uint8_t)(blk->qs[k] + 128);
        }
        memcpy(src + (size_t)b * BLOCK_BYTES, tmp, BLOCK_BYTES);
    }
}

static void q8_0_row_to_float(const void *panel, int r, int64_t n, float *y) {
    const uint8_t *p = panel;
    for (int64_t b = 0; b < n / KS_QK8_0; b++) {
        const uint8_t *blk = p + (size_t)b * BLOCK_BYTES;
        ks_fp16 d;
        memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
        float df = ks_fp16_to_fp32(d);
        for (int k = 0; k < KS_QK8_0; k++)
            y[b * KS_QK8_0 + k] = df * (float)((int)blk[CODES_AT + (size_t)((k / 4) * ROWS + r) * 4 + (size_t)(k % 4)] - 128);
    }
}

static size_t q8_0_act_bytes(int64_t n) { return (size_t)(n / KS_QK8_0) * (sizeof(float) + sizeof(int32_t)); }

/* pk: [nb] float da, then [nb] int32 -128 * the block's code sum */
static void q8_0_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_0 *a = row;
    const int64_t nb = n / KS_QK8_0;
    float *da = pk;
    int32_t *corr = (int32_t *)(da + nb);
    for (int64_t b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int k = 0; k < KS_QK8_0; k++)
            s += a[b].qs[k];
        da[b] = ks_fp16_to_fp32(a[b].d);
        corr[b] = -128 * s;
    }
}

static void q8_0_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride, int nt,
                          int64_t n, float *y, size_t ldy) {
    const int64_t nb = n / KS_QK8_0;
    for (int t = 0; t < nt; t++) {
        const ks_block_q8_0 *at = (const ks_block_q8_0 *)((const uint8_t *)a + (size_t)t * a_stride);
        const float *da = (const float *)((const uint8_t *)pk + (size_t)t * pk_stride);
        const int32_t *corr = (const int32_t *)(da + nb);
        for (int r = 0; r < ROWS; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = p + (size_t)b * BLOCK_BYTES;
                int32_t isum = corr[b];
                for (int k = 0; k < KS_QK8_0; k++)
                    isum += (int32_t)blk[CODES_AT + (size_t)((k / 4) * ROWS + r) * 4 + (size_t)(k % 4)] * at[b].qs[k];
                ks_fp16 d;
                memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
                float dd = ks_fp16_to_fp32(d) * da[b];
                acc = fmaf(dd, (float)isum, acc);
            }
            y[(size_t)t * ldy + (size_t)r] = acc;
        }
    }
}

static void q8_0_gemv(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride,
                      const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) {
    (void)next;
    for (int j = 0; j < 2; j++)
        if (panels[j])
            q8_0_gemv_one(panels[j], a, a_stride, pk, pk_stride, nt, n, y[j], ldy);
}

bool ks_panel_ref(uint32_t type, ks_panel_kernels *p) {
    switch (type) {
    case KS_TYPE_Q8_0:
        *p = (ks_panel_kernels){q8_0_repack, q8_0_row_to_float, q8_0_act_bytes, q8_0_pack_act, q8_0_gemv, {0}};
        return true;
    default:
        *p = (ks_panel_kernels){0};
        return false;
    }
}
