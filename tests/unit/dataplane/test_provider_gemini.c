/* tests/unit/dataplane/test_provider_gemini.c - the Gemini adapter against golden fixtures
 * (tests/fixtures/gemini/, shapes from Google's API documentation): requests, answers,
 * streams, embeddings and errors, plus the refusals and malformed answers. Runs with its
 * source directory as cwd. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_gemini.h"
#include "dp_provider.h"

#define FIXTURE_DIR "../../fixtures/gemini/"
#include "../fixture.h"

/* Policy strings are mutable char * in struct sy_model and sy_provider. */
static char model_name[] = "gemini-flash", upstream[64] = "gemini-1.5-flash";
static char prov_name[] = "gem", base_url[128] = "https://generativelanguage.googleapis.com";
static char key_env[] = "SY_TEST_GEMINI_KEY";
static struct sy_model model = {.name = model_name, .upstream_model = upstream};
static struct sy_provider provider = {
    .name = prov_name,
    .kind = SY_PROVIDER_GEMINI,
    .base_url = base_url,
    .api_key_env = key_env,
};

static void set_upstream(const char *m)
{
    snprintf(upstream, sizeof(upstream), "%s", m);
}

static void set_base_url(const char *u)
{
    snprintf(base_url, sizeof(base_url), "%s", u);
}

static struct dp_xctx xctx(bool stream)
{
    return (struct dp_xctx){
        .model = &model, .request_id = "req-1", .created = 1700000000, .stream = stream};
}

static const struct dp_provider_ops *ops(void)
{
    return dp_provider_ops_for(SY_PROVIDER_GEMINI);
}

/* Fails with both documents printed when <got> and the fixture <name> differ. */
static void assert_json_fixture(const cJSON *got, const char *name)
{
    cJSON *want = parse_fixture(name);

    if (!cJSON_Compare(got, want, true)) {
        char *g = cJSON_Print(got), *w = cJSON_Print(want);
        print_error("got:\n%s\nwant (%s):\n%s\n", g, name, w);
        free(g);
        free(w);
        cJSON_Delete(want);
        fail();
    }
    cJSON_Delete(want);
}

/* Runs chat_request on the JSON text <req>; returns the body tree (NULL when refused, with
 * *err set). */
static cJSON *request(const char *req, bool stream, char **url, char **err)
{
    struct dp_provider_rt rt = {.provider = &provider};
    struct dp_xctx x = xctx(stream);
    struct dp_upreq up = {0};
    cJSON *r = cJSON_Parse(req), *body = NULL;
    int rc;

    assert_non_null(r);
    *err = NULL;
    rc = ops()->chat_request(&rt, r, &x, &up, err);
    if (rc == 0) {
        assert_non_null(up.url);
        assert_non_null(up.body);
        body = cJSON_ParseWithLength(up.body, up.body_len);
        assert_non_null(body);
        if (url)
            *url = strdup(up.url);
    } else {
        assert_int_equal(rc, -EINVAL);
        assert_non_null(*err);
    }
    dp_upreq_cleanup(&up);
    cJSON_Delete(r);
    return body;
}

static cJSON *request_ok(const char *req)
{
    char *err = NULL;
    cJSON *body = request(req, false, NULL, &err);

    if (!body)
        fail_msg("refused: %s", err);
    return body;
}

