/* controlplane/store/cp_store_file.c - the embedded file store: one directory, one node.
 *
 * Layout of DIR: LOCK (flock'ed for the life of the store, holds the owner's pid), REVISION
 * (the store revision as of the last delete) and kv/, one file per key. A key file is named
 * after its key, percent-encoded so that only [A-Za-z0-9_-] and "%XX" appear (no '/', no
 * '.', so neither ".." nor the ".tmp" suffix of a half-written file can be produced); keys
 * whose encoding is longer than FS_MAX_NAME get "~" + SHA-256 of the key instead. The file
 * holds the header line "sykv1 CREATE MOD KEYLEN VALUELEN\n", the key, then the value: the
 * key inside the file is the truth, the name only finds it.
 *
 * Durability: a write goes to NAME.tmp, is fsynced, renamed over NAME and the directory
 * is fsynced before the call returns. The store revision is recovered at open as the
 * largest of REVISION and every file's mod revision; a delete writes REVISION (durably)
 * before it unlinks, so a revision is never handed out twice, even across a crash.
 *
 * Everything is loaded at open and served from memory. Threads: any thread may call;
 * <write_mu> serialises writers (revision allocation, file I/O), <mu> guards the in-memory
 * state and the watch queue and is never held during file I/O or a callback, so reads do
 * not wait for fsync. Lock order: write_mu, then mu. Watch callbacks run on the store's
 * watch thread, in revision order.
 */
#include "cp_store_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>

#define SY_LOG_MODULE "store-file"
#include "sy_log.h"
#include "sy_util.h"

/* Longest key file name we produce; leaves room for ".tmp" under NAME_MAX (255). */
#define FS_MAX_NAME 200
/* Longest header line: "sykv1 " + 4 numbers of at most 20 digits + separators. */
#define FS_MAX_HEADER 128
/* Deletions remembered (since open) so a watch from an older revision replays them. */
#define FS_MAX_TOMBS 4096

static const char fs_magic[] = "sykv1";

struct fs_tomb {
    char *key;
    int64_t rev;
};

/* One change waiting for the watch thread. <value> NULL means a delete. */
struct fs_event {
    struct fs_event *next;
    char *key;
    char *value;
    size_t value_len;
    int64_t rev;
};

struct file_store {
    struct cp_store base;
    char *dir;
    int dir_fd;
    int kv_fd;
    int lock_fd;

    pthread_mutex_t write_mu;
    pthread_mutex_t mu;
    pthread_cond_t cond;

    /* Guarded by mu; written only by holders of write_mu too. Sorted by key (strcmp). */
    struct cp_kv *kvs;
    size_t n;
    size_t cap;
    int64_t rev;
    int last_err; /* the last write's error, 0 after a success; for healthy() */

    /* Deletions since open, oldest first; <tomb_floor> is the newest one dropped. */
    struct fs_tomb *tombs;
    size_t n_tombs;
    int64_t tomb_floor;

    /* The watch (one per store), guarded by mu. */
    bool watching;
    bool stopping;
    pthread_t thread;
    char *watch_prefix;
    cp_store_watch_fn watch_cb;
    void *watch_arg;
    struct fs_event *q_head;
    struct fs_event *q_tail;
};

static struct file_store *fs_of(struct cp_store *s)
{
    return (struct file_store *)s;
}

static bool has_prefix(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

/* Index of the first entry whose key is >= <key>. Caller holds mu. */
static size_t lower_bound(const struct file_store *s, const char *key)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->kvs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Index of <key>, or -1. Caller holds mu. */
static ssize_t find(const struct file_store *s, const char *key)
{
    size_t i = lower_bound(s, key);

    if (i < s->n && strcmp(s->kvs[i].key, key) == 0)
        return (ssize_t)i;
    return -1;
}

static void set_last_err(struct file_store *s, int rc)
{
    pthread_mutex_lock(&s->mu);
    s->last_err = rc;
    pthread_mutex_unlock(&s->mu);
}

static int check_key(const char *key, size_t value_len)
{
    size_t klen = strlen(key);

    if (klen == 0)
        return -EINVAL;
    if (klen > CP_STORE_MAX_KEY || value_len > CP_STORE_MAX_VALUE)
        return -E2BIG;
    return 0;
}

/* Writes the file name for <key> into <name> (at least FS_MAX_NAME + 1 bytes). */
static void key_filename(const char *key, char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_';
        if (o + (plain ? 1 : 3) > FS_MAX_NAME) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int mdlen = 0;

            EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
            name[0] = '~';
            for (unsigned int i = 0; i < mdlen; i++) {
                name[1 + 2 * i] = hex[md[i] >> 4];
                name[2 + 2 * i] = hex[md[i] & 15];
            }
            name[1 + 2 * mdlen] = '\0';
            return;
        }
        if (plain) {
            name[o++] = (char)*p;
        } else {
            name[o++] = '%';
            name[o++] = hex[*p >> 4];
            name[o++] = hex[*p & 15];
        }
    }
    name[o] = '\0';
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Durably replaces <name> in directory <dfd> with the concatenation of the <n> parts:
 * NAME.tmp, fsync, rename, fsync the directory. Returns 0, or -errno; *renamed tells
 * whether the new file became visible (an error after that leaves the outcome unknown). */
