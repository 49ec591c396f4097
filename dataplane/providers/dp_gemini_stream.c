/* dataplane/providers/dp_gemini_stream.c - streamGenerateContent?alt=sse events -> OpenAI
 * chat.completion.chunk payloads.
 *
 * Each SSE "data:" is a whole GenerateContentResponse holding the next parts of
 * candidates[0]: text parts become content deltas, a functionCall part (Gemini sends calls
 * whole, never in fragments) becomes one complete tool_calls delta, finishReason becomes the
 * finish chunk, and the usageMetadata of the last event becomes the usage chunk sent before
 * "[DONE]". The first chunk carries delta.role. A malformed event or an {"error":...} event
 * ends the stream with an OpenAI error object. One state per stream, owned by the chat
 * exchange; the worker thread that runs it.
 */
#include "dp_gemini.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

struct dp_stream_xlate {
    struct dp_xctx x; /* request_id points at <request_id>; model is borrowed */
    char request_id[130];
    char id[160];
    bool started;  /* the role went out */
    bool finished; /* the finish chunk went out */
    int ncalls;    /* tool calls so far: the next call's index */
    cJSON *usage;  /* the latest usage, as an OpenAI object */
};

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

struct dp_stream_xlate *dp_gemini_stream_new(const struct dp_xctx *x)
{
    struct dp_stream_xlate *st = sy_xcalloc(1, sizeof(*st));

    if (x)
        st->x = *x;
    snprintf(st->request_id, sizeof(st->request_id), "%s", x && x->request_id ? x->request_id : "");
    st->x.request_id = st->request_id;
    st->x.raw_body = NULL;
    st->x.raw_len = 0;
    dp_gemini_answer_id(&st->x, st->id, sizeof(st->id));
    return st;
}

void dp_gemini_stream_free(struct dp_stream_xlate *st)
{
    if (!st)
        return;
    cJSON_Delete(st->usage);
    free(st);
}

/* Prints <root> (deleted here) and hands it to <emit>. */
static int emit_json(cJSON *root, dp_emit_fn emit, void *arg)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    int rc;

    cJSON_Delete(root);
    if (!s)
        return -ENOMEM;
    rc = emit(arg, s, strlen(s));
    cJSON_free(s);
    return rc;
}

static cJSON *chunk_head(const struct dp_stream_xlate *st)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)st->x.created);
    cJSON_AddStringToObject(o, "model", dp_gemini_model_name(&st->x));
    return o;
}

/* A new delta object; the stream's first one starts with the role. */
static cJSON *new_delta(struct dp_stream_xlate *st)
{
    cJSON *d = cJSON_CreateObject();

    if (!st->started) {
        cJSON_AddStringToObject(d, "role", "assistant");
        st->started = true;
    }
    return d;
}

/* Emits one chunk with <delta> (taken) and <finish> (NULL: null). */
static int emit_chunk(struct dp_stream_xlate *st, cJSON *delta, const char *finish, dp_emit_fn emit,
                      void *arg)
{
    cJSON *root = chunk_head(st);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *choice = cJSON_CreateObject();

    if (!cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        choice = NULL;
    }
    cJSON_AddNumberToObject(choice, "index", 0);
    if (!delta || !cJSON_AddItemToObject(choice, "delta", delta)) {
        cJSON_Delete(delta);
        cJSON_Delete(root);
        return -ENOMEM;
    }
    cJSON_AddNullToObject(choice, "logprobs");
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
    return emit_json(root, emit, arg);
}

/* Ends the stream with an OpenAI error object: the client's SDK raises it. */
static int emit_error(const struct dp_error_info *info, dp_emit_fn emit, void *arg)
{
    char *s = dp_error_info_json(info);

    emit(arg, s, strlen(s));
    free(s);
    return -EPROTO;
}

static int emit_invalid(const char *what, dp_emit_fn emit, void *arg)
{
    struct dp_error_info info = {.status = 502};

    snprintf(info.type, sizeof(info.type), "upstream_error");
    snprintf(info.code, sizeof(info.code), "upstream_invalid_response");
    snprintf(info.message, sizeof(info.message), "the provider's stream is unusable: %s", what);
    return emit_error(&info, emit, arg);
}

/* One functionCall part -> a complete tool_calls delta. */
static int emit_call(struct dp_stream_xlate *st, const cJSON *fc, dp_emit_fn emit, void *arg)
{
    const cJSON *name = member(fc, "name");
    char *args = dp_gemini_args_json(member(fc, "args"));
    char id[192];
    cJSON *delta, *tc, *fn;

    if (!cJSON_IsString(name) || !args) {
        cJSON_free(args);
        return emit_invalid("a functionCall part has no name or its args are not an object", emit,
                            arg);
    }
    dp_gemini_call_id(&st->x, st->ncalls, id, sizeof(id));
    delta = new_delta(st);
    tc = cJSON_CreateObject();
    if (!cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"), tc)) {
        cJSON_Delete(tc);
        tc = NULL;
    }
    cJSON_AddNumberToObject(tc, "index", st->ncalls++);
    cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", name->valuestring);
    cJSON_AddStringToObject(fn, "arguments", args);
    cJSON_free(args);
    return emit_chunk(st, delta, NULL, emit, arg);
}

