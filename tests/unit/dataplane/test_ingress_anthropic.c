/* tests/unit/dataplane/test_ingress_anthropic.c - the Anthropic ingress translator against
 * golden fixtures (tests/fixtures/anthropic-ingress/, built from Anthropic's and OpenAI's
 * documented examples), compared field by field; refusals name the field; truncated and
 * mangled inputs never crash. Runs from tests/unit/dataplane (CTest's working directory). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cJSON.h>

#include "dp_ingress.h"

#define FIXTURE_DIR "../../fixtures/anthropic-ingress/"
#include "../fixture.h"

static const struct dp_ingress_ops *ops = &dp_ingress_anthropic;

/* ---- helpers ---------------------------------------------------------------------------- */

/* The first difference between <want> and <got> (paths like messages[2].content), or false. */
static bool json_diff(const cJSON *want, const cJSON *got, const char *path, char *out, size_t n)
{
    char sub[512];

    if (!want || !got) {
        snprintf(out, n, "%s: %s", path, want ? "missing" : "unexpected");
        return true;
    }
    if ((want->type & 0xff) != (got->type & 0xff) &&
        !(cJSON_IsBool(want) && cJSON_IsBool(got) && cJSON_IsTrue(want) == cJSON_IsTrue(got))) {
        snprintf(out, n, "%s: type differs", path);
        return true;
    }
    if (cJSON_IsObject(want)) {
        const cJSON *w, *g;
        cJSON_ArrayForEach(w, want)
        {
            snprintf(sub, sizeof(sub), "%s.%s", path, w->string);
            if (json_diff(w, cJSON_GetObjectItemCaseSensitive(got, w->string), sub, out, n))
                return true;
        }
        cJSON_ArrayForEach(g, got)
        {
            if (!cJSON_GetObjectItemCaseSensitive(want, g->string)) {
                snprintf(out, n, "%s.%s: unexpected field", path, g->string);
                return true;
            }
        }
        return false;
    }
    if (cJSON_IsArray(want)) {
        int nw = cJSON_GetArraySize(want), ng = cJSON_GetArraySize(got);
        for (int i = 0; i < nw || i < ng; i++) {
            snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            if (json_diff(cJSON_GetArrayItem(want, i), cJSON_GetArrayItem(got, i), sub, out, n))
                return true;
        }
        return false;
    }
    if (!cJSON_Compare(want, got, true)) {
        char *ws = cJSON_PrintUnformatted(want), *gs = cJSON_PrintUnformatted(got);
        snprintf(out, n, "%s: want %s, got %s", path, ws, gs);
        free(ws);
        free(gs);
        return true;
    }
    return false;
}

static void assert_json_equal(const cJSON *want, const cJSON *got, const char *what)
{
    char diff[1024];
    if (json_diff(want, got, "$", diff, sizeof(diff))) {
        char *gs = cJSON_Print(got);
        print_message("%s: got\n%s\n", what, gs);
        free(gs);
        fail_msg("%s: %s", what, diff);
    }
}

/* Collects what a stream writes; fails the write after <fail_after> calls when >= 0. */
struct sink {
    char *buf;
    size_t len;
    int writes;
    int fail_after;
};

static int sink_write(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;
    if (s->fail_after >= 0 && s->writes >= s->fail_after)
        return -1;
    s->buf = realloc(s->buf, s->len + len + 1);
    assert_non_null(s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = '\0';
    s->writes++;
    return 0;
}

/* Parses the SSE frames a stream wrote into [{"event","data"}], checking the framing: each
 * frame is "event: <type>\ndata: <json>\n\n" and data.type names the event. */
static cJSON *frames(const struct sink *s)
{
    cJSON *arr = cJSON_CreateArray();
    const char *p = s->buf ? s->buf : "";

    while (*p) {
        const char *nl, *end;
        char event[64];
        cJSON *data, *f;

        assert_memory_equal(p, "event: ", 7);
        nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true((size_t)(nl - p - 7) < sizeof(event));
        memcpy(event, p + 7, (size_t)(nl - p - 7));
        event[nl - p - 7] = '\0';
        p = nl + 1;
        assert_memory_equal(p, "data: ", 6);
        end = strstr(p, "\n\n");
        assert_non_null(end);
        data = cJSON_ParseWithLength(p + 6, (size_t)(end - p - 6));
        if (!data)
            fail_msg("frame data is not JSON: %.*s", (int)(end - p - 6), p + 6);
        assert_string_equal(cJSON_GetObjectItem(data, "type")->valuestring, event);
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "event", event);
        cJSON_AddItemToObject(f, "data", data);
        cJSON_AddItemToArray(arr, f);
        p = end + 2;
    }
    return arr;
}

