/* dataplane/providers/dp_gemini_request.c - OpenAI chat and embeddings requests -> Gemini
 * generateContent and batchEmbedContents bodies.
 *
 * The request is the client's, so everything is checked: a field of the wrong type or a
 * feature Gemini has no equivalent for is refused with a message naming the field, never
 * silently dropped (docs/providers-gemini.md lists the mappings). The trees built here are
 * input-sized; every cJSON allocation goes through struct build, so an OOM anywhere gives
 * -ENOMEM rather than half a body. Pure functions; any thread.
 */
#include "dp_gemini.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

/* One translation: the first error wins; OOM is remembered separately. */
struct build {
    bool oom;
    char *err; /* first -EINVAL message */
};

static cJSON *put(struct build *b, cJSON *item)
{
    if (!item)
        b->oom = true;
    return item;
}

/* Appends <item> (taken) to the array <arr>. */
static void push(struct build *b, cJSON *arr, cJSON *item)
{
    if (!item) {
        b->oom = true;
        return;
    }
    if (!cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        b->oom = true;
    }
}

/* Adds <item> (taken) to the object <obj> as <name>. */
static void set(struct build *b, cJSON *obj, const char *name, cJSON *item)
{
    if (!item) {
        b->oom = true;
        return;
    }
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        b->oom = true;
    }
}

static int fail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct build *b, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!b->err) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        b->err = sy_xstrdup(msg);
    }
    return -EINVAL;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* Whether <v> is absent or JSON null: both mean "not set" in OpenAI requests. */
static bool unset(const cJSON *v)
{
    return !v || cJSON_IsNull(v);
}

/* {"text": <s>} */
static cJSON *text_part(struct build *b, const char *s)
{
    cJSON *p = put(b, cJSON_CreateObject());
    put(b, cJSON_AddStringToObject(p, "text", s));
    return p;
}

/* ---- JSON schemas: OpenAI's JSON Schema -> Gemini's OpenAPI subset ------------------------ */

static const char *const schema_keys[] = {
    "format",        "title",         "description",      "nullable", "minItems", "maxItems",
    "minLength",     "maxLength",     "pattern",          "example",  "minimum",  "maximum",
    "minProperties", "maxProperties", "propertyOrdering", "default",
};

static cJSON *schema(struct build *b, const cJSON *s, const cJSON *root, const char *path,
                     int depth);

