/* controlplane/cp_spend.h - spend per tenant and model, per UTC day, persisted in the store.
 *
 * Each proxy node has one ledger per day under the store key spend/<YYYY-MM-DD>/<node>:
 * its requests, tokens and cost (nano-dollars, integers: sums never drift) per tenant and
 * model, plus, per proxy process (boot id), the sequence number of the last telemetry report
 * counted in it. That number makes applying a report idempotent across resends, control
 * plane restarts and replicas: a report at or below it is a duplicate and counts nothing.
 * Ledgers are written whole (one key, one atomic compare-and-swap over the copy they were
 * read from, so two replicas never overwrite each other) by cp_spend_flush; cp_telemetry
 * acknowledges a report to its proxy only after the flush that made it durable, so a crash
 * at any point loses nothing and counts nothing twice. A report belongs to the day of its
 * end time. The control plane holding a node's stream writes its ledgers; when the stream
 * moves, the next holder reads them again (cp_spend_forget).
 *
 * Threads: any; one mutex. Store I/O happens under it (the store is the bottleneck anyway).
 */
#ifndef CP_SPEND_H
#define CP_SPEND_H

#include <stdbool.h>
#include <stdint.h>

#include "switchyard/v1/telemetry.pb-c.h"

struct cp_spend;
struct cp_store;
struct cJSON;
struct sy_policy;

struct cp_spend *cp_spend_new(struct cp_store *store);
void cp_spend_free(struct cp_spend *sp);

/* Whether <rep> is new (1) or was counted before (0), without counting it; -errno when its
 * ledger cannot be read from the store. */
int cp_spend_check(struct cp_spend *sp, const Switchyard__V1__TelemetryReport *rep);

/* Counts <rep> in its node's ledger unless it was counted before. Returns 1 when applied,
 * 0 for a duplicate, -errno when the ledger could not be read from the store (nothing
 * applied; the proxy will send it again). */
int cp_spend_apply(struct cp_spend *sp, const Switchyard__V1__TelemetryReport *rep);

/* Forgets the cached ledgers of <node>, so they are read again from the store: when its
 * stream (re)opens here, another replica may have counted its reports meanwhile. What is
 * dropped unwritten was never acknowledged, so the proxy sends it again. */
void cp_spend_forget(struct cp_spend *sp, const char *node);

/* A ledger of <node> could not be written (<rc>: -EEXIST when another control plane wrote it
 * since it was read; the ledger is then dropped, to be read again). */
typedef void (*cp_spend_failed_fn)(void *arg, const char *node, int rc);

/* Writes every changed ledger, each with compare-and-swap over the copy it was read from.
 * Calls <failed> (may be NULL) for each one that could not be written. Returns 0, or the
 * first -errno (failed ledgers stay dirty and are retried, except conflicts). */
int cp_spend_flush(struct cp_spend *sp, cp_spend_failed_fn failed, void *arg);

/* Drops ledgers older than yesterday that are clean (they are in the store). */
void cp_spend_trim(struct cp_spend *sp, int64_t now_ms);

/* GET /v1/spend: <period> "day" or "month", <date> "YYYY-MM-DD" / "YYYY-MM" or NULL for the
 * current one at <now_ms>. <pol> (may be NULL) gives labels and budgets. Returns the JSON,
 * or NULL with *status and *errmsg (caller frees) set: 400 for a bad period or date, 503
 * when the store cannot be read. */
struct cJSON *cp_spend_json(struct cp_spend *sp, const char *period, const char *date,
                            int64_t now_ms, const struct sy_policy *pol, int *status,
                            char **errmsg);

/* "YYYY-MM-DD" of the UTC day holding <unix_ms>. */
void cp_spend_day(int64_t unix_ms, char out[11]);

#endif
