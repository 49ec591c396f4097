/* dataplane/providers/dp_gemini_response.c - Gemini answers -> OpenAI objects: a whole
 * GenerateContentResponse -> chat.completion, a BatchEmbedContentsResponse -> an embeddings
 * list, and Gemini's {"error":{"code","message","status"}} -> a normalized error; plus the
 * pieces the stream translator shares (finish reasons, usage, tool call ids).
 *
 * Bodies come from the network: every member is type-checked, counts are clamped before
 * they become integers, and a body of the wrong shape is refused with a message (the chat
 * layer answers 502 upstream_invalid_response), never half-translated. Pure functions; any
 * thread.
 */
#include "dp_gemini.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sy_util.h"

/* Largest token count taken from a provider: far above any real one, far below INT64_MAX. */
#define GEMINI_MAX_COUNT 1e15

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static const char *string_of(const cJSON *obj, const char *name)
{
    const cJSON *v = member(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A count from the provider: a finite number in [0, GEMINI_MAX_COUNT], else -1. */
static int64_t count_of(const cJSON *obj, const char *name)
{
    const cJSON *v = member(obj, name);

    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > GEMINI_MAX_COUNT)
        return -1;
    return (int64_t)v->valuedouble;
}

/* Sets *errmsg and returns -EINVAL; <errmsg> may already hold nothing. */
static int refuse(char **errmsg, const char *msg)
{
    *errmsg = sy_xstrdup(msg);
    return -EINVAL;
}

/* Prints <root> (deleted here) into *out. 0 or -ENOMEM. */
static int print_out(cJSON *root, char **out, size_t *out_len)
{
    *out = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!*out)
        return -ENOMEM;
    *out_len = strlen(*out);
    return 0;
}

/* ---- shared with the stream translator -------------------------------------------------- */

const char *dp_gemini_finish_reason(const char *reason, bool tool_calls)
{
    static const char *const filtered[] = {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    };

    if (reason && strcmp(reason, "MAX_TOKENS") == 0)
        return "length";
    for (size_t i = 0; reason && i < SY_ARRAY_LEN(filtered); i++) {
        if (strcmp(reason, filtered[i]) == 0)
            return "content_filter";
    }
    /* STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...: the answer simply ended. */
    return tool_calls ? "tool_calls" : "stop";
}

