/* gguf_writer.c — GGUF v3 writer (see gguf_writer.h for the two usage paths).
 *
 * Metadata values are serialised into one growing byte buffer per key as they are set,
 * so copying a value from a reader (nested arrays included) is one recursive encode.
 * The tensor directory is computed at begin(): each tensor's data offset is the running
 * total of the previous tensors' sizes, each padded to the alignment. */
#include "gguf/gguf_writer.h"

#include "tensor/types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_WRITE_VERSION 3

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bytes_put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n)
            cap *= 2;
        b->p = ks_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) { bytes_put(b, &v, 4); } /* little-endian hosts */
static void put_u64(bytes *b, uint64_t v) { bytes_put(b, &v, 8); }
static void put_str(bytes *b, const char *s, uint64_t len) {
    put_u64(b, len);
    bytes_put(b, s, (size_t)len);
}

typedef struct wkv {
    char *key;
    bytes value; /* u32 type + encoded value */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[KS_GGUF_MAX_DIMS];
    const void *data; /* borrowed, may be NULL */
    uint64_t size;    /* bytes */
    uint64_t offset;  /* bytes, relative to the data section */
} wtensor;

struct ks_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
    /* streaming state */
    FILE *f;
    char *path, *tmp_path;
    size_t next_tensor;
    uint64_t data_written; /* bytes of data section written so far */
};

ks_gguf_writer *ks_gguf_writer_create(void) {
    ks_gguf_writer *w = ks_xcalloc(1, sizeof *w);
    w->alignment = KS_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void ks_gguf_writer_destroy(ks_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value.p);
    }
    free(w->kvs);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    if (w->f) {
        fclose(w->f);
        unlink(w->tmp_path);
    }
    free(w->path);
    free(w->tmp_path);
    free(w);
}

void ks_gguf_writer_set_alignment(ks_gguf_writer *w, uint32_t alignment) {
    KS_ASSERT(alignment && (alignment & (alignment - 1)) == 0);
    w->alignment = alignment;
    if (alignment != KS_GGUF_DEFAULT_ALIGNMENT)
        ks_gguf_writer_set_u32(w, "general.alignment", alignment);
    else
        ks_gguf_writer_remove(w, "general.alignment");
}

/* Returns the value buffer of key, emptied; creates the key if new. */
static bytes *slot(ks_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            w->kvs[i].value.n = 0;
            return &w->kvs[i].value;
        }
    }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
        w->kvs = ks_xrealloc(w->kvs, w->cap_kv * sizeof *w->kvs);
    }
    wkv *kv = &w->kvs[w->n_kv++];
    kv->key = ks_xstrdup(key);
    memset(&kv->value, 0, sizeof kv->value);
    return &kv->value;
}

void ks_gguf_writer_remove(ks_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            free(w->kvs[i].key);
            free(w->kvs[i].value.p);
            memmove(&w->kvs[i], &w->kvs[i + 1], (w->n_kv - i - 1) * sizeof *w->kvs);
            w->n_kv--;
            return;
        }
    }
}

static void set_scalar(ks_gguf_writer *w, const char *key, ks_gguf_type t, const void *v) {
    bytes *b = slot(w, key);
    put_u32(b, (uint32_t)t);
    bytes_put(b, v, ks_gguf_type_size(t));
}

void ks_gguf_writer_set_u8(ks_gguf_writer *w, const char *k, uint8_t v) { set_scalar(w, k, KS_GGUF_UINT8, &v); }
void ks_gguf_writer_set_i8(ks_gguf_writer *w, const char *k, int8_t v) { set_scalar(w, k, KS_GGUF_INT8, &v); }
void ks_gguf_writer_set_u16(ks_gguf_writer *w, const char *k, uint16_t v) { set_scalar(w, k, KS_GGUF_UINT16, &v); }
void ks_gguf_writer_set_i16(ks_gguf_writer *w, const char *k, int16_t v) { set_scalar(w, k, KS_GGUF_INT16, &v); }
void ks_gguf_writer_set_u32(ks_gguf_writer *w, const char *k, uint32_t v) { set_scalar(w, k, KS_GGUF_UINT32, &v); }
void ks_gguf_writer_set_i32(ks_gguf_writer *w, const char *k, int32_t v) { set_scalar(w, k, KS_GGUF_INT32, &v); }
void ks_gguf_writer_set_u64(ks_gguf_writer *w, const char *k, uint64_t v) { set_scalar(w, k, KS_GGUF_UINT64, &v); }
void ks_gguf_writer_set_i64(ks_gguf_writer *w, const char *k, int64_t v) { set_scalar(w, k, KS_GGUF_INT64, &v); }
void ks_gguf_writer_set_f32(ks_gguf_writer *w, const char *k, float v) { set_scalar(w, k, KS_GGUF_FLOAT32, &v); }
void ks_gguf_writer_set_f64(ks_gguf_writer *w, const char *k, double v) { set_scalar(w, k, KS_GGUF_FLOAT64, &v); }

