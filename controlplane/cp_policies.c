/* controlplane/cp_policies.c - policy versions on the store; the active pointer. */
#define SY_LOG_MODULE "policies"

#include "cp_policies.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_log.h"
#include "sy_policy.h"
#include "sy_policy_pb.h"
#include "sy_util.h"

#define CP_VERSIONS_PREFIX "/policies/versions/"
#define CP_ACTIVE_KEY "/policies/active"
#define CP_MAX_ALLOC_TRIES 1000

struct cp_policies {
    struct cp_store *store;
    cp_active_fn on_active;
    void *arg;
    pthread_mutex_t follow_lock; /* serialises follow_active */
    pthread_mutex_t lock;
    struct cp_active *active; /* guarded by lock */
    int64_t next_hint;        /* guarded by lock: first version number worth trying */
};

static void version_key(int64_t v, char *buf, size_t len)
{
    snprintf(buf, len, CP_VERSIONS_PREFIX "%020" PRId64, v);
}

void cp_version_free(struct cp_version *v)
{
    if (!v)
        return;
    free(v->note);
    free(v->source);
    free(v->compiled);
    free(v);
}

void cp_version_array_free(struct cp_version *vs, size_t n)
{
    for (size_t i = 0; i < n && vs; i++) {
        free(vs[i].note);
        free(vs[i].source);
        free(vs[i].compiled);
    }
    free(vs);
}

struct cp_active *cp_active_ref(struct cp_active *a)
{
    atomic_fetch_add_explicit(&a->refcount, 1, memory_order_relaxed);
    return a;
}

void cp_active_unref(struct cp_active *a)
{
    if (!a || atomic_fetch_sub_explicit(&a->refcount, 1, memory_order_acq_rel) != 1)
        return;
    free(a->note);
    free(a->policy_pb);
    sy_policy_unref(a->policy);
    free(a);
}

struct sy_policy *cp_policies_active_policy(struct cp_policies *ps, int64_t *version)
{
    struct cp_active *a = cp_policies_active(ps);
    struct sy_policy *pol = a ? sy_policy_ref(a->policy) : NULL;

    if (version)
        *version = a ? a->version : 0;
    cp_active_unref(a);
    return pol;
}

static int64_t json_i64(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Fills <out> from a stored record; <full> also copies source and compiled. */
static int parse_record(const char *value, size_t len, bool full, struct cp_version *out)
{
    cJSON *root = cJSON_ParseWithLength(value, len);
    const char *s;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -EIO;
    }
    out->version = json_i64(root, "version");
    s = json_str(root, "hash");
    snprintf(out->hash, sizeof(out->hash), "%s", s ? s : "");
    out->created_unix_ms = json_i64(root, "created_unix_ms");
    out->rollback_of = json_i64(root, "rollback_of");
    s = json_str(root, "note");
    out->note = sy_xstrdup(s ? s : "");
    if (full) {
        s = json_str(root, "source");
        out->source = sy_xstrdup(s ? s : "");
        s = json_str(root, "compiled");
        out->compiled = sy_xstrdup(s ? s : "");
    }
    cJSON_Delete(root);
    return out->version > 0 ? 0 : -EIO;
}

int cp_policies_get(struct cp_policies *ps, int64_t v, struct cp_version **out)
{
    char key[64];
    struct cp_kv *kv = NULL;
    struct cp_version *ver;
    int rc;

    version_key(v, key, sizeof(key));
    rc = cp_store_get(ps->store, key, &kv);
    if (rc < 0)
        return rc;
    ver = sy_xcalloc(1, sizeof(*ver));
    rc = parse_record(kv->value, kv->value_len, true, ver);
    cp_kv_free(kv);
    if (rc < 0) {
        cp_version_free(ver);
        return rc;
    }
    *out = ver;
    return 0;
}

int cp_policies_list(struct cp_policies *ps, struct cp_version **out, size_t *n)
{
    struct cp_kv *kvs = NULL;
    size_t nk = 0, k = 0;
    struct cp_version *vs;
    int rc = cp_store_range(ps->store, CP_VERSIONS_PREFIX, &kvs, &nk);

    if (rc < 0)
        return rc;
    vs = sy_xcalloc(nk + 1, sizeof(*vs));
    /* Keys sort by zero-padded number: walk backwards for newest first. */
    for (size_t i = nk; i-- > 0;) {
        if (parse_record(kvs[i].value, kvs[i].value_len, false, &vs[k]) == 0)
            k++;
        else
            free(vs[k].note);
    }
    cp_kv_array_free(kvs, nk);
    *out = vs;
    *n = k;
    return 0;
}

