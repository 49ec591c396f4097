/* tests/mockllm/mock_gemini.c - the Gemini dialect (see mock_gemini.h).
 *
 * Request JSON -> struct mock_plan (mock_plan.h rules) -> Gemini JSON or SSE events. The
 * model and the method come from the path (/v1beta/models/{model}:{method}). Gemini sends
 * function calls whole, so a streamed call is one event; text is split like every dialect's.
 * Every allocation result goes through put(), so an OOM anywhere turns into a 500 rather
 * than a half-built answer.
 */
#include "mock_gemini.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <event2/http.h>

#include "mock_embed.h"
#include "mock_openai.h"
#include "mock_plan.h"
#include "sy_util.h"

#define CT_JSON "application/json"
#define CT_SSE "text/event-stream"
#define MODELS_PREFIX "/v1beta/models/"

static cJSON *put(bool *ok, cJSON *item)
{
    if (!item)
        *ok = false;
    return item;
}

/* Appends <item> (taken) to <arr>. */
static void push(bool *ok, cJSON *arr, cJSON *item)
{
    if (!item || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        *ok = false;
    }
}

/* Google's canonical status name for an HTTP status. */
static const char *status_name(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "ABORTED";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 499:
        return "CANCELLED";
    case 501:
        return "NOT_IMPLEMENTED";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

char *mock_gemini_error_body(int status, const char *message, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    bool ok = root && err;
    char *body = NULL;

    put(&ok, cJSON_AddNumberToObject(err, "code", status));
    put(&ok, cJSON_AddStringToObject(err, "message", message));
    put(&ok, cJSON_AddStringToObject(err, "status", status_name(status)));
    if (ok)
        body = mock_json_print(root, len);
    cJSON_Delete(root);
    return body;
}

static void reply_error(struct mock_reply *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct mock_reply *out, int status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    out->status = status;
    out->content_type = CT_JSON;
    out->body = mock_gemini_error_body(status, msg, &out->body_len);
}

/* The joined text parts of a Content's "parts", or NULL with *bad set when they are not an
 * array of objects (NULL with *bad clear: OOM). */
static char *parts_text(const cJSON *parts, size_t *len, bool *has_text, bool *bad)
{
    const cJSON *p;
    size_t n = 0;
    char *s;

    *bad = !cJSON_IsArray(parts);
    *has_text = false;
    if (*bad)
        return NULL;
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = mock_json_string(p, "text");
        if (!cJSON_IsObject(p)) {
            *bad = true;
            return NULL;
        }
        if (t) {
            n += strlen(t);
            *has_text = true;
        }
    }
    s = malloc(n + 1);
    if (!s)
        return NULL;
    *len = n;
    n = 0;
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = mock_json_string(p, "text");
        if (t) {
            memcpy(s + n, t, strlen(t));
            n += strlen(t);
        }
    }
    s[n] = '\0';
    return s;
}

/* The function the mock calls: none when tools are off, else the first allowed name or the
 * first declared one. Returns 0, -EINVAL or -ENOMEM. */
static int pick_tool(const cJSON *root, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *fcc = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "toolConfig"), "functionCallingConfig");
    const char *mode = mock_json_string(fcc, "mode");
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(fcc, "allowedFunctionNames");
    const cJSON *decls, *first;
    const char *name;

    if (tools && !cJSON_IsArray(tools)) {
        snprintf(err, errlen, "tools: expected an array");
        return -EINVAL;
    }
    if (!cJSON_IsArray(tools) || !tools->child || (mode && strcmp(mode, "NONE") == 0))
        return 0;
    decls = cJSON_GetObjectItemCaseSensitive(tools->child, "functionDeclarations");
    first = cJSON_IsArray(decls) ? decls->child : NULL;
    name = cJSON_IsArray(allowed) && cJSON_IsString(allowed->child)
               ? allowed->child->valuestring
               : mock_json_string(first, "name");
    if (!name) {
        snprintf(err, errlen, "tools[0].functionDeclarations[0].name: required");
        return -EINVAL;
    }
    p->tool_name = strdup(name);
    return p->tool_name ? 0 : -ENOMEM;
}

