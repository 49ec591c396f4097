/* dataplane/ingress/dp_ingress_anthropic.c - the Anthropic Messages API (POST /v1/messages)
 * as a client dialect over the gateway's OpenAI-shaped core.
 *
 * to_openai turns a Messages request into an OpenAI chat request: the system prompt becomes
 * the first message, tool_use blocks become assistant tool_calls, tool_result blocks become
 * "tool" messages, images become image_url parts. What Anthropic would refuse (no
 * max_tokens, a bad block) is refused with a 400 naming the field. from_openai and the
 * stream translator turn OpenAI answers back into an Anthropic message and the Anthropic
 * SSE event sequence (message_start, content blocks, message_delta, message_stop).
 * docs/providers.md ("Anthropic ingress") lists every mapping and what is dropped.
 *
 * Translations are pure functions of their inputs; a stream's state belongs to one exchange
 * and is freed by its owner. Any worker thread.
 */
#include "dp_ingress.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_json.h"
#include "sy_util.h"

/* Tool calls one streamed answer may open; more is refused with an error event. */
#define DP_ANTHROPIC_MAX_STREAM_TOOLS 128
/* Token counts above this are nonsense from the provider and read as unknown. */
#define DP_ANTHROPIC_MAX_TOKENS_COUNT 1e15

/* ---- small helpers ---------------------------------------------------------------------- */

/* A growable byte buffer for joined texts and SSE frames; <oom> latches a failed growth. */
struct abuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void abuf_add(struct abuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void abuf_adds(struct abuf *b, const char *s)
{
    abuf_add(b, s, strlen(s));
}

static const char *str_item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A non-negative token count, or -1 when absent or absurd. */
static int64_t count_item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
        v->valuedouble > DP_ANTHROPIC_MAX_TOKENS_COUNT)
        return -1;
    return (int64_t)v->valuedouble;
}

/* Reads an OpenAI "usage" object; fields it lacks stay as they are. */
static void read_usage(const cJSON *usage, struct dp_usage *u)
{
    const cJSON *details;
    int64_t n;

    if (!cJSON_IsObject(usage))
        return;
    if ((n = count_item(usage, "prompt_tokens")) >= 0)
        u->prompt_tokens = n;
    if ((n = count_item(usage, "completion_tokens")) >= 0)
        u->completion_tokens = n;
    details = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details");
    if ((n = count_item(details, "cached_tokens")) >= 0)
        u->cached_tokens = n;
}

/* Anthropic's input_tokens: the prompt tokens that were not read from a cache. */
static int64_t fresh_input(const struct dp_usage *u)
{
    int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
    if (u->prompt_tokens < 0)
        return -1;
    return u->prompt_tokens > cached ? u->prompt_tokens - cached : 0;
}

/* OpenAI finish_reason -> Anthropic stop_reason (docs/providers.md has the table). */
static const char *stop_reason_for(const char *finish, bool has_tool_use)
{
    if (finish && (!strcmp(finish, "tool_calls") || !strcmp(finish, "function_call")))
        return "tool_use";
    if (finish && !strcmp(finish, "length"))
        return "max_tokens";
    if (finish && !strcmp(finish, "content_filter"))
        return "refusal";
    /* "stop" and anything unknown; a provider that says "stop" after calling a tool still
     * expects the tool's result, as Anthropic's tool_use says. */
    return has_tool_use ? "tool_use" : "end_turn";
}

