/* mkmodel_mix.c — which storage type each tensor of a synthetic model gets.
 *
 * Owns: the --type names, their llama_ftype numbers (general.file_type), and the
 * per-tensor type rules. The rules follow what llama.cpp's quantizer does when it
 * quantizes an F32 model of these architectures to the same file type, so a synthetic
 * file has the type mix (and thus the size and speed) of a real one:
 *
 *   - 1-D tensors (norm scales) and the MoE router (ffn_gate_inp) stay F32;
 *   - f32/f16/bf16: every other tensor in that type;
 *   - q8_0, q4_0: that type, except the LM head (output.weight, or token_embd when the
 *     head is tied to it), which a 4-bit file keeps in Q6_K;
 *   - q4_k_m: Q4_K, with Q6_K for the LM head and for attn_v and ffn_down on the layers
 *     use_more_bits() picks (the first and last eighth and every third layer between);
 *     models with exactly 8 experts keep attn_k/attn_v in Q8_0 and attn_output in Q5_K;
 *   - q5_k_m: the same with Q5_K in place of Q4_K;
 *   - q3_k_m: Q3_K, with Q5_K for the first two attn_v and Q4_K for the others, Q5_K for
 *     ffn_down on the first sixteenth of the layers and Q4_K on the rest, Q4_K for
 *     attn_output (Q5_K with exactly 8 experts);
 *   - q2_k: Q2_K, with attn_v in Q4_K (Q3_K where fewer than 4 query heads share a KV
 *     head), ffn_down and attn_output in Q3_K (attn_output Q5_K with 8 experts);
 *   - iq4_xs, iq4_nl: that type, with attn_v in Q5_K where 4 or more query heads share a
 *     KV head and ffn_down in Q5_K on the first eighth of the layers (attn_output Q5_K
 *     with 8 experts);
 *   - with exactly 8 experts, every quantized mix keeps attn_k and attn_v in Q8_0;
 *   - a row length that is not a multiple of the chosen type's block falls back: Q4_K to
 *     Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, Q2_K, Q3_K and IQ4_XS to IQ4_NL, and to F16 if
 *     even 32 does not divide it.
 *
 * Does not own: quantization itself (tensor/ref/ through the traits table). */
#include "mkmodel.h"

#include "tensor/types.h"

#include <ctype.h>
#include <string.h>

typedef struct mix_info {
    const char *name;
    uint32_t ftype;        /* llama_ftype: LLAMA_FTYPE_ALL_F32 = 0, MOSTLY_F16 = 1, ... */
    ks_type default_type;  /* type of the tensors no rule singles out */
} mix_info;

static const mix_info mixes[KS_MKMODEL_MIX_COUNT] = {
    [KS_MKMODEL_MIX_F32] = {"f32", 0, KS_TYPE_F32},
    [KS_MKMODEL_MIX_F16] = {"f16", 1, KS_TYPE_F16},
    [KS_MKMODEL_MIX_BF16] = {"bf16", 32, KS_TYPE_BF16},
    [KS_MKMODEL_MIX_Q8_0] = {"q8_0", 7, KS_TYPE_Q8_0},
    [KS_MKMODEL_MIX_Q4_0] = {"q4_0", 2, KS_TYPE_Q4_0},
    [KS_MKMODEL_MIX_Q4_K_M] = {"q4_k_m", 15, KS_TYPE_Q4_K},
    [KS_MKMODEL_MIX_Q5_K_M] = {"q5_k_m", 17, KS_TYPE_Q5_K},
    [KS_MKMODEL_MIX_Q3_K_M] = {"q3_k_m", 12, KS_TYPE_Q3_K},
    [KS_MKMODEL_MIX_Q2_K] = {"q2_k", 10, KS_TYPE_Q2_K},
    [KS_MKMODEL_MIX_IQ4_XS] = {"iq4_xs", 30, KS_TYPE_IQ4_XS},
    [KS_MKMODEL_MIX_IQ4_NL] = {"iq4_nl", 25, KS_TYPE_IQ4_NL},
};

int ks_mkmodel_mix_from_name(const char *name) {
    for (int i = 0; i < KS_MKMODEL_MIX_COUNT; i++) {
        const char *a = mixes[i].name, *b = name;
        while (*a && tolower((unsigned char)*b) == *a)
            a++, b++;
        if (!*a && !*b)
            return i;
    }
    return -1;
}

const char *ks_mkmodel_mix_name(ks_mkmodel_mix mix) { return mixes[mix].name; }

uint32_t ks_mkmodel_mix_ftype(ks_mkmodel_mix mix) { return mixes[mix].ftype; }

