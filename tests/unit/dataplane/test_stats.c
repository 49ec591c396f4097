/* tests/unit/dataplane/test_stats.c - dp_stats: series keys, status classes, tokens and
 * cost, TTFT for streams only, the cardinality bound and its overflow series, upstream
 * error codes, merging workers, a reader racing a writer (every copy consistent), and the
 * Prometheus rendering (escaping, families, cumulative buckets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "dp_accesslog.h"
#include "dp_metrics.h"
#include "dp_stats.h"

static struct dp_stats *stats_new(void)
{
    struct dp_stats *st = malloc(sizeof(*st));
    assert_non_null(st);
    dp_stats_init(st);
    return st;
}

static void stats_free(struct dp_stats *st)
{
    dp_stats_cleanup(st);
    free(st);
}

static struct dp_access_entry outcome(const char *route, const char *provider, const char *model,
                                      int status, bool stream)
{
    struct dp_access_entry e = {
        .route = route,
        .provider = provider,
        .model = model,
        .status = status,
        .stream = stream,
        .latency_us = 250000,
        .ttft_us = stream ? 40000 : 0,
        .prompt_tokens = 10,
        .completion_tokens = 20,
        .cached_tokens = 4,
        .cost_usd = 0.0000015, /* 1.5 micro-dollars: survives as 1500 nano-dollars */
    };
    return e;
}

static void record(struct dp_stats *st, const struct dp_access_entry *e)
{
    dp_stats_begin(st);
    dp_stats_record(st, e);
}

static struct dp_stats_view *view_of(struct dp_stats *const *st, size_t n)
{
    struct dp_stats_view *v = dp_stats_view_new();
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dp_stats_view_add(v, st[i]), 0);
    dp_stats_view_finish(v);
    return v;
}

static const struct dp_stats_row *find(const struct dp_stats_view *v, const char *route,
                                       const char *provider, const char *model,
                                       enum dp_status_class sc, bool stream)
{
    for (size_t i = 0; i < v->n_rows; i++) {
        const struct dp_stats_key *k = &v->rows[i]->key;
        if (strcmp(k->route, route) == 0 && strcmp(k->provider, provider) == 0 &&
            strcmp(k->model, model) == 0 && k->status_class == sc && k->stream == stream)
            return v->rows[i];
    }
    return NULL;
}

static void test_series_and_counters(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_access_entry e;
    struct dp_stats_view *v;
    const struct dp_stats_row *r;
    (void)state;

    for (int i = 0; i < 7; i++) {
        e = outcome("weighted", "mock", "mock-a", 200, false);
        record(st, &e);
    }
    e = outcome("weighted", "mock", "mock-a", 200, true);
    record(st, &e);
    e = outcome("weighted", "mock", "mock-b", 503, false);
    e.prompt_tokens = e.completion_tokens = e.cached_tokens = -1; /* unknown */
    e.cost_usd = 0;
    record(st, &e);
    /* Rejected before routing: no route, provider or model. */
    e = outcome(NULL, NULL, NULL, 404, false);
    record(st, &e);
    dp_stats_begin(st); /* still running */

    v = view_of(&st, 1);
    assert_int_equal(v->n_rows, 4);
    assert_int_equal(v->in_flight, 1);
    assert_int_equal(v->dropped, 0);
    r = find(v, "weighted", "mock", "mock-a", DP_STATUS_2XX, false);
    assert_non_null(r);
    assert_int_equal(r->requests, 7);
    assert_int_equal(r->prompt_tokens, 70);
    assert_int_equal(r->completion_tokens, 140);
    assert_int_equal(r->cached_tokens, 28);
    assert_int_equal(r->cost_nusd, 7 * 1500);
    assert_int_equal(sy_hist_count(&r->latency), 7);
    assert_int_equal(sy_hist_sum(&r->latency), 7 * 250000);
    assert_int_equal(sy_hist_count(&r->ttft), 0); /* TTFT: streams only */
    r = find(v, "weighted", "mock", "mock-a", DP_STATUS_2XX, true);
    assert_non_null(r);
    assert_int_equal(r->requests, 1);
    assert_int_equal(sy_hist_count(&r->ttft), 1);
    assert_int_equal(sy_hist_max(&r->ttft), 40000);
    r = find(v, "weighted", "mock", "mock-b", DP_STATUS_5XX, false);
    assert_non_null(r);
    assert_int_equal(r->requests, 1);
    assert_int_equal(r->prompt_tokens + r->completion_tokens + r->cached_tokens, 0);
    r = find(v, "", "", "", DP_STATUS_4XX, false);
    assert_non_null(r);
    assert_int_equal(r->requests, 1);
    /* Sorted: "" first. */
    assert_string_equal(v->rows[0]->key.route, "");
    dp_stats_view_free(v);
    stats_free(st);
}

