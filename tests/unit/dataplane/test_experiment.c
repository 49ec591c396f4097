/* tests/unit/dataplane/test_experiment.c - A/B arm assignment (dp_router.h): the sticky key
 * by mode, the same key always on the same arm, shares over 10,000 distinct keys within 2
 * points of the split, per-request draws, pinned assignments (every process and machine must
 * agree), and plans built from an arm's targets with the route's fallbacks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_health.h"
#include "dp_router.h"
#include "dp_snapshot.h"
#include "sy_policy.h"

#define N_KEYS 10000

static struct sy_arm arms3[] = {
    {.name = (char *)"control", .share = 50},
    {.name = (char *)"formal", .share = 30},
    {.name = (char *)"terse", .share = 20},
};

static struct sy_experiment exp3 = {
    .name = (char *)"tone",
    .sticky = SY_STICKY_USER,
    .arms = arms3,
    .n_arms = 3,
    .total_share = 100,
};

static void test_key_by_mode(void **state)
{
    struct sy_experiment ex = exp3;
    (void)state;

    ex.sticky = SY_STICKY_USER;
    assert_string_equal(dp_experiment_key(&ex, "u1", "acme", "h"), "u1");
    assert_string_equal(dp_experiment_key(&ex, "", "acme", "h"), "acme");
    assert_string_equal(dp_experiment_key(&ex, NULL, "acme", NULL), "acme");
    assert_null(dp_experiment_key(&ex, NULL, NULL, "h"));
    assert_null(dp_experiment_key(&ex, "", "", "h"));

    ex.sticky = SY_STICKY_HEADER;
    assert_string_equal(dp_experiment_key(&ex, "u1", "acme", "s-9"), "s-9");
    assert_null(dp_experiment_key(&ex, "u1", "acme", NULL));
    assert_null(dp_experiment_key(&ex, "u1", "acme", ""));

    ex.sticky = SY_STICKY_TENANT;
    assert_string_equal(dp_experiment_key(&ex, "u1", "acme", "h"), "acme");
    assert_null(dp_experiment_key(&ex, "u1", NULL, "h"));

    ex.sticky = SY_STICKY_REQUEST;
    assert_null(dp_experiment_key(&ex, "u1", "acme", "h"));
}

static void test_sticky(void **state)
{
    uint64_t rng = 0x1234567;
    char key[32];
    (void)state;

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        size_t a = dp_experiment_pick(&exp3, key, &rng);
        assert_true(a < 3);
        for (int k = 0; k < 5; k++)
            assert_int_equal(dp_experiment_pick(&exp3, key, &rng), a);
    }
    /* The rng plays no part for a keyed pick. */
    {
        uint64_t r1 = 1, r2 = 99;
        assert_int_equal(dp_experiment_pick(&exp3, "alice", &r1),
                         dp_experiment_pick(&exp3, "alice", &r2));
        assert_int_equal(r1, 1);
        assert_int_equal(r2, 99);
    }
}

static void assert_split(const size_t *count, const struct sy_experiment *ex, size_t n)
{
    for (size_t i = 0; i < ex->n_arms; i++) {
        double got = (double)count[i] / (double)n;
        double want = (double)ex->arms[i].share / (double)ex->total_share;
        if (got < want - 0.02 || got > want + 0.02)
            fail_msg("arm %s: %.4f of the keys, configured %.4f", ex->arms[i].name, got, want);
    }
}

static void test_shares_over_distinct_keys(void **state)
{
    size_t count[3] = {0, 0, 0};
    uint64_t rng = 7;
    char key[48];
    (void)state;

    /* Keys shaped like real ones: sequential, sharing long prefixes. */
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(key, sizeof(key), "user-%08d@example.com", i);
        count[dp_experiment_pick(&exp3, key, &rng)]++;
    }
    assert_split(count, &exp3, N_KEYS);

    /* An uneven two-arm split, keys as UUID-ish hex. */
    {
        struct sy_arm arms[] = {{.name = (char *)"a", .share = 9},
                                {.name = (char *)"b", .share = 1}};
        struct sy_experiment ex = {
            .name = (char *)"canary", .arms = arms, .n_arms = 2, .total_share = 10};
        size_t c2[2] = {0, 0};
        for (int i = 0; i < N_KEYS; i++) {
            snprintf(key, sizeof(key), "%08x-%04x", (unsigned)i * 2654435761u, (unsigned)i);
            c2[dp_experiment_pick(&ex, key, &rng)]++;
        }
        assert_split(c2, &ex, N_KEYS);
    }
}

