/* cmd_run.c — `kvserve run -m MODEL (-p TEXT | --tokens IDS) [-n N] [sampling options]`:
 * a raw completion of a prompt, streamed to stdout through the incremental detokenizer
 * (whole characters only); --stats-json prints one JSON object on stderr at the end
 * saying what happened (prompt, computed and cached tokens, prefill and decode time).
 * A text prompt is tokenized with special tokens parsed (so ChatML markup works) and
 * with the bos/eos the vocabulary asks for. */
#include "commands.h"

#include "cli_common.h"
#include "engine/runner.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tensor/types.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_OPT(name, var, lo, hi) else if (!strcmp(a, name)) { if (!ks_cli_int("run", a, v, lo, hi, &var)) return 2; i++; }
#define FLT_OPT(name, var) else if (!strcmp(a, name)) { if (!ks_cli_float("run", a, v, &var)) return 2; i++; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model_path = v; i++; }
        else if (!strcmp(a, "--tokens")) { tokens_arg = v; i++; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { prompt_text = v; i++; }
        else if (!strcmp(a, "--stats-json")) stats = 1;
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
    if (ks_runner_eval(r, prompt, n_prompt, false, logits, &err))
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
    if (stats)
        fprintf(stderr,
                "{\"prompt_tokens\":%d,\"computed_tokens\":%d,\"cached_tokens\":0,\"generated_tokens\":%d,"
                "\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,"
                "\"threads\":%d,\"model\":\"%s\",\"fingerprint\":\"%s\"}\n",
                n_prompt, n_prompt, generated, t1 - t0, t2 - t1, n_prompt / ((t1 - t0) / 1e3 + 1e-9),
                generated > 1 ? (generated - 1) / ((t2 - t1) / 1e3 + 1e-9) : 0.0, ks_runner_n_threads(r),
                model_path, m->fingerprint_hex);
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
