/* dataplane/dp_chat.c - the chat completions exchange: client -> provider -> client.
 *
 * Lifecycle: dp_chat_handle() validates and routes, then starts one upstream call. The
 * exchange ends exactly once, in chat_end(), from one of: the upstream call finished
 * (on_done), or the client went away (on_client_abort, which cancels the call). Nothing is
 * sent to the client before the provider's first byte of a successful answer, so a later
 * retry or fallback stays possible; after that, failures become an SSE error event.
 * Worker thread only.
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

struct dp_chat {
    struct dp_worker *w;
    struct sy_http_req *req; /* NULL once the client is gone */
    struct dp_snapshot *snap;
    struct dp_pick pick;
    struct dp_upstream_call *call;
    char request_id[130];
    char peer[64];
    char *up_body; /* owned when it differs from the client's body */
    const char *send_body;
    size_t send_len;
    size_t bytes_in;
    bool stream;
    bool client_wants_usage;
    bool sse;     /* the provider answers with an event stream */
    bool started; /* the client has our status line */
    bool saw_done;
    long up_status;
    char retry_after[64];
    char *buf; /* a whole (non-SSE) upstream answer */
    size_t buf_len, buf_cap;
    struct sy_sse_parser parser;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    uint64_t t_start, t_first;
    size_t bytes_out;
    int status;
    const char *error;
};

static void chat_free(struct dp_chat *c)
{
    sy_sse_cleanup(&c->parser);
    free(c->up_body);
    free(c->buf);
    dp_snapshot_unref(c->snap);
    free(c);
}

static double chat_cost(const struct dp_chat *c)
{
    const struct sy_model *m = c->pick.model;
    double cost = 0;
    int64_t cached = c->cached_tokens > 0 ? c->cached_tokens : 0;

    if (!m)
        return 0;
    if (c->prompt_tokens > 0) {
        int64_t fresh = c->prompt_tokens - cached;
        double cached_price =
            m->cached_input_per_mtok > 0 ? m->cached_input_per_mtok : m->input_per_mtok;
        cost += (double)(fresh > 0 ? fresh : 0) * m->input_per_mtok / 1e6;
        cost += (double)cached * cached_price / 1e6;
    }
    if (c->completion_tokens > 0)
        cost += (double)c->completion_tokens * m->output_per_mtok / 1e6;
    return cost;
}

/* Writes the access log line and frees the exchange. */
static void chat_end(struct dp_chat *c)
{
    struct dp_access_entry e = {
        .request_id = c->request_id,
        .peer = c->peer,
        .method = "POST",
        .path = "/v1/chat/completions",
        .route = c->pick.model ? (c->pick.route ? c->pick.route->name : "direct") : NULL,
        .provider = c->pick.provider ? c->pick.provider->name : NULL,
        .model = c->pick.model ? c->pick.model->name : NULL,
        .policy_version = c->snap ? c->snap->version_str : NULL,
        .status = c->status,
        .stream = c->stream,
        .latency_us = sy_now_us() - c->t_start,
        .ttft_us = c->t_first ? c->t_first - c->t_start : 0,
        .prompt_tokens = c->prompt_tokens,
        .completion_tokens = c->completion_tokens,
        .cached_tokens = c->cached_tokens,
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
    if (!c->req)
        return;
    sy_http_add_header(c->req, "x-switchyard-provider", c->pick.provider->name);
    sy_http_add_header(c->req, "x-switchyard-model", c->pick.model->name);
    sy_http_add_header(c->req, "x-switchyard-route",
                       c->pick.route ? c->pick.route->name : "direct");
}

static void chat_error(struct dp_chat *c, int status, const char *type, const char *code,
                       const char *message)
{
    char *body = dp_error_json(status, type, code, NULL, message);
    size_t len = strlen(body);

    c->status = status;
    c->error = code ? code : type;
    if (c->req) {
        if (c->retry_after[0])
            sy_http_add_header(c->req, "Retry-After", c->retry_after);
        sy_http_reply(c->req, status, "application/json", body, len);
        c->bytes_out += len;
        c->req = NULL;
    }
    free(body);
}

/* Reads usage numbers from a parsed OpenAI "usage" object. */
static void take_usage(struct dp_chat *c, const cJSON *usage)
{
    const cJSON *v;

    if (!cJSON_IsObject(usage))
        return;
    v = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    if (cJSON_IsNumber(v))
        c->prompt_tokens = (int64_t)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(v))
        c->completion_tokens = (int64_t)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "cached_tokens") : NULL;
    if (cJSON_IsNumber(v))
        c->cached_tokens = (int64_t)v->valuedouble;
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

