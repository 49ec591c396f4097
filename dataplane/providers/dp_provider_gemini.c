/* dataplane/providers/dp_provider_gemini.c - PLACEHOLDER being replaced by the gemini adapter.
 * Refuses every request until then. */
#include "dp_provider.h"

#include <errno.h>

#include "sy_util.h"

static int placeholder_prepare(const struct sy_provider *p, struct dp_provider_rt *rt,
                               char **errmsg)
{
    return dp_provider_prepare_common(p, rt, errmsg);
}

static int placeholder_request(const struct dp_provider_rt *rt, const cJSON *req,
                               const struct dp_xctx *x, struct dp_upreq *out, char **errmsg)
{
    (void)rt;
    (void)req;
    (void)x;
    (void)out;
    *errmsg = sy_xstrdup("the gemini adapter is not available yet");
    return -EINVAL;
}

const struct dp_provider_ops dp_provider_gemini = {
    .kind = "gemini",
    .prepare = placeholder_prepare,
    .chat_request = placeholder_request,
    .error = dp_openai_error,
};
