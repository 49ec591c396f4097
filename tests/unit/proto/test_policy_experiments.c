/* tests/unit/proto/test_policy_experiments.c - experiments and learned routes: compiled with
 * their defaults, canonical JSON that compiles to itself, the trip through the
 * switchyard.v1.Policy message (zeros that mean zero stay zero), and every bad input reported
 * with its path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sy_policy.h"
#include "sy_policy_pb.h"

#define HEAD                                                                                       \
    "providers: [{name: p, base_url: \"http://127.0.0.1:1/v1\"}]\n"                                \
    "models: [{name: m1, provider: p}, {name: m2, provider: p}, {name: m3, provider: p}]\n"

static const char src[] =
    HEAD "routes:\n"
         "  - {name: auto, match: {model: auto}, targets: [{model: m1}]}\n"
         "  - name: smart\n"
         "    match: {model: smart}\n"
         "    strategy: learned\n"
         "    targets: [{model: m1, weight: 50}, {model: m2, weight: 50}]\n"
         "    learn: {objective: {quality: 1, cost: 0, latency: 0.5}, exploration: 0,\n"
         "            update_period_s: 1, min_samples: 0}\n"
         "  - {name: plain, match: {model: plain}, strategy: learned, targets: [{model: m3}]}\n"
         "experiments:\n"
         "  - name: e1\n"
         "    route: auto\n"
         "    metric: thumbs_up\n"
         "    arms: [{name: A, model: m1, share: 50}, {name: B, model: m2, share: 50}]\n"
         "  - name: e2\n"
         "    route: plain2\n"
         "    metric: latency\n"
         "    sticky: {by: header, header: X-Session-Id}\n"
         "    min_samples: 7\n"
         "    stop: {rule: significance, threshold: 0.01, auto_promote: true}\n"
         "    arms:\n"
         "      - {name: one, targets: [{model: m1, weight: 3}, {model: m3, weight: 1}]}\n"
         "      - {name: two, model: m2, share: 3}\n";

static char *with_route(const char *base)
{
    /* e2 needs its own route: appended so the source above stays readable. */
    const char *extra = "  - {name: plain2, match: {model: plain2}, targets: [{model: m2}]}\n";
    const char *at = strstr(base, "experiments:");
    size_t head = (size_t)(at - base);
    char *out = malloc(strlen(base) + strlen(extra) + 1);

    memcpy(out, base, head);
    memcpy(out + head, extra, strlen(extra));
    memcpy(out + head + strlen(extra), at, strlen(at) + 1);
    return out;
}

static struct sy_policy *compile_ok(const char *text)
{
    char *err = NULL;
    struct sy_policy *pol = sy_policy_compile(text, strlen(text), &err);
    if (!pol)
        fail_msg("compile failed:\n%s", err);
    return pol;
}

