/* gemm_amx.c — prefill matrix multiplication on AMX tiles (Sapphire Rapids and later):
 * many tokens against a range of Q8_0 weight rows, 16 x 16 outputs per tile.
 *
 * Owns: the AMX GEMM of ks_gemm_kernel (kernels.h) for Q8_0 weights, its activation
 * layout, and ks_gemm_amx_register().
 *
 * Per 32-element block j, TDPBSSD multiplies a tile of 16 weight rows' int8 quants
 * (16 rows x 32 bytes, loaded straight from the Q8_0 rows with their row stride) by a
 * tile of 16 tokens' int8 activations (8 rows x 64 bytes, the "VNNI" layout: row r holds
 * bytes 4r..4r+3 of each of the 16 tokens, packed once per call) into 16 x 16 exact
 * int32 block sums. Those are stored, converted to float and added into 16 float
 * accumulators (one 16-lane register per weight row, a lane per token) with the block's
 * scales:
 *
 *   y[t][r] = sum_j  float(isum_j[r][t]) * (da_j[t] * dw_j[r])     (j ascending)
 *
 * The tile multiply of block j + 1 is issued before the float work of block j, so the
 * two overlap. The int8 products are exact; the result differs from vec_dot's only in
 * the order of the float additions.
 *
 * Layouts:
 *   packed activations, per tile of 16 tokens (T rounded up to 16; pad tokens are zero):
 *     [T16 / 16][n / 32] x { B tile: [8][16 tokens x 4] int8 }, then
 *     [T16 / 16][n / 32] x { da: [16] float }
 *   per-thread scratch: dw of one panel of 16 weight rows, [n / 32][16] float, and the
 *   stored C tiles.
 *
 * Compiled with AVX-512 and -mamx-tile -mamx-int8 (CMakeLists.txt, *_amx.c); registered
 * only when the CPU has AMX-INT8 and the OS granted the tile data state. */
#include "tensor/x86/kernels_x86.h"

#include "tensor/quants.h"
#include "tensor/x86/amx.h"

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define TILE 16                        /* tokens, and weight rows, per tile */
#define BLOCK 32                       /* Q8_0 elements per block = bytes of an A tile row */
#define B_TILE_BYTES (BLOCK / 4 * 64)  /* 8 rows x 64 bytes */

/* Tile registers (literal numbers: the intrinsics paste them into the instruction) */
#define TA0 0
#define TA1 1
#define TB0 2
#define TB1 3
#define TC0 4
#define TC1 5

/* The configuration of every call: A tiles 16 x 32 bytes, B tiles 8 x 64, C tiles 16 x 64. */
static const ks_tile_config tile_cfg = {
    .palette_id = 1,
    .colsb = {[TA0] = BLOCK, [TA1] = BLOCK, [TB0] = TILE * 4, [TB1] = TILE * 4, [TC0] = TILE * 4, [TC1] = TILE * 4},
    .rows = {[TA0] = TILE, [TA1] = TILE, [TB0] = BLOCK / 4, [TB1] = BLOCK / 4, [TC0] = TILE, [TC1] = TILE},
};

static size_t n_tiles(int T) { return (size_t)(T + TILE - 1) / TILE; }

/* ---- activations ---------------------------------------------------------------------- */

static size_t q8_0_act_bytes(int T, int64_t n) {
    size_t nb = (size_t)(n / BLOCK);
    return n_tiles(T) * nb * (B_TILE_BYTES + TILE * sizeof(float));
}

/* Token t's Q8_0 row into its tile's B tiles and scales (row NULL: a zero pad token). */
static void q8_0_pack_act(const void *row, int t, int T, int64_t n, void *act) {
    size_t nb = (size_t)(n / BLOCK), tile = (size_t)t / TILE, m = (size_t)t % TILE;
    int8_t *bt = (int8_t *)act + tile * nb * B_TILE_BYTES;
    float *da = (float *)((uint8_t *)act + n_tiles(T) * nb * B_TILE_BYTES) + tile * nb * TILE;
    const ks_block_q8_0 *b = row;
    for (size_t j = 0; j < nb; j++) {
        int8_t *dst = bt + j * B_TILE_BYTES + m * 4;
        for (int r = 0; r < BLOCK / 4; r++)
            if (b)
                memcpy(dst + r * 64, b[j].qs + 4 * r, 4);
            else
                memset(dst + r * 64, 0, 4);
        da[j * TILE + m] = b ? ks_fp16_to_fp32(b[j].d) : 0.0f;
    }
}

/* ---- the tile loop -------------------------------------------------------------------- */

static size_t q8_0_scratch_bytes(int64_t n) {
    return 64 + (size_t)(n / BLOCK) * TILE * sizeof(float) + 2 * TILE * TILE * sizeof(int32_t);
}

/* acc[i] += float(C[i]) * (da * dw[i]) for the 16 weight rows of a stored C tile. */
static inline void accumulate(__m512 acc[TILE], const int32_t *cbuf, const float *da, const float *dw) {
    __m512 d = _mm512_load_ps(da);
#pragma GCC unroll 16
    for (int i = 0; i < TILE; i++) {
        __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512(cbuf + i * TILE));
        acc[i] = _mm512_fmadd_ps(c, _mm512_mul_ps(d, _mm512_set1_ps(dw[i])), acc[i]);
    }
}

