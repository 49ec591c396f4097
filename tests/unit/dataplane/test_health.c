/* tests/unit/dataplane/test_health.c - breaker transitions, error-rate window, EWMA and
 * the retry budget, on a virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_health.h"

static const struct sy_resilience R = {
    .breaker_failures = 3,
    .breaker_error_rate = 0.5,
    .breaker_min_requests = 10,
    .breaker_window_ms = 10000,
    .breaker_open_ms = 1000,
    .retry_budget_ratio = 0.2,
    .retry_budget_min_per_s = 0,
    .max_retry_after_ms = 30000,
};

#define SEC 1000000ull

static void test_opens_on_consecutive_failures(void **state)
{
    struct dp_health_table t;
    struct dp_target_health *h;
    bool probe;
    uint64_t now = 100 * SEC;
    (void)state;

    dp_health_table_init(&t);
    h = dp_health_get(&t, "p", "m");
    assert_ptr_equal(h, dp_health_get(&t, "p", "m"));
    assert_ptr_not_equal(h, dp_health_get(&t, "p", "other"));
    assert_true(dp_health_allow(h, &R, now, &probe));
    assert_false(probe);
    dp_health_record(h, &R, false, 0, 0, now);
    dp_health_record(h, &R, false, 0, 0, now);
    assert_int_equal(h->state, DP_BREAKER_CLOSED);
    dp_health_record(h, &R, false, 0, 0, now);
    assert_int_equal(h->state, DP_BREAKER_OPEN);
    assert_false(dp_health_allow(h, &R, now + SEC / 2, &probe));
    assert_false(dp_health_usable(h, &R, now + SEC / 2));
    /* After open_ms: exactly one probe. */
    assert_true(dp_health_usable(h, &R, now + 2 * SEC));
    assert_true(dp_health_allow(h, &R, now + 2 * SEC, &probe));
    assert_true(probe);
    assert_int_equal(h->state, DP_BREAKER_HALF_OPEN);
    assert_false(dp_health_allow(h, &R, now + 2 * SEC, &probe));
    /* A failed probe re-opens; a later successful one closes. */
    dp_health_record(h, &R, false, 0, 0, now + 2 * SEC);
    assert_int_equal(h->state, DP_BREAKER_OPEN);
    assert_false(dp_health_allow(h, &R, now + 2 * SEC + 1, &probe));
    assert_true(dp_health_allow(h, &R, now + 4 * SEC, &probe));
    assert_true(probe);
    dp_health_record(h, &R, true, 1000, 0, now + 4 * SEC);
    assert_int_equal(h->state, DP_BREAKER_CLOSED);
    assert_true(dp_health_allow(h, &R, now + 4 * SEC, &probe));
    assert_false(probe);
    assert_int_equal(h->opens, 2);
    dp_health_table_cleanup(&t);
}

static void test_opens_on_error_rate(void **state)
{
    struct dp_health_table t;
    struct dp_target_health *h;
    uint64_t now = 50 * SEC;
    unsigned n;
    (void)state;

    dp_health_table_init(&t);
    h = dp_health_get(&t, "p", "m");
    /* Alternating success/failure never reaches 3 in a row, but the rate is 50%. */
    for (int i = 0; i < 9; i++)
        dp_health_record(h, &R, i % 2 == 0, 100, 0, now);
    assert_int_equal(h->state, DP_BREAKER_CLOSED); /* below min_requests */
    dp_health_record(h, &R, false, 0, 0, now);
    assert_true(dp_health_error_rate(h, &R, now, &n) >= 0.5);
    assert_int_equal(n, 10);
    assert_int_equal(h->state, DP_BREAKER_OPEN);
    /* The window forgets: 11 s later nothing is counted. */
    assert_true(dp_health_error_rate(h, &R, now + 11 * SEC, &n) == 0.0);
    assert_int_equal(n, 0);
    dp_health_table_cleanup(&t);
}

static void test_ewma(void **state)
{
    struct dp_health_table t;
    struct dp_target_health *h;
    (void)state;

    dp_health_table_init(&t);
    h = dp_health_get(&t, "p", "m");
    dp_health_record(h, &R, true, 8000, 800, SEC);
    assert_int_equal(h->latency_ewma_us, 8000);
    assert_int_equal(h->ttft_ewma_us, 800);
    for (int i = 0; i < 100; i++)
        dp_health_record(h, &R, true, 1000, 100, SEC);
    assert_true(h->latency_ewma_us < 1100 && h->latency_ewma_us >= 1000);
    assert_true(h->ttft_ewma_us < 110);
    dp_health_table_cleanup(&t);
}

static void test_retry_budget(void **state)
{
    struct dp_health_table t;
    uint64_t now = 10 * SEC;
    int allowed = 0;
    (void)state;

    dp_health_table_init(&t);
    t.budget.last_refill_us = now;
    /* 20 requests at ratio 0.2 earn 4 retries; no floor (min_per_s 0). */
    for (int i = 0; i < 20; i++)
        dp_retry_budget_earn(&t.budget, &R);
    for (int i = 0; i < 10; i++)
        allowed += dp_retry_budget_spend(&t.budget, &R, now);
    assert_int_equal(allowed, 4);
    /* The floor refills min_per_second a second, capped. */
    struct sy_resilience r2 = R;
    r2.retry_budget_min_per_s = 5;
    allowed = 0;
    for (int i = 0; i < 30; i++)
        allowed += dp_retry_budget_spend(&t.budget, &r2, now + 100 * SEC);
    assert_int_equal(allowed, 15); /* capped at min_per_s + 10 */
    dp_health_table_cleanup(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_on_consecutive_failures),
        cmocka_unit_test(test_opens_on_error_rate),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_retry_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
