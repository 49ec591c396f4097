/* tests/unit/controlplane/test_learner.c - the learner's decision (cp_learner.h, pure part):
 * discounted posteriors, the decision under every knob (a better target gains share within
 * the step bound, the exploration floor holds, nothing moves below min_samples, the
 * threshold suppresses small moves, old evidence fades), reproducible seeds, the note of a
 * learned version and its parsing, the rewrite of a compiled policy's weights, and the
 * conditional activation learned versions are published with. Fixed seeds throughout, so
 * every run computes the same numbers. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "cp_learner.h"
#include "cp_policies.h"
#include "cp_store.h"
#include "etcd_fixture.h" /* fixture_rm_rf */
#include "sy_log.h"
#include "sy_policy.h"

#define assert_close(got, want, tol)                                                               \
    do {                                                                                           \
        double g_ = (got), w_ = (want), t_ = (tol);                                                \
        if (!(fabs(g_ - w_) <= t_))                                                                \
            fail_msg("%s = %.15g, want %.15g +- %g (line %d)", #got, g_, w_, t_, __LINE__);        \
    } while (0)

/* The policy's defaults (docs/policy.md, learn). */
static struct sy_learn knobs(void)
{
    return (struct sy_learn){.w_quality = 1,
                             .update_period_s = 60,
                             .exploration = 0.05,
                             .max_step = 0.2,
                             .min_samples = 20,
                             .threshold = 0.02,
                             .discount = 0.98};
}

/* An arm with <ups> and <downs> counted at full weight. */
static struct cp_learn_arm arm(double ups, double downs)
{
    return (struct cp_learn_arm){
        .post = {.a = 1 + ups, .b = 1 + downs, .n = ups + downs},
    };
}

static double sum_of(const double *v, size_t n)
{
    double s = 0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* ---- posteriors ---- */

static void test_posterior_counts(void **state)
{
    struct cp_learn_obs obs[] = {{1, 0}, {1, 5}, {0, 10}, {0.25, 0}, {NAN, 0}, {1.5, 0}, {-1, 0}};
    struct cp_learn_posterior p;

    (void)state;
    /* Discount 1: plain counts, a score counts as a fraction; bad values are skipped. */
    assert_int_equal(cp_learn_posterior(obs, 7, 60, 1, &p), 0);
    assert_close(p.a, 1 + 1 + 1 + 0.25, 1e-12);
    assert_close(p.b, 1 + 1 + 0.75, 1e-12);
    assert_close(p.n, 4, 1e-12);
    /* No evidence: the prior. */
    assert_int_equal(cp_learn_posterior(NULL, 0, 60, 0.98, &p), 0);
    assert_close(p.a, 1, 0);
    assert_close(p.b, 1, 0);
    assert_close(p.n, 0, 0);
    /* Bad knobs. */
    assert_int_equal(cp_learn_posterior(obs, 1, 0, 0.98, &p), -EINVAL);
    assert_int_equal(cp_learn_posterior(obs, 1, 60, 0, &p), -EINVAL);
    assert_int_equal(cp_learn_posterior(obs, 1, 60, 1.01, &p), -EINVAL);
    assert_int_equal(cp_learn_posterior(obs, 1, 60, NAN, &p), -EINVAL);
}

static void test_posterior_discount(void **state)
{
    /* Weight = discount^(age / period): one period old counts 0.5, two 0.25, future 1. */
    struct cp_learn_obs obs[] = {{1, 0}, {1, 10}, {0, 20}, {1, -3}};
    struct cp_learn_posterior p;

    (void)state;
    assert_int_equal(cp_learn_posterior(obs, 4, 10, 0.5, &p), 0);
    assert_close(p.a, 1 + 1 + 0.5 + 1, 1e-12);
    assert_close(p.b, 1 + 0.25, 1e-12);
    assert_close(p.n, 2.75, 1e-12);

    assert_close(cp_learn_horizon_s(60, 0.98), 60 * log(1e-3) / log(0.98), 1e-9);
    assert_true(isinf(cp_learn_horizon_s(60, 1)));
    /* At the horizon an observation weighs CP_LEARN_HORIZON_WEIGHT. */
    assert_close(pow(0.98, cp_learn_horizon_s(60, 0.98) / 60), CP_LEARN_HORIZON_WEIGHT, 1e-12);
}

/* ---- the decision ---- */

static void test_better_target_gains_within_step(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_arm arms[2] = {arm(80, 20), arm(40, 60)};
    uint32_t w[2] = {500, 500};
    struct cp_learn_decision d, d2;

    (void)state;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, cp_learn_seed(7, "smart"), &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    /* Thompson wants ~all of it on the first; the step bound lets 0.2 move. */
    assert_close(d.shares[0], 0.7, 1e-9);
    assert_close(d.shares[1], 0.3, 1e-9);
    assert_int_equal(d.weights[0], 700);
    assert_int_equal(d.weights[1], 300);
    assert_close(sum_of(d.shares, 2), 1, 1e-12);
    /* The same inputs and seed give the same answer. */
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, cp_learn_seed(7, "smart"), &d2), 0);
    assert_memory_equal(&d, &d2, sizeof(d));

    /* Operator weights need not sum to 1000; a step never overshoots the target. */
    k.max_step = 1;
    w[0] = 3;
    w[1] = 1;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_true(d.shares[0] > 0.9 && d.shares[0] <= 0.95 + 1e-12);
    assert_int_equal(d.weights[0] + d.weights[1], CP_LEARN_TOTAL_WEIGHT);

    /* Cost counts: with equal quality, the cheaper target wins when cost weighs. */
    k = knobs();
    k.w_cost = 1;
    arms[0] = arm(50, 50);
    arms[1] = arm(50, 50);
    arms[0].cost_usd = 0.002;
    arms[1].cost_usd = 0.010;
    w[0] = w[1] = 500;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 3, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_close(d.shares[0], 0.7, 1e-9);
}