/* Feeds every "data: " line of <sse> to a new stream, then ends it with <failed>. */
static void run_stream(const char *sse, bool failed, struct sink *s)
{
    struct dp_ingress_stream *st = ops->stream_new("claude-sonnet-4-5", "req-1");
    const char *p = sse;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 6 && memcmp(p, "data: ", 6) == 0)
            ops->stream_chunk(st, p + 6, n - 6, sink_write, s);
        p = nl ? nl + 1 : NULL;
    }
    ops->stream_end(st, failed, sink_write, s);
    ops->stream_free(st);
}

static cJSON *translate_request(const char *body, struct dp_ingress_error *err)
{
    memset(err, 0, sizeof(*err));
    return ops->to_openai(body, strlen(body), err);
}

/* ---- requests --------------------------------------------------------------------------- */

static void test_request_fixtures(void **state)
{
    static const char *const names[] = {"basic", "tools", "tool-result", "images"};
    (void)state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char in_name[128], want_name[128];
        struct dp_ingress_error err;
        char *body;
        size_t len;
        cJSON *got, *want;

        snprintf(in_name, sizeof(in_name), "request-%s.anthropic.json", names[i]);
        snprintf(want_name, sizeof(want_name), "request-%s.openai.json", names[i]);
        body = read_fixture(in_name, &len);
        memset(&err, 0, sizeof(err));
        got = ops->to_openai(body, len, &err);
        if (!got)
            fail_msg("%s refused: %d %s", in_name, err.status, err.message);
        want = parse_fixture(want_name);
        assert_json_equal(want, got, in_name);
        cJSON_Delete(want);
        cJSON_Delete(got);
        free(body);
    }
}

static void test_request_refusals(void **state)
{
    static const struct {
        const char *body;
        const char *code;
        const char *param;
    } cases[] = {
        {"{\"model\":", "invalid_json", ""},
        {"[1,2]", "invalid_json", ""},
        {"{\"model\":\"m\",\"model\":\"n\",\"max_tokens\":1,\"messages\":[]}", "invalid_json", ""},
        {"{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "missing_required_parameter", "model"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "missing_required_parameter", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "invalid_value", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
         "}",
         "invalid_value", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":\"9\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}"
         "]}",
         "invalid_value", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}", "invalid_type", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1}", "missing_required_parameter", "messages"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
         "{\"role\":\"bot\",\"content\":\"x\"}]}",
         "invalid_value", "messages[1].role"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\"}]}",
         "missing_required_parameter", "messages[0].content"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":7}]}",
         "invalid_type", "messages[0].content"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
         "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":[{\"type\":"
         "\"text\",\"text\":\"c\"},{\"text\":\"d\"}]}]}",
         "missing_required_parameter", "messages[2].content[1].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":"
         "\"document\",\"source\":{}}]}]}",
         "unsupported_content", "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":"
         "\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
         "unsupported_content", "messages[0].content[0].source.type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":"
         "\"image\",\"source\":{\"type\":\"base64\",\"data\":\"x\"}}]}]}",
         "missing_required_parameter", "messages[0].content[0].source.media_type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":"
         "\"tool_result\",\"content\":\"x\"}]}]}",
         "missing_required_parameter", "messages[0].content[0].tool_use_id"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
         "\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":[1]}]}]}",
         "invalid_type", "messages[0].content[0].input"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
         "\"type\":\"image\",\"source\":{}}]}]}",
         "unsupported_content", "messages[0].content[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"image\"}],\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "invalid_value", "system[0]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"system\":5,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "invalid_type", "system"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"tools\":[{\"type\":\"web_search_20250305\",\"name\":"
         "\"web_search\"}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "unsupported_tool", "tools[0].type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"tools\":[{\"name\":\"t\"}],\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "missing_required_parameter", "tools[0].input_schema"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"tool_choice\":{\"type\":\"tool\"},\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "missing_required_parameter", "tool_choice.name"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"tool_choice\":{\"type\":\"maybe\"},\"messages\":[{"
         "\"role\":\"user\",\"content\":\"x\"}]}",
         "invalid_value", "tool_choice.type"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"stop_sequences\":[\"a\",3],\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "invalid_type", "stop_sequences[1]"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"temperature\":\"hot\",\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "invalid_value", "temperature"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "invalid_type", "stream"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"metadata\":{\"user_id\":5},\"messages\":[{\"role\":"
         "\"user\",\"content\":\"x\"}]}",
         "invalid_type", "metadata.user_id"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_ingress_error err;
        cJSON *got = translate_request(cases[i].body, &err);
        if (got) {
            char *s = cJSON_PrintUnformatted(got);
            fail_msg("case %zu accepted: %s -> %s", i, cases[i].body, s);
        }
        assert_int_equal(err.status, 400);
        if (strcmp(err.code, cases[i].code) || strcmp(err.param, cases[i].param))
            fail_msg("case %zu: want %s/%s, got %s/%s (%s)", i, cases[i].code, cases[i].param,
                     err.code, err.param, err.message);
        /* The message starts with the field's path so a person can find it. */
        if (cases[i].param[0])
            assert_memory_equal(err.message, cases[i].param, strlen(cases[i].param));
        assert_true(err.message[0] != '\0');
    }
}