/* The parts of candidates[0]: text and function calls in order; thoughts are left out. */
static int emit_parts(struct dp_stream_xlate *st, const cJSON *parts, dp_emit_fn emit, void *arg)
{
    const cJSON *p;
    int rc;

    if (parts && !cJSON_IsArray(parts))
        return emit_invalid("candidates[0].content.parts is not an array", emit, arg);
    cJSON_ArrayForEach(p, parts)
    {
        const cJSON *text = member(p, "text"), *fc = member(p, "functionCall");
        if (!cJSON_IsObject(p))
            return emit_invalid("a part is not an object", emit, arg);
        if (cJSON_IsString(text) && text->valuestring[0] && !cJSON_IsTrue(member(p, "thought"))) {
            cJSON *delta = new_delta(st);
            cJSON_AddStringToObject(delta, "content", text->valuestring);
            rc = emit_chunk(st, delta, NULL, emit, arg);
            if (rc)
                return rc;
        }
        if (fc) {
            rc = emit_call(st, fc, emit, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int emit_finish(struct dp_stream_xlate *st, const char *finish, dp_emit_fn emit, void *arg)
{
    st->finished = true;
    return emit_chunk(st, new_delta(st), finish, emit, arg);
}

int dp_gemini_stream_event(struct dp_stream_xlate *st, const char *event, const char *data,
                           size_t len, struct dp_usage *u, dp_emit_fn emit, void *arg)
{
    cJSON *root;
    const cJSON *err, *cands, *cand, *reason;
    int rc = 0;

    (void)event; /* alt=sse events are unnamed */
    while (len && (*data == ' ' || *data == '\t' || *data == '\r' || *data == '\n')) {
        data++;
        len--;
    }
    if (!len)
        return 0;
    root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return emit_invalid("an event is not a JSON object", emit, arg);
    }
    err = member(root, "error");
    if (err) {
        struct dp_error_info info;
        if (cJSON_IsObject(err))
            dp_gemini_error_object(200, err, &info);
        else
            dp_error_classify(502, NULL, NULL, "the provider sent an error event", NULL, &info);
        cJSON_Delete(root);
        return emit_error(&info, emit, arg);
    }
    cJSON *usage = dp_gemini_usage(member(root, "usageMetadata"), u);
    if (usage) {
        cJSON_Delete(st->usage);
        st->usage = usage;
    }
    cands = member(root, "candidates");
    if (cands && !cJSON_IsArray(cands)) {
        rc = emit_invalid("\"candidates\" is not an array", emit, arg);
        goto out_root;
    }
    cand = cJSON_GetArrayItem(cands, 0);
    if (st->finished)
        goto out_root; /* a late usage-only event, or anything after the end: nothing to add */
    if (!cand) {
        const cJSON *br = member(member(root, "promptFeedback"), "blockReason");
        if (cJSON_IsString(br))
            rc = emit_finish(st, "content_filter", emit, arg);
        goto out_root;
    }
    if (!cJSON_IsObject(cand)) {
        rc = emit_invalid("candidates[0] is not an object", emit, arg);
        goto out_root;
    }
    rc = emit_parts(st, member(member(cand, "content"), "parts"), emit, arg);
    if (rc)
        goto out_root;
    reason = member(cand, "finishReason");
    if (cJSON_IsString(reason))
        rc = emit_finish(st, dp_gemini_finish_reason(reason->valuestring, st->ncalls > 0), emit,
                         arg);

out_root:
    cJSON_Delete(root);
    return rc;
}

int dp_gemini_stream_end(struct dp_stream_xlate *st, struct dp_usage *u, dp_emit_fn emit, void *arg)
{
    int rc;

    (void)u; /* already up to date from the last usageMetadata */
    if (!st->finished) {
        /* The provider ended without a finishReason: the answer is what was sent. */
        rc = emit_finish(st, st->ncalls > 0 ? "tool_calls" : "stop", emit, arg);
        if (rc)
            return rc;
    }
    if (st->usage) {
        cJSON *root = chunk_head(st);
        cJSON_AddArrayToObject(root, "choices");
        if (!cJSON_AddItemToObject(root, "usage", st->usage)) {
            cJSON_Delete(root);
            return -ENOMEM;
        }
        st->usage = NULL;
        rc = emit_json(root, emit, arg);
        if (rc)
            return rc;
    }
    return emit(arg, "[DONE]", 6);
}