static void test_floor_holds(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_arm arms[3] = {arm(900, 100), arm(100, 900), arm(100, 900)};
    uint32_t w[3] = {334, 333, 333};
    struct cp_learn_decision d;
    int moves = 0;

    (void)state;
    k.exploration = 0.1;
    /* Feed each decision back as the current weights until it settles. */
    for (int round = 0; round < 20; round++) {
        assert_int_equal(cp_learn_decide(&k, arms, w, 3, cp_learn_seed(round, "r"), &d), 0);
        if (d.outcome != CP_LEARN_MOVE)
            break;
        moves++;
        for (int i = 0; i < 3; i++) {
            assert_true(d.shares[i] >= 0.1 - 1e-12);
            w[i] = d.weights[i];
        }
    }
    assert_true(moves >= 3 && moves < 20);
    assert_int_equal(d.outcome, CP_LEARN_STEADY);
    assert_int_equal(w[0], 800);
    assert_int_equal(w[1], 100);
    assert_int_equal(w[2], 100);
}

static void test_min_samples(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_arm arms[2] = {arm(19, 0), arm(0, 19)};
    uint32_t w[2] = {900, 100};
    struct cp_learn_decision d;

    (void)state;
    /* Every target below min_samples: nothing moves, however lopsided the evidence. */
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_WAITING);
    assert_close(d.shares[0], 0.9, 1e-12);
    assert_close(d.shares[1], 0.1, 1e-12);
    /* Discounted counts: 19.99 observations are still 19. */
    arms[0].post.n = 19.99;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_WAITING);

    /* One target has enough: the learner steers, but the under-sampled one keeps at least
     * the uniform share (1/2) so it can gather evidence. */
    arms[0] = arm(200, 0);
    arms[1] = arm(0, 5);
    w[0] = 900;
    w[1] = 100;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_close(d.shares[1], 0.3, 1e-9); /* toward 1/2, by one step */

    /* min_samples 0: no waiting at all. */
    k.min_samples = 0;
    arms[0] = arm(0, 0);
    arms[1] = arm(0, 0);
    w[0] = w[1] = 500;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_true(d.outcome != CP_LEARN_WAITING);
}

