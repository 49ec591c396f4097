/* tests/mockllm/mock_call.c - delivery of one API answer (see mock_call.h).
 *
 * Every delay is one evtimer per call, re-armed per phase; nothing sleeps. While a call is
 * live it is the close callback argument of its connection, so evhttp tells us when the
 * client goes away; the callback is cleared before the call answers or is freed, so it
 * never sees a freed call. When the client closes first, evhttp detaches the request from
 * the connection and leaves it to us: on_close() frees it. evhttp does not read while a
 * call waits out latency_ms (nothing written yet), so a read watch of our own notices a
 * client leaving then; a client that half-closes after its request counts as gone.
 */
#define SY_LOG_MODULE "call"

#include "mock_call.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#include "sy_log.h"
#include "sy_util.h"

/* After its last event a failing stream waits for the output to reach the kernel, polling
 * at this interval at most this many times, so the client sees exactly N events. */
#define DRAIN_POLL_MS 1
#define DRAIN_POLL_MAX 2000

enum call_phase {
    PHASE_LATENCY, /* waiting before the answer or the stream headers */
    PHASE_EVENTS,  /* streaming: waiting before the next event */
    PHASE_DRAIN,   /* failing stream: waiting for the output to flush before closing */
};

struct mock_call {
    struct mock_calls *calls;
    struct mock_call *prev;
    struct mock_call *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    struct event *watch; /* latency phase: notices the client closing (see on_peer_event) */
    struct mock_reply reply;
    struct mock_config cfg;
    enum call_phase phase;
    size_t sent;  /* stream events sent */
    size_t limit; /* failing stream: close after this many events */
    int drain_polls;
};

void mock_reply_cleanup(struct mock_reply *r)
{
    for (size_t i = 0; i < r->nevents; i++)
        free(r->events[i]);
    free(r->events);
    free(r->body);
    free(r->model);
    memset(r, 0, sizeof(*r));
}

void mock_calls_init(struct mock_calls *calls, struct event_base *base, struct mock_stats *stats)
{
    memset(calls, 0, sizeof(*calls));
    calls->base = base;
    calls->stats = stats;
}

static bool is_stream(const struct mock_call *call)
{
    return call->reply.events != NULL;
}

static bool is_failing(const struct mock_call *call)
{
    return call->cfg.fail_after_chunks >= 0;
}

static void stop_watch(struct mock_call *call)
{
    if (call->watch)
        event_free(call->watch);
    call->watch = NULL;
}

/* Unlinks <call> and stops its timer. With <clear_closecb>, also stops close notices (not
 * needed when the connection is already going away). */
static void call_detach(struct mock_call *call, bool clear_closecb)
{
    struct mock_calls *calls = call->calls;

    if (clear_closecb)
        evhttp_connection_set_closecb(call->evcon, NULL, NULL);
    if (call->prev)
        call->prev->next = call->next;
    else
        calls->head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    calls->count--;
    event_free(call->timer);
    call->timer = NULL;
    stop_watch(call);
}

static void call_free(struct mock_call *call)
{
    mock_reply_cleanup(&call->reply);
    free(call);
}

static void arm(struct mock_call *call, enum call_phase phase, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    call->phase = phase;
    evtimer_add(call->timer, &tv);
}

/* drop_connection / fail_after_chunks: close the connection, leaving the response cut. */
static void call_abort(struct mock_call *call)
{
    struct evhttp_connection *evcon = call->evcon;

    sy_debug("closing the connection on purpose after %zu events", call->sent);
    if (is_stream(call))
        call->calls->stats->streams_failed++;
    call_detach(call, true);
    call_free(call);
    evhttp_connection_free(evcon); /* frees the request too */
}

static void call_answer(struct mock_call *call)
{
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(call->req);
    struct evbuffer *buf = evbuffer_new();
    struct evhttp_request *req = call->req;
    int status = call->reply.status;

    evhttp_add_header(hdrs, "Content-Type", call->reply.content_type);
    if (call->reply.retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", call->reply.retry_after_s);
        evhttp_add_header(hdrs, "Retry-After", v);
    }
    if (!buf || evbuffer_add(buf, call->reply.body, call->reply.body_len) < 0) {
        sy_error("out of memory for a %zu-byte answer", call->reply.body_len);
        status = 500;
    }
    call_detach(call, true);
    call_free(call);
    evhttp_send_reply(req, status, NULL, buf);
    if (buf)
        evbuffer_free(buf);
}

static void start_drain(struct mock_call *call)
{
    call->drain_polls = 0;
    arm(call, PHASE_DRAIN, 0);
}

/* Sends events until the stream ends, fails, or has to wait for chunk_delay_ms. */
static void send_events(struct mock_call *call)
{
    struct evbuffer *buf = evbuffer_new();
    struct mock_stats *stats = call->calls->stats;

    if (!buf) {
        call_abort(call);
        return;
    }
    for (;;) {
        const char *ev = call->reply.events[call->sent];
        evbuffer_add(buf, ev, strlen(ev));
        evhttp_send_reply_chunk(call->req, buf);
        call->sent++;
        if (is_failing(call) && call->sent == call->limit) {
            start_drain(call);
            break;
        }
        if (call->sent == call->reply.nevents) {
            struct evhttp_request *req = call->req;
            stats->streams_completed++;
            call_detach(call, true);
            call_free(call);
            evhttp_send_reply_end(req);
            break;
        }
        if (call->cfg.chunk_delay_ms > 0) {
            arm(call, PHASE_EVENTS, call->cfg.chunk_delay_ms);
            break;
        }
    }
    evbuffer_free(buf);
}

