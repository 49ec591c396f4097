/* tui/tui_args.c - switchyard-top's command line. See tui_args.h. */
#include "tui_args.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

/* GLOBAL: constant table, never written; read by the arguments and the UI loop. */
const char *const tui_windows[TUI_NWINDOWS] = {"10s", "1m", "1h"};

int tui_window_index(const char *name)
{
    for (int i = 0; i < TUI_NWINDOWS; i++)
        if (strcmp(name, tui_windows[i]) == 0)
            return i;
    return -1;
}

int tui_server_normalise(const char *url, char *buf, size_t len)
{
    const char *rest;
    size_t n;
    int w;

    if (!url || !*url)
        return -EINVAL;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else if (strstr(url, "://"))
        return -EINVAL;
    else
        rest = url;
    if (!*rest || *rest == '/' || *rest == ':')
        return -EINVAL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -EINVAL;
    if (rest == url)
        w = snprintf(buf, len, "http://%s", url);
    else
        w = snprintf(buf, len, "%s", url);
    if (w < 0 || (size_t)w >= len)
        return -EINVAL;
    n = (size_t)w;
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
    return 0;
}

/* Splits "--name=value" into its parts; returns whether there was a '='. */
static bool split_inline(const char *arg, char *name, size_t size, const char **value)
{
    const char *eq = strchr(arg, '=');

    if (!eq || strncmp(arg, "--", 2) != 0) {
        snprintf(name, size, "%s", arg);
        *value = NULL;
        return false;
    }
    snprintf(name, size, "%.*s", (int)(eq - arg), arg);
    *value = eq + 1;
    return true;
}

int tui_args_parse(int argc, char **argv, const char *env_server, struct tui_args *out,
                   char **errmsg)
{
    const char *server = env_server && *env_server ? env_server : TUI_DEFAULT_SERVER;
    bool server_from_env = env_server && *env_server;

    memset(out, 0, sizeof(*out));
    out->window = 1; /* 1m */
    out->interval_ms = TUI_DEFAULT_INTERVAL_MS;
    out->view = TUI_VIEW_OVERVIEW;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        char name[64];
        bool inline_value = split_inline(arg, name, sizeof(name), &value);
        bool takes_value = strcmp(name, "--server") == 0 || strcmp(name, "--window") == 0 ||
                           strcmp(name, "--interval") == 0 || strcmp(name, "--view") == 0;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            out->help = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            out->version = true;
            continue;
        }
        if (strcmp(arg, "--once") == 0) {
            out->once = true;
            continue;
        }
        if (!takes_value) {
            if (inline_value && (strcmp(name, "--once") == 0 || strcmp(name, "--help") == 0 ||
                                 strcmp(name, "--version") == 0))
                *errmsg = sy_xasprintf("option '%s' takes no value", name);
            else if (arg[0] == '-')
                *errmsg = sy_xasprintf("unknown option '%s'", inline_value ? name : arg);
            else
                *errmsg = sy_xasprintf("unexpected argument '%s'", arg);
            return -EINVAL;
        }
        if (!inline_value) {
            if (i + 1 >= argc) {
                *errmsg = sy_xasprintf("option '%s' needs a value", name);
                return -EINVAL;
            }
            value = argv[++i];
        }
        if (strcmp(name, "--server") == 0) {
            server = value;
            server_from_env = false;
        } else if (strcmp(name, "--window") == 0) {
            int w = tui_window_index(value);

            if (w < 0) {
                *errmsg = sy_xasprintf("--window: '%s' is not one of 10s, 1m, 1h", value);
                return -EINVAL;
            }
            out->window = (unsigned)w;
        } else if (strcmp(name, "--interval") == 0) {
            int64_t ms;

            if (sy_parse_i64(value, TUI_MIN_INTERVAL_MS, TUI_MAX_INTERVAL_MS, &ms) < 0) {
                *errmsg = sy_xasprintf("--interval: '%s' is not a number of milliseconds "
                                       "from %d to %d",
                                       value, TUI_MIN_INTERVAL_MS, TUI_MAX_INTERVAL_MS);
                return -EINVAL;
            }
            out->interval_ms = (long)ms;
        } else {
            if (tui_view_parse(value, &out->view) < 0) {
                *errmsg = sy_xasprintf("--view: '%s' is not one of overview, traffic, spend, "
                                       "fleet, policies, experiments",
                                       value);
                return -EINVAL;
            }
        }
    }
    if (tui_server_normalise(server, out->server, sizeof(out->server)) < 0) {
        *errmsg = sy_xasprintf("%s: '%s' is not an http:// or https:// URL",
                               server_from_env ? "$SWITCHYARD_SERVER" : "--server", server);
        return -EINVAL;
    }
    return 0;
}

void tui_usage(FILE *out)
{
    fputs("usage: switchyard-top [--server URL] [--window 10s|1m|1h] [--interval MS]\n"
          "                      [--view VIEW] [--once]\n"
          "\n"
          "A live dashboard of a Switchyard fleet, read from the control plane's admin API.\n"
          "\n"
          "  --server URL     the admin API (default $SWITCHYARD_SERVER, else " TUI_DEFAULT_SERVER
          ")\n"
          "  --window W       the stats window: 10s, 1m (default) or 1h\n"
          "  --interval MS    refresh every MS milliseconds (default 1000, 100-60000)\n"
          "  --view VIEW      overview (default), traffic, spend, fleet, policies, experiments\n"
          "  --once           print one plain-text snapshot of the view and exit\n"
          "  -h, --help       this text\n"
          "      --version    the version\n"
          "\n"
          "Keys: 1-6 or Tab switch views, s sort, w window, p pause, r refresh, arrows and\n"
          "PgUp/PgDn scroll, ? help, q quit. NO_COLOR (any value) turns colours off.\n"
          "Exit status: 0 ok, 1 the server cannot be reached or answered an error (--once),\n"
          "2 bad arguments.\n",
          out);
}
