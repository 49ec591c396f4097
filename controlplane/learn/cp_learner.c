/* controlplane/learn/cp_learner.c - learned routing: the decision, the learner's thread, and
 * the operator's controls (GET /v1/learn, POST /v1/learn/{freeze,unfreeze,rollback}).
 *
 * The thread wakes every CP_LEARN_TICK_MS. Each round it campaigns for CP_LEARN_LEADER_KEY;
 * only the leader goes on. It reads the learner state (CP_LEARN_STATE_KEY) and, for every
 * learned route of the active policy that is not frozen and whose update_period_s has
 * passed since it was last evaluated, builds the posteriors from the stored feedback, reads
 * cost and latency from this replica's stats, and decides. A route whose shares moved gets
 * a new policy version: the active version's compiled policy with only that route's
 * weights replaced, stored staged, then activated only while the version it was built from
 * is still active and learning is still not frozen (cp_policies_activate_if); otherwise the
 * round is skipped and the route retried on the next tick, on whatever is active then. One
 * version per round at most: the next due route waits one tick for the new active version.
 *
 * The state in the store (JSON):
 *   {"frozen":false,"frozen_routes":["smart"],
 *    "routes":{"smart":{"evaluated_unix_ms","evaluated_version","outcome","message",
 *                       "models":[{"model","a","b","n","cost_usd","latency_ms","share"}],
 *                       "updated_unix_ms","version","from_version","by"}}}
 * Every write is a compare-and-swap on what was read (retried), so the operator's freeze
 * through any replica and the leader's bookkeeping never overwrite each other. A new leader
 * reads it to know when each route was last evaluated and what is frozen; it recomputes
 * the posteriors from the feedback, which is in the store too.
 *
 * Ownership: the thread owns everything it allocates per round; the admin handlers own
 * theirs per request. Shared: <stopping>, <leading> (atomics) and the borrowed deps.
 */
#define SY_LOG_MODULE "learn"

#include "cp_learner.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "cp_admin.h"
#include "cp_feedback.h"
#include "cp_policies.h"
#include "cp_reply.h"
#include "cp_stats.h"
#include "cp_store.h"
#include "sy_http.h"
#include "sy_log.h"
#include "sy_policy.h"
#include "sy_reqid.h"
#include "sy_util.h"

#define CP_LEARN_NOTE_MAX 4000   /* bytes of a note before it is cut */
#define CP_LEARN_STATE_TRIES 16  /* compare-and-swap attempts on the state */
#define CP_LEARN_MAX_CHAIN 10000 /* learned versions followed back by a rollback */

/* ---- the decision ------------------------------------------------------------------------ */

int cp_learn_posterior(const struct cp_learn_obs *obs, size_t n, double period_s, double discount,
                       struct cp_learn_posterior *out)
{
    double lg;

    if (!(period_s > 0) || !(discount > 0 && discount <= 1))
        return -EINVAL;
    lg = log(discount);
    out->a = CP_BANDIT_PRIOR_A;
    out->b = CP_BANDIT_PRIOR_B;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        double v = obs[i].value, age = obs[i].age_s > 0 ? obs[i].age_s : 0, w;

        if (!(v >= 0 && v <= 1))
            continue;
        w = discount == 1 ? 1 : exp(lg * age / period_s);
        out->a += w * v;
        out->b += w * (1 - v);
        out->n += w;
    }
    return 0;
}

double cp_learn_horizon_s(double period_s, double discount)
{
    if (discount >= 1)
        return INFINITY;
    if (discount <= 0)
        return 0;
    return period_s * log(CP_LEARN_HORIZON_WEIGHT) / log(discount);
}

/* Observations behind a posterior, as cp_bandit counts them (whole, rounded down). */
static uint64_t samples_of(const struct cp_learn_posterior *p)
{
    return p->n > 0 ? (uint64_t)floor(p->n + 1e-9) : 0;
}

int cp_learn_decide(const struct sy_learn *k, const struct cp_learn_arm *arms,
                    const uint32_t *weights, size_t n, uint64_t seed, struct cp_learn_decision *out)
{
    struct cp_arm ca[CP_BANDIT_MAX_ARMS];
    double cur[CP_BANDIT_MAX_ARMS];
    struct cp_alloc_params p;
    struct cp_rng rng;
    uint64_t total = 0;
    bool all_under = true, same = true;
    int rc;

    if (n == 0 || n > CP_BANDIT_MAX_ARMS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    if (total == 0)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        cur[i] = (double)weights[i] / (double)total;
        out->shares[i] = cur[i];
        ca[i] = (struct cp_arm){.a = arms[i].post.a,
                                .b = arms[i].post.b,
                                .cost_usd = arms[i].cost_usd,
                                .latency_ms = arms[i].latency_ms,
                                .samples = samples_of(&arms[i].post)};
        if (ca[i].samples >= k->min_samples)
            all_under = false;
    }
    /* With no evidence anywhere, there is nothing to learn from: the operator's weights stay
     * (cp_alloc_bound would otherwise pull them to uniform). */
    if (all_under) {
        out->outcome = CP_LEARN_WAITING;
        return 0;
    }
    p = (struct cp_alloc_params){
        .weights = {.quality = k->w_quality, .cost = k->w_cost, .latency = k->w_latency},
        .draws = CP_LEARN_DRAWS,
        .min_samples = k->min_samples,
        .floor = k->exploration,
        .max_step = k->max_step,
    };
    cp_rng_seed(&rng, seed);
    rc = cp_alloc_compute(ca, n, &p, cur, &rng, out->shares);
    if (rc < 0)
        return rc;
    if (!cp_alloc_changed(cur, out->shares, n, k->threshold)) {
        out->outcome = CP_LEARN_STEADY;
        return 0;
    }
    rc = cp_shares_to_weights(out->shares, n, CP_LEARN_TOTAL_WEIGHT, out->weights);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((uint64_t)out->weights[i] * total != (uint64_t)weights[i] * CP_LEARN_TOTAL_WEIGHT)
            same = false;
    }
    out->outcome = same ? CP_LEARN_STEADY : CP_LEARN_MOVE;
    return 0;
}

uint64_t cp_learn_seed(int64_t version, const char *route)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over the name, then mixed with the version */

    for (const unsigned char *p = (const unsigned char *)route; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h ^ ((uint64_t)version * 0x9e3779b97f4a7c15ull);
}

