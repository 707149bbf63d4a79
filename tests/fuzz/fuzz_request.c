/* fuzz_request.c — libFuzzer target for request bodies: the path every HTTP body takes
 * before it reaches the tokenizer.
 *
 * Input: the body, any bytes. It is read as JSON the way the server reads it
 * (json_loadb, any top-level value); a body that reading refuses is read again allowing
 * U+0000 in strings, which no server path sends today but chat.h promises to carry. A
 * parsed body goes through both translators (ks_request_anthropic_parse and
 * ks_request_openai_parse, whichever API it is shaped for), API detection, and every
 * request a translator accepts is rendered in every chat format, once with a tool-call
 * memory that knows the calls whose id starts with "m" and once without. abort() unless:
 *   - no step crashes or trips a sanitizer;
 *   - a failed step returns a request error (INVALID, UNSUPPORTED; NOMEM never happens
 *     here) whose ks_err holds that status and a non-empty message, and leaves its
 *     out-parameter untouched;
 *   - a failed translation's message reaches the client: the API's error envelope, as the
 *     server writes it, is JSON whose error.message is a non-empty string;
 *   - a rendered prompt is NUL-terminated at its length, and rendering the same request
 *     again gives the same bytes (renderers are canonical).
 *
 *   ./build-fuzz/tests/fuzz/fuzz_request tests/fuzz/corpus/request -max_total_time=60 */
#include "chat/chat_format.h"
#include "server/request_anthropic.h"
#include "server/request_common.h"
#include "server/request_openai.h"
#include "server/server.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ks_chat_format k_formats[] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER,
                                           KS_CHAT_FORMAT_CHATML};

/* A stand-in for the tool-call memory: a sampled text for ids starting with "m". */
static const char k_recalled[] = "<tool_call>\n<function=Read>\n<parameter=file_path>\n/m\n"
                                 "</parameter>\n</function>\n</tool_call>";

static const char *recall(void *ctx, const char *call_id, size_t *len) {
    (void)ctx;
    if (!call_id || call_id[0] != 'm')
        return NULL;
    *len = sizeof k_recalled - 1;
    return k_recalled;
}

static void die(const char *step, ks_status st, const ks_err *err) {
    fprintf(stderr, "fuzz_request: %s: status %s (err.code %s), message \"%s\"\n", step, ks_status_str(st),
            ks_status_str(err->code), err->msg);
    abort();
}

/* A failed step must say why, with the status it returned. */
static void check_error(const char *step, ks_status st, const ks_err *err) {
    if (st != KS_ERR_INVALID && st != KS_ERR_UNSUPPORTED)
        die(step, st, err);
    if (err->code != st || err->msg[0] == '\0')
        die(step, st, err);
}

/* The error reply a client gets for err, in the API's envelope. */
static void check_envelope(const char *api, ks_status st, const ks_err *err) {
    ks_http_reply r;
    memset(&r, 0, sizeof r);
    ks_strbuf_init(&r.body);
    if (!strcmp(api, "anthropic"))
        ks_server_anthropic_error(NULL, &r, 400, "invalid_request_error", err->msg);
    else
        ks_server_openai_error(NULL, &r, 400, "invalid_request_error", err->msg);
    json_error_t jerr;
    json_t *reply = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &jerr);
    const char *msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    if (!msg || !msg[0]) {
        fprintf(stderr, "fuzz_request: %s error reply without a message: %.*s\n", api, (int)r.body.len,
                r.body.data ? r.body.data : "");
        die("error envelope", st, err);
    }
    json_decref(reply);
    ks_strbuf_free(&r.body);
}

static void render_all(const char *api, const ks_chat_request *req) {
    static const ks_chat_render_opts with_memory = {recall, NULL};
    for (size_t i = 0; i < KS_ARRAY_LEN(k_formats); i++) {
        for (int mem = 0; mem < 2; mem++) {
            const ks_chat_render_opts *opts = mem ? &with_memory : NULL;
            char step[64];
            snprintf(step, sizeof step, "%s render %s%s", api, ks_chat_format_name(k_formats[i]),
                     mem ? " (memory)" : "");
            ks_err err;
            ks_err_clear(&err);
            char *out = NULL;
            size_t len = 0;
            ks_status st = ks_chat_render(k_formats[i], req, opts, &out, &len, &err);
            if (st) {
                if (out)
                    die("render wrote its output on failure", st, &err);
                check_error(step, st, &err);
                continue;
            }
            if (!out || out[len] != '\0')
                die("render output not NUL-terminated at its length", st, &err);
            char *again = NULL;
            size_t len2 = 0;
            ks_err_clear(&err);
            st = ks_chat_render(k_formats[i], req, opts, &again, &len2, &err);
            if (st || len2 != len || memcmp(out, again, len) != 0)
                die("the same request rendered twice differs", st, &err);
            free(again);
            free(out);
        }
    }
}

static void translate(const char *api, const json_t *body,
                      ks_status (*parse)(const json_t *, ks_chat_request **, ks_err *)) {
    ks_err err;
    ks_err_clear(&err);
    ks_chat_request *req = NULL;
    ks_status st = parse(body, &req, &err);
    if (st) {
        if (req)
            die("parse wrote its output on failure", st, &err);
        check_error(api, st, &err);
        check_envelope(api, st, &err);
        return;
    }
    if (!req)
        die("parse succeeded without a request", st, &err);
    render_all(api, req);
    ks_chat_request_destroy(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!body)
        body = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!body)
        return 0;
    (void)ks_request_detect_api(body);
    translate("anthropic", body, ks_request_anthropic_parse);
    translate("openai", body, ks_request_openai_parse);
    json_decref(body);
    return 0;
}
