/* controlplane/ctl/ctl_pricing.c - `switchyardctl pricing`: the pricing catalogue's state
 * and prices.
 *
 * The state comes first because it is what an operator checks after editing the catalogue:
 * did the control plane load it (loaded, sha256), or did it refuse it (last error, with
 * every problem on its own line)? Then which version the prices went into, then the
 * entries. See ctl_pricing.h.
 */
#include "ctl_pricing.h"

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
static int json_num_opt(const cJSON *obj, const char *where, const char *key, double *out,
                        bool *present, char **errmsg)
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

/* A price cell: the number, "-" when absent or (for the cached price) 0, which means "the
 * input price". */
static void price_cell(struct ctl_table *t, double v, bool present, bool zero_is_unset)
{
    if (!present || (zero_is_unset && v == 0))
        ctl_table_cell(t, "-");
    else
        ctl_table_cellf(t, "%g", v);
}

/* The WINDOWS cell: "22:00-06:00 in/out[/cached], ...". */
static int windows_cell(struct ctl_table *t, const cJSON *entry, const char *where, char **errmsg)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(entry, "windows"), *w;
    char *cell = NULL, wh[96];
    size_t i = 0;

    if (!ws || cJSON_IsNull(ws) || (cJSON_IsArray(ws) && !ws->child)) {
        ctl_table_cell(t, "-");
        return 0;
    }
    if (!cJSON_IsArray(ws)) {
        *errmsg =
            sy_xasprintf("%s.windows: expected an array, got %s", where, sy_json_type_name(ws));
        return -EINVAL;
    }
    cJSON_ArrayForEach(w, ws)
    {
        const char *start, *end;
        double in, out, cached;
        bool has_in, has_out, has_cached;
        char *next;

        snprintf(wh, sizeof(wh), "%s.windows[%zu]", where, i++);
        if (!cJSON_IsObject(w)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", wh, sy_json_type_name(w));
            goto out_fail;
        }
        if (ctl_json_str(w, wh, "start", true, &start, errmsg) < 0 ||
            ctl_json_str(w, wh, "end", true, &end, errmsg) < 0 ||
            json_num_opt(w, wh, "input_per_mtok", &in, &has_in, errmsg) < 0 ||
            json_num_opt(w, wh, "output_per_mtok", &out, &has_out, errmsg) < 0 ||
            json_num_opt(w, wh, "cached_input_per_mtok", &cached, &has_cached, errmsg) < 0)
            goto out_fail;
        if (has_cached && cached > 0)
            next = sy_xasprintf("%s%s%s-%s %g/%g/%g", cell ? cell : "", cell ? ", " : "", start,
                                end, in, out, cached);
        else
            next = sy_xasprintf("%s%s%s-%s %g/%g", cell ? cell : "", cell ? ", " : "", start, end,
                                in, out);
        free(cell);
        cell = next;
    }
    ctl_table_cell(t, cell);
    free(cell);
    return 0;

out_fail:
    free(cell);
    return -EINVAL;
}

