/* cmd_cache.c — `kvserve cache stats|ls|verify|clear`: the on-disk KV cache, without a
 * model. The cache root (--kv-dir, default $XDG_CACHE_HOME/kvserve) holds one directory
 * per model fingerprint; each block file's header carries its geometry, so everything
 * here works from the files alone (kv/kv_disk.h does the reading and checking).
 *
 *   stats   per model directory: blocks, bytes, geometry, age range, bad/temporary files
 *   ls      one line per block file: key, parent, size, last use
 *   verify  reads every file whole and checks its checksum; removes the bad ones
 *   clear   removes every block file (and then the emptied directories) */
#include "commands.h"

#include "kv/kv_disk.h"
#include "model/kv_layout.h"
#include "tensor/types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve cache stats|ls|verify|clear [--kv-dir DIR] [--model FINGERPRINT]\n"
            "\n"
            "  stats    blocks, bytes and geometry per model directory\n"
            "  ls       one line per block file: key, parent key, bytes, last use\n"
            "  verify   check every file's checksum; bad files are reported and removed\n"
            "  clear    remove the block files\n"
            "\n"
            "  --kv-dir DIR          cache root (default $XDG_CACHE_HOME/kvserve, else\n"
            "                        ~/.cache/kvserve), or one model's directory in it\n"
            "  --model FINGERPRINT   only model directories whose name starts with it\n");
}

typedef enum { CACHE_STATS, CACHE_LS, CACHE_VERIFY, CACHE_CLEAR } cache_cmd;

typedef struct model_dir {
    char *path;
    char hex[33];
    uint8_t fingerprint[16];
} model_dir;

typedef struct model_list {
    model_dir *v;
    int n, cap;
    const char *prefix; /* --model */
} model_list;

typedef struct file_line {  /* one `ls` row */
    char key[33], parent[33];
    uint64_t size, mtime_ns;
} file_line;

typedef struct tally {
    cache_cmd cmd;
    uint64_t now_ns;
    uint64_t ok, bad, temp, removed, bytes, removed_bytes;
    uint64_t oldest_ns, newest_ns;
    ks_kv_block_header geometry; /* of the first good file */
    bool have_geometry, mixed_geometry;
    file_line *lines;
    size_t n_lines, cap_lines;
} tally;

static void add_model(void *ctx, const char *path, const uint8_t fingerprint[16]) {
    model_list *l = ctx;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (l->prefix && strncmp(name, l->prefix, strlen(l->prefix)) != 0)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        if (!l->v) {
            fprintf(stderr, "kvserve cache: out of memory\n");
            exit(1);
        }
    }
    model_dir *m = &l->v[l->n++];
    m->path = strdup(path);
    snprintf(m->hex, sizeof m->hex, "%s", name);
    memcpy(m->fingerprint, fingerprint, 16);
}

static int by_hex(const void *a, const void *b) {
    return strcmp(((const model_dir *)a)->hex, ((const model_dir *)b)->hex);
}

static int by_mtime(const void *a, const void *b) {
    const file_line *x = a, *y = b;
    return x->mtime_ns != y->mtime_ns ? (x->mtime_ns < y->mtime_ns ? -1 : 1)
                                      : strcmp(x->key, y->key);
}

static void format_bytes(char *buf, size_t n, uint64_t bytes) {
    if (bytes < 1024)
        snprintf(buf, n, "%" PRIu64 " B", bytes);
    else if (bytes < (1u << 20))
        snprintf(buf, n, "%.1f KiB", (double)bytes / 1024.0);
    else if (bytes < (1u << 30))
        snprintf(buf, n, "%.1f MiB", (double)bytes / 1048576.0);
    else
        snprintf(buf, n, "%.2f GiB", (double)bytes / 1073741824.0);
}

static void format_age(char *buf, size_t n, uint64_t now_ns, uint64_t then_ns) {
    uint64_t s = now_ns > then_ns ? (now_ns - then_ns) / 1000000000u : 0;
    if (s < 120)
        snprintf(buf, n, "%" PRIu64 "s", s);
    else if (s < 7200)
        snprintf(buf, n, "%" PRIu64 "m", s / 60);
    else if (s < 172800)
        snprintf(buf, n, "%" PRIu64 "h", s / 3600);
    else
        snprintf(buf, n, "%" PRIu64 "d", s / 86400);
}