/* Asserts the request is refused with a message containing <needle>. */
static void assert_refused(const char *req, const char *needle)
{
    char *err = NULL;
    cJSON *body = request(req, false, NULL, &err);

    if (body)
        fail_msg("accepted: %s", req);
    if (!strstr(err, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err, needle);
    free(err);
}

/* The node at a dotted path with [n] indexes, e.g. "contents[1].parts[0].text". */
static const cJSON *at(const cJSON *j, const char *path)
{
    char buf[256], *p = buf;

    snprintf(buf, sizeof(buf), "%s", path);
    while (j && *p) {
        char *end = p + strcspn(p, ".[");
        char c = *end;
        *end = '\0';
        if (*p)
            j = cJSON_GetObjectItemCaseSensitive(j, p);
        p = c ? end + 1 : end;
        if (c == '[') {
            j = cJSON_GetArrayItem(j, (int)strtol(p, &p, 10));
            p += *p == ']';
            p += *p == '.';
        }
    }
    return j;
}

static const char *str_at(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    if (!cJSON_IsString(v))
        fail_msg("%s is not a string", path);
    return v->valuestring;
}

static double num_at(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", path);
    return v->valuedouble;
}

/* ---- prepare and URLs ------------------------------------------------------------------- */

static void test_prepare_key_header(void **state)
{
    struct dp_provider_rt rt = {0};
    char *err = NULL;
    bool found = false;
    (void)state;

    setenv("SY_TEST_GEMINI_KEY", "AIza-test", 1);
    assert_int_equal(ops()->prepare(&provider, &rt, &err), 0);
    for (struct curl_slist *h = rt.headers; h; h = h->next) {
        found |= strcmp(h->data, "x-goog-api-key: AIza-test") == 0;
        assert_null(strstr(h->data, "Authorization"));
    }
    assert_true(found);
    assert_null(ops()->completion_request);
    dp_provider_rt_cleanup(&rt);
}

static void test_urls(void **state)
{
    const char *req = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    char *url = NULL, *err = NULL;
    cJSON *body;
    (void)state;

    body = request(req, false, &url, &err);
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-1.5-flash:generateContent");
    free(url);
    cJSON_Delete(body);
    body = request(req, true, &url, &err);
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-1.5-flash:streamGenerateContent?alt=sse");
    free(url);
    cJSON_Delete(body);

    /* A base_url that already names the version, and a tuned model's resource name. */
    set_base_url("http://127.0.0.1:9/v1beta");
    set_upstream("tunedModels/my-model-7");
    body = request(req, false, &url, &err);
    assert_string_equal(url, "http://127.0.0.1:9/v1beta/tunedModels/my-model-7:generateContent");
    free(url);
    cJSON_Delete(body);
    set_upstream("bad model?");
    assert_refused(req, "cannot be used in a Gemini URL");
    set_upstream("gemini-1.5-flash");
    set_base_url("https://generativelanguage.googleapis.com");
}

/* ---- requests --------------------------------------------------------------------------- */

static void test_request_basic_golden(void **state)
{
    char *src = read_fixture("chat_basic.openai.json", NULL);
    cJSON *body = request_ok(src);
    (void)state;

    assert_json_fixture(body, "chat_basic.gemini.json");
    cJSON_Delete(body);
    free(src);
}

static void test_request_tools_golden(void **state)
{
    char *src = read_fixture("chat_tools.openai.json", NULL);
    cJSON *body = request_ok(src);
    (void)state;

    assert_json_fixture(body, "chat_tools.gemini.json");
    cJSON_Delete(body);
    free(src);
}

static void test_request_tool_choice(void **state)
{
    static const char *const modes[][2] = {
        {"\"auto\"", "AUTO"}, {"\"none\"", "NONE"}, {"\"required\"", "ANY"}};
    (void)state;

    for (size_t i = 0; i < 3; i++) {
        char req[512];
        snprintf(req, sizeof(req),
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
                 modes[i][0]);
        cJSON *b = request_ok(req);
        assert_string_equal(str_at(b, "toolConfig.functionCallingConfig.mode"), modes[i][1]);
        assert_null(at(b, "toolConfig.functionCallingConfig.allowedFunctionNames"));
        assert_string_equal(str_at(b, "tools[0].functionDeclarations[0].name"), "f");
        cJSON_Delete(b);
    }
}

static void test_request_media(void **state)
{
    cJSON *b = request_ok(
        "{\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"what is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.PNG?x=1\"}},"
        "{\"type\":\"image_url\",\"image_url\":\"gs://bucket/object\"},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"UklGR\",\"format\":\"wav\"}},"
        "{\"type\":\"file\",\"file\":{\"file_data\":\"data:application/pdf;base64,JVBER\"}}"
        "]}]}");
    (void)state;

    assert_string_equal(str_at(b, "contents[0].parts[0].text"), "what is this?");
    assert_string_equal(str_at(b, "contents[0].parts[1].inlineData.mimeType"), "image/jpeg");
    assert_string_equal(str_at(b, "contents[0].parts[1].inlineData.data"), "/9j/4AAQ");
    assert_string_equal(str_at(b, "contents[0].parts[2].fileData.fileUri"),
                        "https://example.com/cat.PNG?x=1");
    assert_string_equal(str_at(b, "contents[0].parts[2].fileData.mimeType"), "image/png");
    assert_string_equal(str_at(b, "contents[0].parts[3].fileData.fileUri"), "gs://bucket/object");
    assert_null(at(b, "contents[0].parts[3].fileData.mimeType"));
    assert_string_equal(str_at(b, "contents[0].parts[4].inlineData.mimeType"), "audio/wav");
    assert_string_equal(str_at(b, "contents[0].parts[5].inlineData.mimeType"), "application/pdf");
    cJSON_Delete(b);

    assert_refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"data:image/png,rawbytes\"}}]}]}",
                   "messages[0].content[0].image_url.url: only base64 data URLs");
    assert_refused("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"ftp://x/y.png\"}}]}]}",
                   "expected a data:, http(s):// or gs:// URL");
    assert_refused("{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"https://x/y.png\"}}]},"
                   "{\"role\":\"user\",\"content\":\"x\"}]}",
                   "system instructions can only contain text");
}