/* Compiles a stored version into a ready-to-send active record. */
static struct cp_active *make_active(const struct cp_version *ver, char **errmsg)
{
    struct sy_policy *pol = sy_policy_compile(ver->source, strlen(ver->source), errmsg);
    struct cp_active *a;

    if (!pol)
        return NULL;
    a = sy_xcalloc(1, sizeof(*a));
    atomic_init(&a->refcount, 1);
    a->version = ver->version;
    memcpy(a->hash, ver->hash, sizeof(a->hash));
    a->created_unix_ms = ver->created_unix_ms;
    a->note = sy_xstrdup(ver->note ? ver->note : "");
    a->policy_pb = sy_policy_pack(pol, &a->policy_pb_len);
    pol->version = ver->version;
    a->policy = pol;
    return a;
}

/* The active pointer moved to <v> (from the watch or from this process): load it and tell
 * the listener. Versions that are not newer than the current one are ignored, so repeated
 * or reordered notifications are harmless. */
static void follow_active(struct cp_policies *ps, int64_t v)
{
    struct cp_version *ver = NULL;
    struct cp_active *a, *old;
    char *err = NULL;

    /* The watch thread and an activating admin call may both get here for one change:
     * one at a time, and only forwards (active versions only ever grow: rollbacks are
     * new versions). */
    pthread_mutex_lock(&ps->follow_lock);
    pthread_mutex_lock(&ps->lock);
    bool stale = ps->active && ps->active->version >= v;
    pthread_mutex_unlock(&ps->lock);
    if (stale || v <= 0)
        goto out_unlock;
    if (cp_policies_get(ps, v, &ver) < 0) {
        sy_error("active version %" PRId64 " cannot be read from the store", v);
        goto out_unlock;
    }
    a = make_active(ver, &err);
    cp_version_free(ver);
    if (!a) {
        sy_error("active version %" PRId64 " no longer compiles; keeping the previous one: %s", v,
                 err ? err : "?");
        free(err);
        goto out_unlock;
    }
    pthread_mutex_lock(&ps->lock);
    old = ps->active;
    ps->active = cp_active_ref(a); /* one reference for ps, one for the callback below */
    if (ps->next_hint <= v)
        ps->next_hint = v + 1;
    pthread_mutex_unlock(&ps->lock);
    cp_active_unref(old);
    sy_info("active policy is now version %" PRId64 " (%s)", v, a->hash);
    if (ps->on_active)
        ps->on_active(ps->arg, a);
    cp_active_unref(a);

out_unlock:
    pthread_mutex_unlock(&ps->follow_lock);
}

static int64_t parse_active(const char *value, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(value, len);
    int64_t v = json_i64(root, "version");
    cJSON_Delete(root);
    return v;
}

static void on_store_change(void *arg, const char *key, const char *value, size_t len, int64_t rev)
{
    struct cp_policies *ps = arg;
    (void)rev;

    if (value && strcmp(key, CP_ACTIVE_KEY) == 0)
        follow_active(ps, parse_active(value, len));
}

/* Reads the active pointer: its version (0 = none) and mod_revision. */
static int read_active(struct cp_policies *ps, int64_t *version, int64_t *mod_rev)
{
    struct cp_kv *kv = NULL;
    int rc = cp_store_get(ps->store, CP_ACTIVE_KEY, &kv);

    *version = 0;
    *mod_rev = 0;
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *version = parse_active(kv->value, kv->value_len);
    *mod_rev = kv->mod_revision;
    cp_kv_free(kv);
    return 0;
}

/* Points the active key at <v> unless a newer version is already active. Returns 1 when
 * <v> became active, 0 when a newer one won, or a negative errno. */