char *cp_learn_note(const char *route, int64_t from_version, const char *const *models,
                    const struct cp_learn_arm *arms, const uint32_t *weights, size_t n)
{
    char *note = sy_xasprintf(CP_LEARN_NOTE_PREFIX "route %s from version %" PRId64 ":", route,
                              from_version);

    for (size_t i = 0; i < n; i++) {
        const struct cp_learn_posterior *p = &arms[i].post;
        char *next =
            sy_xasprintf("%s%s %s %.1f%% (up %.2f, n %.0f)", note, i ? "," : "", models[i],
                         100.0 * weights[i] / CP_LEARN_TOTAL_WEIGHT, p->a / (p->a + p->b), p->n);
        free(note);
        note = next;
        if (strlen(note) > CP_LEARN_NOTE_MAX) {
            memcpy(note + CP_LEARN_NOTE_MAX - 3, "...", 4);
            break;
        }
    }
    return note;
}

bool cp_learn_note_parse(const char *note, int64_t *from_version)
{
    const char *p;
    char *end;
    long long v;

    if (from_version)
        *from_version = 0;
    if (!note || strncmp(note, CP_LEARN_NOTE_PREFIX, strlen(CP_LEARN_NOTE_PREFIX)) != 0)
        return false;
    /* The first " from version N:" after the route's name. */
    for (p = strstr(note, " from version "); p; p = strstr(p + 1, " from version ")) {
        const char *digits = p + strlen(" from version ");

        if (*digits < '0' || *digits > '9')
            continue;
        errno = 0;
        v = strtoll(digits, &end, 10);
        if (errno == 0 && *end == ':' && v > 0) {
            if (from_version)
                *from_version = v;
            break;
        }
    }
    return true;
}

bool cp_learn_note_is_route(const char *note, const char *route)
{
    static const char head[] = CP_LEARN_NOTE_PREFIX "route ";
    size_t len = strlen(route);

    return note && strncmp(note, head, sizeof(head) - 1) == 0 &&
           strncmp(note + sizeof(head) - 1, route, len) == 0 &&
           strncmp(note + sizeof(head) - 1 + len, " from version ", 14) == 0;
}

/* The object of route <name> in the canonical policy <root>, or NULL. */
static cJSON *find_route_json(const cJSON *root, const char *name)
{
    const cJSON *r;

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(root, "routes"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(r, "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0)
            return (cJSON *)r;
    }
    return NULL;
}

char *cp_learn_set_weights(const char *compiled, const char *route, const char *const *models,
                           const uint32_t *weights, size_t n, char **errmsg)
{
    cJSON *root = cJSON_Parse(compiled), *rt, *t;
    size_t seen = 0;
    char *out = NULL;

    if (!root) {
        *errmsg = sy_xstrdup("the compiled policy is not JSON");
        return NULL;
    }
    rt = find_route_json(root, route);
    if (!rt) {
        *errmsg = sy_xasprintf("the policy has no route \"%s\"", route);
        goto out_free;
    }
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(rt, "targets"))
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(t, "model");
        size_t i;

        for (i = 0; i < n && cJSON_IsString(m); i++) {
            if (strcmp(models[i], m->valuestring) == 0)
                break;
        }
        if (!cJSON_IsString(m) || i == n) {
            *errmsg = sy_xasprintf("route \"%s\": target %s is not one the learner weighed", route,
                                   cJSON_IsString(m) ? m->valuestring : "(no model)");
            goto out_free;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(t, "weight");
        cJSON_AddNumberToObject(t, "weight", weights[i]);
        seen++;
    }
    if (seen != n) {
        *errmsg =
            sy_xasprintf("route \"%s\" has %zu targets, the learner weighed %zu", route, seen, n);
        goto out_free;
    }
    out = cJSON_PrintUnformatted(root);
    if (!out)
        *errmsg = sy_xstrdup("out of memory");

out_free:
    cJSON_Delete(root);
    return out;
}

/* ---- the learner's state in the store ---------------------------------------------------- */

static int64_t wall_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

static double jnum(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Reads the state: *root (caller frees; an empty object when there is none yet) and its
 * *rev (0 when absent). Returns 0, -EIO when the stored value is not a JSON object (then
 * nothing must act on it), or the store's -errno. */
static int state_load(struct cp_store *store, cJSON **root, int64_t *rev)
{
    struct cp_kv *kv = NULL;
    int rc = cp_store_get(store, CP_LEARN_STATE_KEY, &kv);

    *root = NULL;
    *rev = 0;
    if (rc == -ENOENT) {
        *root = cJSON_CreateObject();
        return 0;
    }
    if (rc < 0)
        return rc;
    *root = cJSON_ParseWithLength(kv->value, kv->value_len);
    *rev = kv->mod_revision;
    cp_kv_free(kv);
    if (!cJSON_IsObject(*root)) {
        sy_error("%s in the store is not a JSON object; learning is paused until it is "
                 "repaired or deleted",
                 CP_LEARN_STATE_KEY);
        cJSON_Delete(*root);
        *root = NULL;
        return -EIO;
    }
    return 0;
}

/* Changes the state in place; returns false when there is nothing to write. */
typedef bool (*state_edit_fn)(cJSON *root, void *arg);

/* Read, edit, compare-and-swap, retried when another writer went first. *out (may be NULL)
 * receives the state as written (or as read when <edit> changed nothing). Returns 0,
 * -EAGAIN after CP_LEARN_STATE_TRIES lost races, or -errno. */
static int state_update(struct cp_store *store, state_edit_fn edit, void *arg, cJSON **out)
{
    int rc = -EAGAIN;

    if (out)
        *out = NULL;
    for (int tries = 0; tries < CP_LEARN_STATE_TRIES; tries++) {
        cJSON *root;
        int64_t rev;
        char *text;

        rc = state_load(store, &root, &rev);
        if (rc < 0)
            return rc;
        if (!edit(root, arg)) {
            rc = 0;
        } else {
            text = cJSON_PrintUnformatted(root);
            rc = text ? cp_store_cas(store, CP_LEARN_STATE_KEY, text, strlen(text), rev, NULL)
                      : -ENOMEM;
            free(text);
        }
        if (rc == 0 && out)
            *out = root;
        else
            cJSON_Delete(root);
        if (rc != -EEXIST)
            return rc;
        rc = -EAGAIN;
    }
    return rc;
}

static bool name_in(const cJSON *arr, const char *name)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
            return true;
    }
    return false;
}

/* Is learning frozen for <route> in <state>? */
static bool state_frozen(const cJSON *state, const char *route)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "frozen")) ||
           name_in(cJSON_GetObjectItemCaseSensitive(state, "frozen_routes"), route);
}

