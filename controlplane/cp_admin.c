/* controlplane/cp_admin.c - admin API: policies (push, list, get, diff, activate), health,
 * and the paths other modules register. Main thread; store calls block the loop briefly (the admin
 * API is low-rate). */
#define SY_LOG_MODULE "admin"

#include "cp_admin.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cp_diff.h"
#include "cp_discovery.h"
#include "cp_policies.h"
#include "cp_reply.h"
#include "cp_store.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_util.h"

#define CP_ADMIN_MAX_BODY (16u * 1024 * 1024)

#define CP_ADMIN_MAX_ROUTES 16

struct cp_admin_route {
    char prefix[64];
    cp_admin_handler_fn fn;
    void *arg;
};

struct cp_admin {
    struct sy_http_server *http;
    struct cp_admin_deps deps;
    struct cp_admin_route routes[CP_ADMIN_MAX_ROUTES];
    size_t n_routes;
};

static cJSON *version_json(const struct cp_version *v, int64_t active)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", (double)v->version);
    cJSON_AddStringToObject(o, "hash", v->hash);
    cJSON_AddNumberToObject(o, "created_unix_ms", (double)v->created_unix_ms);
    cJSON_AddStringToObject(o, "note", v->note ? v->note : "");
    cJSON_AddBoolToObject(o, "active", v->version == active);
    if (v->rollback_of)
        cJSON_AddNumberToObject(o, "rollback_of", (double)v->rollback_of);
    else
        cJSON_AddNullToObject(o, "rollback_of");
    return o;
}

static void handle_push(struct cp_admin *a, struct sy_http_req *req)
{
    size_t len;
    const char *body = sy_http_req_body(req, &len);
    char note[512] = "", activate[16] = "";
    bool activated = false;
    char *err = NULL;
    int64_t v;

    cp_query_param(sy_http_req_query(req), "note", note, sizeof(note));
    cp_query_param(sy_http_req_query(req), "activate", activate, sizeof(activate));
    if (len == 0) {
        cp_reply_error(req, 400, "empty_policy", "the request body must be a YAML or JSON policy");
        return;
    }
    v = cp_policies_push(a->deps.policies, body, len, note, strcmp(activate, "false") != 0,
                         &activated, &err);
    if (v == -EINVAL) {
        /* Every compile error, one per line, "path: message". */
        cJSON *root = cJSON_CreateObject();
        cJSON *eo = cJSON_AddObjectToObject(root, "error");
        cJSON *list = cJSON_CreateArray();
        size_t n = 0;
        for (char *line = err, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (!*line)
                continue;
            cJSON *item = cJSON_CreateObject();
            char *sep = strstr(line, ": ");
            if (sep && strncmp(line, "... and ", 8) != 0) {
                *sep = '\0';
                cJSON_AddStringToObject(item, "path", line);
                cJSON_AddStringToObject(item, "message", sep + 2);
            } else {
                cJSON_AddStringToObject(item, "path", "");
                cJSON_AddStringToObject(item, "message", line);
            }
            cJSON_AddItemToArray(list, item);
            n++;
        }
        char msg[96];
        snprintf(msg, sizeof(msg), "policy rejected: %zu error%s", n, n == 1 ? "" : "s");
        cJSON_AddStringToObject(eo, "message", msg);
        cJSON_AddStringToObject(eo, "type", "invalid_policy");
        cJSON_AddStringToObject(eo, "code", "invalid_policy");
        cJSON_AddNullToObject(eo, "param");
        cJSON_AddItemToObject(eo, "errors", list);
        free(err);
        cp_reply_json(req, 400, root);
        return;
    }
    if (v < 0) {
        cp_reply_error(req, 503, "store_unavailable", "%s", err ? err : "store error");
        free(err);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    struct cp_version *ver = NULL;
    cJSON_AddNumberToObject(root, "version", (double)v);
    if (cp_policies_get(a->deps.policies, v, &ver) == 0)
        cJSON_AddStringToObject(root, "hash", ver->hash);
    cp_version_free(ver);
    cJSON_AddBoolToObject(root, "active", activated);
    cp_reply_json(req, 201, root);
}

static void handle_list(struct cp_admin *a, struct sy_http_req *req)
{
    struct cp_version *vs = NULL;
    size_t n = 0;
    int64_t active = cp_policies_active_version(a->deps.policies);
    int rc = cp_policies_list(a->deps.policies, &vs, &n);
    cJSON *root, *arr;

    if (rc < 0) {
        cp_reply_error(req, 503, "store_unavailable", "cannot list versions: %s", strerror(-rc));
        return;
    }
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "active", (double)active);
    arr = cJSON_AddArrayToObject(root, "versions");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, version_json(&vs[i], active));
    cp_version_array_free(vs, n);
    cp_reply_json(req, 200, root);
}