static int set_active(struct cp_policies *ps, int64_t v)
{
    for (int tries = 0; tries < CP_MAX_ALLOC_TRIES; tries++) {
        int64_t cur, rev;
        char *val;
        int rc = read_active(ps, &cur, &rev);

        if (rc < 0)
            return rc;
        if (cur >= v)
            return cur == v;
        val = sy_xasprintf("{\"version\":%" PRId64 ",\"activated_unix_ms\":%" PRIu64 "}", v,
                           sy_wall_us() / 1000);
        rc = cp_store_cas(ps->store, CP_ACTIVE_KEY, val, strlen(val), rev, NULL);
        free(val);
        if (rc == 0) {
            follow_active(ps, v);
            return 1;
        }
        if (rc != -EEXIST)
            return rc;
    }
    return -EAGAIN;
}

/* Stores a new version record; allocates its number. Returns the version or -errno. */
static int64_t store_version(struct cp_policies *ps, const char *source, const char *compiled,
                             const char *hash, const char *note, int64_t rollback_of)
{
    cJSON *rec = cJSON_CreateObject();
    int64_t v, now = (int64_t)(sy_wall_us() / 1000);
    int rc = -EAGAIN;

    pthread_mutex_lock(&ps->lock);
    v = ps->next_hint;
    pthread_mutex_unlock(&ps->lock);
    for (int tries = 0; tries < CP_MAX_ALLOC_TRIES; tries++, v++) {
        char key[64];
        char *text;

        cJSON_Delete(rec);
        rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "version", (double)v);
        cJSON_AddStringToObject(rec, "hash", hash);
        cJSON_AddNumberToObject(rec, "created_unix_ms", (double)now);
        cJSON_AddStringToObject(rec, "note", note ? note : "");
        cJSON_AddNumberToObject(rec, "rollback_of", (double)rollback_of);
        cJSON_AddStringToObject(rec, "source", source);
        cJSON_AddStringToObject(rec, "compiled", compiled);
        text = cJSON_PrintUnformatted(rec);
        version_key(v, key, sizeof(key));
        /* Create-if-absent: another control plane on the same etcd may take v first. */
        rc = cp_store_cas(ps->store, key, text, strlen(text), 0, NULL);
        free(text);
        if (rc != -EEXIST)
            break;
    }
    cJSON_Delete(rec);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ps->lock);
    if (ps->next_hint <= v)
        ps->next_hint = v + 1;
    pthread_mutex_unlock(&ps->lock);
    return v;
}

int64_t cp_policies_push(struct cp_policies *ps, const char *src, size_t len, const char *note,
                         bool activate, bool *activated, char **errmsg)
{
    struct sy_policy *pol;
    char *compiled, *source;
    char hash[17];
    int64_t v;

    *activated = false;
    pol = sy_policy_compile(src, len, errmsg);
    if (!pol)
        return -EINVAL;
    compiled = sy_policy_to_json(pol);
    sy_policy_unref(pol);
    sy_sha256_hex16(compiled, strlen(compiled), hash);
    source = sy_xstrndup(src, len);
    v = store_version(ps, source, compiled, hash, note, 0);
    free(source);
    free(compiled);
    if (v < 0) {
        *errmsg = sy_xasprintf("cannot store the new version: %s", strerror((int)-v));
        return v;
    }
    sy_info("stored policy version %" PRId64 " (%s)%s%s", v, hash, note && *note ? ": " : "",
            note ? note : "");
    if (activate) {
        int rc = set_active(ps, v);
        if (rc < 0) {
            *errmsg = sy_xasprintf("version %" PRId64 " is stored but could not be activated: %s",
                                   v, strerror(-rc));
            return rc;
        }
        *activated = rc == 1;
    }
    return v;
}

int64_t cp_policies_activate(struct cp_policies *ps, int64_t v, int64_t *rollback_of, char **errmsg)
{
    struct cp_version *ver = NULL;
    int64_t cur, rev, target = v;
    int rc;

    *rollback_of = 0;
    rc = cp_policies_get(ps, v, &ver);
    if (rc < 0) {
        *errmsg = rc == -ENOENT
                      ? sy_xasprintf("policy version %" PRId64 " does not exist", v)
                      : sy_xasprintf("cannot read version %" PRId64 ": %s", v, strerror(-rc));
        return rc;
    }
    rc = read_active(ps, &cur, &rev);
    if (rc < 0)
        goto out_store_error;
    if (v == cur) {
        cp_version_free(ver);
        return v;
    }
    if (v < cur) {
        /* History is append-only: a rollback is a new version that points back. */
        char note[96];
        snprintf(note, sizeof(note), "rollback to version %" PRId64, v);
        target = store_version(ps, ver->source, ver->compiled, ver->hash, note, v);
        if (target < 0) {
            rc = (int)target;
            goto out_store_error;
        }
        *rollback_of = v;
        sy_info("version %" PRId64 " re-activates version %" PRId64, target, v);
    }
    cp_version_free(ver);
    rc = set_active(ps, target);
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot activate version %" PRId64 ": %s", target, strerror(-rc));
        return rc;
    }
    if (rc == 0) {
        *errmsg =
            sy_xasprintf("a newer version became active while activating version %" PRId64, target);
        return -EAGAIN;
    }
    return target;

