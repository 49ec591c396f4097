/* proto/sy_policy_pb.c - compiled policy <-> switchyard.v1.Policy. Stateless.
 *
 * Packing points the message's strings (and string lists) into the policy, which outlives
 * the message; only the message structs, pointer arrays and the hex text of the tenants'
 * key digests are allocated, and freed by free_pb(). Unpacking goes message -> the policy
 * document as a cJSON tree -> the compiler, so a message is checked exactly like a policy
 * file. */
#include "sy_policy_pb.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sy_util.h"

/* Per-route sub-messages, allocated as one array each. */
struct pb_route_parts {
    Switchyard__V1__RouteMatch match;
    Switchyard__V1__Int64Value bounds[4]; /* min/max prompt tokens, min/max messages */
    Switchyard__V1__Timeouts timeouts;
    Switchyard__V1__Retries retries;
};

struct pb_build {
    Switchyard__V1__Policy msg;
    Switchyard__V1__Provider *providers;
    Switchyard__V1__Provider **provider_ptrs;
    Switchyard__V1__Header *headers;
    Switchyard__V1__Header **header_ptrs;
    Switchyard__V1__Model *models;
    Switchyard__V1__Model **model_ptrs;
    Switchyard__V1__Pricing *pricing;
    Switchyard__V1__PriceWindow *windows; /* every model's windows, back to back */
    Switchyard__V1__PriceWindow **window_ptrs;
    char (*hhmm)[2][6]; /* each window's start and end as "HH:MM" */
    Switchyard__V1__Route *routes;
    Switchyard__V1__Route **route_ptrs;
    struct pb_route_parts *parts;
    Switchyard__V1__Target *targets;
    Switchyard__V1__Target **target_ptrs;
    char **fallback; /* model names, all routes' lists back to back */
    Switchyard__V1__KeywordRule *keywords;
    Switchyard__V1__KeywordRule **keyword_ptrs;
    Switchyard__V1__RegexRule *regex;
    Switchyard__V1__RegexRule **regex_ptrs;
    Switchyard__V1__ServerLimits server;
    Switchyard__V1__Resilience resilience;
    Switchyard__V1__Breaker breaker;
    Switchyard__V1__RetryBudget retry_budget;
    Switchyard__V1__DoubleValue budget_ratio;
    Switchyard__V1__Int64Value budget_min_per_second;
    Switchyard__V1__Int64Value max_retry_after_ms;
    Switchyard__V1__Tenant *tenants;
    Switchyard__V1__Tenant **tenant_ptrs;
    char (*digests)[2 * SY_SHA256_LEN + 1]; /* every tenant's keys as hex, back to back */
    char **digest_ptrs;
    Switchyard__V1__Label *labels;
    Switchyard__V1__Label **label_ptrs;
    Switchyard__V1__Budget *budgets;
    Switchyard__V1__Auth auth;
    Switchyard__V1__Learn *learns; /* per route */
    Switchyard__V1__Objective *objectives;
    Switchyard__V1__Experiment *exps;
    Switchyard__V1__Experiment **exp_ptrs;
    Switchyard__V1__Arm *arms;
    Switchyard__V1__Arm **arm_ptrs;
    Switchyard__V1__Target *arm_targets;
    Switchyard__V1__Target **arm_target_ptrs;
};

static void free_pb(struct pb_build *b)
{
    free(b->providers);
    free(b->provider_ptrs);
    free(b->headers);
    free(b->header_ptrs);
    free(b->models);
    free(b->model_ptrs);
    free(b->pricing);
    free(b->windows);
    free(b->window_ptrs);
    free(b->hhmm);
    free(b->routes);
    free(b->route_ptrs);
    free(b->parts);
    free(b->targets);
    free(b->target_ptrs);
    free(b->fallback);
    free(b->keywords);
    free(b->keyword_ptrs);
    free(b->regex);
    free(b->regex_ptrs);
    free(b->tenants);
    free(b->tenant_ptrs);
    free(b->digests);
    free(b->digest_ptrs);
    free(b->labels);
    free(b->label_ptrs);
    free(b->budgets);
    free(b->learns);
    free(b->objectives);
    free(b->exps);
    free(b->exp_ptrs);
    free(b->arms);
    free(b->arm_ptrs);
    free(b->arm_targets);
    free(b->arm_target_ptrs);
}

static char *str(const char *s)
{
    /* protobuf-c wants non-const char * and "" for absent strings; it never writes. */
    return (char *)(s ? s : "");
}

static Switchyard__V1__Tri tri(enum sy_tristate t)
{
    if (t == SY_TRI_YES)
        return SWITCHYARD__V1__TRI__TRI_YES;
    if (t == SY_TRI_NO)
        return SWITCHYARD__V1__TRI__TRI_NO;
    return SWITCHYARD__V1__TRI__TRI_ANY;
}

/* Points *out at <w> holding <v>, or leaves it NULL (absent) when <v> is -1 (unset). */
static void bound(Switchyard__V1__Int64Value **out, Switchyard__V1__Int64Value *w, int64_t v)
{
    switchyard__v1__int64_value__init(w);
    if (v < 0)
        return;
    w->value = v;
    *out = w;
}

