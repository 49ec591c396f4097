/* tests/unit/controlplane/test_feedback.c - cp_feedback on a real file store: an id signed
 * with the fleet key is stored once (a second time is a duplicate, per metric), a forged,
 * foreign, expired or future id and every malformed field are refused with their outcome,
 * and the events read back carry what the id said. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp_feedback.h"
#include "cp_store.h"
#include "sy_reqid.h"
#include "sy_util.h"

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t other_key[32] = "fedcba9876543210fedcba9876543210";

struct fixture {
    char dir[64];
    struct cp_store *store;
    struct cp_feedback *fb;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char spec[96], *err = NULL;

    snprintf(f->dir, sizeof(f->dir), "/tmp/sy-test-feedback-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(spec, sizeof(spec), "file:%s", f->dir);
    f->store = cp_store_open(spec, "", &err);
    if (!f->store)
        fail_msg("%s", err);
    f->fb = cp_feedback_new(f->store, key, sizeof(key));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    cp_feedback_free(f->fb);
    cp_store_free(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* An id as a proxy would sign it, issued at <unix_s>. */
static void make_id(const uint8_t *k, int64_t unix_s, const char *arm, char *out, size_t cap)
{
    struct sy_reqid r = {.policy_version = 7, .unix_s = unix_s};

    snprintf(r.tenant, sizeof(r.tenant), "acme");
    snprintf(r.route, sizeof(r.route), "auto");
    snprintf(r.model, sizeof(r.model), "m1");
    snprintf(r.experiment, sizeof(r.experiment), "%s", arm ? "e1" : "");
    snprintf(r.arm, sizeof(r.arm), "%s", arm ? arm : "");
    memcpy(r.nonce, &unix_s, sizeof(unix_s));
    assert_true(sy_reqid_encode(k, 32, &r, out, cap) > 0);
}

static int64_t now_ms(void)
{
    return (int64_t)(sy_wall_us() / 1000);
}

static void expect(struct cp_feedback *fb, const char *id, const char *thumbs, double score,
                   const char *metric, const char *comment, enum cp_feedback_result want,
                   const char *msg_part)
{
    char *err = NULL;
    enum cp_feedback_result r =
        cp_feedback_record(fb, id, thumbs, score, metric, comment, "test", now_ms(), NULL, &err);

    if (r != want)
        fail_msg("outcome %d, want %d (%s)", r, want, err ? err : "no message");
    if (msg_part && (!err || !strstr(err, msg_part)))
        fail_msg("message \"%s\" lacks \"%s\"", err ? err : "", msg_part);
    free(err);
}

static void test_store_once(void **state)
{
    struct fixture *f = *state;
    char id[SY_REQID_MAX_LEN + 1];
    struct cp_feedback_event *ev = NULL, *one = NULL;
    size_t n = 0;
    char *err = NULL;

    make_id(key, now_ms() / 1000, "B", id, sizeof(id));
    assert_int_equal(
        cp_feedback_record(f->fb, id, "up", -1, NULL, "great", "p1", now_ms(), &one, &err),
        CP_FEEDBACK_OK);
    assert_string_equal(one->experiment, "e1");
    assert_string_equal(one->arm, "B");
    assert_string_equal(one->route, "auto");
    assert_true(one->thumbs && one->value == 1);
    cp_feedback_events_free(one, 1);
    expect(f->fb, id, "down", -1, NULL, NULL, CP_FEEDBACK_DUPLICATE, "already recorded");
    /* Another metric on the same answer is other feedback. */
    expect(f->fb, id, NULL, 0.25, "helpfulness", NULL, CP_FEEDBACK_OK, NULL);
    expect(f->fb, id, NULL, 0.5, "helpfulness", NULL, CP_FEEDBACK_DUPLICATE, NULL);
    /* A second feedback store on the same data sees the same keys: fleet-wide dedupe. */
    {
        struct cp_feedback *again = cp_feedback_new(f->store, key, sizeof(key));
        expect(again, id, "up", -1, NULL, NULL, CP_FEEDBACK_DUPLICATE, NULL);
        cp_feedback_free(again);
    }
    assert_int_equal(cp_feedback_events(f->fb, 0, now_ms(), &ev, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ev[i].tenant, "acme");
        assert_int_equal(ev[i].policy_version, 7);
        if (ev[i].metric[0]) {
            assert_string_equal(ev[i].metric, "helpfulness");
            assert_false(ev[i].thumbs);
            assert_true(ev[i].value == 0.25);
        }
    }
    cp_feedback_events_free(ev, n);
}

