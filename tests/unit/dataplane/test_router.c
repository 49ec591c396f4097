/* tests/unit/dataplane/test_router.c - route/model resolution and weighted splits. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_router.h"
#include "sy_policy.h"

static const char policy_src[] =
    "providers:\n"
    "  - {name: p1, kind: openai, base_url: \"http://127.0.0.1:1/v1\"}\n"
    "  - {name: p2, kind: openai, base_url: \"http://127.0.0.1:2/v1\"}\n"
    "models:\n"
    "  - {name: a, provider: p1}\n"
    "  - {name: b, provider: p2, upstream_model: b-up}\n"
    "  - {name: c, provider: p2}\n"
    "routes:\n"
    "  - name: split\n"
    "    match: {model: auto}\n"
    "    targets: [{model: a, weight: 70}, {model: b, weight: 30}, {model: c, weight: 0}]\n";

static struct sy_policy *compile(void)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(policy_src, strlen(policy_src), &err);
    if (!pol)
        fail_msg("policy did not compile: %s", err);
    return pol;
}

static void test_direct_model(void **state)
{
    struct sy_policy *pol = compile();
    struct dp_pick pick;
    uint64_t rng = 42;
    (void)state;

    assert_int_equal(dp_route_pick(pol, "b", &rng, &pick), 0);
    assert_null(pick.route);
    assert_string_equal(pick.model->name, "b");
    assert_string_equal(pick.model->upstream_model, "b-up");
    assert_string_equal(pick.provider->name, "p2");
    assert_int_equal(pick.provider_index, 1);
    sy_policy_unref(pol);
}

static void test_unknown_model(void **state)
{
    struct sy_policy *pol = compile();
    struct dp_pick pick;
    uint64_t rng = 42;
    (void)state;

    assert_int_equal(dp_route_pick(pol, "gpt5", &rng, &pick), -ENOENT);
    assert_int_equal(dp_route_pick(pol, "", &rng, &pick), -ENOENT);
    sy_policy_unref(pol);
}

/* 70/30 over 100k picks lands within 1% (about 7 standard deviations); weight 0 never. */
static void test_weighted_split(void **state)
{
    struct sy_policy *pol = compile();
    struct dp_pick pick;
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    int counts[3] = {0, 0, 0};
    const int n = 100000;
    (void)state;

    for (int i = 0; i < n; i++) {
        assert_int_equal(dp_route_pick(pol, "auto", &rng, &pick), 0);
        assert_non_null(pick.route);
        assert_string_equal(pick.route->name, "split");
        counts[pick.model - pol->models]++;
    }
    assert_int_equal(counts[2], 0);
    assert_true(fabs((double)counts[0] / n - 0.70) < 0.01);
    assert_true(fabs((double)counts[1] / n - 0.30) < 0.01);
    sy_policy_unref(pol);
}

static void test_rng_nonzero_cycle(void **state)
{
    uint64_t s = 1;
    (void)state;
    for (int i = 0; i < 1000; i++)
        assert_true(dp_rand_next(&s) != 0 || s != 0);
    assert_true(s != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_model),
        cmocka_unit_test(test_unknown_model),
        cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_rng_nonzero_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
