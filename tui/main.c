/* tui/main.c - switchyard-top: a live ncurses dashboard of a Switchyard fleet, read from
 * the control plane's admin API. Parses the command line and runs the dashboard or a
 * --once snapshot (tui_loop.c). Exit codes: 0 ok, 1 the server cannot be reached or
 * answered an error (--once) or the terminal cannot be used, 2 bad arguments.
 * Single-threaded; libcurl and the locale are set up here, once.
 */
#include <curl/curl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include "tui_args.h"
#include "tui_loop.h"

int main(int argc, char **argv)
{
    struct tui_args args;
    char *errmsg = NULL;
    int rc;

    setlocale(LC_ALL, "");
    if (tui_args_parse(argc, argv, getenv("SWITCHYARD_SERVER"), &args, &errmsg) < 0) {
        fprintf(stderr, "switchyard-top: %s\n", errmsg);
        fputs("run 'switchyard-top --help' for usage\n", stderr);
        free(errmsg);
        return TUI_EXIT_USAGE;
    }
    if (args.help) {
        tui_usage(stdout);
        return TUI_EXIT_OK;
    }
    if (args.version) {
        puts("switchyard-top " TUI_VERSION);
        return TUI_EXIT_OK;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("switchyard-top: cannot initialise libcurl\n", stderr);
        return TUI_EXIT_FAIL;
    }
    rc = args.once ? tui_once_run(&args) : tui_loop_run(&args);
    curl_global_cleanup();
    return rc;
}
