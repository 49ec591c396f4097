/* dataplane/providers/dp_provider_anthropic.c - the Anthropic Messages API family.
 *
 * base_url is the API root as Anthropic documents it (https://api.anthropic.com); chat goes
 * to {base_url}/v1/messages with x-api-key and anthropic-version (the provider's
 * api_version, else DP_ANTHROPIC_DEFAULT_VERSION) headers. Requests, answers, stream events
 * and errors are translated both ways (dp_anthropic_*.c; docs/providers-anthropic.md).
 * Embeddings and legacy completions do not exist in this API family: their ops are NULL,
 * so the chat layer answers 400 naming the model and the capability. Runtime data is built
 * by prepare() and read-only after; any worker thread.
 */
#include "dp_provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp_anthropic.h"
#include "sy_util.h"

static int anthropic_prepare(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg)
{
    int rc = dp_provider_prepare_common(p, rt, errmsg);
    char *line;

    if (rc < 0)
        return rc;
    rt->chat_url = sy_xasprintf("%s/v1/messages", p->base_url);
    line = sy_xasprintf("anthropic-version: %s",
                        p->api_version ? p->api_version : DP_ANTHROPIC_DEFAULT_VERSION);
    dp_headers_append(&rt->headers, line);
    free(line);
    if (rt->key) {
        line = sy_xasprintf("x-api-key: %s", rt->key);
        dp_headers_append(&rt->headers, line);
        memset(line, 0, strlen(line));
        free(line);
    }
    return 0;
}

static int anthropic_chat_request(const struct dp_provider_rt *rt, const cJSON *req,
                                  const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    cJSON *body = dp_anthropic_body(req, x, errmsg);

    if (!body)
        return *errmsg ? -EINVAL : -ENOMEM;
    out->body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!out->body)
        return -ENOMEM;
    out->body_len = strlen(out->body);
    out->url = sy_xstrdup(rt->chat_url);
    return 0;
}

const struct dp_provider_ops dp_provider_anthropic = {
    .kind = "anthropic",
    .prepare = anthropic_prepare,
    .chat_request = anthropic_chat_request,
    .chat_response = dp_anthropic_chat_response,
    .stream_new = dp_anthropic_stream_new,
    .stream_event = dp_anthropic_stream_event,
    .stream_end = dp_anthropic_stream_end,
    .stream_free = dp_anthropic_stream_free,
    .error = dp_anthropic_error,
    .embed_request = NULL,
    .embed_response = NULL,
    .completion_request = NULL,
};
