/* dataplane/providers/dp_provider.h - the interface every provider adapter implements.
 *
 * An adapter turns the client's OpenAI-shaped request into its provider's HTTP request and
 * (for non-OpenAI families) the provider's answers back into OpenAI objects. One file per
 * API family; a new OpenAI-compatible provider is configuration, not code. Adapters are
 * stateless tables; their runtime data (URLs, auth header lists) lives in the snapshot, is
 * built once per policy by prepare(), and is read-only afterwards (any worker thread).
 */
#ifndef DP_PROVIDER_H
#define DP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "sy_policy.h"

/* What one node resolved for one provider of a policy. */
struct dp_provider_rt {
    char *chat_url;             /* where chat completions are POSTed */
    struct curl_slist *headers; /* auth, content type, extra headers */
};

struct dp_provider_ops {
    const char *kind;
    /* Builds <rt> for provider <p>, reading its key from the environment. Returns 0, or
     * -EINVAL with *errmsg set (caller frees) when this node cannot use the provider. */
    int (*prepare)(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg);
    /* Rewrites the parsed client request <body> in place for <model>: upstream model name,
     * streaming usage. Returns true when <body> changed (it must be re-serialised). */
    bool (*chat_request)(cJSON *body, const struct sy_model *model, bool stream);
};

/* The adapter for <kind>; never NULL for a kind the compiler accepts. */
const struct dp_provider_ops *dp_provider_ops_for(enum sy_provider_kind kind);

/* Frees what prepare() built. Accepts a zeroed rt. */
void dp_provider_rt_cleanup(struct dp_provider_rt *rt);

#endif