/* The Anthropic error type for an HTTP status (docs.anthropic.com/en/api/errors). */
static const char *error_type_for_status(int status)
{
    switch (status) {
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

/* The Anthropic error type for an OpenAI error object met in a stream. */
static const char *error_type_for_openai(const char *type, const char *code)
{
    static const struct {
        const char *needle, *atype;
    } map[] = {
        {"rate_limit", "rate_limit_error"},
        {"overloaded", "overloaded_error"},
        {"timeout", "timeout_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"not_found", "not_found_error"},
        {"invalid_request_error", "invalid_request_error"},
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(map); i++) {
        if ((type && strstr(type, map[i].needle)) || (code && strstr(code, map[i].needle)))
            return map[i].atype;
    }
    return "api_error";
}

/* {"type":"error","error":{"type":<atype>,"message":<message>}} as compact JSON, or NULL. */
static char *error_json(const char *atype, const char *message)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e;
    char *out;

    cJSON_AddStringToObject(root, "type", "error");
    e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "type", atype);
    cJSON_AddStringToObject(e, "message", message ? message : "");
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* ---- request: Anthropic -> OpenAI ------------------------------------------------------- */

/* Fills <err> with a 400 for field <param> (the message starts with it). Returns -EINVAL. */
/* vsnprintf into a fixed buffer: truncation is expected and harmless for field paths and
 * messages (and keeps -Wformat-truncation quiet where the compiler cannot bound them). */
static void fmt_into(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fmt_into(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static int bad(struct dp_ingress_error *err, const char *code, const char *param, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));

static int bad(struct dp_ingress_error *err, const char *code, const char *param, const char *fmt,
               ...)
{
    char text[sizeof(err->message)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    err->status = 400;
    fmt_into(err->code, sizeof(err->code), "%s", code);
    fmt_into(err->param, sizeof(err->param), "%s", param ? param : "");
    if (param)
        fmt_into(err->message, sizeof(err->message), "%s: %s", param, text);
    else
        fmt_into(err->message, sizeof(err->message), "%s", text);
    return -EINVAL;
}

static int oom(struct dp_ingress_error *err)
{
    err->status = 500;
    snprintf(err->code, sizeof(err->code), "out_of_memory");
    err->param[0] = '\0';
    snprintf(err->message, sizeof(err->message), "out of memory translating the request");
    return -ENOMEM;
}

/* Appends the texts of an array of text blocks at <path> to <b>, separated by <sep>. */
static int join_text_blocks(const cJSON *arr, const char *path, const char *sep, struct abuf *b,
                            struct dp_ingress_error *err)
{
    const cJSON *blk;
    int i = 0;

    cJSON_ArrayForEach(blk, arr)
    {
        char p[128];
        const char *type = str_item(blk, "type");
        const char *text = str_item(blk, "text");

        fmt_into(p, sizeof(p), "%s[%d]", path, i);
        if (!cJSON_IsObject(blk))
            return bad(err, "invalid_type", p, "expected a text block object");
        if (!type || strcmp(type, "text"))
            return bad(err, "invalid_value", p, "expected a block of type \"text\", got %s",
                       type ? type : "no type");
        if (!text)
            return bad(err, "invalid_type", p, "\"text\" must be a string");
        if (i > 0)
            abuf_adds(b, sep);
        abuf_adds(b, text);
        i++;
    }
    return b->oom ? oom(err) : 0;
}

/* system (a string or text blocks) -> a "system" message at the head of <msgs>. */
static int conv_system(const cJSON *sys, const char *path, cJSON *msgs,
                       struct dp_ingress_error *err)
{
    struct abuf b = {0};
    cJSON *m;
    int rc = 0;

    if (cJSON_IsString(sys)) {
        abuf_adds(&b, sys->valuestring);
    } else if (cJSON_IsArray(sys)) {
        rc = join_text_blocks(sys, path, "\n", &b, err);
    } else {
        return bad(err, "invalid_type", path, "expected a string or an array of text blocks");
    }
    if (rc == 0 && b.oom)
        rc = oom(err);
    if (rc == 0 && b.len > 0) {
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", b.p);
        cJSON_AddItemToArray(msgs, m);
    }
    free(b.p);
    return rc;
}

/* An image block's source -> an OpenAI image_url part appended to <parts>. */
static int conv_image(const cJSON *blk, const char *path, cJSON *parts,
                      struct dp_ingress_error *err)
{
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(blk, "source");
    const char *stype = str_item(src, "type");
    char p[128];
    char *url = NULL;
    cJSON *part, *iu;

    fmt_into(p, sizeof(p), "%s.source", path);
    if (!cJSON_IsObject(src))
        return bad(err, src ? "invalid_type" : "missing_required_parameter", p,
                   "an image needs a source object");
    fmt_into(p, sizeof(p), "%s.source.type", path);
    if (!stype)
        return bad(err, "missing_required_parameter", p, "expected \"base64\" or \"url\"");
    if (!strcmp(stype, "base64")) {
        const char *mt = str_item(src, "media_type");
        const char *data = str_item(src, "data");
        size_t n;
        if (!mt || !data) {
            fmt_into(p, sizeof(p), "%s.source.%s", path, mt ? "data" : "media_type");
            return bad(err, "missing_required_parameter", p, "a base64 image needs a string here");
        }
        n = strlen(mt) + strlen(data) + 16;
        url = malloc(n);
        if (!url)
            return oom(err);
        snprintf(url, n, "data:%s;base64,%s", mt, data);
    } else if (!strcmp(stype, "url")) {
        const char *u = str_item(src, "url");
        if (!u) {
            fmt_into(p, sizeof(p), "%s.source.url", path);
            return bad(err, "missing_required_parameter", p, "a url image needs a string here");
        }
        url = strdup(u);
        if (!url)
            return oom(err);
    } else {
        return bad(err, "unsupported_content", p,
                   "image source \"%.40s\" is not supported through the gateway (use base64 or "
                   "url)",
                   stype);
    }
    part = cJSON_CreateObject();
    cJSON_AddStringToObject(part, "type", "image_url");
    iu = cJSON_AddObjectToObject(part, "image_url");
    if (!cJSON_AddStringToObject(iu, "url", url)) {
        free(url);
        cJSON_Delete(part);
        return oom(err);
    }
    free(url);
    cJSON_AddItemToArray(parts, part);
    return 0;
}

/* A tool_result block -> a "tool" message appended to <msgs>; images in it go to <parts>
 * (the user message that follows the tool messages), since OpenAI tool messages hold text. */
static int conv_tool_result(const cJSON *blk, const char *path, cJSON *msgs, cJSON *parts,
                            struct dp_ingress_error *err)
{
    const char *id = str_item(blk, "tool_use_id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(blk, "content");
    struct abuf b = {0};
    char p[128];
    cJSON *m;
    int rc = 0;

    if (!id) {
        fmt_into(p, sizeof(p), "%s.tool_use_id", path);
        return bad(err, "missing_required_parameter", p, "a tool_result needs a string here");
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(blk, "is_error")))
        abuf_adds(&b, "Error: ");
    if (cJSON_IsString(content)) {
        abuf_adds(&b, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        const cJSON *c;
        int i = 0, ntext = 0;
        cJSON_ArrayForEach(c, content)
        {
            const char *type = str_item(c, "type");
            fmt_into(p, sizeof(p), "%s.content[%d]", path, i);
            if (type && !strcmp(type, "text") && str_item(c, "text")) {
                if (ntext++ > 0)
                    abuf_adds(&b, "\n");
                abuf_adds(&b, str_item(c, "text"));
            } else if (type && !strcmp(type, "image")) {
                rc = conv_image(c, p, parts, err);
                if (rc < 0)
                    goto out_free;
            } else {
                rc = bad(err, "unsupported_content", p,
                         "a tool_result may hold text and image blocks only");
                goto out_free;
            }
            i++;
        }
    } else if (content && !cJSON_IsNull(content)) {
        fmt_into(p, sizeof(p), "%s.content", path);
        rc = bad(err, "invalid_type", p, "expected a string or an array of blocks");
        goto out_free;
    }
    if (b.oom) {
        rc = oom(err);
        goto out_free;
    }
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "tool");
    cJSON_AddStringToObject(m, "tool_call_id", id);
    cJSON_AddStringToObject(m, "content", b.p ? b.p : "");
    cJSON_AddItemToArray(msgs, m);

out_free:
    free(b.p);
    return rc;
}

/* A user message's blocks: tool results first (each a "tool" message, as OpenAI wants them
 * right after the assistant's tool_calls), then one user message with the rest. */
static int conv_user_blocks(const cJSON *content, int mi, cJSON *msgs, struct dp_ingress_error *err)
{
    cJSON *parts = cJSON_CreateArray();
    const cJSON *blk;
    int i = 0, ntool = 0, rc = 0;

    cJSON_ArrayForEach(blk, content)
    {
        char p[128];
        const char *type = str_item(blk, "type");

        fmt_into(p, sizeof(p), "messages[%d].content[%d]", mi, i);
        if (!cJSON_IsObject(blk)) {
            rc = bad(err, "invalid_type", p, "expected a content block object");
            goto out_free;
        }
        if (!type) {
            fmt_into(p, sizeof(p), "messages[%d].content[%d].type", mi, i);
            rc = bad(err, "missing_required_parameter", p, "every content block needs a type");
            goto out_free;
        }
        if (!strcmp(type, "text")) {
            const char *text = str_item(blk, "text");
            cJSON *part;
            if (!text) {
                fmt_into(p, sizeof(p), "messages[%d].content[%d].text", mi, i);
                rc = bad(err, "invalid_type", p, "expected a string");
                goto out_free;
            }
            part = cJSON_CreateObject();
            cJSON_AddStringToObject(part, "type", "text");
            cJSON_AddStringToObject(part, "text", text);
            cJSON_AddItemToArray(parts, part);
        } else if (!strcmp(type, "image")) {
            rc = conv_image(blk, p, parts, err);
        } else if (!strcmp(type, "tool_result")) {
            rc = conv_tool_result(blk, p, msgs, parts, err);
            ntool++;
        } else {
            fmt_into(p, sizeof(p), "messages[%d].content[%d].type", mi, i);
            rc = bad(err, "unsupported_content", p,
                     "content blocks of type \"%.40s\" are not supported in user messages "
                     "through the gateway",
                     type);
        }
        if (rc < 0)
            goto out_free;
        i++;
    }
    if (cJSON_GetArraySize(parts) > 0 || ntool == 0) {
        cJSON *m = cJSON_CreateObject();
        cJSON *first = parts->child;
        cJSON_AddStringToObject(m, "role", "user");
        if (!first) {
            cJSON_AddStringToObject(m, "content", "");
        } else if (!first->next && !strcmp(str_item(first, "type"), "text")) {
            /* One text block reads best, and works with every provider, as a string. */
            cJSON_AddStringToObject(m, "content", str_item(first, "text"));
        } else {
            cJSON_AddItemToObject(m, "content", parts);
            parts = NULL;
        }
        cJSON_AddItemToArray(msgs, m);
    }

out_free:
    cJSON_Delete(parts);
    return rc;
}

/* A tool_use block -> an OpenAI tool call appended to <calls>. */
static int conv_tool_use(const cJSON *blk, const char *path, cJSON *calls,
                         struct dp_ingress_error *err)
{
    const char *id = str_item(blk, "id");
    const char *name = str_item(blk, "name");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(blk, "input");
    char p[128];
    char *args;
    cJSON *call, *fn;

    if (!id || !name) {
        fmt_into(p, sizeof(p), "%s.%s", path, id ? "name" : "id");
        return bad(err, "missing_required_parameter", p, "a tool_use block needs a string here");
    }
    if (input && !cJSON_IsObject(input)) {
        fmt_into(p, sizeof(p), "%s.input", path);
        return bad(err, "invalid_type", p, "expected an object");
    }
    args = input ? cJSON_PrintUnformatted(input) : strdup("{}");
    if (!args)
        return oom(err);
    call = cJSON_CreateObject();
    cJSON_AddStringToObject(call, "id", id);
    cJSON_AddStringToObject(call, "type", "function");
    fn = cJSON_AddObjectToObject(call, "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", args);
    free(args);
    cJSON_AddItemToArray(calls, call);
    return 0;
}

/* An assistant message's blocks: text joined into content, tool_use into tool_calls;
 * thinking blocks are the model's own and are dropped. */
static int conv_assistant_blocks(const cJSON *content, int mi, cJSON *msgs,
                                 struct dp_ingress_error *err)
{
    cJSON *calls = cJSON_CreateArray();
    struct abuf b = {0};
    const cJSON *blk;
    int i = 0, rc = 0;
    cJSON *m;

    cJSON_ArrayForEach(blk, content)
    {
        char p[128];
        const char *type = str_item(blk, "type");

        fmt_into(p, sizeof(p), "messages[%d].content[%d]", mi, i);
        if (!cJSON_IsObject(blk)) {
            rc = bad(err, "invalid_type", p, "expected a content block object");
            goto out_free;
        }
        fmt_into(p, sizeof(p), "messages[%d].content[%d].type", mi, i);
        if (!type) {
            rc = bad(err, "missing_required_parameter", p, "every content block needs a type");
        } else if (!strcmp(type, "text")) {
            const char *text = str_item(blk, "text");
            if (!text) {
                fmt_into(p, sizeof(p), "messages[%d].content[%d].text", mi, i);
                rc = bad(err, "invalid_type", p, "expected a string");
            } else {
                abuf_adds(&b, text);
            }
        } else if (!strcmp(type, "tool_use")) {
            fmt_into(p, sizeof(p), "messages[%d].content[%d]", mi, i);
            rc = conv_tool_use(blk, p, calls, err);
        } else if (strcmp(type, "thinking") && strcmp(type, "redacted_thinking")) {
            rc = bad(err, "unsupported_content", p,
                     "content blocks of type \"%.40s\" are not supported in assistant messages "
                     "through the gateway",
                     type);
        }
        if (rc < 0)
            goto out_free;
        i++;
    }
    if (b.oom) {
        rc = oom(err);
        goto out_free;
    }
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    if (b.len == 0 && cJSON_GetArraySize(calls) > 0)
        cJSON_AddNullToObject(m, "content");
    else
        cJSON_AddStringToObject(m, "content", b.p ? b.p : "");
    if (cJSON_GetArraySize(calls) > 0) {
        cJSON_AddItemToObject(m, "tool_calls", calls);
        calls = NULL;
    }
    cJSON_AddItemToArray(msgs, m);

out_free:
    free(b.p);
    cJSON_Delete(calls);
    return rc;
}

static int conv_message(const cJSON *msg, int mi, cJSON *msgs, struct dp_ingress_error *err)
{
    const char *role = str_item(msg, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    char p[128];

    fmt_into(p, sizeof(p), "messages[%d]", mi);
    if (!cJSON_IsObject(msg))
        return bad(err, "invalid_type", p, "each message must be an object");
    fmt_into(p, sizeof(p), "messages[%d].role", mi);
    if (!role)
        return bad(err, "missing_required_parameter", p, "expected \"user\" or \"assistant\"");
    if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system"))
        return bad(err, "invalid_value", p, "expected \"user\" or \"assistant\", got \"%.40s\"",
                   role);
    fmt_into(p, sizeof(p), "messages[%d].content", mi);
    if (!strcmp(role, "system"))
        return conv_system(content, p, msgs, err);
    if (cJSON_IsString(content)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", role);
        cJSON_AddStringToObject(m, "content", content->valuestring);
        cJSON_AddItemToArray(msgs, m);
        return 0;
    }
    if (!cJSON_IsArray(content))
        return bad(err, content ? "invalid_type" : "missing_required_parameter", p,
                   "expected a string or an array of content blocks");
    return !strcmp(role, "user") ? conv_user_blocks(content, mi, msgs, err)
                                 : conv_assistant_blocks(content, mi, msgs, err);
}

static int conv_tools(const cJSON *tools, cJSON *out, struct dp_ingress_error *err)
{
    cJSON *arr;
    const cJSON *t;
    int i = 0;

    if (!cJSON_IsArray(tools))
        return bad(err, "invalid_type", "tools", "expected an array of tools");
    if (cJSON_GetArraySize(tools) == 0)
        return 0;
    arr = cJSON_AddArrayToObject(out, "tools");
    cJSON_ArrayForEach(t, tools)
    {
        char p[128];
        const char *type = str_item(t, "type");
        const char *name = str_item(t, "name");
        const char *desc = str_item(t, "description");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
        cJSON *ot, *fn, *params;

        fmt_into(p, sizeof(p), "tools[%d]", i);
        if (!cJSON_IsObject(t))
            return bad(err, "invalid_type", p, "each tool must be an object");
        if (type && strcmp(type, "custom")) {
            fmt_into(p, sizeof(p), "tools[%d].type", i);
            return bad(err, "unsupported_tool", p,
                       "Anthropic server tool \"%.40s\" is not supported through the gateway "
                       "(only client tools with an input_schema)",
                       type);
        }
        if (!name) {
            fmt_into(p, sizeof(p), "tools[%d].name", i);
            return bad(err, "missing_required_parameter", p, "every tool needs a string name");
        }
        if (!cJSON_IsObject(schema)) {
            fmt_into(p, sizeof(p), "tools[%d].input_schema", i);
            return bad(err, schema ? "invalid_type" : "missing_required_parameter", p,
                       "every tool needs a JSON schema object");
        }
        params = cJSON_Duplicate(schema, true);
        if (!params)
            return oom(err);
        ot = cJSON_CreateObject();
        cJSON_AddStringToObject(ot, "type", "function");
        fn = cJSON_AddObjectToObject(ot, "function");
        cJSON_AddStringToObject(fn, "name", name);
        if (desc)
            cJSON_AddStringToObject(fn, "description", desc);
        cJSON_AddItemToObject(fn, "parameters", params);
        cJSON_AddItemToArray(arr, ot);
        i++;
    }
    return 0;
}

static int conv_tool_choice(const cJSON *tc, cJSON *out, struct dp_ingress_error *err)
{
    const char *type = str_item(tc, "type");
    const char *name = str_item(tc, "name");
    cJSON *choice;

    if (!cJSON_IsObject(tc))
        return bad(err, "invalid_type", "tool_choice", "expected an object with a type");
    if (!type)
        return bad(err, "missing_required_parameter", "tool_choice.type",
                   "expected \"auto\", \"any\", \"tool\" or \"none\"");
    if (!strcmp(type, "auto")) {
        choice = cJSON_CreateString("auto");
    } else if (!strcmp(type, "any")) {
        choice = cJSON_CreateString("required");
    } else if (!strcmp(type, "none")) {
        choice = cJSON_CreateString("none");
    } else if (!strcmp(type, "tool")) {
        if (!name)
            return bad(err, "missing_required_parameter", "tool_choice.name",
                       "tool_choice of type \"tool\" needs the tool's name");
        choice = cJSON_CreateObject();
        cJSON_AddStringToObject(choice, "type", "function");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(choice, "function"), "name", name);
    } else {
        return bad(err, "invalid_value", "tool_choice.type",
                   "expected \"auto\", \"any\", \"tool\" or \"none\", got \"%.40s\"", type);
    }
    /* OpenAI refuses tool_choice and parallel_tool_calls without tools; with no tools there
     * is nothing to choose anyway. */
    if (!cJSON_GetObjectItemCaseSensitive(out, "tools")) {
        cJSON_Delete(choice);
        return 0;
    }
    cJSON_AddItemToObject(out, "tool_choice", choice);
    if (strcmp(type, "none") &&
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tc, "disable_parallel_tool_use")))
        cJSON_AddFalseToObject(out, "parallel_tool_calls");
    return 0;
}

/* Copies number <key> of <in> to <okey> of <out> after checking it. */
static int copy_number(const cJSON *in, const char *key, cJSON *out, const char *okey, bool integer,
                       double min, struct dp_ingress_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);

    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        (integer && (v->valuedouble != floor(v->valuedouble) || v->valuedouble > 1e15)))
        return bad(err, "invalid_value", key, "expected %s >= %g",
                   integer ? "an integer" : "a number", min);
    cJSON_AddNumberToObject(out, okey, v->valuedouble);
    return 0;
}

