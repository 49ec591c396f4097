/* tests/unit/controlplane/test_stats_merge.c - fleet-wide views over replicas: the traffic of
 * two proxies applied to two cp_stats (two replicas), exported, packed, unpacked and merged
 * into a scratch instance, reads exactly as the same traffic applied to one cp_stats: the
 * /v1/stats JSON of every window and the /v1/health JSON are byte for byte the same. Also: a
 * proxy that moved between replicas counts once with its newest state, and a proxy not
 * heard from for over a minute is not exported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "cp_stats.h"
#include "sy_hist.h"

#define T0 1767225600000LL /* 2026-01-01 00:00 UTC */

/* A report and everything it points to. */
struct rep {
    Switchyard__V1__TelemetryReport r;
    Switchyard__V1__Node node;
    Switchyard__V1__SeriesDelta s[3], *sp[3];
    Switchyard__V1__Histogram lat[3], ttft[3];
    uint32_t idx[3][64];
    uint64_t cnt[3][64];
    uint32_t tidx[3][64];
    uint64_t tcnt[3][64];
    Switchyard__V1__UpstreamErrorDelta e, *ep[1];
    Switchyard__V1__TagDelta t, *tp[1];
    Switchyard__V1__TargetState ts[2], *tsp[2];
};

static void wire(Switchyard__V1__Histogram *w, uint32_t *idx, uint64_t *cnt, const uint64_t *vals,
                 size_t n)
{
    struct sy_hist *h = malloc(sizeof(*h));

    sy_hist_init(h);
    for (size_t i = 0; i < n; i++)
        sy_hist_record(h, vals[i]);
    switchyard__v1__histogram__init(w);
    w->n_index = w->n_count = sy_hist_to_sparse(h, idx, cnt, 64);
    w->index = idx;
    w->count = cnt;
    w->sum = sy_hist_sum(h);
    w->min = sy_hist_min(h);
    w->max = sy_hist_max(h);
    free(h);
}

/* A report of <node> at <end_ms>: three series whose numbers follow <k>, an upstream error,
 * a tag and two breaker states. */
static Switchyard__V1__TelemetryReport *mk(struct rep *x, const char *node, int64_t end_ms, int k)
{
    static const char *const models[3] = {"m-a", "m-b", "m-a"};
    static const char *const classes[3] = {"2xx", "2xx", "5xx"};

    memset(x, 0, sizeof(*x));
    switchyard__v1__telemetry_report__init(&x->r);
    switchyard__v1__node__init(&x->node);
    x->node.id = (char *)node;
    x->r.node = &x->node;
    x->r.boot_id = (char *)"boot";
    x->r.seq = (uint64_t)k;
    x->r.end_unix_ms = end_ms;
    x->r.in_flight = k % 3;
    x->r.policy_version = (char *)"7";
    for (int i = 0; i < 3; i++) {
        uint64_t lat[3] = {1000u + 97u * (unsigned)k + 13u * (unsigned)i,
                           25000u + 31u * (unsigned)k, 400000u + (unsigned)i};
        uint64_t ttft[2] = {800u + (unsigned)k, 9000u + (unsigned)i};
        Switchyard__V1__SeriesDelta *d = &x->s[i];

        switchyard__v1__series_delta__init(d);
        d->tenant = (char *)(k % 2 ? "acme" : "beta");
        d->route = (char *)"auto";
        d->provider = (char *)"mock";
        d->model = (char *)models[i];
        d->status_class = (char *)classes[i];
        d->stream = i == 1;
        d->requests = 3;
        d->prompt_tokens = 10u * (unsigned)k + (unsigned)i;
        d->completion_tokens = 5u + (unsigned)k;
        d->cost_nusd = 123456u * (unsigned)k + (unsigned)i;
        wire(&x->lat[i], x->idx[i], x->cnt[i], lat, 3);
        d->latency_us = &x->lat[i];
        if (d->stream) {
            wire(&x->ttft[i], x->tidx[i], x->tcnt[i], ttft, 2);
            d->ttft_us = &x->ttft[i];
        }
        x->sp[i] = d;
    }
    x->r.series = x->sp;
    x->r.n_series = 3;
    switchyard__v1__upstream_error_delta__init(&x->e);
    x->e.provider = (char *)"mock";
    x->e.code = (char *)"503";
    x->e.count = (uint64_t)k;
    x->ep[0] = &x->e;
    x->r.upstream_errors = x->ep;
    x->r.n_upstream_errors = 1;
    switchyard__v1__tag_delta__init(&x->t);
    x->t.tenant = (char *)"acme";
    x->t.tag = (char *)(k % 2 ? "search" : "checkout");
    x->t.requests = 2;
    x->t.prompt_tokens = 7;
    x->t.cost_nusd = 99;
    x->tp[0] = &x->t;
    x->r.tags = x->tp;
    x->r.n_tags = 1;
    for (int i = 0; i < 2; i++) {
        switchyard__v1__target_state__init(&x->ts[i]);
        x->ts[i].provider = (char *)"mock";
        x->ts[i].model = (char *)models[i];
        x->ts[i].state = (char *)(k % 4 == 3 && i == 1 ? "open" : "closed");
        x->ts[i].latency_ewma_us = 1000u * (unsigned)k;
        x->tsp[i] = &x->ts[i];
    }
    x->r.targets = x->tsp;
    x->r.n_targets = 2;
    return &x->r;
}