static void test_request_generation_config(void **state)
{
    cJSON *b = request_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                          "\"max_tokens\":10,\"max_completion_tokens\":20,\"stop\":\"END\","
                          "\"n\":1,\"temperature\":null,\"response_format\":{\"type\":"
                          "\"json_object\"}}");
    (void)state;

    assert_int_equal((int)num_at(b, "generationConfig.maxOutputTokens"), 20);
    assert_string_equal(str_at(b, "generationConfig.stopSequences[0]"), "END");
    assert_null(at(b, "generationConfig.temperature"));
    assert_string_equal(str_at(b, "generationConfig.responseMimeType"), "application/json");
    assert_null(at(b, "generationConfig.responseSchema"));
    cJSON_Delete(b);

    b = request_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":"
                   "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"strict\":true,"
                   "\"schema\":{\"type\":\"object\",\"additionalProperties\":false,"
                   "\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
                   "\"const\":\"a\"}},\"n\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":"
                   "\"null\"}]}},\"required\":[\"tags\",\"n\"]}}}}");
    assert_string_equal(str_at(b, "generationConfig.responseMimeType"), "application/json");
    assert_string_equal(str_at(b, "generationConfig.responseSchema.type"), "object");
    assert_null(at(b, "generationConfig.responseSchema.additionalProperties"));
    assert_string_equal(str_at(b, "generationConfig.responseSchema.properties.tags.items.enum[0]"),
                        "a");
    assert_string_equal(str_at(b, "generationConfig.responseSchema.properties.n.anyOf[1].type"),
                        "null");
    assert_string_equal(str_at(b, "generationConfig.responseSchema.required[1]"), "n");
    cJSON_Delete(b);
}

static void test_request_provider_options(void **state)
{
    cJSON *b = request_ok(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.2,"
        "\"provider_options\":{\"anthropic\":{\"x\":1},\"gemini\":{\"safetySettings\":[{"
        "\"category\":\"HARM_CATEGORY_HARASSMENT\",\"threshold\":\"BLOCK_ONLY_HIGH\"}],"
        "\"generationConfig\":{\"topK\":40,\"thinkingConfig\":{\"thinkingBudget\":0}}}}}");
    (void)state;

    assert_true(num_at(b, "generationConfig.temperature") == 0.2);
    assert_int_equal((int)num_at(b, "generationConfig.topK"), 40);
    assert_int_equal((int)num_at(b, "generationConfig.thinkingConfig.thinkingBudget"), 0);
    assert_string_equal(str_at(b, "safetySettings[0].threshold"), "BLOCK_ONLY_HIGH");
    assert_null(at(b, "provider_options"));
    assert_null(at(b, "x"));
    cJSON_Delete(b);
    assert_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                   "\"provider_options\":{\"gemini\":[1]}}",
                   "provider_options.gemini: expected an object");
}

