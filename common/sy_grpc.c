/* common/sy_grpc.c - streaming gRPC calls over the gRPC core C API, for both planes.
 *
 * A server or a client owns one completion queue and one thread (a "loop") that drains it;
 * every batch tag and every user callback goes through that thread. A call keeps the core's
 * rules with a small state machine: one RECV_MESSAGE outstanding (re-armed after each
 * message), one SEND_MESSAGE in flight (the rest wait in a per-call queue), the final
 * status in its own batch (RECV_CLOSE_ON_SERVER / RECV_STATUS_ON_CLIENT). A per-call mutex
 * serialises grpc_call_start_batch, because sends and closes come from any thread.
 * on_close runs once, when the status batch and every other batch of the call are back;
 * then the module releases the grpc_call and drops its reference. The sy_grpc_call itself
 * lives until its last reference (atomic) is dropped. docs/internals/grpc.md has the why.
 */
#define SY_LOG_MODULE "grpc"
#include "sy_grpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "sy_log.h"
#include "sy_util.h"

/* The loop wakes at least this often; it exits on GRPC_QUEUE_SHUTDOWN, the timeout only
 * bounds how long a wedged queue could hide. */
#define LOOP_POLL_MS 200

enum tag_kind {
    TAG_ACCEPT,         /* a registered method got a call (owner: struct method) */
    TAG_ACCEPT_UNKNOWN, /* an unregistered method got a call (owner: server) */
    TAG_UNKNOWN_DONE,   /* the UNIMPLEMENTED answer is out (owner: struct unknown_call) */
    TAG_SHUTDOWN,       /* grpc_server_shutdown_and_notify finished (owner: server) */
    TAG_START,          /* initial metadata sent (and, client, received) */
    TAG_RECV,           /* one RECV_MESSAGE */
    TAG_SEND,           /* one SEND_MESSAGE */
    TAG_STATUS,         /* RECV_CLOSE_ON_SERVER / RECV_STATUS_ON_CLIENT: the call is over */
    TAG_FINISH,         /* SEND_STATUS_FROM_SERVER / SEND_CLOSE_FROM_CLIENT */
};

/* What goes into the completion queue: the kind says how to read <owner>. */
struct tag {
    enum tag_kind kind;
    void *owner;
};

/* The completion queue, its thread and the live calls, shared by server and client. */
struct loop {
    grpc_completion_queue *cq;
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cond;
    struct sy_grpc_call *calls; /* live (not yet closed) calls */
    int outstanding;            /* server tags not yet back: requests, unknown, shutdown */
    bool stopping;              /* no new calls; don't re-request */
};

struct send_item {
    struct send_item *next;
    grpc_byte_buffer *buf;
};

struct sy_grpc_call {
    atomic_int refs;
    struct loop *loop; /* only used by the module while the call is live */
    struct sy_grpc_call *prev, *next;
    bool is_server;
    grpc_call *gc; /* released when the module lets go of the call */
    struct sy_grpc_stream_ops ops;
    void *arg;
    _Atomic(void *) user;
    char *peer;

    /* Guards the fields below and serialises grpc_call_start_batch on <gc>. */
    pthread_mutex_t mu;
    int pending;        /* batches started and not yet back */
    bool send_inflight; /* a SEND_MESSAGE is out */
    bool send_failed;   /* a send came back failed: the call is dying */
    struct send_item *q_head, *q_tail;
    bool close_requested;
    bool finish_started;
    bool status_done; /* TAG_STATUS came back: no more batches */
    bool closed;      /* on_close is being or has been delivered */
    int close_status; /* what sy_grpc_call_close asked for */
    grpc_slice close_detail;

    /* Written by the core; must outlive their batches. */
    struct tag t_start, t_recv, t_send, t_status, t_finish;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    grpc_metadata_array md_initial;  /* client: server's initial metadata */
    grpc_metadata_array md_trailing; /* client: server's trailers */
    grpc_status_code status;         /* client: final status */
    grpc_slice status_detail;        /* client: final status detail */
    int cancelled;                   /* server: call failed (not a clean status) */

    /* on_close arguments, fixed when the status batch comes back. */
    int final_status;
    char *final_detail;
};

/* One registered method and its outstanding grpc_server_request_registered_call. */
struct method {
    struct method *next;
    struct sy_grpc_server *srv;
    void *handle;
    char *name;
    struct sy_grpc_stream_ops ops;
    void *arg;
    struct tag t_accept;
    grpc_call *new_call;
    gpr_timespec deadline;
    grpc_metadata_array md;
};

