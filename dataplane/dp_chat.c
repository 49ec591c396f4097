/* dataplane/dp_chat.c - one model call: client -> provider -> client, for chat
 * completions, legacy completions and embeddings.
 *
 * Lifecycle: dp_chat_handle() validates and routes, the provider adapter builds the
 * upstream request, and one upstream call starts. The exchange ends exactly once, in
 * chat_end(), from one of: the upstream call finished (up_on_done), or the client went
 * away (on_client_abort, which cancels the call). Nothing is sent to the client before the
 * provider's first byte of a successful answer, so a retry or fallback stays possible;
 * after that, failures become an SSE error event. Worker thread only.
 */
#define SY_LOG_MODULE "chat"

#include "dp_chat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "dp_accesslog.h"
#include "dp_errors.h"
#include "dp_ingress.h"
#include "dp_jscan.h"
#include "dp_provider.h"
#include "dp_proxy.h"
#include "dp_router.h"
#include "dp_snapshot.h"
#include "dp_upstream.h"
#include "dp_worker.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_sse.h"
#include "sy_util.h"

#define DP_CHAT_MAX_RESPONSE (64u * 1024 * 1024) /* a whole non-streamed answer */
#define DP_CHAT_MAX_EVENT (16u * 1024 * 1024)    /* one SSE event */

static const char *const api_paths[] = {
    [DP_API_CHAT] = "/v1/chat/completions",
    [DP_API_COMPLETIONS] = "/v1/completions",
    [DP_API_EMBEDDINGS] = "/v1/embeddings",
    [DP_API_MESSAGES] = "/v1/messages",
};

struct dp_chat {
    struct dp_worker *w;
    struct sy_http_req *req; /* NULL once the client is gone or answered */
    enum dp_api_kind kind;
    struct dp_snapshot *snap;
    struct dp_pick pick;
    const struct dp_provider_ops *ops;
    struct dp_xctx x;
    struct dp_upreq up;
    struct dp_upstream_call *call;
    struct dp_stream_xlate *xlate;
    const struct dp_ingress_ops *in; /* the client's dialect; NULL = OpenAI */
    struct dp_ingress_stream *in_st;
    char requested_model[256];
    char request_id[130];
    char peer[64];
    size_t bytes_in;
    bool stream;
    bool client_wants_usage;
    bool sse;     /* the provider answers with an event stream */
    bool started; /* the client has our status line */
    bool saw_done;
    bool failed; /* an error event went out */
    long up_status;
    char retry_after[64];
    char *buf; /* a whole (non-SSE) upstream answer */
    size_t buf_len, buf_cap;
    struct sy_sse_parser parser;
    struct dp_usage usage;
    uint64_t t_start, t_first;
    size_t bytes_out;
    int status;
    const char *error;
};

static void chat_free(struct dp_chat *c)
{
    if (c->xlate)
        c->ops->stream_free(c->xlate);
    if (c->in_st)
        c->in->stream_free(c->in_st);
    sy_sse_cleanup(&c->parser);
    dp_upreq_cleanup(&c->up);
    free(c->buf);
    dp_snapshot_unref(c->snap);
    free(c);
}

static double chat_cost(const struct dp_chat *c)
{
    const struct sy_model *m = c->pick.model;
    const struct dp_usage *u = &c->usage;
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    double cost = 0;

    if (!m)
        return 0;
    if (u->prompt_tokens > 0) {
        int64_t fresh = u->prompt_tokens - cached;
        double cached_price =
            m->cached_input_per_mtok > 0 ? m->cached_input_per_mtok : m->input_per_mtok;
        cost += (double)(fresh > 0 ? fresh : 0) * m->input_per_mtok / 1e6;
        cost += (double)cached * cached_price / 1e6;
    }
    if (u->completion_tokens > 0)
        cost += (double)u->completion_tokens * m->output_per_mtok / 1e6;
    return cost;
}