static void test_request_turns(void **state)
{
    /* Consecutive same-role messages merge; an empty assistant message disappears; the
     * legacy function role and function_call map like tools. */
    cJSON *b = request_ok(
        "{\"messages\":[{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"\"},"
        "{\"role\":\"user\",\"content\":\"b\"},{\"role\":\"assistant\",\"content\":\"c\"},"
        "{\"role\":\"assistant\",\"function_call\":{\"name\":\"f\",\"arguments\":\"\"}},"
        "{\"role\":\"function\",\"name\":\"f\",\"content\":\"[1,2]\"}]}");
    (void)state;

    assert_int_equal(cJSON_GetArraySize(at(b, "contents")), 3);
    assert_string_equal(str_at(b, "systemInstruction.parts[0].text"), "be brief");
    assert_string_equal(str_at(b, "contents[0].role"), "user");
    assert_string_equal(str_at(b, "contents[0].parts[1].text"), "b");
    assert_string_equal(str_at(b, "contents[1].role"), "model");
    assert_string_equal(str_at(b, "contents[1].parts[0].text"), "c");
    assert_string_equal(str_at(b, "contents[1].parts[1].functionCall.name"), "f");
    assert_true(cJSON_IsObject(at(b, "contents[1].parts[1].functionCall.args")));
    assert_string_equal(str_at(b, "contents[2].role"), "user");
    assert_string_equal(str_at(b, "contents[2].parts[0].functionResponse.response.result"),
                        "[1,2]");
    cJSON_Delete(b);
}

static void test_request_refusals(void **state)
{
    static const char *const cases[][2] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "n: only n=1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true}", "logprobs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
         "temperature: expected a number"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
         "max_tokens: expected a positive integer"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", "stop:"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"maybe\"}",
         "tool_choice:"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
         "\"web_search\"}]}",
         "tools[0].type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
         "\"properties\":{\"a\":{\"$ref\":\"http://x\"}}}}}]}",
         "tools[0].function.parameters.properties.a.$ref"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
         "\"properties\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"$defs\":{\"a\":{\"type\":"
         "\"object\",\"properties\":{\"b\":{\"$ref\":\"#/$defs/a\"}}}}}}}]}",
         "deeper than"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":"
         "\"xml\"}}",
         "response_format.type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\","
         "\"tool_call_id\":\"nope\",\"content\":\"r\"}]}",
         "messages[1].tool_call_id: \"nope\" matches no earlier assistant tool call"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\","
         "\"content\":\"r\"}]}",
         "messages[1].tool_call_id: expected a string"},
        {"{\"messages\":[{\"role\":\"critic\",\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}",
         "messages[0].content[0].type: \"video\" is not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":42}]}", "messages[0].content:"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"function\":"
         "{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
         "messages[0].tool_calls[0].function.arguments"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
         "at least one user or assistant message"},
        {"{\"messages\":{}}", "messages: expected an array"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_refused(cases[i][0], cases[i][1]);
}

/* ---- answers ---------------------------------------------------------------------------- */

