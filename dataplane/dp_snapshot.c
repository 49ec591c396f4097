/* dataplane/dp_snapshot.c - immutable, refcounted policy snapshots and their holder. */
#define SY_LOG_MODULE "snapshot"

#include "dp_snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_health.h"
#include "dp_match.h"
#include "sy_log.h"
#include "sy_util.h"

struct dp_snapshot *dp_snapshot_new(struct sy_policy *pol, struct dp_health_table *health,
                                    char **errmsg)
{
    struct dp_snapshot *snap = sy_xcalloc(1, sizeof(*snap));
    size_t i;

    snap->providers = sy_xcalloc(pol->n_providers ? pol->n_providers : 1, sizeof(*snap->providers));
    for (i = 0; i < pol->n_providers; i++) {
        const struct sy_provider *p = &pol->providers[i];
        if (dp_provider_ops_for(p->kind)->prepare(p, &snap->providers[i], errmsg) < 0)
            goto out_free;
    }
    snap->matcher = dp_matcher_new(pol, errmsg);
    if (!snap->matcher)
        goto out_free;
    snap->health = sy_xcalloc(pol->n_models ? pol->n_models : 1, sizeof(*snap->health));
    for (size_t m = 0; m < pol->n_models; m++)
        snap->health[m] = dp_health_get(health, pol->providers[pol->models[m].provider].name,
                                        pol->models[m].upstream_model);
    snap->policy = pol;
    snprintf(snap->version_str, sizeof(snap->version_str), "%" PRId64, pol->version);
    atomic_init(&snap->refcount, 1);
    return snap;

out_free:
    for (size_t k = 0; k <= i && k < pol->n_providers; k++)
        dp_provider_rt_cleanup(&snap->providers[k]);
    free(snap->providers);
    free(snap);
    return NULL;
}

struct dp_snapshot *dp_snapshot_ref(struct dp_snapshot *snap)
{
    atomic_fetch_add_explicit(&snap->refcount, 1, memory_order_relaxed);
    return snap;
}

void dp_snapshot_unref(struct dp_snapshot *snap)
{
    if (!snap)
        return;
    if (atomic_fetch_sub_explicit(&snap->refcount, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < snap->policy->n_providers; i++)
        dp_provider_rt_cleanup(&snap->providers[i]);
    free(snap->providers);
    free(snap->health);
    dp_matcher_free(snap->matcher);
    sy_policy_unref(snap->policy);
    free(snap);
}

void dp_snapshot_holder_init(struct dp_snapshot_holder *h)
{
    pthread_mutex_init(&h->lock, NULL);
    h->current = NULL;
    atomic_init(&h->generation, 0);
}

void dp_snapshot_holder_cleanup(struct dp_snapshot_holder *h)
{
    dp_snapshot_unref(h->current);
    h->current = NULL;
    pthread_mutex_destroy(&h->lock);
}

void dp_snapshot_publish(struct dp_snapshot_holder *h, struct dp_snapshot *snap)
{
    struct dp_snapshot *old;

    pthread_mutex_lock(&h->lock);
    old = h->current;
    h->current = snap;
    atomic_fetch_add_explicit(&h->generation, 1, memory_order_release);
    pthread_mutex_unlock(&h->lock);
    dp_snapshot_unref(old);
}

struct dp_snapshot *dp_snapshot_get(struct dp_snapshot_holder *h)
{
    struct dp_snapshot *snap;

    pthread_mutex_lock(&h->lock);
    snap = h->current ? dp_snapshot_ref(h->current) : NULL;
    pthread_mutex_unlock(&h->lock);
    return snap;
}

struct dp_snapshot *dp_snapshot_cache_get(struct dp_snapshot_cache *c, struct dp_snapshot_holder *h)
{
    uint_fast64_t gen = atomic_load_explicit(&h->generation, memory_order_acquire);

    if (gen != c->generation) {
        struct dp_snapshot *fresh;
        pthread_mutex_lock(&h->lock);
        fresh = h->current ? dp_snapshot_ref(h->current) : NULL;
        gen = atomic_load_explicit(&h->generation, memory_order_relaxed);
        pthread_mutex_unlock(&h->lock);
        dp_snapshot_unref(c->snap);
        c->snap = fresh;
        c->generation = gen;
    }
    return c->snap;
}

void dp_snapshot_cache_cleanup(struct dp_snapshot_cache *c)
{
    dp_snapshot_unref(c->snap);
    c->snap = NULL;
    c->generation = 0;
}
