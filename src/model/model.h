/* model.h — a loaded model: hyperparameters and weight views into the GGUF mapping.
 *
 * Loading reads every hyperparameter from GGUF metadata (forward code has no literals),
 * binds each tensor as a view into the GGUF mapping and validates its type and shape
 * against the hyperparameters: a missing or misshapen tensor is an error naming it. The
 * mapping's tensor data is then read into huge pages in place (KS_WEIGHTS=mmap leaves
 * the file mapped; see model_load.c): the views do not change. One code path serves the
 * Qwen family; architectures differ by flags (QK-norm, QKV biases, MoE FFN, tied
 * output), not by copies of the forward pass.
 *
 * Does not own: the forward pass (forward.h), the KV cache (kv/), tokenization. */
#ifndef KS_MODEL_H
#define KS_MODEL_H

#include "core/status.h"
#include "gguf/gguf.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { KS_ARCH_QWEN3 = 0, KS_ARCH_QWEN3MOE = 1 } ks_arch;

typedef struct ks_hparams {
    ks_arch arch;
    char arch_name[32];
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;        /* key/value length per head */
    int n_ff;            /* dense FFN width (0 for MoE-only models) */
    int n_expert;        /* 0 for dense models */
    int n_expert_used;
    int n_ff_exp;        /* width of one expert's FFN */
    int n_ctx_train;
    float rope_theta;    /* RoPE frequency base */
    float rms_eps;
    bool qk_norm;        /* RMSNorm over each head of q and k before RoPE */
    bool moe_norm_topk;  /* renormalise the selected experts' weights to sum to 1 */
    bool tied_output;    /* output projection = token embedding */
} ks_hparams;

/* A weight tensor: a view into the mapping. Rows are ne[0] elements. */
typedef struct ks_weight {
    const void *data;
    uint32_t type;       /* ks_type */
    int64_t ne[4];
    size_t row_bytes;    /* bytes of one ne[0] row (as laid out in the file) */
    bool panels;         /* repacked at load into 16-row panels (kernels.h,
                          * ks_panel_kernels): row r's bytes are no longer at
                          * data + r * row_bytes, its panel is at (r & ~15) * row_bytes */
} ks_weight;

typedef struct ks_layer {
    ks_weight attn_norm;                 /* (n_embd) */
    ks_weight wq, wk, wv;                /* (n_embd -> n_head*head_dim | n_head_kv*head_dim) */
    ks_weight wo;                        /* (n_head*head_dim -> n_embd) */
    ks_weight q_norm, k_norm;            /* (head_dim), when qk_norm */
    ks_weight ffn_norm;                  /* (n_embd) */
    ks_weight ffn_gate, ffn_up, ffn_down;            /* dense: n_embd <-> n_ff */
    ks_weight gate_inp;                  /* MoE router: n_embd -> n_expert */
    ks_weight gate_exps, up_exps, down_exps;          /* (.., .., n_expert) */
} ks_layer;

typedef struct ks_model {
    ks_gguf *gguf;                       /* owns the mapping every view points into */
    ks_hparams hp;
    ks_weight tok_embd;                  /* (n_embd, n_vocab) */
    ks_weight output_norm;               /* (n_embd) */
    ks_weight output;                    /* (n_embd, n_vocab); == tok_embd when tied */
    ks_layer *layers;                    /* n_layer */
    uint8_t fingerprint[16];             /* XXH3-128 of metadata, directory, sampled bytes */
    char fingerprint_hex[33];
    char quant_name[16];                 /* type of most weight bytes, e.g. "q4_K" */
} ks_model;

ks_status ks_model_load(ks_model **out, const char *path, ks_err *err);
void ks_model_close(ks_model *m);

/* The names of the supported architectures, comma-separated, for messages. */
const char *ks_model_supported_archs(void);

#endif
