/* dataplane/providers/dp_provider.h - the interface every provider adapter implements.
 *
 * The gateway's internal language is the OpenAI chat API: a client request is normalized
 * into an OpenAI chat request (cJSON), and every provider answer is turned back into
 * OpenAI chat.completion objects or chat.completion.chunk events. An adapter translates
 * between that language and one API family:
 *
 *   request:  OpenAI request (cJSON)        -> provider URL + body          (chat_request)
 *   answer:   provider JSON body            -> OpenAI chat.completion       (chat_response)
 *   stream:   provider SSE events           -> OpenAI chunk payloads        (stream_*)
 *   errors:   provider status + body        -> normalized OpenAI error      (error)
 *
 * Translations are pure functions of their inputs (no I/O, no globals), so they are unit
 * tested against golden fixtures from the providers' documentation and fuzzed. One file
 * per API family; a new OpenAI-compatible provider is configuration, not code. Runtime
 * data (URLs, auth headers) is built once per policy by prepare() and read-only after.
 * Any worker thread.
 */
#ifndef DP_PROVIDER_H
#define DP_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <curl/curl.h>

#include "sy_policy.h"

/* What one node resolved for one provider of a policy. */
struct dp_provider_rt {
    const struct sy_provider *provider;
    char *chat_url;             /* fixed chat URL when it does not depend on the model */
    struct curl_slist *headers; /* auth, content type, version headers, extra headers */
    char *key;                  /* the provider key, for adapters that put it in the URL */
};

/* Token usage; -1 = unknown. */
struct dp_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cached_tokens;
};

/* What translations know about the exchange. */
struct dp_xctx {
    const struct sy_model *model;
    const char *request_id;
    int64_t created; /* unix seconds, for "created" fields */
    bool stream;
    const char *raw_body; /* the client's request body as received */
    size_t raw_len;
};

/* The upstream HTTP request an adapter builds. */
struct dp_upreq {
    char *url;  /* owned */
    char *body; /* owned; NULL = send the client's body (x->raw_body) unchanged */
    size_t body_len;
};

/* A provider error, normalized. */
struct dp_error_info {
    int status;    /* what the client gets */
    char type[48]; /* OpenAI error type */
    char code[48]; /* stable code: rate_limit_exceeded, context_length_exceeded, ... */
    char message[1024];
    bool retryable;   /* worth retrying on the same target (429, 5xx) */
    bool fallback_ok; /* worth trying another target (also auth and model errors) */
};

/* Receives one translated event: an OpenAI chat.completion.chunk JSON object, an OpenAI
 * error object ({"error":{...}}), or the literal "[DONE]". Returns 0, or non-zero to stop. */
typedef int (*dp_emit_fn)(void *arg, const char *data, size_t len);

struct dp_stream_xlate; /* an adapter's per-stream translation state */

struct dp_provider_ops {
    const char *kind;
    /* Builds <rt> for <p>, reading its key from the environment. 0, or -EINVAL with
     * *errmsg (caller frees) when this node cannot use the provider. */
    int (*prepare)(const struct sy_provider *p, struct dp_provider_rt *rt, char **errmsg);

    /* Builds the chat request for <model> from the OpenAI request <req>. 0, or -EINVAL
     * with *errmsg when the request uses something the provider cannot do (the message
     * names the model and the capability). */
    int (*chat_request)(const struct dp_provider_rt *rt, const cJSON *req, const struct dp_xctx *x,
                        struct dp_upreq *out, char **errmsg);

    /* Turns a 2xx answer into an OpenAI chat.completion. NULL = the body already is one.
     * On success *out is a heap string (caller frees). Fills <u>. */
    int (*chat_response)(const char *body, size_t len, const struct dp_xctx *x, char **out,
                         size_t *out_len, struct dp_usage *u, char **errmsg);

    /* Stream translation. NULL stream_new = events already are OpenAI chunks. */
    struct dp_stream_xlate *(*stream_new)(const struct dp_xctx *x);
    /* One provider SSE event (<event> is "" when unnamed). Emits 0..n OpenAI events and
     * updates <u>. Returns 0, or non-zero when the stream is unusable (an error event has
     * been emitted then). */
    int (*stream_event)(struct dp_stream_xlate *st, const char *event, const char *data, size_t len,
                        struct dp_usage *u, dp_emit_fn emit, void *arg);
    /* The provider's stream ended cleanly: emit whatever completes it ("[DONE]"). */
    int (*stream_end)(struct dp_stream_xlate *st, struct dp_usage *u, dp_emit_fn emit, void *arg);
    void (*stream_free)(struct dp_stream_xlate *st);

    /* Normalizes a non-2xx answer. */
    void (*error)(int status, const char *body, size_t len, struct dp_error_info *out);

    /* Embeddings: NULL = not supported by this API family. Same contract as chat. */
    int (*embed_request)(const struct dp_provider_rt *rt, const cJSON *req, const struct dp_xctx *x,
                         struct dp_upreq *out, char **errmsg);
    int (*embed_response)(const char *body, size_t len, const struct dp_xctx *x, char **out,
                          size_t *out_len, struct dp_usage *u, char **errmsg);

    /* Legacy completions (POST /v1/completions): NULL = not supported. */
    int (*completion_request)(const struct dp_provider_rt *rt, const cJSON *req,
                              const struct dp_xctx *x, struct dp_upreq *out, char **errmsg);
};

/* The adapter for <kind>; never NULL for a kind the compiler accepts. */
const struct dp_provider_ops *dp_provider_ops_for(enum sy_provider_kind kind);

/* Frees what prepare() built. Accepts a zeroed rt. */
void dp_provider_rt_cleanup(struct dp_provider_rt *rt);
void dp_upreq_cleanup(struct dp_upreq *rq);

/* ---- helpers shared by adapters (dp_provider.c) ---- */

/* Appends one header line to *list (abort on OOM, like every small fixed allocation). */
void dp_headers_append(struct curl_slist **list, const char *line);

/* The common part of prepare(): Content-Type, no Expect, the provider's extra headers,
 * and the key from api_key_env into rt->key (NULL when no api_key_env). */
int dp_provider_prepare_common(const struct sy_provider *p, struct dp_provider_rt *rt,
                               char **errmsg);

/* Reads usage from an OpenAI "usage" object into <u> (fields it lacks stay as they are). */
void dp_usage_from_openai(const cJSON *usage, struct dp_usage *u);

/* Classifies an error by status and the provider's own code/message (normalized codes:
 * rate_limit_exceeded, context_length_exceeded, content_filter, provider_auth_failed,
 * upstream_model_not_found, upstream_error, invalid_request). <ptype>, <pcode>, <pmsg>
 * are what the provider said (may be NULL). */
void dp_error_classify(int status, const char *ptype, const char *pcode, const char *pmsg,
                       const char *provider_label, struct dp_error_info *out);

/* The OpenAI family's request body for <x>'s model: the client's bytes when nothing must
 * change (out->body stays NULL), else a copy with the provider's model name and, for
 * streams when <ask_usage>, stream_options.include_usage. 0 or -ENOMEM. */
int dp_openai_body(const cJSON *req, const struct dp_xctx *x, bool ask_usage, struct dp_upreq *out);

/* Normalizes an OpenAI-format error body ({"error":{"message","type","code"}}). */
void dp_openai_error(int status, const char *body, size_t len, struct dp_error_info *out);

/* An OpenAI error object as compact JSON (caller frees). */
char *dp_error_info_json(const struct dp_error_info *e);

#endif