static void test_request_details(void **state)
{
    struct dp_ingress_error err;
    cJSON *got;
    const cJSON *m;
    (void)state;

    /* role "system" messages (newer SDKs), empty system dropped, any -> required, none. */
    got = translate_request(
        "{\"model\":\"m\",\"max_tokens\":5,\"system\":\"\",\"tool_choice\":{\"type\":\"none\"},"
        "\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],"
        "\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"S\"}]},"
        "{\"role\":\"user\",\"content\":[]},{\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"tool_use\",\"id\":\"t1\",\"name\":\"f\"}]}],\"stream\":false}",
        &err);
    assert_non_null(got);
    m = cJSON_GetObjectItem(got, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring,
                        "system");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring, "");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content")));
    assert_string_equal(
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "tool_calls"), 0),
            "function")
            ->child->next->valuestring,
        "{}");
    assert_string_equal(cJSON_GetObjectItem(got, "tool_choice")->valuestring, "none");
    assert_null(cJSON_GetObjectItem(got, "stream"));
    assert_null(cJSON_GetObjectItem(got, "parallel_tool_calls"));
    cJSON_Delete(got);

    got = translate_request("{\"model\":\"m\",\"max_tokens\":5,\"tools\":[],\"tool_choice\":"
                            "{\"type\":\"any\",\"disable_parallel_tool_use\":true},"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                            &err);
    assert_non_null(got);
    assert_null(cJSON_GetObjectItem(got, "tool_choice"));
    assert_null(cJSON_GetObjectItem(got, "tools"));
    assert_null(cJSON_GetObjectItem(got, "parallel_tool_calls")); /* no tools: OpenAI refuses it */
    cJSON_Delete(got);
}

/* ---- answers ---------------------------------------------------------------------------- */

static char *answer(const char *body, int *rc, char **errmsg)
{
    char *out = NULL;
    size_t len = 0;
    *errmsg = NULL;
    *rc = ops->from_openai(body, strlen(body), "claude-sonnet-4-5", &out, &len, errmsg);
    if (*rc == 0)
        assert_int_equal(len, strlen(out));
    return out;
}

static void test_response_fixtures(void **state)
{
    static const char *const names[] = {"text", "tools"};
    (void)state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char in_name[128], want_name[128];
        char *body, *out, *errmsg;
        int rc;
        cJSON *got, *want;

        snprintf(in_name, sizeof(in_name), "response-%s.openai.json", names[i]);
        snprintf(want_name, sizeof(want_name), "response-%s.anthropic.json", names[i]);
        body = read_fixture(in_name, NULL);
        out = answer(body, &rc, &errmsg);
        if (rc < 0)
            fail_msg("%s: %s", in_name, errmsg);
        got = cJSON_Parse(out);
        want = parse_fixture(want_name);
        assert_json_equal(want, got, in_name);
        cJSON_Delete(want);
        cJSON_Delete(got);
        free(out);
        free(body);
    }
}

static void test_response_stop_reasons(void **state)
{
    static const struct {
        const char *choice;
        const char *stop;
    } cases[] = {
        {"{\"message\":{\"content\":\"a\"},\"finish_reason\":\"length\"}", "max_tokens"},
        {"{\"message\":{\"content\":\"a\"},\"finish_reason\":\"content_filter\"}", "refusal"},
        {"{\"message\":{\"content\":\"a\"},\"finish_reason\":null}", "end_turn"},
        {"{\"message\":{\"content\":null,\"refusal\":\"I can't help with that.\"},"
         "\"finish_reason\":\"stop\"}",
         "refusal"},
        {"{\"message\":{\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":"
         "\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"stop\"}",
         "tool_use"},
        {"{\"message\":{\"content\":\"\"},\"finish_reason\":\"stop\"}", "end_turn"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[512], *out, *errmsg;
        int rc;
        cJSON *got;

        snprintf(body, sizeof(body), "{\"id\":\"x\",\"choices\":[%s]}", cases[i].choice);
        out = answer(body, &rc, &errmsg);
        if (rc < 0)
            fail_msg("case %zu: %s", i, errmsg);
        got = cJSON_Parse(out);
        assert_string_equal(cJSON_GetObjectItem(got, "stop_reason")->valuestring, cases[i].stop);
        /* usage is always there, zero when the provider sent none */
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(got, "usage"), "output_tokens")->valueint, 0);
        if (i == 3)
            assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(got, "content"), 0)
                                    ->child->next->valuestring,
                                "I can't help with that.");
        if (i == 5)
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(got, "content")), 0);
        cJSON_Delete(got);
        free(out);
    }
}