static int conv_request(const cJSON *in, cJSON *out, struct dp_ingress_error *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(in, "model");
    const cJSON *msgs_in = cJSON_GetObjectItemCaseSensitive(in, "messages");
    const cJSON *v, *msg;
    cJSON *msgs;
    int i = 0, rc;

    if (!cJSON_IsString(model) || !model->valuestring[0])
        return bad(err, model ? "invalid_type" : "missing_required_parameter", "model",
                   "a model name (a non-empty string) is required");
    cJSON_AddStringToObject(out, "model", model->valuestring);
    if (!cJSON_GetObjectItemCaseSensitive(in, "max_tokens"))
        return bad(err, "missing_required_parameter", "max_tokens", "Field required");
    rc = copy_number(in, "max_tokens", out, "max_tokens", true, 1, err);
    if (rc < 0 || !cJSON_GetObjectItemCaseSensitive(out, "max_tokens"))
        return rc < 0 ? rc : bad(err, "invalid_value", "max_tokens", "expected an integer >= 1");
    if (!cJSON_IsArray(msgs_in) || cJSON_GetArraySize(msgs_in) == 0)
        return bad(err, msgs_in ? "invalid_type" : "missing_required_parameter", "messages",
                   "a non-empty array of messages is required");
    msgs = cJSON_AddArrayToObject(out, "messages");
    v = cJSON_GetObjectItemCaseSensitive(in, "system");
    if (v && !cJSON_IsNull(v) && (rc = conv_system(v, "system", msgs, err)) < 0)
        return rc;
    cJSON_ArrayForEach(msg, msgs_in)
    {
        if ((rc = conv_message(msg, i, msgs, err)) < 0)
            return rc;
        i++;
    }

    v = cJSON_GetObjectItemCaseSensitive(in, "tools");
    if (v && !cJSON_IsNull(v) && (rc = conv_tools(v, out, err)) < 0)
        return rc;
    v = cJSON_GetObjectItemCaseSensitive(in, "tool_choice");
    if (v && !cJSON_IsNull(v) && (rc = conv_tool_choice(v, out, err)) < 0)
        return rc;

    v = cJSON_GetObjectItemCaseSensitive(in, "stop_sequences");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *s;
        cJSON *stop;
        if (!cJSON_IsArray(v))
            return bad(err, "invalid_type", "stop_sequences", "expected an array of strings");
        stop = cJSON_CreateArray();
        cJSON_AddItemToObject(out, "stop", stop);
        i = 0;
        cJSON_ArrayForEach(s, v)
        {
            if (!cJSON_IsString(s)) {
                char p[128];
                fmt_into(p, sizeof(p), "stop_sequences[%d]", i);
                return bad(err, "invalid_type", p, "expected a string");
            }
            cJSON_AddItemToArray(stop, cJSON_CreateString(s->valuestring));
            i++;
        }
        if (i == 0)
            cJSON_DeleteItemFromObjectCaseSensitive(out, "stop");
    }
    if ((rc = copy_number(in, "temperature", out, "temperature", false, 0, err)) < 0 ||
        (rc = copy_number(in, "top_p", out, "top_p", false, 0, err)) < 0)
        return rc;
    v = cJSON_GetObjectItemCaseSensitive(in, "top_k");
    if (v && !cJSON_IsNull(v)) {
        /* OpenAI has no top_k. The gateway's provider_options.<kind> objects are merged over
         * the provider's request by the adapters of APIs that have it; the OpenAI family
         * strips them. */
        cJSON *po = cJSON_AddObjectToObject(out, "provider_options");
        cJSON *gc =
            cJSON_AddObjectToObject(cJSON_AddObjectToObject(po, "gemini"), "generationConfig");
        if ((rc = copy_number(in, "top_k", cJSON_AddObjectToObject(po, "anthropic"), "top_k", true,
                              0, err)) < 0)
            return rc;
        cJSON_AddNumberToObject(gc, "topK", v->valuedouble);
    }

    v = cJSON_GetObjectItemCaseSensitive(in, "stream");
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v))
        return bad(err, "invalid_type", "stream", "expected a boolean");
    if (cJSON_IsTrue(v)) {
        cJSON *so;
        cJSON_AddTrueToObject(out, "stream");
        so = cJSON_AddObjectToObject(out, "stream_options");
        cJSON_AddTrueToObject(so, "include_usage");
    }
    v = cJSON_GetObjectItemCaseSensitive(in, "metadata");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(v, "user_id");
        if (!cJSON_IsObject(v))
            return bad(err, "invalid_type", "metadata", "expected an object");
        if (uid && !cJSON_IsNull(uid) && !cJSON_IsString(uid))
            return bad(err, "invalid_type", "metadata.user_id", "expected a string");
        if (cJSON_IsString(uid))
            cJSON_AddStringToObject(out, "user", uid->valuestring);
    }
    return 0;
}

