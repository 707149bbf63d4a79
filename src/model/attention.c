/* attention.c — causal attention over the paged KV pool in streaming ("flash") form (see
 * attention.h), and the write of a batch's K/V rows into the pool.
 *
 * Owns: the grouping of query rows, the walk over KV blocks with a running softmax, the
 * split of long contexts across threads and the merge of their partial states.
 * Does not own: the arithmetic of a tile (the attn_* kernels of tensor/kernels.h), the
 * KV layout (kv_layout.h), block allocation (kv/).
 *
 * Work item: a group of up to GROUP_TOKENS consecutive batch tokens of one sequence, all
 * their query heads (rows), over a range of that sequence's positions. The item walks its
 * range block by block:
 *
 *   K = the block's K rows, all KV heads                  (n <= B, n_head_kv * head_dim)
 *   per KV head h:  S = Q_h K_h^T / sqrt(head_dim)         (rows of h, n)
 *   per row r:      m' = max(m, S_r); P_r = exp(S_r - m'); masked tail of P_r = 0
 *                   l = l e^(m - m') + sum P_r;  acc_r *= e^(m - m')  (all rows: one call)
 *   V = the block's V rows
 *   per KV head h:  acc_h += P_h V_h                       (rows of h, head_dim)
 *
 * and ends with out_r = acc_r / l. Rows are ordered by KV head, then token, then the gqa
 * query heads that share it, so that the rows reading one KV head are one matrix. The
 * tile kernels read F32, F16 and Q8_0 rows straight from the pool (halves and int8s
 * widened in registers), each K/V row of a block once per item for all the item's rows;
 * nothing is sized by the context. Where the pool holds Q8_0 keys in panels (kv_layout.h:
 * k_panels, where the table has attn_scores_q8p), they are scored against the item's
 * queries rounded to Q8_0 once per item, in int8 products, as llama.cpp scores its Q8_0
 * cache, 16 keys a vector; F16 keys in panels (attn_scores_f16p) against the float
 * queries, 16 keys a vector too; where the table has attn_accum_q8i, Q8_0 values are
 * summed in int16 products (see kernels.h for the rounding).
 *
 * The scores of a query are the same sums in the same order whether it comes alone
 * (decode) or in a group (prefill), and so is everything after them: unless a context
 * is long enough to be cut into chunks, or shares its prefix with another sequence of
 * the step (both merged in another order, see below), a prompt computed in
 * one batch gets the same attention as token by token, where the models' quantized
 * activations would turn rounding differences into visibly different logits. (Scores
 * with a group's rows in vector lanes measured 20% faster for a prefill at depth 4096,
 * but sum in an order decode cannot afford to follow.)
 *
 * With a tile kernel (kernels.h, attn_tile_f16: AMX-BF16) and an F16 cache, an item with
 * at least TILE_MIN_ROWS query rows per KV head (a prefill group) goes through it
 * instead: one call per KV head and block does the three steps above in tiles, and groups
 * are larger (TILE_GROUP_ROWS rows per KV head), as the kernel converts each block's K and
 * V for its tiles once per group. Its products keep ~16 significant bits, not F32's 24:
 * on such CPUs a prefill no longer attends exactly as decode (which stays on the vector
 * kernels), as on them the batched matmuls already do not (forward.c).
 *
 * Threads claim items from a shared counter, largest first. A group holding more than
 * its threads' share of the work (a decode token deep in its context) has its positions
 * cut into chunks of whole blocks; each chunk leaves a partial (m, l, acc) per row, and a
 * second pass merges them: M = max m_c, out = sum_c e^(m_c - M) acc_c / sum_c
 * e^(m_c - M) l_c.
 *
 * Decode tokens of sequences whose block tables begin with the same blocks (a prompt
 * prefix cached once: conversations or subagents with one system prompt) walk those
 * blocks together, as one group of all their rows (plan_shared): a step reads the
 * prefix's K and V once, not once per sequence (bench_attention -s 4 --shared at 8192:
 * 104 -> 57 ms, in `kvserve bench -s 4 --shared` 28 -> 44 t/s). Each token's own group
 * walks the blocks past the prefix, and its rows merge the two walks' partial states as
 * chunks are merged.
 *
 * Divisions: scratch; planning; one item (vector kernels, tiles); the merge; run; the K/V
 * writes. */
#include "model/attention.h"

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Tokens per group. With Qwen3-0.6B's 16 query heads of 128 over 8 KV heads that is 256
 * query rows, 32 per KV head: each K/V row of a block is read once for 32 queries (a
 * prefill reads its context once per group: at 16 tokens half as often as at 8, 4% faster
 * at depth 4096), and the rows' accumulators (128 KiB) and scores (32 KiB) stay in L2. */
#define GROUP_TOKENS 16

/* With the tile kernel: groups of up to this many query rows per KV head (64 tokens of
 * Qwen3-0.6B, 16 of Qwen3-30B-A3B), as each block's K and V are converted for the tiles
 * once per group: at 128 rows that costs less than the tile products (pp512 attention at
 * depth 4096, bench_attention: 146 GMAC/s with groups of 32 rows, 199 with 128). */
#define TILE_GROUP_ROWS 128

/* Items per thread a batch should offer: contexts are cut into chunks until no item holds
 * more than 1 / (ITEMS_PER_THREAD * nth) of the work, so that a thread slowed by a
 * neighbour on a shared machine does not hold the others up. */
#define ITEMS_PER_THREAD 4

/* Fewest positions in a chunk: below this the chunk's fixed costs (gathering queries,
 * writing and merging partial states) stop being small next to its walk. */
#define MIN_CHUNK_POSITIONS 256

/* Query rows of a KV head up to which an item asks for each head's K and V rows while
 * it computes an earlier head (unit_row): a decode token's 2 (Qwen3's) meet each row
 * too briefly for the memory's latency to hide behind their arithmetic; a prefill
 * group's 32 do not need it (measured a little slower with it). */
#define PREFETCH_MAX_ROWS 8

