/* tests/unit/tui/test_app.c - keys and screen layout of the live dashboard (tui_app.c):
 * what each key does, frames of any size (down to "terminal too small"), the status line
 * for each kind of trouble, scrolling. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_app.h"
#include "tui_args.h"
#include "tui_test.h"

#define SERVER "http://127.0.0.1:9090"

/* Renders a frame of <cols> x <rows>; checks its shape; returns its text (caller frees). */
static char *frame(struct tui_app *a, const struct tui_model *m, size_t cols, size_t rows,
                   struct tui_lines *ls)
{
    char *t;

    memset(ls, 0, sizeof(*ls));
    tui_app_frame(a, m, TEST_NOW_MS, cols, rows, true, ls);
    t = lines_text(ls);
    if (ls->n != rows)
        fail_msg("%zux%zu: %zu lines:\n%s", cols, rows, ls->n, t);
    for (size_t i = 0; i < ls->n; i++)
        if (tui_line_cols(&ls->v[i]) > cols)
            fail_msg("%zux%zu: line %zu is %zu wide:\n%s", cols, rows, i, tui_line_cols(&ls->v[i]),
                     t);
    return t;
}

static void test_view_keys(void **state)
{
    struct tui_app a;

    (void)state;
    tui_app_init(&a, SERVER, TUI_VIEW_OVERVIEW, 1, 1000);
    assert_string_equal(tui_app_window(&a), "1m");
    assert_int_equal(tui_app_sources(&a), TUI_SRC_BIT(TUI_SRC_STATS) | TUI_SRC_BIT(TUI_SRC_FLEET));
    assert_int_equal(tui_app_key(&a, '2'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(a.view, TUI_VIEW_TRAFFIC);
    assert_int_equal(tui_app_key(&a, '2'), TUI_ACT_REDRAW); /* already there */
    assert_int_equal(tui_app_key(&a, '6'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(tui_app_key(&a, '\t'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(a.view, TUI_VIEW_OVERVIEW); /* wraps */
    assert_int_equal(tui_app_key(&a, TUI_KEY_BTAB), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(a.view, TUI_VIEW_EXPERIMENTS);
    assert_int_equal(tui_app_key(&a, '\t'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(tui_app_key(&a, '\t'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_int_equal(a.view, TUI_VIEW_TRAFFIC);
    assert_int_equal(tui_app_key(&a, '7'), 0);
    assert_int_equal(tui_app_key(&a, 'z'), 0);
    assert_int_equal(tui_app_key(&a, TUI_KEY_RESIZE), TUI_ACT_REDRAW);
    assert_int_equal(tui_app_key(&a, 'q'), TUI_ACT_QUIT);
    assert_int_equal(tui_app_key(&a, 'Q'), TUI_ACT_QUIT);
}

static void test_sort_window_pause_help(void **state)
{
    struct tui_app a;

    (void)state;
    tui_app_init(&a, SERVER, TUI_VIEW_TRAFFIC, 1, 1000);
    for (unsigned i = 1; i <= 9; i++) {
        assert_int_equal(tui_app_key(&a, 's'), TUI_ACT_REDRAW);
        assert_int_equal(a.sort[TUI_VIEW_TRAFFIC], i % 9);
    }
    assert_int_equal(tui_app_key(&a, 'S'), TUI_ACT_REDRAW);
    assert_int_equal(a.sort[TUI_VIEW_TRAFFIC], 8);
    tui_app_key(&a, '4');
    assert_int_equal(tui_app_key(&a, 's'), 0); /* the fleet has no sort keys */
    tui_app_key(&a, '3');
    tui_app_key(&a, 's');
    assert_int_equal(a.sort[TUI_VIEW_SPEND], 1);
    assert_int_equal(a.sort[TUI_VIEW_TRAFFIC], 8); /* each view keeps its own */

    assert_int_equal(tui_app_key(&a, 'w'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_string_equal(tui_app_window(&a), "1h");
    tui_app_key(&a, 'w');
    assert_string_equal(tui_app_window(&a), "10s");
    tui_app_key(&a, 'w');
    assert_string_equal(tui_app_window(&a), "1m");

    assert_int_equal(tui_app_key(&a, 'p'), TUI_ACT_REDRAW);
    assert_true(a.paused);
    assert_int_equal(tui_app_key(&a, 'p'), TUI_ACT_REDRAW | TUI_ACT_FETCH);
    assert_false(a.paused);
    assert_int_equal(tui_app_key(&a, 'r'), TUI_ACT_REDRAW | TUI_ACT_FETCH);

    /* The help: any key closes it and does nothing else; q still quits. */
    assert_int_equal(tui_app_key(&a, '?'), TUI_ACT_REDRAW);
    assert_true(a.help);
    assert_int_equal(tui_app_key(&a, TUI_KEY_RESIZE), TUI_ACT_REDRAW);
    assert_true(a.help);
    assert_int_equal(tui_app_key(&a, '1'), TUI_ACT_REDRAW);
    assert_false(a.help);
    assert_int_equal(a.view, TUI_VIEW_SPEND);
    tui_app_key(&a, '?');
    assert_int_equal(tui_app_key(&a, 'q'), TUI_ACT_QUIT);
}

static void test_frames(void **state)
{
    static const size_t sizes[][2] = {{80, 24}, {100, 30}, {40, 8}, {67, 12}, {200, 60}};
    struct tui_model m;
    struct tui_app a;

    (void)state;
    load_all(&m);
    tui_app_init(&a, SERVER, TUI_VIEW_OVERVIEW, 1, 1000);
    for (unsigned v = 0; v < TUI_VIEW_COUNT; v++) {
        a.view = (enum tui_view)v;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            struct tui_lines ls;
            char *t = frame(&a, &m, sizes[i][0], sizes[i][1], &ls);

            assert_contains(ls.v[1].text, "switchyard-top");
            assert_contains(ls.v[ls.n - 1].text, "updated 00:29:37 UTC");
            if (sizes[i][0] >= 68) {
                assert_contains(
                    ls.v[0].text,
                    " 1 Overview  2 Traffic  3 Spend  4 Fleet  5 Policies  6 Experiments");
            } else {
                assert_contains(ls.v[0].text, tui_view_title(v));
                assert_not_contains(ls.v[0].text,
                                    tui_view_title((enum tui_view)((v + 1) % TUI_VIEW_COUNT)));
            }
            free(t);
            tui_lines_cleanup(&ls);
        }
    }
    tui_model_cleanup(&m);
}

static void test_info_line(void **state)
{
    struct tui_model m = {0};
    struct tui_lines ls;
    struct tui_app a;
    char *t;

    (void)state;
    tui_app_init(&a, SERVER, TUI_VIEW_TRAFFIC, 0, 500);
    tui_app_key(&a, 's');
    tui_app_key(&a, 'p');
    t = frame(&a, &m, 100, 30, &ls);
    assert_string_equal(ls.v[1].text, "switchyard-top  " SERVER
                                      "  window 10s  every 0.5s  sort err% (s)  PAUSED");
    assert_contains(ls.v[29].text, "paused (p resumes)");
    assert_contains(ls.v[29].text, "connecting to " SERVER);
    assert_contains(t, "waiting for GET /v1/stats");
    free(t);
    tui_lines_cleanup(&ls);
}

static void test_too_small(void **state)
{
    static const size_t sizes[][2] = {{39, 24}, {80, 7}, {30, 8}, {18, 3}, {10, 3}, {1, 1}};
    struct tui_model m;
    struct tui_app a;

    (void)state;
    load_all(&m);
    tui_app_init(&a, SERVER, TUI_VIEW_TRAFFIC, 1, 1000);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct tui_lines ls;
        char *t = frame(&a, &m, sizes[i][0], sizes[i][1], &ls);

        if (sizes[i][0] >= 18)
            assert_contains(t, "terminal too small");
        assert_not_contains(t, "Traffic");
        free(t);
        tui_lines_cleanup(&ls);
    }
    {
        struct tui_lines ls;
        char *t = frame(&a, &m, 30, 8, &ls);

        assert_string_equal(ls.v[4].text, "terminal too small");
        assert_string_equal(ls.v[5].text, "30x8, need 40x8");
        free(t);
        tui_lines_cleanup(&ls);
    }
    {
        struct tui_lines ls = {0};

        tui_app_frame(&a, &m, TEST_NOW_MS, 0, 0, true, &ls);
        assert_int_equal(ls.n, 0);
    }
    tui_model_cleanup(&m);
}

static void test_status_line(void **state)
{
    static const char not_found[] =
        "{\"error\":{\"message\":\"unknown path /v1/stats\",\"type\":\"invalid_request_error\","
        "\"code\":\"not_found\",\"param\":null}}";
    struct tui_model m;
    struct tui_lines ls;
    struct tui_app a;
    const struct tui_line *st;
    char *t;

    (void)state;
    load_all(&m);
    tui_app_init(&a, SERVER, TUI_VIEW_OVERVIEW, 1, 1000);
    tui_model_apply(&m, TUI_SRC_STATS, "1m", "connection refused", 0, NULL, 0, TEST_NOW_MS);
    t = frame(&a, &m, 100, 30, &ls);
    st = &ls.v[29];
    assert_contains(st->text, "server " SERVER " unreachable: connection refused, retrying");
    assert_contains(st->text, "? help  q quit");
    assert_int_equal(tui_line_style_at(st, 0), TUI_S_BAD);
    /* The last good numbers stay. */
    assert_contains(t, "Requests/s   20.0");
    free(t);
    tui_lines_cleanup(&ls);

    /* At 40 columns the message keeps the room; the key hint goes. */
    t = frame(&a, &m, 40, 40, &ls);
    assert_string_equal(ls.v[39].text, "server " SERVER " unreachabl\xe2\x80\xa6");
    free(t);
    tui_lines_cleanup(&ls);

    tui_model_apply(&m, TUI_SRC_STATS, "1m", NULL, 404, not_found, strlen(not_found), TEST_NOW_MS);
    t = frame(&a, &m, 100, 30, &ls);
    assert_contains(ls.v[29].text,
                    "GET /v1/stats?window=1m: HTTP 404: unknown path /v1/stats, retrying");
    free(t);
    tui_lines_cleanup(&ls);

    /* A replica that did not answer: the numbers are partial, and the status line says so. */
    {
        static const char partial[] =
            "{\"window\":\"1m\",\"totals\":{\"requests\":5},\"replicas\":{\"answered\":"
            "[\"cp-1\"],\"unreachable\":[{\"id\":\"cp-2\",\"url\":\"http://10.0.0.2:9090\","
            "\"error\":\"Connection refused\"}]}}";
        tui_model_apply(&m, TUI_SRC_STATS, "1m", NULL, 200, partial, strlen(partial), TEST_NOW_MS);
        t = frame(&a, &m, 100, 30, &ls);
        assert_contains(ls.v[29].text,
                        "partial: replica cp-2 (Connection refused); its proxies are missing");
        assert_int_equal(tui_line_style_at(&ls.v[29], 0), TUI_S_WARN);
        free(t);
        tui_lines_cleanup(&ls);
    }

    /* A failing source of another view does not show here. */
    a.view = TUI_VIEW_POLICIES;
    t = frame(&a, &m, 100, 30, &ls);
    assert_contains(ls.v[29].text, "updated 00:29:37 UTC");
    free(t);
    tui_lines_cleanup(&ls);
    tui_model_cleanup(&m);
}

static void test_scroll(void **state)
{
    struct tui_model m = {0};
    struct tui_lines ls;
    struct tui_app a;
    char body[8192];
    size_t len = 0;
    char *t;

    (void)state;
    len += (size_t)snprintf(body + len, sizeof(body) - len, "{\"active\":40,\"versions\":[");
    for (int v = 40; v >= 1; v--)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "%s{\"version\":%d,\"note\":\"note %d\",\"active\":%s}",
                                v == 40 ? "" : ",", v, v, v == 40 ? "true" : "false");
    len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
    assert_int_equal(tui_model_apply(&m, TUI_SRC_POLICIES, "1m", NULL, 200, body, len, TEST_NOW_MS),
                     0);
    tui_app_init(&a, SERVER, TUI_VIEW_POLICIES, 1, 1000);

    /* 10 rows: 7 for the body, which has a heading, a header and 40 versions. */
    t = frame(&a, &m, 80, 10, &ls);
    assert_contains(ls.v[9].text, "1-7/42  ? help  q quit");
    assert_contains(ls.v[2].text, "Policies: active version 40");
    free(t);
    tui_lines_cleanup(&ls);

    tui_app_key(&a, TUI_KEY_DOWN);
    tui_app_key(&a, 'j');
    t = frame(&a, &m, 80, 10, &ls);
    assert_contains(ls.v[9].text, "3-9/42");
    assert_contains(ls.v[2].text, "note 40");
    free(t);
    tui_lines_cleanup(&ls);

    tui_app_key(&a, TUI_KEY_PGDN);
    t = frame(&a, &m, 80, 10, &ls);
    assert_contains(ls.v[9].text, "10-16/42");
    free(t);
    tui_lines_cleanup(&ls);

    tui_app_key(&a, TUI_KEY_END);
    t = frame(&a, &m, 80, 10, &ls);
    assert_contains(ls.v[9].text, "36-42/42");
    assert_contains(ls.v[8].text, "note 1");
    free(t);
    tui_lines_cleanup(&ls);

    /* Growing the terminal shows everything again from the top. */
    t = frame(&a, &m, 80, 50, &ls);
    assert_contains(ls.v[2].text, "Policies:");
    assert_not_contains(ls.v[49].text, "/42");
    free(t);
    tui_lines_cleanup(&ls);

    tui_app_key(&a, TUI_KEY_PGUP);
    tui_app_key(&a, 'k');
    tui_app_key(&a, TUI_KEY_HOME);
    assert_int_equal(a.scroll[TUI_VIEW_POLICIES], 0);
    tui_model_cleanup(&m);
}

static void test_help_lines(void **state)
{
    struct tui_lines ls = {0};
    char *t;

    (void)state;
    tui_app_help(&ls);
    t = lines_text(&ls);
    assert_contains(t, "1-6, Tab");
    assert_contains(t, "stats window: 10s, 1m, 1h");
    assert_contains(t, "q                  quit");
    free(t);
    tui_lines_cleanup(&ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_keys), cmocka_unit_test(test_sort_window_pause_help),
        cmocka_unit_test(test_frames),    cmocka_unit_test(test_info_line),
        cmocka_unit_test(test_too_small), cmocka_unit_test(test_status_line),
        cmocka_unit_test(test_scroll),    cmocka_unit_test(test_help_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
