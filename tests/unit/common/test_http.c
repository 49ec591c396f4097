/* tests/unit/common/test_http.c - the HTTP/1.1 server against raw bytes on loopback:
 * framing (Content-Length, chunked, pipelining), limits, errors in the OpenAI shape,
 * timeouts, keep-alive, SSE streaming and client aborts. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "sy_http.h"
#include "sy_util.h"

/* The server's own error answers: the shape the data plane uses (dp_errors.c). */
static char *error_body(int status, const char *message)
{
    const char *code = status == 413   ? "request_too_large"
                       : status == 408 ? "request_timeout"
                       : status == 431 ? "headers_too_large"
                                       : "bad_request";
    return sy_xasprintf("{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\","
                        "\"param\":null,\"code\":\"%s\"}}",
                        message, code);
}

struct fixture {
    struct event_base *base;
    struct sy_http_server *srv;
    int port;
    int handled;
    int aborted;
    struct sy_http_req *held; /* a request the handler did not answer yet */
    struct sy_http_limits lim;
};

/* Answers with the method, path, body length and one header, or holds /hold and /stream. */
static void handler(struct sy_http_req *req, void *arg)
{
    struct fixture *f = arg;
    char body[512];
    size_t len;
    const char *b = sy_http_req_body(req, &len);
    const char *x = sy_http_req_header(req, "X-Test");

    f->handled++;
    if (strcmp(sy_http_req_path(req), "/hold") == 0 ||
        strcmp(sy_http_req_path(req), "/stream") == 0) {
        f->held = req;
        return;
    }
    snprintf(body, sizeof(body),
             "{\"method\":\"%s\",\"path\":\"%s\",\"query\":\"%s\",\"len\":%zu,"
             "\"x\":\"%s\",\"body\":\"%.40s\"}",
             sy_http_req_method_name(req), sy_http_req_path(req), sy_http_req_query(req), len,
             x ? x : "", b);
    sy_http_add_header(req, "x-extra", "1");
    sy_http_reply(req, 200, "application/json", body, strlen(body));
}

static void on_abort(struct sy_http_req *req, void *arg)
{
    struct fixture *f = arg;
    (void)req;
    f->aborted++;
    f->held = NULL;
}

static int setup(void **state)
{
    struct fixture *f = sy_xcalloc(1, sizeof(*f));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sl = sizeof(sin);
    int fd, one = 1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 64), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    f->port = ntohs(sin.sin_port);
    f->base = event_base_new();
    f->lim = (struct sy_http_limits){
        .max_body_bytes = 1024,
        .max_header_bytes = 2048,
        .max_headers = 20,
        .header_timeout_ms = 300,
        .body_timeout_ms = 300,
        .idle_timeout_ms = 300,
        .max_connections = 4,
    };
    f->srv = sy_http_server_new(f->base, fd, &f->lim, handler, f, error_body);
    assert_non_null(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sy_http_server_free(f->srv);
    event_base_free(f->base);
    free(f);
    return 0;
}

static int client(struct fixture *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Runs the loop and reads what the server sends until <until> appears in the output (or
 * the peer closes, or <ms> pass). Returns the bytes read so far in <out>. */
static size_t pump(struct fixture *f, int fd, char *out, size_t cap, const char *until, int ms)
{
    size_t n = 0;
    uint64_t end = sy_now_us() + (uint64_t)ms * 1000;

    out[0] = '\0';
    while (sy_now_us() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (poll(&p, 1, 5) > 0) {
            ssize_t r = recv(fd, out + n, cap - n - 1, 0);
            if (r <= 0)
                break;
            n += (size_t)r;
            out[n] = '\0';
            if (until && strstr(out, until))
                break;
        }
    }
    return n;
}

static void test_simple_get_keepalive(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "GET /a/b?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n\r\n");
    pump(f, fd, buf, sizeof(buf), "}", 1000);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "x-extra: 1\r\n"));
    assert_non_null(strstr(buf, "\"path\":\"/a/b\",\"query\":\"x=1\""));
    assert_non_null(strstr(buf, "\"x\":\"hello\""));
    assert_null(strstr(buf, "Connection: close"));
    /* Same connection, second request. */
    send_str(fd, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    pump(f, fd, buf, sizeof(buf), "}", 1000);
    assert_non_null(strstr(buf, "\"len\":5"));
    assert_non_null(strstr(buf, "\"body\":\"hello\""));
    assert_int_equal(f->handled, 2);
    close(fd);
}

static void test_pipelined(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);
    const char *two = "GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n";

    send_all(fd, two, strlen(two));
    pump(f, fd, buf, sizeof(buf), "/two", 1000);
    char *first = strstr(buf, "/one");
    char *second = strstr(buf, "/two");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    close(fd);
}

static void test_chunked_body(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);
    const char *req = "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";

    send_all(fd, req, strlen(req));
    pump(f, fd, buf, sizeof(buf), "}", 1000);
    assert_non_null(strstr(buf, "\"len\":11"));
    assert_non_null(strstr(buf, "\"body\":\"hello world\""));
    close(fd);
}

