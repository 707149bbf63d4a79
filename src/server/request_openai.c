/* request_openai.c — OpenAI Chat Completions bodies into ks_chat_request.
 *
 * Mapping (fields not listed are ignored):
 *
 *   messages[i] role system | developer -> SYSTEM (text content)
 *               role user               -> USER (string or text parts; images, audio and
 *                                          files refused)
 *               role assistant          -> ASSISTANT: content (string, null or text /
 *                                          refusal parts), reasoning_content (or reasoning)
 *                                          -> thinking, tool_calls[] with arguments given as
 *                                          a JSON string (or an object) -> a JSON object
 *               role tool               -> TOOL: tool_call_id, content
 *   tools[] {type: function, function: {name, description, parameters}}
 *   tool_choice "none" | "auto" | "required" | {type: function, function: {name}}
 *   parallel_tool_calls, max_tokens | max_completion_tokens, temperature, top_p, top_k,
 *   min_p, seed, presence_penalty, frequency_penalty, stop (string or array), stream,
 *   stream_options.include_usage
 *   chat_template_kwargs.enable_thinking, add_generation_prompt, continue_final_message
 *                                       -> the prompt switches of the same names (the
 *                                          extensions vLLM and llama.cpp accept) */
#include "server/request_openai.h"

#include "server/request_common.h"

#include <string.h>

typedef ks_req_parser parser;

/* Runs a parse step on obj[key] with the path extended by key. */
#define WITH_KEY(ps, key, expr)                                   \
    do {                                                          \
        size_t mark_ = ks_json_path_key(&(ps)->path, (key));      \
        ks_status st_ = (expr);                                   \
        if (st_)                                                  \
            return st_;                                           \
        ks_json_path_restore(&(ps)->path, mark_);                 \
    } while (0)

/* ---- messages --------------------------------------------------------------------------- */

static ks_status assistant_part(parser *ps, const json_t *block, size_t i) {
    (void)i;
    const char *type, *text = "";
    size_t len = 0;
    ks_chat_message *msg = &ps->req->messages[ps->req->n_messages - 1];
    ks_status st = ks_req_block_type(block, &ps->path, &type, ps->err);
    if (st)
        return st;
    if (!strcmp(type, "text"))
        return ks_req_text_block(block, msg, NULL, NULL, &ps->path, ps->err);
    if (strcmp(type, "refusal"))
        return ks_req_unsupported_block(ps->err, &ps->path, type);
    if ((st = ks_req_string(block, "refusal", true, &ps->path, &text, &len, ps->err)))
        return st;
    return ks_chat_message_add_text(msg, text, len, false) ? ks_req_nomem(ps->err) : KS_OK;
}

/* Assistant content: text parts, and refusal parts read as text. msg is the last message. */
static ks_status assistant_content(parser *ps, const json_t *content, ks_chat_message *msg) {
    if (!json_is_array(content))
        return ks_req_text_content(content, msg, NULL, NULL, &ps->path, ps->err);
    return ks_req_each(ps, content, NULL, assistant_part);
}

/* function.arguments: a JSON text holding an object ("" is no arguments), or an object. */
static ks_status call_arguments(parser *ps, const json_t *fn, json_t **out) {
    const json_t *a = json_object_get(fn, "arguments");
    size_t mark = ks_json_path_key(&ps->path, "arguments");
    ks_status st = KS_OK;
    if (!a || json_is_null(a)) {
        *out = json_object();
    } else if (json_is_object(a)) {
        *out = json_incref((json_t *)a);
    } else if (json_is_string(a)) {
        const char *text = json_string_value(a);
        size_t len = json_string_length(a), ws = 0;
        while (ws < len && strchr(" \t\r\n", text[ws]))
            ws++;
        json_error_t jerr;
        *out = ws == len ? json_object() : json_loadb(text, len, JSON_DECODE_ANY, &jerr);
        if (ws != len && !*out)
            st = ks_req_error(ps->err, &ps->path, "not valid JSON (%s)", jerr.text);
    } else {
        st = ks_req_error(ps->err, &ps->path, "expected a JSON string");
    }
    if (!st && !*out)
        st = ks_req_nomem(ps->err);
    if (!st && !json_is_object(*out)) {
        json_decref(*out);
        st = ks_req_error(ps->err, &ps->path, "expected a JSON object");
    }
    if (!st)
        ks_json_path_restore(&ps->path, mark);
    return st;
}

