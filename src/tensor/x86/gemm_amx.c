/* gemm_amx.c — prefill matrix multiplication on AMX tiles (Sapphire Rapids and later):
 * many tokens against a range of weight rows, 16 x 16 outputs per tile.
 *
 * Owns: the AMX GEMMs of ks_gemm_kernel (kernels.h) for Q8_0, Q4_K and Q6_K weights,
 * their activation layouts, and ks_gemm_amx_register().
 *
 * Every type is seen as int8 sub-blocks of SB elements (Q8_0: its 32-element blocks;
 * Q4_K: the 32-element sub-blocks of its super-blocks; Q6_K: its 16-element sub-blocks)
 * with a float scale per weight row and sub-block (dw), for Q4_K a min term too:
 *
 *   y[t][r] = sum_j  float(isum_j[r][t]) * (da_j[t] * dw_j[r])  -  asum_j[t] * dm_j[r]
 *
 * isum_j is the exact int8 dot product of sub-block j: TDPBSSD multiplies a tile of 16
 * weight rows (16 rows x SB bytes: Q8_0 rows are loaded in place with their row stride,
 * the K-quants are first unpacked to int8 once per panel of 16 rows) by a tile of 16
 * tokens' activations (SB/4 rows x 64 bytes, the "VNNI" layout: row r holds bytes
 * 4r..4r+3 of each of the 16 tokens, packed once per call). The 16 x 16 sums are stored,
 * converted to float and added, j ascending, into 16 float accumulators (one 16-lane
 * register per weight row, a lane per token), which are transposed at the end. The
 * tile product of sub-block j + 1 is issued before the float work of sub-block j, and
 * each C tile is stored one step before its float work reads it. da_j is the token's
 * activation scale (Q8_0: per block; Q8_K: per super-block), asum_j = da_j * the sum of
 * the token's sub-block codes (from Q8_K's bsums), dm_j = dmin * min_j.
 *
 * The products are exact; the results differ from vec_dot's only in the order and
 * grouping of the float operations.
 *
 * Layouts (T16 = T rounded up to 16; pad tokens are zero):
 *   packed activations:  B tiles  [T16 / 16][n / SB][SB / 4][64] int8
 *                        da       [T16 / 16][n / SB][16] float
 *                        asum     [T16 / 16][n / SB][16] float        (Q4_K only)
 *   per-thread scratch:  dw, dm   [n / SB][16] float each, for one panel of 16 rows
 *                        A        [16][n] int8, the panel unpacked    (K-quants only)
 *                        C        2 x [16][16] int32
 *
 * Compiled with AVX-512 and -mamx-tile -mamx-int8 (CMakeLists.txt, *_amx.c); registered
 * only when the CPU has AMX-INT8 and the OS granted the tile data state. */
#include "tensor/x86/kernels_x86.h"

#include "tensor/quants.h"
#include "tensor/x86/amx.h"
#include "tensor/x86/transpose_avx512.h"

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define TILE 16 /* tokens, and weight rows, per tile */

/* A tiles 16 x SB bytes, B tiles SB/4 x 64, C tiles 16 x 64. */
#define TILE_CONFIG(SB)                                                                            \
    {                                                                                              \
        .palette_id = 1,                                                                           \
        .colsb = {[KS_TA0] = SB, [KS_TA1] = SB, [KS_TB0] = TILE * 4, [KS_TB1] = TILE * 4,          \
                  [KS_TC0] = TILE * 4, [KS_TC1] = TILE * 4},                                       \
        .rows = {[KS_TA0] = TILE, [KS_TA1] = TILE, [KS_TB0] = SB / 4, [KS_TB1] = SB / 4,           \
                 [KS_TC0] = TILE, [KS_TC1] = TILE},                                                \
    }
static const ks_tile_config tile_cfg_32 = TILE_CONFIG(32);
static const ks_tile_config tile_cfg_16 = TILE_CONFIG(16);

static size_t n_tiles(int T) { return (size_t)(T + TILE - 1) / TILE; }

/* ---- activations ---------------------------------------------------------------------- */

