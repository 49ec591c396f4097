/* tests/unit/controlplane/test_store.c - the key-value store: one behaviour suite run
 * against both backends (file store in a temp directory, etcd started here), then what
 * only one backend has: reopening and locking a directory; unreachable, killed and
 * restarted etcd.
 *
 * Each test gets a fresh store: a new directory for the file store, a new key prefix on
 * the shared etcd. <s2> is a second handle on the same data where the backend allows one
 * (etcd: another store, as a second control plane would have; file: the same store).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_store.h"
#include "cp_store_etcd.h"
#include "cp_store_file.h"
#include "etcd_fixture.h"
#include "sy_log.h"
#include "sy_util.h"

struct tctx {
    struct cp_store *s;
    struct cp_store *s2;
    char tmp[64];    /* file: temp root */
    char dir[96];    /* file: the store directory */
    char prefix[64]; /* etcd: key prefix of this test */
};

/* The etcd every etcd test talks to; started by the group setup. */
static struct etcd_fixture etcd;
static int test_seq;

static uint64_t now_ms(void)
{
    return sy_now_us() / 1000;
}

/* ---- recording watch events ---- */

#define REC_MAX 256

struct rec_event {
    char key[128];
    char value[64];
    bool deleted;
    int64_t rev;
};

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    struct rec_event ev[REC_MAX];
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void rec_cleanup(struct rec *r)
{
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

static void on_change(void *arg, const char *key, const char *value, size_t len, int64_t rev)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    if (r->n < REC_MAX) {
        struct rec_event *e = &r->ev[r->n];
        snprintf(e->key, sizeof(e->key), "%s", key);
        snprintf(e->value, sizeof(e->value), "%.*s", (int)(len < 63 ? len : 63),
                 value ? value : "");
        e->deleted = value == NULL;
        e->rev = rev;
    }
    r->n++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until at least <n> events were seen or <ms> passed; returns the count. */
static int rec_wait(struct rec *r, int n, int ms)
{
    uint64_t until = now_ms() + (uint64_t)ms;
    int got;

    pthread_mutex_lock(&r->mu);
    while (r->n < n && now_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&r->cond, &r->mu, &ts);
    }
    got = r->n;
    pthread_mutex_unlock(&r->mu);
    return got;
}

static void assert_event(const struct rec_event *e, const char *key, const char *value, int64_t rev)
{
    assert_string_equal(e->key, key);
    if (value) {
        assert_false(e->deleted);
        assert_string_equal(e->value, value);
    } else {
        assert_true(e->deleted);
    }
    if (rev)
        assert_int_equal(e->rev, rev);
}

/* ---- fixtures ---- */

static int file_setup(void **state)
{
    struct tctx *t = sy_xcalloc(1, sizeof(*t));
    char *err = NULL;

    snprintf(t->tmp, sizeof(t->tmp), "/tmp/sy-store-XXXXXX");
    if (!mkdtemp(t->tmp)) {
        free(t);
        return -1;
    }
    snprintf(t->dir, sizeof(t->dir), "%s/store", t->tmp);
    t->s = cp_store_file_open(t->dir, &err);
    if (!t->s) {
        print_error("file store: %s\n", err);
        free(err);
        fixture_rm_rf(t->tmp);
        free(t);
        return -1;
    }
    t->s2 = t->s;
    *state = t;
    return 0;
}

static int file_teardown(void **state)
{
    struct tctx *t = *state;

    cp_store_free(t->s);
    fixture_rm_rf(t->tmp);
    free(t);
    return 0;
}

static int etcd_group_setup(void **state)
{
    char err[512];

    (void)state;
    if (etcd_fixture_start(&etcd, err, sizeof(err)) < 0) {
        print_error("cannot run the etcd tests: %s\n", err);
        return -1;
    }
    return 0;
}

static int etcd_group_teardown(void **state)
{
    (void)state;
    etcd_fixture_stop(&etcd);
    return 0;
}

static struct cp_store *etcd_open(const char *prefix)
{
    char *err = NULL;
    struct cp_store *s = cp_store_etcd_open(etcd.endpoint, prefix, &err);

    if (!s) {
        print_error("etcd store: %s\n", err);
        free(err);
    }
    return s;
}

