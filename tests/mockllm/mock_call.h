/* tests/mockllm/mock_call.h - delivery of one API answer: delays, streaming, injected
 * failures and detection of clients that go away.
 *
 * A call takes a finished struct mock_reply and a copy of the config, and owns both until
 * it ends. It ends in exactly one way: answered (body sent, or stream completed), aborted
 * (drop_connection / fail_after_chunks: the mock closes the connection), or cancelled (the
 * client closed first; evhttp's close callback tells us, and the call's timer stops). Live
 * calls sit in their struct mock_calls list so shutdown can free them. Event-loop thread only.
 */
#ifndef MOCK_CALL_H
#define MOCK_CALL_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/http.h>

#include "mock_dialect.h"
#include "mock_state.h"

struct mock_call;

struct mock_calls {
    struct event_base *base;  /* borrowed */
    struct mock_stats *stats; /* borrowed; stream counters are updated here */
    struct mock_call *head;
    size_t count; /* live calls: the "in_flight" stat */
};

/* Sets up an empty call list. <base> and <stats> are borrowed and must outlive it. */
void mock_calls_init(struct mock_calls *calls, struct event_base *base, struct mock_stats *stats);

/* Frees every live call without answering. Call before evhttp_free(), which then frees the
 * requests and connections. */
void mock_calls_cleanup(struct mock_calls *calls);

/* Starts delivering <reply> for <req> under <cfg> (copied): waits cfg->latency_ms, then
 * drops, answers or streams. Takes the contents of <reply> (zeroed on return, success or
 * not). Returns 0, or -ENOMEM / -ENOTCONN; on error the caller still owns <req> and should
 * answer it. */
int mock_call_start(struct mock_calls *calls, struct evhttp_request *req, struct mock_reply *reply,
                    const struct mock_config *cfg);

#endif
