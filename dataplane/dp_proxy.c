/* dataplane/dp_proxy.c - the proxy process: sockets, workers, policy loads, signals.
 *
 * Main thread only. Listening sockets are all bound here before any worker starts: the
 * first one picks the port (0 = ephemeral), the others join it with SO_REUSEPORT, and the
 * kernel spreads connections across workers.
 */
#define SY_LOG_MODULE "proxy"

#include "dp_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "dp_worker.h"
#include "sy_log.h"
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
    snap = dp_snapshot_new(pol, &err);
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

/* Binds one listening socket on <host>:<port> with SO_REUSEPORT. Returns the fd or -errno. */
static int listen_on(const char *host, int port, char *bound, size_t bound_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, rc;

    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        sy_error("cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out_free_ai;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
        rc = -errno;
        sy_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        goto out_free_ai;
    }
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN];
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            snprintf(bound, bound_len, "[%s]:%u", ip, ntohs(s6->sin6_port));
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            snprintf(bound, bound_len, "%s:%u", ip, ntohs(s4->sin_port));
        }
    }
    rc = fd;

out_free_ai:
    freeaddrinfo(res);
    return rc;
}

static int bound_port(const char *bound)
{
    const char *colon = strrchr(bound, ':');
    return colon ? (int)strtol(colon + 1, NULL, 10) : 0;
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

    memset(&px, 0, sizeof(px));
    px.opt = *opt;
    px.access_log_fd = -1;
    dp_snapshot_holder_init(&px.holder);
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
    if (dp_proxy_reload(&px) < 0)
        goto out_log;

    px.n_workers = opt->workers > 0 ? opt->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (px.n_workers < 1)
        px.n_workers = 1;
    px.workers = sy_xcalloc((size_t)px.n_workers, sizeof(*px.workers));
    for (int i = 0; i < px.n_workers; i++) {
        int fd = listen_on(host, i == 0 ? port : bound_port(px.bound), i == 0 ? px.bound : NULL,
                           sizeof(px.bound));
        if (fd < 0)
            goto out_workers;
        if (dp_worker_init(&px.workers[i], &px, i, fd) < 0) {
            sy_error("worker %d: initialisation failed", i);
            goto out_workers;
        }
    }
    for (int i = 0; i < px.n_workers; i++) {
        if (dp_worker_start(&px.workers[i]) < 0) {
            sy_error("worker %d: cannot start its thread", i);
            goto out_workers;
        }
    }
    sy_info("listening on %s (%d workers, policy version %lld)", px.bound, px.n_workers,
            (long long)px.loads);

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
    if (rc) {
        for (int i = 0; i < px.n_workers && px.workers; i++)
            dp_worker_stop(&px.workers[i]);
    }
    for (int i = 0; i < px.n_workers && px.workers; i++)
        dp_worker_join(&px.workers[i]);
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
    libevent_global_shutdown();
    return rc;
}
