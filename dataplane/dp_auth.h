/* dataplane/dp_auth.h - who is calling: gateway key -> tenant, and the attribution an
 * access log line carries (tenant and its labels, tags, end user).
 *
 * Every /v1/ endpoint takes a gateway key: "Authorization: Bearer <key>", and on POST
 * /v1/messages also "x-api-key: <key>" (what Anthropic's SDK sends). The key is hashed with
 * SHA-256 and looked up in the policy's key index, digests compared in constant time;
 * policies only ever hold digests. In open mode (auth.mode: open, the default without
 * tenants) no key is needed, but a known one still names its tenant. A key is never logged,
 * never forwarded upstream (provider adapters build their own headers) and never echoed
 * beyond its last 4 characters.
 *
 * Handing the caller to the handler: dp_api_handle calls dp_auth_request() before it
 * dispatches and dp_auth_done() when the dispatch returns; in between, the handler fills
 * its struct dp_caller with dp_caller_init() (a per-thread slot keyed by the request,
 * because the handlers' signature has no room for it). Worker thread only.
 */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "sy_policy.h"

struct sy_http_req;
struct dp_access_entry;

/* Attribution bounds: these values are per request and unbounded in number, so they go to
 * the access log only (metrics and telemetry are keyed by tenant), and each is capped. */
#define DP_CALLER_MAX_TAGS 8     /* x-switchyard-tags kept; more are dropped */
#define DP_CALLER_MAX_TAG_LEN 64 /* longer tags, and tags with other characters, are dropped */
#define DP_CALLER_MAX_USER 128   /* bytes of the body's "user", cut at a UTF-8 boundary */

/* Who asked, for the request's log line. Embedded in the request's state; <tenant> points
 * into the policy the request runs with, so it lives as long as the request's snapshot
 * reference. */
struct dp_caller {
    const struct sy_tenant *tenant;                              /* NULL = anonymous */
    char tags[DP_CALLER_MAX_TAGS * (DP_CALLER_MAX_TAG_LEN + 1)]; /* "a,b"; "" = none */
    char user[DP_CALLER_MAX_USER + 1];                           /* "" = none */
};

/* Checks the key presented in the header values <authorization> and <x_api_key> (each
 * NULL when absent; pass x-api-key only where it is accepted) against <pol>. Returns 0 with
 * *tenant set (NULL: anonymous, open mode only), -ENOKEY when keys are required and none
 * was presented, -EKEYREJECTED when the key is no tenant's, -ENOMEM when it could not be
 * hashed. Stateless; any thread. */
int dp_auth_check(const struct sy_policy *pol, const char *authorization, const char *x_api_key,
                  const struct sy_tenant **tenant);

/* The answer body for a failed check <rc> of the key in <authorization> / <x_api_key>:
 * an OpenAI error object (code missing_api_key or invalid_api_key), or Anthropic's shape
 * when <anthropic>. Sets *code to the error code for the log. Heap; caller frees. */
char *dp_auth_error_body(int rc, const char *authorization, const char *x_api_key, bool anthropic,
                         const char **code);

/* Authenticates <req> (a /v1/ endpoint) under <pol>, the policy of the snapshot the
 * dispatcher holds (NULL: none yet). On success returns 0 and remembers the caller for
 * dp_caller_init() until dp_auth_done(). Otherwise returns a negative errno - that of
 * dp_auth_check(), or -EAGAIN for a model call before any policy is loaded - with the
 * answer's *status (401, 503, 500) and error *code set for the log line; the caller logs,
 * then answers with dp_auth_reply() (which completes, and may free, <req>). */
int dp_auth_request(struct sy_http_req *req, const struct sy_policy *pol, int *status,
                    const char **code);

/* Answers <req> for the failure <rc> of dp_auth_request(): 401 with WWW-Authenticate, 503
 * no_policy or 500, in the endpoint's dialect (Anthropic's on /v1/messages). */
void dp_auth_reply(struct sy_http_req *req, int rc);

/* The tenant dp_auth_request() found for <req> in this dispatch, or NULL. */
const struct sy_tenant *dp_auth_tenant(const struct sy_http_req *req);

/* Ends the dispatch of the request: forgets its caller (the request may be gone already,
 * so it is not passed). */
void dp_auth_done(void);

/* Fills <c> for <req>, which runs with <pol> (borrowed for the request's life): the tenant
 * dp_auth_request() found, and the x-switchyard-tags. When the snapshot moved between the
 * check and the handler, the tenant is looked up again in <pol> (the request was already
 * let in, as any request in flight across a swap). Needs no cleanup. */
void dp_caller_init(struct dp_caller *c, const struct sy_http_req *req,
                    const struct sy_policy *pol);

/* Keeps the valid tags of the x-switchyard-tags value <header> (NULL = none) in c->tags:
 * split at ',', trimmed, 1 to DP_CALLER_MAX_TAG_LEN of letters, digits, '-', '_', '.', ':'
 * or '/' (the policy's tag syntax), each once, at most DP_CALLER_MAX_TAGS. */
void dp_caller_set_tags(struct dp_caller *c, const char *header);

/* Keeps the request body's "user" (a string; the Anthropic ingress maps metadata.user_id
 * to it) in c->user, cut to DP_CALLER_MAX_USER bytes. <root> is the parsed body. */
void dp_caller_set_user(struct dp_caller *c, const cJSON *root);

/* Points <e>'s caller fields at <c> (which must outlive the dp_access_log call). */
void dp_caller_log(const struct dp_caller *c, struct dp_access_entry *e);

#endif