/* A call on an unregistered method, answered UNIMPLEMENTED. */
struct unknown_call {
    struct tag t_done;
    struct sy_grpc_server *srv;
    grpc_call *gc;
    int cancelled;
    grpc_slice detail;
};

struct sy_grpc_server {
    struct loop loop;
    grpc_server *gs;
    struct method *methods;
    bool started;
    struct tag t_shutdown;
    struct tag t_unknown;
    grpc_call *unknown_call;
    grpc_call_details unknown_details;
    grpc_metadata_array unknown_md;
};

struct sy_grpc_client {
    struct loop loop;
    grpc_channel *channel;
    char *target;
};

/* Copies a slice into a NUL-terminated string of our allocator (free with free()). */
static char *slice_strdup(grpc_slice s)
{
    return sy_xstrndup((const char *)GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
}

/* ---- calls ---- */

static struct sy_grpc_call *call_new(struct loop *loop, grpc_call *gc, bool is_server,
                                     const struct sy_grpc_stream_ops *ops, void *arg)
{
    struct sy_grpc_call *call = sy_xcalloc(1, sizeof(*call));

    atomic_init(&call->refs, 1); /* the module's reference, dropped after on_close */
    atomic_init(&call->user, NULL);
    call->loop = loop;
    call->gc = gc;
    call->is_server = is_server;
    call->ops = *ops;
    call->arg = arg;
    pthread_mutex_init(&call->mu, NULL);
    call->close_detail = grpc_empty_slice();
    call->status_detail = grpc_empty_slice();
    grpc_metadata_array_init(&call->md_initial);
    grpc_metadata_array_init(&call->md_trailing);
    call->t_start = (struct tag){TAG_START, call};
    call->t_recv = (struct tag){TAG_RECV, call};
    call->t_send = (struct tag){TAG_SEND, call};
    call->t_status = (struct tag){TAG_STATUS, call};
    call->t_finish = (struct tag){TAG_FINISH, call};
    return call;
}

/* Takes a reference (sy_grpc.h). Any thread. */
struct sy_grpc_call *sy_grpc_call_ref(struct sy_grpc_call *call)
{
    atomic_fetch_add_explicit(&call->refs, 1, memory_order_relaxed);
    return call;
}

/* Drops a reference. Any thread. By the last reference the module has already released
 * every gRPC object of the call (call_release), so this frees plain memory only and works
 * after grpc_shutdown. */
void sy_grpc_call_unref(struct sy_grpc_call *call)
{
    if (!call || atomic_fetch_sub_explicit(&call->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&call->mu);
    free(call->peer);
    free(call->final_detail);
    free(call);
}

/* Peer address, fixed at creation, so no lock (sy_grpc.h). */
const char *sy_grpc_call_peer(const struct sy_grpc_call *call)
{
    return call->peer;
}

/* Caller's slot; atomic because callbacks and pushing threads both read it. */
void sy_grpc_call_set_user(struct sy_grpc_call *call, void *user)
{
    atomic_store(&call->user, user);
}

void *sy_grpc_call_get_user(const struct sy_grpc_call *call)
{
    return atomic_load(&((struct sy_grpc_call *)call)->user);
}

/* Starts one batch and counts it as pending. Caller holds call->mu. Returns 0 or -EIO
 * (the core refused the batch: a bug here, logged). */
static int call_batch(struct sy_grpc_call *call, const grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error err = grpc_call_start_batch(call->gc, ops, n, t, NULL);

    if (err != GRPC_CALL_OK) {
        sy_error("start_batch(tag %d): %s", (int)t->kind, grpc_call_error_to_string(err));
        return -EIO;
    }
    call->pending++;
    return 0;
}

/* One RECV_MESSAGE at a time, re-armed after on_message: back-pressure on the peer. */
static void call_arm_recv(struct sy_grpc_call *call)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};

    op.data.recv_message.recv_message = &call->recv_buf;
    call_batch(call, &op, 1, &call->t_recv);
}

/* Sends the next queued message, or, when the queue is empty and a close was asked for,
 * the end of our side. Caller holds call->mu. */
