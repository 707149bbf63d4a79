/* kv_disk.c — the disk tier of the KV cache (see kv_disk.h): block files, their index,
 * the budget and the writer thread.
 *
 * Divisions, in data-flow order:
 *   1. the file format: encoding and checking headers and whole files
 *   2. paths and plain POSIX I/O helpers
 *   3. the index: key -> entry hash table, parent links, a heap of evictable leaves
 *   4. the writer thread and its two queues
 *   5. walking a directory (the scan at open, `kvserve cache`)
 *   6. the public API
 *
 * ---- File format (version 1) ---------------------------------------------------------
 *
 * <model dir>/<k0>/<key hex>.kvb   k0 = the key's first byte in hex: 256 shards keep a
 *                                  directory small (a 3 MiB block of a 30B model means
 *                                  ~300K files per TB of budget: ~1.2K per shard).
 *
 *   offset  bytes  field            (integers little-endian)
 *        0      8  magic            "KSKVBLK\n"
 *        8      4  version          1
 *       12      4  kv_type          ks_type id of the rows (F32, F16, Q8_0), with
 *                                  KS_KV_K_PANELS for Q8_0 keys in panels (kv_layout.h)
 *       16     16  fingerprint      the model's (a file of another model never loads)
 *       32     16  key              = the file name; XXH3-128 chain, kv_key.h
 *       48     16  parent           the previous block's key; zero for a first block
 *       64      4  block_tokens     B
 *       68      4  n_layer
 *       72      8  row_bytes
 *       80      8  payload_bytes    = 2 * n_layer * B * row_bytes
 *       88      8  header_check     XXH3-64 of bytes [0, 88): the scan trusts headers
 *       96    4*B  tokens           int32 ids of the block's B positions
 *   96+4B       P  payload          the block's K/V rows, layout of model/kv_layout.h
 *  96+4B+P      8  checksum         XXH3-64 of every byte before it
 *
 * Writing: a temporary name in the same shard ("<key hex>.kvb.tmp.<pid>.<n>"), write,
 * fdatasync, rename. A kill at any moment leaves either no file, a temporary file (never
 * loaded: its name is not a block name; removed at open once stale) or the whole file.
 * A torn or damaged file fails its size or checksum check. Reading checks every field
 * above against the open model and the file name. */
#include "kv/kv_disk.h"

#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static const uint8_t block_magic[8] = {'K', 'S', 'K', 'V', 'B', 'L', 'K', '\n'};

#define HEADER_CHECKED_BYTES 88 /* header bytes covered by header_check */
#define CHECKSUM_BYTES 8
/* Bounds on geometry read from untrusted headers, far past any real model (B = 32,
 * n_layer <= ~128, rows of a few KiB), so that size arithmetic cannot overflow. */
#define MAX_BLOCK_TOKENS 65536
#define MAX_LAYERS 65536
#define MAX_ROW_BYTES (UINT64_C(1) << 32)
#define MAX_PAYLOAD_BYTES (UINT64_C(1) << 40)
/* A temporary file older than this belongs to a write that died (a live write of one
 * block takes well under a second); younger ones may be another process's and stay. */
#define TEMP_STALE_NS (UINT64_C(300) * 1000000000u)
/* The header's page: kept in page cache after a write (a 4 KiB page per block). */
#define HEADER_PAGE_BYTES 4096
/* Files opened ahead per batch of the scan: their header reads go to the disk together
 * (readahead), so a cold scan waits about once per batch rather than once per file. */
#define SCAN_BATCH 32
/* Chunk of a whole-file verification read (kvserve cache verify). */
#define VERIFY_CHUNK_BYTES (1u << 20)
#define BLOCK_SUFFIX ".kvb"
#define TEMP_MARK ".tmp"

/* ---- 1. File format ------------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t file_bytes_of(int block_tokens, uint64_t payload_bytes) {
    return KS_KV_BLOCK_HEADER_BYTES + 4 * (uint64_t)block_tokens + payload_bytes + CHECKSUM_BYTES;
}

/* Fills the KS_KV_BLOCK_HEADER_BYTES of a header (h's derived file_bytes is ignored). */
static void encode_header(uint8_t *b, const ks_kv_block_header *h) {
    memcpy(b, block_magic, 8);
    put_u32(b + 8, h->version);
    put_u32(b + 12, h->kv_type);
    memcpy(b + 16, h->fingerprint, 16);
    memcpy(b + 32, h->key.b, 16);
    memcpy(b + 48, h->parent.b, 16);
    put_u32(b + 64, (uint32_t)h->block_tokens);
    put_u32(b + 68, (uint32_t)h->n_layer);
    put_u64(b + 72, h->row_bytes);
    put_u64(b + 80, h->payload_bytes);
    put_u64(b + 88, XXH3_64bits(b, HEADER_CHECKED_BYTES));
}

ks_status ks_kv_block_header_parse(ks_kv_block_header *h, const void *buf, size_t n,
                                   ks_err *err) {
    const uint8_t *b = buf;
    if (n < KS_KV_BLOCK_HEADER_BYTES)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block header truncated: %zu of %d bytes", n,
                       KS_KV_BLOCK_HEADER_BYTES);
    if (memcmp(b, block_magic, 8) != 0)
        return KS_ERRF(err, KS_ERR_CORRUPT, "not a KV block file (bad magic)");
    ks_kv_block_header t;
    t.version = get_u32(b + 8);
    if (t.version != KS_KV_BLOCK_VERSION)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block format version %" PRIu32 ", expected %d",
                       t.version, KS_KV_BLOCK_VERSION);
    if (get_u64(b + 88) != XXH3_64bits(b, HEADER_CHECKED_BYTES))
        return KS_ERRF(err, KS_ERR_CORRUPT, "block header checksum mismatch");
    t.kv_type = get_u32(b + 12);
    memcpy(t.fingerprint, b + 16, 16);
    memcpy(t.key.b, b + 32, 16);
    memcpy(t.parent.b, b + 48, 16);
    uint32_t bt = get_u32(b + 64), nl = get_u32(b + 68);
    t.row_bytes = get_u64(b + 72);
    t.payload_bytes = get_u64(b + 80);
    if (bt < 1 || bt > MAX_BLOCK_TOKENS || nl < 1 || nl > MAX_LAYERS || t.row_bytes < 1 ||
        t.row_bytes > MAX_ROW_BYTES)
        return KS_ERRF(err, KS_ERR_CORRUPT,
                       "block geometry out of range: B %" PRIu32 ", n_layer %" PRIu32
                       ", row_bytes %" PRIu64,
                       bt, nl, t.row_bytes);
    t.block_tokens = (int32_t)bt;
    t.n_layer = (int32_t)nl;
    /* Each factor is bounded above, so the product fits in 64 bits before the check. */
    uint64_t want = 2 * (uint64_t)nl * (uint64_t)bt;
    if (want > MAX_PAYLOAD_BYTES / t.row_bytes || want * t.row_bytes != t.payload_bytes)
        return KS_ERRF(err, KS_ERR_CORRUPT,
                       "block payload_bytes %" PRIu64 " is not 2 * n_layer * B * row_bytes",
                       t.payload_bytes);
    if (ks_kv_key_is_zero(&t.key) || ks_kv_key_eq(&t.key, &t.parent))
        return KS_ERRF(err, KS_ERR_CORRUPT, "block key is zero or its own parent");
    t.file_bytes = file_bytes_of(t.block_tokens, t.payload_bytes);
    *h = t;
    return KS_OK;
}

