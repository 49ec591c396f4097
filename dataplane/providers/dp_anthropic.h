/* dataplane/providers/dp_anthropic.h - the pieces of the Anthropic Messages API adapter,
 * shared by its files and its tests (the ops table is dp_provider_anthropic).
 *
 *   dp_anthropic_request.c   OpenAI chat request  -> Anthropic /v1/messages body
 *   dp_anthropic_response.c  Anthropic message    -> chat.completion; errors; usage
 *   dp_anthropic_stream.c    Anthropic SSE events -> chat.completion.chunk payloads
 *
 * Pure functions of their inputs, like every translation (dp_provider.h). Any thread.
 */
#ifndef DP_ANTHROPIC_H
#define DP_ANTHROPIC_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "dp_provider.h"

/* max_tokens when the client sets neither max_tokens nor max_completion_tokens: Anthropic
 * requires one, and every current Claude model can produce this many. */
#define DP_ANTHROPIC_DEFAULT_MAX_TOKENS 4096
/* The anthropic-version header when the provider sets no api_version. */
#define DP_ANTHROPIC_DEFAULT_VERSION "2023-06-01"
/* Content blocks one streamed message may open; more is a broken stream. */
#define DP_ANTHROPIC_MAX_BLOCKS 4096

/* Builds the Anthropic request body for the OpenAI chat request <req> and <x>'s model.
 * Returns the body (caller deletes), or NULL with *errmsg set (caller frees) naming the
 * model, the field and the capability when the provider cannot do what was asked
 * ("model claude: n: ..."); *errmsg stays NULL on OOM. */
cJSON *dp_anthropic_body(const cJSON *req, const struct dp_xctx *x, char **errmsg);

/* OpenAI finish_reason for an Anthropic stop_reason (NULL or unknown: "stop"). */
const char *dp_anthropic_finish_reason(const char *stop_reason);

/* Reads an Anthropic "usage" object into <u> with OpenAI semantics: prompt tokens count
 * fresh, cache-read and cache-written input; cached tokens are the cache reads. Members the
 * object lacks leave <u> as it is. */
void dp_anthropic_usage(const cJSON *usage, struct dp_usage *u);

/* Adds OpenAI's "usage" object for <u> to <obj>: prompt, completion and total tokens and
 * prompt_tokens_details.cached_tokens (unknown counts as 0). Returns false on OOM. */
bool dp_anthropic_add_usage(cJSON *obj, const struct dp_usage *u);

/* chat_response of the ops table: an Anthropic message as an OpenAI chat.completion. */
int dp_anthropic_chat_response(const char *body, size_t len, const struct dp_xctx *x, char **out,
                               size_t *out_len, struct dp_usage *u, char **errmsg);

/* error of the ops table: {"type":"error","error":{"type","message"}} normalized. */
void dp_anthropic_error(int status, const char *body, size_t len, struct dp_error_info *out);

/* The HTTP status Anthropic uses for the error type <etype> (NULL or unknown: 500). */
int dp_anthropic_error_status(const char *etype);

/* Stream ops (see dp_provider_ops). */
struct dp_stream_xlate *dp_anthropic_stream_new(const struct dp_xctx *x);
int dp_anthropic_stream_event(struct dp_stream_xlate *st, const char *event, const char *data,
                              size_t len, struct dp_usage *u, dp_emit_fn emit, void *arg);
int dp_anthropic_stream_end(struct dp_stream_xlate *st, struct dp_usage *u, dp_emit_fn emit,
                            void *arg);
void dp_anthropic_stream_free(struct dp_stream_xlate *st);

#endif
