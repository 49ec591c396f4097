/* controlplane/main.c - switchyard-control: wires the store, policy versions, the
 * discovery service (gRPC) and the admin API (HTTP), then runs until SIGTERM/SIGINT.
 *
 * Threads: main (admin API and signals, one libevent loop), the gRPC completion-queue
 * thread (policy streams), the store's watch thread (active-version changes), the learner's
 * thread (learned routes, controlplane/learn/cp_learner.h).
 */
#define SY_LOG_MODULE "control"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "cp_admin.h"
#include "cp_discovery.h"
#include "cp_experiments.h"
#include "cp_feedback.h"
#include "cp_fleet.h"
#include "cp_learner.h"
#include "cp_peers.h"
#include "cp_policies.h"
#include "cp_pricing.h"
#include "cp_secrets.h"
#include "cp_spend.h"
#include "cp_stats.h"
#include "cp_store.h"
#include "cp_telemetry.h"
#include "cp_views.h"
#include "sy_grpc.h"
#include "sy_log.h"
#include "sy_net.h"
#include "sy_policy.h"
#include "sy_util.h"

struct cp_options {
    const char *grpc_listen;
    const char *admin_listen;
    const char *store;
    const char *etcd_prefix;
    const char *bootstrap;
    const char *id;
    const char *pricing;         /* --pricing FILE|URL, or NULL */
    unsigned pricing_refresh_s;  /* --pricing-refresh */
    const char *advertise_admin; /* --advertise-admin URL, or NULL */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: switchyard-control [options]\n"
                 "\n"
                 "  --grpc-listen HOST:PORT   policy distribution for proxies (default "
                 "127.0.0.1:9901)\n"
                 "  --admin-listen HOST:PORT  admin HTTP/JSON API (default 127.0.0.1:9090)\n"
                 "  --store SPEC              file:DIR (default file:./switchyard-data) or\n"
                 "                            etcd:http://HOST:PORT[,http://HOST:PORT...]\n"
                 "  --etcd-prefix PREFIX      key prefix in etcd (default /switchyard)\n"
                 "  --bootstrap-policy FILE   pushed as the first version when none is active\n"
                 "  --id NAME                 this replica's name (default HOSTNAME-PID)\n"
                 "  --advertise-admin URL     how the other replicas reach this admin API\n"
                 "                            (default http://ADDRESS:PORT of --admin-listen\n"
                 "                            unless it is a wildcard address)\n"
                 "  --pricing FILE|URL        pricing catalogue applied to the active policy\n"
                 "                            (docs/pricing.md); URL: http:// or https://\n"
                 "  --pricing-refresh SECONDS how often the catalogue is read again (default "
                 "300)\n"
                 "  --log-level LEVEL         debug, info (default), warn, error\n"
                 "  -h, --help                this text\n");
}

/* Automatic promotions of experiments follow the learner's leadership: one replica acts. */
static bool leads(void *arg)
{
    return cp_learner_is_leader(arg);
}

static void on_active(void *arg, struct cp_active *a)
{
    cp_discovery_set_active(arg, a);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    sy_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(arg);
}

/* The admin URL the other replicas use: --advertise-admin, else the bound address unless it
 * is a wildcard (then "": not reachable by a known address). */
static void advertise_url(const struct cp_options *opt, const char *bound, char *out, size_t cap)
{
    size_t n;

    if (opt->advertise_admin) {
        const char *host = strstr(opt->advertise_admin, "://") + 3;
        size_t hl = strcspn(host, "/"); /* the authority */
        const char *colon = memrchr(host, ':', hl);
        size_t colons = 0;

        for (size_t i = 0; i < hl; i++)
            colons += host[i] == ':';
        /* An IPv6 address from the environment (http://$(POD_IP):9090) needs brackets: an
         * authority without brackets or user info, with several colons, ending in :PORT. */
        if (host[0] != '[' && !memchr(host, '@', hl) && colons >= 2 && colon &&
            (size_t)(colon - host) + 1 < hl &&
            strspn(colon + 1, "0123456789") == hl - (size_t)(colon - host) - 1)
            snprintf(out, cap, "%.*s[%.*s]%s", (int)(host - opt->advertise_admin),
                     opt->advertise_admin, (int)(colon - host), host, colon);
        else
            snprintf(out, cap, "%s", opt->advertise_admin);
        n = strlen(out);
        while (n > 0 && out[n - 1] == '/')
            out[--n] = '\0';
        return;
    }
    if (strncmp(bound, "0.0.0.0:", 8) == 0 || strncmp(bound, "[::]:", 5) == 0)
        out[0] = '\0';
    else
        snprintf(out, cap, "http://%s", bound);
}

