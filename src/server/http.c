/* http.c — libmicrohttpd glue (see http.h).
 *
 * Connection state lives in a conn struct shared by two libmicrohttpd callbacks that may
 * come in either order for a streamed reply: the request-completed notification and the
 * release of the streaming response. It is reference counted; whoever drops the last
 * reference writes the access log line and frees it. */
#include "server/http.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KS_HTTP_STREAM_BLOCK_BYTES (16 * 1024) /* libmicrohttpd's buffer per read */

struct ks_http_server {
    struct MHD_Daemon *d;
    ks_http_params p;
    ks_http_handler handler;
    void *user;
    int port;
    atomic_int in_flight;    /* requests begun and not yet complete (conn structs alive) */
    MHD_socket quiesced_fd;  /* the listening socket after quiesce, closed at stop */
};

typedef struct conn {
    ks_http_server *srv;
    atomic_int refs;
    ks_strbuf body;
    bool too_large;
    char method[16];
    char path[512];
    double t_start;
    ks_http_reply reply;
    bool replied;
    ks_strbuf pending;       /* streamed bytes not yet handed to libmicrohttpd */
    bool stream_done;
    bool client_gone;
    ks_strbuf log_extra;     /* filled before the stream is freed */
    bool logged;
    struct MHD_Connection *mc;
} conn;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *ks_http_header(const ks_http_request *r, const char *name) {
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn, MHD_HEADER_KIND, name);
}

void ks_http_reply_header(ks_http_reply *r, const char *name, const char *value) {
    if (r->n_headers >= KS_HTTP_MAX_EXTRA_HEADERS)
        return;
    r->header_names[r->n_headers] = name;
    snprintf(r->header_values[r->n_headers], sizeof r->header_values[0], "%s", value);
    r->n_headers++;
}

/* The access log line: once per request, when its reply is complete. */
static void log_request(conn *c) {
    if (c->logged || !c->replied)
        return;
    c->logged = true;
    KS_LOGI("%s %s %d %.0f ms%s%s%s", c->method, c->path, c->reply.status, now_ms() - c->t_start,
            c->log_extra.len ? " " : "", c->log_extra.len ? c->log_extra.data : "",
            c->client_gone ? " (client gone)" : "");
}

static void conn_unref(conn *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    atomic_fetch_sub(&c->srv->in_flight, 1);
    log_request(c);
    ks_strbuf_free(&c->body);
    ks_strbuf_free(&c->reply.body);
    ks_strbuf_free(&c->pending);
    ks_strbuf_free(&c->log_extra);
    free(c);
}

/* True if the client closed its side of the connection: checked between the stream's
 * waits, so a client that hangs up is noticed even while nothing is being written. */
