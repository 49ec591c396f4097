/* tests/unit/common/test_grpc.c - sy_grpc: an in-process server and client on loopback.
 *
 * The server has an echo method (every message comes back) and a "hold" method (silent,
 * so the test can push, close or drop it from outside). Every wait is bounded: a hang in
 * the module shows up as a failed assertion, not a stuck test run.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sy_grpc.h"
#include "sy_util.h"

#define ECHO "/switchyard.test.Test/Echo"
#define HOLD "/switchyard.test.Test/Hold"
#define MAX_MSGS 256
#define WAIT_MS 10000 /* generous: the sanitizer suite runs on loaded CI machines */

/* What one side of one stream (or a whole server side) saw. */
struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int opens;
    int closes;
    int nmsgs;
    char *msgs[MAX_MSGS];
    size_t lens[MAX_MSGS];
    int status;
    char detail[256];
    struct sy_grpc_call *last; /* server: the last opened call, with a reference */
    bool echo;
    int errors; /* checked by the test thread: cmocka cannot fail on the loop thread */
};

static void rec_init(struct rec *r, bool echo)
{
    pthread_condattr_t ca;

    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    r->status = -1;
    r->echo = echo;
}

static void rec_cleanup(struct rec *r)
{
    assert_int_equal(r->errors, 0);
    for (int i = 0; i < r->nmsgs && i < MAX_MSGS; i++)
        free(r->msgs[i]);
    sy_grpc_call_unref(r->last);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

/* Waits until *<field> >= <want> or WAIT_MS pass. Returns whether it got there. */
static bool rec_wait(struct rec *r, const int *field, int want)
{
    struct timespec ts;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&r->mu);
    while (*field < want && pthread_cond_timedwait(&r->cond, &r->mu, &ts) == 0)
        ;
    ok = *field >= want;
    if (!ok)
        fprintf(stderr, "timeout: opens %d messages %d closes %d status %d detail \"%s\"\n",
                r->opens, r->nmsgs, r->closes, r->status, r->detail);
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void on_open(struct sy_grpc_call *call, void *arg)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    r->opens++;
    sy_grpc_call_unref(r->last);
    r->last = sy_grpc_call_ref(call);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void on_message(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg)
{
    struct rec *r = arg;

    pthread_mutex_lock(&r->mu);
    if (r->nmsgs < MAX_MSGS) {
        r->msgs[r->nmsgs] = sy_xmalloc(len + 1);
        memcpy(r->msgs[r->nmsgs], data, len);
        r->msgs[r->nmsgs][len] = '\0';
        r->lens[r->nmsgs] = len;
    }
    r->nmsgs++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (r->echo && sy_grpc_call_send(call, data, len) != 0) {
        pthread_mutex_lock(&r->mu);
        r->errors++;
        pthread_mutex_unlock(&r->mu);
    }
}

static void on_close(struct sy_grpc_call *call, int status, const char *detail, void *arg)
{
    struct rec *r = arg;

    (void)call;
    pthread_mutex_lock(&r->mu);
    r->closes++;
    r->status = status;
    if (detail)
        snprintf(r->detail, sizeof(r->detail), "%s", detail);
    else
        r->errors++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static const struct sy_grpc_stream_ops ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

/* One server (echo + hold) and one client pointed at it. */
struct fixture {
    struct sy_grpc_server *srv;
    struct sy_grpc_client *cl;
    struct rec echo, hold;
    char target[64];
};

static int setup(void **state)
{
    struct fixture *f = sy_xcalloc(1, sizeof(*f));
    char *err = NULL;
    int port = 0;

    rec_init(&f->echo, true);
    rec_init(&f->hold, false);
    f->srv = sy_grpc_server_new("127.0.0.1:0", &port, &err);
    assert_non_null(f->srv);
    assert_true(port > 0);
    assert_int_equal(sy_grpc_server_add_stream(f->srv, ECHO, &ops, &f->echo), 0);
    assert_int_equal(sy_grpc_server_add_stream(f->srv, HOLD, &ops, &f->hold), 0);
    assert_int_equal(sy_grpc_server_start(f->srv), 0);
    snprintf(f->target, sizeof(f->target), "127.0.0.1:%d", port);
    f->cl = sy_grpc_client_new(f->target, &err);
    assert_non_null(f->cl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    sy_grpc_client_free(f->cl);
    sy_grpc_server_free(f->srv);
    rec_cleanup(&f->echo);
    rec_cleanup(&f->hold);
    free(f);
    return 0;
}

static void send_str(struct sy_grpc_call *call, const char *s)
{
    assert_int_equal(sy_grpc_call_send(call, (const uint8_t *)s, strlen(s)), 0);
}

/* (1) N messages out, N echoes back, in order; then a clean half-close ends both sides OK. */
static void test_echo_in_order(void **state)
{
    struct fixture *f = *state;
    struct rec c;
    struct sy_grpc_call *call;
    char buf[32];
    int n = 100;

    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, ECHO, &ops, &c);
    assert_non_null(call);
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "msg-%d", i);
        send_str(call, buf);
    }
    send_str(call, ""); /* an all-default protobuf message is zero bytes */
    assert_true(rec_wait(&c, &c.nmsgs, n + 1));
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "msg-%d", i);
        assert_string_equal(c.msgs[i], buf);
    }
    assert_int_equal(c.lens[n], 0);
    assert_int_equal(c.opens, 1);
    assert_true(strstr(sy_grpc_call_peer(f->echo.last), "127.0.0.1") != NULL);

    /* (3a) Client closes OK: the server (no on_half_close) finishes with OK. */
    sy_grpc_call_close(call, SY_GRPC_OK, NULL);
    assert_int_equal(sy_grpc_call_send(call, (const uint8_t *)"x", 1), -EPIPE);
    assert_true(rec_wait(&f->echo, &f->echo.closes, 1));
    assert_int_equal(f->echo.status, SY_GRPC_OK);
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_int_equal(c.status, SY_GRPC_OK);
    assert_int_equal(c.closes, 1);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
}