static void test_threshold(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_arm arms[2] = {arm(500, 500), arm(500, 500)};
    uint32_t w[2] = {500, 500};
    struct cp_learn_decision d;

    (void)state;
    /* Two equal targets: Thompson splits about evenly; +-0.01 noise is below 0.02. */
    for (uint64_t seed = 0; seed < 20; seed++) {
        assert_int_equal(cp_learn_decide(&k, arms, w, 2, seed, &d), 0);
        assert_int_equal(d.outcome, CP_LEARN_STEADY);
        assert_true(fabs(d.shares[0] - 0.5) < 0.02);
    }
    /* A real move smaller than the threshold is not published either. */
    arms[0] = arm(90, 10);
    arms[1] = arm(10, 90);
    k.max_step = 0.1;
    k.threshold = 0.1;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_STEADY);
    assert_close(d.shares[0], 0.6, 1e-9); /* computed, not published */
    k.threshold = 0.09;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_int_equal(d.weights[0], 600);

    /* Shares that move but round to the weights in force: nothing to publish. */
    k.threshold = 0;
    k.max_step = 0.0004;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_STEADY);
}

/* Old evidence fades: a target that was good long ago and bad lately loses to one that is
 * good lately, with discounting; without it, the old majority still wins. */
static void test_discount_follows_change(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_obs a_obs[300], b_obs[300];
    struct cp_learn_arm arms[2];
    uint32_t w[2] = {500, 500};
    struct cp_learn_decision d;
    size_t n = 0;

    (void)state;
    /* 200 periods ago: A up 200 times, B down 200 times. Lately (the last 5 periods): A down
     * 50 times, B up 50 times. */
    for (int i = 0; i < 200; i++, n++) {
        a_obs[n] = (struct cp_learn_obs){1, 200.0 * 60};
        b_obs[n] = (struct cp_learn_obs){0, 200.0 * 60};
    }
    for (int i = 0; i < 50; i++, n++) {
        a_obs[n] = (struct cp_learn_obs){0, (double)(i % 5) * 60};
        b_obs[n] = (struct cp_learn_obs){1, (double)(i % 5) * 60};
    }
    assert_int_equal(cp_learn_posterior(a_obs, n, 60, 1, &arms[0].post), 0);
    assert_int_equal(cp_learn_posterior(b_obs, n, 60, 1, &arms[1].post), 0);
    arms[0].cost_usd = arms[1].cost_usd = 0;
    arms[0].latency_ms = arms[1].latency_ms = 0;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_true(d.shares[0] > 0.5); /* all time: A still looks better */

    assert_int_equal(cp_learn_posterior(a_obs, n, 60, 0.98, &arms[0].post), 0);
    assert_int_equal(cp_learn_posterior(b_obs, n, 60, 0.98, &arms[1].post), 0);
    /* 0.98^200 = 0.0176: the 200 old ones weigh about 3.5 observations. */
    assert_close(
        arms[0].post.n,
        200 * pow(0.98, 200) + 10 * (1 + 0.98 + pow(0.98, 2) + pow(0.98, 3) + pow(0.98, 4)), 1e-9);
    assert_true(cp_beta_mean(arms[0].post.a, arms[0].post.b) < 0.1);
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_close(d.shares[1], 0.7, 1e-9); /* B gains, by one step */
}

static void test_decide_errors(void **state)
{
    struct sy_learn k = knobs();
    struct cp_learn_arm arms[2] = {arm(50, 50), arm(50, 50)};
    uint32_t w[2] = {0, 0}, ok[2] = {1, 1};
    struct cp_learn_decision d;

    (void)state;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), -EINVAL);
    assert_int_equal(cp_learn_decide(&k, arms, ok, 0, 1, &d), -EINVAL);
    assert_int_equal(cp_learn_decide(&k, arms, ok, CP_BANDIT_MAX_ARMS + 1, 1, &d), -EINVAL);
    arms[0].post.a = 0; /* not a posterior */
    assert_int_equal(cp_learn_decide(&k, arms, ok, 2, 1, &d), -EINVAL);
    /* A zero weight is a share of 0: it may grow, within the step. */
    arms[0] = arm(90, 10);
    w[0] = 0;
    w[1] = 7;
    assert_int_equal(cp_learn_decide(&k, arms, w, 2, 1, &d), 0);
    assert_int_equal(d.outcome, CP_LEARN_MOVE);
    assert_close(d.shares[0], 0.2, 1e-9);
}

