/* tests/mockllm/mock_embed.h - deterministic embedding vectors, shared by every dialect.
 *
 * The same text always gives the same unit vector (any length), so tests can compare
 * embeddings across requests, processes and dialects. Pure functions; any thread.
 */
#ifndef MOCK_EMBED_H
#define MOCK_EMBED_H

#include <stdint.h>

/* Fills <v> with a unit vector of <dims> (>= 1) floats derived from a hash of <text>. */
void mock_embed(const char *text, int dims, float *v);

/* Returns standard base64 of the little-endian float32 bytes of <v> (<dims> floats), the
 * encoding_format=base64 form the OpenAI SDKs decode. malloc'd, caller frees; NULL on OOM. */
char *mock_embed_base64(const float *v, int dims);

#endif
