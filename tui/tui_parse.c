/* tui/tui_parse.c - the admin API's JSON replies into plain structs. See tui_parse.h.
 *
 * Every reader takes the JSON path of the object it reads (<where>) so an error names the
 * field exactly. A reader that fails leaves its partly filled struct to the caller, which
 * frees it whole: the _free functions accept any partly filled struct.
 */
#include "tui_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_json.h"
#include "sy_util.h"
#include "tui_text.h"

/* The largest integer a JSON number (a double) carries exactly. */
#define TUI_JSON_MAX_INT 9007199254740992.0
/* How much of a body that is not an error object an error line shows. */
#define TUI_BODY_EXCERPT 120

static char *member_path(const char *where, const char *key)
{
    return where && *where ? sy_xasprintf("%s.%s", where, key) : sy_xstrdup(key);
}

static int type_error(const char *where, const char *key, const char *want, const cJSON *got,
                      char **errmsg)
{
    char *path = member_path(where, key);

    *errmsg = sy_xasprintf("%s: expected %s, got %s", path, want, sy_json_type_name(got));
    free(path);
    return -EINVAL;
}

static const cJSON *member(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool missing(const cJSON *v)
{
    return !v || cJSON_IsNull(v);
}

/* A number, or NAN when missing or null. */
static int get_num(const cJSON *o, const char *where, const char *key, double *out, char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = NAN;
    if (missing(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return type_error(where, key, "a number", v, errmsg);
    *out = v->valuedouble;
    return 0;
}

/* An integer (a JSON number, or a string of digits as etcd-style APIs send them), or 0
 * when missing or null. */
static int get_int(const cJSON *o, const char *where, const char *key, int64_t *out, char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = 0;
    if (missing(v))
        return 0;
    if (cJSON_IsString(v) && sy_parse_i64(v->valuestring, INT64_MIN, INT64_MAX, out) == 0)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > TUI_JSON_MAX_INT)
        return type_error(where, key, "an integer", v, errmsg);
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* A string (cleaned copy), or NULL when missing or null. A number is accepted and printed
 * (last_nack.version is a string in the contract, a number in older servers). */
static int get_str(const cJSON *o, const char *where, const char *key, char **out, char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = NULL;
    if (missing(v))
        return 0;
    if (cJSON_IsString(v)) {
        *out = tui_text_clean(v->valuestring);
        return 0;
    }
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = sy_xasprintf("%.15g", v->valuedouble);
        return 0;
    }
    return type_error(where, key, "a string", v, errmsg);
}

static int get_bool(const cJSON *o, const char *where, const char *key, bool *out, char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = false;
    if (missing(v))
        return 0;
    if (!cJSON_IsBool(v))
        return type_error(where, key, "true or false", v, errmsg);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An array (NULL when missing or null). */
static int get_array(const cJSON *o, const char *where, const char *key, const cJSON **out,
                     char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = NULL;
    if (missing(v))
        return 0;
    if (!cJSON_IsArray(v))
        return type_error(where, key, "an array", v, errmsg);
    *out = v;
    return 0;
}

/* An object (NULL when missing or null). */
static int get_object(const cJSON *o, const char *where, const char *key, const cJSON **out,
                      char **errmsg)
{
    const cJSON *v = member(o, key);

    *out = NULL;
    if (missing(v))
        return 0;
    if (!cJSON_IsObject(v))
        return type_error(where, key, "an object", v, errmsg);
    *out = v;
    return 0;
}

/* Allocates room for the elements of <arr> (at most TUI_MAX_ROWS), zeroed. */
static void *alloc_rows(const cJSON *arr, size_t elem, size_t *n)
{
    size_t count = sy_json_count(arr);

    if (count > TUI_MAX_ROWS)
        count = TUI_MAX_ROWS;
    *n = 0;
    return count ? sy_xcalloc(count, elem) : NULL;
}

/* Checks that element <i> of array <key> is an object and writes its path into <buf>. */
static int row_object(const cJSON *item, const char *where, const char *key, size_t i, char *buf,
                      size_t size, char **errmsg)
{
    char *path = member_path(where, key);

    snprintf(buf, size, "%s[%zu]", path, i);
    free(path);
    if (!cJSON_IsObject(item)) {
        *errmsg = sy_xasprintf("%s: expected an object, got %s", buf, sy_json_type_name(item));
        return -EINVAL;
    }
    return 0;
}

/* Parses <body> and checks that it is an object. */
static cJSON *parse_root(const char *body, size_t len, char **errmsg)
{
    char *perr = NULL;
    size_t i = 0;
    cJSON *root;

    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        *errmsg = sy_xstrdup("empty reply");
        return NULL;
    }
    root = sy_json_parse(body, len, &perr);
    if (!root) {
        *errmsg = sy_xasprintf("not JSON (%s)", perr ? perr : "empty body");
        free(perr);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        *errmsg = sy_xasprintf("expected a JSON object, got %s", sy_json_type_name(root));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* ---- /v1/stats ---------------------------------------------------------------------- */

static int get_quantiles(const cJSON *o, const char *where, const char *key,
                         struct tui_quantiles *q, char **errmsg)
{
    const cJSON *qo;
    char *path;
    int rc;

    q->p50 = q->p95 = q->p99 = NAN;
    if (get_object(o, where, key, &qo, errmsg) < 0)
        return -EINVAL;
    if (!qo)
        return 0;
    path = member_path(where, key);
    rc = get_num(qo, path, "p50", &q->p50, errmsg) < 0 ||
                 get_num(qo, path, "p95", &q->p95, errmsg) < 0 ||
                 get_num(qo, path, "p99", &q->p99, errmsg) < 0
             ? -EINVAL
             : 0;
    free(path);
    return rc;
}

static void traffic_cleanup(struct tui_traffic *t)
{
    free(t->provider);
    free(t->model);
    free(t->route);
    free(t->tenant);
}

static int parse_traffic(const cJSON *o, const char *where, struct tui_traffic *t, char **errmsg)
{
    if (get_str(o, where, "provider", &t->provider, errmsg) < 0 ||
        get_str(o, where, "model", &t->model, errmsg) < 0 ||
        get_str(o, where, "route", &t->route, errmsg) < 0 ||
        get_str(o, where, "tenant", &t->tenant, errmsg) < 0 ||
        get_int(o, where, "requests", &t->requests, errmsg) < 0 ||
        get_num(o, where, "rps", &t->rps, errmsg) < 0 ||
        get_int(o, where, "errors", &t->errors, errmsg) < 0 ||
        get_int(o, where, "client_errors", &t->client_errors, errmsg) < 0 ||
        get_num(o, where, "error_rate", &t->error_rate, errmsg) < 0 ||
        get_int(o, where, "in_flight", &t->in_flight, errmsg) < 0 ||
        get_quantiles(o, where, "latency_ms", &t->latency, errmsg) < 0 ||
        get_quantiles(o, where, "ttft_ms", &t->ttft, errmsg) < 0 ||
        get_int(o, where, "prompt_tokens", &t->prompt_tokens, errmsg) < 0 ||
        get_int(o, where, "completion_tokens", &t->completion_tokens, errmsg) < 0 ||
        get_int(o, where, "cached_tokens", &t->cached_tokens, errmsg) < 0 ||
        get_num(o, where, "tokens_per_s", &t->tokens_per_s, errmsg) < 0 ||
        get_num(o, where, "cost_usd", &t->cost_usd, errmsg) < 0 ||
        get_num(o, where, "cost_per_hour_usd", &t->cost_per_hour_usd, errmsg) < 0)
        return -EINVAL;
    return 0;
}

static int parse_traffic_rows(const cJSON *root, const char *key, struct tui_traffic **rows,
                              size_t *n, char **errmsg)
{
    const cJSON *arr, *item;
    size_t i = 0;

    if (get_array(root, "", key, &arr, errmsg) < 0)
        return -EINVAL;
    *rows = alloc_rows(arr, sizeof(**rows), n);
    cJSON_ArrayForEach(item, arr)
    {
        char where[64];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, "", key, i, where, sizeof(where), errmsg) < 0)
            return -EINVAL;
        (*n)++;
        if (parse_traffic(item, where, &(*rows)[i++], errmsg) < 0)
            return -EINVAL;
    }
    return 0;
}

void tui_stats_free(struct tui_stats *s)
{
    if (!s)
        return;
    free(s->window);
    free(s->unreachable);
    traffic_cleanup(&s->totals);
    for (size_t i = 0; i < s->n_providers; i++)
        traffic_cleanup(&s->providers[i]);
    for (size_t i = 0; i < s->n_models; i++)
        traffic_cleanup(&s->models[i]);
    for (size_t i = 0; i < s->n_routes; i++)
        traffic_cleanup(&s->routes[i]);
    for (size_t i = 0; i < s->n_tenants; i++)
        traffic_cleanup(&s->tenants[i]);
    free(s->providers);
    free(s->models);
    free(s->routes);
    free(s->tenants);
    free(s);
}

/* "cp-2 (connection refused), cp-3 (HTTP 404)" from replicas.unreachable, or NULL. An older
 * control plane sends no replicas member; odd entries are skipped. */
static char *unreachable_replicas(const cJSON *root)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "replicas"), "unreachable");
    const cJSON *e;
    char *text = NULL;

    cJSON_ArrayForEach(e, list)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "id"));
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
        char *next;

        if (!id)
            continue;
        next = sy_xasprintf("%s%s%s (%s)", text ? text : "", text ? ", " : "", id,
                            why ? why : "no answer");
        free(text);
        text = next;
    }
    return text;
}

