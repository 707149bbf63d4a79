/* http.h — the HTTP layer over libmicrohttpd: one thread per connection, request bodies
 * gathered within a size limit, full or streamed replies. Knows nothing of the APIs:
 * a handler gets a ks_http_request and fills a ks_http_reply.
 *
 * Streaming: the reply's stream function is called in the connection's thread to
 * produce the next bytes; it may block (waiting for tokens) and should return within a
 * few seconds so keep-alive pings flow and a disconnected client is noticed. When the
 * client goes away or the stream ends, stream_free is called exactly once. */
#ifndef KS_HTTP_H
#define KS_HTTP_H

#include "core/status.h"
#include "core/strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_http_request {
    const char *method;
    const char *path;          /* without the query string */
    const char *query;         /* after '?', or "" */
    const char *body;          /* NUL-terminated */
    size_t body_len;
    bool body_too_large;
    void *conn;                /* for ks_http_header */
    double t_start_ms;
} ks_http_request;

/* A request header (case-insensitive name), or NULL. */
const char *ks_http_header(const ks_http_request *r, const char *name);

/* Produces more bytes of a streamed body into out; sets *done at the end. */
typedef void (*ks_http_stream_fn)(void *ctx, ks_strbuf *out, bool *done);

#define KS_HTTP_MAX_EXTRA_HEADERS 4

typedef struct ks_http_reply {
    int status;
    const char *content_type;
    ks_strbuf body;                   /* full replies */
    ks_http_stream_fn stream;         /* streamed replies (body unused) */
    void *stream_ctx;
    void (*stream_free)(void *ctx, bool client_gone);
    const char *header_names[KS_HTTP_MAX_EXTRA_HEADERS];
    char header_values[KS_HTTP_MAX_EXTRA_HEADERS][128];
    int n_headers;
    /* appended to the access log line when the request completes: log_text for full
     * replies, log_extra (called before stream_free) for streamed ones */
    char log_text[320];
    void (*log_extra)(void *ctx, ks_strbuf *line);
    void *log_ctx;
} ks_http_reply;

void ks_http_reply_header(ks_http_reply *r, const char *name, const char *value);

typedef void (*ks_http_handler)(void *user, const ks_http_request *req, ks_http_reply *reply);

typedef struct ks_http_params {
    const char *host;          /* bind address */
    int port;
    size_t max_body_bytes;
    size_t max_header_bytes;
    int max_connections;
    int idle_timeout_s;
} ks_http_params;

typedef struct ks_http_server ks_http_server;

ks_status ks_http_start(ks_http_server **out, const ks_http_params *p, ks_http_handler handler, void *user,
                        ks_err *err);
/* Stops accepting: new connections are refused; in-flight requests continue. */
void ks_http_quiesce(ks_http_server *s);
/* Requests in progress (a kept-alive connection between requests does not count). */
int ks_http_active(ks_http_server *s);
void ks_http_stop(ks_http_server *s);
int ks_http_port(const ks_http_server *s);

#endif
