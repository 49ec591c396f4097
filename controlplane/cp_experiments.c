/* controlplane/cp_experiments.c - experiment results and promotion. See cp_experiments.h. */
#define SY_LOG_MODULE "experiments"

#include "cp_experiments.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <event2/event.h>

#include "cp_admin.h"
#include "cp_bandit.h"
#include "cp_feedback.h"
#include "cp_policies.h"
#include "cp_reply.h"
#include "cp_stats.h"
#include "cp_store.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_policy.h"
#include "sy_util.h"

#define PROB_BEST_DRAWS 20000
#define AUTO_PROMOTE_EVERY_S 5
#define CLOSED_PREFIX "experiments/closed/"
#define EXPIRE_EVERY_S 3600 /* old feedback is deleted this often (by the leader) */

struct cp_experiments {
    struct cp_policies *ps;
    struct cp_feedback *fb;
    struct cp_stats *stats;
    struct cp_store *store;
    struct event *timer;
    bool (*is_leader)(void *arg);
    void *leader_arg;
    uint64_t next_expire_us; /* monotonic: when to delete feedback past the retention */
};

static const char *const metric_names[] = {"thumbs_up", "score", "latency", "cost"};
static const char *const stop_names[] = {"prob_best", "significance", "none"};

static int64_t wall_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

/* Per-arm tallies of one experiment. */
struct arm_tally {
    double successes, failures; /* for the posterior (fractional for scores) */
    uint64_t feedback, up, down;
    double score_sum;
};

static void tally(const struct sy_experiment *x, const struct cp_feedback_event *ev, size_t n,
                  struct arm_tally *t)
{
    for (size_t i = 0; i < n; i++) {
        const struct cp_feedback_event *e = &ev[i];
        size_t a;

        if (strcmp(e->experiment, x->name) != 0)
            continue;
        if (e->metric[0] && strcmp(e->metric, metric_names[x->metric]) != 0)
            continue;
        for (a = 0; a < x->n_arms; a++)
            if (strcmp(x->arms[a].name, e->arm) == 0)
                break;
        if (a == x->n_arms)
            continue; /* an arm of an earlier version of the experiment */
        t[a].feedback++;
        t[a].score_sum += e->value;
        if (e->thumbs)
            e->value >= 1 ? t[a].up++ : t[a].down++;
        if (x->metric == SY_METRIC_SCORE) {
            t[a].successes += e->value;
            t[a].failures += 1 - e->value;
        } else if (e->value >= 0.5) {
            t[a].successes += 1;
        } else {
            t[a].failures += 1;
        }
    }
}