int tui_parse_stats(const char *body, size_t len, struct tui_stats **out, char **errmsg)
{
    struct tui_stats *s = sy_xcalloc(1, sizeof(*s));
    const cJSON *totals;
    cJSON *root;
    bool has_proxies;

    *out = NULL;
    root = parse_root(body, len, errmsg);
    if (!root)
        goto out_free_stats;
    has_proxies = !missing(member(root, "proxies"));
    if (get_str(root, "", "window", &s->window, errmsg) < 0 ||
        get_num(root, "", "window_s", &s->window_s, errmsg) < 0 ||
        get_int(root, "", "now_unix_ms", &s->now_ms, errmsg) < 0 ||
        get_int(root, "", "active_version", &s->active_version, errmsg) < 0 ||
        get_int(root, "", "proxies", &s->proxies, errmsg) < 0 ||
        get_object(root, "", "totals", &totals, errmsg) < 0)
        goto out_delete_root;
    if (!has_proxies)
        s->proxies = -1;
    if (!totals) {
        *errmsg = sy_xstrdup("totals: missing");
        goto out_delete_root;
    }
    if (parse_traffic(totals, "totals", &s->totals, errmsg) < 0 ||
        parse_traffic_rows(root, "providers", &s->providers, &s->n_providers, errmsg) < 0 ||
        parse_traffic_rows(root, "models", &s->models, &s->n_models, errmsg) < 0 ||
        parse_traffic_rows(root, "routes", &s->routes, &s->n_routes, errmsg) < 0 ||
        parse_traffic_rows(root, "tenants", &s->tenants, &s->n_tenants, errmsg) < 0)
        goto out_delete_root;
    s->unreachable = unreachable_replicas(root);
    cJSON_Delete(root);
    *out = s;
    return 0;

out_delete_root:
    cJSON_Delete(root);
out_free_stats:
    tui_stats_free(s);
    return -EINVAL;
}

