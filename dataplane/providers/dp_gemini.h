/* dataplane/providers/dp_gemini.h - the Gemini adapter's translators, shared by its three
 * files: dp_gemini_request.c (OpenAI request -> Gemini body), dp_gemini_response.c (Gemini
 * answer, embeddings and errors -> OpenAI) and dp_gemini_stream.c (alt=sse events ->
 * OpenAI chunks). dp_provider_gemini.c wires them into struct dp_provider_ops.
 *
 * Everything here is a pure function of its arguments (no I/O, no globals); any thread.
 * Mapping decisions are documented in docs/providers-gemini.md.
 */
#ifndef DP_GEMINI_H
#define DP_GEMINI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "dp_provider.h"

/* Deepest JSON schema or provider_options object the request translator walks. */
#define DP_GEMINI_MAX_DEPTH 64

/* ---- dp_gemini_request.c ---- */

/* Builds the generateContent body for the OpenAI chat request <req>. Returns 0 with *out
 * set (caller deletes), -EINVAL with *errmsg (caller frees) naming the field and what
 * Gemini cannot do, or -ENOMEM. */
int dp_gemini_chat_body(const cJSON *req, cJSON **out, char **errmsg);

/* Builds the batchEmbedContents body for the OpenAI embeddings request <req>; <resource>
 * is the model's resource name ("models/text-embedding-004"). Same returns as above. */
int dp_gemini_embed_body(const cJSON *req, const char *resource, cJSON **out, char **errmsg);

/* ---- dp_gemini_response.c ---- */

/* OpenAI finish_reason for Gemini's <reason> (NULL: none given); <tool_calls> when the
 * answer called a function. Returns a static string. */
const char *dp_gemini_finish_reason(const char *reason, bool tool_calls);

/* Reads usageMetadata <um> into <u> and returns the OpenAI usage object (caller deletes),
 * or NULL when <um> is not an object or on OOM. */
cJSON *dp_gemini_usage(const cJSON *um, struct dp_usage *u);

/* Writes the id of the <index>th tool call of the exchange <x> ("call_<request id>_<n>")
 * into <buf>. */
void dp_gemini_call_id(const struct dp_xctx *x, int index, char *buf, size_t len);

/* The OpenAI "id" and "model" of answers for <x>, written into the given buffers. */
void dp_gemini_answer_id(const struct dp_xctx *x, char *buf, size_t len);
const char *dp_gemini_model_name(const struct dp_xctx *x);

/* Returns the function call's arguments as compact JSON ("{}" when absent), or NULL on OOM
 * or when <args> is not an object. Caller frees with cJSON_free. */
char *dp_gemini_args_json(const cJSON *args);

/* chat_response, embed_response and error of struct dp_provider_ops. */
int dp_gemini_chat_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                            size_t *out_len, struct dp_usage *u, char **errmsg);
int dp_gemini_embed_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                             size_t *out_len, struct dp_usage *u, char **errmsg);
void dp_gemini_error(int status, const char *body, size_t len, struct dp_error_info *out);

/* Normalizes Gemini's error object <err> ({"code","message","status","details"}) that came
 * with HTTP <status> into <out>. */
void dp_gemini_error_object(int status, const cJSON *err, struct dp_error_info *out);

/* ---- dp_gemini_stream.c ---- */

struct dp_stream_xlate *dp_gemini_stream_new(const struct dp_xctx *x);
int dp_gemini_stream_event(struct dp_stream_xlate *st, const char *event, const char *data,
                           size_t len, struct dp_usage *u, dp_emit_fn emit, void *arg);
int dp_gemini_stream_end(struct dp_stream_xlate *st, struct dp_usage *u, dp_emit_fn emit,
                         void *arg);
void dp_gemini_stream_free(struct dp_stream_xlate *st);

#endif
