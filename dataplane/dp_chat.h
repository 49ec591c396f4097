/* dataplane/dp_chat.h - POST /v1/chat/completions: validate, route, call the provider,
 * relay the answer (whole, or SSE event by event as it arrives), account and log.
 *
 * A chat exchange lives on one worker. It holds a reference to the snapshot it started
 * with until it ends, so a policy swap never changes a request in flight. Worker thread.
 */
#ifndef DP_CHAT_H
#define DP_CHAT_H

struct dp_worker;
struct sy_http_req;

/* Handles one chat completion request; answers <req> now or later. */
void dp_chat_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id);

#endif