/* The "routes" object of <state>, created when missing. */
static cJSON *state_routes(cJSON *state)
{
    cJSON *r = cJSON_GetObjectItemCaseSensitive(state, "routes");

    if (!cJSON_IsObject(r)) {
        cJSON_DeleteItemFromObjectCaseSensitive(state, "routes");
        r = cJSON_AddObjectToObject(state, "routes");
    }
    return r;
}

/* ---- the service ------------------------------------------------------------------------- */

struct cp_learner {
    struct cp_policies *ps;
    struct cp_feedback *fb;
    struct cp_stats *stats;
    struct cp_store *store;
    char *id;

    pthread_t thread;
    bool started;
    atomic_bool stopping;
    atomic_bool leading;  /* at the last round */
    pthread_mutex_t lock; /* with cond: the tick's sleep */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; signalled to stop */
    bool was_leading;     /* the thread's own: for the log line on a change */
};

/* One learned route being evaluated this round. */
struct eval {
    const struct sy_route *rt;
    size_t n;
    const char *models[CP_BANDIT_MAX_ARMS];
    uint32_t cur[CP_BANDIT_MAX_ARMS];
    struct cp_learn_arm arms[CP_BANDIT_MAX_ARMS];
    struct cp_learn_decision dec;
    const char *outcome; /* "moved", "steady", "waiting", "raced", "frozen", "error" */
    char *message;       /* heap */
    int64_t pushed;      /* the version pushed and activated, 0 = none */
    bool advance;        /* record this evaluation's time (not after a race) */
};

/* Does feedback event <e> count for target <model> of route <route>? Only feedback on the
 * learner's own metric (the default one or "thumbs_up"), and never experiment traffic. */
static bool event_counts(const struct cp_feedback_event *e, const char *route, const char *model)
{
    return strcmp(e->route, route) == 0 && strcmp(e->model, model) == 0 && !e->experiment[0] &&
           (!e->metric[0] || strcmp(e->metric, "thumbs_up") == 0);
}

/* Fills <ev> for route <rt> of <pol>: posteriors from <events>, cost and latency from the
 * stats, and the decision. Returns 0, or -EINVAL with ev->message set. */
static int evaluate(struct cp_learner *l, const struct sy_policy *pol, const struct sy_route *rt,
                    const struct cp_feedback_event *events, size_t n_events, int64_t now_ms,
                    int64_t version, struct eval *ev)
{
    struct cp_learn_obs *obs = NULL;
    size_t cap = 0;
    int rc = 0;

    ev->rt = rt;
    if (rt->n_targets > CP_BANDIT_MAX_ARMS) {
        ev->message = sy_xasprintf("route %s has %zu targets; the learner handles at most %d",
                                   rt->name, rt->n_targets, CP_BANDIT_MAX_ARMS);
        return -EINVAL;
    }
    ev->n = rt->n_targets;
    for (size_t i = 0; i < ev->n; i++) {
        const char *model = pol->models[rt->targets[i].model].name;
        struct cp_stats_filter f = {.route = rt->name, .model = model};
        struct cp_stats_summary sum;
        size_t k = 0;

        ev->models[i] = model;
        ev->cur[i] = rt->targets[i].weight;
        for (size_t e = 0; e < n_events; e++) {
            if (!event_counts(&events[e], rt->name, model))
                continue;
            if (k == cap) {
                cap = cap ? cap * 2 : 64;
                obs = sy_xrealloc(obs, cap * sizeof(*obs));
            }
            obs[k].value = events[e].value;
            obs[k].age_s = (double)now_ms / 1000.0 - (double)events[e].issued_unix_s;
            k++;
        }
        rc = cp_learn_posterior(obs, k, rt->learn.update_period_s, rt->learn.discount,
                                &ev->arms[i].post);
        if (rc < 0)
            break;
        cp_stats_summary(l->stats, &f, CP_WINDOW_1H, now_ms, &sum);
        ev->arms[i].cost_usd =
            sum.requests ? (double)sum.cost_nusd / 1e9 / (double)sum.requests : 0;
        ev->arms[i].latency_ms = sum.latency_p50_ms;
    }
    free(obs);
    if (rc == 0)
        rc = cp_learn_decide(&rt->learn, ev->arms, ev->cur, ev->n, cp_learn_seed(version, rt->name),
                             &ev->dec);
    if (rc < 0)
        ev->message = sy_xasprintf("route %s: the allocation failed: %s", rt->name, strerror(-rc));
    return rc;
}

/* Pushes the decision of <ev> as a new version built from the active version <a> and
 * activates it while <a> is still active and the route still not frozen. Sets
 * ev->outcome, ev->message, ev->pushed. */
static void publish(struct cp_learner *l, const struct cp_active *a, struct eval *ev)
{
    struct cp_version *ver = NULL;
    char *json = NULL, *note = NULL, *err = NULL;
    cJSON *state = NULL;
    int64_t v, rev;
    bool activated;
    int rc;

    rc = cp_policies_get(l->ps, a->version, &ver);
    if (rc < 0) {
        ev->outcome = "error";
        ev->message =
            sy_xasprintf("cannot read version %" PRId64 ": %s", a->version, strerror(-rc));
        return;
    }
    json =
        cp_learn_set_weights(ver->compiled, ev->rt->name, ev->models, ev->dec.weights, ev->n, &err);
    if (!json) {
        ev->outcome = "error";
        ev->message = sy_xasprintf("version %" PRId64 ": %s", a->version, err);
        goto out_free;
    }
    note = cp_learn_note(ev->rt->name, a->version, ev->models, ev->arms, ev->dec.weights, ev->n);
    if (cp_policies_active_version(l->ps) != a->version) {
        ev->outcome = "raced";
        ev->message = sy_xasprintf("version %" PRId64 " stopped being active during the update; "
                                   "the next round starts from the new one",
                                   a->version);
        goto out_free;
    }
    /* Staged first: activated below only if nothing changed meanwhile. */
    v = cp_policies_push(l->ps, json, strlen(json), note, false, &activated, &err);
    if (v < 0) {
        ev->outcome = "error";
        ev->message = sy_xasprintf("cannot store the learned version: %s", err ? err : "?");
        goto out_free;
    }
    /* An operator may have frozen learning (through any replica) while this was built. */
    if (state_load(l->store, &state, &rev) < 0 || state_frozen(state, ev->rt->name)) {
        ev->outcome = "frozen";
        ev->message = sy_xasprintf(
            "learning was frozen while version %" PRId64 " was built; it is left staged", v);
        sy_info("route %s: %s", ev->rt->name, ev->message);
        goto out_free;
    }
    v = cp_policies_activate_if(l->ps, v, a->version, &err);
    if (v == -EAGAIN) {
        ev->outcome = "raced";
        ev->message = sy_xasprintf("another version replaced version %" PRId64
                                   " during the update; the learned one is left staged and "
                                   "the next round starts from the new one",
                                   a->version);
        sy_info("route %s: %s", ev->rt->name, ev->message);
        goto out_free;
    }
    if (v < 0) {
        ev->outcome = "error";
        ev->message = sy_xasprintf("cannot activate the learned version: %s", err ? err : "?");
        goto out_free;
    }
    ev->outcome = "moved";
    ev->pushed = v;
    ev->message = note;
    note = NULL;
    sy_info("version %" PRId64 " is active: %s", v, ev->message);

out_free:
    cJSON_Delete(state);
    free(err);
    free(note);
    free(json);
    cp_version_free(ver);
}

