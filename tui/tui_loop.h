/* tui/tui_loop.h - the two ways switchyard-top runs: the live dashboard and --once.
 *
 * Both fetch with tui_fetch and render with tui_views; the loop adds the terminal
 * (tui_screen) and the keys (tui_app). Call curl_global_init() and setlocale() first.
 * Single-threaded.
 */
#ifndef TUI_LOOP_H
#define TUI_LOOP_H

#include "tui_args.h"

/* Runs the dashboard until `q` or SIGINT/SIGTERM/SIGHUP. Returns the process exit code:
 * TUI_EXIT_OK, or TUI_EXIT_FAIL (with a message on stderr) when the terminal cannot be
 * used. An unreachable server is not a failure: it shows in the status line. */
int tui_loop_run(const struct tui_args *a);

/* Fetches the view's sources once and prints the view as plain text to stdout. Returns
 * TUI_EXIT_OK, or TUI_EXIT_FAIL with a message on stderr when the server cannot be reached
 * or answers an error. */
int tui_once_run(const struct tui_args *a);

#endif
