/* gen_session.c — render, tokenize, submit, and the output pipeline (see gen_session.h).
 *
 * Output pipeline for each sampled token:
 *   detok (whole UTF-8 characters) -> pending bytes -> stop matcher (holds a possible
 *   partial stop string) -> think splitter (Qwen3 reasoning) -> tool-call parser (when
 *   the request has tools) -> sink.
 * Tool calls reach the sink only once complete and well formed (the parser's END): a
 * call that turns out malformed comes out as the text it was, never as a broken call. */
#include "server/gen_session.h"

#include "chat/chat_prompt.h"
#include "chat/think_split.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "sample/stop_matcher.h"
#include "tokenizer/detok.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KS_DEFAULT_MAX_OUTPUT 4096 /* tokens, when the server is not told */

struct ks_gen_session {
    const ks_gen_context *ctx;
    ks_gen *gen;
    int n_prompt;
    ks_detok detok;
    ks_stop_matcher *stops;
    char **stop_strings;
    size_t n_stops;
    ks_think_split think;
    bool split_thinking;
    ks_toolcall_parser *tools;
    json_t *tools_json;
    /* text not yet past the stop matcher: bytes [sent, sent + pend_len) of the output */
    char *pend;
    size_t pend_len, pend_cap;
    uint64_t sent;
    /* state */
    bool prefilled, done, stop_matched;
    int stop_which;
    int n_output_tokens, n_tool_calls;
    ks_kv_usage usage;
    ks_gen_timings timings;
    ks_finish_reason finish;
    char error[256];
    char *reply_prefix;  /* tool_choice: the call opening fed to the parser first */
    /* answer text: whitespace at the start of a text run and before a tool call or the
     * end is not sent (the chat templates trim it when they render the turn back) */
    bool text_started;
    ks_strbuf ws_held;
    /* the current sink, for the callbacks below */
    ks_out_sink sink;
    void *user;
};

/* ---- rendering with the tool-call memory ------------------------------------------------ */

typedef struct recall_ctx {
    ks_toolcall_memory *mem;
    const ks_chat_request *req;
    char **texts;
    size_t n_texts, cap_texts;
} recall_ctx;

static const char *recall_call(void *user, const char *call_id, size_t *len) {
    recall_ctx *rc = user;
    if (!rc->mem || !call_id || !*call_id)
        return NULL;
    for (size_t i = 0; i < rc->req->n_messages; i++) {
        const ks_chat_message *m = &rc->req->messages[i];
        for (size_t j = 0; j < m->n_tool_calls; j++) {
            const ks_chat_tool_call *c = &m->tool_calls[j];
            if (strcmp(c->id, call_id) != 0)
                continue;
            char *text = ks_toolcall_memory_lookup(rc->mem, c->id, c->name, c->arguments, len);
            if (!text)
                return NULL;
            if (rc->n_texts == rc->cap_texts) {
                rc->cap_texts = rc->cap_texts ? 2 * rc->cap_texts : 8;
                rc->texts = ks_xrealloc(rc->texts, rc->cap_texts * sizeof *rc->texts);
            }
            rc->texts[rc->n_texts++] = text;
            return text;
        }
    }
    return NULL;
}

/* The prompt as the engine gets it: chat_prompt.h's one path (markup as control tokens,
 * client text never; cache_control marks as token positions). */
static ks_status render_and_tokenize(const ks_gen_context *ctx, const ks_chat_request *req, ks_chat_prompt *prompt,
                                     ks_err *err) {
    recall_ctx rc = {ctx->toolcall_memory, req, NULL, 0, 0};
    ks_chat_render_opts opts = {recall_call, &rc};
    ks_status s = ks_chat_prompt_build(prompt, ctx->format, req, &opts, ctx->tokenizer, err);
    for (size_t i = 0; i < rc.n_texts; i++)
        free(rc.texts[i]);
    free(rc.texts);
    return s;
}

ks_status ks_gen_count_tokens(const ks_gen_context *ctx, const ks_chat_request *req, int *n_tokens, ks_err *err) {
    ks_chat_prompt prompt;
    ks_status s = render_and_tokenize(ctx, req, &prompt, err);
    if (!s)
        *n_tokens = (int)prompt.n_tokens;
    ks_chat_prompt_deinit(&prompt);
    return s;
}

