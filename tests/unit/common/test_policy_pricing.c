/* tests/unit/common/test_policy_pricing.c - time-of-day price windows and tenant budgets in
 * the policy compiler (sy_policy): compiled form, defaults, lookups at the edges of windows
 * (wrapping midnight included), canonical JSON, and every error with its path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_policy.h"

#define BASE                                                                                       \
    "providers:\n  - {name: p, base_url: \"http://127.0.0.1:1/v1\"}\n"                             \
    "models:\n"

/* Seconds since the epoch at hh:mm:ss UTC on 2025-01-01 (a day starts at a multiple of
 * 86400). */
static int64_t at(int hh, int mm, int ss)
{
    return 1735689600 + hh * 3600 + mm * 60 + ss;
}

static struct sy_policy *compile_ok(const char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (!pol)
        fail_msg("unexpected error: %s", err);
    return pol;
}

static char *compile_err(const char *src)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(src, strlen(src), &err);

    if (pol)
        fail_msg("policy compiled but should not have:\n%s", src);
    assert_non_null(err);
    return err;
}

static void assert_has(const char *err, const char *want)
{
    if (!strstr(err, want))
        fail_msg("error message\n%s\ndoes not contain\n%s", err, want);
}

static size_t count_lines(const char *s)
{
    size_t n = 1;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_prices(const struct sy_model *m, int64_t t, double in, double out, double cached)
{
    double i, o, c;

    sy_model_prices_at(m, t, &i, &o, &c);
    if (i != in || o != out || c != cached)
        fail_msg("at %lld s: got %g/%g/%g, want %g/%g/%g", (long long)t, i, o, c, in, out, cached);
}

static const char windows_src[] = BASE
    "  - name: m\n"
    "    provider: p\n"
    "    pricing:\n"
    "      input_per_mtok: 1.0\n"
    "      output_per_mtok: 2.0\n"
    "      cached_input_per_mtok: 0.5\n"
    "      windows:\n"
    "        - {start: \"22:00\", end: \"06:00\", input_per_mtok: 0.25, output_per_mtok: 0.75}\n"
    "        - {start: \"12:00\", end: \"13:30\", output_per_mtok: 0, cached_input_per_mtok: "
    "0.1}\n"
    "  - name: n\n"
    "    provider: p\n"
    "    pricing:\n"
    "      input_per_mtok: 3\n"
    "      output_per_mtok: 4\n"
    "      windows: [{start: \"18:00\", end: \"24:00\", input_per_mtok: 1}]\n";

static void test_windows_compiled(void **state)
{
    struct sy_policy *pol = compile_ok(windows_src);
    const struct sy_model *m = sy_policy_find_model(pol, "m"), *n = sy_policy_find_model(pol, "n");

    (void)state;
    assert_int_equal(m->n_windows, 2);
    assert_int_equal(m->windows[0].start_min, 22 * 60);
    assert_int_equal(m->windows[0].end_min, 6 * 60);
    assert_true(m->windows[0].input_per_mtok == 0.25);
    assert_true(m->windows[0].output_per_mtok == 0.75);
    assert_true(m->windows[0].cached_input_per_mtok == 0.5); /* the base price */
    assert_int_equal(m->windows[1].start_min, 12 * 60);
    assert_int_equal(m->windows[1].end_min, 13 * 60 + 30);
    assert_true(m->windows[1].input_per_mtok == 1.0); /* the base price */
    assert_true(m->windows[1].output_per_mtok == 0);  /* free, not "unset" */
    assert_true(m->windows[1].cached_input_per_mtok == 0.1);
    /* "24:00" is midnight, stored as 0: the window runs to the end of the day. */
    assert_int_equal(n->n_windows, 1);
    assert_int_equal(n->windows[0].start_min, 18 * 60);
    assert_int_equal(n->windows[0].end_min, 0);
    assert_true(n->windows[0].output_per_mtok == 4);
    assert_true(n->windows[0].cached_input_per_mtok == 0);
    sy_policy_unref(pol);
}

static void test_windows_lookup(void **state)
{
    struct sy_policy *pol = compile_ok(windows_src);
    const struct sy_model *m = sy_policy_find_model(pol, "m"), *n = sy_policy_find_model(pol, "n");

    (void)state;
    /* Base prices outside every window. */
    expect_prices(m, at(8, 0, 0), 1.0, 2.0, 0.5);
    expect_prices(m, at(21, 59, 59), 1.0, 2.0, 0.5);
    /* The night window wraps midnight: start inclusive, end exclusive. */
    expect_prices(m, at(22, 0, 0), 0.25, 0.75, 0.5);
    expect_prices(m, at(23, 59, 59), 0.25, 0.75, 0.5);
    expect_prices(m, at(0, 0, 0), 0.25, 0.75, 0.5);
    expect_prices(m, at(5, 59, 59), 0.25, 0.75, 0.5);
    expect_prices(m, at(6, 0, 0), 1.0, 2.0, 0.5);
    /* Lunch: input from the base, output 0, its own cached price. */
    expect_prices(m, at(11, 59, 59), 1.0, 2.0, 0.5);
    expect_prices(m, at(12, 0, 0), 1.0, 0, 0.1);
    expect_prices(m, at(13, 29, 59), 1.0, 0, 0.1);
    expect_prices(m, at(13, 30, 0), 1.0, 2.0, 0.5);
    /* Other days, and before 1970, are the same time of day. */
    expect_prices(m, at(23, 0, 0) + 86400 * 400, 0.25, 0.75, 0.5);
    expect_prices(m, -3600, 0.25, 0.75, 0.5); /* 1969-12-31 23:00 */
    expect_prices(m, -86400 + 8 * 3600, 1.0, 2.0, 0.5);
    /* No cached price: the input price in force, the window's one inside it. */
    expect_prices(n, at(17, 59, 59), 3, 4, 3);
    expect_prices(n, at(18, 0, 0), 1, 4, 1);
    expect_prices(n, at(23, 59, 59), 1, 4, 1);
    expect_prices(n, at(0, 0, 0), 3, 4, 3);
    sy_policy_unref(pol);
}

static void test_no_windows_lookup(void **state)
{
    struct sy_policy *pol = compile_ok(BASE "  - {name: m, provider: p, pricing: "
                                            "{input_per_mtok: 2, output_per_mtok: 3}}\n"
                                            "  - {name: free, provider: p}\n");
    const struct sy_model *m = sy_policy_find_model(pol, "m");

    (void)state;
    assert_int_equal(m->n_windows, 0);
    assert_null(m->windows);
    expect_prices(m, at(3, 0, 0), 2, 3, 2);
    expect_prices(sy_policy_find_model(pol, "free"), at(3, 0, 0), 0, 0, 0);
    sy_policy_unref(pol);
}

/* Every minute of a day falls in at most one window, and in the right one. */
static void test_windows_every_minute(void **state)
{
    struct sy_policy *pol =
        compile_ok(BASE "  - name: m\n"
                        "    provider: p\n"
                        "    pricing:\n"
                        "      input_per_mtok: 9\n"
                        "      windows:\n"
                        "        - {start: \"23:59\", end: \"00:01\", input_per_mtok: 1}\n"
                        "        - {start: \"00:01\", end: \"00:02\", input_per_mtok: 2}\n"
                        "        - {start: \"10:00\", end: \"23:59\", input_per_mtok: 3}\n");
    const struct sy_model *m = sy_policy_find_model(pol, "m");

    (void)state;
    for (int min = 0; min < SY_MINUTES_PER_DAY; min++) {
        double want = 9, in, out, cached;

        if (min == 23 * 60 + 59 || min == 0)
            want = 1;
        else if (min == 1)
            want = 2;
        else if (min >= 600 && min < 23 * 60 + 59)
            want = 3;
        sy_model_prices_at(m, at(0, 0, 0) + min * 60 + 30, &in, &out, &cached);
        if (in != want)
            fail_msg("minute %d: got %g, want %g", min, in, want);
    }
    sy_policy_unref(pol);
}

static void test_windows_canonical(void **state)
{
    struct sy_policy *pol = compile_ok(windows_src), *again;
    char *json = sy_policy_to_json(pol), *json2, *err = NULL;
    cJSON *root = cJSON_Parse(json), *w;

    (void)state;
    assert_non_null(root);
    w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "models"), 0), "pricing"),
        "windows");
    assert_int_equal(cJSON_GetArraySize(w), 2);
    /* Resolved: every price written out. */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "start")->valuestring,
                        "22:00");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "end")->valuestring, "06:00");
    assert_true(
        cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "cached_input_per_mtok")->valuedouble == 0.5);
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 1), "input_per_mtok")->valuedouble ==
                1.0);
    /* "24:00" prints as "00:00". */
    w = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "models"), 1), "pricing"),
        "windows");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "end")->valuestring, "00:00");
    cJSON_Delete(root);

    /* The canonical form compiles to the same policy and prints the same text. */
    again = sy_policy_compile(json, strlen(json), &err);
    if (!again)
        fail_msg("%s", err);
    json2 = sy_policy_to_json(again);
    assert_string_equal(json, json2);
    free(json);
    free(json2);
    sy_policy_unref(again);
    sy_policy_unref(pol);
}