static void call_pump(struct sy_grpc_call *call)
{
    grpc_op op = {0};

    if (call->send_inflight || call->status_done || call->send_failed)
        return;
    if (call->q_head) {
        struct send_item *it = call->q_head;

        call->q_head = it->next;
        if (!call->q_head)
            call->q_tail = NULL;
        call->send_buf = it->buf;
        free(it);
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = call->send_buf;
        if (call_batch(call, &op, 1, &call->t_send) == 0) {
            call->send_inflight = true;
        } else {
            grpc_byte_buffer_destroy(call->send_buf);
            call->send_buf = NULL;
            call->send_failed = true;
        }
        return;
    }
    if (!call->close_requested || call->finish_started)
        return;
    if (call->is_server) {
        op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        op.data.send_status_from_server.status = (grpc_status_code)call->close_status;
        op.data.send_status_from_server.status_details = &call->close_detail;
    } else {
        op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    if (call_batch(call, &op, 1, &call->t_finish) == 0)
        call->finish_started = true;
}

/* Copies <data> into the call's send queue and starts a send when none is in flight.
 * Returns 0, -EPIPE (ended or closing) or -EMSGSIZE. Any thread. */
int sy_grpc_call_send(struct sy_grpc_call *call, const uint8_t *data, size_t len)
{
    struct send_item *it;
    grpc_slice slice;
    int rc = 0;

    if (len > SY_GRPC_MAX_MESSAGE)
        return -EMSGSIZE;
    pthread_mutex_lock(&call->mu);
    if (call->status_done || call->close_requested || call->send_failed) {
        rc = -EPIPE;
        goto out_unlock;
    }
    /* The byte buffer takes its own reference on the slice. An all-default protobuf
     * message packs to zero bytes: that is a message too. */
    slice = len ? grpc_slice_from_copied_buffer((const char *)data, len) : grpc_empty_slice();
    it = sy_xmalloc(sizeof(*it));
    it->next = NULL;
    it->buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    if (call->q_tail)
        call->q_tail->next = it;
    else
        call->q_head = it;
    call->q_tail = it;
    call_pump(call);
out_unlock:
    pthread_mutex_unlock(&call->mu);
    return rc;
}

/* Marks the call closing; the end goes out after the queued sends, except a client's
 * non-OK close, which cancels at once. First close wins. Any thread. */
void sy_grpc_call_close(struct sy_grpc_call *call, int status, const char *detail)
{
    pthread_mutex_lock(&call->mu);
    if (call->close_requested || call->status_done)
        goto out_unlock;
    call->close_requested = true;
    call->close_status = status;
    call->close_detail = grpc_slice_from_copied_string(detail ? detail : "");
    if (!call->is_server && status != SY_GRPC_OK) {
        /* The client has no status to send: cancelling sets it locally and resets the
         * stream; queued messages are dropped when the call is released. */
        grpc_call_cancel_with_status(call->gc, (grpc_status_code)status, detail ? detail : "",
                                     NULL);
        goto out_unlock;
    }
    call_pump(call);
out_unlock:
    pthread_mutex_unlock(&call->mu);
}

/* Lets go of every gRPC object the call holds. Loop thread, once all batches are back. */
static void call_release(struct sy_grpc_call *call)
{
    struct send_item *it, *next;

    for (it = call->q_head; it; it = next) {
        next = it->next;
        grpc_byte_buffer_destroy(it->buf);
        free(it);
    }
    call->q_head = call->q_tail = NULL;
    grpc_byte_buffer_destroy(call->recv_buf); /* NULL-safe */
    call->recv_buf = NULL;
    grpc_metadata_array_destroy(&call->md_initial);
    grpc_metadata_array_destroy(&call->md_trailing);
    grpc_slice_unref(call->status_detail);
    grpc_slice_unref(call->close_detail);
    call->status_detail = call->close_detail = grpc_empty_slice();
    grpc_call_unref(call->gc);
    call->gc = NULL;
}

/* Delivers on_close when the status is known and nothing is pending, then lets the call
 * go. Loop thread, after every event of the call. */
static void call_maybe_finish(struct sy_grpc_call *call)
{
    struct loop *loop = call->loop;

    pthread_mutex_lock(&call->mu);
    if (!call->status_done || call->pending > 0 || call->closed) {
        pthread_mutex_unlock(&call->mu);
        return;
    }
    call->closed = true;
    pthread_mutex_unlock(&call->mu);

    call->ops.on_close(call, call->final_status, call->final_detail, call->arg);

    /* Out of the list before the grpc_call goes, so that sy_grpc_client_free never
     * cancels a released call. */
    pthread_mutex_lock(&loop->mu);
    if (call->prev)
        call->prev->next = call->next;
    else
        loop->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    pthread_mutex_lock(&call->mu);
    call_release(call);
    call->loop = NULL;
    pthread_mutex_unlock(&call->mu);
    pthread_cond_broadcast(&loop->cond);
    pthread_mutex_unlock(&loop->mu);
    sy_grpc_call_unref(call);
}

/* Makes the call findable for shutdown, which waits for its on_close. Returns whether
 * the loop is stopping (the caller cancels or refuses the call). */
static bool loop_add_call(struct loop *loop, struct sy_grpc_call *call)
{
    bool stopping;

    pthread_mutex_lock(&loop->mu);
    stopping = loop->stopping;
    call->next = loop->calls;
    if (loop->calls)
        loop->calls->prev = call;
    loop->calls = call;
    pthread_mutex_unlock(&loop->mu);
    return stopping;
}

static void on_call_event(struct sy_grpc_call *call, enum tag_kind kind, bool ok)
{
    grpc_byte_buffer *buf = NULL;
    bool opened = false, half_closed = false;

    pthread_mutex_lock(&call->mu);
    call->pending--;
    switch (kind) {
    case TAG_START:
        /* Client: the server answered. A stream that failed before that gets no on_open
         * (its status may have been seen first: events of one call are not ordered). */
        opened = ok && !call->is_server && !call->status_done;
        break;
    case TAG_RECV:
        buf = call->recv_buf;
        call->recv_buf = NULL;
        /* A successful receive without a buffer is the peer's half-close. */
        half_closed = ok && !buf && call->is_server && !call->status_done;
        break;
    case TAG_SEND:
        call->send_inflight = false;
        grpc_byte_buffer_destroy(call->send_buf);
        call->send_buf = NULL;
        if (!ok)
            call->send_failed = true;
        call_pump(call);
        break;
    case TAG_STATUS:
        call->status_done = true;
        if (!call->is_server) {
            call->final_status = (int)call->status;
            call->final_detail = slice_strdup(call->status_detail);
        } else if (call->cancelled || !call->close_requested) {
            call->final_status = SY_GRPC_CANCELLED;
            call->final_detail = sy_xstrdup("cancelled");
        } else {
            call->final_status = call->close_status;
            call->final_detail = slice_strdup(call->close_detail);
        }
        break;
    case TAG_FINISH:
    default:
        break;
    }
    pthread_mutex_unlock(&call->mu);

    if (opened && call->ops.on_open)
        call->ops.on_open(call, call->arg);
    if (buf) {
        grpc_byte_buffer_reader reader;

        if (grpc_byte_buffer_reader_init(&reader, buf)) {
            grpc_slice s = grpc_byte_buffer_reader_readall(&reader);

            call->ops.on_message(call, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), call->arg);
            grpc_slice_unref(s);
            grpc_byte_buffer_reader_destroy(&reader);
        } else {
            sy_warn("%s: undecodable message, cancelling the call", call->peer);
            grpc_call_cancel_with_status(call->gc, GRPC_STATUS_INTERNAL, "bad message", NULL);
        }
        grpc_byte_buffer_destroy(buf);
        pthread_mutex_lock(&call->mu);
        if (!call->status_done)
            call_arm_recv(call);
        pthread_mutex_unlock(&call->mu);
    }
    if (half_closed) {
        if (call->ops.on_half_close)
            call->ops.on_half_close(call, call->arg);
        else
            sy_grpc_call_close(call, SY_GRPC_OK, NULL);
    }
    call_maybe_finish(call);
}