/* Debug log: the prompt's size and where its cache breakpoints fell. */
static void log_prompt(const ks_chat_prompt *p) {
    if (ks_log_get_level() > KS_LOG_DEBUG)
        return;
    char at[160] = "";
    size_t k = 0;
    for (size_t i = 0; i < p->n_breakpoints && k < sizeof at; i++)
        k += (size_t)snprintf(at + k, sizeof at - k, " %d", (int)p->breakpoints[i]);
    KS_LOGD("prompt: %zu tokens, %zu cache breakpoints%s%s", p->n_tokens, p->n_breakpoints,
            p->n_breakpoints ? " at tokens" : "", at);
}

static void on_toolcall(void *user, const ks_toolcall_event *ev);

/* ---- start ------------------------------------------------------------------------------ */

static json_t *tools_for_parser(const ks_chat_request *req) {
    json_t *arr = json_array();
    for (size_t i = 0; i < req->n_tools; i++) {
        json_t *t = json_object();
        json_object_set_new(t, "name", json_string(req->tools[i].name));
        if (req->tools[i].parameters)
            json_object_set(t, "parameters", req->tools[i].parameters);
        json_array_append_new(arr, t);
    }
    return arr;
}

static void fill_sampling(const ks_chat_request *req, ks_sampler_params *sp, uint64_t seed) {
    *sp = ks_sampler_params_default();
    sp->seed = seed;
    if (req->has_temperature) sp->temperature = (float)req->temperature;
    if (req->has_top_p) sp->top_p = (float)req->top_p;
    if (req->has_top_k) sp->top_k = (int32_t)req->top_k;
    if (req->has_min_p) sp->min_p = (float)req->min_p;
    if (req->has_seed) sp->seed = req->seed;
    if (req->has_presence_penalty) sp->presence_penalty = (float)req->presence_penalty;
    if (req->has_frequency_penalty) sp->frequency_penalty = (float)req->frequency_penalty;
}

/* The opening of a tool call that tool_choice "any" (name NULL) or "tool" (a name) puts at
 * the start of the reply, in the format's call syntax. Static storage per thread. */
static const char *tool_choice_prefix(ks_toolcall_syntax syntax, const char *name) {
    static _Thread_local char buf[KS_TOOLCALL_NAME_MAX_BYTES + 64];
    if (syntax == KS_TOOLCALL_SYNTAX_QWEN3_XML) {
        if (name)
            snprintf(buf, sizeof buf, "<tool_call>\n<function=%s>\n", name);
        else
            snprintf(buf, sizeof buf, "<tool_call>\n<function=");
    } else {
        if (name)
            snprintf(buf, sizeof buf, "<tool_call>\n{\"name\": \"%s\", \"arguments\": ", name);
        else
            snprintf(buf, sizeof buf, "<tool_call>\n{\"name\": \"");
    }
    return buf;
}

