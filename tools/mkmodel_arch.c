/* mkmodel_arch.c — what a qwen3 / qwen3moe GGUF contains: hyperparameter keys and the
 * tensor plan (names, shapes, storage types, initial value distributions).
 *
 * Names, shapes and keys are llama.cpp's for these architectures (ne[0] is the input
 * dimension of a matrix, ne[1] its output, ne[2] the expert):
 *
 *   token_embd.weight          (n_embd, n_vocab)
 *   output_norm.weight         (n_embd)
 *   output.weight              (n_embd, n_vocab)          absent when tied to token_embd
 *   blk.N.attn_norm.weight     (n_embd)
 *   blk.N.attn_q.weight        (n_embd, n_head * head_dim)
 *   blk.N.attn_k.weight        (n_embd, n_head_kv * head_dim)
 *   blk.N.attn_v.weight        (n_embd, n_head_kv * head_dim)
 *   blk.N.attn_output.weight   (n_head * head_dim, n_embd)
 *   blk.N.attn_q_norm.weight   (head_dim)                 RMS norm per head, before RoPE
 *   blk.N.attn_k_norm.weight   (head_dim)
 *   blk.N.ffn_norm.weight      (n_embd)
 *   qwen3:    blk.N.ffn_gate/ffn_up.weight (n_embd, n_ff), ffn_down.weight (n_ff, n_embd)
 *   qwen3moe: blk.N.ffn_gate_inp.weight (n_embd, n_expert),
 *             blk.N.ffn_gate_exps/ffn_up_exps.weight (n_embd, n_ff_exp, n_expert),
 *             blk.N.ffn_down_exps.weight (n_ff_exp, n_embd, n_expert)
 *
 * Initial values keep activations in a sane range through any depth (so logits are
 * finite and not degenerate, with or without quantization):
 *   - norm scales: 1 + 0.05 z (close to 1, not all equal);
 *   - matrices: std 1/sqrt(fan_in), so a projection of a unit-RMS input has unit RMS;
 *   - projections back into the residual stream (attn_output, ffn_down): a further
 *     1/sqrt(2 n_layer), so the stream grows like a sum of 2 n_layer small steps;
 *   - token_embd and output: std 2/sqrt(n_embd), giving logits of std ~2 from a unit-RMS
 *     final hidden state: peaked enough to sample sensibly, far from one-hot;
 *   - their rows for unused placeholder tokens: 1/16 of that, so the ~150K placeholders of
 *     a padded vocabulary have logits near 0, below the best real token's (~3 sigma up):
 *     greedy decoding produces real tokens, as with a real model.
 *
 * Does not own: the type rules (mkmodel_mix.c), the tokenizer keys (mkmodel_vocab.c). */
#include "mkmodel.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Spread of the norm scales around 1: enough that no two channels are alike, small
 * enough that the normalised activations keep unit scale. */
#define NORM_STD 0.05f
/* Logit standard deviation the LM head aims for, from a unit-RMS hidden state. */
#define LOGIT_STD 2.0f
/* Damping of the LM head rows of unused tokens (see the file comment). */
#define UNUSED_ROW_SCALE (1.0f / 16)

const char *ks_mkmodel_arch_name(ks_mkmodel_arch arch) {
    return arch == KS_MKMODEL_QWEN3MOE ? "qwen3moe" : "qwen3";
}

/* ---- metadata ------------------------------------------------------------------------- */

/* Sets "<arch>.<suffix>" to a u32. */
static void set_arch_u32(ks_gguf_writer *w, const char *arch, const char *suffix, int64_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    ks_gguf_writer_set_u32(w, key, (uint32_t)v);
}

static void set_arch_f32(ks_gguf_writer *w, const char *arch, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    ks_gguf_writer_set_f32(w, key, v);
}