/* Starts the batches every call keeps: status, first receive, initial metadata. Loop
 * thread (server) or the opening thread (client), before anyone else can see the call. */
static int call_start(struct sy_grpc_call *call)
{
    grpc_op ops[2] = {{0}};
    int rc;

    pthread_mutex_lock(&call->mu);
    if (call->is_server) {
        ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[0].data.recv_close_on_server.cancelled = &call->cancelled;
    } else {
        ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[0].data.recv_status_on_client.trailing_metadata = &call->md_trailing;
        ops[0].data.recv_status_on_client.status = &call->status;
        ops[0].data.recv_status_on_client.status_details = &call->status_detail;
    }
    rc = call_batch(call, ops, 1, &call->t_status);
    if (rc < 0)
        goto out_unlock;
    /* Initial metadata goes out at once, so the client learns the stream is up even when
     * the server has nothing to say yet (a policy stream before the first snapshot). */
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &call->md_initial;
    rc = call_batch(call, ops, call->is_server ? 1 : 2, &call->t_start);
    if (rc < 0)
        goto out_unlock;
    call_arm_recv(call);
out_unlock:
    pthread_mutex_unlock(&call->mu);
    return rc;
}

/* ---- loop ---- */

static void server_on_accept(struct method *m, bool ok);
static void server_on_unknown(struct sy_grpc_server *srv, bool ok);
static void server_on_unknown_done(struct sy_grpc_server *srv, struct unknown_call *uc);

