/* tests/mockllm/mock_server.h - the mock's HTTP server: routing to provider dialects,
 * applying the run-time config, and the /_mock/ control endpoints.
 *
 * One server per event loop; it owns its evhttp, state and live calls. Everything runs on
 * the thread that dispatches <base>.
 */
#ifndef MOCK_SERVER_H
#define MOCK_SERVER_H

#include <event2/event.h>

#include "mock_state.h"

/* Largest request body accepted; larger ones get 413 from evhttp. */
#define MOCK_MAX_BODY (8 * 1024 * 1024)
/* Idle and stalled-connection timeout; long, because streams may be slowed on purpose. */
#define MOCK_CONN_TIMEOUT_S 3600

struct mock_server;

/* Creates a server on <base> named <name> (borrowed, reported in stats) whose config starts
 * as, and resets to, <defaults>. Returns NULL on failure. Thread: <base>'s. */
struct mock_server *mock_server_new(struct event_base *base, const char *name,
                                    const struct mock_config *defaults);

/* Listens on <host>:<port> (port 0: ephemeral) and stores the bound port in *bound_port.
 * Returns 0, or a negative errno. */
int mock_server_listen(struct mock_server *srv, const char *host, int port, int *bound_port);

/* Closes every connection and frees everything, abandoning calls still in progress. Accepts
 * NULL. Call with the loop stopped. */
void mock_server_free(struct mock_server *srv);

#endif
