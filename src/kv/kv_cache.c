/* kv_cache.c — prefix index and block policy over the pool and the disk tier (see
 * kv_cache.h).
 *
 * Divisions: keys (chained XXH3-128), the index (a chained hash table of entries, one
 * per known key, in RAM and/or on disk), eviction (leaf-first LRU over unreferenced
 * cached blocks), sequence operations (attach, reserve, commit, release), disk
 * bookkeeping (pending writes hold a block reference until the writer is done).
 *
 * Reference counting: the pool's refcount of a block counts its holders: each sequence
 * whose table holds it, the cache itself once it is published, and a pending disk write.
 * A published block is evictable when the cache's is its only reference. */
#include "kv/kv_cache.h"

#include "core/log.h"
#include "kv/kv_disk.h"
#include "kv/kv_pool.h"
#include "tensor/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define KS_KV_DEFAULT_DISK_BYTES (20ull << 30)   /* 20 GiB */
#define KS_KV_MAX_DEFAULT_RAM_BYTES (16ull << 30) /* 16 GiB */
#define KS_KV_MIN_RAM_BLOCKS 4                    /* a pool smaller than this cannot serve */

typedef struct entry {
    ks_kv_key key, parent;
    int32_t block;        /* RAM block, or -1 */
    int32_t next;         /* hash chain */
    int32_t ram_children; /* published children resident in RAM */
    uint8_t on_disk;
    uint8_t breakpoint;
    uint8_t used;
    uint64_t last_use;
} entry;

struct ks_kv_cache {
    ks_kv_layout layout;
    ks_kv_pool *pool;
    ks_kv_disk *disk;
    ks_kv_key seed;
    /* index */
    entry *entries;
    int32_t n_entries, cap_entries, free_entry;
    int32_t *buckets;
    uint32_t n_buckets;  /* power of two */
    int32_t *block_entry; /* (pool blocks) entry of a published RAM block, or -1 */
    uint64_t tick;
    int64_t pending_writes;
    uint64_t *done_tags;
    int32_t *block_tokens;  /* (pool blocks, B) token ids of published blocks, for the disk writer */
    int32_t *backlog;       /* (pool blocks) ring of published blocks waiting for a disk write slot */
    int32_t backlog_head, backlog_len;
    /* stats */
    uint64_t hits_ram, hits_disk, misses, evictions;
    int32_t n_published_ram;  /* RAM blocks that are published (block_entry >= 0) */
    int32_t *scratch_tokens;
    uint8_t *key_buf;       /* (16 + B * 4) bytes hashed into a key */
};

/* ---- keys ------------------------------------------------------------------------------ */

/* key = XXH3-128(parent key | the block's B token ids), through c->key_buf. */
static ks_kv_key key_of(ks_kv_cache *c, const ks_kv_key *parent, const int32_t *tokens) {
    size_t tb = (size_t)c->layout.block_tokens * sizeof(int32_t);
    memcpy(c->key_buf, parent->b, 16);
    memcpy(c->key_buf + 16, tokens, tb);
    XXH128_canonical_t h;
    XXH128_canonicalFromHash(&h, XXH3_128bits(c->key_buf, 16 + tb));
    ks_kv_key k;
    memcpy(k.b, h.digest, 16);
    return k;
}

static ks_kv_key seed_of(const uint8_t fingerprint[16], uint32_t kv_type, int B) {
    uint8_t buf[16 + 4 + 4 + 16];
    memcpy(buf, fingerprint, 16);
    memcpy(buf + 16, &kv_type, 4);
    memcpy(buf + 20, &B, 4);
    memcpy(buf + 24, "kvserve-kv-v1\0\0\0", 16);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(buf, sizeof buf));
    ks_kv_key k;
    memcpy(k.b, c.digest, 16);
    return k;
}

/* ---- index ------------------------------------------------------------------------------ */

