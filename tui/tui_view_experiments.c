/* tui/tui_view_experiments.c - the Experiments view (/v1/experiments): each experiment's
 * arms with their feedback, posterior and probability of being best, and its test.
 *
 * Control planes that do not run experiments answer 404; that is not an error, the view
 * says so and the status line stays quiet.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sy_util.h"
#include "tui_format.h"
#include "tui_table.h"
#include "tui_view_util.h"

/* Whether arm <a> is the experiment's winner or promoted arm. */
static bool is_winner(const struct tui_experiment *e, const struct tui_arm *a)
{
    const char *w = e->promoted_arm ? e->promoted_arm : e->winner;

    return w && a->name && strcmp(w, a->name) == 0;
}

static void arms_table(const struct tui_experiment *e, const struct tui_view_opts *o,
                       struct tui_lines *out)
{
    /* SCORE (index 7) shows only for experiments whose arms report a mean score. */
    static const struct tui_col all[] = {
        {"ARM", TUI_ALIGN_LEFT, 0, 4},       {"MODEL", TUI_ALIGN_LEFT, 0, 8},
        {"SHARE", TUI_ALIGN_RIGHT, 0, 0},    {"REQS", TUI_ALIGN_RIGHT, 0, 0},
        {"FEEDBACK", TUI_ALIGN_RIGHT, 4, 0}, {"UP/DOWN", TUI_ALIGN_RIGHT, 5, 0},
        {"UP RATE", TUI_ALIGN_RIGHT, 0, 0},  {"SCORE", TUI_ALIGN_RIGHT, 0, 0},
        {"MEAN", TUI_ALIGN_RIGHT, 3, 0},     {"CI95", TUI_ALIGN_RIGHT, 6, 0},
        {"P(BEST)", TUI_ALIGN_RIGHT, 0, 0},  {"P50", TUI_ALIGN_RIGHT, 2, 0},
        {"P95", TUI_ALIGN_RIGHT, 7, 0},      {"$/REQ", TUI_ALIGN_RIGHT, 1, 0},
        {"ERR%", TUI_ALIGN_RIGHT, 1, 0},
    };
    struct tui_col cols[SY_ARRAY_LEN(all)];
    struct tui_table *t;
    bool has_score = false;
    double best = NAN;
    size_t n = 0;

    for (size_t i = 0; i < e->n_arms; i++) {
        if (!isnan(e->arms[i].prob_best) && (isnan(best) || e->arms[i].prob_best > best))
            best = e->arms[i].prob_best;
        has_score |= !isnan(e->arms[i].mean_score);
    }
    for (size_t i = 0; i < SY_ARRAY_LEN(all); i++)
        if (i != 7 || has_score)
            cols[n++] = all[i];
    t = tui_table_new(cols, n);
    for (size_t i = 0; i < e->n_arms; i++) {
        const struct tui_arm *a = &e->arms[i];
        bool winner = is_winner(e, a);
        enum tui_style row = winner ? TUI_S_GOOD : TUI_S_NORMAL;
        char b[TUI_NUM_MAX], c[TUI_NUM_MAX];

        tui_table_cell(t, row, tui_view_or(a->name, "?"));
        tui_table_cell(t, row, tui_view_or(a->model, "-"));
        tui_table_cellf(t, row, "%s", tui_fmt_pct(b, sizeof(b), a->share / 100.0));
        tui_table_cell(t, row, tui_fmt_count(b, sizeof(b), a->requests));
        tui_table_cell(t, row, tui_fmt_count(b, sizeof(b), a->feedback));
        tui_table_cellf(t, row, "%" PRId64 "/%" PRId64, a->up, a->down);
        tui_table_cell(t, row, tui_fmt_pct(b, sizeof(b), a->up_rate));
        if (has_score && isnan(a->mean_score))
            tui_table_cell(t, row, "-");
        else if (has_score)
            tui_table_cellf(t, row, "%.3f", a->mean_score);
        if (isnan(a->posterior_mean))
            tui_table_cell(t, row, "-");
        else
            tui_table_cellf(t, row, "%.3f", a->posterior_mean);
        if (isnan(a->ci_low) || isnan(a->ci_high))
            tui_table_cell(t, row, "-");
        else
            tui_table_cellf(t, row, "%.2f-%.2f", a->ci_low, a->ci_high);
        tui_table_cell(t, !isnan(best) && a->prob_best == best && !winner ? TUI_S_VALUE : row,
                       tui_fmt_pct(b, sizeof(b), a->prob_best));
        tui_table_cell(t, row, tui_fmt_ms(b, sizeof(b), a->latency_p50));
        tui_table_cell(t, row, tui_fmt_ms(b, sizeof(b), a->latency_p95));
        tui_table_cell(t, row, tui_fmt_usd(b, sizeof(b), a->cost_per_request_usd));
        tui_table_cell(t, tui_view_rate_style(a->error_rate),
                       tui_fmt_pct(c, sizeof(c), a->error_rate));
    }
    tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    tui_table_free(t);
}

