/* tests/unit/tui/test_model.c - how fetch outcomes land in the model (tui_model.c): good
 * replies, unreachable servers, error answers, the optional experiments endpoint. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_test.h"

static void test_paths(void **state)
{
    char b[64];

    (void)state;
    assert_string_equal(tui_src_path(TUI_SRC_STATS, "10s", b, sizeof(b)), "/v1/stats?window=10s");
    assert_string_equal(tui_src_path(TUI_SRC_STATS, NULL, b, sizeof(b)), "/v1/stats?window=1m");
    assert_string_equal(tui_src_path(TUI_SRC_FLEET, "1m", b, sizeof(b)), "/v1/fleet");
    assert_string_equal(tui_src_path(TUI_SRC_POLICIES, "1m", b, sizeof(b)), "/v1/policies");
    assert_string_equal(tui_src_path(TUI_SRC_SPEND_DAY, "1m", b, sizeof(b)),
                        "/v1/spend?period=day");
    assert_string_equal(tui_src_path(TUI_SRC_SPEND_MONTH, "1m", b, sizeof(b)),
                        "/v1/spend?period=month");
    assert_string_equal(tui_src_path(TUI_SRC_EXPERIMENTS, "1m", b, sizeof(b)), "/v1/experiments");
}

static void test_unreachable_keeps_data(void **state)
{
    struct tui_model m = {0};

    (void)state;
    apply_fixture(&m, TUI_SRC_STATS, "stats.json");
    assert_non_null(m.stats);
    assert_null(m.src[TUI_SRC_STATS].error);
    assert_int_equal(m.src[TUI_SRC_STATS].updated_ms, TEST_NOW_MS);

    assert_int_equal(tui_model_apply(&m, TUI_SRC_STATS, "1m", "connection refused", 0, NULL, 0,
                                     TEST_NOW_MS + 1000),
                     -EIO);
    assert_string_equal(m.unreachable, "connection refused");
    assert_string_equal(m.src[TUI_SRC_STATS].error, "GET /v1/stats?window=1m: connection refused");
    assert_non_null(m.stats); /* the last good data stays on screen */
    assert_int_equal(m.src[TUI_SRC_STATS].updated_ms, TEST_NOW_MS);

    /* Any answer means the server is back. */
    apply_fixture(&m, TUI_SRC_FLEET, "fleet.json");
    assert_null(m.unreachable);
    apply_fixture(&m, TUI_SRC_STATS, "stats.json");
    assert_null(m.src[TUI_SRC_STATS].error);
    tui_model_cleanup(&m);
    assert_null(m.stats);
}

static void test_error_answers(void **state)
{
    static const char not_found[] =
        "{\"error\":{\"message\":\"unknown path /v1/stats\",\"type\":\"invalid_request_error\","
        "\"code\":\"not_found\",\"param\":null}}";
    struct tui_model m = {0};

    (void)state;
    assert_int_equal(tui_model_apply(&m, TUI_SRC_STATS, "10s", NULL, 404, not_found,
                                     strlen(not_found), TEST_NOW_MS),
                     -EPROTO);
    assert_string_equal(m.src[TUI_SRC_STATS].error,
                        "GET /v1/stats?window=10s: HTTP 404: unknown path /v1/stats");
    assert_null(m.unreachable);
    assert_null(m.stats);

    assert_int_equal(
        tui_model_apply(&m, TUI_SRC_FLEET, "1m", NULL, 200, "{\"proxies\":7}", 13, TEST_NOW_MS),
        -EPROTO);
    assert_string_equal(m.src[TUI_SRC_FLEET].error,
                        "GET /v1/fleet: unexpected reply: proxies: expected an array, got number");
    assert_int_equal(
        tui_model_apply(&m, TUI_SRC_POLICIES, "1m", NULL, 200, "not json", 8, TEST_NOW_MS),
        -EPROTO);
    assert_non_null(strstr(m.src[TUI_SRC_POLICIES].error, "GET /v1/policies: unexpected reply"));
    tui_model_cleanup(&m);
}

static void test_experiments_optional(void **state)
{
    struct tui_model m = {0};

    (void)state;
    apply_fixture(&m, TUI_SRC_EXPERIMENTS, "experiments.json");
    assert_non_null(m.experiments);
    assert_false(m.src[TUI_SRC_EXPERIMENTS].absent);
    /* The endpoint goes away (an older control plane): absent, not an error. */
    assert_int_equal(tui_model_apply(&m, TUI_SRC_EXPERIMENTS, "1m", NULL, 404, "", 0, TEST_NOW_MS),
                     0);
    assert_true(m.src[TUI_SRC_EXPERIMENTS].absent);
    assert_null(m.src[TUI_SRC_EXPERIMENTS].error);
    assert_null(m.experiments);
    /* A 500 is an error though. */
    assert_int_equal(tui_model_apply(&m, TUI_SRC_EXPERIMENTS, "1m", NULL, 500, "", 0, TEST_NOW_MS),
                     -EPROTO);
    assert_string_equal(m.src[TUI_SRC_EXPERIMENTS].error, "GET /v1/experiments: HTTP 500");
    /* 404 elsewhere is an error. */
    assert_int_equal(tui_model_apply(&m, TUI_SRC_SPEND_DAY, "1m", NULL, 404, "", 0, TEST_NOW_MS),
                     -EPROTO);
    tui_model_cleanup(&m);
}

static void test_history(void **state)
{
    static const char s10[] = "{\"window\":\"10s\",\"totals\":{\"rps\":2.0}}";
    static const char s1m[] = "{\"window\":\"1m\",\"totals\":{\"rps\":5.0}}";
    struct tui_model m = {0};

    (void)state;
    for (int i = 0; i < TUI_HISTORY + 3; i++)
        assert_int_equal(
            tui_model_apply(&m, TUI_SRC_STATS, "10s", NULL, 200, s10, strlen(s10), TEST_NOW_MS), 0);
    assert_int_equal(m.n_history, TUI_HISTORY);
    assert_true(m.rps_history[TUI_HISTORY - 1] == 2.0);
    /* Another window: a new history. */
    assert_int_equal(
        tui_model_apply(&m, TUI_SRC_STATS, "1m", NULL, 200, s1m, strlen(s1m), TEST_NOW_MS), 0);
    assert_int_equal(m.n_history, 1);
    assert_true(m.rps_history[0] == 5.0);
    tui_model_cleanup(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),         cmocka_unit_test(test_unreachable_keeps_data),
        cmocka_unit_test(test_error_answers), cmocka_unit_test(test_experiments_optional),
        cmocka_unit_test(test_history),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