static uint32_t bucket_of(const ks_kv_cache *c, const ks_kv_key *k) {
    uint32_t h;
    memcpy(&h, k->b, 4); /* keys are hashes already */
    return h & (c->n_buckets - 1);
}

static int32_t find(const ks_kv_cache *c, const ks_kv_key *k) {
    for (int32_t i = c->buckets[bucket_of(c, k)]; i >= 0; i = c->entries[i].next)
        if (ks_kv_key_eq(&c->entries[i].key, k))
            return i;
    return -1;
}

static void rehash(ks_kv_cache *c, uint32_t n_buckets) {
    free(c->buckets);
    c->n_buckets = n_buckets;
    c->buckets = ks_xmalloc(n_buckets * sizeof *c->buckets);
    for (uint32_t i = 0; i < n_buckets; i++)
        c->buckets[i] = -1;
    for (int32_t i = 0; i < c->n_entries; i++) {
        if (!c->entries[i].used)
            continue;
        uint32_t b = bucket_of(c, &c->entries[i].key);
        c->entries[i].next = c->buckets[b];
        c->buckets[b] = i;
    }
}

static int32_t insert(ks_kv_cache *c, const ks_kv_key *k, const ks_kv_key *parent) {
    int32_t i;
    if (c->free_entry >= 0) {
        i = c->free_entry;
        c->free_entry = c->entries[i].next;
    } else {
        if (c->n_entries == c->cap_entries) {
            c->cap_entries = c->cap_entries ? 2 * c->cap_entries : 1024;
            c->entries = ks_xrealloc(c->entries, (size_t)c->cap_entries * sizeof *c->entries);
        }
        i = c->n_entries++;
        if ((uint32_t)c->n_entries > c->n_buckets)
            rehash(c, c->n_buckets * 2);
    }
    entry *e = &c->entries[i];
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->parent = *parent;
    e->block = -1;
    e->used = 1;
    e->last_use = ++c->tick;
    uint32_t b = bucket_of(c, k);
    e->next = c->buckets[b];
    c->buckets[b] = i;
    return i;
}

static void remove_entry(ks_kv_cache *c, int32_t i) {
    uint32_t b = bucket_of(c, &c->entries[i].key);
    int32_t *link = &c->buckets[b];
    while (*link != i)
        link = &c->entries[*link].next;
    *link = c->entries[i].next;
    c->entries[i].used = 0;
    c->entries[i].next = c->free_entry;
    c->free_entry = i;
}

/* The parent's count of RAM-resident children changes as blocks come and go. */
static void parent_children(ks_kv_cache *c, const entry *e, int delta) {
    if (ks_kv_key_eq(&e->parent, &c->seed))
        return;
    int32_t p = find(c, &e->parent);
    if (p >= 0)
        c->entries[p].ram_children += delta;
}

/* ---- eviction ---------------------------------------------------------------------------- */

/* Frees one published, unreferenced RAM block: a leaf if there is one, non-breakpoint
 * before breakpoint, least recently used first. Returns false if none can go. */
static bool evict_one(ks_kv_cache *c) {
    int32_t n = ks_kv_pool_n_blocks(c->pool), best = -1;
    for (int32_t b = 0; b < n; b++) {
        int32_t ei = c->block_entry[b];
        if (ei < 0 || ks_kv_pool_refcount(c->pool, b) != 1)
            continue;
        const entry *e = &c->entries[ei];
        if (best < 0) {
            best = b;
            continue;
        }
        const entry *o = &c->entries[c->block_entry[best]];
        bool e_leaf = e->ram_children == 0, o_leaf = o->ram_children == 0;
        if (e_leaf != o_leaf) {
            if (e_leaf)
                best = b;
        } else if (e->breakpoint != o->breakpoint) {
            if (!e->breakpoint)
                best = b;
        } else if (e->last_use < o->last_use) {
            best = b;
        }
    }
    if (best < 0)
        return false;
    int32_t ei = c->block_entry[best];
    entry *e = &c->entries[ei];
    e->block = -1;
    c->block_entry[best] = -1;
    c->n_published_ram--;
    parent_children(c, e, -1);
    if (!e->on_disk)
        remove_entry(c, ei);
    ks_kv_pool_unref(c->pool, best);
    c->evictions++;
    return true;
}

