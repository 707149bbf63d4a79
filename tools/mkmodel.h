/* mkmodel.h — the parts of `kvserve mkmodel`, the synthetic GGUF model generator.
 *
 * A synthetic model has a real architecture's tensor names, shapes, metadata keys and
 * quantization mix (what llama.cpp's converter and quantizer would write for a real
 * checkpoint of that shape), random but reproducible weights, and a real byte-level BPE
 * tokenizer. It lets tests and benchmarks run the whole stack on models of any size
 * without downloading one.
 *
 * Data flow, one file per step:
 *
 *   cmd_mkmodel.c       options, presets, shape checks  -> ks_mkmodel_hparams
 *   mkmodel_arch.c      hparams -> metadata keys + tensor plan (names, shapes, init)
 *   mkmodel_mix.c       per-tensor storage type of a file type (llama.cpp's mix rules)
 *   mkmodel_vocab.c     tokenizer keys: built (byte-level BPE) or copied from a GGUF
 *   mkmodel_corpus.c    the sample text the built tokenizer learns its merges from
 *   mkmodel_weights.c   seeded random rows -> converted/quantized -> streamed to disk
 */
#ifndef KS_TOOLS_MKMODEL_H
#define KS_TOOLS_MKMODEL_H

#include "core/status.h"
#include "gguf/gguf_writer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_MKMODEL_QWEN3 = 0,    /* dense: SwiGLU FFN per layer */
    KS_MKMODEL_QWEN3MOE = 1, /* routed experts per layer, no shared expert */
} ks_mkmodel_arch;

/* What --type asks for: a llama.cpp "file type" (llama_ftype), i.e. a default storage
 * type plus the rules that keep some tensors in other types. */
typedef enum {
    KS_MKMODEL_MIX_F32 = 0,
    KS_MKMODEL_MIX_F16,
    KS_MKMODEL_MIX_BF16,
    KS_MKMODEL_MIX_Q8_0,
    KS_MKMODEL_MIX_Q4_0,
    KS_MKMODEL_MIX_Q4_K_M,
    KS_MKMODEL_MIX_Q5_K_M,
    KS_MKMODEL_MIX_Q3_K_M,
    KS_MKMODEL_MIX_Q2_K,
    KS_MKMODEL_MIX_IQ4_XS,
    KS_MKMODEL_MIX_IQ4_NL,
    KS_MKMODEL_MIX_COUNT,
} ks_mkmodel_mix;

typedef struct ks_mkmodel_hparams {
    ks_mkmodel_arch arch;
    int64_t n_layer;
    int64_t n_embd;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;      /* = attention key_length = value_length */
    int64_t n_ff;          /* dense FFN width (qwen3moe: written, unused by the graph) */
    int64_t n_expert;      /* 0 for dense */
    int64_t n_expert_used;
    int64_t n_ff_exp;      /* width of one expert's FFN */
    int64_t n_vocab;       /* token count == token_embd rows */
    int64_t n_vocab_used;  /* tokens before the trailing unused placeholders ([PAD<id>]) */
    int64_t n_ctx;         /* trained context length (tokens) */
    float rope_freq_base;
    float rms_eps;
    bool tied_output;      /* no output.weight: the LM head reuses token_embd */
} ks_mkmodel_hparams;

/* The llama.cpp name of an architecture ("qwen3"), used as the metadata key prefix. */
const char *ks_mkmodel_arch_name(ks_mkmodel_arch arch);

/* ---- mkmodel_mix.c ------------------------------------------------------------------- */

/* What a tensor is, as far as choosing its storage type goes. */
typedef enum {
    KS_MKMODEL_T_NORM,        /* 1-D scales: always F32 */
    KS_MKMODEL_T_ROUTER,      /* ffn_gate_inp: never quantized (F32) */
    KS_MKMODEL_T_TOKEN_EMBD,
    KS_MKMODEL_T_OUTPUT,      /* output.weight */
    KS_MKMODEL_T_ATTN_Q,
    KS_MKMODEL_T_ATTN_K,
    KS_MKMODEL_T_ATTN_V,
    KS_MKMODEL_T_ATTN_OUTPUT,
    KS_MKMODEL_T_FFN_GATE,    /* dense or experts */
    KS_MKMODEL_T_FFN_UP,
    KS_MKMODEL_T_FFN_DOWN,
} ks_mkmodel_role;