static void test_response_refusals(void **state)
{
    static const char *const bodies[] = {
        "",
        "not json",
        "{\"choices\":[]}",
        "{\"choices\":[{\"message\":7}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"a\\\":\"}}]}}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"[1]\"}}]}}]}",
        "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c\",\"function\":{"
        "\"arguments\":\"{}\"}}]}}]}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *out = NULL, *errmsg = NULL;
        size_t len = 0;
        int rc = ops->from_openai(bodies[i], strlen(bodies[i]), "m", &out, &len, &errmsg);
        if (rc >= 0)
            fail_msg("case %zu accepted: %s", i, out);
        assert_null(out);
        assert_non_null(errmsg);
        free(errmsg);
    }
}

/* ---- streams ---------------------------------------------------------------------------- */

static void test_stream_fixtures(void **state)
{
    static const struct {
        const char *name;
        bool failed;
    } cases[] = {{"text", false}, {"tools", false}, {"error", true}};
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in_name[128], want_name[128];
        struct sink s = {.fail_after = -1};
        char *sse;
        cJSON *got, *want;

        snprintf(in_name, sizeof(in_name), "stream-%s.openai.sse", cases[i].name);
        snprintf(want_name, sizeof(want_name), "stream-%s.anthropic.json", cases[i].name);
        sse = read_fixture(in_name, NULL);
        run_stream(sse, cases[i].failed, &s);
        got = frames(&s);
        want = parse_fixture(want_name);
        assert_json_equal(want, got, in_name);
        cJSON_Delete(want);
        cJSON_Delete(got);
        free(s.buf);
        free(sse);
    }
}

static const char *last_event(cJSON *fr)
{
    cJSON *last = cJSON_GetArrayItem(fr, cJSON_GetArraySize(fr) - 1);
    return cJSON_GetObjectItem(last, "event")->valuestring;
}