ks_status ks_gen_session_start(ks_gen_session **out, const ks_gen_context *ctx, const ks_chat_request *req,
                               uint64_t id_seed, ks_err *err) {
    ks_gen_session *s = ks_xcalloc(1, sizeof *s);
    s->ctx = ctx;
    s->stop_which = -1;
    ks_chat_prompt prompt = {0};
    int32_t *with_prefix = NULL;
    ks_status st = render_and_tokenize(ctx, req, &prompt, err);
    if (st)
        goto fail;
    log_prompt(&prompt);
    s->n_prompt = (int)prompt.n_tokens;
    if ((st = ks_detok_init(&s->detok, ks_tokenizer_vocab(ctx->tokenizer), false)))
        goto fail;
    if (req->n_stop > 0) {
        if ((st = ks_stop_matcher_create(&s->stops, (const char *const *)req->stop, req->n_stop, err)))
            goto fail;
        s->n_stops = req->n_stop;
        s->stop_strings = ks_xcalloc(req->n_stop, sizeof *s->stop_strings);
        for (size_t i = 0; i < req->n_stop; i++)
            s->stop_strings[i] = ks_xstrdup(req->stop[i]);
    }
    s->split_thinking = ctx->format == KS_CHAT_FORMAT_QWEN3;
    ks_think_split_init(&s->think);
    ks_toolcall_syntax syntax = ks_chat_format_toolcall_syntax(ctx->format);
    if (req->n_tools > 0 && req->tool_choice != KS_TOOL_CHOICE_NONE && syntax != KS_TOOLCALL_SYNTAX_NONE) {
        s->tools_json = tools_for_parser(req);
        ks_toolcall_format tf = syntax == KS_TOOLCALL_SYNTAX_QWEN3_XML ? KS_TOOLCALL_QWEN3_CODER : KS_TOOLCALL_HERMES;
        if ((st = ks_toolcall_parser_create(&s->tools, tf, s->tools_json, id_seed, on_toolcall, s, err)))
            goto fail;
    }

    /* tool_choice any / tool: the reply starts with the opening of a call, written into
     * the prompt (the model continues it) and fed to the output parser first */
    if (s->tools && (req->tool_choice == KS_TOOL_CHOICE_ANY || req->tool_choice == KS_TOOL_CHOICE_TOOL)) {
        s->reply_prefix =
            ks_xstrdup(tool_choice_prefix(syntax, req->tool_choice == KS_TOOL_CHOICE_TOOL ? req->tool_choice_name : NULL));
        int32_t *pt = NULL;
        size_t npt = 0;
        if ((st = ks_tokenize_alloc(ctx->tokenizer, s->reply_prefix, strlen(s->reply_prefix), KS_TOKENIZE_SPECIAL, &pt,
                                    &npt)))
            goto fail;
        with_prefix = ks_xmalloc((prompt.n_tokens + npt) * sizeof *with_prefix);
        memcpy(with_prefix, prompt.tokens, prompt.n_tokens * sizeof *with_prefix);
        memcpy(with_prefix + prompt.n_tokens, pt, npt * sizeof *with_prefix);
        free(pt);
        s->n_prompt = (int)(prompt.n_tokens + npt);
    }

    int max_out = ctx->max_output > 0 ? ctx->max_output : KS_DEFAULT_MAX_OUTPUT;
    int want = req->max_tokens > 0 ? (int)KS_MIN(req->max_tokens, (int64_t)max_out)
                                   : (ctx->default_max_output > 0 ? KS_MIN(ctx->default_max_output, max_out) : max_out);
    ks_gen_request gr;
    memset(&gr, 0, sizeof gr);
    gr.prompt = with_prefix ? with_prefix : prompt.tokens;
    gr.n_prompt = s->n_prompt;
    gr.breakpoints = prompt.breakpoints;
    gr.n_breakpoints = (int)prompt.n_breakpoints;
    gr.max_tokens = want;
    gr.timeout_ms = ctx->request_timeout_ms;
    fill_sampling(req, &gr.sampling, id_seed);
    int32_t *forced = NULL;
    size_t n_forced = 0;
    const char *forced_text = ctx->forced ? ks_forced_outputs_next(ctx->forced) : NULL;
    if (forced_text) {
        if ((st = ks_tokenize_alloc(ctx->tokenizer, forced_text, strlen(forced_text), KS_TOKENIZE_SPECIAL, &forced,
                                    &n_forced)))
            goto fail;
        gr.forced = forced;
        gr.n_forced = (int)n_forced;
        gr.max_tokens = KS_MAX(gr.max_tokens, (int)n_forced + 1);
    }
    st = ks_engine_submit(ctx->engine, &gr, &s->gen, err);
    free(forced);
    if (st)
        goto fail;
    free(with_prefix);
    ks_chat_prompt_deinit(&prompt);
    *out = s;
    return KS_OK;
fail:
    free(with_prefix);
    ks_chat_prompt_deinit(&prompt);
    ks_gen_session_destroy(s);
    return st;
}

/* ---- the output pipeline -------------------------------------------------------------------- */

