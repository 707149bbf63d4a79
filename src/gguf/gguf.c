/* gguf.c — the GGUF reader (format and guarantees in gguf.h).
 *
 * Divisions, in the order a file is read:
 *   cursor      bounds-checked little-endian reads; every failure names field + offset
 *   values      metadata values, recursive for nested arrays (depth-limited)
 *   header      magic, version, counts (checked against the bytes left, so absurd counts
 *               fail before anything is allocated for them)
 *   directory   tensor infos: dims, type, sizes (overflow-checked), offsets, alignment
 *   index       sorted views of keys and tensor names: lookups and duplicate detection
 *   getters     typed access with integer width/signedness conversion
 */
#include "gguf/gguf.h"

#include "platform/file_map.h"
#include "tensor/types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_ARRAY_DEPTH 8  /* nested arrays deeper than this are not real metadata */
#define GGUF_MAX_NAME_BYTES 63  /* ggml's tensor name buffer is 64 bytes with the NUL */

struct ks_gguf {
    char *path;
    ks_file_map map;             /* empty when opened over memory */
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t n_kv, n_tensors;
    ks_gguf_kv *kvs;
    ks_gguf_tensor *tensors;
    uint64_t *kv_sorted;         /* indices into kvs, sorted by key */
    uint64_t *tensor_sorted;     /* indices into tensors, sorted by name */
    void **allocs;               /* item arrays of string/array values */
    size_t n_allocs, cap_allocs;
};

/* ---- cursor ------------------------------------------------------------------------- */

typedef struct cursor {
    ks_gguf *g;
    uint64_t pos;
    ks_err *err;
} cursor;

static ks_status corrupt(cursor *c, uint64_t at, const char *field, const char *what) {
    return KS_ERRF(c->err, KS_ERR_CORRUPT, "%s: corrupt GGUF: %s at offset %" PRIu64 ": %s",
                   c->g->path, field, at, what);
}

static uint64_t left(const cursor *c) { return c->g->size - c->pos; }

static ks_status read_bytes(cursor *c, void *dst, uint64_t n, const char *field) {
    if (n > left(c))
        return corrupt(c, c->pos, field, "file truncated");
    memcpy(dst, c->g->base + c->pos, (size_t)n);
    c->pos += n;
    return KS_OK;
}

static ks_status read_u32(cursor *c, uint32_t *v, const char *field) {
    return read_bytes(c, v, 4, field);
}

static ks_status read_u64(cursor *c, uint64_t *v, const char *field) {
    return read_bytes(c, v, 8, field);
}

static ks_status read_str(cursor *c, ks_gguf_str *s, const char *field) {
    uint64_t at = c->pos, len = 0;
    ks_status st = read_u64(c, &len, field);
    if (st)
        return st;
    if (len > left(c)) {
        char what[96];
        snprintf(what, sizeof what, "string length %" PRIu64 " exceeds the %" PRIu64
                 " bytes left", len, left(c));
        return corrupt(c, at, field, what);
    }
    s->ptr = (const char *)c->g->base + c->pos;
    s->len = len;
    c->pos += len;
    return KS_OK;
}

/* ---- values ------------------------------------------------------------------------- */

