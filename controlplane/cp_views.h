/* controlplane/cp_views.h - the admin API's traffic views: GET /v1/stats, /v1/spend,
 * /v1/health and /metrics (docs/admin-api.md), and /v1/stats/export for the other replicas.
 * /v1/stats and /v1/health cover the whole fleet: this replica's window merged with its
 * peers' (cp_peers.h). Main thread. */
#ifndef CP_VIEWS_H
#define CP_VIEWS_H

struct cp_admin;
struct cp_feedback;
struct cp_peers;
struct cp_policies;
struct cp_spend;
struct cp_stats;

struct cp_views {
    struct cp_stats *stats;
    struct cp_spend *spend;
    struct cp_policies *policies;
    struct cp_feedback *feedback; /* may be NULL */
    struct cp_peers *peers;       /* may be NULL: this replica's proxies only */
};

/* Registers the paths on <a>; <v> is borrowed and must outlive it. Returns 0 or -errno. */
int cp_views_register(struct cp_admin *a, struct cp_views *v);

#endif