/* ---- /v1/spend ---------------------------------------------------------------------- */

static void spend_tenant_cleanup(struct tui_spend_tenant *t)
{
    for (size_t i = 0; i < t->n_models; i++) {
        free(t->models[i].provider);
        free(t->models[i].model);
    }
    free(t->models);
    free(t->tenant);
}

static int parse_spend_tenant(const cJSON *o, const char *where, struct tui_spend_tenant *t,
                              char **errmsg)
{
    const cJSON *arr, *item;
    size_t i = 0;

    if (get_str(o, where, "tenant", &t->tenant, errmsg) < 0 ||
        get_int(o, where, "requests", &t->requests, errmsg) < 0 ||
        get_int(o, where, "prompt_tokens", &t->prompt_tokens, errmsg) < 0 ||
        get_int(o, where, "completion_tokens", &t->completion_tokens, errmsg) < 0 ||
        get_int(o, where, "cached_tokens", &t->cached_tokens, errmsg) < 0 ||
        get_num(o, where, "cost_usd", &t->cost_usd, errmsg) < 0 ||
        get_num(o, where, "projected_usd", &t->projected_usd, errmsg) < 0 ||
        get_num(o, where, "budget_usd", &t->budget_usd, errmsg) < 0 ||
        get_array(o, where, "models", &arr, errmsg) < 0)
        return -EINVAL;
    t->models = alloc_rows(arr, sizeof(*t->models), &t->n_models);
    cJSON_ArrayForEach(item, arr)
    {
        struct tui_spend_model *m;
        char path[96];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, where, "models", i, path, sizeof(path), errmsg) < 0)
            return -EINVAL;
        m = &t->models[i++];
        t->n_models++;
        if (get_str(item, path, "provider", &m->provider, errmsg) < 0 ||
            get_str(item, path, "model", &m->model, errmsg) < 0 ||
            get_int(item, path, "requests", &m->requests, errmsg) < 0 ||
            get_int(item, path, "prompt_tokens", &m->prompt_tokens, errmsg) < 0 ||
            get_int(item, path, "completion_tokens", &m->completion_tokens, errmsg) < 0 ||
            get_int(item, path, "cached_tokens", &m->cached_tokens, errmsg) < 0 ||
            get_num(item, path, "cost_usd", &m->cost_usd, errmsg) < 0)
            return -EINVAL;
    }
    return 0;
}

