/* kernels_ref.h — the scalar reference kernels (the specification every ISA kernel is
 * tested against). */
#ifndef KS_KERNELS_REF_H
#define KS_KERNELS_REF_H

#include "tensor/kernels.h"

#include <stdbool.h>

void ks_kernels_ref_fill(ks_kernels *k);
/* RMSNorm and SwiGLU (elementwise_ref.c); ks_kernels_ref_fill() calls it. */
void ks_elementwise_ref_fill(ks_kernels *k);
/* The streaming-attention kernels (attn_ref.c); ks_kernels_ref_fill() calls it. */
void ks_attn_ref_fill(ks_kernels *k);

/* The reference kernels of a type's panel layout (panel_ref.c; gemm.run NULL), false
 * (and all NULL) for a type without one: not in the ref table, which every table
 * inherits, for the tests to hold ISA kernels to. */
bool ks_panel_ref(uint32_t type, ks_panel_kernels *p);
/* Row r's d, dmin and scale words into a Q4_K panel super-block sb (its repackers share it). */
struct ks_block_q4_k;
void ks_panel_q4_k_put_scales(uint8_t *sb, int r, const struct ks_block_q4_k *x);

#endif
