/* api_anthropic.c — the Anthropic Messages API: POST /v1/messages (streamed and not) and
 * POST /v1/messages/count_tokens.
 *
 * Streaming emits exactly the documented events, in order:
 *   message_start (usage so far) and ping, at once, before prefill;
 *   per content block: content_block_start, content_block_delta (text_delta,
 *   thinking_delta, input_json_delta), content_block_stop, with indices 0, 1, 2, ...;
 *   ping every few seconds while nothing else is sent (long prefills, tool calls being
 *   generated);
 *   message_delta (stop_reason, stop_sequence, usage), message_stop; or error
 *   (timeout_error when --request-timeout ran out, api_error otherwise).
 *
 * Usage: cache_read_input_tokens = prompt tokens taken from the KV cache (RAM and disk),
 * cache_creation_input_tokens = prompt tokens this request added to the cache,
 * input_tokens = the rest. */
#include "server/server.h"

#include "server/request_anthropic.h"

#include "server/json_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_THINKING } block_kind;

typedef struct anth {
    ks_server *srv;
    ks_gen_session *g;
    char id[64];
    char *model;
    bool stream;
    /* streaming state */
    bool started, finished;
    double last_write_ms;   /* for keep-alive pings */
    int index;              /* next content block index */
    block_kind open;
    ks_strbuf *out;         /* where the current pump writes */
    /* non-streaming: content blocks */
    json_t *content;
    ks_strbuf text, thinking;
} anth;

static const char *stop_reason(ks_finish_reason f) {
    switch (f) {
    case KS_FINISH_MAX_TOKENS: return "max_tokens";
    case KS_FINISH_STOP_SEQUENCE: return "stop_sequence";
    case KS_FINISH_TOOL_USE: return "tool_use";
    default: return "end_turn";
    }
}

static json_t *usage_json(const ks_gen_session *g, bool final) {
    const ks_kv_usage *u = ks_gen_session_usage(g);
    int prompt = ks_gen_session_prompt_tokens(g);
    int read = u->cached_ram_tokens + u->cached_disk_tokens;
    int created = u->new_cached_tokens;
    int input = prompt - read - created;
    if (input < 0)
        input = 0;
    return json_pack("{s:i, s:i, s:i, s:i}", "input_tokens", input, "cache_creation_input_tokens", created,
                     "cache_read_input_tokens", read, "output_tokens", final ? ks_gen_session_output_tokens(g) : 0);
}

