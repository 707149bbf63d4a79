/* quants_ref.c — reference codecs for the float types (F32, F16, BF16) and the
 * 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
 *
 * Does not own: the K-quant super-blocks (quants_k_ref.c), the block layouts
 * (quants.h), whole-row SIMD conversions (kernels.h).
 *
 * The 32-element quantizers take one pass to find the block's range and one to round,
 * as llama.cpp's do when no importance matrix is given (a least-squares search buys
 * little at 32 elements per scale and the dot-product kernels do not care):
 *
 *   symmetric (Q4_0, Q5_0)  x ~ d * (q - z), z = 8 or 16. The element of largest
 *       magnitude, with its sign, is mapped onto the most negative code -z, so that
 *       d = x_ext / -z. Using the signed extreme instead of |x|max spends the extra
 *       negative level of the two's-complement-like range -z .. z-1 on the element
 *       that needs it most: it is reproduced exactly (up to the fp16 rounding of d).
 *   offset (Q4_1, Q5_1)     x ~ d * q + m, the block's [min, max] spread over the
 *       codes 0 .. 2^bits - 1; both ends are reproduced (up to fp16 rounding).
 *   Q8_0, Q8_1              x ~ d * q, |x|max mapped to 127 (symmetric, -128 unused).
 *
 * In every case the codes are computed against the unrounded float d, and only then
 * is d stored as fp16; llama.cpp does the same and the files must agree.
 *
 * Divisions: float types; code/packing helpers; Q4_0; Q4_1; Q5_0; Q5_1; Q8_0; Q8_1. */
#include "tensor/ref/quants_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ---- float types -------------------------------------------------------------------- */

void ks_dequantize_row_f32_ref(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void ks_quantize_row_f32_ref(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void ks_dequantize_row_f16_ref(const void *x, float *y, int64_t n) {
    const ks_fp16 *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_fp16_to_fp32(h[i]);
}

void ks_quantize_row_f16_ref(const float *x, void *y, int64_t n) {
    ks_fp16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = ks_fp32_to_fp16(x[i]);
}

void ks_dequantize_row_bf16_ref(const void *x, float *y, int64_t n) {
    const ks_bf16 *b = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_bf16_to_fp32(b[i]);
}

void ks_quantize_row_bf16_ref(const float *x, void *y, int64_t n) {
    ks_bf16 *b = y;
    for (int64_t i = 0; i < n; i++)
        b[i] = ks_fp32_to_bf16(x[i]);
}

/* ---- helpers shared by the 4- and 5-bit blocks -------------------------------------- */

#define QK 32 /* elements per block of every type in this file */

/* Symmetric codes of one block: q[i] = round(x[i] / d) + z, clamped to 0 .. 2z-1, with
 * d = x_ext / -z (x_ext the first element of largest magnitude). Returns d. */
static float symmetric_codes(const float *x, int z, uint8_t *q) {
    float amax = 0.0f, ext = 0.0f;
    for (int i = 0; i < QK; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            ext = x[i];
        }
    }
    const float d = ext / (float)-z;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int qmax = 2 * z - 1;
    for (int i = 0; i < QK; i++) {
        /* x * id lies in [-z, z]: adding z + 1/2 makes it non-negative, so truncation
         * rounds to nearest with halves going up. The extreme lands on code 0; an
         * element of the opposite sign and equal size would land on 2z, one past the
         * top code, and is clamped. */
        int v = (int)(x[i] * id + ((float)z + 0.5f));
        q[i] = (uint8_t)(v > qmax ? qmax : v);
    }
    return d;
}

/* Offset codes of one block: q[i] = round((x[i] - min) / d), d = (max - min) / qmax.
 * Writes d and min (both unrounded). */
static void offset_codes(const float *x, int qmax, uint8_t *q, float *d_out, float *min_out) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int i = 0; i < QK; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
    }
    const float d = (hi - lo) / (float)qmax;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++) {
        int v = (int)((x[i] - lo) * id + 0.5f); /* non-negative: truncation rounds */
        q[i] = (uint8_t)(v > qmax ? qmax : v);
    }
    *d_out = d;
    *min_out = lo;
}

/* qs[j] = bits 3:0 of q[j] | bits 3:0 of q[j + 16] << 4 (layout in quants.h). */
static void pack_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int j = 0; j < QK / 2; j++)
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + QK / 2] & 0x0f) << 4);
}

static void unpack_nibbles(const uint8_t *qs, uint8_t *q) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = qs[j] & 0x0f;
        q[j + QK / 2] = qs[j] >> 4;
    }
}

/* Bit 4 of q[i] into bit i of the little-endian 32-bit qh. */
static void pack_high_bits(const uint8_t *q, uint8_t *qh) {
    memset(qh, 0, 4);
    for (int i = 0; i < QK; i++)
        qh[i / 8] |= (uint8_t)(((q[i] >> 4) & 1) << (i % 8));
}

static void unpack_high_bits(const uint8_t *qh, uint8_t *q) {
    for (int i = 0; i < QK; i++)
        q[i] |= (uint8_t)(((qh[i / 8] >> (i % 8)) & 1) << 4);
}

/* y[i] = d * (q[i] - z) */
static void decode_symmetric(const uint8_t *q, int z, float d, float *y) {
    for (int i = 0; i < QK; i++)
        y[i] = (float)(q[i] - z) * d;
}

