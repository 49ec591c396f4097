/* tui/tui_views.c - the list of views, their sources and sort keys, and the helpers the
 * view files share (tui_view_util.h). The views themselves live in tui_view_*.c.
 */
#include "tui_views.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"
#include "tui_view_util.h"

static const char *const traffic_sorts[] = {"rps",  "err%",  "p50", "p95", "p99",
                                            "ttft", "tok/s", "$/h", "name"};
static const char *const spend_sorts[] = {"month", "today", "projected", "name"};

static const struct {
    const char *name;
    const char *title;
    unsigned sources;
    const char *const *sorts;
    unsigned nsorts;
} views[TUI_VIEW_COUNT] = {
    [TUI_VIEW_OVERVIEW] = {"overview", "Overview",
                           TUI_SRC_BIT(TUI_SRC_STATS) | TUI_SRC_BIT(TUI_SRC_FLEET), NULL, 0},
    [TUI_VIEW_TRAFFIC] = {"traffic", "Traffic", TUI_SRC_BIT(TUI_SRC_STATS), traffic_sorts,
                          SY_ARRAY_LEN(traffic_sorts)},
    [TUI_VIEW_SPEND] = {"spend", "Spend",
                        TUI_SRC_BIT(TUI_SRC_SPEND_DAY) | TUI_SRC_BIT(TUI_SRC_SPEND_MONTH),
                        spend_sorts, SY_ARRAY_LEN(spend_sorts)},
    [TUI_VIEW_FLEET] = {"fleet", "Fleet", TUI_SRC_BIT(TUI_SRC_FLEET), NULL, 0},
    [TUI_VIEW_POLICIES] = {"policies", "Policies", TUI_SRC_BIT(TUI_SRC_POLICIES), NULL, 0},
    [TUI_VIEW_EXPERIMENTS] = {"experiments", "Experiments", TUI_SRC_BIT(TUI_SRC_EXPERIMENTS), NULL,
                              0},
};

const char *tui_view_name(enum tui_view v)
{
    return v < TUI_VIEW_COUNT ? views[v].name : "?";
}

const char *tui_view_title(enum tui_view v)
{
    return v < TUI_VIEW_COUNT ? views[v].title : "?";
}

int tui_view_parse(const char *name, enum tui_view *out)
{
    for (unsigned i = 0; i < TUI_VIEW_COUNT; i++) {
        if (strcmp(name, views[i].name) == 0 || (name[0] == (char)('1' + i) && !name[1])) {
            *out = (enum tui_view)i;
            return 0;
        }
    }
    return -EINVAL;
}

unsigned tui_view_sources(enum tui_view v)
{
    return v < TUI_VIEW_COUNT ? views[v].sources : 0;
}

unsigned tui_view_sort_count(enum tui_view v)
{
    return v < TUI_VIEW_COUNT ? views[v].nsorts : 0;
}

const char *tui_view_sort_name(enum tui_view v, unsigned sort)
{
    if (v >= TUI_VIEW_COUNT || sort >= views[v].nsorts)
        return "";
    return views[v].sorts[sort];
}

void tui_view_render(enum tui_view v, const struct tui_model *m, const struct tui_view_opts *o,
                     struct tui_lines *out)
{
    switch (v) {
    case TUI_VIEW_OVERVIEW:
        tui_view_overview(m, o, out);
        return;
    case TUI_VIEW_TRAFFIC:
        tui_view_traffic(m, o, out);
        return;
    case TUI_VIEW_SPEND:
        tui_view_spend(m, o, out);
        return;
    case TUI_VIEW_FLEET:
        tui_view_fleet(m, o, out);
        return;
    case TUI_VIEW_POLICIES:
        tui_view_policies(m, o, out);
        return;
    case TUI_VIEW_EXPERIMENTS:
        tui_view_experiments(m, o, out);
        return;
    case TUI_VIEW_COUNT:
        break;
    }
}

/* ---- helpers (tui_view_util.h) ------------------------------------------------------ */

