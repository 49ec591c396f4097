/* controlplane/store/cp_store.h - the control plane's durable key-value store.
 *
 * One small interface, two backends: an embedded file store (one node; the default) and
 * etcd through its v3 JSON gateway (a fleet of control planes). Everything the control
 * plane must not lose (policy versions, the active pointer, spend, learned state) goes
 * through it, so both backends behave the same above this line. Semantics follow etcd:
 * every write bumps a store-wide revision; each key remembers the revision that created
 * it and the one that last modified it; compare-and-swap is on mod_revision.
 *
 * Threads: a store may be called from any thread; calls are serialised inside. Watch
 * callbacks run on the store's own thread and must not block for long.
 */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cp_store;

/* Limits both backends enforce, so the two behave the same: a key longer than
 * CP_STORE_MAX_KEY bytes or a value longer than CP_STORE_MAX_VALUE is refused with -E2BIG,
 * an empty key with -EINVAL. (etcd refuses requests over 1.5 MiB by default and values
 * travel base64-encoded, so 1 MiB is what fits.) */
#define CP_STORE_MAX_KEY 1024
#define CP_STORE_MAX_VALUE (1024 * 1024)

struct cp_kv {
    char *key;
    char *value; /* NUL-terminated for convenience; may contain NULs before value_len */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
};

/* Called for each change under a watched prefix, in revision order. <value> is NULL when
 * the key was deleted. */
typedef void (*cp_store_watch_fn)(void *arg, const char *key, const char *value, size_t value_len,
                                  int64_t mod_revision);

struct cp_store_ops {
    const char *name; /* "file" or "etcd" */
    /* Whether several control planes can use the store at once (etcd), or only the one
     * process holding it (the file store's directory lock). */
    bool shared;
    /* Reads one key. 0 with *out (caller frees with cp_kv_free), -ENOENT, or -errno. */
    int (*get)(struct cp_store *s, const char *key, struct cp_kv **out);
    /* Reads every key starting with <prefix>, sorted by key. *out is an array of *n
     * entries (caller frees with cp_kv_array_free). */
    int (*range)(struct cp_store *s, const char *prefix, struct cp_kv **out, size_t *n);
    /* Writes unconditionally. *rev (may be NULL) receives the new mod_revision. */
    int (*put)(struct cp_store *s, const char *key, const char *value, size_t len, int64_t *rev);
    /* Writes only when the key's mod_revision equals <expected> (0 = the key must not
     * exist). Returns 0, or -EEXIST when the condition failed, or -errno. */
    int (*cas)(struct cp_store *s, const char *key, const char *value, size_t len, int64_t expected,
               int64_t *rev);
    /* Deletes a key; 0 even when it did not exist. */
    int (*del)(struct cp_store *s, const char *key);
    /* Starts watching <prefix> from revision <from_rev> (0 = changes after now); <cb> runs
     * on the store's thread. One watch per store is enough for the control plane. */
    int (*watch)(struct cp_store *s, const char *prefix, int64_t from_rev, cp_store_watch_fn cb,
                 void *arg);
    /* Is the store reachable now? (cheap; for /readyz) */
    bool (*healthy)(struct cp_store *s);
    /* Leader election, one round: called about once a second by each would-be leader, with
     * the same <key>, its own <id> (unique per replica) and <ttl_s> (> 0, the same every
     * call). Sets *leader to whether this caller leads now. The leader holds <key> (value
     * <id>) for as long as it keeps calling: etcd ties the key to a lease of <ttl_s> that
     * each call renews, so a leader that stops calling (crash, partition) loses the key
     * within <ttl_s> and another caller takes it on its next round; the file store has one
     * process (it holds the directory's lock), which always leads. Each key is its own
     * election (at most 8 per store, then -ENOSPC). Returns 0, or -errno when the store did
     * not answer (or -EINVAL for an empty key or id, ttl_s <= 0); *leader
     * is set in every case, and stays true on an error only while the last confirmed
     * renewal is younger than <ttl_s> minus a second, so two replicas never both believe
     * they lead for longer than a clock tick. */
    int (*campaign)(struct cp_store *s, const char *key, const char *id, int ttl_s, bool *leader);
    /* Gives up what campaign won, at once (etcd: revokes the lease, which deletes <key>), so
     * another replica takes over on its next round instead of after the TTL. 0 when there
     * was nothing to give up; -errno when the store did not answer. */
    int (*resign)(struct cp_store *s, const char *key);
    /* Stops watches and frees. Must not be called from a watch callback. */
    void (*free)(struct cp_store *s);
};

struct cp_store {
    const struct cp_store_ops *ops;
    char *prefix; /* every key is stored under this prefix, e.g. "/switchyard" */
};

/* Opens a store from a spec: "file:DIR" or "etcd:http://H:P[,http://H:P...]". <prefix> is
 * prepended to every key (etcd) or ignored (file). Returns NULL with *errmsg set. */
struct cp_store *cp_store_open(const char *spec, const char *prefix, char **errmsg);

void cp_kv_free(struct cp_kv *kv);
void cp_kv_array_free(struct cp_kv *kvs, size_t n);

/* Convenience wrappers over the ops. */
static inline int cp_store_get(struct cp_store *s, const char *key, struct cp_kv **out)
{
    return s->ops->get(s, key, out);
}
static inline int cp_store_range(struct cp_store *s, const char *prefix, struct cp_kv **out,
                                 size_t *n)
{
    return s->ops->range(s, prefix, out, n);
}
static inline int cp_store_put(struct cp_store *s, const char *key, const char *value, size_t len,
                               int64_t *rev)
{
    return s->ops->put(s, key, value, len, rev);
}
static inline int cp_store_cas(struct cp_store *s, const char *key, const char *value, size_t len,
                               int64_t expected, int64_t *rev)
{
    return s->ops->cas(s, key, value, len, expected, rev);
}
static inline int cp_store_del(struct cp_store *s, const char *key)
{
    return s->ops->del(s, key);
}
static inline int cp_store_watch(struct cp_store *s, const char *prefix, int64_t from_rev,
                                 cp_store_watch_fn cb, void *arg)
{
    return s->ops->watch(s, prefix, from_rev, cb, arg);
}
static inline bool cp_store_healthy(struct cp_store *s)
{
    return s->ops->healthy(s);
}
static inline int cp_store_campaign(struct cp_store *s, const char *key, const char *id, int ttl_s,
                                    bool *leader)
{
    return s->ops->campaign(s, key, id, ttl_s, leader);
}
static inline int cp_store_resign(struct cp_store *s, const char *key)
{
    return s->ops->resign(s, key);
}
static inline void cp_store_free(struct cp_store *s)
{
    if (s)
        s->ops->free(s);
}

#endif