/* Counts a server tag (request, UNIMPLEMENTED answer, shutdown) as out. Server free
 * shuts the queue down only when none is out, because a late accept would start
 * batches on a queue that is shutting down, which the core asserts against. */
static void loop_add_tag(struct loop *loop)
{
    pthread_mutex_lock(&loop->mu);
    loop->outstanding++;
    pthread_mutex_unlock(&loop->mu);
}

/* A counted tag is back and its handler is done (new tags it started are counted). */
static void loop_done_tag(struct loop *loop)
{
    pthread_mutex_lock(&loop->mu);
    loop->outstanding--;
    pthread_cond_broadcast(&loop->cond);
    pthread_mutex_unlock(&loop->mu);
}

static void *loop_run(void *p)
{
    struct loop *loop = p;

    for (;;) {
        gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(LOOP_POLL_MS, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(loop->cq, deadline, NULL);
        struct tag *t = ev.tag;

        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        switch (t->kind) {
        case TAG_ACCEPT:
            server_on_accept(t->owner, ev.success);
            break;
        case TAG_ACCEPT_UNKNOWN:
            server_on_unknown(t->owner, ev.success);
            break;
        case TAG_UNKNOWN_DONE: {
            struct unknown_call *uc = t->owner;
            server_on_unknown_done(uc->srv, uc);
            break;
        }
        case TAG_SHUTDOWN:
            loop_done_tag(loop);
            break;
        default:
            on_call_event(t->owner, t->kind, ev.success);
            break;
        }
    }
    return NULL;
}

static void loop_destroy(struct loop *loop)
{
    grpc_completion_queue_destroy(loop->cq);
    pthread_cond_destroy(&loop->cond);
    pthread_mutex_destroy(&loop->mu);
}

/* Creates the queue and starts its thread. Returns 0, or -errno with nothing left over. */
static int loop_init(struct loop *loop)
{
    int rc;

    memset(loop, 0, sizeof(*loop));
    loop->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&loop->mu, NULL);
    pthread_cond_init(&loop->cond, NULL);
    rc = pthread_create(&loop->thread, NULL, loop_run, loop);
    if (rc != 0) {
        grpc_completion_queue_shutdown(loop->cq);
        loop_destroy(loop);
        return -rc;
    }
    return 0;
}

/* Waits until every call has had on_close and every counted tag is back, then shuts the
 * queue down and lets the thread drain it. The wait ends because the caller has cancelled
 * everything; callbacks in flight finish on the loop thread meanwhile. */
static void loop_cleanup(struct loop *loop)
{
    if (pthread_equal(pthread_self(), loop->thread)) {
        /* The loop would wait for itself: a caller bug that must not pass silently. */
        sy_error("sy_grpc_*_free called from a gRPC callback");
        abort();
    }
    pthread_mutex_lock(&loop->mu);
    while (loop->calls || loop->outstanding > 0)
        pthread_cond_wait(&loop->cond, &loop->mu);
    pthread_mutex_unlock(&loop->mu);
    grpc_completion_queue_shutdown(loop->cq);
    pthread_join(loop->thread, NULL);
}

/* ---- server ---- */

static void server_request(struct method *m)
{
    grpc_call_error err;

    grpc_metadata_array_init(&m->md);
    m->new_call = NULL;
    err = grpc_server_request_registered_call(m->srv->gs, m->handle, &m->new_call, &m->deadline,
                                              &m->md, NULL, m->srv->loop.cq, m->srv->loop.cq,
                                              &m->t_accept);
    if (err != GRPC_CALL_OK) {
        sy_error("%s: request_registered_call: %s", m->name, grpc_call_error_to_string(err));
        grpc_metadata_array_destroy(&m->md);
        return;
    }
    loop_add_tag(&m->srv->loop);
}

