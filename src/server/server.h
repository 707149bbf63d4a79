/* server.h — kvserve's HTTP server: routes, authentication, limits, metrics, and the
 * state the API adapters share (engine, tokenizer, chat format, tool-call memory).
 *
 * Routes:
 *   POST /v1/messages                Anthropic Messages (api_anthropic.c)
 *   POST /v1/messages/count_tokens
 *   POST /v1/chat/completions        OpenAI Chat Completions (api_openai.c)
 *   GET  /v1/models[/ID]             the loaded model (both APIs' shapes in one object)
 *   GET  /health, GET /metrics       operations (Prometheus text format)
 */
#ifndef KS_SERVER_H
#define KS_SERVER_H

#include "core/status.h"
#include "server/gen_session.h"
#include "server/http.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Routes and statuses counted in /metrics (the last of each is "other"). */
#define KS_SERVER_N_ROUTES 7
#define KS_SERVER_N_STATUSES 10

typedef struct ks_server_params {
    const char *host;
    int port;
    const char *api_key;       /* NULL: no authentication (loopback only) */
    const char *model_name;    /* what /v1/models lists */
    size_t max_body_bytes;
    size_t max_header_bytes;
    int max_connections;
    int idle_timeout_s;
    int ping_interval_ms;      /* SSE keep-alive while nothing else is sent */
} ks_server_params;

typedef struct ks_server {
    ks_server_params p;
    ks_gen_context gen;
    ks_http_server *http;
    double t_start_ms;
    atomic_uint_fast64_t id_counter;
    /* request counters for /metrics, by route and status */
    atomic_uint_fast64_t requests_by[KS_SERVER_N_ROUTES][KS_SERVER_N_STATUSES];
    atomic_uint_fast64_t overloaded;
} ks_server;

/* True if host is a loopback address (127.0.0.0/8, ::1, localhost). */
bool ks_server_host_is_loopback(const char *host);

ks_status ks_server_start(ks_server *s, const ks_server_params *p, const ks_gen_context *gen, ks_err *err);
void ks_server_stop(ks_server *s);

/* ---- shared by the adapters ---- */

/* A fresh id with a prefix ("msg_", "chatcmpl-"), 24 base62 characters after it. */
void ks_server_new_id(ks_server *s, const char *prefix, char *out, size_t n);
uint64_t ks_server_seed(ks_server *s);

/* Error bodies in each API's envelope. type: Anthropic error type
 * ("invalid_request_error", "overloaded_error", ...). */
void ks_server_anthropic_error(ks_server *s, ks_http_reply *r, int status, const char *type, const char *msg);
void ks_server_openai_error(ks_server *s, ks_http_reply *r, int status, const char *type, const char *msg);

void ks_api_anthropic_messages(ks_server *s, const ks_http_request *req, ks_http_reply *r);
void ks_api_anthropic_count_tokens(ks_server *s, const ks_http_request *req, ks_http_reply *r);
void ks_api_openai_chat(ks_server *s, const ks_http_request *req, ks_http_reply *r);

/* A JSON body: parses it or answers 400 in the given envelope; NULL when answered. */
typedef void (*ks_error_fn)(ks_server *s, ks_http_reply *r, int status, const char *type, const char *msg);
json_t *ks_server_parse_body(ks_server *s, const ks_http_request *req, ks_http_reply *r, ks_error_fn error);

/* Streams wait for the engine in slices this long, so the HTTP layer can notice a client
 * that hung up (and cancel its request) within about this time, queued or not. */
#define KS_SERVER_WAIT_SLICE_MS 250

/* True when a keep-alive ping is due: nothing was written for ping_interval_ms. wrote:
 * this slice produced output. last_write_ms is the stream's own clock. */
bool ks_server_ping_due(ks_server *s, double *last_write_ms, bool wrote);

/* Appends "prompt=.. cached_ram=.. ..." for the access log. */
void ks_server_log_usage(ks_strbuf *line, const ks_gen_session *g);

#endif
