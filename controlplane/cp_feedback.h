/* controlplane/cp_feedback.h - user feedback at the control plane: verified, deduplicated,
 * stored, and read back by the experiment views and the learner (docs/learning.md).
 *
 * Feedback arrives forwarded by proxies (in their telemetry) or directly (POST /v1/feedback
 * here). Its request id is checked against the fleet key (sy_reqid): a forged or foreign id
 * is refused, and so is one older than SY_REQID_TTL_S. Each accepted piece is one store key,
 *   feedback/<issue day of the id>/<32 hex of SHA-256(request_id, metric)>,
 * created with compare-and-swap: the same feedback through two proxies, two replicas, or a
 * report sent again after an outage is stored once, and the second is a duplicate. The
 * events carry what the id says (route, model, experiment, arm, tenant, policy version), so
 * nothing else is needed to attribute them.
 *
 * Threads: any; the store serialises. */
#ifndef CP_FEEDBACK_H
#define CP_FEEDBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchyard/v1/telemetry.pb-c.h"

struct cp_feedback;
struct cp_store;
struct cJSON;
struct sy_http_req;

/* One stored piece of feedback. */
struct cp_feedback_event {
    char *request_id;
    char *metric; /* "" = the experiment's or learner's own metric */
    char *tenant, *route, *model, *experiment, *arm;
    int64_t policy_version;
    int64_t issued_unix_s;    /* when the answer was given */
    int64_t received_unix_ms; /* when the feedback came */
    bool thumbs;              /* thumbs up/down, else a score */
    double value;             /* 1 up, 0 down, or the score in [0, 1] */
};

enum cp_feedback_result {
    CP_FEEDBACK_OK = 0,
    CP_FEEDBACK_DUPLICATE,   /* already stored */
    CP_FEEDBACK_INVALID,     /* a field is malformed (the message says which) */
    CP_FEEDBACK_UNKNOWN,     /* not an id of this fleet: malformed, forged or foreign */
    CP_FEEDBACK_EXPIRED,     /* older than the TTL, or from the future */
    CP_FEEDBACK_UNAVAILABLE, /* the store could not be written */
};

/* <key> is the fleet key (copied). <store> is borrowed. NULL when the key is empty or
 * memory runs out. */
struct cp_feedback *cp_feedback_new(struct cp_store *store, const uint8_t *key, size_t key_len);
void cp_feedback_free(struct cp_feedback *fb);

/* Checks and stores one piece of feedback. <thumbs> "up"/"down" or NULL; <score> in [0, 1]
 * or < 0 for none (exactly one of the two); <metric> and <comment> may be NULL; <via> names
 * the proxy node or "control" for the log. On failure *errmsg (may be NULL) gets a heap
 * message. *out (may be NULL) receives the event on success (free with
 * cp_feedback_events_free(out, 1)). */
enum cp_feedback_result cp_feedback_record(struct cp_feedback *fb, const char *request_id,
                                           const char *thumbs, double score, const char *metric,
                                           const char *comment, const char *via, int64_t now_ms,
                                           struct cp_feedback_event **out, char **errmsg);

/* How long feedback is kept in the store: experiments and the learner read at most this far
 * back, and cp_feedback_expire deletes what is older. */
#define CP_FEEDBACK_RETENTION_DAYS 30

/* Every event whose id was issued at or after <since_unix_s> and within the retention. Returns 0
 * with *out (*n events; free with cp_feedback_events_free), or -errno when the store cannot be
 * read. */
int cp_feedback_events(struct cp_feedback *fb, int64_t since_unix_s, int64_t now_ms,
                       struct cp_feedback_event **out, size_t *n);
void cp_feedback_events_free(struct cp_feedback_event *ev, size_t n);

/* Deletes the feedback stored for days past the retention; *deleted counts the keys.
 * Returns 0 or -errno (the store failed; the rest waits for the next run). Idempotent: any
 * replica may run it. */
int cp_feedback_expire(struct cp_feedback *fb, int64_t now_ms, size_t *deleted);

/* The feedback sink of cp_telemetry (forwarded from a proxy): recorded, outcome counted.
 * Returns -EAGAIN when the store could not be written (the report is to come again). */
int cp_feedback_from_telemetry(void *arg, const Switchyard__V1__Feedback *f, const char *node);

/* POST /v1/feedback on the admin API (cp_admin_add_route). */
void cp_feedback_on_admin(struct sy_http_req *req, const char *rest, void *arg);

/* Counters for /metrics: accepted, duplicates, refused (any other outcome). */
void cp_feedback_counters(struct cp_feedback *fb, uint64_t *accepted, uint64_t *duplicates,
                          uint64_t *refused);

#endif
