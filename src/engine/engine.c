/* engine.c — the engine thread and continuous batching (see engine.h).
 *
 * Divisions: request handles (event queues shared with clients), admission (cache
 * lookup), batch building (decode tokens + prompt tokens, KV reservation with
 * preemption of the youngest sequence when the pool is full), the forward step and
 * sampling, ending sequences, the thread loop.
 *
 * Prompt tokens per step (at most --prefill-chunk) go to the prefilling sequence with the
 * fewest left (a cached follow-up's new turn, a side request), with any others that also
 * finish in the step; no partial chunk of a longer prompt rides along, so the step lasts
 * only as long as that short work and its first token is not held back by someone else's
 * 20K-token prompt. The oldest prefilling sequence, when passed over, gets the next step:
 * a long prompt goes on at least every other step, never starved.
 *
 * How many is a matter of time, not of a count (step_budget.h): a step with prompt tokens
 * is sized from the engine's measured step times to last about K decode steps, so that
 * streams keep about 1/K of their speed beside a long prefill, and a request that arrives
 * during one waits about K decode steps for the step in progress, early in the prompt or
 * 20K tokens into it, where a token costs many times more. With no stream decoding, a
 * shorter prompt than the oldest's goes whole when the chunk holds it, rather than in
 * steps that alternate with the oldest's.
 *
 * Prompts that begin alike, sent at once (an agent's subagents with one system prompt),
 * compute their common blocks once: each step a prefilling sequence takes the blocks
 * others published since (catch_up), and one whose next block an older sequence is
 * computing waits for it (follows_older).
 *
 * A sequence's tokens: [0, n_fed) have K/V in its blocks; [n_fed, n_tokens) are known
 * but not yet computed (the rest of the prompt while prefilling, or the one sampled
 * token a decode step feeds next). */
#include "engine/engine.h"

#include "core/log.h"
#include "core/threadpool.h"
#include "model/forward.h"
#include "tensor/types.h"
#include "tokenizer/vocab.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KS_ENGINE_DEFAULT_CTX 32768
#define KS_ENGINE_DEFAULT_PARALLEL 4
#define KS_ENGINE_DEFAULT_QUEUE 64

typedef enum { SEQ_WAITING, SEQ_PREFILL, SEQ_DECODE } seq_state;

struct ks_gen {
    /* shared with the client, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ks_gen_event *events;
    int ev_head, ev_len, ev_cap;
    ks_gen_progress progress;
    atomic_bool cancelled;
    atomic_int refs;
    /* engine thread only */
    ks_gen *next;
    seq_state state;
    int32_t *tokens;          /* (n_ctx) prompt, then generated tokens */
    int n_prompt, n_tokens, n_target; /* n_target: prefill goes up to here */
    int max_tokens, n_generated, n_top_logprobs;
    bool ignore_eog;
    int32_t *breakpoints;
    int n_breakpoints;
    int32_t *forced;          /* teacher forcing (tests): emitted instead of sampling */
    int n_forced;
    ks_kv_seq kv;
    ks_sampler *smp;
    ks_kv_usage usage;
    uint64_t admit_order;
    double t_submit, t_admit, t_first;
    double t_deadline;        /* now_ms() past which the request ends; 0: none */
    int64_t timeout_ms;
    double t_progress_log;    /* last prefill progress line */
    /* batch bookkeeping of the current step */
    int plan;                 /* prompt tokens this step (prefilling) */
    int batch_first, batch_n, logits_row;
};

