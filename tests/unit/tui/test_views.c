/* tests/unit/tui/test_views.c - the six views rendered from the contract fixtures
 * (tui_views.c, tui_view_*.c): the numbers shown, sorting, missing data, and that no line
 * is ever wider than the screen. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_format.h"
#include "tui_test.h"
#include "tui_views.h"

/* Renders view <v> of <m> at <width> with sort key <sort>; returns the text (caller
 * frees) and leaves the lines in <ls> (caller cleans up). */
static char *render(enum tui_view v, const struct tui_model *m, size_t width, unsigned sort,
                    bool utf8, struct tui_lines *ls)
{
    struct tui_view_opts o = {.width = width, .utf8 = utf8, .sort = sort, .now_ms = TEST_NOW_MS};

    memset(ls, 0, sizeof(*ls));
    tui_view_render(v, m, &o, ls);
    return lines_text(ls);
}

static int setup(void **state)
{
    struct tui_model *m = malloc(sizeof(*m));

    load_all(m);
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    tui_model_cleanup(*state);
    free(*state);
    return 0;
}

static void test_names(void **state)
{
    enum tui_view v;

    (void)state;
    assert_string_equal(tui_view_name(TUI_VIEW_SPEND), "spend");
    assert_string_equal(tui_view_title(TUI_VIEW_EXPERIMENTS), "Experiments");
    assert_int_equal(tui_view_parse("policies", &v), 0);
    assert_int_equal(v, TUI_VIEW_POLICIES);
    assert_int_equal(tui_view_parse("6", &v), 0);
    assert_int_equal(v, TUI_VIEW_EXPERIMENTS);
    assert_int_equal(tui_view_parse("7", &v), -EINVAL);
    assert_int_equal(tui_view_parse("Overview", &v), -EINVAL);
    assert_int_equal(tui_view_sources(TUI_VIEW_OVERVIEW),
                     TUI_SRC_BIT(TUI_SRC_STATS) | TUI_SRC_BIT(TUI_SRC_FLEET));
    assert_int_equal(tui_view_sources(TUI_VIEW_SPEND),
                     TUI_SRC_BIT(TUI_SRC_SPEND_DAY) | TUI_SRC_BIT(TUI_SRC_SPEND_MONTH));
    assert_int_equal(tui_view_sort_count(TUI_VIEW_FLEET), 0);
    assert_int_equal(tui_view_sort_count(TUI_VIEW_TRAFFIC), 9);
    assert_string_equal(tui_view_sort_name(TUI_VIEW_TRAFFIC, 4), "p99");
    assert_string_equal(tui_view_sort_name(TUI_VIEW_SPEND, 1), "today");
    assert_string_equal(tui_view_sort_name(TUI_VIEW_SPEND, 99), "");
}

static void test_overview(void **state)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_OVERVIEW, *state, 0, 0, false, &ls);
    const struct tui_line *l;

    assert_contains(t, "Traffic, last 1m (2 proxies reporting)");
    assert_contains(t, "Requests/s   20.0");
    assert_contains(t, "Requests     1200");
    assert_contains(t, "Error rate   0.25%");
    assert_contains(t, "Errors       3 5xx, 1 4xx");
    assert_contains(t, "Latency p50  210 ms");
    assert_contains(t, "Latency p99  950 ms");
    assert_contains(t, "TTFT p50     80.2 ms");
    assert_contains(t, "In flight    4");
    assert_contains(t, "Tokens/s     2.17k");
    assert_contains(t, "Spend rate   $30.74/h");
    assert_contains(t, "Cost         $0.5123");
    assert_contains(t, "Policy  version 7");
    assert_contains(t, "Proxies  2 connected of 3 (1 behind, 1 NACK)");
    /* The top providers, busiest first. */
    l = must_line(&ls, "openai ");
    assert_true(l < find_line(&ls, "anthropic "));
    /* A sparkline appears once there are two samples. */
    assert_not_contains(t, "last 2 refreshes");
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_overview_history_and_missing(void **state)
{
    struct tui_model m = {0};
    struct tui_lines ls;
    char *t;

    (void)state;
    t = render(TUI_VIEW_OVERVIEW, &m, 80, 0, true, &ls);
    assert_contains(t, "waiting for GET /v1/stats");
    assert_contains(t, "waiting for GET /v1/fleet");
    free(t);
    tui_lines_cleanup(&ls);

    apply_fixture(&m, TUI_SRC_STATS, "stats.json");
    apply_fixture(&m, TUI_SRC_STATS, "stats.json");
    assert_int_equal(
        tui_model_apply(&m, TUI_SRC_FLEET, "1m", "connection refused", 0, NULL, 0, TEST_NOW_MS),
        -EIO);
    t = render(TUI_VIEW_OVERVIEW, &m, 80, 0, false, &ls);
    assert_contains(t, "##  (requests/s, last 2 refreshes)");
    assert_contains(t, "no data: GET /v1/fleet: connection refused");
    assert_contains(t, "Requests/s   20.0");
    free(t);
    tui_lines_cleanup(&ls);
    tui_model_cleanup(&m);
}

