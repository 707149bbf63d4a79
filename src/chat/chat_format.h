/* chat_format.h — which prompt format a model speaks, and rendering a conversation in it.
 *
 * Owns: the list of supported formats, recognising one from a GGUF's
 * `tokenizer.chat_template` (by markers the family's templates carry, not by hashing
 * the whole text), names for `--chat-template NAME`, and ks_chat_render, the one entry
 * point to the per-family renderers (render_*.c).
 * Does not own: the conversation model (chat.h), tokens, tool-call parsing.
 *
 * Contract of every renderer:
 *   - byte-identical to the family's official Jinja template as Hugging Face's
 *     apply_chat_template renders it (trim_blocks, lstrip_blocks, tojson without ASCII
 *     escaping or key sorting), given the same conversation in the template's terms;
 *   - canonical: the same conversation always gives the same bytes;
 *   - append-only wherever the template allows it: a conversation extended by a turn
 *     renders as an extension of its earlier rendering (where a template rewrites the
 *     past, e.g. Qwen3 dropping earlier turns' reasoning after a new user query, the
 *     template wins). */
#ifndef KS_CHAT_FORMAT_H
#define KS_CHAT_FORMAT_H

#include "chat/chat.h"

typedef enum {
    KS_CHAT_FORMAT_NONE = 0,
    KS_CHAT_FORMAT_QWEN3 = 1,       /* Qwen3: Hermes JSON tool calls, <think> reasoning */
    KS_CHAT_FORMAT_QWEN3_CODER = 2, /* Qwen3-Coder: <function=...><parameter=...> XML */
    KS_CHAT_FORMAT_CHATML = 3,      /* plain ChatML turns, no tools */
} ks_chat_format;

/* How the format writes tool calls in the model's output. */
typedef enum {
    KS_TOOLCALL_SYNTAX_NONE = 0,
    KS_TOOLCALL_SYNTAX_HERMES_JSON = 1, /* <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> */
    KS_TOOLCALL_SYNTAX_QWEN3_XML = 2,   /* <tool_call>\n<function=N>\n<parameter=K>\nV\n</parameter>\n</function>\n</tool_call> */
} ks_toolcall_syntax;

typedef struct ks_chat_render_opts {
    /* Optional: the tool-call memory. When it knows an assistant call's id, that call is
     * emitted as the exact text the model sampled (see ks_toolcall_text_fn). */
    ks_toolcall_text_fn toolcall_text;
    void *toolcall_ctx;
} ks_chat_render_opts;

/* "qwen3", "qwen3-coder", "chatml"; "none" for NONE. */
const char *ks_chat_format_name(ks_chat_format f);
/* The supported names, comma-separated, for messages. */
const char *ks_chat_format_names(void);
ks_toolcall_syntax ks_chat_format_toolcall_syntax(ks_chat_format f);

/* By name (case-insensitive; "qwen3_coder" and "qwen3coder" also accepted). Unknown:
 * KS_ERR_INVALID with a message listing the supported names. */
ks_status ks_chat_format_by_name(const char *name, ks_chat_format *out, ks_err *err);

/* From a chat template's text. A template none of the supported families matches:
 * KS_ERR_UNSUPPORTED with a message naming the supported formats and the override. */
ks_status ks_chat_format_detect(const char *tmpl, size_t len, ks_chat_format *out, ks_err *err);

/* Renders req into prompt text: *out is malloc'd (caller frees), NUL-terminated, *len
 * bytes. opts may be NULL. A conversation the format cannot express (no messages, tools
 * for a format without tools, continue_final without a final assistant message) is
 * KS_ERR_INVALID / KS_ERR_UNSUPPORTED with a message naming the field. */
ks_status ks_chat_render(ks_chat_format f, const ks_chat_request *req,
                         const ks_chat_render_opts *opts, char **out, size_t *len, ks_err *err);

#endif