/* Parses a version path segment: a number or "active". Returns 0 or -EINVAL. */
static int parse_version(struct cp_admin *a, const char *seg, size_t len, int64_t *out)
{
    char buf[32];

    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, seg, len);
    buf[len] = '\0';
    if (strcmp(buf, "active") == 0) {
        *out = cp_policies_active_version(a->deps.policies);
        return *out > 0 ? 0 : -ENOENT;
    }
    return sy_parse_i64(buf, 1, INT64_MAX, out);
}

static bool load_or_reply(struct cp_admin *a, struct sy_http_req *req, int64_t v,
                          struct cp_version **out)
{
    int rc = cp_policies_get(a->deps.policies, v, out);
    if (rc == -ENOENT) {
        cp_reply_error(req, 404, "version_not_found", "policy version %" PRId64 " does not exist",
                       v);
        return false;
    }
    if (rc < 0) {
        cp_reply_error(req, 503, "store_unavailable", "cannot read version %" PRId64 ": %s", v,
                       strerror(-rc));
        return false;
    }
    return true;
}

static void handle_get(struct cp_admin *a, struct sy_http_req *req, int64_t v)
{
    struct cp_version *ver = NULL;
    cJSON *root, *compiled;

    if (!load_or_reply(a, req, v, &ver))
        return;
    root = version_json(ver, cp_policies_active_version(a->deps.policies));
    cJSON_AddStringToObject(root, "source", ver->source);
    compiled = cJSON_Parse(ver->compiled);
    if (compiled)
        cJSON_AddItemToObject(root, "compiled", compiled);
    else
        cJSON_AddStringToObject(root, "compiled", ver->compiled);
    cp_version_free(ver);
    cp_reply_json(req, 200, root);
}

static void handle_diff(struct cp_admin *a, struct sy_http_req *req, int64_t from, int64_t to)
{
    struct cp_version *va = NULL, *vb = NULL;
    char an[48], bn[48];
    char *diff;
    cJSON *root;

    if (!load_or_reply(a, req, from, &va))
        return;
    if (!load_or_reply(a, req, to, &vb)) {
        cp_version_free(va);
        return;
    }
    snprintf(an, sizeof(an), "version %" PRId64, from);
    snprintf(bn, sizeof(bn), "version %" PRId64, to);
    diff = cp_diff_unified(va->compiled, vb->compiled, an, bn);
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "from", (double)from);
    cJSON_AddNumberToObject(root, "to", (double)to);
    cJSON_AddStringToObject(root, "diff", diff);
    free(diff);
    cp_version_free(va);
    cp_version_free(vb);
    cp_reply_json(req, 200, root);
}

static void handle_activate(struct cp_admin *a, struct sy_http_req *req, int64_t v)
{
    int64_t rollback_of = 0, now;
    char *err = NULL;
    cJSON *root;

    now = cp_policies_activate(a->deps.policies, v, &rollback_of, &err);
    if (now == -ENOENT) {
        cp_reply_error(req, 404, "version_not_found", "%s", err ? err : "no such version");
        free(err);
        return;
    }
    if (now < 0) {
        cp_reply_error(req, now == -EAGAIN ? 409 : 503, now == -EAGAIN ? "conflict" : "store_error",
                       "%s", err ? err : "activation failed");
        free(err);
        return;
    }
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", (double)now);
    cJSON_AddBoolToObject(root, "active", true);
    if (rollback_of)
        cJSON_AddNumberToObject(root, "rollback_of", (double)rollback_of);
    else
        cJSON_AddNullToObject(root, "rollback_of");
    cp_reply_json(req, 200, root);
}

