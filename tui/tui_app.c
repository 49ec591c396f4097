/* tui/tui_app.c - the interactive dashboard's state, keys and screen layout. See
 * tui_app.h.
 *
 * The frame is: row 0 the tab bar, row 1 the server, window and sort, then the view's
 * lines (scrollable), and the last row the status line, which is where trouble shows
 * ("server ... unreachable: connection refused, retrying") while the last good data
 * stays on screen.
 */
#include "tui_app.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tui_args.h"
#include "tui_format.h"

void tui_app_init(struct tui_app *a, const char *server, enum tui_view view, unsigned window,
                  long interval_ms)
{
    memset(a, 0, sizeof(*a));
    a->server = server;
    a->view = view < TUI_VIEW_COUNT ? view : TUI_VIEW_OVERVIEW;
    a->window = window < TUI_NWINDOWS ? window : 1;
    a->interval_ms = interval_ms;
    a->body_rows = 1;
}

const char *tui_app_window(const struct tui_app *a)
{
    return tui_windows[a->window];
}

unsigned tui_app_sources(const struct tui_app *a)
{
    return tui_view_sources(a->view);
}

static unsigned switch_view(struct tui_app *a, enum tui_view v)
{
    if (v == a->view)
        return TUI_ACT_REDRAW;
    a->view = v;
    return TUI_ACT_REDRAW | TUI_ACT_FETCH;
}

static void scroll_by(struct tui_app *a, long delta)
{
    size_t *s = &a->scroll[a->view];

    if (delta < 0)
        *s = (size_t)-delta > *s ? 0 : *s - (size_t)-delta;
    else if (*s < SIZE_MAX - (size_t)delta)
        *s += (size_t)delta; /* clamped to the view's length by the next frame */
}

unsigned tui_app_key(struct tui_app *a, int key)
{
    unsigned n;

    if (key == 'q' || key == 'Q')
        return TUI_ACT_QUIT;
    if (key == TUI_KEY_RESIZE)
        return TUI_ACT_REDRAW;
    if (a->help) {
        a->help = false;
        return TUI_ACT_REDRAW;
    }
    switch (key) {
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
        return switch_view(a, (enum tui_view)(key - '1'));
    case '\t':
        return switch_view(a, (enum tui_view)((a->view + 1) % TUI_VIEW_COUNT));
    case TUI_KEY_BTAB:
        return switch_view(a, (enum tui_view)((a->view + TUI_VIEW_COUNT - 1) % TUI_VIEW_COUNT));
    case 's':
    case 'S':
        n = tui_view_sort_count(a->view);
        if (n == 0)
            return 0;
        a->sort[a->view] = (a->sort[a->view] + (key == 's' ? 1 : n - 1)) % n;
        return TUI_ACT_REDRAW;
    case 'w':
        a->window = (a->window + 1) % TUI_NWINDOWS;
        return TUI_ACT_REDRAW | TUI_ACT_FETCH;
    case 'p':
    case ' ':
        a->paused = !a->paused;
        return TUI_ACT_REDRAW | (a->paused ? 0 : TUI_ACT_FETCH);
    case 'r':
        return TUI_ACT_REDRAW | TUI_ACT_FETCH;
    case '?':
    case 'h':
        a->help = true;
        return TUI_ACT_REDRAW;
    case TUI_KEY_UP:
    case 'k':
        scroll_by(a, -1);
        return TUI_ACT_REDRAW;
    case TUI_KEY_DOWN:
    case 'j':
        scroll_by(a, 1);
        return TUI_ACT_REDRAW;
    case TUI_KEY_PGUP:
        scroll_by(a, -(long)a->body_rows);
        return TUI_ACT_REDRAW;
    case TUI_KEY_PGDN:
        scroll_by(a, (long)a->body_rows);
        return TUI_ACT_REDRAW;
    case TUI_KEY_HOME:
    case 'g':
        a->scroll[a->view] = 0;
        return TUI_ACT_REDRAW;
    case TUI_KEY_END:
    case 'G':
        a->scroll[a->view] = SIZE_MAX;
        return TUI_ACT_REDRAW;
    default:
        return 0;
    }
}