static int etcd_setup(void **state)
{
    struct tctx *t = sy_xcalloc(1, sizeof(*t));

    snprintf(t->prefix, sizeof(t->prefix), "/test-%d-%d", (int)getpid(), ++test_seq);
    t->s = etcd_open(t->prefix);
    t->s2 = etcd_open(t->prefix);
    if (!t->s || !t->s2) {
        cp_store_free(t->s);
        cp_store_free(t->s2);
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int etcd_teardown(void **state)
{
    struct tctx *t = *state;

    cp_store_free(t->s);
    cp_store_free(t->s2);
    free(t);
    return 0;
}

/* Frees the test's store (and its watch) before the recorder it calls goes away. */
static void stop_store(struct tctx *t)
{
    if (t->s2 == t->s)
        t->s2 = NULL;
    cp_store_free(t->s);
    t->s = NULL;
}

static int put_str(struct cp_store *s, const char *key, const char *value, int64_t *rev)
{
    return cp_store_put(s, key, value, strlen(value), rev);
}

/* ---- the suite both backends pass ---- */

static void test_get_missing(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = (struct cp_kv *)1;

    assert_int_equal(cp_store_get(t->s, "/nope", &kv), -ENOENT);
    assert_null(kv);
    assert_true(cp_store_healthy(t->s));
}

static void test_put_get(void **state)
{
    struct tctx *t = *state;
    static const char bin[] = {'a', '\0', 'b', '\xff', '\n'};
    struct cp_kv *kv = NULL;
    int64_t r1 = 0, r2 = 0, r3 = 0;

    assert_int_equal(put_str(t->s, "/a", "hello", &r1), 0);
    assert_true(r1 > 0);
    assert_int_equal(cp_store_get(t->s, "/a", &kv), 0);
    assert_string_equal(kv->key, "/a");
    assert_int_equal(kv->value_len, 5);
    assert_string_equal(kv->value, "hello");
    assert_int_equal(kv->create_revision, r1);
    assert_int_equal(kv->mod_revision, r1);
    cp_kv_free(kv);

    assert_int_equal(put_str(t->s, "/a", "world!", &r2), 0);
    assert_true(r2 > r1);
    assert_int_equal(cp_store_get(t->s2, "/a", &kv), 0);
    assert_string_equal(kv->value, "world!");
    assert_int_equal(kv->create_revision, r1);
    assert_int_equal(kv->mod_revision, r2);
    cp_kv_free(kv);

    /* Binary values, and the empty value (which etcd leaves out of its answers). */
    assert_int_equal(cp_store_put(t->s, "/bin", bin, sizeof(bin), &r3), 0);
    assert_int_equal(cp_store_get(t->s, "/bin", &kv), 0);
    assert_int_equal(kv->value_len, sizeof(bin));
    assert_memory_equal(kv->value, bin, sizeof(bin));
    assert_int_equal(kv->value[kv->value_len], '\0');
    cp_kv_free(kv);
    assert_int_equal(cp_store_put(t->s, "/empty", "", 0, NULL), 0);
    assert_int_equal(cp_store_get(t->s, "/empty", &kv), 0);
    assert_int_equal(kv->value_len, 0);
    assert_string_equal(kv->value, "");
    cp_kv_free(kv);
}

static void test_range_sorted(void **state)
{
    struct tctx *t = *state;
    const char *keys[] = {"/r/b", "/r/a", "/rx", "/r/c/deep", "/q", "/r/c"};
    struct cp_kv *kvs = NULL;
    size_t n = 99;

    for (size_t i = 0; i < SY_ARRAY_LEN(keys); i++)
        assert_int_equal(put_str(t->s, keys[i], keys[i], NULL), 0);
    assert_int_equal(cp_store_range(t->s, "/r/", &kvs, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(kvs[0].key, "/r/a");
    assert_string_equal(kvs[1].key, "/r/b");
    assert_string_equal(kvs[2].key, "/r/c");
    assert_string_equal(kvs[3].key, "/r/c/deep");
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(kvs[i].value, kvs[i].key);
        assert_true(kvs[i].mod_revision > 0);
    }
    cp_kv_array_free(kvs, n);

    assert_int_equal(cp_store_range(t->s, "/none/", &kvs, &n), 0);
    assert_int_equal(n, 0);
    cp_kv_array_free(kvs, n);

    /* The empty prefix is everything in this store. */
    assert_int_equal(cp_store_range(t->s, "", &kvs, &n), 0);
    assert_int_equal(n, SY_ARRAY_LEN(keys));
    assert_string_equal(kvs[0].key, "/q");
    cp_kv_array_free(kvs, n);
}

static void test_cas_create(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    int64_t rev = 0;

    assert_int_equal(cp_store_cas(t->s, "/c", "first", 5, 0, &rev), 0);
    assert_true(rev > 0);
    assert_int_equal(cp_store_cas(t->s2, "/c", "second", 6, 0, NULL), -EEXIST);
    assert_int_equal(cp_store_get(t->s, "/c", &kv), 0);
    assert_string_equal(kv->value, "first");
    assert_int_equal(kv->mod_revision, rev);
    cp_kv_free(kv);
}

static void test_cas_mod(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    int64_t r1 = 0, r2 = 0, r3 = 0;

    assert_int_equal(put_str(t->s, "/m", "v1", &r1), 0);
    assert_int_equal(cp_store_cas(t->s, "/m", "v2", 2, r1, &r2), 0);
    assert_true(r2 > r1);
    /* A stale writer loses. */
    assert_int_equal(cp_store_cas(t->s2, "/m", "stale", 5, r1, NULL), -EEXIST);
    assert_int_equal(cp_store_cas(t->s2, "/m", "v3", 2, r2, &r3), 0);
    assert_int_equal(cp_store_get(t->s, "/m", &kv), 0);
    assert_string_equal(kv->value, "v3");
    assert_int_equal(kv->create_revision, r1);
    assert_int_equal(kv->mod_revision, r3);
    cp_kv_free(kv);
    /* Expecting a revision of a key that does not exist fails too. */
    assert_int_equal(cp_store_cas(t->s, "/absent", "x", 1, r1, NULL), -EEXIST);
    assert_int_equal(cp_store_get(t->s, "/absent", &kv), -ENOENT);
}

#define ALLOC_PER_THREAD 20

struct allocator {
    struct cp_store *s;
    int id;
    int got[ALLOC_PER_THREAD];
    int attempts;
    int failures;
};

/* Allocates "next version" numbers the way the control plane does: create-if-absent on
 * /versions/N, moving on to N+1 when someone else has N. */
static void *alloc_main(void *arg)
{
    struct allocator *a = arg;
    int next = 1;

    for (int i = 0; i < ALLOC_PER_THREAD;) {
        char key[64], value[16];
        int rc;

        snprintf(key, sizeof(key), "/versions/%020d", next);
        snprintf(value, sizeof(value), "owner-%d", a->id);
        a->attempts++;
        rc = cp_store_cas(a->s, key, value, strlen(value), 0, NULL);
        if (rc == 0)
            a->got[i++] = next;
        else if (rc != -EEXIST && ++a->failures > 5)
            break;
        next++;
    }
    return NULL;
}

static void test_cas_concurrent(void **state)
{
    struct tctx *t = *state;
    struct allocator a[2] = {{.s = t->s, .id = 0}, {.s = t->s2, .id = 1}};
    pthread_t th[2];
    bool seen[2 * ALLOC_PER_THREAD + 1] = {false};
    struct cp_kv *kvs = NULL;
    size_t n = 0;

    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, alloc_main, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].failures, 0);
        for (int j = 0; j < ALLOC_PER_THREAD; j++) {
            int v = a[i].got[j];
            assert_in_range(v, 1, 2 * ALLOC_PER_THREAD);
            assert_false(seen[v]); /* never handed out twice */
            seen[v] = true;
        }
    }
    /* Every number 1..40 has exactly one owner, and the store agrees on who. */
    assert_int_equal(cp_store_range(t->s, "/versions/", &kvs, &n), 0);
    assert_int_equal(n, 2 * ALLOC_PER_THREAD);
    for (size_t i = 0; i < n; i++) {
        char want[64];
        int owner = kvs[i].value[6] - '0';
        snprintf(want, sizeof(want), "/versions/%020zu", i + 1);
        assert_string_equal(kvs[i].key, want);
        assert_in_range(owner, 0, 1);
        bool mine = false;
        for (int j = 0; j < ALLOC_PER_THREAD; j++)
            mine = mine || a[owner].got[j] == (int)i + 1;
        assert_true(mine);
    }
    cp_kv_array_free(kvs, n);
    print_message("    concurrent cas: %d + %d attempts for %d versions\n", a[0].attempts,
                  a[1].attempts, 2 * ALLOC_PER_THREAD);
}