/* Parses a generateContent request into <p>. Returns 0, -EINVAL with <err>, or -ENOMEM. */
static int parse_generate(const cJSON *root, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *contents = cJSON_GetObjectItemCaseSensitive(root, "contents");
    const cJSON *si = cJSON_GetObjectItemCaseSensitive(root, "systemInstruction");
    const cJSON *c;
    bool bad, has_text;
    size_t len = 0;
    int i = 0;

    if (!cJSON_IsArray(contents) || !contents->child) {
        snprintf(err, errlen, "contents: expected a non-empty array");
        return -EINVAL;
    }
    if (si) {
        char *t = parts_text(cJSON_GetObjectItemCaseSensitive(si, "parts"), &len, &has_text, &bad);
        if (bad) {
            snprintf(err, errlen, "systemInstruction.parts: expected an array of parts");
            return -EINVAL;
        }
        if (!t)
            return -ENOMEM;
        p->prompt_tokens += mock_message_tokens(len);
        free(t);
    }
    cJSON_ArrayForEach(c, contents)
    {
        const char *role = mock_json_string(c, "role");
        char *t = parts_text(cJSON_GetObjectItemCaseSensitive(c, "parts"), &len, &has_text, &bad);
        if (bad || !cJSON_IsObject(c)) {
            free(t);
            snprintf(err, errlen, "contents[%d].parts: expected an array of parts", i);
            return -EINVAL;
        }
        if (!t)
            return -ENOMEM;
        if (role && strcmp(role, "user") != 0 && strcmp(role, "model") != 0) {
            free(t);
            snprintf(err, errlen, "contents[%d].role: expected \"user\" or \"model\"", i);
            return -EINVAL;
        }
        p->prompt_tokens += mock_message_tokens(len);
        if ((!role || strcmp(role, "user") == 0) && has_text) {
            free(p->text);
            p->text = t;
        } else {
            free(t);
        }
        i++;
    }
    if (!p->text && !(p->text = strdup("")))
        return -ENOMEM;
    return pick_tool(root, p, err, errlen);
}

static void add_usage(bool *ok, cJSON *obj, const struct mock_plan *p, bool final)
{
    cJSON *u = put(ok, cJSON_AddObjectToObject(obj, "usageMetadata"));
    long cand = final ? p->completion_tokens : 0;

    put(ok, cJSON_AddNumberToObject(u, "promptTokenCount", (double)p->prompt_tokens));
    if (final)
        put(ok, cJSON_AddNumberToObject(u, "candidatesTokenCount", (double)cand));
    put(ok, cJSON_AddNumberToObject(u, "totalTokenCount", (double)(p->prompt_tokens + cand)));
}

/* One GenerateContentResponse with <parts> (taken) and, when <finish>, finishReason STOP and
 * the full usage. */
static cJSON *response(bool *ok, const struct mock_plan *p, cJSON *parts, bool finish)
{
    cJSON *root = put(ok, cJSON_CreateObject());
    cJSON *cands = put(ok, cJSON_AddArrayToObject(root, "candidates"));
    cJSON *cand = put(ok, cJSON_CreateObject());
    cJSON *content;
    char id[48];

    push(ok, cands, cand);
    content = put(ok, cJSON_AddObjectToObject(cand, "content"));
    if (!parts || !cJSON_AddItemToObject(content, "parts", parts)) {
        cJSON_Delete(parts);
        *ok = false;
    }
    put(ok, cJSON_AddStringToObject(content, "role", "model"));
    if (finish)
        put(ok, cJSON_AddStringToObject(cand, "finishReason", "STOP"));
    put(ok, cJSON_AddNumberToObject(cand, "index", 0));
    add_usage(ok, root, p, finish);
    put(ok, cJSON_AddStringToObject(root, "modelVersion", p->model));
    snprintf(id, sizeof(id), "mock-%llu", (unsigned long long)p->seq);
    put(ok, cJSON_AddStringToObject(root, "responseId", id));
    return root;
}

/* [{"text": <s>}] */
static cJSON *text_parts(bool *ok, const char *s)
{
    cJSON *parts = put(ok, cJSON_CreateArray());
    cJSON *part = put(ok, cJSON_CreateObject());

    put(ok, cJSON_AddStringToObject(part, "text", s));
    push(ok, parts, part);
    return parts;
}

