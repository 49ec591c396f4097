/* tests/unit/controlplane/test_spend.c - spend ledgers on a real file store shared by two
 * control planes (cp_spend instances): a node's stream moving between them, and back, loses
 * and double counts nothing; a replica holding a stale copy cannot overwrite the other's
 * writes (compare-and-swap; the conflict is reported and the copy dropped); resends count
 * once; and /v1/spend reads unwritten counts from memory without writing, and does not go
 * back in time when the flusher writes between its store read and its look at memory. Also
 * cp_stats with names longer than its key buffers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <cmocka.h>

#include "cp_spend.h"
#include "cp_stats.h"
#include "cp_store.h"

#define T0 1767225600000LL /* 2026-01-01 00:00 UTC */

struct fixture {
    char dir[64];
    struct cp_store *store;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char spec[96], *err = NULL;

    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-test-spend-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(spec, sizeof(spec), "file:%s", f->dir);
    f->store = cp_store_open(spec, "", &err);
    if (!f->store)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    cp_store_free(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* One report of node px1, boot b1: one request costing $1 at 01:00. */
struct report {
    Switchyard__V1__TelemetryReport r;
    Switchyard__V1__Node node;
    Switchyard__V1__SeriesDelta s;
    Switchyard__V1__SeriesDelta *arr[1];
};

static Switchyard__V1__TelemetryReport *mk(struct report *x, uint64_t seq)
{
    switchyard__v1__telemetry_report__init(&x->r);
    switchyard__v1__node__init(&x->node);
    switchyard__v1__series_delta__init(&x->s);
    x->node.id = (char *)"px1";
    x->s.tenant = (char *)"acme";
    x->s.model = (char *)"m1";
    x->s.provider = (char *)"p";
    x->s.requests = 1;
    x->s.cost_nusd = 1000000000;
    x->arr[0] = &x->s;
    x->r.node = &x->node;
    x->r.boot_id = (char *)"b1";
    x->r.seq = seq;
    x->r.end_unix_ms = T0 + 3600000;
    x->r.series = x->arr;
    x->r.n_series = 1;
    return &x->r;
}

static double requests_of(struct cp_spend *sp)
{
    int status = 0;
    char *err = NULL;
    cJSON *j = cp_spend_json(sp, "day", "2026-01-01", T0 + 7200000, NULL, &status, &err);
    const cJSON *t;
    double n;

    if (!j)
        fail_msg("%d %s", status, err);
    t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "tenants"), 0);
    n = t ? cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "requests")) : 0;
    cJSON_Delete(j);
    return n;
}

struct conflicts {
    int n;
    int rc;
};

static void on_failed(void *arg, const char *node, int rc)
{
    struct conflicts *c = arg;
    assert_string_equal(node, "px1");
    c->n++;
    c->rc = rc;
}

static void apply_range(struct cp_spend *sp, uint64_t from, uint64_t to, int want)
{
    struct report x;
    for (uint64_t i = from; i <= to; i++)
        assert_int_equal(cp_spend_apply(sp, mk(&x, i)), want);
}

static void test_stream_moves_between_replicas(void **state)
{
    struct fixture *f = *state;
    struct cp_spend *a = cp_spend_new(f->store), *b = cp_spend_new(f->store);
    struct conflicts c = {0};

    apply_range(a, 1, 10, 1);
    assert_int_equal(cp_spend_flush(a, on_failed, &c), 0);
    /* The stream moves to b (a new session there forgets any cached copy). */
    cp_spend_forget(b, "px1");
    apply_range(b, 5, 10, 0); /* resent, already counted by a */
    apply_range(b, 11, 20, 1);
    assert_int_equal(cp_spend_flush(b, on_failed, &c), 0);
    /* And back to a, whose new session reads b's writes. */
    cp_spend_forget(a, "px1");
    apply_range(a, 15, 20, 0);
    apply_range(a, 21, 21, 1);
    assert_int_equal(cp_spend_flush(a, on_failed, &c), 0);
    assert_int_equal(c.n, 0);
    assert_true(requests_of(a) == 21);
    assert_true(requests_of(b) == 21);
    cp_spend_free(a);
    cp_spend_free(b);
}

