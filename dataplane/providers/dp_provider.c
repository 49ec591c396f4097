/* dataplane/providers/dp_provider.c - adapter lookup by kind and shared runtime cleanup. */
#include "dp_provider.h"

#include <stdlib.h>

extern const struct dp_provider_ops dp_provider_openai;

const struct dp_provider_ops *dp_provider_ops_for(enum sy_provider_kind kind)
{
    switch (kind) {
    case SY_PROVIDER_OPENAI:
        return &dp_provider_openai;
    }
    return &dp_provider_openai;
}

void dp_provider_rt_cleanup(struct dp_provider_rt *rt)
{
    free(rt->chat_url);
    rt->chat_url = NULL;
    curl_slist_free_all(rt->headers);
    rt->headers = NULL;
}
