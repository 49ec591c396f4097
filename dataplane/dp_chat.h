/* dataplane/dp_chat.h - one model call (chat completions, legacy completions,
 * embeddings): validate, route, translate through the provider adapter, call the
 * provider, relay the answer (whole, or SSE event by event as it arrives), account, log.
 *
 * A chat exchange lives on one worker. It holds a reference to the snapshot it started
 * with until it ends, so a policy swap never changes a request in flight. Worker thread.
 */
#ifndef DP_CHAT_H
#define DP_CHAT_H

#include <stdbool.h>

struct dp_worker;
struct sy_http_req;

enum dp_api_kind {
    DP_API_CHAT = 0,    /* POST /v1/chat/completions */
    DP_API_COMPLETIONS, /* POST /v1/completions (OpenAI-compatible providers) */
    DP_API_EMBEDDINGS,  /* POST /v1/embeddings */
    DP_API_MESSAGES,    /* POST /v1/messages: Anthropic's API, served by any provider */
};

/* Handles one model call of <kind>; answers <req> now or later. <request_id> names the
 * request in logs; <client_id> says the client sent it (x-request-id), else it is a fresh
 * random one. The answer's x-request-id is the client's id when it sent one; otherwise the
 * signed feedback id (x-switchyard-request-id, common/sy_reqid.h) once a model answered,
 * or <request_id> on errors before that. */
void dp_chat_handle(struct dp_worker *w, struct sy_http_req *req, const char *request_id,
                    bool client_id, enum dp_api_kind kind);

#endif
