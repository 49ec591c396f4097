/* common/sy_grpc.h - streaming gRPC calls over the gRPC core C API, for both planes.
 *
 * protoc-c generates messages only, so this module carries serialized bytes: callers pack
 * and unpack their protobuf-c messages. It owns one completion-queue thread per server or
 * client; every callback below runs on that thread. A call is reference-counted: the
 * module holds one reference until on_close has returned; callers that keep a call pointer
 * beyond a callback take their own with sy_grpc_call_ref(). sy_grpc_call_send() and
 * sy_grpc_call_close() may be called from any thread; sends are queued per call and go out
 * in order, one at a time (the core allows one SEND_MESSAGE in flight per call).
 *
 * Shutdown follows STACK-NOTES.md: shutdown_and_notify + cancel_all_calls, wait for the
 * tag, shut the queue down, drain it, destroy. Under ASan this leaks nothing.
 */
#ifndef SY_GRPC_H
#define SY_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sy_grpc_server;
struct sy_grpc_client;
struct sy_grpc_call;

/* gRPC status codes used here (google.rpc.Code). */
enum sy_grpc_status {
    SY_GRPC_OK = 0,
    SY_GRPC_CANCELLED = 1,
    SY_GRPC_UNKNOWN = 2,
    SY_GRPC_INVALID_ARGUMENT = 3,
    SY_GRPC_DEADLINE_EXCEEDED = 4,
    SY_GRPC_UNIMPLEMENTED = 12,
    SY_GRPC_INTERNAL = 13,
    SY_GRPC_UNAVAILABLE = 14,
};

/* Largest message either side accepts (and sy_grpc_call_send queues): a policy snapshot
 * with a big pricing catalogue must fit, a runaway peer must not eat the heap. */
#define SY_GRPC_MAX_MESSAGE (64 * 1024 * 1024)

struct sy_grpc_stream_ops {
    /* A stream started: on the server, a client opened it; on the client, the server
     * answered with its initial metadata (sends may be queued before that). A client
     * stream that never reaches the server gets on_close without on_open. May be NULL. */
    void (*on_open)(struct sy_grpc_call *call, void *arg);
    /* One message arrived (serialized bytes, borrowed for the duration of the call). */
    void (*on_message)(struct sy_grpc_call *call, const uint8_t *data, size_t len, void *arg);
    /* The stream ended, for whatever reason: peer closed, cancelled, deadline, shutdown.
     * <status> is the gRPC status (client side: the server's, or the local reason such as
     * UNAVAILABLE; server side: the status we sent with sy_grpc_call_close, OK when the
     * client half-closed and we finished, CANCELLED when it went away or the server is
     * shutting down). <detail> is never NULL (may be ""). Last callback, exactly once. */
    void (*on_close)(struct sy_grpc_call *call, int status, const char *detail, void *arg);
    /* Server side only: the client half-closed (it will send no more messages). May be
     * NULL: then the call is closed with OK once the queued messages are out. When set,
     * the callback decides, e.g. sends a last reply and closes the call. */
    void (*on_half_close)(struct sy_grpc_call *call, void *arg);
};

/* ---- server ---- */

/* Creates a server listening on <addr> ("127.0.0.1:0" picks a port), insecure
 * credentials. *bound_port receives the port. NULL with *errmsg set on failure. */
struct sy_grpc_server *sy_grpc_server_new(const char *addr, int *bound_port, char **errmsg);

/* Registers a bidirectional (or client-streaming) method, e.g.
 * "/switchyard.v1.PolicyDiscovery/StreamPolicies". Before sy_grpc_server_start. */
int sy_grpc_server_add_stream(struct sy_grpc_server *srv, const char *method,
                              const struct sy_grpc_stream_ops *ops, void *arg);

/* Starts serving on the module's thread. Returns 0 or -errno. */
int sy_grpc_server_start(struct sy_grpc_server *srv);

/* Cancels every call (each gets on_close), stops, frees. Accepts NULL. Not from a
 * callback. */
void sy_grpc_server_free(struct sy_grpc_server *srv);

/* ---- client ---- */

/* Creates a client for <target> ("127.0.0.1:9901"), insecure credentials. Does not
 * connect yet. NULL with *errmsg set on failure. */
struct sy_grpc_client *sy_grpc_client_new(const char *target, char **errmsg);

/* Opens a bidirectional stream on <method>. Returns the call (with one reference for the
 * caller: drop it with sy_grpc_call_unref) or NULL. An unreachable server shows up as
 * on_close with UNAVAILABLE, soon. */
struct sy_grpc_call *sy_grpc_client_open_stream(struct sy_grpc_client *cl, const char *method,
                                                const struct sy_grpc_stream_ops *ops, void *arg);

/* Cancels the client's calls (each gets on_close), stops, frees. Accepts NULL. Not from a
 * callback. */
void sy_grpc_client_free(struct sy_grpc_client *cl);

/* ---- calls (both sides) ---- */

/* Queues one message (copied). Any thread. Returns 0, -EPIPE when the call has ended or
 * sy_grpc_call_close was called, -EMSGSIZE above SY_GRPC_MAX_MESSAGE. */
int sy_grpc_call_send(struct sy_grpc_call *call, const uint8_t *data, size_t len);

/* Ends the call: on the server, sends <status>/<detail> (may be NULL) as the final status
 * after the queued messages; on the client, half-closes after the queued messages when
 * status is OK (on_close follows with the server's status), else cancels at once, dropping
 * queued messages (on_close gets <status>/<detail>). Any thread, callbacks included;
 * idempotent: only the first close counts. */
void sy_grpc_call_close(struct sy_grpc_call *call, int status, const char *detail);

/* Takes / drops a reference. Any thread. The memory stays valid until the last reference
 * is gone, even after the server or client that made the call has been freed (then every
 * operation on it is a no-op or -EPIPE). */
struct sy_grpc_call *sy_grpc_call_ref(struct sy_grpc_call *call);
void sy_grpc_call_unref(struct sy_grpc_call *call); /* accepts NULL */

/* The peer's address as gRPC reports it (e.g. "ipv4:127.0.0.1:50312"); on the client,
 * the target as given at creation time. Valid as long as the call. */
const char *sy_grpc_call_peer(const struct sy_grpc_call *call);

/* A slot for the caller's per-call state. */
void sy_grpc_call_set_user(struct sy_grpc_call *call, void *user);
void *sy_grpc_call_get_user(const struct sy_grpc_call *call);

#endif