static void test_del(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    int64_t r1 = 0, r2 = 0;

    assert_int_equal(put_str(t->s, "/d", "x", &r1), 0);
    assert_int_equal(cp_store_del(t->s, "/d"), 0);
    assert_int_equal(cp_store_get(t->s2, "/d", &kv), -ENOENT);
    assert_int_equal(cp_store_del(t->s, "/d"), 0); /* already gone: still 0 */
    /* Recreated: a new life with a new create revision. */
    assert_int_equal(put_str(t->s, "/d", "y", &r2), 0);
    assert_true(r2 > r1 + 1); /* the delete took a revision of its own */
    assert_int_equal(cp_store_get(t->s, "/d", &kv), 0);
    assert_int_equal(kv->create_revision, r2);
    cp_kv_free(kv);
}

static void test_watch_order(void **state)
{
    struct tctx *t = *state;
    int64_t r[5] = {0};
    struct rec rec;

    rec_init(&rec);
    assert_int_equal(put_str(t->s, "/w/before", "old", NULL), 0);
    assert_int_equal(cp_store_watch(t->s, "/w/", 0, on_change, &rec), 0);
    assert_int_equal(cp_store_watch(t->s, "/w/", 0, on_change, &rec), -EBUSY);
    assert_int_equal(put_str(t->s, "/w/a", "1", &r[0]), 0);
    assert_int_equal(put_str(t->s2, "/w/b", "2", &r[1]), 0);
    assert_int_equal(cp_store_del(t->s, "/w/a"), 0);
    assert_int_equal(put_str(t->s, "/x", "outside", NULL), 0);
    assert_int_equal(put_str(t->s, "/w/a", "3", &r[3]), 0);
    assert_int_equal(cp_store_del(t->s, "/w/missing"), 0); /* no change, no event */
    assert_int_equal(put_str(t->s, "/w/b", "4", &r[4]), 0);

    assert_int_equal(rec_wait(&rec, 5, 5000), 5);
    assert_event(&rec.ev[0], "/w/a", "1", r[0]);
    assert_event(&rec.ev[1], "/w/b", "2", r[1]);
    assert_event(&rec.ev[2], "/w/a", NULL, 0);
    assert_true(rec.ev[2].rev > r[1] && rec.ev[2].rev < r[3]);
    assert_event(&rec.ev[3], "/w/a", "3", r[3]);
    assert_event(&rec.ev[4], "/w/b", "4", r[4]);
    /* Nothing else: not "/w/before", not "/x", not the delete of a missing key. */
    assert_int_equal(rec_wait(&rec, 6, 200), 5);
    stop_store(t); /* stops the watch thread */
    rec_cleanup(&rec);
}

