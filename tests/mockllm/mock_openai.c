/* tests/mockllm/mock_openai.c - the OpenAI dialect (see mock_openai.h).
 *
 * Request JSON -> struct mock_plan (mock_plan.h rules) -> OpenAI JSON or SSE events. The
 * cJSON trees built here are small and fixed in shape; every allocation result goes
 * through put(), so an OOM anywhere turns into a 500 rather than a half-built answer.
 */
#include "mock_openai.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <event2/http.h>

#include "mock_embed.h"
#include "mock_plan.h"
#include "sy_util.h"

#define CT_JSON "application/json"
#define CT_SSE "text/event-stream"

static const char *const model_ids[] = {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small",
                                        MOCK_OPENAI_DEFAULT_MODEL};

/* Records a failed cJSON allocation in *ok and passes <item> through. */
static cJSON *put(bool *ok, cJSON *item)
{
    if (!item)
        *ok = false;
    return item;
}

char *mock_openai_error_body(int status, const char *message, size_t *len)
{
    const char *type = "invalid_request_error", *code = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    bool ok = root && err;
    char *body = NULL;

    if (status == 429) {
        type = "rate_limit_exceeded";
        code = "rate_limit_exceeded";
    } else if (status >= 500) {
        type = "server_error";
    }
    put(&ok, cJSON_AddStringToObject(err, "message", message));
    put(&ok, cJSON_AddStringToObject(err, "type", type));
    put(&ok, cJSON_AddNullToObject(err, "param"));
    put(&ok,
        code ? cJSON_AddStringToObject(err, "code", code) : cJSON_AddNullToObject(err, "code"));
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
    out->body = mock_openai_error_body(status, msg, &out->body_len);
}

static void reply_json(struct mock_reply *out, cJSON *root, bool ok)
{
    out->status = 200;
    out->content_type = CT_JSON;
    if (ok)
        out->body = mock_json_print(root, &out->body_len);
    cJSON_Delete(root);
}

/* Parses a chat request into <p>. Returns 0, -EINVAL with <err> filled, or -ENOMEM. */
static int parse_chat(const cJSON *root, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    const cJSON *sopts = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    const cJSON *m, *usage;
    int i = 0;

    if (model && !cJSON_IsString(model)) {
        snprintf(err, errlen, "model: expected a string");
        return -EINVAL;
    }
    p->model = strdup(model ? model->valuestring : MOCK_OPENAI_DEFAULT_MODEL);
    if (!p->model)
        return -ENOMEM;
    if (!msgs) {
        snprintf(err, errlen, "messages: required");
        return -EINVAL;
    }
    if (!cJSON_IsArray(msgs) || !msgs->child) {
        snprintf(err, errlen, "messages: expected a non-empty array");
        return -EINVAL;
    }
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        size_t len;
        bool bad;
        char *text;

        if (!cJSON_IsObject(m)) {
            snprintf(err, errlen, "messages[%d]: expected an object", i);
            return -EINVAL;
        }
        if (!cJSON_IsString(role)) {
            snprintf(err, errlen, "messages[%d].role: expected a string", i);
            return -EINVAL;
        }
        text = mock_content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), &len, &bad);
        if (bad) {
            snprintf(err, errlen,
                     "messages[%d].content: expected a string, an array of parts or null", i);
            return -EINVAL;
        }
        if (!text)
            return -ENOMEM;
        p->prompt_tokens += mock_message_tokens(len);
        if (strcmp(role->valuestring, "user") == 0) {
            free(p->text);
            p->text = text;
        } else {
            free(text);
        }
        i++;
    }
    if (!p->text && !(p->text = strdup("")))
        return -ENOMEM;
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) {
        snprintf(err, errlen, "stream: expected a boolean");
        return -EINVAL;
    }
    p->stream = cJSON_IsTrue(stream);
    if (sopts && !cJSON_IsObject(sopts) && !cJSON_IsNull(sopts)) {
        snprintf(err, errlen, "stream_options: expected an object");
        return -EINVAL;
    }
    usage = cJSON_GetObjectItemCaseSensitive(sopts, "include_usage");
    if (usage && !cJSON_IsBool(usage)) {
        snprintf(err, errlen, "stream_options.include_usage: expected a boolean");
        return -EINVAL;
    }
    p->include_usage = cJSON_IsTrue(usage);
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools)) {
        snprintf(err, errlen, "tools: expected an array");
        return -EINVAL;
    }
    if (cJSON_IsArray(tools) && tools->child &&
        !(cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0)) {
        /* A forced {"type":"function","function":{"name":N}} choice wins over tools[0]. */
        const char *name =
            mock_json_string(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
        if (!name)
            name = mock_json_string(cJSON_GetObjectItemCaseSensitive(tools->child, "function"),
                                    "name");
        if (!name) {
            snprintf(err, errlen, "tools[0].function.name: expected a string");
            return -EINVAL;
        }
        if (!(p->tool_name = strdup(name)))
            return -ENOMEM;
    }
    return 0;
}