static void too_small(size_t cols, size_t rows, bool utf8, struct tui_lines *out)
{
    for (size_t r = 0; r < rows; r++) {
        struct tui_line *l = tui_lines_add(out);

        if (r == rows / 2)
            tui_line_put(l, TUI_S_WARN, "terminal too small");
        else if (r == rows / 2 + 1)
            tui_line_putf(l, TUI_S_DIM, "%zux%zu, need %dx%d", cols, rows, TUI_MIN_COLS,
                          TUI_MIN_ROWS);
        tui_line_fit(l, cols, utf8);
    }
}

static void tab_bar(const struct tui_app *a, size_t cols, bool utf8, struct tui_lines *out)
{
    struct tui_line *l = tui_lines_add(out);
    size_t full = 0;

    for (unsigned v = 0; v < TUI_VIEW_COUNT; v++)
        full += 4 + strlen(tui_view_title(v));
    for (unsigned v = 0; v < TUI_VIEW_COUNT; v++) {
        bool on = v == a->view;

        if (on || full <= cols)
            tui_line_putf(l, on ? TUI_S_TAB_ON : TUI_S_TAB, " %u %s ", v + 1, tui_view_title(v));
        else
            tui_line_putf(l, TUI_S_TAB, " %u ", v + 1);
    }
    tui_line_pad(l, TUI_S_BAR, cols);
    tui_line_fit(l, cols, utf8);
}

static void info_line(const struct tui_app *a, size_t cols, bool utf8, struct tui_lines *out)
{
    struct tui_line *l = tui_lines_add(out);
    unsigned nsort = tui_view_sort_count(a->view);

    tui_line_put(l, TUI_S_TITLE, "switchyard-top");
    tui_line_putf(l, TUI_S_NORMAL, "  %s  window %s  every %gs", a->server, tui_app_window(a),
                  (double)a->interval_ms / 1000.0);
    if (nsort)
        tui_line_putf(l, TUI_S_NORMAL, "  sort %s (s)",
                      tui_view_sort_name(a->view, a->sort[a->view]));
    if (a->paused)
        tui_line_put(l, TUI_S_WARN, "  PAUSED");
    tui_line_fit(l, cols, utf8);
}

/* The oldest update among the sources of the view, 0 when one has none yet. */
static int64_t oldest_update(const struct tui_model *m, unsigned mask)
{
    int64_t oldest = INT64_MAX;

    for (unsigned s = 0; s < TUI_SRC_COUNT; s++) {
        if (!(mask & TUI_SRC_BIT(s)))
            continue;
        if (m->src[s].updated_ms <= 0)
            return 0;
        if (m->src[s].updated_ms < oldest)
            oldest = m->src[s].updated_ms;
    }
    return oldest == INT64_MAX ? 0 : oldest;
}

static void status_line(const struct tui_app *a, const struct tui_model *m, size_t cols,
                        size_t first, size_t shown, size_t total, bool utf8, struct tui_lines *out)
{
    struct tui_line *l = tui_lines_add(out);
    unsigned mask = tui_app_sources(a);
    const char *error = NULL;
    char right[96];
    size_t rlen, rcols;
    int64_t updated = oldest_update(m, mask);

    for (unsigned s = 0; s < TUI_SRC_COUNT && !error; s++)
        if ((mask & TUI_SRC_BIT(s)) && m->src[s].error)
            error = m->src[s].error;
    /* The message matters more than the key hint: narrow screens keep only the former. */
    if (total > shown)
        snprintf(right, sizeof(right), " %zu-%zu/%zu%s", first + 1, first + shown, total,
                 cols >= 70 ? "  ? help  q quit" : "");
    else
        snprintf(right, sizeof(right), "%s", cols >= 60 ? " ? help  q quit" : "");
    rlen = strlen(right);
    rcols = tui_text_cols(right, rlen);

    if (a->paused)
        tui_line_put(l, TUI_S_WARN, "paused (p resumes)  ");
    if (m->unreachable)
        tui_line_putf(l, TUI_S_BAD, "server %s unreachable: %s, %s", a->server, m->unreachable,
                      a->paused ? "paused" : "retrying");
    else if (error)
        tui_line_putf(l, TUI_S_BAD, "%s, %s", error, a->paused ? "paused" : "retrying");
    else if ((mask & TUI_SRC_BIT(TUI_SRC_STATS)) && m->stats && m->stats->unreachable)
        tui_line_putf(l, TUI_S_WARN, "partial: replica %s; its proxies are missing",
                      m->stats->unreachable);
    else if (updated > 0) {
        char b[TUI_NUM_MAX];
        const char *when = tui_fmt_utc(b, sizeof(b), updated); /* the time part only */

        tui_line_putf(l, TUI_S_DIM, "updated %s UTC", strlen(when) > 11 ? when + 11 : when);
    } else
        tui_line_putf(l, TUI_S_DIM, "connecting to %s", a->server);
    if (cols > rcols) {
        tui_line_fit(l, cols - rcols, utf8);
        tui_line_pad(l, TUI_S_NORMAL, cols - rcols);
        tui_line_put(l, TUI_S_DIM, right);
    }
    tui_line_fit(l, cols, utf8);
}

