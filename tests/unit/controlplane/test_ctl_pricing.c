/* tests/unit/controlplane/test_ctl_pricing.c - switchyardctl's pricing view. */
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
#include "../../../controlplane/ctl/ctl_pricing.c"
#include "../../../controlplane/ctl/ctl_reply.c"
#include "../../../controlplane/ctl/ctl_table.c"

#define NOW 1795341845000LL

static const char reply[] =
    "{\"source\":\"/etc/switchyard/prices.yaml\",\"refresh_s\":300,"
    "\"loaded_unix_ms\":1795341785000,\"last_attempt_unix_ms\":1795341843000,"
    "\"sha256\":\"841cf0112bb76c08adaa15ff8cc58286a2b3d5d5ee465ad03956187d2dda72ec\","
    "\"last_error\":\"models[0].output_per_mtok: is required\\nmodels[2]: duplicate entry\","
    "\"models\":["
    "{\"model\":\"gpt-4o-mini\",\"provider\":\"openai\",\"input_per_mtok\":0.15,"
    "\"output_per_mtok\":0.6,\"cached_input_per_mtok\":0.075,\"windows\":["
    "{\"start\":\"22:00\",\"end\":\"06:00\",\"input_per_mtok\":0.1,\"output_per_mtok\":0.4,"
    "\"cached_input_per_mtok\":0.075},"
    "{\"start\":\"12:00\",\"end\":\"13:00\",\"input_per_mtok\":0.15,\"output_per_mtok\":0,"
    "\"cached_input_per_mtok\":0}]},"
    "{\"model\":\"llama\",\"input_per_mtok\":0,\"output_per_mtok\":0,"
    "\"cached_input_per_mtok\":0}],"
    "\"reconcile\":{\"active_version\":9,\"last_pushed_version\":9,\"last_error\":null}}";

static char *print(const char *json, size_t width, int expect_rc, char **err)
{
    cJSON *j = cJSON_Parse(json);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(j);
    assert_non_null(f);
    assert_int_equal(ctl_pricing_print(f, j, NOW, width, err), expect_rc);
    fclose(f);
    cJSON_Delete(j);
    return buf;
}

static void test_view(void **state)
{
    char *err = NULL;
    char *out = print(reply, 0, 0, &err);

    (void)state;
    assert_string_equal(out, "catalogue /etc/switchyard/prices.yaml, read every 5m0s\n"
                             "loaded:     2026-11-22 10:03:05Z (1m0s ago), sha256 "
                             "841cf0112bb76c08\n"
                             "last read:  2026-11-22 10:04:03Z (2s ago)\n"
                             "last error (the catalogue above is still in use): "
                             "models[0].output_per_mtok: is required\n"
                             "  models[2]: duplicate entry\n"
                             "applied:    checked against version 9; last pushed version 9\n"
                             "\n"
                             "MODEL        PROVIDER  INPUT  OUTPUT  CACHED  WINDOWS (UTC "
                             "in/out[/cached])\n"
                             "gpt-4o-mini  openai    0.15   0.6     0.075   22:00-06:00 "
                             "0.1/0.4/0.075, 12:00-13:00 0.15/0\n"
                             "llama        (any)     0      0       -       -\n");
    free(out);
    out = print(reply, 80, 0, &err);
    /* The windows column is the one cut to fit a terminal. */
    assert_non_null(strstr(out, "  22:00-06:00 0.1/0.4/0.075, 12:0...\n"));
    free(out);
}

static void test_never_loaded(void **state)
{
    char *err = NULL;
    char *out = print("{\"source\":\"http://h/p.json?...\",\"refresh_s\":1,\"loaded_unix_ms\":null,"
                      "\"last_attempt_unix_ms\":null,\"sha256\":null,\"last_error\":null,"
                      "\"models\":[],\"reconcile\":{\"active_version\":null,"
                      "\"last_pushed_version\":null,\"last_error\":\"store\\u001b[31m down\"}}",
                      0, 0, &err);

    (void)state;
    assert_string_equal(out, "catalogue http://h/p.json?..., read every 1s\n"
                             "loaded:     never\n"
                             "apply error: store [31m down\n"
                             "\n"
                             "the catalogue has no entries\n");
    free(out);
}

static void test_unexpected(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"{\"models\":[]}", "source: missing (expected a string)"},
        {"{\"source\":\"x\"}", "models: missing (expected an array)"},
        {"{\"source\":\"x\",\"refresh_s\":\"300\",\"models\":[]}",
         "refresh_s: expected an integer, got string"},
        {"{\"source\":\"x\",\"models\":[1]}", "models[0]: expected an object, got number"},
        {"{\"source\":\"x\",\"models\":[{\"model\":\"m\",\"input_per_mtok\":\"1\"}]}",
         "models[0].input_per_mtok: expected a number, got string"},
        {"{\"source\":\"x\",\"models\":[{\"model\":\"m\",\"windows\":{}}]}",
         "models[0].windows: expected an array, got object"},
        {"{\"source\":\"x\",\"models\":[{\"model\":\"m\",\"windows\":[{\"start\":\"01:00\"}]}]}",
         "models[0].windows[0].end: missing (expected a string)"},
        {"{\"source\":\"x\",\"models\":[],\"reconcile\":{\"last_pushed_version\":true}}",
         "reconcile.last_pushed_version: expected an integer, got boolean"},
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
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_never_loaded),
        cmocka_unit_test(test_unexpected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