/* Exports <replica>'s window at <peer_now> (its clock) and merges it at <now> (ours). */
static void merge_at(struct cp_stats *scratch, struct cp_stats *replica, enum cp_window w,
                     int64_t peer_now, int64_t now)
{
    size_t len;
    uint8_t *buf = cp_stats_export(replica, w, peer_now, "r", &len);
    Switchyard__V1__StatsExport *ex = switchyard__v1__stats_export__unpack(NULL, len, buf);

    assert_non_null(ex);
    cp_stats_merge(scratch, ex, now);
    switchyard__v1__stats_export__free_unpacked(ex, NULL);
    free(buf);
}

static void merge_from(struct cp_stats *scratch, struct cp_stats *replica, enum cp_window w,
                       int64_t now)
{
    merge_at(scratch, replica, w, now, now);
}

static void assert_same_json(cJSON *a, cJSON *b)
{
    char *sa = cJSON_PrintUnformatted(a), *sb = cJSON_PrintUnformatted(b);

    if (strcmp(sa, sb) != 0)
        fail_msg("merged:\n%s\none replica:\n%s", sa, sb);
    free(sa);
    free(sb);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void test_two_replicas_read_as_one(void **state)
{
    struct cp_stats *ra = cp_stats_new(), *rb = cp_stats_new(), *one = cp_stats_new();
    int64_t now = T0 + 3 * 3600000LL; /* 03:00 */
    struct rep x;
    (void)state;

    /* 40 minutes of reports: px-a to replica a, px-b to replica b, the same to <one>; some
     * within the last 10 s, some within the minute, the rest within the hour. */
    for (int k = 1; k <= 40; k++) {
        int64_t at = now - (int64_t)(41 - k) * 60000 + 1;
        if (k > 30)
            at = now - (int64_t)(41 - k) * 5000; /* the last ten: every 5 s */
        cp_stats_apply(ra, mk(&x, "px-a", at, k), at);
        cp_stats_apply(one, mk(&x, "px-a", at, k), at);
        cp_stats_apply(rb, mk(&x, "px-b", at - 7, k + 100), at);
        cp_stats_apply(one, mk(&x, "px-b", at - 7, k + 100), at);
    }
    cp_stats_node_connected(ra, "px-a", true);
    cp_stats_node_connected(rb, "px-b", true);
    cp_stats_node_connected(one, "px-a", true);
    cp_stats_node_connected(one, "px-b", true);

    for (int w = CP_WINDOW_10S; w <= CP_WINDOW_1H; w++) {
        struct cp_stats *scratch = cp_stats_new();
        cJSON *merged, *ref;

        merge_from(scratch, ra, (enum cp_window)w, now);
        merge_from(scratch, rb, (enum cp_window)w, now);
        merged = cp_stats_json(scratch, (enum cp_window)w, 7, now);
        ref = cp_stats_json(one, (enum cp_window)w, 7, now);
        assert_true(cJSON_GetNumberValue(
                        cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "totals"), "requests")) > 0);
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(merged, "proxies")), 2);
        assert_same_json(merged, ref);
        if (w == CP_WINDOW_1M)
            assert_same_json(cp_stats_health_json(scratch, now), cp_stats_health_json(one, now));
        cp_stats_free(scratch);
    }
    cp_stats_free(ra);
    cp_stats_free(rb);
    cp_stats_free(one);
}

