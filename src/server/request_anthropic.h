/* request_anthropic.h — an Anthropic Messages API request body (POST /v1/messages,
 * /v1/messages/count_tokens) into the conversation model (chat/chat.h). */
#ifndef KS_REQUEST_ANTHROPIC_H
#define KS_REQUEST_ANTHROPIC_H

#include "chat/chat.h"

/* The line Claude Code puts in its system prompt, different on every request (a hash of
 * the request); it carries nothing for the model and would defeat prefix caching. */
#define KS_ANTHROPIC_BILLING_PREFIX "x-anthropic-billing-header:"

/* Builds *out (caller destroys) from a parsed body. Everything Claude Code sends is
 * accepted; unknown fields are ignored; content the model cannot take (images,
 * documents, server tools) and malformed fields are KS_ERR_INVALID with a message naming
 * the field ("messages[2].content[0]: ..."). *out is written only on success. */
ks_status ks_request_anthropic_parse(const json_t *body, ks_chat_request **out, ks_err *err);

#endif
