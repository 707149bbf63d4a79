/* model_load.c — hyperparameters from metadata, weight binding and validation, where the
 * tensor data lives (read into huge pages or left mapped), and the model fingerprint (see
 * model.h). */
#include "model/model.h"

#include "core/log.h"
#include "platform/pages.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* Bytes sampled from each tensor for the fingerprint: enough that two random-weight
 * models with the same shapes differ, cheap enough to hash a 30B model at start-up. */
#define KS_FINGERPRINT_SAMPLE_BYTES 4096

const char *ks_model_supported_archs(void) { return "qwen3, qwen3moe"; }

typedef struct loader {
    ks_gguf *g;
    const char *path;
    char prefix[40];   /* "<arch>." */
    ks_err *err;
} loader;

static ks_status get_int(loader *L, const char *suffix, int *out, int fallback, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s%s", L->prefix, suffix);
    if (!ks_gguf_find(L->g, key)) {
        if (required)
            return KS_ERRF(L->err, KS_ERR_INVALID, "%s: missing metadata key '%s'", L->path, key);
        *out = fallback;
        return KS_OK;
    }
    uint32_t v = 0;
    ks_status s = ks_gguf_get_u32(L->g, key, &v, L->err);
    if (s)
        return s;
    if (v > INT32_MAX)
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: metadata '%s' = %u is too large", L->path, key, v);
    *out = (int)v;
    return KS_OK;
}

static ks_status get_float(loader *L, const char *suffix, float *out, float fallback) {
    char key[128];
    snprintf(key, sizeof key, "%s%s", L->prefix, suffix);
    if (!ks_gguf_find(L->g, key)) {
        *out = fallback;
        return KS_OK;
    }
    return ks_gguf_get_f32(L->g, key, out, L->err);
}

static ks_status read_hparams(loader *L, ks_hparams *hp) {
    ks_gguf_str arch;
    ks_status s = ks_gguf_get_str(L->g, "general.architecture", &arch, L->err);
    if (s)
        return s;
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)(arch.len < 31 ? arch.len : 31), arch.ptr);
    if (ks_gguf_str_eq(arch, "qwen3")) {
        hp->arch = KS_ARCH_QWEN3;
    } else if (ks_gguf_str_eq(arch, "qwen3moe")) {
        hp->arch = KS_ARCH_QWEN3MOE;
    } else {
        return KS_ERRF(L->err, KS_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (supported: %s)",
                       L->path, (int)(arch.len < 64 ? arch.len : 64), arch.ptr, ks_model_supported_archs());
    }
    snprintf(L->prefix, sizeof L->prefix, "%s.", hp->arch_name);
    bool moe = hp->arch == KS_ARCH_QWEN3MOE;
    if ((s = get_int(L, "embedding_length", &hp->n_embd, 0, true)) ||
        (s = get_int(L, "block_count", &hp->n_layer, 0, true)) ||
        (s = get_int(L, "attention.head_count", &hp->n_head, 0, true)) ||
        (s = get_int(L, "attention.head_count_kv", &hp->n_head_kv, hp->n_head, false)) ||
        (s = get_int(L, "context_length", &hp->n_ctx_train, 4096, false)) ||
        (s = get_int(L, "feed_forward_length", &hp->n_ff, 0, !moe)) ||
        (s = get_int(L, "expert_count", &hp->n_expert, 0, moe)) ||
        (s = get_int(L, "expert_used_count", &hp->n_expert_used, 0, moe)) ||
        (s = get_int(L, "expert_feed_forward_length", &hp->n_ff_exp, hp->n_ff, false)) ||
        (s = get_float(L, "rope.freq_base", &hp->rope_theta, 10000.0f)) ||
        (s = get_float(L, "attention.layer_norm_rms_epsilon", &hp->rms_eps, 1e-6f)))
        return s;
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0)
        return KS_ERRF(L->err, KS_ERR_INVALID,
                       "%s: inconsistent attention shape (n_embd %d, n_layer %d, n_head %d, n_head_kv %d)",
                       L->path, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv);
    if ((s = get_int(L, "attention.key_length", &hp->head_dim, hp->n_embd / hp->n_head, false)))
        return s;
    int v_len = 0;
    if ((s = get_int(L, "attention.value_length", &v_len, hp->head_dim, false)))
        return s;
    if (hp->head_dim <= 0 || hp->head_dim % 2 != 0 || v_len != hp->head_dim)
        return KS_ERRF(L->err, KS_ERR_UNSUPPORTED, "%s: head dimensions key %d / value %d not supported",
                       L->path, hp->head_dim, v_len);
    if (moe && (hp->n_expert <= 0 || hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert ||
                hp->n_ff_exp <= 0))
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: inconsistent MoE shape (%d experts, %d used, n_ff_exp %d)",
                       L->path, hp->n_expert, hp->n_expert_used, hp->n_ff_exp);
    hp->qk_norm = true;          /* Qwen3 normalises each head of q and k */
    hp->moe_norm_topk = moe;     /* Qwen3-MoE renormalises the top-k router weights */
    return KS_OK;
}

