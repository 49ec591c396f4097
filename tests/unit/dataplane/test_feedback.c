/* tests/unit/dataplane/test_feedback.c - POST /v1/feedback's parts: the body checks (each
 * error names its field), the id checks (malformed and forged -> 404, old and future ->
 * 410, the previous key still accepted), and the duplicate set (per metric, FIFO eviction
 * at capacity, nothing remembered when forwarding fails, consistency under churn). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_feedback.h"
#include "sy_reqid.h"

/* ---- the body ---- */

struct parse_case {
    const char *body;
    const char *param; /* NULL: the body as a whole */
};

static void expect_bad(const char *body, const char *param)
{
    struct dp_feedback_in in;
    cJSON *root = NULL;
    const char *p = "unset";
    char msg[512] = "";
    int rc = dp_feedback_parse(body, strlen(body), &root, &in, &p, msg, sizeof(msg));

    if (rc != -EINVAL)
        fail_msg("%s: accepted", body);
    if (param ? !p || strcmp(p, param) != 0 : p != NULL)
        fail_msg("%s: param %s, expected %s", body, p ? p : "null", param ? param : "null");
    assert_true(strlen(msg) > 10);
    cJSON_Delete(root);
}

static void test_parse_ok(void **state)
{
    struct dp_feedback_in in;
    cJSON *root = NULL;
    const char *p;
    char msg[512];
    const char *b1 = "{\"request_id\":\"sy1.x.y\",\"thumbs\":\"up\"}";
    const char *b2 = " {\"request_id\":\"sy1.x.y\",\"score\":0.25,\"metric\":\"helpful.v2-x_y\","
                     "\"comment\":\"tr\\u00e8s bien \\ud83d\\ude00\\nmerci\",\"extra\":[1]} \n";
    const char *b3 = "{\"request_id\":\"r\",\"thumbs\":null,\"score\":1,\"metric\":null}";
    (void)state;

    assert_int_equal(dp_feedback_parse(b1, strlen(b1), &root, &in, &p, msg, sizeof(msg)), 0);
    assert_string_equal(in.request_id, "sy1.x.y");
    assert_string_equal(in.thumbs, "up");
    assert_true(in.score < 0);
    assert_null(in.metric);
    assert_null(in.comment);
    cJSON_Delete(root);

    assert_int_equal(dp_feedback_parse(b2, strlen(b2), &root, &in, &p, msg, sizeof(msg)), 0);
    assert_null(in.thumbs);
    assert_true(in.score == 0.25);
    assert_string_equal(in.metric, "helpful.v2-x_y");
    assert_non_null(strstr(in.comment, "merci"));
    cJSON_Delete(root);

    /* null is absent */
    assert_int_equal(dp_feedback_parse(b3, strlen(b3), &root, &in, &p, msg, sizeof(msg)), 0);
    assert_null(in.thumbs);
    assert_true(in.score == 1);
    cJSON_Delete(root);

    /* The limits themselves pass: a 64-byte metric, a 2000-byte comment. */
    {
        char body[4096];
        char metric[DP_FEEDBACK_METRIC_MAX + 1], comment[DP_FEEDBACK_COMMENT_MAX + 1];
        memset(metric, 'm', DP_FEEDBACK_METRIC_MAX);
        metric[DP_FEEDBACK_METRIC_MAX] = '\0';
        memset(comment, 'c', DP_FEEDBACK_COMMENT_MAX);
        comment[DP_FEEDBACK_COMMENT_MAX] = '\0';
        snprintf(body, sizeof(body),
                 "{\"request_id\":\"r\",\"thumbs\":\"down\",\"metric\":\"%s\",\"comment\":\"%s\"}",
                 metric, comment);
        assert_int_equal(dp_feedback_parse(body, strlen(body), &root, &in, &p, msg, sizeof(msg)),
                         0);
        cJSON_Delete(root);
    }
}

