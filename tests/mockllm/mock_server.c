/* tests/mockllm/mock_server.c - routing, config application and /_mock/ endpoints.
 *
 * An API request is answered in three steps: the dialect handler builds a reply from the
 * request alone, the server counts it and swaps in an injected error if the config says
 * so, and a struct mock_call delivers it with the config's timing and failures. Control
 * requests (/_mock/...) are answered at once and never counted. Event-loop thread only.
 */
#define SY_LOG_MODULE "server"

#include "mock_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mock_anthropic.h"
#include "mock_call.h"
#include "mock_dialect.h"
#include "mock_gemini.h"
#include "mock_openai.h"
#include "sy_log.h"
#include "sy_util.h"

#define CONTROL_PREFIX "/_mock/"

struct mock_server {
    struct event_base *base;
    struct evhttp *http;
    struct mock_state state;
    struct mock_calls calls;
    uint64_t seq; /* API requests seen, for deterministic ids */
};

/* Dialects in routing order; the first one also formats errors for unknown paths. */
static const struct mock_dialect *const dialects[] = {&mock_openai_dialect, &mock_gemini_dialect,
                                                      &mock_anthropic_dialect};

/* Whether <path> matches the route <pat>: exactly, or by prefix when <pat> ends in '*'
 * (Gemini's paths carry the model name). */
static bool route_matches(const char *pat, const char *path)
{
    size_t n = strlen(pat);

    if (n && pat[n - 1] == '*')
        return strncmp(pat, path, n - 1) == 0;
    return strcmp(pat, path) == 0;
}

static const char *method_name(unsigned cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* Sends <body> (<len> bytes, may be NULL) at once. */
static void send_now(struct evhttp_request *req, int status, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (buf && body)
        evbuffer_add(buf, body, len);
    evhttp_send_reply(req, status, NULL, buf);
    if (buf)
        evbuffer_free(buf);
}

/* Sends <doc> (deleted here) as JSON, or a bare 500 when it is NULL or cannot be printed. */
static void send_json(struct evhttp_request *req, int status, cJSON *doc)
{
    size_t len = 0;
    char *s = doc ? cJSON_PrintUnformatted(doc) : NULL;

    if (s)
        len = strlen(s);
    send_now(req, s ? status : 500, s, len);
    cJSON_free(s);
    cJSON_Delete(doc);
}

static void send_dialect_error(struct evhttp_request *req, const struct mock_dialect *d, int status,
                               const char *msg)
{
    size_t len = 0;
    char *body = d->error_body(status, msg, &len);

    send_now(req, status, body, len);
    free(body);
}

static void send_control_result(struct evhttp_request *req, int status, const char *error)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddBoolToObject(doc, "ok", error == NULL);
    if (error)
        cJSON_AddStringToObject(doc, "error", error);
    send_json(req, status, doc);
}

static void handle_control(struct mock_server *srv, struct evhttp_request *req,
                           enum evhttp_cmd_type cmd, const char *path)
{
    const char *what = path + strlen(CONTROL_PREFIX);
    bool get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;

    if (strcmp(what, "stats") == 0 && get) {
        send_json(req, 200, mock_state_stats_json(&srv->state, srv->calls.count));
    } else if (strcmp(what, "config") == 0 && get) {
        send_json(req, 200, mock_config_to_json(&srv->state.config));
    } else if (strcmp(what, "config") == 0 && post) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
        char *err = NULL;
        if (mock_config_apply_json(&srv->state.config, body, len, &err) < 0) {
            send_control_result(req, 400, err);
            free(err);
            return;
        }
        sy_info("config changed: status=%d latency_ms=%d ttft_ms=%d chunk_delay_ms=%d "
                "fail_after_chunks=%d drop_connection=%d retry_after_s=%d",
                srv->state.config.status, srv->state.config.latency_ms, srv->state.config.ttft_ms,
                srv->state.config.chunk_delay_ms, srv->state.config.fail_after_chunks,
                srv->state.config.drop_connection, srv->state.config.retry_after_s);
        send_control_result(req, 200, NULL);
    } else if (strcmp(what, "reset") == 0 && post) {
        mock_state_reset(&srv->state);
        sy_info("config and stats reset");
        send_control_result(req, 200, NULL);
    } else if (strcmp(what, "stats") == 0 || strcmp(what, "config") == 0 ||
               strcmp(what, "reset") == 0) {
        send_control_result(req, 405, "method not allowed");
    } else {
        send_control_result(req, 404, "unknown control endpoint");
    }
}