static void start_stream(struct mock_call *call)
{
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(call->req);

    evhttp_add_header(hdrs, "Content-Type", call->reply.content_type);
    evhttp_add_header(hdrs, "Cache-Control", "no-cache");
    evhttp_send_reply_start(call->req, call->reply.status, NULL);
    if (is_failing(call)) {
        /* Never the last event: a cut stream must not look complete. */
        size_t n = (size_t)call->cfg.fail_after_chunks;
        call->limit = n < call->reply.nevents - 1 ? n : call->reply.nevents - 1;
        if (call->limit == 0) {
            start_drain(call);
            return;
        }
    }
    if (call->cfg.ttft_ms > 0)
        arm(call, PHASE_EVENTS, call->cfg.ttft_ms);
    else
        send_events(call);
}

static void drain_check(struct mock_call *call)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(call->evcon);

    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 ||
        ++call->drain_polls >= DRAIN_POLL_MAX)
        call_abort(call);
    else
        arm(call, PHASE_DRAIN, DRAIN_POLL_MS);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mock_call *call = arg;

    (void)fd;
    (void)what;
    switch (call->phase) {
    case PHASE_LATENCY:
        stop_watch(call); /* from here on evhttp itself notices a closing client */
        if (call->cfg.drop_connection || (!is_stream(call) && is_failing(call)))
            call_abort(call);
        else if (!is_stream(call))
            call_answer(call);
        else
            start_stream(call);
        break;
    case PHASE_EVENTS:
        send_events(call);
        break;
    case PHASE_DRAIN:
        drain_check(call);
        break;
    }
}

/* evhttp is freeing the connection: the client went away (or the server is shutting down,
 * but mock_calls_cleanup() clears this callback first). */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct mock_call *call = arg;
    struct evhttp_request *req = call->req;

    (void)evcon;
    sy_debug("client went away after %zu events", call->sent);
    if (is_stream(call))
        call->calls->stats->streams_cancelled++;
    call_detach(call, false);
    call_free(call);
    /* A request the user has not finished is detached and left to us; else evhttp frees it. */
    if (!evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

/* The connection became readable while nothing had been written yet. evhttp does not read
 * then, so without this a client that gives up during latency_ms would only be noticed
 * when the answer is written. */
static void on_peer_event(evutil_socket_t fd, short what, void *arg)
{
    struct mock_call *call = arg;
    struct evhttp_connection *evcon = call->evcon;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    (void)what;
    if (n > 0) {
        stop_watch(call); /* pipelined bytes are evhttp's business; stop polling them */
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    sy_debug("client went away before the answer");
    if (is_stream(call))
        call->calls->stats->streams_cancelled++;
    call_detach(call, true);
    call_free(call);
    evhttp_connection_free(evcon); /* frees the request too */
}

/* Starts on_peer_event() watching the connection. Best effort: without it a closing client
 * is still noticed, later. */
static void start_watch(struct mock_call *call)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(call->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    if (fd < 0)
        return;
    call->watch = event_new(call->calls->base, fd, EV_READ | EV_PERSIST, on_peer_event, call);
    if (call->watch && event_add(call->watch, NULL) < 0)
        stop_watch(call);
}

int mock_call_start(struct mock_calls *calls, struct evhttp_request *req, struct mock_reply *reply,
                    const struct mock_config *cfg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct mock_call *call;

    if (!evcon) {
        mock_reply_cleanup(reply);
        return -ENOTCONN;
    }
    call = sy_xcalloc(1, sizeof(*call));
    call->timer = evtimer_new(calls->base, on_timer, call);
    if (!call->timer) {
        mock_reply_cleanup(reply);
        free(call);
        return -ENOMEM;
    }
    call->calls = calls;
    call->req = req;
    call->evcon = evcon;
    call->reply = *reply;
    memset(reply, 0, sizeof(*reply));
    call->cfg = *cfg;
    call->next = calls->head;
    if (calls->head)
        calls->head->prev = call;
    calls->head = call;
    calls->count++;
    if (is_stream(call))
        calls->stats->streams_started++;
    evhttp_connection_set_closecb(evcon, on_close, call);
    if (call->cfg.latency_ms > 0)
        start_watch(call);
    /* Even with no latency the answer leaves from the timer, outside evhttp's request
     * callback, so closing the connection there is safe. */
    arm(call, PHASE_LATENCY, call->cfg.latency_ms);
    return 0;
}

void mock_calls_cleanup(struct mock_calls *calls)
{
    while (calls->head) {
        struct mock_call *call = calls->head;
        call_detach(call, true);
        call_free(call);
    }
}
