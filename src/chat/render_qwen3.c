/* render_qwen3.c — prompts in the Qwen3 chat format (Qwen3 dense and MoE models: the
 * template of Qwen/Qwen3-0.6B and its siblings), byte-identical to that Jinja template.
 *
 * The template, step by step (each step below is a block of ks_chat_render_qwen3):
 *
 *   1. header   with tools: one system turn holding messages[0]'s text when it is a
 *               system message, "\n\n", the "# Tools" preamble and one tojson line per
 *               tool ({"type": "function", "function": {name, description, parameters}});
 *               without tools: messages[0] as a system turn when it is one
 *   2. last query: the index of the last user message that is not itself a wrapped
 *               <tool_response> (assistant turns after it are the current agent loop)
 *   3. turns    user and later system messages: plain turns;
 *               assistant: reasoning comes from `thinking`, or else is split out of a
 *               "<think>...</think>" in the content; it is re-rendered as a <think> block
 *               only after the last query (for the final message even when empty);
 *               tool calls follow as Hermes JSON, separated by "\n";
 *               tool results: consecutive ones share one user turn, each wrapped in
 *               "\n<tool_response>\n...\n</tool_response>"
 *   4. generation prompt "<|im_start|>assistant\n", plus an empty think block when
 *               thinking is off
 *
 * Python semantics kept: str.strip('\n') family for the reasoning, `in`/split for
 * "</think>", truthiness of strings. */
#include "chat/render.h"

#include <string.h>

