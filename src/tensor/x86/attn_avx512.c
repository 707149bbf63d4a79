/* attn_avx512.c — the streaming-attention kernels on AVX-512 (tensor/attn_tiles.h holds
 * them, written once; attn_vec_avx512.h gives them a vector of 16 floats and tiles of 16
 * accumulators), but for the scores, which are attn_scores_avx512.c's and, F16 keys in
 * panels, attn_f16p_avx512.c's; the value sums with their weights' broadcasts folded into
 * the FMAs (ATTN_FOLD_BCAST; attn_bcast_avx512.c has the other form). */
#include "tensor/x86/kernels_x86.h"

#include <immintrin.h>

#define ATTN_FOLD_BCAST
#include "tensor/x86/attn_vec_avx512.h"

#include "tensor/attn_tiles.h"

void ks_attn_avx512_register(ks_kernels *k) {
    attn_register(k);
    ks_attn_scores_avx512_register(k); /* scores in an order of their own */
    ks_attn_q8p_avx512_register(k);    /* Q8_0 keys in panels against Q8_0 queries */
    ks_attn_f16p_avx512_register(k);   /* F16 keys in panels against float queries */
    ks_attn_accum_q8i_avx512_register(k); /* Q8_0 values in int16 products */
}
