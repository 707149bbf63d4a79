/* cmd_mkmodel.c — `kvserve mkmodel`: writes a synthetic GGUF model (random weights, real
 * shapes, a real tokenizer) that llama.cpp and kvserve load like a downloaded one.
 *
 * Owns: the command line, the presets (real model shapes and small test shapes), the
 * checks on a requested shape, and the order of the steps:
 *
 *   options -> preset + --arch + shape overrides -> checks
 *   -> metadata (general, <arch>, tokenizer built or copied, chat template, file type)
 *   -> tensor plan -> weights streamed to FILE (via FILE.tmp, renamed when complete)
 *
 * Does not own: what a model contains (mkmodel_arch.c, mkmodel_mix.c), the tokenizer
 * (mkmodel_vocab.c), generating and writing weights (mkmodel_weights.c). */
#include "cli_common.h"
#include "commands.h"
#include "mkmodel.h"

#include "platform/file_map.h"
#include "tensor/types.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Qwen3 checkpoints: RMS norm epsilon and the vocabulary size their embeddings have
 * (151,643 BPE tokens + added tokens, padded to a multiple of 128). */
#define QWEN3_RMS_EPS 1e-6f
#define QWEN3_N_VOCAB 151936
/* Context length written for the small shapes: as the shared fixture models. */
#define TINY_N_CTX 4096
/* Largest value a shape option takes: GGUF stores these as u32, and a dimension past
 * 2^24 is a typo, not a model. */
#define SHAPE_MAX (1LL << 24)
/* Experts llama.cpp supports per layer (LLAMA_MAX_EXPERTS). */
#define MAX_EXPERTS 512
#define DEFAULT_SEED 42
#define DEFAULT_THREADS 2
/* general.quantization_version of files with quantized tensors (ggml's current one). */
#define GGML_QUANT_VERSION 2

typedef struct preset {
    const char *name;
    const char *summary;
    ks_mkmodel_hparams hp; /* n_vocab 0: the built tokenizer's own size */
} preset;

static const preset presets[] = {
    {"tiny", "qwen3, 2 layers, n_embd 256, 4 heads (2 kv) of 64, n_ff 512: tests, demos",
     {.arch = KS_MKMODEL_QWEN3, .n_layer = 2, .n_embd = 256, .n_head = 4, .n_head_kv = 2,
      .head_dim = 64, .n_ff = 512, .n_ctx = TINY_N_CTX, .rope_freq_base = 1e6f,
      .rms_eps = QWEN3_RMS_EPS}},
    {"tiny-moe", "qwen3moe, 2 layers, n_embd 256, 16 experts (4 used) of n_ff 256",
     {.arch = KS_MKMODEL_QWEN3MOE, .n_layer = 2, .n_embd = 256, .n_head = 4, .n_head_kv = 2,
      .head_dim = 64, .n_ff = 512, .n_expert = 16, .n_expert_used = 4, .n_ff_exp = 256,
      .n_ctx = TINY_N_CTX, .rope_freq_base = 1e7f, .rms_eps = QWEN3_RMS_EPS}},
    {"qwen3-0.6b", "Qwen3-0.6B: 28 layers, n_embd 1024, 16 heads (8 kv), tied output",
     {.arch = KS_MKMODEL_QWEN3, .n_layer = 28, .n_embd = 1024, .n_head = 16, .n_head_kv = 8,
      .head_dim = 128, .n_ff = 3072, .n_vocab = QWEN3_N_VOCAB, .n_ctx = 40960,
      .rope_freq_base = 1e6f, .rms_eps = QWEN3_RMS_EPS, .tied_output = true}},
    {"qwen3-coder-30b-a3b", "Qwen3-Coder-30B-A3B: qwen3moe, 48 layers, 128 experts (8 used)",
     {.arch = KS_MKMODEL_QWEN3MOE, .n_layer = 48, .n_embd = 2048, .n_head = 32, .n_head_kv = 4,
      .head_dim = 128, .n_ff = 6144, .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768,
      .n_vocab = QWEN3_N_VOCAB, .n_ctx = 262144, .rope_freq_base = 1e7f, .rms_eps = QWEN3_RMS_EPS}},
    {"qwen3-coder-30b-a3b-4l", "the same with its first 4 layers only (~3.1 G params)",
     {.arch = KS_MKMODEL_QWEN3MOE, .n_layer = 4, .n_embd = 2048, .n_head = 32, .n_head_kv = 4,
      .head_dim = 128, .n_ff = 6144, .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768,
      .n_vocab = QWEN3_N_VOCAB, .n_ctx = 262144, .rope_freq_base = 1e7f, .rms_eps = QWEN3_RMS_EPS}},
};

