/* render_qwen3_coder.c — prompts in the Qwen3-Coder chat format (Qwen3-Coder-30B-A3B and
 * -480B-A35B), byte-identical to that Jinja template.
 *
 * The template, step by step:
 *
 *   1. system turn  messages[0]'s text when it is a system message, else (only when there
 *                   are tools) the template's default identity line; then, with tools,
 *                   the tools as XML:
 *                     <function>\n<name>N</name>\n<description>D</description>
 *                     <parameters>\n<parameter>\n<name>P</name>\n<type>T</type>... per
 *                     property, then the schema's other keys as <key>value</key>
 *                   and the fixed instructions on the call format
 *   2. turns        assistant with tool calls: trimmed text, then per call
 *                     "\n<tool_call>\n<function=N>\n" + "<parameter=K>\nV\n</parameter>\n"
 *                     per argument + "</function>\n</tool_call>"
 *                   (V: objects and arrays as tojson, everything else as Python str());
 *                   tool results: consecutive ones share one user turn;
 *                   everything else: a plain turn (reasoning is not re-rendered)
 *   3. generation prompt "<|im_start|>assistant\n" (the template has no thinking switch)
 *
 * Python semantics kept: `| trim` (Unicode whitespace), `| string` (True, None, 1e-05,
 * Python reprs of lists), tojson for nested values, insertion order of keys. */
#include "chat/render.h"

#include <string.h>

static const char default_system[] =
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.";
static const char tools_head[] = "\n\n# Tools\n\nYou have access to the following tools:\n\n<tools>";
static const char tools_tail[] =
    "\n</tools>\n\nIf you choose to call a tool ONLY reply in the following format with NO "
    "suffix:\n\n<tool_call>\n<function=example_function_name>\n"
    "<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nvalue_2\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: the tool calling block MUST begin "
    "with an opening <tool_call> tag and end with a closing </tool_call> tag.\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE "
    "the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n</IMPORTANT>";

/* Appends client text s with Unicode whitespace trimmed (Jinja's `trim`). */
static void append_trimmed(ks_chat_buf *out, const char *s, size_t len) {
    size_t a, n;
    ks_chat_strip(s, len, NULL, true, true, &a, &n);
    ks_chat_buf_client(out, s + a, n);
}

/* `| string` of a client value, trimmed (descriptions). */
static void append_trimmed_value(ks_chat_buf *out, const json_t *v) {
    ks_chat_buf tmp;
    ks_chat_buf_init(&tmp);
    ks_chat_pystr(&tmp, v);
    if (tmp.failed)
        out->failed = true;
    else
        append_trimmed(out, tmp.data, tmp.len);
    ks_chat_buf_deinit(&tmp);
}

/* A client value the way the template prints it in XML: mappings and lists as tojson,
 * anything else through `| string`. */
static void xml_value(ks_chat_buf *out, const json_t *v) {
    size_t at = out->len;
    if (json_is_object(v) || json_is_array(v))
        ks_chat_tojson(out, v);
    else
        ks_chat_pystr(out, v);
    ks_chat_buf_mark_client(out, at);
}

/* A client string (a name, a key). */
static void client_str(ks_chat_buf *out, const char *s) {
    ks_chat_buf_client(out, s, strlen(s));
}

static bool handled(const char *key, const char *const *keys) {
    for (; *keys; keys++)
        if (!strcmp(key, *keys))
            return true;
    return false;
}

/* The template's render_extra_keys macro: every key of an object not in `keys`, as
 * "\n<key>value</key>". */
static void extra_keys(ks_chat_buf *out, const json_t *obj, const char *const *keys) {
    if (!json_is_object(obj))
        return;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        if (handled(key, keys))
            continue;
        ks_chat_buf_puts(out, "\n<");
        client_str(out, key);
        ks_chat_buf_append(out, ">", 1);
        xml_value(out, val);
        ks_chat_buf_puts(out, "</");
        client_str(out, key);
        ks_chat_buf_append(out, ">", 1);
    }
}

static void tool_xml(ks_chat_buf *out, const ks_chat_tool *t) {
    static const char *const param_keys[] = {"name", "type", "description", NULL};
    static const char *const schema_keys[] = {"type", "properties", NULL};
    ks_chat_buf_puts(out, "\n<function>\n<name>");
    client_str(out, t->name);
    ks_chat_buf_puts(out, "</name>");
    if (t->description) {
        ks_chat_buf_puts(out, "\n<description>");
        append_trimmed(out, t->description, strlen(t->description));
        ks_chat_buf_puts(out, "</description>");
    }
    ks_chat_buf_puts(out, "\n<parameters>");
    const json_t *props = json_is_object(t->parameters) ? json_object_get(t->parameters, "properties") : NULL;
    if (json_is_object(props)) {
        const char *name;
        json_t *fields;
        json_object_foreach((json_t *)props, name, fields) {
            ks_chat_buf_puts(out, "\n<parameter>\n<name>");
            client_str(out, name);
            ks_chat_buf_puts(out, "</name>");
            const json_t *type = json_is_object(fields) ? json_object_get(fields, "type") : NULL;
            const json_t *desc = json_is_object(fields) ? json_object_get(fields, "description") : NULL;
            if (type) {
                ks_chat_buf_puts(out, "\n<type>");
                size_t at = out->len;
                ks_chat_pystr(out, type);
                ks_chat_buf_mark_client(out, at);
                ks_chat_buf_puts(out, "</type>");
            }
            if (desc) {
                ks_chat_buf_puts(out, "\n<description>");
                append_trimmed_value(out, desc);
                ks_chat_buf_puts(out, "</description>");
            }
            extra_keys(out, fields, param_keys);
            ks_chat_buf_puts(out, "\n</parameter>");
        }
    }
    extra_keys(out, t->parameters, schema_keys);
    ks_chat_buf_puts(out, "\n</parameters>\n</function>");
}

