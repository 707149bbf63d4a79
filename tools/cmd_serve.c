/* cmd_serve.c — `kvserve serve -m MODEL`: loads the model, starts the engine and the
 * HTTP server (Anthropic Messages + OpenAI Chat Completions), and shuts down gracefully
 * on SIGINT/SIGTERM:
 *   1. new connections are refused; requests in flight go on for the grace period;
 *   2. the engine shuts down: what is still running ends with an error event
 *      ("the server is shutting down"), queued disk writes are flushed;
 *   3. streams get a moment to send that error, then the HTTP server stops; exit 0.
 * A second signal exits at once with status 1 (block files are written to a temporary
 * name and renamed, so the disk tier stays consistent). */
#include "commands.h"

#include "chat/chat_format.h"
#include "chat/toolcall_memory.h"
#include "cli_common.h"
#include "cli_size.h"
#include "core/cpu.h"
#include "core/log.h"
#include "engine/engine.h"
#include "kv/kv_disk.h"
#include "model/model.h"
#include "server/server.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KS_DEFAULT_PORT 8080
#define KS_DEFAULT_MAX_BODY (64u << 20)      /* 64 MiB: agent prompts with many files */
#define KS_DEFAULT_MAX_HEADER (64u << 10)    /* 64 KiB */
#define KS_DEFAULT_MAX_CONNECTIONS 256
#define KS_DEFAULT_IDLE_TIMEOUT_S 600        /* long prefills stream pings well within it */
#define KS_DEFAULT_PING_MS 5000
#define KS_DEFAULT_GRACE_S 30
#define KS_SHUTDOWN_DRAIN_MS 2000            /* for streams to send their last error event */
#define KS_TOOLCALL_MEMORY_BYTES (16u << 20) /* sampled tool-call texts kept for re-rendering */

static atomic_int g_signals;

static void on_signal(int sig) {
    (void)sig;
    if (atomic_fetch_add(&g_signals, 1) >= 1) {
        static const char msg[] = "kvserve: second signal, exiting now\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(1);
    }
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve serve -m MODEL [options]\n"
            "  --host ADDR            bind address (default 127.0.0.1)\n"
            "  --port N               port (default 8080)\n"
            "  --api-key KEY          require this key (x-api-key or Authorization: Bearer); env KVSERVE_API_KEY\n"
            "  --alias NAME           model name listed by /v1/models (default: the file's name)\n"
            "  -c, --ctx N            most tokens per conversation (default: min(model's, 32768))\n"
            "  --parallel N           sequences decoded together (default 4)\n"
            "  --prefill-chunk N      most prompt tokens per step (default %d)\n"
            "  --step-budget K        size steps that compute prompt tokens to last about K decode steps\n"
            "                         (measured as the server runs): streams keep ~1/K of their speed\n"
            "                         beside a long prefill, a new request waits ~K decode steps for the\n"
            "                         step in progress (default %d; 0: off, --prefill-chunk tokens a step)\n"
            "  --max-queue N          waiting requests before 529/503 (default 64)\n"
            "  --max-output N         cap on max_tokens (default 32768)\n"
            "  --request-timeout S    end a request S seconds after it arrived with a timeout error\n"
            "                         (default 0: none; max_tokens and the context bound every request,\n"
            "                         a disconnect cancels it, and a long prompt on a CPU may take minutes)\n"
            "  --kv-ram SIZE          RAM for the KV cache (default: half of available, at most 16G)\n"
            "  --kv-dir DIR           disk tier directory (default $XDG_CACHE_HOME/kvserve)\n"
            "  --kv-disk SIZE         disk tier budget (default 20G); 0 turns the disk tier off\n"
            "  --kv-type T            f16 (default) | q8_0 | f32\n"
            "  --chat-template NAME   override the template family (%s)\n"
            "  -t, --threads N        compute threads (default: physical cores)\n"
            "  --max-body SIZE        largest request body (default 64M)\n"
            "  --idle-timeout S       seconds before an idle connection closes (default 600)\n"
            "  --shutdown-grace S     seconds in-flight requests get at shutdown (default 30)\n"
            "  -v                     debug logs\n"
            "  --log-file FILE        append logs to FILE\n"
            "  --test-forced-outputs FILE  tests only: emit these outputs (JSON strings, one per line) in turn\n"
            "                         instead of sampling\n",
            KS_ENGINE_DEFAULT_CHUNK, KS_STEP_BUDGET_DEFAULT, ks_chat_format_names());
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits until no request is in flight, or ms have passed. */
static void wait_requests(ks_server *srv, double ms) {
    double deadline = now_ms() + ms;
    while (ks_http_active(srv->http) > 0 && now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* A long-running server's heap: glibc raises its mmap threshold to the size of each large
 * block freed (up to 32 MiB), after which request-sized buffers (prompt text, token
 * arrays, JSON) come from the per-thread arenas and stay resident there, fragmented,
 * once freed: after 1,000 mixed requests the process held ~45 MiB more than after a
 * warm-up. A fixed threshold keeps them in their own mappings, returned when freed. */
static void heap_return_large_blocks(void) {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 128 << 10);
#endif
}

static const char *file_stem(const char *path, char *buf, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, n, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && !strcmp(dot, ".gguf"))
        *dot = '\0';
    return buf;
}

