/* tests/unit/dataplane/test_router.c - plans: strategies, weighted splits, fallbacks,
 * region/compliance constraints and open breakers. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_health.h"
#include "dp_router.h"
#include "dp_snapshot.h"
#include "sy_policy.h"

static const char policy_src[] =
    "providers:\n"
    "  - {name: us, kind: openai, base_url: \"http://127.0.0.1:1/v1\", region: us}\n"
    "  - {name: eu, kind: openai, base_url: \"http://127.0.0.1:2/v1\", region: eu,\n"
    "     compliance: [hipaa, soc2]}\n"
    "  - {name: eu2, kind: openai, base_url: \"http://127.0.0.1:3/v1\", region: eu}\n"
    "models:\n"
    "  - {name: a, provider: us, pricing: {input_per_mtok: 1, output_per_mtok: 4}}\n"
    "  - {name: b, provider: eu, pricing: {input_per_mtok: 0.1, output_per_mtok: 0.4}}\n"
    "  - {name: c, provider: eu2, pricing: {input_per_mtok: 5, output_per_mtok: 5}}\n"
    "  - {name: d, provider: us}\n"
    "routes:\n"
    "  - {name: split, match: {model: auto}, targets: [{model: a, weight: 70},\n"
    "     {model: b, weight: 30}, {model: c, weight: 0}], fallback: [d]}\n"
    "  - {name: prio, match: {model: prio}, strategy: priority,\n"
    "     targets: [{model: c}, {model: a}, {model: b}]}\n"
    "  - {name: cheap, match: {model: cheap}, strategy: lowest_cost,\n"
    "     targets: [{model: a}, {model: c}, {model: b}]}\n"
    "  - {name: sticky, match: {model: sticky}, strategy: cache_affinity,\n"
    "     targets: [{model: a}, {model: b}, {model: c}]}\n"
    "resilience: {breaker: {failures: 1, open_ms: 60000}}\n";

struct fx {
    struct dp_health_table health;
    struct dp_snapshot *snap;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(policy_src, strlen(policy_src), &err);

    if (!pol)
        fail_msg("policy: %s", err);
    dp_health_table_init(&f->health);
    f->snap = dp_snapshot_new(pol, &f->health, &err);
    if (!f->snap)
        fail_msg("snapshot: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dp_snapshot_unref(f->snap);
    dp_health_table_cleanup(&f->health);
    free(f);
    return 0;
}

static const struct sy_route *route(const struct fx *f, const char *name)
{
    for (size_t i = 0; i < f->snap->policy->n_routes; i++)
        if (strcmp(f->snap->policy->routes[i].name, name) == 0)
            return &f->snap->policy->routes[i];
    fail_msg("no route %s", name);
    return NULL;
}

static void test_weighted_split_and_fallback(void **state)
{
    struct fx *f = *state;
    struct dp_features feat = {0};
    struct dp_plan plan;
    char why[256];
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int first[4] = {0};
    const int n = 100000;

    for (int i = 0; i < n; i++) {
        assert_int_equal(
            dp_plan_build(f->snap, route(f, "split"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
        assert_int_equal(plan.n, 4);
        first[plan.c[0].model_index]++;
        /* The zero-weight target is never first; the fallback is always last. */
        assert_string_equal(plan.c[3].model->name, "d");
        assert_true(plan.c[3].fallback);
        assert_string_equal(plan.c[2].model->name, "c");
    }
    assert_int_equal(first[2], 0);
    assert_true(fabs((double)first[0] / n - 0.70) < 0.01);
    assert_true(fabs((double)first[1] / n - 0.30) < 0.01);
}

