/* controlplane/ctl/ctl_learn.c - `switchyardctl learn`: learned routing's state and the
 * operator's controls.
 *
 * `learn status` answers the questions an operator has about a learned route, in order:
 * who is learning (the leader), is it allowed to (frozen?), what did it last do and when is
 * the next update, and why (each target's posterior next to its weight). The actions print
 * what the server did in one line, the rollback with the version it activated. See
 * ctl_learn.h.
 */
#include "ctl_learn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_http.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "sy_json.h"
#include "sy_util.h"

/* Reads the number member <key> of <obj>: missing or null leaves *present false. */
static int num_opt(const cJSON *obj, const char *where, const char *key, double *out, bool *present,
                   char **errmsg)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    *present = false;
    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v)) {
        *errmsg = sy_xasprintf("%s%s%s: expected a number, got %s", where, *where ? "." : "", key,
                               sy_json_type_name(v));
        return -EINVAL;
    }
    *out = v->valuedouble;
    *present = true;
    return 0;
}

/* "a, b, c" of the string array <arr> (sanitised; caller frees). */
static char *join_strings(const cJSON *arr)
{
    const cJSON *it;
    char *out = sy_xstrdup("");

    cJSON_ArrayForEach(it, arr)
    {
        char *clean, *next;

        if (!cJSON_IsString(it))
            continue;
        clean = ctl_sanitize(it->valuestring);
        next = sy_xasprintf("%s%s%s", out, *out ? ", " : "", clean);
        free(clean);
        free(out);
        out = next;
    }
    return out;
}

/* Prints "<label><text>" with the server's text sanitised. */
static void print_clean(FILE *out, const char *label, const char *text)
{
    char *clean = ctl_sanitize(text);

    fprintf(out, "%s%s\n", label, clean);
    free(clean);
}

/* The cells of one target of route <where>. */
static int target_row(struct ctl_table *t, const cJSON *tg, const char *where, char **errmsg)
{
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(tg, "posterior");
    const char *model;
    int64_t weight;
    double share, cost, lat, mean = 0, n = 0;
    bool has_share, has_cost, has_lat, has_mean = false, has_n = false;
    char pw[128];

    if (ctl_json_str(tg, where, "model", true, &model, errmsg) < 0 ||
        ctl_json_int(tg, where, "weight", &weight, errmsg) < 0 ||
        num_opt(tg, where, "share", &share, &has_share, errmsg) < 0 ||
        num_opt(tg, where, "cost_usd", &cost, &has_cost, errmsg) < 0 ||
        num_opt(tg, where, "latency_ms", &lat, &has_lat, errmsg) < 0)
        return -EINVAL;
    snprintf(pw, sizeof(pw), "%s.posterior", where);
    if (post && !cJSON_IsNull(post) &&
        (!cJSON_IsObject(post) || num_opt(post, pw, "mean", &mean, &has_mean, errmsg) < 0 ||
         num_opt(post, pw, "n", &n, &has_n, errmsg) < 0)) {
        if (!*errmsg)
            *errmsg =
                sy_xasprintf("%s: expected an object or null, got %s", pw, sy_json_type_name(post));
        return -EINVAL;
    }
    ctl_table_cell(t, model);
    ctl_table_cellf(t, "%" PRId64, weight);
    if (has_share)
        ctl_table_cellf(t, "%.1f%%", 100 * share);
    else
        ctl_table_cell(t, "-");
    if (has_mean) {
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(post, "ci95");
        const cJSON *lo = cJSON_GetArrayItem(ci, 0), *hi = cJSON_GetArrayItem(ci, 1);

        ctl_table_cellf(t, "%.2f", mean);
        if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi))
            ctl_table_cellf(t, "%.2f-%.2f", lo->valuedouble, hi->valuedouble);
        else
            ctl_table_cell(t, "-");
    } else {
        ctl_table_cell(t, "-");
        ctl_table_cell(t, "-");
    }
    if (has_n)
        ctl_table_cellf(t, "%.0f", n);
    else
        ctl_table_cell(t, "-");
    if (has_cost && cost > 0)
        ctl_table_cellf(t, "$%.6f", cost);
    else
        ctl_table_cell(t, "-");
    if (has_lat && lat > 0)
        ctl_table_cellf(t, "%.1f", lat);
    else
        ctl_table_cell(t, "-");
    return 0;
}

