/* tests/mockllm/mock_dialect.h - the interface between the server and a provider dialect.
 *
 * A dialect (OpenAI today; Anthropic and Gemini later) turns one parsed HTTP request into a
 * struct mock_reply: either a whole body or a list of pre-rendered stream events. Handlers
 * are pure functions of the request (no timers, no sockets, no config): the server applies
 * the run-time config and struct mock_call delivers the reply. Event-loop thread only.
 */
#ifndef MOCK_DIALECT_H
#define MOCK_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a handler gets: borrowed views into the HTTP request. <body> is not NUL-terminated. */
struct mock_request {
    const char *path;
    const char *query; /* NULL when the URI has none */
    const char *body;
    size_t body_len;
    uint64_t seq; /* per-server request number, for deterministic ids */
};

/* What a handler returns. Exactly one of <body> and <events> is set. Owns every pointer. */
struct mock_reply {
    int status;
    const char *content_type; /* static string */
    char *body;
    size_t body_len;
    char **events; /* stream: complete wire events, the last one ends the stream */
    size_t nevents;
    char *model;       /* model named by the request, for stats; may be NULL */
    int retry_after_s; /* > 0: send a Retry-After header */
};

/* Answers one request into <out> (zeroed by the caller). On OOM leaves out->body and
 * out->events NULL; the server then answers 500. */
typedef void (*mock_handle_fn)(const struct mock_request *rq, struct mock_reply *out);

/* Returns the dialect's error body for <status> with <message> (malloc'd, caller frees,
 * length in *len), or NULL on OOM. */
typedef char *(*mock_error_body_fn)(int status, const char *message, size_t *len);

struct mock_route {
    unsigned method;  /* EVHTTP_REQ_* */
    const char *path; /* exact, or a prefix when it ends in '*' */
    mock_handle_fn handle;
};

struct mock_dialect {
    const char *name;
    const struct mock_route *routes;
    size_t nroutes;
    mock_error_body_fn error_body;
};

/* Frees what <r> owns and zeroes it. Accepts a zeroed reply. */
void mock_reply_cleanup(struct mock_reply *r);

#endif
