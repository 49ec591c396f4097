/* dataplane/providers/dp_anthropic_request.c - OpenAI chat request -> Anthropic Messages
 * request body (POST /v1/messages).
 *
 * What moves where (docs/providers-anthropic.md has the full table): system and developer
 * messages are lifted into "system"; tool messages become user messages of tool_result
 * blocks; assistant tool_calls become tool_use blocks; consecutive messages of one role are
 * merged, because Anthropic alternates user and assistant turns; images become base64 or
 * url sources; max_tokens, which Anthropic requires, defaults to
 * DP_ANTHROPIC_DEFAULT_MAX_TOKENS. Anything the API family cannot do (n > 1, JSON mode,
 * logprobs, audio) is refused with a message naming the field, never dropped silently,
 * except sampling knobs Anthropic lacks (penalties, seed, logit_bias), which are ignored.
 * The output tree is built fresh; <req> is only read. Any thread.
 */
#include "dp_anthropic.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

/* One conversion: the body being built and what went wrong. */
struct conv {
    cJSON *body;
    cJSON *messages; /* the Anthropic "messages" array inside body */
    cJSON *last;     /* the last message appended, the one a same-role message merges into */
    char *system;    /* system texts joined so far (NULL: none) */
    size_t system_len;
    bool ok; /* false after an allocation failed */
    char **errmsg;
};

/* Sets *errmsg (once) and returns -EINVAL. */
static int refuse(struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int refuse(struct conv *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!*c->errmsg)
        *c->errmsg = sy_xstrdup(msg);
    return -EINVAL;
}

/* Records a failed cJSON allocation and passes <item> through. */
static cJSON *put(struct conv *c, cJSON *item)
{
    if (!item)
        c->ok = false;
    return item;
}

/* Appends <item> (taken) to the array <arr>. */
static void append(struct conv *c, cJSON *arr, cJSON *item)
{
    if (!item || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        c->ok = false;
    }
}

/* Adds <item> (taken) to the object <obj> as <name>, replacing a member of that name. */
static void attach(struct conv *c, cJSON *obj, const char *name, cJSON *item)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    if (!item || !cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        c->ok = false;
    }
}

static cJSON *text_block(struct conv *c, const char *text)
{
    cJSON *b = put(c, cJSON_CreateObject());

    put(c, cJSON_AddStringToObject(b, "type", "text"));
    put(c, cJSON_AddStringToObject(b, "text", text));
    return b;
}

/* ---- system ---------------------------------------------------------------------------- */

/* Adds <text> to the system prompt, separated from what is there by a blank line. */
static void system_add(struct conv *c, const char *text)
{
    size_t tl = strlen(text), sep = c->system ? 2 : 0;
    char *p;

    if (tl == 0)
        return;
    p = realloc(c->system, c->system_len + sep + tl + 1);
    if (!p) {
        c->ok = false;
        return;
    }
    memcpy(p + c->system_len, "\n\n", sep);
    memcpy(p + c->system_len + sep, text, tl + 1);
    c->system = p;
    c->system_len += sep + tl;
}

/* A system or developer message: a string or text parts. */
static int lift_system(struct conv *c, const cJSON *content, int i)
{
    const cJSON *part;
    int j = 0;

    if (cJSON_IsString(content)) {
        system_add(c, content->valuestring);
        return 0;
    }
    if (cJSON_IsNull(content) || !content)
        return 0;
    if (!cJSON_IsArray(content))
        return refuse(c, "messages[%d].content: must be a string or an array of parts", i);
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text))
            return refuse(c,
                          "messages[%d].content[%d]: system messages take text parts only for "
                          "the anthropic API family",
                          i, j);
        system_add(c, text->valuestring);
        j++;
    }
    return 0;
}

/* ---- content parts --------------------------------------------------------------------- */

static bool is_supported_image(const char *mt, size_t len)
{
    static const char *const types[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};

    for (size_t k = 0; k < SY_ARRAY_LEN(types); k++) {
        if (sy_strcaseeq_n(mt, len, types[k]))
            return true;
    }
    return false;
}

