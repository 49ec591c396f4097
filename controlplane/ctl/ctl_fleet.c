/* controlplane/ctl/ctl_fleet.c - `switchyardctl fleet`: the proxies the control plane
 * knows and the policy version each one runs.
 *
 * A proxy whose acked version differs from the active one is marked "behind": that is
 * what an operator checks after a push (has everyone taken it?), so the summary line
 * counts them. See ctl_fleet.h.
 */
#include "ctl_fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "ctl_http.h"
#include "ctl_reply.h"
#include "ctl_table.h"
#include "sy_json.h"
#include "sy_util.h"

/* Formats the NACK cell from the last_nack object <nack> of <where>: "v8: <error>". */
static int nack_cell(struct ctl_table *t, const cJSON *nack, const char *where, char **errmsg)
{
    const cJSON *v;
    const char *err;
    char *w;
    int ret = 0;

    if (!nack || cJSON_IsNull(nack)) {
        ctl_table_cell(t, "-");
        return 0;
    }
    w = sy_xasprintf("%s.last_nack", where);
    if (!cJSON_IsObject(nack)) {
        *errmsg =
            sy_xasprintf("%s: expected an object or null, got %s", w, sy_json_type_name(nack));
        ret = -EINVAL;
        goto out_free_where;
    }
    if (ctl_json_str(nack, w, "error", false, &err, errmsg) < 0) {
        ret = -EINVAL;
        goto out_free_where;
    }
    /* The contract carries the version as a string; accept a number too. */
    v = cJSON_GetObjectItemCaseSensitive(nack, "version");
    if (cJSON_IsString(v) && *v->valuestring)
        ctl_table_cellf(t, "v%s: %s", v->valuestring, err ? err : "(no reason given)");
    else if (cJSON_IsNumber(v))
        ctl_table_cellf(t, "v%.0f: %s", v->valuedouble, err ? err : "(no reason given)");
    else
        ctl_table_cell(t, err ? err : "(no reason given)");

out_free_where:
    free(w);
    return ret;
}

int ctl_fleet_print(FILE *out, const cJSON *reply, int64_t now, size_t width, char **errmsg)
{
    static const char *const headers[] = {"NODE",  "ADDRESS",   "CONNECTED",
                                          "ACKED", "LAST SEEN", "NACK"};
    struct ctl_table *t = NULL;
    const cJSON *proxies;
    const cJSON *p;
    int64_t active;
    bool has_active;
    size_t i = 0, connected = 0, behind = 0, nacked = 0;
    int ret = 0;

    if (ctl_json_int_opt(reply, "", "active_version", &active, &has_active, errmsg) < 0 ||
        ctl_json_array(reply, "", "proxies", &proxies, errmsg) < 0)
        return -EINVAL;
    t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    ctl_table_set_flex(t, 5);
    cJSON_ArrayForEach(p, proxies)
    {
        char where[48], db[32], ab[48];
        const char *node, *addr;
        const cJSON *nack;
        int64_t since, seen, acked;
        bool has_since, has_seen, has_acked, conn;

        snprintf(where, sizeof(where), "proxies[%zu]", i++);
        if (!cJSON_IsObject(p)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", where, sy_json_type_name(p));
            ret = -EINVAL;
            goto out_free_table;
        }
        if (ctl_json_str(p, where, "node_id", true, &node, errmsg) < 0 ||
            ctl_json_str(p, where, "address", false, &addr, errmsg) < 0 ||
            ctl_json_bool(p, where, "connected", false, &conn, errmsg) < 0 ||
            ctl_json_int_opt(p, where, "connected_since_unix_ms", &since, &has_since, errmsg) < 0 ||
            ctl_json_int_opt(p, where, "last_seen_unix_ms", &seen, &has_seen, errmsg) < 0 ||
            ctl_json_int_opt(p, where, "acked_version", &acked, &has_acked, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
        ctl_table_cell(t, node);
        ctl_table_cell(t, addr && *addr ? addr : "-");
        if (conn && has_since)
            ctl_table_cellf(t, "yes (%s)",
                            ctl_fmt_duration(db, sizeof(db), since > 0 ? now - since : 0));
        else
            ctl_table_cell(t, conn ? "yes" : "no");
        if (!has_acked)
            ctl_table_cell(t, "-");
        else if (has_active && acked != active)
            ctl_table_cellf(t, "%" PRId64 " (behind)", acked);
        else
            ctl_table_cellf(t, "%" PRId64, acked);
        ctl_table_cell(t, ctl_fmt_ago(ab, sizeof(ab), has_seen ? seen : 0, now));
        nack = cJSON_GetObjectItemCaseSensitive(p, "last_nack");
        if (nack_cell(t, nack, where, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
        connected += conn;
        behind += has_active && (!has_acked || acked != active);
        nacked += nack && !cJSON_IsNull(nack);
    }

    if (has_active)
        fprintf(out, "active version %" PRId64, active);
    else
        fputs("no active version", out);
    if (i == 0) {
        fputs("; no proxies have connected\n", out);
        goto out_free_table;
    }
    fprintf(out, "; %zu prox%s, %zu connected, %zu behind, %zu with a NACK\n\n", i,
            i == 1 ? "y" : "ies", connected, behind, nacked);
    ctl_table_print(t, out, width);

out_free_table:
    ctl_table_free(t);
    return ret;
}

int ctl_fleet(const struct ctl_args *a)
{
    char *errmsg = NULL;
    cJSON *reply;
    int rc;

    rc = ctl_call(a, "GET", "/v1/fleet", NULL, NULL, 0, &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_fleet_print(stdout, reply, (int64_t)(sy_wall_us() / 1000), ctl_term_width(),
                             &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}
