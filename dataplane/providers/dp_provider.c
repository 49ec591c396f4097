/* dataplane/providers/dp_provider.c - adapter lookup, shared preparation, usage and error
 * normalization used by every adapter. Stateless; any thread. */
#include "dp_provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

extern const struct dp_provider_ops dp_provider_openai;
extern const struct dp_provider_ops dp_provider_azure;
extern const struct dp_provider_ops dp_provider_anthropic;
extern const struct dp_provider_ops dp_provider_gemini;

const struct dp_provider_ops *dp_provider_ops_for(enum sy_provider_kind kind)
{
    switch (kind) {
    case SY_PROVIDER_OPENAI:
        return &dp_provider_openai;
    case SY_PROVIDER_AZURE:
        return &dp_provider_azure;
    case SY_PROVIDER_ANTHROPIC:
        return &dp_provider_anthropic;
    case SY_PROVIDER_GEMINI:
        return &dp_provider_gemini;
    }
    return &dp_provider_openai;
}

void dp_provider_rt_cleanup(struct dp_provider_rt *rt)
{
    free(rt->chat_url);
    rt->chat_url = NULL;
    curl_slist_free_all(rt->headers);
    rt->headers = NULL;
    if (rt->key) {
        /* Keys do not linger in freed memory. */
        memset(rt->key, 0, strlen(rt->key));
        free(rt->key);
        rt->key = NULL;
    }
}

void dp_upreq_cleanup(struct dp_upreq *rq)
{
    free(rq->url);
    free(rq->body);
    memset(rq, 0, sizeof(*rq));
}

void dp_headers_append(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n)
        abort(); /* small fixed allocation: OOM is fatal (STYLE.md) */
    *list = n;
}

int dp_provider_prepare_common(const struct sy_provider *p, struct dp_provider_rt *rt,
                               char **errmsg)
{
    rt->provider = p;
    dp_headers_append(&rt->headers, "Content-Type: application/json");
    /* curl would otherwise send Expect: 100-continue for bodies over 1 KiB: one RTT more. */
    dp_headers_append(&rt->headers, "Expect:");
    for (size_t h = 0; h < p->n_headers; h++) {
        char *line = sy_xasprintf("%s: %s", p->headers[h].name, p->headers[h].value);
        dp_headers_append(&rt->headers, line);
        free(line);
    }
    if (p->api_key_env) {
        const char *key = getenv(p->api_key_env);
        if (!key || !*key) {
            *errmsg = sy_xasprintf("provider %s: environment variable %s is not set on this node",
                                   p->name, p->api_key_env);
            return -EINVAL;
        }
        rt->key = sy_xstrdup(key);
    }
    return 0;
}

/* A token count from JSON, or -1 when it is not a sane one (negative, NaN, absurd). */
static int64_t token_count(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
        return -1;
    return (int64_t)v->valuedouble;
}

void dp_usage_from_openai(const cJSON *usage, struct dp_usage *u)
{
    const cJSON *v;
    int64_t n;

    if (!cJSON_IsObject(usage))
        return;
    if ((n = token_count(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens"))) >= 0)
        u->prompt_tokens = n;
    if ((n = token_count(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens"))) >= 0)
        u->completion_tokens = n;
    v = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "cached_tokens") : NULL;
    if ((n = token_count(v)) >= 0)
        u->cached_tokens = n;
}

static bool contains(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static void set(struct dp_error_info *e, int status, const char *type, const char *code,
                bool retryable, bool fallback_ok)
{
    e->status = status;
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->code, sizeof(e->code), "%s", code);
    e->retryable = retryable;
    e->fallback_ok = fallback_ok;
}

void dp_error_classify(int status, const char *ptype, const char *pcode, const char *pmsg,
                       const char *provider_label, struct dp_error_info *out)
{
    const char *msg = pmsg && *pmsg ? pmsg : "no message";

    memset(out, 0, sizeof(*out));
    if (status == 429 || contains(pcode, "rate_limit") || contains(ptype, "rate_limit") ||
        contains(ptype, "RESOURCE_EXHAUSTED")) {
        set(out, 429, "rate_limit_error", "rate_limit_exceeded", true, true);
    } else if (status == 401 || status == 403) {
        /* The provider refused Switchyard's key: the operator's problem, not the client's. */
        set(out, 502, "upstream_error", "provider_auth_failed", false, true);
    } else if (contains(pcode, "context_length") || contains(msg, "context length") ||
               contains(msg, "context window") || contains(msg, "prompt is too long") ||
               contains(msg, "maximum context") ||
               contains(msg, "exceeds the maximum number of tokens")) {
        set(out, 400, "invalid_request_error", "context_length_exceeded", false, true);
    } else if (contains(pcode, "content_filter") || contains(pcode, "content_policy") ||
               contains(ptype, "content_filter") || contains(msg, "content management policy") ||
               contains(msg, "safety")) {
        set(out, 400, "invalid_request_error", "content_filter", false, false);
    } else if (status == 404) {
        set(out, 502, "upstream_error", "upstream_model_not_found", false, true);
    } else if (status >= 500 || status == 408 || status == 409) {
        /* 5xx, Anthropic's 529 overloaded, timeouts and conflicts are the provider's state. */
        set(out, 502, "upstream_error", "upstream_error", true, true);
    } else if (status >= 400) {
        set(out, status, "invalid_request_error", "invalid_request", false, false);
    } else {
        set(out, 502, "upstream_error", "upstream_error", false, true);
    }
    if (provider_label)
        snprintf(out->message, sizeof(out->message), "provider %s answered HTTP %d: %s",
                 provider_label, status, msg);
    else
        snprintf(out->message, sizeof(out->message), "HTTP %d: %s", status, msg);
}

char *dp_error_info_json(const struct dp_error_info *e)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    char *out;

    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type);
    cJSON_AddNullToObject(err, "param");
    cJSON_AddStringToObject(err, "code", e->code);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!out)
        abort();
    return out;
}
