/* tests/unit/controlplane/test_ctl_learn.c - switchyardctl's learn command: its arguments,
 * the status view, the actions' one-line answers, and replies it cannot use. */
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
#include "../../../controlplane/ctl/ctl_args.c"
#include "../../../controlplane/ctl/ctl_http.c"
#include "../../../controlplane/ctl/ctl_learn.c"
#include "../../../controlplane/ctl/ctl_reply.c"
#include "../../../controlplane/ctl/ctl_table.c"

#define NOW 1795341845000LL

static const char reply[] =
    "{\"id\":\"cp-1\",\"leader\":\"cp-1\",\"is_leader\":true,\"frozen\":false,"
    "\"frozen_routes\":[\"other\"],\"active_version\":13,\"routes\":[{\"route\":\"smart\","
    "\"frozen\":false,\"objective\":{\"quality\":1,\"cost\":0.5,\"latency\":0},"
    "\"update_period_s\":60,\"exploration\":0.05,\"max_step\":0.2,\"min_samples\":20,"
    "\"threshold\":0.02,\"discount\":0.98,\"last_evaluated_unix_ms\":1795341840000,"
    "\"next_update_unix_ms\":1795341900000,\"last_outcome\":\"moved\","
    "\"last_message\":\"learned: route smart from version 12: m1 81.0% (up 0.84, n 412), m2 "
    "19.0% (up 0.61, n 97)\",\"last_update_unix_ms\":1795341840000,\"last_version\":13,"
    "\"last_update_by\":\"cp-1\",\"targets\":["
    "{\"model\":\"m1\",\"weight\":810,\"share\":0.81,\"posterior\":{\"mean\":0.8398,"
    "\"ci95\":[0.8021,0.8741],\"n\":412.2,\"a\":347,\"b\":66.2},\"cost_usd\":0.000125,"
    "\"latency_ms\":210.46,\"computed_share\":0.81},"
    "{\"model\":\"m2\",\"weight\":190,\"share\":0.19,\"posterior\":null,\"cost_usd\":null,"
    "\"latency_ms\":null,\"computed_share\":null}]},"
    "{\"route\":\"other\",\"frozen\":true,\"update_period_s\":1,"
    "\"objective\":{\"quality\":1,\"cost\":0,\"latency\":0},"
    "\"last_evaluated_unix_ms\":null,\"next_update_unix_ms\":null,\"last_outcome\":null,"
    "\"last_message\":null,\"last_update_unix_ms\":null,\"last_version\":null,"
    "\"last_update_by\":null,\"targets\":[{\"model\":\"m1\",\"weight\":1,\"share\":1,"
    "\"posterior\":null}]}]}";

static char *print(const char *json, int expect_rc, char **err)
{
    cJSON *j = cJSON_Parse(json);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(j);
    assert_non_null(f);
    assert_int_equal(ctl_learn_print(f, j, NOW, 0, err), expect_rc);
    fclose(f);
    cJSON_Delete(j);
    return buf;
}

static void test_status(void **state)
{
    char *err = NULL;
    char *out = print(reply, 0, &err);

    (void)state;
    assert_string_equal(
        out, "leader:    cp-1 (this replica)\n"
             "learning:  frozen for other\n"
             "active:    version 13\n"
             "\n"
             "route smart: every 1m0s, objective quality 1, cost 0.5, latency 0\n"
             "  last update:  version 13 by cp-1, 5s ago\n"
             "  evaluated:    5s ago: moved: learned: route smart from version 12: m1 81.0% (up "
             "0.84, n 412), m2 19.0% (up 0.61, n 97)\n"
             "  next update:  55s\n"
             "MODEL  WEIGHT  SHARE  UP    95% CI     N    COST/REQ   P50 MS\n"
             "m1     810     81.0%  0.84  0.80-0.87  412  $0.000125  210.5\n"
             "m2     190     19.0%  -     -          -    -          -\n"
             "\n"
             "route other (frozen): every 1s, objective quality 1, cost 0, latency 0\n"
             "  last update:  none yet\n"
             "  next update:  none (frozen)\n"
             "MODEL  WEIGHT  SHARE   UP  95% CI  N  COST/REQ  P50 MS\n"
             "m1     1       100.0%  -   -       -  -         -\n");
    free(out);

    out = print("{\"id\":\"cp-2\",\"leader\":null,\"is_leader\":false,\"frozen\":true,"
                "\"frozen_routes\":[],\"active_version\":null,\"routes\":[]}",
                0, &err);
    assert_string_equal(out, "leader:    none (no replica holds the election right now)\n"
                             "learning:  frozen for every route\n"
                             "\n"
                             "no learned routes in the active policy (routes with strategy: "
                             "learned)\n");
    free(out);
}