/* How many units (a KV head's K or V rows of a block) ahead of the one computed the rows
 * asked for are. Two: on a Zen 4 (2 threads, bench_attention -p 0, alternated) Qwen3-0.6B's
 * 2 rows at 16384 ~89 -> ~66 ms, at 4096 17-23 -> 16.5-20, four sequences at 640 13-16 ->
 * 8-12; the 30B-A3B shape's 8 rows on par; four units ahead as two. (On a Sapphire Rapids
 * VM with 480 MiB of L3, one unit ahead had measured better than 2 to 8.) */
#define PREFETCH_AHEAD_UNITS 2

/* Query rows of a KV head from which an item uses the tile kernel where there is one
 * (a tile has 16 rows: fewer would leave most of it idle). */
#define TILE_MIN_ROWS 16

/* ---- scratch ------------------------------------------------------------------------- */

typedef struct thread_scratch {
    void *tile_q;     /* tiles: the item's queries prepared, per KV head (tile_q_bytes) */
    void *tile_work;  /* tiles: the kernel's scratch */
    float *q;     /* (max_rows, head_dim) the item's queries, rows by KV head */
    void *q8;     /* q8p: the same rounded to Q8_0 (max_rows rows of head_dim / 32
                   * kv_q8_query blocks) */
    float *s;     /* (max_rows, block_tokens) scores, then softmax numerators */
    float *acc;   /* (max_rows, head_dim) running sums of weighted values */
    float *m;     /* (max_rows) running max of a row's scores */
    float *l;     /* (max_rows) running sum of exp(score - m) */
    float *corr;  /* (max_rows) a block's factor on a row's earlier sums, exp(m_old - m) */
    int *lim;     /* (max_rows) positions a row sees: [0, lim) */
} thread_scratch;

/* A group is either a run of tokens of one sequence, or (shared, see plan_shared) the
 * decode tokens of several sequences over the prefix blocks their tables share. */
typedef struct group {
    int t0, nt;    /* tokens [t0, t0 + nt) of the batch, one sequence; shared: nt member
                    * groups (of one token each), a->members[t0 .. t0 + nt) */
    int n_pos;     /* positions the group reads: largest pos + 1 (shared: its prefix) */
    int b0;        /* the first block it walks (past the prefix of its shared group) */
    int n_chunks;  /* chunks of its blocks [b0, ...); 1: not split */
    int shared;    /* the shared group walking its prefix, or -1 (shared groups: -1) */
    bool is_shared;
    int n_parts;   /* partial states a row keeps: its chunks and its shared group's; 1: none */
    size_t part;   /* n_parts > 1: its first partial row state (index into a->part) */
} group;

/* A decode token that may share its prefix: its group, its table, and the most whole
 * blocks it could share (those before its position). */
typedef struct prefix_cand {
    int g;
    const int32_t *table;
    int max_blocks;
} prefix_cand;

typedef struct item {
    int g, c;      /* group, chunk */
    long work;     /* its blocks x tokens, to order items by */
} item;

struct ks_attention {
    ks_hparams hp;
    ks_kv_layout kv;
    const ks_kernels *k;
    int nth;
    int group_tokens;       /* most tokens in a group: GROUP_TOKENS, more with tiles */
    int max_rows;           /* group_tokens * n_head */
    bool tiles;             /* F16 K/V and a tile kernel for them (attn_tile_f16) */
    bool q8p;               /* Q8_0 K in panels against Q8_0 queries (attn_scores_q8p) */
    bool f16p;              /* F16 K in panels against float queries (attn_scores_f16p) */
    bool q8i;               /* Q8_0 V summed in integer products (attn_accum_q8i) */
    void *k_row;            /* keys in panels: a token's keys rounded (Q8_0 blocks or
                             * halves), before they go to their panels */
    size_t tile_q_bytes;    /* one KV head's prepared queries, the most rows an item has */
    thread_scratch *ts;
    /* the plan of the current batch; grows with the largest batch seen */
    group *groups;
    item *items;
    int cap_groups, cap_items;
    /* shared groups' members: indices of groups; the candidates in table order and their
     * common prefixes (plan_shared), cap_groups each */
    int *members;
    int cap_members;
    prefix_cand *cands;
    int *lcp;
    int cap_cands;
    int n_shared_walks, n_shared_blocks; /* of the last run's plan */
    /* partial states of split groups: (cap_part, 2 + head_dim) floats, [m, l, acc] */
    float *part;
    size_t cap_part;
};

void ks_attention_destroy(ks_attention *a) {
    if (!a)
        return;
    if (a->ts)
        for (int i = 0; i < a->nth; i++) {
            free(a->ts[i].tile_q);
            free(a->ts[i].tile_work);
            free(a->ts[i].q);
            free(a->ts[i].s);
            free(a->ts[i].acc);
            free(a->ts[i].m);
            free(a->ts[i].l);
            free(a->ts[i].corr);
            free(a->ts[i].q8);
            free(a->ts[i].lim);
        }
    free(a->ts);
    free(a->k_row);
    free(a->groups);
    free(a->items);
    free(a->members);
    free(a->cands);
    free(a->lcp);
    free(a->part);
    free(a);
}

