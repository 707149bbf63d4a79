/* cmd_logits.c — `kvserve logits -m MODEL --tokens 1,2,3 [--top K] [--json]
 * [--all-out FILE]`: evaluates the tokens as one sequence and prints, for every position,
 * the top-K token ids and logits; --all-out writes the last position's full logits as
 * little-endian float32 (n_vocab values, no header), like the reference fixtures. */
#include "commands.h"

#include "cli_common.h"
#include "engine/runner.h"
#include "model/model.h"
#include "tensor/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve logits -m MODEL (--tokens 1,2,3 | --tokens-file FILE) [options]\n"
            "  --top K           top-K per position (default 20)\n"
            "  --json            one JSON object instead of text\n"
            "  --all-out FILE    last position's logits as float32 little-endian\n"
            "  --kv-type T       f32 | f16 | q8_0 (default f32: exact)\n"
            "  -t N              threads (default: physical cores)\n"
            "  -b N              tokens per forward call (default 512)\n");
}

typedef struct idx_logit {
    int id;
    float logit;
} idx_logit;

/* top-k by logit (descending, ties to lower id) with a simple insertion buffer. */
static int top_k(const float *l, int n, int k, idx_logit *out) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && l[i] <= out[m - 1].logit)
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && out[j - 1].logit < l[i]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j].id = i;
        out[j].logit = l[i];
    }
    return m;
}

int ks_cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *tokens_arg = NULL, *tokens_file = NULL, *all_out = NULL;
    long top = 20, threads = 0, batch = 512;
    int json = 0, kv_type = KS_TYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model_path = v; i++; }
        else if (!strcmp(a, "--tokens")) { tokens_arg = v; i++; }
        else if (!strcmp(a, "--tokens-file")) { tokens_file = v; i++; }
        else if (!strcmp(a, "--all-out")) { all_out = v; i++; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--top")) { if (!ks_cli_int("logits", a, v, 1, 1000, &top)) return 2; i++; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!ks_cli_int("logits", a, v, 0, 1024, &threads)) return 2; i++; }
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) { if (!ks_cli_int("logits", a, v, 1, 1 << 16, &batch)) return 2; i++; }
        else if (!strcmp(a, "--kv-type")) {
            if (!v || (kv_type = ks_cli_kv_type(v)) < 0) { fprintf(stderr, "kvserve logits: --kv-type is f32, f16 or q8_0\n"); return 2; }
            i++;
        } else { fprintf(stderr, "kvserve logits: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!model_path || (!tokens_arg && !tokens_file)) {
        usage(stderr);
        return 2;
    }
    char *text = tokens_file ? ks_cli_read_text(tokens_file) : NULL;
    if (tokens_file && !text) {
        fprintf(stderr, "kvserve logits: cannot read %s\n", tokens_file);
        return 1;
    }
    int32_t *tokens = NULL;
    int n = ks_cli_parse_tokens(text ? text : tokens_arg, &tokens);
    free(text);
    if (n < 0)
        return 1;
    if (n == 0) {
        fprintf(stderr, "kvserve logits: empty token list\n");
        free(tokens);
        return 1;
    }

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_model *m = NULL;
    ks_runner *r = NULL;
    float *logits = NULL;
    idx_logit *best = NULL;
    if (ks_model_load(&m, model_path, &err))
        goto fail;
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_threads = (int)threads;
    p.n_batch = (int)batch;
    p.kv.kv_type = (uint32_t)kv_type;
    p.n_ctx = KS_MAX(n, 1);
    if (ks_runner_create(&r, m, &p, &err))
        goto fail;
    int V = m->hp.n_vocab;
    logits = malloc((size_t)n * V * sizeof(float));
    best = malloc((size_t)top * sizeof *best);
    if (!logits || !best) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory for %d x %d logits", n, V);
        goto fail;
    }
    if (ks_runner_eval(r, tokens, n, true, logits, &err))
        goto fail;
    if (json)
        printf("{\"model\":\"%s\",\"n_vocab\":%d,\"n_tokens\":%d,\"top\":[", model_path, V, n);
    for (int t = 0; t < n; t++) {
        int k = top_k(logits + (size_t)t * V, V, (int)top, best);
        if (json) {
            printf("%s[", t ? "," : "");
            for (int j = 0; j < k; j++)
                printf("%s[%d,%.9g]", j ? "," : "", best[j].id, (double)best[j].logit);
            printf("]");
        } else {
            printf("pos %d token %d:", t, tokens[t]);
            for (int j = 0; j < k; j++)
                printf(" %d:%.4f", best[j].id, (double)best[j].logit);
            printf("\n");
        }
    }
    if (json)
        printf("]}\n");
    if (all_out) {
        FILE *f = fopen(all_out, "wb");
        if (!f || fwrite(logits + (size_t)(n - 1) * V, sizeof(float), (size_t)V, f) != (size_t)V) {
            KS_ERRF(&err, KS_ERR_IO, "%s: cannot write logits", all_out);
            if (f)
                fclose(f);
            goto fail;
        }
        fclose(f);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kvserve: %s\n", err.msg);
    free(best);
    free(logits);
    free(tokens);
    ks_runner_destroy(r);
    ks_model_close(m);
    return rc;
}