static void test_per_request(void **state)
{
    size_t count[3] = {0, 0, 0};
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    bool moved = false;
    size_t first;
    (void)state;

    first = dp_experiment_pick(&exp3, NULL, &rng);
    for (int i = 0; i < N_KEYS; i++) {
        size_t a = dp_experiment_pick(&exp3, NULL, &rng);
        count[a]++;
        moved |= a != first;
    }
    assert_true(moved);
    assert_split(count, &exp3, N_KEYS);
}

static void test_experiments_are_independent(void **state)
{
    /* The experiment's name is part of the hash: one user is not on the "same" arm index of
     * every experiment. */
    struct sy_experiment other = exp3;
    size_t same = 0;
    uint64_t rng = 1;
    char key[32];
    (void)state;

    other.name = (char *)"length";
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "u%d", i);
        same += dp_experiment_pick(&exp3, key, &rng) == dp_experiment_pick(&other, key, &rng);
    }
    /* Independent draws agree with probability .5^2 + .3^2 + .2^2 = 0.38. */
    assert_in_range(same, 300, 460);
}

static void test_pinned_assignments(void **state)
{
    /* The hash is part of the fleet's contract: proxies of different builds must agree, so
     * these values may never change. */
    uint64_t rng = 1;
    static const struct {
        const char *key;
        size_t arm;
    } pinned[] = {
        /* Computed independently (Python): FNV-1a 64 of "tone\0" + key, the mixer, mod 100. */
        {"alice", 0}, {"bob", 0},   {"carol", 1}, {"dave", 2},
        {"erin", 1},  {"grace", 2}, {"", 0},      {"\xe7\x94\xa8\xe6\x88\xb7", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
        size_t got = dp_experiment_pick(&exp3, pinned[i].key, &rng);
        if (got != pinned[i].arm)
            fail_msg("key \"%s\": arm %zu, pinned %zu", pinned[i].key, got, pinned[i].arm);
    }
}

static void test_zero_and_single(void **state)
{
    struct sy_arm one[] = {{.name = (char *)"only", .share = 5}};
    struct sy_experiment ex = {.name = (char *)"x", .arms = one, .n_arms = 1, .total_share = 5};
    uint64_t rng = 3;
    (void)state;

    assert_int_equal(dp_experiment_pick(&ex, "k", &rng), 0);
    assert_int_equal(dp_experiment_pick(&ex, NULL, &rng), 0);
    ex.n_arms = 0;
    assert_int_equal(dp_experiment_pick(&ex, "k", &rng), 0);
}

/* ---- plans from an arm ---- */

static const char policy_src[] =
    "providers:\n"
    "  - {name: us, kind: openai, base_url: \"http://127.0.0.1:1/v1\", region: us}\n"
    "  - {name: eu, kind: openai, base_url: \"http://127.0.0.1:2/v1\", region: eu}\n"
    "models:\n"
    "  - {name: a, provider: us}\n"
    "  - {name: b, provider: us}\n"
    "  - {name: c, provider: eu}\n"
    "  - {name: d, provider: us}\n"
    "routes:\n"
    "  - {name: prio, match: {model: prio}, strategy: priority,\n"
    "     targets: [{model: a}, {model: b}], fallback: [c, d]}\n"
    "  - {name: learned, match: {model: learned}, strategy: learned,\n"
    "     targets: [{model: a, weight: 1}, {model: b, weight: 0}]}\n";

static struct sy_policy *compile(void)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(policy_src, strlen(policy_src), &err);
    if (!pol)
        fail_msg("policy: %s", err);
    return pol;
}

