/* test_kv_disk.c — the KV disk tier: round trips, the scan at open (and its speed), files
 * that fail a check, leaf-first LRU eviction, an unwritable directory, the bounded queue,
 * the model-free walk of `kvserve cache`, and the replay of the block fuzz corpus. */
#include "core/log.h"
#include "kv/kv_disk.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* A small geometry keeps thousands of files cheap: B 4, 2 layers, 16-byte rows. */
#define T_BLOCK_TOKENS 4
#define T_N_LAYER 2
#define T_ROW_BYTES 16
#define T_BLOCK_BYTES (2 * T_N_LAYER * T_BLOCK_TOKENS * T_ROW_BYTES)
#define T_FILE_BYTES (KS_KV_BLOCK_HEADER_BYTES + 4 * T_BLOCK_TOKENS + T_BLOCK_BYTES + 8)
#define T_KV_TYPE 1 /* F16 */

typedef struct tblock {
    ks_kv_key key, parent;
    int32_t tokens[T_BLOCK_TOKENS];
    uint8_t payload[T_BLOCK_BYTES];
} tblock;

static ks_kv_disk_params params(const char *dir, uint64_t budget) {
    ks_kv_disk_params p = {.dir = dir, .budget_bytes = budget, .kv_type = T_KV_TYPE,
                           .block_tokens = T_BLOCK_TOKENS, .n_layer = T_N_LAYER,
                           .row_bytes = T_ROW_BYTES, .block_bytes = T_BLOCK_BYTES};
    for (int i = 0; i < 16; i++)
        p.fingerprint[i] = (uint8_t)(0xa0 + i);
    return p;
}