/* Follows a local "$ref" (#/$defs/X or #/definitions/X) inside <root>. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    const char *name = NULL;
    const cJSON *defs = NULL;

    if (strncmp(ref, "#/$defs/", 8) == 0) {
        defs = member(root, "$defs");
        name = ref + 8;
    } else if (strncmp(ref, "#/definitions/", 14) == 0) {
        defs = member(root, "definitions");
        name = ref + 14;
    }
    return name && cJSON_IsObject(defs) ? member(defs, name) : NULL;
}

/* "type": a string is kept; ["T","null"] becomes "T" plus "nullable": true. */
static int schema_type(struct build *b, const cJSON *t, cJSON *out, const char *path)
{
    const cJSON *it;
    const char *type = NULL;
    bool nullable = false;

    if (cJSON_IsString(t)) {
        put(b, cJSON_AddStringToObject(out, "type", t->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(t))
        return fail(b, "%s.type: expected a string or an array of strings", path);
    cJSON_ArrayForEach(it, t)
    {
        if (!cJSON_IsString(it))
            return fail(b, "%s.type: expected a string or an array of strings", path);
        if (strcmp(it->valuestring, "null") == 0)
            nullable = true;
        else if (!type)
            type = it->valuestring;
        else
            return fail(b, "%s.type: Gemini schemas allow one type (plus null); use anyOf", path);
    }
    if (type)
        put(b, cJSON_AddStringToObject(out, "type", type));
    if (nullable)
        put(b, cJSON_AddTrueToObject(out, "nullable"));
    return 0;
}

/* "properties": each value is a schema; an empty object is left out (Gemini rejects it). */
static int schema_properties(struct build *b, const cJSON *props, cJSON *out, const cJSON *root,
                             const char *path, int depth)
{
    const cJSON *p;
    cJSON *o;

    if (!cJSON_IsObject(props))
        return fail(b, "%s.properties: expected an object", path);
    if (!props->child)
        return 0;
    o = put(b, cJSON_CreateObject());
    cJSON_ArrayForEach(p, props)
    {
        char sub[384];
        snprintf(sub, sizeof(sub), "%s.properties.%s", path, p->string);
        set(b, o, p->string, schema(b, p, root, sub, depth + 1));
        if (b->err)
            break;
    }
    set(b, out, "properties", o);
    return b->err ? -EINVAL : 0;
}

static int schema_any_of(struct build *b, const cJSON *any, cJSON *out, const cJSON *root,
                         const char *path, int depth)
{
    const cJSON *it;
    cJSON *arr;
    int i = 0;

    if (!cJSON_IsArray(any))
        return fail(b, "%s.anyOf: expected an array", path);
    arr = put(b, cJSON_CreateArray());
    cJSON_ArrayForEach(it, any)
    {
        char sub[384];
        snprintf(sub, sizeof(sub), "%s.anyOf[%d]", path, i++);
        push(b, arr, schema(b, it, root, sub, depth + 1));
        if (b->err)
            break;
    }
    set(b, out, "anyOf", arr);
    return b->err ? -EINVAL : 0;
}

/* Copies the keywords Gemini's Schema knows, converting what has an equivalent. Returns the
 * new schema, or NULL with b->err or b->oom set. */
static cJSON *schema(struct build *b, const cJSON *s, const cJSON *root, const char *path,
                     int depth)
{
    const cJSON *v;
    cJSON *out;

    if (depth > DP_GEMINI_MAX_DEPTH) {
        fail(b, "%s: the schema nests deeper than %d levels (a recursive $ref?)", path,
             DP_GEMINI_MAX_DEPTH);
        return NULL;
    }
    if (!cJSON_IsObject(s)) {
        fail(b, "%s: expected a JSON schema object", path);
        return NULL;
    }
    v = member(s, "$ref");
    if (v) {
        const cJSON *target = cJSON_IsString(v) ? resolve_ref(root, v->valuestring) : NULL;
        if (!target) {
            fail(b, "%s.$ref: only local references to #/$defs/ or #/definitions/ are supported",
                 path);
            return NULL;
        }
        return schema(b, target, root, path, depth + 1);
    }
    out = put(b, cJSON_CreateObject());
    v = member(s, "type");
    if (v && schema_type(b, v, out, path) < 0)
        goto out_delete;
    for (size_t k = 0; k < SY_ARRAY_LEN(schema_keys); k++) {
        v = member(s, schema_keys[k]);
        if (v && !member(out, schema_keys[k]))
            set(b, out, schema_keys[k], cJSON_Duplicate(v, true));
    }
    v = member(s, "enum");
    if (cJSON_IsArray(v))
        set(b, out, "enum", cJSON_Duplicate(v, true));
    v = member(s, "const");
    if (cJSON_IsString(v) && !member(s, "enum")) {
        cJSON *e = put(b, cJSON_AddArrayToObject(out, "enum"));
        push(b, e, cJSON_CreateString(v->valuestring));
    }
    v = member(s, "required");
    if (cJSON_IsArray(v))
        set(b, out, "required", cJSON_Duplicate(v, true));
    v = member(s, "properties");
    if (v && schema_properties(b, v, out, root, path, depth) < 0)
        goto out_delete;
    v = member(s, "items");
    if (v) {
        char sub[384];
        snprintf(sub, sizeof(sub), "%s.items", path);
        set(b, out, "items", schema(b, v, root, sub, depth + 1));
        if (b->err)
            goto out_delete;
    }
    v = member(s, "anyOf");
    if (!v)
        v = member(s, "oneOf"); /* closest equivalent Gemini has */
    if (v && schema_any_of(b, v, out, root, path, depth) < 0)
        goto out_delete;
    return out;

out_delete:
    cJSON_Delete(out);
    return NULL;
}

/* Whether a top-level schema says nothing Gemini can use (an object with no properties). */
static bool schema_empty(const cJSON *s)
{
    const cJSON *props = member(s, "properties");
    const cJSON *type = member(s, "type");

    return cJSON_IsString(type) && strcmp(type->valuestring, "object") == 0 &&
           !(cJSON_IsObject(props) && props->child) && !member(s, "anyOf");
}

/* ---- message content ------------------------------------------------------------------- */

/* The MIME type of an http(s) URL from its extension, or NULL when it says nothing. */
static const char *mime_from_url(const char *url)
{
    static const struct {
        const char *ext;
        const char *mime;
    } map[] = {
        {".png", "image/png"},   {".jpg", "image/jpeg"},      {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},   {".webp", "image/webp"},     {".heic", "image/heic"},
        {".heif", "image/heif"}, {".pdf", "application/pdf"},
    };
    size_t n = strcspn(url, "?#");

    for (size_t i = 0; i < SY_ARRAY_LEN(map); i++) {
        size_t el = strlen(map[i].ext);
        if (n > el && strncasecmp(url + n - el, map[i].ext, el) == 0)
            return map[i].mime;
    }
    return NULL;
}

/* "data:<mime>;base64,<data>" -> {"inlineData":{"mimeType","data"}}. */
static cJSON *data_url_part(struct build *b, const char *url, const char *path)
{
    const char *mime = url + 5, *comma = strchr(mime, ','), *semi;
    cJSON *p, *d;
    char *m;

    semi = comma ? memchr(mime, ';', (size_t)(comma - mime)) : NULL;
    if (!comma || !semi || semi == mime || strncmp(semi, ";base64,", 8) != 0) {
        fail(b, "%s: only base64 data URLs (data:<mime type>;base64,...) are supported", path);
        return NULL;
    }
    m = sy_xstrndup(mime, (size_t)(semi - mime));
    p = put(b, cJSON_CreateObject());
    d = put(b, cJSON_AddObjectToObject(p, "inlineData"));
    put(b, cJSON_AddStringToObject(d, "mimeType", m));
    put(b, cJSON_AddStringToObject(d, "data", comma + 1));
    free(m);
    return p;
}

/* An image or file URL: data URLs are sent inline, http(s) and gs:// URLs by reference. */
static cJSON *url_part(struct build *b, const char *url, const char *path)
{
    cJSON *p, *d;
    const char *mime;

    if (strncmp(url, "data:", 5) == 0)
        return data_url_part(b, url, path);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0 &&
        strncmp(url, "gs://", 5) != 0) {
        fail(b, "%s: expected a data:, http(s):// or gs:// URL", path);
        return NULL;
    }
    p = put(b, cJSON_CreateObject());
    d = put(b, cJSON_AddObjectToObject(p, "fileData"));
    mime = mime_from_url(url);
    if (mime)
        put(b, cJSON_AddStringToObject(d, "mimeType", mime));
    put(b, cJSON_AddStringToObject(d, "fileUri", url));
    return p;
}

/* One element of an OpenAI content array -> one Gemini part (NULL + b->err when refused). */
static cJSON *content_part(struct build *b, const cJSON *it, const char *path)
{
    const cJSON *type = member(it, "type"), *v;
    char sub[160];

    if (!cJSON_IsObject(it) || !cJSON_IsString(type)) {
        fail(b, "%s: expected an object with a string \"type\"", path);
        return NULL;
    }
    if (strcmp(type->valuestring, "text") == 0 || strcmp(type->valuestring, "refusal") == 0) {
        v = member(it, type->valuestring);
        if (!cJSON_IsString(v)) {
            fail(b, "%s.%s: expected a string", path, type->valuestring);
            return NULL;
        }
        return text_part(b, v->valuestring);
    }
    if (strcmp(type->valuestring, "image_url") == 0) {
        v = member(it, "image_url");
        if (cJSON_IsObject(v))
            v = member(v, "url");
        snprintf(sub, sizeof(sub), "%s.image_url.url", path);
        if (!cJSON_IsString(v)) {
            fail(b, "%s: expected a string", sub);
            return NULL;
        }
        return url_part(b, v->valuestring, sub);
    }
    if (strcmp(type->valuestring, "input_audio") == 0) {
        const cJSON *a = member(it, "input_audio");
        const cJSON *data = member(a, "data"), *fmt = member(a, "format");
        if (!cJSON_IsString(data) || !cJSON_IsString(fmt)) {
            fail(b, "%s.input_audio: expected {\"data\": string, \"format\": string}", path);
            return NULL;
        }
        char *mime = sy_xasprintf("audio/%s", fmt->valuestring);
        cJSON *p = put(b, cJSON_CreateObject());
        cJSON *d = put(b, cJSON_AddObjectToObject(p, "inlineData"));
        put(b, cJSON_AddStringToObject(d, "mimeType", mime));
        put(b, cJSON_AddStringToObject(d, "data", data->valuestring));
        free(mime);
        return p;
    }
    if (strcmp(type->valuestring, "file") == 0) {
        v = member(member(it, "file"), "file_data");
        snprintf(sub, sizeof(sub), "%s.file.file_data", path);
        if (!cJSON_IsString(v)) {
            fail(b, "%s: expected a data URL (file_id is not supported by Gemini)", sub);
            return NULL;
        }
        if (strncmp(v->valuestring, "data:", 5) != 0) {
            fail(b, "%s: expected a data: URL", sub);
            return NULL;
        }
        return data_url_part(b, v->valuestring, sub);
    }
    fail(b, "%s.type: \"%s\" is not supported by Gemini", path, type->valuestring);
    return NULL;
}

/* Appends the parts of an OpenAI message "content" to <parts>. <text_only> refuses
 * non-text parts (system messages). Empty strings add nothing. */
static int content_parts(struct build *b, const cJSON *content, cJSON *parts, const char *path,
                         bool text_only)
{
    const cJSON *it;
    int j = 0;

    if (unset(content))
        return 0;
    if (cJSON_IsString(content)) {
        if (content->valuestring[0])
            push(b, parts, text_part(b, content->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(content))
        return fail(b, "%s: expected a string, an array of parts or null", path);
    cJSON_ArrayForEach(it, content)
    {
        char sub[128];
        const cJSON *type = member(it, "type");
        snprintf(sub, sizeof(sub), "%s[%d]", path, j++);
        if (text_only && !(cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0))
            return fail(b, "%s: Gemini system instructions can only contain text", sub);
        cJSON *p = content_part(b, it, sub);
        if (!p)
            return -EINVAL;
        const cJSON *t = member(p, "text");
        if (cJSON_IsString(t) && !t->valuestring[0]) {
            cJSON_Delete(p);
            continue;
        }
        push(b, parts, p);
    }
    return 0;
}

/* A tool message's content as text: a string or the joined text parts. */
static char *tool_text(struct build *b, const cJSON *content, const char *path)
{
    const cJSON *it;
    size_t len = 0;
    char *s;

    if (unset(content))
        return sy_xstrdup("");
    if (cJSON_IsString(content))
        return sy_xstrdup(content->valuestring);
    if (!cJSON_IsArray(content)) {
        fail(b, "%s: expected a string or an array of text parts", path);
        return NULL;
    }
    cJSON_ArrayForEach(it, content)
    {
        const cJSON *t = member(it, "text");
        if (!cJSON_IsString(t)) {
            fail(b, "%s: tool results can only contain text parts", path);
            return NULL;
        }
        len += strlen(t->valuestring);
    }
    s = malloc(len + 1);
    if (!s) {
        b->oom = true;
        return NULL;
    }
    len = 0;
    cJSON_ArrayForEach(it, content)
    {
        size_t n = strlen(member(it, "text")->valuestring);
        memcpy(s + len, member(it, "text")->valuestring, n);
        len += n;
    }
    s[len] = '\0';
    return s;
}

/* {"functionResponse":{"name","response"}}: a JSON object result is sent as it is, anything
 * else as {"result": <text>}. */
static cJSON *function_response(struct build *b, const char *name, const cJSON *content,
                                const char *path)
{
    char *text = tool_text(b, content, path);
    cJSON *p, *fr, *resp;

    if (!text)
        return NULL;
    resp = cJSON_Parse(text);
    if (!cJSON_IsObject(resp)) {
        cJSON_Delete(resp);
        resp = put(b, cJSON_CreateObject());
        put(b, cJSON_AddStringToObject(resp, "result", text));
    }
    free(text);
    p = put(b, cJSON_CreateObject());
    fr = put(b, cJSON_AddObjectToObject(p, "functionResponse"));
    put(b, cJSON_AddStringToObject(fr, "name", name));
    set(b, fr, "response", resp);
    return p;
}

/* {"functionCall":{"name","args"}} from an OpenAI {"name","arguments"} object. */
static cJSON *function_call(struct build *b, const cJSON *fn, const char *path)
{
    const cJSON *name = member(fn, "name"), *args = member(fn, "arguments");
    cJSON *p, *fc, *obj;

    if (!cJSON_IsString(name) || !name->valuestring[0]) {
        fail(b, "%s.name: expected a non-empty string", path);
        return NULL;
    }
    if (cJSON_IsString(args) && args->valuestring[0]) {
        obj = cJSON_Parse(args->valuestring);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            fail(b, "%s.arguments: Gemini needs the arguments as a JSON object", path);
            return NULL;
        }
    } else if (unset(args) || cJSON_IsString(args)) {
        obj = put(b, cJSON_CreateObject());
    } else {
        fail(b, "%s.arguments: expected a string", path);
        return NULL;
    }
    p = put(b, cJSON_CreateObject());
    fc = put(b, cJSON_AddObjectToObject(p, "functionCall"));
    put(b, cJSON_AddStringToObject(fc, "name", name->valuestring));
    set(b, fc, "args", obj);
    return p;
}

/* The function name of the tool call <id>, looked up in the assistant messages before
 * message <before> (the nearest one wins). */
static const char *tool_call_name(const cJSON *msgs, int before, const char *id)
{
    const char *found = NULL;
    const cJSON *m;
    int i = 0;

    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *tc;
        if (i++ >= before)
            break;
        cJSON_ArrayForEach(tc, member(m, "tool_calls"))
        {
            const cJSON *tid = member(tc, "id");
            const cJSON *name = member(member(tc, "function"), "name");
            if (cJSON_IsString(tid) && strcmp(tid->valuestring, id) == 0 && cJSON_IsString(name))
                found = name->valuestring;
        }
    }
    return found;
}

/* Appends the parts of one assistant message: its text, then one functionCall per call. */
static int assistant_parts(struct build *b, const cJSON *m, cJSON *parts, const char *path)
{
    const cJSON *calls = member(m, "tool_calls"), *tc, *fc;
    char sub[128];
    int k = 0;

    snprintf(sub, sizeof(sub), "%s.content", path);
    if (content_parts(b, member(m, "content"), parts, sub, false) < 0)
        return -EINVAL;
    if (!unset(calls) && !cJSON_IsArray(calls))
        return fail(b, "%s.tool_calls: expected an array", path);
    cJSON_ArrayForEach(tc, calls)
    {
        snprintf(sub, sizeof(sub), "%s.tool_calls[%d].function", path, k++);
        cJSON *p = function_call(b, member(tc, "function"), sub);
        if (!p)
            return -EINVAL;
        push(b, parts, p);
    }
    fc = member(m, "function_call"); /* the legacy single-call form */
    if (!unset(fc)) {
        snprintf(sub, sizeof(sub), "%s.function_call", path);
        cJSON *p = function_call(b, fc, sub);
        if (!p)
            return -EINVAL;
        push(b, parts, p);
    }
    return 0;
}

/* Moves <parts> (taken) into the last turn of <contents> when it has <role>, else into a new
 * turn: Gemini wants user and model turns to alternate. */
static void add_turn(struct build *b, cJSON *contents, const char *role, cJSON *parts)
{
    cJSON *last = cJSON_GetArrayItem(contents, cJSON_GetArraySize(contents) - 1);
    const cJSON *lrole = member(last, "role");
    cJSON *turn;

    if (!parts->child) {
        cJSON_Delete(parts);
        return;
    }
    if (cJSON_IsString(lrole) && strcmp(lrole->valuestring, role) == 0) {
        cJSON *dst = cJSON_GetObjectItemCaseSensitive(last, "parts");
        while (parts->child) {
            cJSON *p = cJSON_DetachItemViaPointer(parts, parts->child);
            push(b, dst, p);
        }
        cJSON_Delete(parts);
        return;
    }
    turn = put(b, cJSON_CreateObject());
    put(b, cJSON_AddStringToObject(turn, "role", role));
    set(b, turn, "parts", parts);
    push(b, contents, turn);
}

static int messages(struct build *b, const cJSON *msgs, cJSON *body)
{
    cJSON *contents = put(b, cJSON_AddArrayToObject(body, "contents"));
    cJSON *sys = put(b, cJSON_CreateArray());
    const cJSON *m;
    int i = 0;

    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *role = member(m, "role");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        char path[64], sub[96];
        cJSON *parts;
        int rc = 0;

        snprintf(path, sizeof(path), "messages[%d]", i);
        snprintf(sub, sizeof(sub), "%s.content", path);
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            rc = fail(b, "%s: expected an object with a string \"role\"", path);
            goto out_sys;
        }
        if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
            if (content_parts(b, member(m, "content"), sys, sub, true) < 0)
                goto out_sys;
            i++;
            continue;
        }
        parts = put(b, cJSON_CreateArray());
        if (strcmp(r, "user") == 0) {
            rc = content_parts(b, member(m, "content"), parts, sub, false);
        } else if (strcmp(r, "assistant") == 0) {
            rc = assistant_parts(b, m, parts, path);
            r = "model";
        } else if (strcmp(r, "tool") == 0 || strcmp(r, "function") == 0) {
            const cJSON *id = member(m, "tool_call_id"), *fname = member(m, "name");
            const char *name = NULL;
            if (strcmp(r, "function") == 0) {
                if (!cJSON_IsString(fname))
                    rc = fail(b, "%s.name: expected a string", path);
                else
                    name = fname->valuestring;
            } else if (!cJSON_IsString(id)) {
                rc = fail(b, "%s.tool_call_id: expected a string", path);
            } else if (!(name = tool_call_name(msgs, i, id->valuestring))) {
                rc = fail(b,
                          "%s.tool_call_id: \"%.100s\" matches no earlier assistant tool call "
                          "(Gemini needs the function's name)",
                          path, id->valuestring);
            }
            if (name) {
                cJSON *p = function_response(b, name, member(m, "content"), sub);
                if (p)
                    push(b, parts, p);
                else
                    rc = -EINVAL;
            }
            r = "user";
        } else {
            rc = fail(b, "%s.role: \"%.40s\" is not supported by Gemini", path, r);
        }
        if (rc < 0 || b->err) {
            cJSON_Delete(parts);
            goto out_sys;
        }
        add_turn(b, contents, r, parts);
        i++;
    }
    if (sys->child) {
        cJSON *si = put(b, cJSON_AddObjectToObject(body, "systemInstruction"));
        set(b, si, "parts", sys);
        sys = NULL;
    }
    cJSON_Delete(sys);
    if (!b->oom && !contents->child)
        return fail(b, "messages: Gemini needs at least one user or assistant message with "
                       "content");
    return 0;

