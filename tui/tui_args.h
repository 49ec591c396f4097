/* tui/tui_args.h - switchyard-top's command line.
 *
 * Parsing is pure: it reads argv and the value of $SWITCHYARD_SERVER handed in by the
 * caller, prints nothing and keeps no state, so tests drive it directly. Single-threaded.
 */
#ifndef TUI_ARGS_H
#define TUI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "tui_views.h"

#define TUI_VERSION "0.1.0"
#define TUI_DEFAULT_SERVER "http://127.0.0.1:9090"
#define TUI_DEFAULT_INTERVAL_MS 1000
#define TUI_MIN_INTERVAL_MS 100
#define TUI_MAX_INTERVAL_MS 60000
#define TUI_SERVER_MAX 2048

/* Exit codes (docs/operations.md). */
enum tui_exit {
    TUI_EXIT_OK = 0,
    TUI_EXIT_FAIL = 1,  /* the server cannot be reached or answered an error (--once) */
    TUI_EXIT_USAGE = 2, /* bad command line */
};

/* The stats windows the control plane offers, in the order `w` cycles them. */
#define TUI_NWINDOWS 3
extern const char *const tui_windows[TUI_NWINDOWS];

struct tui_args {
    char server[TUI_SERVER_MAX]; /* normalised: scheme present, no trailing '/' */
    unsigned window;             /* index into tui_windows */
    long interval_ms;
    bool once;
    enum tui_view view;
    bool help;
    bool version;
};

/* Parses argv[1..argc-1] into *out. <env_server> is $SWITCHYARD_SERVER (NULL or "" when
 * unset); --server wins over it. Returns 0, or -EINVAL with *errmsg set to a message that
 * names the bad option (caller frees). */
int tui_args_parse(int argc, char **argv, const char *env_server, struct tui_args *out,
                   char **errmsg);

/* Normalises a server URL into <buf> (<len> bytes): "host:port" gains "http://", trailing
 * slashes go. Returns 0, or -EINVAL when the scheme is not http(s), the host is missing or
 * the URL does not fit. */
int tui_server_normalise(const char *url, char *buf, size_t len);

/* The index of window <name> in tui_windows, or -1. */
int tui_window_index(const char *name);

/* Writes the usage text to <out>. */
void tui_usage(FILE *out);

#endif
