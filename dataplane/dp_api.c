/* dataplane/dp_api.c - request dispatch, request ids, and the small endpoints
 * (/v1/models, /healthz, /readyz). Model calls (dp_chat) and feedback (dp_feedback) have
 * their own files. Worker thread. */
#define SY_LOG_MODULE "api"

#include "dp_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "dp_accesslog.h"
#include "dp_auth.h"
#include "dp_chat.h"
#include "dp_errors.h"
#include "dp_feedback.h"
#include "dp_metrics.h"
#include "dp_proxy.h"
#include "dp_router.h"
#include "dp_worker.h"
#include "sy_http.h"
#include "sy_util.h"

#define DP_REQUEST_ID_MAX 128

/* A client-supplied id is kept when it is short and plain (it ends up in logs and headers). */
static bool request_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        unsigned char ch = (unsigned char)id[n];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || n >= DP_REQUEST_ID_MAX)
            return false;
    }
    return n > 0;
}

static void new_request_id(struct dp_worker *w, char *out, size_t cap)
{
    uint64_t a = dp_rand_next(&w->rng), b = dp_rand_next(&w->rng);
    snprintf(out, cap, "%016" PRIx64 "%016" PRIx64, a, b);
}

static void log_simple(struct dp_worker *w, struct sy_http_req *req, const char *id, int status,
                       size_t bytes_out, const char *error)
{
    size_t in;
    struct dp_access_entry e = {
        .request_id = id,
        .peer = sy_http_req_peer(req),
        .method = sy_http_req_method_name(req),
        .path = sy_http_req_path(req),
        .status = status,
        .latency_us = sy_now_us() - sy_http_req_start_us(req),
        .prompt_tokens = -1,
        .completion_tokens = -1,
        .cached_tokens = -1,
        .bytes_out = bytes_out,
        .error = error,
        .tenant = dp_auth_tenant(req),
    };
    sy_http_req_body(req, &in);
    e.bytes_in = in;
    dp_access_log(w->proxy->access_log_fd, &e);
}

static void reply_json(struct sy_http_req *req, int status, const char *body)
{
    sy_http_reply(req, status, "application/json", body, strlen(body));
}

static void handle_models(struct dp_worker *w, struct sy_http_req *req)
{
    struct dp_snapshot *snap = dp_worker_snapshot(w);
    cJSON *root = cJSON_CreateObject();
    cJSON *data;
    char *out;

    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    if (snap) {
        const struct sy_policy *pol = snap->policy;
        for (size_t i = 0; i < pol->n_routes; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "id", pol->routes[i].match_model);
            cJSON_AddStringToObject(m, "object", "model");
            cJSON_AddNumberToObject(m, "created", 0);
            cJSON_AddStringToObject(m, "owned_by", "switchyard");
            cJSON_AddItemToArray(data, m);
        }
        for (size_t i = 0; i < pol->n_models; i++) {
            /* A route with the same name shadows the model: list the name once. */
            if (sy_policy_find_route(pol, pol->models[i].name))
                continue;
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "id", pol->models[i].name);
            cJSON_AddStringToObject(m, "object", "model");
            cJSON_AddNumberToObject(m, "created", 0);
            cJSON_AddStringToObject(m, "owned_by", pol->providers[pol->models[i].provider].name);
            cJSON_AddItemToArray(data, m);
        }
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    reply_json(req, 200, out ? out : "{\"object\":\"list\",\"data\":[]}");
    free(out);
}

enum endpoint_kind {
    EP_CHAT,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
    EP_MESSAGES,
    EP_MODELS,
    EP_METRICS,
    EP_HEALTHZ,
    EP_READYZ,
    EP_FEEDBACK,
};

struct endpoint {
    const char *path;
    enum sy_http_method method;
    const char *allow;
    enum endpoint_kind kind;
};

static const struct endpoint endpoints[] = {
    {"/v1/chat/completions", SY_HTTP_POST, "POST", EP_CHAT},
    {"/v1/completions", SY_HTTP_POST, "POST", EP_COMPLETIONS},
    {"/v1/embeddings", SY_HTTP_POST, "POST", EP_EMBEDDINGS},
    {"/v1/messages", SY_HTTP_POST, "POST", EP_MESSAGES},
    {"/v1/feedback", SY_HTTP_POST, "POST", EP_FEEDBACK},
    {"/v1/models", SY_HTTP_GET, "GET, HEAD", EP_MODELS},
    {"/metrics", SY_HTTP_GET, "GET, HEAD", EP_METRICS},
    {"/healthz", SY_HTTP_GET, "GET, HEAD", EP_HEALTHZ},
    {"/readyz", SY_HTTP_GET, "GET, HEAD", EP_READYZ},
};

