/* cmd_info.c — `kvserve info FILE`: a GGUF file's header, metadata (long arrays and
 * strings abbreviated) and tensor table, like a good gguf-dump. `--json` prints the same
 * as one JSON object (arrays summarised by type and length) for scripts and tests. */
#include "commands.h"

#include "gguf/gguf.h"
#include "tensor/types.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define INFO_ARRAY_PREVIEW 8      /* elements shown of a long array */
#define INFO_STRING_PREVIEW 120   /* bytes shown of a long string (chat templates) */

static void print_escaped(const char *p, uint64_t len, uint64_t max) {
    putchar('"');
    uint64_t n = len < max ? len : max;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '\t') fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    putchar('"');
    if (len > max)
        printf("... (%" PRIu64 " bytes)", len);
}

static void print_scalar(const ks_gguf_value *v) {
    switch (v->type) {
    case KS_GGUF_UINT8: case KS_GGUF_UINT16: case KS_GGUF_UINT32: case KS_GGUF_UINT64:
        printf("%" PRIu64, v->v.u64);
        break;
    case KS_GGUF_INT8: case KS_GGUF_INT16: case KS_GGUF_INT32: case KS_GGUF_INT64:
        printf("%" PRId64, v->v.i64);
        break;
    case KS_GGUF_FLOAT32: printf("%.9g", v->v.f64); break;
    case KS_GGUF_FLOAT64: printf("%.17g", v->v.f64); break;
    case KS_GGUF_BOOL: fputs(v->v.b ? "true" : "false", stdout); break;
    case KS_GGUF_STRING: print_escaped(v->v.str.ptr, v->v.str.len, INFO_STRING_PREVIEW); break;
    default: break;
    }
}

static void print_value(const ks_gguf_value *v) {
    if (v->type != KS_GGUF_ARRAY) {
        print_scalar(v);
        return;
    }
    uint64_t n = v->v.arr.n;
    uint64_t shown = n < INFO_ARRAY_PREVIEW ? n : INFO_ARRAY_PREVIEW;
    putchar('[');
    for (uint64_t i = 0; i < shown; i++) {
        if (i) fputs(", ", stdout);
        if (v->v.arr.items) {
            print_value(&v->v.arr.items[i]);
        } else {
            ks_gguf_value e;
            e.type = v->v.arr.elem_type;
            if (e.type == KS_GGUF_FLOAT32 || e.type == KS_GGUF_FLOAT64)
                e.v.f64 = ks_gguf_arr_get_f64(v, i);
            else if (e.type == KS_GGUF_BOOL)
                e.v.b = ks_gguf_arr_get_i64(v, i) != 0;
            else if (e.type == KS_GGUF_UINT64)
                e.v.u64 = (uint64_t)ks_gguf_arr_get_i64(v, i);
            else
                e.v.i64 = ks_gguf_arr_get_i64(v, i), e.v.u64 = (uint64_t)e.v.i64;
            if (e.type == KS_GGUF_UINT8 || e.type == KS_GGUF_UINT16 || e.type == KS_GGUF_UINT32)
                e.v.u64 = (uint64_t)ks_gguf_arr_get_i64(v, i);
            print_scalar(&e);
        }
    }
    if (n > shown)
        printf(", ... %" PRIu64 " more", n - shown);
    putchar(']');
}

static void type_label(const ks_gguf_value *v, char *buf, size_t n) {
    if (v->type == KS_GGUF_ARRAY)
        snprintf(buf, n, "[%s; %" PRIu64 "]", ks_gguf_type_name(v->v.arr.elem_type), v->v.arr.n);
    else
        snprintf(buf, n, "%s", ks_gguf_type_name(v->type));
}