static int replace_file(int dfd, const char *name, const struct iovec *parts, int n, bool *renamed)
{
    char tmp[FS_MAX_NAME + 8];
    int fd, rc = 0;

    *renamed = false;
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (int i = 0; i < n && rc == 0; i++)
        rc = write_all(fd, parts[i].iov_base, parts[i].iov_len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(dfd, tmp, 0);
        return rc;
    }
    *renamed = true;
    if (fsync(dfd) < 0)
        return -errno;
    return 0;
}

static int write_revision(struct file_store *s, int64_t rev, bool *renamed)
{
    char line[32];
    struct iovec part;

    part.iov_base = line;
    part.iov_len = (size_t)snprintf(line, sizeof(line), "%" PRId64 "\n", rev);
    return replace_file(s->dir_fd, "REVISION", &part, 1, renamed);
}

static int write_record(struct file_store *s, const char *name, const char *key, const char *value,
                        size_t len, int64_t create, int64_t mod, bool *renamed)
{
    char header[FS_MAX_HEADER];
    struct iovec parts[3];

    parts[0].iov_base = header;
    parts[0].iov_len =
        (size_t)snprintf(header, sizeof(header), "%s %" PRId64 " %" PRId64 " %zu %zu\n", fs_magic,
                         create, mod, strlen(key), len);
    parts[1].iov_base = (void *)key;
    parts[1].iov_len = strlen(key);
    parts[2].iov_base = (void *)value;
    parts[2].iov_len = len;
    return replace_file(s->kv_fd, name, parts, 3, renamed);
}

/* Appends a change to the watch queue when it falls under the watched prefix. Caller
 * holds mu. <value> may be NULL (delete); it is copied. */
static void queue_event(struct file_store *s, const char *key, const char *value, size_t len,
                        int64_t rev)
{
    struct fs_event *ev;

    if (!s->watching || !has_prefix(key, s->watch_prefix))
        return;
    ev = sy_xcalloc(1, sizeof(*ev));
    ev->key = sy_xstrdup(key);
    if (value) {
        ev->value = malloc(len + 1);
        if (!ev->value) {
            sy_error("watch: out of memory copying %zu bytes of %s; event dropped", len, key);
            free(ev->key);
            free(ev);
            return;
        }
        memcpy(ev->value, value, len);
        ev->value[len] = '\0';
    }
    ev->value_len = len;
    ev->rev = rev;
    if (s->q_tail)
        s->q_tail->next = ev;
    else
        s->q_head = ev;
    s->q_tail = ev;
    pthread_cond_signal(&s->cond);
}

static void event_free(struct fs_event *ev)
{
    if (!ev)
        return;
    free(ev->key);
    free(ev->value);
    free(ev);
}

static int copy_kv(const struct cp_kv *src, struct cp_kv *dst)
{
    dst->key = strdup(src->key);
    dst->value = malloc(src->value_len + 1);
    if (!dst->key || !dst->value) {
        free(dst->key);
        free(dst->value);
        dst->key = dst->value = NULL;
        return -ENOMEM;
    }
    memcpy(dst->value, src->value, src->value_len + 1);
    dst->value_len = src->value_len;
    dst->create_revision = src->create_revision;
    dst->mod_revision = src->mod_revision;
    return 0;
}