static void on_file(void *ctx, const ks_kv_file_info *f) {
    tally *t = ctx;
    if (f->removed) {
        t->removed++;
        t->removed_bytes += f->size;
    }
    if (f->temp) {
        t->temp++;
        return;
    }
    if (f->status != KS_OK) {
        t->bad++;
        if (t->cmd != CACHE_CLEAR)
            printf("bad    %s: %s%s\n", f->path, f->msg, f->removed ? " (removed)" : "");
        return;
    }
    t->ok++;
    t->bytes += f->size;
    if (!t->oldest_ns || f->mtime_ns < t->oldest_ns)
        t->oldest_ns = f->mtime_ns;
    if (f->mtime_ns > t->newest_ns)
        t->newest_ns = f->mtime_ns;
    const ks_kv_block_header *h = f->hdr;
    if (!t->have_geometry) {
        t->geometry = *h;
        t->have_geometry = true;
    } else if (h->kv_type != t->geometry.kv_type || h->block_tokens != t->geometry.block_tokens ||
               h->n_layer != t->geometry.n_layer || h->row_bytes != t->geometry.row_bytes) {
        t->mixed_geometry = true;
    }
    if (t->cmd == CACHE_LS) {
        if (t->n_lines == t->cap_lines) {
            t->cap_lines = t->cap_lines ? 2 * t->cap_lines : 256;
            t->lines = realloc(t->lines, t->cap_lines * sizeof *t->lines);
            if (!t->lines) {
                fprintf(stderr, "kvserve cache: out of memory\n");
                exit(1);
            }
        }
        file_line *l = &t->lines[t->n_lines++];
        ks_kv_key_hex(&h->key, l->key);
        if (ks_kv_key_is_zero(&h->parent))
            snprintf(l->parent, sizeof l->parent, "-");
        else
            ks_kv_key_hex(&h->parent, l->parent);
        l->size = f->size;
        l->mtime_ns = f->mtime_ns;
    }
}

static void print_summary(const model_dir *m, const tally *t) {
    char bytes[32], newest[16], oldest[16];
    format_bytes(bytes, sizeof bytes, t->bytes);
    printf("%s  %" PRIu64 " blocks  %s", m->hex, t->ok, bytes);
    if (t->have_geometry) {
        printf("  kv %s%s B=%d n_layer=%d row_bytes=%" PRIu64 "%s", ks_type_name(t->geometry.kv_type & ~KS_KV_K_PANELS),
               t->geometry.kv_type & KS_KV_K_PANELS ? " (keys in panels)" : "",
               (int)t->geometry.block_tokens, (int)t->geometry.n_layer, t->geometry.row_bytes,
               t->mixed_geometry ? " (and others)" : "");
        format_age(newest, sizeof newest, t->now_ns, t->newest_ns);
        format_age(oldest, sizeof oldest, t->now_ns, t->oldest_ns);
        printf("  last use %s to %s ago", newest, oldest);
    }
    if (t->bad)
        printf("  %" PRIu64 " bad", t->bad);
    if (t->temp)
        printf("  %" PRIu64 " temporary", t->temp);
    printf("\n");
}