static void shape_str(const int64_t *ne, int n, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < n && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %" PRId64 : "%" PRId64, ne[d]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
}

/* Binds tensor `name` with the expected shape (n dims); 2-D and 3-D weights must have a
 * type kvserve computes with, norms must be F32. */
static ks_status bind(loader *L, ks_weight *w, const char *name, int n, int64_t ne0, int64_t ne1,
                      int64_t ne2, bool optional) {
    const ks_gguf_tensor *t = ks_gguf_find_tensor(L->g, name);
    memset(w, 0, sizeof *w);
    if (!t) {
        if (optional)
            return KS_OK;
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: missing tensor '%s'", L->path, name);
    }
    int64_t want[4] = {ne0, ne1, ne2, 1};
    bool ok = (int)t->n_dims <= n || (t->n_dims == 2 && n == 1 && t->ne[1] == 1);
    for (int d = 0; d < 4; d++)
        ok = ok && t->ne[d] == (d < n ? want[d] : 1);
    if (!ok) {
        char got[96], exp[96];
        shape_str(t->ne, (int)t->n_dims, got, sizeof got);
        shape_str(want, n, exp, sizeof exp);
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: tensor '%s' has shape %s, expected %s", L->path,
                       name, got, exp);
    }
    if (!ks_type_is_supported(t->type))
        return KS_ERRF(L->err, KS_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which kvserve does not support",
                       L->path, name, ks_type_name(t->type));
    if (n == 1 && t->type != KS_TYPE_F32)
        return KS_ERRF(L->err, KS_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; norm weights must be f32",
                       L->path, name, ks_type_name(t->type));
    w->data = t->data;
    w->type = t->type;
    memcpy(w->ne, t->ne, sizeof w->ne);
    w->row_bytes = ks_type_row_size((ks_type)t->type, t->ne[0], NULL);
    return KS_OK;
}

static ks_status bind_all(loader *L, ks_model *m) {
    ks_hparams *hp = &m->hp;
    ks_status s;
    const ks_gguf_tensor *emb = ks_gguf_find_tensor(L->g, "token_embd.weight");
    if (!emb)
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: missing tensor 'token_embd.weight'", L->path);
    if (emb->ne[1] <= 0 || emb->ne[1] > INT32_MAX)
        return KS_ERRF(L->err, KS_ERR_INVALID, "%s: tensor 'token_embd.weight' has an invalid vocabulary size",
                       L->path);
    hp->n_vocab = (int)emb->ne[1];
    if ((s = bind(L, &m->tok_embd, "token_embd.weight", 2, hp->n_embd, hp->n_vocab, 1, false)) ||
        (s = bind(L, &m->output_norm, "output_norm.weight", 1, hp->n_embd, 1, 1, false)) ||
        (s = bind(L, &m->output, "output.weight", 2, hp->n_embd, hp->n_vocab, 1, true)))
        return s;
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output)
        m->output = m->tok_embd;

    int64_t q_dim = (int64_t)hp->n_head * hp->head_dim, kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return KS_ERRF(L->err, KS_ERR_NOMEM, "%s: out of memory", L->path);
    for (int il = 0; il < hp->n_layer; il++) {
        ks_layer *l = &m->layers[il];
        char n[64];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, il), n)
        if ((s = bind(L, &l->attn_norm, NAME("attn_norm.weight"), 1, hp->n_embd, 1, 1, false)) ||
            (s = bind(L, &l->wq, NAME("attn_q.weight"), 2, hp->n_embd, q_dim, 1, false)) ||
            (s = bind(L, &l->wk, NAME("attn_k.weight"), 2, hp->n_embd, kv_dim, 1, false)) ||
            (s = bind(L, &l->wv, NAME("attn_v.weight"), 2, hp->n_embd, kv_dim, 1, false)) ||
            (s = bind(L, &l->wo, NAME("attn_output.weight"), 2, q_dim, hp->n_embd, 1, false)) ||
            (s = bind(L, &l->q_norm, NAME("attn_q_norm.weight"), 1, hp->head_dim, 1, 1, !hp->qk_norm)) ||
            (s = bind(L, &l->k_norm, NAME("attn_k_norm.weight"), 1, hp->head_dim, 1, 1, !hp->qk_norm)) ||
            (s = bind(L, &l->ffn_norm, NAME("ffn_norm.weight"), 1, hp->n_embd, 1, 1, false)))
            return s;
        if (hp->n_expert > 0) {
            if ((s = bind(L, &l->gate_inp, NAME("ffn_gate_inp.weight"), 2, hp->n_embd, hp->n_expert, 1, false)) ||
                (s = bind(L, &l->gate_exps, NAME("ffn_gate_exps.weight"), 3, hp->n_embd, hp->n_ff_exp, hp->n_expert, false)) ||
                (s = bind(L, &l->up_exps, NAME("ffn_up_exps.weight"), 3, hp->n_embd, hp->n_ff_exp, hp->n_expert, false)) ||
                (s = bind(L, &l->down_exps, NAME("ffn_down_exps.weight"), 3, hp->n_ff_exp, hp->n_embd, hp->n_expert, false)))
                return s;
        } else {
            if ((s = bind(L, &l->ffn_gate, NAME("ffn_gate.weight"), 2, hp->n_embd, hp->n_ff, 1, false)) ||
                (s = bind(L, &l->ffn_up, NAME("ffn_up.weight"), 2, hp->n_embd, hp->n_ff, 1, false)) ||
                (s = bind(L, &l->ffn_down, NAME("ffn_down.weight"), 2, hp->n_ff, hp->n_embd, 1, false)))
                return s;
        }
