/* panel_ref.c — the scalar reference of the panel layouts (kernels.h, ks_panel_kernels)
 * of Q8_0, IQ4_NL, Q2_K .. Q6_K and IQ4_XS: repacking 16 rows into a panel, a panel row back to floats, the
 * activations' per-block terms, and the panel dot products, written as each layout's
 * definition reads. ISA tables register their own kernels; the tests
 * hold them to these bit for bit (the arithmetic is one chain per row and token, which
 * leaves no freedom), and these to vec_dot within its error budget.
 *
 * Not in the ref table: a table with panel kernels has its weights repacked at load, and
 * every table inherits ref's entries. */
#include "tensor/ref/kernels_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"
#include "tensor/ref/quants_ref.h"

#include <math.h>
#include <string.h>

#define ROWS KS_PANEL_ROWS
#define BLOCK_BYTES (ROWS * sizeof(ks_block_q8_0)) /* 544: 16 scales, then 512 codes */
#define CODES_AT (ROWS * sizeof(ks_fp16))

void ks_panel_repack_blocks(void *rows, size_t row_bytes, int64_t nb, size_t block_bytes, ks_panel_put_fn put,
                            void *scratch) {
    uint8_t tmp[ROWS * KS_PANEL_MAX_BLOCK_BYTES];
    uint8_t *dst = rows;
    const uint8_t *in = scratch;
    memcpy(scratch, rows, (size_t)ROWS * row_bytes);
    for (int64_t b = 0; b < nb; b++) {
        memset(tmp, 0, ROWS * block_bytes);
        for (int r = 0; r < ROWS; r++)
            put(tmp, r, in + (size_t)r * row_bytes + (size_t)b * block_bytes);
        memcpy(dst + (size_t)b * ROWS * block_bytes, tmp, ROWS * block_bytes);
    }
}

static void q8_0_put(uint8_t *pb, int r, const void *block) {
    const ks_block_q8_0 *x = block;
    memcpy(pb + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    for (int k = 0; k < KS_QK8_0; k++)
        pb[CODES_AT + (size_t)((k / 4) * ROWS + r) * 4 + (size_t)(k % 4)] = (uint8_t)(x->qs[k] + 128);
}

static void q8_0_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK8_0, sizeof(ks_block_q8_0), q8_0_put, scratch);
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

/* A type's one-panel GEMV over each of the call's panels (the hints do not matter here). */
typedef void (*gemv_one_fn)(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride,
                            int nt, int64_t n, float *y, size_t ldy);
static void gemv_each(gemv_one_fn one, const void *const panels[2], const void *a, size_t a_stride, const void *pk,
                      size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) {
    for (int j = 0; j < 2; j++)
        if (panels[j])
            one(panels[j], a, a_stride, pk, pk_stride, nt, n, y[j], ldy);
}

/* Defines the panel GEMV entry `name` as gemv_each() of the one-panel GEMV `one`. */
#define REF_PANEL_GEMV(name, one)                                                                   \
    static void name(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride, \
                     const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy) { \
        (void)next;                                                                                 \
        gemv_each(one, panels, a, a_stride, pk, pk_stride, nt, n, y, ldy);                          \
    }

/* The layouts whose rows decode as d * scale_g * value_e (Q6_K, Q3_K, IQ4_XS): their
 * reference GEMV is one chain per row and token, per super-block
 *   sumi = sum_g scale_g sum_{e in g} value_e a_e   (exact)
 *   acc  = fma(fp32(d) da, float(sumi), acc)
 * from acc = 0 (da the token's Q8_K scale, the first float of its pack_act bytes). */
typedef struct grouped_layout {
    size_t sb_bytes;                                /* a panel super-block */
    int group;                                      /* codes per scale */
    size_t d_at;                                    /* where the 16 rows' fp16 d sit */
    int (*value)(const uint8_t *blk, int r, int e); /* what code e of row r stands for */
    int (*scale)(const uint8_t *blk, int r, int g); /* row r's integer scale of group g */
} grouped_layout;

static void grouped_gemv_one(const grouped_layout *L, const uint8_t *p, const void *a, size_t a_stride,
                             const void *pk, size_t pk_stride, int nt, int64_t n, float *y, size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    for (int t = 0; t < nt; t++) {
        const ks_block_q8_k *at = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)t * a_stride);
        const float *da = (const float *)((const uint8_t *)pk + (size_t)t * pk_stride);
        for (int r = 0; r < ROWS; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nsb; b++) {
                const uint8_t *blk = p + (size_t)b * L->sb_bytes;
                int32_t sumi = 0;
                for (int g = 0; g < KS_QK_K / L->group; g++) {
                    int32_t isum = 0;
                    for (int k = 0; k < L->group; k++)
                        isum += L->value(blk, r, L->group * g + k) * at[b].qs[L->group * g + k];
                    sumi += L->scale(blk, r, g) * isum;
                }
                ks_fp16 d;
                memcpy(&d, blk + L->d_at + (size_t)r * sizeof(ks_fp16), sizeof d);
                acc = fmaf(ks_fp16_to_fp32(d) * da[b], (float)sumi, acc);
            }
            y[(size_t)t * ldy + (size_t)r] = acc;
        }
    }
}