static void test_seed(void **state)
{
    (void)state;
    assert_true(cp_learn_seed(7, "smart") == cp_learn_seed(7, "smart"));
    assert_true(cp_learn_seed(7, "smart") != cp_learn_seed(8, "smart"));
    assert_true(cp_learn_seed(7, "smart") != cp_learn_seed(7, "smarT"));
}

/* ---- notes and rewrites ---- */

static void test_note(void **state)
{
    const char *models[2] = {"m1", "m2"};
    struct cp_learn_arm arms[2] = {arm(345, 66), arm(58.17, 37.83)};
    uint32_t w[2] = {810, 190};
    int64_t from = 0;
    char *note;

    (void)state;
    arms[0].post.n = 411.6; /* discounted: shown rounded */
    note = cp_learn_note("smart", 7, models, arms, w, 2);
    assert_string_equal(note, "learned: route smart from version 7: m1 81.0% (up 0.84, n 412), "
                              "m2 19.0% (up 0.60, n 96)");
    assert_true(cp_learn_note_parse(note, &from));
    assert_int_equal(from, 7);
    assert_true(cp_learn_note_is_route(note, "smart"));
    assert_false(cp_learn_note_is_route(note, "smar"));
    assert_false(cp_learn_note_is_route(note, "m1"));
    free(note);

    /* A route whose name holds the words. */
    note = cp_learn_note("a from version x", 12, models, arms, w, 2);
    assert_true(cp_learn_note_parse(note, &from));
    assert_int_equal(from, 12);
    assert_true(cp_learn_note_is_route(note, "a from version x"));
    free(note);

    assert_false(cp_learn_note_parse("rollback to version 3", &from));
    assert_int_equal(from, 0);
    assert_false(cp_learn_note_parse(NULL, &from));
    assert_false(cp_learn_note_parse("", NULL));
    assert_true(cp_learn_note_parse("learned: something else", &from));
    assert_int_equal(from, 0);
}

static void test_note_long(void **state)
{
    const char *models[CP_BANDIT_MAX_ARMS];
    struct cp_learn_arm arms[CP_BANDIT_MAX_ARMS];
    uint32_t w[CP_BANDIT_MAX_ARMS];
    char name[200];
    char *note;

    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (int i = 0; i < CP_BANDIT_MAX_ARMS; i++) {
        models[i] = name;
        arms[i] = arm(1, 1);
        w[i] = 1;
    }
    note = cp_learn_note("r", 1, models, arms, w, CP_BANDIT_MAX_ARMS);
    assert_int_equal(strlen(note), 4000);
    assert_string_equal(note + 3997, "...");
    free(note);
}

static const char compiled[] =
    "{\"providers\":[{\"name\":\"p\",\"kind\":\"openai\",\"base_url\":\"http://h/v1\"}],"
    "\"models\":[{\"name\":\"m1\",\"provider\":\"p\"},{\"name\":\"m2\",\"provider\":\"p\"}],"
    "\"routes\":[{\"name\":\"other\",\"targets\":[{\"model\":\"m1\",\"weight\":5}]},"
    "{\"name\":\"smart\",\"strategy\":\"learned\",\"targets\":[{\"model\":\"m1\",\"weight\":1},"
    "{\"model\":\"m2\",\"weight\":1}]}]}";

