/* quants_ref.h — scalar reference codecs: every tensor type kvserve computes with, to
 * and from float32.
 *
 * These are the specification: plain C, one element at a time, always built. The
 * traits table (types.c) points its to_float/from_float entries here, ISA kernels are
 * tested against them, and the quantizers produce what llama.cpp's reference
 * quantizers produce when no importance matrix is given (same search, same rounding),
 * so a GGUF file written by kvserve is as accurate as one written by llama-quantize.
 *
 * Contract for every pair below:
 *   ks_dequantize_row_<t>_ref(x, y, n):  x holds n / block_size blocks of type t;
 *                                        writes n floats to y.
 *   ks_quantize_row_<t>_ref(x, y, n):    reads n floats from x; writes n / block_size
 *                                        blocks to y.
 *   n (elements) must be a multiple of the type's block size (32 or KS_QK_K = 256);
 *   x and y must not overlap. Pure functions: no allocation, no globals, thread-safe.
 *
 * Implemented in quants_ref.c (floats and 32-element blocks), quants_k_ref.c
 * (256-element K-quant super-blocks) and quants_iq4_ref.c (IQ4_NL, IQ4_XS). */
#ifndef KS_QUANTS_REF_H
#define KS_QUANTS_REF_H

#include <stdint.h>

/* Floats: f32 is a copy; f16 and bf16 round to nearest even (fp16.h). */
void ks_dequantize_row_f32_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_f32_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_f16_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_f16_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_bf16_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_bf16_ref(const float *x, void *y, int64_t n);

/* 32-element blocks. */
void ks_dequantize_row_q4_0_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q4_0_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q4_1_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q4_1_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q5_0_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q5_0_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q5_1_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q5_1_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q8_0_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q8_0_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q8_1_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q8_1_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_iq4_nl_ref(const void *x, float *y, int64_t n); /* quants_iq4_ref.c */
void ks_quantize_row_iq4_nl_ref(const float *x, void *y, int64_t n);

/* 256-element K-quant super-blocks (and IQ4_XS, quants_iq4_ref.c). */
void ks_dequantize_row_q2_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q2_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q3_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q3_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q4_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q4_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q5_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q5_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q6_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q6_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_q8_k_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_q8_k_ref(const float *x, void *y, int64_t n);
void ks_dequantize_row_iq4_xs_ref(const void *x, float *y, int64_t n);
void ks_quantize_row_iq4_xs_ref(const float *x, void *y, int64_t n);

#endif
