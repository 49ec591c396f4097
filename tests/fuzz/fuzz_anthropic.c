/* tests/fuzz/fuzz_anthropic.c - libFuzzer target over the Anthropic adapter's translators.
 *
 * The first byte picks the translator (its low two bits, so the seeds can start with the
 * digits '0'..'3'); the rest is its input:
 *   0  a provider answer  -> chat_response
 *   1  an SSE transcript  -> sy_sse parser -> stream_event ... stream_end
 *   2  an error body      -> error (status from the first byte's high bits)
 *   3  a client request   -> chat_request
 * Besides "no crash, no leak, no UB", every output must be well formed: answers, chunks and
 * request bodies parse as JSON objects, an error status is 4xx/5xx, and nothing is emitted
 * after [DONE] or an error event. A violation aborts, which libFuzzer reports.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "dp_provider.h"
#include "sy_policy.h"
#include "sy_sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char model_name[] = "claude", model_up[] = "claude-fuzz", request_id[] = "req-fuzz";
static char prov_name[] = "anthropic", prov_url[] = "https://api.anthropic.com";
static char chat_url[] = "https://api.anthropic.com/v1/messages";

static struct sy_model model = {.name = model_name, .upstream_model = model_up};
static struct sy_provider provider = {
    .name = prov_name, .kind = SY_PROVIDER_ANTHROPIC, .base_url = prov_url};

struct run {
    const struct dp_provider_ops *ops;
    struct dp_stream_xlate *st;
    struct dp_usage u;
    bool over; /* [DONE] or an error went out */
};

/* Aborts unless <s> is a JSON object; returns whether it is an error object. */
static bool check_object(const char *s, size_t len, const char *what)
{
    cJSON *j = cJSON_ParseWithLength(s, len);
    bool is_error;

    if (!cJSON_IsObject(j)) {
        fprintf(stderr, "%s is not a JSON object: %.*s\n", what, (int)len, s);
        abort();
    }
    is_error = cJSON_GetObjectItemCaseSensitive(j, "error") &&
               !cJSON_GetObjectItemCaseSensitive(j, "choices");
    cJSON_Delete(j);
    return is_error;
}

static int on_emit(void *arg, const char *data, size_t len)
{
    struct run *r = arg;

    if (r->over) {
        fprintf(stderr, "event after the end: %.*s\n", (int)len, data);
        abort();
    }
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        r->over = true;
        return 0;
    }
    if (check_object(data, len, "emitted event"))
        r->over = true;
    return 0;
}

static int on_sse(void *arg, const char *event, const char *data, size_t len)
{
    struct run *r = arg;
    return r->ops->stream_event(r->st, event, data, len, &r->u, on_emit, r);
}

static void fuzz_stream(const struct dp_provider_ops *ops, const struct dp_xctx *x, const char *in,
                        size_t len)
{
    struct run r = {.ops = ops, .u = {-1, -1, -1}};
    struct sy_sse_parser p;
    int rc;

    r.st = ops->stream_new(x);
    sy_sse_init(&p, 1 << 20, on_sse, &r);
    rc = sy_sse_feed(&p, in, len);
    if (rc == 0)
        rc = sy_sse_finish(&p);
    if (rc == 0)
        rc = ops->stream_end(r.st, &r.u, on_emit, &r);
    if (rc == 0 && !r.over) {
        fprintf(stderr, "a stream ended cleanly without [DONE]\n");
        abort();
    }
    sy_sse_cleanup(&p);
    ops->stream_free(r.st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct dp_provider_ops *ops = dp_provider_ops_for(SY_PROVIDER_ANTHROPIC);
    struct dp_xctx x = {.model = &model, .request_id = request_id, .created = 1700000000};
    const char *in = (const char *)data + 1;
    size_t len = size ? size - 1 : 0;
    char *out = NULL, *err = NULL;
    size_t out_len = 0;

    if (size == 0)
        return 0;
    switch (data[0] & 3) {
    case 0: {
        struct dp_usage u = {-1, -1, -1};
        if (ops->chat_response(in, len, &x, &out, &out_len, &u, &err) == 0)
            check_object(out, out_len, "chat.completion");
        else if (!err)
            abort(); /* only OOM may fail without a message, and the fuzzer does not OOM */
        break;
    }
    case 1:
        x.stream = true;
        fuzz_stream(ops, &x, in, len);
        break;
    case 2: {
        struct dp_error_info e;
        ops->error(400 + (data[0] >> 2) * 3, in, len, &e);
        if (e.status < 400 || e.status > 599 || !e.code[0] || !e.type[0])
            abort();
        break;
    }
    default: {
        struct dp_provider_rt rt = {.provider = &provider, .chat_url = chat_url};
        struct dp_upreq up = {0};
        cJSON *req = cJSON_ParseWithLength(in, len);
        x.stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"));
        if (req && ops->chat_request(&rt, req, &x, &up, &err) == 0)
            check_object(up.body, up.body_len, "request body");
        else if (req && !err)
            abort();
        dp_upreq_cleanup(&up);
        cJSON_Delete(req);
        break;
    }
    }
    free(out);
    free(err);
    return 0;
}
