/* amx.h — AMX tile configuration and the tile GEMMs' pipeline, shared by the tile GEMMs
 * (gemm_amx.c, gemm_panel_amx.c) and the tile peak that `kvserve bench` measures
 * (bench/bench_limits_avx512.c).
 *
 * Include only from files compiled with -mamx-tile. */
#ifndef KS_AMX_H
#define KS_AMX_H

#include <stdint.h>

/* What ldtilecfg reads (palette 1): per tile register, its rows and bytes a row. */
typedef struct ks_tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ks_tile_config;
_Static_assert(sizeof(ks_tile_config) == 64, "ldtilecfg reads 64 bytes");

/* ldtilecfg with the whole 64-byte configuration as its memory operand: GCC 12's
 * _tile_loadconfig names only its first 8 bytes, so the stores that fill a local
 * configuration can be dropped as dead, and the next tile instruction faults. */
static inline void ks_tile_load_config(const ks_tile_config *cfg) {
    __asm__ volatile("ldtilecfg %0" ::"m"(*cfg));
}

/* The tile GEMMs' tile registers: two sets of an A, a B and a C tile (literal numbers:
 * the intrinsics paste them into the instruction). */
#define KS_TA0 0
#define KS_TA1 1
#define KS_TB0 2
#define KS_TB1 3
#define KS_TC0 4
#define KS_TC1 5

/* The tile GEMMs' loop over n sub-blocks (n >= 1) with the two sets of tile registers:
 * PRODUCT(ta, tb, tc, k) issues sub-block k's
 * product into those registers, ACCUMULATE(buf, k) does the float work on its C tile
 * stored at buf (16 rows of 64 bytes). The product of sub-block k + 1 is issued before the
 * float work of sub-block k, and each C tile is stored one step before its float work
 * reads it. */
#define KS_TILE_PIPELINE(n, PRODUCT, ACCUMULATE, buf0, buf1)                \
    do {                                                                     \
        PRODUCT(KS_TA0, KS_TB0, KS_TC0, 0);                                  \
        if ((n) > 1)                                                         \
            PRODUCT(KS_TA1, KS_TB1, KS_TC1, 1);                              \
        _tile_stored(KS_TC0, (buf0), 64);                                    \
        for (size_t k_ = 0; k_ < (n); k_ += 2) {                             \
            /* here: sub-block k_ is in buf0, k_ + 1 (if any) in KS_TC1 */   \
            if (k_ + 2 < (n))                                                \
                PRODUCT(KS_TA0, KS_TB0, KS_TC0, k_ + 2);                     \
            if (k_ + 1 < (n))                                                \
                _tile_stored(KS_TC1, (buf1), 64);                            \
            ACCUMULATE((buf0), k_);                                          \
            if (k_ + 1 >= (n))                                               \
                break;                                                       \
            if (k_ + 3 < (n))                                                \
                PRODUCT(KS_TA1, KS_TB1, KS_TC1, k_ + 3);                     \
            if (k_ + 2 < (n))                                                \
                _tile_stored(KS_TC0, (buf0), 64);                            \
            ACCUMULATE((buf1), k_ + 1);                                      \
        }                                                                    \
    } while (0)

#endif
