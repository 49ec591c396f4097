/* tests/unit/tui/test_format.c - the dashboard's number formats (tui_format.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tui_format.h"
#include "tui_text.h"

static char b[TUI_NUM_MAX];

static void test_count(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_count(b, sizeof(b), 0), "0");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 12), "12");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 9999), "9999");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 10000), "10.0k");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 12345), "12.3k");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 123456), "123k");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 999499), "999k");
    /* Rounding up to the next unit does not print "1000k". */
    assert_string_equal(tui_fmt_count(b, sizeof(b), 999999), "1.00M");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 1234567), "1.23M");
    assert_string_equal(tui_fmt_count(b, sizeof(b), 4560000000LL), "4.56G");
    assert_string_equal(tui_fmt_count(b, sizeof(b), -5), "-5");
}

static void test_rate(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_rate(b, sizeof(b), NAN), "-");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), INFINITY), "-");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 0.0), "0");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 0.0033), "<0.01");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 0.005), "0.01");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 0.2), "0.20");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 9.996), "10.0");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 12.54), "12.5");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 345.4), "345");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 999.6), "1.00k");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 2166.7), "2.17k");
    assert_string_equal(tui_fmt_rate(b, sizeof(b), 12345.0), "12.3k");
}

static void test_ms(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_ms(b, sizeof(b), NAN), "-");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), -1.0), "-");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 0.42), "0.42 ms");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 3.4), "3.4 ms");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 80.2), "80.2 ms");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 99.97), "100 ms");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 210.1), "210 ms");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 1250.0), "1.25 s");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 12500.0), "12.5 s");
    assert_string_equal(tui_fmt_ms(b, sizeof(b), 150000.0), "2.5 min");
}

static void test_pct(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_pct(b, sizeof(b), NAN), "-");
    assert_string_equal(tui_fmt_pct(b, sizeof(b), 0.0), "0%");
    assert_string_equal(tui_fmt_pct(b, sizeof(b), 0.0025), "0.25%");
    assert_string_equal(tui_fmt_pct(b, sizeof(b), 0.034), "3.4%");
    assert_string_equal(tui_fmt_pct(b, sizeof(b), 0.5), "50%");
    assert_string_equal(tui_fmt_pct(b, sizeof(b), 1.25), "125%");
}

static void test_usd(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_usd(b, sizeof(b), NAN), "-");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 0.0), "$0.00");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 0.000031), "$0.000031");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 0.0123), "$0.0123");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 0.5123), "$0.5123");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 0.9999), "$1.00");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 12.345), "$12.35");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 9999.99), "$9999.99");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 12345.0), "$12.3k");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), 1234567.0), "$1.23M");
    assert_string_equal(tui_fmt_usd(b, sizeof(b), -2.5), "-$2.50");
}

static void test_ago_and_duration(void **state)
{
    const int64_t now = 1795307377360LL;

    (void)state;
    assert_string_equal(tui_fmt_ago(b, sizeof(b), 0, now), "never");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now - 300, now), "now");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now + 5000, now), "now");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now - 4000, now), "4s ago");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now - 5 * 60000, now), "5m ago");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now - 2 * 3600000, now), "2h ago");
    assert_string_equal(tui_fmt_ago(b, sizeof(b), now - 3 * 86400000LL, now), "3d ago");

    assert_string_equal(tui_fmt_duration(b, sizeof(b), -5), "0s");
    assert_string_equal(tui_fmt_duration(b, sizeof(b), 12000), "12s");
    assert_string_equal(tui_fmt_duration(b, sizeof(b), 245000), "4m05s");
    assert_string_equal(tui_fmt_duration(b, sizeof(b), (3 * 3600 + 12 * 60) * 1000LL), "3h12m");
    assert_string_equal(tui_fmt_duration(b, sizeof(b), (2 * 86400 + 3 * 3600) * 1000LL), "2d03h");
}

static void test_utc(void **state)
{
    (void)state;
    assert_string_equal(tui_fmt_utc(b, sizeof(b), 0), "-");
    assert_string_equal(tui_fmt_utc(b, sizeof(b), 1795307377360LL), "2026-11-22 00:29:37");
}

static void test_bar(void **state)
{
    char bar[64];

    (void)state;
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), 0.5, 10, false), "#####.....");
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), 0.0, 4, false), "....");
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), 7.0, 4, false), "####");
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), NAN, 4, false), "....");
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), -1.0, 2, true), "\xe2\x96\x91\xe2\x96\x91");
    /* Two and a half cells of four: two full blocks, a half block, one light shade. */
    assert_string_equal(tui_fmt_bar(bar, sizeof(bar), 0.625, 4, true),
                        "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x8c\xe2\x96\x91");
    tui_fmt_bar(bar, sizeof(bar), 0.6, 10, true);
    assert_int_equal(tui_text_cols(bar, strlen(bar)), 10);
    tui_fmt_bar(bar, sizeof(bar), 0.33, 7, true);
    assert_int_equal(tui_text_cols(bar, strlen(bar)), 7);
    /* A buffer too small for the bar gets whole characters only, NUL-terminated. */
    assert_string_equal(tui_fmt_bar(bar, 7, 1.0, 4, true), "\xe2\x96\x88\xe2\x96\x88");
}

static void test_spark(void **state)
{
    const double v[] = {0.0, 1.0, 2.0, NAN, 4.0};
    const double zeros[] = {0.0, 0.0};
    char s[64];

    (void)state;
    assert_string_equal(tui_fmt_spark(s, sizeof(s), v, 5, false), "_:= #");
    assert_string_equal(tui_fmt_spark(s, sizeof(s), zeros, 2, false), "__");
    assert_string_equal(tui_fmt_spark(s, sizeof(s), v, 2, true), "\xe2\x96\x81\xe2\x96\x88");
    assert_string_equal(tui_fmt_spark(s, sizeof(s), v, 0, true), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count), cmocka_unit_test(test_rate),
        cmocka_unit_test(test_ms),    cmocka_unit_test(test_pct),
        cmocka_unit_test(test_usd),   cmocka_unit_test(test_ago_and_duration),
        cmocka_unit_test(test_utc),   cmocka_unit_test(test_bar),
        cmocka_unit_test(test_spark),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
