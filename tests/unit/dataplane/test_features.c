/* tests/unit/dataplane/test_features.c - request features: every trait, caps, hashing. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "dp_features.h"

/* Headers for a test: NULL-terminated name/value pairs. */
static const char *hdr_get(void *arg, const char *name)
{
    const char *const *kv = arg;
    for (; kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static cJSON *parse(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (!root)
        fail_msg("test JSON does not parse: %s", json);
    return root;
}

/* Extracts from <json> with headers <kv> (NULL: none); the tree goes to *root. */
static void extract(const char *json, const char *const *kv, cJSON **root, struct dp_features *f)
{
    *root = parse(json);
    assert_int_equal(dp_features_extract(*root, kv ? hdr_get : NULL, (void *)(uintptr_t)kv, f), 0);
}

static void assert_text(struct dp_text t, const char *want)
{
    assert_int_equal(t.len, strlen(want));
    assert_memory_equal(t.p, want, t.len);
}

static void test_basic_traits(void **state)
{
    struct dp_features f;
    cJSON *root;
    (void)state;

    extract("{\"model\":\"gpt-4o\",\"stream\":true,"
            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            NULL, &root, &f);
    assert_string_equal(f.model, "gpt-4o");
    assert_true(f.stream);
    assert_false(f.has_tools);
    assert_false(f.has_images);
    assert_false(f.json_mode);
    assert_int_equal(f.n_messages, 1);
    assert_int_equal(f.n_tags, 0);
    assert_int_equal(f.region.len, 0);
    assert_int_equal(f.n_compliance, 0);
    dp_features_cleanup(&f);
    cJSON_Delete(root);

    extract("{\"model\":7,\"stream\":false,\"messages\":[]}", NULL, &root, &f);
    assert_null(f.model);
    assert_false(f.stream);
    assert_int_equal(f.n_messages, 0);
    assert_int_equal(f.prompt_tokens, 0);
    assert_int_equal(f.last_user.len, 0);
    assert_non_null(f.last_user.p);
    assert_int_equal(f.affinity_hash, 0);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_not_an_object(void **state)
{
    struct dp_features f;
    cJSON *root = parse("[1,2]");
    (void)state;

    assert_int_equal(dp_features_extract(root, NULL, NULL, &f), -EINVAL);
    assert_int_equal(dp_features_extract(NULL, NULL, NULL, &f), -EINVAL);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_json_mode(void **state)
{
    static const char *const cases[][2] = {
        {"{\"response_format\":{\"type\":\"json_object\"}}", "1"},
        {"{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}", "1"},
        {"{\"response_format\":{\"type\":\"text\"}}", "0"},
        {"{\"response_format\":\"json_object\"}", "0"},
        {"{}", "0"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_features f;
        cJSON *root;
        extract(cases[i][0], NULL, &root, &f);
        assert_int_equal(f.json_mode, cases[i][1][0] == '1');
        dp_features_cleanup(&f);
        cJSON_Delete(root);
    }
}

static void test_tools(void **state)
{
    static const char *const cases[][2] = {
        {"{\"tools\":[{\"type\":\"function\"}]}", "1"},
        {"{\"tools\":[]}", "0"},
        {"{\"tools\":null}", "0"},
        {"{\"functions\":[{\"name\":\"f\"}]}", "1"},
        {"{\"functions\":[]}", "0"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_features f;
        cJSON *root;
        extract(cases[i][0], NULL, &root, &f);
        assert_int_equal(f.has_tools, cases[i][1][0] == '1');
        dp_features_cleanup(&f);
        cJSON_Delete(root);
    }
}

static void test_images(void **state)
{
    static const char *const cases[][2] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
         "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}}]}]}",
         "1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\"}]}]}", "1"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}]}",
         "0"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"image_url\"}]}", "0"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_features f;
        cJSON *root;
        extract(cases[i][0], NULL, &root, &f);
        assert_int_equal(f.has_images, cases[i][1][0] == '1');
        dp_features_cleanup(&f);
        cJSON_Delete(root);
    }
}

/* bytes/4 + 3 per message + tool schema weight/4, as documented in dp_features.h. */
static void test_prompt_tokens(void **state)
{
    struct dp_features f;
    cJSON *root;
    (void)state;

    /* 16 + 13 + 8 (tool call name "f" + arguments "{\"a\":1}" = 1 + 7) = 37 -> 9, 3 messages
     * -> 9; the tool {"type":"function"}: object 2 + key "type" 4+3 + string 8+2 = 19 -> 4. */
    extract("{\"messages\":["
            "{\"role\":\"system\",\"content\":\"You are helpful.\"},"
            "{\"role\":\"user\",\"content\":\"Hello world!!\"},"
            "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":"
            "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]}],"
            "\"tools\":[{\"type\":\"function\"}]}",
            NULL, &root, &f);
    assert_int_equal(f.n_messages, 3);
    assert_int_equal(f.prompt_tokens, 37 / 4 + 9 + 19 / 4);
    dp_features_cleanup(&f);
    cJSON_Delete(root);

    /* Text parts count; image parts do not. */
    extract(
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"12345678\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/a.png\"}},"
        "{\"type\":\"text\",\"text\":\"1234\"}]}]}",
        NULL, &root, &f);
    assert_int_equal(f.prompt_tokens, 12 / 4 + 3);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_tags_and_headers(void **state)
{
    static const char *const kv[] = {
        "X-Switchyard-Tags",
        " batch ,, eu,\tlow-latency , ",
        "x-switchyard-region",
        "  eu-west ",
        "x-switchyard-compliance",
        "hipaa,soc2",
        NULL,
        NULL,
    };
    struct dp_features f;
    cJSON *root;
    (void)state;

    extract("{\"metadata\":{\"team\":\"x\",\"Nightly\":true},\"messages\":[]}", kv, &root, &f);
    assert_int_equal(f.n_tags, 5);
    assert_text(f.tags[0], "batch");
    assert_text(f.tags[1], "eu");
    assert_text(f.tags[2], "low-latency");
    assert_text(f.tags[3], "team");
    assert_text(f.tags[4], "Nightly");
    assert_true(dp_features_has_tag(&f, "nightly"));
    assert_true(dp_features_has_tag(&f, "BATCH"));
    assert_false(dp_features_has_tag(&f, "bat"));
    assert_false(dp_features_has_tag(&f, "batch2"));
    assert_text(f.region, "eu-west");
    assert_int_equal(f.n_compliance, 2);
    assert_text(f.compliance[0], "hipaa");
    assert_text(f.compliance[1], "soc2");
    assert_int_equal(f.n_dropped, 0);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_tag_limits(void **state)
{
    char hdr[8192], meta[4096];
    const char *kv[] = {DP_HDR_TAGS, hdr, NULL, NULL};
    size_t n = 0;
    struct dp_features f;
    cJSON *root;
    (void)state;

    /* 40 header tags, one of them too long: 31 fit with the long one dropped, then the
     * metadata keys find the list full. */
    for (int i = 0; i < 40; i++) {
        if (i == 3) {
            n +=
                (size_t)snprintf(hdr + n, sizeof(hdr) - n, "%0*d,", DP_FEATURES_MAX_TAG_LEN + 1, 0);
            continue;
        }
        n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "t%d,", i);
    }
    snprintf(meta, sizeof(meta), "{\"metadata\":{\"m1\":1,\"m2\":2}}");
    extract(meta, kv, &root, &f);
    assert_int_equal(f.n_tags, DP_FEATURES_MAX_TAGS);
    assert_text(f.tags[0], "t0");
    assert_text(f.tags[3], "t4");
    assert_int_equal(f.n_dropped, 40 - DP_FEATURES_MAX_TAGS + 2);
    assert_false(dp_features_has_tag(&f, "m1"));
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_texts_borrowed(void **state)
{
    struct dp_features f;
    cJSON *root;
    const cJSON *msgs;
    (void)state;

    extract("{\"messages\":["
            "{\"role\":\"system\",\"content\":\"Be terse.\"},"
            "{\"role\":\"user\",\"content\":\"first question\"},"
            "{\"role\":\"assistant\",\"content\":\"answer\"},"
            "{\"role\":\"user\",\"content\":\"second question\"}]}",
            NULL, &root, &f);
    msgs = cJSON_GetObjectItem(root, "messages");
    assert_text(f.system, "Be terse.");
    assert_text(f.last_user, "second question");
    /* Borrowed: the very bytes of the tree, and nothing allocated. */
    assert_ptr_equal(f.system.p, cJSON_GetArrayItem(msgs, 0)->child->next->valuestring);
    assert_ptr_equal(f.last_user.p, cJSON_GetArrayItem(msgs, 3)->child->next->valuestring);
    assert_null(f.buf);
    assert_false(f.last_user_cut);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_texts_joined(void **state)
{
    struct dp_features f;
    cJSON *root;
    (void)state;

    extract("{\"messages\":["
            "{\"role\":\"system\",\"content\":\"Rule one.\"},"
            "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Rule two.\"}]},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look at\"},"
            "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
            "{\"type\":\"text\",\"text\":\"this\"}]}]}",
            NULL, &root, &f);
    assert_text(f.system, "Rule one.\nRule two.");
    assert_text(f.last_user, "look at\nthis");
    assert_non_null(f.buf);
    /* Joined texts are NUL-terminated. */
    assert_int_equal(f.system.p[f.system.len], '\0');
    assert_int_equal(f.last_user.p[f.last_user.len], '\0');
    dp_features_cleanup(&f);
    assert_null(f.buf);
    cJSON_Delete(root);

    /* A user message whose content has no text at all. */
    extract("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", NULL,
            &root, &f);
    assert_int_equal(f.last_user.len, 0);
    assert_int_equal(f.system.len, 0);
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

static void test_text_cap(void **state)
{
    size_t big = DP_FEATURES_MAX_TEXT + 1000;
    char *text = malloc(big + 1);
    cJSON *root = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON *m1 = cJSON_CreateObject(), *m2 = cJSON_CreateObject(), *parts;
    struct dp_features f;
    (void)state;

    memset(text, 'a', big);
    text[big] = '\0';
    cJSON_AddStringToObject(m1, "role", "system");
    parts = cJSON_AddArrayToObject(m1, "content");
    for (int i = 0; i < 2; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", "text");
        cJSON_AddStringToObject(p, "text", text);
        cJSON_AddItemToArray(parts, p);
    }
    cJSON_AddItemToArray(msgs, m1);
    cJSON_AddStringToObject(m2, "role", "user");
    cJSON_AddStringToObject(m2, "content", text);
    cJSON_AddItemToArray(msgs, m2);

    assert_int_equal(dp_features_extract(root, NULL, NULL, &f), 0);
    assert_int_equal(f.last_user.len, DP_FEATURES_MAX_TEXT);
    assert_true(f.last_user_cut);
    assert_int_equal(f.system.len, DP_FEATURES_MAX_TEXT);
    assert_true(f.system_cut);
    assert_int_equal(f.system.p[f.system.len - 1], 'a');
    /* The estimate counts everything, not only what was kept. */
    assert_int_equal(f.prompt_tokens, (int64_t)(3 * big / 4 + 6));
    dp_features_cleanup(&f);
    cJSON_Delete(root);
    free(text);
}

static void test_legacy_prompt(void **state)
{
    struct dp_features f;
    cJSON *root;
    (void)state;

    extract("{\"model\":\"m\",\"prompt\":\"Say this is a test\"}", NULL, &root, &f);
    assert_int_equal(f.n_messages, 1);
    assert_text(f.last_user, "Say this is a test");
    assert_int_equal(f.prompt_tokens, 18 / 4 + 3);
    assert_int_not_equal(f.affinity_hash, 0);
    dp_features_cleanup(&f);
    cJSON_Delete(root);

    extract("{\"input\":[\"one\",\"two two\"]}", NULL, &root, &f);
    assert_int_equal(f.n_messages, 2);
    assert_text(f.last_user, "two two");
    dp_features_cleanup(&f);
    cJSON_Delete(root);
}

/* Against libxxhash's XXH64 (values computed with libxxhash 0.8.1). */
static void test_hash64_vectors(void **state)
{
    unsigned char buf[773];
    (void)state;

    assert_int_equal(dp_hash64("", 0, 0), UINT64_C(0xef46db3751d8e999));
    assert_int_equal(dp_hash64("abc", 3, 0), UINT64_C(0x44bc2cf5ad770999));
    assert_int_equal(dp_hash64("The quick brown fox jumps over the lazy dog", 43, 0),
                     UINT64_C(0x0b242d361fda71bc));
    memset(buf, 'x', 100);
    assert_int_equal(dp_hash64(buf, 100, 7), UINT64_C(0xae5ad321e4fe6127));
    for (int i = 0; i < 768; i++)
        buf[i] = (unsigned char)(i % 256);
    memcpy(buf + 768, "abcde", 5);
    assert_int_equal(dp_hash64(buf, sizeof(buf), 12345), UINT64_C(0x0ca37e09e116889b));
}

static uint64_t affinity(const char *json)
{
    struct dp_features f;
    cJSON *root;
    uint64_t h;

    extract(json, NULL, &root, &f);
    h = f.affinity_hash;
    dp_features_cleanup(&f);
    cJSON_Delete(root);
    return h;
}

/* The hash follows the system prompt and the FIRST user message only, so every turn of one
 * conversation lands on the same target. */
static void test_affinity_hash(void **state)
{
    uint64_t turn1, turn2, other_sys, other_user, no_sys;
    (void)state;

    turn1 = affinity("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                     "{\"role\":\"user\",\"content\":\"Q1\"}]}");
    turn2 = affinity("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                     "{\"role\":\"user\",\"content\":\"Q1\"},"
                     "{\"role\":\"assistant\",\"content\":\"A1\"},"
                     "{\"role\":\"user\",\"content\":\"Q2\"}]}");
    other_sys = affinity("{\"messages\":[{\"role\":\"system\",\"content\":\"T\"},"
                         "{\"role\":\"user\",\"content\":\"Q1\"}]}");
    other_user = affinity("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                          "{\"role\":\"user\",\"content\":\"Q9\"}]}");
    no_sys = affinity("{\"messages\":[{\"role\":\"user\",\"content\":\"Q1\"}]}");
    assert_int_not_equal(turn1, 0);
    assert_int_equal(turn1, turn2);
    assert_int_not_equal(turn1, other_sys);
    assert_int_not_equal(turn1, other_user);
    assert_int_not_equal(turn1, no_sys);
    /* Documented composition: XXH64(system, 0), then the user text seeded with that. */
    assert_int_equal(turn1, dp_hash64("Q1", 2, dp_hash64("S", 1, 0)));
    assert_int_equal(no_sys, dp_hash64("Q1", 2, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_traits),     cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_json_mode),        cmocka_unit_test(test_tools),
        cmocka_unit_test(test_images),           cmocka_unit_test(test_prompt_tokens),
        cmocka_unit_test(test_tags_and_headers), cmocka_unit_test(test_tag_limits),
        cmocka_unit_test(test_texts_borrowed),   cmocka_unit_test(test_texts_joined),
        cmocka_unit_test(test_text_cap),         cmocka_unit_test(test_legacy_prompt),
        cmocka_unit_test(test_hash64_vectors),   cmocka_unit_test(test_affinity_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