static void shape_str(const ks_gguf_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

static void print_text(const ks_gguf *g) {
    printf("file:     %s (%" PRIu64 " bytes)\n", ks_gguf_path(g), ks_gguf_file_size(g));
    printf("gguf:     v%u, %" PRIu64 " metadata keys, %" PRIu64 " tensors, alignment %u, data at offset %" PRIu64 "\n",
           ks_gguf_version(g), ks_gguf_n_kv(g), ks_gguf_n_tensors(g), ks_gguf_alignment(g),
           ks_gguf_data_offset(g));
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
        char label[64];
        type_label(&kv->value, label, sizeof label);
        printf("  %-44.*s %-16s = ", (int)kv->key.len, kv->key.ptr, label);
        print_value(&kv->value);
        putchar('\n');
    }
    printf("\ntensors:\n  %5s  %-36s %-7s %-24s %14s %14s\n", "#", "name", "type", "shape", "bytes",
           "offset");
    uint64_t total = 0, n_params = 0;
    for (uint64_t i = 0; i < ks_gguf_n_tensors(g); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(g, i);
        char shape[96];
        shape_str(t, shape, sizeof shape);
        printf("  %5" PRIu64 "  %-36.*s %-7s %-24s %14" PRIu64 " %14" PRIu64 "\n", i, (int)t->name.len,
               t->name.ptr, ks_type_name(t->type), shape, t->size, t->offset);
        total += t->size;
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            ne *= (uint64_t)t->ne[d];
        n_params += ne;
    }
    printf("\n%" PRIu64 " tensors, %" PRIu64 " parameters, %.2f MiB of tensor data\n",
           ks_gguf_n_tensors(g), n_params, (double)total / (1024.0 * 1024.0));
}

static json_t *json_scalar(const ks_gguf_value *v) {
    switch (v->type) {
    case KS_GGUF_UINT8: case KS_GGUF_UINT16: case KS_GGUF_UINT32: case KS_GGUF_UINT64:
        return json_integer((json_int_t)v->v.u64);
    case KS_GGUF_INT8: case KS_GGUF_INT16: case KS_GGUF_INT32: case KS_GGUF_INT64:
        return json_integer((json_int_t)v->v.i64);
    case KS_GGUF_FLOAT32: case KS_GGUF_FLOAT64: return json_real(v->v.f64);
    case KS_GGUF_BOOL: return json_boolean(v->v.b);
    case KS_GGUF_STRING: return json_stringn_nocheck(v->v.str.ptr, (size_t)v->v.str.len);
    case KS_GGUF_ARRAY:
        return json_pack("{s:s, s:s, s:I}", "type", "array", "elem_type",
                         ks_gguf_type_name(v->v.arr.elem_type), "n", (json_int_t)v->v.arr.n);
    default: return json_null();
    }
}

static void print_json(const ks_gguf *g) {
    json_t *meta = json_object();
    for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
        char key[512];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 511 ? kv->key.len : 511), kv->key.ptr);
        json_object_set_new(meta, key, json_scalar(&kv->value));
    }
    json_t *tensors = json_array();
    for (uint64_t i = 0; i < ks_gguf_n_tensors(g); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(g, i);
        json_t *shape = json_array();
        for (uint32_t d = 0; d < t->n_dims; d++)
            json_array_append_new(shape, json_integer(t->ne[d]));
        json_array_append_new(tensors, json_pack("{s:s%, s:s, s:i, s:o, s:I, s:I}", "name",
                                                 t->name.ptr, (size_t)t->name.len, "type",
                                                 ks_type_name(t->type), "type_id", (int)t->type,
                                                 "shape", shape, "offset", (json_int_t)t->offset,
                                                 "bytes", (json_int_t)t->size));
    }
    json_t *root = json_pack("{s:s, s:I, s:i, s:i, s:I, s:o, s:o}", "file", ks_gguf_path(g),
                             "file_bytes", (json_int_t)ks_gguf_file_size(g), "version",
                             (int)ks_gguf_version(g), "alignment", (int)ks_gguf_alignment(g),
                             "data_offset", (json_int_t)ks_gguf_data_offset(g), "metadata", meta,
                             "tensors", tensors);
    char *s = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    puts(s);
    free(s);
    json_decref(root);
}

int ks_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: kvserve info [--json] FILE.gguf\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "kvserve info: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "kvserve info: one file at a time\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: kvserve info [--json] FILE.gguf\n");
        return 2;
    }
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    if (ks_gguf_open(&g, path, &err) != KS_OK) {
        fprintf(stderr, "kvserve: %s\n", err.msg);
        return 1;
    }
    if (as_json)
        print_json(g);
    else
        print_text(g);
    ks_gguf_close(g);
    return 0;
}
