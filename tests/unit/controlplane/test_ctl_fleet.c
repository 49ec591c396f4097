/* tests/unit/controlplane/test_ctl_fleet.c - switchyardctl's fleet table. */
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
#include "../../../controlplane/ctl/ctl_fleet.c"
#include "../../../controlplane/ctl/ctl_http.c"
#include "../../../controlplane/ctl/ctl_reply.c"
#include "../../../controlplane/ctl/ctl_table.c"

#define NOW 1795341845000LL

static const char fleet_reply[] =
    "{\"active_version\":7,\"proxies\":["
    "{\"node_id\":\"p1\",\"zone\":\"\",\"address\":\"127.0.0.1:8080\",\"build_version\":\"0.1.0\","
    "\"connected\":true,\"connected_since_unix_ms\":1795330325000,"
    "\"last_seen_unix_ms\":1795341844800,\"acked_version\":7,\"last_nack\":null},"
    "{\"node_id\":\"p2\",\"address\":\"10.0.0.2:8080\",\"connected\":true,"
    "\"connected_since_unix_ms\":1795341545000,\"last_seen_unix_ms\":1795341833000,"
    "\"acked_version\":6,\"last_nack\":{\"version\":\"7\",\"error\":"
    "\"routes[0].targets[1].model: unknown model \\\"gpt5\\\"\",\"at_unix_ms\":1795341800000}},"
    "{\"node_id\":\"p3\",\"address\":\"\",\"connected\":false,\"connected_since_unix_ms\":null,"
    "\"last_seen_unix_ms\":1795154645000,\"acked_version\":null,"
    "\"last_nack\":{\"version\":5,\"error\":null}}]}";

static char *print(const char *json, size_t width, int expect_rc, char **err)
{
    cJSON *j = cJSON_Parse(json);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(j);
    assert_non_null(f);
    assert_int_equal(ctl_fleet_print(f, j, NOW, width, err), expect_rc);
    fclose(f);
    cJSON_Delete(j);
    return buf;
}

static void test_table(void **state)
{
    char *err = NULL;
    char *out = print(fleet_reply, 0, 0, &err);
    (void)state;

    assert_string_equal(
        out, "active version 7; 3 proxies, 2 connected, 2 behind, 2 with a NACK\n"
             "\n"
             "NODE  ADDRESS         CONNECTED    ACKED       LAST SEEN  NACK\n"
             "p1    127.0.0.1:8080  yes (3h12m)  7           just now   -\n"
             "p2    10.0.0.2:8080   yes (5m0s)   6 (behind)  12s ago    v7: routes[0].targets[1]."
             "model: unknown model \"gpt5\"\n"
             "p3    -               no           -           2d4h ago   v5: (no reason given)\n");
    free(out);
    /* The NACK column is the one cut to fit a terminal. */
    out = print(fleet_reply, 80, 0, &err);
    assert_non_null(strstr(out, "  v7: routes[0].targe...\n"));
    free(out);
}

static void test_empty_fleet(void **state)
{
    char *err = NULL;
    char *out;
    (void)state;

    out = print("{\"active_version\":null,\"proxies\":[]}", 0, 0, &err);
    assert_string_equal(out, "no active version; no proxies have connected\n");
    free(out);
}

static void test_unexpected(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"{\"active_version\":1}", "proxies: missing (expected an array)"},
        {"{\"proxies\":[null]}", "proxies[0]: expected an object, got null"},
        {"{\"proxies\":[{\"address\":\"x\"}]}", "proxies[0].node_id: missing (expected a string)"},
        {"{\"proxies\":[{\"node_id\":\"a\",\"connected\":\"yes\"}]}",
         "proxies[0].connected: expected true or false, got string"},
        {"{\"proxies\":[{\"node_id\":\"a\",\"acked_version\":\"7\"}]}",
         "proxies[0].acked_version: expected an integer, got string"},
        {"{\"proxies\":[{\"node_id\":\"a\",\"last_nack\":\"boom\"}]}",
         "proxies[0].last_nack: expected an object or null, got string"},
        {"{\"proxies\":[{\"node_id\":\"a\",\"last_nack\":{\"error\":1}}]}",
         "proxies[0].last_nack.error: expected a string, got number"},
    };
    (void)state;

    for (size_t i = 0; i < SY_ARRAY_LEN(cases); i++) {
        char *err = NULL;

        free(print(cases[i].json, 0, -EINVAL, &err));
        assert_non_null(err);
        assert_string_equal(err, cases[i].err);
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_empty_fleet),
        cmocka_unit_test(test_unexpected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
