/* attn_kv.h — the kinds of K/V rows the attention kernels read in place from the paged KV
 * pool (kernels.h: attn_scores, attn_accum), and where their elements are.
 *
 * Owns: the element-to-byte arithmetic of F32, F16 and Q8_0 rows, the prefetch of a span
 * of a row, the addressing of a Q8_0 score tile's key blocks, and the layouts of Q8_0 and F16
 * keys in panels.
 *
 * A kind is a constant where the kernels are inlined, so each kind's walk compiles to its
 * own code. A Q8_0 row is whole blocks (n and the row stride ld multiples of 32): element
 * i is qs[i % 32] of block i / 32, its value d * qs (exact in a float: 8 bits times a
 * half's 11). The kernels widen those in registers exactly as a row converted to floats
 * first would hold them, so a Q8_0 row's results are the F32 kernels' on its values. */
#ifndef KS_ATTN_KV_H
#define KS_ATTN_KV_H

#include "core/ks_core.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"
#include "tensor/types.h"

#include <stdint.h>

enum { KV_F32 = 0, KV_F16 = 1, KV_Q8 = 2 };

/* Bytes before element idx of a row (Q8_0: idx a multiple of 32, or an estimate within
 * the block for a prefetch). */
static KS_ALWAYS_INLINE int64_t kv_off(int kind, int64_t idx) {
    return kind == KV_Q8 ? idx / KS_QK8_0 * (int64_t)sizeof(ks_block_q8_0) + (idx % KS_QK8_0 ? 2 + idx % KS_QK8_0 : 0)
         : idx * (kind == KV_F16 ? 2 : 4);
}

/* Element idx of rows of a kind (a row's start: idx a multiple of the row stride). */
static KS_ALWAYS_INLINE const void *kv_at(int kind, const void *base, int64_t idx) {
    return (const char *)base + kv_off(kind, idx);
}

/* The Q8_0 block holding element i of a row. */
static KS_ALWAYS_INLINE const ks_block_q8_0 *kv_q8_block(const void *row, int64_t i) {
    return (const ks_block_q8_0 *)row + i / KS_QK8_0;
}

/* Asks for the lines whose first byte lies in bytes [from, to) of a row (from 0: also the
 * line holding its first byte), to L2: a row the walk reads next, a share at a time. */
static KS_ALWAYS_INLINE void kv_prefetch_lines(const void *row, int64_t from, int64_t to) {
    const uintptr_t a = (uintptr_t)row + (uintptr_t)from, b = (uintptr_t)row + (uintptr_t)to;
    for (uintptr_t x = from == 0 ? a & ~(uintptr_t)63 : (a + 63) & ~(uintptr_t)63; x < b; x += 64)
        __builtin_prefetch((const void *)x, 0, 2);
}

/* Block b of key j of a tile of Q8_0 key rows ld_bytes apart from k (keys past nk_valid:
 * the last valid one again), asking for the same block of pf's row j (NULL: none). */
static KS_ALWAYS_INLINE const ks_block_q8_0 *kv_q8_key_block(const char *k, int64_t ld_bytes, int j, int nk_valid,
                                                             int b, const char *pf) {
    const int64_t jj = j < nk_valid ? j : nk_valid - 1;
    if (pf)
        kv_prefetch_lines(pf + jj * ld_bytes, (int64_t)sizeof(ks_block_q8_0) * b,
                          (int64_t)sizeof(ks_block_q8_0) * (b + 1));
    return (const ks_block_q8_0 *)(k + jj * ld_bytes) + b;
}

/* ---- Q8_0 keys in panels ---------------------------------------------------------------
 *
 * A KV pool may hold its Q8_0 keys in panels (model/kv_layout.h: k_panels) for
 * attn_scores_q8p: KV_PANEL_KEYS keys of one KV head side by side, so a vector holds the
 * same four elements of 16 keys and a query's four codes, broadcast, score them all in one
 * int8 dot-product instruction, with no sums across lanes. Per block of 32 elements:
 *
 *   kv_q8_panel:  d[16]          the 16 keys' scales (F16)
 *                 qs[8][16][4]   codes 4g .. 4g + 3 of key i at qs[g][i]
 *
 * 544 bytes, 16 keys' blocks (16 x 34). A head of nb blocks is nb panels, its 16 keys
 * nb * 544 bytes together; the 16 keys of all heads (head after head) take the bytes of 16
 * rows, so the panels of keys j .. j + 15 (j a multiple of 16) start where row j would. */