/* The GEMV entry prefix_gemv of a grouped layout (and its one-panel prefix_gemv_one). */
#define GROUPED_PANEL_GEMV(prefix, layout)                                                          \
    static void prefix##_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, \
                                  size_t pk_stride, int nt, int64_t n, float *y, size_t ldy) {      \
        grouped_gemv_one(&layout, p, a, a_stride, pk, pk_stride, nt, n, y, ldy);                    \
    }                                                                                               \
    REF_PANEL_GEMV(prefix##_gemv, prefix##_gemv_one)

REF_PANEL_GEMV(q8_0_gemv, q8_0_gemv_one)

/* ---- IQ4_NL ----------------------------------------------------------------------------
 *
 * Panel block (16 rows x 32 codes, 288 bytes, as many as the rows' blocks):
 *   d      [16] fp16        at 0
 *   codes  [4][16][4] u8    at 32: chunk h, byte 4 r + i = row r's qs[4 h + i] as it was
 *                           (its codes 4h + i, low nibble, and 4h + 16 + i, high)
 * Per row and token, Q8_0's chain: isum = sum_k v_k a_k (exact, v the table values);
 * acc = fma(fp32(d) * da, float(isum), acc). The activations' terms are Q8_0's (da and
 * -128 * the block's code sum): the GEMV multiplies v + 128, unsigned. */

#define NL_BLOCK_BYTES (ROWS * sizeof(ks_block_iq4_nl)) /* 288 */
#define NL_CODES_AT (ROWS * sizeof(ks_fp16))            /* 32 */

static void iq4_nl_put(uint8_t *pb, int r, const void *block) {
    const ks_block_iq4_nl *x = block;
    memcpy(pb + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    for (int h = 0; h < 4; h++)
        memcpy(pb + NL_CODES_AT + (size_t)h * 64 + (size_t)r * 4, x->qs + 4 * h, 4);
}

static void iq4_nl_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK4_NL, sizeof(ks_block_iq4_nl), iq4_nl_put, scratch);
}

static int iq4_nl_panel_value(const uint8_t *blk, int r, int k) {
    const int m = k % 16, h = m / 4, i = m % 4;
    const uint8_t byte = blk[NL_CODES_AT + (size_t)h * 64 + (size_t)r * 4 + (size_t)i];
    return ks_iq4_values[(byte >> (4 * (k / 16))) & 15];
}

static void iq4_nl_row_to_float(const void *panel, int r, int64_t n, float *y) {
    const uint8_t *p = panel;
    for (int64_t b = 0; b < n / KS_QK4_NL; b++) {
        const uint8_t *blk = p + (size_t)b * NL_BLOCK_BYTES;
        ks_fp16 d;
        memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
        const float df = ks_fp16_to_fp32(d);
        for (int k = 0; k < KS_QK4_NL; k++)
            y[b * KS_QK4_NL + k] = df * (float)iq4_nl_panel_value(blk, r, k);
    }
}

static void iq4_nl_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride,
                            int nt, int64_t n, float *y, size_t ldy) {
    const int64_t nb = n / KS_QK4_NL;
    for (int t = 0; t < nt; t++) {
        const ks_block_q8_0 *at = (const ks_block_q8_0 *)((const uint8_t *)a + (size_t)t * a_stride);
        const float *da = (const float *)((const uint8_t *)pk + (size_t)t * pk_stride);
        for (int r = 0; r < ROWS; r++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = p + (size_t)b * NL_BLOCK_BYTES;
                int32_t isum = 0;
                for (int k = 0; k < KS_QK4_NL; k++)
                    isum += iq4_nl_panel_value(blk, r, k) * at[b].qs[k];
                ks_fp16 d;
                memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
                acc = fmaf(ks_fp16_to_fp32(d) * da[b], (float)isum, acc);
            }
            y[(size_t)t * ldy + (size_t)r] = acc;
        }
    }
}

REF_PANEL_GEMV(iq4_nl_gemv, iq4_nl_gemv_one)

/* ---- Q4_K ------------------------------------------------------------------------------ */

#define SB_BYTES (ROWS * sizeof(ks_block_q4_k))             /* 2304 */
#define K_SCALES_AT (2 * ROWS * sizeof(ks_fp16))            /* 64 */
#define K_CODES_AT (K_SCALES_AT + ROWS * KS_K_SCALE_BYTES) /* 256 */

/* Where code e of row r sits in a panel super-block: the byte, and 0 (low nibble) or 4. */
static size_t q4_k_code_at(int r, int e, int *shift) {
    int j = e / 32, g = (e % 32) / 4, i = e % 4;
    *shift = g < 4 ? 0 : 4;
    return K_CODES_AT + (size_t)(j * 4 + g % 4) * 64 + (size_t)r * 4 + (size_t)i;
}

void ks_panel_k_put_scales(uint8_t *sb, int r, ks_fp16 d, ks_fp16 dmin, const uint8_t scales[KS_K_SCALE_BYTES]) {
    memcpy(sb + (size_t)r * sizeof(ks_fp16), &d, sizeof(ks_fp16));
    memcpy(sb + (ROWS + (size_t)r) * sizeof(ks_fp16), &dmin, sizeof(ks_fp16));
    for (int k = 0; k < KS_K_SCALE_BYTES / 4; k++)
        memcpy(sb + K_SCALES_AT + ((size_t)k * ROWS + (size_t)r) * 4, scales + 4 * k, 4);
}

/* Chunk (j, h) byte 4 r + i = codes 32 j + 4 h + i (low nibble) and 32 j + 4 h + 16 + i
 * (high) of row r, taken straight from the row's nibbles: code 32 j + m is nibble j % 2
 * of qs[32 (j / 2) + m]. */
static void q4_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q4_k *x = block;
    ks_panel_k_put_scales(sb, r, x->d, x->dmin, x->scales);
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = x->qs + 32 * (j / 2);
        const int s = 4 * (j % 2);
        for (int h = 0; h < 4; h++) {
            uint8_t *o = sb + K_CODES_AT + (size_t)(j * 4 + h) * 64 + (size_t)r * 4;
            for (int i = 0; i < 4; i++)
                o[i] = (uint8_t)(((q[4 * h + i] >> s) & 15) | ((q[4 * h + 16 + i] >> s) & 15) << 4);
        }
    }
}