#undef NAME
    }
    return KS_OK;
}

/* XXH3-128 over the metadata bytes, the tensor directory and a sample of each tensor's
 * data (its first and last KS_FINGERPRINT_SAMPLE_BYTES / 2 bytes). */
static void fingerprint(ks_model *m) {
    XXH3_state_t *st = XXH3_createState();
    KS_ASSERT(st);
    XXH3_128bits_reset(st);
    const ks_gguf *g = m->gguf;
    for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
        XXH3_128bits_update(st, kv->key.ptr, (size_t)kv->key.len);
        XXH3_128bits_update(st, &kv->value.type, sizeof kv->value.type);
        if (kv->value.type == KS_GGUF_STRING)
            XXH3_128bits_update(st, kv->value.v.str.ptr, (size_t)kv->value.v.str.len);
        else if (kv->value.type == KS_GGUF_ARRAY)
            XXH3_128bits_update(st, &kv->value.v.arr.n, sizeof kv->value.v.arr.n);
        else
            XXH3_128bits_update(st, &kv->value.v, sizeof kv->value.v);
    }
    for (uint64_t i = 0; i < ks_gguf_n_tensors(g); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(g, i);
        XXH3_128bits_update(st, t->name.ptr, (size_t)t->name.len);
        XXH3_128bits_update(st, t->ne, sizeof t->ne);
        XXH3_128bits_update(st, &t->type, sizeof t->type);
        uint64_t half = KS_FINGERPRINT_SAMPLE_BYTES / 2;
        if (t->size <= 2 * half) {
            XXH3_128bits_update(st, t->data, (size_t)t->size);
        } else {
            XXH3_128bits_update(st, t->data, (size_t)half);
            XXH3_128bits_update(st, (const uint8_t *)t->data + t->size - half, (size_t)half);
        }
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(m->fingerprint, c.digest, 16);
    for (int i = 0; i < 16; i++)
        snprintf(m->fingerprint_hex + 2 * i, 3, "%02x", m->fingerprint[i]);
}

/* Share of the memory available at load time the tensor data may take when read into
 * RAM: past it the file stays mapped, so the page cache can still give pages back (a
 * model near the size of RAM runs slowly instead of failing). */
#define KS_WEIGHTS_MAX_SHARE_OF_AVAILABLE 0.9

/* Where the tensor data lives. Decode streams all of it once per token, and from 4 KiB
 * page-cache pages it reads at well under the machine's bandwidth (see platform/pages.h),
 * so by default the data section is read (pread, no second copy) into anonymous memory
 * the OS backs with huge pages, in place of its part of the mapping: every tensor view
 * stays valid. KS_WEIGHTS=mmap keeps the plain file mapping (start-up without reading the
 * file, pages shared with other processes and given back under memory pressure); so does
 * a kernel without transparent huge pages, or too little free memory. */