static cJSON *to_openai(const char *body, size_t len, struct dp_ingress_error *err)
{
    char *perr = NULL;
    cJSON *in, *out = NULL;

    memset(err, 0, sizeof(*err));
    in = sy_json_parse(body ? body : "", body ? len : 0, &perr);
    if (!in) {
        bad(err, "invalid_json", NULL, "the request body is not valid JSON (%s)",
            perr ? perr : "?");
        free(perr);
        return NULL;
    }
    if (!cJSON_IsObject(in)) {
        bad(err, "invalid_json", NULL, "the request body must be a JSON object");
        goto out_free_in;
    }
    out = cJSON_CreateObject();
    if (!out) {
        oom(err);
        goto out_free_in;
    }
    if (conv_request(in, out, err) < 0) {
        cJSON_Delete(out);
        out = NULL;
    }

out_free_in:
    cJSON_Delete(in);
    return out;
}

/* ---- answer: OpenAI -> Anthropic -------------------------------------------------------- */

/* "msg_" + the completion's id, so one answer keeps one id in both dialects. */
static void message_id(const char *oid, const char *fallback, char *out, size_t n)
{
    const char *id = oid && oid[0] ? oid : fallback && fallback[0] ? fallback : "switchyard";
    snprintf(out, n, "%s%.150s", strncmp(id, "msg_", 4) ? "msg_" : "", id);
}