ks_status ks_attention_create(ks_attention **out, const ks_hparams *hp, const ks_kv_layout *kv,
                              int n_ctx, int nth, ks_err *err) {
    (void)n_ctx; /* nothing here grows with the context */
    /* a KV head is read on its own: it must be whole blocks of the KV type */
    if (hp->head_dim % ks_type_traits_of(kv->kv_type)->block_size != 0)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "KV heads of %d elements are not whole %s blocks", hp->head_dim,
                       ks_type_name(kv->kv_type));
    const bool panels_q8 = kv->k_panels && kv->kv_type == KS_TYPE_Q8_0;
    if (panels_q8 && (!ks_kernels_get()->attn_scores_q8p || hp->head_dim > KS_ATTN_TILE_DIM))
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "Q8_0 keys in panels, and no kernel of %s scores them",
                       ks_kernels_get()->isa);
    if (kv->k_panels && kv->kv_type == KS_TYPE_F16 && !ks_kernels_get()->attn_scores_f16p)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "F16 keys in panels, and no kernel of %s scores them",
                       ks_kernels_get()->isa);
    if (kv->k_panels && kv->kv_type != KS_TYPE_Q8_0 && kv->kv_type != KS_TYPE_F16)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "keys in panels are Q8_0 or F16, not %s", ks_type_name(kv->kv_type));
    ks_attention *a = calloc(1, sizeof *a);
    if (!a)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for attention scratch");
    a->hp = *hp;
    a->kv = *kv;
    a->k = ks_kernels_get();
    a->nth = nth;
    const ks_attn_tile_kernel *tk = &a->k->attn_tile_f16;
    const int gqa = hp->n_head / hp->n_head_kv;
    a->tiles = tk->block && kv->kv_type == KS_TYPE_F16 && !kv->k_panels && hp->head_dim % 32 == 0 &&
               hp->head_dim <= KS_ATTN_TILE_DIM && kv->block_tokens <= KS_ATTN_TILE_KEYS &&
               GROUP_TOKENS * gqa <= KS_ATTN_TILE_ROWS;
    a->q8p = panels_q8;
    a->f16p = kv->k_panels && kv->kv_type == KS_TYPE_F16;
    a->q8i = a->k->attn_accum_q8i && kv->kv_type == KS_TYPE_Q8_0 && hp->head_dim <= KS_ATTN_TILE_DIM;
    a->k_row = kv->k_panels ? malloc(kv->row_bytes) : NULL;
    a->group_tokens = a->tiles ? KS_MAX(GROUP_TOKENS, KS_MIN(TILE_GROUP_ROWS, KS_ATTN_TILE_ROWS) / gqa) : GROUP_TOKENS;
    a->max_rows = a->group_tokens * hp->n_head;
    const int rows_per_head = a->group_tokens * gqa;
    size_t hd = (size_t)hp->head_dim, rows = (size_t)a->max_rows, B = (size_t)kv->block_tokens;
    a->ts = calloc((size_t)nth, sizeof *a->ts);
    bool ok = a->ts != NULL;
    if (a->tiles)
        a->tile_q_bytes = tk->q_bytes(rows_per_head, hd);
    for (int i = 0; ok && i < nth; i++) {
        thread_scratch *t = &a->ts[i];
        if (a->tiles) {
            t->tile_q = aligned_alloc(64, (a->tile_q_bytes * (size_t)hp->n_head_kv + 63) & ~(size_t)63);
            t->tile_work = aligned_alloc(64, (tk->scratch_bytes(rows_per_head, hd) + 63) & ~(size_t)63);
            if (!t->tile_q || !t->tile_work) {
                ok = false;
                break;
            }
        }
        t->q = malloc(rows * hd * sizeof(float));
        t->s = malloc(rows * B * sizeof(float));
        t->acc = malloc(rows * hd * sizeof(float));
        t->m = malloc(rows * sizeof(float));
        t->l = malloc(rows * sizeof(float));
        t->corr = malloc(rows * sizeof(float));
        t->lim = malloc(rows * sizeof(int));
        t->q8 = a->q8p ? malloc(rows * (hd / 32) * sizeof(kv_q8_query)) : NULL;
        ok = t->q && t->s && t->acc && t->m && t->l && t->corr && t->lim && (t->q8 || !a->q8p) &&
             (a->k_row || !kv->k_panels);
    }
    /* the most partial rows plan_items() can cut */
    a->cap_part = 2 * (size_t)ITEMS_PER_THREAD * (size_t)nth * rows;
    a->part = ok ? malloc(a->cap_part * (2 + hd) * sizeof(float)) : NULL;
    ok = ok && a->part;
    if (!ok) {
        ks_attention_destroy(a);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for attention scratch (%d threads)", nth);
    }
    *out = a;
    return KS_OK;
}

/* ---- planning ----------------------------------------------------------------------- */

/* Groups of the batch: runs of consecutive tokens of one sequence, cut every
 * a->group_tokens. Returns their count; a->groups holds them (n_chunks 1). */
static int plan_groups(ks_attention *a, const ks_batch *b) {
    int n = 0;
    for (int t = 0; t < b->n_tokens;) {
        int nt = 1;
        while (nt < a->group_tokens && t + nt < b->n_tokens && b->seq[t + nt] == b->seq[t])
            nt++;
        if (n == a->cap_groups) { /* the first batch this large: bookkeeping grows once */
            a->cap_groups = 2 * n + 16;
            a->groups = ks_xrealloc(a->groups, (size_t)a->cap_groups * sizeof *a->groups);
        }
        group *g = &a->groups[n++];
        g->t0 = t;
        g->nt = nt;
        g->n_pos = 0;
        for (int i = t; i < t + nt; i++)
            g->n_pos = KS_MAX(g->n_pos, b->pos[i] + 1);
        g->b0 = 0;
        g->n_chunks = 1;
        g->shared = -1;
        g->is_shared = false;
        g->n_parts = 1;
        g->part = 0;
        t += nt;
    }
    return n;
}

/* Blocks [*b0, *b1) of chunk c of group g: whole blocks of [g->b0, its last), as even as
 * blocks allow. */
static void chunk_blocks(const group *g, int c, int B, int *b0, int *b1) {
    const long n_blocks = (g->n_pos + B - 1) / B - g->b0;
    *b0 = g->b0 + (int)(n_blocks * c / g->n_chunks);
    *b1 = g->b0 + (int)(n_blocks * (c + 1) / g->n_chunks);
}

/* Fewest positions of whole blocks of prefix that sequences must share for their decode
 * tokens to walk it together. A short prefix is cheap to read once per sequence: the others' reads of
 * what the first just read come from the last-level cache, while a shared walk has 8
 * query rows per KV head to multiply (Qwen3-0.6B, 4 sequences) and partial states to
 * merge (bench_attention -s 4 -d 640: 4 shared blocks of 32 11.7 -> 12.3 ms, 8 even, 12
 * 9.5 -> 8.7 but at -d 2048 38.5 -> 40, 16 8.1 -> 6.5 and at -d 2048 38.6 -> 36.4). */
#define MIN_SHARED_POSITIONS 512

/* MIN_SHARED_POSITIONS in whole blocks of B positions. */
static inline int min_shared_blocks(int B) { return (MIN_SHARED_POSITIONS + B - 1) / B; }

