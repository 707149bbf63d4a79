/* chat.c — builders, accessors and the destructor of the conversation model (chat.h).
 *
 * Plain owned allocation: every string is its own malloc, arrays grow by doubling, JSON
 * values are held by reference count. A request is built once by an API adapter, read by
 * a renderer and destroyed whole, so nothing here needs to be clever. */
#include "chat/chat.h"

#include <stdlib.h>
#include <string.h>

/* Copies len bytes plus a NUL; NULL on allocation failure. */
static char *dup_bytes(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *dup_str(const char *s) {
    return dup_bytes(s ? s : "", s ? strlen(s) : 0);
}

/* Makes room for one more element of an array of *n elements of size elem. */
static ks_status grow(void **arr, size_t n, size_t elem) {
    /* capacity is the next power of two >= n + 1: grow only when n is one */
    if (n && (n & (n - 1)))
        return KS_OK;
    size_t cap = n ? n * 2 : 1;
    if (cap > SIZE_MAX / elem)
        return KS_ERR_NOMEM;
    void *p = realloc(*arr, cap * elem);
    if (!p)
        return KS_ERR_NOMEM;
    *arr = p;
    return KS_OK;
}

ks_status ks_chat_request_create(ks_chat_request **out) {
    ks_chat_request *req = calloc(1, sizeof *req);
    if (!req)
        return KS_ERR_NOMEM;
    req->tool_choice = KS_TOOL_CHOICE_AUTO;
    req->parallel_tool_calls = true;
    req->add_generation_prompt = true;
    req->thinking = KS_THINKING_DEFAULT;
    req->thinking_budget_tokens = -1;
    req->max_tokens = -1;
    *out = req;
    return KS_OK;
}

static void message_deinit(ks_chat_message *m) {
    for (size_t i = 0; i < m->n_parts; i++)
        free(m->parts[i].text);
    free(m->parts);
    free(m->thinking);
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        free(m->tool_calls[i].id);
        free(m->tool_calls[i].name);
        json_decref(m->tool_calls[i].arguments);
    }
    free(m->tool_calls);
    free(m->tool_call_id);
}

void ks_chat_request_destroy(ks_chat_request *req) {
    if (!req)
        return;
    for (size_t i = 0; i < req->n_messages; i++)
        message_deinit(&req->messages[i]);
    free(req->messages);
    for (size_t i = 0; i < req->n_tools; i++) {
        free(req->tools[i].name);
        free(req->tools[i].description);
        json_decref(req->tools[i].parameters);
    }
    free(req->tools);
    free(req->tool_choice_name);
    free(req->model);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->stop);
    free(req);
}

ks_status ks_chat_add_message(ks_chat_request *req, ks_chat_role role, ks_chat_message **out) {
    if (grow((void **)&req->messages, req->n_messages, sizeof *req->messages))
        return KS_ERR_NOMEM;
    ks_chat_message *m = &req->messages[req->n_messages++];
    memset(m, 0, sizeof *m);
    m->role = role;
    *out = m;
    return KS_OK;
}

ks_status ks_chat_message_add_text(ks_chat_message *msg, const char *text, size_t len,
                                   bool cache_breakpoint) {
    if (grow((void **)&msg->parts, msg->n_parts, sizeof *msg->parts))
        return KS_ERR_NOMEM;
    char *copy = dup_bytes(text, len);
    if (!copy)
        return KS_ERR_NOMEM;
    msg->parts[msg->n_parts++] = (ks_chat_part){.text = copy, .len = len,
                                                .cache_breakpoint = cache_breakpoint};
    if (cache_breakpoint)
        msg->cache_breakpoint = true;
    return KS_OK;
}

ks_status ks_chat_message_add_thinking(ks_chat_message *msg, const char *text, size_t len) {
    size_t sep = msg->thinking ? strlen(KS_CHAT_PART_SEP) : 0;
    size_t old = msg->thinking ? msg->thinking_len : 0;
    char *p = realloc(msg->thinking, old + sep + len + 1);
    if (!p)
        return KS_ERR_NOMEM;
    memcpy(p + old, KS_CHAT_PART_SEP, sep);
    if (len)
        memcpy(p + old + sep, text, len);
    p[old + sep + len] = '\0';
    msg->thinking = p;
    msg->thinking_len = old + sep + len;
    return KS_OK;
}

ks_status ks_chat_message_add_tool_call(ks_chat_message *msg, const char *id,
                                        const char *name, json_t *arguments) {
    if (!json_is_object(arguments))
        return KS_ERR_INVALID;
    if (grow((void **)&msg->tool_calls, msg->n_tool_calls, sizeof *msg->tool_calls))
        return KS_ERR_NOMEM;
    ks_chat_tool_call c = {.id = dup_str(id), .name = dup_str(name)};
    if (!c.id || !c.name) {
        free(c.id);
        free(c.name);
        return KS_ERR_NOMEM;
    }
    c.arguments = json_incref(arguments);
    msg->tool_calls[msg->n_tool_calls++] = c;
    return KS_OK;
}

ks_status ks_chat_set_string(char **field, const char *value) {
    char *p = value ? dup_str(value) : NULL;
    if (value && !p)
        return KS_ERR_NOMEM;
    free(*field);
    *field = p;
    return KS_OK;
}

ks_status ks_chat_message_set_tool_call_id(ks_chat_message *msg, const char *id) {
    return ks_chat_set_string(&msg->tool_call_id, id ? id : "");
}

ks_status ks_chat_add_tool(ks_chat_request *req, const char *name, const char *description,
                           json_t *parameters, bool cache_breakpoint) {
    if (grow((void **)&req->tools, req->n_tools, sizeof *req->tools))
        return KS_ERR_NOMEM;
    ks_chat_tool t = {.name = dup_str(name), .cache_breakpoint = cache_breakpoint};
    if (description)
        t.description = dup_str(description);
    if (!t.name || (description && !t.description)) {
        free(t.name);
        free(t.description);
        return KS_ERR_NOMEM;
    }
    t.parameters = parameters ? json_incref(parameters) : NULL;
    req->tools[req->n_tools++] = t;
    return KS_OK;
}

ks_status ks_chat_add_stop(ks_chat_request *req, const char *stop) {
    if (grow((void **)&req->stop, req->n_stop, sizeof *req->stop))
        return KS_ERR_NOMEM;
    char *p = dup_str(stop);
    if (!p)
        return KS_ERR_NOMEM;
    req->stop[req->n_stop++] = p;
    return KS_OK;
}

char *ks_chat_message_text(const ks_chat_message *msg, size_t *len) {
    size_t sep = strlen(KS_CHAT_PART_SEP), total = 0;
    for (size_t i = 0; i < msg->n_parts; i++)
        total += msg->parts[i].len + (i ? sep : 0);
    char *p = malloc(total + 1), *w = p;
    if (!p)
        return NULL;
    for (size_t i = 0; i < msg->n_parts; i++) {
        if (i) {
            memcpy(w, KS_CHAT_PART_SEP, sep);
            w += sep;
        }
        if (msg->parts[i].len)
            memcpy(w, msg->parts[i].text, msg->parts[i].len);
        w += msg->parts[i].len;
    }
    *w = '\0';
    if (len)
        *len = total;
    return p;
}

const char *ks_chat_role_name(ks_chat_role role) {
    switch (role) {
    case KS_CHAT_SYSTEM: return "system";
    case KS_CHAT_USER: return "user";
    case KS_CHAT_ASSISTANT: return "assistant";
    case KS_CHAT_TOOL: return "tool";
    }
    return "?";
}
