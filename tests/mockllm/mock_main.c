/* tests/mockllm/mock_main.c - switchyard-mockllm: command line, signals, event loop.
 *
 * A fast fake LLM provider for tests, demos and benchmarks (docs/mockllm.md). One thread,
 * one event loop; SIGTERM and SIGINT stop the loop and everything is freed before exit 0.
 */
#define SY_LOG_MODULE "mockllm"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mock_server.h"
#include "mock_state.h"
#include "sy_log.h"
#include "sy_util.h"

#define EXIT_USAGE 2

struct mock_options {
    char host[256];
    int port;
    bool have_listen;
    const char *name;
    enum sy_log_level level;
    struct mock_config defaults;
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: switchyard-mockllm --listen HOST:PORT [--name NAME] [--latency-ms N]\n"
            "                          [--ttft-ms N] [--chunk-delay-ms N]\n"
            "                          [--log-level debug|info|warn|error]\n"
            "A fake OpenAI-compatible provider; port 0 picks a free port. See docs/mockllm.md.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "switchyard-mockllm: <message>" and the usage to stderr. Returns -EINVAL. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("switchyard-mockllm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    usage(stderr);
    return -EINVAL;
}

static int parse_delay(const char *flag, const char *val, int *out)
{
    int64_t v;

    if (sy_parse_i64(val, 0, MOCK_MAX_DELAY_MS, &v) < 0)
        return usage_error("%s: expected milliseconds in [0, 3600000], got \"%s\"", flag, val);
    *out = (int)v;
    return 0;
}

/* Fills <o> from argv. Returns 0, 1 for --help, or -EINVAL after printing the problem. */
static int parse_args(int argc, char **argv, struct mock_options *o)
{
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *arg = argv[i], *val, *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0 || flen >= sizeof(flag))
            return usage_error("unknown flag %s", arg);
        memcpy(flag, arg, flen);
        flag[flen] = '\0';
        if (strcmp(flag, "--listen") != 0 && strcmp(flag, "--name") != 0 &&
            strcmp(flag, "--latency-ms") != 0 && strcmp(flag, "--ttft-ms") != 0 &&
            strcmp(flag, "--chunk-delay-ms") != 0 && strcmp(flag, "--log-level") != 0)
            return usage_error("unknown flag %s", flag);
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error("%s needs a value", flag);

        if (strcmp(flag, "--listen") == 0) {
            if (sy_parse_hostport(val, o->host, sizeof(o->host), &o->port) < 0)
                return usage_error("%s: expected HOST:PORT, got \"%s\"", flag, val);
            o->have_listen = true;
        } else if (strcmp(flag, "--name") == 0) {
            if (!*val)
                return usage_error("%s: expected a non-empty name", flag);
            o->name = val;
        } else if (strcmp(flag, "--latency-ms") == 0) {
            if (parse_delay(flag, val, &o->defaults.latency_ms) < 0)
                return -EINVAL;
        } else if (strcmp(flag, "--ttft-ms") == 0) {
            if (parse_delay(flag, val, &o->defaults.ttft_ms) < 0)
                return -EINVAL;
        } else if (strcmp(flag, "--chunk-delay-ms") == 0) {
            if (parse_delay(flag, val, &o->defaults.chunk_delay_ms) < 0)
                return -EINVAL;
        } else if (sy_log_parse_level(val, &o->level) < 0 || o->level == SY_LOG_OFF) {
            return usage_error("%s: expected debug, info, warn or error, got \"%s\"", flag, val);
        }
    }
    if (!o->have_listen)
        return usage_error("missing required flag --listen");
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;

    (void)what;
    sy_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    struct mock_options o = {
        .name = "mockllm",
        .level = SY_LOG_INFO,
        .defaults = {.status = 200, .fail_after_chunks = -1},
    };
    struct event *ev_term = NULL, *ev_int = NULL;
    struct mock_server *srv = NULL;
    struct event_base *base;
    int rc, port, status = EXIT_FAILURE;

    rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        if (rc > 0)
            usage(stdout);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    sy_log_set_level(o.level);
    /* A client that vanishes mid-write must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    if (!base) {
        sy_error("cannot create the event loop");
        return EXIT_FAILURE;
    }
    srv = mock_server_new(base, o.name, &o.defaults);
    if (!srv) {
        sy_error("cannot create the HTTP server");
        goto out_free_base;
    }
    rc = mock_server_listen(srv, o.host, o.port, &port);
    if (rc < 0) {
        sy_error("cannot listen on %s:%d: %s", o.host, o.port, strerror(-rc));
        goto out_free_server;
    }
    ev_term = evsignal_new(base, SIGTERM, on_signal, base);
    ev_int = evsignal_new(base, SIGINT, on_signal, base);
    if (!ev_term || !ev_int || event_add(ev_term, NULL) < 0 || event_add(ev_int, NULL) < 0) {
        sy_error("cannot install signal handlers");
        goto out_free_signals;
    }
    /* Tests parse this line, so it is written whatever the log level. */
    sy_log_write(SY_LOG_INFO, SY_LOG_MODULE, "%s listening on %s%s%s:%d", o.name,
                 strchr(o.host, ':') ? "[" : "", o.host, strchr(o.host, ':') ? "]" : "", port);
    event_base_dispatch(base);
    status = EXIT_SUCCESS;

out_free_signals:
    if (ev_term)
        event_free(ev_term);
    if (ev_int)
        event_free(ev_int);
out_free_server:
    mock_server_free(srv);
out_free_base:
    event_base_free(base);
    libevent_global_shutdown();
    return status;
}