out_sys:
    cJSON_Delete(sys);
    return -EINVAL;
}

/* ---- tools ------------------------------------------------------------------------------ */

static int tools(struct build *b, const cJSON *tl, cJSON *body)
{
    const cJSON *t;
    cJSON *decls;
    int i = 0;

    if (unset(tl))
        return 0;
    if (!cJSON_IsArray(tl))
        return fail(b, "tools: expected an array");
    if (!tl->child)
        return 0;
    decls = put(b, cJSON_CreateArray());
    cJSON_ArrayForEach(t, tl)
    {
        const cJSON *type = member(t, "type"), *fn = member(t, "function");
        const cJSON *name = member(fn, "name"), *desc = member(fn, "description");
        const cJSON *params = member(fn, "parameters");
        char path[64];
        cJSON *d;

        snprintf(path, sizeof(path), "tools[%d]", i++);
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0) {
            cJSON_Delete(decls);
            return fail(b, "%s.type: only \"function\" tools are supported by Gemini", path);
        }
        if (!cJSON_IsString(name) || !name->valuestring[0]) {
            cJSON_Delete(decls);
            return fail(b, "%s.function.name: expected a non-empty string", path);
        }
        d = put(b, cJSON_CreateObject());
        push(b, decls, d);
        put(b, cJSON_AddStringToObject(d, "name", name->valuestring));
        if (cJSON_IsString(desc))
            put(b, cJSON_AddStringToObject(d, "description", desc->valuestring));
        if (!unset(params) && !schema_empty(params)) {
            char sub[96];
            snprintf(sub, sizeof(sub), "%s.function.parameters", path);
            set(b, d, "parameters", schema(b, params, params, sub, 0));
            if (b->err) {
                cJSON_Delete(decls);
                return -EINVAL;
            }
        }
    }
    cJSON *arr = put(b, cJSON_AddArrayToObject(body, "tools"));
    cJSON *obj = put(b, cJSON_CreateObject());
    set(b, obj, "functionDeclarations", decls);
    push(b, arr, obj);
    return 0;
}