static void test_watch_from_rev(void **state)
{
    struct tctx *t = *state;
    int64_t r0 = 0, rb = 0, rc = 0, rd = 0;
    struct rec rec;

    rec_init(&rec);
    assert_int_equal(put_str(t->s, "/w/a", "0", &r0), 0);
    assert_int_equal(put_str(t->s, "/w/b", "b", &rb), 0);
    assert_int_equal(cp_store_del(t->s, "/w/a"), 0);
    assert_int_equal(put_str(t->s, "/w/c", "c", &rc), 0);
    /* As after a range at r0: everything since is replayed in order, then live. */
    assert_int_equal(cp_store_watch(t->s, "/w/", r0 + 1, on_change, &rec), 0);
    assert_int_equal(put_str(t->s, "/w/d", "d", &rd), 0);
    assert_int_equal(rec_wait(&rec, 4, 5000), 4);
    assert_event(&rec.ev[0], "/w/b", "b", rb);
    assert_event(&rec.ev[1], "/w/a", NULL, rb + 1);
    assert_event(&rec.ev[2], "/w/c", "c", rc);
    assert_event(&rec.ev[3], "/w/d", "d", rd);
    stop_store(t);
    rec_cleanup(&rec);
}

static void test_limits(void **state)
{
    struct tctx *t = *state;
    char *big = sy_xcalloc(1, CP_STORE_MAX_VALUE + 2);
    struct cp_kv *kv = NULL;

    memset(big, 'k', CP_STORE_MAX_KEY + 1);
    assert_int_equal(put_str(t->s, "", "x", NULL), -EINVAL);
    assert_int_equal(put_str(t->s, big, "x", NULL), -E2BIG);
    assert_int_equal(cp_store_get(t->s, big, &kv), -E2BIG);
    memset(big, 'v', CP_STORE_MAX_VALUE + 1);
    assert_int_equal(cp_store_put(t->s, "/big", big, CP_STORE_MAX_VALUE + 1, NULL), -E2BIG);
    /* The largest value fits, in both backends. */
    assert_int_equal(cp_store_put(t->s, "/big", big, CP_STORE_MAX_VALUE, NULL), 0);
    assert_int_equal(cp_store_get(t->s, "/big", &kv), 0);
    assert_int_equal(kv->value_len, CP_STORE_MAX_VALUE);
    assert_memory_equal(kv->value, big, CP_STORE_MAX_VALUE);
    cp_kv_free(kv);
    free(big);
}

/* ---- file store only ---- */

static void test_file_reopen(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    int64_t ra = 0, rb = 0, rb2 = 0, rnext = 0;
    char *err = NULL;

    assert_int_equal(put_str(t->s, "/policies/versions/00000000000000000001", "p1", &ra), 0);
    assert_int_equal(put_str(t->s, "/policies/active", "1", &rb), 0);
    assert_int_equal(put_str(t->s, "/policies/active", "2", &rb2), 0);
    assert_int_equal(put_str(t->s, "/gone", "x", NULL), 0);
    assert_int_equal(cp_store_del(t->s, "/gone"), 0); /* the newest revision is a delete */
    cp_store_free(t->s);

    t->s = t->s2 = cp_store_file_open(t->dir, &err);
    assert_non_null(t->s);
    assert_int_equal(cp_store_get(t->s, "/policies/versions/00000000000000000001", &kv), 0);
    assert_string_equal(kv->value, "p1");
    assert_int_equal(kv->create_revision, ra);
    assert_int_equal(kv->mod_revision, ra);
    cp_kv_free(kv);
    assert_int_equal(cp_store_get(t->s, "/policies/active", &kv), 0);
    assert_string_equal(kv->value, "2");
    assert_int_equal(kv->create_revision, rb);
    assert_int_equal(kv->mod_revision, rb2);
    cp_kv_free(kv);
    assert_int_equal(cp_store_get(t->s, "/gone", &kv), -ENOENT);
    /* The delete's revision is not handed out again. */
    assert_int_equal(put_str(t->s, "/next", "n", &rnext), 0);
    assert_int_equal(rnext, rb2 + 3);
}

