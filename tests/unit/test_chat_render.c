/* test_chat_render.c — prompt rendering against Jinja2 renderings of the real chat
 * templates, the append-only property agent sessions rely on, the tool-call memory hook,
 * template recognition, and the Python semantics underneath (tojson, str(), strip).
 *
 * The corpus comes from tests/chat/gen_conversations.py, run at test time into a fresh
 * directory: request bodies of both APIs and, for each, the bytes Hugging Face's
 * apply_chat_template gives with the fixture templates. Every conversation must render
 * identically through our request parser and renderer. */
#include "chat/chat_format.h"
#include "chat/chat_text.h"
#include "gguf/gguf.h"
#include "server/request_anthropic.h"
#include "server/request_common.h"
#include "server/request_openai.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- corpus ------------------------------------------------------------------------------ */

#define MAX_CASES 512 /* the generator writes ~90; room to grow */

typedef struct corpus {
    char *dir;
    size_t n;
    char *names[MAX_CASES];
    ks_api apis[MAX_CASES];
} corpus;

static void corpus_load(corpus *c) {
    memset(c, 0, sizeof *c);
    c->dir = ks_test_mkdtemp();
    cr_assert_not_null(c->dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/chat/gen_conversations.py' '%s' --templates '%s' > /dev/null",
             KS_SOURCE_DIR, c->dir, ks_test_fixture("templates"));
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "corpus generator failed (%d): %s", rc, cmd);
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.tsv", c->dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no manifest in %s", c->dir);
    char line[512];
    while (fgets(line, sizeof line, f) && c->n < MAX_CASES) {
        char *tab = strchr(line, '\t');
        cr_assert_not_null(tab, "manifest line: %s", line);
        *tab = '\0';
        c->names[c->n] = strdup(line);
        c->apis[c->n] = !strncmp(tab + 1, "openai", 6) ? KS_API_OPENAI : KS_API_ANTHROPIC;
        c->n++;
    }
    fclose(f);
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    ks_test_rmtree(c->dir);
    free(c->dir);
}

static json_t *load_body(const corpus *c, size_t i) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.json", c->dir, c->names[i]);
    json_error_t jerr;
    json_t *body = json_load_file(path, 0, &jerr);
    cr_assert_not_null(body, "%s: %s", path, jerr.text);
    return body;
}

static ks_chat_request *parse(const json_t *body, ks_api api, const char *name) {
    ks_err err;
    ks_err_clear(&err);
    ks_chat_request *req = NULL;
    ks_status st = api == KS_API_OPENAI ? ks_request_openai_parse(body, &req, &err)
                                        : ks_request_anthropic_parse(body, &req, &err);
    cr_assert_eq(st, KS_OK, "%s: parse: %s", name, err.msg);
    return req;
}

static char *render(ks_chat_format f, const ks_chat_request *req, const ks_chat_render_opts *opts,
                    size_t *len, const char *name) {
    ks_err err;
    ks_err_clear(&err);
    char *out = NULL;
    ks_status st = ks_chat_render(f, req, opts, &out, len, &err);
    cr_assert_eq(st, KS_OK, "%s: render: %s", name, err.msg);
    return out;
}

/* Prints where two byte strings first differ, with some context of each. */
static void show_diff(const char *what, const char *got, size_t glen, const char *want, size_t wlen) {
    size_t i = 0;
    while (i < glen && i < wlen && got[i] == want[i])
        i++;
    size_t from = i > 60 ? i - 60 : 0;
    fprintf(stderr, "%s: first difference at byte %zu (got %zu bytes, want %zu)\n  got:  \"", what, i, glen, wlen);
    for (size_t k = from; k < glen && k < i + 60; k++)
        fprintf(stderr, (unsigned char)got[k] < 0x20 ? "\\x%02x" : "%c", (unsigned char)got[k]);
    fprintf(stderr, "\"\n  want: \"");
    for (size_t k = from; k < wlen && k < i + 60; k++)
        fprintf(stderr, (unsigned char)want[k] < 0x20 ? "\\x%02x" : "%c", (unsigned char)want[k]);
    fprintf(stderr, "\"\n");
}