static void add_usage(bool *ok, cJSON *obj, const struct mock_plan *p)
{
    cJSON *u = put(ok, cJSON_AddObjectToObject(obj, "usage"));

    put(ok, cJSON_AddNumberToObject(u, "prompt_tokens", (double)p->prompt_tokens));
    put(ok, cJSON_AddNumberToObject(u, "completion_tokens", (double)p->completion_tokens));
    put(ok, cJSON_AddNumberToObject(u, "total_tokens",
                                    (double)(p->prompt_tokens + p->completion_tokens)));
}

/* The members every completion object starts with. */
static cJSON *completion_head(bool *ok, const struct mock_plan *p, const char *object)
{
    cJSON *o = put(ok, cJSON_CreateObject());
    char id[48];

    snprintf(id, sizeof(id), "chatcmpl-mock-%llu", (unsigned long long)p->seq);
    put(ok, cJSON_AddStringToObject(o, "id", id));
    put(ok, cJSON_AddStringToObject(o, "object", object));
    put(ok, cJSON_AddNumberToObject(o, "created", (double)p->created));
    put(ok, cJSON_AddStringToObject(o, "model", p->model));
    return o;
}

/* {"index":0,"id":...,"type":"function","function":{"name":...,"arguments":<args>}} */
static cJSON *tool_call(bool *ok, const struct mock_plan *p, const char *args, bool with_index)
{
    cJSON *tc = put(ok, cJSON_CreateObject());
    cJSON *fn;
    char id[48];

    snprintf(id, sizeof(id), "call_mock_%llu", (unsigned long long)p->seq);
    if (with_index)
        put(ok, cJSON_AddNumberToObject(tc, "index", 0));
    put(ok, cJSON_AddStringToObject(tc, "id", id));
    put(ok, cJSON_AddStringToObject(tc, "type", "function"));
    fn = put(ok, cJSON_AddObjectToObject(tc, "function"));
    put(ok, cJSON_AddStringToObject(fn, "name", p->tool_name));
    put(ok, cJSON_AddStringToObject(fn, "arguments", args));
    return tc;
}

static void render_chat(const struct mock_plan *p, struct mock_reply *out)
{
    bool ok = true;
    cJSON *root = completion_head(&ok, p, "chat.completion");
    cJSON *choices = put(&ok, cJSON_AddArrayToObject(root, "choices"));
    cJSON *choice = put(&ok, cJSON_CreateObject());
    cJSON *msg;

    if (!cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        ok = false;
    }
    put(&ok, cJSON_AddNumberToObject(choice, "index", 0));
    msg = put(&ok, cJSON_AddObjectToObject(choice, "message"));
    put(&ok, cJSON_AddStringToObject(msg, "role", "assistant"));
    if (p->tool_name) {
        cJSON *calls = put(&ok, cJSON_CreateArray());
        put(&ok, cJSON_AddNullToObject(msg, "content"));
        if (!cJSON_AddItemToObject(msg, "tool_calls", calls)) {
            cJSON_Delete(calls);
            ok = false;
            calls = NULL;
        }
        cJSON *tc = tool_call(&ok, p, p->tool_args, false);
        if (!cJSON_AddItemToArray(calls, tc)) {
            cJSON_Delete(tc);
            ok = false;
        }
    } else {
        put(&ok, cJSON_AddStringToObject(msg, "content", p->reply));
    }
    put(&ok, cJSON_AddNullToObject(choice, "logprobs"));
    put(&ok,
        cJSON_AddStringToObject(choice, "finish_reason", p->tool_name ? "tool_calls" : "stop"));
    add_usage(&ok, root, p);
    reply_json(out, root, ok);
}

