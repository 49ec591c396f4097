/* controlplane/ctl/ctl_args.c - switchyardctl's command line: global options, commands.
 *
 * A hand-written parser rather than getopt_long: operators put --json and --server after
 * the command as often as before it, and every error must name the argument that was
 * wrong in words that say what was expected. Pure; see ctl_args.h.
 */
#include "ctl_args.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

#define CTL_MAX_WORDS 8

void ctl_usage(FILE *out)
{
    fprintf(out,
            "usage: switchyardctl [--server URL] [--json] [--timeout-ms N] <command>\n"
            "\n"
            "commands:\n"
            "  policy push FILE [--note TEXT] [--no-activate]\n"
            "                             store FILE (YAML or JSON; '-' for stdin) as a new\n"
            "                             version and, unless --no-activate, activate it\n"
            "  policy list                every stored version, newest first\n"
            "  policy get N|active [--source | --compiled]\n"
            "                             one version: header and source (default), just the\n"
            "                             source, or the compiled policy as JSON\n"
            "  policy diff A B            unified diff of two compiled versions (A, B: numbers\n"
            "                             or 'active')\n"
            "  policy activate N          make version N live again (a rollback creates a new\n"
            "                             version that points back to N)\n"
            "  fleet                      connected proxies and the version each one runs\n"
            "  pricing                    the pricing catalogue: source, last load or error, "
            "prices\n"
            "  experiment list            A/B experiments: running, concluded, promoted\n"
            "  experiment status NAME     one experiment's arms: feedback, posterior, P(best)\n"
            "  experiment promote NAME ARM\n"
            "                             give ARM all of the route's traffic (a new version)\n"
            "  learn status               learned routes: leader, shares, posteriors, updates\n"
            "  learn freeze [ROUTE]       stop learning (one route, or every route)\n"
            "  learn unfreeze [ROUTE]     resume learning (one route, or every route)\n"
            "  learn rollback [ROUTE]     re-activate the weights from before learning (a new\n"
            "                             version) and freeze\n"
            "  version                    client version, and the server's health if reachable\n"
            "\n"
            "options:\n"
            "  --server URL       admin API (default: $SWITCHYARD_SERVER, else " CTL_DEFAULT_SERVER
            ")\n"
            "  --json             print the server's JSON reply instead of tables\n"
            "  --timeout-ms N     give up on a request after N ms (default 10000)\n"
            "  -h, --help         this text\n"
            "\n"
            "exit status: 0 success, 1 the server answered an error, 2 usage error,\n"
            "             3 cannot reach the server\n");
}

int ctl_server_normalise(const char *url, char *buf, size_t len)
{
    const char *rest = url;
    const char *scheme = "http://";
    size_t n;
    int w;

    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -EINVAL;
    }
    if (strstr(url, "://")) {
        if (strncasecmp(url, "http://", 7) == 0) {
            rest = url + 7;
        } else if (strncasecmp(url, "https://", 8) == 0) {
            scheme = "https://";
            rest = url + 8;
        } else {
            return -EINVAL;
        }
    }
    if (*rest == '\0' || *rest == '/')
        return -EINVAL;
    n = strlen(rest);
    while (n > 0 && rest[n - 1] == '/')
        n--;
    if (n > (size_t)INT32_MAX)
        return -EINVAL;
    w = snprintf(buf, len, "%s%.*s", scheme, (int)n, rest);
    if (w < 0 || (size_t)w >= len)
        return -EINVAL;
    return 0;
}

/* Matches <argv>[*i] against the option <name>, which takes a value either as
 * "--name=value" or as the next word. Returns 1 with *val set (advancing *i past a
 * separate value), 0 when the word is some other option, -EINVAL when the value is
 * missing. */
static int take_value(const char *name, int argc, char **argv, int *i, const char **val,
                      char **errmsg)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        *errmsg = sy_xasprintf("%s: missing value", name);
        return -EINVAL;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

static int parse_vref(const char *what, const char *s, bool allow_active, struct ctl_vref *out,
                      char **errmsg)
{
    if (allow_active && strcmp(s, "active") == 0) {
        out->active = true;
        out->n = 0;
        return 0;
    }
    out->active = false;
    if (sy_parse_i64(s, 1, INT64_MAX, &out->n) < 0) {
        *errmsg = sy_xasprintf("%s: expected a version number%s, got \"%s\"", what,
                               allow_active ? " or \"active\"" : "", s);
        return -EINVAL;
    }
    return 0;
}

/* Fails unless exactly <want> words follow the command name <cmd> (which used <used>
 * words of <words>). */
static int check_arity(const char *cmd, const char *const *words, size_t nwords, size_t used,
                       size_t want, const char *what, char **errmsg)
{
    if (nwords - used < want) {
        *errmsg = sy_xasprintf("%s: missing %s", cmd, what);
        return -EINVAL;
    }
    if (nwords - used > want) {
        *errmsg = sy_xasprintf("%s: unexpected argument \"%s\"", cmd, words[used + want]);
        return -EINVAL;
    }
    return 0;
}

