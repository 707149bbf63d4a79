/* quants.h — the byte layouts of the quantized block types kvserve reads and writes.
 *
 * Every struct here is a GGUF on-disk block, byte for byte: a tensor of such a type is a
 * plain array of these blocks, row after row, and a mapped GGUF file is read through
 * them without copying. Half-precision fields are ks_fp16 bit patterns (convert with
 * fp16.h); multi-byte fields are little-endian, as on every CPU kvserve runs on.
 *
 * Owns: the structs, their sizes (checked at compile time) and the small static inline
 * helpers that unpack packed fields, shared by the reference codecs (ref/quants_ref.c,
 * ref/quants_k_ref.c) and the ISA kernels.
 * Does not own: quantization algorithms (tensor/ref/), the traits table (types.c).
 *
 * Two families:
 *
 *   32-element blocks  Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1    one fp16 scale (and offset) per 32
 *                      IQ4_NL                           the same, codes index a fixed table
 *   256-element super-blocks  Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K IQ4_XS
 *                                                       sub-block scales themselves quantized
 *                                                       against one fp16 super-block scale
 *
 * Naming of the value a block stores for element i:  q[i] (the unsigned code in the
 * bits), and the value it decodes to,  x[i] = d * (q[i] - zero)  or  d * q[i] - m. */
#ifndef KS_QUANTS_H
#define KS_QUANTS_H

#include "tensor/fp16.h"
#include <stdint.h>

/* Elements per block of the 32-element family: small enough for a scale to follow local
 * magnitude, large enough that a 2-byte scale costs only 0.5 bit per weight. */
#define KS_QK4_0 32
#define KS_QK4_1 32
#define KS_QK5_0 32
#define KS_QK5_1 32
#define KS_QK8_0 32
#define KS_QK8_1 32

/* Elements per K-quant super-block: 8 sub-blocks of 32 (Q4_K, Q5_K) or 16 of 16 (Q6_K,
 * Q8_K sums), so that 6- or 8-bit sub-block scales amortise one fp16 super scale. */
#define KS_QK_K 256

/* Bytes of packed 6-bit scales and mins in Q4_K/Q5_K: 8 scales + 8 mins, 6 bits each. */
#define KS_K_SCALE_BYTES 12

/* ---- Q4_0: 4-bit, symmetric -------------------------------------------------------
 *
 *   x[i] = d * (q[i] - 8),  q in 0..15
 *
 *   bytes: | d (fp16) | qs[0] ... qs[15] |                              18 bytes
 *   qs[j]:   7..4 = q[j + 16]   3..0 = q[j]          (j = 0..15)
 *
 * The low nibbles hold the first half of the block, the high nibbles the second, so a
 * SIMD kernel splits a 16-byte load into two contiguous runs of 16 elements. */
typedef struct ks_block_q4_0 {
    ks_fp16 d;
    uint8_t qs[KS_QK4_0 / 2];
} ks_block_q4_0;
_Static_assert(sizeof(ks_block_q4_0) == 2 + KS_QK4_0 / 2, "q4_0 block is 18 bytes");

/* ---- Q4_1: 4-bit with offset -------------------------------------------------------
 *
 *   x[i] = d * q[i] + m,  q in 0..15
 *
 *   bytes: | d (fp16) | m (fp16) | qs[0] ... qs[15] |                   20 bytes
 *   qs[j]: as Q4_0 (low nibble q[j], high nibble q[j + 16]) */
typedef struct ks_block_q4_1 {
    ks_fp16 d;
    ks_fp16 m;
    uint8_t qs[KS_QK4_1 / 2];
} ks_block_q4_1;
_Static_assert(sizeof(ks_block_q4_1) == 4 + KS_QK4_1 / 2, "q4_1 block is 20 bytes");

/* ---- Q5_0: 5-bit, symmetric --------------------------------------------------------
 *
 *   x[i] = d * (q[i] - 16),  q in 0..31
 *
 *   bytes: | d (fp16) | qh[0..3] | qs[0] ... qs[15] |                   22 bytes
 *   qh, read as a little-endian u32:  bit i = bit 4 of q[i]      (i = 0..31)
 *   qs[j]: low nibble = bits 3..0 of q[j], high nibble = bits 3..0 of q[j + 16]
 *
 * qh is a byte array, not a u32: the block is only 2-byte aligned inside a tensor. */
