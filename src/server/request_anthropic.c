/* request_anthropic.c — Anthropic Messages API bodies into ks_chat_request.
 *
 * Mapping (fields not listed are ignored, as the API's forward compatibility asks):
 *
 *   system (string | text blocks)  -> messages[0], role SYSTEM, one part per block; lines
 *                                     starting "x-anthropic-billing-header:" removed, blocks
 *                                     left empty by that dropped; an empty system prompt is
 *                                     no system prompt
 *   messages[i] role user          -> text blocks gather into USER messages; each
 *                                     tool_result block becomes a TOOL message, in block
 *                                     order (content string or text blocks, is_error)
 *   messages[i] role assistant     -> one ASSISTANT message: text -> parts, thinking ->
 *                                     thinking, tool_use -> tool calls; redacted_thinking
 *                                     is opaque and cannot be shown to the model: skipped
 *   messages[i] role system        -> a SYSTEM message in place (billing lines removed)
 *   final assistant message        -> prefill: continue_final, no generation prompt
 *   tools[]                        -> name, description, input_schema; defer_loading
 *                                     tools are left out; server tools are refused
 *   tool_choice, thinking, max_tokens, temperature, top_p, top_k, stop_sequences, stream
 *   cache_control (anywhere)       -> cache_breakpoint on the part, message or tool
 *
 * `content: "text"` and `content: [{"type": "text", "text": "text"}]` give the same
 * message. Images and documents are refused: the supported models read text only. */
#include "server/request_anthropic.h"

#include "server/request_common.h"

#include <stdlib.h>
#include <string.h>

typedef ks_req_parser parser;

static bool has_cache_control(const json_t *block) {
    const json_t *cc = json_object_get(block, "cache_control");
    return cc && !json_is_null(cc);
}

/* ---- text with billing lines removed --------------------------------------------------- */

static bool is_billing_line(const char *s, size_t len) {
    size_t n = strlen(KS_ANTHROPIC_BILLING_PREFIX);
    return len >= n && !memcmp(s, KS_ANTHROPIC_BILLING_PREFIX, n);
}

/* Adds text to msg minus its billing lines (each with its "\n"). Text that had some and
 * has nothing left adds no part. (A ks_req_add_text_fn.) */
static ks_status add_system_text(void *ctx, ks_chat_message *msg, const char *text, size_t len,
                                 bool cache_bp, ks_err *err) {
    (void)ctx;
    char *kept = malloc(len + 1);
    if (!kept)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory reading the request");
    size_t n = 0, removed = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t line = nl ? (size_t)(nl - (text + i)) + 1 : len - i;
        if (is_billing_line(text + i, line)) {
            removed++;
        } else {
            memcpy(kept + n, text + i, line);
            n += line;
        }
        i += line;
    }
    ks_status st = KS_OK;
    if ((!removed || n) && ks_chat_message_add_text(msg, kept, n, cache_bp))
        st = KS_ERRF(err, KS_ERR_NOMEM, "out of memory reading the request");
    free(kept);
    return st;
}

/* ---- content blocks ------------------------------------------------------------------- */

/* System prompt text (billing lines removed) or plain text. */
static ks_status text_content(parser *ps, const json_t *content, ks_chat_message *msg, bool system) {
    return ks_req_text_content(content, msg, system ? add_system_text : NULL, NULL, &ps->path, ps->err);
}

static ks_status tool_result(parser *ps, const json_t *block) {
    const char *id = "";
    bool is_error = false;
    ks_status st = ks_req_string(block, "tool_use_id", true, &ps->path, &id, NULL, ps->err);
    if (!st)
        st = ks_req_bool(block, "is_error", &ps->path, &is_error, ps->err);
    if (st)
        return st;
    ks_chat_message *msg;
    if (ks_chat_add_message(ps->req, KS_CHAT_TOOL, &msg) || ks_chat_message_set_tool_call_id(msg, id))
        return ks_req_nomem(ps->err);
    msg->is_error = is_error;
    msg->cache_breakpoint = has_cache_control(block);
    size_t mark = ks_json_path_key(&ps->path, "content");
    st = text_content(ps, json_object_get(block, "content"), msg, false);
    ks_json_path_restore(&ps->path, mark);
    return st;
}

