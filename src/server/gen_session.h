/* gen_session.h — one chat completion from request to output events, shared by the
 * Anthropic and OpenAI adapters.
 *
 *   ks_chat_request -> render (chat format) -> tokenize -> engine
 *   engine tokens -> detokenize (UTF-8 safe) -> stop strings -> <think> split
 *                 -> tool-call parser -> output events (text, thinking, tool call)
 *
 * The adapters turn output events into their wire format (SSE or one JSON body). A
 * session is driven by one thread (the connection's): ks_gen_session_pump() waits for the
 * engine up to a timeout, so a streaming adapter can send keep-alive pings meanwhile. */
#ifndef KS_GEN_SESSION_H
#define KS_GEN_SESSION_H

#include "chat/chat.h"
#include "chat/chat_format.h"
#include "chat/toolcall_memory.h"
#include "chat/toolcall_parser.h"
#include "core/status.h"
#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

/* What a session needs from the server, shared by all sessions (read-only). */
typedef struct ks_gen_context {
    ks_engine *engine;
    const ks_tokenizer *tokenizer;
    ks_chat_format format;
    ks_toolcall_memory *toolcall_memory; /* may be NULL */
    int max_output;                      /* cap on max_tokens */
    int default_max_output;              /* when the client gives none (OpenAI) */
    /* Tests only: outputs to emit instead of sampling, one per request in order (then
     * sampling resumes). NULL in normal operation. */
    struct ks_forced_outputs *forced;
    int64_t request_timeout_ms;          /* per-request deadline from submission; 0: none */
} ks_gen_context;

/* Teacher forcing for tests (kvserve serve --test-forced-outputs FILE): a file of JSON
 * strings, one per line; each request takes the next one as its output. */
typedef struct ks_forced_outputs ks_forced_outputs;
ks_status ks_forced_outputs_load(ks_forced_outputs **out, const char *path, ks_err *err);
void ks_forced_outputs_destroy(ks_forced_outputs *f);
/* The next text (owned by f), or NULL when all were used. Thread-safe. */
const char *ks_forced_outputs_next(ks_forced_outputs *f);

typedef enum { KS_OUT_TEXT, KS_OUT_THINKING, KS_OUT_TOOL_CALL } ks_out_type;

typedef struct ks_out_event {
    ks_out_type type;
    const char *data;           /* TEXT, THINKING: UTF-8 bytes */
    size_t len;
    const ks_toolcall *call;    /* TOOL_CALL: a complete, well-formed call */
} ks_out_event;

typedef void (*ks_out_sink)(void *user, const ks_out_event *ev);

typedef enum {
    KS_FINISH_NONE = 0,
    KS_FINISH_END_TURN,      /* the model ended its turn */
    KS_FINISH_MAX_TOKENS,    /* max_tokens (or the context) ran out */
    KS_FINISH_STOP_SEQUENCE, /* a client stop string matched */
    KS_FINISH_TOOL_USE,      /* the turn ended with tool calls */
    KS_FINISH_CANCELLED,
    KS_FINISH_TIMEOUT,       /* the request's deadline passed (error says so) */
    KS_FINISH_ERROR,
} ks_finish_reason;

typedef struct ks_gen_session ks_gen_session;

/* Renders, tokenizes and submits. Errors: KS_ERR_INVALID (bad request: message says
 * why), KS_ERR_FULL (overloaded), others (internal). */
ks_status ks_gen_session_start(ks_gen_session **out, const ks_gen_context *ctx, const ks_chat_request *req,
                               uint64_t id_seed, ks_err *err);

/* Renders and tokenizes only: the exact prompt token count (count_tokens). */
ks_status ks_gen_count_tokens(const ks_gen_context *ctx, const ks_chat_request *req, int *n_tokens,
                              ks_err *err);

/* Processes engine events for up to timeout_ms, emitting output events to sink.
 * Returns 1 when the completion has ended (see finish_reason), 0 on timeout. */
int ks_gen_session_pump(ks_gen_session *s, int timeout_ms, ks_out_sink sink, void *user);

/* After PREFILLED (or the end): the request's token accounting. */
bool ks_gen_session_prefilled(const ks_gen_session *s);
const ks_kv_usage *ks_gen_session_usage(const ks_gen_session *s);
int ks_gen_session_output_tokens(const ks_gen_session *s);
ks_finish_reason ks_gen_session_finish_reason(const ks_gen_session *s);
const char *ks_gen_session_stop_sequence(const ks_gen_session *s); /* STOP_SEQUENCE */
const char *ks_gen_session_error(const ks_gen_session *s); /* ERROR, TIMEOUT */
const ks_gen_timings *ks_gen_session_timings(const ks_gen_session *s);
int ks_gen_session_prompt_tokens(const ks_gen_session *s);
void ks_gen_session_progress(ks_gen_session *s, ks_gen_progress *out);

/* Cancels the generation (client gone) and frees everything. */
void ks_gen_session_destroy(ks_gen_session *s);

#endif
