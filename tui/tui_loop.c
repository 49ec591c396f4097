/* tui/tui_loop.c - the live dashboard's event loop. See tui_loop.h.
 *
 * One thread waits in curl_multi_poll on the admin API's sockets and on stdin together,
 * so a key is handled within a moment even while a request is out, and a dead server
 * never freezes the screen (each request gives up after TUI_REQUEST_TIMEOUT_MS). A
 * refresh starts every interval once the previous one has finished; a key that changes
 * what is shown (view, window, `r`) starts one at once. The screen is redrawn when data
 * arrives, on a key, on a resize, and once a second for the clock.
 */
#include "tui_loop.h"

#include <langinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sy_util.h"
#include "tui_app.h"
#include "tui_fetch.h"
#include "tui_format.h"
#include "tui_model.h"
#include "tui_screen.h"

/* Longest wait between two looks at the keyboard and the stop flag. */
#define TUI_MAX_WAIT_MS 250

/* GLOBAL: written by the signal handler (SIGINT, SIGTERM, SIGHUP); read by the UI loop. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* Installed before newterm: ncurses leaves handlers that are not SIG_DFL alone. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static bool utf8_locale(void)
{
    const char *cs = nl_langinfo(CODESET);

    return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

static void draw(struct tui_screen *scr, struct tui_app *app, const struct tui_model *m,
                 const struct tui_lines *help, bool utf8)
{
    struct tui_lines frame = {0};
    size_t cols, rows;

    tui_screen_size(scr, &cols, &rows);
    tui_app_frame(app, m, (int64_t)(sy_wall_us() / 1000), cols, rows, utf8, &frame);
    tui_screen_draw(scr, &frame, app->help ? help : NULL, utf8);
    tui_lines_cleanup(&frame);
}

int tui_loop_run(const struct tui_args *a)
{
    struct tui_model m = {0};
    struct tui_lines help = {0};
    struct tui_client *client = NULL;
    struct tui_screen *scr = NULL;
    struct tui_app app;
    char *errmsg = NULL;
    bool utf8 = utf8_locale();
    bool dirty = true, fetch_now = true;
    uint64_t next_fetch_ms = 0;
    int64_t shown_second = 0;
    int ret = TUI_EXIT_OK;

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fputs("switchyard-top: not a terminal; use --once for a plain-text snapshot\n", stderr);
        return TUI_EXIT_FAIL;
    }
    client = tui_client_new(a->server);
    if (!client) {
        fputs("switchyard-top: cannot set up libcurl\n", stderr);
        return TUI_EXIT_FAIL;
    }
    catch_signals();
    scr = tui_screen_new(getenv("NO_COLOR") == NULL, &errmsg);
    if (!scr) {
        fprintf(stderr, "switchyard-top: %s\n", errmsg);
        free(errmsg);
        ret = TUI_EXIT_FAIL;
        goto out_free_client;
    }
    tui_app_init(&app, a->server, a->view, a->window, a->interval_ms);
    tui_app_help(&help);

    while (!stop_signal) {
        uint64_t now_ms = sy_now_us() / 1000;
        int64_t second = (int64_t)(sy_wall_us() / 1000000);
        long wait = TUI_MAX_WAIT_MS;
        int key;

        if (!app.paused && (fetch_now || now_ms >= next_fetch_ms) && !tui_client_busy(client)) {
            if (tui_client_start(client, tui_app_sources(&app), tui_app_window(&app)) < 0) {
                ret = TUI_EXIT_FAIL;
                break;
            }
            next_fetch_ms = now_ms + (uint64_t)app.interval_ms;
            fetch_now = false;
        }
        if (second != shown_second) {
            shown_second = second;
            dirty = true;
        }
        if (dirty) {
            draw(scr, &app, &m, &help, utf8);
            dirty = false;
        }
        if (!app.paused && !tui_client_busy(client)) {
            uint64_t until = next_fetch_ms > now_ms ? next_fetch_ms - now_ms : 0;

            if (until < (uint64_t)wait)
                wait = (long)until;
        }
        if (tui_client_poll(client, STDIN_FILENO, (int)wait, &m) > 0)
            dirty = true;
        while ((key = tui_screen_key(scr)) != -1) {
            unsigned act = tui_app_key(&app, key);

            if (act & TUI_ACT_QUIT)
                goto out_free_screen;
            if (act & TUI_ACT_FETCH)
                fetch_now = true;
            if (act & TUI_ACT_REDRAW)
                dirty = true;
        }
    }

out_free_screen:
    tui_screen_free(scr);
    if (ret != TUI_EXIT_OK)
        fputs("switchyard-top: cannot start a request (out of memory)\n", stderr);
    tui_lines_cleanup(&help);
    tui_model_cleanup(&m);
out_free_client:
    tui_client_free(client);
    return ret;
}

/* Prints <l>'s text without trailing spaces. */
static void print_line(FILE *out, const struct tui_line *l)
{
    size_t n = l->len;

    while (n > 0 && l->text[n - 1] == ' ')
        n--;
    fwrite(l->text, 1, n, out);
    fputc('\n', out);
}

int tui_once_run(const struct tui_args *a)
{
    struct tui_model m = {0};
    struct tui_lines lines = {0};
    struct tui_client *client;
    struct tui_view_opts o = {.width = 0, .utf8 = utf8_locale()};
    unsigned mask = tui_view_sources(a->view);
    const char *window = tui_windows[a->window];
    char when[32];
    int ret = TUI_EXIT_OK;

    signal(SIGPIPE, SIG_IGN);
    client = tui_client_new(a->server);
    if (!client) {
        fputs("switchyard-top: cannot set up libcurl\n", stderr);
        return TUI_EXIT_FAIL;
    }
    tui_client_set_timeouts(client, TUI_ONCE_CONNECT_TIMEOUT_MS, TUI_ONCE_REQUEST_TIMEOUT_MS);
    if (tui_client_fetch(client, mask, window, &m) < 0) {
        if (m.unreachable) {
            fprintf(stderr, "switchyard-top: cannot reach %s: %s\n", a->server, m.unreachable);
        } else {
            for (unsigned s = 0; s < TUI_SRC_COUNT; s++) {
                if ((mask & TUI_SRC_BIT(s)) && m.src[s].error) {
                    fprintf(stderr, "switchyard-top: %s: %s\n", a->server, m.src[s].error);
                    break;
                }
            }
        }
        ret = TUI_EXIT_FAIL;
        goto out_free_model;
    }
    o.now_ms = (int64_t)(sy_wall_us() / 1000);
    tui_view_render(a->view, &m, &o, &lines);
    tui_fmt_utc(when, sizeof(when), o.now_ms);
    if (mask & TUI_SRC_BIT(TUI_SRC_STATS))
        printf("switchyard-top %s: %s, window %s, %s UTC\n\n", tui_view_name(a->view), a->server,
               window, when);
    else
        printf("switchyard-top %s: %s, %s UTC\n\n", tui_view_name(a->view), a->server, when);
    for (size_t i = 0; i < lines.n; i++)
        print_line(stdout, &lines.v[i]);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("switchyard-top: cannot write the snapshot\n", stderr);
        ret = TUI_EXIT_FAIL;
    }
    tui_lines_cleanup(&lines);

out_free_model:
    tui_model_cleanup(&m);
    tui_client_free(client);
    return ret;
}
