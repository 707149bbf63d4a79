/* kv_disk.h — the disk tier of the KV cache: one file per full KV block, named by its
 * key, under a directory that belongs to one model (file format at the top of kv_disk.c).
 *
 * Owns: the block files of one model directory, their in-memory index (key, parent key,
 * last use), the disk budget (leaf-first LRU eviction of files) and the one writer
 * thread. Does not own: block keys (kv_cache computes them, kv_key.h), the RAM blocks
 * (kv_pool), nor the choice of what to persist or read back (kv_cache's policy).
 *
 * Threads: every ks_kv_disk_* call on an open ks_kv_disk comes from the engine thread;
 * the writer thread only writes and removes files and talks to the engine thread through
 * two queues (requests in, finished writes out). The index is the engine thread's.
 *
 * Faults: a file that fails any check (name, magic, version, header checksum, model
 * fingerprint, geometry, size, payload checksum) is never loaded: it is counted in
 * corrupt_skipped and removed. A disk that refuses writes (full, read-only, gone, I/O
 * errors) switches writing off with one warning; reads of the files already indexed go
 * on, and the engine keeps serving from RAM. */
#ifndef KS_KV_DISK_H
#define KS_KV_DISK_H

#include "core/status.h"
#include "kv/kv_key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_kv_disk ks_kv_disk;

typedef struct ks_kv_disk_params {
    /* The model's directory, e.g. "<root>/<fingerprint hex>" (see ks_kv_disk_model_dir);
     * created if missing. NULL turns the tier off. */
    const char *dir;
    /* Bytes of block files kept (--kv-disk); 0 turns the tier off, less than one file
     * turns writing off. Past it the least recently used file that is no other file's
     * parent is removed first. */
    uint64_t budget_bytes;
    uint8_t fingerprint[16]; /* the model's; written in and checked against every file */
    uint32_t kv_type;        /* ks_type id of the K/V rows */
    int block_tokens;        /* B */
    int n_layer;
    uint64_t row_bytes;      /* bytes of one K (or V) row of one token and layer */
    uint64_t block_bytes;    /* payload bytes: 2 * n_layer * B * row_bytes */
    /* Writes that may be outstanding (submitted, not yet returned by poll_done); 0 for
     * KS_KV_DISK_QUEUE_DEPTH_DEFAULT. Each one pins a RAM block in the caller. */
    int queue_depth;
} ks_kv_disk_params;

/* A prefill burst of ~4K tokens (64 blocks of 64) can queue while the disk catches up;
 * more would pin RAM blocks the cache could otherwise evict. */
#define KS_KV_DISK_QUEUE_DEPTH_DEFAULT 64

typedef struct ks_kv_disk_stats {
    uint64_t files;           /* block files indexed (verified headers) */
    uint64_t bytes;           /* their size on disk */
    uint64_t pending;         /* writes submitted and not yet finished */
    uint64_t writes;          /* block files written since open */
    uint64_t reads;           /* block files read back (fully verified) since open */
    uint64_t corrupt_skipped; /* files that failed a check, at scan or read: removed */
    uint64_t write_errors;    /* writes that failed (I/O error, disk full, ...) */
    uint64_t dropped;         /* writes refused: queue full or budget held by parents */
    uint64_t evicted;         /* files removed to stay within the budget */
    bool enabled;             /* false once writing is off (see Faults) */
} ks_kv_disk_stats;

/* Opens the tier for one model: validates p (KS_ERR_INVALID with a message), creates
 * the directory, and indexes the files in it by reading their headers only (payload
 * checksums are verified when a block is read). Leftover temporary files of crashed
 * writes are removed once stale; files beyond the budget are evicted.
 *
 * An unusable directory is not an error: the tier opens with writing off, one warning
 * is logged, and has() answers false for everything not indexed. *out is the caller's,
 * freed by ks_kv_disk_close. p->dir is copied. */
ks_status ks_kv_disk_open(ks_kv_disk **out, const ks_kv_disk_params *p, ks_err *err);

/* Finishes every queued write (their tags are not reported), stops the writer and frees
 * d. Accepts NULL. Buffers of queued writes must stay valid until it returns. */
void ks_kv_disk_close(ks_kv_disk *d);

/* Calls fn for every indexed block file; the pointers are valid during the call only.
 * last_use: nanoseconds since the Unix epoch (file mtime at scan, then last write/read).
 * fn must not call back into d. */
void ks_kv_disk_foreach(ks_kv_disk *d,
                        void (*fn)(void *ctx, const ks_kv_key *key, const ks_kv_key *parent,
                                   uint64_t last_use),
                        void *ctx);

/* True if a file of this key is indexed (writes still in flight do not count). */
bool ks_kv_disk_has(ks_kv_disk *d, const ks_kv_key *key);

/* Queues the block for writing. parent: the previous block's key, all zero (or NULL)
 * for a first block. tokens (block_tokens ids) and payload (block_bytes) are borrowed:
 * they must stay valid and unchanged until poll_done returns tag.
 *
 *   KS_OK             queued (or already on disk / in flight: nothing to write); tag
 *                     will come out of poll_done
 *   KS_ERR_FULL       queue_depth writes outstanding, or the budget is all held by
 *                     parents of blocks in flight: not persisted; buffers free now
 *   KS_ERR_IO         writing is off: not persisted; buffers free now
 *   KS_ERR_INVALID    key is the zero key or equal to parent */
