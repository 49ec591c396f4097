/* tui/tui_table.c - column layout for the dashboard's tables. See tui_table.h. */
#include "tui_table.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

struct cell {
    char *text;
    size_t cols;
    enum tui_style style;
};

struct tui_table {
    const struct tui_col *cols;
    size_t ncols;
    struct cell *cells;
    size_t ncells;
    size_t cap;
    size_t sort_col; /* ncols: none */
    bool sort_desc;
};

struct tui_table *tui_table_new(const struct tui_col *cols, size_t ncols)
{
    struct tui_table *t = sy_xcalloc(1, sizeof(*t));

    t->cols = cols;
    t->ncols = ncols;
    t->sort_col = ncols;
    return t;
}

void tui_table_free(struct tui_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i].text);
    free(t->cells);
    free(t);
}

void tui_table_cell(struct tui_table *t, enum tui_style style, const char *text)
{
    struct cell *c;

    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = sy_xrealloc(t->cells, t->cap * sizeof(*t->cells));
    }
    c = &t->cells[t->ncells++];
    c->text = sy_xstrdup(text ? text : "");
    c->cols = tui_text_cols(c->text, strlen(c->text));
    c->style = style;
}

void tui_table_cellf(struct tui_table *t, enum tui_style style, const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    tui_table_cell(t, style, buf);
}

void tui_table_sorted(struct tui_table *t, size_t col, bool descending)
{
    t->sort_col = col;
    t->sort_desc = descending;
}

size_t tui_table_rows(const struct tui_table *t)
{
    return t->ncols ? (t->ncells + t->ncols - 1) / t->ncols : 0;
}

static const char *sort_mark(const struct tui_table *t, bool utf8)
{
    if (!utf8)
        return "*";
    return t->sort_desc ? "\xe2\x96\xbc" : "\xe2\x96\xb2";
}

/* Works out which columns show and how wide each is, for <width> (0: no limit). */
static void layout(const struct tui_table *t, size_t width, size_t indent, bool utf8, bool *visible,
                   size_t *w)
{
    size_t *nat = sy_xcalloc(t->ncols, sizeof(*nat));

    for (size_t c = 0; c < t->ncols; c++) {
        nat[c] = tui_text_cols(t->cols[c].title, strlen(t->cols[c].title));
        if (c == t->sort_col)
            nat[c] += tui_text_cols(sort_mark(t, utf8), strlen(sort_mark(t, utf8)));
        visible[c] = true;
    }
    for (size_t i = 0; i < t->ncells; i++)
        if (t->cells[i].cols > nat[i % t->ncols])
            nat[i % t->ncols] = t->cells[i].cols;

    for (;;) {
        size_t total = indent, nvis = 0, over, worst = t->ncols;

        for (size_t c = 0; c < t->ncols; c++) {
            w[c] = nat[c];
            if (!visible[c])
                continue;
            total += w[c] + (nvis ? TUI_TABLE_GAP : 0);
            nvis++;
        }
        if (width == 0 || total <= width)
            break;
        over = total - width;
        for (size_t c = 0; c < t->ncols; c++)
            if (visible[c] && t->cols[c].drop >= TUI_DROP_EARLY &&
                (worst == t->ncols || t->cols[c].drop >= t->cols[worst].drop))
                worst = c;
        if (worst != t->ncols) {
            visible[worst] = false;
            continue;
        }
        for (size_t c = 0; c < t->ncols && over; c++) {
            size_t take;

            if (!visible[c] || !t->cols[c].flex_min || w[c] <= t->cols[c].flex_min)
                continue;
            take = w[c] - t->cols[c].flex_min < over ? w[c] - t->cols[c].flex_min : over;
            w[c] -= take;
            over -= take;
        }
        if (over == 0)
            break;
        for (size_t c = 0; c < t->ncols; c++)
            if (visible[c] && t->cols[c].drop &&
                (worst == t->ncols || t->cols[c].drop >= t->cols[worst].drop))
                worst = c;
        if (worst == t->ncols)
            break; /* nothing left to drop: the lines are cut */
        visible[worst] = false;
    }
    free(nat);
}

/* Appends <text> cut or padded to exactly <w> columns (no padding after the last column). */
static void put_cell(struct tui_line *l, const char *text, size_t cols, enum tui_style style,
                     enum tui_align align, size_t w, bool last, bool utf8)
{
    size_t len = strlen(text);

    if (cols > w) {
        size_t cut = w ? tui_text_cut(text, len, w - 1) : 0;

        tui_line_putn(l, style, text, cut);
        if (w) {
            tui_line_pad(l, style, tui_line_cols(l) + (w - 1 - tui_text_cols(text, cut)));
            tui_line_put(l, style, utf8 ? "\xe2\x80\xa6" : "~");
        }
        return;
    }
    if (align == TUI_ALIGN_RIGHT) {
        tui_line_pad(l, TUI_S_NORMAL, tui_line_cols(l) + (w - cols));
        tui_line_putn(l, style, text, len);
        return;
    }
    tui_line_putn(l, style, text, len);
    if (!last)
        tui_line_pad(l, TUI_S_NORMAL, tui_line_cols(l) + (w - cols));
}

void tui_table_render(const struct tui_table *t, size_t width, size_t indent, bool utf8,
                      struct tui_lines *out)
{
    bool *visible = sy_xcalloc(t->ncols ? t->ncols : 1, sizeof(*visible));
    size_t *w = sy_xcalloc(t->ncols ? t->ncols : 1, sizeof(*w));
    size_t last = 0;
    size_t rows = tui_table_rows(t);
    struct tui_line *l;

    layout(t, width, indent, utf8, visible, w);
    for (size_t c = 0; c < t->ncols; c++)
        if (visible[c])
            last = c;

    l = tui_lines_add(out);
    tui_line_pad(l, TUI_S_NORMAL, indent);
    for (size_t c = 0, n = 0; c < t->ncols; c++) {
        char title[128];

        if (!visible[c])
            continue;
        if (n++)
            tui_line_pad(l, TUI_S_NORMAL, tui_line_cols(l) + TUI_TABLE_GAP);
        snprintf(title, sizeof(title), "%s%s", t->cols[c].title,
                 c == t->sort_col ? sort_mark(t, utf8) : "");
        put_cell(l, title, tui_text_cols(title, strlen(title)), TUI_S_HEADER, t->cols[c].align,
                 w[c], c == last, utf8);
    }
    if (width)
        tui_line_fit(l, width, utf8);

    for (size_t r = 0; r < rows; r++) {
        l = tui_lines_add(out);
        tui_line_pad(l, TUI_S_NORMAL, indent);
        for (size_t c = 0, n = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            const struct cell *cell = i < t->ncells ? &t->cells[i] : NULL;

            if (!visible[c])
                continue;
            if (n++)
                tui_line_pad(l, TUI_S_NORMAL, tui_line_cols(l) + TUI_TABLE_GAP);
            put_cell(l, cell ? cell->text : "", cell ? cell->cols : 0,
                     cell ? cell->style : TUI_S_NORMAL, t->cols[c].align, w[c], c == last, utf8);
        }
        if (width)
            tui_line_fit(l, width, utf8);
    }
    free(visible);
    free(w);
}
