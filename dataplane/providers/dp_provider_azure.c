/* dataplane/providers/dp_provider_azure.c - Azure OpenAI.
 *
 * The wire format is OpenAI's; what differs is addressing and auth: the model is a
 * deployment in the URL ({base_url}/openai/deployments/{deployment}/chat/completions),
 * every call carries ?api-version=, and the key goes in the api-key header. The policy's
 * upstream_model names the deployment; api_version defaults to a GA version. Stateless.
 */
#include "dp_provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

#define DP_AZURE_DEFAULT_API_VERSION "2024-10-21"

static const char *api_version(const struct sy_provider *p)
{
    return p->api_version ? p->api_version : DP_AZURE_DEFAULT_API_VERSION;
}

static int azure_prepare(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg)
{
    int rc = dp_provider_prepare_common(p, rt, errmsg);

    if (rc < 0)
        return rc;
    if (rt->key) {
        char *line = sy_xasprintf("api-key: %s", rt->key);
        dp_headers_append(&rt->headers, line);
        memset(line, 0, strlen(line));
        free(line);
    }
    return 0;
}

/* {base}/openai/deployments/{deployment}/{op}?api-version={v}, the deployment escaped. */
static char *deployment_url(const struct dp_provider_rt *rt, const struct dp_xctx *x,
                            const char *op)
{
    char *dep = curl_easy_escape(NULL, x->model->upstream_model, 0);
    char *url;

    if (!dep)
        abort();
    url = sy_xasprintf("%s/openai/deployments/%s/%s?api-version=%s", rt->provider->base_url, dep,
                       op, api_version(rt->provider));
    curl_free(dep);
    return url;
}

static int azure_chat_request(const struct dp_provider_rt *rt, const cJSON *req,
                              const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = deployment_url(rt, x, "chat/completions");
    return dp_openai_body(req, x, true, out);
}

static int azure_embed_request(const struct dp_provider_rt *rt, const cJSON *req,
                               const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = deployment_url(rt, x, "embeddings");
    return dp_openai_body(req, x, false, out);
}

static int azure_completion_request(const struct dp_provider_rt *rt, const cJSON *req,
                                    const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = deployment_url(rt, x, "completions");
    return dp_openai_body(req, x, true, out);
}

const struct dp_provider_ops dp_provider_azure = {
    .kind = "azure",
    .prepare = azure_prepare,
    .chat_request = azure_chat_request,
    .error = dp_openai_error,
    .embed_request = azure_embed_request,
    .completion_request = azure_completion_request,
};
