/* dataplane/providers/dp_anthropic_response.c - Anthropic answers as OpenAI objects: a whole
 * message as a chat.completion, usage with cache tokens, stop reasons, and errors.
 *
 * Text blocks are joined into message.content; tool_use blocks become tool_calls with the
 * input object printed as the arguments string; other blocks (thinking, redacted_thinking,
 * server tools) have no OpenAI equivalent and are left out. Usage follows OpenAI's meaning:
 * prompt_tokens counts every input token, cached or not, and prompt_tokens_details.
 * cached_tokens the ones read from Anthropic's prompt cache. Stateless; any thread.
 */
#include "dp_anthropic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

const char *dp_anthropic_finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return "stop";
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn, and whatever comes next */
}

/* A non-negative token count, or -1 when <name> is missing or not a count. */
static int64_t count(const cJSON *usage, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, name);

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15)
        return -1;
    return (int64_t)v->valuedouble;
}

void dp_anthropic_usage(const cJSON *usage, struct dp_usage *u)
{
    int64_t in = count(usage, "input_tokens");
    int64_t out = count(usage, "output_tokens");
    int64_t cread = count(usage, "cache_read_input_tokens");
    int64_t cwrite = count(usage, "cache_creation_input_tokens");

    if (!cJSON_IsObject(usage))
        return;
    if (in >= 0 || cread >= 0 || cwrite >= 0) {
        /* A member left out is 0 only when another input member is there. */
        u->prompt_tokens = (in > 0 ? in : 0) + (cread > 0 ? cread : 0) + (cwrite > 0 ? cwrite : 0);
        u->cached_tokens = cread > 0 ? cread : 0;
    }
    if (out >= 0)
        u->completion_tokens = out;
}

bool dp_anthropic_add_usage(cJSON *obj, const struct dp_usage *u)
{
    int64_t p = u->prompt_tokens > 0 ? u->prompt_tokens : 0;
    int64_t c = u->completion_tokens > 0 ? u->completion_tokens : 0;
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    cJSON *us = cJSON_AddObjectToObject(obj, "usage");
    bool ok = cJSON_AddNumberToObject(us, "prompt_tokens", (double)p) &&
              cJSON_AddNumberToObject(us, "completion_tokens", (double)c) &&
              cJSON_AddNumberToObject(us, "total_tokens", (double)(p + c));
    cJSON *det = cJSON_AddObjectToObject(us, "prompt_tokens_details");

    return ok && cJSON_AddNumberToObject(det, "cached_tokens", (double)cached);
}

