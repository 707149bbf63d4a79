/* cmd_run.c — `kvserve run -m MODEL (-p TEXT | --tokens IDS) [-n N] [sampling options]`:
 * a raw completion of a prompt, streamed to stdout through the incremental detokenizer
 * (whole characters only); --stats-json prints one JSON object on stderr at the end
 * saying what happened (prompt, computed and cached tokens, prefill and decode time).
 * A text prompt is tokenized with special tokens parsed (so ChatML markup works) and
 * with the bos/eos the vocabulary asks for.
 *
 * The prompt goes through the KV cache like a server request: every full block of it
 * that is cached is taken, the rest computed. Within one process that is nothing; across
 * processes it is the disk tier, which `run` uses only when asked (--kv-dir, or
 * --kv-disk for the default root). Off by default because `run` is what scripts,
 * tests and benchmarks call to measure the model: a command that quietly wrote
 * gigabytes of block files under ~/.cache (a 12K-token prompt of a Qwen3-0.6B shape
 * is 1.3 GiB in F16) and made the next timing a cache read would surprise them. */
#include "commands.h"

#include "cli_common.h"
#include "cli_size.h"
#include "engine/runner.h"
#include "kv/kv_disk.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tensor/types.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve run -m MODEL (-p TEXT | --tokens 1,2,3) [options]\n"
            "  -n N                tokens to generate (default 64)\n"
            "  --temp T            temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K --top-p P --min-p P --repeat-penalty R --repeat-last-n N\n"
            "  --presence-penalty P --frequency-penalty P\n"
            "  --seed S            RNG seed (default 0)\n"
            "  --ignore-eos        keep generating past end-of-generation tokens\n"
            "  --special           print control tokens' text\n"
            "  --stats-json        one JSON object with counts and timings on stderr\n"
            "  --kv-type T         f16 (default) | f32 | q8_0\n"
            "  --kv-dir DIR        KV disk tier root: reuse the prompt's blocks cached there by\n"
            "                      earlier runs (or servers) of the same model, add its new ones\n"
            "  --kv-disk SIZE      disk tier budget (default 20G; given alone: the default root\n"
            "                      $XDG_CACHE_HOME/kvserve); 0 turns the disk tier off\n"
            "  --kv-ram SIZE       KV RAM pool (default: the context, -c)\n"
            "  -c N                context length (default: min(model's, 4096))\n"
            "  -t N                threads (default: physical cores)\n"
            "  -b N                prefill chunk in tokens (default 512)\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int ks_cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *tokens_arg = NULL, *prompt_text = NULL;
    long n_gen = 64, threads = 0, batch = 512, ctx = 0, top_k = 40, last_n = 64;
    double temp = 0.8, top_p = 0.95, min_p = 0.05, rep = 1.0, pres = 0, freq = 0;
    long seed = 0;
    int stats = 0, ignore_eos = 0, special = 0, kv_type = KS_TYPE_F16;
    const char *kv_dir = NULL;
    uint64_t kv_ram = 0, kv_disk = 0;
    bool kv_disk_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_OPT(name, var, lo, hi) else if (!strcmp(a, name)) { if (!ks_cli_int("run", a, v, lo, hi, &var)) return 2; i++; }
