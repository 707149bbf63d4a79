/* vec_dot_ref.c — scalar reference dot products, weight row x quantized activation row,
 * and the activation quantizers for Q8_0 / Q8_1 (contract in vec_dot_ref.h).
 *
 * Why the arithmetic is spelled out so precisely: kvserve's logits are checked against
 * llama.cpp's at positions where the top two logits differ by ~1e-3, so a matrix-vector
 * product must round where llama.cpp rounds. A block dot product has three parts:
 *
 *   1. integer:  sumi = sum over the block of (weight code) * (activation code), exact
 *                in int32 (|sumi| < 2^24 for every type here, so it also converts to
 *                float exactly);
 *   2. scale:    the block's float scales applied to sumi, a fixed expression per type;
 *   3. sum:      the scaled block results added into a float accumulator in row order.
 *
 * Part 1 has one answer. Parts 2 and 3 follow llama.cpp's portable C kernels term by
 * term, because float arithmetic is not associative: (sumi * dw) * da and
 * sumi * (dw * da) can differ in the last bit (rarely for fp16 scales, whose product is
 * exact in float; routinely for Q8_K's float scale), and so do sums added in another
 * order. Each kernel's comment gives its expression. tests/kernels/test_vec_dot.c checks
 * the results bit for bit against llama.cpp's own library.
 * The K-quant kernels keep eight float partial sums ("lanes", element index mod 8)
 * across the super-blocks and add them at the end, as the portable C version does.
 *
 * Compiled without ISA flags, so the compiler cannot fuse a multiply and an add into an
 * FMA (which would round once instead of twice) — keep it that way.
 *
 * Divisions: activation quantizers; float types; 32-element blocks; K-quants; IQ4_NL and
 * IQ4_XS. */
#include "tensor/ref/vec_dot_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"

#include <math.h>

#define QK 32 /* elements per block of Q4_0 .. Q8_1 */

/* ---- activation quantizers ---------------------------------------------------------- */

/* One 32-element block of int8 codes the way llama.cpp's x86 build makes them (its AVX
 * quantize_row_q8_0/_q8_1): amax = |x|max, d = amax / 127, and the codes are
 * x * (127 / amax) rounded to nearest with ties to even (the SIMD rounding instruction's
 * mode), not x * (1 / d) rounded with ties away from zero as the file quantizer does.
 * |x * 127 / amax| <= 127 up to one rounding, so no code overflows. Returns the
 * unrounded d and the sum of the codes. */
static float act_int8_codes(const float *x, int8_t *qs, int *sum) {
    float amax = 0.0f;
    for (int i = 0; i < QK; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int s = 0;
    for (int i = 0; i < QK; i++) {
        long v = lrintf(x[i] * id); /* default rounding mode: nearest, ties to even */
        v = v > 127 ? 127 : v < -128 ? -128 : v;
        qs[i] = (int8_t)v;
        s += (int)v;
    }
    *sum = s;
    return d;
}

void ks_quantize_row_q8_0_act_ref(const float *x, void *y, int64_t n) {
    ks_block_q8_0 *b = y;
    int sum;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK)
        b[ib].d = ks_fp32_to_fp16(act_int8_codes(x, b[ib].qs, &sum));
}

/* s = fp16(d * sum(codes)) with the unrounded d. */
void ks_quantize_row_q8_1_act_ref(const float *x, void *y, int64_t n) {
    ks_block_q8_1 *b = y;
    int sum;
    for (int64_t ib = 0; ib < n / QK; ib++, x += QK) {
        const float d = act_int8_codes(x, b[ib].qs, &sum);
        b[ib].d = ks_fp32_to_fp16(d);
        b[ib].s = ks_fp32_to_fp16(d * (float)sum);
    }
}

/* ---- float types -------------------------------------------------------------------- */

/* Each product is rounded to float, then added into a double: llama.cpp's portable
 * ggml_vec_dot_f32/_f16/_bf16. (Its SIMD versions sum in float lanes; the double sum is
 * the more exact of the two and differs from them by float rounding only.) */

float ks_vec_dot_f32_f32_ref(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * y[i]);
    return (float)sum;
}

float ks_vec_dot_f16_f16_ref(const void *w, const void *a, int64_t n) {
    const ks_fp16 *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(ks_fp16_to_fp32(x[i]) * ks_fp16_to_fp32(y[i]));
    return (float)sum;
}