/* A policy without windows or budgets prints no "windows" or "budget" keys, so its canonical
 * text (and hash) is what it was before they existed. */
static void test_absent_keys_not_printed(void **state)
{
    struct sy_policy *pol = compile_ok(
        BASE "  - {name: m, provider: p, pricing: {input_per_mtok: 1, windows: []}}\n"
             "tenants:\n"
             "  - {name: t, api_keys_sha256: "
             "[\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]}\n");
    char *json = sy_policy_to_json(pol);

    (void)state;
    assert_null(strstr(json, "windows"));
    assert_null(strstr(json, "\"budget\"")); /* "retry_budget" is another key */
    free(json);
    sy_policy_unref(pol);
}

static void test_window_errors(void **state)
{
    char *err;

    (void)state;
    err = compile_err(
        BASE "  - name: m\n"
             "    provider: p\n"
             "    pricing:\n"
             "      input_per_mtok: 1\n"
             "      windows:\n"
             "        - {start: \"22:00\", end: \"06:00\"}\n"                        /* 0 */
             "        - {start: \"05:00\", end: \"07:00\"}\n"                        /* 1 */
             "        - {start: \"08:00\", end: \"08:00\"}\n"                        /* 2 */
             "        - {start: \"25:00\", end: \"9:00\"}\n"                         /* 3 */
             "        - {start: \"24:00\", end: \"10:60\"}\n"                        /* 4 */
             "        - {end: \"11:00\", input_per_mtok: -1, output_per_mtok: x}\n"  /* 5 */
             "        - {start: 1200, end: \"13:00\", cached_input_per_mtok: 2e6}\n" /* 6 */
             "        - {start: \"14:00\", end: \"15:00\", price: 1}\n"              /* 7 */
             "        - [14, 15]\n"                                                  /* 8 */
             "        - {start: \"21:00\", end: \"23:00\"}\n");                      /* 9 */
    assert_has(err, "models[0].pricing.windows[1]: 05:00-07:00 overlaps windows[0] (22:00-06:00)");
    assert_has(err, "models[0].pricing.windows[2]: start and end are both 08:00: a window must be "
                    "shorter than a day");
    assert_has(err, "models[0].pricing.windows[3].start: expected a time of day \"HH:MM\" (UTC, "
                    "00:00 to 23:59), got \"25:00\"");
    assert_has(err, "models[0].pricing.windows[3].end: expected a time of day \"HH:MM\" (UTC, "
                    "00:00 to 23:59, or 24:00), got \"9:00\"");
    assert_has(err, "models[0].pricing.windows[4].start: expected a time of day \"HH:MM\" (UTC, "
                    "00:00 to 23:59), got \"24:00\"");
    assert_has(err, "models[0].pricing.windows[4].end: expected a time of day");
    assert_has(err, "models[0].pricing.windows[5].start: is required");
    assert_has(err, "models[0].pricing.windows[5].input_per_mtok: must be between 0 and 1000000, "
                    "got -1");
    assert_has(err, "models[0].pricing.windows[5].output_per_mtok: expected a number, got a "
                    "string");
    assert_has(err, "models[0].pricing.windows[6].start: expected a string, got a number");
    assert_has(err, "models[0].pricing.windows[6].cached_input_per_mtok: must be between 0 and "
                    "1000000, got 2000000");
    assert_has(err, "models[0].pricing.windows[7]: unknown key \"price\" (expected one of: start, "
                    "end, input_per_mtok, output_per_mtok, cached_input_per_mtok)");
    assert_has(err, "models[0].pricing.windows[8]: expected a mapping, got a list");
    assert_has(err, "models[0].pricing.windows[9]: 21:00-23:00 overlaps windows[0] (22:00-06:00)");
    free(err);
}