static void test_file_second_open(void **state)
{
    struct tctx *t = *state;
    char *err = NULL;
    struct cp_store *again = cp_store_file_open(t->dir, &err);

    assert_null(again);
    assert_non_null(err);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, t->dir));
    free(err);
}

static void test_file_key_safety(void **state)
{
    struct tctx *t = *state;
    const char *keys[] = {"/../../escape", "..", ".", "a/./b", "%2F", "/x.tmp", "~", "/é"};
    char longkey[600], path[256], *err = NULL;
    struct cp_kv *kv = NULL;
    struct stat st;

    memset(longkey, 'z', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    for (size_t i = 0; i < SY_ARRAY_LEN(keys); i++)
        assert_int_equal(put_str(t->s, keys[i], keys[i], NULL), 0);
    assert_int_equal(put_str(t->s, longkey, "long", NULL), 0);
    /* Nothing landed outside the store directory. */
    snprintf(path, sizeof(path), "%s/escape", t->tmp);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/kv/%%2F..%%2F..%%2Fescape", t->dir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/kv/%%2F%%2E%%2E%%2F%%2E%%2E%%2Fescape", t->dir);
    assert_int_equal(stat(path, &st), 0);
    /* And all of it survives a reopen, each key distinct. */
    cp_store_free(t->s);
    t->s = t->s2 = cp_store_file_open(t->dir, &err);
    assert_non_null(t->s);
    for (size_t i = 0; i < SY_ARRAY_LEN(keys); i++) {
        assert_int_equal(cp_store_get(t->s, keys[i], &kv), 0);
        assert_string_equal(kv->value, keys[i]);
        cp_kv_free(kv);
    }
    assert_int_equal(cp_store_get(t->s, longkey, &kv), 0);
    assert_string_equal(kv->value, "long");
    cp_kv_free(kv);
}

/* A writer killed with SIGKILL at a random point loses nothing it was told was written,
 * and its lock dies with it. */
static void test_file_kill9(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kvs = NULL;
    int fds[2], last = -1, got;
    char *err = NULL;
    size_t n = 0;
    pid_t pid;

    stop_store(t);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct cp_store *s = cp_store_file_open(t->dir, &err);
        close(fds[0]);
        for (int i = 0; s; i++) {
            char key[32], value[32];
            snprintf(key, sizeof(key), "/k/%06d", i);
            snprintf(value, sizeof(value), "value %d", i);
            if (put_str(s, key, value, NULL) < 0 || write(fds[1], &i, sizeof(i)) != sizeof(i))
                break;
        }
        _exit(1);
    }
    close(fds[1]);
    while (last < 40 && read(fds[0], &got, sizeof(got)) == sizeof(got))
        last = got;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    while (read(fds[0], &got, sizeof(got)) == sizeof(got))
        last = got;
    close(fds[0]);
    assert_true(last >= 40);

    t->s = t->s2 = cp_store_file_open(t->dir, &err);
    if (!t->s)
        fail_msg("reopen after kill -9: %s", err);
    assert_int_equal(cp_store_range(t->s, "/k/", &kvs, &n), 0);
    /* Every acknowledged write, and at most the one in flight. */
    assert_true(n == (size_t)last + 1 || n == (size_t)last + 2);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "value %zu", i);
        assert_string_equal(kvs[i].value, want);
        assert_int_equal(kvs[i].mod_revision, (int64_t)i + 1);
    }
    cp_kv_array_free(kvs, n);
    print_message("    kill -9 after %d acknowledged writes: %zu keys back\n", last + 1, n);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_file_corrupt(void **state)
{
    struct tctx *t = *state;
    char path[256], *err = NULL;
    struct cp_kv *kv = NULL;

    assert_int_equal(put_str(t->s, "/ok", "fine", NULL), 0);
    cp_store_free(t->s);
    t->s = t->s2 = NULL;

    /* A half-written temp file from a crash is dropped. */
    snprintf(path, sizeof(path), "%s/kv/%%2Fhalf.tmp", t->dir);
    write_text(path, "sykv1 9 9 5 100\n/half");
    t->s = t->s2 = cp_store_file_open(t->dir, &err);
    assert_non_null(t->s);
    assert_int_equal(cp_store_get(t->s, "/half", &kv), -ENOENT);
    assert_int_not_equal(access(path, F_OK), 0);
    cp_store_free(t->s);
    t->s = t->s2 = NULL;

    /* A damaged key file stops the open, naming the file. */
    snprintf(path, sizeof(path), "%s/kv/%%2Fbad", t->dir);
    write_text(path, "sykv1 3 3 4 10\n/badshort");
    assert_null(cp_store_file_open(t->dir, &err));
    assert_non_null(strstr(err, "%2Fbad"));
    assert_non_null(strstr(err, "corrupt"));
    free(err);
    err = NULL;
    /* So does a file that holds another key than its name says. */
    write_text(path, "sykv1 3 3 4 1\n/ok!x");
    assert_null(cp_store_file_open(t->dir, &err));
    assert_non_null(strstr(err, "belongs in"));
    free(err);
}

