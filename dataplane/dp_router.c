/* dataplane/dp_router.c - strategies, constraints and health turned into a target order.
 * Worker thread; reads shared health atomics only. */
#include "dp_router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dp_health.h"
#include "dp_snapshot.h"

/* Completion tokens assumed by lowest_cost when the request sets no max_tokens. */
#define DP_COST_DEFAULT_COMPLETION 256

uint64_t dp_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static bool text_eq(const struct dp_text *t, const char *s)
{
    return t->len == strlen(s) && memcmp(t->p, s, t->len) == 0;
}

bool dp_provider_eligible(const struct sy_provider *p, const struct dp_features *f)
{
    if (f->region.len && !(p->region && text_eq(&f->region, p->region)))
        return false;
    for (size_t i = 0; i < f->n_compliance; i++) {
        bool has = false;
        for (size_t k = 0; k < p->n_compliance && !has; k++)
            has = text_eq(&f->compliance[i], p->compliance[k]);
        if (!has)
            return false;
    }
    return true;
}

struct ranked {
    size_t model;
    uint32_t weight;
    double key; /* sort key, lower first */
};

static void sort_by_key(struct ranked *r, size_t n)
{
    /* Insertion sort: a route has a handful of targets. Stable, so ties keep order. */
    for (size_t i = 1; i < n; i++) {
        struct ranked t = r[i];
        size_t j = i;
        while (j > 0 && r[j - 1].key > t.key) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = t;
    }
}

/* Weighted order without replacement: the first is drawn by weight, then the next among
 * the rest, and so on; zero-weight targets come last (in order), for failover only. */
static void order_weighted(struct ranked *r, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t total = 0;
        for (size_t k = i; k < n; k++)
            total += r[k].weight;
        if (total == 0)
            return;
        uint64_t x = dp_rand_next(rng) % total;
        size_t pick = i;
        for (size_t k = i; k < n; k++) {
            if (x < r[k].weight) {
                pick = k;
                break;
            }
            x -= r[k].weight;
        }
        struct ranked t = r[pick];
        memmove(&r[i + 1], &r[i], (pick - i) * sizeof(*r));
        r[i] = t;
    }
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void rank(const struct dp_snapshot *snap, const struct sy_route *route,
                 const struct dp_features *f, uint64_t *rng, struct ranked *r, size_t n)
{
    const struct sy_policy *pol = snap->policy;

    switch (route->strategy) {
    case SY_STRATEGY_WEIGHTED:
    case SY_STRATEGY_LEARNED: /* weighted; the control plane rewrites the weights */
        order_weighted(r, n, rng);
        return;
    case SY_STRATEGY_PRIORITY:
        return; /* as written */
    case SY_STRATEGY_LOWEST_COST:
        for (size_t i = 0; i < n; i++) {
            const struct sy_model *m = &pol->models[r[i].model];
            double in = f->prompt_tokens > 0 ? (double)f->prompt_tokens : 0;
            double out =
                f->max_tokens > 0 ? (double)f->max_tokens : (double)DP_COST_DEFAULT_COMPLETION;
            r[i].key = in * m->input_per_mtok + out * m->output_per_mtok;
        }
        sort_by_key(r, n);
        return;
    case SY_STRATEGY_LOWEST_LATENCY: {
        /* Power of two choices: two random targets, the faster first; the rest by EWMA.
         * A target without samples counts as fastest, so new targets get explored. */
        for (size_t i = 0; i < n; i++) {
            const struct dp_target_health *h = snap->health[r[i].model];
            uint64_t v =
                f->stream ? atomic_load(&h->ttft_ewma_us) : atomic_load(&h->latency_ewma_us);
            r[i].key = (double)v;
        }
        if (n >= 2) {
            size_t a = dp_rand_next(rng) % n, b = dp_rand_next(rng) % (n - 1);
            if (b >= a)
                b++;
            size_t chosen = r[a].key <= r[b].key ? r[a].model : r[b].model;
            sort_by_key(r, n);
            for (size_t i = 1; i < n; i++) {
                if (r[i].model == chosen) {
                    struct ranked t = r[i];
                    memmove(&r[1], &r[0], i * sizeof(*r));
                    r[0] = t;
                    break;
                }
            }
        }
        return;
    }
    case SY_STRATEGY_LEAST_BUSY:
        for (size_t i = 0; i < n; i++) {
            const struct dp_target_health *h = snap->health[r[i].model];
            /* A random fraction breaks ties without favouring the first target. */
            r[i].key =
                (double)atomic_load(&h->in_flight) + (double)(dp_rand_next(rng) % 1000) / 10000.0;
        }
        sort_by_key(r, n);
        return;
    case SY_STRATEGY_CACHE_AFFINITY:
        /* Rendezvous hashing on the conversation: every proxy picks the same target for
         * one conversation, and removing a target moves only its own conversations. */
        for (size_t i = 0; i < n; i++) {
            uint64_t h = mix64(f->affinity_hash ^ mix64(r[i].model + 1));
            r[i].key = -(double)(h >> 11);
        }
        sort_by_key(r, n);
        return;
    }
}