/* {"type":"image","source":{...}} for an OpenAI image URL: a base64 data URL or http(s). */
static cJSON *image_block(struct conv *c, const char *url, const char *where)
{
    cJSON *b, *src;

    if (strncasecmp(url, "data:", 5) == 0) {
        const char *mt = url + 5;
        const char *comma = strchr(mt, ',');
        size_t mtlen = strcspn(mt, ";,");
        char media[64];

        if (!comma || !memmem(mt, (size_t)(comma - mt), ";base64", 7)) {
            refuse(c, "%s: only base64 data URLs (data:<type>;base64,...) are supported", where);
            return NULL;
        }
        if (!is_supported_image(mt, mtlen)) {
            refuse(c,
                   "%s: image type \"%.*s\" is not supported by the anthropic API family "
                   "(image/jpeg, image/png, image/gif, image/webp)",
                   where, (int)(mtlen < 64 ? mtlen : 64), mt);
            return NULL;
        }
        snprintf(media, sizeof(media), "%.*s", (int)mtlen, mt);
        for (char *p = media; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        b = put(c, cJSON_CreateObject());
        put(c, cJSON_AddStringToObject(b, "type", "image"));
        src = put(c, cJSON_AddObjectToObject(b, "source"));
        put(c, cJSON_AddStringToObject(src, "type", "base64"));
        put(c, cJSON_AddStringToObject(src, "media_type", media));
        put(c, cJSON_AddStringToObject(src, "data", comma + 1));
        return b;
    }
    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
        refuse(c, "%s: an image URL must be http(s) or a base64 data URL", where);
        return NULL;
    }
    b = put(c, cJSON_CreateObject());
    put(c, cJSON_AddStringToObject(b, "type", "image"));
    src = put(c, cJSON_AddObjectToObject(b, "source"));
    put(c, cJSON_AddStringToObject(src, "type", "url"));
    put(c, cJSON_AddStringToObject(src, "url", url));
    return b;
}

/* Copies a part's "cache_control" (Anthropic prompt caching, e.g. {"type":"ephemeral"})
 * onto its block <b>, which is returned. OpenAI has no such member; clients that know they
 * talk to Claude send it, and it is the one way to mark a cache breakpoint. */
static cJSON *cache_control(struct conv *c, const cJSON *part, cJSON *b)
{
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(part, "cache_control");

    if (b && cJSON_IsObject(cc))
        attach(c, b, "cache_control", cJSON_Duplicate(cc, true));
    return b;
}

/* Appends the Anthropic blocks for OpenAI content <content> (a string or parts) to
 * <blocks>. <images>: whether image parts are allowed. Empty texts are skipped:
 * Anthropic refuses empty text blocks. */
static int content_blocks(struct conv *c, const cJSON *content, bool images, cJSON *blocks,
                          const char *path)
{
    const cJSON *part;
    char where[96];
    int j = 0;

    if (cJSON_IsString(content)) {
        if (content->valuestring[0])
            append(c, blocks, text_block(c, content->valuestring));
        return 0;
    }
    if (!content || cJSON_IsNull(content))
        return 0;
    if (!cJSON_IsArray(content))
        return refuse(c, "%s: must be a string, an array of parts or null", path);
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";

        snprintf(where, sizeof(where), "%s[%d]", path, j++);
        if (strcmp(t, "text") == 0) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(text))
                return refuse(c, "%s.text: must be a string", where);
            if (text->valuestring[0])
                append(c, blocks, cache_control(c, part, text_block(c, text->valuestring)));
        } else if (strcmp(t, "image_url") == 0 && images) {
            const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            const cJSON *url =
                cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
            cJSON *b;
            if (!cJSON_IsString(url))
                return refuse(c, "%s.image_url.url: must be a string", where);
            b = image_block(c, url->valuestring, where);
            if (!b)
                return c->ok ? -EINVAL : -ENOMEM;
            append(c, blocks, cache_control(c, part, b));
        } else if (strcmp(t, "refusal") == 0) {
            continue; /* an assistant's refusal text is not something to send back */
        } else {
            return refuse(c,
                          "%s: content part type \"%.40s\" is not supported by the anthropic "
                          "API family here",
                          where, t);
        }
    }
    return 0;
}

/* ---- messages -------------------------------------------------------------------------- */

/* Adds <blocks> (taken) as a message of <role>, merged into the previous message when that
 * one has the same role. An empty <blocks> adds nothing. */