static void build_providers(const struct sy_policy *pol, struct pb_build *b)
{
    size_t n_headers = 0, h = 0;

    for (size_t i = 0; i < pol->n_providers; i++)
        n_headers += pol->providers[i].n_headers;
    b->providers = sy_xcalloc(pol->n_providers + 1, sizeof(*b->providers));
    b->provider_ptrs = sy_xcalloc(pol->n_providers + 1, sizeof(*b->provider_ptrs));
    b->headers = sy_xcalloc(n_headers + 1, sizeof(*b->headers));
    b->header_ptrs = sy_xcalloc(n_headers + 1, sizeof(*b->header_ptrs));
    for (size_t i = 0; i < pol->n_providers; i++) {
        const struct sy_provider *p = &pol->providers[i];
        Switchyard__V1__Provider *m = &b->providers[i];
        switchyard__v1__provider__init(m);
        m->name = str(p->name);
        m->kind = str(sy_provider_kind_name(p->kind));
        m->base_url = str(p->base_url);
        m->api_key_env = str(p->api_key_env);
        m->api_version = str(p->api_version);
        m->connect_timeout_ms = p->connect_timeout_ms;
        m->timeout_ms = p->timeout_ms;
        m->n_headers = p->n_headers;
        m->headers = &b->header_ptrs[h];
        for (size_t k = 0; k < p->n_headers; k++, h++) {
            switchyard__v1__header__init(&b->headers[h]);
            b->headers[h].name = str(p->headers[k].name);
            b->headers[h].value = str(p->headers[k].value);
            b->header_ptrs[h] = &b->headers[h];
        }
        m->region = str(p->region);
        m->n_compliance = p->n_compliance;
        m->compliance = p->compliance;
        b->provider_ptrs[i] = m;
    }
    b->msg.n_providers = pol->n_providers;
    b->msg.providers = b->provider_ptrs;
}

/* Fills <p>'s windows from <src>'s, in the next free slots of <b>'s window arrays from *w,
 * which advances. */
static void build_windows(const struct sy_model *src, Switchyard__V1__Pricing *p,
                          struct pb_build *b, size_t *w)
{
    p->n_windows = src->n_windows;
    p->windows = &b->window_ptrs[*w];
    for (size_t k = 0; k < src->n_windows; k++, (*w)++) {
        const struct sy_price_window *sw = &src->windows[k];
        Switchyard__V1__PriceWindow *m = &b->windows[*w];
        switchyard__v1__price_window__init(m);
        m->start = (char *)sy_hhmm(sw->start_min, b->hhmm[*w][0]);
        m->end = (char *)sy_hhmm(sw->end_min, b->hhmm[*w][1]);
        m->input_per_mtok = sw->input_per_mtok;
        m->output_per_mtok = sw->output_per_mtok;
        m->cached_input_per_mtok = sw->cached_input_per_mtok;
        b->window_ptrs[*w] = m;
    }
}

static void build_models(const struct sy_policy *pol, struct pb_build *b)
{
    size_t n_windows = 0, w = 0;

    for (size_t i = 0; i < pol->n_models; i++)
        n_windows += pol->models[i].n_windows;
    b->models = sy_xcalloc(pol->n_models + 1, sizeof(*b->models));
    b->model_ptrs = sy_xcalloc(pol->n_models + 1, sizeof(*b->model_ptrs));
    b->pricing = sy_xcalloc(pol->n_models + 1, sizeof(*b->pricing));
    b->windows = sy_xcalloc(n_windows + 1, sizeof(*b->windows));
    b->window_ptrs = sy_xcalloc(n_windows + 1, sizeof(*b->window_ptrs));
    b->hhmm = sy_xcalloc(n_windows + 1, sizeof(*b->hhmm));
    for (size_t i = 0; i < pol->n_models; i++) {
        const struct sy_model *src = &pol->models[i];
        Switchyard__V1__Model *m = &b->models[i];
        switchyard__v1__model__init(m);
        switchyard__v1__pricing__init(&b->pricing[i]);
        m->name = str(src->name);
        m->provider = str(pol->providers[src->provider].name);
        m->upstream_model = str(src->upstream_model);
        b->pricing[i].input_per_mtok = src->input_per_mtok;
        b->pricing[i].output_per_mtok = src->output_per_mtok;
        b->pricing[i].cached_input_per_mtok = src->cached_input_per_mtok;
        build_windows(src, &b->pricing[i], b, &w);
        m->pricing = &b->pricing[i];
        b->model_ptrs[i] = m;
    }
    b->msg.n_models = pol->n_models;
    b->msg.models = b->model_ptrs;
}

/* Fills <pm> from <src>; the rule messages go to the next free slots of <b>'s rule arrays,
 * *kw and *rx, which advance. */
