/* engine.h — the engine thread: owns model state, KV cache and the running sequences, and
 * serves generation requests submitted from other threads with continuous batching.
 *
 * Each step runs one forward pass over a batch that mixes the next token of every
 * decoding sequence with a bounded chunk of prompt tokens (prefill), sized from measured
 * step times so that a long prompt never stalls the streams of others for long and a
 * newcomer never waits long for the step in progress (see step_budget.h). A request's
 * prompt first takes every cached block of its prefix (RAM or disk); only the rest is
 * computed.
 *
 * Threads: ks_engine_submit / ks_gen_* are called from any thread (HTTP handlers); all
 * model and cache state belongs to the engine thread. A request's events (tokens, the
 * end) reach its client through the ks_gen handle's own queue.
 *
 * Does not own: text (tokenizing, detokenizing, stop strings, tool calls: the client
 * side does them and cancels the request when it has what it needs). */
#ifndef KS_ENGINE_H
#define KS_ENGINE_H

#include "core/status.h"
#include "engine/step_budget.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "sample/sampler.h"

#include <stdbool.h>
#include <stdint.h>

/* Most prompt tokens per step unless told: a step's time is what bounds it once the
 * engine has measured some (step_budget.h). */
#define KS_ENGINE_DEFAULT_CHUNK 512

typedef struct ks_engine_params {
    int n_threads;        /* compute threads; <= 0: physical cores */
    int n_ctx;            /* most tokens in one sequence; <= 0: min(model's, 32768) */
    int n_parallel;       /* most sequences running at once; <= 0: 4 */
    int prefill_chunk;    /* most prompt tokens per step; <= 0: KS_ENGINE_DEFAULT_CHUNK */
    /* A step with prompt tokens lasts about this many decode steps (measured;
     * step_budget.h); 0: KS_STEP_BUDGET_DEFAULT; < 0: off (prefill_chunk tokens every
     * step). */
    int step_budget;
    int max_queue;        /* requests waiting beyond the running ones; <= 0: 64 */
    ks_kv_cache_params kv;
    /* Tests only: the time each step is taken to have lasted (ms), computed from its
     * shape in place of the clock's reading, so that budgets are deterministic. Called
     * on the engine thread after each step. NULL: the clock. */
    double (*step_ms)(void *ctx, const ks_step_shape *step);
    void *step_ms_ctx;
} ks_engine_params;

void ks_engine_params_default(ks_engine_params *p);

typedef enum {
    KS_STOP_NONE = 0,
    KS_STOP_EOG,          /* the model ended its turn */
    KS_STOP_LENGTH,       /* max_tokens reached */
    KS_STOP_CONTEXT,      /* the sequence filled the context */
    KS_STOP_CANCELLED,    /* the client cancelled (disconnect, stop string, tool call done) */
    KS_STOP_TIMEOUT,      /* the request's deadline passed (ks_gen_request.timeout_ms) */
    KS_STOP_ERROR,        /* error says why (also: the server shut down with it running) */
} ks_stop_reason;

typedef struct ks_gen_request {
    const int32_t *prompt;       /* copied at submit */
    int n_prompt;
    int max_tokens;              /* > 0 */
    ks_sampler_params sampling;
    bool ignore_eog;
    const int32_t *breakpoints;  /* token positions that end a client cache breakpoint */
    int n_breakpoints;
    int n_top_logprobs;          /* alternatives reported per token (0..20) */
    /* Deadline in ms from submission (queueing, prefill and decoding all count); when it
     * passes, the engine ends the request at its next step with KS_STOP_TIMEOUT (tokens
     * already sent stay sent, its blocks stay cached). 0: none. */
    int64_t timeout_ms;
    /* Teacher forcing, for tests only: when set, these tokens are emitted in order in
     * place of sampled ones (each still costs its forward step), then the turn ends. */
    const int32_t *forced;
    int n_forced;
} ks_gen_request;

typedef enum { KS_GEN_EV_PREFILLED, KS_GEN_EV_TOKEN, KS_GEN_EV_DONE } ks_gen_event_type;

typedef struct ks_gen_timings {
    double queued_ms;            /* submit -> admitted */
    double prefill_ms;           /* admitted -> first token sampled */
    double decode_ms;            /* first token -> end */
} ks_gen_timings;

typedef struct ks_gen_event {
    ks_gen_event_type type;
    int32_t token;               /* TOKEN */
    ks_token_logprobs logprobs;  /* TOKEN, when asked for */
    ks_stop_reason reason;       /* DONE */
    ks_kv_usage usage;           /* PREFILLED and DONE */
    int n_generated;             /* DONE */
    ks_gen_timings timings;      /* DONE */
    char error[256];             /* DONE with KS_STOP_ERROR */
} ks_gen_event;

/* Prefill progress of a request, for logs and keep-alive pings. */
typedef struct ks_gen_progress {
    int n_prompt, n_done;        /* prompt tokens, of which in the KV (cached or computed) */
    bool started;
} ks_gen_progress;

typedef struct ks_engine ks_engine;
typedef struct ks_gen ks_gen;

/* Loads nothing: the model is the caller's (it must outlive the engine). Starts the
 * engine thread. */
ks_status ks_engine_create(ks_engine **out, const ks_model *m, const ks_engine_params *p, ks_err *err);
/* Stops the engine thread: everything still queued or running ends with KS_STOP_ERROR
 * ("the server is shutting down"), later submissions get KS_ERR_FULL, and the disk tier's
 * queued writes are flushed. Handles stay valid; stats can still be read. Idempotent. */
void ks_engine_shutdown(ks_engine *e);
/* Shuts down (if not yet) and frees the engine. */
void ks_engine_destroy(ks_engine *e);

/* Queues a request. KS_ERR_FULL when the wait queue is full or the engine is shut down
 * (the API answers 529/503 at once), KS_ERR_INVALID for a prompt that cannot fit the
 * context, bad sampling parameters or a negative timeout. *out is the client's handle:
 * release it with ks_gen_release(). */
ks_status ks_engine_submit(ks_engine *e, const ks_gen_request *req, ks_gen **out, ks_err *err);

/* Next event of a request: 1 with *ev filled, 0 if timeout_ms passed first (< 0: wait
 * forever). After a DONE event there are no more. */
int ks_gen_next(ks_gen *g, ks_gen_event *ev, int timeout_ms);
/* Asks the engine to stop the request at its next step (idempotent; its blocks stay
 * cached). A DONE event with KS_STOP_CANCELLED follows unless it already ended. */
void ks_gen_cancel(ks_gen *g);
void ks_gen_progress_get(ks_gen *g, ks_gen_progress *out);
void ks_gen_release(ks_gen *g);

typedef struct ks_engine_stats {
    uint64_t requests, requests_rejected, requests_cancelled, requests_timed_out;
    uint64_t prompt_tokens, cached_ram_tokens, cached_disk_tokens, computed_tokens, generated_tokens;
    uint64_t steps, preemptions;
    double prefill_ms, decode_ms; /* summed over finished requests: speed = tokens / time */
    int running, waiting;
    double busy_ms;
    ks_kv_cache_stats kv;
} ks_engine_stats;

void ks_engine_stats_get(ks_engine *e, ks_engine_stats *out);
int ks_engine_n_ctx(const ks_engine *e);

#endif
