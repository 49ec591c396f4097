/* tests/fuzz/fuzz_gemini.c - libFuzzer target for the Gemini adapter's translators.
 *
 * The first input byte picks the translator, the rest is its input: 0 a whole
 * generateContent answer, 1 an alt=sse stream (one event per line, "data: " optional),
 * 2 an error body, 3 a batchEmbedContents answer, 4 an OpenAI chat request (also as an
 * embeddings request). Each must return cleanly on any input: no crash, leak or undefined
 * behaviour, and every emitted event must be JSON or "[DONE]".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_gemini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char upstream[] = "gemini-2.0-flash";
static struct sy_model model = {.upstream_model = upstream};

static int on_emit(void *arg, const char *ev, size_t len)
{
    cJSON *j;

    (void)arg;
    if (len == 6 && memcmp(ev, "[DONE]", 6) == 0)
        return 0;
    j = cJSON_ParseWithLength(ev, len);
    if (!j)
        abort(); /* the translator emitted something that is not JSON */
    cJSON_Delete(j);
    return 0;
}

static void fuzz_stream(const struct dp_xctx *x, const char *s, size_t n)
{
    struct dp_stream_xlate *st = dp_gemini_stream_new(x);
    struct dp_usage u = {-1, -1, -1};
    size_t at = 0;
    int rc = 0;

    while (at < n && rc == 0) {
        const char *line = s + at, *nl = memchr(line, '\n', n - at);
        size_t len = nl ? (size_t)(nl - line) : n - at;
        at += len + 1;
        if (len >= 6 && memcmp(line, "data: ", 6) == 0) {
            line += 6;
            len -= 6;
        }
        rc = dp_gemini_stream_event(st, "", line, len, &u, on_emit, NULL);
    }
    if (rc == 0)
        dp_gemini_stream_end(st, &u, on_emit, NULL);
    dp_gemini_stream_free(st);
}

static void fuzz_request(const char *s, size_t n)
{
    cJSON *req = cJSON_ParseWithLength(s, n), *body = NULL;
    char *err = NULL;

    if (!req)
        return;
    if (dp_gemini_chat_body(req, &body, &err) == 0)
        cJSON_Delete(body);
    free(err);
    err = NULL;
    body = NULL;
    if (dp_gemini_embed_body(req, "models/m", &body, &err) == 0)
        cJSON_Delete(body);
    free(err);
    cJSON_Delete(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dp_xctx x = {.model = &model, .request_id = "fuzz", .created = 1};
    struct dp_usage u = {-1, -1, -1};
    struct dp_error_info e;
    char *copy, *out = NULL, *err = NULL;
    size_t n, out_len = 0;

    if (size < 1)
        return 0;
    n = size - 1;
    /* Exactly the input, no NUL after it: ASan sees a translator reading past its length. */
    copy = malloc(n ? n : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, n);
    switch (data[0] % 5) {
    case 0:
        dp_gemini_chat_response(copy, n, &x, &out, &out_len, &u, &err);
        break;
    case 1:
        fuzz_stream(&x, copy, n);
        break;
    case 2:
        dp_gemini_error(400 + data[0] % 200, copy, n, &e);
        break;
    case 3:
        x.raw_body = "{\"input\":[\"a\",\"bb\"],\"encoding_format\":\"base64\"}";
        x.raw_len = strlen(x.raw_body);
        dp_gemini_embed_response(copy, n, &x, &out, &out_len, &u, &err);
        break;
    default:
        fuzz_request(copy, n);
        break;
    }
    if (out) {
        cJSON *j = cJSON_ParseWithLength(out, out_len);
        if (!j)
            abort(); /* a translation that is not JSON */
        cJSON_Delete(j);
    }
    free(out);
    free(err);
    free(copy);
    return 0;
}
