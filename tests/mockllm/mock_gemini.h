/* tests/mockllm/mock_gemini.h - the Gemini dialect: generateContent, streamGenerateContent
 * (alt=sse events, or a JSON array without it) with function calls, and batchEmbedContents,
 * answered from the shared echo plan; errors in Gemini's {"error":{"code","message","status"}}
 * format.
 *
 * Handlers are pure functions of the request (see mock_dialect.h). Event-loop thread, but
 * nothing here keeps state.
 */
#ifndef MOCK_GEMINI_H
#define MOCK_GEMINI_H

#include "mock_dialect.h"

/* Routes: POST /v1beta/models/{model}:{generateContent|streamGenerateContent|
 * batchEmbedContents} (one prefix route; the method is read from the path). */
extern const struct mock_dialect mock_gemini_dialect;

/* Returns {"error":{"code":<status>,"message":<message>,"status":<canonical name>}}, e.g.
 * RESOURCE_EXHAUSTED for 429. malloc'd (length in *len), caller frees; NULL on OOM. */
char *mock_gemini_error_body(int status, const char *message, size_t *len);

#endif