static void build_match(const struct sy_match *src, struct pb_route_parts *pr, struct pb_build *b,
                        size_t *kw, size_t *rx)
{
    Switchyard__V1__RouteMatch *pm = &pr->match;

    switchyard__v1__route_match__init(pm);
    pm->model = str(src->model);
    pm->n_tags = src->n_tags;
    pm->tags = src->tags;
    bound(&pm->min_prompt_tokens, &pr->bounds[0], src->min_prompt_tokens);
    bound(&pm->max_prompt_tokens, &pr->bounds[1], src->max_prompt_tokens);
    bound(&pm->min_messages, &pr->bounds[2], src->min_messages);
    bound(&pm->max_messages, &pr->bounds[3], src->max_messages);
    pm->has_tools = tri(src->has_tools);
    pm->has_images = tri(src->has_images);
    pm->json_mode = tri(src->json_mode);
    pm->stream = tri(src->stream);
    pm->n_keywords = src->n_keywords;
    pm->keywords = &b->keyword_ptrs[*kw];
    for (size_t k = 0; k < src->n_keywords; k++, (*kw)++) {
        Switchyard__V1__KeywordRule *m = &b->keywords[*kw];
        switchyard__v1__keyword_rule__init(m);
        m->n_any = src->keywords[k].n_words;
        m->any = src->keywords[k].words;
        m->in = src->keywords[k].in;
        b->keyword_ptrs[*kw] = m;
    }
    pm->n_regex = src->n_regex;
    pm->regex = &b->regex_ptrs[*rx];
    for (size_t k = 0; k < src->n_regex; k++, (*rx)++) {
        Switchyard__V1__RegexRule *m = &b->regex[*rx];
        switchyard__v1__regex_rule__init(m);
        m->pattern = str(src->regex[k].pattern);
        m->in = src->regex[k].in;
        m->case_sensitive = src->regex[k].case_sensitive;
        b->regex_ptrs[*rx] = m;
    }
}

static void build_routes(const struct sy_policy *pol, struct pb_build *b)
{
    size_t n_targets = 0, n_fallback = 0, n_keywords = 0, n_regex = 0;
    size_t t = 0, f = 0, kw = 0, rx = 0;

    for (size_t i = 0; i < pol->n_routes; i++) {
        n_targets += pol->routes[i].n_targets;
        n_fallback += pol->routes[i].n_fallback;
        n_keywords += pol->routes[i].match.n_keywords;
        n_regex += pol->routes[i].match.n_regex;
    }
    b->routes = sy_xcalloc(pol->n_routes + 1, sizeof(*b->routes));
    b->route_ptrs = sy_xcalloc(pol->n_routes + 1, sizeof(*b->route_ptrs));
    b->parts = sy_xcalloc(pol->n_routes + 1, sizeof(*b->parts));
    b->targets = sy_xcalloc(n_targets + 1, sizeof(*b->targets));
    b->target_ptrs = sy_xcalloc(n_targets + 1, sizeof(*b->target_ptrs));
    b->fallback = sy_xcalloc(n_fallback + 1, sizeof(*b->fallback));
    b->keywords = sy_xcalloc(n_keywords + 1, sizeof(*b->keywords));
    b->keyword_ptrs = sy_xcalloc(n_keywords + 1, sizeof(*b->keyword_ptrs));
    b->regex = sy_xcalloc(n_regex + 1, sizeof(*b->regex));
    b->regex_ptrs = sy_xcalloc(n_regex + 1, sizeof(*b->regex_ptrs));
    b->learns = sy_xcalloc(pol->n_routes + 1, sizeof(*b->learns));
    b->objectives = sy_xcalloc(pol->n_routes + 1, sizeof(*b->objectives));
    for (size_t i = 0; i < pol->n_routes; i++) {
        const struct sy_route *src = &pol->routes[i];
        struct pb_route_parts *pr = &b->parts[i];
        Switchyard__V1__Route *r = &b->routes[i];
        switchyard__v1__route__init(r);
        r->name = str(src->name);
        build_match(&src->match, pr, b, &kw, &rx);
        r->match = &pr->match;
        r->strategy = str(sy_strategy_name(src->strategy));
        r->n_targets = src->n_targets;
        r->targets = &b->target_ptrs[t];
        for (size_t k = 0; k < src->n_targets; k++, t++) {
            switchyard__v1__target__init(&b->targets[t]);
            b->targets[t].model = str(pol->models[src->targets[k].model].name);
            b->targets[t].weight = src->targets[k].weight;
            b->target_ptrs[t] = &b->targets[t];
        }
        r->n_fallback = src->n_fallback;
        r->fallback = &b->fallback[f];
        for (size_t k = 0; k < src->n_fallback; k++, f++)
            b->fallback[f] = str(pol->models[src->fallback[k]].name);
        switchyard__v1__timeouts__init(&pr->timeouts);
        pr->timeouts.attempt_ms = src->attempt_timeout_ms;
        pr->timeouts.first_token_ms = src->first_token_timeout_ms;
        pr->timeouts.total_ms = src->total_timeout_ms;
        r->timeouts = &pr->timeouts;
        switchyard__v1__retries__init(&pr->retries);
        pr->retries.max = src->retries_max;
        pr->retries.backoff_ms = src->retry_backoff_ms;
        pr->retries.max_backoff_ms = src->retry_max_backoff_ms;
        r->retries = &pr->retries;
        r->hedge_after_ms = src->hedge_after_ms;
        if (src->strategy == SY_STRATEGY_LEARNED) {
            Switchyard__V1__Learn *l = &b->learns[i];
            Switchyard__V1__Objective *o = &b->objectives[i];
            switchyard__v1__learn__init(l);
            switchyard__v1__objective__init(o);
            o->quality = src->learn.w_quality;
            o->cost = src->learn.w_cost;
            o->latency = src->learn.w_latency;
            l->objective = o;
            l->update_period_s = src->learn.update_period_s;
            l->exploration = src->learn.exploration;
            l->max_step = src->learn.max_step;
            l->min_samples = src->learn.min_samples;
            l->threshold = src->learn.threshold;
            l->discount = src->learn.discount;
            r->learn = l;
        }
        b->route_ptrs[i] = r;
    }
    b->msg.n_routes = pol->n_routes;
    b->msg.routes = b->route_ptrs;
    if (pol->default_route != SIZE_MAX)
        b->msg.default_route = str(pol->routes[pol->default_route].name);
}

