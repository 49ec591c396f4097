/* tui/tui_app.h - the interactive dashboard's state, its keys, and the screen layout.
 *
 * Everything here is pure: a key changes the state and says what the loop must do
 * (redraw, fetch now, quit); a frame is the whole screen as styled lines (tab bar, info
 * line, the view, status line) for a given size. The ncurses code only paints frames and
 * turns its key codes into the TUI_KEY_* values below, so the behaviour is unit-tested
 * without a terminal. Single-threaded: the UI thread.
 */
#ifndef TUI_APP_H
#define TUI_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tui_model.h"
#include "tui_text.h"
#include "tui_views.h"

/* Below this size the screen says "terminal too small" instead of drawing the views. */
#define TUI_MIN_COLS 40
#define TUI_MIN_ROWS 8

/* Keys that are not plain characters (plain ones are their ASCII code). */
enum {
    TUI_KEY_ESC = 27,
    TUI_KEY_UP = 0x1000,
    TUI_KEY_DOWN,
    TUI_KEY_PGUP,
    TUI_KEY_PGDN,
    TUI_KEY_HOME,
    TUI_KEY_END,
    TUI_KEY_BTAB,   /* Shift-Tab */
    TUI_KEY_RESIZE, /* the terminal changed size */
};

/* What the loop must do after a key (a bit set). */
enum {
    TUI_ACT_REDRAW = 1u << 0,
    TUI_ACT_FETCH = 1u << 1, /* fetch now: the view or window changed, or `r` */
    TUI_ACT_QUIT = 1u << 2,
};

struct tui_app {
    const char *server; /* borrowed */
    enum tui_view view;
    unsigned sort[TUI_VIEW_COUNT];
    unsigned window; /* index into tui_windows */
    long interval_ms;
    bool paused;
    bool help;
    size_t scroll[TUI_VIEW_COUNT];
    size_t body_rows; /* rows the view had in the last frame, for paging */
};

/* Sets up <a> for <server> (borrowed), starting on <view> with stats window <window>. */
void tui_app_init(struct tui_app *a, const char *server, enum tui_view view, unsigned window,
                  long interval_ms);

/* Applies key <key> to <a>. Returns TUI_ACT_* bits. With the help open any key closes it
 * (except q, which quits). */
unsigned tui_app_key(struct tui_app *a, int key);

/* The stats window now selected ("1m"). */
const char *tui_app_window(const struct tui_app *a);

/* The sources to fetch for the current view. */
unsigned tui_app_sources(const struct tui_app *a);

/* Appends the whole screen for a terminal of <cols> x <rows> to <out>: exactly <rows>
 * lines, none wider than <cols>. Clamps the view's scroll offset. <now_ms> is the wall
 * clock. */
void tui_app_frame(struct tui_app *a, const struct tui_model *m, int64_t now_ms, size_t cols,
                   size_t rows, bool utf8, struct tui_lines *out);

/* Appends the help overlay's lines to <out>. */
void tui_app_help(struct tui_lines *out);

#endif