/* Where token t's sub-block j goes in the packed activations. */
typedef struct act_layout {
    size_t nsb, sb, tiles;
    int8_t *b;     /* B tiles */
    float *da, *asum;
} act_layout;

static act_layout act_at(void *act, int T, int64_t n, int sb, bool with_asum) {
    act_layout l = {(size_t)(n / sb), (size_t)sb, n_tiles(T), act, NULL, NULL};
    size_t b_bytes = l.tiles * l.nsb * l.sb * TILE;
    l.da = (float *)((uint8_t *)act + b_bytes);
    if (with_asum)
        l.asum = l.da + l.tiles * l.nsb * TILE;
    return l;
}

static size_t act_bytes_for(int T, int64_t n, int sb, bool with_asum) {
    size_t tiles = n_tiles(T), nsb = (size_t)(n / sb);
    return tiles * nsb * ((size_t)sb * TILE + TILE * sizeof(float) * (with_asum ? 2 : 1));
}

/* Sub-block j of token t: SB codes into the B tiles, its scale and code sum. */
static void put_sub_block(const act_layout *l, int t, size_t j, const int8_t *q, float da, float asum) {
    size_t tile = (size_t)t / TILE, m = (size_t)t % TILE;
    int8_t *dst = l->b + (tile * l->nsb + j) * l->sb * TILE + m * 4;
    for (size_t r = 0; r < l->sb / 4; r++)
        if (q)
            memcpy(dst + r * 64, q + 4 * r, 4);
        else
            memset(dst + r * 64, 0, 4);
    l->da[(tile * l->nsb + j) * TILE + m] = da;
    if (l->asum)
        l->asum[(tile * l->nsb + j) * TILE + m] = asum;
}

static size_t q8_0_act_bytes(int T, int64_t n) { return act_bytes_for(T, n, 32, false); }

static void q8_0_pack_act(const void *row, int t, int T, int64_t n, void *act) {
    act_layout l = act_at(act, T, n, 32, false);
    const ks_block_q8_0 *b = row;
    for (size_t j = 0; j < l.nsb; j++)
        put_sub_block(&l, t, j, b ? b[j].qs : NULL, b ? _cvtsh_ss(b[j].d) : 0.0f, 0.0f);
}

/* Q8_K activations as 32-element sub-blocks (for Q4_K) or 16 (for Q6_K). */
static void q8_k_pack_act(const void *row, int t, int T, int64_t n, void *act, int sb, bool with_asum) {
    act_layout l = act_at(act, T, n, sb, with_asum);
    const ks_block_q8_k *b = row;
    size_t per_block = KS_QK_K / (size_t)sb;
    for (size_t j = 0; j < l.nsb; j++) {
        if (!b) {
            put_sub_block(&l, t, j, NULL, 0.0f, 0.0f);
            continue;
        }
        const ks_block_q8_k *blk = &b[j / per_block];
        size_t k = j % per_block; /* sub-block within the super-block */
        int bsum = 0;
        for (size_t i = 0; i < (size_t)sb / 16; i++)
            bsum += blk->bsums[k * ((size_t)sb / 16) + i];
        put_sub_block(&l, t, j, blk->qs + k * (size_t)sb, blk->d, blk->d * (float)bsum);
    }
}

static size_t q4_k_act_bytes(int T, int64_t n) { return act_bytes_for(T, n, 32, true); }
static void q4_k_pack_act(const void *row, int t, int T, int64_t n, void *act) {
    q8_k_pack_act(row, t, T, n, act, 32, true);
}
static size_t q6_k_act_bytes(int T, int64_t n) { return act_bytes_for(T, n, 16, false); }
static void q6_k_pack_act(const void *row, int t, int T, int64_t n, void *act) {
    q8_k_pack_act(row, t, T, n, act, 16, false);
}

/* ---- weight panels ---------------------------------------------------------------------- */

/* One panel of 16 weight rows as the tile loop reads it. */
typedef struct panel {
    const int8_t *a;  /* sub-block 0 of row 0 */
    size_t a_stride;  /* bytes from row to row */
    size_t a_step;    /* bytes from sub-block to sub-block */
    float *dw, *dm;   /* [nsb][16]; dm NULL: no min term */
} panel;