/* The cache knows keys by the addresses of their names; a new policy may put other names
 * at the same addresses. */
static void test_reused_name_addresses(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_stats_view *v;
    char route[16], model[16];
    struct dp_access_entry e;
    (void)state;

    snprintf(route, sizeof(route), "%s", "alpha");
    snprintf(model, sizeof(model), "%s", "m1");
    e = outcome(route, "p", model, 200, false);
    record(st, &e);
    record(st, &e);
    snprintf(route, sizeof(route), "%s", "beta");
    record(st, &e);
    snprintf(model, sizeof(model), "%s", "m2");
    record(st, &e);
    e.route = NULL;
    record(st, &e);
    v = view_of(&st, 1);
    assert_int_equal(v->n_rows, 4);
    assert_int_equal(find(v, "alpha", "p", "m1", DP_STATUS_2XX, false)->requests, 2);
    assert_int_equal(find(v, "beta", "p", "m1", DP_STATUS_2XX, false)->requests, 1);
    assert_int_equal(find(v, "beta", "p", "m2", DP_STATUS_2XX, false)->requests, 1);
    assert_int_equal(find(v, "", "p", "m2", DP_STATUS_2XX, false)->requests, 1);
    dp_stats_view_free(v);
    stats_free(st);
}

static void test_status_classes(void **state)
{
    static const struct {
        int status;
        enum dp_status_class sc;
    } cases[] = {
        {200, DP_STATUS_2XX}, {201, DP_STATUS_2XX}, {304, DP_STATUS_2XX}, {400, DP_STATUS_4XX},
        {429, DP_STATUS_4XX}, {499, DP_STATUS_4XX}, {500, DP_STATUS_5XX}, {503, DP_STATUS_5XX},
        {504, DP_STATUS_5XX}, {0, DP_STATUS_5XX},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dp_stats *st = stats_new();
        struct dp_access_entry e = outcome("r", "p", "m", cases[i].status, false);
        struct dp_stats_view *v;
        record(st, &e);
        v = view_of(&st, 1);
        assert_int_equal(v->n_rows, 1);
        assert_int_equal(v->rows[0]->key.status_class, cases[i].sc);
        dp_stats_view_free(v);
        stats_free(st);
    }
    assert_string_equal(dp_status_class_name(DP_STATUS_2XX), "2xx");
    assert_string_equal(dp_status_class_name(DP_STATUS_4XX), "4xx");
    assert_string_equal(dp_status_class_name(DP_STATUS_5XX), "5xx");
}

