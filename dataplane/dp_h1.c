/* dataplane/dp_h1.c - HTTP/1.1 client for plain-http providers: pools, framing, timeouts.
 *
 * A call walks CONNECTING -> HEAD -> BODY -> finished. It owns a flat read buffer (recycled
 * with the call object, so the hot path allocates nothing): bytes are read into it, the
 * head is parsed in place, body bytes are handed to on_data straight from it, and bytes
 * on_data refuses (pause) stay there until dp_h1_resume. A connection owns only its socket
 * and two embedded events; its read event stays armed for its whole life, so an idle
 * pooled connection that the server closes is noticed and dropped at once, and taking one
 * from the pool costs no syscall. Connections go back to the pool only after a response
 * that was framed completely, with keep-alive and nothing extra behind it.
 *
 * One timer per call, armed for its nearest deadline (connect, whole call, first body
 * byte, idle); reads only record the time, and a timer that fires early re-arms itself.
 * Callbacks run only from loop events (socket, timer, the call's deferred event), never
 * from dp_h1_start; a call is finished - its connection pooled or closed, the call
 * unlinked - before on_done runs, so on_done may start new calls. Worker thread only.
 */
#define SY_LOG_MODULE "h1"

#include "dp_h1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event_struct.h>

#include "sy_log.h"
#include "sy_util.h"

#define H1_RBUF_SIZE (16 * 1024)
#define H1_MAX_REQ_HEAD (64 * 1024) /* our own request head: only absurd configs get near */
#define H1_MAX_ADDRS 4
#define H1_MAX_HOST 256
#define H1_MAX_POOLS 64             /* beyond this, pools without connections are dropped */
#define H1_FREE_CALLS 64            /* recycled call objects kept */
#define H1_RESOLVE_RETRY_US 2000000 /* a failed name lookup is not retried for 2 s */
#define H1_MAX_CHUNK_LINE 4096      /* chunk size line with extensions */
#define H1_USER_AGENT "switchyard/0.1"

enum h1_state {
    H1_CONNECTING = 0, /* no usable connection yet */
    H1_HEAD,           /* request sent or being sent; reading status line and headers */
    H1_BODY,           /* on_headers ran; delivering the body */
};

enum h1_framing {
    FR_NONE = 0, /* no body (204, 304) */
    FR_LENGTH,   /* Content-Length */
    FR_CHUNKED,  /* Transfer-Encoding: chunked */
    FR_EOF,      /* until the server closes */
};

enum h1_chunk {
    CK_SIZE = 0, /* expecting "HEX[;ext]\r\n" */
    CK_DATA,     /* inside chunk data */
    CK_DATA_END, /* expecting the CRLF after chunk data */
    CK_TRAILER,  /* trailer lines until an empty one */
};

/* What feeding buffered bytes came to. */
enum h1_step {
    STEP_MORE = 0, /* everything usable was used; read more */
    STEP_PAUSED,   /* on_data refused bytes: stop reading */
    STEP_ENDED,    /* the call finished (or moved to a new connection): touch nothing */
};

struct h1_pool;
struct h1_conn;

struct dp_h1_call {
    struct dp_h1 *h1;
    struct h1_pool *pool;
    struct h1_conn *conn;
    const struct dp_upstream_ops *ops;
    void *arg;
    enum h1_state state;
    struct event timer; /* nearest deadline */
    struct event defer; /* failures found in dp_h1_start, redelivery after a resume */

    /* request */
    char *head; /* "POST ... \r\n\r\n", rebuilt per call into a recycled buffer */
    size_t head_len, head_cap;
    const char *body;
    size_t body_len;
    size_t sent; /* bytes of head + body written */
    int send_errno;

    /* timeouts; deadlines are sy_now_us() values, 0 = none */
    uint32_t connect_ms, total_ms, first_byte_ms, idle_ms;
    uint64_t t_start, connect_deadline, total_deadline, first_byte_deadline, last_rx;
    uint64_t armed_for; /* deadline the timer is armed for, 0 = not armed */

    /* response */
    char *rbuf;
    size_t rcap, rstart, rend, scan;
    uint64_t rx_bytes;   /* everything read from the current connection */
    uint64_t body_bytes; /* body bytes delivered */
    int minor;
    long status;
    bool keep_alive;
    enum h1_framing framing;
    uint64_t left; /* FR_LENGTH: body bytes to come; CK_DATA: chunk bytes to come */
    enum h1_chunk chunk;
    size_t trailer_bytes;
    char content_type[128];
    char retry_after[64];

    size_t addr_idx;
    bool got_body;
    bool paused;
    bool retried;        /* the one retry after a stale pooled connection is used */
    bool in_start;       /* inside dp_h1_start: failures are deferred */
    bool fail_pending;   /* a deferred failure waits in <fail_res>, <detail> */
    bool resume_pending; /* redeliver buffered bytes from the loop */
    enum dp_upstream_result fail_res;
    char detail[256];

    struct dp_h1_call *prev, *next; /* active list, or the free list (next only) */
};

struct h1_conn {
    struct dp_h1 *h1;
    struct h1_pool *pool;
    int fd;
    struct event rev; /* EV_READ|EV_PERSIST, armed for the connection's life except pauses */
    struct event wev; /* EV_WRITE|EV_PERSIST, armed while connecting or when a write blocks */
    bool connected;
    bool pooled;                 /* in its pool's idle list */
    uint32_t served;             /* complete responses: > 0 means it came from the pool */
    struct dp_h1_call *call;     /* NULL while idle in the pool */
    uint64_t idle_since;         /* sy_now_us() when pooled */
    struct h1_conn *prev, *next; /* the pool's idle list, most recently used first */
};

struct h1_pool {
    struct h1_pool *next;
    char *authority; /* "host[:port]" exactly as in the URL: the key and the Host header */
    size_t auth_len;
    char host[H1_MAX_HOST]; /* without brackets: for getaddrinfo and messages */
    uint16_t port;
    bool numeric;
    struct sockaddr_storage addrs[H1_MAX_ADDRS];
    socklen_t addr_lens[H1_MAX_ADDRS];
    size_t n_addrs; /* 0: not resolved (yet, or again after a failed connect) */
    uint64_t resolve_failed_at;
    struct h1_conn *idle_head, *idle_tail;
    size_t n_idle;
    size_t n_calls; /* calls in progress that use this pool */
};

struct dp_h1 {
    struct event_base *base;
    struct h1_pool *pools;
    size_t n_pools;
    size_t n_idle; /* over all pools */
    size_t max_idle;
    uint32_t idle_timeout_ms;
    struct event *sweep;      /* closes pooled connections idle too long; pending iff n_idle */
    struct dp_h1_call *calls; /* in progress */
    size_t active;
    struct dp_h1_call *free_calls;
    size_t n_free_calls;
};