void ks_gguf_writer_set_bool(ks_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    set_scalar(w, key, KS_GGUF_BOOL, &b);
}

void ks_gguf_writer_set_strn(ks_gguf_writer *w, const char *key, const char *v, uint64_t len) {
    bytes *b = slot(w, key);
    put_u32(b, KS_GGUF_STRING);
    put_str(b, v, len);
}

void ks_gguf_writer_set_str(ks_gguf_writer *w, const char *key, const char *v) {
    ks_gguf_writer_set_strn(w, key, v, strlen(v));
}

void ks_gguf_writer_set_arr(ks_gguf_writer *w, const char *key, ks_gguf_type elem_type,
                            const void *data, uint64_t n) {
    size_t es = ks_gguf_type_size(elem_type);
    KS_ASSERT(es > 0);
    bytes *b = slot(w, key);
    put_u32(b, KS_GGUF_ARRAY);
    put_u32(b, (uint32_t)elem_type);
    put_u64(b, n);
    bytes_put(b, data, (size_t)(n * es));
}

void ks_gguf_writer_set_arr_str(ks_gguf_writer *w, const char *key, const char *const *strs,
                                uint64_t n) {
    bytes *b = slot(w, key);
    put_u32(b, KS_GGUF_ARRAY);
    put_u32(b, KS_GGUF_STRING);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(b, strs[i], strlen(strs[i]));
}

/* Encodes a value without its leading type tag. */
static void encode_value(bytes *b, const ks_gguf_value *v) {
    switch (v->type) {
    case KS_GGUF_UINT8: { uint8_t x = (uint8_t)v->v.u64; bytes_put(b, &x, 1); break; }
    case KS_GGUF_INT8: { int8_t x = (int8_t)v->v.i64; bytes_put(b, &x, 1); break; }
    case KS_GGUF_UINT16: { uint16_t x = (uint16_t)v->v.u64; bytes_put(b, &x, 2); break; }
    case KS_GGUF_INT16: { int16_t x = (int16_t)v->v.i64; bytes_put(b, &x, 2); break; }
    case KS_GGUF_UINT32: { uint32_t x = (uint32_t)v->v.u64; bytes_put(b, &x, 4); break; }
    case KS_GGUF_INT32: { int32_t x = (int32_t)v->v.i64; bytes_put(b, &x, 4); break; }
    case KS_GGUF_UINT64: bytes_put(b, &v->v.u64, 8); break;
    case KS_GGUF_INT64: bytes_put(b, &v->v.i64, 8); break;
    case KS_GGUF_FLOAT32: { float x = (float)v->v.f64; bytes_put(b, &x, 4); break; }
    case KS_GGUF_FLOAT64: bytes_put(b, &v->v.f64, 8); break;
    case KS_GGUF_BOOL: { uint8_t x = v->v.b ? 1 : 0; bytes_put(b, &x, 1); break; }
    case KS_GGUF_STRING: put_str(b, v->v.str.ptr, v->v.str.len); break;
    case KS_GGUF_ARRAY:
        put_u32(b, (uint32_t)v->v.arr.elem_type);
        put_u64(b, v->v.arr.n);
        if (v->v.arr.items) {
            for (uint64_t i = 0; i < v->v.arr.n; i++)
                encode_value(b, &v->v.arr.items[i]);
        } else {
            bytes_put(b, v->v.arr.raw, (size_t)(v->v.arr.n * ks_gguf_type_size(v->v.arr.elem_type)));
        }
        break;
    case KS_GGUF_TYPE_COUNT: KS_ASSERT(0 && "invalid value type");
    }
}

void ks_gguf_writer_set_value(ks_gguf_writer *w, const char *key, const ks_gguf_value *v) {
    bytes *b = slot(w, key);
    put_u32(b, (uint32_t)v->type);
    encode_value(b, v);
}

