/* controlplane/cp_views.c - GET /v1/stats, /v1/spend, /v1/health and /metrics. */
#include "cp_views.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cp_admin.h"
#include "cp_feedback.h"
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

static void handle_stats(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_views *v = arg;
    char window[16] = "1m";
    int w;

    if (!get_only(req, rest))
        return;
    if (cp_query_param(sy_http_req_query(req), "window", window, sizeof(window)) && !window[0])
        snprintf(window, sizeof(window), "1m");
    w = cp_window_parse(window);
    if (w < 0) {
        cp_reply_error(req, 400, "invalid_window", "window \"%.40s\" is not one of: 10s, 1m, 1h",
                       window);
        return;
    }
    cp_reply_json(req, 200,
                  cp_stats_json(v->stats, (enum cp_window)w,
                                cp_policies_active_version(v->policies), wall_ms()));
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
    cp_reply_json(req, 200, cp_stats_health_json(v->stats, wall_ms()));
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
