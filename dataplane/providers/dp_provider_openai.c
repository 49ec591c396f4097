/* dataplane/providers/dp_provider_openai.c - OpenAI and every OpenAI-compatible API.
 *
 * The wire format is the client's own, so the request is forwarded with two edits: the
 * model name becomes the provider's name for it, and streams ask for usage
 * (stream_options.include_usage) so every request is accounted. Answers pass through.
 */
#include "dp_provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

static struct curl_slist *append(struct curl_slist *list, const char *line)
{
    struct curl_slist *n = curl_slist_append(list, line);
    if (!n)
        abort(); /* small fixed allocation: OOM is fatal (STYLE.md) */
    return n;
}

static int openai_prepare(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg)
{
    char *line;

    rt->chat_url = sy_xasprintf("%s/chat/completions", p->base_url);
    rt->headers = append(NULL, "Content-Type: application/json");
    /* curl would otherwise send Expect: 100-continue for bodies over 1 KiB: one RTT more. */
    rt->headers = append(rt->headers, "Expect:");
    if (p->api_key_env) {
        const char *key = getenv(p->api_key_env);
        if (!key || !*key) {
            *errmsg = sy_xasprintf("provider %s: environment variable %s is not set on this node",
                                   p->name, p->api_key_env);
            return -EINVAL;
        }
        line = sy_xasprintf("Authorization: Bearer %s", key);
        rt->headers = append(rt->headers, line);
        free(line);
    }
    for (size_t h = 0; h < p->n_headers; h++) {
        line = sy_xasprintf("%s: %s", p->headers[h].name, p->headers[h].value);
        rt->headers = append(rt->headers, line);
        free(line);
    }
    return 0;
}

static bool openai_chat_request(cJSON *body, const struct sy_model *model, bool stream)
{
    bool changed = false;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");

    if (!cJSON_IsString(m) || strcmp(m->valuestring, model->upstream_model) != 0) {
        cJSON_ReplaceItemInObjectCaseSensitive(body, "model",
                                               cJSON_CreateString(model->upstream_model));
        changed = true;
    }
    if (stream) {
        cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        if (!cJSON_IsObject(so)) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "stream_options");
            so = cJSON_AddObjectToObject(body, "stream_options");
        }
        cJSON *iu = cJSON_GetObjectItemCaseSensitive(so, "include_usage");
        if (!cJSON_IsTrue(iu)) {
            cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
            cJSON_AddTrueToObject(so, "include_usage");
            changed = true;
        }
    }
    return changed;
}

const struct dp_provider_ops dp_provider_openai = {
    .kind = "openai",
    .prepare = openai_prepare,
    .chat_request = openai_chat_request,
};
