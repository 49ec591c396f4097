/* common/sy_http.h - the HTTP/1.1 server of the proxy and the admin API: connections,
 * parsing, limits, replies, SSE.
 *
 * One sy_http_server per worker thread, on that worker's event_base; everything here runs
 * on that thread only. The server owns its connections and each connection owns at most
 * one request in progress (pipelined requests wait in the input buffer). A request is
 * handed to the handler once its headers and whole body are in; the handler answers now
 * or later with sy_http_reply() or the sy_http_stream_*() trio. If the client goes away
 * first, the request's abort callback runs and the request is freed right after: the
 * handler must forget it then.
 *
 * Why not evhttp: libevent 2.1's evhttp answers oversized or malformed requests itself with
 * HTML bodies, has one timeout for headers and body alike, and has no connection cap. A
 * gateway must answer every error in the OpenAI format and defend itself, so the protocol
 * handling lives here, on libevent's evconnlistener and bufferevents. See
 * docs/internals/http.md.
 */
#ifndef SY_HTTP_H
#define SY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct sy_http_server;
struct sy_http_req;

#define SY_HTTP_LOW_WATER (64 * 1024)
#define SY_HTTP_HIGH_WATER (1024 * 1024)

enum sy_http_method {
    SY_HTTP_OTHER = 0,
    SY_HTTP_GET,
    SY_HTTP_HEAD,
    SY_HTTP_POST,
    SY_HTTP_PUT,
    SY_HTTP_DELETE,
    SY_HTTP_OPTIONS,
};

struct sy_http_limits {
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
typedef void (*sy_http_handler_fn)(struct sy_http_req *req, void *arg);
/* Called when the client disconnects before the answer is complete; <req> is freed after
 * this returns. */
typedef void (*sy_http_abort_fn)(struct sy_http_req *req, void *arg);
/* Called when an error reply would be sent by the server itself (413, 400, 408, 431...):
 * fills the JSON body. The server uses sy_http_error_body_fn to keep error formatting in
 * one place (the data plane answers in the OpenAI format, see dp_errors). */
typedef char *(*sy_http_error_body_fn)(int status, const char *message);

/* Creates a server on <base> accepting on the bound, listening socket <fd> (the server takes
 * it). <handler>(req, <arg>) receives requests. Returns NULL on failure. Worker thread. */
struct sy_http_server *sy_http_server_new(struct event_base *base, int fd,
                                          const struct sy_http_limits *limits,
                                          sy_http_handler_fn handler, void *arg,
                                          sy_http_error_body_fn error_body);

/* Replaces the limits (a new policy was applied). Applies to requests not yet started. */
void sy_http_server_set_limits(struct sy_http_server *srv, const struct sy_http_limits *limits);

/* Stops accepting, closes idle connections, and closes the others once their current
 * answer is complete. <on_drained>(<arg>) runs when no connection is left (maybe at once). */
void sy_http_server_drain(struct sy_http_server *srv, void (*on_drained)(void *), void *arg);

/* Number of open connections. */
size_t sy_http_server_connections(const struct sy_http_server *srv);

/* Closes everything and frees the server; in-flight requests are aborted. Accepts NULL. */
void sy_http_server_free(struct sy_http_server *srv);

/* --- request accessors (valid until the answer completes or the abort callback ran) --- */
enum sy_http_method sy_http_req_method(const struct sy_http_req *req);
const char *sy_http_req_method_name(const struct sy_http_req *req);
/* The path without the query string, NUL-terminated. */
const char *sy_http_req_path(const struct sy_http_req *req);
/* The query string without '?', or "" */
const char *sy_http_req_query(const struct sy_http_req *req);
/* The first header named <name> (case-insensitive), or NULL. */
const char *sy_http_req_header(const struct sy_http_req *req, const char *name);
/* The body; NUL-terminated at body[len] for parser convenience. */
const char *sy_http_req_body(const struct sy_http_req *req, size_t *len);
/* When the first byte of the request arrived (sy_now_us clock). */
uint64_t sy_http_req_start_us(const struct sy_http_req *req);
/* The client's address as text. */
const char *sy_http_req_peer(const struct sy_http_req *req);

/* Registers the abort callback (see sy_http_abort_fn). */
void sy_http_req_on_abort(struct sy_http_req *req, sy_http_abort_fn cb, void *arg);

/* --- answers --- */
/* Adds a response header; call before sy_http_reply / sy_http_stream_begin. <name> and
 * <value> are copied; values with CR or LF are dropped. */
void sy_http_add_header(struct sy_http_req *req, const char *name, const char *value);

/* Sends a complete answer with Content-Length and completes the request. */
void sy_http_reply(struct sy_http_req *req, int status, const char *content_type, const char *body,
                   size_t len);

/* Starts a streamed answer (chunked transfer encoding). */
void sy_http_stream_begin(struct sy_http_req *req, int status, const char *content_type);
/* Sends one piece of a streamed answer. Returns the bytes now queued for the client, so
 * callers can apply backpressure. */
size_t sy_http_stream_write(struct sy_http_req *req, const char *data, size_t len);
/* Asks for <cb>(req, <arg>) once the bytes queued for the client fall to a low mark
 * (SY_HTTP_LOW_WATER); one shot. Used to resume a paused upstream. */
void sy_http_req_on_writable(struct sy_http_req *req, sy_http_abort_fn cb, void *arg);
/* Bytes queued for the client and not yet written. */
size_t sy_http_req_queued(const struct sy_http_req *req);
/* Ends a streamed answer and completes the request. */
void sy_http_stream_end(struct sy_http_req *req);
/* Whether sy_http_stream_begin was called. */
bool sy_http_req_streaming(const struct sy_http_req *req);

/* The reason phrase for <status>. */
const char *sy_http_reason(int status);

#endif