bool ks_mkmodel_mix_is_quantized(ks_mkmodel_mix mix) {
    return ks_type_traits_of(mixes[mix].default_type)->is_quantized;
}

/* llama.cpp's choice of the layers that get more bits in its *_M mixes: the first and
 * last eighth of the layers and every third layer in between. */
static bool use_more_bits(int64_t il, int64_t n_layer) {
    return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

/* The type a quantizer falls back to when ne0 is not a multiple of t's block. */
static uint32_t fallback(uint32_t t, int64_t ne0) {
    if (ne0 % ks_type_traits_of(t)->block_size == 0)
        return t;
    switch (t) {
    case KS_TYPE_Q4_K: t = KS_TYPE_Q5_0; break;
    case KS_TYPE_Q5_K: t = KS_TYPE_Q5_1; break;
    case KS_TYPE_Q6_K: t = KS_TYPE_Q8_0; break;
    case KS_TYPE_Q2_K:
    case KS_TYPE_Q3_K:
    case KS_TYPE_IQ4_XS: t = KS_TYPE_IQ4_NL; break;
    default: break;
    }
    return ne0 % ks_type_traits_of(t)->block_size == 0 ? t : KS_TYPE_F16;
}

uint32_t ks_mkmodel_mix_type(ks_mkmodel_mix mix, const ks_mkmodel_hparams *hp,
                             ks_mkmodel_role role, int64_t il, int64_t ne0) {
    if (role == KS_MKMODEL_T_NORM || role == KS_MKMODEL_T_ROUTER)
        return KS_TYPE_F32;
    uint32_t t = mixes[mix].default_type;
    if (!ks_type_traits_of(t)->is_quantized)
        return t;

    /* The LM head; a tied head is token_embd, quantized as the head would be. */
    bool head = role == KS_MKMODEL_T_OUTPUT || (hp->tied_output && role == KS_MKMODEL_T_TOKEN_EMBD);
    bool eight_experts = hp->n_expert == 8; /* llama.cpp's Mixtral-shaped special case */
    bool k_m = mix == KS_MKMODEL_MIX_Q4_K_M || mix == KS_MKMODEL_MIX_Q5_K_M;
    bool iq4 = mix == KS_MKMODEL_MIX_IQ4_XS || mix == KS_MKMODEL_MIX_IQ4_NL;
    bool wide_gqa = hp->n_head_kv > 0 && hp->n_head / hp->n_head_kv >= 4;
    if (head) {
        if (ne0 % ks_type_traits_of(t)->block_size != 0)
            t = KS_TYPE_Q8_0;
        else if (t != KS_TYPE_Q8_0)
            t = KS_TYPE_Q6_K;
    } else if (role == KS_MKMODEL_T_ATTN_V) {
        if (mix == KS_MKMODEL_MIX_Q2_K)
            t = wide_gqa ? KS_TYPE_Q4_K : KS_TYPE_Q3_K;
        else if (mix == KS_MKMODEL_MIX_Q3_K_M)
            t = il < 2 ? KS_TYPE_Q5_K : KS_TYPE_Q4_K;
        else if (iq4 && wide_gqa)
            t = KS_TYPE_Q5_K;
        else if (k_m && use_more_bits(il, hp->n_layer))
            t = KS_TYPE_Q6_K;
        if (eight_experts)
            t = KS_TYPE_Q8_0;
    } else if (role == KS_MKMODEL_T_ATTN_K) {
        if (eight_experts)
            t = KS_TYPE_Q8_0;
    } else if (role == KS_MKMODEL_T_FFN_DOWN) {
        if (mix == KS_MKMODEL_MIX_Q2_K)
            t = KS_TYPE_Q3_K;
        else if (mix == KS_MKMODEL_MIX_Q3_K_M)
            t = il < hp->n_layer / 16 ? KS_TYPE_Q5_K : KS_TYPE_Q4_K;
        else if (iq4 && il < hp->n_layer / 8)
            t = KS_TYPE_Q5_K;
        else if (k_m && use_more_bits(il, hp->n_layer))
            t = KS_TYPE_Q6_K;
    } else if (role == KS_MKMODEL_T_ATTN_OUTPUT) {
        if (eight_experts) {
            if (mix == KS_MKMODEL_MIX_Q4_K_M || mix == KS_MKMODEL_MIX_Q3_K_M || mix == KS_MKMODEL_MIX_Q2_K || iq4)
                t = KS_TYPE_Q5_K;
        } else if (mix == KS_MKMODEL_MIX_Q2_K) {
            t = KS_TYPE_Q3_K;
        } else if (mix == KS_MKMODEL_MIX_Q3_K_M) {
            t = KS_TYPE_Q4_K;
        }
    }
    return fallback(t, ne0);
}