static int bootstrap(struct cp_policies *ps, const char *path)
{
    char *err = NULL, *note;
    struct sy_policy *probe;
    FILE *f;
    char *buf;
    long len;
    bool activated;
    int64_t v;

    if (cp_policies_active_version(ps) > 0)
        return 0;
    /* Reuse the compiler's file reader for its error messages; then push the bytes. */
    probe = sy_policy_load_file(path, &err);
    if (!probe) {
        sy_error("--bootstrap-policy %s:\n%s", path, err ? err : "?");
        free(err);
        return -EINVAL;
    }
    sy_policy_unref(probe);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
        sy_error("--bootstrap-policy %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -EIO;
    }
    buf = sy_xmalloc((size_t)len + 1);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        sy_error("--bootstrap-policy %s: short read", path);
        fclose(f);
        free(buf);
        return -EIO;
    }
    fclose(f);
    note = sy_xasprintf("bootstrap from %s", path);
    v = cp_policies_push(ps, buf, (size_t)len, note, true, &activated, &err);
    free(note);
    free(buf);
    if (v < 0) {
        sy_error("--bootstrap-policy %s: %s", path, err ? err : "?");
        free(err);
        return (int)v;
    }
    sy_info("bootstrap policy %s stored as version %lld", path, (long long)v);
    return 0;
}