out_store_error:
    cp_version_free(ver);
    *errmsg = sy_xasprintf("store error: %s", strerror(-rc));
    return rc;
}

int64_t cp_policies_activate_if(struct cp_policies *ps, int64_t v, int64_t expected, char **errmsg)
{
    int64_t cur, rev;
    char *val;
    int rc;

    if (v <= expected) {
        *errmsg =
            sy_xasprintf("version %" PRId64 " is not newer than version %" PRId64, v, expected);
        return -EINVAL;
    }
    rc = read_active(ps, &cur, &rev);
    if (rc < 0) {
        *errmsg = sy_xasprintf("store error: %s", strerror(-rc));
        return rc;
    }
    if (cur != expected)
        return -EAGAIN;
    val = sy_xasprintf("{\"version\":%" PRId64 ",\"activated_unix_ms\":%" PRIu64 "}", v,
                       sy_wall_us() / 1000);
    /* On the pointer's mod_revision: any activation since the read makes this fail. */
    rc = cp_store_cas(ps->store, CP_ACTIVE_KEY, val, strlen(val), rev, NULL);
    free(val);
    if (rc == -EEXIST)
        return -EAGAIN;
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot activate version %" PRId64 ": %s", v, strerror(-rc));
        return rc;
    }
    follow_active(ps, v);
    return v;
}

int64_t cp_policies_active_version(struct cp_policies *ps)
{
    int64_t v;
    pthread_mutex_lock(&ps->lock);
    v = ps->active ? ps->active->version : 0;
    pthread_mutex_unlock(&ps->lock);
    return v;
}

struct cp_active *cp_policies_active(struct cp_policies *ps)
{
    struct cp_active *a;
    pthread_mutex_lock(&ps->lock);
    a = ps->active ? cp_active_ref(ps->active) : NULL;
    pthread_mutex_unlock(&ps->lock);
    return a;
}

struct cp_policies *cp_policies_new(struct cp_store *store, cp_active_fn on_active, void *arg,
                                    char **errmsg)
{
    struct cp_policies *ps = sy_xcalloc(1, sizeof(*ps));
    struct cp_kv *kvs = NULL;
    size_t n = 0;
    int64_t cur, rev;
    int rc;

    ps->store = store;
    ps->on_active = on_active;
    ps->arg = arg;
    ps->next_hint = 1;
    pthread_mutex_init(&ps->lock, NULL);
    pthread_mutex_init(&ps->follow_lock, NULL);

    /* Watch first, then read: a change in between is seen by one or the other. */
    rc = cp_store_watch(store, CP_ACTIVE_KEY, 0, on_store_change, ps);
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot watch the active policy in the store: %s", strerror(-rc));
        goto out_free;
    }
    rc = cp_store_range(store, CP_VERSIONS_PREFIX, &kvs, &n);
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot read policy versions from the store: %s", strerror(-rc));
        goto out_free;
    }
    if (n) {
        struct cp_version last;
        if (parse_record(kvs[n - 1].value, kvs[n - 1].value_len, false, &last) == 0)
            ps->next_hint = last.version + 1;
        free(last.note);
    }
    cp_kv_array_free(kvs, n);
    rc = read_active(ps, &cur, &rev);
    if (rc < 0) {
        *errmsg = sy_xasprintf("cannot read the active policy from the store: %s", strerror(-rc));
        goto out_free;
    }
    sy_info("%zu policy versions in the store; active: %" PRId64, n, cur);
    if (cur)
        follow_active(ps, cur);
    return ps;

out_free:
    pthread_mutex_destroy(&ps->follow_lock);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return NULL;
}

void cp_policies_free(struct cp_policies *ps)
{
    if (!ps)
        return;
    cp_active_unref(ps->active);
    pthread_mutex_destroy(&ps->follow_lock);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
}