static int route_block(FILE *out, const cJSON *r, const char *where, int64_t now, size_t width,
                       char **errmsg)
{
    static const char *const headers[] = {"MODEL",  "WEIGHT", "SHARE",    "UP",
                                          "95% CI", "N",      "COST/REQ", "P50 MS"};
    const char *name, *outcome, *message, *by;
    const cJSON *targets, *obj, *tg;
    bool frozen, has_eval, has_next, has_upd, has_ver;
    double eval, next, upd, ver, period, q = 0, c = 0, l = 0;
    bool has_period, hq, hc, hl;
    struct ctl_table *t;
    char ab[48], db[32], tw[64];
    size_t i = 0;
    int ret = 0;

    if (ctl_json_str(r, where, "route", true, &name, errmsg) < 0 ||
        ctl_json_bool(r, where, "frozen", false, &frozen, errmsg) < 0 ||
        num_opt(r, where, "update_period_s", &period, &has_period, errmsg) < 0 ||
        num_opt(r, where, "last_evaluated_unix_ms", &eval, &has_eval, errmsg) < 0 ||
        num_opt(r, where, "next_update_unix_ms", &next, &has_next, errmsg) < 0 ||
        num_opt(r, where, "last_update_unix_ms", &upd, &has_upd, errmsg) < 0 ||
        num_opt(r, where, "last_version", &ver, &has_ver, errmsg) < 0 ||
        ctl_json_str(r, where, "last_outcome", false, &outcome, errmsg) < 0 ||
        ctl_json_str(r, where, "last_message", false, &message, errmsg) < 0 ||
        ctl_json_str(r, where, "last_update_by", false, &by, errmsg) < 0 ||
        ctl_json_array(r, where, "targets", &targets, errmsg) < 0)
        return -EINVAL;
    obj = cJSON_GetObjectItemCaseSensitive(r, "objective");
    if (num_opt(obj, where, "quality", &q, &hq, errmsg) < 0 ||
        num_opt(obj, where, "cost", &c, &hc, errmsg) < 0 ||
        num_opt(obj, where, "latency", &l, &hl, errmsg) < 0)
        return -EINVAL;

    {
        char *clean = ctl_sanitize(name);
        fprintf(out, "route %s%s", clean, frozen ? " (frozen)" : "");
        free(clean);
    }
    if (has_period)
        fprintf(out, ": every %s, objective quality %g, cost %g, latency %g",
                ctl_fmt_duration(db, sizeof(db), (int64_t)period * 1000), q, c, l);
    fputc('\n', out);
    if (has_upd && has_ver) {
        fprintf(out, "  last update:  version %.0f", ver);
        if (by) {
            char *clean = ctl_sanitize(by);
            fprintf(out, " by %s", clean);
            free(clean);
        }
        fprintf(out, ", %s\n", ctl_fmt_ago(ab, sizeof(ab), (int64_t)upd, now));
    } else {
        fputs("  last update:  none yet\n", out);
    }
    if (has_eval) {
        snprintf(tw, sizeof(tw),
                 "  evaluated:    %s: %s: ", ctl_fmt_ago(ab, sizeof(ab), (int64_t)eval, now),
                 outcome ? outcome : "-");
        print_clean(out, tw, message ? message : "");
    }
    if (frozen)
        fputs("  next update:  none (frozen)\n", out);
    else if (has_next)
        fprintf(out, "  next update:  %s\n",
                next <= (double)now ? "due"
                                    : ctl_fmt_duration(db, sizeof(db), (int64_t)next - now));
    else
        fputs("  next update:  due (not evaluated yet)\n", out);

    t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    cJSON_ArrayForEach(tg, targets)
    {
        char tw2[64];

        snprintf(tw2, sizeof(tw2), "%s.targets[%zu]", where, i++);
        if (!cJSON_IsObject(tg)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", tw2, sy_json_type_name(tg));
            ret = -EINVAL;
            goto out_free_table;
        }
        if (target_row(t, tg, tw2, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
    }
    ctl_table_print(t, out, width);

out_free_table:
    ctl_table_free(t);
    return ret;
}

int ctl_learn_print(FILE *out, const cJSON *reply, int64_t now, size_t width, char **errmsg)
{
    const char *id, *leader;
    const cJSON *routes, *fr, *r;
    bool is_leader, frozen;
    int64_t active;
    bool has_active;
    size_t i = 0;
    char *list, *clean;

    if (ctl_json_str(reply, "", "id", false, &id, errmsg) < 0 ||
        ctl_json_str(reply, "", "leader", false, &leader, errmsg) < 0 ||
        ctl_json_bool(reply, "", "is_leader", false, &is_leader, errmsg) < 0 ||
        ctl_json_bool(reply, "", "frozen", false, &frozen, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "active_version", &active, &has_active, errmsg) < 0 ||
        ctl_json_array(reply, "", "routes", &routes, errmsg) < 0)
        return -EINVAL;
    fr = cJSON_GetObjectItemCaseSensitive(reply, "frozen_routes");

    if (leader) {
        clean = ctl_sanitize(leader);
        fprintf(out, "leader:    %s%s\n", clean,
                is_leader ? " (this replica)" : " (this replica follows)");
        free(clean);
    } else {
        fputs("leader:    none (no replica holds the election right now)\n", out);
    }
    list = join_strings(fr);
    if (frozen)
        fputs("learning:  frozen for every route\n", out);
    else if (*list)
        fprintf(out, "learning:  frozen for %s\n", list);
    else
        fputs("learning:  on\n", out);
    free(list);
    if (has_active)
        fprintf(out, "active:    version %" PRId64 "\n", active);
    if (!routes->child) {
        fputs("\nno learned routes in the active policy (routes with strategy: learned)\n", out);
        return 0;
    }
    cJSON_ArrayForEach(r, routes)
    {
        char where[32];

        snprintf(where, sizeof(where), "routes[%zu]", i++);
        if (!cJSON_IsObject(r)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", where, sy_json_type_name(r));
            return -EINVAL;
        }
        fputc('\n', out);
        if (route_block(out, r, where, now, width, errmsg) < 0)
            return -EINVAL;
    }
    return 0;
}

int ctl_learn_print_action(FILE *out, enum ctl_cmd cmd, const cJSON *reply, char **errmsg)
{
    const char *route, *message;
    bool frozen;
    char *list;

    if (ctl_json_str(reply, "", "route", false, &route, errmsg) < 0 ||
        ctl_json_bool(reply, "", "frozen", false, &frozen, errmsg) < 0)
        return -EINVAL;
    if (cmd == CTL_CMD_LEARN_ROLLBACK) {
        if (ctl_json_str(reply, "", "message", true, &message, errmsg) < 0)
            return -EINVAL;
        print_clean(out, "", message);
        return 0;
    }
    if (route) {
        char *clean = ctl_sanitize(route);
        fprintf(out, "learning %s for route %s\n",
                cmd == CTL_CMD_LEARN_FREEZE ? "frozen" : "resumed", clean);
        free(clean);
    } else {
        fprintf(out, "learning %s for every route\n",
                cmd == CTL_CMD_LEARN_FREEZE ? "frozen" : "resumed");
    }
    list = join_strings(cJSON_GetObjectItemCaseSensitive(reply, "frozen_routes"));
    if (frozen)
        fputs("frozen now: every route\n", out);
    else if (*list)
        fprintf(out, "frozen now: %s\n", list);
    else
        fputs("frozen now: nothing\n", out);
    free(list);
    return 0;
}

int ctl_learn_status(const struct ctl_args *a)
{
    char *errmsg = NULL;
    cJSON *reply;
    int rc;

    rc = ctl_call(a, "GET", "/v1/learn", NULL, NULL, 0, &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_learn_print(stdout, reply, (int64_t)(sy_wall_us() / 1000), ctl_term_width(),
                             &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}

int ctl_learn_action(const struct ctl_args *a)
{
    const char *path = a->cmd == CTL_CMD_LEARN_FREEZE     ? "/v1/learn/freeze"
                       : a->cmd == CTL_CMD_LEARN_UNFREEZE ? "/v1/learn/unfreeze"
                                                          : "/v1/learn/rollback";
    char *errmsg = NULL, *body = NULL;
    cJSON *reply;
    int rc;

    if (a->route) {
        cJSON *req = cJSON_CreateObject();

        cJSON_AddStringToObject(req, "route", a->route);
        body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        if (!body) {
            ctl_errorf("out of memory");
            return CTL_EXIT_USAGE;
        }
    }
    rc = ctl_call(a, "POST", path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
                  &reply);
    free(body);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_learn_print_action(stdout, a->cmd, reply, &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}