static ks_status tool_use(parser *ps, const json_t *block, ks_chat_message *msg) {
    const char *id = "", *name = "";
    json_t *input = NULL;
    ks_status st = ks_req_string(block, "id", false, &ps->path, &id, NULL, ps->err);
    if (!st)
        st = ks_req_string(block, "name", true, &ps->path, &name, NULL, ps->err);
    if (!st)
        st = ks_req_object(block, "input", false, &ps->path, &input, ps->err);
    if (st)
        return st;
    json_t *empty = input ? NULL : json_object();
    if (!input && !empty)
        return ks_req_nomem(ps->err);
    st = ks_chat_message_add_tool_call(msg, id, name, input ? input : empty) ? ks_req_nomem(ps->err) : KS_OK;
    json_decref(empty);
    if (has_cache_control(block))
        msg->cache_breakpoint = true;
    return st;
}

static ks_status thinking_block(parser *ps, const json_t *block, ks_chat_message *msg) {
    const char *text = "";
    size_t len = 0;
    ks_status st = ks_req_string(block, "thinking", true, &ps->path, &text, &len, ps->err);
    if (st)
        return st;
    return ks_chat_message_add_thinking(msg, text, len) ? ks_req_nomem(ps->err) : KS_OK;
}

/* The message the current blocks go to: always the last one. */
static ks_chat_message *last_message(parser *ps) {
    return &ps->req->messages[ps->req->n_messages - 1];
}

static ks_status user_block(parser *ps, const json_t *block, size_t i) {
    const char *type;
    ks_status st = ks_req_block_type(block, &ps->path, &type, ps->err);
    if (st)
        return st;
    if (!strcmp(type, "tool_result"))
        return tool_result(ps, block);
    if (strcmp(type, "text"))
        return ks_req_unsupported_block(ps->err, &ps->path, type);
    /* consecutive text blocks share one USER message */
    ks_chat_message *msg;
    if (i > 0 && last_message(ps)->role == KS_CHAT_USER)
        msg = last_message(ps);
    else if (ks_chat_add_message(ps->req, KS_CHAT_USER, &msg))
        return ks_req_nomem(ps->err);
    return ks_req_text_block(block, msg, NULL, NULL, &ps->path, ps->err);
}

/* A user turn: text blocks gather into USER messages, tool results become TOOL messages,
 * in block order. */
static ks_status user_turn(parser *ps, const json_t *content) {
    ks_chat_message *msg;
    if (json_is_string(content) || (json_is_array(content) && json_array_size(content) == 0)) {
        if (ks_chat_add_message(ps->req, KS_CHAT_USER, &msg)) /* an empty turn is still a turn */
            return ks_req_nomem(ps->err);
        return text_content(ps, content, msg, false);
    }
    if (!json_is_array(content))
        return ks_req_error(ps->err, &ps->path, "expected a string or an array of content blocks");
    return ks_req_each(ps, content, NULL, user_block);
}

static ks_status assistant_block(parser *ps, const json_t *block, size_t i) {
    (void)i;
    const char *type;
    ks_status st = ks_req_block_type(block, &ps->path, &type, ps->err);
    if (st)
        return st;
    ks_chat_message *msg = last_message(ps);
    if (!strcmp(type, "text"))
        return ks_req_text_block(block, msg, NULL, NULL, &ps->path, ps->err);
    if (!strcmp(type, "tool_use"))
        return tool_use(ps, block, msg);
    if (!strcmp(type, "thinking"))
        return thinking_block(ps, block, msg);
    if (!strcmp(type, "redacted_thinking"))
        return KS_OK;
    return ks_req_unsupported_block(ps->err, &ps->path, type);
}

static ks_status assistant_turn(parser *ps, const json_t *content) {
    ks_chat_message *msg;
    if (ks_chat_add_message(ps->req, KS_CHAT_ASSISTANT, &msg))
        return ks_req_nomem(ps->err);
    if (json_is_string(content))
        return text_content(ps, content, msg, false);
    if (!json_is_array(content))
        return ks_req_error(ps->err, &ps->path, "expected a string or an array of content blocks");
    return ks_req_each(ps, content, NULL, assistant_block);
}