static const char tools_head[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char tools_tail[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>" KS_CHATML_END "\n";

/* A tool as the templates receive it (OpenAI's shape), through tojson. */
static void tool_json(ks_chat_buf *out, const ks_chat_tool *t) {
    ks_chat_buf_puts(out, "{\"type\": \"function\", \"function\": {\"name\": ");
    size_t at = out->len;
    ks_chat_json_string(out, t->name, strlen(t->name));
    ks_chat_buf_mark_client(out, at);
    if (t->description) {
        ks_chat_buf_puts(out, ", \"description\": ");
        at = out->len;
        ks_chat_json_string(out, t->description, strlen(t->description));
        ks_chat_buf_mark_client(out, at);
    }
    if (t->parameters) {
        ks_chat_buf_puts(out, ", \"parameters\": ");
        at = out->len;
        ks_chat_tojson(out, t->parameters);
        ks_chat_buf_mark_client(out, at);
    }
    ks_chat_buf_puts(out, "}}");
}

static ks_chat_str sub(ks_chat_str s, size_t start, size_t len) {
    return (ks_chat_str){s.s + start, len};
}

/* Python s.strip(chars) / lstrip / rstrip with chars = "\n". */
static ks_chat_str strip_nl(ks_chat_str s, bool left, bool right) {
    size_t a, n;
    ks_chat_strip(s.s, s.len, "\n", left, right, &a, &n);
    return sub(s, a, n);
}

static bool starts_with(ks_chat_str s, const char *p) {
    size_t n = strlen(p);
    return s.len >= n && !memcmp(s.s, p, n);
}

static bool ends_with(ks_chat_str s, const char *p) {
    size_t n = strlen(p);
    return s.len >= n && !memcmp(s.s + s.len - n, p, n);
}

/* One assistant tool call in Hermes JSON form (or as the model sampled it). */
static void tool_call(const ks_chat_render_in *in, const ks_chat_tool_call *c, ks_chat_buf *out) {
    if (ks_chat_render_recalled_call(in, c, out))
        return;
    ks_chat_buf_puts(out, "<tool_call>\n{\"name\": \"");
    ks_chat_buf_client(out, c->name, strlen(c->name)); /* the template inserts the name without escaping */
    ks_chat_buf_puts(out, "\", \"arguments\": ");
    size_t at = out->len;
    ks_chat_tojson(out, c->arguments);
    ks_chat_buf_mark_client(out, at);
    ks_chat_buf_puts(out, "}\n</tool_call>");
}

static void assistant(const ks_chat_render_in *in, size_t i, size_t last_query,
                      ks_chat_buf *out) {
    const ks_chat_message *m = &in->req->messages[i];
    ks_chat_str content = in->content[i], reasoning = {"", 0};
    if (m->thinking) {
        reasoning = (ks_chat_str){m->thinking, m->thinking_len};
    } else {
        long close = ks_chat_find(content.s, content.len, "</think>");
        if (close >= 0) {
            /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
            ks_chat_str before = strip_nl(sub(content, 0, (size_t)close), false, true);
            long open = ks_chat_rfind(before.s, before.len, "<think>");
            if (open >= 0)
                before = sub(before, (size_t)open + 7, before.len - (size_t)open - 7);
            reasoning = strip_nl(before, true, false);
            /* content.split('</think>')[-1].lstrip('\n') */
            size_t after = (size_t)ks_chat_rfind(content.s, content.len, "</think>") + 8;
            content = strip_nl(sub(content, after, content.len - after), true, false);
        }
    }
    bool last = i + 1 == in->req->n_messages;
    ks_chat_buf_puts(out, KS_CHATML_START "assistant\n");
    if (i > last_query && (last || reasoning.len)) {
        ks_chat_str r = strip_nl(reasoning, true, true), c = strip_nl(content, true, false);
        ks_chat_buf_puts(out, "<think>\n");
        if (m->thinking) /* not part of the content: no text block ends inside it */
            ks_chat_buf_client(out, r.s, r.len);
        else
            ks_chat_render_content(in, i, r, out);
        ks_chat_buf_puts(out, "\n</think>\n\n");
        ks_chat_render_content(in, i, c, out);
    } else {
        ks_chat_render_content(in, i, content, out);
    }
    for (size_t j = 0; j < m->n_tool_calls; j++) {
        if (j > 0 || content.len)
            ks_chat_buf_append(out, "\n", 1);
        tool_call(in, &m->tool_calls[j], out);
    }
    ks_chat_buf_puts(out, KS_CHATML_END "\n");
}

ks_status ks_chat_render_qwen3(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err) {
    (void)err;
    const ks_chat_request *req = in->req;
    const ks_chat_message *msgs = req->messages;
    size_t n = req->n_messages;
    bool first_system = msgs[0].role == KS_CHAT_SYSTEM;

    /* 1. header (with tools, the system message ends with its text: the tools follow) */
    if (req->n_tools) {
        ks_chat_buf_puts(out, KS_CHATML_START "system\n");
        if (first_system) {
            size_t since = out->n_breaks;
            ks_chat_render_content(in, 0, in->content[0], out);
            ks_chat_render_message_end(in, 0, since, out);
            ks_chat_buf_puts(out, "\n\n");
        }
        ks_chat_buf_puts(out, tools_head);
        for (size_t t = 0; t < req->n_tools; t++) {
            ks_chat_buf_append(out, "\n", 1);
            tool_json(out, &req->tools[t]);
            ks_chat_render_tool_end(&req->tools[t], out);
        }
        ks_chat_buf_puts(out, tools_tail);
    } else if (first_system) {
        ks_chat_render_turn(in, 0, out);
    }

    /* 2. last query */
    size_t last_query = n - 1;
    for (size_t k = n; k-- > 0;)
        if (msgs[k].role == KS_CHAT_USER && !(starts_with(in->content[k], "<tool_response>") &&
                                              ends_with(in->content[k], "</tool_response>"))) {
            last_query = k;
            break;
        }

    /* 3. turns */
    for (size_t i = 0; i < n; i++) {
        size_t since = out->n_breaks;
        switch (msgs[i].role) {
        case KS_CHAT_SYSTEM:
            if (i == 0)
                break; /* already in the header */
            /* fall through */
        case KS_CHAT_USER: ks_chat_render_turn(in, i, out); break;
        case KS_CHAT_ASSISTANT:
            assistant(in, i, last_query, out);
            ks_chat_render_message_end(in, i, since, out);
            break;
        case KS_CHAT_TOOL:
            if (i == 0 || msgs[i - 1].role != KS_CHAT_TOOL)
                ks_chat_buf_puts(out, KS_CHATML_START "user");
            ks_chat_buf_puts(out, "\n<tool_response>\n");
            ks_chat_render_content(in, i, in->content[i], out);
            ks_chat_buf_puts(out, "\n</tool_response>");
            if (i + 1 == n || msgs[i + 1].role != KS_CHAT_TOOL)
                ks_chat_buf_puts(out, KS_CHATML_END "\n");
            ks_chat_render_message_end(in, i, since, out);
            break;
        }
    }

    /* 4. generation prompt */
    if (in->add_generation_prompt) {
        ks_chat_buf_puts(out, KS_CHATML_START "assistant\n");
        if (req->thinking == KS_THINKING_OFF)
            ks_chat_buf_puts(out, "<think>\n\n</think>\n\n");
    }
    return KS_OK;
}