typedef struct scratch_layout {
    float *dw, *dm;
    int8_t *a;
    int32_t *cbuf;
} scratch_layout;

static size_t scratch_bytes_for(int64_t n, int sb, bool unpacked) {
    size_t nsb = (size_t)(n / sb);
    return 64 + 2 * nsb * TILE * sizeof(float) + (unpacked ? TILE * (size_t)n : 0) +
           2 * TILE * TILE * sizeof(int32_t);
}

static scratch_layout scratch_at(void *scratch, int64_t n, int sb, bool unpacked) {
    size_t nsb = (size_t)(n / sb);
    scratch_layout s;
    s.cbuf = (int32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    s.dw = (float *)(s.cbuf + 2 * TILE * TILE);
    s.dm = s.dw + nsb * TILE;
    s.a = (int8_t *)(s.dm + nsb * TILE);
    (void)unpacked;
    return s;
}

static size_t q8_0_scratch_bytes(int64_t n) { return scratch_bytes_for(n, 32, false); }
static size_t q4_k_scratch_bytes(int64_t n) { return scratch_bytes_for(n, 32, true); }
static size_t q6_k_scratch_bytes(int64_t n) { return scratch_bytes_for(n, 16, true); }

/* Q8_0: the quants are read in place; only the scales are converted, the 16 rows' scales
 * of a block at once (gathered a row apart; a prompt chunk of a few dozen tokens spent a
 * tenth of its time converting them one by one). */
static panel q8_0_panel(const uint8_t *w, size_t w_row_bytes, int64_t n, const scratch_layout *s) {
    size_t nsb = (size_t)(n / KS_QK8_0);
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)w_row_bytes));
    for (size_t j = 0; j < nsb; j++) {
        /* the dword at each row's block j: its fp16 d, then the first two codes */
        const __m512i d = _mm512_i32gather_epi32(rows, w + j * sizeof(ks_block_q8_0), 1);
        _mm512_storeu_ps(s->dw + j * TILE, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
    }
    return (panel){(const int8_t *)w + offsetof(ks_block_q8_0, qs), w_row_bytes, sizeof(ks_block_q8_0), s->dw, NULL};
}

/* Q4_K: codes 0..15 as int8, dw = d * sc_j, dm = dmin * min_j per 32-element sub-block. */
static panel q4_k_panel(const uint8_t *w, size_t w_row_bytes, int64_t n, const scratch_layout *s) {
    size_t nblk = (size_t)(n / KS_QK_K);
    for (int i = 0; i < TILE; i++) {
        const ks_block_q4_k *row = (const ks_block_q4_k *)(w + (size_t)i * w_row_bytes);
        int8_t *a = s->a + (size_t)i * (size_t)n;
        for (size_t b = 0; b < nblk; b++) {
            const ks_block_q4_k *blk = &row[b];
            float d = _cvtsh_ss(blk->d), dmin = _cvtsh_ss(blk->dmin);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, mn;
                ks_k_scale_min(j, blk->scales, &sc, &mn);
                s->dw[(b * 8 + (size_t)j) * TILE + (size_t)i] = d * (float)sc;
                s->dm[(b * 8 + (size_t)j) * TILE + (size_t)i] = dmin * (float)mn;
            }
            int8_t *o = a + b * KS_QK_K;
            for (int g = 0; g < 4; g++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(blk->qs + 32 * g));
                __m256i lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f));
                _mm256_storeu_si256((__m256i *)(o + 64 * g), lo);
                _mm256_storeu_si256((__m256i *)(o + 64 * g + 32), hi);
            }
        }
    }
    return (panel){s->a, (size_t)n, 32, s->dw, s->dm};
}

