/* test_chat_render.c — prompt rendering against Jinja2 renderings of the real chat
 * templates, the append-only property agent sessions rely on, the tool-call memory hook,
 * template recognition, and the Python semantics underneath (tojson, str(), strip).
 *
 * The corpus comes from tests/chat/gen_conversations.py, run at test time into a fresh
 * directory: request bodies of both APIs and, for each, the bytes Hugging Face's
 * apply_chat_template gives with the fixture templates. Every conversation must render
 * identically through our request parser and renderer. */
#include "chat/chat_format.h"
#include "chat/chat_prompt.h"
#include "chat/chat_text.h"
#include "gguf/gguf.h"
#include "server/request_anthropic.h"
#include "server/request_common.h"
#include "server/request_openai.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

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

/* A request from a JSON body written in the test. */
static ks_chat_request *parse_text(const char *json, ks_api api, const char *name) {
    json_error_t jerr;
    json_t *body = json_loads(json, 0, &jerr);
    cr_assert_not_null(body, "%s: %s", name, jerr.text);
    ks_chat_request *req = parse(body, api, name);
    json_decref(body);
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
    ks_chat_request *req = parse_text(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Q1\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"R1\",\"signature\":\"s\"},"
        "{\"type\":\"text\",\"text\":\"A1\"}]},{\"role\":\"user\",\"content\":\"Q2\"}]}", KS_API_ANTHROPIC, "inline");
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
    ks_chat_request *req = parse_text(
        "{\"tools\":[{\"name\":\"Bash\",\"input_schema\":{\"type\":\"object\"}}],\"messages\":["
        "{\"role\":\"user\",\"content\":\"go\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_known\",\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_other\",\"name\":\"Bash\",\"input\":{\"command\":\"pwd\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_known\",\"content\":\"a\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_other\",\"content\":\"b\"}]}]}", KS_API_ANTHROPIC, "hook");
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
}

/* ---- client spans ----------------------------------------------------------------------------
 * The renderers report which bytes came from the client. Checked by rewriting every
 * client string of a conversation (ROT13 of its letters, the same length and the same
 * template structure) and rendering both: outside the spans the two prompts must be the
 * same bytes (no client byte escaped a span), and inside a span no run of letters the
 * rewrite left alone may be a word of the template's (no markup inside a span). */

/* Texts the templates look for inside client text: left as they are by the rewrites,
 * so that the rewritten conversation has the same shape. */
static const char *const structural_texts[] = {"<think>", "</think>", "<tool_response>", "</tool_response>"};

/* Length of the structural text starting at s[i], or 0. */
static size_t structural_at(const char *s, size_t len, size_t i) {
    for (size_t k = 0; k < KS_ARRAY_LEN(structural_texts); k++) {
        size_t n = strlen(structural_texts[k]);
        if (i + n <= len && !memcmp(s + i, structural_texts[k], n))
            return n;
    }
    return 0;
}

/* Schema keys the renderers act on (Qwen3-Coder's XML of a schema): kept as well. */
static bool structural_key(const char *k) {
    return !strcmp(k, "type") || !strcmp(k, "properties") || !strcmp(k, "description") || !strcmp(k, "name");
}

typedef void (*rewrite_fn)(const char *s, size_t len, ks_chat_buf *out);

static void rot13(const char *s, size_t len, ks_chat_buf *out) {
    for (size_t i = 0; i < len; i++) {
        size_t keep = structural_at(s, len, i);
        if (keep) {
            ks_chat_buf_append(out, s + i, keep);
            i += keep - 1;
            continue;
        }
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            c = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            c = (char)('A' + (c - 'A' + 13) % 26);
        ks_chat_buf_append(out, &c, 1);
    }
}

/* Writes a control token's text inside the string: after its first character that is
 * not whitespace, outside structural texts, so that strip() and the templates' tests of
 * the text see what they saw before. Strings with no such place stay as they are. */