/* chat_response on a fixture file (or inline text when <inline_body>). */
static cJSON *answer(const char *src, bool inline_body, struct dp_usage *u, char **err)
{
    struct dp_xctx x = xctx(false);
    size_t len, out_len = 0;
    char *body = inline_body ? strdup(src) : read_fixture(src, &len), *out = NULL;
    cJSON *j = NULL;
    int rc;

    len = strlen(body);
    *u = (struct dp_usage){-1, -1, -1};
    *err = NULL;
    rc = ops()->chat_response(body, len, &x, &out, &out_len, u, err);
    if (rc == 0) {
        j = cJSON_ParseWithLength(out, out_len);
        assert_non_null(j);
    } else {
        assert_int_equal(rc, -EINVAL);
        assert_non_null(*err);
        assert_null(out);
    }
    free(out);
    free(body);
    return j;
}

static void test_answer_golden(void **state)
{
    struct dp_usage u;
    char *err;
    cJSON *j;
    (void)state;

    j = answer("response_text.json", false, &u, &err);
    assert_json_fixture(j, "response_text.openai.json");
    assert_int_equal(u.prompt_tokens, 8);
    assert_int_equal(u.completion_tokens, 398);
    assert_int_equal(u.cached_tokens, 0);
    cJSON_Delete(j);

    j = answer("response_function_calls.json", false, &u, &err);
    assert_json_fixture(j, "response_function_calls.openai.json");
    cJSON_Delete(j);
}

static void test_answer_filters_and_thinking(void **state)
{
    struct dp_usage u;
    char *err;
    cJSON *j;
    (void)state;

    j = answer("response_safety.json", false, &u, &err);
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "content_filter");
    assert_string_equal(str_at(j, "choices[0].message.content"), "");
    assert_int_equal((int)num_at(j, "usage.prompt_tokens"), 12);
    assert_int_equal((int)num_at(j, "usage.completion_tokens"), 0);
    cJSON_Delete(j);

    j = answer("response_prompt_blocked.json", false, &u, &err);
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "content_filter");
    assert_string_equal(str_at(j, "choices[0].message.content"), "");
    assert_int_equal(u.prompt_tokens, 13);
    cJSON_Delete(j);

    j = answer("response_thinking.json", false, &u, &err);
    assert_string_equal(str_at(j, "choices[0].message.content"), "There are 8 paws in your house.");
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "length");
    assert_int_equal((int)num_at(j, "usage.prompt_tokens"), 1200);
    assert_int_equal((int)num_at(j, "usage.completion_tokens"), 49);
    assert_int_equal((int)num_at(j, "usage.total_tokens"), 1249);
    assert_int_equal((int)num_at(j, "usage.prompt_tokens_details.cached_tokens"), 1024);
    assert_int_equal((int)num_at(j, "usage.completion_tokens_details.reasoning_tokens"), 40);
    assert_int_equal(u.cached_tokens, 1024);
    assert_int_equal(u.completion_tokens, 49);
    cJSON_Delete(j);
}

static void test_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(dp_gemini_finish_reason("STOP", false), "stop");
    assert_string_equal(dp_gemini_finish_reason("STOP", true), "tool_calls");
    assert_string_equal(dp_gemini_finish_reason(NULL, true), "tool_calls");
    assert_string_equal(dp_gemini_finish_reason("MAX_TOKENS", true), "length");
    assert_string_equal(dp_gemini_finish_reason("SAFETY", false), "content_filter");
    assert_string_equal(dp_gemini_finish_reason("RECITATION", false), "content_filter");
    assert_string_equal(dp_gemini_finish_reason("BLOCKLIST", false), "content_filter");
    assert_string_equal(dp_gemini_finish_reason("PROHIBITED_CONTENT", true), "content_filter");
    assert_string_equal(dp_gemini_finish_reason("SPII", false), "content_filter");
    assert_string_equal(dp_gemini_finish_reason("OTHER", false), "stop");
}

