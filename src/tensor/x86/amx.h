/* amx.h — AMX tile configuration, shared by the tile GEMMs (gemm_amx.c) and the tile
 * peak that `kvserve bench` measures (bench/bench_limits_avx512.c).
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

#endif