static void test_moved_and_stale_proxies(void **state)
{
    struct cp_stats *ra = cp_stats_new(), *rb = cp_stats_new(), *scratch = cp_stats_new();
    int64_t now = T0 + 3600000;
    struct rep x;
    cJSON *j, *targets, *t;
    (void)state;

    /* px-a streamed to a (breaker open), then moved to b (closed): b's word is newer. */
    cp_stats_apply(ra, mk(&x, "px-a", now - 20000, 3), now - 20000);
    cp_stats_apply(rb, mk(&x, "px-a", now - 1000, 4), now - 1000);
    cp_stats_node_connected(rb, "px-a", true);
    /* px-old: last heard 2 min ago by a, disconnected: not exported. */
    cp_stats_apply(ra, mk(&x, "px-old", now - 120000, 7), now - 120000);
    merge_from(scratch, ra, CP_WINDOW_1M, now);
    merge_from(scratch, rb, CP_WINDOW_1M, now);

    j = cp_stats_json(scratch, CP_WINDOW_1M, 1, now);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "proxies")), 1);
    /* Both reports' traffic counts (they were different intervals). */
    assert_int_equal(
        cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "requests")),
        18);
    cJSON_Delete(j);
    j = cp_stats_health_json(scratch, now);
    targets = cJSON_GetObjectItem(j, "targets");
    cJSON_ArrayForEach(t, targets)
    {
        cJSON *b = cJSON_GetObjectItem(t, "breaker");
        /* One proxy, in its newest state (k = 4: closed); px-old left out. */
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(b, "closed")), 1);
        assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(b, "open")), 0);
    }
    cJSON_Delete(j);
    cp_stats_free(ra);
    cp_stats_free(rb);
    cp_stats_free(scratch);
}

/* A peer whose clock runs ahead: its proxy's state must not push traffic of the window out
 * (placing the state in a future slot would recycle a slot still inside the window). */
static void test_peer_clock_ahead(void **state)
{
    struct cp_stats *ra = cp_stats_new(), *rb = cp_stats_new(), *scratch = cp_stats_new();
    int64_t now = T0 + 3600000;
    struct rep x;
    cJSON *j;
    (void)state;

    cp_stats_apply(ra, mk(&x, "px-a", now - 57000, 1), now - 57000);
    cp_stats_node_connected(ra, "px-a", true);
    cp_stats_apply(rb, mk(&x, "px-b", now + 3000, 2), now + 3000);
    cp_stats_node_connected(rb, "px-b", true);
    merge_from(scratch, ra, CP_WINDOW_1M, now);
    merge_at(scratch, rb, CP_WINDOW_1M, now + 3000, now);
    j = cp_stats_json(scratch, CP_WINDOW_1M, 1, now);
    /* px-a's 9 requests 57 s ago, and px-b's 9 (its slot folded into the current second). */
    assert_int_equal(
        cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "requests")),
        18);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "proxies")), 2);
    cJSON_Delete(j);
    cp_stats_free(ra);
    cp_stats_free(rb);
    cp_stats_free(scratch);
}

/* What a peer sends can be anything: an export whose slots carry a node is not applied as a
 * slot, and one with an empty node id creates no proxy. */
static void test_odd_exports(void **state)
{
    struct cp_stats *scratch = cp_stats_new();
    Switchyard__V1__StatsExport ex = SWITCHYARD__V1__STATS_EXPORT__INIT;
    Switchyard__V1__TelemetryReport *slots[1], *nodes[1];
    Switchyard__V1__Node empty = SWITCHYARD__V1__NODE__INIT;
    char *connected[1] = {(char *)"ghost"};
    int64_t now = T0 + 60000;
    struct rep x, y;
    cJSON *j;
    (void)state;

    slots[0] = mk(&x, "px-a", now, 1); /* has a node: refused as a slot */
    nodes[0] = mk(&y, "", now, 2);
    nodes[0]->node = &empty;
    empty.id = (char *)"";
    nodes[0]->n_series = 0;
    ex.slots = slots;
    ex.n_slots = 1;
    ex.nodes = nodes;
    ex.n_nodes = 1;
    ex.connected = connected;
    ex.n_connected = 1;
    cp_stats_merge(scratch, &ex, now);
    j = cp_stats_json(scratch, CP_WINDOW_1M, 1, now);
    assert_int_equal(
        cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "totals"), "requests")), 0);
    /* "ghost" is said to be connected: it counts, with no traffic and no state. */
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "proxies")), 1);
    cJSON_Delete(j);
    cp_stats_free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_replicas_read_as_one),
        cmocka_unit_test(test_moved_and_stale_proxies),
        cmocka_unit_test(test_peer_clock_ahead),
        cmocka_unit_test(test_odd_exports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