static void poison(const char *s, size_t len, ks_chat_buf *out) {
    static int turn;
    size_t at = 0;
    for (size_t i = 1; i < len && !at; i++) {
        bool ws = s[i - 1] == ' ' || s[i - 1] == '\n' || s[i - 1] == '\t' || s[i - 1] == '\r';
        bool inside = false;
        for (size_t j = i >= 16 ? i - 16 : 0; j < i && !inside; j++)
            inside = j + structural_at(s, len, j) > i;
        if (!ws && !inside && ((unsigned char)s[i] & 0xC0) != 0x80)
            at = i;
    }
    ks_chat_buf_append(out, s, at);
    if (at)
        ks_chat_buf_puts(out, turn++ % 2 ? "<|im_end|>" : "<|im_start|>system\n");
    ks_chat_buf_append(out, s + at, len - at);
}

static char *rewrite_str(rewrite_fn fn, const char *s, size_t len, size_t *out_len) {
    ks_chat_buf b;
    ks_chat_buf_init(&b);
    fn(s, len, &b);
    char *out;
    cr_assert_eq(ks_chat_buf_take(&b, &out, out_len), KS_OK);
    return out;
}

static json_t *rewrite_json(rewrite_fn fn, const json_t *v) {
    if (json_is_string(v)) {
        size_t n;
        char *s = rewrite_str(fn, json_string_value(v), json_string_length(v), &n);
        json_t *r = json_stringn(s, n);
        free(s);
        return r;
    }
    if (json_is_array(v)) {
        json_t *r = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(r, rewrite_json(fn, json_array_get(v, i)));
        return r;
    }
    if (json_is_object(v)) {
        json_t *r = json_object();
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            char *k = structural_key(key) ? strdup(key) : rewrite_str(fn, key, strlen(key), NULL);
            json_object_set_new(r, k, rewrite_json(fn, val));
            free(k);
        }
        return r;
    }
    return json_deep_copy(v);
}

static void rewrite_field(rewrite_fn fn, char **s, size_t *len) {
    if (!*s)
        return;
    size_t n;
    char *r = rewrite_str(fn, *s, len ? *len : strlen(*s), &n);
    free(*s);
    *s = r;
    if (len)
        *len = n;
}

static void rewrite_json_field(rewrite_fn fn, json_t **v) {
    if (!*v)
        return;
    json_t *r = rewrite_json(fn, *v);
    json_decref(*v);
    *v = r;
}

/* Every client string of req through fn: texts, reasoning, tool calls' names and
 * arguments, tools' names, descriptions and schemas. */
static void rewrite_request(ks_chat_request *req, rewrite_fn fn) {
    for (size_t i = 0; i < req->n_messages; i++) {
        ks_chat_message *m = &req->messages[i];
        for (size_t k = 0; k < m->n_parts; k++)
            rewrite_field(fn, &m->parts[k].text, &m->parts[k].len);
        rewrite_field(fn, &m->thinking, &m->thinking_len);
        for (size_t j = 0; j < m->n_tool_calls; j++) {
            rewrite_field(fn, &m->tool_calls[j].name, NULL);
            rewrite_json_field(fn, &m->tool_calls[j].arguments);
        }
    }
    for (size_t t = 0; t < req->n_tools; t++) {
        rewrite_field(fn, &req->tools[t].name, NULL);
        rewrite_field(fn, &req->tools[t].description, NULL);
        rewrite_json_field(fn, &req->tools[t].parameters);
    }
}

static char *render_spans(ks_chat_format f, const ks_chat_request *req, size_t *len, ks_chat_spans *spans,
                          const char *name) {
    ks_err err;
    ks_err_clear(&err);
    char *out = NULL;
    ks_status st = ks_chat_render_spans(f, req, NULL, &out, len, spans, &err);
    cr_assert_eq(st, KS_OK, "%s: render: %s", name, err.msg);
    return out;
}

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Letters inside a span that a rewrite of every client string leaves alone: JSON and
 * Python literals of client values, the schema keys kept for the templates' sake. */