struct ks_engine {
    const ks_model *m;
    const ks_vocab *vocab;       /* end-of-generation tokens */
    ks_vocab *vocab_owned;
    bool thread_started;
    ks_engine_params p;
    ks_threadpool *tp;
    ks_kv_cache *cache;
    ks_forward *fwd;
    pthread_t thread;
    pthread_mutex_t mu;          /* incoming, stop, stats */
    pthread_cond_t cv;
    ks_gen *incoming_head, *incoming_tail;
    int n_incoming;
    bool stop;
    /* engine thread only */
    ks_gen *waiting_head;        /* admitted in order; preempted ones go back to the front */
    ks_gen **running;
    int n_running;
    uint64_t admit_counter;
    uint64_t passed_over;        /* admit_order of the oldest prefilling sequence if the
                                  * last step left it out, else 0 */
    ks_step_budget budget;       /* prompt tokens per step, from measured step times */
    int max_batch;
    int32_t *b_tokens, *b_pos, *b_seq;
    uint8_t *b_want;
    ks_seq_view *b_views;
    float *logits;               /* (max_batch, n_vocab) */
    /* stats, under mu */
    ks_engine_stats stats;
    ks_kv_cache_stats kv_snapshot;  /* refreshed by the engine thread */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void ks_engine_params_default(ks_engine_params *p) {
    memset(p, 0, sizeof *p);
    ks_kv_cache_params_default(&p->kv);
}

int ks_engine_n_ctx(const ks_engine *e) { return e->p.n_ctx; }

/* ---- request handles ------------------------------------------------------------------ */

static void post(ks_gen *g, const ks_gen_event *ev) {
    pthread_mutex_lock(&g->mu);
    if (g->ev_len == g->ev_cap) {
        int cap = g->ev_cap ? 2 * g->ev_cap : 16;
        ks_gen_event *ne = ks_xmalloc((size_t)cap * sizeof *ne);
        for (int i = 0; i < g->ev_len; i++)
            ne[i] = g->events[(g->ev_head + i) % g->ev_cap];
        free(g->events);
        g->events = ne;
        g->ev_cap = cap;
        g->ev_head = 0;
    }
    g->events[(g->ev_head + g->ev_len) % g->ev_cap] = *ev;
    g->ev_len++;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gen_unref(ks_gen *g) {
    if (atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->events);
    free(g->tokens);
    free(g->breakpoints);
    free(g->forced);
    ks_kv_seq_deinit(&g->kv);
    ks_sampler_destroy(g->smp);
    free(g);
}

int ks_gen_next(ks_gen *g, ks_gen_event *ev, int timeout_ms) {
    pthread_mutex_lock(&g->mu);
    if (g->ev_len == 0 && timeout_ms != 0) {
        if (timeout_ms < 0) {
            while (g->ev_len == 0)
                pthread_cond_wait(&g->cv, &g->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (g->ev_len == 0)
                if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0)
                    break;
        }
    }
    int got = 0;
    if (g->ev_len > 0) {
        *ev = g->events[g->ev_head];
        g->ev_head = (g->ev_head + 1) % g->ev_cap;
        g->ev_len--;
        got = 1;
    }
    pthread_mutex_unlock(&g->mu);
    return got;
}

void ks_gen_cancel(ks_gen *g) { atomic_store(&g->cancelled, true); }

void ks_gen_progress_get(ks_gen *g, ks_gen_progress *out) {
    pthread_mutex_lock(&g->mu);
    *out = g->progress;
    pthread_mutex_unlock(&g->mu);
}

void ks_gen_release(ks_gen *g) {
    if (!g)
        return;
    ks_gen_cancel(g);
    gen_unref(g);
}

static void set_progress(ks_gen *g) {
    pthread_mutex_lock(&g->mu);
    g->progress.n_prompt = g->n_prompt;
    g->progress.n_done = KS_MIN(g->kv.n_tokens, g->n_prompt);
    g->progress.started = g->state != SEQ_WAITING;
    pthread_mutex_unlock(&g->mu);
}

/* ---- submit ------------------------------------------------------------------------------- */

ks_status ks_engine_submit(ks_engine *e, const ks_gen_request *req, ks_gen **out, ks_err *err) {
    if (req->n_prompt < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "the prompt is empty");
    if (req->n_prompt >= e->p.n_ctx)
        return KS_ERRF(err, KS_ERR_INVALID, "prompt is too long: %d tokens > %d maximum", req->n_prompt,
                       e->p.n_ctx - 1);
    if (req->max_tokens < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "max_tokens must be at least 1");
    if (req->timeout_ms < 0)
        return KS_ERRF(err, KS_ERR_INVALID, "the timeout must not be negative");
    for (int i = 0; i < req->n_prompt; i++)
        if (req->prompt[i] < 0 || req->prompt[i] >= e->m->hp.n_vocab)
            return KS_ERRF(err, KS_ERR_INVALID, "token id %d is outside the vocabulary", req->prompt[i]);
    ks_sampler_params sp = req->sampling;
    sp.n_top_logprobs = req->n_top_logprobs;
    ks_status s = ks_sampler_params_validate(&sp, err);
    if (s)
        return s;
    ks_gen *g = calloc(1, sizeof *g);
    int32_t *tokens = malloc((size_t)e->p.n_ctx * sizeof *tokens);
    if (!g || !tokens) {
        free(g);
        free(tokens);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for a request");
    }
    if ((s = ks_sampler_create(&g->smp, e->m->hp.n_vocab, &sp, err))) {
        free(g);
        free(tokens);
        return s;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    atomic_init(&g->refs, 2); /* client + engine */
    atomic_init(&g->cancelled, false);
    g->tokens = tokens;
    memcpy(tokens, req->prompt, (size_t)req->n_prompt * sizeof *tokens);
    g->n_prompt = g->n_tokens = g->n_target = req->n_prompt;
    g->max_tokens = req->max_tokens;
    g->ignore_eog = req->ignore_eog;
    g->n_top_logprobs = req->n_top_logprobs;
    if (req->n_breakpoints > 0) {
        g->breakpoints = ks_xmalloc((size_t)req->n_breakpoints * sizeof *g->breakpoints);
        memcpy(g->breakpoints, req->breakpoints, (size_t)req->n_breakpoints * sizeof *g->breakpoints);
        g->n_breakpoints = req->n_breakpoints;
    }
    if (req->n_forced > 0) {
        g->forced = ks_xmalloc((size_t)req->n_forced * sizeof *g->forced);
        memcpy(g->forced, req->forced, (size_t)req->n_forced * sizeof *g->forced);
        g->n_forced = req->n_forced;
    }
    for (int i = 0; i < req->n_prompt; i++)
        ks_sampler_accept(g->smp, req->prompt[i]);
    ks_kv_seq_init(&g->kv);
    g->state = SEQ_WAITING;
    g->t_submit = now_ms();
    g->timeout_ms = req->timeout_ms;
    g->t_deadline = req->timeout_ms > 0 ? g->t_submit + (double)req->timeout_ms : 0;
    g->progress.n_prompt = req->n_prompt;

    pthread_mutex_lock(&e->mu);
    bool stopped = e->stop;
    if (stopped || e->n_incoming + e->stats.waiting >= e->p.max_queue) {
        e->stats.requests_rejected++;
        pthread_mutex_unlock(&e->mu);
        atomic_store(&g->refs, 1);
        gen_unref(g);
        if (stopped)
            return KS_ERRF(err, KS_ERR_FULL, "the server is shutting down");
        return KS_ERRF(err, KS_ERR_FULL, "the server is overloaded: %d requests waiting", e->p.max_queue);
    }
    if (e->incoming_tail)
        e->incoming_tail->next = g;
    else
        e->incoming_head = g;
    e->incoming_tail = g;
    e->n_incoming++;
    e->stats.requests++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = g;
    return KS_OK;
}

/* ---- ending sequences ---------------------------------------------------------------------- */

static void finish(ks_engine *e, ks_gen *g, ks_stop_reason reason, const char *error) {
    ks_kv_cache_release(e->cache, &g->kv);
    double t = now_ms();
    ks_gen_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = KS_GEN_EV_DONE;
    ev.reason = reason;
    ev.usage = g->usage;
    ev.n_generated = g->n_generated;
    if (g->t_admit > 0) {
        ev.timings.queued_ms = g->t_admit - g->t_submit;
        ev.timings.prefill_ms = (g->t_first > 0 ? g->t_first : t) - g->t_admit;
        ev.timings.decode_ms = g->t_first > 0 ? t - g->t_first : 0;
    } else {
        ev.timings.queued_ms = t - g->t_submit;
    }
    if (error)
        snprintf(ev.error, sizeof ev.error, "%s", error);
    /* stats first: a client that has its DONE event sees them include it */
    pthread_mutex_lock(&e->mu);
    e->stats.generated_tokens += (uint64_t)g->n_generated;
    e->stats.prefill_ms += ev.timings.prefill_ms;
    e->stats.decode_ms += ev.timings.decode_ms;
    if (reason == KS_STOP_CANCELLED)
        e->stats.requests_cancelled++;
    else if (reason == KS_STOP_TIMEOUT)
        e->stats.requests_timed_out++;
    pthread_mutex_unlock(&e->mu);
    post(g, &ev);
    gen_unref(g);
}

static void remove_running(ks_engine *e, int i) {
    memmove(&e->running[i], &e->running[i + 1], (size_t)(e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
    pthread_mutex_lock(&e->mu);
    e->stats.running = e->n_running;
    pthread_mutex_unlock(&e->mu);
}

/* Why g should end before this step (cancelled by its client, or past its deadline), or
 * KS_STOP_NONE. */
static ks_stop_reason end_reason(const ks_gen *g, double now) {
    if (atomic_load(&g->cancelled))
        return KS_STOP_CANCELLED;
    if (g->t_deadline > 0 && now >= g->t_deadline)
        return KS_STOP_TIMEOUT;
    return KS_STOP_NONE;
}

static void end_early(ks_engine *e, ks_gen *g, ks_stop_reason why) {
    char msg[128];
    if (why == KS_STOP_TIMEOUT)
        snprintf(msg, sizeof msg, "the request did not finish within its %.3g s deadline", (double)g->timeout_ms / 1e3);
    finish(e, g, why, why == KS_STOP_TIMEOUT ? msg : NULL);
}

/* ---- admission --------------------------------------------------------------------------------- */

static void take_incoming(ks_engine *e) {
    /* called with e->mu held: move submissions to the back of the waiting list */
    ks_gen **tail = &e->waiting_head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = e->incoming_head;
    e->incoming_head = e->incoming_tail = NULL;
    e->stats.waiting += e->n_incoming;
    e->n_incoming = 0;
}

static void admit(ks_engine *e) {
    while (e->n_running < e->p.n_parallel && e->waiting_head) {
        ks_gen *g = e->waiting_head;
        e->waiting_head = g->next;
        g->next = NULL;
        pthread_mutex_lock(&e->mu);
        e->stats.waiting--;
        pthread_mutex_unlock(&e->mu);
        ks_stop_reason why = end_reason(g, now_ms());
        if (why != KS_STOP_NONE) {
            end_early(e, g, why);
            continue;
        }
        ks_err err;
        ks_err_clear(&err);
        ks_kv_usage u;
        if (ks_kv_cache_attach(e->cache, &g->kv, g->tokens, g->n_target, &u, &err) != KS_OK) {
            finish(e, g, KS_STOP_ERROR, err.msg);
            continue;
        }
        if (g->t_admit == 0) {
            /* first admission: this is the request's cache usage (a resumed, preempted
             * sequence keeps the usage of its first admission) */
            g->usage = u;
            g->usage.computed_tokens = g->n_prompt - u.cached_ram_tokens - u.cached_disk_tokens;
            g->t_admit = now_ms();
            pthread_mutex_lock(&e->mu);
            e->stats.prompt_tokens += (uint64_t)g->n_prompt;
            e->stats.cached_ram_tokens += (uint64_t)u.cached_ram_tokens;
            e->stats.cached_disk_tokens += (uint64_t)u.cached_disk_tokens;
            e->stats.computed_tokens += (uint64_t)g->usage.computed_tokens;
            pthread_mutex_unlock(&e->mu);
        }
        g->state = SEQ_PREFILL;
        g->admit_order = ++e->admit_counter;
        e->running[e->n_running++] = g;
        pthread_mutex_lock(&e->mu);
        e->stats.running = e->n_running;
        pthread_mutex_unlock(&e->mu);
        set_progress(g);
    }
}

/* Puts g back at the front of the waiting list, releasing its blocks (its published
 * prefix stays cached, so resuming it costs little). */
static void requeue(ks_engine *e, ks_gen *g) {
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == g) {
            remove_running(e, i);
            break;
        }
    if (g->state == SEQ_DECODE)
        g->n_target = g->kv.n_tokens; /* everything fed; the sampled token is fed after */
    ks_kv_cache_release(e->cache, &g->kv);
    g->state = SEQ_WAITING;
    g->plan = 0;
    g->next = e->waiting_head;
    e->waiting_head = g;
    pthread_mutex_lock(&e->mu);
    e->stats.waiting++;
    e->stats.preemptions++;
    pthread_mutex_unlock(&e->mu);
    KS_LOGD("engine: preempted a sequence at %d tokens (KV pool full)", g->n_target);
}

static void preempt_self(ks_engine *e, ks_gen *g) { requeue(e, g); }

/* Puts the youngest running sequence other than keep back at the front of the waiting
 * list, releasing its blocks (its published prefix stays cached, so resuming it costs
 * little). Returns false if there is none. */
static bool preempt_youngest(ks_engine *e, const ks_gen *keep) {
    int victim = -1;
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] != keep && (victim < 0 || e->running[i]->admit_order > e->running[victim]->admit_order))
            victim = i;
    if (victim < 0)
        return false;
    requeue(e, e->running[victim]);
    return true;
}

/* Reserves KV for g up to n tokens, preempting younger sequences if needed. */
static ks_status reserve(ks_engine *e, ks_gen *g, int n, ks_err *err) {
    for (;;) {
        ks_err_clear(err);
        ks_status s = ks_kv_cache_reserve(e->cache, &g->kv, n, err);
        if (s != KS_ERR_FULL)
            return s;
        if (!preempt_youngest(e, g))
            return s;
    }
}

/* The prefill chunk's reservation: a prefilling sequence younger than every other one
 * waits for room instead of preempting older ones; alone, it fails (its prompt does not
 * fit the pool). Returns KS_OK when the blocks are there. */
static ks_status reserve_prefill(ks_engine *e, ks_gen *pf, int n, ks_err *err) {
    for (;;) {
        ks_err_clear(err);
        ks_status s = ks_kv_cache_reserve(e->cache, &pf->kv, n, err);
        if (s != KS_ERR_FULL)
            goto done;
        bool youngest = true;
        for (int i = 0; i < e->n_running; i++)
            if (e->running[i] != pf && e->running[i]->admit_order > pf->admit_order)
                youngest = false;
        if (!youngest) {
            preempt_youngest(e, pf);
            continue;
        }
        if (e->n_running > 1) {
            /* let the older sequences finish; resume later from what is cached */
            preempt_self(e, pf);
            return KS_AGAIN;
        }
    done:
        if (s != KS_OK) {
            for (int i = 0; i < e->n_running; i++)
                if (e->running[i] == pf)
                    remove_running(e, i);
            finish(e, pf, KS_STOP_ERROR, err->msg);
        }
        return s;
    }
}

/* ---- one step ------------------------------------------------------------------------------------ */

/* Long prefills say how they are doing every few seconds: tokens done of total, speed,
 * expected time left. */
#define KS_PREFILL_LOG_INTERVAL_MS 5000.0

static void log_prefill_progress(ks_gen *g, int fed, int step_tokens) {
    double t = now_ms();
    if (g->t_progress_log == 0)
        g->t_progress_log = g->t_admit;
    if (t - g->t_progress_log < KS_PREFILL_LOG_INTERVAL_MS && fed < g->n_target)
        return;
    if (fed >= g->n_target && t - g->t_admit < KS_PREFILL_LOG_INTERVAL_MS)
        return; /* short prefills stay quiet */
    g->t_progress_log = t;
    int cached = g->usage.cached_ram_tokens + g->usage.cached_disk_tokens;
    int computed = fed - cached;
    double rate = computed / ((t - g->t_admit) / 1e3 + 1e-9);
    int left = g->n_target - fed;
    KS_LOGI("prefill %d/%d tokens (%d from cache), %.0f tok/s, %.0f s left, %d tokens this step", fed, g->n_target,
            cached, rate, rate > 0 ? left / rate : 0.0, step_tokens);
}

/* Samples g's next token from logits and posts it; ends g on end-of-generation,
 * max_tokens or a full context. Returns false if g ended. */
static bool emit_token(ks_engine *e, ks_gen *g, int ig, const float *logits) {
    ks_gen_event ev;
    memset(&ev, 0, sizeof ev);
    int32_t tok;
    if (g->forced) {
        if (g->n_generated >= g->n_forced) {
            remove_running(e, ig);
            finish(e, g, KS_STOP_EOG, NULL);
            return false;
        }
        tok = g->forced[g->n_generated];
    } else {
        tok = ks_sampler_sample(g->smp, logits, g->n_top_logprobs > 0 ? &ev.logprobs : NULL);
    }
    if (tok < 0) {
        remove_running(e, ig);
        finish(e, g, KS_STOP_ERROR, "the model produced no finite logit");
        return false;
    }
    ks_sampler_accept(g->smp, tok);
    if (g->t_first == 0)
        g->t_first = now_ms();
    if (!g->ignore_eog && !g->forced && e->vocab && ks_vocab_is_eog(e->vocab, tok)) {
        remove_running(e, ig);
        finish(e, g, KS_STOP_EOG, NULL);
        return false;
    }
    g->tokens[g->n_tokens++] = tok;
    g->n_generated++;
    ev.type = KS_GEN_EV_TOKEN;
    ev.token = tok;
    post(g, &ev);
    ks_stop_reason stop = KS_STOP_NONE;
    if (g->n_generated >= g->max_tokens)
        stop = KS_STOP_LENGTH;
    else if (g->n_tokens >= e->p.n_ctx)
        stop = KS_STOP_CONTEXT;
    if (stop != KS_STOP_NONE) {
        remove_running(e, ig);
        finish(e, g, stop, NULL);
        return false;
    }
    return true;
}

static void add_tokens(ks_engine *e, int *n, ks_gen *g, int from, int count, int view, bool want_last) {
    g->batch_first = *n;
    g->batch_n = count;
    for (int i = 0; i < count; i++) {
        e->b_tokens[*n] = g->tokens[from + i];
        e->b_pos[*n] = from + i;
        e->b_seq[*n] = view;
        e->b_want[*n] = want_last && i == count - 1;
        (*n)++;
    }
}

/* Ends running and waiting requests that were cancelled or ran out of time: a waiting one
 * frees its queue slot at once instead of when it would have been admitted. */
static void drop_ended(ks_engine *e) {
    double now = now_ms();
    for (int i = 0; i < e->n_running;) {
        ks_gen *g = e->running[i];
        ks_stop_reason why = end_reason(g, now);
        if (why != KS_STOP_NONE) {
            remove_running(e, i);
            end_early(e, g, why);
        } else {
            i++;
        }
    }
    for (ks_gen **link = &e->waiting_head; *link;) {
        ks_gen *g = *link;
        ks_stop_reason why = end_reason(g, now);
        if (why == KS_STOP_NONE) {
            link = &g->next;
            continue;
        }
        *link = g->next;
        g->next = NULL;
        pthread_mutex_lock(&e->mu);
        e->stats.waiting--;
        pthread_mutex_unlock(&e->mu);
        end_early(e, g, why);
    }
}

/* The most of g's prompt this step can take, at most max_tokens, with planned_work in
 * the step already. */
static int fit_prompt(const ks_engine *e, const ks_gen *g, double planned_work, int max_tokens, bool with_decode) {
    int n = KS_MIN(g->n_target - g->kv.n_tokens, max_tokens);
    return ks_step_budget_fit(&e->budget, planned_work, with_decode, g->kv.n_tokens, n);
}

/* Prompts that begin alike (an agent's subagents, sent at once with one system prompt)
 * compute their common blocks once: a prefilling sequence first takes the blocks others
 * published since its last step (catch_up), and one whose next block an older sequence
 * is computing right now, over the same prefix, waits for it (follows_older) instead of
 * computing it beside it. Their decode steps then read one copy of the prefix too
 * (model/attention.c). */
static void catch_up(ks_engine *e, ks_gen *g) {
    const int taken = ks_kv_cache_extend(e->cache, &g->kv, g->tokens, g->n_target);
    if (taken == 0 || g->n_generated > 0) /* a resumed sequence keeps its first usage */
        return;
    g->usage.cached_ram_tokens += taken;
    g->usage.computed_tokens -= taken;
    pthread_mutex_lock(&e->mu);
    e->stats.cached_ram_tokens += (uint64_t)taken;
    e->stats.computed_tokens -= (uint64_t)taken;
    pthread_mutex_unlock(&e->mu);
    set_progress(g);
}

static bool follows_older(const ks_engine *e, const ks_gen *g) {
    for (int i = 0; i < e->n_running; i++) {
        const ks_gen *l = e->running[i];
        if (l != g && l->state == SEQ_PREFILL && l->admit_order < g->admit_order &&
            ks_kv_cache_same_next_block(e->cache, &l->kv, l->tokens, l->n_target, &g->kv, g->tokens, g->n_target))
            return true;
    }
    return false;
}

/* Chooses this step's prompt tokens (g->plan of each prefilling sequence; see the top of
 * the file) and reserves their KV. */
static void plan_prompt_tokens(ks_engine *e) {
    int n_decode = 0;
    for (int i = 0; i < e->n_running; i++) {
        e->running[i]->plan = 0;
        n_decode += e->running[i]->state == SEQ_DECODE;
    }
    int tokens = KS_MIN(e->p.prefill_chunk, e->max_batch - n_decode);
    bool with_decode = n_decode > 0;
    if (with_decode && ks_step_budget_wants_decode_step(&e->budget))
        return; /* a step of decode tokens only, to measure one (step_budget.h) */
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i]->state == SEQ_PREFILL)
            catch_up(e, e->running[i]);
    /* the prefilling sequences, fewest prompt tokens left first, and the oldest of them
     * (never one that waits for an older one's block) */
    ks_gen *order[256], *oldest = NULL;
    int n_pf = 0;
    for (int i = 0; i < e->n_running; i++) {
        ks_gen *g = e->running[i];
        if (g->state != SEQ_PREFILL || follows_older(e, g))
            continue;
        if (!oldest || g->admit_order < oldest->admit_order)
            oldest = g;
        int rest = g->n_target - g->kv.n_tokens, k = n_pf++;
        while (k > 0 && order[k - 1]->n_target - order[k - 1]->kv.n_tokens > rest) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = g;
    }
    if (n_pf == 0) {
        e->passed_over = 0;
        return;
    }
    ks_gen *planned[256];
    int n_planned = 0;
    if (oldest->admit_order == e->passed_over) {
        /* the oldest's turn */
        oldest->plan = fit_prompt(e, oldest, 0, tokens, with_decode);
        planned[n_planned++] = oldest;
    } else {
        /* every prompt that finishes in the step, shortest first; with no stream to
         * keep going, the shortest (not the oldest) goes whole if the chunk holds it:
         * cut to the budget, its steps would alternate with the oldest's, and it would
         * wait for those too */
        double work = 0;
        for (int k = 0; k < n_pf; k++) {
            ks_gen *g = order[k];
            int rest = g->n_target - g->kv.n_tokens;
            bool whole = k == 0 && !with_decode && rest <= tokens && g != oldest;
            if (rest > tokens || (!whole && fit_prompt(e, g, work, rest, with_decode) < rest))
                break;
            g->plan = rest;
            tokens -= rest;
            work += ks_step_budget_work(&e->budget, g->kv.n_tokens, rest);
            planned[n_planned++] = g;
        }
        if (n_planned == 0) {
            /* none does: one chunk of the shortest */
            order[0]->plan = fit_prompt(e, order[0], 0, tokens, with_decode);
            planned[n_planned++] = order[0];
        }
    }
    e->passed_over = oldest->plan == 0 ? oldest->admit_order : 0;
    /* A reservation that fails ends its sequence with an error or sends it back to wait
     * for room; one that succeeds may preempt a sequence planned before it. Either way
     * the batch is assembled from what is still running. */
    for (int k = 0; k < n_planned; k++) {
        ks_gen *g = planned[k];
        if (g->state == SEQ_PREFILL) {
            ks_err err;
            reserve_prefill(e, g, g->kv.n_tokens + g->plan, &err);
        }
    }
}

