/* tests/unit/dataplane/test_provider_anthropic.c - the Anthropic Messages adapter against
 * golden fixtures (tests/fixtures/anthropic/, from Anthropic's API documentation examples
 * and the OpenAI objects they must become), plus every mapping rule and malformed input.
 * Runs with tests/unit/dataplane as the working directory (tests/CMakeLists.txt). */
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

#include "dp_anthropic.h"
#include "dp_provider.h"
#include "sy_policy.h"
#include "sy_sse.h"

#define FIXTURE_DIR "../../fixtures/anthropic/"
#include "../fixture.h"
#define CREATED 1700000000

/* The structs hold char *: writable storage, since string literals are const here. */
static char prov_name[] = "anthropic", prov_url[] = "https://api.anthropic.com",
            prov_env[] = "SY_TEST_ANTHROPIC_KEY", version[] = "2024-10-22";
static char model_name[] = "claude", model_up[] = "claude-sonnet-4-20250514";
static char chat_url[] = "https://api.anthropic.com/v1/messages", request_id[] = "req-1";

static struct sy_provider provider = {
    .name = prov_name,
    .kind = SY_PROVIDER_ANTHROPIC,
    .base_url = prov_url,
    .api_key_env = prov_env,
};
static struct sy_model model = {.name = model_name, .upstream_model = model_up};

static const struct dp_provider_ops *ops(void)
{
    return dp_provider_ops_for(SY_PROVIDER_ANTHROPIC);
}

static struct dp_xctx xctx(bool stream)
{
    return (struct dp_xctx){
        .model = &model, .request_id = request_id, .created = CREATED, .stream = stream};
}

/* ---- helpers --------------------------------------------------------------------------- */

/* Fails with both documents printed when they differ. */
static void assert_json_equal(const cJSON *want, const cJSON *got, const char *what)
{
    if (!cJSON_Compare(want, got, true)) {
        char *w = cJSON_Print(want), *g = cJSON_Print(got);
        print_error("%s differs\n--- want\n%s\n--- got\n%s\n", what, w, g);
        free(w);
        free(g);
        fail();
    }
}

/* Every member of <want> is in <got> with the same value. */
static void assert_json_subset(const cJSON *want, const cJSON *got, const char *what)
{
    const cJSON *m;

    if (!cJSON_IsObject(want)) {
        assert_json_equal(want, got, what);
        return;
    }
    if (!cJSON_IsObject(got))
        fail_msg("%s: not an object", what);
    cJSON_ArrayForEach(m, want)
    {
        char sub[256];
        snprintf(sub, sizeof(sub), "%s.%s", what, m->string);
        assert_json_subset(m, cJSON_GetObjectItemCaseSensitive(got, m->string), sub);
    }
}

/* Runs chat_request; returns the parsed body or NULL with *err set. */
static cJSON *translate(const cJSON *req, bool stream, char **err)
{
    struct dp_provider_rt rt = {.provider = &provider, .chat_url = chat_url};
    struct dp_xctx x = xctx(stream);
    struct dp_upreq up = {0};
    cJSON *body;
    int rc;

    *err = NULL;
    rc = ops()->chat_request(&rt, req, &x, &up, err);
    if (rc < 0) {
        assert_int_equal(rc, -EINVAL);
        assert_non_null(*err);
        assert_null(up.body);
        dp_upreq_cleanup(&up);
        return NULL;
    }
    assert_null(*err);
    assert_string_equal(up.url, "https://api.anthropic.com/v1/messages");
    assert_non_null(up.body);
    assert_int_equal(up.body_len, strlen(up.body));
    body = cJSON_Parse(up.body);
    assert_non_null(body);
    dp_upreq_cleanup(&up);
    return body;
}