static ks_kv_disk *open_ok(const ks_kv_disk_params *p) {
    ks_kv_disk *d = NULL;
    ks_err err;
    ks_err_clear(&err);
    ks_status s = ks_kv_disk_open(&d, p, &err);
    cr_assert_eq(s, KS_OK, "open: %s", err.msg);
    return d;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Block i of a chain (parent = previous block, zero for i == 0) with random content. */
static void make_block(tblock *b, uint64_t seed, const ks_kv_key *parent) {
    uint64_t s = seed * 0x9e3779b97f4a7c15u + 1;
    memset(b, 0, sizeof *b);
    if (parent)
        b->parent = *parent;
    for (int i = 0; i < T_BLOCK_TOKENS; i++)
        b->tokens[i] = (int32_t)(rng_next(&s) % 150000);
    for (int i = 0; i < T_BLOCK_BYTES; i++)
        b->payload[i] = (uint8_t)rng_next(&s);
    XXH128_hash_t h = XXH3_128bits_withSeed(b->tokens, sizeof b->tokens, rng_next(&s));
    memcpy(b->key.b, &h, 16);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until n tags came out (10 s at most); returns how many did. */
static int wait_done(ks_kv_disk *d, int n) {
    uint64_t tags[64];
    int got = 0;
    for (int spin = 0; got < n && spin < 10000; spin++) {
        int m = ks_kv_disk_poll_done(d, tags, 64);
        got += m;
        if (m == 0)
            sleep_ms(1);
    }
    return got;
}

static void write_all(ks_kv_disk *d, tblock *b, int n) {
    int queued = 0;
    for (int i = 0; i < n; i++) {
        ks_status s;
        while ((s = ks_kv_disk_write_async(d, &b[i].key, &b[i].parent, b[i].tokens, b[i].payload,
                                           (uint64_t)i)) == KS_ERR_FULL)
            queued -= wait_done(d, 1);
        cr_assert_eq(s, KS_OK, "write %d: status %d", i, (int)s);
        queued++;
    }
    cr_assert_eq(wait_done(d, queued), queued);
}

static void block_file(char *buf, size_t n, const char *dir, const ks_kv_key *key) {
    char hex[33];
    ks_kv_key_hex(key, hex);
    snprintf(buf, n, "%s/%.2s/%s.kvb", dir, hex, hex);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void expect_read(ks_kv_disk *d, const tblock *b) {
    int32_t tokens[T_BLOCK_TOKENS];
    uint8_t payload[T_BLOCK_BYTES];
    ks_err err;
    ks_err_clear(&err);
    ks_status s = ks_kv_disk_read(d, &b->key, tokens, payload, &err);
    cr_assert_eq(s, KS_OK, "read: %s", err.msg);
    cr_assert_arr_eq(tokens, b->tokens, sizeof tokens);
    cr_assert_arr_eq(payload, b->payload, sizeof payload);
}

Test(kv_disk, test_kv_disk_round_trip) {
    char *dir = ks_test_mkdtemp();
    char mdir[1024];
    snprintf(mdir, sizeof mdir, "%s/a/b/model", dir); /* created with its parents */
    ks_kv_disk_params p = params(mdir, 1u << 30);
    ks_kv_disk *d = open_ok(&p);
    enum { N = 40 };
    tblock *b = calloc(N, sizeof *b);
    for (int i = 0; i < N; i++)
        make_block(&b[i], (uint64_t)i, i % 10 ? &b[i - 1].key : NULL);
    write_all(d, b, N);
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.writes, N, "writes %llu", (unsigned long long)st.writes);
    cr_assert_eq(st.files, N);
    cr_assert_eq(st.bytes, (uint64_t)N * T_FILE_BYTES, "bytes %llu", (unsigned long long)st.bytes);
    cr_assert(st.enabled);
    for (int i = 0; i < N; i++) {
        cr_assert(ks_kv_disk_has(d, &b[i].key));
        expect_read(d, &b[i]);
        char path[1200];
        block_file(path, sizeof path, mdir, &b[i].key);
        struct stat fst;
        cr_assert_eq(stat(path, &fst), 0, "%s", path);
        cr_assert_eq(fst.st_size, T_FILE_BYTES);
    }
    tblock other;
    make_block(&other, 999, NULL);
    cr_assert_not(ks_kv_disk_has(d, &other.key));
    int32_t tokens[T_BLOCK_TOKENS];
    uint8_t payload[T_BLOCK_BYTES];
    cr_assert_eq(ks_kv_disk_read(d, &other.key, tokens, payload, NULL), KS_ERR_IO);

    /* Writing a block that is already on disk completes without writing. */
    cr_assert_eq(ks_kv_disk_write_async(d, &b[3].key, &b[3].parent, b[3].tokens, b[3].payload, 77),
                 KS_OK);
    uint64_t tag = 0;
    cr_assert_eq(ks_kv_disk_poll_done(d, &tag, 1), 1);
    cr_assert_eq(tag, 77);
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.writes, N);
    cr_assert_eq(st.reads, N);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[3].key, &b[3].key, b[3].tokens, b[3].payload, 1),
                 KS_ERR_INVALID);
    ks_kv_disk_close(d);
    free(b);
    ks_test_rmtree(dir);
    free(dir);
}

typedef struct seen {
    int n;
    int with_parent;
    uint64_t min_use;
} seen;

static void count_entry(void *ctx, const ks_kv_key *key, const ks_kv_key *parent, uint64_t last_use) {
    seen *s = ctx;
    (void)key;
    s->n++;
    s->with_parent += !ks_kv_key_is_zero(parent);
    if (!s->min_use || last_use < s->min_use)
        s->min_use = last_use;
}