static cJSON *usage_json(const struct dp_usage *u)
{
    cJSON *o = cJSON_CreateObject();
    int64_t fresh = fresh_input(u);

    cJSON_AddNumberToObject(o, "input_tokens", (double)(fresh > 0 ? fresh : 0));
    cJSON_AddNumberToObject(o, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(o, "cache_read_input_tokens",
                            (double)(u->cached_tokens > 0 ? u->cached_tokens : 0));
    cJSON_AddNumberToObject(o, "output_tokens",
                            (double)(u->completion_tokens > 0 ? u->completion_tokens : 0));
    return o;
}

/* One tool call -> a tool_use block; the arguments must be a JSON object. */
static int tool_use_block(const cJSON *call, int i, cJSON *content, char **errmsg)
{
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    const char *id = str_item(call, "id");
    const char *name = str_item(fn, "name");
    const char *args = str_item(fn, "arguments");
    cJSON *input, *blk;

    if (!name) {
        *errmsg = sy_xasprintf("tool_calls[%d].function.name is missing", i);
        return -EINVAL;
    }
    input = args && args[strspn(args, " \t\r\n")] ? sy_json_parse(args, strlen(args), NULL)
                                                  : cJSON_CreateObject();
    if (!cJSON_IsObject(input)) {
        cJSON_Delete(input);
        *errmsg = sy_xasprintf("tool_calls[%d].function.arguments is not a JSON object", i);
        return -EINVAL;
    }
    blk = cJSON_CreateObject();
    cJSON_AddStringToObject(blk, "type", "tool_use");
    cJSON_AddStringToObject(blk, "id", id ? id : "");
    cJSON_AddStringToObject(blk, "name", name);
    cJSON_AddItemToObject(blk, "input", input);
    cJSON_AddItemToArray(content, blk);
    return 0;
}

static int from_openai(const char *body, size_t len, const char *requested_model, char **out,
                       size_t *out_len, char **errmsg)
{
    cJSON *root = cJSON_ParseWithLength(body ? body : "", body ? len : 0);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    const char *text = str_item(msg, "content");
    const char *refusal = str_item(msg, "refusal");
    struct dp_usage u = {-1, -1, -1};
    char id[160];
    cJSON *res = NULL, *content;
    const cJSON *call;
    int i = 0, rc = -EINVAL;

    *out = NULL;
    *out_len = 0;
    if (!cJSON_IsObject(msg)) {
        *errmsg = sy_xstrdup(root ? "the answer has no choices[0].message"
                                  : "the answer is not valid JSON");
        goto out_free;
    }
    res = cJSON_CreateObject();
    message_id(str_item(root, "id"), NULL, id, sizeof(id));
    cJSON_AddStringToObject(res, "id", id);
    cJSON_AddStringToObject(res, "type", "message");
    cJSON_AddStringToObject(res, "role", "assistant");
    cJSON_AddStringToObject(res, "model", requested_model ? requested_model : "");
    content = cJSON_AddArrayToObject(res, "content");
    if ((text && text[0]) || (refusal && refusal[0])) {
        cJSON *blk = cJSON_CreateObject();
        cJSON_AddStringToObject(blk, "type", "text");
        cJSON_AddStringToObject(blk, "text", text && text[0] ? text : refusal);
        cJSON_AddItemToArray(content, blk);
    }
    for (call = cJSON_IsArray(calls) ? calls->child : NULL; call; call = call->next) {
        if ((rc = tool_use_block(call, i, content, errmsg)) < 0)
            goto out_free;
        i++;
    }
    cJSON_AddStringToObject(res, "stop_reason",
                            (refusal && refusal[0] && !(text && text[0]))
                                ? "refusal"
                                : stop_reason_for(str_item(choice, "finish_reason"), i > 0));
    cJSON_AddNullToObject(res, "stop_sequence");
    read_usage(cJSON_GetObjectItemCaseSensitive(root, "usage"), &u);
    cJSON_AddItemToObject(res, "usage", usage_json(&u));
    *out = cJSON_PrintUnformatted(res);
    if (!*out) {
        *errmsg = sy_xstrdup("out of memory");
        rc = -ENOMEM;
        goto out_free;
    }
    *out_len = strlen(*out);
    rc = 0;

out_free:
    cJSON_Delete(res);
    cJSON_Delete(root);
    return rc;
}

/* ---- stream: OpenAI chunks -> Anthropic events ------------------------------------------ */

struct dp_ingress_stream {
    char model[256];
    char request_id[130];
    bool started;  /* message_start went out */
    bool finished; /* message_stop or an error went out: nothing more to say */
    int next_block;
    int open_block; /* -1: none */
    bool open_is_text;
    int ntools;
    struct {
        int oai_index; /* tool_calls[].index in the OpenAI chunks */
        int block;
    } tools[DP_ANTHROPIC_MAX_STREAM_TOOLS];
    bool refused;       /* the model's text was an OpenAI refusal */
    const char *finish; /* the Anthropic stop_reason once finish_reason came; static */
    struct dp_usage usage;
};

static struct dp_ingress_stream *stream_new(const char *requested_model, const char *request_id)
{
    struct dp_ingress_stream *st = sy_xcalloc(1, sizeof(*st));

    snprintf(st->model, sizeof(st->model), "%s", requested_model ? requested_model : "");
    snprintf(st->request_id, sizeof(st->request_id), "%s", request_id ? request_id : "");
    st->open_block = -1;
    st->usage.prompt_tokens = st->usage.completion_tokens = st->usage.cached_tokens = -1;
    return st;
}

static void stream_free(struct dp_ingress_stream *st)
{
    free(st);
}

/* Writes "event: <type>\ndata: <obj>\n\n" in one call (one frame per write keeps events whole
 * on the wire) and frees <obj>. Returns what <write> returned, or -ENOMEM. */
static int send_event(const char *type, cJSON *obj, dp_write_fn write, void *arg)
{
    struct abuf b = {0};
    char *json;
    int rc;

    json = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!json)
        return -ENOMEM;
    abuf_adds(&b, "event: ");
    abuf_adds(&b, type);
    abuf_adds(&b, "\ndata: ");
    abuf_adds(&b, json);
    abuf_adds(&b, "\n\n");
    free(json);
    rc = b.oom ? -ENOMEM : write(arg, b.p, b.len);
    free(b.p);
    return rc;
}

