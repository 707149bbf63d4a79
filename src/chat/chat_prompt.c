/* chat_prompt.c — render, tokenize with the client's text masked, place breakpoints
 * (see chat_prompt.h). */
#include "chat/chat_prompt.h"

#include <stdlib.h>
#include <string.h>

/* Index of the first token starting at or after byte offset at (n if none does). */
static size_t first_token_at(const size_t *starts, size_t n, size_t at) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (starts[mid] < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Byte offsets -> token positions, ascending, distinct, in (0, n_tokens]. */
static ks_status place_breakpoints(ks_chat_prompt *p, const ks_chat_spans *spans, const size_t *starts) {
    if (!spans->n_breakpoints)
        return KS_OK;
    p->breakpoints = malloc(spans->n_breakpoints * sizeof *p->breakpoints);
    if (!p->breakpoints)
        return KS_ERR_NOMEM;
    for (size_t i = 0; i < spans->n_breakpoints; i++) {
        size_t pos = first_token_at(starts, p->n_tokens, spans->breakpoints[i]);
        bool after_last = p->n_breakpoints == 0 || (size_t)p->breakpoints[p->n_breakpoints - 1] < pos;
        if (pos > 0 && pos <= INT32_MAX && after_last) /* marks inside one token: one position */
            p->breakpoints[p->n_breakpoints++] = (int32_t)pos;
    }
    return KS_OK;
}

ks_status ks_chat_prompt_build(ks_chat_prompt *out, ks_chat_format f, const ks_chat_request *req,
                               const ks_chat_render_opts *opts, const ks_tokenizer *t, ks_err *err) {
    ks_chat_prompt p = {0};
    ks_chat_spans spans = {0};
    size_t *starts = NULL;
    ks_status st = ks_chat_render_spans(f, req, opts, &p.text, &p.len, &spans, err);
    if (st)
        return st;
    if (t) {
        st = ks_tokenize_masked(t, p.text, p.len, KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL, spans.client,
                                spans.n_client, &p.tokens, &starts, &p.n_tokens);
        if (st) {
            KS_ERRF(err, st, "cannot tokenize the prompt: %s", ks_status_str(st));
            goto fail;
        }
        if ((st = place_breakpoints(&p, &spans, starts))) {
            KS_ERRF(err, st, "out of memory placing the cache breakpoints");
            goto fail;
        }
    }
    free(starts);
    ks_chat_spans_deinit(&spans);
    *out = p;
    return KS_OK;
fail:
    free(starts);
    ks_chat_spans_deinit(&spans);
    ks_chat_prompt_deinit(&p);
    return st;
}

void ks_chat_prompt_deinit(ks_chat_prompt *p) {
    if (!p)
        return;
    free(p->text);
    free(p->tokens);
    free(p->breakpoints);
    memset(p, 0, sizeof *p);
}