/* Q6_K: codes q - 32 as int8, dw = d * scale_k per 16-element sub-block. */
static panel q6_k_panel(const uint8_t *w, size_t w_row_bytes, int64_t n, const scratch_layout *s) {
    size_t nblk = (size_t)(n / KS_QK_K);
    for (int i = 0; i < TILE; i++) {
        const ks_block_q6_k *row = (const ks_block_q6_k *)(w + (size_t)i * w_row_bytes);
        int8_t *a = s->a + (size_t)i * (size_t)n;
        for (size_t b = 0; b < nblk; b++) {
            const ks_block_q6_k *blk = &row[b];
            float d = _cvtsh_ss(blk->d);
            for (int k = 0; k < 16; k++)
                s->dw[(b * 16 + (size_t)k) * TILE + (size_t)i] = d * (float)blk->scales[k];
            /* per half h and l < 32, codes l, l + 32, l + 64, l + 96: the low nibbles of
             * ql[l], ql[l + 32], their high nibbles, each with bits 0-1, 2-3, 4-5, 6-7 of
             * qh[l] as bits 4-5 (shifts of 16-bit lanes, masked to the byte's own bits) */
            const __m256i lo4 = _mm256_set1_epi8(0x0f), hi2 = _mm256_set1_epi8(0x30), c32 = _mm256_set1_epi8(32);
            for (int h = 0; h < 2; h++) {
                const __m256i q0 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
                const __m256i q1 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
                const __m256i o0 = _mm256_or_si256(_mm256_and_si256(q0, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2));
                const __m256i o1 = _mm256_or_si256(_mm256_and_si256(q1, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2));
                const __m256i o2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q0, 4), lo4), _mm256_and_si256(qh, hi2));
                const __m256i o3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q1, 4), lo4),
                                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2));
                int8_t *o = a + b * KS_QK_K + 128 * (size_t)h;
                _mm256_storeu_si256((__m256i *)o, _mm256_sub_epi8(o0, c32));
                _mm256_storeu_si256((__m256i *)(o + 32), _mm256_sub_epi8(o1, c32));
                _mm256_storeu_si256((__m256i *)(o + 64), _mm256_sub_epi8(o2, c32));
                _mm256_storeu_si256((__m256i *)(o + 96), _mm256_sub_epi8(o3, c32));
            }
        }
    }
    return (panel){s->a, (size_t)n, 16, s->dw, NULL};
}

/* ---- the tile loop -------------------------------------------------------------------- */

/* acc[i] += float(C[i]) * (da * dw[i]) - asum * dm[i] for the 16 weight rows of a stored
 * C tile (asum, dm NULL: no min term). */
static inline void accumulate(__m512 acc[TILE], const int32_t *cbuf, const float *da, const float *dw,
                              const float *asum, const float *dm) {
    __m512 d = _mm512_load_ps(da);
#pragma GCC unroll 16
    for (int i = 0; i < TILE; i++) {
        __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512(cbuf + i * TILE));
        acc[i] = _mm512_fmadd_ps(c, _mm512_mul_ps(d, _mm512_set1_ps(dw[i])), acc[i]);
    }
    if (asum) {
        __m512 as = _mm512_load_ps(asum);
#pragma GCC unroll 16
        for (int i = 0; i < TILE; i++)
            acc[i] = _mm512_fnmadd_ps(as, _mm512_set1_ps(dm[i]), acc[i]);
    }
}

/* C = panel sub-block j x activations sub-block j */
#define TILE_PRODUCT(TA, TB, TC, j)                                                   \
    do {                                                                              \
        _tile_loadd(TA, p->a + (size_t)(j) * p->a_step, (long)p->a_stride);            \
        _tile_loadd(TB, bt + (size_t)(j) * b_bytes, 64);                              \
        _tile_zero(TC);                                                               \
        _tile_dpbssd(TC, TA, TB);                                                     \
    } while (0)

#define ACCUMULATE(buf, j)                                                                     \
    accumulate(acc, buf, da + (j) * TILE, p->dw + (j) * TILE, asum ? asum + (j) * TILE : NULL, \
               p->dm ? p->dm + (j) * TILE : NULL)

/* One panel of 16 weight rows x one tile of 16 tokens, over nsb sub-blocks of sb. */
static void tile_product(const panel *p, size_t nsb, size_t sb, const int8_t *bt, const float *da,
                         const float *asum, int32_t *cbuf, __m512 out[TILE]) {
    size_t b_bytes = sb * TILE;
    /* the accumulators are this function's own (their address never escapes), so they
     * live in registers across the tile instructions, which clobber memory */
    __m512 acc[TILE];
    for (int i = 0; i < TILE; i++)
        acc[i] = _mm512_setzero_ps();
    int32_t *buf0 = cbuf, *buf1 = cbuf + TILE * TILE;
    KS_TILE_PIPELINE(nsb, TILE_PRODUCT, ACCUMULATE, buf0, buf1);
    for (int i = 0; i < TILE; i++)
        out[i] = acc[i];
}

