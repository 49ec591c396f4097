/* controlplane/ctl/ctl_table.c - aligned text tables and human times for switchyardctl.
 *
 * Cells are stored row-major in one growing array of heap strings. The array grows with
 * the server's reply, which ctl_http caps, so the abort-on-OOM helpers are enough here.
 * See ctl_table.h for the contract.
 */
#include "ctl_table.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "sy_util.h"

#define CTL_ELLIPSIS "..."
#define CTL_NO_FLEX SIZE_MAX

struct ctl_table {
    size_t ncols;
    char **headers;
    char **cells;
    size_t ncells;
    size_t cap;
    size_t flex;
};

struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers)
{
    struct ctl_table *t = sy_xcalloc(1, sizeof(*t));

    t->ncols = ncols;
    t->flex = CTL_NO_FLEX;
    t->headers = sy_xcalloc(ncols, sizeof(*t->headers));
    for (size_t i = 0; i < ncols; i++)
        t->headers[i] = ctl_sanitize(headers[i]);
    return t;
}

void ctl_table_free(struct ctl_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->ncols; i++)
        free(t->headers[i]);
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->cells);
    free(t);
}

void ctl_table_set_flex(struct ctl_table *t, size_t col)
{
    if (col < t->ncols)
        t->flex = col;
}

void ctl_table_cell(struct ctl_table *t, const char *text)
{
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16 * t->ncols;
        t->cells = sy_xrealloc(t->cells, t->cap * sizeof(*t->cells));
    }
    t->cells[t->ncells++] = ctl_sanitize(text ? text : "-");
}

void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        s = NULL;
    ctl_table_cell(t, s ? s : "?");
    free(s);
}

size_t ctl_table_rows(const struct ctl_table *t)
{
    return t->ncols ? t->ncells / t->ncols : 0;
}

size_t ctl_display_width(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    }
    return n;
}

char *ctl_sanitize(const char *s)
{
    char *out = sy_xstrdup(s);

    for (char *p = out; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    return out;
}

/* Prints the first code points of <s> that fit in <width> columns, cutting with "..." when
 * <s> is wider, then pads to <width> unless <last>. */
static void print_cell(FILE *out, const char *s, size_t width, bool last)
{
    size_t w = ctl_display_width(s);
    size_t ell = strlen(CTL_ELLIPSIS);

    if (w > width) {
        size_t keep = width > ell ? width - ell : 0;
        const char *p = s;

        for (size_t cp = 0; *p; p++) {
            if (((unsigned char)*p & 0xC0) != 0x80) {
                if (cp == keep)
                    break;
                cp++;
            }
        }
        fwrite(s, 1, (size_t)(p - s), out);
        fputs(width >= ell ? CTL_ELLIPSIS : "", out);
        w = keep + (width >= ell ? ell : 0);
    } else {
        fputs(s, out);
    }
    if (!last) {
        for (; w < width; w++)
            fputc(' ', out);
    }
}

void ctl_table_print(const struct ctl_table *t, FILE *out, size_t max_width)
{
    size_t *widths = sy_xcalloc(t->ncols, sizeof(*widths));
    size_t rows = ctl_table_rows(t);
    size_t total = 0;

    for (size_t c = 0; c < t->ncols; c++)
        widths[c] = ctl_display_width(t->headers[c]);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = ctl_display_width(t->cells[r * t->ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t c = 0; c < t->ncols; c++)
        total += widths[c] + (c + 1 < t->ncols ? 2 : 0);
    if (max_width > 0 && total > max_width && t->flex != CTL_NO_FLEX) {
        size_t others = total - widths[t->flex];
        size_t room = max_width > others ? max_width - others : 0;
        size_t floor = ctl_display_width(t->headers[t->flex]);

        if (floor < CTL_TABLE_MIN_FLEX)
            floor = CTL_TABLE_MIN_FLEX;
        if (room < floor)
            room = floor;
        if (room < widths[t->flex])
            widths[t->flex] = room;
    }
    for (size_t r = 0; r <= rows; r++) {
        char *const *row = r == 0 ? t->headers : t->cells + (r - 1) * t->ncols;
        size_t end = t->ncols;

        while (end > 1 && row[end - 1][0] == '\0')
            end--; /* no padding for empty trailing cells */
        for (size_t c = 0; c < end; c++) {
            bool last = c + 1 == end;

            print_cell(out, row[c], widths[c], last);
            fputs(last ? "\n" : "  ", out);
        }
    }
    free(widths);
}

char *ctl_fmt_time(char *buf, size_t len, int64_t unix_ms)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;

    if (unix_ms <= 0 || !gmtime_r(&secs, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
    return buf;
}

char *ctl_fmt_duration(char *buf, size_t len, int64_t ms)
{
    int64_t s = ms > 0 ? ms / 1000 : 0;

    if (s < 60)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, len, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
    return buf;
}

char *ctl_fmt_ago(char *buf, size_t len, int64_t then_ms, int64_t now_ms)
{
    char d[32];

    if (then_ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    if (now_ms - then_ms < 1000) {
        snprintf(buf, len, "just now");
        return buf;
    }
    snprintf(buf, len, "%s ago", ctl_fmt_duration(d, sizeof(d), now_ms - then_ms));
    return buf;
}

size_t ctl_term_width(void)
{
    struct winsize ws;
    const char *cols;
    int64_t n;

    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    cols = getenv("COLUMNS");
    if (cols && sy_parse_i64(cols, 1, 10000, &n) == 0)
        return (size_t)n;
    return 0;
}

bool ctl_use_colour(void)
{
    const char *nc = getenv("NO_COLOR");

    return isatty(STDOUT_FILENO) && !(nc && *nc);
}
