/* request_common.h — what the Anthropic and OpenAI request parsers share: typed field
 * access over jansson values with errors that name the field by its JSON path
 * ("messages[3].content[1].text: expected a string"), and telling the two APIs' bodies
 * apart for tools that accept either (`kvserve render`).
 *
 * Owns: the path builder, the getters, API detection.
 * Does not own: any API's field names beyond detection (request_anthropic.c,
 * request_openai.c).
 *
 * Getter convention: an absent key (or JSON null) leaves *out untouched and returns
 * KS_OK, unless `required`; a present value of the wrong type is KS_ERR_INVALID. The
 * returned pointers are borrowed from the JSON value. */
#ifndef KS_REQUEST_COMMON_H
#define KS_REQUEST_COMMON_H

#include "chat/chat.h"
#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Bytes of a field path in messages: room for a few nested keys and indices. */
#define KS_JSON_PATH_BYTES 160

typedef struct ks_json_path {
    char s[KS_JSON_PATH_BYTES];
    size_t len;
} ks_json_path;

void ks_json_path_init(ks_json_path *p);
/* Appends ".key" (or "key" at the root) / "[i]"; returns the length to restore to. */
size_t ks_json_path_key(ks_json_path *p, const char *key);
size_t ks_json_path_index(ks_json_path *p, size_t i);
void ks_json_path_restore(ks_json_path *p, size_t mark);

/* KS_ERR_INVALID with "PATH: message"; the path as it stands names the field. */
ks_status ks_req_error(ks_err *err, const ks_json_path *p, const char *fmt, ...) KS_PRINTF(3, 4);

ks_status ks_req_string(const json_t *obj, const char *key, bool required, ks_json_path *p,
                        const char **out, size_t *len, ks_err *err);
ks_status ks_req_bool(const json_t *obj, const char *key, ks_json_path *p, bool *out, ks_err *err);
/* A finite number (integer or real). */
ks_status ks_req_number(const json_t *obj, const char *key, ks_json_path *p, bool *given,
                        double *out, ks_err *err);
/* An integer in [min, max]; a real with an integral value is accepted. */
ks_status ks_req_int(const json_t *obj, const char *key, int64_t min, int64_t max,
                     ks_json_path *p, bool *given, int64_t *out, ks_err *err);
/* An array / object; *out NULL when absent. */
ks_status ks_req_array(const json_t *obj, const char *key, bool required, ks_json_path *p,
                       json_t **out, ks_err *err);
ks_status ks_req_object(const json_t *obj, const char *key, bool required, ks_json_path *p,
                        json_t **out, ks_err *err);

/* ---- a parse in steps --------------------------------------------------------------- */

typedef struct ks_req_parser {
    ks_chat_request *req; /* being filled */
    ks_json_path path;    /* where the parse is, for messages */
    ks_err *err;
} ks_req_parser;

/* One top-level part of a body (messages, tools, sampling, ...). */
typedef ks_status (*ks_req_step_fn)(ks_req_parser *ps, const json_t *body);
/* One element of an array, at index i; the path names the element. */
typedef ks_status (*ks_req_item_fn)(ks_req_parser *ps, const json_t *item, size_t i);

/* Creates a request and runs the steps over body (which must be an object) in order;
 * *out gets the request when all succeed, else it is destroyed. */
ks_status ks_req_parse_steps(const json_t *body, const ks_req_step_fn *steps, size_t n_steps,
                             ks_chat_request **out, ks_err *err);

/* KS_ERR_NOMEM with the message all parsers use. */
ks_status ks_req_nomem(ks_err *err);

/* fn on every element of arr with the path at "key[i]" (key NULL: the path already
 * names the array); stops at the first error. */
ks_status ks_req_each(ks_req_parser *ps, const json_t *arr, const char *key, ks_req_item_fn fn);

/* A role name an API accepts and the role it maps to. */
typedef struct ks_req_role_name {
    const char *name;
    ks_chat_role role;
} ks_req_role_name;

/* m must be a message object whose "role" is one of the n names; *out gets its role.
 * Otherwise KS_ERR_INVALID naming the field and the accepted roles. */
ks_status ks_req_message_role(ks_req_parser *ps, const json_t *m, const ks_req_role_name *names,
                              size_t n, ks_chat_role *out);

/* body[key] as stop strings: a string or an array of strings (absent: none). */
ks_status ks_req_stop_strings(ks_req_parser *ps, const json_t *body, const char *key);

/* ---- text content shared by both APIs -------------------------------------------------
 * Both write text as a string or as blocks {"type": "text", "text": "..."} (Anthropic's
 * may carry cache_control). */

/* How a text reaches its message; NULL adds it as a part unchanged. */
typedef ks_status (*ks_req_add_text_fn)(void *ctx, ks_chat_message *msg, const char *text,
                                        size_t len, bool cache_breakpoint, ks_err *err);

/* KS_ERR_INVALID for a content block of a type the caller does not take here; images,
 * documents, audio and files say the model reads text only. */
ks_status ks_req_unsupported_block(ks_err *err, const ks_json_path *p, const char *type);

/* The block's "type" (required); the block must be an object. */
ks_status ks_req_block_type(const json_t *block, ks_json_path *p, const char **type, ks_err *err);

/* One text block's text into msg. */
ks_status ks_req_text_block(const json_t *block, ks_chat_message *msg, ks_req_add_text_fn add,
                            void *ctx, ks_json_path *p, ks_err *err);

/* Content that may hold only text: absent/null (nothing), a string, or text blocks. The
 * path names the content field itself. */
ks_status ks_req_text_content(const json_t *content, ks_chat_message *msg, ks_req_add_text_fn add,
                              void *ctx, ks_json_path *p, ks_err *err);

typedef enum {
    KS_API_ANTHROPIC = 1, /* Messages API */
    KS_API_OPENAI = 2,    /* Chat Completions API */
} ks_api;

/* Which API a body is shaped for, from fields only one of them has. A body both could
 * send (plain user/assistant text turns) is reported as Anthropic; either parser gives
 * the same conversation for it. */
ks_api ks_request_detect_api(const json_t *body);

#endif