static void test_cardinality_bound(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_stats_view *v;
    char model[32];
    uint64_t total = 0;
    const int n = DP_STATS_MAX_SERIES + 72;
    const struct dp_stats_row *other;
    (void)state;

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            struct dp_access_entry e;
            snprintf(model, sizeof(model), "model-%d", i);
            e = outcome("r", "p", model, i % 2 ? 200 : 500, false);
            record(st, &e);
        }
    }
    assert_int_equal(st->n_series, DP_STATS_MAX_SERIES);
    v = view_of(&st, 1);
    /* DP_STATS_MAX_SERIES real series, plus one overflow series per class seen. */
    assert_int_equal(v->n_rows, DP_STATS_MAX_SERIES + 2);
    assert_int_equal(v->dropped, 2 * 72);
    for (size_t i = 0; i < v->n_rows; i++)
        total += v->rows[i]->requests;
    assert_int_equal(total, 2 * n); /* nothing is lost, only lumped together */
    other = find(v, DP_STATS_OTHER, DP_STATS_OTHER, DP_STATS_OTHER, DP_STATUS_2XX, false);
    assert_non_null(other);
    assert_int_equal(other->requests, 72);
    assert_int_equal(sy_hist_count(&other->latency), 72);
    other = find(v, DP_STATS_OTHER, DP_STATS_OTHER, DP_STATS_OTHER, DP_STATUS_5XX, false);
    assert_non_null(other);
    assert_int_equal(other->requests, 72);
    /* Keys seen before the table filled keep their own series. */
    assert_non_null(find(v, "r", "p", "model-0", DP_STATUS_5XX, false));
    assert_int_equal(find(v, "r", "p", "model-0", DP_STATUS_5XX, false)->requests, 2);
    dp_stats_view_free(v);
    stats_free(st);
}

static void test_long_names(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_stats_view *v;
    char a[300], b[300];
    struct dp_access_entry e;
    const char *model;
    (void)state;

    /* 125 'x' then a 3-byte UTF-8 character straddling the 127-byte cut. */
    memset(a, 'x', 125);
    memcpy(a + 125, "\xe2\x82\xac", 3);
    snprintf(a + 128, sizeof(a) - 128, "%s", "-tail-one");
    memcpy(b, a, 128);
    snprintf(b + 128, sizeof(b) - 128, "%s", "-tail-two");
    e = outcome("r", "p", a, 200, false);
    record(st, &e);
    e = outcome("r", "p", b, 200, false);
    record(st, &e);
    v = view_of(&st, 1);
    /* Cut at the character boundary (125 bytes), so both names share one series. */
    assert_int_equal(v->n_rows, 1);
    model = v->rows[0]->key.model;
    assert_int_equal(strlen(model), 125);
    assert_int_equal(v->rows[0]->requests, 2);
    dp_stats_view_free(v);
    stats_free(st);
}

static void test_upstream_errors(void **state)
{
    struct dp_stats *st[2] = {stats_new(), stats_new()};
    struct dp_stats_view *v;
    char prov[32];
    (void)state;

    dp_stats_upstream_error(st[0], "openai", 503, "server_error");
    dp_stats_upstream_error(st[0], "openai", 503, "");
    dp_stats_upstream_error(st[1], "openai", 503, NULL);
    dp_stats_upstream_error(st[0], "openai", 0, "upstream_timeout");
    dp_stats_upstream_error(st[0], "anthropic", 429, "rate_limit_exceeded");
    /* An SSE error event after a 200: the failure, not the status. */
    dp_stats_upstream_error(st[1], "anthropic", 200, "overloaded_error");
    dp_stats_upstream_error(st[1], "anthropic", 0, NULL);
    v = view_of(st, 2);
    assert_int_equal(v->n_errs, 5);
    /* Sorted by provider, then code. */
    assert_string_equal(v->errs[0].provider, "anthropic");
    assert_string_equal(v->errs[0].code, "429");
    assert_string_equal(v->errs[1].code, "overloaded_error");
    assert_string_equal(v->errs[2].code, "upstream_error");
    assert_string_equal(v->errs[3].provider, "openai");
    assert_string_equal(v->errs[3].code, "503");
    assert_int_equal(v->errs[3].count, 3);
    assert_string_equal(v->errs[4].code, "upstream_timeout");
    dp_stats_view_free(v);

    /* Bounded: the rest goes to (_other, _other). */
    for (int i = 0; i < DP_STATS_MAX_ERRS + 10; i++) {
        snprintf(prov, sizeof(prov), "p%d", i);
        dp_stats_upstream_error(st[0], prov, 500, NULL);
    }
    v = view_of(st, 1);
    assert_int_equal(st[0]->n_errs, DP_STATS_MAX_ERRS);
    {
        uint64_t total = 0, other = 0;
        for (size_t i = 0; i < v->n_errs; i++) {
            total += v->errs[i].count;
            if (strcmp(v->errs[i].provider, DP_STATS_OTHER) == 0)
                other = v->errs[i].count;
        }
        assert_int_equal(total, 4 + DP_STATS_MAX_ERRS + 10);
        assert_int_equal(other, 3 + 10); /* 3 pairs were there before */
    }
    dp_stats_view_free(v);
    stats_free(st[0]);
    stats_free(st[1]);
}