/* Integer options that override a preset's shape. */
typedef struct shape_opt {
    const char *flag;
    size_t offset; /* of the int64_t field in ks_mkmodel_hparams */
    bool moe_only;
} shape_opt;

static const shape_opt shape_opts[] = {
    {"--n-layer", offsetof(ks_mkmodel_hparams, n_layer), false},
    {"--n-embd", offsetof(ks_mkmodel_hparams, n_embd), false},
    {"--n-head", offsetof(ks_mkmodel_hparams, n_head), false},
    {"--n-head-kv", offsetof(ks_mkmodel_hparams, n_head_kv), false},
    {"--head-dim", offsetof(ks_mkmodel_hparams, head_dim), false},
    {"--n-ff", offsetof(ks_mkmodel_hparams, n_ff), false},
    {"--n-expert", offsetof(ks_mkmodel_hparams, n_expert), true},
    {"--n-expert-used", offsetof(ks_mkmodel_hparams, n_expert_used), true},
    {"--n-ff-exp", offsetof(ks_mkmodel_hparams, n_ff_exp), true},
    {"--n-vocab", offsetof(ks_mkmodel_hparams, n_vocab), false},
    {"--n-ctx", offsetof(ks_mkmodel_hparams, n_ctx), false},
};

typedef struct options {
    const char *out;
    const char *preset;
    int arch;                  /* -1: the preset's */
    int mix;                   /* ks_mkmodel_mix */
    uint64_t seed;
    int n_threads;
    int tied;                  /* -1: the preset's, 0 untied, 1 tied */
    double rope_theta;         /* 0: the preset's */
    const char *vocab_from;
    const char *template_file;
    bool quiet;
    int64_t shape[KS_ARRAY_LEN(shape_opts)];
    bool shape_set[KS_ARRAY_LEN(shape_opts)];
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve mkmodel -o FILE [options]\n\n"
            "Writes a GGUF model with random (seeded) weights and a real architecture's tensor\n"
            "names, shapes, metadata and quantization mix, with a byte-level BPE tokenizer.\n\n"
            "  -o, --out FILE        output path (written as FILE.tmp, then renamed)\n"
            "  --preset NAME         shape to start from (default: tiny)\n"
            "  --arch qwen3|qwen3moe architecture (default: the preset's; qwen3moe alone = tiny-moe)\n"
            "  --type TYPE           f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q3_k_m q2_k iq4_xs iq4_nl (default: f16)\n"
            "  --seed N              weights are a function of the seed (default: %d)\n"
            "  -t, --threads N       threads generating and quantizing (default: %d)\n"
            "  --vocab-from GGUF     copy every tokenizer.* key from GGUF (n_vocab = its size;\n"
            "                        ChatML template if it has none)\n"
            "  --template-file FILE  chat template (Jinja) for tokenizer.chat_template\n"
            "  --tied | --untied     share the LM head with token_embd or not\n"
            "  --rope-theta F        RoPE frequency base\n"
            "  -q, --quiet           no progress and no summary\n"
            "  shape overrides:      --n-layer --n-embd --n-head --n-head-kv --head-dim --n-ff\n"
            "                        --n-expert --n-expert-used --n-ff-exp --n-vocab --n-ctx\n\n"
            "presets:\n",
            DEFAULT_SEED, DEFAULT_THREADS);
    for (size_t i = 0; i < KS_ARRAY_LEN(presets); i++)
        fprintf(f, "  %-24s %s\n", presets[i].name, presets[i].summary);
}