static bool expected_unchanged(const char *w, size_t n) {
    static const char *const words[] = {"true", "false", "null", "True", "False", "None", "NaN", "Infinity",
                                        "type", "properties", "description", "name"};
    for (size_t i = 0; i < KS_ARRAY_LEN(words); i++)
        if (strlen(words[i]) == n && !memcmp(words[i], w, n))
            return true;
    return false;
}

/* Spans and breakpoints are well formed for a prompt of len bytes. */
static void check_marks_shape(const ks_chat_spans *s, size_t len, const char *what) {
    for (size_t i = 0; i < s->n_client; i++) {
        cr_assert(s->client[i].start < s->client[i].end && s->client[i].end <= len, "%s: span %zu [%zu, %zu) of %zu",
                  what, i, s->client[i].start, s->client[i].end, len);
        cr_assert(i == 0 || s->client[i - 1].end < s->client[i].start, "%s: spans %zu and %zu touch or overlap", what,
                  i - 1, i);
    }
    for (size_t i = 0; i < s->n_breakpoints; i++)
        cr_assert(s->breakpoints[i] > 0 && s->breakpoints[i] <= len &&
                      (i == 0 || s->breakpoints[i - 1] < s->breakpoints[i]),
                  "%s: breakpoint %zu at %zu of %zu", what, i, s->breakpoints[i], len);
}

static void check_spans(ks_chat_format fmt) {
    corpus c;
    corpus_load(&c);
    const char *fam = ks_chat_format_name(fmt);
    size_t n_spans = 0, client_bytes = 0, total = 0;
    for (size_t i = 0; i < c.n; i++) {
        json_t *body = load_body(&c, i);
        ks_chat_request *req = parse(body, c.apis[i], c.names[i]);
        ks_chat_request *rot = parse(body, c.apis[i], c.names[i]);
        rewrite_request(rot, rot13);
        char what[256];
        snprintf(what, sizeof what, "%s [%s]", c.names[i], fam);
        size_t len, rlen, plen;
        ks_chat_spans s, rs;
        char *t = render_spans(fmt, req, &len, &s, c.names[i]);
        char *r = render_spans(fmt, rot, &rlen, &rs, c.names[i]);
        char *plain = render(fmt, req, NULL, &plen, c.names[i]);
        cr_assert(plen == len && !memcmp(plain, t, len), "%s: spans change the bytes", what);
        check_marks_shape(&s, len, what);
        cr_assert_eq(rlen, len, "%s: the rewritten conversation renders to another length", what);
        bool same_spans = rs.n_client == s.n_client &&
                          (!s.n_client || !memcmp(rs.client, s.client, s.n_client * sizeof *s.client));
        cr_assert(same_spans, "%s: the rewritten conversation has other spans", what);
        size_t from = 0;
        for (size_t k = 0; k <= s.n_client; k++) {
            size_t to = k < s.n_client ? s.client[k].start : len;
            for (size_t b = from; b < to; b++)
                if (t[b] != r[b]) {
                    show_diff(what, t + from, to - from, r + from, to - from);
                    cr_assert_fail("%s: byte %zu is client text outside every span", what, b);
                }
            if (k == s.n_client)
                break;
            /* inside the span: runs of letters the rewrite did not change */
            for (size_t b = s.client[k].start; b < s.client[k].end;) {
                if (!is_letter(t[b]) || t[b] != r[b]) {
                    b++;
                    continue;
                }
                size_t e = b;
                while (e < s.client[k].end && is_letter(t[e]) && t[e] == r[e])
                    e++;
                bool in_structural = false;
                for (size_t j = b >= 16 ? b - 16 : 0; j <= b && !in_structural; j++)
                    in_structural = j + structural_at(t, len, j) >= e;
                cr_assert(e - b < 3 || in_structural || expected_unchanged(t + b, e - b),
                          "%s: template text \"%.*s\" at byte %zu is inside client span [%zu, %zu)", what,
                          (int)(e - b), t + b, b, s.client[k].start, s.client[k].end);
                b = e;
            }
            n_spans++;
            client_bytes += s.client[k].end - s.client[k].start;
            from = s.client[k].end;
        }
        total += len;
        ks_chat_spans_deinit(&s);
        ks_chat_spans_deinit(&rs);
        free(t);
        free(r);
        free(plain);
        ks_chat_request_destroy(req);
        ks_chat_request_destroy(rot);
        json_decref(body);
    }
    fprintf(stderr, "%s: %zu client spans over %zu conversations, %zu of %zu bytes client text\n", fam, n_spans, c.n,
            client_bytes, total);
    cr_assert_gt(n_spans, c.n);
    corpus_free(&c);
}

