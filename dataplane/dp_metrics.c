/* dataplane/dp_metrics.c - Prometheus text rendering of the merged stats, and the
 * /metrics handler. Rendering is pure (view + info in, text out); the handler gathers the
 * inputs from every worker and the current snapshot. Worker thread for the handler, any
 * thread for dp_metrics_render.
 */
#define SY_LOG_MODULE "metrics"

#include "dp_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_errors.h"
#include "dp_health.h"
#include "dp_proxy.h"
#include "dp_snapshot.h"
#include "dp_stats.h"
#include "dp_worker.h"
#include "sy_http.h"
#include "sy_log.h"

/* Follows the project version in the top-level CMakeLists.txt (as dp_control.c does). */
#define DP_METRICS_BUILD_VERSION "0.1.0"

/* The `le` bounds in us and as text; 1000 * 2^i has an odd part of 125 < 128, which makes
 * it a sy_hist bucket boundary (checked by the unit test). */
static const char *const le_text[DP_METRICS_LE_COUNT] = {
    "0.001", "0.002", "0.004", "0.008", "0.016", "0.032",  "0.064",  "0.128",  "0.256",
    "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "32.768", "65.536", "131.072",
};

struct out {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->oom)
        return;
    for (;;) {
        size_t room = o->cap - o->len;
        va_start(ap, fmt);
        n = vsnprintf(o->p ? o->p + o->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < room) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap : 16384;
        while (cap - o->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
}

/* A label value, escaped as the exposition format wants: backslash, quote, newline. */
static void put_value(struct out *o, const char *s)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        put(o, "%.*s%s", (int)(s - run), run, esc);
        run = s + 1;
    }
    put(o, "%s", run);
}

static void put_label(struct out *o, bool first, const char *name, const char *value)
{
    put(o, "%s%s=\"", first ? "" : ",", name);
    put_value(o, value);
    put(o, "\"");
}

/* {tenant=..,route=..,provider=..,model=..,arm=..,status_class=..,stream=..[,<extra>=..]} */
static void put_key(struct out *o, const struct dp_stats_key *k, const char *extra,
                    const char *value)
{
    put(o, "{");
    put_label(o, true, "tenant", k->tenant);
    put_label(o, false, "route", k->route);
    put_label(o, false, "provider", k->provider);
    put_label(o, false, "model", k->model);
    put_label(o, false, "arm", k->arm);
    put_label(o, false, "status_class", dp_status_class_name(k->status_class));
    put_label(o, false, "stream", k->stream ? "true" : "false");
    if (extra)
        put_label(o, false, extra, value);
    put(o, "}");
}

static void put_family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* <units> / 10^<digits> as an exact decimal. */
static void put_fixed(struct out *o, uint64_t units, unsigned digits, uint64_t scale)
{
    put(o, "%" PRIu64 ".%0*" PRIu64, units / scale, (int)digits, units % scale);
}

static void put_histogram(struct out *o, const char *name, const struct dp_stats_row *r,
                          const struct sy_hist *h)
{
    uint64_t bounds[DP_METRICS_LE_COUNT + 1], cum[DP_METRICS_LE_COUNT + 1];

    for (size_t i = 0; i < DP_METRICS_LE_COUNT; i++)
        bounds[i] = UINT64_C(1000) << i;
    bounds[DP_METRICS_LE_COUNT] = UINT64_MAX;
    sy_hist_cumulative(h, bounds, DP_METRICS_LE_COUNT + 1, cum);
    for (size_t i = 0; i <= DP_METRICS_LE_COUNT; i++) {
        put(o, "%s_bucket", name);
        put_key(o, &r->key, "le", i < DP_METRICS_LE_COUNT ? le_text[i] : "+Inf");
        put(o, " %" PRIu64 "\n", cum[i]);
    }
    put(o, "%s_sum", name);
    put_key(o, &r->key, NULL, NULL);
    put(o, " ");
    put_fixed(o, sy_hist_sum(h), 6, 1000000);
    /* The +Inf bucket, not h->count: the two agree by construction then. */
    put(o, "\n%s_count", name);
    put_key(o, &r->key, NULL, NULL);
    put(o, " %" PRIu64 "\n", cum[DP_METRICS_LE_COUNT]);
}