struct push {
    struct sy_grpc_call *call;
    int n;
};

static void *push_thread(void *arg)
{
    struct push *p = arg;
    char buf[32];

    for (int i = 0; i < p->n; i++) {
        snprintf(buf, sizeof(buf), "snapshot-%d", i);
        if (sy_grpc_call_send(p->call, (const uint8_t *)buf, strlen(buf)) != 0)
            break;
    }
    return NULL;
}

/* (2) The server pushes from another thread while the client says nothing. */
static void test_server_push(void **state)
{
    struct fixture *f = *state;
    struct push p = {.n = 20};
    struct rec c;
    struct sy_grpc_call *call;
    pthread_t th;
    char buf[32];

    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, HOLD, &ops, &c);
    assert_non_null(call);
    assert_true(rec_wait(&f->hold, &f->hold.opens, 1));
    assert_true(rec_wait(&c, &c.opens, 1)); /* initial metadata came without any message */
    p.call = f->hold.last;
    assert_int_equal(pthread_create(&th, NULL, push_thread, &p), 0);
    pthread_join(th, NULL);
    assert_true(rec_wait(&c, &c.nmsgs, p.n));
    for (int i = 0; i < p.n; i++) {
        snprintf(buf, sizeof(buf), "snapshot-%d", i);
        assert_string_equal(c.msgs[i], buf);
    }
    assert_int_equal(f->hold.nmsgs, 0);

    /* (3b) The server closes with a status: the client gets status and detail. */
    sy_grpc_call_close(f->hold.last, SY_GRPC_INVALID_ARGUMENT, "bad node id");
    sy_grpc_call_close(f->hold.last, SY_GRPC_INTERNAL, "ignored: second close");
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_int_equal(c.status, SY_GRPC_INVALID_ARGUMENT);
    assert_string_equal(c.detail, "bad node id");
    assert_true(rec_wait(&f->hold, &f->hold.closes, 1));
    assert_int_equal(f->hold.status, SY_GRPC_INVALID_ARGUMENT);
    assert_int_equal(sy_grpc_call_send(call, (const uint8_t *)"x", 1), -EPIPE);
    assert_int_equal(sy_grpc_call_send(f->hold.last, (const uint8_t *)"x", 1), -EPIPE);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
}