/* Every corpus conversation rendered in family `fam` equals the Jinja2 bytes. */
static void check_corpus(ks_chat_format fmt) {
    corpus c;
    corpus_load(&c);
    cr_assert_geq(c.n, 50, "corpus has only %zu conversations", c.n);
    const char *fam = ks_chat_format_name(fmt);
    size_t pass = 0;
    for (size_t i = 0; i < c.n; i++) {
        json_t *body = load_body(&c, i);
        ks_chat_request *req = parse(body, c.apis[i], c.names[i]);
        size_t len = 0, wlen = 0;
        char *got = render(fmt, req, NULL, &len, c.names[i]);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.%s.txt", c.dir, c.names[i], fam);
        char *want = (char *)ks_test_read_file(path, &wlen);
        cr_assert_not_null(want, "missing %s", path);
        if (len == wlen && !memcmp(got, want, len)) {
            pass++;
        } else {
            char what[256];
            snprintf(what, sizeof what, "%s [%s]", c.names[i], fam);
            show_diff(what, got, len, want, wlen);
        }
        free(want);
        free(got);
        ks_chat_request_destroy(req);
        json_decref(body);
    }
    fprintf(stderr, "%s: %zu/%zu conversations byte-identical to the Jinja2 rendering\n", fam, pass, c.n);
    cr_assert_eq(pass, c.n, "%s: %zu of %zu conversations differ", fam, c.n - pass, c.n);
    corpus_free(&c);
}

Test(chat_render, test_chat_render_qwen3_matches_jinja) {
    check_corpus(KS_CHAT_FORMAT_QWEN3);
}

Test(chat_render, test_chat_render_qwen3_coder_matches_jinja) {
    check_corpus(KS_CHAT_FORMAT_QWEN3_CODER);
}

/* ---- append-only rendering ------------------------------------------------------------------ */

static bool is_query(const ks_chat_request *req, size_t k) {
    const ks_chat_message *m = &req->messages[k];
    if (m->role != KS_CHAT_USER)
        return false;
    size_t len;
    char *t = ks_chat_message_text(m, &len);
    bool wrapped = len >= 31 && !strncmp(t, "<tool_response>", 15) && !strcmp(t + len - 16, "</tool_response>");
    free(t);
    return !wrapped;
}

static bool has_reasoning(const ks_chat_message *m) {
    if (m->role != KS_CHAT_ASSISTANT)
        return false;
    if (m->thinking)
        return m->thinking_len > 0;
    for (size_t i = 0; i < m->n_parts; i++)
        if (strstr(m->parts[i].text, "</think>"))
            return true;
    return false;
}

/* Whether Qwen3's template keeps render(prefix) inside render(full): it re-renders the
 * reasoning of the assistant turns after the last user query only while that query is
 * the last one, and its empty think block for thinking-off replies is not kept either. */
static bool qwen3_keeps_prefix(const ks_chat_request *prefix, const ks_chat_request *full) {
    if (full->thinking == KS_THINKING_OFF)
        return false;
    size_t lq = SIZE_MAX;
    for (size_t k = prefix->n_messages; k-- > 0;)
        if (is_query(prefix, k)) {
            lq = k;
            break;
        }
    if (lq == SIZE_MAX)
        return false; /* no query: the template's last-query index moves with the length */
    bool later_query = false;
    for (size_t k = prefix->n_messages; k < full->n_messages; k++)
        later_query |= is_query(full, k);
    for (size_t k = lq + 1; k < prefix->n_messages; k++)
        if (has_reasoning(&prefix->messages[k]) && later_query)
            return false;
    return true;
}

/* For every corpus conversation and every point just before an assistant turn, the
 * prompt of the conversation up to there (with its generation prompt) is a prefix of
 * the prompt of the whole conversation: what the cache holds from turn k is reused by
 * turn k+1. Qwen3 is checked where its template allows it (qwen3_keeps_prefix). */