static bool client_hung_up(conn *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    conn *c = cls;
    while (c->pending.len == 0 && !c->stream_done) {
        c->reply.stream(c->reply.stream_ctx, &c->pending, &c->stream_done);
        if (c->pending.len == 0 && !c->stream_done && client_hung_up(c)) {
            c->client_gone = true;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (c->pending.len == 0) {
        /* the stream is complete: log now, not when libmicrohttpd lets go of it */
        if (c->reply.log_extra && !c->logged)
            c->reply.log_extra(c->reply.log_ctx, &c->log_extra);
        log_request(c);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = c->pending.len < max ? c->pending.len : max;
    memcpy(buf, c->pending.data, n);
    ks_strbuf_consume(&c->pending, n);
    return (ssize_t)n;
}

static void stream_release(void *cls) {
    conn *c = cls;
    if (c->reply.log_extra && !c->logged)
        c->reply.log_extra(c->reply.log_ctx, &c->log_extra);
    if (c->reply.stream_free)
        c->reply.stream_free(c->reply.stream_ctx, !c->stream_done || c->client_gone);
    conn_unref(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    ks_http_server *srv = cls;
    conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        c->srv = srv;
        atomic_init(&c->refs, 1);
        atomic_fetch_add(&srv->in_flight, 1);
        c->t_start = now_ms();
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->path, sizeof c->path, "%s", url);
        ks_strbuf_init(&c->body);
        ks_strbuf_init(&c->pending);
        ks_strbuf_init(&c->log_extra);
        c->mc = mc;
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        if (c->body.len + *upload_size > srv->p.max_body_bytes)
            c->too_large = true;
        else
            ks_strbuf_append(&c->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->replied)
        return MHD_YES;

    ks_http_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.path = url;
    req.query = "";
    req.body = c->body.data ? c->body.data : "";
    req.body_len = c->body.len;
    req.body_too_large = c->too_large;
    req.conn = mc;
    req.t_start_ms = c->t_start;
    ks_strbuf_init(&c->reply.body);
    c->reply.status = 500;
    srv->handler(srv->user, &req, &c->reply);
    c->replied = true;

    struct MHD_Response *resp;
    if (c->reply.stream) {
        atomic_fetch_add(&c->refs, 1); /* held by the response until stream_release */
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, KS_HTTP_STREAM_BLOCK_BYTES, stream_read, c,
                                                 stream_release);
        if (resp) {
            MHD_add_response_header(resp, "Cache-Control", "no-cache");
            MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        } else {
            stream_release(c);
        }
    } else {
        resp = MHD_create_response_from_buffer(c->reply.body.len, c->reply.body.data ? c->reply.body.data : (char *)"",
                                               MHD_RESPMEM_MUST_COPY);
        if (c->reply.log_text[0])
            ks_strbuf_puts(&c->log_extra, c->reply.log_text);
    }
    if (!resp)
        return MHD_NO;
    if (c->reply.content_type)
        MHD_add_response_header(resp, "Content-Type", c->reply.content_type);
    for (int i = 0; i < c->reply.n_headers; i++)
        MHD_add_response_header(resp, c->reply.header_names[i], c->reply.header_values[i]);
    enum MHD_Result r = MHD_queue_response(mc, (unsigned)c->reply.status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)mc;
    conn *c = *con_cls;
    if (!c)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        c->client_gone = true;
    *con_cls = NULL;
    conn_unref(c);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    KS_LOGD("http: %s", line);
}

ks_status ks_http_start(ks_http_server **out, const ks_http_params *p, ks_http_handler handler, void *user,
                        ks_err *err) {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    int gai = getaddrinfo(p->host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return KS_ERRF(err, KS_ERR_INVALID, "cannot resolve --host %s: %s", p->host, gai_strerror(gai));
    ks_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    }
    s->p = *p;
    s->handler = handler;
    s->user = user;
    atomic_init(&s->in_flight, 0);
    s->quiesced_fd = MHD_INVALID_SOCKET;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)p->max_header_bytes,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        free(s);
        return KS_ERRF(err, KS_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)", p->host, p->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : p->port;
    *out = s;
    return KS_OK;
}

int ks_http_port(const ks_http_server *s) { return s->port; }

/* libmicrohttpd stops polling the listening socket and hands it back; until it is shut
 * down the kernel would still complete handshakes into its backlog that nobody accepts.
 * shutdown() makes new connections fail at once (refused); the descriptor is closed only
 * after MHD_stop_daemon, when no libmicrohttpd thread can still be looking at it. */
void ks_http_quiesce(ks_http_server *s) {
    if (!s || !s->d || s->quiesced_fd != MHD_INVALID_SOCKET)
        return;
    s->quiesced_fd = MHD_quiesce_daemon(s->d);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        shutdown(s->quiesced_fd, SHUT_RDWR);
}

int ks_http_active(ks_http_server *s) { return atomic_load(&s->in_flight); }

void ks_http_stop(ks_http_server *s) {
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    if (s->quiesced_fd != MHD_INVALID_SOCKET)
        close(s->quiesced_fd);
    free(s);
}
