/* vec_dot_ref.h — scalar reference dot products of one weight row with one activation
 * row already converted to the weight type's dot_type (types.h), and the activation
 * quantizers that produce those rows.
 *
 * Owns: ks_vec_dot_<w>_<a>_ref for every weight type kvserve computes with, and the
 * activation quantizers whose rounding differs from the file quantizers
 * (ks_quantize_row_q8_0_act_ref, ks_quantize_row_q8_1_act_ref).
 * Does not own: the file codecs (quants_ref.h), the kernel table (kernels.h), which
 * ks_kernels_ref_fill() fills from here.
 *
 * The arithmetic is llama.cpp's on x86, so kvserve's logits follow its reference runs:
 *   - activations are quantized the way its x86 build quantizes them (see the .c file);
 *   - each block's integer sum of code products is exact, then scaled and accumulated
 *     in float in the same order and grouping as llama.cpp's portable C dot products.
 *
 * Contract for every ks_vec_dot_*_ref(w, a, n): w holds one row of n elements of the
 * weight type, a one row of n elements of its dot_type; n (elements) is a multiple of
 * the weight type's block size (1, 32 or KS_QK_K = 256). Pure functions: no allocation,
 * no globals, thread-safe. */
#ifndef KS_VEC_DOT_REF_H
#define KS_VEC_DOT_REF_H

#include <stdint.h>

/* Float types: each product rounded to float, the sum accumulated in double. */
float ks_vec_dot_f32_f32_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_f16_f16_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_bf16_bf16_ref(const void *w, const void *a, int64_t n);

/* 32-element blocks. */
float ks_vec_dot_q4_0_q8_0_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q4_1_q8_1_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q5_0_q8_0_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q5_1_q8_1_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q8_0_q8_0_ref(const void *w, const void *a, int64_t n);

/* 256-element K-quant super-blocks. */
float ks_vec_dot_q4_k_q8_k_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q5_k_q8_k_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q6_k_q8_k_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q2_k_q8_k_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_q3_k_q8_k_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_iq4_nl_q8_0_ref(const void *w, const void *a, int64_t n);
float ks_vec_dot_iq4_xs_q8_k_ref(const void *w, const void *a, int64_t n);

/* Activation quantizers for Q8_0 and Q8_1 rows (n a multiple of 32): d = |x|max / 127,
 * codes round(x * (127 / |x|max)) with ties to even. They differ from the file
 * quantizers ks_quantize_row_q8_0_ref / _q8_1_ref (codes round(x * (1 / d)), ties away
 * from zero) in the last bit of a few codes per row; these are what llama.cpp's x86
 * build feeds its dot products. Q8_K activations use ks_quantize_row_q8_k_ref, which
 * llama.cpp's x86 build also uses. */
void ks_quantize_row_q8_0_act_ref(const float *x, void *y, int64_t n);
void ks_quantize_row_q8_1_act_ref(const float *x, void *y, int64_t n);

#endif
