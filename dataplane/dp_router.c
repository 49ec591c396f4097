/* dataplane/dp_router.c - route and target selection. Worker thread; no shared state. */
#include "dp_router.h"

#include <errno.h>

uint64_t dp_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static const struct sy_target *pick_weighted(const struct sy_route *rt, uint64_t *rng)
{
    uint64_t r;

    if (rt->n_targets == 1)
        return &rt->targets[0];
    r = dp_rand_next(rng) % rt->total_weight;
    for (size_t i = 0; i < rt->n_targets; i++) {
        if (r < rt->targets[i].weight)
            return &rt->targets[i];
        r -= rt->targets[i].weight;
    }
    return &rt->targets[rt->n_targets - 1];
}

int dp_route_pick(const struct sy_policy *pol, const char *requested, uint64_t *rng,
                  struct dp_pick *out)
{
    const struct sy_route *rt = sy_policy_find_route(pol, requested);
    const struct sy_model *m;

    if (rt) {
        m = &pol->models[pick_weighted(rt, rng)->model];
    } else {
        m = sy_policy_find_model(pol, requested);
        if (!m)
            return -ENOENT;
    }
    out->route = rt;
    out->model = m;
    out->provider_index = m->provider;
    out->provider = &pol->providers[m->provider];
    return 0;
}
