/* tui/tui_view_fleet.c - the Fleet view (/v1/fleet: each proxy, its acked version and
 * last NACK) and the Policies view (/v1/policies: the version history).
 *
 * A connected proxy whose acked version is not the active one is "behind": after a push
 * that is the question an operator has (has everyone taken it?), so it is counted in the
 * heading and marked in its row.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sy_util.h"
#include "tui_format.h"
#include "tui_table.h"
#include "tui_view_util.h"

void tui_view_fleet(const struct tui_model *m, const struct tui_view_opts *o, struct tui_lines *out)
{
    static const struct tui_col cols[] = {
        /* The NACK text matters more than the build and the zone. */
        {"NODE", TUI_ALIGN_LEFT, 0, 8},       {"ZONE", TUI_ALIGN_LEFT, 11, 0},
        {"ADDRESS", TUI_ALIGN_LEFT, 2, 0},    {"CONNECTED", TUI_ALIGN_LEFT, 0, 0},
        {"ACKED", TUI_ALIGN_LEFT, 0, 0},      {"LAST SEEN", TUI_ALIGN_LEFT, 0, 0},
        {"LAST NACK", TUI_ALIGN_LEFT, 1, 16}, {"BUILD", TUI_ALIGN_LEFT, 12, 0},
    };
    const struct tui_fleet *f = m->fleet;
    size_t connected = 0, behind = 0, nacked = 0;
    struct tui_table *t;

    if (!tui_view_need(m, TUI_SRC_FLEET, o, out))
        return;
    t = tui_table_new(cols, SY_ARRAY_LEN(cols));
    for (size_t i = 0; i < f->n_proxies; i++) {
        const struct tui_proxy *p = &f->proxies[i];
        bool is_behind = p->connected && f->active_version && p->acked_version != f->active_version;
        enum tui_style row = p->connected ? TUI_S_NORMAL : TUI_S_DIM;
        char b[TUI_NUM_MAX], c[TUI_NUM_MAX];

        connected += p->connected;
        behind += is_behind;
        nacked += p->has_nack;
        tui_table_cell(t, row, tui_view_or(p->node_id, "?"));
        tui_table_cell(t, row, tui_view_or(p->zone, "-"));
        tui_table_cell(t, row, tui_view_or(p->address, "-"));
        if (p->connected && p->connected_since_ms > 0)
            tui_table_cellf(t, TUI_S_GOOD, "yes, %s",
                            tui_fmt_duration(b, sizeof(b), o->now_ms - p->connected_since_ms));
        else
            tui_table_cell(t, p->connected ? TUI_S_GOOD : TUI_S_DIM, p->connected ? "yes" : "no");
        if (!p->acked_version)
            tui_table_cell(t, row, "-");
        else if (is_behind)
            tui_table_cellf(t, TUI_S_WARN, "%" PRId64 " (behind)", p->acked_version);
        else
            tui_table_cellf(t, row, "%" PRId64, p->acked_version);
        tui_table_cell(t, row, tui_fmt_ago(b, sizeof(b), p->last_seen_ms, o->now_ms));
        if (p->has_nack)
            tui_table_cellf(t, TUI_S_BAD, "v%s: %s (%s)", tui_view_or(p->nack_version, "?"),
                            tui_view_or(p->nack_error, "no reason given"),
                            tui_fmt_ago(c, sizeof(c), p->nack_at_ms, o->now_ms));
        else
            tui_table_cell(t, row, "-");
        tui_table_cell(t, row, tui_view_or(p->build_version, "-"));
    }
    if (f->active_version)
        tui_view_heading(out, o, "Fleet: control plane %s, active version %" PRId64,
                         tui_view_or(f->control_plane, "?"), f->active_version);
    else
        tui_view_heading(out, o, "Fleet: control plane %s, no active version",
                         tui_view_or(f->control_plane, "?"));
    if (f->n_proxies == 0) {
        tui_view_text(out, o, TUI_S_DIM, "no proxies have connected");
    } else {
        tui_view_text(out, o, behind || nacked ? TUI_S_WARN : TUI_S_NORMAL,
                      "%zu prox%s: %zu connected, %zu behind, %zu with a NACK", f->n_proxies,
                      f->n_proxies == 1 ? "y" : "ies", connected, behind, nacked);
        tui_view_blank(out);
        tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    }
    tui_table_free(t);
}

void tui_view_policies(const struct tui_model *m, const struct tui_view_opts *o,
                       struct tui_lines *out)
{
    static const struct tui_col cols[] = {
        {"ACTIVE", TUI_ALIGN_LEFT, 0, 0},        {"VERSION", TUI_ALIGN_RIGHT, 0, 0},
        {"CREATED (UTC)", TUI_ALIGN_LEFT, 0, 0}, {"HASH", TUI_ALIGN_LEFT, 2, 0},
        {"ROLLBACK OF", TUI_ALIGN_RIGHT, 1, 0},  {"NOTE", TUI_ALIGN_LEFT, 0, 8},
    };
    const struct tui_policies *p = m->policies;
    struct tui_table *t;

    if (!tui_view_need(m, TUI_SRC_POLICIES, o, out))
        return;
    if (p->active)
        tui_view_heading(out, o,
                         "Policies: active version %" PRId64 ", %zu version%s, newest first",
                         p->active, p->n_versions, p->n_versions == 1 ? "" : "s");
    else
        tui_view_heading(out, o, "Policies: none active, %zu version%s", p->n_versions,
                         p->n_versions == 1 ? "" : "s");
    if (p->n_versions == 0) {
        tui_view_text(out, o, TUI_S_DIM,
                      "no policy has been pushed (switchyardctl policy push FILE)");
        return;
    }
    t = tui_table_new(cols, SY_ARRAY_LEN(cols));
    for (size_t i = 0; i < p->n_versions; i++) {
        const struct tui_policy *v = &p->versions[i];
        bool active = v->active || (p->active && v->version == p->active);
        enum tui_style row = active ? TUI_S_GOOD : TUI_S_NORMAL;
        char b[TUI_NUM_MAX];

        tui_table_cell(t, row, active ? "*" : "");
        tui_table_cellf(t, row, "%" PRId64, v->version);
        tui_table_cell(t, row, tui_fmt_utc(b, sizeof(b), v->created_ms));
        tui_table_cellf(t, row, "%.12s", tui_view_or(v->hash, "-"));
        if (v->rollback_of)
            tui_table_cellf(t, row, "%" PRId64, v->rollback_of);
        else
            tui_table_cell(t, row, "-");
        tui_table_cell(t, row, tui_view_or(v->note, ""));
    }
    tui_table_render(t, o->width, TUI_INDENT, o->utf8, out);
    tui_table_free(t);
}
