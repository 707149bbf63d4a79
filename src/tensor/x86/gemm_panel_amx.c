/* gemm_panel_amx.c — prefill over Q8_0 weights repacked in 16-row panels (kernels.h,
 * ks_panel_kernels), on AMX-INT8 tiles.
 *
 * Owns: the panel GEMM (its activation layout, tile loop), ks_gemm_panel_amx_register().
 *
 * A panel block's codes are already a B tile (8 rows of 64 bytes: four codes of each of
 * the 16 weight rows per tile row), so the weights are loaded in place, unsigned (code +
 * 128); the tokens are the A tile (16 tokens x a block's 32 codes, signed), packed once
 * per call. TDPBSUD leaves C[t][r] = sum a (q + 128), exact; token t's correction
 * -128 * sum(a) takes the offset out, and its row of C, a 16-lane vector over the weight
 * rows, takes the gemv's float steps (panel_q8_0_avx512.c) for the 16 rows at once:
 *
 *   acc[t] = fma(fp32(d_rows) * da[t], float(C[t] + corr[t]), acc[t]), blocks in order
 *
 * so each result equals the gemv's (and the reference's) bit for bit: a prompt's tokens
 * get the logits they would get decoded one at a time. The blocks go through the tile
 * GEMMs' pipeline (amx.h).
 *
 * Layout of the packed activations (T16 = T rounded up to 16; pad tokens zero):
 *   codes  [T16 / 16][nb][16][32] int8
 *   da     [T16 / 16][nb][16] float
 *   corr   [T16 / 16][nb][16] int32
 *
 * Compiled with AVX-512 and -mamx-tile -mamx-int8; registered with the "amx" table. */
#include "tensor/x86/kernels_x86.h"

#include "tensor/quants.h"
#include "tensor/x86/amx.h"

#include <immintrin.h>
#include <string.h>

#define TILE 16 /* tokens, and weight rows, per tile */
#define ROWS KS_PANEL_ROWS
#define BLOCK_BYTES (ROWS * sizeof(ks_block_q8_0))
#define CODES_AT (ROWS * sizeof(ks_fp16))


static const ks_tile_config tile_cfg = {
    .palette_id = 1,
    .colsb = {[KS_TA0] = KS_QK8_0, [KS_TA1] = KS_QK8_0, [KS_TB0] = 64, [KS_TB1] = 64, [KS_TC0] = 64,
              [KS_TC1] = 64},
    .rows = {[KS_TA0] = TILE, [KS_TA1] = TILE, [KS_TB0] = KS_QK8_0 / 4, [KS_TB1] = KS_QK8_0 / 4, [KS_TC0] = TILE,
             [KS_TC1] = TILE},
};

static size_t n_tiles(int T) { return (size_t)(T + TILE - 1) / TILE; }

typedef struct act_layout {
    size_t nb, tiles;
    int8_t *codes;
    float *da;
    int32_t *corr;
} act_layout;

static act_layout act_at(void *act, int T, int64_t n) {
    act_layout l = {(size_t)(n / KS_QK8_0), n_tiles(T), act, NULL, NULL};
    l.da = (float *)(l.codes + l.tiles * l.nb * TILE * KS_QK8_0);
    l.corr = (int32_t *)(l.da + l.tiles * l.nb * TILE);
    return l;
}

static size_t act_bytes(int T, int64_t n) {
    return n_tiles(T) * (size_t)(n / KS_QK8_0) * TILE * (KS_QK8_0 + sizeof(float) + sizeof(int32_t));
}

