/* tui/tui_model.c - the dashboard's model: latest good replies and how each fetch went.
 * See tui_model.h.
 */
#include "tui_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"
#include "tui_parse.h"

void tui_model_cleanup(struct tui_model *m)
{
    tui_stats_free(m->stats);
    tui_fleet_free(m->fleet);
    tui_policies_free(m->policies);
    tui_spend_free(m->spend_day);
    tui_spend_free(m->spend_month);
    tui_experiments_free(m->experiments);
    for (size_t i = 0; i < TUI_SRC_COUNT; i++)
        free(m->src[i].error);
    free(m->unreachable);
    memset(m, 0, sizeof(*m));
}

const char *tui_src_path(enum tui_src src, const char *window, char *buf, size_t size)
{
    switch (src) {
    case TUI_SRC_STATS:
        snprintf(buf, size, "/v1/stats?window=%s", window ? window : "1m");
        return buf;
    case TUI_SRC_FLEET:
        return "/v1/fleet";
    case TUI_SRC_POLICIES:
        return "/v1/policies";
    case TUI_SRC_SPEND_DAY:
        return "/v1/spend?period=day";
    case TUI_SRC_SPEND_MONTH:
        return "/v1/spend?period=month";
    case TUI_SRC_EXPERIMENTS:
        return "/v1/experiments";
    case TUI_SRC_COUNT:
        break;
    }
    return "/";
}

void tui_model_reset_history(struct tui_model *m)
{
    m->n_history = 0;
}

static void push_history(struct tui_model *m, double rps)
{
    if (m->n_history == TUI_HISTORY) {
        memmove(m->rps_history, m->rps_history + 1, (TUI_HISTORY - 1) * sizeof(double));
        m->n_history--;
    }
    m->rps_history[m->n_history++] = rps;
}

static void set_error(struct tui_model *m, enum tui_src src, char *text)
{
    free(m->src[src].error);
    m->src[src].error = text;
}

/* Parses a 2xx <body> for <src> into the model. Returns 0, or -EINVAL with *errmsg set. */
static int store_reply(struct tui_model *m, enum tui_src src, const char *body, size_t len,
                       char **errmsg)
{
    struct tui_stats *stats;
    struct tui_fleet *fleet;
    struct tui_policies *pol;
    struct tui_spend *spend;
    struct tui_experiments *exp;

    switch (src) {
    case TUI_SRC_STATS:
        if (tui_parse_stats(body, len, &stats, errmsg) < 0)
            return -EINVAL;
        /* A reply for another window than the history's starts a new history. */
        if (m->stats &&
            (!m->stats->window || !stats->window || strcmp(m->stats->window, stats->window) != 0))
            tui_model_reset_history(m);
        tui_stats_free(m->stats);
        m->stats = stats;
        push_history(m, stats->totals.rps);
        return 0;
    case TUI_SRC_FLEET:
        if (tui_parse_fleet(body, len, &fleet, errmsg) < 0)
            return -EINVAL;
        tui_fleet_free(m->fleet);
        m->fleet = fleet;
        return 0;
    case TUI_SRC_POLICIES:
        if (tui_parse_policies(body, len, &pol, errmsg) < 0)
            return -EINVAL;
        tui_policies_free(m->policies);
        m->policies = pol;
        return 0;
    case TUI_SRC_SPEND_DAY:
    case TUI_SRC_SPEND_MONTH:
        if (tui_parse_spend(body, len, &spend, errmsg) < 0)
            return -EINVAL;
        if (src == TUI_SRC_SPEND_DAY) {
            tui_spend_free(m->spend_day);
            m->spend_day = spend;
        } else {
            tui_spend_free(m->spend_month);
            m->spend_month = spend;
        }
        return 0;
    case TUI_SRC_EXPERIMENTS:
        if (tui_parse_experiments(body, len, &exp, errmsg) < 0)
            return -EINVAL;
        tui_experiments_free(m->experiments);
        m->experiments = exp;
        return 0;
    case TUI_SRC_COUNT:
        break;
    }
    *errmsg = sy_xstrdup("unknown source");
    return -EINVAL;
}

int tui_model_apply(struct tui_model *m, enum tui_src src, const char *window,
                    const char *transport_err, long status, const char *body, size_t len,
                    int64_t now_ms)
{
    struct tui_src_state *st = &m->src[src];
    char pbuf[64];
    const char *path = tui_src_path(src, window, pbuf, sizeof(pbuf));
    char *errmsg = NULL;

    if (transport_err) {
        free(m->unreachable);
        m->unreachable = sy_xstrdup(transport_err);
        set_error(m, src, sy_xasprintf("GET %s: %s", path, transport_err));
        return -EIO;
    }
    free(m->unreachable);
    m->unreachable = NULL;
    if (status == 404 && src == TUI_SRC_EXPERIMENTS) {
        tui_experiments_free(m->experiments);
        m->experiments = NULL;
        st->absent = true;
        st->updated_ms = now_ms;
        set_error(m, src, NULL);
        return 0;
    }
    if (status < 200 || status > 299) {
        char *text = tui_parse_error_text(status, body, len);

        set_error(m, src, sy_xasprintf("GET %s: %s", path, text));
        free(text);
        return -EPROTO;
    }
    if (store_reply(m, src, body ? body : "", body ? len : 0, &errmsg) < 0) {
        set_error(m, src, sy_xasprintf("GET %s: unexpected reply: %s", path, errmsg));
        free(errmsg);
        return -EPROTO;
    }
    st->absent = false;
    st->updated_ms = now_ms;
    set_error(m, src, NULL);
    return 0;
}