/* ---- top-level fields ------------------------------------------------------------------ */

static ks_status system_prompt(parser *ps, const json_t *body) {
    const json_t *sys = json_object_get(body, "system");
    if (!sys || json_is_null(sys))
        return KS_OK;
    ks_chat_message *msg;
    if (ks_chat_add_message(ps->req, KS_CHAT_SYSTEM, &msg))
        return ks_req_nomem(ps->err);
    size_t mark = ks_json_path_key(&ps->path, "system");
    ks_status st = text_content(ps, sys, msg, true);
    ks_json_path_restore(&ps->path, mark);
    size_t chars = 0;
    for (size_t i = 0; i < msg->n_parts; i++)
        chars += msg->parts[i].len;
    if (!st && chars == 0) { /* empty, or nothing but billing lines: no system prompt */
        for (size_t i = 0; i < msg->n_parts; i++)
            free(msg->parts[i].text);
        free(msg->parts);
        ps->req->n_messages--;
    }
    return st;
}

static ks_status message(parser *ps, const json_t *m, size_t i) {
    static const ks_req_role_name roles[] = {
        {"user", KS_CHAT_USER}, {"assistant", KS_CHAT_ASSISTANT}, {"system", KS_CHAT_SYSTEM}};
    (void)i;
    ks_chat_role role;
    ks_status st = ks_req_message_role(ps, m, roles, KS_ARRAY_LEN(roles), &role);
    if (st)
        return st;
    const json_t *content = json_object_get(m, "content");
    ks_json_path_key(&ps->path, "content");
    if (!content)
        return ks_req_error(ps->err, &ps->path, "required");
    if (role == KS_CHAT_USER)
        return user_turn(ps, content);
    if (role == KS_CHAT_ASSISTANT)
        return assistant_turn(ps, content);
    ks_chat_message *msg; /* a system message in place */
    if (ks_chat_add_message(ps->req, KS_CHAT_SYSTEM, &msg))
        return ks_req_nomem(ps->err);
    return text_content(ps, content, msg, true);
}

static ks_status messages(parser *ps, const json_t *body) {
    json_t *arr;
    ks_status st = ks_req_array(body, "messages", true, &ps->path, &arr, ps->err);
    if (!st && json_array_size(arr) == 0)
        st = ks_req_error(ps->err, &ps->path, "messages: at least one message is required");
    if (!st)
        st = ks_req_each(ps, arr, "messages", message);
    if (st)
        return st;
    /* a final assistant message is a prefill the reply continues */
    const char *last = json_string_value(json_object_get(json_array_get(arr, json_array_size(arr) - 1), "role"));
    if (!strcmp(last, "assistant")) {
        ps->req->continue_final = true;
        ps->req->add_generation_prompt = false;
    }
    return KS_OK;
}

static ks_status tool(parser *ps, const json_t *t, size_t i) {
    (void)i;
    if (!json_is_object(t))
        return ks_req_error(ps->err, &ps->path, "expected a tool object");
    const char *type = NULL, *name = "", *desc = NULL;
    bool deferred = false;
    json_t *schema = NULL;
    ks_status st;
    if ((st = ks_req_string(t, "type", false, &ps->path, &type, NULL, ps->err)) ||
        (st = ks_req_bool(t, "defer_loading", &ps->path, &deferred, ps->err)))
        return st;
    if (deferred) /* loaded on demand by tool search: not part of the prompt */
        return KS_OK;
    if (type && strcmp(type, "custom"))
        return ks_req_error(ps->err, &ps->path, "server tool type '%s' is not supported", type);
    if ((st = ks_req_string(t, "name", true, &ps->path, &name, NULL, ps->err)) ||
        (st = ks_req_string(t, "description", false, &ps->path, &desc, NULL, ps->err)) ||
        (st = ks_req_object(t, "input_schema", false, &ps->path, &schema, ps->err)))
        return st;
    return ks_chat_add_tool(ps->req, name, desc, schema, has_cache_control(t)) ? ks_req_nomem(ps->err) : KS_OK;
}

static ks_status tools(parser *ps, const json_t *body) {
    json_t *arr;
    ks_status st = ks_req_array(body, "tools", false, &ps->path, &arr, ps->err);
    return st ? st : ks_req_each(ps, arr, "tools", tool);
}