static void test_answer_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"cut",
        "{}",
        "{\"candidates\":{}}",
        "{\"candidates\":[1]}",
        "{\"candidates\":[{\"content\":{\"parts\":\"x\"}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[1]}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]}}]}",
        ("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\","
         "\"args\":[1]}}]}}]}"),
    };
    struct dp_usage u;
    char *err;
    cJSON *j;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = answer(bad[i], true, &u, &err);
        if (j)
            fail_msg("accepted: %s", bad[i]);
        free(err);
    }
    /* Absurd counts are ignored rather than overflowing an integer. */
    j = answer("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"t\"}]}}],"
               "\"usageMetadata\":{\"promptTokenCount\":1e300,\"candidatesTokenCount\":-5}}",
               true, &u, &err);
    assert_non_null(j);
    assert_int_equal(u.prompt_tokens, 0);
    assert_int_equal(u.completion_tokens, 0);
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "stop");
    cJSON_Delete(j);
}

/* ---- streams ---------------------------------------------------------------------------- */

struct sink {
    char *events[32];
    size_t n;
};

static int on_emit(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;

    assert_true(s->n < 32);
    s->events[s->n++] = strndup(data, len);
    return 0;
}

static void sink_free(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->events[i]);
    s->n = 0;
}

/* Feeds the "data:" lines of an .sse fixture through the translator; returns the first
 * non-zero stream_event result, or stream_end's. */
static int run_stream(const char *name, struct sink *s, struct dp_usage *u)
{
    struct dp_xctx x = xctx(true);
    struct dp_stream_xlate *st = ops()->stream_new(&x);
    char *text = read_fixture(name, NULL), *line, *save = NULL;
    int rc = 0;

    *u = (struct dp_usage){-1, -1, -1};
    for (line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (strncmp(line, "data: ", 6) == 0)
            rc = ops()->stream_event(st, "", line + 6, n - 6, u, on_emit, s);
    }
    if (rc == 0)
        rc = ops()->stream_end(st, u, on_emit, s);
    ops()->stream_free(st);
    free(text);
    return rc;
}

/* Compares emitted events with a .jsonl fixture, line by line. */
static void assert_events(const struct sink *s, const char *name)
{
    char *text = read_fixture(name, NULL), *line, *save = NULL;
    size_t i = 0;

    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        if (i >= s->n)
            fail_msg("%s: only %zu events, want more", name, s->n);
        if (strcmp(line, "[DONE]") == 0) {
            assert_string_equal(s->events[i], "[DONE]");
            continue;
        }
        cJSON *want = cJSON_Parse(line), *got = cJSON_Parse(s->events[i]);
        if (!cJSON_Compare(got, want, true))
            fail_msg("%s event %zu:\n got %s\nwant %s", name, i, s->events[i], line);
        cJSON_Delete(want);
        cJSON_Delete(got);
    }
    assert_int_equal(i, s->n);
    free(text);
}

static void test_stream_golden(void **state)
{
    struct sink s = {0};
    struct dp_usage u;
    (void)state;

    assert_int_equal(run_stream("stream_text.sse", &s, &u), 0);
    assert_events(&s, "stream_text.expected.jsonl");
    assert_int_equal(u.prompt_tokens, 8);
    assert_int_equal(u.completion_tokens, 17);
    sink_free(&s);

    assert_int_equal(run_stream("stream_function_calls.sse", &s, &u), 0);
    assert_events(&s, "stream_function_calls.expected.jsonl");
    sink_free(&s);
}

static void test_stream_filters(void **state)
{
    struct sink s = {0};
    struct dp_usage u;
    cJSON *j;
    (void)state;

    assert_int_equal(run_stream("stream_safety.sse", &s, &u), 0);
    assert_int_equal(s.n, 4); /* text, finish, usage, [DONE] */
    j = cJSON_Parse(s.events[1]);
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "content_filter");
    cJSON_Delete(j);
    sink_free(&s);

    assert_int_equal(run_stream("stream_prompt_blocked.sse", &s, &u), 0);
    assert_int_equal(s.n, 3);
    j = cJSON_Parse(s.events[0]);
    assert_string_equal(str_at(j, "choices[0].delta.role"), "assistant");
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "content_filter");
    cJSON_Delete(j);
    assert_int_equal(u.prompt_tokens, 13);
    assert_string_equal(s.events[2], "[DONE]");
    sink_free(&s);
}

