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
/* The frame of every panel repacker (ks_panel_kernels.repack): the 16 rows of nb blocks
 * of block_bytes (<= KS_PANEL_MAX_BLOCK_BYTES) are copied out to scratch whole, since
 * panel block b overwrites bytes that held other blocks of the rows; then each panel
 * block is built in a zeroed buffer, put(pb, r, x) taking row r's block x into it, and
 * written in place. */
#define KS_PANEL_MAX_BLOCK_BYTES 256
typedef void (*ks_panel_put_fn)(uint8_t *pb, int r, const void *x);
void ks_panel_repack_blocks(void *rows, size_t row_bytes, int64_t nb, size_t block_bytes, ks_panel_put_fn put,
                            void *scratch);
/* Row r's d, dmin and scale words into a Q4_K or Q5_K panel super-block sb (their
 * repackers share it). */
void ks_panel_k_put_scales(uint8_t *sb, int r, ks_fp16 d, ks_fp16 dmin, const uint8_t scales[12]);

#endif
