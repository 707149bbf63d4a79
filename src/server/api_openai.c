/* api_openai.c — the OpenAI Chat Completions API: POST /v1/chat/completions, streamed
 * (chat.completion.chunk events, then "data: [DONE]") and not.
 *
 * Reasoning (Qwen3 <think>) goes out as `reasoning_content`, as vLLM and llama.cpp's
 * server do. Tool calls are whole: a chunk with the call's id, name and arguments.
 * usage.prompt_tokens_details.cached_tokens counts prompt tokens served from the KV cache;
 * with stream_options.include_usage a last chunk carries the usage. Keep-alives while
 * nothing is sent are SSE comments (": ping"), which clients ignore. A request that runs
 * past --request-timeout ends with error type "timeout_error" (HTTP 504 when not
 * streamed). */
#include "server/server.h"

#include "server/request_openai.h"

#include "server/json_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct oai {
    ks_server *srv;
    ks_gen_session *g;
    char id[64];
    char *model;
    long created;
    bool include_usage;
    bool started, finished;
    double last_write_ms;   /* for keep-alive pings */
    int n_calls;
    ks_strbuf *out;
    /* collected */
    ks_strbuf text, reasoning;
    json_t *calls;
} oai;

static const char *finish_reason(ks_finish_reason f) {
    switch (f) {
    case KS_FINISH_MAX_TOKENS: return "length";
    case KS_FINISH_TOOL_USE: return "tool_calls";
    default: return "stop";
    }
}

static json_t *usage_json(const ks_gen_session *g) {
    const ks_kv_usage *u = ks_gen_session_usage(g);
    int prompt = ks_gen_session_prompt_tokens(g), out = ks_gen_session_output_tokens(g);
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", prompt, "completion_tokens", out, "total_tokens",
                     prompt + out, "prompt_tokens_details", "cached_tokens",
                     u->cached_ram_tokens + u->cached_disk_tokens);
}

/* The call's id goes out as the parser made it: it is the key under which the tool-call
 * memory keeps the sampled text, so the follow-up that sends the call back renders those
 * exact bytes. Clients treat ids as opaque strings. */
static json_t *tool_call_json(const ks_toolcall *c, int index, bool with_index) {
    json_t *tc = json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", c->id, "type", "function", "function", "name", c->name,
                           "arguments", c->args, c->args_len);
    if (with_index)
        json_object_set_new(tc, "index", json_integer(index));
    return tc;
}

/* ---- streaming ---------------------------------------------------------------------------------- */

static void chunk(oai *o, json_t *delta, const char *finish) {
    json_t *choice = json_pack("{s:i, s:o, s:s?}", "index", 0, "delta", delta, "finish_reason", finish);
    if (!finish)
        json_object_set_new(choice, "finish_reason", json_null());
    json_t *c = json_pack("{s:s, s:s, s:i, s:s, s:[o]}", "id", o->id, "object", "chat.completion.chunk", "created",
                          (int)o->created, "model", o->model, "choices", choice);
    char *text = json_dumps(c, JSON_COMPACT);
    ks_strbuf_printf(o->out, "data: %s\n\n", text ? text : "{}");
    free(text);
    json_decref(c);
}

static void stream_event(void *user, const ks_out_event *ev) {
    oai *o = user;
    switch (ev->type) {
    case KS_OUT_TEXT:
        chunk(o, json_pack("{s:o}", "content", ks_json_text(ev->data, ev->len)), NULL);
        break;
    case KS_OUT_THINKING:
        chunk(o, json_pack("{s:o}", "reasoning_content", ks_json_text(ev->data, ev->len)), NULL);
        break;
    case KS_OUT_TOOL_CALL:
        chunk(o, json_pack("{s:[o]}", "tool_calls", tool_call_json(ev->call, o->n_calls, true)), NULL);
        o->n_calls++;
        break;
    }
}