static void q4_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q4_k), q4_k_put, scratch);
}

/* Row r's 12 scale bytes of a panel super-block, as the row held them. */
static void q4_k_scales(const uint8_t *blk, int r, uint8_t scales[KS_K_SCALE_BYTES]) {
    for (int k = 0; k < KS_K_SCALE_BYTES / 4; k++)
        memcpy(scales + 4 * k, blk + K_SCALES_AT + ((size_t)k * ROWS + (size_t)r) * 4, 4);
}

static int q4_k_panel_code(const uint8_t *blk, int r, int e) {
    int shift;
    size_t at = q4_k_code_at(r, e, &shift);
    return (blk[at] >> shift) & 15;
}

/* Code e of row r of a Q4_K or Q5_K panel super-block. */
typedef int (*k_code_fn)(const uint8_t *blk, int r, int e);

/* Row r of a Q4_K or Q5_K panel (super-blocks of sb_bytes) as floats, as the row types'
 * to_float rounds: d * sc and dmin * mn first. */
static void k_row_to_float(const void *panel, int r, int64_t n, float *y, size_t sb_bytes, k_code_fn code) {
    for (int64_t b = 0; b < n / KS_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * sb_bytes;
        ks_fp16 d, dmin;
        memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
        memcpy(&dmin, blk + (ROWS + (size_t)r) * sizeof(ks_fp16), sizeof dmin);
        uint8_t scales[KS_K_SCALE_BYTES];
        q4_k_scales(blk, r, scales);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            ks_k_scale_min(j, scales, &sc, &mn);
            float dl = ks_fp16_to_fp32(d) * (float)sc, ml = ks_fp16_to_fp32(dmin) * (float)mn;
            for (int k = 0; k < 32; k++)
                y[b * KS_QK_K + j * 32 + k] = dl * (float)code(blk, r, j * 32 + k) - ml;
        }
    }
}

static void q4_k_row_to_float(const void *panel, int r, int64_t n, float *y) {
    k_row_to_float(panel, r, n, y, SB_BYTES, q4_k_panel_code);
}

/* pk: [nsb] float da, then [nsb][4] int32: sub-block sums S_2i | S_2i+1 << 16 (int16
 * each, S_j = bsums[2j] + bsums[2j+1], |S_j| <= 32 * 127) */
static size_t q4_k_act_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * (sizeof(float) + 4 * sizeof(int32_t)); }

static void q4_k_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_k *a = row;
    const int64_t nsb = n / KS_QK_K;
    float *da = pk;
    uint32_t *sp = (uint32_t *)(da + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        da[b] = a[b].d;
        for (int i = 0; i < 4; i++) {
            int16_t s0 = (int16_t)(a[b].bsums[4 * i] + a[b].bsums[4 * i + 1]);
            int16_t s1 = (int16_t)(a[b].bsums[4 * i + 2] + a[b].bsums[4 * i + 3]);
            sp[b * 4 + i] = (uint32_t)(uint16_t)s0 | (uint32_t)(uint16_t)s1 << 16;
        }
    }
}

/* Q4_K and Q5_K: per row and token, per super-block: sumi = sum_j sc_j isum_j, summ =
 * sum_j mn_j S_j (exact); acc = fma(fp32(d) da, float(sumi), acc), accm = fma(fp32(dmin)
 * da, float(summ), accm); the result acc - accm. */
static void k_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride, int nt,
                       int64_t n, float *y, size_t ldy, size_t sb_bytes, k_code_fn code) {
    const int64_t nsb = n / KS_QK_K;
    for (int t = 0; t < nt; t++) {
        const ks_block_q8_k *at = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)t * a_stride);
        const float *da = (const float *)((const uint8_t *)pk + (size_t)t * pk_stride);
        for (int r = 0; r < ROWS; r++) {
            float acc = 0.0f, accm = 0.0f;
            for (int64_t b = 0; b < nsb; b++) {
                const uint8_t *blk = p + (size_t)b * sb_bytes;
                uint8_t scales[KS_K_SCALE_BYTES];
                q4_k_scales(blk, r, scales);
                int32_t sumi = 0, summ = 0;
                for (int j = 0; j < 8; j++) {
                    uint8_t sc, mn;
                    ks_k_scale_min(j, scales, &sc, &mn);
                    int32_t isum = 0;
                    for (int k = 0; k < 32; k++)
                        isum += code(blk, r, j * 32 + k) * at[b].qs[j * 32 + k];
                    sumi += (int32_t)sc * isum;
                    summ += (int32_t)mn * (at[b].bsums[2 * j] + at[b].bsums[2 * j + 1]);
                }
                ks_fp16 d, dmin;
                memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
                memcpy(&dmin, blk + (ROWS + (size_t)r) * sizeof(ks_fp16), sizeof dmin);
                acc = fmaf(ks_fp16_to_fp32(d) * da[b], (float)sumi, acc);
                accm = fmaf(ks_fp16_to_fp32(dmin) * da[b], (float)summ, accm);
            }
            y[(size_t)t * ldy + (size_t)r] = acc - accm;
        }
    }
}

static void q4_k_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride, int nt,
                          int64_t n, float *y, size_t ldy) {
    k_gemv_one(p, a, a_stride, pk, pk_stride, nt, n, y, ldy, SB_BYTES, q4_k_panel_code);
}

REF_PANEL_GEMV(q4_k_gemv, q4_k_gemv_one)