Test(kv_disk, test_kv_disk_reopen_rebuilds_index_fast) {
    char *dir = ks_test_mkdtemp();
    ks_kv_disk_params p = params(dir, 1u << 30);
    ks_kv_disk *d = open_ok(&p);
    enum { N = 3000 };
    tblock *b = calloc(N, sizeof *b);
    for (int i = 0; i < N; i++)
        make_block(&b[i], (uint64_t)i + 1000, i % 30 ? &b[i - 1].key : NULL);
    write_all(d, b, N);
    ks_kv_disk_close(d);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    d = open_ok(&p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("kv_disk: scan of %d block files at open: %.1f ms\n", N, ms);
    cr_log_info("scan of %d block files at open: %.1f ms", N, ms);
    cr_assert_lt(ms, 1000.0, "scan took %.1f ms", ms);

    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.files, N, "files %llu", (unsigned long long)st.files);
    cr_assert_eq(st.corrupt_skipped, 0);
    seen s = {0};
    ks_kv_disk_foreach(d, count_entry, &s);
    cr_assert_eq(s.n, N);
    cr_assert_eq(s.with_parent, N - N / 30);
    cr_assert_gt(s.min_use, 1000000000000000000ull, "last_use is ns since the epoch");
    for (int i = 0; i < N; i += 97)
        expect_read(d, &b[i]);
    ks_kv_disk_close(d);
    free(b);
    ks_test_rmtree(dir);
    free(dir);
}

static void flip_byte(const char *path, long off) {
    size_t n = 0;
    uint8_t *buf = ks_test_read_file(path, &n);
    cr_assert_not_null(buf, "%s", path);
    buf[off < 0 ? (long)n + off : off] ^= 0x40;
    cr_assert_eq(ks_test_write_file(path, buf, n), 0);
    free(buf);
}

Test(kv_disk, test_kv_disk_bad_files_skipped_counted_removed) {
    char *dir = ks_test_mkdtemp();
    char mdir[1024], odir[1024];
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(odir, sizeof odir, "%s/other", dir);
    ks_kv_disk_params p = params(mdir, 1u << 30);
    enum { N = 10 };
    tblock b[N];
    for (int i = 0; i < N; i++)
        make_block(&b[i], (uint64_t)i + 50, NULL);
    ks_kv_disk *d = open_ok(&p);
    write_all(d, b, N);
    ks_kv_disk_close(d);
    /* The same blocks written by another model. */
    ks_kv_disk_params po = params(odir, 1u << 30);
    po.fingerprint[0] ^= 1;
    d = open_ok(&po);
    write_all(d, b, N);
    ks_kv_disk_close(d);

    char path[N][1200], opath[1200];
    for (int i = 0; i < N; i++)
        block_file(path[i], sizeof path[i], mdir, &b[i].key);
    flip_byte(path[0], -100);                 /* payload byte: found at read */
    flip_byte(path[1], 40);                   /* key byte: header checksum */
    flip_byte(path[2], 0);                    /* magic */
    cr_assert_eq(truncate(path[3], T_FILE_BYTES - 7), 0);
    block_file(opath, sizeof opath, odir, &b[4].key);
    cr_assert_eq(rename(opath, path[4]), 0);  /* another model's file */
    cr_assert_eq(unlink(path[5]), 0);
    cr_assert_eq(rename(path[6], path[5]), 0);/* renamed to another key */
    flip_byte(path[7], -1);                   /* the checksum itself: found at read */
    /* Temporary files of writes that died: a stale one goes, a fresh one stays. */
    char stale[1300], fresh[1300];
    snprintf(stale, sizeof stale, "%s.tmp.1.1", path[8]);
    snprintf(fresh, sizeof fresh, "%s.tmp.1.2", path[8]);
    cr_assert_eq(ks_test_write_file(stale, "half", 4), 0);
    cr_assert_eq(ks_test_write_file(fresh, "half", 4), 0);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, stale, old, 0), 0);

    d = open_ok(&p);
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.corrupt_skipped, 5, "corrupt at scan %llu", (unsigned long long)st.corrupt_skipped);
    cr_assert_eq(st.files, 4, "files %llu", (unsigned long long)st.files);
    for (int i = 1; i <= 5; i++) {
        cr_assert_not(ks_kv_disk_has(d, &b[i].key), "block %d indexed", i);
        cr_assert_not(exists(path[i]), "%s not removed", path[i]);
    }
    cr_assert_not(exists(stale));
    cr_assert(exists(fresh));
    cr_assert_not(ks_kv_disk_has(d, &b[6].key));

    int32_t tokens[T_BLOCK_TOKENS];
    uint8_t payload[T_BLOCK_BYTES];
    int32_t untouched[T_BLOCK_TOKENS] = {-5, -5, -5, -5};
    memcpy(tokens, untouched, sizeof tokens);
    int bad[] = {0, 7};
    for (size_t k = 0; k < 2; k++) {
        int i = bad[k];
        ks_err err;
        ks_err_clear(&err);
        cr_assert(ks_kv_disk_has(d, &b[i].key));
        cr_assert_eq(ks_kv_disk_read(d, &b[i].key, tokens, payload, &err), KS_ERR_CORRUPT);
        cr_assert(strstr(err.msg, "checksum"), "message: %s", err.msg);
        cr_assert_arr_eq(tokens, untouched, sizeof tokens);
        cr_assert_not(ks_kv_disk_has(d, &b[i].key));
        cr_assert_not(exists(path[i]));
    }
    expect_read(d, &b[8]);
    expect_read(d, &b[9]);
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.corrupt_skipped, 7);
    cr_assert_eq(st.files, 2);
    cr_assert_eq(st.bytes, 2 * T_FILE_BYTES);

    /* A file removed behind the index's back is a miss, not a crash. */
    cr_assert_eq(unlink(path[9]), 0);
    cr_assert_eq(ks_kv_disk_read(d, &b[9].key, tokens, payload, NULL), KS_ERR_IO);
    cr_assert_not(ks_kv_disk_has(d, &b[9].key));
    ks_kv_disk_close(d);
    ks_test_rmtree(dir);
    free(dir);
}

