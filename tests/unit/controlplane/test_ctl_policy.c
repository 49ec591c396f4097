/* tests/unit/controlplane/test_ctl_policy.c - switchyardctl's policy commands: content type
 * sniffing and the printing of list, get and diff replies. */
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
#include "../../../controlplane/ctl/ctl_http.c"
#include "../../../controlplane/ctl/ctl_policy.c"
#include "../../../controlplane/ctl/ctl_reply.c"
#include "../../../controlplane/ctl/ctl_table.c"

struct capture {
    char *buf;
    size_t len;
    FILE *f;
};

static FILE *capture_start(struct capture *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    return c->f;
}

static char *capture_end(struct capture *c)
{
    fclose(c->f);
    return c->buf;
}

static void test_content_type(void **state)
{
    (void)state;

    assert_string_equal(ctl_policy_content_type("{\"routes\":[]}", 13), "application/json");
    assert_string_equal(ctl_policy_content_type("\xEF\xBB\xBF \n\t{}", 8), "application/json");
    assert_string_equal(ctl_policy_content_type("routes: []\n", 11), "application/yaml");
    assert_string_equal(ctl_policy_content_type("# {json?}\n", 10), "application/yaml");
    assert_string_equal(ctl_policy_content_type("", 0), "application/yaml");
}

static const char list_reply[] =
    "{\"active\":7,\"versions\":["
    "{\"version\":7,\"hash\":\"sha256:3f9a1c2b7d4e5f60718293a4b5c6d7e8\","
    "\"created_unix_ms\":1795341845000,\"note\":\"rollback\",\"active\":true,\"rollback_of\":3},"
    "{\"version\":6,\"hash\":\"0123456789abcdef\",\"created_unix_ms\":1795341000000,"
    "\"note\":\"\",\"active\":false,\"rollback_of\":null},"
    "{\"version\":3,\"created_unix_ms\":null,\"note\":\"canary: 5% to claude\\nsecond line\"}]}";

static void test_print_list(void **state)
{
    cJSON *j = cJSON_Parse(list_reply);
    struct capture c;
    char *err = NULL;
    char *out;
    (void)state;

    assert_int_equal(ctl_policy_print_list(capture_start(&c), j, 0, &err), 0);
    out = capture_end(&c);
    assert_string_equal(
        out, "VERSION  ACTIVE  CREATED               HASH          ROLLBACK OF  NOTE\n"
             "7        *       2026-11-22 10:04:05Z  3f9a1c2b7d4e  3            rollback\n"
             "6                2026-11-22 09:50:00Z  0123456789ab  -            -\n"
             "3                -                     -             -            canary: 5% to "
             "claude second line\n");
    free(out);
    /* The note column shrinks to fit a narrow terminal. */
    assert_int_equal(ctl_policy_print_list(capture_start(&c), j, 70, &err), 0);
    out = capture_end(&c);
    assert_non_null(strstr(out, "  canary: 5...\n"));
    free(out);
    cJSON_Delete(j);

    j = cJSON_Parse("{\"active\":null,\"versions\":[]}");
    assert_int_equal(ctl_policy_print_list(capture_start(&c), j, 0, &err), 0);
    out = capture_end(&c);
    assert_non_null(strstr(out, "no policy versions yet"));
    free(out);
    cJSON_Delete(j);
}

static void test_print_list_unexpected(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"{\"versions\":{}}", "versions: expected an array, got object"},
        {"{}", "versions: missing (expected an array)"},
        {"{\"active\":\"7\",\"versions\":[]}", "active: expected an integer, got string"},
        {"{\"versions\":[7]}", "versions[0]: expected an object, got number"},
        {"{\"versions\":[{\"version\":1},{\"hash\":\"x\"}]}",
         "versions[1].version: missing (expected an integer)"},
        {"{\"versions\":[{\"version\":1,\"note\":false}]}",
         "versions[0].note: expected a string, got boolean"},
    };
    (void)state;

    for (size_t i = 0; i < SY_ARRAY_LEN(cases); i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        struct capture c;
        char *err = NULL;

        assert_non_null(j);
        assert_int_equal(ctl_policy_print_list(capture_start(&c), j, 0, &err), -EINVAL);
        free(capture_end(&c));
        assert_non_null(err);
        assert_string_equal(err, cases[i].err);
        free(err);
        cJSON_Delete(j);
    }
}

static void test_print_summary(void **state)
{
    cJSON *j = cJSON_Parse("{\"version\":7,\"hash\":\"sha256:abc\",\"created_unix_ms\":"
                           "1795341845000,\"note\":\"rollback\",\"active\":true,\"rollback_of\":"
                           "3,\"source\":\"routes: []\",\"compiled\":{}}");
    struct capture c;
    char *err = NULL;
    char *out;
    (void)state;

    assert_int_equal(ctl_policy_print_summary(capture_start(&c), j, 1795341857000, &err), 0);
    out = capture_end(&c);
    assert_string_equal(out, "version:      7 (active)\n"
                             "hash:         sha256:abc\n"
                             "created:      2026-11-22 10:04:05Z (12s ago)\n"
                             "note:         rollback\n"
                             "rollback of:  3\n"
                             "\n"
                             "routes: []\n");
    free(out);
    cJSON_DeleteItemFromObject(j, "source");
    assert_int_equal(ctl_policy_print_summary(capture_start(&c), j, 0, &err), -EINVAL);
    free(capture_end(&c));
    assert_string_equal(err, "source: missing (expected a string)");
    free(err);
    cJSON_Delete(j);
}

static void test_print_diff(void **state)
{
    const char *diff = "--- v3\n+++ v7\n@@ -1,2 +1,2 @@\n {\n-  \"a\": 1\n+  \"a\": 2\n}";
    struct capture c;
    char *out;
    (void)state;

    ctl_policy_print_diff(capture_start(&c), diff, false);
    out = capture_end(&c);
    assert_string_equal(out, "--- v3\n+++ v7\n@@ -1,2 +1,2 @@\n {\n-  \"a\": 1\n+  \"a\": 2\n}\n");
    free(out);
    ctl_policy_print_diff(capture_start(&c), diff, true);
    out = capture_end(&c);
    assert_string_equal(out, "\033[31m--- v3\033[0m\n\033[32m+++ v7\033[0m\n@@ -1,2 +1,2 @@\n"
                             " {\n\033[31m-  \"a\": 1\033[0m\n\033[32m+  \"a\": 2\033[0m\n}\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_print_list),
        cmocka_unit_test(test_print_list_unexpected),
        cmocka_unit_test(test_print_summary),
        cmocka_unit_test(test_print_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
