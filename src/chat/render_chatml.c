/* render_chatml.c — plain ChatML prompts ("<|im_start|>role\ntext<|im_end|>\n" per turn and
 * "<|im_start|>assistant\n" to open the reply), for models whose template is nothing
 * more than that. Without a tool-call syntax it refuses tools, tool calls and tool
 * results instead of inventing a format the model was never trained on. */
#include "chat/render.h"

ks_status ks_chat_render_chatml(const ks_chat_render_in *in, ks_chat_buf *out, ks_err *err) {
    const ks_chat_request *req = in->req;
    if (req->n_tools)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "tools: the chatml format has no tool calling");
    for (size_t i = 0; i < req->n_messages; i++) {
        const ks_chat_message *m = &req->messages[i];
        if (m->role == KS_CHAT_TOOL || m->n_tool_calls)
            return KS_ERRF(err, KS_ERR_UNSUPPORTED, "messages[%zu]: the chatml format has no "
                           "tool calls or tool results", i);
        ks_chat_render_turn(in, i, out);
    }
    if (in->add_generation_prompt)
        ks_chat_buf_puts(out, KS_CHATML_START "assistant\n");
    return KS_OK;
}
