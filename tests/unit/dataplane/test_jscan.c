/* tests/unit/dataplane/test_jscan.c - member lookups without a parse: objects found,
 * nulls and look-alikes inside strings ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp_jscan.h"

#define S(x) x, strlen(x)

static void test_has_object_member(void **state)
{
    (void)state;
    assert_true(dp_json_has_object_member(S("{\"usage\":{\"prompt_tokens\":1}}"), "usage"));
    assert_true(dp_json_has_object_member(S("{\"usage\" :\n {}}"), "usage"));
    assert_false(dp_json_has_object_member(S("{\"usage\":null}"), "usage"));
    assert_false(dp_json_has_object_member(S("{\"choices\":[],\"x\":1}"), "usage"));
    /* Inside a string value the quotes are escaped: not a member. */
    assert_false(dp_json_has_object_member(S("{\"content\":\"say \\\"usage\\\":{1}\"}"), "usage"));
    assert_false(dp_json_has_object_member(S("{\"usagex\":{}}"), "usage"));
    assert_false(dp_json_has_object_member(S("\"usage"), "usage"));
    assert_false(dp_json_has_object_member(S(""), "usage"));
}

static void test_member_object(void **state)
{
    const char *body =
        "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"\\\"usage\\\":{}\"}}],"
        "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}";
    cJSON *u;
    (void)state;

    u = dp_json_member_object(body, strlen(body), "usage");
    assert_non_null(u);
    assert_int_equal(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 7);
    assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 3);
    cJSON_Delete(u);
    assert_null(dp_json_member_object(S("{\"usage\":null}"), "usage"));
    /* Truncated object: no crash, no result. */
    assert_null(dp_json_member_object(S("{\"usage\":{\"prompt_tokens\":"), "usage"));
}

static void test_looks_like_object(void **state)
{
    (void)state;
    assert_true(dp_json_looks_like_object(S(" {\"a\":1}\n")));
    assert_false(dp_json_looks_like_object(S("[1]")));
    assert_false(dp_json_looks_like_object(S("{")));
    assert_false(dp_json_looks_like_object(S("")));
    assert_false(dp_json_looks_like_object(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_object_member),
        cmocka_unit_test(test_member_object),
        cmocka_unit_test(test_looks_like_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
