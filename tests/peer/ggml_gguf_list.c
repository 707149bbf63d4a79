/* ggml_gguf_list.c — the peer's view of a GGUF file, for conformance tests.
 *
 * Loads llama.cpp's own GGUF reader (libggml-base.so from the node-llama-cpp package) at
 * run time and prints what it reports for a file, one JSON object:
 *   {"ok":true,"version":3,"n_kv":28,"alignment":32,"data_offset":N,
 *    "tensors":[{"name":..,"type_id":..,"shape":[ne0,ne1,ne2,ne3],"offset":..,"bytes":..}]}
 * or {"ok":false} when the peer rejects the file. Only the functions' declarations are
 * ours; all parsing is the peer's. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct gguf_context;
struct ggml_context;

/* The public ggml tensor begins with these fields (ggml.h: type, buffer, ne[4], nb[4]). */
struct peer_tensor_head {
    int type;
    void *buffer;
    int64_t ne[4];
};

struct peer_gguf_init_params {
    bool no_alloc;
    struct ggml_context **ctx;
};

typedef struct gguf_context *(*init_fn)(const char *, struct peer_gguf_init_params);
typedef int64_t (*i64_fn)(const struct gguf_context *);
typedef uint32_t (*u32_fn)(const struct gguf_context *);
typedef size_t (*size_fn)(const struct gguf_context *);
typedef const char *(*name_fn)(const struct gguf_context *, int64_t);
typedef int (*type_fn)(const struct gguf_context *, int64_t);
typedef size_t (*tsize_fn)(const struct gguf_context *, int64_t);
typedef void *(*get_tensor_fn)(struct ggml_context *, const char *);
typedef void (*free_fn)(void *);

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "ggml_gguf_list: missing symbol %s\n", name);
        exit(2);
    }
    return p;
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: ggml_gguf_list LIBGGML_BASE_SO FILE.gguf\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "ggml_gguf_list: %s\n", dlerror());
        return 2;
    }
    init_fn init = (init_fn)sym(lib, "gguf_init_from_file");
    u32_fn version = (u32_fn)sym(lib, "gguf_get_version");
    i64_fn n_kv = (i64_fn)sym(lib, "gguf_get_n_kv");
    i64_fn n_tensors = (i64_fn)sym(lib, "gguf_get_n_tensors");
    size_fn alignment = (size_fn)sym(lib, "gguf_get_alignment");
    size_fn data_offset = (size_fn)sym(lib, "gguf_get_data_offset");
    name_fn tname = (name_fn)sym(lib, "gguf_get_tensor_name");
    type_fn ttype = (type_fn)sym(lib, "gguf_get_tensor_type");
    tsize_fn toffset = (tsize_fn)sym(lib, "gguf_get_tensor_offset");
    tsize_fn tsize = (tsize_fn)sym(lib, "gguf_get_tensor_size");
    get_tensor_fn get_tensor = (get_tensor_fn)sym(lib, "ggml_get_tensor");
    free_fn gfree = (free_fn)sym(lib, "gguf_free");
    free_fn cfree = (free_fn)sym(lib, "ggml_free");

    struct ggml_context *ctx = NULL;
    struct peer_gguf_init_params params = {true, &ctx};
    struct gguf_context *g = init(argv[2], params);
    if (!g) {
        printf("{\"ok\":false}\n");
        return 0;
    }
    printf("{\"ok\":true,\"version\":%u,\"n_kv\":%lld,\"alignment\":%zu,\"data_offset\":%zu,\"tensors\":[",
           version(g), (long long)n_kv(g), alignment(g), data_offset(g));
    int64_t n = n_tensors(g);
    for (int64_t i = 0; i < n; i++) {
        const char *name = tname(g, i);
        const struct peer_tensor_head *t = get_tensor(ctx, name);
        printf("%s{\"name\":", i ? "," : "");
        print_json_string(name);
        printf(",\"type_id\":%d,\"shape\":[%lld,%lld,%lld,%lld],\"offset\":%zu,\"bytes\":%zu}",
               ttype(g, i), (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
               (long long)t->ne[3], toffset(g, i), tsize(g, i));
    }
    printf("]}\n");
    cfree(ctx);
    gfree(g);
    return 0;
}