static void push_message(struct conv *c, const char *role, cJSON *blocks)
{
    const cJSON *last_role = cJSON_GetObjectItemCaseSensitive(c->last, "role");
    cJSON *m;

    if (!cJSON_GetArraySize(blocks)) {
        cJSON_Delete(blocks);
        return;
    }
    if (cJSON_IsString(last_role) && strcmp(last_role->valuestring, role) == 0) {
        cJSON *dst = cJSON_GetObjectItemCaseSensitive(c->last, "content");
        cJSON *b;
        while ((b = cJSON_DetachItemFromArray(blocks, 0)))
            append(c, dst, b);
        cJSON_Delete(blocks);
        return;
    }
    m = put(c, cJSON_CreateObject());
    put(c, cJSON_AddStringToObject(m, "role", role));
    attach(c, m, "content", blocks);
    append(c, c->messages, m);
    if (c->ok)
        c->last = m;
}

/* {"type":"tool_use","id","name","input"} for one OpenAI tool call. */
static cJSON *tool_use_block(struct conv *c, const cJSON *tc, const char *where)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(tc, "id");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type");
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    cJSON *input, *b;

    if (!cJSON_IsString(id))
        refuse(c, "%s.id: must be a string", where);
    else if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "function") == 0))
        refuse(c, "%s.type: only \"function\" tool calls are supported", where);
    else if (!cJSON_IsString(name))
        refuse(c, "%s.function.name: must be a string", where);
    else if (args && !cJSON_IsString(args) && !cJSON_IsNull(args))
        refuse(c, "%s.function.arguments: must be a string of JSON", where);
    if (*c->errmsg)
        return NULL;
    if (!cJSON_IsString(args) || strspn(args->valuestring, " \t\r\n") == strlen(args->valuestring))
        input = put(c, cJSON_CreateObject());
    else
        input = cJSON_ParseWithOpts(args->valuestring, NULL, true); /* nothing after it */
    if (c->ok && !cJSON_IsObject(input)) {
        cJSON_Delete(input);
        refuse(c, "%s.function.arguments: must be a JSON object (Anthropic tool input)", where);
        return NULL;
    }
    b = put(c, cJSON_CreateObject());
    put(c, cJSON_AddStringToObject(b, "type", "tool_use"));
    put(c, cJSON_AddStringToObject(b, "id", id->valuestring));
    put(c, cJSON_AddStringToObject(b, "name", name->valuestring));
    attach(c, b, "input", input);
    return b;
}

static int assistant_message(struct conv *c, const cJSON *m, int i)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    const cJSON *tc;
    cJSON *blocks = put(c, cJSON_CreateArray());
    char path[64];
    int j = 0, rc;

    snprintf(path, sizeof(path), "messages[%d].content", i);
    rc = content_blocks(c, cJSON_GetObjectItemCaseSensitive(m, "content"), false, blocks, path);
    if (rc == 0 && calls && !cJSON_IsArray(calls) && !cJSON_IsNull(calls))
        rc = refuse(c, "messages[%d].tool_calls: must be an array", i);
    if (rc == 0 && cJSON_GetObjectItemCaseSensitive(m, "function_call"))
        rc = refuse(c,
                    "messages[%d].function_call: legacy function calls are not supported by "
                    "the anthropic API family; use tool_calls",
                    i);
    if (rc < 0 || !cJSON_IsArray(calls))
        calls = NULL;
    cJSON_ArrayForEach(tc, calls)
    {
        char where[64];
        cJSON *b;

        snprintf(where, sizeof(where), "messages[%d].tool_calls[%d]", i, j++);
        b = tool_use_block(c, tc, where);
        if (!b) {
            rc = c->ok ? -EINVAL : -ENOMEM;
            break;
        }
        append(c, blocks, b);
    }
    if (rc < 0) {
        cJSON_Delete(blocks);
        return rc;
    }
    push_message(c, "assistant", blocks);
    return 0;
}

static int tool_message(struct conv *c, const cJSON *m, int i)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    cJSON *blocks, *b;
    char path[64];

    if (!cJSON_IsString(id))
        return refuse(c, "messages[%d].tool_call_id: a tool message must name its tool call", i);
    blocks = put(c, cJSON_CreateArray());
    b = put(c, cJSON_CreateObject());
    put(c, cJSON_AddStringToObject(b, "type", "tool_result"));
    put(c, cJSON_AddStringToObject(b, "tool_use_id", id->valuestring));
    if (cJSON_IsString(content)) {
        put(c, cJSON_AddStringToObject(b, "content", content->valuestring));
    } else {
        cJSON *parts = put(c, cJSON_CreateArray());
        int rc;
        snprintf(path, sizeof(path), "messages[%d].content", i);
        rc = content_blocks(c, content, true, parts, path);
        attach(c, b, "content", parts);
        if (rc < 0) {
            cJSON_Delete(b);
            cJSON_Delete(blocks);
            return rc;
        }
    }
    append(c, blocks, b);
    push_message(c, "user", blocks);
    return 0;
}

