/* tests/mockllm/mock_anthropic.c - the Anthropic dialect (see mock_anthropic.h).
 *
 * Request JSON -> struct mock_plan (mock_plan.h rules) -> an Anthropic message or its SSE
 * events. The request is checked the way the real API checks it where a gateway can get it
 * wrong: model and max_tokens are required, roles are only user and assistant (system goes
 * in "system"), and content blocks must be well formed, so a translation bug shows up as
 * a 400 in the tests rather than as a silently different echo. The last user message with
 * text is echoed (a message of tool results only is not a new question); the system prompt
 * counts as one prompt message. Every cJSON allocation goes through put(), so an OOM
 * anywhere turns into a 500 rather than a half-built answer.
 */
#include "mock_anthropic.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <event2/http.h>

#include "mock_plan.h"
#include "sy_util.h"

#define CT_JSON "application/json"
#define CT_SSE "text/event-stream"

static cJSON *put(bool *ok, cJSON *item)
{
    if (!item)
        *ok = false;
    return item;
}

/* Adds <item> (taken) to <arr>. */
static void append(bool *ok, cJSON *arr, cJSON *item)
{
    if (!item || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        *ok = false;
    }
}

static const char *error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 504:
        return "timeout_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

char *mock_anthropic_error_body(int status, const char *message, size_t *len)
{
    bool ok = true;
    cJSON *root = put(&ok, cJSON_CreateObject());
    cJSON *err;
    char *body = NULL;

    put(&ok, cJSON_AddStringToObject(root, "type", "error"));
    err = put(&ok, cJSON_AddObjectToObject(root, "error"));
    put(&ok, cJSON_AddStringToObject(err, "type", error_type(status)));
    put(&ok, cJSON_AddStringToObject(err, "message", message));
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
    out->body = mock_anthropic_error_body(status, msg, &out->body_len);
}

/* Checks one content block as the API does. Returns 0, or -EINVAL with <err> filled. */
static int check_block(const cJSON *b, int i, int j, char *err, size_t errlen)
{
    const char *type = mock_json_string(b, "type");

    if (!type) {
        snprintf(err, errlen, "messages.%d.content.%d.type: Field required", i, j);
        return -EINVAL;
    }
    if (strcmp(type, "text") == 0) {
        const char *t = mock_json_string(b, "text");
        if (!t || !*t) {
            snprintf(err, errlen, "messages.%d.content.%d: text content blocks must be non-empty",
                     i, j);
            return -EINVAL;
        }
    } else if (strcmp(type, "image") == 0) {
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(b, "source");
        const char *st = mock_json_string(src, "type");
        if (!st || (strcmp(st, "base64") == 0
                        ? !mock_json_string(src, "media_type") || !mock_json_string(src, "data")
                        : strcmp(st, "url") != 0 || !mock_json_string(src, "url"))) {
            snprintf(err, errlen, "messages.%d.content.%d.source: invalid image source", i, j);
            return -EINVAL;
        }
    } else if (strcmp(type, "tool_use") == 0) {
        if (!mock_json_string(b, "id") || !mock_json_string(b, "name") ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "input"))) {
            snprintf(err, errlen, "messages.%d.content.%d: tool_use needs id, name and input", i,
                     j);
            return -EINVAL;
        }
    } else if (strcmp(type, "tool_result") == 0) {
        if (!mock_json_string(b, "tool_use_id")) {
            snprintf(err, errlen, "messages.%d.content.%d.tool_use_id: Field required", i, j);
            return -EINVAL;
        }
    } else {
        snprintf(err, errlen, "messages.%d.content.%d.type: unknown block type '%.40s'", i, j,
                 type);
        return -EINVAL;
    }
    return 0;
}

/* Whether a message's content carries text the mock should echo. */
static bool has_text(const cJSON *content)
{
    const cJSON *b;

    if (cJSON_IsString(content))
        return true;
    cJSON_ArrayForEach(b, content)
    {
        if (mock_json_string(b, "text"))
            return true;
    }
    return false;
}

