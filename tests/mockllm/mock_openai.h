/* tests/mockllm/mock_openai.h - the OpenAI dialect: chat completions (JSON and SSE, with
 * tool calls), embeddings and the model list, answered from the shared echo plan.
 *
 * Handlers are pure functions of the request (see mock_dialect.h). Event-loop thread, but
 * nothing here keeps state.
 */
#ifndef MOCK_OPENAI_H
#define MOCK_OPENAI_H

#include "mock_dialect.h"

/* Model used when a request names none. */
#define MOCK_OPENAI_DEFAULT_MODEL "mock-model"
/* Embedding length when the request does not ask for "dimensions". */
#define MOCK_EMBED_DIMS 8
#define MOCK_EMBED_DIMS_MAX 4096

/* Routes: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models. */
extern const struct mock_dialect mock_openai_dialect;

/* Returns {"error":{"message":<message>,"type":...,"param":null,"code":...}} with the type
 * and code OpenAI uses for <status>. malloc'd (length in *len), caller frees; NULL on OOM. */
char *mock_openai_error_body(int status, const char *message, size_t *len);

#endif
