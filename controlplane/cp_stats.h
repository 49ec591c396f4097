/* controlplane/cp_stats.h - the fleet's traffic as the control plane sees it: rolling windows
 * (GET /v1/stats, /v1/health), counters since start (GET /metrics), and each proxy's last
 * report (in flight, breaker states).
 *
 * Fed by cp_telemetry with each applied TelemetryReport. Windows are rings of per-second
 * slots (the last 60 s) and per-minute slots (the last 60 min), placed by the report's end
 * time; each slot keeps its series with sparse histograms, so memory follows the traffic,
 * not the number of buckets. A query merges the slots of its window into dense histograms
 * per group (totals, provider, model, route, tenant).
 *
 * Threads: cp_stats_apply on the gRPC thread, queries on the admin (main) thread; one mutex.
 */
#ifndef CP_STATS_H
#define CP_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/v1/telemetry.pb-c.h"

struct cp_stats;
struct cJSON;

struct cp_stats *cp_stats_new(void);
void cp_stats_free(struct cp_stats *st);

/* Adds one report (already deduplicated) received at <now_ms>. */
void cp_stats_apply(struct cp_stats *st, const Switchyard__V1__TelemetryReport *rep,
                    int64_t now_ms);

/* A proxy's telemetry stream opened or closed (for the proxies count). */
void cp_stats_node_connected(struct cp_stats *st, const char *node_id, bool connected);

/* Windows of GET /v1/stats. */
enum cp_window {
    CP_WINDOW_10S,
    CP_WINDOW_1M,
    CP_WINDOW_1H,
};

/* "10s", "1m", "1h" -> window; -1 for anything else. */
int cp_window_parse(const char *s);
/* The inverse. */
const char *cp_window_name(enum cp_window w);

/* GET /v1/stats (docs/admin-api.md) at <now_ms>. Caller frees with cJSON_Delete. */
struct cJSON *cp_stats_json(struct cp_stats *st, enum cp_window w, int64_t active_version,
                            int64_t now_ms);

/* GET /v1/health: per (provider, model) over the last minute. */
struct cJSON *cp_stats_health_json(struct cp_stats *st, int64_t now_ms);

/* Appends the fleet families of GET /metrics (Prometheus text) to a heap string (caller
 * frees); *len gets its length. */
char *cp_stats_metrics(struct cp_stats *st, size_t *len);

/* Fleet-wide views over several replicas (cp_peers): each proxy streams to one replica, so
 * the one answering adds its peers' windows to its own. cp_stats_export packs window <w>
 * at <now_ms> as a StatsExport (telemetry.proto; caller frees; *len its size).
 * cp_stats_merge adds an export into <st>, a scratch instance made for one answer: the
 * slots at their times, each proxy's state where it is newer than what <st> has. */
uint8_t *cp_stats_export(struct cp_stats *st, enum cp_window w, int64_t now_ms, const char *replica,
                         size_t *len);
void cp_stats_merge(struct cp_stats *st, const Switchyard__V1__StatsExport *ex, int64_t now_ms);

/* Traffic of the series matching a filter, since this replica started (counters) or over a
 * window: for experiment arms and learned routes. NULL filter fields match anything. */
struct cp_stats_filter {
    const char *route;
    const char *model;
    const char *arm; /* "experiment/arm" */
    bool ok_only;    /* only answers with a 2xx status (latency and cost of successes) */
};
struct cp_stats_summary {
    uint64_t requests, errors; /* errors: 5xx */
    uint64_t cost_nusd;
    double latency_p50_ms, latency_p95_ms; /* 0 when no sample */
};
/* <window> < 0: since start (all counters); else enum cp_window at <now_ms>. */
void cp_stats_summary(struct cp_stats *st, const struct cp_stats_filter *f, int window,
                      int64_t now_ms, struct cp_stats_summary *out);

/* Totals for the control plane's own metrics. */
struct cp_stats_counters {
    uint64_t reports;             /* reports applied */
    uint64_t duplicates;          /* reports dropped as already applied */
    uint64_t coalesced_intervals; /* latest value per proxy, summed */
    size_t proxies_connected;
};
void cp_stats_counters(struct cp_stats *st, struct cp_stats_counters *out);
void cp_stats_count_duplicate(struct cp_stats *st);

#endif