static void test_file_unwritable(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    char path[256];

    assert_true(cp_store_healthy(t->s));
    /* The kv directory vanishes under us: writes fail, the store says it is unhealthy. */
    snprintf(path, sizeof(path), "%s/kv", t->dir);
    assert_int_equal(rmdir(path), 0);
    assert_false(cp_store_healthy(t->s));
    assert_true(put_str(t->s, "/k", "v", NULL) < 0);
    assert_int_equal(cp_store_get(t->s, "/k", &kv), -ENOENT);
}

/* The file store's one process always leads; the key names it for readers. */
static void test_file_campaign(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    bool leader = false;
    int64_t rev = 0;

    assert_int_equal(cp_store_campaign(t->s, "/learn/leader", "cp-a", 5, &leader), 0);
    assert_true(leader);
    assert_int_equal(cp_store_get(t->s, "/learn/leader", &kv), 0);
    assert_string_equal(kv->value, "cp-a");
    rev = kv->mod_revision;
    cp_kv_free(kv);
    /* Later rounds do not write again (no fsync a second). */
    leader = false;
    assert_int_equal(cp_store_campaign(t->s, "/learn/leader", "cp-a", 5, &leader), 0);
    assert_true(leader);
    assert_int_equal(cp_store_get(t->s, "/learn/leader", &kv), 0);
    assert_int_equal(kv->mod_revision, rev);
    cp_kv_free(kv);
    /* Another election; bad arguments. */
    assert_int_equal(cp_store_campaign(t->s, "/other", "cp-a", 5, &leader), 0);
    assert_true(leader);
    assert_int_equal(cp_store_campaign(t->s, "/other", "", 5, &leader), -EINVAL);
    assert_false(leader);
    assert_int_equal(cp_store_campaign(t->s, "", "cp-a", 5, &leader), -EINVAL);
    assert_int_equal(cp_store_campaign(t->s, "/learn/leader", "cp-a", 0, &leader), -EINVAL);
    assert_int_equal(cp_store_resign(t->s, "/learn/leader"), 0);
}

/* ---- etcd only ---- */

/* Runs one campaign round of <s> and returns whether it leads (the round must succeed). */
static bool round_of(struct cp_store *s, const char *id, int ttl_s)
{
    bool leader = true;
    int rc = cp_store_campaign(s, "/leader", id, ttl_s, &leader);

    if (rc != 0)
        fail_msg("campaign(%s) -> %d", id, rc);
    return leader;
}

/* Reads the value of /leader on <s> into <buf> ("" when absent). */
static const char *leader_value(struct cp_store *s, char *buf, size_t len)
{
    struct cp_kv *kv = NULL;

    buf[0] = '\0';
    if (cp_store_get(s, "/leader", &kv) == 0)
        snprintf(buf, len, "%s", kv->value);
    cp_kv_free(kv);
    return buf;
}

/* Two candidates on one etcd: exactly one leads, round after round; when the leader stops
 * renewing, the other takes over once the lease runs out (not before), and the old leader
 * coming back finds itself a follower. */
static void test_etcd_campaign(void **state)
{
    struct tctx *t = *state;
    const int ttl = 2; /* etcd's smallest lease with the default heartbeat */
    char buf[64];
    bool a, b;
    uint64_t t0, took;

    a = round_of(t->s, "cp-a", ttl);
    b = round_of(t->s2, "cp-b", ttl);
    assert_true(a);
    assert_false(b);
    assert_string_equal(leader_value(t->s2, buf, sizeof(buf)), "cp-a");
    for (int i = 0; i < 5; i++) {
        usleep(300 * 1000);
        assert_true(round_of(t->s, "cp-a", ttl));
        assert_false(round_of(t->s2, "cp-b", ttl));
    }
    /* Another key is another election: cp-b may lead that one while cp-a leads this. */
    assert_int_equal(cp_store_campaign(t->s2, "/leader2", "cp-b", ttl, &b), 0);
    assert_true(b);
    assert_int_equal(cp_store_campaign(t->s, "/leader2", "cp-a", ttl, &a), 0);
    assert_false(a);
    assert_int_equal(cp_store_resign(t->s2, "/leader2"), 0);

    /* cp-a stops renewing (a crash): cp-b leads within the TTL plus etcd's expiry tick. */
    t0 = now_ms();
    while (!round_of(t->s2, "cp-b", ttl)) {
        if (now_ms() - t0 > (uint64_t)ttl * 1000 + 3000)
            fail_msg("cp-b did not take over within %d ms", ttl * 1000 + 3000);
        usleep(100 * 1000);
    }
    took = now_ms() - t0;
    print_message("    takeover after %" PRIu64 " ms (lease %d s)\n", took, ttl);
    assert_true(took >= 1000); /* the lease was still alive for a while */
    assert_string_equal(leader_value(t->s, buf, sizeof(buf)), "cp-b");

    /* cp-a is back: its lease is gone, it gets a new one and follows. */
    assert_false(round_of(t->s, "cp-a", ttl));
    assert_true(round_of(t->s2, "cp-b", ttl));
    assert_false(round_of(t->s, "cp-a", ttl));
}

