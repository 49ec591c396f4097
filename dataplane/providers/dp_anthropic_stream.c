/* dataplane/providers/dp_anthropic_stream.c - Anthropic Messages SSE events ->
 * chat.completion.chunk payloads.
 *
 * Anthropic streams content blocks (message_start, content_block_start/delta/stop,
 * message_delta, message_stop, ping, error); OpenAI streams deltas of one choice. The
 * translation keeps one thing across events: which content block is which tool call,
 * because OpenAI numbers tool calls 0, 1, ... (tool_calls[].index) while Anthropic numbers
 * every block, text included. A tool call's first delta carries its id, type and name and
 * empty arguments; input_json_delta fragments follow as arguments pieces, so the client's
 * concatenation is the exact JSON the model wrote. message_delta's stop_reason becomes the
 * finish_reason chunk; message_stop the usage chunk (choices: []) and [DONE]. Unknown event
 * and delta types (thinking, citations, server tools) are skipped, as Anthropic's
 * versioning policy asks. One struct per stream, owned by the chat exchange; worker thread.
 */
#include "dp_anthropic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sy_util.h"

/* A content block that is a tool call: Anthropic's block index -> OpenAI's tool index. */
struct tool_block {
    int64_t block;
    int tool;
};

struct dp_stream_xlate {
    char id[160]; /* the message id, or chatcmpl-<request id> */
    char model[128];
    char request_id[130];
    int64_t created;
    struct dp_usage usage;
    struct tool_block *tools;
    size_t ntools, cap;
    size_t nblocks; /* content_block_start events seen */
    bool started;   /* the role chunk went out */
    bool finished;  /* the finish_reason chunk went out */
    bool done;      /* [DONE] went out, or the stream failed: nothing more to say */
};

struct dp_stream_xlate *dp_anthropic_stream_new(const struct dp_xctx *x)
{
    struct dp_stream_xlate *st = sy_xcalloc(1, sizeof(*st));

    snprintf(st->model, sizeof(st->model), "%s", x->model ? x->model->upstream_model : "");
    snprintf(st->request_id, sizeof(st->request_id), "%s", x->request_id ? x->request_id : "");
    snprintf(st->id, sizeof(st->id), "chatcmpl-%s", st->request_id);
    st->created = x->created;
    st->usage.prompt_tokens = st->usage.completion_tokens = st->usage.cached_tokens = -1;
    return st;
}

void dp_anthropic_stream_free(struct dp_stream_xlate *st)
{
    if (!st)
        return;
    free(st->tools);
    free(st);
}

/* Prints <root> (deleted here) and hands it to <emit>. */
static int emit_json(cJSON *root, bool ok, dp_emit_fn emit, void *arg)
{
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    int rc;

    cJSON_Delete(root);
    if (!s)
        return -ENOMEM;
    rc = emit(arg, s, strlen(s));
    cJSON_free(s);
    return rc;
}

/* The members every chunk starts with. */
static cJSON *chunk_head(const struct dp_stream_xlate *st, bool *ok)
{
    cJSON *root = cJSON_CreateObject();

    *ok = cJSON_AddStringToObject(root, "id", st->id) &&
          cJSON_AddStringToObject(root, "object", "chat.completion.chunk") &&
          cJSON_AddNumberToObject(root, "created", (double)st->created) &&
          cJSON_AddStringToObject(root, "model", st->model);
    return root;
}

/* One chunk with <delta> (taken) and <finish> (NULL: null). */
static int emit_chunk(struct dp_stream_xlate *st, cJSON *delta, const char *finish, dp_emit_fn emit,
                      void *arg)
{
    bool ok;
    cJSON *root = chunk_head(st, &ok);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *choice = cJSON_CreateObject();

    if (!choice || !cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        choice = NULL;
        ok = false;
    }
    ok = ok && cJSON_AddNumberToObject(choice, "index", 0);
    if (!delta || !cJSON_AddItemToObject(choice, "delta", delta)) {
        cJSON_Delete(delta);
        ok = false;
    }
    ok = ok && cJSON_AddNullToObject(choice, "logprobs") &&
         (finish ? cJSON_AddStringToObject(choice, "finish_reason", finish) != NULL
                 : cJSON_AddNullToObject(choice, "finish_reason") != NULL);
    return emit_json(root, ok, emit, arg);
}