static void test_window_nan_and_list_errors(void **state)
{
    char *err;

    (void)state;
    /* YAML refuses .nan itself; JSON cannot spell it; a tree can. */
    {
        cJSON *root = cJSON_Parse("{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://h\"}],"
                                  "\"models\":[{\"name\":\"m\",\"provider\":\"p\",\"pricing\":"
                                  "{\"windows\":[{\"start\":\"01:00\",\"end\":\"02:00\"}]}}]}");
        cJSON *w = cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "models"), 0),
                                    "pricing"),
                "windows"),
            0);

        cJSON_AddNumberToObject(w, "input_per_mtok", NAN);
        assert_null(sy_policy_compile_json(root, &err));
        assert_has(err, "models[0].pricing.windows[0].input_per_mtok: must be between 0 and "
                        "1000000, got nan");
        free(err);
        cJSON_Delete(root);
    }
    err = compile_err(BASE "  - {name: m, provider: p, pricing: {windows: {start: \"01:00\"}}}\n");
    assert_has(err, "models[0].pricing.windows: expected a list, got a mapping");
    assert_int_equal(count_lines(err), 1);
    free(err);

    /* At most SY_MAX_PRICE_WINDOWS. */
    {
        char src[8192];
        size_t n = (size_t)snprintf(src, sizeof(src),
                                    BASE "  - {name: m, provider: p, pricing: {windows: [");

        for (int i = 0; i <= SY_MAX_PRICE_WINDOWS; i++)
            n += (size_t)snprintf(src + n, sizeof(src) - n,
                                  "%s{start: \"%02d:00\", end: \"%02d:30\"}", i ? ", " : "", i % 24,
                                  i % 24);
        snprintf(src + n, sizeof(src) - n, "]}}\n");
        err = compile_err(src);
        assert_has(err, "models[0].pricing.windows: at most 24 windows, got 25");
        free(err);
    }
}