#define KV_PANEL_KEYS 16
typedef struct kv_q8_panel {
    ks_fp16 d[KV_PANEL_KEYS];
    int8_t qs[KS_QK8_0 / 4][KV_PANEL_KEYS][4];
} kv_q8_panel;
_Static_assert(sizeof(kv_q8_panel) == KV_PANEL_KEYS * sizeof(ks_block_q8_0), "a panel is 16 blocks' bytes");

/* Key `key` (< 16) of a head's panels (nb blocks) from a row of nb Q8_0 blocks. */
static inline void kv_q8_panel_put(kv_q8_panel *p, int key, const ks_block_q8_0 *row, int nb) {
    for (int b = 0; b < nb; b++) {
        p[b].d[key] = row[b].d;
        for (int g = 0; g < KS_QK8_0 / 4; g++)
            for (int e = 0; e < 4; e++)
                p[b].qs[g][key][e] = row[b].qs[4 * g + e];
    }
}

/* Key `key` (< 16) of a head's panels (nb blocks) as a row of nb Q8_0 blocks. */
static inline void kv_q8_panel_get(const kv_q8_panel *p, int key, ks_block_q8_0 *row, int nb) {
    for (int b = 0; b < nb; b++) {
        row[b].d = p[b].d[key];
        for (int g = 0; g < KS_QK8_0 / 4; g++)
            for (int e = 0; e < 4; e++)
                row[b].qs[4 * g + e] = p[b].qs[g][key][e];
    }
}

/* A query row as attn_scores_q8p takes it: per block its Q8_0 codes (quantize_act's), d
 * as a float and c = -128 times the sum of its codes, which takes back out what scoring
 * the keys shifted to unsigned (k + 128) adds. */
typedef struct kv_q8_query {
    int32_t c;
    float d;
    int8_t qs[KS_QK8_0];
} kv_q8_query;

/* A query row of nb Q8_0 blocks made ready for attn_scores_q8p. */
static inline void kv_q8_query_prep(const ks_block_q8_0 *row, int nb, kv_q8_query *out) {
    for (int b = 0; b < nb; b++) {
        int32_t sum = 0;
        for (int e = 0; e < KS_QK8_0; e++) {
            out[b].qs[e] = row[b].qs[e];
            sum += row[b].qs[e];
        }
        out[b].c = -128 * sum;
        out[b].d = ks_fp16_to_fp32(row[b].d);
    }
}

/* ---- F16 keys in panels ----------------------------------------------------------------
 *
 * A KV pool may hold its F16 keys in panels too (model/kv_layout.h: k_panels) for
 * attn_scores_f16p: element e of KV_PANEL_KEYS keys of one KV head side by side, key i at
 * h[16 e + i], 32 bytes, one vector of 16 floats once widened, so one query element,
 * broadcast, takes one FMA for all 16 keys and each score stays in its lane: no sums
 * across lanes. A head of n elements is 16 n halves, the bytes of its 16 keys in rows;
 * the 16 keys of all heads (head after head) take the bytes of 16 rows, so the panels of
 * keys j .. j + 15 (j a multiple of 16) start where row j would, as Q8_0's do. */

/* Key `key` (< 16) of a head's panel from a row of n halves. */
static inline void kv_f16_panel_put(ks_fp16 *p, int key, const ks_fp16 *row, int64_t n) {
    for (int64_t e = 0; e < n; e++)
        p[e * KV_PANEL_KEYS + key] = row[e];
}

/* Key `key` (< 16) of a head's panel as a row of n halves. */
static inline void kv_f16_panel_get(const ks_fp16 *p, int key, ks_fp16 *row, int64_t n) {
    for (int64_t e = 0; e < n; e++)
        row[e] = p[e * KV_PANEL_KEYS + key];
}

/* The kind of rows of a ks_type (F32, F16 or Q8_0). */
static inline int kv_kind(uint32_t type) {
    return type == KS_TYPE_F16 ? KV_F16 : type == KS_TYPE_Q8_0 ? KV_Q8 : KV_F32;
}

#endif
