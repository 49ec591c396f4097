/* tui/tui_text.c - styled text lines and UTF-8 column widths. See tui_text.h.
 *
 * A line keeps its runs sorted by start and never holds two runs starting at the same
 * byte (a later put at the same position replaces the style), so walking runs in order is
 * enough to paint a line.
 */
#include "tui_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

void tui_lines_cleanup(struct tui_lines *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->v[i].text);
        free(ls->v[i].runs);
    }
    free(ls->v);
    ls->v = NULL;
    ls->n = 0;
    ls->cap = 0;
}

struct tui_line *tui_lines_add(struct tui_lines *ls)
{
    struct tui_line *l;

    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? ls->cap * 2 : 32;
        ls->v = sy_xrealloc(ls->v, ls->cap * sizeof(*ls->v));
    }
    l = &ls->v[ls->n++];
    memset(l, 0, sizeof(*l));
    l->cap = 64;
    l->text = sy_xmalloc(l->cap);
    l->text[0] = '\0';
    return l;
}

/* Records that <style> starts at the current end of <l>. */
static void add_run(struct tui_line *l, enum tui_style style)
{
    if (l->nruns > 0) {
        struct tui_run *last = &l->runs[l->nruns - 1];

        if (last->style == style)
            return;
        if (last->start == l->len) {
            last->style = style;
            /* Merging with the run before may now be possible. */
            if (l->nruns > 1 && l->runs[l->nruns - 2].style == style)
                l->nruns--;
            return;
        }
    }
    if (l->nruns == l->cap_runs) {
        l->cap_runs = l->cap_runs ? l->cap_runs * 2 : 4;
        l->runs = sy_xrealloc(l->runs, l->cap_runs * sizeof(*l->runs));
    }
    l->runs[l->nruns].start = l->len;
    l->runs[l->nruns].style = style;
    l->nruns++;
}

void tui_line_putn(struct tui_line *l, enum tui_style style, const char *text, size_t len)
{
    if (len == 0)
        return;
    add_run(l, style);
    if (l->len + len + 1 > l->cap) {
        while (l->len + len + 1 > l->cap)
            l->cap *= 2;
        l->text = sy_xrealloc(l->text, l->cap);
    }
    memcpy(l->text + l->len, text, len);
    l->len += len;
    l->text[l->len] = '\0';
}

void tui_line_put(struct tui_line *l, enum tui_style style, const char *text)
{
    tui_line_putn(l, style, text, strlen(text));
}

void tui_line_putf(struct tui_line *l, enum tui_style style, const char *fmt, ...)
{
    va_list ap;
    char buf[256];
    char *big = NULL;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(buf)) {
        tui_line_putn(l, style, buf, (size_t)n);
        return;
    }
    big = sy_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tui_line_putn(l, style, big, (size_t)n);
    free(big);
}

void tui_line_pad(struct tui_line *l, enum tui_style style, size_t cols)
{
    static const char spaces[] = "                                ";
    size_t have = tui_line_cols(l);

    while (have < cols) {
        size_t n = cols - have < sizeof(spaces) - 1 ? cols - have : sizeof(spaces) - 1;

        tui_line_putn(l, style, spaces, n);
        have += n;
    }
}

void tui_line_fit(struct tui_line *l, size_t cols, bool utf8)
{
    size_t cut;
    enum tui_style last;

    if (tui_text_cols(l->text, l->len) <= cols)
        return;
    if (cols == 0) {
        l->len = 0;
        l->text[0] = '\0';
        l->nruns = 0;
        return;
    }
    cut = tui_text_cut(l->text, l->len, cols - 1);
    last = tui_line_style_at(l, cut > 0 ? cut - 1 : 0);
    l->len = cut;
    l->text[cut] = '\0';
    while (l->nruns > 0 && l->runs[l->nruns - 1].start >= cut)
        l->nruns--;
    /* A wide character that did not fit leaves one column free: pad it. */
    while (tui_text_cols(l->text, l->len) < cols - 1)
        tui_line_putn(l, last, " ", 1);
    tui_line_put(l, last, utf8 ? "\xe2\x80\xa6" : "~");
}

size_t tui_line_cols(const struct tui_line *l)
{
    return tui_text_cols(l->text, l->len);
}

enum tui_style tui_line_style_at(const struct tui_line *l, size_t at)
{
    enum tui_style s = TUI_S_NORMAL;

    for (size_t i = 0; i < l->nruns && l->runs[i].start <= at; i++)
        s = l->runs[i].style;
    return s;
}

long tui_utf8_next(const char *str, size_t len, size_t *n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t need;
    long cp, min;

    *n = 1;
    if (s[0] < 0x80)
        return s[0];
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 1;
        cp = s[0] & 0x1f;
        min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 2;
        cp = s[0] & 0x0f;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 3;
        cp = s[0] & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (len < need + 1)
        return -1;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *n = need + 1;
    return cp;
}

size_t tui_cp_cols(long cp)
{
    static const long zero[][2] = {
        {0x0300, 0x036f}, {0x0483, 0x0489}, {0x0591, 0x05bd}, {0x0610, 0x061a}, {0x064b, 0x065f},
        {0x200b, 0x200f}, {0x20d0, 0x20ff}, {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f}, {0xe0100, 0xe01ef},
    };
    static const long wide[][2] = {
        {0x1100, 0x115f},   {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},
        {0x4e00, 0x9fff},   {0xa000, 0xa4cf},   {0xac00, 0xd7a3},   {0xf900, 0xfaff},
        {0xfe30, 0xfe4f},   {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f300, 0x1f64f},
        {0x1f900, 0x1f9ff}, {0x20000, 0x2fffd}, {0x30000, 0x3fffd},
    };

    if (cp < 0x300)
        return 1;
    for (size_t i = 0; i < SY_ARRAY_LEN(zero); i++)
        if (cp >= zero[i][0] && cp <= zero[i][1])
            return 0;
    for (size_t i = 0; i < SY_ARRAY_LEN(wide); i++)
        if (cp >= wide[i][0] && cp <= wide[i][1])
            return 2;
    return 1;
}

size_t tui_text_cols(const char *s, size_t len)
{
    size_t cols = 0;

    for (size_t i = 0; i < len;) {
        size_t n;
        long cp = tui_utf8_next(s + i, len - i, &n);

        cols += cp < 0 ? 1 : tui_cp_cols(cp);
        i += n;
    }
    return cols;
}

size_t tui_text_cut(const char *s, size_t len, size_t cols)
{
    size_t used = 0;
    size_t i = 0;

    while (i < len) {
        size_t n;
        long cp = tui_utf8_next(s + i, len - i, &n);
        size_t w = cp < 0 ? 1 : tui_cp_cols(cp);

        if (used + w > cols)
            break;
        used += w;
        i += n;
    }
    return i;
}

char *tui_text_clean(const char *s)
{
    size_t len;
    char *out;
    size_t o = 0;

    if (!s)
        return NULL;
    len = strlen(s);
    out = sy_xmalloc(len + 1);
    for (size_t i = 0; i < len;) {
        size_t n;
        long cp = tui_utf8_next(s + i, len - i, &n);

        if (cp == '\t' || cp == '\n' || cp == '\r') {
            out[o++] = ' ';
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
            out[o++] = '?';
        } else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    return out;
}