static void test_merge_workers(void **state)
{
    struct dp_stats *st[3] = {stats_new(), stats_new(), stats_new()};
    struct dp_stats_view *v;
    const struct dp_stats_row *r;
    struct sy_hist *all = malloc(sizeof(*all));
    (void)state;

    assert_non_null(all);
    sy_hist_init(all);
    for (int i = 0; i < 300; i++) {
        struct dp_access_entry e = outcome("route", "prov", i % 3 ? "a" : "b", 200, i % 2);
        e.latency_us = 1000 + (uint64_t)i * 997;
        record(st[i % 3], &e);
        if (i % 3 && !(i % 2))
            sy_hist_record(all, e.latency_us);
    }
    v = view_of(st, 3);
    assert_int_equal(v->n_rows, 4);
    r = find(v, "route", "prov", "a", DP_STATUS_2XX, false);
    assert_non_null(r);
    assert_int_equal(r->requests, sy_hist_count(all));
    assert_int_equal(sy_hist_sum(&r->latency), sy_hist_sum(all));
    for (size_t i = 0; i < SY_HIST_BUCKETS; i++)
        assert_int_equal(r->latency.counts[i], all->counts[i]);
    dp_stats_view_free(v);
    free(all);
    for (int i = 0; i < 3; i++)
        stats_free(st[i]);
}

/* ---- a reader racing the writer ---- */

#define RACE_RECORDS 200000

struct race {
    struct dp_stats *st;
    _Atomic bool done;
};

static void *writer_main(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < RACE_RECORDS; i++) {
        /* A worker does a request's work between records; back to back, a reader could
         * lose every race and settle for a torn copy (counted in v->torn). */
        for (volatile int spin = 0; spin < 200; spin++)
            ;
        struct dp_access_entry e = outcome("r", "p", i % 4 ? "hot" : "cold", 200, i % 8 == 0);
        e.latency_us = 100 + (uint64_t)(i % 5000);
        record(r->st, &e);
    }
    atomic_store(&r->done, true);
    return NULL;
}

static void test_reader_races_writer(void **state)
{
    struct race r = {.st = stats_new()};
    pthread_t t;
    uint64_t last = 0, total = 0, torn = 0;
    int views = 0;
    struct dp_stats_view *v;
    (void)state;

    assert_int_equal(pthread_create(&t, NULL, writer_main, &r), 0);
    while (!atomic_load(&r.done) || views == 0) {
        uint64_t now = 0;
        v = view_of(&r.st, 1);
        for (size_t i = 0; i < v->n_rows && v->torn == 0; i++) {
            const struct dp_stats_row *row = v->rows[i];
            /* The seqlock: a copy never holds half a record. */
            assert_int_equal(row->requests, sy_hist_count(&row->latency));
            assert_int_equal(row->prompt_tokens, 10 * row->requests);
            assert_int_equal(row->cost_nusd, 1500 * row->requests);
            if (row->key.stream)
                assert_int_equal(sy_hist_count(&row->ttft), row->requests);
            now += row->requests;
        }
        if (v->torn == 0) {
            assert_true(now >= last); /* counters only grow */
            last = now;
        }
        views++;
        torn += v->torn;
        dp_stats_view_free(v);
    }
    pthread_join(t, NULL);
    print_message("%d views taken while the writer ran, %llu torn series copies\n", views,
                  (unsigned long long)torn);
    v = view_of(&r.st, 1);
    for (size_t i = 0; i < v->n_rows; i++)
        total += v->rows[i]->requests;
    assert_int_equal(total, RACE_RECORDS);
    assert_int_equal(v->in_flight, 0);
    dp_stats_view_free(v);
    stats_free(r.st);
}

