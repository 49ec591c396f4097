/* controlplane/cp_experiments.h - A/B experiments at the control plane: results per arm and
 * promotion (docs/learning.md, docs/admin-api.md "Experiments").
 *
 * An experiment lives in the active policy (experiments:). Its results join three sources:
 * the feedback stored for its arms (cp_feedback; Beta posteriors, probability to be best, a
 * two-proportion test), the traffic the proxies reported for each arm (cp_stats, since this
 * replica started: requests, errors, latency, cost) and the stopping rule of the policy.
 * Promoting an arm pushes a new policy version whose route sends all its traffic to that
 * arm's targets and which no longer has the experiment; the final results are kept in the
 * store (experiments/closed/<name>) so the experiment can still be read afterwards.
 * An experiment with stop.auto_promote is promoted by the control plane itself once its
 * stopping rule is met (checked every few seconds, by the leading replica only). The same
 * timer deletes feedback past its retention (cp_feedback_expire) once an hour.
 *
 * Threads: the admin (main) thread. */
#ifndef CP_EXPERIMENTS_H
#define CP_EXPERIMENTS_H

#include <stdbool.h>

struct cp_experiments;
struct cp_feedback;
struct cp_policies;
struct cp_stats;
struct cp_store;
struct cp_admin;
struct event_base;

struct cp_experiments *cp_experiments_new(struct cp_policies *ps, struct cp_feedback *fb,
                                          struct cp_stats *stats, struct cp_store *store,
                                          struct event_base *base);
void cp_experiments_free(struct cp_experiments *x);

/* Only a replica for which <fn>(<arg>) is true promotes automatically (the learner's leader:
 * one replica decides). Unset: this replica always does. */
void cp_experiments_set_leader(struct cp_experiments *x, bool (*fn)(void *arg), void *arg);

/* Registers GET /v1/experiments[/NAME] and POST /v1/experiments/NAME/promote. */
int cp_experiments_register(struct cp_experiments *x, struct cp_admin *admin);

#endif
