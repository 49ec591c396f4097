/* tests/unit/tui/test_parse.c - the admin API's replies into structs (tui_parse.c),
 * against the documented examples and against replies that break the contract. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tui_parse.h"
#include "tui_test.h"

/* A string literal and its length, for the parsers' (body, len) arguments. */
#define STR(s) (s), strlen(s)

static void test_stats(void **state)
{
    size_t len;
    char *body = read_fixture("stats.json", &len);
    struct tui_stats *s;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_stats(body, len, &s, &err), 0);
    assert_string_equal(s->window, "1m");
    assert_true(s->window_s == 60.0);
    assert_int_equal(s->now_ms, 1795307377360LL);
    assert_int_equal(s->active_version, 7);
    assert_int_equal(s->proxies, 2);
    assert_int_equal(s->totals.requests, 1200);
    assert_true(s->totals.rps == 20.0);
    assert_int_equal(s->totals.errors, 3);
    assert_int_equal(s->totals.client_errors, 1);
    assert_int_equal(s->totals.in_flight, 4);
    assert_true(s->totals.latency.p99 == 950.3);
    assert_true(s->totals.ttft.p50 == 80.2);
    assert_int_equal(s->totals.completion_tokens, 40000);
    assert_true(s->totals.cost_per_hour_usd == 30.74);
    assert_int_equal(s->n_providers, 2);
    assert_int_equal(s->n_models, 3);
    assert_string_equal(s->models[1].provider, "anthropic");
    assert_string_equal(s->models[1].model, "claude-3-5-haiku");
    assert_true(isnan(s->models[1].ttft.p50)); /* null: no streamed sample */
    assert_int_equal(s->n_routes, 2);
    assert_string_equal(s->routes[1].route, "");
    assert_int_equal(s->n_tenants, 1);
    assert_string_equal(s->tenants[0].tenant, "acme");
    tui_stats_free(s);
    free(body);
}

static void test_stats_minimal(void **state)
{
    static const char body[] = "{\"totals\":{\"requests\":0}}";
    struct tui_stats *s;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_stats(body, strlen(body), &s, &err), 0);
    assert_null(s->window);
    assert_int_equal(s->proxies, -1); /* not sent */
    assert_true(isnan(s->totals.rps));
    assert_true(isnan(s->totals.latency.p50));
    assert_int_equal(s->n_models, 0);
    assert_null(s->models);
    assert_null(s->unreachable);
    tui_stats_free(s);
}

/* replicas.unreachable: the replicas whose proxies the numbers lack. */
static void test_stats_unreachable_replicas(void **state)
{
    static const char all[] = "{\"totals\":{},\"replicas\":{\"answered\":[\"a\",\"b\"],"
                              "\"unreachable\":[]}}";
    static const char two[] =
        "{\"totals\":{},\"replicas\":{\"answered\":[\"a\"],\"unreachable\":["
        "{\"id\":\"b\",\"error\":\"Connection refused\"},{\"id\":\"c\"},{\"error\":\"x\"},7]}}";
    struct tui_stats *s;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_stats(all, strlen(all), &s, &err), 0);
    assert_null(s->unreachable);
    tui_stats_free(s);
    assert_int_equal(tui_parse_stats(two, strlen(two), &s, &err), 0);
    assert_string_equal(s->unreachable, "b (Connection refused), c (no answer)");
    tui_stats_free(s);
}