/* A leader that resigns hands over at once: the other's next round wins. */
static void test_etcd_campaign_resign(void **state)
{
    struct tctx *t = *state;
    char buf[64];

    assert_true(round_of(t->s, "cp-a", 5));
    assert_false(round_of(t->s2, "cp-b", 5));
    assert_int_equal(cp_store_resign(t->s, "/leader"), 0);
    assert_string_equal(leader_value(t->s2, buf, sizeof(buf)), "");
    assert_true(round_of(t->s2, "cp-b", 5));
    assert_false(round_of(t->s, "cp-a", 5));
    assert_int_equal(cp_store_resign(t->s, "/leader"), 0); /* nothing held: fine */
    assert_int_equal(cp_store_resign(t->s2, "/leader"), 0);
}

static void test_etcd_unreachable(void **state)
{
    char endpoint[64], *err = NULL;
    uint64_t t0 = now_ms();
    struct cp_store *s;

    (void)state;
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", fixture_free_port());
    s = cp_store_etcd_open(endpoint, "/x", &err);
    assert_null(s);
    assert_non_null(err);
    assert_non_null(strstr(err, endpoint));
    print_message("    unreachable: %s\n", err);
    free(err);
    assert_true(now_ms() - t0 < 3000);

    err = NULL;
    assert_null(cp_store_etcd_open("127.0.0.1:2379", "/x", &err));
    assert_non_null(strstr(err, "http://"));
    free(err);
}

static void test_etcd_failover(void **state)
{
    char endpoints[160], *err = NULL;
    struct cp_store *s;
    struct cp_kv *kv = NULL;

    (void)state;
    /* The first endpoint is dead: open, writes and reads go to the second. */
    snprintf(endpoints, sizeof(endpoints), "http://127.0.0.1:%d,%s/", fixture_free_port(),
             etcd.endpoint);
    s = cp_store_etcd_open(endpoints, "/failover", &err);
    if (!s)
        fail_msg("open %s: %s", endpoints, err);
    assert_int_equal(put_str(s, "/k", "v", NULL), 0);
    assert_int_equal(cp_store_get(s, "/k", &kv), 0);
    assert_string_equal(kv->value, "v");
    cp_kv_free(kv);
    cp_store_free(s);
}

static void test_etcd_prefix_isolation(void **state)
{
    struct tctx *t = *state;
    struct cp_store *other = etcd_open("/other-tenant");
    struct cp_kv *kvs = NULL;
    size_t n = 0;

    assert_non_null(other);
    assert_int_equal(put_str(t->s, "/p/1", "mine", NULL), 0);
    assert_int_equal(put_str(other, "/p/2", "theirs", NULL), 0);
    assert_int_equal(cp_store_range(t->s, "/p/", &kvs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(kvs[0].key, "/p/1");
    cp_kv_array_free(kvs, n);
    cp_store_free(other);
}

/* Waits (up to 2 s) until /proc says <pid> is stopped (state T). */
static void wait_stopped(pid_t pid)
{
    char path[64], buf[256];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't'))
            return;
        usleep(10000);
    }
}

/* A leader whose etcd stops answering keeps leading while its lease must still be alive,
 * then steps down, and says the store failed each time. */
static void test_etcd_campaign_unreachable(void **state)
{
    struct tctx *t = *state;
    bool leader = false;
    uint64_t t0;
    int rc;

    assert_true(round_of(t->s, "cp-a", 5));
    kill(etcd.pid, SIGSTOP);
    wait_stopped(etcd.pid);
    t0 = now_ms();
    /* The first round times out after 3 s: 3 s + 1 s of margin < 5 s, still leading. */
    rc = cp_store_campaign(t->s, "/leader", "cp-a", 5, &leader);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(leader);
    /* The second ends 6 s after the last renewal: the lease may be gone, step down. */
    rc = cp_store_campaign(t->s, "/leader", "cp-a", 5, &leader);
    print_message("    frozen etcd: stepped down after %" PRIu64 " ms\n", now_ms() - t0);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_false(leader);
    kill(etcd.pid, SIGCONT);
    /* etcd answers again: the key still holds our id under our (renewed) lease, so the
     * next round finds it is the leader again; or the lease ran out and it wins anew. */
    assert_true(round_of(t->s, "cp-a", 5));
    assert_false(round_of(t->s2, "cp-b", 5));
}