static void test_compiled(void **state)
{
    char *text = with_route(src);
    struct sy_policy *pol = compile_ok(text);
    const struct sy_route *smart = sy_policy_find_route(pol, "smart"),
                          *plain = sy_policy_find_route(pol, "plain");
    const struct sy_experiment *e1, *e2;
    (void)state;

    assert_int_equal(smart->strategy, SY_STRATEGY_LEARNED);
    assert_true(smart->learn.w_quality == 1 && smart->learn.w_cost == 0);
    assert_true(smart->learn.w_latency == 0.5 && smart->learn.exploration == 0);
    assert_int_equal(smart->learn.update_period_s, 1);
    assert_int_equal(smart->learn.min_samples, 0);
    assert_true(smart->learn.max_step == 0.2 && smart->learn.discount == 0.98);
    assert_true(plain->learn.exploration == 0.05 && plain->learn.threshold == 0.02);
    assert_int_equal(plain->learn.update_period_s, 60);
    assert_int_equal(smart->experiment, SIZE_MAX);

    assert_int_equal(pol->n_experiments, 2);
    e1 = &pol->experiments[0];
    e2 = &pol->experiments[1];
    assert_string_equal(e1->name, "e1");
    assert_string_equal(pol->routes[e1->route].name, "auto");
    assert_int_equal(pol->routes[e1->route].experiment, 0);
    assert_int_equal(e1->metric, SY_METRIC_THUMBS_UP);
    assert_int_equal(e1->sticky, SY_STICKY_USER);
    assert_int_equal(e1->min_samples, 100);
    assert_int_equal(e1->stop_rule, SY_STOP_PROB_BEST);
    assert_true(e1->stop_threshold == 0.95 && !e1->auto_promote);
    assert_int_equal(e1->n_arms, 2);
    assert_int_equal(e1->total_share, 100);
    assert_string_equal(e1->arms[1].name, "B");
    assert_string_equal(pol->models[e1->arms[1].targets[0].model].name, "m2");
    assert_int_equal(e2->metric, SY_METRIC_LATENCY);
    assert_int_equal(e2->sticky, SY_STICKY_HEADER);
    assert_string_equal(e2->sticky_header, "x-session-id");
    assert_int_equal(e2->stop_rule, SY_STOP_SIGNIFICANCE);
    assert_true(e2->stop_threshold == 0.01 && e2->auto_promote);
    assert_int_equal(e2->arms[0].n_targets, 2);
    assert_int_equal(e2->arms[0].total_weight, 4);
    assert_int_equal(e2->arms[0].share, 1);
    assert_int_equal(e2->total_share, 4);
    sy_policy_unref(pol);
    free(text);
}

static void test_canonical_and_message_roundtrip(void **state)
{
    char *text = with_route(src), *err = NULL, *a, *b, *c;
    struct sy_policy *pol = compile_ok(text), *again, *back;
    uint8_t *buf;
    size_t len;
    (void)state;

    a = sy_policy_to_json(pol);
    assert_non_null(strstr(a, "\"experiments\""));
    assert_non_null(strstr(a, "\"learn\""));
    again = compile_ok(a);
    b = sy_policy_to_json(again);
    assert_string_equal(a, b);
    buf = sy_policy_pack(pol, &len);
    back = sy_policy_unpack(buf, len, &err);
    if (!back)
        fail_msg("unpack failed: %s", err);
    c = sy_policy_to_json(back);
    assert_string_equal(a, c);
    assert_true(sy_policy_find_route(back, "smart")->learn.exploration == 0);
    free(a);
    free(b);
    free(c);
    free(buf);
    free(text);
    sy_policy_unref(pol);
    sy_policy_unref(again);
    sy_policy_unref(back);
}

static void test_no_experiments_keeps_canonical_text(void **state)
{
    const char *plain = HEAD "routes: [{name: r, match: {model: x}, targets: [{model: m1}]}]\n";
    struct sy_policy *pol = compile_ok(plain);
    char *j = sy_policy_to_json(pol);
    (void)state;

    assert_null(strstr(j, "experiments"));
    assert_null(strstr(j, "learn"));
    free(j);
    sy_policy_unref(pol);
}

static void expect_err(const char *body, const char *want)
{
    char text[4096], *err = NULL;
    struct sy_policy *pol;

    snprintf(text, sizeof(text), "%s%s", HEAD, body);
    pol = sy_policy_compile(text, strlen(text), &err);
    if (pol)
        fail_msg("compiled, expected: %s\n%s", want, text);
    if (!strstr(err, want))
        fail_msg("missing \"%s\" in:\n%s", want, err);
    free(err);
}

#define ROUTES "routes: [{name: auto, match: {model: auto}, targets: [{model: m1}]}]\n"
#define LEARNED                                                                                    \
    "routes: [{name: s, match: {model: s}, strategy: learned, targets: [{model: m1}, {model: "     \
    "m2}], "

