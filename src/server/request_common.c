/* request_common.c — JSON paths, typed getters and API detection shared by the request
 * parsers (see request_common.h). */
#include "server/request_common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- paths ------------------------------------------------------------------------------ */

void ks_json_path_init(ks_json_path *p) {
    p->s[0] = '\0';
    p->len = 0;
}

/* Appends a piece; one that does not fit is left out (the message then names the field
 * by its outer path, which is still right, only less precise). */
static size_t path_append(ks_json_path *p, const char *piece) {
    size_t mark = p->len, n = strlen(piece);
    if (p->len + n < sizeof p->s) {
        memcpy(p->s + p->len, piece, n + 1);
        p->len += n;
    }
    return mark;
}

size_t ks_json_path_key(ks_json_path *p, const char *key) {
    size_t mark = p->len;
    if (p->len)
        path_append(p, ".");
    path_append(p, key);
    return mark;
}

size_t ks_json_path_index(ks_json_path *p, size_t i) {
    char piece[32];
    snprintf(piece, sizeof piece, "[%zu]", i);
    return path_append(p, piece);
}

void ks_json_path_restore(ks_json_path *p, size_t mark) {
    if (mark <= p->len) {
        p->len = mark;
        p->s[mark] = '\0';
    }
}

ks_status ks_req_error(ks_err *err, const ks_json_path *p, const char *fmt, ...) {
    char msg[KS_ERR_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->len)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: %s", p->s, msg);
    return KS_ERRF(err, KS_ERR_INVALID, "%s", msg);
}

/* ---- getters ---------------------------------------------------------------------------- */

/* The value under key, NULL when absent or JSON null; "required" errors name the key. */
static ks_status lookup(const json_t *obj, const char *key, bool required, ks_json_path *p,
                        json_t **out, ks_err *err) {
    json_t *v = json_object_get(obj, key);
    if (json_is_null(v))
        v = NULL;
    if (!v && required) {
        size_t mark = ks_json_path_key(p, key);
        ks_status st = ks_req_error(err, p, "required");
        ks_json_path_restore(p, mark);
        return st;
    }
    *out = v;
    return KS_OK;
}

static ks_status wrong_type(const char *key, const char *expected, ks_json_path *p, ks_err *err) {
    size_t mark = ks_json_path_key(p, key);
    ks_status st = ks_req_error(err, p, "expected %s", expected);
    ks_json_path_restore(p, mark);
    return st;
}

ks_status ks_req_string(const json_t *obj, const char *key, bool required, ks_json_path *p,
                        const char **out, size_t *len, ks_err *err) {
    json_t *v = NULL;
    ks_status st = lookup(obj, key, required, p, &v, err);
    if (st || !v)
        return st;
    if (!json_is_string(v))
        return wrong_type(key, "a string", p, err);
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return KS_OK;
}

ks_status ks_req_bool(const json_t *obj, const char *key, ks_json_path *p, bool *out, ks_err *err) {
    json_t *v = NULL;
    ks_status st = lookup(obj, key, false, p, &v, err);
    if (st || !v)
        return st;
    if (!json_is_boolean(v))
        return wrong_type(key, "true or false", p, err);
    *out = json_is_true(v);
    return KS_OK;
}

ks_status ks_req_number(const json_t *obj, const char *key, ks_json_path *p, bool *given,
                        double *out, ks_err *err) {
    json_t *v = NULL;
    ks_status st = lookup(obj, key, false, p, &v, err);
    if (st || !v)
        return st;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return wrong_type(key, "a number", p, err);
    *out = json_number_value(v);
    if (given)
        *given = true;
    return KS_OK;
}

ks_status ks_req_int(const json_t *obj, const char *key, int64_t min, int64_t max,
                     ks_json_path *p, bool *given, int64_t *out, ks_err *err) {
    json_t *v = NULL;
    ks_status st = lookup(obj, key, false, p, &v, err);
    if (st || !v)
        return st;
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9.0e18) {
        x = (int64_t)json_real_value(v);
    } else {
        return wrong_type(key, "an integer", p, err);
    }
    if (x < min || x > max) {
        size_t mark = ks_json_path_key(p, key);
        st = ks_req_error(err, p, "%lld is out of range [%lld, %lld]", (long long)x,
                          (long long)min, (long long)max);
        ks_json_path_restore(p, mark);
        return st;
    }
    *out = x;
    if (given)
        *given = true;
    return KS_OK;
}