Test(chat_render, test_chat_render_turns_extend_earlier_prompts) {
    corpus c;
    corpus_load(&c);
    size_t checked[2] = {0, 0}, skipped = 0;
    static const ks_chat_format fams[2] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER};
    for (size_t i = 0; i < c.n; i++) {
        json_t *body = load_body(&c, i);
        ks_chat_request *full = parse(body, c.apis[i], c.names[i]);
        json_t *msgs = json_object_get(body, "messages");
        for (size_t cut = 1; cut < json_array_size(msgs); cut++) {
            const char *role = json_string_value(json_object_get(json_array_get(msgs, cut), "role"));
            const char *prev = json_string_value(json_object_get(json_array_get(msgs, cut - 1), "role"));
            if (strcmp(role, "assistant") || !strcmp(prev, "assistant"))
                continue;
            json_t *pbody = json_deep_copy(body);
            json_t *pmsgs = json_object_get(pbody, "messages");
            while (json_array_size(pmsgs) > cut)
                json_array_remove(pmsgs, json_array_size(pmsgs) - 1);
            json_object_del(pbody, "continue_final_message");
            json_object_del(pbody, "add_generation_prompt");
            ks_chat_request *prefix = parse(pbody, c.apis[i], c.names[i]);
            for (int f = 0; f < 2; f++) {
                if (fams[f] == KS_CHAT_FORMAT_QWEN3 && !qwen3_keeps_prefix(prefix, full)) {
                    skipped++;
                    continue;
                }
                size_t plen, flen;
                char *p = render(fams[f], prefix, NULL, &plen, c.names[i]);
                char *whole = render(fams[f], full, NULL, &flen, c.names[i]);
                if (plen > flen || memcmp(p, whole, plen)) {
                    char what[256];
                    snprintf(what, sizeof what, "%s cut at message %zu [%s]", c.names[i], cut,
                             ks_chat_format_name(fams[f]));
                    show_diff(what, whole, flen, p, plen);
                    cr_assert_fail("%s: the shorter conversation's prompt is not a prefix", what);
                }
                checked[f]++;
                free(p);
                free(whole);
            }
            ks_chat_request_destroy(prefix);
            json_decref(pbody);
        }
        ks_chat_request_destroy(full);
        json_decref(body);
    }
    fprintf(stderr, "append-only: %zu qwen3 and %zu qwen3-coder cuts checked, %zu qwen3 cuts "
            "where the template rewrites earlier turns\n", checked[0], checked[1], skipped);
    cr_assert_gt(checked[0], 20);
    cr_assert_gt(checked[1], 40);
    corpus_free(&c);
}

/* Qwen3's template drops earlier turns' reasoning once a new query arrives: the renderer
 * must do the same (byte identity wins over append-only). */