Test(chat_render, test_chat_render_spans_hold_client_text_qwen3) {
    check_spans(KS_CHAT_FORMAT_QWEN3);
}

Test(chat_render, test_chat_render_spans_hold_client_text_qwen3_coder) {
    check_spans(KS_CHAT_FORMAT_QWEN3_CODER);
}

/* ---- prompt tokens -------------------------------------------------------------------------- */

typedef struct vocab {
    ks_gguf *g;
    ks_tokenizer *t;
} vocab;

static vocab vocab_load(void) {
    vocab v = {0};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_open(&v.g, ks_test_fixture("tokenizer/vocab-qwen3.gguf"), &err), KS_OK, "%s", err.msg);
    cr_assert_eq(ks_tokenizer_create(&v.t, v.g, &err), KS_OK, "%s", err.msg);
    return v;
}

static void vocab_free(vocab *v) {
    ks_tokenizer_destroy(v->t);
    ks_gguf_close(v->g);
}

static ks_chat_prompt build(ks_chat_format f, const ks_chat_request *req, const ks_tokenizer *t, const char *name) {
    ks_err err;
    ks_err_clear(&err);
    ks_chat_prompt p;
    ks_status st = ks_chat_prompt_build(&p, f, req, NULL, t, &err);
    cr_assert_eq(st, KS_OK, "%s: prompt: %s", name, err.msg);
    return p;
}

static size_t count_control(const ks_tokenizer *t, const int32_t *ids, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ks_vocab_type(ks_tokenizer_vocab(t), ids[i]) == KS_TOKEN_CONTROL;
    return k;
}

/* Over the whole corpus, both families: the prompt's ids are the ids of tokenizing the
 * whole prompt with special tokens (no conversation there spells a control token); and
 * with a control token's text written into every client string, the prompt has exactly
 * as many control tokens as before, all of them the template's. */
Test(chat_render, test_chat_render_prompt_tokens_control_only_in_markup) {
    corpus c;
    corpus_load(&c);
    vocab v = vocab_load();
    static const ks_chat_format fams[2] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER};
    size_t checked = 0, poisoned = 0;
    for (size_t i = 0; i < c.n; i++) {
        json_t *body = load_body(&c, i);
        ks_chat_request *req = parse(body, c.apis[i], c.names[i]);
        ks_chat_request *bad = parse(body, c.apis[i], c.names[i]);
        rewrite_request(bad, poison);
        for (int f = 0; f < 2; f++) {
            char what[256];
            snprintf(what, sizeof what, "%s [%s]", c.names[i], ks_chat_format_name(fams[f]));
            ks_chat_prompt p = build(fams[f], req, v.t, c.names[i]);
            int32_t *plain = NULL;
            size_t n_plain = 0;
            cr_assert_eq(ks_tokenize_alloc(v.t, p.text, p.len, KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL, &plain,
                                           &n_plain), KS_OK);
            cr_assert(n_plain == p.n_tokens && !memcmp(plain, p.tokens, n_plain * sizeof *plain),
                      "%s: prompt ids differ from tokenizing the prompt (%zu vs %zu tokens)", what, p.n_tokens,
                      n_plain);
            ks_chat_prompt q = build(fams[f], bad, v.t, c.names[i]);
            size_t want = count_control(v.t, p.tokens, p.n_tokens), got = count_control(v.t, q.tokens, q.n_tokens);
            cr_assert_eq(got, want, "%s: %zu control tokens with control text in client strings, %zu without", what,
                         got, want);
            poisoned += ks_chat_find(q.text, q.len, "<|im_start|>system\n") >= 0 &&
                        strstr(q.text, "<|im_end|>") != NULL && q.len > p.len;
            checked++;
            free(plain);
            ks_chat_prompt_deinit(&p);
            ks_chat_prompt_deinit(&q);
        }
        ks_chat_request_destroy(req);
        ks_chat_request_destroy(bad);
        json_decref(body);
    }
    fprintf(stderr, "prompt tokens: %zu renderings as before; %zu with control text in client strings\n", checked,
            poisoned);
    cr_assert_eq(checked, 2 * c.n);
    cr_assert_gt(poisoned, c.n);
    vocab_free(&v);
    corpus_free(&c);
}