/* etcd stops answering, then dies, then comes back on the same data: calls fail within
 * the timeouts instead of hanging, and the watch resumes without losing or repeating. */
static void test_etcd_kill_restart(void **state)
{
    struct tctx *t = *state;
    struct cp_kv *kv = NULL;
    char err[512];
    int64_t r1 = 0, r2 = 0;
    uint64_t t0;
    struct rec rec;
    int rc;

    rec_init(&rec);
    assert_int_equal(cp_store_watch(t->s, "/k/", 0, on_change, &rec), 0);
    assert_int_equal(put_str(t->s2, "/k/1", "one", &r1), 0);
    assert_int_equal(rec_wait(&rec, 1, 5000), 1);

    /* Frozen: the request times out after 3 s. SIGSTOP is asynchronous: wait until the
     * kernel reports the process stopped, or a fast etcd still answers the put. */
    kill(etcd.pid, SIGSTOP);
    wait_stopped(etcd.pid);
    t0 = now_ms();
    rc = put_str(t->s2, "/frozen", "x", NULL);
    print_message("    frozen etcd: put -> %d after %" PRIu64 " ms\n", rc, now_ms() - t0);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(now_ms() - t0 < 4500);
    kill(etcd.pid, SIGCONT);

    /* Dead: refused at once. */
    etcd_fixture_kill(&etcd);
    t0 = now_ms();
    rc = put_str(t->s2, "/k/x", "x", NULL);
    assert_true(rc < 0 && rc != -EEXIST);
    assert_int_equal(cp_store_get(t->s2, "/k/1", &kv), -ECONNREFUSED);
    assert_int_equal(cp_store_cas(t->s2, "/k/1", "y", 1, r1, NULL), -ECONNREFUSED);
    assert_false(cp_store_healthy(t->s2));
    print_message("    dead etcd: put -> %d, 3 more calls, %" PRIu64 " ms\n", rc, now_ms() - t0);
    assert_true(now_ms() - t0 < 2000);
    usleep(500 * 1000); /* let the watch notice and back off */

    if (etcd_fixture_restart(&etcd, err, sizeof(err)) < 0)
        fail_msg("restarting etcd: %s", err);
    assert_true(cp_store_healthy(t->s2));
    assert_int_equal(cp_store_get(t->s2, "/k/1", &kv), 0); /* the data survived */
    assert_string_equal(kv->value, "one");
    cp_kv_free(kv);
    assert_int_equal(put_str(t->s2, "/k/2", "two", &r2), 0);
    assert_int_equal(rec_wait(&rec, 2, 10000), 2);
    assert_event(&rec.ev[0], "/k/1", "one", r1);
    assert_event(&rec.ev[1], "/k/2", "two", r2);
    assert_int_equal(rec_wait(&rec, 3, 300), 2);
    stop_store(t);
    rec_cleanup(&rec);
}

#define SUITE(setup, teardown)                                                                     \
    cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_range_sorted, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_cas_create, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_cas_mod, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_cas_concurrent, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_del, setup, teardown),                                \
        cmocka_unit_test_setup_teardown(test_watch_order, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_watch_from_rev, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown)

int main(void)
{
    const struct CMUnitTest file_store[] = {
        SUITE(file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_reopen, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_second_open, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_key_safety, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_corrupt, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_kill9, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_unwritable, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(test_file_campaign, file_setup, file_teardown),
    };
    const struct CMUnitTest etcd_store[] = {
        SUITE(etcd_setup, etcd_teardown),
        cmocka_unit_test(test_etcd_unreachable),
        cmocka_unit_test(test_etcd_failover),
        cmocka_unit_test_setup_teardown(test_etcd_prefix_isolation, etcd_setup, etcd_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_campaign, etcd_setup, etcd_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_campaign_resign, etcd_setup, etcd_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_campaign_unreachable, etcd_setup, etcd_teardown),
        /* Last: it kills and restarts the shared etcd. */
        cmocka_unit_test_setup_teardown(test_etcd_kill_restart, etcd_setup, etcd_teardown),
    };
    int failed = 0;

    sy_log_set_level(getenv("SY_TEST_LOG") ? SY_LOG_DEBUG : SY_LOG_OFF);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    failed += cmocka_run_group_tests(file_store, NULL, NULL);
    failed += cmocka_run_group_tests(etcd_store, etcd_group_setup, etcd_group_teardown);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
