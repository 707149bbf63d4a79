/* test_kv_cache.c — the prefix cache end to end over a real model (fixture mini models):
 * hits in RAM and from disk, shared prefixes (also taken while another prompt computes
 * them), leaf-first eviction under a small RAM
 * budget, breakpoints kept longest, corrupt disk blocks recomputed, and logits after a
 * hit equal to a cold computation (F32 KV: the greedy continuation is identical). */
#include "engine/runner.h"
#include "kv/kv_cache.h"
#include "kv/kv_disk.h"
#include "model/model.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 16

static ks_model *load(const char *rel) {
    ks_model *m = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&m, ks_test_fixture(rel), &err), KS_OK, "%s", err.msg);
    return m;
}

static ks_runner *runner(const ks_model *m, const char *dir, uint64_t ram_blocks) {
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_threads = 2;
    p.n_ctx = 512;
    p.kv.kv_type = KS_TYPE_F32;
    p.kv.block_tokens = B;
    p.kv.disk_dir = dir;
    if (ram_blocks) {
        ks_kv_layout l;
        ks_kv_layout_init(&l, KS_TYPE_F32, B, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, NULL);
        p.kv.ram_bytes = ram_blocks * l.block_bytes;
    }
    ks_runner *r = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_runner_create(&r, m, &p, &err), KS_OK, "%s", err.msg);
    return r;
}

static void prompt_of(int32_t *t, int n, int salt) {
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)((i * 7919 + salt * 104729) % 4000 + 10);
}

/* Starts on the prompt and greedily generates n_gen tokens. */
static void greedy(ks_runner *r, const ks_model *m, const int32_t *prompt, int n, int n_gen, int32_t *out,
                   float *first_logits, ks_kv_usage *u) {
    int V = m->hp.n_vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_runner_start(r, prompt, n, logits, u, &err), KS_OK, "%s", err.msg);
    if (first_logits)
        memcpy(first_logits, logits, (size_t)V * sizeof(float));
    for (int g = 0; g < n_gen; g++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best])
                best = i;
        out[g] = best;
        cr_assert_eq(ks_runner_eval(r, &out[g], 1, false, logits, &err), KS_OK, "%s", err.msg);
    }
    free(logits);
}

Test(kv_cache, test_kv_cache_follow_up_reuses_prefix_in_ram) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    ks_runner *r = runner(m, NULL, 0);
    int32_t p[200];
    prompt_of(p, 200, 1);
    ks_kv_usage u;
    int32_t gen[4];
    greedy(r, m, p, 120, 4, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens + u.cached_disk_tokens, 0);
    cr_assert_eq(u.computed_tokens, 120);
    cr_assert_eq(u.new_cached_tokens, 112, "7 full blocks of 16 published, got %d", u.new_cached_tokens);
    /* follow-up: same 120 + 80 more */
    greedy(r, m, p, 200, 4, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens, 112);
    cr_assert_eq(u.computed_tokens, 88);
    /* the exact same prompt again: all but the block holding the last token */
    greedy(r, m, p, 192, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens, 176, "a 12-block prompt reuses 11 blocks, got %d", u.cached_ram_tokens);
    cr_assert_eq(u.computed_tokens, 16);
    ks_runner_destroy(r);
    ks_model_close(m);
}

Test(kv_cache, test_kv_cache_hit_gives_cold_logits_and_greedy_continuation) {
    ks_model *m = load("models/mini-qwen3moe-q8_0.gguf");
    int V = m->hp.n_vocab;
    int32_t p[150];
    prompt_of(p, 150, 2);
    float *cold = malloc((size_t)V * sizeof(float)), *warm = malloc((size_t)V * sizeof(float));
    int32_t gen_cold[12], gen_warm[12];
    ks_kv_usage u;
    ks_runner *r = runner(m, NULL, 0);
    greedy(r, m, p, 150, 12, gen_cold, cold, &u);
    cr_assert_eq(u.computed_tokens, 150);
    greedy(r, m, p, 150, 12, gen_warm, warm, &u);
    cr_assert_eq(u.cached_ram_tokens, 144);
    cr_assert_eq(memcmp(cold, warm, (size_t)V * sizeof(float)), 0, "logits after a RAM hit differ from cold");
    cr_assert_eq(memcmp(gen_cold, gen_warm, sizeof gen_cold), 0, "greedy continuation differs");
    ks_runner_destroy(r);
    free(cold);
    free(warm);
    ks_model_close(m);
}