static uint64_t seed_of(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static double round6(double v)
{
    return isfinite(v) ? round(v * 1e6) / 1e6 : 0;
}

/* The results of <x> as JSON; *winner_out (may be NULL) gets the index of the arm the
 * stopping rule names (SIZE_MAX = none yet). */
static cJSON *results_json(struct cp_experiments *cx, const struct sy_policy *pol,
                           const struct sy_experiment *x, int64_t version,
                           const struct cp_feedback_event *ev, size_t n_ev, size_t *winner_out)
{
    struct arm_tally t[CP_BANDIT_MAX_ARMS] = {{0}};
    double a[CP_BANDIT_MAX_ARMS], b[CP_BANDIT_MAX_ARMS], best[CP_BANDIT_MAX_ARMS];
    struct cp_stats_summary sum[CP_BANDIT_MAX_ARMS], ok[CP_BANDIT_MAX_ARMS];
    size_t n = x->n_arms < CP_BANDIT_MAX_ARMS ? x->n_arms : CP_BANDIT_MAX_ARMS;
    size_t winner = SIZE_MAX, first = 0, second = 1;
    bool enough = true, feedback_metric = x->metric <= SY_METRIC_SCORE;
    double z = 0, p = 1;
    struct cp_rng rng;
    cJSON *o = cJSON_CreateObject(), *arms, *test;

    tally(x, ev, n_ev, t);
    cp_rng_seed(&rng, seed_of(x->name));
    for (size_t i = 0; i < n; i++) {
        char arm[600];
        struct cp_stats_filter f = {.arm = arm};

        snprintf(arm, sizeof(arm), "%s/%s", x->name, x->arms[i].name);
        cp_stats_summary(cx->stats, &f, -1, wall_ms(), &sum[i]);
        /* Latency and cost of the answers that succeeded: a failing arm's fast, free errors
         * must not make it look quicker or cheaper. */
        f.ok_only = true;
        cp_stats_summary(cx->stats, &f, -1, wall_ms(), &ok[i]);
        a[i] = CP_BANDIT_PRIOR_A + t[i].successes;
        b[i] = CP_BANDIT_PRIOR_B + t[i].failures;
        if ((feedback_metric ? t[i].feedback : ok[i].requests) < x->min_samples)
            enough = false;
    }
    if (cp_prob_best(a, b, n, PROB_BEST_DRAWS, &rng, best) < 0)
        for (size_t i = 0; i < n; i++)
            best[i] = NAN;
    /* The two arms with the highest posterior means, for the frequentist test. */
    for (size_t i = 0; i < n; i++) {
        if (cp_beta_mean(a[i], b[i]) > cp_beta_mean(a[first], b[first]))
            first = i;
    }
    second = first == 0 ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (i != first && cp_beta_mean(a[i], b[i]) > cp_beta_mean(a[second], b[second]))
            second = i;
    }
    if (n >= 2)
        cp_two_proportion_test((uint64_t)llround(t[first].successes),
                               (uint64_t)llround(t[first].successes + t[first].failures),
                               (uint64_t)llround(t[second].successes),
                               (uint64_t)llround(t[second].successes + t[second].failures), &z, &p);
    if (enough && feedback_metric) {
        if (x->stop_rule == SY_STOP_PROB_BEST) {
            for (size_t i = 0; i < n; i++)
                if (best[i] >= x->stop_threshold)
                    winner = i;
        } else if (x->stop_rule == SY_STOP_SIGNIFICANCE && p <= x->stop_threshold) {
            winner = first;
        }
    } else if (enough && x->stop_rule != SY_STOP_NONE) {
        /* latency / cost: the lowest p50 or cost per request, once every arm has samples. */
        winner = 0;
        for (size_t i = 1; i < n; i++) {
            double vi = x->metric == SY_METRIC_LATENCY
                            ? ok[i].latency_p50_ms
                            : (double)ok[i].cost_nusd / (double)ok[i].requests;
            double vw = x->metric == SY_METRIC_LATENCY
                            ? ok[winner].latency_p50_ms
                            : (double)ok[winner].cost_nusd / (double)ok[winner].requests;
            if (vi < vw)
                winner = i;
        }
    }

    cJSON_AddStringToObject(o, "name", x->name);
    cJSON_AddStringToObject(o, "route", pol->routes[x->route].name);
    cJSON_AddStringToObject(o, "metric", metric_names[x->metric]);
    cJSON_AddStringToObject(o, "status", winner != SIZE_MAX ? "concluded" : "running");
    cJSON_AddNumberToObject(o, "policy_version", (double)version);
    cJSON_AddNumberToObject(o, "min_samples", x->min_samples);
    cJSON_AddStringToObject(o, "stop_rule", stop_names[x->stop_rule]);
    if (x->stop_rule != SY_STOP_NONE)
        cJSON_AddNumberToObject(o, "stop_threshold", x->stop_threshold);
    cJSON_AddBoolToObject(o, "auto_promote", x->auto_promote);
    if (winner != SIZE_MAX)
        cJSON_AddStringToObject(o, "winner", x->arms[winner].name);
    else
        cJSON_AddNullToObject(o, "winner");
    arms = cJSON_AddArrayToObject(o, "arms");
    for (size_t i = 0; i < n; i++) {
        const struct sy_arm *arm = &x->arms[i];
        cJSON *ao = cJSON_CreateObject(), *ci, *lat, *models;
        double lo = 0, hi = 0, total = t[i].successes + t[i].failures;

        cJSON_AddStringToObject(ao, "name", arm->name);
        cJSON_AddStringToObject(ao, "model", pol->models[arm->targets[0].model].name);
        models = cJSON_AddArrayToObject(ao, "models");
        for (size_t k = 0; k < arm->n_targets; k++)
            cJSON_AddItemToArray(models,
                                 cJSON_CreateString(pol->models[arm->targets[k].model].name));
        cJSON_AddNumberToObject(ao, "share", arm->share);
        cJSON_AddNumberToObject(ao, "requests", (double)sum[i].requests);
        cJSON_AddNumberToObject(ao, "feedback", (double)t[i].feedback);
        cJSON_AddNumberToObject(ao, "up", (double)t[i].up);
        cJSON_AddNumberToObject(ao, "down", (double)t[i].down);
        if (total > 0)
            cJSON_AddNumberToObject(ao, "up_rate", round6(t[i].successes / total));
        else
            cJSON_AddNullToObject(ao, "up_rate");
        if (x->metric == SY_METRIC_SCORE && t[i].feedback)
            cJSON_AddNumberToObject(ao, "mean_score",
                                    round6(t[i].score_sum / (double)t[i].feedback));
        cJSON_AddNumberToObject(ao, "posterior_mean", round6(cp_beta_mean(a[i], b[i])));
        cp_beta_ci95(a[i], b[i], &lo, &hi);
        ci = cJSON_AddArrayToObject(ao, "ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(round6(lo)));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(round6(hi)));
        if (isfinite(best[i]))
            cJSON_AddNumberToObject(ao, "prob_best", round6(best[i]));
        else
            cJSON_AddNullToObject(ao, "prob_best");
        lat = cJSON_AddObjectToObject(ao, "latency_ms");
        if (ok[i].requests) {
            cJSON_AddNumberToObject(lat, "p50", round6(ok[i].latency_p50_ms));
            cJSON_AddNumberToObject(lat, "p95", round6(ok[i].latency_p95_ms));
            cJSON_AddNumberToObject(ao, "cost_per_request_usd",
                                    (double)ok[i].cost_nusd / 1e9 / (double)ok[i].requests);
        } else {
            cJSON_AddNullToObject(lat, "p50");
            cJSON_AddNullToObject(lat, "p95");
            cJSON_AddNullToObject(ao, "cost_per_request_usd");
        }
        if (sum[i].requests)
            cJSON_AddNumberToObject(ao, "error_rate",
                                    round6((double)sum[i].errors / (double)sum[i].requests));
        else
            cJSON_AddNullToObject(ao, "error_rate");
        cJSON_AddItemToArray(arms, ao);
    }
    test = cJSON_AddObjectToObject(o, "test");
    cJSON_AddStringToObject(test, "method", "two_proportion_z");
    cJSON_AddStringToObject(test, "arms", n >= 2 ? x->arms[first].name : "");
    cJSON_AddStringToObject(test, "versus", n >= 2 ? x->arms[second].name : "");
    cJSON_AddNumberToObject(test, "z", round6(z));
    cJSON_AddNumberToObject(test, "p_value", round6(p));
    cJSON_AddBoolToObject(test, "significant",
                          p <= (x->stop_rule == SY_STOP_SIGNIFICANCE ? x->stop_threshold : 0.05));
    if (winner_out)
        *winner_out = winner;
    return o;
}

static const struct sy_experiment *find_experiment(const struct sy_policy *pol, const char *name)
{
    for (size_t i = 0; pol && i < pol->n_experiments; i++)
        if (strcmp(pol->experiments[i].name, name) == 0)
            return &pol->experiments[i];
    return NULL;
}

/* Feedback for experiments: every stored event (the TTL bounds how far back). */
static int load_events(struct cp_experiments *cx, struct cp_feedback_event **ev, size_t *n)
{
    return cp_feedback_events(cx->fb, 0, wall_ms(), ev, n);
}

static cJSON *closed_json(struct cp_experiments *cx, const char *name)
{
    char key[CP_STORE_MAX_KEY];
    struct cp_kv *kv = NULL;
    cJSON *o = NULL;

    snprintf(key, sizeof(key), CLOSED_PREFIX "%s", name);
    if (cp_store_get(cx->store, key, &kv) == 0) {
        o = cJSON_ParseWithLength(kv->value, kv->value_len);
        cp_kv_free(kv);
    }
    return o;
}

static void handle_list(struct cp_experiments *cx, struct sy_http_req *req)
{
    int64_t version;
    struct sy_policy *pol = cp_policies_active_policy(cx->ps, &version);
    struct cp_feedback_event *ev = NULL;
    size_t n_ev = 0, n_closed = 0;
    struct cp_kv *closed = NULL;
    cJSON *root, *arr;
    int rc = load_events(cx, &ev, &n_ev);

    if (rc == 0)
        rc = cp_store_range(cx->store, CLOSED_PREFIX, &closed, &n_closed);
    if (rc < 0) {
        sy_policy_unref(pol);
        cp_feedback_events_free(ev, n_ev);
        cp_reply_error(req, 503, "store_unavailable", "the store cannot be read: %s",
                       strerror(-rc));
        return;
    }
    root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "active_version", (double)version);
    arr = cJSON_AddArrayToObject(root, "experiments");
    for (size_t i = 0; pol && i < pol->n_experiments; i++)
        cJSON_AddItemToArray(arr,
                             results_json(cx, pol, &pol->experiments[i], version, ev, n_ev, NULL));
    for (size_t i = 0; i < n_closed; i++) {
        cJSON *o = cJSON_ParseWithLength(closed[i].value, closed[i].value_len);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        /* A name that runs again in the active policy shows its live results only. */
        if (cJSON_IsObject(o) && cJSON_IsString(name) && !find_experiment(pol, name->valuestring))
            cJSON_AddItemToArray(arr, o);
        else
            cJSON_Delete(o);
    }
    cp_kv_array_free(closed, n_closed);
    cp_feedback_events_free(ev, n_ev);
    sy_policy_unref(pol);
    cp_reply_json(req, 200, root);
}

