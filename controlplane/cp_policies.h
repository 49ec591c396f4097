/* controlplane/cp_policies.h - policy versions: compile, store, list, diff, activate, and
 * follow the active pointer.
 *
 * Versions are immutable records in the store (store keys in docs/internals/store.md):
 *   /policies/versions/<20-digit N>  {"version","hash","created_unix_ms","note",
 *                                     "rollback_of","source","compiled"}
 *   /policies/active                 {"version","activated_unix_ms"}
 * Version numbers are allocated by create-if-absent on the version key, so two control
 * planes sharing etcd never hand out the same number. Every replica watches the active
 * pointer and hands each change to the on_active callback (the discovery service pushes
 * it to the fleet). Rollback never edits history: activating an older version N stores a
 * new version M with N's source and rollback_of = N.
 *
 * Threads: the API may be called from any thread (the admin loop); the on_active callback
 * runs on the store's watch thread or on the caller's thread.
 */
#ifndef CP_POLICIES_H
#define CP_POLICIES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_store.h"

struct cp_policies;
struct sy_policy;
struct cJSON;

/* One stored version. */
struct cp_version {
    int64_t version;
    char hash[17]; /* SHA-256 of the canonical compiled JSON, first 16 hex digits */
    int64_t created_unix_ms;
    char *note;
    int64_t rollback_of; /* 0 = none */
    char *source;        /* what the operator pushed */
    char *compiled;      /* canonical JSON of the compiled policy */
};

/* The active version, ready to send: immutable, refcounted (shared with the discovery
 * service, which may hold it on another thread). */
struct cp_active {
    atomic_int refcount;
    int64_t version;
    char hash[17];
    int64_t created_unix_ms;
    char *note;
    uint8_t *policy_pb; /* packed switchyard.v1.Policy */
    size_t policy_pb_len;
    struct sy_policy *policy; /* compiled once, shared read-only (take a ref to keep it) */
};

typedef void (*cp_active_fn)(void *arg, struct cp_active *active);

/* Opens the version history in <store> (borrowed; must outlive the result) and loads the
 * active version. <on_active>(<arg>, active) runs for the initial active version (if any)
 * and every change after; it borrows <active> (ref it to keep it). NULL with *errmsg. */
struct cp_policies *cp_policies_new(struct cp_store *store, cp_active_fn on_active, void *arg,
                                    char **errmsg);
void cp_policies_free(struct cp_policies *ps);

/* Compiles and stores <src> as a new version; activates it unless <activate> is false.
 * Returns the version (> 0); or -EINVAL with *errmsg listing the compile errors, one per
 * line, each "path: message"; or another negative errno with *errmsg (store failure).
 * *activated tells whether it became active (a newer version may have won a race). */
int64_t cp_policies_push(struct cp_policies *ps, const char *src, size_t len, const char *note,
                         bool activate, bool *activated, char **errmsg);

/* Makes version <v> active: a version newer than every active one so far is activated
 * itself; an older one is re-stored as a new version pointing back to it (rollback).
 * Returns the version now active, or -ENOENT, or another negative errno with *errmsg.
 * *rollback_of receives the version rolled back to (0 when none). */
int64_t cp_policies_activate(struct cp_policies *ps, int64_t v, int64_t *rollback_of,
                             char **errmsg);

/* Makes the stored version <v> active only while version <expected> still is: for writers
 * that built <v> from <expected> (the learner) and must not override a version someone else
 * activated in between. Never stores a rollback copy. Returns <v>; -EAGAIN when the active
 * version is no longer <expected> (nothing changed); -EINVAL when <v> is not newer than
 * <expected>; or another negative errno with *errmsg (store failure). */
int64_t cp_policies_activate_if(struct cp_policies *ps, int64_t v, int64_t expected, char **errmsg);

/* Loads version <v> (caller frees with cp_version_free). 0, -ENOENT or -errno. */
int cp_policies_get(struct cp_policies *ps, int64_t v, struct cp_version **out);
void cp_version_free(struct cp_version *v);

/* All versions, newest first (caller frees with cp_version_array_free). Sources and
 * compiled forms are left out (NULL). */
int cp_policies_list(struct cp_policies *ps, struct cp_version **out, size_t *n);
void cp_version_array_free(struct cp_version *vs, size_t n);

/* The active version number (0 = none). */
int64_t cp_policies_active_version(struct cp_policies *ps);

/* The active version's compiled policy with a new reference (drop it with
 * sy_policy_unref), and its number in *version (may be NULL); NULL and 0 when none. */
struct sy_policy *cp_policies_active_policy(struct cp_policies *ps, int64_t *version);

/* A reference to the active version (NULL = none); drop it with cp_active_unref. */
struct cp_active *cp_policies_active(struct cp_policies *ps);
struct cp_active *cp_active_ref(struct cp_active *a);
void cp_active_unref(struct cp_active *a);

#endif