static cJSON *event_obj(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static int send_error(struct dp_ingress_stream *st, const char *atype, const char *message,
                      dp_write_fn write, void *arg)
{
    char *json = error_json(atype, message);
    struct abuf b = {0};
    int rc;

    st->finished = true;
    if (!json)
        return -ENOMEM;
    abuf_adds(&b, "event: error\ndata: ");
    abuf_adds(&b, json);
    abuf_adds(&b, "\n\n");
    free(json);
    rc = b.oom ? -ENOMEM : write(arg, b.p, b.len);
    free(b.p);
    return rc;
}

static int send_start(struct dp_ingress_stream *st, const char *chunk_id, dp_write_fn write,
                      void *arg)
{
    cJSON *ev = event_obj("message_start");
    cJSON *m = cJSON_AddObjectToObject(ev, "message");
    cJSON *usage;
    char id[160];
    int rc;

    st->started = true;
    message_id(chunk_id, st->request_id, id, sizeof(id));
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "model", st->model);
    cJSON_AddArrayToObject(m, "content");
    cJSON_AddNullToObject(m, "stop_reason");
    cJSON_AddNullToObject(m, "stop_sequence");
    /* The OpenAI usage chunk comes last: the real counts go out in message_delta. */
    usage = cJSON_AddObjectToObject(m, "usage");
    cJSON_AddNumberToObject(usage, "input_tokens", 0);
    cJSON_AddNumberToObject(usage, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(usage, "cache_read_input_tokens", 0);
    cJSON_AddNumberToObject(usage, "output_tokens", 0);
    rc = send_event("message_start", ev, write, arg);
    if (rc == 0)
        rc = send_event("ping", event_obj("ping"), write, arg);
    return rc;
}

static int close_block(struct dp_ingress_stream *st, dp_write_fn write, void *arg)
{
    cJSON *ev;

    if (st->open_block < 0)
        return 0;
    ev = event_obj("content_block_stop");
    cJSON_AddNumberToObject(ev, "index", st->open_block);
    st->open_block = -1;
    return send_event("content_block_stop", ev, write, arg);
}

/* Starts block <blk> (text, or tool_use with its id and name); closes the open one first. */
static int open_block(struct dp_ingress_stream *st, cJSON *blk, dp_write_fn write, void *arg)
{
    cJSON *ev;
    int rc = close_block(st, write, arg);

    if (rc) {
        cJSON_Delete(blk);
        return rc;
    }
    ev = event_obj("content_block_start");
    cJSON_AddNumberToObject(ev, "index", st->next_block);
    cJSON_AddItemToObject(ev, "content_block", blk);
    st->open_block = st->next_block++;
    return send_event("content_block_start", ev, write, arg);
}

static int send_delta(int index, const char *dtype, const char *key, const char *val,
                      dp_write_fn write, void *arg)
{
    cJSON *ev = event_obj("content_block_delta");
    cJSON *d;

    cJSON_AddNumberToObject(ev, "index", index);
    d = cJSON_AddObjectToObject(ev, "delta");
    cJSON_AddStringToObject(d, "type", dtype);
    cJSON_AddStringToObject(d, key, val);
    return send_event("content_block_delta", ev, write, arg);
}

static int on_text(struct dp_ingress_stream *st, const char *text, dp_write_fn write, void *arg)
{
    int rc;

    if (st->open_block < 0 || !st->open_is_text) {
        cJSON *blk = cJSON_CreateObject();
        cJSON_AddStringToObject(blk, "type", "text");
        cJSON_AddStringToObject(blk, "text", "");
        if ((rc = open_block(st, blk, write, arg)))
            return rc;
        st->open_is_text = true;
    }
    return send_delta(st->open_block, "text_delta", "text", text, write, arg);
}

/* One entry of a chunk's delta.tool_calls: a call with an id or name not seen before opens a
 * tool_use block; argument fragments become input_json_delta events on their call's block. */
static int on_tool_call(struct dp_ingress_stream *st, const cJSON *tc, int pos, dp_write_fn write,
                        void *arg)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(tc, "index");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const char *id = str_item(tc, "id");
    const char *name = str_item(fn, "name");
    const char *args = str_item(fn, "arguments");
    int oai = cJSON_IsNumber(idx) && idx->valuedouble >= 0 && idx->valuedouble < 1e6
                  ? (int)idx->valuedouble
                  : pos;
    int block = -1, rc;

    for (int i = 0; i < st->ntools; i++) {
        if (st->tools[i].oai_index == oai) {
            block = st->tools[i].block;
            break;
        }
    }
    if (block < 0) {
        char fallback_id[48];
        cJSON *blk;
        if (st->ntools == DP_ANTHROPIC_MAX_STREAM_TOOLS)
            return send_error(st, "api_error", "the provider's answer has too many tool calls",
                              write, arg);
        snprintf(fallback_id, sizeof(fallback_id), "toolu_%d", oai);
        blk = cJSON_CreateObject();
        cJSON_AddStringToObject(blk, "type", "tool_use");
        cJSON_AddStringToObject(blk, "id", id ? id : fallback_id);
        cJSON_AddStringToObject(blk, "name", name ? name : "");
        cJSON_AddObjectToObject(blk, "input");
        if ((rc = open_block(st, blk, write, arg)))
            return rc;
        st->open_is_text = false;
        block = st->open_block;
        st->tools[st->ntools].oai_index = oai;
        st->tools[st->ntools].block = block;
        st->ntools++;
    }
    if (args && args[0])
        return send_delta(block, "input_json_delta", "partial_json", args, write, arg);
    return 0;
}