static void tool_call(const ks_chat_render_in *in, const ks_chat_tool_call *c, ks_chat_buf *out) {
    ks_chat_buf_append(out, "\n", 1);
    if (ks_chat_render_recalled_call(in, c, out))
        return;
    ks_chat_buf_puts(out, "<tool_call>\n<function=");
    client_str(out, c->name);
    ks_chat_buf_puts(out, ">\n");
    const char *key;
    json_t *val;
    json_object_foreach(c->arguments, key, val) {
        ks_chat_buf_puts(out, "<parameter=");
        client_str(out, key);
        ks_chat_buf_puts(out, ">\n");
        xml_value(out, val);
        ks_chat_buf_puts(out, "\n</parameter>\n");
    }
    ks_chat_buf_puts(out, "</function>\n</tool_call>");
}

ks_status ks_chat_render_qwen3_coder(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err) {
    (void)err;
    const ks_chat_request *req = in->req;
    const ks_chat_message *msgs = req->messages;
    size_t n = req->n_messages;
    bool has_system = msgs[0].role == KS_CHAT_SYSTEM;
    size_t first = has_system ? 1 : 0; /* loop_messages = messages[first:] */

    /* 1. system turn (the system message ends with its text: the tools follow) */
    if (has_system) {
        size_t since = out->n_breaks;
        ks_chat_buf_puts(out, KS_CHATML_START "system\n");
        ks_chat_render_content(in, 0, in->content[0], out);
        ks_chat_render_message_end(in, 0, since, out);
    } else if (req->n_tools) {
        ks_chat_buf_puts(out, KS_CHATML_START "system\n");
        ks_chat_buf_puts(out, default_system);
    }
    if (req->n_tools) {
        ks_chat_buf_puts(out, tools_head);
        for (size_t t = 0; t < req->n_tools; t++) {
            tool_xml(out, &req->tools[t]);
            ks_chat_render_tool_end(&req->tools[t], out);
        }
        ks_chat_buf_puts(out, tools_tail);
    }
    if (has_system || req->n_tools)
        ks_chat_buf_puts(out, KS_CHATML_END "\n");

    /* 2. turns */
    for (size_t i = first; i < n; i++) {
        const ks_chat_message *m = &msgs[i];
        size_t since = out->n_breaks;
        if (m->role == KS_CHAT_ASSISTANT && m->n_tool_calls) {
            ks_chat_buf_puts(out, KS_CHATML_START "assistant");
            size_t a, len;
            ks_chat_strip(in->content[i].s, in->content[i].len, NULL, true, true, &a, &len);
            if (len) {
                ks_chat_buf_append(out, "\n", 1);
                ks_chat_render_content(in, i, (ks_chat_str){in->content[i].s + a, len}, out);
                ks_chat_buf_append(out, "\n", 1);
            }
            for (size_t j = 0; j < m->n_tool_calls; j++)
                tool_call(in, &m->tool_calls[j], out);
            ks_chat_buf_puts(out, KS_CHATML_END "\n");
            ks_chat_render_message_end(in, i, since, out);
        } else if (m->role == KS_CHAT_TOOL) {
            /* loop.previtem is undefined for the first of loop_messages: no opener then */
            if (i > first && msgs[i - 1].role != KS_CHAT_TOOL)
                ks_chat_buf_puts(out, KS_CHATML_START "user\n");
            ks_chat_buf_puts(out, "<tool_response>\n");
            ks_chat_render_content(in, i, in->content[i], out);
            ks_chat_buf_puts(out, "\n</tool_response>\n");
            if (i + 1 == n || msgs[i + 1].role != KS_CHAT_TOOL)
                ks_chat_buf_puts(out, KS_CHATML_END "\n");
            ks_chat_render_message_end(in, i, since, out);
        } else {
            ks_chat_render_turn(in, i, out);
        }
    }

    /* 3. generation prompt */
    if (in->add_generation_prompt)
        ks_chat_buf_puts(out, KS_CHATML_START "assistant\n");
    return KS_OK;
}
