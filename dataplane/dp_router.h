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

/* Does provider <p> satisfy the request's region and compliance headers? */
bool dp_provider_eligible(const struct sy_provider *p, const struct dp_features *f);

/* xorshift64* step: a fast, non-cryptographic PRNG for traffic splits. */
uint64_t dp_rand_next(uint64_t *state);

#endif