static void stream_fn(void *ctx, ks_strbuf *out, bool *done) {
    oai *o = ctx;
    o->out = out;
    if (!o->started) {
        o->started = true;
        chunk(o, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
        return;
    }
    if (o->finished) {
        *done = true;
        return;
    }
    if (!ks_gen_session_pump(o->g, KS_SERVER_WAIT_SLICE_MS, stream_event, o)) {
        if (ks_server_ping_due(o->srv, &o->last_write_ms, out->len > 0))
            ks_strbuf_puts(out, ": ping\n\n");
        return;
    }
    ks_finish_reason f = ks_gen_session_finish_reason(o->g);
    if (f == KS_FINISH_ERROR || f == KS_FINISH_TIMEOUT) {
        json_t *e = json_pack("{s:{s:s, s:s}}", "error", "message", ks_gen_session_error(o->g), "type",
                              f == KS_FINISH_TIMEOUT ? "timeout_error" : "server_error");
        char *text = json_dumps(e, JSON_COMPACT);
        ks_strbuf_printf(out, "data: %s\n\n", text);
        free(text);
        json_decref(e);
    } else {
        chunk(o, json_object(), finish_reason(f));
        if (o->include_usage) {
            json_t *c = json_pack("{s:s, s:s, s:i, s:s, s:[], s:o}", "id", o->id, "object", "chat.completion.chunk",
                                  "created", (int)o->created, "model", o->model, "choices", "usage", usage_json(o->g));
            char *text = json_dumps(c, JSON_COMPACT);
            ks_strbuf_printf(out, "data: %s\n\n", text);
            free(text);
            json_decref(c);
        }
    }
    ks_strbuf_puts(out, "data: [DONE]\n\n");
    o->finished = true;
}

static void oai_free(oai *o) {
    ks_gen_session_destroy(o->g);
    free(o->model);
    ks_strbuf_free(&o->text);
    ks_strbuf_free(&o->reasoning);
    json_decref(o->calls);
    free(o);
}

static void stream_free(void *ctx, bool client_gone) {
    (void)client_gone;
    oai_free(ctx);
}

static void log_extra(void *ctx, ks_strbuf *line) { ks_server_log_usage(line, ((oai *)ctx)->g); }

/* ---- collected ------------------------------------------------------------------------------------ */

static void collect_event(void *user, const ks_out_event *ev) {
    oai *o = user;
    switch (ev->type) {
    case KS_OUT_TEXT: ks_strbuf_append(&o->text, ev->data, ev->len); break;
    case KS_OUT_THINKING: ks_strbuf_append(&o->reasoning, ev->data, ev->len); break;
    case KS_OUT_TOOL_CALL: json_array_append_new(o->calls, tool_call_json(ev->call, 0, false)); break;
    }
}

static void start_error(ks_server *s, ks_http_reply *r, ks_status st, const ks_err *err) {
    if (st == KS_ERR_FULL) {
        atomic_fetch_add(&s->overloaded, 1);
        ks_http_reply_header(r, "retry-after", "2");
        ks_server_openai_error(s, r, 503, "server_error", err->msg);
    } else if (st == KS_ERR_INVALID || st == KS_ERR_UNSUPPORTED) {
        ks_server_openai_error(s, r, 400, "invalid_request_error", err->msg);
    } else {
        ks_server_openai_error(s, r, 500, "server_error", err->msg[0] ? err->msg : "internal error");
    }
}

void ks_api_openai_chat(ks_server *s, const ks_http_request *req, ks_http_reply *r) {
    json_t *body = ks_server_parse_body(s, req, r, ks_server_openai_error);
    if (!body)
        return;
    ks_err err;
    ks_err_clear(&err);
    ks_chat_request *creq = NULL;
    ks_status st = ks_request_openai_parse(body, &creq, &err);
    json_decref(body);
    if (st) {
        start_error(s, r, st == KS_ERR_NOMEM ? st : KS_ERR_INVALID, &err);
        return;
    }
    oai *o = ks_xcalloc(1, sizeof *o);
    o->srv = s;
    o->model = ks_xstrdup(creq->model ? creq->model : s->p.model_name);
    o->created = (long)time(NULL);
    o->include_usage = creq->stream_usage;
    ks_server_new_id(s, "chatcmpl-", o->id, sizeof o->id);
    bool stream = creq->stream;
    st = ks_gen_session_start(&o->g, &s->gen, creq, ks_server_seed(s), &err);
    ks_chat_request_destroy(creq);
    if (st) {
        oai_free(o);
        start_error(s, r, st, &err);
        return;
    }
    if (stream) {
        r->status = 200;
        r->content_type = "text/event-stream; charset=utf-8";
        r->stream = stream_fn;
        r->stream_ctx = o;
        r->stream_free = stream_free;
        r->log_extra = log_extra;
        r->log_ctx = o;
        return;
    }
    o->calls = json_array();
    while (!ks_gen_session_pump(o->g, 1000, collect_event, o))
        ;
    ks_finish_reason f = ks_gen_session_finish_reason(o->g);
    if (f == KS_FINISH_TIMEOUT) {
        ks_server_openai_error(s, r, 504, "timeout_error", ks_gen_session_error(o->g));
    } else if (f == KS_FINISH_ERROR) {
        ks_server_openai_error(s, r, 500, "server_error", ks_gen_session_error(o->g));
    } else {
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        json_object_set_new(msg, "content", o->text.len ? ks_json_text(o->text.data, o->text.len) : json_null());
        if (o->reasoning.len)
            json_object_set_new(msg, "reasoning_content", ks_json_text(o->reasoning.data, o->reasoning.len));
        if (json_array_size(o->calls) > 0)
            json_object_set(msg, "tool_calls", o->calls);
        json_t *resp = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:o, s:s, s:n}], s:o}", "id", o->id, "object",
                                 "chat.completion", "created", (int)o->created, "model", o->model, "choices", "index",
                                 0, "message", msg, "finish_reason", finish_reason(f), "logprobs", "usage",
                                 usage_json(o->g));
        char *text = json_dumps(resp, JSON_COMPACT);
        json_decref(resp);
        r->status = 200;
        r->content_type = "application/json";
        ks_strbuf_puts(&r->body, text);
        free(text);
    }
    ks_strbuf line;
    ks_strbuf_init(&line);
    ks_server_log_usage(&line, o->g);
    snprintf(r->log_text, sizeof r->log_text, "%s", line.data ? line.data : "");
    ks_strbuf_free(&line);
    oai_free(o);
}
