/* controlplane/learn/cp_learner.h - learned routing: the weights of routes with strategy
 * learned follow the feedback their answers get (docs/learning.md, "Learned routing").
 *
 * Two layers. The decision is pure: discounted Beta posteriors from feedback observations
 * (cp_learn_posterior), Thompson allocation under the route's knobs (cp_learn_decide, over
 * cp_bandit), the note of a learned version and the rewrite of a compiled policy. No I/O,
 * no globals; any thread. The service (struct cp_learner) is a thread of its own that runs
 * those on the active policy once a second when this replica wins the leader election
 * (cp_store_campaign on CP_LEARN_LEADER_KEY), pushes a new policy version when a route's
 * shares move, keeps its bookkeeping in the store (CP_LEARN_STATE_KEY), and serves the
 * operator's controls on the admin API (GET /v1/learn, POST /v1/learn/freeze, /unfreeze,
 * /rollback).
 *
 * Threads: cp_learner_new/start/register/free on the main thread; the admin handlers on the
 * admin (main) loop; everything else on the learner's thread. What both touch (the store,
 * the policies, the stats) is thread-safe; the learner's own flags are atomics.
 */
#ifndef CP_LEARNER_H
#define CP_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_bandit.h"

struct cJSON;
struct cp_admin;
struct cp_feedback;
struct cp_policies;
struct cp_stats;
struct cp_store;
struct sy_learn;

#define CP_LEARN_LEADER_KEY "/learn/leader" /* the election: holds the leader's id */
#define CP_LEARN_STATE_KEY "/learn/state"   /* frozen flags and per-route bookkeeping */
#define CP_LEARN_LEADER_TTL_S 5             /* a dead leader is replaced within this (+1 s) */
#define CP_LEARN_TICK_MS 1000               /* how often the thread looks */
#define CP_LEARN_TOTAL_WEIGHT 1000          /* learned weights sum to this */
#define CP_LEARN_DRAWS 10000                /* Thompson rounds per update: shares +-0.01 */
#define CP_LEARN_NOTE_PREFIX "learned: "    /* every learned version's note starts so */
#define CP_LEARN_HORIZON_WEIGHT 1e-3        /* evidence weighing less is not read at all */

/* ---- the decision (pure) ------------------------------------------------------------- */

/* One piece of feedback on a target, as the learner weighs it. */
struct cp_learn_obs {
    double value; /* 1 thumbs up, 0 thumbs down, or a score in [0, 1] */
    double age_s; /* seconds between the answer and the update (negative counts as 0) */
};

/* A Beta posterior of a target's thumbs-up rate and the (discounted) evidence behind it. */
struct cp_learn_posterior {
    double a, b; /* Beta(a, b), prior Beta(1, 1) included */
    double n;    /* discounted number of observations: a + b - 2 */
};

/* Builds the posterior of <n> observations: starting from Beta(1, 1), each observation adds
 * w * value to a and w * (1 - value) to b, with w = <discount>^(age_s / <period_s>): evidence
 * one update period old counts <discount>, two periods old <discount>^2, so a target's
 * posterior follows change instead of averaging over all time (discount 1 keeps
 * everything). Observations with a value outside [0, 1] or NaN are skipped. Returns 0, or
 * -EINVAL for period_s <= 0 or a discount outside (0, 1]. */
int cp_learn_posterior(const struct cp_learn_obs *obs, size_t n, double period_s, double discount,
                       struct cp_learn_posterior *out);

/* How far back evidence is worth reading: the age at which an observation's weight falls
 * below CP_LEARN_HORIZON_WEIGHT, in seconds; INFINITY when discount is 1. */
double cp_learn_horizon_s(double period_s, double discount);

/* What the learner knows about one target. */
struct cp_learn_arm {
    struct cp_learn_posterior post;
    double cost_usd;   /* mean cost per request (0 when unknown) */
    double latency_ms; /* p50 latency (0 when unknown) */
};

enum cp_learn_outcome {
    CP_LEARN_MOVE = 0, /* publish: some share moved by more than the threshold */
    CP_LEARN_STEADY,   /* nothing moved by more than the threshold */
    CP_LEARN_WAITING,  /* every target has fewer than min_samples observations */
};

