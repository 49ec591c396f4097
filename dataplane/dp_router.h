/* dataplane/dp_router.h - the ordered list of targets a request will try: the route's
 * strategy ranks its targets, the fallback models follow, and the hard constraints
 * (region, compliance) and open circuit breakers take targets out.
 *
 * Pure function of (snapshot, route, features, rng, clock) apart from reading the shared
 * health atomics: worker thread, no locks. docs/internals/routing.md.
 */
#ifndef DP_ROUTER_H
#define DP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_features.h"
#include "sy_policy.h"

struct dp_snapshot;

#define DP_MAX_CANDIDATES 32

struct dp_candidate {
    const struct sy_model *model;
    size_t model_index;
    bool fallback; /* from routes[].fallback, not a target */
};

struct dp_plan {
    const struct sy_route *route; /* NULL when the request named a model directly */
    const struct sy_arm *arm;     /* the experiment arm whose targets replaced the route's */
    struct dp_candidate c[DP_MAX_CANDIDATES];
    size_t n;
    bool panic; /* every eligible target's breaker is open: try them anyway */
};

/* Builds the plan for <route> (or the single <direct> model). Returns 0, or -EACCES when
 * the request's region/compliance leaves no eligible target (<why> names the constraint).
 * When every eligible target's breaker is open the plan holds them all anyway, in
 * priority order, with <panic> set (as Envoy's panic threshold does: failing every request
 * would be worse than trying an unhealthy target). <rng> is the worker's PRNG state. */
int dp_plan_build(const struct dp_snapshot *snap, const struct sy_route *route,
                  const struct sy_model *direct, const struct dp_features *f, uint64_t *rng,
                  uint64_t now_us, struct dp_plan *out, char *why, size_t why_len);

/* As dp_plan_build, for a request of an experiment on <route> that drew <arm> (NULL = no
 * experiment): the arm's targets replace the route's and are ordered as the weighted
 * strategy orders targets, by their weights; the route's fallback chain (without models
 * the arm already lists), timeouts and retries still apply. */
int dp_plan_build_arm(const struct dp_snapshot *snap, const struct sy_route *route,
                      const struct sy_arm *arm, const struct sy_model *direct,
                      const struct dp_features *f, uint64_t *rng, uint64_t now_us,
                      struct dp_plan *out, char *why, size_t why_len);

/* The experiment on <route> in <pol>, or NULL (route->experiment is SIZE_MAX, or out of
 * range while a policy carries no experiments). */
const struct sy_experiment *dp_route_experiment(const struct sy_policy *pol,
                                                const struct sy_route *route);

/* The sticky key of a request in experiment <ex>, from what the request says: <user> (the
 * body's "user"), <tenant> (its tenant's name) and <header> (the value of the header
 * ex->sticky_header); each NULL or "" when absent. By user: the user, else the tenant;
 * by header: the header; by tenant: the tenant; by request: none. NULL = none: the
 * request draws its arm at random. */
const char *dp_experiment_key(const struct sy_experiment *ex, const char *user, const char *tenant,
                              const char *header);

/* The index of the arm of <ex> for sticky key <key>: a hash of the experiment's name and
 * the key placed in [0, total_share) and the arms walked by share, so every proxy, on any
 * machine and in any process, puts one key on the same arm for as long as the arms and
 * shares stay. The hash is FNV-1a 64 finished with a 64-bit mixer; changing it would move
 * every user to another arm. <key> NULL: a random draw by share from <rng>. */
size_t dp_experiment_pick(const struct sy_experiment *ex, const char *key, uint64_t *rng);

/* Does provider <p> satisfy the request's region and compliance headers? */
bool dp_provider_eligible(const struct sy_provider *p, const struct dp_features *f);

/* xorshift64* step: a fast, non-cryptographic PRNG for traffic splits. */
uint64_t dp_rand_next(uint64_t *state);

#endif
