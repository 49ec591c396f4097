/* dataplane/dp_proxy.h - the proxy process: options, workers, policy, signals, drain.
 *
 * The main thread owns this context: it loads the policy, starts the workers, and turns
 * SIGHUP into a policy reload and SIGTERM/SIGINT into a bounded drain. Workers read the
 * context but write only its atomic fields.
 */
#ifndef DP_PROXY_H
#define DP_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_health.h"
#include "dp_snapshot.h"

struct dp_worker;
struct dp_telemetry;

struct dp_options {
    const char *listen;        /* HOST:PORT; port 0 picks one */
    const char *policy_path;   /* standalone mode */
    const char *control_plane; /* managed mode: HOST:PORT of the control plane's gRPC */
    const char *node_id;       /* managed mode: this proxy's name in the fleet */
    const char *zone;          /* managed mode: optional zone label */
    const char *state_dir;     /* managed mode: where the last good snapshot is kept */
    const char *access_log;    /* path, "-" for stdout, "off" */
    int workers;               /* 0 = online cores */
    uint32_t drain_timeout_ms;
    uint32_t telemetry_interval_ms; /* managed mode */
    size_t telemetry_backlog;
};

struct dp_proxy {
    struct dp_options opt;
    struct dp_snapshot_holder holder;
    struct dp_health_table health; /* per target, shared by all workers and snapshots */
    int access_log_fd;             /* -1 when off */
    atomic_bool draining;
    atomic_int live_workers;
    int64_t loads; /* policy versions loaded from the file (main thread) */
    struct dp_worker *workers;
    int n_workers;
    char bound[80];                 /* the address actually listened on */
    struct dp_telemetry *telemetry; /* managed mode; set before the workers start */
};

/* Runs the proxy until it is told to stop. Returns the process exit code. */
int dp_proxy_run(const struct dp_options *opt);

/* Loads and publishes the policy file; on failure the current policy stays. Main thread.
 * Returns 0 or a negative errno (the reason is logged). */
int dp_proxy_reload(struct dp_proxy *px);

#endif