typedef struct ks_block_q5_0 {
    ks_fp16 d;
    uint8_t qh[4];
    uint8_t qs[KS_QK5_0 / 2];
} ks_block_q5_0;
_Static_assert(sizeof(ks_block_q5_0) == 2 + 4 + KS_QK5_0 / 2, "q5_0 block is 22 bytes");

/* ---- Q5_1: 5-bit with offset -------------------------------------------------------
 *
 *   x[i] = d * q[i] + m,  q in 0..31
 *
 *   bytes: | d (fp16) | m (fp16) | qh[0..3] | qs[0] ... qs[15] |        24 bytes
 *   qh, qs: as Q5_0 */
typedef struct ks_block_q5_1 {
    ks_fp16 d;
    ks_fp16 m;
    uint8_t qh[4];
    uint8_t qs[KS_QK5_1 / 2];
} ks_block_q5_1;
_Static_assert(sizeof(ks_block_q5_1) == 4 + 4 + KS_QK5_1 / 2, "q5_1 block is 24 bytes");

/* ---- Q8_0: 8-bit, symmetric --------------------------------------------------------
 *
 *   x[i] = d * qs[i],  qs in -127..127 (int8)
 *
 *   bytes: | d (fp16) | qs[0] ... qs[31] |                              34 bytes */
typedef struct ks_block_q8_0 {
    ks_fp16 d;
    int8_t qs[KS_QK8_0];
} ks_block_q8_0;
_Static_assert(sizeof(ks_block_q8_0) == 2 + KS_QK8_0, "q8_0 block is 34 bytes");

/* ---- Q8_1: 8-bit activations for the offset types (Q4_1, Q5_1) ---------------------
 *
 *   x[i] = d * qs[i];   s = d * sum(qs)  (so a dot product with a Q4_1 row adds
 *                                         m * s without touching the elements again)
 *
 *   bytes: | d (fp16) | s (fp16) | qs[0] ... qs[31] |                   36 bytes */
typedef struct ks_block_q8_1 {
    ks_fp16 d;
    ks_fp16 s;
    int8_t qs[KS_QK8_1];
} ks_block_q8_1;
_Static_assert(sizeof(ks_block_q8_1) == 4 + KS_QK8_1, "q8_1 block is 36 bytes");

/* ---- Q4_K: 4-bit super-blocks, 8 sub-blocks of 32 with 6-bit scale and min ----------
 *
 *   element i of sub-block j (j = 0..7, i = 0..31):
 *       x = d * sc[j] * q - dmin * mn[j],   q in 0..15, sc and mn in 0..63
 *
 *   bytes: | d (fp16) | dmin (fp16) | scales[12] | qs[128] |            144 bytes
 *
 *   scales[12] packs sc[0..7] and mn[0..7], 6 bits each (ks_k_scale_min() unpacks):
 *
 *     byte    0..3 (k = 0..3)      4..7 (k = 0..3)      8..11 (k = 0..3)
 *           +-----+-----------+  +-----+-----------+  +-----------+-----------+
 *           | 7 6 | 5 4 3 2 1 0|  | 7 6 | 5 4 3 2 1 0|  | 7 6 5 4   | 3 2 1 0   |
 *           +-----+-----------+  +-----+-----------+  +-----------+-----------+
 *             sc[k+4]  sc[k]        mn[k+4]  mn[k]      mn[k+4]     sc[k+4]
 *             bits 5:4 bits 5:0     bits 5:4 bits 5:0   bits 3:0    bits 3:0
 *
 *   qs: four 32-byte groups; group g holds sub-blocks 2g (low nibbles) and 2g+1 (high):
 *       qs[32g + l] = q[64g + l] | q[64g + 32 + l] << 4        (l = 0..31) */
typedef struct ks_block_q4_k {
    ks_fp16 d;
    ks_fp16 dmin;
    uint8_t scales[KS_K_SCALE_BYTES];
    uint8_t qs[KS_QK_K / 2];
} ks_block_q4_k;
_Static_assert(sizeof(ks_block_q4_k) == 4 + KS_K_SCALE_BYTES + KS_QK_K / 2,
               "q4_K block is 144 bytes");

