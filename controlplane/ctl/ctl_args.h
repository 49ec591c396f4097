/* controlplane/ctl/ctl_args.h - switchyardctl's command line: global options, commands.
 *
 * Parsing is pure: it reads argv and the value of $SWITCHYARD_SERVER handed in by the
 * caller, touches no global state and prints nothing, so tests can drive it directly.
 * The parsed struct borrows strings from argv (which live as long as the process).
 * Single-threaded (the CLI has one thread).
 */
#ifndef CTL_ARGS_H
#define CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_VERSION "0.1.0"
#define CTL_DEFAULT_SERVER "http://127.0.0.1:9090"
#define CTL_DEFAULT_TIMEOUT_MS 10000
#define CTL_MAX_TIMEOUT_MS 3600000
#define CTL_SERVER_MAX 2048

/* Process exit codes; documented in docs/switchyardctl.md, scripts depend on them. */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_SERVER = 1,      /* the server answered an error, or an answer we can't use */
    CTL_EXIT_USAGE = 2,       /* bad command line, unreadable policy file */
    CTL_EXIT_UNREACHABLE = 3, /* no answer: refused, DNS, TLS, timeout */
};

enum ctl_cmd {
    CTL_CMD_HELP = 0,
    CTL_CMD_POLICY_PUSH,
    CTL_CMD_POLICY_LIST,
    CTL_CMD_POLICY_GET,
    CTL_CMD_POLICY_DIFF,
    CTL_CMD_POLICY_ACTIVATE,
    CTL_CMD_FLEET,
    CTL_CMD_VERSION,
    CTL_CMD_PRICING,
    CTL_CMD_EXPERIMENT_LIST,
    CTL_CMD_EXPERIMENT_STATUS,
    CTL_CMD_EXPERIMENT_PROMOTE,
    CTL_CMD_LEARN_STATUS,
    CTL_CMD_LEARN_FREEZE,
    CTL_CMD_LEARN_UNFREEZE,
    CTL_CMD_LEARN_ROLLBACK,
};

/* What `policy get` prints by default: a header and the source. */
enum ctl_get_part {
    CTL_GET_SUMMARY = 0,
    CTL_GET_SOURCE,
    CTL_GET_COMPILED,
};

/* A policy version on the command line: a number, or the word "active". */
struct ctl_vref {
    bool active;
    int64_t n; /* > 0 unless <active> */
};

struct ctl_args {
    char server[CTL_SERVER_MAX]; /* normalised: scheme present, no trailing '/' */
    bool json;
    long timeout_ms;
    enum ctl_cmd cmd;
    /* policy push */
    const char *file; /* "-" is stdin */
    const char *note; /* NULL when not given */
    bool no_activate;
    /* policy get / diff / activate */
    struct ctl_vref a;
    struct ctl_vref b;
    enum ctl_get_part part;
    /* experiment status / promote */
    const char *name;
    const char *arm;
    /* learn freeze / unfreeze / rollback: the route, NULL = every learned route */
    const char *route;
};

/* Parses argv[1..argc-1] into *out. <env_server> is $SWITCHYARD_SERVER (NULL or "" when
 * unset). Global options may appear before or after the command words; "--" ends options.
 * Returns 0 (out->cmd is CTL_CMD_HELP for -h/--help/help), or -EINVAL with *errmsg set to a
 * message naming the bad argument (caller frees). */
int ctl_args_parse(int argc, char **argv, const char *env_server, struct ctl_args *out,
                   char **errmsg);

/* Normalises a server URL into <buf> (<len> bytes): "host:port" gains "http://", trailing
 * slashes go. Returns 0, or -EINVAL when the scheme is not http(s), the host is missing or
 * the URL does not fit. */
int ctl_server_normalise(const char *url, char *buf, size_t len);

/* Writes the usage text to <out>. */
void ctl_usage(FILE *out);

#endif