/* message_delta (stop_reason and the real usage) and message_stop. */
static int send_finish(struct dp_ingress_stream *st, dp_write_fn write, void *arg)
{
    cJSON *ev, *d, *u;
    int64_t fresh = fresh_input(&st->usage);
    int rc;

    if ((rc = close_block(st, write, arg)))
        return rc;
    ev = event_obj("message_delta");
    d = cJSON_AddObjectToObject(ev, "delta");
    cJSON_AddStringToObject(d, "stop_reason",
                            st->finish ? st->finish : stop_reason_for(NULL, st->ntools > 0));
    cJSON_AddNullToObject(d, "stop_sequence");
    u = cJSON_AddObjectToObject(ev, "usage");
    if (fresh >= 0)
        cJSON_AddNumberToObject(u, "input_tokens", (double)fresh);
    if (st->usage.cached_tokens >= 0)
        cJSON_AddNumberToObject(u, "cache_read_input_tokens", (double)st->usage.cached_tokens);
    cJSON_AddNumberToObject(
        u, "output_tokens",
        (double)(st->usage.completion_tokens > 0 ? st->usage.completion_tokens : 0));
    st->finished = true;
    if ((rc = send_event("message_delta", ev, write, arg)))
        return rc;
    return send_event("message_stop", event_obj("message_stop"), write, arg);
}

