/* dataplane/dp_h1.h - a lean HTTP/1.1 client for plain-http providers, on a worker's loop.
 *
 * dp_upstream sends every http:// call here (https:// stays on libcurl): self-hosted
 * models, sidecars and mocks on loopback or cluster IPs, where libcurl's per-transfer cost
 * was larger than a whole nginx request (docs/internals/upstream.md). One dp_h1 per worker,
 * on that worker's event_base; it keeps a keep-alive pool per host:port. No TLS, no HTTP/2,
 * no proxies, no redirects, no compression: POST, one request per connection at a time.
 *
 * Callbacks follow dp_upstream's contract (dp_upstream.h): on_headers once, on_data any
 * number of times (1 = pause without consuming, -1 = abort), on_done last; none of them
 * runs from inside dp_h1_start. Everything runs on the worker thread.
 */
#ifndef DP_H1_H
#define DP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "dp_upstream.h"

/* Idle keep-alive connections kept per host:port, and how long one may sit unused. */
#define DP_H1_MAX_IDLE 64
#define DP_H1_IDLE_TIMEOUT_MS 60000
/* Largest response header section (status line, headers, each 1xx included separately). */
#define DP_H1_MAX_HEAD (64 * 1024)

struct dp_h1;
struct dp_h1_call;

/* Whether <url> is a plain http:// URL this client can call (no user info, a valid port, a
 * path without spaces or control characters). Anything else belongs to libcurl. */
bool dp_h1_url_ok(const char *url);

/* Creates the client on <base>. NULL on failure. Worker thread. */
struct dp_h1 *dp_h1_new(struct event_base *base);
/* Cancels every call (no callbacks), closes pooled connections and frees. Accepts NULL. */
void dp_h1_free(struct dp_h1 *h1);
/* Changes the pool limits (tests, tuning): at most <max_idle> idle connections per
 * host:port, each closed after <idle_timeout_ms> unused. Applies to later releases. */
void dp_h1_set_pool_limits(struct dp_h1 *h1, size_t max_idle, uint32_t idle_timeout_ms);

/* Starts a POST of <rq> (dp_h1_url_ok must hold for rq->url). rq->url and rq->headers are
 * read during this call only; rq->body must outlive the call. Returns the call, or NULL
 * when it could not be started (bad URL, absurd header size). Every failure after that,
 * even one found at once (a refused connection), is reported through on_done from the loop. */
struct dp_h1_call *dp_h1_start(struct dp_h1 *h1, const struct dp_upstream_request *rq,
                               const struct dp_upstream_ops *ops, void *arg);
/* Stops <call>: its connection is closed (never pooled half-read); no callback runs after.
 * Not from inside this call's own callbacks. Accepts NULL. */
void dp_h1_cancel(struct dp_h1_call *call);
/* Resumes a call paused by on_data returning 1: the bytes it refused are delivered again
 * (from the loop, not from here) before anything newer. No-op when not paused. */
void dp_h1_resume(struct dp_h1_call *call);

/* Calls in progress. */
size_t dp_h1_active(const struct dp_h1 *h1);
/* Idle pooled connections over all hosts. */
size_t dp_h1_idle_connections(const struct dp_h1 *h1);

#endif