/* The state entry of one evaluation. */
static cJSON *eval_entry(const struct cp_learner *l, const struct eval *ev, int64_t now_ms,
                         int64_t version)
{
    cJSON *o = cJSON_CreateObject(), *models;

    if (ev->advance) {
        cJSON_AddNumberToObject(o, "evaluated_unix_ms", (double)now_ms);
        cJSON_AddNumberToObject(o, "evaluated_version", (double)version);
    }
    cJSON_AddStringToObject(o, "outcome", ev->outcome);
    cJSON_AddStringToObject(o, "message", ev->message ? ev->message : "");
    models = cJSON_AddArrayToObject(o, "models");
    for (size_t i = 0; i < ev->n && ev->models[i]; i++) {
        cJSON *m = cJSON_CreateObject();

        cJSON_AddStringToObject(m, "model", ev->models[i]);
        cJSON_AddNumberToObject(m, "a", ev->arms[i].post.a);
        cJSON_AddNumberToObject(m, "b", ev->arms[i].post.b);
        cJSON_AddNumberToObject(m, "n", ev->arms[i].post.n);
        cJSON_AddNumberToObject(m, "cost_usd", ev->arms[i].cost_usd);
        cJSON_AddNumberToObject(m, "latency_ms", ev->arms[i].latency_ms);
        cJSON_AddNumberToObject(m, "share", ev->dec.shares[i]);
        cJSON_AddItemToArray(models, m);
    }
    if (ev->pushed > 0) {
        cJSON_AddNumberToObject(o, "updated_unix_ms", (double)now_ms);
        cJSON_AddNumberToObject(o, "version", (double)ev->pushed);
        cJSON_AddNumberToObject(o, "from_version", (double)version);
        cJSON_AddStringToObject(o, "by", l->id);
    }
    return o;
}

struct record_arg {
    const char *const *names;
    cJSON **entries; /* copied by the edit */
    size_t n;
    const struct sy_policy *pol; /* routes that are no longer learned ones are dropped */
};

/* Is <name> a learned route of <pol>? */
static bool learned_in(const struct sy_policy *pol, const char *name)
{
    for (size_t i = 0; i < pol->n_routes; i++) {
        if (pol->routes[i].strategy == SY_STRATEGY_LEARNED &&
            strcmp(pol->routes[i].name, name) == 0)
            return true;
    }
    return false;
}

/* Writes each evaluation's entry; keeps what the previous entry knew that this one does not
 * (the last update, and the last evaluation time after a race). Entries of routes the
 * active policy no longer learns go, so the state does not grow with every route ever
 * learned. */
static bool record_edit(cJSON *root, void *arg)
{
    static const char *const carried[] = {"evaluated_unix_ms", "evaluated_version",
                                          "updated_unix_ms",   "version",
                                          "from_version",      "by"};
    struct record_arg *ra = arg;
    cJSON *routes = state_routes(root);

    for (size_t i = 0; i < ra->n; i++) {
        cJSON *e = cJSON_Duplicate(ra->entries[i], true);
        const cJSON *prev = cJSON_GetObjectItemCaseSensitive(routes, ra->names[i]);

        for (size_t k = 0; k < SY_ARRAY_LEN(carried); k++) {
            const cJSON *pv = cJSON_GetObjectItemCaseSensitive(prev, carried[k]);
            if (pv && !cJSON_GetObjectItemCaseSensitive(e, carried[k]))
                cJSON_AddItemToObject(e, carried[k], cJSON_Duplicate(pv, true));
        }
        cJSON_DeleteItemFromObjectCaseSensitive(routes, ra->names[i]);
        cJSON_AddItemToObject(routes, ra->names[i], e);
    }
    for (cJSON *r = routes->child, *next; r; r = next) {
        next = r->next;
        if (!learned_in(ra->pol, r->string))
            cJSON_Delete(cJSON_DetachItemViaPointer(routes, r));
    }
    return true;
}

/* Is learned route <rt> due at <now_ms> by <state>? */
static bool route_due(const cJSON *state, const struct sy_route *rt, int64_t now_ms)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(state, "routes"), rt->name);
    double last = jnum(e, "evaluated_unix_ms", 0);

    /* A clock that went back more than a period counts as due too. */
    return last <= 0 || (double)now_ms - last >= (double)rt->learn.update_period_s * 1000.0 ||
           (double)now_ms < last - (double)rt->learn.update_period_s * 1000.0;
}