/* Leading blocks two candidates' tables agree on, within both's max_blocks. */
static int common_blocks(const prefix_cand *x, const prefix_cand *y) {
    const int n = KS_MIN(x->max_blocks, y->max_blocks);
    int j = 0;
    while (j < n && x->table[j] == y->table[j])
        j++;
    return j;
}

/* Table order (a shorter prefix of another first); ties by group. */
static bool cand_before(const prefix_cand *x, const prefix_cand *y) {
    const int j = common_blocks(x, y);
    if (j < x->max_blocks && j < y->max_blocks && x->table[j] != y->table[j])
        return x->table[j] < y->table[j];
    if (x->max_blocks != y->max_blocks)
        return x->max_blocks < y->max_blocks;
    return x->g < y->g;
}

/* Blocks a shared walk of candidates [lo, hi) (in table order, lcp[i] = common_blocks of i
 * and i + 1) saves: the least common prefix, read once instead of hi - lo times. */
static long shared_saving(const int *lcp, int lo, int hi, int min_blocks, int *at_min) {
    int mn = INT32_MAX;
    for (int i = lo; i + 1 < hi; i++)
        if (lcp[i] < mn) {
            mn = lcp[i];
            *at_min = i;
        }
    return hi - lo >= 2 && mn >= min_blocks ? (long)mn * (hi - lo - 1) : 0;
}

/* The most blocks candidates [lo, hi) can save: walked together, or split where their
 * common prefix is shortest (a conversation that shares only a few blocks with subagents
 * that share hundreds among themselves would otherwise cut theirs down to its few). */
static long best_saving(const int *lcp, int lo, int hi, int min_blocks) {
    int at = lo;
    const long whole = shared_saving(lcp, lo, hi, min_blocks, &at);
    if (hi - lo < 3)
        return whole;
    return KS_MAX(whole, best_saving(lcp, lo, at + 1, min_blocks) + best_saving(lcp, at + 1, hi, min_blocks));
}

/* Appends a shared group of candidates [lo, hi) over their common prefix of n_shared
 * blocks; returns the new group count. */
static int add_shared(ks_attention *a, const prefix_cand *c, int lo, int hi, int n_shared, int n_groups,
                      int *n_members) {
    const int B = a->kv.block_tokens;
    if (n_groups == a->cap_groups) {
        a->cap_groups = 2 * n_groups + 16;
        a->groups = ks_xrealloc(a->groups, (size_t)a->cap_groups * sizeof *a->groups);
    }
    if (*n_members + (hi - lo) > a->cap_members) {
        a->cap_members = 2 * (*n_members + (hi - lo));
        a->members = ks_xrealloc(a->members, (size_t)a->cap_members * sizeof *a->members);
    }
    const int sg = n_groups++;
    a->n_shared_walks++;
    a->n_shared_blocks += n_shared;
    a->groups[sg] = (group){.t0 = *n_members, .nt = hi - lo, .n_pos = n_shared * B, .b0 = 0, .n_chunks = 1,
                            .shared = -1, .is_shared = true, .n_parts = 1};
    for (int k = lo; k < hi; k++) {
        a->members[(*n_members)++] = c[k].g;
        a->groups[c[k].g].b0 = n_shared;
        a->groups[c[k].g].shared = sg;
    }
    return n_groups;
}

/* Forms the shared groups of candidates [lo, hi) (see best_saving), at most group_tokens
 * members each; returns the new group count. */
static int form_shared(ks_attention *a, const prefix_cand *c, const int *lcp, int lo, int hi, int n_groups,
                       int *n_members) {
    int at = lo;
    const int min_blocks = min_shared_blocks(a->kv.block_tokens);
    const long whole = shared_saving(lcp, lo, hi, min_blocks, &at);
    if (hi - lo >= 3 && best_saving(lcp, lo, hi, min_blocks) > whole)
        return form_shared(a, c, lcp, at + 1, hi, form_shared(a, c, lcp, lo, at + 1, n_groups, n_members),
                           n_members);
    if (whole == 0)
        return n_groups;
    for (int k0 = lo; k0 + 1 < hi; k0 += a->group_tokens) {
        const int k1 = KS_MIN(hi, k0 + a->group_tokens);
        int mn = INT32_MAX;
        for (int i = k0; i + 1 < k1; i++)
            mn = KS_MIN(mn, lcp[i]);
        if (k1 - k0 >= 2)
            n_groups = add_shared(a, c, k0, k1, mn, n_groups, n_members);
    }
    return n_groups;
}

/* Shared groups: decode tokens (groups of one token) of sequences whose block tables
 * begin with the same blocks (a prefix cached once and shared, as several conversations
 * or subagents with one system prompt have) walk those blocks together, as one group of
 * all their query rows, so the step reads the prefix's K and V once instead of once per
 * sequence. Each such token's own group then walks only the blocks past the prefix, and
 * its rows end as a merge of the two walks' partial states (as a context cut into
 * chunks does). A prefix is whole blocks every member's token comes after (full, and
 * seen whole by all), at least MIN_SHARED_POSITIONS; the tokens are put in their tables'
 * order and cut into runs that save the most blocks read. Appends the shared groups to
 * a->groups; returns the new count. */
static int plan_shared(ks_attention *a, const ks_batch *b, int n_groups) {
    const int B = a->kv.block_tokens;
    a->n_shared_walks = a->n_shared_blocks = 0;
    if (n_groups > a->cap_cands) { /* the first batch this large */
        a->cap_cands = a->cap_groups;
        a->cands = ks_xrealloc(a->cands, (size_t)a->cap_cands * sizeof *a->cands);
        a->lcp = ks_xrealloc(a->lcp, (size_t)a->cap_cands * sizeof *a->lcp);
    }
    prefix_cand *c = a->cands;
    int n = 0;
    for (int i = 0; i < n_groups; i++) {
        const group *g = &a->groups[i];
        const ks_seq_view *sv = &b->seqs[b->seq[g->t0]];
        const int max_blocks = KS_MIN(b->pos[g->t0] / B, sv->n_blocks);
        if (g->nt != 1 || max_blocks < min_shared_blocks(B))
            continue;
        prefix_cand x = {i, sv->block_table, max_blocks};
        int k = n++; /* insertion: a step's decode tokens are few */
        while (k > 0 && cand_before(&x, &c[k - 1])) {
            c[k] = c[k - 1];
            k--;
        }
        c[k] = x;
    }
    if (n >= 2) {
        int n_members = 0;
        for (int i = 0; i + 1 < n; i++)
            a->lcp[i] = common_blocks(&c[i], &c[i + 1]);
        n_groups = form_shared(a, c, a->lcp, 0, n, n_groups, &n_members);
    }
    return n_groups;
}