static ks_status place_weights(ks_model *m, const char *path, bool *in_ram, ks_err *err) {
    *in_ram = false;
    const ks_gguf *g = m->gguf;
    if (ks_gguf_n_tensors(g) == 0)
        return KS_OK;
    const ks_gguf_tensor *t = ks_gguf_tensor_at(g, 0);
    const uint8_t *data = (const uint8_t *)t->data - t->offset; /* the data section */
    uint64_t offset = ks_gguf_data_offset(g), bytes = ks_gguf_file_size(g) - offset;
    const char *mode = getenv("KS_WEIGHTS");
    uint64_t avail = ks_pages_available();
    bool read = !(mode && !strcmp(mode, "mmap")) && ks_pages_thp_enabled();
    if (read && avail > 0 && (double)bytes > KS_WEIGHTS_MAX_SHARE_OF_AVAILABLE * (double)avail) {
        KS_LOGW("%s: %.1f GiB of tensor data, %.1f GiB of memory available: mapping the file "
                "instead of reading it into huge pages", path, (double)bytes / (1 << 30),
                (double)avail / (1 << 30));
        read = false;
    }
    if (!read) {
        ks_pages_advise_huge(data, (size_t)bytes); /* used by filesystems with large folios */
        return KS_OK;
    }
    ks_err e;
    ks_err_clear(&e);
    ks_status s = ks_pages_load_file((void *)data, (size_t)bytes, path, offset, &e);
    if (s == KS_ERR_INTERNAL)
        return KS_ERRF(err, s, "%s", e.msg);
    if (s)
        KS_LOGW("%s; the file stays mapped", e.msg);
    *in_ram = s == KS_OK;
    return KS_OK;
}

/* Weight matrices whose type the selected kernels take in panels (kernels.h,
 * ks_panel_kernels) are repacked in place, 16 rows at a time, when the tensor data was
 * read into memory (a mapped file stays as it is) and a matrix's rows (an expert's, in a
 * 3-D weight) are a multiple of 16. KS_PANELS=0 keeps every weight in rows. The matrices
 * are shared out to a thread per core (a 3.3 GB file's Q8_0 took 0.5 s on one). */
#define KS_REPACK_THREADS 16

typedef struct repack_job {
    const ks_kernels *k;
    ks_weight **ws;     /* the matrices to repack */
    int n;
    atomic_int next;    /* the next one a thread takes */
    size_t scratch_bytes; /* 16 rows of the widest */
} repack_job;

static bool wants_panels(const ks_weight *w, const ks_kernels *k) {
    return w->data && !w->panels && k->panel[w->type].gemv && w->ne[1] % KS_PANEL_ROWS == 0;
}

static void *repack_run(void *arg) {
    repack_job *job = arg;
    uint8_t *scratch = malloc(job->scratch_bytes);
    if (!scratch)
        return NULL;
    for (int i; (i = atomic_fetch_add(&job->next, 1)) < job->n;) {
        ks_weight *w = job->ws[i];
        int64_t rows = w->ne[1] * w->ne[2] * w->ne[3];
        for (int64_t r = 0; r < rows; r += KS_PANEL_ROWS)
            job->k->panel[w->type].repack((uint8_t *)w->data + (size_t)r * w->row_bytes, w->row_bytes, w->ne[0],
                                           scratch);
        w->panels = true;
    }
    free(scratch);
    return NULL;
}