#define FLT_OPT(name, var) else if (!strcmp(a, name)) { if (!ks_cli_float("run", a, v, &var)) return 2; i++; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model_path = v; i++; }
        else if (!strcmp(a, "--tokens")) { tokens_arg = v; i++; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { prompt_text = v; i++; }
        else if (!strcmp(a, "--stats-json")) stats = 1;
        else if (!strcmp(a, "--kv-dir")) {
            if (!v) { fprintf(stderr, "kvserve run: --kv-dir needs a directory\n"); return 2; }
            kv_dir = v;
            i++;
        }
        else if (!strcmp(a, "--kv-ram") || !strcmp(a, "--kv-disk")) {
            bool ram = !strcmp(a, "--kv-ram");
            if (!ks_cli_size(v, ram ? &kv_ram : &kv_disk)) {
                fprintf(stderr, "kvserve run: %s needs a size such as 512M or 8G\n", a);
                return 2;
            }
            kv_disk_set |= !ram;
            i++;
        }
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = 1;
        else if (!strcmp(a, "--special")) special = 1;
        else if (!strcmp(a, "--kv-type")) {
            if (!v || (kv_type = ks_cli_kv_type(v)) < 0) { fprintf(stderr, "kvserve run: --kv-type is f32, f16 or q8_0\n"); return 2; }
            i++;
        }
        INT_OPT("-n", n_gen, 0, 1 << 24)
        INT_OPT("-t", threads, 0, 1024)
        INT_OPT("-b", batch, 1, 1 << 16)
        INT_OPT("-c", ctx, 0, 1 << 24)
        INT_OPT("--top-k", top_k, -1, 1 << 30)
        INT_OPT("--repeat-last-n", last_n, 0, 1 << 20)
        INT_OPT("--seed", seed, 0, 0x7fffffffffffffffL)
        FLT_OPT("--temp", temp)
        FLT_OPT("--top-p", top_p)
        FLT_OPT("--min-p", min_p)
        FLT_OPT("--repeat-penalty", rep)
        FLT_OPT("--presence-penalty", pres)
        FLT_OPT("--frequency-penalty", freq)
        else { fprintf(stderr, "kvserve run: unknown option '%s'\n", a); usage(stderr); return 2; }
#undef INT_OPT
#undef FLT_OPT
    }
    if (!model_path || !tokens_arg == !prompt_text) {
        usage(stderr);
        return 2;
    }
    int32_t *prompt = NULL;
    int n_prompt = 0;
    if (tokens_arg && (n_prompt = ks_cli_parse_tokens(tokens_arg, &prompt)) < 0)
        return 1;

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_model *m = NULL;
    ks_runner *r = NULL;
    ks_vocab *own_vocab = NULL;
    const ks_vocab *vocab = NULL;
    ks_tokenizer *tok = NULL;
    ks_sampler *smp = NULL;
    float *logits = NULL;
    ks_detok detok = {0};
    char root[4096], dir[4096];
    if (ks_model_load(&m, model_path, &err))
        goto fail;
    if (prompt_text) {
        size_t n = 0;
        ks_status s;
        if (ks_tokenizer_create(&tok, m->gguf, &err))
            goto fail;
        vocab = ks_tokenizer_vocab(tok);
        if ((s = ks_tokenize_alloc(tok, prompt_text, strlen(prompt_text), KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL,
                                   &prompt, &n))) {
            KS_ERRF(&err, s, "tokenizing the prompt: %s", ks_status_str(s));
            goto fail;
        }
        if (n > (size_t)INT32_MAX) {
            KS_ERRF(&err, KS_ERR_INVALID, "prompt of %zu tokens", n);
            goto fail;
        }
        n_prompt = (int)n;
    } else {
        if (ks_vocab_load(&own_vocab, m->gguf, &err))
            goto fail;
        vocab = own_vocab;
    }
    if (n_prompt == 0) {
        KS_ERRF(&err, KS_ERR_INVALID, "empty prompt");
        goto fail;
    }
    if (ks_detok_init(&detok, vocab, special)) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_threads = (int)threads;
    p.n_batch = (int)batch;
    p.n_ctx = (int)ctx;
    p.kv.kv_type = (uint32_t)kv_type;
    p.kv.ram_bytes = kv_ram;
    /* The disk tier: on with --kv-dir, or with a nonzero --kv-disk alone (default root). */
    if ((kv_dir || kv_disk_set) && !(kv_disk_set && kv_disk == 0)) {
        if (kv_dir)
            snprintf(root, sizeof root, "%s", kv_dir);
        else if (ks_kv_disk_default_root(root, sizeof root, &err))
            goto fail;
        if (ks_kv_disk_model_dir(root, m->fingerprint, dir, sizeof dir, &err))
            goto fail;
        p.kv.disk_dir = dir;
        p.kv.disk_bytes = kv_disk; /* 0: the cache's default */
    }
    if (ks_runner_create(&r, m, &p, &err))
        goto fail;
    if (n_prompt + n_gen > ks_runner_n_ctx(r)) {
        if (n_prompt >= ks_runner_n_ctx(r)) {
            KS_ERRF(&err, KS_ERR_INVALID, "prompt of %d tokens does not fit the context of %d", n_prompt,
                    ks_runner_n_ctx(r));
            goto fail;
        }
        n_gen = ks_runner_n_ctx(r) - n_prompt;
    }
    /* The whole sequence lives in the pool: say so now rather than fail mid-way. */
    const ks_kv_layout *kvl = ks_kv_cache_layout(ks_runner_cache(r));
    int32_t pool_blocks = ks_kv_cache_pool_blocks(ks_runner_cache(r));
    int64_t pool_tokens = (int64_t)pool_blocks * kvl->block_tokens;
    if (n_prompt + n_gen > pool_tokens) {
        KS_ERRF(&err, KS_ERR_INVALID,
                "--kv-ram holds %lld tokens (%d blocks of %llu bytes); the prompt and -n need %lld",
                (long long)pool_tokens, pool_blocks, (unsigned long long)kvl->block_bytes,
                (long long)(n_prompt + n_gen));
        goto fail;
    }
    ks_sampler_params sp = ks_sampler_params_default();
    sp.temperature = (float)temp;
    sp.top_k = (int32_t)top_k;
    sp.top_p = (float)top_p;
    sp.min_p = (float)min_p;
    sp.repeat_penalty = (float)rep;
    sp.repeat_last_n = (int32_t)last_n;
    sp.presence_penalty = (float)pres;
    sp.frequency_penalty = (float)freq;
    sp.seed = (uint64_t)seed;
    if (ks_sampler_create(&smp, m->hp.n_vocab, &sp, &err))
        goto fail;
    logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!logits) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] >= 0 && prompt[i] < m->hp.n_vocab)
            ks_sampler_accept(smp, prompt[i]);

    double t0 = now_ms();
    ks_kv_usage u;
    if (ks_runner_start(r, prompt, n_prompt, logits, &u, &err))
        goto fail;
    double t1 = now_ms();
    int generated = 0;
    const char *piece;
    size_t len;
    for (; generated < n_gen; generated++) {
        int32_t id = ks_sampler_sample(smp, logits, NULL);
        if (id < 0) {
            KS_ERRF(&err, KS_ERR_INTERNAL, "no finite logit at generated token %d", generated);
            goto fail;
        }
        ks_sampler_accept(smp, id);
        if (!ignore_eos && ks_vocab_is_eog(vocab, id))
            break;
        ks_detok_push(&detok, id, &piece, &len);
        if (len) {
            fwrite(piece, 1, len, stdout);
            fflush(stdout);
        }
        if (generated + 1 < n_gen && ks_runner_eval(r, &id, 1, false, logits, &err))
            goto fail;
    }
    double t2 = now_ms();
    ks_detok_flush(&detok, &piece, &len);
    fwrite(piece, 1, len, stdout);
    putchar('\n');
    fflush(stdout);
    if (stats) {
        /* prefill_ms covers taking cached blocks (disk reads included) and computing the
         * rest; prefill_tok_s is computed tokens over that time. */
        ks_kv_cache_stats ks;
        ks_kv_cache_stats_get(ks_runner_cache(r), &ks);
        json_t *j = json_pack(
            "{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, s:s?, s:I, s:s, s:s}", "prompt_tokens",
            u.prompt_tokens, "cached_tokens", u.cached_ram_tokens + u.cached_disk_tokens, "cached_ram_tokens",
            u.cached_ram_tokens, "cached_disk_tokens", u.cached_disk_tokens, "computed_tokens", u.computed_tokens,
            "new_cached_tokens", u.new_cached_tokens, "generated_tokens", generated, "prefill_ms", t1 - t0,
            "decode_ms", t2 - t1, "prefill_tok_s", u.computed_tokens / ((t1 - t0) / 1e3 + 1e-9), "decode_tok_s",
            generated > 1 ? (generated - 1) / ((t2 - t1) / 1e3 + 1e-9) : 0.0, "threads", ks_runner_n_threads(r),
            "kv_dir", p.kv.disk_dir, "kv_disk_corrupt_skipped", (json_int_t)ks.disk_corrupt_skipped, "model",
            model_path, "fingerprint", m->fingerprint_hex);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        if (text)
            fprintf(stderr, "%s\n", text);
        free(text);
        json_decref(j);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kvserve: %s\n", err.msg);
    free(logits);
    free(prompt);
    ks_sampler_destroy(smp);
    ks_runner_destroy(r);
    ks_detok_deinit(&detok);
    ks_tokenizer_destroy(tok);
    ks_vocab_destroy(own_vocab);
    ks_model_close(m);
    return rc;
}
