/* dataplane/dp_health.c - breakers, error-rate windows, EWMAs, retry budget. Atomics only
 * on the request path; the table lock guards entry creation. */
#define SY_LOG_MODULE "health"

#include "dp_health.h"

#include <stdlib.h>
#include <string.h>

#include "sy_log.h"
#include "sy_util.h"

#define DP_EWMA_SHIFT 3 /* new = old + (sample - old) / 8 */

/* A quiet period banks at most this many retries (x 1000), so an outage that follows
 * cannot spend a large saved-up burst. */
static int64_t budget_cap(const struct sy_resilience *r)
{
    return ((int64_t)r->retry_budget_min_per_s + 10) * 1000;
}

void dp_health_table_init(struct dp_health_table *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    /* last_refill 0: the first spend refills to the cap, so a freshly started proxy can
     * retry and fail over at once instead of waiting for the budget to build up. */
    atomic_init(&t->budget.milli_tokens, 0);
    atomic_init(&t->budget.last_refill_us, 0);
}

void dp_health_table_cleanup(struct dp_health_table *t)
{
    while (t->entries) {
        struct dp_target_health *h = t->entries;
        t->entries = h->next;
        free(h->key);
        free(h);
    }
    pthread_mutex_destroy(&t->lock);
}

struct dp_target_health *dp_health_get(struct dp_health_table *t, const char *provider,
                                       const char *upstream_model)
{
    char *key = sy_xasprintf("%s/%s", provider, upstream_model);
    struct dp_target_health *h;

    pthread_mutex_lock(&t->lock);
    for (h = t->entries; h; h = h->next) {
        if (strcmp(h->key, key) == 0)
            break;
    }
    if (!h) {
        h = sy_xcalloc(1, sizeof(*h));
        h->key = key;
        key = NULL;
        h->next = t->entries;
        t->entries = h;
    }
    pthread_mutex_unlock(&t->lock);
    free(key);
    return h;
}

static uint64_t window_epoch(const struct sy_resilience *r, uint64_t now_us)
{
    uint64_t slice_us = (uint64_t)r->breaker_window_ms * 1000 / DP_HEALTH_BUCKETS;
    return now_us / (slice_us ? slice_us : 1);
}

/* The bucket for now, reset when it held an older slice. */
static struct dp_health_bucket *bucket_now(struct dp_target_health *h,
                                           const struct sy_resilience *r, uint64_t now_us)
{
    uint64_t epoch = window_epoch(r, now_us);
    struct dp_health_bucket *b = &h->buckets[epoch % DP_HEALTH_BUCKETS];
    uint_fast64_t seen = atomic_load_explicit(&b->epoch, memory_order_acquire);

    if (seen != epoch && atomic_compare_exchange_strong_explicit(
                             &b->epoch, &seen, epoch, memory_order_acq_rel, memory_order_acquire)) {
        atomic_store_explicit(&b->requests, 0, memory_order_relaxed);
        atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
    }
    return b;
}

double dp_health_error_rate(const struct dp_target_health *h, const struct sy_resilience *r,
                            uint64_t now_us, unsigned *requests)
{
    uint64_t epoch = window_epoch(r, now_us);
    unsigned req = 0, fail = 0;

    for (int i = 0; i < DP_HEALTH_BUCKETS; i++) {
        const struct dp_health_bucket *b = &h->buckets[i];
        uint64_t e = atomic_load_explicit(&b->epoch, memory_order_acquire);
        if (e + DP_HEALTH_BUCKETS > epoch && e <= epoch) {
            req += atomic_load_explicit(&b->requests, memory_order_relaxed);
            fail += atomic_load_explicit(&b->failures, memory_order_relaxed);
        }
    }
    if (requests)
        *requests = req;
    return req ? (double)fail / req : 0.0;
}

static bool open_long_enough(const struct dp_target_health *h, const struct sy_resilience *r,
                             uint64_t now_us)
{
    uint64_t opened = atomic_load_explicit(&h->opened_at_us, memory_order_acquire);
    return now_us - opened >= (uint64_t)r->breaker_open_ms * 1000;
}

bool dp_health_usable(const struct dp_target_health *h, const struct sy_resilience *r,
                      uint64_t now_us)
{
    switch (atomic_load_explicit(&h->state, memory_order_acquire)) {
    case DP_BREAKER_CLOSED:
        return true;
    case DP_BREAKER_OPEN:
        return open_long_enough(h, r, now_us);
    default:
        return !atomic_load_explicit(&h->probe_in_flight, memory_order_acquire);
    }
}