int ks_cmd_cache(int argc, char **argv) {
    const char *sub = NULL, *root_opt = NULL, *prefix = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--kv-dir") && i + 1 < argc) {
            root_opt = argv[++i];
        } else if (!strcmp(a, "--model") && i + 1 < argc) {
            prefix = argv[++i];
        } else if (a[0] != '-' && !sub) {
            sub = a;
        } else {
            fprintf(stderr, "kvserve cache: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    static const char *const names[] = {[CACHE_STATS] = "stats", [CACHE_LS] = "ls",
                                        [CACHE_VERIFY] = "verify", [CACHE_CLEAR] = "clear"};
    int found = -1;
    for (int i = 0; sub && i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(sub, names[i]))
            found = i;
    if (found < 0) {
        if (sub)
            fprintf(stderr, "kvserve cache: unknown command '%s'\n", sub);
        usage(stderr);
        return 2;
    }
    cache_cmd cmd = (cache_cmd)found;

    ks_err err;
    ks_err_clear(&err);
    char root[4096];
    if (root_opt)
        snprintf(root, sizeof root, "%s", root_opt);
    else if (ks_kv_disk_default_root(root, sizeof root, &err) != KS_OK) {
        fprintf(stderr, "kvserve cache: %s\n", err.msg);
        return 1;
    }
    size_t len = strlen(root);
    while (len > 1 && root[len - 1] == '/')
        root[--len] = '\0';

    /* The root, or (named by a fingerprint) one model directory. */
    model_list models = {.prefix = prefix};
    uint8_t fp[16];
    if (ks_kv_disk_is_model_dir(root, fp))
        add_model(&models, root, fp);
    else if (ks_kv_disk_list_models(root, add_model, &models, &err) != KS_OK) {
        fprintf(stderr, "kvserve cache: %s\n", err.msg);
        return 1;
    }
    qsort(models.v, (size_t)models.n, sizeof *models.v, by_hex);

    unsigned flags = cmd == CACHE_VERIFY  ? KS_KV_WALK_VERIFY | KS_KV_WALK_REMOVE_BAD
                     : cmd == CACHE_CLEAR ? KS_KV_WALK_REMOVE_ALL
                                          : 0;
    uint64_t total_ok = 0, total_bad = 0, total_bytes = 0, total_removed = 0, total_removed_bytes = 0;
    int rc = 0;
    if (cmd == CACHE_STATS || cmd == CACHE_LS)
        printf("cache %s: %d model director%s\n", root, models.n, models.n == 1 ? "y" : "ies");
    for (int i = 0; i < models.n; i++) {
        const model_dir *m = &models.v[i];
        tally t = {.cmd = cmd};
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t.now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        ks_err_clear(&err);
        if (ks_kv_disk_walk(m->path, m->fingerprint, flags, on_file, &t, &err) != KS_OK) {
            fprintf(stderr, "kvserve cache: %s\n", err.msg);
            rc = 1;
        }
        if (cmd == CACHE_STATS || cmd == CACHE_LS)
            print_summary(m, &t);
        if (cmd == CACHE_LS) {
            qsort(t.lines, t.n_lines, sizeof *t.lines, by_mtime);
            for (size_t k = 0; k < t.n_lines; k++) {
                char bytes[32], age[16];
                format_bytes(bytes, sizeof bytes, t.lines[k].size);
                format_age(age, sizeof age, t.now_ns, t.lines[k].mtime_ns);
                printf("  %s  parent %-32s  %10s  used %s ago\n", t.lines[k].key, t.lines[k].parent,
                       bytes, age);
            }
        }
        if (cmd == CACHE_VERIFY)
            printf("%s  %" PRIu64 " ok, %" PRIu64 " bad (removed %" PRIu64 ")\n", m->hex, t.ok, t.bad,
                   t.removed);
        if (cmd == CACHE_CLEAR) {
            char bytes[32];
            format_bytes(bytes, sizeof bytes, t.removed_bytes);
            printf("%s  removed %" PRIu64 " files (%s)\n", m->hex, t.removed, bytes);
        }
        total_ok += t.ok;
        total_bad += t.bad;
        total_bytes += t.bytes;
        total_removed += t.removed;
        total_removed_bytes += t.removed_bytes;
        free(t.lines);
        free(m->path);
    }
    free(models.v);
    char bytes[32];
    if (cmd == CACHE_STATS) {
        format_bytes(bytes, sizeof bytes, total_bytes);
        printf("total  %" PRIu64 " blocks  %s\n", total_ok, bytes);
    } else if (cmd == CACHE_VERIFY) {
        printf("total  %" PRIu64 " ok, %" PRIu64 " bad\n", total_ok, total_bad);
        if (total_bad)
            rc = 1;
    } else if (cmd == CACHE_CLEAR) {
        format_bytes(bytes, sizeof bytes, total_removed_bytes);
        printf("total  removed %" PRIu64 " files (%s)\n", total_removed, bytes);
    }
    return rc;
}