static int entries_table(FILE *out, const cJSON *models, size_t width, char **errmsg)
{
    static const char *const headers[] = {"MODEL",  "PROVIDER", "INPUT",
                                          "OUTPUT", "CACHED",   "WINDOWS (UTC in/out[/cached])"};
    struct ctl_table *t = ctl_table_new(SY_ARRAY_LEN(headers), headers);
    const cJSON *e;
    size_t i = 0;
    int ret = 0;

    ctl_table_set_flex(t, 5);
    cJSON_ArrayForEach(e, models)
    {
        char where[48];
        const char *model, *provider;
        double in, outp, cached;
        bool has_in, has_out, has_cached;

        snprintf(where, sizeof(where), "models[%zu]", i++);
        if (!cJSON_IsObject(e)) {
            *errmsg = sy_xasprintf("%s: expected an object, got %s", where, sy_json_type_name(e));
            ret = -EINVAL;
            goto out_free_table;
        }
        if (ctl_json_str(e, where, "model", true, &model, errmsg) < 0 ||
            ctl_json_str(e, where, "provider", false, &provider, errmsg) < 0 ||
            json_num_opt(e, where, "input_per_mtok", &in, &has_in, errmsg) < 0 ||
            json_num_opt(e, where, "output_per_mtok", &outp, &has_out, errmsg) < 0 ||
            json_num_opt(e, where, "cached_input_per_mtok", &cached, &has_cached, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
        ctl_table_cell(t, model);
        ctl_table_cell(t, provider ? provider : "(any)");
        price_cell(t, in, has_in, false);
        price_cell(t, outp, has_out, false);
        price_cell(t, cached, has_cached, true);
        if (windows_cell(t, e, where, errmsg) < 0) {
            ret = -EINVAL;
            goto out_free_table;
        }
    }
    if (i == 0)
        fputs("the catalogue has no entries\n", out);
    else
        ctl_table_print(t, out, width);

out_free_table:
    ctl_table_free(t);
    return ret;
}

/* Prints "<label>: <text>", continuation lines indented, control characters removed. */
static void print_multiline(FILE *out, const char *label, const char *text)
{
    char *clean;
    const char *line = text;

    fprintf(out, "%s:", label);
    while (line) {
        const char *nl = strchr(line, '\n');
        char *one = sy_xstrndup(line, nl ? (size_t)(nl - line) : strlen(line));

        clean = ctl_sanitize(one);
        fprintf(out, "%s%s\n", line == text ? " " : "  ", clean);
        free(clean);
        free(one);
        line = nl ? nl + 1 : NULL;
    }
}

int ctl_pricing_print(FILE *out, const cJSON *reply, int64_t now, size_t width, char **errmsg)
{
    const char *source, *sha, *err, *rerr = NULL;
    const cJSON *models, *rec = NULL;
    int64_t refresh, loaded, attempt, active = 0, pushed = 0;
    bool has_refresh, has_loaded, has_attempt, has_active = false, has_pushed = false;
    char tb[48], ab[48], db[32];
    char *clean;

    if (ctl_json_str(reply, "", "source", true, &source, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "refresh_s", &refresh, &has_refresh, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "loaded_unix_ms", &loaded, &has_loaded, errmsg) < 0 ||
        ctl_json_int_opt(reply, "", "last_attempt_unix_ms", &attempt, &has_attempt, errmsg) < 0 ||
        ctl_json_str(reply, "", "sha256", false, &sha, errmsg) < 0 ||
        ctl_json_str(reply, "", "last_error", false, &err, errmsg) < 0 ||
        ctl_json_array(reply, "", "models", &models, errmsg) < 0)
        return -EINVAL;
    rec = cJSON_GetObjectItemCaseSensitive(reply, "reconcile");
    if (rec && !cJSON_IsNull(rec) &&
        (ctl_json_int_opt(rec, "reconcile", "active_version", &active, &has_active, errmsg) < 0 ||
         ctl_json_int_opt(rec, "reconcile", "last_pushed_version", &pushed, &has_pushed, errmsg) <
             0 ||
         ctl_json_str(rec, "reconcile", "last_error", false, &rerr, errmsg) < 0))
        return -EINVAL;

    clean = ctl_sanitize(source);
    fprintf(out, "catalogue %s", clean);
    free(clean);
    if (has_refresh)
        fprintf(out, ", read every %s", ctl_fmt_duration(db, sizeof(db), refresh * 1000));
    fputc('\n', out);
    if (has_loaded)
        fprintf(out, "loaded:     %s (%s), sha256 %.16s\n", ctl_fmt_time(tb, sizeof(tb), loaded),
                ctl_fmt_ago(ab, sizeof(ab), loaded, now), sha ? sha : "-");
    else
        fputs("loaded:     never\n", out);
    if (has_attempt)
        fprintf(out, "last read:  %s (%s)\n", ctl_fmt_time(tb, sizeof(tb), attempt),
                ctl_fmt_ago(ab, sizeof(ab), attempt, now));
    if (err)
        print_multiline(
            out, has_loaded ? "last error (the catalogue above is still in use)" : "last error",
            err);
    if (has_active || has_pushed) {
        fputs("applied:    ", out);
        if (has_active)
            fprintf(out, "checked against version %" PRId64, active);
        if (has_pushed)
            fprintf(out, "%slast pushed version %" PRId64, has_active ? "; " : "", pushed);
        fputc('\n', out);
    }
    if (rerr)
        print_multiline(out, "apply error", rerr);
    fputc('\n', out);
    return entries_table(out, models, width, errmsg);
}

int ctl_pricing(const struct ctl_args *a)
{
    char *errmsg = NULL;
    cJSON *reply;
    int rc;

    rc = ctl_call(a, "GET", "/v1/pricing", NULL, NULL, 0, &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (a->json)
        ctl_json_print(stdout, reply);
    else if (ctl_pricing_print(stdout, reply, (int64_t)(sy_wall_us() / 1000), ctl_term_width(),
                               &errmsg) < 0)
        rc = ctl_unexpected(errmsg);
    cJSON_Delete(reply);
    return rc;
}