static void test_errors(void **state)
{
    (void)state;
    expect_err(ROUTES "experiments: [{name: e, route: nope, arms: [{name: A, model: m1}, "
                      "{name: B, model: m2}]}]\n",
               "experiments[0].route: unknown route \"nope\"");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A, model: m1}]}]\n",
               "experiments[0].arms: needs at least 2 arms, got 1");
    expect_err(ROUTES "experiments: [{name: e, route: auto, metric: clicks, arms: [{name: A, "
                      "model: m1}, {name: B, model: m2}]}]\n",
               "experiments[0].metric: unknown value \"clicks\" (accepted: thumbs_up, score, "
               "latency, cost)");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A, model: m9}, {name: "
                      "B, model: m2}]}]\n",
               "experiments[0].arms[0].model: unknown model \"m9\"");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A, model: m1, targets: "
                      "[{model: m1}]}, {name: B, model: m2}]}]\n",
               "experiments[0].arms[0]: give either model or targets, not both");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A}, {name: B, model: "
                      "m2}]}]\n",
               "experiments[0].arms[0]: needs a model or targets");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A, model: m1}, {name: "
                      "A, model: m2}]}]\n",
               "experiments[0].arms: duplicate arm \"A\"");
    expect_err(ROUTES "experiments: [{name: e, route: auto, arms: [{name: A, model: m1, share: "
                      "0}, {name: B, model: m2}]}]\n",
               "experiments[0].arms[0].share");
    expect_err(ROUTES "experiments: [{name: e, route: auto, sticky: {by: header}, arms: [{name: "
                      "A, model: m1}, {name: B, model: m2}]}]\n",
               "experiments[0].sticky.header: is required with by: header");
    expect_err(ROUTES "experiments: [{name: e, route: auto, stop: {rule: prob_best, threshold: "
                      "0.3}, arms: [{name: A, model: m1}, {name: B, model: m2}]}]\n",
               "experiments[0].stop.threshold: must be greater than 0.5");
    expect_err(ROUTES "experiments:\n"
                      "  - {name: e, route: auto, arms: [{name: A, model: m1}, {name: B, model: "
                      "m2}]}\n"
                      "  - {name: e, route: auto, arms: [{name: A, model: m1}, {name: B, model: "
                      "m2}]}\n",
               "experiments[1].name: duplicate experiment \"e\"");
    expect_err(ROUTES "experiments:\n"
                      "  - {name: e, route: auto, arms: [{name: A, model: m1}, {name: B, model: "
                      "m2}]}\n"
                      "  - {name: f, route: auto, arms: [{name: A, model: m1}, {name: B, model: "
                      "m2}]}\n",
               "experiments[1].route: route \"auto\" already runs experiment e");
    expect_err(ROUTES "experiments: [{name: a/b, route: auto, arms: [{name: A, model: m1}, "
                      "{name: B, model: m2}]}]\n",
               "experiments[0].name: must not contain '/'");
    expect_err(LEARNED "learn: {exploration: 0.6}}]\n", "routes[0].learn.exploration");
    expect_err("routes: [{name: s, match: {model: s}, strategy: learned, targets: [{model: m1}, "
               "{model: m2}, {model: m3}], learn: {exploration: 0.4}}]\n",
               "routes[0].learn.exploration: 0.4 per target over 3 targets is more than all "
               "traffic");
    expect_err(LEARNED "learn: {objective: {quality: 0}}}]\n",
               "routes[0].learn.objective: at least one weight must be greater than 0");
    expect_err(LEARNED "learn: {discount: 0}}]\n", "routes[0].learn.discount");
    expect_err(LEARNED "learn: {update_period_s: 0}}]\n", "routes[0].learn.update_period_s");
    expect_err(LEARNED "learn: {speed: 2}}]\n", "routes[0].learn: unknown key \"speed\"");
    expect_err("routes: [{name: s, match: {model: s}, targets: [{model: m1}], learn: {}}]\n",
               "routes[0].learn: is only for strategy learned");
    expect_err(LEARNED "}]\nexperiments: [{name: e, route: s, arms: [{name: A, model: m1}, "
                       "{name: B, model: m2}]}]\n",
               "experiments[0].route: route \"s\" learns its weights");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compiled),
        cmocka_unit_test(test_canonical_and_message_roundtrip),
        cmocka_unit_test(test_no_experiments_keeps_canonical_text),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
