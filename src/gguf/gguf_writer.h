/* gguf_writer.h — writes GGUF v3 files: metadata, tensor directory and data.
 *
 * Two ways to use it:
 *  - small files: add tensors with borrowed data pointers, then ks_gguf_writer_write();
 *  - big files (synthetic models of real shapes): add tensor descriptors without data,
 *    ks_gguf_writer_begin(), then ks_gguf_writer_write_tensor() for each tensor in the
 *    order they were added, then ks_gguf_writer_finish(). Nothing big is held in memory.
 * The file is written to "<path>.tmp" and renamed into place by finish/write, so a
 * half-written file is never mistaken for a model.
 *
 * Keys are unique: adding a key again replaces its value (order of first addition kept).
 * Strings are copied; borrowed tensor data must live until the write completes. */
#ifndef KS_GGUF_WRITER_H
#define KS_GGUF_WRITER_H

#include "core/status.h"
#include "gguf/gguf.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct ks_gguf_writer ks_gguf_writer;

ks_gguf_writer *ks_gguf_writer_create(void);
void ks_gguf_writer_destroy(ks_gguf_writer *w);

/* Default 32. Must be a power of two; also written as general.alignment if not 32. */
void ks_gguf_writer_set_alignment(ks_gguf_writer *w, uint32_t alignment);

void ks_gguf_writer_set_u8(ks_gguf_writer *w, const char *key, uint8_t v);
void ks_gguf_writer_set_i8(ks_gguf_writer *w, const char *key, int8_t v);
void ks_gguf_writer_set_u16(ks_gguf_writer *w, const char *key, uint16_t v);
void ks_gguf_writer_set_i16(ks_gguf_writer *w, const char *key, int16_t v);
void ks_gguf_writer_set_u32(ks_gguf_writer *w, const char *key, uint32_t v);
void ks_gguf_writer_set_i32(ks_gguf_writer *w, const char *key, int32_t v);
void ks_gguf_writer_set_u64(ks_gguf_writer *w, const char *key, uint64_t v);
void ks_gguf_writer_set_i64(ks_gguf_writer *w, const char *key, int64_t v);
void ks_gguf_writer_set_f32(ks_gguf_writer *w, const char *key, float v);
void ks_gguf_writer_set_f64(ks_gguf_writer *w, const char *key, double v);
void ks_gguf_writer_set_bool(ks_gguf_writer *w, const char *key, bool v);
void ks_gguf_writer_set_str(ks_gguf_writer *w, const char *key, const char *v);
void ks_gguf_writer_set_strn(ks_gguf_writer *w, const char *key, const char *v, uint64_t len);
/* Array of n fixed-size elements (copied) of elem_type (not STRING/ARRAY). */
void ks_gguf_writer_set_arr(ks_gguf_writer *w, const char *key, ks_gguf_type elem_type,
                            const void *data, uint64_t n);
/* Array of n NUL-terminated strings (copied). */
void ks_gguf_writer_set_arr_str(ks_gguf_writer *w, const char *key, const char *const *strs,
                                uint64_t n);
/* Copies a value read by the reader (any type, nested arrays included). */
void ks_gguf_writer_set_value(ks_gguf_writer *w, const char *key, const ks_gguf_value *v);
void ks_gguf_writer_remove(ks_gguf_writer *w, const char *key);

/* Declares a tensor; data may be NULL for the streaming path. Returns its index.
 * ne[0] is the fastest dimension; n_dims in 1..4. */
int ks_gguf_writer_add_tensor(ks_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *ne, const void *data);

/* Small-file path: writes everything to path. */
ks_status ks_gguf_writer_write(ks_gguf_writer *w, const char *path, ks_err *err);

/* Streaming path. */
ks_status ks_gguf_writer_begin(ks_gguf_writer *w, const char *path, ks_err *err);
ks_status ks_gguf_writer_write_tensor(ks_gguf_writer *w, int index, const void *data,
                                      uint64_t size, ks_err *err);
ks_status ks_gguf_writer_finish(ks_gguf_writer *w, ks_err *err);

#endif