int ks_cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *host = "127.0.0.1", *alias = NULL, *kv_dir = NULL, *tmpl = NULL,
               *log_file = NULL, *forced_path = NULL;
    const char *api_key = getenv("KVSERVE_API_KEY");
    long port = KS_DEFAULT_PORT, ctx = 0, parallel = 0, chunk = 0, queue = 0, max_output = 32768, threads = 0,
         idle = KS_DEFAULT_IDLE_TIMEOUT_S, grace = KS_DEFAULT_GRACE_S, req_timeout = 0,
         step_budget = KS_STEP_BUDGET_DEFAULT;
    uint64_t kv_ram = 0, kv_disk = 20ull << 30, max_body = KS_DEFAULT_MAX_BODY;
    int kv_type = KS_TYPE_F16, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_OPT(name, var, lo, hi) else if (!strcmp(a, name)) { if (!ks_cli_int("serve", a, v, lo, hi, &var)) return 2; i++; }
#define SIZE_OPT(name, var) else if (!strcmp(a, name)) { if (!ks_cli_size(v, &var)) { fprintf(stderr, "kvserve serve: %s needs a size such as 512M or 8G\n", a); return 2; } i++; }
#define STR_OPT(name, var) else if (!strcmp(a, name)) { if (!v) { fprintf(stderr, "kvserve serve: %s needs a value\n", a); return 2; } var = v; i++; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        STR_OPT("-m", model_path)
        STR_OPT("--model", model_path)
        STR_OPT("--host", host)
        STR_OPT("--api-key", api_key)
        STR_OPT("--alias", alias)
        STR_OPT("--kv-dir", kv_dir)
        STR_OPT("--chat-template", tmpl)
        STR_OPT("--log-file", log_file)
        STR_OPT("--test-forced-outputs", forced_path)
        INT_OPT("--port", port, 0, 65535)
        INT_OPT("-c", ctx, 0, 1 << 24)
        INT_OPT("--ctx", ctx, 0, 1 << 24)
        INT_OPT("--parallel", parallel, 1, 256)
        INT_OPT("--prefill-chunk", chunk, 1, 1 << 16)
        INT_OPT("--step-budget", step_budget, 0, 1000)
        INT_OPT("--max-queue", queue, 1, 1 << 20)
        INT_OPT("--max-output", max_output, 1, 1 << 24)
        INT_OPT("-t", threads, 0, 1024)
        INT_OPT("--threads", threads, 0, 1024)
        INT_OPT("--idle-timeout", idle, 1, 86400)
        INT_OPT("--shutdown-grace", grace, 0, 86400)
        INT_OPT("--request-timeout", req_timeout, 0, 7 * 86400)
        SIZE_OPT("--kv-ram", kv_ram)
        SIZE_OPT("--kv-disk", kv_disk)
        SIZE_OPT("--max-body", max_body)
        else if (!strcmp(a, "--kv-type")) {
            if (!v || (kv_type = ks_cli_kv_type(v)) < 0) { fprintf(stderr, "kvserve serve: --kv-type is f16, q8_0 or f32\n"); return 2; }
            i++;
        }
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) verbose = 1;
        else { fprintf(stderr, "kvserve serve: unknown option '%s'\n", a); usage(stderr); return 2; }
