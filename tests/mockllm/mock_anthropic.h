/* tests/mockllm/mock_anthropic.h - the Anthropic dialect: POST /v1/messages (JSON and SSE,
 * with tool use), answered from the shared echo plan (mock_plan.h), with Anthropic's error
 * format for every status.
 *
 * Handlers are pure functions of the request (see mock_dialect.h). Event-loop thread, but
 * nothing here keeps state.
 */
#ifndef MOCK_ANTHROPIC_H
#define MOCK_ANTHROPIC_H

#include "mock_dialect.h"

/* Routes: POST /v1/messages. */
extern const struct mock_dialect mock_anthropic_dialect;

/* Returns {"type":"error","error":{"type":<type for status>,"message":<message>}} with the
 * error type Anthropic uses for <status> (429 rate_limit_error, 529 overloaded_error, 5xx
 * api_error, ...). malloc'd (length in *len), caller frees; NULL on OOM. */
char *mock_anthropic_error_body(int status, const char *message, size_t *len);

#endif