ks_status ks_kv_disk_write_async(ks_kv_disk *d, const ks_kv_key *key, const ks_kv_key *parent,
                                 const int32_t *tokens, const void *payload, uint64_t tag);

/* Non-blocking: copies up to cap tags of finished writes (written or failed) to tags and
 * returns how many. A failed write is counted in write_errors and leaves no file. */
int ks_kv_disk_poll_done(ks_kv_disk *d, uint64_t *tags, int cap);

/* Reads the block of key into tokens_out (block_tokens ids) and payload_out (block_bytes)
 * after checking everything in the file against this model and the key.
 *
 *   KS_OK            both outputs filled; the file's last use is now
 *   KS_ERR_CORRUPT   the file failed a check: it is removed and counted, err says why
 *   KS_ERR_IO        no such file (not indexed, or removed by someone else) or a read
 *                    error; the key is no longer indexed
 * On failure tokens_out is untouched and payload_out's contents are unspecified. Runs
 * on the calling thread (one file read, ~block_bytes). */
ks_status ks_kv_disk_read(ks_kv_disk *d, const ks_kv_key *key, int32_t *tokens_out,
                          void *payload_out, ks_err *err);

void ks_kv_disk_stats_get(ks_kv_disk *d, ks_kv_disk_stats *out);

/* ---- Paths ------------------------------------------------------------------------- */

/* The default cache root: "$XDG_CACHE_HOME/kvserve", else "$HOME/.cache/kvserve".
 * KS_ERR_INVALID if neither variable gives an absolute path, KS_ERR_FULL if n is short. */
ks_status ks_kv_disk_default_root(char *buf, size_t n, ks_err *err);
/* "<root>/<32 hex digits of fingerprint>". KS_ERR_FULL if n is short. */
ks_status ks_kv_disk_model_dir(const char *root, const uint8_t fingerprint[16], char *buf,
                               size_t n, ks_err *err);

/* ---- Block files, without a model (the `kvserve cache` commands, the fuzz target) -- */

#define KS_KV_BLOCK_HEADER_BYTES 96
#define KS_KV_BLOCK_VERSION 1

/* The fixed header of a block file, decoded. */
typedef struct ks_kv_block_header {
    uint32_t version;
    uint32_t kv_type;
    uint8_t fingerprint[16];
    ks_kv_key key;
    ks_kv_key parent;
    int32_t block_tokens;
    int32_t n_layer;
    uint64_t row_bytes;
    uint64_t payload_bytes;
    uint64_t file_bytes; /* derived: header + tokens + payload + checksum */
} ks_kv_block_header;

/* Decodes and checks the first KS_KV_BLOCK_HEADER_BYTES of a file: magic, version,
 * header checksum, geometry (bounded, consistent, no overflow), key != parent.
 * KS_ERR_CORRUPT with the failing field otherwise. *h is written only on success. */
ks_status ks_kv_block_header_parse(ks_kv_block_header *h, const void *buf, size_t n,
                                   ks_err *err);

/* Checks a whole block file held in memory: header, size and payload checksum. */
ks_status ks_kv_block_check(ks_kv_block_header *h, const void *file, size_t n, ks_err *err);

typedef struct ks_kv_file_info {
    const char *path;               /* valid during the callback */
    bool temp;                      /* a temporary file of an unfinished write */
    ks_status status;               /* KS_OK, or why the file fails (msg) */
    const char *msg;                /* "" when status is KS_OK */
    const ks_kv_block_header *hdr;  /* NULL when the header failed (or temp) */
    uint64_t size;                  /* bytes */
    uint64_t mtime_ns;              /* since the Unix epoch */
    bool removed;                   /* the walk deleted it */
} ks_kv_file_info;

#define KS_KV_WALK_VERIFY 1u     /* read whole files and check the payload checksum too */
#define KS_KV_WALK_REMOVE_BAD 2u /* delete files that fail, and stale temporary files */
#define KS_KV_WALK_REMOVE_ALL 4u /* delete every block and temporary file, then the
                                  * emptied shard directories and the model directory */

/* Visits every block file and temporary file under one model directory, checking each
 * (headers only, or everything with KS_KV_WALK_VERIFY) against fingerprint when it is
 * not NULL. fn may be NULL. A missing directory visits nothing and is not an error;
 * KS_ERR_IO for a directory that cannot be listed. */
ks_status ks_kv_disk_walk(const char *model_dir, const uint8_t *fingerprint, unsigned flags,
                          void (*fn)(void *ctx, const ks_kv_file_info *f), void *ctx,
                          ks_err *err);

/* True if path is a directory named by a fingerprint (32 lowercase hex digits, the last
 * component of path); fills fingerprint. */
bool ks_kv_disk_is_model_dir(const char *path, uint8_t fingerprint[16]);

/* Calls fn for every model directory (named by 32 hex digits) under root. A missing
 * root visits nothing; KS_ERR_IO if it cannot be listed. */
ks_status ks_kv_disk_list_models(const char *root,
                                 void (*fn)(void *ctx, const char *model_dir,
                                            const uint8_t fingerprint[16]),
                                 void *ctx, ks_err *err);

#endif