size_t ks_gguf_type_size(uint32_t t) {
    switch (t) {
    case KS_GGUF_UINT8: case KS_GGUF_INT8: case KS_GGUF_BOOL: return 1;
    case KS_GGUF_UINT16: case KS_GGUF_INT16: return 2;
    case KS_GGUF_UINT32: case KS_GGUF_INT32: case KS_GGUF_FLOAT32: return 4;
    case KS_GGUF_UINT64: case KS_GGUF_INT64: case KS_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *ks_gguf_type_name(uint32_t t) {
    static const char *const names[KS_GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
        "bool", "string", "array", "uint64", "int64", "float64"};
    return t < KS_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Smallest encoding of one element: used to reject counts the file cannot hold. */
static uint64_t min_encoded_size(uint32_t t) {
    if (t == KS_GGUF_STRING) return 8;       /* u64 length */
    if (t == KS_GGUF_ARRAY) return 12;       /* u32 type + u64 count */
    return ks_gguf_type_size(t);
}

static void *track(ks_gguf *g, void *p) {
    if (!p)
        return NULL;
    if (g->n_allocs == g->cap_allocs) {
        size_t cap = g->cap_allocs ? 2 * g->cap_allocs : 16;
        void **a = realloc(g->allocs, cap * sizeof *a);
        if (!a) {
            free(p);
            return NULL;
        }
        g->allocs = a;
        g->cap_allocs = cap;
    }
    g->allocs[g->n_allocs++] = p;
    return p;
}

static ks_status read_value(cursor *c, uint32_t type, ks_gguf_value *v, const char *field,
                            int depth);

static ks_status read_array(cursor *c, ks_gguf_value *v, const char *field, int depth) {
    uint64_t at = c->pos;
    uint32_t et = 0;
    uint64_t n = 0;
    ks_status s = read_u32(c, &et, field);
    if (!s)
        s = read_u64(c, &n, field);
    if (s)
        return s;
    if (et >= KS_GGUF_TYPE_COUNT) {
        char what[64];
        snprintf(what, sizeof what, "unknown array element type %u", et);
        return corrupt(c, at, field, what);
    }
    if (et == KS_GGUF_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return corrupt(c, at, field, "arrays nested too deeply");
    if (n > left(c) / min_encoded_size(et)) {
        char what[128];
        snprintf(what, sizeof what, "array of %" PRIu64 " %s elements cannot fit in the %" PRIu64
                 " bytes left", n, ks_gguf_type_name(et), left(c));
        return corrupt(c, at, field, what);
    }
    v->type = KS_GGUF_ARRAY;
    v->v.arr.elem_type = (ks_gguf_type)et;
    v->v.arr.n = n;
    v->v.arr.raw = NULL;
    v->v.arr.items = NULL;
    if (et != KS_GGUF_STRING && et != KS_GGUF_ARRAY) {
        v->v.arr.raw = c->g->base + c->pos;
        if (et == KS_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (c->g->base[c->pos + i] > 1)
                    return corrupt(c, c->pos + i, field, "bool element is neither 0 nor 1");
        }
        c->pos += n * ks_gguf_type_size(et);
        return KS_OK;
    }
    ks_gguf_value *items = track(c->g, calloc(n ? (size_t)n : 1, sizeof *items));
    if (!items)
        return KS_ERRF(c->err, KS_ERR_NOMEM, "%s: out of memory for %s (%" PRIu64 " items)",
                       c->g->path, field, n);
    for (uint64_t i = 0; i < n; i++) {
        s = read_value(c, et, &items[i], field, depth + 1);
        if (s)
            return s;
    }
    v->v.arr.items = items;
    return KS_OK;
}

static ks_status read_value(cursor *c, uint32_t type, ks_gguf_value *v, const char *field,
                            int depth) {
    uint64_t at = c->pos;
    uint8_t b[8] = {0};
    ks_status s;
    v->type = (ks_gguf_type)type;
    switch (type) {
    case KS_GGUF_UINT8:
        if ((s = read_bytes(c, b, 1, field))) return s;
        v->v.u64 = b[0];
        return KS_OK;
    case KS_GGUF_INT8: {
        int8_t x = 0;
        if ((s = read_bytes(c, &x, 1, field))) return s;
        v->v.i64 = x;
        return KS_OK;
    }
    case KS_GGUF_UINT16: {
        uint16_t x = 0;
        if ((s = read_bytes(c, &x, 2, field))) return s;
        v->v.u64 = x;
        return KS_OK;
    }
    case KS_GGUF_INT16: {
        int16_t x = 0;
        if ((s = read_bytes(c, &x, 2, field))) return s;
        v->v.i64 = x;
        return KS_OK;
    }
    case KS_GGUF_UINT32: {
        uint32_t x = 0;
        if ((s = read_bytes(c, &x, 4, field))) return s;
        v->v.u64 = x;
        return KS_OK;
    }
    case KS_GGUF_INT32: {
        int32_t x = 0;
        if ((s = read_bytes(c, &x, 4, field))) return s;
        v->v.i64 = x;
        return KS_OK;
    }
    case KS_GGUF_UINT64:
        return read_bytes(c, &v->v.u64, 8, field);
    case KS_GGUF_INT64:
        return read_bytes(c, &v->v.i64, 8, field);
    case KS_GGUF_FLOAT32: {
        float x = 0;
        if ((s = read_bytes(c, &x, 4, field))) return s;
        v->v.f64 = x;
        return KS_OK;
    }
    case KS_GGUF_FLOAT64:
        return read_bytes(c, &v->v.f64, 8, field);
    case KS_GGUF_BOOL:
        if ((s = read_bytes(c, b, 1, field))) return s;
        if (b[0] > 1)
            return corrupt(c, at, field, "bool is neither 0 nor 1");
        v->v.b = b[0] != 0;
        return KS_OK;
    case KS_GGUF_STRING:
        return read_str(c, &v->v.str, field);
    case KS_GGUF_ARRAY:
        return read_array(c, v, field, depth);
    default: {
        char what[48];
        snprintf(what, sizeof what, "unknown value type %u", type);
        return corrupt(c, at, field, what);
    }
    }
}

/* ---- index -------------------------------------------------------------------------- */

static int str_cmp(ks_gguf_str a, ks_gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.ptr, b.ptr, (size_t)n) : 0;
    if (r)
        return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

bool ks_gguf_str_eq(ks_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* qsort has no context argument: sort (name, index) pairs instead. */
typedef struct named {
    ks_gguf_str name;
    uint64_t index;
} named;

static int named_cmp(const void *a, const void *b) {
    return str_cmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Sorts names; on a duplicate returns its index via *dup and fails. */
static ks_status build_index(uint64_t n, const ks_gguf_str *(*name_at)(const ks_gguf *, uint64_t),
                             const ks_gguf *g, uint64_t **out, uint64_t *dup, ks_err *err) {
    named *tmp = malloc((n ? (size_t)n : 1) * sizeof *tmp);
    uint64_t *idx = malloc((n ? (size_t)n : 1) * sizeof *idx);
    if (!tmp || !idx) {
        free(tmp);
        free(idx);
        return KS_ERRF(err, KS_ERR_NOMEM, "%s: out of memory for the index", g->path);
    }
    for (uint64_t i = 0; i < n; i++) {
        tmp[i].name = *name_at(g, i);
        tmp[i].index = i;
    }
    qsort(tmp, (size_t)n, sizeof *tmp, named_cmp);
    for (uint64_t i = 0; i < n; i++) {
        if (i > 0 && str_cmp(tmp[i - 1].name, tmp[i].name) == 0) {
            *dup = tmp[i].index > tmp[i - 1].index ? tmp[i].index : tmp[i - 1].index;
            free(tmp);
            free(idx);
            return KS_ERR_CORRUPT;
        }
        idx[i] = tmp[i].index;
    }
    free(tmp);
    *out = idx;
    return KS_OK;
}

static const ks_gguf_str *kv_name(const ks_gguf *g, uint64_t i) { return &g->kvs[i].key; }
static const ks_gguf_str *tensor_name(const ks_gguf *g, uint64_t i) { return &g->tensors[i].name; }

static int64_t lookup(const uint64_t *sorted, uint64_t n,
                      const ks_gguf_str *(*name_at)(const ks_gguf *, uint64_t), const ks_gguf *g,
                      const char *key) {
    ks_gguf_str k = {key, strlen(key)};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int r = str_cmp(*name_at(g, sorted[mid]), k);
        if (r == 0)
            return (int64_t)sorted[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ---- header and directory ----------------------------------------------------------- */

static ks_status parse_kvs(cursor *c) {
    ks_gguf *g = c->g;
    g->kvs = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kvs);
    if (!g->kvs)
        return KS_ERRF(c->err, KS_ERR_NOMEM, "%s: out of memory for %" PRIu64 " metadata keys",
                       g->path, g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        ks_gguf_kv *kv = &g->kvs[i];
        kv->file_offset = c->pos;
        char field[160];
        snprintf(field, sizeof field, "metadata key #%" PRIu64, i);
        ks_status s = read_str(c, &kv->key, field);
        if (s)
            return s;
        /* From here on, messages name the key itself. */
        snprintf(field, sizeof field, "metadata '%.*s'", (int)(kv->key.len > 100 ? 100 : kv->key.len),
                 kv->key.ptr);
        uint32_t type = 0;
        uint64_t type_at = c->pos;
        if ((s = read_u32(c, &type, field)))
            return s;
        if (type >= KS_GGUF_TYPE_COUNT) {
            char what[48];
            snprintf(what, sizeof what, "unknown value type %u", type);
            return corrupt(c, type_at, field, what);
        }
        if ((s = read_value(c, type, &kv->value, field, 0)))
            return s;
    }
    uint64_t dup = 0;
    ks_status s = build_index(g->n_kv, kv_name, g, &g->kv_sorted, &dup, c->err);
    if (s == KS_ERR_CORRUPT) {
        char field[160];
        snprintf(field, sizeof field, "metadata '%.*s'", (int)(g->kvs[dup].key.len > 100 ? 100 : g->kvs[dup].key.len),
                 g->kvs[dup].key.ptr);
        return corrupt(c, g->kvs[dup].file_offset, field, "duplicate key");
    }
    return s;
}

static ks_status parse_alignment(cursor *c) {
    ks_gguf *g = c->g;
    g->alignment = KS_GGUF_DEFAULT_ALIGNMENT;
    int64_t i = lookup(g->kv_sorted, g->n_kv, kv_name, g, "general.alignment");
    if (i < 0)
        return KS_OK;
    const ks_gguf_kv *kv = &g->kvs[i];
    if (kv->value.type != KS_GGUF_UINT32)
        return corrupt(c, kv->file_offset, "metadata 'general.alignment'", "must be a uint32");
    uint64_t a = kv->value.v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return corrupt(c, kv->file_offset, "metadata 'general.alignment'", "must be a power of two");
    g->alignment = (uint32_t)a;
    return KS_OK;
}

static ks_status parse_tensor_info(cursor *c, uint64_t i, ks_gguf_tensor *t) {
    char field[160];
    snprintf(field, sizeof field, "tensor #%" PRIu64 " name", i);
    uint64_t at = c->pos;
    ks_status s = read_str(c, &t->name, field);
    if (s)
        return s;
    if (t->name.len > GGUF_MAX_NAME_BYTES)
        return corrupt(c, at, field, "name longer than 63 bytes");
    snprintf(field, sizeof field, "tensor '%.*s'", (int)t->name.len, t->name.ptr);

    at = c->pos;
    if ((s = read_u32(c, &t->n_dims, field)))
        return s;
    if (t->n_dims < 1 || t->n_dims > KS_GGUF_MAX_DIMS) {
        char what[64];
        snprintf(what, sizeof what, "n_dims %u not in 1..%d", t->n_dims, KS_GGUF_MAX_DIMS);
        return corrupt(c, at, field, what);
    }
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < KS_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        uint64_t ne = 0;
        at = c->pos;
        if ((s = read_u64(c, &ne, field)))
            return s;
        if (ne > (uint64_t)INT64_MAX || (ne && (uint64_t)n_elems > (uint64_t)INT64_MAX / ne)) {
            char what[96];
            snprintf(what, sizeof what, "dimension %u (%" PRIu64 ") overflows the element count", d, ne);
            return corrupt(c, at, field, what);
        }
        t->ne[d] = (int64_t)ne;
        n_elems *= (int64_t)ne;
    }
    at = c->pos;
    if ((s = read_u32(c, &t->type, field)))
        return s;
    const ks_type_traits *tr = ks_type_traits_of(t->type);
    if (!tr) {
        char what[48];
        snprintf(what, sizeof what, "unknown tensor type %u", t->type);
        return corrupt(c, at, field, what);
    }
    if (t->ne[0] % tr->block_size != 0) {
        char what[128];
        snprintf(what, sizeof what, "row length %" PRId64 " is not a multiple of the %s block size %" PRId64,
                 t->ne[0], tr->name, tr->block_size);
        return corrupt(c, at, field, what);
    }
    /* bytes = (n_elems / block_size) * type_size, overflow-checked */
    uint64_t blocks = (uint64_t)n_elems / (uint64_t)tr->block_size;
    if (blocks > UINT64_MAX / tr->type_size)
        return corrupt(c, at, field, "byte size overflows");
    t->size = blocks * tr->type_size;
    at = c->pos;
    if ((s = read_u64(c, &t->offset, field)))
        return s;
    return KS_OK;
}

typedef struct span {
    uint64_t start, end;
    uint64_t index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static ks_status parse_tensors(cursor *c) {
    ks_gguf *g = c->g;
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return KS_ERRF(c->err, KS_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors",
                       g->path, g->n_tensors);
    uint64_t *info_at = malloc((g->n_tensors ? (size_t)g->n_tensors : 1) * sizeof *info_at);
    if (!info_at)
        return KS_ERRF(c->err, KS_ERR_NOMEM, "%s: out of memory", g->path);
    ks_status s = KS_OK;
    for (uint64_t i = 0; i < g->n_tensors && !s; i++) {
        info_at[i] = c->pos;
        s = parse_tensor_info(c, i, &g->tensors[i]);
    }
    uint64_t dup = 0;
    if (!s) {
        s = build_index(g->n_tensors, tensor_name, g, &g->tensor_sorted, &dup, c->err);
        if (s == KS_ERR_CORRUPT) {
            char field[160];
            snprintf(field, sizeof field, "tensor '%.*s'", (int)g->tensors[dup].name.len,
                     g->tensors[dup].name.ptr);
            s = corrupt(c, info_at[dup], field, "duplicate tensor name");
        }
    }
    if (s) {
        free(info_at);
        return s;
    }

    /* Data section: starts at the next multiple of the alignment. A file without tensors
     * may end right after its directory (no padding), as llama.cpp writes it. */
    uint64_t a = g->alignment;
    uint64_t data = g->n_tensors ? c->pos + (a - c->pos % a) % a : c->pos;
    g->data_offset = data;
    if (g->n_tensors > 0 && data > g->size) {
        free(info_at);
        return corrupt(c, c->pos, "data section", "starts past the end of the file");
    }
    span *spans = malloc((g->n_tensors ? (size_t)g->n_tensors : 1) * sizeof *spans);
    if (!spans) {
        free(info_at);
        return KS_ERRF(c->err, KS_ERR_NOMEM, "%s: out of memory", g->path);
    }
    uint64_t data_bytes = g->n_tensors > 0 ? g->size - data : 0;
    for (uint64_t i = 0; i < g->n_tensors && !s; i++) {
        ks_gguf_tensor *t = &g->tensors[i];
        char field[160];
        snprintf(field, sizeof field, "tensor '%.*s' info", (int)t->name.len, t->name.ptr);
        if (t->offset % a != 0) {
            char what[96];
            snprintf(what, sizeof what, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                     t->offset, a);
            s = corrupt(c, info_at[i], field, what);
        } else if (t->offset > data_bytes || t->size > data_bytes - t->offset) {
            char what[160];
            snprintf(what, sizeof what, "data [%" PRIu64 ", +%" PRIu64 ") runs past the end of the file (%"
                     PRIu64 " data bytes)", t->offset, t->size, data_bytes);
            s = corrupt(c, info_at[i], field, what);
        } else {
            t->data = g->base + data + t->offset;
            spans[i].start = t->offset;
            spans[i].end = t->offset + t->size;
            spans[i].index = i;
        }
    }
    if (!s) {
        qsort(spans, (size_t)g->n_tensors, sizeof *spans, span_cmp);
        for (uint64_t i = 1; i < g->n_tensors && !s; i++) {
            if (spans[i].start < spans[i - 1].end) {
                const ks_gguf_tensor *t = &g->tensors[spans[i].index];
                const ks_gguf_tensor *p = &g->tensors[spans[i - 1].index];
                char field[160], what[160];
                snprintf(field, sizeof field, "tensor '%.*s' info", (int)t->name.len, t->name.ptr);
                snprintf(what, sizeof what, "data overlaps tensor '%.*s'", (int)p->name.len, p->name.ptr);
                s = corrupt(c, info_at[spans[i].index], field, what);
            }
        }
    }
    free(spans);
    free(info_at);
    return s;
}

static ks_status parse(ks_gguf *g, ks_err *err) {
    cursor c = {g, 0, err};
    char magic[4];
    ks_status s = read_bytes(&c, magic, 4, "magic");
    if (s)
        return s;
    if (memcmp(magic, "GGUF", 4) != 0)
        return corrupt(&c, 0, "magic", "not a GGUF file (expected \"GGUF\")");
    uint64_t at = c.pos;
    if ((s = read_u32(&c, &g->version, "version")))
        return s;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return corrupt(&c, at, "version", "big-endian GGUF files are not supported");
    if (g->version == 1)
        return corrupt(&c, at, "version", "GGUF v1 is not supported (v2 and v3 are)");
    if (g->version != 2 && g->version != 3) {
        char what[64];
        snprintf(what, sizeof what, "unknown version %u (v2 and v3 are supported)", g->version);
        return corrupt(&c, at, "version", what);
    }
    at = c.pos;
    if ((s = read_u64(&c, &g->n_tensors, "tensor count")))
        return s;
    uint64_t n_kv_at = c.pos;
    if ((s = read_u64(&c, &g->n_kv, "metadata count")))
        return s;
    /* A tensor info takes at least 8 (name) + 4 (n_dims) + 8 (one dim) + 4 + 8 bytes; a
     * key/value at least 8 (key) + 4 (type) + 1 (value). */
    if (g->n_tensors > left(&c) / 32) {
        char what[96];
        snprintf(what, sizeof what, "%" PRIu64 " tensors cannot fit in a %" PRIu64 "-byte file",
                 g->n_tensors, g->size);
        return corrupt(&c, at, "tensor count", what);
    }
    if (g->n_kv > left(&c) / 13) {
        char what[96];
        snprintf(what, sizeof what, "%" PRIu64 " keys cannot fit in a %" PRIu64 "-byte file",
                 g->n_kv, g->size);
        return corrupt(&c, n_kv_at, "metadata count", what);
    }
    if ((s = parse_kvs(&c)))
        return s;
    if ((s = parse_alignment(&c)))
        return s;
    return parse_tensors(&c);
}

static ks_status open_common(ks_gguf **out, ks_gguf *g, ks_err *err) {
    ks_status s = parse(g, err);
    if (s) {
        ks_gguf_close(g);
        return s;
    }
    *out = g;
    return KS_OK;
}

ks_status ks_gguf_open(ks_gguf **out, const char *path, ks_err *err) {
    ks_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return KS_ERRF(err, KS_ERR_NOMEM, "%s: out of memory", path);
    g->path = strdup(path);
    if (!g->path) {
        free(g);
        return KS_ERRF(err, KS_ERR_NOMEM, "%s: out of memory", path);
    }
    ks_status s = ks_file_map_open(&g->map, path, err);
    if (s) {
        ks_gguf_close(g);
        return s;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(out, g, err);
}

ks_status ks_gguf_open_memory(ks_gguf **out, const void *data, size_t size, const char *name,
                              ks_err *err) {
    ks_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return KS_ERRF(err, KS_ERR_NOMEM, "%s: out of memory", name);
    g->path = strdup(name ? name : "<memory>");
    if (!g->path) {
        free(g);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    }
    g->base = data;
    g->size = size;
    return open_common(out, g, err);
}

void ks_gguf_close(ks_gguf *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->n_allocs; i++)
        free(g->allocs[i]);
    free(g->allocs);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_sorted);
    free(g->tensor_sorted);
    ks_file_map_close(&g->map);
    free(g->path);
    free(g);
}

/* ---- accessors ---------------------------------------------------------------------- */

uint32_t ks_gguf_version(const ks_gguf *g) { return g->version; }
const char *ks_gguf_path(const ks_gguf *g) { return g->path; }
uint64_t ks_gguf_file_size(const ks_gguf *g) { return g->size; }
uint32_t ks_gguf_alignment(const ks_gguf *g) { return g->alignment; }
uint64_t ks_gguf_data_offset(const ks_gguf *g) { return g->data_offset; }
uint64_t ks_gguf_n_kv(const ks_gguf *g) { return g->n_kv; }
uint64_t ks_gguf_n_tensors(const ks_gguf *g) { return g->n_tensors; }

const ks_gguf_kv *ks_gguf_kv_at(const ks_gguf *g, uint64_t i) {
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const ks_gguf_tensor *ks_gguf_tensor_at(const ks_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const ks_gguf_kv *ks_gguf_find(const ks_gguf *g, const char *key) {
    int64_t i = lookup(g->kv_sorted, g->n_kv, kv_name, g, key);
    return i < 0 ? NULL : &g->kvs[i];
}

const ks_gguf_tensor *ks_gguf_find_tensor(const ks_gguf *g, const char *name) {
    int64_t i = lookup(g->tensor_sorted, g->n_tensors, tensor_name, g, name);
    return i < 0 ? NULL : &g->tensors[i];
}

/* ---- getters ------------------------------------------------------------------------ */

static bool is_unsigned(ks_gguf_type t) {
    return t == KS_GGUF_UINT8 || t == KS_GGUF_UINT16 || t == KS_GGUF_UINT32 || t == KS_GGUF_UINT64;
}

static bool is_signed(ks_gguf_type t) {
    return t == KS_GGUF_INT8 || t == KS_GGUF_INT16 || t == KS_GGUF_INT32 || t == KS_GGUF_INT64;
}

static const ks_gguf_kv *need(const ks_gguf *g, const char *key, ks_err *err) {
    const ks_gguf_kv *kv = ks_gguf_find(g, key);
    if (!kv)
        KS_ERRF(err, KS_ERR_INVALID, "%s: missing metadata key '%s'", g->path, key);
    return kv;
}

static ks_status wrong_type(const ks_gguf *g, const ks_gguf_kv *kv, const char *key,
                            const char *want, ks_err *err) {
    return KS_ERRF(err, KS_ERR_INVALID, "%s: metadata '%s' is %s, expected %s", g->path, key,
                   ks_gguf_type_name(kv->value.type), want);
}

ks_status ks_gguf_get_u64(const ks_gguf *g, const char *key, uint64_t *out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    if (is_unsigned(kv->value.type)) {
        *out = kv->value.v.u64;
        return KS_OK;
    }
    if (is_signed(kv->value.type) && kv->value.v.i64 >= 0) {
        *out = (uint64_t)kv->value.v.i64;
        return KS_OK;
    }
    return wrong_type(g, kv, key, "a non-negative integer", err);
}

ks_status ks_gguf_get_u32(const ks_gguf *g, const char *key, uint32_t *out, ks_err *err) {
    uint64_t v = 0;
    ks_status s = ks_gguf_get_u64(g, key, &v, err);
    if (s)
        return s;
    if (v > UINT32_MAX)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: metadata '%s' = %" PRIu64 " does not fit 32 bits",
                       g->path, key, v);
    *out = (uint32_t)v;
    return KS_OK;
}

ks_status ks_gguf_get_i64(const ks_gguf *g, const char *key, int64_t *out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    if (is_signed(kv->value.type)) {
        *out = kv->value.v.i64;
        return KS_OK;
    }
    if (is_unsigned(kv->value.type) && kv->value.v.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.v.u64;
        return KS_OK;
    }
    return wrong_type(g, kv, key, "an integer", err);
}

ks_status ks_gguf_get_f32(const ks_gguf *g, const char *key, float *out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    switch (kv->value.type) {
    case KS_GGUF_FLOAT32: case KS_GGUF_FLOAT64: *out = (float)kv->value.v.f64; return KS_OK;
    default:
        if (is_unsigned(kv->value.type)) { *out = (float)kv->value.v.u64; return KS_OK; }
        if (is_signed(kv->value.type)) { *out = (float)kv->value.v.i64; return KS_OK; }
        return wrong_type(g, kv, key, "a number", err);
    }
}

ks_status ks_gguf_get_bool(const ks_gguf *g, const char *key, bool *out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    if (kv->value.type != KS_GGUF_BOOL)
        return wrong_type(g, kv, key, "bool", err);
    *out = kv->value.v.b;
    return KS_OK;
}

ks_status ks_gguf_get_str(const ks_gguf *g, const char *key, ks_gguf_str *out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    if (kv->value.type != KS_GGUF_STRING)
        return wrong_type(g, kv, key, "string", err);
    *out = kv->value.v.str;
    return KS_OK;
}

ks_status ks_gguf_get_arr(const ks_gguf *g, const char *key, ks_gguf_type elem_type,
                          const ks_gguf_value **out, ks_err *err) {
    const ks_gguf_kv *kv = need(g, key, err);
    if (!kv)
        return KS_ERR_INVALID;
    if (kv->value.type != KS_GGUF_ARRAY)
        return wrong_type(g, kv, key, "array", err);
    if (elem_type != KS_GGUF_TYPE_COUNT && kv->value.v.arr.elem_type != elem_type)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: metadata '%s' is an array of %s, expected %s",
                       g->path, key, ks_gguf_type_name(kv->value.v.arr.elem_type),
                       ks_gguf_type_name(elem_type));
    *out = &kv->value;
    return KS_OK;
}

double ks_gguf_arr_get_f64(const ks_gguf_value *arr, uint64_t i) {
    const uint8_t *p = (const uint8_t *)arr->v.arr.raw + i * ks_gguf_type_size(arr->v.arr.elem_type);
    switch (arr->v.arr.elem_type) {
    case KS_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); return x; }
    case KS_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); return x; }
    default: return (double)ks_gguf_arr_get_i64(arr, i);
    }
}

/* Float to integer without undefined behaviour: NaN -> 0, out of range -> saturated. */
static int64_t f64_to_i64(double x) {
    if (x != x)
        return 0;
    if (x >= 9.2233720368547758e18)
        return INT64_MAX;
    if (x <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)x;
}

int64_t ks_gguf_arr_get_i64(const ks_gguf_value *arr, uint64_t i) {
    const uint8_t *p = (const uint8_t *)arr->v.arr.raw + i * ks_gguf_type_size(arr->v.arr.elem_type);
    switch (arr->v.arr.elem_type) {
    case KS_GGUF_UINT8: case KS_GGUF_BOOL: return p[0];
    case KS_GGUF_INT8: return (int8_t)p[0];
    case KS_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case KS_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case KS_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case KS_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case KS_GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
    case KS_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); return x; }
    case KS_GGUF_FLOAT32: { float x; memcpy(&x, p, 4); return f64_to_i64(x); }
    case KS_GGUF_FLOAT64: { double x; memcpy(&x, p, 8); return f64_to_i64(x); }
    default: return 0;
    }
}