const struct sy_experiment *dp_route_experiment(const struct sy_policy *pol,
                                                const struct sy_route *route)
{
    if (!route || route->experiment >= pol->n_experiments)
        return NULL;
    return &pol->experiments[route->experiment];
}

static bool nonempty(const char *s)
{
    return s && *s;
}

const char *dp_experiment_key(const struct sy_experiment *ex, const char *user, const char *tenant,
                              const char *header)
{
    switch (ex->sticky) {
    case SY_STICKY_USER:
        return nonempty(user) ? user : nonempty(tenant) ? tenant : NULL;
    case SY_STICKY_HEADER:
        return nonempty(header) ? header : NULL;
    case SY_STICKY_TENANT:
        return nonempty(tenant) ? tenant : NULL;
    case SY_STICKY_REQUEST:
        return NULL;
    }
    return NULL;
}

/* FNV-1a 64 over <len> bytes of <p>, continuing from <h>. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

size_t dp_experiment_pick(const struct sy_experiment *ex, const char *key, uint64_t *rng)
{
    uint64_t total = 0, x;

    for (size_t i = 0; i < ex->n_arms; i++)
        total += ex->arms[i].share;
    if (ex->n_arms == 0 || total == 0)
        return 0;
    if (key) {
        /* The NUL between name and key keeps ("ab", "c") and ("a", "bc") apart. */
        uint64_t h = fnv1a(0xcbf29ce484222325ULL, ex->name, strlen(ex->name) + 1);
        x = mix64(fnv1a(h, key, strlen(key))) % total;
    } else {
        x = dp_rand_next(rng) % total;
    }
    for (size_t i = 0; i < ex->n_arms; i++) {
        if (x < ex->arms[i].share)
            return i;
        x -= ex->arms[i].share;
    }
    return ex->n_arms - 1;
}

int dp_plan_build(const struct dp_snapshot *snap, const struct sy_route *route,
                  const struct sy_model *direct, const struct dp_features *f, uint64_t *rng,
                  uint64_t now_us, struct dp_plan *out, char *why, size_t why_len)
{
    return dp_plan_build_arm(snap, route, NULL, direct, f, rng, now_us, out, why, why_len);
}

/* Whether <arm> lists model <m> among its targets. */
static bool arm_lists(const struct sy_arm *arm, size_t m)
{
    for (size_t i = 0; i < arm->n_targets; i++)
        if (arm->targets[i].model == m)
            return true;
    return false;
}

int dp_plan_build_arm(const struct dp_snapshot *snap, const struct sy_route *route,
                      const struct sy_arm *arm, const struct sy_model *direct,
                      const struct dp_features *f, uint64_t *rng, uint64_t now_us,
                      struct dp_plan *out, char *why, size_t why_len)
{
    const struct sy_policy *pol = snap->policy;
    struct ranked r[DP_MAX_CANDIDATES];
    size_t n = 0, n_eligible = 0;