void ks_mkmodel_set_arch_keys(ks_gguf_writer *w, const ks_mkmodel_hparams *hp, const char *name,
                              const char *description) {
    const char *a = ks_mkmodel_arch_name(hp->arch);
    ks_gguf_writer_set_str(w, "general.architecture", a);
    ks_gguf_writer_set_str(w, "general.name", name);
    ks_gguf_writer_set_str(w, "general.description", description);
    set_arch_u32(w, a, "block_count", hp->n_layer);
    set_arch_u32(w, a, "context_length", hp->n_ctx);
    set_arch_u32(w, a, "embedding_length", hp->n_embd);
    set_arch_u32(w, a, "feed_forward_length", hp->n_ff);
    set_arch_u32(w, a, "attention.head_count", hp->n_head);
    set_arch_u32(w, a, "attention.head_count_kv", hp->n_head_kv);
    set_arch_f32(w, a, "rope.freq_base", hp->rope_freq_base);
    set_arch_f32(w, a, "attention.layer_norm_rms_epsilon", hp->rms_eps);
    set_arch_u32(w, a, "attention.key_length", hp->head_dim);
    set_arch_u32(w, a, "attention.value_length", hp->head_dim);
    if (hp->arch == KS_MKMODEL_QWEN3MOE) {
        set_arch_u32(w, a, "expert_count", hp->n_expert);
        set_arch_u32(w, a, "expert_used_count", hp->n_expert_used);
        set_arch_u32(w, a, "expert_feed_forward_length", hp->n_ff_exp);
    }
}

/* ---- tensor plan ---------------------------------------------------------------------- */

typedef struct plan {
    const ks_mkmodel_hparams *hp;
    ks_mkmodel_mix mix;
    ks_mkmodel_tensor *t;
    size_t n, cap;
} plan;

/* Appends a tensor: role picks its type, (mean, std) its values; ne1/ne2 of 0 mean the
 * tensor has fewer dimensions. name is a printf format (for the layer number). */
static void add(plan *p, ks_mkmodel_role role, int64_t il, float mean, float std, int64_t ne0,
                int64_t ne1, int64_t ne2, const char *fmt, ...) KS_PRINTF(9, 10);

static void add(plan *p, ks_mkmodel_role role, int64_t il, float mean, float std, int64_t ne0,
                int64_t ne1, int64_t ne2, const char *fmt, ...) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->t = ks_xrealloc(p->t, p->cap * sizeof *p->t);
    }
    ks_mkmodel_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->ne[2] = ne2 ? ne2 : 1;
    t->ne[3] = 1;
    t->n_dims = ne2 ? 3 : ne1 ? 2 : 1;
    t->type = ks_mkmodel_mix_type(p->mix, p->hp, role, il, ne0);
    t->mean = mean;
    t->std = std;
    t->quiet_row = INT64_MAX;
    t->quiet_std = std;
}

/* Marks the rows of unused tokens of the tensor just added. */
static void quiet_unused_rows(plan *p) {
    ks_mkmodel_tensor *t = &p->t[p->n - 1];
    if (p->hp->n_vocab_used > 0 && p->hp->n_vocab_used < p->hp->n_vocab) {
        t->quiet_row = p->hp->n_vocab_used;
        t->quiet_std = t->std * UNUSED_ROW_SCALE;
    }
}

static float inv_sqrt(int64_t n) { return 1.0f / sqrtf((float)n); }