/* C0 or C1 = W block j x activations block j */
#define TILE_PRODUCT(TA, TB, TC, j)                                                   \
    do {                                                                              \
        _tile_loadd(TA, w + (size_t)(j) * sizeof(ks_block_q8_0) + 2, (long)w_row_bytes); \
        _tile_loadd(TB, bt + (size_t)(j) * B_TILE_BYTES, 64);                         \
        _tile_zero(TC);                                                               \
        _tile_dpbssd(TC, TA, TB);                                                     \
    } while (0)

/* One panel of 16 weight rows (w: the first; rows past nr are read but not stored) x
 * one tile of 16 tokens. */
static void q8_0_tile(const uint8_t *w, size_t w_row_bytes, size_t nb, const int8_t *bt, const float *da,
                      const float *dw, int32_t *cbuf, __m512 acc[TILE]) {
    for (int i = 0; i < TILE; i++)
        acc[i] = _mm512_setzero_ps();
    /* Block j's C tile is stored one step before its float work, so the tile store has
     * landed by the time the vector loads read it. */
    int32_t *buf0 = cbuf, *buf1 = cbuf + TILE * TILE;
    TILE_PRODUCT(TA0, TB0, TC0, 0);
    if (nb > 1)
        TILE_PRODUCT(TA1, TB1, TC1, 1);
    _tile_stored(TC0, buf0, TILE * 4);
    for (size_t j = 0; j < nb; j += 2) {
        /* here: block j is in buf0, block j + 1 (if any) in C1 */
        if (j + 2 < nb)
            TILE_PRODUCT(TA0, TB0, TC0, j + 2);
        if (j + 1 < nb)
            _tile_stored(TC1, buf1, TILE * 4);
        accumulate(acc, buf0, da + j * TILE, dw + j * TILE);
        if (j + 1 >= nb)
            break;
        if (j + 3 < nb)
            TILE_PRODUCT(TA1, TB1, TC1, j + 3);
        if (j + 2 < nb)
            _tile_stored(TC0, buf0, TILE * 4);
        accumulate(acc, buf1, da + (j + 1) * TILE, dw + (j + 1) * TILE);
    }
}

/* In-register transpose: on return r[c] lane i = r[i] lane c on entry. */
static inline void transpose16(__m512 r[TILE]) {
    __m512 t[TILE], u[TILE];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k */
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[k], u[4 + k], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 v1 = _mm512_shuffle_f32x4(u[k], u[4 + k], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], _MM_SHUFFLE(3, 1, 3, 1));
        r[0 + k] = _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(2, 0, 2, 0));
        r[8 + k] = _mm512_shuffle_f32x4(v0, v2, _MM_SHUFFLE(3, 1, 3, 1));
        r[4 + k] = _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + k] = _mm512_shuffle_f32x4(v1, v3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

static void q8_0_run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T,
                     int64_t n, float *y, size_t ldy, void *scratch) {
    size_t nb = (size_t)(n / BLOCK), tiles = n_tiles(T);
    const int8_t *bt_all = act;
    const float *da_all = (const float *)((const uint8_t *)act + tiles * nb * B_TILE_BYTES);
    float *dw = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int32_t *cbuf = (int32_t *)(dw + nb * TILE);
    ks_tile_load_config(&tile_cfg);
    for (int64_t p = r0; p < r1; p += TILE) {
        int nr = (int)(r1 - p < TILE ? r1 - p : TILE);
        /* a short last panel reads its 16 rows from the first rows of the range instead */
        int64_t base = nr == TILE ? p : r1 - TILE >= 0 ? r1 - TILE : p;
        __mmask16 store_mask = (__mmask16)(0xffffu << (p - base));
        const uint8_t *wp = (const uint8_t *)w + (size_t)base * w_row_bytes;
        for (int i = 0; i < TILE; i++) {
            const ks_block_q8_0 *row = (const ks_block_q8_0 *)(wp + (size_t)i * w_row_bytes);
            for (size_t j = 0; j < nb; j++)
                dw[j * TILE + i] = ks_fp16_to_fp32(row[j].d);
        }
        for (size_t tt = 0; tt < tiles; tt++) {
            __m512 acc[TILE];
            q8_0_tile(wp, w_row_bytes, nb, bt_all + tt * nb * B_TILE_BYTES, da_all + tt * nb * TILE, dw, cbuf,
                      acc);
            /* acc[i] lane m = y[tt * 16 + m][base + i]: transposed, a store per token */
            transpose16(acc);
            int mt = (int)((size_t)T - tt * TILE < TILE ? (size_t)T - tt * TILE : TILE);
            for (int m = 0; m < mt; m++)
                _mm512_mask_storeu_ps(y + (tt * TILE + (size_t)m) * ldy + base, store_mask, acc[m]);
        }
        if (nr < TILE)
            break;
    }
    _tile_release();
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
}