ks_status ks_req_array(const json_t *obj, const char *key, bool required, ks_json_path *p,
                       json_t **out, ks_err *err) {
    json_t *v = NULL;
    *out = NULL;
    ks_status st = lookup(obj, key, required, p, &v, err);
    if (st || !v)
        return st;
    if (!json_is_array(v))
        return wrong_type(key, "an array", p, err);
    *out = v;
    return KS_OK;
}

ks_status ks_req_object(const json_t *obj, const char *key, bool required, ks_json_path *p,
                        json_t **out, ks_err *err) {
    json_t *v = NULL;
    *out = NULL;
    ks_status st = lookup(obj, key, required, p, &v, err);
    if (st || !v)
        return st;
    if (!json_is_object(v))
        return wrong_type(key, "an object", p, err);
    *out = v;
    return KS_OK;
}

/* ---- a parse in steps ------------------------------------------------------------------- */

ks_status ks_req_nomem(ks_err *err) {
    return KS_ERRF(err, KS_ERR_NOMEM, "out of memory reading the request");
}

ks_status ks_req_parse_steps(const json_t *body, const ks_req_step_fn *steps, size_t n_steps,
                             ks_chat_request **out, ks_err *err) {
    ks_req_parser ps = {.err = err};
    ks_json_path_init(&ps.path);
    if (!json_is_object(body))
        return KS_ERRF(err, KS_ERR_INVALID, "the request body must be a JSON object");
    if (ks_chat_request_create(&ps.req))
        return ks_req_nomem(err);
    for (size_t i = 0; i < n_steps; i++) {
        ks_status st = steps[i](&ps, body);
        if (st) {
            ks_chat_request_destroy(ps.req);
            return st;
        }
    }
    *out = ps.req;
    return KS_OK;
}

ks_status ks_req_each(ks_req_parser *ps, const json_t *arr, const char *key, ks_req_item_fn fn) {
    size_t outer = key ? ks_json_path_key(&ps->path, key) : ps->path.len;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        size_t mark = ks_json_path_index(&ps->path, i);
        ks_status st = fn(ps, item, i);
        if (st)
            return st;
        ks_json_path_restore(&ps->path, mark);
    }
    ks_json_path_restore(&ps->path, outer);
    return KS_OK;
}

ks_status ks_req_message_role(ks_req_parser *ps, const json_t *m, const ks_req_role_name *names,
                              size_t n, ks_chat_role *out) {
    if (!json_is_object(m))
        return ks_req_error(ps->err, &ps->path, "expected a message object");
    const char *role = "";
    ks_status st = ks_req_string(m, "role", true, &ps->path, &role, NULL, ps->err);
    if (st)
        return st;
    char choices[128] = "";
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(role, names[i].name)) {
            *out = names[i].role;
            return KS_OK;
        }
        size_t used = strlen(choices);
        snprintf(choices + used, sizeof choices - used, "%s%s", i ? ", " : "", names[i].name);
    }
    size_t mark = ks_json_path_key(&ps->path, "role");
    st = ks_req_error(ps->err, &ps->path, "'%s' is not a role (%s)", role, choices);
    ks_json_path_restore(&ps->path, mark);
    return st;
}

static ks_status stop_item(ks_req_parser *ps, const json_t *item, size_t i) {
    (void)i;
    if (!json_is_string(item))
        return ks_req_error(ps->err, &ps->path, "expected a string");
    return ks_chat_add_stop(ps->req, json_string_value(item)) ? ks_req_nomem(ps->err) : KS_OK;
}

ks_status ks_req_stop_strings(ks_req_parser *ps, const json_t *body, const char *key) {
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return KS_OK;
    if (json_is_string(v))
        return stop_item(ps, v, 0);
    if (!json_is_array(v)) {
        size_t mark = ks_json_path_key(&ps->path, key);
        ks_status st = ks_req_error(ps->err, &ps->path, "expected a string or an array of strings");
        ks_json_path_restore(&ps->path, mark);
        return st;
    }
    return ks_req_each(ps, v, key, stop_item);
}

/* ---- text content ---------------------------------------------------------------------- */

ks_status ks_req_unsupported_block(ks_err *err, const ks_json_path *p, const char *type) {
    static const char *const media[] = {"image", "image_url", "document", "input_audio", "file"};
    for (size_t i = 0; i < KS_ARRAY_LEN(media); i++)
        if (!strcmp(type, media[i]))
            return ks_req_error(err, p, "%s content is not supported: the model reads text only", type);
    return ks_req_error(err, p, "content block type '%s' is not supported here", type);
}

ks_status ks_req_block_type(const json_t *block, ks_json_path *p, const char **type, ks_err *err) {
    if (!json_is_object(block))
        return ks_req_error(err, p, "expected a content block object");
    *type = "";
    return ks_req_string(block, "type", true, p, type, NULL, err);
}