static void test_stream_errors(void **state)
{
    struct sink s = {0};
    struct dp_usage u;
    cJSON *j;
    (void)state;

    assert_int_not_equal(run_stream("stream_error.sse", &s, &u), 0);
    assert_int_equal(s.n, 2);
    j = cJSON_Parse(s.events[1]);
    assert_string_equal(str_at(j, "error.code"), "upstream_error");
    assert_non_null(strstr(str_at(j, "error.message"), "overloaded"));
    cJSON_Delete(j);
    sink_free(&s);

    assert_int_not_equal(run_stream("stream_malformed.sse", &s, &u), 0);
    assert_int_equal(s.n, 2);
    j = cJSON_Parse(s.events[1]);
    assert_string_equal(str_at(j, "error.code"), "upstream_invalid_response");
    cJSON_Delete(j);
    sink_free(&s);
}

static void test_stream_without_finish(void **state)
{
    struct dp_xctx x = xctx(true);
    struct dp_stream_xlate *st = ops()->stream_new(&x);
    struct dp_usage u = {-1, -1, -1};
    struct sink s = {0};
    const char *ev = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"},"
                     "{\"text\":\"\",\"thoughtSignature\":\"abc\"},"
                     "{\"text\":\"secret\",\"thought\":true}]}}]}";
    cJSON *j;
    (void)state;

    assert_int_equal(ops()->stream_event(st, "", "  ", 2, &u, on_emit, &s), 0);
    assert_int_equal(ops()->stream_event(st, "", ev, strlen(ev), &u, on_emit, &s), 0);
    assert_int_equal(ops()->stream_end(st, &u, on_emit, &s), 0);
    ops()->stream_free(st);
    assert_int_equal(s.n, 3); /* "hi", finish stop (no usage seen), [DONE] */
    j = cJSON_Parse(s.events[1]);
    assert_string_equal(str_at(j, "choices[0].finish_reason"), "stop");
    cJSON_Delete(j);
    assert_int_equal(u.prompt_tokens, -1);
    sink_free(&s);
}

/* ---- errors ----------------------------------------------------------------------------- */

static void check_error(const char *name, int status, int want_status, const char *code,
                        bool retryable)
{
    size_t len;
    char *body = read_fixture(name, &len);
    struct dp_error_info e;

    ops()->error(status, body, len, &e);
    if (e.status != want_status || strcmp(e.code, code) != 0 || e.retryable != retryable)
        fail_msg("%s: got %d %s retryable=%d (%s)", name, e.status, e.code, e.retryable, e.message);
    free(body);
}

static void test_errors(void **state)
{
    struct dp_error_info e;
    (void)state;

    check_error("error_429.json", 429, 429, "rate_limit_exceeded", true);
    check_error("error_token_limit.json", 400, 400, "context_length_exceeded", false);
    check_error("error_api_key_invalid.json", 400, 502, "provider_auth_failed", false);
    check_error("error_403.json", 403, 502, "provider_auth_failed", false);
    check_error("error_503.json", 503, 502, "upstream_error", true);
    check_error("error_500.json", 500, 502, "upstream_error", true);
    check_error("error_404.json", 404, 502, "upstream_model_not_found", false);

    ops()->error(502, "<html>bad gateway</html>", 24, &e);
    assert_int_equal(e.status, 502);
    assert_non_null(strstr(e.message, "bad gateway"));
    ops()->error(400, NULL, 0, &e);
    assert_int_equal(e.status, 400);
}

/* ---- embeddings ------------------------------------------------------------------------- */