/* (3c) A client that cancels: its on_close has its own status, the server sees CANCELLED. */
static void test_client_cancel(void **state)
{
    struct fixture *f = *state;
    struct rec c;
    struct sy_grpc_call *call;

    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, HOLD, &ops, &c);
    assert_non_null(call);
    assert_true(rec_wait(&f->hold, &f->hold.opens, 1));
    sy_grpc_call_close(call, SY_GRPC_CANCELLED, "proxy stopping");
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_int_equal(c.status, SY_GRPC_CANCELLED);
    assert_string_equal(c.detail, "proxy stopping");
    assert_true(rec_wait(&f->hold, &f->hold.closes, 1));
    assert_int_equal(f->hold.status, SY_GRPC_CANCELLED);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
}

/* A loopback port nobody listens on: bind one, note it, close it. */
static int dead_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* (4) Nobody listening: UNAVAILABLE, fast. */
static void test_unreachable(void **state)
{
    struct sy_grpc_client *cl;
    struct sy_grpc_call *call;
    char target[64], *err = NULL;
    struct rec c;
    uint64_t t0;
    int rc;

    (void)state;
    rec_init(&c, false);
    snprintf(target, sizeof(target), "127.0.0.1:%d", dead_port());
    cl = sy_grpc_client_new(target, &err);
    assert_non_null(cl);
    t0 = sy_now_us();
    call = sy_grpc_client_open_stream(cl, ECHO, &ops, &c);
    assert_non_null(call);
    /* Queued and dropped with the call, or refused when the call has already failed. */
    rc = sy_grpc_call_send(call, (const uint8_t *)"hello", 5);
    assert_true(rc == 0 || rc == -EPIPE);
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_true(sy_now_us() - t0 < 3000000);
    assert_int_equal(c.status, SY_GRPC_UNAVAILABLE);
    assert_int_equal(c.opens, 0);
    sy_grpc_call_unref(call);
    sy_grpc_client_free(cl);
    rec_cleanup(&c);
}

/* (5) The server goes away under an open stream: the client hears about it, no hang. */
static void test_server_free_under_stream(void **state)
{
    struct fixture *f = *state;
    struct rec c;
    struct sy_grpc_call *call;

    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, HOLD, &ops, &c);
    assert_non_null(call);
    assert_true(rec_wait(&f->hold, &f->hold.opens, 1));
    send_str(call, "ping");
    assert_true(rec_wait(&f->hold, &f->hold.nmsgs, 1));
    sy_grpc_server_free(f->srv);
    f->srv = NULL;
    /* The server's on_close ran before its free returned. */
    assert_int_equal(f->hold.closes, 1);
    assert_int_equal(f->hold.status, SY_GRPC_CANCELLED);
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_true(c.status == SY_GRPC_UNAVAILABLE || c.status == SY_GRPC_CANCELLED);
    assert_int_equal(sy_grpc_call_send(f->hold.last, (const uint8_t *)"x", 1), -EPIPE);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
}

/* The client goes away under open streams: every one gets on_close before free returns. */
static void test_client_free_under_streams(void **state)
{
    struct fixture *f = *state;
    struct rec c[3];
    struct sy_grpc_call *calls[3];

    for (int i = 0; i < 3; i++) {
        rec_init(&c[i], false);
        calls[i] = sy_grpc_client_open_stream(f->cl, HOLD, &ops, &c[i]);
        assert_non_null(calls[i]);
    }
    assert_true(rec_wait(&f->hold, &f->hold.opens, 3));
    sy_grpc_client_free(f->cl);
    f->cl = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].closes, 1);
        assert_int_equal(c[i].status, SY_GRPC_CANCELLED);
        /* The call outlives its client while we hold a reference. */
        assert_int_equal(sy_grpc_call_send(calls[i], (const uint8_t *)"x", 1), -EPIPE);
        sy_grpc_call_close(calls[i], SY_GRPC_OK, NULL);
        sy_grpc_call_unref(calls[i]);
        rec_cleanup(&c[i]);
    }
    assert_true(rec_wait(&f->hold, &f->hold.closes, 3));
    assert_int_equal(f->hold.status, SY_GRPC_CANCELLED);
}

