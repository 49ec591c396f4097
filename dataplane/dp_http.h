/* dataplane/dp_http.h - the proxy's HTTP/1.1 server: connections, parsing, replies, SSE.
 *
 * One dp_http_server per worker thread, on that worker's event_base; everything here runs
 * on that thread only. The server owns its connections and each connection owns at most
 * one request in progress (pipelined requests wait in the input buffer). A request is
 * handed to the handler once its headers and whole body are in; the handler answers now
 * or later with dp_http_reply() or the dp_http_stream_*() trio. If the client goes away
 * first, the request's abort callback runs and the request is freed right after: the
 * handler must forget it then.
 *
 * Why not evhttp: libevent 2.1's evhttp answers oversized or malformed requests itself with
 * HTML bodies, has one timeout for headers and body alike, and has no connection cap. A
 * gateway must answer every error in the OpenAI format and defend itself, so the protocol
 * handling lives here, on libevent's evconnlistener and bufferevents. See
 * docs/internals/http.md.
 */
#ifndef DP_HTTP_H
#define DP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct dp_http_server;
struct dp_http_req;

#define DP_HTTP_LOW_WATER (64 * 1024)
#define DP_HTTP_HIGH_WATER (1024 * 1024)

enum dp_http_method {
    DP_HTTP_OTHER = 0,
    DP_HTTP_GET,
    DP_HTTP_HEAD,
    DP_HTTP_POST,
    DP_HTTP_PUT,
    DP_HTTP_DELETE,
    DP_HTTP_OPTIONS,
};

struct dp_http_limits {
    size_t max_body_bytes;
    size_t max_header_bytes; /* request line + headers */
    uint32_t max_headers;    /* header lines */
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms; /* keep-alive wait for the next request */
    uint32_t max_connections; /* for this server (worker) */
};

/* Called for every complete request. The handler must eventually answer <req> (reply or
 * stream) unless the abort callback runs first. */
typedef void (*dp_http_handler_fn)(struct dp_http_req *req, void *arg);
/* Called when the client disconnects before the answer is complete; <req> is freed after
 * this returns. */
typedef void (*dp_http_abort_fn)(struct dp_http_req *req, void *arg);
/* Called when an error reply would be sent by the server itself (413, 400, 408, 431...):
 * fills the JSON body. The server uses dp_http_error_body_fn to keep error formatting in
 * one place (the OpenAI error format lives in dp_errors). */
typedef char *(*dp_http_error_body_fn)(int status, const char *message);

/* Creates a server on <base> accepting on the bound, listening socket <fd> (the server takes
 * it). <handler>(req, <arg>) receives requests. Returns NULL on failure. Worker thread. */
struct dp_http_server *dp_http_server_new(struct event_base *base, int fd,
                                          const struct dp_http_limits *limits,
                                          dp_http_handler_fn handler, void *arg,
                                          dp_http_error_body_fn error_body);

/* Replaces the limits (a new policy was applied). Applies to requests not yet started. */
void dp_http_server_set_limits(struct dp_http_server *srv, const struct dp_http_limits *limits);

/* Stops accepting, closes idle connections, and closes the others once their current
 * answer is complete. <on_drained>(<arg>) runs when no connection is left (maybe at once). */
void dp_http_server_drain(struct dp_http_server *srv, void (*on_drained)(void *), void *arg);

/* Number of open connections. */
size_t dp_http_server_connections(const struct dp_http_server *srv);

/* Closes everything and frees the server; in-flight requests are aborted. Accepts NULL. */
void dp_http_server_free(struct dp_http_server *srv);

/* --- request accessors (valid until the answer completes or the abort callback ran) --- */
enum dp_http_method dp_http_req_method(const struct dp_http_req *req);
const char *dp_http_req_method_name(const struct dp_http_req *req);
/* The path without the query string, NUL-terminated. */
const char *dp_http_req_path(const struct dp_http_req *req);
/* The query string without '?', or "" */
const char *dp_http_req_query(const struct dp_http_req *req);
/* The first header named <name> (case-insensitive), or NULL. */
const char *dp_http_req_header(const struct dp_http_req *req, const char *name);
/* The body; NUL-terminated at body[len] for parser convenience. */
const char *dp_http_req_body(const struct dp_http_req *req, size_t *len);
/* When the first byte of the request arrived (sy_now_us clock). */
uint64_t dp_http_req_start_us(const struct dp_http_req *req);
/* The client's address as text. */
const char *dp_http_req_peer(const struct dp_http_req *req);

/* Registers the abort callback (see dp_http_abort_fn). */
void dp_http_req_on_abort(struct dp_http_req *req, dp_http_abort_fn cb, void *arg);

/* --- answers --- */
/* Adds a response header; call before dp_http_reply / dp_http_stream_begin. <name> and
 * <value> are copied; values with CR or LF are dropped. */
void dp_http_add_header(struct dp_http_req *req, const char *name, const char *value);

/* Sends a complete answer with Content-Length and completes the request. */
void dp_http_reply(struct dp_http_req *req, int status, const char *content_type, const char *body,
                   size_t len);

/* Starts a streamed answer (chunked transfer encoding). */
void dp_http_stream_begin(struct dp_http_req *req, int status, const char *content_type);
/* Sends one piece of a streamed answer. Returns the bytes now queued for the client, so
 * callers can apply backpressure. */
size_t dp_http_stream_write(struct dp_http_req *req, const char *data, size_t len);
/* Asks for <cb>(req, <arg>) once the bytes queued for the client fall to a low mark
 * (DP_HTTP_LOW_WATER); one shot. Used to resume a paused upstream. */
void dp_http_req_on_writable(struct dp_http_req *req, dp_http_abort_fn cb, void *arg);
/* Bytes queued for the client and not yet written. */
size_t dp_http_req_queued(const struct dp_http_req *req);
/* Ends a streamed answer and completes the request. */
void dp_http_stream_end(struct dp_http_req *req);
/* Whether dp_http_stream_begin was called. */
bool dp_http_req_streaming(const struct dp_http_req *req);

/* The reason phrase for <status>. */
const char *dp_http_reason(int status);

#endif
