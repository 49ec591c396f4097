/* dataplane/dp_proxy.c - the proxy process: sockets, workers, policy loads, signals.
 *
 * Main thread only. Listening sockets are all bound here before any worker starts: the
 * first one picks the port (0 = ephemeral), the others join it with SO_REUSEPORT, and the
 * kernel spreads connections across workers.
 */
#define SY_LOG_MODULE "proxy"

#include "dp_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "dp_control.h"
#include "dp_telemetry.h"
#include "dp_worker.h"
#include "sy_log.h"
#include "sy_net.h"
#include "sy_util.h"

int dp_proxy_reload(struct dp_proxy *px)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_load_file(px->opt.policy_path, &err);
    struct dp_snapshot *snap;

    if (!pol) {
        sy_error("policy %s rejected; still serving the previous one:\n%s", px->opt.policy_path,
                 err ? err : "unknown error");
        free(err);
        return -EINVAL;
    }
    pol->version = px->loads + 1;
    snap = dp_snapshot_new(pol, &px->health, &err);
    if (!snap) {
        sy_error("policy %s cannot be applied on this node; still serving the previous one: %s",
                 px->opt.policy_path, err ? err : "unknown error");
        free(err);
        sy_policy_unref(pol);
        return -EINVAL;
    }
    px->loads++;
    sy_info("policy %s loaded: version %lld (sha256 %s): %zu providers, %zu models, %zu routes",
            px->opt.policy_path, (long long)pol->version, pol->hash, pol->n_providers,
            pol->n_models, pol->n_routes);
    dp_snapshot_publish(&px->holder, snap);
    return 0;
}

struct signal_ctx {
    struct dp_proxy *px;
    struct event_base *base;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct signal_ctx *ctx = arg;
    (void)what;

    if (sig == SIGHUP) {
        if (!ctx->px->opt.policy_path) {
            sy_info("SIGHUP ignored: in managed mode the control plane sends the policy");
            return;
        }
        sy_info("SIGHUP: reloading %s", ctx->px->opt.policy_path);
        dp_proxy_reload(ctx->px);
        return;
    }
    sy_info("%s: draining (up to %u ms), then exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            ctx->px->opt.drain_timeout_ms);
    atomic_store(&ctx->px->draining, true);
    for (int i = 0; i < ctx->px->n_workers; i++)
        dp_worker_stop(&ctx->px->workers[i]);
    event_base_loopbreak(ctx->base);
}

int dp_proxy_run(const struct dp_options *opt)
{
    struct dp_proxy px;
    char host[256];
    int port, rc = 1;
    struct event_base *base = NULL;
    struct event *sig_ev[3] = {NULL, NULL, NULL};
    const int sigs[3] = {SIGHUP, SIGTERM, SIGINT};
    struct signal_ctx sctx;
    struct dp_control *ctl = NULL;

    memset(&px, 0, sizeof(px));
    px.opt = *opt;
    px.access_log_fd = -1;
    dp_snapshot_holder_init(&px.holder);
    dp_health_table_init(&px.health);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sy_error("libcurl initialisation failed");
        goto out_holder;
    }

    if (sy_parse_hostport(opt->listen, host, sizeof(host), &port) < 0) {
        sy_error("--listen %s: expected HOST:PORT", opt->listen);
        goto out_curl;
    }
    if (strcmp(opt->access_log, "-") == 0) {
        px.access_log_fd = dup(STDOUT_FILENO);
    } else if (strcmp(opt->access_log, "off") != 0) {
        px.access_log_fd = open(opt->access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (px.access_log_fd < 0) {
            sy_error("--access-log %s: %s", opt->access_log, strerror(errno));
            goto out_curl;
        }
    }
    if (opt->policy_path ? dp_proxy_reload(&px) < 0 : dp_control_load_state(&px) < 0)
        goto out_log;

    px.n_workers = opt->workers > 0 ? opt->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (px.n_workers < 1)
        px.n_workers = 1;
    px.workers = sy_xcalloc((size_t)px.n_workers, sizeof(*px.workers));
    for (int i = 0; i < px.n_workers; i++) {
        int fd = sy_listen_tcp(host, i == 0 ? port : sy_bound_port(px.bound), true,
                               i == 0 ? px.bound : NULL, sizeof(px.bound));
        if (fd < 0)
            goto out_workers;
        if (dp_worker_init(&px.workers[i], &px, i, fd) < 0) {
            sy_error("worker %d: initialisation failed", i);
            goto out_workers;
        }
    }
    if (opt->control_plane) {
        px.telemetry = dp_telemetry_start(&px, opt->telemetry_interval_ms, opt->telemetry_backlog);
        if (!px.telemetry)
            goto out_workers;
    }
    for (int i = 0; i < px.n_workers; i++) {
        if (dp_worker_start(&px.workers[i]) < 0) {
            sy_error("worker %d: cannot start its thread", i);
            goto out_workers;
        }
    }
    if (opt->control_plane) {
        ctl = dp_control_start(&px);
        if (!ctl)
            goto out_workers;
    }
    sy_info("listening on %s (%d workers, %s)", px.bound, px.n_workers,
            opt->control_plane ? "managed mode" : "standalone mode");

    base = event_base_new();
    if (!base)
        goto out_workers;
    sctx.px = &px;
    sctx.base = base;
    for (int i = 0; i < 3; i++) {
        sig_ev[i] = evsignal_new(base, sigs[i], on_signal, &sctx);
        evsignal_add(sig_ev[i], NULL);
    }
    event_base_dispatch(base);
    rc = 0;

out_workers:
    dp_control_stop(ctl);
    if (rc) {
        for (int i = 0; i < px.n_workers && px.workers; i++)
            dp_worker_stop(&px.workers[i]);
    }
    for (int i = 0; i < px.n_workers && px.workers; i++)
        dp_worker_join(&px.workers[i]);
    /* The last interval is cut once nothing records any more, before the stats go. */
    dp_telemetry_stop(px.telemetry);
    px.telemetry = NULL;
    if (px.workers)
        dp_worker_stats_cleanup(&px);
    free(px.workers);
    for (int i = 0; i < 3; i++) {
        if (sig_ev[i])
            event_free(sig_ev[i]);
    }
    if (base)
        event_base_free(base);
    sy_info("stopped");
out_log:
    if (px.access_log_fd >= 0)
        close(px.access_log_fd);
out_curl:
    curl_global_cleanup();
out_holder:
    dp_snapshot_holder_cleanup(&px.holder);
    dp_health_table_cleanup(&px.health);
    libevent_global_shutdown();
    return rc;
}