/* Builds and runs one batch; returns false when there was nothing to do. */
static bool step(ks_engine *e) {
    drop_ended(e);
    admit(e);
    if (e->n_running == 0)
        return false;

    ks_err err;
    /* decode tokens first: every sequence past its prefill feeds its last sampled token */
    for (int i = 0; i < e->n_running; i++) {
        ks_gen *g = e->running[i];
        if (g->state != SEQ_DECODE)
            continue;
        int before = e->n_running;
        if (reserve(e, g, g->n_tokens, &err) != KS_OK) {
            remove_running(e, i);
            finish(e, g, KS_STOP_ERROR, err.msg);
            i = -1; /* indices moved: start over (reservations already made stay) */
        } else if (e->n_running != before) {
            i = -1;
        }
    }
    plan_prompt_tokens(e);
    /* reservations may have preempted sequences: assemble from what is still running */
    int n = 0, n_out = 0;
    ks_step_shape shape = {0, 0, 0, 0};
    for (int i = 0; i < e->n_running; i++) {
        ks_gen *g = e->running[i];
        e->b_views[i].block_table = g->kv.blocks;
        e->b_views[i].n_blocks = g->kv.n_blocks;
        g->batch_n = 0;
        g->logits_row = -1;
        if (g->state == SEQ_DECODE) {
            add_tokens(e, &n, g, g->n_tokens - 1, 1, i, true);
            g->logits_row = n_out++;
            shape.n_decode++;
        } else if (g->state == SEQ_PREFILL && g->plan > 0) {
            bool last = g->kv.n_tokens + g->plan == g->n_target;
            shape.n_prompt += g->plan;
            shape.prompt_work += ks_step_budget_work(&e->budget, g->kv.n_tokens, g->plan);
            add_tokens(e, &n, g, g->kv.n_tokens, g->plan, i, last);
            if (last)
                g->logits_row = n_out++;
        }
    }
    if (n == 0)
        return e->n_running > 0;

    double t0 = now_ms();
    ks_batch b = {n, e->b_tokens, e->b_pos, e->b_seq, e->b_want, e->b_views, e->n_running};
    ks_err_clear(&err);
    ks_status s = ks_forward_run(e->fwd, &b, e->logits, &err);
    double forward_ms = now_ms() - t0;
    if (s != KS_OK) {
        /* an internal error: fail every sequence in the batch, keep serving */
        while (e->n_running > 0) {
            ks_gen *g = e->running[0];
            remove_running(e, 0);
            finish(e, g, KS_STOP_ERROR, err.msg);
        }
        return true;
    }
    /* outputs, walking a snapshot since sequences may end */
    ks_gen *snapshot[256];
    int n_snap = KS_MIN(e->n_running, 256);
    memcpy(snapshot, e->running, (size_t)n_snap * sizeof *snapshot);
    for (int k = 0; k < n_snap; k++) {
        ks_gen *g = snapshot[k];
        if (g->batch_n == 0)
            continue;
        int ig = 0;
        while (ig < e->n_running && e->running[ig] != g)
            ig++;
        int fed = g->kv.n_tokens + g->batch_n;
        ks_kv_usage *count = g->state == SEQ_PREFILL && g->n_generated == 0 ? &g->usage : NULL;
        ks_kv_cache_commit(e->cache, &g->kv, g->tokens, fed, count);
        if (g->state == SEQ_PREFILL) {
            for (int j = 0; j < g->n_breakpoints; j++)
                if (g->breakpoints[j] <= fed)
                    ks_kv_cache_mark_breakpoint(e->cache, &g->kv, g->breakpoints[j]);
            set_progress(g);
            log_prefill_progress(g, fed, g->batch_n);
            if (fed < g->n_target)
                continue;
            g->state = SEQ_DECODE;
            if (g->n_generated == 0) {
                ks_gen_event ev;
                memset(&ev, 0, sizeof ev);
                ev.type = KS_GEN_EV_PREFILLED;
                ev.usage = g->usage;
                post(g, &ev);
            } else if (g->n_tokens > fed) {
                continue; /* resumed after preemption: its sampled token is fed next */
            }
        }
        if (g->logits_row >= 0)
            emit_token(e, g, ig, e->logits + (size_t)g->logits_row * e->m->hp.n_vocab);
    }
    ks_kv_cache_poll(e->cache);
    ks_kv_cache_stats kvs;
    ks_kv_cache_stats_get(e->cache, &kvs);
    /* the step's time, with everything every sequence in it waited for, teaches the budget */
    shape.ms = now_ms() - t0;
    double busy = shape.ms, target = ks_step_budget_target_ms(&e->budget);
    KS_LOGD("engine: step of %d decode + %d prompt tokens, %.1f ms (forward %.1f ms, target %.0f ms)", shape.n_decode,
            shape.n_prompt, shape.ms, forward_ms, isfinite(target) ? target : 0.0);
    if (e->p.step_ms)
        shape.ms = e->p.step_ms(e->p.step_ms_ctx, &shape);
    ks_step_budget_observe(&e->budget, &shape);
    pthread_mutex_lock(&e->mu);
    e->kv_snapshot = kvs;
    e->stats.steps++;
    e->stats.busy_ms += busy;
    e->stats.running = e->n_running;
    pthread_mutex_unlock(&e->mu);
    return true;
}