typedef panel (*panel_fn)(const uint8_t *w, size_t w_row_bytes, int64_t n, const scratch_layout *s);

/* Rows [r0, r1) against all T tokens, a panel of 16 rows at a time; a short last panel
 * reads the 16 rows ending at r1 (rows before r0 are read, never written). */
static void run_panels(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, void *act, int T, int64_t n,
                       float *y, size_t ldy, void *scratch, int sb, bool with_asum, bool unpacked, panel_fn make_panel) {
    act_layout l = act_at(act, T, n, sb, with_asum);
    scratch_layout s = scratch_at(scratch, n, sb, unpacked);
    ks_tile_load_config(sb == 32 ? &tile_cfg_32 : &tile_cfg_16);
    for (int64_t p0 = r0; p0 < r1; p0 += TILE) {
        int64_t base = r1 - p0 >= TILE || r1 < TILE ? p0 : r1 - TILE;
        __mmask16 store_mask = (__mmask16)(0xffffu << (p0 - base));
        panel p = make_panel((const uint8_t *)w + (size_t)base * w_row_bytes, w_row_bytes, n, &s);
        for (size_t tt = 0; tt < l.tiles; tt++) {
            __m512 acc[TILE];
            size_t at = tt * l.nsb;
            tile_product(&p, l.nsb, l.sb, l.b + at * l.sb * TILE, l.da + at * TILE,
                         l.asum ? l.asum + at * TILE : NULL, s.cbuf, acc);
            /* acc[i] lane m = y[tt * 16 + m][base + i]: transposed, a store per token */
            ks_transpose16_ps(acc);
            int mt = (int)((size_t)T - tt * TILE < TILE ? (size_t)T - tt * TILE : TILE);
            for (int m = 0; m < mt; m++)
                _mm512_mask_storeu_ps(y + (tt * TILE + (size_t)m) * ldy + base, store_mask, acc[m]);
        }
        if (base != p0)
            break;
    }
    _tile_release();
}

static void q8_0_run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T,
                     int64_t n, float *y, size_t ldy, void *scratch) {
    run_panels(w, w_row_bytes, r0, r1, (void *)act, T, n, y, ldy, scratch, 32, false, false, q8_0_panel);
}
static void q4_k_run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T,
                     int64_t n, float *y, size_t ldy, void *scratch) {
    run_panels(w, w_row_bytes, r0, r1, (void *)act, T, n, y, ldy, scratch, 32, true, true, q4_k_panel);
}
static void q6_k_run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T,
                     int64_t n, float *y, size_t ldy, void *scratch) {
    run_panels(w, w_row_bytes, r0, r1, (void *)act, T, n, y, ldy, scratch, 16, false, true, q6_k_panel);
}

/* ---- registration --------------------------------------------------------------------- */

/* Linux's request for the AMX tile data state (asm/prctl.h, xfeature 18). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

bool ks_amx_request(void) {
#if defined(__linux__)
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

void ks_gemm_amx_register(ks_kernels *k) {
    k->gemm[KS_TYPE_Q8_0] = (ks_gemm_kernel){
        .act_bytes = q8_0_act_bytes,
        .pack_act = q8_0_pack_act,
        .scratch_bytes = q8_0_scratch_bytes,
        .run = q8_0_run,
    };
    k->gemm[KS_TYPE_Q4_K] = (ks_gemm_kernel){
        .act_bytes = q4_k_act_bytes,
        .pack_act = q4_k_pack_act,
        .scratch_bytes = q4_k_scratch_bytes,
        .run = q4_k_run,
    };
    k->gemm[KS_TYPE_Q6_K] = (ks_gemm_kernel){
        .act_bytes = q6_k_act_bytes,
        .pack_act = q6_k_pack_act,
        .scratch_bytes = q6_k_scratch_bytes,
        .run = q6_k_run,
    };
}