/* Forwards one SSE event as "data: ...\n\n", keeping what the client asked for. */
static int on_sse_event(void *arg, const char *event, const char *data, size_t len)
{
    struct dp_chat *c = arg;
    (void)event;

    if (!c->req)
        return -1;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->saw_done = true;
    } else if (memmem(data, len, "\"usage\"", 7)) {
        /* Only chunks that may carry usage are parsed; the rest pass through untouched. */
        cJSON *chunk = cJSON_ParseWithLength(data, len);
        if (chunk) {
            const cJSON *usage = cJSON_GetObjectItemCaseSensitive(chunk, "usage");
            const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
            bool usage_only =
                cJSON_IsObject(usage) && cJSON_IsArray(choices) && cJSON_GetArraySize(choices) == 0;
            take_usage(c, usage);
            cJSON_Delete(chunk);
            /* We asked for usage on the client's behalf: drop the chunk it did not ask for. */
            if (usage_only && !c->client_wants_usage)
                return 0;
        }
    }
    {
        /* One chunk per event keeps events whole on the wire. */
        size_t n = len + 8;
        char stackbuf[4096];
        char *out = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
        if (!out)
            return -1;
        memcpy(out, "data: ", 6);
        memcpy(out + 6, data, len);
        out[6 + len] = '\n';
        out[7 + len] = '\n';
        client_write(c, out, n);
        if (out != stackbuf)
            free(out);
    }
    return 0;
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

/* Ends a started stream with an error event: the client's SDK raises it, never a silent cut. */
static void stream_fail(struct dp_chat *c, const char *code, const char *message)
{
    char *err = dp_error_json(502, "upstream_error", code, NULL, message);
    char *ev = sy_xasprintf("data: %s\n\n", err);

    client_write(c, ev, strlen(ev));
    free(ev);
    free(err);
    c->error = code;
    sy_http_stream_end(c->req);
    c->req = NULL;
}

static void finish_stream(struct dp_chat *c, enum dp_upstream_result res, const char *detail)
{
    if (res == DP_UP_OK)
        sy_sse_finish(&c->parser);
    if (!c->req)
        return;
    if (res == DP_UP_OK) {
        if (!c->started) {
            /* An empty event stream: answer with the events we would have relayed. */
            client_write(c, "", 0);
        }
        sy_http_stream_end(c->req);
        c->req = NULL;
        return;
    }
    if (!c->started) {
        /* Nothing reached the client yet: a plain error answer is still possible. */
        if (res == DP_UP_TIMEOUT)
            chat_error(c, 504, "upstream_error", "upstream_timeout", detail);
        else
            chat_error(c, 502, "upstream_error", "upstream_error", detail);
        return;
    }
    sy_warn("%s: provider %s stream broke after the first byte: %s", c->request_id,
            c->pick.provider->name, detail);
    stream_fail(c, res == DP_UP_TIMEOUT ? "upstream_timeout" : "upstream_stream_broken",
                res == DP_UP_TIMEOUT ? "the provider timed out in the middle of the stream"
                                     : "the provider's stream ended unexpectedly");
}