static void test_plan_from_arm(void **state)
{
    struct dp_health_table health;
    struct sy_policy *pol = compile();
    struct dp_snapshot *snap;
    struct dp_features feat;
    struct dp_plan plan;
    char why[256], *err = NULL;
    uint64_t rng = 42;
    size_t first_c = 0;
    (void)state;

    dp_health_table_init(&health);
    snap = dp_snapshot_new(pol, &health, &err);
    assert_non_null(snap);
    memset(&feat, 0, sizeof(feat));
    const struct sy_route *prio = &snap->policy->routes[0];
    /* The arm: c (weight 3) and d (weight 1): d is also a fallback of the route. */
    struct sy_target t[] = {{.model = 2, .weight = 3}, {.model = 3, .weight = 1}};
    struct sy_arm arm = {
        .name = (char *)"b", .targets = t, .n_targets = 2, .total_weight = 4, .share = 1};

    for (int i = 0; i < 2000; i++) {
        assert_int_equal(
            dp_plan_build_arm(snap, prio, &arm, NULL, &feat, &rng, 1, &plan, why, sizeof(why)), 0);
        assert_ptr_equal(plan.arm, &arm);
        assert_ptr_equal(plan.route, prio);
        /* The arm's two targets, weighted whatever the route's strategy; the route's
         * fallbacks c and d are both the arm's own targets, so none follows. */
        assert_int_equal(plan.n, 2);
        assert_false(plan.c[0].fallback);
        assert_false(plan.c[1].fallback);
        assert_int_not_equal(plan.c[0].model_index, plan.c[1].model_index);
        first_c += plan.c[0].model_index == 2;
    }
    assert_in_range(first_c, 1350, 1650); /* 3:1 */

    /* An arm with one model keeps the route's other fallbacks. */
    struct sy_arm solo = {
        .name = (char *)"a", .targets = t, .n_targets = 1, .total_weight = 3, .share = 1};
    assert_int_equal(
        dp_plan_build_arm(snap, prio, &solo, NULL, &feat, &rng, 1, &plan, why, sizeof(why)), 0);
    assert_int_equal(plan.n, 2);
    assert_int_equal(plan.c[0].model_index, 2);
    assert_int_equal(plan.c[1].model_index, 3);
    assert_true(plan.c[1].fallback);

    /* No arm: the route as written (priority), its fallbacks after. */
    assert_int_equal(
        dp_plan_build_arm(snap, prio, NULL, NULL, &feat, &rng, 1, &plan, why, sizeof(why)), 0);
    assert_null(plan.arm);
    assert_int_equal(plan.n, 4);
    assert_int_equal(plan.c[0].model_index, 0);
    assert_int_equal(plan.c[1].model_index, 1);

    /* Region eu: the arm's only target d (us) is out; the route's fallback c (eu) remains,
     * and d is not tried again as a fallback. */
    struct sy_arm us_only = {
        .name = (char *)"u", .targets = &t[1], .n_targets = 1, .total_weight = 1, .share = 1};
    feat.region.p = "eu";
    feat.region.len = 2;
    assert_int_equal(
        dp_plan_build_arm(snap, prio, &us_only, NULL, &feat, &rng, 1, &plan, why, sizeof(why)), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.c[0].model_index, 2);

    dp_snapshot_unref(snap);
    dp_health_table_cleanup(&health);
}

static void test_learned_is_weighted(void **state)
{
    struct dp_health_table health;
    struct sy_policy *pol = compile();
    struct dp_snapshot *snap;
    struct dp_features feat;
    struct dp_plan plan;
    char why[256], *err = NULL;
    uint64_t rng = 5;
    (void)state;

    dp_health_table_init(&health);
    snap = dp_snapshot_new(pol, &health, &err);
    assert_non_null(snap);
    memset(&feat, 0, sizeof(feat));
    const struct sy_route *learned = &snap->policy->routes[1];
    assert_int_equal(learned->strategy, SY_STRATEGY_LEARNED);
    /* Weight 0 is never first: weighted order. */
    for (int i = 0; i < 200; i++) {
        assert_int_equal(
            dp_plan_build(snap, learned, NULL, &feat, &rng, 1, &plan, why, sizeof(why)), 0);
        assert_int_equal(plan.n, 2);
        assert_int_equal(plan.c[0].model_index, 0);
    }
    /* Without experiments the route has none, whatever the field holds. */
    assert_null(dp_route_experiment(snap->policy, learned));
    assert_null(dp_route_experiment(snap->policy, NULL));
    dp_snapshot_unref(snap);
    dp_health_table_cleanup(&health);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_by_mode),
        cmocka_unit_test(test_sticky),
        cmocka_unit_test(test_shares_over_distinct_keys),
        cmocka_unit_test(test_per_request),
        cmocka_unit_test(test_experiments_are_independent),
        cmocka_unit_test(test_pinned_assignments),
        cmocka_unit_test(test_zero_and_single),
        cmocka_unit_test(test_plan_from_arm),
        cmocka_unit_test(test_learned_is_weighted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