static ks_status add_text(ks_req_add_text_fn add, void *ctx, ks_chat_message *msg,
                          const char *text, size_t len, bool cache_bp, ks_err *err) {
    if (add)
        return add(ctx, msg, text, len, cache_bp, err);
    return ks_chat_message_add_text(msg, text, len, cache_bp) ? ks_req_nomem(err) : KS_OK;
}

ks_status ks_req_text_block(const json_t *block, ks_chat_message *msg, ks_req_add_text_fn add,
                            void *ctx, ks_json_path *p, ks_err *err) {
    const char *text = "";
    size_t len = 0;
    ks_status st = ks_req_string(block, "text", true, p, &text, &len, err);
    if (st)
        return st;
    const json_t *cc = json_object_get(block, "cache_control");
    return add_text(add, ctx, msg, text, len, cc && !json_is_null(cc), err);
}

ks_status ks_req_text_content(const json_t *content, ks_chat_message *msg, ks_req_add_text_fn add,
                              void *ctx, ks_json_path *p, ks_err *err) {
    if (!content || json_is_null(content))
        return KS_OK;
    if (json_is_string(content))
        return add_text(add, ctx, msg, json_string_value(content), json_string_length(content),
                        false, err);
    if (!json_is_array(content))
        return ks_req_error(err, p, "expected a string or an array of content blocks");
    size_t i;
    json_t *block;
    json_array_foreach(content, i, block) {
        size_t mark = ks_json_path_index(p, i);
        const char *type;
        ks_status st = ks_req_block_type(block, p, &type, err);
        if (!st)
            st = !strcmp(type, "text") ? ks_req_text_block(block, msg, add, ctx, p, err)
                                       : ks_req_unsupported_block(err, p, type);
        if (st)
            return st;
        ks_json_path_restore(p, mark);
    }
    return KS_OK;
}

/* ---- API detection ---------------------------------------------------------------------- */

static const char *type_of(const json_t *block) {
    const char *t = json_string_value(json_object_get(block, "type"));
    return t ? t : "";
}

ks_api ks_request_detect_api(const json_t *body) {
    int anthropic = 0, openai = 0;
    /* top-level fields only one API defines */
    static const char *const a_keys[] = {"system", "stop_sequences", "thinking", "metadata"};
    static const char *const o_keys[] = {"max_completion_tokens", "stop", "n", "stream_options",
                                         "response_format", "logprobs", "presence_penalty",
                                         "frequency_penalty", "parallel_tool_calls", "seed",
                                         "logit_bias", "user", "chat_template_kwargs",
                                         "add_generation_prompt", "continue_final_message"};
    for (size_t i = 0; i < KS_ARRAY_LEN(a_keys); i++)
        anthropic += json_object_get(body, a_keys[i]) != NULL;
    for (size_t i = 0; i < KS_ARRAY_LEN(o_keys); i++)
        openai += json_object_get(body, o_keys[i]) != NULL;

    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(body, "tools"), i, t) {
        anthropic += json_object_get(t, "input_schema") != NULL;
        openai += json_object_get(t, "function") != NULL;
    }
    const json_t *choice = json_object_get(body, "tool_choice");
    if (json_is_string(choice))
        openai++;
    else if (json_is_object(choice))
        *(json_object_get(choice, "function") ? &openai : &anthropic) += 1;

    json_t *m;
    json_array_foreach(json_object_get(body, "messages"), i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && (!strcmp(role, "tool") || !strcmp(role, "developer")))
            openai++;
        if (json_object_get(m, "tool_calls") || json_object_get(m, "tool_call_id") ||
            json_object_get(m, "reasoning_content") || json_object_get(m, "name") ||
            json_is_null(json_object_get(m, "content")))
            openai++;
        size_t j;
        json_t *b;
        json_array_foreach(json_object_get(m, "content"), j, b) {
            const char *bt = type_of(b);
            if (!strcmp(bt, "tool_use") || !strcmp(bt, "tool_result") || !strcmp(bt, "thinking") ||
                !strcmp(bt, "redacted_thinking") || !strcmp(bt, "document") ||
                json_object_get(b, "cache_control") || json_object_get(b, "source"))
                anthropic++;
            if (!strcmp(bt, "image_url") || !strcmp(bt, "input_audio") || !strcmp(bt, "file") ||
                !strcmp(bt, "refusal"))
                openai++;
        }
    }
    return openai > anthropic ? KS_API_OPENAI : KS_API_ANTHROPIC;
}