static int on_chunk(struct dp_ingress_stream *st, const cJSON *chunk, dp_write_fn write, void *arg)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(chunk, "error");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(chunk, "choices");
    const cJSON *choice = NULL, *c, *delta, *calls, *tc;
    const char *text, *finish;
    int rc, pos = 0;

    if (cJSON_IsObject(err) && !choices)
        return send_error(st, error_type_for_openai(str_item(err, "type"), str_item(err, "code")),
                          str_item(err, "message") ? str_item(err, "message")
                                                   : "the provider reported an error",
                          write, arg);
    if (!st->started && (rc = send_start(st, str_item(chunk, "id"), write, arg)))
        return rc;
    read_usage(cJSON_GetObjectItemCaseSensitive(chunk, "usage"), &st->usage);
    /* Anthropic has one answer per request: only choice 0 is translated. */
    for (c = cJSON_IsArray(choices) ? choices->child : NULL; c; c = c->next) {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(c, "index");
        if (!cJSON_IsNumber(index) || index->valuedouble == 0) {
            choice = c;
            break;
        }
    }
    if (!cJSON_IsObject(choice))
        return 0;
    delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
    text = str_item(delta, "content");
    if (!text || !text[0]) {
        text = str_item(delta, "refusal");
        st->refused |= text && text[0];
    }
    if (text && text[0] && (rc = on_text(st, text, write, arg)))
        return rc;
    calls = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
    for (tc = cJSON_IsArray(calls) ? calls->child : NULL; tc; tc = tc->next) {
        if (cJSON_IsObject(tc) && (rc = on_tool_call(st, tc, pos, write, arg)))
            return rc;
        if (st->finished)
            return 0;
        pos++;
    }
    finish = str_item(choice, "finish_reason");
    if (finish) {
        st->finish =
            st->refused && !st->ntools ? "refusal" : stop_reason_for(finish, st->ntools > 0);
        /* The usage chunk still comes: message_delta waits for it ([DONE] or the end). */
        return close_block(st, write, arg);
    }
    return 0;
}

static int stream_chunk(struct dp_ingress_stream *st, const char *data, size_t len,
                        dp_write_fn write, void *arg)
{
    cJSON *chunk;
    int rc;

    if (st->finished)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        if (!st->started && (rc = send_start(st, NULL, write, arg)))
            return rc;
        return send_finish(st, write, arg);
    }
    chunk = cJSON_ParseWithLength(data, len);
    /* Anything but a JSON object is not an OpenAI event; OpenAI clients would skip it too. */
    rc = cJSON_IsObject(chunk) ? on_chunk(st, chunk, write, arg) : 0;
    cJSON_Delete(chunk);
    return rc;
}

static int stream_end(struct dp_ingress_stream *st, bool failed, dp_write_fn write, void *arg)
{
    if (st->finished || failed)
        return 0;
    if (!st->finish)
        /* Neither [DONE] nor a finish_reason: the answer is cut, and the client must know. */
        return send_error(st, "api_error",
                          "the provider's stream ended before the answer was complete", write, arg);
    if (!st->started) {
        int rc = send_start(st, NULL, write, arg);
        if (rc)
            return rc;
    }
    return send_finish(st, write, arg);
}

/* ---- errors ------------------------------------------------------------------------------ */

static char *error_body(int status, const char *type, const char *code, const char *message)
{
    char *out;

    (void)type; /* Anthropic's types follow the status; OpenAI's add nothing a client reads */
    (void)code;
    out = error_json(error_type_for_status(status), message);
    if (!out)
        abort(); /* a small fixed-size object, like the gateway's own error bodies */
    return out;
}

const struct dp_ingress_ops dp_ingress_anthropic = {
    .name = "anthropic",
    .to_openai = to_openai,
    .from_openai = from_openai,
    .stream_new = stream_new,
    .stream_chunk = stream_chunk,
    .stream_end = stream_end,
    .stream_free = stream_free,
    .error_body = error_body,
};