/* Parses "f32", "q4_k_m", ... (case-insensitive); -1 if unknown. */
int ks_mkmodel_mix_from_name(const char *name);
const char *ks_mkmodel_mix_name(ks_mkmodel_mix mix);
/* llama_ftype number for general.file_type. */
uint32_t ks_mkmodel_mix_ftype(ks_mkmodel_mix mix);
bool ks_mkmodel_mix_is_quantized(ks_mkmodel_mix mix);

/* Storage type (ks_type id) of a tensor of the given role in layer il (-1 outside
 * layers) whose rows have ne0 elements. */
uint32_t ks_mkmodel_mix_type(ks_mkmodel_mix mix, const ks_mkmodel_hparams *hp,
                             ks_mkmodel_role role, int64_t il, int64_t ne0);

/* ---- mkmodel_arch.c ------------------------------------------------------------------ */

#define KS_MKMODEL_NAME_BYTES 64 /* longest tensor name is ~30 bytes ("blk.47.ffn_down_exps.weight") */

/* One tensor to write and how to fill it: each element is mean + std * z with z a
 * seeded, approximately standard normal draw; rows from quiet_row on use quiet_std. */
typedef struct ks_mkmodel_tensor {
    char name[KS_MKMODEL_NAME_BYTES];
    uint32_t n_dims;
    int64_t ne[4];  /* elements per dimension, ne[0] = row length (fastest) */
    uint32_t type;  /* ks_type id on disk */
    float mean;
    float std;
    int64_t quiet_row;  /* first row of unused tokens (token_embd, output); else INT64_MAX */
    float quiet_std;
} ks_mkmodel_tensor;

/* The tensors of a model, in the order llama.cpp's tools write them (non-layer tensors
 * by name, then layer by layer, names sorted within a layer). *out is malloc'd. */
ks_status ks_mkmodel_plan(const ks_mkmodel_hparams *hp, ks_mkmodel_mix mix,
                          ks_mkmodel_tensor **out, size_t *n_out, ks_err *err);

/* general.architecture, general.name, general.description and the <arch>.*
 * hyperparameter keys. */
void ks_mkmodel_set_arch_keys(ks_gguf_writer *w, const ks_mkmodel_hparams *hp, const char *name,
                              const char *description);

/* ---- mkmodel_vocab.c ----------------------------------------------------------------- */

/* Builds the byte-level BPE tokenizer (gpt2 model, qwen2 pre-tokenizer, Qwen special
 * tokens, ChatML template) and sets its tokenizer.* keys. n_vocab 0 keeps the natural
 * size; a larger value pads with unused [PAD<id>] tokens; a smaller one is an error.
 * *n_vocab_out receives the token count written, *n_used_out the count before the
 * padding. */
ks_status ks_mkmodel_vocab_build(ks_gguf_writer *w, int64_t n_vocab, int64_t *n_vocab_out,
                                 int64_t *n_used_out, ks_err *err);

/* Copies every tokenizer.* key of the GGUF at path (and the ChatML template if it has
 * none); *n_vocab_out = its token count, *n_used_out = the count before its trailing
 * unused (type 5) tokens. */
ks_status ks_mkmodel_vocab_copy(ks_gguf_writer *w, const char *path, int64_t *n_vocab_out,
                                int64_t *n_used_out, ks_err *err);

/* The ChatML template the built tokenizer carries (Jinja source, static storage). */
const char *ks_mkmodel_chat_template(void);

/* ---- mkmodel_corpus.c ---------------------------------------------------------------- */

/* English prose and source code the built tokenizer's merges are learned from (static,
 * NUL-terminated, ASCII). */
const char *ks_mkmodel_corpus(void);

/* ---- mkmodel_weights.c --------------------------------------------------------------- */

/* Upper bound of -t: more threads than this only contend for memory bandwidth. */
#define KS_MKMODEL_MAX_THREADS 256

typedef struct ks_mkmodel_write_opts {
    uint64_t seed;
    int n_threads;   /* workers generating and quantizing rows, >= 1 */
    bool progress;   /* report progress on stderr */
} ks_mkmodel_write_opts;

/* Declares the tensors on w, writes the file (metadata must already be set) and streams
 * every tensor's data: generated and converted in parallel, one tensor in memory at a
 * time. The bytes depend only on the plan and the seed, not on the thread count. */
ks_status ks_mkmodel_write(ks_gguf_writer *w, const char *path, const ks_mkmodel_tensor *t,
                           size_t n, const ks_mkmodel_write_opts *opts, ks_err *err);

#endif