/* ---- rendering ---- */

static const char *line_starting(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p && *p) {
        if (strncmp(p, prefix, n) == 0)
            return p;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static uint64_t value_of(const char *text, const char *prefix)
{
    const char *l = line_starting(text, prefix);
    if (!l)
        fail_msg("no line starting with %s", prefix);
    return strtoull(strchr(l + strlen(prefix), ' ') + 1, NULL, 10);
}

static void test_render(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_stats_view *v;
    struct dp_access_entry e;
    const struct dp_metrics_breaker br[] = {{"prov", "m\"x", 1}, {"prov", "ok", 0}};
    struct dp_metrics_info info = {
        .version = "1.2.3", .policy_version = 7, .breakers = br, .n_breakers = 2};
    const char *k = "{tenant=\"\",route=\"r\\\\1\",provider=\"p\\\"q\",model=\"m\\nn\",arm=\"\","
                    "status_class=\"2xx\",stream=\"false\"";
    char prefix[512];
    char *text;
    size_t len;
    uint64_t prev = 0;
    (void)state;

    for (int i = 0; i < 5; i++) {
        e = outcome("r\\1", "p\"q", "m\nn", 200, false);
        e.latency_us = (uint64_t)1000 << (i * 3); /* 1 ms, 8 ms, 64 ms, 512 ms, 4.096 s */
        record(st, &e);
    }
    dp_stats_upstream_error(st, "p\"q", 502, NULL);
    v = view_of(&st, 1);
    text = dp_metrics_render(v, &info, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "# TYPE switchyard_requests_total counter\n"));
    assert_non_null(strstr(text, "# HELP switchyard_requests_total "));
    assert_non_null(strstr(text, "# TYPE switchyard_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "switchyard_build_info{version=\"1.2.3\"} 1\n"));
    assert_non_null(strstr(text, "switchyard_policy_version 7\n"));
    assert_non_null(strstr(text, "switchyard_requests_in_flight 0\n"));
    assert_non_null(
        strstr(text, "switchyard_circuit_breaker_state{provider=\"prov\",model=\"m\\\"x\"} 1\n"));
    assert_non_null(
        strstr(text, "switchyard_upstream_errors_total{provider=\"p\\\"q\",code=\"502\"} 1\n"));
    snprintf(prefix, sizeof(prefix), "switchyard_requests_total%s}", k);
    assert_int_equal(value_of(text, prefix), 5);
    snprintf(prefix, sizeof(prefix), "switchyard_cost_usd_total%s} 0.000007500\n", k);
    assert_non_null(strstr(text, prefix));
    snprintf(prefix, sizeof(prefix), "switchyard_tokens_total%s,kind=\"cached\"} 20\n", k);
    assert_non_null(strstr(text, prefix));
    /* Buckets: a value of exactly 1000 us stands for [1000, 1001) us, above 0.001 s. */
    static const struct {
        const char *le;
        uint64_t want;
    } b[] = {{"0.001", 0}, {"0.002", 1}, {"0.008", 1}, {"0.016", 2}, {"0.064", 2},   {"0.128", 3},
             {"0.512", 3}, {"1.024", 4}, {"4.096", 4}, {"8.192", 5}, {"131.072", 5}, {"+Inf", 5}};
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        uint64_t got;
        snprintf(prefix, sizeof(prefix), "switchyard_request_duration_seconds_bucket%s,le=\"%s\"}",
                 k, b[i].le);
        got = value_of(text, prefix);
        assert_int_equal(got, b[i].want);
        assert_true(got >= prev);
        prev = got;
    }
    snprintf(prefix, sizeof(prefix), "switchyard_request_duration_seconds_count%s}", k);
    assert_int_equal(value_of(text, prefix), 5);
    snprintf(prefix, sizeof(prefix), "switchyard_request_duration_seconds_sum%s} 4.681000\n", k);
    assert_non_null(strstr(text, prefix));
    /* No TTFT series for a series without streams; the family is still declared. */
    assert_null(line_starting(text, "switchyard_time_to_first_token_seconds_bucket"));
    assert_non_null(strstr(text, "# TYPE switchyard_time_to_first_token_seconds histogram\n"));
    /* Every sample line belongs to a family declared above it. */
    for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
        if (*l != '#') {
            char fam[128];
            size_t n = strcspn(l, "{ ");
            snprintf(fam, sizeof(fam), "# TYPE %.*s", (int)n, l);
            if (!strstr(text, fam)) {
                /* _bucket/_sum/_count belong to their histogram. */
                char *suffix = strrchr(fam, '_');
                assert_non_null(suffix);
                *suffix = '\0';
                assert_non_null(strstr(text, fam));
            }
        }
        assert_non_null(strchr(l, '\n'));
    }
    free(text);
    dp_stats_view_free(v);
    stats_free(st);
}