/* One chat.completion.chunk event carrying <delta> (taken) and <finish> (NULL: null). */
static char *chunk_event(const struct mock_plan *p, cJSON *delta, const char *finish)
{
    bool ok = delta != NULL;
    cJSON *root = completion_head(&ok, p, "chat.completion.chunk");
    cJSON *choices = put(&ok, cJSON_AddArrayToObject(root, "choices"));
    cJSON *choice = put(&ok, cJSON_CreateObject());
    char *ev = NULL;

    if (!cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        choice = NULL;
        ok = false;
    }
    put(&ok, cJSON_AddNumberToObject(choice, "index", 0));
    if (!cJSON_AddItemToObject(choice, "delta", delta)) {
        cJSON_Delete(delta);
        ok = false;
    }
    put(&ok, cJSON_AddNullToObject(choice, "logprobs"));
    put(&ok, finish ? cJSON_AddStringToObject(choice, "finish_reason", finish)
                    : cJSON_AddNullToObject(choice, "finish_reason"));
    if (p->include_usage)
        put(&ok, cJSON_AddNullToObject(root, "usage"));
    if (ok)
        ev = mock_sse_event(root);
    cJSON_Delete(root);
    return ev;
}

/* The final usage event: "choices":[] and the usage object. */
static char *usage_event(const struct mock_plan *p)
{
    bool ok = true;
    cJSON *root = completion_head(&ok, p, "chat.completion.chunk");
    char *ev = NULL;

    put(&ok, cJSON_AddArrayToObject(root, "choices"));
    add_usage(&ok, root, p);
    if (ok)
        ev = mock_sse_event(root);
    cJSON_Delete(root);
    return ev;
}