char *dp_metrics_render(const struct dp_stats_view *v, const struct dp_metrics_info *info,
                        size_t *len)
{
    struct out o = {0};
    static const char *const kinds[3] = {"prompt", "completion", "cached"};

    put_family(&o, "switchyard_build_info", "gauge", "The proxy's build; the value is 1.");
    put(&o, "switchyard_build_info{version=\"");
    put_value(&o, info->version);
    put(&o, "\"} 1\n");

    put_family(&o, "switchyard_policy_version", "gauge",
               "Version of the policy this proxy serves (0: none loaded).");
    put(&o, "switchyard_policy_version %" PRId64 "\n", info->policy_version);

    put_family(&o, "switchyard_requests_in_flight", "gauge",
               "Model requests received and not finished yet.");
    put(&o, "switchyard_requests_in_flight %" PRId64 "\n", v->in_flight > 0 ? v->in_flight : 0);

    put_family(&o, "switchyard_requests_total", "counter",
               "Model requests finished, by route, provider, model, status class and stream.");
    for (size_t i = 0; i < v->n_rows; i++) {
        put(&o, "switchyard_requests_total");
        put_key(&o, &v->rows[i]->key, NULL, NULL);
        put(&o, " %" PRIu64 "\n", v->rows[i]->requests);
    }

    put_family(&o, "switchyard_request_duration_seconds", "histogram",
               "Model request duration, from the first byte received to the last byte sent.");
    for (size_t i = 0; i < v->n_rows; i++)
        put_histogram(&o, "switchyard_request_duration_seconds", v->rows[i], &v->rows[i]->latency);

    put_family(&o, "switchyard_time_to_first_token_seconds", "histogram",
               "Streamed model requests: time from the request to the first token sent.");
    for (size_t i = 0; i < v->n_rows; i++) {
        if (sy_hist_count(&v->rows[i]->ttft) > 0)
            put_histogram(&o, "switchyard_time_to_first_token_seconds", v->rows[i],
                          &v->rows[i]->ttft);
    }

    put_family(&o, "switchyard_tokens_total", "counter",
               "Tokens the providers reported, by kind (cached tokens are part of prompt).");
    for (size_t i = 0; i < v->n_rows; i++) {
        const struct dp_stats_row *r = v->rows[i];
        const uint64_t n[3] = {r->prompt_tokens, r->completion_tokens, r->cached_tokens};
        for (int k = 0; k < 3; k++) {
            put(&o, "switchyard_tokens_total");
            put_key(&o, &r->key, "kind", kinds[k]);
            put(&o, " %" PRIu64 "\n", n[k]);
        }
    }

    put_family(&o, "switchyard_cost_usd_total", "counter",
               "Spend in US dollars at the policy's prices.");
    for (size_t i = 0; i < v->n_rows; i++) {
        put(&o, "switchyard_cost_usd_total");
        put_key(&o, &v->rows[i]->key, NULL, NULL);
        put(&o, " ");
        put_fixed(&o, v->rows[i]->cost_nusd, 9, 1000000000);
        put(&o, "\n");
    }

    put_family(&o, "switchyard_upstream_errors_total", "counter",
               "Failed upstream attempts (retried or not), by provider and HTTP status or "
               "failure.");
    for (size_t i = 0; i < v->n_errs; i++) {
        put(&o, "switchyard_upstream_errors_total{");
        put_label(&o, true, "provider", v->errs[i].provider);
        put_label(&o, false, "code", v->errs[i].code);
        put(&o, "} %" PRIu64 "\n", v->errs[i].count);
    }

    put_family(&o, "switchyard_attribution_requests_total", "counter",
               "Model requests per tenant and attribution tag (x-switchyard-tags, and "
               "user:<id> for the body's user); bounded, the rest under _other.");
    for (size_t i = 0; i < v->n_tags; i++) {
        put(&o, "switchyard_attribution_requests_total{");
        put_label(&o, true, "tenant", v->tags[i].tenant);
        put_label(&o, false, "tag", v->tags[i].tag);
        put(&o, "} %" PRIu64 "\n", v->tags[i].requests);
    }
    put_family(&o, "switchyard_attribution_cost_usd_total", "counter",
               "Spend per tenant and attribution tag, in US dollars.");
    for (size_t i = 0; i < v->n_tags; i++) {
        put(&o, "switchyard_attribution_cost_usd_total{");
        put_label(&o, true, "tenant", v->tags[i].tenant);
        put_label(&o, false, "tag", v->tags[i].tag);
        put(&o, "} ");
        put_fixed(&o, v->tags[i].cost_nusd, 9, 1000000000);
        put(&o, "\n");
    }

    put_family(&o, "switchyard_circuit_breaker_state", "gauge",
               "Circuit breaker of each policy model's target: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < info->n_breakers; i++) {
        put(&o, "switchyard_circuit_breaker_state{");
        put_label(&o, true, "provider", info->breakers[i].provider);
        put_label(&o, false, "model", info->breakers[i].model);
        put(&o, "} %d\n", info->breakers[i].state);
    }

    put_family(&o, "switchyard_stats_overflow_total", "counter",
               "Requests counted under the \"_other\" series because a worker's series table "
               "was full.");
    put(&o, "switchyard_stats_overflow_total %" PRIu64 "\n", v->dropped);

    if (o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}

struct dp_stats_view *dp_metrics_collect(struct dp_proxy *px)
{
    struct dp_stats_view *v = dp_stats_view_new();

    if (!v)
        return NULL;
    for (int i = 0; i < px->n_workers; i++) {
        if (dp_stats_view_add(v, &px->workers[i].stats) < 0) {
            dp_stats_view_free(v);
            return NULL;
        }
    }
    dp_stats_view_finish(v);
    return v;
}

void dp_metrics_handle(struct dp_worker *w, struct sy_http_req *req)
{
    struct dp_snapshot *snap = dp_worker_snapshot(w);
    struct dp_metrics_info info = {.version = DP_METRICS_BUILD_VERSION};
    struct dp_metrics_breaker *br = NULL;
    struct dp_stats_view *v = NULL;
    char *text = NULL;
    size_t len = 0;

    if (snap) {
        const struct sy_policy *pol = snap->policy;
        info.policy_version = pol->version;
        br = calloc(pol->n_models ? pol->n_models : 1, sizeof(*br));
        if (!br)
            goto out_reply;
        for (size_t i = 0; i < pol->n_models; i++) {
            const struct dp_target_health *h = snap->health ? snap->health[i] : NULL;
            if (!h)
                continue;
            br[info.n_breakers].provider = pol->providers[pol->models[i].provider].name;
            br[info.n_breakers].model = pol->models[i].name;
            br[info.n_breakers].state = atomic_load_explicit(&h->state, memory_order_relaxed);
            info.n_breakers++;
        }
        info.breakers = br;
    }
    v = dp_metrics_collect(w->proxy);
    if (v)
        text = dp_metrics_render(v, &info, &len);

out_reply:
    if (text) {
        sy_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    } else {
        sy_warn("/metrics: out of memory");
        dp_error_replyf(req, 500, "server_error", "out_of_memory", NULL, "out of memory");
    }
    free(text);
    dp_stats_view_free(v);
    free(br);
}