/* Parses <body> with tui_parse_stats expecting failure with message <want>. */
static void stats_fails(const char *body, const char *want)
{
    struct tui_stats *s = (struct tui_stats *)1;
    char *err = NULL;

    assert_int_equal(tui_parse_stats(body, strlen(body), &s, &err), -EINVAL);
    assert_null(s);
    assert_non_null(err);
    if (strcmp(err, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", err, want);
    free(err);
}

static void test_stats_errors(void **state)
{
    (void)state;
    stats_fails("", "empty reply");
    stats_fails(" \n", "empty reply");
    stats_fails("{\"totals\":", "not JSON (line 1, column 10: invalid JSON near \":\")");
    stats_fails("[1]", "expected a JSON object, got array");
    stats_fails("{}", "totals: missing");
    stats_fails("{\"totals\":[]}", "totals: expected an object, got array");
    stats_fails("{\"totals\":{\"rps\":\"fast\"}}", "totals.rps: expected a number, got string");
    stats_fails("{\"totals\":{\"latency_ms\":{\"p50\":true}}}",
                "totals.latency_ms.p50: expected a number, got boolean");
    stats_fails("{\"totals\":{},\"models\":{}}", "models: expected an array, got object");
    stats_fails("{\"totals\":{},\"models\":[{},3]}", "models[1]: expected an object, got number");
    stats_fails("{\"totals\":{},\"models\":[{\"requests\":1.5e300}]}",
                "models[0].requests: expected an integer, got number");
    stats_fails("{\"totals\":{},\"routes\":[{\"route\":[]}]}",
                "routes[0].route: expected a string, got array");
}

static void test_stats_clean_and_cap(void **state)
{
    static const char evil[] = "{\"totals\":{},\"models\":[{\"model\":\"a\\u001b[2Jb\"}]}";
    struct tui_stats *s;
    char *err = NULL;
    char *big;
    size_t len = 0, cap = (TUI_MAX_ROWS + 5) * 3 + 64;

    (void)state;
    assert_int_equal(tui_parse_stats(evil, strlen(evil), &s, &err), 0);
    assert_string_equal(s->models[0].model, "a?[2Jb");
    tui_stats_free(s);

    big = malloc(cap);
    assert_non_null(big);
    len += (size_t)snprintf(big, cap, "{\"totals\":{},\"models\":[");
    for (size_t i = 0; i < TUI_MAX_ROWS + 5; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s{}", i ? "," : "");
    len += (size_t)snprintf(big + len, cap - len, "]}");
    assert_int_equal(tui_parse_stats(big, len, &s, &err), 0);
    assert_int_equal(s->n_models, TUI_MAX_ROWS);
    tui_stats_free(s);
    free(big);
}

static void test_spend(void **state)
{
    size_t len;
    char *body = read_fixture("spend_month.json", &len);
    struct tui_spend *s;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_spend(body, len, &s, &err), 0);
    assert_string_equal(s->period, "month");
    assert_string_equal(s->date, "2026-11");
    assert_true(s->elapsed_fraction == 0.71);
    assert_true(s->total_usd == 412.5);
    assert_int_equal(s->n_tenants, 3);
    assert_string_equal(s->tenants[0].tenant, "acme");
    assert_true(s->tenants[0].budget_usd == 500.0);
    assert_true(isnan(s->tenants[1].budget_usd));
    assert_int_equal(s->tenants[0].n_models, 2);
    assert_string_equal(s->tenants[0].models[1].model, "gpt-4o");
    assert_string_equal(s->tenants[0].models[1].provider, "openai");
    assert_true(s->tenants[0].models[1].cost_usd == 100.0);
    tui_spend_free(s);
    free(body);

    assert_int_equal(
        tui_parse_spend(STR("{\"tenants\":[{\"models\":[{\"cost_usd\":\"1\"}]}]}"), &s, &err),
        -EINVAL);
    assert_string_equal(err, "tenants[0].models[0].cost_usd: expected a number, got string");
    free(err);
}

static void test_fleet(void **state)
{
    size_t len;
    char *body = read_fixture("fleet.json", &len);
    struct tui_fleet *f;
    char *err = NULL;
    static const char numeric_nack[] =
        "{\"proxies\":[{\"node_id\":\"x\",\"last_nack\":{\"version\":8,\"error\":null}}]}";

    (void)state;
    assert_int_equal(tui_parse_fleet(body, len, &f, &err), 0);
    assert_int_equal(f->active_version, 7);
    assert_string_equal(f->control_plane, "cp-a");
    assert_int_equal(f->n_proxies, 3);
    assert_true(f->proxies[0].connected);
    assert_false(f->proxies[0].has_nack);
    assert_int_equal(f->proxies[1].acked_version, 6);
    assert_true(f->proxies[1].has_nack);
    assert_string_equal(f->proxies[1].nack_version, "7");
    assert_non_null(strstr(f->proxies[1].nack_error, "OPENAI_API_KEY"));
    assert_false(f->proxies[2].connected);
    assert_int_equal(f->proxies[2].acked_version, 0); /* null */
    assert_int_equal(f->proxies[2].connected_since_ms, 0);
    tui_fleet_free(f);
    free(body);

    assert_int_equal(tui_parse_fleet(numeric_nack, strlen(numeric_nack), &f, &err), 0);
    assert_string_equal(f->proxies[0].nack_version, "8");
    assert_null(f->proxies[0].nack_error);
    tui_fleet_free(f);

    assert_int_equal(tui_parse_fleet(STR("{\"proxies\":[{\"connected\":1}]}"), &f, &err), -EINVAL);
    assert_string_equal(err, "proxies[0].connected: expected true or false, got number");
    free(err);
}

static void test_policies(void **state)
{
    size_t len;
    char *body = read_fixture("policies.json", &len);
    struct tui_policies *p;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_policies(body, len, &p, &err), 0);
    assert_int_equal(p->active, 7);
    assert_int_equal(p->n_versions, 3);
    assert_int_equal(p->versions[0].version, 8);
    assert_false(p->versions[0].active);
    assert_true(p->versions[1].active);
    assert_int_equal(p->versions[1].rollback_of, 3);
    assert_int_equal(p->versions[2].rollback_of, 0);
    assert_string_equal(p->versions[1].hash, "5a94caf2453e401d");
    assert_int_equal(p->versions[2].created_ms, 1795200000000LL);
    tui_policies_free(p);
    free(body);
}

static void test_experiments(void **state)
{
    size_t len;
    char *body = read_fixture("experiments.json", &len);
    struct tui_experiments *x;
    const struct tui_experiment *e;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_experiments(body, len, &x, &err), 0);
    assert_int_equal(x->n, 1);
    e = &x->v[0];
    assert_string_equal(e->name, "e1");
    assert_string_equal(e->route, "auto");
    assert_string_equal(e->metric, "thumbs_up");
    assert_string_equal(e->status, "running");
    assert_int_equal(e->policy_version, 7);
    assert_int_equal(e->min_samples, 100);
    assert_null(e->winner);
    assert_int_equal(e->n_arms, 2);
    assert_string_equal(e->arms[0].model, "m1");
    assert_true(e->arms[0].share == 50.0);
    assert_int_equal(e->arms[0].up, 3);
    assert_int_equal(e->arms[0].down, 1);
    assert_true(e->arms[0].ci_low == 0.3);
    assert_true(e->arms[0].ci_high == 0.9);
    assert_true(e->arms[0].prob_best == 0.7);
    assert_true(e->arms[0].latency_p95 == 2.0);
    assert_true(e->arms[0].cost_per_request_usd == 0.001);
    assert_true(e->has_test);
    assert_string_equal(e->test_method, "two_proportion_z");
    assert_true(e->test_p_value == 0.23);
    assert_false(e->test_significant);
    tui_experiments_free(x);
    free(body);

    assert_int_equal(
        tui_parse_experiments(STR("{\"experiments\":[{\"arms\":[{\"ci95\":[1]}]}]}"), &x, &err),
        -EINVAL);
    assert_string_equal(err, "experiments[0].arms[0].ci95: expected [low, high]");
    free(err);
    assert_int_equal(tui_parse_experiments(STR("{}"), &x, &err), 0);
    assert_int_equal(x->n, 0);
    tui_experiments_free(x);
}