/* The order in which the model rows appear in the Traffic view sorted by <sort>. */
static void check_order(const struct tui_model *m, unsigned sort, const char *first,
                        const char *second, const char *third)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_TRAFFIC, m, 0, sort, false, &ls);
    const struct tui_line *a = find_line(&ls, first);
    const struct tui_line *b = find_line(&ls, second);
    const struct tui_line *c = find_line(&ls, third);

    if (!a || !b || !c || !(a < b && b < c))
        fail_msg("sort %s: expected %s, %s, %s in:\n%s", tui_view_sort_name(TUI_VIEW_TRAFFIC, sort),
                 first, second, third, t);
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_traffic(void **state)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_TRAFFIC, *state, 0, 0, true, &ls);
    const struct tui_line *l;

    assert_contains(t, "Models, last 1m (sorted by rps;");
    assert_contains(t, "PROVIDER/MODEL              REQS  RPS\xe2\x96\xbc   ERR%     P50     P95"
                       "     P99     TTFT  TOK/S     $/H");
    l = must_line(&ls, "openai/gpt-4o-mini");
    assert_string_equal(l->text, "  openai/gpt-4o-mini           900  15.0  0.11%  190 ms  "
                                 "450 ms  900 ms  75.0 ms  1.67k  $18.00");
    l = must_line(&ls, "TOTAL");
    assert_string_equal(l->text, "  TOTAL                       1200  20.0  0.25%  210 ms  "
                                 "480 ms  950 ms  80.2 ms  2.17k  $30.74");
    /* 2 % errors is a warning; no TTFT sample is "-". */
    l = must_line(&ls, "openai/gpt-4o ");
    assert_int_equal(tui_line_style_at(l, offset_of(l, "2.0%")), TUI_S_WARN);
    assert_non_null(strstr(must_line(&ls, "claude")->text, "      -"));
    assert_contains(t, "Providers");
    assert_contains(t, "Routes");
    assert_contains(t, "(none)");
    free(t);
    tui_lines_cleanup(&ls);

    check_order(*state, 0, "gpt-4o-mini", "claude", "openai/gpt-4o ");
    check_order(*state, 1, "openai/gpt-4o ", "gpt-4o-mini", "claude");
    check_order(*state, 4, "openai/gpt-4o ", "claude", "gpt-4o-mini");
    check_order(*state, 5, "openai/gpt-4o ", "gpt-4o-mini", "claude"); /* NAN last */
    check_order(*state, 7, "gpt-4o-mini", "openai/gpt-4o ", "claude");
    check_order(*state, 8, "anthropic/claude", "openai/gpt-4o ", "gpt-4o-mini");
}

static void test_spend(void **state)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_SPEND, *state, 0, 0, false, &ls);
    const struct tui_line *l;

    assert_contains(t, "Today 2026-11-22  $12.50");
    assert_contains(t, "projected  $25.00");
    assert_contains(t, "Month 2026-11     $412.50");
    assert_contains(t, "$580.99 (71% of the month gone)");
    l = must_line(&ls, "acme");
    assert_string_equal(
        l->text, "  acme    12.0k  $10.00  $300.10    $422.68  ######.... 60% of $500.00/mo");
    l = must_line(&ls, "globex");
    assert_non_null(strstr(l->text, "########## 125% of $2.00/day"));
    assert_int_equal(tui_line_style_at(l, offset_of(l, "####")), TUI_S_BAD);
    l = must_line(&ls, "(none)");
    assert_non_null(strstr(l->text, "$0.00   $12.40     $17.46  -"));
    /* Models summed over tenants: gpt-4o-mini is acme's 200.10 plus 12.40 without a tenant,
     * projected over 71 % of the month. */
    l = must_line(&ls, "openai/gpt-4o-mini");
    assert_string_equal(l->text, "  openai/gpt-4o-mini          10.1k  $6.00  $212.50    $299.30");
    assert_true(find_line(&ls, "acme") < find_line(&ls, "globex"));
    free(t);
    tui_lines_cleanup(&ls);

    /* Sorted by today: globex ($2.50) before (none) ($0), gpt-4o ($4) before claude ($2.50);
     * by name: "" first. */
    t = render(TUI_VIEW_SPEND, *state, 0, 1, false, &ls);
    assert_true(find_line(&ls, "globex") < find_line(&ls, "(none)"));
    assert_true(find_line(&ls, "openai/gpt-4o ") < find_line(&ls, "anthropic/claude"));
    free(t);
    tui_lines_cleanup(&ls);
    t = render(TUI_VIEW_SPEND, *state, 0, 3, false, &ls);
    assert_true(find_line(&ls, "(none)") < find_line(&ls, "acme"));
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_spend_partial(void **state)
{
    struct tui_model m = {0};
    struct tui_lines ls;
    char *t;

    (void)state;
    apply_fixture(&m, TUI_SRC_SPEND_MONTH, "spend_month.json");
    t = render(TUI_VIEW_SPEND, &m, 80, 0, true, &ls);
    assert_contains(t, "waiting for GET /v1/spend?period=day");
    assert_contains(t, "Month 2026-11");
    assert_contains(t, "acme");
    free(t);
    tui_lines_cleanup(&ls);
    tui_model_cleanup(&m);
}

