/* dataplane/dp_snapshot.h - the policy a proxy serves: compiled policy + what this node
 * resolved for it (provider keys, ready-made upstream header lists and URLs).
 *
 * A snapshot is immutable once published and reference-counted. The process holds one
 * "current" snapshot in a dp_snapshot_holder; publishing swaps it under a mutex and bumps a
 * generation counter. Workers cache their own reference and compare generations with one
 * atomic load per request, so the hot path takes no lock, and a request keeps the snapshot
 * it started with until it ends: no request ever sees half of two policies.
 */
#ifndef DP_SNAPSHOT_H
#define DP_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dp_provider.h"
#include "sy_policy.h"

struct dp_health_table;
struct dp_target_health;
struct dp_matcher;

struct dp_snapshot {
    atomic_int refcount;
    struct sy_policy *policy;         /* owned reference */
    struct dp_provider_rt *providers; /* parallel to policy->providers */
    struct dp_target_health **health; /* parallel to policy->models; process-wide entries */
    struct dp_matcher *matcher;       /* the routes' rules, compiled for this policy */
    char version_str[24];             /* policy->version as text, for headers */
};

/* Builds a snapshot from <pol> (takes the caller's reference on success), resolving each
 * provider's api_key_env from the environment, attaching each model's health entry from
 * <health> (process-wide, outlives every snapshot) and compiling the route matcher.
 * Returns NULL with *errmsg set (caller frees; <pol> untouched) when this node cannot serve
 * the policy, e.g. a key variable is unset. */
struct dp_snapshot *dp_snapshot_new(struct sy_policy *pol, struct dp_health_table *health,
                                    char **errmsg);

struct dp_snapshot *dp_snapshot_ref(struct dp_snapshot *snap);
/* Drops a reference; the last frees. Accepts NULL. Any thread. */
void dp_snapshot_unref(struct dp_snapshot *snap);

struct dp_snapshot_holder {
    pthread_mutex_t lock;
    struct dp_snapshot *current; /* guarded by lock */
    atomic_uint_fast64_t generation;
};

void dp_snapshot_holder_init(struct dp_snapshot_holder *h);
/* Frees the current snapshot reference. */
void dp_snapshot_holder_cleanup(struct dp_snapshot_holder *h);
/* Makes <snap> current (takes the caller's reference). Any thread. */
void dp_snapshot_publish(struct dp_snapshot_holder *h, struct dp_snapshot *snap);
/* Returns a new reference to the current snapshot (NULL if none). Any thread. */
struct dp_snapshot *dp_snapshot_get(struct dp_snapshot_holder *h);

/* A worker's cached view of the holder. Worker thread only. */
struct dp_snapshot_cache {
    struct dp_snapshot *snap;
    uint_fast64_t generation;
};

/* Returns the current snapshot, refreshing the cache when the generation moved; the
 * pointer is borrowed from the cache (take a ref to keep it across callbacks). */
struct dp_snapshot *dp_snapshot_cache_get(struct dp_snapshot_cache *c,
                                          struct dp_snapshot_holder *h);
void dp_snapshot_cache_cleanup(struct dp_snapshot_cache *c);

#endif