static void build_resilience(const struct sy_resilience *src, struct pb_build *b)
{
    switchyard__v1__resilience__init(&b->resilience);
    switchyard__v1__breaker__init(&b->breaker);
    switchyard__v1__retry_budget__init(&b->retry_budget);
    switchyard__v1__double_value__init(&b->budget_ratio);
    switchyard__v1__int64_value__init(&b->budget_min_per_second);
    switchyard__v1__int64_value__init(&b->max_retry_after_ms);
    b->breaker.failures = src->breaker_failures;
    b->breaker.error_rate = src->breaker_error_rate;
    b->breaker.min_requests = src->breaker_min_requests;
    b->breaker.window_ms = src->breaker_window_ms;
    b->breaker.open_ms = src->breaker_open_ms;
    b->budget_ratio.value = src->retry_budget_ratio;
    b->budget_min_per_second.value = src->retry_budget_min_per_s;
    b->retry_budget.ratio = &b->budget_ratio;
    b->retry_budget.min_per_second = &b->budget_min_per_second;
    b->max_retry_after_ms.value = src->max_retry_after_ms;
    b->resilience.breaker = &b->breaker;
    b->resilience.retry_budget = &b->retry_budget;
    b->resilience.max_retry_after_ms = &b->max_retry_after_ms;
    b->msg.resilience = &b->resilience;
}

static void build_tenants(const struct sy_policy *pol, struct pb_build *b)
{
    static const char hex[] = "0123456789abcdef";
    size_t n_labels = 0, l = 0;

    for (size_t i = 0; i < pol->n_tenants; i++)
        n_labels += pol->tenants[i].n_labels;
    b->tenants = sy_xcalloc(pol->n_tenants + 1, sizeof(*b->tenants));
    b->tenant_ptrs = sy_xcalloc(pol->n_tenants + 1, sizeof(*b->tenant_ptrs));
    b->digests = sy_xcalloc(pol->n_tenant_keys + 1, sizeof(*b->digests));
    b->digest_ptrs = sy_xcalloc(pol->n_tenant_keys + 1, sizeof(*b->digest_ptrs));
    b->labels = sy_xcalloc(n_labels + 1, sizeof(*b->labels));
    b->label_ptrs = sy_xcalloc(n_labels + 1, sizeof(*b->label_ptrs));
    b->budgets = sy_xcalloc(pol->n_tenants + 1, sizeof(*b->budgets));
    for (size_t k = 0; k < pol->n_tenant_keys; k++) {
        const uint8_t *d = pol->tenant_keys[k].sha256;
        for (size_t j = 0; j < SY_SHA256_LEN; j++) {
            b->digests[k][2 * j] = hex[d[j] >> 4];
            b->digests[k][2 * j + 1] = hex[d[j] & 15];
        }
        b->digest_ptrs[k] = b->digests[k];
    }
    for (size_t i = 0; i < pol->n_tenants; i++) {
        const struct sy_tenant *src = &pol->tenants[i];
        Switchyard__V1__Tenant *m = &b->tenants[i];
        switchyard__v1__tenant__init(m);
        m->name = str(src->name);
        m->n_api_keys_sha256 = src->n_keys;
        m->api_keys_sha256 = &b->digest_ptrs[src->first_key];
        m->n_labels = src->n_labels;
        m->labels = &b->label_ptrs[l];
        for (size_t k = 0; k < src->n_labels; k++, l++) {
            switchyard__v1__label__init(&b->labels[l]);
            b->labels[l].key = str(src->labels[k].key);
            b->labels[l].value = str(src->labels[k].value);
            b->label_ptrs[l] = &b->labels[l];
        }
        if (src->budget_daily_usd > 0 || src->budget_monthly_usd > 0) {
            switchyard__v1__budget__init(&b->budgets[i]);
            b->budgets[i].daily_usd = src->budget_daily_usd;
            b->budgets[i].monthly_usd = src->budget_monthly_usd;
            m->budget = &b->budgets[i];
        }
        b->tenant_ptrs[i] = m;
    }
    b->msg.n_tenants = pol->n_tenants;
    b->msg.tenants = b->tenant_ptrs;
    switchyard__v1__auth__init(&b->auth);
    b->auth.mode = str(sy_auth_mode_name(pol->auth_mode));
    b->msg.auth = &b->auth;
}