static int convert_message(struct conv *c, const cJSON *m, int i)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    const char *r;

    if (!cJSON_IsObject(m) || !cJSON_IsString(role))
        return refuse(c, "messages[%d].role: each message must be an object with a string role", i);
    r = role->valuestring;
    if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0)
        return lift_system(c, content, i);
    if (strcmp(r, "assistant") == 0)
        return assistant_message(c, m, i);
    if (strcmp(r, "tool") == 0)
        return tool_message(c, m, i);
    if (strcmp(r, "user") == 0) {
        cJSON *blocks = put(c, cJSON_CreateArray());
        char path[64];
        int rc;
        snprintf(path, sizeof(path), "messages[%d].content", i);
        rc = content_blocks(c, content, true, blocks, path);
        if (rc < 0) {
            cJSON_Delete(blocks);
            return rc;
        }
        push_message(c, "user", blocks);
        return 0;
    }
    if (strcmp(r, "function") == 0)
        return refuse(c,
                      "messages[%d].role: legacy \"function\" messages are not supported by "
                      "the anthropic API family; use tool messages",
                      i);
    return refuse(c, "messages[%d].role: unknown role \"%.40s\"", i, r);
}

/* A message of one text block becomes a plain string: the shape of the API's examples. */
static void compact_messages(cJSON *messages)
{
    cJSON *m;

    cJSON_ArrayForEach(m, messages)
    {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        cJSON *only = cJSON_GetArrayItem(content, 0);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(only, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(only, "text");
        cJSON *s;

        if (cJSON_GetArraySize(content) != 1 || !cJSON_IsString(type) ||
            strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text) ||
            cJSON_GetArraySize(only) != 2)
            continue;
        s = cJSON_CreateString(text->valuestring);
        if (s && !cJSON_ReplaceItemInObjectCaseSensitive(m, "content", s))
            cJSON_Delete(s);
    }
}

/* ---- parameters ------------------------------------------------------------------------ */

/* The number member <name>, or NULL when absent or null; -EINVAL when it is not a number. */
static int number_param(struct conv *c, const cJSON *req, const char *name, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return refuse(c, "%s: must be a number", name);
    *out = v;
    return 0;
}

static int max_tokens(struct conv *c, const cJSON *req)
{
    const cJSON *v;
    double n = DP_ANTHROPIC_DEFAULT_MAX_TOKENS;
    const char *name = "max_completion_tokens";

    if (number_param(c, req, name, &v) < 0)
        return -EINVAL;
    if (!v) {
        name = "max_tokens";
        if (number_param(c, req, name, &v) < 0)
            return -EINVAL;
    }
    if (v) {
        n = v->valuedouble;
        if (n < 1 || n > 2147483647.0 || n != floor(n))
            return refuse(c, "%s: must be a positive integer", name);
    }
    put(c, cJSON_AddNumberToObject(c->body, "max_tokens", n));
    return 0;
}

static int stop_sequences(struct conv *c, const cJSON *req)
{
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(req, "stop");
    const cJSON *s;
    cJSON *arr;

    if (!stop || cJSON_IsNull(stop))
        return 0;
    if (!cJSON_IsString(stop) && !cJSON_IsArray(stop))
        return refuse(c, "stop: must be a string or an array of strings");
    arr = put(c, cJSON_CreateArray());
    if (cJSON_IsString(stop))
        append(c, arr, cJSON_CreateString(stop->valuestring));
    if (cJSON_IsString(stop))
        stop = NULL;
    cJSON_ArrayForEach(s, stop)
    {
        if (!cJSON_IsString(s)) {
            cJSON_Delete(arr);
            return refuse(c, "stop: must be a string or an array of strings");
        }
        append(c, arr, cJSON_CreateString(s->valuestring));
    }
    if (cJSON_GetArraySize(arr))
        attach(c, c->body, "stop_sequences", arr);
    else
        cJSON_Delete(arr);
    return 0;
}