/* Writes one block and waits for it, so that each file's last use is distinct. */
static void write_one(ks_kv_disk *d, tblock *b) {
    cr_assert_eq(ks_kv_disk_write_async(d, &b->key, &b->parent, b->tokens, b->payload, 0), KS_OK);
    cr_assert_eq(wait_done(d, 1), 1);
    sleep_ms(20); /* file mtimes tick with the kernel's coarse clock (up to ~10 ms) */
}

Test(kv_disk, test_kv_disk_budget_evicts_leaf_first_lru) {
    char *dir = ks_test_mkdtemp();
    ks_kv_disk_params p = params(dir, 4 * T_FILE_BYTES);
    ks_kv_disk *d = open_ok(&p);
    /* A <- B <- C (a chain), X, then Y and Z: every write past four files evicts one. */
    tblock a, bb, c, x, y, z, w;
    make_block(&a, 1, NULL);
    make_block(&bb, 2, &a.key);
    make_block(&c, 3, &bb.key);
    make_block(&x, 4, NULL);
    make_block(&y, 5, NULL);
    make_block(&z, 6, NULL);
    make_block(&w, 7, &x.key);
    write_one(d, &a);
    write_one(d, &bb);
    write_one(d, &c);
    write_one(d, &x);
    write_one(d, &y); /* leaves C (older) and X: C goes, though A is the oldest file */
    cr_assert(ks_kv_disk_has(d, &a.key) && ks_kv_disk_has(d, &bb.key));
    cr_assert_not(ks_kv_disk_has(d, &c.key));
    expect_read(d, &bb); /* a read is a use: B is now newer than X */
    sleep_ms(20);
    write_one(d, &z);    /* leaves B, X, Y: X is the least recently used */
    cr_assert_not(ks_kv_disk_has(d, &x.key));
    cr_assert(ks_kv_disk_has(d, &bb.key) && ks_kv_disk_has(d, &y.key));
    write_one(d, &w);    /* leaves B, Y, Z (W's parent X is gone): Y goes */
    cr_assert_not(ks_kv_disk_has(d, &y.key));
    write_one(d, &c);    /* C's parent B is no longer a leaf: Z, then... only one needed */
    cr_assert_not(ks_kv_disk_has(d, &z.key));
    cr_assert(ks_kv_disk_has(d, &a.key) && ks_kv_disk_has(d, &bb.key) && ks_kv_disk_has(d, &c.key) &&
              ks_kv_disk_has(d, &w.key));
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.evicted, 4);
    cr_assert_eq(st.files, 4);
    ks_kv_disk_close(d);

    /* Evicted files are gone from disk; a smaller budget at open evicts leaf-first. */
    char path[1200];
    block_file(path, sizeof path, dir, &y.key);
    cr_assert_not(exists(path));
    p.budget_bytes = 2 * T_FILE_BYTES;
    d = open_ok(&p);
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.files, 2);
    cr_assert(ks_kv_disk_has(d, &a.key) && ks_kv_disk_has(d, &bb.key), "the chain's root stays");
    ks_kv_disk_close(d);

    /* A budget held by writes in flight refuses more. */
    p.budget_bytes = T_FILE_BYTES;
    d = open_ok(&p);
    cr_assert_eq(ks_kv_disk_write_async(d, &c.key, &c.parent, c.tokens, c.payload, 0), KS_OK);
    tblock e;
    make_block(&e, 8, &c.key);
    cr_assert_eq(ks_kv_disk_write_async(d, &e.key, &e.parent, e.tokens, e.payload, 0), KS_ERR_FULL);
    cr_assert_eq(wait_done(d, 1), 1);
    ks_kv_disk_close(d);
    ks_test_rmtree(dir);
    free(dir);
}