/* ---- Q5_K ------------------------------------------------------------------------------
 *
 * Panel super-block (16 rows x 256 codes, 2816 bytes, as many as the rows' blocks), in
 * the order the GEMV reads it:
 *   d, dmin, scales           as Q4_K's panel (256 bytes)
 *   per sub-block j, 320 bytes:
 *     low   [4][16][4] u8     the low four bits of its codes, as Q4_K's chunks of j
 *     high  [8] u64           bit 4 r + i of word k: bit 4 of the code of code vector k
 *                             (low nibbles of chunk h: k = 2h, high nibbles: k = 2h + 1)
 * so that each code vector's fifth bits are one 64-bit mask over its 64 bytes. */

#define Q5_SB_BYTES (ROWS * sizeof(ks_block_q5_k)) /* 2816 */
#define Q5_SUB_BYTES (4 * 64 + 64)

/* Code e of row r: sub-block j = e / 32, m = e % 32; chunk h = m % 16 / 4, byte 4 r + m % 4,
 * nibble m / 16; its fifth bit in word 2h + m / 16. */
static int q5_k_panel_code(const uint8_t *blk, int r, int e) {
    const int j = e / 32, m = e % 32, h = (m % 16) / 4, i = m % 4, half = m / 16;
    const uint8_t *sub = blk + K_CODES_AT + (size_t)j * Q5_SUB_BYTES;
    const int low = (sub[(size_t)h * 64 + (size_t)r * 4 + (size_t)i] >> (4 * half)) & 15;
    uint64_t word;
    memcpy(&word, sub + 256 + (size_t)(2 * h + half) * 8, 8);
    return low | (int)((word >> (4 * r + i)) & 1) << 4;
}

static void q5_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q5_k *x = block;
    ks_panel_k_put_scales(sb, r, x->d, x->dmin, x->scales);
    for (int e = 0; e < KS_QK_K; e++) {
        const int j = e / 32, m = e % 32, h = (m % 16) / 4, i = m % 4, half = m / 16;
        const int code = ((x->qs[32 * (j / 2) + m] >> (4 * (j % 2))) & 15) | ((x->qh[m] >> j) & 1) << 4;
        uint8_t *sub = sb + K_CODES_AT + (size_t)j * Q5_SUB_BYTES;
        sub[(size_t)h * 64 + (size_t)r * 4 + (size_t)i] |= (uint8_t)((code & 15) << (4 * half));
        uint64_t word;
        memcpy(&word, sub + 256 + (size_t)(2 * h + half) * 8, 8);
        word |= (uint64_t)(code >> 4) << (4 * r + i);
        memcpy(sub + 256 + (size_t)(2 * h + half) * 8, &word, 8);
    }
}

static void q5_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q5_k), q5_k_put, scratch);
}

static void q5_k_row_to_float(const void *panel, int r, int64_t n, float *y) {
    k_row_to_float(panel, r, n, y, Q5_SB_BYTES, q5_k_panel_code);
}

static void q5_k_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride, int nt,
                          int64_t n, float *y, size_t ldy) {
    k_gemv_one(p, a, a_stride, pk, pk_stride, nt, n, y, ldy, Q5_SB_BYTES, q5_k_panel_code);
}

REF_PANEL_GEMV(q5_k_gemv, q5_k_gemv_one)

/* ---- Q6_K ------------------------------------------------------------------------------
 *
 * Panel super-block (16 rows x 256 codes, 3360 bytes, as many as the rows' blocks), in
 * the order the GEMV reads it, so that asking for it front to back asks for what is read
 * next (and its code chunks 64-byte aligned where the panel is):
 *   sc    [16][16] int8       sc[g][r] = row r's scale of group g (codes 16 g .. 16 g + 15)
 *   per group g, 192 bytes:
 *     low   [2][16][4] u8     the group's codes' low four bits, two codes a byte
 *     high  [16][4] u8        their high two bits, four codes a byte
 *   d     [16] fp16           row r's d
 * Each group's four vectors of four codes a row (one 512-bit vector each once widened)
 * come from its two low chunks and its high chunk. */

#define Q6_SB_BYTES (ROWS * sizeof(ks_block_q6_k)) /* 3360 */
#define Q6_GROUPS_AT (ROWS * KS_QK_K / 16)         /* 256 */
#define Q6_GROUP_BYTES (3 * 64)
#define Q6_D_AT (Q6_GROUPS_AT + 16 * Q6_GROUP_BYTES) /* 3328 */

/* Where the low four bits of code e of row r sit in a panel super-block (shift 0 or 4),
 * and where its high two bits sit (shift 0, 2, 4 or 6): code 16 g + 4 j + i (j, i < 4) is
 * byte 4 r + i of group g's low chunk j / 2 (nibble j % 2) and of its high chunk (bits
 * 2j, 2j + 1). */
static size_t q6_k_low_at(int r, int e, int *shift) {
    int g = e / 16, j = (e % 16) / 4, i = e % 4;
    *shift = 4 * (j % 2);
    return Q6_GROUPS_AT + (size_t)g * Q6_GROUP_BYTES + ((size_t)(j / 2) * ROWS + (size_t)r) * 4 + (size_t)i;
}
static size_t q6_k_high_at(int r, int e, int *shift) {
    int g = e / 16, j = (e % 16) / 4, i = e % 4;
    *shift = 2 * j;
    return Q6_GROUPS_AT + (size_t)g * Q6_GROUP_BYTES + 128 + (size_t)r * 4 + (size_t)i;
}

static int q6_k_panel_code(const uint8_t *blk, int r, int e) {
    int sl, sh;
    size_t lo = q6_k_low_at(r, e, &sl), hi = q6_k_high_at(r, e, &sh);
    return (blk[lo] >> sl & 15) | (blk[hi] >> sh & 3) << 4;
}