/* Writes the access log line and frees the exchange. */
static void chat_end(struct dp_chat *c)
{
    struct dp_access_entry e = {
        .request_id = c->request_id,
        .peer = c->peer,
        .method = "POST",
        .path = api_paths[c->kind],
        .route = c->pick.model ? (c->pick.route ? c->pick.route->name : "direct") : NULL,
        .provider = c->pick.provider ? c->pick.provider->name : NULL,
        .model = c->pick.model ? c->pick.model->name : NULL,
        .policy_version = c->snap ? c->snap->version_str : NULL,
        .status = c->status,
        .stream = c->stream,
        .latency_us = sy_now_us() - c->t_start,
        .ttft_us = c->t_first ? c->t_first - c->t_start : 0,
        .prompt_tokens = c->usage.prompt_tokens,
        .completion_tokens = c->usage.completion_tokens,
        .cached_tokens = c->usage.cached_tokens,
        .cost_usd = chat_cost(c),
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .error = c->error,
    };
    dp_access_log(c->w->proxy->access_log_fd, &e);
    chat_free(c);
}

/* Headers every answer of a routed request carries. */
static void add_route_headers(struct dp_chat *c)
{
    if (!c->req || !c->pick.model)
        return;
    sy_http_add_header(c->req, "x-switchyard-provider", c->pick.provider->name);
    sy_http_add_header(c->req, "x-switchyard-model", c->pick.model->name);
    sy_http_add_header(c->req, "x-switchyard-route",
                       c->pick.route ? c->pick.route->name : "direct");
}

/* Answers with an error object (before anything else was sent). */
static void reply_error(struct dp_chat *c, int status, const char *type, const char *code,
                        const char *param, const char *message)
{
    char *body =
        c->in ? c->in->error_body(status, type ? type : dp_error_type_for(status), code, message)
              : dp_error_json(status, type, code, param, message);
    size_t len = strlen(body);

    c->status = status;
    c->error = code ? code : type;
    if (c->req) {
        add_route_headers(c);
        if (c->retry_after[0])
            sy_http_add_header(c->req, "Retry-After", c->retry_after);
        sy_http_reply(c->req, status, "application/json", body, len);
        c->bytes_out += len;
        c->req = NULL;
    }
    free(body);
}

static void client_write(struct dp_chat *c, const char *data, size_t len)
{
    if (!c->started) {
        c->started = true;
        c->t_first = sy_now_us();
        c->status = 200;
        add_route_headers(c);
        sy_http_stream_begin(c->req, 200, "text/event-stream");
    }
    sy_http_stream_write(c->req, data, len);
    c->bytes_out += len;
}

static int write_client(void *arg, const char *data, size_t len)
{
    struct dp_chat *c = arg;
    if (!c->req)
        return -1;
    client_write(c, data, len);
    return 0;
}

/* Sends one OpenAI event to the client as "data: ...\n\n" (one chunk per event keeps events
 * whole on the wire), reading usage and dropping the usage chunk the client did not ask
 * for (we asked for it on the client's behalf). dp_emit_fn of every adapter. */
static int emit_event(void *arg, const char *data, size_t len)
{
    struct dp_chat *c = arg;
    char stackbuf[4096];
    char *out;
    size_t n = len + 8;

    if (!c->req)
        return -1;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->saw_done = true;
    } else if (dp_json_has_object_member(data, len, "usage") ||
               dp_json_has_object_member(data, len, "error")) {
        /* Only events that carry a usage object or an error are parsed: with include_usage
         * every OpenAI chunk has "usage":null, and parsing them all was most of the cost
         * of relaying a stream. */
        cJSON *chunk = cJSON_ParseWithLength(data, len);
        if (chunk) {
            const cJSON *usage = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
            bool usage_only =
                cJSON_IsObject(usage) && cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0;
            if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(chunk, "error")) && !choices) {
                c->failed = true;
                c->error = "upstream_stream_error";
            }
            dp_usage_from_openai(usage, &c->usage);
            cJSON_Delete(chunk);
            if (usage_only && !c->client_wants_usage && !c->in)
                return 0;
        }
    }
    if (c->in) {
        if (!c->in_st)
            c->in_st = c->in->stream_new(c->requested_model, c->request_id);
        return c->in->stream_chunk(c->in_st, data, len, write_client, c);
    }
    out = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (!out)
        return -1;
    memcpy(out, "data: ", 6);
    memcpy(out + 6, data, len);
    out[6 + len] = '\n';
    out[7 + len] = '\n';
    client_write(c, out, n);
    if (out != stackbuf)
        free(out);
    return 0;
}

static int on_sse_event(void *arg, const char *event, const char *data, size_t len)
{
    struct dp_chat *c = arg;

    if (!c->req)
        return -1;
    if (c->xlate)
        return c->ops->stream_event(c->xlate, event, data, len, &c->usage, emit_event, c);
    return emit_event(c, data, len);
}