/* One layer's tensors, names sorted as llama.cpp's loader orders them. */
static void add_layer(plan *p, int64_t il) {
    const ks_mkmodel_hparams *hp = p->hp;
    const int64_t n_embd = hp->n_embd;
    const int64_t n_q = hp->n_head * hp->head_dim;     /* query width */
    const int64_t n_kv = hp->n_head_kv * hp->head_dim; /* key/value width */
    const float in_std = inv_sqrt(n_embd);
    const float residual = inv_sqrt(2 * hp->n_layer);  /* damping of residual writes */

    add(p, KS_MKMODEL_T_ATTN_K, il, 0, in_std, n_embd, n_kv, 0, "blk.%lld.attn_k.weight", (long long)il);
    add(p, KS_MKMODEL_T_NORM, il, 1, NORM_STD, hp->head_dim, 0, 0, "blk.%lld.attn_k_norm.weight", (long long)il);
    add(p, KS_MKMODEL_T_NORM, il, 1, NORM_STD, n_embd, 0, 0, "blk.%lld.attn_norm.weight", (long long)il);
    add(p, KS_MKMODEL_T_ATTN_OUTPUT, il, 0, inv_sqrt(n_q) * residual, n_q, n_embd, 0,
        "blk.%lld.attn_output.weight", (long long)il);
    add(p, KS_MKMODEL_T_ATTN_Q, il, 0, in_std, n_embd, n_q, 0, "blk.%lld.attn_q.weight", (long long)il);
    add(p, KS_MKMODEL_T_NORM, il, 1, NORM_STD, hp->head_dim, 0, 0, "blk.%lld.attn_q_norm.weight", (long long)il);
    add(p, KS_MKMODEL_T_ATTN_V, il, 0, in_std, n_embd, n_kv, 0, "blk.%lld.attn_v.weight", (long long)il);

    if (hp->arch == KS_MKMODEL_QWEN3MOE) {
        const int64_t n_ff = hp->n_ff_exp, n_e = hp->n_expert;
        add(p, KS_MKMODEL_T_FFN_DOWN, il, 0, inv_sqrt(n_ff) * residual, n_ff, n_embd, n_e,
            "blk.%lld.ffn_down_exps.weight", (long long)il);
        add(p, KS_MKMODEL_T_FFN_GATE, il, 0, in_std, n_embd, n_ff, n_e, "blk.%lld.ffn_gate_exps.weight", (long long)il);
        add(p, KS_MKMODEL_T_ROUTER, il, 0, in_std, n_embd, n_e, 0, "blk.%lld.ffn_gate_inp.weight", (long long)il);
        add(p, KS_MKMODEL_T_NORM, il, 1, NORM_STD, n_embd, 0, 0, "blk.%lld.ffn_norm.weight", (long long)il);
        add(p, KS_MKMODEL_T_FFN_UP, il, 0, in_std, n_embd, n_ff, n_e, "blk.%lld.ffn_up_exps.weight", (long long)il);
    } else {
        const int64_t n_ff = hp->n_ff;
        add(p, KS_MKMODEL_T_FFN_DOWN, il, 0, inv_sqrt(n_ff) * residual, n_ff, n_embd, 0,
            "blk.%lld.ffn_down.weight", (long long)il);
        add(p, KS_MKMODEL_T_FFN_GATE, il, 0, in_std, n_embd, n_ff, 0, "blk.%lld.ffn_gate.weight", (long long)il);
        add(p, KS_MKMODEL_T_NORM, il, 1, NORM_STD, n_embd, 0, 0, "blk.%lld.ffn_norm.weight", (long long)il);
        add(p, KS_MKMODEL_T_FFN_UP, il, 0, in_std, n_embd, n_ff, 0, "blk.%lld.ffn_up.weight", (long long)il);
    }
}

ks_status ks_mkmodel_plan(const ks_mkmodel_hparams *hp, ks_mkmodel_mix mix,
                          ks_mkmodel_tensor **out, size_t *n_out, ks_err *err) {
    if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_vocab <= 0)
        return KS_ERRF(err, KS_ERR_INVALID, "model shape is empty");
    plan p = {.hp = hp, .mix = mix};
    const float head_std = LOGIT_STD * inv_sqrt(hp->n_embd);

    /* Non-layer tensors first, by name, as llama.cpp's loader sorts them. */
    if (!hp->tied_output) {
        add(&p, KS_MKMODEL_T_OUTPUT, -1, 0, head_std, hp->n_embd, hp->n_vocab, 0, "output.weight");
        quiet_unused_rows(&p);
    }
    add(&p, KS_MKMODEL_T_NORM, -1, 1, NORM_STD, hp->n_embd, 0, 0, "output_norm.weight");
    add(&p, KS_MKMODEL_T_TOKEN_EMBD, -1, 0, head_std, hp->n_embd, hp->n_vocab, 0, "token_embd.weight");
    quiet_unused_rows(&p);
    for (int64_t il = 0; il < hp->n_layer; il++)
        add_layer(&p, il);
    *out = p.t;
    *n_out = p.n;
    return KS_OK;
}
