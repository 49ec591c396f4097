/* tui/tui_view_traffic.c - the Overview (fleet-wide numbers) and Traffic (per model,
 * provider and route) views, both from /v1/stats; the overview adds /v1/fleet.
 *
 * Rows keep the server's order (requests, highest first) unless the operator picks
 * another sort key; a NAN (no sample in the window) always sorts last.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"
#include "tui_format.h"
#include "tui_table.h"
#include "tui_view_util.h"

/* The traffic view's sort keys, in tui_views.c's traffic_sorts order. */
enum traffic_sort {
    SORT_RPS = 0,
    SORT_ERR,
    SORT_P50,
    SORT_P95,
    SORT_P99,
    SORT_TTFT,
    SORT_TOKS,
    SORT_COST,
    SORT_NAME,
};

/* Which name a row goes by. */
enum row_kind { ROW_MODEL, ROW_PROVIDER, ROW_ROUTE };

static void row_name(const struct tui_traffic *t, enum row_kind kind, char *buf, size_t size)
{
    switch (kind) {
    case ROW_MODEL:
        snprintf(buf, size, "%s/%s", tui_view_or(t->provider, "-"), tui_view_or(t->model, "-"));
        return;
    case ROW_PROVIDER:
        snprintf(buf, size, "%s", tui_view_or(t->provider, "(none)"));
        return;
    case ROW_ROUTE:
        snprintf(buf, size, "%s", tui_view_or(t->route, "(none)"));
        return;
    }
}

struct sort_ctx {
    enum traffic_sort key;
    enum row_kind kind;
};

static double sort_value(const struct tui_traffic *t, enum traffic_sort key)
{
    switch (key) {
    case SORT_RPS:
        return isnan(t->rps) ? (double)t->requests : t->rps;
    case SORT_ERR:
        return t->error_rate;
    case SORT_P50:
        return t->latency.p50;
    case SORT_P95:
        return t->latency.p95;
    case SORT_P99:
        return t->latency.p99;
    case SORT_TTFT:
        return t->ttft.p50;
    case SORT_TOKS:
        return t->tokens_per_s;
    case SORT_COST:
        return t->cost_per_hour_usd;
    case SORT_NAME:
        break;
    }
    return NAN;
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
    const struct tui_traffic *a = *(const struct tui_traffic *const *)pa;
    const struct tui_traffic *b = *(const struct tui_traffic *const *)pb;
    const struct sort_ctx *ctx = arg;
    char na[256], nb[256];
    int c;

    if (ctx->key != SORT_NAME) {
        c = tui_view_cmp_desc(sort_value(a, ctx->key), sort_value(b, ctx->key));
        if (c)
            return c;
    }
    row_name(a, ctx->kind, na, sizeof(na));
    row_name(b, ctx->kind, nb, sizeof(nb));
    c = strcmp(na, nb);
    if (c)
        return c;
    return a < b ? -1 : a > b; /* stable: server order */
}

/* The columns of a traffic table: the name, then numbers. Order matters (add_row). */
enum {
    COL_NAME,
    COL_REQS,
    COL_RPS,
    COL_ERR,
    COL_P50,
    COL_P95,
    COL_P99,
    COL_TTFT,
    COL_TOKS,
    COL_COST,
    NCOLS
};

static void add_row(struct tui_table *t, const struct tui_traffic *r, const char *name,
                    enum tui_style name_style)
{
    char b[TUI_NUM_MAX];

    tui_table_cell(t, name_style, name);
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_count(b, sizeof(b), r->requests));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_rate(b, sizeof(b), r->rps));
    tui_table_cell(t, tui_view_rate_style(r->error_rate), tui_fmt_pct(b, sizeof(b), r->error_rate));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_ms(b, sizeof(b), r->latency.p50));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_ms(b, sizeof(b), r->latency.p95));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_ms(b, sizeof(b), r->latency.p99));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_ms(b, sizeof(b), r->ttft.p50));
    tui_table_cell(t, TUI_S_NORMAL, tui_fmt_rate(b, sizeof(b), r->tokens_per_s));
    tui_table_cellf(t, TUI_S_NORMAL, "%s", tui_fmt_usd(b, sizeof(b), r->cost_per_hour_usd));
}

/* Renders the rows <rows> (<n>) of one kind as a table sorted by <key>, with a total row
 * when <totals> is given. At most <limit> rows (0: all). */