static void test_set_weights(void **state)
{
    const char *models[2] = {"m2", "m1"}; /* any order: matched by name */
    const char *three[3] = {"m1", "m2", "m3"};
    uint32_t w[3] = {250, 750, 1};
    char *err = NULL, *out;
    cJSON *root, *rt;

    (void)state;
    out = cp_learn_set_weights(compiled, "smart", models, w, 2, &err);
    assert_non_null(out);
    root = cJSON_Parse(out);
    rt = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "routes"), 1);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rt, "targets"), 0), "weight")
            ->valueint,
        750);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rt, "targets"), 1), "weight")
            ->valueint,
        250);
    /* The other route is untouched. */
    rt = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "routes"), 0);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rt, "targets"), 0), "weight")
            ->valueint,
        5);
    cJSON_Delete(root);
    free(out);

    assert_null(cp_learn_set_weights(compiled, "nope", models, w, 2, &err));
    assert_non_null(strstr(err, "no route \"nope\""));
    free(err);
    err = NULL;
    assert_null(cp_learn_set_weights(compiled, "smart", models, w, 1, &err));
    assert_non_null(strstr(err, "m1"));
    free(err);
    err = NULL;
    assert_null(cp_learn_set_weights(compiled, "smart", three, w, 3, &err));
    assert_non_null(strstr(err, "has 2 targets"));
    free(err);
    err = NULL;
    assert_null(cp_learn_set_weights("{not json", "smart", models, w, 2, &err));
    assert_non_null(err);
    free(err);
}

/* ---- the conditional activation the learner publishes with ---- */

static void on_active_noop(void *arg, struct cp_active *a)
{
    (void)arg;
    (void)a;
}

static int64_t push(struct cp_policies *ps, uint32_t weight, bool activate)
{
    char src[512], *err = NULL;
    bool activated;
    int64_t v;

    snprintf(src, sizeof(src),
             "{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://127.0.0.1:9/v1\"}],"
             "\"models\":[{\"name\":\"m1\",\"provider\":\"p\"},"
             "{\"name\":\"m2\",\"provider\":\"p\"}],"
             "\"routes\":[{\"name\":\"smart\",\"strategy\":\"learned\",\"targets\":["
             "{\"model\":\"m1\",\"weight\":%u},{\"model\":\"m2\",\"weight\":1}]}]}",
             weight);
    v = cp_policies_push(ps, src, strlen(src), "t", activate, &activated, &err);
    if (v < 0)
        fail_msg("push: %s", err);
    return v;
}

/* An operator's push between the learner's read and its activation wins: the learned
 * version stays staged. */
static void test_activate_if(void **state)
{
    char dir[] = "/tmp/sy-learner-XXXXXX", path[64], *err = NULL;
    struct cp_policies *ps;
    struct cp_store *store;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "file:%s/store", dir);
    store = cp_store_open(path, "", &err);
    assert_non_null(store);
    ps = cp_policies_new(store, on_active_noop, NULL, &err);
    assert_non_null(ps);

    assert_int_equal(push(ps, 1, true), 1);
    assert_int_equal(push(ps, 2, false), 2); /* the learner's, built from 1 */
    assert_int_equal(push(ps, 3, true), 3);  /* the operator's */
    assert_int_equal(cp_policies_activate_if(ps, 2, 1, &err), -EAGAIN);
    assert_int_equal(cp_policies_active_version(ps), 3);
    assert_int_equal(push(ps, 4, false), 4); /* built from 3 */
    assert_int_equal(cp_policies_activate_if(ps, 4, 3, &err), 4);
    assert_int_equal(cp_policies_active_version(ps), 4);
    assert_int_equal(cp_policies_activate_if(ps, 2, 4, &err), -EINVAL);
    free(err);
    assert_int_equal(cp_policies_active_version(ps), 4);

    cp_store_free(store);
    cp_policies_free(ps);
    fixture_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posterior_counts),
        cmocka_unit_test(test_posterior_discount),
        cmocka_unit_test(test_better_target_gains_within_step),
        cmocka_unit_test(test_floor_holds),
        cmocka_unit_test(test_min_samples),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_discount_follows_change),
        cmocka_unit_test(test_decide_errors),
        cmocka_unit_test(test_seed),
        cmocka_unit_test(test_note),
        cmocka_unit_test(test_note_long),
        cmocka_unit_test(test_set_weights),
        cmocka_unit_test(test_activate_if),
    };

    sy_log_set_level(getenv("SY_TEST_LOG") ? SY_LOG_DEBUG : SY_LOG_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
