/* attn_bcast_avx512.c — the AVX-512 value sums (attn_accum) with each row's weight
 * broadcast once and shared by the row's FMAs, for Intel cores before Golden Cove
 * (kernels.c puts them over attn_avx512.c's there; a Sapphire Rapids core issues folded
 * broadcasts at the FMA ports' rate).
 *
 * Owns: ks_attn_bcast_avx512_register().
 *
 * tensor/attn_tiles.h's accumulation over attn_vec_avx512.h's vectors, without
 * ATTN_FOLD_BCAST: the same products summed in the same order as attn_avx512.c's, bit for
 * bit; only the broadcasts differ. On a Zen 4 a broadcast folded into each FMA ({1to16})
 * costs nothing and a separate one an issue slot (8 rows in L1, one thread: 49 -> 57
 * GMAC/s folded); on an Ice Lake Xeon an FMA with a folded broadcast issues at about one
 * a cycle, half the two FMA ports' rate, and one broadcast shared by a row's FMAs (two
 * vectors of 16 elements a row for a decode token's 8 rows) is the faster: 8 rows 35 ->
 * 59 GMAC/s, 2 rows 24.5 -> 34.7 (F16 values, 64 keys x 128, one thread, in L1);
 * bench_attention --shape qwen3-30b-a3b -d 16384 -p 0, 2 threads, alternated: 121-149 ->
 * 115-141 ms, bound there by the K/V stream. */
#include "tensor/x86/kernels_x86.h"

#include "tensor/x86/attn_vec_avx512.h"

#include "tensor/attn_tiles.h"

void ks_attn_bcast_avx512_register(ks_kernels *k) {
    ks_kernels mine = *k;
    attn_register(&mine); /* attn_tiles.h's kernels; only the value sums differ */
    k->attn_accum[KS_TYPE_F32] = mine.attn_accum[KS_TYPE_F32];
    k->attn_accum[KS_TYPE_F16] = mine.attn_accum[KS_TYPE_F16];
    k->attn_accum[KS_TYPE_Q8_0] = mine.attn_accum[KS_TYPE_Q8_0];
}