/* Batch token of row-token ti of group g. */
static inline int group_token(const ks_attention *a, const group *g, int ti) {
    return g->is_shared ? a->groups[a->members[g->t0 + ti]].t0 : g->t0 + ti;
}

/* Largest first; ties in batch order, so that the order never depends on qsort. */
static int item_order(const void *pa, const void *pb) {
    const item *x = pa, *y = pb;
    if (x->work != y->work)
        return x->work > y->work ? -1 : 1;
    if (x->g != y->g)
        return x->g < y->g ? -1 : 1;
    return (x->c > y->c) - (x->c < y->c);
}

/* Lists the items: a group whose work (tokens x positions it walks) exceeds an even
 * share of the batch's, 1 / (ITEMS_PER_THREAD * nth), is cut into chunks of about that
 * share (whole blocks, at least MIN_CHUNK_POSITIONS). So a decode step (one group per
 * sequence) spreads over the threads, and a deep decode token next to a prefill chunk
 * does not leave the others waiting. Items go largest first, so the last ones claimed
 * are short. Returns their count; *split says whether any row ends as a merge of
 * partial states (of its group's chunks, and of its shared group's). */
static int plan_items(ks_attention *a, int n_groups, bool *split) {
    const int B = a->kv.block_tokens, min_blocks = KS_MAX(1, MIN_CHUNK_POSITIONS / B);
    double total = 0;
    for (int i = 0; i < n_groups; i++)
        total += (double)a->groups[i].nt * (a->groups[i].n_pos - a->groups[i].b0 * B);
    const double share = total / (ITEMS_PER_THREAD * a->nth);
    int n_items = 0;
    for (int i = 0; i < n_groups; i++) {
        group *g = &a->groups[i];
        const int n_blocks = (g->n_pos + B - 1) / B - g->b0;
        const double want = a->nth > 1 ? ceil((double)g->nt * (g->n_pos - g->b0 * B) / share) : 1;
        g->n_chunks = (int)KS_MAX(1, KS_MIN(want, n_blocks / min_blocks));
        n_items += g->n_chunks;
    }
    /* partial states: a row of a token group keeps one per chunk of its own and of its
     * shared group's (whose chunks write them for it) */
    size_t rows = 0;
    *split = false;
    for (int i = 0; i < n_groups; i++) {
        group *g = &a->groups[i];
        if (g->is_shared)
            continue;
        g->n_parts = g->n_chunks + (g->shared >= 0 ? a->groups[g->shared].n_chunks : 0);
        g->part = rows;
        if (g->n_parts > 1) {
            rows += (size_t)g->n_parts * (size_t)g->nt * (size_t)a->hp.n_head;
            *split = true;
        }
    }
    if (rows > a->cap_part) { /* more than the usual bound: sequences sharing prefixes */
        a->cap_part = rows;
        a->part = ks_xrealloc(a->part, a->cap_part * (2 + (size_t)a->hp.head_dim) * sizeof(float));
    }
    if (n_items > a->cap_items) {
        a->cap_items = 2 * n_items;
        a->items = ks_xrealloc(a->items, (size_t)a->cap_items * sizeof *a->items);
    }
    int at = 0;
    for (int i = 0; i < n_groups; i++)
        for (int c = 0; c < a->groups[i].n_chunks; c++) {
            int b0, b1;
            chunk_blocks(&a->groups[i], c, B, &b0, &b1);
            a->items[at++] = (item){i, c, (long)(b1 - b0) * a->groups[i].nt};
        }
    qsort(a->items, (size_t)n_items, sizeof *a->items, item_order);
    return n_items;
}

/* ---- one item ----------------------------------------------------------------------- */

typedef struct attn_task {
    ks_attention *a;
    uint8_t *kv_pool;
    const ks_batch *b;
    int il;
    const float *q;
    float *out;
    int n_items;
    atomic_int next;     /* the next unclaimed item */
    size_t n_merge_rows; /* merge pass: output rows of the split groups */
} attn_task;

/* Where the tile kernels read one KV head's rows of a block, in place in the pool: row j
 * at p + j * ld elements of type. */
typedef struct head_rows {
    const void *p;
    int64_t ld;
    ks_type type;
} head_rows;

/* The rows of KV head kvh among the block's K rows that start at `row` (keys in rows). */
static head_rows rows_of_head(const ks_attention *a, const uint8_t *row, int kvh) {
    return (head_rows){row + (size_t)kvh * a->kv.head_bytes, a->kv.row_elems, (ks_type)a->kv.kv_type};
}

/* The values of KV head kvh among a block's V rows v0 (kv_layout.h: in rows, or head by
 * head). */
static head_rows values_of_head(const ks_attention *a, const uint8_t *v0, int kvh) {
    const size_t run = a->kv.v_heads ? (size_t)a->kv.block_tokens * a->kv.head_bytes : a->kv.head_bytes;
    return (head_rows){v0 + (size_t)kvh * run, ks_kv_v_ld(&a->kv), (ks_type)a->kv.kv_type};
}

/* Block bi of group g's sequence: how many of its positions the group reads, and where
 * its K and V rows of layer il start. */
static inline int block_rows(const attn_task *at, const ks_seq_view *sv, const group *g, int bi, const uint8_t **k0,
                      const uint8_t **v0) {
    const ks_kv_layout *kv = &at->a->kv;
    const int32_t blk = sv->block_table[bi];
    *k0 = ks_kv_k_row(kv, at->kv_pool, blk, at->il, 0);
    *v0 = ks_kv_v_head(kv, at->kv_pool, blk, at->il, 0, 0);
    return KS_MIN(kv->block_tokens, g->n_pos - bi * kv->block_tokens);
}

/* Where KV head kvh's keys start among a block's K rows k0: in the first row, or its
 * first panel (kv_layout.h). */