static void test_budgets(void **state)
{
    struct sy_policy *pol =
        compile_ok(BASE "  - {name: m, provider: p}\n"
                        "tenants:\n"
                        "  - name: a\n"
                        "    api_keys_sha256: "
                        "[\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]\n"
                        "    budget: {daily_usd: 10.5, monthly_usd: 200}\n"
                        "  - name: b\n"
                        "    api_keys_sha256: "
                        "[\"fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\"]\n"
                        "    budget: {monthly_usd: 0.01}\n"
                        "  - name: c\n"
                        "    api_keys_sha256: "
                        "[\"baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096\"]\n"
                        "    budget: {}\n");
    const struct sy_tenant *a = sy_policy_find_tenant(pol, "a"),
                           *b = sy_policy_find_tenant(pol, "b"),
                           *c = sy_policy_find_tenant(pol, "c");
    char *json = sy_policy_to_json(pol), *json2, *err = NULL;
    struct sy_policy *again;
    cJSON *root, *tenants;

    (void)state;
    assert_true(a->budget_daily_usd == 10.5);
    assert_true(a->budget_monthly_usd == 200);
    assert_true(b->budget_daily_usd == 0);
    assert_true(b->budget_monthly_usd == 0.01);
    assert_true(c->budget_daily_usd == 0 && c->budget_monthly_usd == 0);

    root = cJSON_Parse(json);
    tenants = cJSON_GetObjectItem(root, "tenants");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tenants, 0), "budget"),
                                    "daily_usd")
                    ->valuedouble == 10.5);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tenants, 1), "budget"),
                                    "daily_usd"));
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(tenants, 2), "budget"));
    cJSON_Delete(root);

    again = sy_policy_compile(json, strlen(json), &err);
    if (!again)
        fail_msg("%s", err);
    json2 = sy_policy_to_json(again);
    assert_string_equal(json, json2);
    free(json);
    free(json2);
    sy_policy_unref(again);
    sy_policy_unref(pol);
}