#undef INT_OPT
#undef SIZE_OPT
#undef STR_OPT
    }
    if (!model_path) {
        usage(stderr);
        return 2;
    }
    FILE *logf = NULL;
    if (log_file) {
        logf = fopen(log_file, "a");
        if (!logf) {
            fprintf(stderr, "kvserve serve: cannot open --log-file %s\n", log_file);
            return 1;
        }
        ks_log_set_file(logf);
    }
    if (verbose)
        ks_log_set_level(KS_LOG_DEBUG);
    heap_return_large_blocks();
    /* SIGINT/SIGTERM go to this thread only: they are blocked here before any other
     * thread exists (threads inherit the mask) and waited for with sigsuspend below.
     * A signal caught by an engine or connection thread would leave this one asleep. */
    sigset_t stop_signals, wait_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &wait_mask);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    if (api_key && !*api_key)
        api_key = NULL;
    if (!api_key && !ks_server_host_is_loopback(host)) {
        KS_LOGE("refusing to listen on %s without an API key: pass --api-key (or set KVSERVE_API_KEY), or bind 127.0.0.1",
                host);
        return 1;
    }

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_model *m = NULL;
    ks_tokenizer *tok = NULL;
    ks_engine *engine = NULL;
    ks_toolcall_memory *tcm = NULL;
    ks_forced_outputs *forced = NULL;
    ks_server srv;
    bool server_started = false;
    char name[256], dir[4096], root[4096], cpu[256];

    double t0 = now_ms();
    KS_LOGI("loading %s", model_path);
    if (ks_model_load(&m, model_path, &err) || ks_tokenizer_create(&tok, m->gguf, &err))
        goto fail;
    ks_chat_format format = KS_CHAT_FORMAT_NONE;
    if (tmpl) {
        if (ks_chat_format_by_name(tmpl, &format, &err))
            goto fail;
    } else {
        ks_gguf_str t;
        if (ks_gguf_get_str(m->gguf, "tokenizer.chat_template", &t, NULL) != KS_OK) {
            KS_ERRF(&err, KS_ERR_INVALID, "%s has no chat template; pass --chat-template (%s)", model_path,
                    ks_chat_format_names());
            goto fail;
        }
        if (ks_chat_format_detect(t.ptr, (size_t)t.len, &format, &err))
            goto fail;
    }
    ks_cpu_describe(ks_cpu_detect(), cpu, sizeof cpu);
    const ks_hparams *hp = &m->hp;
    KS_LOGI("model: %s, %s, %d layers, n_embd %d, %d/%d heads%s, vocab %d, weights %s, context %d (trained), "
            "chat template %s, fingerprint %s (%.0f ms)",
            file_stem(model_path, name, sizeof name), hp->arch_name, hp->n_layer, hp->n_embd, hp->n_head,
            hp->n_head_kv, hp->n_expert ? ", MoE" : "", hp->n_vocab, m->quant_name, hp->n_ctx_train,
            ks_chat_format_name(format), m->fingerprint_hex, now_ms() - t0);
    KS_LOGI("cpu: %s; kernels: %s", cpu, ks_kernels_get()->isa);

    ks_engine_params ep;
    ks_engine_params_default(&ep);
    ep.n_threads = (int)threads;
    ep.n_ctx = (int)ctx;
    ep.n_parallel = (int)parallel;
    ep.prefill_chunk = (int)chunk;
    ep.step_budget = step_budget > 0 ? (int)step_budget : -1;
    ep.max_queue = (int)queue;
    ep.kv.kv_type = (uint32_t)kv_type;
    ep.kv.ram_bytes = kv_ram ? kv_ram : ks_kv_cache_default_ram_bytes();
    if (kv_disk > 0) {
        if (kv_dir) {
            snprintf(root, sizeof root, "%s", kv_dir);
        } else if (ks_kv_disk_default_root(root, sizeof root, &err)) {
            goto fail;
        }
        if (ks_kv_disk_model_dir(root, m->fingerprint, dir, sizeof dir, &err))
            goto fail;
        ep.kv.disk_dir = dir;
        ep.kv.disk_bytes = kv_disk;
    }
    t0 = now_ms();
    if (ks_engine_create(&engine, m, &ep, &err))
        goto fail;
    ks_engine_stats st;
    ks_engine_stats_get(engine, &st);
    char steps[64] = "off";
    if (step_budget > 0)
        snprintf(steps, sizeof steps, "~%ld decode steps", step_budget);
    KS_LOGI("engine: %d threads, context %d, parallel %d, prefill chunk %ld, step budget %s, KV %s in RAM %.2f GiB "
            "(%d blocks of %d tokens), disk %s (%.2f GiB budget) (%.0f ms)",
            ep.n_threads > 0 ? ep.n_threads : ks_cpu_detect()->n_physical_cores, ks_engine_n_ctx(engine),
            ep.n_parallel > 0 ? ep.n_parallel : 4, chunk > 0 ? chunk : KS_ENGINE_DEFAULT_CHUNK, steps, ks_type_name((uint32_t)kv_type),
            (double)ep.kv.ram_bytes / (1u << 30), st.kv.pool_blocks, 32, ep.kv.disk_dir ? ep.kv.disk_dir : "off",
            (double)kv_disk / (1u << 30), now_ms() - t0);

    if (ks_toolcall_memory_create(&tcm, KS_TOOLCALL_MEMORY_BYTES)) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (forced_path) {
        if (ks_forced_outputs_load(&forced, forced_path, &err))
            goto fail;
        KS_LOGW("TEST MODE: outputs come from %s instead of the model's sampling", forced_path);
    }
    ks_gen_context gen = {engine, tok, format, tcm, (int)max_output, 0, forced, (int64_t)req_timeout * 1000};
    ks_server_params sp = {host, (int)port, api_key, alias ? alias : name, (size_t)max_body, KS_DEFAULT_MAX_HEADER,
                           KS_DEFAULT_MAX_CONNECTIONS, (int)idle, KS_DEFAULT_PING_MS};
    if (ks_server_start(&srv, &sp, &gen, &err))
        goto fail;
    server_started = true;
    KS_LOGI("listening on http://%s:%d (%s)  Anthropic: POST /v1/messages  OpenAI: POST /v1/chat/completions", host,
            ks_http_port(srv.http), api_key ? "API key required" : "no API key");
    if (req_timeout > 0)
        KS_LOGI("requests end with a timeout error %ld s after they arrive", req_timeout);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (atomic_load(&g_signals) == 0)
        sigsuspend(&wait_mask); /* unblocks the stop signals only while it waits: no lost wake-up */
    /* from here on a second signal exits at once, whatever this thread is doing */
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);

    KS_LOGI("shutting down: no new connections, %ld s for %d requests in flight", grace, ks_http_active(srv.http));
    ks_http_quiesce(srv.http);
    wait_requests(&srv, (double)grace * 1e3);
    int left = ks_http_active(srv.http);
    if (left > 0)
        KS_LOGW("shutting down: ending %d requests still in flight", left);
    ks_engine_shutdown(engine);
    wait_requests(&srv, KS_SHUTDOWN_DRAIN_MS);
    rc = 0;
fail:
    if (rc)
        KS_LOGE("%s", err.msg);
    /* the server first: its threads use the engine */
    if (server_started)
        ks_server_stop(&srv);
    ks_engine_destroy(engine);
    ks_toolcall_memory_destroy(tcm);
    ks_forced_outputs_destroy(forced);
    ks_tokenizer_destroy(tok);
    ks_model_close(m);
    if (rc == 0)
        KS_LOGI("stopped; KV disk tier flushed");
    if (logf) {
        ks_log_set_file(NULL);
        fclose(logf);
    }
    return rc;
}