static void test_priority_and_cost(void **state)
{
    struct fx *f = *state;
    struct dp_features feat = {.prompt_tokens = 1000};
    struct dp_plan plan;
    char why[256];
    uint64_t rng = 7;

    assert_int_equal(
        dp_plan_build(f->snap, route(f, "prio"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
    assert_string_equal(plan.c[0].model->name, "c");
    assert_string_equal(plan.c[1].model->name, "a");
    assert_string_equal(plan.c[2].model->name, "b");
    assert_int_equal(
        dp_plan_build(f->snap, route(f, "cheap"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
    assert_string_equal(plan.c[0].model->name, "b");
    assert_string_equal(plan.c[1].model->name, "a");
    assert_string_equal(plan.c[2].model->name, "c");
}

static void test_cache_affinity_is_sticky(void **state)
{
    struct fx *f = *state;
    struct dp_features feat = {.affinity_hash = 0x1234567890abcdefULL};
    struct dp_plan plan;
    char why[256];
    uint64_t rng = 1;
    size_t first;
    int spread[4] = {0};

    assert_int_equal(
        dp_plan_build(f->snap, route(f, "sticky"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
    first = plan.c[0].model_index;
    for (int i = 0; i < 100; i++) {
        dp_plan_build(f->snap, route(f, "sticky"), NULL, &feat, &rng, 1, &plan, why, 256);
        assert_int_equal(plan.c[0].model_index, first);
    }
    /* Different conversations spread over the targets. */
    for (uint64_t h = 1; h <= 3000; h++) {
        feat.affinity_hash = h * 0x9e3779b97f4a7c15ULL;
        dp_plan_build(f->snap, route(f, "sticky"), NULL, &feat, &rng, 1, &plan, why, 256);
        spread[plan.c[0].model_index]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(spread[i] > 700);
}

static void test_region_and_compliance_constraints(void **state)
{
    struct fx *f = *state;
    struct dp_features feat = {.region = {"eu", 2}};
    struct dp_plan plan;
    char why[256];
    uint64_t rng = 3;

    assert_int_equal(
        dp_plan_build(f->snap, route(f, "split"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
    for (size_t i = 0; i < plan.n; i++)
        assert_string_equal(f->snap->policy->providers[plan.c[i].model->provider].region, "eu");
    assert_int_equal(plan.n, 2); /* b and c; the fallback d is in the us */
    feat.compliance[0] = (struct dp_text){"hipaa", 5};
    feat.n_compliance = 1;
    assert_int_equal(
        dp_plan_build(f->snap, route(f, "split"), NULL, &feat, &rng, 1, &plan, why, 256), 0);
    assert_int_equal(plan.n, 1);
    assert_string_equal(plan.c[0].model->name, "b");
    /* A direct model outside the constraint: refused, naming it. */
    const struct sy_model *a = sy_policy_find_model(f->snap->policy, "a");
    assert_int_equal(dp_plan_build(f->snap, NULL, a, &feat, &rng, 1, &plan, why, 256), -EACCES);
    assert_non_null(strstr(why, "region eu"));
    assert_non_null(strstr(why, "compliance hipaa"));
}

static void test_open_breaker_excluded(void **state)
{
    struct fx *f = *state;
    struct dp_features feat = {0};
    struct dp_plan plan;
    char why[256];
    uint64_t rng = 5;
    const struct sy_resilience *r = &f->snap->policy->resilience;

    /* failures: 1 -> one failure opens c's breaker. */
    dp_health_record(f->snap->health[2], r, false, 0, 0, 1000);
    assert_int_equal(
        dp_plan_build(f->snap, route(f, "prio"), NULL, &feat, &rng, 2000, &plan, why, 256), 0);
    assert_int_equal(plan.n, 2);
    assert_string_equal(plan.c[0].model->name, "a");
    assert_false(plan.panic);
    /* Every eligible target open: panic routing tries them anyway. */
    const struct sy_model *c = sy_policy_find_model(f->snap->policy, "c");
    assert_int_equal(dp_plan_build(f->snap, NULL, c, &feat, &rng, 2000, &plan, why, 256), 0);
    assert_true(plan.panic);
    assert_int_equal(plan.n, 1);
    assert_string_equal(plan.c[0].model->name, "c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_weighted_split_and_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_affinity_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region_and_compliance_constraints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_breaker_excluded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
