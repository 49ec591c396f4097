/* controlplane/ctl/ctl_table.h - aligned text tables and human times for switchyardctl.
 *
 * A table owns copies of its cells. Cells are made safe for a terminal when added:
 * control characters (newlines, escape sequences from a server string) become spaces.
 * Widths count UTF-8 code points, so a note in another script still lines up.
 * Single-threaded; no global state.
 */
#ifndef CTL_TABLE_H
#define CTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Smallest width the shrinking column is cut to, however narrow the terminal. */
#define CTL_TABLE_MIN_FLEX 12

struct ctl_table;

/* Creates a table with <ncols> columns titled <headers> (copied). Aborts on OOM. */
struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers);

/* Frees <t>; NULL is fine. */
void ctl_table_free(struct ctl_table *t);

/* Marks column <col> as the one cut (with "...") when the table is wider than the limit
 * given to ctl_table_print. Without a mark nothing is cut. */
void ctl_table_set_flex(struct ctl_table *t, size_t col);

/* Appends one cell; every <ncols> cells make a row. NULL prints as "-". */
void ctl_table_cell(struct ctl_table *t, const char *text);
void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Number of complete rows. */
size_t ctl_table_rows(const struct ctl_table *t);

/* Prints the header and rows, columns separated by two spaces, no trailing blanks. When
 * <max_width> > 0 the flex column shrinks so a line fits in it (but not below
 * CTL_TABLE_MIN_FLEX). */
void ctl_table_print(const struct ctl_table *t, FILE *out, size_t max_width);

/* Copies <s> into a new string with control characters replaced by spaces (caller frees;
 * aborts on OOM). */
char *ctl_sanitize(const char *s);

/* Number of UTF-8 code points in <s>. */
size_t ctl_display_width(const char *s);

/* Formats <unix_ms> as "2026-11-22 10:04:05Z" (UTC) into <buf>. Writes "-" for 0 or less.
 * Returns <buf>. */
char *ctl_fmt_time(char *buf, size_t len, int64_t unix_ms);

/* Formats a duration as "12s", "4m10s", "3h12m", "2d4h" ("0s" below a second, negative
 * as 0). Returns <buf>. */
char *ctl_fmt_duration(char *buf, size_t len, int64_t ms);

/* Formats how long before <now_ms> the moment <then_ms> was: "12s ago", "just now" (under
 * a second, or slightly in the future from clock skew), "-" for 0. Returns <buf>. */
char *ctl_fmt_ago(char *buf, size_t len, int64_t then_ms, int64_t now_ms);

/* The width tables should fit in: the terminal's columns when stdout is a terminal, else
 * $COLUMNS, else 0 (no limit, so pipes and greps see whole cells). */
size_t ctl_term_width(void);

/* Should output carry ANSI colours? Only when stdout is a terminal and NO_COLOR is unset
 * or empty (https://no-color.org). */
bool ctl_use_colour(void);

#endif