static void pack_act(const void *row, int t, int T, int64_t n, void *act) {
    act_layout l = act_at(act, T, n);
    const ks_block_q8_0 *a = row;
    size_t tile = (size_t)t / TILE, m = (size_t)t % TILE;
    for (size_t b = 0; b < l.nb; b++) {
        size_t at = (tile * l.nb + b) * TILE + m;
        int32_t s = 0;
        if (a) {
            memcpy(l.codes + at * KS_QK8_0, a[b].qs, KS_QK8_0);
            for (int k = 0; k < KS_QK8_0; k++)
                s += a[b].qs[k];
        } else {
            memset(l.codes + at * KS_QK8_0, 0, KS_QK8_0);
        }
        l.da[at] = a ? _cvtsh_ss(a[b].d) : 0.0f;
        l.corr[at] = -128 * s;
    }
}

static size_t scratch_bytes(int64_t n) {
    (void)n;
    return 64 + 2 * TILE * TILE * sizeof(int32_t);
}

/* acc[t] += the block's 16 rows for token t, from its stored C tile */
static inline void accumulate(__m512 acc[TILE], const int32_t *c, const float *da, const int32_t *corr, __m512 dw) {
#pragma GCC unroll 16
    for (int t = 0; t < TILE; t++) {
        const __m512i isum = _mm512_add_epi32(_mm512_load_si512(c + t * TILE), _mm512_set1_epi32(corr[t]));
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(da[t])), _mm512_cvtepi32_ps(isum), acc[t]);
    }
}

#define TILE_PRODUCT(TA, TB, TC, b)                                                     \
    do {                                                                                \
        _tile_loadd(TA, codes + (size_t)(b) * TILE * KS_QK8_0, KS_QK8_0);               \
        _tile_loadd(TB, panel + (size_t)(b) * BLOCK_BYTES + CODES_AT, 64);              \
        _tile_zero(TC);                                                                 \
        _tile_dpbsud(TC, TA, TB);                                                       \
    } while (0)

#define ACCUMULATE(buf, b)                                                                           \
    accumulate(acc, buf, da + (size_t)(b) * TILE, corr + (size_t)(b) * TILE,                          \
               _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(panel + (size_t)(b) * BLOCK_BYTES))))

/* One panel x one tile of 16 tokens (codes, da, corr at the tile's block 0). */
static void tile_product(const uint8_t *panel, size_t nb, const int8_t *codes, const float *da,
                         const int32_t *corr, int32_t *cbuf, __m512 out[TILE]) {
    __m512 acc[TILE];
    for (int i = 0; i < TILE; i++)
        acc[i] = _mm512_setzero_ps();
    int32_t *buf0 = cbuf, *buf1 = cbuf + TILE * TILE;
    KS_TILE_PIPELINE(nb, TILE_PRODUCT, ACCUMULATE, buf0, buf1);
    for (int i = 0; i < TILE; i++)
        out[i] = acc[i];
}

static void run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T, int64_t n,
                float *y, size_t ldy, void *scratch) {
    act_layout l = act_at((void *)act, T, n);
    int32_t *cbuf = (int32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    ks_tile_load_config(&tile_cfg);
    for (int64_t p0 = r0; p0 < r1; p0 += ROWS) {
        const uint8_t *panel = (const uint8_t *)w + (size_t)p0 * w_row_bytes;
        for (size_t tt = 0; tt < l.tiles; tt++) {
            __m512 acc[TILE];
            size_t at = tt * l.nb;
            tile_product(panel, l.nb, l.codes + at * TILE * KS_QK8_0, l.da + at * TILE, l.corr + at * TILE, cbuf, acc);
            int mt = (int)((size_t)T - tt * TILE < TILE ? (size_t)T - tt * TILE : TILE);
            for (int m = 0; m < mt; m++)
                _mm512_storeu_ps(y + (tt * TILE + (size_t)m) * ldy + p0, acc[m]);
        }
    }
    _tile_release();
}

void ks_gemm_panel_amx_register(ks_kernels *k) {
    k->panel[KS_TYPE_Q8_0].gemm = (ks_gemm_kernel){
        .act_bytes = act_bytes,
        .pack_act = pack_act,
        .scratch_bytes = scratch_bytes,
        .run = run,
    };
}