float ks_vec_dot_bf16_bf16_ref(const void *w, const void *a, int64_t n) {
    const ks_bf16 *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(ks_bf16_to_fp32(x[i]) * ks_bf16_to_fp32(y[i]));
    return (float)sum;
}

/* ---- 32-element blocks -------------------------------------------------------------- */

/* Codes of a 4-bit block, element order (layout at ks_block_q4_0): 0..15. */
static void nibbles(const uint8_t *qs, int *q) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = qs[j] & 0x0f;
        q[j + QK / 2] = qs[j] >> 4;
    }
}

/* Codes of a 5-bit block (layout at ks_block_q5_0): 0..31. */
static void five_bit_codes(const uint8_t *qh, const uint8_t *qs, int *q) {
    const uint32_t high = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                          (uint32_t)qh[3] << 24;
    nibbles(qs, q);
    for (int i = 0; i < QK; i++)
        q[i] |= (int)((high >> i) & 1) << 4;
}

/* sum_i (q[i] - zero) * a[i] over one block, exact. */
static int block_sumi(const int *q, int zero, const int8_t *a) {
    int sumi = 0;
    for (int i = 0; i < QK; i++)
        sumi += (q[i] - zero) * a[i];
    return sumi;
}

/* Per block: sumf += ((float)sumi * dw) * da. */
float ks_vec_dot_q4_0_q8_0_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q4_0 *x = w;
    const ks_block_q8_0 *y = a;
    int q[QK];
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        nibbles(x[ib].qs, q);
        const int sumi = block_sumi(q, 8, y[ib].qs);
        sumf += (float)sumi * ks_fp16_to_fp32(x[ib].d) * ks_fp16_to_fp32(y[ib].d);
    }
    return sumf;
}

/* One block of an offset type (Q4_1, Q5_1) with codes q, scale d and offset m:
 * (dw * da) * (float)sumi + mw * sa. The offset meets the activations' sum, which Q8_1
 * carries precomputed as s. */
static float offset_block(const int *q, ks_fp16 d, ks_fp16 m, const ks_block_q8_1 *y) {
    const int sumi = block_sumi(q, 0, y->qs);
    const float dd = ks_fp16_to_fp32(d) * ks_fp16_to_fp32(y->d);
    return dd * (float)sumi + ks_fp16_to_fp32(m) * ks_fp16_to_fp32(y->s);
}

/* Per block: sumf += offset_block(...), the block's two terms added first. */
float ks_vec_dot_q4_1_q8_1_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q4_1 *x = w;
    const ks_block_q8_1 *y = a;
    int q[QK];
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        nibbles(x[ib].qs, q);
        sumf += offset_block(q, x[ib].d, x[ib].m, &y[ib]);
    }
    return sumf;
}

/* Per block: sumf += (dw * da) * (float)sumi. */
float ks_vec_dot_q5_0_q8_0_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q5_0 *x = w;
    const ks_block_q8_0 *y = a;
    int q[QK];
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        five_bit_codes(x[ib].qh, x[ib].qs, q);
        const int sumi = block_sumi(q, 16, y[ib].qs);
        sumf += ks_fp16_to_fp32(x[ib].d) * ks_fp16_to_fp32(y[ib].d) * (float)sumi;
    }
    return sumf;
}

/* Per block: as Q4_1. */
float ks_vec_dot_q5_1_q8_1_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q5_1 *x = w;
    const ks_block_q8_1 *y = a;
    int q[QK];
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        five_bit_codes(x[ib].qh, x[ib].qs, q);
        sumf += offset_block(q, x[ib].d, x[ib].m, &y[ib]);
    }
    return sumf;
}

/* Per block: sumf += (float)sumi * (dw * da). */
float ks_vec_dot_q8_0_q8_0_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q8_0 *x = w;
    const ks_block_q8_0 *y = a;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        int sumi = 0;
        for (int i = 0; i < QK; i++)
            sumi += x[ib].qs[i] * y[ib].qs[i];
        sumf += (float)sumi * (ks_fp16_to_fp32(x[ib].d) * ks_fp16_to_fp32(y[ib].d));
    }
    return sumf;
}