static void on_client_writable(struct sy_http_req *req, void *arg)
{
    struct dp_chat *c = arg;
    (void)req;
    if (c->call)
        dp_upstream_resume(c->call);
}

static void up_on_headers(void *arg, long status, const char *content_type, const char *retry_after)
{
    struct dp_chat *c = arg;

    c->up_status = status;
    if (retry_after)
        snprintf(c->retry_after, sizeof(c->retry_after), "%s", retry_after);
    c->sse = c->stream && status >= 200 && status < 300 && content_type &&
             strncasecmp(content_type, "text/event-stream", 17) == 0;
    if (c->sse && c->ops->stream_new)
        c->xlate = c->ops->stream_new(&c->x);
}

static int up_on_data(void *arg, const char *data, size_t len)
{
    struct dp_chat *c = arg;

    if (!c->req)
        return -1;
    if (c->sse) {
        if (c->started && sy_http_req_queued(c->req) > SY_HTTP_HIGH_WATER) {
            /* The client reads slower than the provider writes: pause the provider. */
            sy_http_req_on_writable(c->req, on_client_writable, c);
            return 1;
        }
        int rc = sy_sse_feed(&c->parser, data, len);
        if (rc == -EMSGSIZE) {
            c->error = "upstream_event_too_large";
            return -1;
        }
        return rc ? -1 : 0;
    }
    if (c->buf_len + len > DP_CHAT_MAX_RESPONSE) {
        c->error = "upstream_response_too_large";
        return -1;
    }
    if (c->buf_len + len + 1 > c->buf_cap) {
        size_t cap = c->buf_cap ? c->buf_cap : 4096;
        while (cap < c->buf_len + len + 1)
            cap *= 2;
        char *nb = realloc(c->buf, cap);
        if (!nb) {
            c->error = "out_of_memory";
            return -1;
        }
        c->buf = nb;
        c->buf_cap = cap;
    }
    memcpy(c->buf + c->buf_len, data, len);
    c->buf_len += len;
    c->buf[c->buf_len] = '\0';
    return 0;
}

/* Ends the client's stream (the ingress dialect may add its closing events). */
static void stream_close(struct dp_chat *c)
{
    if (c->in && c->in_st && c->req)
        c->in->stream_end(c->in_st, c->failed, write_client, c);
    if (c->req) {
        sy_http_stream_end(c->req);
        c->req = NULL;
    }
}

/* Ends a started stream with an error event: the client's SDK raises it, never a silent cut. */
static void stream_fail(struct dp_chat *c, const char *code, const char *message)
{
    char *err = dp_error_json(502, "upstream_error", code, NULL, message);

    emit_event(c, err, strlen(err));
    free(err);
    c->error = code;
    c->failed = true;
    stream_close(c);
}

/* A transport failure before any answer: 502/504 with what happened. */
static void reply_transport_error(struct dp_chat *c, enum dp_upstream_result res,
                                  const char *detail)
{
    char msg[512];

    switch (res) {
    case DP_UP_TIMEOUT:
        snprintf(msg, sizeof(msg), "provider %s timed out: %s", c->pick.provider->name, detail);
        reply_error(c, 504, "upstream_error", "upstream_timeout", NULL, msg);
        break;
    case DP_UP_CONNECT:
        snprintf(msg, sizeof(msg), "provider %s is unreachable: %s", c->pick.provider->name,
                 detail);
        reply_error(c, 502, "upstream_error", "upstream_unreachable", NULL, msg);
        break;
    case DP_UP_BROKEN:
        snprintf(msg, sizeof(msg),
                 "provider %s closed the connection before a complete answer (%s)",
                 c->pick.provider->name, detail);
        reply_error(c, 502, "upstream_error", "upstream_connection_closed", NULL, msg);
        break;
    default:
        snprintf(msg, sizeof(msg), "provider %s: %s", c->pick.provider->name, detail);
        reply_error(c, 502, "upstream_error", c->error ? c->error : "upstream_error", NULL, msg);
        break;
    }
}