static inline const uint8_t *head_keys(const ks_attention *a, const uint8_t *k0, int kvh) {
    return k0 + (size_t)kvh * a->kv.head_bytes * (a->kv.k_panels ? 16 : 1);
}

/* The unit whose rows are asked for while unit u (K of head u < n_kv, else V of head u -
 * n_kv) of a block is computed: PREFETCH_AHEAD_UNITS on in the walk's order; with keys in
 * panels, the same distance among units of u's kind (keys' panels and values' rows are
 * not read alike, and a kernel asks for rows as its own are laid out). */
static inline int ahead_unit(const ks_attention *a, int u) {
    const int n_kv = a->hp.n_head_kv;
    if (!a->kv.k_panels)
        return u + PREFETCH_AHEAD_UNITS;
    const int kind = u < n_kv ? 0 : n_kv, i = u - kind + PREFETCH_AHEAD_UNITS; /* i: among u's kind */
    return i / n_kv * 2 * n_kv + kind + i % n_kv;
}

/* Where unit u of block bi's walk starts in the pool: K of head u (u < n_kv; keys in
 * panels: its first panel), then V of head u - n_kv, then on into the next block of the
 * item's range; NULL past the range.
 * The unit after the one being computed is what the walk asks the cache for as it goes:
 * a head's share of a row is a few cache lines, a row apart (all KV heads' shares of a
 * position are one row), a stride the hardware prefetchers follow poorly, so that
 * without this a decode step waits on memory for most of each head's K and V. */
static inline const uint8_t *unit_row(const ks_attention *a, const attn_task *at, const ks_seq_view *sv,
                                      const group *g, int bi, int b1, int u) {
    const int n_kv = a->hp.n_head_kv;
    bi += u / (2 * n_kv);
    u %= 2 * n_kv;
    if (bi >= b1)
        return NULL;
    const uint8_t *k0, *v0;
    (void)block_rows(at, sv, g, bi, &k0, &v0);
    if (u < n_kv)
        return head_keys(a, k0, u);
    return values_of_head(a, v0, u - n_kv).p;
}

/* Blocks [b0, b1) of group g's item with the tile kernel (attn_tile_f16): its queries,
 * gathered by KV head in ts->q, prepared once; then per block and KV head one call that
 * scores, steps the softmax and accumulates the values. Its pool holds K and V in rows
 * (no k_panels, so no v_heads): one stride serves both. */
static void walk_blocks_tiles(attn_task *at, thread_scratch *ts, const group *g, int b0, int b1) {
    const ks_attention *a = at->a;
    const ks_attn_tile_kernel *tk = &a->k->attn_tile_f16;
    const ks_kv_layout *kv = &a->kv;
    const ks_seq_view *sv = &at->b->seqs[at->b->seq[group_token(a, g, 0)]];
    const int hd = a->hp.head_dim, n_kv = a->hp.n_head_kv, gqa = a->hp.n_head / n_kv;
    const int B = kv->block_tokens, rows_h = g->nt * gqa;
    uint8_t *qp = ts->tile_q;
    for (int kvh = 0; kvh < n_kv; kvh++)
        tk->prep_q(ts->q + (size_t)kvh * rows_h * hd, hd, rows_h, hd, 1.0f / sqrtf((float)hd),
                   qp + (size_t)kvh * a->tile_q_bytes);
    for (int bi = b0; bi < b1; bi++) {
        const uint8_t *k0, *v0;
        const int plo = bi * B, n = block_rows(at, sv, g, bi, &k0, &v0);
        for (int kvh = 0; kvh < n_kv; kvh++) {
            const size_t r0 = (size_t)kvh * rows_h;
            tk->block(qp + (size_t)kvh * a->tile_q_bytes, rows_h, hd, (const ks_fp16 *)(k0 + kvh * a->kv.head_bytes),
                      (const ks_fp16 *)(v0 + kvh * a->kv.head_bytes), kv->row_elems, n, ts->lim + r0, plo, ts->m + r0,
                      ts->l + r0, ts->acc + r0 * hd, hd, ts->tile_work);
        }
    }
}

/* Blocks [b0, b1) of group g's item with the vector kernels (see the file comment); the
 * queries are gathered by KV head in ts->q, the state (m, l, acc) initialised. */
