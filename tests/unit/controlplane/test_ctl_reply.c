/* tests/unit/controlplane/test_ctl_reply.c - switchyardctl's reading of admin API replies:
 * error messages, defensive accessors, pretty JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The CLI is an executable, not a library: the test compiles the modules themselves. */
#include "../../../controlplane/ctl/ctl_reply.c"
#include "../../../controlplane/ctl/ctl_table.c"

static char *error_text(long status, const char *body)
{
    return ctl_reply_error_text(status, body, strlen(body));
}

static void test_error_text(void **state)
{
    char *t;
    (void)state;

    t = error_text(400, "{\"error\":{\"message\":\"policy rejected: 2 errors\","
                        "\"type\":\"invalid_policy\",\"code\":\"invalid_policy\",\"param\":null,"
                        "\"errors\":[{\"path\":\"routes[0].targets[1].model\","
                        "\"message\":\"unknown model \\\"gpt5\\\"\"},"
                        "{\"path\":\"\",\"message\":\"no routes\"},"
                        "\"a bare string\",42]}}");
    assert_string_equal(t, "policy rejected: 2 errors\n"
                           "  routes[0].targets[1].model: unknown model \"gpt5\"\n"
                           "  no routes\n"
                           "  a bare string\n"
                           "  (an entry that is a number, not {path, message})");
    free(t);
    t = error_text(404, "{\"error\":{\"message\":\"policy version 99 not found\","
                        "\"type\":\"not_found\",\"code\":\"not_found\",\"param\":null}}");
    assert_string_equal(t, "policy version 99 not found");
    free(t);
    t = error_text(409, "{\"error\":{\"code\":\"conflict\"}}");
    assert_string_equal(t, "HTTP 409 (conflict)");
    free(t);
    t = error_text(502, "<html>\n<body>Bad \033[31mgateway</body></html>\r\n");
    assert_string_equal(t, "HTTP 502: <html> <body>Bad  [31mgateway</body></html>");
    free(t);
    t = error_text(503, "");
    assert_string_equal(t, "HTTP 503 with an empty body");
    free(t);
}

static void test_error_text_long_body(void **state)
{
    char body[1000];
    char *t;
    (void)state;

    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    t = error_text(500, body);
    assert_int_equal(strlen(t), strlen("HTTP 500: ") + CTL_BODY_EXCERPT + 3);
    assert_non_null(strstr(t, "xxx..."));
    free(t);
}

static void test_accessors(void **state)
{
    cJSON *j = cJSON_Parse("{\"v\":7,\"f\":1.5,\"big\":1e300,\"s\":\"x\",\"n\":null,"
                           "\"b\":true,\"a\":[],\"o\":{}}");
    const cJSON *arr;
    const char *s;
    char *err = NULL;
    int64_t i;
    bool present, b;
    (void)state;

    assert_non_null(j);
    assert_int_equal(ctl_json_int(j, "", "v", &i, &err), 0);
    assert_int_equal(i, 7);
    assert_int_equal(ctl_json_int(j, "versions[2]", "f", &i, &err), -EINVAL);
    assert_string_equal(err, "versions[2].f: expected an integer, got 1.5");
    free(err);
    assert_int_equal(ctl_json_int(j, "", "big", &i, &err), -EINVAL);
    free(err);
    assert_int_equal(ctl_json_int(j, "", "s", &i, &err), -EINVAL);
    assert_string_equal(err, "s: expected an integer, got string");
    free(err);
    assert_int_equal(ctl_json_int(j, "", "missing", &i, &err), -EINVAL);
    assert_string_equal(err, "missing: missing (expected an integer)");
    free(err);
    assert_int_equal(ctl_json_int(j, "", "n", &i, &err), -EINVAL);
    free(err);
    assert_int_equal(ctl_json_int_opt(j, "", "n", &i, &present, &err), 0);
    assert_false(present);
    assert_int_equal(ctl_json_int_opt(j, "", "v", &i, &present, &err), 0);
    assert_true(present);

    assert_int_equal(ctl_json_str(j, "", "s", true, &s, &err), 0);
    assert_string_equal(s, "x");
    assert_int_equal(ctl_json_str(j, "", "n", false, &s, &err), 0);
    assert_null(s);
    assert_int_equal(ctl_json_str(j, "", "n", true, &s, &err), -EINVAL);
    assert_string_equal(err, "n: expected a string, got null");
    free(err);
    assert_int_equal(ctl_json_str(j, "", "v", false, &s, &err), -EINVAL);
    free(err);

    assert_int_equal(ctl_json_bool(j, "", "b", false, &b, &err), 0);
    assert_true(b);
    assert_int_equal(ctl_json_bool(j, "", "missing", true, &b, &err), 0);
    assert_true(b);
    assert_int_equal(ctl_json_bool(j, "", "s", false, &b, &err), -EINVAL);
    assert_string_equal(err, "s: expected true or false, got string");
    free(err);

    assert_int_equal(ctl_json_array(j, "", "a", &arr, &err), 0);
    assert_int_equal(ctl_json_array(j, "", "o", &arr, &err), -EINVAL);
    assert_string_equal(err, "o: expected an array, got object");
    free(err);
    assert_int_equal(ctl_json_object(j, "", "o", &arr, &err), 0);
    assert_int_equal(ctl_json_object(j, "", "a", &arr, &err), -EINVAL);
    free(err);
    cJSON_Delete(j);
}

static void test_json_print(void **state)
{
    cJSON *j = cJSON_Parse("{\"a\":1,\"b\":[true,null,\"x\\ty\"],\"c\":{},\"d\":[],"
                           "\"e\":{\"k\\\"\":2.5}}");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;

    assert_int_equal(ctl_json_print(f, j), 0);
    fclose(f);
    assert_string_equal(buf, "{\n"
                             "  \"a\": 1,\n"
                             "  \"b\": [\n"
                             "    true,\n"
                             "    null,\n"
                             "    \"x\\ty\"\n"
                             "  ],\n"
                             "  \"c\": {},\n"
                             "  \"d\": [],\n"
                             "  \"e\": {\n"
                             "    \"k\\\"\": 2.5\n"
                             "  }\n"
                             "}\n");
    free(buf);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_error_text_long_body),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_json_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
