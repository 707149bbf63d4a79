/* server.c — routing, authentication, ids, error envelopes, /v1/models, /health,
 * /metrics (see server.h). */
#include "server/server.h"

#include "core/log.h"
#include "server/json_text.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

bool ks_server_host_is_loopback(const char *host) {
    if (!strcmp(host, "localhost") || !strcmp(host, "::1"))
        return true;
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}

/* ---- ids ----------------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ks_server_seed(ks_server *s) {
    uint64_t x = (uint64_t)atomic_fetch_add(&s->id_counter, 1) ^ (uint64_t)(s->t_start_ms * 1000.0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x ^= (uint64_t)ts.tv_nsec << 20;
    return splitmix(&x);
}

void ks_server_new_id(ks_server *s, const char *prefix, char *out, size_t n) {
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t x = ks_server_seed(s);
    size_t k = (size_t)snprintf(out, n, "%s", prefix);
    for (int i = 0; i < 24 && k + 1 < n; i++)
        out[k++] = b62[splitmix(&x) % 62];
    out[k < n ? k : n - 1] = '\0';
}

/* ---- error envelopes ------------------------------------------------------------------------ */

static void json_reply(ks_http_reply *r, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    r->status = status;
    r->content_type = "application/json";
    ks_strbuf_puts(&r->body, text ? text : "{}");
    free(text);
    json_decref(body);
}

/* Messages quote client bytes (a role, a path) and are cut to a fixed size, possibly
 * inside a UTF-8 character; json_pack refuses invalid UTF-8, so they go in through
 * ks_json_text, else the reply would be an empty object. */
static json_t *message_json(const char *msg) { return ks_json_text(msg, strlen(msg)); }

void ks_server_anthropic_error(ks_server *s, ks_http_reply *r, int status, const char *type, const char *msg) {
    (void)s;
    json_reply(r, status, json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type", type, "message",
                                    message_json(msg)));
}

void ks_server_openai_error(ks_server *s, ks_http_reply *r, int status, const char *type, const char *msg) {
    (void)s;
    const char *otype = !strcmp(type, "overloaded_error") ? "server_error"
                        : !strcmp(type, "api_error")     ? "server_error"
                                                          : type;
    json_reply(r, status, json_pack("{s:{s:o, s:s, s:n, s:n}}", "error", "message", message_json(msg), "type", otype,
                                    "param", "code"));
}

json_t *ks_server_parse_body(ks_server *s, const ks_http_request *req, ks_http_reply *r, ks_error_fn error) {
    if (req->body_too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the %zu-byte limit", s->p.max_body_bytes);
        error(s, r, 413, "request_too_large", msg);
        return NULL;
    }
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_DECODE_ANY, &je);
    if (!body || !json_is_object(body)) {
        char msg[300];
        if (body)
            snprintf(msg, sizeof msg, "the request body must be a JSON object");
        else
            snprintf(msg, sizeof msg, "the request body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                     je.column);
        json_decref(body);
        error(s, r, 400, "invalid_request_error", msg);
        return NULL;
    }
    return body;
}

bool ks_server_ping_due(ks_server *s, double *last_write_ms, bool wrote) {
    double t = now_ms();
    if (wrote || *last_write_ms == 0) {
        *last_write_ms = t;
        return false;
    }
    if (t - *last_write_ms < s->p.ping_interval_ms)
        return false;
    *last_write_ms = t;
    return true;
}

void ks_server_log_usage(ks_strbuf *line, const ks_gen_session *g) {
    const ks_kv_usage *u = ks_gen_session_usage(g);
    const ks_gen_timings *t = ks_gen_session_timings(g);
    int out = ks_gen_session_output_tokens(g);
    double pf = t->prefill_ms > 0 ? u->computed_tokens / (t->prefill_ms / 1e3) : 0;
    double dc = t->decode_ms > 0 && out > 1 ? (out - 1) / (t->decode_ms / 1e3) : 0;
    ks_strbuf_printf(line,
                     "prompt=%d cached_ram=%d cached_disk=%d computed=%d new_cached=%d out=%d prefill=%.1f tok/s "
                     "decode=%.1f tok/s queued=%.0f ms",
                     ks_gen_session_prompt_tokens(g), u->cached_ram_tokens, u->cached_disk_tokens,
                     u->computed_tokens, u->new_cached_tokens, out, pf, dc, t->queued_ms);
}

/* ---- auth ------------------------------------------------------------------------------------- */

