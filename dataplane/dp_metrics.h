/* dataplane/dp_metrics.h - GET /metrics: the process's stats in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * Any worker answers for the whole process: it merges every worker's dp_stats into a view
 * (lock-free, see dp_stats.h), reads the breaker state of each policy model's target from
 * the process-wide health table, and renders. Not access-logged, like the probes.
 * docs/operations.md lists every metric.
 */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dp_stats_view;
struct dp_worker;
struct sy_http_req;

/* The exposed `le` bounds of the latency histograms: 1 ms * 2^i, i = 0..17 (1 ms .. 131 s).
 * Each is a sy_hist bucket boundary, so every `_bucket` count is exact. */
#define DP_METRICS_LE_COUNT 18

/* One circuit breaker, as rendered. */
struct dp_metrics_breaker {
    const char *provider;
    const char *model;
    int state; /* enum dp_breaker_state: 0 closed, 1 open, 2 half-open */
};

/* What the exposition shows besides the traffic stats. */
struct dp_metrics_info {
    const char *version;    /* build version */
    int64_t policy_version; /* 0 when no policy is loaded */
    const struct dp_metrics_breaker *breakers;
    size_t n_breakers;
};

/* Renders <v> (finished, see dp_stats_view_finish) and <info> as Prometheus text. Returns
 * a heap string (caller frees) of *len bytes, or NULL when out of memory. Any thread. */
char *dp_metrics_render(const struct dp_stats_view *v, const struct dp_metrics_info *info,
                        size_t *len);

struct dp_proxy;

/* Merges every worker's stats into a finished view (caller frees with dp_stats_view_free);
 * NULL when out of memory. Any thread, while the workers' stats exist. */
struct dp_stats_view *dp_metrics_collect(struct dp_proxy *px);

/* Answers GET/HEAD /metrics for the whole process on worker <w>. Worker thread. */
void dp_metrics_handle(struct dp_worker *w, struct sy_http_req *req);

#endif