void tui_spend_free(struct tui_spend *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_tenants; i++)
        spend_tenant_cleanup(&s->tenants[i]);
    free(s->tenants);
    free(s->period);
    free(s->date);
    free(s);
}

int tui_parse_spend(const char *body, size_t len, struct tui_spend **out, char **errmsg)
{
    struct tui_spend *s = sy_xcalloc(1, sizeof(*s));
    const cJSON *arr, *item;
    cJSON *root;
    size_t i = 0;

    *out = NULL;
    root = parse_root(body, len, errmsg);
    if (!root)
        goto out_free_spend;
    if (get_str(root, "", "period", &s->period, errmsg) < 0 ||
        get_str(root, "", "date", &s->date, errmsg) < 0 ||
        get_int(root, "", "start_unix_ms", &s->start_ms, errmsg) < 0 ||
        get_int(root, "", "end_unix_ms", &s->end_ms, errmsg) < 0 ||
        get_num(root, "", "elapsed_fraction", &s->elapsed_fraction, errmsg) < 0 ||
        get_num(root, "", "total_usd", &s->total_usd, errmsg) < 0 ||
        get_num(root, "", "projected_usd", &s->projected_usd, errmsg) < 0 ||
        get_array(root, "", "tenants", &arr, errmsg) < 0)
        goto out_delete_root;
    s->tenants = alloc_rows(arr, sizeof(*s->tenants), &s->n_tenants);
    cJSON_ArrayForEach(item, arr)
    {
        char where[64];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, "", "tenants", i, where, sizeof(where), errmsg) < 0)
            goto out_delete_root;
        s->n_tenants++;
        if (parse_spend_tenant(item, where, &s->tenants[i++], errmsg) < 0)
            goto out_delete_root;
    }
    cJSON_Delete(root);
    *out = s;
    return 0;

out_delete_root:
    cJSON_Delete(root);
out_free_spend:
    tui_spend_free(s);
    return -EINVAL;
}

/* ---- /v1/fleet ---------------------------------------------------------------------- */

