/* tests/unit/tui/test_fetch.c - the admin API client (tui_fetch.c) against a small HTTP
 * server in a thread of this test: replies land in the model, error answers and the
 * optional endpoint, a refused connection, a server that never answers (bounded by the
 * request timeout), and input on the keyboard fd waking the poll. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#include "sy_util.h"
#include "tui_fetch.h"
#include "tui_test.h"

struct fake {
    int fd;
    int port;
    pthread_t thread;
    volatile int stop;
    char paths[16][128]; /* requests seen, in order */
    int npaths;
    pthread_mutex_t lock;
};

static void reply(int c, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));

    if (write(c, head, (size_t)n) < 0 || write(c, body, strlen(body)) < 0)
        return;
}

/* Answers one request on <c> by its path. */
static void serve(struct fake *f, int c)
{
    char req[4096], path[128] = "";
    size_t len = 0;
    char *body = NULL;

    while (len < sizeof(req) - 1) {
        ssize_t n = read(c, req + len, sizeof(req) - 1 - len);

        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    if (sscanf(req, "GET %127s ", path) != 1)
        return;
    pthread_mutex_lock(&f->lock);
    if (f->npaths < 16)
        snprintf(f->paths[f->npaths++], sizeof(f->paths[0]), "%s", path);
    pthread_mutex_unlock(&f->lock);
    if (strncmp(path, "/v1/stats?", 10) == 0)
        body = read_fixture("stats.json", NULL);
    else if (strcmp(path, "/v1/fleet") == 0)
        body = read_fixture("fleet.json", NULL);
    else if (strcmp(path, "/v1/spend?period=day") == 0)
        body = read_fixture("spend_day.json", NULL);
    else if (strcmp(path, "/v1/spend?period=month") == 0)
        body = read_fixture("spend_month.json", NULL);
    if (body) {
        reply(c, 200, body);
        free(body);
    } else if (strcmp(path, "/v1/policies") == 0) {
        reply(c, 503,
              "{\"error\":{\"message\":\"store unreachable\",\"type\":\"server_error\","
              "\"code\":null,\"param\":null}}");
    } else {
        reply(c, 404,
              "{\"error\":{\"message\":\"unknown path\",\"type\":\"invalid_request_error\","
              "\"code\":\"not_found\",\"param\":null}}");
    }
}

static void *on_thread(void *arg)
{
    struct fake *f = arg;

    while (!f->stop) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        int c;

        if (poll(&p, 1, 50) <= 0)
            continue;
        c = accept(f->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve(f, c);
        close(c);
    }
    return NULL;
}

/* A listening socket on a free loopback port. */
static int listen_any(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pthread_mutex_init(&f->lock, NULL);
    f->fd = listen_any(&f->port);
    assert_int_equal(pthread_create(&f->thread, NULL, on_thread, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->thread, NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static bool saw(struct fake *f, const char *path)
{
    bool found = false;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->npaths; i++)
        found |= strcmp(f->paths[i], path) == 0;
    pthread_mutex_unlock(&f->lock);
    return found;
}

static struct tui_client *client_for(int port)
{
    char url[64];
    struct tui_client *c;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    c = tui_client_new(url);
    assert_non_null(c);
    return c;
}

static void test_fetch_ok(void **state)
{
    const unsigned mask = TUI_SRC_BIT(TUI_SRC_STATS) | TUI_SRC_BIT(TUI_SRC_FLEET) |
                          TUI_SRC_BIT(TUI_SRC_SPEND_DAY) | TUI_SRC_BIT(TUI_SRC_SPEND_MONTH) |
                          TUI_SRC_BIT(TUI_SRC_EXPERIMENTS);
    struct fake *f = fake_start();
    struct tui_client *c = client_for(f->port);
    struct tui_model m = {0};

    (void)state;
    assert_false(tui_client_busy(c));
    assert_int_equal(tui_client_fetch(c, mask, "10s", &m), 0);
    assert_false(tui_client_busy(c));
    assert_true(saw(f, "/v1/stats?window=10s"));
    assert_true(saw(f, "/v1/spend?period=month"));
    assert_non_null(m.stats);
    assert_int_equal(m.stats->totals.requests, 1200);
    assert_non_null(m.fleet);
    assert_non_null(m.spend_day);
    assert_non_null(m.spend_month);
    assert_true(m.src[TUI_SRC_EXPERIMENTS].absent);
    assert_null(m.unreachable);
    assert_true(m.src[TUI_SRC_STATS].updated_ms > 0);

    /* Again on the same client (connections are reused or reopened as needed). */
    assert_int_equal(tui_client_fetch(c, TUI_SRC_BIT(TUI_SRC_FLEET), "1m", &m), 0);

    /* An error answer. */
    assert_int_equal(tui_client_fetch(c, TUI_SRC_BIT(TUI_SRC_POLICIES), "1m", &m), -EPROTO);
    assert_string_equal(m.src[TUI_SRC_POLICIES].error,
                        "GET /v1/policies: HTTP 503: store unreachable");
    tui_client_free(c);
    tui_model_cleanup(&m);
    fake_stop(f);
}

static void test_refused(void **state)
{
    int port;
    int fd = listen_any(&port);
    struct tui_client *c;
    struct tui_model m = {0};

    (void)state;
    close(fd); /* nothing listens there now */
    c = client_for(port);
    assert_int_equal(
        tui_client_fetch(c, TUI_SRC_BIT(TUI_SRC_STATS) | TUI_SRC_BIT(TUI_SRC_FLEET), "1m", &m),
        -EIO);
    assert_string_equal(m.unreachable, "connection refused");
    assert_string_equal(m.src[TUI_SRC_FLEET].error, "GET /v1/fleet: connection refused");
    tui_client_free(c);
    tui_model_cleanup(&m);
}

static void test_silent_server_times_out(void **state)
{
    int port;
    int fd = listen_any(&port); /* accepts connections (backlog) but never answers */
    struct tui_client *c = client_for(port);
    struct tui_model m = {0};
    uint64_t t0 = sy_now_us();
    uint64_t took_ms;

    (void)state;
    assert_int_equal(tui_client_fetch(c, TUI_SRC_BIT(TUI_SRC_STATS), "1m", &m), -EIO);
    took_ms = (sy_now_us() - t0) / 1000;
    assert_string_equal(m.unreachable, "no answer within 900 ms");
    assert_true(took_ms >= 800);
    assert_true(took_ms < 3000);
    tui_client_free(c);
    tui_model_cleanup(&m);
    close(fd);
}

static void test_input_wakes_poll(void **state)
{
    struct tui_client *c = client_for(1);
    struct tui_model m = {0};
    int p[2];
    uint64_t t0;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "q", 1), 1);
    t0 = sy_now_us();
    assert_int_equal(tui_client_poll(c, p[0], 5000, &m), 0);
    assert_true((sy_now_us() - t0) / 1000 < 2000);
    close(p[0]);
    close(p[1]);
    tui_client_free(c);
    tui_model_cleanup(&m);
}

static int setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_ok),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_input_wakes_poll),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