static int parse_messages(const cJSON *msgs, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *m;
    int i = 0;

    if (!cJSON_IsArray(msgs) || !msgs->child) {
        snprintf(err, errlen, "messages: %s",
                 msgs ? "expected a non-empty array" : "Field required");
        return -EINVAL;
    }
    cJSON_ArrayForEach(m, msgs)
    {
        const char *role = mock_json_string(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const cJSON *b;
        size_t len;
        bool bad;
        char *text;
        int j = 0;

        if (!cJSON_IsObject(m) || !role ||
            (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            snprintf(err, errlen, "messages.%d.role: Input should be 'user' or 'assistant'", i);
            return -EINVAL;
        }
        if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
            snprintf(err, errlen, "messages.%d.content: expected a string or a list of blocks", i);
            return -EINVAL;
        }
        if (cJSON_IsString(content))
            content = NULL; /* no blocks to check */
        cJSON_ArrayForEach(b, content)
        {
            if (check_block(b, i, j++, err, errlen) < 0)
                return -EINVAL;
        }
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        text = mock_content_text(content, &len, &bad);
        if (!text)
            return -ENOMEM;
        p->prompt_tokens += mock_message_tokens(len);
        if (strcmp(role, "user") == 0 && has_text(content)) {
            free(p->text);
            p->text = text;
        } else {
            free(text);
        }
        i++;
    }
    return 0;
}

/* The tool the mock calls: the forced one, else the first; none for tool_choice none. */
static int parse_tools(const cJSON *root, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(root, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    const char *ctype = mock_json_string(choice, "type");
    const char *name;

    if (tools && !cJSON_IsArray(tools)) {
        snprintf(err, errlen, "tools: expected a list");
        return -EINVAL;
    }
    if (choice && (!ctype || (strcmp(ctype, "auto") != 0 && strcmp(ctype, "any") != 0 &&
                              strcmp(ctype, "tool") != 0 && strcmp(ctype, "none") != 0))) {
        snprintf(err, errlen, "tool_choice.type: expected auto, any, tool or none");
        return -EINVAL;
    }
    if (!cJSON_IsArray(tools) || !tools->child || (ctype && strcmp(ctype, "none") == 0))
        return 0;
    name = ctype && strcmp(ctype, "tool") == 0 ? mock_json_string(choice, "name") : NULL;
    if (!name)
        name = mock_json_string(tools->child, "name");
    if (!name) {
        snprintf(err, errlen, "tools.0.name: Field required");
        return -EINVAL;
    }
    p->tool_name = strdup(name);
    return p->tool_name ? 0 : -ENOMEM;
}

/* Parses a messages request into <p>. Returns 0, -EINVAL with <err> filled, or -ENOMEM. */
static int parse_request(const cJSON *root, struct mock_plan *p, char *err, size_t errlen)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "system");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(root, "stream");
    int rc;

    if (!cJSON_IsString(model)) {
        snprintf(err, errlen, "model: Field required");
        return -EINVAL;
    }
    if (!(p->model = strdup(model->valuestring)))
        return -ENOMEM;
    if (!cJSON_IsNumber(max) || max->valuedouble < 1 ||
        max->valuedouble != floor(max->valuedouble)) {
        snprintf(err, errlen, "max_tokens: Field required (a positive integer)");
        return -EINVAL;
    }
    if (system) {
        size_t len;
        bool bad;
        char *text = mock_content_text(system, &len, &bad);
        if (bad) {
            snprintf(err, errlen, "system: expected a string or a list of text blocks");
            return -EINVAL;
        }
        if (!text)
            return -ENOMEM;
        free(text);
        p->prompt_tokens += mock_message_tokens(len);
    }
    if ((rc = parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), p, err, errlen)) <
        0)
        return rc;
    if (!p->text && !(p->text = strdup("")))
        return -ENOMEM;
    if (stream && !cJSON_IsBool(stream)) {
        snprintf(err, errlen, "stream: expected a boolean");
        return -EINVAL;
    }
    p->stream = cJSON_IsTrue(stream);
    return parse_tools(root, p, err, errlen);
}

/* {"input_tokens","cache_creation_input_tokens","cache_read_input_tokens","output_tokens"} */
static void add_usage(bool *ok, cJSON *obj, const struct mock_plan *p, long output)
{
    cJSON *u = put(ok, cJSON_AddObjectToObject(obj, "usage"));

    put(ok, cJSON_AddNumberToObject(u, "input_tokens", (double)p->prompt_tokens));
    put(ok, cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0));
    put(ok, cJSON_AddNumberToObject(u, "cache_read_input_tokens", 0));
    put(ok, cJSON_AddNumberToObject(u, "output_tokens", (double)output));
}

static void ids(const struct mock_plan *p, char *msg_id, char *tool_id, size_t n)
{
    snprintf(msg_id, n, "msg_mock_%llu", (unsigned long long)p->seq);
    snprintf(tool_id, n, "toolu_mock_%llu", (unsigned long long)p->seq);
}