static int fs_get(struct cp_store *base, const char *key, struct cp_kv **out)
{
    struct file_store *s = fs_of(base);
    struct cp_kv *kv;
    ssize_t i;
    int rc;

    *out = NULL;
    rc = check_key(key, 0);
    if (rc < 0)
        return rc;
    kv = sy_xcalloc(1, sizeof(*kv));
    pthread_mutex_lock(&s->mu);
    i = find(s, key);
    rc = i < 0 ? -ENOENT : copy_kv(&s->kvs[i], kv);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        free(kv);
        return rc;
    }
    *out = kv;
    return 0;
}

static int fs_range(struct cp_store *base, const char *prefix, struct cp_kv **out, size_t *n)
{
    struct file_store *s = fs_of(base);
    struct cp_kv *kvs = NULL;
    size_t first, count = 0;
    int rc = 0;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    first = lower_bound(s, prefix);
    while (first + count < s->n && has_prefix(s->kvs[first + count].key, prefix))
        count++;
    if (count > 0) {
        kvs = calloc(count, sizeof(*kvs));
        if (!kvs)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = copy_kv(&s->kvs[first + i], &kvs[i]);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        cp_kv_array_free(kvs, count);
        return rc;
    }
    *out = kvs;
    *n = count;
    return 0;
}

/* put (check false) and cas (check true). */
static int fs_write(struct file_store *s, const char *key, const char *value, size_t len,
                    bool check, int64_t expected, int64_t *rev_out)
{
    char name[FS_MAX_NAME + 1];
    char *key_copy = NULL, *value_copy = NULL;
    int64_t cur_mod = 0, create = 0, rev;
    bool renamed = false;
    ssize_t i;
    int rc;

    rc = check_key(key, len);
    if (rc < 0)
        return rc;
    value_copy = malloc(len + 1);
    if (!value_copy)
        return -ENOMEM;
    if (len > 0)
        memcpy(value_copy, value, len);
    value_copy[len] = '\0';
    key_filename(key, name);

    pthread_mutex_lock(&s->write_mu);
    pthread_mutex_lock(&s->mu);
    i = find(s, key);
    if (i >= 0) {
        cur_mod = s->kvs[i].mod_revision;
        create = s->kvs[i].create_revision;
    } else if (s->n == s->cap) {
        /* Grow now, so nothing can fail once the file is on disk. */
        s->cap = s->cap ? 2 * s->cap : 64;
        s->kvs = sy_xrealloc(s->kvs, s->cap * sizeof(*s->kvs));
    }
    rev = s->rev + 1;
    pthread_mutex_unlock(&s->mu);

    if (check && cur_mod != expected) {
        rc = -EEXIST;
        goto out_unlock;
    }
    if (i < 0) {
        create = rev;
        key_copy = sy_xstrdup(key);
    }
    rc = write_record(s, name, key, value, len, create, rev, &renamed);
    if (rc < 0)
        sy_error("%s/kv/%s: writing %s failed: %s", s->dir, name, key, strerror(-rc));
    if (!renamed)
        goto out_unlock;

    /* Visible on disk: memory follows, even if the directory fsync failed. */
    pthread_mutex_lock(&s->mu);
    if (i < 0) {
        size_t at = lower_bound(s, key);
        memmove(&s->kvs[at + 1], &s->kvs[at], (s->n - at) * sizeof(*s->kvs));
        s->kvs[at].key = key_copy;
        key_copy = NULL;
        i = (ssize_t)at;
        s->n++;
    } else {
        free(s->kvs[i].value);
    }
    s->kvs[i].value = value_copy;
    value_copy = NULL;
    s->kvs[i].value_len = len;
    s->kvs[i].create_revision = create;
    s->kvs[i].mod_revision = rev;
    s->rev = rev;
    queue_event(s, key, s->kvs[i].value, len, rev);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && rev_out)
        *rev_out = rev;

out_unlock:
    if (rc != -EEXIST)
        set_last_err(s, rc);
    pthread_mutex_unlock(&s->write_mu);
    free(key_copy);
    free(value_copy);
    return rc;
}

static int fs_put(struct cp_store *base, const char *key, const char *value, size_t len,
                  int64_t *rev)
{
    return fs_write(fs_of(base), key, value, len, false, 0, rev);
}

static int fs_cas(struct cp_store *base, const char *key, const char *value, size_t len,
                  int64_t expected, int64_t *rev)
{
    return fs_write(fs_of(base), key, value, len, true, expected, rev);
}

