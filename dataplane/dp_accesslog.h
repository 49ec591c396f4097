/* dataplane/dp_accesslog.h - one JSON object per line per request.
 *
 * Each line is formatted into a stack buffer and written with one write(2) on an O_APPEND
 * descriptor, so workers never interleave lines and never lock. Any worker thread.
 */
#ifndef DP_ACCESSLOG_H
#define DP_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sy_tenant;

struct dp_access_entry {
    const char *request_id;
    const char *peer;
    const char *method;
    const char *path;
    const char *route;    /* NULL when none */
    const char *provider; /* NULL when none */
    const char *model;    /* NULL when none */
    const char *policy_version;
    int status; /* 499: the client went away first */
    bool stream;
    uint64_t latency_us;
    uint64_t ttft_us;          /* 0 when no token was sent */
    int64_t prompt_tokens;     /* -1 when unknown */
    int64_t completion_tokens; /* -1 when unknown */
    int64_t cached_tokens;     /* -1 when unknown */
    double cost_usd;
    size_t bytes_in;
    size_t bytes_out;
    int attempts;      /* upstream attempts started (retries, fallbacks, hedges) */
    const char *chain; /* "model:result,..." or NULL */
    const char *error; /* short reason for failures, or NULL */

    /* Who asked (dp_auth.h, filled by dp_caller_log). */
    const struct sy_tenant *tenant; /* NULL = anonymous */
    const char *tags;               /* attribution tags "a,b", or NULL */
    const char *user;               /* the body's "user", or NULL */
    const char *arm;                /* "experiment/arm" that served it, or NULL */

    /* The signed request id (common/sy_reqid.h) feedback names this answer by, or, on a
     * POST /v1/feedback line, the id the feedback was about; NULL when none. */
    const char *feedback_id;
};

/* Writes <e> as one line to <fd>; does nothing when fd < 0. */
void dp_access_log(int fd, const struct dp_access_entry *e);

/* Appends <s> JSON-escaped (without quotes) to buf[*off..cap). Always NUL-terminates. */
void dp_json_escape_into(char *buf, size_t cap, size_t *off, const char *s);

#endif
