/* dataplane/dp_upstream.c - provider calls: plain http:// on dp_h1, the rest on libcurl
 * multi-socket driven by a worker's libevent loop.
 *
 * dp_upstream_start picks the engine per URL: http:// goes to dp_h1 (a lean HTTP/1.1
 * client, docs/internals/upstream.md) unless SY_UPSTREAM_CURL is set in the environment;
 * https:// and anything dp_h1 does not take goes to libcurl. A dp_h1 call hides behind a
 * small recycled dp_upstream_call whose ops forward to the caller's.
 *
 * Easy handles are recycled through a small free list (curl_easy_reset keeps the multi's
 * connection pool and DNS cache). Completion is read from curl_multi_info_read after every
 * socket action; the running count is not trusted (STACK-NOTES.md). Worker thread only.
 */
#define SY_LOG_MODULE "upstream"

#include "dp_upstream.h"
#include "dp_h1.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event_struct.h>

#include "sy_log.h"
#include "sy_util.h"

#define DP_UP_FREE_HANDLES 64
#define DP_UP_FREE_CALLS 64 /* recycled wrappers of dp_h1 calls */

struct dp_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    CURL *free_handles[DP_UP_FREE_HANDLES];
    size_t n_free;
    size_t active;
    bool in_dispatch;               /* inside curl_multi_socket_action */
    struct event *check_ev;         /* runs check_done on the next loop pass */
    struct dp_upstream_call *calls; /* every call in progress */
    struct dp_h1 *h1;               /* http:// calls; NULL when SY_UPSTREAM_CURL is set */
    struct dp_upstream_call *free_calls;
    size_t n_free_calls;
};

struct dp_upstream_call {
    struct dp_upstream *up;
    struct dp_h1_call *h1; /* set: dp_h1 runs this call and only up/ops/arg/links matter */
    CURL *easy;
    const struct dp_upstream_ops *ops;
    void *arg;
    bool headers_done;
    bool got_body;
    bool aborted;
    bool cancelled; /* cancelled from inside libcurl: no callbacks, reaped by on_check */
    struct event *first_byte_timer;
    uint32_t first_byte_timeout_ms;
    bool paused;
    char content_type[128];
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
    struct dp_upstream_call *prev, *next;
};

static void check_done(struct dp_upstream *up);

static void call_unlink(struct dp_upstream_call *call)
{
    struct dp_upstream *up = call->up;

    if (call->prev)
        call->prev->next = call->next;
    else
        up->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    up->active--;
}

/* Per-socket watcher, attached to the socket with curl_multi_assign. The event is embedded
 * and only re-armed when what libcurl waits for changes. */
struct sock_watch {
    struct event ev;
    curl_socket_t fd;
    int what; /* CURL_POLL_* currently armed */
};

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct dp_upstream *up = arg;
    int running = 0;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    up->in_dispatch = true;
    curl_multi_socket_action(up->multi, fd, action, &running);
    up->in_dispatch = false;
    check_done(up);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dp_upstream *up = arg;
    int running = 0;
    (void)fd;
    (void)what;

    up->in_dispatch = true;
    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    up->in_dispatch = false;
    check_done(up);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct dp_upstream *up = userp;
    struct sock_watch *w = socketp;
    short kind;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_del(&w->ev);
            free(w);
            curl_multi_assign(up->multi, fd, NULL);
        }
        return 0;
    }
    if (w && w->what == what)
        return 0;
    kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
                   EV_PERSIST);
    if (!w) {
        w = sy_xcalloc(1, sizeof(*w));
        w->fd = fd;
        curl_multi_assign(up->multi, fd, w);
    } else {
        event_del(&w->ev);
    }
    w->what = what;
    event_assign(&w->ev, up->base, fd, kind, on_socket_event, up);
    event_add(&w->ev, NULL);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct dp_upstream *up = userp;
    (void)multi;

    if (timeout_ms < 0) {
        evtimer_del(up->timer);
    } else {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        evtimer_add(up->timer, &tv);
    }
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *userp)
{
    struct dp_upstream_call *call = userp;
    size_t len = size * n;

    if (call->aborted)
        return 0;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (after a 1xx, say): forget earlier headers. */
        call->content_type[0] = '\0';
        call->retry_after[0] = '\0';
        return len;
    }
    if (len == 2 && buf[0] == '\r') {
        long status = 0;
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && !call->headers_done) {
            call->headers_done = true;
            call->ops->on_headers(call->arg, status,
                                  call->content_type[0] ? call->content_type : NULL,
                                  call->retry_after[0] ? call->retry_after : NULL);
        }
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    char *dst = NULL;
    size_t cap = 0;
    if (nl == 12 && strncasecmp(buf, "content-type", 12) == 0) {
        dst = call->content_type;
        cap = sizeof(call->content_type);
    } else if (nl == 11 && strncasecmp(buf, "retry-after", 11) == 0) {
        dst = call->retry_after;
        cap = sizeof(call->retry_after);
    }
    if (dst) {
        if (vl >= cap)
            vl = cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
    return len;
}

