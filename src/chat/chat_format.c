/* chat_format.c — format names, template recognition and ks_chat_render (the checks and
 * preparation shared by every family before its renderer runs).
 *
 * Recognition looks for what makes each family's template that family, so that a
 * re-indented or slightly edited copy (GGUF converters and fine-tunes do both) is still
 * recognised, and a template that merely resembles one is not taken for it:
 *
 *   qwen3-coder  ChatML frame + "<function=" + "<parameter=" (its XML tool calls)
 *   qwen3        ChatML frame + "<tool_call>" + "reasoning_content" + "<think>"
 *   chatml       ChatML frame and no mention of tools at all
 *
 * Anything else (Qwen2.5's Hermes template without <think>, Llama, Mistral, ...) is
 * refused with the list of supported names: rendering it in a look-alike format would
 * silently cost the cache and the model's accuracy. */
#include "chat/chat_format.h"

#include "chat/render.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct format_entry {
    ks_chat_format id;
    const char *name;
    ks_toolcall_syntax syntax;
} format_entry;

static const format_entry formats[] = {
    {KS_CHAT_FORMAT_QWEN3, "qwen3", KS_TOOLCALL_SYNTAX_HERMES_JSON},
    {KS_CHAT_FORMAT_QWEN3_CODER, "qwen3-coder", KS_TOOLCALL_SYNTAX_QWEN3_XML},
    {KS_CHAT_FORMAT_CHATML, "chatml", KS_TOOLCALL_SYNTAX_NONE},
};

const char *ks_chat_format_name(ks_chat_format f) {
    for (size_t i = 0; i < KS_ARRAY_LEN(formats); i++)
        if (formats[i].id == f)
            return formats[i].name;
    return "none";
}

const char *ks_chat_format_names(void) {
    return "qwen3, qwen3-coder, chatml";
}

ks_toolcall_syntax ks_chat_format_toolcall_syntax(ks_chat_format f) {
    for (size_t i = 0; i < KS_ARRAY_LEN(formats); i++)
        if (formats[i].id == f)
            return formats[i].syntax;
    return KS_TOOLCALL_SYNTAX_NONE;
}

ks_status ks_chat_format_by_name(const char *name, ks_chat_format *out, ks_err *err) {
    if (name) {
        for (size_t i = 0; i < KS_ARRAY_LEN(formats); i++)
            if (!strcasecmp(name, formats[i].name)) {
                *out = formats[i].id;
                return KS_OK;
            }
        if (!strcasecmp(name, "qwen3_coder") || !strcasecmp(name, "qwen3coder")) {
            *out = KS_CHAT_FORMAT_QWEN3_CODER;
            return KS_OK;
        }
    }
    return KS_ERRF(err, KS_ERR_INVALID, "unknown chat template '%s' (supported: %s)",
                   name ? name : "", ks_chat_format_names());
}

static bool has(const char *tmpl, size_t len, const char *marker) {
    return ks_chat_find(tmpl, len, marker) >= 0;
}

ks_status ks_chat_format_detect(const char *tmpl, size_t len, ks_chat_format *out, ks_err *err) {
    if (!tmpl || !len)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED,
                       "the model has no chat template; choose one with --chat-template "
                       "NAME (supported: %s)", ks_chat_format_names());
    bool chatml = has(tmpl, len, KS_CHATML_START) && has(tmpl, len, KS_CHATML_END);
    ks_chat_format f = KS_CHAT_FORMAT_NONE;
    if (chatml && has(tmpl, len, "<function=") && has(tmpl, len, "<parameter="))
        f = KS_CHAT_FORMAT_QWEN3_CODER;
    else if (chatml && has(tmpl, len, "<tool_call>") && has(tmpl, len, "reasoning_content") &&
             has(tmpl, len, "<think>"))
        f = KS_CHAT_FORMAT_QWEN3;
    else if (chatml && !has(tmpl, len, "tool"))
        f = KS_CHAT_FORMAT_CHATML;
    if (f == KS_CHAT_FORMAT_NONE)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED,
                       "unrecognised chat template (supported: %s); if the model speaks one "
                       "of them, choose it with --chat-template NAME", ks_chat_format_names());
    *out = f;
    return KS_OK;
}

