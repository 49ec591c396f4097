/* tui/tui_table.h - column layout for the dashboard's tables.
 *
 * A table is filled cell by cell, row-major, then rendered into styled lines for a given
 * width: columns take the width of their widest cell; when that is too wide, optional
 * columns ranked TUI_DROP_EARLY or higher go first, then flexible columns (a note, an
 * error text) shrink, then the other optional columns are dropped (the highest <drop>
 * rank first), so an 80-column terminal shows the columns that matter and a wide one
 * shows all. A cell wider than its column is cut with an ellipsis. Pure;
 * single-threaded.
 */
#ifndef TUI_TABLE_H
#define TUI_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "tui_text.h"

#define TUI_TABLE_GAP 2
/* Columns ranked this or higher are dropped before flexible columns shrink. */
#define TUI_DROP_EARLY 10

enum tui_align { TUI_ALIGN_LEFT = 0, TUI_ALIGN_RIGHT };

struct tui_col {
    const char *title;
    enum tui_align align;
    unsigned drop;   /* 0: always shown; else dropped when too wide, highest rank first */
    size_t flex_min; /* > 0: may shrink down to this many columns */
};

struct tui_table;

/* A table with the <ncols> columns <cols> (borrowed: they must outlive the table). */
struct tui_table *tui_table_new(const struct tui_col *cols, size_t ncols);

void tui_table_free(struct tui_table *t);

/* Appends the next cell (rows fill left to right) with <text> (copied) in <style>. */
void tui_table_cell(struct tui_table *t, enum tui_style style, const char *text);
void tui_table_cellf(struct tui_table *t, enum tui_style style, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Marks column <col> as the sort key in the header (descending or ascending). */
void tui_table_sorted(struct tui_table *t, size_t col, bool descending);

/* The number of rows started so far. */
size_t tui_table_rows(const struct tui_table *t);

/* Appends the header line and one line per row to <out>, each indented by <indent> spaces
 * and at most <width> columns wide (0: no limit). <utf8> picks the ellipsis and the sort
 * mark. */
void tui_table_render(const struct tui_table *t, size_t width, size_t indent, bool utf8,
                      struct tui_lines *out);

#endif