static void test_stale_copy_cannot_overwrite(void **state)
{
    struct fixture *f = *state;
    struct cp_spend *a = cp_spend_new(f->store), *b = cp_spend_new(f->store);
    struct conflicts c = {0};
    struct report x;

    apply_range(a, 1, 10, 1);
    assert_int_equal(cp_spend_flush(a, on_failed, &c), 0);
    cp_spend_forget(b, "px1");
    apply_range(b, 11, 20, 1);
    assert_int_equal(cp_spend_flush(b, on_failed, &c), 0);
    /* a never learnt of b (no new session): its copy is stale. Its write must fail. */
    apply_range(a, 21, 21, 1);
    /* a's copy is older than the store's: the store's 20 stand (a's 11 will be dropped). */
    assert_true(requests_of(a) == 20);
    assert_int_equal(cp_spend_flush(a, on_failed, &c), -EEXIST);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rc, -EEXIST);
    assert_true(requests_of(b) == 20); /* b's counts survived */
    /* The dropped copy is read again: the unacknowledged report counts once more. */
    assert_int_equal(cp_spend_apply(a, mk(&x, 21)), 1);
    assert_int_equal(cp_spend_flush(a, on_failed, &c), 0);
    assert_true(requests_of(b) == 21);
    cp_spend_free(a);
    cp_spend_free(b);
}

static void test_unwritten_counts_are_read_from_memory(void **state)
{
    struct fixture *f = *state;
    struct cp_spend *a = cp_spend_new(f->store);
    struct cp_kv *kv = NULL;

    apply_range(a, 1, 3, 1);
    assert_true(requests_of(a) == 3);
    /* Reading wrote nothing: only the flusher writes. */
    assert_int_equal(cp_store_get(f->store, "spend/2026-01-01/px1", &kv), -ENOENT);
    assert_int_equal(cp_spend_flush(a, NULL, NULL), 0);
    assert_int_equal(cp_store_get(f->store, "spend/2026-01-01/px1", &kv), 0);
    cp_kv_free(kv);
    assert_true(requests_of(a) == 3);
    cp_spend_free(a);
}

/* A store that runs the spend flusher right after a range read returns: the write lands
 * between /v1/spend's read of the store and its look at the ledgers in memory. */
struct racing_store {
    struct cp_store base;
    struct cp_store *real;
    struct cp_store_ops ops;
    struct cp_spend *sp;
};

static int racing_range(struct cp_store *s, const char *prefix, struct cp_kv **out, size_t *n)
{
    struct racing_store *r = (struct racing_store *)s;
    int rc = cp_store_range(r->real, prefix, out, n);
    if (r->sp)
        assert_int_equal(cp_spend_flush(r->sp, NULL, NULL), 0);
    return rc;
}

static int racing_get(struct cp_store *s, const char *key, struct cp_kv **out)
{
    return cp_store_get(((struct racing_store *)s)->real, key, out);
}

static int racing_cas(struct cp_store *s, const char *key, const char *value, size_t len,
                      int64_t expected, int64_t *rev)
{
    return cp_store_cas(((struct racing_store *)s)->real, key, value, len, expected, rev);
}

static void test_flush_during_read(void **state)
{
    struct fixture *f = *state;
    struct racing_store r = {0};
    struct cp_spend *a;

    r.ops = *f->store->ops;
    r.ops.range = racing_range;
    r.ops.get = racing_get;
    r.ops.cas = racing_cas;
    r.base.ops = &r.ops;
    r.real = f->store;
    a = cp_spend_new(&r.base);
    apply_range(a, 1, 5, 1);
    assert_int_equal(cp_spend_flush(a, NULL, NULL), 0);
    apply_range(a, 6, 8, 1); /* dirty: 8 in memory, 5 in the store */
    r.sp = a;                /* the read sees 5 in the store, then the flusher writes 8 */
    assert_true(requests_of(a) == 8);
    r.sp = NULL;
    assert_true(requests_of(a) == 8);
    cp_spend_free(a);
}

/* Names longer than cp_stats' key buffers must not overflow them. */
static void test_stats_long_names(void **state)
{
    struct cp_stats *st = cp_stats_new();
    struct report x;
    char *longname = malloc(5000);
    cJSON *j;
    (void)state;

    memset(longname, 'p', 4999);
    longname[4999] = '\0';
    mk(&x, 1);
    x.s.provider = longname;
    x.s.model = longname;
    x.r.end_unix_ms = T0;
    cp_stats_apply(st, &x.r, T0);
    j = cp_stats_json(st, CP_WINDOW_1M, 1, T0);
    assert_non_null(j);
    cJSON_Delete(j);
    j = cp_stats_health_json(st, T0);
    assert_non_null(j);
    cJSON_Delete(j);
    cp_stats_free(st);
    free(longname);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_moves_between_replicas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_copy_cannot_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritten_counts_are_read_from_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_during_read, setup, teardown),
        cmocka_unit_test(test_stats_long_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