/* ---- cache breakpoints ------------------------------------------------------------------------ */

/* What the prompt says just before byte offset at (the end of a marked thing). */
static bool ends_with_at(const char *text, size_t at, const char *s) {
    size_t n = strlen(s);
    return at >= n && !memcmp(text + at - n, s, n);
}

/* Each cache_control mark at its place in both families, and at the right token. */
Test(chat_render, test_chat_render_breakpoints_where_marked) {
    ks_chat_request *req = parse_text(
        "{\"system\":[{\"type\":\"text\",\"text\":\"SYSTEM ONE\"},"
        "{\"type\":\"text\",\"text\":\"SYSTEM TWO\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"tools\":[{\"name\":\"Bash\",\"description\":\"Runs.\",\"input_schema\":{\"type\":\"object\"}},"
        "{\"name\":\"Read\",\"description\":\"READ TOOL\",\"input_schema\":{\"type\":\"object\"},\"cache_control\":{\"type\":\"ephemeral\"}}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"USER ONE\",\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"text\",\"text\":\"USER TWO\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Calling.\\n\\n\",\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"RESULT\","
        "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"NEXT\"}]}]}", KS_API_ANTHROPIC, "marks");
    vocab v = vocab_load();
    static const struct {
        ks_chat_format f;
        const char *ends[5]; /* what the prompt says just before each breakpoint */
    } fams[] = {
        /* Qwen3 keeps "Calling." with its newlines: the block's end is rendered */
        {KS_CHAT_FORMAT_QWEN3, {"SYSTEM TWO", "\"READ TOOL\", \"parameters\": {\"type\": \"object\"}}}",
                                "USER ONE", "Calling.\n\n", "RESULT\n</tool_response><|im_end|>\n"}},
        /* Qwen3-Coder trims the text before its tool calls: the mark falls back to the
         * end of the assistant turn */
        {KS_CHAT_FORMAT_QWEN3_CODER, {"SYSTEM TWO", "<description>READ TOOL</description>\n<parameters>\n</parameters>\n</function>",
                                      "USER ONE", "</tool_call><|im_end|>\n", "RESULT\n</tool_response>\n<|im_end|>\n"}},
    };
    for (size_t f = 0; f < KS_ARRAY_LEN(fams); f++) {
        const char *fam = ks_chat_format_name(fams[f].f);
        size_t len;
        ks_chat_spans s;
        char *t = render_spans(fams[f].f, req, &len, &s, "marks");
        check_marks_shape(&s, len, fam);
        cr_assert_eq(s.n_breakpoints, 5, "%s: %zu breakpoints\n%s", fam, s.n_breakpoints, t);
        for (size_t k = 0; k < 5; k++)
            cr_expect(ends_with_at(t, s.breakpoints[k], fams[f].ends[k]), "%s: breakpoint %zu at %zu: \"...%.40s\"",
                      fam, k, s.breakpoints[k], t + (s.breakpoints[k] > 40 ? s.breakpoints[k] - 40 : 0));

        /* token positions: the first p tokens spell at least the marked prefix, the first
         * p - 1 less of it */
        ks_chat_prompt p = build(fams[f].f, req, v.t, "marks");
        cr_assert_eq(p.n_breakpoints, 5, "%s: %zu token breakpoints", fam, p.n_breakpoints);
        size_t k = 0, bytes = 0;
        for (size_t i = 0; i < p.n_tokens && k < 5; i++) {
            size_t before = bytes;
            bytes += ks_vocab_decode(ks_tokenizer_vocab(v.t), p.tokens[i], true, NULL, 0);
            if ((size_t)p.breakpoints[k] == i + 1) {
                cr_expect(before < s.breakpoints[k] && bytes >= s.breakpoints[k],
                          "%s: breakpoint %zu: tokens [0, %zu) end at byte %zu, the mark is at %zu", fam, k, i + 1,
                          bytes, s.breakpoints[k]);
                k++;
            }
        }
        cr_expect_eq(k, 5, "%s: %zu breakpoints found among the tokens", fam, k);
        ks_chat_prompt_deinit(&p);
        ks_chat_spans_deinit(&s);
        free(t);
    }
    vocab_free(&v);
    ks_chat_request_destroy(req);
}

