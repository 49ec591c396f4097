/* tests/fuzz/fuzz_ingress_anthropic.c - libFuzzer target for the Anthropic ingress: every
 * input goes through to_openai (as a client request), from_openai (as a provider answer) and
 * the stream translator (each line one OpenAI chunk payload, "data: " optional), then
 * error_body. Outputs are checked for the shapes promised: a translated request is an
 * object, an answer is JSON, every stream frame is "event: x\ndata: {...}\n\n". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "dp_ingress.h"

static int check_frames(void *arg, const char *data, size_t len)
{
    const char *nl;
    cJSON *j;

    (void)arg;
    if (len < 16 || memcmp(data, "event: ", 7) != 0 || memcmp(data + len - 2, "\n\n", 2) != 0)
        abort();
    nl = memchr(data, '\n', len);
    if (!nl || (size_t)(nl - data) + 7 > len || memcmp(nl + 1, "data: ", 6) != 0)
        abort();
    j = cJSON_ParseWithLength(nl + 7, len - (size_t)(nl + 7 - data) - 2);
    if (!cJSON_IsObject(j))
        abort();
    cJSON_Delete(j);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct dp_ingress_ops *ops = &dp_ingress_anthropic;
    const char *text = (const char *)data;
    struct dp_ingress_error err;
    struct dp_ingress_stream *st;
    char *out = NULL, *errmsg = NULL, *msg;
    size_t out_len = 0, pos = 0;
    cJSON *req;

    memset(&err, 0, sizeof(err));
    req = ops->to_openai(text, size, &err);
    if (req && !cJSON_IsObject(req))
        abort();
    if (!req && (err.status < 400 || !err.message[0]))
        abort();
    cJSON_Delete(req);

    if (ops->from_openai(text, size, "claude-fuzz", &out, &out_len, &errmsg) == 0) {
        cJSON *j = cJSON_ParseWithLength(out, out_len);
        if (!cJSON_IsObject(j))
            abort();
        cJSON_Delete(j);
        free(out);
    } else {
        if (!errmsg)
            abort();
        free(errmsg);
    }

    st = ops->stream_new("claude-fuzz", "req-fuzz");
    while (pos < size) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - line) : size - pos;
        pos += n + 1;
        if (n >= 6 && memcmp(line, "data: ", 6) == 0) {
            line += 6;
            n -= 6;
        }
        if (n)
            ops->stream_chunk(st, line, n, check_frames, NULL);
    }
    ops->stream_end(st, size > 0 && data[0] == 'F', check_frames, NULL);
    ops->stream_free(st);

    msg = malloc(size + 1);
    if (msg) {
        memcpy(msg, data, size);
        msg[size] = '\0';
        char *body = ops->error_body(size > 0 ? 400 + data[0] : 500, "t", "c", msg);
        cJSON *j = cJSON_Parse(body);
        if (!cJSON_IsObject(j) && memchr(msg, '\0', size) == NULL)
            abort();
        cJSON_Delete(j);
        free(body);
        free(msg);
    }
    return 0;
}