static int parse_policy(const char *const *words, size_t nwords, struct ctl_args *out,
                        char **errmsg)
{
    const char *sub;

    if (nwords < 2) {
        *errmsg = sy_xstrdup("policy: missing subcommand (push, list, get, diff or activate)");
        return -EINVAL;
    }
    sub = words[1];
    if (strcmp(sub, "push") == 0) {
        out->cmd = CTL_CMD_POLICY_PUSH;
        if (check_arity("policy push", words, nwords, 2, 1, "FILE (or '-' for stdin)", errmsg) < 0)
            return -EINVAL;
        out->file = words[2];
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        out->cmd = CTL_CMD_POLICY_LIST;
        return check_arity("policy list", words, nwords, 2, 0, "", errmsg);
    }
    if (strcmp(sub, "get") == 0) {
        out->cmd = CTL_CMD_POLICY_GET;
        if (check_arity("policy get", words, nwords, 2, 1, "version (a number or \"active\")",
                        errmsg) < 0)
            return -EINVAL;
        return parse_vref("policy get", words[2], true, &out->a, errmsg);
    }
    if (strcmp(sub, "diff") == 0) {
        out->cmd = CTL_CMD_POLICY_DIFF;
        if (check_arity("policy diff", words, nwords, 2, 2, "versions A and B", errmsg) < 0)
            return -EINVAL;
        if (parse_vref("policy diff", words[2], true, &out->a, errmsg) < 0)
            return -EINVAL;
        return parse_vref("policy diff", words[3], true, &out->b, errmsg);
    }
    if (strcmp(sub, "activate") == 0) {
        out->cmd = CTL_CMD_POLICY_ACTIVATE;
        if (check_arity("policy activate", words, nwords, 2, 1, "version number", errmsg) < 0)
            return -EINVAL;
        return parse_vref("policy activate", words[2], false, &out->a, errmsg);
    }
    *errmsg = sy_xasprintf("policy: unknown subcommand \"%s\" (expected push, list, get, diff "
                           "or activate)",
                           sub);
    return -EINVAL;
}

static int parse_experiment(const char *const *words, size_t nwords, struct ctl_args *out,
                            char **errmsg)
{
    const char *sub = nwords > 1 ? words[1] : NULL;

    if (!sub) {
        *errmsg = sy_xstrdup("experiment: missing subcommand (list, status or promote)");
        return -EINVAL;
    }
    if (strcmp(sub, "list") == 0) {
        out->cmd = CTL_CMD_EXPERIMENT_LIST;
        return check_arity("experiment list", words, nwords, 2, 0, "", errmsg);
    }
    if (strcmp(sub, "status") == 0) {
        out->cmd = CTL_CMD_EXPERIMENT_STATUS;
        if (check_arity("experiment status", words, nwords, 2, 1, "experiment name", errmsg) < 0)
            return -EINVAL;
        out->name = words[2];
        return 0;
    }
    if (strcmp(sub, "promote") == 0) {
        out->cmd = CTL_CMD_EXPERIMENT_PROMOTE;
        if (check_arity("experiment promote", words, nwords, 2, 2, "experiment name and arm",
                        errmsg) < 0)
            return -EINVAL;
        out->name = words[2];
        out->arm = words[3];
        return 0;
    }
    *errmsg = sy_xasprintf("experiment: unknown subcommand \"%s\" (expected list, status or "
                           "promote)",
                           sub);
    return -EINVAL;
}

static int parse_learn(const char *const *words, size_t nwords, struct ctl_args *out, char **errmsg)
{
    static const struct {
        const char *name;
        enum ctl_cmd cmd;
    } subs[] = {
        {"freeze", CTL_CMD_LEARN_FREEZE},
        {"unfreeze", CTL_CMD_LEARN_UNFREEZE},
        {"rollback", CTL_CMD_LEARN_ROLLBACK},
    };

    if (nwords < 2) {
        *errmsg = sy_xstrdup("learn: missing subcommand (status, freeze, unfreeze or rollback)");
        return -EINVAL;
    }
    if (strcmp(words[1], "status") == 0) {
        out->cmd = CTL_CMD_LEARN_STATUS;
        return check_arity("learn status", words, nwords, 2, 0, "", errmsg);
    }
    for (size_t i = 0; i < SY_ARRAY_LEN(subs); i++) {
        if (strcmp(words[1], subs[i].name) != 0)
            continue;
        out->cmd = subs[i].cmd;
        if (nwords > 3) {
            *errmsg = sy_xasprintf("learn %s: unexpected argument \"%s\" (at most one ROUTE)",
                                   subs[i].name, words[3]);
            return -EINVAL;
        }
        out->route = nwords == 3 ? words[2] : NULL;
        return 0;
    }
    *errmsg = sy_xasprintf("learn: unknown subcommand \"%s\" (expected status, freeze, unfreeze "
                           "or rollback)",
                           words[1]);
    return -EINVAL;
}