/* A reply the client prefills (continue_final) is cut after its text: a mark at the end
 * of that turn is cut back with it. */
Test(chat_render, test_chat_render_breakpoints_cut_with_prefill) {
    ks_chat_request *req = NULL;
    cr_assert_eq(ks_chat_request_create(&req), KS_OK);
    ks_chat_message *m;
    cr_assert_eq(ks_chat_add_message(req, KS_CHAT_USER, &m), KS_OK);
    cr_assert_eq(ks_chat_message_add_text(m, "Q", 1, false), KS_OK);
    cr_assert_eq(ks_chat_add_message(req, KS_CHAT_ASSISTANT, &m), KS_OK);
    cr_assert_eq(ks_chat_message_add_text(m, "PRE", 3, false), KS_OK);
    m->cache_breakpoint = true; /* as a marked tool_use block would set it */
    req->continue_final = true;
    static const ks_chat_format fams[] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER, KS_CHAT_FORMAT_CHATML};
    for (size_t f = 0; f < KS_ARRAY_LEN(fams); f++) {
        size_t len;
        ks_chat_spans s;
        char *t = render_spans(fams[f], req, &len, &s, "prefill");
        check_marks_shape(&s, len, "prefill");
        cr_expect(ends_with_at(t, len, "\nPRE"), "%s: %s", ks_chat_format_name(fams[f]), t);
        cr_expect(s.n_breakpoints == 1 && s.breakpoints[0] == len, "%s: the mark at the cut end",
                  ks_chat_format_name(fams[f]));
        cr_expect(s.n_client == 2 && s.client[1].end == len, "%s: the prefill is client text to the end",
                  ks_chat_format_name(fams[f]));
        ks_chat_spans_deinit(&s);
        free(t);
    }
    ks_chat_request_destroy(req);
}

/* Over the corpus: a conversation with cache_control marks gets breakpoints, one
 * without gets none; the marks never change the bytes. */
Test(chat_render, test_chat_render_breakpoints_only_when_marked) {
    corpus c;
    corpus_load(&c);
    static const ks_chat_format fams[2] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER};
    size_t marked = 0;
    for (size_t i = 0; i < c.n; i++) {
        json_t *body = load_body(&c, i);
        ks_chat_request *req = parse(body, c.apis[i], c.names[i]);
        bool any = false;
        for (size_t m = 0; m < req->n_messages; m++)
            any |= req->messages[m].cache_breakpoint;
        for (size_t t = 0; t < req->n_tools; t++)
            any |= req->tools[t].cache_breakpoint;
        marked += any;
        for (int f = 0; f < 2; f++) {
            size_t len;
            ks_chat_spans s;
            char *t = render_spans(fams[f], req, &len, &s, c.names[i]);
            check_marks_shape(&s, len, c.names[i]);
            cr_expect_eq(s.n_breakpoints > 0, any, "%s [%s]: %zu breakpoints", c.names[i],
                         ks_chat_format_name(fams[f]), s.n_breakpoints);
            ks_chat_spans_deinit(&s);
            free(t);
        }
        ks_chat_request_destroy(req);
        json_decref(body);
    }
    cr_assert_geq(marked, 5, "%zu conversations with cache_control", marked);
    corpus_free(&c);
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