/* The first chunk: {"role":"assistant","content":""}. */
static int ensure_started(struct dp_stream_xlate *st, dp_emit_fn emit, void *arg)
{
    cJSON *d;

    if (st->started)
        return 0;
    st->started = true;
    d = cJSON_CreateObject();
    if (!cJSON_AddStringToObject(d, "role", "assistant") ||
        !cJSON_AddStringToObject(d, "content", "")) {
        cJSON_Delete(d);
        return -ENOMEM;
    }
    return emit_chunk(st, d, NULL, emit, arg);
}

/* Ends the stream with an OpenAI error object; returns -EPROTO (the stream is unusable). */
static int fail(struct dp_stream_xlate *st, const struct dp_error_info *info, dp_emit_fn emit,
                void *arg)
{
    char *s = dp_error_info_json(info);

    st->done = true;
    emit(arg, s, strlen(s));
    free(s);
    return -EPROTO;
}

static int fail_invalid(struct dp_stream_xlate *st, const char *what, dp_emit_fn emit, void *arg)
{
    struct dp_error_info info = {.status = 502, .retryable = false, .fallback_ok = false};

    snprintf(info.type, sizeof(info.type), "upstream_error");
    snprintf(info.code, sizeof(info.code), "upstream_invalid_response");
    snprintf(info.message, sizeof(info.message), "the provider's stream is unusable: %s", what);
    return fail(st, &info, emit, arg);
}

/* An Anthropic "error" event: {"type":"error","error":{"type","message"}}. */
static int error_event(struct dp_stream_xlate *st, const cJSON *ev, dp_emit_fn emit, void *arg)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(ev, "error");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(err, "type");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    const char *etype = cJSON_IsString(t) ? t->valuestring : NULL;
    const char *msg = cJSON_IsString(m) ? m->valuestring : "no message";
    struct dp_error_info info;

    dp_error_classify(dp_anthropic_error_status(etype), etype, NULL, msg, NULL, &info);
    snprintf(info.message, sizeof(info.message), "the provider's stream failed: %.40s: %.900s",
             etype ? etype : "error", msg);
    return fail(st, &info, emit, arg);
}

/* Usage counts are cumulative; an input count never shrinks within a message (a relay that
 * sends input_tokens 0 in message_delta must not erase message_start's count). */
static void copy_usage(struct dp_stream_xlate *st, const cJSON *usage, struct dp_usage *u)
{
    struct dp_usage n = st->usage;

    dp_anthropic_usage(usage, &n);
    if (n.prompt_tokens < st->usage.prompt_tokens) {
        n.prompt_tokens = st->usage.prompt_tokens;
        n.cached_tokens = st->usage.cached_tokens;
    }
    st->usage = n;
    *u = st->usage;
}

static int message_start(struct dp_stream_xlate *st, const cJSON *ev, struct dp_usage *u,
                         dp_emit_fn emit, void *arg)
{
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(msg, "model");

    if (!st->started) {
        if (cJSON_IsString(id) && id->valuestring[0])
            snprintf(st->id, sizeof(st->id), "%s", id->valuestring);
        if (cJSON_IsString(model) && model->valuestring[0])
            snprintf(st->model, sizeof(st->model), "%s", model->valuestring);
    }
    copy_usage(st, cJSON_GetObjectItemCaseSensitive(msg, "usage"), u);
    return ensure_started(st, emit, arg);
}

/* The tool index of content block <block>, or -1 when it is not a tool call. */
static int tool_of(const struct dp_stream_xlate *st, int64_t block)
{
    for (size_t i = st->ntools; i-- > 0;) {
        if (st->tools[i].block == block)
            return st->tools[i].tool;
    }
    return -1;
}