static void build_experiments(const struct sy_policy *pol, struct pb_build *b)
{
    static const char *const metrics[] = {"thumbs_up", "score", "latency", "cost"};
    static const char *const sticky[] = {"user", "header", "tenant", "request"};
    static const char *const stops[] = {"prob_best", "significance", "none"};
    size_t n_arms = 0, n_targets = 0, a = 0, t = 0;

    for (size_t i = 0; i < pol->n_experiments; i++) {
        n_arms += pol->experiments[i].n_arms;
        for (size_t k = 0; k < pol->experiments[i].n_arms; k++)
            n_targets += pol->experiments[i].arms[k].n_targets;
    }
    b->exps = sy_xcalloc(pol->n_experiments + 1, sizeof(*b->exps));
    b->exp_ptrs = sy_xcalloc(pol->n_experiments + 1, sizeof(*b->exp_ptrs));
    b->arms = sy_xcalloc(n_arms + 1, sizeof(*b->arms));
    b->arm_ptrs = sy_xcalloc(n_arms + 1, sizeof(*b->arm_ptrs));
    b->arm_targets = sy_xcalloc(n_targets + 1, sizeof(*b->arm_targets));
    b->arm_target_ptrs = sy_xcalloc(n_targets + 1, sizeof(*b->arm_target_ptrs));
    for (size_t i = 0; i < pol->n_experiments; i++) {
        const struct sy_experiment *x = &pol->experiments[i];
        Switchyard__V1__Experiment *e = &b->exps[i];

        switchyard__v1__experiment__init(e);
        e->name = str(x->name);
        e->route = str(pol->routes[x->route].name);
        e->metric = str(metrics[x->metric]);
        e->sticky_by = str(sticky[x->sticky]);
        e->sticky_header = str(x->sticky_header);
        e->min_samples = x->min_samples;
        e->stop_rule = str(stops[x->stop_rule]);
        e->stop_threshold = x->stop_threshold;
        e->auto_promote = x->auto_promote;
        e->n_arms = x->n_arms;
        e->arms = &b->arm_ptrs[a];
        for (size_t k = 0; k < x->n_arms; k++, a++) {
            const struct sy_arm *src = &x->arms[k];
            Switchyard__V1__Arm *arm = &b->arms[a];

            switchyard__v1__arm__init(arm);
            arm->name = str(src->name);
            arm->share = src->share;
            arm->n_targets = src->n_targets;
            arm->targets = &b->arm_target_ptrs[t];
            for (size_t j = 0; j < src->n_targets; j++, t++) {
                switchyard__v1__target__init(&b->arm_targets[t]);
                b->arm_targets[t].model = str(pol->models[src->targets[j].model].name);
                b->arm_targets[t].weight = src->targets[j].weight;
                b->arm_target_ptrs[t] = &b->arm_targets[t];
            }
            b->arm_ptrs[a] = arm;
        }
        b->exp_ptrs[i] = e;
    }
    b->msg.n_experiments = pol->n_experiments;
    b->msg.experiments = b->exp_ptrs;
}

static void build_pb(const struct sy_policy *pol, struct pb_build *b)
{
    memset(b, 0, sizeof(*b));
    switchyard__v1__policy__init(&b->msg);
    build_providers(pol, b);
    build_models(pol, b);
    build_routes(pol, b);
    build_resilience(&pol->resilience, b);
    build_tenants(pol, b);
    build_experiments(pol, b);

    switchyard__v1__server_limits__init(&b->server);
    b->server.max_body_bytes = pol->server.max_body_bytes;
    b->server.header_timeout_ms = pol->server.header_timeout_ms;
    b->server.body_timeout_ms = pol->server.body_timeout_ms;
    b->server.idle_timeout_ms = pol->server.idle_timeout_ms;
    b->server.max_connections = pol->server.max_connections;
    b->msg.server = &b->server;
}

uint8_t *sy_policy_pack(const struct sy_policy *pol, size_t *len)
{
    struct pb_build b;
    uint8_t *out;

    build_pb(pol, &b);
    *len = switchyard__v1__policy__get_packed_size(&b.msg);
    out = sy_xmalloc(*len ? *len : 1);
    switchyard__v1__policy__pack(&b.msg, out);
    free_pb(&b);
    return out;
}

static void add_str(cJSON *obj, const char *key, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(obj, key, v);
}