static size_t on_write(char *buf, size_t size, size_t n, void *userp)
{
    struct dp_upstream_call *call = userp;
    size_t len = size * n;
    int rc;

    if (call->aborted)
        return 0;
    if (!call->got_body) {
        call->got_body = true;
        if (call->first_byte_timer)
            evtimer_del(call->first_byte_timer);
    }
    rc = call->ops->on_data(call->arg, buf, len);
    if (rc < 0) {
        call->aborted = true;
        return 0;
    }
    if (rc > 0) {
        call->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return len;
}

/* A finished handle keeps its options: only what changes per call is set again (saves a
 * reset and a dozen setopts per request). */
static void release_easy(struct dp_upstream *up, CURL *easy)
{
    if (up->n_free < DP_UP_FREE_HANDLES)
        up->free_handles[up->n_free++] = easy;
    else
        curl_easy_cleanup(easy);
}

/* A new handle with the options that never change. */
static CURL *new_easy(void)
{
    CURL *easy = curl_easy_init();

    if (!easy)
        return NULL;
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "switchyard/0.1");
    return easy;
}

static enum dp_upstream_result classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return DP_UP_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return DP_UP_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return DP_UP_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return DP_UP_INTERNAL;
    default:
        return DP_UP_BROKEN;
    }
}

static void call_release_timer(struct dp_upstream_call *call)
{
    if (call->first_byte_timer) {
        event_free(call->first_byte_timer);
        call->first_byte_timer = NULL;
    }
}

/* Ends <call> with <res>: removes it from the multi, runs on_done, frees it. Never from
 * inside a libcurl callback. */
static void finish_with(struct dp_upstream_call *call, enum dp_upstream_result res,
                        const char *detail, bool reuse_connection)
{
    struct dp_upstream *up = call->up;

    call_release_timer(call);
    curl_multi_remove_handle(up->multi, call->easy);
    if (reuse_connection)
        release_easy(up, call->easy);
    else
        curl_easy_cleanup(call->easy);
    call_unlink(call);
    if (!call->cancelled)
        call->ops->on_done(call->arg, res, detail);
    free(call);
}

static void on_first_byte_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct dp_upstream_call *call = arg;
    char detail[96];
    (void)fd;
    (void)what;

    snprintf(detail, sizeof(detail), "no response from the provider within %u ms",
             call->first_byte_timeout_ms);
    finish_with(call, DP_UP_TIMEOUT, detail, false);
}