static int convert_tools(struct conv *c, const cJSON *tools)
{
    cJSON *out = put(c, cJSON_CreateArray());
    const cJSON *t;
    int j = 0;

    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(fn, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        cJSON *a;

        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0) {
            cJSON_Delete(out);
            return refuse(c,
                          "tools[%d].type: only \"function\" tools are supported by the "
                          "anthropic API family",
                          j);
        }
        if (!cJSON_IsString(name)) {
            cJSON_Delete(out);
            return refuse(c, "tools[%d].function.name: must be a string", j);
        }
        if (params && !cJSON_IsObject(params) && !cJSON_IsNull(params)) {
            cJSON_Delete(out);
            return refuse(c, "tools[%d].function.parameters: must be a JSON Schema object", j);
        }
        a = put(c, cJSON_CreateObject());
        put(c, cJSON_AddStringToObject(a, "name", name->valuestring));
        if (cJSON_IsString(desc))
            put(c, cJSON_AddStringToObject(a, "description", desc->valuestring));
        if (cJSON_IsObject(params)) {
            attach(c, a, "input_schema", cJSON_Duplicate(params, true));
        } else {
            cJSON *schema = put(c, cJSON_AddObjectToObject(a, "input_schema"));
            put(c, cJSON_AddStringToObject(schema, "type", "object"));
        }
        append(c, out, a);
        j++;
    }
    attach(c, c->body, "tools", out);
    return 0;
}

/* tool_choice and parallel_tool_calls -> Anthropic's tool_choice. */
static int convert_tool_choice(struct conv *c, const cJSON *req)
{
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(req, "tool_choice");
    const cJSON *parallel = cJSON_GetObjectItemCaseSensitive(req, "parallel_tool_calls");
    const char *type = "auto", *name = NULL;
    cJSON *tc;

    if (cJSON_IsString(choice)) {
        const char *s = choice->valuestring;
        if (strcmp(s, "auto") == 0)
            type = "auto";
        else if (strcmp(s, "none") == 0)
            type = "none";
        else if (strcmp(s, "required") == 0)
            type = "any";
        else
            return refuse(c, "tool_choice: \"%.40s\" is not one of auto, none, required", s);
    } else if (cJSON_IsObject(choice)) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(choice, "function");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(n))
            return refuse(c, "tool_choice.function.name: must be a string");
        type = "tool";
        name = n->valuestring;
    } else if (choice && !cJSON_IsNull(choice)) {
        return refuse(c, "tool_choice: must be a string or an object");
    }
    if (parallel && !cJSON_IsBool(parallel) && !cJSON_IsNull(parallel))
        return refuse(c, "parallel_tool_calls: must be a boolean");
    if ((!choice || cJSON_IsNull(choice)) && !cJSON_IsFalse(parallel))
        return 0; /* Anthropic's default is auto with parallel calls, like OpenAI's */
    tc = put(c, cJSON_CreateObject());
    put(c, cJSON_AddStringToObject(tc, "type", type));
    if (name)
        put(c, cJSON_AddStringToObject(tc, "name", name));
    if (cJSON_IsFalse(parallel) && strcmp(type, "none") != 0)
        put(c, cJSON_AddTrueToObject(tc, "disable_parallel_tool_use"));
    attach(c, c->body, "tool_choice", tc);
    return 0;
}

/* What the API family cannot do at all: refused rather than answered differently. */
static int check_unsupported(struct conv *c, const cJSON *req)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "n");
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    const cJSON *rft = cJSON_GetObjectItemCaseSensitive(rf, "type");
    const cJSON *mod = cJSON_GetObjectItemCaseSensitive(req, "modalities");
    const cJSON *m;

    if (n && !cJSON_IsNull(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1))
        return refuse(c, "n: the anthropic API family returns one choice per request; n must be "
                         "1");
    if (rf && !cJSON_IsNull(rf) && !(cJSON_IsString(rft) && strcmp(rft->valuestring, "text") == 0))
        return refuse(c,
                      "response_format %.40s: JSON mode is not supported by the anthropic API "
                      "family (ask for JSON in the prompt, or use a tool)",
                      cJSON_IsString(rft) ? rft->valuestring : "?");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "logprobs")))
        return refuse(c, "logprobs: not supported by the anthropic API family");
    if (cJSON_GetObjectItemCaseSensitive(req, "audio"))
        return refuse(c, "audio: audio output is not supported by the anthropic API family");
    if (!cJSON_IsArray(mod))
        mod = NULL;
    cJSON_ArrayForEach(m, mod)
    {
        if (!cJSON_IsString(m) || strcmp(m->valuestring, "text") != 0)
            return refuse(c, "modalities: the anthropic API family answers with text only");
    }
    return 0;
}

/* provider_options.anthropic: members merged over the body, documented pass-through for
 * what OpenAI's request cannot say (thinking, top_k, metadata, service_tier, ...). */