static int parse_command(const char *const *words, size_t nwords, struct ctl_args *out,
                         char **errmsg)
{
    if (nwords == 0) {
        *errmsg =
            sy_xstrdup("missing command (policy, fleet, pricing, experiment, learn or version)");
        return -EINVAL;
    }
    if (strcmp(words[0], "help") == 0) {
        out->cmd = CTL_CMD_HELP;
        return 0;
    }
    if (strcmp(words[0], "policy") == 0)
        return parse_policy(words, nwords, out, errmsg);
    if (strcmp(words[0], "experiment") == 0)
        return parse_experiment(words, nwords, out, errmsg);
    if (strcmp(words[0], "learn") == 0)
        return parse_learn(words, nwords, out, errmsg);
    if (strcmp(words[0], "fleet") == 0) {
        out->cmd = CTL_CMD_FLEET;
        return check_arity("fleet", words, nwords, 1, 0, "", errmsg);
    }
    if (strcmp(words[0], "version") == 0) {
        out->cmd = CTL_CMD_VERSION;
        return check_arity("version", words, nwords, 1, 0, "", errmsg);
    }
    if (strcmp(words[0], "pricing") == 0) {
        out->cmd = CTL_CMD_PRICING;
        return check_arity("pricing", words, nwords, 1, 0, "", errmsg);
    }
    *errmsg = sy_xasprintf("unknown command \"%s\" (expected policy, fleet, pricing, experiment, "
                           "learn or version)",
                           words[0]);
    return -EINVAL;
}

int ctl_args_parse(int argc, char **argv, const char *env_server, struct ctl_args *out,
                   char **errmsg)
{
    const char *words[CTL_MAX_WORDS];
    size_t nwords = 0;
    const char *server = CTL_DEFAULT_SERVER;
    bool server_from_flag = false;
    bool opts_done = false;
    bool source = false, compiled = false;
    int64_t ms;

    memset(out, 0, sizeof(*out));
    out->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    if (env_server && *env_server) {
        server = env_server;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        int r;

        if (opts_done || arg[0] != '-' || arg[1] == '\0') {
            if (nwords == CTL_MAX_WORDS) {
                *errmsg = sy_xasprintf("unexpected argument \"%s\"", arg);
                return -EINVAL;
            }
            words[nwords++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            out->cmd = CTL_CMD_HELP;
            return 0;
        }
        if (strcmp(arg, "--json") == 0) {
            out->json = true;
            continue;
        }
        if (strcmp(arg, "--no-activate") == 0) {
            out->no_activate = true;
            continue;
        }
        if (strcmp(arg, "--source") == 0) {
            source = true;
            continue;
        }
        if (strcmp(arg, "--compiled") == 0) {
            compiled = true;
            continue;
        }
        r = take_value("--server", argc, argv, &i, &val, errmsg);
        if (r < 0)
            return r;
        if (r > 0) {
            server = val;
            server_from_flag = true;
            continue;
        }
        r = take_value("--timeout-ms", argc, argv, &i, &val, errmsg);
        if (r < 0)
            return r;
        if (r > 0) {
            if (sy_parse_i64(val, 1, CTL_MAX_TIMEOUT_MS, &ms) < 0) {
                *errmsg = sy_xasprintf("--timeout-ms \"%s\": expected a number of "
                                       "milliseconds, 1..%d",
                                       val, CTL_MAX_TIMEOUT_MS);
                return -EINVAL;
            }
            out->timeout_ms = (long)ms;
            continue;
        }
        r = take_value("--note", argc, argv, &i, &val, errmsg);
        if (r < 0)
            return r;
        if (r > 0) {
            out->note = val;
            continue;
        }
        *errmsg = sy_xasprintf("unknown option \"%s\"", arg);
        return -EINVAL;
    }

    if (parse_command(words, nwords, out, errmsg) < 0)
        return -EINVAL;
    if (out->cmd == CTL_CMD_HELP)
        return 0;
    if ((out->note || out->no_activate) && out->cmd != CTL_CMD_POLICY_PUSH) {
        *errmsg =
            sy_xasprintf("%s: only 'policy push' takes it", out->note ? "--note" : "--no-activate");
        return -EINVAL;
    }
    if ((source || compiled) && out->cmd != CTL_CMD_POLICY_GET) {
        *errmsg =
            sy_xasprintf("%s: only 'policy get' takes it", source ? "--source" : "--compiled");
        return -EINVAL;
    }
    if (source && compiled) {
        *errmsg = sy_xstrdup("policy get: --source and --compiled exclude each other");
        return -EINVAL;
    }
    out->part = source ? CTL_GET_SOURCE : compiled ? CTL_GET_COMPILED : CTL_GET_SUMMARY;
    if (ctl_server_normalise(server, out->server, sizeof(out->server)) < 0) {
        if (server_from_flag)
            *errmsg = sy_xasprintf("--server \"%s\": expected an http:// or https:// URL", server);
        else
            *errmsg = sy_xasprintf("SWITCHYARD_SERVER=\"%s\": expected an http:// or https:// "
                                   "URL",
                                   server);
        return -EINVAL;
    }
    return 0;
}