static ks_status tool_call(parser *ps, const json_t *c, size_t i) {
    (void)i;
    if (!json_is_object(c))
        return ks_req_error(ps->err, &ps->path, "expected a tool call object");
    const char *id = "", *type = "function", *name = "";
    json_t *fn, *args = NULL;
    ks_status st;
    if ((st = ks_req_string(c, "id", false, &ps->path, &id, NULL, ps->err)) ||
        (st = ks_req_string(c, "type", false, &ps->path, &type, NULL, ps->err)))
        return st;
    if (strcmp(type, "function"))
        return ks_req_error(ps->err, &ps->path, "tool call type '%s' is not supported", type);
    if ((st = ks_req_object(c, "function", true, &ps->path, &fn, ps->err)))
        return st;
    ks_json_path_key(&ps->path, "function");
    if ((st = ks_req_string(fn, "name", true, &ps->path, &name, NULL, ps->err)) ||
        (st = call_arguments(ps, fn, &args)))
        return st;
    ks_chat_message *msg = &ps->req->messages[ps->req->n_messages - 1];
    st = ks_chat_message_add_tool_call(msg, id, name, args) ? ks_req_nomem(ps->err) : KS_OK;
    json_decref(args);
    return st;
}

static ks_status tool_calls(parser *ps, const json_t *m) {
    json_t *calls;
    ks_status st = ks_req_array(m, "tool_calls", false, &ps->path, &calls, ps->err);
    return st ? st : ks_req_each(ps, calls, "tool_calls", tool_call);
}

static ks_status message(parser *ps, const json_t *m, size_t i) {
    static const ks_req_role_name roles[] = {
        {"system", KS_CHAT_SYSTEM}, {"developer", KS_CHAT_SYSTEM}, {"user", KS_CHAT_USER},
        {"assistant", KS_CHAT_ASSISTANT}, {"tool", KS_CHAT_TOOL}};
    (void)i;
    ks_chat_role r;
    ks_status st = ks_req_message_role(ps, m, roles, KS_ARRAY_LEN(roles), &r);
    if (st)
        return st;
    ks_chat_message *msg;
    if (ks_chat_add_message(ps->req, r, &msg))
        return ks_req_nomem(ps->err);
    const json_t *content = json_object_get(m, "content");
    if (r == KS_CHAT_ASSISTANT) {
        const char *reasoning = NULL;
        size_t len = 0;
        WITH_KEY(ps, "content", assistant_content(ps, content, msg));
        if ((st = ks_req_string(m, "reasoning_content", false, &ps->path, &reasoning, &len, ps->err)))
            return st;
        if (!reasoning && (st = ks_req_string(m, "reasoning", false, &ps->path, &reasoning, &len, ps->err)))
            return st;
        if (reasoning && ks_chat_message_add_thinking(msg, reasoning, len))
            return ks_req_nomem(ps->err);
        return tool_calls(ps, m);
    }
    if (r == KS_CHAT_TOOL) {
        const char *id = "";
        if ((st = ks_req_string(m, "tool_call_id", false, &ps->path, &id, NULL, ps->err)))
            return st;
        if (ks_chat_message_set_tool_call_id(msg, id))
            return ks_req_nomem(ps->err);
    }
    WITH_KEY(ps, "content", ks_req_text_content(content, msg, NULL, NULL, &ps->path, ps->err));
    return KS_OK;
}

static ks_status messages(parser *ps, const json_t *body) {
    json_t *arr;
    ks_status st = ks_req_array(body, "messages", true, &ps->path, &arr, ps->err);
    if (!st && json_array_size(arr) == 0)
        st = ks_req_error(ps->err, &ps->path, "messages: at least one message is required");
    return st ? st : ks_req_each(ps, arr, "messages", message);
}

/* ---- tools ------------------------------------------------------------------------------ */

static ks_status tool(parser *ps, const json_t *t, size_t i) {
    (void)i;
    if (!json_is_object(t))
        return ks_req_error(ps->err, &ps->path, "expected a tool object");
    const char *type = "function", *name = "", *desc = NULL;
    json_t *fn, *params = NULL;
    ks_status st;
    if ((st = ks_req_string(t, "type", false, &ps->path, &type, NULL, ps->err)))
        return st;
    if (strcmp(type, "function"))
        return ks_req_error(ps->err, &ps->path, "tool type '%s' is not supported", type);
    if ((st = ks_req_object(t, "function", true, &ps->path, &fn, ps->err)))
        return st;
    ks_json_path_key(&ps->path, "function");
    if ((st = ks_req_string(fn, "name", true, &ps->path, &name, NULL, ps->err)) ||
        (st = ks_req_string(fn, "description", false, &ps->path, &desc, NULL, ps->err)) ||
        (st = ks_req_object(fn, "parameters", false, &ps->path, &params, ps->err)))
        return st;
    return ks_chat_add_tool(ps->req, name, desc, params, false) ? ks_req_nomem(ps->err) : KS_OK;
}

static ks_status tools(parser *ps, const json_t *body) {
    json_t *arr;
    ks_status st = ks_req_array(body, "tools", false, &ps->path, &arr, ps->err);
    return st ? st : ks_req_each(ps, arr, "tools", tool);
}

