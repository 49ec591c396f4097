/* controlplane/cp_views.h - the admin API's traffic views: GET /v1/stats, /v1/spend,
 * /v1/health and /metrics (docs/admin-api.md). Main thread. */
#ifndef CP_VIEWS_H
#define CP_VIEWS_H

struct cp_admin;
struct cp_feedback;
struct cp_policies;
struct cp_spend;
struct cp_stats;

struct cp_views {
    struct cp_stats *stats;
    struct cp_spend *spend;
    struct cp_policies *policies;
    struct cp_feedback *feedback; /* may be NULL */
};

/* Registers the paths on <a>; <v> is borrowed and must outlive it. Returns 0 or -errno. */
int cp_views_register(struct cp_admin *a, struct cp_views *v);

#endif