struct cp_learn_decision {
    enum cp_learn_outcome outcome;
    double shares[CP_BANDIT_MAX_ARMS];    /* the allocation computed (current when WAITING) */
    uint32_t weights[CP_BANDIT_MAX_ARMS]; /* MOVE: the shares as weights summing to
                                             CP_LEARN_TOTAL_WEIGHT */
};

/* Decides the next weights of a learned route with knobs <k> whose <n> targets are <arms>
 * and currently weigh <weights> (shares = weight / total). Nothing moves while every target
 * is under k->min_samples (WAITING). Otherwise Thompson sampling on the utility
 * k->w_quality * q - k->w_cost * cost / max cost - k->w_latency * latency / max latency
 * (CP_LEARN_DRAWS rounds from a generator seeded with <seed>, so the same inputs give the
 * same answer), bounded below by k->exploration per target and 1 / n for under-sampled
 * targets, then moved from the current shares by at most k->max_step each
 * (cp_alloc_compute). MOVE when some share moved by more than k->threshold and the integer
 * weights differ from the current ones, else STEADY. Returns 0, or -EINVAL for n of 0 or
 * above CP_BANDIT_MAX_ARMS, weights summing to 0, or invalid arms or knobs. */
int cp_learn_decide(const struct sy_learn *k, const struct cp_learn_arm *arms,
                    const uint32_t *weights, size_t n, uint64_t seed,
                    struct cp_learn_decision *out);

/* The seed of one update of route <route> on policy version <version>: reproducible, and
 * different for every route and version. */
uint64_t cp_learn_seed(int64_t version, const char *route);

/* The note of a learned version (heap, caller frees):
 * "learned: route smart from version 7: m1 81.0% (up 0.84, n 412), m2 19.0% (up 0.61, n 97)"
 * with the shares of <weights> (summing to CP_LEARN_TOTAL_WEIGHT), each target's posterior
 * mean and discounted count. Cut with "..." at 4000 bytes. */
char *cp_learn_note(const char *route, int64_t from_version, const char *const *models,
                    const struct cp_learn_arm *arms, const uint32_t *weights, size_t n);

/* True when <note> is a learned version's; *from_version (may be NULL) receives the version
 * it was learned from (0 when the note does not say). */
bool cp_learn_note_parse(const char *note, int64_t *from_version);

/* True when <note> is a learned version's for route <route>. */
bool cp_learn_note_is_route(const char *note, const char *route);

/* Returns the policy <compiled> (canonical JSON of a compiled policy) with the targets of
 * route <route> reweighted: the target whose model is <models>[i] gets <weights>[i], for
 * each of the <n> models (heap JSON, caller frees). Everything else is kept. NULL with
 * *errmsg (caller frees) when the JSON does not parse, has no such route, or the route's
 * targets are not exactly <models>. */
char *cp_learn_set_weights(const char *compiled, const char *route, const char *const *models,
                           const uint32_t *weights, size_t n, char **errmsg);

/* ---- the service --------------------------------------------------------------------- */

struct cp_learner;

/* What the learner works with; all borrowed, and must outlive it. */
struct cp_learner_deps {
    struct cp_policies *policies;
    struct cp_feedback *feedback;
    struct cp_stats *stats; /* cost and latency of this replica's proxies (last hour) */
    struct cp_store *store;
    const char *id; /* this replica's id (copied): the candidate in the election */
};

/* A learner on <deps>; nothing runs before cp_learner_start. Never NULL (aborts on OOM). */
struct cp_learner *cp_learner_new(const struct cp_learner_deps *deps);

/* Starts the thread. Returns 0 or -errno. */
int cp_learner_start(struct cp_learner *l);

/* Stops the thread (waits for a round in progress), resigns the leadership so another
 * replica takes over at once, and frees <l>. Accepts NULL. */
void cp_learner_free(struct cp_learner *l);

/* Registers /v1/learn on the admin API. Returns 0 or -errno. */
int cp_learner_register(struct cp_learner *l, struct cp_admin *admin);

/* Whether this replica led at its last round. Any thread. */
bool cp_learner_is_leader(struct cp_learner *l);

/* The reply of GET /v1/learn (docs/admin-api.md, Learning); caller frees. NULL and *status
 * set (503) when the store cannot be read. Admin thread. */
struct cJSON *cp_learner_status_json(struct cp_learner *l, int *status, char **errmsg);

#endif