static void server_request_unknown(struct sy_grpc_server *srv)
{
    grpc_call_error err;

    grpc_call_details_init(&srv->unknown_details);
    grpc_metadata_array_init(&srv->unknown_md);
    srv->unknown_call = NULL;
    err = grpc_server_request_call(srv->gs, &srv->unknown_call, &srv->unknown_details,
                                   &srv->unknown_md, srv->loop.cq, srv->loop.cq, &srv->t_unknown);
    if (err != GRPC_CALL_OK) {
        sy_error("request_call: %s", grpc_call_error_to_string(err));
        grpc_call_details_destroy(&srv->unknown_details);
        grpc_metadata_array_destroy(&srv->unknown_md);
        return;
    }
    loop_add_tag(&srv->loop);
}

static bool loop_is_stopping(struct loop *loop)
{
    bool stopping;

    pthread_mutex_lock(&loop->mu);
    stopping = loop->stopping;
    pthread_mutex_unlock(&loop->mu);
    return stopping;
}

static void server_on_accept(struct method *m, bool ok)
{
    struct sy_grpc_call *call;
    grpc_call *gc = m->new_call;
    char *peer;

    grpc_metadata_array_destroy(&m->md);
    m->new_call = NULL;
    if (!ok) /* the server is shutting down; no call came with this tag */
        goto out_done;
    if (!loop_is_stopping(&m->srv->loop))
        server_request(m); /* keep one request outstanding per method */

    call = call_new(&m->srv->loop, gc, true, &m->ops, m->arg);
    peer = grpc_call_get_peer(gc);
    call->peer = sy_xstrdup(peer);
    gpr_free(peer);
    /* In the list even while stopping, so that free waits for its on_close. */
    if (loop_add_call(&m->srv->loop, call))
        grpc_call_cancel(gc, NULL); /* the server is shutting down: close it properly */
    if (call_start(call) < 0)
        grpc_call_cancel(gc, NULL);
    if (call->ops.on_open)
        call->ops.on_open(call, call->arg);
    call_maybe_finish(call);
out_done:
    loop_done_tag(&m->srv->loop);
}

/* Without an outstanding grpc_server_request_call, the core parks calls to unknown methods
 * until the client's deadline (forever for our streams), so we answer them ourselves. */
static void server_on_unknown(struct sy_grpc_server *srv, bool ok)
{
    grpc_call *gc = srv->unknown_call;
    struct unknown_call *uc;
    grpc_op ops[3] = {{0}};
    char *method;

    method = slice_strdup(srv->unknown_details.method);
    grpc_call_details_destroy(&srv->unknown_details);
    grpc_metadata_array_destroy(&srv->unknown_md);
    srv->unknown_call = NULL;
    if (!ok)
        goto out_done;
    if (!loop_is_stopping(&srv->loop))
        server_request_unknown(srv);

    uc = sy_xcalloc(1, sizeof(*uc));
    uc->t_done = (struct tag){TAG_UNKNOWN_DONE, uc};
    uc->srv = srv;
    uc->gc = gc;
    uc->detail = grpc_slice_from_copied_string("unknown method");
    sy_debug("unknown method %s: UNIMPLEMENTED", method);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[1].data.send_status_from_server.status_details = &uc->detail;
    ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[2].data.recv_close_on_server.cancelled = &uc->cancelled;
    loop_add_tag(&srv->loop);
    if (grpc_call_start_batch(gc, ops, 3, &uc->t_done, NULL) != GRPC_CALL_OK)
        server_on_unknown_done(srv, uc);
out_done:
    free(method);
    loop_done_tag(&srv->loop);
}

static void server_on_unknown_done(struct sy_grpc_server *srv, struct unknown_call *uc)
{
    grpc_slice_unref(uc->detail);
    grpc_call_unref(uc->gc);
    free(uc);
    loop_done_tag(&srv->loop);
}

static void arg_int(grpc_arg *a, const char *key, int value)
{
    a->type = GRPC_ARG_INTEGER;
    a->key = (char *)key; /* the core copies args; it never writes the key */
    a->value.integer = value;
}

