/* tui/tui_text.h - styled text lines, the dashboard's output format, and UTF-8 widths.
 *
 * Every view renders into a struct tui_lines: lines of UTF-8 text, each cut into runs that
 * carry a style. The ncurses renderer maps styles to attributes; --once prints the text
 * and ignores the styles, so one formatter serves both. Widths are terminal columns, worked
 * out here without the C library's locale (wcwidth needs a UTF-8 locale, unit tests run in
 * "C"): most code points are one column, East Asian wide ones and emoji two, combining
 * marks none. Text from the server is cleaned once when it is parsed (tui_text_clean), so
 * nothing downstream sees control characters or invalid UTF-8.
 * Everything here is pure and single-threaded; allocation failures abort (sy_x*).
 */
#ifndef TUI_TEXT_H
#define TUI_TEXT_H

#include <stdbool.h>
#include <stddef.h>

enum tui_style {
    TUI_S_NORMAL = 0,
    TUI_S_TITLE,  /* a view's title or a section heading */
    TUI_S_HEADER, /* table column titles */
    TUI_S_LABEL,  /* the name in a "name value" pair */
    TUI_S_VALUE,  /* a headline number */
    TUI_S_DIM,    /* secondary: disconnected proxies, old versions */
    TUI_S_GOOD,   /* healthy, active */
    TUI_S_WARN,   /* worth a look: behind, near budget */
    TUI_S_BAD,    /* errors, over budget, unreachable */
    TUI_S_TAB,    /* an inactive view tab */
    TUI_S_TAB_ON, /* the active view tab */
    TUI_S_BAR,    /* the status and title bars */
    TUI_S_COUNT
};

/* From byte <start> of the line's text to the next run's start, <style> applies. */
struct tui_run {
    size_t start;
    enum tui_style style;
};

struct tui_line {
    char *text; /* NUL-terminated UTF-8, never NULL once the line has been added */
    size_t len;
    size_t cap;
    struct tui_run *runs;
    size_t nruns;
    size_t cap_runs;
};

struct tui_lines {
    struct tui_line *v;
    size_t n;
    size_t cap;
};

/* Frees every line of <ls> and empties it (embedded; reusable afterwards). */
void tui_lines_cleanup(struct tui_lines *ls);

/* Appends an empty line to <ls> and returns it; the pointer is valid until the next
 * tui_lines_add or tui_lines_cleanup. */
struct tui_line *tui_lines_add(struct tui_lines *ls);

/* Appends <text> (<len> bytes) in <style> to <l>. */
void tui_line_putn(struct tui_line *l, enum tui_style style, const char *text, size_t len);
void tui_line_put(struct tui_line *l, enum tui_style style, const char *text);
void tui_line_putf(struct tui_line *l, enum tui_style style, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends spaces in <style> until <l> is <cols> columns wide (nothing if it already is). */
void tui_line_pad(struct tui_line *l, enum tui_style style, size_t cols);

/* Cuts <l> to at most <cols> columns; when something was cut and <cols> > 0, the last
 * column becomes an ellipsis ("…", or "~" without <utf8>). */
void tui_line_fit(struct tui_line *l, size_t cols, bool utf8);

/* The width of <l> in columns. */
size_t tui_line_cols(const struct tui_line *l);

/* The style at byte <at> of <l>. */
enum tui_style tui_line_style_at(const struct tui_line *l, size_t at);

/* Decodes one code point from <s> (<len> > 0 bytes). Stores its byte length in *n (at
 * least 1) and returns it, or -1 for an invalid or truncated sequence (*n is then 1). */
long tui_utf8_next(const char *s, size_t len, size_t *n);

/* Columns taken by code point <cp> (0, 1 or 2). */
size_t tui_cp_cols(long cp);

/* Columns taken by the first <len> bytes of <s> (invalid bytes count one each). */
size_t tui_text_cols(const char *s, size_t len);

/* The byte length of the longest prefix of <s> (<len> bytes) that fits in <cols> columns
 * without splitting a character. */
size_t tui_text_cut(const char *s, size_t len, size_t cols);

/* A clean copy of <s> for display (caller frees): tabs and line breaks become spaces,
 * other control characters (C0, DEL, C1) and invalid UTF-8 become '?'. NULL gives NULL. */
char *tui_text_clean(const char *s);

#endif