static void walk_blocks(attn_task *at, thread_scratch *ts, const group *g, int b0, int b1) {
    const ks_attention *a = at->a;
    const ks_kernels *k = a->k;
    const ks_kv_layout *kv = &a->kv;
    const ks_seq_view *sv = &at->b->seqs[at->b->seq[group_token(a, g, 0)]];
    const int hd = a->hp.head_dim, n_kv = a->hp.n_head_kv, gqa = a->hp.n_head / n_kv;
    const int B = kv->block_tokens, rows_h = g->nt * gqa, rows = rows_h * n_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t q8_row_bytes = (size_t)hd / 32 * sizeof(kv_q8_query);
    if (a->q8p) /* the queries rounded as llama.cpp rounds them against a Q8_0 cache */
        for (int r = 0; r < rows; r++) {
            ks_block_q8_0 row[KS_ATTN_TILE_DIM / KS_QK8_0];
            k->quantize_act[KS_TYPE_Q8_0](ts->q + (size_t)r * hd, row, hd);
            kv_q8_query_prep(row, hd / KS_QK8_0, (kv_q8_query *)((uint8_t *)ts->q8 + (size_t)r * q8_row_bytes));
        }
    /* one call per KV head and block, the kernels asking for the unit ahead a line at a
     * time as their own rows go by (kernels.h: the pf of attn_scores / attn_accum). Calls
     * of 16 keys (measured better with keys in rows and blocks of 32) were the slower for a
     * decode token's 2 rows of Qwen3-0.6B on an Ice Lake Xeon VM: bench_attention -p 0, 2
     * threads, alternated, share of the bandwidth read around each rep: at 4096 71-74% ->
     * 80-84%, at 16384 71-81% -> 82-83%; a Q8_0 cache and four sequences on par or better.
     * Whole blocks are also what the integer value sums need (attn_accum_q8i rounds weights
     * per group of 32 keys from the call's first): a row's groups are then the same in
     * decode and prefill. */
    const bool prefetch = rows_h <= PREFETCH_MAX_ROWS;
    for (int bi = b0; bi < b1; bi++) {
        const uint8_t *k0, *v0;
        const int plo = bi * B, n = block_rows(at, sv, g, bi, &k0, &v0);
        /* scores and the softmax step */
        for (int kvh = 0; kvh < n_kv; kvh++) {
            const head_rows kh = rows_of_head(a, k0, kvh);
            const float *q = ts->q + (size_t)kvh * rows_h * hd;
            float *s = ts->s + (size_t)kvh * rows_h * B;
            const uint8_t *next = prefetch ? unit_row(a, at, sv, g, bi, b1, ahead_unit(a, kvh)) : NULL;
            if (a->q8p) /* the head's panels of keys */
                k->attn_scores_q8p((const uint8_t *)ts->q8 + ((size_t)kvh * rows_h) * q8_row_bytes, hd, rows_h,
                                   head_keys(a, k0, kvh), kh.ld, n, hd, scale, s, B, next);
            else if (a->f16p)
                k->attn_scores_f16p(q, hd, rows_h, head_keys(a, k0, kvh), kh.ld, n, hd, scale, s, B, next);
            else
                k->attn_scores[kh.type](q, hd, rows_h, kh.p, kh.ld, n, hd, scale, s, B, next);
        }
        k->softmax_rows_f32(ts->s, B, rows, n, ts->lim, plo, ts->m, ts->l, ts->corr);
        for (int r = 0; r < rows; r++)
            if (ts->corr[r] != 1.0f) {
                float *acc = ts->acc + (size_t)r * hd;
                for (int i = 0; i < hd; i++)
                    acc[i] *= ts->corr[r];
            }
        /* weighted values */
        for (int kvh = 0; kvh < n_kv; kvh++) {
            const head_rows vh = values_of_head(a, v0, kvh);
            float *acc = ts->acc + (size_t)kvh * rows_h * hd;
            const float *p = ts->s + (size_t)kvh * rows_h * B;
            const uint8_t *next = prefetch ? unit_row(a, at, sv, g, bi, b1, ahead_unit(a, n_kv + kvh)) : NULL;
            if (a->q8i)
                k->attn_accum_q8i(acc, hd, rows_h, p, B, vh.p, vh.ld, n, hd, next);
            else
                k->attn_accum[vh.type](acc, hd, rows_h, p, B, vh.p, vh.ld, n, hd, next);
        }
    }
}

/* Chunk c of group g (see the file comment). Rows of KV head kvh start at kvh * rows_h
 * (rows_h = nt * gqa); within them token ti's gqa heads are consecutive, so row r is
 * query head kvh * gqa + r % gqa of token t0 + (r % rows_h) / gqa. */
static void run_item(attn_task *at, thread_scratch *ts, const group *g, int c) {
    const ks_attention *a = at->a;
    const ks_hparams *hp = &a->hp;
    const ks_batch *b = at->b;
    const int hd = hp->head_dim, n_kv = hp->n_head_kv, gqa = hp->n_head / n_kv;
    const int rows_h = g->nt * gqa, rows = rows_h * n_kv;

    int b0, b1;
    chunk_blocks(g, c, a->kv.block_tokens, &b0, &b1);

    for (int kvh = 0; kvh < n_kv; kvh++)
        for (int ti = 0; ti < g->nt; ti++)
            for (int e = 0; e < gqa; e++) {
                const int r = kvh * rows_h + ti * gqa + e, t = group_token(a, g, ti);
                const float *src = at->q + ((size_t)t * hp->n_head + (size_t)(kvh * gqa + e)) * hd;
                memcpy(ts->q + (size_t)r * hd, src, (size_t)hd * sizeof(float));
                ts->lim[r] = b->pos[t] + 1;
                ts->m[r] = -INFINITY;
                ts->l[r] = 0.0f;
            }
    memset(ts->acc, 0, (size_t)rows * hd * sizeof(float));

    if (a->tiles && rows_h >= TILE_MIN_ROWS)
        walk_blocks_tiles(at, ts, g, b0, b1);
    else
        walk_blocks(at, ts, g, b0, b1);

    for (int r = 0; r < rows; r++) {
        const int kvh = r / rows_h, ti = (r % rows_h) / gqa, e = r % gqa;
        const float *acc = ts->acc + (size_t)r * hd;
        float *p = NULL;
        if (g->is_shared) { /* into the member's states, after its own chunks' */
            const group *mg = &a->groups[a->members[g->t0 + ti]];
            p = a->part + (mg->part + (size_t)(mg->n_chunks + c) * (size_t)hp->n_head + (size_t)(kvh * gqa + e)) *
                              (size_t)(2 + hd);
        } else if (g->n_parts > 1) {
            p = a->part + (g->part + (size_t)c * rows + (size_t)r) * (size_t)(2 + hd);
        }
        if (p) {
            p[0] = ts->m[r];
            p[1] = ts->l[r];
            memcpy(p + 2, acc, (size_t)hd * sizeof(float));
        } else {
            float *o = at->out + ((size_t)(g->t0 + ti) * hp->n_head + (size_t)(kvh * gqa + e)) * hd;
            const float inv = 1.0f / ts->l[r];
            for (int i = 0; i < hd; i++)
                o[i] = acc[i] * inv;
        }
    }
}

static void attn_worker(void *arg, int ith, int nth) {
    (void)nth;
    attn_task *at = arg;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&at->next, 1, memory_order_relaxed);
        if (i >= at->n_items)
            break;
        const item *it = &at->a->items[i];
        run_item(at, &at->a->ts[ith], &at->a->groups[it->g], it->c);
    }
}

/* ---- the merge ------------------------------------------------------------------------ */

/* Output row `row` of the split groups (their rows counted in group order): the merge
 * of its chunks' partial states. */