/* One leader's round on the active version <a>. */
static void learn_round(struct cp_learner *l, const struct cp_active *a)
{
    struct sy_policy *pol;
    struct cp_feedback_event *events = NULL;
    size_t n_events = 0, n_due = 0;
    struct eval *evs = NULL;
    const char **names = NULL;
    cJSON **entries = NULL, *state = NULL;
    struct record_arg ra;
    int64_t now_ms = wall_ms(), rev;
    double horizon = 0;
    int rc;

    pol = sy_policy_ref(a->policy);
    if (state_load(l->store, &state, &rev) < 0)
        goto out_free;
    evs = sy_xcalloc(pol->n_routes ? pol->n_routes : 1, sizeof(*evs));
    for (size_t i = 0; i < pol->n_routes; i++) {
        const struct sy_route *rt = &pol->routes[i];
        double h;

        if (rt->strategy != SY_STRATEGY_LEARNED || state_frozen(state, rt->name) ||
            !route_due(state, rt, now_ms))
            continue;
        evs[n_due++].rt = rt;
        h = cp_learn_horizon_s(rt->learn.update_period_s, rt->learn.discount);
        if (h > horizon)
            horizon = h;
    }
    if (n_due == 0)
        goto out_free;

    /* Feedback is accepted for SY_REQID_TTL_S after the answer: nothing older exists. */
    if (!(horizon < SY_REQID_TTL_S))
        horizon = SY_REQID_TTL_S;
    rc = cp_feedback_events(l->fb, now_ms / 1000 - (int64_t)ceil(horizon), now_ms, &events,
                            &n_events);
    if (rc < 0) {
        sy_warn("cannot read feedback from the store: %s; retrying next round", strerror(-rc));
        goto out_free;
    }
    names = sy_xcalloc(n_due, sizeof(*names));
    entries = sy_xcalloc(n_due, sizeof(*entries));
    for (size_t i = 0; i < n_due; i++) {
        struct eval *ev = &evs[i];
        const struct sy_route *rt = ev->rt;

        ev->advance = true;
        if (evaluate(l, pol, rt, events, n_events, now_ms, a->version, ev) < 0) {
            ev->outcome = "error";
            sy_error("%s", ev->message);
        } else if (ev->dec.outcome == CP_LEARN_WAITING) {
            ev->outcome = "waiting";
            ev->message = sy_xasprintf("every target has less feedback than min_samples (%u): "
                                       "the weights stay",
                                       rt->learn.min_samples);
        } else if (ev->dec.outcome == CP_LEARN_STEADY) {
            ev->outcome = "steady";
            ev->message = sy_xasprintf("no share would move by more than the threshold (%g)",
                                       rt->learn.threshold);
        } else {
            publish(l, a, ev);
            ev->advance = strcmp(ev->outcome, "raced") != 0;
        }
        sy_debug("route %s: %s: %s", rt->name, ev->outcome, ev->message ? ev->message : "");
        names[i] = rt->name;
        entries[i] = eval_entry(l, ev, now_ms, a->version);
        if (strcmp(ev->outcome, "moved") == 0 || strcmp(ev->outcome, "raced") == 0) {
            n_due = i + 1; /* the policy changed: the other routes wait for the next tick */
            break;
        }
    }
    ra = (struct record_arg){.names = names, .entries = entries, .n = n_due, .pol = pol};
    rc = state_update(l->store, record_edit, &ra, NULL);
    if (rc < 0)
        sy_warn("cannot write the learner state: %s", strerror(-rc));

out_free:
    for (size_t i = 0; entries && i < n_due; i++)
        cJSON_Delete(entries[i]);
    for (size_t i = 0; evs && i < n_due; i++)
        free(evs[i].message);
    free(entries);
    free(names);
    free(evs);
    cp_feedback_events_free(events, n_events);
    cJSON_Delete(state);
    sy_policy_unref(pol);
}

static void round_once(struct cp_learner *l)
{
    struct cp_active *a;
    bool leader = false;
    int rc;

    rc = cp_store_campaign(l->store, CP_LEARN_LEADER_KEY, l->id, CP_LEARN_LEADER_TTL_S, &leader);
    if (rc < 0)
        sy_debug("campaign: %s", strerror(-rc));
    atomic_store(&l->leading, leader);
    if (leader != l->was_leading)
        sy_info("%s", leader ? "this replica leads: learned routes are updated here"
                             : "this replica no longer leads learning");
    l->was_leading = leader;
    if (!leader)
        return;
    a = cp_policies_active(l->ps);
    if (!a)
        return;
    learn_round(l, a);
    cp_active_unref(a);
}

static void *run(void *arg)
{
    struct cp_learner *l = arg;

    while (!atomic_load(&l->stopping)) {
        struct timespec ts;

        round_once(l);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += CP_LEARN_TICK_MS / 1000;
        ts.tv_nsec += (long)(CP_LEARN_TICK_MS % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&l->lock);
        if (!atomic_load(&l->stopping))
            pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

struct cp_learner *cp_learner_new(const struct cp_learner_deps *deps)
{
    struct cp_learner *l = sy_xcalloc(1, sizeof(*l));
    pthread_condattr_t ca;

    l->ps = deps->policies;
    l->fb = deps->feedback;
    l->stats = deps->stats;
    l->store = deps->store;
    l->id = sy_xstrdup(deps->id);
    atomic_init(&l->stopping, false);
    atomic_init(&l->leading, false);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    return l;
}

int cp_learner_start(struct cp_learner *l)
{
    int rc = pthread_create(&l->thread, NULL, run, l);

    if (rc != 0)
        return -rc;
    l->started = true;
    return 0;
}

void cp_learner_free(struct cp_learner *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        atomic_store(&l->stopping, true);
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
        /* A successor need not wait for our lease to run out. */
        if (l->was_leading)
            cp_store_resign(l->store, CP_LEARN_LEADER_KEY);
    }
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l->id);
    free(l);
}

bool cp_learner_is_leader(struct cp_learner *l)
{
    return atomic_load(&l->leading);
}

/* ---- GET /v1/learn ------------------------------------------------------------------------ */

static void add_num_or_null(cJSON *o, const char *key, double v, bool present)
{
    if (present)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* The posterior of <model> from the state entry <e> as {mean, ci95, n, a, b}, or null. */
static cJSON *posterior_json(const cJSON *e, const char *model, const cJSON **mrow)
{
    const cJSON *m;

    *mrow = NULL;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(e, "models"))
    {
        const char *name = jstr(m, "model");
        double a = jnum(m, "a", 0), b = jnum(m, "b", 0), lo, hi;
        cJSON *p, *ci;

        if (!name || strcmp(name, model) != 0)
            continue;
        *mrow = m;
        if (cp_beta_ci95(a, b, &lo, &hi) < 0)
            return cJSON_CreateNull();
        p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "mean", cp_beta_mean(a, b));
        ci = cJSON_AddArrayToObject(p, "ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(lo));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(hi));
        cJSON_AddNumberToObject(p, "n", jnum(m, "n", 0));
        cJSON_AddNumberToObject(p, "a", a);
        cJSON_AddNumberToObject(p, "b", b);
        return p;
    }
    return cJSON_CreateNull();
}