static void handle_get(struct cp_experiments *cx, struct sy_http_req *req, const char *name)
{
    int64_t version;
    struct sy_policy *pol = cp_policies_active_policy(cx->ps, &version);
    const struct sy_experiment *x = find_experiment(pol, name);
    struct cp_feedback_event *ev = NULL;
    size_t n_ev = 0;
    cJSON *o;
    int rc;

    if (!x) {
        o = closed_json(cx, name);
        sy_policy_unref(pol);
        if (o)
            cp_reply_json(req, 200, o);
        else
            cp_reply_error(req, 404, "experiment_not_found",
                           "no experiment %.100s in the active policy (version %" PRId64
                           ") nor among the closed ones",
                           name, version);
        return;
    }
    rc = load_events(cx, &ev, &n_ev);
    if (rc < 0) {
        sy_policy_unref(pol);
        cp_reply_error(req, 503, "store_unavailable", "the store cannot be read: %s",
                       strerror(-rc));
        return;
    }
    o = results_json(cx, pol, x, version, ev, n_ev, NULL);
    cp_feedback_events_free(ev, n_ev);
    sy_policy_unref(pol);
    cp_reply_json(req, 200, o);
}

/* Pushes the version that gives <arm> all of <x>'s route and drops <x>. Returns the new
 * version, or -errno with *errmsg. <results> (taken) are stored as the closed record. */