static int count_warnings(FILE *log) {
    fflush(log);
    rewind(log);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, log))
        n += strstr(line, "warn") != NULL;
    return n;
}

Test(kv_disk, test_kv_disk_unwritable_dir_turns_tier_off_once) {
    char *dir = ks_test_mkdtemp();
    char file[1024], mdir[1100];
    snprintf(file, sizeof file, "%s/file", dir);
    cr_assert_eq(ks_test_write_file(file, "x", 1), 0);
    snprintf(mdir, sizeof mdir, "%s/model", file); /* under a regular file: never writable */
    FILE *log = tmpfile();
    ks_log_set_file(log);
    ks_kv_disk_params p = params(mdir, 1u << 20);
    ks_kv_disk *d = open_ok(&p);
    tblock b[3];
    for (int i = 0; i < 3; i++)
        make_block(&b[i], (uint64_t)i, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ks_kv_disk_write_async(d, &b[i].key, NULL, b[i].tokens, b[i].payload, 0),
                     KS_ERR_IO);
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_not(st.enabled);
    cr_assert_not(ks_kv_disk_has(d, &b[0].key));
    uint64_t tag;
    cr_assert_eq(ks_kv_disk_poll_done(d, &tag, 1), 0);
    ks_kv_disk_close(d);
    cr_assert_eq(count_warnings(log), 1);
    ks_log_set_file(NULL);
    fclose(log);

    /* The tier as a whole can be off: no directory, no budget, or a budget smaller than
     * one file (a write could never fit). */
    char small[1100];
    snprintf(small, sizeof small, "%s/small", dir);
    ks_kv_disk_params off[3] = {params(NULL, 1u << 20), params(small, 0),
                                params(small, T_FILE_BYTES - 1)};
    for (int i = 0; i < 3; i++) {
        d = open_ok(&off[i]);
        cr_assert_eq(ks_kv_disk_write_async(d, &b[0].key, NULL, b[0].tokens, b[0].payload, 0),
                     KS_ERR_IO, "case %d", i);
        ks_kv_disk_stats_get(d, &st);
        cr_assert_not(st.enabled, "case %d", i);
        ks_kv_disk_close(d);
    }

    /* chmod only stops writes for a user without CAP_DAC_OVERRIDE. */
    if (geteuid() != 0) {
        char ro[1100];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        cr_assert_eq(mkdir(ro, 0500), 0);
        p = params(ro, 1u << 20);
        d = open_ok(&p);
        ks_kv_disk_stats_get(d, &st);
        cr_assert_not(st.enabled);
        ks_kv_disk_close(d);
        chmod(ro, 0700);
    } else {
        cr_log_info("running as root: the chmod 0500 case is skipped");
    }
    ks_test_rmtree(dir);
    free(dir);
}

