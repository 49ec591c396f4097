/* dataplane/ingress/dp_ingress_anthropic.c - PLACEHOLDER being replaced by the Anthropic
 * ingress translator (POST /v1/messages). Refuses every request until then. */
#include "dp_ingress.h"

#include <stdio.h>
#include <stdlib.h>

#include "sy_util.h"

static cJSON *to_openai(const char *body, size_t len, struct dp_ingress_error *err)
{
    (void)body;
    (void)len;
    err->status = 501;
    snprintf(err->code, sizeof(err->code), "not_implemented");
    snprintf(err->message, sizeof(err->message), "POST /v1/messages is not available yet");
    return NULL;
}

static char *error_body(int status, const char *type, const char *code, const char *message)
{
    (void)status;
    (void)code;
    return sy_xasprintf("{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}", type,
                        message);
}

const struct dp_ingress_ops dp_ingress_anthropic = {
    .name = "anthropic",
    .to_openai = to_openai,
    .error_body = error_body,
};