static void merge_row(attn_task *at, size_t row) {
    const ks_attention *a = at->a;
    const int hd = a->hp.head_dim, gqa = a->hp.n_head / a->hp.n_head_kv;
    const size_t stride = (size_t)(2 + hd);
    const group *g = a->groups;
    size_t base = 0; /* the group holding the row: groups are few when any is split */
    for (;; g++) {
        if (g->n_parts < 2)
            continue;
        if (row < base + (size_t)g->nt * (size_t)a->hp.n_head)
            break;
        base += (size_t)g->nt * (size_t)a->hp.n_head;
    }
    const int rows = g->nt * a->hp.n_head, rows_h = g->nt * gqa, r = (int)(row - base);
    const float *first = a->part + (g->part + (size_t)r) * stride; /* chunk c: + c * rows */
    float mx = -INFINITY;
    for (int c = 0; c < g->n_parts; c++)
        mx = KS_MAX(mx, first[(size_t)c * rows * stride]);
    const int kvh = r / rows_h, ti = (r % rows_h) / gqa, e = r % gqa;
    float *o = at->out + ((size_t)(g->t0 + ti) * a->hp.n_head + (size_t)(kvh * gqa + e)) * hd;
    float l = 0.0f;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int c = 0; c < g->n_parts; c++) {
        const float *pc = first + (size_t)c * rows * stride;
        if (pc[1] == 0.0f) /* the row saw no position of this chunk */
            continue;
        const float w = expf(pc[0] - mx);
        l += w * pc[1];
        for (int i = 0; i < hd; i++)
            o[i] += w * pc[2 + i];
    }
    const float inv = 1.0f / l;
    for (int i = 0; i < hd; i++)
        o[i] *= inv;
}

static void merge_worker(void *arg, int ith, int nth) {
    attn_task *at = arg;
    long r0, r1;
    ks_split_range((long)at->n_merge_rows, ith, nth, &r0, &r1);
    for (long p = r0; p < r1; p++)
        merge_row(at, (size_t)p);
}

/* ---- run ------------------------------------------------------------------------------ */

void ks_attention_run(ks_attention *a, ks_threadpool *tp, uint8_t *kv_pool, const ks_batch *b,
                      int il, const float *q, float *out) {
    bool split;
    const int n_groups = plan_shared(a, b, plan_groups(a, b));
    attn_task at = {.a = a, .kv_pool = kv_pool, .b = b, .il = il, .q = q, .out = out};
    at.n_items = plan_items(a, n_groups, &split);
    atomic_init(&at.next, 0);
    ks_threadpool_run(tp, attn_worker, &at);
    if (split) {
        for (int i = 0; i < n_groups; i++)
            if (a->groups[i].n_parts > 1)
                at.n_merge_rows += (size_t)a->groups[i].nt * (size_t)a->hp.n_head;
        ks_threadpool_run(tp, merge_worker, &at);
    }
}

int ks_attention_shared_walks(const ks_attention *a, int *blocks) {
    *blocks = a->n_shared_blocks;
    return a->n_shared_walks;
}

/* ---- the K/V writes ------------------------------------------------------------------- */

/* One position's values (row_elems floats at vt) into slot `slot` of a block: the row at
 * once, or head by head into the heads' runs (v_heads). Q8_0 is rounded as llama.cpp's
 * CPU build stores its Q8_0 cache; its blocks of 32 lie within a head, so a row rounds to
 * the same bits either way. */
static void store_values(const ks_attention *a, uint8_t *kv_pool, int32_t blk, int il, int slot, const float *vt) {
    const ks_kv_layout *kv = &a->kv;
    const int parts = kv->v_heads ? a->hp.n_head_kv : 1;
    const int64_t n = kv->row_elems / parts;
    for (int h = 0; h < parts; h++) {
        uint8_t *d = ks_kv_v_head(kv, kv_pool, blk, il, slot, h);
        const float *src = vt + (size_t)h * (size_t)n;
        if (kv->kv_type == KS_TYPE_F32)
            memcpy(d, src, (size_t)n * sizeof(float));
        else if (kv->kv_type == KS_TYPE_F16)
            a->k->fp32_to_fp16_row(src, (ks_fp16 *)d, n);
        else
            a->k->quantize_act[KS_TYPE_Q8_0](src, d, n);
    }
}

void ks_attention_store_kv(ks_attention *a, uint8_t *kv_pool, const ks_batch *b, int il,
                           const float *k, const float *v) {
    const ks_kv_layout *kv = &a->kv;
    int B = kv->block_tokens;
    for (int t = 0; t < b->n_tokens; t++) {
        const ks_seq_view *sv = &b->seqs[b->seq[t]];
        int p = b->pos[t];
        int32_t blk = sv->block_table[p / B];
        const float *kt = k + (size_t)t * kv->row_elems;
        uint8_t *kd = ks_kv_k_row(kv, kv_pool, blk, il, p % B);
        store_values(a, kv_pool, blk, il, p % B, v + (size_t)t * kv->row_elems);
        switch (kv->kv_type) {
        case KS_TYPE_F32:
            memcpy(kd, kt, kv->row_bytes);
            break;
        case KS_TYPE_F16:
            if (!a->f16p) {
                a->k->fp32_to_fp16_row(kt, (ks_fp16 *)kd, kv->row_elems);
                break;
            }
            a->k->fp32_to_fp16_row(kt, a->k_row, kv->row_elems);
            for (int h = 0; h < a->hp.n_head_kv; h++)
                kv_f16_panel_put((ks_fp16 *)ks_kv_k_head(kv, kv_pool, blk, il, p % B, h), p % 16,
                                 (const ks_fp16 *)a->k_row + (size_t)h * a->hp.head_dim, a->hp.head_dim);
            break;
        default: /* Q8_0 rounded as llama.cpp's CPU build stores its Q8_0 cache */
            if (!a->q8p) {
                a->k->quantize_act[KS_TYPE_Q8_0](kt, kd, kv->row_elems);
                break;
            }
            a->k->quantize_act[KS_TYPE_Q8_0](kt, a->k_row, kv->row_elems);
            for (int h = 0; h < a->hp.n_head_kv; h++) {
                const int nb = a->hp.head_dim / KS_QK8_0;
                kv_q8_panel_put((kv_q8_panel *)ks_kv_k_head(kv, kv_pool, blk, il, p % B, h), p % 16,
                                (const ks_block_q8_0 *)a->k_row + (size_t)h * nb, nb);
            }
            break;
        }
    }
}