static void proxy_cleanup(struct tui_proxy *p)
{
    free(p->node_id);
    free(p->zone);
    free(p->address);
    free(p->build_version);
    free(p->nack_version);
    free(p->nack_error);
}

static int parse_proxy(const cJSON *o, const char *where, struct tui_proxy *p, char **errmsg)
{
    const cJSON *nack;
    char path[96];

    if (get_str(o, where, "node_id", &p->node_id, errmsg) < 0 ||
        get_str(o, where, "zone", &p->zone, errmsg) < 0 ||
        get_str(o, where, "address", &p->address, errmsg) < 0 ||
        get_str(o, where, "build_version", &p->build_version, errmsg) < 0 ||
        get_bool(o, where, "connected", &p->connected, errmsg) < 0 ||
        get_int(o, where, "connected_since_unix_ms", &p->connected_since_ms, errmsg) < 0 ||
        get_int(o, where, "last_seen_unix_ms", &p->last_seen_ms, errmsg) < 0 ||
        get_int(o, where, "acked_version", &p->acked_version, errmsg) < 0 ||
        get_object(o, where, "last_nack", &nack, errmsg) < 0)
        return -EINVAL;
    if (!nack)
        return 0;
    p->has_nack = true;
    snprintf(path, sizeof(path), "%s.last_nack", where);
    if (get_str(nack, path, "version", &p->nack_version, errmsg) < 0 ||
        get_str(nack, path, "error", &p->nack_error, errmsg) < 0 ||
        get_int(nack, path, "at_unix_ms", &p->nack_at_ms, errmsg) < 0)
        return -EINVAL;
    return 0;
}

void tui_fleet_free(struct tui_fleet *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_proxies; i++)
        proxy_cleanup(&f->proxies[i]);
    free(f->proxies);
    free(f->control_plane);
    free(f);
}

int tui_parse_fleet(const char *body, size_t len, struct tui_fleet **out, char **errmsg)
{
    struct tui_fleet *f = sy_xcalloc(1, sizeof(*f));
    const cJSON *arr, *item;
    cJSON *root;
    size_t i = 0;

    *out = NULL;
    root = parse_root(body, len, errmsg);
    if (!root)
        goto out_free_fleet;
    if (get_int(root, "", "active_version", &f->active_version, errmsg) < 0 ||
        get_str(root, "", "control_plane", &f->control_plane, errmsg) < 0 ||
        get_array(root, "", "proxies", &arr, errmsg) < 0)
        goto out_delete_root;
    f->proxies = alloc_rows(arr, sizeof(*f->proxies), &f->n_proxies);
    cJSON_ArrayForEach(item, arr)
    {
        char where[64];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, "", "proxies", i, where, sizeof(where), errmsg) < 0)
            goto out_delete_root;
        f->n_proxies++;
        if (parse_proxy(item, where, &f->proxies[i++], errmsg) < 0)
            goto out_delete_root;
    }
    cJSON_Delete(root);
    *out = f;
    return 0;

out_delete_root:
    cJSON_Delete(root);
out_free_fleet:
    tui_fleet_free(f);
    return -EINVAL;
}

/* ---- /v1/policies ------------------------------------------------------------------- */

void tui_policies_free(struct tui_policies *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_versions; i++) {
        free(p->versions[i].hash);
        free(p->versions[i].note);
    }
    free(p->versions);
    free(p);
}