ks_status ks_kv_block_check(ks_kv_block_header *h, const void *file, size_t n, ks_err *err) {
    ks_kv_block_header t;
    ks_status s = ks_kv_block_header_parse(&t, file, n, err);
    if (s != KS_OK)
        return s;
    if ((uint64_t)n != t.file_bytes)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block file is %zu bytes, its header says %" PRIu64, n,
                       t.file_bytes);
    const uint8_t *b = file;
    if (XXH3_64bits(b, n - CHECKSUM_BYTES) != get_u64(b + n - CHECKSUM_BYTES))
        return KS_ERRF(err, KS_ERR_CORRUPT, "block checksum mismatch");
    *h = t;
    return KS_OK;
}

/* What a file must also match beyond its own consistency: the model and the name. */
typedef struct expect {
    const uint8_t *fingerprint;          /* NULL: any */
    const ks_kv_block_header *geometry;  /* NULL: any; else kv_type, B, n_layer, row_bytes */
    const char *key_hex;                 /* the file name's key */
} expect;

static ks_status check_expect(const ks_kv_block_header *h, const expect *ex, ks_err *err) {
    if (ex->fingerprint && memcmp(h->fingerprint, ex->fingerprint, 16) != 0)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block written by another model (fingerprint differs)");
    const ks_kv_block_header *g = ex->geometry;
    if (g && (h->kv_type != g->kv_type || h->block_tokens != g->block_tokens ||
              h->n_layer != g->n_layer || h->row_bytes != g->row_bytes))
        return KS_ERRF(err, KS_ERR_CORRUPT,
                       "block geometry (type %" PRIu32 ", B %d, n_layer %d, row_bytes %" PRIu64
                       ") is not the model's",
                       h->kv_type, (int)h->block_tokens, (int)h->n_layer, h->row_bytes);
    char hex[33];
    ks_kv_key_hex(&h->key, hex);
    if (ex->key_hex && strcmp(hex, ex->key_hex) != 0)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block key %s differs from its file name", hex);
    return KS_OK;
}

/* ---- 2. Paths and I/O ------------------------------------------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mtime_ns_of(const struct stat *st) {
    return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

static bool is_hex_lower(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool parse_hex16(const char *s, uint8_t out[16]) {
    if (strlen(s) != 32 || !is_hex_lower(s, 32))
        return false;
    for (int i = 0; i < 16; i++) {
        int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
        int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* "<dir>/<k0>/<hex>.kvb" into buf (sized by the caller from the dir length). */
static void block_path(char *buf, size_t n, const char *dir, const ks_kv_key *key) {
    char hex[33];
    ks_kv_key_hex(key, hex);
    snprintf(buf, n, "%s/%.2s/%s" BLOCK_SUFFIX, dir, hex, hex);
}

/* mkdir -p. Returns 0 or an errno. */
static int mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return errno;
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/* Reads exactly n bytes at off; returns 0, an errno, or -1 for a short file. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Writes every byte of the iovecs (consumed in place); returns 0 or an errno. */
static int writev_all(int fd, struct iovec *iov, int n) {
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Reads the header of an open block file and checks it, the file size and ex. */
static ks_status check_header_fd(int fd, const struct stat *st, const expect *ex,
                                 ks_kv_block_header *h, ks_err *err) {
    uint8_t b[KS_KV_BLOCK_HEADER_BYTES];
    int r = pread_all(fd, b, sizeof b, 0);
    if (r > 0)
        return KS_ERRF(err, KS_ERR_IO, "cannot read block header: %s", strerror(r));
    size_t n = r == 0 ? sizeof b : (size_t)KS_MIN((uint64_t)st->st_size, (uint64_t)sizeof b);
    ks_status s = ks_kv_block_header_parse(h, b, n, err);
    if (s != KS_OK)
        return s;
    if ((uint64_t)st->st_size != h->file_bytes)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block file is %" PRIu64 " bytes, its header says %" PRIu64,
                       (uint64_t)st->st_size, h->file_bytes);
    return check_expect(h, ex, err);
}

/* Reads everything after the header and checks the checksum. head: the header and
 * token bytes (filled here; 96 + 4B bytes). payload: where the payload goes, or NULL to
 * stream it through scratch (scratch_bytes > 0). */
static ks_status check_body_fd(int fd, const ks_kv_block_header *h, XXH3_state_t *st,
                               uint8_t *head, void *payload, uint8_t *scratch,
                               size_t scratch_bytes, ks_err *err) {
    size_t head_bytes = KS_KV_BLOCK_HEADER_BYTES + 4 * (size_t)h->block_tokens;
    int r = pread_all(fd, head, head_bytes, 0);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, head, head_bytes);
    uint64_t off = head_bytes, end = off + h->payload_bytes;
    if (r == 0 && payload) {
        r = pread_all(fd, payload, (size_t)h->payload_bytes, off);
        XXH3_64bits_update(st, payload, (size_t)h->payload_bytes);
        off = end;
    }
    while (r == 0 && off < end) {
        size_t n = (size_t)KS_MIN((uint64_t)scratch_bytes, end - off);
        r = pread_all(fd, scratch, n, off);
        XXH3_64bits_update(st, scratch, n);
        off += n;
    }
    uint8_t sum[CHECKSUM_BYTES];
    if (r == 0)
        r = pread_all(fd, sum, sizeof sum, end);
    if (r > 0)
        return KS_ERRF(err, KS_ERR_IO, "cannot read block: %s", strerror(r));
    if (r < 0)
        return KS_ERRF(err, KS_ERR_CORRUPT, "block file truncated while reading");
    if (XXH3_64bits_digest(st) != get_u64(sum))
        return KS_ERRF(err, KS_ERR_CORRUPT, "block checksum mismatch");
    return KS_OK;
}