/* {"id","type":"function","function":{"name","arguments"}} for a tool_use block. */
static cJSON *tool_call(const cJSON *block, char **errmsg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(block, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(block, "name");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(block, "input");
    cJSON *tc, *fn;
    char *args;
    bool ok;

    if (!cJSON_IsString(id) || !cJSON_IsString(name)) {
        *errmsg = sy_xstrdup("a tool_use block has no string id or name");
        return NULL;
    }
    args = input ? cJSON_PrintUnformatted(input) : NULL;
    tc = cJSON_CreateObject();
    ok = (args || !input) && cJSON_AddStringToObject(tc, "id", id->valuestring) &&
         cJSON_AddStringToObject(tc, "type", "function");
    fn = cJSON_AddObjectToObject(tc, "function");
    ok = ok && cJSON_AddStringToObject(fn, "name", name->valuestring) &&
         cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
    cJSON_free(args);
    if (!ok) {
        cJSON_Delete(tc);
        return NULL;
    }
    return tc;
}

/* Builds the chat.completion for the parsed message <msg>. NULL with *errmsg set when the
 * message is unusable, NULL alone on OOM. */
static cJSON *completion(const cJSON *msg, const struct dp_xctx *x, struct dp_usage *u,
                         char **errmsg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(msg, "model");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(msg, "stop_reason");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(msg, "type");
    const cJSON *b;
    cJSON *root, *choices, *choice, *m, *calls = NULL;
    char *text = NULL;
    size_t tlen = 0;
    bool ok, any_text = false;

    if (!cJSON_IsObject(msg) || !cJSON_IsArray(content) ||
        (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "message") == 0))) {
        *errmsg = sy_xstrdup("the answer is not an Anthropic message (no content array)");
        return NULL;
    }
    cJSON_ArrayForEach(b, content)
    {
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(b, "type");
        const char *t = cJSON_IsString(bt) ? bt->valuestring : "";

        if (strcmp(t, "text") == 0) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(b, "text");
            size_t sl = cJSON_IsString(s) ? strlen(s->valuestring) : 0;
            char *nt = realloc(text, tlen + sl + 1);
            if (!nt)
                goto out_oom;
            text = nt;
            memcpy(text + tlen, sl ? s->valuestring : "", sl + 1);
            tlen += sl;
            any_text = true;
        } else if (strcmp(t, "tool_use") == 0) {
            cJSON *tc = tool_call(b, errmsg);
            if (!tc)
                goto out_oom; /* or unusable: *errmsg tells */
            if (!calls && !(calls = cJSON_CreateArray())) {
                cJSON_Delete(tc);
                goto out_oom;
            }
            if (!cJSON_AddItemToArray(calls, tc)) {
                cJSON_Delete(tc);
                goto out_oom;
            }
        }
    }
    dp_anthropic_usage(cJSON_GetObjectItemCaseSensitive(msg, "usage"), u);

    root = cJSON_CreateObject();
    ok =
        cJSON_AddStringToObject(root, "id", cJSON_IsString(id) ? id->valuestring : x->request_id) &&
        cJSON_AddStringToObject(root, "object", "chat.completion") &&
        cJSON_AddNumberToObject(root, "created", (double)x->created) &&
        cJSON_AddStringToObject(
            root, "model", cJSON_IsString(model) ? model->valuestring : x->model->upstream_model);
    choices = cJSON_AddArrayToObject(root, "choices");
    choice = cJSON_CreateObject();
    if (!choice || !cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        choice = NULL;
        ok = false;
    }
    m = cJSON_AddObjectToObject(choice, "message");
    ok = ok && cJSON_AddNumberToObject(choice, "index", 0) &&
         cJSON_AddStringToObject(m, "role", "assistant") &&
         (any_text ? cJSON_AddStringToObject(m, "content", text) != NULL
                   : cJSON_AddNullToObject(m, "content") != NULL);
    if (ok && calls) {
        ok = cJSON_AddItemToObject(m, "tool_calls", calls);
        if (ok)
            calls = NULL;
    }
    ok = ok && cJSON_AddNullToObject(choice, "logprobs") &&
         cJSON_AddStringToObject(
             choice, "finish_reason",
             dp_anthropic_finish_reason(cJSON_IsString(stop) ? stop->valuestring : NULL)) &&
         dp_anthropic_add_usage(root, u);
    free(text);
    cJSON_Delete(calls);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;

out_oom:
    free(text);
    cJSON_Delete(calls);
    return NULL;
}

int dp_anthropic_chat_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                               size_t *out_len, struct dp_usage *u, char **errmsg)
{
    cJSON *msg = cJSON_ParseWithLength(body, len);
    cJSON *root;
    char *s;

    *errmsg = NULL;
    if (!msg) {
        *errmsg = sy_xstrdup("the answer is not valid JSON");
        return -EINVAL;
    }
    root = completion(msg, x, u, errmsg);
    cJSON_Delete(msg);
    if (!root)
        return *errmsg ? -EINVAL : -ENOMEM;
    s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return -ENOMEM;
    *out = s;
    *out_len = strlen(s);
    return 0;
}

/* ---- errors ---------------------------------------------------------------------------- */

int dp_anthropic_error_status(const char *etype)
{
    static const struct {
        const char *type;
        int status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401},
        {"billing_error", 402},         {"permission_error", 403},
        {"not_found_error", 404},       {"request_too_large", 413},
        {"rate_limit_error", 429},      {"api_error", 500},
        {"timeout_error", 504},         {"overloaded_error", 529},
    };

    for (size_t i = 0; etype && i < SY_ARRAY_LEN(map); i++) {
        if (strcmp(etype, map[i].type) == 0)
            return map[i].status;
    }
    return 500;
}

void dp_anthropic_error(int status, const char *body, size_t len, struct dp_error_info *out)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(err, "type");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    const char *etype = cJSON_IsString(type) ? type->valuestring : NULL;
    const char *emsg = cJSON_IsString(msg) ? msg->valuestring : NULL;
    char snippet[256];

    if (!cJSON_IsObject(err) && body && len) {
        /* Not Anthropic's shape (a proxy in between, an HTML page): show its start. */
        size_t n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;
        memcpy(snippet, body, n);
        snippet[n] = '\0';
        emsg = snippet;
    }
    if (status < 400)
        status = dp_anthropic_error_status(etype);
    dp_error_classify(status, etype, NULL, emsg, NULL, out);
    cJSON_Delete(root);
}
