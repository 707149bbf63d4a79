/* chat.h — the conversation model: what an API adapter fills from a request body and
 * what a prompt format renders into the model's prompt text.
 *
 * Owns: ks_chat_request and everything hanging from it (messages, their text parts,
 * assistant tool calls, tool results, tool declarations, tool choice, sampling fields),
 * the builders that fill it and the one destroy that frees it; the callback type through
 * which a renderer asks the tool-call memory for a call's exact sampled text.
 * Does not own: JSON field names (server/request_*.c), prompt bytes (chat_format.h and
 * render_*.c), tokens.
 *
 * The model is API-neutral and template-shaped:
 *
 *   ks_chat_request
 *     messages[]          in conversation order; the API's top-level system prompt is
 *       role              messages[0] with role SYSTEM (templates read it from there)
 *       parts[]           text blocks, rendered joined by KS_CHAT_PART_SEP
 *       thinking          assistant reasoning (NULL: none was sent)
 *       tool_calls[]      assistant: id, name, arguments (a JSON object)
 *       tool_call_id      tool: the call this result answers; is_error
 *     tools[]             name, description, parameters (JSON schema object)
 *     tool_choice, thinking mode, generation prompt, sampling, stop strings
 *
 * A tool result is its own message with role TOOL, as the chat templates expect; an
 * Anthropic user turn holding tool_result blocks becomes one TOOL message per block (in
 * block order) and a USER message for the text blocks around them.
 *
 * Ownership: the request owns every string, array and JSON reference reachable from it;
 * ks_chat_request_destroy frees all of it. Pointers to messages stay valid only until
 * the next ks_chat_add_message (the array grows). Strings are NUL-terminated and also
 * carry their length (JSON strings may hold U+0000). */
#ifndef KS_CHAT_H
#define KS_CHAT_H

#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a message's text parts are joined when rendered: a content given as one string
 * and the same text as a single text block render identically; several blocks read as
 * separate lines. */
#define KS_CHAT_PART_SEP "\n"

typedef enum {
    KS_CHAT_SYSTEM = 0,
    KS_CHAT_USER = 1,
    KS_CHAT_ASSISTANT = 2,
    KS_CHAT_TOOL = 3,
} ks_chat_role;

/* One text block of a message. */
typedef struct ks_chat_part {
    char *text;            /* NUL-terminated, len bytes of UTF-8 */
    size_t len;
    bool cache_breakpoint; /* Anthropic cache_control was set on this block */
} ks_chat_part;

/* A tool call the assistant made. */
typedef struct ks_chat_tool_call {
    char *id;          /* the API's call id ("toolu_...", "call_..."); "" if none was sent */
    char *name;        /* the tool's name */
    json_t *arguments; /* a JSON object, owned reference; keys in the order received */
} ks_chat_tool_call;

typedef struct ks_chat_message {
    ks_chat_role role;
    ks_chat_part *parts; /* text content; n_parts == 0 is empty content */
    size_t n_parts;
    /* Assistant: its reasoning (Anthropic thinking blocks, OpenAI reasoning_content),
     * NULL when none was sent. A template that re-renders reasoning reads this; when it
     * is NULL, Qwen3's template looks for <think>...</think> inside the content. */
    char *thinking;
    size_t thinking_len;
    ks_chat_tool_call *tool_calls; /* assistant */
    size_t n_tool_calls;
    char *tool_call_id;    /* tool: id of the call answered; "" if none was sent */
    bool is_error;         /* tool: the client reported the call failed */
    bool cache_breakpoint; /* some block of this message carried cache_control */
} ks_chat_message;

/* A tool the model may call. */
typedef struct ks_chat_tool {
    char *name;
    char *description;     /* NULL when absent (not the same as "" to the templates) */
    json_t *parameters;    /* JSON schema object, owned reference; NULL when absent */
    bool cache_breakpoint; /* cache_control on the tool declaration */
} ks_chat_tool;

typedef enum {
    KS_TOOL_CHOICE_AUTO = 0, /* the model decides (the default) */
    KS_TOOL_CHOICE_NONE = 1, /* no tool calls */
    KS_TOOL_CHOICE_ANY = 2,  /* some tool must be called (OpenAI "required") */
    KS_TOOL_CHOICE_TOOL = 3, /* tool_choice_name must be called */
} ks_tool_choice;

