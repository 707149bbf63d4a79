/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any bytes must open cleanly or
 * fail with KS_ERR_CORRUPT and a message; on success every value and tensor view the
 * reader hands out must be readable (ASan checks the bounds). */
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t touch_value(const ks_gguf_value *v) {
    uint64_t h = (uint64_t)v->type;
    if (v->type == KS_GGUF_STRING) {
        for (uint64_t i = 0; i < v->v.str.len; i++)
            h = h * 31 + (uint8_t)v->v.str.ptr[i];
    } else if (v->type == KS_GGUF_ARRAY) {
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            h += v->v.arr.items ? touch_value(&v->v.arr.items[i])
                                : (uint64_t)ks_gguf_arr_get_i64(v, i);
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copy so reads past the input are caught exactly at its end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    ks_status s = ks_gguf_open_memory(&g, copy, size, "fuzz", &err);
    volatile uint64_t sink = 0;
    if (s == KS_OK) {
        for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
            const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
            sink += touch_value(&kv->value);
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.ptr);
            if (kv->key.len < 255 && !memchr(kv->key.ptr, 0, (size_t)kv->key.len) && ks_gguf_find(g, key) != kv)
                abort(); /* lookup must find the key it was built from */
        }
        for (uint64_t i = 0; i < ks_gguf_n_tensors(g); i++) {
            const ks_gguf_tensor *t = ks_gguf_tensor_at(g, i);
            const uint8_t *p = t->data;
            if (t->size)
                sink += p[0] + p[t->size - 1];
        }
        ks_gguf_close(g);
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure explains itself */
    }
    (void)sink;
    free(copy);
    return 0;
}