static int run(const struct cp_options *opt)
{
    char host[256], admin_bound[80], id[128];
    int port, grpc_port = 0, admin_fd = -1, rc = 1;
    char *err = NULL;
    struct cp_store *store = NULL;
    struct cp_discovery *disc = NULL;
    struct cp_policies *ps = NULL;
    struct sy_grpc_server *grpc = NULL;
    struct cp_admin *admin = NULL;
    struct cp_stats *stats = NULL;
    struct cp_spend *spend = NULL;
    struct cp_telemetry *telemetry = NULL;
    struct cp_views views;
    struct cp_feedback *feedback = NULL;
    struct cp_experiments *experiments = NULL;
    uint8_t fleet_key[CP_FLEET_KEY_LEN];
    struct cp_pricing *pricing = NULL;
    struct cp_learner *learner = NULL;
    struct cp_peers *peers = NULL;
    struct cp_fleet fleet;
    char advertise[300];
    struct event_base *base = NULL;
    struct event *sig_term = NULL, *sig_int = NULL;

    if (opt->id) {
        snprintf(id, sizeof(id), "%s", opt->id);
    } else {
        char hn[64] = "cp";
        gethostname(hn, sizeof(hn) - 1);
        snprintf(id, sizeof(id), "%s-%d", hn, (int)getpid());
    }
    if (sy_parse_hostport(opt->admin_listen, host, sizeof(host), &port) < 0) {
        sy_error("--admin-listen %s: expected HOST:PORT", opt->admin_listen);
        return 2;
    }
    if (sy_parse_hostport(opt->grpc_listen, host, sizeof(host), &grpc_port) < 0) {
        sy_error("--grpc-listen %s: expected HOST:PORT", opt->grpc_listen);
        return 2;
    }

    store = cp_store_open(opt->store, opt->etcd_prefix, &err);
    if (!store) {
        sy_error("cannot open the store: %s", err ? err : "?");
        goto out;
    }
    disc = cp_discovery_new(id);
    if (cp_fleet_key_load(store, fleet_key, &err) < 0) {
        sy_error("fleet key: %s", err ? err : "?");
        goto out;
    }
    cp_discovery_set_fleet_key(disc, fleet_key, sizeof(fleet_key));
    feedback = cp_feedback_new(store, fleet_key, sizeof(fleet_key));
    if (!feedback) {
        sy_error("cannot prepare the fleet key");
        goto out;
    }
    ps = cp_policies_new(store, on_active, disc, &err);
    if (!ps) {
        sy_error("%s", err ? err : "cannot load policy versions");
        goto out;
    }
    if (opt->bootstrap && bootstrap(ps, opt->bootstrap) < 0)
        goto out;

    grpc = sy_grpc_server_new(opt->grpc_listen, &grpc_port, &err);
    if (!grpc) {
        sy_error("cannot serve gRPC on %s: %s", opt->grpc_listen, err ? err : "?");
        goto out;
    }
    stats = cp_stats_new();
    spend = cp_spend_new(store);
    telemetry = cp_telemetry_new(stats, spend);
    if (!telemetry)
        goto out;
    cp_telemetry_set_feedback(telemetry, cp_feedback_from_telemetry, feedback);
    if (cp_discovery_register(disc, grpc) < 0 || cp_telemetry_register(telemetry, grpc) < 0 ||
        sy_grpc_server_start(grpc) < 0) {
        sy_error("cannot start the gRPC server");
        goto out;
    }

    sy_parse_hostport(opt->admin_listen, host, sizeof(host), &port);
    admin_fd = sy_listen_tcp(host, port, false, admin_bound, sizeof(admin_bound));
    if (admin_fd < 0)
        goto out;
    base = event_base_new();
    if (!base)
        goto out;
    struct cp_admin_deps deps = {.policies = ps, .discovery = disc, .store = store, .cp_id = id};
    admin = cp_admin_new(base, admin_fd, &deps);
    admin_fd = -1;
    if (!admin)
        goto out;
    advertise_url(opt, admin_bound, advertise, sizeof(advertise));
    peers = cp_peers_new(base, store, id, advertise);
    if (!peers || cp_peers_start(peers) < 0) {
        sy_error("cannot start the replica registry");
        goto out;
    }
    if (store->ops->shared && !advertise[0])
        sy_warn("--admin-listen %s is a wildcard address and --advertise-admin is not set: the "
                "other replicas' /v1/stats, /v1/health and /v1/fleet will not include this one's "
                "proxies",
                opt->admin_listen);
    views = (struct cp_views){
        .stats = stats, .spend = spend, .policies = ps, .feedback = feedback, .peers = peers};
    fleet = (struct cp_fleet){.disc = disc, .peers = peers};
    if (cp_views_register(admin, &views) < 0 || cp_fleet_register(admin, &fleet) < 0 ||
        cp_admin_add_route(admin, "/v1/feedback", cp_feedback_on_admin, feedback) < 0)
        goto out;
    experiments = cp_experiments_new(ps, feedback, stats, store, base);
    if (cp_experiments_register(experiments, admin) < 0)
        goto out;
    if (opt->pricing) {
        pricing = cp_pricing_new(opt->pricing, opt->pricing_refresh_s, ps);
        if (!pricing || cp_pricing_start(pricing) < 0) {
            sy_error("--pricing %s: cannot start the catalogue thread", opt->pricing);
            goto out;
        }
    }
    /* Registered without --pricing too: it answers 404 pricing_not_configured then. */
    cp_admin_add_route(admin, "/v1/pricing", cp_pricing_on_admin, pricing);
    learner = cp_learner_new(&(struct cp_learner_deps){
        .policies = ps, .feedback = feedback, .stats = stats, .store = store, .id = id});
    if (cp_learner_register(learner, admin) < 0 || cp_learner_start(learner) < 0) {
        sy_error("cannot start the learner");
        goto out;
    }
    cp_experiments_set_leader(experiments, leads, learner);
    sig_term = evsignal_new(base, SIGTERM, on_signal, base);
    sig_int = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(sig_term, NULL);
    evsignal_add(sig_int, NULL);

    sy_parse_hostport(opt->grpc_listen, host, sizeof(host), &port);
    sy_info("control plane %s: store %s, active version %lld", id, store->ops->name,
            (long long)cp_policies_active_version(ps));
    sy_info("grpc listening on %s:%d", host, grpc_port);
    sy_info("admin listening on %s", admin_bound);
    event_base_dispatch(base);
    rc = 0;

out:
    free(err);
    /* Order: no new admin requests, no more streams, no more watch callbacks, then state. */
    cp_peers_withdraw(peers); /* the others stop asking before this one stops answering */
    cp_admin_free(admin);
    cp_peers_free(peers);     /* withdraws the registration; waits for requests to peers */
    cp_learner_free(learner); /* resigns the leadership; before the state it reads */
    cp_experiments_free(experiments);
    cp_pricing_free(pricing); /* before the policies and the store it pushes to */
    if (admin_fd >= 0)
        close(admin_fd);
    sy_grpc_server_free(grpc);
    cp_telemetry_free(telemetry); /* last flush of the spend ledgers */
    cp_spend_free(spend);
    cp_stats_free(stats);
    cp_feedback_free(feedback);
    cp_store_free(store);
    cp_policies_free(ps);
    cp_discovery_free(disc);
    if (sig_term)
        event_free(sig_term);
    if (sig_int)
        event_free(sig_int);
    if (base)
        event_base_free(base);
    sy_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"grpc-listen", required_argument, NULL, 'g'},
        {"admin-listen", required_argument, NULL, 'a'},
        {"store", required_argument, NULL, 's'},
        {"etcd-prefix", required_argument, NULL, 'e'},
        {"bootstrap-policy", required_argument, NULL, 'b'},
        {"id", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'v'},
        {"pricing", required_argument, NULL, 'p'},
        {"pricing-refresh", required_argument, NULL, 'r'},
        {"advertise-admin", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cp_options opt = {
        .grpc_listen = "127.0.0.1:9901",
        .admin_listen = "127.0.0.1:9090",
        .store = "file:./switchyard-data",
        .etcd_prefix = "/switchyard",
        .pricing_refresh_s = CP_PRICING_DEFAULT_REFRESH_S,
    };
    enum sy_log_level level;
    int64_t n;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            opt.grpc_listen = optarg;
            break;
        case 'a':
            opt.admin_listen = optarg;
            break;
        case 's':
            opt.store = optarg;
            break;
        case 'e':
            opt.etcd_prefix = optarg;
            break;
        case 'b':
            opt.bootstrap = optarg;
            break;
        case 'i':
            opt.id = optarg;
            break;
        case 'p':
            if (!*optarg) {
                fprintf(stderr, "switchyard-control: --pricing needs a file or an http(s) URL\n");
                return 2;
            }
            opt.pricing = optarg;
            break;
        case 'r':
            if (sy_parse_i64(optarg, 1, CP_PRICING_MAX_REFRESH_S, &n) < 0) {
                fprintf(stderr,
                        "switchyard-control: --pricing-refresh %s: expected whole seconds from 1 "
                        "to %d\n",
                        optarg, CP_PRICING_MAX_REFRESH_S);
                return 2;
            }
            opt.pricing_refresh_s = (unsigned)n;
            break;
        case 'A':
            if ((strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) ||
                strlen(optarg) > 256 || strchr(optarg, '?') || strchr(optarg, ' ')) {
                fprintf(stderr,
                        "switchyard-control: --advertise-admin %s: expected an http:// or "
                        "https:// URL (at most 256 bytes, no query)\n",
                        optarg);
                return 2;
            }
            opt.advertise_admin = optarg;
            break;
        case 'v':
            if (sy_log_parse_level(optarg, &level) < 0) {
                fprintf(stderr,
                        "switchyard-control: --log-level %s: expected debug, info, "
                        "warn or error\n",
                        optarg);
                return 2;
            }
            sy_log_set_level(level);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "switchyard-control: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchyard-control: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run(&opt);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