/* Creates the server, its loop thread, and binds <addr>; methods come next, serving at
 * start. NULL with *errmsg set (caller frees) when the port or the thread fails. */
struct sy_grpc_server *sy_grpc_server_new(const char *addr, int *bound_port, char **errmsg)
{
    struct sy_grpc_server *srv;
    grpc_server_credentials *creds;
    grpc_arg args[6];
    grpc_channel_args cargs = {SY_ARRAY_LEN(args), args};
    int port, rc;

    /* Keepalive both ways finds dead peers in ~15 s; the ping policy must allow what the
     * client sends (sy_grpc_client_new), or the server answers with GOAWAY too_many_pings. */
    arg_int(&args[0], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, SY_GRPC_MAX_MESSAGE);
    arg_int(&args[1], GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    arg_int(&args[2], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    arg_int(&args[3], GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    arg_int(&args[4], GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
    arg_int(&args[5], GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);

    grpc_init();
    srv = sy_xcalloc(1, sizeof(*srv));
    /* The thread first, while the queue is still empty: if it fails there is nothing to
     * drain. From then on free has one path whether or not the server was started (the
     * shutdown tag always comes back through the thread). */
    rc = loop_init(&srv->loop);
    if (rc < 0) {
        *errmsg = sy_xasprintf("grpc: cannot start the server thread: %s", strerror(-rc));
        goto out_free_server;
    }
    srv->t_shutdown = (struct tag){TAG_SHUTDOWN, srv};
    srv->t_unknown = (struct tag){TAG_ACCEPT_UNKNOWN, srv};
    srv->gs = grpc_server_create(&cargs, NULL);
    grpc_server_register_completion_queue(srv->gs, srv->loop.cq, NULL);
    creds = grpc_insecure_server_credentials_create();
    port = grpc_server_add_http2_port(srv->gs, addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        *errmsg = sy_xasprintf("grpc: cannot listen on %s", addr);
        sy_grpc_server_free(srv);
        return NULL;
    }
    if (bound_port)
        *bound_port = port;
    return srv;

out_free_server:
    free(srv);
    grpc_shutdown();
    return NULL;
}

/* Registers <method> with the core. Returns 0, -EINVAL (started, or a required callback
 * missing) or -EEXIST. Before start, on the creating thread. */
int sy_grpc_server_add_stream(struct sy_grpc_server *srv, const char *method,
                              const struct sy_grpc_stream_ops *ops, void *arg)
{
    struct method *m;

    if (srv->started || !ops->on_message || !ops->on_close)
        return -EINVAL;
    m = sy_xcalloc(1, sizeof(*m));
    m->handle = grpc_server_register_method(srv->gs, method, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    if (!m->handle) { /* registered twice */
        free(m);
        return -EEXIST;
    }
    m->srv = srv;
    m->name = sy_xstrdup(method);
    m->ops = *ops;
    m->arg = arg;
    m->t_accept = (struct tag){TAG_ACCEPT, m};
    m->next = srv->methods;
    srv->methods = m;
    return 0;
}

/* Starts serving and puts one request out per method (and one for unknown methods).
 * Returns 0 or -EALREADY. Creating thread. */
int sy_grpc_server_start(struct sy_grpc_server *srv)
{
    if (srv->started)
        return -EALREADY;
    grpc_server_start(srv->gs);
    srv->started = true;
    for (struct method *m = srv->methods; m; m = m->next)
        server_request(m);
    server_request_unknown(srv);
    return 0;
}

/* Shuts down in the order STACK-NOTES.md gives; every live call gets on_close first.
 * Any thread but the server's own (callbacks). */
void sy_grpc_server_free(struct sy_grpc_server *srv)
{
    struct method *m, *next;

    if (!srv)
        return;
    pthread_mutex_lock(&srv->loop.mu);
    srv->loop.stopping = true;
    srv->loop.outstanding++; /* the shutdown tag */
    pthread_mutex_unlock(&srv->loop.mu);
    /* Shutdown first (no new calls, pending requests fail), then cancel what runs: each
     * live call gets its status batch back as cancelled, hence on_close. */
    grpc_server_shutdown_and_notify(srv->gs, srv->loop.cq, &srv->t_shutdown);
    grpc_server_cancel_all_calls(srv->gs);
    loop_cleanup(&srv->loop);
    grpc_server_destroy(srv->gs);
    loop_destroy(&srv->loop);
    for (m = srv->methods; m; m = next) {
        next = m->next;
        free(m->name);
        free(m);
    }
    free(srv);
    grpc_shutdown();
}

/* ---- client ---- */

/* Creates the channel (lazy: no connection until the first stream) and the loop thread.
 * NULL with *errmsg set (caller frees) when the thread cannot start. */
struct sy_grpc_client *sy_grpc_client_new(const char *target, char **errmsg)
{
    struct sy_grpc_client *cl;
    grpc_channel_credentials *creds;
    grpc_arg args[8];
    grpc_channel_args cargs = {SY_ARRAY_LEN(args), args};
    int rc;

    /* Policy streams are long-lived and idle for long stretches: keepalive pings without
     * data keep NATs open and detect a dead control plane. Reconnect backoff stays short so
     * a restarted control plane is found within a second; a call on a channel that cannot
     * connect fails at once with UNAVAILABLE (wait_for_ready is off), and the caller's
     * retry policy decides. No retries in the core: a stream is not replayable.
     * Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: despite its name the core uses it as the
     * minimum *connect timeout* (default 20 s); set low, a busy machine fails handshakes. */
    arg_int(&args[0], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, SY_GRPC_MAX_MESSAGE);
    arg_int(&args[1], GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    arg_int(&args[2], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    arg_int(&args[3], GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    arg_int(&args[4], GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    arg_int(&args[5], GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arg_int(&args[6], GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    arg_int(&args[7], GRPC_ARG_ENABLE_RETRIES, 0);

    grpc_init();
    cl = sy_xcalloc(1, sizeof(*cl));
    rc = loop_init(&cl->loop);
    if (rc < 0) {
        *errmsg = sy_xasprintf("grpc: cannot start the client thread: %s", strerror(-rc));
        goto out_free_client;
    }
    cl->target = sy_xstrdup(target);
    creds = grpc_insecure_credentials_create();
    cl->channel = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    return cl;

out_free_client:
    free(cl);
    grpc_shutdown();
    return NULL;
}

/* Creates a deadline-less call and starts its batches; failures show up as on_close.
 * Returns the call with a reference for the caller, or NULL (bad ops, client stopping).
 * Any thread, callbacks included. */
struct sy_grpc_call *sy_grpc_client_open_stream(struct sy_grpc_client *cl, const char *method,
                                                const struct sy_grpc_stream_ops *ops, void *arg)
{
    struct sy_grpc_call *call;
    grpc_slice path;
    grpc_call *gc;

    if (!ops->on_message || !ops->on_close || loop_is_stopping(&cl->loop))
        return NULL;
    /* No deadline: the stream lives as long as both ends want it to. */
    path = grpc_slice_from_copied_string(method);
    gc = grpc_channel_create_call(cl->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cl->loop.cq, path,
                                  NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_slice_unref(path);
    if (!gc)
        return NULL;
    call = call_new(&cl->loop, gc, false, ops, arg);
    call->peer = sy_xstrdup(cl->target);
    sy_grpc_call_ref(call); /* the caller's */
    /* In the list before the first batch: once a batch is out, the loop may finish the
     * call, and it removes calls from the list. A free racing with us (from a callback)
     * has already cancelled the others: cancel this one too, on_close follows. */
    if (loop_add_call(&cl->loop, call))
        grpc_call_cancel(gc, NULL);
    if (call_start(call) < 0)
        grpc_call_cancel(gc, NULL); /* whatever batches went out come back; on_close follows */
    return call;
}

/* Cancels every live call, waits for their on_close, then tears down. Any thread but
 * the client's own (callbacks). */
void sy_grpc_client_free(struct sy_grpc_client *cl)
{
    if (!cl)
        return;
    pthread_mutex_lock(&cl->loop.mu);
    cl->loop.stopping = true;
    /* A call is removed from the list before its grpc_call is released, under this lock,
     * so every call seen here still has one. */
    for (struct sy_grpc_call *c = cl->loop.calls; c; c = c->next)
        grpc_call_cancel_with_status(c->gc, GRPC_STATUS_CANCELLED, "client shutting down", NULL);
    pthread_mutex_unlock(&cl->loop.mu);
    loop_cleanup(&cl->loop);
    grpc_channel_destroy(cl->channel);
    loop_destroy(&cl->loop);
    free(cl->target);
    free(cl);
    grpc_shutdown();
}
