/* gguf.h — GGUF reader (v2, v3) over a memory-mapped file.
 *
 * Reading validates every byte it interprets: counts, string lengths, value types,
 * nested arrays, tensor dimensions and types, offsets, sizes and alignment, with
 * overflow-safe arithmetic. A malformed file yields KS_ERR_CORRUPT and an error naming
 * the file, the field and its byte offset; it never crashes and never reads out of
 * bounds. Duplicate keys and duplicate tensor names are errors.
 *
 * Lifetime: every string, array and tensor view returned points into the mapping (or
 * into the reader's own index) and lives until ks_gguf_close().
 *
 * File layout (little-endian):
 *
 *   magic "GGUF" | u32 version | n_tensors | n_kv          (counts u64 in v2+, u32 in v1)
 *   n_kv x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offset % alignment == 0
 *
 *   string = u64 length + bytes (no NUL);  array = u32 elem_type | u64 n | n values
 */
#ifndef KS_GGUF_H
#define KS_GGUF_H

#include "core/status.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    KS_GGUF_UINT8 = 0,
    KS_GGUF_INT8 = 1,
    KS_GGUF_UINT16 = 2,
    KS_GGUF_INT16 = 3,
    KS_GGUF_UINT32 = 4,
    KS_GGUF_INT32 = 5,
    KS_GGUF_FLOAT32 = 6,
    KS_GGUF_BOOL = 7,
    KS_GGUF_STRING = 8,
    KS_GGUF_ARRAY = 9,
    KS_GGUF_UINT64 = 10,
    KS_GGUF_INT64 = 11,
    KS_GGUF_FLOAT64 = 12,
    KS_GGUF_TYPE_COUNT = 13,
} ks_gguf_type;

#define KS_GGUF_MAX_DIMS 4           /* ggml tensors have at most 4 dimensions */
#define KS_GGUF_DEFAULT_ALIGNMENT 32 /* bytes, when general.alignment is absent */

/* A string inside the file: not NUL-terminated. */
typedef struct ks_gguf_str {
    const char *ptr;
    uint64_t len;
} ks_gguf_str;

typedef struct ks_gguf_value ks_gguf_value;

/* A metadata value. Scalars are decoded; arrays of fixed-size elements point at their
 * raw little-endian elements in the file; arrays of strings or of arrays have decoded
 * items. */
struct ks_gguf_value {
    ks_gguf_type type;
    union {
        uint64_t u64;     /* UINT8/16/32/64 */
        int64_t i64;      /* INT8/16/32/64 */
        double f64;       /* FLOAT32/64 */
        bool b;           /* BOOL */
        ks_gguf_str str;  /* STRING */
        struct {
            ks_gguf_type elem_type;
            uint64_t n;
            const void *raw;            /* fixed-size elements: n x elem size bytes */
            const ks_gguf_value *items; /* STRING or ARRAY elements: n values */
        } arr;
    } v;
};

typedef struct ks_gguf_kv {
    ks_gguf_str key;
    ks_gguf_value value;
    uint64_t file_offset; /* where the key/value pair starts, for messages */
} ks_gguf_kv;

typedef struct ks_gguf_tensor {
    ks_gguf_str name;
    uint32_t n_dims;
    int64_t ne[KS_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] fastest; unused = 1 */
    uint32_t type;                /* ks_type id */
    uint64_t offset;              /* bytes, relative to the data section */
    uint64_t size;                /* bytes */
    const void *data;             /* view into the mapping */
} ks_gguf_tensor;

typedef struct ks_gguf ks_gguf;

/* Opens and validates a GGUF file. *out is written only on success. */
ks_status ks_gguf_open(ks_gguf **out, const char *path, ks_err *err);

/* Same over a caller-owned buffer (which must outlive the reader); name is used in
 * messages. For tests and fuzzing. */
ks_status ks_gguf_open_memory(ks_gguf **out, const void *data, size_t size, const char *name,
                              ks_err *err);

void ks_gguf_close(ks_gguf *g);

uint32_t ks_gguf_version(const ks_gguf *g);
const char *ks_gguf_path(const ks_gguf *g);
uint64_t ks_gguf_file_size(const ks_gguf *g);
uint32_t ks_gguf_alignment(const ks_gguf *g);
uint64_t ks_gguf_data_offset(const ks_gguf *g); /* bytes from file start */

uint64_t ks_gguf_n_kv(const ks_gguf *g);
const ks_gguf_kv *ks_gguf_kv_at(const ks_gguf *g, uint64_t i);
const ks_gguf_kv *ks_gguf_find(const ks_gguf *g, const char *key); /* NULL if absent */

uint64_t ks_gguf_n_tensors(const ks_gguf *g);
const ks_gguf_tensor *ks_gguf_tensor_at(const ks_gguf *g, uint64_t i);
const ks_gguf_tensor *ks_gguf_find_tensor(const ks_gguf *g, const char *name);

/* Typed getters. Integers convert between widths and signedness when the value fits.
 * Return KS_ERR_INVALID (with a message naming key and type) if the key is absent or
 * does not convert; *out is untouched then. */
ks_status ks_gguf_get_u64(const ks_gguf *g, const char *key, uint64_t *out, ks_err *err);
ks_status ks_gguf_get_u32(const ks_gguf *g, const char *key, uint32_t *out, ks_err *err);
ks_status ks_gguf_get_i64(const ks_gguf *g, const char *key, int64_t *out, ks_err *err);
ks_status ks_gguf_get_f32(const ks_gguf *g, const char *key, float *out, ks_err *err);
ks_status ks_gguf_get_bool(const ks_gguf *g, const char *key, bool *out, ks_err *err);
ks_status ks_gguf_get_str(const ks_gguf *g, const char *key, ks_gguf_str *out, ks_err *err);
/* An array value of the given element type (KS_GGUF_TYPE_COUNT = any). */
ks_status ks_gguf_get_arr(const ks_gguf *g, const char *key, ks_gguf_type elem_type,
                          const ks_gguf_value **out, ks_err *err);

/* Name of a value type ("uint32", "string", ...); "?" if out of range. */
const char *ks_gguf_type_name(uint32_t t);
/* Bytes of one element of a fixed-size type, 0 for STRING/ARRAY/unknown. */
size_t ks_gguf_type_size(uint32_t t);
/* Element i of a fixed-size numeric array, converted (no bounds check beyond i < n). */
double ks_gguf_arr_get_f64(const ks_gguf_value *arr, uint64_t i);
int64_t ks_gguf_arr_get_i64(const ks_gguf_value *arr, uint64_t i);

/* Compares a file string with a C string. */
bool ks_gguf_str_eq(ks_gguf_str s, const char *c);

#endif