static void expect_error(struct fixture *f, const char *req, const char *status, const char *code)
{
    char buf[8192];
    int fd = client(f);

    send_all(fd, req, strlen(req));
    pump(f, fd, buf, sizeof(buf), NULL, 1000);
    if (!strstr(buf, status))
        fail_msg("expected %s for %s, got: %s", status, req, buf);
    assert_non_null(strstr(buf, "Content-Type: application/json"));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_non_null(strstr(buf, "{\"error\":{\"message\":"));
    if (code)
        assert_non_null(strstr(buf, code));
    close(fd);
}

static void test_errors_are_openai_objects(void **state)
{
    struct fixture *f = *state;
    char big[4096];

    expect_error(f, "POST /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413",
                 "request_too_large");
    expect_error(f, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n", "HTTP/1.1 413",
                 "request_too_large");
    expect_error(f, "POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                 "HTTP/1.1 400", NULL);
    expect_error(f, "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                 "HTTP/1.1 400", NULL);
    expect_error(f, "POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400", NULL);
    expect_error(f, "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501", NULL);
    expect_error(f, "GET /x HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "HTTP/1.1 400", NULL);
    expect_error(f, "GET /x HTTP/2.0\r\n\r\n", "HTTP/1.1 505", NULL);
    expect_error(f, "GET x HTTP/1.1\r\n\r\n", "HTTP/1.1 400", NULL);
    expect_error(f, "GARBAGE\r\n\r\n", "HTTP/1.1 400", NULL);
    expect_error(f, "GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n", "HTTP/1.1 400", NULL);
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /x HTTP/1.1\r\nX: ", 20);
    big[sizeof(big) - 1] = '\0';
    expect_error(f, big, "HTTP/1.1 431", "headers_too_large");
    assert_int_equal(f->handled, 0);
}

static void test_expect_continue(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "POST /e HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    pump(f, fd, buf, sizeof(buf), "100 Continue\r\n\r\n", 1000);
    assert_non_null(strstr(buf, "HTTP/1.1 100 Continue"));
    send_str(fd, "abc");
    pump(f, fd, buf, sizeof(buf), "}", 1000);
    assert_non_null(strstr(buf, "\"len\":3"));
    close(fd);
}

static void test_header_timeout(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "GET /slow HTTP/1.1\r\nHost:");
    pump(f, fd, buf, sizeof(buf), NULL, 1500);
    assert_non_null(strstr(buf, "HTTP/1.1 408"));
    assert_non_null(strstr(buf, "request_timeout"));
    close(fd);
}

static void test_http10_closes(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "GET /old HTTP/1.0\r\n\r\n");
    size_t n = pump(f, fd, buf, sizeof(buf), NULL, 1000);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "HTTP/1.0 200 OK"));
    assert_non_null(strstr(buf, "Connection: close"));
    close(fd);
}

static void test_stream_and_abort(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "GET /stream HTTP/1.1\r\n\r\n");
    pump(f, fd, buf, sizeof(buf), NULL, 100);
    assert_non_null(f->held);
    sy_http_req_on_abort(f->held, on_abort, f);
    sy_http_stream_begin(f->held, 200, "text/event-stream");
    sy_http_stream_write(f->held, "data: 1\n\n", 9);
    pump(f, fd, buf, sizeof(buf), "data: 1\n\n\r\n", 1000);
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(buf, "9\r\ndata: 1\n\n\r\n"));
    /* The client goes away mid-stream: the abort callback runs, nothing leaks. */
    close(fd);
    for (int i = 0; i < 50 && f->held; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(2000);
    }
    assert_int_equal(f->aborted, 1);
    assert_null(f->held);
}

static void test_stream_end(void **state)
{
    struct fixture *f = *state;
    char buf[8192];
    int fd = client(f);

    send_str(fd, "GET /stream HTTP/1.1\r\n\r\n");
    pump(f, fd, buf, sizeof(buf), NULL, 100);
    assert_non_null(f->held);
    sy_http_stream_begin(f->held, 200, "text/event-stream");
    sy_http_stream_write(f->held, "data: x\n\n", 9);
    sy_http_stream_end(f->held);
    f->held = NULL;
    pump(f, fd, buf, sizeof(buf), "0\r\n\r\n", 1000);
    assert_non_null(strstr(buf, "0\r\n\r\n"));
    assert_int_equal(f->aborted, 0);
    close(fd);
}

static void test_connection_cap(void **state)
{
    struct fixture *f = *state;
    int fds[5];
    char buf[4096];

    for (int i = 0; i < 4; i++) {
        fds[i] = client(f);
        pump(f, fds[i], buf, sizeof(buf), NULL, 30);
    }
    assert_int_equal(sy_http_server_connections(f->srv), 4);
    fds[4] = client(f);
    pump(f, fds[4], buf, sizeof(buf), NULL, 300);
    assert_non_null(strstr(buf, "HTTP/1.1 503"));
    assert_non_null(strstr(buf, "too_many_connections"));
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simple_get_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_are_openai_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