static void add_num(cJSON *obj, const char *key, double v)
{
    /* Zero is proto3's "absent": leave the key out so the compiler applies its default. */
    if (v != 0)
        cJSON_AddNumberToObject(obj, key, v);
}

/* An empty list is proto3's "absent" too, and every list key defaults to empty. */
static void add_str_list(cJSON *obj, const char *key, char *const *v, size_t n)
{
    cJSON *arr;

    if (n == 0)
        return;
    arr = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(v[i]));
}

static void add_int64(cJSON *obj, const char *key, const Switchyard__V1__Int64Value *w)
{
    if (w)
        cJSON_AddNumberToObject(obj, key, (double)w->value);
}

static void add_tri(cJSON *obj, const char *key, Switchyard__V1__Tri t)
{
    /* Values this build does not know are passed on as numbers for the compiler to refuse. */
    if (t == SWITCHYARD__V1__TRI__TRI_YES || t == SWITCHYARD__V1__TRI__TRI_NO)
        cJSON_AddBoolToObject(obj, key, t == SWITCHYARD__V1__TRI__TRI_YES);
    else if (t != SWITCHYARD__V1__TRI__TRI_ANY)
        cJSON_AddNumberToObject(obj, key, t);
}

/* A rule's "in" bits as the policy spells them; unknown bits go on as a number, which the
 * compiler refuses. */
static void add_text_source(cJSON *obj, uint32_t in)
{
    static const char *const names[] = {NULL, "last_user", "system", "any"};

    if (in < 4 && names[in])
        cJSON_AddStringToObject(obj, "in", names[in]);
    else if (in >= 4)
        cJSON_AddNumberToObject(obj, "in", in);
}

static void match_to_json(const Switchyard__V1__RouteMatch *m, cJSON *o)
{
    cJSON *arr;

    add_str(o, "model", m->model);
    add_str_list(o, "tags", m->tags, m->n_tags);
    add_int64(o, "min_prompt_tokens", m->min_prompt_tokens);
    add_int64(o, "max_prompt_tokens", m->max_prompt_tokens);
    add_int64(o, "min_messages", m->min_messages);
    add_int64(o, "max_messages", m->max_messages);
    add_tri(o, "has_tools", m->has_tools);
    add_tri(o, "has_images", m->has_images);
    add_tri(o, "json_mode", m->json_mode);
    add_tri(o, "stream", m->stream);
    if (m->n_keywords) {
        arr = cJSON_AddArrayToObject(o, "keywords");
        for (size_t i = 0; i < m->n_keywords; i++) {
            cJSON *k = cJSON_CreateObject(), *any;
            cJSON_AddItemToArray(arr, k);
            any = cJSON_AddArrayToObject(k, "any"); /* kept when empty: the compiler says so */
            for (size_t j = 0; j < m->keywords[i]->n_any; j++)
                cJSON_AddItemToArray(any, cJSON_CreateString(m->keywords[i]->any[j]));
            add_text_source(k, m->keywords[i]->in);
        }
    }
    if (m->n_regex) {
        arr = cJSON_AddArrayToObject(o, "regex");
        for (size_t i = 0; i < m->n_regex; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, x);
            add_str(x, "pattern", m->regex[i]->pattern);
            add_text_source(x, m->regex[i]->in);
            cJSON_AddBoolToObject(x, "case_sensitive", m->regex[i]->case_sensitive);
        }
    }
}

static cJSON *route_to_json(const Switchyard__V1__Route *r)
{
    cJSON *o = cJSON_CreateObject(), *sub;

    add_str(o, "name", r->name);
    if (r->match)
        match_to_json(r->match, cJSON_AddObjectToObject(o, "match"));
    add_str(o, "strategy", r->strategy);
    sub = cJSON_AddArrayToObject(o, "targets");
    for (size_t k = 0; k < r->n_targets; k++) {
        cJSON *t = cJSON_CreateObject();
        add_str(t, "model", r->targets[k]->model);
        cJSON_AddNumberToObject(t, "weight", r->targets[k]->weight);
        cJSON_AddItemToArray(sub, t);
    }
    add_str_list(o, "fallback", r->fallback, r->n_fallback);
    if (r->timeouts) {
        sub = cJSON_AddObjectToObject(o, "timeouts");
        add_num(sub, "attempt_ms", r->timeouts->attempt_ms);
        add_num(sub, "first_token_ms", r->timeouts->first_token_ms);
        add_num(sub, "total_ms", r->timeouts->total_ms);
    }
    if (r->retries) {
        sub = cJSON_AddObjectToObject(o, "retries");
        add_num(sub, "max", r->retries->max);
        add_num(sub, "backoff_ms", r->retries->backoff_ms);
        add_num(sub, "max_backoff_ms", r->retries->max_backoff_ms);
    }
    add_num(o, "hedge_after_ms", r->hedge_after_ms);
    if (r->learn) {
        /* Every value as sent: 0 means 0 here (no exploration, no cost weight). */
        cJSON *l = cJSON_AddObjectToObject(o, "learn");
        if (r->learn->objective) {
            sub = cJSON_AddObjectToObject(l, "objective");
            cJSON_AddNumberToObject(sub, "quality", r->learn->objective->quality);
            cJSON_AddNumberToObject(sub, "cost", r->learn->objective->cost);
            cJSON_AddNumberToObject(sub, "latency", r->learn->objective->latency);
        }
        cJSON_AddNumberToObject(l, "update_period_s", r->learn->update_period_s);
        cJSON_AddNumberToObject(l, "exploration", r->learn->exploration);
        cJSON_AddNumberToObject(l, "max_step", r->learn->max_step);
        cJSON_AddNumberToObject(l, "min_samples", r->learn->min_samples);
        cJSON_AddNumberToObject(l, "threshold", r->learn->threshold);
        cJSON_AddNumberToObject(l, "discount", r->learn->discount);
    }
    return o;
}

