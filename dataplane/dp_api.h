/* dataplane/dp_api.h - the proxy's HTTP API: which path and method go to which handler.
 *
 * Gives every request its id (the client's x-request-id when it is sane, else a fresh one)
 * and the headers every answer carries, then dispatches. Model calls answer with their own
 * x-request-id (dp_chat.h: the signed feedback id once a model answered, unless the client
 * sent its own id). Worker thread.
 */
#ifndef DP_API_H
#define DP_API_H

struct sy_http_req;

/* The sy_http_handler_fn of every worker's server; <arg> is the struct dp_worker. */
void dp_api_handle(struct sy_http_req *req, void *arg);

#endif