static void traffic_table(const struct tui_traffic *rows, size_t n, enum row_kind kind,
                          const char *name_title, enum traffic_sort key,
                          const struct tui_traffic *totals, size_t limit,
                          const struct tui_view_opts *o, struct tui_lines *out)
{
    /* Dropped when narrow: requests (before names are cut), then tokens/s, p95, TTFT. */
    const struct tui_col cols[NCOLS] = {
        [COL_NAME] = {name_title, TUI_ALIGN_LEFT, 0, 14},
        [COL_REQS] = {"REQS", TUI_ALIGN_RIGHT, TUI_DROP_EARLY, 0},
        [COL_RPS] = {"RPS", TUI_ALIGN_RIGHT, 0, 0},
        [COL_ERR] = {"ERR%", TUI_ALIGN_RIGHT, 0, 0},
        [COL_P50] = {"P50", TUI_ALIGN_RIGHT, 0, 0},
        [COL_P95] = {"P95", TUI_ALIGN_RIGHT, 3, 0},
        [COL_P99] = {"P99", TUI_ALIGN_RIGHT, 0, 0},
        [COL_TTFT] = {"TTFT", TUI_ALIGN_RIGHT, 2, 0},
        [COL_TOKS] = {"TOK/S", TUI_ALIGN_RIGHT, 4, 0},
        [COL_COST] = {"$/H", TUI_ALIGN_RIGHT, 0, 0},
    };
    static const size_t sort_col[] = {
        [SORT_RPS] = COL_RPS,   [SORT_ERR] = COL_ERR,   [SORT_P50] = COL_P50,
        [SORT_P95] = COL_P95,   [SORT_P99] = COL_P99,   [SORT_TTFT] = COL_TTFT,
        [SORT_TOKS] = COL_TOKS, [SORT_COST] = COL_COST, [SORT_NAME] = COL_NAME,
    };
    struct sort_ctx ctx = {key, kind};
    const struct tui_traffic **order = NULL;
    struct tui_table *t = tui_table_new(cols, NCOLS);
    size_t shown;

    if (n) {
        order = sy_xcalloc(n, sizeof(*order));
        for (size_t i = 0; i < n; i++)
            order[i] = &rows[i];
        qsort_r(order, n, sizeof(*order), cmp_rows, &ctx);
    }
    shown = limit && n > limit ? limit : n;
    for (size_t i = 0; i < shown; i++) {
        char name[256];

        row_name(order[i], kind, name, sizeof(name));
        add_row(t, order[i], name, TUI_S_NORMAL);
    }
    if (totals)
        add_row(t, totals, "TOTAL", TUI_S_VALUE);
    if (!limit)
        tui_table_sorted(t, sort_col[key], key != SORT_NAME);
    tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    if (shown < n)
        tui_view_text(out, o, TUI_S_DIM, "... and %zu more (2: Traffic)", n - shown);
    tui_table_free(t);
    free(order);
}

void tui_view_traffic(const struct tui_model *m, const struct tui_view_opts *o,
                      struct tui_lines *out)
{
    const struct tui_stats *s = m->stats;
    enum traffic_sort key = o->sort <= SORT_NAME ? (enum traffic_sort)o->sort : SORT_RPS;

    if (!tui_view_need(m, TUI_SRC_STATS, o, out))
        return;
    tui_view_heading(out, o, "Models, last %s (sorted by %s; TTFT is the p50 of streams)",
                     tui_view_or(s->window, "?"), tui_view_sort_name(TUI_VIEW_TRAFFIC, key));
    if (s->n_models == 0)
        tui_view_text(out, o, TUI_S_DIM, "no requests in this window");
    else
        traffic_table(s->models, s->n_models, ROW_MODEL, "PROVIDER/MODEL", key, &s->totals, 0, o,
                      out);
    tui_view_blank(out);
    tui_view_heading(out, o, "Providers");
    if (s->n_providers == 0)
        tui_view_text(out, o, TUI_S_DIM, "no requests in this window");
    else
        traffic_table(s->providers, s->n_providers, ROW_PROVIDER, "PROVIDER", key, NULL, 0, o, out);
    tui_view_blank(out);
    tui_view_heading(out, o, "Routes");
    if (s->n_routes == 0)
        tui_view_text(out, o, TUI_S_DIM, "no requests in this window");
    else
        traffic_table(s->routes, s->n_routes, ROW_ROUTE, "ROUTE", key, NULL, 0, o, out);
}

/* The proxies line of the overview from /v1/fleet. */
static void fleet_kv(const struct tui_fleet *f, struct tui_kv *kv)
{
    size_t connected = 0, behind = 0, nacked = 0;

    for (size_t i = 0; i < f->n_proxies; i++) {
        const struct tui_proxy *p = &f->proxies[i];

        connected += p->connected;
        behind += p->connected && f->active_version && p->acked_version != f->active_version;
        nacked += p->has_nack;
    }
    kv->label = "Proxies";
    snprintf(kv->value, sizeof(kv->value), "%zu connected of %zu", connected, f->n_proxies);
    kv->style = connected ? TUI_S_VALUE : TUI_S_WARN;
    if (behind || nacked) {
        size_t len = strlen(kv->value);

        snprintf(kv->value + len, sizeof(kv->value) - len, " (%zu behind, %zu NACK)", behind,
                 nacked);
        kv->style = TUI_S_WARN;
    }
}