/* ---- the thread --------------------------------------------------------------------------------- */

static void *engine_main(void *arg) {
    ks_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        take_incoming(e);
        while (!e->stop && e->n_running == 0 && !e->waiting_head && !e->incoming_head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L; /* wake now and then to collect disk writes */
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
            take_incoming(e);
            if (e->n_running == 0 && !e->waiting_head) {
                pthread_mutex_unlock(&e->mu);
                ks_kv_cache_poll(e->cache);
                ks_kv_cache_stats kvs;
                ks_kv_cache_stats_get(e->cache, &kvs);
                pthread_mutex_lock(&e->mu);
                e->kv_snapshot = kvs;
            }
        }
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
        step(e);
    }
    /* shutdown: end what is left with an error the client sees as one */
    while (e->n_running > 0) {
        ks_gen *g = e->running[0];
        remove_running(e, 0);
        finish(e, g, KS_STOP_ERROR, "the server is shutting down");
    }
    pthread_mutex_lock(&e->mu);
    take_incoming(e);
    pthread_mutex_unlock(&e->mu);
    while (e->waiting_head) {
        ks_gen *g = e->waiting_head;
        e->waiting_head = g->next;
        finish(e, g, KS_STOP_ERROR, "the server is shutting down");
    }
    return NULL;
}