static int bad_usage(const char *fmt, const char *arg) {
    fputs("kvserve mkmodel: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(kvserve mkmodel --help lists the options)\n", stderr);
    return 2;
}

/* Parses argv into o. Returns -1 to go on, else the exit status (0 after --help). */
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.arch = -1, .mix = KS_MKMODEL_MIX_F16, .seed = DEFAULT_SEED,
                   .n_threads = DEFAULT_THREADS, .tied = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* "--flag=value" and "--flag value" are the same. */
        char flag[64];
        const char *val = NULL, *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof flag) {
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = 0;
            a = flag;
            val = eq + 1;
        }
#define NEXT_VALUE()                                                                       \
    do {                                                                                   \
        if (!val) {                                                                        \
            if (i + 1 >= argc)                                                             \
                return bad_usage("option %s needs a value", a);                            \
            val = argv[++i];                                                               \
        }                                                                                  \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = true;
        } else if (!strcmp(a, "--tied") || !strcmp(a, "--untied")) {
            o->tied = !strcmp(a, "--tied");
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            NEXT_VALUE();
            o->out = val;
        } else if (!strcmp(a, "--preset")) {
            NEXT_VALUE();
            o->preset = val;
        } else if (!strcmp(a, "--arch")) {
            NEXT_VALUE();
            if (!strcmp(val, "qwen3"))
                o->arch = KS_MKMODEL_QWEN3;
            else if (!strcmp(val, "qwen3moe"))
                o->arch = KS_MKMODEL_QWEN3MOE;
            else
                return bad_usage("unknown architecture '%s' (qwen3, qwen3moe)", val);
        } else if (!strcmp(a, "--type")) {
            NEXT_VALUE();
            if ((o->mix = ks_mkmodel_mix_from_name(val)) < 0)
                return bad_usage("unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q3_k_m q2_k "
                                 "iq4_xs iq4_nl)",
                                 val);
        } else if (!strcmp(a, "--seed")) {
            NEXT_VALUE();
            long seed;
            if (!ks_cli_int("mkmodel", a, val, 0, LONG_MAX, &seed))
                return 2;
            o->seed = (uint64_t)seed;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEXT_VALUE();
            long n;
            if (!ks_cli_int("mkmodel", a, val, 1, KS_MKMODEL_MAX_THREADS, &n))
                return 2;
            o->n_threads = (int)n;
        } else if (!strcmp(a, "--rope-theta")) {
            NEXT_VALUE();
            if (!ks_cli_float("mkmodel", a, val, &o->rope_theta))
                return 2;
            if (!(o->rope_theta > 0))
                return bad_usage("--rope-theta wants a positive number, not '%s'", val);
        } else if (!strcmp(a, "--vocab-from")) {
            NEXT_VALUE();
            o->vocab_from = val;
        } else if (!strcmp(a, "--template-file")) {
            NEXT_VALUE();
            o->template_file = val;
        } else {
            size_t k = 0;
            while (k < KS_ARRAY_LEN(shape_opts) && strcmp(a, shape_opts[k].flag))
                k++;
            if (k == KS_ARRAY_LEN(shape_opts))
                return bad_usage("unknown option '%s'", argv[i]);
            NEXT_VALUE();
            long v;
            if (!ks_cli_int("mkmodel", a, val, 1, SHAPE_MAX, &v))
                return 2;
            o->shape[k] = v;
            o->shape_set[k] = true;
        }
#undef NEXT_VALUE
    }
    if (!o->out)
        return bad_usage("%s", "no output file: -o FILE");
    return -1;
}

static bool shape_given(const options *o, size_t offset) {
    for (size_t k = 0; k < KS_ARRAY_LEN(shape_opts); k++)
        if (shape_opts[k].offset == offset)
            return o->shape_set[k];
    return false;
}