/* ---- shared pieces of the renderers ---------------------------------------------------- */

bool ks_chat_render_recalled_call(const ks_chat_render_in *in, const ks_chat_tool_call *call,
                                  ks_chat_buf *out) {
    if (!in->opts->toolcall_text || !call->id || !call->id[0])
        return false;
    size_t len = 0;
    const char *text = in->opts->toolcall_text(in->opts->toolcall_ctx, call->id, &len);
    if (!text)
        return false;
    ks_chat_buf_client(out, text, len);
    return true;
}

void ks_chat_render_content(const ks_chat_render_in *in, size_t i, ks_chat_str piece, ks_chat_buf *out) {
    const ks_chat_message *m = &in->req->messages[i];
    size_t at = out->len;
    ks_chat_buf_client(out, piece.s, piece.len);
    /* piece is [a, b) of the joined content; block k ends at the sum of the lengths of
     * blocks 0..k and the separators between them */
    size_t a = (size_t)(piece.s - in->content[i].s), b = a + piece.len, end = 0;
    for (size_t k = 0; k < m->n_parts; k++) {
        end += m->parts[k].len;
        if (m->parts[k].cache_breakpoint && end > a && end <= b)
            ks_chat_buf_mark_break(out, at + (end - a));
        end += strlen(KS_CHAT_PART_SEP);
    }
}

void ks_chat_render_message_end(const ks_chat_render_in *in, size_t i, size_t since, ks_chat_buf *out) {
    const ks_chat_message *m = &in->req->messages[i];
    size_t marked = 0;
    for (size_t k = 0; k < m->n_parts; k++)
        marked += m->parts[k].cache_breakpoint;
    if ((m->cache_breakpoint || marked) && out->n_breaks - since < KS_MAX(marked, (size_t)1))
        ks_chat_buf_mark_break(out, out->len);
}

void ks_chat_render_turn(const ks_chat_render_in *in, size_t i, ks_chat_buf *out) {
    size_t since = out->n_breaks;
    ks_chat_buf_puts(out, KS_CHATML_START);
    ks_chat_buf_puts(out, ks_chat_role_name(in->req->messages[i].role));
    ks_chat_buf_append(out, "\n", 1);
    ks_chat_render_content(in, i, in->content[i], out);
    ks_chat_buf_puts(out, KS_CHATML_END "\n");
    ks_chat_render_message_end(in, i, since, out);
}

void ks_chat_render_tool_end(const ks_chat_tool *t, ks_chat_buf *out) {
    if (t->cache_breakpoint)
        ks_chat_buf_mark_break(out, out->len);
}

/* ---- ks_chat_render -------------------------------------------------------------------- */

static ks_status check_request(const ks_chat_request *req, ks_err *err) {
    if (req->n_messages == 0)
        return KS_ERRF(err, KS_ERR_INVALID, "messages: at least one message is required");
    for (size_t i = 0; i < req->n_messages; i++) {
        const ks_chat_message *m = &req->messages[i];
        if (m->n_tool_calls && m->role != KS_CHAT_ASSISTANT)
            return KS_ERRF(err, KS_ERR_INVALID, "messages[%zu]: only assistant messages carry "
                           "tool calls", i);
        for (size_t j = 0; j < m->n_tool_calls; j++)
            if (!json_is_object(m->tool_calls[j].arguments))
                return KS_ERRF(err, KS_ERR_INVALID, "messages[%zu].tool_calls[%zu]: arguments "
                               "must be a JSON object", i, j);
    }
    if (req->continue_final && req->messages[req->n_messages - 1].role != KS_CHAT_ASSISTANT)
        return KS_ERRF(err, KS_ERR_INVALID, "messages: continuing a reply needs a final "
                       "assistant message");
    return KS_OK;
}

void ks_chat_spans_deinit(ks_chat_spans *s) {
    if (!s)
        return;
    free(s->client);
    free(s->breakpoints);
    memset(s, 0, sizeof *s);
}

