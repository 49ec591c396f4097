/* dataplane/providers/dp_provider_openai.c - OpenAI and every OpenAI-compatible API.
 *
 * The wire format is the gateway's own, so requests are forwarded with two edits: the
 * model name becomes the provider's name for it, and streams ask for usage
 * (stream_options.include_usage) so every request is accounted. Answers and stream events
 * pass through untouched; only errors are normalized. Stateless.
 */
#include "dp_provider.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

static int openai_prepare(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg)
{
    int rc = dp_provider_prepare_common(p, rt, errmsg);

    if (rc < 0)
        return rc;
    rt->chat_url = sy_xasprintf("%s/chat/completions", p->base_url);
    if (rt->key) {
        char *line = sy_xasprintf("Authorization: Bearer %s", rt->key);
        dp_headers_append(&rt->headers, line);
        memset(line, 0, strlen(line));
        free(line);
    }
    return 0;
}

/* Whether the client's bytes can go upstream as they are: the common, fast case. */
static bool unchanged(const cJSON *req, const struct dp_xctx *x, bool ask_usage)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "model");

    if (!x->raw_body || !cJSON_IsString(m) || strcmp(m->valuestring, x->model->upstream_model))
        return false;
    if (cJSON_GetObjectItemCaseSensitive(req, "provider_options"))
        return false;
    if (ask_usage && x->stream) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    }
    return true;
}

/* The common stream case: only stream_options is missing. Append it to the client's bytes
 * before the closing brace instead of re-printing the whole request. */
static bool patch_usage(const cJSON *req, const struct dp_xctx *x, bool ask_usage,
                        struct dp_upreq *out)
{
    static const char add[] = ",\"stream_options\":{\"include_usage\":true}";
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(req, "model");
    size_t end;

    if (!ask_usage || !x->stream || !x->raw_body || !cJSON_IsString(m) ||
        strcmp(m->valuestring, x->model->upstream_model) != 0 ||
        cJSON_GetObjectItemCaseSensitive(req, "stream_options") ||
        cJSON_GetObjectItemCaseSensitive(req, "provider_options"))
        return false;
    end = x->raw_len;
    while (end > 0 && x->raw_body[end - 1] != '}')
        end--;
    if (end == 0)
        return false;
    out->body = sy_xmalloc(x->raw_len + sizeof(add));
    memcpy(out->body, x->raw_body, end - 1);
    memcpy(out->body + end - 1, add, sizeof(add) - 1);
    memcpy(out->body + end - 1 + sizeof(add) - 1, x->raw_body + end - 1, x->raw_len - end + 1);
    out->body_len = x->raw_len + sizeof(add) - 1;
    return true;
}

int dp_openai_body(const cJSON *req, const struct dp_xctx *x, bool ask_usage, struct dp_upreq *out)
{
    cJSON *body;

    if (unchanged(req, x, ask_usage))
        return 0; /* out->body stays NULL: send x->raw_body */
    if (patch_usage(req, x, ask_usage, out))
        return 0;
    body = cJSON_Duplicate(req, true);
    if (!body)
        return -ENOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(body, "model");
    cJSON_AddStringToObject(body, "model", x->model->upstream_model);
    /* Switchyard's own request fields never reach a provider. */
    cJSON_DeleteItemFromObjectCaseSensitive(body, "provider_options");
    if (ask_usage && x->stream) {
        cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        if (!cJSON_IsObject(so)) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "stream_options");
            so = cJSON_AddObjectToObject(body, "stream_options");
        }
        cJSON_DeleteItemFromObjectCaseSensitive(so, "include_usage");
        cJSON_AddTrueToObject(so, "include_usage");
    }
    out->body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (!out->body)
        return -ENOMEM;
    out->body_len = strlen(out->body);
    return 0;
}

static int openai_chat_request(const struct dp_provider_rt *rt, const cJSON *req,
                               const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = sy_xstrdup(rt->chat_url);
    return dp_openai_body(req, x, true, out);
}

static int openai_embed_request(const struct dp_provider_rt *rt, const cJSON *req,
                                const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = sy_xasprintf("%s/embeddings", rt->provider->base_url);
    return dp_openai_body(req, x, false, out);
}

static int openai_completion_request(const struct dp_provider_rt *rt, const cJSON *req,
                                     const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)errmsg;
    out->url = sy_xasprintf("%s/completions", rt->provider->base_url);
    return dp_openai_body(req, x, true, out);
}

/* {"error":{"message","type","code"}} as OpenAI and most compatible servers send it. */
void dp_openai_error(int status, const char *body, size_t len, struct dp_error_info *out)
{
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *type = NULL, *code = NULL, *msg = NULL;
    char snippet[256];

    if (cJSON_IsObject(err)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(err, "type");
        type = cJSON_IsString(v) ? v->valuestring : NULL;
        v = cJSON_GetObjectItemCaseSensitive(err, "code");
        code = cJSON_IsString(v) ? v->valuestring : NULL;
        v = cJSON_GetObjectItemCaseSensitive(err, "message");
        msg = cJSON_IsString(v) ? v->valuestring : NULL;
    } else if (cJSON_IsString(err)) {
        msg = err->valuestring; /* some compatible servers: {"error":"..."} */
    } else if (body && len) {
        size_t n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;
        memcpy(snippet, body, n);
        snippet[n] = '\0';
        msg = snippet;
    }
    dp_error_classify(status, type, code, msg, NULL, out);
    cJSON_Delete(root);
}

const struct dp_provider_ops dp_provider_openai = {
    .kind = "openai",
    .prepare = openai_prepare,
    .chat_request = openai_chat_request,
    .chat_response = NULL,
    .stream_new = NULL,
    .error = dp_openai_error,
    .embed_request = openai_embed_request,
    .embed_response = NULL,
    .completion_request = openai_completion_request,
};