/* [{"functionCall":{"name","args":{"echo": <text>}}}] */
static cJSON *call_parts(bool *ok, const struct mock_plan *p)
{
    cJSON *parts = put(ok, cJSON_CreateArray());
    cJSON *part = put(ok, cJSON_CreateObject());
    cJSON *fc = put(ok, cJSON_AddObjectToObject(part, "functionCall"));
    cJSON *args;

    put(ok, cJSON_AddStringToObject(fc, "name", p->tool_name));
    args = put(ok, cJSON_AddObjectToObject(fc, "args"));
    put(ok, cJSON_AddStringToObject(args, "echo", p->text));
    push(ok, parts, part);
    return parts;
}

static void render_whole(const struct mock_plan *p, struct mock_reply *out)
{
    bool ok = true;
    cJSON *root =
        response(&ok, p, p->tool_name ? call_parts(&ok, p) : text_parts(&ok, p->reply), true);

    out->status = 200;
    out->content_type = CT_JSON;
    if (ok)
        out->body = mock_json_print(root, &out->body_len);
    cJSON_Delete(root);
}

/* The stream's responses: text split into pieces, or the whole call then an empty final
 * text part, the last one with finishReason and usage. Returns a cJSON array (caller
 * deletes) or NULL on OOM. */
static cJSON *stream_chunks(const struct mock_plan *p)
{
    struct mock_piece *pieces = NULL;
    size_t npieces = 0;
    bool ok = true;
    cJSON *arr = cJSON_CreateArray();

    if (!arr)
        return NULL;
    if (p->tool_name) {
        push(&ok, arr, response(&ok, p, call_parts(&ok, p), false));
        push(&ok, arr, response(&ok, p, text_parts(&ok, ""), true));
    } else if (mock_split(p->reply, strlen(p->reply), MOCK_PIECES_MIN, &pieces, &npieces) == 0) {
        for (size_t i = 0; i < npieces; i++) {
            char *s = strndup(p->reply + pieces[i].off, pieces[i].len);
            if (!s) {
                ok = false;
                break;
            }
            push(&ok, arr, response(&ok, p, text_parts(&ok, s), i + 1 == npieces));
            free(s);
        }
        free(pieces);
    } else {
        ok = false;
    }
    if (!ok) {
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

static void render_stream(const struct mock_plan *p, bool sse, struct mock_reply *out)
{
    cJSON *chunks = stream_chunks(p), *c;
    size_t n = 0, cap = (size_t)cJSON_GetArraySize(chunks);
    char **evs;

    if (!chunks)
        return;
    out->status = 200;
    if (!sse) {
        /* Without alt=sse Gemini streams one JSON array; the mock sends it whole. */
        out->content_type = CT_JSON;
        out->body = mock_json_print(chunks, &out->body_len);
        cJSON_Delete(chunks);
        return;
    }
    evs = calloc(cap ? cap : 1, sizeof(*evs));
    if (!evs) {
        cJSON_Delete(chunks);
        return;
    }
    cJSON_ArrayForEach(c, chunks)
    {
        evs[n++] = mock_sse_event(c);
    }
    cJSON_Delete(chunks);
    out->content_type = CT_SSE;
    out->events = evs;
    out->nevents = n;
    for (size_t i = 0; i < n; i++) {
        if (!evs[i]) {
            mock_reply_cleanup(out); /* the server answers 500 */
            break;
        }
    }
}

static cJSON *parse_body(const struct mock_request *rq, struct mock_reply *out)
{
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        reply_error(out, 400, "Invalid JSON payload received: the body must be a JSON object");
        return NULL;
    }
    return root;
}

static void handle_generate(const struct mock_request *rq, struct mock_plan *plan, bool stream,
                            struct mock_reply *out)
{
    char err[160];
    cJSON *root = parse_body(rq, out);
    bool sse = rq->query && strstr(rq->query, "alt=sse");
    int rc;

    if (!root)
        return;
    rc = parse_generate(root, plan, err, sizeof(err));
    cJSON_Delete(root);
    /* On OOM the reply stays empty, which the server answers with a 500. */
    if (rc == -EINVAL) {
        reply_error(out, 400, "%s", err);
    } else if (rc == 0 && mock_plan_finish(plan) == 0) {
        if (stream)
            render_stream(plan, sse, out);
        else
            render_whole(plan, out);
    }
}

/* Checks one batchEmbedContents entry; returns its text or NULL with <err> filled. */
static const char *embed_entry(const cJSON *r, const char *resource, int i, int *dims, char *err,
                               size_t errlen)
{
    const char *m = mock_json_string(r, "model");
    const cJSON *parts =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "content"), "parts");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "outputDimensionality");
    const char *text = cJSON_IsArray(parts) ? mock_json_string(parts->child, "text") : NULL;

    if (!m || strcmp(m, resource) != 0) {
        snprintf(err, errlen, "requests[%d].model: must be \"%.80s\"", i, resource);
        return NULL;
    }
    if (!text) {
        snprintf(err, errlen, "requests[%d].content.parts[0].text: required", i);
        return NULL;
    }
    *dims = MOCK_EMBED_DIMS;
    if (d) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > MOCK_EMBED_DIMS_MAX ||
            d->valuedouble != floor(d->valuedouble)) {
            snprintf(err, errlen,
                     "requests[%d].outputDimensionality: expected an integer in "
                     "[1, %d]",
                     i, MOCK_EMBED_DIMS_MAX);
            return NULL;
        }
        *dims = (int)d->valuedouble;
    }
    return text;
}

