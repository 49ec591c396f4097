/* dataplane/main.c - switchyard-proxy: command line, then dp_proxy_run(). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_proxy.h"
#include "sy_log.h"
#include "sy_util.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: switchyard-proxy --listen HOST:PORT --policy FILE [options]\n"
            "       switchyard-proxy --listen HOST:PORT --control-plane HOST:PORT --node-id ID\n"
            "                        [--state-dir DIR] [options]\n"
            "\n"
            "  --listen HOST:PORT       address to serve on (port 0 picks a free port)\n"
            "  --policy FILE            standalone: routing policy, YAML or JSON (SIGHUP\n"
            "                           re-reads it)\n"
            "  --control-plane HOST:PORT managed: follow this control plane's gRPC address\n"
            "  --node-id ID             managed: this proxy's name in the fleet\n"
            "  --zone ZONE              managed: zone label shown in the fleet view\n"
            "  --state-dir DIR          managed: keep the last good policy here and serve it\n"
            "                           after a restart when the control plane is away\n"
            "  --telemetry-interval-ms N managed: traffic report period (default 1000)\n"
            "  --telemetry-backlog N    managed: reports kept while the control plane is\n"
            "                           away (default 600)\n"
            "  --workers N              worker threads (default: online cores)\n"
            "  --access-log PATH        JSON access log: a file, '-' for stdout (default), 'off'\n"
            "  --log-level LEVEL        debug, info (default), warn, error\n"
            "  --drain-timeout-ms N     on SIGTERM, time allowed for requests in flight\n"
            "                           (default 30000)\n"
            "  -h, --help               this text\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"policy", required_argument, NULL, 'p'},
        {"control-plane", required_argument, NULL, 'c'},
        {"node-id", required_argument, NULL, 'n'},
        {"zone", required_argument, NULL, 'z'},
        {"state-dir", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'},
        {"access-log", required_argument, NULL, 'a'},
        {"log-level", required_argument, NULL, 'v'},
        {"drain-timeout-ms", required_argument, NULL, 'd'},
        {"telemetry-interval-ms", required_argument, NULL, 'T'},
        {"telemetry-backlog", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dp_options opt = {
        .listen = NULL,
        .policy_path = NULL,
        .access_log = "-",
        .workers = 0,
        .drain_timeout_ms = 30000,
        .telemetry_interval_ms = 1000,
        .telemetry_backlog = 600,
    };
    bool telemetry_opts = false;
    enum sy_log_level level;
    int64_t n;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            opt.listen = optarg;
            break;
        case 'p':
            opt.policy_path = optarg;
            break;
        case 'c':
            opt.control_plane = optarg;
            break;
        case 'n':
            opt.node_id = optarg;
            break;
        case 'z':
            opt.zone = optarg;
            break;
        case 's':
            opt.state_dir = optarg;
            break;
        case 'w':
            if (sy_parse_i64(optarg, 1, 1024, &n) < 0) {
                fprintf(stderr, "switchyard-proxy: --workers %s: expected 1..1024\n", optarg);
                return 2;
            }
            opt.workers = (int)n;
            break;
        case 'a':
            opt.access_log = optarg;
            break;
        case 'v':
            if (sy_log_parse_level(optarg, &level) < 0) {
                fprintf(stderr,
                        "switchyard-proxy: --log-level %s: expected debug, info, warn "
                        "or error\n",
                        optarg);
                return 2;
            }
            sy_log_set_level(level);
            break;
        case 'd':
            if (sy_parse_i64(optarg, 0, 3600000, &n) < 0) {
                fprintf(stderr, "switchyard-proxy: --drain-timeout-ms %s: expected 0..3600000\n",
                        optarg);
                return 2;
            }
            opt.drain_timeout_ms = (uint32_t)n;
            break;
        case 'T':
            if (sy_parse_i64(optarg, 10, 3600000, &n) < 0) {
                fprintf(stderr,
                        "switchyard-proxy: --telemetry-interval-ms %s: expected 10..3600000\n",
                        optarg);
                return 2;
            }
            opt.telemetry_interval_ms = (uint32_t)n;
            telemetry_opts = true;
            break;
        case 'B':
            if (sy_parse_i64(optarg, 1, 1000000, &n) < 0) {
                fprintf(stderr, "switchyard-proxy: --telemetry-backlog %s: expected 1..1000000\n",
                        optarg);
                return 2;
            }
            opt.telemetry_backlog = (size_t)n;
            telemetry_opts = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "switchyard-proxy: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchyard-proxy: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!opt.listen || !opt.policy_path == !opt.control_plane) {
        fprintf(stderr, "switchyard-proxy: --listen and exactly one of --policy (standalone) "
                        "or --control-plane (managed) are required\n");
        usage(stderr);
        return 2;
    }
    if (opt.control_plane && !opt.node_id) {
        fprintf(stderr, "switchyard-proxy: --control-plane needs --node-id\n");
        return 2;
    }
    if (opt.policy_path && (opt.node_id || opt.state_dir || opt.zone || telemetry_opts)) {
        fprintf(stderr, "switchyard-proxy: --node-id, --zone, --state-dir and --telemetry-* "
                        "belong to managed mode (--control-plane)\n");
        return 2;
    }
    return dp_proxy_run(&opt);
}