static ks_status tool_choice(parser *ps, const json_t *body) {
    const json_t *tc = json_object_get(body, "tool_choice");
    ks_chat_request *req = ps->req;
    ks_status st;
    if (!tc || json_is_null(tc))
        return KS_OK;
    size_t mark = ks_json_path_key(&ps->path, "tool_choice");
    if (json_is_string(tc)) {
        const char *s = json_string_value(tc);
        if (!strcmp(s, "auto"))
            req->tool_choice = KS_TOOL_CHOICE_AUTO;
        else if (!strcmp(s, "none"))
            req->tool_choice = KS_TOOL_CHOICE_NONE;
        else if (!strcmp(s, "required"))
            req->tool_choice = KS_TOOL_CHOICE_ANY;
        else
            return ks_req_error(ps->err, &ps->path, "'%s' is not none, auto or required", s);
    } else if (json_is_object(tc)) {
        json_t *fn;
        const char *name = "";
        if ((st = ks_req_object(tc, "function", true, &ps->path, &fn, ps->err)))
            return st;
        ks_json_path_key(&ps->path, "function");
        if ((st = ks_req_string(fn, "name", true, &ps->path, &name, NULL, ps->err)))
            return st;
        req->tool_choice = KS_TOOL_CHOICE_TOOL;
        if (ks_chat_set_string(&req->tool_choice_name, name))
            return ks_req_nomem(ps->err);
    } else {
        return ks_req_error(ps->err, &ps->path, "expected a string or an object");
    }
    ks_json_path_restore(&ps->path, mark);
    return KS_OK;
}

/* ---- sampling and prompt switches ------------------------------------------------------- */

static ks_status sampling(parser *ps, const json_t *body) {
    ks_chat_request *req = ps->req;
    const char *model = NULL;
    int64_t seed = 0;
    ks_status st;
    json_t *opts = NULL;
    if ((st = ks_req_string(body, "model", false, &ps->path, &model, NULL, ps->err)) ||
        (st = ks_req_int(body, "max_tokens", 1, INT32_MAX, &ps->path, NULL, &req->max_tokens, ps->err)) ||
        (st = ks_req_int(body, "max_completion_tokens", 1, INT32_MAX, &ps->path, NULL, &req->max_tokens, ps->err)) ||
        (st = ks_req_number(body, "temperature", &ps->path, &req->has_temperature, &req->temperature, ps->err)) ||
        (st = ks_req_number(body, "top_p", &ps->path, &req->has_top_p, &req->top_p, ps->err)) ||
        (st = ks_req_int(body, "top_k", -1, INT32_MAX, &ps->path, &req->has_top_k, &req->top_k, ps->err)) ||
        (st = ks_req_number(body, "min_p", &ps->path, &req->has_min_p, &req->min_p, ps->err)) ||
        (st = ks_req_number(body, "presence_penalty", &ps->path, &req->has_presence_penalty, &req->presence_penalty, ps->err)) ||
        (st = ks_req_number(body, "frequency_penalty", &ps->path, &req->has_frequency_penalty, &req->frequency_penalty, ps->err)) ||
        (st = ks_req_int(body, "seed", INT64_MIN, INT64_MAX, &ps->path, &req->has_seed, &seed, ps->err)) ||
        (st = ks_req_bool(body, "stream", &ps->path, &req->stream, ps->err)) ||
        (st = ks_req_bool(body, "parallel_tool_calls", &ps->path, &req->parallel_tool_calls, ps->err)) ||
        (st = ks_req_object(body, "stream_options", false, &ps->path, &opts, ps->err)) ||
        (st = ks_req_stop_strings(ps, body, "stop")))
        return st;
    req->seed = (uint64_t)seed; /* OpenAI seeds are any int64: keep the bits */
    if (opts)
        WITH_KEY(ps, "stream_options", ks_req_bool(opts, "include_usage", &ps->path, &req->stream_usage, ps->err));
    if (model && ks_chat_set_string(&req->model, model))
        return ks_req_nomem(ps->err);
    return KS_OK;
}

static ks_status prompt_switches(parser *ps, const json_t *body) {
    ks_chat_request *req = ps->req;
    json_t *kwargs;
    bool think = true, have_think = false;
    ks_status st;
    if ((st = ks_req_bool(body, "add_generation_prompt", &ps->path, &req->add_generation_prompt, ps->err)) ||
        (st = ks_req_bool(body, "continue_final_message", &ps->path, &req->continue_final, ps->err)) ||
        (st = ks_req_object(body, "chat_template_kwargs", false, &ps->path, &kwargs, ps->err)))
        return st;
    if (kwargs && json_object_get(kwargs, "enable_thinking")) {
        WITH_KEY(ps, "chat_template_kwargs", ks_req_bool(kwargs, "enable_thinking", &ps->path, &think, ps->err));
        have_think = true;
    }
    if (have_think)
        req->thinking = think ? KS_THINKING_ON : KS_THINKING_OFF;
    if (req->continue_final)
        req->add_generation_prompt = false;
    return KS_OK;
}

ks_status ks_request_openai_parse(const json_t *body, ks_chat_request **out, ks_err *err) {
    static const ks_req_step_fn steps[] = {messages, tools, tool_choice, sampling, prompt_switches};
    return ks_req_parse_steps(body, steps, KS_ARRAY_LEN(steps), out, err);
}