static int32_t alloc_block(ks_kv_cache *c) {
    for (;;) {
        int32_t b = ks_kv_pool_alloc(c->pool);
        if (b >= 0)
            return b;
        ks_kv_cache_poll(c); /* finished disk writes may release blocks */
        b = ks_kv_pool_alloc(c->pool);
        if (b >= 0)
            return b;
        if (evict_one(c))
            continue;
        if (c->pending_writes == 0 && c->backlog_len == 0)
            return -1;
        /* Every unreferenced block is waiting for its disk write: wait for one. */
        struct timespec ts = {0, 200 * 1000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
}

static void seed_from_disk(void *ctx, const ks_kv_key *key, const ks_kv_key *parent, uint64_t last_use);
static void submit_backlog(ks_kv_cache *c);

/* ---- create / destroy ---------------------------------------------------------------------- */

void ks_kv_cache_params_default(ks_kv_cache_params *p) {
    memset(p, 0, sizeof *p);
    p->kv_type = KS_TYPE_F16;
    p->block_tokens = KS_KV_DEFAULT_BLOCK_TOKENS;
}

uint64_t ks_kv_cache_default_ram_bytes(void) {
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
                avail = kb * 1024ull;
        fclose(f);
    }
    if (avail == 0)
        avail = 4ull << 30;
    uint64_t half = avail / 2;
    return half < KS_KV_MAX_DEFAULT_RAM_BYTES ? half : KS_KV_MAX_DEFAULT_RAM_BYTES;
}

ks_status ks_kv_cache_create(ks_kv_cache **out, const ks_model *m, const ks_kv_cache_params *p,
                             ks_err *err) {
    ks_kv_cache *c = ks_xcalloc(1, sizeof *c);
    int B = p->block_tokens > 0 ? p->block_tokens : KS_KV_DEFAULT_BLOCK_TOKENS;
    ks_status s = ks_kv_layout_init(&c->layout, p->kv_type, B, m->hp.n_layer, m->hp.n_head_kv,
                                    m->hp.head_dim, err);
    if (s) {
        free(c);
        return s;
    }
    uint64_t ram = p->ram_bytes ? p->ram_bytes : ks_kv_cache_default_ram_bytes();
    uint64_t n_blocks = ram / c->layout.block_bytes;
    if (n_blocks < KS_KV_MIN_RAM_BLOCKS) {
        size_t block_bytes = c->layout.block_bytes;
        free(c);
        return KS_ERRF(err, KS_ERR_INVALID, "KV RAM budget of %llu bytes holds %llu blocks of %zu bytes; at least %d needed",
                       (unsigned long long)ram, (unsigned long long)n_blocks, block_bytes, KS_KV_MIN_RAM_BLOCKS);
    }
    if (n_blocks > INT32_MAX / 2)
        n_blocks = INT32_MAX / 2;
    if ((s = ks_kv_pool_create(&c->pool, &c->layout, (int32_t)n_blocks, err))) {
        free(c);
        return s;
    }
    c->seed = seed_of(m->fingerprint, ks_kv_layout_id(&c->layout), B); /* blocks of one layout only */
    c->free_entry = -1;
    rehash(c, 1024);
    c->block_entry = ks_xmalloc((size_t)n_blocks * sizeof *c->block_entry);
    for (uint64_t i = 0; i < n_blocks; i++)
        c->block_entry[i] = -1;
    c->done_tags = ks_xmalloc(256 * sizeof *c->done_tags);
    c->scratch_tokens = ks_xmalloc((size_t)B * sizeof *c->scratch_tokens);
    c->key_buf = ks_xmalloc(16 + (size_t)B * sizeof(int32_t));
    c->block_tokens = ks_xmalloc((size_t)n_blocks * (size_t)B * sizeof *c->block_tokens);
    c->backlog = ks_xmalloc((size_t)n_blocks * sizeof *c->backlog);
    if (p->disk_dir) {
        ks_kv_disk_params dp = {0};
        dp.dir = p->disk_dir;
        dp.budget_bytes = p->disk_bytes ? p->disk_bytes : KS_KV_DEFAULT_DISK_BYTES;
        memcpy(dp.fingerprint, m->fingerprint, 16);
        dp.kv_type = ks_kv_layout_id(&c->layout);
        dp.block_tokens = B;
        dp.n_layer = c->layout.n_layer;
        dp.row_bytes = c->layout.row_bytes;
        dp.block_bytes = c->layout.block_bytes;
        /* each queued write pins a RAM block: a quarter of the pool at most */
        dp.queue_depth = (int)KS_MAX(1, KS_MIN(256, (int64_t)n_blocks / 4));
        ks_err derr;
        ks_err_clear(&derr);
        if (ks_kv_disk_open(&c->disk, &dp, &derr) != KS_OK) {
            KS_LOGW("KV disk tier off: %s", derr.msg);
            c->disk = NULL;
        } else {
            ks_kv_disk_foreach(c->disk, seed_from_disk, c);
        }
    }
    *out = c;
    return KS_OK;
}

void ks_kv_cache_destroy(ks_kv_cache *c) {
    if (!c)
        return;
    ks_kv_cache_flush(c);
    ks_kv_disk_close(c->disk);
    ks_kv_pool_destroy(c->pool);
    free(c->entries);
    free(c->buckets);
    free(c->block_entry);
    free(c->done_tags);
    free(c->scratch_tokens);
    free(c->block_tokens);
    free(c->backlog);
    free(c->key_buf);
    free(c);
}

const ks_kv_layout *ks_kv_cache_layout(const ks_kv_cache *c) { return &c->layout; }
uint8_t *ks_kv_cache_pool_base(const ks_kv_cache *c) { return ks_kv_pool_base(c->pool); }
int32_t ks_kv_cache_pool_blocks(const ks_kv_cache *c) { return ks_kv_pool_n_blocks(c->pool); }

/* ---- sequences ------------------------------------------------------------------------------ */

void ks_kv_seq_init(ks_kv_seq *s) { memset(s, 0, sizeof *s); }

void ks_kv_seq_deinit(ks_kv_seq *s) {
    free(s->blocks);
    free(s->keys);
    memset(s, 0, sizeof *s);
}

static void seq_push(ks_kv_seq *s, int32_t block) {
    if (s->n_blocks == s->cap_blocks) {
        s->cap_blocks = s->cap_blocks ? 2 * s->cap_blocks : 64;
        s->blocks = ks_xrealloc(s->blocks, (size_t)s->cap_blocks * sizeof *s->blocks);
        s->keys = ks_xrealloc(s->keys, (size_t)s->cap_blocks * sizeof *s->keys);
    }
    s->blocks[s->n_blocks++] = block;
}

/* Publishes RAM block b under entry ei (the cache takes its reference). Publishing is a
 * use: an entry seeded from disk carries a file time, not a tick, until then. */
static void publish_ram(ks_kv_cache *c, int32_t ei, int32_t b) {
    entry *e = &c->entries[ei];
    e->block = b;
    e->last_use = ++c->tick;
    c->block_entry[b] = ei;
    c->n_published_ram++;
    ks_kv_pool_ref(c->pool, b);
    parent_children(c, e, +1);
}

/* Reads entry ei's block back from disk into a fresh RAM block; -1 if it cannot. */
static int32_t load_from_disk(ks_kv_cache *c, int32_t ei, const int32_t *expect_tokens) {
    entry *e = &c->entries[ei];
    if (!c->disk || !ks_kv_disk_has(c->disk, &e->key))
        return -1;
    int32_t b = alloc_block(c);
    if (b < 0)
        return -1;
    uint8_t *dst = ks_kv_pool_base(c->pool) + (size_t)b * c->layout.block_bytes;
    ks_err err;
    ks_err_clear(&err);
    ks_status s = ks_kv_disk_read(c->disk, &e->key, c->scratch_tokens, dst, &err);
    if (s == KS_OK && memcmp(c->scratch_tokens, expect_tokens, (size_t)c->layout.block_tokens * 4) != 0)
        s = KS_ERR_CORRUPT; /* a key collision or a lying file: never use it */
    if (s != KS_OK) {
        KS_LOGD("KV disk block unusable: %s", err.msg);
        ks_kv_pool_unref(c->pool, b);
        return -1;
    }
    publish_ram(c, ei, b);
    ks_kv_pool_unref(c->pool, b); /* the allocation's reference: the cache's replaces it */
    return b;
}

ks_status ks_kv_cache_attach(ks_kv_cache *c, ks_kv_seq *s, const int32_t *prompt, int n,
                             ks_kv_usage *usage, ks_err *err) {
    KS_ASSERT(s->n_blocks == 0 && s->n_tokens == 0);
    int B = c->layout.block_tokens;
    memset(usage, 0, sizeof *usage);
    usage->prompt_tokens = n;
    if (n < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "empty prompt");
    /* Blocks wholly before the last token: that one is always computed (it yields the
     * logits), so a prompt of exactly k*B tokens reuses k-1 blocks. */
    int max_blocks = (n - 1) / B;
    ks_kv_key parent = c->seed;
    for (int i = 0; i < max_blocks; i++) {
        ks_kv_key k = key_of(c, &parent, prompt + (size_t)i * B);
        int32_t ei = find(c, &k);
        if (ei < 0)
            break;
        entry *e = &c->entries[ei];
        int32_t b = e->block;
        if (b >= 0) {
            ks_kv_pool_ref(c->pool, b);
            usage->cached_ram_tokens += B;
            c->hits_ram++;
        } else {
            b = load_from_disk(c, ei, prompt + (size_t)i * B);
            if (b < 0) {
                e = &c->entries[ei];
                e->on_disk = 0;
                if (e->block < 0)
                    remove_entry(c, ei);
                break;
            }
            ks_kv_pool_ref(c->pool, b);
            usage->cached_disk_tokens += B;
            c->hits_disk++;
        }
        c->entries[ei].last_use = ++c->tick;
        seq_push(s, b);
        s->keys[i] = k;
        s->n_published = i + 1;
        s->n_tokens = (i + 1) * B;
        parent = k;
    }
    if (s->n_published < max_blocks)
        c->misses += (uint64_t)(max_blocks - s->n_published);
    return KS_OK;
}

int ks_kv_cache_extend(ks_kv_cache *c, ks_kv_seq *s, const int32_t *tokens, int n) {
    const int B = c->layout.block_tokens, max_blocks = (n - 1) / B;
    if (s->n_tokens != s->n_published * B)
        return 0; /* positions of an unpublished block computed: it goes on by itself */
    int taken = 0;
    for (int i = s->n_published; i < max_blocks; i++) {
        ks_kv_key parent = i == 0 ? c->seed : s->keys[i - 1];
        ks_kv_key k = key_of(c, &parent, tokens + (size_t)i * B);
        int32_t ei = find(c, &k);
        if (ei < 0 || c->entries[ei].block < 0)
            break;
        int32_t b = c->entries[ei].block;
        ks_kv_pool_ref(c->pool, b);
        if (i < s->n_blocks) {
            ks_kv_pool_unref(c->pool, s->blocks[i]); /* reserved, nothing written */
            s->blocks[i] = b;
        } else {
            seq_push(s, b);
        }
        c->entries[ei].last_use = ++c->tick;
        c->hits_ram++;
        if (c->misses > 0) /* attach counted it missing */
            c->misses--;
        s->keys[i] = k;
        s->n_published = i + 1;
        s->n_tokens = (i + 1) * B;
        taken += B;
    }
    return taken;
}

bool ks_kv_cache_same_next_block(const ks_kv_cache *c, const ks_kv_seq *lead, const int32_t *lead_tokens,
                                 int lead_n, const ks_kv_seq *s, const int32_t *tokens, int n) {
    const int B = c->layout.block_tokens, i = s->n_published;
    if (s->n_tokens != i * B || i >= (n - 1) / B)
        return false;
    if (lead->n_published != i || (i + 1) * B > lead_n || lead->n_tokens >= lead_n)
        return false;
    if (i > 0 && !ks_kv_key_eq(&lead->keys[i - 1], &s->keys[i - 1]))
        return false;
    return memcmp(lead_tokens + (size_t)i * B, tokens + (size_t)i * B, (size_t)B * sizeof *tokens) == 0;
}

ks_status ks_kv_cache_reserve(ks_kv_cache *c, ks_kv_seq *s, int n_tokens, ks_err *err) {
    int B = c->layout.block_tokens;
    while (s->n_blocks * B < n_tokens) {
        int32_t b = alloc_block(c);
        if (b < 0)
            return KS_ERRF(err, KS_ERR_FULL, "KV cache full: all %d blocks are in use by running sequences",
                           ks_kv_pool_n_blocks(c->pool));
        seq_push(s, b);
    }
    return KS_OK;
}

void ks_kv_cache_commit(ks_kv_cache *c, ks_kv_seq *s, const int32_t *tokens, int n, ks_kv_usage *usage) {
    int B = c->layout.block_tokens;
    KS_ASSERT(n <= s->n_blocks * B);
    s->n_tokens = n;
    int full = n / B;
    for (int i = s->n_published; i < full; i++) {
        ks_kv_key parent = i == 0 ? c->seed : s->keys[i - 1];
        ks_kv_key k = key_of(c, &parent, tokens + (size_t)i * B);
        s->keys[i] = k;
        s->n_published = i + 1;
        int32_t b = s->blocks[i];
        int32_t ei = find(c, &k);
        if (ei >= 0 && c->entries[ei].block >= 0) {
            /* Someone published the same content meanwhile: keep ours private. */
            c->entries[ei].last_use = ++c->tick;
            continue;
        }
        if (ei < 0)
            ei = insert(c, &k, &parent);
        publish_ram(c, ei, b);
        if (usage)
            usage->new_cached_tokens += B;
        if (c->disk && !c->entries[ei].on_disk) {
            memcpy(c->block_tokens + (size_t)b * B, tokens + (size_t)i * B, (size_t)B * sizeof *tokens);
            ks_kv_pool_ref(c->pool, b); /* held until the block is on disk */
            c->backlog[(c->backlog_head + c->backlog_len) % ks_kv_pool_n_blocks(c->pool)] = b;
            c->backlog_len++;
        }
    }
    submit_backlog(c);
}

void ks_kv_cache_mark_breakpoint(ks_kv_cache *c, const ks_kv_seq *s, int pos) {
    int i = (pos - 1) / c->layout.block_tokens;
    if (pos < 1 || i >= s->n_published)
        return;
    int32_t ei = find(c, &s->keys[i]);
    if (ei >= 0)
        c->entries[ei].breakpoint = 1;
}

void ks_kv_cache_release(ks_kv_cache *c, ks_kv_seq *s) {
    for (int i = 0; i < s->n_blocks; i++)
        ks_kv_pool_unref(c->pool, s->blocks[i]);
    s->n_blocks = 0;
    s->n_tokens = 0;
    s->n_published = 0;
}

/* ---- disk bookkeeping ------------------------------------------------------------------------ */

/* Hands published blocks to the disk writer while it has queue slots. A block keeps the
 * reference taken at publication until its write finishes (or is refused). */
static void submit_backlog(ks_kv_cache *c) {
    int32_t n_pool = ks_kv_pool_n_blocks(c->pool);
    int B = c->layout.block_tokens;
    while (c->disk && c->backlog_len > 0) {
        int32_t b = c->backlog[c->backlog_head];
        int32_t ei = c->block_entry[b];
        if (ei >= 0 && !c->entries[ei].on_disk) {
            const entry *e = &c->entries[ei];
            const uint8_t *payload = ks_kv_pool_base(c->pool) + (size_t)b * c->layout.block_bytes;
            /* a first block's file says "no parent" (zero), not the seed */
            const ks_kv_key *parent = ks_kv_key_eq(&e->parent, &c->seed) ? NULL : &e->parent;
            ks_status s = ks_kv_disk_write_async(c->disk, &e->key, parent, c->block_tokens + (size_t)b * B,
                                                 payload, (uint64_t)b);
            if (s == KS_ERR_FULL)
                return; /* queue full: retry at the next poll */
            if (s == KS_OK) {
                c->pending_writes++;
            } else {
                ks_kv_pool_unref(c->pool, b); /* tier off or refused: the block stays RAM-only */
            }
        } else {
            ks_kv_pool_unref(c->pool, b);
        }
        c->backlog_head = (c->backlog_head + 1) % n_pool;
        c->backlog_len--;
    }
}

void ks_kv_cache_poll(ks_kv_cache *c) {
    if (!c->disk)
        return;
    int n;
    while ((n = ks_kv_disk_poll_done(c->disk, c->done_tags, 256)) > 0) {
        for (int i = 0; i < n; i++) {
            int32_t b = (int32_t)c->done_tags[i];
            int32_t ei = c->block_entry[b];
            if (ei >= 0)
                c->entries[ei].on_disk = (uint8_t)ks_kv_disk_has(c->disk, &c->entries[ei].key);
            ks_kv_pool_unref(c->pool, b);
            c->pending_writes--;
        }
    }
    submit_backlog(c);
}

void ks_kv_cache_flush(ks_kv_cache *c) {
    while (c->disk && (c->pending_writes > 0 || c->backlog_len > 0)) {
        ks_kv_cache_poll(c);
        if (c->pending_writes > 0 || c->backlog_len > 0) {
            struct timespec ts = {0, 1000 * 1000}; /* 1 ms */
            nanosleep(&ts, NULL);
        }
    }
}

static void seed_from_disk(void *ctx, const ks_kv_key *key, const ks_kv_key *parent, uint64_t last_use) {
    ks_kv_cache *c = ctx;
    if (find(c, key) >= 0)
        return;
    int32_t ei = insert(c, key, ks_kv_key_is_zero(parent) ? &c->seed : parent);
    c->entries[ei].on_disk = 1;
    c->entries[ei].last_use = last_use;
}

void ks_kv_cache_stats_get(ks_kv_cache *c, ks_kv_cache_stats *out) {
    memset(out, 0, sizeof *out);
    out->pool_blocks = ks_kv_pool_n_blocks(c->pool);
    out->free_blocks = ks_kv_pool_n_free(c->pool);
    out->cached_blocks = c->n_published_ram;
    /* the rest are private: held by running sequences and not (yet) full */
    out->referenced_blocks = out->pool_blocks - out->free_blocks - out->cached_blocks;
    out->hits_ram_blocks = c->hits_ram;
    out->hits_disk_blocks = c->hits_disk;
    out->misses_blocks = c->misses;
    out->evictions = c->evictions;
    if (c->disk) {
        ks_kv_disk_stats ds;
        ks_kv_disk_stats_get(c->disk, &ds);
        out->disk_enabled = ds.enabled;
        out->disk_files = ds.files;
        out->disk_bytes = ds.bytes;
        out->disk_corrupt_skipped = ds.corrupt_skipped;
    }
}
