/* chat_prompt.h — a conversation as the model reads it: the rendered prompt, its token
 * ids, and the token positions of the client's cache breakpoints. The one path from a
 * request to prompt tokens, for the server and for `kvserve render --tokens`.
 *
 *   ks_chat_request -> ks_chat_render_spans -> text + client spans + breakpoint offsets
 *                   -> ks_tokenize_masked   -> ids (control tokens only in the markup)
 *                                              + where each id starts in the text
 *                   -> breakpoint offsets   -> token positions
 *
 * Chat markup is made of control tokens, and the template puts them there: a client's
 * text that spells "<|im_end|>" (a user message, a source file a tool read back) is
 * text, never a turn boundary the client did not make.
 *
 * A breakpoint at byte offset o becomes the number of tokens that hold the prompt's
 * first o bytes: the index of the first token starting at or after o. A token that
 * straddles o is counted in.
 *
 * Owns: the ks_chat_prompt it fills. Does not own: rendering (chat_format.h),
 * tokenization (tokenizer.h), what the KV cache does with breakpoints (kv_cache.h). */
#ifndef KS_CHAT_PROMPT_H
#define KS_CHAT_PROMPT_H

#include "chat/chat_format.h"
#include "tokenizer/tokenizer.h"

typedef struct ks_chat_prompt {
    char *text; /* the rendered prompt, NUL-terminated, len bytes */
    size_t len;
    int32_t *tokens; /* its ids (bos/eos added as the vocabulary asks); NULL without a tokenizer */
    size_t n_tokens;
    /* Token positions p where the client's cache breakpoints fall (tokens [0, p) hold
     * the marked prefix): ascending, distinct, in (0, n_tokens]. */
    int32_t *breakpoints;
    size_t n_breakpoints;
} ks_chat_prompt;

/* Renders req in format f and, when t is not NULL, tokenizes it and places its
 * breakpoints. opts may be NULL. Errors are ks_chat_render's, KS_ERR_NOMEM, or the
 * tokenizer's (with a message). On success the caller owns *out (ks_chat_prompt_deinit). */
ks_status ks_chat_prompt_build(ks_chat_prompt *out, ks_chat_format f, const ks_chat_request *req,
                               const ks_chat_render_opts *opts, const ks_tokenizer *t, ks_err *err);
void ks_chat_prompt_deinit(ks_chat_prompt *p); /* NULL ok */

#endif
