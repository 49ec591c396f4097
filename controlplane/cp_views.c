/* controlplane/cp_views.c - GET /v1/stats, /v1/spend, /v1/health and /metrics. */
#include "cp_views.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cp_admin.h"
#include "cp_feedback.h"
#include "cp_peers.h"
#include "cp_policies.h"
#include "cp_reply.h"
#include "cp_spend.h"
#include "cp_stats.h"
#include "sy_http.h"
#include "sy_policy.h"
#include "sy_util.h"

static int64_t wall_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

/* GET only, and nothing below the path. */
static bool get_only(struct sy_http_req *req, const char *rest)
{
    if (rest[0]) {
        cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
        return false;
    }
    if (sy_http_req_method(req) != SY_HTTP_GET) {
        cp_reply_error(req, 405, "method_not_allowed", "use GET on %s", sy_http_req_path(req));
        return false;
    }
    return true;
}

/* ---- /v1/stats and /v1/health over every replica (cp_peers.h) ------------------------ */

/* Unpacking a peer's answer may allocate at most this much: a body of a few MiB could
 * otherwise describe millions of empty messages. */
#define UNPACK_BUDGET (64u * 1024 * 1024)

struct budget {
    size_t left;
};

static void *budget_alloc(void *data, size_t size)
{
    struct budget *b = data;
    size_t *p;

    if (size > b->left || size > SIZE_MAX - sizeof(size_t))
        return NULL;
    p = malloc(sizeof(size_t) + size);
    if (!p)
        return NULL;
    b->left -= size;
    *p = size;
    return p + 1;
}

static void budget_free(void *data, void *ptr)
{
    struct budget *b = data;
    size_t *p = ptr;

    if (!p)
        return;
    b->left += p[-1];
    free(p - 1);
}

/* Adds a packed StatsExport from replica <id> into <scratch>. NULL, or why it was not. */
static const char *merge_packed(struct cp_stats *scratch, const void *buf, size_t len,
                                const char *id, int64_t now)
{
    struct budget b = {.left = UNPACK_BUDGET};
    ProtobufCAllocator alloc = {.alloc = budget_alloc, .free = budget_free, .allocator_data = &b};
    Switchyard__V1__StatsExport *ex = switchyard__v1__stats_export__unpack(&alloc, len, buf);
    const char *why = NULL;

    if (!ex)
        return "the answer is not a StatsExport (or too large to read)";
    if (strcmp(ex->replica, id) != 0)
        why = "the answer comes from another replica (a stale registration)";
    else if (ex->n_slots > 60)
        why = "the answer has more slots than a window";
    else
        cp_stats_merge(scratch, ex, now);
    switchyard__v1__stats_export__free_unpacked(ex, &alloc);
    return why;
}

static cJSON *view_json(struct cp_views *v, struct cp_stats *st, bool health, enum cp_window w,
                        int64_t now)
{
    return health ? cp_stats_health_json(st, now)
                  : cp_stats_json(st, w, cp_policies_active_version(v->policies), now);
}

struct view_ctx {
    struct cp_views *v;
    bool health;
    enum cp_window w;
    int64_t now; /* when asked: every replica's window ends here */
};

/* cp_peers_build_fn: this replica's window alone, or merged with its peers' exports. */
static cJSON *build_view(void *arg, const struct cp_peer_reply *replies, const char **why, size_t n)
{
    const struct view_ctx *c = arg;
    const char *self;
    struct cp_stats *scratch;
    uint8_t *own;
    size_t len;
    cJSON *root;

    if (!replies)
        return view_json(c->v, c->v->stats, c->health, c->w, c->now);
    self = cp_peers_self(c->v->peers); /* replies come only with peers */
    scratch = cp_stats_new();
    own = cp_stats_export(c->v->stats, c->w, c->now, self, &len);
    merge_packed(scratch, own, len, self, c->now);
    free(own);
    for (size_t i = 0; i < n; i++) {
        if (!why[i])
            why[i] = merge_packed(scratch, replies[i].body, replies[i].len, replies[i].id, c->now);
    }
    root = view_json(c->v, scratch, c->health, c->w, c->now);
    cp_stats_free(scratch);
    return root;
}

/* Answers /v1/stats or /v1/health: for the fleet (every replica's proxies) unless
 * scope=replica asks for this replica's own. */
static void answer_view(struct cp_views *v, struct sy_http_req *req, bool health, enum cp_window w)
{
    struct view_ctx c = {.v = v, .health = health, .w = w, .now = wall_ms()};
    char path[64];

    snprintf(path, sizeof(path), "/v1/stats/export?window=%s", health ? "1m" : cp_window_name(w));
    cp_peers_answer(v->peers, req, path, build_view, &c, sizeof(c));
}