int tui_parse_policies(const char *body, size_t len, struct tui_policies **out, char **errmsg)
{
    struct tui_policies *p = sy_xcalloc(1, sizeof(*p));
    const cJSON *arr, *item;
    cJSON *root;
    size_t i = 0;

    *out = NULL;
    root = parse_root(body, len, errmsg);
    if (!root)
        goto out_free_policies;
    if (get_int(root, "", "active", &p->active, errmsg) < 0 ||
        get_array(root, "", "versions", &arr, errmsg) < 0)
        goto out_delete_root;
    p->versions = alloc_rows(arr, sizeof(*p->versions), &p->n_versions);
    cJSON_ArrayForEach(item, arr)
    {
        struct tui_policy *v;
        char where[64];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, "", "versions", i, where, sizeof(where), errmsg) < 0)
            goto out_delete_root;
        v = &p->versions[i++];
        p->n_versions++;
        if (get_int(item, where, "version", &v->version, errmsg) < 0 ||
            get_str(item, where, "hash", &v->hash, errmsg) < 0 ||
            get_int(item, where, "created_unix_ms", &v->created_ms, errmsg) < 0 ||
            get_str(item, where, "note", &v->note, errmsg) < 0 ||
            get_bool(item, where, "active", &v->active, errmsg) < 0 ||
            get_int(item, where, "rollback_of", &v->rollback_of, errmsg) < 0)
            goto out_delete_root;
    }
    cJSON_Delete(root);
    *out = p;
    return 0;

out_delete_root:
    cJSON_Delete(root);
out_free_policies:
    tui_policies_free(p);
    return -EINVAL;
}

/* ---- /v1/experiments ---------------------------------------------------------------- */

static int parse_arm(const cJSON *o, const char *where, struct tui_arm *a, char **errmsg)
{
    struct tui_quantiles lat;
    const cJSON *ci;
    char path[160];

    a->ci_low = a->ci_high = NAN;
    if (get_str(o, where, "name", &a->name, errmsg) < 0 ||
        get_str(o, where, "model", &a->model, errmsg) < 0 ||
        get_num(o, where, "share", &a->share, errmsg) < 0 ||
        get_int(o, where, "requests", &a->requests, errmsg) < 0 ||
        get_int(o, where, "feedback", &a->feedback, errmsg) < 0 ||
        get_int(o, where, "up", &a->up, errmsg) < 0 ||
        get_int(o, where, "down", &a->down, errmsg) < 0 ||
        get_num(o, where, "up_rate", &a->up_rate, errmsg) < 0 ||
        get_num(o, where, "mean_score", &a->mean_score, errmsg) < 0 ||
        get_num(o, where, "posterior_mean", &a->posterior_mean, errmsg) < 0 ||
        get_num(o, where, "prob_best", &a->prob_best, errmsg) < 0 ||
        get_num(o, where, "cost_per_request_usd", &a->cost_per_request_usd, errmsg) < 0 ||
        get_num(o, where, "error_rate", &a->error_rate, errmsg) < 0 ||
        get_quantiles(o, where, "latency_ms", &lat, errmsg) < 0 ||
        get_array(o, where, "ci95", &ci, errmsg) < 0)
        return -EINVAL;
    a->latency_p50 = lat.p50;
    a->latency_p95 = lat.p95;
    if (!ci)
        return 0;
    snprintf(path, sizeof(path), "%s.ci95", where);
    if (sy_json_count(ci) != 2 || !cJSON_IsNumber(ci->child) || !cJSON_IsNumber(ci->child->next)) {
        *errmsg = sy_xasprintf("%s: expected [low, high]", path);
        return -EINVAL;
    }
    a->ci_low = ci->child->valuedouble;
    a->ci_high = ci->child->next->valuedouble;
    return 0;
}