Test(kv_disk, test_kv_disk_write_failure_turns_tier_off_once) {
    char *dir = ks_test_mkdtemp();
    FILE *log = tmpfile();
    ks_log_set_file(log);
    ks_kv_disk_params p = params(dir, 1u << 20);
    ks_kv_disk *d = open_ok(&p);
    tblock ok;
    make_block(&ok, 1, NULL);
    write_one(d, &ok);
    /* Blocks whose shard directory is a regular file cannot be created (ENOTDIR). */
    tblock b[4];
    int n = 0;
    char okhex[33];
    ks_kv_key_hex(&ok.key, okhex);
    for (uint64_t seed = 100; n < 4; seed++) {
        make_block(&b[n], seed, NULL);
        if (b[n].key.b[0] != ok.key.b[0] && (n == 0 || b[n].key.b[0] == b[0].key.b[0]))
            n++;
    }
    char shard[1100];
    char hex[33];
    ks_kv_key_hex(&b[0].key, hex);
    snprintf(shard, sizeof shard, "%s/%.2s", dir, hex);
    cr_assert_eq(ks_test_write_file(shard, "x", 1), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ks_kv_disk_write_async(d, &b[i].key, NULL, b[i].tokens, b[i].payload, (uint64_t)i),
                     KS_OK);
    cr_assert_eq(wait_done(d, 4), 4, "every tag comes back, written or not");
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_not(st.enabled);
    cr_assert_geq(st.write_errors, 1);
    cr_assert_eq(st.write_errors + st.dropped, 4);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[0].key, NULL, b[0].tokens, b[0].payload, 9), KS_ERR_IO);
    expect_read(d, &ok); /* what is on disk still reads */
    ks_kv_disk_close(d);
    cr_assert_eq(count_warnings(log), 1);
    ks_log_set_file(NULL);
    fclose(log);
    ks_test_rmtree(dir);
    free(dir);
}

Test(kv_disk, test_kv_disk_queue_full_drops_writes) {
    char *dir = ks_test_mkdtemp();
    ks_kv_disk_params p = params(dir, 1u << 20);
    p.queue_depth = 2;
    ks_kv_disk *d = open_ok(&p);
    tblock b[4];
    for (int i = 0; i < 4; i++)
        make_block(&b[i], (uint64_t)i, NULL);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[0].key, NULL, b[0].tokens, b[0].payload, 10), KS_OK);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[1].key, NULL, b[1].tokens, b[1].payload, 11), KS_OK);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[2].key, NULL, b[2].tokens, b[2].payload, 12),
                 KS_ERR_FULL);
    ks_kv_disk_stats st;
    ks_kv_disk_stats_get(d, &st);
    cr_assert_eq(st.dropped, 1);
    cr_assert_eq(st.pending, 2);
    uint64_t tags[4] = {0};
    int got = 0;
    for (int spin = 0; got < 2 && spin < 10000; spin++) {
        got += ks_kv_disk_poll_done(d, tags + got, 4 - got);
        sleep_ms(1);
    }
    cr_assert_eq(got, 2);
    cr_assert(tags[0] + tags[1] == 21 && tags[0] != tags[1], "tags %llu %llu",
              (unsigned long long)tags[0], (unsigned long long)tags[1]);
    cr_assert_eq(ks_kv_disk_write_async(d, &b[2].key, NULL, b[2].tokens, b[2].payload, 12), KS_OK);
    /* close drains: the last write reaches the disk without a poll */
    ks_kv_disk_close(d);
    d = open_ok(&p);
    cr_assert(ks_kv_disk_has(d, &b[2].key));
    cr_assert_not(ks_kv_disk_has(d, &b[3].key));
    ks_kv_disk_close(d);
    ks_test_rmtree(dir);
    free(dir);
}

typedef struct walk_count {
    int ok, bad, temp, removed;
} walk_count;

static void count_file(void *ctx, const ks_kv_file_info *f) {
    walk_count *c = ctx;
    if (f->temp)
        c->temp++;
    else if (f->status == KS_OK && f->hdr)
        c->ok++;
    else if (f->status != KS_OK && f->msg[0])
        c->bad++;
    c->removed += f->removed;
}