static int merge_provider_options(struct conv *c, const cJSON *req)
{
    static const char *const reserved[] = {"model", "messages", "stream"};
    const cJSON *po = cJSON_GetObjectItemCaseSensitive(req, "provider_options");
    const cJSON *mine = cJSON_GetObjectItemCaseSensitive(po, "anthropic");
    const cJSON *opt;

    if (po && !cJSON_IsObject(po) && !cJSON_IsNull(po))
        return refuse(c, "provider_options: must be an object");
    if (!mine || cJSON_IsNull(mine))
        return 0;
    if (!cJSON_IsObject(mine))
        return refuse(c, "provider_options.anthropic: must be an object");
    cJSON_ArrayForEach(opt, mine)
    {
        for (size_t k = 0; k < SY_ARRAY_LEN(reserved); k++) {
            if (strcmp(opt->string, reserved[k]) == 0)
                return refuse(c, "provider_options.anthropic.%s: set by the gateway", reserved[k]);
        }
        attach(c, c->body, opt->string, cJSON_Duplicate(opt, true));
    }
    return 0;
}

/* Every step in order; the first failure wins. */
static int convert(struct conv *c, const cJSON *req, const struct dp_xctx *x)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(req, "user");
    const cJSON *m, *v;
    int i = 0, rc;

    if (!cJSON_IsObject(req))
        return refuse(c, "the request must be a JSON object");
    if ((rc = check_unsupported(c, req)) < 0)
        return rc;
    put(c, cJSON_AddStringToObject(c->body, "model", x->model->upstream_model));
    if ((rc = max_tokens(c, req)) < 0)
        return rc;
    if (!cJSON_IsArray(msgs))
        return refuse(c, "messages: must be a non-empty array");
    c->messages = put(c, cJSON_CreateArray());
    cJSON_ArrayForEach(m, msgs)
    {
        if ((rc = convert_message(c, m, i++)) < 0)
            return rc;
    }
    if (c->system)
        put(c, cJSON_AddStringToObject(c->body, "system", c->system));
    if (cJSON_GetArraySize(c->messages) == 0)
        return refuse(c, "messages: the anthropic API family needs at least one user or "
                         "assistant message with content");
    compact_messages(c->messages);
    attach(c, c->body, "messages", c->messages);
    c->messages = NULL; /* owned by the body now */
    if ((rc = stop_sequences(c, req)) < 0)
        return rc;
    if ((rc = number_param(c, req, "temperature", &v)) < 0)
        return rc;
    if (v)
        put(c, cJSON_AddNumberToObject(c->body, "temperature", v->valuedouble));
    if ((rc = number_param(c, req, "top_p", &v)) < 0)
        return rc;
    if (v)
        put(c, cJSON_AddNumberToObject(c->body, "top_p", v->valuedouble));
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools))
        return refuse(c, "tools: must be an array");
    if (cJSON_GetArraySize(tools) > 0) {
        if ((rc = convert_tools(c, tools)) < 0)
            return rc;
        if ((rc = convert_tool_choice(c, req)) < 0)
            return rc;
    }
    if (cJSON_IsString(user)) {
        cJSON *meta = put(c, cJSON_AddObjectToObject(c->body, "metadata"));
        put(c, cJSON_AddStringToObject(meta, "user_id", user->valuestring));
    }
    if (x->stream)
        put(c, cJSON_AddTrueToObject(c->body, "stream"));
    return merge_provider_options(c, req);
}

cJSON *dp_anthropic_body(const cJSON *req, const struct dp_xctx *x, char **errmsg)
{
    struct conv c = {.ok = true, .errmsg = errmsg};
    int rc;

    *errmsg = NULL;
    c.body = put(&c, cJSON_CreateObject());
    rc = c.ok ? convert(&c, req, x) : -ENOMEM;
    cJSON_Delete(c.messages); /* still ours when conversion stopped before attaching it */
    free(c.system);
    if (rc < 0 || !c.ok) {
        cJSON_Delete(c.body);
        if (rc == 0 || rc == -ENOMEM) {
            free(*errmsg);
            *errmsg = NULL;
        } else if (*errmsg) {
            /* The interface wants the model named: the client may have asked for a route. */
            char *msg = sy_xasprintf("model %s: %s", x->model ? x->model->name : "?", *errmsg);
            free(*errmsg);
            *errmsg = msg;
        }
        return NULL;
    }
    return c.body;
}