static void test_stream_edges(void **state)
{
    struct sink s = {.fail_after = -1};
    cJSON *fr, *d;
    struct dp_ingress_stream *st;
    const char *text_chunk = "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}";
    (void)state;

    /* Only [DONE]: still a whole Anthropic message, with the request id in the message id. */
    run_stream("data: [DONE]\n", false, &s);
    fr = frames(&s);
    assert_int_equal(cJSON_GetArraySize(fr), 4);
    assert_string_equal(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 0), "data"), "message"),
            "id")
            ->valuestring,
        "msg_req-1");
    assert_string_equal(last_event(fr), "message_stop");
    cJSON_Delete(fr);
    free(s.buf);

    /* Cut before any finish_reason: an error event, never a silent end. */
    memset(&s, 0, sizeof(s));
    s.fail_after = -1;
    run_stream("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n",
               false, &s);
    fr = frames(&s);
    assert_string_equal(last_event(fr), "error");
    cJSON_Delete(fr);
    free(s.buf);

    /* finish_reason but no [DONE]: stream_end closes it; noise and other choices are skipped;
     * a refusal delta is text, and the answer's stop_reason is refusal. */
    memset(&s, 0, sizeof(s));
    s.fail_after = -1;
    run_stream(
        "data: not json\n"
        "data: [1,2]\n"
        "data: {\"id\":\"c\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}}]}\n"
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"No.\"}}]}\n"
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1e300,"
        "\"completion_tokens\":-5}}\n",
        false, &s);
    fr = frames(&s);
    assert_int_equal(cJSON_GetArraySize(fr), 7);
    assert_string_equal(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 3), "data"), "delta"),
            "text")
            ->valuestring,
        "No.");
    d = cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 5), "data");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(d, "delta"), "stop_reason")->valuestring,
        "refusal");
    /* absurd counts read as unknown */
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "usage"), "input_tokens"));
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(d, "usage"), "output_tokens")->valueint, 0);
    assert_string_equal(last_event(fr), "message_stop");
    cJSON_Delete(fr);
    free(s.buf);

    /* After the end nothing more is written; a failed stream adds nothing. */
    memset(&s, 0, sizeof(s));
    s.fail_after = -1;
    st = ops->stream_new(NULL, NULL);
    assert_int_equal(ops->stream_chunk(st, "[DONE]", 6, sink_write, &s), 0);
    size_t after_done = s.len;
    assert_int_equal(ops->stream_chunk(st, text_chunk, strlen(text_chunk), sink_write, &s), 0);
    assert_int_equal(ops->stream_end(st, false, sink_write, &s), 0);
    assert_int_equal(s.len, after_done);
    ops->stream_free(st);
    free(s.buf);

    /* A client that went away: the write error comes back so the caller stops. */
    memset(&s, 0, sizeof(s));
    s.fail_after = 1;
    st = ops->stream_new("m", "r");
    assert_int_not_equal(ops->stream_chunk(st, text_chunk, strlen(text_chunk), sink_write, &s), 0);
    ops->stream_free(st);
    free(s.buf);

    /* A tool call without an id still opens a block; more tool calls than the cap end the
     * stream with an error event. */
    memset(&s, 0, sizeof(s));
    s.fail_after = -1;
    st = ops->stream_new("m", "r");
    for (int i = 0; i < 200; i++) {
        char chunk[160];
        int n = snprintf(chunk, sizeof(chunk),
                         "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":%d,\"function\":"
                         "{\"arguments\":\"{}\"}}]}}]}",
                         i);
        ops->stream_chunk(st, chunk, (size_t)n, sink_write, &s);
    }
    ops->stream_end(st, false, sink_write, &s);
    ops->stream_free(st);
    fr = frames(&s);
    assert_string_equal(last_event(fr), "error");
    d = cJSON_GetObjectItem(cJSON_GetArrayItem(fr, 2), "data");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(d, "content_block"), "id")->valuestring, "toolu_0");
    cJSON_Delete(fr);
    free(s.buf);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void test_error_body(void **state)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {402, "billing_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {413, "request_too_large"},
        {422, "invalid_request_error"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "api_error"},
        {504, "timeout_error"},
        {529, "overloaded_error"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = ops->error_body(cases[i].status, "server_error", "some_code", "it \"broke\"");
        cJSON *j = cJSON_Parse(body);
        cJSON *e = cJSON_GetObjectItem(j, "error");
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "error");
        assert_string_equal(cJSON_GetObjectItem(e, "type")->valuestring, cases[i].type);
        assert_string_equal(cJSON_GetObjectItem(e, "message")->valuestring, "it \"broke\"");
        cJSON_Delete(j);
        free(body);
    }
}

/* ---- robustness ------------------------------------------------------------------------- */

/* Every prefix of every fixture, and every fixture with one byte flipped at each position,
 * through every translator: no crash, no leak (ASan), and a result or an error. */
static void test_mangled_inputs(void **state)
{
    static const char *const names[] = {
        "request-tools.anthropic.json",  "request-tool-result.anthropic.json",
        "request-images.anthropic.json", "response-tools.openai.json",
        "response-text.openai.json",     "stream-tools.openai.sse",
    };
    (void)state;

    for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
        size_t len;
        char *src = read_fixture(names[f], &len);
        char *buf = malloc(len + 1);
        assert_non_null(buf);
        for (size_t cut = 0; cut <= len; cut++) {
            for (int flip = 0; flip < 2; flip++) {
                struct dp_ingress_error err;
                struct sink s = {.fail_after = -1};
                char *out = NULL, *errmsg = NULL;
                size_t out_len;
                cJSON *req;

                memcpy(buf, src, len);
                buf[len] = '\0';
                size_t n = flip ? len : cut;
                if (flip && cut < len)
                    buf[cut] = (char)(buf[cut] ^ 0x20);
                memset(&err, 0, sizeof(err));
                req = ops->to_openai(buf, n, &err);
                assert_true(req != NULL || err.status >= 400);
                cJSON_Delete(req);
                if (ops->from_openai(buf, n, "m", &out, &out_len, &errmsg) == 0)
                    free(out);
                else
                    free(errmsg);
                buf[n] = '\0';
                run_stream(buf, false, &s);
                free(s.buf);
            }
        }
        free(buf);
        free(src);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fixtures),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_request_details),
        cmocka_unit_test(test_response_fixtures),
        cmocka_unit_test(test_response_stop_reasons),
        cmocka_unit_test(test_response_refusals),
        cmocka_unit_test(test_stream_fixtures),
        cmocka_unit_test(test_stream_edges),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_mangled_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
