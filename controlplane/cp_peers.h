/* controlplane/cp_peers.h - the other control-plane replicas, for fleet-wide admin views.
 *
 * Each proxy streams its policy and telemetry to one replica, so a replica alone sees part
 * of the fleet. Replicas sharing a store (etcd) register their admin URL under
 * "replicas/<id>", tied to a lease (the store's campaign op with a key of their own): a
 * replica that dies drops out within CP_PEERS_TTL_S. A replica answering /v1/stats,
 * /v1/health or /v1/fleet asks its peers in parallel and merges their answers with its own
 * (cp_views, cp_admin); a peer that does not answer within CP_PEERS_TIMEOUT_MS is named in
 * the answer instead of holding it up. On a store only one process can use (the file
 * store) there are no peers and nothing is registered.
 *
 * Threads: a registry thread (one store round a second); each cp_peers_get runs its
 * requests on a thread of its own and calls back on the main loop. Everything else: main
 * thread.
 */
#ifndef CP_PEERS_H
#define CP_PEERS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#define CP_PEERS_PREFIX "replicas/"
#define CP_PEERS_TTL_S 5
#define CP_PEERS_TIMEOUT_MS 1500

struct cJSON;
struct cp_peers;
struct cp_store;

/* <admin_url> ("http://HOST:PORT") is what peers use to reach this replica; NULL or "" to
 * stay unregistered (peers are still asked). NULL only on bad arguments. */
struct cp_peers *cp_peers_new(struct event_base *base, struct cp_store *store, const char *id,
                              const char *admin_url);

/* Starts the registry thread (nothing on a store that is not shared). 0 or -errno. */
int cp_peers_start(struct cp_peers *p);

/* Stops the registry and withdraws the registration at once (peers stop asking). Main
 * thread, before the admin server stops answering. Accepts NULL. */
void cp_peers_withdraw(struct cp_peers *p);

/* Withdraws the registration (if still there), waits for the requests in flight (their callbacks
 * run with what they got) and frees. Accepts NULL. Main thread, after the admin server is freed. */
void cp_peers_free(struct cp_peers *p);

/* One peer's answer. status 0: no HTTP answer (then error says why). */
struct cp_peer_reply {
    char *id, *url;
    int status;
    char *body;
    size_t len;
    char *error;
};

/* Called on the main loop with every peer's reply (n may be 0 when the last peer left
 * meanwhile); the replies are freed after it returns. */
typedef void (*cp_peers_done_fn)(void *arg, const struct cp_peer_reply *replies, size_t n);

/* Asks every known peer for GET <path> ("/v1/stats/export?window=1m") in parallel. Returns
 * false when there is no peer, or when 8 fan-outs are in flight already
 * (<done> is not called: answer from this replica alone, with cp_peers_summary_local). */
bool cp_peers_get(struct cp_peers *p, const char *path, cp_peers_done_fn done, void *arg);

/* The "replicas" member of a merged answer: {"answered":[ids], "unreachable":[{"id",
 * "url","error"}]}. <why>[i] is NULL when replies[i] was used, else why it was not; this
 * replica counts as answered. Caller owns the result. */
struct cJSON *cp_peers_summary(const struct cp_peers *p, const struct cp_peer_reply *replies,
                               const char *const *why, size_t n);

/* The "replicas" member of an answer that did not ask the peers: each known peer is listed
 * as unreachable with <why>, or none when <why> is NULL (there are none). */
struct cJSON *cp_peers_summary_local(struct cp_peers *p, const char *why);

/* Why <r> cannot be used as an answer (no answer, or not a 200), or NULL. Heap string in
 * *buf (caller frees) when not NULL. */
const char *cp_peers_failure(const struct cp_peer_reply *r, char **buf);

/* This replica's id. */
const char *cp_peers_self(const struct cp_peers *p);

#endif