/* ---- K-quants ----------------------------------------------------------------------- *
 *
 * Per super-block, with q[e] the weight codes (e = 0..255), a[e] the Q8_K codes and
 * scale(e) the integer sub-block scale of element e:
 *
 *   lane[l] = sum over e = l (mod 8) of scale(e) * q[e] * a[e]       (8 exact int32s)
 *   part[l] += (dw * da) * (float)lane[l]                 (8 floats, across blocks)
 *   Q4_K/Q5_K only: mins = sum_k bsums[k] * mn[k / 2]      (exact; k = 16-element group)
 *                   acc -= (dmin * da) * (float)mins      (one float, across blocks)
 *
 * and at the end acc + part[0] + part[1] + ... + part[7], added in that order. The
 * mins term is how x = d * sc * q - dmin * mn enters without touching the elements:
 * sum_e mn(e) * a[e] is a sum over sub-blocks of mn times Q8_K's per-16 sums. */

#define LANES 8 /* partial sums of the portable C kernels, element index mod 8 */

/* part[l] += d * lane[l], where lane[l] = sum over e = l (mod 8) of sc(e) q[e] a[e]. */
static void add_lanes(float *part, float d, const int *q, const int8_t *a, const int *sc_of,
                      int sub) {
    int32_t lane[LANES] = {0};
    for (int e = 0; e < KS_QK_K; e++)
        lane[e % LANES] += sc_of[e / sub] * (q[e] * a[e]);
    for (int l = 0; l < LANES; l++)
        part[l] += d * (float)lane[l];
}

static float finish_lanes(float acc, const float *part) {
    for (int l = 0; l < LANES; l++)
        acc += part[l];
    return acc;
}

/* Codes of Q4_K/Q5_K's shared qs layout (ks_block_q4_k): sub-block 2g from the low
 * nibbles of qs[32g ..], sub-block 2g+1 from the high. */
static void k_nibbles(const uint8_t *qs, int *q) {
    for (int g = 0; g < KS_QK_K / 64; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = qs[32 * g + l] & 0x0f;
            q[64 * g + 32 + l] = qs[32 * g + l] >> 4;
        }
}

/* The Q4_K/Q5_K super-block tail: scales and mins from the packed bytes, then the lanes
 * and the mins term. */
static void k_scaled_block(float *part, float *acc, const uint8_t *scales, ks_fp16 d,
                           ks_fp16 dmin, const int *q, const ks_block_q8_k *y) {
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        ks_k_scale_min(j, scales, &s, &m);
        sc[j] = s;
        mn[j] = m;
    }
    int mins = 0;
    for (int k = 0; k < KS_QK_K / 16; k++)
        mins += y->bsums[k] * mn[k / 2];
    add_lanes(part, ks_fp16_to_fp32(d) * y->d, q, y->qs, sc, 32);
    *acc -= ks_fp16_to_fp32(dmin) * y->d * (float)mins;
}

float ks_vec_dot_q4_k_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q4_k *x = w;
    const ks_block_q8_k *y = a;
    int q[KS_QK_K];
    float part[LANES] = {0}, acc = 0.0f;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        k_nibbles(x[ib].qs, q);
        k_scaled_block(part, &acc, x[ib].scales, x[ib].d, x[ib].dmin, q, &y[ib]);
    }
    return finish_lanes(acc, part);
}

float ks_vec_dot_q5_k_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q5_k *x = w;
    const ks_block_q8_k *y = a;
    int q[KS_QK_K];
    float part[LANES] = {0}, acc = 0.0f;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        k_nibbles(x[ib].qs, q);
        for (int e = 0; e < KS_QK_K; e++) /* bit 4: qh[l] bit j for sub-block j */
            q[e] |= ((x[ib].qh[e % 32] >> (e / 32)) & 1) << 4;
        k_scaled_block(part, &acc, x[ib].scales, x[ib].d, x[ib].dmin, q, &y[ib]);
    }
    return finish_lanes(acc, part);
}

/* Q6_K: signed codes q - 32, one int8 scale per 16 elements, no mins term. */
float ks_vec_dot_q6_k_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q6_k *x = w;
    const ks_block_q8_k *y = a;
    int q[KS_QK_K], sc[KS_QK_K / 16];
    float part[LANES] = {0};
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const uint8_t *ql = x[ib].ql, *qh = x[ib].qh;
        for (int h = 0; h < 2; h++, ql += 64, qh += 32) { /* halves of 128 (quants.h) */
            int *o = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                o[l] = ((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4) - 32;
                o[l + 32] = ((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4) - 32;
                o[l + 64] = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                o[l + 96] = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            }
        }
        for (int j = 0; j < KS_QK_K / 16; j++)
            sc[j] = x[ib].scales[j];
        add_lanes(part, ks_fp16_to_fp32(x[ib].d) * y[ib].d, q, y[ib].qs, sc, 16);
    }
    return finish_lanes(0.0f, part);
}

