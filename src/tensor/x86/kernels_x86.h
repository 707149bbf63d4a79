/* kernels_x86.h — the x86 kernel files and the registration functions through which
 * kernels_avx2.c and kernels_avx512.c put their kernels into a table.
 *
 *   vec_dot_avx2.c     AVX2 + FMA + F16C dot products, every weight type
 *   quants_avx2.c      AVX2 activation quantizers (Q8_0, Q8_1, Q8_K), ref's bytes
 *   vec_dot_avx512.c   AVX-512 (F, BW, VL, DQ, VNNI) dot products, every weight type but BF16
 *   vec_dot_bf16_avx512bf16.c  BF16 rows with AVX-512 BF16, only where the CPU has it
 *   dot4_q8_0_avx512.c Q8_0 against four activation rows packed for 512-bit VNNI
 *   dot4_k_avx512.c    Q4_K, Q5_K against four activation rows packed for 512-bit vectors
 *   panel_q8_0_avx512.c  Q8_0 weights repacked in 16-row panels: decode of 1-4 tokens
 *                      (panel_x86.h: the streams' requests ahead, the broadcasts)
 *   panel_q8_0_avx2.c  the same on AVX2, in int16 products
 *   panel_k_avx2.c     Q4_K in panels on AVX2
 *   attn_avx2.c,       streaming-attention tiles (scores, softmax step, value
 *   attn_avx512.c      accumulation) and Q8_0 rows to floats, on 8 and on 16 lanes
 *   attn_scores_avx512.c  AVX-512's scores: two keys to an accumulator
 *   attn_vec_avx512.h  the 16-float vector attn_avx512.c and attn_bcast_avx512.c use
 *   attn_bcast_avx512.c  AVX-512's value sums with shared broadcasts (Intel before Golden Cove)
 *   elementwise_*.c    RMSNorm and SwiGLU, AVX2 and AVX-512
 *   gemm_amx.c         AMX-INT8 tile GEMMs for prefill (the "amx" table: avx512 + these)
 *   gemm_panel_amx.c   the same over Q8_0 panels
 *   attn_amx.c         AMX-BF16 attention tiles for prefill (in the "amx" table where
 *                      the CPU has AMX-BF16 too)
 *
 * The AVX-512 table starts as a copy of the AVX2 one (kernels.c), so entries that gain
 * nothing from 512-bit registers (the activation quantizers) are registered only once.
 * Each file is compiled with its ISA's flags (CMakeLists.txt, by file-name suffix) and
 * reached only when the CPU and OS support that ISA. */
#ifndef KS_KERNELS_X86_H
#define KS_KERNELS_X86_H

#include "tensor/kernels.h"

#include <stdbool.h>

void ks_vec_dot_avx2_register(ks_kernels *k);
void ks_quants_avx2_register(ks_kernels *k);
void ks_vec_dot_avx512_register(ks_kernels *k);
void ks_vec_dot_avx512bf16_register(ks_kernels *k);
void ks_dot4_q8_0_avx512_register(ks_kernels *k);
void ks_dot4_k_avx512_register(ks_kernels *k);
void ks_panel_q8_0_avx2_register(ks_kernels *k);
void ks_panel_k_avx2_register(ks_kernels *k);
void ks_panel_q8_0_avx512_register(ks_kernels *k);
void ks_panel_k_avx512_register(ks_kernels *k);
void ks_panel_q6_k_avx512_register(ks_kernels *k);
void ks_panel_iq4_xs_avx512_register(ks_kernels *k);
void ks_panel_q3_k_avx512_register(ks_kernels *k);
void ks_panel_q2_k_avx512_register(ks_kernels *k);
void ks_elementwise_avx2_register(ks_kernels *k);
void ks_elementwise_avx512_register(ks_kernels *k);
void ks_attn_avx2_register(ks_kernels *k);
void ks_attn_avx512_register(ks_kernels *k);
void ks_attn_bcast_avx512_register(ks_kernels *k);
void ks_attn_scores_avx512_register(ks_kernels *k);
void ks_attn_q8p_avx512_register(ks_kernels *k);
void ks_attn_f16p_avx512_register(ks_kernels *k);
void ks_attn_f16p_shared_avx512_register(ks_kernels *k);
void ks_attn_accum_q8i_avx512_register(ks_kernels *k);
void ks_attn_q8p_avx2_register(ks_kernels *k);
void ks_attn_f16p_avx2_register(ks_kernels *k);
/* Asks Linux for the AMX tile data state (once per process); false if refused. */
bool ks_amx_request(void);
void ks_gemm_amx_register(ks_kernels *k);
void ks_gemm_panel_amx_register(ks_kernels *k);
/* AMX-BF16 attention tiles (attn_amx.c); the caller checks the CPU has AMX-BF16 */
void ks_attn_amx_register(ks_kernels *k);

#endif