/* The shape asked for: preset, then --arch, then the overrides. */
static int resolve_shape(const options *o, ks_mkmodel_hparams *hp, const char **preset_name) {
    const char *name = o->preset ? o->preset : o->arch == KS_MKMODEL_QWEN3MOE ? "tiny-moe" : "tiny";
    size_t p = 0;
    while (p < KS_ARRAY_LEN(presets) && strcmp(presets[p].name, name))
        p++;
    if (p == KS_ARRAY_LEN(presets))
        return bad_usage("unknown preset '%s' (kvserve mkmodel --help lists them)", name);
    *hp = presets[p].hp;
    *preset_name = presets[p].name;
    if (o->arch >= 0 && (ks_mkmodel_arch)o->arch != hp->arch) {
        hp->arch = (ks_mkmodel_arch)o->arch;
        if (hp->arch == KS_MKMODEL_QWEN3MOE) {
            /* Experts of the tiny-moe preset; expert width as llama.cpp assumes when the
             * key is missing (n_ff / n_expert_used). */
            hp->n_expert = 16;
            hp->n_expert_used = 4;
            hp->n_ff_exp = hp->n_ff / hp->n_expert_used;
        } else {
            hp->n_expert = hp->n_expert_used = hp->n_ff_exp = 0;
        }
    }
    for (size_t k = 0; k < KS_ARRAY_LEN(shape_opts); k++) {
        if (!o->shape_set[k])
            continue;
        if (shape_opts[k].moe_only && hp->arch != KS_MKMODEL_QWEN3MOE)
            return bad_usage("%s applies to qwen3moe only (add --arch qwen3moe)", shape_opts[k].flag);
        *(int64_t *)((char *)hp + shape_opts[k].offset) = o->shape[k];
    }
    if (o->tied >= 0)
        hp->tied_output = o->tied;
    if (o->rope_theta > 0)
        hp->rope_freq_base = (float)o->rope_theta;
    return -1;
}