int ks_gguf_writer_add_tensor(ks_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data) {
    KS_ASSERT(n_dims >= 1 && n_dims <= KS_GGUF_MAX_DIMS);
    KS_ASSERT(!w->f); /* the directory is fixed once begin() ran */
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 64;
        w->tensors = ks_xrealloc(w->tensors, w->cap_tensors * sizeof *w->tensors);
    }
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = ks_xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    int64_t n = 1;
    for (uint32_t d = 0; d < KS_GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        n *= t->ne[d];
    }
    bool ok = false;
    size_t row = ks_type_row_size((ks_type)type, t->ne[0], &ok);
    KS_ASSERT(ok); /* callers pass shapes whose rows are whole blocks */
    t->size = (uint64_t)row * (uint64_t)(n / t->ne[0]);
    t->data = data;
    return (int)w->n_tensors++;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static ks_status write_bytes(ks_gguf_writer *w, const void *p, size_t n, ks_err *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return KS_ERRF(err, KS_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
    return KS_OK;
}

static ks_status write_zeros(ks_gguf_writer *w, uint64_t n, ks_err *err) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        ks_status s = write_bytes(w, zeros, k, err);
        if (s) return s;
        n -= k;
    }
    return KS_OK;
}

ks_status ks_gguf_writer_begin(ks_gguf_writer *w, const char *path, ks_err *err) {
    KS_ASSERT(!w->f);
    free(w->path);
    free(w->tmp_path);
    w->path = ks_xstrdup(path);
    size_t n = strlen(path) + 5;
    w->tmp_path = ks_xmalloc(n);
    snprintf(w->tmp_path, n, "%s.tmp", path);
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f)
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(errno));

    bytes h = {0};
    bytes_put(&h, GGUF_MAGIC, 4);
    put_u32(&h, GGUF_WRITE_VERSION);
    put_u64(&h, w->n_tensors);
    put_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kvs[i].key, strlen(w->kvs[i].key));
        bytes_put(&h, w->kvs[i].value.p, w->kvs[i].value.n);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        t->offset = off;
        put_u64(&h, off);
        off = pad_to(off + t->size, w->alignment);
    }
    ks_status s = write_bytes(w, h.p, h.n, err);
    if (!s)
        s = write_zeros(w, pad_to(h.n, w->alignment) - h.n, err);
    free(h.p);
    w->next_tensor = 0;
    w->data_written = 0;
    return s;
}

ks_status ks_gguf_writer_write_tensor(ks_gguf_writer *w, int index, const void *data,
                                      uint64_t size, ks_err *err) {
    KS_ASSERT(w->f);
    if ((size_t)index != w->next_tensor || index < 0 || (size_t)index >= w->n_tensors)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: tensor %d written out of order (expected %zu)",
                       w->path, index, w->next_tensor);
    wtensor *t = &w->tensors[index];
    if (size != t->size)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: tensor '%s' has %llu bytes, expected %llu",
                       w->path, t->name, (unsigned long long)size, (unsigned long long)t->size);
    ks_status s = write_zeros(w, t->offset - w->data_written, err);
    if (!s)
        s = write_bytes(w, data, (size_t)size, err);
    if (s)
        return s;
    w->data_written = t->offset + size;
    w->next_tensor++;
    return KS_OK;
}

ks_status ks_gguf_writer_finish(ks_gguf_writer *w, ks_err *err) {
    KS_ASSERT(w->f);
    if (w->next_tensor != w->n_tensors)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: only %zu of %zu tensors written", w->path,
                       w->next_tensor, w->n_tensors);
    /* Pad the last tensor too, so the file size is a multiple of the alignment as
     * llama.cpp's writer does. */
    ks_status s = write_zeros(w, pad_to(w->data_written, w->alignment) - w->data_written, err);
    if (!s && fflush(w->f) != 0)
        s = KS_ERRF(err, KS_ERR_IO, "%s: flush failed: %s", w->tmp_path, strerror(errno));
    if (!s && fsync(fileno(w->f)) != 0)
        s = KS_ERRF(err, KS_ERR_IO, "%s: fsync failed: %s", w->tmp_path, strerror(errno));
    if (fclose(w->f) != 0 && !s)
        s = KS_ERRF(err, KS_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
    w->f = NULL;
    if (!s && rename(w->tmp_path, w->path) != 0)
        s = KS_ERRF(err, KS_ERR_IO, "%s: rename to %s failed: %s", w->tmp_path, w->path,
                    strerror(errno));
    if (s)
        unlink(w->tmp_path);
    return s;
}

ks_status ks_gguf_writer_write(ks_gguf_writer *w, const char *path, ks_err *err) {
    ks_status s = ks_gguf_writer_begin(w, path, err);
    for (size_t i = 0; !s && i < w->n_tensors; i++) {
        if (!w->tensors[i].data)
            return KS_ERRF(err, KS_ERR_INVALID, "%s: tensor '%s' has no data", path,
                           w->tensors[i].name);
        s = ks_gguf_writer_write_tensor(w, (int)i, w->tensors[i].data, w->tensors[i].size, err);
    }
    if (!s)
        s = ks_gguf_writer_finish(w, err);
    return s;
}