void tui_app_frame(struct tui_app *a, const struct tui_model *m, int64_t now_ms, size_t cols,
                   size_t rows, bool utf8, struct tui_lines *out)
{
    struct tui_view_opts o = {.width = cols, .utf8 = utf8, .now_ms = now_ms};
    struct tui_lines body = {0};
    size_t body_rows, first, shown;

    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        too_small(cols, rows, utf8, out);
        return;
    }
    body_rows = rows - 3;
    a->body_rows = body_rows;
    o.sort = a->sort[a->view];
    tui_view_render(a->view, m, &o, &body);
    first = a->scroll[a->view];
    if (body.n <= body_rows)
        first = 0;
    else if (first > body.n - body_rows)
        first = body.n - body_rows;
    a->scroll[a->view] = first;
    shown = body.n - first < body_rows ? body.n - first : body_rows;

    tab_bar(a, cols, utf8, out);
    info_line(a, cols, utf8, out);
    for (size_t r = 0; r < body_rows; r++) {
        struct tui_line *l = tui_lines_add(out);

        if (first + r < body.n) {
            const struct tui_line *src = &body.v[first + r];
            size_t start = 0;

            /* Copy run by run, keeping the styles. */
            for (size_t i = 0; i < src->nruns; i++) {
                size_t end = i + 1 < src->nruns ? src->runs[i + 1].start : src->len;

                tui_line_putn(l, src->runs[i].style, src->text + src->runs[i].start,
                              end - src->runs[i].start);
                start = end;
            }
            if (start < src->len)
                tui_line_putn(l, TUI_S_NORMAL, src->text + start, src->len - start);
            tui_line_fit(l, cols, utf8);
        }
    }
    status_line(a, m, cols, first, shown, body.n, utf8, out);
    tui_lines_cleanup(&body);
}

void tui_app_help(struct tui_lines *out)
{
    static const char *const keys[][2] = {
        {"1-6, Tab", "switch view (Shift-Tab goes back)"},
        {"s", "next sort column (Traffic, Spend; S: previous)"},
        {"w", "stats window: 10s, 1m, 1h"},
        {"p", "pause or resume refreshing"},
        {"r", "refresh now"},
        {"arrows, PgUp/PgDn", "scroll (also j, k, g, G)"},
        {"?", "this help"},
        {"q", "quit"},
    };
    struct tui_line *l = tui_lines_add(out);

    tui_line_put(l, TUI_S_TITLE, "switchyard-top keys");
    tui_lines_add(out);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        l = tui_lines_add(out);
        tui_line_put(l, TUI_S_VALUE, keys[i][0]);
        tui_line_pad(l, TUI_S_NORMAL, 19);
        tui_line_put(l, TUI_S_NORMAL, keys[i][1]);
    }
    tui_lines_add(out);
    l = tui_lines_add(out);
    tui_line_put(l, TUI_S_DIM, "any key closes this help");
}