static bool ct_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static bool authorized(ks_server *s, const ks_http_request *req) {
    if (!s->p.api_key)
        return true;
    const char *k = ks_http_header(req, "x-api-key");
    if (k && ct_equal(k, s->p.api_key))
        return true;
    const char *a = ks_http_header(req, "Authorization");
    return a && !strncasecmp(a, "Bearer ", 7) && ct_equal(a + 7, s->p.api_key);
}

/* ---- request counters ---------------------------------------------------------------------- */

static const char *const route_names[KS_SERVER_N_ROUTES] = {
    "/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions", "/v1/models", "/health", "/metrics",
    "other"};
static const int status_codes[KS_SERVER_N_STATUSES - 1] = {200, 400, 401, 404, 413, 429, 500, 503, 529};
static const char *const status_names[KS_SERVER_N_STATUSES] = {"200", "400", "401", "404", "413",
                                                               "429", "500", "503", "529", "other"};

static int route_index(const char *path) {
    if (!strncmp(path, "/v1/models", 10))
        return 3;
    for (int i = 0; i < KS_SERVER_N_ROUTES - 1; i++)
        if (!strcmp(path, route_names[i]))
            return i;
    return KS_SERVER_N_ROUTES - 1;
}

static void count_request(ks_server *s, const char *path, int status) {
    int si = KS_SERVER_N_STATUSES - 1;
    for (int i = 0; i < KS_SERVER_N_STATUSES - 1; i++)
        if (status_codes[i] == status)
            si = i;
    atomic_fetch_add(&s->requests_by[route_index(path)][si], 1);
}

/* ---- small routes --------------------------------------------------------------------------- */

static json_t *model_object(ks_server *s) {
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "id", s->p.model_name, "object", "model", "type", "model",
                     "display_name", s->p.model_name, "created", 0, "owned_by", "kvserve");
}

static void models(ks_server *s, const ks_http_request *req, ks_http_reply *r) {
    const char *rest = req->path + strlen("/v1/models");
    if (*rest == '/' && rest[1]) {
        /* any model id is served by the loaded model */
        json_t *m = model_object(s);
        json_object_set_new(m, "id", json_string(rest + 1));
        json_reply(r, 200, m);
        return;
    }
    json_t *data = json_array();
    json_array_append_new(data, model_object(s));
    json_reply(r, 200, json_pack("{s:s, s:o, s:b, s:s, s:s}", "object", "list", "data", data, "has_more", 0,
                                 "first_id", s->p.model_name, "last_id", s->p.model_name));
}

