/* dataplane/dp_feedback.h - POST /v1/feedback: a client's verdict on an answer, checked
 * here and forwarded to the control plane in the telemetry stream.
 *
 * The client names the answer by its request id (the signed "sy1." id of
 * x-switchyard-request-id, common/sy_reqid.h), so the proxy needs no memory of past
 * requests: the id itself says which route, model, experiment and arm served, and its MAC
 * (fleet key, dp_proxy.h) says that a proxy of this fleet issued it. What is checked here:
 * the body's shape, the id's signature and age (SY_REQID_TTL_S), and duplicates of
 * (request id, metric) among the last DP_FEEDBACK_SEEN_MAX accepted through this process.
 * Duplicates that arrive through different proxies are dropped by the control plane.
 * docs/feedback.md.
 *
 * Threads: dp_feedback_handle on worker threads; the seen set is shared by the workers
 * and locks inside; the parse and verify helpers are stateless.
 */
#ifndef DP_FEEDBACK_H
#define DP_FEEDBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "sy_reqid.h"

struct dp_worker;
struct sy_http_req;

#define DP_FEEDBACK_SEEN_MAX 100000  /* (id, metric) pairs remembered per process, FIFO */
#define DP_FEEDBACK_METRIC_MAX 64    /* bytes of "metric": [a-z0-9_.-] */
#define DP_FEEDBACK_COMMENT_MAX 2000 /* bytes of "comment", valid UTF-8 */

/* ---- the request body ---- */

/* A feedback body as read by dp_feedback_parse; the strings point into the cJSON tree. */
struct dp_feedback_in {
    const char *request_id;
    const char *thumbs;  /* "up", "down" or NULL */
    double score;        /* 0 .. 1, or -1 when thumbs is given */
    const char *metric;  /* NULL = none */
    const char *comment; /* NULL = none */
};

/* Reads the body <body> (<len> bytes) into *out; *root gets the tree the strings live in
 * (caller frees with cJSON_Delete, also on failure). Returns 0, or -EINVAL with *param set
 * to the bad field (NULL when the body as a whole is bad) and <msg> (<msg_len> bytes) to a
 * sentence for the client. JSON null counts as absent. Unknown keys are ignored. */
int dp_feedback_parse(const char *body, size_t len, cJSON **root, struct dp_feedback_in *out,
                      const char **param, char *msg, size_t msg_len);

/* ---- the request id ---- */

/* Checks <id> against each of the <n> prepared keys in <keys> (NULL entries skipped) in
 * turn, and its age at <now_s> (seconds since the epoch). Returns 0 with *out filled, or
 * the HTTP status for the client with *code and <msg> set: 404 "unknown_request_id" (not
 * an id of this fleet: malformed, or a MAC matching no key), 410 "request_id_expired"
 * (older than SY_REQID_TTL_S, or issued more than SY_REQID_FUTURE_S in the future). */
int dp_feedback_verify(const struct sy_reqid_key *const *keys, size_t n, const char *id,
                       int64_t now_s, struct sy_reqid *out, const char **code, char *msg,
                       size_t msg_len);

/* ---- duplicates ---- */

struct dp_feedback_seen;

/* A set of at most <cap> (id, metric) digests that forgets the oldest first. NULL when out
 * of memory. */
struct dp_feedback_seen *dp_feedback_seen_new(size_t cap);
/* Accepts NULL. No thread may use <s> any more. */
void dp_feedback_seen_free(struct dp_feedback_seen *s);

typedef int (*dp_feedback_commit_fn)(void *arg);

/* Under the set's lock: when (<request_id>, <metric>) (metric NULL = "") is in <s>, returns
 * -EEXIST; otherwise calls <commit>(<arg>) and, when it returns 0, remembers the pair
 * (forgetting the oldest when full) and returns 0; else returns what <commit> returned,
 * remembering nothing, so the client may try again. Any thread. */
int dp_feedback_seen_add(struct dp_feedback_seen *s, const char *request_id, const char *metric,
                         dp_feedback_commit_fn commit, void *arg);

/* How many pairs <s> holds now. Any thread. */
size_t dp_feedback_seen_count(struct dp_feedback_seen *s);

/* ---- the endpoint ---- */

/* Handles POST /v1/feedback on worker <w> (auth already checked by the dispatcher):
 * validates, verifies, forwards, answers and access-logs <req>. <request_id> is this
 * request's own id. */
void dp_feedback_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id);

#endif
