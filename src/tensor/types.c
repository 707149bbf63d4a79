/* types.c — the traits table: block geometry of every GGUF type id, and the scalar
 * reference codecs (tensor/ref/) of the types kvserve computes with. */
#include "tensor/types.h"

#include "tensor/ref/quants_ref.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Block geometry from the GGUF format definition (elements per block, bytes per block),
 * and the reference codecs of the types kvserve computes with (tensor/ref/quants_ref.h). */
static const ks_type_traits traits[KS_TYPE_COUNT] = {
    [KS_TYPE_F32] = {"f32", 1, 4, false, KS_TYPE_F32,
        ks_dequantize_row_f32_ref, ks_quantize_row_f32_ref},
    [KS_TYPE_F16] = {"f16", 1, 2, false, KS_TYPE_F16,
        ks_dequantize_row_f16_ref, ks_quantize_row_f16_ref},
    [KS_TYPE_Q4_0] = {"q4_0", 32, 18, true, KS_TYPE_Q8_0,
        ks_dequantize_row_q4_0_ref, ks_quantize_row_q4_0_ref},
    [KS_TYPE_Q4_1] = {"q4_1", 32, 20, true, KS_TYPE_Q8_1,
        ks_dequantize_row_q4_1_ref, ks_quantize_row_q4_1_ref},
    [KS_TYPE_Q5_0] = {"q5_0", 32, 22, true, KS_TYPE_Q8_0,
        ks_dequantize_row_q5_0_ref, ks_quantize_row_q5_0_ref},
    [KS_TYPE_Q5_1] = {"q5_1", 32, 24, true, KS_TYPE_Q8_1,
        ks_dequantize_row_q5_1_ref, ks_quantize_row_q5_1_ref},
    [KS_TYPE_Q8_0] = {"q8_0", 32, 34, true, KS_TYPE_Q8_0,
        ks_dequantize_row_q8_0_ref, ks_quantize_row_q8_0_ref},
    [KS_TYPE_Q8_1] = {"q8_1", 32, 36, true, KS_TYPE_Q8_1,
        ks_dequantize_row_q8_1_ref, ks_quantize_row_q8_1_ref},
    [KS_TYPE_Q2_K] = {"q2_K", 256, 84, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q2_k_ref, ks_quantize_row_q2_k_ref},
    [KS_TYPE_Q3_K] = {"q3_K", 256, 110, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q3_k_ref, ks_quantize_row_q3_k_ref},
    [KS_TYPE_Q4_K] = {"q4_K", 256, 144, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q4_k_ref, ks_quantize_row_q4_k_ref},
    [KS_TYPE_Q5_K] = {"q5_K", 256, 176, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q5_k_ref, ks_quantize_row_q5_k_ref},
    [KS_TYPE_Q6_K] = {"q6_K", 256, 210, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q6_k_ref, ks_quantize_row_q6_k_ref},
    [KS_TYPE_Q8_K] = {"q8_K", 256, 292, true, KS_TYPE_Q8_K,
        ks_dequantize_row_q8_k_ref, ks_quantize_row_q8_k_ref},
    [KS_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ2_XS] = {"iq2_xs", 256, 74, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ1_S] = {"iq1_s", 256, 50, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ4_NL] = {"iq4_nl", 32, 18, true, KS_TYPE_Q8_0,
        ks_dequantize_row_iq4_nl_ref, ks_quantize_row_iq4_nl_ref},
    [KS_TYPE_IQ3_S] = {"iq3_s", 256, 110, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ2_S] = {"iq2_s", 256, 82, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_IQ4_XS] = {"iq4_xs", 256, 136, true, KS_TYPE_Q8_K,
        ks_dequantize_row_iq4_xs_ref, ks_quantize_row_iq4_xs_ref},
    [KS_TYPE_I8] = {"i8", 1, 1, false, KS_TYPE_I8, NULL, NULL},
    [KS_TYPE_I16] = {"i16", 1, 2, false, KS_TYPE_I16, NULL, NULL},
    [KS_TYPE_I32] = {"i32", 1, 4, false, KS_TYPE_I32, NULL, NULL},
    [KS_TYPE_I64] = {"i64", 1, 8, false, KS_TYPE_I64, NULL, NULL},
    [KS_TYPE_F64] = {"f64", 1, 8, false, KS_TYPE_F64, NULL, NULL},
    [KS_TYPE_IQ1_M] = {"iq1_m", 256, 56, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_BF16] = {"bf16", 1, 2, false, KS_TYPE_BF16,
        ks_dequantize_row_bf16_ref, ks_quantize_row_bf16_ref},
    [KS_TYPE_TQ1_0] = {"tq1_0", 256, 54, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_TQ2_0] = {"tq2_0", 256, 66, true, KS_TYPE_Q8_K, NULL, NULL},
    [KS_TYPE_MXFP4] = {"mxfp4", 32, 17, true, KS_TYPE_Q8_0, NULL, NULL},
};

const ks_type_traits *ks_type_traits_of(uint32_t id) {
    if (id >= KS_TYPE_COUNT || !traits[id].name)
        return NULL;
    return &traits[id];
}

const char *ks_type_name(uint32_t id) {
    const ks_type_traits *t = ks_type_traits_of(id);
    if (t)
        return t->name;
    static _Thread_local char buf[24];
    snprintf(buf, sizeof buf, "type#%u", id);
    return buf;
}

int ks_type_from_name(const char *name) {
    for (int i = 0; i < KS_TYPE_COUNT; i++) {
        if (!traits[i].name)
            continue;
        const char *a = traits[i].name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b))
            a++, b++;
        if (!*a && !*b)
            return i;
    }
    return -1;
}

size_t ks_type_row_size(ks_type t, int64_t n, bool *ok) {
    const ks_type_traits *tr = ks_type_traits_of((uint32_t)t);
    if (!tr || n < 0 || n % tr->block_size != 0) {
        if (ok) *ok = false;
        return 0;
    }
    uint64_t blocks = (uint64_t)(n / tr->block_size);
    if (blocks > SIZE_MAX / tr->type_size) {
        if (ok) *ok = false;
        return 0;
    }
    if (ok) *ok = true;
    return (size_t)(blocks * tr->type_size);
}

bool ks_type_is_supported(uint32_t id) {
    const ks_type_traits *t = ks_type_traits_of(id);
    return t && t->to_float && t->from_float;
}