static void metric(ks_strbuf *b, const char *name, const char *type, const char *help, double v) {
    ks_strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void metrics(ks_server *s, ks_http_reply *r) {
    ks_engine_stats st;
    ks_engine_stats_get(s->gen.engine, &st);
    ks_strbuf *b = &r->body;
    ks_strbuf_puts(b, "# HELP kvserve_http_requests_total HTTP requests answered, by route and status\n"
                      "# TYPE kvserve_http_requests_total counter\n");
    for (int ri = 0; ri < KS_SERVER_N_ROUTES; ri++)
        for (int si = 0; si < KS_SERVER_N_STATUSES; si++) {
            uint64_t n = atomic_load(&s->requests_by[ri][si]);
            if (n)
                ks_strbuf_printf(b, "kvserve_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n", route_names[ri],
                                 status_names[si], (unsigned long long)n);
        }
    metric(b, "kvserve_requests_total", "counter", "generation requests accepted", (double)st.requests);
    metric(b, "kvserve_requests_rejected_total", "counter", "generation requests refused: queue full",
           (double)st.requests_rejected);
    metric(b, "kvserve_requests_cancelled_total", "counter", "generation requests cancelled",
           (double)st.requests_cancelled);
    metric(b, "kvserve_requests_timed_out_total", "counter", "generation requests ended by --request-timeout",
           (double)st.requests_timed_out);
    metric(b, "kvserve_requests_running", "gauge", "sequences in the running batch", st.running);
    metric(b, "kvserve_requests_waiting", "gauge", "requests waiting for a slot", st.waiting);
    metric(b, "kvserve_prompt_tokens_total", "counter", "prompt tokens of admitted requests", (double)st.prompt_tokens);
    ks_strbuf_printf(b,
                     "# HELP kvserve_cache_read_tokens_total prompt tokens served from the KV cache\n"
                     "# TYPE kvserve_cache_read_tokens_total counter\n"
                     "kvserve_cache_read_tokens_total{tier=\"ram\"} %llu\n"
                     "kvserve_cache_read_tokens_total{tier=\"disk\"} %llu\n",
                     (unsigned long long)st.cached_ram_tokens, (unsigned long long)st.cached_disk_tokens);
    metric(b, "kvserve_computed_tokens_total", "counter", "prompt tokens computed by the model",
           (double)st.computed_tokens);
    metric(b, "kvserve_generated_tokens_total", "counter", "tokens generated", (double)st.generated_tokens);
    metric(b, "kvserve_prefill_seconds_total", "counter",
           "time requests spent from admission to first token (computed tokens / this = prefill speed)",
           st.prefill_ms / 1e3);
    metric(b, "kvserve_decode_seconds_total", "counter",
           "time requests spent generating after the first token (generated tokens / this = decode speed)",
           st.decode_ms / 1e3);
    metric(b, "kvserve_engine_steps_total", "counter", "forward passes run", (double)st.steps);
    metric(b, "kvserve_engine_busy_seconds_total", "counter", "time spent in forward passes", st.busy_ms / 1e3);
    metric(b, "kvserve_preemptions_total", "counter", "sequences preempted for KV room", (double)st.preemptions);
    metric(b, "kvserve_kv_blocks", "gauge", "KV pool blocks", st.kv.pool_blocks);
    metric(b, "kvserve_kv_blocks_free", "gauge", "KV pool blocks free", st.kv.free_blocks);
    metric(b, "kvserve_kv_blocks_cached", "gauge", "KV pool blocks holding published prefixes", st.kv.cached_blocks);
    metric(b, "kvserve_kv_evictions_total", "counter", "KV blocks evicted from RAM", (double)st.kv.evictions);
    metric(b, "kvserve_kv_disk_files", "gauge", "KV block files on disk", (double)st.kv.disk_files);
    metric(b, "kvserve_kv_disk_bytes", "gauge", "bytes of KV block files on disk", (double)st.kv.disk_bytes);
    metric(b, "kvserve_kv_disk_corrupt_total", "counter", "KV block files skipped as corrupt",
           (double)st.kv.disk_corrupt_skipped);
    metric(b, "kvserve_uptime_seconds", "gauge", "seconds since start", (now_ms() - s->t_start_ms) / 1e3);
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
}

/* ---- router ------------------------------------------------------------------------------------ */

static bool is_anthropic_path(const char *path) { return !strncmp(path, "/v1/messages", 12); }

static void route(void *user, const ks_http_request *req, ks_http_reply *r) {
    ks_server *s = user;
    const char *path = req->path;
    ks_error_fn error = is_anthropic_path(path) ? ks_server_anthropic_error : ks_server_openai_error;
    bool get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    bool post = !strcmp(req->method, "POST");

    if (get && (!strcmp(path, "/health") || !strcmp(path, "/"))) {
        json_reply(r, 200, json_pack("{s:s}", "status", "ok"));
        count_request(s, path, r->status);
        return;
    }
    if (!authorized(s, req)) {
        error(s, r, 401, "authentication_error", "invalid or missing API key (x-api-key or Authorization: Bearer)");
        count_request(s, path, r->status);
        return;
    }
    if (get && !strcmp(path, "/metrics"))
        metrics(s, r);
    else if (get && !strncmp(path, "/v1/models", 10) && (path[10] == '\0' || path[10] == '/'))
        models(s, req, r);
    else if (post && !strcmp(path, "/v1/messages"))
        ks_api_anthropic_messages(s, req, r);
    else if (post && !strcmp(path, "/v1/messages/count_tokens"))
        ks_api_anthropic_count_tokens(s, req, r);
    else if (post && !strcmp(path, "/v1/chat/completions"))
        ks_api_openai_chat(s, req, r);
    else {
        char msg[600];
        snprintf(msg, sizeof msg, "no route for %s %.500s", req->method, path);
        error(s, r, 404, "not_found_error", msg);
    }
    count_request(s, path, r->status);
}

ks_status ks_server_start(ks_server *s, const ks_server_params *p, const ks_gen_context *gen, ks_err *err) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->gen = *gen;
    s->t_start_ms = now_ms();
    if (!p->api_key && !ks_server_host_is_loopback(p->host))
        return KS_ERRF(err, KS_ERR_INVALID,
                       "refusing to listen on %s without an API key: pass --api-key (or KVSERVE_API_KEY), or bind "
                       "127.0.0.1",
                       p->host);
    ks_http_params hp = {p->host, p->port, p->max_body_bytes, p->max_header_bytes, p->max_connections,
                         p->idle_timeout_s};
    return ks_http_start(&s->http, &hp, route, s, err);
}

void ks_server_stop(ks_server *s) {
    ks_http_stop(s->http);
    s->http = NULL;
}
