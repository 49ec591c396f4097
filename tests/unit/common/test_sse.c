/* tests/unit/common/test_sse.c - the SSE parser: framing, split feeds, limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sy_sse.h"

struct seen {
    int n;
    char events[8][64];
    char data[8][256];
    int stop_after;
};

static int on_event(void *arg, const char *event, const char *data, size_t len)
{
    struct seen *s = arg;
    assert_int_equal(strlen(data), len);
    if (s->n < 8) {
        snprintf(s->events[s->n], sizeof(s->events[0]), "%s", event);
        snprintf(s->data[s->n], sizeof(s->data[0]), "%s", data);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static void test_basic_events(void **state)
{
    struct sy_sse_parser p;
    struct seen s = {0};
    const char *in = "data: {\"a\":1}\n\ndata: [DONE]\n\n";
    (void)state;

    sy_sse_init(&p, 1024, on_event, &s);
    assert_int_equal(sy_sse_feed(&p, in, strlen(in)), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.data[0], "{\"a\":1}");
    assert_string_equal(s.data[1], "[DONE]");
    sy_sse_cleanup(&p);
}

/* Every split point of the input must give the same events. */
static void test_split_anywhere(void **state)
{
    const char *in = "event: message_start\r\ndata: one\r\ndata: two\r\n\r\n: comment\n"
                     "data:three\n\nid: 5\nretry: 10\ndata: four\n\n";
    size_t len = strlen(in);
    (void)state;

    for (size_t cut = 0; cut <= len; cut++) {
        struct sy_sse_parser p;
        struct seen s = {0};
        sy_sse_init(&p, 1024, on_event, &s);
        assert_int_equal(sy_sse_feed(&p, in, cut), 0);
        assert_int_equal(sy_sse_feed(&p, in + cut, len - cut), 0);
        assert_int_equal(s.n, 3);
        assert_string_equal(s.events[0], "message_start");
        assert_string_equal(s.data[0], "one\ntwo");
        assert_string_equal(s.events[1], "");
        assert_string_equal(s.data[1], "three");
        assert_string_equal(s.data[2], "four");
        sy_sse_cleanup(&p);
    }
}

static void test_byte_by_byte_crlf(void **state)
{
    const char *in = "data: a\r\n\r\ndata: b\r\r";
    struct sy_sse_parser p;
    struct seen s = {0};
    (void)state;

    sy_sse_init(&p, 1024, on_event, &s);
    for (size_t i = 0; i < strlen(in); i++)
        assert_int_equal(sy_sse_feed(&p, in + i, 1), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.data[0], "a");
    assert_string_equal(s.data[1], "b");
    sy_sse_cleanup(&p);
}

static void test_event_without_data_is_not_dispatched(void **state)
{
    const char *in = "event: ping\n\n: keepalive\n\n";
    struct sy_sse_parser p;
    struct seen s = {0};
    (void)state;

    sy_sse_init(&p, 1024, on_event, &s);
    assert_int_equal(sy_sse_feed(&p, in, strlen(in)), 0);
    assert_int_equal(s.n, 0);
    sy_sse_cleanup(&p);
}

static void test_finish_flushes_unterminated(void **state)
{
    const char *in = "data: tail";
    struct sy_sse_parser p;
    struct seen s = {0};
    (void)state;

    sy_sse_init(&p, 1024, on_event, &s);
    assert_int_equal(sy_sse_feed(&p, in, strlen(in)), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(sy_sse_finish(&p), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.data[0], "tail");
    sy_sse_cleanup(&p);
}

static void test_oversized_event(void **state)
{
    char big[300];
    struct sy_sse_parser p;
    struct seen s = {0};
    (void)state;

    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    sy_sse_init(&p, 64, on_event, &s);
    assert_int_equal(sy_sse_feed(&p, big, sizeof(big)), -EMSGSIZE);
    sy_sse_cleanup(&p);
}

static void test_callback_stops(void **state)
{
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct sy_sse_parser p;
    struct seen s = {.stop_after = 2};
    (void)state;

    sy_sse_init(&p, 1024, on_event, &s);
    assert_int_equal(sy_sse_feed(&p, in, strlen(in)), 7);
    assert_int_equal(s.n, 2);
    sy_sse_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_events),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_byte_by_byte_crlf),
        cmocka_unit_test(test_event_without_data_is_not_dispatched),
        cmocka_unit_test(test_finish_flushes_unterminated),
        cmocka_unit_test(test_oversized_event),
        cmocka_unit_test(test_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