/* Code e (0..255) of a Q6_K row block, as quants.h lays them out. */
static int q6_k_row_code(const ks_block_q6_k *x, int e) {
    int h = e / 128, l = e % 128, m = l % 32, quarter = l / 32;
    uint8_t low = x->ql[64 * h + m + 32 * (quarter % 2)];
    uint8_t high = x->qh[32 * h + m];
    return (quarter < 2 ? low & 15 : low >> 4) | (high >> (2 * quarter) & 3) << 4;
}

static void q6_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q6_k *x = block;
    memcpy(sb + Q6_D_AT + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    for (int g = 0; g < KS_QK_K / 16; g++)
        sb[(size_t)g * ROWS + (size_t)r] = (uint8_t)x->scales[g];
    for (int e = 0; e < KS_QK_K; e++) {
        int c = q6_k_row_code(x, e), sl, sh;
        size_t lo = q6_k_low_at(r, e, &sl), hi = q6_k_high_at(r, e, &sh);
        sb[lo] |= (uint8_t)((c & 15) << sl);
        sb[hi] |= (uint8_t)((c >> 4) << sh);
    }
}

static void q6_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q6_k), q6_k_put, scratch);
}

/* Row r of a panel as the row's own blocks, dequantized by the row type's reference. */
static void q6_k_row_to_float(const void *panel, int r, int64_t n, float *y) {
    for (int64_t b = 0; b < n / KS_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * Q6_SB_BYTES;
        int8_t codes[KS_QK_K];
        for (int e = 0; e < KS_QK_K; e++)
            codes[e] = (int8_t)q6_k_panel_code(blk, r, e);
        ks_block_q6_k x;
        memset(&x, 0, sizeof x);
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *q = codes + 128 * h;
                x.ql[64 * h + l] = (uint8_t)((q[l] & 15) | (q[l + 64] & 15) << 4);
                x.ql[64 * h + l + 32] = (uint8_t)((q[l + 32] & 15) | (q[l + 96] & 15) << 4);
                x.qh[32 * h + l] = (uint8_t)((q[l] >> 4) | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 |
                                             (q[l + 96] >> 4) << 6);
            }
        for (int g = 0; g < KS_QK_K / 16; g++)
            x.scales[g] = (int8_t)blk[(size_t)g * ROWS + (size_t)r];
        memcpy(&x.d, blk + Q6_D_AT + (size_t)r * sizeof(ks_fp16), sizeof x.d);
        ks_dequantize_row_q6_k_ref(&x, y + b * KS_QK_K, KS_QK_K);
    }
}

/* pk: [nsb] float da, then [nsb][16] int32 -32 * the token's sum over group g */
static size_t q6_k_act_bytes(int64_t n) {
    return (size_t)(n / KS_QK_K) * (sizeof(float) + KS_QK_K / 16 * sizeof(int32_t));
}

static void q6_k_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_k *a = row;
    const int64_t nsb = n / KS_QK_K;
    float *da = pk;
    int32_t *corr = (int32_t *)(da + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        da[b] = a[b].d;
        for (int g = 0; g < KS_QK_K / 16; g++)
            corr[b * (KS_QK_K / 16) + g] = -32 * a[b].bsums[g];
    }
}

/* Q6_K as a grouped layout: groups of 16, int8 scales, values code - 32. */
static int q6_k_panel_value(const uint8_t *blk, int r, int e) { return q6_k_panel_code(blk, r, e) - 32; }
static int q6_k_panel_scale(const uint8_t *blk, int r, int g) { return (int8_t)blk[(size_t)g * ROWS + (size_t)r]; }
static const grouped_layout q6_k_layout = {Q6_SB_BYTES, 16, Q6_D_AT, q6_k_panel_value, q6_k_panel_scale};

GROUPED_PANEL_GEMV(q6_k, q6_k_layout)

/* ---- Q2_K ------------------------------------------------------------------------------
 *
 * Panel super-block (16 rows x 256 codes, 1344 bytes, as many as the rows' blocks), in
 * the order the GEMV reads it:
 *   scales  [16][16] u8       byte 16 g + r: row r's scales[g] (scale low nibble, min high)
 *   codes   [16][16][4] u8    group g at 256 + 64 g, byte 4 r + i: bits 2k+1..2k row r's
 *                             code 4k + i of the group (Q3_K's low fields)
 *   d, dmin [16] fp16 each    at 1280, 1312
 * Per row and token, per super-block: sumi = sum_g sc_g sum_k q_k a_k, summ = sum_g mn_g
 * bsums[g] (exact); acc = fma(fp32(d) da, float(sumi), acc), accm = fma(fp32(dmin) da,
 * float(summ), accm); the result acc - accm. pack_act gives da and the bsums in pairs
 * (bsums[2i] | bsums[2i + 1] << 16, int16 each) for the GEMV's int16 pair products. */

#define Q2_SB_BYTES (ROWS * sizeof(ks_block_q2_k)) /* 1344 */
#define Q2_CODES_AT (16 * ROWS)                     /* 256 */
#define Q2_D_AT (Q2_CODES_AT + 16 * 64)             /* 1280 */
#define Q2_DMIN_AT (Q2_D_AT + ROWS * sizeof(ks_fp16))