cJSON *dp_gemini_usage(const cJSON *um, struct dp_usage *u)
{
    int64_t prompt, cand, thoughts, cached, total;
    cJSON *o, *d;

    if (!cJSON_IsObject(um))
        return NULL;
    prompt = count_of(um, "promptTokenCount");
    cand = count_of(um, "candidatesTokenCount");
    thoughts = count_of(um, "thoughtsTokenCount");
    cached = count_of(um, "cachedContentTokenCount");
    total = count_of(um, "totalTokenCount");
    prompt = prompt < 0 ? 0 : prompt;
    /* Thinking tokens are billed as output, as OpenAI's reasoning tokens are. */
    cand = (cand < 0 ? 0 : cand) + (thoughts < 0 ? 0 : thoughts);
    if (total < 0)
        total = prompt + cand;
    u->prompt_tokens = prompt;
    u->completion_tokens = cand;
    u->cached_tokens = cached < 0 ? 0 : cached;
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)cand);
    cJSON_AddNumberToObject(o, "total_tokens", (double)total);
    d = cJSON_AddObjectToObject(o, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)u->cached_tokens);
    d = cJSON_AddObjectToObject(o, "completion_tokens_details");
    cJSON_AddNumberToObject(d, "reasoning_tokens", (double)(thoughts < 0 ? 0 : thoughts));
    if (!d || !cJSON_GetObjectItemCaseSensitive(d, "reasoning_tokens")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void dp_gemini_call_id(const struct dp_xctx *x, int index, char *buf, size_t len)
{
    if (x && x->request_id && x->request_id[0])
        snprintf(buf, len, "call_%s_%d", x->request_id, index);
    else
        snprintf(buf, len, "call_%d", index);
}

void dp_gemini_answer_id(const struct dp_xctx *x, char *buf, size_t len)
{
    snprintf(buf, len, "chatcmpl-%s", x && x->request_id ? x->request_id : "gemini");
}

const char *dp_gemini_model_name(const struct dp_xctx *x)
{
    return x && x->model && x->model->upstream_model ? x->model->upstream_model : "gemini";
}

char *dp_gemini_args_json(const cJSON *args)
{
    if (!args) {
        char *s = cJSON_malloc(3);
        if (s)
            memcpy(s, "{}", 3);
        return s;
    }
    if (!cJSON_IsObject(args))
        return NULL;
    return cJSON_PrintUnformatted(args);
}

/* ---- chat.completion -------------------------------------------------------------------- */

/* Joins the text of the non-thought parts of <parts> (NULL when there is none). Sets *bad
 * when a part is not an object. */
static char *parts_text(const cJSON *parts, bool *bad, bool *oom)
{
    const cJSON *p;
    size_t len = 0, at = 0;
    bool any = false;
    char *s;

    cJSON_ArrayForEach(p, parts)
    {
        const char *t = string_of(p, "text");
        if (!cJSON_IsObject(p)) {
            *bad = true;
            return NULL;
        }
        if (t && !cJSON_IsTrue(member(p, "thought"))) {
            len += strlen(t);
            any = true;
        }
    }
    if (!any)
        return NULL;
    s = malloc(len + 1);
    if (!s) {
        *oom = true;
        return NULL;
    }
    cJSON_ArrayForEach(p, parts)
    {
        const char *t = string_of(p, "text");
        if (t && !cJSON_IsTrue(member(p, "thought"))) {
            size_t n = strlen(t);
            memcpy(s + at, t, n);
            at += n;
        }
    }
    s[at] = '\0';
    return s;
}

/* The tool_calls array for the functionCall parts of <parts>, or NULL when there are none.
 * Returns -EINVAL with *errmsg on a malformed call. */
static int tool_calls(const cJSON *parts, const struct dp_xctx *x, cJSON **out, char **errmsg)
{
    const cJSON *p;
    cJSON *arr = NULL;
    int n = 0;

    *out = NULL;
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *fc = member(p, "functionCall");
        const char *name = string_of(fc, "name");
        char id[192], *args;
        cJSON *tc, *fn;

        if (!fc)
            continue;
        args = dp_gemini_args_json(member(fc, "args"));
        if (!name || !args) {
            cJSON_free(args);
            cJSON_Delete(arr);
            return refuse(errmsg, "a functionCall part has no name or its args are not an "
                                  "object");
        }
        if (!arr)
            arr = cJSON_CreateArray();
        dp_gemini_call_id(x, n++, id, sizeof(id));
        tc = cJSON_CreateObject();
        cJSON_AddStringToObject(tc, "id", id);
        cJSON_AddStringToObject(tc, "type", "function");
        fn = cJSON_AddObjectToObject(tc, "function");
        cJSON_AddStringToObject(fn, "name", name);
        cJSON_AddStringToObject(fn, "arguments", args);
        cJSON_free(args);
        if (!cJSON_AddItemToArray(arr, tc)) {
            cJSON_Delete(tc);
            cJSON_Delete(arr);
            return -ENOMEM;
        }
    }
    *out = arr;
    return 0;
}

/* The common head of completion objects. */
static cJSON *answer_head(const struct dp_xctx *x, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    char id[160];

    dp_gemini_answer_id(x, id, sizeof(id));
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", x ? (double)x->created : 0);
    cJSON_AddStringToObject(o, "model", dp_gemini_model_name(x));
    return o;
}