/* ---- Q5_K: 5-bit super-blocks, same scales as Q4_K, one high bit per element -------
 *
 *       x = d * sc[j] * q - dmin * mn[j],   q in 0..31
 *
 *   bytes: | d | dmin | scales[12] | qh[32] | qs[128] |                 176 bytes
 *
 *   qs: the low 4 bits of q, packed exactly as Q4_K's qs.
 *   qh: bit 4 of q; qh[l] collects it for the 8 elements at offset l of each sub-block:
 *
 *       qh[l]:  bit  7    6    5    4    3    2    1    0             (l = 0..31)
 *                   sb7  sb6  sb5  sb4  sb3  sb2  sb1  sb0
 *       i.e. bit j = bit 4 of q[32j + l]  (sub-block j, element l) */
typedef struct ks_block_q5_k {
    ks_fp16 d;
    ks_fp16 dmin;
    uint8_t scales[KS_K_SCALE_BYTES];
    uint8_t qh[KS_QK_K / 8];
    uint8_t qs[KS_QK_K / 2];
} ks_block_q5_k;
_Static_assert(sizeof(ks_block_q5_k) == 4 + KS_K_SCALE_BYTES + KS_QK_K / 8 + KS_QK_K / 2,
               "q5_K block is 176 bytes");

/* ---- Q6_K: 6-bit super-blocks, 16 sub-blocks of 16 with a signed 8-bit scale -------
 *
 *       x[e] = d * scales[e / 16] * (q[e] - 32),   q in 0..63      (e = 0..255)
 *
 *   bytes: | ql[128] | qh[64] | scales[16] (int8) | d (fp16) |          210 bytes
 *
 *   Two halves of 128 elements; half h uses ql[64h .. 64h+63] and qh[32h .. 32h+31].
 *   Within a half, for l = 0..31 (e counted from the half's start):
 *
 *       ql[l]      = q[l]      bits 3:0  |  q[l + 64] bits 3:0 << 4
 *       ql[l + 32] = q[l + 32] bits 3:0  |  q[l + 96] bits 3:0 << 4
 *       qh[l]      = q[l] bits 5:4  |  q[l+32] bits 5:4 << 2  |
 *                    q[l+64] bits 5:4 << 4  |  q[l+96] bits 5:4 << 6
 *
 * The scale follows the quants here (not in front as elsewhere): that is the format. */
typedef struct ks_block_q6_k {
    uint8_t ql[KS_QK_K / 2];
    uint8_t qh[KS_QK_K / 4];
    int8_t scales[KS_QK_K / 16];
    ks_fp16 d;
} ks_block_q6_k;
_Static_assert(sizeof(ks_block_q6_k) == KS_QK_K / 2 + KS_QK_K / 4 + KS_QK_K / 16 + 2,
               "q6_K block is 210 bytes");

/* ---- Q8_K: 8-bit activations for the K-quant dot products --------------------------
 *
 *       x[e] = d * qs[e],   d a full float (activations are never stored in files)
 *
 *   bytes: | d (f32) | qs[256] (int8) | bsums[16] (int16) |             292 bytes
 *   bsums[k] = sum of qs[16k .. 16k+15]: lets a dot product with Q4_K/Q5_K apply the
 *   per-sub-block mins without another pass over the activations. */
typedef struct ks_block_q8_k {
    float d;
    int8_t qs[KS_QK_K];
    int16_t bsums[KS_QK_K / 16];
} ks_block_q8_k;
_Static_assert(sizeof(ks_block_q8_k) == 4 + KS_QK_K + KS_QK_K / 16 * 2, "q8_K block is 292 bytes");

/* ---- Q2_K: 2-bit super-blocks, 16 sub-blocks of 16 with 4-bit scale and min -------
 *
 *       x[e] = d * sc[e / 16] * q[e] - dmin * mn[e / 16],   q in 0..3, sc and mn in 0..15
 *
 *   bytes: | scales[16] | qs[64] | d (fp16) | dmin (fp16) |             84 bytes
 *   scales[k]: low nibble sc[k], high nibble mn[k]
 *   qs: two halves of 128 elements; element e of half h (e = 0..127) is in
 *       qs[32h + e % 32], bits 2 (e / 32) + 1 .. 2 (e / 32)
 *   (the same code layout as Q3_K's low bits) */