/* Routes /v1/policies/... : "", "<v>", "<a>/diff/<b>", "<v>/activate". */
static void route_policies(struct cp_admin *a, struct sy_http_req *req, const char *rest)
{
    enum sy_http_method m = sy_http_req_method(req);
    const char *slash = strchr(rest, '/');
    size_t seg = slash ? (size_t)(slash - rest) : strlen(rest);
    int64_t v, v2;
    int rc;

    if (*rest == '\0') {
        if (m == SY_HTTP_POST)
            handle_push(a, req);
        else if (m == SY_HTTP_GET)
            handle_list(a, req);
        else
            goto out_method;
        return;
    }
    rc = parse_version(a, rest, seg, &v);
    if (rc == -ENOENT) {
        cp_reply_error(req, 404, "version_not_found", "no policy version is active");
        return;
    }
    if (rc < 0) {
        cp_reply_error(req, 400, "invalid_version", "'%.*s' is not a policy version number",
                       (int)(seg > 40 ? 40 : seg), rest);
        return;
    }
    if (!slash) {
        if (m != SY_HTTP_GET)
            goto out_method;
        handle_get(a, req, v);
        return;
    }
    if (strcmp(slash, "/activate") == 0) {
        if (m != SY_HTTP_POST)
            goto out_method;
        handle_activate(a, req, v);
        return;
    }
    if (strncmp(slash, "/diff/", 6) == 0) {
        const char *b = slash + 6;
        if (m != SY_HTTP_GET)
            goto out_method;
        rc = parse_version(a, b, strlen(b), &v2);
        if (rc < 0) {
            cp_reply_error(req, rc == -ENOENT ? 404 : 400, "invalid_version",
                           "'%.40s' is not a policy version number", b);
            return;
        }
        handle_diff(a, req, v, v2);
        return;
    }
    cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
    return;

out_method:
    cp_reply_error(req, 405, "method_not_allowed", "method %s is not allowed on %.200s",
                   sy_http_req_method_name(req), sy_http_req_path(req));
}

static void handle(struct sy_http_req *req, void *arg)
{
    struct cp_admin *a = arg;
    const char *path = sy_http_req_path(req);

    if (strncmp(path, "/v1/policies", 12) == 0 && (path[12] == '\0' || path[12] == '/')) {
        route_policies(a, req, path[12] ? path + 13 : "");
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "status", "ok");
        cJSON_AddStringToObject(root, "id", a->deps.cp_id);
        cJSON_AddStringToObject(root, "store", a->deps.store->ops->name);
        cJSON_AddNumberToObject(root, "active_version",
                                (double)cp_policies_active_version(a->deps.policies));
        cp_reply_json(req, 200, root);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        bool ok = cp_store_healthy(a->deps.store);
        const char *body = ok ? "{\"status\":\"ready\"}"
                              : "{\"status\":\"not_ready\",\"reason\":\"store unreachable\"}";
        sy_http_reply(req, ok ? 200 : 503, "application/json", body, strlen(body));
        return;
    }
    for (size_t i = 0; i < a->n_routes; i++) {
        size_t pl = strlen(a->routes[i].prefix);
        if (strncmp(path, a->routes[i].prefix, pl) == 0 && (path[pl] == '\0' || path[pl] == '/')) {
            a->routes[i].fn(req, path[pl] ? path + pl + 1 : "", a->routes[i].arg);
            return;
        }
    }
    cp_reply_error(req, 404, "not_found", "unknown path %.200s", path);
}

int cp_admin_add_route(struct cp_admin *a, const char *prefix, cp_admin_handler_fn fn, void *arg)
{
    if (a->n_routes == CP_ADMIN_MAX_ROUTES || strlen(prefix) >= sizeof(a->routes[0].prefix))
        return -ENOSPC;
    snprintf(a->routes[a->n_routes].prefix, sizeof(a->routes[0].prefix), "%s", prefix);
    a->routes[a->n_routes].fn = fn;
    a->routes[a->n_routes].arg = arg;
    a->n_routes++;
    return 0;
}

struct cp_admin *cp_admin_new(struct event_base *base, int fd, const struct cp_admin_deps *deps)
{
    struct cp_admin *a = sy_xcalloc(1, sizeof(*a));
    struct sy_http_limits lim = {
        .max_body_bytes = CP_ADMIN_MAX_BODY,
        .max_header_bytes = 64 * 1024,
        .max_headers = 100,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .idle_timeout_ms = 60000,
        .max_connections = 256,
    };

    a->deps = *deps;
    a->http = sy_http_server_new(base, fd, &lim, handle, a, cp_server_error_body);
    if (!a->http) {
        free(a);
        return NULL;
    }
    return a;
}

void cp_admin_free(struct cp_admin *a)
{
    if (!a)
        return;
    sy_http_server_free(a->http);
    free(a);
}