void dp_api_handle(struct sy_http_req *req, void *arg)
{
    struct dp_worker *w = arg;
    const char *path = sy_http_req_path(req);
    enum sy_http_method method = sy_http_req_method(req);
    const char *client_id = sy_http_req_header(req, "x-request-id");
    char id[DP_REQUEST_ID_MAX + 2];
    const struct endpoint *ep = NULL;
    struct dp_snapshot *snap;
    bool from_client = client_id && request_id_ok(client_id), model_call;

    if (from_client)
        snprintf(id, sizeof(id), "%s", client_id);
    else
        new_request_id(w, id, sizeof(id));
    for (size_t i = 0; i < SY_ARRAY_LEN(endpoints); i++) {
        if (strcmp(path, endpoints[i].path) == 0) {
            ep = &endpoints[i];
            break;
        }
    }
    /* A model call that gets past the checks below sets its own x-request-id: the signed
     * feedback id once a model answered (dp_chat.h). Every other answer carries <id>. */
    model_call = ep && (ep->kind == EP_CHAT || ep->kind == EP_COMPLETIONS ||
                        ep->kind == EP_EMBEDDINGS || ep->kind == EP_MESSAGES);
    if (!model_call)
        sy_http_add_header(req, "x-request-id", id);
    snap = dp_worker_snapshot(w);
    if (snap)
        sy_http_add_header(req, "x-switchyard-policy-version", snap->version_str);

    if (!ep) {
        log_simple(w, req, id, 404, 0, "unknown_url");
        dp_error_replyf(req, 404, "invalid_request_error", "unknown_url", NULL,
                        "Unknown request URL: %s %.200s", sy_http_req_method_name(req), path);
        return;
    }
    if (method != ep->method && !(method == SY_HTTP_HEAD && ep->method == SY_HTTP_GET)) {
        if (model_call)
            sy_http_add_header(req, "x-request-id", id);
        sy_http_add_header(req, "Allow", ep->allow);
        log_simple(w, req, id, 405, 0, "method_not_allowed");
        dp_error_replyf(req, 405, "invalid_request_error", "method_not_allowed", NULL,
                        "Method %s is not allowed on %s (allowed: %s)",
                        sy_http_req_method_name(req), path, ep->allow);
        return;
    }
    /* Every /v1/ endpoint needs a gateway key unless the policy is open; probes never do. */
    if (strncmp(path, "/v1/", 4) == 0) {
        const char *code;
        int status, rc;

        rc = dp_auth_request(req, snap ? snap->policy : NULL, &status, &code);
        if (rc < 0) {
            if (model_call)
                sy_http_add_header(req, "x-request-id", id);
            log_simple(w, req, id, status, 0, code);
            dp_auth_reply(req, rc);
            return;
        }
    }

    switch (ep->kind) {
    case EP_CHAT:
        dp_chat_handle(w, req, id, from_client, DP_API_CHAT);
        break;
    case EP_COMPLETIONS:
        dp_chat_handle(w, req, id, from_client, DP_API_COMPLETIONS);
        break;
    case EP_EMBEDDINGS:
        dp_chat_handle(w, req, id, from_client, DP_API_EMBEDDINGS);
        break;
    case EP_MESSAGES:
        dp_chat_handle(w, req, id, from_client, DP_API_MESSAGES);
        break;
    case EP_FEEDBACK:
        dp_feedback_handle(w, req, id);
        break;
    case EP_MODELS:
        log_simple(w, req, id, 200, 0, NULL);
        handle_models(w, req);
        break;
    case EP_METRICS:
        /* Scrapes and probes are not access-logged: they would drown the traffic. */
        dp_metrics_handle(w, req);
        break;
    case EP_HEALTHZ:
        reply_json(req, 200, "{\"status\":\"ok\"}");
        break;
    case EP_READYZ:
        if (!snap)
            reply_json(req, 503, "{\"status\":\"not_ready\",\"reason\":\"no policy loaded\"}");
        else if (atomic_load(&w->proxy->draining))
            reply_json(req, 503, "{\"status\":\"draining\"}");
        else
            reply_json(req, 200, "{\"status\":\"ready\"}");
        break;
    }
    dp_auth_done();
}