    out->route = route;
    out->arm = route ? arm : NULL;
    out->n = 0;
    out->panic = false;
    if (!route) {
        r[n++] = (struct ranked){.model = (size_t)(direct - pol->models), .weight = 1};
    } else if (out->arm) {
        for (size_t i = 0; i < arm->n_targets && n < DP_MAX_CANDIDATES; i++)
            r[n++] =
                (struct ranked){.model = arm->targets[i].model, .weight = arm->targets[i].weight};
    } else {
        for (size_t i = 0; i < route->n_targets && n < DP_MAX_CANDIDATES; i++)
            r[n++] = (struct ranked){.model = route->targets[i].model,
                                     .weight = route->targets[i].weight};
    }
    /* Hard constraints first: no strategy may ever pick outside them. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (dp_provider_eligible(&pol->providers[pol->models[r[i].model].provider], f))
            r[k++] = r[i];
    }
    n_eligible = k;
    /* Health: an open breaker's share goes to the others. */
    struct ranked all[DP_MAX_CANDIDATES];
    memcpy(all, r, k * sizeof(*r));
    n = 0;
    for (size_t i = 0; i < k; i++) {
        if (dp_health_usable(snap->health[r[i].model], &pol->resilience, now_us))
            r[n++] = r[i];
    }
    if (out->arm && n > 1)
        order_weighted(r, n, rng);
    else if (route && n > 1)
        rank(snap, route, f, rng, r, n);
    for (size_t i = 0; i < n; i++)
        out->c[out->n++] = (struct dp_candidate){
            .model = &pol->models[r[i].model], .model_index = r[i].model, .fallback = false};
    /* Then the fallback chain, under the same constraints and health rules. */
    for (size_t i = 0; route && i < route->n_fallback && out->n < DP_MAX_CANDIDATES; i++) {
        size_t m = route->fallback[i];
        if (!dp_provider_eligible(&pol->providers[pol->models[m].provider], f))
            continue;
        if (out->arm && arm_lists(arm, m))
            continue; /* the arm's own target: tried (or skipped) above */
        n_eligible++;
        if (!dp_health_usable(snap->health[m], &pol->resilience, now_us))
            continue;
        out->c[out->n++] =
            (struct dp_candidate){.model = &pol->models[m], .model_index = m, .fallback = true};
    }
    if (out->n)
        return 0;
    if (n_eligible == 0) {
        char want[256] = "";
        size_t o = 0;
        if (f->region.len)
            o += (size_t)snprintf(want + o, sizeof(want) - o, "region %.*s", (int)f->region.len,
                                  f->region.p);
        for (size_t i = 0; i < f->n_compliance && o < sizeof(want); i++)
            o += (size_t)snprintf(want + o, sizeof(want) - o, "%scompliance %.*s", o ? ", " : "",
                                  (int)f->compliance[i].len, f->compliance[i].p);
        snprintf(why, why_len, "no target of %s %s satisfies the request's constraints (%s)",
                 route ? "route" : "model", route ? route->name : direct->name, want);
        return -EACCES;
    }
    /* Panic: every eligible target is open. Targets, then fallbacks, as written. */
    out->panic = true;
    for (size_t i = 0; i < k; i++)
        out->c[out->n++] = (struct dp_candidate){
            .model = &pol->models[all[i].model], .model_index = all[i].model, .fallback = false};
    for (size_t i = 0; route && i < route->n_fallback && out->n < DP_MAX_CANDIDATES; i++) {
        size_t m = route->fallback[i];
        if (out->arm && arm_lists(arm, m))
            continue;
        if (dp_provider_eligible(&pol->providers[pol->models[m].provider], f))
            out->c[out->n++] =
                (struct dp_candidate){.model = &pol->models[m], .model_index = m, .fallback = true};
    }
    return 0;
}