/* GET /v1/stats/export: this replica's window, for its peers to merge. */
static void handle_export(struct cp_views *v, struct sy_http_req *req, enum cp_window w)
{
    size_t len;
    uint8_t *buf =
        cp_stats_export(v->stats, w, wall_ms(), v->peers ? cp_peers_self(v->peers) : "", &len);

    sy_http_reply(req, 200, "application/x-protobuf", (const char *)buf, len);
    free(buf);
}

static void handle_stats(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_views *v = arg;
    char window[16] = "1m";
    bool export = strcmp(rest, "export") == 0;
    int w;

    if (!get_only(req, export ? "" : rest))
        return;
    if (cp_query_param(sy_http_req_query(req), "window", window, sizeof(window)) && !window[0])
        snprintf(window, sizeof(window), "1m");
    w = cp_window_parse(window);
    if (w < 0) {
        cp_reply_error(req, 400, "invalid_window", "window \"%.40s\" is not one of: 10s, 1m, 1h",
                       window);
        return;
    }
    if (export)
        handle_export(v, req, (enum cp_window)w);
    else
        answer_view(v, req, false, (enum cp_window)w);
}

static void handle_spend(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_views *v = arg;
    char period[16] = "", date[16] = "";
    struct sy_policy *pol;
    char *err = NULL;
    int status = 500;
    cJSON *root;

    if (!get_only(req, rest))
        return;
    cp_query_param(sy_http_req_query(req), "period", period, sizeof(period));
    cp_query_param(sy_http_req_query(req), "date", date, sizeof(date));
    pol = cp_policies_active_policy(v->policies, NULL);
    root = cp_spend_json(v->spend, period[0] ? period : NULL, date[0] ? date : NULL, wall_ms(), pol,
                         &status, &err);
    sy_policy_unref(pol);
    if (!root) {
        cp_reply_error(req, status, status == 400 ? "invalid_period" : "store_unavailable", "%s",
                       err ? err : "?");
        free(err);
        return;
    }
    cp_reply_json(req, 200, root);
}

static void handle_health(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_views *v = arg;

    if (!get_only(req, rest))
        return;
    answer_view(v, req, true, CP_WINDOW_1M);
}

static void handle_metrics(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_views *v = arg;
    struct cp_stats_counters c;
    uint64_t fb_ok = 0, fb_dup = 0, fb_bad = 0;
    size_t len;
    char *fleet, *text;

    if (!get_only(req, rest))
        return;
    cp_stats_counters(v->stats, &c);
    if (v->feedback)
        cp_feedback_counters(v->feedback, &fb_ok, &fb_dup, &fb_bad);
    fleet = cp_stats_metrics(v->stats, &len);
    text = sy_xasprintf(
        "%s"
        "# HELP switchyard_control_policy_version The active policy version.\n"
        "# TYPE switchyard_control_policy_version gauge\n"
        "switchyard_control_policy_version %" PRId64 "\n"
        "# HELP switchyard_control_proxies_connected Proxies streaming telemetry to this "
        "replica.\n"
        "# TYPE switchyard_control_proxies_connected gauge\n"
        "switchyard_control_proxies_connected %zu\n"
        "# HELP switchyard_control_telemetry_reports_total Telemetry reports applied.\n"
        "# TYPE switchyard_control_telemetry_reports_total counter\n"
        "switchyard_control_telemetry_reports_total %" PRIu64 "\n"
        "# HELP switchyard_control_telemetry_duplicates_total Reports received again and "
        "counted once.\n"
        "# TYPE switchyard_control_telemetry_duplicates_total counter\n"
        "switchyard_control_telemetry_duplicates_total %" PRIu64 "\n"
        "# HELP switchyard_control_telemetry_coalesced_intervals_total Intervals the proxies "
        "merged into later reports while their backlog was full.\n"
        "# TYPE switchyard_control_telemetry_coalesced_intervals_total counter\n"
        "switchyard_control_telemetry_coalesced_intervals_total %" PRIu64 "\n"
        "# HELP switchyard_control_feedback_total Feedback received, by outcome.\n"
        "# TYPE switchyard_control_feedback_total counter\n"
        "switchyard_control_feedback_total{outcome=\"accepted\"} %" PRIu64 "\n"
        "switchyard_control_feedback_total{outcome=\"duplicate\"} %" PRIu64 "\n"
        "switchyard_control_feedback_total{outcome=\"refused\"} %" PRIu64 "\n",
        fleet, cp_policies_active_version(v->policies), c.proxies_connected, c.reports,
        c.duplicates, c.coalesced_intervals, fb_ok, fb_dup, fb_bad);
    free(fleet);
    sy_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

int cp_views_register(struct cp_admin *a, struct cp_views *v)
{
    int rc = 0;

    rc |= cp_admin_add_route(a, "/v1/stats", handle_stats, v);
    rc |= cp_admin_add_route(a, "/v1/spend", handle_spend, v);
    rc |= cp_admin_add_route(a, "/v1/health", handle_health, v);
    rc |= cp_admin_add_route(a, "/metrics", handle_metrics, v);
    return rc < 0 ? -1 : 0;
}