int dp_gemini_chat_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                            size_t *out_len, struct dp_usage *u, char **errmsg)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *cands, *cand = NULL, *parts = NULL;
    cJSON *resp = NULL, *choice, *msg, *calls = NULL, *usage;
    const char *finish;
    char *text = NULL;
    bool bad = false, oom = false;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(root)) {
        rc = refuse(errmsg, "the answer is not a JSON object");
        goto out_root;
    }
    cands = member(root, "candidates");
    if (cands && !cJSON_IsArray(cands)) {
        rc = refuse(errmsg, "\"candidates\" is not an array");
        goto out_root;
    }
    cand = cJSON_GetArrayItem(cands, 0);
    if (cand && !cJSON_IsObject(cand)) {
        rc = refuse(errmsg, "candidates[0] is not an object");
        goto out_root;
    }
    if (!cand && !string_of(member(root, "promptFeedback"), "blockReason")) {
        rc = refuse(errmsg, "the answer has no candidates and no promptFeedback.blockReason");
        goto out_root;
    }
    parts = member(member(cand, "content"), "parts");
    if (parts && !cJSON_IsArray(parts)) {
        rc = refuse(errmsg, "candidates[0].content.parts is not an array");
        goto out_root;
    }
    text = parts_text(parts, &bad, &oom);
    if (bad || oom) {
        rc = oom ? -ENOMEM : refuse(errmsg, "candidates[0].content.parts has a non-object part");
        goto out_root;
    }
    rc = tool_calls(parts, x, &calls, errmsg);
    if (rc < 0)
        goto out_text;
    /* No candidate: the prompt itself was blocked (promptFeedback.blockReason). */
    finish = cand ? dp_gemini_finish_reason(string_of(cand, "finishReason"), calls != NULL)
                  : "content_filter";

    resp = answer_head(x, "chat.completion");
    choice = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(resp, "choices"), choice);
    cJSON_AddNumberToObject(choice, "index", 0);
    msg = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    if (text || !calls)
        cJSON_AddStringToObject(msg, "content", text ? text : "");
    else
        cJSON_AddNullToObject(msg, "content");
    cJSON_AddNullToObject(msg, "refusal");
    if (calls && !cJSON_AddItemToObject(msg, "tool_calls", calls))
        cJSON_Delete(calls);
    calls = NULL;
    cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddStringToObject(choice, "finish_reason", finish);
    usage = dp_gemini_usage(member(root, "usageMetadata"), u);
    if (usage && !cJSON_AddItemToObject(resp, "usage", usage))
        cJSON_Delete(usage);
    /* Every allocation above ends in the last member; print_out refuses a broken tree. */
    if (!cJSON_GetObjectItemCaseSensitive(choice, "finish_reason")) {
        cJSON_Delete(resp);
        resp = NULL;
    }
    rc = print_out(resp, out, out_len);

out_text:
    free(text);
out_root:
    cJSON_Delete(root);
    return rc;
}

/* ---- embeddings ------------------------------------------------------------------------- */

static char *base64(const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* The values as base64 of little-endian float32, OpenAI's encoding_format=base64. */
static cJSON *values_base64(const cJSON *values)
{
    size_t n = (size_t)cJSON_GetArraySize(values), k = 0;
    unsigned char *buf = malloc(n * 4 + 1);
    const cJSON *v;
    cJSON *s = NULL;
    char *b64;

    if (!buf)
        return NULL;
    cJSON_ArrayForEach(v, values)
    {
        double d = v->valuedouble;
        /* Out-of-range doubles would make the conversion undefined. */
        float f = d > FLT_MAX ? INFINITY : d < -FLT_MAX ? -INFINITY : (float)d;
        uint32_t bits;
        memcpy(&bits, &f, sizeof(bits));
        for (int i = 0; i < 4; i++)
            buf[k++] = (unsigned char)(bits >> (8 * i));
    }
    b64 = base64(buf, k);
    if (b64)
        s = cJSON_CreateString(b64);
    free(b64);
    free(buf);
    return s;
}

/* What the client asked that the answer depends on: base64 output, and a token estimate
 * (Gemini's batchEmbedContents reports no token counts). */
static void embed_request_facts(const struct dp_xctx *x, bool *b64, int64_t *tokens)
{
    cJSON *req = x && x->raw_body ? cJSON_ParseWithLength(x->raw_body, x->raw_len) : NULL;
    const cJSON *input = member(req, "input"), *it;
    const char *fmt = string_of(req, "encoding_format");

    *b64 = fmt && strcmp(fmt, "base64") == 0;
    *tokens = 0;
    for (it = cJSON_IsArray(input) ? input->child : input; it; it = it->next) {
        if (cJSON_IsString(it))
            *tokens += (int64_t)((strlen(it->valuestring) + 3) / 4);
        if (!cJSON_IsArray(input))
            break;
    }
    cJSON_Delete(req);
}

int dp_gemini_embed_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                             size_t *out_len, struct dp_usage *u, char **errmsg)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *embs = member(root, "embeddings"), *e, *v;
    cJSON *resp, *data, *usage;
    int64_t tokens, reported;
    bool b64;
    int i = 0, rc;

    *out = NULL;
    if (!cJSON_IsArray(embs)) {
        rc = refuse(errmsg, "the answer has no \"embeddings\" array");
        goto out_root;
    }
    cJSON_ArrayForEach(e, embs)
    {
        const cJSON *values = member(e, "values");
        bool ok = cJSON_IsArray(values);
        cJSON_ArrayForEach(v, values)
        {
            ok = ok && cJSON_IsNumber(v);
        }
        if (!ok) {
            rc = refuse(errmsg, "an embedding has no \"values\" array of numbers");
            goto out_root;
        }
    }
    embed_request_facts(x, &b64, &tokens);
    reported = count_of(member(root, "usageMetadata"), "promptTokenCount");
    if (reported >= 0)
        tokens = reported;

    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "object", "list");
    data = cJSON_AddArrayToObject(resp, "data");
    cJSON_ArrayForEach(e, embs)
    {
        cJSON *item = cJSON_CreateObject();
        const cJSON *values = member(e, "values");
        cJSON *vec = b64 ? values_base64(values) : cJSON_Duplicate(values, true);
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", i++);
        if (!vec || !cJSON_AddItemToObject(item, "embedding", vec)) {
            cJSON_Delete(vec);
            cJSON_Delete(item);
            cJSON_Delete(resp);
            rc = -ENOMEM;
            goto out_root;
        }
        if (!cJSON_AddItemToArray(data, item)) {
            cJSON_Delete(item);
            cJSON_Delete(resp);
            rc = -ENOMEM;
            goto out_root;
        }
    }
    cJSON_AddStringToObject(resp, "model", dp_gemini_model_name(x));
    usage = cJSON_AddObjectToObject(resp, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)tokens);
    if (!cJSON_AddNumberToObject(usage, "total_tokens", (double)tokens)) {
        cJSON_Delete(resp);
        resp = NULL;
    }
    u->prompt_tokens = tokens;
    u->completion_tokens = 0;
    rc = print_out(resp, out, out_len);