/* Remembers a deletion for watch replay. Caller holds mu. */
static void add_tomb(struct file_store *s, const char *key, int64_t rev)
{
    if (s->n_tombs == FS_MAX_TOMBS) {
        s->tomb_floor = s->tombs[0].rev;
        free(s->tombs[0].key);
        memmove(&s->tombs[0], &s->tombs[1], (s->n_tombs - 1) * sizeof(*s->tombs));
        s->n_tombs--;
    }
    if (!s->tombs)
        s->tombs = sy_xcalloc(FS_MAX_TOMBS, sizeof(*s->tombs));
    s->tombs[s->n_tombs].key = sy_xstrdup(key);
    s->tombs[s->n_tombs].rev = rev;
    s->n_tombs++;
}

static int fs_del(struct cp_store *base, const char *key)
{
    struct file_store *s = fs_of(base);
    char name[FS_MAX_NAME + 1];
    bool renamed;
    int64_t rev;
    ssize_t i;
    int rc;

    rc = check_key(key, 0);
    if (rc < 0)
        return rc;
    key_filename(key, name);

    pthread_mutex_lock(&s->write_mu);
    pthread_mutex_lock(&s->mu);
    i = find(s, key);
    rev = s->rev + 1;
    pthread_mutex_unlock(&s->mu);
    if (i < 0)
        goto out_unlock; /* like etcd: deleting nothing is no change, no revision */

    /* The revision first: once the file is gone nothing else remembers it. */
    rc = write_revision(s, rev, &renamed);
    if (rc < 0) {
        sy_error("%s/REVISION: %s", s->dir, strerror(-rc));
        goto out_unlock;
    }
    if (unlinkat(s->kv_fd, name, 0) < 0 && errno != ENOENT) {
        rc = -errno;
        sy_error("%s/kv/%s: deleting %s failed: %s", s->dir, name, key, strerror(-rc));
        goto out_unlock;
    }
    if (fsync(s->kv_fd) < 0) {
        rc = -errno;
        sy_error("%s/kv: fsync after deleting %s: %s", s->dir, key, strerror(-rc));
    }

    pthread_mutex_lock(&s->mu);
    free(s->kvs[i].key);
    free(s->kvs[i].value);
    memmove(&s->kvs[i], &s->kvs[i + 1], (s->n - (size_t)i - 1) * sizeof(*s->kvs));
    s->n--;
    s->rev = rev;
    add_tomb(s, key, rev);
    queue_event(s, key, NULL, 0, rev);
    pthread_mutex_unlock(&s->mu);

out_unlock:
    set_last_err(s, rc);
    pthread_mutex_unlock(&s->write_mu);
    return rc;
}