static void emit_raw(ks_gen_session *s, ks_out_type type, const char *data, size_t len, const ks_toolcall *call) {
    if (type != KS_OUT_TOOL_CALL && len == 0)
        return;
    ks_out_event ev = {type, data, len, call};
    s->sink(s->user, &ev);
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Answer text goes out with its whitespace edges trimmed: leading whitespace of a run is
 * dropped, trailing whitespace is held until more text shows it is inside the run. */
static void emit(ks_gen_session *s, ks_out_type type, const char *data, size_t len, const ks_toolcall *call) {
    if (type != KS_OUT_TEXT) {
        if (type == KS_OUT_TOOL_CALL) {
            ks_strbuf_clear(&s->ws_held);
            s->text_started = false;
        }
        emit_raw(s, type, data, len, call);
        return;
    }
    size_t i = 0;
    if (!s->text_started) {
        while (i < len && is_space(data[i]))
            i++;
        if (i == len)
            return;
        s->text_started = true;
    }
    size_t end = len;
    while (end > i && is_space(data[end - 1]))
        end--;
    if (end > i) {
        if (s->ws_held.len) {
            emit_raw(s, KS_OUT_TEXT, s->ws_held.data, s->ws_held.len, NULL);
            ks_strbuf_clear(&s->ws_held);
        }
        emit_raw(s, KS_OUT_TEXT, data + i, end - i, NULL);
    }
    ks_strbuf_append(&s->ws_held, data + end, len - end);
}

static void on_toolcall(void *user, const ks_toolcall_event *ev) {
    ks_gen_session *s = user;
    switch (ev->type) {
    case KS_TOOLCALL_TEXT:
        emit(s, KS_OUT_TEXT, ev->data, ev->len, NULL);
        break;
    case KS_TOOLCALL_END:
        if (s->ctx->toolcall_memory)
            ks_toolcall_memory_put(s->ctx->toolcall_memory, ev->call->id, ev->call->name, ev->call->args,
                                   ev->call->args_len, ev->call->raw, ev->call->raw_len);
        s->n_tool_calls++;
        emit(s, KS_OUT_TOOL_CALL, NULL, 0, ev->call);
        break;
    default: /* START, ARGS, ABORT: calls are reported whole, at END */
        break;
    }
}

static void on_think(void *user, bool thinking, const char *text, size_t len) {
    ks_gen_session *s = user;
    if (thinking)
        emit(s, KS_OUT_THINKING, text, len, NULL);
    else if (s->tools)
        ks_toolcall_parser_feed(s->tools, text, len);
    else
        emit(s, KS_OUT_TEXT, text, len, NULL);
}

/* Text past the stop matcher. */
static void forward(ks_gen_session *s, const char *text, size_t len) {
    if (len == 0)
        return;
    if (s->split_thinking)
        ks_think_split_feed(&s->think, text, len, on_think, s);
    else
        on_think(s, false, text, len);
}

static void pend_append(ks_gen_session *s, const char *text, size_t len) {
    if (s->pend_len + len > s->pend_cap) {
        s->pend_cap = KS_MAX(2 * s->pend_cap, s->pend_len + len + 64);
        s->pend = ks_xrealloc(s->pend, s->pend_cap);
    }
    memcpy(s->pend + s->pend_len, text, len);
    s->pend_len += len;
}

/* New output bytes: through the stop matcher, then forward what is safe. */
static void on_text(ks_gen_session *s, const char *text, size_t len) {
    if (s->stop_matched || len == 0)
        return;
    if (!s->stops) {
        forward(s, text, len);
        return;
    }
    pend_append(s, text, len);
    ks_stop_result r;
    ks_stop_matcher_feed(s->stops, text, len, &r);
    uint64_t upto = r.matched ? r.match_pos : r.safe_end;
    size_t n = (size_t)(upto - s->sent);
    forward(s, s->pend, n);
    memmove(s->pend, s->pend + n, s->pend_len - n);
    s->pend_len -= n;
    s->sent += n;
    if (r.matched) {
        s->stop_matched = true;
        s->stop_which = r.which;
        s->pend_len = 0;
        ks_gen_cancel(s->gen);
    }
}

static void finish_output(ks_gen_session *s) {
    const char *t;
    size_t n;
    ks_detok_flush(&s->detok, &t, &n);
    on_text(s, t, n);
    if (!s->stop_matched && s->pend_len > 0) {
        forward(s, s->pend, s->pend_len);
        s->sent += s->pend_len;
        s->pend_len = 0;
    }
    if (s->split_thinking)
        ks_think_split_finish(&s->think, on_think, s);
    if (s->tools)
        ks_toolcall_parser_finish(s->tools);
}

int ks_gen_session_pump(ks_gen_session *s, int timeout_ms, ks_out_sink sink, void *user) {
    if (s->done)
        return 1;
    s->sink = sink;
    s->user = user;
    if (s->reply_prefix) {
        on_text(s, s->reply_prefix, strlen(s->reply_prefix));
        free(s->reply_prefix);
        s->reply_prefix = NULL;
    }
    ks_gen_event ev;
    int wait = timeout_ms;
    while (ks_gen_next(s->gen, &ev, wait) == 1) {
        wait = 0; /* drain what is there, then return to the caller */
        if (ev.type == KS_GEN_EV_PREFILLED) {
            s->prefilled = true;
            s->usage = ev.usage;
        } else if (ev.type == KS_GEN_EV_TOKEN) {
            s->n_output_tokens++;
            const char *t;
            size_t n;
            ks_detok_push(&s->detok, ev.token, &t, &n);
            on_text(s, t, n);
        } else {
            s->usage = ev.usage;
            s->timings = ev.timings;
            s->prefilled = true;
            finish_output(s);
            switch (ev.reason) {
            case KS_STOP_EOG: s->finish = s->n_tool_calls > 0 ? KS_FINISH_TOOL_USE : KS_FINISH_END_TURN; break;
            case KS_STOP_LENGTH:
            case KS_STOP_CONTEXT: s->finish = KS_FINISH_MAX_TOKENS; break;
            case KS_STOP_CANCELLED: s->finish = s->stop_matched ? KS_FINISH_STOP_SEQUENCE : KS_FINISH_CANCELLED; break;
            case KS_STOP_TIMEOUT:
                s->finish = KS_FINISH_TIMEOUT;
                snprintf(s->error, sizeof s->error, "%s", ev.error[0] ? ev.error : "the request timed out");
                break;
            default:
                s->finish = KS_FINISH_ERROR;
                snprintf(s->error, sizeof s->error, "%s", ev.error[0] ? ev.error : "generation failed");
                break;
            }
            if (s->stop_matched)
                s->finish = KS_FINISH_STOP_SEQUENCE;
            s->done = true;
            return 1;
        }
    }
    return 0;
}

bool ks_gen_session_prefilled(const ks_gen_session *s) { return s->prefilled; }
const ks_kv_usage *ks_gen_session_usage(const ks_gen_session *s) { return &s->usage; }
int ks_gen_session_output_tokens(const ks_gen_session *s) { return s->n_output_tokens; }
ks_finish_reason ks_gen_session_finish_reason(const ks_gen_session *s) { return s->finish; }
const char *ks_gen_session_error(const ks_gen_session *s) { return s->error; }
const ks_gen_timings *ks_gen_session_timings(const ks_gen_session *s) { return &s->timings; }
int ks_gen_session_prompt_tokens(const ks_gen_session *s) { return s->n_prompt; }

const char *ks_gen_session_stop_sequence(const ks_gen_session *s) {
    return s->stop_which >= 0 && (size_t)s->stop_which < s->n_stops ? s->stop_strings[s->stop_which] : NULL;
}

void ks_gen_session_progress(ks_gen_session *s, ks_gen_progress *out) { ks_gen_progress_get(s->gen, out); }

void ks_gen_session_destroy(ks_gen_session *s) {
    if (!s)
        return;
    ks_gen_release(s->gen);
    ks_detok_deinit(&s->detok);
    ks_stop_matcher_destroy(s->stops);
    for (size_t i = 0; i < s->n_stops; i++)
        free(s->stop_strings[i]);
    free(s->stop_strings);
    ks_toolcall_parser_destroy(s->tools);
    json_decref(s->tools_json);
    free(s->pend);
    free(s->reply_prefix);
    ks_strbuf_free(&s->ws_held);
    free(s);
}

/* ---- teacher forcing (tests) ------------------------------------------------------------------ */

struct ks_forced_outputs {
    pthread_mutex_t mu;
    char **texts;
    size_t n, next;
};

ks_status ks_forced_outputs_load(ks_forced_outputs **out, const char *path, ks_err *err) {
    FILE *fp = fopen(path, "r");
    if (!fp)
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot open", path);
    ks_forced_outputs *f = ks_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    ks_status st = KS_OK;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, JSON_DECODE_ANY, &je);
        if (!j && len <= 1)
            continue; /* blank line */
        if (!json_is_string(j)) {
            json_decref(j);
            st = KS_ERRF(err, KS_ERR_INVALID, "%s:%d: each line must be one JSON string", path, lineno);
            break;
        }
        f->texts = ks_xrealloc(f->texts, (f->n + 1) * sizeof *f->texts);
        f->texts[f->n++] = ks_xstrdup(json_string_value(j));
        json_decref(j);
    }
    free(line);
    fclose(fp);
    if (st) {
        ks_forced_outputs_destroy(f);
        return st;
    }
    *out = f;
    return KS_OK;
}

void ks_forced_outputs_destroy(ks_forced_outputs *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->texts[i]);
    free(f->texts);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

const char *ks_forced_outputs_next(ks_forced_outputs *f) {
    pthread_mutex_lock(&f->mu);
    const char *t = f->next < f->n ? f->texts[f->next++] : NULL;
    pthread_mutex_unlock(&f->mu);
    return t;
}
