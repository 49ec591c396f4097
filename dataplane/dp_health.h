/* dataplane/dp_health.h - what the proxy knows about each target's health: circuit
 * breaker, error rate over a sliding window, latency and TTFT EWMAs, requests in flight,
 * and the process-wide retry budget.
 *
 * A target is a (provider, upstream model) pair. Its state lives in a process-wide table,
 * created on first use and kept for the life of the process, so it survives policy swaps:
 * a new policy version does not forget that a provider is down. Every worker reads and
 * updates the same entries with atomics only (no locks on the request path); the table's
 * mutex is taken only when a snapshot is built. Approximate under races by design: a lost
 * EWMA sample or one extra probe is harmless.
 */
#ifndef DP_HEALTH_H
#define DP_HEALTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sy_policy.h"

#define DP_HEALTH_BUCKETS 10 /* the error-rate window is split into this many buckets */

enum dp_breaker_state {
    DP_BREAKER_CLOSED = 0,
    DP_BREAKER_OPEN = 1,
    DP_BREAKER_HALF_OPEN = 2,
};

struct dp_health_bucket {
    atomic_uint_fast64_t epoch; /* which window slice the counts belong to */
    atomic_uint requests;
    atomic_uint failures;
};

struct dp_target_health {
    char *key; /* "provider/upstream_model" */
    atomic_int state;
    atomic_uint consecutive_failures;
    atomic_uint_fast64_t opened_at_us;
    atomic_bool probe_in_flight;
    atomic_int in_flight;
    atomic_uint_fast64_t latency_ewma_us; /* 0 = no sample yet */
    atomic_uint_fast64_t ttft_ewma_us;
    atomic_uint_fast64_t opens; /* times the breaker opened */
    struct dp_health_bucket buckets[DP_HEALTH_BUCKETS];
    struct dp_target_health *next;
};

struct dp_retry_budget {
    atomic_int_fast64_t milli_tokens; /* retries available x 1000 */
    atomic_uint_fast64_t last_refill_us;
};

struct dp_health_table {
    pthread_mutex_t lock; /* creation of entries only */
    struct dp_target_health *entries;
    struct dp_retry_budget budget;
};

void dp_health_table_init(struct dp_health_table *t);
void dp_health_table_cleanup(struct dp_health_table *t);

/* The entry for (<provider>, <upstream_model>), created if needed. Snapshot building only
 * (takes the table lock). Never NULL. */
struct dp_target_health *dp_health_get(struct dp_health_table *t, const char *provider,
                                       const char *upstream_model);

/* May a request go to this target now? Closed: yes. Open: no, until open_ms passed, then
 * one half-open probe at a time. Sets *probe when the caller got the probe slot (it must
 * report the outcome with dp_health_record). Any worker. */
bool dp_health_allow(struct dp_target_health *h, const struct sy_resilience *r, uint64_t now_us,
                     bool *probe);

/* Is the breaker letting traffic through (closed, or open long enough to probe)? No side
 * effects: for strategies that only rank targets. */
bool dp_health_usable(const struct dp_target_health *h, const struct sy_resilience *r,
                      uint64_t now_us);

/* Records an attempt's outcome. <latency_us>/<ttft_us> (0 = not measured) feed the EWMAs
 * on success. Opens the breaker on <failures> consecutive failures or on the window's
 * error rate; a failed probe re-opens it, a successful one closes it. */
void dp_health_record(struct dp_target_health *h, const struct sy_resilience *r, bool success,
                      uint64_t latency_us, uint64_t ttft_us, uint64_t now_us);

/* Error rate over the window (0 when it has too few requests) and its request count. */
double dp_health_error_rate(const struct dp_target_health *h, const struct sy_resilience *r,
                            uint64_t now_us, unsigned *requests);

/* The retry budget: every request earns <ratio> retries, plus <min_per_s> a second; a
 * retry spends one. Returns true when a retry may go ahead (and spends it). */
void dp_retry_budget_earn(struct dp_retry_budget *b, const struct sy_resilience *r);
bool dp_retry_budget_spend(struct dp_retry_budget *b, const struct sy_resilience *r,
                           uint64_t now_us);

#endif