static int parse_experiment(const cJSON *o, const char *where, struct tui_experiment *e,
                            char **errmsg)
{
    const cJSON *arr, *item, *test;
    size_t i = 0;
    char path[96];

    e->test_z = e->test_p_value = NAN;
    if (get_str(o, where, "name", &e->name, errmsg) < 0 ||
        get_str(o, where, "route", &e->route, errmsg) < 0 ||
        get_str(o, where, "metric", &e->metric, errmsg) < 0 ||
        get_str(o, where, "status", &e->status, errmsg) < 0 ||
        get_int(o, where, "policy_version", &e->policy_version, errmsg) < 0 ||
        get_int(o, where, "min_samples", &e->min_samples, errmsg) < 0 ||
        get_str(o, where, "stop_rule", &e->stop_rule, errmsg) < 0 ||
        get_str(o, where, "winner", &e->winner, errmsg) < 0 ||
        get_str(o, where, "promoted_arm", &e->promoted_arm, errmsg) < 0 ||
        get_int(o, where, "promoted_in_version", &e->promoted_in_version, errmsg) < 0 ||
        get_array(o, where, "arms", &arr, errmsg) < 0 ||
        get_object(o, where, "test", &test, errmsg) < 0)
        return -EINVAL;
    e->arms = alloc_rows(arr, sizeof(*e->arms), &e->n_arms);
    cJSON_ArrayForEach(item, arr)
    {
        char apath[128];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, where, "arms", i, apath, sizeof(apath), errmsg) < 0)
            return -EINVAL;
        e->n_arms++;
        if (parse_arm(item, apath, &e->arms[i++], errmsg) < 0)
            return -EINVAL;
    }
    if (!test)
        return 0;
    e->has_test = true;
    snprintf(path, sizeof(path), "%s.test", where);
    if (get_str(test, path, "method", &e->test_method, errmsg) < 0 ||
        get_num(test, path, "z", &e->test_z, errmsg) < 0 ||
        get_num(test, path, "p_value", &e->test_p_value, errmsg) < 0 ||
        get_bool(test, path, "significant", &e->test_significant, errmsg) < 0)
        return -EINVAL;
    return 0;
}

void tui_experiments_free(struct tui_experiments *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++) {
        struct tui_experiment *e = &x->v[i];

        for (size_t j = 0; j < e->n_arms; j++) {
            free(e->arms[j].name);
            free(e->arms[j].model);
        }
        free(e->arms);
        free(e->name);
        free(e->route);
        free(e->metric);
        free(e->status);
        free(e->stop_rule);
        free(e->winner);
        free(e->promoted_arm);
        free(e->test_method);
    }
    free(x->v);
    free(x);
}

int tui_parse_experiments(const char *body, size_t len, struct tui_experiments **out, char **errmsg)
{
    struct tui_experiments *x = sy_xcalloc(1, sizeof(*x));
    const cJSON *arr, *item;
    cJSON *root;
    size_t i = 0;

    *out = NULL;
    root = parse_root(body, len, errmsg);
    if (!root)
        goto out_free_experiments;
    if (get_array(root, "", "experiments", &arr, errmsg) < 0)
        goto out_delete_root;
    x->v = alloc_rows(arr, sizeof(*x->v), &x->n);
    cJSON_ArrayForEach(item, arr)
    {
        char where[64];

        if (i == TUI_MAX_ROWS)
            break;
        if (row_object(item, "", "experiments", i, where, sizeof(where), errmsg) < 0)
            goto out_delete_root;
        x->n++;
        if (parse_experiment(item, where, &x->v[i++], errmsg) < 0)
            goto out_delete_root;
    }
    cJSON_Delete(root);
    *out = x;
    return 0;

out_delete_root:
    cJSON_Delete(root);
out_free_experiments:
    tui_experiments_free(x);
    return -EINVAL;
}

/* ---- errors ------------------------------------------------------------------------- */

char *tui_parse_error_text(long status, const char *body, size_t len)
{
    cJSON *root = sy_json_parse(body ? body : "", body ? len : 0, NULL);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    char *text;

    if (cJSON_IsString(msg) && *msg->valuestring) {
        char *clean = tui_text_clean(msg->valuestring);

        text = sy_xasprintf("HTTP %ld: %s", status, clean);
        free(clean);
    } else {
        size_t n = body ? len : 0;
        size_t keep;
        char *excerpt, *clean;

        while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r' || body[n - 1] == ' '))
            n--;
        if (n == 0) {
            cJSON_Delete(root);
            return sy_xasprintf("HTTP %ld", status);
        }
        keep = n > TUI_BODY_EXCERPT ? TUI_BODY_EXCERPT : n;
        excerpt = sy_xstrndup(body, keep);
        clean = tui_text_clean(excerpt);
        text = sy_xasprintf("HTTP %ld: %s%s", status, clean, keep < n ? "..." : "");
        free(clean);
        free(excerpt);
    }
    cJSON_Delete(root);
    return text;
}