static void finish_stream(struct dp_chat *c, enum dp_upstream_result res, const char *detail)
{
    if (res == DP_UP_OK) {
        sy_sse_finish(&c->parser);
        if (c->xlate && c->req && !c->failed)
            c->ops->stream_end(c->xlate, &c->usage, emit_event, c);
    }
    if (!c->req)
        return;
    if (res == DP_UP_OK || c->failed) {
        if (!c->started)
            client_write(c, "", 0); /* an empty event stream is still an answer */
        stream_close(c);
        return;
    }
    if (!c->started) {
        /* Nothing reached the client yet: a plain error answer is still possible. */
        reply_transport_error(c, res, detail);
        return;
    }
    sy_warn("%s: provider %s stream broke after the first byte: %s", c->request_id,
            c->pick.provider->name, detail);
    stream_fail(c, res == DP_UP_TIMEOUT ? "upstream_timeout" : "upstream_stream_broken",
                res == DP_UP_TIMEOUT ? "the provider timed out in the middle of the stream"
                                     : "the provider's stream ended unexpectedly");
}

/* A non-2xx answer from the provider, normalized (docs/providers.md, errors). */
static void relay_upstream_error(struct dp_chat *c)
{
    struct dp_error_info info;
    char msg[sizeof(info.message) + 64];

    c->ops->error((int)c->up_status, c->buf, c->buf_len, &info);
    snprintf(msg, sizeof(msg), "provider %s answered %s", c->pick.provider->name, info.message);
    if (info.status != 429)
        c->retry_after[0] = '\0'; /* Retry-After belongs to rate limits only */
    reply_error(c, info.status, info.type, info.code, NULL, msg);
}

static void finish_whole(struct dp_chat *c, enum dp_upstream_result res, const char *detail)
{
    char *out = NULL, *err = NULL;
    size_t out_len = 0;

    if (!c->req)
        return;
    if (res != DP_UP_OK) {
        reply_transport_error(c, res, detail);
        return;
    }
    if (c->up_status < 200 || c->up_status >= 300) {
        relay_upstream_error(c);
        return;
    }
    /* Translate when the adapter speaks another language; else read usage and pass on. */
    int (*xlate)(const char *, size_t, const struct dp_xctx *, char **, size_t *, struct dp_usage *,
                 char **) =
        c->kind == DP_API_EMBEDDINGS ? c->ops->embed_response : c->ops->chat_response;
    if (xlate) {
        if (xlate(c->buf ? c->buf : "", c->buf_len, &c->x, &out, &out_len, &c->usage, &err) < 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "provider %s: unusable answer: %s", c->pick.provider->name,
                     err ? err : "?");
            free(err);
            reply_error(c, 502, "upstream_error", "upstream_invalid_response", NULL, msg);
            return;
        }
    } else {
        /* Passed through as the provider sent it: only the usage object is parsed. */
        if (!dp_json_looks_like_object(c->buf, c->buf_len)) {
            reply_error(c, 502, "upstream_error", "upstream_invalid_response", NULL,
                        "the provider's answer is not a JSON object");
            return;
        }
        cJSON *usage = dp_json_member_object(c->buf, c->buf_len, "usage");
        dp_usage_from_openai(usage, &c->usage);
        cJSON_Delete(usage);
    }
    if (c->in) {
        char *client = NULL;
        size_t client_len = 0;
        const char *src = out ? out : c->buf;
        size_t src_len = out ? out_len : c->buf_len;
        if (c->in->from_openai(src, src_len, c->requested_model, &client, &client_len, &err) < 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "cannot translate the answer for the %s API: %s",
                     c->in->name, err ? err : "?");
            free(err);
            free(out);
            reply_error(c, 502, "upstream_error", "translation_failed", NULL, msg);
            return;
        }
        free(out);
        out = client;
        out_len = client_len;
    }
    c->status = 200;
    c->t_first = sy_now_us();
    add_route_headers(c);
    {
        char cost[32];
        snprintf(cost, sizeof(cost), "%.8f", chat_cost(c));
        sy_http_add_header(c->req, "x-switchyard-cost-usd", cost);
    }
    if (out) {
        sy_http_reply(c->req, 200, "application/json", out, out_len);
        c->bytes_out += out_len;
        free(out);
    } else {
        sy_http_reply(c->req, 200, "application/json", c->buf, c->buf_len);
        c->bytes_out += c->buf_len;
    }
    c->req = NULL;
}

