/* dataplane/dp_proxy.h - the proxy process: options, workers, policy, signals, drain.
 *
 * The main thread owns this context: it loads the policy, starts the workers, and turns
 * SIGHUP into a policy reload and SIGTERM/SIGINT into a bounded drain. Workers read the
 * context but write only its atomic fields.
 */
#ifndef DP_PROXY_H
#define DP_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_health.h"
#include "dp_snapshot.h"

struct dp_worker;
struct dp_telemetry;
struct dp_feedback_seen;
struct sy_reqid_key;

#define DP_FLEET_KEY_ENV "SWITCHYARD_FLEET_KEY" /* standalone mode: the key, as bytes */
#define DP_PROCESS_KEY_LEN 32                   /* bytes of a per-process random key */

/* A key request ids are signed with (common/sy_reqid.h). Immutable once made and
 * reference-counted: workers sign and check with a reference while the control-plane
 * thread may swap in another. */
struct dp_fleet_key {
    atomic_int refcount;
    bool from_fleet;           /* false: this process's own random key */
    struct sy_reqid_key *sign; /* the key prepared for sy_reqid_sign / sy_reqid_verify */
    size_t len;
    uint8_t bytes[]; /* the key itself, to tell whether a snapshot brings another one */
};

struct dp_options {
    const char *listen;        /* HOST:PORT; port 0 picks one */
    const char *policy_path;   /* standalone mode */
    const char *control_plane; /* managed mode: HOST:PORT of the control plane's gRPC */
    const char *node_id;       /* managed mode: this proxy's name in the fleet */
    const char *zone;          /* managed mode: optional zone label */
    const char *state_dir;     /* managed mode: where the last good snapshot is kept */
    const char *access_log;    /* path, "-" for stdout, "off" */
    int workers;               /* 0 = online cores */
    uint32_t drain_timeout_ms;
    uint32_t telemetry_interval_ms; /* managed mode */
    size_t telemetry_backlog;
};

struct dp_proxy {
    struct dp_options opt;
    struct dp_snapshot_holder holder;
    struct dp_health_table health; /* per target, shared by all workers and snapshots */
    int access_log_fd;             /* -1 when off */
    atomic_bool draining;
    atomic_int live_workers;
    int64_t loads; /* policy versions loaded from the file (main thread) */
    struct dp_worker *workers;
    int n_workers;
    char bound[80];                 /* the address actually listened on */
    struct dp_telemetry *telemetry; /* managed mode; set before the workers start */

    /* Request-id keys (dp_proxy_fleet_keys). <key> signs new ids; <prev_key>, the key it
     * replaced, still verifies ids signed before the swap. Both guarded by key_lock. */
    pthread_mutex_t key_lock;
    struct dp_fleet_key *key;
    struct dp_fleet_key *prev_key;
    struct dp_fleet_key *process_key;       /* immutable: this process's random key */
    struct dp_feedback_seen *feedback_seen; /* managed mode: ids that got feedback here */
};

/* Runs the proxy until it is told to stop. Returns the process exit code. */
int dp_proxy_run(const struct dp_options *opt);

/* Loads and publishes the policy file; on failure the current policy stays. Main thread.
 * Returns 0 or a negative errno (the reason is logged). */
int dp_proxy_reload(struct dp_proxy *px);

/* Prepares the request-id keys of <px> (embedded, zeroed): a per-process random key, and
 * in standalone mode the key in $SWITCHYARD_FLEET_KEY when it is set and not empty. Logs
 * which one signs. Main thread, before the workers start. Returns 0 or -errno. */
int dp_proxy_keys_init(struct dp_proxy *px);

/* Releases the keys. Main thread, once no other thread runs. */
void dp_proxy_keys_cleanup(struct dp_proxy *px);

/* Managed mode: the fleet key of an applied snapshot, <len> bytes at <key> (copied);
 * <len> 0 means the control plane has none, so the per-process key signs. The key being
 * replaced keeps verifying ids it signed. Returns true when the key changed, false when it
 * is the one in use already. Any thread (the control-plane thread in practice). */
bool dp_proxy_set_fleet_key(struct dp_proxy *px, const uint8_t *key, size_t len);

/* The key that signs new ids now (a new reference, NULL before dp_proxy_keys_init), and,
 * when <prev> is not NULL, in *prev a reference to the previous key that still verifies
 * (NULL when none). Release each with dp_fleet_key_unref. Any thread. */
struct dp_fleet_key *dp_proxy_fleet_keys(struct dp_proxy *px, struct dp_fleet_key **prev);

/* Drops a reference; the last one wipes and frees the key. Accepts NULL. Any thread. */
void dp_fleet_key_unref(struct dp_fleet_key *k);

#endif