/* {"tool_calls":[{"index":<tool>, ...<fields>}]}; <call> taken. */
static cJSON *tool_delta(cJSON *call)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *calls = cJSON_AddArrayToObject(d, "tool_calls");

    if (!call || !cJSON_AddItemToArray(calls, call)) {
        cJSON_Delete(call);
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

static int text_delta(struct dp_stream_xlate *st, const char *text, dp_emit_fn emit, void *arg)
{
    cJSON *d;

    if (!text[0])
        return 0;
    d = cJSON_CreateObject();
    if (!cJSON_AddStringToObject(d, "content", text)) {
        cJSON_Delete(d);
        return -ENOMEM;
    }
    return emit_chunk(st, d, NULL, emit, arg);
}

static int block_start(struct dp_stream_xlate *st, const cJSON *ev, dp_emit_fn emit, void *arg)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ev, "index");
    const cJSON *cb = cJSON_GetObjectItemCaseSensitive(ev, "content_block");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cb, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    const cJSON *id, *name, *input;
    cJSON *call, *fn;
    char *args = NULL;
    bool ok;
    int rc;

    if (!cJSON_IsNumber(idx) || !cJSON_IsObject(cb))
        return fail_invalid(st, "content_block_start without index or content_block", emit, arg);
    if (++st->nblocks > DP_ANTHROPIC_MAX_BLOCKS)
        return fail_invalid(st, "too many content blocks", emit, arg);
    if ((rc = ensure_started(st, emit, arg)) != 0)
        return rc;
    if (strcmp(t, "text") == 0) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(cb, "text");
        return cJSON_IsString(text) ? text_delta(st, text->valuestring, emit, arg) : 0;
    }
    if (strcmp(t, "tool_use") != 0)
        return 0; /* thinking, redacted_thinking, server tools: nothing OpenAI can show */
    id = cJSON_GetObjectItemCaseSensitive(cb, "id");
    name = cJSON_GetObjectItemCaseSensitive(cb, "name");
    if (!cJSON_IsString(id) || !cJSON_IsString(name))
        return fail_invalid(st, "a tool_use block without a string id or name", emit, arg);
    if (st->ntools == st->cap) {
        size_t ncap = st->cap ? st->cap * 2 : 4;
        struct tool_block *nt = realloc(st->tools, ncap * sizeof(*nt));
        if (!nt)
            return -ENOMEM;
        st->tools = nt;
        st->cap = ncap;
    }
    st->tools[st->ntools].block = (int64_t)idx->valuedouble;
    st->tools[st->ntools].tool = (int)st->ntools;
    /* The input is {} here and arrives in input_json_delta events; a proxy that sends it
     * whole in the start event is passed on as the first arguments piece. */
    input = cJSON_GetObjectItemCaseSensitive(cb, "input");
    if (cJSON_IsObject(input) && input->child && !(args = cJSON_PrintUnformatted(input)))
        return -ENOMEM;
    call = cJSON_CreateObject();
    ok = cJSON_AddNumberToObject(call, "index", (double)st->ntools) &&
         cJSON_AddStringToObject(call, "id", id->valuestring) &&
         cJSON_AddStringToObject(call, "type", "function");
    fn = cJSON_AddObjectToObject(call, "function");
    ok = ok && cJSON_AddStringToObject(fn, "name", name->valuestring) &&
         cJSON_AddStringToObject(fn, "arguments", args ? args : "");
    cJSON_free(args);
    st->ntools++;
    if (!ok) {
        cJSON_Delete(call);
        return -ENOMEM;
    }
    return emit_chunk(st, tool_delta(call), NULL, emit, arg);
}

static int block_delta(struct dp_stream_xlate *st, const cJSON *ev, dp_emit_fn emit, void *arg)
{
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ev, "index");
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(delta, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    int rc;

    if (!cJSON_IsObject(delta))
        return fail_invalid(st, "content_block_delta without a delta", emit, arg);
    if ((rc = ensure_started(st, emit, arg)) != 0)
        return rc;
    if (strcmp(t, "text_delta") == 0) {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(delta, "text");
        if (!cJSON_IsString(text))
            return fail_invalid(st, "a text_delta without text", emit, arg);
        return text_delta(st, text->valuestring, emit, arg);
    }
    if (strcmp(t, "input_json_delta") == 0) {
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(delta, "partial_json");
        int tool = cJSON_IsNumber(idx) ? tool_of(st, (int64_t)idx->valuedouble) : -1;
        cJSON *call, *fn;
        bool ok;

        if (!cJSON_IsString(pj))
            return fail_invalid(st, "an input_json_delta without partial_json", emit, arg);
        if (tool < 0 || !pj->valuestring[0])
            return 0; /* a server tool's input, or the empty first fragment */
        call = cJSON_CreateObject();
        ok = cJSON_AddNumberToObject(call, "index", tool);
        fn = cJSON_AddObjectToObject(call, "function");
        ok = ok && cJSON_AddStringToObject(fn, "arguments", pj->valuestring);
        if (!ok) {
            cJSON_Delete(call);
            return -ENOMEM;
        }
        return emit_chunk(st, tool_delta(call), NULL, emit, arg);
    }
    return 0; /* thinking_delta, signature_delta, citations_delta, ... */
}

