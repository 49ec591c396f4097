/* dataplane/dp_router.h - picks the model that serves a request from the policy snapshot.
 *
 * The requested model name selects a route by its match.model, else a model by name.
 * Within a route, targets are chosen by weight with the worker's own PRNG, so no state is
 * shared between workers. Pure function of (policy, name, rng): worker thread only.
 */
#ifndef DP_ROUTER_H
#define DP_ROUTER_H

#include <stdint.h>

#include "sy_policy.h"

struct dp_pick {
    const struct sy_route *route; /* NULL when the request named a model directly */
    const struct sy_model *model;
    const struct sy_provider *provider;
    size_t provider_index;
};

/* Resolves <requested> in <pol>. Returns 0 with *out filled, or -ENOENT when neither a
 * route nor a model has that name. <rng> is the worker's PRNG state. */
int dp_route_pick(const struct sy_policy *pol, const char *requested, uint64_t *rng,
                  struct dp_pick *out);

/* xorshift64* step: a fast, non-cryptographic PRNG for traffic splits. */
uint64_t dp_rand_next(uint64_t *state);

#endif