/* y[i] = d * q[i] + m */
static void decode_offset(const uint8_t *q, float d, float m, float *y) {
    for (int i = 0; i < QK; i++)
        y[i] = (float)q[i] * d + m;
}

/* ---- Q4_0 --------------------------------------------------------------------------- */

void ks_dequantize_row_q4_0_ref(const void *x, float *y, int64_t n) {
    const ks_block_q4_0 *b = x;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK) {
        unpack_nibbles(b[ib].qs, q);
        decode_symmetric(q, 8, ks_fp16_to_fp32(b[ib].d), y);
    }
}

void ks_quantize_row_q4_0_ref(const float *x, void *y, int64_t n) {
    ks_block_q4_0 *b = y;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        b[ib].d = ks_fp32_to_fp16(symmetric_codes(x, 8, q));
        pack_nibbles(q, b[ib].qs);
    }
}

/* ---- Q4_1 --------------------------------------------------------------------------- */

void ks_dequantize_row_q4_1_ref(const void *x, float *y, int64_t n) {
    const ks_block_q4_1 *b = x;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK) {
        unpack_nibbles(b[ib].qs, q);
        decode_offset(q, ks_fp16_to_fp32(b[ib].d), ks_fp16_to_fp32(b[ib].m), y);
    }
}

void ks_quantize_row_q4_1_ref(const float *x, void *y, int64_t n) {
    ks_block_q4_1 *b = y;
    uint8_t q[QK];
    float d, m;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        offset_codes(x, 15, q, &d, &m);
        b[ib].d = ks_fp32_to_fp16(d);
        b[ib].m = ks_fp32_to_fp16(m);
        pack_nibbles(q, b[ib].qs);
    }
}

/* ---- Q5_0 --------------------------------------------------------------------------- */

void ks_dequantize_row_q5_0_ref(const void *x, float *y, int64_t n) {
    const ks_block_q5_0 *b = x;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK) {
        unpack_nibbles(b[ib].qs, q);
        unpack_high_bits(b[ib].qh, q);
        decode_symmetric(q, 16, ks_fp16_to_fp32(b[ib].d), y);
    }
}

void ks_quantize_row_q5_0_ref(const float *x, void *y, int64_t n) {
    ks_block_q5_0 *b = y;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        b[ib].d = ks_fp32_to_fp16(symmetric_codes(x, 16, q));
        pack_high_bits(q, b[ib].qh);
        pack_nibbles(q, b[ib].qs);
    }
}

/* ---- Q5_1 --------------------------------------------------------------------------- */

void ks_dequantize_row_q5_1_ref(const void *x, float *y, int64_t n) {
    const ks_block_q5_1 *b = x;
    uint8_t q[QK];
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK) {
        unpack_nibbles(b[ib].qs, q);
        unpack_high_bits(b[ib].qh, q);
        decode_offset(q, ks_fp16_to_fp32(b[ib].d), ks_fp16_to_fp32(b[ib].m), y);
    }
}

void ks_quantize_row_q5_1_ref(const float *x, void *y, int64_t n) {
    ks_block_q5_1 *b = y;
    uint8_t q[QK];
    float d, m;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        offset_codes(x, 31, q, &d, &m);
        b[ib].d = ks_fp32_to_fp16(d);
        b[ib].m = ks_fp32_to_fp16(m);
        pack_high_bits(q, b[ib].qh);
        pack_nibbles(q, b[ib].qs);
    }
}

/* ---- Q8_0, Q8_1 --------------------------------------------------------------------- */

/* qs[i] = round(x[i] / d) (halves away from zero), d = |x|max / 127. Returns d. */
static float int8_codes(const float *x, int8_t *qs) {
    float amax = 0.0f;
    for (int i = 0; i < QK; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < QK; i++)
        qs[i] = (int8_t)roundf(x[i] * id);
    return d;
}

static void decode_int8(const int8_t *qs, float d, float *y) {
    for (int i = 0; i < QK; i++)
        y[i] = (float)qs[i] * d;
}

void ks_dequantize_row_q8_0_ref(const void *x, float *y, int64_t n) {
    const ks_block_q8_0 *b = x;
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK)
        decode_int8(b[ib].qs, ks_fp16_to_fp32(b[ib].d), y);
}

void ks_quantize_row_q8_0_ref(const float *x, void *y, int64_t n) {
    ks_block_q8_0 *b = y;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK)
        b[ib].d = ks_fp32_to_fp16(int8_codes(x, b[ib].qs));
}

void ks_dequantize_row_q8_1_ref(const void *x, float *y, int64_t n) {
    const ks_block_q8_1 *b = x;
    for (int64_t ib = 0; ib < n / QK; ib++, y += QK)
        decode_int8(b[ib].qs, ks_fp16_to_fp32(b[ib].d), y);
}

/* s = d * sum(qs), with the unrounded d, as the Q4_1/Q5_1 dot products expect. */
void ks_quantize_row_q8_1_ref(const float *x, void *y, int64_t n) {
    ks_block_q8_1 *b = y;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        const float d = int8_codes(x, b[ib].qs);
        int sum = 0;
        for (int i = 0; i < QK; i++)
            sum += b[ib].qs[i];
        b[ib].d = ks_fp32_to_fp16(d);
        b[ib].s = ks_fp32_to_fp16((float)sum * d);
    }
}
