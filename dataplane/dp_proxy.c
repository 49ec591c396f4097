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
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>

#include "dp_control.h"
#include "dp_feedback.h"
#include "dp_telemetry.h"
#include "dp_worker.h"
#include "sy_log.h"
#include "sy_net.h"
#include "sy_reqid.h"
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

/* ---- request-id keys ------------------------------------------------------------- */

/* NULL when out of memory. */
static struct dp_fleet_key *key_new(const uint8_t *bytes, size_t len, bool from_fleet)
{
    struct dp_fleet_key *k = malloc(sizeof(*k) + len);

    if (!k)
        return NULL;
    k->sign = sy_reqid_key_new(bytes, len);
    if (!k->sign) {
        free(k);
        return NULL;
    }
    atomic_init(&k->refcount, 1);
    k->from_fleet = from_fleet;
    k->len = len;
    memcpy(k->bytes, bytes, len);
    return k;
}

static struct dp_fleet_key *key_ref(struct dp_fleet_key *k)
{
    if (k)
        atomic_fetch_add(&k->refcount, 1);
    return k;
}

void dp_fleet_key_unref(struct dp_fleet_key *k)
{
    if (!k || atomic_fetch_sub(&k->refcount, 1) != 1)
        return;
    sy_reqid_key_free(k->sign);
    OPENSSL_cleanse(k->bytes, k->len);
    free(k);
}

int dp_proxy_keys_init(struct dp_proxy *px)
{
    uint8_t rnd[DP_PROCESS_KEY_LEN];
    const char *env = px->opt.control_plane ? NULL : getenv(DP_FLEET_KEY_ENV);

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        sy_error("cannot draw a random key for request ids: %s", strerror(errno));
        return -EIO;
    }
    px->process_key = key_new(rnd, sizeof(rnd), false);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    if (!px->process_key) {
        sy_error("cannot prepare the key for request ids: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&px->key_lock, NULL);
    if (env && *env) {
        px->key = key_new((const uint8_t *)env, strlen(env), true);
        if (!px->key) {
            sy_error("cannot prepare the key for request ids: out of memory");
            dp_proxy_keys_cleanup(px);
            return -ENOMEM;
        }
        sy_info("feedback ids are signed with the key in $" DP_FLEET_KEY_ENV);
    } else {
        px->key = key_ref(px->process_key);
        sy_info("feedback ids are signed with a per-process key: feedback only works through "
                "this proxy%s",
                px->opt.control_plane ? " until the control plane sends a fleet key" : "");
    }
    return 0;
}

void dp_proxy_keys_cleanup(struct dp_proxy *px)
{
    if (!px->process_key)
        return;
    dp_fleet_key_unref(px->key);
    dp_fleet_key_unref(px->prev_key);
    dp_fleet_key_unref(px->process_key);
    px->key = px->prev_key = px->process_key = NULL;
    pthread_mutex_destroy(&px->key_lock);
}

bool dp_proxy_set_fleet_key(struct dp_proxy *px, const uint8_t *key, size_t len)
{
    struct dp_fleet_key *old = NULL, *nk;

    if (!px->process_key)
        return false;
    pthread_mutex_lock(&px->key_lock);
    if (len == 0 ? px->key == px->process_key
                 : px->key->from_fleet && px->key->len == len &&
                       CRYPTO_memcmp(px->key->bytes, key, len) == 0) {
        pthread_mutex_unlock(&px->key_lock);
        return false;
    }
    nk = len ? key_new(key, len, true) : key_ref(px->process_key);
    if (!nk) {
        pthread_mutex_unlock(&px->key_lock);
        sy_error("cannot take the control plane's fleet key: out of memory");
        return false;
    }
    old = px->prev_key;
    px->prev_key = px->key;
    px->key = nk;
    pthread_mutex_unlock(&px->key_lock);
    dp_fleet_key_unref(old);
    if (len)
        sy_info("feedback ids are now signed with the fleet key from the control plane");
    else
        sy_info("the control plane sent no fleet key: feedback ids are signed with a "
                "per-process key, so feedback only works through this proxy");
    return true;
}

struct dp_fleet_key *dp_proxy_fleet_keys(struct dp_proxy *px, struct dp_fleet_key **prev)
{
    struct dp_fleet_key *k;

    if (prev)
        *prev = NULL;
    if (!px->process_key)
        return NULL;
    pthread_mutex_lock(&px->key_lock);
    k = key_ref(px->key);
    if (prev)
        *prev = key_ref(px->prev_key);
    pthread_mutex_unlock(&px->key_lock);
    return k;
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
    if (dp_proxy_keys_init(&px) < 0)
        goto out_log;
    if (opt->control_plane)
        px.feedback_seen = dp_feedback_seen_new(DP_FEEDBACK_SEEN_MAX);
    if (opt->policy_path ? dp_proxy_reload(&px) < 0 : dp_control_load_state(&px) < 0)
        goto out_keys;

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
out_keys:
    dp_feedback_seen_free(px.feedback_seen);
    px.feedback_seen = NULL;
    dp_proxy_keys_cleanup(&px);
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