/* A non-2xx answer from the provider: keep its status and message. */
static void relay_upstream_error(struct dp_chat *c)
{
    cJSON *root = c->buf ? cJSON_ParseWithLength(c->buf, c->buf_len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    int status = (int)c->up_status;

    if (cJSON_IsObject(err) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message"))) {
        /* Already an OpenAI error object: pass it on as it is. */
        c->status = status;
        c->error = "upstream_status";
        add_route_headers(c);
        if (c->retry_after[0])
            sy_http_add_header(c->req, "Retry-After", c->retry_after);
        sy_http_reply(c->req, status, "application/json", c->buf, c->buf_len);
        c->bytes_out += c->buf_len;
        c->req = NULL;
    } else {
        char msg[512];
        size_t n = c->buf_len < 200 ? c->buf_len : 200;
        snprintf(msg, sizeof(msg), "provider %s answered HTTP %d: %.*s", c->pick.provider->name,
                 status, (int)n, c->buf ? c->buf : "");
        add_route_headers(c);
        chat_error(c, status, status >= 500 ? "upstream_error" : NULL, "upstream_status", msg);
    }
    cJSON_Delete(root);
}

static void finish_whole(struct dp_chat *c, enum dp_upstream_result res, const char *detail)
{
    cJSON *root;

    if (!c->req)
        return;
    if (res != DP_UP_OK) {
        add_route_headers(c);
        if (res == DP_UP_TIMEOUT)
            chat_error(c, 504, "upstream_error", "upstream_timeout", detail);
        else if (res == DP_UP_CONNECT)
            chat_error(c, 502, "upstream_error", "upstream_unreachable", detail);
        else if (res == DP_UP_BROKEN) {
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "provider %s closed the connection before a complete answer (%s)",
                     c->pick.provider->name, detail);
            chat_error(c, 502, "upstream_error", "upstream_connection_closed", msg);
        } else
            chat_error(c, 502, "upstream_error", c->error ? c->error : "upstream_error", detail);
        return;
    }
    if (c->up_status < 200 || c->up_status >= 300) {
        relay_upstream_error(c);
        return;
    }
    root = cJSON_ParseWithLength(c->buf ? c->buf : "", c->buf_len);
    if (!root) {
        add_route_headers(c);
        chat_error(c, 502, "upstream_error", "upstream_invalid_response",
                   "the provider's answer is not valid JSON");
        return;
    }
    take_usage(c, cJSON_GetObjectItemCaseSensitive(root, "usage"));
    cJSON_Delete(root);
    c->status = 200;
    c->t_first = sy_now_us();
    add_route_headers(c);
    {
        char cost[32];
        snprintf(cost, sizeof(cost), "%.8f", chat_cost(c));
        sy_http_add_header(c->req, "x-switchyard-cost-usd", cost);
    }
    sy_http_reply(c->req, 200, "application/json", c->buf, c->buf_len);
    c->bytes_out += c->buf_len;
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

/* Checks the request body; returns NULL with an error answer sent when it is unusable. */
static cJSON *parse_request(struct dp_chat *c, const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    const cJSON *v;

    /* One JSON value and nothing after it but whitespace. */
    while (root && end < body + len &&
           (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (root && end != body + len) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root) {
        chat_error(c, 400, "invalid_request_error", "invalid_json",
                   "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        chat_error(c, 400, "invalid_request_error", "invalid_json",
                   "the request body must be a JSON object");
        goto out_free;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(v) || !v->valuestring[0]) {
        dp_error_reply(c->req, 400, "invalid_request_error", "missing_required_parameter", "model",
                       "you must provide a model parameter (a non-empty string)");
        c->req = NULL;
        c->status = 400;
        c->error = "missing_model";
        goto out_free;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        dp_error_reply(c->req, 400, "invalid_request_error",
                       v ? "invalid_type" : "missing_required_parameter", "messages",
                       v ? "'messages' must be a non-empty array"
                         : "you must provide a 'messages' parameter");
        c->req = NULL;
        c->status = 400;
        c->error = "bad_messages";
        goto out_free;
    }
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, v)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            char param[48];
            snprintf(param, sizeof(param), "messages[%d].role", i);
            dp_error_replyf(c->req, 400, "invalid_request_error", "invalid_type", param,
                            "%s: each message must be an object with a string 'role'", param);
            c->req = NULL;
            c->status = 400;
            c->error = "bad_messages";
            goto out_free;
        }
        i++;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) {
        dp_error_reply(c->req, 400, "invalid_request_error", "invalid_type", "stream",
                       "'stream' must be a boolean");
        c->req = NULL;
        c->status = 400;
        c->error = "bad_stream";
        goto out_free;
    }
    c->stream = cJSON_IsTrue(v);
    if (c->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
        c->client_wants_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    return root;

out_free:
    cJSON_Delete(root);
    return NULL;
}