static void experiments_to_json(const Switchyard__V1__Policy *msg, cJSON *root)
{
    cJSON *arr;

    if (!msg->n_experiments)
        return;
    arr = cJSON_AddArrayToObject(root, "experiments");
    for (size_t i = 0; i < msg->n_experiments; i++) {
        const Switchyard__V1__Experiment *e = msg->experiments[i];
        cJSON *o = cJSON_CreateObject(), *sub, *arms;

        add_str(o, "name", e->name);
        add_str(o, "route", e->route);
        add_str(o, "metric", e->metric);
        sub = cJSON_AddObjectToObject(o, "sticky");
        add_str(sub, "by", e->sticky_by);
        add_str(sub, "header", e->sticky_header);
        add_num(o, "min_samples", e->min_samples);
        sub = cJSON_AddObjectToObject(o, "stop");
        add_str(sub, "rule", e->stop_rule);
        add_num(sub, "threshold", e->stop_threshold);
        cJSON_AddBoolToObject(sub, "auto_promote", e->auto_promote);
        arms = cJSON_AddArrayToObject(o, "arms");
        for (size_t k = 0; k < e->n_arms; k++) {
            const Switchyard__V1__Arm *a = e->arms[k];
            cJSON *ao = cJSON_CreateObject(), *ts = cJSON_AddArrayToObject(ao, "targets");
            add_str(ao, "name", a->name);
            for (size_t j = 0; j < a->n_targets; j++) {
                cJSON *t = cJSON_CreateObject();
                add_str(t, "model", a->targets[j]->model);
                cJSON_AddNumberToObject(t, "weight", a->targets[j]->weight);
                cJSON_AddItemToArray(ts, t);
            }
            add_num(ao, "share", a->share);
            cJSON_AddItemToArray(arms, ao);
        }
        cJSON_AddItemToArray(arr, o);
    }
}

static void resilience_to_json(const Switchyard__V1__Resilience *r, cJSON *root)
{
    cJSON *o = cJSON_AddObjectToObject(root, "resilience"), *sub;

    if (r->breaker) {
        sub = cJSON_AddObjectToObject(o, "breaker");
        add_num(sub, "failures", r->breaker->failures);
        add_num(sub, "error_rate", r->breaker->error_rate);
        add_num(sub, "min_requests", r->breaker->min_requests);
        add_num(sub, "window_ms", r->breaker->window_ms);
        add_num(sub, "open_ms", r->breaker->open_ms);
    }
    if (r->retry_budget) {
        sub = cJSON_AddObjectToObject(o, "retry_budget");
        if (r->retry_budget->ratio)
            cJSON_AddNumberToObject(sub, "ratio", r->retry_budget->ratio->value);
        add_int64(sub, "min_per_second", r->retry_budget->min_per_second);
    }
    add_int64(o, "max_retry_after_ms", r->max_retry_after_ms);
}

/* Window prices are resolved, so every one is written, 0 included. */
static void windows_to_json(const Switchyard__V1__Pricing *p, cJSON *pr)
{
    cJSON *arr = cJSON_AddArrayToObject(pr, "windows");

    for (size_t k = 0; k < p->n_windows; k++) {
        const Switchyard__V1__PriceWindow *w = p->windows[k];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        add_str(o, "start", w->start); /* "" stays absent: the compiler says it is required */
        add_str(o, "end", w->end);
        cJSON_AddNumberToObject(o, "input_per_mtok", w->input_per_mtok);
        cJSON_AddNumberToObject(o, "output_per_mtok", w->output_per_mtok);
        cJSON_AddNumberToObject(o, "cached_input_per_mtok", w->cached_input_per_mtok);
    }
}

