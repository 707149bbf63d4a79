/* render.h — the interface between ks_chat_render (chat_format.c) and the per-family
 * renderers (render_*.c). Internal to src/chat.
 *
 * chat_format.c validates the request, joins each message's text parts once and decides
 * whether a generation prompt follows; a renderer only writes its template's bytes, and
 * marks what it writes from the request as client text (ks_chat_buf_client and
 * ks_chat_buf_mark_client, or the helpers below) and where marked blocks, messages and
 * tool declarations end (ks_chat_buf_mark_break). */
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

/* If the tool-call memory knows this call, appends its sampled text (as client text:
 * the model wrote it) and returns true. */
bool ks_chat_render_recalled_call(const ks_chat_render_in *in, const ks_chat_tool_call *call,
                                  ks_chat_buf *out);

/* Appends piece, a range of message i's joined content (piece.s points into
 * in->content[i]), as client text. A marked text block of the message whose last byte
 * is inside the piece gets its breakpoint there. */
void ks_chat_render_content(const ks_chat_render_in *in, size_t i, ks_chat_str piece, ks_chat_buf *out);

/* To call once message i's bytes are written; since is out->n_breaks from before they
 * were. A marked message whose marked text blocks did not all get their breakpoint
 * (chat_format.h says when) gets one at the end of what it wrote. */
void ks_chat_render_message_end(const ks_chat_render_in *in, size_t i, size_t since, ks_chat_buf *out);

/* Appends message i as "<|im_start|>ROLE\nTEXT<|im_end|>\n", the turn all families
 * share (ROLE its role's name, TEXT its content), with its marks. */
void ks_chat_render_turn(const ks_chat_render_in *in, size_t i, ks_chat_buf *out);

/* After a tool's declaration: its breakpoint, when the client marked it. */
void ks_chat_render_tool_end(const ks_chat_tool *t, ks_chat_buf *out);

#endif
