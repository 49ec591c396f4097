/* dataplane/dp_worker.h - one worker thread: event loop, HTTP server, upstream engine.
 *
 * A request lives on one worker from accept to last byte, so nothing on the request path
 * takes a lock. Workers share only the process context (dp_proxy): the snapshot holder
 * (lock-free reads, see dp_snapshot.h), the access log descriptor and atomic flags. Other
 * threads reach a worker only through dp_worker_stop() (event_active on its loop).
 */
#ifndef DP_WORKER_H
#define DP_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "dp_match.h"
#include "dp_snapshot.h"
#include "dp_stats.h"

struct dp_proxy;
struct sy_http_server;
struct dp_upstream;

struct dp_worker {
    int id;
    struct dp_proxy *proxy;
    struct event_base *base;
    struct sy_http_server *http;
    struct dp_upstream *up;
    struct dp_snapshot_cache snap;
    struct dp_match_scratch match_scratch; /* per-request matcher state, reused */
    struct dp_stats stats; /* written by this worker only; read by any worker's /metrics */
    struct event *stop_ev;
    struct event *drain_timer;
    struct event *tick; /* once a second: follow policy changes to the server limits */
    uint64_t rng;
    uint64_t limits_generation;
    int listen_fd;
    pthread_t thread;
    bool started;
};

/* Sets up <w> on its own event_base with the listening socket <fd> (taken). Main thread,
 * before dp_worker_start. Returns 0 or a negative errno. */
int dp_worker_init(struct dp_worker *w, struct dp_proxy *proxy, int id, int fd);
/* Runs the worker's loop on a new thread. */
int dp_worker_start(struct dp_worker *w);
/* Asks the worker to drain and stop (any thread). */
void dp_worker_stop(struct dp_worker *w);
/* Waits for the thread and frees everything. Main thread. */
void dp_worker_join(struct dp_worker *w);

/* Frees every worker's stats once no worker thread runs (any worker's /metrics, and the
 * telemetry thread, read all of them): after the last dp_worker_join and after
 * dp_telemetry_stop. Main thread. */
void dp_worker_stats_cleanup(struct dp_proxy *px);

/* The current snapshot as this worker sees it (borrowed; ref it to keep it). */
struct dp_snapshot *dp_worker_snapshot(struct dp_worker *w);

#endif
