/* controlplane/cp_discovery.h - the PolicyDiscovery gRPC service and the fleet view.
 *
 * Each proxy holds one StreamPolicies stream (docs/protocol.md). The service sends the
 * active version on the first request of a stream and again on every change; a proxy
 * answers each snapshot with an ACK or a NACK carrying the snapshot's nonce. The fleet
 * view records, per node: address, connection times, acked version and the last NACK.
 *
 * Threads: stream callbacks run on the gRPC thread; cp_discovery_set_active and the fleet
 * view may be called from any thread. One mutex guards the sessions.
 */
#ifndef CP_DISCOVERY_H
#define CP_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "cp_policies.h"

struct cp_discovery;
struct sy_grpc_server;
struct cJSON;

#define CP_DISCOVERY_METHOD "/switchyard.v1.PolicyDiscovery/StreamPolicies"

/* Creates the service; <cp_id> names this control plane in nonces and logs. */
struct cp_discovery *cp_discovery_new(const char *cp_id);

/* The fleet key every snapshot carries (proxies sign request ids with it). Before the first
 * active version is set. At most 64 bytes are kept. */
void cp_discovery_set_fleet_key(struct cp_discovery *d, const uint8_t *key, size_t len);

/* Registers StreamPolicies on <srv> (before the server starts). Returns 0 or -errno. */
int cp_discovery_register(struct cp_discovery *d, struct sy_grpc_server *srv);

/* Makes <a> the version to serve and pushes it to every connected proxy. Takes a new
 * reference on <a>. Any thread. */
void cp_discovery_set_active(struct cp_discovery *d, struct cp_active *a);

/* The fleet as JSON (docs/admin-api.md, GET /v1/fleet). Caller frees with cJSON_Delete. */
struct cJSON *cp_discovery_fleet_json(struct cp_discovery *d);

/* Frees the service; the gRPC server must be freed first (no stream is left). */
void cp_discovery_free(struct cp_discovery *d);

#endif