ks_status ks_engine_create(ks_engine **out, const ks_model *m, const ks_engine_params *params, ks_err *err) {
    ks_engine *e = calloc(1, sizeof *e);
    if (!e)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    e->m = m;
    e->p = *params;
    if (e->p.n_ctx <= 0)
        e->p.n_ctx = KS_MIN(m->hp.n_ctx_train, KS_ENGINE_DEFAULT_CTX);
    if (e->p.n_parallel <= 0)
        e->p.n_parallel = KS_ENGINE_DEFAULT_PARALLEL;
    if (e->p.n_parallel > 256)
        e->p.n_parallel = 256;
    if (e->p.prefill_chunk <= 0)
        e->p.prefill_chunk = KS_ENGINE_DEFAULT_CHUNK;
    if (e->p.step_budget == 0)
        e->p.step_budget = KS_STEP_BUDGET_DEFAULT;
    ks_step_budget_init(&e->budget, &m->hp, e->p.prefill_chunk, e->p.step_budget);
    if (e->p.max_queue <= 0)
        e->p.max_queue = KS_ENGINE_DEFAULT_QUEUE;
    e->max_batch = e->p.prefill_chunk + e->p.n_parallel;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->tp = ks_threadpool_create(e->p.n_threads);
    e->p.n_threads = ks_threadpool_n_threads(e->tp);
    ks_status s = ks_kv_cache_create(&e->cache, m, &e->p.kv, err);
    if (!s) {
        /* a sequence's K/V must all be in RAM while it runs: a context the pool cannot
         * hold is lowered to what it can, so that a longer prompt is refused when it
         * arrives and a sequence that fills the pool ends as one that fills the context */
        const int pool_tokens = ks_kv_cache_pool_blocks(e->cache) * ks_kv_cache_layout(e->cache)->block_tokens;
        if (e->p.n_ctx > pool_tokens) {
            KS_LOGW("context %d tokens > the %d the KV cache in RAM holds: context lowered to %d (more --kv-ram "
                    "raises it)",
                    e->p.n_ctx, pool_tokens, pool_tokens);
            e->p.n_ctx = pool_tokens;
        }
    }
    if (!s)
        s = ks_forward_create(&e->fwd, m, ks_kv_cache_layout(e->cache), ks_kv_cache_pool_base(e->cache),
                              ks_kv_cache_pool_blocks(e->cache), e->max_batch, e->p.n_ctx, e->tp, err);
    if (!s) {
        size_t mb = (size_t)e->max_batch;
        e->running = calloc((size_t)e->p.n_parallel, sizeof *e->running);
        e->b_tokens = malloc(mb * sizeof *e->b_tokens);
        e->b_pos = malloc(mb * sizeof *e->b_pos);
        e->b_seq = malloc(mb * sizeof *e->b_seq);
        e->b_want = malloc(mb);
        e->b_views = calloc((size_t)e->p.n_parallel, sizeof *e->b_views);
        e->logits = malloc((size_t)(e->p.n_parallel + 1) * (size_t)m->hp.n_vocab * sizeof(float));
        if (!e->running || !e->b_tokens || !e->b_pos || !e->b_seq || !e->b_want || !e->b_views || !e->logits)
            s = KS_ERRF(err, KS_ERR_NOMEM, "out of memory for the engine");
    }
    if (!s && ks_vocab_load(&e->vocab_owned, m->gguf, NULL) == KS_OK)
        e->vocab = e->vocab_owned;
    if (!s) {
        ks_kv_cache_stats_get(e->cache, &e->kv_snapshot);
        e->stats.kv = e->kv_snapshot;
    }
    if (!s && pthread_create(&e->thread, NULL, engine_main, e) != 0)
        s = KS_ERRF(err, KS_ERR_INTERNAL, "cannot start the engine thread");
    else if (!s)
        e->thread_started = true;
    if (s) {
        ks_engine_destroy(e);
        return s;
    }
    *out = e;
    return KS_OK;
}

void ks_engine_shutdown(ks_engine *e) {
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true; /* submissions from now on are refused */
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) {
        pthread_join(e->thread, NULL);
        e->thread_started = false;
        /* the thread is gone: its state is this thread's now */
        ks_kv_cache_flush(e->cache);
    }
}

void ks_engine_destroy(ks_engine *e) {
    if (!e)
        return;
    ks_engine_shutdown(e);
    ks_forward_destroy(e->fwd);
    ks_kv_cache_destroy(e->cache);
    ks_threadpool_destroy(e->tp);
    ks_vocab_destroy(e->vocab_owned);
    free(e->running);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_want);
    free(e->b_views);
    free(e->logits);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

void ks_engine_stats_get(ks_engine *e, ks_engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->kv = e->kv_snapshot; /* as of the engine's last step or idle tick */
    pthread_mutex_unlock(&e->mu);
}