/* Q3_K: signed codes q - 4, signed 6-bit scales sc - 32 per 16 elements, no mins term:
 * Q6_K's lanes. */
float ks_vec_dot_q3_k_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q3_k *x = w;
    const ks_block_q8_k *y = a;
    int q[KS_QK_K], sc[KS_QK_K / 16];
    float part[LANES] = {0};
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        for (int e = 0; e < KS_QK_K; e++) {
            const int low = (x[ib].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            q[e] = low - (((x[ib].hmask[e % 32] >> (e / 32)) & 1) ? 0 : 4);
        }
        for (int j = 0; j < KS_QK_K / 16; j++)
            sc[j] = ks_q3_k_scale(x[ib].scales, j) - 32;
        add_lanes(part, ks_fp16_to_fp32(x[ib].d) * y[ib].d, q, y[ib].qs, sc, 16);
    }
    return finish_lanes(0.0f, part);
}

/* Q2_K, per super-block in one integer sum (no lanes), as llama.cpp's portable kernel:
 *
 *   isum  = sum over sub-blocks k of sc[k] * sum_{e in k} q[e] a[e]       (exact)
 *   mins  = sum_k bsums[k] * mn[k]                                         (exact)
 *   acc  += (da * d) * (float)isum - (da * dmin) * (float)mins */
float ks_vec_dot_q2_k_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_q2_k *x = w;
    const ks_block_q8_k *y = a;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        int isum = 0, mins = 0;
        for (int k = 0; k < KS_QK_K / 16; k++) {
            int sub = 0;
            for (int e = 16 * k; e < 16 * k + 16; e++)
                sub += y[ib].qs[e] * ((x[ib].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
            isum += (x[ib].scales[k] & 0x0f) * sub;
            mins += y[ib].bsums[k] * (x[ib].scales[k] >> 4);
        }
        const float dall = y[ib].d * ks_fp16_to_fp32(x[ib].d);
        const float dmin = y[ib].d * ks_fp16_to_fp32(x[ib].dmin);
        acc += dall * (float)isum - dmin * (float)mins;
    }
    return acc;
}

/* ---- IQ4_NL, IQ4_XS ------------------------------------------------------------------ *
 *
 * Codes through ks_iq4_values; per group of 32 an exact integer sum, then
 *   IQ4_NL: acc += (da * d) * (float)sumi
 *   IQ4_XS: acc += ((d * da) * (float)(ls - 32)) * (float)sumi, group by group. */

static int iq4_group_sumi(const uint8_t *qs, const int8_t *a) {
    int sumi = 0;
    for (int j = 0; j < 16; j++)
        sumi += a[j] * ks_iq4_values[qs[j] & 0x0f] + a[j + 16] * ks_iq4_values[qs[j] >> 4];
    return sumi;
}

float ks_vec_dot_iq4_nl_q8_0_ref(const void *w, const void *a, int64_t n) {
    const ks_block_iq4_nl *x = w;
    const ks_block_q8_0 *y = a;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < n / QK; ib++) {
        const float d = ks_fp16_to_fp32(y[ib].d) * ks_fp16_to_fp32(x[ib].d);
        acc += d * (float)iq4_group_sumi(x[ib].qs, y[ib].qs);
    }
    return acc;
}

float ks_vec_dot_iq4_xs_q8_k_ref(const void *w, const void *a, int64_t n) {
    const ks_block_iq4_xs *x = w;
    const ks_block_q8_k *y = a;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++) {
        const float d = ks_fp16_to_fp32(x[ib].d) * y[ib].d;
        for (int j = 0; j < KS_QK_K / QK; j++) {
            const float dl = d * (float)(ks_iq4_xs_scale(&x[ib], j) - 32);
            acc += dl * (float)iq4_group_sumi(x[ib].qs + 16 * j, y[ib].qs + QK * j);
        }
    }
    return acc;
}
