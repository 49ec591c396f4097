/* tui/tui_views.h - the six views, each rendered from the model into styled lines.
 *
 * A view is a pure function of the model and a few options: the ncurses screen paints
 * its lines below the tab bar, and --once prints them as plain text, so what an operator
 * sees and what a script reads are the same text. Views that lack data say why in their
 * body ("waiting for GET /v1/stats", or the last error). Single-threaded, no I/O.
 */
#ifndef TUI_VIEWS_H
#define TUI_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tui_model.h"
#include "tui_text.h"

enum tui_view {
    TUI_VIEW_OVERVIEW = 0,
    TUI_VIEW_TRAFFIC,
    TUI_VIEW_SPEND,
    TUI_VIEW_FLEET,
    TUI_VIEW_POLICIES,
    TUI_VIEW_EXPERIMENTS,
    TUI_VIEW_COUNT
};

struct tui_view_opts {
    size_t width;   /* columns available; 0: no limit (--once) */
    bool utf8;      /* block characters for bars, "…" for cut text */
    unsigned sort;  /* index of the view's sort key (tui_view_sort_name) */
    int64_t now_ms; /* wall clock, for "5s ago" */
};

/* "overview", "traffic", ... (the --view names). */
const char *tui_view_name(enum tui_view v);

/* "Overview", "Traffic", ... (the tab titles). */
const char *tui_view_title(enum tui_view v);

/* Parses a --view name (or "1".."6"). Returns 0, or -EINVAL. */
int tui_view_parse(const char *name, enum tui_view *out);

/* The sources (TUI_SRC_BIT mask) view <v> is drawn from. */
unsigned tui_view_sources(enum tui_view v);

/* How many sort keys view <v> has (0: not sortable), and the name of key <sort>. */
unsigned tui_view_sort_count(enum tui_view v);
const char *tui_view_sort_name(enum tui_view v, unsigned sort);

/* Appends the lines of view <v> for model <m> to <out>. */
void tui_view_render(enum tui_view v, const struct tui_model *m, const struct tui_view_opts *o,
                     struct tui_lines *out);

#endif
