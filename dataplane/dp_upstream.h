/* dataplane/dp_upstream.h - HTTP calls to providers on a worker's event_base: plain
 * http:// on dp_h1 (our lean HTTP/1.1 client), https:// on libcurl multi-socket (the
 * hiperfifo pattern).
 *
 * One dp_upstream per worker; dp_h1 and libcurl's CURLM each keep a connection pool, so
 * calls to the same provider reuse keep-alive connections. Setting SY_UPSTREAM_CURL=1 in
 * the environment sends http:// through libcurl too (an escape hatch; read when a worker
 * starts). docs/internals/upstream.md has the why. Everything runs on the worker thread. A call's
 * callbacks run from libcurl's callbacks: they must not start or cancel calls directly (use
 * dp_upstream_cancel only from outside a callback of the same call, e.g. from an HTTP event);
 * on_done is the last callback of a call, after which the call is gone.
 */
#ifndef DP_UPSTREAM_H
#define DP_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>

struct dp_upstream;
struct dp_upstream_call;

/* Outcome classes of a finished call. */
enum dp_upstream_result {
    DP_UP_OK = 0,   /* a whole HTTP response was received (any status) */
    DP_UP_CONNECT,  /* connection refused, unreachable, DNS failure */
    DP_UP_TIMEOUT,  /* connect or whole-call timeout */
    DP_UP_BROKEN,   /* connection dropped or response malformed mid-way */
    DP_UP_ABORTED,  /* the consumer stopped it (on_data returned non-zero) */
    DP_UP_INTERNAL, /* local failure (out of memory, curl misuse) */
};

struct dp_upstream_request {
    const char *url;
    const struct curl_slist *headers; /* borrowed; must outlive the call */
    const char *body;                 /* borrowed; must outlive the call */
    size_t body_len;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;            /* the whole call; 0 = no limit */
    uint32_t first_byte_timeout_ms; /* until the first body byte; 0 = no limit */
    uint32_t idle_timeout_ms;       /* longest silence once the body flows; 0 = no limit */
};

struct dp_upstream_ops {
    /* Response headers are complete. <retry_after> is the raw header or NULL. */
    void (*on_headers)(void *arg, long status, const char *content_type, const char *retry_after);
    /* Body bytes. Return 0 when consumed; 1 to pause WITHOUT consuming them (libcurl
     * delivers the same bytes again after dp_upstream_resume); -1 to abort the call
     * (on_done then reports DP_UP_ABORTED). */
    int (*on_data)(void *arg, const char *data, size_t len);
    /* The call ended; <detail> is a human-readable reason for failures. */
    void (*on_done)(void *arg, enum dp_upstream_result result, const char *detail);
};

/* Creates the worker's upstream engine on <base>. NULL on failure. */
struct dp_upstream *dp_upstream_new(struct event_base *base);
/* Cancels every call (no callbacks) and frees. Accepts NULL. */
void dp_upstream_free(struct dp_upstream *up);

/* Starts a POST. Returns the call, or NULL when it could not be started. */
struct dp_upstream_call *dp_upstream_start(struct dp_upstream *up,
                                           const struct dp_upstream_request *rq,
                                           const struct dp_upstream_ops *ops, void *arg);
/* Stops a call; no callback runs after this. Not from inside this call's own callbacks;
 * from another call's callback it is fine (inside libcurl the removal is deferred to the
 * next loop pass, but the call is silent at once). */
void dp_upstream_cancel(struct dp_upstream_call *call);
/* Resumes a call paused by on_data returning 1. */
void dp_upstream_resume(struct dp_upstream_call *call);

/* Calls in progress. */
size_t dp_upstream_active(const struct dp_upstream *up);

#endif