static void finish(struct dp_upstream_call *call, CURLcode rc)
{
    enum dp_upstream_result res = call->aborted ? DP_UP_ABORTED : classify(rc);
    char detail[CURL_ERROR_SIZE + 64];

    if (res == DP_UP_OK && !call->headers_done) {
        /* An empty response without a terminating header block: treat as broken. */
        res = DP_UP_BROKEN;
    }
    snprintf(detail, sizeof(detail), "%s", call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
    finish_with(call, res, detail, res == DP_UP_OK);
}

static void check_done(struct dp_upstream *up)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(up->multi, &left))) {
        struct dp_upstream_call *call = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        if (call)
            finish(call, msg->data.result);
    }
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct dp_upstream *up = arg;
    (void)fd;
    (void)what;

    check_done(up);
    /* Calls cancelled from inside libcurl, removed now that it is safe. */
    for (struct dp_upstream_call *call = up->calls, *next; call; call = next) {
        next = call->next;
        if (call->cancelled && !call->h1)
            dp_upstream_cancel(call);
    }
}

/* ---- calls on dp_h1 ------------------------------------------------------------------ */

static void h1_call_recycle(struct dp_upstream *up, struct dp_upstream_call *call)
{
    if (up->n_free_calls >= DP_UP_FREE_CALLS) {
        free(call);
        return;
    }
    call->next = up->free_calls;
    up->free_calls = call;
    up->n_free_calls++;
}

static void h1_on_headers(void *arg, long status, const char *content_type, const char *retry_after)
{
    struct dp_upstream_call *call = arg;
    call->ops->on_headers(call->arg, status, content_type, retry_after);
}

static int h1_on_data(void *arg, const char *data, size_t len)
{
    struct dp_upstream_call *call = arg;
    return call->ops->on_data(call->arg, data, len);
}

/* dp_h1 has already forgotten its call: unlink and recycle ours, then tell the caller
 * (which may start another call and get this very wrapper back). */
static void h1_on_done(void *arg, enum dp_upstream_result result, const char *detail)
{
    struct dp_upstream_call *call = arg;
    struct dp_upstream *up = call->up;
    const struct dp_upstream_ops *ops = call->ops;
    void *user = call->arg;

    call_unlink(call);
    h1_call_recycle(up, call);
    ops->on_done(user, result, detail);
}

static const struct dp_upstream_ops h1_forward_ops = {
    .on_headers = h1_on_headers,
    .on_data = h1_on_data,
    .on_done = h1_on_done,
};

static struct dp_upstream_call *h1_start(struct dp_upstream *up,
                                         const struct dp_upstream_request *rq,
                                         const struct dp_upstream_ops *ops, void *arg)
{
    struct dp_upstream_call *call = up->free_calls;

    if (call) {
        up->free_calls = call->next;
        up->n_free_calls--;
        memset(call, 0, sizeof(*call));
    } else {
        call = sy_xcalloc(1, sizeof(*call));
    }
    call->up = up;
    call->ops = ops;
    call->arg = arg;
    call->h1 = dp_h1_start(up->h1, rq, &h1_forward_ops, call);
    if (!call->h1) {
        h1_call_recycle(up, call);
        return NULL;
    }
    up->active++;
    call->next = up->calls;
    if (up->calls)
        up->calls->prev = call;
    up->calls = call;
    return call;
}

/* SY_UPSTREAM_CURL=1 sends plain http:// through libcurl too: an escape hatch should the
 * lean client misbehave with some server, and the "before" of its benchmark. */
static bool curl_only(void)
{
    const char *v = getenv("SY_UPSTREAM_CURL");
    return v && *v && strcmp(v, "0") != 0;
}

/* ---- the interface ------------------------------------------------------------------ */

struct dp_upstream *dp_upstream_new(struct event_base *base)
{
    struct dp_upstream *up = sy_xcalloc(1, sizeof(*up));

    up->base = base;
    up->multi = curl_multi_init();
    up->timer = evtimer_new(base, on_timer, up);
    up->check_ev = event_new(base, -1, 0, on_check, up);
    if (!curl_only())
        up->h1 = dp_h1_new(base);
    if (!up->multi || !up->timer || !up->check_ev || (!up->h1 && !curl_only())) {
        dp_upstream_free(up);
        return NULL;
    }
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return up;
}

