/* tests/unit/controlplane/test_ctl_args.c - switchyardctl's command line parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The CLI is an executable, not a library: the test compiles the module itself. */
#include "../../../controlplane/ctl/ctl_args.c"

/* Runs the parser on "switchyardctl" followed by the NULL-terminated words. */
static int parse(const char *env, struct ctl_args *out, char **err, ...)
{
    char *argv[16] = {(char *)"switchyardctl"};
    int argc = 1;
    va_list ap;
    const char *w;

    va_start(ap, err);
    while ((w = va_arg(ap, const char *)) != NULL && argc < (int)SY_ARRAY_LEN(argv))
        argv[argc++] = (char *)w;
    va_end(ap);
    return ctl_args_parse(argc, argv, env, out, err);
}

#define PARSE(env, out, errp, ...) parse((env), (out), (errp), __VA_ARGS__, (const char *)NULL)

/* Parses expecting failure and checks the message mentions <needle>. */
static void expect_error(int rc, char **err, const char *needle)
{
    assert_int_equal(rc, -EINVAL);
    assert_non_null(*err);
    if (!strstr(*err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", *err, needle);
    free(*err);
    *err = NULL;
}

static void test_defaults(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(PARSE(NULL, &a, &err, "fleet"), 0);
    assert_int_equal(a.cmd, CTL_CMD_FLEET);
    assert_string_equal(a.server, CTL_DEFAULT_SERVER);
    assert_false(a.json);
    assert_int_equal(a.timeout_ms, CTL_DEFAULT_TIMEOUT_MS);
    assert_null(err);
}

static void test_server_sources(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(PARSE("http://cp:9090/", &a, &err, "version"), 0);
    assert_string_equal(a.server, "http://cp:9090");
    assert_int_equal(PARSE("", &a, &err, "version"), 0);
    assert_string_equal(a.server, CTL_DEFAULT_SERVER);
    /* The flag wins over the environment, in either form and after the command. */
    assert_int_equal(PARSE("http://cp:9090", &a, &err, "version", "--server", "10.0.0.1:9"), 0);
    assert_string_equal(a.server, "http://10.0.0.1:9");
    assert_int_equal(PARSE(NULL, &a, &err, "--server=HTTPS://cp.example/admin//", "fleet"), 0);
    assert_string_equal(a.server, "https://cp.example/admin");
    expect_error(PARSE("gopher://x", &a, &err, "fleet"), &err, "SWITCHYARD_SERVER");
    expect_error(PARSE(NULL, &a, &err, "--server", "ftp://x", "fleet"), &err, "ftp://x");
    expect_error(PARSE(NULL, &a, &err, "--server=", "fleet"), &err, "--server");
    expect_error(PARSE(NULL, &a, &err, "--server", "http://", "fleet"), &err, "--server");
    expect_error(PARSE(NULL, &a, &err, "fleet", "--server"), &err, "--server: missing value");
}

static void test_normalise(void **state)
{
    char buf[32];
    (void)state;

    assert_int_equal(ctl_server_normalise("localhost:9090", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "http://localhost:9090");
    assert_int_equal(ctl_server_normalise("[::1]:9090", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "http://[::1]:9090");
    assert_int_equal(ctl_server_normalise("a b:1", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(ctl_server_normalise("/x", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(ctl_server_normalise("http://a-very-long-host-name.example:9090", buf, 16),
                     -EINVAL);
}

static void test_global_options(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(PARSE(NULL, &a, &err, "policy", "list", "--json", "--timeout-ms=250"), 0);
    assert_int_equal(a.cmd, CTL_CMD_POLICY_LIST);
    assert_true(a.json);
    assert_int_equal(a.timeout_ms, 250);
    expect_error(PARSE(NULL, &a, &err, "--timeout-ms", "0", "fleet"), &err, "--timeout-ms \"0\"");
    expect_error(PARSE(NULL, &a, &err, "--timeout-ms", "5s", "fleet"), &err, "\"5s\"");
    expect_error(PARSE(NULL, &a, &err, "--verbose", "fleet"), &err, "\"--verbose\"");
    expect_error(PARSE(NULL, &a, &err, "--jsonx", "fleet"), &err, "--jsonx");
}

static void test_help(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(PARSE(NULL, &a, &err, "--help"), 0);
    assert_int_equal(a.cmd, CTL_CMD_HELP);
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "-h"), 0);
    assert_int_equal(a.cmd, CTL_CMD_HELP);
    assert_int_equal(PARSE(NULL, &a, &err, "help"), 0);
    assert_int_equal(a.cmd, CTL_CMD_HELP);
}

static void test_push(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(
        PARSE(NULL, &a, &err, "policy", "push", "p.yaml", "--note", "canary 5%", "--no-activate"),
        0);
    assert_int_equal(a.cmd, CTL_CMD_POLICY_PUSH);
    assert_string_equal(a.file, "p.yaml");
    assert_string_equal(a.note, "canary 5%");
    assert_true(a.no_activate);
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "push", "-", "--note=x"), 0);
    assert_string_equal(a.file, "-");
    assert_string_equal(a.note, "x");
    assert_false(a.no_activate);
    /* "--" lets a file name start with a dash. */
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "push", "--", "--odd.yaml"), 0);
    assert_string_equal(a.file, "--odd.yaml");
    expect_error(PARSE(NULL, &a, &err, "policy", "push"), &err, "missing FILE");
    expect_error(PARSE(NULL, &a, &err, "policy", "push", "a", "b"), &err, "\"b\"");
    expect_error(PARSE(NULL, &a, &err, "policy", "list", "--no-activate"), &err, "--no-activate");
}

static void test_get_diff_activate(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    assert_int_equal(PARSE(NULL, &a, &err, "policy", "get", "active"), 0);
    assert_int_equal(a.cmd, CTL_CMD_POLICY_GET);
    assert_true(a.a.active);
    assert_int_equal(a.part, CTL_GET_SUMMARY);
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "get", "12", "--compiled"), 0);
    assert_false(a.a.active);
    assert_int_equal(a.a.n, 12);
    assert_int_equal(a.part, CTL_GET_COMPILED);
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "get", "3", "--source"), 0);
    assert_int_equal(a.part, CTL_GET_SOURCE);
    expect_error(PARSE(NULL, &a, &err, "policy", "get", "3", "--source", "--compiled"), &err,
                 "exclude");
    expect_error(PARSE(NULL, &a, &err, "policy", "get", "-1"), &err, "\"-1\"");
    expect_error(PARSE(NULL, &a, &err, "policy", "get", "v3"), &err, "\"v3\"");
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "diff", "3", "active"), 0);
    assert_int_equal(a.cmd, CTL_CMD_POLICY_DIFF);
    assert_int_equal(a.a.n, 3);
    assert_true(a.b.active);
    expect_error(PARSE(NULL, &a, &err, "policy", "diff", "3"), &err, "missing versions");
    expect_error(PARSE(NULL, &a, &err, "policy", "diff", "3", "4", "5"), &err, "\"5\"");
    assert_int_equal(PARSE(NULL, &a, &err, "policy", "activate", "7"), 0);
    assert_int_equal(a.cmd, CTL_CMD_POLICY_ACTIVATE);
    assert_int_equal(a.a.n, 7);
    expect_error(PARSE(NULL, &a, &err, "policy", "activate", "active"), &err, "\"active\"");
    expect_error(PARSE(NULL, &a, &err, "fleet", "--source"), &err, "--source");
}

static void test_bad_commands(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    (void)state;

    expect_error(PARSE(NULL, &a, &err, "--json"), &err, "missing command");
    expect_error(PARSE(NULL, &a, &err, "polcy", "list"), &err, "\"polcy\"");
    expect_error(PARSE(NULL, &a, &err, "policy"), &err, "missing subcommand");
    expect_error(PARSE(NULL, &a, &err, "policy", "rm", "3"), &err, "\"rm\"");
    expect_error(PARSE(NULL, &a, &err, "fleet", "p1"), &err, "\"p1\"");
    expect_error(PARSE(NULL, &a, &err, "a", "b", "c", "d", "e", "f", "g", "h", "i"), &err, "\"i\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_server_sources),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_global_options),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_push),
        cmocka_unit_test(test_get_diff_activate),
        cmocka_unit_test(test_bad_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
