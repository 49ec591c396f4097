/* dataplane/dp_worker.c - a worker thread's loop, its HTTP server and upstream engine. */
#define SY_LOG_MODULE "worker"

#include "dp_worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dp_api.h"
#include "dp_errors.h"
#include "dp_proxy.h"
#include "dp_upstream.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_util.h"

#define DP_MAX_HEADER_BYTES (64 * 1024)
#define DP_MAX_HEADERS 100

static void limits_from_policy(const struct dp_worker *w, const struct dp_snapshot *snap,
                               struct sy_http_limits *lim)
{
    const struct sy_server_limits *s = snap ? &snap->policy->server : NULL;
    uint32_t workers = (uint32_t)w->proxy->n_workers;

    lim->max_header_bytes = DP_MAX_HEADER_BYTES;
    lim->max_headers = DP_MAX_HEADERS;
    lim->max_body_bytes = s ? s->max_body_bytes : 4u * 1024 * 1024;
    lim->header_timeout_ms = s ? s->header_timeout_ms : 10000;
    lim->body_timeout_ms = s ? s->body_timeout_ms : 30000;
    lim->idle_timeout_ms = s ? s->idle_timeout_ms : 75000;
    /* The cap is per process; each worker takes its share (at least one connection). */
    lim->max_connections = s ? (s->max_connections + workers - 1) / workers : 10000;
    if (lim->max_connections == 0)
        lim->max_connections = 1;
}

struct dp_snapshot *dp_worker_snapshot(struct dp_worker *w)
{
    struct dp_snapshot *snap = dp_snapshot_cache_get(&w->snap, &w->proxy->holder);

    if (w->snap.generation != w->limits_generation && w->http) {
        /* A new policy: its server limits apply to requests that start from now on. */
        struct sy_http_limits lim;
        limits_from_policy(w, snap, &lim);
        sy_http_server_set_limits(w->http, &lim);
        w->limits_generation = w->snap.generation;
    }
    return snap;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    /* Follow policy changes even when idle, so limits apply to the next connection. */
    dp_worker_snapshot(arg);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dp_worker *w = arg;
    (void)fd;
    (void)what;
    sy_warn("worker %d: drain time is up; closing %zu connection(s) still open", w->id,
            sy_http_server_connections(w->http));
    event_base_loopexit(w->base, NULL);
}

static void on_drained(void *arg)
{
    struct dp_worker *w = arg;
    event_base_loopexit(w->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct dp_worker *w = arg;
    uint32_t ms = w->proxy->opt.drain_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    (void)fd;
    (void)what;

    evtimer_del(w->tick);
    evtimer_add(w->drain_timer, &tv);
    sy_http_server_drain(w->http, on_drained, w);
}

int dp_worker_init(struct dp_worker *w, struct dp_proxy *proxy, int id, int fd)
{
    struct sy_http_limits lim;
    struct timeval one_sec = {.tv_sec = 1, .tv_usec = 0};

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->proxy = proxy;
    w->listen_fd = fd;
    dp_stats_init(&w->stats);
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng))
        w->rng = sy_wall_us() ^ ((uint64_t)id << 32);
    w->rng |= 1; /* xorshift state must not be zero */
    dp_match_scratch_init(&w->match_scratch);
    w->base = event_base_new();
    if (!w->base) {
        close(fd);
        return -ENOMEM;
    }
    w->up = dp_upstream_new(w->base);
    limits_from_policy(w, dp_snapshot_cache_get(&w->snap, &proxy->holder), &lim);
    w->limits_generation = w->snap.generation;
    w->http = sy_http_server_new(w->base, fd, &lim, dp_api_handle, w, dp_error_body);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    if (!w->up || !w->http || !w->stop_ev || !w->drain_timer || !w->tick)
        return -ENOMEM;
    evtimer_add(w->tick, &one_sec);
    return 0;
}

static void *worker_main(void *arg)
{
    struct dp_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

int dp_worker_start(struct dp_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
        return -rc;
    w->started = true;
    return 0;
}

void dp_worker_stop(struct dp_worker *w)
{
    if (w->stop_ev)
        event_active(w->stop_ev, 0, 0);
}

void dp_worker_stats_cleanup(struct dp_proxy *px)
{
    for (int i = 0; px && i < px->n_workers; i++) {
        if (px->workers[i].started)
            return;
    }
    for (int i = 0; px && i < px->n_workers; i++)
        dp_stats_cleanup(&px->workers[i].stats);
}

void dp_worker_join(struct dp_worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
    /* The server first: aborting its requests cancels their upstream calls. */
    sy_http_server_free(w->http);
    w->http = NULL;
    dp_upstream_free(w->up);
    w->up = NULL;
    dp_snapshot_cache_cleanup(&w->snap);
    dp_match_scratch_cleanup(&w->match_scratch);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->tick)
        event_free(w->tick);
    w->stop_ev = w->drain_timer = w->tick = NULL;
    if (w->base)
        event_base_free(w->base);
    w->base = NULL;
}