/* What the control plane serves today adds fields to the contract: read, or ignored. */
static void test_experiments_live(void **state)
{
    size_t len;
    char *body = read_fixture("experiments_live.json", &len);
    struct tui_experiments *x;
    char *err = NULL;

    (void)state;
    assert_int_equal(tui_parse_experiments(body, len, &x, &err), 0);
    assert_int_equal(x->n, 2);
    assert_string_equal(x->v[0].stop_rule, "prob_best");
    assert_true(x->v[0].arms[0].mean_score == 0.71);
    assert_true(isnan(x->v[0].arms[1].mean_score));
    assert_true(isnan(x->v[0].arms[1].up_rate));
    assert_int_equal(x->v[0].arms[1].requests, 0);
    assert_null(x->v[0].promoted_arm);
    assert_string_equal(x->v[1].status, "promoted");
    assert_string_equal(x->v[1].promoted_arm, "B");
    assert_int_equal(x->v[1].promoted_in_version, 8);
    assert_true(x->v[1].test_significant);
    tui_experiments_free(x);
    free(body);
}

static void test_error_text(void **state)
{
    static const char api[] = "{\"error\":{\"message\":\"unknown path /v1/stats\",\"type\":"
                              "\"invalid_request_error\",\"code\":\"not_found\",\"param\":null}}";
    char *t;

    (void)state;
    t = tui_parse_error_text(404, api, strlen(api));
    assert_string_equal(t, "HTTP 404: unknown path /v1/stats");
    free(t);
    t = tui_parse_error_text(502, STR("<html>Bad\x1b gateway</html>\n"));
    assert_string_equal(t, "HTTP 502: <html>Bad? gateway</html>");
    free(t);
    t = tui_parse_error_text(500, "", 0);
    assert_string_equal(t, "HTTP 500");
    free(t);
    t = tui_parse_error_text(503, NULL, 0);
    assert_string_equal(t, "HTTP 503");
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stats_minimal),
        cmocka_unit_test(test_stats_unreachable_replicas),
        cmocka_unit_test(test_stats_errors),
        cmocka_unit_test(test_stats_clean_and_cap),
        cmocka_unit_test(test_spend),
        cmocka_unit_test(test_fleet),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_experiments),
        cmocka_unit_test(test_experiments_live),
        cmocka_unit_test(test_error_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