/* Replaces <reply> with the dialect's error for an injected <cfg>->status. Keeps the model. */
static void inject_error(const struct mock_dialect *d, const struct mock_config *cfg,
                         struct mock_reply *reply)
{
    char *model = reply->model;
    char msg[32];

    reply->model = NULL;
    mock_reply_cleanup(reply);
    snprintf(msg, sizeof(msg), "mock error %d", cfg->status);
    reply->status = cfg->status;
    reply->content_type = "application/json";
    reply->body = d->error_body(cfg->status, msg, &reply->body_len);
    reply->retry_after_s = cfg->retry_after_s;
    reply->model = model;
}

static void handle_api(struct mock_server *srv, struct evhttp_request *req,
                       const struct mock_dialect *d, const struct mock_route *route,
                       const char *path, const char *query)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct mock_request rq = {.path = path, .query = query};
    struct mock_reply reply = {0};
    const struct mock_config *cfg = &srv->state.config;

    rq.body_len = evbuffer_get_length(in);
    rq.body = rq.body_len ? (const char *)evbuffer_pullup(in, -1) : "";
    rq.seq = ++srv->seq;
    route->handle(&rq, &reply);
    mock_stats_count(&srv->state.stats, path, reply.model);
    if (cfg->status != 200)
        inject_error(d, cfg, &reply);
    if ((!reply.body && !reply.events) || (reply.events && reply.nevents == 0)) {
        mock_reply_cleanup(&reply);
        sy_error("out of memory answering %s", path);
        send_dialect_error(req, d, 500, "mock out of memory");
        return;
    }
    if (mock_call_start(&srv->calls, req, &reply, cfg) < 0)
        send_dialect_error(req, d, 500, "mock out of memory");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct mock_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    const char *allow = NULL; /* methods of the path, when only the method is wrong */
    char msg[160];

    if (!path || !*path)
        path = "/";
    sy_debug("%s %s", method_name(cmd), path);
    if (strncmp(path, CONTROL_PREFIX, strlen(CONTROL_PREFIX)) == 0) {
        handle_control(srv, req, cmd, path);
        return;
    }
    for (size_t i = 0; i < SY_ARRAY_LEN(dialects); i++) {
        const struct mock_dialect *d = dialects[i];
        for (size_t k = 0; k < d->nroutes; k++) {
            if (!route_matches(d->routes[k].path, path))
                continue;
            allow = method_name(d->routes[k].method);
            if (d->routes[k].method == (unsigned)cmd) {
                handle_api(srv, req, d, &d->routes[k], path, query);
                return;
            }
        }
    }
    mock_stats_count(&srv->state.stats, path, NULL);
    snprintf(msg, sizeof(msg), "%s (%s %.100s)", allow ? "Method not allowed" : "Invalid URL",
             method_name(cmd), path);
    if (allow)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    send_dialect_error(req, dialects[0], allow ? 405 : 404, msg);
}

struct mock_server *mock_server_new(struct event_base *base, const char *name,
                                    const struct mock_config *defaults)
{
    struct mock_server *srv = sy_xcalloc(1, sizeof(*srv));

    srv->base = base;
    srv->http = evhttp_new(base);
    if (!srv->http) {
        free(srv);
        return NULL;
    }
    mock_state_init(&srv->state, name, defaults);
    mock_calls_init(&srv->calls, base, &srv->state.stats);
    evhttp_set_max_body_size(srv->http, MOCK_MAX_BODY);
    evhttp_set_timeout(srv->http, MOCK_CONN_TIMEOUT_S);
    evhttp_set_default_content_type(srv->http, "application/json");
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);
    return srv;
}

int mock_server_listen(struct mock_server *srv, const char *host, int port, int *bound_port)
{
    struct evhttp_bound_socket *bs;
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);

    bs = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!bs)
        return errno ? -errno : -EADDRNOTAVAIL;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &slen) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void mock_server_free(struct mock_server *srv)
{
    if (!srv)
        return;
    mock_calls_cleanup(&srv->calls);
    evhttp_free(srv->http);
    mock_state_cleanup(&srv->state);
    free(srv);
}