static cJSON *translate_str(const char *req_json, char **err)
{
    cJSON *req = cJSON_Parse(req_json);
    cJSON *body;

    if (!req)
        fail_msg("test request is not JSON: %s", req_json);
    body = translate(req, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream")), err);
    cJSON_Delete(req);
    return body;
}

/* ---- prepare --------------------------------------------------------------------------- */

static bool has_header(const struct curl_slist *h, const char *line)
{
    for (; h; h = h->next) {
        if (strcmp(h->data, line) == 0)
            return true;
    }
    return false;
}

static void test_prepare(void **state)
{
    struct dp_provider_rt rt = {0};
    struct sy_provider p = provider;
    char *err = NULL;
    (void)state;

    setenv("SY_TEST_ANTHROPIC_KEY", "sk-ant-test", 1);
    assert_int_equal(ops()->prepare(&p, &rt, &err), 0);
    assert_string_equal(ops()->kind, "anthropic");
    assert_string_equal(rt.chat_url, "https://api.anthropic.com/v1/messages");
    assert_true(has_header(rt.headers, "x-api-key: sk-ant-test"));
    assert_true(has_header(rt.headers, "anthropic-version: 2023-06-01"));
    assert_true(has_header(rt.headers, "Content-Type: application/json"));
    assert_false(has_header(rt.headers, "Authorization: Bearer sk-ant-test"));
    dp_provider_rt_cleanup(&rt);

    p.api_version = version;
    assert_int_equal(ops()->prepare(&p, &rt, &err), 0);
    assert_true(has_header(rt.headers, "anthropic-version: 2024-10-22"));
    assert_false(has_header(rt.headers, "anthropic-version: 2023-06-01"));
    dp_provider_rt_cleanup(&rt);

    unsetenv("SY_TEST_ANTHROPIC_KEY");
    assert_int_equal(ops()->prepare(&p, &rt, &err), -EINVAL);
    assert_non_null(strstr(err, "SY_TEST_ANTHROPIC_KEY"));
    free(err);
    dp_provider_rt_cleanup(&rt);
}

static void test_unsupported_apis(void **state)
{
    (void)state;
    /* NULL ops make the chat layer answer 400 naming the model and the capability. */
    assert_null(ops()->embed_request);
    assert_null(ops()->completion_request);
    assert_non_null(ops()->chat_response);
    assert_non_null(ops()->stream_new);
}

/* ---- requests -------------------------------------------------------------------------- */

static void check_request_fixture(const char *name)
{
    char in[128], want_name[128];
    cJSON *req, *want, *got;
    char *err;

    snprintf(in, sizeof(in), "req_%s.openai.json", name);
    snprintf(want_name, sizeof(want_name), "req_%s.anthropic.json", name);
    req = parse_fixture(in);
    want = parse_fixture(want_name);
    got = translate(req, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream")), &err);
    if (!got)
        fail_msg("%s refused: %s", in, err);
    assert_json_equal(want, got, want_name);
    cJSON_Delete(req);
    cJSON_Delete(want);
    cJSON_Delete(got);
}

/* System lifted, max_tokens defaulted, stop string, temperature, top_p, user -> metadata,
 * OpenAI-only knobs (penalties, seed, n=1) dropped. */
static void test_request_basic(void **state)
{
    (void)state;
    check_request_fixture("basic");
}

/* Several system/developer messages joined; consecutive users merged; tool_calls ->
 * tool_use; consecutive tool messages -> one user message of tool_results, with the
 * following user text merged in; empty arguments -> {}; tools and parallel_tool_calls. */
static void test_request_conversation(void **state)
{
    (void)state;
    check_request_fixture("conversation");
}

/* Data URLs -> base64 sources (media type lower-cased), http(s) -> url sources; empty text
 * parts dropped; max_completion_tokens wins over max_tokens; stop array. */
static void test_request_images(void **state)
{
    (void)state;
    check_request_fixture("images");
}

/* provider_options.anthropic merged over the body; other providers' options dropped. */
static void test_request_provider_options(void **state)
{
    (void)state;
    check_request_fixture("provider_options");
}

static void test_request_max_tokens_default(void **state)
{
    char *err;
    cJSON *body = translate_str(
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &err);
    (void)state;

    assert_non_null(body);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(body, "max_tokens")->valueint,
                     DP_ANTHROPIC_DEFAULT_MAX_TOKENS);
    assert_int_equal(DP_ANTHROPIC_DEFAULT_MAX_TOKENS, 4096);
    assert_null(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    assert_null(cJSON_GetObjectItemCaseSensitive(body, "system"));
    assert_null(cJSON_GetObjectItemCaseSensitive(body, "tools"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(body, "model")->valuestring,
                        "claude-sonnet-4-20250514");
    cJSON_Delete(body);
}

static void test_request_tool_choice(void **state)
{
    static const struct {
        const char *extra; /* members after "tools" */
        const char *want;  /* expected tool_choice, NULL = absent */
    } cases[] = {
        {"", NULL},
        {",\"tool_choice\":null", NULL},
        {",\"tool_choice\":\"auto\"", "{\"type\":\"auto\"}"},
        {",\"tool_choice\":\"none\"", "{\"type\":\"none\"}"},
        {",\"tool_choice\":\"required\"", "{\"type\":\"any\"}"},
        {",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}",
         "{\"type\":\"tool\",\"name\":\"get_weather\"}"},
        {",\"parallel_tool_calls\":false",
         "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {",\"parallel_tool_calls\":true", NULL},
        {",\"tool_choice\":\"required\",\"parallel_tool_calls\":false",
         "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
        {",\"tool_choice\":\"none\",\"parallel_tool_calls\":false", "{\"type\":\"none\"}"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512], *err;
        cJSON *body, *want;
        snprintf(req, sizeof(req),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                 "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"parameters\":{\"type\":\"object\"}}}]%s}",
                 cases[i].extra);
        body = translate_str(req, &err);
        if (!body)
            fail_msg("case %zu refused: %s", i, err);
        if (!cases[i].want) {
            assert_null(cJSON_GetObjectItemCaseSensitive(body, "tool_choice"));
        } else {
            want = cJSON_Parse(cases[i].want);
            assert_json_equal(want, cJSON_GetObjectItemCaseSensitive(body, "tool_choice"),
                              cases[i].extra);
            cJSON_Delete(want);
        }
        cJSON_Delete(body);
    }

    /* Without tools, a tool_choice has nothing to choose from: dropped. */
    char *err;
    cJSON *body = translate_str("{\"model\":\"m\",\"tool_choice\":\"required\","
                                "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                                &err);
    assert_non_null(body);
    assert_null(cJSON_GetObjectItemCaseSensitive(body, "tool_choice"));
    cJSON_Delete(body);
}

static void test_request_refusals(void **state)
{
    static const struct {
        const char *req;
        const char *msg; /* a substring of the error */
    } cases[] = {
        {"{\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "n must be 1"},
        {"{\"n\":\"2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "n must be 1"},
        {"{\"response_format\":{\"type\":\"json_object\"},\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         "response_format json_object: JSON mode is not supported"},
        {"{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}},\"messages\":"
         "[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "response_format json_schema"},
        {"{\"logprobs\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "logprobs"},
        {"{\"audio\":{},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "audio"},
        {"{\"modalities\":[\"text\",\"audio\"],\"messages\":[{\"role\":\"user\",\"content\":"
         "\"hi\"}]}",
         "modalities"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
         "\"input_audio\":{}}]}]}",
         "messages[0].content[0]: content part type \"input_audio\" is not supported"},
        {"{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}",
         "messages[0].role: legacy \"function\""},
        {"{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "unknown role \"wizard\""},
        {"{\"messages\":[{\"role\":\"user\"},5]}", "messages[1].role"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"only system\"}]}",
         "at least one user or assistant message"},
        {"{\"messages\":[]}", "at least one user or assistant message"},
        {"{\"messages\":\"hi\"}", "messages: must be a non-empty array"},
        {"{}", "messages: must be a non-empty array"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\"}]},"
         "{\"role\":\"user\",\"content\":\"hi\"}]}",
         "messages[0].content[0]: system messages take text parts only"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"ftp://x/y.png\"}}]}]}",
         "messages[0].content[0]: an image URL must be http(s)"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"data:image/tiff;base64,AAAA\"}}]}]}",
         "image type \"image/tiff\" is not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{\"url\":\"data:image/png,rawbytes\"}}]}]}",
         "only base64 data URLs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
         "{}}]}]}",
         "messages[0].content[0].image_url.url: must be a string"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":42}]}", "messages[0].content: must be"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{not json\"}}]}]}",
         "messages[0].tool_calls[0].function.arguments: must be a JSON object"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
         "must be a JSON object"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{} trailing\"}}]}]}",
         "must be a JSON object"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
         "\"function\":{\"name\":\"f\"}}]}]}",
         "messages[0].tool_calls[0].id: must be a string"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":"
         "{}}]}]}",
         "messages[0].tool_calls[0].function.name: must be a string"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}",
         "messages[0].tool_calls: must be an array"},
        {"{\"messages\":[{\"role\":\"assistant\",\"function_call\":{\"name\":\"f\"}}]}",
         "legacy function calls"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
         "messages[0].tool_call_id: a tool message must name its tool call"},
        {"{\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "max_tokens: must be a positive integer"},
        {"{\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "max_tokens: must be a positive integer"},
        {"{\"max_completion_tokens\":\"9\",\"messages\":[{\"role\":\"user\",\"content\":"
         "\"hi\"}]}",
         "max_completion_tokens: must be a number"},
        {"{\"temperature\":\"hot\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "temperature: must be a number"},
        {"{\"top_p\":[],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "top_p: must be a number"},
        {"{\"stop\":[\"a\",1],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "stop: must be a string or an array of strings"},
        {"{\"stop\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "stop: must be"},
        {"{\"tools\":{},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "tools: must be an array"},
        {"{\"tools\":[{\"type\":\"code_interpreter\"}],\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         "tools[0].type: only \"function\" tools"},
        {"{\"tools\":[{\"type\":\"function\",\"function\":{}}],\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         "tools[0].function.name: must be a string"},
        {"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}],"
         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "tools[0].function.parameters: must be a JSON Schema object"},
        {"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
         "\"sometimes\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "tool_choice: \"sometimes\" is not one of auto, none, required"},
        {"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
         "{\"type\":\"function\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "tool_choice.function.name: must be a string"},
        {"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
         "\"parallel_tool_calls\":\"no\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "parallel_tool_calls: must be a boolean"},
        {"{\"provider_options\":[],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "provider_options: must be an object"},
        {"{\"provider_options\":{\"anthropic\":true},\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         "provider_options.anthropic: must be an object"},
        {"{\"provider_options\":{\"anthropic\":{\"stream\":true}},\"messages\":[{\"role\":"
         "\"user\",\"content\":\"hi\"}]}",
         "provider_options.anthropic.stream: set by the gateway"},
        {"[1,2,3]", "the request must be a JSON object"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL;
        cJSON *body = translate_str(cases[i].req, &err);
        if (body)
            fail_msg("case %zu was accepted: %s", i, cases[i].req);
        if (!strstr(err, cases[i].msg))
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].msg);
        if (strncmp(err, "model claude: ", 14) != 0)
            fail_msg("case %zu: error \"%s\" does not name the model first", i, err);
        free(err);
    }
}

/* An empty assistant turn (content "" and no tool calls) would be refused by Anthropic;
 * it is skipped, and its neighbours of one role merge. */
static void test_request_empty_turns(void **state)
{
    char *err;
    cJSON *body = translate_str("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                                "{\"role\":\"assistant\",\"content\":\"\"},"
                                "{\"role\":\"user\",\"content\":\"b\"}]}",
                                &err);
    cJSON *want = cJSON_Parse("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                              "\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]");
    (void)state;

    assert_non_null(body);
    assert_json_equal(want, cJSON_GetObjectItemCaseSensitive(body, "messages"), "messages");
    cJSON_Delete(want);
    cJSON_Delete(body);
}

/* ---- responses ------------------------------------------------------------------------- */

static void check_response_fixture(const char *name, int64_t prompt, int64_t completion,
                                   int64_t cached)
{
    char in[128], want_name[128], *body, *out = NULL, *err = NULL;
    struct dp_xctx x = xctx(false);
    struct dp_usage u = {-1, -1, -1};
    size_t len, out_len = 0;
    cJSON *want, *got;

    snprintf(in, sizeof(in), "resp_%s.anthropic.json", name);
    snprintf(want_name, sizeof(want_name), "resp_%s.openai.json", name);
    body = read_fixture(in, &len);
    assert_int_equal(ops()->chat_response(body, len, &x, &out, &out_len, &u, &err), 0);
    assert_null(err);
    assert_int_equal(out_len, strlen(out));
    got = cJSON_Parse(out);
    want = parse_fixture(want_name);
    assert_json_equal(want, got, want_name);
    assert_int_equal(u.prompt_tokens, prompt);
    assert_int_equal(u.completion_tokens, completion);
    assert_int_equal(u.cached_tokens, cached);
    cJSON_Delete(want);
    cJSON_Delete(got);
    free(out);
    free(body);
}

static void test_response_text(void **state)
{
    (void)state;
    check_response_fixture("text", 2095, 503, 0);
}

static void test_response_tool_use(void **state)
{
    (void)state;
    check_response_fixture("tool_use", 472, 89, 0);
}

/* prompt_tokens = input + cache read + cache creation; cached_tokens = cache read. */
static void test_response_cache_read(void **state)
{
    (void)state;
    check_response_fixture("cache_read", 188107, 393, 188086);
}

static void test_response_cache_write(void **state)
{
    (void)state;
    check_response_fixture("cache_write", 188107, 393, 0);
}

static void test_response_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"type\":\"message\"}",
        "{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}",
        "{\"content\":{}}",
        "{\"content\":[{\"type\":\"tool_use\",\"name\":\"f\",\"input\":{}}]}",
        "{\"content\":[{\"type\":\"tool_use\",\"id\":1,\"name\":\"f\"}]}",
    };
    struct dp_xctx x = xctx(false);
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dp_usage u = {-1, -1, -1};
        char *out = NULL, *err = NULL;
        size_t out_len = 0;
        int rc = ops()->chat_response(bad[i], strlen(bad[i]), &x, &out, &out_len, &u, &err);
        if (rc != -EINVAL)
            fail_msg("case %zu: rc %d", i, rc);
        assert_non_null(err);
        assert_null(out);
        free(err);
    }
}

/* Odd but valid answers: no text at all, unknown blocks, usage missing or negative. */
static void test_response_edges(void **state)
{
    static const char body[] =
        "{\"id\":\"m\",\"content\":[{\"type\":\"redacted_thinking\",\"data\":\"x\"},"
        "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\"}],\"usage\":{\"input_tokens\":-5}}";
    struct dp_xctx x = xctx(false);
    struct dp_usage u = {-1, -1, -1};
    char *out = NULL, *err = NULL;
    size_t out_len;
    cJSON *got;
    const cJSON *msg;
    (void)state;

    assert_int_equal(ops()->chat_response(body, strlen(body), &x, &out, &out_len, &u, &err), 0);
    got = cJSON_Parse(out);
    msg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(got, "choices"), 0), "message");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(msg, "content")));
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"), 0),
                "function"),
            "arguments")
            ->valuestring,
        "{}");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(got, "model")->valuestring,
                        "claude-sonnet-4-20250514");
    assert_int_equal(u.prompt_tokens, -1); /* a negative count is no count */
    cJSON_Delete(got);
    free(out);
}

static void test_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(dp_anthropic_finish_reason("end_turn"), "stop");
    assert_string_equal(dp_anthropic_finish_reason("stop_sequence"), "stop");
    assert_string_equal(dp_anthropic_finish_reason("pause_turn"), "stop");
    assert_string_equal(dp_anthropic_finish_reason("max_tokens"), "length");
    assert_string_equal(dp_anthropic_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(dp_anthropic_finish_reason("refusal"), "content_filter");
    assert_string_equal(dp_anthropic_finish_reason("something_new"), "stop");
    assert_string_equal(dp_anthropic_finish_reason(NULL), "stop");
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_errors(void **state)
{
    static const struct {
        int status;
        const char *fixture; /* NULL: <raw> is the body */
        const char *raw;
        int want_status;
        const char *code;
        bool retryable;
        const char *msg;
    } cases[] = {
        {529, "error_overloaded.json", NULL, 502, "upstream_error", true, "Overloaded"},
        {429, "error_rate_limit.json", NULL, 429, "rate_limit_exceeded", true, "rate limit"},
        {401, "error_auth.json", NULL, 502, "provider_auth_failed", false, "invalid x-api-key"},
        {400, "error_prompt_too_long.json", NULL, 400, "context_length_exceeded", false,
         "prompt is too long"},
        {404, "error_not_found.json", NULL, 502, "upstream_model_not_found", false, "could not"},
        {500, "error_api.json", NULL, 502, "upstream_error", true, "Internal server error"},
        {503, NULL, "<html>Service Unavailable</html>", 502, "upstream_error", true,
         "<html>Service Unavailable"},
        {529, NULL, "", 502, "upstream_error", true, "no message"},
        {400, NULL,
         "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
         "\"message\":\"max_tokens: Field required\"}}",
         400, "invalid_request", false, "max_tokens: Field required"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_error_info e;
        size_t len = 0;
        char *body = cases[i].fixture ? read_fixture(cases[i].fixture, &len) : NULL;
        const char *b = body ? body : cases[i].raw;

        ops()->error(cases[i].status, b, body ? len : strlen(b), &e);
        if (e.status != cases[i].want_status || strcmp(e.code, cases[i].code) != 0 ||
            e.retryable != cases[i].retryable || !strstr(e.message, cases[i].msg))
            fail_msg("case %zu: status %d code %s retryable %d message %s", i, e.status, e.code,
                     e.retryable, e.message);
        free(body);
    }
    assert_int_equal(dp_anthropic_error_status("overloaded_error"), 529);
    assert_int_equal(dp_anthropic_error_status("rate_limit_error"), 429);
    assert_int_equal(dp_anthropic_error_status(NULL), 500);
}

/* ---- streams --------------------------------------------------------------------------- */

struct collect {
    struct dp_stream_xlate *st;
    struct dp_usage u;
    cJSON *events;  /* what was emitted, parsed; "[DONE]" as a string */
    int stop_after; /* > 0: emit fails once this many events went out */
};

static int on_emit(void *arg, const char *data, size_t len)
{
    struct collect *c = arg;
    cJSON *ev;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        ev = cJSON_CreateString("[DONE]");
    } else {
        ev = cJSON_ParseWithLength(data, len);
        if (!ev)
            fail_msg("emitted event is not JSON: %.*s", (int)len, data);
    }
    cJSON_AddItemToArray(c->events, ev);
    if (c->stop_after > 0 && cJSON_GetArraySize(c->events) >= c->stop_after)
        return -1;
    return 0;
}

static int on_sse(void *arg, const char *event, const char *data, size_t len)
{
    struct collect *c = arg;
    return ops()->stream_event(c->st, event, data, len, &c->u, on_emit, c);
}

/* Feeds <sse> (<len> bytes) through the SSE parser in pieces of <step> bytes, then ends the
 * stream like the chat layer does. Returns the first non-zero result (or 0). */
static int run_stream(struct collect *c, const char *sse, size_t len, size_t step)
{
    struct sy_sse_parser p;
    struct dp_xctx x = xctx(true);
    int rc = 0;

    memset(c, 0, sizeof(*c));
    c->u = (struct dp_usage){-1, -1, -1};
    c->events = cJSON_CreateArray();
    c->st = ops()->stream_new(&x);
    sy_sse_init(&p, 1 << 20, on_sse, c);
    for (size_t off = 0; off < len && rc == 0; off += step)
        rc = sy_sse_feed(&p, sse + off, len - off < step ? len - off : step);
    if (rc == 0)
        rc = sy_sse_finish(&p);
    if (rc == 0)
        rc = ops()->stream_end(c->st, &c->u, on_emit, c);
    sy_sse_cleanup(&p);
    ops()->stream_free(c->st);
    c->st = NULL;
    return rc;
}

/* Checks the emitted events against <name>.expected.json, for whole and byte-wise feeds. */
static void check_stream_fixture(const char *name)
{
    char sse_name[128], want_name[128];
    size_t len;
    char *sse;
    cJSON *want;

    snprintf(sse_name, sizeof(sse_name), "stream_%s.sse", name);
    snprintf(want_name, sizeof(want_name), "stream_%s.expected.json", name);
    sse = read_fixture(sse_name, &len);
    want = parse_fixture(want_name);
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *head = cJSON_GetObjectItemCaseSensitive(want, "head");
        const cJSON *wev = cJSON_GetObjectItemCaseSensitive(want, "events");
        const cJSON *wu = cJSON_GetObjectItemCaseSensitive(want, "usage");
        const cJSON *wargs = cJSON_GetObjectItemCaseSensitive(want, "arguments");
        struct collect c;
        int rc = run_stream(&c, sse, len, pass == 0 ? len : 1);
        int n = cJSON_GetArraySize(c.events);
        cJSON *args = cJSON_CreateArray();

        if (cJSON_GetObjectItemCaseSensitive(want, "rc")->valueint == 0)
            assert_int_equal(rc, 0);
        else
            assert_int_not_equal(rc, 0);
        if (n != cJSON_GetArraySize(wev)) {
            char *g = cJSON_Print(c.events);
            fail_msg("%s: %d events, want %d:\n%s", sse_name, n, cJSON_GetArraySize(wev), g);
        }
        for (int i = 0; i < n; i++) {
            cJSON *got = cJSON_GetArrayItem(c.events, i);
            const cJSON *w = cJSON_GetArrayItem(wev, i);
            char what[160];

            snprintf(what, sizeof(what), "%s event %d", sse_name, i);
            if (cJSON_GetObjectItemCaseSensitive(w, "error")) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(got, "error"), "message");
                assert_json_subset(w, got, what);
                assert_true(cJSON_IsString(m) && m->valuestring[0]);
                continue;
            }
            if (cJSON_IsObject(got)) {
                /* Every chunk carries the message's id and model, and our created time. */
                assert_string_equal(cJSON_GetObjectItemCaseSensitive(got, "id")->valuestring,
                                    cJSON_GetObjectItemCaseSensitive(head, "id")->valuestring);
                assert_string_equal(cJSON_GetObjectItemCaseSensitive(got, "model")->valuestring,
                                    cJSON_GetObjectItemCaseSensitive(head, "model")->valuestring);
                assert_string_equal(cJSON_GetObjectItemCaseSensitive(got, "object")->valuestring,
                                    "chat.completion.chunk");
                assert_int_equal(cJSON_GetObjectItemCaseSensitive(got, "created")->valueint,
                                 CREATED);
                cJSON_DeleteItemFromObjectCaseSensitive(got, "id");
                cJSON_DeleteItemFromObjectCaseSensitive(got, "model");
                cJSON_DeleteItemFromObjectCaseSensitive(got, "object");
                cJSON_DeleteItemFromObjectCaseSensitive(got, "created");
            }
            assert_json_equal(w, got, what);

            /* Reassemble arguments per tool index; id and name only on the first delta. */
            const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(got, "choices"), 0),
                    "delta"),
                "tool_calls");
            const cJSON *tc;
            cJSON_ArrayForEach(tc, tcs)
            {
                int idx = cJSON_GetObjectItemCaseSensitive(tc, "index")->valueint;
                const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                const char *piece = cJSON_GetObjectItemCaseSensitive(fn, "arguments")->valuestring;
                cJSON *have = cJSON_GetArrayItem(args, idx);
                if (!have) {
                    assert_int_equal(idx, cJSON_GetArraySize(args)); /* 0, 1, ... in order */
                    assert_non_null(cJSON_GetObjectItemCaseSensitive(tc, "id"));
                    assert_non_null(cJSON_GetObjectItemCaseSensitive(fn, "name"));
                    cJSON_AddItemToArray(args, cJSON_CreateString(piece));
                } else {
                    char *joined;
                    assert_null(cJSON_GetObjectItemCaseSensitive(tc, "id"));
                    assert_null(cJSON_GetObjectItemCaseSensitive(fn, "name"));
                    joined = malloc(strlen(have->valuestring) + strlen(piece) + 1);
                    memcpy(joined, have->valuestring, strlen(have->valuestring));
                    memcpy(joined + strlen(have->valuestring), piece, strlen(piece) + 1);
                    cJSON_ReplaceItemInArray(args, idx, cJSON_CreateString(joined));
                    free(joined);
                }
            }
        }
        if (wargs) {
            const cJSON *a;
            assert_json_equal(wargs, args, "reassembled arguments");
            cJSON_ArrayForEach(a, args)
            {
                cJSON *parsed = cJSON_Parse(a->valuestring);
                assert_true(cJSON_IsObject(parsed));
                cJSON_Delete(parsed);
            }
        }
        assert_int_equal(c.u.prompt_tokens,
                         cJSON_GetObjectItemCaseSensitive(wu, "prompt_tokens")->valueint);
        assert_int_equal(c.u.completion_tokens,
                         cJSON_GetObjectItemCaseSensitive(wu, "completion_tokens")->valueint);
        assert_int_equal(c.u.cached_tokens,
                         cJSON_GetObjectItemCaseSensitive(wu, "cached_tokens")->valueint);
        cJSON_Delete(args);
        cJSON_Delete(c.events);
    }
    cJSON_Delete(want);
    free(sse);
}

static void test_stream_text(void **state)
{
    (void)state;
    check_stream_fixture("text");
}

/* The documentation's tool-use stream: text, then a tool whose input arrives in 9 pieces. */
static void test_stream_tool_use(void **state)
{
    (void)state;
    check_stream_fixture("tool_use");
}

/* Thinking (skipped), text, two tools at content blocks 2 and 3 -> tool indexes 0 and 1,
 * cache tokens in message_start. */
static void test_stream_two_tools(void **state)
{
    (void)state;
    check_stream_fixture("two_tools");
}

/* overloaded_error mid-stream: an OpenAI error object, non-zero, nothing after it. */
static void test_stream_error_event(void **state)
{
    (void)state;
    check_stream_fixture("error");
}

/* The provider closed cleanly but before any stop_reason: an error, never a silent cut. */
static void test_stream_truncated(void **state)
{
    (void)state;
    check_stream_fixture("truncated");
}

/* message_delta came but message_stop did not: the answer is complete; finish it. */
static void test_stream_no_message_stop(void **state)
{
    (void)state;
    check_stream_fixture("no_message_stop");
}

/* Runs <sse> and returns the last emitted event (a copy), asserting the result. */
static cJSON *stream_last(const char *sse, bool want_fail)
{
    struct collect c;
    int rc = run_stream(&c, sse, strlen(sse), strlen(sse) ? strlen(sse) : 1);
    cJSON *last =
        cJSON_Duplicate(cJSON_GetArrayItem(c.events, cJSON_GetArraySize(c.events) - 1), true);

    if (want_fail != (rc != 0))
        fail_msg("rc %d for: %s", rc, sse);
    cJSON_Delete(c.events);
    return last;
}

static void assert_error_code(cJSON *ev, const char *code)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(ev, "error");
    if (!cJSON_IsObject(err)) {
        char *s = cJSON_Print(ev);
        fail_msg("not an error event: %s", s);
    }
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(err, "code")->valuestring, code);
    cJSON_Delete(ev);
}

static void test_stream_malformed(void **state)
{
    static const char *const bad[] = {
        "data: not json\n\n",
        "event: message_start\ndata: [1]\n\n",
        "data: {\"type\":\"message_start\",\"message\":{}}\n\n"
        "data: {\"type\":\"content_block_start\"}\n\n",
        "data: {\"type\":\"message_start\",\"message\":{}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\"}}"
        "\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"tool_use\",\"name\":\"f\"}}\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"tool_use\",\"id\":\"t\",\"name\":\"f\"}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":7}}\n\n",
        "",                          /* nothing at all */
        "event: ping\ndata: {}\n\n", /* only pings */
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_error_code(stream_last(bad[i], true), "upstream_invalid_response");
}

/* Unknown events and deltas are skipped; events after the end are ignored; an input count
 * of 0 in message_delta does not erase message_start's; an error event classifies by its
 * type. */
static void test_stream_tolerance(void **state)
{
    static const char ok[] =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
        "\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n"
        "event: brand_new_event\ndata: {\"type\":\"brand_new_event\"}\n\n"
        "event: ping\ndata: not even json\n\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"server_tool_use\",\"id\":\"s\",\"name\":\"web_search\",\"input\":{}}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n"
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
        "\"citations_delta\",\"citation\":{}}}\n\n"
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
        "\"text\":\"Hi\"}}\n\n"
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},"
        "\"usage\":{\"output_tokens\":2,\"input_tokens\":0}}\n\n"
        "data: {\"type\":\"message_stop\"}\n\n"
        "data: {\"type\":\"message_stop\"}\n\n"
        "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n";
    struct collect c;
    const cJSON *e;
    (void)state;

    assert_int_equal(run_stream(&c, ok, strlen(ok), strlen(ok)), 0);
    /* role, "Hi", finish content_filter, usage, [DONE] */
    assert_int_equal(cJSON_GetArraySize(c.events), 5);
    e = cJSON_GetArrayItem(c.events, 1);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "choices"), 0), "delta"),
            "content")
            ->valuestring,
        "Hi");
    e = cJSON_GetArrayItem(c.events, 2);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "choices"), 0), "finish_reason")
            ->valuestring,
        "content_filter");
    assert_int_equal(c.u.prompt_tokens, 3);
    assert_int_equal(c.u.completion_tokens, 2);
    cJSON_Delete(c.events);

    /* A rate-limit error event keeps its class. */
    assert_error_code(stream_last("data: {\"type\":\"error\",\"error\":{\"type\":"
                                  "\"rate_limit_error\",\"message\":\"slow down\"}}\n\n",
                                  true),
                      "rate_limit_exceeded");
    assert_error_code(stream_last("event: error\ndata: {\"type\":\"error\"}\n\n", true),
                      "upstream_error");
}