Test(chat_render, test_chat_render_qwen3_drops_reasoning_after_new_query) {
    json_error_t jerr;
    json_t *body = json_loads(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Q1\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"R1\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"A1\"}]},{\"role\":\"user\",\"content\":\"Q2\"}]}", 0, &jerr);
    cr_assert_not_null(body, "%s", jerr.text);
    ks_chat_request *req = parse(body, KS_API_ANTHROPIC, "inline");
    size_t len;
    char *out = render(KS_CHAT_FORMAT_QWEN3, req, NULL, &len, "inline");
    cr_assert_str_eq(out, "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                          "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    /* without the new query, the reasoning of the final assistant turn is rendered */
    req->n_messages--;
    ks_chat_message tail = req->messages[req->n_messages];
    req->add_generation_prompt = false;
    out = render(KS_CHAT_FORMAT_QWEN3, req, NULL, &len, "inline");
    cr_assert_str_eq(out, "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\nR1\n</think>\n\nA1<|im_end|>\n");
    free(out);
    req->messages[req->n_messages++] = tail;
    ks_chat_request_destroy(req);
    json_decref(body);
}

/* ---- tool-call memory hook ----------------------------------------------------------------- */

static const char sampled_call[] = "<tool_call>\n{\"name\":\"Bash\",  \"arguments\": {\"command\":\"ls\"}}\n</tool_call>";

static const char *recall(void *ctx, const char *call_id, size_t *len) {
    int *calls = ctx;
    (*calls)++;
    if (strcmp(call_id, "toolu_known"))
        return NULL;
    *len = sizeof sampled_call - 1;
    return sampled_call;
}

Test(chat_render, test_chat_render_uses_sampled_tool_call_text) {
    json_error_t jerr;
    json_t *body = json_loads(
        "{\"tools\":[{\"name\":\"Bash\",\"input_schema\":{\"type\":\"object\"}}],\"messages\":["
        "{\"role\":\"user\",\"content\":\"go\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_known\",\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_other\",\"name\":\"Bash\",\"input\":{\"command\":\"pwd\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_known\",\"content\":\"a\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_other\",\"content\":\"b\"}]}]}", 0, &jerr);
    cr_assert_not_null(body, "%s", jerr.text);
    ks_chat_request *req = parse(body, KS_API_ANTHROPIC, "hook");
    int calls = 0;
    ks_chat_render_opts opts = {.toolcall_text = recall, .toolcall_ctx = &calls};
    size_t len;
    char *out = render(KS_CHAT_FORMAT_QWEN3, req, &opts, &len, "hook");
    cr_assert_eq(calls, 2, "the hook is asked once per call, got %d", calls);
    cr_assert_not_null(strstr(out, "<|im_start|>assistant\n" "<tool_call>\n{\"name\":\"Bash\",  \"arguments\": {\"command\":\"ls\"}}\n</tool_call>\n"
                                   "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"pwd\"}}\n</tool_call><|im_end|>"),
                      "sampled text verbatim, unknown call re-serialised:\n%s", out);
    free(out);
    calls = 0;
    out = render(KS_CHAT_FORMAT_QWEN3_CODER, req, &opts, &len, "hook");
    cr_assert_not_null(strstr(out, "<|im_start|>assistant\n<tool_call>\n{\"name\":\"Bash\",  \"arguments\": {\"command\":\"ls\"}}\n</tool_call>\n"
                                   "<tool_call>\n<function=Bash>\n<parameter=command>\npwd\n</parameter>\n</function>\n</tool_call><|im_end|>"),
                      "coder: sampled text verbatim:\n%s", out);
    free(out);
    ks_chat_request_destroy(req);
    json_decref(body);
}

/* ---- formats -------------------------------------------------------------------------------- */

static ks_status detect_file(const char *rel, ks_chat_format *f, ks_err *err) {
    size_t len = 0;
    char *t = (char *)ks_test_read_file(ks_test_fixture(rel), &len);
    cr_assert_not_null(t, "%s", rel);
    ks_status st = ks_chat_format_detect(t, len, f, err);
    free(t);
    return st;
}

Test(chat_render, test_chat_render_detects_families_by_markers) {
    ks_err err;
    ks_err_clear(&err);
    ks_chat_format f = KS_CHAT_FORMAT_NONE;
    cr_assert_eq(detect_file("templates/Qwen-Qwen3-0.6B.jinja", &f, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(f, KS_CHAT_FORMAT_QWEN3);
    cr_assert_eq(detect_file("templates/Qwen3-Coder.jinja", &f, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(f, KS_CHAT_FORMAT_QWEN3_CODER);
    /* Qwen2.5's Hermes template has no <think>: not taken for Qwen3 */
    cr_assert_eq(detect_file("templates/Qwen-Qwen2.5-7B-Instruct.jinja", &f, &err), KS_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "qwen3, qwen3-coder, chatml") && strstr(err.msg, "--chat-template"), "%s", err.msg);

    /* a re-indented copy is still recognised */
    const char *chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
    cr_assert_eq(ks_chat_format_detect(chatml, strlen(chatml), &f, NULL), KS_OK);
    cr_assert_eq(f, KS_CHAT_FORMAT_CHATML);
    cr_assert_eq(ks_chat_format_detect("", 0, &f, NULL), KS_ERR_UNSUPPORTED);
    const char *llama = "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}";
    cr_assert_eq(ks_chat_format_detect(llama, strlen(llama), &f, NULL), KS_ERR_UNSUPPORTED);

    /* the fixture models carry the real templates */
    static const struct { const char *model; ks_chat_format want; } models[] = {
        {"models/mini-qwen3-f32.gguf", KS_CHAT_FORMAT_QWEN3},
        {"models/mini-qwen3moe-f32.gguf", KS_CHAT_FORMAT_QWEN3_CODER},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(models); i++) {
        ks_gguf *g = NULL;
        cr_assert_eq(ks_gguf_open(&g, ks_test_fixture(models[i].model), &err), KS_OK, "%s", err.msg);
        const ks_gguf_kv *kv = ks_gguf_find(g, "tokenizer.chat_template");
        cr_assert_not_null(kv);
        cr_assert_eq(ks_chat_format_detect(kv->value.v.str.ptr, kv->value.v.str.len, &f, &err), KS_OK, "%s", err.msg);
        cr_assert_eq(f, models[i].want, "%s: %s", models[i].model, ks_chat_format_name(f));
        ks_gguf_close(g);
    }
}

Test(chat_render, test_chat_render_format_names) {
    ks_chat_format f = KS_CHAT_FORMAT_NONE;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_chat_format_by_name("qwen3", &f, &err), KS_OK);
    cr_assert_eq(f, KS_CHAT_FORMAT_QWEN3);
    cr_assert_eq(ks_chat_format_by_name("Qwen3-Coder", &f, &err), KS_OK);
    cr_assert_eq(f, KS_CHAT_FORMAT_QWEN3_CODER);
    cr_assert_eq(ks_chat_format_by_name("chatml", &f, &err), KS_OK);
    cr_assert_eq(f, KS_CHAT_FORMAT_CHATML);
    cr_assert_eq(ks_chat_format_by_name("llama3", &f, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "'llama3'") && strstr(err.msg, "qwen3, qwen3-coder, chatml"), "%s", err.msg);
    cr_assert_eq(ks_chat_format_toolcall_syntax(KS_CHAT_FORMAT_QWEN3), KS_TOOLCALL_SYNTAX_HERMES_JSON);
    cr_assert_eq(ks_chat_format_toolcall_syntax(KS_CHAT_FORMAT_QWEN3_CODER), KS_TOOLCALL_SYNTAX_QWEN3_XML);
}

Test(chat_render, test_chat_render_chatml_and_refusals) {
    ks_chat_request *req = NULL;
    cr_assert_eq(ks_chat_request_create(&req), KS_OK);
    ks_err err;
    ks_err_clear(&err);
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(ks_chat_render(KS_CHAT_FORMAT_QWEN3, req, NULL, &out, &len, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "messages"), "%s", err.msg);

    ks_chat_message *m;
    cr_assert_eq(ks_chat_add_message(req, KS_CHAT_SYSTEM, &m), KS_OK);
    cr_assert_eq(ks_chat_message_add_text(m, "S", 1, false), KS_OK);
    cr_assert_eq(ks_chat_add_message(req, KS_CHAT_USER, &m), KS_OK);
    cr_assert_eq(ks_chat_message_add_text(m, "a", 1, false), KS_OK);
    cr_assert_eq(ks_chat_message_add_text(m, "b", 1, true), KS_OK);
    cr_assert(m->cache_breakpoint);
    cr_assert_eq(ks_chat_render(KS_CHAT_FORMAT_CHATML, req, NULL, &out, &len, &err), KS_OK, "%s", err.msg);
    cr_assert_str_eq(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\n");
    cr_assert_eq(len, strlen(out));
    free(out);

    cr_assert_eq(ks_chat_add_tool(req, "t", NULL, NULL, false), KS_OK);
    ks_err_clear(&err);
    cr_assert_eq(ks_chat_render(KS_CHAT_FORMAT_CHATML, req, NULL, &out, &len, &err), KS_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "tools"), "%s", err.msg);

    /* continue_final needs a final assistant message */
    req->continue_final = true;
    ks_err_clear(&err);
    cr_assert_eq(ks_chat_render(KS_CHAT_FORMAT_QWEN3, req, NULL, &out, &len, &err), KS_ERR_INVALID);
    ks_chat_request_destroy(req);
}

/* ---- Python semantics ---------------------------------------------------------------------- */

static char *tojson_of(const char *json_text, bool pystr) {
    json_error_t jerr;
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "%s: %s", json_text, jerr.text);
    ks_chat_buf b;
    ks_chat_buf_init(&b);
    if (pystr)
        ks_chat_pystr(&b, v);
    else
        ks_chat_tojson(&b, v);
    json_decref(v);
    char *out;
    cr_assert_eq(ks_chat_buf_take(&b, &out, NULL), KS_OK);
    return out;
}

Test(chat_render, test_chat_render_tojson_is_python_json_dumps) {
    static const struct { const char *in, *json, *py; } cases[] = {
        {"{\"b\":1,\"a\":[true,false,null]}", "{\"b\": 1, \"a\": [true, false, null]}", "{'b': 1, 'a': [True, False, None]}"},
        {"\"\\u00e9\\u65e5\\ud83c\\udf89\"", "\"é日🎉\"", "é日🎉"},
        {"\"q\\\" b\\\\ \\n\\r\\t\\b\\f \\u0001 \\u001f \\u007f /\"", "\"q\\\" b\\\\ \\n\\r\\t\\b\\f \\u0001 \\u001f \x7f /\"", NULL},
        {"1.0", "1.0", "1.0"},
        {"1e16", "1e+16", "1e+16"},
        {"1e15", "1000000000000000.0", NULL},
        {"0.0001", "0.0001", NULL},
        {"0.00001", "1e-05", "1e-05"},
        {"-0.0", "-0.0", NULL},
        {"0.30000000000000004", "0.30000000000000004", NULL},
        {"123456789.125", "123456789.125", NULL},
        {"1.7976931348623157e308", "1.7976931348623157e+308", NULL},
        {"5e-324", "5e-324", NULL},
        {"-42", "-42", "-42"},
        {"[]", "[]", "[]"},
        {"{}", "{}", "{}"},
        {"[\"it's\", \"x\\\"y\", \"both'\\\"\"]", NULL, "[\"it's\", 'x\"y', 'both\\'\"']"},
        {"\"plain\"", "\"plain\"", "plain"},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(cases); i++) {
        if (cases[i].json) {
            char *j = tojson_of(cases[i].in, false);
            cr_expect_str_eq(j, cases[i].json, "tojson(%s)", cases[i].in);
            free(j);
        }
        if (cases[i].py) {
            char *p = tojson_of(cases[i].in, true);
            cr_expect_str_eq(p, cases[i].py, "str(%s)", cases[i].in);
            free(p);
        }
    }
}

Test(chat_render, test_chat_render_strip_is_python_strip) {
    static const struct { const char *in, *chars, *want; bool left, right; } cases[] = {
        {" \t\n x y \r\n", NULL, "x y", true, true},
        {"\xe3\x80\x80 wide \xc2\xa0", NULL, "wide", true, true},      /* U+3000, U+00A0 */
        {"\xe2\x80\x8bzw\xe2\x80\x8b", NULL, "\xe2\x80\x8bzw\xe2\x80\x8b", true, true}, /* U+200B is not */
        {"\n\nkeep \n", "\n", "keep \n", true, false},
        {"\n\nkeep \n", "\n", "\n\nkeep ", false, true},
        {"\x1c\x1d\x1e\x1fx\xc2\x85", NULL, "x", true, true},
        {"   ", NULL, "", true, true},
        {"\xff bad", NULL, "\xff bad", true, true},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(cases); i++) {
        size_t a, n;
        ks_chat_strip(cases[i].in, strlen(cases[i].in), cases[i].chars, cases[i].left, cases[i].right, &a, &n);
        cr_expect(n == strlen(cases[i].want) && !memcmp(cases[i].in + a, cases[i].want, n),
                  "strip case %zu: got [%.*s] want [%s]", i, (int)n, cases[i].in + a, cases[i].want);
    }
}