static bool has_data(const struct tui_model *m, enum tui_src src)
{
    switch (src) {
    case TUI_SRC_STATS:
        return m->stats;
    case TUI_SRC_FLEET:
        return m->fleet;
    case TUI_SRC_POLICIES:
        return m->policies;
    case TUI_SRC_SPEND_DAY:
        return m->spend_day;
    case TUI_SRC_SPEND_MONTH:
        return m->spend_month;
    case TUI_SRC_EXPERIMENTS:
        return m->experiments || m->src[src].absent;
    case TUI_SRC_COUNT:
        break;
    }
    return false;
}

bool tui_view_need(const struct tui_model *m, enum tui_src src, const struct tui_view_opts *o,
                   struct tui_lines *out)
{
    static const char *const paths[TUI_SRC_COUNT] = {
        "/v1/stats",
        "/v1/fleet",
        "/v1/policies",
        "/v1/spend?period=day",
        "/v1/spend?period=month",
        "/v1/experiments",
    };

    if (has_data(m, src))
        return true;
    if (m->src[src].error)
        tui_view_text(out, o, TUI_S_BAD, "no data: %s", m->src[src].error);
    else
        tui_view_text(out, o, TUI_S_DIM, "waiting for GET %s", paths[src]);
    return false;
}

static void vline(struct tui_lines *out, const struct tui_view_opts *o, size_t indent,
                  enum tui_style style, const char *fmt, va_list ap)
{
    struct tui_line *l = tui_lines_add(out);
    char buf[1024];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    tui_line_pad(l, TUI_S_NORMAL, indent);
    tui_line_put(l, style, buf);
    if (o->width)
        tui_line_fit(l, o->width, o->utf8);
}

void tui_view_heading(struct tui_lines *out, const struct tui_view_opts *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vline(out, o, 0, TUI_S_TITLE, fmt, ap);
    va_end(ap);
}

void tui_view_text(struct tui_lines *out, const struct tui_view_opts *o, enum tui_style style,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vline(out, o, TUI_INDENT, style, fmt, ap);
    va_end(ap);
}

void tui_view_blank(struct tui_lines *out)
{
    tui_lines_add(out);
}

void tui_view_kv(struct tui_lines *out, const struct tui_view_opts *o, const struct tui_kv *kv,
                 size_t n)
{
    size_t lw[2] = {0, 0}, vw[2] = {0, 0};
    size_t per_line = 2;

    /* Two pairs a line when both columns fit, each column as wide as its widest pair. */
    for (size_t i = 0; i < n; i++) {
        size_t l = tui_text_cols(kv[i].label, strlen(kv[i].label));
        size_t v = tui_text_cols(kv[i].value, strlen(kv[i].value));

        lw[i % 2] = l > lw[i % 2] ? l : lw[i % 2];
        vw[i % 2] = v > vw[i % 2] ? v : vw[i % 2];
    }
    if (o->width && TUI_INDENT + lw[0] + 2 + vw[0] + 4 + lw[1] + 2 + vw[1] > o->width) {
        per_line = 1;
        lw[0] = lw[0] > lw[1] ? lw[0] : lw[1];
    }
    for (size_t i = 0; i < n; i += per_line) {
        struct tui_line *l = tui_lines_add(out);
        size_t col = TUI_INDENT;

        tui_line_pad(l, TUI_S_NORMAL, TUI_INDENT);
        for (size_t j = i; j < i + per_line && j < n; j++) {
            size_t c = j - i;

            tui_line_pad(l, TUI_S_NORMAL, col);
            tui_line_put(l, TUI_S_LABEL, kv[j].label);
            tui_line_pad(l, TUI_S_NORMAL, col + lw[c] + 2);
            tui_line_put(l, kv[j].style, kv[j].value);
            col += lw[c] + 2 + vw[c] + 4;
        }
        if (o->width)
            tui_line_fit(l, o->width, o->utf8);
    }
}

enum tui_style tui_view_rate_style(double error_rate)
{
    if (isnan(error_rate) || error_rate <= 0.0)
        return TUI_S_NORMAL;
    return error_rate >= 0.05 ? TUI_S_BAD : TUI_S_WARN;
}

int tui_view_cmp_desc(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    return a > b ? -1 : a < b ? 1 : 0;
}

const char *tui_view_or(const char *s, const char *empty)
{
    return s && *s ? s : empty;
}
