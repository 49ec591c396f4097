/* controlplane/cp_telemetry.h - the Telemetry gRPC service: proxies' reports in, acks out.
 *
 * Each report is deduplicated, its feedback handed to the feedback sink, then it is counted
 * in the spend ledgers (cp_spend) and added to the traffic views (cp_stats). A flusher thread
 * writes the ledgers every CP_TELEMETRY_FLUSH_MS and then acknowledges, on each stream, the
 * reports applied before that write: an acknowledged report is durable. When the store
 * cannot be read to place a report, the stream is closed with UNAVAILABLE so that the proxy
 * sends it again later (reports after it must not overtake it).
 *
 * Threads: stream callbacks on the gRPC thread; the flusher on its own; the rest main.
 */
#ifndef CP_TELEMETRY_H
#define CP_TELEMETRY_H

#include "switchyard/v1/telemetry.pb-c.h"

struct cp_telemetry;
struct cp_stats;
struct cp_spend;
struct sy_grpc_server;

#define CP_TELEMETRY_METHOD "/switchyard.v1.Telemetry/StreamTelemetry"
#define CP_TELEMETRY_FLUSH_MS 250
#define CP_TELEMETRY_NAME_MAX 256 /* longest name a report may carry */

/* Receives each forwarded feedback of a report before the report counts. Returns 0 (stored,
 * duplicate or refused: done with), or < 0 when it could not be stored now: the report is
 * then not counted and the stream is closed, so that the proxy sends it again. gRPC thread. */
typedef int (*cp_feedback_fn)(void *arg, const Switchyard__V1__Feedback *fb, const char *node);

/* <stats> and <spend> are borrowed and must outlive the service. Starts the flusher. */
struct cp_telemetry *cp_telemetry_new(struct cp_stats *stats, struct cp_spend *spend);

/* Where forwarded feedback goes (before the server starts). */
void cp_telemetry_set_feedback(struct cp_telemetry *t, cp_feedback_fn fn, void *arg);

/* Registers StreamTelemetry on <srv> (before the server starts). Returns 0 or -errno. */
int cp_telemetry_register(struct cp_telemetry *t, struct sy_grpc_server *srv);

/* Stops the flusher after a last flush and frees; the gRPC server must be freed first. */
void cp_telemetry_free(struct cp_telemetry *t);

#endif