void dp_chat_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id)
{
    struct dp_chat *c = sy_xcalloc(1, sizeof(*c));
    const struct sy_policy *pol;
    const struct dp_provider_rt *rt;
    cJSON *root;
    const char *body;
    size_t body_len;

    c->w = w;
    c->req = req;
    c->t_start = sy_http_req_start_us(req);
    c->prompt_tokens = c->completion_tokens = c->cached_tokens = -1;
    c->status = 0;
    snprintf(c->request_id, sizeof(c->request_id), "%s", request_id);
    snprintf(c->peer, sizeof(c->peer), "%s", sy_http_req_peer(req));
    c->snap = dp_worker_snapshot(w);
    if (c->snap)
        dp_snapshot_ref(c->snap);
    body = sy_http_req_body(req, &body_len);
    c->bytes_in = body_len;

    if (!c->snap) {
        chat_error(c, 503, "server_error", "no_policy", "no routing policy is loaded yet");
        goto out_end;
    }
    pol = c->snap->policy;
    root = parse_request(c, body, body_len);
    if (!root)
        goto out_end;

    const char *model = cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring;
    if (dp_route_pick(pol, model, &w->rng, &c->pick) < 0) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "The model `%.200s` does not exist or you do not have access "
                 "to it.",
                 model);
        dp_error_reply(c->req, 404, "invalid_request_error", "model_not_found", "model", msg);
        c->req = NULL;
        c->status = 404;
        c->error = "model_not_found";
        cJSON_Delete(root);
        goto out_end;
    }

    const struct dp_provider_ops *ops = dp_provider_ops_for(c->pick.provider->kind);
    if (ops->chat_request(root, c->pick.model, c->stream)) {
        c->up_body = cJSON_PrintUnformatted(root);
        if (!c->up_body) {
            cJSON_Delete(root);
            chat_error(c, 500, "server_error", "out_of_memory", "out of memory");
            goto out_end;
        }
        c->send_body = c->up_body;
        c->send_len = strlen(c->up_body);
    } else {
        c->send_body = body; /* lives as long as <req>, which outlives the call */
        c->send_len = body_len;
    }
    cJSON_Delete(root);

    rt = &c->snap->providers[c->pick.provider_index];
    sy_sse_init(&c->parser, DP_CHAT_MAX_EVENT, on_sse_event, c);
    struct dp_upstream_request rq = {
        .url = rt->chat_url,
        .headers = rt->headers,
        .body = c->send_body,
        .body_len = c->send_len,
        .connect_timeout_ms = c->pick.provider->connect_timeout_ms,
        /* A whole answer must come within timeout_ms; a stream must start within it and
         * never fall silent for that long, however long it runs in all. */
        .timeout_ms = c->stream ? 0 : c->pick.provider->timeout_ms,
        .first_byte_timeout_ms = c->stream ? c->pick.provider->timeout_ms : 0,
        .idle_timeout_ms = c->stream ? c->pick.provider->timeout_ms : 0,
    };
    c->call = dp_upstream_start(w->up, &rq, &chat_upstream_ops, c);
    if (!c->call) {
        add_route_headers(c);
        chat_error(c, 500, "server_error", "upstream_start_failed",
                   "could not start the upstream request");
        goto out_end;
    }
    sy_http_req_on_abort(req, on_client_abort, c);
    return;

out_end:
    chat_end(c);
}
