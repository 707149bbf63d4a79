/* kernels_ref.h — the scalar reference kernels (the specification every ISA kernel is
 * tested against). */
#ifndef KS_KERNELS_REF_H
#define KS_KERNELS_REF_H

#include "tensor/kernels.h"

void ks_kernels_ref_fill(ks_kernels *k);
/* RMSNorm and SwiGLU (elementwise_ref.c); ks_kernels_ref_fill() calls it. */
void ks_elementwise_ref_fill(ks_kernels *k);
/* The streaming-attention kernels (attn_ref.c); ks_kernels_ref_fill() calls it. */
void ks_attn_ref_fill(ks_kernels *k);

/* The Q8_0 panel layout's reference kernels (panel_ref.c; gemm.run NULL): not in the ref
 * table, which every table inherits, for the tests to hold ISA kernels to. */
void ks_panel_ref_q8_0(ks_panel_kernels *p);

#endif