static void tenants_to_json(const Switchyard__V1__Policy *msg, cJSON *root)
{
    cJSON *arr;

    if (msg->n_tenants) {
        arr = cJSON_AddArrayToObject(root, "tenants");
        for (size_t i = 0; i < msg->n_tenants; i++) {
            const Switchyard__V1__Tenant *t = msg->tenants[i];
            cJSON *o = cJSON_CreateObject(), *keys;
            cJSON_AddItemToArray(arr, o);
            add_str(o, "name", t->name);
            keys = cJSON_AddArrayToObject(o, "api_keys_sha256"); /* kept when empty: refused */
            for (size_t k = 0; k < t->n_api_keys_sha256; k++)
                cJSON_AddItemToArray(keys, cJSON_CreateString(t->api_keys_sha256[k]));
            if (t->n_labels) {
                cJSON *ls = cJSON_AddObjectToObject(o, "labels");
                for (size_t k = 0; k < t->n_labels; k++)
                    cJSON_AddStringToObject(ls, t->labels[k]->key, t->labels[k]->value);
            }
            if (t->budget && (t->budget->daily_usd != 0 || t->budget->monthly_usd != 0)) {
                cJSON *bo = cJSON_AddObjectToObject(o, "budget");
                add_num(bo, "daily_usd", t->budget->daily_usd); /* 0 = unset */
                add_num(bo, "monthly_usd", t->budget->monthly_usd);
            }
        }
    }
    if (msg->auth && msg->auth->mode && *msg->auth->mode)
        add_str(cJSON_AddObjectToObject(root, "auth"), "mode", msg->auth->mode);
}

/* The message as the policy document it was compiled from (canonical form). */
static cJSON *pb_to_json(const Switchyard__V1__Policy *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "providers");

    for (size_t i = 0; i < msg->n_providers; i++) {
        const Switchyard__V1__Provider *p = msg->providers[i];
        cJSON *o = cJSON_CreateObject();
        add_str(o, "name", p->name);
        add_str(o, "kind", p->kind);
        add_str(o, "base_url", p->base_url);
        add_str(o, "api_key_env", p->api_key_env);
        add_str(o, "api_version", p->api_version);
        if (p->n_headers) {
            cJSON *hs = cJSON_AddObjectToObject(o, "headers");
            for (size_t k = 0; k < p->n_headers; k++)
                cJSON_AddStringToObject(hs, p->headers[k]->name, p->headers[k]->value);
        }
        add_num(o, "connect_timeout_ms", p->connect_timeout_ms);
        add_num(o, "timeout_ms", p->timeout_ms);
        add_str(o, "region", p->region);
        add_str_list(o, "compliance", p->compliance, p->n_compliance);
        cJSON_AddItemToArray(arr, o);
    }
    arr = cJSON_AddArrayToObject(root, "models");
    for (size_t i = 0; i < msg->n_models; i++) {
        const Switchyard__V1__Model *m = msg->models[i];
        cJSON *o = cJSON_CreateObject();
        add_str(o, "name", m->name);
        add_str(o, "provider", m->provider);
        add_str(o, "upstream_model", m->upstream_model);
        if (m->pricing) {
            cJSON *pr = cJSON_AddObjectToObject(o, "pricing");
            cJSON_AddNumberToObject(pr, "input_per_mtok", m->pricing->input_per_mtok);
            cJSON_AddNumberToObject(pr, "output_per_mtok", m->pricing->output_per_mtok);
            cJSON_AddNumberToObject(pr, "cached_input_per_mtok", m->pricing->cached_input_per_mtok);
            if (m->pricing->n_windows)
                windows_to_json(m->pricing, pr);
        }
        cJSON_AddItemToArray(arr, o);
    }
    if (msg->n_routes) {
        arr = cJSON_AddArrayToObject(root, "routes");
        for (size_t i = 0; i < msg->n_routes; i++)
            cJSON_AddItemToArray(arr, route_to_json(msg->routes[i]));
    }
    add_str(root, "default_route", msg->default_route);
    if (msg->resilience)
        resilience_to_json(msg->resilience, root);
    if (msg->server) {
        cJSON *s = cJSON_AddObjectToObject(root, "server");
        add_num(s, "max_body_bytes", (double)msg->server->max_body_bytes);
        add_num(s, "header_timeout_ms", msg->server->header_timeout_ms);
        add_num(s, "body_timeout_ms", msg->server->body_timeout_ms);
        add_num(s, "idle_timeout_ms", msg->server->idle_timeout_ms);
        add_num(s, "max_connections", msg->server->max_connections);
    }
    tenants_to_json(msg, root);
    experiments_to_json(msg, root);
    return root;
}

struct sy_policy *sy_policy_from_pb(const Switchyard__V1__Policy *msg, char **errmsg)
{
    cJSON *root = pb_to_json(msg);
    struct sy_policy *pol = sy_policy_compile_json(root, errmsg);
    cJSON_Delete(root);
    return pol;
}

struct sy_policy *sy_policy_unpack(const uint8_t *data, size_t len, char **errmsg)
{
    Switchyard__V1__Policy *msg = switchyard__v1__policy__unpack(NULL, len, data);
    struct sy_policy *pol;

    if (!msg) {
        if (errmsg)
            *errmsg = sy_xstrdup("the policy message is not a valid switchyard.v1.Policy");
        return NULL;
    }
    pol = sy_policy_from_pb(msg, errmsg);
    switchyard__v1__policy__free_unpacked(msg, NULL);
    return pol;
}