static void test_budget_errors(void **state)
{
    char *err;

    (void)state;
    err =
        compile_err(BASE "  - {name: m, provider: p}\n"
                         "tenants:\n"
                         "  - name: a\n"
                         "    api_keys_sha256: "
                         "[\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]\n"
                         "    budget: {daily_usd: 0, monthly_usd: -5, weekly_usd: 1}\n"
                         "  - name: b\n"
                         "    api_keys_sha256: "
                         "[\"fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9\"]\n"
                         "    budget: {daily_usd: \"10\", monthly_usd: 1e12}\n"
                         "  - name: c\n"
                         "    api_keys_sha256: "
                         "[\"baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096\"]\n"
                         "    budget: 100\n");
    assert_has(err, "tenants[0].budget: unknown key \"weekly_usd\" (expected one of: daily_usd, "
                    "monthly_usd)");
    assert_has(err, "tenants[0].budget.daily_usd: must be greater than 0 and at most 1000000000 "
                    "(USD), got 0");
    assert_has(err, "tenants[0].budget.monthly_usd: must be greater than 0 and at most "
                    "1000000000 (USD), got -5");
    assert_has(err, "tenants[1].budget.daily_usd: expected a number (USD), got a string");
    assert_has(err, "tenants[1].budget.monthly_usd: must be greater than 0 and at most "
                    "1000000000 (USD), got 1000000000000");
    assert_has(err, "tenants[2].budget: expected a mapping, got a number");
    assert_int_equal(count_lines(err), 6);
    free(err);
}

/* The public price-list reader: a caller's own keys, and its path in every message. */
static void test_prices_compile(void **state)
{
    static const char *const extra[] = {"model", "provider", NULL};
    cJSON *obj = cJSON_Parse("{\"model\":\"x\",\"input_per_mtok\":1,\"output_per_mtok\":2,"
                             "\"windows\":[{\"start\":\"01:00\",\"end\":\"02:00\","
                             "\"input_per_mtok\":0.5}]}");
    struct sy_prices p;
    char *err = NULL;
    double in, out, cached;

    (void)state;
    assert_int_equal(sy_prices_compile(obj, "models[4]", extra, &p, &err), 0);
    assert_null(err);
    assert_int_equal(p.n_windows, 1);
    sy_prices_at(&p, at(1, 30, 0), &in, &out, &cached);
    assert_true(in == 0.5 && out == 2 && cached == 0.5);
    sy_prices_cleanup(&p);
    assert_null(p.windows);
    cJSON_Delete(obj);

    obj = cJSON_Parse("{\"model\":\"x\",\"colour\":1,\"input_per_mtok\":-1,"
                      "\"windows\":[{\"start\":\"01:00\",\"end\":\"01:00\"}]}");
    assert_int_equal(sy_prices_compile(obj, "models[4]", extra, &p, &err), -EINVAL);
    assert_has(err, "models[4]: unknown key \"colour\" (expected one of: model, provider, "
                    "input_per_mtok, output_per_mtok, cached_input_per_mtok, windows)");
    assert_has(err, "models[4].input_per_mtok: must be between 0 and 1000000, got -1");
    assert_has(err, "models[4].windows[0]: start and end are both 01:00");
    assert_int_equal(count_lines(err), 3);
    assert_null(p.windows);
    free(err);
    cJSON_Delete(obj);
    sy_prices_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_compiled),  cmocka_unit_test(test_windows_lookup),
        cmocka_unit_test(test_no_windows_lookup), cmocka_unit_test(test_windows_every_minute),
        cmocka_unit_test(test_windows_canonical), cmocka_unit_test(test_absent_keys_not_printed),
        cmocka_unit_test(test_window_errors),     cmocka_unit_test(test_window_nan_and_list_errors),
        cmocka_unit_test(test_budgets),           cmocka_unit_test(test_budget_errors),
        cmocka_unit_test(test_prices_compile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
