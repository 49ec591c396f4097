/* dataplane/dp_telemetry.h - managed mode: the proxy's traffic, streamed to the control
 * plane once per interval (proto/switchyard/v1/telemetry.proto).
 *
 * One thread cuts an interval every --telemetry-interval-ms: it merges the workers' stats
 * (lock-free, dp_stats.h), takes the difference with the previous cut (dp_stats_view_diff)
 * and packs it, with the targets' health and the feedback received since, into a numbered
 * TelemetryReport. Reports wait in a bounded backlog until the control plane acknowledges
 * them (it does once they are applied and persisted); a new stream resends every
 * unacknowledged report, in order. When the backlog is full the thread stops cutting: the
 * next report covers the whole gap, so an outage costs time resolution, never counts.
 * On shutdown the last interval is cut after the workers have stopped and sent, with a
 * bounded wait for its acknowledgement.
 *
 * Threads: start/stop on the main thread; dp_telemetry_add_feedback from any thread; the
 * rest runs on the telemetry thread and the gRPC client's thread.
 */
#ifndef DP_TELEMETRY_H
#define DP_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

struct dp_proxy;
struct dp_telemetry;

#define DP_TELEMETRY_INTERVAL_MS 1000
#define DP_TELEMETRY_BACKLOG 600   /* reports kept unacknowledged: 10 minutes at 1 s */
#define DP_TELEMETRY_FINAL_MS 2000 /* how long shutdown waits for the last acknowledgement */

/* Starts the telemetry thread for <px> (managed mode). NULL on failure. */
struct dp_telemetry *dp_telemetry_start(struct dp_proxy *px, uint32_t interval_ms, size_t backlog);

/* Cuts the last interval, sends what is unacknowledged, waits up to DP_TELEMETRY_FINAL_MS
 * for the acknowledgement, closes the stream, joins the thread and frees. Call once no
 * worker records any more (after dp_worker_join) and before the workers' stats are freed.
 * Accepts NULL. */
void dp_telemetry_stop(struct dp_telemetry *t);

/* One piece of user feedback to forward (POST /v1/feedback), copied. Any thread. Returns 0,
 * or -ENOSPC when DP_TELEMETRY_FEEDBACK_MAX are already waiting for the next report. */
#define DP_TELEMETRY_FEEDBACK_MAX 10000
struct dp_feedback {
    const char *request_id;
    const char *thumbs; /* "up", "down" or NULL */
    double score;       /* < 0: none */
    const char *metric; /* may be NULL */
    const char *comment;
    int64_t received_unix_ms;
};
int dp_telemetry_add_feedback(struct dp_telemetry *t, const struct dp_feedback *fb);

#endif