static void count_model(void *ctx, const char *model_dir, const uint8_t fingerprint[16]) {
    (void)model_dir;
    (void)fingerprint;
    (*(int *)ctx)++;
}

/* A chain of n blocks written to root's directory for the test model (path in mdir). */
static ks_kv_disk_params write_model_chain(const char *root, char *mdir, size_t mdir_bytes,
                                           tblock *b, int n) {
    ks_kv_disk_params p = params(NULL, 1u << 20);
    cr_assert_eq(ks_kv_disk_model_dir(root, p.fingerprint, mdir, mdir_bytes, NULL), KS_OK);
    p.dir = mdir;
    ks_kv_disk *d = open_ok(&p);
    for (int i = 0; i < n; i++)
        make_block(&b[i], (uint64_t)i, i ? &b[i - 1].key : NULL);
    write_all(d, b, n);
    ks_kv_disk_close(d);
    return p;
}

Test(kv_disk, test_kv_disk_walk_without_model) {
    char *root = ks_test_mkdtemp();
    char mdir[1200];
    tblock b[6];
    ks_kv_disk_params p = write_model_chain(root, mdir, sizeof mdir, b, 6);
    cr_assert(strstr(mdir, "/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"), "%s", mdir);
    char path[1300];
    block_file(path, sizeof path, mdir, &b[2].key);
    flip_byte(path, -50); /* only a full verification sees it */
    char tmp[1400];
    snprintf(tmp, sizeof tmp, "%s.tmp.5.5", path);
    cr_assert_eq(ks_test_write_file(tmp, "x", 1), 0);

    int models = 0;
    cr_assert_eq(ks_kv_disk_list_models(root, count_model, &models, NULL), KS_OK);
    cr_assert_eq(models, 1);
    walk_count c = {0};
    cr_assert_eq(ks_kv_disk_walk(mdir, p.fingerprint, 0, count_file, &c, NULL), KS_OK);
    cr_assert(c.ok == 6 && c.bad == 0 && c.temp == 1, "ok %d bad %d temp %d", c.ok, c.bad, c.temp);
    memset(&c, 0, sizeof c);
    cr_assert_eq(ks_kv_disk_walk(mdir, p.fingerprint, KS_KV_WALK_VERIFY | KS_KV_WALK_REMOVE_BAD,
                                 count_file, &c, NULL),
                 KS_OK);
    cr_assert(c.ok == 5 && c.bad == 1 && c.removed == 1, "ok %d bad %d removed %d", c.ok, c.bad,
              c.removed);
    cr_assert_not(exists(path));
    cr_assert(exists(tmp), "a fresh temp file may be a live write");
    memset(&c, 0, sizeof c);
    uint8_t other[16] = {0};
    cr_assert_eq(ks_kv_disk_walk(mdir, other, 0, count_file, &c, NULL), KS_OK);
    cr_assert_eq(c.bad, 5, "another fingerprint fails every file");
    memset(&c, 0, sizeof c);
    cr_assert_eq(ks_kv_disk_walk(mdir, NULL, KS_KV_WALK_REMOVE_ALL, count_file, &c, NULL), KS_OK);
    cr_assert_eq(c.removed, 6);
    cr_assert_not(exists(mdir), "clear removes the emptied model directory");
    cr_assert_eq(ks_kv_disk_walk(mdir, NULL, 0, count_file, &c, NULL), KS_OK, "missing is empty");
    ks_test_rmtree(root);
    free(root);
}

