/* tui/tui_view_util.h - what the view files share: headings, name/value grids, the
 * "no data yet" message, sorting helpers. Internal to tui/ (tui_views.c implements it).
 * Pure and single-threaded like the views.
 */
#ifndef TUI_VIEW_UTIL_H
#define TUI_VIEW_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "tui_model.h"
#include "tui_text.h"
#include "tui_views.h"

/* Indent of everything under a heading. */
#define TUI_INDENT 2

/* One name/value pair of a grid. */
struct tui_kv {
    const char *label;
    char value[128];
    enum tui_style style;
};

/* True when <m> holds data for <src>; otherwise appends a line saying why there is none
 * (the last error, or that the first answer is awaited) and returns false. */
bool tui_view_need(const struct tui_model *m, enum tui_src src, const struct tui_view_opts *o,
                   struct tui_lines *out);

/* Appends a heading line (printf-style text), cut to the width. */
void tui_view_heading(struct tui_lines *out, const struct tui_view_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends an indented line of text in <style>, cut to the width. */
void tui_view_text(struct tui_lines *out, const struct tui_view_opts *o, enum tui_style style,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Appends an empty line. */
void tui_view_blank(struct tui_lines *out);

/* Appends the <n> pairs <kv> as an indented grid: two pairs a line when the width allows,
 * else one. */
void tui_view_kv(struct tui_lines *out, const struct tui_view_opts *o, const struct tui_kv *kv,
                 size_t n);

/* The style for an error rate: bad from 5 %, a warning above 0. */
enum tui_style tui_view_rate_style(double error_rate);

/* Orders <a> before <b> when it is larger, NAN last: a qsort-style result. */
int tui_view_cmp_desc(double a, double b);

/* A display name for a possibly missing or empty string: <s>, or <empty>. */
const char *tui_view_or(const char *s, const char *empty);

/* The views, one function each (tui_view_*.c); tui_view_render dispatches to them. */
void tui_view_overview(const struct tui_model *m, const struct tui_view_opts *o,
                       struct tui_lines *out);
void tui_view_traffic(const struct tui_model *m, const struct tui_view_opts *o,
                      struct tui_lines *out);
void tui_view_spend(const struct tui_model *m, const struct tui_view_opts *o,
                    struct tui_lines *out);
void tui_view_fleet(const struct tui_model *m, const struct tui_view_opts *o,
                    struct tui_lines *out);
void tui_view_policies(const struct tui_model *m, const struct tui_view_opts *o,
                       struct tui_lines *out);
void tui_view_experiments(const struct tui_model *m, const struct tui_view_opts *o,
                          struct tui_lines *out);

#endif