static void q2_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q2_k *x = block;
    memcpy(sb + Q2_D_AT + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    memcpy(sb + Q2_DMIN_AT + (size_t)r * sizeof(ks_fp16), &x->dmin, sizeof(ks_fp16));
    for (int g = 0; g < 16; g++) {
        sb[(size_t)g * ROWS + (size_t)r] = x->scales[g];
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 4; i++) {
                const int e = 16 * g + 4 * k + i;
                const int q = (x->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                sb[Q2_CODES_AT + (size_t)g * 64 + (size_t)r * 4 + (size_t)i] |= (uint8_t)(q << (2 * k));
            }
    }
}

static void q2_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q2_k), q2_k_put, scratch);
}

static int q2_k_panel_code(const uint8_t *blk, int r, int e) {
    const int g = e / 16, k = (e % 16) / 4, i = e % 4;
    return (blk[Q2_CODES_AT + (size_t)g * 64 + (size_t)r * 4 + (size_t)i] >> (2 * k)) & 3;
}

/* As the row type's to_float rounds: d * sc and dmin * mn first. */
static void q2_k_row_to_float(const void *panel, int r, int64_t n, float *y) {
    for (int64_t b = 0; b < n / KS_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * Q2_SB_BYTES;
        ks_fp16 d, dmin;
        memcpy(&d, blk + Q2_D_AT + (size_t)r * sizeof(ks_fp16), sizeof d);
        memcpy(&dmin, blk + Q2_DMIN_AT + (size_t)r * sizeof(ks_fp16), sizeof dmin);
        for (int e = 0; e < KS_QK_K; e++) {
            const uint8_t sm = blk[(size_t)(e / 16) * ROWS + (size_t)r];
            y[b * KS_QK_K + e] = ks_fp16_to_fp32(d) * (float)(sm & 15) * (float)q2_k_panel_code(blk, r, e) -
                                 ks_fp16_to_fp32(dmin) * (float)(sm >> 4);
        }
    }
}

/* pk: [nsb] float da, then [nsb][8] the bsums in pairs */
static size_t q2_k_act_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * (sizeof(float) + 8 * sizeof(int32_t)); }

static void q2_k_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_k *a = row;
    const int64_t nsb = n / KS_QK_K;
    float *da = pk;
    uint32_t *pairs = (uint32_t *)(da + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        da[b] = a[b].d;
        for (int i = 0; i < 8; i++)
            pairs[b * 8 + i] = (uint32_t)(uint16_t)a[b].bsums[2 * i] | (uint32_t)(uint16_t)a[b].bsums[2 * i + 1] << 16;
    }
}

static void q2_k_gemv_one(const uint8_t *p, const void *a, size_t a_stride, const void *pk, size_t pk_stride, int nt,
                          int64_t n, float *y, size_t ldy) {
    const int64_t nsb = n / KS_QK_K;
    for (int t = 0; t < nt; t++) {
        const ks_block_q8_k *at = (const ks_block_q8_k *)((const uint8_t *)a + (size_t)t * a_stride);
        const float *da = (const float *)((const uint8_t *)pk + (size_t)t * pk_stride);
        for (int r = 0; r < ROWS; r++) {
            float acc = 0.0f, accm = 0.0f;
            for (int64_t b = 0; b < nsb; b++) {
                const uint8_t *blk = p + (size_t)b * Q2_SB_BYTES;
                int32_t sumi = 0, summ = 0;
                for (int g = 0; g < 16; g++) {
                    const uint8_t sm = blk[(size_t)g * ROWS + (size_t)r];
                    int32_t isum = 0;
                    for (int k = 0; k < 16; k++)
                        isum += q2_k_panel_code(blk, r, 16 * g + k) * at[b].qs[16 * g + k];
                    sumi += (sm & 15) * isum;
                    summ += (sm >> 4) * at[b].bsums[g];
                }
                ks_fp16 d, dmin;
                memcpy(&d, blk + Q2_D_AT + (size_t)r * sizeof(ks_fp16), sizeof d);
                memcpy(&dmin, blk + Q2_DMIN_AT + (size_t)r * sizeof(ks_fp16), sizeof dmin);
                acc = fmaf(ks_fp16_to_fp32(d) * da[b], (float)sumi, acc);
                accm = fmaf(ks_fp16_to_fp32(dmin) * da[b], (float)summ, accm);
            }
            y[(size_t)t * ldy + (size_t)r] = acc - accm;
        }
    }
}

REF_PANEL_GEMV(q2_k_gemv, q2_k_gemv_one)

/* ---- Q3_K ------------------------------------------------------------------------------
 *
 * Panel super-block (16 rows x 256 codes, 1760 bytes, as many as the rows' blocks), in
 * the order the GEMV reads it:
 *   scales  [3][16] u32       word k of each row's 12 scale bytes (bytes 4k .. 4k + 3)
 *   per group g of 16 codes (sub-block g), 96 bytes, at 192 + 96 g:
 *     low   [16][4] u8        byte 4 r + i: bits 2k+1..2k the low two bits of row r's
 *                             code 4k + i of the group (k = 0..3)
 *     high  [4] u64           bit 4 r + i of word k: the third bit of that code
 *   d       [16] fp16         at 1728
 * Codes q = low + 4 high in 0..7 stand for q - 4. Per row and token, per super-block:
 * sumi = sum_g (sc_g - 32) sum_k (q_k - 4) a_k (exact); acc = fma(fp32(d) da, float(sumi),
 * acc). pack_act gives da and -4 S_g per group (S_g = bsums[g]), which the GEMV's sums of
 * the unsigned q start from. */

#define Q3_SB_BYTES (ROWS * sizeof(ks_block_q3_k)) /* 1760 */
#define Q3_GROUPS_AT (3 * ROWS * 4)                 /* 192 */
#define Q3_GROUP_BYTES (64 + 32)
#define Q3_D_AT (Q3_GROUPS_AT + 16 * Q3_GROUP_BYTES) /* 1728 */