/* {"content":<piece>} or {"tool_calls":[{"index":0,"function":{"arguments":<piece>}}]} */
static cJSON *piece_delta(const struct mock_plan *p, const char *s, const struct mock_piece *pc)
{
    bool ok = true;
    char *piece = sy_xstrndup(s + pc->off, pc->len);
    cJSON *d = put(&ok, cJSON_CreateObject());

    if (p->tool_name) {
        cJSON *calls = put(&ok, cJSON_AddArrayToObject(d, "tool_calls"));
        cJSON *tc = put(&ok, cJSON_CreateObject());
        if (!cJSON_AddItemToArray(calls, tc)) {
            cJSON_Delete(tc);
            tc = NULL;
            ok = false;
        }
        put(&ok, cJSON_AddNumberToObject(tc, "index", 0));
        cJSON *fn = put(&ok, cJSON_AddObjectToObject(tc, "function"));
        put(&ok, cJSON_AddStringToObject(fn, "arguments", piece));
    } else {
        put(&ok, cJSON_AddStringToObject(d, "content", piece));
    }
    free(piece);
    if (!ok) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* The first delta: the role, plus the tool call's id and name when calling a tool. */
static cJSON *first_delta(const struct mock_plan *p)
{
    bool ok = true;
    cJSON *d = put(&ok, cJSON_CreateObject());

    put(&ok, cJSON_AddStringToObject(d, "role", "assistant"));
    if (p->tool_name) {
        cJSON *calls, *tc;
        put(&ok, cJSON_AddNullToObject(d, "content"));
        calls = put(&ok, cJSON_AddArrayToObject(d, "tool_calls"));
        tc = tool_call(&ok, p, "", true);
        if (!cJSON_AddItemToArray(calls, tc)) {
            cJSON_Delete(tc);
            ok = false;
        }
    } else {
        put(&ok, cJSON_AddStringToObject(d, "content", ""));
    }
    if (!ok) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

static void render_chat_stream(const struct mock_plan *p, struct mock_reply *out)
{
    const char *s = p->tool_name ? p->tool_args : p->reply;
    struct mock_piece *pieces = NULL;
    size_t npieces = 0, n = 0, cap;
    char **evs;

    if (mock_split(s, strlen(s), MOCK_PIECES_MIN, &pieces, &npieces) < 0)
        return;
    cap = npieces + 4; /* first delta, pieces, finish, usage, [DONE] */
    evs = calloc(cap, sizeof(*evs));
    if (!evs)
        goto out_free_pieces;
    evs[n++] = chunk_event(p, first_delta(p), NULL);
    for (size_t i = 0; i < npieces; i++)
        evs[n++] = chunk_event(p, piece_delta(p, s, &pieces[i]), NULL);
    evs[n++] = chunk_event(p, cJSON_CreateObject(), p->tool_name ? "tool_calls" : "stop");
    if (p->include_usage)
        evs[n++] = usage_event(p);
    evs[n++] = strdup("data: [DONE]\n\n");
    out->status = 200;
    out->content_type = CT_SSE;
    out->events = evs;
    out->nevents = n;
    for (size_t i = 0; i < n; i++) {
        if (!evs[i]) {
            mock_reply_cleanup(out); /* the server answers 500 */
            break;
        }
    }

out_free_pieces:
    free(pieces);
}

static cJSON *parse_body(const struct mock_request *rq, struct mock_reply *out)
{
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);

    if (!root) {
        reply_error(out, 400, "request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        reply_error(out, 400, "request body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void handle_chat(const struct mock_request *rq, struct mock_reply *out)
{
    struct mock_plan plan = {0};
    char err[160];
    cJSON *root = parse_body(rq, out);
    int rc;

    if (!root)
        return;
    plan.seq = rq->seq;
    plan.created = (long)time(NULL);
    rc = parse_chat(root, &plan, err, sizeof(err));
    cJSON_Delete(root);
    if (plan.model)
        out->model = strdup(plan.model);
    /* On OOM the reply stays empty, which the server answers with a 500. */
    if (rc == -EINVAL) {
        reply_error(out, 400, "%s", err);
    } else if (rc == 0 && mock_plan_finish(&plan) == 0) {
        if (plan.stream)
            render_chat_stream(&plan, out);
        else
            render_chat(&plan, out);
    }
    mock_plan_cleanup(&plan);
}

static cJSON *embedding_item(bool *ok, const char *text, int index, int dims, bool base64)
{
    cJSON *item = put(ok, cJSON_CreateObject());
    float *v = malloc((size_t)dims * sizeof(*v));

    if (!v) {
        *ok = false;
        return item;
    }
    mock_embed(text, dims, v);
    put(ok, cJSON_AddStringToObject(item, "object", "embedding"));
    put(ok, cJSON_AddNumberToObject(item, "index", index));
    if (base64) {
        char *s = mock_embed_base64(v, dims);
        put(ok, s ? cJSON_AddStringToObject(item, "embedding", s) : NULL);
        free(s);
    } else {
        cJSON *arr = put(ok, cJSON_AddArrayToObject(item, "embedding"));
        for (int i = 0; i < dims; i++) {
            cJSON *num = put(ok, cJSON_CreateNumber(v[i]));
            if (!cJSON_AddItemToArray(arr, num)) {
                cJSON_Delete(num);
                *ok = false;
            }
        }
    }
    free(v);
    return item;
}

static void handle_embeddings(const struct mock_request *rq, struct mock_reply *out)
{
    cJSON *root = parse_body(rq, out);
    const cJSON *input, *model, *dims_j, *fmt, *it;
    cJSON *resp, *data;
    bool ok = true, base64 = false;
    int dims = MOCK_EMBED_DIMS, index = 0;
    long tokens = 0;

    if (!root)
        return;
    input = cJSON_GetObjectItemCaseSensitive(root, "input");
    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    dims_j = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
    fmt = cJSON_GetObjectItemCaseSensitive(root, "encoding_format");
    if (cJSON_IsString(model))
        out->model = strdup(model->valuestring);
    if (model && !cJSON_IsString(model)) {
        reply_error(out, 400, "model: expected a string");
        goto out_delete;
    }
    if (!cJSON_IsString(input) && !(cJSON_IsArray(input) && input->child)) {
        reply_error(out, 400, "input: expected a string or a non-empty array of strings");
        goto out_delete;
    }
    cJSON_ArrayForEach(it, input)
    {
        if (!cJSON_IsString(it)) {
            reply_error(out, 400, "input[%d]: expected a string", index);
            goto out_delete;
        }
        index++;
    }
    if (dims_j && (!cJSON_IsNumber(dims_j) || dims_j->valuedouble < 1 ||
                   dims_j->valuedouble > MOCK_EMBED_DIMS_MAX ||
                   dims_j->valuedouble != floor(dims_j->valuedouble))) {
        reply_error(out, 400, "dimensions: expected an integer in [1, %d]", MOCK_EMBED_DIMS_MAX);
        goto out_delete;
    }
    if (dims_j)
        dims = (int)dims_j->valuedouble;
    if (fmt && !(cJSON_IsString(fmt) && (strcmp(fmt->valuestring, "float") == 0 ||
                                         strcmp(fmt->valuestring, "base64") == 0))) {
        reply_error(out, 400, "encoding_format: expected \"float\" or \"base64\"");
        goto out_delete;
    }
    base64 = fmt && strcmp(fmt->valuestring, "base64") == 0;

    resp = put(&ok, cJSON_CreateObject());
    put(&ok, cJSON_AddStringToObject(resp, "object", "list"));
    data = put(&ok, cJSON_AddArrayToObject(resp, "data"));
    index = 0;
    if (cJSON_IsString(input)) {
        tokens = mock_tokens(strlen(input->valuestring));
        cJSON *item = embedding_item(&ok, input->valuestring, 0, dims, base64);
        if (!cJSON_AddItemToArray(data, item)) {
            cJSON_Delete(item);
            ok = false;
        }
    }
    cJSON_ArrayForEach(it, input)
    {
        cJSON *item = embedding_item(&ok, it->valuestring, index++, dims, base64);
        tokens += mock_tokens(strlen(it->valuestring));
        if (!cJSON_AddItemToArray(data, item)) {
            cJSON_Delete(item);
            ok = false;
        }
    }
    put(&ok, cJSON_AddStringToObject(resp, "model",
                                     model ? model->valuestring : MOCK_OPENAI_DEFAULT_MODEL));
    cJSON *usage = put(&ok, cJSON_AddObjectToObject(resp, "usage"));
    put(&ok, cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens));
    put(&ok, cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens));
    reply_json(out, resp, ok);

out_delete:
    cJSON_Delete(root);
}

static void handle_models(const struct mock_request *rq, struct mock_reply *out)
{
    bool ok = true;
    cJSON *root = put(&ok, cJSON_CreateObject());
    cJSON *data;

    (void)rq;
    put(&ok, cJSON_AddStringToObject(root, "object", "list"));
    data = put(&ok, cJSON_AddArrayToObject(root, "data"));
    for (size_t i = 0; i < SY_ARRAY_LEN(model_ids); i++) {
        cJSON *m = put(&ok, cJSON_CreateObject());
        put(&ok, cJSON_AddStringToObject(m, "id", model_ids[i]));
        put(&ok, cJSON_AddStringToObject(m, "object", "model"));
        put(&ok, cJSON_AddNumberToObject(m, "created", 1700000000));
        put(&ok, cJSON_AddStringToObject(m, "owned_by", "switchyard-mock"));
        if (!cJSON_AddItemToArray(data, m)) {
            cJSON_Delete(m);
            ok = false;
        }
    }
    reply_json(out, root, ok);
}

static const struct mock_route openai_routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", handle_chat},
    {EVHTTP_REQ_POST, "/v1/embeddings", handle_embeddings},
    {EVHTTP_REQ_GET, "/v1/models", handle_models},
};

const struct mock_dialect mock_openai_dialect = {
    .name = "openai",
    .routes = openai_routes,
    .nroutes = SY_ARRAY_LEN(openai_routes),
    .error_body = mock_openai_error_body,
};