/* ---- 3. The index ------------------------------------------------------------------------
 *
 * Entries live in a growable array addressed by index; an open-addressing table (linear
 * probing, at most half full, backward-shift deletion) maps a key to its entry. Keys are
 * hash outputs, so their first 8 bytes serve as the hash.
 *
 * An entry is a file on disk, a write in flight, or a ghost: the parent of some of those
 * that has no file itself, kept only to carry its n_children, so that a parent written
 * after its children (or re-written) knows at once that it is not a leaf:
 *
 *      A (disk, 1 child) <- B (disk, 1 child) <- C (in flight)      ghost G <- D (disk)
 *
 * Leaves (files no other entry names as parent) sit in a min-heap by last use: the heap
 * top is the next file to evict. Removing a leaf may make its parent a leaf. */

enum { ENTRY_GHOST = 0, ENTRY_PENDING = 1, ENTRY_ON_DISK = 2, ENTRY_FREE = 3 };

typedef struct entry {
    ks_kv_key key;
    ks_kv_key parent;
    uint64_t last_use;  /* ns since the Unix epoch */
    int32_t n_children; /* entries (on disk or in flight) whose parent is this key */
    int32_t heap_pos;   /* position in the leaf heap, -1 when not in it */
    int32_t next_free;  /* free-list link while ENTRY_FREE */
    uint8_t state;
} entry;

typedef struct job {            /* one outstanding write */
    ks_kv_key key, parent;
    const int32_t *tokens;      /* borrowed (block_tokens) */
    const void *payload;        /* borrowed (block_bytes) */
    uint64_t tag;
    bool duplicate;             /* nothing to write: already on disk or in flight */
    int err_no;                 /* writer's result: 0, an errno, ECANCELED if writing is off */
    const char *failed_op;      /* "create", "write", ... when err_no != 0 */
} job;

typedef struct op {             /* a request to the writer */
    int32_t slot;               /* a job, or -1: remove the file of key */
    ks_kv_key key;
} op;

struct ks_kv_disk {
    /* Immutable after open. */
    char *dir;
    size_t path_bytes;          /* room for any path under dir */
    uint64_t budget_bytes;
    uint8_t fingerprint[16];
    ks_kv_block_header geometry;/* kv_type, B, n_layer, row_bytes, payload and file bytes */
    int depth;

    /* Engine thread. */
    entry *entries;
    int32_t n_entries, cap_entries, free_entry;
    int32_t *table;             /* (table_cap) entry index or -1 */
    uint32_t table_cap;
    uint32_t table_used;
    int32_t *heap;              /* (cap_entries) leaf entries, min last_use on top */
    int32_t heap_n;
    uint64_t n_files, bytes, pending_bytes;
    ks_kv_disk_stats st;        /* counters */
    bool enabled, warned;
    job *jobs;                  /* (depth) */
    int32_t *free_slots;        /* (depth) stack */
    int32_t n_free_slots;
    int32_t *ready;             /* (depth) duplicates, reported by the next poll */
    int32_t n_ready;
    char *rpath;                /* (path_bytes) */
    uint8_t *rhead;             /* (96 + 4B) */
    XXH3_state_t *rstate;

    /* The writer thread. */
    char *wpath, *wtmp;         /* (path_bytes) */
    uint8_t *whead;             /* (96 + 4B) */
    XXH3_state_t *wstate;
    uint64_t wseq;              /* temp name counter */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    op *ops;                    /* ring of requests */
    uint32_t ops_cap, ops_head, ops_n;
    int32_t *done;              /* (depth) ring of finished jobs */
    uint32_t done_head, done_n;
    bool stopping;
    bool thread_started;
    pthread_t thread;
    atomic_bool writer_off;     /* writing is off: remaining jobs finish as ECANCELED */
};

static uint32_t key_home(const ks_kv_disk *d, const ks_kv_key *k) {
    uint64_t h = get_u64(k->b);
    return (uint32_t)(h ^ (h >> 32)) & (d->table_cap - 1);
}

static int32_t find(const ks_kv_disk *d, const ks_kv_key *k) {
    for (uint32_t i = key_home(d, k);; i = (i + 1) & (d->table_cap - 1)) {
        int32_t e = d->table[i];
        if (e < 0)
            return -1;
        if (ks_kv_key_eq(&d->entries[e].key, k))
            return e;
    }
}

static void table_put(ks_kv_disk *d, int32_t e) {
    uint32_t i = key_home(d, &d->entries[e].key);
    while (d->table[i] >= 0)
        i = (i + 1) & (d->table_cap - 1);
    d->table[i] = e;
}

static void table_grow(ks_kv_disk *d) {
    free(d->table);
    d->table_cap *= 2;
    d->table = ks_xmalloc(d->table_cap * sizeof *d->table);
    memset(d->table, 0xff, d->table_cap * sizeof *d->table);
    for (int32_t e = 0; e < d->n_entries; e++)
        if (d->entries[e].state != ENTRY_FREE)
            table_put(d, e);
}

static void table_del(ks_kv_disk *d, int32_t e) {
    uint32_t mask = d->table_cap - 1, i = key_home(d, &d->entries[e].key);
    while (d->table[i] != e)
        i = (i + 1) & mask;
    /* Backward shift: move later members of the probe run into the hole when their
     * home is not in (hole, j]. */
    for (uint32_t j = (i + 1) & mask; d->table[j] >= 0; j = (j + 1) & mask) {
        uint32_t home = key_home(d, &d->entries[d->table[j]].key);
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            d->table[i] = d->table[j];
            i = j;
        }
    }
    d->table[i] = -1;
    d->table_used--;
}

/* Index of the entry of k, created as a ghost if missing. May move d->entries. */
static int32_t get_or_add(ks_kv_disk *d, const ks_kv_key *k) {
    int32_t e = find(d, k);
    if (e >= 0)
        return e;
    if ((d->table_used + 1) * 2 > d->table_cap)
        table_grow(d);
    if (d->free_entry >= 0) {
        e = d->free_entry;
        d->free_entry = d->entries[e].next_free;
    } else {
        if (d->n_entries == d->cap_entries) {
            d->cap_entries *= 2;
            d->entries = ks_xrealloc(d->entries, (size_t)d->cap_entries * sizeof *d->entries);
            d->heap = ks_xrealloc(d->heap, (size_t)d->cap_entries * sizeof *d->heap);
        }
        e = d->n_entries++;
    }
    entry *en = &d->entries[e];
    memset(en, 0, sizeof *en);
    en->key = *k;
    en->heap_pos = -1;
    en->state = ENTRY_GHOST;
    table_put(d, e);
    d->table_used++;
    return e;
}