/* Marks past the end of a prompt that was cut (continue_final) are cut with it. */
static void clip_marks(ks_chat_buf *b) {
    while (b->n_client && b->client[b->n_client - 1].start >= b->len)
        b->n_client--;
    if (b->n_client && b->client[b->n_client - 1].end > b->len)
        b->client[b->n_client - 1].end = b->len;
    size_t kept = 0;
    for (size_t i = 0; i < b->n_breaks; i++) {
        size_t at = KS_MIN(b->breaks[i], b->len);
        if (at > 0 && (kept == 0 || b->breaks[kept - 1] < at))
            b->breaks[kept++] = at;
    }
    b->n_breaks = kept;
}

ks_status ks_chat_render(ks_chat_format f, const ks_chat_request *req,
                         const ks_chat_render_opts *opts, char **out, size_t *len, ks_err *err) {
    return ks_chat_render_spans(f, req, opts, out, len, NULL, err);
}

ks_status ks_chat_render_spans(ks_chat_format f, const ks_chat_request *req, const ks_chat_render_opts *opts,
                               char **out, size_t *len, ks_chat_spans *spans, ks_err *err) {
    static const ks_chat_render_opts no_opts;
    ks_status st = check_request(req, err);
    if (st)
        return st;

    char **joined = calloc(req->n_messages, sizeof *joined);
    ks_chat_str *content = calloc(req->n_messages, sizeof *content);
    ks_chat_buf buf;
    ks_chat_buf_init(&buf);
    st = KS_ERR_NOMEM;
    if (!joined || !content)
        goto fail;
    for (size_t i = 0; i < req->n_messages; i++) {
        const ks_chat_message *m = &req->messages[i];
        if (m->n_parts == 1) { /* the common case needs no copy */
            content[i] = (ks_chat_str){m->parts[0].text, m->parts[0].len};
            continue;
        }
        if (!(joined[i] = ks_chat_message_text(m, &content[i].len)))
            goto fail;
        content[i].s = joined[i];
    }

    ks_chat_render_in in = {
        .req = req,
        .content = content,
        .opts = opts ? opts : &no_opts,
        .add_generation_prompt = req->add_generation_prompt && !req->continue_final,
    };
    switch (f) {
    case KS_CHAT_FORMAT_QWEN3: st = ks_chat_render_qwen3(&in, &buf, err); break;
    case KS_CHAT_FORMAT_QWEN3_CODER: st = ks_chat_render_qwen3_coder(&in, &buf, err); break;
    case KS_CHAT_FORMAT_CHATML: st = ks_chat_render_chatml(&in, &buf, err); break;
    default:
        st = KS_ERRF(err, KS_ERR_INVALID, "no chat format chosen (supported: %s)",
                     ks_chat_format_names());
    }
    if (st)
        goto fail;

    /* Prefill: the final assistant turn stays open, as Hugging Face's
     * continue_final_message leaves it: everything after its text is cut. */
    if (req->continue_final) {
        static const char end[] = KS_CHATML_END "\n";
        size_t n = sizeof end - 1;
        if (buf.len >= n && !memcmp(buf.data + buf.len - n, end, n))
            buf.len -= n;
        if (buf.data)
            buf.data[buf.len] = '\0';
    }
    clip_marks(&buf);
    ks_chat_spans marks = {0};
    if (spans && !buf.failed)
        ks_chat_buf_take_marks(&buf, &marks.client, &marks.n_client, &marks.breakpoints, &marks.n_breakpoints);
    st = ks_chat_buf_take(&buf, out, len);
    if (spans && !st)
        *spans = marks;
    else
        ks_chat_spans_deinit(&marks);

fail:
    if (st == KS_ERR_NOMEM)
        KS_ERRF(err, st, "out of memory rendering the prompt");
    ks_chat_buf_deinit(&buf);
    if (joined)
        for (size_t i = 0; i < req->n_messages; i++)
            free(joined[i]);
    free(joined);
    free(content);
    return st;
}