/* Attribution: each tag and the user counted per tenant; at most DP_STATS_MAX_TAGS pairs of
 * which DP_STATS_MAX_USERS users; the rest in user:_other and (_other, _other); deltas. */
static void test_tags_bounded(void **state)
{
    struct dp_stats *st = stats_new();
    struct dp_stats_view *v, *prev;
    struct dp_access_entry e;
    char user[32], tag[32];
    uint64_t total = 0, users = 0, other = 0, seen = 0;
    (void)state;

    e = outcome("r", "p", "m", 200, false);
    e.tags = "a,b";
    e.user = "u1";
    e.cost_usd = 0.5;
    record(st, &e);
    prev = view_of(&st, 1);
    assert_int_equal(prev->n_tags, 3);
    for (int i = 0; i < 40; i++) { /* 40 users: 16 kept, the rest user:_other */
        snprintf(user, sizeof(user), "user-%d", i);
        e.tags = NULL;
        e.user = user;
        record(st, &e);
    }
    for (int i = 0; i < 100; i++) { /* 100 tags: fill the table, then the overflow pair */
        snprintf(tag, sizeof(tag), "t%d", i);
        e.tags = tag;
        e.user = NULL;
        record(st, &e);
    }
    v = view_of(&st, 1);
    assert_true(v->n_tags <= DP_STATS_MAX_TAGS + 2);
    for (size_t i = 0; i < v->n_tags; i++) {
        total += v->tags[i].requests;
        if (strncmp(v->tags[i].tag, "user:", 5) == 0 && strcmp(v->tags[i].tag, "user:_other") != 0)
            users++;
        if (strcmp(v->tags[i].tag, "user:_other") == 0)
            other += v->tags[i].requests;
        assert_true(v->tags[i].cost_nusd == v->tags[i].requests * 500000000ull);
    }
    assert_int_equal(total, 3 + 40 + 100); /* every tag of every request, none lost */
    assert_int_equal(users, DP_STATS_MAX_USERS);
    assert_int_equal(other, 40 + 1 - DP_STATS_MAX_USERS);
    for (size_t i = 0; i < v->n_tags; i++)
        if (strcmp(v->tags[i].tag, "a") == 0)
            seen = v->tags[i].requests;
    assert_int_equal(seen, 1);
    dp_stats_view_free(prev);
    dp_stats_view_free(v);
    stats_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_and_counters),
        cmocka_unit_test(test_reused_name_addresses),
        cmocka_unit_test(test_status_classes),
        cmocka_unit_test(test_cardinality_bound),
        cmocka_unit_test(test_long_names),
        cmocka_unit_test(test_upstream_errors),
        cmocka_unit_test(test_merge_workers),
        cmocka_unit_test(test_reader_races_writer),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_tags_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