void tui_view_experiments(const struct tui_model *m, const struct tui_view_opts *o,
                          struct tui_lines *out)
{
    const struct tui_experiments *x = m->experiments;

    if (!tui_view_need(m, TUI_SRC_EXPERIMENTS, o, out))
        return;
    if (m->src[TUI_SRC_EXPERIMENTS].absent || !x) {
        tui_view_heading(out, o, "Experiments");
        tui_view_text(out, o, TUI_S_DIM, "no experiments (the control plane does not report any)");
        return;
    }
    tui_view_heading(out, o, "Experiments: %zu", x->n);
    if (x->n == 0) {
        tui_view_text(out, o, TUI_S_DIM, "no experiments are defined");
        return;
    }
    for (size_t i = 0; i < x->n; i++) {
        const struct tui_experiment *e = &x->v[i];
        bool running = e->status && strcmp(e->status, "running") == 0;
        char pv[32] = "-";
        char b[TUI_NUM_MAX];

        if (e->policy_version)
            snprintf(pv, sizeof(pv), "%" PRId64, e->policy_version);
        tui_view_blank(out);
        tui_view_heading(out, o, "%s", tui_view_or(e->name, "?"));
        tui_view_text(out, o, running ? TUI_S_GOOD : TUI_S_NORMAL,
                      "%s; route %s, metric %s, policy version %s, min samples %s%s%s",
                      tui_view_or(e->status, "unknown status"), tui_view_or(e->route, "-"),
                      tui_view_or(e->metric, "-"), pv, tui_fmt_count(b, sizeof(b), e->min_samples),
                      e->stop_rule ? ", stop rule " : "", e->stop_rule ? e->stop_rule : "");
        if (e->promoted_arm && e->promoted_in_version)
            tui_view_text(out, o, TUI_S_GOOD, "promoted: arm %s in policy version %" PRId64,
                          e->promoted_arm, e->promoted_in_version);
        else if (e->promoted_arm)
            tui_view_text(out, o, TUI_S_GOOD, "promoted: arm %s", e->promoted_arm);
        else if (e->winner)
            tui_view_text(out, o, TUI_S_GOOD, "winner: %s", e->winner);
        else
            tui_view_text(out, o, TUI_S_DIM, "winner: none yet");
        if (e->has_test) {
            char z[32] = "-", p[32] = "-";

            if (!isnan(e->test_z))
                snprintf(z, sizeof(z), "%.2f", e->test_z);
            if (!isnan(e->test_p_value) && e->test_p_value < 0.001)
                snprintf(p, sizeof(p), "<0.001");
            else if (!isnan(e->test_p_value))
                snprintf(p, sizeof(p), "%.3f", e->test_p_value);
            tui_view_text(out, o, e->test_significant ? TUI_S_GOOD : TUI_S_NORMAL,
                          "test %s: z %s, p %s, %s", tui_view_or(e->test_method, "?"), z, p,
                          e->test_significant ? "significant" : "not significant");
        }
        if (e->n_arms == 0)
            tui_view_text(out, o, TUI_S_DIM, "no arms");
        else
            arms_table(e, o, out);
    }
}