static cJSON *route_status(const struct sy_policy *pol, const struct sy_route *rt,
                           const cJSON *state)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(state, "routes"), rt->name);
    const struct sy_learn *k = &rt->learn;
    cJSON *o = cJSON_CreateObject(), *obj, *targets;
    double evaluated = jnum(e, "evaluated_unix_ms", 0), updated = jnum(e, "updated_unix_ms", 0);
    bool frozen = state_frozen(state, rt->name);
    const char *s;

    cJSON_AddStringToObject(o, "route", rt->name);
    cJSON_AddBoolToObject(o, "frozen", frozen);
    obj = cJSON_AddObjectToObject(o, "objective");
    cJSON_AddNumberToObject(obj, "quality", k->w_quality);
    cJSON_AddNumberToObject(obj, "cost", k->w_cost);
    cJSON_AddNumberToObject(obj, "latency", k->w_latency);
    cJSON_AddNumberToObject(o, "update_period_s", k->update_period_s);
    cJSON_AddNumberToObject(o, "exploration", k->exploration);
    cJSON_AddNumberToObject(o, "max_step", k->max_step);
    cJSON_AddNumberToObject(o, "min_samples", k->min_samples);
    cJSON_AddNumberToObject(o, "threshold", k->threshold);
    cJSON_AddNumberToObject(o, "discount", k->discount);
    add_num_or_null(o, "last_evaluated_unix_ms", evaluated, evaluated > 0);
    add_num_or_null(o, "next_update_unix_ms", evaluated + k->update_period_s * 1000.0,
                    evaluated > 0 && !frozen);
    s = jstr(e, "outcome");
    if (s)
        cJSON_AddStringToObject(o, "last_outcome", s);
    else
        cJSON_AddNullToObject(o, "last_outcome");
    s = jstr(e, "message");
    if (s)
        cJSON_AddStringToObject(o, "last_message", s);
    else
        cJSON_AddNullToObject(o, "last_message");
    add_num_or_null(o, "last_update_unix_ms", updated, updated > 0);
    add_num_or_null(o, "last_version", jnum(e, "version", 0), jnum(e, "version", 0) > 0);
    s = jstr(e, "by");
    if (s)
        cJSON_AddStringToObject(o, "last_update_by", s);
    else
        cJSON_AddNullToObject(o, "last_update_by");
    targets = cJSON_AddArrayToObject(o, "targets");
    for (size_t i = 0; i < rt->n_targets; i++) {
        const char *model = pol->models[rt->targets[i].model].name;
        cJSON *t = cJSON_CreateObject();
        const cJSON *mrow;

        cJSON_AddStringToObject(t, "model", model);
        cJSON_AddNumberToObject(t, "weight", rt->targets[i].weight);
        cJSON_AddNumberToObject(
            t, "share",
            rt->total_weight ? (double)rt->targets[i].weight / (double)rt->total_weight : 0);
        cJSON_AddItemToObject(t, "posterior", posterior_json(e, model, &mrow));
        add_num_or_null(t, "cost_usd", jnum(mrow, "cost_usd", 0), mrow != NULL);
        add_num_or_null(t, "latency_ms", jnum(mrow, "latency_ms", 0), mrow != NULL);
        add_num_or_null(t, "computed_share", jnum(mrow, "share", 0), mrow != NULL);
        cJSON_AddItemToArray(targets, t);
    }
    return o;
}

cJSON *cp_learner_status_json(struct cp_learner *l, int *status, char **errmsg)
{
    struct sy_policy *pol;
    struct cp_kv *kv = NULL;
    cJSON *root, *state = NULL, *routes, *fr;
    int64_t version, rev;
    int rc;

    rc = state_load(l->store, &state, &rev);
    if (rc < 0) {
        *status = 503;
        *errmsg = sy_xasprintf("cannot read the learner state: %s", strerror(-rc));
        return NULL;
    }
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", l->id);
    rc = cp_store_get(l->store, CP_LEARN_LEADER_KEY, &kv);
    if (rc == 0)
        cJSON_AddStringToObject(root, "leader", kv->value);
    else
        cJSON_AddNullToObject(root, "leader");
    cp_kv_free(kv);
    cJSON_AddBoolToObject(root, "is_leader", cp_learner_is_leader(l));
    cJSON_AddBoolToObject(root, "frozen",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "frozen")));
    fr = cJSON_GetObjectItemCaseSensitive(state, "frozen_routes");
    cJSON_AddItemToObject(root, "frozen_routes",
                          cJSON_IsArray(fr) ? cJSON_Duplicate(fr, true) : cJSON_CreateArray());
    pol = cp_policies_active_policy(l->ps, &version);
    add_num_or_null(root, "active_version", (double)version, version > 0);
    routes = cJSON_AddArrayToObject(root, "routes");
    for (size_t i = 0; pol && i < pol->n_routes; i++) {
        if (pol->routes[i].strategy == SY_STRATEGY_LEARNED)
            cJSON_AddItemToArray(routes, route_status(pol, &pol->routes[i], state));
    }
    sy_policy_unref(pol);
    cJSON_Delete(state);
    *status = 200;
    return root;
}

/* ---- POST /v1/learn/freeze, /unfreeze ------------------------------------------------------ */

struct freeze_arg {
    const char *route; /* NULL = all */
    bool freeze;
    const char **learned; /* unfreezing one route out of "all frozen": the others */
    size_t n_learned;
};

static void remove_name(cJSON *arr, const char *name)
{
    for (int i = cJSON_GetArraySize(arr) - 1; i >= 0; i--) {
        const cJSON *it = cJSON_GetArrayItem(arr, i);
        if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
            cJSON_DeleteItemFromArray(arr, i);
    }
}

static bool freeze_edit(cJSON *root, void *arg)
{
    const struct freeze_arg *fa = arg;
    cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "frozen_routes");
    bool all = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "frozen"));

    if (!cJSON_IsArray(list)) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "frozen_routes");
        list = cJSON_AddArrayToObject(root, "frozen_routes");
    }
    if (!fa->route) {
        /* Everything: one flag; unfreezing everything also clears the per-route list. */
        cJSON_DeleteItemFromObjectCaseSensitive(root, "frozen");
        cJSON_AddBoolToObject(root, "frozen", fa->freeze);
        if (!fa->freeze) {
            cJSON_DeleteItemFromObjectCaseSensitive(root, "frozen_routes");
            cJSON_AddArrayToObject(root, "frozen_routes");
        }
        return true;
    }
    if (fa->freeze) {
        if (!name_in(list, fa->route))
            cJSON_AddItemToArray(list, cJSON_CreateString(fa->route));
        return true;
    }
    if (all) {
        /* One route out of "everything frozen": the others stay frozen by name. */
        cJSON_DeleteItemFromObjectCaseSensitive(root, "frozen");
        cJSON_AddFalseToObject(root, "frozen");
        for (size_t i = 0; i < fa->n_learned; i++) {
            if (strcmp(fa->learned[i], fa->route) != 0 && !name_in(list, fa->learned[i]))
                cJSON_AddItemToArray(list, cJSON_CreateString(fa->learned[i]));
        }
    }
    remove_name(list, fa->route);
    return true;
}

/* Reads the optional {"route": NAME} body into *route (borrowed from *root, which the caller
 * frees). Answers the request and returns false when the body is not acceptable. */