/* A client that goes away (emit fails) stops the translation with a non-zero result. */
static void test_stream_emit_failure(void **state)
{
    struct collect c = {0};
    struct dp_xctx x = xctx(true);
    static const char ev[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}";
    (void)state;

    c.events = cJSON_CreateArray();
    c.stop_after = 1;
    c.st = ops()->stream_new(&x);
    assert_int_not_equal(
        ops()->stream_event(c.st, "message_start", ev, strlen(ev), &c.u, on_emit, &c), 0);
    ops()->stream_free(c.st);
    ops()->stream_free(NULL);
    cJSON_Delete(c.events);
}

/* More content blocks than DP_ANTHROPIC_MAX_BLOCKS is a broken stream, not a memory hog. */
static void test_stream_block_cap(void **state)
{
    struct collect c = {0};
    struct dp_xctx x = xctx(true);
    int rc = 0;
    (void)state;

    c.events = cJSON_CreateArray();
    c.u = (struct dp_usage){-1, -1, -1};
    c.st = ops()->stream_new(&x);
    for (int i = 0; i <= DP_ANTHROPIC_MAX_BLOCKS && rc == 0; i++) {
        char ev[256];
        snprintf(ev, sizeof(ev),
                 "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":"
                 "\"tool_use\",\"id\":\"t%d\",\"name\":\"f\",\"input\":{}}}",
                 i, i);
        rc = ops()->stream_event(c.st, "", ev, strlen(ev), &c.u, on_emit, &c);
        if (i < DP_ANTHROPIC_MAX_BLOCKS)
            assert_int_equal(rc, 0);
    }
    assert_int_not_equal(rc, 0);
    ops()->stream_free(c.st);
    assert_error_code(
        cJSON_Duplicate(cJSON_GetArrayItem(c.events, cJSON_GetArraySize(c.events) - 1), true),
        "upstream_invalid_response");
    cJSON_Delete(c.events);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_unsupported_apis),
        cmocka_unit_test(test_request_basic),
        cmocka_unit_test(test_request_conversation),
        cmocka_unit_test(test_request_images),
        cmocka_unit_test(test_request_provider_options),
        cmocka_unit_test(test_request_max_tokens_default),
        cmocka_unit_test(test_request_tool_choice),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_request_empty_turns),
        cmocka_unit_test(test_response_text),
        cmocka_unit_test(test_response_tool_use),
        cmocka_unit_test(test_response_cache_read),
        cmocka_unit_test(test_response_cache_write),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_response_edges),
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_stream_text),
        cmocka_unit_test(test_stream_tool_use),
        cmocka_unit_test(test_stream_two_tools),
        cmocka_unit_test(test_stream_error_event),
        cmocka_unit_test(test_stream_truncated),
        cmocka_unit_test(test_stream_no_message_stop),
        cmocka_unit_test(test_stream_malformed),
        cmocka_unit_test(test_stream_tolerance),
        cmocka_unit_test(test_stream_emit_failure),
        cmocka_unit_test(test_stream_block_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