static void repack_panels(ks_model *m) {
    const char *env = getenv("KS_PANELS");
    if ((env && !strcmp(env, "0")) || ks_gguf_n_tensors(m->gguf) == 0)
        return;
    const ks_kernels *k = ks_kernels_get();
    /* the matrices, the tied output once (as the embedding) */
    int cap = 2 + 11 * m->hp.n_layer, n = 0;
    ks_weight **ws = malloc((size_t)cap * sizeof *ws);
    if (!ws)
        return;
    size_t scratch_bytes = 0;
    ks_weight *top[] = {&m->tok_embd, m->hp.tied_output ? NULL : &m->output};
    for (int i = 0; i < 2; i++)
        if (top[i] && wants_panels(top[i], k))
            ws[n++] = top[i];
    for (int i = 0; i < m->hp.n_layer; i++) {
        ks_layer *l = &m->layers[i];
        ks_weight *lw[] = {&l->wq,       &l->wk,       &l->wv,       &l->wo,       &l->ffn_gate, &l->ffn_up,
                           &l->ffn_down, &l->gate_inp, &l->gate_exps, &l->up_exps, &l->down_exps};
        for (size_t j = 0; j < sizeof lw / sizeof lw[0]; j++)
            if (wants_panels(lw[j], k))
                ws[n++] = lw[j];
    }
    for (int i = 0; i < n; i++)
        scratch_bytes = KS_MAX(scratch_bytes, KS_PANEL_ROWS * ws[i]->row_bytes);
    /* the data section (the read bytes, read-only, and file pages at its ends) */
    const ks_gguf_tensor *t0 = ks_gguf_tensor_at(m->gguf, 0);
    const uint8_t *data = (const uint8_t *)t0->data - t0->offset;
    size_t bytes = (size_t)(ks_gguf_file_size(m->gguf) - ks_gguf_data_offset(m->gguf));
    if (n == 0 || !ks_pages_protect(data, bytes, true)) {
        if (n)
            KS_LOGW("cannot write the loaded weights: they stay in rows");
        free(ws);
        return;
    }
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    repack_job job = {.k = k, .ws = ws, .n = n, .scratch_bytes = scratch_bytes};
    atomic_init(&job.next, 0);
    long n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = (int)KS_MIN(KS_MAX(n_cpus, 1L), (long)KS_REPACK_THREADS);
    pthread_t threads[KS_REPACK_THREADS];
    bool started[KS_REPACK_THREADS] = {false};
    for (int i = 1; i < nt; i++)
        started[i] = pthread_create(&threads[i], NULL, repack_run, &job) == 0;
    repack_run(&job);
    for (int i = 1; i < nt; i++)
        if (started[i])
            pthread_join(threads[i], NULL);
    /* a thread without scratch left its matrices to the others; any left over: here */
    int done = 0;
    double gib = 0;
    for (int i = 0; i < n; i++) {
        if (!ws[i]->panels) {
            KS_LOGW("out of memory repacking a weight: it stays in rows");
            continue;
        }
        done++;
        gib += (double)ws[i]->row_bytes * (double)(ws[i]->ne[1] * ws[i]->ne[2] * ws[i]->ne[3]) / (1 << 30);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    KS_LOGD("%d weight matrices (%.2f GiB) repacked into 16-row panels for the %s kernels in %.2f s (KS_PANELS=0: "
            "rows)", done, gib, k->isa,
            (double)(ts1.tv_sec - ts0.tv_sec) + 1e-9 * (double)(ts1.tv_nsec - ts0.tv_nsec));
    if (m->hp.tied_output)
        m->output = m->tok_embd;
    free(ws);
    if (!ks_pages_protect(data, bytes, false))
        KS_LOGW("cannot make the repacked weights read-only again");
}

/* Names the weight type holding the most bytes (what users call the model's quant). */
static void quant_name(ks_model *m) {
    uint64_t bytes[KS_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < ks_gguf_n_tensors(m->gguf); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(m->gguf, i);
        if (t->type < KS_TYPE_COUNT)
            bytes[t->type] += t->size;
    }
    int best = 0;
    for (int i = 1; i < KS_TYPE_COUNT; i++)
        if (bytes[i] > bytes[best])
            best = i;
    snprintf(m->quant_name, sizeof m->quant_name, "%s", ks_type_name((uint32_t)best));
}

ks_status ks_model_load(ks_model **out, const char *path, ks_err *err) {
    ks_model *m = calloc(1, sizeof *m);
    if (!m)
        return KS_ERRF(err, KS_ERR_NOMEM, "%s: out of memory", path);
    bool in_ram = false;
    ks_status s = ks_gguf_open(&m->gguf, path, err);
    if (!s) {
        loader L = {m->gguf, path, "", err};
        s = read_hparams(&L, &m->hp);
        if (!s)
            s = bind_all(&L, m);
        if (!s)
            s = place_weights(m, path, &in_ram, err);
    }
    if (s) {
        ks_model_close(m);
        return s;
    }
    fingerprint(m); /* of the file's bytes, before any repacking */
    quant_name(m);
    if (in_ram)
        repack_panels(m);
    *out = m;
    return KS_OK;
}

void ks_model_close(ks_model *m) {
    if (!m)
        return;
    free(m->layers);
    ks_gguf_close(m->gguf);
    free(m);
}