static bool read_route_body(struct sy_http_req *req, cJSON **root, const char **route)
{
    size_t len = 0;
    const char *body = sy_http_req_body(req, &len);
    const cJSON *r;
    size_t i;

    *root = NULL;
    *route = NULL;
    for (i = 0; body && i < len &&
                (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t');
         i++)
        ;
    if (!body || i == len)
        return true;
    *root = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(*root)) {
        cp_reply_error(req, 400, "invalid_body",
                       "the body must be empty or a JSON object like {\"route\":\"NAME\"}");
        return false;
    }
    for (r = (*root)->child; r; r = r->next) {
        if (strcmp(r->string, "route") != 0) {
            cp_reply_error(req, 400, "invalid_body", "unknown member \"%.100s\" (expected: route)",
                           r->string);
            return false;
        }
    }
    r = cJSON_GetObjectItemCaseSensitive(*root, "route");
    if (r && !cJSON_IsNull(r) && (!cJSON_IsString(r) || !r->valuestring[0])) {
        cp_reply_error(req, 400, "invalid_body", "route must be a route name");
        return false;
    }
    *route = cJSON_IsString(r) ? r->valuestring : NULL;
    return true;
}

/* The names of the learned routes of <pol> (borrowed from it) in *out (caller frees). */
static size_t learned_routes(const struct sy_policy *pol, const char ***out)
{
    size_t n = 0;

    *out = sy_xcalloc(pol && pol->n_routes ? pol->n_routes : 1, sizeof(**out));
    for (size_t i = 0; pol && i < pol->n_routes; i++) {
        if (pol->routes[i].strategy == SY_STRATEGY_LEARNED)
            (*out)[n++] = pol->routes[i].name;
    }
    return n;
}

static bool is_learned(const char *const *names, size_t n, const char *route)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], route) == 0)
            return true;
    }
    return false;
}

/* Adds "frozen" and "frozen_routes" of <state> to <reply>. */
static void add_frozen(cJSON *reply, const cJSON *state)
{
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(state, "frozen_routes");

    cJSON_AddBoolToObject(reply, "frozen",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "frozen")));
    cJSON_AddItemToObject(reply, "frozen_routes",
                          cJSON_IsArray(fr) ? cJSON_Duplicate(fr, true) : cJSON_CreateArray());
}

/* Freezes or unfreezes <route> (NULL = all). Returns 0 with *state (caller frees) as
 * written, or -errno. */
static int set_frozen(struct cp_learner *l, const char *route, bool freeze,
                      const char *const *learned, size_t n_learned, cJSON **state)
{
    struct freeze_arg fa = {.route = route,
                            .freeze = freeze,
                            .learned = (const char **)learned,
                            .n_learned = n_learned};
    int rc = state_update(l->store, freeze_edit, &fa, state);

    if (rc == 0)
        sy_info("learning %s for %s%s%s (admin API)", freeze ? "frozen" : "unfrozen",
                route ? "route \"" : "every route", route ? route : "", route ? "\"" : "");
    return rc;
}

static void handle_freeze(struct cp_learner *l, struct sy_http_req *req, bool freeze)
{
    const char **learned = NULL;
    const char *route;
    struct sy_policy *pol;
    cJSON *body, *state = NULL, *reply;
    int64_t version;
    size_t n;
    int rc;

    if (!read_route_body(req, &body, &route)) {
        cJSON_Delete(body);
        return;
    }
    pol = cp_policies_active_policy(l->ps, &version);
    n = learned_routes(pol, &learned);
    if (route && !is_learned(learned, n, route)) {
        cp_reply_error(req, 404, "unknown_route",
                       "route \"%.200s\" is not a learned route of the active policy", route);
        goto out_free;
    }
    rc = set_frozen(l, route, freeze, learned, n, &state);
    if (rc < 0) {
        cp_reply_error(req, 503, "store_unavailable", "cannot write the learner state: %s",
                       strerror(-rc));
        goto out_free;
    }
    reply = cJSON_CreateObject();
    if (route)
        cJSON_AddStringToObject(reply, "route", route);
    else
        cJSON_AddNullToObject(reply, "route");
    add_frozen(reply, state);
    cp_reply_json(req, 200, reply);

out_free:
    cJSON_Delete(state);
    free(learned);
    sy_policy_unref(pol);
    cJSON_Delete(body);
}

/* ---- POST /v1/learn/rollback ---------------------------------------------------------------- */

/* The note of version <v> in the list <vs> (newest first), or NULL. */
static const char *note_of(const struct cp_version *vs, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++) {
        if (vs[i].version == v)
            return vs[i].note;
    }
    return NULL;
}

/* The weights of <route>'s targets in the compiled policy <compiled>: model names (heap
 * copies) and weights, in target order. Returns the count, or 0 when absent. */
static size_t route_weights(const char *compiled, const char *route, char ***models,
                            uint32_t **weights)
{
    cJSON *root = cJSON_Parse(compiled);
    const cJSON *rt = find_route_json(root, route), *t;
    size_t n = 0, cap = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rt, "targets"));

    *models = sy_xcalloc(cap ? cap : 1, sizeof(**models));
    *weights = sy_xcalloc(cap ? cap : 1, sizeof(**weights));
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(rt, "targets"))
    {
        const char *m = jstr(t, "model");
        if (!m || n == cap)
            continue;
        (*models)[n] = sy_xstrdup(m);
        (*weights)[n++] = (uint32_t)jnum(t, "weight", 0);
    }
    cJSON_Delete(root);
    return n;
}

/* Route <route> only: the active version with that route's weights as in version <base>,
 * pushed and activated. Returns the new version or -errno with *err. */
static int64_t restore_route(struct cp_learner *l, const char *route, int64_t active, int64_t base,
                             char **err)
{
    struct cp_version *bv = NULL, *av = NULL;
    char **models = NULL, *json = NULL, *note = NULL;
    uint32_t *weights = NULL;
    size_t n = 0;
    bool activated = false;
    int64_t v;
    int rc;

    rc = cp_policies_get(l->ps, base, &bv);
    if (rc == 0)
        rc = cp_policies_get(l->ps, active, &av);
    if (rc < 0) {
        *err = sy_xasprintf("cannot read versions %" PRId64 " and %" PRId64 ": %s", base, active,
                            strerror(-rc));
        v = rc;
        goto out_free;
    }
    n = route_weights(bv->compiled, route, &models, &weights);
    json =
        n ? cp_learn_set_weights(av->compiled, route, (const char *const *)models, weights, n, err)
          : NULL;
    if (!json) {
        if (!*err)
            *err = sy_xasprintf("version %" PRId64 " has no route \"%s\"", base, route);
        v = -EINVAL;
        goto out_free;
    }
    note = sy_xasprintf("rollback: route %s to its weights of version %" PRId64 " (learning "
                        "frozen)",
                        route, base);
    v = cp_policies_push(l->ps, json, strlen(json), note, true, &activated, err);
    if (v > 0 && !activated) {
        *err = sy_xasprintf("version %" PRId64 " is stored but a newer one became active", v);
        v = -EAGAIN;
    }

out_free:
    for (size_t i = 0; i < n; i++)
        free(models[i]);
    free(models);
    free(weights);
    free(json);
    free(note);
    cp_version_free(bv);
    cp_version_free(av);
    return v;
}