static void test_parse_errors(void **state)
{
    static const struct parse_case cases[] = {
        {"", NULL},
        {"{", NULL},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\"} x", NULL},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\"}{}", NULL},
        {"[]", NULL},
        {"\"sy1.abc\"", NULL},
        {"null", NULL},
        {"{\"thumbs\":\"up\"}", "request_id"},
        {"{\"request_id\":null,\"thumbs\":\"up\"}", "request_id"},
        {"{\"request_id\":\"\",\"thumbs\":\"up\"}", "request_id"},
        {"{\"request_id\":42,\"thumbs\":\"up\"}", "request_id"},
        {"{\"request_id\":\"r\"}", "thumbs"},
        {"{\"request_id\":\"r\",\"thumbs\":null,\"score\":null}", "thumbs"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"score\":1}", "score"},
        {"{\"request_id\":\"r\",\"thumbs\":\"UP\"}", "thumbs"},
        {"{\"request_id\":\"r\",\"thumbs\":\"sideways\"}", "thumbs"},
        {"{\"request_id\":\"r\",\"thumbs\":true}", "thumbs"},
        {"{\"request_id\":\"r\",\"score\":1.0000001}", "score"},
        {"{\"request_id\":\"r\",\"score\":-0.1}", "score"},
        {"{\"request_id\":\"r\",\"score\":\"0.5\"}", "score"},
        {"{\"request_id\":\"r\",\"score\":true}", "score"},
        {"{\"request_id\":\"r\",\"score\":1e400}", "score"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"metric\":\"\"}", "metric"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"metric\":\"Helpful\"}", "metric"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"metric\":\"a b\"}", "metric"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"metric\":7}", "metric"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"comment\":7}", "comment"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"comment\":\"\xc3\x28\"}", "comment"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"comment\":\"\xed\xa0\x80\"}", "comment"},
        {"{\"request_id\":\"r\",\"thumbs\":\"up\",\"comment\":\"\xc0\xaf\"}", "comment"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_bad(cases[i].body, cases[i].param);

    /* One byte over each limit. */
    {
        char body[4096], metric[DP_FEEDBACK_METRIC_MAX + 2], comment[DP_FEEDBACK_COMMENT_MAX + 2];
        memset(metric, 'm', DP_FEEDBACK_METRIC_MAX + 1);
        metric[DP_FEEDBACK_METRIC_MAX + 1] = '\0';
        memset(comment, 'c', DP_FEEDBACK_COMMENT_MAX + 1);
        comment[DP_FEEDBACK_COMMENT_MAX + 1] = '\0';
        snprintf(body, sizeof(body), "{\"request_id\":\"r\",\"thumbs\":\"up\",\"metric\":\"%s\"}",
                 metric);
        expect_bad(body, "metric");
        snprintf(body, sizeof(body), "{\"request_id\":\"r\",\"thumbs\":\"up\",\"comment\":\"%s\"}",
                 comment);
        expect_bad(body, "comment");
    }
}

/* ---- the request id ---- */

static const uint8_t key_a[] = "the-fleet-key-a";
static const uint8_t key_b[] = "the-fleet-key-b";

static void make_id(const uint8_t *key, size_t len, int64_t unix_s, char *out, size_t cap)
{
    struct sy_reqid r;

    memset(&r, 0, sizeof(r));
    r.policy_version = 3;
    r.unix_s = unix_s;
    snprintf(r.route, sizeof(r.route), "auto");
    snprintf(r.model, sizeof(r.model), "mock-a");
    snprintf(r.experiment, sizeof(r.experiment), "tone");
    snprintf(r.arm, sizeof(r.arm), "formal");
    r.nonce[0] = 1;
    assert_true(sy_reqid_encode(key, len, &r, out, cap) > 0);
}

static int verify(const uint8_t *k1, const uint8_t *k2, const char *id, int64_t now,
                  const char **code)
{
    struct sy_reqid_key *p1 = k1 ? sy_reqid_key_new(k1, sizeof(key_a) - 1) : NULL;
    struct sy_reqid_key *p2 = k2 ? sy_reqid_key_new(k2, sizeof(key_b) - 1) : NULL;
    const struct sy_reqid_key *keys[2] = {p1, p2};
    struct sy_reqid out;
    char msg[768] = "";
    int st;

    *code = NULL;
    st = dp_feedback_verify(keys, 2, id, now, &out, code, msg, sizeof(msg));
    sy_reqid_key_free(p1);
    sy_reqid_key_free(p2);
    if (st == 0) {
        assert_string_equal(out.route, "auto");
        assert_string_equal(out.model, "mock-a");
        assert_string_equal(out.arm, "formal");
    } else {
        assert_true(strlen(msg) > 10);
    }
    return st;
}

static void test_verify(void **state)
{
    const int64_t now = 1767225600;
    char id[SY_REQID_MAX_LEN + 1];
    const char *code;
    (void)state;

    make_id(key_a, sizeof(key_a) - 1, now - 10, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 0);
    /* Signed with the previous key: still accepted. */
    assert_int_equal(verify(key_b, key_a, id, now, &code), 0);
    /* Neither key: 404. */
    assert_int_equal(verify(key_b, NULL, id, now, &code), 404);
    assert_string_equal(code, "unknown_request_id");
    /* Not an id at all: 404 as well. */
    assert_int_equal(verify(key_a, key_b, "chatcmpl-123", now, &code), 404);
    assert_string_equal(code, "unknown_request_id");
    /* A changed character: 404. */
    id[10] = id[10] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(key_a, NULL, id, now, &code), 404);
    /* No keys at all: 404. */
    make_id(key_a, sizeof(key_a) - 1, now, id, sizeof(id));
    assert_int_equal(verify(NULL, NULL, id, now, &code), 404);

    /* Age: 7 days exactly is fine, one second more is gone. */
    make_id(key_a, sizeof(key_a) - 1, now - SY_REQID_TTL_S, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 0);
    make_id(key_a, sizeof(key_a) - 1, now - SY_REQID_TTL_S - 1, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 410);
    assert_string_equal(code, "request_id_expired");
    /* The future: 5 minutes of skew tolerated. */
    make_id(key_a, sizeof(key_a) - 1, now + SY_REQID_FUTURE_S, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 0);
    make_id(key_a, sizeof(key_a) - 1, now + SY_REQID_FUTURE_S + 1, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 410);
    assert_string_equal(code, "request_id_expired");
    /* Extreme times do not overflow into acceptance. */
    make_id(key_a, sizeof(key_a) - 1, INT64_MIN, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 410);
    make_id(key_a, sizeof(key_a) - 1, INT64_MAX, id, sizeof(id));
    assert_int_equal(verify(key_a, NULL, id, now, &code), 410);
}

