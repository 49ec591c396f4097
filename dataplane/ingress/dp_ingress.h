/* dataplane/ingress/dp_ingress.h - the client-facing API dialects besides OpenAI's.
 *
 * The gateway speaks OpenAI inside (see providers/dp_provider.h). An ingress dialect lets
 * clients of another API (Anthropic's Messages API on POST /v1/messages) use any provider:
 * it turns the client's request into an OpenAI chat request, and the OpenAI answer, stream
 * events and errors back into the client's format. Translations are pure functions (unit
 * tested with golden fixtures, fuzzed). The OpenAI dialect itself needs no translation and
 * has no ops table. Any worker thread.
 */
#ifndef DP_INGRESS_H
#define DP_INGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "dp_provider.h"

/* A request the dialect refuses: HTTP status, a stable code, the offending field. */
struct dp_ingress_error {
    int status;
    char code[48];
    char param[64];
    char message[512];
};

/* Receives bytes for the client, already framed as SSE ("event: x\ndata: {...}\n\n"). */
typedef int (*dp_write_fn)(void *arg, const char *data, size_t len);

struct dp_ingress_stream;

struct dp_ingress_ops {
    const char *name; /* "anthropic" */
    /* The client's body as an OpenAI chat request (caller frees with cJSON_Delete), or NULL
     * with <err> filled. When the client asked for a stream, the result has "stream":true
     * and stream_options.include_usage, so usage comes back in the event stream. */
    cJSON *(*to_openai)(const char *body, size_t len, struct dp_ingress_error *err);
    /* An OpenAI chat.completion (JSON text) as the client's answer (heap, caller frees).
     * <requested_model> is the model name the client sent. */
    int (*from_openai)(const char *body, size_t len, const char *requested_model, char **out,
                       size_t *out_len, char **errmsg);
    /* Stream translation: OpenAI chunk payloads (each a chat.completion.chunk JSON object,
     * an error object {"error":{...}}, or "[DONE]") in; client SSE frames out. */
    struct dp_ingress_stream *(*stream_new)(const char *requested_model, const char *request_id);
    int (*stream_chunk)(struct dp_ingress_stream *st, const char *data, size_t len,
                        dp_write_fn write, void *arg);
    /* The OpenAI stream ended (after [DONE] or not): write whatever closes the client's
     * stream. <failed> tells that an error event was already written. */
    int (*stream_end)(struct dp_ingress_stream *st, bool failed, dp_write_fn write, void *arg);
    void (*stream_free)(struct dp_ingress_stream *st);
    /* An error as the client's error body (heap, caller frees), for <status>. <type>,
     * <code> and <message> are the gateway's OpenAI-shaped error fields. */
    char *(*error_body)(int status, const char *type, const char *code, const char *message);
};

extern const struct dp_ingress_ops dp_ingress_anthropic;

#endif