static ks_status tool_choice(parser *ps, const json_t *body) {
    json_t *tc;
    ks_status st = ks_req_object(body, "tool_choice", false, &ps->path, &tc, ps->err);
    if (st || !tc)
        return st;
    size_t mark = ks_json_path_key(&ps->path, "tool_choice");
    const char *type = "";
    bool no_parallel = false;
    if ((st = ks_req_string(tc, "type", true, &ps->path, &type, NULL, ps->err)) ||
        (st = ks_req_bool(tc, "disable_parallel_tool_use", &ps->path, &no_parallel, ps->err)))
        return st;
    ks_chat_request *req = ps->req;
    req->parallel_tool_calls = !no_parallel;
    if (!strcmp(type, "auto")) {
        req->tool_choice = KS_TOOL_CHOICE_AUTO;
    } else if (!strcmp(type, "any")) {
        req->tool_choice = KS_TOOL_CHOICE_ANY;
    } else if (!strcmp(type, "none")) {
        req->tool_choice = KS_TOOL_CHOICE_NONE;
    } else if (!strcmp(type, "tool")) {
        const char *name = "";
        if ((st = ks_req_string(tc, "name", true, &ps->path, &name, NULL, ps->err)))
            return st;
        req->tool_choice = KS_TOOL_CHOICE_TOOL;
        if (ks_chat_set_string(&req->tool_choice_name, name))
            return ks_req_nomem(ps->err);
    } else {
        return ks_req_error(ps->err, &ps->path, "type '%s' is not auto, any, tool or none", type);
    }
    ks_json_path_restore(&ps->path, mark);
    return KS_OK;
}

static ks_status thinking(parser *ps, const json_t *body) {
    json_t *th;
    ks_status st = ks_req_object(body, "thinking", false, &ps->path, &th, ps->err);
    if (st || !th)
        return st;
    size_t mark = ks_json_path_key(&ps->path, "thinking");
    const char *type = "";
    if ((st = ks_req_string(th, "type", true, &ps->path, &type, NULL, ps->err)) ||
        (st = ks_req_int(th, "budget_tokens", 0, INT32_MAX, &ps->path, NULL,
                         &ps->req->thinking_budget_tokens, ps->err)))
        return st;
    if (!strcmp(type, "enabled") || !strcmp(type, "adaptive"))
        ps->req->thinking = KS_THINKING_ON;
    else if (!strcmp(type, "disabled"))
        ps->req->thinking = KS_THINKING_OFF;
    else
        return ks_req_error(ps->err, &ps->path, "type '%s' is not enabled, adaptive or disabled", type);
    ks_json_path_restore(&ps->path, mark);
    return KS_OK;
}

static ks_status sampling(parser *ps, const json_t *body) {
    ks_chat_request *req = ps->req;
    const char *model = NULL;
    ks_status st;
    if ((st = ks_req_string(body, "model", false, &ps->path, &model, NULL, ps->err)) ||
        (st = ks_req_int(body, "max_tokens", 1, INT32_MAX, &ps->path, NULL, &req->max_tokens, ps->err)) ||
        (st = ks_req_number(body, "temperature", &ps->path, &req->has_temperature, &req->temperature, ps->err)) ||
        (st = ks_req_number(body, "top_p", &ps->path, &req->has_top_p, &req->top_p, ps->err)) ||
        (st = ks_req_int(body, "top_k", -1, INT32_MAX, &ps->path, &req->has_top_k, &req->top_k, ps->err)) ||
        (st = ks_req_bool(body, "stream", &ps->path, &req->stream, ps->err)) ||
        (st = ks_req_stop_strings(ps, body, "stop_sequences")))
        return st;
    return model && ks_chat_set_string(&req->model, model) ? ks_req_nomem(ps->err) : KS_OK;
}

ks_status ks_request_anthropic_parse(const json_t *body, ks_chat_request **out, ks_err *err) {
    static const ks_req_step_fn steps[] = {system_prompt, messages, tools, tool_choice, thinking, sampling};
    return ks_req_parse_steps(body, steps, KS_ARRAY_LEN(steps), out, err);
}