/* (6) Many streams at once, each with its own conversation. */
static void test_many_streams(void **state)
{
    enum { NSTREAMS = 50, NMSGS = 4 };
    struct fixture *f = *state;
    struct rec *c = sy_xcalloc(NSTREAMS, sizeof(*c));
    struct sy_grpc_call *calls[NSTREAMS];
    char buf[32];

    for (int i = 0; i < NSTREAMS; i++) {
        rec_init(&c[i], false);
        calls[i] = sy_grpc_client_open_stream(f->cl, ECHO, &ops, &c[i]);
        assert_non_null(calls[i]);
        sy_grpc_call_set_user(calls[i], &c[i]);
        for (int j = 0; j < NMSGS; j++) {
            snprintf(buf, sizeof(buf), "s%d-m%d", i, j);
            send_str(calls[i], buf);
        }
        sy_grpc_call_close(calls[i], SY_GRPC_OK, NULL); /* after the queued messages */
    }
    for (int i = 0; i < NSTREAMS; i++) {
        assert_ptr_equal(sy_grpc_call_get_user(calls[i]), &c[i]);
        assert_true(rec_wait(&c[i], &c[i].closes, 1));
        assert_int_equal(c[i].status, SY_GRPC_OK);
        assert_int_equal(c[i].nmsgs, NMSGS);
        for (int j = 0; j < NMSGS; j++) {
            snprintf(buf, sizeof(buf), "s%d-m%d", i, j);
            assert_string_equal(c[i].msgs[j], buf);
        }
        sy_grpc_call_unref(calls[i]);
        rec_cleanup(&c[i]);
    }
    assert_true(rec_wait(&f->echo, &f->echo.closes, NSTREAMS));
    assert_int_equal(f->echo.nmsgs, NSTREAMS * NMSGS);
    free(c);
}

/* (7) 1 MiB out and back, byte for byte; above the cap is refused locally. */
static void test_large_message(void **state)
{
    struct fixture *f = *state;
    size_t len = 1024 * 1024;
    uint8_t *big = sy_xmalloc(len);
    struct sy_grpc_call *call;
    struct rec c;

    for (size_t i = 0; i < len; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, ECHO, &ops, &c);
    assert_non_null(call);
    assert_int_equal(sy_grpc_call_send(call, big, len), 0);
    assert_int_equal(sy_grpc_call_send(call, big, (size_t)SY_GRPC_MAX_MESSAGE + 1), -EMSGSIZE);
    assert_true(rec_wait(&c, &c.nmsgs, 1));
    assert_int_equal(c.lens[0], len);
    assert_memory_equal(c.msgs[0], big, len);
    sy_grpc_call_close(call, SY_GRPC_OK, NULL);
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_int_equal(c.status, SY_GRPC_OK);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
    free(big);
}

/* An unregistered method is answered UNIMPLEMENTED, not left hanging. */
static void test_unknown_method(void **state)
{
    struct fixture *f = *state;
    struct sy_grpc_call *call;
    struct rec c;

    rec_init(&c, false);
    call = sy_grpc_client_open_stream(f->cl, "/switchyard.test.Test/Nope", &ops, &c);
    assert_non_null(call);
    assert_true(rec_wait(&c, &c.closes, 1));
    assert_int_equal(c.status, SY_GRPC_UNIMPLEMENTED);
    sy_grpc_call_unref(call);
    rec_cleanup(&c);
}

/* A server that cannot bind reports it; one that never starts still frees cleanly. */
static void test_server_errors(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    struct sy_grpc_server *srv;
    char addr[64], *err = NULL;
    int port = 0, fd;

    (void)state;
    /* A plain listener without SO_REUSEPORT holds the port against gRPC's. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    srv = sy_grpc_server_new(addr, &port, &err);
    close(fd);
    assert_null(srv);
    assert_non_null(err);
    free(err);
    srv = sy_grpc_server_new("127.0.0.1:0", &port, &err);
    assert_non_null(srv);
    assert_int_equal(sy_grpc_server_add_stream(srv, ECHO, &ops, NULL), 0);
    assert_int_equal(sy_grpc_server_add_stream(srv, ECHO, &ops, NULL), -EEXIST); /* logs */
    sy_grpc_server_free(srv);
    sy_grpc_server_free(NULL);
    sy_grpc_client_free(NULL);
    sy_grpc_call_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cancel, setup, teardown),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test_setup_teardown(test_server_free_under_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_under_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method, setup, teardown),
        cmocka_unit_test(test_server_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
