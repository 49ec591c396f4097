/* tests/unit/tui/test_args.c - switchyard-top's command line (tui_args.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_args.h"

/* Parses the NULL-terminated arguments after <err> as a command line. */
static int vparse(const char *env, struct tui_args *out, char **err, va_list ap)
{
    char *argv[16] = {(char *)"switchyard-top"};
    const char *w;
    int argc = 1;

    while ((w = va_arg(ap, const char *)) != NULL && argc < 15)
        argv[argc++] = (char *)w;
    argv[argc] = NULL;
    return tui_args_parse(argc, argv, env, out, err);
}

static int parse(const char *env, struct tui_args *out, char **err, ...)
{
    va_list ap;
    int rc;

    va_start(ap, err);
    rc = vparse(env, out, err, ap);
    va_end(ap);
    return rc;
}

/* Expects the NULL-terminated arguments after <want> to be refused with <want> as the
 * message. */
static void refused(const char *want, ...)
{
    struct tui_args a;
    char *err = NULL;
    va_list ap;
    int rc;

    va_start(ap, want);
    rc = vparse(NULL, &a, &err, ap);
    va_end(ap);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(err);
    if (strcmp(err, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", err, want);
    free(err);
}

static void test_defaults(void **state)
{
    struct tui_args a;
    char *err = NULL;

    (void)state;
    assert_int_equal(parse(NULL, &a, &err, NULL), 0);
    assert_string_equal(a.server, "http://127.0.0.1:9090");
    assert_string_equal(tui_windows[a.window], "1m");
    assert_int_equal(a.interval_ms, 1000);
    assert_false(a.once);
    assert_false(a.help);
    assert_int_equal(a.view, TUI_VIEW_OVERVIEW);

    /* $SWITCHYARD_SERVER, then --server over it. */
    assert_int_equal(parse("cp.internal:9090/", &a, &err, NULL), 0);
    assert_string_equal(a.server, "http://cp.internal:9090");
    assert_int_equal(parse("cp:1", &a, &err, "--server", "https://x.example/", NULL), 0);
    assert_string_equal(a.server, "https://x.example");
    assert_int_equal(parse("", &a, &err, NULL), 0);
    assert_string_equal(a.server, "http://127.0.0.1:9090");
}

static void test_options(void **state)
{
    struct tui_args a;
    char *err = NULL;

    (void)state;
    assert_int_equal(parse(NULL, &a, &err, "--once", "--view", "spend", "--window=1h", "--interval",
                           "250", "--server=127.0.0.1:1234", NULL),
                     0);
    assert_true(a.once);
    assert_int_equal(a.view, TUI_VIEW_SPEND);
    assert_string_equal(tui_windows[a.window], "1h");
    assert_int_equal(a.interval_ms, 250);
    assert_string_equal(a.server, "http://127.0.0.1:1234");
    assert_int_equal(parse(NULL, &a, &err, "--view=4", "--window", "10s", NULL), 0);
    assert_int_equal(a.view, TUI_VIEW_FLEET);
    assert_string_equal(tui_windows[a.window], "10s");
    assert_int_equal(parse(NULL, &a, &err, "-h", NULL), 0);
    assert_true(a.help);
    /* An error wins over --help. */
    assert_int_equal(parse(NULL, &a, &err, "--help", "--bogus", NULL), -EINVAL);
    free(err);
    assert_int_equal(parse(NULL, &a, &err, "--version", NULL), 0);
    assert_true(a.version);
}

static void test_bad(void **state)
{
    (void)state;
    refused("unknown option '--bogus'", "--bogus", NULL);
    refused("unknown option '--bogus'", "--bogus=1", NULL);
    refused("unknown option '-x'", "-x", NULL);
    refused("unexpected argument 'fleet'", "fleet", NULL);
    refused("option '--once' takes no value", "--once=yes", NULL);
    refused("option '--server' needs a value", "--server", NULL);
    refused("--window: '5m' is not one of 10s, 1m, 1h", "--window", "5m", NULL);
    refused("--interval: '50' is not a number of milliseconds from 100 to 60000", "--interval",
            "50", NULL);
    refused("--interval: '1s' is not a number of milliseconds from 100 to 60000", "--interval=1s",
            NULL);
    refused("--view: 'charts' is not one of overview, traffic, spend, fleet, policies, "
            "experiments",
            "--view", "charts", NULL);
    refused("--server: 'ftp://x' is not an http:// or https:// URL", "--server", "ftp://x", NULL);
    refused("--server: 'http://' is not an http:// or https:// URL", "--server", "http://", NULL);
}

static void test_bad_env(void **state)
{
    struct tui_args a;
    char *err = NULL;

    (void)state;
    assert_int_equal(parse("ftp://nope", &a, &err, NULL), -EINVAL);
    assert_string_equal(err, "$SWITCHYARD_SERVER: 'ftp://nope' is not an http:// or https:// URL");
    free(err);
}

static void test_normalise(void **state)
{
    char buf[32];

    (void)state;
    assert_int_equal(tui_server_normalise("h:1", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "http://h:1");
    assert_int_equal(tui_server_normalise("HTTP://h:1//", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "HTTP://h:1");
    assert_int_equal(tui_server_normalise("", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(tui_server_normalise(":9090", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(tui_server_normalise("h:1 x", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(tui_server_normalise("http://a-very-long-host-name.example:9090", buf, 16),
                     -EINVAL);
    assert_int_equal(tui_window_index("1h"), 2);
    assert_int_equal(tui_window_index("2h"), -1);
}

static void test_usage(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    tui_usage(f);
    fclose(f);
    assert_non_null(strstr(buf, "--once"));
    assert_non_null(strstr(buf, "NO_COLOR"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),  cmocka_unit_test(test_options),
        cmocka_unit_test(test_bad),       cmocka_unit_test(test_bad_env),
        cmocka_unit_test(test_normalise), cmocka_unit_test(test_usage),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