/* Checks what llama.cpp's loader (and kvserve's) will require of the shape. */
static ks_status check_shape(const ks_mkmodel_hparams *hp, ks_err *err) {
    if (hp->n_head % hp->n_head_kv)
        return KS_ERRF(err, KS_ERR_INVALID, "n_head %lld is not a multiple of n_head_kv %lld",
                       (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->head_dim % 2)
        return KS_ERRF(err, KS_ERR_INVALID, "head_dim %lld is odd: RoPE rotates pairs",
                       (long long)hp->head_dim);
    if (hp->arch == KS_MKMODEL_QWEN3MOE) {
        if (hp->n_expert > MAX_EXPERTS)
            return KS_ERRF(err, KS_ERR_INVALID, "n_expert %lld is above llama.cpp's limit of %d",
                           (long long)hp->n_expert, MAX_EXPERTS);
        if (hp->n_expert_used > hp->n_expert)
            return KS_ERRF(err, KS_ERR_INVALID, "n_expert_used %lld is above n_expert %lld",
                           (long long)hp->n_expert_used, (long long)hp->n_expert);
        if (hp->n_ff_exp <= 0)
            return KS_ERRF(err, KS_ERR_INVALID, "n_ff_exp must be positive");
    }
    /* One matrix must fit the writer and a size_t: the biggest is n_vocab x n_embd or an
     * expert stack. */
    double biggest = (double)hp->n_embd * (double)KS_MAX(hp->n_vocab, 1) * 4.0;
    if (hp->arch == KS_MKMODEL_QWEN3MOE)
        biggest = KS_MAX(biggest, (double)hp->n_embd * (double)hp->n_ff_exp * (double)hp->n_expert * 4.0);
    if (biggest > (double)(1ull << 40))
        return KS_ERRF(err, KS_ERR_INVALID, "one tensor of this shape would exceed 1 TiB");
    return KS_OK;
}

/* Creates the directories above path that are missing ("models/" on a fresh clone). */
static ks_status make_parent_dirs(const char *path, ks_err *err) {
    char *dir = ks_xstrdup(path);
    ks_status s = KS_OK;
    for (char *p = dir + 1; *p && !s; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            s = KS_ERRF(err, KS_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
        *p = '/';
    }
    free(dir);
    return s;
}

static ks_status set_template_file(ks_gguf_writer *w, const char *path, ks_err *err) {
    ks_file_map m;
    ks_status s = ks_file_map_open(&m, path, err);
    if (s)
        return s;
    ks_gguf_writer_set_strn(w, "tokenizer.chat_template", m.data ? m.data : "", m.size);
    ks_file_map_close(&m);
    return KS_OK;
}

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* Writes the model. The writer is the caller's to destroy. */
static ks_status make_model(const options *o, ks_mkmodel_hparams *hp, const char *preset_name,
                            ks_gguf_writer *w, size_t *n_tensors, ks_err *err) {
    char name[96], desc[160];
    snprintf(name, sizeof name, "kvserve synthetic %s", preset_name);
    snprintf(desc, sizeof desc,
             "Random weights (seed %llu) in a real architecture's shapes, written by kvserve "
             "mkmodel; for tests and benchmarks", (unsigned long long)o->seed);
    ks_mkmodel_set_arch_keys(w, hp, name, desc);

    int64_t n_vocab, n_used;
    ks_status s;
    if (o->vocab_from) {
        s = ks_mkmodel_vocab_copy(w, o->vocab_from, &n_vocab, &n_used, err);
        if (!s && shape_given(o, offsetof(ks_mkmodel_hparams, n_vocab)) && hp->n_vocab != n_vocab)
            s = KS_ERRF(err, KS_ERR_INVALID, "--n-vocab %lld differs from the %lld tokens of %s",
                        (long long)hp->n_vocab, (long long)n_vocab, o->vocab_from);
    } else {
        s = ks_mkmodel_vocab_build(w, hp->n_vocab, &n_vocab, &n_used, err);
    }
    if (!s && o->template_file)
        s = set_template_file(w, o->template_file, err);
    if (s)
        return s;
    hp->n_vocab = n_vocab;
    hp->n_vocab_used = n_used;
    if (o->mix != KS_MKMODEL_MIX_F32) /* as llama.cpp's quantizer, which made all but F32 */
        ks_gguf_writer_set_u32(w, "general.quantization_version", GGML_QUANT_VERSION);
    ks_gguf_writer_set_u32(w, "general.file_type", ks_mkmodel_mix_ftype((ks_mkmodel_mix)o->mix));

    ks_mkmodel_tensor *plan = NULL;
    s = ks_mkmodel_plan(hp, (ks_mkmodel_mix)o->mix, &plan, n_tensors, err);
    if (!s)
        s = make_parent_dirs(o->out, err);
    if (!s) {
        ks_mkmodel_write_opts wo = {.seed = o->seed, .n_threads = o->n_threads, .progress = !o->quiet};
        s = ks_mkmodel_write(w, o->out, plan, *n_tensors, &wo, err);
    }
    free(plan);
    return s;
}

int ks_cmd_mkmodel(int argc, char **argv) {
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    ks_mkmodel_hparams hp;
    const char *preset_name;
    if ((rc = resolve_shape(&o, &hp, &preset_name)) >= 0)
        return rc;

    ks_err err;
    ks_err_clear(&err);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ks_gguf_writer *w = ks_gguf_writer_create();
    size_t n_tensors = 0;
    ks_status s = check_shape(&hp, &err);
    if (!s)
        s = make_model(&o, &hp, preset_name, w, &n_tensors, &err);
    ks_gguf_writer_destroy(w);
    if (s) {
        fprintf(stderr, "kvserve mkmodel: %s\n", err.msg);
        return 1;
    }
    if (!o.quiet) {
        struct stat st;
        double mib = stat(o.out, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
        printf("wrote %s: %s, %lld layers, n_embd %lld, n_vocab %lld, %s, %zu tensors, %.1f MiB, %.1f s\n",
               o.out, ks_mkmodel_arch_name(hp.arch), (long long)hp.n_layer, (long long)hp.n_embd,
               (long long)hp.n_vocab, ks_mkmodel_mix_name((ks_mkmodel_mix)o.mix), n_tensors, mib,
               seconds_since(&t0));
    }
    return 0;
}