/* Row r's code (0..7) of element e of a Q3_K block, as quants.h lays it out. */
static int q3_k_row_code(const ks_block_q3_k *x, int e) {
    const int low = (x->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    return low | ((x->hmask[e % 32] >> (e / 32)) & 1) << 2;
}

static void q3_k_put(uint8_t *sb, int r, const void *block) {
    const ks_block_q3_k *x = block;
    for (int k = 0; k < 3; k++)
        memcpy(sb + ((size_t)k * ROWS + (size_t)r) * 4, x->scales + 4 * k, 4);
    memcpy(sb + Q3_D_AT + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    for (int g = 0; g < 16; g++) {
        uint8_t *grp = sb + Q3_GROUPS_AT + (size_t)g * Q3_GROUP_BYTES;
        for (int k = 0; k < 4; k++) {
            uint64_t word;
            memcpy(&word, grp + 64 + 8 * k, 8);
            for (int i = 0; i < 4; i++) {
                const int q = q3_k_row_code(x, 16 * g + 4 * k + i);
                grp[r * 4 + i] |= (uint8_t)((q & 3) << (2 * k));
                word |= (uint64_t)(q >> 2) << (4 * r + i);
            }
            memcpy(grp + 64 + 8 * k, &word, 8);
        }
    }
}

static void q3_k_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_q3_k), q3_k_put, scratch);
}

/* Row r's code of element e (0..255) of a panel super-block, and its group's sc - 32. */
static int q3_k_panel_code(const uint8_t *blk, int r, int e) {
    const int g = e / 16, k = (e % 16) / 4, i = e % 4;
    const uint8_t *grp = blk + Q3_GROUPS_AT + (size_t)g * Q3_GROUP_BYTES;
    uint64_t word;
    memcpy(&word, grp + 64 + 8 * k, 8);
    return ((grp[r * 4 + i] >> (2 * k)) & 3) | (int)((word >> (4 * r + i)) & 1) << 2;
}

static int q3_k_panel_scale(const uint8_t *blk, int r, int g) {
    uint8_t scales[12];
    for (int k = 0; k < 3; k++)
        memcpy(scales + 4 * k, blk + ((size_t)k * ROWS + (size_t)r) * 4, 4);
    return ks_q3_k_scale(scales, g) - 32;
}

/* As the row type's to_float rounds: d * (sc - 32) first. */
static void q3_k_row_to_float(const void *panel, int r, int64_t n, float *y) {
    for (int64_t b = 0; b < n / KS_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * Q3_SB_BYTES;
        ks_fp16 d;
        memcpy(&d, blk + Q3_D_AT + (size_t)r * sizeof(ks_fp16), sizeof d);
        for (int e = 0; e < KS_QK_K; e++)
            y[b * KS_QK_K + e] =
                ks_fp16_to_fp32(d) * (float)q3_k_panel_scale(blk, r, e / 16) * (float)(q3_k_panel_code(blk, r, e) - 4);
    }
}

/* pk: [nsb] float da, then [nsb][16] int32 -4 * bsums[g] */
static size_t q3_k_act_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * (sizeof(float) + 16 * sizeof(int32_t)); }

static void q3_k_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_k *a = row;
    const int64_t nsb = n / KS_QK_K;
    float *da = pk;
    int32_t *corr = (int32_t *)(da + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        da[b] = a[b].d;
        for (int g = 0; g < 16; g++)
            corr[b * 16 + g] = -4 * a[b].bsums[g];
    }
}

static int q3_k_panel_value(const uint8_t *blk, int r, int e) { return q3_k_panel_code(blk, r, e) - 4; }
static const grouped_layout q3_k_layout = {Q3_SB_BYTES, 16, Q3_D_AT, q3_k_panel_value, q3_k_panel_scale};

GROUPED_PANEL_GEMV(q3_k, q3_k_layout)

/* ---- IQ4_XS ----------------------------------------------------------------------------
 *
 * Panel super-block (16 rows x 256 codes, 2176 bytes, as many as the rows' blocks), in
 * the order the GEMV reads it:
 *   d         [16] fp16        at 0
 *   scales_h  [16] u16         at 32, each row's as it held it
 *   scales_l  [16] u32         at 64, each row's four bytes as one little-endian word, so
 *                              that sub-block j's 6-bit scale is bits 4j..4j+3 of it and
 *                              bits 2j, 2j+1 of scales_h (ks_iq4_xs_scale)
 *   codes     [8][4][16][4] u8 at 128: sub-block j's chunk h, byte 4 r + i holds its codes
 *                              4h + i (low nibble) and 4h + 16 + i (high), which is the
 *                              row's qs[16 j + 4 h + i] as it was
 * Per row and token, per super-block: sumi = sum_j (ls_j - 32) sum_k v_k a_k, v the table
 * values (exact); acc = fma(fp32(d) da, float(sumi), acc). pack_act gives the token's da
 * and, per sub-block, -128 * S_j (S_j its 32 codes' sum): the GEMV multiplies v + 128,
 * unsigned, and starts each sub-block's sum from that correction. */

#define XS_SB_BYTES (ROWS * sizeof(ks_block_iq4_xs)) /* 2176 */
#define XS_SH_AT (ROWS * sizeof(ks_fp16))              /* 32 */
#define XS_SL_AT (XS_SH_AT + ROWS * sizeof(uint16_t))  /* 64 */
#define XS_CODES_AT (XS_SL_AT + ROWS * sizeof(uint32_t)) /* 128 */