static void test_refused(void **state)
{
    struct fixture *f = *state;
    char id[SY_REQID_MAX_LEN + 1], foreign[SY_REQID_MAX_LEN + 1], old[SY_REQID_MAX_LEN + 1],
        future[SY_REQID_MAX_LEN + 1], tampered[SY_REQID_MAX_LEN + 1];
    char long_comment[2100];
    int64_t now = now_ms() / 1000;
    uint64_t ok, dup, bad;

    make_id(key, now, NULL, id, sizeof(id));
    make_id(other_key, now, NULL, foreign, sizeof(foreign));
    make_id(key, now - SY_REQID_TTL_S - 60, NULL, old, sizeof(old));
    make_id(key, now + 3600, NULL, future, sizeof(future));
    snprintf(tampered, sizeof(tampered), "%s", id);
    tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
    memset(long_comment, 'x', sizeof(long_comment) - 1);
    long_comment[sizeof(long_comment) - 1] = '\0';

    expect(f->fb, NULL, "up", -1, NULL, NULL, CP_FEEDBACK_INVALID, "request_id is required");
    expect(f->fb, id, NULL, -1, NULL, NULL, CP_FEEDBACK_INVALID, "exactly one of");
    expect(f->fb, id, "up", 0.5, NULL, NULL, CP_FEEDBACK_INVALID, "exactly one of");
    expect(f->fb, id, "sideways", -1, NULL, NULL, CP_FEEDBACK_INVALID, "\"up\" or \"down\"");
    expect(f->fb, id, NULL, 1.5, NULL, NULL, CP_FEEDBACK_INVALID, "from 0 to 1");
    expect(f->fb, id, "up", -1, "Bad Metric!", NULL, CP_FEEDBACK_INVALID, "metric");
    expect(f->fb, id, "up", -1, NULL, long_comment, CP_FEEDBACK_INVALID, "comment");
    expect(f->fb, "not-an-id", "up", -1, NULL, NULL, CP_FEEDBACK_UNKNOWN, "not one this fleet");
    expect(f->fb, foreign, "up", -1, NULL, NULL, CP_FEEDBACK_UNKNOWN, NULL);
    expect(f->fb, tampered, "up", -1, NULL, NULL, CP_FEEDBACK_UNKNOWN, NULL);
    expect(f->fb, old, "up", -1, NULL, NULL, CP_FEEDBACK_EXPIRED, "accepted for 7 days");
    expect(f->fb, future, "up", -1, NULL, NULL, CP_FEEDBACK_EXPIRED, NULL);
    /* Nothing refused was stored: the good id still takes its first feedback. */
    expect(f->fb, id, "down", -1, NULL, NULL, CP_FEEDBACK_OK, NULL);
    cp_feedback_counters(f->fb, &ok, &dup, &bad);
    assert_int_equal(ok, 1);
    assert_int_equal(dup, 0);
    assert_int_equal(bad, 12);
}

/* Feedback past the retention is deleted; recent feedback stays and still reads back. */
static void test_expire(void **state)
{
    struct fixture *f = *state;
    char id[SY_REQID_MAX_LEN + 1], old_key[64];
    int64_t now = now_ms();
    struct cp_feedback_event *ev = NULL;
    struct cp_kv *kv = NULL;
    size_t n = 0, deleted = 0;
    time_t t = (time_t)(now / 1000 - (CP_FEEDBACK_RETENTION_DAYS + 3) * 86400);
    struct tm tm;

    make_id(key, now / 1000, "A", id, sizeof(id));
    expect(f->fb, id, "up", -1, NULL, NULL, CP_FEEDBACK_OK, NULL);
    gmtime_r(&t, &tm);
    strftime(old_key, sizeof(old_key), "feedback/%Y-%m-%d/0123456789abcdef", &tm);
    assert_int_equal(cp_store_put(f->store, old_key, "{}", 2, NULL), 0);
    assert_int_equal(cp_feedback_expire(f->fb, now, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(cp_store_get(f->store, old_key, &kv), -ENOENT);
    assert_int_equal(cp_feedback_events(f->fb, 0, now, &ev, &n), 0);
    assert_int_equal(n, 1);
    cp_feedback_events_free(ev, n);
    assert_int_equal(cp_feedback_expire(f->fb, now, &deleted), 0);
    assert_int_equal(deleted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