bool dp_health_allow(struct dp_target_health *h, const struct sy_resilience *r, uint64_t now_us,
                     bool *probe)
{
    int state = atomic_load_explicit(&h->state, memory_order_acquire);
    bool expected = false;

    *probe = false;
    if (state == DP_BREAKER_CLOSED)
        return true;
    if (state == DP_BREAKER_OPEN) {
        if (!open_long_enough(h, r, now_us))
            return false;
        /* Time to probe: move to half-open (one worker wins; the others see half-open). */
        atomic_compare_exchange_strong(&h->state, &state, DP_BREAKER_HALF_OPEN);
    }
    if (atomic_compare_exchange_strong(&h->probe_in_flight, &expected, true)) {
        *probe = true;
        return true;
    }
    return false;
}

static void ewma_add(atomic_uint_fast64_t *slot, uint64_t sample)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    uint64_t next =
        old ? (uint64_t)((int64_t)old + (((int64_t)sample - (int64_t)old) >> DP_EWMA_SHIFT))
            : sample;
    atomic_store_explicit(slot, next ? next : 1, memory_order_relaxed);
}

static void open_breaker(struct dp_target_health *h, uint64_t now_us, const char *why)
{
    int prev = atomic_exchange(&h->state, DP_BREAKER_OPEN);
    atomic_store_explicit(&h->opened_at_us, now_us, memory_order_release);
    atomic_store_explicit(&h->probe_in_flight, false, memory_order_release);
    if (prev != DP_BREAKER_OPEN) {
        atomic_fetch_add(&h->opens, 1);
        sy_warn("circuit breaker for %s opened: %s", h->key, why);
    }
}

void dp_health_record(struct dp_target_health *h, const struct sy_resilience *r, bool success,
                      uint64_t latency_us, uint64_t ttft_us, uint64_t now_us)
{
    struct dp_health_bucket *b = bucket_now(h, r, now_us);
    int state = atomic_load_explicit(&h->state, memory_order_acquire);

    atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
    if (success) {
        atomic_store_explicit(&h->consecutive_failures, 0, memory_order_relaxed);
        if (latency_us)
            ewma_add(&h->latency_ewma_us, latency_us);
        if (ttft_us)
            ewma_add(&h->ttft_ewma_us, ttft_us);
        if (state != DP_BREAKER_CLOSED) {
            atomic_store_explicit(&h->state, DP_BREAKER_CLOSED, memory_order_release);
            atomic_store_explicit(&h->probe_in_flight, false, memory_order_release);
            sy_info("circuit breaker for %s closed: a probe succeeded", h->key);
        }
        return;
    }
    atomic_fetch_add_explicit(&b->failures, 1, memory_order_relaxed);
    unsigned consecutive = atomic_fetch_add(&h->consecutive_failures, 1) + 1;
    if (state == DP_BREAKER_HALF_OPEN) {
        open_breaker(h, now_us, "the half-open probe failed");
        return;
    }
    if (state != DP_BREAKER_CLOSED)
        return;
    if (consecutive >= r->breaker_failures) {
        open_breaker(h, now_us, "consecutive failures");
        return;
    }
    unsigned requests = 0;
    double rate = dp_health_error_rate(h, r, now_us, &requests);
    if (requests >= r->breaker_min_requests && rate >= r->breaker_error_rate)
        open_breaker(h, now_us, "error rate over the window");
}

void dp_retry_budget_earn(struct dp_retry_budget *b, const struct sy_resilience *r)
{
    int64_t add = (int64_t)(r->retry_budget_ratio * 1000.0);
    int64_t cur = atomic_fetch_add(&b->milli_tokens, add) + add;
    if (cur > budget_cap(r))
        atomic_store(&b->milli_tokens, budget_cap(r));
}

bool dp_retry_budget_spend(struct dp_retry_budget *b, const struct sy_resilience *r,
                           uint64_t now_us)
{
    uint64_t last = atomic_load(&b->last_refill_us);

    /* The floor: min_per_second retries a second are always possible. */
    if (now_us > last && atomic_compare_exchange_strong(&b->last_refill_us, &last, now_us)) {
        int64_t add = last ? (int64_t)((now_us - last) * (uint64_t)r->retry_budget_min_per_s / 1000)
                           : budget_cap(r);
        if (add > 0) {
            int64_t cur = atomic_fetch_add(&b->milli_tokens, add) + add;
            if (cur > budget_cap(r))
                atomic_store(&b->milli_tokens, budget_cap(r));
        }
    }
    if (atomic_fetch_sub(&b->milli_tokens, 1000) >= 1000)
        return true;
    atomic_fetch_add(&b->milli_tokens, 1000);
    return false;
}
