/* tui/tui_view_spend.c - the Spend view: per tenant and per model, today and this month,
 * from /v1/spend?period=day and ?period=month.
 *
 * The two replies are joined by tenant name (a tenant may have spent this month but not
 * today). The budget bar uses the monthly budget when the policy sets one, else the daily
 * one. Per-model projections are the month's spend extrapolated linearly, like the
 * server's per-tenant projected_usd.
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

enum spend_sort { SORT_MONTH = 0, SORT_TODAY, SORT_PROJECTED, SORT_NAME };

struct row {
    const char *provider; /* model rows */
    const char *name;     /* tenant, or model */
    int64_t requests;     /* this month */
    double today, month, projected;
    double budget; /* tenants: NAN when none */
    bool budget_monthly;
};

struct rows {
    struct row *v;
    size_t n;
    size_t cap;
};

static struct row *find_or_add(struct rows *rs, const char *provider, const char *name)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct row *r = &rs->v[i];

        if (strcmp(r->name, name) == 0 &&
            strcmp(r->provider ? r->provider : "", provider ? provider : "") == 0)
            return r;
    }
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->v = sy_xrealloc(rs->v, rs->cap * sizeof(*rs->v));
    }
    rs->v[rs->n] = (struct row){.provider = provider, .name = name, .budget = NAN};
    return &rs->v[rs->n++];
}

static double value(double v)
{
    return isnan(v) ? 0.0 : v;
}

/* Adds the tenants and models of one period's reply to <tenants> and <models>. */
static void add_period(const struct tui_spend *s, bool month, struct rows *tenants,
                       struct rows *models)
{
    double elapsed = month ? s->elapsed_fraction : NAN;

    for (size_t i = 0; i < s->n_tenants; i++) {
        const struct tui_spend_tenant *t = &s->tenants[i];
        struct row *r = find_or_add(tenants, NULL, t->tenant ? t->tenant : "");

        if (month) {
            r->month = value(t->cost_usd);
            r->projected = isnan(t->projected_usd) ? r->month : t->projected_usd;
            r->requests = t->requests;
            if (!isnan(t->budget_usd)) {
                r->budget = t->budget_usd;
                r->budget_monthly = true;
            }
        } else {
            r->today = value(t->cost_usd);
            if (!r->budget_monthly && !isnan(t->budget_usd))
                r->budget = t->budget_usd;
        }
        for (size_t j = 0; j < t->n_models; j++) {
            const struct tui_spend_model *sm = &t->models[j];
            struct row *mr =
                find_or_add(models, sm->provider ? sm->provider : "", sm->model ? sm->model : "");

            if (month) {
                mr->month += value(sm->cost_usd);
                mr->requests += sm->requests;
                mr->projected = !isnan(elapsed) && elapsed > 0.0 && elapsed < 1.0
                                    ? mr->month / elapsed
                                    : mr->month;
            } else {
                mr->today += value(sm->cost_usd);
            }
        }
    }
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
    const struct row *a = pa;
    const struct row *b = pb;
    enum spend_sort key = *(const enum spend_sort *)arg;
    int c = 0;

    switch (key) {
    case SORT_MONTH:
        c = tui_view_cmp_desc(a->month, b->month);
        break;
    case SORT_TODAY:
        c = tui_view_cmp_desc(a->today, b->today);
        break;
    case SORT_PROJECTED:
        c = tui_view_cmp_desc(a->projected, b->projected);
        break;
    case SORT_NAME:
        break;
    }
    if (c)
        return c;
    c = strcmp(a->provider ? a->provider : "", b->provider ? b->provider : "");
    return c ? c : strcmp(a->name, b->name);
}

/* The budget cell of tenant row <r>: a bar, the share and the budget. */
static void budget_cell(struct tui_table *t, const struct row *r, const struct tui_view_opts *o)
{
    char bar[64], pct[TUI_NUM_MAX], usd[TUI_NUM_MAX];
    double spent = r->budget_monthly ? r->month : r->today;
    double frac;
    enum tui_style style = TUI_S_GOOD;

    if (isnan(r->budget) || r->budget <= 0.0) {
        tui_table_cell(t, TUI_S_DIM, "-");
        return;
    }
    frac = spent / r->budget;
    if (frac >= 1.0)
        style = TUI_S_BAD;
    else if (frac >= 0.8 || (r->budget_monthly && r->projected > r->budget))
        style = TUI_S_WARN;
    tui_table_cellf(t, style, "%s %s of %s/%s", tui_fmt_bar(bar, sizeof(bar), frac, 10, o->utf8),
                    tui_fmt_pct(pct, sizeof(pct), frac), tui_fmt_usd(usd, sizeof(usd), r->budget),
                    r->budget_monthly ? "mo" : "day");
}

static void tenants_table(struct rows *rs, enum spend_sort key, const struct tui_view_opts *o,
                          struct tui_lines *out)
{
    static const struct tui_col cols[] = {
        {"TENANT", TUI_ALIGN_LEFT, 0, 10},    {"REQS", TUI_ALIGN_RIGHT, 3, 0},
        {"TODAY", TUI_ALIGN_RIGHT, 0, 0},     {"MONTH", TUI_ALIGN_RIGHT, 0, 0},
        {"PROJECTED", TUI_ALIGN_RIGHT, 1, 0}, {"BUDGET", TUI_ALIGN_LEFT, 2, 0},
    };
    static const size_t sort_col[] = {
        [SORT_MONTH] = 3, [SORT_TODAY] = 2, [SORT_PROJECTED] = 4, [SORT_NAME] = 0};
    struct tui_table *t = tui_table_new(cols, SY_ARRAY_LEN(cols));
    char b[TUI_NUM_MAX];