static int64_t promote(struct cp_experiments *cx, const struct sy_policy *pol, int64_t version,
                       const struct sy_experiment *x, size_t arm, cJSON *results, char **errmsg)
{
    struct cp_version *v = NULL;
    cJSON *root, *routes, *r, *targets, *exps, *e;
    const struct sy_arm *winner = &x->arms[arm];
    char *src, *note, key[CP_STORE_MAX_KEY], *text;
    const char *route = pol->routes[x->route].name;
    bool activated = false;
    int64_t nv;
    int rc;

    rc = cp_policies_get(cx->ps, version, &v);
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot read version %" PRId64 ": %s", version, strerror(-rc));
        cJSON_Delete(results);
        return rc;
    }
    root = cJSON_Parse(v->compiled ? v->compiled : "");
    cp_version_free(v);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cJSON_Delete(results);
        *errmsg = sy_xasprintf("version %" PRId64 " has no readable compiled form", version);
        return -EIO;
    }
    routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
    cJSON_ArrayForEach(r, routes)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(r, "name");
        if (!cJSON_IsString(name) || strcmp(name->valuestring, route) != 0)
            continue;
        targets = cJSON_CreateArray();
        for (size_t k = 0; k < winner->n_targets; k++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "model", pol->models[winner->targets[k].model].name);
            cJSON_AddNumberToObject(t, "weight", winner->targets[k].weight);
            cJSON_AddItemToArray(targets, t);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(r, "targets", targets);
    }
    exps = cJSON_GetObjectItemCaseSensitive(root, "experiments");
    for (int i = cJSON_GetArraySize(exps) - 1; i >= 0; i--) {
        e = cJSON_GetArrayItem(exps, i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, x->name) == 0)
            cJSON_DeleteItemFromArray(exps, i);
    }
    if (cJSON_GetArraySize(exps) == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(root, "experiments");
    src = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    note =
        sy_xasprintf("experiment %s: promoted arm %s to all of route %s (from version %" PRId64 ")",
                     x->name, winner->name, route, version);
    /* Stored first, then activated only if <version> still is active: a promotion must not
     * undo a version someone pushed meanwhile (nor a second promotion race the first). */
    nv = cp_policies_push(cx->ps, src, strlen(src), note, false, &activated, errmsg);
    free(src);
    if (nv > 0) {
        int64_t arc = cp_policies_activate_if(cx->ps, nv, version, errmsg);
        if (arc == -EAGAIN)
            *errmsg = sy_xasprintf("the active version changed from %" PRId64
                                   " while promoting; version %" PRId64
                                   " was stored but not activated: look again and retry",
                                   version, nv);
        if (arc < 0)
            nv = arc;
    }
    if (nv < 0) {
        free(note);
        cJSON_Delete(results);
        return nv;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(results, "status", cJSON_CreateString("promoted"));
    cJSON_AddStringToObject(results, "promoted_arm", winner->name);
    cJSON_AddNumberToObject(results, "promoted_in_version", (double)nv);
    cJSON_AddNumberToObject(results, "closed_unix_ms", (double)wall_ms());
    cJSON_AddStringToObject(results, "note", note);
    text = cJSON_PrintUnformatted(results);
    snprintf(key, sizeof(key), CLOSED_PREFIX "%s", x->name);
    rc = cp_store_put(cx->store, key, text, strlen(text), NULL);
    if (rc < 0)
        sy_warn("experiment %s: promoted in version %" PRId64 " but its results were not kept: %s",
                x->name, nv, strerror(-rc));
    sy_info("%s -> version %" PRId64, note, nv);
    free(text);
    free(note);
    cJSON_Delete(results);
    return nv;
}

static void handle_promote(struct cp_experiments *cx, struct sy_http_req *req, const char *name)
{
    size_t len, arm;
    const char *body = sy_http_req_body(req, &len);
    cJSON *in = cJSON_ParseWithLength(body ? body : "", len), *results;
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(in, "arm");
    int64_t version, nv;
    struct sy_policy *pol = NULL;
    const struct sy_experiment *x;
    struct cp_feedback_event *ev = NULL;
    size_t n_ev = 0;
    char *err = NULL;
    cJSON *out;

    if (!cJSON_IsObject(in) || !cJSON_IsString(want) || !want->valuestring[0]) {
        cp_reply_error(req, 400, "invalid_request",
                       "the body must be a JSON object naming the arm: {\"arm\":\"B\"}");
        goto out;
    }
    pol = cp_policies_active_policy(cx->ps, &version);
    x = find_experiment(pol, name);
    if (!x) {
        cJSON *closed = closed_json(cx, name);
        const cJSON *arm_done = cJSON_GetObjectItemCaseSensitive(closed, "promoted_arm");
        if (cJSON_IsString(arm_done))
            cp_reply_error(req, 409, "experiment_closed",
                           "experiment %.100s was already promoted (arm %.100s)", name,
                           arm_done->valuestring);
        else
            cp_reply_error(req, 404, "experiment_not_found",
                           "no experiment %.100s in the active policy (version %" PRId64 ")", name,
                           version);
        cJSON_Delete(closed);
        goto out;
    }
    for (arm = 0; arm < x->n_arms; arm++)
        if (strcmp(x->arms[arm].name, want->valuestring) == 0)
            break;
    if (arm == x->n_arms) {
        cp_reply_error(req, 400, "unknown_arm", "experiment %.100s has no arm %.100s", name,
                       want->valuestring);
        goto out;
    }
    if (load_events(cx, &ev, &n_ev) < 0) {
        cp_reply_error(req, 503, "store_unavailable", "the store cannot be read");
        goto out;
    }
    results = results_json(cx, pol, x, version, ev, n_ev, NULL);
    nv = promote(cx, pol, version, x, arm, results, &err);
    if (nv < 0) {
        cp_reply_error(req,
                       nv == -EINVAL   ? 400
                       : nv == -EAGAIN ? 409
                                       : 503,
                       nv == -EAGAIN ? "conflict" : "promote_failed", "%s", err ? err : "?");
        free(err);
        goto out;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "experiment", name);
    cJSON_AddStringToObject(out, "promoted_arm", x->arms[arm].name);
    cJSON_AddNumberToObject(out, "version", (double)nv);
    cJSON_AddNumberToObject(out, "from_version", (double)version);
    cp_reply_json(req, 200, out);
out:
    cp_feedback_events_free(ev, n_ev);
    sy_policy_unref(pol);
    cJSON_Delete(in);
}

static void on_admin(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_experiments *cx = arg;
    enum sy_http_method m = sy_http_req_method(req);
    const char *slash = strchr(rest, '/');
    char name[300];

    if (!rest[0]) {
        if (m != SY_HTTP_GET) {
            cp_reply_error(req, 405, "method_not_allowed", "use GET on /v1/experiments");
            return;
        }
        handle_list(cx, req);
        return;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(slash ? (size_t)(slash - rest) : strlen(rest)),
             rest);
    if (!slash) {
        if (m != SY_HTTP_GET) {
            cp_reply_error(req, 405, "method_not_allowed", "use GET on /v1/experiments/NAME");
            return;
        }
        handle_get(cx, req, name);
        return;
    }
    if (strcmp(slash, "/promote") == 0) {
        if (m != SY_HTTP_POST) {
            cp_reply_error(req, 405, "method_not_allowed",
                           "use POST on /v1/experiments/NAME/promote");
            return;
        }
        handle_promote(cx, req, name);
        return;
    }
    cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
}

/* stop.auto_promote: promote the winner once the stopping rule names one. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct cp_experiments *cx = arg;
    int64_t version;
    struct sy_policy *pol = cp_policies_active_policy(cx->ps, &version);
    struct cp_feedback_event *ev = NULL;
    size_t n_ev = 0;
    (void)fd;
    (void)what;

    if (cx->is_leader && !cx->is_leader(cx->leader_arg)) {
        sy_policy_unref(pol);
        return;
    }
    if (sy_now_us() >= cx->next_expire_us) {
        size_t deleted = 0;
        int rc = cp_feedback_expire(cx->fb, wall_ms(), &deleted);
        if (rc < 0)
            sy_warn("cannot delete old feedback: %s", strerror(-rc));
        else if (deleted)
            sy_info("deleted %zu feedback records older than %d days", deleted,
                    CP_FEEDBACK_RETENTION_DAYS);
        cx->next_expire_us = sy_now_us() + EXPIRE_EVERY_S * 1000000ull;
    }
    for (size_t i = 0; pol && i < pol->n_experiments; i++) {
        const struct sy_experiment *x = &pol->experiments[i];
        size_t winner = SIZE_MAX;
        char *err = NULL;
        cJSON *results;

        if (!x->auto_promote)
            continue;
        if (!ev && load_events(cx, &ev, &n_ev) < 0)
            break;
        results = results_json(cx, pol, x, version, ev, n_ev, &winner);
        if (winner == SIZE_MAX) {
            cJSON_Delete(results);
            continue;
        }
        if (promote(cx, pol, version, x, winner, results, &err) < 0)
            sy_warn("experiment %s: auto-promotion failed: %s", x->name, err ? err : "?");
        free(err);
        break; /* the active version changed: look again next time */
    }
    cp_feedback_events_free(ev, n_ev);
    sy_policy_unref(pol);
}

struct cp_experiments *cp_experiments_new(struct cp_policies *ps, struct cp_feedback *fb,
                                          struct cp_stats *stats, struct cp_store *store,
                                          struct event_base *base)
{
    struct cp_experiments *cx = sy_xcalloc(1, sizeof(*cx));
    struct timeval tv = {AUTO_PROMOTE_EVERY_S, 0};

    cx->ps = ps;
    cx->fb = fb;
    cx->stats = stats;
    cx->store = store;
    cx->timer = event_new(base, -1, EV_PERSIST, on_timer, cx);
    if (cx->timer)
        event_add(cx->timer, &tv);
    return cx;
}

void cp_experiments_free(struct cp_experiments *cx)
{
    if (!cx)
        return;
    if (cx->timer)
        event_free(cx->timer);
    free(cx);
}

void cp_experiments_set_leader(struct cp_experiments *cx, bool (*fn)(void *arg), void *arg)
{
    cx->is_leader = fn;
    cx->leader_arg = arg;
}

int cp_experiments_register(struct cp_experiments *cx, struct cp_admin *admin)
{
    return cp_admin_add_route(admin, "/v1/experiments", on_admin, cx);
}
