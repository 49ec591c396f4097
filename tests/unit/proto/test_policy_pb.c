/* tests/unit/proto/test_policy_pb.c - a compiled policy survives the trip through the
 * switchyard.v1.Policy message unchanged, and bad messages are refused with reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sy_policy.h"
#include "sy_policy_pb.h"

static const char src[] =
    "providers:\n"
    "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:1/v1\", api_key_env: K1,\n"
    "     headers: {X-A: one, X-B: two}, connect_timeout_ms: 700, timeout_ms: 9000}\n"
    "  - {name: p2, kind: azure, api_version: \"2024-10-21\", base_url: \"https://x.test\"}\n"
    "models:\n"
    "  - {name: a, provider: p1, pricing: {input_per_mtok: 0.15, output_per_mtok: 0.6,\n"
    "     cached_input_per_mtok: 0.075}}\n"
    "  - {name: b, provider: p2, upstream_model: b-up}\n"
    "routes:\n"
    "  - {name: r, match: {model: auto}, targets: [{model: a, weight: 7}, {model: b, weight: 0}]}\n"
    "server: {max_body_bytes: 2048, idle_timeout_ms: 1000}\n";

static void test_roundtrip(void **state)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);
    struct sy_policy *back;
    uint8_t *buf;
    size_t len;
    char *a, *b;
    (void)state;

    assert_non_null(pol);
    buf = sy_policy_pack(pol, &len);
    assert_true(len > 0);
    back = sy_policy_unpack(buf, len, &err);
    if (!back)
        fail_msg("unpack failed: %s", err);
    a = sy_policy_to_json(pol);
    b = sy_policy_to_json(back);
    assert_string_equal(a, b);
    assert_int_equal(back->server.max_body_bytes, 2048);
    assert_int_equal(back->routes[0].targets[1].weight, 0);
    free(a);
    free(b);
    free(buf);
    sy_policy_unref(back);
    sy_policy_unref(pol);
}

static void test_garbage_refused(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    char *err = NULL;
    (void)state;

    assert_null(sy_policy_unpack(junk, sizeof(junk), &err));
    assert_non_null(err);
    free(err);
}

/* A message that is well-formed protobuf but not a valid policy gets the compiler's
 * field-path errors. */
static void test_invalid_policy_message(void **state)
{
    Switchyard__V1__Policy msg = SWITCHYARD__V1__POLICY__INIT;
    Switchyard__V1__Model model = SWITCHYARD__V1__MODEL__INIT;
    Switchyard__V1__Model *models[1] = {&model};
    char *err = NULL;
    (void)state;

    model.name = (char *)"m";
    model.provider = (char *)"nope";
    msg.n_models = 1;
    msg.models = models;
    assert_null(sy_policy_from_pb(&msg, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "models[0].provider"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_invalid_policy_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
