/* cmd_render.c — `kvserve render [-m MODEL] [--chat-template NAME] [--api anthropic|openai]
 * [--tokens] [FILE]`: reads an Anthropic Messages or OpenAI Chat Completions request body
 * (stdin, or FILE) and prints the prompt the server would give the model, byte for byte,
 * with no newline added. The format comes from the model's tokenizer.chat_template, or
 * from --chat-template. --tokens follows the prompt with a line "\n# N tokens" and the
 * ids on one line, exactly as the server tokenizes the prompt (chat_prompt.h: chat markup
 * as control tokens, client text never); when the request marks cache breakpoints
 * (cache_control), a line "\n# cache breakpoints at tokens P..." comes first. The
 * request's API is told from its shape unless --api says. */
#include "commands.h"

#include "chat/chat_prompt.h"
#include "cli_common.h"
#include "gguf/gguf.h"
#include "server/request_anthropic.h"
#include "server/request_common.h"
#include "server/request_openai.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve render [-m MODEL] [options] [FILE] < request.json\n"
            "  -m, --model FILE        GGUF model: its chat template picks the format\n"
            "  --chat-template NAME    format override: %s\n"
            "  --api anthropic|openai  request shape (default: told from the body)\n"
            "  --tokens                after the prompt, a line \"# N tokens\" and the ids on\n"
            "                          one line, as the server tokenizes the prompt (needs\n"
            "                          -m); before them the cache breakpoints, if any\n"
            "Prints the prompt text exactly, without a trailing newline.\n",
            ks_chat_format_names());
}

/* The format from the model's template (or the override) into *fmt. */
static ks_status pick_format(const ks_gguf *g, const char *name, ks_chat_format *fmt, ks_err *err) {
    if (name)
        return ks_chat_format_by_name(name, fmt, err);
    ks_gguf_str tmpl = {NULL, 0};
    const ks_gguf_kv *kv = ks_gguf_find(g, "tokenizer.chat_template");
    if (kv && kv->value.type == KS_GGUF_STRING)
        tmpl = kv->value.v.str;
    return ks_chat_format_detect(tmpl.ptr, (size_t)tmpl.len, fmt, err);
}

/* The cache breakpoints (if any), "\n# N tokens\n" and the ids, space-separated, on one
 * line. */
static void print_tokens(const ks_chat_prompt *p) {
    if (p->n_breakpoints) {
        printf("\n# cache breakpoints at tokens");
        for (size_t i = 0; i < p->n_breakpoints; i++)
            printf(" %d", (int)p->breakpoints[i]);
    }
    printf("\n# %zu tokens\n", p->n_tokens);
    for (size_t i = 0; i < p->n_tokens; i++)
        printf(i ? " %d" : "%d", (int)p->tokens[i]);
    printf("\n");
}

int ks_cmd_render(int argc, char **argv) {
    const char *model_path = NULL, *tmpl_name = NULL, *api_name = NULL, *in_path = "-";
    int tokens = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) { model_path = v; i++; }
        else if (!strcmp(a, "--chat-template") && v) { tmpl_name = v; i++; }
        else if (!strcmp(a, "--api") && v) { api_name = v; i++; }
        else if (!strcmp(a, "--tokens")) tokens = 1;
        else if (a[0] != '-' || !strcmp(a, "-")) in_path = a;
        else { fprintf(stderr, "kvserve render: unknown or incomplete option '%s'\n", a); usage(stderr); return 2; }
    }
    if (!model_path && !tmpl_name) {
        fprintf(stderr, "kvserve render: give a model (-m) or a format (--chat-template)\n");
        usage(stderr);
        return 2;
    }
    if (tokens && !model_path) {
        fprintf(stderr, "kvserve render: --tokens needs the model's tokenizer (-m MODEL)\n");
        return 2;
    }
    if (api_name && strcmp(api_name, "anthropic") && strcmp(api_name, "openai")) {
        fprintf(stderr, "kvserve render: --api is anthropic or openai\n");
        return 2;
    }

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    ks_chat_request *req = NULL;
    ks_tokenizer *tok = NULL;
    json_t *body = NULL;
    ks_chat_prompt prompt = {0};
    ks_chat_format fmt = KS_CHAT_FORMAT_NONE;
    char *text = ks_cli_read_text(in_path);
    if (!text) {
        fprintf(stderr, "kvserve render: cannot read %s\n", strcmp(in_path, "-") ? in_path : "stdin");
        return 1;
    }
    json_error_t jerr;
    body = json_loads(text, 0, &jerr);
    if (!body) {
        KS_ERRF(&err, KS_ERR_INVALID, "request body: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto fail;
    }
    if (model_path && ks_gguf_open(&g, model_path, &err))
        goto fail;
    if (pick_format(g, tmpl_name, &fmt, &err))
        goto fail;
    ks_api api = api_name ? (!strcmp(api_name, "openai") ? KS_API_OPENAI : KS_API_ANTHROPIC)
                          : ks_request_detect_api(body);
    if ((api == KS_API_OPENAI ? ks_request_openai_parse(body, &req, &err)
                              : ks_request_anthropic_parse(body, &req, &err)))
        goto fail;
    if (tokens && ks_tokenizer_create(&tok, g, &err))
        goto fail;
    if (ks_chat_prompt_build(&prompt, fmt, req, NULL, tok, &err))
        goto fail;
    fwrite(prompt.text, 1, prompt.len, stdout);
    if (tokens)
        print_tokens(&prompt);
    rc = fflush(stdout) ? 1 : 0;

fail:
    if (rc && err.code)
        fprintf(stderr, "kvserve render: %s\n", err.msg);
    ks_chat_prompt_deinit(&prompt);
    ks_tokenizer_destroy(tok);
    ks_chat_request_destroy(req);
    json_decref(body);
    ks_gguf_close(g);
    free(text);
    return rc;
}