static void on_conn_read(evutil_socket_t fd, short what, void *arg);
static void on_conn_write(evutil_socket_t fd, short what, void *arg);
static enum h1_step call_connect(struct dp_h1_call *call);
static enum h1_step call_send(struct dp_h1_call *call);

/* ---- URLs --------------------------------------------------------------------------- */

struct h1_url {
    const char *auth; /* host[:port] */
    size_t auth_len;
    const char *host;
    size_t host_len;
    uint16_t port;
    const char *path; /* from '/' or '?', without a fragment; empty means "/" */
    size_t path_len;
};

static int parse_url(const char *url, struct h1_url *u)
{
    const char *p, *auth_end, *host_end;
    long port = 80;

    if (strncasecmp(url, "http://", 7) != 0)
        return -EINVAL;
    u->auth = url + 7;
    auth_end = u->auth + strcspn(u->auth, "/?#");
    u->auth_len = (size_t)(auth_end - u->auth);
    if (u->auth_len == 0 || memchr(u->auth, '@', u->auth_len))
        return -EINVAL;
    if (u->auth[0] == '[') {
        host_end = memchr(u->auth, ']', u->auth_len);
        if (!host_end || host_end == u->auth + 1)
            return -EINVAL;
        u->host = u->auth + 1;
        u->host_len = (size_t)(host_end - u->host);
        p = host_end + 1;
    } else {
        host_end = memchr(u->auth, ':', u->auth_len);
        if (!host_end)
            host_end = auth_end;
        u->host = u->auth;
        u->host_len = (size_t)(host_end - u->host);
        p = host_end;
    }
    if (u->host_len == 0 || u->host_len >= H1_MAX_HOST)
        return -EINVAL;
    if (p < auth_end) {
        char *end;
        if (*p != ':' || p + 1 == auth_end || p[1] < '0' || p[1] > '9')
            return -EINVAL;
        errno = 0;
        port = strtol(p + 1, &end, 10);
        if (errno || end != auth_end || port < 1 || port > 65535)
            return -EINVAL;
    }
    u->port = (uint16_t)port;
    u->path = auth_end;
    u->path_len = strcspn(auth_end, "#");
    for (size_t i = 0; i < u->path_len; i++) {
        unsigned char c = (unsigned char)u->path[i];
        if (c <= 0x20 || c == 0x7f)
            return -EINVAL;
    }
    for (size_t i = 0; i < u->host_len; i++) {
        unsigned char c = (unsigned char)u->host[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\')
            return -EINVAL;
    }
    return 0;
}

bool dp_h1_url_ok(const char *url)
{
    struct h1_url u;
    return url && parse_url(url, &u) == 0;
}

/* ---- pools and connections ---------------------------------------------------------- */

static struct h1_pool *pool_new(struct dp_h1 *h1, const struct h1_url *u)
{
    struct h1_pool *pool = sy_xcalloc(1, sizeof(*pool));

    pool->authority = sy_xstrndup(u->auth, u->auth_len);
    pool->auth_len = u->auth_len;
    memcpy(pool->host, u->host, u->host_len);
    pool->host[u->host_len] = '\0';
    pool->port = u->port;
    {
        struct sockaddr_in *sin = (struct sockaddr_in *)&pool->addrs[0];
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pool->addrs[0];
        if (inet_pton(AF_INET, pool->host, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(pool->port);
            pool->addr_lens[0] = sizeof(*sin);
            pool->n_addrs = 1;
            pool->numeric = true;
        } else if (inet_pton(AF_INET6, pool->host, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(pool->port);
            pool->addr_lens[0] = sizeof(*sin6);
            pool->n_addrs = 1;
            pool->numeric = true;
        }
    }
    pool->next = h1->pools;
    h1->pools = pool;
    h1->n_pools++;
    return pool;
}

static void pool_free(struct h1_pool *pool)
{
    if (!pool)
        return;
    free(pool->authority);
    free(pool);
}

/* Drops pools that hold no connection, so a long life of changing URLs stays bounded. */
static void pools_prune(struct dp_h1 *h1)
{
    struct h1_pool **pp = &h1->pools;

    while (*pp) {
        struct h1_pool *pool = *pp;
        if (pool->n_idle == 0 && pool->n_calls == 0) {
            *pp = pool->next;
            h1->n_pools--;
            pool_free(pool);
        } else {
            pp = &pool->next;
        }
    }
}

static struct h1_pool *pool_get(struct dp_h1 *h1, const struct h1_url *u)
{
    for (struct h1_pool *pool = h1->pools; pool; pool = pool->next) {
        if (pool->auth_len == u->auth_len && memcmp(pool->authority, u->auth, u->auth_len) == 0)
            return pool;
    }
    if (h1->n_pools >= H1_MAX_POOLS)
        pools_prune(h1);
    return pool_new(h1, u);
}

/* Fills the pool's addresses for a host name. getaddrinfo blocks the worker: acceptable
 * because it runs once per pool (the answer is kept until a connect to it fails) and the
 * intended targets are IPs or in-cluster names; a failure is remembered for 2 s. */
static int pool_resolve(struct h1_pool *pool, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[8];
    uint64_t now = sy_now_us();
    int rc;

    if (pool->resolve_failed_at && now - pool->resolve_failed_at < H1_RESOLVE_RETRY_US) {
        snprintf(err, errlen, "Could not resolve host: %.200s (failed moments ago)", pool->host);
        return -EHOSTUNREACH;
    }
    snprintf(port, sizeof(port), "%u", pool->port);
    rc = getaddrinfo(pool->host, port, &hints, &res);
    if (rc != 0 || !res) {
        pool->resolve_failed_at = now;
        snprintf(err, errlen, "Could not resolve host: %.200s (%s)", pool->host, gai_strerror(rc));
        if (res)
            freeaddrinfo(res);
        return -EHOSTUNREACH;
    }
    pool->n_addrs = 0;
    for (struct addrinfo *ai = res; ai && pool->n_addrs < H1_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(pool->addrs[0]))
            continue;
        memcpy(&pool->addrs[pool->n_addrs], ai->ai_addr, ai->ai_addrlen);
        pool->addr_lens[pool->n_addrs] = (socklen_t)ai->ai_addrlen;
        pool->n_addrs++;
    }
    freeaddrinfo(res);
    pool->resolve_failed_at = 0;
    return pool->n_addrs ? 0 : -EHOSTUNREACH;
}

static void idle_unlink(struct h1_conn *conn)
{
    struct h1_pool *pool = conn->pool;

    if (conn->prev)
        conn->prev->next = conn->next;
    else
        pool->idle_head = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    else
        pool->idle_tail = conn->prev;
    conn->prev = conn->next = NULL;
    conn->pooled = false;
    pool->n_idle--;
    conn->h1->n_idle--;
}

/* Closes <conn>, idle or busy; its call (if any) must already be detached. */
static void conn_close(struct h1_conn *conn)
{
    if (!conn)
        return;
    if (conn->pooled)
        idle_unlink(conn);
    conn->call = NULL;
    event_del(&conn->rev);
    event_del(&conn->wev);
    close(conn->fd);
    free(conn);
}

/* Detaches <call> from its connection and closes it (a failed or cancelled call). */
static void call_drop_conn(struct dp_h1_call *call)
{
    struct h1_conn *conn = call->conn;

    if (!conn)
        return;
    call->conn = NULL;
    conn->call = NULL;
    conn_close(conn);
}

static void arm_sweep(struct dp_h1 *h1, uint64_t in_us)
{
    struct timeval tv = {.tv_sec = (time_t)(in_us / 1000000u),
                         .tv_usec = (suseconds_t)(in_us % 1000000u)};
    evtimer_add(h1->sweep, &tv);
}

/* Returns <call>'s connection to its pool after a complete response. */
static void call_pool_conn(struct dp_h1_call *call)
{
    struct h1_conn *conn = call->conn;
    struct h1_pool *pool = conn->pool;
    struct dp_h1 *h1 = call->h1;

    call->conn = NULL;
    conn->call = NULL;
    conn->served++;
    if (h1->max_idle == 0) {
        conn_close(conn);
        return;
    }
    if (pool->n_idle >= h1->max_idle)
        conn_close(pool->idle_tail); /* the least recently used goes */
    conn->idle_since = sy_now_us();
    conn->pooled = true;
    conn->prev = NULL;
    conn->next = pool->idle_head;
    if (pool->idle_head)
        pool->idle_head->prev = conn;
    else
        pool->idle_tail = conn;
    pool->idle_head = conn;
    pool->n_idle++;
    if (h1->n_idle++ == 0)
        arm_sweep(h1, (uint64_t)h1->idle_timeout_ms * 1000u);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct dp_h1 *h1 = arg;
    uint64_t now = sy_now_us();
    uint64_t ttl = (uint64_t)h1->idle_timeout_ms * 1000u;
    uint64_t next = UINT64_MAX;
    (void)fd;
    (void)what;

    for (struct h1_pool *pool = h1->pools; pool; pool = pool->next) {
        while (pool->idle_tail && now - pool->idle_tail->idle_since >= ttl)
            conn_close(pool->idle_tail);
        if (pool->idle_tail && pool->idle_tail->idle_since + ttl < next)
            next = pool->idle_tail->idle_since + ttl;
    }
    if (h1->n_idle)
        arm_sweep(h1, next > now ? next - now : 0);
}

static struct h1_conn *conn_new(struct dp_h1 *h1, struct h1_pool *pool, int fd)
{
    struct h1_conn *conn = sy_xcalloc(1, sizeof(*conn));

    conn->h1 = h1;
    conn->pool = pool;
    conn->fd = fd;
    event_assign(&conn->rev, h1->base, fd, EV_READ | EV_PERSIST, on_conn_read, conn);
    event_assign(&conn->wev, h1->base, fd, EV_WRITE | EV_PERSIST, on_conn_write, conn);
    return conn;
}

/* ---- calls: lifecycle ---------------------------------------------------------------- */

static void on_call_timer(evutil_socket_t fd, short what, void *arg);
static void on_call_defer(evutil_socket_t fd, short what, void *arg);

static struct dp_h1_call *call_get(struct dp_h1 *h1)
{
    struct dp_h1_call *call = h1->free_calls;

    if (call) {
        h1->free_calls = call->next;
        h1->n_free_calls--;
    } else {
        call = sy_xcalloc(1, sizeof(*call));
        call->h1 = h1;
        call->rbuf = sy_xmalloc(H1_RBUF_SIZE);
        call->rcap = H1_RBUF_SIZE;
        evtimer_assign(&call->timer, h1->base, on_call_timer, call);
        event_assign(&call->defer, h1->base, -1, 0, on_call_defer, call);
    }
    /* Reset everything per call; the buffers and the assigned events stay. */
    call->pool = NULL;
    call->conn = NULL;
    call->state = H1_CONNECTING;
    call->head_len = 0;
    call->sent = 0;
    call->send_errno = 0;
    call->connect_deadline = call->total_deadline = call->first_byte_deadline = 0;
    call->armed_for = 0;
    call->rstart = call->rend = call->scan = 0;
    call->rx_bytes = call->body_bytes = 0;
    call->status = 0;
    call->framing = FR_NONE;
    call->left = 0;
    call->chunk = CK_SIZE;
    call->trailer_bytes = 0;
    call->content_type[0] = '\0';
    call->retry_after[0] = '\0';
    call->addr_idx = 0;
    call->got_body = call->paused = call->retried = false;
    call->fail_pending = call->resume_pending = false;
    call->detail[0] = '\0';
    call->prev = call->next = NULL;
    return call;
}

static void call_free(struct dp_h1_call *call)
{
    if (!call)
        return;
    free(call->head);
    free(call->rbuf);
    free(call);
}

/* Unlinks a finished or cancelled call and recycles it. Its connection is already gone. */
static void call_put(struct dp_h1_call *call)
{
    struct dp_h1 *h1 = call->h1;

    event_del(&call->timer);
    event_del(&call->defer);
    if (call->prev)
        call->prev->next = call->next;
    else
        h1->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    h1->active--;
    call->pool->n_calls--;
    call->pool = NULL;
    if (h1->n_free_calls >= H1_FREE_CALLS) {
        call_free(call);
        return;
    }
    if (call->rcap > H1_RBUF_SIZE) {
        /* A huge head made it grow: recycled calls keep the common size. */
        free(call->rbuf);
        call->rbuf = sy_xmalloc(H1_RBUF_SIZE);
        call->rcap = H1_RBUF_SIZE;
    }
    call->prev = NULL;
    call->next = h1->free_calls;
    h1->free_calls = call;
    h1->n_free_calls++;
}

/* Ends <call>: the connection is already pooled or is closed here, the call is recycled,
 * then on_done runs (which may start new calls, even on the pooled connection). */
static enum h1_step call_finish(struct dp_h1_call *call, enum dp_upstream_result res,
                                const char *detail)
{
    const struct dp_upstream_ops *ops = call->ops;
    void *arg = call->arg;
    char buf[sizeof(call->detail)];

    call_drop_conn(call);
    snprintf(buf, sizeof(buf), "%s", detail);
    call_put(call);
    ops->on_done(arg, res, buf);
    return STEP_ENDED;
}

/* A failure: from inside dp_h1_start it waits for the loop, else the call ends now. */
static enum h1_step call_fail(struct dp_h1_call *call, enum dp_upstream_result res,
                              const char *detail)
{
    if (call->in_start) {
        call->fail_pending = true;
        call->fail_res = res;
        if (detail != call->detail)
            snprintf(call->detail, sizeof(call->detail), "%s", detail);
        call_drop_conn(call);
        event_active(&call->defer, 0, 0);
        return STEP_ENDED;
    }
    return call_finish(call, res, detail);
}

/* ---- timers ------------------------------------------------------------------------- */

static uint64_t call_next_deadline(const struct dp_h1_call *call)
{
    uint64_t d = UINT64_MAX;

    if (call->state == H1_CONNECTING && call->connect_deadline && call->connect_deadline < d)
        d = call->connect_deadline;
    if (call->total_deadline && call->total_deadline < d)
        d = call->total_deadline;
    if (!call->got_body && call->first_byte_deadline && call->first_byte_deadline < d)
        d = call->first_byte_deadline;
    if (call->got_body && call->idle_ms && !call->paused) {
        uint64_t idle = call->last_rx + (uint64_t)call->idle_ms * 1000u;
        if (idle < d)
            d = idle;
    }
    return d;
}

/* Arms the timer when the nearest deadline moved earlier than what it is armed for; later
 * deadlines are found when it fires. */
static void call_timer_update(struct dp_h1_call *call, uint64_t now)
{
    uint64_t d = call_next_deadline(call);
    struct timeval tv;
    uint64_t in;

    if (d == UINT64_MAX || (call->armed_for && call->armed_for <= d))
        return;
    in = d > now ? d - now : 0;
    tv.tv_sec = (time_t)(in / 1000000u);
    tv.tv_usec = (suseconds_t)(in % 1000000u);
    call->armed_for = d;
    evtimer_add(&call->timer, &tv);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dp_h1_call *call = arg;
    uint64_t now = sy_now_us();
    char detail[sizeof(call->detail)];
    (void)fd;
    (void)what;

    call->armed_for = 0;
    if (call->state == H1_CONNECTING && call->connect_deadline && now >= call->connect_deadline) {
        snprintf(detail, sizeof(detail), "Connection timed out after %llu milliseconds",
                 (unsigned long long)((now - call->t_start) / 1000u));
        call_finish(call, DP_UP_TIMEOUT, detail);
        return;
    }
    if (call->total_deadline && now >= call->total_deadline) {
        snprintf(detail, sizeof(detail),
                 "Operation timed out after %llu milliseconds with %llu bytes received",
                 (unsigned long long)((now - call->t_start) / 1000u),
                 (unsigned long long)call->body_bytes);
        call_finish(call, DP_UP_TIMEOUT, detail);
        return;
    }
    if (!call->got_body && call->first_byte_deadline && now >= call->first_byte_deadline) {
        snprintf(detail, sizeof(detail), "no response from the provider within %u ms",
                 call->first_byte_ms);
        call_finish(call, DP_UP_TIMEOUT, detail);
        return;
    }
    if (call->got_body && call->idle_ms && !call->paused &&
        now >= call->last_rx + (uint64_t)call->idle_ms * 1000u) {
        snprintf(detail, sizeof(detail),
                 "Operation too slow: no data from the provider for %u ms (%llu bytes received)",
                 call->idle_ms, (unsigned long long)call->body_bytes);
        call_finish(call, DP_UP_TIMEOUT, detail);
        return;
    }
    call_timer_update(call, now);
}

/* ---- the request -------------------------------------------------------------------- */

static int head_add(struct dp_h1_call *call, const char *s, size_t n)
{
    if (call->head_len + n > call->head_cap) {
        size_t cap = call->head_cap ? call->head_cap : 1024;
        while (cap < call->head_len + n)
            cap *= 2;
        if (cap > H1_MAX_REQ_HEAD)
            return -E2BIG;
        call->head = sy_xrealloc(call->head, cap);
        call->head_cap = cap;
    }
    memcpy(call->head + call->head_len, s, n);
    call->head_len += n;
    return 0;
}

static bool name_is(const char *name, size_t len, const char *want, size_t want_len)
{
    return len == want_len && strncasecmp(name, want, len) == 0;
}

/* Builds "POST <path> HTTP/1.1" + Host + the caller's lines + Content-Length. The caller's
 * list follows libcurl's conventions: "Name:" with no value removes a header (our
 * "Expect:" line exists only to silence libcurl's 100-continue), so it is skipped. */
static int build_head(struct dp_h1_call *call, const struct h1_url *u,
                      const struct dp_upstream_request *rq)
{
    bool own_host = true, own_agent = true, own_accept = true;
    char num[24];
    int n, rc = 0;

    for (const struct curl_slist *h = rq->headers; h; h = h->next) {
        const char *colon = strchr(h->data, ':');
        size_t nl = colon ? (size_t)(colon - h->data) : 0;
        if (name_is(h->data, nl, "host", 4))
            own_host = false;
        else if (name_is(h->data, nl, "user-agent", 10))
            own_agent = false;
        else if (name_is(h->data, nl, "accept", 6))
            own_accept = false;
    }
    rc |= head_add(call, "POST ", 5);
    if (u->path_len == 0 || u->path[0] == '?')
        rc |= head_add(call, "/", 1);
    rc |= head_add(call, u->path, u->path_len);
    rc |= head_add(call, " HTTP/1.1\r\n", 11);
    if (own_host) {
        rc |= head_add(call, "Host: ", 6);
        rc |= head_add(call, u->auth, u->auth_len);
        rc |= head_add(call, "\r\n", 2);
    }
    if (own_agent)
        rc |= head_add(call, "User-Agent: " H1_USER_AGENT "\r\n", 14 + sizeof(H1_USER_AGENT) - 1);
    if (own_accept)
        rc |= head_add(call, "Accept: */*\r\n", 13);
    for (const struct curl_slist *h = rq->headers; h; h = h->next) {
        const char *line = h->data;
        const char *colon = strchr(line, ':');
        size_t len = strlen(line);
        const char *v;

        if (memchr(line, '\r', len) || memchr(line, '\n', len))
            continue; /* never let a header line split the request */
        if (!colon) {
            /* libcurl's "Name;" sends an empty header. */
            if (len > 1 && line[len - 1] == ';') {
                rc |= head_add(call, line, len - 1);
                rc |= head_add(call, ":\r\n", 3);
            }
            continue;
        }
        size_t nl = (size_t)(colon - line);
        if (nl == 0 || name_is(line, nl, "expect", 6) || name_is(line, nl, "content-length", 14) ||
            name_is(line, nl, "transfer-encoding", 17))
            continue;
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        if (!*v)
            continue;
        rc |= head_add(call, line, len);
        rc |= head_add(call, "\r\n", 2);
    }
    n = snprintf(num, sizeof(num), "%zu", rq->body_len);
    rc |= head_add(call, "Content-Length: ", 16);
    rc |= head_add(call, num, (size_t)n);
    rc |= head_add(call, "\r\n\r\n", 4);
    return rc ? -E2BIG : 0;
}

/* ---- connecting and sending --------------------------------------------------------- */

static void conn_attach(struct dp_h1_call *call, struct h1_conn *conn)
{
    call->conn = conn;
    conn->call = call;
}

static bool retry_allowed(const struct dp_h1_call *call)
{
    return call->conn && call->conn->served > 0 && call->rx_bytes == 0 && !call->retried;
}

/* The classic keep-alive race: the server closed a pooled connection as we reused it.
 * Nothing of an answer arrived, so the request goes once more on a fresh connection. */
static enum h1_step call_retry_fresh(struct dp_h1_call *call, const char *why)
{
    sy_debug("pooled connection to %s failed before an answer (%s): retrying on a new one",
             call->pool->authority, why);
    call_drop_conn(call);
    call->retried = true;
    call->state = H1_CONNECTING;
    call->sent = 0;
    call->send_errno = 0;
    call->rstart = call->rend = call->scan = 0;
    call->addr_idx = 0;
    call->connect_deadline =
        call->connect_ms ? sy_now_us() + (uint64_t)call->connect_ms * 1000u : 0;
    return call_connect(call);
}

/* Connected (or reused): start reading and send the request. */
static enum h1_step call_connected(struct dp_h1_call *call)
{
    struct h1_conn *conn = call->conn;

    if (!conn->connected) {
        conn->connected = true;
        event_del(&conn->wev);
        event_add(&conn->rev, NULL);
    }
    call->state = H1_HEAD;
    return call_send(call);
}

static enum h1_step connect_failed(struct dp_h1_call *call, int err)
{
    char detail[sizeof(call->detail)];
    struct h1_pool *pool = call->pool;

    call_drop_conn(call);
    if (call->addr_idx + 1 < pool->n_addrs) {
        call->addr_idx++;
        return call_connect(call);
    }
    if (!pool->numeric)
        pool->n_addrs = 0; /* resolve again next time: the name may have moved */
    snprintf(detail, sizeof(detail), "Failed to connect to %.200s port %u: %s", pool->host,
             pool->port, strerror(err));
    return call_fail(call, DP_UP_CONNECT, detail);
}

/* Opens a new connection to the pool's next address (never a pooled one). */
static enum h1_step call_connect(struct dp_h1_call *call)
{
    struct h1_pool *pool = call->pool;
    struct h1_conn *conn;
    int fd, one = 1;

    if (pool->n_addrs == 0) {
        char err[sizeof(call->detail)];
        if (pool_resolve(pool, err, sizeof(err)) < 0)
            return call_fail(call, DP_UP_CONNECT, err);
        call->addr_idx = 0;
    }
    const struct sockaddr_storage *sa = &pool->addrs[call->addr_idx];
    fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        char detail[sizeof(call->detail)];
        snprintf(detail, sizeof(detail), "Failed to connect to %.200s port %u: %s", pool->host,
                 pool->port, strerror(errno));
        return call_fail(call, DP_UP_CONNECT, detail);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = conn_new(call->h1, pool, fd);
    conn_attach(call, conn);
    call->state = H1_CONNECTING;
    if (connect(fd, (const struct sockaddr *)sa, pool->addr_lens[call->addr_idx]) == 0)
        return call_connected(call);
    if (errno != EINPROGRESS)
        return connect_failed(call, errno);
    event_add(&conn->wev, NULL);
    return STEP_MORE;
}

static enum h1_step send_failed(struct dp_h1_call *call, int err)
{
    struct h1_conn *conn = call->conn;

    if (retry_allowed(call))
        return call_retry_fresh(call, strerror(err));
    /* The server may have answered and closed (an early 413, say): the read side decides,
     * and reports this error only if no complete answer arrives. */
    call->send_errno = err;
    event_del(&conn->wev);
    event_active(&conn->rev, EV_READ, 0);
    return STEP_MORE;
}

/* Writes what is left of head + body; one sendmsg in the common case. */
static enum h1_step call_send(struct dp_h1_call *call)
{
    struct h1_conn *conn = call->conn;
    size_t total = call->head_len + call->body_len;

    while (call->sent < total) {
        struct iovec iov[2];
        struct msghdr msg = {.msg_iov = iov};
        ssize_t n;

        if (call->sent < call->head_len) {
            iov[0].iov_base = call->head + call->sent;
            iov[0].iov_len = call->head_len - call->sent;
            iov[1].iov_base = (void *)call->body;
            iov[1].iov_len = call->body_len;
            msg.msg_iovlen = call->body_len ? 2 : 1;
        } else {
            size_t off = call->sent - call->head_len;
            iov[0].iov_base = (void *)(call->body + off);
            iov[0].iov_len = call->body_len - off;
            msg.msg_iovlen = 1;
        }
        n = sendmsg(conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(&conn->wev, NULL);
                return STEP_MORE;
            }
            return send_failed(call, errno);
        }
        call->sent += (size_t)n;
    }
    event_del(&conn->wev);
    return STEP_MORE;
}

static void on_conn_write(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *conn = arg;
    struct dp_h1_call *call = conn->call;
    (void)what;

    if (!call) {
        event_del(&conn->wev);
        return;
    }
    if (!conn->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            connect_failed(call, err);
            return;
        }
        call_connected(call);
        return;
    }
    call_send(call);
}