void dp_upstream_free(struct dp_upstream *up)
{
    if (!up)
        return;
    while (up->calls)
        dp_upstream_cancel(up->calls);
    dp_h1_free(up->h1);
    while (up->free_calls) {
        struct dp_upstream_call *call = up->free_calls;
        up->free_calls = call->next;
        free(call);
    }
    for (size_t i = 0; i < up->n_free; i++)
        curl_easy_cleanup(up->free_handles[i]);
    if (up->multi)
        curl_multi_cleanup(up->multi);
    if (up->timer)
        event_free(up->timer);
    if (up->check_ev)
        event_free(up->check_ev);
    free(up);
}

struct dp_upstream_call *dp_upstream_start(struct dp_upstream *up,
                                           const struct dp_upstream_request *rq,
                                           const struct dp_upstream_ops *ops, void *arg)
{
    struct dp_upstream_call *call;
    CURL *easy;

    if (up->h1 && dp_h1_url_ok(rq->url))
        return h1_start(up, rq, ops, arg);
    easy = up->n_free ? up->free_handles[--up->n_free] : new_easy();
    if (!easy)
        return NULL;
    call = sy_xcalloc(1, sizeof(*call));
    call->up = up;
    call->easy = easy;
    call->ops = ops;
    call->arg = arg;

    curl_easy_setopt(easy, CURLOPT_URL, rq->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, rq->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
    /* Less than one byte per second over the idle window counts as a stall. */
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, rq->idle_timeout_ms ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                     rq->idle_timeout_ms ? (long)((rq->idle_timeout_ms + 999) / 1000) : 0L);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, call);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->errbuf);

    if (curl_multi_add_handle(up->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        free(call);
        return NULL;
    }
    if (rq->first_byte_timeout_ms) {
        struct timeval tv = {.tv_sec = rq->first_byte_timeout_ms / 1000,
                             .tv_usec = (rq->first_byte_timeout_ms % 1000) * 1000};
        call->first_byte_timeout_ms = rq->first_byte_timeout_ms;
        call->first_byte_timer = evtimer_new(up->base, on_first_byte_timeout, call);
        evtimer_add(call->first_byte_timer, &tv);
    }
    up->active++;
    call->next = up->calls;
    if (up->calls)
        up->calls->prev = call;
    up->calls = call;
    /* No kick here: libcurl may complete a transfer inside curl_multi_socket_action, and
     * the caller must never see callbacks before this returns. The 0 ms timer libcurl
     * asked for starts it on the next loop pass. */
    return call;
}

void dp_upstream_cancel(struct dp_upstream_call *call)
{
    struct dp_upstream *up;

    if (!call)
        return;
    up = call->up;
    if (call->h1) {
        dp_h1_cancel(call->h1);
        call_unlink(call);
        h1_call_recycle(up, call);
        return;
    }
    if (up->in_dispatch) {
        /* Inside libcurl (another transfer's callback cancels this one): libcurl forbids
         * removing handles now. Silence the call at once and reap it right after. */
        call->cancelled = true;
        call->aborted = true;
        event_active(up->check_ev, 0, 0);
        return;
    }
    call_release_timer(call);
    curl_multi_remove_handle(up->multi, call->easy);
    /* A cancelled transfer's connection may be mid-response: do not pool it. */
    curl_easy_cleanup(call->easy);
    call_unlink(call);
    free(call);
}

void dp_upstream_resume(struct dp_upstream_call *call)
{
    if (call->h1) {
        dp_h1_resume(call->h1);
        return;
    }
    if (call->paused) {
        call->paused = false;
        curl_easy_pause(call->easy, CURLPAUSE_CONT);
    }
}

size_t dp_upstream_active(const struct dp_upstream *up)
{
    return up->active;
}