static int count_files(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[2048];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *dd = opendir(sub);
        if (dd) {
            closedir(dd);
            n += count_files(sub);
        } else {
            n++;
        }
    }
    closedir(d);
    return n;
}

Test(kv_cache, test_kv_cache_disk_tier_serves_a_fresh_process) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int V = m->hp.n_vocab;
    int32_t p[300];
    prompt_of(p, 300, 3);
    float *cold = malloc((size_t)V * sizeof(float)), *warm = malloc((size_t)V * sizeof(float));
    int32_t gen_cold[8], gen_warm[8];
    ks_kv_usage u;
    ks_runner *r = runner(m, dir, 0);
    greedy(r, m, p, 300, 8, gen_cold, cold, &u);
    ks_runner_destroy(r); /* flushes the disk tier */
    cr_assert_geq(count_files(dir), 18, "18 full blocks written, found %d files", count_files(dir));

    r = runner(m, dir, 0); /* a new cache: RAM empty, index rebuilt from disk */
    greedy(r, m, p, 300, 8, gen_warm, warm, &u);
    cr_assert_eq(u.cached_ram_tokens, 0);
    cr_assert_eq(u.cached_disk_tokens, 288, "got %d from disk", u.cached_disk_tokens);
    cr_assert_eq(u.computed_tokens, 12);
    cr_assert_eq(memcmp(cold, warm, (size_t)V * sizeof(float)), 0, "logits after a disk hit differ from cold");
    cr_assert_eq(memcmp(gen_cold, gen_warm, sizeof gen_cold), 0);
    ks_runner_destroy(r);
    ks_test_rmtree(dir);
    free(dir);
    free(cold);
    free(warm);
    ks_model_close(m);
}

Test(kv_cache, test_kv_cache_small_ram_evicts_leaves_first_and_disk_fills_in) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    /* RAM for 20 blocks: a 160-token shared prefix (10 blocks), then two conversations
     * with 7 blocks of their own each do not fit together. */
    ks_runner *r = runner(m, dir, 20);
    int32_t a[260], b[260];
    prompt_of(a, 260, 4);
    memcpy(b, a, 160 * sizeof(int32_t));
    prompt_of(b + 160, 100, 5);
    int32_t gen[2];
    ks_kv_usage u;
    greedy(r, m, a, 260, 2, gen, NULL, &u);
    greedy(r, m, b, 260, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens, 160, "shared prefix from RAM, got %d", u.cached_ram_tokens);
    ks_kv_cache_flush(ks_runner_cache(r));
    /* Conversation a again: its tail blocks were evicted (leaves first), its prefix
     * stayed; the tail comes back from disk. */
    greedy(r, m, a, 260, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens + u.cached_disk_tokens, 256, "ram %d disk %d", u.cached_ram_tokens,
                 u.cached_disk_tokens);
    cr_assert_geq(u.cached_ram_tokens, 160, "the shared prefix stays in RAM, got %d", u.cached_ram_tokens);
    cr_assert_gt(u.cached_disk_tokens, 0);
    ks_kv_cache_stats st;
    ks_kv_cache_stats_get(ks_runner_cache(r), &st);
    cr_assert_gt(st.evictions, 0);
    ks_runner_destroy(r);
    ks_test_rmtree(dir);
    free(dir);
    ks_model_close(m);
}

Test(kv_cache, test_kv_cache_corrupt_disk_block_is_recomputed) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int V = m->hp.n_vocab;
    int32_t p[100];
    prompt_of(p, 100, 6);
    float *cold = malloc((size_t)V * sizeof(float)), *warm = malloc((size_t)V * sizeof(float));
    int32_t gen[2];
    ks_kv_usage u;
    ks_runner *r = runner(m, dir, 0);
    greedy(r, m, p, 100, 2, gen, cold, &u);
    ks_runner_destroy(r);
    /* flip one byte in the middle of every block file */
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "find '%s' -type f | while read f; do s=$(stat -c %%s \"$f\"); "
             "printf '\\xff' | dd of=\"$f\" bs=1 seek=$((s / 2)) conv=notrunc status=none; done", dir);
    cr_assert_eq(system(cmd), 0);
    r = runner(m, dir, 0);
    greedy(r, m, p, 100, 2, gen, warm, &u);
    cr_assert_eq(u.cached_disk_tokens, 0, "corrupt blocks must never load");
    cr_assert_eq(u.computed_tokens, 100);
    cr_assert_eq(memcmp(cold, warm, (size_t)V * sizeof(float)), 0);
    ks_kv_cache_stats st;
    ks_kv_cache_stats_get(ks_runner_cache(r), &st);
    cr_assert_geq(st.disk_corrupt_skipped, 1);
    ks_runner_destroy(r);
    ks_test_rmtree(dir);
    free(dir);
    free(cold);
    free(warm);
    ks_model_close(m);
}