static void test_unexpected(void **state)
{
    static const struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"{\"leader\":\"x\"}", "routes: missing (expected an array)"},
        {"{\"leader\":3,\"routes\":[]}", "leader: expected a string, got number"},
        {"{\"routes\":[1]}", "routes[0]: expected an object, got number"},
        {"{\"routes\":[{\"targets\":[]}]}", "routes[0].route: missing (expected a string)"},
        {"{\"routes\":[{\"route\":\"r\",\"targets\":[{\"model\":\"m\"}]}]}",
         "routes[0].targets[0].weight: missing"},
        {"{\"routes\":[{\"route\":\"r\",\"targets\":[{\"model\":\"m\",\"weight\":1,"
         "\"posterior\":[]}]}]}",
         "routes[0].targets[0].posterior: expected an object or null, got array"},
        {"{\"routes\":[{\"route\":\"r\",\"last_version\":\"3\",\"targets\":[]}]}",
         "routes[0].last_version: expected a number, got string"},
    };

    (void)state;
    for (size_t i = 0; i < SY_ARRAY_LEN(cases); i++) {
        char *err = NULL;
        char *out = print(cases[i].json, -EINVAL, &err);

        if (!err || !strstr(err, cases[i].err))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err ? err : "(null)", cases[i].err);
        free(err);
        free(out);
    }
}

static char *print_action(enum ctl_cmd cmd, const char *json, int expect_rc)
{
    cJSON *j = cJSON_Parse(json);
    char *buf = NULL, *err = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(j);
    assert_int_equal(ctl_learn_print_action(f, cmd, j, &err), expect_rc);
    fclose(f);
    cJSON_Delete(j);
    free(err);
    return buf;
}

static void test_actions(void **state)
{
    char *out;

    (void)state;
    out = print_action(CTL_CMD_LEARN_FREEZE,
                       "{\"route\":\"smart\",\"frozen\":false,\"frozen_routes\":[\"smart\"]}", 0);
    assert_string_equal(out, "learning frozen for route smart\nfrozen now: smart\n");
    free(out);
    out = print_action(CTL_CMD_LEARN_UNFREEZE,
                       "{\"route\":null,\"frozen\":false,\"frozen_routes\":[]}", 0);
    assert_string_equal(out, "learning resumed for every route\nfrozen now: nothing\n");
    free(out);
    out = print_action(CTL_CMD_LEARN_FREEZE, "{\"route\":null,\"frozen\":true}", 0);
    assert_string_equal(out, "learning frozen for every route\nfrozen now: every route\n");
    free(out);
    out = print_action(CTL_CMD_LEARN_ROLLBACK,
                       "{\"rolled_back\":true,\"route\":null,\"frozen\":true,\"message\":\"version "
                       "9 re-activates version 3\\nand more\"}",
                       0);
    assert_string_equal(out, "version 9 re-activates version 3 and more\n");
    free(out);
    out = print_action(CTL_CMD_LEARN_ROLLBACK, "{\"rolled_back\":true}", -EINVAL);
    free(out);
}

static void test_args(void **state)
{
    struct ctl_args a;
    char *err = NULL;
    char w0[] = "switchyardctl", wl[] = "learn", ws[] = "status", wj[] = "--json",
         wr[] = "rollback", wsm[] = "smart", wf[] = "freeze", wx[] = "x";
    char *argv1[] = {w0, wl, ws, wj, NULL};
    char *argv2[] = {w0, wl, wr, wsm, NULL};
    char *argv3[] = {w0, wl, wf, NULL};
    char *argv4[] = {w0, wl, ws, wx, NULL};
    char *argv5[] = {w0, wl, NULL};

    (void)state;
    assert_int_equal(ctl_args_parse(4, argv1, NULL, &a, &err), 0);
    assert_int_equal(a.cmd, CTL_CMD_LEARN_STATUS);
    assert_true(a.json);
    assert_int_equal(ctl_args_parse(4, argv2, NULL, &a, &err), 0);
    assert_int_equal(a.cmd, CTL_CMD_LEARN_ROLLBACK);
    assert_string_equal(a.route, "smart");
    assert_int_equal(ctl_args_parse(3, argv3, NULL, &a, &err), 0);
    assert_int_equal(a.cmd, CTL_CMD_LEARN_FREEZE);
    assert_null(a.route);
    assert_int_equal(ctl_args_parse(4, argv4, NULL, &a, &err), -EINVAL);
    assert_non_null(strstr(err, "learn status: unexpected argument \"x\""));
    free(err);
    err = NULL;
    assert_int_equal(ctl_args_parse(2, argv5, NULL, &a, &err), -EINVAL);
    assert_non_null(strstr(err, "learn: missing subcommand"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_unexpected),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
