/* render.h — the interface between ks_chat_render (chat_format.c) and the per-family
 * renderers (render_*.c). Internal to src/chat.
 *
 * chat_format.c validates the request, joins each message's text parts once and decides
 * whether a generation prompt follows; a renderer only writes its template's bytes. */
#ifndef KS_CHAT_RENDER_H
#define KS_CHAT_RENDER_H

#include "chat/chat_format.h"
#include "chat/chat_text.h"

/* A borrowed byte range. */
typedef struct ks_chat_str {
    const char *s;
    size_t len;
} ks_chat_str;

typedef struct ks_chat_render_in {
    const ks_chat_request *req;
    const ks_chat_str *content;      /* per message: its parts joined (chat.h) */
    const ks_chat_render_opts *opts; /* never NULL */
    bool add_generation_prompt;
} ks_chat_render_in;

/* The ChatML frame every supported family shares. */
#define KS_CHATML_START "<|im_start|>"
#define KS_CHATML_END "<|im_end|>"

ks_status ks_chat_render_qwen3(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err);
ks_status ks_chat_render_qwen3_coder(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err);
ks_status ks_chat_render_chatml(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err);

/* If the tool-call memory knows this call, appends its sampled text and returns true. */
bool ks_chat_render_recalled_call(const ks_chat_render_in *in, const ks_chat_tool_call *call,
                                  ks_chat_buf *out);

/* Appends "<|im_start|>ROLE\nTEXT<|im_end|>\n", the turn all families share. */
void ks_chat_render_turn(ks_chat_buf *out, const char *role, ks_chat_str text);

#endif
