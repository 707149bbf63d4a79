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
 *     template wins);
 *   - it reports where the client's bytes went (ks_chat_spans): the tokenizer matches
 *     control tokens (<|im_end|>) only in the template's markup, never in text a client
 *     sent, and the client's cache_control marks become offsets in the prompt. */
#ifndef KS_CHAT_FORMAT_H
#define KS_CHAT_FORMAT_H

#include "chat/chat.h"
#include "tokenizer/span.h"

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

/* Where a rendered prompt's bytes came from. */
typedef struct ks_chat_spans {
    /* Bytes the client supplied, rendered verbatim or serialised (tojson, Python str()):
     * message contents and reasoning, tool results, tool names, descriptions and
     * schemas, tool calls' names and arguments, and calls recalled from the tool-call
     * memory (text the model wrote). Ascending, disjoint, non-empty, touching ranges
     * merged. Every other byte is the template's markup. */
    ks_span *client;
    size_t n_client;
    /* Byte offsets where something the client marked with cache_control ends: a text
     * block after its last byte; a tool declaration after its last byte; a message
     * whose mark no rendered text block accounts for (the mark was on a tool call or a
     * tool result, or the template trims the marked block's end away) after the last
     * byte the message rendered. Ascending, distinct, in (0, len]. */
    size_t *breakpoints;
    size_t n_breakpoints;
} ks_chat_spans;

void ks_chat_spans_deinit(ks_chat_spans *s); /* frees the arrays; NULL ok */

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
/* ks_chat_render, also filling *spans (caller storage; release with
 * ks_chat_spans_deinit) on success. The bytes are the same. */
ks_status ks_chat_render_spans(ks_chat_format f, const ks_chat_request *req, const ks_chat_render_opts *opts,
                               char **out, size_t *len, ks_chat_spans *spans, ks_err *err);

#endif