static void sse(ks_strbuf *out, const char *event, json_t *data) {
    char *text = json_dumps(data, JSON_COMPACT);
    ks_strbuf_printf(out, "event: %s\ndata: %s\n\n", event, text ? text : "{}");
    free(text);
    json_decref(data);
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* ---- streaming ---------------------------------------------------------------------------- */

static void close_block(anth *a) {
    if (a->open == BLOCK_NONE)
        return;
    sse(a->out, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", a->index));
    a->index++;
    a->open = BLOCK_NONE;
}

static void open_block(anth *a, block_kind k) {
    if (a->open == k)
        return;
    close_block(a);
    json_t *cb = k == BLOCK_TEXT ? json_pack("{s:s, s:s}", "type", "text", "text", "")
                                 : json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", "", "signature", "");
    sse(a->out, "content_block_start",
        json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", a->index, "content_block", cb));
    a->open = k;
}

static void stream_text(anth *a, const char *data, size_t len) {
    open_block(a, BLOCK_TEXT);
    sse(a->out, "content_block_delta",
        json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "content_block_delta", "index", a->index, "delta", "type",
                  "text_delta", "text", ks_json_text(data, len)));
}

static void stream_event(void *user, const ks_out_event *ev) {
    anth *a = user;
    switch (ev->type) {
    case KS_OUT_TEXT:
        stream_text(a, ev->data, ev->len);
        break;
    case KS_OUT_THINKING:
        open_block(a, BLOCK_THINKING);
        sse(a->out, "content_block_delta",
            json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "content_block_delta", "index", a->index, "delta", "type",
                      "thinking_delta", "thinking", ks_json_text(ev->data, ev->len)));
        break;
    case KS_OUT_TOOL_CALL: {
        close_block(a);
        const ks_toolcall *c = ev->call;
        sse(a->out, "content_block_start",
            json_pack("{s:s, s:i, s:{s:s, s:s, s:s, s:{}}}", "type", "content_block_start", "index", a->index,
                      "content_block", "type", "tool_use", "id", c->id, "name", c->name, "input"));
        sse(a->out, "content_block_delta",
            json_pack("{s:s, s:i, s:{s:s, s:s%}}", "type", "content_block_delta", "index", a->index, "delta", "type",
                      "input_json_delta", "partial_json", c->args, c->args_len));
        sse(a->out, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index", a->index));
        a->index++;
        break;
    }
    }
}

static void stream_fn(void *ctx, ks_strbuf *out, bool *done) {
    anth *a = ctx;
    a->out = out;
    if (!a->started) {
        a->started = true;
        json_t *msg = json_pack("{s:s, s:s, s:s, s:[], s:s, s:n, s:n, s:o}", "id", a->id, "type", "message", "role",
                                "assistant", "content", "model", a->model, "stop_reason", "stop_sequence", "usage",
                                usage_json(a->g, false));
        sse(out, "message_start", json_pack("{s:s, s:o}", "type", "message_start", "message", msg));
        sse(out, "ping", json_pack("{s:s}", "type", "ping"));
        return;
    }
    if (a->finished) {
        *done = true;
        return;
    }
    int ended = ks_gen_session_pump(a->g, KS_SERVER_WAIT_SLICE_MS, stream_event, a);
    if (!ended) {
        if (ks_server_ping_due(a->srv, &a->last_write_ms, out->len > 0))
            sse(out, "ping", json_pack("{s:s}", "type", "ping"));
        return;
    }
    ks_finish_reason f = ks_gen_session_finish_reason(a->g);
    if (f == KS_FINISH_ERROR || f == KS_FINISH_TIMEOUT) {
        close_block(a);
        sse(out, "error", json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type",
                                    f == KS_FINISH_TIMEOUT ? "timeout_error" : "api_error", "message",
                                    ks_gen_session_error(a->g)));
        a->finished = true;
        return;
    }
    close_block(a);
    const char *seq = f == KS_FINISH_STOP_SEQUENCE ? ks_gen_session_stop_sequence(a->g) : NULL;
    sse(out, "message_delta",
        json_pack("{s:s, s:{s:s, s:s?}, s:o}", "type", "message_delta", "delta", "stop_reason", stop_reason(f),
                  "stop_sequence", seq, "usage", usage_json(a->g, true)));
    sse(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
    a->finished = true;
}

static void anth_free(anth *a) {
    ks_gen_session_destroy(a->g);
    free(a->model);
    ks_strbuf_free(&a->text);
    ks_strbuf_free(&a->thinking);
    json_decref(a->content);
    free(a);
}

static void stream_free(void *ctx, bool client_gone) {
    (void)client_gone;
    anth_free(ctx);
}

static void log_extra(void *ctx, ks_strbuf *line) {
    anth *a = ctx;
    ks_server_log_usage(line, a->g);
}

/* ---- collected (non-streaming) ------------------------------------------------------------------ */

static void flush_collected(anth *a) {
    if (a->thinking.len) {
        json_array_append_new(a->content, json_pack("{s:s, s:o, s:s}", "type", "thinking", "thinking",
                                                    ks_json_text(a->thinking.data, a->thinking.len), "signature", ""));
        ks_strbuf_clear(&a->thinking);
    }
    if (a->text.len && !all_space(a->text.data, a->text.len))
        json_array_append_new(a->content,
                              json_pack("{s:s, s:o}", "type", "text", "text", ks_json_text(a->text.data, a->text.len)));
    ks_strbuf_clear(&a->text);
}

static void collect_event(void *user, const ks_out_event *ev) {
    anth *a = user;
    switch (ev->type) {
    case KS_OUT_TEXT:
        if (a->thinking.len) {
            json_array_append_new(a->content, json_pack("{s:s, s:o, s:s}", "type", "thinking", "thinking",
                                                        ks_json_text(a->thinking.data, a->thinking.len), "signature", ""));
            ks_strbuf_clear(&a->thinking);
        }
        ks_strbuf_append(&a->text, ev->data, ev->len);
        break;
    case KS_OUT_THINKING:
        ks_strbuf_append(&a->thinking, ev->data, ev->len);
        break;
    case KS_OUT_TOOL_CALL: {
        flush_collected(a);
        json_t *input = json_deep_copy(ev->call->input);
        json_array_append_new(a->content, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id", ev->call->id,
                                                    "name", ev->call->name, "input", input ? input : json_object()));
        break;
    }
    }
}

/* ---- handlers ------------------------------------------------------------------------------------ */

static void start_error(ks_server *s, ks_http_reply *r, ks_status st, const ks_err *err) {
    if (st == KS_ERR_FULL) {
        atomic_fetch_add(&s->overloaded, 1);
        ks_http_reply_header(r, "retry-after", "2");
        ks_server_anthropic_error(s, r, 529, "overloaded_error", err->msg);
    } else if (st == KS_ERR_INVALID || st == KS_ERR_UNSUPPORTED) {
        ks_server_anthropic_error(s, r, 400, "invalid_request_error", err->msg);
    } else {
        ks_server_anthropic_error(s, r, 500, "api_error", err->msg[0] ? err->msg : "internal error");
    }
}

void ks_api_anthropic_messages(ks_server *s, const ks_http_request *req, ks_http_reply *r) {
    json_t *body = ks_server_parse_body(s, req, r, ks_server_anthropic_error);
    if (!body)
        return;
    ks_err err;
    ks_err_clear(&err);
    ks_chat_request *creq = NULL;
    ks_status st = ks_request_anthropic_parse(body, &creq, &err);
    json_decref(body);
    if (st) {
        start_error(s, r, st == KS_ERR_NOMEM ? st : KS_ERR_INVALID, &err);
        return;
    }
    if (creq->max_tokens < 1) {
        ks_chat_request_destroy(creq);
        ks_server_anthropic_error(s, r, 400, "invalid_request_error", "max_tokens: a positive integer is required");
        return;
    }
    anth *a = ks_xcalloc(1, sizeof *a);
    a->srv = s;
    a->model = ks_xstrdup(creq->model ? creq->model : s->p.model_name);
    a->stream = creq->stream;
    ks_server_new_id(s, "msg_", a->id, sizeof a->id);
    st = ks_gen_session_start(&a->g, &s->gen, creq, ks_server_seed(s), &err);
    ks_chat_request_destroy(creq);
    if (st) {
        anth_free(a);
        start_error(s, r, st, &err);
        return;
    }
    if (a->stream) {
        r->log_extra = log_extra;
        r->log_ctx = a;
        r->status = 200;
        r->content_type = "text/event-stream; charset=utf-8";
        r->stream = stream_fn;
        r->stream_ctx = a;
        r->stream_free = stream_free;
        return;
    }
    a->content = json_array();
    while (!ks_gen_session_pump(a->g, 1000, collect_event, a))
        ;
    flush_collected(a);
    ks_finish_reason f = ks_gen_session_finish_reason(a->g);
    if (f == KS_FINISH_TIMEOUT) {
        ks_server_anthropic_error(s, r, 504, "timeout_error", ks_gen_session_error(a->g));
    } else if (f == KS_FINISH_ERROR) {
        ks_server_anthropic_error(s, r, 500, "api_error", ks_gen_session_error(a->g));
    } else {
        const char *seq = f == KS_FINISH_STOP_SEQUENCE ? ks_gen_session_stop_sequence(a->g) : NULL;
        json_t *msg = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:s?, s:o}", "id", a->id, "type", "message", "role",
                                "assistant", "content", a->content, "model", a->model, "stop_reason", stop_reason(f),
                                "stop_sequence", seq, "usage", usage_json(a->g, true));
        char *text = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        r->status = 200;
        r->content_type = "application/json";
        ks_strbuf_puts(&r->body, text);
        free(text);
    }
    r->log_extra = NULL;
    r->log_ctx = NULL;
    ks_strbuf line;
    ks_strbuf_init(&line);
    ks_server_log_usage(&line, a->g);
    snprintf(r->log_text, sizeof r->log_text, "%s", line.data ? line.data : "");
    ks_strbuf_free(&line);
    anth_free(a);
}

void ks_api_anthropic_count_tokens(ks_server *s, const ks_http_request *req, ks_http_reply *r) {
    json_t *body = ks_server_parse_body(s, req, r, ks_server_anthropic_error);
    if (!body)
        return;
    /* count_tokens bodies carry no max_tokens: give the parser one */
    if (!json_object_get(body, "max_tokens"))
        json_object_set_new(body, "max_tokens", json_integer(1));
    ks_err err;
    ks_err_clear(&err);
    ks_chat_request *creq = NULL;
    ks_status st = ks_request_anthropic_parse(body, &creq, &err);
    json_decref(body);
    int n = 0;
    if (!st)
        st = ks_gen_count_tokens(&s->gen, creq, &n, &err);
    ks_chat_request_destroy(creq);
    if (st) {
        start_error(s, r, st == KS_ERR_NOMEM ? st : KS_ERR_INVALID, &err);
        return;
    }
    char text[64];
    snprintf(text, sizeof text, "{\"input_tokens\":%d}", n);
    r->status = 200;
    r->content_type = "application/json";
    ks_strbuf_puts(&r->body, text);
}
