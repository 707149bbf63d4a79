/* kernels_arm.h — the aarch64 kernel files and the registration functions through which
 * they put their kernels into the "neon" table.
 *
 *   kernels_neon.c      row conversions, dot_f32; ks_kernels_register_neon() (below
 *                       kernels.h) calls the two registrations that follow
 *   vec_dot_neon.c      NEON dot products (F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K),
 *                       the integer ones with widening multiplies: any ARMv8-A CPU
 *   quants_neon.c       NEON activation quantizers (Q8_0, Q8_1, Q8_K), ref's bytes
 *   vec_dot_dotprod.c   the same integer dot products with SDOT (vdotq_s32), for CPUs
 *                       with the dot-product extension (ARMv8.2-A DotProd: Cortex-A55,
 *                       A76, Neoverse N1 and later; not Cortex-A53/A57/A72)
 *   vec_dot_int_neon.h  the integer dot products themselves, written once over an 8-bit
 *                       dot step that vec_dot_neon.c and vec_dot_dotprod.c each define
 *   attn_neon.c         streaming-attention tiles (tensor/attn_tiles.h on 4 lanes) and
 *                       Q8_0 rows to floats
 *
 * The "neon" table is ref's with the NEON entries over it; where the CPU has DotProd,
 * kernels.c then lays the SDOT entries over those. Every file here is compiled with
 * -march=armv8.2-a+dotprod+fp16 (CMakeLists.txt), so nothing stops the compiler from
 * emitting SDOT into a file meant for any ARMv8 CPU: tests/kernels/cross_arm runs the
 * table under qemu on a CPU model without DotProd, where such an instruction would
 * fault, and checks there that no SDOT kernel was registered.
 *
 * Declarations only: kernels.c, compiled without ISA flags, includes this. */
#ifndef KS_KERNELS_ARM_H
#define KS_KERNELS_ARM_H

#include "tensor/kernels.h"

void ks_vec_dot_neon_register(ks_kernels *k);
void ks_quants_neon_register(ks_kernels *k);
void ks_attn_neon_register(ks_kernels *k);
/* Only called when ks_cpu_detect()->dotprod. */
void ks_kernels_register_neon_dotprod(ks_kernels *k);
void ks_attn_q8p_dotprod_register(ks_kernels *k);

#endif
