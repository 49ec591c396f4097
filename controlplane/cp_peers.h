/* controlplane/cp_peers.h - the other control-plane replicas, for fleet-wide admin views.
 *
 * Each proxy streams its policy and telemetry to one replica, so a replica alone sees part
 * of the fleet. Replicas sharing a store (etcd) register their admin URL under
 * "replicas/<id>", tied to a lease (the store's campaign op with a key of their own): a
 * replica that dies drops out within CP_PEERS_TTL_S. A replica answering /v1/stats,
 * /v1/health or /v1/fleet asks its peers in parallel and merges their answers with its own
 * (cp_views, cp_fleet, through cp_peers_answer); a peer that does not answer within
 * CP_PEERS_TIMEOUT_MS is named in the answer instead of holding it up. On a store only one process
 * can use (the file store) there are no peers and nothing is registered.
 *
 * Threads: a registry thread (one store round a second); each fan-out runs its
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
struct sy_http_req;
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

/* Builds the document of an answer: from this replica alone when <replies> is NULL, else
 * merged with replies[0..n). why[i] is set for a reply that cannot be used (no answer, not
 * a 200); the builder sets it for one it cannot use either (a static string). */
typedef struct cJSON *(*cp_peers_build_fn)(void *ctx, const struct cp_peer_reply *replies,
                                           const char **why, size_t n);

/* Answers the GET <req> with <build>'s document and its "replicas" member
 * ({"answered":[ids], "unreachable":[{"id","url","error"}]}). With ?scope=fleet (the
 * default) every peer is asked for GET <path> in parallel first and <build> runs on the main
 * loop once all answered or failed (never if the client left meanwhile); ?scope=replica, no
 * peers, or 8 fan-outs in flight already: this replica alone (then its known peers are
 * listed as not asked). Another scope is 400 invalid_scope. <ctx> (<ctx_len> bytes) is
 * copied. <p> may be NULL: this replica alone, without a "replicas" member. */
void cp_peers_answer(struct cp_peers *p, struct sy_http_req *req, const char *path,
                     cp_peers_build_fn build, const void *ctx, size_t ctx_len);

/* This replica's id. */
const char *cp_peers_self(const struct cp_peers *p);

#endif
