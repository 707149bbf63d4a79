/* kernels.h — the compute kernel table and its run-time selection.
 *
 * One table per ISA (ref = portable scalar C, always built; avx2 = AVX2+FMA+F16C;
 * avx512 = AVX-512 F/BW/VL/DQ + VNNI + BF16; neon). ks_kernels_get() picks the best the
 * CPU and OS support, once; KS_KERNELS=ref|avx2|avx512|neon in the environment forces a
 * set (an unavailable one falls back to ref with a warning). An ISA table fills in only
 * the kernels it implements; the rest are taken from ref.
 *
 * Kernels are pure functions over their arguments: no allocation, no threads, no
 * globals, no feature branches. */
#ifndef KS_KERNELS_H
#define KS_KERNELS_H

#include "tensor/fp16.h"
#include "tensor/types.h"
#include <stddef.h>
#include <stdint.h>

/* Dot product of one weight row w (n elements of a weight type) with one activation row
 * a (n elements of that type's dot_type from the traits table, e.g. Q8_K for Q4_K). */
typedef float (*ks_vec_dot_fn)(const void *w, const void *a, int64_t n);

/* Activation rows per vec_dot_4 call. */
#define KS_VEC_DOT_ROWS 4

/* Dot products of one weight row w with KS_VEC_DOT_ROWS activation rows, row j at
 * a + j * a_stride (bytes): s[j] = vec_dot(w, a + j * a_stride, n), bit for bit, for the
 * vec_dot of the same table. */
typedef void (*ks_vec_dot_4_fn)(const void *w, const void *a, size_t a_stride, int64_t n,
                                float *s);

typedef struct ks_kernels {
    const char *isa;
    /* y[i] = x[i] converted, n elements */
    void (*fp16_to_fp32_row)(const ks_fp16 *x, float *y, int64_t n);
    void (*fp32_to_fp16_row)(const float *x, ks_fp16 *y, int64_t n);
    void (*bf16_to_fp32_row)(const ks_bf16 *x, float *y, int64_t n);
    /* sum_i x[i] * y[i], n elements */
    float (*dot_f32)(const float *x, const float *y, int64_t n);
    /* indexed by weight type; NULL where no kernel exists */
    ks_vec_dot_fn vec_dot[KS_TYPE_COUNT];
    /* indexed by weight type: vec_dot over several activation rows at once, for prefill,
     * where many tokens meet each weight row. The weight row is decoded once for all of
     * them and their float chains run side by side. NULL where a table has none (ref
     * has none: 4 x vec_dot is its specification): call vec_dot per row. Never taken
     * from another table, as it must agree with this table's vec_dot bit for bit. */
    ks_vec_dot_4_fn vec_dot_4[KS_TYPE_COUNT];
    /* indexed by activation type (a weight type's dot_type): n floats of x into one row
     * of that type in y, rounded as vec_dot expects; NULL for non-activation types */
    void (*quantize_act[KS_TYPE_COUNT])(const float *x, void *y, int64_t n);
} ks_kernels;

/* The selected set (first call selects; thread-safe afterwards). */
const ks_kernels *ks_kernels_get(void);
/* The scalar reference set. */
const ks_kernels *ks_kernels_ref(void);
/* A named set completed with ref entries, or NULL if not built or the CPU lacks it. */
const ks_kernels *ks_kernels_for_isa(const char *isa);

/* Per-ISA registration: each fills the entries it implements. Only called when the CPU
 * supports the ISA. */
void ks_kernels_register_avx2(ks_kernels *k);
void ks_kernels_register_avx512(ks_kernels *k);
void ks_kernels_register_neon(ks_kernels *k);

#endif