static void handle_embed(const struct mock_request *rq, const char *model, struct mock_reply *out)
{
    cJSON *root = parse_body(rq, out);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(root, "requests"), *r;
    char resource[160], err[200];
    cJSON *resp, *embs;
    bool ok = true;
    int i = 0;

    if (!root)
        return;
    snprintf(resource, sizeof(resource), "models/%s", model);
    if (!cJSON_IsArray(reqs) || !reqs->child) {
        reply_error(out, 400, "requests: expected a non-empty array");
        goto out_delete;
    }
    resp = put(&ok, cJSON_CreateObject());
    embs = put(&ok, cJSON_AddArrayToObject(resp, "embeddings"));
    cJSON_ArrayForEach(r, reqs)
    {
        int dims;
        const char *text = embed_entry(r, resource, i++, &dims, err, sizeof(err));
        float *v;
        if (!text) {
            cJSON_Delete(resp);
            reply_error(out, 400, "%s", err);
            goto out_delete;
        }
        v = malloc((size_t)dims * sizeof(*v));
        if (!v) {
            ok = false;
            break;
        }
        mock_embed(text, dims, v);
        cJSON *e = put(&ok, cJSON_CreateObject());
        cJSON *vals = put(&ok, cJSON_AddArrayToObject(e, "values"));
        for (int k = 0; k < dims; k++)
            push(&ok, vals, cJSON_CreateNumber(v[k]));
        free(v);
        push(&ok, embs, e);
    }
    out->status = 200;
    out->content_type = CT_JSON;
    if (ok)
        out->body = mock_json_print(resp, &out->body_len);
    cJSON_Delete(resp);

out_delete:
    cJSON_Delete(root);
}

/* /v1beta/models/{model}:{method}: splits the path and dispatches on the method. */
static void handle_models(const struct mock_request *rq, struct mock_reply *out)
{
    const char *name = rq->path + strlen(MODELS_PREFIX);
    const char *colon = strrchr(name, ':');
    struct mock_plan plan = {0};
    const char *method;

    if (!colon || colon == name) {
        reply_error(out, 404, "unknown method path %.100s", rq->path);
        return;
    }
    method = colon + 1;
    plan.model = strndup(name, (size_t)(colon - name));
    if (!plan.model)
        return;
    out->model = strdup(plan.model);
    plan.seq = rq->seq;
    if (strcmp(method, "generateContent") == 0)
        handle_generate(rq, &plan, false, out);
    else if (strcmp(method, "streamGenerateContent") == 0)
        handle_generate(rq, &plan, true, out);
    else if (strcmp(method, "batchEmbedContents") == 0)
        handle_embed(rq, plan.model, out);
    else
        reply_error(out, 404, "method %.60s is not supported by the mock", method);
    mock_plan_cleanup(&plan);
}

static const struct mock_route gemini_routes[] = {
    {EVHTTP_REQ_POST, MODELS_PREFIX "*", handle_models},
};

const struct mock_dialect mock_gemini_dialect = {
    .name = "gemini",
    .routes = gemini_routes,
    .nroutes = SY_ARRAY_LEN(gemini_routes),
    .error_body = mock_gemini_error_body,
};
