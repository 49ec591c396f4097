/* dataplane/providers/dp_provider_gemini.c - Google Gemini API (generateContent).
 *
 * The model is part of the URL: {base_url}/v1beta/models/{model}:generateContent, or
 * :streamGenerateContent?alt=sse for streams (each SSE event a whole response chunk), and
 * :batchEmbedContents for /v1/embeddings; the key goes in the x-goog-api-key header. Bodies
 * are translated both ways (dp_gemini_request.c, dp_gemini_response.c, dp_gemini_stream.c);
 * docs/providers-gemini.md lists every mapping. Legacy completions are not offered.
 * Stateless apart from the per-stream state; any worker thread.
 */
#include "dp_provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp_gemini.h"
#include "sy_util.h"

#define DP_GEMINI_API_VERSION "v1beta"

static int gemini_prepare(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg)
{
    int rc = dp_provider_prepare_common(p, rt, errmsg);

    if (rc < 0)
        return rc;
    if (rt->key) {
        char *line = sy_xasprintf("x-goog-api-key: %s", rt->key);
        dp_headers_append(&rt->headers, line);
        memset(line, 0, strlen(line));
        free(line);
    }
    return 0;
}

/* The model's resource name: "models/<upstream_model>", or the upstream name itself when it
 * already is one ("models/x", "tunedModels/x"). Heap string, or NULL with *errmsg when the
 * name has characters a URL path cannot carry as they are. */
static char *resource_name(const struct dp_xctx *x, char **errmsg)
{
    const char *m = x->model->upstream_model;

    for (const char *c = m; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.' || *c == '/')) {
            *errmsg = sy_xasprintf("upstream model name \"%.100s\" has characters that cannot "
                                   "be used in a Gemini URL",
                                   m);
            return NULL;
        }
    }
    if (!*m) {
        *errmsg = sy_xstrdup("the upstream model name is empty");
        return NULL;
    }
    return strchr(m, '/') ? sy_xstrdup(m) : sy_xasprintf("models/%s", m);
}

/* Whether <base> already ends in an API version segment ("/v1", "/v1beta", "/v1alpha"). */
static bool has_version(const char *base)
{
    const char *slash = strrchr(base, '/');

    return slash && slash[1] == 'v' && slash[2] >= '0' && slash[2] <= '9';
}

/* {base_url}[/v1beta]/{resource}:{method} */
static char *method_url(const struct dp_provider_rt *rt, const char *resource, const char *method)
{
    const char *base = rt->provider->base_url;

    if (has_version(base))
        return sy_xasprintf("%s/%s:%s", base, resource, method);
    return sy_xasprintf("%s/%s/%s:%s", base, DP_GEMINI_API_VERSION, resource, method);
}

/* Prints <body> (deleted here) into <out>. */
static int print_body(cJSON *body, struct dp_upreq *out)
{
    out->body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!out->body)
        return -ENOMEM;
    out->body_len = strlen(out->body);
    return 0;
}

static int gemini_chat_request(const struct dp_provider_rt *rt, const cJSON *req,
                               const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    char *res = resource_name(x, errmsg);
    cJSON *body = NULL;
    int rc;

    if (!res)
        return -EINVAL;
    rc = dp_gemini_chat_body(req, &body, errmsg);
    if (rc == 0) {
        out->url =
            method_url(rt, res, x->stream ? "streamGenerateContent?alt=sse" : "generateContent");
        rc = print_body(body, out);
    }
    free(res);
    return rc;
}

static int gemini_embed_request(const struct dp_provider_rt *rt, const cJSON *req,
                                const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    char *res = resource_name(x, errmsg);
    cJSON *body = NULL;
    int rc;

    if (!res)
        return -EINVAL;
    rc = dp_gemini_embed_body(req, res, &body, errmsg);
    if (rc == 0) {
        out->url = method_url(rt, res, "batchEmbedContents");
        rc = print_body(body, out);
    }
    free(res);
    return rc;
}

const struct dp_provider_ops dp_provider_gemini = {
    .kind = "gemini",
    .prepare = gemini_prepare,
    .chat_request = gemini_chat_request,
    .chat_response = dp_gemini_chat_response,
    .stream_new = dp_gemini_stream_new,
    .stream_event = dp_gemini_stream_event,
    .stream_end = dp_gemini_stream_end,
    .stream_free = dp_gemini_stream_free,
    .error = dp_gemini_error,
    .embed_request = gemini_embed_request,
    .embed_response = dp_gemini_embed_response,
    .completion_request = NULL, /* no legacy completions API */
};
