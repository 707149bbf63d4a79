/* types.h — tensor element types and their traits table.
 *
 * Type ids are GGUF's (= ggml's) on-disk ids, so a GGUF tensor's type field indexes the
 * table directly. Every id GGUF defines has its block geometry here (so the reader can
 * size any tensor and `kvserve info` can name it); the types kvserve computes with also
 * have a scalar reference dequantizer and quantizer (tensor/ref/).
 *
 * Does not own: SIMD kernels (tensor/x86, tensor/arm, chosen in kernels.h). */
#ifndef KS_TENSOR_TYPES_H
#define KS_TENSOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_TYPE_F32 = 0,
    KS_TYPE_F16 = 1,
    KS_TYPE_Q4_0 = 2,
    KS_TYPE_Q4_1 = 3,
    /* 4, 5: removed from GGUF (Q4_2, Q4_3) */
    KS_TYPE_Q5_0 = 6,
    KS_TYPE_Q5_1 = 7,
    KS_TYPE_Q8_0 = 8,
    KS_TYPE_Q8_1 = 9,
    KS_TYPE_Q2_K = 10,
    KS_TYPE_Q3_K = 11,
    KS_TYPE_Q4_K = 12,
    KS_TYPE_Q5_K = 13,
    KS_TYPE_Q6_K = 14,
    KS_TYPE_Q8_K = 15,
    KS_TYPE_IQ2_XXS = 16,
    KS_TYPE_IQ2_XS = 17,
    KS_TYPE_IQ3_XXS = 18,
    KS_TYPE_IQ1_S = 19,
    KS_TYPE_IQ4_NL = 20,
    KS_TYPE_IQ3_S = 21,
    KS_TYPE_IQ2_S = 22,
    KS_TYPE_IQ4_XS = 23,
    KS_TYPE_I8 = 24,
    KS_TYPE_I16 = 25,
    KS_TYPE_I32 = 26,
    KS_TYPE_I64 = 27,
    KS_TYPE_F64 = 28,
    KS_TYPE_IQ1_M = 29,
    KS_TYPE_BF16 = 30,
    /* 31-33: removed (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) */
    KS_TYPE_TQ1_0 = 34,
    KS_TYPE_TQ2_0 = 35,
    /* 36-38: removed (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) */
    KS_TYPE_MXFP4 = 39,
    KS_TYPE_COUNT = 40,
} ks_type;

typedef struct ks_type_traits {
    const char *name;     /* ggml's name, e.g. "q4_K"; NULL for ids GGUF no longer defines */
    int64_t block_size;   /* elements per block */
    size_t type_size;     /* bytes per block */
    bool is_quantized;
    ks_type dot_type;     /* activation type an integer dot product pairs it with */
    /* Scalar reference codecs; NULL when kvserve does not compute with this type.
     * n (elements) must be a multiple of block_size. */
    void (*to_float)(const void *x, float *y, int64_t n);
    void (*from_float)(const float *x, void *y, int64_t n);
} ks_type_traits;

/* Traits of a type id, or NULL if id is not a type GGUF defines. */
const ks_type_traits *ks_type_traits_of(uint32_t id);

/* Name for printing: "q4_K", or "type#N" for ids without traits (static storage for
 * known ids; for unknown ids a thread-local buffer). */
const char *ks_type_name(uint32_t id);

/* Parses a type name case-insensitively ("q4_k", "Q8_0", "bf16"); returns -1 if unknown. */
int ks_type_from_name(const char *name);

/* Bytes of n elements of type t; 0 with *ok = false if n is not a multiple of the block
 * size or the result overflows. */
size_t ks_type_row_size(ks_type t, int64_t n, bool *ok);

/* True if kvserve can dequantize and quantize this type. */
bool ks_type_is_supported(uint32_t id);

#endif