static bool heap_less(const ks_kv_disk *d, int32_t a, int32_t b) {
    uint64_t ua = d->entries[a].last_use, ub = d->entries[b].last_use;
    return ua != ub ? ua < ub : a < b;
}

static void heap_set(ks_kv_disk *d, int32_t pos, int32_t e) {
    d->heap[pos] = e;
    d->entries[e].heap_pos = pos;
}

static void heap_fix(ks_kv_disk *d, int32_t pos) {
    int32_t e = d->heap[pos];
    while (pos > 0 && heap_less(d, e, d->heap[(pos - 1) / 2])) {
        heap_set(d, pos, d->heap[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    for (;;) {
        int32_t c = 2 * pos + 1;
        if (c >= d->heap_n)
            break;
        if (c + 1 < d->heap_n && heap_less(d, d->heap[c + 1], d->heap[c]))
            c++;
        if (!heap_less(d, d->heap[c], e))
            break;
        heap_set(d, pos, d->heap[c]);
        pos = c;
    }
    heap_set(d, pos, e);
}

static void heap_push(ks_kv_disk *d, int32_t e) {
    KS_ASSERT(d->entries[e].heap_pos < 0);
    heap_set(d, d->heap_n++, e);
    heap_fix(d, d->heap_n - 1);
}

static void heap_remove(ks_kv_disk *d, int32_t e) {
    int32_t pos = d->entries[e].heap_pos;
    if (pos < 0)
        return;
    d->entries[e].heap_pos = -1;
    int32_t last = d->heap[--d->heap_n];
    if (pos < d->heap_n) {
        heap_set(d, pos, last);
        heap_fix(d, pos);
    }
}

static void free_if_unused(ks_kv_disk *d, int32_t e) {
    entry *en = &d->entries[e];
    if (en->state != ENTRY_GHOST || en->n_children > 0)
        return;
    table_del(d, e);
    en->state = ENTRY_FREE;
    en->next_free = d->free_entry;
    d->free_entry = e;
}

/* Counts e as a child of its parent (creating a ghost parent if needed). */
static void link_parent(ks_kv_disk *d, int32_t e) {
    if (ks_kv_key_is_zero(&d->entries[e].parent))
        return;
    ks_kv_key parent = d->entries[e].parent;
    int32_t p = get_or_add(d, &parent);
    d->entries[p].n_children++;
    heap_remove(d, p);
}

static void unlink_parent(ks_kv_disk *d, int32_t e) {
    if (ks_kv_key_is_zero(&d->entries[e].parent))
        return;
    int32_t p = find(d, &d->entries[e].parent);
    KS_ASSERT(p >= 0 && d->entries[p].n_children > 0);
    if (--d->entries[p].n_children == 0) {
        if (d->entries[p].state == ENTRY_ON_DISK)
            heap_push(d, p);
        else
            free_if_unused(d, p);
    }
}

/* A file joins the index (scan, or a finished write). */
static void add_file(ks_kv_disk *d, int32_t e, uint64_t last_use) {
    entry *en = &d->entries[e];
    en->state = ENTRY_ON_DISK;
    en->last_use = last_use;
    d->n_files++;
    d->bytes += d->geometry.file_bytes;
    if (en->n_children == 0)
        heap_push(d, e);
}

/* A file leaves the index (evicted, corrupt or gone); the file itself is not touched. */
static void drop_file(ks_kv_disk *d, int32_t e) {
    KS_ASSERT(d->entries[e].state == ENTRY_ON_DISK);
    heap_remove(d, e);
    d->entries[e].state = ENTRY_GHOST;
    d->n_files--;
    d->bytes -= d->geometry.file_bytes;
    unlink_parent(d, e);
    free_if_unused(d, e);
}

/* ---- 4. The writer thread ------------------------------------------------------------ */

/* Queues a request. Caller holds mu. */
static void push_op(ks_kv_disk *d, int32_t slot, const ks_kv_key *key) {
    if (d->ops_n == d->ops_cap) {
        uint32_t cap = d->ops_cap * 2;
        op *ops = ks_xmalloc(cap * sizeof *ops);
        for (uint32_t i = 0; i < d->ops_n; i++)
            ops[i] = d->ops[(d->ops_head + i) % d->ops_cap];
        free(d->ops);
        d->ops = ops;
        d->ops_cap = cap;
        d->ops_head = 0;
    }
    op *o = &d->ops[(d->ops_head + d->ops_n++) % d->ops_cap];
    o->slot = slot;
    o->key = *key;
    pthread_cond_signal(&d->cv);
}

/* The temp file exists only between create and rename; on failure it is removed. */
static int write_block(ks_kv_disk *d, job *j) {
    const ks_kv_block_header *g = &d->geometry;
    ks_kv_block_header h = *g;
    h.version = KS_KV_BLOCK_VERSION;
    memcpy(h.fingerprint, d->fingerprint, 16);
    h.key = j->key;
    h.parent = j->parent;
    encode_header(d->whead, &h);
    for (int i = 0; i < g->block_tokens; i++)
        put_u32(d->whead + KS_KV_BLOCK_HEADER_BYTES + 4 * i, (uint32_t)j->tokens[i]);
    size_t head_bytes = KS_KV_BLOCK_HEADER_BYTES + 4 * (size_t)g->block_tokens;
    XXH3_64bits_reset(d->wstate);
    XXH3_64bits_update(d->wstate, d->whead, head_bytes);
    XXH3_64bits_update(d->wstate, j->payload, (size_t)g->payload_bytes);
    uint8_t sum[CHECKSUM_BYTES];
    put_u64(sum, XXH3_64bits_digest(d->wstate));

    block_path(d->wpath, d->path_bytes, d->dir, &j->key);
    snprintf(d->wtmp, d->path_bytes, "%s" TEMP_MARK ".%ld.%" PRIu64, d->wpath, (long)getpid(),
             d->wseq++);
    int fd = open(d->wtmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) { /* first file of its shard, or the dir was cleared */
        char *slash = strrchr(d->wtmp, '/');
        *slash = '\0';
        int r = mkdir_p(d->wtmp);
        *slash = '/';
        if (r != 0) {
            j->failed_op = "create a directory for";
            return r;
        }
        fd = open(d->wtmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        j->failed_op = "create";
        return errno;
    }
    struct iovec iov[3] = {{d->whead, head_bytes},
                           {(void *)(uintptr_t)j->payload, (size_t)g->payload_bytes},
                           {sum, sizeof sum}};
    int r = writev_all(fd, iov, 3);
    j->failed_op = "write";
    if (r == 0 && fdatasync(fd) != 0) {
        r = errno;
        j->failed_op = "flush";
    }
    /* The block is in the RAM pool: drop the page cache's second copy of its payload,
     * but keep the first page, so the scan at the next start reads headers from memory. */
    if (r == 0)
        posix_fadvise(fd, HEADER_PAGE_BYTES, 0, POSIX_FADV_DONTNEED);
    if (close(fd) != 0 && r == 0)
        r = errno;
    if (r == 0 && rename(d->wtmp, d->wpath) != 0) {
        r = errno;
        j->failed_op = "rename";
    }
    if (r != 0)
        unlink(d->wtmp);
    return r;
}

/* Errors that say nothing about the disk: someone removed the directory or the temp
 * file under us (`kvserve cache clear`). Everything else turns writing off. */
static bool error_is_transient(int err_no) { return err_no == ENOENT || err_no == ECANCELED; }

static void *writer_main(void *arg) {
    ks_kv_disk *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->ops_n == 0 && !d->stopping)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->ops_n == 0)
            break;
        op o = d->ops[d->ops_head];
        d->ops_head = (d->ops_head + 1) % d->ops_cap;
        d->ops_n--;
        pthread_mutex_unlock(&d->mu);

        if (o.slot < 0) {
            block_path(d->wpath, d->path_bytes, d->dir, &o.key);
            if (unlink(d->wpath) != 0 && errno != ENOENT)
                KS_LOGD("kv disk: cannot remove %s: %s", d->wpath, strerror(errno));
        } else {
            job *j = &d->jobs[o.slot];
            j->err_no = atomic_load(&d->writer_off) ? ECANCELED : write_block(d, j);
            if (!error_is_transient(j->err_no) && j->err_no != 0)
                atomic_store(&d->writer_off, true);
        }

        pthread_mutex_lock(&d->mu);
        if (o.slot >= 0)
            d->done[(d->done_head + d->done_n++) % (uint32_t)d->depth] = o.slot;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Turns writing off, once, with one warning. */
static void disable(ks_kv_disk *d, const char *what, const char *path, int err_no) {
    d->enabled = false;
    atomic_store(&d->writer_off, true);
    if (d->warned)
        return;
    d->warned = true;
    KS_LOGW("kv disk: cannot %s %s (%s): the disk cache is off, serving continues from RAM", what,
            path, strerror(err_no));
}

/* Removes least recently used leaves until `need` more bytes fit in the budget.
 * Returns false (removing nothing more) when no leaf is left to remove. */
static bool make_room(ks_kv_disk *d, uint64_t need) {
    while (d->bytes + d->pending_bytes + need > d->budget_bytes) {
        if (d->heap_n == 0)
            return false;
        int32_t e = d->heap[0];
        ks_kv_key key = d->entries[e].key;
        drop_file(d, e);
        d->st.evicted++;
        pthread_mutex_lock(&d->mu);
        push_op(d, -1, &key);
        pthread_mutex_unlock(&d->mu);
    }
    return true;
}

/* ---- 5. Walking a model directory ------------------------------------------------------ */

typedef struct walker {
    const char *model_dir;
    expect ex;                  /* fingerprint and geometry; key_hex set per file */
    unsigned flags;
    bool remove_bad;            /* may delete bad and stale temp files */
    uint64_t now;
    void (*fn)(void *ctx, const ks_kv_file_info *f);
    void *ctx;
    uint8_t *head, *scratch;    /* for KS_KV_WALK_VERIFY */
    size_t head_cap;
    XXH3_state_t *state;
    char names[SCAN_BATCH][256];/* a batch of directory entries, their fds and open errors */
    int fds[SCAN_BATCH], errnos[SCAN_BATCH];
} walker;

static bool is_block_name(const char *name) {
    return strlen(name) == 32 + strlen(BLOCK_SUFFIX) && is_hex_lower(name, 32) &&
           strcmp(name + 32, BLOCK_SUFFIX) == 0;
}

/* Checks one file of a shard. name: the directory entry; path: its full path; fd: the
 * file opened read-only, or -1 with open_errno. Closes fd. */
static void walk_file(walker *w, int fd, int open_errno, int shard_fd, const char *shard,
                      const char *name, const char *path) {
    ks_kv_file_info f = {.path = path, .status = KS_OK, .msg = ""};
    ks_err err;
    ks_err_clear(&err);
    ks_kv_block_header h;
    f.temp = !is_block_name(name);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        if (fd < 0 && open_errno == ENOENT)
            return; /* removed since the listing */
        f.status = KS_ERRF(&err, KS_ERR_IO, "not a readable regular file");
        f.msg = err.msg;
        if (w->fn)
            w->fn(w->ctx, &f);
        return;
    }
    f.size = (uint64_t)st.st_size;
    f.mtime_ns = mtime_ns_of(&st);
    bool remove = false;
    if (f.temp) {
        remove = (w->flags & KS_KV_WALK_REMOVE_ALL) ||
                 (w->remove_bad && w->now > f.mtime_ns + TEMP_STALE_NS);
    } else {
        char key_hex[33];
        memcpy(key_hex, name, 32);
        key_hex[32] = '\0';
        w->ex.key_hex = key_hex;
        if (strncmp(shard, name, 2) != 0)
            f.status = KS_ERRF(&err, KS_ERR_CORRUPT, "block file in the wrong shard directory");
        else
            f.status = check_header_fd(fd, &st, &w->ex, &h, &err);
        w->ex.key_hex = NULL;
        if (f.status == KS_OK && (w->flags & KS_KV_WALK_VERIFY)) {
            size_t need = KS_KV_BLOCK_HEADER_BYTES + 4 * (size_t)h.block_tokens;
            if (need > w->head_cap) {
                free(w->head);
                w->head = ks_xmalloc(need);
                w->head_cap = need;
            }
            f.status = check_body_fd(fd, &h, w->state, w->head, NULL, w->scratch,
                                     VERIFY_CHUNK_BYTES, &err);
        }
        f.hdr = f.status == KS_OK ? &h : NULL;
        f.msg = err.msg;
        remove = (w->flags & KS_KV_WALK_REMOVE_ALL) ||
                 (w->remove_bad && f.status == KS_ERR_CORRUPT);
    }
    close(fd);
    if (remove)
        f.removed = unlinkat(shard_fd, name, 0) == 0;
    if (w->fn)
        w->fn(w->ctx, &f);
}

static ks_status walk(walker *w, ks_err *err) {
    DIR *top = opendir(w->model_dir);
    if (!top) {
        if (errno == ENOENT)
            return KS_OK;
        return KS_ERRF(err, KS_ERR_IO, "cannot list %s: %s", w->model_dir, strerror(errno));
    }
    w->now = now_ns();
    if (w->flags & KS_KV_WALK_VERIFY) {
        w->scratch = ks_xmalloc(VERIFY_CHUNK_BYTES);
        w->state = XXH3_createState();
        KS_ASSERT(w->state);
    }
    size_t path_cap = strlen(w->model_dir) + 300;
    char *path = ks_xmalloc(path_cap);
    struct dirent *se;
    while ((se = readdir(top))) {
        if (strlen(se->d_name) != 2 || !is_hex_lower(se->d_name, 2))
            continue;
        char shard[3] = {se->d_name[0], se->d_name[1], '\0'};
        snprintf(path, path_cap, "%s/%s", w->model_dir, shard);
        DIR *sd = opendir(path);
        if (!sd)
            continue; /* not a directory, or vanished */
        /* Batches: open up to SCAN_BATCH files and ask for their first pages at once,
         * then check them one by one. */
        for (bool more = true; more;) {
            int n = 0;
            struct dirent *fe;
            while (n < SCAN_BATCH && (fe = readdir(sd))) {
                const char *name = fe->d_name;
                if (strlen(name) > 255 || (!is_block_name(name) && !strstr(name, TEMP_MARK)))
                    continue; /* not ours */
                memcpy(w->names[n], name, strlen(name) + 1);
                w->fds[n] = openat(dirfd(sd), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                w->errnos[n] = errno;
                if (w->fds[n] >= 0)
                    posix_fadvise(w->fds[n], 0, HEADER_PAGE_BYTES, POSIX_FADV_WILLNEED);
                n++;
            }
            more = n == SCAN_BATCH;
            for (int i = 0; i < n; i++) {
                snprintf(path, path_cap, "%s/%s/%s", w->model_dir, shard, w->names[i]);
                walk_file(w, w->fds[i], w->errnos[i], dirfd(sd), shard, w->names[i], path);
            }
        }
        closedir(sd);
        if (w->flags & KS_KV_WALK_REMOVE_ALL) {
            snprintf(path, path_cap, "%s/%s", w->model_dir, shard);
            rmdir(path); /* fails harmlessly if something else lives there */
        }
    }
    closedir(top);
    if (w->flags & KS_KV_WALK_REMOVE_ALL)
        rmdir(w->model_dir);
    free(path);
    free(w->scratch);
    free(w->head);
    if (w->state)
        XXH3_freeState(w->state);
    return KS_OK;
}

ks_status ks_kv_disk_walk(const char *model_dir, const uint8_t *fingerprint, unsigned flags,
                          void (*fn)(void *ctx, const ks_kv_file_info *f), void *ctx,
                          ks_err *err) {
    walker w = {.model_dir = model_dir, .flags = flags, .fn = fn, .ctx = ctx};
    w.ex.fingerprint = fingerprint;
    w.remove_bad = (flags & (KS_KV_WALK_REMOVE_BAD | KS_KV_WALK_REMOVE_ALL)) != 0;
    return walk(&w, err);
}

bool ks_kv_disk_is_model_dir(const char *path, uint8_t fingerprint[16]) {
    const char *slash = strrchr(path, '/');
    struct stat st;
    return parse_hex16(slash ? slash + 1 : path, fingerprint) && stat(path, &st) == 0 &&
           S_ISDIR(st.st_mode);
}

ks_status ks_kv_disk_list_models(const char *root,
                                 void (*fn)(void *ctx, const char *model_dir,
                                            const uint8_t fingerprint[16]),
                                 void *ctx, ks_err *err) {
    DIR *dir = opendir(root);
    if (!dir) {
        if (errno == ENOENT)
            return KS_OK;
        return KS_ERRF(err, KS_ERR_IO, "cannot list %s: %s", root, strerror(errno));
    }
    size_t cap = strlen(root) + 300;
    char *path = ks_xmalloc(cap);
    struct dirent *e;
    while ((e = readdir(dir))) {
        uint8_t fp[16];
        snprintf(path, cap, "%s/%s", root, e->d_name);
        if (ks_kv_disk_is_model_dir(path, fp))
            fn(ctx, path, fp);
    }
    free(path);
    closedir(dir);
    return KS_OK;
}

/* The scan at open: every good file joins the index; bad ones are counted. */
static void scan_file(void *ctx, const ks_kv_file_info *f) {
    ks_kv_disk *d = ctx;
    if (f->temp)
        return;
    if (f->status != KS_OK) {
        d->st.corrupt_skipped++;
        KS_LOGW("kv disk: skipping %s: %s%s", f->path, f->msg, f->removed ? " (removed)" : "");
        return;
    }
    int32_t e = get_or_add(d, &f->hdr->key);
    KS_ASSERT(d->entries[e].state == ENTRY_GHOST); /* a key has one path */
    d->entries[e].parent = f->hdr->parent;
    link_parent(d, e);
    add_file(d, e, f->mtime_ns);
}

/* ---- 6. The API ------------------------------------------------------------------------- */

static ks_status check_params(const ks_kv_disk_params *p, ks_err *err) {
    if (p->block_tokens < 1 || p->block_tokens > MAX_BLOCK_TOKENS || p->n_layer < 1 ||
        p->n_layer > MAX_LAYERS || p->row_bytes < 1 || p->row_bytes > MAX_ROW_BYTES ||
        p->queue_depth < 0)
        return KS_ERRF(err, KS_ERR_INVALID, "kv disk: bad geometry (B %d, n_layer %d, row_bytes %" PRIu64 ")",
                       p->block_tokens, p->n_layer, p->row_bytes);
    uint64_t want = 2 * (uint64_t)p->n_layer * (uint64_t)p->block_tokens;
    if (want > MAX_PAYLOAD_BYTES / p->row_bytes || want * p->row_bytes != p->block_bytes)
        return KS_ERRF(err, KS_ERR_INVALID,
                       "kv disk: block_bytes %" PRIu64 " is not 2 * n_layer * B * row_bytes",
                       p->block_bytes);
    if (p->dir && strlen(p->dir) > 3500)
        return KS_ERRF(err, KS_ERR_INVALID, "kv disk: directory path too long");
    return KS_OK;
}

ks_status ks_kv_disk_open(ks_kv_disk **out, const ks_kv_disk_params *p, ks_err *err) {
    ks_status s = check_params(p, err);
    if (s != KS_OK)
        return s;
    ks_kv_disk *d = ks_xcalloc(1, sizeof *d);
    bool on = p->dir && p->dir[0] && p->budget_bytes > 0;
    d->dir = ks_xstrdup(on ? p->dir : "");
    d->path_bytes = strlen(d->dir) + 128; /* "/k0/" + 32 hex + ".kvb.tmp.<pid>.<n>" */
    d->budget_bytes = p->budget_bytes;
    memcpy(d->fingerprint, p->fingerprint, 16);
    d->geometry.version = KS_KV_BLOCK_VERSION;
    d->geometry.kv_type = p->kv_type;
    d->geometry.block_tokens = p->block_tokens;
    d->geometry.n_layer = p->n_layer;
    d->geometry.row_bytes = p->row_bytes;
    d->geometry.payload_bytes = p->block_bytes;
    d->geometry.file_bytes = file_bytes_of(p->block_tokens, p->block_bytes);
    d->depth = p->queue_depth > 0 ? p->queue_depth : KS_KV_DISK_QUEUE_DEPTH_DEFAULT;

    d->cap_entries = 1024;
    d->entries = ks_xmalloc((size_t)d->cap_entries * sizeof *d->entries);
    d->heap = ks_xmalloc((size_t)d->cap_entries * sizeof *d->heap);
    d->free_entry = -1;
    d->table_cap = 2048;
    d->table = ks_xmalloc(d->table_cap * sizeof *d->table);
    memset(d->table, 0xff, d->table_cap * sizeof *d->table);
    d->jobs = ks_xcalloc((size_t)d->depth, sizeof *d->jobs);
    d->free_slots = ks_xmalloc((size_t)d->depth * sizeof *d->free_slots);
    d->ready = ks_xmalloc((size_t)d->depth * sizeof *d->ready);
    d->done = ks_xmalloc((size_t)d->depth * sizeof *d->done);
    for (int i = 0; i < d->depth; i++)
        d->free_slots[i] = d->depth - 1 - i;
    d->n_free_slots = d->depth;
    d->ops_cap = 64;
    d->ops = ks_xmalloc(d->ops_cap * sizeof *d->ops);
    size_t head_bytes = KS_KV_BLOCK_HEADER_BYTES + 4 * (size_t)p->block_tokens;
    d->rpath = ks_xmalloc(d->path_bytes);
    d->wpath = ks_xmalloc(d->path_bytes);
    d->wtmp = ks_xmalloc(d->path_bytes);
    d->rhead = ks_xmalloc(head_bytes);
    d->whead = ks_xmalloc(head_bytes);
    d->rstate = XXH3_createState();
    d->wstate = XXH3_createState();
    KS_ASSERT(d->rstate && d->wstate);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    atomic_init(&d->writer_off, !on);
    d->st.enabled = false;

    if (on) {
        /* Writable? mkdir -p, then access() (which also sees a read-only mount as root). */
        int r = mkdir_p(d->dir);
        if (r == 0 && access(d->dir, W_OK | X_OK) != 0)
            r = errno;
        d->enabled = r == 0;
        if (r != 0)
            disable(d, "write block files in", d->dir, r);
        else if (d->budget_bytes < d->geometry.file_bytes)
            disable(d, "fit one block file in the budget of", d->dir, ENOSPC);
        walker w = {.model_dir = d->dir, .fn = scan_file, .ctx = d, .remove_bad = d->enabled};
        w.ex.fingerprint = d->fingerprint;
        w.ex.geometry = &d->geometry;
        ks_err werr;
        ks_err_clear(&werr);
        struct stat st;
        bool is_dir = stat(d->dir, &st) == 0 && S_ISDIR(st.st_mode);
        if (is_dir && walk(&w, &werr) != KS_OK)
            KS_LOGW("kv disk: %s", werr.msg);
        if (d->enabled)
            make_room(d, 0);
    }
    if (on && pthread_create(&d->thread, NULL, writer_main, d) != 0) {
        ks_kv_disk_close(d);
        return KS_ERRF(err, KS_ERR_NOMEM, "kv disk: cannot start the writer thread");
    }
    d->thread_started = on;
    if (on)
        KS_LOGI("kv disk: %s: %" PRIu64 " blocks (%.1f MiB) indexed, budget %.1f MiB%s", d->dir,
                d->n_files, (double)d->bytes / 1048576.0, (double)d->budget_bytes / 1048576.0,
                d->enabled ? "" : ", read-only");
    *out = d;
    return KS_OK;
}

void ks_kv_disk_close(ks_kv_disk *d) {
    if (!d)
        return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->mu);
        d->stopping = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    if (d->rstate)
        XXH3_freeState(d->rstate);
    if (d->wstate)
        XXH3_freeState(d->wstate);
    free(d->dir);
    free(d->entries);
    free(d->heap);
    free(d->table);
    free(d->jobs);
    free(d->free_slots);
    free(d->ready);
    free(d->done);
    free(d->ops);
    free(d->rpath);
    free(d->wpath);
    free(d->wtmp);
    free(d->rhead);
    free(d->whead);
    free(d);
}

void ks_kv_disk_foreach(ks_kv_disk *d,
                        void (*fn)(void *ctx, const ks_kv_key *key, const ks_kv_key *parent,
                                   uint64_t last_use),
                        void *ctx) {
    for (int32_t e = 0; e < d->n_entries; e++) {
        const entry *en = &d->entries[e];
        if (en->state == ENTRY_ON_DISK)
            fn(ctx, &en->key, &en->parent, en->last_use);
    }
}

bool ks_kv_disk_has(ks_kv_disk *d, const ks_kv_key *key) {
    int32_t e = find(d, key);
    return e >= 0 && d->entries[e].state == ENTRY_ON_DISK;
}

ks_status ks_kv_disk_write_async(ks_kv_disk *d, const ks_kv_key *key, const ks_kv_key *parent,
                                 const int32_t *tokens, const void *payload, uint64_t tag) {
    static const ks_kv_key no_parent;
    if (!parent)
        parent = &no_parent;
    if (ks_kv_key_is_zero(key) || ks_kv_key_eq(key, parent))
        return KS_ERR_INVALID;
    if (!d->enabled)
        return KS_ERR_IO;
    if (d->n_free_slots == 0) {
        d->st.dropped++;
        return KS_ERR_FULL;
    }
    int32_t e = get_or_add(d, key);
    bool duplicate = d->entries[e].state != ENTRY_GHOST;
    if (!duplicate) {
        d->entries[e].state = ENTRY_PENDING;
        d->entries[e].parent = *parent;
        link_parent(d, e); /* first, so that making room cannot evict the parent */
        d->pending_bytes += d->geometry.file_bytes;
        if (!make_room(d, 0)) {
            d->pending_bytes -= d->geometry.file_bytes;
            unlink_parent(d, e);
            d->entries[e].state = ENTRY_GHOST;
            free_if_unused(d, e);
            d->st.dropped++;
            return KS_ERR_FULL;
        }
    }
    int32_t slot = d->free_slots[--d->n_free_slots];
    job *j = &d->jobs[slot];
    memset(j, 0, sizeof *j);
    j->key = *key;
    j->parent = *parent;
    j->tokens = tokens;
    j->payload = payload;
    j->tag = tag;
    j->duplicate = duplicate;
    if (duplicate) {
        d->ready[d->n_ready++] = slot;
        return KS_OK;
    }
    pthread_mutex_lock(&d->mu);
    push_op(d, slot, key);
    pthread_mutex_unlock(&d->mu);
    return KS_OK;
}

/* Applies a finished write to the index. */
static void finish_job(ks_kv_disk *d, job *j) {
    if (j->duplicate)
        return;
    int32_t e = find(d, &j->key);
    KS_ASSERT(e >= 0 && d->entries[e].state == ENTRY_PENDING);
    d->pending_bytes -= d->geometry.file_bytes;
    if (j->err_no == 0) {
        d->st.writes++;
        add_file(d, e, now_ns());
        return;
    }
    unlink_parent(d, e);
    d->entries[e].state = ENTRY_GHOST;
    free_if_unused(d, e);
    if (j->err_no == ECANCELED) {
        d->st.dropped++;
        return;
    }
    d->st.write_errors++;
    block_path(d->rpath, d->path_bytes, d->dir, &j->key);
    if (error_is_transient(j->err_no))
        KS_LOGD("kv disk: cannot %s %s: %s", j->failed_op, d->rpath, strerror(j->err_no));
    else
        disable(d, j->failed_op, d->rpath, j->err_no);
}

int ks_kv_disk_poll_done(ks_kv_disk *d, uint64_t *tags, int cap) {
    int n = 0;
    while (n < cap && d->n_ready > 0) {
        int32_t slot = d->ready[--d->n_ready];
        tags[n++] = d->jobs[slot].tag;
        d->free_slots[d->n_free_slots++] = slot;
    }
    int32_t fin[64]; /* batch under one lock; more come out on the next round */
    while (n < cap) {
        int m = 0;
        pthread_mutex_lock(&d->mu);
        while (m < (int)KS_ARRAY_LEN(fin) && n + m < cap && d->done_n > 0) {
            fin[m++] = d->done[d->done_head];
            d->done_head = (d->done_head + 1) % (uint32_t)d->depth;
            d->done_n--;
        }
        pthread_mutex_unlock(&d->mu);
        if (m == 0)
            break;
        for (int i = 0; i < m; i++) {
            finish_job(d, &d->jobs[fin[i]]);
            tags[n++] = d->jobs[fin[i]].tag;
            d->free_slots[d->n_free_slots++] = fin[i];
        }
    }
    return n;
}

/* The file of e is bad: remove it, count it. */
static ks_status reject(ks_kv_disk *d, int32_t e, ks_status s) {
    if (s == KS_ERR_CORRUPT) {
        d->st.corrupt_skipped++;
        if (unlink(d->rpath) != 0 && errno != ENOENT)
            KS_LOGD("kv disk: cannot remove %s: %s", d->rpath, strerror(errno));
    }
    drop_file(d, e);
    return s;
}

ks_status ks_kv_disk_read(ks_kv_disk *d, const ks_kv_key *key, int32_t *tokens_out,
                          void *payload_out, ks_err *err) {
    int32_t e = find(d, key);
    char hex[33];
    ks_kv_key_hex(key, hex);
    if (e < 0 || d->entries[e].state != ENTRY_ON_DISK)
        return KS_ERRF(err, KS_ERR_IO, "kv disk: block %s is not on disk", hex);
    block_path(d->rpath, d->path_bytes, d->dir, key);
    int fd = open(d->rpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int r = errno;
        return reject(d, e, KS_ERRF(err, KS_ERR_IO, "%s: %s", d->rpath, strerror(r)));
    }
    ks_err cerr;
    ks_err_clear(&cerr);
    struct stat st;
    ks_kv_block_header h;
    expect ex = {.fingerprint = d->fingerprint, .geometry = &d->geometry, .key_hex = hex};
    ks_status s = fstat(fd, &st) != 0 ? KS_ERRF(&cerr, KS_ERR_IO, "%s", strerror(errno))
                                      : check_header_fd(fd, &st, &ex, &h, &cerr);
    if (s == KS_OK)
        s = check_body_fd(fd, &h, d->rstate, d->rhead, payload_out, NULL, 0, &cerr);
    if (s != KS_OK) {
        close(fd);
        KS_ERRF(err, s, "%s: %s", d->rpath, cerr.msg);
        return reject(d, e, s);
    }
    futimens(fd, NULL); /* the file's mtime carries its last use across restarts */
    close(fd);
    for (int i = 0; i < h.block_tokens; i++)
        tokens_out[i] = (int32_t)get_u32(d->rhead + KS_KV_BLOCK_HEADER_BYTES + 4 * i);
    entry *en = &d->entries[e];
    en->last_use = now_ns();
    if (en->heap_pos >= 0)
        heap_fix(d, en->heap_pos);
    d->st.reads++;
    return KS_OK;
}

void ks_kv_disk_stats_get(ks_kv_disk *d, ks_kv_disk_stats *out) {
    *out = d->st;
    out->files = d->n_files;
    out->bytes = d->bytes;
    out->pending = (uint64_t)(d->depth - d->n_free_slots);
    out->enabled = d->enabled;
}

/* ---- Paths -------------------------------------------------------------------------- */

ks_status ks_kv_disk_default_root(char *buf, size_t n, ks_err *err) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int w;
    if (xdg && xdg[0] == '/') /* the XDG spec: relative values are ignored */
        w = snprintf(buf, n, "%s/kvserve", xdg);
    else if (home && home[0] == '/')
        w = snprintf(buf, n, "%s/.cache/kvserve", home);
    else
        return KS_ERRF(err, KS_ERR_INVALID,
                       "no cache directory: set XDG_CACHE_HOME or HOME, or pass --kv-dir");
    if (w < 0 || (size_t)w >= n)
        return KS_ERRF(err, KS_ERR_FULL, "cache directory path too long");
    return KS_OK;
}

ks_status ks_kv_disk_model_dir(const char *root, const uint8_t fingerprint[16], char *buf,
                               size_t n, ks_err *err) {
    ks_kv_key k;
    memcpy(k.b, fingerprint, 16);
    char hex[33];
    ks_kv_key_hex(&k, hex);
    int w = snprintf(buf, n, "%s/%s", root, hex);
    if (w < 0 || (size_t)w >= n)
        return KS_ERRF(err, KS_ERR_FULL, "cache directory path too long");
    return KS_OK;
}