static void test_fleet(void **state)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_FLEET, *state, 0, 0, false, &ls);
    const struct tui_line *l;

    assert_contains(t, "Fleet: control plane cp-a, active version 7");
    assert_contains(t, "3 proxies: 2 connected, 1 behind, 1 with a NACK");
    l = must_line(&ls, "  p2 ");
    assert_non_null(strstr(l->text, "6 (behind)"));
    assert_non_null(strstr(l->text, "v7: provider openai: environment variable OPENAI_API_KEY "
                                    "is not set on this node (1m ago)"));
    assert_non_null(strstr(l->text, "yes, 6m17s"));
    l = must_line(&ls, "  p3 ");
    assert_non_null(strstr(l->text, "no "));
    assert_int_equal(tui_line_style_at(l, 2), TUI_S_DIM);
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_policies(void **state)
{
    struct tui_lines ls;
    char *t = render(TUI_VIEW_POLICIES, *state, 0, 0, false, &ls);
    const struct tui_line *l;
    char when[TUI_NUM_MAX];

    assert_contains(t, "Policies: active version 7, 3 versions, newest first");
    assert_contains(t, "ACTIVE  VERSION  CREATED (UTC)        HASH          ROLLBACK OF  NOTE");
    l = must_line(&ls, "rollback to version 3");
    assert_non_null(strstr(l->text, "  *             7  "));
    assert_non_null(strstr(l->text, tui_fmt_utc(when, sizeof(when), 1795300000000LL)));
    assert_non_null(strstr(l->text, "5a94caf2453e   "));
    assert_int_equal(tui_line_style_at(l, 2), TUI_S_GOOD);
    l = must_line(&ls, "staged");
    assert_null(strstr(l->text, "*"));
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_experiments(void **state)
{
    struct tui_model m = {0};
    struct tui_lines ls;
    const struct tui_line *l;
    char *t = render(TUI_VIEW_EXPERIMENTS, *state, 0, 0, false, &ls);

    assert_contains(t, "Experiments: 1");
    assert_contains(t, "running; route auto, metric thumbs_up, policy version 7, min samples 100");
    assert_contains(t, "winner: none yet");
    assert_contains(t, "test two_proportion_z: z 1.20, p 0.230, not significant");
    l = must_line(&ls, " m1 ");
    assert_string_equal(l->text, "  A    m1       50%    10         4      3/1      75%  0.660  "
                                 "0.30-0.90      70%  1.0 ms  2.0 ms  $0.0010    0%");
    free(t);
    tui_lines_cleanup(&ls);

    (void)state;
    assert_int_equal(tui_model_apply(&m, TUI_SRC_EXPERIMENTS, "1m", NULL, 404, "", 0, TEST_NOW_MS),
                     0);
    t = render(TUI_VIEW_EXPERIMENTS, &m, 80, 0, true, &ls);
    assert_contains(t, "no experiments (the control plane does not report any)");
    free(t);
    tui_lines_cleanup(&ls);
    assert_int_equal(tui_model_apply(&m, TUI_SRC_EXPERIMENTS, "1m", NULL, 200,
                                     "{\"experiments\":[]}", 18, TEST_NOW_MS),
                     0);
    t = render(TUI_VIEW_EXPERIMENTS, &m, 80, 0, true, &ls);
    assert_contains(t, "no experiments are defined");
    free(t);
    tui_lines_cleanup(&ls);
    tui_model_cleanup(&m);
}

/* Whatever the width, no line of any view is wider than the screen. */
static void test_widths(void **state)
{
    static const size_t widths[] = {40, 59, 80, 100, 132};

    for (unsigned v = 0; v < TUI_VIEW_COUNT; v++) {
        for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
            for (unsigned sort = 0; sort <= tui_view_sort_count(v); sort++) {
                for (int utf8 = 0; utf8 < 2; utf8++) {
                    struct tui_lines ls;
                    char *t = render(v, *state, widths[w], sort, utf8, &ls);

                    for (size_t i = 0; i < ls.n; i++)
                        if (tui_line_cols(&ls.v[i]) > widths[w])
                            fail_msg("%s at %zu columns: line %zu is %zu wide:\n%s",
                                     tui_view_name(v), widths[w], i, tui_line_cols(&ls.v[i]), t);
                    free(t);
                    tui_lines_cleanup(&ls);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_overview, setup, teardown),
        cmocka_unit_test(test_overview_history_and_missing),
        cmocka_unit_test_setup_teardown(test_traffic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spend, setup, teardown),
        cmocka_unit_test(test_spend_partial),
        cmocka_unit_test_setup_teardown(test_fleet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_experiments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_widths, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