    if (rs->n)
        qsort_r(rs->v, rs->n, sizeof(*rs->v), cmp_rows, &key);
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *r = &rs->v[i];

        tui_table_cell(t, TUI_S_NORMAL, tui_view_or(r->name, "(none)"));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_count(b, sizeof(b), r->requests));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_usd(b, sizeof(b), r->today));
        tui_table_cell(t, TUI_S_VALUE, tui_fmt_usd(b, sizeof(b), r->month));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_usd(b, sizeof(b), r->projected));
        budget_cell(t, r, o);
    }
    tui_table_sorted(t, sort_col[key], key != SORT_NAME);
    tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    tui_table_free(t);
}

static void models_table(struct rows *rs, enum spend_sort key, const struct tui_view_opts *o,
                         struct tui_lines *out)
{
    static const struct tui_col cols[] = {
        {"PROVIDER/MODEL", TUI_ALIGN_LEFT, 0, 14}, {"REQS", TUI_ALIGN_RIGHT, 2, 0},
        {"TODAY", TUI_ALIGN_RIGHT, 0, 0},          {"MONTH", TUI_ALIGN_RIGHT, 0, 0},
        {"PROJECTED", TUI_ALIGN_RIGHT, 1, 0},
    };
    static const size_t sort_col[] = {
        [SORT_MONTH] = 3, [SORT_TODAY] = 2, [SORT_PROJECTED] = 4, [SORT_NAME] = 0};
    struct tui_table *t = tui_table_new(cols, SY_ARRAY_LEN(cols));
    char b[TUI_NUM_MAX];

    if (rs->n)
        qsort_r(rs->v, rs->n, sizeof(*rs->v), cmp_rows, &key);
    for (size_t i = 0; i < rs->n; i++) {
        const struct row *r = &rs->v[i];

        tui_table_cellf(t, TUI_S_NORMAL, "%s/%s", tui_view_or(r->provider, "-"),
                        tui_view_or(r->name, "-"));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_count(b, sizeof(b), r->requests));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_usd(b, sizeof(b), r->today));
        tui_table_cell(t, TUI_S_VALUE, tui_fmt_usd(b, sizeof(b), r->month));
        tui_table_cell(t, TUI_S_NORMAL, tui_fmt_usd(b, sizeof(b), r->projected));
    }
    tui_table_sorted(t, sort_col[key], key != SORT_NAME);
    tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    tui_table_free(t);
}

void tui_view_spend(const struct tui_model *m, const struct tui_view_opts *o, struct tui_lines *out)
{
    const struct tui_spend *day = m->spend_day;
    const struct tui_spend *month = m->spend_month;
    enum spend_sort key = o->sort <= SORT_NAME ? (enum spend_sort)o->sort : SORT_MONTH;
    struct rows tenants = {0}, models = {0};
    struct tui_kv kv[4];
    char l0[48], l1[48], b[TUI_NUM_MAX], pct[TUI_NUM_MAX];
    size_t n = 0;
    bool have_day, have_month;

    have_day = tui_view_need(m, TUI_SRC_SPEND_DAY, o, out);
    have_month = tui_view_need(m, TUI_SRC_SPEND_MONTH, o, out);
    if (!have_day && !have_month)
        return;
    memset(kv, 0, sizeof(kv));
    tui_view_heading(out, o, "Spend (UTC days; sorted by %s)",
                     tui_view_sort_name(TUI_VIEW_SPEND, key));
    if (have_day) {
        snprintf(l0, sizeof(l0), "Today %s", tui_view_or(day->date, ""));
        kv[n].label = l0;
        tui_fmt_usd(kv[n].value, sizeof(kv[n].value), day->total_usd);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "projected";
        tui_fmt_usd(kv[n].value, sizeof(kv[n].value), day->projected_usd);
        kv[n++].style = TUI_S_NORMAL;
        add_period(day, false, &tenants, &models);
    }
    if (have_month) {
        snprintf(l1, sizeof(l1), "Month %s", tui_view_or(month->date, ""));
        kv[n].label = l1;
        tui_fmt_usd(kv[n].value, sizeof(kv[n].value), month->total_usd);
        kv[n++].style = TUI_S_VALUE;
        kv[n].label = "projected";
        snprintf(kv[n].value, sizeof(kv[n].value), "%s (%s of the month gone)",
                 tui_fmt_usd(b, sizeof(b), month->projected_usd),
                 tui_fmt_pct(pct, sizeof(pct), month->elapsed_fraction));
        kv[n++].style = TUI_S_NORMAL;
        add_period(month, true, &tenants, &models);
    }
    tui_view_kv(out, o, kv, n);
    tui_view_blank(out);
    tui_view_heading(out, o, "Tenants");
    if (tenants.n == 0)
        tui_view_text(out, o, TUI_S_DIM, "no spend recorded");
    else
        tenants_table(&tenants, key, o, out);
    tui_view_blank(out);
    tui_view_heading(out, o, "Models");
    if (models.n == 0)
        tui_view_text(out, o, TUI_S_DIM, "no spend recorded");
    else
        models_table(&models, key, o, out);
    free(tenants.v);
    free(models.v);
}