static void iq4_xs_put(uint8_t *sb, int r, const void *block) {
    const ks_block_iq4_xs *x = block;
    memcpy(sb + (size_t)r * sizeof(ks_fp16), &x->d, sizeof(ks_fp16));
    memcpy(sb + XS_SH_AT + (size_t)r * 2, &x->scales_h, 2);
    memcpy(sb + XS_SL_AT + (size_t)r * 4, x->scales_l, 4);
    for (int j = 0; j < 8; j++)
        for (int h = 0; h < 4; h++)
            memcpy(sb + XS_CODES_AT + (size_t)(j * 4 + h) * 64 + (size_t)r * 4, x->qs + 16 * j + 4 * h, 4);
}

static void iq4_xs_repack(void *rows, size_t row_bytes, int64_t n, void *scratch) {
    ks_panel_repack_blocks(rows, row_bytes, n / KS_QK_K, sizeof(ks_block_iq4_xs), iq4_xs_put, scratch);
}

/* Row r's table value of code e, and its sub-block j's scale ls_j - 32. */
static int iq4_xs_panel_value(const uint8_t *blk, int r, int e) {
    const int j = e / 32, m = e % 32, h = (m % 16) / 4, i = m % 4;
    const uint8_t byte = blk[XS_CODES_AT + (size_t)(j * 4 + h) * 64 + (size_t)r * 4 + (size_t)i];
    return ks_iq4_values[(byte >> (4 * (m / 16))) & 15];
}

static int iq4_xs_panel_scale(const uint8_t *blk, int r, int j) {
    uint16_t sh;
    uint32_t sl;
    memcpy(&sh, blk + XS_SH_AT + (size_t)r * 2, 2);
    memcpy(&sl, blk + XS_SL_AT + (size_t)r * 4, 4);
    return (int)(((sl >> (4 * j)) & 15) | ((uint32_t)(sh >> (2 * j)) & 3) << 4) - 32;
}

/* As the row type's to_float rounds: d * (ls - 32) first. */
static void iq4_xs_row_to_float(const void *panel, int r, int64_t n, float *y) {
    for (int64_t b = 0; b < n / KS_QK_K; b++) {
        const uint8_t *blk = (const uint8_t *)panel + (size_t)b * XS_SB_BYTES;
        ks_fp16 d;
        memcpy(&d, blk + (size_t)r * sizeof(ks_fp16), sizeof d);
        for (int j = 0; j < 8; j++) {
            const float dl = ks_fp16_to_fp32(d) * (float)iq4_xs_panel_scale(blk, r, j);
            for (int k = 0; k < 32; k++)
                y[b * KS_QK_K + j * 32 + k] = dl * (float)iq4_xs_panel_value(blk, r, j * 32 + k);
        }
    }
}

/* pk: [nsb] float da, then [nsb][8] int32 -128 * S_j */
static size_t iq4_xs_act_bytes(int64_t n) { return (size_t)(n / KS_QK_K) * (sizeof(float) + 8 * sizeof(int32_t)); }

static void iq4_xs_pack_act(const void *row, int64_t n, void *pk) {
    const ks_block_q8_k *a = row;
    const int64_t nsb = n / KS_QK_K;
    float *da = pk;
    int32_t *corr = (int32_t *)(da + nsb);
    for (int64_t b = 0; b < nsb; b++) {
        da[b] = a[b].d;
        for (int j = 0; j < 8; j++)
            corr[b * 8 + j] = -128 * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    }
}

static const grouped_layout iq4_xs_layout = {XS_SB_BYTES, 32, 0, iq4_xs_panel_value, iq4_xs_panel_scale};

GROUPED_PANEL_GEMV(iq4_xs, iq4_xs_layout)

bool ks_panel_ref(uint32_t type, ks_panel_kernels *p) {
    switch (type) {
    case KS_TYPE_Q8_0:
        *p = (ks_panel_kernels){q8_0_repack, q8_0_row_to_float, q8_0_act_bytes, q8_0_pack_act, q8_0_gemv, {0}};
        return true;
    case KS_TYPE_Q4_K:
        *p = (ks_panel_kernels){q4_k_repack, q4_k_row_to_float, q4_k_act_bytes, q4_k_pack_act, q4_k_gemv, {0}};
        return true;
    case KS_TYPE_Q5_K: /* the activations' terms are Q4_K's */
        *p = (ks_panel_kernels){q5_k_repack, q5_k_row_to_float, q4_k_act_bytes, q4_k_pack_act, q5_k_gemv, {0}};
        return true;
    case KS_TYPE_Q6_K:
        *p = (ks_panel_kernels){q6_k_repack, q6_k_row_to_float, q6_k_act_bytes, q6_k_pack_act, q6_k_gemv, {0}};
        return true;
    case KS_TYPE_IQ4_NL: /* the activations' terms are Q8_0's */
        *p = (ks_panel_kernels){iq4_nl_repack, iq4_nl_row_to_float, q8_0_act_bytes, q8_0_pack_act, iq4_nl_gemv, {0}};
        return true;
    case KS_TYPE_Q2_K:
        *p = (ks_panel_kernels){q2_k_repack, q2_k_row_to_float, q2_k_act_bytes, q2_k_pack_act, q2_k_gemv, {0}};
        return true;
    case KS_TYPE_Q3_K:
        *p = (ks_panel_kernels){q3_k_repack, q3_k_row_to_float, q3_k_act_bytes, q3_k_pack_act, q3_k_gemv, {0}};
        return true;
    case KS_TYPE_IQ4_XS:
        *p = (ks_panel_kernels){iq4_xs_repack, iq4_xs_row_to_float, iq4_xs_act_bytes, iq4_xs_pack_act, iq4_xs_gemv,
                                {0}};
        return true;
    default:
        *p = (ks_panel_kernels){0};
        return false;
    }
}