static void test_embed_request(void **state)
{
    struct dp_provider_rt rt = {.provider = &provider};
    struct dp_xctx x = xctx(false);
    struct dp_upreq up = {0};
    cJSON *req = parse_fixture("embed.openai.json"), *body;
    char *err = NULL;
    (void)state;

    set_upstream("text-embedding-004");
    assert_int_equal(ops()->embed_request(&rt, req, &x, &up, &err), 0);
    assert_string_equal(up.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                                "text-embedding-004:batchEmbedContents");
    body = cJSON_ParseWithLength(up.body, up.body_len);
    assert_json_fixture(body, "embed.gemini.json");
    cJSON_Delete(body);
    dp_upreq_cleanup(&up);
    cJSON_Delete(req);

    req = cJSON_Parse("{\"model\":\"e\",\"input\":[[1,2,3]]}");
    assert_int_equal(ops()->embed_request(&rt, req, &x, &up, &err), -EINVAL);
    assert_non_null(strstr(err, "input[0]"));
    free(err);
    cJSON_Delete(req);
    req = cJSON_Parse("{\"model\":\"e\",\"input\":\"one\",\"encoding_format\":\"hex\"}");
    assert_int_equal(ops()->embed_request(&rt, req, &x, &up, &err), -EINVAL);
    assert_non_null(strstr(err, "encoding_format"));
    free(err);
    cJSON_Delete(req);
    set_upstream("gemini-1.5-flash");
}

static void test_embed_response(void **state)
{
    const char *float_req = "{\"model\":\"embed\",\"input\":[\"What is the meaning of life?\","
                            "\"How much wood would a woodchuck chuck?\"]}";
    const char *b64_req = "{\"model\":\"embed\",\"input\":\"x\",\"encoding_format\":\"base64\"}";
    const char *b64_body = "{\"embeddings\":[{\"values\":[1.0,-2.0]}]}";
    struct dp_xctx x = xctx(false);
    struct dp_usage u = {-1, -1, -1};
    size_t len, out_len;
    char *body = read_fixture("embed_response.json", &len), *out = NULL, *err = NULL;
    cJSON *j;
    (void)state;

    set_upstream("text-embedding-004");
    x.raw_body = float_req;
    x.raw_len = strlen(float_req);
    assert_int_equal(ops()->embed_response(body, len, &x, &out, &out_len, &u, &err), 0);
    j = cJSON_ParseWithLength(out, out_len);
    assert_json_fixture(j, "embed_response.openai.json");
    assert_int_equal(u.prompt_tokens, 17);
    cJSON_Delete(j);
    free(out);
    free(body);

    /* base64: little-endian float32 1.0 = 00 00 80 3f, -2.0 = 00 00 00 c0. */
    x.raw_body = b64_req;
    x.raw_len = strlen(b64_req);
    assert_int_equal(
        ops()->embed_response(b64_body, strlen(b64_body), &x, &out, &out_len, &u, &err), 0);
    j = cJSON_ParseWithLength(out, out_len);
    assert_string_equal(str_at(j, "data[0].embedding"), "AACAPwAAAMA=");
    assert_int_equal((int)num_at(j, "usage.prompt_tokens"), 1);
    cJSON_Delete(j);
    free(out);

    assert_int_equal(ops()->embed_response("{\"embeddings\":[{\"values\":[\"x\"]}]}", 34, &x, &out,
                                           &out_len, &u, &err),
                     -EINVAL);
    free(err);
    assert_int_equal(ops()->embed_response("nope", 4, &x, &out, &out_len, &u, &err), -EINVAL);
    free(err);
    set_upstream("gemini-1.5-flash");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_key_header),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_request_basic_golden),
        cmocka_unit_test(test_request_tools_golden),
        cmocka_unit_test(test_request_tool_choice),
        cmocka_unit_test(test_request_media),
        cmocka_unit_test(test_request_generation_config),
        cmocka_unit_test(test_request_provider_options),
        cmocka_unit_test(test_request_turns),
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_answer_golden),
        cmocka_unit_test(test_answer_filters_and_thinking),
        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_answer_malformed),
        cmocka_unit_test(test_stream_golden),
        cmocka_unit_test(test_stream_filters),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_stream_without_finish),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_embed_request),
        cmocka_unit_test(test_embed_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