/* Runs prompt p in a first process's worth of cache over dir (then flushed and gone) and
 * returns a fresh runner over the same directory: RAM empty, the index read from disk. */
static ks_runner *after_a_run(const ks_model *m, const char *dir, const int32_t *p, int n, uint64_t ram_blocks) {
    int32_t gen[2];
    ks_kv_usage u;
    ks_runner *r = runner(m, dir, 0);
    greedy(r, m, p, n, 2, gen, NULL, &u);
    ks_runner_destroy(r);
    return runner(m, dir, ram_blocks);
}

static void finish(ks_runner *r, ks_model *m, char *dir) {
    ks_runner_destroy(r);
    ks_test_rmtree(dir);
    free(dir);
    ks_model_close(m);
}

/* A block read back from disk is the cache's like any other once the sequence lets go:
 * it was once held twice (its allocation's reference was never dropped), so a small
 * pool filled with blocks nothing could evict and the next prompt failed (KV full). */
Test(kv_cache, test_kv_cache_blocks_read_from_disk_stay_evictable) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t a[260], b[260], gen[2];
    prompt_of(a, 260, 7);
    prompt_of(b, 260, 8);
    ks_kv_usage u;
    ks_runner *r = after_a_run(m, dir, a, 260, 20); /* a's 16 blocks from disk, then b's 17 */
    greedy(r, m, a, 260, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_disk_tokens, 256);
    ks_runner_reset(r);
    ks_kv_cache_flush(ks_runner_cache(r));
    ks_kv_cache_stats st;
    ks_kv_cache_stats_get(ks_runner_cache(r), &st);
    cr_assert_eq(st.referenced_blocks, 0, "%d blocks still referenced after release", st.referenced_blocks);
    greedy(r, m, b, 260, 2, gen, NULL, &u); /* asserts that the start succeeds */
    cr_assert_eq(u.computed_tokens, 260);
    finish(r, m, dir);
}

/* A block computed in this process whose entry came from disk (the block holding a
 * prompt's last token is always computed) competes in LRU order by when it was used,
 * not by its file's time (nanoseconds, which made it outlive every other block). */
Test(kv_cache, test_kv_cache_recomputed_disk_block_is_evicted_by_last_use) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t a[96], c[100], d[130], gen[2];
    prompt_of(a, 96, 9);
    prompt_of(c, 100, 10);
    prompt_of(d, 130, 11);
    ks_kv_usage u;
    ks_runner *r = after_a_run(m, dir, a, 96, 20);
    greedy(r, m, a, 96, 2, gen, NULL, &u); /* blocks 0-4 from disk, block 5 recomputed */
    cr_assert_eq(u.cached_disk_tokens, 80);
    greedy(r, m, c, 100, 2, gen, NULL, &u); /* 6 blocks, used after a's */
    ks_kv_cache_flush(ks_runner_cache(r));
    /* 12 blocks cached, 8 free; d needs 9: one leaf goes, a's (least recently used) */
    greedy(r, m, d, 130, 2, gen, NULL, &u);
    ks_kv_cache_stats st;
    ks_kv_cache_stats_get(ks_runner_cache(r), &st);
    cr_assert_eq(st.evictions, 1, "evictions %llu", (unsigned long long)st.evictions);
    greedy(r, m, c, 100, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_ram_tokens, 96, "c's leaf was evicted instead of a's: ram %d disk %d",
                 u.cached_ram_tokens, u.cached_disk_tokens);
    finish(r, m, dir);
}

static void count_roots(void *ctx, const ks_kv_file_info *f) {
    if (f->hdr && ks_kv_key_is_zero(&f->hdr->parent))
        (*(int *)ctx)++;
}

/* The file format says a first block's parent is zero; the cache's seed never reaches
 * a file, and a fresh process still finds the chain from its first block. */
