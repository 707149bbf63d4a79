/* kv_cache.h — the paged, prefix-shared KV cache: block pool + prefix index + (optional)
 * disk tier, and the policy that ties them together. Owned by the engine thread.
 *
 * A full block is published under its key (kv_key.h) once computed; a new sequence walks
 * its prompt block by block, takes every published block it finds (in RAM, or read
 * back from disk) and computes only the rest. Published blocks outlive the sequences
 * that made them: the cache holds one reference on each, and evicts unreferenced ones
 * when the pool runs out, leaves before parents (a shared system prompt outlives the
 * conversations hanging off it), blocks at a client's cache breakpoint last, least
 * recently used first. Every published block is also queued for the disk tier, so an
 * eviction from RAM loses nothing.
 *
 * Only the block holding a sequence's last tokens is ever written to, and it is private
 * to that sequence until full: shared blocks are immutable. */
#ifndef KS_KV_CACHE_H
#define KS_KV_CACHE_H

#include "core/status.h"
#include "kv/kv_key.h"
#include "model/kv_layout.h"
#include "model/model.h"

#include <stdint.h>

/* Tokens per block by default. 64: a decode step's attention walks a block per softmax
 * step and kernel call, and longer ones cost less per key (the 30B-A3B shape at 16K,
 * bench_attention, alternated: 74.7-77.1 ms at 32, 69.7-70.5 at 64, 69.4-69.8 at 128;
 * Qwen3-0.6B on par; prefill at 4096 on par), while a cached prefix is found in whole
 * blocks: a follow-up recomputes up to B - 1 tokens of what it shares. */
#define KS_KV_DEFAULT_BLOCK_TOKENS 64

typedef struct ks_kv_cache_params {
    uint32_t kv_type;        /* KS_TYPE_F16 (default), F32, Q8_0 */
    int block_tokens;        /* B; <= 0: KS_KV_DEFAULT_BLOCK_TOKENS */
    uint64_t ram_bytes;      /* pool budget; 0: ks_kv_cache_default_ram_bytes() */
    const char *disk_dir;    /* model's directory for the disk tier; NULL: RAM only */
    uint64_t disk_bytes;     /* disk budget; 0: 20 GiB */
} ks_kv_cache_params;

void ks_kv_cache_params_default(ks_kv_cache_params *p);
/* A sensible RAM budget: half of the memory the OS reports available, at most 16 GiB. */
uint64_t ks_kv_cache_default_ram_bytes(void);

/* What the cache did for one request (tokens). */
typedef struct ks_kv_usage {
    int prompt_tokens;
    int cached_ram_tokens;   /* taken from blocks in RAM */
    int cached_disk_tokens;  /* read back from the disk tier */
    int computed_tokens;     /* prompt tokens the model had to compute */
    int new_cached_tokens;   /* tokens in blocks this request published */
} ks_kv_usage;

/* A sequence's hold on the cache: its block table and how much of it is filled. */
typedef struct ks_kv_seq {
    int32_t *blocks;         /* block table: blocks[i] holds positions [i*B, (i+1)*B) */
    int n_blocks, cap_blocks;
    int n_tokens;            /* positions whose K/V are in the blocks */
    ks_kv_key *keys;         /* (cap_blocks) keys of the published prefix */
    int n_published;         /* leading full blocks that are published (or taken) */
} ks_kv_seq;

typedef struct ks_kv_cache_stats {
    int32_t pool_blocks, free_blocks;
    int32_t cached_blocks;     /* published blocks in RAM (shared prefixes, evictable when unused) */
    int32_t referenced_blocks; /* private blocks of running sequences */
    uint64_t hits_ram_blocks, hits_disk_blocks, misses_blocks, evictions;
    uint64_t disk_corrupt_skipped;
    int disk_enabled;
    uint64_t disk_files, disk_bytes;
} ks_kv_cache_stats;

typedef struct ks_kv_cache ks_kv_cache;

ks_status ks_kv_cache_create(ks_kv_cache **out, const ks_model *m, const ks_kv_cache_params *p,
                             ks_err *err);
/* Drains the disk queue and frees everything (sequences must be released). */
void ks_kv_cache_destroy(ks_kv_cache *c);

const ks_kv_layout *ks_kv_cache_layout(const ks_kv_cache *c);
uint8_t *ks_kv_cache_pool_base(const ks_kv_cache *c);
int32_t ks_kv_cache_pool_blocks(const ks_kv_cache *c);

void ks_kv_seq_init(ks_kv_seq *s);
void ks_kv_seq_deinit(ks_kv_seq *s); /* after release */

/* Starts s (empty) on a prompt: takes the longest published prefix of whole blocks that
 * leaves at least one token to compute. Fills usage's prompt and cached counts. */
ks_status ks_kv_cache_attach(ks_kv_cache *c, ks_kv_seq *s, const int32_t *prompt, int n,
                             ks_kv_usage *usage, ks_err *err);
/* A sequence prefilling toward n tokens whose computed positions end at a published block
 * (s->n_tokens = s->n_published whole blocks): takes the blocks that others published
 * since, as attach would, while they match its tokens and leave at least one token to
 * compute (a private block reserved for those positions, still empty, is given back).
 * RAM blocks only. Returns the positions taken. */
int ks_kv_cache_extend(ks_kv_cache *c, ks_kv_seq *s, const int32_t *tokens, int n);
/* Whether `lead` (prefilling toward lead_n tokens) is computing the very block that s
 * (toward n) would compute next, over the same prefix: s's next block is lead's current
 * one (lead will publish it whole), s has computed nothing of it and could take it from
 * the cache (ks_kv_cache_extend), and the two agree on the parent block and the block's
 * tokens. s can wait a step and take it instead of computing it twice. */
bool ks_kv_cache_same_next_block(const ks_kv_cache *c, const ks_kv_seq *lead, const int32_t *lead_tokens,
                                 int lead_n, const ks_kv_seq *s, const int32_t *tokens, int n);
/* Ensures blocks exist for positions [0, n_tokens); evicts unreferenced cached blocks as
 * needed. KS_ERR_FULL if the pool cannot provide them (every block is referenced). */
ks_status ks_kv_cache_reserve(ks_kv_cache *c, ks_kv_seq *s, int n_tokens, ks_err *err);
/* Records that positions [s->n_tokens, n) now hold the K/V of tokens[...] (tokens is the
 * sequence's full token list, length n) and publishes every newly full block. */
void ks_kv_cache_commit(ks_kv_cache *c, ks_kv_seq *s, const int32_t *tokens, int n, ks_kv_usage *usage);
/* Marks the published block holding position pos-1 as a client cache breakpoint. */
void ks_kv_cache_mark_breakpoint(ks_kv_cache *c, const ks_kv_seq *s, int pos);
/* Drops the sequence's references (its published blocks stay cached). */
void ks_kv_cache_release(ks_kv_cache *c, ks_kv_seq *s);

/* Collects finished disk writes (call now and then from the engine thread). */
void ks_kv_cache_poll(ks_kv_cache *c);
/* Waits for every queued disk write to finish (shutdown, tests). */
void ks_kv_cache_flush(ks_kv_cache *c);
void ks_kv_cache_stats_get(ks_kv_cache *c, ks_kv_cache_stats *out);

#endif