static void up_on_done(void *arg, enum dp_upstream_result res, const char *detail)
{
    struct dp_chat *c = arg;

    c->call = NULL;
    if (res != DP_UP_OK && c->req)
        sy_info("%s: provider %s: %s", c->request_id, c->pick.provider->name, detail);
    if (c->sse)
        finish_stream(c, res, detail);
    else
        finish_whole(c, res, detail);
    chat_end(c);
}

static const struct dp_upstream_ops chat_upstream_ops = {
    .on_headers = up_on_headers,
    .on_data = up_on_data,
    .on_done = up_on_done,
};

static void on_client_abort(struct sy_http_req *req, void *arg)
{
    struct dp_chat *c = arg;
    (void)req;

    c->req = NULL;
    if (c->call) {
        dp_upstream_cancel(c->call);
        c->call = NULL;
    }
    c->status = 499;
    c->error = "client_closed";
    chat_end(c);
}

static void bad_request(struct dp_chat *c, const char *code, const char *param, const char *message)
{
    reply_error(c, 400, "invalid_request_error", code, param, message);
}

/* Checks the request body for <kind>; returns NULL with an error answer sent when it is
 * unusable. */
static cJSON *parse_request(struct dp_chat *c, const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root;
    const cJSON *v;

    if (c->in) {
        /* Another dialect: translate first, then check it as any OpenAI request. */
        struct dp_ingress_error ie = {0};
        root = c->in->to_openai(body, len, &ie);
        if (!root) {
            reply_error(c, ie.status ? ie.status : 400, "invalid_request_error",
                        ie.code[0] ? ie.code : "invalid_request", ie.param[0] ? ie.param : NULL,
                        ie.message[0] ? ie.message : "invalid request");
            return NULL;
        }
        end = body + len;
    } else {
        root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    }

    /* One JSON value and nothing after it but whitespace. */
    while (root && end < body + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (root && end != body + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) {
        bad_request(c, "invalid_json", NULL, "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        bad_request(c, "invalid_json", NULL, "the request body must be a JSON object");
        goto out_free;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        bad_request(c, "missing_required_parameter", "model",
                    "you must provide a model parameter (a non-empty string)");
        goto out_free;
    }
    if (c->kind == DP_API_CHAT || c->kind == DP_API_MESSAGES) {
        v = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "messages",
                        v ? "'messages' must be a non-empty array"
                          : "you must provide a 'messages' parameter");
            goto out_free;
        }
        int i = 0;
        const cJSON *msg;
        cJSON_ArrayForEach(msg, v)
        {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
            if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
                char param[48], text[128];
                snprintf(param, sizeof(param), "messages[%d].role", i);
                snprintf(text, sizeof(text),
                         "%s: each message must be an object with a string 'role'", param);
                bad_request(c, "invalid_type", param, text);
                goto out_free;
            }
            i++;
        }
    } else if (c->kind == DP_API_COMPLETIONS) {
        v = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        if (!cJSON_IsString(v) && !cJSON_IsArray(v)) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "prompt",
                        "you must provide 'prompt' (a string or an array)");
            goto out_free;
        }
    } else {
        v = cJSON_GetObjectItemCaseSensitive(root, "input");
        if (!cJSON_IsString(v) && !cJSON_IsArray(v)) {
            bad_request(c, v ? "invalid_type" : "missing_required_parameter", "input",
                        "you must provide 'input' (a string or an array)");
            goto out_free;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        bad_request(c, "invalid_type", "stream", "'stream' must be a boolean");
        goto out_free;
    }
    c->stream = cJSON_IsTrue(v) && c->kind != DP_API_EMBEDDINGS;
    if (c->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        c->client_wants_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    return root;

out_free:
    cJSON_Delete(root);
    return NULL;
}

/* Builds the upstream request through the adapter; answers 400 when the provider cannot
 * do what was asked. Returns 0 or -1 (answered). */
static int build_request(struct dp_chat *c, const cJSON *root)
{
    const struct dp_provider_rt *rt = &c->snap->providers[c->pick.provider_index];
    char *err = NULL;
    int rc;
    int (*build)(const struct dp_provider_rt *, const cJSON *, const struct dp_xctx *,
                 struct dp_upreq *, char **);

    build = c->kind == DP_API_EMBEDDINGS    ? c->ops->embed_request
            : c->kind == DP_API_COMPLETIONS ? c->ops->completion_request
                                            : c->ops->chat_request;
    if (!build) {
        char msg[512];
        snprintf(msg, sizeof(msg), "model %s (provider %s, kind %s) does not support %s",
                 c->pick.model->name, c->pick.provider->name, c->ops->kind,
                 c->kind == DP_API_EMBEDDINGS ? "embeddings" : "legacy completions");
        bad_request(c, "unsupported_capability", "model", msg);
        return -1;
    }
    rc = build(rt, root, &c->x, &c->up, &err);
    if (rc < 0) {
        if (rc == -ENOMEM) {
            reply_error(c, 500, "server_error", "out_of_memory", NULL, "out of memory");
        } else {
            char msg[768];
            snprintf(msg, sizeof(msg), "model %s: %s", c->pick.model->name,
                     err ? err : "the provider cannot serve this request");
            bad_request(c, "unsupported_capability", NULL, msg);
        }
        free(err);
        return -1;
    }
    return 0;
}

void dp_chat_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id,
                    enum dp_api_kind kind)
{
    struct dp_chat *c = sy_xcalloc(1, sizeof(*c));
    const char *body;
    size_t body_len;
    cJSON *root;