static int finish(struct dp_stream_xlate *st, const char *reason, dp_emit_fn emit, void *arg)
{
    cJSON *d;
    int rc;

    if (st->finished)
        return 0;
    if ((rc = ensure_started(st, emit, arg)) != 0)
        return rc;
    st->finished = true;
    d = cJSON_CreateObject();
    return d ? emit_chunk(st, d, reason, emit, arg) : -ENOMEM;
}

static int message_delta(struct dp_stream_xlate *st, const cJSON *ev, struct dp_usage *u,
                         dp_emit_fn emit, void *arg)
{
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(delta, "stop_reason");

    copy_usage(st, cJSON_GetObjectItemCaseSensitive(ev, "usage"), u);
    if (!cJSON_IsString(stop))
        return 0;
    return finish(st, dp_anthropic_finish_reason(stop->valuestring), emit, arg);
}

/* The usage chunk and [DONE]. */
static int complete(struct dp_stream_xlate *st, dp_emit_fn emit, void *arg)
{
    bool ok;
    cJSON *root;
    int rc;

    if ((rc = finish(st, "stop", emit, arg)) != 0)
        return rc;
    root = chunk_head(st, &ok);
    ok = ok && cJSON_AddArrayToObject(root, "choices") && dp_anthropic_add_usage(root, &st->usage);
    st->done = true;
    if ((rc = emit_json(root, ok, emit, arg)) != 0)
        return rc;
    return emit(arg, "[DONE]", 6);
}

int dp_anthropic_stream_event(struct dp_stream_xlate *st, const char *event, const char *data,
                              size_t len, struct dp_usage *u, dp_emit_fn emit, void *arg)
{
    cJSON *ev;
    const cJSON *type;
    const char *t;
    int rc = 0;

    if (st->done)
        return 0;
    ev = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(ev)) {
        cJSON_Delete(ev);
        if (event && strcmp(event, "ping") == 0)
            return 0;
        return fail_invalid(st, "an event whose data is not a JSON object", emit, arg);
    }
    /* The data's "type" names the event; the SSE event name is the same when present. */
    type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    t = cJSON_IsString(type) ? type->valuestring : (event ? event : "");
    if (strcmp(t, "message_start") == 0)
        rc = message_start(st, ev, u, emit, arg);
    else if (strcmp(t, "content_block_start") == 0)
        rc = block_start(st, ev, emit, arg);
    else if (strcmp(t, "content_block_delta") == 0)
        rc = block_delta(st, ev, emit, arg);
    else if (strcmp(t, "message_delta") == 0)
        rc = message_delta(st, ev, u, emit, arg);
    else if (strcmp(t, "message_stop") == 0)
        rc = complete(st, emit, arg);
    else if (strcmp(t, "error") == 0)
        rc = error_event(st, ev, emit, arg);
    /* ping, content_block_stop and new event types need nothing */
    cJSON_Delete(ev);
    return rc;
}

int dp_anthropic_stream_end(struct dp_stream_xlate *st, struct dp_usage *u, dp_emit_fn emit,
                            void *arg)
{
    (void)u; /* every usage the provider sent is in <u> already */
    if (st->done)
        return 0;
    if (!st->started)
        return fail_invalid(st, "it ended before message_start", emit, arg);
    if (!st->finished)
        return fail_invalid(st, "it ended before the message was complete (no stop_reason)", emit,
                            arg);
    return complete(st, emit, arg); /* message_stop went missing; all else came */
}