/* Whether the model should reason before answering. DEFAULT leaves the template's own
 * default (Qwen3 thinks); OFF is the templates' enable_thinking=false. */
typedef enum {
    KS_THINKING_DEFAULT = 0,
    KS_THINKING_ON = 1,
    KS_THINKING_OFF = 2,
} ks_chat_thinking;

typedef struct ks_chat_request {
    ks_chat_message *messages;
    size_t n_messages;
    ks_chat_tool *tools;
    size_t n_tools;

    ks_tool_choice tool_choice;
    char *tool_choice_name;       /* KS_TOOL_CHOICE_TOOL only */
    bool parallel_tool_calls;     /* false: at most one call per turn (default true) */

    /* Prompt shape. add_generation_prompt opens the assistant turn (default true).
     * continue_final: the last message is an assistant prefix to continue (Anthropic
     * prefill); it is rendered open, without its end marker, and no generation prompt
     * follows. */
    bool add_generation_prompt;
    bool continue_final;
    ks_chat_thinking thinking;
    int64_t thinking_budget_tokens; /* Anthropic budget_tokens; -1 = not given */

    /* Sampling and limits; has_* false means "not given, use the server's default". */
    char *model;                   /* the model name the client asked for, or NULL */
    int64_t max_tokens;            /* -1 = not given */
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_seed;
    bool has_presence_penalty, has_frequency_penalty;
    double temperature, top_p, min_p, presence_penalty, frequency_penalty;
    int64_t top_k;
    uint64_t seed;
    char **stop; /* stop strings, NUL-terminated */
    size_t n_stop;
    bool stream;
    bool stream_usage; /* OpenAI stream_options.include_usage */
} ks_chat_request;

/* The exact text the model sampled for one earlier tool call, looked up by the call's
 * id in the tool-call memory. Returns NULL when the call is unknown; otherwise a view
 * of *len bytes (not NUL-terminated, valid until the render call returns) spanning the
 * call as sampled, from its opening "<tool_call>" through its closing "</tool_call>".
 * The renderer emits those bytes verbatim in place of its own serialisation of that
 * call; the separators the template writes between calls stay the template's. */
typedef const char *(*ks_toolcall_text_fn)(void *ctx, const char *call_id, size_t *len);

/* ---- building a request ---------------------------------------------------------------
 * All builders copy what they are given (JSON: they take a new reference) and return
 * KS_ERR_NOMEM on allocation failure, leaving the request destroyable. */

/* A request with no messages and the defaults above. */
ks_status ks_chat_request_create(ks_chat_request **out);
void ks_chat_request_destroy(ks_chat_request *req); /* NULL ok */

/* Appends a message with no content; *out points into req->messages (see ownership). */
ks_status ks_chat_add_message(ks_chat_request *req, ks_chat_role role, ks_chat_message **out);
ks_status ks_chat_message_add_text(ks_chat_message *msg, const char *text, size_t len,
                                   bool cache_breakpoint);
/* Appends to the message's thinking (several blocks are joined by KS_CHAT_PART_SEP). */
ks_status ks_chat_message_add_thinking(ks_chat_message *msg, const char *text, size_t len);
/* id may be NULL (stored as ""). arguments must be a JSON object. */
ks_status ks_chat_message_add_tool_call(ks_chat_message *msg, const char *id,
                                        const char *name, json_t *arguments);
ks_status ks_chat_message_set_tool_call_id(ks_chat_message *msg, const char *id);
/* description and parameters may be NULL. */
ks_status ks_chat_add_tool(ks_chat_request *req, const char *name, const char *description,
                           json_t *parameters, bool cache_breakpoint);
ks_status ks_chat_add_stop(ks_chat_request *req, const char *stop);
ks_status ks_chat_set_string(char **field, const char *value); /* model, tool_choice_name */

/* ---- reading a request ---------------------------------------------------------------- */

/* The message's text parts joined by KS_CHAT_PART_SEP into a malloc'd NUL-terminated
 * string (*len bytes), or NULL on allocation failure. */
char *ks_chat_message_text(const ks_chat_message *msg, size_t *len);

/* "system", "user", "assistant", "tool". */
const char *ks_chat_role_name(ks_chat_role role);

#endif