typedef struct ks_block_q2_k {
    uint8_t scales[KS_QK_K / 16];
    uint8_t qs[KS_QK_K / 4];
    ks_fp16 d;
    ks_fp16 dmin;
} ks_block_q2_k;
_Static_assert(sizeof(ks_block_q2_k) == KS_QK_K / 16 + KS_QK_K / 4 + 4, "q2_K block is 84 bytes");

/* ---- Q3_K: 3-bit super-blocks, 16 sub-blocks of 16 with a signed 6-bit scale -------
 *
 *       x[e] = d * (sc[e / 16] - 32) * (q[e] - 4),   q in 0..7, sc in 0..63
 *
 *   bytes: | hmask[32] | qs[64] | scales[12] | d (fp16) |               110 bytes
 *   qs: bits 1..0 of q, laid out as Q2_K's qs
 *   hmask[e % 32], bit e / 32: bit 2 of q[e]
 *   scales[12]: sc[k] = low | high << 4 (ks_q3_k_scale() unpacks), where
 *       low  = k < 8 ? scales[k] bits 3..0 : scales[k - 8] bits 7..4
 *       high = scales[8 + k % 4] bits 2 (k / 4) + 1 .. 2 (k / 4) */
typedef struct ks_block_q3_k {
    uint8_t hmask[KS_QK_K / 8];
    uint8_t qs[KS_QK_K / 4];
    uint8_t scales[12];
    ks_fp16 d;
} ks_block_q3_k;
_Static_assert(sizeof(ks_block_q3_k) == KS_QK_K / 8 + KS_QK_K / 4 + 12 + 2, "q3_K block is 110 bytes");

/* ---- IQ4_NL, IQ4_XS: 4-bit codes into a fixed non-linear table ---------------------
 *
 *       x = scale * ks_iq4_values[q],   q in 0..15
 *
 * The table crowds its values near zero, where most weights are. IQ4_NL has one fp16
 * scale per 32 elements; IQ4_XS a 6-bit signed scale per 32 against one fp16 scale per
 * 256. Both pack codes as Q4_0 does: per 32 elements, 16 bytes, q[j] in the low nibble
 * of byte j and q[j + 16] in its high nibble.
 *
 *   IQ4_NL bytes: | d (fp16) | qs[16] |                                18 bytes
 *   IQ4_XS bytes: | d (fp16) | scales_h (u16) | scales_l[4] | qs[128] | 136 bytes
 *       sub-block j (0..7): scale d * (ls - 32), ls = low | high << 4 with
 *       low = scales_l[j / 2] nibble j % 2, high = scales_h bits 2j + 1 .. 2j */
static const int8_t ks_iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

#define KS_QK4_NL 32
typedef struct ks_block_iq4_nl {
    ks_fp16 d;
    uint8_t qs[KS_QK4_NL / 2];
} ks_block_iq4_nl;
_Static_assert(sizeof(ks_block_iq4_nl) == 2 + KS_QK4_NL / 2, "iq4_nl block is 18 bytes");

typedef struct ks_block_iq4_xs {
    ks_fp16 d;
    uint16_t scales_h;
    uint8_t scales_l[KS_QK_K / 64];
    uint8_t qs[KS_QK_K / 2];
} ks_block_iq4_xs;
_Static_assert(sizeof(ks_block_iq4_xs) == 4 + KS_QK_K / 64 + KS_QK_K / 2, "iq4_xs block is 136 bytes");

/* Sub-block k's (0..15) 6-bit scale of a Q3_K block, 0..63 (diagram at ks_block_q3_k). */
static inline int ks_q3_k_scale(const uint8_t *scales, int k) {
    const int low = k < 8 ? scales[k] & 0x0f : scales[k - 8] >> 4;
    const int high = (scales[8 + k % 4] >> (2 * (k / 4))) & 3;
    return low | high << 4;
}

/* Sub-block j's (0..7) 6-bit scale of an IQ4_XS block, 0..63. */
static inline int ks_iq4_xs_scale(const ks_block_iq4_xs *b, int j) {
    const int low = (b->scales_l[j / 2] >> (4 * (j % 2))) & 0x0f;
    const int high = (b->scales_h >> (2 * j)) & 3;
    return low | high << 4;
}

/* Sub-block j's (0..7) 6-bit scale and min from Q4_K/Q5_K packed scales (diagram at
 * ks_block_q4_k). */
static inline void ks_k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = scales[j] & 63;
        *mn = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
        *mn = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

#endif