static void *watch_main(void *arg)
{
    struct file_store *s = arg;

    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct fs_event *ev = s->q_head;

        if (!ev) {
            pthread_cond_wait(&s->cond, &s->mu);
            continue;
        }
        s->q_head = ev->next;
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        s->watch_cb(s->watch_arg, ev->key, ev->value, ev->value_len, ev->rev);
        event_free(ev);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int cmp_event_rev(const void *a, const void *b)
{
    const struct fs_event *x = *(struct fs_event *const *)a;
    const struct fs_event *y = *(struct fs_event *const *)b;

    return (x->rev > y->rev) - (x->rev < y->rev);
}

/* Queues what changed under the prefix at or after <from_rev>, in revision order: the
 * current value of each key modified since (earlier values of the same key are not kept)
 * and the deletions this process remembers. Caller holds mu; s->watching is set. */
static void queue_replay(struct file_store *s, int64_t from_rev)
{
    struct fs_event **evs;
    size_t n = 0, cap = s->n + s->n_tombs;

    if (from_rev <= s->tomb_floor)
        sy_warn("watch from revision %" PRId64 ": deletions before revision %" PRId64
                " are no longer remembered and are not replayed",
                from_rev, s->tomb_floor + 1);
    if (cap == 0)
        return;
    evs = sy_xcalloc(cap, sizeof(*evs));
    for (size_t i = 0; i < s->n; i++) {
        const struct cp_kv *kv = &s->kvs[i];
        if (kv->mod_revision < from_rev || !has_prefix(kv->key, s->watch_prefix))
            continue;
        evs[n] = sy_xcalloc(1, sizeof(**evs));
        evs[n]->key = sy_xstrdup(kv->key);
        evs[n]->value = sy_xstrndup(kv->value, kv->value_len);
        evs[n]->value_len = kv->value_len;
        evs[n]->rev = kv->mod_revision;
        n++;
    }
    for (size_t i = 0; i < s->n_tombs; i++) {
        const struct fs_tomb *t = &s->tombs[i];
        if (t->rev < from_rev || !has_prefix(t->key, s->watch_prefix))
            continue;
        evs[n] = sy_xcalloc(1, sizeof(**evs));
        evs[n]->key = sy_xstrdup(t->key);
        evs[n]->rev = t->rev;
        n++;
    }
    qsort(evs, n, sizeof(*evs), cmp_event_rev);
    for (size_t i = 0; i < n; i++) {
        if (s->q_tail)
            s->q_tail->next = evs[i];
        else
            s->q_head = evs[i];
        s->q_tail = evs[i];
    }
    free(evs);
}

static int fs_watch(struct cp_store *base, const char *prefix, int64_t from_rev,
                    cp_store_watch_fn cb, void *arg)
{
    struct file_store *s = fs_of(base);
    int rc;

    if (!cb || from_rev < 0)
        return -EINVAL;
    pthread_mutex_lock(&s->mu);
    if (s->watching) {
        pthread_mutex_unlock(&s->mu);
        return -EBUSY;
    }
    s->watch_prefix = sy_xstrdup(prefix);
    s->watch_cb = cb;
    s->watch_arg = arg;
    s->watching = true;
    if (from_rev > 0 && from_rev <= s->rev)
        queue_replay(s, from_rev);
    rc = -pthread_create(&s->thread, NULL, watch_main, s);
    if (rc < 0) {
        struct fs_event *ev;
        while ((ev = s->q_head)) {
            s->q_head = ev->next;
            event_free(ev);
        }
        s->q_tail = NULL;
        s->watching = false;
        free(s->watch_prefix);
        s->watch_prefix = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* One process owns the directory (LOCK is flock()ed while the store is open), so it leads
 * whenever it asks. The key is still written, once, so that whoever reads it (GET /v1/learn)
 * finds the leader's id whatever the backend. */
static int fs_campaign(struct cp_store *base, const char *key, const char *id, int ttl_s,
                       bool *leader)
{
    struct file_store *s = fs_of(base);
    struct cp_kv *kv = NULL;
    int rc;

    *leader = false;
    rc = check_key(key, strlen(id));
    if (rc < 0 || ttl_s <= 0 || !id[0])
        return rc < 0 ? rc : -EINVAL;
    *leader = true;
    rc = fs_get(base, key, &kv); /* from memory: cheap enough for every round */
    if (rc == 0 && kv->value_len == strlen(id) && memcmp(kv->value, id, kv->value_len) == 0) {
        cp_kv_free(kv);
        return 0;
    }
    cp_kv_free(kv);
    return fs_write(s, key, id, strlen(id), false, 0, NULL);
}

static int fs_resign(struct cp_store *base, const char *key)
{
    (void)base;
    (void)key;
    return 0; /* nobody else could take over: the directory stays locked until free() */
}

static bool fs_healthy(struct cp_store *base)
{
    struct file_store *s = fs_of(base);
    int last;

    pthread_mutex_lock(&s->mu);
    last = s->last_err;
    pthread_mutex_unlock(&s->mu);
    return last == 0 && faccessat(s->dir_fd, "kv", W_OK, AT_EACCESS) == 0;
}

static void fs_free(struct cp_store *base)
{
    struct file_store *s = fs_of(base);
    struct fs_event *ev;

    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    if (s->watching)
        pthread_join(s->thread, NULL);
    while ((ev = s->q_head)) {
        s->q_head = ev->next;
        event_free(ev);
    }
    cp_kv_array_free(s->kvs, s->n);
    for (size_t i = 0; i < s->n_tombs; i++)
        free(s->tombs[i].key);
    free(s->tombs);
    free(s->watch_prefix);
    if (s->kv_fd >= 0)
        close(s->kv_fd);
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    free(s->dir);
    free(s->base.prefix);
    free(s);
}

static const struct cp_store_ops file_ops = {
    .name = "file",
    .shared = false,
    .get = fs_get,
    .range = fs_range,
    .put = fs_put,
    .cas = fs_cas,
    .del = fs_del,
    .watch = fs_watch,
    .healthy = fs_healthy,
    .campaign = fs_campaign,
    .resign = fs_resign,
    .free = fs_free,
};

/* Reads all of the regular file <name> in <dfd> (at most <max> bytes) into *out (caller
 * frees; NUL-terminated) and *len. Returns 0, -EFBIG, or -errno. */
static int read_file_at(int dfd, const char *name, size_t max, char **out, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc = 0;

    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto out_close;
    }
    if ((uint64_t)st.st_size > max) {
        rc = -EFBIG;
        goto out_close;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out_free;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    close(fd);
    return 0;

out_free:
    free(buf);
out_close:
    close(fd);
    return rc;
}

/* Parses "sykv1 CREATE MOD KEYLEN VALUELEN\n" + key + value from <buf> into <kv>. Returns
 * 0, or -EINVAL with *why set to a static reason. */
static int parse_record(const char *buf, size_t len, struct cp_kv *kv, const char **why)
{
    char header[FS_MAX_HEADER];
    const char *nl = memchr(buf, '\n', len < FS_MAX_HEADER ? len : FS_MAX_HEADER);
    char *fields[5], *p;
    int64_t nums[4];
    size_t hlen, nf = 0;

    *why = "no header line";
    if (!nl)
        return -EINVAL;
    hlen = (size_t)(nl - buf);
    memcpy(header, buf, hlen);
    header[hlen] = '\0';
    /* Exactly five fields separated by single spaces. */
    for (p = header; nf < 5; p++) {
        fields[nf++] = p;
        p = strchr(p, ' ');
        if (!p)
            break;
        *p = '\0';
    }
    *why = "bad header line";
    if (nf != 5 || p || strcmp(fields[0], fs_magic) != 0)
        return -EINVAL;
    for (int i = 0; i < 4; i++) {
        if (sy_parse_i64(fields[i + 1], i < 2 ? 1 : 0, INT64_MAX, &nums[i]) < 0)
            return -EINVAL;
    }
    *why = "length does not match the header";
    if (nums[2] < 1 || nums[2] > CP_STORE_MAX_KEY || nums[3] > CP_STORE_MAX_VALUE ||
        hlen + 1 + (size_t)nums[2] + (size_t)nums[3] != len)
        return -EINVAL;
    *why = "NUL byte in the key";
    if (memchr(nl + 1, '\0', (size_t)nums[2]))
        return -EINVAL;
    kv->key = sy_xstrndup(nl + 1, (size_t)nums[2]);
    kv->value = sy_xstrndup(nl + 1 + nums[2], (size_t)nums[3]);
    kv->value_len = (size_t)nums[3];
    kv->create_revision = nums[0];
    kv->mod_revision = nums[1];
    return 0;
}

static int cmp_kv_key(const void *a, const void *b)
{
    return strcmp(((const struct cp_kv *)a)->key, ((const struct cp_kv *)b)->key);
}

/* Loads REVISION and every key file; removes leftover NAME.tmp files. */
static int load(struct file_store *s, char **errmsg)
{
    char *buf = NULL;
    size_t len;
    DIR *d;
    struct dirent *de;
    int fd, rc;

    rc = read_file_at(s->dir_fd, "REVISION", 64, &buf, &len);
    if (rc == 0) {
        if (len > 0 && buf[len - 1] == '\n')
            buf[len - 1] = '\0';
        rc = sy_parse_i64(buf, 0, INT64_MAX, &s->rev);
        free(buf);
        if (rc < 0) {
            *errmsg = sy_xasprintf("%s/REVISION: not a revision number", s->dir);
            return rc;
        }
    } else if (rc != -ENOENT) {
        *errmsg = sy_xasprintf("%s/REVISION: %s", s->dir, strerror(-rc));
        return rc;
    }

    fd = openat(s->kv_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
        *errmsg = sy_xasprintf("%s/kv: %s", s->dir, strerror(-rc));
        return rc;
    }
    rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        const char *name = de->d_name;
        size_t nlen = strlen(name);
        char expect[FS_MAX_NAME + 1];
        const char *why;
        struct cp_kv kv;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (nlen > 4 && strcmp(name + nlen - 4, ".tmp") == 0) {
            /* A write that never returned: it was not acknowledged, drop it. */
            unlinkat(s->kv_fd, name, 0);
            continue;
        }
        rc = read_file_at(s->kv_fd, name, FS_MAX_HEADER + CP_STORE_MAX_KEY + CP_STORE_MAX_VALUE,
                          &buf, &len);
        if (rc < 0) {
            *errmsg = sy_xasprintf("%s/kv/%s: %s", s->dir, name, strerror(-rc));
            break;
        }
        rc = parse_record(buf, len, &kv, &why);
        free(buf);
        if (rc < 0) {
            *errmsg = sy_xasprintf("%s/kv/%s: corrupt key file (%s)", s->dir, name, why);
            break;
        }
        key_filename(kv.key, expect);
        if (strcmp(expect, name) != 0) {
            *errmsg = sy_xasprintf("%s/kv/%s: holds key \"%s\", which belongs in file %s", s->dir,
                                   name, kv.key, expect);
            free(kv.key);
            free(kv.value);
            rc = -EINVAL;
            break;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            s->kvs = sy_xrealloc(s->kvs, s->cap * sizeof(*s->kvs));
        }
        s->kvs[s->n++] = kv;
        if (kv.mod_revision > s->rev)
            s->rev = kv.mod_revision;
    }
    closedir(d);
    if (rc < 0)
        return rc;
    if (s->n > 1)
        qsort(s->kvs, s->n, sizeof(*s->kvs), cmp_kv_key);
    return 0;
}

/* Takes the LOCK file so a second process (or a second open in this one) is refused. */
static int take_lock(struct file_store *s, char **errmsg)
{
    char pid[32], held[32];
    ssize_t r;
    int n;

    s->lock_fd = openat(s->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        *errmsg = sy_xasprintf("%s/LOCK: %s", s->dir, strerror(errno));
        return -errno;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        r = pread(s->lock_fd, held, sizeof(held) - 1, 0);
        held[r > 0 ? r : 0] = '\0';
        held[strcspn(held, "\n")] = '\0';
        if (err == EWOULDBLOCK)
            *errmsg = sy_xasprintf("store directory %s is in use by another control plane "
                                   "(pid %s holds %s/LOCK); only one may open it",
                                   s->dir, held[0] ? held : "?", s->dir);
        else
            *errmsg = sy_xasprintf("%s/LOCK: flock: %s", s->dir, strerror(err));
        return err == EWOULDBLOCK ? -EBUSY : -err;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || pwrite(s->lock_fd, pid, (size_t)n, 0) != n)
        sy_warn("%s/LOCK: could not record our pid: %s", s->dir, strerror(errno));
    return 0;
}

struct cp_store *cp_store_file_open(const char *dir, char **errmsg)
{
    struct file_store *s;
    int rc;

    s = sy_xcalloc(1, sizeof(*s));
    s->base.ops = &file_ops;
    s->base.prefix = sy_xstrdup("");
    s->dir = sy_xstrdup(dir);
    s->dir_fd = s->kv_fd = s->lock_fd = -1;
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        *errmsg = sy_xasprintf("store directory %s: cannot create: %s", dir, strerror(errno));
        goto out_free;
    }
    s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        *errmsg = sy_xasprintf("store directory %s: %s", dir, strerror(errno));
        goto out_free;
    }
    if (take_lock(s, errmsg) < 0)
        goto out_free;
    if (mkdirat(s->dir_fd, "kv", 0700) < 0 && errno != EEXIST) {
        *errmsg = sy_xasprintf("%s/kv: cannot create: %s", dir, strerror(errno));
        goto out_free;
    }
    s->kv_fd = openat(s->dir_fd, "kv", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->kv_fd < 0) {
        *errmsg = sy_xasprintf("%s/kv: %s", dir, strerror(errno));
        goto out_free;
    }
    /* Make the directory entries themselves durable before anything is acknowledged. */
    if (fsync(s->dir_fd) < 0) {
        *errmsg = sy_xasprintf("store directory %s: fsync: %s", dir, strerror(errno));
        goto out_free;
    }
    rc = load(s, errmsg);
    if (rc < 0)
        goto out_free;
    sy_info("file store %s: %zu keys, revision %" PRId64, dir, s->n, s->rev);
    return &s->base;

out_free:
    fs_free(&s->base);
    return NULL;
}