Test(kv_cache, test_kv_cache_first_block_file_has_zero_parent) {
    char *dir = ks_test_mkdtemp();
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t a[100], gen[2];
    prompt_of(a, 100, 12);
    ks_kv_usage u;
    ks_runner *r = after_a_run(m, dir, a, 100, 0);
    int roots = 0;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_kv_disk_walk(dir, m->fingerprint, 0, count_roots, &roots, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(roots, 1, "%d files without a parent", roots);
    greedy(r, m, a, 100, 2, gen, NULL, &u);
    cr_assert_eq(u.cached_disk_tokens, 96);
    finish(r, m, dir);
}

/* Two prompts that begin with the same 4 blocks, started together (neither finds the
 * other's blocks at attach): the one behind takes the blocks the other publishes as it
 * goes, and is told when the other is computing the very block it needs next. */
Test(kv_cache, test_kv_cache_extend_takes_blocks_published_meanwhile) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    ks_kv_cache_params p;
    ks_kv_cache_params_default(&p);
    p.kv_type = KS_TYPE_F32;
    p.block_tokens = B;
    ks_kv_layout l;
    ks_kv_layout_init(&l, KS_TYPE_F32, B, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, NULL);
    p.ram_bytes = 32 * l.block_bytes;
    ks_kv_cache *c = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_kv_cache_create(&c, m, &p, &err), KS_OK, "%s", err.msg);
    enum { N = 100, SHARED = 4 * B };
    int32_t a[N], b[N];
    prompt_of(a, N, 3);
    prompt_of(b, N, 4);
    memcpy(b, a, SHARED * sizeof *b);
    ks_kv_seq sa, sb;
    ks_kv_seq_init(&sa);
    ks_kv_seq_init(&sb);
    ks_kv_usage u;
    cr_assert_eq(ks_kv_cache_attach(c, &sa, a, N, &u, &err), KS_OK);
    cr_assert_eq(ks_kv_cache_attach(c, &sb, b, N, &u, &err), KS_OK);
    cr_assert_eq(u.cached_ram_tokens, 0);
    cr_assert(ks_kv_cache_same_next_block(c, &sa, a, N, &sb, b, N), "both need block 0 next");
    /* a computes two blocks: b takes them */
    cr_assert_eq(ks_kv_cache_reserve(c, &sa, 2 * B, &err), KS_OK);
    ks_kv_cache_commit(c, &sa, a, 2 * B, NULL);
    cr_assert_not(ks_kv_cache_same_next_block(c, &sa, a, N, &sb, b, N), "a is past b's next block");
    cr_assert_eq(ks_kv_cache_extend(c, &sb, b, N), 2 * B);
    cr_assert_eq(sb.n_tokens, 2 * B);
    cr_assert_eq(memcmp(sb.blocks, sa.blocks, 2 * sizeof *sb.blocks), 0, "b reads a's blocks");
    cr_assert(ks_kv_cache_same_next_block(c, &sa, a, N, &sb, b, N), "both need block 2 next");
    /* a computes into block 4, where the prompts part: b takes blocks 2 and 3 only, and
     * gives back the block it had reserved for block 2 */
    cr_assert_eq(ks_kv_cache_reserve(c, &sb, 3 * B, &err), KS_OK);
    cr_assert_eq(ks_kv_cache_reserve(c, &sa, 5 * B, &err), KS_OK);
    ks_kv_cache_commit(c, &sa, a, 5 * B, NULL);
    cr_assert_eq(ks_kv_cache_extend(c, &sb, b, N), 2 * B);
    cr_assert_eq(sb.n_tokens, SHARED);
    cr_assert_eq(memcmp(sb.blocks, sa.blocks, 4 * sizeof *sb.blocks), 0);
    cr_assert_eq(ks_kv_cache_extend(c, &sb, b, N), 0, "block 4 is a's own");
    cr_assert_eq(ks_kv_cache_reserve(c, &sa, 5 * B + 3, &err), KS_OK);
    ks_kv_cache_commit(c, &sa, a, 5 * B + 3, NULL); /* b needs block 4 next: its own, not a's */
    cr_assert_not(ks_kv_cache_same_next_block(c, &sa, a, N, &sb, b, N));
    /* b computes half a block: it goes on by itself */
    cr_assert_eq(ks_kv_cache_reserve(c, &sb, SHARED + 8, &err), KS_OK);
    ks_kv_cache_commit(c, &sb, b, SHARED + 8, NULL);
    cr_assert_eq(ks_kv_cache_extend(c, &sb, b, N), 0);
    ks_kv_cache_stats st;
    ks_kv_cache_stats_get(c, &st);
    cr_assert_eq(st.hits_ram_blocks, 4, "the 4 blocks b took count as hits");
    ks_kv_cache_release(c, &sa);
    ks_kv_cache_release(c, &sb);
    ks_kv_seq_deinit(&sa);
    ks_kv_seq_deinit(&sb);
    ks_kv_cache_destroy(c);
    ks_model_close(m);
}