static void handle_rollback(struct cp_learner *l, struct sy_http_req *req)
{
    const char **learned = NULL;
    const char *route;
    struct sy_policy *pol;
    struct cp_version *vs = NULL;
    size_t n_learned, n_vs = 0, chain = 0, chain_route = 0;
    cJSON *body, *state = NULL, *reply;
    int64_t active, v, base, rollback_of = 0, now_active = 0;
    char *err = NULL, *msg = NULL;
    int rc;

    if (!read_route_body(req, &body, &route)) {
        cJSON_Delete(body);
        return;
    }
    pol = cp_policies_active_policy(l->ps, &active);
    n_learned = learned_routes(pol, &learned);
    if (route && !is_learned(learned, n_learned, route)) {
        cp_reply_error(req, 404, "unknown_route",
                       "route \"%.200s\" is not a learned route of the active policy", route);
        goto out_free;
    }
    if (active <= 0) {
        cp_reply_error(req, 409, "no_active_version", "there is no active policy version");
        goto out_free;
    }
    rc = cp_policies_list(l->ps, &vs, &n_vs);
    if (rc < 0) {
        cp_reply_error(req, 503, "store_unavailable", "cannot list policy versions: %s",
                       strerror(-rc));
        goto out_free;
    }
    /* The chain: from the active version back through learned versions ("learned: ... from
     * version N") to the first that is not one. */
    base = active;
    for (;;) {
        const char *note = note_of(vs, n_vs, base);
        int64_t from = 0;

        if (!cp_learn_note_parse(note, &from) || from <= 0 || from >= base ||
            chain == CP_LEARN_MAX_CHAIN)
            break;
        chain++;
        if (route && cp_learn_note_is_route(note, route))
            chain_route++;
        base = from;
    }
    /* Freeze first, so the learner does not undo the rollback on its next round. */
    rc = set_frozen(l, route, true, learned, n_learned, &state);
    if (rc < 0) {
        cp_reply_error(req, 503, "store_unavailable", "cannot write the learner state: %s",
                       strerror(-rc));
        goto out_free;
    }
    if (chain == 0 || (route && chain_route == 0)) {
        msg = sy_xasprintf("version %" PRId64 " is not a learned version%s%s: nothing to roll "
                           "back; learning is frozen for %s%s",
                           active, route ? " of route " : "", route ? route : "",
                           route ? "route " : "every route", route ? route : "");
        now_active = active;
        v = 0;
    } else if (!route || chain_route == chain) {
        v = cp_policies_activate(l->ps, base, &rollback_of, &err);
        if (v > 0)
            msg = sy_xasprintf("version %" PRId64 " re-activates version %" PRId64
                               ", the weights before %zu learned version%s; learning is frozen "
                               "for %s%s",
                               v, base, chain, chain == 1 ? "" : "s",
                               route ? "route " : "every route", route ? route : "");
    } else {
        v = restore_route(l, route, active, base, &err);
        if (v > 0)
            msg = sy_xasprintf("version %" PRId64 " gives route %s its weights of version %" PRId64
                               " (other routes keep theirs); learning is frozen for route %s",
                               v, route, base, route);
    }
    if (v < 0) {
        cp_reply_error(req, v == -EAGAIN ? 409 : 503,
                       v == -EAGAIN ? "concurrent_activation" : "rollback_failed",
                       "rollback failed (learning is frozen): %s", err ? err : strerror((int)-v));
        goto out_free;
    }
    if (v > 0)
        now_active = v;
    sy_info("learn rollback: %s", msg);
    reply = cJSON_CreateObject();
    cJSON_AddBoolToObject(reply, "rolled_back", v > 0);
    if (route)
        cJSON_AddStringToObject(reply, "route", route);
    else
        cJSON_AddNullToObject(reply, "route");
    cJSON_AddNumberToObject(reply, "from_version", (double)active);
    add_num_or_null(reply, "to_version", (double)base, v > 0);
    cJSON_AddNumberToObject(reply, "version", (double)now_active);
    add_num_or_null(reply, "rollback_of", (double)rollback_of, rollback_of > 0);
    cJSON_AddNumberToObject(reply, "learned_versions", (double)(route ? chain_route : chain));
    add_frozen(reply, state);
    cJSON_AddStringToObject(reply, "message", msg);
    cp_reply_json(req, 200, reply);

out_free:
    free(msg);
    free(err);
    cJSON_Delete(state);
    cp_version_array_free(vs, n_vs);
    free(learned);
    sy_policy_unref(pol);
    cJSON_Delete(body);
}

/* ---- routing ------------------------------------------------------------------------------ */

static void on_admin(struct sy_http_req *req, const char *rest, void *arg)
{
    struct cp_learner *l = arg;
    enum sy_http_method m = sy_http_req_method(req);

    if (!rest[0]) {
        char *err = NULL;
        int status = 200;
        cJSON *reply;

        if (m != SY_HTTP_GET) {
            cp_reply_error(req, 405, "method_not_allowed", "use GET on /v1/learn");
            return;
        }
        reply = cp_learner_status_json(l, &status, &err);
        if (reply)
            cp_reply_json(req, status, reply);
        else
            cp_reply_error(req, status, "store_unavailable", "%s", err ? err : "?");
        free(err);
        return;
    }
    if (strcmp(rest, "freeze") != 0 && strcmp(rest, "unfreeze") != 0 &&
        strcmp(rest, "rollback") != 0) {
        cp_reply_error(req, 404, "not_found", "unknown path %.200s", sy_http_req_path(req));
        return;
    }
    if (m != SY_HTTP_POST) {
        cp_reply_error(req, 405, "method_not_allowed", "use POST on %.200s", sy_http_req_path(req));
        return;
    }
    if (strcmp(rest, "rollback") == 0)
        handle_rollback(l, req);
    else
        handle_freeze(l, req, strcmp(rest, "freeze") == 0);
}

int cp_learner_register(struct cp_learner *l, struct cp_admin *admin)
{
    return cp_admin_add_route(admin, "/v1/learn", on_admin, l);
}