static int tool_choice(struct build *b, const cJSON *tc, cJSON *body)
{
    const char *mode = NULL;
    const cJSON *name = NULL;
    cJSON *cfg;

    if (unset(tc))
        return 0;
    if (cJSON_IsString(tc)) {
        if (strcmp(tc->valuestring, "auto") == 0)
            mode = "AUTO";
        else if (strcmp(tc->valuestring, "none") == 0)
            mode = "NONE";
        else if (strcmp(tc->valuestring, "required") == 0)
            mode = "ANY";
    } else if (cJSON_IsObject(tc)) {
        name = member(member(tc, "function"), "name");
        if (cJSON_IsString(name))
            mode = "ANY";
    }
    if (!mode)
        return fail(b, "tool_choice: expected \"auto\", \"none\", \"required\" or "
                       "{\"type\":\"function\",\"function\":{\"name\":...}}");
    cfg = put(b, cJSON_AddObjectToObject(body, "toolConfig"));
    cfg = put(b, cJSON_AddObjectToObject(cfg, "functionCallingConfig"));
    put(b, cJSON_AddStringToObject(cfg, "mode", mode));
    if (name) {
        cJSON *names = put(b, cJSON_AddArrayToObject(cfg, "allowedFunctionNames"));
        push(b, names, cJSON_CreateString(name->valuestring));
    }
    return 0;
}