    c->w = w;
    c->req = req;
    c->kind = kind;
    c->in = kind == DP_API_MESSAGES ? &dp_ingress_anthropic : NULL;
    c->t_start = sy_http_req_start_us(req);
    c->usage.prompt_tokens = c->usage.completion_tokens = c->usage.cached_tokens = -1;
    snprintf(c->request_id, sizeof(c->request_id), "%s", request_id);
    snprintf(c->peer, sizeof(c->peer), "%s", sy_http_req_peer(req));
    c->snap = dp_worker_snapshot(w);
    if (c->snap)
        dp_snapshot_ref(c->snap);
    body = sy_http_req_body(req, &body_len);
    c->bytes_in = body_len;

    if (!c->snap) {
        reply_error(c, 503, "server_error", "no_policy", NULL, "no routing policy is loaded yet");
        goto out_end;
    }
    root = parse_request(c, body, body_len);
    if (!root)
        goto out_end;

    const char *model = cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring;
    snprintf(c->requested_model, sizeof(c->requested_model), "%s", model);
    if (dp_route_pick(c->snap->policy, model, &w->rng, &c->pick) < 0) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "The model `%.200s` does not exist or you do not have access to it.", model);
        reply_error(c, 404, "invalid_request_error", "model_not_found", "model", msg);
        cJSON_Delete(root);
        goto out_end;
    }
    c->ops = dp_provider_ops_for(c->pick.provider->kind);
    c->x = (struct dp_xctx){
        .model = c->pick.model,
        .request_id = c->request_id,
        .created = (int64_t)(sy_wall_us() / 1000000u),
        .stream = c->stream,
        /* The client's bytes can be forwarded only when they are OpenAI's; they live as long
         * as <req>, which outlives the call. */
        .raw_body = c->in ? NULL : body,
        .raw_len = c->in ? 0 : body_len,
    };
    if (build_request(c, root) < 0) {
        cJSON_Delete(root);
        goto out_end;
    }
    cJSON_Delete(root);

    sy_sse_init(&c->parser, DP_CHAT_MAX_EVENT, on_sse_event, c);
    const struct dp_provider_rt *rt = &c->snap->providers[c->pick.provider_index];
    struct dp_upstream_request rq = {
        .url = c->up.url,
        .headers = rt->headers,
        .body = c->up.body ? c->up.body : body,
        .body_len = c->up.body ? c->up.body_len : body_len,
        .connect_timeout_ms = c->pick.provider->connect_timeout_ms,
        /* A whole answer must come within timeout_ms; a stream must start within it and
         * never fall silent for that long, however long it runs in all. */
        .timeout_ms = c->stream ? 0 : c->pick.provider->timeout_ms,
        .first_byte_timeout_ms = c->stream ? c->pick.provider->timeout_ms : 0,
        .idle_timeout_ms = c->stream ? c->pick.provider->timeout_ms : 0,
    };
    c->call = dp_upstream_start(w->up, &rq, &chat_upstream_ops, c);
    if (!c->call) {
        reply_error(c, 500, "server_error", "upstream_start_failed", NULL,
                    "could not start the upstream request");
        goto out_end;
    }
    sy_http_req_on_abort(req, on_client_abort, c);
    return;

out_end:
    chat_end(c);
}