/* The message object; <whole>: with its content and final usage, else as message_start. */
static cJSON *message(bool *ok, const struct mock_plan *p, bool whole)
{
    cJSON *m = put(ok, cJSON_CreateObject());
    cJSON *content;
    char msg_id[48], tool_id[48];

    ids(p, msg_id, tool_id, sizeof(msg_id));
    put(ok, cJSON_AddStringToObject(m, "id", msg_id));
    put(ok, cJSON_AddStringToObject(m, "type", "message"));
    put(ok, cJSON_AddStringToObject(m, "role", "assistant"));
    put(ok, cJSON_AddStringToObject(m, "model", p->model));
    content = put(ok, cJSON_AddArrayToObject(m, "content"));
    if (whole && p->tool_name) {
        cJSON *b = put(ok, cJSON_CreateObject());
        cJSON *input = put(ok, cJSON_Parse(p->tool_args));
        put(ok, cJSON_AddStringToObject(b, "type", "tool_use"));
        put(ok, cJSON_AddStringToObject(b, "id", tool_id));
        put(ok, cJSON_AddStringToObject(b, "name", p->tool_name));
        if (!input || !cJSON_AddItemToObject(b, "input", input)) {
            cJSON_Delete(input);
            *ok = false;
        }
        append(ok, content, b);
    } else if (whole) {
        cJSON *b = put(ok, cJSON_CreateObject());
        put(ok, cJSON_AddStringToObject(b, "type", "text"));
        put(ok, cJSON_AddStringToObject(b, "text", p->reply));
        append(ok, content, b);
    }
    if (whole)
        put(ok, cJSON_AddStringToObject(m, "stop_reason", p->tool_name ? "tool_use" : "end_turn"));
    else
        put(ok, cJSON_AddNullToObject(m, "stop_reason"));
    put(ok, cJSON_AddNullToObject(m, "stop_sequence"));
    add_usage(ok, m, p, whole ? p->completion_tokens : 1);
    return m;
}

static void render_message(const struct mock_plan *p, struct mock_reply *out)
{
    bool ok = true;
    cJSON *m = message(&ok, p, true);

    out->status = 200;
    out->content_type = CT_JSON;
    if (ok)
        out->body = mock_json_print(m, &out->body_len);
    cJSON_Delete(m);
}

/* "event: <type>\ndata: <json>\n\n" for <ev> (deleted here); NULL when !ok or on OOM. */
static char *named_event(cJSON *ev, bool ok)
{
    const char *type = mock_json_string(ev, "type");
    char *json = ok && type ? cJSON_PrintUnformatted(ev) : NULL;
    char *s = NULL;
    size_t n;

    if (json) {
        n = strlen("event: \ndata: \n\n") + strlen(type) + strlen(json) + 1;
        s = malloc(n);
        if (s)
            snprintf(s, n, "event: %s\ndata: %s\n\n", type, json);
    }
    cJSON_free(json);
    cJSON_Delete(ev);
    return s;
}

/* An event {"type":<type>} to which the caller adds members. */
static cJSON *event_of(bool *ok, const char *type)
{
    cJSON *ev = put(ok, cJSON_CreateObject());
    put(ok, cJSON_AddStringToObject(ev, "type", type));
    return ev;
}

static char *ev_message_start(const struct mock_plan *p)
{
    bool ok = true;
    cJSON *ev = event_of(&ok, "message_start");
    cJSON *m = message(&ok, p, false);

    if (!m || !cJSON_AddItemToObject(ev, "message", m)) {
        cJSON_Delete(m);
        ok = false;
    }
    return named_event(ev, ok);
}

static char *ev_block_start(const struct mock_plan *p)
{
    bool ok = true;
    cJSON *ev = event_of(&ok, "content_block_start");
    cJSON *b;
    char msg_id[48], tool_id[48];

    ids(p, msg_id, tool_id, sizeof(msg_id));
    put(&ok, cJSON_AddNumberToObject(ev, "index", 0));
    b = put(&ok, cJSON_AddObjectToObject(ev, "content_block"));
    if (p->tool_name) {
        put(&ok, cJSON_AddStringToObject(b, "type", "tool_use"));
        put(&ok, cJSON_AddStringToObject(b, "id", tool_id));
        put(&ok, cJSON_AddStringToObject(b, "name", p->tool_name));
        put(&ok, cJSON_AddObjectToObject(b, "input"));
    } else {
        put(&ok, cJSON_AddStringToObject(b, "type", "text"));
        put(&ok, cJSON_AddStringToObject(b, "text", ""));
    }
    return named_event(ev, ok);
}