/* ---- the response ------------------------------------------------------------------- */

/* Finds the end of the head (after the empty line; bare LF tolerated) from call->scan.
 * Returns the offset just past it, or 0 when it is not complete yet. */
static size_t find_head_end(struct dp_h1_call *call)
{
    const char *buf = call->rbuf;
    size_t i = call->scan > call->rstart ? call->scan : call->rstart;

    for (;;) {
        const char *nl = memchr(buf + i, '\n', call->rend - i);
        if (!nl) {
            call->scan = call->rend;
            return 0;
        }
        i = (size_t)(nl - buf);
        if (i + 1 >= call->rend) {
            call->scan = i; /* look at this LF again when more arrives */
            return 0;
        }
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r') {
            if (i + 2 >= call->rend) {
                call->scan = i;
                return 0;
            }
            if (buf[i + 2] == '\n')
                return i + 3;
        }
        i++;
    }
}

/* Does the comma-separated list <v>/<vl> contain <tok>? Sets *last when it is the last. */
static bool has_token(const char *v, size_t vl, const char *tok, bool *last)
{
    size_t tl = strlen(tok);
    const char *end = v + vl;
    bool found = false;

    if (last)
        *last = false;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *e = v;
        while (e < end && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        bool match = (size_t)(t - v) == tl && strncasecmp(v, tok, tl) == 0;
        if (t > v && last)
            *last = match;
        found |= match;
        v = e;
    }
    return found;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t vl)
{
    if (vl >= cap)
        vl = cap - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

/* Parses one head [p, p+len) (status line and header lines, the empty line included).
 * Returns 0, or -EPROTO with *why set. */
static int parse_head(struct dp_h1_call *call, const char *p, size_t len, const char **why)
{
    const char *end = p + len;
    const char *le = memchr(p, '\n', len);
    const char *line_end;
    const char *cl = NULL, *te = NULL;
    size_t cl_len = 0, te_len = 0;
    bool close_tok = false, keep_alive_tok = false;

    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] */
    line_end = le > p && le[-1] == '\r' ? le - 1 : le;
    if ((size_t)(line_end - p) < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
        (p[7] != '0' && p[7] != '1') || p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' ||
        p[10] > '9' || p[11] < '0' || p[11] > '9' || (line_end - p > 12 && p[12] != ' ')) {
        *why = "malformed status line in the provider's response";
        return -EPROTO;
    }
    call->minor = p[7] - '0';
    call->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    call->content_type[0] = '\0';
    call->retry_after[0] = '\0';

    for (p = le + 1; p < end;) {
        const char *colon, *v, *ve;
        size_t nl;

        le = memchr(p, '\n', (size_t)(end - p));
        line_end = le > p && le[-1] == '\r' ? le - 1 : le;
        if (line_end == p)
            break; /* the empty line */
        if (*p == ' ' || *p == '\t') {
            *why = "obsolete line folding in the provider's response headers";
            return -EPROTO;
        }
        colon = memchr(p, ':', (size_t)(line_end - p));
        if (!colon || colon == p || colon[-1] == ' ' || colon[-1] == '\t') {
            *why = "malformed header line in the provider's response";
            return -EPROTO;
        }
        nl = (size_t)(colon - p);
        for (v = colon + 1; v < line_end && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = line_end; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        switch (nl) {
        case 10:
            if (strncasecmp(p, "connection", 10) == 0) {
                close_tok |= has_token(v, (size_t)(ve - v), "close", NULL);
                keep_alive_tok |= has_token(v, (size_t)(ve - v), "keep-alive", NULL);
            }
            break;
        case 11:
            if (strncasecmp(p, "retry-after", 11) == 0)
                copy_value(call->retry_after, sizeof(call->retry_after), v, (size_t)(ve - v));
            break;
        case 12:
            if (strncasecmp(p, "content-type", 12) == 0)
                copy_value(call->content_type, sizeof(call->content_type), v, (size_t)(ve - v));
            break;
        case 14:
            if (strncasecmp(p, "content-length", 14) == 0) {
                if (cl && ((size_t)(ve - v) != cl_len || memcmp(cl, v, cl_len) != 0)) {
                    *why = "conflicting Content-Length headers in the provider's response";
                    return -EPROTO;
                }
                cl = v;
                cl_len = (size_t)(ve - v);
            }
            break;
        case 17:
            if (strncasecmp(p, "transfer-encoding", 17) == 0) {
                /* Several lines make one list: only its last coding (on the last line)
                 * decides whether the body is chunked. */
                te = v;
                te_len = (size_t)(ve - v);
            }
            break;
        default:
            break;
        }
        p = le + 1;
    }

    if (call->status < 200)
        return 0; /* interim: its headers mean nothing for the final answer */
    call->keep_alive = call->minor == 1 ? !close_tok : keep_alive_tok && !close_tok;
    if (call->status == 204 || call->status == 304) {
        call->framing = FR_NONE;
    } else if (te) {
        bool last;
        if (has_token(te, te_len, "chunked", &last) && last) {
            call->framing = FR_CHUNKED;
            call->chunk = CK_SIZE;
        } else {
            call->framing = FR_EOF;
        }
        if (cl)
            call->keep_alive = false; /* both framings: trust neither for the next answer */
    } else if (cl) {
        uint64_t n = 0;
        if (cl_len == 0 || cl_len > 18) {
            *why = "invalid Content-Length in the provider's response";
            return -EPROTO;
        }
        for (size_t i = 0; i < cl_len; i++) {
            if (cl[i] < '0' || cl[i] > '9') {
                *why = "invalid Content-Length in the provider's response";
                return -EPROTO;
            }
            n = n * 10 + (uint64_t)(cl[i] - '0');
        }
        call->framing = FR_LENGTH;
        call->left = n;
    } else {
        call->framing = FR_EOF;
    }
    if (call->framing == FR_EOF)
        call->keep_alive = false;
    return 0;
}

/* The whole response arrived, framed as announced. */
static enum h1_step call_complete(struct dp_h1_call *call)
{
    bool reuse = call->keep_alive && call->rstart == call->rend &&
                 call->sent == call->head_len + call->body_len && call->send_errno == 0 &&
                 call->framing != FR_EOF;

    if (reuse)
        call_pool_conn(call);
    return call_finish(call, DP_UP_OK, "");
}

/* Hands <n> body bytes at rbuf + rstart to on_data; consumes them unless refused. */
static enum h1_step deliver(struct dp_h1_call *call, size_t n, bool *consumed)
{
    int rc;

    *consumed = false;
    if (!call->got_body) {
        call->got_body = true;
        if (call->idle_ms) {
            call->last_rx = sy_now_us();
            call_timer_update(call, call->last_rx);
        }
    }
    rc = call->ops->on_data(call->arg, call->rbuf + call->rstart, n);
    if (rc < 0)
        return call_finish(call, DP_UP_ABORTED, "Failure writing output to destination");
    if (rc > 0) {
        call->paused = true;
        if (call->conn)
            event_del(&call->conn->rev);
        return STEP_PAUSED;
    }
    call->rstart += n;
    call->body_bytes += n;
    *consumed = true;
    return STEP_MORE;
}

static enum h1_step broken(struct dp_h1_call *call, const char *why)
{
    return call_finish(call, DP_UP_BROKEN, why);
}

/* Chunked body: one step of the decoder. Returns STEP_MORE with *progress when it moved. */
static enum h1_step chunk_step(struct dp_h1_call *call, bool *progress)
{
    const char *p = call->rbuf + call->rstart;
    size_t avail = call->rend - call->rstart;
    const char *nl;

    *progress = false;
    switch (call->chunk) {
    case CK_SIZE: {
        uint64_t size = 0;
        size_t i = 0, digits = 0;
        nl = memchr(p, '\n', avail);
        if (!nl) {
            if (avail > H1_MAX_CHUNK_LINE)
                return broken(call, "malformed chunk size line in the provider's response");
            return STEP_MORE;
        }
        size_t ll = (size_t)(nl - p);
        for (; i < ll; i++) {
            char c = p[i];
            int d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            if (++digits > 15)
                return broken(call, "chunk size too large in the provider's response");
            size = size * 16 + (uint64_t)d;
        }
        while (i < ll && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (digits == 0 || (i < ll && p[i] != ';' && !(p[i] == '\r' && i + 1 == ll)))
            return broken(call, "malformed chunk size line in the provider's response");
        call->rstart += ll + 1;
        if (size == 0) {
            call->chunk = CK_TRAILER;
        } else {
            call->chunk = CK_DATA;
            call->left = size;
        }
        *progress = true;
        return STEP_MORE;
    }
    case CK_DATA: {
        bool consumed;
        size_t n = avail < call->left ? avail : (size_t)call->left;
        enum h1_step st;
        if (n == 0)
            return STEP_MORE;
        st = deliver(call, n, &consumed);
        if (st != STEP_MORE)
            return st;
        call->left -= n;
        if (call->left == 0)
            call->chunk = CK_DATA_END;
        *progress = true;
        return STEP_MORE;
    }
    case CK_DATA_END:
        if (avail == 0)
            return STEP_MORE;
        if (p[0] == '\n') {
            call->rstart += 1;
        } else if (p[0] == '\r') {
            if (avail < 2)
                return STEP_MORE;
            if (p[1] != '\n')
                return broken(call, "missing CRLF after chunk data in the provider's response");
            call->rstart += 2;
        } else {
            return broken(call, "missing CRLF after chunk data in the provider's response");
        }
        call->chunk = CK_SIZE;
        *progress = true;
        return STEP_MORE;
    case CK_TRAILER: {
        nl = memchr(p, '\n', avail);
        if (!nl) {
            if (call->trailer_bytes + avail > DP_H1_MAX_HEAD)
                return broken(call, "chunked trailer section too large in the provider's response");
            return STEP_MORE;
        }
        size_t ll = (size_t)(nl - p);
        call->rstart += ll + 1;
        call->trailer_bytes += ll + 1;
        if (ll == 0 || (ll == 1 && p[0] == '\r'))
            return call_complete(call);
        if (call->trailer_bytes > DP_H1_MAX_HEAD)
            return broken(call, "chunked trailer section too large in the provider's response");
        *progress = true;
        return STEP_MORE;
    }
    }
    return STEP_MORE;
}

/* Feeds the buffered bytes through the parser: head(s), then body. */
static enum h1_step call_process(struct dp_h1_call *call)
{
    for (;;) {
        size_t avail = call->rend - call->rstart;
        enum h1_step st;
        bool consumed;

        if (call->state == H1_HEAD) {
            const char *why = NULL;
            size_t end = find_head_end(call);
            if (!end) {
                if (avail > DP_H1_MAX_HEAD)
                    return broken(call, "the provider's response header section exceeds 64 KiB");
                return STEP_MORE;
            }
            if (end - call->rstart > DP_H1_MAX_HEAD)
                return broken(call, "the provider's response header section exceeds 64 KiB");
            if (parse_head(call, call->rbuf + call->rstart, end - call->rstart, &why) < 0)
                return broken(call, why);
            call->rstart = end;
            call->scan = end;
            if (call->status < 200) {
                if (call->status == 101)
                    return broken(call, "the provider switched protocols unasked (101)");
                continue; /* 100 Continue, 103 Early Hints: the real answer follows */
            }
            call->state = H1_BODY;
            call->ops->on_headers(call->arg, call->status,
                                  call->content_type[0] ? call->content_type : NULL,
                                  call->retry_after[0] ? call->retry_after : NULL);
            if (call->framing == FR_NONE || (call->framing == FR_LENGTH && call->left == 0))
                return call_complete(call);
            continue;
        }
        /* H1_BODY */
        switch (call->framing) {
        case FR_LENGTH: {
            size_t n = avail < call->left ? avail : (size_t)call->left;
            if (n == 0)
                return STEP_MORE;
            st = deliver(call, n, &consumed);
            if (st != STEP_MORE)
                return st;
            call->left -= n;
            if (call->left == 0)
                return call_complete(call);
            break;
        }
        case FR_EOF:
            if (avail == 0)
                return STEP_MORE;
            st = deliver(call, avail, &consumed);
            if (st != STEP_MORE)
                return st;
            break;
        case FR_CHUNKED: {
            bool progress;
            st = chunk_step(call, &progress);
            if (st != STEP_MORE || !progress)
                return st;
            break;
        }
        case FR_NONE:
            return call_complete(call);
        }
    }
}

/* The server closed (or reset) the connection. */
static void call_eof(struct dp_h1_call *call, int err)
{
    char detail[sizeof(call->detail)];

    if (call->state == H1_BODY && call->framing == FR_EOF && !err) {
        call->keep_alive = false;
        call_complete(call);
        return;
    }
    if (call->state == H1_HEAD && call->rx_bytes == 0) {
        if (retry_allowed(call)) {
            call_retry_fresh(call, err ? strerror(err) : "closed");
            return;
        }
        if (call->send_errno)
            snprintf(detail, sizeof(detail), "Send failure: %s", strerror(call->send_errno));
        else if (err)
            snprintf(detail, sizeof(detail), "Recv failure: %s", strerror(err));
        else
            snprintf(detail, sizeof(detail), "Empty reply from server");
        broken(call, detail);
        return;
    }
    if (err)
        snprintf(detail, sizeof(detail), "Recv failure: %s", strerror(err));
    else if (call->state == H1_HEAD)
        snprintf(detail, sizeof(detail),
                 "connection closed in the middle of the response header section");
    else if (call->framing == FR_LENGTH)
        snprintf(detail, sizeof(detail), "transfer closed with %llu bytes remaining to read",
                 (unsigned long long)call->left);
    else
        snprintf(detail, sizeof(detail), "transfer closed with outstanding read data remaining");
    broken(call, detail);
}

/* Makes room at the end of the read buffer: compacts, and grows only for a long head. */
static bool rbuf_room(struct dp_h1_call *call)
{
    if (call->rend < call->rcap)
        return true;
    if (call->rstart > 0) {
        size_t n = call->rend - call->rstart;
        memmove(call->rbuf, call->rbuf + call->rstart, n);
        call->scan = call->scan > call->rstart ? call->scan - call->rstart : 0;
        call->rend = n;
        call->rstart = 0;
        return true;
    }
    if (call->rcap > DP_H1_MAX_HEAD)
        return false;
    call->rcap *= 2;
    call->rbuf = sy_xrealloc(call->rbuf, call->rcap);
    return true;
}

static void on_conn_read(evutil_socket_t fd, short what, void *arg)
{
    struct h1_conn *conn = arg;
    struct dp_h1_call *call = conn->call;
    ssize_t n;
    (void)what;

    if (!call) {
        /* Idle in the pool: the server closed it, or sent what nobody asked for. */
        char b[1];
        n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_close(conn);
        return;
    }
    if (call->paused)
        return;
    if (!rbuf_room(call)) {
        broken(call, "the provider's response header section exceeds 64 KiB");
        return;
    }
    n = recv(fd, call->rbuf + call->rend, call->rcap - call->rend, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        call_eof(call, errno);
        return;
    }
    if (n == 0) {
        call_eof(call, 0);
        return;
    }
    call->rend += (size_t)n;
    call->rx_bytes += (uint64_t)n;
    if (call->got_body && call->idle_ms)
        call->last_rx = sy_now_us();
    call_process(call);
}

static void on_call_defer(evutil_socket_t fd, short what, void *arg)
{
    struct dp_h1_call *call = arg;
    (void)fd;
    (void)what;

    if (call->fail_pending) {
        call->fail_pending = false;
        call_finish(call, call->fail_res, call->detail);
        return;
    }
    if (call->resume_pending && !call->paused) {
        call->resume_pending = false;
        call_process(call);
    }
}

/* ---- the interface ------------------------------------------------------------------ */

struct dp_h1 *dp_h1_new(struct event_base *base)
{
    struct dp_h1 *h1 = sy_xcalloc(1, sizeof(*h1));

    h1->base = base;
    h1->max_idle = DP_H1_MAX_IDLE;
    h1->idle_timeout_ms = DP_H1_IDLE_TIMEOUT_MS;
    h1->sweep = evtimer_new(base, on_sweep, h1);
    if (!h1->sweep) {
        free(h1);
        return NULL;
    }
    return h1;
}

void dp_h1_free(struct dp_h1 *h1)
{
    if (!h1)
        return;
    while (h1->calls)
        dp_h1_cancel(h1->calls);
    while (h1->pools) {
        struct h1_pool *pool = h1->pools;
        while (pool->idle_head)
            conn_close(pool->idle_head);
        h1->pools = pool->next;
        pool_free(pool);
    }
    while (h1->free_calls) {
        struct dp_h1_call *call = h1->free_calls;
        h1->free_calls = call->next;
        call_free(call);
    }
    event_free(h1->sweep);
    free(h1);
}

void dp_h1_set_pool_limits(struct dp_h1 *h1, size_t max_idle, uint32_t idle_timeout_ms)
{
    h1->max_idle = max_idle;
    h1->idle_timeout_ms = idle_timeout_ms;
}

struct dp_h1_call *dp_h1_start(struct dp_h1 *h1, const struct dp_upstream_request *rq,
                               const struct dp_upstream_ops *ops, void *arg)
{
    struct dp_h1_call *call;
    struct h1_url u;
    struct h1_conn *conn;
    uint64_t now;

    if (parse_url(rq->url, &u) < 0)
        return NULL;
    call = call_get(h1);
    call->ops = ops;
    call->arg = arg;
    if (build_head(call, &u, rq) < 0) {
        sy_warn("request head for %.200s exceeds %d bytes: not sent", rq->url, H1_MAX_REQ_HEAD);
        call->next = h1->free_calls; /* never linked: back to the free list as is */
        h1->free_calls = call;
        h1->n_free_calls++;
        return NULL;
    }
    call->pool = pool_get(h1, &u);
    call->pool->n_calls++;
    call->body = rq->body ? rq->body : "";
    call->body_len = rq->body_len;
    call->connect_ms = rq->connect_timeout_ms;
    call->total_ms = rq->timeout_ms;
    call->first_byte_ms = rq->first_byte_timeout_ms;
    call->idle_ms = rq->idle_timeout_ms;
    now = sy_now_us();
    call->t_start = now;
    call->total_deadline = call->total_ms ? now + (uint64_t)call->total_ms * 1000u : 0;
    call->first_byte_deadline =
        call->first_byte_ms ? now + (uint64_t)call->first_byte_ms * 1000u : 0;
    call->connect_deadline = call->connect_ms ? now + (uint64_t)call->connect_ms * 1000u : 0;

    call->next = h1->calls;
    if (h1->calls)
        h1->calls->prev = call;
    h1->calls = call;
    h1->active++;

    call->in_start = true;
    conn = call->pool->idle_head;
    if (conn) {
        idle_unlink(conn);
        conn_attach(call, conn);
        call->state = H1_HEAD;
        call_send(call);
    } else {
        call_connect(call);
    }
    call->in_start = false;
    if (!call->fail_pending)
        call_timer_update(call, now);
    return call;
}

void dp_h1_cancel(struct dp_h1_call *call)
{
    if (!call)
        return;
    call_drop_conn(call);
    call_put(call);
}

void dp_h1_resume(struct dp_h1_call *call)
{
    if (!call || !call->paused)
        return;
    call->paused = false;
    if (call->idle_ms) {
        /* The client was slow, not the provider: the idle clock starts over. */
        call->last_rx = sy_now_us();
        call_timer_update(call, call->last_rx);
    }
    if (call->conn)
        event_add(&call->conn->rev, NULL);
    call->resume_pending = true;
    event_active(&call->defer, 0, 0);
}

size_t dp_h1_active(const struct dp_h1 *h1)
{
    return h1->active;
}

size_t dp_h1_idle_connections(const struct dp_h1 *h1)
{
    return h1->n_idle;
}