void tui_view_overview(const struct tui_model *m, const struct tui_view_opts *o,
                       struct tui_lines *out)
{
    const struct tui_stats *s = m->stats;
    struct tui_kv kv[12];
    size_t n = 0;
    char a[TUI_NUM_MAX], b[TUI_NUM_MAX];

    memset(kv, 0, sizeof(kv));
    if (tui_view_need(m, TUI_SRC_STATS, o, out)) {
        const struct tui_traffic *t = &s->totals;

        if (s->proxies >= 0)
            tui_view_heading(out, o, "Traffic, last %s (%" PRId64 " prox%s reporting)",
                             tui_view_or(s->window, "?"), s->proxies,
                             s->proxies == 1 ? "y" : "ies");
        else
            tui_view_heading(out, o, "Traffic, last %s", tui_view_or(s->window, "?"));
        kv[n].label = "Requests/s";
        tui_fmt_rate(kv[n].value, sizeof(kv[n].value), t->rps);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Requests";
        tui_fmt_count(kv[n].value, sizeof(kv[n].value), t->requests);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Error rate";
        tui_fmt_pct(kv[n].value, sizeof(kv[n].value), t->error_rate);
        kv[n].style = tui_view_rate_style(t->error_rate);
        if (kv[n].style == TUI_S_NORMAL)
            kv[n].style = TUI_S_VALUE;
        n++;
        kv[n].label = "Errors";
        snprintf(kv[n].value, sizeof(kv[n].value), "%s 5xx, %s 4xx",
                 tui_fmt_count(a, sizeof(a), t->errors),
                 tui_fmt_count(b, sizeof(b), t->client_errors));
        kv[n++].style = t->errors ? TUI_S_BAD : TUI_S_VALUE;
        kv[n].label = "Latency p50";
        tui_fmt_ms(kv[n].value, sizeof(kv[n].value), t->latency.p50);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Latency p99";
        tui_fmt_ms(kv[n].value, sizeof(kv[n].value), t->latency.p99);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "TTFT p50";
        tui_fmt_ms(kv[n].value, sizeof(kv[n].value), t->ttft.p50);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "In flight";
        tui_fmt_count(kv[n].value, sizeof(kv[n].value), t->in_flight);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Tokens/s";
        tui_fmt_rate(kv[n].value, sizeof(kv[n].value), t->tokens_per_s);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Tokens";
        snprintf(kv[n].value, sizeof(kv[n].value), "%s in, %s out",
                 tui_fmt_count(a, sizeof(a), t->prompt_tokens),
                 tui_fmt_count(b, sizeof(b), t->completion_tokens));
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Spend rate";
        snprintf(kv[n].value, sizeof(kv[n].value), "%s/h",
                 tui_fmt_usd(a, sizeof(a), t->cost_per_hour_usd));
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "Cost";
        tui_fmt_usd(kv[n].value, sizeof(kv[n].value), t->cost_usd);
        kv[n++].style = TUI_S_VALUE;
        tui_view_kv(out, o, kv, n);
        if (m->n_history > 1) {
            size_t room = o->width > 30 ? o->width - 30 : 0;
            size_t k = m->n_history;
            char spark[3 * TUI_HISTORY + 1];

            if (o->width && k > room)
                k = room;
            if (k > 1)
                tui_view_text(out, o, TUI_S_GOOD, "%s  (requests/s, last %zu refreshes)",
                              tui_fmt_spark(spark, sizeof(spark),
                                            m->rps_history + (m->n_history - k), k, o->utf8),
                              k);
        }
    }
    tui_view_blank(out);
    tui_view_heading(out, o, "Fleet");
    n = 0;
    memset(kv, 0, sizeof(kv));
    if (tui_view_need(m, TUI_SRC_FLEET, o, out)) {
        int64_t active = m->fleet->active_version;

        if (!active && s)
            active = s->active_version;
        kv[n].label = "Policy";
        if (active)
            snprintf(kv[n].value, sizeof(kv[n].value), "version %" PRId64, active);
        else
            snprintf(kv[n].value, sizeof(kv[n].value), "none active");
        kv[n++].style = active ? TUI_S_VALUE : TUI_S_WARN;
        fleet_kv(m->fleet, &kv[n++]);
        tui_view_kv(out, o, kv, n);
    }
    if (s && s->n_providers) {
        tui_view_blank(out);
        tui_view_heading(out, o, "Providers");
        traffic_table(s->providers, s->n_providers, ROW_PROVIDER, "PROVIDER", SORT_RPS, NULL, 5, o,
                      out);
    }
}