/* ---- generationConfig ------------------------------------------------------------------- */

/* Copies the number <name> of <req> to <gc> as <gname>; <integer> requires a whole number
 * >= 1. */
static int number(struct build *b, const cJSON *req, const char *name, cJSON *gc, const char *gname,
                  bool integer)
{
    const cJSON *v = member(req, name);

    if (unset(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(b, "%s: expected a number", name);
    if (integer && (v->valuedouble < 1 || v->valuedouble != floor(v->valuedouble) ||
                    v->valuedouble > 2147483647.0))
        return fail(b, "%s: expected a positive integer", name);
    cJSON_DeleteItemFromObjectCaseSensitive(gc, gname);
    put(b, cJSON_AddNumberToObject(gc, gname, v->valuedouble));
    return 0;
}

static int stop_sequences(struct build *b, const cJSON *stop, cJSON *gc)
{
    const cJSON *it;
    cJSON *arr;

    if (unset(stop))
        return 0;
    if (cJSON_IsString(stop)) {
        arr = put(b, cJSON_AddArrayToObject(gc, "stopSequences"));
        push(b, arr, cJSON_CreateString(stop->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(stop))
        return fail(b, "stop: expected a string or an array of strings");
    cJSON_ArrayForEach(it, stop)
    {
        if (!cJSON_IsString(it))
            return fail(b, "stop: expected a string or an array of strings");
    }
    if (stop->child)
        set(b, gc, "stopSequences", cJSON_Duplicate(stop, true));
    return 0;
}

static int response_format(struct build *b, const cJSON *rf, cJSON *gc)
{
    const cJSON *type = member(rf, "type");

    if (unset(rf))
        return 0;
    if (!cJSON_IsString(type))
        return fail(b, "response_format.type: expected a string");
    if (strcmp(type->valuestring, "text") == 0)
        return 0;
    if (strcmp(type->valuestring, "json_object") == 0) {
        put(b, cJSON_AddStringToObject(gc, "responseMimeType", "application/json"));
        return 0;
    }
    if (strcmp(type->valuestring, "json_schema") == 0) {
        const cJSON *s = member(member(rf, "json_schema"), "schema");
        put(b, cJSON_AddStringToObject(gc, "responseMimeType", "application/json"));
        if (!unset(s) && !schema_empty(s)) {
            set(b, gc, "responseSchema", schema(b, s, s, "response_format.json_schema.schema", 0));
            if (b->err)
                return -EINVAL;
        }
        return 0;
    }
    return fail(b, "response_format.type: \"%.40s\" is not supported by Gemini", type->valuestring);
}

static int generation_config(struct build *b, const cJSON *req, cJSON *body)
{
    cJSON *gc = put(b, cJSON_CreateObject());
    const cJSON *n = member(req, "n"), *lp = member(req, "logprobs");
    int rc = 0;

    if (!unset(n) && !(cJSON_IsNumber(n) && n->valuedouble == 1)) {
        rc = fail(b, "n: only n=1 is supported by the Gemini adapter");
        goto out_delete;
    }
    if (cJSON_IsTrue(lp)) {
        rc = fail(b, "logprobs: not supported by the Gemini adapter");
        goto out_delete;
    }
    if (number(b, req, "temperature", gc, "temperature", false) < 0 ||
        number(b, req, "top_p", gc, "topP", false) < 0 ||
        number(b, req, "presence_penalty", gc, "presencePenalty", false) < 0 ||
        number(b, req, "frequency_penalty", gc, "frequencyPenalty", false) < 0 ||
        number(b, req, "seed", gc, "seed", false) < 0 ||
        number(b, req, "max_tokens", gc, "maxOutputTokens", true) < 0 ||
        number(b, req, "max_completion_tokens", gc, "maxOutputTokens", true) < 0 ||
        stop_sequences(b, member(req, "stop"), gc) < 0 ||
        response_format(b, member(req, "response_format"), gc) < 0) {
        rc = -EINVAL;
        goto out_delete;
    }
    if (gc && gc->child) {
        set(b, body, "generationConfig", gc);
        return 0;
    }

out_delete:
    cJSON_Delete(gc);
    return rc;
}

/* ---- provider_options ------------------------------------------------------------------- */

/* Merges <src> into <dst>: objects member by member, anything else replaces. */
static int merge(struct build *b, cJSON *dst, const cJSON *src, int depth)
{
    const cJSON *it;

    if (depth > DP_GEMINI_MAX_DEPTH)
        return fail(b, "provider_options.gemini: nested deeper than %d levels",
                    DP_GEMINI_MAX_DEPTH);
    cJSON_ArrayForEach(it, src)
    {
        cJSON *cur = cJSON_GetObjectItemCaseSensitive(dst, it->string);
        if (cJSON_IsObject(cur) && cJSON_IsObject(it)) {
            if (merge(b, cur, it, depth + 1) < 0)
                return -EINVAL;
            continue;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(dst, it->string);
        set(b, dst, it->string, cJSON_Duplicate(it, true));
    }
    return 0;
}

/* The "gemini" member of provider_options, NULL when absent; -EINVAL on a wrong type. */
static int provider_options(struct build *b, const cJSON *req, const cJSON **out)
{
    const cJSON *po = member(req, "provider_options"), *g;

    *out = NULL;
    if (unset(po))
        return 0;
    if (!cJSON_IsObject(po))
        return fail(b, "provider_options: expected an object");
    g = member(po, "gemini");
    if (unset(g))
        return 0;
    if (!cJSON_IsObject(g))
        return fail(b, "provider_options.gemini: expected an object");
    *out = g;
    return 0;
}

/* ---- entry points ----------------------------------------------------------------------- */

static int finish(struct build *b, cJSON *body, cJSON **out, char **errmsg)
{
    if (b->err || b->oom) {
        /* A refused subtree reads as a failed allocation further up: the message wins. */
        cJSON_Delete(body);
        if (b->err) {
            *errmsg = b->err;
            return -EINVAL;
        }
        return -ENOMEM;
    }
    *out = body;
    return 0;
}

int dp_gemini_chat_body(const cJSON *req, cJSON **out, char **errmsg)
{
    struct build b = {0};
    cJSON *body = put(&b, cJSON_CreateObject());
    const cJSON *msgs = member(req, "messages"), *opts = NULL;

    *out = NULL;
    if (!cJSON_IsArray(msgs))
        fail(&b, "messages: expected an array");
    else if (messages(&b, msgs, body) == 0 && tools(&b, member(req, "tools"), body) == 0 &&
             tool_choice(&b, member(req, "tool_choice"), body) == 0 &&
             generation_config(&b, req, body) == 0 && provider_options(&b, req, &opts) == 0 && opts)
        merge(&b, body, opts, 0);
    return finish(&b, body, out, errmsg);
}

int dp_gemini_embed_body(const cJSON *req, const char *resource, cJSON **out, char **errmsg)
{
    struct build b = {0};
    cJSON *body = put(&b, cJSON_CreateObject());
    cJSON *reqs = put(&b, cJSON_AddArrayToObject(body, "requests"));
    const cJSON *input = member(req, "input"), *dims = member(req, "dimensions");
    const cJSON *fmt = member(req, "encoding_format"), *opts = NULL, *it;
    int i = 0;

    *out = NULL;
    if (!cJSON_IsString(input) && !(cJSON_IsArray(input) && input->child))
        fail(&b, "input: expected a string or a non-empty array of strings");
    if (!unset(dims) &&
        !(cJSON_IsNumber(dims) && dims->valuedouble >= 1 &&
          dims->valuedouble == floor(dims->valuedouble) && dims->valuedouble <= 65536))
        fail(&b, "dimensions: expected a positive integer");
    if (!unset(fmt) && !(cJSON_IsString(fmt) && (strcmp(fmt->valuestring, "float") == 0 ||
                                                 strcmp(fmt->valuestring, "base64") == 0)))
        fail(&b, "encoding_format: expected \"float\" or \"base64\"");
    provider_options(&b, req, &opts);
    for (it = cJSON_IsArray(input) ? input->child : input; it && !b.err; it = it->next) {
        cJSON *r, *content, *parts;
        if (!cJSON_IsString(it)) {
            fail(&b, "input[%d]: expected a string (token arrays are not supported by Gemini)", i);
            break;
        }
        r = put(&b, cJSON_CreateObject());
        push(&b, reqs, r);
        put(&b, cJSON_AddStringToObject(r, "model", resource));
        content = put(&b, cJSON_AddObjectToObject(r, "content"));
        parts = put(&b, cJSON_AddArrayToObject(content, "parts"));
        push(&b, parts, text_part(&b, it->valuestring));
        if (!unset(dims))
            put(&b, cJSON_AddNumberToObject(r, "outputDimensionality", dims->valuedouble));
        if (opts)
            merge(&b, r, opts, 0);
        if (!cJSON_IsArray(input))
            break;
        i++;
    }
    return finish(&b, body, out, errmsg);
}
