/* request_openai.h — an OpenAI Chat Completions request body (POST /v1/chat/completions)
 * into the conversation model (chat/chat.h). */
#ifndef KS_REQUEST_OPENAI_H
#define KS_REQUEST_OPENAI_H

#include "chat/chat.h"

/* Builds *out (caller destroys) from a parsed body. Unknown fields are ignored; content
 * the model cannot take (images, audio, files) and malformed fields are KS_ERR_INVALID
 * with a message naming the field ("messages[1].tool_calls[0].function.arguments: ...").
 * *out is written only on success. */
ks_status ks_request_openai_parse(const json_t *body, ks_chat_request **out, ks_err *err);

#endif