/* A text_delta or input_json_delta carrying <len> bytes of <s>. */
static char *ev_delta(const struct mock_plan *p, const char *s, size_t len)
{
    bool ok = true;
    cJSON *ev = event_of(&ok, "content_block_delta");
    cJSON *d;
    char *piece = sy_xstrndup(s, len);

    put(&ok, cJSON_AddNumberToObject(ev, "index", 0));
    d = put(&ok, cJSON_AddObjectToObject(ev, "delta"));
    put(&ok, cJSON_AddStringToObject(d, "type", p->tool_name ? "input_json_delta" : "text_delta"));
    put(&ok, cJSON_AddStringToObject(d, p->tool_name ? "partial_json" : "text", piece));
    free(piece);
    return named_event(ev, ok);
}

static char *ev_simple(const char *type, bool with_index)
{
    bool ok = true;
    cJSON *ev = event_of(&ok, type);

    if (with_index)
        put(&ok, cJSON_AddNumberToObject(ev, "index", 0));
    return named_event(ev, ok);
}

static char *ev_message_delta(const struct mock_plan *p)
{
    bool ok = true;
    cJSON *ev = event_of(&ok, "message_delta");
    cJSON *d = put(&ok, cJSON_AddObjectToObject(ev, "delta"));
    cJSON *u;

    put(&ok, cJSON_AddStringToObject(d, "stop_reason", p->tool_name ? "tool_use" : "end_turn"));
    put(&ok, cJSON_AddNullToObject(d, "stop_sequence"));
    u = put(&ok, cJSON_AddObjectToObject(ev, "usage"));
    put(&ok, cJSON_AddNumberToObject(u, "output_tokens", (double)p->completion_tokens));
    return named_event(ev, ok);
}

/* message_start, content_block_start, ping, deltas (a tool's input starts with an empty
 * fragment, as the API's does), content_block_stop, message_delta, message_stop. */
static void render_stream(const struct mock_plan *p, struct mock_reply *out)
{
    const char *s = p->tool_name ? p->tool_args : p->reply;
    struct mock_piece *pieces = NULL;
    size_t npieces = 0, n = 0, cap;
    char **evs;

    if (mock_split(s, strlen(s), MOCK_PIECES_MIN, &pieces, &npieces) < 0)
        return;
    cap = npieces + 7;
    evs = calloc(cap, sizeof(*evs));
    if (!evs)
        goto out_free_pieces;
    evs[n++] = ev_message_start(p);
    evs[n++] = ev_block_start(p);
    evs[n++] = ev_simple("ping", false);
    if (p->tool_name)
        evs[n++] = ev_delta(p, "", 0);
    for (size_t i = 0; i < npieces; i++)
        evs[n++] = ev_delta(p, s + pieces[i].off, pieces[i].len);
    evs[n++] = ev_simple("content_block_stop", true);
    evs[n++] = ev_message_delta(p);
    evs[n++] = ev_simple("message_stop", false);
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

static void handle_messages(const struct mock_request *rq, struct mock_reply *out)
{
    struct mock_plan plan = {0};
    char err[160];
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    int rc;

    if (!cJSON_IsObject(root)) {
        reply_error(out, 400, "request body must be a JSON object");
        cJSON_Delete(root);
        return;
    }
    plan.seq = rq->seq;
    plan.created = (long)time(NULL);
    rc = parse_request(root, &plan, err, sizeof(err));
    cJSON_Delete(root);
    if (plan.model)
        out->model = strdup(plan.model);
    /* On OOM the reply stays empty, which the server answers with a 500. */
    if (rc == -EINVAL) {
        reply_error(out, 400, "%s", err);
    } else if (rc == 0 && mock_plan_finish(&plan) == 0) {
        if (plan.stream)
            render_stream(&plan, out);
        else
            render_message(&plan, out);
    }
    mock_plan_cleanup(&plan);
}

static const struct mock_route anthropic_routes[] = {
    {EVHTTP_REQ_POST, "/v1/messages", handle_messages},
};

const struct mock_dialect mock_anthropic_dialect = {
    .name = "anthropic",
    .routes = anthropic_routes,
    .nroutes = SY_ARRAY_LEN(anthropic_routes),
    .error_body = mock_anthropic_error_body,
};