out_root:
    cJSON_Delete(root);
    return rc;
}

/* ---- errors ----------------------------------------------------------------------------- */

/* The first details[].reason ("API_KEY_INVALID", ...), or NULL. */
static const char *detail_reason(const cJSON *err)
{
    const cJSON *d;

    cJSON_ArrayForEach(d, member(err, "details"))
    {
        const char *r = string_of(d, "reason");
        if (r)
            return r;
    }
    return NULL;
}

void dp_gemini_error_object(int status, const cJSON *err, struct dp_error_info *out)
{
    const char *gstatus = string_of(err, "status"), *msg = string_of(err, "message");
    const char *reason = detail_reason(err);
    int64_t code = count_of(err, "code");
    bool bad_key = reason && strncmp(reason, "API_KEY_", 8) == 0;

    /* An error event inside a 200 stream carries its own HTTP code. */
    if (status < 400 && code >= 400 && code <= 599)
        status = (int)code;
    /* Gemini answers a bad key with 400 INVALID_ARGUMENT + reason API_KEY_INVALID: that is
     * the operator's key, not the client's request, so it is classified as a 401. */
    dp_error_classify(bad_key ? 401 : status, gstatus, reason, msg, NULL, out);
    if (bad_key)
        snprintf(out->message, sizeof(out->message), "HTTP %d (%s): %s", status, reason,
                 msg && *msg ? msg : "no message");
}

void dp_gemini_error(int status, const char *body, size_t len, struct dp_error_info *out)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *top = cJSON_IsArray(root) ? root->child : root; /* [{"error":...}] */
    const cJSON *err = member(top, "error");
    char snippet[256];

    if (cJSON_IsObject(err)) {
        dp_gemini_error_object(status, err, out);
    } else if (cJSON_IsString(err)) {
        dp_error_classify(status, NULL, NULL, err->valuestring, NULL, out);
    } else {
        size_t n = len < sizeof(snippet) - 1 ? len : sizeof(snippet) - 1;
        if (n)
            memcpy(snippet, body, n);
        snippet[n] = '\0';
        dp_error_classify(status, NULL, NULL, snippet, NULL, out);
    }
    cJSON_Delete(root);
}