/* ---- duplicates ---- */

static int commits;

static int commit_ok(void *arg)
{
    (void)arg;
    commits++;
    return 0;
}

static int commit_full(void *arg)
{
    (void)arg;
    return -ENOSPC;
}

static void test_seen_basic(void **state)
{
    struct dp_feedback_seen *s = dp_feedback_seen_new(100);
    (void)state;

    commits = 0;
    assert_non_null(s);
    assert_int_equal(dp_feedback_seen_add(s, "id1", NULL, commit_ok, NULL), 0);
    assert_int_equal(dp_feedback_seen_add(s, "id1", NULL, commit_ok, NULL), -EEXIST);
    assert_int_equal(dp_feedback_seen_add(s, "id1", "", commit_ok, NULL), -EEXIST);
    /* Another metric is another verdict. */
    assert_int_equal(dp_feedback_seen_add(s, "id1", "tone", commit_ok, NULL), 0);
    assert_int_equal(dp_feedback_seen_add(s, "id1", "tone", commit_ok, NULL), -EEXIST);
    assert_int_equal(dp_feedback_seen_add(s, "id2", "tone", commit_ok, NULL), 0);
    assert_int_equal(commits, 3);
    /* A failed forward remembers nothing: the retry goes through. */
    assert_int_equal(dp_feedback_seen_add(s, "id3", NULL, commit_full, NULL), -ENOSPC);
    assert_int_equal(dp_feedback_seen_count(s), 3);
    assert_int_equal(dp_feedback_seen_add(s, "id3", NULL, commit_ok, NULL), 0);
    assert_int_equal(commits, 4);
    dp_feedback_seen_free(s);
    dp_feedback_seen_free(NULL);
    assert_null(dp_feedback_seen_new(0));
}

static void test_seen_fifo(void **state)
{
    const size_t cap = 1000;
    struct dp_feedback_seen *s = dp_feedback_seen_new(cap);
    char id[32];
    (void)state;

    for (size_t i = 0; i < 5 * cap; i++) {
        snprintf(id, sizeof(id), "id-%zu", i);
        assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), 0);
        assert_true(dp_feedback_seen_count(s) <= cap);
        /* Everything among the last <cap> is still known. */
        if (i % 97 == 0) {
            size_t lo = i + 1 >= cap ? i + 1 - cap : 0;
            for (size_t k = lo; k <= i; k++) {
                snprintf(id, sizeof(id), "id-%zu", k);
                if (dp_feedback_seen_add(s, id, NULL, commit_ok, NULL) != -EEXIST)
                    fail_msg("id-%zu forgotten after adding id-%zu", k, i);
            }
        }
    }
    assert_int_equal(dp_feedback_seen_count(s), cap);
    /* The oldest are gone, in order: id-(4*cap - 1) was evicted, id-4*cap is still there. */
    snprintf(id, sizeof(id), "id-%zu", 4 * cap);
    assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), -EEXIST);
    snprintf(id, sizeof(id), "id-%zu", 4 * cap - 1);
    assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), 0);
    dp_feedback_seen_free(s);
}

static void test_seen_full_size(void **state)
{
    /* The production size: 100,000 entries plus churn stay consistent. */
    struct dp_feedback_seen *s = dp_feedback_seen_new(DP_FEEDBACK_SEEN_MAX);
    char id[32];
    size_t total = DP_FEEDBACK_SEEN_MAX + DP_FEEDBACK_SEEN_MAX / 2;
    (void)state;

    for (size_t i = 0; i < total; i++) {
        snprintf(id, sizeof(id), "r%zu", i);
        assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), 0);
    }
    for (size_t i = total - DP_FEEDBACK_SEEN_MAX; i < total; i += 7) {
        snprintf(id, sizeof(id), "r%zu", i);
        assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), -EEXIST);
    }
    snprintf(id, sizeof(id), "r%zu", total - DP_FEEDBACK_SEEN_MAX - 1);
    assert_int_equal(dp_feedback_seen_add(s, id, NULL, commit_ok, NULL), 0);
    dp_feedback_seen_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),  cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_verify),    cmocka_unit_test(test_seen_basic),
        cmocka_unit_test(test_seen_fifo), cmocka_unit_test(test_seen_full_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