/* Runs `kvserve ARGS`, returns its exit status and (in out) the start of its stdout. */
static int run_kvserve(const char *args, char *out, size_t n) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", ks_test_kvserve_bin(), args);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "%s", cmd);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(kv_disk, test_kv_disk_cache_command) {
    char *root = ks_test_mkdtemp();
    char mdir[1200];
    tblock b[6];
    write_model_chain(root, mdir, sizeof mdir, b, 6);

    char args[1400], out[8192];
    snprintf(args, sizeof args, "cache stats --kv-dir %s", root);
    cr_assert_eq(run_kvserve(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf  6 blocks"), "%s", out);
    cr_assert(strstr(out, "kv f16 B=4 n_layer=2 row_bytes=16"), "%s", out);
    snprintf(args, sizeof args, "cache ls --kv-dir %s", root);
    cr_assert_eq(run_kvserve(args, out, sizeof out), 0, "%s", out);
    char hex[33];
    ks_kv_key_hex(&b[5].key, hex);
    cr_assert(strstr(out, hex), "%s", out);

    char path[1300];
    block_file(path, sizeof path, mdir, &b[4].key);
    flip_byte(path, -30);
    snprintf(args, sizeof args, "cache verify --kv-dir %s", root);
    cr_assert_eq(run_kvserve(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "5 ok, 1 bad"), "%s", out);
    cr_assert_not(exists(path));
    cr_assert_eq(run_kvserve(args, out, sizeof out), 0, "a verified cache is clean: %s", out);

    snprintf(args, sizeof args, "cache clear --kv-dir %s", mdir);
    cr_assert_eq(run_kvserve(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "removed 5 files"), "%s", out);
    cr_assert_not(exists(mdir));
    cr_assert_eq(run_kvserve("cache nonsense", out, sizeof out), 2, "%s", out);
    ks_test_rmtree(root);
    free(root);
}

Test(kv_disk, test_kv_disk_default_root) {
    char buf[512];
    const char *old_xdg = getenv("XDG_CACHE_HOME"), *old_home = getenv("HOME");
    char *saved = old_xdg ? strdup(old_xdg) : NULL, *saved_home = old_home ? strdup(old_home) : NULL;
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    cr_assert_eq(ks_kv_disk_default_root(buf, sizeof buf, NULL), KS_OK);
    cr_assert_str_eq(buf, "/x/cache/kvserve");
    setenv("XDG_CACHE_HOME", "relative", 1);
    setenv("HOME", "/home/u", 1);
    cr_assert_eq(ks_kv_disk_default_root(buf, sizeof buf, NULL), KS_OK);
    cr_assert_str_eq(buf, "/home/u/.cache/kvserve");
    cr_assert_eq(ks_kv_disk_default_root(buf, 8, NULL), KS_ERR_FULL);
    if (saved)
        setenv("XDG_CACHE_HOME", saved, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    if (saved_home)
        setenv("HOME", saved_home, 1);
    free(saved);
    free(saved_home);
}

/* The fuzz corpus's naming contract, through the same parser the fuzz target drives:
 * ok-* files pass ks_kv_block_check, bad-* files fail it as corrupt with a message. */
Test(kv_disk, test_kv_disk_fuzz_corpus_replays) {
    const char *cdir = KS_SOURCE_DIR "/tests/fuzz/corpus/kv_block";
    DIR *dd = opendir(cdir);
    cr_assert_not_null(dd, "%s: %s", cdir, strerror(errno));
    int ok = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", cdir, e->d_name);
        size_t n = 0;
        uint8_t *buf = ks_test_read_file(path, &n);
        cr_assert_not_null(buf, "%s", path);
        ks_err err;
        ks_err_clear(&err);
        ks_kv_block_header h;
        ks_status s = ks_kv_block_check(&h, buf, n, &err);
        if (!strncmp(e->d_name, "ok-", 3)) {
            cr_assert_eq(s, KS_OK, "%s: %s", e->d_name, err.msg);
            ok++;
        } else if (!strncmp(e->d_name, "bad-", 4)) {
            cr_assert_eq(s, KS_ERR_CORRUPT, "%s: status %d", e->d_name, (int)s);
            cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "%s: message '%s'", e->d_name, err.msg);
            bad++;
        }
        free(buf);
    }
    closedir(dd);
    cr_assert_geq(ok, 1);
    cr_assert_geq(bad, 5);
}
